//! Any bytes: the checked view and the parser never panic, and whatever
//! parses re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use vrrp_core::wire::{AdvertRepr, IpPair, Packet};
use vrrp_core::{ChecksumMode, Family};

fuzz_target!(|input: (bool, bool, &[u8])| {
    let (v6, compat, bytes) = input;
    let (family, ip) = if v6 {
        (
            Family::Ipv6,
            IpPair {
                src: "fe80::1".parse::<IpAddr>().unwrap(),
                dst: "ff02::12".parse().unwrap(),
            },
        )
    } else {
        (
            Family::Ipv4,
            IpPair {
                src: "192.0.2.1".parse::<IpAddr>().unwrap(),
                dst: "224.0.0.18".parse().unwrap(),
            },
        )
    };
    let mode = if compat {
        ChecksumMode::V3WithoutPseudoHeader
    } else {
        ChecksumMode::Rfc
    };
    let Ok(packet) = Packet::new_checked(bytes, family) else {
        return;
    };
    let _ = (
        packet.auth(),
        packet.addresses().count(),
        packet.checksum_field(),
    );
    // Checksum aside, re-encode what the view shows and compare.
    let Ok(repr) = AdvertRepr::parse(&packet, &ip, mode) else {
        return;
    };
    let mut buf = vec![0u8; bytes.len() + 16];
    match repr.emit(&mut buf, &ip, mode) {
        Ok(len) => {
            // Only the bytes the header accounts for are re-encoded; VRRPv2
            // type 0 carries whatever auth bytes the sender put there.
            let auth_none_v2 = bytes[0] >> 4 == 2 && bytes[4] == 0;
            let sum_ok = !auth_none_v2 || bytes[len - 8..len].iter().all(|b| *b == 0);
            // VRRPv3's 4 reserved bits are ignored on receipt and sent as
            // zero (RFC 5798 5.2.6), so they do not survive a round trip.
            let reserved_clear = bytes[0] >> 4 == 2 || bytes[4] >> 4 == 0;
            // An unknown VRRPv2 auth type is reported by `Packet::auth`
            // for the instance to drop; the repr carries only types 0 and 1.
            let known_auth = bytes[0] >> 4 == 3 || bytes[4] <= 1;
            if len == bytes.len() && sum_ok && reserved_clear && known_auth {
                // One's complement has two zeros: a packet whose checksum
                // field is 0xffff verifies like one with 0x0000 (RFC 1624),
                // and we send the latter.
                let mut expected = bytes.to_vec();
                if expected[6..8] == [0xff, 0xff] && buf[6..8] == [0, 0] {
                    expected[6..8].copy_from_slice(&[0, 0]);
                }
                assert_eq!(&buf[..len], &expected[..], "round trip");
            }
        }
        // A VRRPv2 interval of 0 parses but cannot be sent.
        Err(_) => {}
    }
});
