//! The IPVS table as values: services, destinations and their settings.
//!
//! These types say what a virtual service or a real server *is*; they carry no
//! kernel handle and no health state. Field meanings follow the kernel's uapi
//! `linux/ip_vs.h` and ipvsadm's options (named in each doc line).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// Transport protocol of an address:port virtual service (`-t`, `-u`, `--sctp-service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// TCP (`IPPROTO_TCP`, 6).
    Tcp,
    /// UDP (`IPPROTO_UDP`, 17).
    Udp,
    /// SCTP (`IPPROTO_SCTP`, 132).
    Sctp,
}

impl Protocol {
    /// The IP protocol number the kernel uses.
    pub const fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The protocol with IP protocol number `number`, if IPVS supports it.
    pub const fn from_number(number: u16) -> Option<Self> {
        match number {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// Address family of a service or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AddressFamily {
    /// IPv4 (`AF_INET`).
    Ipv4,
    /// IPv6 (`AF_INET6`).
    Ipv6,
}

impl AddressFamily {
    /// The `AF_*` constant the kernel uses.
    pub const fn number(self) -> u16 {
        match self {
            AddressFamily::Ipv4 => 2,
            AddressFamily::Ipv6 => 10,
        }
    }

    /// The family with `AF_*` value `number`, if it is IPv4 or IPv6.
    pub const fn from_number(number: u16) -> Option<Self> {
        match number {
            2 => Some(AddressFamily::Ipv4),
            10 => Some(AddressFamily::Ipv6),
            _ => None,
        }
    }

    /// The family of `ip`.
    pub const fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddressFamily::Ipv4,
            IpAddr::V6(_) => AddressFamily::Ipv6,
        }
    }

    /// Longest prefix length of this family (32 or 128).
    pub const fn max_prefix_len(self) -> u8 {
        match self {
            AddressFamily::Ipv4 => 32,
            AddressFamily::Ipv6 => 128,
        }
    }
}

/// What identifies a virtual service in the kernel: protocol + address + port, or a
/// firewall mark (`-f`) with its address family.
///
/// `Display` and `FromStr` use `tcp/192.0.2.1:80`, `udp/[2001:db8::1]:53`,
/// `sctp/…`, `fwmark/5` (IPv4) and `fwmark6/5` (IPv6); the [`Ownership`](crate::Ownership)
/// record is written in this form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ServiceKey {
    /// An address:port service for one protocol.
    Socket {
        /// Transport protocol.
        protocol: Protocol,
        /// Virtual address and port.
        addr: SocketAddr,
    },
    /// A firewall-mark service: packets marked `mark` by netfilter.
    Fwmark {
        /// Address family the mark applies to (`-6` in ipvsadm).
        family: AddressFamily,
        /// The firewall mark (non-zero).
        mark: u32,
    },
}

impl ServiceKey {
    /// A TCP service on `addr`.
    pub const fn tcp(addr: SocketAddr) -> Self {
        ServiceKey::Socket {
            protocol: Protocol::Tcp,
            addr,
        }
    }

    /// A UDP service on `addr`.
    pub const fn udp(addr: SocketAddr) -> Self {
        ServiceKey::Socket {
            protocol: Protocol::Udp,
            addr,
        }
    }

    /// An SCTP service on `addr`.
    pub const fn sctp(addr: SocketAddr) -> Self {
        ServiceKey::Socket {
            protocol: Protocol::Sctp,
            addr,
        }
    }

    /// A firewall-mark service.
    pub const fn fwmark(family: AddressFamily, mark: u32) -> Self {
        ServiceKey::Fwmark { family, mark }
    }

    /// Address family of the service.
    pub const fn family(&self) -> AddressFamily {
        match self {
            ServiceKey::Socket { addr, .. } => AddressFamily::of(addr.ip()),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Socket { protocol, addr } => write!(f, "{}/{}", protocol.name(), addr),
            ServiceKey::Fwmark {
                family: AddressFamily::Ipv4,
                mark,
            } => write!(f, "fwmark/{mark}"),
            ServiceKey::Fwmark {
                family: AddressFamily::Ipv6,
                mark,
            } => write!(f, "fwmark6/{mark}"),
        }
    }
}

/// A string that is not a valid [`ServiceKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid service key {0:?}: expected tcp/ADDR:PORT, udp/…, sctp/…, fwmark/MARK or fwmark6/MARK"
)]
pub struct ParseServiceKeyError(pub String);

