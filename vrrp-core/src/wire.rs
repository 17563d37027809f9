//! The VRRP advertisement on the wire: a checked view over untrusted bytes
//! ([`Packet`]) and a high-level representation ([`AdvertRepr`]) that parses
//! from it and emits into a caller's buffer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! v2: | Auth Type | Adver Int |   v3: |(rsvd)| Max Adver Int (12 bits) |
//! |          Checksum             |      IPvX Address(es) ...
//! v2 only: 8 bytes of authentication data after the addresses.
//! ```

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use crate::time::Centisecs;
use crate::types::{Family, Priority, Version, Vrid};

/// IP protocol number of VRRP.
pub const IP_PROTOCOL: u8 = 112;
/// The IPv4 multicast group VRRP advertisements go to (RFC 5798 5.1.1.2).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group VRRP advertisements go to (RFC 5798 5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The TTL / hop limit advertisements are sent with and must arrive with.
pub const REQUIRED_TTL: u8 = 255;
/// Bytes before the address list.
pub const HEADER_LEN: usize = 8;
/// Bytes of authentication data that end every VRRPv2 packet.
pub const AUTH_DATA_LEN: usize = 8;
/// The largest advertisement: VRRPv3 over IPv6 with 255 addresses.
pub const MAX_PACKET_LEN: usize = HEADER_LEN + 255 * 16;

/// The multicast group for `family`.
pub const fn multicast_group(family: Family) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(MULTICAST_V4),
        Family::Ipv6 => IpAddr::V6(MULTICAST_V6),
    }
}

mod field {
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v2: authentication type; v3: reserved nibble + top of the interval.
    pub const AUTH_TYPE: usize = 4;
    /// v2: advertisement interval in seconds.
    pub const ADVER_INT: usize = 5;
    /// v3: 4 reserved bits and 12 bits of Max Adver Int.
    pub const MAX_ADVER_INT: core::ops::Range<usize> = 4..6;
    pub const CHECKSUM: core::ops::Range<usize> = 6..8;
}

/// The only VRRP packet type (RFC 5798 5.2.2).
const TYPE_ADVERTISEMENT: u8 = 1;

/// Why bytes are not a VRRP advertisement this engine accepts. Each maps
/// to a statistics counter (see [`crate::Statistics`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the header, or than the address count and
    /// authentication data call for.
    #[error("packet of {actual} bytes is shorter than the {expected} bytes its header calls for")]
    Truncated {
        /// Bytes the header calls for.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// A version nibble other than 2 or 3, or VRRPv2 over IPv6.
    #[error("unsupported VRRP version {0} for this address family")]
    BadVersion(u8),
    /// A type nibble other than 1 (ADVERTISEMENT).
    #[error("invalid VRRP packet type {0}")]
    BadType(u8),
    /// The checksum does not match.
    #[error("bad checksum")]
    BadChecksum,
    /// A zero VRID.
    #[error("virtual router id 0 is invalid")]
    BadVrid,
    /// A VRRPv3 interval of zero.
    #[error("advertisement interval of zero")]
    ZeroInterval,
}

/// Why an advertisement could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The caller's buffer is too small.
    #[error("buffer of {actual} bytes, {needed} needed")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        actual: usize,
    },
    /// More than 255 addresses.
    #[error("{0} addresses do not fit the 8-bit count")]
    TooManyAddresses(usize),
    /// An address of the other family in the list.
    #[error("address {0} is not of the packet's family")]
    WrongFamily(IpAddr),
    /// The interval cannot be carried by this version (VRRPv2: whole
    /// seconds 1..=255; VRRPv3: 1..=4095 centiseconds).
    #[error("advertisement interval {0} cannot be carried by this VRRP version")]
    IntervalNotRepresentable(Centisecs),
    /// VRRPv2 runs over IPv4 only.
    #[error("VRRPv2 cannot be sent over IPv6")]
    V2OverIpv6,
}

/// How the VRRPv3 checksum over IPv4 is computed. keepalived's
/// `vrrp_v3_checksum_as_v2` leaves the pseudo-header out, as some old
/// implementations did; RFC 5798 5.2.8 puts it in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChecksumMode {
    /// RFC 5798: the pseudo-header is included for VRRPv3.
    #[default]
    Rfc,
    /// VRRPv3 over IPv4 without the pseudo-header, like VRRPv2.
    V3WithoutPseudoHeader,
}

/// VRRPv2 authentication (RFC 3768 5.3.6). VRRPv3 has none.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Auth {
    /// Type 0: no authentication; the data bytes are zero.
    #[default]
    None,
    /// Type 1: a plain-text password of up to 8 bytes, zero-padded.
    Password([u8; AUTH_DATA_LEN]),
}

