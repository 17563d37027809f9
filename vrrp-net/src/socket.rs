//! Raw IP protocol 112 sockets carrying VRRP advertisements.
//!
//! One [`VrrpSocket`] serves one (interface, address family) pair and is
//! meant to be shared by every VRRP instance on that interface: it joins
//! the VRRP multicast group on the interface, is bound to the device, sends
//! with TTL / hop limit 255 (RFC 5798 5.1.1.3, 5.1.2.3) and multicast loop
//! off, and reports for every received packet its source, destination,
//! receiving interface and TTL / hop limit.
//!
//! The socket moves VRRP payloads only (the VRRP header and what follows):
//! for IPv4 the IP header the kernel hands to raw sockets is stripped on
//! receive, and the kernel builds it on send. The VRRPv3 checksum covers
//! an IP pseudo-header (RFC 5798 5.2.8), so the caller computes it and
//! must use [`VrrpSocket::source`] as the source address; the socket does
//! not set `IPV6_CHECKSUM`.
//!
//! Packets that cannot be parsed (truncated, bad IPv4 header, missing
//! ancillary data) are dropped and counted in [`SocketStats`], never
//! returned as errors: an error from [`VrrpSocket::recv`] or
//! [`VrrpSocket::send_to`] is an operating-system error on the socket.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use etherparse::{IpNumber, Ipv4HeaderSlice};
use nix::sys::socket::{
    self, ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6,
    SockaddrStorage, sockopt,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// IP protocol number of VRRP (RFC 5798 5.1.1.4, 5.1.2.4).
pub const VRRP_PROTOCOL: u8 = 112;
/// IPv4 multicast group of VRRP advertisements (RFC 5798 5.1.1.2).
pub const VRRP_MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP advertisements (RFC 5798 5.1.2.2).
pub const VRRP_MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit of every VRRP advertisement (RFC 5798 5.1.1.3, 5.1.2.3).
pub const VRRP_TTL: u8 = 255;
/// Receive buffer size that holds any VRRP packet on a standard or jumbo
/// Ethernet link, IPv4 header included.
pub const RECV_BUFFER_LEN: usize = 9216;

/// The most datagrams one [`VrrpSocket::send_batch`] system call carries:
/// a whole interface of 255 VRIDs in one call.
pub const MAX_BATCH: usize = 256;

/// What [`VrrpSocket::send_batch`] did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Datagrams the kernel accepted.
    pub sent: usize,
    /// One error per datagram that was not sent.
    pub errors: Vec<SocketError>,
}

/// Address family of a [`VrrpSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// IPv4 (VRRPv2 or VRRPv3 over IPv4).
    V4,
    /// IPv6 (VRRPv3 over IPv6).
    V6,
}

impl Family {
    /// The family of `addr`.
    #[must_use]
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The VRRP multicast group of this family.
    #[must_use]
    pub fn multicast_group(self) -> IpAddr {
        match self {
            Self::V4 => IpAddr::V4(VRRP_MULTICAST_V4),
            Self::V6 => IpAddr::V6(VRRP_MULTICAST_V6),
        }
    }
}

/// How to open a [`VrrpSocket`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    /// Interface name (bound with `SO_BINDTODEVICE`).
    pub interface: String,
    /// Address family.
    pub family: Family,
    /// Source address of sent packets: for IPv4 the interface's primary
    /// address (or a configured one), for IPv6 the interface's link-local
    /// address. `None` lets the kernel choose, which makes the source
    /// unknown to the caller: set it whenever a checksum depends on it.
    pub source: Option<IpAddr>,
    /// Join the VRRP multicast group on the interface. Turn off for
    /// unicast-only operation.
    pub join_multicast: bool,
    /// Receive buffer size in bytes (`SO_RCVBUFFORCE`, falling back to
    /// `SO_RCVBUF`); `None` keeps the system default, which holds only
    /// about 190 advertisements.
    pub recv_buffer: Option<usize>,
}

impl SocketConfig {
    /// Multicast configuration for `interface` and `family`, source chosen
    /// by the kernel until [`VrrpSocket::set_source`] is called.
    #[must_use]
    pub fn new(interface: impl Into<String>, family: Family) -> Self {
        Self {
            interface: interface.into(),
            family,
            source: None,
            join_multicast: true,
            recv_buffer: None,
        }
    }

