//! Random operation sequences on a router of instances (packets, timers,
//! tracked objects, priorities, shutdown, restart): no panic, and the
//! invariants hold after every step.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use std::time::Duration;
use vrrp_core::wire::{AdvertRepr, IpPair, MAX_PACKET_LEN};
use vrrp_core::{
    Auth, Centisecs, ChecksumMode, InstanceConfig, Output, Priority, Router, RxMeta, State, Timestamp, TrackConfig, TrackId,
    Version, VirtualAddress, Vrid,
};

#[derive(Arbitrary, Debug)]
enum Op {
    Advance(u16),
    Timeout,
    Advert { vrid: u8, prio: u8, interval: u16, from: u8, v3: bool, ttl: u8 },
    Raw { vrid: u8, bytes: Vec<u8> },
    Track { id: u8, up: bool },
    Priority { which: u8, prio: u8 },
    Shutdown,
    Startup,
}

fuzz_target!(|input: (u8, Vec<Op>)| {
    let (seed, ops) = input;
    let me: IpAddr = "192.0.2.10".parse().unwrap();
    let mut router = Router::new();
    let mut ids = Vec::new();
    for (i, version) in [Version::V2, Version::V3, Version::V3].into_iter().enumerate() {
        let mut c = InstanceConfig::new(Vrid::new(i as u8 + 1).unwrap(), version, me)
            .with_priority(Priority::new(seed.max(1)))
            .with_address(VirtualAddress::host("192.0.2.100".parse().unwrap()));
        if version == Version::V3 {
            c.advert_interval = Centisecs::new(u16::from(seed % 50) + 1);
        }
        ids.push(router.add_instance(1, c).unwrap());
    }
    let _ = router.add_sync_group(&ids[1..]);
    for (i, id) in ids.iter().enumerate() {
        let _ = router.track(Timestamp::ZERO, *id, TrackId(i as u32 % 2), TrackConfig::weight(i as i32 * 10 - 10), true);
    }
    let mut now = Timestamp::ZERO;
    router.handle_startup(now);
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    for op in ops {
        match op {
            Op::Advance(ms) => now = now + Duration::from_millis(u64::from(ms)),
            Op::Timeout => {
                if let Some(t) = router.poll_timeout() {
                    now = now.max(t);
                    router.handle_timeout(now);
                }
            }
            Op::Advert { vrid, prio, interval, from, v3, ttl } => {
                let Some(vrid) = Vrid::new(vrid % 4) else { continue };
                let src: IpAddr = format!("192.0.2.{from}").parse().unwrap();
                let dst: IpAddr = "224.0.0.18".parse().unwrap();
                let version = if v3 { Version::V3 } else { Version::V2 };
                let interval = if v3 { Centisecs::new(interval % 4096) } else { Centisecs::new((interval % 256) * 100) };
                let addrs = ["192.0.2.100".parse::<IpAddr>().unwrap()];
                let repr = AdvertRepr { version, vrid, priority: Priority::new(prio), interval, auth: Auth::None, addresses: addrs.iter().copied() };
                if let Ok(len) = repr.emit(&mut buf, &IpPair { src, dst }, ChecksumMode::Rfc) {
                    let rx = RxMeta { src, dst, ttl: Some(ttl) };
                    let _ = router.handle_packet(now, 1, &rx, &buf[..len]);
                }
            }
            Op::Raw { vrid, mut bytes } => {
                if bytes.len() > 1 {
                    bytes[1] = vrid % 4;
                }
                let rx = RxMeta { src: "192.0.2.20".parse().unwrap(), dst: "224.0.0.18".parse().unwrap(), ttl: Some(255) };
                let _ = router.handle_packet(now, 1, &rx, &bytes);
            }
            Op::Track { id, up } => router.set_track_state(now, TrackId(u32::from(id % 3)), up),
            Op::Priority { which, prio } => {
                let id = ids[usize::from(which) % ids.len()];
                let _ = router.set_base_priority(now, id, Priority::new(prio));
            }
            Op::Shutdown => router.handle_shutdown(now),
            Op::Startup => router.handle_startup(now),
        }
        while let Some((id, out)) = router.poll_output() {
            if let Output::Transmit(t) = out {
                router.encode(id, &t, &mut buf).expect("our own adverts always encode");
            }
        }
        // Invariants: a deadline never lies in the past after handling, a
        // Fault or Initialize instance runs no timer, priority stays in range.
        for (_, inst) in router.instances() {
            let p = inst.effective_priority();
            assert!(p != Priority::STOP);
            match inst.state() {
                State::Initialize | State::Fault => assert!(inst.poll_timeout().is_none(), "{:?} runs a timer", inst.state()),
                _ => {}
            }
        }
    }
});
