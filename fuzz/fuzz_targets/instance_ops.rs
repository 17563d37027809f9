//! Random operation sequences on a `vrrp_core::Router` of five instances:
//! VRRPv2 with and without a password, a VRRPv3 sync group, possible
//! address owners (priority 255, discarding adverts as RFC 5798 7.1 says,
//! or processing them as keepalived 2.2.7 did), an IPv6 instance, unicast
//! or multicast, varied preempt and advertisement settings; fed adverts
//! (well formed or not, from owners, at priority 0, with wrong TTL,
//! interval, addresses or password), raw bytes, early and repeated
//! timeouts, tracked objects (state, tracking on and off), priorities,
//! in-place reconfiguration (addresses, priority, timers), removal,
//! shutdown and restart. After every step:
//! - no panic; every advert an instance asks for encodes and decodes back
//!   to its VRID and priority;
//! - each received packet is counted exactly once: by the router when no
//!   instance takes it, else as accepted or as one drop of the instance,
//!   under the reason returned;
//! - every counter only grows;
//! - the outputs tell the whole story: `StateChanged` and `PriorityChanged`
//!   chain from the previous value to the current one; the addresses
//!   installed are exactly the configured ones while Master and none
//!   otherwise (added only in Master, removed in Master only when a
//!   reconfiguration drops them); announcements only of installed
//!   addresses; adverts only from a Master, priority 0 only right after
//!   leaving Master for Initialize or Fault;
//! - Fault exactly when a weight-0 tracked object of the instance, or of a
//!   member of its sync group, is down (`in_fault` agrees);
//! - timers: none in Initialize or Fault, always one in Master, a Backup
//!   without one only while another member of its sync group still has
//!   one or is not started (so removing a member never strands the
//!   others); deadlines after
//!   `handle_timeout(now)` lie after `now`; `poll_deadline` agrees with
//!   `poll_timeout`; a repeated or early `handle_timeout` does nothing
//!   (house rule 3);
//! - an address owner that discards adverts (`owner_ignore_adverts`, the
//!   default) and is in no sync group never leaves Master on a packet
//!   (reliability review V1);
//! - a priority-0 advert from anyone but the master a Backup follows never
//!   brings its takeover forward (review V2).
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vrrp_core::wire::{AdvertRepr, IpPair, MAX_PACKET_LEN, Packet};
use vrrp_core::{
    Auth, Centisecs, ChecksumMode, DropReason, Family, InitialState, InstanceConfig, InstanceId,
    Output, Priority, Router, RxMeta, State, Statistics, Timestamp, TrackConfig, TrackId, Version,
    VirtualAddress, Vrid,
};

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Knobs {
    /// For an address owner, bit 0 set means keepalived 2.2.7's behaviour
    /// (`owner_ignore_adverts = false`).
    priority: u8,
    interval: u16,
    /// Bits: 0 no preempt, 1 preempt delay, 2 start as master, 3 no advert
    /// to a lower master, 4 unicast, 5 GARP refresh, 6 no TTL check, 7 owner.
    flags: u8,
}

#[derive(Arbitrary, Debug)]
enum Addresses {
    Same,
    Other,
    Empty,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Advance(u16),
    Timeout,
    /// handle_timeout at `now` when nothing is due, then twice in a row.
    EarlyTimeout,
    Advert {
        v6: bool,
        vrid: u8,
        prio: u8,
        interval: u16,
        from: u8,
        v3: bool,
        ttl: u8,
        addresses: Addresses,
        password: Option<[u8; 8]>,
    },
    Raw {
        v6: bool,
        vrid: u8,
        bytes: Vec<u8>,
    },
    Track {
        id: u8,
        up: bool,
    },
    /// Starts (again) or stops tracking an instance's object.
    Tracking {
        which: u8,
        on: bool,
    },
    Priority {
        which: u8,
        prio: u8,
    },
    /// In-place reconfiguration with new knobs and a subset (bits) of
    /// three virtual addresses.
    Reconfigure {
        which: u8,
        knobs: Knobs,
        addresses: u8,
    },
    Remove(u8),
    Start(u8),
    Shutdown,
    Startup,
}

