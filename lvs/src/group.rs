//! keepalived's `virtual_server_group`: one `virtual_server` block serving
//! many IPVS services, written as address ranges and firewall marks.
//!
//! An entry is one line of the group block, read as keepalived 2.2.7 reads
//! it (`alloc_vsg_entry` in `check/check_data.c`) and expanded into
//! services as its `ipvs_group_range_cmd` expands it:
//!
//! | line | services |
//! | --- | --- |
//! | `192.0.2.1 80` | one |
//! | `192.0.2.1-10 80` | 192.0.2.1 ..= 192.0.2.10 (the end replaces the last byte, and must be above it) |
//! | `192.0.2.250-192.0.3.5 80` | every address from the first to the last (inclusive) |
//! | `192.0.2.0/30 80` | the whole prefix, network and broadcast addresses included |
//! | `2001:db8::1-a 80` | the last 16 bits run from 1 to 0xa (hexadecimal) |
//! | `2001:db8::/120 80` | as keepalived: the last 16 bits run over the prefix's host part |
//! | `192.0.2.1 0` or `192.0.2.1` | port 0 (keepalived then makes the virtual server persistent) |
//! | `fwmark 10` / `fwmark 10 inet6` | one firewall-mark service (family: written, else the virtual server's) |
//!
//! For IPv6, keepalived steps only the last 16 bits of the address (the
//! rest is the first address's), wrapping from `ffff` to `0`: a range or
//! prefix spanning more than the last group covers at most 65,536
//! addresses, the same ones keepalived programs.
//!
//! ```
//! use lvs::{GroupEntry, Protocol, AddressFamily, ServiceKey};
//! let e: GroupEntry = "192.0.2.1-3 80".parse()?;
//! let keys: Vec<ServiceKey> = e.services(Protocol::Tcp, AddressFamily::Ipv4).collect();
//! assert_eq!(keys, [
//!     ServiceKey::tcp("192.0.2.1:80".parse()?),
//!     ServiceKey::tcp("192.0.2.2:80".parse()?),
//!     ServiceKey::tcp("192.0.2.3:80".parse()?),
//! ]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::model::{AddressFamily, Protocol, ServiceKey};

/// The most services one entry may stand for (a /16 of IPv4, or the whole
/// last group of an IPv6 address).
pub const MAX_GROUP_ENTRY_SERVICES: u64 = 65_536;

/// One line of a `virtual_server_group` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupEntry {
    /// Addresses from `first` to `last` (see the module docs for how IPv6
    /// steps) on one port (0: none).
    Addresses {
        /// The first address.
        first: IpAddr,
        /// The last address (inclusive).
        last: IpAddr,
        /// The port (0 when the line has none).
        port: u16,
        /// How the line wrote the range, to print it back.
        form: RangeForm,
    },
    /// A firewall-mark service.
    Fwmark {
        /// The mark (not 0).
        mark: u32,
        /// `inet` / `inet6` when written.
        family: Option<AddressFamily>,
    },
}

/// How an address range was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RangeForm {
    /// One address.
    Single,
    /// `A-N`: the last byte (IPv4) or last 16 bits (IPv6) run up to N.
    LastPart,
    /// `A-B`: two whole addresses.
    Full,
    /// `A/LEN`.
    Prefix(u8),
}

/// A line keepalived would skip (it logs the reason and goes on without
/// the line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupEntryError {
    /// Neither an address nor `fwmark`.
    #[error("`{0}` is not an address, an address range or `fwmark N`")]
    Address(String),
    /// A port that is not 0..=65535.
    #[error("port `{0}` is not a number 0..=65535")]
    Port(String),
    /// A firewall mark that is not 1..=4294967295.
    #[error("fwmark `{0}` is not a number 1..=4294967295")]
    Fwmark(String),
    /// A family other than inet / inet6 after a fwmark.
    #[error("fwmark family `{0}` is not inet or inet6")]
    Family(String),
    /// A prefix length out of range, or host bits set.
    #[error("`{0}` is not a prefix with its host bits clear")]
    Prefix(String),
    /// A range whose end is below (or, for `A-N`, not above) its start,
    /// or of two families.
    #[error("`{0}`: the range ends before it starts (keepalived skips it)")]
    Range(String),
    /// More services than [`MAX_GROUP_ENTRY_SERVICES`].
    #[error("`{entry}` stands for {count} services, more than {MAX_GROUP_ENTRY_SERVICES}")]
    TooLarge {
        /// The entry.
        entry: String,
        /// How many services it stands for.
        count: u64,
    },
    /// Words after the port (or the family).
    #[error("`{0}`: unexpected words after the entry")]
    Extra(String),
}

