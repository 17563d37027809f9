//! Election scenarios on the simulated LAN: the invariants users rely on.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Duration;

use vrrp_core::sim::{LogKind, NodeId, NodeSpec, SimOp, Simulation};
use vrrp_core::{
    Centisecs, Family, InstanceConfig, Priority, Reason, State, Timestamp, TrackConfig, TrackId,
    Version, VirtualAddress, Vrid,
};

fn vrid(n: u8) -> Vrid {
    Vrid::new(n).unwrap()
}

fn vip(s: &str) -> VirtualAddress {
    VirtualAddress::host(s.parse().unwrap())
}

fn cfg(id: u8, version: Version, prio: u8, addr: &str) -> InstanceConfig {
    let any: IpAddr = if addr.contains(':') {
        "::".parse().unwrap()
    } else {
        "0.0.0.0".parse().unwrap()
    };
    InstanceConfig::new(vrid(id), version, any)
        .with_priority(Priority::new(prio))
        .with_address(vip(addr))
}

fn lan(prios: &[u8], version: Version) -> (Simulation, Vec<NodeId>) {
    lan_seeded(7, prios, version)
}

fn lan_seeded(seed: u64, prios: &[u8], version: Version) -> (Simulation, Vec<NodeId>) {
    let mut sim = Simulation::new(seed);
    let nodes = prios
        .iter()
        .enumerate()
        .map(|(i, p)| {
            sim.add_node(NodeSpec::new(format!("r{i}")).instance(cfg(
                1,
                version,
                *p,
                "192.0.2.100",
            )))
        })
        .collect();
    (sim, nodes)
}

/// When `node` last became master, per the log.
fn became_master(sim: &Simulation, node: NodeId) -> Option<Timestamp> {
    sim.log()
        .iter()
        .rev()
        .find(|e| {
            e.node == node
                && matches!(
                    e.kind,
                    LogKind::StateChanged {
                        to: State::Master,
                        ..
                    }
                )
        })
        .map(|e| e.at)
}

/// When `node` last sent an advertisement before `before`.
fn last_sent(sim: &Simulation, node: NodeId, before: Timestamp) -> Option<Timestamp> {
    sim.log()
        .iter()
        .rev()
        .find(|e| e.node == node && e.at <= before && matches!(e.kind, LogKind::Sent { .. }))
        .map(|e| e.at)
}

fn mdi(sim: &Simulation, node: NodeId) -> Duration {
    sim.router(node)
        .unwrap()
        .instances()
        .next()
        .unwrap()
        .1
        .master_down_interval()
}

#[test]
fn three_routers_elect_the_highest_priority_and_only_it_holds_the_address() {
    for version in [Version::V2, Version::V3] {
        let (mut sim, n) = lan(&[100, 200, 150], version);
        sim.run_for(Duration::from_secs(10));
        assert_eq!(sim.masters(vrid(1)), vec![n[1]]);
        assert_eq!(sim.holders("192.0.2.100".parse().unwrap()), vec![n[1]]);
        assert_eq!(sim.state(n[0], vrid(1)), Some(State::Backup));
        assert_eq!(sim.state(n[2], vrid(1)), Some(State::Backup));
    }
}

#[test]
fn equal_priorities_are_broken_by_the_higher_address() {
    let (mut sim, n) = lan(&[100, 100, 100], Version::V3);
    sim.run_for(Duration::from_secs(10));
    // Nodes get 192.0.2.1, .2, .3: the highest address wins.
    assert_eq!(sim.masters(vrid(1)), vec![n[2]]);
}

