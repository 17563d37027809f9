//! Routes and policy rules owned and healed like virtual addresses, in
//! simulated time against a fake kernel: installed while master and
//! removed otherwise, put back (and counted) when an operator deletes
//! them, someone else's left alone, leftovers of an earlier run removed,
//! failures retried, static ones kept while the driver runs. Also the
//! excluded virtual addresses: added, removed and announced with the
//! others, never advertised.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use vrrp_core::wire::{AdvertRepr, IpPair, MULTICAST_V4};
use vrrp_core::{
    Auth, Centisecs, ChecksumMode, InstanceConfig, Priority, RxMeta, State, Timestamp, Version,
    VirtualAddress, Vrid,
};

use super::*;
use crate::addr::AddrScope;
use crate::driver::Vip;
use crate::route::{KernelRoute, Route, RouteEvent, RouteKey};
use crate::rule::{Rule, RuleEvent};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn route(text: &str) -> Route {
    text.parse().unwrap()
}

/// VI_1 on eth0, priority 100, VIP 192.0.2.100/24, 100 ms adverts, with
/// `routes`.
fn spec(routes: &[&str]) -> InstanceSpec {
    let config = InstanceConfig::new(Vrid::new(1).unwrap(), Version::V3, ip("0.0.0.0"))
        .with_priority(Priority::new(100))
        .with_interval(Centisecs::new(10))
        .with_address(VirtualAddress {
            addr: ip("192.0.2.100"),
            prefix_len: 24,
        });
    let mut spec = InstanceSpec::new("VI_1", "eth0", config);
    spec.routes = routes.iter().map(|r| route(r)).collect();
    spec
}

/// A fake shell with a fake kernel route table.
struct Net {
    core: DriverCore,
    now: Timestamp,
    kernel: BTreeMap<RouteKey, KernelRoute>,
    /// Route changes, in order: (add, route text).
    ops: Vec<(bool, String)>,
    /// Effects in order, by kind: 'a' address add, 'r' route add.
    order: String,
    fail_route_adds: u32,
    /// When each route add was tried.
    add_times: Vec<Timestamp>,
    persisted: Option<Vec<Route>>,
    /// The fake kernel's rules.
    rules: Vec<Rule>,
    /// Address changes: (add, address).
    addr_ops: Vec<(bool, IpAddr)>,
    /// The address count of every advertisement sent.
    advert_counts: Vec<u8>,
    /// Every address announced.
    announced: Vec<IpAddr>,
    /// Route adds held back (not answered) while set.
    hold_route_adds: bool,
    held_route_adds: Vec<RouteOp>,
}

impl Net {
    fn new(config: &DriverConfig, owned_routes: Vec<Route>, kernel: Vec<&str>) -> Net {
        let mut core = DriverCore::new(config, Vec::new()).unwrap();
        core.restore_owned_routes(owned_routes);
        let mut net = Net {
            core,
            now: Timestamp::ZERO,
            kernel: BTreeMap::new(),
            ops: Vec::new(),
            order: String::new(),
            fail_route_adds: 0,
            add_times: Vec::new(),
            persisted: None,
            rules: Vec::new(),
            addr_ops: Vec::new(),
            advert_counts: Vec::new(),
            announced: Vec::new(),
            hold_route_adds: false,
            held_route_adds: Vec::new(),
        };
        for text in kernel {
            let (r, protocol) = match text.strip_prefix("foreign ") {
                Some(t) => (route(t), 4),
                None => {
                    let r = route(text);
                    let p = r.protocol;
                    (r, p)
                }
            };
            let mut k = kernel_route(&r, Some(2));
            k.protocol = protocol;
            net.kernel.insert(k.key, k);
        }
        let eth0 = LinkInfo {
            ifindex: 2,
            name: "eth0".into(),
            mac: Some([2, 0, 0, 0, 0, 2]),
            flags: 0x41,
            operstate: crate::link::OperState::Up,
            mtu: Some(1500),
        };
        let primary = IfAddr {
            ifindex: 2,
            addr: ip("192.0.2.1"),
            prefix_len: 24,
            label: None,
            scope: AddrScope::Universe,
            flags: 0,
            broadcast: None,
        };
        net.core
            .handle_dump(Timestamp::ZERO, vec![eth0], vec![primary]);
        let dump = net.kernel.values().cloned().collect();
        net.core
            .handle_route_dump(Timestamp::ZERO, Timestamp::ZERO, dump);
        net.pump();
        net.core.start(Timestamp::ZERO);
        net.pump();
        net
    }