impl FromStr for GroupEntry {
    type Err = GroupEntryError;

    /// `ADDR[-END|/LEN] [PORT]` or `fwmark MARK [inet|inet6]`.
    fn from_str(line: &str) -> Result<Self, GroupEntryError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["fwmark", mark, rest @ ..] => {
                let mark = mark
                    .parse::<u32>()
                    .ok()
                    .filter(|m| *m != 0)
                    .ok_or_else(|| GroupEntryError::Fwmark((*mark).to_owned()))?;
                let family = match rest {
                    [] => None,
                    ["inet"] => Some(AddressFamily::Ipv4),
                    ["inet6"] => Some(AddressFamily::Ipv6),
                    [other] => return Err(GroupEntryError::Family((*other).to_owned())),
                    _ => return Err(GroupEntryError::Extra(line.to_owned())),
                };
                Ok(GroupEntry::Fwmark { mark, family })
            }
            [addr, rest @ ..] => {
                let port = match rest {
                    [] => 0,
                    [p] => p
                        .parse::<u16>()
                        .map_err(|_| GroupEntryError::Port((*p).to_owned()))?,
                    _ => return Err(GroupEntryError::Extra(line.to_owned())),
                };
                let (first, last, form) = parse_range(addr)?;
                let entry = GroupEntry::Addresses {
                    first,
                    last,
                    port,
                    form,
                };
                let count = entry.len();
                if count > MAX_GROUP_ENTRY_SERVICES {
                    return Err(GroupEntryError::TooLarge {
                        entry: line.trim().to_owned(),
                        count,
                    });
                }
                Ok(entry)
            }
            [] => Err(GroupEntryError::Address(String::new())),
        }
    }
}

/// keepalived's address part: the family is IPv6 when the word has a `:`.
fn parse_range(word: &str) -> Result<(IpAddr, IpAddr, RangeForm), GroupEntryError> {
    let bad = || GroupEntryError::Address(word.to_owned());
    let v6 = word.contains(':');
    let parse_ip = |s: &str| -> Result<IpAddr, GroupEntryError> {
        if v6 {
            s.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| bad())
        } else {
            s.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| bad())
        }
    };
    if let Some((addr, len)) = word.split_once('/') {
        let first = parse_ip(addr)?;
        let max = if v6 { 128 } else { 32 };
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| GroupEntryError::Prefix(word.to_owned()))?;
        let last = match first {
            IpAddr::V4(a) => {
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                if u32::from(a) & host != 0 {
                    return Err(GroupEntryError::Prefix(word.to_owned()));
                }
                IpAddr::V4(Ipv4Addr::from(u32::from(a) | host))
            }
            IpAddr::V6(a) => {
                let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                if u128::from(a) & host != 0 {
                    return Err(GroupEntryError::Prefix(word.to_owned()));
                }
                IpAddr::V6(Ipv6Addr::from(u128::from(a) | host))
            }
        };
        return Ok((first, last, RangeForm::Prefix(len)));
    }
    let Some((addr, end)) = word.split_once('-') else {
        let a = parse_ip(word)?;
        return Ok((a, a, RangeForm::Single));
    };
    let first = parse_ip(addr)?;
    let whole_end = if v6 {
        end.contains(':')
    } else {
        end.contains('.')
    };
    if whole_end {
        let last = parse_ip(end)?;
        let ordered = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) <= u32::from(b),
            (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) <= u128::from(b),
            _ => false,
        };
        if !ordered {
            return Err(GroupEntryError::Range(word.to_owned()));
        }
        return Ok((first, last, RangeForm::Full));
    }
    // keepalived's `inet_stor`: decimal for IPv4 (at most 255), hexadecimal
    // for IPv6 (at most 0xffff); the end must be above the start's last part.
    let last = match first {
        IpAddr::V4(a) => {
            let n: u8 = end.parse().map_err(|_| bad())?;
            let start = u32::from(a) & 0xff;
            if start >= u32::from(n) {
                return Err(GroupEntryError::Range(word.to_owned()));
            }
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & !0xff | u32::from(n)))
        }
        IpAddr::V6(a) => {
            let n = u16::from_str_radix(end, 16).map_err(|_| bad())?;
            let mut seg = a.segments();
            if seg[7] >= n {
                return Err(GroupEntryError::Range(word.to_owned()));
            }
            seg[7] = n;
            IpAddr::V6(Ipv6Addr::from(seg))
        }
    };
    Ok((first, last, RangeForm::LastPart))
}

