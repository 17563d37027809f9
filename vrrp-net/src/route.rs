//! Kernel routes through rtnetlink: the [`Route`] a driver installs (in
//! iproute2's and keepalived's words: `192.0.2.0/24 via 192.0.2.1 dev eth0
//! table 100 metric 5`), the route messages (`RTM_NEWROUTE`,
//! `RTM_DELROUTE`, dumps) encoded and decoded by hand with bounds checks,
//! and [`RouteManager`] to add, remove and list them.
//!
//! A route is identified in the kernel by its table, family, destination,
//! prefix length, TOS and metric ([`RouteKey`]): two routes with the same
//! key cannot coexist (`EEXIST`), whatever their next hops.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use neli::consts::nl::NlmF;
use neli::consts::rtnl::Rtm;
use neli::types::Buffer;

pub use crate::netlink::NetlinkError;
use crate::netlink::{RtSocket, attributes, read_u32};

/// `RT_TABLE_MAIN`: the table of routes given without `table`.
pub const MAIN_TABLE: u32 = 254;
/// `RTPROT_KEEPALIVED`: the protocol keepalived marks its routes with, and
/// the default of routes given without `proto`.
pub const PROTOCOL_KEEPALIVED: u8 = 18;
/// The metric the kernel gives an IPv6 route added without one.
const IPV6_DEFAULT_METRIC: u32 = 1024;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
/// Size of `struct rtnexthop`.
const RTNH_LEN: usize = 8;
const RTNH_F_ONLINK: u32 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_NOWHERE`: a deletion that matches any scope.
const RT_SCOPE_NOWHERE: u8 = 255;
/// Size of `struct rtmsg`.
const RTMSG_LEN: usize = 12;

/// What a route does with the packets it matches (`rtm_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum RouteKind {
    /// Forwarded to a gateway or out of an interface (`RTN_UNICAST`).
    #[default]
    Unicast,
    /// Delivered locally (`RTN_LOCAL`).
    Local,
    /// Silently dropped (`RTN_BLACKHOLE`).
    Blackhole,
    /// Refused with "host unreachable" (`RTN_UNREACHABLE`).
    Unreachable,
    /// Refused with "administratively prohibited" (`RTN_PROHIBIT`).
    Prohibit,
    /// Lookup continues in the next table (`RTN_THROW`).
    Throw,
    /// Another `RTN_*` value, as the kernel reported it.
    Other(u8),
}

impl RouteKind {
    fn raw(self) -> u8 {
        match self {
            RouteKind::Unicast => 1,
            RouteKind::Local => 2,
            RouteKind::Blackhole => 6,
            RouteKind::Unreachable => 7,
            RouteKind::Prohibit => 8,
            RouteKind::Throw => 9,
            RouteKind::Other(v) => v,
        }
    }

    fn from_raw(raw: u8) -> Self {
        match raw {
            1 => RouteKind::Unicast,
            2 => RouteKind::Local,
            6 => RouteKind::Blackhole,
            7 => RouteKind::Unreachable,
            8 => RouteKind::Prohibit,
            9 => RouteKind::Throw,
            v => RouteKind::Other(v),
        }
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            RouteKind::Unicast => "unicast",
            RouteKind::Local => "local",
            RouteKind::Blackhole => "blackhole",
            RouteKind::Unreachable => "unreachable",
            RouteKind::Prohibit => "prohibit",
            RouteKind::Throw => "throw",
            RouteKind::Other(_) => return None,
        })
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "unicast" => RouteKind::Unicast,
            "local" => RouteKind::Local,
            "blackhole" => RouteKind::Blackhole,
            "unreachable" => RouteKind::Unreachable,
            "prohibit" => RouteKind::Prohibit,
            "throw" => RouteKind::Throw,
            _ => return None,
        })
    }

    /// Whether routes of this kind carry a next hop (gateway, device).
    fn has_next_hop(self) -> bool {
        matches!(self, RouteKind::Unicast | RouteKind::Local)
    }
}

/// A route to install.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// Destination network (its host bits are zero).
    pub destination: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// Routing table ([`MAIN_TABLE`] by default).
    pub table: u32,
    /// Metric (`metric`, `priority`, `preference`); the kernel's default
    /// when `None` (0 for IPv4, 1024 for IPv6).
    pub metric: Option<u32>,
    /// Gateway (`via`).
    pub gateway: Option<IpAddr>,
    /// Output interface (`dev`), by name.
    pub device: Option<String>,
    /// Preferred source address (`src`).
    pub source: Option<IpAddr>,
    /// Originating protocol (`proto`), [`PROTOCOL_KEEPALIVED`] by default.
    pub protocol: u8,
    /// Scope (`scope`): universe unless given, as keepalived sends it
    /// (iproute2 would pick link for a route out of an interface without a
    /// gateway).
    pub scope: Option<u8>,
    /// What the route does.
    pub kind: RouteKind,
    /// Gateway on the link even if no prefix covers it (`onlink`).
    pub onlink: bool,
    /// Next hops of a multipath route (`nexthop via GW dev IF weight W`,
    /// or keepalived's deprecated `via GW1 or GW2`), sent as
    /// `RTA_MULTIPATH`; empty for a route with one path.
    pub nexthops: Vec<NextHop>,
}