const PASSWORD: [u8; 8] = *b"s3cr3t\0\0";
/// Each instance's tracked object weight; instance `i` tracks `TrackId(i % 3)`.
const WEIGHTS: [i32; 5] = [-10, 0, 10, -300, 20];
/// (version, IPv6, VRID) of each instance.
const SHAPES: [(Version, bool, u8); 5] = [
    (Version::V2, false, 1),
    (Version::V3, false, 2),
    (Version::V3, false, 3),
    (Version::V3, false, 4),
    (Version::V3, true, 1),
];

fn v4(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

fn v6(last: u8) -> IpAddr {
    IpAddr::from([0xfe80, 0, 0, 0, 0, 0, 0, u16::from(last)])
}

/// Virtual address `n` (0..3) of a family; 0 is every instance's first.
fn vip(v6_: bool, n: u8) -> IpAddr {
    if v6_ {
        IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100 + u16::from(n)])
    } else {
        v4(100 + n)
    }
}

/// Instance `i`'s configuration from its knobs, with the virtual addresses
/// in the bits of `addresses`.
fn config(i: usize, k: Knobs, addresses: u8) -> InstanceConfig {
    let (version, is_v6, vrid) = SHAPES[i];
    let me = if is_v6 { v6(10) } else { v4(10) };
    let owner = k.flags & 0x80 != 0 && i >= 3;
    let priority = if owner {
        Priority::OWNER
    } else {
        Priority::new(k.priority.clamp(1, 254))
    };
    let mut c =
        InstanceConfig::new(Vrid::new(vrid).expect("vrid"), version, me).with_priority(priority);
    for n in 0..3 {
        if addresses & (1 << n) != 0 {
            c = c.with_address(VirtualAddress::host(vip(is_v6, n)));
        }
    }
    c.advert_interval = match version {
        Version::V2 => Centisecs::new((k.interval % 3 + 1) * 100),
        _ => Centisecs::new(k.interval % 300 + 1),
    };
    if i == 0 && k.flags & 0x80 != 0 {
        c.auth = Auth::Password(PASSWORD);
    }
    c.preempt = k.flags & 1 == 0;
    if k.flags & 2 != 0 {
        c.preempt_delay = Duration::from_millis(u64::from(k.interval % 5000));
    }
    if k.flags & 4 != 0 {
        c.initial_state = InitialState::Master;
    }
    c.lower_prio_no_advert = k.flags & 8 != 0;
    if k.flags & 16 != 0 {
        c.unicast_peers = vec![
            if is_v6 { v6(20) } else { v4(20) },
            if is_v6 { v6(30) } else { v4(30) },
        ];
    }
    if k.flags & 32 != 0 {
        c.garp.master_refresh = Some(Duration::from_millis(u64::from(k.interval % 2000)));
        c.garp.master_delay = Duration::from_millis(u64::from(k.interval % 700));
    }
    c.check_ttl = k.flags & 64 == 0;
    c.owner_ignore_adverts = !(owner && k.priority & 1 != 0);
    c
}

/// What the outputs so far say about one instance.
#[derive(Debug, Clone)]
struct Seen {
    state: State,
    priority: Priority,
    installed: HashSet<VirtualAddress>,
    /// Right after leaving Master for Initialize or Fault: priority 0 may
    /// be sent until the addresses go.
    may_send_stop: bool,
}

struct World {
    router: Router,
    ids: Vec<InstanceId>,
    group: Vec<InstanceId>,
    /// Which instances track their object.
    tracking: Vec<bool>,
    /// State of each tracked object.
    up: [bool; 3],
    seen: HashMap<InstanceId, Seen>,
    stats: HashMap<InstanceId, Statistics>,
    now: Timestamp,
    buf: Vec<u8>,
}

fn router_total(r: &Router) -> u64 {
    let s = r.statistics();
    s.checksum_errors
        + s.version_errors
        + s.vrid_errors
        + s.packet_length_errors
        + s.invalid_type_errors
}

fn counters(s: &Statistics) -> Vec<u64> {
    let mut v = vec![
        s.master_transitions,
        s.transitions,
        s.rcvd_advertisements,
        s.sent_advertisements,
        s.rcvd_pri_zero_packets,
        s.sent_pri_zero_packets,
    ];
    v.extend(s.drop_counters().map(|(_, n)| n));
    v
}

