//! keepalived's `garp_extra_if` in simulated time: one gratuitous ARP on
//! each other interface every interval while master, none before the
//! first interval, none after leaving master, none without `all` when the
//! other interface is not a virtual MAC one.

use super::*;
use crate::driver::{GarpExtraIf, Vip};

fn two_interfaces(all: bool) -> Harness {
    let mut s = spec("a", "eth0", 1, 100, "192.0.2.100");
    s.vips = vec![
        Vip::new(vip("192.0.2.100")),
        Vip {
            device: Some("eth1".into()),
            ..Vip::new(vip("192.0.2.110"))
        },
        Vip {
            device: Some("eth1".into()),
            ..Vip::new(vip("192.0.2.111"))
        },
    ];
    s.garp_extra_if = Some(GarpExtraIf {
        interval: Duration::from_secs(1),
        all,
    });
    Harness::new(
        &config(vec![s]),
        Vec::new(),
        vec![link(2, "eth0", true), link(3, "eth1", true)],
        vec![addr(2, "192.0.2.1", 24)],
    )
}

/// (ifindex, addresses, count) of each announcement.
fn announcements(h: &Harness) -> Vec<(u32, Vec<IpAddr>, u32)> {
    h.log
        .iter()
        .filter_map(|e| match e {
            Effect::Announce(a) => Some((a.ifindex, a.addresses.clone(), a.count)),
            _ => None,
        })
        .collect()
}

#[test]
fn one_packet_per_other_interface_every_interval_while_master() {
    let mut h = two_interfaces(true);
    h.clear();
    h.become_master("a");
    let became = h
        .log
        .iter()
        .find_map(|e| match e {
            Effect::Event(ev) if ev.to == State::Master => Some(Timestamp::from(ev.at)),
            _ => None,
        })
        .unwrap();
    let at_start = announcements(&h);
    assert_eq!(at_start.len(), 2, "the usual burst on both: {at_start:?}");
    h.clear();
    h.advance(became + Duration::from_millis(999));
    assert!(announcements(&h).is_empty(), "{:?}", announcements(&h));
    h.advance(became + Duration::from_millis(1000));
    assert_eq!(announcements(&h), vec![(3, vec![ip("192.0.2.110")], 1)]);
    h.clear();
    h.advance(became + Duration::from_millis(3000));
    assert_eq!(
        announcements(&h),
        vec![
            (3, vec![ip("192.0.2.110")], 1),
            (3, vec![ip("192.0.2.110")], 1)
        ]
    );
    // A better master that keeps advertising: backup, and no more.
    let peer = ["192.0.2.100", "192.0.2.110", "192.0.2.111"];
    h.advert("eth0", "192.0.2.2", 1, 200, &peer);
    assert_eq!(h.state("a"), State::Backup);
    h.clear();
    for _ in 0..30 {
        h.advance(h.now + Duration::from_millis(100));
        h.advert("eth0", "192.0.2.2", 1, 200, &peer);
    }
    assert_eq!(h.state("a"), State::Backup);
    assert!(announcements(&h).is_empty(), "{:?}", announcements(&h));
}

#[test]
fn without_all_an_ordinary_interface_gets_nothing() {
    let mut h = two_interfaces(false);
    h.become_master("a");
    h.clear();
    h.advance(h.now + Duration::from_secs(3));
    assert!(announcements(&h).is_empty(), "{:?}", announcements(&h));
}

#[test]
fn a_reload_that_adds_it_to_a_master_starts_the_packets() {
    let mut h = two_interfaces(true);
    h.become_master("a");
    let mut spec = h.core.entries.values().next().unwrap().spec.clone();
    spec.garp_extra_if = None;
    let plan = h.core.plan_reload(config(vec![spec.clone()])).unwrap();
    h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    h.clear();
    h.advance(h.now + Duration::from_secs(2));
    assert!(
        announcements(&h).is_empty(),
        "removed: {:?}",
        announcements(&h)
    );
    spec.garp_extra_if = Some(GarpExtraIf {
        interval: Duration::from_millis(500),
        all: true,
    });
    let plan = h.core.plan_reload(config(vec![spec])).unwrap();
    h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    h.clear();
    h.advance(h.now + Duration::from_millis(1000));
    assert_eq!(
        announcements(&h),
        vec![
            (3, vec![ip("192.0.2.110")], 1),
            (3, vec![ip("192.0.2.110")], 1)
        ]
    );
}
