//! Configured values as text and the checks of a whole
//! [`InstanceConfig`], each error naming the field it is about, so that a
//! configuration front end (a TOML loader, an importer, a management API)
//! can point its user at the key they wrote without restating the rules.

use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;

use thiserror::Error;

use crate::config::{ConfigError, InstanceConfig, VirtualAddress};
use crate::instance::State;
use crate::time::Centisecs;
use crate::types::{Family, Priority, Version, Vrid};
use crate::wire::Auth;

/// The part of an [`InstanceConfig`] an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// [`InstanceConfig::priority`].
    Priority,
    /// [`InstanceConfig::version`].
    Version,
    /// [`InstanceConfig::advert_interval`].
    AdvertInterval,
    /// [`InstanceConfig::auth`].
    Auth,
    /// The virtual address at this index of
    /// [`InstanceConfig::virtual_addresses`], or the list itself when the
    /// index is past its end (too many addresses).
    VirtualAddress(usize),
    /// The peer at this index of [`InstanceConfig::unicast_peers`].
    UnicastPeer(usize),
    /// [`InstanceConfig::primary_address`] (with
    /// [`crate::InstanceConfigBuilder`]: missing, and nothing else says
    /// which address family the instance is of).
    PrimaryAddress,
}

impl fmt::Display for Field {
    /// The field's name, as the [`crate::InstanceConfigBuilder`] method
    /// that sets it: `priority`, `virtual_addresses[2]`...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Priority => f.write_str("priority"),
            Field::Version => f.write_str("version"),
            Field::AdvertInterval => f.write_str("advert_interval"),
            Field::Auth => f.write_str("auth"),
            Field::VirtualAddress(i) => write!(f, "virtual_addresses[{i}]"),
            Field::UnicastPeer(i) => write!(f, "unicast_peers[{i}]"),
            Field::PrimaryAddress => f.write_str("primary_address"),
        }
    }
}

/// One thing wrong with an [`InstanceConfig`], and where.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{error}")]
pub struct FieldError {
    /// The field at fault.
    pub field: Field,
    /// What is wrong with it.
    pub error: ConfigError,
}

impl InstanceConfig {
    /// Every rule the configuration breaks, in field order; empty when
    /// [`InstanceConfig::validate`] would accept it. The address family
    /// is that of the primary address (unspecified or not).
    pub fn validate_all(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut push = |field, error| errors.push(FieldError { field, error });
        let family = self.family();
        if self.priority == Priority::STOP {
            push(Field::Priority, ConfigError::ZeroPriority);
        }
        // RFC 5798 5.2.1 / RFC 3768 5.3.1: VRRPv2 is IPv4 only.
        if self.version == Version::V2 && family == Family::Ipv6 {
            push(Field::Version, ConfigError::V2OverIpv6);
        }
        let cs = self.advert_interval.get();
        // RFC 3768 5.3.7: whole seconds in 8 bits; RFC 5798 5.2.7:
        // centiseconds in 12 bits.
        let interval_ok = match self.version {
            Version::V2 => cs != 0 && cs.is_multiple_of(100) && cs <= Centisecs::V2_MAX.get(),
            Version::V3 => cs != 0 && cs <= Centisecs::V3_MAX.get(),
        };
        if !interval_ok {
            push(
                Field::AdvertInterval,
                ConfigError::Interval {
                    interval: self.advert_interval,
                    version: self.version,
                },
            );
        }
        // RFC 5798 9: VRRPv3 has no authentication.
        if self.version == Version::V3 && self.auth != Auth::None {
            push(Field::Auth, ConfigError::AuthNeedsV2);
        }
        // RFC 5798 5.2.5: the count is one byte.
        if self.virtual_addresses.len() > 255 {
            push(
                Field::VirtualAddress(255),
                ConfigError::TooManyAddresses(self.virtual_addresses.len()),
            );
        }
        for (i, va) in self.virtual_addresses.iter().enumerate() {
            if Family::of(&va.addr) != family {
                push(Field::VirtualAddress(i), ConfigError::MixedFamily(va.addr));
            } else if va.prefix_len > max_prefix(&va.addr) {
                push(
                    Field::VirtualAddress(i),
                    ConfigError::PrefixLength(va.addr, va.prefix_len),
                );
            }
        }
        for (i, peer) in self.unicast_peers.iter().enumerate() {
            if Family::of(peer) != family {
                push(Field::UnicastPeer(i), ConfigError::MixedFamily(*peer));
            }
        }
        errors
    }
}