impl World {
    fn new(knobs: [Knobs; 5]) -> Self {
        let mut router = Router::new();
        let ids: Vec<InstanceId> = (0..5)
            .map(|i| {
                router
                    .add_instance(1, config(i, knobs[i], 1))
                    .expect("valid instance")
            })
            .collect();
        let group = ids[1..3].to_vec();
        router.add_sync_group(&group).expect("sync group");
        for (i, id) in ids.iter().enumerate() {
            router
                .track(
                    Timestamp::ZERO,
                    *id,
                    TrackId(i as u32 % 3),
                    TrackConfig::weight(WEIGHTS[i]),
                    true,
                )
                .expect("live instance");
        }
        let seen = ids
            .iter()
            .map(|id| {
                let inst = router.instance(*id).expect("live");
                (
                    *id,
                    Seen {
                        state: State::Initialize,
                        priority: inst.config().priority,
                        installed: HashSet::new(),
                        may_send_stop: false,
                    },
                )
            })
            .collect();
        let stats = ids
            .iter()
            .map(|id| (*id, *router.instance(*id).expect("live").statistics()))
            .collect();
        World {
            router,
            ids,
            group,
            tracking: vec![true; 5],
            up: [true; 3],
            seen,
            stats,
            now: Timestamp::ZERO,
            buf: vec![0; MAX_PACKET_LEN],
        }
    }

