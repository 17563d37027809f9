//! Hand-made advertisements for [`Simulation::inject`](super::Simulation::inject):
//! a valid packet from the engine's own encoder, then the edits a
//! conformance test needs (a wrong version, type, VRID, authentication
//! type, length, checksum or TTL).

use core::fmt;
use std::net::IpAddr;

use crate::time::Centisecs;
use crate::types::{Family, Priority, Version, Vrid};
use crate::wire::{self, AdvertRepr, Auth, ChecksumMode, EncodeError, IpPair, REQUIRED_TTL};

/// One change made to a crafted packet after it was encoded. Edits are
/// applied in the order given; the checksum is then computed again over
/// the edited bytes (unless [`Edit::BadChecksum`] is among them), so each
/// edit tests exactly one receive check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Edit {
    /// Sets the version nibble (RFC 5798 5.2.1).
    Version(u8),
    /// Sets the type nibble (RFC 5798 5.2.2).
    Type(u8),
    /// Sets the VRID byte, 0 included (RFC 5798 5.2.3).
    Vrid(u8),
    /// Sets the VRRPv2 authentication type byte (RFC 3768 5.3.6); in
    /// VRRPv3 this byte holds the reserved nibble and the top of the
    /// interval.
    AuthType(u8),
    /// Sets the address count byte without changing the addresses.
    Count(u8),
    /// Sets the raw interval field, even to values the encoder refuses:
    /// VRRPv2 byte 5 (seconds, the low 8 bits of the value); VRRPv3 the
    /// 12 bits of Max Adver Int (centiseconds), keeping the reserved
    /// nibble. Which one follows the version nibble at this point.
    Interval(u16),
    /// Removes this many bytes from the end.
    Truncate(usize),
    /// Flips the checksum's bits after it is computed.
    BadChecksum,
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edit::Version(v) => write!(f, "version nibble {v}"),
            Edit::Type(t) => write!(f, "type nibble {t}"),
            Edit::Vrid(v) => write!(f, "vrid byte {v}"),
            Edit::AuthType(a) => write!(f, "auth type byte {a}"),
            Edit::Count(c) => write!(f, "count byte {c}"),
            Edit::Interval(i) => write!(f, "interval field {i}"),
            Edit::Truncate(1) => f.write_str("1 byte short"),
            Edit::Truncate(n) => write!(f, "{n} bytes short"),
            Edit::BadChecksum => f.write_str("bad checksum"),
        }
    }
}

/// An advertisement built by hand, to be sent from a node with
/// [`Simulation::inject`](super::Simulation::inject) (a node with no
/// instances is a pure test station).
///
/// ```
/// use vrrp_core::sim::Crafted;
/// use vrrp_core::{Priority, Version, Vrid};
///
/// // VRRPv3, VRID 1, priority 200, but sent with TTL 254 (RFC 5798 7.1
/// // says drop it).
/// let packet = Crafted::advert(Version::V3, Vrid::new(1).unwrap(), Priority::new(200))
///     .addresses(["192.0.2.100".parse().unwrap()])
///     .ttl(254);
/// assert_eq!(packet.to_string(), "v3 vrid 1 priority 200 interval 1s [192.0.2.100] ttl 254");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crafted {
    version: Version,
    vrid: Vrid,
    priority: Priority,
    interval: Centisecs,
    auth: Auth,
    addresses: Vec<IpAddr>,
    family: Option<Family>,
    ttl: u8,
    source: Option<IpAddr>,
    destination: Option<IpAddr>,
    edits: Vec<Edit>,
}

impl Crafted {
    /// A valid advertisement: interval 1 s, no authentication, no
    /// addresses, TTL 255, from the sending node's address to the
    /// multicast group.
    pub fn advert(version: Version, vrid: Vrid, priority: Priority) -> Self {
        Crafted {
            version,
            vrid,
            priority,
            interval: Centisecs::ONE_SECOND,
            auth: Auth::None,
            addresses: Vec::new(),
            family: None,
            ttl: REQUIRED_TTL,
            source: None,
            destination: None,
            edits: Vec::new(),
        }
    }

    /// The advertisement interval field.
    pub fn interval(mut self, interval: Centisecs) -> Self {
        self.interval = interval;
        self
    }

    /// The address list (all of one family).
    pub fn addresses(mut self, addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        self.addresses = addresses.into_iter().collect();
        self
    }

    /// VRRPv2 authentication.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The family to send over, when the address list is empty or is to
    /// be of the other family (otherwise that of the first address, or
    /// IPv4).
    pub fn family(mut self, family: Family) -> Self {
        self.family = Some(family);
        self
    }

