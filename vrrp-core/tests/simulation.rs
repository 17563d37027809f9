//! Election scenarios on the simulated LAN (the invariants users rely on),
//! and every capability of the simulator itself: partitions and cuts,
//! per-link loss, jitter, reordering and duplication, chosen addresses,
//! dual-stack instances sharing a VRID, crafted packets, the log.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use vrrp_core::sim::{
    Crafted, InstanceKey, LinkProfile, LogKind, NodeId, NodeSpec, SimOp, Simulation,
};
use vrrp_core::{
    Centisecs, DropReason, Family, InstanceConfig, Priority, Reason, State, Timestamp, TrackConfig,
    TrackId, Version, VirtualAddress, Vrid,
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

fn v3(prio: u8) -> InstanceConfig {
    cfg(1, Version::V3, prio, "192.0.2.100")
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

fn became_master(sim: &Simulation, node: NodeId) -> Option<Timestamp> {
    sim.log().became_master(node, vrid(1))
}

/// When `node` last sent an advertisement for VRID 1 before `before`.
fn last_sent(sim: &Simulation, node: NodeId, before: Timestamp) -> Option<Timestamp> {
    sim.log()
        .sent(node, vrid(1))
        .map(|s| s.0)
        .filter(|t| *t <= before)
        .last()
}

fn mdi(sim: &Simulation, node: NodeId) -> Duration {
    sim.master_down_interval(node, vrid(1)).unwrap()
}

// --- elections ---

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
fn the_tie_break_follows_the_address_not_the_order_of_addition() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let mut sim = Simulation::new(1);
        let (config, key) = match family {
            Family::Ipv4 => (v3(100), InstanceKey::ipv4(vrid(1))),
            _ => (
                cfg(1, Version::V3, 100, "2001:db8::100"),
                InstanceKey::ipv6(vrid(1)),
            ),
        };
        // Added first, but with the highest address.
        let high = sim.add_node(
            NodeSpec::new("high")
                .ipv4("192.0.2.30".parse().unwrap())
                .ipv6("fe80::30".parse().unwrap())
                .instance(config.clone()),
        );
        let low = sim.add_node(
            NodeSpec::new("low")
                .ipv4("192.0.2.10".parse().unwrap())
                .ipv6("fe80::10".parse().unwrap())
                .instance(config.clone()),
        );
        let mid = sim.add_node(
            NodeSpec::new("mid")
                .ipv4("192.0.2.20".parse().unwrap())
                .ipv6("fe80::20".parse().unwrap())
                .instance(config),
        );
        sim.run_for(Duration::from_secs(10));
        assert_eq!(sim.masters(key), vec![high], "{family}");
        assert_eq!(
            sim.address(low, Family::Ipv4),
            Some("192.0.2.10".parse().unwrap())
        );
        // The losers name the winner's chosen address.
        let stepped_down = sim
            .log()
            .transitions(mid, key)
            .find(|t| t.2 == State::Backup && t.1 == State::Master)
            .map(|t| t.3);
        assert_eq!(
            stepped_down,
            Some(Reason::Preempted {
                by: sim.address(high, family).unwrap(),
                priority: Priority::new(100)
            }),
            "{family}"
        );
    }
}

#[test]
#[should_panic(expected = "is already node a's")]
fn two_nodes_cannot_share_an_address() {
    let mut sim = Simulation::new(1);
    sim.add_node(NodeSpec::new("a").ipv4("192.0.2.2".parse().unwrap()));
    // The second node's default address is 192.0.2.2.
    sim.add_node(NodeSpec::new("b"));
}

