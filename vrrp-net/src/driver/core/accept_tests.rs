//! Accept mode (RFC 5798 6.4.3) in simulated time: which virtual
//! addresses the core asks the firewall to block, and that no takeover
//! or release waits for it.

use super::*;
use crate::driver::Vip;

fn no_accept(mut s: InstanceSpec) -> InstanceSpec {
    s.accept = false;
    s
}

fn firewall_sets(h: &Harness) -> Vec<Vec<IpAddr>> {
    h.log
        .iter()
        .filter_map(|e| match e {
            Effect::Firewall(set) => Some(set.iter().map(|b| b.addr).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_no_accept_instance_is_blocked_from_start_and_no_transition_touches_the_firewall() {
    let mut h = Harness::eth0(&config(vec![no_accept(spec(
        "a",
        "eth0",
        1,
        100,
        "192.0.2.100",
    ))]));
    assert_eq!(h.state("a"), State::Backup);
    assert_eq!(firewall_sets(&h), vec![vec![ip("192.0.2.100")]]);
    let Some(Effect::Firewall(set)) = h.log.iter().find(|e| matches!(e, Effect::Firewall(_)))
    else {
        panic!("no firewall effect");
    };
    assert_eq!(
        set.first().map(|b| (b.device.as_str(), b.ifindex)),
        Some(("eth0", 2))
    );
    h.clear();
    h.become_master("a");
    assert_eq!(h.adds(), vec![ip("192.0.2.100")]);
    h.advert("eth0", "192.0.2.2", 1, 200, &["192.0.2.100"]);
    assert_eq!(h.state("a"), State::Backup);
    assert_eq!(h.removes(), vec![ip("192.0.2.100")]);
    assert!(firewall_sets(&h).is_empty(), "{:?}", h.log);
}

#[test]
fn accept_mode_and_the_address_owner_block_nothing() {
    let accept = spec("a", "eth0", 1, 100, "192.0.2.100");
    let owner = no_accept(spec("o", "eth0", 2, 255, "192.0.2.1"));
    let mut h = Harness::eth0(&config(vec![accept, owner]));
    h.become_master("a");
    assert_eq!(h.state("o"), State::Master);
    assert!(firewall_sets(&h).is_empty(), "{:?}", h.log);
}

#[test]
fn excluded_addresses_are_blocked_too_and_a_failure_is_retried() {
    let mut s = no_accept(spec("a", "eth0", 1, 100, "192.0.2.100"));
    s.vips = vec![
        Vip::new(vip("192.0.2.100")),
        Vip {
            excluded: true,
            ..Vip::new(vip("192.0.2.101"))
        },
    ];
    let mut h = Harness::eth0(&config(vec![s]));
    assert_eq!(
        firewall_sets(&h),
        vec![vec![ip("192.0.2.100"), ip("192.0.2.101")]]
    );
    // nft refused: tried again after the back-off.
    h.core
        .handle_firewall_result(h.now, Err("nft: refused".into()));
    h.clear();
    h.advance(h.now + Duration::from_millis(50));
    assert!(firewall_sets(&h).is_empty());
    h.advance(h.now + Duration::from_millis(100));
    assert_eq!(
        firewall_sets(&h),
        vec![vec![ip("192.0.2.100"), ip("192.0.2.101")]]
    );
    assert_eq!(h.core.snapshot().firewall_errors, 1);
}

#[test]
fn a_reload_that_turns_accept_mode_off_or_on_changes_the_set_in_place() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.become_master("a");
    assert!(firewall_sets(&h).is_empty(), "accept mode: no table");
    h.clear();
    let plan = h
        .core
        .plan_reload(config(vec![no_accept(spec(
            "a",
            "eth0",
            1,
            100,
            "192.0.2.100",
        ))]))
        .unwrap();
    let summary = h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    assert_eq!(summary.updated, vec!["a"]);
    assert_eq!(firewall_sets(&h), vec![vec![ip("192.0.2.100")]]);
    h.clear();
    let plan = h
        .core
        .plan_reload(config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]))
        .unwrap();
    h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    assert_eq!(firewall_sets(&h), vec![Vec::<IpAddr>::new()]);
    assert_eq!(h.state("a"), State::Master);
}

#[test]
fn a_link_local_address_matched_by_index_waits_for_its_interface() {
    let mut s = no_accept(spec("a", "eth0", 1, 100, "192.0.2.100"));
    s.vips = vec![
        Vip::new(vip("192.0.2.100")),
        Vip {
            excluded: true,
            device: Some("eth9".into()),
            ..Vip::new(VirtualAddress {
                addr: ip("fe80::99"),
                prefix_len: 64,
            })
        },
    ];
    let mut h = Harness::eth0(&config(vec![s]));
    assert_eq!(firewall_sets(&h), vec![vec![ip("192.0.2.100")]]);
    h.clear();
    let l = link(9, "eth9", true);
    h.links.push(l.clone());
    h.core.handle_link_events(h.now, vec![LinkEvent::Up(l)]);
    h.pump();
    assert_eq!(
        firewall_sets(&h),
        vec![vec![ip("192.0.2.100"), ip("fe80::99")]]
    );
}