/// One path of a multipath route (RFC 2992's equal-cost multipath, as the
/// kernel's `struct rtnexthop` carries it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    /// Gateway (`via`).
    pub gateway: Option<IpAddr>,
    /// Output interface (`dev`), by name.
    pub device: Option<String>,
    /// Share of the traffic relative to the other next hops (`weight`,
    /// 1 to 256; 1 when not given).
    pub weight: u16,
    /// Gateway on the link even if no prefix covers it (`onlink`).
    pub onlink: bool,
}

impl NextHop {
    /// A next hop through `gateway` of weight 1.
    pub fn via(gateway: IpAddr) -> Self {
        NextHop {
            gateway: Some(gateway),
            device: None,
            weight: 1,
            onlink: false,
        }
    }
}

impl fmt::Display for NextHop {
    /// `nexthop [via GW] [dev IF] [weight W] [onlink]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nexthop")?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(d) = &self.device {
            write!(f, " dev {d}")?;
        }
        if self.weight != 1 {
            write!(f, " weight {}", self.weight)?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        Ok(())
    }
}

impl Route {
    /// A unicast route to `destination/prefix_len` in the main table, with
    /// no next hop yet: set `gateway` or `device`.
    pub fn new(destination: IpAddr, prefix_len: u8) -> Self {
        Route {
            destination,
            prefix_len,
            table: MAIN_TABLE,
            metric: None,
            gateway: None,
            device: None,
            source: None,
            protocol: PROTOCOL_KEEPALIVED,
            scope: None,
            kind: RouteKind::Unicast,
            onlink: false,
            nexthops: Vec::new(),
        }
    }

    /// The route's identity in the kernel.
    pub fn key(&self) -> RouteKey {
        RouteKey {
            table: self.table,
            destination: self.destination,
            prefix_len: self.prefix_len,
            metric: self.metric.unwrap_or(match self.destination {
                IpAddr::V4(_) => 0,
                IpAddr::V6(_) => IPV6_DEFAULT_METRIC,
            }),
        }
    }

    /// The scope sent to the kernel: as given, else universe (keepalived's
    /// choice).
    pub fn effective_scope(&self) -> u8 {
        self.scope.unwrap_or(RT_SCOPE_UNIVERSE)
    }

    fn check(&self) -> Result<(), RouteError> {
        let max = if self.destination.is_ipv4() { 32 } else { 128 };
        if self.prefix_len > max {
            return Err(RouteError::Prefix(format!(
                "{}/{}",
                self.destination, self.prefix_len
            )));
        }
        if masked(self.destination, self.prefix_len) != self.destination {
            return Err(RouteError::HostBits(format!(
                "{}/{}",
                self.destination, self.prefix_len
            )));
        }
        let hop_gateways = self.nexthops.iter().filter_map(|h| h.gateway);
        for other in [self.gateway, self.source]
            .into_iter()
            .flatten()
            .chain(hop_gateways)
        {
            if other.is_ipv4() != self.destination.is_ipv4() {
                return Err(RouteError::MixedFamily(other.to_string()));
            }
        }
        if self.table == 0 {
            return Err(RouteError::Value {
                word: "table",
                value: "0".into(),
            });
        }
        if !self.nexthops.is_empty() {
            if self.gateway.is_some() {
                return Err(RouteError::Multipath(
                    "`via` before `nexthop`: give each path its own `via`".into(),
                ));
            }
            if let Some(h) = self
                .nexthops
                .iter()
                .find(|h| h.gateway.is_none() && h.device.is_none())
            {
                return Err(RouteError::Multipath(format!(
                    "`{h}` has neither `via` nor `dev`"
                )));
            }
            if let Some(h) = self
                .nexthops
                .iter()
                .find(|h| !(1..=256).contains(&h.weight))
            {
                return Err(RouteError::Value {
                    word: "weight",
                    value: h.weight.to_string(),
                });
            }
        }
        if self.kind == RouteKind::Unicast
            && self.gateway.is_none()
            && self.device.is_none()
            && self.nexthops.is_empty()
        {
            return Err(RouteError::NoNextHop);
        }
        if !self.kind.has_next_hop()
            && (self.gateway.is_some() || self.device.is_some() || !self.nexthops.is_empty())
        {
            return Err(RouteError::NextHopNotAllowed(
                self.kind.name().unwrap_or("this").to_owned(),
            ));
        }
        Ok(())
    }
}

/// A route's identity in the kernel: two routes with the same key do not
/// coexist in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    /// The table.
    pub table: u32,
    /// Destination network.
    pub destination: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// The metric, with the kernel's default applied.
    pub metric: u32,
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} table {} metric {}",
            self.destination, self.prefix_len, self.table, self.metric
        )
    }
}

