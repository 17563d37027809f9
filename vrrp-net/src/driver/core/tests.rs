//! The driver core's rules in simulated time, against a fake kernel: no
//! root, no sockets. Each test names the rule it proves.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use vrrp_core::wire::{AdvertRepr, IpPair, MULTICAST_V4};
use vrrp_core::{
    Auth, Centisecs, ChecksumMode, InstanceConfig, Priority, RxMeta, State, Timestamp, TrackConfig,
    TrackId, Version, VirtualAddress, Vrid,
};

use super::*;
use crate::addr::AddrScope;

#[path = "address_option_tests.rs"]
mod address_option_tests;
#[path = "vmac_tests.rs"]
mod vmac_tests;

#[path = "accept_tests.rs"]
mod accept_tests;

#[path = "extra_garp_tests.rs"]
mod extra_garp_tests;

const IFF_UP_RUNNING: u32 = 0x1 | 0x40;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Timestamp {
    Timestamp::from_millis(n)
}

fn link(ifindex: u32, name: &str, up: bool) -> LinkInfo {
    LinkInfo {
        ifindex,
        name: name.to_owned(),
        mac: Some([2, 0, 0, 0, 0, u8::try_from(ifindex).unwrap_or(0)]),
        flags: if up { IFF_UP_RUNNING } else { 0 },
        operstate: crate::link::OperState::Up,
        mtu: Some(1500),
    }
}

fn addr(ifindex: u32, a: &str, prefix_len: u8) -> IfAddr {
    IfAddr {
        ifindex,
        addr: ip(a),
        prefix_len,
        label: None,
        scope: AddrScope::Universe,
        flags: 0,
        broadcast: None,
    }
}

fn vip(a: &str) -> VirtualAddress {
    VirtualAddress {
        addr: ip(a),
        prefix_len: 24,
    }
}

/// An instance on `iface` with VRID `vrid`, priority `prio`, one VIP, a
/// 100 ms interval, its source read from the interface.
fn spec(name: &str, iface: &str, vrid: u8, prio: u8, v: &str) -> InstanceSpec {
    let config = InstanceConfig::new(Vrid::new(vrid).unwrap(), Version::V3, ip("0.0.0.0"))
        .with_priority(Priority::new(prio))
        .with_interval(Centisecs::new(10))
        .with_address(vip(v));
    InstanceSpec::new(name, iface, config)
}

fn config(specs: Vec<InstanceSpec>) -> DriverConfig {
    DriverConfig {
        instances: specs,
        ..DriverConfig::default()
    }
}

/// A fake shell: carries out every effect against a fake kernel at once
/// (or holds address changes when asked), and remembers what it did.
struct Harness {
    core: DriverCore,
    now: Timestamp,
    links: Vec<LinkInfo>,
    addrs: Vec<IfAddr>,
    /// Every effect, in order.
    log: Vec<Effect>,
    /// Address changes to fail, before succeeding.
    fail_adds: u32,
    /// Interfaces whose sockets fail to open.
    broken_sockets: BTreeSet<String>,
    /// Address changes held back (not answered).
    hold: bool,
    held: Vec<(AddressOp, bool)>,
    /// The last record written.
    persisted: Option<Vec<OwnedAddress>>,
    /// Addresses the driver's own adds created (and nobody removed since).
    created_by_driver: BTreeSet<IpAddr>,
    /// Removals of addresses the driver had not created.
    violations: Vec<IpAddr>,
    /// The kernel's notifications of the driver's own changes are read
    /// after their answers (kept in `echoes` until delivered), not before.
    late_echoes: bool,
    echoes: Vec<LinkEvent>,
}

impl Harness {
    fn new(
        config: &DriverConfig,
        owned: Vec<OwnedAddress>,
        links: Vec<LinkInfo>,
        addrs: Vec<IfAddr>,
    ) -> Harness {
        let core = DriverCore::new(config, owned).unwrap();
        let mut h = Harness {
            core,
            now: Timestamp::ZERO,
            links,
            addrs,
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
        h
    }

    /// Two routers' worth of LAN: eth0 (ifindex 2) with 192.0.2.1/24.
    fn eth0(config: &DriverConfig) -> Harness {
        Harness::new(
            config,
            Vec::new(),
            vec![link(2, "eth0", true)],
            vec![addr(2, "192.0.2.1", 24)],
        )
    }

    fn has(&self, a: &str) -> bool {
        self.addrs.iter().any(|x| x.addr == ip(a))
    }

    fn pump(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            self.log.push(effect.clone());
            match effect {
                Effect::Sockets(wanted) => {
                    for spec in wanted {
                        let report = if self.broken_sockets.contains(&spec.interface) {
                            SocketReport::Failed("refused".into())
                        } else {
                            SocketReport::Opened {
                                ifindex: spec.ifindex,
                                join_multicast: spec.join_multicast,
                            }
                        };
                        self.core.handle_socket_report(self.now, spec.key, report);
                    }
                }
                Effect::AddAddress(op) => {
                    if self.hold {
                        self.held.push((op, true));
                    } else {
                        self.answer(&op, true);
                    }
                }
                Effect::RemoveAddress(op) => {
                    if self.hold {
                        self.held.push((op, false));
                    } else {
                        self.answer(&op, false);
                    }
                }
                Effect::PersistOwned => self.persisted = Some(self.core.owned()),
                Effect::Send(_) | Effect::Announce(_) | Effect::Event(_) => {}
                e @ (Effect::EnsureVmac(_)
                | Effect::RemoveVmac(_)
                | Effect::PersistOwnedLinks(_)) => {
                    vmac_tests::carry_out(self, e);
                }
                Effect::AddRoute(_) | Effect::RemoveRoute(_) | Effect::PersistRoutes(_) => {}
                Effect::AddRule(_) | Effect::RemoveRule(_) | Effect::PersistRules(_) => {}
                Effect::Firewall(_) => self.core.handle_firewall_result(self.now, Ok(())),
            }
        }
    }

    fn answer(&mut self, op: &AddressOp, add: bool) {
        let present = self
            .addrs
            .iter()
            .any(|a| a.ifindex == op.ifindex && a.addr == op.address.addr);
        let mut echo = None;
        let result = if add {
            if self.fail_adds > 0 {
                self.fail_adds -= 1;
                Err("EPERM".to_owned())
            } else if present {
                Ok(false)
            } else {
                let mut a = addr(
                    op.ifindex,
                    &op.address.addr.to_string(),
                    op.address.prefix_len,
                );
                a.flags = 0x01;
                a.scope = AddrScope::from_raw(op.attrs.scope.unwrap_or(0));
                a.broadcast = op.attrs.broadcast;
                echo = Some(LinkEvent::AddressAdded(a.clone()));
                self.addrs.push(a);
                self.created_by_driver.insert(op.address.addr);
                Ok(true)
            }
        } else if present {
            if !self.created_by_driver.remove(&op.address.addr) {
                self.violations.push(op.address.addr);
            }
            let (gone, kept) = std::mem::take(&mut self.addrs)
                .into_iter()
                .partition(|a| a.ifindex == op.ifindex && a.addr == op.address.addr);
            self.addrs = kept;
            echo = gone.into_iter().next().map(LinkEvent::AddressRemoved);
            Ok(true)
        } else {
            Ok(false)
        };
        // The kernel notifies every change it makes; the notification is
        // usually read before the answer, which comes on another socket.
        if let Some(echo) = echo {
            if self.late_echoes {
                self.echoes.push(echo);
            } else {
                self.core.handle_link_events(self.now, vec![echo]);
            }
        }
        self.core.handle_address_result(self.now, op, add, result);
    }

    /// Delivers the late notifications of the driver's own changes, each
    /// read on its own (the worst case: each a batch of its own).
    fn deliver_echoes(&mut self) {
        for echo in std::mem::take(&mut self.echoes) {
            self.core.handle_link_events(self.now, vec![echo]);
            self.pump();
        }
    }

    fn release_held(&mut self) {
        for (op, add) in std::mem::take(&mut self.held) {
            self.answer(&op, add);
        }
        self.pump();
    }

    /// Runs time forward to `to`, firing every deadline on the way.
    fn advance(&mut self, to: Timestamp) {
        while let Some(d) = self.core.poll_timeout() {
            if d.at > to {
                break;
            }
            self.now = self.now.max(d.at);
            self.core.handle_timeout(self.now);
            self.pump();
        }
        self.now = to;
    }

