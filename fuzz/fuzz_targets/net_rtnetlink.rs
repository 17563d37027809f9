//! vrrp-net's rtnetlink readers. Any bytes: the route-attribute reader
//! yields exactly the well-formed attributes from the start (each header's
//! length covers its payload, the next one starts 4-byte aligned) and stops
//! at the first malformed one; the link and address parsers never panic and
//! report the header fields as sent. Messages built from arbitrary values
//! (with unknown attributes mixed in) parse back to those values.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use vrrp_net::fuzzing::{parse_addr, parse_link, route_attributes};

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_OPERSTATE: u16 = 16;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_FLAGS: u16 = 8;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The attribute reader, specified: where each attribute starts, and why
/// the walk stops.
fn check_attributes(bytes: &[u8]) {
    let attrs = route_attributes(bytes);
    let mut at = 0;
    for (ty, payload) in &attrs {
        let len = usize::from(u16_at(bytes, at));
        assert!(
            len >= 4 && at + len <= bytes.len(),
            "yielded a malformed attribute"
        );
        assert_eq!(*ty, u16_at(bytes, at + 2) & 0x3fff);
        assert_eq!(payload.as_ptr(), bytes[at + 4..].as_ptr());
        assert_eq!(payload.len(), len - 4);
        at += (len + 3) & !3;
    }
    // Stopped for a reason: nothing left, a short header, or a bad length.
    if let Some(rest) = bytes.get(at..).filter(|r| r.len() >= 4) {
        let len = usize::from(u16_at(rest, 0));
        assert!(
            len < 4 || len > rest.len(),
            "stopped before a well-formed attribute at {at}"
        );
    }
}

fn check_raw(bytes: &[u8]) {
    check_attributes(bytes);
    if let Some(rest) = bytes.get(16..) {
        check_attributes(rest);
    }
    if let Some(link) = parse_link(bytes) {
        assert!(bytes.len() >= 16);
        assert_eq!(
            (link.ifindex, link.flags),
            (u32_at(bytes, 4), u32_at(bytes, 8))
        );
    }
    if let Some(addr) = parse_addr(bytes) {
        assert!(bytes.len() >= 8);
        assert_eq!(
            (addr.prefix_len, addr.ifindex),
            (bytes[1], u32_at(bytes, 4))
        );
        match bytes[0] {
            AF_INET => assert!(addr.addr.is_ipv4()),
            AF_INET6 => assert!(addr.addr.is_ipv6()),
            f => panic!("an address of family {f} was accepted"),
        }
    }
}

fn put_attr(out: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).expect("small attribute");
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(payload);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Attributes the parsers do not read, to mix in.
fn noise(u: &mut Unstructured<'_>, out: &mut Vec<u8>, known: &[u16]) -> arbitrary::Result<()> {
    for _ in 0..u.int_in_range(0..=2)? {
        let ty = u16::arbitrary(u)? & 0x3fff;
        if known.contains(&ty) {
            continue;
        }
        // The nested flag is stripped, so set it sometimes.
        let flagged = ty | if bool::arbitrary(u)? { 0x8000 } else { 0 };
        let len = u.int_in_range(0..=12)?;
        put_attr(out, flagged, u.bytes(len)?);
    }
    Ok(())
}

fn name(u: &mut Unstructured<'_>, max: usize) -> arbitrary::Result<String> {
    let s = String::arbitrary(u)?;
    Ok(s.chars().filter(|c| *c != '\0').take(max).collect())
}