#[test]
fn best_backup_takes_over_exactly_master_down_interval_after_the_last_advert() {
    for version in [Version::V2, Version::V3] {
        let (mut sim, n) = lan(&[200, 150, 100], version);
        sim.run_for(Duration::from_secs(10));
        assert_eq!(sim.masters(vrid(1)), vec![n[0]]);
        // Crash right after an advertisement.
        let advert = sim.log().sent(n[0], vrid(1)).last().unwrap().0;
        sim.run_until(advert + Duration::from_secs(1));
        let died = sim.now();
        sim.crash(n[0]);
        sim.run_for(Duration::from_secs(10));
        assert_eq!(sim.masters(vrid(1)), vec![n[1]]);
        let took_over = became_master(&sim, n[1]).unwrap();
        let last = last_sent(&sim, n[0], died).unwrap();
        let mdi = mdi(&sim, n[1]);
        // The RFC timer runs from the last advertisement received, which
        // the log records with its own time.
        let (heard, from, _, sent_at) = sim.log().received(n[1], vrid(1)).last().unwrap();
        assert_eq!((from, sent_at), (n[0], last));
        assert_eq!(heard - last, sim.link(n[0], n[1]).latency);
        assert_eq!(took_over, heard + mdi);
        assert!(took_over - died <= mdi + Duration::from_secs(1));
        assert_eq!(sim.state(n[2], vrid(1)), Some(State::Backup));
    }
}

#[test]
fn fast_intervals_fail_over_in_tens_of_milliseconds() {
    let mut sim = Simulation::new(3);
    let mk = |p| v3(p).with_interval(Centisecs::new(1));
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
    let skew = sim.skew_time(n[1], vrid(1)).unwrap();
    assert_eq!(took, skew + Duration::from_micros(100));
    assert_eq!(sim.holders("192.0.2.100".parse().unwrap()), vec![n[1]]);
    assert!(!sim.is_up(n[0]));
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
    let mut high = v3(200);
    high.preempt = false;
    let mut low = v3(100);
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
    let mut high = v3(200);
    high.preempt_delay = Duration::from_secs(30);
    let a = sim.add_node(NodeSpec::new("a").instance(high));
    let b = sim.add_node(NodeSpec::new("b").instance(v3(100)));
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
fn negative_weight_moves_mastership_and_recovery_takes_it_back() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(NodeSpec::new("a").instance(v3(150)).track(
        vrid(1),
        TrackId(1),
        TrackConfig::weight(-60),
        true,
    ));
    let b = sim.add_node(NodeSpec::new("b").instance(v3(100)));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    sim.schedule(
        sim.now() + Duration::from_secs(1),
        SimOp::SetTrack(a, TrackId(1), false),
    );
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![b]);
    assert_eq!(sim.effective_priority(a, vrid(1)), Some(Priority::new(90)));
    sim.set_track(a, TrackId(1), true);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    assert_eq!(sim.effective_priority(a, vrid(1)), Some(Priority::new(150)));
}

#[test]
fn weight_zero_failure_faults_and_the_backup_takes_over_within_skew_time() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(NodeSpec::new("a").instance(v3(150)).track(
        vrid(1),
        TrackId(1),
        TrackConfig::weight(0),
        true,
    ));
    let b = sim.add_node(NodeSpec::new("b").instance(v3(100)));
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
    assert_eq!(sim.holders("192.0.2.100".parse().unwrap()), vec![b]);
}

fn two_member_node(name: &str, prio: u8) -> NodeSpec {
    NodeSpec::new(name)
        .instance(cfg(1, Version::V3, prio, "192.0.2.100"))
        .instance(cfg(2, Version::V3, prio, "192.0.2.200"))
        .sync_group([vrid(1), vrid(2)])
}

#[test]
fn sync_group_follows_a_failed_member() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(two_member_node("a", 150).track(
        vrid(2),
        TrackId(5),
        TrackConfig::weight(0),
        true,
    ));
    let b = sim.add_node(two_member_node("b", 100));
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
    let reason = sim
        .log()
        .transitions(a, vrid(1))
        .find(|t| t.2 == State::Fault)
        .map(|t| t.3);
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
fn a_weight_on_every_member_moves_the_whole_group() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(two_member_node("a", 150).track_all(
        TrackId(9),
        TrackConfig::weight(-100),
        true,
    ));
    let b = sim.add_node(two_member_node("b", 100));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    sim.set_track(a, TrackId(9), false);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.effective_priority(a, vrid(1)), Some(Priority::new(50)));
    assert_eq!(sim.effective_priority(a, vrid(2)), Some(Priority::new(50)));
    assert_eq!(
        (sim.masters(vrid(1)), sim.masters(vrid(2))),
        (vec![b], vec![b])
    );
}