    /// Sets the source address.
    #[must_use]
    pub fn with_source(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// Sets the receive buffer size: enough for the bursts of every
    /// instance on the socket (many instances at a short interval send
    /// hundreds of advertisements in a burst).
    #[must_use]
    pub fn with_recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }

    /// Sets whether to join the VRRP multicast group.
    #[must_use]
    pub fn with_multicast(mut self, join: bool) -> Self {
        self.join_multicast = join;
        self
    }
}

/// Errors of [`VrrpSocket`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The interface does not exist (in this thread's network namespace).
    #[error("interface {name:?} not found: {source}")]
    NoSuchInterface {
        /// Interface name looked up.
        name: String,
        /// Lookup error.
        source: nix::Error,
    },
    /// The interface name is empty or longer than the kernel allows.
    #[error("invalid interface name {0:?}")]
    InvalidInterfaceName(String),
    /// An address of the other family was given (source or destination).
    #[error("address {addr} does not match the socket family {family:?}")]
    FamilyMismatch {
        /// The offending address.
        addr: IpAddr,
        /// The socket's family.
        family: Family,
    },
    /// Creating or configuring the socket failed.
    #[error("{what}: {source}")]
    Setup {
        /// The step that failed.
        what: &'static str,
        /// OS error.
        source: io::Error,
    },
    /// Sending failed.
    #[error("send to {dst}: {source}")]
    Send {
        /// Destination of the failed send.
        dst: IpAddr,
        /// OS error.
        source: io::Error,
    },
    /// Receiving failed.
    #[error("receive: {0}")]
    Recv(io::Error),
}

impl SocketError {
    fn setup(what: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Setup { what, source }
    }
}

/// One received VRRP packet: the VRRP payload and what the IP layer said
/// about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxPacket<'a> {
    /// Interface index the packet arrived on.
    pub ifindex: u32,
    /// IP source address.
    pub src: IpAddr,
    /// IP destination address (the multicast group or a local unicast
    /// address).
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6); `None` if the kernel did not say.
    pub ttl: Option<u8>,
    /// The VRRP payload: from the VRRP version/type octet to the end of the
    /// IP payload, IP header removed.
    pub payload: &'a [u8],
    /// When the kernel received it (`SO_TIMESTAMPNS`, wall clock), so
    /// that timers can run from the arrival rather than from when a busy
    /// process got round to reading it.
    pub received: Option<std::time::SystemTime>,
}

/// Counters of a [`VrrpSocket`] (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Packets returned by [`VrrpSocket::recv`].
    pub received: u64,
    /// Packets dropped because they did not fit the receive buffer.
    pub truncated: u64,
    /// Packets dropped because the IPv4 header or ancillary data was bad
    /// or missing.
    pub malformed: u64,
    /// Packets sent.
    pub sent: u64,
    /// Send attempts that failed.
    pub send_errors: u64,
    /// Packets the kernel dropped because the receive buffer was full
    /// (`SO_RXQ_OVFL`), as of the last packet received.
    pub kernel_drops: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    truncated: AtomicU64,
    malformed: AtomicU64,
    sent: AtomicU64,
    send_errors: AtomicU64,
    kernel_drops: AtomicU64,
}

/// A raw IP protocol 112 socket on one interface and family, driven by
/// tokio. All methods take `&self`, so one socket can be shared (e.g. in an
/// `Arc`) by a receive task and many sending instances.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    family: Family,
    interface: String,
    ifindex: u32,
    source: Mutex<Option<IpAddr>>,
    counters: Counters,
}

/// Metadata of one datagram, extracted before the buffer is borrowed again.
struct RawMeta {
    len: usize,
    truncated: bool,
    src: Option<IpAddr>,
    pktinfo_dst: Option<IpAddr>,
    ifindex: Option<u32>,
    ttl: Option<u8>,
    received: Option<std::time::SystemTime>,
    kernel_drops: Option<u32>,
}

/// Looks up the index of `name` in the calling thread's network namespace.
pub fn interface_index(name: &str) -> Result<u32, SocketError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(SocketError::InvalidInterfaceName(name.to_owned()));
    }
    nix::net::if_::if_nametoindex(name).map_err(|source| SocketError::NoSuchInterface {
        name: name.to_owned(),
        source,
    })
}