    fn state(&self, name: &str) -> State {
        self.status(name).state
    }

    fn status(&self, name: &str) -> InstanceStatus {
        self.core
            .snapshot()
            .instances
            .into_iter()
            .find(|i| i.name == name)
            .unwrap()
    }

    fn events(&self) -> Vec<(String, State, State)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Effect::Event(ev) => Some((ev.instance.clone(), ev.from, ev.to)),
                _ => None,
            })
            .collect()
    }

    fn clear(&mut self) {
        self.log.clear();
    }

    /// Advertisements sent (priority of each).
    fn sent_priorities(&self) -> Vec<u8> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Effect::Send(b) => Some(b.iter().map(|(p, _)| p[2]).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn adds(&self) -> Vec<IpAddr> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Effect::AddAddress(op) => Some(op.address.addr),
                _ => None,
            })
            .collect()
    }

    fn removes(&self) -> Vec<IpAddr> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Effect::RemoveAddress(op) => Some(op.address.addr),
                _ => None,
            })
            .collect()
    }

    fn socket(&self, iface: &str) -> SocketKey {
        self.core
            .wanted_sockets()
            .into_iter()
            .find(|s| s.interface == iface)
            .unwrap()
            .key
    }

    /// An advertisement from `src` on `iface`.
    fn advert(&mut self, iface: &str, src: &str, vrid: u8, prio: u8, vips: &[&str]) {
        let addrs: Vec<IpAddr> = vips.iter().map(|a| ip(a)).collect();
        let repr = AdvertRepr {
            version: Version::V3,
            vrid: Vrid::new(vrid).unwrap(),
            priority: Priority::new(prio),
            interval: Centisecs::new(10),
            auth: Auth::None,
            addresses: addrs.iter().copied(),
        };
        let dst = IpAddr::V4(MULTICAST_V4);
        let mut buf = [0u8; 128];
        let len = repr
            .emit(&mut buf, &IpPair { src: ip(src), dst }, ChecksumMode::Rfc)
            .unwrap();
        let meta = RxMeta {
            src: ip(src),
            dst,
            ttl: Some(255),
        };
        let key = self.socket(iface);
        self.core
            .handle_packet(self.now, key, self.now, &meta, &buf[..len]);
        self.pump();
    }

    fn event(&mut self, e: LinkEvent) {
        match &e {
            LinkEvent::AddressAdded(a) => {
                self.created_by_driver.remove(&a.addr);
                self.addrs.push(a.clone());
            }
            LinkEvent::AddressRemoved(a) => {
                self.created_by_driver.remove(&a.addr);
                self.addrs.retain(|x| x.addr != a.addr);
            }
            LinkEvent::Removed { ifindex, .. } => {
                for a in self.addrs.iter().filter(|a| a.ifindex == *ifindex) {
                    self.created_by_driver.remove(&a.addr);
                }
                self.links.retain(|l| l.ifindex != *ifindex);
                self.addrs.retain(|a| a.ifindex != *ifindex);
            }
            LinkEvent::Up(l) | LinkEvent::Down(l) | LinkEvent::Changed(l) => {
                self.links.retain(|x| x.ifindex != l.ifindex);
                self.links.push(l.clone());
            }
        }
        self.core.handle_link_events(self.now, vec![e]);
        self.pump();
    }

    /// Alone on the link: master after Master_Down_Interval.
    fn become_master(&mut self, name: &str) {
        self.advance(self.now + Duration::from_millis(400));
        assert_eq!(self.state(name), State::Master);
    }
}

#[test]
fn output_order_advert_then_address_then_announcement_and_goodbye_before_removal() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    assert_eq!(h.state("a"), State::Backup);
    h.clear();
    h.become_master("a");
    let kinds: Vec<&str> = h
        .log
        .iter()
        .map(|e| match e {
            Effect::Send(_) => "send",
            Effect::AddAddress(_) => "add",
            Effect::Announce(_) => "announce",
            Effect::Event(_) => "event",
            Effect::PersistOwned => "persist",
            _ => "other",
        })
        .collect();
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(pos("send") < pos("add"), "{kinds:?}");
    assert!(pos("add") < pos("announce"), "{kinds:?}");
    assert!(h.has("192.0.2.100"));
    assert_eq!(
        h.persisted.as_ref().map(Vec::len),
        Some(1),
        "recorded as ours"
    );
    let Some(Effect::Send(b)) = h.log.iter().find(|e| matches!(e, Effect::Send(_))) else {
        panic!("no send");
    };
    assert_eq!(b.source, ip("192.0.2.1"), "the interface's primary address");
    h.clear();
    h.core.shutdown(h.now);
    h.pump();
    let first_send = h.log.iter().position(|e| matches!(e, Effect::Send(_)));
    let first_remove = h
        .log
        .iter()
        .position(|e| matches!(e, Effect::RemoveAddress(_)));
    assert!(first_send < first_remove, "{:?}", h.log);
    assert_eq!(h.sent_priorities(), vec![0]);
    assert!(!h.has("192.0.2.100"));
    assert_eq!(h.persisted, Some(vec![]));
}

#[test]
fn leftovers_of_an_earlier_run_are_removed_at_start_and_foreign_addresses_kept_and_reported() {
    let cfg = config(vec![
        spec("a", "eth0", 1, 100, "192.0.2.100"),
        spec("b", "eth0", 2, 100, "192.0.2.101"),
    ]);
    let owned = vec![
        OwnedAddress {
            device: "eth0".into(),
            addr: ip("192.0.2.100"),
            prefix_len: 24,
        },
        // Recorded, since removed by someone: forgotten.
        OwnedAddress {
            device: "eth0".into(),
            addr: ip("192.0.2.150"),
            prefix_len: 24,
        },
    ];
    let h = Harness::new(
        &cfg,
        owned,
        vec![link(2, "eth0", true)],
        vec![
            addr(2, "192.0.2.1", 24),
            addr(2, "192.0.2.100", 24),
            addr(2, "192.0.2.101", 24),
        ],
    );
    assert_eq!(h.removes(), vec![ip("192.0.2.100")], "only ours");
    assert!(h.has("192.0.2.101"), "the operator's address stays");
    let snap = h.core.snapshot();
    assert_eq!(snap.leftovers_removed, 1);
    assert_eq!(snap.foreign_addresses, 1);
    assert_eq!(snap.foreign_removed, 0);
    let b = h.status("b");
    assert!(b.vips[0].foreign && b.vips[0].present && !b.vips[0].ours);
    assert!(h.core.owned().is_empty());
    assert_eq!(h.persisted, Some(vec![]));
}

#[test]
fn foreign_addresses_are_removed_and_reported_under_keepalived_policy() {
    let mut cfg = config(vec![spec("b", "eth0", 2, 100, "192.0.2.101")]);
    cfg.foreign_addresses = ForeignAddressPolicy::Remove;
    let h = Harness::new(
        &cfg,
        Vec::new(),
        vec![link(2, "eth0", true)],
        vec![addr(2, "192.0.2.1", 24), addr(2, "192.0.2.101", 24)],
    );
    assert_eq!(h.removes(), vec![ip("192.0.2.101")]);
    let snap = h.core.snapshot();
    assert_eq!((snap.foreign_addresses, snap.foreign_removed), (1, 1));
}

/// The kernel adds the address and says so, someone removes it, and only
/// then is the answer to our add read (the notifications and the answer
/// come on two sockets): the answer must not make it look present again.
#[test]
fn a_vip_removed_between_its_add_and_the_answer_is_put_back() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.hold = true;
    h.become_master("a");
    assert_eq!(h.adds(), vec![ip("192.0.2.100")]);
    let (op, add) = h.held.pop().expect("the add, held");
    assert!(add);
    h.event(LinkEvent::AddressAdded(addr(2, "192.0.2.100", 24)));
    h.event(LinkEvent::AddressRemoved(addr(2, "192.0.2.100", 24)));
    assert_eq!(
        h.adds().len(),
        1,
        "no second add while the first is in flight"
    );
    h.clear();
    h.hold = false;
    h.core.handle_address_result(h.now, &op, true, Ok(true));
    h.pump();
    assert_eq!(h.adds(), vec![ip("192.0.2.100")], "put back at once");
    assert!(h.has("192.0.2.100"));
    assert_eq!(h.core.snapshot().vips_restored, 1);
    assert_eq!(h.state("a"), State::Master);
}