    fn pump(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Sockets(wanted) => {
                    for s in wanted {
                        let report = SocketReport::Opened {
                            ifindex: s.ifindex,
                            join_multicast: s.join_multicast,
                        };
                        self.core.handle_socket_report(self.now, s.key, report);
                    }
                }
                Effect::AddAddress(op) => {
                    self.order.push('a');
                    self.addr_ops.push((true, op.address.addr));
                    self.core
                        .handle_address_result(self.now, &op, true, Ok(true));
                }
                Effect::RemoveAddress(op) => {
                    self.order.push('d');
                    self.addr_ops.push((false, op.address.addr));
                    self.core
                        .handle_address_result(self.now, &op, false, Ok(true));
                }
                Effect::AddRoute(op) if self.hold_route_adds => self.held_route_adds.push(op),
                Effect::AddRoute(op) => {
                    self.order.push('r');
                    self.ops.push((true, op.route.to_string()));
                    self.add_times.push(self.now);
                    let key = op.route.key();
                    let result = if self.fail_route_adds > 0 {
                        self.fail_route_adds -= 1;
                        Err("ENETUNREACH".to_owned())
                    } else {
                        match self.kernel.entry(key) {
                            std::collections::btree_map::Entry::Occupied(_) => Ok(false),
                            std::collections::btree_map::Entry::Vacant(v) => {
                                v.insert(kernel_route(&op.route, op.ifindex));
                                Ok(true)
                            }
                        }
                    };
                    self.core.handle_route_result(self.now, &op, true, result);
                }
                Effect::RemoveRoute(op) => {
                    self.order.push('x');
                    self.ops.push((false, op.route.to_string()));
                    let key = op.route.key();
                    // The kernel removes only a route matching the
                    // protocol the driver names.
                    let ours = self
                        .kernel
                        .get(&key)
                        .is_some_and(|k| k.protocol == op.route.protocol);
                    if ours {
                        self.kernel.remove(&key);
                    }
                    self.core
                        .handle_route_result(self.now, &op, false, Ok(ours));
                }
                Effect::PersistRoutes(list) => self.persisted = Some(list),
                Effect::Send(batch) => {
                    // VRRPv3: the fourth byte is the address count.
                    self.advert_counts
                        .extend(batch.iter().filter_map(|(p, _)| p.get(3).copied()));
                }
                Effect::Announce(a) => self.announced.extend(a.addresses),
                Effect::AddRule(rule) => {
                    self.ops.push((true, rule.to_string()));
                    let exists = self.rules.iter().any(|r| rule.key().covers(&r.key()));
                    if !exists {
                        let mut added = rule.clone();
                        // The kernel picks a priority when none is given.
                        added.priority = added.priority.or(Some(32765));
                        self.rules.push(added);
                    }
                    self.core
                        .handle_rule_result(self.now, &rule, true, Ok(!exists));
                }
                Effect::RemoveRule(rule) => {
                    self.ops.push((false, rule.to_string()));
                    let before = self.rules.len();
                    let key = rule.key();
                    if let Some(i) = self
                        .rules
                        .iter()
                        .position(|r| key.covers(&r.key()) && r.protocol == rule.protocol)
                    {
                        self.rules.remove(i);
                    }
                    let removed = self.rules.len() < before;
                    self.core
                        .handle_rule_result(self.now, &rule, false, Ok(removed));
                }
                _ => {}
            }
        }
    }

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

    fn state(&self) -> State {
        self.core.snapshot().instances[0].state
    }

    fn has(&self, text: &str) -> bool {
        self.kernel.contains_key(&route(text).key())
    }

    /// A route notification read now (nothing changes in the fake kernel).
    fn route_notice(&mut self, event: RouteEvent) {
        self.core.handle_route_events(self.now, vec![event]);
        self.pump();
    }

    /// A rule notification read now (nothing changes in the fake kernel).
    fn rule_notice(&mut self, event: RuleEvent) {
        self.core.handle_rule_events(self.now, vec![event]);
        self.pump();
    }

    /// An operator's `ip route del`, as notified.
    fn operator_deletes(&mut self, text: &str) {
        let key = route(text).key();
        if let Some(k) = self.kernel.remove(&key) {
            self.route_notice(RouteEvent::Removed(k));
        }
    }

    fn advert(&mut self, prio: u8) {
        let repr = AdvertRepr {
            version: Version::V3,
            vrid: Vrid::new(1).unwrap(),
            priority: Priority::new(prio),
            interval: Centisecs::new(10),
            auth: Auth::None,
            addresses: [ip("192.0.2.100")].into_iter(),
        };
        let dst = IpAddr::V4(MULTICAST_V4);
        let mut buf = [0u8; 64];
        let src = ip("192.0.2.2");
        let len = repr
            .emit(&mut buf, &IpPair { src, dst }, ChecksumMode::Rfc)
            .unwrap();
        let meta = RxMeta {
            src,
            dst,
            ttl: Some(255),
        };
        let key = self.core.wanted_sockets()[0].key;
        self.core
            .handle_packet(self.now, key, self.now, &meta, &buf[..len]);
        self.pump();
    }
}

