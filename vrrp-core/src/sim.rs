//! A deterministic virtual LAN for testing election logic without a
//! network: simulated clock, per-link latency, seeded loss, partitions,
//! crashes, restarts, priority and tracked-object changes, and an event
//! log.
//!
//! Every node runs a real [`Router`]; advertisements are really encoded,
//! carried as bytes and decoded. The same seed gives the same run.
//!
//! ```
//! use std::time::Duration;
//! use vrrp_core::sim::{NodeSpec, Simulation};
//! use vrrp_core::{InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
//!
//! let vrid = Vrid::new(7).unwrap();
//! let vip = VirtualAddress::host("192.0.2.100".parse().unwrap());
//! let config = |prio| {
//!     // The simulator sets each node's own primary address.
//!     InstanceConfig::new(vrid, Version::V3, "0.0.0.0".parse().unwrap())
//!         .with_priority(Priority::new(prio))
//!         .with_address(vip)
//! };
//! let mut sim = Simulation::new(1);
//! let a = sim.add_node(NodeSpec::new("a").instance(config(200)));
//! let b = sim.add_node(NodeSpec::new("b").instance(config(100)));
//! sim.run_for(Duration::from_secs(5));
//! assert_eq!(sim.masters(vrid), vec![a]);
//! assert_eq!(sim.holders(vip.addr), vec![a]);
//!
//! sim.crash(a);
//! sim.run_for(Duration::from_secs(5));
//! assert_eq!(sim.masters(vrid), vec![b]);
//! assert_eq!(sim.state(b, vrid), Some(State::Master));
//! for entry in sim.log().iter().filter(|e| e.is_transition()) {
//!     println!("{entry}");
//! }
//! ```

use core::fmt;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::config::InstanceConfig;
use crate::instance::{Output, Reason, RxMeta, State, TrackConfig, TrackId};
use crate::router::{InstanceId, Router};
use crate::stats::DropReason;
use crate::time::Timestamp;
use crate::types::{Family, Priority, Vrid};
use crate::wire::{MAX_PACKET_LEN, REQUIRED_TTL};

/// The interface index every simulated node uses.
const SIM_INTERFACE: u32 = 1;

/// Names a node of a [`Simulation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// What a node runs: instances, sync groups and tracked objects. Kept so a
/// crashed node can be restarted with the same configuration.
#[derive(Clone, Debug, Default)]
pub struct NodeSpec {
    name: String,
    instances: Vec<InstanceConfig>,
    sync_groups: Vec<Vec<usize>>,
    tracks: Vec<(usize, TrackId, TrackConfig, bool)>,
}

impl NodeSpec {
    /// A node called `name` with nothing configured yet.
    pub fn new(name: impl Into<String>) -> Self {
        NodeSpec {
            name: name.into(),
            ..NodeSpec::default()
        }
    }

    /// Adds an instance. Its primary address is replaced by the node's
    /// own (192.0.2.N or fe80::N for the N-th node, from 1).
    pub fn instance(mut self, config: InstanceConfig) -> Self {
        self.instances.push(config);
        self
    }

    /// Puts instances (by their order of addition, from 0) in a sync group.
    pub fn sync_group(mut self, members: &[usize]) -> Self {
        self.sync_groups.push(members.to_vec());
        self
    }

    /// Makes instance `index` track `id` with `config`, starting `up` or not.
    pub fn track(mut self, index: usize, id: TrackId, config: TrackConfig, up: bool) -> Self {
        self.tracks.push((index, id, config, up));
        self
    }
}

/// An operation applied at a chosen time by [`Simulation::schedule`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimOp {
    /// Stop a node dead: no priority-0 advertisement.
    Crash(NodeId),
    /// Shut a node down gracefully.
    Shutdown(NodeId),
    /// Bring a crashed or shut-down node back with its configuration.
    Restart(NodeId),
    /// Split the LAN: nodes in different groups cannot hear each other;
    /// nodes not named form a group of their own.
    Partition(Vec<Vec<NodeId>>),
    /// Join the LAN again.
    Heal,
    /// Set an instance's base priority.
    SetPriority(NodeId, Vrid, Priority),
    /// Set a tracked object's state on a node.
    SetTrack(NodeId, TrackId, bool),
}

