//! Decision logic without a kernel: health in, table changes and events out,
//! applied to a [`MemoryIpvs`] that fails like the kernel.

use super::*;
use crate::model::{ForwardMethod, Scheduler};
use crate::table::MemoryIpvs;

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn key() -> ServiceKey {
    ServiceKey::tcp(sa("192.0.2.1:80"))
}

fn rs(addr: &str, weight: u32) -> RealServer {
    RealServer::new(Destination::new(sa(addr), ForwardMethod::Route).with_weight(weight))
}

fn vs() -> VirtualServer {
    VirtualServer::new(Service::new(key(), Scheduler::WRR))
        .with_real_server(rs("10.0.0.1:80", 1))
        .with_real_server(rs("10.0.0.2:80", 2))
}

fn events(lb: &mut LoadBalancer) -> Vec<Event> {
    std::iter::from_fn(|| lb.poll_event()).collect()
}

fn kernel_weights(ipvs: &MemoryIpvs) -> Vec<(SocketAddr, u32)> {
    ipvs.table.services.get(&key()).map_or_else(Vec::new, |e| {
        e.destinations
            .values()
            .map(|d| (d.addr, d.weight))
            .collect()
    })
}

#[test]
fn flap_removes_and_readds_server() {
    let mut lb = LoadBalancer::new(vec![vs()]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(
        kernel_weights(&ipvs),
        vec![(sa("10.0.0.1:80"), 1), (sa("10.0.0.2:80"), 2)]
    );
    assert!(events(&mut lb).is_empty());

    assert_eq!(
        lb.set_health(&key(), sa("10.0.0.1:80"), Health::Down),
        Ok(true)
    );
    assert_eq!(
        lb.set_health(&key(), sa("10.0.0.1:80"), Health::Down),
        Ok(false)
    );
    let changes = lb.sync(&mut ipvs).expect("sync");
    assert!(changes.contains(&Change::DeleteDestination(key(), sa("10.0.0.1:80"))));
    assert_eq!(kernel_weights(&ipvs), vec![(sa("10.0.0.2:80"), 2)]);
    assert_eq!(
        events(&mut lb),
        vec![Event::RealServerDown {
            service: key(),
            server: sa("10.0.0.1:80")
        }]
    );

    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Up)
        .expect("known");
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(
        kernel_weights(&ipvs),
        vec![(sa("10.0.0.1:80"), 1), (sa("10.0.0.2:80"), 2)]
    );
    assert_eq!(
        events(&mut lb),
        vec![Event::RealServerUp {
            service: key(),
            server: sa("10.0.0.1:80")
        }]
    );
}

#[test]
fn inhibit_on_failure_sets_weight_zero() {
    let mut config = vs();
    config.real_servers[0] = config.real_servers[0].inhibit_on_failure();
    let mut lb = LoadBalancer::new(vec![config]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    lb.sync(&mut ipvs).expect("sync");
    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Down)
        .expect("known");
    let changes = lb.sync(&mut ipvs).expect("sync");
    let writes: Vec<_> = changes.into_iter().filter(Change::writes).collect();
    assert_eq!(
        writes,
        vec![Change::UpdateDestination(
            key(),
            rs("10.0.0.1:80", 0).destination
        )]
    );
    assert_eq!(
        kernel_weights(&ipvs),
        vec![(sa("10.0.0.1:80"), 0), (sa("10.0.0.2:80"), 2)]
    );
}

#[test]
fn sorry_server_when_all_down_and_back() {
    let sorry = Destination::new(sa("10.0.0.99:80"), ForwardMethod::Masquerade);
    let mut lb = LoadBalancer::new(vec![vs().with_sorry_server(sorry)]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    lb.sync(&mut ipvs).expect("sync");
    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Down)
        .expect("known");
    lb.set_health(&key(), sa("10.0.0.2:80"), Health::Down)
        .expect("known");
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(kernel_weights(&ipvs), vec![(sa("10.0.0.99:80"), 1)]);
    assert_eq!(lb.has_quorum(&key()), Some(false));
    let evs = events(&mut lb);
    assert_eq!(evs.last(), Some(&Event::QuorumDown { service: key() }));

    lb.set_health(&key(), sa("10.0.0.2:80"), Health::Up)
        .expect("known");
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(kernel_weights(&ipvs), vec![(sa("10.0.0.2:80"), 2)]);
    assert_eq!(
        events(&mut lb),
        vec![
            Event::RealServerUp {
                service: key(),
                server: sa("10.0.0.2:80")
            },
            Event::QuorumUp { service: key() }
        ]
    );
}

