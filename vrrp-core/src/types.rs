//! Small value types with their units and ranges in the type.

use core::fmt;
use core::num::NonZeroU8;
use std::net::IpAddr;

/// A Virtual Router Identifier, 1..=255 (RFC 5798 5.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vrid(NonZeroU8);

impl Vrid {
    /// `Some` for 1..=255, `None` for 0, which no virtual router may use.
    pub const fn new(id: u8) -> Option<Self> {
        match NonZeroU8::new(id) {
            Some(v) => Some(Vrid(v)),
            None => None,
        }
    }

    /// The identifier as a byte.
    pub const fn get(self) -> u8 {
        self.0.get()
    }
}

impl fmt::Display for Vrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A VRRP priority (RFC 5798 5.2.4): 0 means "the master is stopping",
/// 255 is reserved for the address owner, 1..=254 are backup priorities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// Sent by a master that stops participating (RFC 5798 6.4.3).
    pub const STOP: Priority = Priority(0);
    /// The lowest priority a running router can have.
    pub const MIN: Priority = Priority(1);
    /// The highest priority of a router that does not own the addresses.
    pub const MAX_BACKUP: Priority = Priority(254);
    /// The router that owns the virtual addresses.
    pub const OWNER: Priority = Priority(255);
    /// The default of the RFCs and keepalived.
    pub const DEFAULT: Priority = Priority(100);

    /// Any byte is a priority on the wire; use [`Priority::configured`] to
    /// check a configured one.
    pub const fn new(p: u8) -> Self {
        Priority(p)
    }

    /// A priority a router may be configured with: 1..=255.
    pub const fn configured(p: u8) -> Option<Self> {
        if p == 0 { None } else { Some(Priority(p)) }
    }

    /// The raw byte.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// True for 255, the address owner.
    pub const fn is_owner(self) -> bool {
        self.0 == 255
    }

    /// `base` plus `delta`, clamped to 1..=254; an owner (255) stays 255
    /// whatever the delta, as keepalived does.
    pub fn with_weight(base: Priority, delta: i32) -> Priority {
        if base.is_owner() {
            return base;
        }
        let p = i32::from(base.0).saturating_add(delta).clamp(1, 254);
        Priority(u8::try_from(p).unwrap_or(254))
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Version {
    /// VRRPv2, RFC 3768: IPv4 only, intervals in seconds, optional
    /// simple-password authentication.
    V2,
    /// VRRPv3, RFC 5798 (with RFC 9568): IPv4 and IPv6, intervals in
    /// centiseconds, a pseudo-header checksum.
    V3,
}

impl Version {
    /// The value of the version nibble.
    pub const fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// The address family an instance runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Family {
    /// IPv4: addresses of 4 bytes, ARP.
    Ipv4,
    /// IPv6: addresses of 16 bytes, neighbour discovery.
    Ipv6,
}

impl Family {
    /// The family of `addr`.
    pub const fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// Bytes in one address.
    pub const fn address_len(self) -> usize {
        match self {
            Family::Ipv4 => 4,
            Family::Ipv6 => 16,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

/// Compares two primary addresses as unsigned integers, as the RFCs'
/// tie-break does (RFC 5798 6.4.3: "the primary IPv4 address of the sender
/// is greater than the local primary IPv4 address").
pub(crate) fn address_greater(a: &IpAddr, b: &IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(*a) > u32::from(*b),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(*a) > u128::from(*b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_weights_clamp() {
        let p = Priority::new(100);
        assert_eq!(Priority::with_weight(p, 20).get(), 120);
        assert_eq!(Priority::with_weight(p, -20).get(), 80);
        assert_eq!(Priority::with_weight(p, 500).get(), 254);
        assert_eq!(Priority::with_weight(p, -500).get(), 1);
        assert_eq!(Priority::with_weight(Priority::OWNER, -50), Priority::OWNER);
        assert_eq!(Priority::with_weight(p, i32::MIN).get(), 1);
        assert_eq!(Priority::with_weight(p, i32::MAX).get(), 254);
    }

    #[test]
    fn vrid_range() {
        assert!(Vrid::new(0).is_none());
        assert_eq!(Vrid::new(255).map(Vrid::get), Some(255));
    }

    #[test]
    fn address_comparison_is_numeric() {
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let b: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(address_greater(&a, &b));
        assert!(!address_greater(&b, &a));
        let c: IpAddr = "fe80::2".parse().unwrap();
        assert!(!address_greater(&a, &c));
    }
}