/// Why a route's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// A keyword is missing its value.
    #[error("`{0}` needs a value")]
    MissingValue(&'static str),
    /// A keyword's value does not parse.
    #[error("invalid {word} `{value}`")]
    Value {
        /// The keyword.
        word: &'static str,
        /// What was written.
        value: String,
    },
    /// A word that is not part of the route syntax this driver supports.
    #[error(
        "`{0}` is not supported in a route (supported: [TYPE] DEST/LEN, via, dev, src, table, metric, proto, scope, onlink, nexthop via/dev/weight/onlink, or)"
    )]
    Unsupported(String),
    /// No destination was given.
    #[error("a route needs a destination")]
    NoDestination,
    /// Two destinations were given.
    #[error("two destinations: `{0}`")]
    TwoDestinations(String),
    /// The prefix length is beyond the address size.
    #[error("prefix length out of range in {0}")]
    Prefix(String),
    /// Host bits set in the destination.
    #[error("{0} has host bits set: write the network address")]
    HostBits(String),
    /// IPv4 and IPv6 mixed in one route.
    #[error("{0} is not of the destination's address family")]
    MixedFamily(String),
    /// A unicast route with neither gateway nor device.
    #[error("a unicast route needs `via` or `dev`")]
    NoNextHop,
    /// A next hop on a route type that has none.
    #[error("a {0} route has no next hop: remove `via`, `dev` and `nexthop`")]
    NextHopNotAllowed(String),
    /// A multipath route written wrongly.
    #[error("multipath route: {0}")]
    Multipath(String),
}

pub(crate) fn masked(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            IpAddr::from((bits & mask).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            IpAddr::from((bits & mask).to_be_bytes())
        }
    }
}

/// Parses `ADDR[/LEN]` (a bare address is a host route); `default` is
/// the whole family (IPv4 unless `v6`).
pub(crate) fn parse_prefix(text: &str, v6: bool) -> Result<(IpAddr, u8), RouteError> {
    let bad = || RouteError::Value {
        word: "destination",
        value: text.to_owned(),
    };
    if text == "default" || text == "all" || text == "any" {
        let zero = if v6 {
            IpAddr::from([0u8; 16])
        } else {
            IpAddr::from([0u8; 4])
        };
        return Ok((zero, 0));
    }
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().map_err(|_| bad())?,
        None => max,
    };
    if len > max {
        return Err(RouteError::Prefix(text.to_owned()));
    }
    Ok((addr, len))
}

pub(crate) fn number<T: FromStr>(word: &'static str, value: &str) -> Result<T, RouteError> {
    value.parse().map_err(|_| RouteError::Value {
        word,
        value: value.to_owned(),
    })
}

/// A table, a protocol or a scope: a number or one of iproute2's names.
pub(crate) fn named(
    word: &'static str,
    value: &str,
    names: &[(&str, u32)],
) -> Result<u32, RouteError> {
    names
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, v)| *v)
        .map_or_else(|| number(word, value), Ok)
}

pub(crate) const TABLE_NAMES: &[(&str, u32)] = &[("main", 254), ("local", 255), ("default", 253)];
pub(crate) const PROTOCOL_NAMES: &[(&str, u32)] = &[
    ("redirect", 1),
    ("kernel", 2),
    ("boot", 3),
    ("static", 4),
    ("keepalived", 18),
    ("bird", 12),
    ("zebra", 11),
    ("bgp", 186),
];
const SCOPE_NAMES: &[(&str, u32)] = &[
    ("global", 0),
    ("universe", 0),
    ("site", 200),
    ("link", 253),
    ("host", 254),
    ("nowhere", 255),
];

impl FromStr for Route {
    type Err = RouteError;

