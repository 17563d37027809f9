//! The probes: the only code in the crate that does I/O.
//!
//! A [`Probe`] is a check's configuration; [`Probe::prepare`] validates it
//! once (parses digests, builds the TLS configuration...) into a [`Prober`]
//! that is cheap to clone and runs one attempt per call. Every attempt is
//! bounded by a time limit and by memory caps, and reports failures as a
//! [`DownReason`].

pub(crate) mod dns;
pub(crate) mod file;
pub(crate) mod http;
pub(crate) mod icmp;
pub(crate) mod script;
pub(crate) mod smtp;
pub(crate) mod tcp;
pub(crate) mod udp;

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};

pub use dns::DnsCheck;
pub use file::{FileCheck, Weighted, parse_value as parse_tracked_value};
pub use http::{
    BodyRegex, HttpCheck, Md5Digest, RegexOptions, StatusRanges, TlsOptions, TlsVerify,
};
pub use icmp::IcmpCheck;
pub use script::ScriptCheck;
pub use smtp::SmtpCheck;
pub use tcp::TcpCheck;
pub use udp::UdpCheck;

use crate::error::{ConfigError, DownReason};
use crate::schedule::ProbeResult;

/// A boxed probe future, as returned by [`CustomProbe::probe`].
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ProbeResult> + Send + 'a>>;

/// A probe written by the consumer (a tracked file, a D-Bus query...).
///
/// The runner bounds it with the check's timeout like any other probe and
/// drops the future when the time is up, so it must not leave work behind
/// on drop.
pub trait CustomProbe: Send + Sync + fmt::Debug + 'static {
    /// Runs one attempt. `serial` is unique among this check's attempts.
    fn probe(&self, serial: u64) -> ProbeFuture<'_>;
}

/// What to check, with its target and options.
///
/// Two probes are equal when they would do the same thing: same variant and
/// options, or for [`Probe::Custom`] the same `Arc`. The
/// [`Runner`](crate::Runner) runs equal probes with equal timing once.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Probe {
    /// TCP connect (keepalived `TCP_CHECK`).
    Tcp(TcpCheck),
    /// HTTP or HTTPS GET (keepalived `HTTP_GET` / `SSL_GET`).
    Http(HttpCheck),
    /// External program (keepalived `MISC_CHECK`).
    Script(ScriptCheck),
    /// ICMP or ICMPv6 echo (keepalived `PING_CHECK`).
    Icmp(IcmpCheck),
    /// DNS query (keepalived `DNS_CHECK`).
    Dns(DnsCheck),
    /// SMTP greeting (keepalived `SMTP_CHECK`).
    Smtp(SmtpCheck),
    /// UDP datagram (keepalived `UDP_CHECK`).
    Udp(UdpCheck),
    /// The number in a file (keepalived `track_file`).
    File(FileCheck),
    /// A probe supplied by the consumer.
    Custom(Arc<dyn CustomProbe>),
}

impl PartialEq for Probe {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Probe::Tcp(a), Probe::Tcp(b)) => a == b,
            (Probe::Http(a), Probe::Http(b)) => a == b,
            (Probe::Script(a), Probe::Script(b)) => a == b,
            (Probe::Icmp(a), Probe::Icmp(b)) => a == b,
            (Probe::Dns(a), Probe::Dns(b)) => a == b,
            (Probe::Smtp(a), Probe::Smtp(b)) => a == b,
            (Probe::Udp(a), Probe::Udp(b)) => a == b,
            (Probe::File(a), Probe::File(b)) => a == b,
            (Probe::Custom(a), Probe::Custom(b)) => {
                std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
            }
            _ => false,
        }
    }
}

impl Eq for Probe {}

impl std::hash::Hash for Probe {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Probe::Tcp(check) => check.hash(state),
            Probe::Http(check) => check.hash(state),
            Probe::Script(check) => check.hash(state),
            Probe::Icmp(check) => check.hash(state),
            Probe::Dns(check) => check.hash(state),
            Probe::Smtp(check) => check.hash(state),
            Probe::Udp(check) => check.hash(state),
            Probe::File(check) => check.hash(state),
            Probe::Custom(probe) => Arc::as_ptr(probe).cast::<()>().hash(state),
        }
    }
}

