//! ICMP / ICMPv6 echo check (keepalived `PING_CHECK`), on socket2.
//!
//! Each attempt opens its own socket: an unprivileged "ping" datagram socket
//! when `net.ipv4.ping_group_range` allows it (the kernel then demultiplexes
//! replies for us), a raw socket otherwise (needs `CAP_NET_RAW`; every raw
//! socket sees every ICMP packet, so replies are matched on identifier,
//! sequence, source and payload). The socket is handed to tokio as a
//! `UdpSocket`, which only needs `sendto`/`recvfrom` on a non-blocking fd.

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;

use crate::error::{ConfigError, DownReason};
use crate::schedule::{ProbeResult, ProbeSuccess};

/// Largest payload accepted, so that an echo fits any sane MTU.
const MAX_PAYLOAD: usize = 1400;
const ICMP_HEADER: usize = 8;

// RFC 792: echo request 8, echo reply 0, errors 3 (unreachable) and 11
// (time exceeded). RFC 4443 section 4.1/4.2: echo request 128, reply 129;
// section 3: errors 1 (unreachable), 2 (too big), 3 (time exceeded).
const V4_ECHO_REQUEST: u8 = 8;
const V4_ECHO_REPLY: u8 = 0;
const V6_ECHO_REQUEST: u8 = 128;
const V6_ECHO_REPLY: u8 = 129;

/// Up when an echo reply comes back from `target` within the timeout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IcmpCheck {
    /// Address to ping (IPv4 or IPv6).
    pub target: IpAddr,
    /// Source address; must be of the same family as `target`.
    pub source: Option<IpAddr>,
    /// Interface to send through (keepalived `bind_if`).
    pub interface: Option<String>,
    /// Echo payload length in bytes (56 like ping(8)).
    pub payload_len: usize,
}

impl IcmpCheck {
    /// Pings `target` with a 56-byte payload.
    #[must_use]
    pub fn new(target: IpAddr) -> Self {
        Self {
            target,
            source: None,
            interface: None,
            payload_len: 56,
        }
    }
}

#[derive(Debug)]
pub(crate) struct PreparedIcmp {
    check: IcmpCheck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// Kernel ping socket: no IP header, identifier rewritten by the kernel.
    Datagram,
    /// Raw socket: IPv4 replies carry the IP header, IPv6 ones do not.
    Raw,
}

impl PreparedIcmp {
    pub(crate) fn new(check: &IcmpCheck) -> Result<Self, ConfigError> {
        if check.payload_len > MAX_PAYLOAD {
            return Err(ConfigError::IcmpPayloadTooLarge(check.payload_len));
        }
        if let Some(source) = check.source
            && source.is_ipv4() != check.target.is_ipv4()
        {
            return Err(ConfigError::AddressFamilyMismatch {
                source_addr: source,
                target: check.target,
            });
        }
        Ok(Self {
            check: check.clone(),
        })
    }

    pub(crate) async fn probe(&self, serial: u64) -> ProbeResult {
        let target = self.check.target;
        let (socket, kind) = open_socket(target).map_err(|e| DownReason::from_io("socket", &e))?;
        if let Some(name) = &self.check.interface {
            socket
                .bind_device(Some(name.as_bytes()))
                .map_err(|e| DownReason::from_io("bind_if", &e))?;
        }
        if let Some(source) = self.check.source {
            socket
                .bind(&SockAddr::from(SocketAddr::new(source, 0)))
                .map_err(|e| DownReason::from_io("bind", &e))?;
        }
        socket
            .set_nonblocking(true)
            .map_err(|e| DownReason::from_io("socket", &e))?;
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))
            .map_err(|e| DownReason::from_io("socket", &e))?;

        let ident = next_identifier();
        // Sequence numbers are 16 bits on the wire; wrapping is harmless
        // because each attempt has its own socket and identifier.
        let sequence = (serial & 0xffff) as u16;
        let payload = payload(serial, self.check.payload_len);
        let request = echo_request(target.is_ipv4(), ident, sequence, &payload);
        socket
            .send_to(&request, SocketAddr::new(target, 0))
            .await
            .map_err(|e| DownReason::from_io("send", &e))?;

        let expected = Expected {
            v4: target.is_ipv4(),
            kind,
            ident,
            sequence,
            payload: &payload,
        };
        let mut buf = vec![0_u8; 2048];
        loop {
            let (len, from) = socket
                .recv_from(&mut buf)
                .await
                .map_err(|e| DownReason::from_io("recv", &e))?;
            let Some(packet) = buf.get(..len) else {
                continue;
            };
            match expected.classify(packet, from.ip() == target) {
                Verdict::Reply => return Ok(ProbeSuccess::default()),
                Verdict::Error { icmp_type, code } => {
                    return Err(DownReason::IcmpError { icmp_type, code });
                }
                Verdict::Unrelated => {}
            }
        }
    }
}