fn kernel_route(r: &Route, ifindex: Option<u32>) -> KernelRoute {
    KernelRoute {
        key: r.key(),
        gateway: r.gateway,
        ifindex,
        protocol: r.protocol,
        kind: r.kind,
    }
}

const EXPORT: &str = "192.0.2.100/32 dev eth0 table 198 proto 248";
const VIA: &str = "198.51.100.0/24 via 192.0.2.254 dev eth0 table 100 metric 5";

#[test]
fn routes_follow_mastership_after_the_addresses() {
    let mut net = Net::new(&DriverConfig::new([spec(&[EXPORT, VIA])]), vec![], vec![]);
    assert_eq!(net.state(), State::Backup);
    assert!(net.ops.is_empty(), "no route while backup: {:?}", net.ops);
    net.advance(Timestamp::from_millis(400));
    assert_eq!(net.state(), State::Master);
    assert!(net.has(EXPORT) && net.has(VIA));
    // The address first: a route may use it as its source or next hop.
    assert!(net.order.starts_with("arr"), "{}", net.order);
    assert_eq!(net.persisted.as_ref().map(Vec::len), Some(2));
    // A higher priority master appears: the routes go.
    net.advert(200);
    assert_eq!(net.state(), State::Backup);
    assert!(!net.has(EXPORT) && !net.has(VIA));
    assert_eq!(net.persisted.as_ref().map(Vec::len), Some(0));
}

#[test]
fn a_route_deleted_by_an_operator_is_put_back_and_counted() {
    let mut net = Net::new(&DriverConfig::new([spec(&[EXPORT])]), vec![], vec![]);
    net.advance(Timestamp::from_millis(400));
    assert!(net.has(EXPORT));
    net.operator_deletes(EXPORT);
    assert!(net.has(EXPORT), "repaired at once");
    assert_eq!(net.core.snapshot().routes_restored, 1);
    // Not counted again while it stays.
    net.advance(Timestamp::from_millis(2000));
    assert_eq!(net.core.snapshot().routes_restored, 1);
}

#[test]
fn routes_of_someone_else_are_kept() {
    // One in the same table with another destination, one with the very
    // identity of a wanted route.
    let other = "203.0.113.0/24 dev eth0 table 198";
    let clash = "198.51.100.0/24 via 192.0.2.253 dev eth0 table 100 metric 5";
    let mut net = Net::new(
        &DriverConfig::new([spec(&[EXPORT, VIA])]),
        vec![],
        vec![&format!("foreign {other}"), &format!("foreign {clash}")],
    );
    net.advance(Timestamp::from_millis(400));
    assert_eq!(net.state(), State::Master);
    assert!(net.has(EXPORT));
    assert!(
        !net.ops
            .iter()
            .any(|(_, r)| r.starts_with("198.51.100.0/24")),
        "the clashing route is not replaced: {:?}",
        net.ops
    );
    assert_eq!(net.core.snapshot().foreign_routes, 1);
    net.advert(200);
    net.core.shutdown(net.now);
    net.pump();
    assert!(net.has(other) && net.has(clash), "never removed");
    assert!(!net.has(EXPORT));
    assert!(
        net.ops
            .iter()
            .all(|(add, r)| *add || r.starts_with("192.0.2.100/32"))
    );
}