    /// Parses iproute2's / keepalived's route words:
    /// `[TYPE] DEST[/LEN] [via GW [or GW2]] [dev IF] [src ADDR] [table T]
    /// [metric|priority|preference N] [proto P] [scope S] [onlink]
    /// [nexthop [via GW] [dev IF] [weight W] [onlink]]...`. As in
    /// keepalived, the `nexthop` groups end the route, and `via A or B` is
    /// the two next hops `via A` and `via B`.
    fn from_str(text: &str) -> Result<Self, RouteError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let v6 = words.iter().any(|w| w.contains(':'));
        let mut route = Route::new(IpAddr::from([0u8; 4]), 0);
        let mut destination = None;
        let mut i = 0;
        while let Some(&word) = words.get(i) {
            let mut value = |name: &'static str| -> Result<&str, RouteError> {
                i += 1;
                words.get(i).copied().ok_or(RouteError::MissingValue(name))
            };
            match word {
                "via" | "gw" => route.gateway = Some(gateway(&mut value)?),
                "dev" | "oif" => route.device = Some(value("dev")?.to_owned()),
                "src" => route.source = Some(number("src", value("src")?)?),
                "table" => route.table = named("table", value("table")?, TABLE_NAMES)?,
                "metric" | "priority" | "preference" => {
                    route.metric = Some(number("metric", value("metric")?)?);
                }
                "proto" | "protocol" => {
                    let p = named("proto", value("proto")?, PROTOCOL_NAMES)?;
                    route.protocol = u8::try_from(p).map_err(|_| RouteError::Value {
                        word: "proto",
                        value: p.to_string(),
                    })?;
                }
                "scope" => {
                    let s = named("scope", value("scope")?, SCOPE_NAMES)?;
                    route.scope = Some(u8::try_from(s).map_err(|_| RouteError::Value {
                        word: "scope",
                        value: s.to_string(),
                    })?);
                }
                "onlink" => route.onlink = true,
                "or" => {
                    let first = route.gateway.take().ok_or_else(|| {
                        RouteError::Multipath("`or` needs a `via` before it".into())
                    })?;
                    if !route.nexthops.is_empty() {
                        return Err(RouteError::Multipath("a second `or`".into()));
                    }
                    let second = number("gateway", value("or")?)?;
                    route.nexthops = vec![NextHop::via(first), NextHop::via(second)];
                }
                "nexthop" => {
                    if !route.nexthops.is_empty() {
                        return Err(RouteError::Multipath(
                            "`nexthop` after `or`: write every path as `nexthop`".into(),
                        ));
                    }
                    route.nexthops = parse_nexthops(&words[i..])?;
                    break;
                }
                "inet" | "inet6" | "to" => {}
                _ => {
                    if let Some(kind) = RouteKind::from_name(word) {
                        route.kind = kind;
                    } else if word.starts_with(|c: char| c.is_ascii_hexdigit())
                        || word == "default"
                        || word.contains(':')
                    {
                        if destination.is_some() {
                            return Err(RouteError::TwoDestinations(word.to_owned()));
                        }
                        destination = Some(parse_prefix(word, v6)?);
                    } else {
                        return Err(RouteError::Unsupported(word.to_owned()));
                    }
                }
            }
            i += 1;
        }
        let (addr, len) = destination.ok_or(RouteError::NoDestination)?;
        route.destination = addr;
        route.prefix_len = len;
        route.check()?;
        Ok(route)
    }
}

/// The gateway after `via`, with iproute2's optional family word
/// (`via inet6 2001:db8::1`); `value` takes the next word.
fn gateway<'w>(
    value: &mut impl FnMut(&'static str) -> Result<&'w str, RouteError>,
) -> Result<IpAddr, RouteError> {
    let mut v = value("via")?;
    if v == "inet" || v == "inet6" {
        v = value("via")?;
    }
    number("gateway", v)
}

/// The `nexthop ...` groups that end a route's words (`words` starts at
/// the first `nexthop`).
fn parse_nexthops(words: &[&str]) -> Result<Vec<NextHop>, RouteError> {
    let mut hops = Vec::new();
    let mut i = 0;
    while let Some(&word) = words.get(i) {
        let mut value = |name: &'static str| -> Result<&str, RouteError> {
            i += 1;
            words.get(i).copied().ok_or(RouteError::MissingValue(name))
        };
        match word {
            "nexthop" => hops.push(NextHop {
                gateway: None,
                device: None,
                weight: 1,
                onlink: false,
            }),
            other => {
                let hop = hops
                    .last_mut()
                    .ok_or_else(|| RouteError::Unsupported(other.to_owned()))?;
                match other {
                    "via" | "gw" => hop.gateway = Some(gateway(&mut value)?),
                    "dev" => hop.device = Some(value("dev")?.to_owned()),
                    "weight" => hop.weight = number("weight", value("weight")?)?,
                    "onlink" => hop.onlink = true,
                    _ => {
                        return Err(RouteError::Multipath(format!(
                            "`{other}` after `nexthop`: a multipath route ends with its next hops (each: via, dev, weight, onlink)"
                        )));
                    }
                }
            }
        }
        i += 1;
    }
    Ok(hops)
}

impl fmt::Display for Route {
    /// The route in the words [`Route::from_str`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind != RouteKind::Unicast
            && let Some(name) = self.kind.name()
        {
            write!(f, "{name} ")?;
        }
        write!(f, "{}/{}", self.destination, self.prefix_len)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(d) = &self.device {
            write!(f, " dev {d}")?;
        }
        if let Some(s) = self.source {
            write!(f, " src {s}")?;
        }
        write!(f, " table {}", self.table)?;
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        write!(f, " proto {}", self.protocol)?;
        if let Some(s) = self.scope {
            write!(f, " scope {s}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        for hop in &self.nexthops {
            write!(f, " {hop}")?;
        }
        Ok(())
    }
}

/// A route as the kernel reports it (the parts the driver looks at).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelRoute {
    /// Its identity.
    pub key: RouteKey,
    /// Gateway, if any.
    pub gateway: Option<IpAddr>,
    /// Output interface index, if any.
    pub ifindex: Option<u32>,
    /// Originating protocol.
    pub protocol: u8,
    /// What it does.
    pub kind: RouteKind,
}

