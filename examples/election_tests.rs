//! Unit tests of VRRP election logic on the simulator, written to be
//! copied into your own crate's `tests/` (depend on `vrrp-core`; the
//! simulator is its default `sim` feature). Each test builds a small LAN,
//! runs simulated time (milliseconds of real time for minutes of LAN
//! time) and asserts on states, address holders and exact timings.
//!
//! Run them: `cargo test --example election_tests`.

fn main() {
    println!("These are tests: cargo test --example election_tests");
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use vrrp_core::sim::{InstanceKey, LinkProfile, NodeId, NodeSpec, Simulation};
    use vrrp_core::{
        Centisecs, Family, InstanceConfig, Priority, Reason, State, TrackConfig, TrackId, Version,
        VirtualAddress, Vrid,
    };

    // --- the few helpers a test file needs ---

    const VRID: u8 = 51;

    fn vrid() -> Vrid {
        Vrid::new(VRID).unwrap()
    }

    fn vip() -> IpAddr {
        "192.0.2.100".parse().unwrap()
    }

    /// A VRRPv3 instance for our VIP. The simulator replaces the primary
    /// address with each node's own.
    fn vrrp(priority: u8) -> InstanceConfig {
        InstanceConfig::new(vrid(), Version::V3, "0.0.0.0".parse().unwrap())
            .with_priority(Priority::new(priority))
            .with_address(VirtualAddress::host(vip()))
    }

    /// A LAN of routers with these priorities, started together.
    fn lan(priorities: &[u8]) -> (Simulation, Vec<NodeId>) {
        let mut sim = Simulation::new(1);
        let nodes = priorities
            .iter()
            .enumerate()
            .map(|(i, p)| sim.add_node(NodeSpec::new(format!("r{}", i + 1)).instance(vrrp(*p))))
            .collect();
        (sim, nodes)
    }

    /// Only `node` is master and holds the VIP.
    fn assert_sole_master(sim: &Simulation, node: NodeId) {
        assert_eq!(sim.masters(vrid()), vec![node], "\n{}", sim.log());
        assert_eq!(sim.holders(vip()), vec![node], "\n{}", sim.log());
    }

    // --- elections ---

    #[test]
    fn the_highest_priority_becomes_master() {
        let (mut sim, n) = lan(&[100, 200, 150]);
        sim.run_for(Duration::from_secs(10));
        assert_sole_master(&sim, n[1]);
    }

    #[test]
    fn equal_priorities_go_to_the_higher_address() {
        let mut sim = Simulation::new(1);
        // Added first, but with the higher address.
        let high = sim.add_node(
            NodeSpec::new("high")
                .ipv4("192.0.2.20".parse().unwrap())
                .instance(vrrp(100)),
        );
        sim.add_node(
            NodeSpec::new("low")
                .ipv4("192.0.2.10".parse().unwrap())
                .instance(vrrp(100)),
        );
        sim.run_for(Duration::from_secs(10));
        assert_sole_master(&sim, high);
    }

    #[test]
    fn failover_takes_master_down_interval_after_the_last_advertisement() {
        let (mut sim, n) = lan(&[200, 100]);
        sim.run_for(Duration::from_millis(10_500));
        sim.crash(n[0]);
        sim.run_for(Duration::from_secs(10));
        assert_sole_master(&sim, n[1]);
        // RFC 5798 6.4.2: the backup's Master_Down_Timer runs from the
        // last advertisement it accepted: exact to the nanosecond.
        let (heard, ..) = sim.log().received(n[1], vrid()).last().unwrap();
        let mdi = sim.master_down_interval(n[1], vrid()).unwrap();
        assert_eq!(mdi, Duration::from_nanos(3_609_375_000)); // 3 s + 156/256 s
        assert_eq!(sim.log().became_master(n[1], vrid()), Some(heard + mdi));
    }

    #[test]
    fn graceful_shutdown_hands_over_after_skew_time() {
        let (mut sim, n) = lan(&[200, 100]);
        sim.run_for(Duration::from_millis(10_500));
        let stopped = sim.now();
        sim.shutdown(n[0]);
        sim.run_for(Duration::from_secs(5));
        assert_sole_master(&sim, n[1]);
        let skew = sim.skew_time(n[1], vrid()).unwrap();
        let latency = sim.link(n[0], n[1]).latency;
        assert_eq!(
            sim.log().became_master(n[1], vrid()),
            Some(stopped + latency + skew)
        );
    }

    #[test]
    fn the_recovered_master_preempts_unless_nopreempt() {
        for preempt in [true, false] {
            let mut sim = Simulation::new(1);
            let mut high = vrrp(200);
            high.preempt = preempt;
            let a = sim.add_node(NodeSpec::new("a").instance(high));
            let b = sim.add_node(NodeSpec::new("b").instance(vrrp(100)));
            sim.run_for(Duration::from_secs(10));
            sim.crash(a);
            sim.run_for(Duration::from_secs(10));
            assert_sole_master(&sim, b);
            sim.restart(a);
            sim.run_for(Duration::from_secs(10));
            assert_sole_master(&sim, if preempt { a } else { b });
        }
    }

    #[test]
    fn preempt_delay_holds_the_takeover_back() {
        let mut sim = Simulation::new(1);
        let b = sim.add_node(NodeSpec::new("b").instance(vrrp(100)));
        sim.run_for(Duration::from_secs(10));
        let mut delayed = vrrp(200);
        delayed.preempt_delay = Duration::from_secs(30);
        let joined = sim.now();
        let a = sim.add_node(NodeSpec::new("a").instance(delayed));
        sim.run_for(Duration::from_secs(29));
        assert_sole_master(&sim, b);
        sim.run_for(Duration::from_secs(10));
        assert_sole_master(&sim, a);
        // keepalived's semantics: the delay runs from the first
        // lower-priority advertisement, then Master_Down_Interval from the
        // last one accepted before it ran out.
        let took = sim.log().became_master(a, vrid()).unwrap() - joined;
        let mdi = sim.master_down_interval(a, vrid()).unwrap();
        assert!(took >= Duration::from_secs(30) && took <= Duration::from_secs(31) + mdi);
    }

    // --- health checks (tracked objects) ---

    #[test]
    fn a_failed_check_with_a_weight_moves_the_vip_and_recovery_moves_it_back() {
        const CHECK: TrackId = TrackId(1);
        let mut sim = Simulation::new(1);
        let a = sim.add_node(NodeSpec::new("a").instance(vrrp(150)).track(
            vrid(),
            CHECK,
            TrackConfig::weight(-60),
            true,
        ));
        let b = sim.add_node(NodeSpec::new("b").instance(vrrp(100)));
        sim.run_for(Duration::from_secs(10));
        assert_sole_master(&sim, a);

        sim.set_track(a, CHECK, false);
        assert_eq!(sim.effective_priority(a, vrid()), Some(Priority::new(90)));
        sim.run_for(Duration::from_secs(5));
        assert_sole_master(&sim, b);
        let (.., why) = sim.log().transitions(a, vrid()).last().unwrap();
        assert_eq!(
            why,
            Reason::Preempted {
                by: sim.address(b, Family::Ipv4).unwrap(),
                priority: Priority::new(100)
            }
        );

        sim.set_track(a, CHECK, true);
        sim.run_for(Duration::from_secs(5));
        assert_sole_master(&sim, a);
    }

    #[test]
    fn a_failed_check_with_weight_zero_faults_the_instance() {
        let mut sim = Simulation::new(1);
        let a = sim.add_node(NodeSpec::new("a").instance(vrrp(150)).track(
            vrid(),
            TrackId(1),
            TrackConfig::weight(0),
            true,
        ));
        let b = sim.add_node(NodeSpec::new("b").instance(vrrp(100)));
        sim.run_for(Duration::from_secs(10));
        sim.set_track(a, TrackId(1), false);
        assert_eq!(sim.state(a, vrid()), Some(State::Fault));
        sim.run_for(Duration::from_secs(2));
        assert_sole_master(&sim, b);
    }

    // --- the network ---

    #[test]
    fn a_one_way_link_failure_splits_the_brain_until_repaired() {
        let (mut sim, n) = lan(&[200, 100]);
        sim.run_for(Duration::from_secs(10));
        sim.cut_one_way(n[0], n[1]); // r2 stops hearing r1
        sim.run_for(Duration::from_secs(10));
        assert_eq!(sim.holders(vip()), vec![n[0], n[1]], "both hold the VIP");
        sim.repair_one_way(n[0], n[1]);
        sim.run_for(Duration::from_secs(2));
        assert_sole_master(&sim, n[0]);
    }

    #[test]
    fn isolating_the_master_leaves_the_others_to_elect_one() {
        let (mut sim, n) = lan(&[200, 150, 100]);
        sim.run_for(Duration::from_secs(10));
        sim.partition(&[&[n[0]]]); // r1 alone; r2 and r3 together
        sim.run_for(Duration::from_secs(10));
        assert_eq!(sim.masters(vrid()), vec![n[0], n[1]]);
        sim.heal();
        sim.run_for(Duration::from_secs(2));
        assert_sole_master(&sim, n[0]);
    }

    #[test]
    fn fast_adverts_survive_a_lossy_jittery_link_once_it_recovers() {
        // Seeds make lossy runs reproducible; try several.
        for seed in 1..=5 {
            let mut sim = Simulation::new(seed);
            sim.log_sends(false);
            sim.log_receives(false);
            let fast = |p| vrrp(p).with_interval(Centisecs::new(10)); // 100 ms
            let a = sim.add_node(NodeSpec::new("a").instance(fast(200)));
            let b = sim.add_node(NodeSpec::new("b").instance(fast(100)));
            sim.set_default_link(
                LinkProfile::default()
                    .with_loss(0.2)
                    .with_jitter(Duration::from_millis(20)),
            );
            sim.run_for(Duration::from_secs(60));
            sim.set_default_link(LinkProfile::default());
            sim.run_for(Duration::from_secs(1));
            assert_eq!(sim.masters(vrid()), vec![a], "seed {seed}");
            assert_eq!(sim.state(b, vrid()), Some(State::Backup), "seed {seed}");
        }
    }

    #[test]
    fn ipv4_and_ipv6_instances_can_share_a_vrid() {
        let v6 = |p| {
            InstanceConfig::new(vrid(), Version::V3, "::".parse().unwrap())
                .with_priority(Priority::new(p))
                .with_address(VirtualAddress::host("2001:db8::100".parse().unwrap()))
        };
        let mut sim = Simulation::new(1);
        let a = sim.add_node(NodeSpec::new("a").instance(vrrp(200)).instance(v6(50)));
        let b = sim.add_node(NodeSpec::new("b").instance(vrrp(100)).instance(v6(150)));
        sim.run_for(Duration::from_secs(10));
        assert_eq!(sim.masters(vrid()), vec![a]); // a bare VRID is IPv4
        assert_eq!(sim.masters(InstanceKey::ipv6(vrid())), vec![b]);
    }
}
