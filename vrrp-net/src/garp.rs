//! Gratuitous ARP and unsolicited IPv6 neighbour advertisements, sent as
//! whole Ethernet frames on an `AF_PACKET` socket so that they leave from
//! the interface's MAC address whatever the routing says (RFC 5798 6.4.2:
//! a new master announces each IPv4 virtual address with a gratuitous ARP
//! and each IPv6 one with an unsolicited neighbour advertisement).
//!
//! The frame builders are pure functions, usable and testable on their
//! own; [`AnnounceSocket`] sends them.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use etherparse::icmpv6::NeighborAdvertisementHeader;
use etherparse::{ArpEthIpv4Packet, ArpOperation, EtherType, Icmpv6Type, PacketBuilder};
use nix::sys::socket::{self, MsgFlags};
use socket2::{Domain, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Ethernet broadcast address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// IPv6 all-nodes multicast address, destination of unsolicited neighbour
/// advertisements (RFC 4861 7.2.6).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Ethernet address of [`ALL_NODES`] (RFC 2464 7).
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
/// Shortest Ethernet frame without FCS; shorter frames are zero-padded.
const MIN_FRAME_LEN: usize = 60;
const NDP_OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;

/// Errors of [`AnnounceSocket`] and the frame builders.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GarpError {
    /// Creating or configuring the packet socket failed.
    #[error("{what}: {error}")]
    Setup {
        /// The step that failed.
        what: &'static str,
        /// OS error.
        error: io::Error,
    },
    /// Sending a frame failed.
    #[error("send announcement for {addr}: {error}")]
    Send {
        /// The address being announced.
        addr: IpAddr,
        /// OS error.
        error: io::Error,
    },
    /// Building a frame failed (should not happen for valid addresses).
    #[error("build frame: {0}")]
    Build(String),
}

/// Builds a gratuitous ARP request for `addr` from `mac`: Ethernet
/// broadcast, sender and target protocol address both `addr`, sender
/// hardware address `mac`, target hardware address broadcast (as
/// keepalived and `arping -U` send it). Padded to 60 bytes.
#[must_use]
pub fn gratuitous_arp_frame(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: mac,
        sender_ipv4: addr.octets(),
        target_mac: BROADCAST_MAC,
        target_ipv4: addr.octets(),
    };
    let mut frame = Vec::with_capacity(MIN_FRAME_LEN);
    frame.extend_from_slice(&BROADCAST_MAC);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&EtherType::ARP.0.to_be_bytes());
    frame.extend_from_slice(&arp.to_bytes());
    frame.resize(MIN_FRAME_LEN.max(frame.len()), 0);
    frame
}

/// Builds an unsolicited neighbour advertisement for `target` from `mac`
/// (RFC 4861 4.4, 7.2.6): Ethernet to 33:33:00:00:00:01, IPv6 from
/// `target` to ff02::1 with hop limit 255, Override flag set, Router flag
/// as given, a Target Link-Layer Address option carrying `mac`, ICMPv6
/// checksum computed.
pub fn unsolicited_na_frame(
    mac: [u8; 6],
    target: Ipv6Addr,
    router: bool,
) -> Result<Vec<u8>, GarpError> {
    let header = NeighborAdvertisementHeader {
        router,
        solicited: false,
        r#override: true,
    };
    let builder = PacketBuilder::ethernet2(mac, ALL_NODES_MAC)
        .ipv6(target.octets(), ALL_NODES.octets(), 255)
        .icmpv6(Icmpv6Type::NeighborAdvertisement(header));
    let mut payload = Vec::with_capacity(24);
    payload.extend_from_slice(&target.octets());
    payload.extend_from_slice(&[NDP_OPTION_TARGET_LINK_LAYER_ADDRESS, 1]);
    payload.extend_from_slice(&mac);
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut frame, &payload)
        .map_err(|e| GarpError::Build(e.to_string()))?;
    Ok(frame)
}

/// An `AF_PACKET` socket sending announcement frames out of one interface.
/// Receives nothing (protocol 0).
#[derive(Debug)]
pub struct AnnounceSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
    mac: [u8; 6],
    router: bool,
}