/// keepalived: quorum 3, hysteresis 1 with weights 1 and 2 (sum 3). Lose one
/// (sum 2 >= 3-1): still up. Lose both (0 < 2): down. Back to 2 (< 3+1): still
/// down, the sorry server keeps serving. Back to 3 (< 4): still down. Only
/// at 4 (after a third server) is quorum regained.
#[test]
fn quorum_with_hysteresis() {
    let sorry = Destination::new(sa("10.0.0.99:80"), ForwardMethod::Route);
    let config = vs()
        .with_real_server(rs("10.0.0.3:80", 1))
        .with_quorum(3, 1)
        .with_sorry_server(sorry);
    let mut lb = LoadBalancer::new(vec![config]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(lb.has_quorum(&key()), Some(true)); // sum 4

    lb.set_health(&key(), sa("10.0.0.3:80"), Health::Down)
        .expect("known"); // 3
    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Down)
        .expect("known"); // 2 >= 2
    assert_eq!(lb.has_quorum(&key()), Some(true));
    lb.set_health(&key(), sa("10.0.0.2:80"), Health::Down)
        .expect("known"); // 0 < 2
    assert_eq!(lb.has_quorum(&key()), Some(false));
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(kernel_weights(&ipvs), vec![(sa("10.0.0.99:80"), 1)]);

    lb.set_health(&key(), sa("10.0.0.2:80"), Health::Up)
        .expect("known"); // 2 < 4
    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Up)
        .expect("known"); // 3 < 4
    assert_eq!(lb.has_quorum(&key()), Some(false));
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(
        kernel_weights(&ipvs),
        vec![(sa("10.0.0.99:80"), 1)],
        "live servers stay out while below quorum"
    );
    lb.set_health(&key(), sa("10.0.0.3:80"), Health::Up)
        .expect("known"); // 4 >= 4
    assert_eq!(lb.has_quorum(&key()), Some(true));
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(
        kernel_weights(&ipvs),
        vec![
            (sa("10.0.0.1:80"), 1),
            (sa("10.0.0.2:80"), 2),
            (sa("10.0.0.3:80"), 1)
        ]
    );
    let quorum: Vec<Event> = events(&mut lb)
        .into_iter()
        .filter(|e| matches!(e, Event::QuorumUp { .. } | Event::QuorumDown { .. }))
        .collect();
    assert_eq!(
        quorum,
        vec![
            Event::QuorumDown { service: key() },
            Event::QuorumUp { service: key() }
        ]
    );
}

#[test]
fn quorum_lost_without_sorry_server_keeps_live_servers() {
    let mut lb = LoadBalancer::new(vec![vs().with_quorum(3, 0)]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Down)
        .expect("known");
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(lb.has_quorum(&key()), Some(false));
    assert_eq!(kernel_weights(&ipvs), vec![(sa("10.0.0.2:80"), 2)]);
}

#[test]
fn alpha_starts_down_until_first_success() {
    let mut config = vs();
    config.alpha = true;
    let sorry = Destination::new(sa("10.0.0.99:80"), ForwardMethod::Route);
    let mut lb = LoadBalancer::new(vec![config.with_sorry_server(sorry)]).expect("config");
    assert_eq!(events(&mut lb), vec![Event::QuorumDown { service: key() }]);
    let mut ipvs = MemoryIpvs::new();
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(kernel_weights(&ipvs), vec![(sa("10.0.0.99:80"), 1)]);
    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Up)
        .expect("known");
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(kernel_weights(&ipvs), vec![(sa("10.0.0.1:80"), 1)]);
}

