//! Sync groups in the Router stay live when they change: removing a member
//! lets the others act (a member waiting for it takes over, a fault it
//! caused clears), and a shutdown and restart keeps every member waiting
//! for its group. Deterministic: hand-made advertisements, simulated time.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use vrrp_core::wire::{AdvertRepr, IpPair, MULTICAST_V4};
use vrrp_core::{
    Auth, Centisecs, ChecksumMode, InstanceConfig, InstanceId, Output, Priority, Reason, Router,
    RxMeta, State, Timestamp, TrackConfig, TrackId, Version, VirtualAddress, Vrid,
};

const ME: [u8; 4] = [192, 0, 2, 10];
const PEER: [u8; 4] = [192, 0, 2, 20];

fn ms(n: u64) -> Timestamp {
    Timestamp::from_millis(n)
}

/// A router with instances A (VRID 1) and B (VRID 2) in one sync group,
/// VRRPv3, priority 100, adverts every second, started at 0.
fn group() -> (Router, InstanceId, InstanceId) {
    let mut router = Router::new();
    let mut add = |vrid: u8| {
        let c = InstanceConfig::new(Vrid::new(vrid).unwrap(), Version::V3, IpAddr::from(ME))
            .with_priority(Priority::new(100))
            .with_address(VirtualAddress::host(IpAddr::from([192, 0, 2, 100 + vrid])));
        router.add_instance(1, c).unwrap()
    };
    let (a, b) = (add(1), add(2));
    router.add_sync_group(&[a, b]).unwrap();
    router.handle_startup(Timestamp::ZERO);
    drain(&mut router);
    (router, a, b)
}

fn drain(router: &mut Router) -> Vec<(InstanceId, Output)> {
    std::iter::from_fn(|| router.poll_output()).collect()
}

/// The state changes of `id` in `outs`.
fn changes(outs: &[(InstanceId, Output)], id: InstanceId) -> Vec<(State, State, Reason)> {
    outs.iter()
        .filter_map(|(i, o)| match o {
            Output::StateChanged { from, to, reason } if *i == id => Some((*from, *to, *reason)),
            _ => None,
        })
        .collect()
}

/// Instance A hears a master at priority 200 at `now`.
fn master_heard_by_a(router: &mut Router, now: Timestamp) {
    let (src, dst) = (IpAddr::from(PEER), IpAddr::V4(MULTICAST_V4));
    let addresses = [IpAddr::from([192, 0, 2, 101])];
    let repr = AdvertRepr {
        version: Version::V3,
        vrid: Vrid::new(1).unwrap(),
        priority: Priority::new(200),
        interval: Centisecs::new(100),
        auth: Auth::None,
        addresses: addresses.iter().copied(),
    };
    let mut buf = [0u8; 64];
    let len = repr
        .emit(&mut buf, &IpPair { src, dst }, ChecksumMode::Rfc)
        .unwrap();
    let rx = RxMeta {
        src,
        dst,
        ttl: Some(255),
    };
    router.handle_packet(now, 1, &rx, &buf[..len]).unwrap();
}

/// Runs 0..until_ms: A hears a master every second, B hears nobody, so
/// B's Master_Down_Timer fires (3.61 s) and B waits for A. Returns every
/// output.
fn b_waits_for_a(router: &mut Router, from_ms: u64, until_ms: u64) -> Vec<(InstanceId, Output)> {
    let mut outs = Vec::new();
    let mut t = from_ms;
    while t < until_ms {
        master_heard_by_a(router, ms(t));
        outs.extend(drain(router));
        let next = ms(t + 1000);
        while let Some(due) = router.poll_timeout().filter(|d| *d < next) {
            router.handle_timeout(due);
            outs.extend(drain(router));
        }
        t += 1000;
    }
    outs
}

#[test]
fn removing_a_member_lets_the_one_waiting_for_it_take_over() {
    let (mut router, a, b) = group();
    let outs = b_waits_for_a(&mut router, 0, 5000);
    assert!(changes(&outs, b).is_empty(), "B waits for A: {outs:?}");
    let inst = router.instance(b).unwrap();
    assert_eq!(inst.state(), State::Backup);
    assert_eq!(inst.poll_timeout(), None, "B's Master_Down_Timer has fired");

    router.remove_instance(ms(5000), a).unwrap();
    let outs = drain(&mut router);
    assert_eq!(
        changes(&outs, b),
        [(State::Backup, State::Master, Reason::SyncGroup)],
        "B no longer waits for anyone: {outs:?}"
    );
    assert!(router.instance(b).unwrap().poll_timeout().is_some());
}

#[test]
fn removing_a_faulted_member_clears_the_fault_it_caused() {
    let (mut router, a, b) = group();
    router
        .track(ms(0), a, TrackId(7), TrackConfig::weight(0), true)
        .unwrap();
    router.set_track_state(ms(100), TrackId(7), false);
    drain(&mut router);
    assert_eq!(router.instance(a).unwrap().state(), State::Fault);
    assert_eq!(router.instance(b).unwrap().state(), State::Fault);

    router.remove_instance(ms(200), a).unwrap();
    let outs = drain(&mut router);
    assert_eq!(
        changes(&outs, b),
        [(State::Fault, State::Backup, Reason::FaultCleared)],
        "{outs:?}"
    );
    assert!(router.instance(b).unwrap().poll_timeout().is_some());
}

#[test]
fn a_restarted_group_still_waits_for_every_member() {
    let (mut router, _a, b) = group();
    router.handle_shutdown(ms(500));
    router.handle_startup(ms(1000));
    drain(&mut router);
    // Same story as before the restart: B's timer fires at 4.61 s while A
    // hears a master; B must wait, not take over alone.
    let outs = b_waits_for_a(&mut router, 1000, 6000);
    assert!(changes(&outs, b).is_empty(), "B waits for A: {outs:?}");
    assert_eq!(router.instance(b).unwrap().state(), State::Backup);
}
