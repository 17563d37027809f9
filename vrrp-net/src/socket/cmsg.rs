//! The system calls of a socket with their ancillary data: packet info
//! (source, interface) on every send, `sendmmsg` batches, and what
//! `recvmsg` / `recvmmsg` say of each datagram (destination, interface, TTL, kernel
//! timestamp, drops).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    self, ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6,
    SockaddrStorage,
};
use socket2::Socket;

/// Metadata of one datagram, extracted before the buffer is borrowed again.
pub(super) struct RawMeta {
    pub(super) len: usize,
    pub(super) truncated: bool,
    pub(super) src: Option<IpAddr>,
    pub(super) pktinfo_dst: Option<IpAddr>,
    pub(super) ifindex: Option<u32>,
    pub(super) ttl: Option<u8>,
    pub(super) received: Option<std::time::SystemTime>,
    pub(super) kernel_drops: Option<u32>,
}

pub(super) fn send_once(
    sock: &Socket,
    ifindex: u32,
    source: Option<IpAddr>,
    payload: &[u8],
    dst: IpAddr,
) -> io::Result<usize> {
    let fd = sock.as_raw_fd();
    let iov = [IoSlice::new(payload)];
    let result = match dst {
        IpAddr::V4(dst) => {
            let info = pktinfo_v4(ifindex, source);
            let cmsgs = [ControlMessage::Ipv4PacketInfo(&info)];
            let addr = SockaddrIn::from(SocketAddrV4::new(dst, 0));
            socket::sendmsg(fd, &iov, &cmsgs, MsgFlags::MSG_DONTWAIT, Some(&addr))
        }
        IpAddr::V6(dst) => {
            let info = pktinfo_v6(ifindex, source);
            let cmsgs = [ControlMessage::Ipv6PacketInfo(&info)];
            let addr = sockaddr_v6(dst, ifindex);
            socket::sendmsg(fd, &iov, &cmsgs, MsgFlags::MSG_DONTWAIT, Some(&addr))
        }
    };
    result.map_err(io::Error::from)
}

/// One `sendmmsg` call for `chunk` (all of the socket's family, at most
/// [`MAX_BATCH`]): the number of datagrams the kernel took.
pub(super) fn send_many(
    sock: &Socket,
    ifindex: u32,
    source: Option<IpAddr>,
    chunk: &[(&[u8], IpAddr)],
) -> io::Result<usize> {
    let fd = sock.as_raw_fd();
    let iovs: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(p, _)| [IoSlice::new(p)]).collect();
    let sent = if chunk.iter().all(|(_, d)| d.is_ipv4()) {
        let info = pktinfo_v4(ifindex, source);
        let cmsgs = [ControlMessage::Ipv4PacketInfo(&info)];
        let addrs: Vec<Option<SockaddrIn>> = chunk
            .iter()
            .map(|(_, d)| match d {
                IpAddr::V4(d) => Some(SockaddrIn::from(SocketAddrV4::new(*d, 0))),
                IpAddr::V6(_) => None,
            })
            .collect();
        let mut headers =
            MultiHeaders::preallocate(chunk.len(), Some(nix::cmsg_space!(libc::in_pktinfo)));
        socket::sendmmsg(
            fd,
            &mut headers,
            &iovs,
            &addrs,
            cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )?
        .count()
    } else {
        let info = pktinfo_v6(ifindex, source);
        let cmsgs = [ControlMessage::Ipv6PacketInfo(&info)];
        let addrs: Vec<Option<SockaddrIn6>> = chunk
            .iter()
            .map(|(_, d)| match d {
                IpAddr::V6(d) => Some(sockaddr_v6(*d, ifindex)),
                IpAddr::V4(_) => None,
            })
            .collect();
        let mut headers =
            MultiHeaders::preallocate(chunk.len(), Some(nix::cmsg_space!(libc::in6_pktinfo)));
        socket::sendmmsg(
            fd,
            &mut headers,
            &iovs,
            &addrs,
            cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )?
        .count()
    };
    Ok(sent)
}

/// The IPv4 packet info of every send: out of `ifindex`, from `source`.
/// RFC 5798 5.1.1.1: the source is the primary address of the interface;
/// `ipi_spec_dst` sets it without bind(), which on a raw socket would also
/// filter what we receive.
fn pktinfo_v4(ifindex: u32, source: Option<IpAddr>) -> libc::in_pktinfo {
    let spec_dst = match source {
        Some(IpAddr::V4(src)) => src,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    libc::in_pktinfo {
        ipi_ifindex: i32::try_from(ifindex).unwrap_or(0),
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from_ne_bytes(spec_dst.octets()),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    }
}

/// The IPv6 packet info of every send: out of `ifindex`, from `source`.
/// RFC 5798 5.1.2.1: the source is the link-local address of the
/// interface.
fn pktinfo_v6(ifindex: u32, source: Option<IpAddr>) -> libc::in6_pktinfo {
    let src = match source {
        Some(IpAddr::V6(src)) => src,
        _ => Ipv6Addr::UNSPECIFIED,
    };
    libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: src.octets(),
        },
        ipi6_ifindex: ifindex,
    }
}