impl FromStr for ServiceKey {
    type Err = ParseServiceKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseServiceKeyError(s.to_owned());
        let (kind, rest) = s.split_once('/').ok_or_else(bad)?;
        let socket = |protocol| {
            rest.parse::<SocketAddr>()
                .map(|addr| ServiceKey::Socket { protocol, addr })
                .map_err(|_| bad())
        };
        let mark = |family| match rest.parse::<u32>() {
            Ok(mark) if mark != 0 => Ok(ServiceKey::Fwmark { family, mark }),
            _ => Err(bad()),
        };
        match kind {
            "tcp" => socket(Protocol::Tcp),
            "udp" => socket(Protocol::Udp),
            "sctp" => socket(Protocol::Sctp),
            "fwmark" => mark(AddressFamily::Ipv4),
            "fwmark6" => mark(AddressFamily::Ipv6),
            _ => Err(bad()),
        }
    }
}

/// Name of an IPVS scheduler module (`-s`, keepalived `lb_algo`/`lvs_sched`).
///
/// The kernel loads `ip_vs_<name>` on demand; any name it knows works, the
/// constants are the ones in the mainline tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scheduler(Cow<'static, str>);

/// A scheduler name that cannot be sent to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scheduler name {0:?}: 1 to 15 ASCII letters, digits or '_'")]
pub struct InvalidSchedulerName(pub String);

impl Scheduler {
    /// Round robin.
    pub const RR: Scheduler = Scheduler(Cow::Borrowed("rr"));
    /// Weighted round robin.
    pub const WRR: Scheduler = Scheduler(Cow::Borrowed("wrr"));
    /// Least connection.
    pub const LC: Scheduler = Scheduler(Cow::Borrowed("lc"));
    /// Weighted least connection (the kernel's and keepalived's default).
    pub const WLC: Scheduler = Scheduler(Cow::Borrowed("wlc"));
    /// Locality-based least connection.
    pub const LBLC: Scheduler = Scheduler(Cow::Borrowed("lblc"));
    /// Locality-based least connection with replication.
    pub const LBLCR: Scheduler = Scheduler(Cow::Borrowed("lblcr"));
    /// Destination hashing.
    pub const DH: Scheduler = Scheduler(Cow::Borrowed("dh"));
    /// Source hashing.
    pub const SH: Scheduler = Scheduler(Cow::Borrowed("sh"));
    /// Maglev hashing.
    pub const MH: Scheduler = Scheduler(Cow::Borrowed("mh"));
    /// Shortest expected delay.
    pub const SED: Scheduler = Scheduler(Cow::Borrowed("sed"));
    /// Never queue.
    pub const NQ: Scheduler = Scheduler(Cow::Borrowed("nq"));
    /// Weighted failover.
    pub const FO: Scheduler = Scheduler(Cow::Borrowed("fo"));
    /// Weighted overflow.
    pub const OVF: Scheduler = Scheduler(Cow::Borrowed("ovf"));
    /// Weighted random twos choice (Linux 5.5+).
    pub const TWOS: Scheduler = Scheduler(Cow::Borrowed("twos"));

    /// Longest name the kernel accepts (`IP_VS_SCHEDNAME_MAXLEN` minus the NUL).
    pub const MAX_LEN: usize = 15;

    /// A scheduler by name, e.g. one only a newer kernel has.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidSchedulerName> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            Ok(Scheduler(Cow::Owned(name)))
        } else {
            Err(InvalidSchedulerName(name))
        }
    }

    /// The name as the kernel knows it.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler::WLC
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Scheduler {
    type Err = InvalidSchedulerName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheduler::new(s)
    }
}

/// Service flags other than persistence (which is [`Service::persistence`]).
///
/// Bit values are the kernel's `IP_VS_SVC_F_*`; the scheduler flags mean
/// different things per scheduler (`sh-fallback` = `SCHED1` for sh, `mh-port` =
/// `SCHED2` for mh, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ServiceFlags(u32);

impl ServiceFlags {
    /// No flags.
    pub const NONE: ServiceFlags = ServiceFlags(0);
    /// One-packet scheduling (`-o`, UDP only).
    pub const ONE_PACKET: ServiceFlags = ServiceFlags(0x0004);
    /// Scheduler flag 1 (`sh-fallback`, `mh-fallback`).
    pub const SCHED1: ServiceFlags = ServiceFlags(0x0008);
    /// Scheduler flag 2 (`sh-port`, `mh-port`).
    pub const SCHED2: ServiceFlags = ServiceFlags(0x0010);
    /// Scheduler flag 3.
    pub const SCHED3: ServiceFlags = ServiceFlags(0x0020);