    /// The TTL / hop limit it arrives with (RFC 5798 7.1 wants 255).
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// A source address other than the sending node's own.
    pub fn source(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// A destination address other than the multicast group (or, for
    /// [`Simulation::inject_to`](super::Simulation::inject_to), the
    /// target's address).
    pub fn destination(mut self, destination: IpAddr) -> Self {
        self.destination = Some(destination);
        self
    }

    /// Adds an edit applied after encoding.
    pub fn edit(mut self, edit: Edit) -> Self {
        self.edits.push(edit);
        self
    }

    /// The family the packet travels over.
    pub fn packet_family(&self) -> Family {
        self.family
            .or_else(|| self.addresses.first().map(Family::of))
            .unwrap_or(Family::Ipv4)
    }

    /// The TTL it arrives with.
    pub fn arrival_ttl(&self) -> u8 {
        self.ttl
    }

    pub(super) fn source_override(&self) -> Option<IpAddr> {
        self.source
    }

    pub(super) fn destination_override(&self) -> Option<IpAddr> {
        self.destination
    }

    /// Encodes the packet between `src` and `dst`, then applies the edits.
    pub fn encode(&self, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, EncodeError> {
        let repr = AdvertRepr {
            version: self.version,
            vrid: self.vrid,
            priority: self.priority,
            interval: self.interval,
            auth: self.auth,
            addresses: self.addresses.iter().copied(),
        };
        let mut buf = vec![0u8; wire::MAX_PACKET_LEN + wire::AUTH_DATA_LEN];
        let ip = IpPair { src, dst };
        let len = repr.emit(&mut buf, &ip, ChecksumMode::Rfc)?;
        buf.truncate(len);
        let mut bad_checksum = false;
        // Edits after a truncation may point past the end: those bytes are
        // gone, and the edit does nothing.
        fn set(buf: &mut [u8], at: usize, f: impl FnOnce(u8) -> u8) {
            if let Some(b) = buf.get_mut(at) {
                *b = f(*b);
            }
        }
        for edit in &self.edits {
            match *edit {
                Edit::Version(v) => set(&mut buf, 0, |b| ((v & 0x0f) << 4) | (b & 0x0f)),
                Edit::Type(t) => set(&mut buf, 0, |b| (b & 0xf0) | (t & 0x0f)),
                Edit::Vrid(v) => set(&mut buf, 1, |_| v),
                Edit::AuthType(a) => set(&mut buf, 4, |_| a),
                Edit::Count(c) => set(&mut buf, 3, |_| c),
                Edit::Interval(i) if buf.first().is_some_and(|b| b >> 4 == 2) => {
                    set(&mut buf, 5, |_| i.to_be_bytes()[1]);
                }
                Edit::Interval(i) => {
                    let [hi, lo] = (i & 0x0fff).to_be_bytes();
                    set(&mut buf, 4, |b| (b & 0xf0) | hi);
                    set(&mut buf, 5, |_| lo);
                }
                Edit::Truncate(n) => buf.truncate(buf.len().saturating_sub(n)),
                Edit::BadChecksum => bad_checksum = true,
            }
        }
        if buf.len() >= wire::HEADER_LEN {
            buf[6] = 0;
            buf[7] = 0;
            let mut sum = checksum(&buf, &ip);
            if bad_checksum {
                sum = !sum;
            }
            buf[6..8].copy_from_slice(&sum.to_be_bytes());
        }
        Ok(buf)
    }
}

impl fmt::Display for Crafted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v{} vrid {} priority {} interval {}",
            self.version.number(),
            self.vrid,
            self.priority,
            self.interval
        )?;
        if let Auth::Password(p) = self.auth {
            // A test's own password: printed, so that a wrong one shows.
            let end = p.iter().position(|b| *b == 0).unwrap_or(p.len());
            write!(f, " password {:?}", String::from_utf8_lossy(&p[..end]))?;
        }
        f.write_str(" [")?;
        for (i, a) in self.addresses.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        f.write_str("]")?;
        if self.addresses.is_empty() {
            write!(f, " {}", self.packet_family())?;
        }
        if self.ttl != REQUIRED_TTL {
            write!(f, " ttl {}", self.ttl)?;
        }
        if let Some(s) = self.source {
            write!(f, " from {s}")?;
        }
        if let Some(d) = self.destination {
            write!(f, " to {d}")?;
        }
        for e in &self.edits {
            write!(f, ", {e}")?;
        }
        Ok(())
    }
}

