//! Every VRRP packet keepalived 2.2.7 sent in `testdata/*.pcap` decodes to
//! what the matching `.conf` configured and re-encodes byte for byte.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use etherparse::{NetSlice, SlicedPacket};
use vrrp_core::wire::{AdvertRepr, IpPair, Packet};
use vrrp_core::{Auth, Centisecs, ChecksumMode, Family, Priority, Version, Vrid};

/// One VRRP packet pulled out of a capture.
struct Captured {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    tos: u8,
    payload: Vec<u8>,
}

/// Reads a classic little-endian pcap of Ethernet frames and keeps the IP
/// protocol 112 packets.
fn vrrp_packets(pcap: &[u8]) -> Vec<Captured> {
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet link type"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..at + 16 + incl];
        at += 16 + incl;
        let sliced = SlicedPacket::from_ethernet(frame).expect("capture frames parse");
        match sliced.net {
            Some(NetSlice::Ipv4(ip)) if ip.header().protocol().0 == 112 => out.push(Captured {
                src: ip.header().source_addr().into(),
                dst: ip.header().destination_addr().into(),
                ttl: ip.header().ttl(),
                tos: ip.header().slice()[1],
                payload: ip.payload().payload.to_vec(),
            }),
            Some(NetSlice::Ipv6(ip)) if ip.header().next_header().0 == 112 => out.push(Captured {
                src: ip.header().source_addr().into(),
                dst: ip.header().destination_addr().into(),
                ttl: ip.header().hop_limit(),
                tos: ip.header().traffic_class(),
                payload: ip.payload().payload.to_vec(),
            }),
            _ => {}
        }
    }
    out
}

struct Expect {
    version: Version,
    interval: Centisecs,
    auth: Auth,
    addresses: &'static [&'static str],
}

fn check(pcap: &[u8], expect: Expect) {
    let packets = vrrp_packets(pcap);
    assert!(packets.len() >= 3, "a capture holds several advertisements");
    let family = Family::of(&packets[0].src);
    let mut saw_stop = false;
    for p in &packets {
        // keepalived sends with TTL 255 and precedence "internetwork control".
        assert_eq!(p.ttl, 255);
        assert_eq!(p.tos, 0xc0);
        let ip = IpPair {
            src: p.src,
            dst: p.dst,
        };
        let packet = Packet::new_checked(&p.payload[..], family).expect("checked view");
        let repr = AdvertRepr::parse(&packet, &ip, ChecksumMode::Rfc)
            .expect("parses with the RFC checksum");
        assert_eq!(repr.version, expect.version);
        assert_eq!(repr.vrid, Vrid::new(42).unwrap());
        assert!(repr.priority == Priority::new(150) || repr.priority == Priority::STOP);
        saw_stop |= repr.priority == Priority::STOP;
        assert_eq!(repr.interval, expect.interval);
        assert_eq!(repr.auth, expect.auth);
        let addrs: Vec<IpAddr> = repr.addresses.clone().collect();
        let want: Vec<IpAddr> = expect
            .addresses
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(addrs, want);
        // Re-encode into a buffer full of 0xa5 so an unset byte shows.
        let mut buf = [0xa5u8; 512];
        let emitted = AdvertRepr {
            version: repr.version,
            vrid: repr.vrid,
            priority: repr.priority,
            interval: repr.interval,
            auth: repr.auth,
            addresses: addrs.iter().copied(),
        };
        let len = emitted
            .emit(&mut buf, &ip, ChecksumMode::Rfc)
            .expect("emits");
        assert_eq!(&buf[..len], &p.payload[..], "byte-identical re-encoding");
        assert_eq!(emitted.buffer_len(family), len);
    }
    assert!(
        saw_stop,
        "keepalived's SIGTERM priority-0 advertisement is in the capture"
    );
}

#[test]
fn keepalived_v2_no_auth() {
    check(
        include_bytes!("../testdata/keepalived_v2_noauth.pcap"),
        Expect {
            version: Version::V2,
            interval: Centisecs::new(100),
            auth: Auth::None,
            addresses: &["192.0.2.100"],
        },
    );
}