impl VrrpSocket {
    /// Opens and configures the socket. Must be called inside a tokio
    /// runtime with I/O enabled, on a thread in the interface's network
    /// namespace.
    pub fn open(config: &SocketConfig) -> Result<Self, SocketError> {
        let ifindex = interface_index(&config.interface)?;
        if let Some(source) = config.source {
            check_family(config.family, source)?;
        }
        let proto = Some(Protocol::from(i32::from(VRRP_PROTOCOL)));
        let socket = match config.family {
            Family::V4 => Socket::new(Domain::IPV4, Type::RAW, proto),
            Family::V6 => Socket::new(Domain::IPV6, Type::RAW, proto),
        }
        .map_err(SocketError::setup("socket(raw, 112)"))?;
        socket
            .bind_device(Some(config.interface.as_bytes()))
            .map_err(SocketError::setup("SO_BINDTODEVICE"))?;
        match config.family {
            Family::V4 => configure_v4(&socket, ifindex, config.join_multicast)?,
            Family::V6 => configure_v6(&socket, ifindex, config.join_multicast)?,
        }
        socket::setsockopt(&socket, sockopt::ReceiveTimestampns, &true).map_err(|e| {
            SocketError::Setup {
                what: "SO_TIMESTAMPNS",
                source: e.into(),
            }
        })?;
        socket::setsockopt(&socket, sockopt::RxqOvfl, &1).map_err(|e| SocketError::Setup {
            what: "SO_RXQ_OVFL",
            source: e.into(),
        })?;
        if let Some(bytes) = config.recv_buffer {
            // Beyond net.core.rmem_max only with CAP_NET_ADMIN, which a
            // VRRP daemon has; otherwise take what the system allows.
            if socket::setsockopt(&socket, sockopt::RcvBufForce, &bytes).is_err() {
                socket
                    .set_recv_buffer_size(bytes)
                    .map_err(SocketError::setup("SO_RCVBUF"))?;
            }
        }
        socket
            .set_nonblocking(true)
            .map_err(SocketError::setup("O_NONBLOCK"))?;
        let fd = crate::sys::register(socket).map_err(SocketError::setup("tokio register"))?;
        Ok(Self {
            fd,
            family: config.family,
            interface: config.interface.clone(),
            ifindex,
            source: Mutex::new(config.source),
            counters: Counters::default(),
        })
    }

    /// The socket's family.
    #[must_use]
    pub fn family(&self) -> Family {
        self.family
    }

    /// The interface name.
    #[must_use]
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The interface index (looked up at open).
    #[must_use]
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The source address of sent packets, if one is set. The VRRPv3
    /// checksum of an outgoing packet must be computed with this address.
    #[must_use]
    pub fn source(&self) -> Option<IpAddr> {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the source address (e.g. after the primary address of the
    /// interface changed).
    pub fn set_source(&self, source: Option<IpAddr>) -> Result<(), SocketError> {
        if let Some(addr) = source {
            check_family(self.family, addr)?;
        }
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = source;
        Ok(())
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> SocketStats {
        let c = &self.counters;
        SocketStats {
            received: c.received.load(Ordering::Relaxed),
            truncated: c.truncated.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            send_errors: c.send_errors.load(Ordering::Relaxed),
            kernel_drops: c.kernel_drops.load(Ordering::Relaxed),
        }
    }

    /// Sends one VRRP payload to `dst` (the multicast group of the family,
    /// see [`Family::multicast_group`], or a unicast peer) out of the
    /// socket's interface, from [`Self::source`].
    pub async fn send_to(&self, payload: &[u8], dst: IpAddr) -> Result<(), SocketError> {
        check_family(self.family, dst)?;
        let source = self.source();
        let result = self
            .fd
            .async_io(Interest::WRITABLE, |sock| {
                send_once(sock, self.ifindex, source, payload, dst)
            })
            .await;
        match result {
            Ok(_) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(source) => {
                self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                Err(SocketError::Send { dst, source })
            }
        }
    }

    /// Sends several VRRP payloads, each to its destination, in as few
    /// system calls as the kernel allows (`sendmmsg`, at most
    /// [`MAX_BATCH`] datagrams per call), from [`Self::source`] like
    /// [`Self::send_to`]. A datagram that fails is reported in the outcome
    /// and the rest of the batch still goes out.
    pub async fn send_batch(&self, batch: &[(&[u8], IpAddr)]) -> BatchOutcome {
        let source = self.source();
        let mut outcome = BatchOutcome::default();
        let mut pos = 0;
        while let Some(&(_, dst)) = batch.get(pos) {
            if let Err(e) = check_family(self.family, dst) {
                self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                outcome.errors.push(e);
                pos += 1;
                continue;
            }
            let run = batch[pos..]
                .iter()
                .take(MAX_BATCH)
                .take_while(|(_, d)| Family::of(*d) == self.family)
                .count();
            let chunk = &batch[pos..pos + run];
            let result = self
                .fd
                .async_io(Interest::WRITABLE, |sock| {
                    send_many(sock, self.ifindex, source, chunk)
                })
                .await;
            match result {
                Ok(sent) if sent > 0 => {
                    self.counters.sent.fetch_add(sent as u64, Ordering::Relaxed);
                    outcome.sent += sent;
                    pos += sent;
                }
                // The first datagram of the chunk failed (or, never seen,
                // nothing was taken): report it and go on with the next.
                other => {
                    let source = other.err().unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::WriteZero, "sendmmsg sent nothing")
                    });
                    self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    outcome.errors.push(SocketError::Send { dst, source });
                    pos += 1;
                }
            }
        }
        outcome
    }

