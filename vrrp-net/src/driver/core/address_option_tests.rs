//! The core's rules for keepalived's address options and static
//! addresses, in simulated time against the fake kernel of the parent
//! module: attributes carried to the add, an owned address found with
//! another scope replaced once (not forever), static addresses wanted
//! from start to stop and put back when removed from outside, and the
//! interface of an address on another device tracked unless `no_track`.

use super::*;
use crate::addr::AddrAttrs;
use crate::driver::Vip;

fn with_vips(mut s: InstanceSpec, vips: Vec<Vip>) -> InstanceSpec {
    s.vips = vips;
    s
}

fn vip_with(a: &str, attrs: AddrAttrs) -> Vip {
    let mut v = Vip::new(a.parse().unwrap());
    v.attrs = attrs;
    v
}

fn scoped(scope: u8) -> AddrAttrs {
    AddrAttrs {
        scope: Some(scope),
        broadcast: "192.0.2.127".parse().ok(),
        ..AddrAttrs::default()
    }
}

#[test]
fn attributes_reach_the_add_and_an_owned_address_with_another_scope_is_replaced_once() {
    let s = with_vips(
        spec("a", "eth0", 1, 100, "192.0.2.100"),
        vec![vip_with("192.0.2.100/26", scoped(253))],
    );
    let mut h = Harness::eth0(&config(vec![s.clone()]));
    h.clear();
    h.become_master("a");
    let op = h
        .log
        .iter()
        .find_map(|e| match e {
            Effect::AddAddress(op) => Some(op.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(op.attrs, scoped(253));
    // The kernel reports what was asked: nothing more to do, however
    // long it runs.
    h.clear();
    h.advance(h.now + Duration::from_secs(5));
    assert!(h.adds().is_empty() && h.removes().is_empty(), "{:?}", h.log);
    // A reload with another scope: removed, then added with the new one.
    let edited = with_vips(s, vec![vip_with("192.0.2.100/26", scoped(0))]);
    let plan = h.core.plan_reload(config(vec![edited])).unwrap();
    h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    assert_eq!(h.removes(), [ip("192.0.2.100")]);
    assert_eq!(h.adds(), [ip("192.0.2.100")]);
    assert!(h.violations.is_empty());
    let found = h
        .addrs
        .iter()
        .find(|a| a.addr == ip("192.0.2.100"))
        .unwrap();
    assert_eq!(found.scope, AddrScope::Universe);
    h.clear();
    h.advance(h.now + Duration::from_secs(5));
    assert!(h.adds().is_empty() && h.removes().is_empty(), "{:?}", h.log);
    assert_eq!(h.state("a"), State::Master);
}

#[test]
fn static_addresses_stay_from_start_to_stop_and_come_back_when_removed() {
    let mut stat = vip_with("192.0.2.150/32", AddrAttrs::default());
    stat.device = Some("eth0".into());
    let mut no_device = vip_with("192.0.2.151/32", AddrAttrs::default());
    no_device.device = None;
    let mut c = config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]);
    c.static_addresses = vec![stat, no_device];
    let mut h = Harness::eth0(&c);
    // There at once, whatever the instance's state.
    assert_eq!(h.state("a"), State::Backup);
    assert!(h.has("192.0.2.150"));
    assert!(!h.has("192.0.2.151"), "one without a device is ignored");
    assert!(h.persisted.as_ref().is_some_and(|p| p.len() == 1));
    // Removed from outside: put back.
    h.event(LinkEvent::AddressRemoved(addr(2, "192.0.2.150", 32)));
    assert!(h.has("192.0.2.150"));
    // A reload without it removes it.
    let plan = h
        .core
        .plan_reload(config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.core.commit_reload(h.now, plan.unwrap(), Vec::new());
    h.pump();
    assert!(!h.has("192.0.2.150"));
    // Back with a reload; gone at stop.
    let plan = h.core.plan_reload(c.clone()).unwrap();
    h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    assert!(h.has("192.0.2.150"));
    h.core.shutdown(h.now);
    h.pump();
    assert!(!h.has("192.0.2.150"));
    assert!(h.violations.is_empty());
}

#[test]
fn the_interface_of_an_address_on_another_device_is_tracked_unless_no_track() {
    let on_eth1 = |a: &str, no_track: bool| {
        let mut v = vip_with(a, AddrAttrs::default());
        v.device = Some("eth1".into());
        v.no_track = no_track;
        v
    };
    let tracked = with_vips(
        spec("t", "eth0", 1, 100, "192.0.2.100"),
        vec![
            vip_with("192.0.2.100/32", AddrAttrs::default()),
            on_eth1("198.51.100.1/32", false),
        ],
    );
    let untracked = with_vips(
        spec("u", "eth0", 2, 100, "192.0.2.101"),
        vec![
            vip_with("192.0.2.101/32", AddrAttrs::default()),
            on_eth1("198.51.100.2/32", true),
        ],
    );
    let mut h = Harness::new(
        &config(vec![tracked, untracked]),
        Vec::new(),
        vec![link(2, "eth0", true), link(3, "eth1", true)],
        vec![addr(2, "192.0.2.1", 24)],
    );
    h.become_master("t");
    assert_eq!(h.state("u"), State::Master);
    h.event(LinkEvent::Down(link(3, "eth1", false)));
    assert_eq!(h.state("t"), State::Fault);
    assert_eq!(h.state("u"), State::Master);
    h.event(LinkEvent::Up(link(3, "eth1", true)));
    h.advance(h.now + Duration::from_millis(400));
    assert_eq!(h.state("t"), State::Master);
}