impl KernelRoute {
    /// Parses an `RTM_NEWROUTE` / `RTM_DELROUTE` payload; `None` when
    /// malformed, of another family, or a cloned (cache) route.
    pub(crate) fn parse(payload: &[u8]) -> Option<Self> {
        let header = payload.get(..RTMSG_LEN)?;
        let family = i32::from(*header.first()?);
        let prefix_len = *header.get(1)?;
        let mut table = u32::from(*header.get(4)?);
        let protocol = *header.get(5)?;
        let kind = RouteKind::from_raw(*header.get(7)?);
        let flags = read_u32(header.get(8..12)?)?;
        // RTM_F_CLONED: a cache entry, not a route.
        if flags & 0x200 != 0 {
            return None;
        }
        let v6 = match family {
            libc::AF_INET => false,
            libc::AF_INET6 => true,
            _ => return None,
        };
        let mut destination = None;
        let mut gateway = None;
        let mut ifindex = None;
        let mut metric = None;
        for (ty, value) in attributes(payload.get(RTMSG_LEN..)?) {
            match ty {
                RTA_DST => destination = ip(v6, value),
                RTA_GATEWAY => gateway = ip(v6, value),
                RTA_OIF => ifindex = read_u32(value),
                RTA_PRIORITY => metric = read_u32(value),
                RTA_TABLE => table = read_u32(value).unwrap_or(table),
                _ => {}
            }
        }
        let destination = destination.unwrap_or(if v6 {
            IpAddr::from([0u8; 16])
        } else {
            IpAddr::from([0u8; 4])
        });
        Some(KernelRoute {
            key: RouteKey {
                table,
                destination,
                prefix_len,
                metric: metric.unwrap_or(0),
            },
            gateway,
            ifindex,
            protocol,
            kind,
        })
    }
}

pub(crate) fn ip(v6: bool, bytes: &[u8]) -> Option<IpAddr> {
    if v6 {
        let o: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
        Some(IpAddr::from(o))
    } else {
        let o: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        Some(IpAddr::from(o))
    }
}

pub(crate) fn octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Appends one route attribute, padded to 4 bytes.
pub(crate) fn push_attr(out: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(payload);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Encodes `struct rtmsg` and its attributes for adding (`add`) or
/// deleting `route`, whose device has index `ifindex` and whose next hops'
/// devices have the indexes `hop_ifindex` (in order; missing ones are 0).
/// A deletion names the protocol, gateway and device too, so that it
/// removes this route and never another one with the same key.
pub(crate) fn encode(
    route: &Route,
    ifindex: Option<u32>,
    hop_ifindex: &[Option<u32>],
    add: bool,
) -> Vec<u8> {
    let family = if route.destination.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    } as u8;
    let table_byte = u8::try_from(route.table).unwrap_or(0);
    let scope = if add {
        route.effective_scope()
    } else {
        RT_SCOPE_NOWHERE
    };
    let flags: u32 = if route.onlink { RTNH_F_ONLINK } else { 0 };
    let mut out = vec![
        family,
        route.prefix_len,
        0, // src_len
        0, // tos
        table_byte,
        route.protocol,
        scope,
        route.kind.raw(),
    ];
    out.extend_from_slice(&flags.to_ne_bytes());
    push_attr(&mut out, RTA_TABLE, &route.table.to_ne_bytes());
    if route.prefix_len > 0 {
        push_attr(&mut out, RTA_DST, &octets(route.destination));
    }
    if let Some(m) = route.metric {
        push_attr(&mut out, RTA_PRIORITY, &m.to_ne_bytes());
    }
    if let Some(g) = route.gateway {
        push_attr(&mut out, RTA_GATEWAY, &octets(g));
    }
    if let Some(i) = ifindex {
        push_attr(&mut out, RTA_OIF, &i.to_ne_bytes());
    }
    if add && let Some(s) = route.source {
        push_attr(&mut out, RTA_PREFSRC, &octets(s));
    }
    if !route.nexthops.is_empty() {
        let mut hops = Vec::new();
        for (n, hop) in route.nexthops.iter().enumerate() {
            let mut attrs = Vec::new();
            if let Some(g) = hop.gateway {
                push_attr(&mut attrs, RTA_GATEWAY, &octets(g));
            }
            let len = u16::try_from(RTNH_LEN + attrs.len()).unwrap_or(u16::MAX);
            let flags: u8 = if hop.onlink { RTNH_F_ONLINK as u8 } else { 0 };
            // rtnh_hops is the weight minus one (iproute2, keepalived).
            let hops_field = u8::try_from(hop.weight.saturating_sub(1)).unwrap_or(u8::MAX);
            let index = hop_ifindex.get(n).copied().flatten().unwrap_or(0);
            hops.extend_from_slice(&len.to_ne_bytes());
            hops.push(flags);
            hops.push(hops_field);
            hops.extend_from_slice(&index.to_ne_bytes());
            hops.extend_from_slice(&attrs);
        }
        push_attr(&mut out, RTA_MULTIPATH, &hops);
    }
    out
}

