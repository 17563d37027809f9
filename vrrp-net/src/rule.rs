//! Policy routing rules through rtnetlink: the [`Rule`] a driver installs
//! (in iproute2's and keepalived's words: `from 192.0.2.0/24 table 100`,
//! `fwmark 0x10/0xff priority 100 lookup 200`), the rule messages
//! (`RTM_NEWRULE`, `RTM_DELRULE`, dumps) encoded and decoded by hand with
//! bounds checks, and [`RuleManager`] to add, remove and list them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use neli::consts::nl::NlmF;
use neli::consts::rtnl::Rtm;
use neli::types::Buffer;

pub use crate::netlink::NetlinkError;
use crate::netlink::{RtSocket, attributes, read_string, read_u32};
use crate::route::{
    MAIN_TABLE, PROTOCOL_KEEPALIVED, PROTOCOL_NAMES, RouteError, TABLE_NAMES, ip, masked, named,
    number, octets, parse_prefix, push_attr,
};

const FRA_DST: u16 = 1;
const FRA_SRC: u16 = 2;
const FRA_IIFNAME: u16 = 3;
const FRA_GOTO: u16 = 4;
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;
const FRA_OIFNAME: u16 = 17;
const FRA_PROTOCOL: u16 = 21;
/// Size of `struct fib_rule_hdr`.
const HDR_LEN: usize = 12;

/// What a rule does with the packets it matches (`action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RuleAction {
    /// Look the packet up in a table (`table N`, `lookup N`).
    Table(u32),
    /// Go on at the rule of this priority (`goto N`).
    Goto(u32),
    /// Do nothing (`nop`).
    Nop,
    /// Drop silently (`blackhole`).
    Blackhole,
    /// Refuse with "network unreachable" (`unreachable`).
    Unreachable,
    /// Refuse with "administratively prohibited" (`prohibit`).
    Prohibit,
    /// Another `FR_ACT_*` value, as the kernel reported it.
    Other(u8),
}

impl RuleAction {
    fn raw(self) -> u8 {
        match self {
            RuleAction::Table(_) => 1,
            RuleAction::Goto(_) => 2,
            RuleAction::Nop => 3,
            RuleAction::Blackhole => 6,
            RuleAction::Unreachable => 7,
            RuleAction::Prohibit => 8,
            RuleAction::Other(v) => v,
        }
    }
}

/// A policy routing rule to install.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    /// An IPv6 rule (else IPv4).
    pub ipv6: bool,
    /// Priority (`priority`, `preference`, `order`); the kernel picks one
    /// when `None`.
    pub priority: Option<u32>,
    /// Source network (`from`).
    pub from: Option<(IpAddr, u8)>,
    /// Destination network (`to`).
    pub to: Option<(IpAddr, u8)>,
    /// TOS (`tos`, `dsfield`).
    pub tos: u8,
    /// Firewall mark (`fwmark N`).
    pub fwmark: Option<u32>,
    /// Its mask (`fwmark N/M`); all bits when `None`.
    pub fwmask: Option<u32>,
    /// Incoming interface (`iif`, `dev`).
    pub iif: Option<String>,
    /// Outgoing interface (`oif`).
    pub oif: Option<String>,
    /// What it does.
    pub action: RuleAction,
    /// Originating protocol (`protocol`), keepalived's (18) by default.
    pub protocol: u8,
}

/// A rule's identity in the kernel: every match and the action (not the
/// protocol).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleKey {
    ipv6: bool,
    priority: Option<u32>,
    from: Option<(IpAddr, u8)>,
    to: Option<(IpAddr, u8)>,
    tos: u8,
    fwmark: Option<(u32, u32)>,
    iif: Option<String>,
    oif: Option<String>,
    action: RuleAction,
}

impl RuleKey {
    /// Whether the kernel's rule `seen` is this one: equal, or equal but
    /// for the priority the kernel chose for a rule written without one.
    pub fn covers(&self, seen: &RuleKey) -> bool {
        self == seen
            || (self.priority.is_none()
                && RuleKey {
                    priority: None,
                    ..seen.clone()
                } == *self)
    }
}

