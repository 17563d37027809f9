//! vrrp-net's raw-socket datagram parser against a model written from the
//! specs: for any bytes and any `recvmsg` metadata it accepts exactly the
//! datagrams the model accepts (IPv4: RFC 791 header, version 4, IHL >= 5,
//! protocol 112, total length covering the header; IPv6: source and
//! IPV6_PKTINFO destination known), and returns the same payload range,
//! addresses, interface and TTL; the range always lies inside the received
//! bytes.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vrrp_net::fuzzing::{DatagramMeta, ParsedDatagram, parse_datagram};
use vrrp_net::socket::Family;

const VRRP_PROTOCOL: u8 = 112;

fn model(
    family: Family,
    default_ifindex: u32,
    meta: &DatagramMeta,
    buf: &[u8],
) -> Option<ParsedDatagram> {
    let data = buf.get(..meta.len)?;
    let ifindex = meta.ifindex.unwrap_or(default_ifindex);
    match family {
        Family::Ipv4 => {
            let first = *data.first()?;
            let header_len = usize::from(first & 0x0f) * 4;
            if data.len() < 20 || first >> 4 != 4 || header_len < 20 || data.len() < header_len {
                return None;
            }
            if data[9] != VRRP_PROTOCOL {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
            if total < header_len {
                return None;
            }
            let octets =
                |at: usize| -> [u8; 4] { [data[at], data[at + 1], data[at + 2], data[at + 3]] };
            Some(ParsedDatagram {
                payload: header_len..total.min(data.len()),
                ifindex,
                src: IpAddr::V4(Ipv4Addr::from(octets(12))),
                dst: IpAddr::V4(Ipv4Addr::from(octets(16))),
                ttl: Some(meta.ttl.unwrap_or(data[8])),
            })
        }
        // The kernel strips the IPv6 header: addresses come from recvmsg.
        _ => Some(ParsedDatagram {
            payload: 0..data.len(),
            ifindex,
            src: meta.src?,
            dst: meta.pktinfo_dst?,
            ttl: meta.ttl,
        }),
    }
}

fn addr(v6: bool, bytes: &[u8]) -> IpAddr {
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(bytes) {
        *d = *s;
    }
    if v6 {
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

// Layout: 8 bytes of metadata, then the received buffer (seeds: a zero
// header and a captured IPv4 packet).
fuzz_target!(|data: &[u8]| {
    let (head, buf) = data.split_at(data.len().min(8));
    let mut h = [0u8; 8];
    h[..head.len()].copy_from_slice(head);
    let flags = h[0];
    let v6 = flags & 1 != 0;
    let family = if v6 { Family::Ipv6 } else { Family::Ipv4 };
    // Usually everything received; sometimes less or (never from the
    // kernel, but the parser must not care) more than the buffer.
    let shrink = usize::from(u16::from_le_bytes([h[2], h[3]]));
    let len = match flags >> 6 {
        0 | 1 => buf.len(),
        2 => buf.len().saturating_sub(shrink),
        _ => buf.len() + shrink,
    };
    let meta = DatagramMeta {
        len,
        src: (flags & 2 != 0).then(|| {
            addr(
                v6,
                &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, h[4]],
            )
        }),
        pktinfo_dst: (flags & 4 != 0).then(|| {
            addr(
                v6,
                &[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12],
            )
        }),
        ifindex: (flags & 8 != 0).then_some(u32::from(h[5])),
        ttl: (flags & 16 != 0).then_some(h[6]),
    };
    let default_ifindex = u32::from(h[7]);
    let got = parse_datagram(family, default_ifindex, &meta, buf);
    if let Some(p) = &got {
        assert!(p.payload.start <= p.payload.end && p.payload.end <= buf.len().min(meta.len));
    }
    assert_eq!(got, model(family, default_ifindex, &meta, buf));
});
