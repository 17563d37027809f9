//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the
//! parsers of what the kernel hands over, without the sockets. Not a
//! public API: each function is a thin adapter over one internal one.

use std::net::IpAddr;
use std::ops::Range;

use crate::addr::IfAddr;
use crate::link::LinkInfo;
use crate::socket::Family;

/// What `recvmsg` reported besides the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramMeta {
    /// Bytes received.
    pub len: usize,
    /// Source address (`msg_name`).
    pub src: Option<IpAddr>,
    /// Destination from `IP_PKTINFO` / `IPV6_PKTINFO`.
    pub pktinfo_dst: Option<IpAddr>,
    /// Interface from the packet info.
    pub ifindex: Option<u32>,
    /// TTL / hop limit from the control messages.
    pub ttl: Option<u8>,
}

/// A datagram the socket accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDatagram {
    /// Where the VRRP payload lies in the buffer.
    pub payload: Range<usize>,
    /// Receiving interface.
    pub ifindex: u32,
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// TTL / hop limit, when known.
    pub ttl: Option<u8>,
}

/// The raw socket's parser: `None` for a datagram it counts as malformed.
pub fn parse_datagram(
    family: Family,
    default_ifindex: u32,
    meta: &DatagramMeta,
    buf: &[u8],
) -> Option<ParsedDatagram> {
    crate::socket::parse_datagram_for_fuzzing(family, default_ifindex, meta, buf)
}

/// An `RTM_NEWLINK` / `RTM_DELLINK` payload.
pub fn parse_link(payload: &[u8]) -> Option<LinkInfo> {
    LinkInfo::parse(payload)
}

/// An `RTM_NEWADDR` / `RTM_DELADDR` payload.
pub fn parse_addr(payload: &[u8]) -> Option<IfAddr> {
    IfAddr::parse(payload)
}

/// The route attributes (`struct rtattr`) in `bytes`, flags stripped from
/// their types.
pub fn route_attributes(bytes: &[u8]) -> Vec<(u16, &[u8])> {
    crate::netlink::attributes(bytes).collect()
}
