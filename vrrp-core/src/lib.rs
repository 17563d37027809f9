//! A sans-IO VRRP engine: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798 as
//! updated by RFC 9568) for IPv4 and IPv6, with keepalived's extensions
//! (tracked objects with weights, Fault state, sync groups, nopreempt,
//! preempt_delay, gratuitous ARP timing, unicast peers).
//!
//! Nothing here reads a clock, opens a socket or spawns a thread: time is
//! the `now` you pass in, packets are bytes you hand over, and what must
//! happen comes back from `poll_*` methods. `vrrp-net` drives it on Linux;
//! `sim` drives it on a virtual LAN for tests (the `sim` feature, on by
//! default). The [`guide`] shows a complete run loop: two routers
//! exchanging packets over an in-memory link.
//!
//! # The driver loop
//! ```
//! use vrrp_core::{Output, Router, InstanceConfig, Timestamp, Version, VirtualAddress, Vrid};
//!
//! let mut router = Router::new();
//! let config = InstanceConfig::new(Vrid::new(1).unwrap(), Version::V3, "192.0.2.1".parse().unwrap())
//!     .with_address(VirtualAddress::host("192.0.2.100".parse().unwrap()));
//! router.add_instance(1, config).unwrap();
//! router.handle_startup(Timestamp::ZERO);
//! let mut buf = [0u8; vrrp_core::wire::MAX_PACKET_LEN];
//! let mut now = Timestamp::ZERO;
//! for _ in 0..3 {
//!     // 1. carry out every output, in order
//!     while let Some((id, output)) = router.poll_output() {
//!         match output {
//!             Output::Transmit(t) => {
//!                 let len = router.encode(id, &t, &mut buf).unwrap();
//!                 // send buf[..len] to t.destination with TTL 255
//!                 assert!(len >= 8);
//!             }
//!             Output::AddAddresses { addresses, .. } | Output::RemoveAddresses { addresses, .. } => {
//!                 // netlink: add or remove each of `addresses`
//!                 assert_eq!(addresses.len(), 1);
//!             }
//!             Output::Announce { .. } => { /* gratuitous ARP / NA */ }
//!             _ => { /* state and priority changes: log, notify */ }
//!         }
//!     }
//!     // 2. sleep until the next deadline or a packet arrives
//!     //    (router.handle_packet), then tell the router
//!     now = router.poll_timeout().unwrap();
//!     router.handle_timeout(now);
//! }
//! ```

#![deny(unsafe_code)]

mod config;
mod field;
pub mod guide;
mod instance;
mod receive;
mod router;
#[cfg(feature = "sim")]
pub mod sim;
mod stats;
mod time;
mod types;
pub mod wire;

pub use config::{
    ConfigError, GarpConfig, InitialState, InstanceConfig, InstanceConfigBuilder, InvalidConfig,
    VirtualAddress,
};
pub use field::{Field, FieldError, ParseError, Weight};
pub use instance::{Instance, Output, Reason, RxMeta, State, TrackConfig, TrackId, Transmit};
pub use router::{Deadline, DeadlineKind, GroupId, InstanceId, Router, RouterError};
pub use stats::{DropReason, RouterStatistics, Statistics};
pub use time::{Centisecs, Timestamp};
pub use types::{Family, Priority, Version, Vrid};
pub use wire::{Auth, ChecksumMode};