impl Auth {
    /// A simple password; `None` if longer than 8 bytes (keepalived
    /// truncates silently; a configuration should rather be told).
    pub fn password(pass: &[u8]) -> Option<Auth> {
        if pass.len() > AUTH_DATA_LEN {
            return None;
        }
        let mut data = [0u8; AUTH_DATA_LEN];
        data[..pass.len()].copy_from_slice(pass);
        Some(Auth::Password(data))
    }

    /// The authentication type byte.
    pub const fn type_byte(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Password(_) => 1,
        }
    }

    fn data(&self) -> [u8; AUTH_DATA_LEN] {
        match self {
            Auth::None => [0; AUTH_DATA_LEN],
            Auth::Password(d) => *d,
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            // Never print a secret into logs.
            Auth::Password(_) => f.write_str("Password(..)"),
        }
    }
}

/// What a received VRRPv2 packet carries in its authentication fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceivedAuth {
    /// VRRPv3: no authentication fields.
    NotPresent,
    /// VRRPv2 type 0.
    None,
    /// VRRPv2 type 1 with its 8 data bytes.
    Password([u8; AUTH_DATA_LEN]),
    /// VRRPv2 type 2 (IP Authentication Header, removed by RFC 3768) or any
    /// unknown type.
    Unsupported(u8),
}

impl ReceivedAuth {
    /// Whether this matches what the receiver is configured with.
    pub fn matches(&self, configured: &Auth) -> bool {
        match (self, configured) {
            (ReceivedAuth::NotPresent, _) => true,
            (ReceivedAuth::None, Auth::None) => true,
            (ReceivedAuth::Password(a), Auth::Password(b)) => a == b,
            _ => false,
        }
    }
}

/// The internet checksum (RFC 1071) of `data`, continuing from `sum`.
fn sum_words(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sums the pseudo-header of RFC 5798 5.2.8 (RFC 768 / RFC 8200 8.1 form).
fn pseudo_header_sum(src: &IpAddr, dst: &IpAddr, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut sum = sum_words(0, &s.octets());
            sum = sum_words(sum, &d.octets());
            sum = sum.wrapping_add(u32::from(IP_PROTOCOL));
            sum.wrapping_add(len as u32 & 0xffff)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut sum = sum_words(0, &s.octets());
            sum = sum_words(sum, &d.octets());
            let len = len as u32;
            sum = sum.wrapping_add(len >> 16).wrapping_add(len & 0xffff);
            sum.wrapping_add(u32::from(IP_PROTOCOL))
        }
        // Mixed families cannot happen for one packet; sum nothing so
        // the checksum fails rather than panicking.
        _ => 0x1_0000,
    }
}

/// The addresses of the IP header a checksum needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPair {
    /// The IP source address.
    pub src: IpAddr,
    /// The IP destination address.
    pub dst: IpAddr,
}

fn uses_pseudo_header(version: Version, family: Family, mode: ChecksumMode) -> bool {
    match (version, family) {
        (Version::V2, _) => false,
        (Version::V3, Family::Ipv6) => true,
        (Version::V3, Family::Ipv4) => mode == ChecksumMode::Rfc,
    }
}

/// Computes the checksum of a VRRP packet in `bytes` whose checksum field
/// holds zero or the value to verify; returns the folded one's-complement
/// sum (zero when a filled-in checksum verifies).
fn checksum(bytes: &[u8], version: Version, ip: &IpPair, mode: ChecksumMode) -> u16 {
    let family = Family::of(&ip.src);
    let start = if uses_pseudo_header(version, family, mode) {
        pseudo_header_sum(&ip.src, &ip.dst, bytes.len())
    } else {
        0
    };
    fold(sum_words(start, bytes))
}

