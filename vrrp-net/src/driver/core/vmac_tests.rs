//! The core's rules for virtual MAC interfaces (keepalived's `use_vmac`)
//! in simulated time against the fake kernel of the parent module: made
//! before the instance binds, made again when deleted, retried with
//! back-off, a leftover reused or deleted, deleted at stop after its
//! addresses; and keepalived's `dont_track_primary`.

use std::cell::Cell;

use super::*;
use crate::driver::VmacSpec;

thread_local! {
    /// Creations to fail before succeeding.
    static FAIL_ENSURE: Cell<u32> = const { Cell::new(0) };
}

/// Carries out a virtual MAC effect against the fake kernel.
pub(super) fn carry_out(h: &mut Harness, effect: Effect) {
    match effect {
        Effect::EnsureVmac(op) => {
            if FAIL_ENSURE.get() > 0 {
                FAIL_ENSURE.set(FAIL_ENSURE.get() - 1);
                h.core
                    .handle_vmac_result(h.now, &op.link.name, true, Err("EPERM".into()));
                return;
            }
            let ifindex = h.links.iter().find(|l| l.name == op.link.name).map_or_else(
                || h.links.iter().map(|l| l.ifindex).max().unwrap_or(0) + 1,
                |l| l.ifindex,
            );
            h.links.retain(|l| l.ifindex != ifindex);
            let mut l = link(ifindex, &op.link.name, true);
            l.mac = Some(op.link.mac);
            h.links.push(l.clone());
            if let Some(ll) = op.link.link_local {
                h.addrs.push(addr(ifindex, &ll.to_string(), 64));
            }
            h.core
                .handle_vmac_result(h.now, &op.link.name, true, Ok(ifindex));
            h.core.handle_link_events(h.now, vec![LinkEvent::Up(l)]);
        }
        Effect::RemoveVmac(r) => {
            h.links.retain(|l| l.ifindex != r.ifindex);
            h.addrs.retain(|a| a.ifindex != r.ifindex);
            h.core
                .handle_vmac_result(h.now, &r.name, false, Ok(r.ifindex));
            h.core.handle_link_events(
                h.now,
                vec![LinkEvent::Removed {
                    ifindex: r.ifindex,
                    name: r.name,
                }],
            );
        }
        _ => {}
    }
}

fn with_vmac(mut s: InstanceSpec, name: &str, xmit_base: bool) -> InstanceSpec {
    s.vmac = Some(VmacSpec {
        name: name.into(),
        xmit_base,
    });
    s
}

fn ensures(h: &Harness) -> Vec<VmacOp> {
    h.log
        .iter()
        .filter_map(|e| match e {
            Effect::EnsureVmac(op) => Some(op.clone()),
            _ => None,
        })
        .collect()
}

fn removals(h: &Harness) -> Vec<String> {
    h.log
        .iter()
        .filter_map(|e| match e {
            Effect::RemoveVmac(r) => Some(r.name.clone()),
            _ => None,
        })
        .collect()
}

fn recorded_links(h: &Harness) -> Option<Vec<String>> {
    h.log.iter().rev().find_map(|e| match e {
        Effect::PersistOwnedLinks(l) => Some(l.clone()),
        _ => None,
    })
}

fn ifindex(h: &Harness, name: &str) -> u32 {
    h.links.iter().find(|l| l.name == name).unwrap().ifindex
}

#[test]
fn the_vmac_is_made_first_then_carries_the_socket_the_vips_and_the_announcements() {
    let s = with_vmac(spec("VI_7", "eth0", 7, 200, "192.0.2.70"), "vrrp.7", false);
    let mut h = Harness::eth0(&config(vec![s]));
    let made = ensures(&h);
    assert_eq!(made.len(), 1);
    let op = &made[0].link;
    // RFC 5798 7.3; on eth0; IPv4 needs no link-local address.
    assert_eq!(op.mac, [0, 0, 0x5e, 0, 1, 7]);
    assert_eq!((op.base.as_str(), op.base_ifindex), ("eth0", 2));
    assert_eq!(op.link_local, None);
    assert_eq!(recorded_links(&h), Some(vec!["vrrp.7".to_owned()]));
    // The socket is on the macvlan; the source is eth0's address.
    let sockets = h.core.wanted_sockets();
    assert_eq!(sockets.len(), 1);
    assert_eq!(sockets[0].interface, "vrrp.7");
    assert_eq!(h.status("VI_7").source, Some(ip("192.0.2.1")));
    h.clear();
    h.become_master("VI_7");
    let vmac = ifindex(&h, "vrrp.7");
    let added: Vec<&AddressOp> = h
        .log
        .iter()
        .filter_map(|e| match e {
            Effect::AddAddress(op) => Some(op),
            _ => None,
        })
        .collect();
    assert_eq!(added.len(), 1);
    assert_eq!(
        (added[0].device.as_str(), added[0].ifindex),
        ("vrrp.7", vmac)
    );
    let announced = h.log.iter().find_map(|e| match e {
        Effect::Announce(a) => Some(a.clone()),
        _ => None,
    });
    let announced = announced.unwrap();
    assert_eq!(
        (announced.ifindex, announced.mac),
        (vmac, [0, 0, 0x5e, 0, 1, 7])
    );
}