#[test]
fn leftovers_of_an_earlier_run_are_removed_at_start() {
    let left = "203.0.113.0/24 via 192.0.2.254 table 100";
    let net = Net::new(
        &DriverConfig::new([spec(&[EXPORT])]),
        vec![route(left), route(EXPORT)],
        vec![left, EXPORT],
    );
    assert!(!net.has(left) && !net.has(EXPORT), "backup: neither wanted");
    assert_eq!(net.core.snapshot().route_leftovers_removed, 2);
    assert!(net.core.owned_routes().is_empty());
}

#[test]
fn only_the_routes_it_may_want_or_owns_are_followed() {
    // A full table in the table of the virtual route (main, as keepalived
    // users write it), a route of someone else's with its very identity,
    // and a leftover of an earlier run in another table.
    let vr = "198.51.100.0/24 via 192.0.2.254 dev eth0";
    let clash = "198.51.100.0/24 via 192.0.2.253 dev eth0";
    let left = "203.0.113.0/24 via 192.0.2.254 table 7";
    let full: Vec<String> = (0..4096)
        .map(|i| format!("foreign 198.18.{}.{}/32 dev eth0", i / 256, i % 256))
        .collect();
    let mut kernel: Vec<&str> = full.iter().map(String::as_str).collect();
    let clash_text = format!("foreign {clash}");
    kernel.extend([clash_text.as_str(), left]);
    let mut net = Net::new(&DriverConfig::new([spec(&[vr])]), vec![route(left)], kernel);
    let followed = net.core.followed_routes();
    assert!(
        followed.contains(&route(vr).key()),
        "the backup's route is followed"
    );
    assert!(
        followed.contains(&route(left).key()),
        "the leftover, while its removal's echo may come"
    );
    assert_eq!(followed.len(), 2, "nothing else: {followed:?}");
    assert!(!net.has(left), "the leftover removed");
    // A notice of someone else's route in the same table is of no
    // concern; the clash, read in the dump, keeps ours out when master.
    net.route_notice(RouteEvent::Added(kernel_route(
        &route("198.18.200.1/32 dev eth0"),
        Some(2),
    )));
    net.advance(Timestamp::from_millis(400));
    assert_eq!(net.state(), State::Master);
    assert!(
        !net.ops
            .iter()
            .any(|(add, r)| *add && r.starts_with("198.51.100.0/24")),
        "someone else's route with its identity is left in place: {:?}",
        net.ops
    );
    assert_eq!(net.core.snapshot().foreign_routes, 1);
    // Without the clash, the route is added as master.
    net.operator_deletes(clash);
    net.advance(Timestamp::from_millis(600));
    assert!(net.has(vr), "added once the identity is free");
}

#[test]
fn a_failed_add_is_retried_with_back_off() {
    let mut net = Net::new(&DriverConfig::new([spec(&[VIA])]), vec![], vec![]);
    net.fail_route_adds = 2;
    net.advance(Timestamp::from_millis(1000));
    assert_eq!(net.state(), State::Master);
    assert!(net.has(VIA));
    assert_eq!(net.core.snapshot().route_errors, 2);
    let gaps: Vec<u128> = net
        .add_times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps, vec![100, 200], "tried at {:?}", net.add_times);
}

#[test]
fn static_routes_stay_while_the_driver_runs() {
    let fixed = "192.0.2.0/25 dev eth0 table 200";
    let mut config = DriverConfig::new([spec(&[])]);
    config.static_routes = vec![route(fixed)];
    let mut net = Net::new(&config, vec![], vec![]);
    assert_eq!(net.state(), State::Backup);
    assert!(net.has(fixed), "installed at start, whatever the state");
    net.operator_deletes(fixed);
    assert!(net.has(fixed));
    assert_eq!(net.core.snapshot().routes_restored, 1);
    net.core.shutdown(net.now);
    net.pump();
    assert!(!net.has(fixed), "removed when the driver stops");
}