#[test]
fn sync_group_moves_together_when_one_member_is_preempted() {
    let mut sim = Simulation::new(1);
    // b is better for VRID 2 only; the group on a must follow its member.
    let a = sim.add_node(two_member_node("a", 150));
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
    let key = InstanceKey::ipv6(vrid(9));
    let a = sim.add_node(NodeSpec::new("a").instance(mk(200)));
    let b = sim.add_node(NodeSpec::new("b").instance(mk(100)));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(key), vec![a]);
    assert_eq!(
        sim.address(a, Family::Ipv6),
        Some("fe80::1".parse().unwrap())
    );
    assert_eq!(sim.masters(vrid(9)), vec![], "no IPv4 instance");
    sim.crash(a);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.masters(key), vec![b]);
    assert_eq!(sim.holders("2001:db8::100".parse().unwrap()), vec![b]);
}

#[test]
fn ipv4_and_ipv6_instances_sharing_a_vrid_are_observed_and_controlled_apart() {
    let v = vrid(5);
    let (k4, k6) = (InstanceKey::ipv4(v), InstanceKey::ipv6(v));
    let v4 = |p| cfg(5, Version::V3, p, "192.0.2.100");
    let v6 = |p| cfg(5, Version::V3, p, "2001:db8::100");
    let mut sim = Simulation::new(1);
    let a = sim.add_node(NodeSpec::new("a").instance(v4(200)).instance(v6(50)));
    let b = sim.add_node(NodeSpec::new("b").instance(v4(100)).instance(v6(150)));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(k4), vec![a]);
    assert_eq!(sim.masters((v, Family::Ipv6)), vec![b]);
    assert_eq!(sim.state(b, k6), Some(State::Master));
    assert_eq!(sim.state(b, v), Some(State::Backup), "a bare VRID is IPv4");
    assert_eq!(sim.holders("2001:db8::100".parse().unwrap()), vec![b]);
    // Control the IPv6 instance alone.
    sim.set_priority(a, k6, Priority::new(250));
    sim.run_for(Duration::from_secs(10));
    assert_eq!((sim.masters(k4), sim.masters(k6)), (vec![a], vec![a]));
    assert_eq!(sim.effective_priority(a, k4), Some(Priority::new(200)));
    // The log tells the families apart, in its fields and its text.
    let b6 = sim
        .log()
        .transitions(b, k6)
        .map(|t| t.2)
        .collect::<Vec<_>>();
    assert_eq!(b6, vec![State::Backup, State::Master, State::Backup]);
    let b4 = sim
        .log()
        .transitions(b, k4)
        .map(|t| t.2)
        .collect::<Vec<_>>();
    assert_eq!(b4, vec![State::Backup]);
    let text = sim.log().to_string();
    assert!(
        text.contains("b    vrid 5/IPv6: backup -> master (master down)"),
        "{text}"
    );
    assert!(
        text.contains("a    vrid 5/IPv6: set priority 250"),
        "{text}"
    );
}

#[test]
fn unicast_peers_elect_without_multicast() {
    let mut sim = Simulation::new(1);
    let mut a = v3(200);
    a.unicast_peers = vec!["192.0.2.2".parse().unwrap()];
    let mut b = v3(100);
    b.unicast_peers = vec!["192.0.2.1".parse().unwrap()];
    let na = sim.add_node(NodeSpec::new("a").instance(a));
    let nb = sim.add_node(NodeSpec::new("b").instance(b));
    // A third node is not a peer: it must never see a packet.
    let nc = sim.add_node(NodeSpec::new("c"));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![na]);
    assert!(
        sim.log()
            .iter()
            .filter(|e| matches!(e.kind, LogKind::Sent { .. }))
            .all(|e| matches!(e.kind, LogKind::Sent { to, .. } if to == "192.0.2.2".parse::<IpAddr>().unwrap()))
    );
    assert!(sim.log().iter().all(|e| e.node != Some(nc)));
    sim.crash(na);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.masters(vrid(1)), vec![nb]);
}

// --- partitions and cuts ---

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
        .transitions(n[1], vrid(1))
        .find(|t| t.0 >= healed && t.2 == State::Backup)
        .unwrap()
        .0;
    assert!(stepped_down - healed <= mdi(&sim, n[1]));
}