/// What happened, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogKind {
    /// An instance changed state.
    StateChanged {
        /// The instance.
        vrid: Vrid,
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// An advertisement left the node.
    Sent {
        /// The instance.
        vrid: Vrid,
        /// Advertised priority.
        priority: Priority,
    },
    /// An advertisement was dropped by the receiver.
    Dropped {
        /// The sender.
        from: NodeId,
        /// Why.
        reason: DropReason,
    },
    /// The simulated loss ate a packet on its way to this node.
    Lost {
        /// The sender.
        from: NodeId,
    },
    /// The node added the virtual addresses.
    AddressesAdded {
        /// The instance.
        vrid: Vrid,
    },
    /// The node removed the virtual addresses.
    AddressesRemoved {
        /// The instance.
        vrid: Vrid,
    },
    /// Gratuitous ARPs / NAs.
    Announced {
        /// The instance.
        vrid: Vrid,
        /// How many per address.
        count: u32,
    },
    /// The effective priority changed.
    PriorityChanged {
        /// The instance.
        vrid: Vrid,
        /// New priority.
        to: Priority,
    },
    /// An operation was applied to this node (or the LAN).
    Op(SimOp),
}

/// One line of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// When.
    pub at: Timestamp,
    /// Where.
    pub node: NodeId,
    /// What.
    pub kind: LogKind,
}

impl LogEntry {
    /// Whether this is a state change.
    pub fn is_transition(&self) -> bool {
        matches!(self.kind, LogKind::StateChanged { .. })
    }
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>12} node{} ", self.at.to_string(), self.node.0)?;
        match &self.kind {
            LogKind::StateChanged {
                vrid,
                from,
                to,
                reason,
            } => {
                write!(f, "vrid {vrid}: {from} -> {to} ({reason:?})")
            }
            LogKind::Sent { vrid, priority } => {
                write!(f, "vrid {vrid}: advert priority {priority}")
            }
            LogKind::Dropped { from, reason } => {
                write!(f, "dropped packet from node{}: {reason:?}", from.0)
            }
            LogKind::Lost { from } => write!(f, "lost packet from node{}", from.0),
            LogKind::AddressesAdded { vrid } => write!(f, "vrid {vrid}: addresses added"),
            LogKind::AddressesRemoved { vrid } => write!(f, "vrid {vrid}: addresses removed"),
            LogKind::Announced { vrid, count } => {
                write!(f, "vrid {vrid}: {count} gratuitous ARP/NA")
            }
            LogKind::PriorityChanged { vrid, to } => write!(f, "vrid {vrid}: priority now {to}"),
            LogKind::Op(op) => write!(f, "{op:?}"),
        }
    }
}

#[derive(Debug)]
struct SimNode {
    spec: NodeSpec,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    router: Router,
    ids: Vec<InstanceId>,
    up: bool,
    held: BTreeSet<IpAddr>,
}

#[derive(Debug, Clone)]
enum Pending {
    Deliver {
        from: NodeId,
        to: NodeId,
        meta: RxMeta,
        bytes: Vec<u8>,
    },
    Op(SimOp),
}

/// The virtual LAN. See the [module docs](self).
#[derive(Debug)]
pub struct Simulation {
    now: Timestamp,
    nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<(Timestamp, u64)>>,
    pending: HashMap<u64, Pending>,
    seq: u64,
    rng: ChaCha8Rng,
    loss: f64,
    latency: Duration,
    link_latency: HashMap<(NodeId, NodeId), Duration>,
    partition: Vec<usize>,
    log: Vec<LogEntry>,
    log_sends: bool,
    buf: Vec<u8>,
}

impl Simulation {
    /// An empty LAN at time zero; `seed` drives the packet loss.
    pub fn new(seed: u64) -> Self {
        Simulation {
            now: Timestamp::ZERO,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            loss: 0.0,
            latency: Duration::from_micros(100),
            link_latency: HashMap::new(),
            partition: Vec::new(),
            log: Vec::new(),
            log_sends: true,
            buf: vec![0; MAX_PACKET_LEN],
        }
    }

