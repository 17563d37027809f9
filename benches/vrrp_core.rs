//! Decode, encode and one instance handling an advertisement.
//!
//! Target (issue 2): decode + handle of one advertisement under 200 ns.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use vrrp_core::wire::{AdvertRepr, IpPair, MULTICAST_V4, Packet};
use vrrp_core::{
    ChecksumMode, Family, InstanceConfig, Output, Priority, Router, RxMeta, Timestamp, Transmit,
    Version, VirtualAddress, Vrid,
};

fn config(prio: u8, me: &str) -> InstanceConfig {
    InstanceConfig::new(Vrid::new(42).unwrap(), Version::V3, me.parse().unwrap())
        .with_priority(Priority::new(prio))
        .with_address(VirtualAddress::host("192.0.2.100".parse().unwrap()))
        .with_address(VirtualAddress::host("192.0.2.101".parse().unwrap()))
}

/// An advertisement from a priority-200 master at 192.0.2.20.
fn advert() -> (RxMeta, Vec<u8>) {
    let mut master = Router::new();
    let id = master.add_instance(1, config(255, "192.0.2.20")).unwrap();
    master.handle_startup(Timestamp::ZERO);
    let tx: Transmit = std::iter::from_fn(|| master.poll_output())
        .find_map(|(_, o)| {
            if let Output::Transmit(t) = o {
                Some(t)
            } else {
                None
            }
        })
        .unwrap();
    let mut buf = vec![0u8; 64];
    let len = master.encode(id, &tx, &mut buf).unwrap();
    buf.truncate(len);
    let rx = RxMeta {
        src: "192.0.2.20".parse().unwrap(),
        dst: IpAddr::V4(MULTICAST_V4),
        ttl: Some(255),
    };
    (rx, buf)
}

fn benches(c: &mut Criterion) {
    let (rx, bytes) = advert();
    let ip = IpPair {
        src: rx.src,
        dst: rx.dst,
    };

    c.bench_function("decode (checked view + checksum + repr)", |b| {
        b.iter(|| {
            let p = Packet::new_checked(black_box(&bytes[..]), Family::Ipv4).unwrap();
            let r = AdvertRepr::parse(&p, &ip, ChecksumMode::Rfc).unwrap();
            black_box(r.priority)
        })
    });

    let mut router = Router::new();
    let id = router.add_instance(1, config(100, "192.0.2.10")).unwrap();
    router.handle_startup(Timestamp::ZERO);
    while router.poll_output().is_some() {}
    let instance = router.instance(id).unwrap().clone();
    let tx = Transmit {
        destination: IpAddr::V4(MULTICAST_V4),
        priority: Priority::new(100),
    };
    let mut out = [0u8; 64];
    c.bench_function("encode", |b| {
        b.iter(|| black_box(instance.encode(black_box(&tx), &mut out).unwrap()))
    });

    let mut now = Timestamp::from_secs(1);
    c.bench_function(
        "decode + handle one advertisement (backup, router of 1)",
        |b| {
            b.iter(|| {
                now = now + std::time::Duration::from_micros(1);
                black_box(
                    router
                        .handle_packet(now, 1, black_box(&rx), black_box(&bytes))
                        .unwrap(),
                );
            })
        },
    );

    // 255 instances on one interface: the demultiplexing and timer queue
    // cost at the scale keepalived users run.
    let mut big = Router::new();
    for v in 1..=255u8 {
        let mut c = config(100, "192.0.2.10");
        c.vrid = Vrid::new(v).unwrap();
        big.add_instance(1, c).unwrap();
    }
    big.handle_startup(Timestamp::ZERO);
    while big.poll_output().is_some() {}
    c.bench_function(
        "decode + handle one advertisement (backup, router of 255)",
        |b| {
            b.iter(|| {
                now = now + std::time::Duration::from_micros(1);
                black_box(
                    big.handle_packet(now, 1, black_box(&rx), black_box(&bytes))
                        .unwrap(),
                );
            })
        },
    );
}

criterion_group!(core, benches);
criterion_main!(core);