#[test]
fn omega_notifies_and_release_removes_only_ours() {
    let mut config = vs();
    config.omega = true;
    let mut lb = LoadBalancer::new(vec![config]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    let foreign = ServiceKey::udp(sa("192.0.2.7:53"));
    ipvs.add_service(&Service::new(foreign, Scheduler::RR))
        .expect("add");
    lb.sync(&mut ipvs).expect("sync");
    let changes = lb
        .shutdown(&mut ipvs, ShutdownMode::Release)
        .expect("shutdown");
    assert_eq!(changes, vec![Change::DeleteService(key())]);
    assert_eq!(
        ipvs.table.services.keys().copied().collect::<Vec<_>>(),
        vec![foreign]
    );
    assert_eq!(
        events(&mut lb),
        vec![
            Event::RealServerDown {
                service: key(),
                server: sa("10.0.0.1:80")
            },
            Event::RealServerDown {
                service: key(),
                server: sa("10.0.0.2:80")
            },
            Event::QuorumDown { service: key() },
        ]
    );
}

#[test]
fn keep_mode_then_restart_adopts_without_writes() {
    let mut lb = LoadBalancer::new(vec![vs()]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    lb.sync(&mut ipvs).expect("sync");
    assert!(
        lb.shutdown(&mut ipvs, ShutdownMode::Keep)
            .expect("shutdown")
            .is_empty()
    );
    assert!(events(&mut lb).is_empty(), "no omega, no notifications");
    let writes = ipvs.writes;

    let mut restarted = LoadBalancer::new(vec![vs()]).expect("config");
    let changes = restarted.sync(&mut ipvs).expect("sync");
    assert!(changes.iter().all(|c| !c.writes()), "{changes:?}");
    assert_eq!(ipvs.writes, writes);
    assert!(
        restarted
            .ownership()
            .owns_destination(&key(), sa("10.0.0.2:80"))
    );
}

#[test]
fn reload_keeps_health_and_deletes_removed_service() {
    let other = VirtualServer::new(Service::new(
        ServiceKey::udp(sa("192.0.2.2:53")),
        Scheduler::RR,
    ))
    .with_real_server(rs("10.0.1.1:53", 1));
    let mut lb = LoadBalancer::new(vec![vs(), other]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    lb.sync(&mut ipvs).expect("sync");
    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Down)
        .expect("known");
    lb.reload(vec![vs()]).expect("config");
    assert_eq!(lb.health(&key(), sa("10.0.0.1:80")), Some(Health::Down));
    let changes = lb.sync(&mut ipvs).expect("sync");
    assert!(changes.contains(&Change::DeleteService(ServiceKey::udp(sa("192.0.2.2:53")))));
    assert_eq!(ipvs.table.services.len(), 1);
}

#[test]
fn bad_configs_and_unknown_servers_are_refused() {
    assert_eq!(
        LoadBalancer::new(vec![vs(), vs()]).err(),
        Some(ConfigError::DuplicateService(key()))
    );
    let dup = vs().with_sorry_server(Destination::new(sa("10.0.0.1:80"), ForwardMethod::Route));
    assert_eq!(
        LoadBalancer::new(vec![dup]).err(),
        Some(ConfigError::DuplicateRealServer {
            service: key(),
            server: sa("10.0.0.1:80")
        })
    );
    let mut lb = LoadBalancer::new(vec![vs()]).expect("config");
    assert!(
        lb.set_health(&key(), sa("10.9.9.9:80"), Health::Up)
            .is_err()
    );
    assert!(
        lb.set_health(
            &ServiceKey::tcp(sa("192.0.2.9:1")),
            sa("10.0.0.1:80"),
            Health::Up
        )
        .is_err()
    );
}

/// A seeded random walk of health reports: after every sync the kernel holds
/// exactly the desired table, and a second sync writes nothing.
#[test]
fn random_health_walk_converges() {
    let sorry = Destination::new(sa("10.0.0.99:80"), ForwardMethod::Route);
    let mut config = vs()
        .with_real_server(rs("10.0.0.3:80", 3).inhibit_on_failure())
        .with_quorum(2, 1)
        .with_sorry_server(sorry);
    config.alpha = true;
    let mut lb = LoadBalancer::new(vec![config]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    let servers = [sa("10.0.0.1:80"), sa("10.0.0.2:80"), sa("10.0.0.3:80")];
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    for _ in 0..500 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let server = servers[(seed % 3) as usize];
        let health = if seed & 0x10 == 0 {
            Health::Up
        } else {
            Health::Down
        };
        lb.set_health(&key(), server, health).expect("known");
        lb.sync(&mut ipvs).expect("sync");
        let want = &lb.desired()[&key()];
        assert_eq!(ipvs.table.services[&key()].destinations, want.destinations);
        let writes = ipvs.writes;
        lb.sync(&mut ipvs).expect("sync");
        assert_eq!(ipvs.writes, writes);
        let _ = events(&mut lb);
    }
}

fn other_key() -> ServiceKey {
    ServiceKey::udp(sa("192.0.2.2:53"))
}

fn other_vs() -> VirtualServer {
    VirtualServer::new(Service::new(other_key(), Scheduler::RR))
        .with_real_server(rs("10.0.1.1:53", 1))
        .with_real_server(rs("10.0.1.2:53", 1))
}

#[test]
fn full_sync_repairs_and_counts_changes_made_by_hand() {
    let mut lb = LoadBalancer::new(vec![vs(), other_vs()]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    let first = lb.sync_report(&mut ipvs).expect("sync");
    assert_eq!(
        (first.writes(), first.repairs),
        (6, 0),
        "start-up is not a repair"
    );
    let wanted = ipvs.table.clone();

    // ipvsadm -d, -e and -D behind our back, plus a managed server re-added
    // by hand while it is down.
    ipvs.delete_destination(&key(), sa("10.0.0.1:80"))
        .expect("-d");
    let edited = Destination::new(sa("10.0.0.2:80"), ForwardMethod::Route).with_weight(9);
    ipvs.update_destination(&key(), &edited).expect("-e");
    ipvs.delete_service(&other_key()).expect("-D");
    let report = lb.sync_report(&mut ipvs).expect("sync");
    // 1 re-add + 1 edit in the first service; the second service and its 2
    // servers re-created.
    assert_eq!(
        (report.writes(), report.repairs),
        (5, 5),
        "{:?}",
        report.changes
    );
    assert_eq!(ipvs.table, wanted, "kernel back to what we want");
    assert_eq!(lb.stats().repairs, 5);

    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Down)
        .expect("known");
    let report = lb.sync_report(&mut ipvs).expect("sync");
    assert_eq!(
        (report.writes(), report.repairs),
        (1, 0),
        "a health change is no repair"
    );
    ipvs.add_destination(
        &key(),
        &Destination::new(sa("10.0.0.1:80"), ForwardMethod::Route),
    )
    .expect("-a");
    let report = lb.sync_report(&mut ipvs).expect("sync");
    assert_eq!(
        (report.writes(), report.repairs),
        (1, 1),
        "down server added by hand"
    );
    assert_eq!(kernel_weights(&ipvs), vec![(sa("10.0.0.2:80"), 2)]);

    let quiet = lb.sync_report(&mut ipvs).expect("sync");
    assert_eq!((quiet.writes(), quiet.repairs), (0, 0));
    let stats = lb.stats();
    assert_eq!((stats.full_syncs, stats.repairs, stats.writes), (5, 6, 13));
}

#[test]
fn sync_changed_touches_only_what_changed() {
    let mut lb = LoadBalancer::new(vec![vs(), other_vs()]).expect("config");
    let mut ipvs = MemoryIpvs::new();
    lb.sync(&mut ipvs).expect("sync");
    let writes = ipvs.writes;

    // A reload with no change: no kernel request at all.
    lb.reload(vec![vs(), other_vs()]).expect("config");
    let report = lb.sync_changed(&mut ipvs).expect("sync");
    assert_eq!(report, SyncReport::default());

    // One health change: only its service is read and written.
    lb.set_health(&other_key(), sa("10.0.1.1:53"), Health::Down)
        .expect("known");
    let report = lb.sync_changed(&mut ipvs).expect("sync");
    assert_eq!(report.services_read, 1);
    assert_eq!(
        report
            .changes
            .iter()
            .filter(|c| c.writes())
            .collect::<Vec<_>>(),
        [&Change::DeleteDestination(other_key(), sa("10.0.1.1:53"))]
    );
    // Flapping back and forth before a sync: nothing left to write.
    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Down)
        .expect("known");
    lb.set_health(&key(), sa("10.0.0.1:80"), Health::Up)
        .expect("known");
    assert_eq!(lb.sync_changed(&mut ipvs).expect("sync").services_read, 0);

    // A reload that changes one weight and drops the other service.
    let mut changed = vs();
    changed.real_servers[1].destination.weight = 7;
    lb.reload(vec![changed]).expect("config");
    let report = lb.sync_changed(&mut ipvs).expect("sync");
    let writes_now: Vec<&Change> = report.changes.iter().filter(|c| c.writes()).collect();
    assert_eq!(
        writes_now,
        [
            &Change::UpdateDestination(
                key(),
                Destination::new(sa("10.0.0.2:80"), ForwardMethod::Route).with_weight(7)
            ),
            &Change::DeleteService(other_key()),
        ]
    );
    assert_eq!(ipvs.writes, writes + 3);
    // The incremental syncs left the kernel exactly as a full sync wants it.
    assert!(
        lb.sync(&mut ipvs)
            .expect("sync")
            .iter()
            .all(|c| !c.writes())
    );
}

/// keepalived's SIGHUP cases with the aggregator: a dead real server is not
/// put back, an alpha one that came up is not drained, and nothing is
/// written when the checks did not change.
#[test]
fn reload_with_unchanged_checks_keeps_real_server_health() {
    use crate::health::{HealthAggregator, ServerChecks};
    let mut alpha = other_vs();
    alpha.alpha = true;
    let config = || vec![vs(), alpha.clone()];
    let checks = || {
        vec![
            ServerChecks::new(key(), sa("10.0.0.1:80"), [("tcp", Health::Up)]),
            ServerChecks::new(key(), sa("10.0.0.2:80"), [("tcp", Health::Up)]),
            ServerChecks::new(other_key(), sa("10.0.1.1:53"), [("udp", Health::Down)]),
            ServerChecks::new(other_key(), sa("10.0.1.2:53"), [("udp", Health::Down)]),
        ]
    };
    let mut lb = LoadBalancer::new(config()).expect("config");
    let mut agg = HealthAggregator::new();
    agg.configure(checks());
    agg.apply(&mut lb);
    let mut ipvs = MemoryIpvs::new();
    lb.sync(&mut ipvs).expect("sync");
    // The first real server dies, the alpha ones come up.
    assert_eq!(
        agg.set(&key(), sa("10.0.0.1:80"), &"tcp", Health::Down),
        Ok(Some(Health::Down))
    );
    for n in [1, 2] {
        let server = sa(&format!("10.0.1.{n}:53"));
        agg.set(&other_key(), server, &"udp", Health::Up)
            .expect("known");
    }
    assert_eq!(agg.apply(&mut lb), 3);
    lb.sync_changed(&mut ipvs).expect("sync");
    let table = ipvs.table.clone();
    assert_eq!(kernel_weights(&ipvs), vec![(sa("10.0.0.2:80"), 2)]);
    assert_eq!(table.services[&other_key()].destinations.len(), 2);
    let _ = events(&mut lb);

    // SIGHUP with the same configuration and checks.
    lb.reload(config()).expect("config");
    let report = agg.configure(checks());
    assert_eq!(report.kept, 4);
    assert_eq!(agg.apply(&mut lb), 0);
    assert_eq!(lb.sync_changed(&mut ipvs).expect("sync").writes(), 0);
    assert_eq!(
        ipvs.table, table,
        "dead server not re-added, alpha not drained"
    );
    assert!(
        events(&mut lb).is_empty(),
        "no spurious notify_up/down or quorum events"
    );
}