fn max_prefix(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// A configured value that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not a number in the range the value allows.
    #[error("`{text}` is not {expected}")]
    OutOfRange {
        /// What was written.
        text: String,
        /// What is allowed, in words ("a VRID, 1..=255").
        expected: &'static str,
    },
    /// Not an IP address.
    #[error("`{0}` is not an IP address")]
    Address(String),
    /// A prefix length longer than the address, or not a number.
    #[error("prefix length `/{len}` is not valid for {addr}")]
    PrefixLength {
        /// The address.
        addr: IpAddr,
        /// The length as written.
        len: String,
    },
}

fn number<T: FromStr>(text: &str, expected: &'static str) -> Result<T, ParseError> {
    text.trim().parse().map_err(|_| ParseError::OutOfRange {
        text: text.to_owned(),
        expected,
    })
}

impl FromStr for Vrid {
    type Err = ParseError;
    /// `1`..=`255`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        const EXPECTED: &str = "a virtual router id, 1..=255";
        Vrid::new(number(s, EXPECTED)?).ok_or_else(|| ParseError::OutOfRange {
            text: s.to_owned(),
            expected: EXPECTED,
        })
    }
}

impl FromStr for Priority {
    type Err = ParseError;
    /// A configured priority, `1`..=`255` (255: the address owner).
    fn from_str(s: &str) -> Result<Self, ParseError> {
        const EXPECTED: &str = "a priority, 1..=255";
        Priority::configured(number(s, EXPECTED)?).ok_or_else(|| ParseError::OutOfRange {
            text: s.to_owned(),
            expected: EXPECTED,
        })
    }
}

impl TryFrom<u8> for Version {
    type Error = ParseError;
    /// 2 or 3.
    fn try_from(v: u8) -> Result<Self, ParseError> {
        match v {
            2 => Ok(Version::V2),
            3 => Ok(Version::V3),
            _ => Err(ParseError::OutOfRange {
                text: v.to_string(),
                expected: "a VRRP version, 2 or 3",
            }),
        }
    }
}

impl FromStr for Version {
    type Err = ParseError;
    /// `2` or `3`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Version::try_from(number::<u8>(s, "a VRRP version, 2 or 3")?)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

impl FromStr for VirtualAddress {
    type Err = ParseError;
    /// `ADDR` (a host address: /32 or /128) or `ADDR/LEN`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (addr_text, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| ParseError::Address(addr_text.to_owned()))?;
        let Some(len) = len else {
            return Ok(VirtualAddress::host(addr));
        };
        match len.parse::<u8>() {
            Ok(prefix_len) if prefix_len <= max_prefix(&addr) => {
                Ok(VirtualAddress { addr, prefix_len })
            }
            _ => Err(ParseError::PrefixLength {
                addr,
                len: len.to_owned(),
            }),
        }
    }
}

impl fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// How much a tracked object moves the priority (keepalived's `weight`):
/// -254..=254, the widest range keepalived accepts (its scripts and
/// interfaces stop at ±253, its tracked files at ±254).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Weight(i16);

impl Weight {
    /// The lowest weight.
    pub const MIN: Weight = Weight(-254);
    /// The highest weight.
    pub const MAX: Weight = Weight(254);
    /// Weight 0: failure puts the instance in Fault.
    pub const FAULT: Weight = Weight(0);

    /// `Some` within -254..=254.
    pub const fn new(w: i32) -> Option<Weight> {
        if w >= Self::MIN.0 as i32 && w <= Self::MAX.0 as i32 {
            Some(Weight(w as i16))
        } else {
            None
        }
    }

    /// The weight as a number.
    pub const fn get(self) -> i32 {
        self.0 as i32
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Weight {
    type Err = ParseError;
    /// `-254`..=`254`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        const EXPECTED: &str = "a weight, -254..=254";
        Weight::new(number(s, EXPECTED)?).ok_or_else(|| ParseError::OutOfRange {
            text: s.to_owned(),
            expected: EXPECTED,
        })
    }
}

impl From<Weight> for i32 {
    fn from(w: Weight) -> i32 {
        w.get()
    }
}

impl State {
    /// Every state, in the order of RFC 5798 6.4 (Fault last).
    pub const ALL: [State; 4] = [
        State::Initialize,
        State::Backup,
        State::Master,
        State::Fault,
    ];