/// Regression: `partition(&[&[a]])` used to isolate every unnamed node
/// from every other, so b and c both became master.
#[test]
fn partition_naming_one_node_leaves_the_others_together() {
    let (mut sim, n) = lan(&[200, 100, 50], Version::V3);
    sim.run_for(Duration::from_secs(10));
    sim.partition(&[&[n[0]]]);
    assert!(sim.can_hear(n[1], n[2]) && sim.can_hear(n[2], n[1]));
    assert!(!sim.can_hear(n[0], n[1]) && !sim.can_hear(n[2], n[0]));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        sim.masters(vrid(1)),
        vec![n[0], n[1]],
        "b and c share a side"
    );
    assert_eq!(sim.state(n[2], vrid(1)), Some(State::Backup));
    // A node added during the partition joins the unnamed side.
    let d = sim.add_node(NodeSpec::new("d").instance(v3(20)));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.state(d, vrid(1)), Some(State::Backup));
}

#[test]
fn cut_separates_two_nodes_only_and_repair_joins_them() {
    let (mut sim, n) = lan(&[200, 100, 50], Version::V3);
    let (a, b, c) = (n[0], n[1], n[2]);
    sim.run_for(Duration::from_secs(10));
    sim.cut(a, b);
    sim.run_for(Duration::from_secs(10));
    // b no longer hears a and takes over; c still hears a (200) and stays.
    assert_eq!(sim.masters(vrid(1)), vec![a, b]);
    assert_eq!(sim.state(c, vrid(1)), Some(State::Backup));
    assert!(sim.log().received(c, vrid(1)).any(|r| r.1 == b));
    let repaired = sim.now();
    sim.repair(a, b);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    let down = sim.log().transitions(b, vrid(1)).last().unwrap();
    assert_eq!(down.2, State::Backup);
    assert!(down.0 - repaired <= Duration::from_secs(1));
}

#[test]
fn a_one_way_cut_makes_the_classic_split_brain() {
    let (mut sim, n) = lan(&[200, 100], Version::V3);
    let (a, b) = (n[0], n[1]);
    sim.run_for(Duration::from_secs(10));
    // b stops hearing a: it takes over, and a, which hears b's lower
    // priority, stays master too (its answers never reach b).
    sim.cut_one_way(a, b);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![a, b]);
    assert_eq!(sim.holders("192.0.2.100".parse().unwrap()), vec![a, b]);
    let cut_at = sim.now() - Duration::from_secs(10);
    assert!(
        sim.log()
            .received(a, vrid(1))
            .any(|r| r.0 > cut_at && r.1 == b),
        "a hears b"
    );
    assert!(
        !sim.log()
            .received(b, vrid(1))
            .any(|r| r.0 > cut_at + Duration::from_millis(1)),
        "b hears nothing"
    );
    sim.repair_one_way(a, b);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    // The other direction alone changes nothing: the master is heard.
    sim.cut_one_way(b, a);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
}