impl Rule {
    /// The rule's identity.
    pub fn key(&self) -> RuleKey {
        RuleKey {
            ipv6: self.ipv6,
            priority: self.priority,
            from: self.from.filter(|(_, l)| *l > 0),
            to: self.to.filter(|(_, l)| *l > 0),
            tos: self.tos,
            fwmark: self.fwmark.map(|m| (m, self.fwmask.unwrap_or(u32::MAX))),
            iif: self.iif.clone(),
            oif: self.oif.clone(),
            action: self.action,
        }
    }
}

/// Why a rule's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// A keyword is missing its value.
    #[error("`{0}` needs a value")]
    MissingValue(&'static str),
    /// A value does not parse.
    #[error("{0}")]
    Value(RouteError),
    /// A word that is not part of the rule syntax this driver supports.
    #[error(
        "`{0}` is not supported in a rule (supported: from, to, priority, tos, fwmark, iif, oif, table, goto, nop, blackhole, unreachable, prohibit, protocol)"
    )]
    Unsupported(String),
    /// IPv4 and IPv6 mixed in one rule.
    #[error("{0} is not of the rule's address family")]
    MixedFamily(String),
    /// Two actions were given.
    #[error("a rule has one action: `{0}` is a second one")]
    TwoActions(String),
}

impl From<RouteError> for RuleError {
    fn from(e: RouteError) -> Self {
        RuleError::Value(e)
    }
}

fn prefix(text: &str, v6: bool) -> Result<(IpAddr, u8), RuleError> {
    let (addr, len) = parse_prefix(text, v6)?;
    if masked(addr, len) != addr {
        return Err(RouteError::HostBits(format!("{addr}/{len}")).into());
    }
    Ok((addr, len))
}

/// A number in decimal or `0x` hexadecimal, as iproute2 reads marks.
fn hex_or_dec(word: &'static str, value: &str) -> Result<u32, RuleError> {
    match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u32::from_str_radix(hex, 16).map_err(|_| {
            RuleError::Value(RouteError::Value {
                word,
                value: value.to_owned(),
            })
        }),
        None => Ok(number(word, value)?),
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    /// Parses iproute2's / keepalived's rule words.
    fn from_str(text: &str) -> Result<Self, RuleError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let v6 = words.iter().any(|w| w.contains(':')) || words.contains(&"inet6");
        let mut rule = Rule {
            ipv6: v6,
            priority: None,
            from: None,
            to: None,
            tos: 0,
            fwmark: None,
            fwmask: None,
            iif: None,
            oif: None,
            action: RuleAction::Table(MAIN_TABLE),
            protocol: PROTOCOL_KEEPALIVED,
        };
        let mut action: Option<RuleAction> = None;
        let mut i = 0;
        while let Some(&word) = words.get(i) {
            let mut value = |name: &'static str| -> Result<&str, RuleError> {
                i += 1;
                words.get(i).copied().ok_or(RuleError::MissingValue(name))
            };
            let mut set = |a: RuleAction| -> Result<(), RuleError> {
                match action.replace(a) {
                    Some(_) => Err(RuleError::TwoActions(word.to_owned())),
                    None => Ok(()),
                }
            };
            match word {
                "from" => rule.from = Some(prefix(value("from")?, v6)?),
                "to" => rule.to = Some(prefix(value("to")?, v6)?),
                "priority" | "preference" | "pref" | "order" => {
                    rule.priority = Some(number("priority", value("priority")?)?);
                }
                "tos" | "dsfield" => {
                    let v = hex_or_dec("tos", value("tos")?)?;
                    rule.tos = u8::try_from(v).map_err(|_| {
                        RuleError::Value(RouteError::Value {
                            word: "tos",
                            value: v.to_string(),
                        })
                    })?;
                }
                "fwmark" => {
                    let v = value("fwmark")?;
                    let (mark, mask) = match v.split_once('/') {
                        Some((m, k)) => (m, Some(k)),
                        None => (v, None),
                    };
                    rule.fwmark = Some(hex_or_dec("fwmark", mark)?);
                    rule.fwmask = mask.map(|k| hex_or_dec("fwmark mask", k)).transpose()?;
                }
                "iif" | "dev" => rule.iif = Some(value("iif")?.to_owned()),
                "oif" => rule.oif = Some(value("oif")?.to_owned()),
                "table" | "lookup" => {
                    let t = named("table", value("table")?, TABLE_NAMES)?;
                    set(RuleAction::Table(t))?;
                }
                "goto" => {
                    let t = number("goto", value("goto")?)?;
                    set(RuleAction::Goto(t))?;
                }
                "nop" => set(RuleAction::Nop)?,
                "blackhole" => set(RuleAction::Blackhole)?,
                "unreachable" => set(RuleAction::Unreachable)?,
                "prohibit" => set(RuleAction::Prohibit)?,
                "protocol" | "proto" => {
                    let p = named("protocol", value("protocol")?, PROTOCOL_NAMES)?;
                    rule.protocol = u8::try_from(p).map_err(|_| {
                        RuleError::Value(RouteError::Value {
                            word: "protocol",
                            value: p.to_string(),
                        })
                    })?;
                }
                "inet" | "inet6" => {}
                other => return Err(RuleError::Unsupported(other.to_owned())),
            }
            i += 1;
        }
        for (a, _) in [rule.from, rule.to].into_iter().flatten() {
            if a.is_ipv6() != v6 {
                return Err(RuleError::MixedFamily(a.to_string()));
            }
        }
        if let Some(a) = action {
            rule.action = a;
        }
        Ok(rule)
    }
}