impl AnnounceSocket {
    /// Opens the socket for interface `ifindex` whose hardware address is
    /// `mac` (see [`crate::link::link_by_index`]). Must be called inside a
    /// tokio runtime, on a thread in the interface's network namespace.
    pub fn open(ifindex: u32, mac: [u8; 6]) -> Result<Self, GarpError> {
        // Protocol 0: a send-only packet socket, so no frame is queued to it.
        let socket =
            Socket::new(Domain::PACKET, Type::RAW, None).map_err(|error| GarpError::Setup {
                what: "socket(AF_PACKET)",
                error,
            })?;
        socket
            .set_nonblocking(true)
            .map_err(|error| GarpError::Setup {
                what: "O_NONBLOCK",
                error,
            })?;
        let fd = crate::sys::register(socket).map_err(|error| GarpError::Setup {
            what: "tokio register",
            error,
        })?;
        Ok(Self {
            fd,
            ifindex,
            mac,
            router: false,
        })
    }

    /// Sets the Router flag of neighbour advertisements (set it when this
    /// node forwards IPv6, as keepalived does).
    pub fn set_router(&mut self, router: bool) {
        self.router = router;
    }

    /// The interface index.
    #[must_use]
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The source hardware address.
    #[must_use]
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Sends one announcement for `addr`: a gratuitous ARP for IPv4, an
    /// unsolicited neighbour advertisement for IPv6.
    pub async fn announce(&self, addr: IpAddr) -> Result<(), GarpError> {
        let (frame, ethertype, dst_mac) = match addr {
            IpAddr::V4(v4) => (
                gratuitous_arp_frame(self.mac, v4),
                EtherType::ARP.0,
                BROADCAST_MAC,
            ),
            IpAddr::V6(v6) => (
                unsolicited_na_frame(self.mac, v6, self.router)?,
                EtherType::IPV6.0,
                ALL_NODES_MAC,
            ),
        };
        let dst = crate::sys::link_addr(self.ifindex, ethertype, dst_mac)
            .map_err(|error| GarpError::Send { addr, error })?;
        self.fd
            .async_io(Interest::WRITABLE, |sock| {
                socket::sendto(sock.as_raw_fd(), &frame, &dst, MsgFlags::MSG_DONTWAIT)
                    .map_err(io::Error::from)
            })
            .await
            .map(|_| ())
            .map_err(|error| GarpError::Send { addr, error })
    }

    /// Announces every address of `addrs` once, in order. Stops at the
    /// first error.
    pub async fn announce_all(&self, addrs: &[IpAddr]) -> Result<(), GarpError> {
        for addr in addrs {
            self.announce(*addr).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    const MAC: [u8; 6] = [0x02, 0, 0x5e, 0, 1, 51];

    #[test]
    fn arp_frame_is_gratuitous() {
        let vip = Ipv4Addr::new(192, 0, 2, 100);
        let frame = gratuitous_arp_frame(MAC, vip);
        assert_eq!(frame.len(), 60);
        let sliced = SlicedPacket::from_ethernet(&frame);
        let Ok(sliced) = sliced else {
            panic!("unparseable ARP frame");
        };
        let Some(NetSlice::Arp(arp)) = sliced.net else {
            panic!("not ARP");
        };
        assert_eq!(arp.operation(), ArpOperation::REQUEST);
        assert_eq!(arp.sender_hw_addr(), MAC);
        assert_eq!(arp.sender_protocol_addr(), vip.octets());
        assert_eq!(arp.target_protocol_addr(), vip.octets());
    }

    #[test]
    fn na_frame_has_flags_option_and_checksum() {
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let frame = unsolicited_na_frame(MAC, vip, false);
        let Ok(frame) = frame else {
            panic!("build failed");
        };
        let Ok(sliced) = SlicedPacket::from_ethernet(&frame) else {
            panic!("unparseable NA frame");
        };
        let Some(NetSlice::Ipv6(ip)) = &sliced.net else {
            panic!("not IPv6");
        };
        assert_eq!(ip.header().hop_limit(), 255);
        assert_eq!(ip.header().destination_addr(), ALL_NODES);
        let Some(TransportSlice::Icmpv6(icmp)) = &sliced.transport else {
            panic!("not ICMPv6");
        };
        assert!(icmp.is_checksum_valid(vip.octets(), ALL_NODES.octets()));
        let Icmpv6Type::NeighborAdvertisement(flags) = icmp.icmp_type() else {
            panic!("not an NA");
        };
        assert!(flags.r#override && !flags.solicited && !flags.router);
        let payload = icmp.payload();
        assert_eq!(&payload[..16], &vip.octets());
        assert_eq!(&payload[16..18], &[2, 1]);
        assert_eq!(&payload[18..24], &MAC);
    }
}