impl Probe {
    /// The kind of check, as a metric label: `tcp`, `http`, `https`,
    /// `script`, `icmp`, `dns`, `smtp`, `udp`, `file` or `custom`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Tcp(_) => "tcp",
            Probe::Http(check) if check.tls.is_some() => "https",
            Probe::Http(_) => "http",
            Probe::Script(_) => "script",
            Probe::Icmp(_) => "icmp",
            Probe::Dns(_) => "dns",
            Probe::Smtp(_) => "smtp",
            Probe::Udp(_) => "udp",
            Probe::File(_) => "file",
            Probe::Custom(_) => "custom",
        }
    }

    /// Validates the configuration and builds what every attempt reuses.
    ///
    /// # Errors
    /// A [`ConfigError`] describing the first invalid option.
    pub fn prepare(&self) -> Result<Prober, ConfigError> {
        let inner = match self {
            Probe::Tcp(check) => Prepared::Tcp(check.clone()),
            Probe::Http(check) => Prepared::Http(http::PreparedHttp::new(check)?),
            Probe::Script(check) => {
                if check.program.as_os_str().is_empty() {
                    return Err(ConfigError::EmptyProgram);
                }
                Prepared::Script(check.clone())
            }
            Probe::Icmp(check) => Prepared::Icmp(icmp::PreparedIcmp::new(check)?),
            Probe::Dns(check) => Prepared::Dns(dns::PreparedDns::new(check)?),
            Probe::Smtp(check) => Prepared::Smtp(check.clone()),
            Probe::Udp(check) => Prepared::Udp(check.clone()),
            Probe::File(check) => Prepared::File(file::PreparedFile::new(check)),
            Probe::Custom(probe) => Prepared::Custom(Arc::clone(probe)),
        };
        Ok(Prober {
            inner: Arc::new(inner),
        })
    }
}

#[derive(Debug)]
enum Prepared {
    Tcp(TcpCheck),
    Http(http::PreparedHttp),
    Script(ScriptCheck),
    Icmp(icmp::PreparedIcmp),
    Dns(dns::PreparedDns),
    Smtp(SmtpCheck),
    Udp(UdpCheck),
    File(file::PreparedFile),
    Custom(Arc<dyn CustomProbe>),
}

/// The outcome of one attempt run by [`Prober::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// Success or the reason for failure.
    pub result: ProbeResult,
    /// Wall time the attempt took.
    pub latency: Duration,
}

/// A validated probe, ready to run attempts. Clones share the preparation.
#[derive(Debug, Clone)]
pub struct Prober {
    inner: Arc<Prepared>,
}

impl Prober {
    /// Runs one attempt, bounded by `timeout`; `serial` distinguishes
    /// attempts (ICMP sequence, DNS id).
    ///
    /// Never hangs past `timeout` and never panics on what the target sends.
    pub async fn run(&self, serial: u64, timeout: Duration) -> ProbeReport {
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, self.attempt(serial, timeout)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(DownReason::Timeout(timeout)),
        };
        ProbeReport {
            result,
            latency: started.elapsed(),
        }
    }

    /// The file whose directory the runner watches, for a [`FileCheck`].
    pub(crate) fn watched_file(&self) -> Option<&std::path::Path> {
        match &*self.inner {
            Prepared::File(check) => Some(check.path()),
            _ => None,
        }
    }

    /// One attempt as an owned future, without its own time limit: the
    /// runner drops it when the scheduler's deadline passes.
    ///
    /// Each kind of probe is boxed on its own, so a TCP connect does not pay
    /// for the size of the HTTP state machine (the box is allocated and
    /// copied once per attempt). Attempts run outside tokio's cooperative
    /// budget: the runner polls thousands of them in its one task, where a
    /// budget of 128 operations per task poll would make most of them
    /// return `Pending` and wake again at once; the runner bounds its own
    /// work per pass instead.
    pub(crate) fn attempt_owned(
        &self,
        serial: u64,
        timeout: Duration,
    ) -> crate::attempts::AttemptFuture {
        let prober = Arc::clone(&self.inner);
        match &*self.inner {
            Prepared::Tcp(_) => Box::pin(tokio::task::unconstrained(async move {
                match &*prober {
                    Prepared::Tcp(check) => tcp::probe(check).await,
                    _ => Err(DownReason::Internal("probe kind changed".to_owned())),
                }
            })),
            Prepared::Http(_) => Box::pin(tokio::task::unconstrained(async move {
                match &*prober {
                    Prepared::Http(check) => check.probe().await,
                    _ => Err(DownReason::Internal("probe kind changed".to_owned())),
                }
            })),
            _ => {
                let prober = self.clone();
                Box::pin(tokio::task::unconstrained(async move {
                    prober.attempt(serial, timeout).await
                }))
            }
        }
    }

    async fn attempt(&self, serial: u64, timeout: Duration) -> ProbeResult {
        match &*self.inner {
            Prepared::Tcp(check) => tcp::probe(check).await,
            Prepared::Http(check) => check.probe().await,
            Prepared::Script(check) => script::probe(check).await,
            Prepared::Icmp(check) => check.probe(serial).await,
            Prepared::Dns(check) => check.probe(serial).await,
            Prepared::Smtp(check) => smtp::probe(check).await,
            Prepared::Udp(check) => udp::probe(check, timeout).await,
            Prepared::File(check) => check.probe().await,
            Prepared::Custom(probe) => probe.probe(serial).await,
        }
    }
}