    /// keepalived's name for the state, as its notify scripts receive it
    /// (`INSTANCE name STATE priority`): MASTER, BACKUP, FAULT, and STOP
    /// for an instance that is not running.
    pub const fn keepalived_name(self) -> &'static str {
        match self {
            State::Master => "MASTER",
            State::Backup => "BACKUP",
            State::Fault => "FAULT",
            State::Initialize => "STOP",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn config() -> InstanceConfig {
        InstanceConfig::new(Vrid::new(1).expect("vrid"), Version::V2, v4("0.0.0.0"))
    }

    #[test]
    fn a_valid_configuration_has_no_errors() {
        let c = config().with_address(VirtualAddress::host(v4("192.0.2.9")));
        assert!(c.validate_all().is_empty());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn every_error_names_its_field() {
        // An IPv4 instance (its primary address decides).
        let mut c = config();
        c.priority = Priority::STOP;
        c.advert_interval = Centisecs::new(50);
        c.virtual_addresses = vec![
            VirtualAddress::host(v4("2001:db8::1")),
            VirtualAddress::host(v4("192.0.2.1")),
            VirtualAddress {
                addr: v4("2001:db8::2"),
                prefix_len: 129,
            },
        ];
        c.unicast_peers = vec![v4("2001:db8::3"), v4("192.0.2.3")];
        let fields: Vec<Field> = c.validate_all().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                Field::Priority,
                Field::AdvertInterval,
                Field::VirtualAddress(0),
                Field::VirtualAddress(2),
                Field::UnicastPeer(0),
            ]
        );
        // validate() reports the first of them.
        assert_eq!(c.validate(), Err(ConfigError::ZeroPriority));
    }

    #[test]
    fn v3_with_authentication_and_too_many_addresses() {
        let mut c = config();
        c.version = Version::V3;
        c.auth = Auth::password(b"secret").expect("password");
        c.virtual_addresses = (0..=255u8)
            .map(|i| VirtualAddress::host(IpAddr::from([192, 0, 2, i])))
            .collect();
        let errors = c.validate_all();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].field, Field::Auth);
        assert_eq!(errors[1].field, Field::VirtualAddress(255));
        assert_eq!(errors[1].error, ConfigError::TooManyAddresses(256));
    }

    #[test]
    fn values_parse_from_text() {
        assert_eq!("42".parse::<Vrid>().map(Vrid::get), Ok(42));
        assert!("0".parse::<Vrid>().is_err());
        assert!("256".parse::<Vrid>().is_err());
        assert_eq!("255".parse::<Priority>(), Ok(Priority::OWNER));
        assert!("0".parse::<Priority>().is_err());
        assert_eq!(Version::try_from(3), Ok(Version::V3));
        assert!(Version::try_from(4).is_err());
        assert_eq!("2".parse::<Version>(), Ok(Version::V2));
        assert_eq!(
            "192.0.2.1".parse::<VirtualAddress>(),
            Ok(VirtualAddress::host(v4("192.0.2.1")))
        );
        assert_eq!(
            "2001:db8::1/64".parse::<VirtualAddress>(),
            Ok(VirtualAddress {
                addr: v4("2001:db8::1"),
                prefix_len: 64
            })
        );
        assert!("192.0.2.1/33".parse::<VirtualAddress>().is_err());
        assert!("192.0.2.1/x".parse::<VirtualAddress>().is_err());
        assert!("eth0".parse::<VirtualAddress>().is_err());
        assert_eq!(
            VirtualAddress::host(v4("192.0.2.1")).to_string(),
            "192.0.2.1/32"
        );
        assert_eq!("-254".parse::<Weight>().map(Weight::get), Ok(-254));
        assert!("255".parse::<Weight>().is_err());
        assert_eq!(Weight::new(-255), None);
        assert_eq!(Version::V3.to_string(), "3");
    }

    #[test]
    fn keepalived_state_names() {
        let names: Vec<&str> = State::ALL.iter().map(|s| s.keepalived_name()).collect();
        assert_eq!(names, ["STOP", "BACKUP", "MASTER", "FAULT"]);
    }
}