    /// `IP_VS_SVC_F_PERSISTENT`: derived from [`Service::persistence`], never stored here.
    pub(crate) const PERSISTENT_BIT: u32 = 0x0001;
    /// `IP_VS_SVC_F_HASHED`: kernel-internal, reported in dumps, never sent.
    pub(crate) const HASHED_BIT: u32 = 0x0002;

    /// Flags from raw bits; the persistence and kernel-internal "hashed" bits are dropped.
    pub const fn from_bits(bits: u32) -> Self {
        ServiceFlags(bits & !(Self::PERSISTENT_BIT | Self::HASHED_BIT))
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: ServiceFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for ServiceFlags {
    type Output = ServiceFlags;

    fn bitor(self, rhs: ServiceFlags) -> ServiceFlags {
        ServiceFlags(self.0 | rhs.0)
    }
}

/// Persistence (`-p`, `-M`; keepalived `persistence_timeout`, `persistence_granularity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Persistence {
    /// How long a client stays on its real server. The kernel counts whole
    /// seconds: sub-second parts are dropped, values beyond `u32::MAX` seconds saturate.
    pub timeout: Duration,
    /// Client grouping as a prefix length (IPv4 0..=32, sent as a mask such as
    /// 255.255.255.0; IPv6 1..=128, sent as the length itself). `None` means
    /// the whole address (32 or 128), as ipvsadm defaults.
    pub prefix_len: Option<u8>,
}

impl Persistence {
    /// Persistence for `timeout` with per-address granularity.
    pub const fn new(timeout: Duration) -> Self {
        Persistence {
            timeout,
            prefix_len: None,
        }
    }

    /// The timeout in the kernel's unit (seconds).
    pub fn timeout_secs(&self) -> u32 {
        u32::try_from(self.timeout.as_secs()).unwrap_or(u32::MAX)
    }
}

/// A virtual service and its settings (`ipvsadm -A`/`-E`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    /// What identifies the service.
    pub key: ServiceKey,
    /// Scheduler.
    pub scheduler: Scheduler,
    /// Persistence, if any.
    pub persistence: Option<Persistence>,
    /// Other flags.
    pub flags: ServiceFlags,
}

impl Service {
    /// A service with scheduler `scheduler`, no persistence and no flags.
    pub fn new(key: ServiceKey, scheduler: Scheduler) -> Self {
        Service {
            key,
            scheduler,
            persistence: None,
            flags: ServiceFlags::NONE,
        }
    }

    /// The same service with persistence.
    pub fn with_persistence(mut self, persistence: Persistence) -> Self {
        self.persistence = Some(persistence);
        self
    }

    /// The same service with `flags`.
    pub fn with_flags(mut self, flags: ServiceFlags) -> Self {
        self.flags = flags;
        self
    }

    /// The prefix length the kernel will report for this service (the full
    /// address length when not given), so a desired value compares equal to a listed one.
    pub(crate) fn normalized(&self) -> Service {
        let mut s = self.clone();
        if let Some(p) = &mut s.persistence {
            let max = s.key.family().max_prefix_len();
            if p.prefix_len.is_none() || p.prefix_len == Some(max) {
                p.prefix_len = None;
            }
            p.timeout = Duration::from_secs(u64::from(p.timeout_secs()));
        }
        s
    }
}

/// How IPVS forwards to a real server (`-m`, `-g`, `-i`; keepalived `lb_kind`/`lvs_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ForwardMethod {
    /// NAT (`-m`, `NAT`, `IP_VS_CONN_F_MASQ`).
    Masquerade,
    /// Direct routing (`-g`, `DR`, `IP_VS_CONN_F_DROUTE`).
    Route,
    /// IP-in-IP tunnel (`-i`, `TUN`, `IP_VS_CONN_F_TUNNEL`).
    Tunnel,
    /// The kernel's own rewrite when the real server address is local to the
    /// director (`IP_VS_CONN_F_LOCALNODE`); only seen in listings.
    Local,
}

impl ForwardMethod {
    /// The kernel's `IP_VS_CONN_F_*` forwarding value.
    pub const fn bits(self) -> u32 {
        match self {
            ForwardMethod::Masquerade => 0,
            ForwardMethod::Local => 1,
            ForwardMethod::Tunnel => 2,
            ForwardMethod::Route => 3,
        }
    }

    /// The method for the kernel's `IP_VS_CONN_F_FWD_MASK` bits.
    pub const fn from_bits(bits: u32) -> Option<Self> {
        match bits & 0x7 {
            0 => Some(ForwardMethod::Masquerade),
            1 => Some(ForwardMethod::Local),
            2 => Some(ForwardMethod::Tunnel),
            3 => Some(ForwardMethod::Route),
            _ => None,
        }
    }
}

