//! ICMP echo reply matching (RFC 792, RFC 4443) and UDP reply matching.
//! Any packet: the ICMP classifier agrees with a model written from the
//! RFCs (raw IPv4 sockets see the IP header, ping sockets and ICMPv6 do
//! not; a reply must come from the target with our identifier (raw sockets
//! only), sequence and payload; an error must quote our request); packets
//! built to match, or to differ in one field, are classified as built. A
//! UDP reply is up exactly when it starts with the expected bytes.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use healthcheck::UdpCheck;
use healthcheck::fuzzing::{IcmpVerdict, icmp_classify, udp_reply};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, Clone)]
struct Probe {
    v4: bool,
    raw_socket: bool,
    ident: u16,
    sequence: u16,
    payload: Vec<u8>,
    from_target: bool,
}

/// The IPv4 payload of an ICMP packet (protocol 1), per RFC 791.
fn ipv4_icmp_payload(p: &[u8]) -> Option<&[u8]> {
    let first = *p.first()?;
    let ihl = usize::from(first & 0xf) * 4;
    (first >> 4 == 4 && ihl >= 20 && *p.get(9)? == 1).then_some(())?;
    p.get(ihl..)
}

fn model(pr: &Probe, packet: &[u8]) -> IcmpVerdict {
    let icmp = if pr.v4 && pr.raw_socket {
        match ipv4_icmp_payload(packet) {
            Some(i) => i,
            None => return IcmpVerdict::Unrelated,
        }
    } else {
        packet
    };
    let (echo_request, echo_reply) = if pr.v4 { (8, 0) } else { (128, 129) };
    let Some(&[ty, code]) = icmp.first_chunk::<2>() else {
        return IcmpVerdict::Unrelated;
    };
    let ours = |m: &[u8]| -> bool {
        m.len() >= 8
            && u16::from_be_bytes([m[4], m[5]]) == pr.ident
            && u16::from_be_bytes([m[6], m[7]]) == pr.sequence
    };
    if ty == echo_reply {
        let matches = pr.from_target
            && icmp.len() >= 8
            && (!pr.raw_socket || ours(icmp))
            && u16::from_be_bytes([icmp[6], icmp[7]]) == pr.sequence
            && icmp[8..] == pr.payload[..];
        return if matches {
            IcmpVerdict::Reply
        } else {
            IcmpVerdict::Unrelated
        };
    }
    // Destination unreachable / time exceeded (v4 3, 11; v6 1, 2 too big, 3).
    let error = if pr.v4 {
        ty == 3 || ty == 11
    } else {
        (1..=3).contains(&ty)
    };
    let quoted = icmp.get(8..).unwrap_or_default();
    let inner = if pr.v4 {
        ipv4_icmp_payload(quoted)
    } else if quoted.get(6) == Some(&58) {
        quoted.get(40..)
    } else {
        None
    };
    if error && inner.is_some_and(|m| m.first() == Some(&echo_request) && ours(m)) {
        IcmpVerdict::Error {
            icmp_type: ty,
            code,
        }
    } else {
        IcmpVerdict::Unrelated
    }
}

fn classify(pr: &Probe, packet: &[u8]) -> IcmpVerdict {
    icmp_classify(
        pr.v4,
        pr.raw_socket,
        pr.ident,
        pr.sequence,
        &pr.payload,
        packet,
        pr.from_target,
    )
}

fn ipv4_header(u: &mut Unstructured<'_>, protocol: u8) -> arbitrary::Result<Vec<u8>> {
    let ihl = u.int_in_range(5..=15u8)?;
    let mut h = vec![0x40 | ihl, 0, 0, 0, 0, 0, 0, 0, 64, protocol];
    h.resize(usize::from(ihl) * 4, 0);
    u.fill_buffer(&mut h[10..])?;
    Ok(h)
}

fn echo(ty: u8, ident: u16, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&sequence.to_be_bytes());
    m.extend_from_slice(payload);
    m
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    None,
    Ident,
    Sequence,
    PayloadByte(u8),
    Type(u8),
}