/// A removal reported while our add is in flight but before the kernel
/// reported the add is an earlier removal's (here our own, of a drifted
/// address): the add's answer stands, nothing is put back or counted.
#[test]
fn a_stale_removal_during_our_add_is_not_taken_for_someone_elses() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.hold = true;
    h.become_master("a");
    let (op, _) = h.held.pop().expect("the add, held");
    h.event(LinkEvent::AddressRemoved(addr(2, "192.0.2.100", 24)));
    h.event(LinkEvent::AddressAdded(addr(2, "192.0.2.100", 24)));
    h.clear();
    h.hold = false;
    h.core.handle_address_result(h.now, &op, true, Ok(true));
    h.pump();
    assert!(h.adds().is_empty(), "{:?}", h.adds());
    assert!(h.has("192.0.2.100"));
    assert_eq!(h.core.snapshot().vips_restored, 0);
}

/// The answers to our changes and the kernel's notifications of them come
/// on two sockets (and the answers from another thread), so our removal's
/// notification can be read after the answer to the add that follows it:
/// a reload that changes a VIP's scope replaces it, and the late removal
/// notice must not be taken for a removal from outside (which would add it
/// again, be told it exists, and stop counting it as ours).
#[test]
fn our_removals_late_notification_after_the_add_again_changes_nothing() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 200, "192.0.2.100")]));
    h.become_master("a");
    h.late_echoes = true;
    let mut edited = spec("a", "eth0", 1, 200, "192.0.2.100");
    let mut v = crate::driver::api::Vip::new(vip("192.0.2.100"));
    v.attrs.scope = Some(253);
    edited.vips = vec![v];
    let plan = h.core.plan_reload(config(vec![edited])).unwrap();
    h.core.commit_reload(h.now, plan, Vec::new());
    h.clear();
    h.pump();
    // Removed and added again with the new scope, both answered.
    assert_eq!(h.adds(), vec![ip("192.0.2.100")]);
    let added = h.addrs.iter().find(|a| a.addr == ip("192.0.2.100"));
    assert_eq!(added.map(|a| a.scope), Some(AddrScope::from_raw(253)));
    assert_eq!(h.core.snapshot().vips_restored, 1, "the replacement");
    // Only now are the kernel's notices of the two read, in its order.
    assert_eq!(h.echoes.len(), 2);
    h.clear();
    h.deliver_echoes();
    assert!(h.adds().is_empty(), "nothing added again: {:?}", h.log);
    assert_eq!(h.core.snapshot().vips_restored, 1, "nothing more put back");
    assert_eq!(h.core.owned().len(), 1, "still ours");
    assert!(h.status("a").vips[0].present);
    // A removal from outside after that is one.
    h.event(LinkEvent::AddressRemoved(addr(2, "192.0.2.100", 24)));
    assert_eq!(h.adds(), vec![ip("192.0.2.100")]);
    assert_eq!(h.core.snapshot().vips_restored, 2);
    assert_eq!(h.core.owned().len(), 1);
}

/// An echo that never comes (its notification lost) is waited for a
/// bounded time: an address someone adds later, of the kind awaited, is
/// seen.
#[test]
fn an_echo_never_read_stops_being_waited_for() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.late_echoes = true;
    h.become_master("a");
    // A better master: "a" steps down and removes its address.
    h.advert("eth0", "192.0.2.2", 1, 200, &["192.0.2.100"]);
    h.pump();
    assert_eq!(h.state("a"), State::Backup);
    assert!(!h.has("192.0.2.100"));
    // The notices of our add and removal are lost.
    assert_eq!(h.echoes.len(), 2);
    h.echoes.clear();
    for _ in 0..30 {
        h.advance(h.now + Duration::from_millis(100));
        h.advert("eth0", "192.0.2.2", 1, 200, &["192.0.2.100"]);
        h.pump();
    }
    assert_eq!(h.state("a"), State::Backup);
    // Someone adds the address here: seen, and reported as foreign.
    h.event(LinkEvent::AddressAdded(addr(2, "192.0.2.100", 24)));
    let v = &h.status("a").vips[0];
    assert!(v.present && v.foreign, "{v:?}");
}

#[test]
fn a_vip_removed_from_outside_while_master_is_put_back_at_once_counted_and_announced() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.become_master("a");
    h.clear();
    h.event(LinkEvent::AddressRemoved(addr(2, "192.0.2.100", 24)));
    // Same instant: no timer involved.
    assert_eq!(h.adds(), vec![ip("192.0.2.100")]);
    assert!(h.has("192.0.2.100"));
    assert!(
        h.log
            .iter()
            .any(|e| matches!(e, Effect::Announce(a) if a.addresses == vec![ip("192.0.2.100")]))
    );
    assert_eq!(h.core.snapshot().vips_restored, 1);
    assert_eq!(h.status("a").vips[0].restored, 1, "counted on the address");
    assert_eq!(h.state("a"), State::Master);
    assert!(h.events().is_empty(), "no transition");
}

#[test]
fn a_failed_add_is_retried_with_back_off_and_shown_in_status() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.fail_adds = 3;
    h.become_master("a");
    let took_over = h.status("a").stats.master_transitions;
    assert_eq!(took_over, 1);
    let st = h.status("a");
    assert!(!st.vips[0].present);
    assert_eq!(st.vips[0].last_error.as_deref(), Some("EPERM"));
    let start = h.now;
    // 3 failures: waits of 100, 200, 400 ms.
    let mut attempts = Vec::new();
    h.clear();
    for step in 1..=100 {
        h.advance(start + Duration::from_millis(10 * step));
        for _ in h.adds() {
            attempts.push(h.now);
        }
        h.clear();
        if h.has("192.0.2.100") {
            break;
        }
    }
    assert!(h.has("192.0.2.100"), "added in the end");
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    let st = h.status("a");
    assert_eq!(
        (st.vips[0].add_failures, st.vips[0].last_error.clone()),
        (0, None)
    );
    assert_eq!(h.core.snapshot().address_errors, 3);
}

#[test]
fn a_periodic_dump_catches_a_lost_removal_and_a_stale_dump_changes_nothing() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.become_master("a");
    // A dump taken before our add, handled after: not a removal.
    h.clear();
    h.core.handle_dump_taken_at(
        h.now,
        ms(1),
        h.links.clone(),
        vec![addr(2, "192.0.2.1", 24)],
    );
    h.pump();
    assert!(h.adds().is_empty(), "{:?}", h.log);
    assert_eq!(h.core.snapshot().vips_restored, 0);
    // The VIP vanishes and the notification is lost: the next dump sees it.
    h.addrs.retain(|a| a.addr != ip("192.0.2.100"));
    h.advance(h.now + Duration::from_secs(5));
    h.clear();
    h.core
        .handle_dump_taken_at(h.now, h.now, h.links.clone(), h.addrs.clone());
    h.pump();
    assert_eq!(h.adds(), vec![ip("192.0.2.100")]);
    assert_eq!(h.core.snapshot().vips_restored, 1);
    assert_eq!(h.core.snapshot().reconciliations, 2);
}

#[test]
fn an_address_owner_never_removes_its_own_address_even_when_demoted() {
    let mut config_owner = InstanceConfig::new(Vrid::new(9).unwrap(), Version::V3, ip("0.0.0.0"))
        .with_priority(Priority::OWNER)
        .with_interval(Centisecs::new(10))
        .with_address(VirtualAddress {
            addr: ip("192.0.2.1"),
            prefix_len: 24,
        });
    config_owner.owner_ignore_adverts = false;
    let mut cfg = config(vec![InstanceSpec::new("own", "eth0", config_owner)]);
    cfg.foreign_addresses = ForeignAddressPolicy::Remove;
    let mut h = Harness::eth0(&cfg);
    assert_eq!(h.state("own"), State::Master);
    // A spoofed owner advertisement from a higher address demotes it
    // (keepalived 2.2.7's behaviour, kept on request).
    h.advert("eth0", "192.0.2.200", 9, 255, &["192.0.2.1"]);
    assert_eq!(h.state("own"), State::Backup);
    assert!(h.removes().is_empty(), "{:?}", h.log);
    assert!(h.has("192.0.2.1"));
    assert_eq!(h.status("own").source, Some(ip("192.0.2.1")), "still bound");
    // The spoofing stops: master again after Master_Down_Interval.
    h.advance(h.now + Duration::from_millis(400));
    assert_eq!(h.state("own"), State::Master);
}