/// An IPv6 destination, scoped to `ifindex` when it needs a scope.
fn sockaddr_v6(dst: Ipv6Addr, ifindex: u32) -> SockaddrIn6 {
    let scope = if needs_scope(dst) { ifindex } else { 0 };
    SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, scope))
}

/// Link-local unicast and link- or interface-scope multicast destinations
/// need the interface as scope id.
fn needs_scope(dst: Ipv6Addr) -> bool {
    let seg0 = dst.segments()[0];
    (seg0 & 0xffc0) == 0xfe80 || (dst.is_multicast() && (seg0 & 0x000f) <= 2)
}

/// The control buffer of one received datagram: room for packet info,
/// TTL, drops and the kernel timestamp.
fn recv_cmsg_space() -> Vec<u8> {
    nix::cmsg_space!(
        libc::in6_pktinfo,
        libc::c_int,
        libc::c_int,
        nix::sys::time::TimeSpec
    )
}

pub(super) fn recv_once(sock: &Socket, buf: &mut [u8]) -> io::Result<RawMeta> {
    let fd = sock.as_raw_fd();
    let mut cmsg_buf = recv_cmsg_space();
    let mut iov = [IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<SockaddrStorage>(
        fd,
        &mut iov,
        Some(&mut cmsg_buf),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    Ok(meta_of(&msg))
}

/// The datagram buffers of [`recv_many`], allocated once.
pub(super) struct RecvSpace {
    bufs: Vec<u8>,
    slot: usize,
}

impl std::fmt::Debug for RecvSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvSpace")
            .field("datagrams", &self.datagrams())
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl RecvSpace {
    /// Room for `datagrams` datagrams of at most `slot` bytes each.
    pub(super) fn new(datagrams: usize, slot: usize) -> Self {
        let datagrams = datagrams.max(1);
        RecvSpace {
            bufs: vec![0; datagrams * slot],
            slot,
        }
    }

    pub(super) fn datagrams(&self) -> usize {
        self.bufs.len() / self.slot.max(1)
    }
}

/// One `recvmmsg` call without waiting for at most `max` datagrams (and
/// at most what `space` holds): calls `each` with every datagram's
/// metadata and bytes, and returns how many there were (an error, such as
/// `WouldBlock`, when there were none).
pub(super) fn recv_many(
    sock: &Socket,
    space: &mut RecvSpace,
    max: usize,
    mut each: impl FnMut(&RawMeta, &[u8]),
) -> io::Result<usize> {
    let fd = sock.as_raw_fd();
    let slot = space.slot.max(1);
    let max = max.clamp(1, space.datagrams().max(1));
    // Fresh headers every call: the kernel shrinks each header's control
    // length to what it wrote, and nix does not restore it, so reused
    // headers would truncate a later datagram's longer ancillary data.
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(max, Some(recv_cmsg_space()));
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = space
        .bufs
        .chunks_mut(slot)
        .take(max)
        .map(|c| [IoSliceMut::new(c)])
        .collect();
    let results = socket::recvmmsg(
        fd,
        &mut headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    let mut n = 0;
    for msg in results {
        let mut meta = meta_of(&msg);
        let data = msg.iovs().next().unwrap_or_default();
        meta.len = meta.len.min(data.len());
        each(&meta, data);
        n += 1;
    }
    Ok(n)
}

/// What the kernel said of one received datagram.
fn meta_of(msg: &socket::RecvMsg<'_, '_, SockaddrStorage>) -> RawMeta {
    let mut meta = RawMeta {
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        src: msg.address.as_ref().and_then(storage_ip),
        pktinfo_dst: None,
        ifindex: None,
        ttl: None,
        received: None,
        kernel_drops: None,
    };
    // A truncated control buffer (MSG_CTRUNC) leaves metadata unknown; the
    // parser then drops IPv6 packets without destination.
    if let Ok(cmsgs) = msg.cmsgs() {
        for cmsg in cmsgs {
            match cmsg {
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    meta.ifindex = u32::try_from(info.ipi_ifindex).ok();
                    meta.pktinfo_dst = Some(IpAddr::V4(Ipv4Addr::from(
                        info.ipi_addr.s_addr.to_ne_bytes(),
                    )));
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    meta.ifindex = Some(info.ipi6_ifindex);
                    meta.pktinfo_dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                }
                ControlMessageOwned::Ipv4Ttl(ttl) | ControlMessageOwned::Ipv6HopLimit(ttl) => {
                    meta.ttl = u8::try_from(ttl).ok();
                }
                ControlMessageOwned::RxqOvfl(dropped) => meta.kernel_drops = Some(dropped),
                ControlMessageOwned::ScmTimestampns(ts) => {
                    meta.received =
                        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from(ts));
                }
                _ => {}
            }
        }
    }
    meta
}

fn storage_ip(storage: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    storage.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_needed_for_link_local_and_link_multicast() {
        assert!(needs_scope(vrrp_core::wire::MULTICAST_V6));
        assert!(needs_scope(
            "fe80::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
        ));
        assert!(!needs_scope(
            "2001:db8::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
        ));
        assert!(!needs_scope(
            "ff05::12".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
        ));
    }
}