#[test]
fn best_backup_takes_over_exactly_master_down_interval_after_the_last_advert() {
    for version in [Version::V2, Version::V3] {
        let (mut sim, n) = lan(&[200, 150, 100], version);
        sim.run_for(Duration::from_secs(10));
        assert_eq!(sim.masters(vrid(1)), vec![n[0]]);
        // Crash right after an advertisement.
        let advert = sim
            .log()
            .iter()
            .rev()
            .find(|e| e.node == n[0] && matches!(e.kind, LogKind::Sent { .. }))
            .unwrap()
            .at;
        let next = advert + Duration::from_secs(1);
        sim.run_until(next);
        let died = sim.now();
        sim.crash(n[0]);
        sim.run_for(Duration::from_secs(10));
        assert_eq!(sim.masters(vrid(1)), vec![n[1]]);
        let took_over = became_master(&sim, n[1]).unwrap();
        let last = last_sent(&sim, n[0], died).unwrap();
        let latency = Duration::from_micros(100);
        let mdi = mdi(&sim, n[1]);
        // The RFC timer runs from the last advertisement received.
        assert_eq!(took_over - last, mdi + latency);
        assert!(
            took_over - died >= mdi - Duration::from_millis(1),
            "no earlier than Master_Down_Interval"
        );
        assert!(
            took_over - died <= mdi + Duration::from_secs(1),
            "no later than it plus one interval"
        );
        assert_eq!(sim.state(n[2], vrid(1)), Some(State::Backup));
    }
}

#[test]
fn fast_intervals_fail_over_in_tens_of_milliseconds() {
    let mut sim = Simulation::new(3);
    let mk = |p| cfg(1, Version::V3, p, "192.0.2.100").with_interval(Centisecs::new(1));
    let a = sim.add_node(NodeSpec::new("a").instance(mk(200)));
    let b = sim.add_node(NodeSpec::new("b").instance(mk(100)));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    let died = sim.now();
    sim.crash(a);
    sim.run_for(Duration::from_millis(100));
    let took = became_master(&sim, b).unwrap() - died;
    assert!(took <= Duration::from_micros(36_094 + 100), "took {took:?}");
}

#[test]
fn graceful_shutdown_hands_over_within_skew_time() {
    let (mut sim, n) = lan(&[200, 100], Version::V3);
    sim.run_for(Duration::from_millis(10_500));
    let stopped = sim.now();
    sim.shutdown(n[0]);
    sim.run_for(Duration::from_secs(5));
    let took = became_master(&sim, n[1]).unwrap() - stopped;
    let skew = sim
        .router(n[1])
        .unwrap()
        .instances()
        .next()
        .unwrap()
        .1
        .skew_time();
    assert_eq!(took, skew + Duration::from_micros(100));
    assert!(sim.holders("192.0.2.100".parse().unwrap()) == vec![n[1]]);
}

#[test]
fn preemption_returns_mastership_to_the_higher_priority_router() {
    let (mut sim, n) = lan(&[200, 100], Version::V3);
    sim.run_for(Duration::from_secs(10));
    sim.crash(n[0]);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![n[1]]);
    let back = sim.now();
    sim.restart(n[0]);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![n[0]]);
    let took = became_master(&sim, n[0]).unwrap() - back;
    assert!(
        took <= mdi(&sim, n[0]) + Duration::from_millis(1),
        "preempts after one Master_Down_Interval: {took:?}"
    );
}

#[test]
fn nopreempt_keeps_the_current_master() {
    let mut sim = Simulation::new(1);
    let mut high = cfg(1, Version::V3, 200, "192.0.2.100");
    high.preempt = false;
    let mut low = cfg(1, Version::V3, 100, "192.0.2.100");
    low.preempt = false;
    let a = sim.add_node(NodeSpec::new("a").instance(high));
    let b = sim.add_node(NodeSpec::new("b").instance(low));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    sim.crash(a);
    sim.run_for(Duration::from_secs(10));
    sim.restart(a);
    sim.run_for(Duration::from_secs(60));
    assert_eq!(
        sim.masters(vrid(1)),
        vec![b],
        "the recovered higher priority router stays backup"
    );
}