impl GroupEntry {
    /// How many services the entry stands for.
    pub fn len(&self) -> u64 {
        match *self {
            GroupEntry::Fwmark { .. } => 1,
            GroupEntry::Addresses { first, last, .. } => match (first, last) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    u64::from(u32::from(b).saturating_sub(u32::from(a))) + 1
                }
                (IpAddr::V6(a), IpAddr::V6(b)) => {
                    u64::from(b.segments()[7].wrapping_sub(a.segments()[7])) + 1
                }
                _ => 0,
            },
        }
    }

    /// Never true: an entry stands for at least one service.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address family of an address entry, or the written family of a
    /// firewall mark.
    pub fn family(&self) -> Option<AddressFamily> {
        match *self {
            GroupEntry::Addresses { first, .. } => Some(AddressFamily::of(first)),
            GroupEntry::Fwmark { family, .. } => family,
        }
    }

    /// Whether this is a firewall-mark entry.
    pub fn is_fwmark(&self) -> bool {
        matches!(self, GroupEntry::Fwmark { .. })
    }

    /// The IPVS services of the entry for a virtual server of `protocol`
    /// (address entries) whose firewall marks without a family are
    /// `fwmark_family`, in keepalived's order.
    pub fn services(
        &self,
        protocol: Protocol,
        fwmark_family: AddressFamily,
    ) -> impl Iterator<Item = ServiceKey> + '_ {
        let entry = *self;
        (0..self.len()).map(move |i| match entry {
            GroupEntry::Fwmark { mark, family } => {
                ServiceKey::fwmark(family.unwrap_or(fwmark_family), mark)
            }
            GroupEntry::Addresses { first, port, .. } => {
                let ip = match first {
                    IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(
                        u32::from(a).wrapping_add(u32::try_from(i).unwrap_or(0)),
                    )),
                    IpAddr::V6(a) => {
                        let mut seg = a.segments();
                        seg[7] = seg[7].wrapping_add(u16::try_from(i).unwrap_or(0));
                        IpAddr::V6(Ipv6Addr::from(seg))
                    }
                };
                ServiceKey::Socket {
                    protocol,
                    addr: SocketAddr::new(ip, port),
                }
            }
        })
    }
}