/// A real server of a service (`ipvsadm -a`/`-e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    /// Real server address and port (the port is ignored by DR and TUN and
    /// is usually 0 or the service port for firewall-mark services).
    pub addr: SocketAddr,
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// Weight; 0 keeps the server but sends it no new connections. The kernel
    /// rejects values above `i32::MAX`.
    pub weight: u32,
    /// Upper connection threshold (`-x`); 0 means none.
    pub upper_threshold: u32,
    /// Lower connection threshold (`-y`); 0 means none.
    pub lower_threshold: u32,
}

impl Destination {
    /// A destination with weight 1 and no thresholds.
    pub const fn new(addr: SocketAddr, forward: ForwardMethod) -> Self {
        Destination {
            addr,
            forward,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    /// The same destination with `weight`.
    pub const fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The same destination with connection thresholds.
    pub const fn with_thresholds(mut self, upper: u32, lower: u32) -> Self {
        self.upper_threshold = upper;
        self.lower_threshold = lower;
        self
    }

    /// Whether the kernel entry `listed` already is this destination. The
    /// kernel rewrites any method to [`ForwardMethod::Local`] for a local address.
    pub(crate) fn matches(&self, listed: &Destination) -> bool {
        let forward_ok = self.forward == listed.forward || listed.forward == ForwardMethod::Local;
        forward_ok
            && self.addr == listed.addr
            && self.weight == listed.weight
            && self.upper_threshold == listed.upper_threshold
            && self.lower_threshold == listed.lower_threshold
    }
}

/// A destination as the kernel lists it, with its connection counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationStatus {
    /// The destination's settings.
    pub destination: Destination,
    /// Active connections.
    pub active_connections: u32,
    /// Inactive connections.
    pub inactive_connections: u32,
    /// Persistence templates.
    pub persistent_connections: u32,
}

/// A service's or destination's traffic counters as the kernel keeps
/// them (`IPVS_STATS_ATTR_*`): totals since the service or destination
/// was added, as `ipvsadm -Ln --stats` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    /// Connections scheduled.
    pub connections: u64,
    /// Packets from clients.
    pub packets_in: u64,
    /// Packets to clients (seen only with NAT: with DR and tunnelling the
    /// replies bypass the director).
    pub packets_out: u64,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes to clients (NAT only, as `packets_out`).
    pub bytes_out: u64,
}

/// One service's counters and its destinations', read together
/// ([`crate::IpvsClient::statistics`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatistics {
    /// The service.
    pub key: ServiceKey,
    /// Its counters (the sum over its destinations, and what went to none).
    pub counters: Counters,
    /// Each destination's address and counters.
    pub destinations: Vec<(SocketAddr, Counters)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_key_text_round_trips() {
        for text in [
            "tcp/192.0.2.1:80",
            "udp/[2001:db8::1]:53",
            "sctp/10.0.0.1:3868",
            "fwmark/5",
            "fwmark6/7",
        ] {
            let key: ServiceKey = text.parse().expect(text);
            assert_eq!(key.to_string(), text);
        }
        for bad in [
            "",
            "tcp",
            "tcp/1.2.3.4",
            "icmp/1.2.3.4:1",
            "fwmark/0",
            "fwmark/x",
        ] {
            assert!(bad.parse::<ServiceKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scheduler_names_are_checked() {
        assert_eq!(
            Scheduler::new("lblcr").map(|s| s.name().to_owned()),
            Ok("lblcr".to_owned())
        );
        assert!(Scheduler::new("").is_err());
        assert!(Scheduler::new("a".repeat(16)).is_err());
        assert!(Scheduler::new("r r").is_err());
    }

    #[test]
    fn flags_drop_persistence_and_hashed_bits() {
        let flags = ServiceFlags::from_bits(0x1 | 0x2 | 0x8);
        assert_eq!(flags, ServiceFlags::SCHED1);
        assert!((ServiceFlags::SCHED1 | ServiceFlags::SCHED2).contains(ServiceFlags::SCHED2));
    }

    #[test]
    fn local_forwarding_matches_any_requested_method() {
        let addr: SocketAddr = "192.0.2.1:80".parse().expect("addr");
        let want = Destination::new(addr, ForwardMethod::Route);
        let listed = Destination::new(addr, ForwardMethod::Local);
        assert!(want.matches(&listed));
        assert!(!want.matches(&Destination::new(addr, ForwardMethod::Tunnel)));
        assert!(!want.matches(&want.with_weight(2)));
    }
}