#[test]
fn preempt_delay_delays_preemption_by_that_long() {
    let mut sim = Simulation::new(1);
    let mut high = cfg(1, Version::V3, 200, "192.0.2.100");
    high.preempt_delay = Duration::from_secs(30);
    let a = sim.add_node(NodeSpec::new("a").instance(high));
    let b = sim.add_node(NodeSpec::new("b").instance(cfg(1, Version::V3, 100, "192.0.2.100")));
    sim.run_for(Duration::from_secs(10));
    sim.crash(a);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![b]);
    let back = sim.now();
    sim.restart(a);
    sim.run_for(Duration::from_secs(29));
    assert_eq!(
        sim.masters(vrid(1)),
        vec![b],
        "no preemption during the delay"
    );
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    let took = became_master(&sim, a).unwrap() - back;
    let mdi = mdi(&sim, a);
    assert!(took >= Duration::from_secs(30), "{took:?}");
    assert!(
        took <= Duration::from_secs(30) + mdi + Duration::from_secs(1),
        "{took:?}"
    );
}

#[test]
fn partition_makes_two_masters_and_healing_leaves_one_within_master_down_interval() {
    let (mut sim, n) = lan(&[200, 100, 50], Version::V3);
    sim.run_for(Duration::from_secs(10));
    sim.partition(&[&[n[0]], &[n[1], n[2]]]);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![n[0], n[1]]);
    let healed = sim.now();
    sim.heal();
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![n[0]]);
    let stepped_down = sim
        .log()
        .iter()
        .find(|e| {
            e.at >= healed
                && e.node == n[1]
                && matches!(
                    e.kind,
                    LogKind::StateChanged {
                        to: State::Backup,
                        ..
                    }
                )
        })
        .unwrap()
        .at;
    assert!(stepped_down - healed <= mdi(&sim, n[1]));
}

#[test]
fn negative_weight_moves_mastership_and_recovery_takes_it_back() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(
        NodeSpec::new("a")
            .instance(cfg(1, Version::V3, 150, "192.0.2.100"))
            .track(0, TrackId(1), TrackConfig::weight(-60), true),
    );
    let b = sim.add_node(NodeSpec::new("b").instance(cfg(1, Version::V3, 100, "192.0.2.100")));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    sim.schedule(
        sim.now() + Duration::from_secs(1),
        SimOp::SetTrack(a, TrackId(1), false),
    );
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![b]);
    sim.set_track(a, TrackId(1), true);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
}

#[test]
fn weight_zero_failure_faults_and_the_backup_takes_over_within_skew_time() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(
        NodeSpec::new("a")
            .instance(cfg(1, Version::V3, 150, "192.0.2.100"))
            .track(0, TrackId(1), TrackConfig::weight(0), true),
    );
    let b = sim.add_node(NodeSpec::new("b").instance(cfg(1, Version::V3, 100, "192.0.2.100")));
    sim.run_for(Duration::from_millis(10_300));
    let failed = sim.now();
    sim.set_track(a, TrackId(1), false);
    assert_eq!(sim.state(a, vrid(1)), Some(State::Fault));
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.masters(vrid(1)), vec![b]);
    assert!(
        became_master(&sim, b).unwrap() - failed <= Duration::from_secs(1),
        "priority 0 on the way into Fault"
    );
    assert!(sim.holders("192.0.2.100".parse().unwrap()) == vec![b]);
}