impl fmt::Display for GroupEntry {
    /// The line as keepalived reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GroupEntry::Fwmark { mark, family } => {
                write!(f, "fwmark {mark}")?;
                match family {
                    Some(AddressFamily::Ipv4) => f.write_str(" inet"),
                    Some(AddressFamily::Ipv6) => f.write_str(" inet6"),
                    None => Ok(()),
                }
            }
            GroupEntry::Addresses {
                first,
                last,
                port,
                form,
            } => {
                match (form, last) {
                    (RangeForm::Single, _) => write!(f, "{first}")?,
                    (RangeForm::Prefix(len), _) => write!(f, "{first}/{len}")?,
                    (RangeForm::Full, _) => write!(f, "{first}-{last}")?,
                    (RangeForm::LastPart, IpAddr::V4(l)) => {
                        write!(f, "{first}-{}", u32::from(l) & 0xff)?
                    }
                    (RangeForm::LastPart, IpAddr::V6(l)) => {
                        write!(f, "{first}-{:x}", l.segments()[7])?
                    }
                }
                write!(f, " {port}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(line: &str) -> Vec<String> {
        let e: GroupEntry = line.parse().expect(line);
        e.services(Protocol::Tcp, AddressFamily::Ipv4)
            .map(|k| k.to_string())
            .collect()
    }

    #[test]
    fn ranges_expand_as_keepalived_steps_them() {
        assert_eq!(keys("192.0.2.1 80"), ["tcp/192.0.2.1:80"]);
        assert_eq!(
            keys("192.0.2.8-10 80"),
            ["tcp/192.0.2.8:80", "tcp/192.0.2.9:80", "tcp/192.0.2.10:80"]
        );
        assert_eq!(
            keys("192.0.2.255-192.0.3.1 443"),
            [
                "tcp/192.0.2.255:443",
                "tcp/192.0.3.0:443",
                "tcp/192.0.3.1:443"
            ]
        );
        assert_eq!(
            keys("192.0.2.4/31 80"),
            ["tcp/192.0.2.4:80", "tcp/192.0.2.5:80"]
        );
        assert_eq!(keys("192.0.2.4/30 80").len(), 4);
        assert_eq!(keys("192.0.2.4/32 80"), ["tcp/192.0.2.4:80"]);
        assert_eq!(keys("192.0.2.4"), ["tcp/192.0.2.4:0"]);
        assert_eq!(keys("192.0.2.4 0"), ["tcp/192.0.2.4:0"]);
        assert_eq!(
            keys("2001:db8::9-b 53"),
            [
                "tcp/[2001:db8::9]:53",
                "tcp/[2001:db8::a]:53",
                "tcp/[2001:db8::b]:53"
            ]
        );
        assert_eq!(keys("2001:db8::/126 80").len(), 4);
        // Only the last 16 bits move, wrapping, as in keepalived.
        assert_eq!(
            keys("2001:db8::ffff-2001:db8::1:1 80"),
            [
                "tcp/[2001:db8::ffff]:80",
                "tcp/[2001:db8::]:80",
                "tcp/[2001:db8::1]:80"
            ]
        );
        let e: GroupEntry = "2001:db8::/64 80".parse().expect("/64");
        assert_eq!(e.len(), 65_536);
    }

    #[test]
    fn fwmarks_take_their_family_or_the_servers() {
        assert_eq!(keys("fwmark 7"), ["fwmark/7"]);
        assert_eq!(keys("fwmark 7 inet6"), ["fwmark6/7"]);
        let e: GroupEntry = "fwmark 7".parse().expect("fwmark");
        assert_eq!(
            e.services(Protocol::Udp, AddressFamily::Ipv6)
                .map(|k| k.to_string())
                .collect::<Vec<_>>(),
            ["fwmark6/7"]
        );
    }

    #[test]
    fn keepalived_s_refusals() {
        for line in [
            "192.0.2.5-5 80",
            "192.0.2.5-4 80",
            "192.0.2.5-256 80",
            "192.0.3.1-192.0.2.1 80",
            "2001:db8::5-5 80",
            "2001:db8::5-10000 80",
            "192.0.2.1/24 80",
            "192.0.2.0/0 80",
            "192.0.2.0/33 80",
            "192.0.2.1 65536",
            "192.0.2.1 80 extra",
            "fwmark 0",
            "fwmark x",
            "fwmark 5 ipx",
            "example.com 80",
            "10.0.0.0/8 80",
        ] {
            assert!(line.parse::<GroupEntry>().is_err(), "{line}");
        }
    }

    #[test]
    fn entries_print_back_to_themselves() {
        for line in [
            "192.0.2.1 80",
            "192.0.2.1-10 80",
            "192.0.2.250-192.0.3.4 8080",
            "192.0.2.0/28 0",
            "2001:db8::1-1a 80",
            "2001:db8::/120 443",
            "fwmark 9",
            "fwmark 9 inet6",
        ] {
            let e: GroupEntry = line.parse().expect(line);
            assert_eq!(e.to_string(), line);
            assert_eq!(e.to_string().parse::<GroupEntry>(), Ok(e));
        }
    }
}