/// Where a check's connections come from: keepalived's `bindto`,
/// `bind_port` and `bind_if`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Source<'a> {
    /// Source address.
    pub(crate) address: Option<IpAddr>,
    /// Source port (with no address: the unspecified address of the
    /// target's family).
    pub(crate) port: Option<u16>,
    /// Interface the socket is bound to (`SO_BINDTODEVICE`); also the scope
    /// of an IPv6 link-local target.
    pub(crate) interface: Option<&'a str>,
}

impl Source<'_> {
    /// The address to bind, if any.
    pub(crate) fn local(&self, target: SocketAddr) -> Option<SocketAddr> {
        match (self.address, self.port) {
            (None, None) => None,
            (address, port) => Some(SocketAddr::new(
                address.unwrap_or(match target {
                    SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                }),
                port.unwrap_or(0),
            )),
        }
    }

    /// `target`, with the interface as its scope when it is an IPv6
    /// link-local address without one.
    pub(crate) fn scoped(&self, target: SocketAddr) -> Result<SocketAddr, DownReason> {
        match (target, self.interface) {
            (SocketAddr::V6(mut v6), Some(name))
                if v6.scope_id() == 0 && v6.ip().is_unicast_link_local() =>
            {
                let index = nix::net::if_::if_nametoindex(name).map_err(|e| {
                    DownReason::from_io("bind_if", &std::io::Error::from_raw_os_error(e as i32))
                })?;
                v6.set_scope_id(index);
                Ok(SocketAddr::V6(v6))
            }
            _ => Ok(target),
        }
    }

    /// Binds `socket` to the interface, then to the address and port.
    pub(crate) fn bind_socket(
        &self,
        socket: &socket2::Socket,
        target: SocketAddr,
    ) -> Result<(), DownReason> {
        if let Some(name) = self.interface {
            socket
                .bind_device(Some(name.as_bytes()))
                .map_err(|e| DownReason::from_io("bind_if", &e))?;
        }
        if let Some(local) = self.local(target) {
            socket
                .bind(&socket2::SockAddr::from(local))
                .map_err(|e| DownReason::from_io("bind", &e))?;
        }
        Ok(())
    }
}

/// A UDP socket from `source`, connected to `target` (so that an ICMP
/// port unreachable surfaces as `ECONNREFUSED`).
pub(crate) async fn udp_socket(
    target: SocketAddr,
    source: Source<'_>,
) -> Result<tokio::net::UdpSocket, DownReason> {
    let target = source.scoped(target)?;
    let domain = match target {
        SocketAddr::V4(_) => socket2::Domain::IPV4,
        SocketAddr::V6(_) => socket2::Domain::IPV6,
    };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
        .map_err(|e| DownReason::from_io("socket", &e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| DownReason::from_io("socket", &e))?;
    if source.port.is_some() {
        socket
            .set_reuse_address(true)
            .map_err(|e| DownReason::from_io("bind", &e))?;
    }
    source.bind_socket(&socket, target)?;
    let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket))
        .map_err(|e| DownReason::from_io("socket", &e))?;
    socket
        .connect(target)
        .await
        .map_err(|e| DownReason::from_io("connect", &e))?;
    Ok(socket)
}

/// Connects a TCP stream to `target` from `source`, within
/// `connect_timeout` if given.
pub(crate) async fn connect_tcp(
    target: SocketAddr,
    source: Source<'_>,
    connect_timeout: Option<Duration>,
) -> Result<TcpStream, DownReason> {
    let target = source.scoped(target)?;
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| DownReason::from_io("socket", &e))?;
    if let Some(name) = source.interface {
        socket
            .bind_device(Some(name.as_bytes()))
            .map_err(|e| DownReason::from_io("bind_if", &e))?;
    }
    if let Some(local) = source.local(target) {
        if source.port.is_some() {
            // A fixed source port: the previous attempt's connection may
            // still be in TIME_WAIT.
            socket
                .set_reuseaddr(true)
                .map_err(|e| DownReason::from_io("bind", &e))?;
        }
        socket
            .bind(local)
            .map_err(|e| DownReason::from_io("bind", &e))?;
    }
    let connect = socket.connect(target);
    let stream = match connect_timeout {
        Some(limit) => match tokio::time::timeout(limit, connect).await {
            Ok(result) => result,
            Err(_elapsed) => return Err(DownReason::ConnectTimeout(limit)),
        },
        None => connect.await,
    }
    .map_err(|e| DownReason::from_io("connect", &e))?;
    Ok(stream)
}