#[test]
fn an_owner_removes_the_virtual_address_it_added_when_it_stops() {
    // keepalived makes `state MASTER` without a priority an owner (255)
    // whose address is not the interface's: the address is ours, added at
    // start, and goes when the instance stops, as keepalived removes what
    // it set.
    let config_owner = InstanceConfig::new(Vrid::new(9).unwrap(), Version::V3, ip("0.0.0.0"))
        .with_priority(Priority::OWNER)
        .with_address(vip("192.0.2.41"));
    let mut h = Harness::eth0(&config(vec![InstanceSpec::new(
        "own",
        "eth0",
        config_owner,
    )]));
    assert_eq!(h.state("own"), State::Master);
    assert_eq!(h.adds(), vec![ip("192.0.2.41")]);
    h.clear();
    h.core.shutdown(h.now);
    h.pump();
    assert_eq!(h.removes(), vec![ip("192.0.2.41")], "{:?}", h.log);
    assert!(!h.has("192.0.2.41"));
}

#[test]
fn by_default_the_owner_discards_adverts_and_stays_master() {
    let config_owner = InstanceConfig::new(Vrid::new(9).unwrap(), Version::V3, ip("0.0.0.0"))
        .with_priority(Priority::OWNER)
        .with_address(VirtualAddress {
            addr: ip("192.0.2.1"),
            prefix_len: 24,
        });
    let mut h = Harness::eth0(&config(vec![InstanceSpec::new(
        "own",
        "eth0",
        config_owner,
    )]));
    h.advert("eth0", "192.0.2.200", 9, 255, &["192.0.2.1"]);
    assert_eq!(h.state("own"), State::Master);
    assert_eq!(h.status("own").stats.owner_discards, 1);
}

#[test]
fn an_interface_deleted_and_recreated_by_name_is_used_again() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.become_master("a");
    h.clear();
    h.event(LinkEvent::Removed {
        ifindex: 2,
        name: "eth0".into(),
    });
    assert_eq!(h.state("a"), State::Fault);
    assert_eq!(h.status("a").unbound, Some(Unbound::InterfaceMissing));
    // Recreated with another index: the socket is re-opened for it.
    h.event(LinkEvent::Up(link(7, "eth0", true)));
    assert_eq!(h.state("a"), State::Fault, "no source address yet");
    h.event(LinkEvent::AddressAdded(addr(7, "192.0.2.1", 24)));
    assert!(
        h.log
            .iter()
            .any(|e| matches!(e, Effect::Sockets(s) if s.first().is_some_and(|x| x.ifindex == 7)))
    );
    assert_eq!(h.state("a"), State::Backup);
    let back = h.now;
    h.advance(back + Duration::from_millis(400));
    assert_eq!(h.state("a"), State::Master);
    assert!(h.has("192.0.2.100"));
    assert!(
        h.addrs
            .iter()
            .any(|a| a.ifindex == 7 && a.addr == ip("192.0.2.100"))
    );
    assert_eq!(
        h.events()
            .iter()
            .map(|(_, f, t)| (*f, *t))
            .collect::<Vec<_>>(),
        vec![
            (State::Master, State::Fault),
            (State::Fault, State::Backup),
            (State::Backup, State::Master)
        ]
    );
}

#[test]
fn an_interface_missing_at_start_is_waited_for_in_fault() {
    let mut h = Harness::new(
        &config(vec![spec("a", "vlan10", 1, 100, "192.0.2.100")]),
        Vec::new(),
        vec![link(2, "eth0", true)],
        vec![addr(2, "192.0.2.1", 24)],
    );
    assert_eq!(h.state("a"), State::Fault);
    assert_eq!(h.status("a").unbound, Some(Unbound::InterfaceMissing));
    assert!(h.core.wanted_sockets().is_empty());
    h.event(LinkEvent::Up(link(5, "vlan10", true)));
    h.event(LinkEvent::AddressAdded(addr(5, "192.0.2.1", 24)));
    assert_eq!(h.state("a"), State::Backup);
    assert_eq!(h.status("a").unbound, None);
}

#[test]
fn a_renumbered_primary_address_is_followed_without_a_transition() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.become_master("a");
    h.clear();
    let mut new = addr(2, "192.0.2.2", 24);
    new.flags = 0x01; // secondary until the primary goes
    h.event(LinkEvent::AddressAdded(new));
    h.event(LinkEvent::AddressRemoved(addr(2, "192.0.2.1", 24)));
    assert_eq!(h.status("a").source, Some(ip("192.0.2.2")));
    assert!(h.events().is_empty(), "{:?}", h.events());
    h.advance(h.now + Duration::from_millis(100));
    let Some(Effect::Send(b)) = h.log.iter().rev().find(|e| matches!(e, Effect::Send(_))) else {
        panic!("no advertisement");
    };
    assert_eq!(b.source, ip("192.0.2.2"));
}

#[test]
fn link_down_is_fault_and_link_up_is_backup() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.become_master("a");
    h.event(LinkEvent::Down(link(2, "eth0", false)));
    assert_eq!(h.state("a"), State::Fault);
    assert!(
        !h.has("192.0.2.100"),
        "a faulted instance gives its addresses up"
    );
    h.event(LinkEvent::Up(link(2, "eth0", true)));
    assert_eq!(h.state("a"), State::Backup);
}

#[test]
fn a_socket_that_cannot_be_opened_holds_its_instances_in_fault() {
    let cfg = config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]);
    let core = DriverCore::new(&cfg, Vec::new()).unwrap();
    let mut h = Harness {
        core,
        now: Timestamp::ZERO,
        links: vec![link(2, "eth0", true)],
        addrs: vec![addr(2, "192.0.2.1", 24)],
        log: Vec::new(),
        fail_adds: 0,
        broken_sockets: ["eth0".to_owned()].into(),
        hold: false,
        held: Vec::new(),
        persisted: None,
        created_by_driver: BTreeSet::new(),
        violations: Vec::new(),
        late_echoes: false,
        echoes: Vec::new(),
    };
    h.core.handle_dump(h.now, h.links.clone(), h.addrs.clone());
    h.pump();
    h.core.start(h.now);
    h.pump();
    assert_eq!(h.state("a"), State::Fault);
    assert_eq!(
        h.status("a").unbound,
        Some(Unbound::Socket("refused".into()))
    );
    let key = h.socket("eth0");
    h.core.handle_socket_report(
        h.now,
        key,
        SocketReport::Opened {
            ifindex: 2,
            join_multicast: true,
        },
    );
    h.pump();
    assert_eq!(h.state("a"), State::Backup);
}

#[test]
fn reload_classifies_and_an_in_place_priority_edit_sends_no_priority_zero() {
    let mut h = Harness::eth0(&config(vec![
        spec("keep", "eth0", 1, 200, "192.0.2.101"),
        spec("edit", "eth0", 2, 200, "192.0.2.102"),
        spec("move", "eth0", 3, 200, "192.0.2.103"),
        spec("drop", "eth0", 4, 200, "192.0.2.104"),
    ]));
    h.become_master("edit");
    h.clear();
    let mut moved = spec("move", "eth0", 3, 200, "192.0.2.103");
    moved.config.version = Version::V2;
    moved.config.advert_interval = Centisecs::ONE_SECOND;
    let new = config(vec![
        spec("keep", "eth0", 1, 200, "192.0.2.101"),
        spec("edit", "eth0", 2, 150, "192.0.2.102"),
        moved,
        spec("new", "eth0", 5, 200, "192.0.2.105"),
    ]);
    let plan = h.core.plan_reload(new).unwrap();
    let summary = h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    assert_eq!(summary.unchanged, vec!["keep"]);
    assert_eq!(summary.updated, vec!["edit"]);
    assert_eq!(summary.restarted, vec!["move"]);
    assert_eq!(summary.added, vec!["new"]);
    assert_eq!(summary.removed, vec!["drop"]);
    let events = h.events();
    assert!(
        events.iter().all(|(n, _, _)| n != "keep" && n != "edit"),
        "{events:?}"
    );
    // Priority 0 only from the stopped ones (move, drop): two.
    assert_eq!(h.sent_priorities().iter().filter(|p| **p == 0).count(), 2);
    assert_eq!(h.status("edit").priority, Priority::new(150));
    assert_eq!(h.state("edit"), State::Master);
    assert!(
        !h.has("192.0.2.104"),
        "the removed instance released its VIP"
    );
    h.clear();
    h.advance(h.now + Duration::from_millis(100));
    assert!(h.sent_priorities().contains(&150));
    assert!(!h.sent_priorities().contains(&0));
}