#[test]
fn gated_routes_follow_their_owner_whatever_the_state() {
    let vs = "192.0.2.10/32 dev eth0 table 198 proto 248 scope 253";
    let mut net = Net::new(&DriverConfig::new([spec(&[])]), vec![], vec![]);
    assert_eq!(net.state(), State::Backup);
    net.core.set_gated_routes(net.now, vec![route(vs)]);
    net.pump();
    assert!(net.has(vs), "given: installed while Backup");
    assert!(
        net.core.followed_routes().contains(&route(vs).key()),
        "its identity followed"
    );
    assert_eq!(
        net.persisted
            .as_ref()
            .map(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>()),
        Some(vec![vs.to_owned()]),
        "recorded, so a crash leaves nothing behind the next run"
    );
    net.operator_deletes(vs);
    assert!(net.has(vs), "put back");
    assert_eq!(net.core.snapshot().routes_restored, 1);
    net.core.set_gated_routes(net.now, vec![]);
    net.pump();
    assert!(!net.has(vs), "no longer given: removed");
    net.core.set_gated_routes(net.now, vec![route(vs)]);
    net.pump();
    assert!(net.has(vs));
    net.core.shutdown(net.now);
    net.pump();
    assert!(!net.has(vs), "removed when the driver stops");
}

fn rule(text: &str) -> Rule {
    text.parse().unwrap()
}

#[test]
fn rules_follow_mastership_and_are_put_back() {
    let with_prio = "from 192.0.2.0/24 table 100 priority 100";
    let without = "to 198.51.100.0/24 table 100";
    let mut s = spec(&[]);
    s.rules = vec![rule(with_prio), rule(without)];
    let foreign = Rule {
        protocol: 4,
        ..rule("from 203.0.113.0/24 table 5 priority 50")
    };
    let mut net = Net::new(&DriverConfig::new([s]), vec![], vec![]);
    net.rules.push(foreign.clone());
    assert!(net.ops.is_empty());
    net.advance(Timestamp::from_millis(400));
    assert_eq!(net.state(), State::Master);
    assert_eq!(net.rules.len(), 3, "{:?}", net.rules);
    // The kernel chose the priority of the second: still ours, matched.
    let kernel_rule = net
        .rules
        .iter()
        .find(|r| r.priority == Some(32765))
        .cloned();
    let kernel_rule = kernel_rule.unwrap();
    net.rules.retain(|r| r != &kernel_rule);
    net.rule_notice(RuleEvent::Removed(kernel_rule));
    assert_eq!(net.rules.len(), 3, "put back: {:?}", net.rules);
    assert_eq!(net.core.snapshot().rules_restored, 1);
    // Backup: ours go, the foreign one stays.
    net.advert(200);
    assert_eq!(net.rules, vec![foreign]);
    assert!(net.core.owned_rules().is_empty());
}

#[test]
fn static_rules_stay_while_the_driver_runs() {
    let mut config = DriverConfig::new([spec(&[])]);
    config.static_rules = vec![rule("fwmark 0x10 table 10 priority 10")];
    let mut net = Net::new(&config, vec![], vec![]);
    assert_eq!(net.rules.len(), 1);
    net.core.shutdown(net.now);
    net.pump();
    assert!(net.rules.is_empty(), "removed when the driver stops");
}

#[test]
fn excluded_addresses_follow_the_master_but_stay_out_of_adverts() {
    let mut s = spec(&[]);
    let v4 = VirtualAddress {
        addr: ip("192.0.2.100"),
        prefix_len: 24,
    };
    // Of the other family: only an excluded address may be.
    let v6 = VirtualAddress {
        addr: ip("2001:db8::100"),
        prefix_len: 64,
    };
    s.vips = vec![
        Vip::new(v4),
        Vip {
            excluded: true,
            ..Vip::new(v6)
        },
    ];
    let mut net = Net::new(&DriverConfig::new([s]), vec![], vec![]);
    net.advance(Timestamp::from_millis(400));
    assert_eq!(net.state(), State::Master);
    assert_eq!(net.addr_ops, [(true, v4.addr), (true, v6.addr)]);
    assert!(!net.advert_counts.is_empty());
    assert!(
        net.advert_counts.iter().all(|c| *c == 1),
        "{:?}",
        net.advert_counts
    );
    assert!(
        net.announced.contains(&v6.addr),
        "announced: {:?}",
        net.announced
    );
    net.advert(200);
    assert_eq!(net.state(), State::Backup);
    assert!(
        net.addr_ops.contains(&(false, v6.addr)),
        "{:?}",
        net.addr_ops
    );
}