impl fmt::Display for Rule {
    /// The rule in the words [`Rule::from_str`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.ipv6 { "inet6" } else { "inet" })?;
        if let Some((a, l)) = self.from {
            write!(f, " from {a}/{l}")?;
        }
        if let Some((a, l)) = self.to {
            write!(f, " to {a}/{l}")?;
        }
        if let Some(p) = self.priority {
            write!(f, " priority {p}")?;
        }
        if self.tos != 0 {
            write!(f, " tos {}", self.tos)?;
        }
        if let Some(m) = self.fwmark {
            write!(f, " fwmark {m:#x}")?;
            if let Some(k) = self.fwmask {
                write!(f, "/{k:#x}")?;
            }
        }
        if let Some(i) = &self.iif {
            write!(f, " iif {i}")?;
        }
        if let Some(o) = &self.oif {
            write!(f, " oif {o}")?;
        }
        match self.action {
            RuleAction::Table(t) => write!(f, " table {t}")?,
            RuleAction::Goto(t) => write!(f, " goto {t}")?,
            RuleAction::Nop => f.write_str(" nop")?,
            RuleAction::Blackhole => f.write_str(" blackhole")?,
            RuleAction::Unreachable => f.write_str(" unreachable")?,
            RuleAction::Prohibit => f.write_str(" prohibit")?,
            RuleAction::Other(v) => write!(f, " action {v}")?,
        }
        write!(f, " protocol {}", self.protocol)
    }
}

/// Parses an `RTM_NEWRULE` / `RTM_DELRULE` payload; `None` when malformed
/// or of another family.
pub(crate) fn parse(payload: &[u8]) -> Option<Rule> {
    let header = payload.get(..HDR_LEN)?;
    let v6 = match i32::from(*header.first()?) {
        libc::AF_INET => false,
        libc::AF_INET6 => true,
        _ => return None,
    };
    let dst_len = *header.get(1)?;
    let src_len = *header.get(2)?;
    let tos = *header.get(3)?;
    let mut table = u32::from(*header.get(4)?);
    let raw_action = *header.get(7)?;
    let mut rule = Rule {
        ipv6: v6,
        priority: Some(0),
        from: None,
        to: None,
        tos,
        fwmark: None,
        fwmask: None,
        iif: None,
        oif: None,
        action: RuleAction::Nop,
        protocol: 0,
    };
    let mut goto = 0;
    for (ty, value) in attributes(payload.get(HDR_LEN..)?) {
        match ty {
            FRA_SRC => rule.from = ip(v6, value).map(|a| (a, src_len)),
            FRA_DST => rule.to = ip(v6, value).map(|a| (a, dst_len)),
            FRA_IIFNAME => rule.iif = Some(read_string(value)),
            FRA_OIFNAME => rule.oif = Some(read_string(value)),
            FRA_PRIORITY => rule.priority = read_u32(value),
            FRA_FWMARK => rule.fwmark = read_u32(value),
            FRA_FWMASK => rule.fwmask = read_u32(value),
            FRA_TABLE => table = read_u32(value).unwrap_or(table),
            FRA_GOTO => goto = read_u32(value).unwrap_or(0),
            FRA_PROTOCOL => rule.protocol = *value.first()?,
            _ => {}
        }
    }
    // A mark 0 with mask 0 matches everything: no mark.
    if rule.fwmark == Some(0) && rule.fwmask.unwrap_or(0) == 0 {
        rule.fwmark = None;
        rule.fwmask = None;
    }
    rule.action = match raw_action {
        1 => RuleAction::Table(table),
        2 => RuleAction::Goto(goto),
        3 => RuleAction::Nop,
        6 => RuleAction::Blackhole,
        7 => RuleAction::Unreachable,
        8 => RuleAction::Prohibit,
        v => RuleAction::Other(v),
    };
    Some(rule)
}