#[test]
fn reload_adds_and_removes_vips_in_place() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 200, "192.0.2.100")]));
    h.become_master("a");
    h.clear();
    let mut edited = spec("a", "eth0", 1, 200, "192.0.2.200");
    edited.config.garp.master_repeat = 2;
    let plan = h.core.plan_reload(config(vec![edited])).unwrap();
    let summary = h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    assert_eq!(summary.updated, vec!["a"]);
    assert!(h.events().is_empty());
    assert!(h.has("192.0.2.200") && !h.has("192.0.2.100"));
    assert!(h.log.iter().any(|e| matches!(e, Effect::Announce(a) if a.addresses == vec![ip("192.0.2.200")] && a.count == 2)));
    assert_eq!(h.core.owned().len(), 1);
}

#[test]
fn a_reload_that_fails_its_checks_changes_nothing() {
    let cfg = config(vec![spec("a", "eth0", 1, 200, "192.0.2.100")]);
    let mut h = Harness::eth0(&cfg);
    h.become_master("a");
    let before = h.core.snapshot();
    h.clear();
    let dup = config(vec![
        spec("a", "eth0", 1, 150, "192.0.2.100"),
        spec("b", "eth0", 1, 100, "192.0.2.101"),
    ]);
    assert!(matches!(
        h.core.plan_reload(dup),
        Err(DriverError::DuplicateVrid { .. })
    ));
    let mut group = config(vec![spec("a", "eth0", 1, 150, "192.0.2.100")]);
    group.sync_groups = vec![vec!["a".into(), "ghost".into()]];
    assert!(matches!(
        h.core.plan_reload(group),
        Err(DriverError::UnknownInstance(_))
    ));
    let bad = config(vec![spec("a", "eth0", 1, 0, "192.0.2.100")]);
    assert!(matches!(
        h.core.plan_reload(bad),
        Err(DriverError::Config { .. })
    ));
    h.pump();
    assert!(h.log.is_empty(), "{:?}", h.log);
    assert_eq!(h.core.snapshot(), before);
}

#[test]
fn switching_to_multicast_needs_a_joined_socket_before_it_binds() {
    for joined in [true, false] {
        let mut uni = spec("a", "eth0", 1, 100, "192.0.2.100");
        uni.config.unicast_peers = vec![ip("192.0.2.2")];
        let mut h = Harness::eth0(&config(vec![uni]));
        assert!(!h.core.wanted_sockets()[0].join_multicast);
        let plan = h
            .core
            .plan_reload(config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]))
            .unwrap();
        assert!(
            plan.sockets()[0].join_multicast,
            "the plan asks for a joined socket"
        );
        let key = plan.sockets()[0].key;
        let report = if joined {
            SocketReport::Opened {
                ifindex: 2,
                join_multicast: true,
            }
        } else {
            // The shell could not join: the instance would hear nobody.
            h.broken_sockets.insert("eth0".into());
            SocketReport::Failed("join refused".into())
        };
        let summary = h.core.commit_reload(h.now, plan, vec![(key, report)]);
        h.pump();
        assert_eq!(summary.updated, vec!["a"]);
        if joined {
            assert_eq!(h.status("a").unbound, None);
            assert_eq!(h.state("a"), State::Backup);
        } else {
            assert!(matches!(h.status("a").unbound, Some(Unbound::Socket(_))));
            assert_eq!(h.state("a"), State::Fault);
        }
    }
}

#[test]
fn a_tracked_objects_reported_state_outlives_a_reload() {
    let mut with_track = spec("a", "eth0", 1, 100, "192.0.2.100");
    with_track
        .tracks
        .push((TrackId(7), TrackConfig::weight(0), true));
    let mut h = Harness::eth0(&config(vec![with_track.clone()]));
    assert_eq!(h.state("a"), State::Backup);
    h.core
        .set_track(h.now, &TrackKey::User(TrackId(7)), false)
        .unwrap();
    h.pump();
    assert_eq!(h.state("a"), State::Fault);
    // A new instance tracking the same object starts from its known state,
    // not from the spec's "up".
    let mut other = spec("b", "eth0", 2, 100, "192.0.2.101");
    other
        .tracks
        .push((TrackId(7), TrackConfig::weight(0), true));
    let plan = h.core.plan_reload(config(vec![with_track, other])).unwrap();
    h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    assert_eq!(h.state("a"), State::Fault);
    assert_eq!(h.state("b"), State::Fault);
    // A caller's id never collides with an interface's (id 0 inside the
    // driver): nobody tracks the caller's id 0, and nothing changes.
    let before = h.core.snapshot();
    assert!(matches!(
        h.core.set_track(h.now, &TrackKey::User(TrackId(0)), true),
        Err(DriverError::UnknownTrack(TrackKey::User(TrackId(0))))
    ));
    h.pump();
    assert_eq!(h.core.snapshot(), before);
}

#[test]
fn commands_that_cannot_apply_are_refused_and_change_nothing() {
    let mut tracked = spec("a", "eth0", 1, 150, "192.0.2.100");
    tracked
        .tracks
        .push((TrackId(7), TrackConfig::weight(-60), true));
    let mut h = Harness::eth0(&config(vec![tracked]));
    h.become_master("a");
    h.clear();
    let before = h.core.snapshot();
    let zero = h.core.set_priority(h.now, "a", Priority::STOP);
    assert!(
        matches!(
            &zero,
            Err(DriverError::Config {
                instance,
                error: RouterError::Config(ConfigError::ZeroPriority),
            }) if instance == "a"
        ),
        "{zero:?}"
    );
    let typo = h.core.set_priority(h.now, "VI_typo", Priority::new(120));
    assert!(matches!(&typo, Err(DriverError::NoSuchInstance(n)) if n == "VI_typo"));
    assert_eq!(
        typo.unwrap_err().to_string(),
        "no instance is named VI_typo"
    );
    let unknown = h
        .core
        .set_track(h.now, &TrackKey::User(TrackId(999)), false);
    assert_eq!(
        unknown.unwrap_err().to_string(),
        "tracked object 999 is tracked by no instance"
    );
    let unknown_if = h
        .core
        .set_track(h.now, &TrackKey::Interface("eth9".into()), false);
    assert!(matches!(unknown_if, Err(DriverError::UnknownTrack(_))));
    h.pump();
    assert!(h.log.is_empty(), "{:?}", h.log);
    assert_eq!(h.core.snapshot(), before);
    // What can apply does.
    h.core
        .set_track(h.now, &TrackKey::User(TrackId(7)), false)
        .unwrap();
    h.core.set_priority(h.now, "a", Priority::new(200)).unwrap();
    assert_eq!(h.status("a").priority, Priority::new(140));
    // An id the new configuration no longer tracks is refused again.
    let plan = h
        .core
        .plan_reload(config(vec![spec("a", "eth0", 1, 150, "192.0.2.100")]))
        .unwrap();
    h.core.commit_reload(h.now, plan, Vec::new());
    assert!(matches!(
        h.core.set_track(h.now, &TrackKey::User(TrackId(7)), true),
        Err(DriverError::UnknownTrack(_))
    ));
}

#[test]
fn a_master_answers_a_lower_priority_advert_with_an_advert_and_announcements() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 200, "192.0.2.100")]));
    h.become_master("a");
    h.clear();
    h.advert("eth0", "192.0.2.2", 1, 100, &["192.0.2.100"]);
    assert_eq!(h.sent_priorities(), vec![200]);
    assert!(h.log.iter().any(|e| matches!(e, Effect::Announce(a) if a.addresses == vec![ip("192.0.2.100")] && a.count == 5)));
}

