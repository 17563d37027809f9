//! Linux I/O building blocks for VRRP.
//!
//! This crate holds no protocol logic: the protocol engine (`vrrp-core`)
//! produces VRRP payloads and consumes received ones; the modules here move
//! them and carry out the engine's side effects.
//!
//! * [`socket`]: raw IP protocol 112 sockets (IPv4 and IPv6), multicast and
//!   unicast, with source / destination / interface / TTL of each packet.
//! * [`addr`]: add, remove and list interface addresses through rtnetlink.
//! * [`garp`]: gratuitous ARP and unsolicited IPv6 neighbour advertisements.
//! * [`link`]: interface lookups and link / address change events.
//! * [`driver`]: runs a `vrrp_core::Router` on all of the above, and keeps
//!   the kernel's addresses as its instances need them: a sans-IO policy
//!   core ([`driver::core::DriverCore`], unit-tested in simulated time) in
//!   a thin tokio shell on a thread of its own.
//! * `testnet` (feature `testnet`): namespace LANs and a keepalived
//!   launcher for integration tests.
//!
//! Every socket is created in the network namespace of the calling thread,
//! and must be created inside a tokio runtime with I/O enabled.
//!
//! ```no_run
//! use vrrp_net::socket::{Family, SocketConfig, VrrpSocket, RECV_BUFFER_LEN};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SocketConfig::new("eth0", Family::Ipv4)
//!     .with_source("192.0.2.1".parse()?);
//! let socket = VrrpSocket::open(&config)?;
//! // A VRRPv3 advertisement produced by the engine (checksum included).
//! let advert = [0x31, 51, 100, 1, 0, 100, 0, 0, 192, 0, 2, 100];
//! socket.send_to(&advert, vrrp_core::wire::multicast_group(Family::Ipv4)).await?;
//! let mut buf = vec![0; RECV_BUFFER_LEN];
//! let packet = socket.recv(&mut buf).await?;
//! println!("{} -> {} ttl {:?}: {} bytes", packet.src, packet.dst, packet.ttl, packet.payload.len());
//! # Ok(())
//! # }
//! ```

pub mod addr;
pub mod driver;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod garp;
pub mod link;
mod netlink;
pub mod socket;
mod sys;
#[cfg(feature = "testnet")]
pub mod testnet;
mod timer;

pub use netlink::NetlinkError;