#[test]
fn ipv6_puts_the_base_link_local_on_the_vmac_and_xmit_base_keeps_the_socket_on_the_base() {
    let v6 = |name: &str, vrid: u8, xmit: bool| {
        let config = InstanceConfig::new(Vrid::new(vrid).unwrap(), Version::V3, ip("::"))
            .with_priority(Priority::new(100))
            .with_interval(Centisecs::new(10))
            .with_address(VirtualAddress {
                addr: ip("2001:db8::70"),
                prefix_len: 64,
            });
        with_vmac(
            InstanceSpec::new(name, "eth0", config),
            &format!("vrrp.{vrid}"),
            xmit,
        )
    };
    let mut ll = addr(2, "fe80::1", 64);
    ll.scope = AddrScope::Link;
    let h = Harness::new(
        &config(vec![v6("VI_8", 8, false), v6("VI_9", 9, true)]),
        Vec::new(),
        vec![link(2, "eth0", true)],
        vec![ll],
    );
    let made = ensures(&h);
    let by_name = |n: &str| made.iter().find(|o| o.link.name == n).unwrap().link.clone();
    let sent_from_vmac = by_name("vrrp.8");
    assert_eq!(sent_from_vmac.mac, [0, 0, 0x5e, 0, 2, 8]);
    assert_eq!(sent_from_vmac.link_local, Some("fe80::1".parse().unwrap()));
    assert_eq!(
        by_name("vrrp.9").link_local,
        None,
        "xmit_base sends from eth0"
    );
    let mut sockets: Vec<String> = h
        .core
        .wanted_sockets()
        .into_iter()
        .map(|s| s.interface)
        .collect();
    sockets.sort();
    assert_eq!(sockets, ["eth0", "vrrp.8"]);
    for name in ["VI_8", "VI_9"] {
        assert_eq!(h.status(name).source, Some(ip("fe80::1")), "{name}");
        assert_eq!(h.state(name), State::Backup);
    }
}

#[test]
fn a_vmac_deleted_by_hand_is_made_again_and_its_vip_restored() {
    let s = with_vmac(spec("VI_7", "eth0", 7, 200, "192.0.2.70"), "vrrp.7", false);
    let mut h = Harness::eth0(&config(vec![s]));
    h.become_master("VI_7");
    let old = ifindex(&h, "vrrp.7");
    h.clear();
    h.links.retain(|l| l.ifindex != old);
    h.addrs.retain(|a| a.ifindex != old);
    h.event(LinkEvent::Removed {
        ifindex: old,
        name: "vrrp.7".into(),
    });
    // Made again at once (the fake kernel answers at once).
    assert_eq!(ensures(&h).len(), 1);
    let new = ifindex(&h, "vrrp.7");
    h.advance(h.now + Duration::from_millis(500));
    assert_eq!(h.state("VI_7"), State::Master);
    assert!(
        h.addrs
            .iter()
            .any(|a| a.ifindex == new && a.addr == ip("192.0.2.70")),
        "VIP back on the new macvlan"
    );
}

#[test]
fn a_failed_creation_holds_the_instance_in_fault_and_is_retried_with_back_off() {
    FAIL_ENSURE.set(2);
    let s = with_vmac(spec("VI_7", "eth0", 7, 200, "192.0.2.70"), "vrrp.7", false);
    let mut h = Harness::eth0(&config(vec![s]));
    assert_eq!(ensures(&h).len(), 1);
    let status = h.status("VI_7");
    assert_eq!(status.state, State::Fault);
    assert_eq!(status.unbound, Some(Unbound::Vmac("EPERM".into())));
    // No second try before the back-off (200 ms), a third after 400 more.
    h.advance(ms(199));
    assert_eq!(ensures(&h).len(), 1);
    h.advance(ms(200));
    assert_eq!(ensures(&h).len(), 2);
    h.advance(ms(599));
    assert_eq!(ensures(&h).len(), 2);
    h.advance(ms(600));
    assert_eq!(ensures(&h).len(), 3);
    assert_eq!(h.status("VI_7").unbound, None);
    h.advance(ms(1100));
    assert_eq!(h.state("VI_7"), State::Master);
}