#[test]
fn lan_wide_events_are_logged_as_such() {
    let (mut sim, n) = lan(&[200, 100], Version::V3);
    sim.partition(&[&[n[0]]]);
    sim.heal();
    sim.cut(n[0], n[1]);
    sim.repair_one_way(n[0], n[1]);
    sim.set_link_loss(n[0], n[1], 0.5);
    sim.reset_link(n[0], n[1]);
    sim.set_latency(Duration::from_millis(2));
    sim.crash(n[0]);
    let ops: Vec<_> = sim
        .log()
        .iter()
        .filter(|e| matches!(e.kind, LogKind::Op(_)))
        .collect();
    assert_eq!(ops.len(), 8);
    assert!(ops[..7].iter().all(|e| e.node.is_none()));
    assert_eq!(ops[7].node, Some(n[0]));
    let text = sim.log().to_string();
    assert!(!text.contains(&usize::MAX.to_string()), "{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("LAN") || l.contains("crash"))
        .collect();
    assert_eq!(
        lines,
        [
            "   0.000000s  LAN  partition [r0] [the rest]",
            "   0.000000s  LAN  heal every partition and cut",
            "   0.000000s  LAN  cut r0 <-> r1",
            "   0.000000s  LAN  repair r0 -> r1",
            "   0.000000s  LAN  link r0 -> r1: latency 100us loss 0.5",
            "   0.000000s  LAN  link r0 -> r1: back to the default",
            "   0.000000s  LAN  every link: latency 2ms",
            "   0.000000s  r0   crash",
        ]
    );
}

// --- links ---

#[test]
fn loss_on_one_link_hits_only_that_direction() {
    let (mut sim, n) = lan(&[200, 100, 50], Version::V3);
    sim.set_link_loss(n[0], n[1], 0.3);
    sim.run_for(Duration::from_secs(60));
    let lost: Vec<_> = sim
        .log()
        .iter()
        .filter_map(|e| match e.kind {
            LogKind::Lost { from } => Some((from, e.node)),
            _ => None,
        })
        .collect();
    assert!(lost.len() > 5, "{} lost", lost.len());
    assert!(lost.iter().all(|l| *l == (n[0], Some(n[1]))));
    assert_eq!(sim.link(n[0], n[1]).loss, 0.3);
    assert_eq!(sim.link(n[1], n[0]).loss, 0.0);
    // A lost advertisement is not received, and every one that is not
    // lost is.
    let sent = sim.log().sent(n[0], vrid(1)).count();
    let from_a = |node| {
        sim.log()
            .received(node, vrid(1))
            .filter(|r| r.1 == n[0])
            .count()
    };
    let (got_b, got_c) = (from_a(n[1]), from_a(n[2]));
    assert_eq!(got_c, sent);
    assert_eq!(got_b + lost.len(), sent);
}

#[test]
fn jitter_delays_each_packet_within_its_bound() {
    let run = |seed| {
        let (mut sim, n) = lan_seeded(seed, &[200, 100], Version::V3);
        let link = LinkProfile::default()
            .with_latency(Duration::from_millis(1))
            .with_jitter(Duration::from_millis(5));
        sim.set_link(n[0], n[1], link);
        sim.run_for(Duration::from_secs(30));
        let delays: Vec<Duration> = sim
            .log()
            .received(n[1], vrid(1))
            .map(|(at, _, _, sent)| at - sent)
            .collect();
        (delays, sim.masters(vrid(1)) == vec![n[0]])
    };
    let (delays, stable) = run(11);
    assert!(stable);
    assert!(delays.len() > 25);
    assert!(
        delays
            .iter()
            .all(|d| *d >= Duration::from_millis(1) && *d <= Duration::from_millis(6))
    );
    let distinct: BTreeSet<_> = delays.iter().collect();
    assert!(distinct.len() > 20, "delays vary: {}", distinct.len());
    assert_eq!(run(11).0, delays, "the seed replays the delays");
    assert_ne!(run(12).0, delays);
}

#[test]
fn reordering_lets_later_packets_overtake_earlier_ones() {
    let mut sim = Simulation::new(5);
    let fast = |p| v3(p).with_interval(Centisecs::new(1));
    let a = sim.add_node(NodeSpec::new("a").instance(fast(200)));
    let b = sim.add_node(NodeSpec::new("b").instance(fast(100)));
    sim.set_link(
        a,
        b,
        LinkProfile::default().with_reorder(0.3, Duration::from_millis(25)),
    );
    sim.run_for(Duration::from_secs(2));
    let sent_order: Vec<Timestamp> = sim.log().received(b, vrid(1)).map(|r| r.3).collect();
    let overtaken = sent_order.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(
        overtaken > 10,
        "{overtaken} packets arrived after a later one"
    );
    let held = sim
        .log()
        .received(b, vrid(1))
        .filter(|(at, _, _, sent)| *at - *sent == Duration::from_micros(25_100))
        .count();
    assert!(held > 10, "held back by exactly latency + delay: {held}");
    assert_eq!(
        sim.masters(vrid(1)),
        vec![a],
        "reordering alone is harmless"
    );
}

#[test]
fn duplication_delivers_a_packet_twice() {
    let (mut sim, n) = lan(&[200, 100], Version::V3);
    sim.set_link(n[0], n[1], LinkProfile::default().with_duplicate(1.0));
    sim.run_for(Duration::from_secs(10));
    let sent: Vec<Timestamp> = sim.log().sent(n[0], vrid(1)).map(|s| s.0).collect();
    let got: Vec<Timestamp> = sim.log().received(n[1], vrid(1)).map(|r| r.3).collect();
    let dup = sim
        .log()
        .iter()
        .filter(|e| matches!(e.kind, LogKind::Duplicated { from } if from == n[0]))
        .count();
    assert_eq!(dup, sent.len());
    // Each advertisement was received twice (the last may still be in
    // flight at the end of the run, but the latency is 100 us).
    let twice: Vec<Timestamp> = sent.iter().flat_map(|t| [*t, *t]).collect();
    assert_eq!(got, twice);
    assert_eq!(sim.masters(vrid(1)), vec![n[0]]);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed| {
        let (mut sim, n) = lan_seeded(seed, &[200, 150, 100], Version::V3);
        sim.set_default_link(
            LinkProfile::default()
                .with_loss(0.3)
                .with_jitter(Duration::from_millis(3))
                .with_duplicate(0.1)
                .with_reorder(0.1, Duration::from_millis(500)),
        );
        sim.crash(n[0]);
        sim.run_for(Duration::from_secs(30));
        sim.log().to_string()
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

// --- accessors, log and crafted packets ---

#[test]
fn accessors_give_the_rfc_timers_of_each_instance() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(NodeSpec::new("a").instance(v3(200).with_interval(Centisecs::new(50))));
    let b = sim.add_node(NodeSpec::new("b").instance(v3(100)).track(
        vrid(1),
        TrackId(1),
        TrackConfig::weight(-36),
        false,
    ));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.effective_priority(b, vrid(1)), Some(Priority::new(64)));
    // RFC 5798 6.1: Skew_Time = (256 - priority) * Master_Adver_Interval
    // / 256, and a VRRPv3 backup uses the master's interval (500 ms).
    let skew = Duration::from_nanos((256 - 64) * 500_000_000 / 256);
    assert_eq!(sim.skew_time(b, vrid(1)), Some(skew));
    assert_eq!(
        sim.master_down_interval(b, vrid(1)),
        Some(Duration::from_millis(1500) + skew)
    );
    assert_eq!(sim.effective_priority(a, vrid(1)), Some(Priority::new(200)));
    sim.crash(a);
    assert_eq!(sim.master_down_interval(a, vrid(1)), None, "a is down");
    assert_eq!(sim.skew_time(b, vrid(9)), None, "no such instance");
}

#[test]
fn the_log_prints_names_and_every_kind_of_event() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(NodeSpec::new("alpha").instance(v3(200)));
    sim.add_node(NodeSpec::new("b").instance(v3(100)));
    sim.run_for(Duration::from_secs(4));
    sim.shutdown(a);
    sim.run_for(Duration::from_secs(1));
    let text = sim.log().to_string();
    let has = |line: &str| {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        )
    };
    has("   0.000000s  alpha  vrid 1/IPv4: init -> backup (startup)");
    has("   0.000000s  alpha  vrid 1/IPv4: removed 192.0.2.100");
    has("   3.218750s  alpha  vrid 1/IPv4: backup -> master (master down)");
    has("   3.218750s  alpha  vrid 1/IPv4: sent priority 200 to 224.0.0.18");
    has("   3.218750s  alpha  vrid 1/IPv4: added 192.0.2.100");
    has("   3.218750s  alpha  vrid 1/IPv4: 5 gratuitous ARPs per address");
    has("   3.218850s  b      vrid 1/IPv4: received priority 200 from alpha, sent 3.218750s");
    has("   4.000000s  alpha  shutdown");
    has("   4.000000s  alpha  vrid 1/IPv4: sent priority 0 to 224.0.0.18");
    has("   4.000000s  alpha  vrid 1/IPv4: master -> init (shutdown)");
    // An entry alone prints node numbers.
    let first = sim.log()[0].to_string();
    assert_eq!(
        first,
        "   0.000000s  node0  vrid 1/IPv4: init -> backup (startup)"
    );
    assert_eq!(
        sim.log().line(&sim.log()[0]).to_string(),
        "   0.000000s  alpha  vrid 1/IPv4: init -> backup (startup)"
    );
    assert_eq!(
        sim.log().since(Timestamp::from_secs(4))[0].kind,
        LogKind::Op(SimOp::Shutdown(a))
    );
}