fn link(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let known = [IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_OPERSTATE];
    let (ifindex, flags, change) = (u32::arbitrary(u)?, u32::arbitrary(u)?, u32::arbitrary(u)?);
    let mut p = vec![0, 0];
    p.extend_from_slice(&u16::arbitrary(u)?.to_ne_bytes());
    p.extend_from_slice(&ifindex.to_ne_bytes());
    p.extend_from_slice(&flags.to_ne_bytes());
    p.extend_from_slice(&change.to_ne_bytes());
    let ifname = Option::<()>::arbitrary(u)?
        .map(|()| name(u, 15))
        .transpose()?;
    let mac = Option::<[u8; 6]>::arbitrary(u)?;
    let mtu = Option::<u32>::arbitrary(u)?;
    let oper = Option::<u8>::arbitrary(u)?;
    noise(u, &mut p, &known)?;
    if let Some(n) = &ifname {
        let mut b = n.as_bytes().to_vec();
        b.push(0);
        put_attr(&mut p, IFLA_IFNAME, &b);
    }
    noise(u, &mut p, &known)?;
    if let Some(m) = mac {
        put_attr(&mut p, IFLA_ADDRESS, &m);
    }
    if let Some(m) = mtu {
        put_attr(&mut p, IFLA_MTU, &m.to_ne_bytes());
    }
    if let Some(o) = oper {
        put_attr(&mut p, IFLA_OPERSTATE, &[o]);
    }
    noise(u, &mut p, &known)?;
    let got = parse_link(&p).expect("a well-formed link message parses");
    assert_eq!((got.ifindex, got.flags), (ifindex, flags));
    assert_eq!(got.name, ifname.unwrap_or_default());
    assert_eq!(got.mac, mac);
    assert_eq!(got.mtu, mtu);
    let oper_debug = format!("{:?}", got.operstate);
    match oper {
        None | Some(0) => assert_eq!(oper_debug, "Unknown"),
        Some(6) => assert_eq!(oper_debug, "Up"),
        Some(o @ 7..) => assert_eq!(oper_debug, format!("Other({o})")),
        Some(_) => {}
    }
    Ok(())
}

fn address(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let known = [IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_FLAGS];
    let v6 = bool::arbitrary(u)?;
    let (prefix_len, flags8, scope, ifindex) = (
        u8::arbitrary(u)?,
        u8::arbitrary(u)?,
        u8::arbitrary(u)?,
        u32::arbitrary(u)?,
    );
    let mut p = vec![
        if v6 { AF_INET6 } else { AF_INET },
        prefix_len,
        flags8,
        scope,
    ];
    p.extend_from_slice(&ifindex.to_ne_bytes());
    let ip = |u: &mut Unstructured<'_>| -> arbitrary::Result<IpAddr> {
        Ok(if v6 {
            IpAddr::V6(Ipv6Addr::from(u128::arbitrary(u)?))
        } else {
            IpAddr::V4(Ipv4Addr::from(u32::arbitrary(u)?))
        })
    };
    let address = Option::<()>::arbitrary(u)?.map(|()| ip(u)).transpose()?;
    let local = Option::<()>::arbitrary(u)?.map(|()| ip(u)).transpose()?;
    let label = Option::<()>::arbitrary(u)?
        .map(|()| name(u, 15))
        .transpose()?;
    let flags32 = Option::<u32>::arbitrary(u)?;
    let octets = |a: IpAddr| match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    noise(u, &mut p, &known)?;
    if let Some(a) = address {
        put_attr(&mut p, IFA_ADDRESS, &octets(a));
    }
    if let Some(a) = local {
        put_attr(&mut p, IFA_LOCAL, &octets(a));
    }
    noise(u, &mut p, &known)?;
    if let Some(l) = &label {
        let mut b = l.as_bytes().to_vec();
        b.push(0);
        put_attr(&mut p, IFA_LABEL, &b);
    }
    if let Some(f) = flags32 {
        put_attr(&mut p, IFA_FLAGS, &f.to_ne_bytes());
    }
    noise(u, &mut p, &known)?;
    let got = parse_addr(&p);
    // IPv4 names the address IFA_LOCAL (IFA_ADDRESS is the peer on
    // point-to-point links); IPv6 sends IFA_ADDRESS only.
    let Some(want) = local.or(address) else {
        assert!(
            got.is_none(),
            "an address message without an address parsed"
        );
        return Ok(());
    };
    let got = got.expect("a well-formed address message parses");
    assert_eq!(got.addr, want);
    assert_eq!((got.prefix_len, got.ifindex), (prefix_len, ifindex));
    assert_eq!(got.flags, flags32.unwrap_or(u32::from(flags8)));
    assert_eq!(got.label, label);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    check_raw(data);
    let mut u = Unstructured::new(data);
    let _ = link(&mut u);
    let _ = address(&mut u);
});