/// Answers and notifications come on two sockets: the notices of our
/// removal (stepping down) and of our add (master again) can both be read
/// after their answers. They are our changes' echoes, not a removal from
/// outside: nothing is put back, counted, or lost as someone else's.
#[test]
fn late_notices_of_our_own_route_changes_change_nothing() {
    let mut net = Net::new(&DriverConfig::new([spec(&[EXPORT])]), vec![], vec![]);
    net.advance(Timestamp::from_millis(400));
    assert_eq!(net.state(), State::Master);
    let ours = net
        .kernel
        .get(&route(EXPORT).key())
        .cloned()
        .expect("added");
    // Its notice, read at once.
    net.route_notice(RouteEvent::Added(ours.clone()));
    // A better master for a moment: the route goes; then back.
    net.advert(200);
    assert_eq!(net.state(), State::Backup);
    assert!(!net.has(EXPORT));
    net.advance(net.now + Duration::from_millis(400));
    assert_eq!(net.state(), State::Master);
    assert!(net.has(EXPORT));
    let ops = net.ops.len();
    // Only now are the kernel's two notices read, each on its own.
    net.route_notice(RouteEvent::Removed(ours.clone()));
    net.route_notice(RouteEvent::Added(ours));
    assert_eq!(net.ops.len(), ops, "nothing done: {:?}", &net.ops[ops..]);
    assert_eq!(net.core.snapshot().routes_restored, 0);
    assert_eq!(net.core.owned_routes().len(), 1, "still ours");
    // An operator's deletion after that is one.
    net.operator_deletes(EXPORT);
    assert!(net.has(EXPORT));
    assert_eq!(net.core.snapshot().routes_restored, 1);
}

/// The same for a rule written without a priority, whose notices carry
/// the priority the kernel chose.
#[test]
fn late_notices_of_our_own_rule_changes_change_nothing() {
    let mut s = spec(&[]);
    s.rules = vec![rule("to 198.51.100.0/24 table 100")];
    let mut net = Net::new(&DriverConfig::new([s]), vec![], vec![]);
    net.advance(Timestamp::from_millis(400));
    assert_eq!(net.state(), State::Master);
    let ours = net.rules.first().cloned().expect("added");
    assert_eq!(ours.priority, Some(32765));
    net.rule_notice(RuleEvent::Added(ours.clone()));
    net.advert(200);
    assert!(net.rules.is_empty());
    net.advance(net.now + Duration::from_millis(400));
    assert_eq!(net.state(), State::Master);
    assert_eq!(net.rules.len(), 1);
    let ops = net.ops.len();
    net.rule_notice(RuleEvent::Removed(ours.clone()));
    net.rule_notice(RuleEvent::Added(ours));
    assert_eq!(net.ops.len(), ops, "nothing done: {:?}", &net.ops[ops..]);
    assert_eq!(net.core.snapshot().rules_restored, 0);
    assert_eq!(net.core.owned_rules().len(), 1, "still ours");
}

/// Three changes of ours in a row, master, backup, master again, the notice
/// of the first read while the third is out and that of the second after
/// the third's answer: the first notice is the first change's echo (the
/// kernel notifies in order), not the third's, and the second's is
/// outdated by the third.
#[test]
fn an_echo_read_while_a_later_change_is_out_is_the_earlier_ones() {
    let mut net = Net::new(&DriverConfig::new([spec(&[EXPORT])]), vec![], vec![]);
    net.advance(Timestamp::from_millis(400));
    let ours = net
        .kernel
        .get(&route(EXPORT).key())
        .cloned()
        .expect("added");
    net.advert(200);
    assert!(!net.has(EXPORT));
    net.hold_route_adds = true;
    net.advance(net.now + Duration::from_millis(400));
    assert_eq!(net.state(), State::Master);
    assert_eq!(net.held_route_adds.len(), 1, "the third change, out");
    // The first change's notice, read now.
    net.route_notice(RouteEvent::Added(ours.clone()));
    // The third's answer.
    net.hold_route_adds = false;
    let op = net.held_route_adds.pop().expect("held");
    net.kernel
        .insert(op.route.key(), kernel_route(&op.route, op.ifindex));
    net.core.handle_route_result(net.now, &op, true, Ok(true));
    net.pump();
    let ops = net.ops.len();
    // The second's notice, then the third's.
    net.route_notice(RouteEvent::Removed(ours.clone()));
    net.route_notice(RouteEvent::Added(ours));
    assert_eq!(net.ops.len(), ops, "nothing done: {:?}", &net.ops[ops..]);
    assert_eq!(net.core.snapshot().routes_restored, 0);
    assert_eq!(net.core.owned_routes().len(), 1, "still ours");
}