/// The interface indexes of `route`'s next hops' devices; a device that
/// does not exist is the kernel's ENODEV, as a single-path route's would be.
fn hop_indexes(route: &Route, op: &'static str) -> Result<Vec<Option<u32>>, NetlinkError> {
    route
        .nexthops
        .iter()
        .map(|h| match &h.device {
            None => Ok(None),
            Some(name) => {
                crate::link::ifindex_of(name)
                    .map(Some)
                    .map_err(|_| NetlinkError::Kernel {
                        op,
                        errno: libc::ENODEV,
                    })
            }
        })
        .collect()
}

/// A handle for route changes and dumps, holding one rtnetlink socket
/// opened in the calling thread's network namespace.
#[derive(Debug)]
pub struct RouteManager {
    socket: RtSocket,
    /// The kernel honours the table of a dump request.
    strict: bool,
}

impl RouteManager {
    /// Opens the rtnetlink socket. Must be called inside a tokio runtime.
    pub fn new() -> Result<Self, NetlinkError> {
        let socket = RtSocket::connect(&[])?;
        let strict = socket.strict_dumps();
        Ok(Self { socket, strict })
    }

    /// Lists the routes of the given tables, both families: one dump per
    /// table, so that a host with a full routing table in another one is
    /// not read whole (kernels before 4.20 ignore the filter: everything is
    /// read once, and the caller keeps what it follows).
    pub async fn list_tables(
        &self,
        tables: &std::collections::BTreeSet<u32>,
    ) -> Result<Vec<KernelRoute>, NetlinkError> {
        self.list_tables_where(tables, |_| true).await
    }