    /// The simulated time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Adds a node and starts it now.
    ///
    /// # Panics
    /// If the spec holds an invalid configuration or duplicate VRIDs: a
    /// test's own mistake, reported at once.
    pub fn add_node(&mut self, spec: NodeSpec) -> NodeId {
        let n = self.nodes.len();
        let host = u8::try_from(n + 1).unwrap_or(u8::MAX);
        let v4 = Ipv4Addr::new(192, 0, 2, host);
        let v6 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, n as u16 + 1);
        self.nodes.push(SimNode {
            spec,
            v4,
            v6,
            router: Router::new(),
            ids: Vec::new(),
            up: false,
            held: BTreeSet::new(),
        });
        self.partition.push(0);
        let id = NodeId(n);
        self.boot(id);
        id
    }

    /// Every link's one-way latency (default 100 us).
    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    /// One direction's latency, overriding the default.
    pub fn set_link_latency(&mut self, from: NodeId, to: NodeId, latency: Duration) {
        self.link_latency.insert((from, to), latency);
    }

    /// Probability (0..=1) that a packet is lost on its way to a receiver.
    pub fn set_loss(&mut self, probability: f64) {
        self.loss = probability.clamp(0.0, 1.0);
    }

    /// Whether sent advertisements are logged (on by default; off makes
    /// long runs lighter).
    pub fn log_sends(&mut self, on: bool) {
        self.log_sends = on;
    }

    /// Applies `op` at time `at` (now if in the past).
    pub fn schedule(&mut self, at: Timestamp, op: SimOp) {
        let at = at.max(self.now);
        self.push(at, Pending::Op(op));
    }

    /// Crashes a node now.
    pub fn crash(&mut self, node: NodeId) {
        self.apply(SimOp::Crash(node));
    }

    /// Shuts a node down gracefully now.
    pub fn shutdown(&mut self, node: NodeId) {
        self.apply(SimOp::Shutdown(node));
    }

    /// Restarts a node now.
    pub fn restart(&mut self, node: NodeId) {
        self.apply(SimOp::Restart(node));
    }

    /// Partitions the LAN now.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        self.apply(SimOp::Partition(
            groups.iter().map(|g| g.to_vec()).collect(),
        ));
    }

    /// Heals any partition now.
    pub fn heal(&mut self) {
        self.apply(SimOp::Heal);
    }

    /// Sets an instance's base priority now.
    pub fn set_priority(&mut self, node: NodeId, vrid: Vrid, priority: Priority) {
        self.apply(SimOp::SetPriority(node, vrid, priority));
    }

    /// Sets a tracked object's state on a node now.
    pub fn set_track(&mut self, node: NodeId, track: TrackId, up: bool) {
        self.apply(SimOp::SetTrack(node, track, up));
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs until `until`, processing every event and timer up to it.
    pub fn run_until(&mut self, until: Timestamp) {
        loop {
            let next_event = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_timer = self
                .nodes
                .iter()
                .filter(|n| n.up)
                .filter_map(|n| n.router.poll_timeout())
                .min();
            let next = match (next_event, next_timer) {
                (Some(e), Some(t)) => e.min(t),
                (Some(e), None) => e,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if next_event == Some(next) {
                if let Some(Reverse((_, seq))) = self.queue.pop()
                    && let Some(p) = self.pending.remove(&seq)
                {
                    self.process(p);
                }
            } else {
                for i in 0..self.nodes.len() {
                    let node = &mut self.nodes[i];
                    if node.up && node.router.poll_timeout().is_some_and(|t| t <= next) {
                        node.router.handle_timeout(next);
                        self.drain(NodeId(i));
                    }
                }
            }
        }
        self.now = until.max(self.now);
    }

    /// The event log so far.
    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    /// The state of a node's instance for `vrid`, if the node is up.
    pub fn state(&self, node: NodeId, vrid: Vrid) -> Option<State> {
        let n = self.nodes.get(node.0).filter(|n| n.up)?;
        n.ids
            .iter()
            .filter_map(|id| n.router.instance(*id))
            .find(|i| i.config().vrid == vrid)
            .map(|i| i.state())
    }

    /// The router of a node (its instances, statistics, ...).
    pub fn router(&self, node: NodeId) -> Option<&Router> {
        self.nodes.get(node.0).map(|n| &n.router)
    }

    /// The nodes up and master for `vrid`.
    pub fn masters(&self, vrid: Vrid) -> Vec<NodeId> {
        (0..self.nodes.len())
            .map(NodeId)
            .filter(|n| self.state(*n, vrid) == Some(State::Master))
            .collect()
    }

    /// The nodes that currently hold `addr` as a virtual address.
    pub fn holders(&self, addr: IpAddr) -> Vec<NodeId> {
        (0..self.nodes.len())
            .map(NodeId)
            .filter(|n| self.nodes[n.0].held.contains(&addr))
            .collect()
    }

    /// A node's primary address for `family`.
    pub fn address(&self, node: NodeId, family: Family) -> Option<IpAddr> {
        self.nodes.get(node.0).map(|n| match family {
            Family::Ipv4 => IpAddr::V4(n.v4),
            Family::Ipv6 => IpAddr::V6(n.v6),
        })
    }

    fn push(&mut self, at: Timestamp, p: Pending) {
        let seq = self.seq;
        self.seq += 1;
        self.pending.insert(seq, p);
        self.queue.push(Reverse((at, seq)));
    }

    fn record(&mut self, node: NodeId, kind: LogKind) {
        self.log.push(LogEntry {
            at: self.now,
            node,
            kind,
        });
    }

    fn boot(&mut self, id: NodeId) {
        let now = self.now;
        let node = &mut self.nodes[id.0];
        let mut router = Router::new();
        let mut ids = Vec::new();
        for config in &node.spec.instances {
            let mut c = config.clone();
            c.primary_address = match c.family() {
                Family::Ipv4 => IpAddr::V4(node.v4),
                Family::Ipv6 => IpAddr::V6(node.v6),
            };
            match router.add_instance(SIM_INTERFACE, c) {
                Ok(i) => ids.push(i),
                Err(e) => panic!("simulated node {}: {e}", node.spec.name),
            }
        }
        for g in &node.spec.sync_groups {
            let members: Vec<InstanceId> = g.iter().filter_map(|i| ids.get(*i).copied()).collect();
            if let Err(e) = router.add_sync_group(&members) {
                panic!("simulated node {}: {e}", node.spec.name);
            }
        }
        for (index, track, config, up) in node.spec.tracks.clone() {
            if let Some(&iid) = ids.get(index)
                && let Err(e) = router.track(now, iid, track, config, up)
            {
                panic!("simulated node {}: {e}", node.spec.name);
            }
        }
        router.handle_startup(now);
        node.router = router;
        node.ids = ids;
        node.up = true;
        node.held.clear();
        self.drain(id);
    }

    fn apply(&mut self, op: SimOp) {
        let now = self.now;
        let node = match &op {
            SimOp::Crash(n)
            | SimOp::Shutdown(n)
            | SimOp::Restart(n)
            | SimOp::SetPriority(n, ..)
            | SimOp::SetTrack(n, ..) => *n,
            SimOp::Partition(_) | SimOp::Heal => NodeId(usize::MAX),
        };
        self.record(node, LogKind::Op(op.clone()));
        match op {
            SimOp::Crash(n) => {
                if let Some(node) = self.nodes.get_mut(n.0) {
                    // A dead machine's addresses die with it.
                    node.up = false;
                    node.held.clear();
                }
            }
            SimOp::Shutdown(n) => {
                if self.nodes.get(n.0).is_some_and(|x| x.up) {
                    self.nodes[n.0].router.handle_shutdown(now);
                    self.drain(n);
                    self.nodes[n.0].up = false;
                }
            }
            SimOp::Restart(n) => {
                if self.nodes.get(n.0).is_some_and(|x| !x.up) {
                    self.boot(n);
                }
            }
            SimOp::Partition(groups) => {
                for p in &mut self.partition {
                    *p = usize::MAX;
                }
                for (gi, g) in groups.iter().enumerate() {
                    for n in g {
                        if let Some(p) = self.partition.get_mut(n.0) {
                            *p = gi;
                        }
                    }
                }
            }
            SimOp::Heal => {
                for p in &mut self.partition {
                    *p = 0;
                }
            }
            SimOp::SetPriority(n, vrid, prio) => {
                if let Some(node) = self.nodes.get_mut(n.0).filter(|x| x.up) {
                    let target = node.ids.iter().copied().find(|i| {
                        node.router
                            .instance(*i)
                            .is_some_and(|x| x.config().vrid == vrid)
                    });
                    if let Some(i) = target {
                        let _ = node.router.set_base_priority(now, i, prio);
                    }
                    self.drain(n);
                }
            }
            SimOp::SetTrack(n, track, up) => {
                if let Some(node) = self.nodes.get_mut(n.0) {
                    // Keep the spec in step so a restart sees the new state.
                    for t in &mut node.spec.tracks {
                        if t.1 == track {
                            t.3 = up;
                        }
                    }
                    if node.up {
                        node.router.set_track_state(now, track, up);
                        self.drain(n);
                    }
                }
            }
        }
    }

    fn process(&mut self, p: Pending) {
        match p {
            Pending::Op(op) => self.apply(op),
            Pending::Deliver {
                from,
                to,
                meta,
                bytes,
            } => {
                let now = self.now;
                let Some(node) = self.nodes.get_mut(to.0).filter(|n| n.up) else {
                    return;
                };
                if let Err(reason) = node.router.handle_packet(now, SIM_INTERFACE, &meta, &bytes)
                    && reason != DropReason::UnknownVrid
                {
                    self.record(to, LogKind::Dropped { from, reason });
                }
                self.drain(to);
            }
        }
    }

    fn latency(&self, from: NodeId, to: NodeId) -> Duration {
        self.link_latency
            .get(&(from, to))
            .copied()
            .unwrap_or(self.latency)
    }

    fn can_hear(&self, from: NodeId, to: NodeId) -> bool {
        let (a, b) = (self.partition[from.0], self.partition[to.0]);
        a == b && a != usize::MAX || from == to
    }

    fn drain(&mut self, id: NodeId) {
        while let Some((iid, out)) = self.nodes[id.0].router.poll_output() {
            let Some(vrid) = self.nodes[id.0].router.config_of(iid).map(|c| c.vrid) else {
                continue;
            };
            match out {
                Output::Transmit(t) => {
                    let node = &self.nodes[id.0];
                    let len = match node.router.encode(iid, &t, &mut self.buf) {
                        Ok(len) => len,
                        Err(e) => panic!("encoding failed in the simulator: {e}"),
                    };
                    let bytes = self.buf[..len].to_vec();
                    let src = match t.destination {
                        IpAddr::V4(_) => IpAddr::V4(node.v4),
                        IpAddr::V6(_) => IpAddr::V6(node.v6),
                    };
                    if self.log_sends {
                        self.record(
                            id,
                            LogKind::Sent {
                                vrid,
                                priority: t.priority,
                            },
                        );
                    }
                    let meta = RxMeta {
                        src,
                        dst: t.destination,
                        ttl: Some(REQUIRED_TTL),
                    };
                    let targets: Vec<NodeId> = if t.destination.is_multicast() {
                        (0..self.nodes.len())
                            .map(NodeId)
                            .filter(|n| *n != id)
                            .collect()
                    } else {
                        (0..self.nodes.len())
                            .map(NodeId)
                            .filter(|n| {
                                IpAddr::V4(self.nodes[n.0].v4) == t.destination
                                    || IpAddr::V6(self.nodes[n.0].v6) == t.destination
                            })
                            .collect()
                    };
                    for to in targets {
                        if !self.can_hear(id, to) {
                            continue;
                        }
                        if self.loss > 0.0 {
                            let draw = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                            if draw < self.loss {
                                self.record(to, LogKind::Lost { from: id });
                                continue;
                            }
                        }
                        let at = self.now + self.latency(id, to);
                        self.push(
                            at,
                            Pending::Deliver {
                                from: id,
                                to,
                                meta,
                                bytes: bytes.clone(),
                            },
                        );
                    }
                }
                Output::AddAddresses { addresses, .. } => {
                    self.nodes[id.0]
                        .held
                        .extend(addresses.iter().map(|v| v.addr));
                    self.record(id, LogKind::AddressesAdded { vrid });
                }
                Output::RemoveAddresses { addresses, .. } => {
                    for a in addresses.iter() {
                        self.nodes[id.0].held.remove(&a.addr);
                    }
                    self.record(id, LogKind::AddressesRemoved { vrid });
                }
                Output::Announce { count, .. } => {
                    self.record(id, LogKind::Announced { vrid, count })
                }
                Output::StateChanged { from, to, reason } => {
                    self.record(
                        id,
                        LogKind::StateChanged {
                            vrid,
                            from,
                            to,
                            reason,
                        },
                    );
                }
                Output::PriorityChanged { to, .. } => {
                    self.record(id, LogKind::PriorityChanged { vrid, to })
                }
            }
        }
    }
}