#[test]
fn keepalived_v2_password() {
    // The .conf says `auth_pass s3cr3t!x`, but keepalived's parser treats
    // `!` as the start of a comment: the password on the wire is "s3cr3t".
    check(
        include_bytes!("../testdata/keepalived_v2_pass.pcap"),
        Expect {
            version: Version::V2,
            interval: Centisecs::new(100),
            auth: Auth::password(b"s3cr3t").unwrap(),
            addresses: &["192.0.2.100", "192.0.2.101", "192.0.2.102"],
        },
    );
}

#[test]
fn keepalived_v3_ipv4() {
    check(
        include_bytes!("../testdata/keepalived_v3_v4.pcap"),
        Expect {
            version: Version::V3,
            interval: Centisecs::new(100),
            auth: Auth::None,
            addresses: &["192.0.2.100", "192.0.2.101"],
        },
    );
}

#[test]
fn keepalived_v3_ipv6() {
    check(
        include_bytes!("../testdata/keepalived_v3_v6.pcap"),
        Expect {
            version: Version::V3,
            interval: Centisecs::new(100),
            auth: Auth::None,
            addresses: &["2001:db8::100", "2001:db8::101"],
        },
    );
}

#[test]
fn v3_ipv4_checksum_includes_the_pseudo_header() {
    // keepalived 2.2.7's default: the RFC checksum. The compatibility mode
    // (vrrp_v3_checksum_as_v2) must therefore reject these packets.
    let p = &vrrp_packets(include_bytes!("../testdata/keepalived_v3_v4.pcap"))[0];
    let packet = Packet::new_checked(&p.payload[..], Family::Ipv4).unwrap();
    let ip = IpPair {
        src: p.src,
        dst: p.dst,
    };
    assert!(packet.verify_checksum(&ip, ChecksumMode::Rfc).is_ok());
    assert!(
        packet
            .verify_checksum(&ip, ChecksumMode::V3WithoutPseudoHeader)
            .is_err()
    );
    // And a packet emitted in that mode verifies only in that mode.
    let repr = AdvertRepr::parse(&packet, &ip, ChecksumMode::Rfc).unwrap();
    let mut buf = [0u8; 64];
    let len = repr
        .emit(&mut buf, &ip, ChecksumMode::V3WithoutPseudoHeader)
        .unwrap();
    let other = Packet::new_checked(&buf[..len], Family::Ipv4).unwrap();
    assert!(
        other
            .verify_checksum(&ip, ChecksumMode::V3WithoutPseudoHeader)
            .is_ok()
    );
    assert!(other.verify_checksum(&ip, ChecksumMode::Rfc).is_err());
}

#[test]
fn checksum_depends_on_addresses_for_v3() {
    let p = &vrrp_packets(include_bytes!("../testdata/keepalived_v3_v6.pcap"))[0];
    let packet = Packet::new_checked(&p.payload[..], Family::Ipv6).unwrap();
    let wrong = IpPair {
        src: "fe80::1".parse().unwrap(),
        dst: p.dst,
    };
    assert!(packet.verify_checksum(&wrong, ChecksumMode::Rfc).is_err());
}

#[test]
fn v3_reserved_bits_are_ignored_on_receipt_and_sent_as_zero() {
    // RFC 5798 5.2.6. Found by the decode fuzzer's round-trip oracle.
    let p = &vrrp_packets(include_bytes!("../testdata/keepalived_v3_v4.pcap"))[0];
    let ip = IpPair {
        src: p.src,
        dst: p.dst,
    };
    let mut bytes = p.payload.clone();
    bytes[4] |= 0xf0;
    // Keep the checksum right for the changed word.
    let sum = u16::from_be_bytes([bytes[6], bytes[7]]);
    let fixed = !(u32::from(!sum) + 0xf000);
    let fixed = (fixed & 0xffff) as u16;
    let fixed = if u32::from(!sum) + 0xf000 > 0xffff {
        fixed.wrapping_sub(1)
    } else {
        fixed
    };
    bytes[6..8].copy_from_slice(&fixed.to_be_bytes());
    let packet = Packet::new_checked(&bytes[..], Family::Ipv4).unwrap();
    let repr = AdvertRepr::parse(&packet, &ip, ChecksumMode::Rfc).unwrap();
    assert_eq!(repr.interval, Centisecs::new(100));
    let mut out = [0u8; 64];
    let len = repr.emit(&mut out, &ip, ChecksumMode::Rfc).unwrap();
    assert_eq!(
        &out[..len],
        &p.payload[..],
        "sent with the reserved bits clear"
    );
}