#[test]
fn logs_of_sends_and_receives_can_be_turned_off() {
    let (mut sim, _) = lan(&[200, 100], Version::V3);
    sim.log_sends(false);
    sim.log_receives(false);
    sim.run_for(Duration::from_secs(30));
    assert!(
        !sim.log()
            .iter()
            .any(|e| matches!(e.kind, LogKind::Sent { .. } | LogKind::Received { .. }))
    );
}

#[test]
fn a_test_station_injects_crafted_packets_over_the_links() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(NodeSpec::new("a").instance(v3(200)));
    let ts = sim.add_node(NodeSpec::new("ts").ipv4("192.0.2.9".parse().unwrap()));
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    let better = Crafted::advert(Version::V3, vrid(1), Priority::new(250))
        .addresses(["192.0.2.100".parse().unwrap()]);
    // A bad TTL is dropped and counted; the master stays.
    sim.inject(ts, better.clone().ttl(254));
    // A VRID nobody runs is logged for crafted packets.
    sim.inject(
        ts,
        Crafted::advert(Version::V3, vrid(77), Priority::new(250))
            .addresses(["192.0.2.100".parse().unwrap()]),
    );
    sim.run_for(Duration::from_millis(1));
    assert_eq!(sim.masters(vrid(1)), vec![a]);
    let drops: Vec<_> = sim
        .log()
        .iter()
        .filter_map(|e| match e.kind {
            LogKind::Dropped {
                from,
                instance,
                reason,
            } => Some((e.node, from, instance, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        drops,
        vec![
            (
                Some(a),
                ts,
                Some(InstanceKey::ipv4(vrid(1))),
                DropReason::IpTtl
            ),
            (Some(a), ts, None, DropReason::UnknownVrid),
        ]
    );
    assert_eq!(
        sim.instance(a, vrid(1)).unwrap().statistics().ip_ttl_errors,
        1
    );
    assert_eq!(sim.router(a).unwrap().statistics().vrid_errors, 1);
    // The good packet, scheduled, preempts a; a cut stops the next one.
    sim.schedule(
        sim.now() + Duration::from_millis(10),
        SimOp::Inject {
            from: ts,
            to: None,
            packet: better.clone(),
        },
    );
    sim.run_for(Duration::from_millis(20));
    assert_eq!(sim.state(a, vrid(1)), Some(State::Backup));
    let (.., why) = sim.log().transitions(a, vrid(1)).last().unwrap();
    assert_eq!(
        why,
        Reason::Preempted {
            by: "192.0.2.9".parse().unwrap(),
            priority: Priority::new(250)
        }
    );
    sim.cut_one_way(ts, a);
    let before = sim.log().len();
    sim.inject_to(ts, a, better);
    sim.run_for(Duration::from_millis(1));
    assert!(
        !sim.log()[before..]
            .iter()
            .any(|e| matches!(e.kind, LogKind::Received { .. })),
        "cut links carry no crafted packets either"
    );
    let text = sim.log().to_string();
    assert!(
        text.contains("ts   inject v3 vrid 1 priority 250 interval 1s [192.0.2.100] ttl 254\n"),
        "{text}"
    );
    assert!(text.contains("inject v3 vrid 1 priority 250 interval 1s [192.0.2.100] to a only"));
}

#[test]
#[should_panic(expected = "has no instance vrid 9/IPv4")]
fn controlling_an_instance_the_node_lacks_is_a_test_error() {
    let (mut sim, n) = lan(&[200], Version::V3);
    sim.set_priority(n[0], vrid(9), Priority::new(50));
}

#[test]
#[should_panic(expected = "does not track 4")]
fn setting_an_untracked_object_is_a_test_error() {
    let (mut sim, n) = lan(&[200], Version::V3);
    sim.set_track(n[0], TrackId(4), false);
}

#[test]
fn restart_rebuilds_from_the_spec_keeping_tracked_state_but_not_priority() {
    let mut sim = Simulation::new(1);
    let a = sim.add_node(NodeSpec::new("a").instance(v3(200)).track(
        vrid(1),
        TrackId(1),
        TrackConfig::weight(-20),
        true,
    ));
    sim.run_for(Duration::from_secs(5));
    sim.set_priority(a, vrid(1), Priority::new(120));
    sim.set_track(a, TrackId(1), false);
    assert_eq!(sim.effective_priority(a, vrid(1)), Some(Priority::new(100)));
    sim.crash(a);
    assert!(sim.holders("192.0.2.100".parse().unwrap()).is_empty());
    sim.restart(a);
    assert_eq!(sim.effective_priority(a, vrid(1)), Some(Priority::new(180)));
    sim.restart(a);
    let restarts = sim
        .log()
        .iter()
        .filter(|e| e.kind == LogKind::Op(SimOp::Restart(a)))
        .count();
    assert_eq!(
        restarts, 2,
        "a restart of a running node is logged, and does nothing"
    );
    assert_eq!(sim.log().transitions(a, vrid(1)).count(), 3);
}

#[test]
fn captured_packets_are_the_bytes_on_the_wire() {
    use vrrp_core::wire::{AdvertRepr, IpPair, Packet};
    for (version, vip_addr) in [
        (Version::V2, "192.0.2.100"),
        (Version::V3, "192.0.2.100"),
        (Version::V3, "2001:db8::100"),
    ] {
        let mut sim = Simulation::new(1);
        sim.capture_packets(true);
        let a = sim.add_node(NodeSpec::new("a").instance(cfg(1, version, 200, vip_addr)));
        sim.run_for(Duration::from_secs(5));
        let captured: Vec<_> = sim
            .log()
            .iter()
            .filter_map(|e| match &e.kind {
                LogKind::Captured { to, ttl, bytes, .. } => Some((*to, *ttl, bytes.clone())),
                _ => None,
            })
            .collect();
        let family = Family::of(&captured[0].0);
        let key = InstanceKey::new(vrid(1), family);
        assert_eq!(captured.len(), sim.log().sent(a, key).count());
        for (to, ttl, bytes) in captured {
            assert_eq!(ttl, 255);
            let ip = IpPair {
                src: sim.address(a, family).unwrap(),
                dst: to,
            };
            let packet = Packet::new_checked(&bytes[..], family).unwrap();
            let advert = AdvertRepr::parse(&packet, &ip, vrrp_core::ChecksumMode::Rfc).unwrap();
            assert_eq!(
                (advert.version, advert.priority),
                (version, Priority::new(200))
            );
            assert_eq!(
                advert.addresses.collect::<Vec<_>>(),
                vec![vip_addr.parse::<IpAddr>().unwrap()]
            );
        }
    }
    // Off by default.
    let (mut sim, _) = lan(&[200], Version::V3);
    sim.run_for(Duration::from_secs(5));
    assert!(
        !sim.log()
            .iter()
            .any(|e| matches!(e.kind, LogKind::Captured { .. }))
    );
}

#[test]
fn link_profiles_can_be_read_back_and_reset() {
    let (mut sim, n) = lan(&[200, 100], Version::V3);
    assert_eq!(sim.link(n[0], n[1]), LinkProfile::default());
    assert_eq!(sim.default_link().latency, Duration::from_micros(100));
    sim.set_latency(Duration::from_millis(3));
    sim.set_link_loss(n[0], n[1], 0.25);
    let own = sim.link(n[0], n[1]);
    assert_eq!((own.latency, own.loss), (Duration::from_millis(3), 0.25));
    sim.set_latency(Duration::from_millis(5));
    assert_eq!(
        sim.link(n[0], n[1]).latency,
        Duration::from_millis(3),
        "a link with its own profile keeps it"
    );
    assert_eq!(sim.link(n[1], n[0]).latency, Duration::from_millis(5));
    sim.reset_link(n[0], n[1]);
    assert_eq!(sim.link(n[0], n[1]), sim.default_link());
}
