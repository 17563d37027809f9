//! How to drive the engine yourself: a complete run loop.
//!
//! `vrrp-net` drives [`Router`](crate::Router) over raw sockets and
//! netlink, and `vrrp_core::sim` drives it over a virtual LAN. To put
//! the engine on another transport, write the loop those two contain.
//! It has three steps, repeated for as long as the router runs:
//!
//! 1. **Drain.** After any `handle_*` call, take every
//!    [`Output`](crate::Output) from [`Router::poll_output`](crate::Router::poll_output)
//!    and carry it out in order: encode and send each
//!    [`Transmit`](crate::Transmit) (TTL / hop limit 255), add or remove
//!    the virtual addresses, send gratuitous ARPs / unsolicited NAs, and
//!    report state and priority changes.
//! 2. **Wait** until the next deadline, [`Router::poll_timeout`](crate::Router::poll_timeout),
//!    or until a packet arrives, whichever comes first. Ask for the
//!    deadline again after every drain: any input may move it.
//! 3. **Feed** what happened: [`Router::handle_packet`](crate::Router::handle_packet)
//!    with the IP payload and its [`RxMeta`](crate::RxMeta) (source,
//!    destination, TTL), or [`Router::handle_timeout`](crate::Router::handle_timeout)
//!    with the current time. A timeout handled early, or twice, does
//!    nothing; a dropped packet is counted and returns its
//!    [`DropReason`](crate::DropReason), never an error to stop on.
//!
//! Over a real socket, step 2 is one `select!` (here in tokio, with the
//! clock as a [`Timestamp`](crate::Timestamp) since the process started):
//!
//! ```text
//! let deadline = router.poll_timeout();
//! tokio::select! {
//!     r = socket.recv_from(&mut buf) => { /* router.handle_packet(now(), ifindex, &meta, &buf[..len]) */ }
//!     _ = sleep_until(deadline), if deadline.is_some() => router.handle_timeout(now()),
//! }
//! ```
//!
//! The example below runs that loop for two routers on one in-memory
//! "wire" with a simulated clock, so it runs as a test: a packet put on
//! the wire arrives 100 µs later at every other router, exactly as the
//! bytes were encoded. Router A (priority 200) wins the election; when it
//! shuts down it sends priority 0, and B takes over after its Skew_Time.
//!
//! ```
//! use std::collections::VecDeque;
//! use std::net::IpAddr;
//! use std::time::Duration;
//!
//! use vrrp_core::wire::{MAX_PACKET_LEN, REQUIRED_TTL};
//! use vrrp_core::{
//!     InstanceConfig, Output, Priority, Router, RxMeta, State, Timestamp, Version,
//!     VirtualAddress, Vrid,
//! };
//!
//! /// The interface index both routers run on.
//! const IFINDEX: u32 = 1;
//! const LATENCY: Duration = Duration::from_micros(100);
//!
//! struct Host {
//!     name: &'static str,
//!     address: IpAddr,
//!     router: Router,
//! }
//!
//! /// A packet on its way.
//! struct Frame {
//!     arrives: Timestamp,
//!     to: usize,
//!     meta: RxMeta,
//!     bytes: Vec<u8>,
//! }
//!
//! fn host(name: &'static str, address: &str, priority: u8) -> Host {
//!     let address: IpAddr = address.parse().unwrap();
//!     let config = InstanceConfig::new(Vrid::new(1).unwrap(), Version::V3, address)
//!         .with_priority(Priority::new(priority))
//!         .with_address(VirtualAddress::host("192.0.2.100".parse().unwrap()));
//!     let mut router = Router::new();
//!     router.add_instance(IFINDEX, config).unwrap();
//!     Host { name, address, router }
//! }
//!
//! /// Runs the loop until `end`; returns the state changes it saw.
//! fn run(hosts: &mut [Host], wire: &mut VecDeque<Frame>, now: &mut Timestamp, end: Timestamp)
//!     -> Vec<(Timestamp, &'static str, State)>
//! {
//!     let mut changes = Vec::new();
//!     let mut buf = [0u8; MAX_PACKET_LEN];
//!     loop {
//!         // 1. Drain every router's outputs, in order.
//!         for i in 0..hosts.len() {
//!             while let Some((id, output)) = hosts[i].router.poll_output() {
//!                 match output {
//!                     Output::Transmit(t) => {
//!                         let len = hosts[i].router.encode(id, &t, &mut buf).unwrap();
//!                         // Multicast: everyone else on the link hears it.
//!                         for to in (0..hosts.len()).filter(|to| *to != i) {
//!                             wire.push_back(Frame {
//!                                 arrives: *now + LATENCY,
//!                                 to,
//!                                 meta: RxMeta {
//!                                     src: hosts[i].address,
//!                                     dst: t.destination,
//!                                     ttl: Some(REQUIRED_TTL),
//!                                 },
//!                                 bytes: buf[..len].to_vec(),
//!                             });
//!                         }
//!                     }
//!                     Output::StateChanged { to, .. } => changes.push((*now, hosts[i].name, to)),
//!                     // The rest: add or remove the virtual addresses
//!                     // (netlink), announce them (gratuitous ARP / NA),
//!                     // report a new effective priority.
//!                     _ => {}
//!                 }
//!             }
//!         }
//!         // 2. Wait for whatever comes first: a packet or a deadline. The
//!         //    wire is in arrival order, since every frame takes LATENCY.
//!         let packet = wire.front().map(|f| f.arrives);
//!         let deadline = hosts.iter().filter_map(|h| h.router.poll_timeout()).min();
//!         let Some(next) = packet.into_iter().chain(deadline).min() else { break };
//!         if next > end {
//!             break;
//!         }
//!         *now = next;
//!         // 3. Feed it in.
//!         if packet == Some(next) {
//!             let f = wire.pop_front().unwrap();
//!             // Err(reason) means dropped and counted: nothing to do.
//!             let _ = hosts[f.to].router.handle_packet(*now, IFINDEX, &f.meta, &f.bytes);
//!         } else {
//!             for h in hosts.iter_mut() {
//!                 h.router.handle_timeout(*now);
//!             }
//!         }
//!     }
//!     *now = end;
//!     changes
//! }
//!
//! let mut hosts = [host("a", "192.0.2.1", 200), host("b", "192.0.2.2", 100)];
//! let mut wire = VecDeque::new();
//! let mut now = Timestamp::ZERO;
//! for h in &mut hosts {
//!     h.router.handle_startup(now);
//! }
//! let changes = run(&mut hosts, &mut wire, &mut now, Timestamp::from_secs(10));
//! // Both start as Backup; a's Master_Down_Interval (3 s + 56/256 s) runs
//! // out first and b hears a's first advertisement 100 µs later.
//! let a_master = Timestamp::from_nanos(3_218_750_000);
//! assert_eq!(changes, [
//!     (Timestamp::ZERO, "a", State::Backup),
//!     (Timestamp::ZERO, "b", State::Backup),
//!     (a_master, "a", State::Master),
//! ]);
//! let b = hosts[1].router.instances().next().unwrap().1;
//! assert_eq!(b.master_address(), Some(hosts[0].address));
//! assert_eq!(b.statistics().rcvd_advertisements, 7);
//!
//! // a shuts down: it advertises priority 0, and b takes over after its
//! // Skew_Time (156/256 of a's 1 s interval) instead of Master_Down_Interval.
//! let stop = now;
//! hosts[0].router.handle_shutdown(now);
//! let changes = run(&mut hosts, &mut wire, &mut now, Timestamp::from_secs(12));
//! let skew = Duration::from_nanos(156 * 1_000_000_000 / 256);
//! assert_eq!(changes, [
//!     (stop, "a", State::Initialize),
//!     (stop + LATENCY + skew, "b", State::Master),
//! ]);
//! ```