fn open_socket(target: IpAddr) -> io::Result<(Socket, SocketKind)> {
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(socket) => Ok((socket, SocketKind::Datagram)),
        Err(datagram_error) => match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(socket) => Ok((socket, SocketKind::Raw)),
            // The datagram error (EACCES from ping_group_range) explains more
            // than EPERM from the raw socket.
            Err(_) => Err(datagram_error),
        },
    }
}

/// Identifiers unique among this process's concurrent attempts, starting at
/// a per-process random value so that two checkers on a host differ.
fn next_identifier() -> u16 {
    static BASE: OnceLock<u16> = OnceLock::new();
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let base =
        *BASE.get_or_init(|| (RandomState::new().hash_one(std::process::id()) & 0xffff) as u16);
    base.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn payload(serial: u64, len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = serial
        .to_be_bytes()
        .into_iter()
        .chain(std::iter::repeat(0x5a))
        .take(len)
        .collect();
    out.resize(len, 0x5a);
    out
}

/// RFC 1071 internet checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => u32::from(u16::from_be_bytes([*high, *low])),
            [high] => u32::from(*high) << 8,
            _ => 0,
        })
        .fold(0_u32, u32::wrapping_add);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_request(v4: bool, ident: u16, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(ICMP_HEADER + payload.len());
    packet.push(if v4 { V4_ECHO_REQUEST } else { V6_ECHO_REQUEST });
    packet.push(0);
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(payload);
    if v4 {
        // The kernel fills in the ICMPv6 checksum (RFC 3542 3.1), not ICMPv4's.
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Reply,
    Error { icmp_type: u8, code: u8 },
    Unrelated,
}

pub(crate) struct Expected<'a> {
    pub(crate) v4: bool,
    pub(crate) kind: SocketKind,
    pub(crate) ident: u16,
    pub(crate) sequence: u16,
    pub(crate) payload: &'a [u8],
}

impl Expected<'_> {
    /// Classifies one received packet; never panics on any bytes.
    pub(crate) fn classify(&self, packet: &[u8], from_target: bool) -> Verdict {
        let icmp = if self.v4 && self.kind == SocketKind::Raw {
            match strip_ipv4_header(packet) {
                Some(icmp) => icmp,
                None => return Verdict::Unrelated,
            }
        } else {
            packet
        };
        let (Some(&icmp_type), Some(&code)) = (icmp.first(), icmp.get(1)) else {
            return Verdict::Unrelated;
        };
        let reply_type = if self.v4 {
            V4_ECHO_REPLY
        } else {
            V6_ECHO_REPLY
        };
        if icmp_type == reply_type {
            let matches = from_target
                && icmp.len() >= ICMP_HEADER
                // A ping socket's identifier is rewritten by the kernel,
                // which already delivers only our replies.
                && (self.kind == SocketKind::Datagram || icmp[4..6] == self.ident.to_be_bytes())
                && icmp[6..8] == self.sequence.to_be_bytes()
                && &icmp[ICMP_HEADER..] == self.payload;
            return if matches {
                Verdict::Reply
            } else {
                Verdict::Unrelated
            };
        }
        let is_error = if self.v4 {
            matches!(icmp_type, 3 | 11)
        } else {
            matches!(icmp_type, 1..=3)
        };
        if is_error && self.quotes_our_request(icmp.get(ICMP_HEADER..).unwrap_or_default()) {
            return Verdict::Error { icmp_type, code };
        }
        Verdict::Unrelated
    }

    /// Whether an ICMP error's quoted datagram is our echo request.
    fn quotes_our_request(&self, quoted: &[u8]) -> bool {
        let inner = if self.v4 {
            strip_ipv4_header(quoted)
        } else {
            // RFC 8200: fixed 40-byte header; next header 58 is ICMPv6.
            quoted
                .get(6)
                .filter(|&&next| next == 58)
                .and(quoted.get(40..))
        };
        let Some(inner) = inner else {
            return false;
        };
        let request_type = if self.v4 {
            V4_ECHO_REQUEST
        } else {
            V6_ECHO_REQUEST
        };
        inner.len() >= ICMP_HEADER
            && inner[0] == request_type
            && inner[4..6] == self.ident.to_be_bytes()
            && inner[6..8] == self.sequence.to_be_bytes()
    }
}