#[test]
fn a_recorded_leftover_is_reused_when_wanted_and_deleted_when_not() {
    let s = with_vmac(spec("VI_7", "eth0", 7, 100, "192.0.2.70"), "vrrp.7", false);
    let vmac = |i: u32, name: &str, vrid: u8| {
        let mut l = link(i, name, true);
        l.mac = Some([0, 0, 0x5e, 0, 1, vrid]);
        l
    };
    let links = vec![
        link(2, "eth0", true),
        vmac(5, "vrrp.7", 7),
        vmac(6, "vrrp.9", 9),
        vmac(7, "vrrp.10", 10),
    ];
    let mut core = DriverCore::new(&config(vec![s]), Vec::new()).unwrap();
    // vrrp.10 is not in the record: someone else's, never touched.
    core.adopt_owned_links(vec!["vrrp.7".into(), "vrrp.9".into()]);
    let mut h = Harness {
        core,
        now: Timestamp::ZERO,
        links,
        addrs: vec![addr(2, "192.0.2.1", 24)],
        log: Vec::new(),
        fail_adds: 0,
        broken_sockets: BTreeSet::new(),
        hold: false,
        held: Vec::new(),
        persisted: None,
        created_by_driver: BTreeSet::new(),
        violations: Vec::new(),
        late_echoes: false,
        echoes: Vec::new(),
    };
    h.core
        .handle_dump(Timestamp::ZERO, h.links.clone(), h.addrs.clone());
    h.pump();
    h.core.start(Timestamp::ZERO);
    h.pump();
    // Reused (set up again, same interface), the other one deleted.
    let made = ensures(&h);
    assert_eq!(made.len(), 1);
    assert_eq!(ifindex(&h, "vrrp.7"), 5);
    assert_eq!(removals(&h), ["vrrp.9"]);
    assert!(h.links.iter().any(|l| l.name == "vrrp.10"));
    assert_eq!(recorded_links(&h), Some(vec!["vrrp.7".to_owned()]));
    assert_eq!(h.state("VI_7"), State::Backup);
}

#[test]
fn a_stop_deletes_the_vmac_after_its_addresses_and_a_reload_without_it_too() {
    let s = with_vmac(spec("VI_7", "eth0", 7, 200, "192.0.2.70"), "vrrp.7", false);
    let mut h = Harness::eth0(&config(vec![s.clone()]));
    h.become_master("VI_7");
    h.clear();
    h.hold = true;
    h.core.shutdown(h.now);
    h.pump();
    assert_eq!(h.removes(), [ip("192.0.2.70")]);
    assert!(removals(&h).is_empty(), "not while its address goes");
    assert!(h.core.pending_link_changes() > 0);
    h.hold = false;
    h.release_held();
    assert_eq!(removals(&h), ["vrrp.7"]);
    assert_eq!(h.core.pending_link_changes(), 0);
    assert_eq!(recorded_links(&h), Some(vec![]));
    assert!(h.violations.is_empty());

    // A reload that drops the instance deletes its macvlan.
    let mut h = Harness::eth0(&config(vec![s]));
    h.become_master("VI_7");
    h.clear();
    let plan = h.core.plan_reload(config(vec![])).unwrap();
    h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    assert_eq!(removals(&h), ["vrrp.7"]);
    assert!(!h.links.iter().any(|l| l.name == "vrrp.7"));
}

#[test]
fn a_vmac_name_shared_or_naming_an_instance_interface_is_refused() {
    let a = with_vmac(spec("A", "eth0", 7, 100, "192.0.2.70"), "vrrp.7", false);
    let b = with_vmac(spec("B", "eth0", 8, 100, "192.0.2.80"), "vrrp.7", false);
    let c = with_vmac(spec("C", "eth1", 9, 100, "192.0.2.90"), "eth0", false);
    for bad in [vec![a.clone(), b], vec![a, c]] {
        let e = DriverCore::new(&config(bad), Vec::new()).unwrap_err();
        assert!(matches!(e, DriverError::BadVmac { .. }), "{e}");
    }
}

#[test]
fn dont_track_primary_keeps_a_master_through_link_down_but_not_a_missing_interface() {
    let mut s = spec("a", "eth0", 1, 100, "192.0.2.100");
    s.dont_track_primary = true;
    let mut h = Harness::eth0(&config(vec![s]));
    h.become_master("a");
    h.event(LinkEvent::Down(link(2, "eth0", false)));
    assert_eq!(h.state("a"), State::Master);
    assert!(h.has("192.0.2.100"));
    h.event(LinkEvent::Up(link(2, "eth0", true)));
    assert_eq!(h.state("a"), State::Master);
    h.event(LinkEvent::Removed {
        ifindex: 2,
        name: "eth0".into(),
    });
    assert_eq!(h.state("a"), State::Fault);
}
