//! IPVS generic netlink replies, as `IpvsClient` reads them: any datagram is
//! split into messages and every decoder runs on every payload without
//! panicking; what decodes re-encodes (as the request that would create it)
//! and decodes back to the same value; message and attribute iterators stay
//! inside the buffer, stop after an error and always end. The same bytes
//! also build a service and a destination that must survive
//! encode-then-decode (normalised the way the kernel reports them). The
//! traffic counters decode wherever the service or destination does, and
//! requests carry none.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use lvs::wire::{
    GENL_HDRLEN, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, Request, attributes, decode_destination,
    decode_destination_counters, decode_family_id, decode_service, decode_service_counters,
    error_code, messages,
};
use lvs::{
    AddressFamily, DecodeError, Destination, ForwardMethod, Persistence, Scheduler, Service, ServiceFlags,
    ServiceKey,
};

const FAMILY_ID: u16 = 0x20;

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

/// The single message `req` encodes to.
fn encoded(req: Request<'_>) -> Vec<u8> {
    let mut buf = vec![0xa5; 3];
    req.emit(FAMILY_ID, 7, 9, &mut buf);
    assert_eq!(&buf[..3], &[0xa5; 3], "emit appends");
    let msg = buf.split_off(3);
    let len = u32::from_ne_bytes(msg[..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(len, msg.len(), "nlmsg_len is the message length");
    msg
}

fn payload_of(msg: &[u8]) -> &[u8] {
    let mut it = messages(msg);
    let one = it.next().expect("one message").expect("our message parses");
    assert!(it.next().is_none(), "exactly one message");
    one.payload
}

fn service_round_trip(s: &Service) -> Service {
    let msg = encoded(Request::AddService(s));
    assert_eq!(
        decode_service_counters(payload_of(&msg)),
        Ok(None),
        "requests carry no counters"
    );
    decode_service(payload_of(&msg)).expect("an encoded service decodes")
}

fn destination_round_trip(d: &Destination) -> Destination {
    let key = ServiceKey::fwmark(AddressFamily::of(d.addr.ip()), 1);
    let msg = encoded(Request::AddDestination(&key, d));
    assert_eq!(
        decode_destination_counters(payload_of(&msg)),
        Ok(None),
        "requests carry no counters"
    );
    let status =
        decode_destination(payload_of(&msg), key.family()).expect("an encoded destination decodes");
    assert_eq!(
        (
            status.active_connections,
            status.inactive_connections,
            status.persistent_connections
        ),
        (0, 0, 0),
        "requests carry no counters"
    );
    status.destination
}

fn check_attributes(outer: &[u8], attrs: &[u8]) {
    let mut n = 0;
    let mut it = attributes(attrs);
    while let Some(a) = it.next() {
        n += 1;
        assert!(n <= attrs.len() / 4 + 1, "attribute iterator runs away");
        match a {
            Ok((_, p)) => assert!(inside(outer, p)),
            Err(_) => {
                assert!(it.next().is_none(), "attributes go on after an error");
                break;
            }
        }
    }
}

/// The raw-bytes half: a datagram from the kernel.
fn reply(data: &[u8]) {
    let mut it = messages(data);
    let mut n = 0;
    while let Some(msg) = it.next() {
        n += 1;
        assert!(
            n <= data.len() / NLMSG_HDRLEN + 1,
            "message iterator runs away"
        );
        let msg = match msg {
            Ok(m) => m,
            Err(_) => {
                assert!(it.next().is_none(), "messages go on after an error");
                break;
            }
        };
        let p = msg.payload;
        assert!(inside(data, p));
        if matches!(msg.msg_type, NLMSG_ERROR | NLMSG_DONE) {
            let _ = error_code(p);
        }
        if let Some(attrs) = p.get(GENL_HDRLEN..) {
            check_attributes(data, attrs);
        }
        let _ = decode_family_id(p);
        // The counters sit in the nest the service or destination is read
        // from: where that decodes, the nest is found.
        let service_counters = decode_service_counters(p);
        let destination_counters = decode_destination_counters(p);
        if let Ok(s) = decode_service(p) {
            assert_ne!(
                service_counters,
                Err(DecodeError::MissingAttribute("IPVS_CMD_ATTR_SERVICE")),
                "the service decoded from a nest the counters did not find"
            );
            assert_eq!(service_round_trip(&s), s, "decoded service re-encodes");
        }
        for family in [AddressFamily::Ipv4, AddressFamily::Ipv6] {
            if let Ok(d) = decode_destination(p, family) {
                assert_ne!(
                    destination_counters,
                    Err(DecodeError::MissingAttribute("IPVS_CMD_ATTR_DEST")),
                    "the destination decoded from a nest the counters did not find"
                );
                assert_eq!(
                    destination_round_trip(&d.destination),
                    d.destination,
                    "decoded destination re-encodes"
                );
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum KeyKind {
    Tcp,
    Udp,
    Sctp,
    Fwmark(u32),
}

fn addr(u: &mut Unstructured<'_>) -> arbitrary::Result<IpAddr> {
    Ok(if bool::arbitrary(u)? {
        IpAddr::V6(Ipv6Addr::from(u128::arbitrary(u)?))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::arbitrary(u)?))
    })
}

fn service(u: &mut Unstructured<'_>) -> arbitrary::Result<Service> {
    let ip = addr(u)?;
    let key = match KeyKind::arbitrary(u)? {
        KeyKind::Tcp => ServiceKey::tcp(SocketAddr::new(ip, u16::arbitrary(u)?)),
        KeyKind::Udp => ServiceKey::udp(SocketAddr::new(ip, u16::arbitrary(u)?)),
        KeyKind::Sctp => ServiceKey::sctp(SocketAddr::new(ip, u16::arbitrary(u)?)),
        KeyKind::Fwmark(mark) => ServiceKey::fwmark(AddressFamily::of(ip), mark),
    };
    let len = u.int_in_range(1..=Scheduler::MAX_LEN)?;
    let name: String = (0..len)
        .map(|_| {
            Ok(char::from(
                *u.choose(b"abcdefghijklmnopqrstuvwxyz0123456789_")?,
            ))
        })
        .collect::<arbitrary::Result<_>>()?;
    let scheduler = Scheduler::new(name).expect("a valid name");
    let mut s =
        Service::new(key, scheduler).with_flags(ServiceFlags::from_bits(u32::arbitrary(u)?));
    if bool::arbitrary(u)? {
        let mut p = Persistence::new(Duration::new(
            u64::arbitrary(u)?,
            u32::arbitrary(u)? % 1_000_000_000,
        ));
        let max = key.family().max_prefix_len();
        p.prefix_len = Option::<u8>::arbitrary(u)?.map(|l| l % (max + 1));
        s = s.with_persistence(p);
    }
    Ok(s)
}

/// What the kernel would list for `s`: whole seconds (saturated), and no
/// prefix length when it is the whole address.
fn normalized(s: &Service) -> Service {
    let mut s = s.clone();
    if let Some(p) = &mut s.persistence {
        p.timeout = Duration::from_secs(u64::from(p.timeout_secs()));
        if p.prefix_len == Some(s.key.family().max_prefix_len()) {
            p.prefix_len = None;
        }
    }
    s
}

fn destination(u: &mut Unstructured<'_>) -> arbitrary::Result<Destination> {
    let forward = *u.choose(&[
        ForwardMethod::Masquerade,
        ForwardMethod::Route,
        ForwardMethod::Tunnel,
        ForwardMethod::Local,
    ])?;
    Ok(
        Destination::new(SocketAddr::new(addr(u)?, u16::arbitrary(u)?), forward)
            .with_weight(u32::arbitrary(u)?)
            .with_thresholds(u32::arbitrary(u)?, u32::arbitrary(u)?),
    )
}

/// The structured half: values the crate sends survive the codec.
fn values(data: &[u8]) -> arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let s = service(&mut u)?;
    assert_eq!(service_round_trip(&s), normalized(&s), "service codec");
    let d = destination(&mut u)?;
    assert_eq!(destination_round_trip(&d), d, "destination codec");
    // Every other request encodes to one well-formed message.
    let key = s.key;
    for req in [
        Request::ResolveFamily,
        Request::UpdateService(&s),
        Request::DeleteService(&key),
        Request::ListServices,
        Request::UpdateDestination(&key, &d),
        Request::DeleteDestination(&key, d.addr),
        Request::ListDestinations(&key),
        Request::Flush,
    ] {
        let msg = encoded(req);
        if let Some(attrs) = payload_of(&msg).get(GENL_HDRLEN..) {
            for a in attributes(attrs) {
                a.expect("our attributes parse");
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    reply(data);
    let _ = values(data);
});