/// The payload of an IPv4 packet carrying ICMP, `None` if it is not one.
fn strip_ipv4_header(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    // RFC 791: version 4, IHL at least 5 words; protocol 1 is ICMP.
    if first >> 4 != 4 || header_len < 20 || packet.get(9) != Some(&1) {
        return None;
    }
    packet.get(header_len..)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(v4: bool, kind: SocketKind, payload: &[u8]) -> Expected<'_> {
        Expected {
            v4,
            kind,
            ident: 0x1234,
            sequence: 7,
            payload,
        }
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3 example bytes; sum 0xddf2, checksum its complement.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        let request = echo_request(true, 0x1234, 7, b"abc");
        assert_eq!(
            checksum(&request),
            0,
            "a packet with its checksum sums to zero"
        );
    }

    #[test]
    fn raw_v4_reply_is_matched_on_ident_sequence_and_payload() {
        let payload = payload(7, 16);
        let mut reply = echo_request(true, 0x1234, 7, &payload);
        reply[0] = V4_ECHO_REPLY;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip.extend_from_slice(&reply);
        let want = expected(true, SocketKind::Raw, &payload);
        assert_eq!(want.classify(&ip, true), Verdict::Reply);
        assert_eq!(
            want.classify(&ip, false),
            Verdict::Unrelated,
            "wrong source"
        );
        let mut other = ip.clone();
        other[20 + 5] ^= 1;
        assert_eq!(
            want.classify(&other, true),
            Verdict::Unrelated,
            "wrong identifier"
        );
        // Our own request, looped back to a raw socket, is not a reply.
        let mut looped = ip.clone();
        looped[20] = V4_ECHO_REQUEST;
        assert_eq!(want.classify(&looped, true), Verdict::Unrelated);
    }

    #[test]
    fn datagram_reply_ignores_rewritten_identifier() {
        let payload = payload(7, 8);
        let mut reply = echo_request(false, 0x9999, 7, &payload);
        reply[0] = V6_ECHO_REPLY;
        assert_eq!(
            expected(false, SocketKind::Datagram, &payload).classify(&reply, true),
            Verdict::Reply
        );
        assert_eq!(
            expected(false, SocketKind::Raw, &payload).classify(&reply, true),
            Verdict::Unrelated
        );
    }

    #[test]
    fn v6_unreachable_quoting_our_request_is_an_error() {
        let payload = payload(7, 8);
        let request = echo_request(false, 0x1234, 7, &payload);
        let mut quoted_ip = vec![0x60, 0, 0, 0, 0, 16, 58, 64];
        quoted_ip.extend_from_slice(&[0; 32]);
        let mut error = vec![1, 3, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&quoted_ip);
        error.extend_from_slice(&request);
        let want = expected(false, SocketKind::Raw, &payload);
        assert_eq!(
            want.classify(&error, false),
            Verdict::Error {
                icmp_type: 1,
                code: 3
            }
        );
        error[40 + 8 + 7] ^= 1; // another sequence number
        assert_eq!(want.classify(&error, false), Verdict::Unrelated);
    }

    #[test]
    fn classify_never_panics_on_short_or_odd_packets() {
        let payload = payload(7, 16);
        for v4 in [true, false] {
            for kind in [SocketKind::Raw, SocketKind::Datagram] {
                let want = expected(v4, kind, &payload);
                for len in 0..64 {
                    for fill in [0x00, 0x45, 0xff, 0x03, 0x01] {
                        let packet = vec![fill; len];
                        let _ = want.classify(&packet, true);
                    }
                }
            }
        }
    }
}