/// Encodes `struct fib_rule_hdr` and its attributes for adding or
/// deleting `rule`. A deletion names the protocol too, so that it removes
/// this rule and never someone else's.
pub(crate) fn encode(rule: &Rule) -> Vec<u8> {
    let family = if rule.ipv6 {
        libc::AF_INET6
    } else {
        libc::AF_INET
    } as u8;
    let table = match rule.action {
        RuleAction::Table(t) => Some(t),
        _ => None,
    };
    let mut out = vec![
        family,
        rule.to.map_or(0, |(_, l)| l),
        rule.from.map_or(0, |(_, l)| l),
        rule.tos,
        table.and_then(|t| u8::try_from(t).ok()).unwrap_or(0),
        0,
        0,
        rule.action.raw(),
    ];
    out.extend_from_slice(&0u32.to_ne_bytes());
    if let Some(t) = table {
        push_attr(&mut out, FRA_TABLE, &t.to_ne_bytes());
    }
    if let RuleAction::Goto(t) = rule.action {
        push_attr(&mut out, FRA_GOTO, &t.to_ne_bytes());
    }
    if let Some((a, _)) = rule.from.filter(|(_, l)| *l > 0) {
        push_attr(&mut out, FRA_SRC, &octets(a));
    }
    if let Some((a, _)) = rule.to.filter(|(_, l)| *l > 0) {
        push_attr(&mut out, FRA_DST, &octets(a));
    }
    if let Some(p) = rule.priority {
        push_attr(&mut out, FRA_PRIORITY, &p.to_ne_bytes());
    }
    if let Some(m) = rule.fwmark {
        push_attr(&mut out, FRA_FWMARK, &m.to_ne_bytes());
        push_attr(
            &mut out,
            FRA_FWMASK,
            &rule.fwmask.unwrap_or(u32::MAX).to_ne_bytes(),
        );
    }
    for (ty, name) in [(FRA_IIFNAME, &rule.iif), (FRA_OIFNAME, &rule.oif)] {
        if let Some(n) = name {
            let mut bytes = n.as_bytes().to_vec();
            bytes.push(0);
            push_attr(&mut out, ty, &bytes);
        }
    }
    push_attr(&mut out, FRA_PROTOCOL, &[rule.protocol]);
    out
}

/// A handle for rule changes and dumps, holding one rtnetlink socket
/// opened in the calling thread's network namespace.
#[derive(Debug)]
pub struct RuleManager {
    socket: RtSocket,
}

impl RuleManager {
    /// Opens the rtnetlink socket. Must be called inside a tokio runtime.
    pub fn new() -> Result<Self, NetlinkError> {
        Ok(Self {
            socket: RtSocket::connect(&[])?,
        })
    }