#[test]
fn arrival_times_run_the_timers_and_never_go_back() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.advance(ms(200));
    let key = h.socket("eth0");
    let repr = AdvertRepr {
        version: Version::V3,
        vrid: Vrid::new(1).unwrap(),
        priority: Priority::new(200),
        interval: Centisecs::new(10),
        auth: Auth::None,
        addresses: [ip("192.0.2.100")].into_iter(),
    };
    let dst = IpAddr::V4(MULTICAST_V4);
    let mut buf = [0u8; 64];
    let len = repr
        .emit(
            &mut buf,
            &IpPair {
                src: ip("192.0.2.2"),
                dst,
            },
            ChecksumMode::Rfc,
        )
        .unwrap();
    let meta = RxMeta {
        src: ip("192.0.2.2"),
        dst,
        ttl: Some(255),
    };
    // Read at 200 ms, arrived at 190 ms: the timer runs from 190 ms.
    h.core
        .handle_packet(ms(200), key, ms(190), &meta, &buf[..len]);
    h.pump();
    let mdi = h
        .core
        .router()
        .instances()
        .next()
        .map(|(_, i)| i.master_down_interval())
        .unwrap();
    assert_eq!(h.core.poll_timeout().map(|d| d.at), Some(ms(190) + mdi));
    assert!(h.core.poll_timeout().is_some_and(|d| d.takeover));
    // A packet stamped before the last one handled counts as of then.
    h.core
        .handle_packet(ms(201), key, ms(100), &meta, &buf[..len]);
    h.pump();
    assert_eq!(h.core.poll_timeout().map(|d| d.at), Some(ms(190) + mdi));
}

#[test]
fn send_and_announce_failures_reach_the_snapshot() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.core.handle_send_report(SendReport {
        sent: 3,
        dropped: 2,
        failed: 1,
    });
    h.core.handle_announce_failures(4);
    h.core.handle_state_file_error();
    h.core.handle_overrun();
    h.pump();
    let s = h.core.snapshot();
    assert_eq!(
        (
            s.send_dropped,
            s.send_errors,
            s.announce_errors,
            s.state_file_errors,
            s.netlink_overruns
        ),
        (2, 1, 4, 1, 1)
    );
}

#[test]
fn an_address_change_in_flight_is_not_sent_twice() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    h.hold = true;
    h.become_master("a");
    assert_eq!(h.adds().len(), 1);
    // More events while the add is in flight: no second add.
    h.core.handle_dump(h.now, h.links.clone(), h.addrs.clone());
    h.pump();
    h.event(LinkEvent::AddressAdded(addr(2, "192.0.2.9", 24)));
    assert_eq!(h.adds().len(), 1);
    assert_eq!(h.core.pending_address_changes(), 1);
    h.hold = false;
    h.release_held();
    assert!(h.has("192.0.2.100"));
    assert_eq!(h.core.pending_address_changes(), 0);
    assert_eq!(h.core.snapshot().vips_restored, 0);
}

/// A small deterministic generator for the operation-sequence test.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_operation_sequences_never_remove_what_the_driver_did_not_add() {
    // An operator's address equal to a VIP (.101), an owner whose VIP is
    // the interface's own address (.1), instances coming and going, links
    // flapping and re-created, address changes failing, dumps, packets.
    let owner_cfg = {
        let mut c = InstanceConfig::new(Vrid::new(9).unwrap(), Version::V3, ip("0.0.0.0"))
            .with_priority(Priority::OWNER)
            .with_interval(Centisecs::new(10))
            .with_address(VirtualAddress {
                addr: ip("192.0.2.1"),
                prefix_len: 24,
            });
        c.owner_ignore_adverts = false;
        InstanceSpec::new("own", "eth0", c)
    };
    for seed in 1..=200u64 {
        let mut rng = Lcg(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let base = vec![
            spec("a", "eth0", 1, 100, "192.0.2.100"),
            spec("b", "eth0", 2, 150, "192.0.2.101"),
            owner_cfg.clone(),
        ];
        let mut h = Harness::new(
            &config(base.clone()),
            Vec::new(),
            vec![link(2, "eth0", true)],
            vec![addr(2, "192.0.2.1", 24), addr(2, "192.0.2.101", 24)],
        );
        let mut ifindex = 2u32;
        for _ in 0..250 {
            h.clear();
            match rng.below(12) {
                0 => h.advance(h.now + Duration::from_millis(rng.below(500))),
                1 => {
                    let up = rng.below(2) == 0;
                    h.event(if up {
                        LinkEvent::Up(link(ifindex, "eth0", true))
                    } else {
                        LinkEvent::Down(link(ifindex, "eth0", false))
                    });
                }
                2 => {
                    h.event(LinkEvent::Removed {
                        ifindex,
                        name: "eth0".into(),
                    });
                    ifindex += 1;
                    h.event(LinkEvent::Up(link(ifindex, "eth0", true)));
                    h.event(LinkEvent::AddressAdded(addr(ifindex, "192.0.2.1", 24)));
                }
                3 => {
                    // Someone deletes a VIP or the operator's address.
                    let a = ["192.0.2.100", "192.0.2.101"][rng.below(2) as usize];
                    h.event(LinkEvent::AddressRemoved(addr(ifindex, a, 24)));
                }
                4 => h.fail_adds = rng.below(3) as u32,
                5 => {
                    let (vrid, prio) = (1 + rng.below(2) as u8, rng.below(256) as u8);
                    let src = ["192.0.2.2", "192.0.2.200"][rng.below(2) as usize];
                    if h.core
                        .wanted_sockets()
                        .iter()
                        .any(|s| s.interface == "eth0")
                    {
                        h.advert("eth0", src, vrid, prio, &["192.0.2.100"]);
                    }
                }
                6 => {
                    let mut next = base.clone();
                    next[0].config.priority = Priority::new(1 + rng.below(254) as u8);
                    if rng.below(2) == 0 {
                        next.remove(1);
                    }
                    if let Ok(plan) = h.core.plan_reload(config(next)) {
                        h.core.commit_reload(h.now, plan, Vec::new());
                        h.pump();
                    }
                }
                7 => {
                    h.core.handle_dump(h.now, h.links.clone(), h.addrs.clone());
                    h.pump();
                }
                8 => h.hold = rng.below(2) == 0,
                9 => h.release_held(),
                10 => {
                    h.core
                        .set_priority(h.now, "b", Priority::new(1 + rng.below(254) as u8))
                        .ok();
                    h.pump();
                }
                _ => {
                    // The operator puts their address back. Not while a
                    // change of ours to it is held: the kernel carries out
                    // a request within microseconds, before a person can
                    // delete and re-add an address.
                    let ours_pending = h
                        .held
                        .iter()
                        .any(|(op, _)| op.address.addr == ip("192.0.2.101"));
                    let restore = !h.has("192.0.2.101") && !ours_pending;
                    if restore {
                        h.event(LinkEvent::AddressAdded(addr(ifindex, "192.0.2.101", 24)));
                    }
                }
            }
            assert!(
                h.violations.is_empty(),
                "seed {seed}: removed {:?}, which the driver did not add",
                h.violations
            );
            for removed in h.removes() {
                assert_ne!(removed, ip("192.0.2.1"), "seed {seed}: the owner's address");
            }
            assert!(
                h.core.pending_address_changes() <= 3,
                "seed {seed}: one change per address at most"
            );
        }
        h.hold = false;
        h.release_held();
        h.core.shutdown(h.now);
        h.pump();
        h.release_held();
        assert!(
            h.has("192.0.2.1"),
            "seed {seed}: the owner keeps its address"
        );
    }
}

#[test]
fn a_tracked_objects_weight_changes_in_place() {
    let mut tracked = spec("a", "eth0", 1, 200, "192.0.2.100");
    tracked
        .tracks
        .push((TrackId(3), TrackConfig::weight(-10), false));
    let mut h = Harness::eth0(&config(vec![tracked.clone()]));
    h.become_master("a");
    assert_eq!(h.status("a").priority, Priority::new(190));
    h.clear();
    tracked.tracks[0].1 = TrackConfig::weight(-50);
    tracked
        .track_interfaces
        .push(("eth9".into(), TrackConfig::weight(-20)));
    let plan = h.core.plan_reload(config(vec![tracked])).unwrap();
    let summary = h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    assert_eq!(summary.updated, vec!["a"]);
    // -50 for the failing object, -20 for the missing interface.
    assert_eq!(h.status("a").priority, Priority::new(130));
    assert!(h.events().is_empty(), "{:?}", h.events());
    assert!(!h.sent_priorities().contains(&0));
}

