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

mod cmsg;
mod datagram;
mod error;
mod setup;

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::socket::{self, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use self::cmsg::{RawMeta, RecvSpace, recv_many, recv_once, send_many, send_once};
#[cfg(feature = "fuzzing")]
pub(crate) use self::datagram::parse_datagram_for_fuzzing;
use self::datagram::{Header, parse_datagram};
pub use self::error::SocketError;
pub(crate) use self::error::copy_io;
use self::setup::{configure_v4, configure_v6};

/// The address family of a socket: vrrp-core's.
pub use vrrp_core::Family;
use vrrp_core::wire::IP_PROTOCOL as VRRP_PROTOCOL;
/// Receive buffer size that holds any VRRP packet on a standard or jumbo
/// Ethernet link, IPv4 header included.
pub const RECV_BUFFER_LEN: usize = 9216;

/// The most datagrams one [`VrrpSocket::read_batch`] system call takes.
pub const RECV_BATCH: usize = 32;

/// Reusable buffers for [`VrrpSocket::read_batch`]: [`RECV_BATCH`]
/// datagrams of [`RECV_BUFFER_LEN`] bytes.
#[derive(Debug)]
pub struct RecvBatch(RecvSpace);

impl RecvBatch {
    /// Allocates the buffers (pages are touched only as datagrams fill
    /// them).
    #[must_use]
    pub fn new() -> Self {
        RecvBatch(RecvSpace::new(RECV_BATCH, RECV_BUFFER_LEN))
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// The most datagrams one [`VrrpSocket::send_batch`] system call carries:
/// a whole interface of 255 VRIDs in one call.
pub const MAX_BATCH: usize = 256;

/// What [`VrrpSocket::send_batch`] and [`VrrpSocket::send_batch_now`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// Datagrams the kernel accepted.
    pub sent: usize,
    /// Datagrams not sent because the send buffer was full
    /// ([`VrrpSocket::send_batch_now`] never waits).
    pub dropped: usize,
    /// One error per datagram that was not sent for another reason.
    pub errors: Vec<SocketError>,
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
    /// by the kernel unless [`SocketConfig::with_source`] sets one.
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
    source: Option<IpAddr>,
    counters: Counters,
}

/// Looks up the index of `name` in the calling thread's network namespace.
pub fn interface_index(name: &str) -> Result<u32, SocketError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(SocketError::InvalidInterfaceName(name.to_owned()));
    }
    nix::net::if_::if_nametoindex(name).map_err(|error| SocketError::NoSuchInterface {
        name: name.to_owned(),
        error,
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
            Family::Ipv4 => Socket::new(Domain::IPV4, Type::RAW, proto),
            _ => Socket::new(Domain::IPV6, Type::RAW, proto),
        }
        .map_err(SocketError::setup("socket(raw, 112)"))?;
        socket
            .bind_device(Some(config.interface.as_bytes()))
            .map_err(SocketError::setup("SO_BINDTODEVICE"))?;
        match config.family {
            Family::Ipv4 => configure_v4(&socket, ifindex, config.join_multicast)?,
            _ => configure_v6(&socket, ifindex, config.join_multicast)?,
        }
        socket::setsockopt(&socket, sockopt::ReceiveTimestampns, &true).map_err(|e| {
            SocketError::Setup {
                what: "SO_TIMESTAMPNS",
                error: e.into(),
            }
        })?;
        socket::setsockopt(&socket, sockopt::RxqOvfl, &1).map_err(|e| SocketError::Setup {
            what: "SO_RXQ_OVFL",
            error: e.into(),
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
            source: config.source,
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

    /// The source address of sent packets, if one was set at open (the
    /// driver gives one with every batch instead, see
    /// [`Self::send_batch_now`]). The VRRPv3 checksum of an outgoing
    /// packet must be computed with the address it is sent from.
    #[must_use]
    pub fn source(&self) -> Option<IpAddr> {
        self.source
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
    /// see [`vrrp_core::wire::multicast_group`], or a unicast peer) out of the
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
            Err(error) => {
                self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                Err(SocketError::Send { dst, error })
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
                .take_while(|(_, d)| Family::of(d) == self.family)
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
                    let error = other.err().unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::WriteZero, "sendmmsg sent nothing")
                    });
                    self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    outcome.errors.push(SocketError::Send { dst, error });
                    pos += 1;
                }
            }
        }
        outcome
    }

    /// Sends several VRRP payloads from `source` (or [`Self::source`] when
    /// `None`) like [`Self::send_batch`], but never waits: what the send
    /// buffer cannot take now is dropped and counted in
    /// [`BatchOutcome::dropped`]. A VRRP loop must not wait for one
    /// interface's stuck queue while every other instance's timers run.
    pub fn send_batch_now(
        &self,
        source: Option<IpAddr>,
        batch: &[(&[u8], IpAddr)],
    ) -> BatchOutcome {
        let source = source.or_else(|| self.source());
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
                .take_while(|(_, d)| Family::of(d) == self.family)
                .count();
            let chunk = &batch[pos..pos + run];
            match send_many(self.fd.get_ref(), self.ifindex, source, chunk) {
                Ok(sent) if sent > 0 => {
                    self.counters.sent.fetch_add(sent as u64, Ordering::Relaxed);
                    outcome.sent += sent;
                    pos += sent;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let rest = batch.len() - pos;
                    self.counters
                        .send_errors
                        .fetch_add(rest as u64, Ordering::Relaxed);
                    outcome.dropped += rest;
                    return outcome;
                }
                other => {
                    let error = other.err().unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::WriteZero, "sendmmsg sent nothing")
                    });
                    self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    outcome.errors.push(SocketError::Send { dst, error });
                    pos += 1;
                }
            }
        }
        outcome
    }

    /// Polls for something to read: `Ready` when the socket is readable
    /// (or has an error), after which [`Self::read_queued`] reads it.
    pub fn poll_recv_ready(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.fd.poll_read_ready(cx) {
            std::task::Poll::Ready(Ok(_guard)) => std::task::Poll::Ready(Ok(())),
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    /// Reads the next queued well-formed packet without waiting and
    /// without asking the reactor whether there is one: `None` when the
    /// kernel has nothing queued. A caller about to act on a timer reads
    /// this way first, so that an advertisement that already arrived is
    /// not mistaken for a silent master even when the runtime has not
    /// polled for readiness yet.
    pub fn read_queued<'b>(&self, buf: &'b mut [u8]) -> Result<Option<RxPacket<'b>>, SocketError> {
        loop {
            let meta = match recv_once(self.fd.get_ref(), buf) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Empty: let the reactor forget a readiness it saw.
                    self.forget_readiness();
                    return Ok(None);
                }
                Err(e) => return Err(SocketError::Recv(e)),
            };
            if let Some(range) = self.accept(&meta, buf) {
                return Ok(Some(self.packet(&meta, range, buf)));
            }
        }
    }

    /// Reads what is queued, up to `max` datagrams (at most [`RECV_BATCH`])
    /// in one `recvmmsg` call, without waiting and without asking the
    /// reactor, like [`Self::read_queued`]: calls `each` with every
    /// well-formed packet (malformed and truncated ones are counted and
    /// skipped) and returns how many datagrams it took. Fewer than asked
    /// (0 when nothing was queued) means the queue is empty.
    pub fn read_batch(
        &self,
        batch: &mut RecvBatch,
        max: usize,
        mut each: impl FnMut(RxPacket<'_>),
    ) -> Result<usize, SocketError> {
        let asked = max.clamp(1, RECV_BATCH);
        let taken = recv_many(self.fd.get_ref(), &mut batch.0, asked, |meta, buf| {
            if let Some(range) = self.accept(meta, buf) {
                each(self.packet(meta, range, buf));
            }
        });
        match taken {
            Ok(n) if n >= asked => Ok(n),
            Ok(n) => {
                self.forget_readiness();
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.forget_readiness();
                Ok(0)
            }
            Err(e) => Err(SocketError::Recv(e)),
        }
    }

    /// After the queue was found empty: lets the reactor forget a
    /// readiness it saw (one that came after is kept).
    fn forget_readiness(&self) {
        let _ = self.fd.try_io(Interest::READABLE, |_| {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
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

fn check_family(family: Family, addr: IpAddr) -> Result<(), SocketError> {
    if Family::of(&addr) == family {
        Ok(())
    } else {
        Err(SocketError::FamilyMismatch { addr, family })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_of_and_group() {
        assert_eq!(
            Family::of(&IpAddr::V4(vrrp_core::wire::MULTICAST_V4)),
            Family::Ipv4
        );
        assert!(check_family(Family::Ipv4, IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)).is_err());
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