fn structured(data: &[u8]) -> arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let mut pr = Probe::arbitrary(&mut u)?;
    pr.payload.truncate(64);
    let mutation = Mutation::arbitrary(&mut u)?;
    let as_error = bool::arbitrary(&mut u)?;
    let (echo_request, echo_reply) = if pr.v4 { (8, 0) } else { (128, 129) };
    let (mut ident, mut sequence, mut payload) = (pr.ident, pr.sequence, pr.payload.clone());
    match mutation {
        Mutation::None | Mutation::Type(_) => {}
        Mutation::Ident => ident ^= 1,
        Mutation::Sequence => sequence ^= 1,
        Mutation::PayloadByte(i) => match payload.get_mut(usize::from(i) % pr.payload.len().max(1))
        {
            Some(b) => *b ^= 0x80,
            None => payload.push(0),
        },
    }
    let mut icmp = if as_error {
        let ty = if pr.v4 {
            *u.choose(&[3u8, 11])?
        } else {
            *u.choose(&[1u8, 2, 3])?
        };
        let mut m = vec![ty, u8::arbitrary(&mut u)?, 0, 0, 0, 0, 0, 0];
        if pr.v4 {
            m.extend(ipv4_header(&mut u, 1)?);
        } else {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, 58, 64];
            h.resize(40, 0);
            m.extend(h);
        }
        m.extend(echo(echo_request, ident, sequence, &payload));
        m
    } else {
        echo(echo_reply, ident, sequence, &payload)
    };
    if let Mutation::Type(t) = mutation {
        // A reply turned into an error type could quote anything: the raw
        // half compares such packets with the model.
        let errors: &[u8] = if pr.v4 { &[3, 11] } else { &[1, 2, 3] };
        if !as_error && errors.contains(&t) {
            return Ok(());
        }
        icmp[0] = t;
    }
    let packet = if pr.v4 && pr.raw_socket {
        let mut p = ipv4_header(&mut u, 1)?;
        p.extend(&icmp);
        p
    } else {
        icmp.clone()
    };
    let got = classify(&pr, &packet);
    // An error quotes only the start of the request: its payload does not count.
    let ident_counts = pr.raw_socket || as_error;
    let differs = match mutation {
        Mutation::None => false,
        Mutation::Ident => ident_counts,
        Mutation::Sequence => true,
        Mutation::PayloadByte(_) => !as_error,
        Mutation::Type(t) => {
            let errors: &[u8] = if pr.v4 { &[3, 11] } else { &[1, 2, 3] };
            if as_error {
                !errors.contains(&t)
            } else {
                t != echo_reply
            }
        }
    };
    let want = if differs || (!as_error && !pr.from_target) {
        IcmpVerdict::Unrelated
    } else if as_error {
        IcmpVerdict::Error {
            icmp_type: icmp[0],
            code: icmp[1],
        }
    } else {
        IcmpVerdict::Reply
    };
    assert_eq!(got, want, "{pr:?} {mutation:?} error={as_error}");
    Ok(())
}

fn udp(data: &[u8]) -> arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let mut check = UdpCheck::new("192.0.2.1:53".parse().expect("address"));
    check.require_reply = true;
    check.expected_prefix = u.arbitrary()?;
    let reply: &[u8] = u.arbitrary()?;
    let want = check
        .expected_prefix
        .as_ref()
        .is_none_or(|p| reply.starts_with(p));
    assert_eq!(udp_reply(&check, reply).is_ok(), want);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    // Raw: the probe settings from the first bytes, the packet after them.
    let mut u = Unstructured::new(data);
    if let Ok(mut pr) = Probe::arbitrary(&mut u) {
        pr.payload.truncate(64);
        let packet = u.take_rest();
        assert_eq!(classify(&pr, packet), model(&pr, packet), "{pr:?}");
    }
    let _ = structured(data);
    let _ = udp(data);
});
