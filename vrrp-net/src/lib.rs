//! Linux I/O for VRRP, and a driver that runs `vrrp-core`'s engine on it.
//!
//! This crate holds no protocol logic: the protocol engine (`vrrp-core`)
//! produces VRRP payloads and consumes received ones; the modules here move
//! them and carry out the engine's side effects.
//!
//! * [`driver`]: runs a [`vrrp_core::Router`] on all of the below, and
//!   keeps the kernel's addresses as its instances need them: a sans-IO
//!   policy core ([`driver::core::DriverCore`], unit-tested in simulated
//!   time) in a thin tokio shell on a thread of its own. What a service
//!   embeds.
//! * [`socket`]: raw IP protocol 112 sockets (IPv4 and IPv6), multicast and
//!   unicast, with source / destination / interface / TTL of each packet.
//! * [`addr`]: add, remove and list interface addresses through rtnetlink.
//! * [`garp`]: gratuitous ARP and unsolicited IPv6 neighbour advertisements.
//! * [`link`]: interface lookups and link / address change events.
//! * `testnet` (feature `testnet`): namespace LANs and a keepalived
//!   launcher for integration tests.
//!
//! Everything here needs root (or `CAP_NET_RAW` and `CAP_NET_ADMIN`), and
//! every socket is created in the network namespace of the calling thread,
//! inside a tokio runtime with I/O enabled: the examples are `no_run`.
//!
//! # Embedding failover in a service
//!
//! Build the instance (the address family comes from the first virtual
//! address; the address advertised from is learnt from the interface),
//! spawn the driver with what stops it, and hand clones of the handle to
//! whatever moves the priority:
//!
//! ```no_run
//! use vrrp_core::{InstanceConfig, TrackConfig, TrackId};
//! use vrrp_net::driver::{DriverConfig, InstanceSpec, spawn_until};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! const BACKEND: TrackId = TrackId(1);
//! let config = InstanceConfig::v3("51".parse()?)
//!     .priority("150".parse()?)
//!     .virtual_address("192.0.2.100/24".parse()?)
//!     .build()?;
//! // While the backend is down, the priority is 150 - 60 = 90.
//! let spec = InstanceSpec::new("VI_1", "eth0", config).track(BACKEND, TrackConfig::weight(-60), true);
//! let config = DriverConfig { instances: vec![spec], ..DriverConfig::default() };
//! let handle = spawn_until(config, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//!
//! // A health check in a task of its own reports through a clone.
//! let health = handle.clone();
//! tokio::spawn(async move {
//!     let backend_up = false; // ... the result of a check
//!     if let Err(e) = health.set_track(BACKEND, backend_up).await {
//!         eprintln!("{e}"); // the driver has stopped
//!     }
//! });
//!
//! // Every transition, until the driver stops (the stream then ends).
//! let mut events = handle.subscribe_from_start();
//! while let Ok(e) = events.recv().await {
//!     println!("{}: {} -> {} ({:?}) at priority {}", e.instance, e.from, e.to, e.reason, e.priority);
//! }
//! handle.wait().await?; // after Ctrl-C: priority 0 sent, addresses removed
//! # Ok(())
//! # }
//! ```
//!
//! `examples/embed_failover.rs` in the repository is a complete program
//! with a TCP health check, tested in network namespaces.
//!
//! # Run loop: the engine over a socket, without the driver
//!
//! The driver is one way to run the engine. To run it your own way (one
//! instance, no netlink monitoring, another event loop), write the loop
//! [`vrrp_core::guide`] describes over this crate's parts. A complete
//! one, for a single IPv4 instance on `eth0`:
//!
//! ```no_run
//! use std::time::Instant;
//!
//! use vrrp_core::wire::MAX_PACKET_LEN;
//! use vrrp_core::{InstanceConfig, Output, Router, RxMeta, Timestamp};
//! use vrrp_net::addr::{AddOptions, AddressManager};
//! use vrrp_net::garp::AnnounceSocket;
//! use vrrp_net::socket::{Family, RECV_BUFFER_LEN, SocketConfig, VrrpSocket};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let link = vrrp_net::link::link_by_name("eth0").await?.ok_or("no eth0")?;
//! let addresses = AddressManager::new()?;
//! let me = addresses.primary_ipv4(link.ifindex).await?.ok_or("eth0 has no IPv4 address")?.addr;
//! let socket = VrrpSocket::open(&SocketConfig::new("eth0", Family::Ipv4).with_source(me))?;
//! let announcer = AnnounceSocket::open(link.ifindex, link.mac.ok_or("eth0 has no MAC address")?)?;
//!
//! let mut router = Router::new();
//! router.add_instance(
//!     link.ifindex,
//!     InstanceConfig::v3("51".parse()?)
//!         .priority("150".parse()?)
//!         .primary_address(me)
//!         .virtual_address("192.0.2.100/24".parse()?)
//!         .build()?,
//! )?;
//! // The engine's clock: time since the start, as a Timestamp.
//! let epoch = Instant::now();
//! let now = || Timestamp::from(epoch.elapsed());
//! let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
//! let (mut out, mut inp) = ([0u8; MAX_PACKET_LEN], vec![0u8; RECV_BUFFER_LEN]);
//! let mut stopping = false;
//! router.handle_startup(now());
//! loop {
//!     // 1. Drain: carry out every output, in order.
//!     while let Some((id, output)) = router.poll_output() {
//!         match output {
//!             Output::Transmit(t) => {
//!                 let len = router.encode(id, &t, &mut out)?;
//!                 socket.send_to(&out[..len], t.destination).await?;
//!             }
//!             Output::AddAddresses { addresses: vips, .. } => {
//!                 for v in vips.iter() {
//!                     addresses.add(link.ifindex, v.addr, v.prefix_len, &AddOptions::default()).await?;
//!                 }
//!             }
//!             Output::RemoveAddresses { addresses: vips, .. } => {
//!                 for v in vips.iter() {
//!                     addresses.remove(link.ifindex, v.addr, v.prefix_len).await?;
//!                 }
//!             }
//!             // `count` of them `interval` apart; once is enough here.
//!             Output::Announce { addresses: vips, .. } => {
//!                 for v in vips.iter() {
//!                     announcer.announce(v.addr).await?;
//!                 }
//!             }
//!             Output::StateChanged { from, to, reason } => println!("{from} -> {to} ({reason:?})"),
//!             _ => {} // priority changes
//!         }
//!     }
//!     if stopping {
//!         break; // the priority-0 advertisement is sent, the address removed
//!     }
//!     // 2. Wait for a packet, the next deadline, or the stop; ask for the
//!     //    deadline after every drain, since any input may move it.
//!     let deadline = router.poll_timeout().map(|t| tokio::time::Instant::from_std(epoch + t.since_epoch()));
//!     tokio::select! {
//!         // 3. Feed what happened.
//!         packet = socket.recv(&mut inp) => {
//!             let p = packet?;
//!             let meta = RxMeta { src: p.src, dst: p.dst, ttl: p.ttl };
//!             // Err: dropped and counted (a bad packet, another VRID).
//!             let _ = router.handle_packet(now(), p.ifindex, &meta, p.payload);
//!         }
//!         () = async {
//!             match deadline {
//!                 Some(at) => tokio::time::sleep_until(at).await,
//!                 None => std::future::pending().await,
//!             }
//!         } => router.handle_timeout(now()),
//!         _ = &mut stop => {
//!             router.handle_shutdown(now());
//!             stopping = true;
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! What the driver adds to that loop: several interfaces and instances,
//! sync groups, addresses followed through netlink (restored when removed
//! from outside, never removed when not its own), an interface's address
//! followed as the source, a state file for leftovers after a crash,
//! reloads, tracked interfaces, announcements spaced as configured,
//! statistics, and takeovers within a fraction of a millisecond of
//! Master_Down_Interval on a busy host.
//!
//! # Behaviour tests assert on
//!
//! The driver runs the engine of `vrrp-core` unchanged, so what a test
//! on [`vrrp_core::sim`] shows holds on the wire, to the timing of the
//! host: the simulator's docs show each of these with exact times.
//!
//! ## preempt_delay
//! A backup that hears a lower-priority master keeps accepting it until
//! `preempt_delay` has run from the first such advertisement, then takes
//! over Master_Down_Interval after the last one it accepted: between
//! `first + delay` and `first + delay + Master_Down_Interval`, as
//! keepalived does. See
//! [the simulator's notes](vrrp_core::sim#preempt_delay).
//!
//! ## Sync groups
//! [`driver::DriverConfig::sync_groups`] lists instance names. The
//! members move together (a member in Fault faults them all; the group
//! becomes master only when every member is ready to), so a tracked
//! object's weight on one member does not move the group: track it from
//! every member ([`driver::InstanceSpec::track`] on each). See
//! [the simulator's notes](vrrp_core::sim#sync-groups). A reload that
//! changes a group, or restarts one member, restarts every member.
//!
//! ## Restart
//! A driver starts from its [`driver::DriverConfig`] alone: priorities
//! set with [`driver::VrrpHandle::set_priority`] and states reported with
//! [`driver::VrrpHandle::set_track`] do not outlive it (tracked objects
//! start at their `initially_up` state until reported again), and every
//! instance starts as backup (unless configured to start as master; an
//! address owner, priority 255, is master at once), so
//! a router that was master takes over again only after
//! Master_Down_Interval, if it is still the best. After a crash or
//! SIGKILL, the addresses the driver added stay until the next start
//! reads its state file and removes them, unless it becomes master. See
//! [the simulator's notes](vrrp_core::sim#crash-shutdown-and-restart).
//! Within one driver, [`driver::VrrpHandle::reconfigure`] is not a
//! restart: unchanged instances keep their state, priority and reported
//! objects; an instance changed in place takes its configured priority.
//!
//! ## Same-instant ordering
//! On the wire nothing happens at the same instant, but a busy host can
//! read late. When a deadline is due, the driver first reads every
//! advertisement already queued on its sockets, each stamped with its
//! arrival time from the kernel, and only then lets the timer fire: an
//! advertisement that arrived before Master_Down_Interval ran out counts,
//! as in the simulator, where packets at an instant are handled before
//! timers. See
//! [the simulator's notes](vrrp_core::sim#same-instant-ordering).
//!
//! ## Errors
//! Every error of this crate says its cause in its `Display` (`{}`, a
//! tracing `%error`) and does not offer it again as
//! [`std::error::Error::source`], so `anyhow` prints each cause once. The
//! cause stays typed in the variant's fields.

pub mod addr;
pub mod driver;
pub mod firewall;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod garp;
pub mod link;
mod netlink;
pub mod route;
pub mod rule;
pub mod socket;
mod sys;
#[cfg(feature = "testnet")]
pub mod testnet;
mod timer;
pub mod vmac;

pub use netlink::NetlinkError;