#[test]
fn sync_group_follows_a_failed_member() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(
        NodeSpec::new("a")
            .instance(cfg(1, Version::V3, 150, "192.0.2.100"))
            .instance(cfg(2, Version::V3, 150, "192.0.2.200"))
            .sync_group(&[0, 1])
            .track(1, TrackId(5), TrackConfig::weight(0), true),
    );
    let b = sim.add_node(
        NodeSpec::new("b")
            .instance(cfg(1, Version::V3, 100, "192.0.2.100"))
            .instance(cfg(2, Version::V3, 100, "192.0.2.200"))
            .sync_group(&[0, 1]),
    );
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        (sim.masters(vrid(1)), sim.masters(vrid(2))),
        (vec![a], vec![a])
    );
    sim.set_track(a, TrackId(5), false);
    // Instance 1 has nothing wrong of its own but follows its group.
    assert_eq!(sim.state(a, vrid(1)), Some(State::Fault));
    assert_eq!(sim.state(a, vrid(2)), Some(State::Fault));
    sim.run_for(Duration::from_secs(5));
    assert_eq!(
        (sim.masters(vrid(1)), sim.masters(vrid(2))),
        (vec![b], vec![b])
    );
    let reason = sim.log().iter().find_map(|e| match e.kind {
        LogKind::StateChanged {
            vrid: v,
            to: State::Fault,
            reason,
            ..
        } if e.node == a && v == vrid(1) => Some(reason),
        _ => None,
    });
    assert_eq!(reason, Some(Reason::SyncGroup));
    sim.set_track(a, TrackId(5), true);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        (sim.masters(vrid(1)), sim.masters(vrid(2))),
        (vec![a], vec![a]),
        "back together, preempting"
    );
}

#[test]
fn sync_group_moves_together_when_one_member_is_preempted() {
    let mut sim = Simulation::new(1);
    // b is better for VRID 2 only; the group on a must follow its member.
    let a = sim.add_node(
        NodeSpec::new("a")
            .instance(cfg(1, Version::V3, 150, "192.0.2.100"))
            .instance(cfg(2, Version::V3, 150, "192.0.2.200"))
            .sync_group(&[0, 1]),
    );
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(2)), vec![a]);
    let b = sim.add_node(NodeSpec::new("b").instance(cfg(2, Version::V3, 200, "192.0.2.200")));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(2)), vec![b]);
    assert_eq!(
        sim.state(a, vrid(1)),
        Some(State::Backup),
        "the other member left Master with its group"
    );
}

#[test]
fn ipv6_v3_elects_and_fails_over() {
    let mut sim = Simulation::new(1);
    let mk = |p| cfg(9, Version::V3, p, "2001:db8::100");
    let a = sim.add_node(NodeSpec::new("a").instance(mk(200)));
    let b = sim.add_node(NodeSpec::new("b").instance(mk(100)));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(9)), vec![a]);
    assert_eq!(
        sim.address(a, Family::Ipv6),
        Some("fe80::1".parse().unwrap())
    );
    sim.crash(a);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.masters(vrid(9)), vec![b]);
    assert_eq!(sim.holders("2001:db8::100".parse().unwrap()), vec![b]);
}

#[test]
fn unicast_peers_elect_without_multicast() {
    let mut sim = Simulation::new(1);
    let mut a = cfg(1, Version::V3, 200, "192.0.2.100");
    a.unicast_peers = vec!["192.0.2.2".parse().unwrap()];
    let mut b = cfg(1, Version::V3, 100, "192.0.2.100");
    b.unicast_peers = vec!["192.0.2.1".parse().unwrap()];
    let na = sim.add_node(NodeSpec::new("a").instance(a));
    let nb = sim.add_node(NodeSpec::new("b").instance(b));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![na]);
    sim.crash(na);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.masters(vrid(1)), vec![nb]);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed| {
        let (mut sim, n) = lan_seeded(seed, &[200, 150, 100], Version::V3);
        sim.set_loss(0.3);
        sim.crash(n[0]);
        sim.run_for(Duration::from_secs(30));
        sim.log().to_vec()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2), "and the seed matters");
}

#[test]
fn heavy_loss_still_converges_once_loss_stops() {
    let (mut sim, n) = lan(&[200, 150, 100], Version::V3);
    sim.set_loss(0.5);
    sim.run_for(Duration::from_secs(60));
    sim.set_loss(0.0);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![n[0]]);
    let lost = sim
        .log()
        .iter()
        .filter(|e| matches!(e.kind, LogKind::Lost { .. }))
        .count();
    assert!(lost > 10, "loss was applied ({lost} lost)");
}