/// A read-only view of a VRRP packet over any byte container, checked by
/// [`Packet::new_checked`] before any accessor is used on untrusted input.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    family: Family,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that `buffer` is long enough for the header, the address
    /// count and (VRRPv2) the authentication data, that version and type
    /// are known and that VRRPv2 is not over IPv6. The checksum is checked
    /// separately by [`Packet::verify_checksum`] because it needs the IP
    /// addresses.
    pub fn new_checked(buffer: T, family: Family) -> Result<Self, DecodeError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DecodeError::Truncated {
                expected: HEADER_LEN,
                actual: b.len(),
            });
        }
        let version = b[field::VER_TYPE] >> 4;
        let ptype = b[field::VER_TYPE] & 0x0f;
        let version = match (version, family) {
            (2, Family::Ipv4) => Version::V2,
            (3, _) => Version::V3,
            (v, _) => return Err(DecodeError::BadVersion(v)),
        };
        // RFC 5798 7.1: the version is checked before the type.
        if ptype != TYPE_ADVERTISEMENT {
            return Err(DecodeError::BadType(ptype));
        }
        let packet = Packet { buffer, family };
        let expected = packet.expected_len(version);
        let actual = packet.buffer.as_ref().len();
        if actual < expected {
            return Err(DecodeError::Truncated { expected, actual });
        }
        Ok(packet)
    }

    fn expected_len(&self, version: Version) -> usize {
        let addrs = usize::from(self.buffer.as_ref()[field::COUNT]) * self.family.address_len();
        match version {
            Version::V2 => HEADER_LEN + addrs + AUTH_DATA_LEN,
            Version::V3 => HEADER_LEN + addrs,
        }
    }

    /// The address family given at construction.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        if self.buffer.as_ref()[field::VER_TYPE] >> 4 == 2 {
            Version::V2
        } else {
            Version::V3
        }
    }

    /// The raw VRID byte (0 is invalid; see [`Packet::vrid`]).
    pub fn vrid_raw(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    /// The VRID, `None` for the invalid 0.
    pub fn vrid(&self) -> Option<Vrid> {
        Vrid::new(self.vrid_raw())
    }

    /// The sender's priority.
    pub fn priority(&self) -> Priority {
        Priority::new(self.buffer.as_ref()[field::PRIORITY])
    }

    /// How many addresses the packet lists.
    pub fn address_count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// The advertisement interval: VRRPv2 seconds times 100, or the
    /// VRRPv3 12-bit Max Adver Int.
    pub fn advert_interval(&self) -> Centisecs {
        let b = self.buffer.as_ref();
        match self.version() {
            Version::V2 => Centisecs::new(u16::from(b[field::ADVER_INT]) * 100),
            Version::V3 => {
                let raw = u16::from_be_bytes([
                    b[field::MAX_ADVER_INT.start],
                    b[field::MAX_ADVER_INT.start + 1],
                ]);
                Centisecs::new(raw & 0x0fff)
            }
        }
    }

    /// The authentication fields (VRRPv2 only).
    pub fn auth(&self) -> ReceivedAuth {
        let b = self.buffer.as_ref();
        match self.version() {
            Version::V3 => ReceivedAuth::NotPresent,
            Version::V2 => {
                let start = self.expected_len(Version::V2) - AUTH_DATA_LEN;
                let mut data = [0u8; AUTH_DATA_LEN];
                data.copy_from_slice(&b[start..start + AUTH_DATA_LEN]);
                match b[field::AUTH_TYPE] {
                    0 => ReceivedAuth::None,
                    1 => ReceivedAuth::Password(data),
                    t => ReceivedAuth::Unsupported(t),
                }
            }
        }
    }

    /// The checksum field.
    pub fn checksum_field(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::CHECKSUM.start], b[field::CHECKSUM.start + 1]])
    }

    /// The address list as raw bytes.
    pub fn address_bytes(&self) -> &[u8] {
        let n = usize::from(self.address_count()) * self.family.address_len();
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + n]
    }

    /// The addresses, decoded.
    pub fn addresses(&self) -> AddressIter<'_> {
        AddressIter {
            bytes: self.address_bytes(),
            family: self.family,
        }
    }

    /// Verifies the checksum of the whole buffer (the IP payload) given the
    /// IP addresses it travelled between.
    pub fn verify_checksum(&self, ip: &IpPair, mode: ChecksumMode) -> Result<(), DecodeError> {
        if Family::of(&ip.src) != self.family || Family::of(&ip.dst) != self.family {
            return Err(DecodeError::BadChecksum);
        }
        if checksum(self.buffer.as_ref(), self.version(), ip, mode) == 0 {
            Ok(())
        } else {
            Err(DecodeError::BadChecksum)
        }
    }
}

/// Iterator over the addresses of a packet.
#[derive(Debug, Clone)]
pub struct AddressIter<'a> {
    bytes: &'a [u8],
    family: Family,
}