    /// Waits for the next well-formed VRRP packet and returns it, its
    /// payload borrowed from `buf` (use [`RECV_BUFFER_LEN`] bytes).
    /// Malformed and truncated packets are counted and skipped.
    pub async fn recv<'b>(&self, buf: &'b mut [u8]) -> Result<RxPacket<'b>, SocketError> {
        loop {
            let meta = self
                .fd
                .async_io(Interest::READABLE, |sock| recv_once(sock, buf))
                .await
                .map_err(SocketError::Recv)?;
            if let Some(range) = self.accept(&meta, buf) {
                return Ok(self.packet(&meta, range, buf));
            }
        }
    }

    /// Like [`VrrpSocket::recv`] without waiting: `None` when nothing is
    /// queued. Lets a caller empty the socket before acting on a timer, so
    /// that an advertisement that already arrived is not mistaken for a
    /// silent master.
    pub fn try_recv<'b>(&self, buf: &'b mut [u8]) -> Result<Option<RxPacket<'b>>, SocketError> {
        loop {
            let meta = match self
                .fd
                .try_io(Interest::READABLE, |sock| recv_once(sock, buf))
            {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(SocketError::Recv(e)),
            };
            if let Some(range) = self.accept(&meta, buf) {
                return Ok(Some(self.packet(&meta, range, buf)));
            }
        }
    }

    /// Counts a received datagram; the payload range if it is well formed.
    fn accept(&self, meta: &RawMeta, buf: &[u8]) -> Option<(std::ops::Range<usize>, Header)> {
        if let Some(dropped) = meta.kernel_drops {
            self.counters
                .kernel_drops
                .store(u64::from(dropped), Ordering::Relaxed);
        }
        if meta.truncated {
            self.counters.truncated.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let Some(parsed) = parse_datagram(self.family, self.ifindex, meta, buf) else {
            self.counters.malformed.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        Some(parsed)
    }

    fn packet<'b>(
        &self,
        meta: &RawMeta,
        (range, header): (std::ops::Range<usize>, Header),
        buf: &'b [u8],
    ) -> RxPacket<'b> {
        RxPacket {
            ifindex: header.ifindex,
            src: header.src,
            dst: header.dst,
            ttl: header.ttl,
            payload: buf.get(range).unwrap_or_default(),
            received: meta.received,
        }
    }
}

/// Works out where the VRRP payload lies in `buf` and the packet's
/// addresses, or `None` if the packet is malformed.
fn parse_datagram(
    family: Family,
    default_ifindex: u32,
    meta: &RawMeta,
    buf: &[u8],
) -> Option<(std::ops::Range<usize>, Header)> {
    let data = buf.get(..meta.len)?;
    let ifindex = meta.ifindex.unwrap_or(default_ifindex);
    match family {
        Family::V4 => {
            let ip = Ipv4HeaderSlice::from_slice(data).ok()?;
            if ip.protocol() != IpNumber(VRRP_PROTOCOL) {
                return None;
            }
            let header_len = ip.slice().len();
            // The kernel reassembles fragments before raw delivery, so
            // total length bounds the payload; never trust it beyond
            // what was received.
            let end = usize::from(ip.total_len()).min(data.len());
            if end < header_len {
                return None;
            }
            let header = Header {
                ifindex,
                src: IpAddr::V4(ip.source_addr()),
                dst: IpAddr::V4(ip.destination_addr()),
                ttl: meta.ttl.or(Some(ip.ttl())),
            };
            Some((header_len..end, header))
        }
        Family::V6 => {
            let header = Header {
                ifindex,
                src: meta.src?,
                dst: meta.pktinfo_dst?,
                ttl: meta.ttl,
            };
            Some((0..data.len(), header))
        }
    }
}