    /// Like [`RouteManager::list_tables`], keeping only the routes `keep`
    /// accepts, as they are read: a full routing table in one of the
    /// tables is parsed, never held.
    pub async fn list_tables_where(
        &self,
        tables: &std::collections::BTreeSet<u32>,
        keep: impl Fn(&KernelRoute) -> bool,
    ) -> Result<Vec<KernelRoute>, NetlinkError> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        if !self.strict {
            let mut request = vec![0u8; RTMSG_LEN];
            request[0] = libc::AF_UNSPEC as u8;
            return self
                .socket
                .dump_map(
                    "list routes",
                    Rtm::Getroute,
                    Buffer::from(request),
                    |ty, payload| {
                        parse_new(ty, payload).filter(|r| tables.contains(&r.key.table) && keep(r))
                    },
                )
                .await;
        }
        let mut out = Vec::new();
        for table in tables {
            let mut request = vec![0u8; RTMSG_LEN];
            request[0] = libc::AF_UNSPEC as u8;
            request[4] = u8::try_from(*table).unwrap_or(0);
            push_attr(&mut request, RTA_TABLE, &table.to_ne_bytes());
            out.extend(
                self.socket
                    .dump_map(
                        "list routes",
                        Rtm::Getroute,
                        Buffer::from(request),
                        |ty, payload| {
                            parse_new(ty, payload).filter(|r| r.key.table == *table && keep(r))
                        },
                    )
                    .await?,
            );
        }
        Ok(out)
    }

    /// Adds `route` (its device has index `ifindex`). Returns `true` if it
    /// was added, `false` if a route with its key was already there
    /// (EEXIST): someone else's, left alone.
    pub async fn add(&self, route: &Route, ifindex: Option<u32>) -> Result<bool, NetlinkError> {
        let hops = hop_indexes(route, "add route")?;
        let msg = Buffer::from(encode(route, ifindex, &hops, true));
        match self
            .socket
            .request_ack("add route", Rtm::Newroute, NlmF::CREATE | NlmF::EXCL, msg)
            .await
        {
            Ok(()) => Ok(true),
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::EEXIST => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Removes `route`. Returns `true` if it was removed, `false` if it
    /// was not there (ESRCH).
    pub async fn remove(&self, route: &Route, ifindex: Option<u32>) -> Result<bool, NetlinkError> {
        // The kernel matches a deletion's next hops only when it names
        // them; without a device, the key, protocol and gateway suffice.
        let hops = hop_indexes(route, "remove route").unwrap_or_default();
        let msg = Buffer::from(encode(route, ifindex, &hops, false));
        match self
            .socket
            .request_ack("remove route", Rtm::Delroute, NlmF::empty(), msg)
            .await
        {
            Ok(()) => Ok(true),
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::ESRCH => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Lists the routes of every table, both families (cache entries
    /// left out).
    pub async fn list(&self) -> Result<Vec<KernelRoute>, NetlinkError> {
        let mut request = vec![0u8; RTMSG_LEN];
        request[0] = libc::AF_UNSPEC as u8;
        let messages = self
            .socket
            .dump("list routes", Rtm::Getroute, Buffer::from(request))
            .await?;
        Ok(messages
            .iter()
            .filter(|m| m.ty == u16::from(Rtm::Newroute))
            .filter_map(|m| KernelRoute::parse(&m.payload))
            .collect())
    }
}

/// A route of a dump's reply message (`RTM_NEWROUTE`), if it is one.
fn parse_new(ty: u16, payload: &[u8]) -> Option<KernelRoute> {
    if ty == u16::from(Rtm::Newroute) {
        KernelRoute::parse(payload)
    } else {
        None
    }
}

/// A change of the kernel's routes, as notified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteEvent {
    /// A route was added or changed.
    Added(KernelRoute),
    /// A route was removed.
    Removed(KernelRoute),
}

/// Follows the kernel's route notifications (`RTNLGRP_IPV4_ROUTE`,
/// `RTNLGRP_IPV6_ROUTE`).
#[derive(Debug)]
pub struct RouteWatcher {
    socket: RtSocket,
}

impl RouteWatcher {
    /// Subscribes. Must be called inside a tokio runtime.
    pub fn new() -> Result<Self, NetlinkError> {
        Ok(Self {
            socket: RtSocket::connect(&[libc::RTNLGRP_IPV4_ROUTE, libc::RTNLGRP_IPV6_ROUTE])?,
        })
    }

    /// The next batch of route changes ([`NetlinkError::Overrun`] when
    /// some were lost: read everything again).
    pub async fn next(&self) -> Result<Vec<RouteEvent>, NetlinkError> {
        let messages = self.socket.recv_notifications().await?;
        Ok(messages
            .iter()
            .filter_map(|m| {
                let route = KernelRoute::parse(&m.payload)?;
                if m.ty == u16::from(Rtm::Newroute) {
                    Some(RouteEvent::Added(route))
                } else if m.ty == u16::from(Rtm::Delroute) {
                    Some(RouteEvent::Removed(route))
                } else {
                    None
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Route, RouteError> {
        text.parse()
    }

    #[test]
    fn keepalived_route_words_parse_and_print_back() {
        let r = parse("192.0.2.0/24 via 198.51.100.1 dev eth0 table 100 metric 5");
        let r = r.as_ref();
        assert_eq!(r.map(|r| r.table), Ok(100));
        assert_eq!(r.map(|r| r.metric), Ok(Some(5)));
        assert_eq!(r.map(|r| r.device.clone()), Ok(Some("eth0".into())));
        assert_eq!(r.map(|r| r.protocol), Ok(PROTOCOL_KEEPALIVED));
        assert_eq!(r.map(|r| r.effective_scope()), Ok(RT_SCOPE_UNIVERSE));
        for text in [
            "192.0.2.0/24 via 198.51.100.1 dev eth0 table 100 metric 5",
            "default via 192.0.2.1",
            "blackhole 203.0.113.0/24 table main",
            "2001:db8:1::/48 dev eth1 src 2001:db8::1 proto static scope link onlink",
            "to unreachable 198.51.100.7",
        ] {
            let route = parse(text);
            assert!(route.is_ok(), "{text}: {route:?}");
            let route = route.unwrap_or_else(|_| Route::new(IpAddr::from([0u8; 4]), 0));
            assert_eq!(parse(&route.to_string()), Ok(route.clone()), "{text}");
        }
        let d = parse("192.0.2.5 dev eth0");
        assert_eq!(d.as_ref().map(|r| r.prefix_len), Ok(32));
        assert_eq!(d.map(|r| r.effective_scope()), Ok(RT_SCOPE_UNIVERSE));
        assert_eq!(
            parse("192.0.2.5 dev eth0 scope link").map(|r| r.effective_scope()),
            Ok(253)
        );
        assert_eq!(
            parse("2001:db8::/64 dev eth0").map(|r| r.key().metric),
            Ok(1024)
        );
    }

    #[test]
    fn multipath_routes_parse_print_back_and_encode_rta_multipath() {
        let text = "198.51.100.0/24 table 100 nexthop via 192.0.2.254 dev eth0 weight 3 nexthop via 192.0.2.253 onlink";
        let r = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(r.nexthops.len(), 2);
        assert_eq!(r.nexthops[0].weight, 3);
        assert_eq!(r.nexthops[0].device.as_deref(), Some("eth0"));
        assert!(r.nexthops[1].onlink && r.nexthops[1].weight == 1);
        assert_eq!(parse(&r.to_string()), Ok(r.clone()));
        // keepalived's deprecated `via A or B`: two next hops.
        let or = parse("192.168.113.0/24 via 192.168.100.252 or 192.168.100.253");
        assert_eq!(
            or.as_ref().map(|r| (r.gateway, r.nexthops.clone())),
            Ok((
                None,
                vec![
                    NextHop::via(IpAddr::from([192, 168, 100, 252])),
                    NextHop::via(IpAddr::from([192, 168, 100, 253]))
                ]
            ))
        );
        let bytes = encode(&r, None, &[Some(7), None], true);
        // Find RTA_MULTIPATH and walk its two rtnexthops.
        let mut at = RTMSG_LEN;
        let mut hops = None;
        while at + 4 <= bytes.len() {
            let len = usize::from(u16::from_ne_bytes([bytes[at], bytes[at + 1]]));
            let ty = u16::from_ne_bytes([bytes[at + 2], bytes[at + 3]]);
            if ty == RTA_MULTIPATH {
                hops = Some(bytes[at + 4..at + len].to_vec());
            }
            at += len.div_ceil(4) * 4;
        }
        let hops = hops.unwrap_or_else(|| panic!("no RTA_MULTIPATH in {bytes:?}"));
        // First: length 8 + one 8-byte gateway attribute, weight 3 as
        // rtnh_hops 2, interface 7, gateway 192.0.2.254.
        assert_eq!(&hops[..4], &[16, 0, 0, 2]);
        assert_eq!(&hops[4..8], &7u32.to_ne_bytes());
        assert_eq!(&hops[12..16], &[192, 0, 2, 254]);
        // Second: onlink, weight 1, no interface.
        assert_eq!(&hops[16..20], &[16, 0, RTNH_F_ONLINK as u8, 0]);
        assert_eq!(&hops[20..24], &0u32.to_ne_bytes());
        assert_eq!(hops.len(), 32);
    }

    #[test]
    fn bad_multipath_routes_are_refused_with_the_reason() {
        for (text, want) in [
            (
                "198.51.100.0/24 via 192.0.2.1 nexthop via 192.0.2.2",
                "`via` before `nexthop`",
            ),
            (
                "198.51.100.0/24 nexthop weight 2",
                "neither `via` nor `dev`",
            ),
            (
                "198.51.100.0/24 nexthop via 192.0.2.2 table 5",
                "`table` after `nexthop`",
            ),
            (
                "198.51.100.0/24 dev eth0 or 192.0.2.2",
                "`or` needs a `via`",
            ),
            (
                "198.51.100.0/24 via 192.0.2.1 or 192.0.2.2 nexthop via 192.0.2.3",
                "`nexthop` after `or`",
            ),
        ] {
            let got = parse(text).map_err(|e| e.to_string());
            assert!(
                got.as_ref().is_err_and(|e| e.contains(want)),
                "{text}: {got:?}"
            );
        }
        assert!(matches!(
            parse("198.51.100.0/24 nexthop via 192.0.2.2 weight 257"),
            Err(RouteError::Value { word: "weight", .. })
        ));
        assert!(matches!(
            parse("198.51.100.0/24 nexthop via 2001:db8::1"),
            Err(RouteError::MixedFamily(_))
        ));
        assert!(matches!(
            parse("blackhole 198.51.100.0/24 nexthop dev eth0"),
            Err(RouteError::NextHopNotAllowed(_))
        ));
    }

    #[test]
    fn bad_routes_are_refused_with_the_reason() {
        assert_eq!(parse("via 192.0.2.1"), Err(RouteError::NoDestination));
        assert_eq!(
            parse("192.0.2.1/24 dev eth0"),
            Err(RouteError::HostBits("192.0.2.1/24".into()))
        );
        assert_eq!(parse("192.0.2.0/24"), Err(RouteError::NoNextHop));
        assert!(matches!(
            parse("192.0.2.0/24 via 2001:db8::1"),
            Err(RouteError::MixedFamily(_))
        ));
        assert!(matches!(
            parse("192.0.2.0/24 dev eth0 mtu 1400"),
            Err(RouteError::Unsupported(w)) if w == "mtu"
        ));
        assert_eq!(
            parse("192.0.2.0/24 dev"),
            Err(RouteError::MissingValue("dev"))
        );
        assert!(matches!(
            parse("blackhole 192.0.2.0/24 dev eth0"),
            Err(RouteError::NextHopNotAllowed(_))
        ));
        assert!(matches!(
            parse("192.0.2.0/33 dev eth0"),
            Err(RouteError::Prefix(_))
        ));
    }

    #[test]
    fn messages_round_trip_and_garbage_never_panics() {
        let route = parse("198.51.100.0/24 via 192.0.2.1 dev eth0 table 1000 metric 7")
            .unwrap_or_else(|_| Route::new(IpAddr::from([0u8; 4]), 0));
        let bytes = encode(&route, Some(3), &[], true);
        let back = KernelRoute::parse(&bytes);
        assert_eq!(back.as_ref().map(|r| r.key), Some(route.key()));
        assert_eq!(back.as_ref().and_then(|r| r.ifindex), Some(3));
        assert_eq!(
            back.as_ref().and_then(|r| r.gateway),
            Some(IpAddr::from([192, 0, 2, 1]))
        );
        // Table 1000 does not fit rtm_table: only RTA_TABLE says it.
        assert_eq!(bytes.get(4), Some(&0));
        for cut in 0..bytes.len() {
            let _ = KernelRoute::parse(&bytes[..cut]);
        }
        let mut flipped = bytes.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xa5;
            let _ = KernelRoute::parse(&flipped);
        }
    }
}