/// The checksum a sender would compute over the (edited) bytes: with the
/// RFC 5798 5.2.8 pseudo-header when the version nibble says 3, without
/// it otherwise (RFC 3768 5.3.8). Written apart from the encoder's own so
/// that crafted packets check the receiver against a second reading of
/// the RFCs.
fn checksum(bytes: &[u8], ip: &IpPair) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |data: &[u8]| {
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |b| u64::from(*b));
            sum += hi | lo;
        }
    };
    if bytes[0] >> 4 == 3 {
        match (ip.src, ip.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                add(&s.octets());
                add(&d.octets());
                add(&[0, wire::IP_PROTOCOL]);
                add(&(bytes.len() as u16).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                add(&s.octets());
                add(&d.octets());
                add(&(bytes.len() as u32).to_be_bytes());
                add(&[0, 0, 0, wire::IP_PROTOCOL]);
            }
            _ => {}
        }
    }
    add(bytes);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DecodeError, Packet};

    fn v4() -> IpPair {
        IpPair {
            src: "192.0.2.9".parse().unwrap(),
            dst: "224.0.0.18".parse().unwrap(),
        }
    }

    fn v6() -> IpPair {
        IpPair {
            src: "fe80::9".parse().unwrap(),
            dst: "ff02::12".parse().unwrap(),
        }
    }

    fn base(version: Version, addr: &str) -> Crafted {
        Crafted::advert(version, Vrid::new(1).unwrap(), Priority::new(200))
            .addresses([addr.parse().unwrap()])
    }

    fn decode(bytes: &[u8], ip: &IpPair) -> Result<u8, DecodeError> {
        let p = Packet::new_checked(bytes, Family::of(&ip.src))?;
        AdvertRepr::parse(&p, ip, ChecksumMode::Rfc).map(|a| a.priority.get())
    }

    #[test]
    fn unedited_packets_match_the_encoder_byte_for_byte() {
        for (version, addr, ip) in [
            (Version::V2, "192.0.2.100", v4()),
            (Version::V3, "192.0.2.100", v4()),
            (Version::V3, "2001:db8::100", v6()),
        ] {
            let bytes = base(version, addr).encode(ip.src, ip.dst).unwrap();
            assert_eq!(decode(&bytes, &ip), Ok(200), "{version:?} {addr}");
        }
    }

    #[test]
    fn each_edit_trips_its_own_check() {
        let ip = v4();
        let enc = |c: Crafted| c.encode(ip.src, ip.dst).unwrap();
        let v3 = || base(Version::V3, "192.0.2.100");
        assert_eq!(
            decode(&enc(v3().edit(Edit::Version(4))), &ip),
            Err(DecodeError::BadVersion(4))
        );
        assert_eq!(
            decode(&enc(v3().edit(Edit::Type(2))), &ip),
            Err(DecodeError::BadType(2))
        );
        assert_eq!(
            decode(&enc(v3().edit(Edit::BadChecksum)), &ip),
            Err(DecodeError::BadChecksum)
        );
        assert_eq!(
            decode(&enc(v3().edit(Edit::Vrid(0))), &ip),
            Err(DecodeError::BadVrid)
        );
        assert_eq!(
            decode(&enc(v3().edit(Edit::Interval(0))), &ip),
            Err(DecodeError::ZeroInterval)
        );
        let slow = enc(v3().edit(Edit::AuthType(0xf0)).edit(Edit::Interval(0xabc)));
        assert_eq!(
            (slow[4], slow[5]),
            (0xfa, 0xbc),
            "the reserved nibble stays"
        );
        let v2 = enc(base(Version::V2, "192.0.2.100").edit(Edit::Interval(7)));
        assert_eq!((v2[4], v2[5]), (0, 7));
        // Edits past a truncation do nothing rather than panic.
        let stub = enc(v3().edit(Edit::Truncate(11)).edit(Edit::Interval(5)));
        assert_eq!(stub, [0x31]);
        assert!(enc(v3().edit(Edit::Truncate(100))).is_empty());
        assert!(matches!(
            decode(&enc(v3().edit(Edit::Count(2))), &ip),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&enc(v3().edit(Edit::Truncate(2))), &ip),
            Err(DecodeError::Truncated { .. })
        ));
        // A v3 packet relabelled v2 lacks the 8 bytes of authentication
        // data: a length error.
        assert!(matches!(
            decode(&enc(v3().edit(Edit::Version(2))), &ip),
            Err(DecodeError::Truncated { .. })
        ));
        // The checksum is recomputed after an edit: a v2 packet relabelled
        // v3 checks out with the pseudo-header, and decodes.
        let relabelled = enc(base(Version::V2, "192.0.2.100").edit(Edit::Version(3)));
        assert_eq!(decode(&relabelled, &ip), Ok(200));
        let v2 = enc(base(Version::V2, "192.0.2.100").edit(Edit::AuthType(2)));
        assert_eq!(v2[4], 2);
        assert_eq!(decode(&v2, &ip), Ok(200));
    }

    #[test]
    fn the_family_comes_from_the_addresses_unless_given() {
        let c = Crafted::advert(Version::V3, Vrid::new(1).unwrap(), Priority::new(1));
        assert_eq!(c.packet_family(), Family::Ipv4);
        assert_eq!(c.clone().family(Family::Ipv6).packet_family(), Family::Ipv6);
        let c6 = base(Version::V3, "2001:db8::1");
        assert_eq!(c6.packet_family(), Family::Ipv6);
        assert_eq!(
            c6.to_string(),
            "v3 vrid 1 priority 200 interval 1s [2001:db8::1]"
        );
        assert_eq!(
            base(Version::V2, "192.0.2.1").encode(v6().src, v6().dst),
            Err(EncodeError::V2OverIpv6)
        );
    }
}