impl Iterator for AddressIter<'_> {
    type Item = IpAddr;
    fn next(&mut self) -> Option<IpAddr> {
        let len = self.family.address_len();
        if self.bytes.len() < len {
            return None;
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Some(match self.family {
            Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(head[0], head[1], head[2], head[3])),
            Family::Ipv6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(head);
                IpAddr::V6(Ipv6Addr::from(o))
            }
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.bytes.len() / self.family.address_len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for AddressIter<'_> {}

/// An advertisement as values: what [`AdvertRepr::parse`] reads and
/// [`AdvertRepr::emit`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertRepr<A> {
    /// Protocol version.
    pub version: Version,
    /// Virtual router.
    pub vrid: Vrid,
    /// Sender's priority; 0 = the master is stopping.
    pub priority: Priority,
    /// Advertisement interval (VRRPv3: the sender's Max Adver Int).
    pub interval: Centisecs,
    /// VRRPv2 authentication; must be [`Auth::None`] for VRRPv3.
    pub auth: Auth,
    /// The virtual addresses, all of one family.
    pub addresses: A,
}

impl<'a> AdvertRepr<AddressIter<'a>> {
    /// Reads a checked packet, verifying its checksum. An unknown or
    /// unsupported authentication type is returned as is for the caller
    /// to judge; use [`Packet::auth`].
    pub fn parse<T: AsRef<[u8]>>(
        packet: &'a Packet<T>,
        ip: &IpPair,
        mode: ChecksumMode,
    ) -> Result<Self, DecodeError> {
        packet.verify_checksum(ip, mode)?;
        let vrid = packet.vrid().ok_or(DecodeError::BadVrid)?;
        let interval = packet.advert_interval();
        if interval.get() == 0 && packet.version() == Version::V3 {
            return Err(DecodeError::ZeroInterval);
        }
        let auth = match packet.auth() {
            ReceivedAuth::Password(d) => Auth::Password(d),
            _ => Auth::None,
        };
        Ok(AdvertRepr {
            version: packet.version(),
            vrid,
            priority: packet.priority(),
            interval,
            auth,
            addresses: packet.addresses(),
        })
    }
}

impl<A> AdvertRepr<A>
where
    A: IntoIterator<Item = IpAddr> + Clone,
{
    /// Bytes [`AdvertRepr::emit`] writes for `family`.
    pub fn buffer_len(&self, family: Family) -> usize {
        let n = self.addresses.clone().into_iter().count();
        let base = HEADER_LEN + n * family.address_len();
        match self.version {
            Version::V2 => base + AUTH_DATA_LEN,
            Version::V3 => base,
        }
    }

    /// Writes the advertisement with its checksum into the front of `buf`
    /// and returns the number of bytes written. `ip` gives the addresses
    /// the packet will travel between (for the VRRPv3 pseudo-header).
    pub fn emit(
        &self,
        buf: &mut [u8],
        ip: &IpPair,
        mode: ChecksumMode,
    ) -> Result<usize, EncodeError> {
        let family = Family::of(&ip.src);
        if self.version == Version::V2 && family == Family::Ipv6 {
            return Err(EncodeError::V2OverIpv6);
        }
        let count = self.addresses.clone().into_iter().count();
        let count_byte = u8::try_from(count).map_err(|_| EncodeError::TooManyAddresses(count))?;
        let len = self.buffer_len(family);
        if buf.len() < len {
            return Err(EncodeError::BufferTooSmall {
                needed: len,
                actual: buf.len(),
            });
        }
        let buf = &mut buf[..len];
        buf[field::VER_TYPE] = (self.version.number() << 4) | TYPE_ADVERTISEMENT;
        buf[field::VRID] = self.vrid.get();
        buf[field::PRIORITY] = self.priority.get();
        buf[field::COUNT] = count_byte;
        match self.version {
            Version::V2 => {
                let cs = self.interval.get();
                if !cs.is_multiple_of(100) || cs == 0 || cs > Centisecs::V2_MAX.get() {
                    return Err(EncodeError::IntervalNotRepresentable(self.interval));
                }
                buf[field::AUTH_TYPE] = self.auth.type_byte();
                buf[field::ADVER_INT] = (cs / 100) as u8;
            }
            Version::V3 => {
                let cs = self.interval.get();
                if cs == 0 || cs > Centisecs::V3_MAX.get() {
                    return Err(EncodeError::IntervalNotRepresentable(self.interval));
                }
                buf[field::MAX_ADVER_INT].copy_from_slice(&cs.to_be_bytes());
            }
        }
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        let mut at = HEADER_LEN;
        for addr in self.addresses.clone() {
            match (addr, family) {
                (IpAddr::V4(a), Family::Ipv4) => buf[at..at + 4].copy_from_slice(&a.octets()),
                (IpAddr::V6(a), Family::Ipv6) => buf[at..at + 16].copy_from_slice(&a.octets()),
                (other, _) => return Err(EncodeError::WrongFamily(other)),
            }
            at += family.address_len();
        }
        if self.version == Version::V2 {
            buf[at..at + AUTH_DATA_LEN].copy_from_slice(&self.auth.data());
        }
        let sum = checksum(buf, self.version, ip, mode);
        buf[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        Ok(len)
    }
}