struct Header {
    ifindex: u32,
    src: IpAddr,
    dst: IpAddr,
    ttl: Option<u8>,
}

/// [`parse_datagram`] for the fuzz targets: the payload range and
/// (ifindex, source, destination, TTL) of a datagram received with the
/// given metadata.
#[cfg(feature = "fuzzing")]
#[allow(clippy::type_complexity)]
pub(crate) fn parse_datagram_for_fuzzing(
    family: Family,
    default_ifindex: u32,
    (len, src, pktinfo_dst, ifindex, ttl): (
        usize,
        Option<IpAddr>,
        Option<IpAddr>,
        Option<u32>,
        Option<u8>,
    ),
    buf: &[u8],
) -> Option<(std::ops::Range<usize>, (u32, IpAddr, IpAddr, Option<u8>))> {
    let meta = RawMeta {
        len,
        truncated: false,
        src,
        pktinfo_dst,
        ifindex,
        ttl,
        received: None,
        kernel_drops: None,
    };
    parse_datagram(family, default_ifindex, &meta, buf)
        .map(|(range, h)| (range, (h.ifindex, h.src, h.dst, h.ttl)))
}

fn check_family(family: Family, addr: IpAddr) -> Result<(), SocketError> {
    if Family::of(addr) == family {
        Ok(())
    } else {
        Err(SocketError::FamilyMismatch { addr, family })
    }
}

fn configure_v4(socket: &Socket, ifindex: u32, join: bool) -> Result<(), SocketError> {
    let ttl = u32::from(VRRP_TTL);
    socket
        .set_ttl_v4(ttl)
        .map_err(SocketError::setup("IP_TTL"))?;
    socket
        .set_multicast_ttl_v4(ttl)
        .map_err(SocketError::setup("IP_MULTICAST_TTL"))?;
    socket
        .set_multicast_loop_v4(false)
        .map_err(SocketError::setup("IP_MULTICAST_LOOP"))?;
    // Internetwork control precedence, as keepalived sends.
    socket
        .set_tos_v4(0xc0)
        .map_err(SocketError::setup("IP_TOS"))?;
    // The outgoing interface is fixed by SO_BINDTODEVICE and by the
    // `ipi_ifindex` of every send, so IP_MULTICAST_IF is not needed.
    // Only groups this socket joined, on this interface.
    socket
        .set_multicast_all_v4(false)
        .map_err(SocketError::setup("IP_MULTICAST_ALL"))?;
    socket::setsockopt(socket, sockopt::Ipv4PacketInfo, &true).map_err(|e| SocketError::Setup {
        what: "IP_PKTINFO",
        source: e.into(),
    })?;
    socket::setsockopt(socket, sockopt::Ipv4RecvTtl, &true).map_err(|e| SocketError::Setup {
        what: "IP_RECVTTL",
        source: e.into(),
    })?;
    if join {
        socket
            .join_multicast_v4_n(&VRRP_MULTICAST_V4, &InterfaceIndexOrAddress::Index(ifindex))
            .map_err(SocketError::setup("IP_ADD_MEMBERSHIP 224.0.0.18"))?;
    }
    Ok(())
}

fn configure_v6(socket: &Socket, ifindex: u32, join: bool) -> Result<(), SocketError> {
    let hops = u32::from(VRRP_TTL);
    socket
        .set_unicast_hops_v6(hops)
        .map_err(SocketError::setup("IPV6_UNICAST_HOPS"))?;
    socket
        .set_multicast_hops_v6(hops)
        .map_err(SocketError::setup("IPV6_MULTICAST_HOPS"))?;
    socket
        .set_multicast_loop_v6(false)
        .map_err(SocketError::setup("IPV6_MULTICAST_LOOP"))?;
    socket
        .set_tclass_v6(0xc0)
        .map_err(SocketError::setup("IPV6_TCLASS"))?;
    socket
        .set_multicast_if_v6(ifindex)
        .map_err(SocketError::setup("IPV6_MULTICAST_IF"))?;
    // IPV6_MULTICAST_ALL appeared in Linux 4.20; older kernels deliver every
    // joined group, which the device binding already narrows enough.
    if let Err(err) = socket.set_multicast_all_v6(false) {
        tracing::debug!(%err, "IPV6_MULTICAST_ALL not supported");
    }
    socket::setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(|e| {
        SocketError::Setup {
            what: "IPV6_RECVPKTINFO",
            source: e.into(),
        }
    })?;
    socket::setsockopt(socket, sockopt::Ipv6RecvHopLimit, &true).map_err(|e| {
        SocketError::Setup {
            what: "IPV6_RECVHOPLIMIT",
            source: e.into(),
        }
    })?;
    if join {
        socket
            .join_multicast_v6(&VRRP_MULTICAST_V6, ifindex)
            .map_err(SocketError::setup("IPV6_JOIN_GROUP ff02::12"))?;
    }
    Ok(())
}