    /// Adds `rule`. Returns `true` if it was added, `false` if the same
    /// rule was already there (EEXIST).
    pub async fn add(&self, rule: &Rule) -> Result<bool, NetlinkError> {
        match self
            .socket
            .request_ack(
                "add rule",
                Rtm::Newrule,
                NlmF::CREATE | NlmF::EXCL,
                Buffer::from(encode(rule)),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::EEXIST => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Removes `rule`. Returns `true` if it was removed, `false` if it was
    /// not there (ENOENT).
    pub async fn remove(&self, rule: &Rule) -> Result<bool, NetlinkError> {
        match self
            .socket
            .request_ack(
                "remove rule",
                Rtm::Delrule,
                NlmF::empty(),
                Buffer::from(encode(rule)),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::ENOENT => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Lists the rules of both families.
    pub async fn list(&self) -> Result<Vec<Rule>, NetlinkError> {
        let mut request = vec![0u8; HDR_LEN];
        request[0] = libc::AF_UNSPEC as u8;
        let messages = self
            .socket
            .dump("list rules", Rtm::Getrule, Buffer::from(request))
            .await?;
        Ok(messages
            .iter()
            .filter(|m| m.ty == u16::from(Rtm::Newrule))
            .filter_map(|m| parse(&m.payload))
            .collect())
    }
}

/// A change of the kernel's rules, as notified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleEvent {
    /// A rule was added.
    Added(Rule),
    /// A rule was removed.
    Removed(Rule),
}

/// Follows the kernel's rule notifications (`RTNLGRP_IPV4_RULE`,
/// `RTNLGRP_IPV6_RULE`).
#[derive(Debug)]
pub struct RuleWatcher {
    socket: RtSocket,
}

impl RuleWatcher {
    /// Subscribes. Must be called inside a tokio runtime.
    pub fn new() -> Result<Self, NetlinkError> {
        Ok(Self {
            socket: RtSocket::connect(&[libc::RTNLGRP_IPV4_RULE, libc::RTNLGRP_IPV6_RULE])?,
        })
    }

    /// The next batch of rule changes ([`NetlinkError::Overrun`] when
    /// some were lost: read everything again).
    pub async fn next(&self) -> Result<Vec<RuleEvent>, NetlinkError> {
        let messages = self.socket.recv_notifications().await?;
        Ok(messages
            .iter()
            .filter_map(|m| {
                let rule = parse(&m.payload)?;
                if m.ty == u16::from(Rtm::Newrule) {
                    Some(RuleEvent::Added(rule))
                } else if m.ty == u16::from(Rtm::Delrule) {
                    Some(RuleEvent::Removed(rule))
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

    fn rule(text: &str) -> Rule {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn keepalived_rule_words_parse_and_print_back() {
        for text in [
            "from 192.0.2.0/24 table 100",
            "to 198.51.100.0/24 lookup 1 priority 100",
            "from 2001:db8::/64 table 200",
            "fwmark 0x10/0xff iif eth0 oif eth1 tos 16 goto 500 priority 90",
            "from all blackhole",
            "to 203.0.113.0/24 prohibit protocol static",
        ] {
            let r = rule(text);
            assert_eq!(rule(&r.to_string()), r, "{text} -> {r}");
        }
        let r = rule("from 192.0.2.0/24 table 100");
        assert_eq!(r.action, RuleAction::Table(100));
        assert_eq!(r.protocol, PROTOCOL_KEEPALIVED);
        assert_eq!(
            rule("to 192.0.2.0/24").action,
            RuleAction::Table(MAIN_TABLE)
        );
        assert!(rule("from 2001:db8::/64 table 1").ipv6);
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let err = |t: &str| t.parse::<Rule>().err();
        assert!(matches!(
            err("from 192.0.2.1/24 table 1"),
            Some(RuleError::Value(_))
        ));
        assert!(matches!(
            err("from 192.0.2.0/24 table 1 blackhole"),
            Some(RuleError::TwoActions(_))
        ));
        assert!(
            matches!(err("from 192.0.2.0/24 uidrange 1-2"), Some(RuleError::Unsupported(w)) if w == "uidrange")
        );
        assert!(matches!(
            err("from 192.0.2.0/24 to 2001:db8::/64"),
            Some(RuleError::MixedFamily(_))
        ));
        assert_eq!(err("from"), Some(RuleError::MissingValue("from")));
    }

    #[test]
    fn messages_round_trip_and_garbage_never_panics() {
        let r =
            rule("from 192.0.2.0/24 to 198.51.100.0/24 fwmark 5 iif eth0 priority 77 table 1000");
        let bytes = encode(&r);
        // The kernel reports the mask it applies (all bits).
        assert_eq!(parse(&bytes).map(|p| p.key()), Some(r.key()));
        assert_eq!(parse(&bytes).and_then(|p| p.fwmask), Some(u32::MAX));
        let no_prio = Rule {
            priority: None,
            ..r.clone()
        };
        assert!(no_prio.key().covers(&r.key()), "the kernel's priority");
        assert!(
            !r.key().covers(
                &Rule {
                    tos: 4,
                    ..r.clone()
                }
                .key()
            )
        );
        for cut in 0..bytes.len() {
            let _ = parse(&bytes[..cut]);
        }
        let mut flipped = bytes.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xa5;
            let _ = parse(&flipped);
        }
    }
}