#[test]
fn switching_to_unicast_leaves_the_group() {
    let mut h = Harness::eth0(&config(vec![spec("a", "eth0", 1, 100, "192.0.2.100")]));
    assert!(h.core.wanted_sockets()[0].join_multicast);
    let mut uni = spec("a", "eth0", 1, 100, "192.0.2.100");
    uni.config.unicast_peers = vec![ip("192.0.2.2")];
    let plan = h.core.plan_reload(config(vec![uni])).unwrap();
    assert!(
        !plan.sockets()[0].join_multicast,
        "a socket without the group"
    );
    let key = plan.sockets()[0].key;
    h.core.commit_reload(
        h.now,
        plan,
        vec![(
            key,
            SocketReport::Opened {
                ifindex: 2,
                join_multicast: false,
            },
        )],
    );
    h.pump();
    assert!(!h.core.wanted_sockets()[0].join_multicast);
    assert_eq!(h.state("a"), State::Backup);
    assert_eq!(h.status("a").unbound, None);
}

#[test]
fn the_flight_record_replays_to_the_same_transitions() {
    // Two instances in a sync group plus one alone; adverts, a link going
    // down and up, a tracked object, maintenance, a reload, a stop: every
    // transition comes back from the inputs alone.
    let mut a = spec("A", "eth0", 1, 100, "192.0.2.101");
    a.tracks.push((TrackId(7), TrackConfig::weight(-60), true));
    let b = spec("B", "eth0", 2, 100, "192.0.2.102");
    let c = spec("C", "eth0", 3, 150, "192.0.2.103");
    let mut cfg = config(vec![a, b, c.clone()]);
    cfg.sync_groups = vec![vec!["A".into(), "B".into()]];
    let mut h = Harness::eth0(&cfg);
    h.become_master("A");
    h.advert("eth0", "192.0.2.9", 3, 200, &["192.0.2.103"]);
    h.advance(h.now + Duration::from_millis(50));
    h.core
        .set_track(h.now, &TrackKey::User(TrackId(7)), false)
        .expect("A tracks it");
    h.pump();
    h.advert("eth0", "192.0.2.9", 1, 90, &["192.0.2.101"]);
    h.advance(h.now + Duration::from_millis(200));
    h.event(LinkEvent::Down(link(2, "eth0", false)));
    h.advance(h.now + Duration::from_millis(100));
    h.event(LinkEvent::Up(link(2, "eth0", true)));
    h.advance(h.now + Duration::from_millis(500));
    h.core
        .set_maintenance(h.now, &["C".to_owned()], true)
        .unwrap();
    h.pump();
    h.advance(h.now + Duration::from_millis(500));
    let mut c2 = c;
    c2.config.priority = Priority::new(120);
    let plan = h.core.plan_reload(config(vec![c2])).unwrap();
    h.core.commit_reload(h.now, plan, Vec::new());
    h.pump();
    h.advance(h.now + Duration::from_millis(500));
    h.core.shutdown(h.now);
    h.pump();

    let record = h.core.flight_record();
    assert_eq!(record.dropped, 0);
    let replay = record::replay(&record.records);
    assert!(replay.refused.is_empty(), "{replay:?}");
    assert!(replay.recorded.len() >= 8, "{:?}", replay.recorded);
    assert_eq!(replay.recorded, replay.replayed);
    assert!(replay.matches(), "timers: {:?}", replay.timer_mismatches);
    // And they are the driver's own events, in order.
    let names = ["A", "B", "C"];
    let from_record: Vec<(String, State, State)> = replay
        .recorded
        .iter()
        .map(|t| (names[t.id.0].to_owned(), t.from, t.to))
        .collect();
    assert_eq!(from_record, h.events());
}

#[test]
fn accepted_adverts_give_intervals_down_timer_margins_and_dual_masters() {
    let cfg = config(vec![spec("A", "eth0", 1, 100, "192.0.2.101")]);
    let mut h = Harness::eth0(&cfg);
    // Backup: a better master every 100 ms; Master_Down_Interval is
    // 300 ms + 61 ms, so each comes about 261 ms before the timer.
    for _ in 0..4 {
        h.advert("eth0", "192.0.2.9", 1, 200, &["192.0.2.101"]);
        h.advance(h.now + Duration::from_millis(100));
    }
    let w = h.status("A").adverts;
    assert_eq!(w.intervals.count(), 3);
    assert_eq!(w.intervals.sum_ns, 300_000_000);
    assert_eq!(w.down_timer_margins.count(), 4);
    // The first came at start-up, 361 ms before its timer; the next ones
    // 261 ms before theirs.
    assert_eq!(
        w.min_down_timer_margin,
        Some(Duration::from_nanos(260_937_500))
    );
    assert_eq!(w.dual_master, 0);
    // Master, and a lower-priority master still advertising: dual master.
    h.advance(h.now + Duration::from_millis(500));
    assert_eq!(h.state("A"), State::Master);
    h.advert("eth0", "192.0.2.9", 1, 50, &["192.0.2.101"]);
    assert_eq!(h.status("A").adverts.dual_master, 1);
}

#[test]
fn peers_and_the_masters_priority_come_from_accepted_adverts() {
    let cfg = config(vec![spec("A", "eth0", 1, 100, "192.0.2.101")]);
    let mut h = Harness::eth0(&cfg);
    for _ in 0..3 {
        h.advert("eth0", "192.0.2.9", 1, 200, &["192.0.2.101"]);
        h.advance(h.now + Duration::from_millis(100));
    }
    // Wrong VRID: not this instance's, not a peer.
    h.advert("eth0", "192.0.2.8", 2, 250, &["192.0.2.101"]);
    let s = h.status("A");
    assert_eq!(s.state, State::Backup);
    assert_eq!(s.master, Some(ip("192.0.2.9")));
    assert_eq!(s.master_priority, Some(Priority::new(200)));
    assert_eq!(s.peers.len(), 1, "{:?}", s.peers);
    let p = &s.peers[0];
    assert_eq!(p.address, ip("192.0.2.9"));
    assert_eq!((p.priority, p.adverts), (Priority::new(200), 3));
    assert_eq!(p.advert_interval, Duration::from_millis(100));
    assert_eq!(p.last_advert, Duration::from_millis(200));
    assert!(p.age >= Duration::from_millis(100), "{p:?}");
    // The master resigns: priority 0 is recorded; A takes over and is
    // its own master.
    h.advert("eth0", "192.0.2.9", 1, 0, &["192.0.2.101"]);
    assert_eq!(h.status("A").peers[0].priority, Priority::new(0));
    h.advance(h.now + Duration::from_secs(1));
    let s = h.status("A");
    assert_eq!(s.state, State::Master);
    assert_eq!(s.master_priority, Some(Priority::new(100)));
    // Long silent: forgotten.
    h.advance(h.now + super::PEER_EXPIRY + Duration::from_secs(1));
    assert!(h.status("A").peers.is_empty());
}

#[test]
fn announcements_are_counted_per_instance() {
    let cfg = config(vec![spec("A", "eth0", 1, 100, "192.0.2.101")]);
    let mut h = Harness::eth0(&cfg);
    h.core.handle_announced("A", 2, 1);
    h.core.handle_announced("A", 1, 0);
    h.core.handle_announced("nope", 5, 5);
    let s = h.status("A");
    assert_eq!((s.garps_sent, s.nas_sent), (3, 1));
}

/// The VRIDs of the advertisements in a send.
fn vrids(b: &SendBatch) -> Vec<u8> {
    b.iter().map(|(p, _)| p[1]).collect()
}