fn send_once(
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
fn send_many(
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

fn recv_once(sock: &Socket, buf: &mut [u8]) -> io::Result<RawMeta> {
    let fd = sock.as_raw_fd();
    let mut cmsg_buf = nix::cmsg_space!(
        libc::in6_pktinfo,
        libc::c_int,
        libc::c_int,
        nix::sys::time::TimeSpec
    );
    let mut iov = [IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<SockaddrStorage>(
        fd,
        &mut iov,
        Some(&mut cmsg_buf),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
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
    Ok(meta)
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
        assert!(needs_scope(VRRP_MULTICAST_V6));
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

    #[test]
    fn family_of_and_group() {
        assert_eq!(Family::of(IpAddr::V4(VRRP_MULTICAST_V4)), Family::V4);
        assert_eq!(Family::V6.multicast_group(), IpAddr::V6(VRRP_MULTICAST_V6));
        assert!(check_family(Family::V4, IpAddr::V6(Ipv6Addr::LOCALHOST)).is_err());
    }

    fn meta(len: usize) -> RawMeta {
        RawMeta {
            len,
            truncated: false,
            src: None,
            pktinfo_dst: None,
            ifindex: Some(4),
            ttl: None,
            received: None,
            kernel_drops: None,
        }
    }

    fn ipv4_packet(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let header = etherparse::Ipv4Header::new(
            u16::try_from(payload.len()).unwrap_or(0),
            255,
            IpNumber(VRRP_PROTOCOL),
            [192, 0, 2, 1],
            [224, 0, 0, 18],
        );
        if let Ok(header) = header {
            let _ = header.write(&mut out);
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn ipv4_header_is_stripped() {
        let packet = ipv4_packet(&[0x31, 1, 2, 3]);
        let parsed = parse_datagram(Family::V4, 9, &meta(packet.len()), &packet);
        let Some((range, header)) = parsed else {
            panic!("valid packet rejected");
        };
        assert_eq!(packet.get(range), Some(&[0x31, 1, 2, 3][..]));
        assert_eq!(header.ifindex, 4);
        assert_eq!(header.ttl, Some(255));
        assert_eq!(header.src, IpAddr::from([192, 0, 2, 1]));
        assert_eq!(header.dst, IpAddr::V4(VRRP_MULTICAST_V4));
    }

    #[test]
    fn garbage_never_panics() {
        let packet = ipv4_packet(&[0x31, 1, 2, 3]);
        for cut in 0..packet.len() {
            let _ = parse_datagram(Family::V4, 1, &meta(cut), &packet);
        }
        // Length beyond the buffer, wrong protocol, short header length.
        assert!(parse_datagram(Family::V4, 1, &meta(999), &packet).is_none());
        let mut other = packet.clone();
        other[9] = 6;
        assert!(parse_datagram(Family::V4, 1, &meta(other.len()), &other).is_none());
        let mut short = packet.clone();
        short[0] = 0x41;
        assert!(parse_datagram(Family::V4, 1, &meta(short.len()), &short).is_none());
        let mut seed = 0x1234_5678_u32;
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed.to_be_bytes()[0]
                })
                .collect();
            let _ = parse_datagram(Family::V4, 1, &meta(len), &bytes);
            let _ = parse_datagram(Family::V6, 1, &meta(len), &bytes);
        }
        // IPv6 without the destination from IPV6_PKTINFO is dropped.
        assert!(parse_datagram(Family::V6, 1, &meta(4), &[0x31, 1, 2, 3]).is_none());
    }

    #[test]
    fn bad_interface_names_rejected() {
        assert!(matches!(
            interface_index(""),
            Err(SocketError::InvalidInterfaceName(_))
        ));
        assert!(matches!(
            interface_index("a-name-that-is-far-too-long"),
            Err(SocketError::InvalidInterfaceName(_))
        ));
    }
}