    /// Drains the outputs, checking each against the story so far.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Some((id, out)) = self.router.poll_output() {
            n += 1;
            let config = self
                .router
                .config_of(id)
                .expect("outputs of a known instance");
            let vips: HashSet<VirtualAddress> = config.virtual_addresses.iter().copied().collect();
            let (vrid, family) = (config.vrid, config.family());
            let seen = self
                .seen
                .get_mut(&id)
                .expect("outputs come from known instances");
            match out {
                Output::StateChanged { from, to, .. } => {
                    assert_eq!(from, seen.state, "{id:?}: state chain broken");
                    assert_ne!(from, to);
                    seen.state = to;
                    seen.may_send_stop =
                        from == State::Master && matches!(to, State::Initialize | State::Fault);
                }
                Output::PriorityChanged { from, to } => {
                    assert_eq!(from, seen.priority, "{id:?}: priority chain broken");
                    seen.priority = to;
                }
                Output::AddAddresses { vrid: v, addresses } => {
                    assert_eq!(v, vrid);
                    assert_eq!(
                        seen.state,
                        State::Master,
                        "{id:?}: addresses added outside Master"
                    );
                    seen.installed.extend(addresses.iter().copied());
                }
                Output::RemoveAddresses { vrid: v, addresses } => {
                    assert_eq!(v, vrid);
                    if seen.state == State::Master {
                        assert!(
                            addresses.iter().all(|a| !vips.contains(a)),
                            "{id:?}: configured addresses removed while Master"
                        );
                    }
                    seen.may_send_stop = false;
                    for a in addresses.iter() {
                        seen.installed.remove(a);
                    }
                }
                Output::Transmit(t) => {
                    if t.priority == Priority::STOP {
                        assert!(
                            seen.may_send_stop,
                            "{id:?}: priority 0 sent other than when leaving Master ({:?})",
                            seen.state
                        );
                    } else {
                        assert_eq!(
                            seen.state,
                            State::Master,
                            "{id:?}: advert sent outside Master"
                        );
                    }
                    let len = self
                        .router
                        .encode(id, &t, &mut self.buf)
                        .expect("our own adverts always encode");
                    let packet = Packet::new_checked(&self.buf[..len], family)
                        .expect("our own adverts decode");
                    assert_eq!(packet.vrid(), Some(vrid));
                    assert_eq!(packet.priority(), t.priority);
                }
                Output::Announce {
                    vrid: v, addresses, ..
                } => {
                    assert_eq!(v, vrid);
                    assert_eq!(seen.state, State::Master, "{id:?}: announce outside Master");
                    assert!(
                        addresses.iter().all(|a| seen.installed.contains(a)),
                        "{id:?}: announces an address it has not added"
                    );
                }
                _ => {}
            }
        }
        n
    }

    /// Whether instance `i`'s own weight-0 tracked object is down.
    fn own_fault(&self, id: InstanceId) -> bool {
        let i = id.0;
        self.tracking[i] && WEIGHTS[i] == 0 && !self.up[i % 3]
    }

    fn check(&mut self) {
        self.drain();
        let live: Vec<InstanceId> = self.router.instances().map(|(id, _)| id).collect();
        assert_eq!(
            self.router.poll_deadline().map(|d| d.at),
            self.router.poll_timeout()
        );
        for id in &live {
            let inst = self.router.instance(*id).expect("live");
            let seen = &self.seen[id];
            assert_eq!(
                seen.state,
                inst.state(),
                "{id:?}: outputs and state disagree"
            );
            assert_eq!(
                seen.priority,
                inst.effective_priority(),
                "{id:?}: outputs and priority disagree"
            );
            let expected: HashSet<VirtualAddress> = if inst.state() == State::Master {
                inst.config().virtual_addresses.iter().copied().collect()
            } else {
                HashSet::new()
            };
            assert_eq!(seen.installed, expected, "{id:?}: addresses vs state");
            assert_ne!(inst.effective_priority(), Priority::STOP);
            let fault = self.own_fault(*id)
                || (self.group.contains(id) && self.group.iter().any(|m| self.own_fault(*m)));
            if inst.state() != State::Initialize {
                assert_eq!(
                    inst.state() == State::Fault,
                    fault,
                    "{id:?}: in {:?} with tracked objects {:?}",
                    inst.state(),
                    self.up
                );
                assert_eq!(inst.in_fault(), fault, "{id:?}: in_fault");
            }
            let timer = inst.poll_timeout();
            match inst.state() {
                State::Initialize | State::Fault => {
                    assert!(timer.is_none(), "{id:?} runs a timer in {:?}", inst.state())
                }
                State::Master => {
                    assert!(timer.is_some(), "{id:?}: a master without an advert timer")
                }
                _ => {
                    if timer.is_none() {
                        // Waiting for its sync group: some other member
                        // must still be on its way to a decision (a timer
                        // running, or not started yet).
                        let others_tick = self.group.contains(id)
                            && self.group.iter().any(|o| {
                                self.router.instance(*o).is_some_and(|i| {
                                    i.poll_timeout().is_some() || i.state() == State::Initialize
                                })
                            });
                        assert!(others_tick, "{id:?}: a backup that can never take over");
                    }
                }
            }
            let now = counters(inst.statistics());
            let before = counters(&self.stats[id]);
            assert!(
                now.iter().zip(before).all(|(a, b)| *a >= b),
                "{id:?}: a counter went down"
            );
            self.stats.insert(*id, *inst.statistics());
        }
    }

    fn packet(&mut self, rx: &RxMeta, bytes: &[u8]) {
        let live_stats: HashMap<InstanceId, Statistics> = self
            .router
            .instances()
            .map(|(id, i)| (id, *i.statistics()))
            .collect();
        let router_before = router_total(&self.router);
        let router_checksum = self.router.statistics().checksum_errors;
        // The instance the packet is for, and how it stood.
        let target = bytes
            .get(1)
            .and_then(|vrid| self.router.lookup(1, Family::of(&rx.src), *vrid));
        let before = target.and_then(|id| {
            let i = self.router.instance(id)?;
            Some((i.state(), i.master_address(), i.poll_timeout()))
        });
        let result = self.router.handle_packet(self.now, 1, rx, bytes);
        let router_delta = router_total(&self.router) - router_before;
        let checksum_delta = self.router.statistics().checksum_errors - router_checksum;
        let deltas: Vec<(InstanceId, u64, u64)> = self
            .router
            .instances()
            .filter_map(|(id, i)| {
                let b = live_stats.get(&id)?;
                let s = i.statistics();
                Some((
                    id,
                    s.dropped() - b.dropped(),
                    s.rcvd_advertisements - b.rcvd_advertisements,
                ))
            })
            .collect();
        let dropped: u64 = deltas.iter().map(|d| d.1).sum();
        let accepted: u64 = deltas.iter().map(|d| d.2).sum();
        match result {
            Ok(id) => {
                assert_eq!(Some(id), target);
                assert_eq!(
                    (dropped, accepted, router_delta),
                    (0, 1, 0),
                    "accepted packet miscounted"
                );
                assert!(deltas.iter().any(|d| d.0 == id && d.2 == 1));
            }
            Err(reason) => {
                let by_router = router_delta - checksum_delta;
                assert_eq!(accepted, 0);
                assert_eq!(
                    dropped + by_router,
                    1,
                    "drop {reason:?} counted {dropped}+{by_router} times"
                );
                if reason == DropReason::Checksum {
                    assert_eq!(checksum_delta, 1);
                }
                if dropped == 1
                    && let Some(id) = target
                    && let (Some(inst), Some(b)) = (self.router.instance(id), live_stats.get(&id))
                {
                    assert_eq!(
                        inst.statistics().drops(reason),
                        b.drops(reason) + 1,
                        "drop {reason:?} counted under another reason"
                    );
                }
            }
        }
        let (Some(id), Some((state, master, deadline))) = (target, before) else {
            return;
        };
        let Some(inst) = self.router.instance(id) else {
            return;
        };
        // RFC 5798 7.1: the owner does not process advertisements.
        let config = inst.config();
        if config.priority.is_owner() && config.owner_ignore_adverts && !self.group.contains(&id) {
            assert!(
                !(state == State::Master && inst.state() != State::Master),
                "the address owner left Master on a packet from {}",
                rx.src
            );
        }
        // Priority 0 from anyone but the master followed.
        if bytes.get(2) == Some(&0) && state == State::Backup && master != Some(rx.src) {
            assert!(
                inst.state() == State::Backup && inst.poll_timeout() >= deadline,
                "priority 0 from {} (master {master:?}) brought the takeover forward",
                rx.src
            );
        }
    }

    fn timeout_is_idempotent(&mut self) {
        let next = self.router.poll_timeout();
        let states: Vec<_> = self
            .router
            .instances()
            .map(|(id, i)| (id, i.state(), i.poll_timeout()))
            .collect();
        if next.is_none_or(|t| t > self.now) {
            self.router.handle_timeout(self.now);
            assert_eq!(self.drain(), 0, "an early handle_timeout produced output");
            let after: Vec<_> = self
                .router
                .instances()
                .map(|(id, i)| (id, i.state(), i.poll_timeout()))
                .collect();
            assert_eq!(states, after, "an early handle_timeout changed something");
        }
    }

    fn pick(&self, which: u8) -> (usize, InstanceId) {
        let i = usize::from(which) % self.ids.len();
        (i, self.ids[i])
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Advance(ms) => self.now = self.now + Duration::from_millis(u64::from(ms)),
            Op::Timeout => {
                if let Some(t) = self.router.poll_timeout() {
                    self.now = self.now.max(t);
                    self.router.handle_timeout(self.now);
                    if let Some(next) = self.router.poll_timeout() {
                        assert!(
                            next > self.now,
                            "a deadline at or before now survived handle_timeout"
                        );
                    }
                    self.drain();
                    self.timeout_is_idempotent();
                }
            }
            Op::EarlyTimeout => {
                self.drain();
                self.timeout_is_idempotent();
            }
            Op::Advert {
                v6: is_v6,
                vrid,
                prio,
                interval,
                from,
                v3,
                ttl,
                addresses,
                password,
            } => {
                let Some(vrid) = Vrid::new(vrid % 5) else {
                    return;
                };
                let (src, dst) = if is_v6 {
                    (v6(from), "ff02::12".parse().expect("address"))
                } else {
                    (v4(from), "224.0.0.18".parse().expect("address"))
                };
                let version = if v3 || is_v6 {
                    Version::V3
                } else {
                    Version::V2
                };
                let interval = if version == Version::V3 {
                    Centisecs::new(interval % 4096)
                } else {
                    Centisecs::new((interval % 4) * 100)
                };
                let list = match addresses {
                    Addresses::Same => vec![vip(is_v6, 0)],
                    Addresses::Other => vec![if is_v6 {
                        "2001:db8::1".parse().expect("address")
                    } else {
                        v4(1)
                    }],
                    Addresses::Empty => vec![],
                };
                let auth = match (version, password) {
                    (Version::V2, Some(p)) if p[0] & 1 == 0 => Auth::Password(PASSWORD),
                    (Version::V2, Some(p)) => Auth::Password(p),
                    _ => Auth::None,
                };
                let repr = AdvertRepr {
                    version,
                    vrid,
                    priority: Priority::new(prio),
                    interval,
                    auth,
                    addresses: list.iter().copied(),
                };
                let mut buf = vec![0u8; MAX_PACKET_LEN];
                if let Ok(len) = repr.emit(&mut buf, &IpPair { src, dst }, ChecksumMode::Rfc) {
                    self.packet(
                        &RxMeta {
                            src,
                            dst,
                            ttl: Some(ttl),
                        },
                        &buf[..len],
                    );
                }
            }
            Op::Raw {
                v6: is_v6,
                vrid,
                mut bytes,
            } => {
                if bytes.len() > 1 {
                    bytes[1] = vrid % 5;
                }
                let (src, dst) = if is_v6 {
                    (v6(20), "ff02::12".parse().expect("address"))
                } else {
                    (v4(20), "224.0.0.18".parse().expect("address"))
                };
                self.packet(
                    &RxMeta {
                        src,
                        dst,
                        ttl: Some(255),
                    },
                    &bytes,
                );
            }
            Op::Track { id, up } => {
                self.up[usize::from(id % 3)] = up;
                self.router
                    .set_track_state(self.now, TrackId(u32::from(id % 3)), up)
            }
            Op::Tracking { which, on } => {
                let (i, id) = self.pick(which);
                let object = TrackId(i as u32 % 3);
                let done = if on {
                    let config = TrackConfig::weight(WEIGHTS[i]);
                    self.router
                        .track(self.now, id, object, config, self.up[i % 3])
                } else {
                    self.router.untrack(self.now, id, object)
                };
                if done.is_ok() {
                    self.tracking[i] = on;
                }
            }
            Op::Priority { which, prio } => {
                let (_, id) = self.pick(which);
                let _ = self
                    .router
                    .set_base_priority(self.now, id, Priority::new(prio));
            }
            Op::Reconfigure {
                which,
                knobs,
                addresses,
            } => {
                let (i, id) = self.pick(which);
                let _ = self
                    .router
                    .reconfigure(self.now, id, config(i, knobs, addresses));
            }
            Op::Remove(which) => {
                let (_, id) = self.pick(which);
                if self.router.remove_instance(self.now, id).is_ok() {
                    self.group.retain(|g| *g != id);
                    self.drain();
                    // Its last words drained, it is gone.
                    assert!(self.router.instance(id).is_none());
                    self.seen.remove(&id);
                    self.stats.remove(&id);
                }
            }
            Op::Start(which) => {
                let (_, id) = self.pick(which);
                let _ = self.router.start(self.now, id);
            }
            Op::Shutdown => self.router.handle_shutdown(self.now),
            Op::Startup => self.router.handle_startup(self.now),
        }
        self.check();
    }
}

/// Replaying an input with `VRRP_FUZZ_TRACE=1` prints each step.
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("VRRP_FUZZ_TRACE").is_some())
}

fuzz_target!(|input: ([Knobs; 5], Vec<Op>)| {
    let (knobs, ops) = input;
    if trace() {
        eprintln!("knobs {knobs:?}");
    }
    let mut world = World::new(knobs);
    world.router.handle_startup(world.now);
    world.check();
    for op in ops {
        if trace() {
            eprintln!("{:?} {op:?}", world.now);
        }
        world.step(op);
        if trace() {
            for (id, i) in world.router.instances() {
                eprintln!(
                    "  {id:?} {:?} prio {:?} timer {:?} master {:?}",
                    i.state(),
                    i.effective_priority(),
                    i.poll_timeout(),
                    i.master_address()
                );
            }
        }
    }
});
