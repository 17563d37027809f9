//! IPVS virtual servers kept in step with health checks: the `virtual_server`
//! half of keepalived.
//!
//! - [`IpvsClient`] talks to the kernel's "IPVS" generic netlink family
//!   (add/edit/delete/list services and destinations; TCP, UDP, SCTP, IPv4,
//!   IPv6, firewall marks), with errors that say what the kernel refused.
//! - [`LoadBalancer`] holds the configured [`VirtualServer`]s and the health
//!   of their real servers, and decides the table: down servers removed or
//!   inhibited, sorry server while quorum is lost, quorum with hysteresis,
//!   alpha/omega. It is pure; [`LoadBalancer::sync`] applies its decision to
//!   any [`Ipvs`] as a diff, editing in place and leaving entries it does not
//!   own alone ([`Ownership`]).
//! - [`HealthAggregator`] turns check results into real-server health
//!   (keepalived's rule: up when every check is up) and keeps it across
//!   reloads by (service, server, check).
//! - [`LoadBalancer::sync`] reads the whole table and repairs what was
//!   changed behind its back (counted in [`SyncReport::repairs`]);
//!   [`LoadBalancer::sync_changed`] touches only the services whose desired
//!   state changed, so a reload with no change costs no kernel request.
//! - [`GroupEntry`] reads keepalived's `virtual_server_group` lines and
//!   expands them into services as keepalived does.
//! - [`MemoryIpvs`] is an in-memory [`Ipvs`] with the kernel's error rules,
//!   for tests and dry runs.
//!
//! # Example
//!
//! A daemon builds the balancer from its configuration, feeds it health
//! results and syncs. Here the table is in memory; with a kernel, use
//! `IpvsClient::connect()?` instead of `MemoryIpvs::new()`.
//!
//! ```
//! use std::time::Duration;
//! use lvs::{
//!     Destination, Event, ForwardMethod, Health, Ipvs, LoadBalancer, MemoryIpvs, Persistence,
//!     RealServer, Scheduler, Service, ServiceKey, ShutdownMode, VirtualServer,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = ServiceKey::tcp("192.0.2.10:3306".parse()?);
//! let web1 = "198.51.100.1:3306".parse()?;
//! let web2 = "198.51.100.2:3306".parse()?;
//! let vs = VirtualServer::new(
//!     Service::new(key, Scheduler::WRR).with_persistence(Persistence::new(Duration::from_secs(50))),
//! )
//! .with_real_server(RealServer::new(Destination::new(web1, ForwardMethod::Route).with_weight(3)))
//! .with_real_server(RealServer::new(Destination::new(web2, ForwardMethod::Route)).inhibit_on_failure())
//! .with_sorry_server(Destination::new("198.51.100.99:3306".parse()?, ForwardMethod::Masquerade));
//!
//! let mut lb = LoadBalancer::new(vec![vs])?;
//! let mut ipvs = MemoryIpvs::new(); // IpvsClient::connect()? on a real system
//! lb.sync(&mut ipvs)?;
//!
//! // A checker reports web1 down: it leaves the table.
//! lb.set_health(&key, web1, Health::Down)?;
//! lb.sync(&mut ipvs)?;
//! assert_eq!(lb.poll_event(), Some(Event::RealServerDown { service: key, server: web1 }));
//! assert!(!ipvs.table()?.services[&key].destinations.contains_key(&web1));
//!
//! // web2 too: quorum is lost and the sorry server takes over; web2 stays at weight 0.
//! lb.set_health(&key, web2, Health::Down)?;
//! lb.sync(&mut ipvs)?;
//! while let Some(event) = lb.poll_event() {
//!     println!("{event:?}"); // RealServerDown, then QuorumDown
//! }
//! assert_eq!(ipvs.table()?.services[&key].destinations.len(), 2);
//!
//! // Persist lb.ownership().to_text() to clean up after config changes across restarts.
//! lb.shutdown(&mut ipvs, ShutdownMode::Release)?;
//! assert!(ipvs.table()?.services.is_empty());
//! # Ok(())
//! # }
//! ```

mod balancer;
mod client;
mod error;
pub mod group;
mod health;
mod model;
mod reconcile;
mod table;
pub mod wire;

pub use balancer::{
    ConfigError, Event, Health, LoadBalancer, RealServer, ShutdownMode, SyncReport, SyncStats,
    UnknownRealServer, VirtualServer,
};
pub use client::IpvsClient;
pub use error::{DecodeError, Error, Operation};
pub use group::{GroupEntry, GroupEntryError, MAX_GROUP_ENTRY_SERVICES, RangeForm};
pub use health::{ConfigureReport, HealthAggregator, ServerChecks, UnknownCheck};
pub use model::{
    AddressFamily, Counters, Destination, DestinationStatus, ForwardMethod, InvalidSchedulerName,
    ParseServiceKeyError, Persistence, Protocol, Scheduler, Service, ServiceFlags, ServiceKey,
    ServiceStatistics,
};
pub use reconcile::{
    Change, DesiredService, DesiredTable, Ownership, ParseOwnershipError, apply_change, plan,
    reconcile,
};
pub use table::{Ipvs, MemoryIpvs, Table, TableEntry};