#[test]
fn a_chain_of_takeovers_never_fires_early_and_those_due_together_leave_in_one_batch_first() {
    // RFC 5798 6.4.2: each backup takes over when its own Master_Down_Timer
    // fires, never before. A dead master's last advertisements arrived a
    // few microseconds apart, so its backups' deadlines are as close: a
    // wake that finds several due sends all their advertisements in one
    // batch, ahead of every address change, announcement and event.
    let specs = (1..=4)
        .map(|n| spec(&format!("v{n}"), "eth0", n, 100, &format!("192.0.2.10{n}")))
        .collect();
    let mut h = Harness::eth0(&config(specs));
    let us = |n: u64| Timestamp::from(Duration::from_micros(n));
    // The master's last advertisements: VRID n heard at 200 ms + 10n us.
    for n in 1..=4u8 {
        h.now = us(200_000 + 10 * u64::from(n));
        h.advert("eth0", "192.0.2.2", n, 200, &[&format!("192.0.2.10{n}")]);
    }
    let mdi = h
        .core
        .router()
        .instances()
        .next()
        .map(|(_, i)| i.master_down_interval())
        .unwrap();
    let deadline = |n: u64| us(200_000 + 10 * n) + mdi;
    assert_eq!(
        h.core.poll_timeout(),
        Some(CoreDeadline {
            at: deadline(1),
            takeover: true
        })
    );
    h.clear();
    // A nanosecond early: nothing.
    let early = deadline(1) - Duration::from_nanos(1);
    h.now = early;
    h.core.handle_timeout(early);
    h.pump();
    assert!(h.log.is_empty(), "{:?}", h.log);
    assert!((1..=4).all(|n| h.state(&format!("v{n}")) == State::Backup));
    // On time: the first alone, its advertisement before its address.
    h.now = deadline(1);
    h.core.handle_timeout(deadline(1));
    h.pump();
    let sends: Vec<Vec<u8>> = h
        .log
        .iter()
        .filter_map(|e| match e {
            Effect::Send(b) => Some(vrids(b)),
            _ => None,
        })
        .collect();
    assert_eq!(sends, vec![vec![1]]);
    assert!(
        matches!(h.log.first(), Some(Effect::Send(_))),
        "{:?}",
        h.log
    );
    assert_eq!(h.adds(), vec![ip("192.0.2.101")]);
    assert_eq!(h.state("v1"), State::Master);
    assert_eq!(h.state("v2"), State::Backup);
    // A late wake, after the second and third deadlines and before the
    // fourth: those two together, in one batch before anything else; the
    // fourth waits for its own deadline.
    h.clear();
    let late = deadline(3) + Duration::from_micros(5);
    assert!(late < deadline(4));
    h.now = late;
    h.core.handle_timeout(late);
    h.pump();
    let Some(Effect::Send(first)) = h.log.first() else {
        panic!("the advertisements first: {:?}", h.log);
    };
    assert_eq!(vrids(first), vec![2, 3], "in deadline order, one batch");
    assert_eq!(
        h.log
            .iter()
            .filter(|e| matches!(e, Effect::Send(_)))
            .count(),
        1
    );
    assert_eq!(h.adds(), vec![ip("192.0.2.102"), ip("192.0.2.103")]);
    assert_eq!(
        h.events(),
        vec![
            ("v2".to_owned(), State::Backup, State::Master),
            ("v3".to_owned(), State::Backup, State::Master)
        ]
    );
    assert_eq!(h.state("v4"), State::Backup);
    assert_eq!(
        h.core.poll_timeout(),
        Some(CoreDeadline {
            at: deadline(4),
            takeover: true
        })
    );
    h.clear();
    h.core.handle_timeout(deadline(4) - Duration::from_nanos(1));
    h.pump();
    assert!(h.log.is_empty(), "{:?}", h.log);
    h.core.handle_timeout(deadline(4));
    h.pump();
    assert!(matches!(h.log.first(), Some(Effect::Send(b)) if vrids(b) == vec![4]));
    assert_eq!(h.state("v4"), State::Master);
}

/// Four backups, v1..v4 (192.0.2.101..104), of a master (192.0.2.2,
/// priority 200) whose last advertisement for VRID n came at 200 ms +
/// 10n us; the log is clear. Also gives VRID n's takeover deadline.
fn four_backups_of_a_dead_master() -> (Harness, impl Fn(u64) -> Timestamp) {
    let specs = (1..=4)
        .map(|n| spec(&format!("v{n}"), "eth0", n, 100, &format!("192.0.2.10{n}")))
        .collect();
    let mut h = Harness::eth0(&config(specs));
    let us = |n: u64| Timestamp::from(Duration::from_micros(n));
    for n in 1..=4u8 {
        h.now = us(200_000 + 10 * u64::from(n));
        h.advert("eth0", "192.0.2.2", n, 200, &[&format!("192.0.2.10{n}")]);
    }
    h.pump();
    h.clear();
    let mdi = h
        .core
        .router()
        .instances()
        .next()
        .map(|(_, i)| i.master_down_interval())
        .unwrap();
    let deadline = move |n: u64| Timestamp::from(Duration::from_micros(200_000 + 10 * n)) + mdi;
    (h, deadline)
}

#[test]
fn a_chain_of_takeovers_asks_for_one_write_of_the_record() {
    // The record is read when the write is carried out: four takeovers
    // handled before the shell polls ask for it once, and the write then
    // holds the four addresses.
    let (mut h, deadline) = four_backups_of_a_dead_master();
    for n in 1..=4u64 {
        let at = deadline(n);
        h.now = at;
        h.core.handle_timeout(at);
    }
    h.pump();
    let writes = h
        .log
        .iter()
        .filter(|e| matches!(e, Effect::PersistOwned))
        .count();
    assert_eq!(writes, 1, "{:?}", h.log);
    assert!((1..=4).all(|n| h.state(&format!("v{n}")) == State::Master));
    let mut recorded: Vec<IpAddr> = h
        .persisted
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|o| o.addr)
        .collect();
    recorded.sort();
    let want: Vec<IpAddr> = (1..=4).map(|n| ip(&format!("192.0.2.10{n}"))).collect();
    assert_eq!(recorded, want);
}

#[test]
fn a_hurried_chain_makes_only_advertisements_then_the_rest_in_order() {
    // While hurried, takeovers make their advertisements and nothing
    // else; an advertisement heard meanwhile (v2's master is back) is
    // handled too. When the hurry ends, what was put off is made in the
    // order it happened: v2's address is never added (it is Backup again
    // by then), its two transitions are reported in order.
    let (mut h, deadline) = four_backups_of_a_dead_master();
    h.core.set_hurry(deadline(1), true);
    for n in 1..=4u64 {
        h.now = deadline(n);
        h.core.handle_timeout(deadline(n));
        if n == 2 {
            h.now = deadline(2) + Duration::from_micros(1);
            h.advert("eth0", "192.0.2.2", 2, 200, &["192.0.2.102"]);
        }
    }
    h.pump();
    assert!(
        h.log.iter().all(|e| matches!(e, Effect::Send(_))),
        "only advertisements while hurried: {:?}",
        h.log
    );
    let sent: Vec<Vec<u8>> = h
        .log
        .iter()
        .filter_map(|e| match e {
            Effect::Send(b) => Some(vrids(b)),
            _ => None,
        })
        .collect();
    // v2 steps down with one last advertisement of its own (see
    // vrrp-core's master_receives).
    assert_eq!(sent, vec![vec![1], vec![2], vec![2], vec![3], vec![4]]);
    assert_eq!(h.state("v2"), State::Backup);
    h.clear();
    h.now = deadline(4) + Duration::from_micros(5);
    h.core.set_hurry(h.now, false);
    h.pump();
    assert_eq!(
        h.adds(),
        vec![ip("192.0.2.101"), ip("192.0.2.103"), ip("192.0.2.104")]
    );
    let events: Vec<(String, State)> = h.events().into_iter().map(|(n, _, to)| (n, to)).collect();
    assert_eq!(
        events,
        vec![
            ("v1".to_owned(), State::Master),
            ("v2".to_owned(), State::Master),
            ("v2".to_owned(), State::Backup),
            ("v3".to_owned(), State::Master),
            ("v4".to_owned(), State::Master),
        ]
    );
    assert!(
        !h.log.iter().any(|e| matches!(e, Effect::Send(_))),
        "{:?}",
        h.log
    );
    // The flight recorder dated each transition by the input that caused
    // it, not by the end of the hurry: a replay makes the same ones (the
    // four starts and the five transitions above).
    let replay = record::replay(&h.core.flight_record().records);
    assert_eq!(replay.recorded.len(), 4 + 5, "{:?}", replay.recorded);
    assert_eq!(replay.recorded, replay.replayed);
    assert!(replay.matches(), "timers: {:?}", replay.timer_mismatches);
}
