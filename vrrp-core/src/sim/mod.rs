//! A deterministic virtual LAN for testing election logic without a
//! network (the `sim` cargo feature, on by default).
//!
//! Every node runs a real [`Router`]; advertisements are really encoded,
//! carried as bytes and decoded. Time is simulated and exact to the
//! nanosecond; every random choice (loss, jitter, duplication,
//! reordering) comes from one generator seeded by [`Simulation::new`], so
//! the same seed gives the same run, log entry for log entry.
//!
//! What it models:
//! - nodes with chosen or default addresses ([`NodeSpec::ipv4`],
//!   [`NodeSpec::ipv6`]), IPv4 and IPv6 instances side by side, sync
//!   groups and tracked objects;
//! - crashes (silent), graceful shutdowns (priority 0) and restarts;
//! - partitions, two-way and one-way cuts between two nodes;
//! - per-direction link profiles ([`LinkProfile`]): latency, jitter,
//!   loss, duplication, reordering;
//! - crafted or corrupted packets sent from any node ([`Crafted`]), for
//!   conformance tests;
//! - an event log ([`Log`]) that prints one line per event and has
//!   helpers for exact timing assertions.
//!
//! Instances are named by [`InstanceKey`]: a VRID and an address family.
//! A bare [`Vrid`] converts to the IPv4 instance, so IPv4-only tests stay
//! short; write `(vrid, Family::Ipv6)` for the IPv6 one.
//!
//! ```
//! use std::time::Duration;
//! use vrrp_core::sim::{NodeSpec, Simulation};
//! use vrrp_core::{Family, InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
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
//! // b took over Master_Down_Interval after the last advertisement it
//! // accepted from a.
//! let (heard, ..) = sim.log().received(b, vrid).last().unwrap();
//! let mdi = sim.master_down_interval(b, vrid).unwrap();
//! assert_eq!(sim.log().became_master(b, vrid), Some(heard + mdi));
//! print!("{}", sim.log());
//! ```
//!
//! # Semantics tests assert on
//!
//! ## Same-instant ordering
//! At one instant, packet deliveries and scheduled operations run first,
//! in the order they were queued (a packet is queued when it is sent, an
//! operation when it is scheduled); timers run after them, node by node
//! in the order the nodes were added. So with equal link latencies,
//! packets sent at the same instant arrive in send order, and a packet
//! arriving exactly when a Master_Down timer expires is processed first
//! and restarts the timer. In a three-way tie, the node whose packet was
//! sent first is the one a master hears first:
//!
//! ```
//! # use std::time::Duration;
//! # use vrrp_core::sim::{NodeSpec, Simulation};
//! # use vrrp_core::{InstanceConfig, Priority, Reason, State, Version, VirtualAddress, Vrid};
//! # let vrid = Vrid::new(1).unwrap();
//! # let config = |prio| InstanceConfig::new(vrid, Version::V3, "0.0.0.0".parse().unwrap())
//! #     .with_priority(Priority::new(prio))
//! #     .with_address(VirtualAddress::host("192.0.2.100".parse().unwrap()));
//! let mut sim = Simulation::new(1);
//! let a = sim.add_node(NodeSpec::new("a").instance(config(100)));
//! let b = sim.add_node(NodeSpec::new("b").instance(config(100)));
//! let c = sim.add_node(NodeSpec::new("c").instance(config(100)));
//! sim.run_for(Duration::from_secs(10));
//! // All three time out at the same instant and become master; a hears
//! // b's advertisement first (b was added before c) and steps down to it.
//! let (.., why) = sim.log().transitions(a, vrid).find(|t| t.1 == State::Master).unwrap();
//! assert_eq!(why, Reason::Preempted { by: "192.0.2.2".parse().unwrap(), priority: Priority::new(100) });
//! // The tie-break by address (RFC 5798 6.4.3) leaves the highest one.
//! assert_eq!(sim.masters(vrid), vec![c]);
//! ```
//!
//! ## Crash, shutdown and restart
//! [`Simulation::crash`] stops a node dead: no priority-0 advertisement,
//! and its addresses vanish with it. [`Simulation::shutdown`] is
//! graceful: a master sends priority 0 (RFC 5798 6.4.3), so a backup
//! takes over after its Skew_Time rather than its Master_Down_Interval.
//! [`Simulation::restart`] boots a stopped node again from its
//! [`NodeSpec`], as keepalived rereads its configuration: tracked objects
//! keep the state [`Simulation::set_track`] last gave them (they are
//! outside the daemon), but a [`Simulation::set_priority`] is lost.
//!
//! ```
//! # use std::time::Duration;
//! # use vrrp_core::sim::{NodeSpec, Simulation};
//! # use vrrp_core::{InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
//! # let vrid = Vrid::new(1).unwrap();
//! # let config = |prio| InstanceConfig::new(vrid, Version::V3, "0.0.0.0".parse().unwrap())
//! #     .with_priority(Priority::new(prio))
//! #     .with_address(VirtualAddress::host("192.0.2.100".parse().unwrap()));
//! let mut sim = Simulation::new(1);
//! let a = sim.add_node(NodeSpec::new("a").instance(config(200)));
//! let b = sim.add_node(NodeSpec::new("b").instance(config(100)));
//! sim.run_for(Duration::from_secs(5));
//! sim.set_priority(a, vrid, Priority::new(50));
//! sim.run_for(Duration::from_secs(5));
//! assert_eq!(sim.masters(vrid), vec![b]);
//! sim.crash(a);
//! sim.restart(a);
//! assert_eq!(sim.effective_priority(a, vrid), Some(Priority::new(200)), "back to its spec");
//! sim.run_for(Duration::from_secs(5));
//! assert_eq!(sim.masters(vrid), vec![a], "and it preempts again");
//! ```
//!
//! ## preempt_delay
//! keepalived's `preempt_delay` does not delay preemption by exactly the
//! delay. A backup that hears a lower-priority master keeps accepting its
//! advertisements (restarting Master_Down_Timer) until the delay has run
//! out from the first of them; after that it ignores them, so it takes
//! over Master_Down_Interval after the last one it accepted. The
//! takeover therefore lands between `first + delay` and `first + delay +
//! Master_Down_Interval`, and exactly at `last accepted + MDI`:
//!
//! ```
//! # use std::time::Duration;
//! # use vrrp_core::sim::{NodeSpec, Simulation};
//! # use vrrp_core::{InstanceConfig, Priority, Version, VirtualAddress, Vrid};
//! # let vrid = Vrid::new(1).unwrap();
//! # let config = |prio| InstanceConfig::new(vrid, Version::V3, "0.0.0.0".parse().unwrap())
//! #     .with_priority(Priority::new(prio))
//! #     .with_address(VirtualAddress::host("192.0.2.100".parse().unwrap()));
//! let mut delayed = config(200);
//! delayed.preempt_delay = Duration::from_secs(5);
//! let mut sim = Simulation::new(1);
//! let b = sim.add_node(NodeSpec::new("b").instance(config(100)));
//! sim.run_for(Duration::from_secs(10));
//! let a = sim.add_node(NodeSpec::new("a").instance(delayed));
//! sim.run_for(Duration::from_secs(20));
//! assert_eq!(sim.masters(vrid), vec![a]);
//! let heard: Vec<_> = sim.log().received(a, vrid).map(|r| r.0).collect();
//! let first = heard[0];
//! let last_accepted = *heard.iter().filter(|t| **t < first + Duration::from_secs(5)).last().unwrap();
//! let mdi = sim.master_down_interval(a, vrid).unwrap();
//! let took = sim.log().became_master(a, vrid).unwrap();
//! assert_eq!(took, last_accepted + mdi);
//! assert!(took >= first + Duration::from_secs(5) && took <= first + Duration::from_secs(5) + mdi);
//! ```
//!
//! ## Sync groups
//! The members of a sync group (keepalived's `vrrp_sync_group`) move
//! together: a member in Fault puts every member in Fault; a member
//! falling back to Backup takes the others with it; and the group
//! becomes master only when every member is ready to (its
//! Master_Down_Timer fired, or it is master already), as keepalived's
//! `vrrp_sync_can_goto_master` decides.
//!
//! A tracked object's weight moves only the priority of the instance
//! that tracks it. So a weight on one member that drops it below the
//! peer does not move the group: the peer's other members still hear a
//! better master, the peer's group is never ready, and nothing changes.
//! Track the object from every member ([`NodeSpec::track_all`], like a
//! `track_script` on the group) to move the whole group:
//!
//! ```
//! # use std::time::Duration;
//! # use vrrp_core::sim::{NodeSpec, Simulation};
//! # use vrrp_core::{InstanceConfig, Priority, TrackConfig, TrackId, Version, VirtualAddress, Vrid};
//! # let cfg = |vrid: u8, prio: u8, vip: &str| InstanceConfig::new(Vrid::new(vrid).unwrap(), Version::V3, "0.0.0.0".parse().unwrap())
//! #     .with_priority(Priority::new(prio))
//! #     .with_address(VirtualAddress::host(vip.parse().unwrap()));
//! let (v1, v2) = (Vrid::new(1).unwrap(), Vrid::new(2).unwrap());
//! let group = |name: &str, prio| NodeSpec::new(name)
//!     .instance(cfg(1, prio, "192.0.2.100"))
//!     .instance(cfg(2, prio, "192.0.2.200"))
//!     .sync_group([v1, v2]);
//! let check = TrackId(5);
//! let weight = TrackConfig::weight(-100);
//!
//! // The weight on VRID 2 only: a stays master of both.
//! let mut sim = Simulation::new(1);
//! let a = sim.add_node(group("a", 150).track(v2, check, weight, true));
//! let b = sim.add_node(group("b", 100));
//! sim.run_for(Duration::from_secs(10));
//! sim.set_track(a, check, false);
//! sim.run_for(Duration::from_secs(30));
//! assert_eq!(sim.effective_priority(a, v2), Some(Priority::new(50)));
//! assert_eq!((sim.masters(v1), sim.masters(v2)), (vec![a], vec![a]));
//!
//! // The weight on every member: the group moves to b.
//! let mut sim = Simulation::new(1);
//! let a = sim.add_node(group("a", 150).track_all(check, weight, true));
//! let b = sim.add_node(group("b", 100));
//! sim.run_for(Duration::from_secs(10));
//! sim.set_track(a, check, false);
//! sim.run_for(Duration::from_secs(10));
//! assert_eq!((sim.masters(v1), sim.masters(v2)), (vec![b], vec![b]));
//! ```

mod craft;
mod link;
mod log;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use core::fmt;

use crate::config::InstanceConfig;
use crate::instance::{Instance, Output, RxMeta, State, TrackConfig, TrackId};
use crate::router::{InstanceId, Router};
use crate::stats::DropReason;
use crate::time::Timestamp;
use crate::types::{Family, Priority, Vrid};
use crate::wire::{self, MAX_PACKET_LEN, REQUIRED_TTL};

pub use craft::{Crafted, Edit};
pub use link::LinkProfile;
pub use log::{Log, LogEntry, LogKind};

use link::{Fate, Network};

/// The interface index every simulated node uses.
const SIM_INTERFACE: u32 = 1;

/// Names a node of a [`Simulation`], in the order of
/// [`Simulation::add_node`], from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// Names an instance on a node: its VRID and address family, the two
/// things that tell instances on one interface apart (RFC 5798 allows the
/// same VRID once per family).
///
/// A bare [`Vrid`] converts to the IPv4 instance; a `(Vrid, Family)`
/// pair to either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceKey {
    /// The virtual router id.
    pub vrid: Vrid,
    /// The address family.
    pub family: Family,
}

impl InstanceKey {
    /// The instance for `vrid` over `family`.
    pub const fn new(vrid: Vrid, family: Family) -> Self {
        InstanceKey { vrid, family }
    }

    /// The IPv4 instance for `vrid`.
    pub const fn ipv4(vrid: Vrid) -> Self {
        InstanceKey::new(vrid, Family::Ipv4)
    }

    /// The IPv6 instance for `vrid`.
    pub const fn ipv6(vrid: Vrid) -> Self {
        InstanceKey::new(vrid, Family::Ipv6)
    }

    /// The key of the instance `config` describes.
    pub fn of(config: &InstanceConfig) -> Self {
        InstanceKey::new(config.vrid, config.family())
    }
}

impl From<Vrid> for InstanceKey {
    /// The IPv4 instance.
    fn from(vrid: Vrid) -> Self {
        InstanceKey::ipv4(vrid)
    }
}

impl From<(Vrid, Family)> for InstanceKey {
    fn from((vrid, family): (Vrid, Family)) -> Self {
        InstanceKey::new(vrid, family)
    }
}

impl fmt::Display for InstanceKey {
    /// `vrid 7/IPv4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vrid {}/{}", self.vrid, self.family)
    }
}

#[derive(Clone, Debug)]
struct NodeTrack {
    /// `None`: every instance of the node.
    instance: Option<InstanceKey>,
    id: TrackId,
    config: TrackConfig,
    up: bool,
}

/// What a node runs and where: addresses, instances, sync groups and
/// tracked objects. Kept so that a crashed node can be restarted with
/// the same configuration. A node with no instances runs no VRRP: use it
/// as a test station that [injects](Simulation::inject) crafted packets.
#[derive(Clone, Debug, Default)]
pub struct NodeSpec {
    name: String,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    instances: Vec<InstanceConfig>,
    sync_groups: Vec<Vec<InstanceKey>>,
    tracks: Vec<NodeTrack>,
}

impl NodeSpec {
    /// A node called `name` with nothing configured yet. The name is what
    /// the [`Log`] prints.
    pub fn new(name: impl Into<String>) -> Self {
        NodeSpec {
            name: name.into(),
            ..NodeSpec::default()
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's IPv4 address: the source of its IPv4 advertisements and
    /// its primary address in the tie-break (RFC 5798 6.4.3). Default
    /// 192.0.2.N for the N-th node added, from 1.
    pub fn ipv4(mut self, addr: Ipv4Addr) -> Self {
        self.ipv4 = Some(addr);
        self
    }

    /// The node's IPv6 (link-local) address. Default fe80::N for the
    /// N-th node added, from 1.
    pub fn ipv6(mut self, addr: Ipv6Addr) -> Self {
        self.ipv6 = Some(addr);
        self
    }

    /// Adds an instance. Its primary address is replaced by the node's
    /// own address of its family.
    pub fn instance(mut self, config: InstanceConfig) -> Self {
        self.instances.push(config);
        self
    }

    /// Puts instances in a sync group.
    pub fn sync_group<K: Into<InstanceKey>>(
        mut self,
        members: impl IntoIterator<Item = K>,
    ) -> Self {
        self.sync_groups
            .push(members.into_iter().map(Into::into).collect());
        self
    }

    /// Makes one instance track object `id` with `config`, starting `up`
    /// or not.
    pub fn track(
        mut self,
        instance: impl Into<InstanceKey>,
        id: TrackId,
        config: TrackConfig,
        up: bool,
    ) -> Self {
        self.tracks.push(NodeTrack {
            instance: Some(instance.into()),
            id,
            config,
            up,
        });
        self
    }

    /// Makes every instance of the node track object `id`.
    pub fn track_all(mut self, id: TrackId, config: TrackConfig, up: bool) -> Self {
        self.tracks.push(NodeTrack {
            instance: None,
            id,
            config,
            up,
        });
        self
    }
}

/// An operation, applied at once by the methods of the same name or at a
/// chosen time by [`Simulation::schedule`]. Each one is logged.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SimOp {
    /// Stop a node dead: no priority-0 advertisement; its addresses go
    /// with it.
    Crash(NodeId),
    /// Shut a node down gracefully (a master sends priority 0).
    Shutdown(NodeId),
    /// Boot a crashed or shut-down node again from its [`NodeSpec`]. Does
    /// nothing to a node that is up.
    Restart(NodeId),
    /// Split the LAN: each group hears only its own members; the nodes
    /// no group names form one more group together.
    Partition(Vec<Vec<NodeId>>),
    /// End every partition and cut (link profiles stay).
    Heal,
    /// Cut both directions between two nodes.
    Cut(NodeId, NodeId),
    /// Cut one direction: `to` stops hearing `from`.
    CutOneWay {
        /// The sender that is no longer heard.
        from: NodeId,
        /// The receiver.
        to: NodeId,
    },
    /// Repair both directions between two nodes.
    Repair(NodeId, NodeId),
    /// Repair one direction.
    RepairOneWay {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
    },
    /// Give one direction its own profile, or (`None`) the default again.
    SetLink {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The profile.
        profile: Option<LinkProfile>,
    },
    /// Set the profile of every direction without one of its own.
    SetDefaultLink(LinkProfile),
    /// Set an instance's base priority.
    SetPriority(NodeId, InstanceKey, Priority),
    /// Set a tracked object's state on a node.
    SetTrack(NodeId, TrackId, bool),
    /// Send a crafted packet from a node, to every other node or to one.
    Inject {
        /// The sending node.
        from: NodeId,
        /// One receiver, or `None` for all (multicast).
        to: Option<NodeId>,
        /// The packet.
        packet: Crafted,
    },
}

impl SimOp {
    /// The node the operation is applied to; `None` for the LAN.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            SimOp::Crash(n)
            | SimOp::Shutdown(n)
            | SimOp::Restart(n)
            | SimOp::SetPriority(n, ..)
            | SimOp::SetTrack(n, ..) => Some(*n),
            SimOp::Inject { from, .. } => Some(*from),
            SimOp::Partition(_)
            | SimOp::Heal
            | SimOp::Cut(..)
            | SimOp::CutOneWay { .. }
            | SimOp::Repair(..)
            | SimOp::RepairOneWay { .. }
            | SimOp::SetLink { .. }
            | SimOp::SetDefaultLink(_) => None,
        }
    }
}

#[derive(Debug)]
struct SimNode {
    spec: NodeSpec,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    router: Router,
    ids: Vec<(InstanceKey, InstanceId)>,
    up: bool,
    held: BTreeSet<IpAddr>,
}

impl SimNode {
    fn address(&self, family: Family) -> IpAddr {
        match family {
            Family::Ipv4 => IpAddr::V4(self.v4),
            Family::Ipv6 => IpAddr::V6(self.v6),
        }
    }

    fn id_of(&self, key: InstanceKey) -> Option<InstanceId> {
        self.ids.iter().find(|(k, _)| *k == key).map(|(_, i)| *i)
    }

    fn key_of(&self, id: InstanceId) -> Option<InstanceKey> {
        self.ids.iter().find(|(_, i)| *i == id).map(|(k, _)| *k)
    }

    fn has(&self, key: InstanceKey) -> bool {
        self.spec
            .instances
            .iter()
            .any(|c| InstanceKey::of(c) == key)
    }
}

#[derive(Debug, Clone)]
enum Pending {
    Deliver {
        from: NodeId,
        to: NodeId,
        meta: RxMeta,
        bytes: Vec<u8>,
        sent_at: Timestamp,
        crafted: bool,
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
    net: Network,
    log: Log,
    log_sends: bool,
    log_receives: bool,
    capture: bool,
    buf: Vec<u8>,
}

impl Simulation {
    /// An empty LAN at time zero; `seed` drives every random choice of
    /// the links.
    pub fn new(seed: u64) -> Self {
        Simulation {
            now: Timestamp::ZERO,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            seq: 0,
            net: Network::new(seed),
            log: Log::default(),
            log_sends: true,
            log_receives: true,
            capture: false,
            buf: vec![0; MAX_PACKET_LEN],
        }
    }

    /// The simulated time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Adds a node and starts it now. Default addresses (192.0.2.N,
    /// fe80::N) cover 254 nodes; give larger LANs their own.
    ///
    /// # Panics
    /// If the spec holds an invalid configuration, two instances with
    /// one [`InstanceKey`], a sync group or track naming an instance the
    /// node lacks, or an address another node has: a test's own mistake,
    /// reported at once.
    pub fn add_node(&mut self, spec: NodeSpec) -> NodeId {
        let n = self.nodes.len();
        let host = u8::try_from(n + 1).unwrap_or(u8::MAX);
        let v4 = spec.ipv4.unwrap_or(Ipv4Addr::new(192, 0, 2, host));
        let v6 = spec
            .ipv6
            .unwrap_or(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, n as u16 + 1));
        if let Some(other) = self.nodes.iter().find(|o| o.v4 == v4 || o.v6 == v6) {
            panic!(
                "simulated node {}: address {v4} or {v6} is already node {}'s",
                spec.name, other.spec.name
            );
        }
        self.log.add_name(&spec.name);
        self.nodes.push(SimNode {
            spec,
            v4,
            v6,
            router: Router::new(),
            ids: Vec::new(),
            up: false,
            held: BTreeSet::new(),
        });
        self.net.add_node();
        let id = NodeId(n);
        self.boot(id);
        id
    }

    /// The ids of every node, in the order they were added.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + use<> {
        (0..self.nodes.len()).map(NodeId)
    }

    /// A node's name.
    pub fn name(&self, node: NodeId) -> Option<&str> {
        self.nodes.get(node.0).map(|n| n.spec.name.as_str())
    }

    /// Whether a node is running (not crashed or shut down).
    pub fn is_up(&self, node: NodeId) -> bool {
        self.nodes.get(node.0).is_some_and(|n| n.up)
    }

    // --- the network ---

    /// The profile of every direction without one of its own.
    pub fn default_link(&self) -> LinkProfile {
        self.net.default_profile()
    }

    /// Sets the profile of every direction without one of its own.
    pub fn set_default_link(&mut self, profile: LinkProfile) {
        self.apply(SimOp::SetDefaultLink(profile));
    }

    /// The profile packets from `from` to `to` travel with.
    pub fn link(&self, from: NodeId, to: NodeId) -> LinkProfile {
        self.net.profile(from, to)
    }

    /// Gives one direction its own profile.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, profile: LinkProfile) {
        self.apply(SimOp::SetLink {
            from,
            to,
            profile: Some(profile),
        });
    }

    /// Makes one direction follow the default profile again.
    pub fn reset_link(&mut self, from: NodeId, to: NodeId) {
        self.apply(SimOp::SetLink {
            from,
            to,
            profile: None,
        });
    }

    /// The default one-way latency (100 µs unless set).
    pub fn set_latency(&mut self, latency: Duration) {
        self.set_default_link(self.default_link().with_latency(latency));
    }

    /// The default loss probability (0..=1).
    pub fn set_loss(&mut self, probability: f64) {
        self.set_default_link(self.default_link().with_loss(probability));
    }

    /// One direction's latency (the rest of its profile unchanged).
    pub fn set_link_latency(&mut self, from: NodeId, to: NodeId, latency: Duration) {
        self.set_link(from, to, self.link(from, to).with_latency(latency));
    }

    /// One direction's loss probability (the rest of its profile
    /// unchanged).
    pub fn set_link_loss(&mut self, from: NodeId, to: NodeId, probability: f64) {
        self.set_link(from, to, self.link(from, to).with_loss(probability));
    }

    /// Partitions the LAN now: each group hears only its own members; the
    /// nodes no group names form one more group together. So
    /// `partition(&[&[a]])` cuts `a` off from the rest.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        self.apply(SimOp::Partition(
            groups.iter().map(|g| g.to_vec()).collect(),
        ));
    }

    /// Ends every partition and cut now.
    pub fn heal(&mut self) {
        self.apply(SimOp::Heal);
    }

    /// Cuts both directions between `a` and `b` now.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.apply(SimOp::Cut(a, b));
    }

    /// Cuts one direction now: `to` stops hearing `from`, `from` still
    /// hears `to` (the classic cause of a VRRP split brain).
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.apply(SimOp::CutOneWay { from, to });
    }

    /// Repairs both directions between `a` and `b` now.
    pub fn repair(&mut self, a: NodeId, b: NodeId) {
        self.apply(SimOp::Repair(a, b));
    }

    /// Repairs one direction now.
    pub fn repair_one_way(&mut self, from: NodeId, to: NodeId) {
        self.apply(SimOp::RepairOneWay { from, to });
    }

    /// Whether packets from `from` reach `to` at all (no partition or cut
    /// between them; loss aside).
    pub fn can_hear(&self, from: NodeId, to: NodeId) -> bool {
        self.net.can_hear(from, to)
    }

    // --- the nodes ---

    /// Crashes a node now.
    pub fn crash(&mut self, node: NodeId) {
        self.apply(SimOp::Crash(node));
    }

    /// Shuts a node down gracefully now.
    pub fn shutdown(&mut self, node: NodeId) {
        self.apply(SimOp::Shutdown(node));
    }

    /// Restarts a stopped node now.
    pub fn restart(&mut self, node: NodeId) {
        self.apply(SimOp::Restart(node));
    }

    /// Sets an instance's base priority now (lost on restart).
    ///
    /// # Panics
    /// If the node has no such instance.
    pub fn set_priority(
        &mut self,
        node: NodeId,
        instance: impl Into<InstanceKey>,
        priority: Priority,
    ) {
        self.apply(SimOp::SetPriority(node, instance.into(), priority));
    }

    /// Sets a tracked object's state on a node now (kept across
    /// restarts).
    ///
    /// # Panics
    /// If the node does not track `track`.
    pub fn set_track(&mut self, node: NodeId, track: TrackId, up: bool) {
        self.apply(SimOp::SetTrack(node, track, up));
    }

    /// Sends a crafted packet from `from` to every other node, now, over
    /// the links (cuts, loss and delays apply). Unless the packet says
    /// otherwise it goes from `from`'s address of the packet's family to
    /// the VRRP multicast group.
    ///
    /// # Panics
    /// If the packet cannot be encoded (VRRPv2 over IPv6, an interval the
    /// version cannot carry, more than 255 addresses).
    pub fn inject(&mut self, from: NodeId, packet: Crafted) {
        self.apply(SimOp::Inject {
            from,
            to: None,
            packet,
        });
    }

    /// Sends a crafted packet from `from` to `to` only, addressed to
    /// `to`'s own address unless the packet says otherwise.
    ///
    /// # Panics
    /// As [`Simulation::inject`].
    pub fn inject_to(&mut self, from: NodeId, to: NodeId, packet: Crafted) {
        self.apply(SimOp::Inject {
            from,
            to: Some(to),
            packet,
        });
    }

    /// Applies `op` at time `at` (now if in the past).
    ///
    /// # Panics
    /// When applied, as the method of the same name.
    pub fn schedule(&mut self, at: Timestamp, op: SimOp) {
        let at = at.max(self.now);
        self.push(at, Pending::Op(op));
    }

    // --- running ---

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs until `until`, processing every event and timer up to it.
    /// See the [module docs](self#same-instant-ordering) for the order of
    /// events at one instant.
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

    // --- the log ---

    /// The event log so far.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Whether sent advertisements are logged (on by default; off makes
    /// long runs lighter).
    pub fn log_sends(&mut self, on: bool) {
        self.log_sends = on;
    }

    /// Whether accepted advertisements are logged (on by default).
    pub fn log_receives(&mut self, on: bool) {
        self.log_receives = on;
    }

    /// Whether the bytes of every advertisement sent are logged
    /// ([`LogKind::Captured`]; off by default).
    pub fn capture_packets(&mut self, on: bool) {
        self.capture = on;
    }

    // --- queries ---

    /// The router of a node (its instances, statistics, ...), also while
    /// the node is down (then as it was when it stopped).
    pub fn router(&self, node: NodeId) -> Option<&Router> {
        self.nodes.get(node.0).map(|n| &n.router)
    }

    /// A running node's instance.
    pub fn instance(&self, node: NodeId, instance: impl Into<InstanceKey>) -> Option<&Instance> {
        let n = self.nodes.get(node.0).filter(|n| n.up)?;
        n.router.instance(n.id_of(instance.into())?)
    }

    /// The state of a running node's instance.
    pub fn state(&self, node: NodeId, instance: impl Into<InstanceKey>) -> Option<State> {
        self.instance(node, instance).map(Instance::state)
    }

    /// An instance's Master_Down_Interval at its current priority and
    /// master's interval (RFC 5798 6.1), to the nanosecond.
    pub fn master_down_interval(
        &self,
        node: NodeId,
        instance: impl Into<InstanceKey>,
    ) -> Option<Duration> {
        self.instance(node, instance)
            .map(Instance::master_down_interval)
    }

    /// An instance's Skew_Time (RFC 5798 6.1), to the nanosecond.
    pub fn skew_time(&self, node: NodeId, instance: impl Into<InstanceKey>) -> Option<Duration> {
        self.instance(node, instance).map(Instance::skew_time)
    }

    /// An instance's priority after tracked objects' weights.
    pub fn effective_priority(
        &self,
        node: NodeId,
        instance: impl Into<InstanceKey>,
    ) -> Option<Priority> {
        self.instance(node, instance)
            .map(Instance::effective_priority)
    }

    /// The running nodes that are master of `instance`.
    pub fn masters(&self, instance: impl Into<InstanceKey>) -> Vec<NodeId> {
        let key = instance.into();
        self.nodes()
            .filter(|n| self.state(*n, key) == Some(State::Master))
            .collect()
    }

    /// The nodes that currently hold `addr` as a virtual address.
    pub fn holders(&self, addr: IpAddr) -> Vec<NodeId> {
        self.nodes()
            .filter(|n| self.nodes[n.0].held.contains(&addr))
            .collect()
    }

    /// A node's address for `family`.
    pub fn address(&self, node: NodeId, family: Family) -> Option<IpAddr> {
        self.nodes.get(node.0).map(|n| n.address(family))
    }

    // --- internals ---

    fn push(&mut self, at: Timestamp, p: Pending) {
        let seq = self.seq;
        self.seq += 1;
        self.pending.insert(seq, p);
        self.queue.push(Reverse((at, seq)));
    }

    fn record(&mut self, node: Option<NodeId>, kind: LogKind) {
        self.log.push(LogEntry {
            at: self.now,
            node,
            kind,
        });
    }

    fn boot(&mut self, id: NodeId) {
        let now = self.now;
        let node = &mut self.nodes[id.0];
        let name = &node.spec.name;
        let mut router = Router::new();
        let mut ids = Vec::new();
        for config in &node.spec.instances {
            let mut c = config.clone();
            c.primary_address = node.address(c.family());
            let key = InstanceKey::of(&c);
            match router.add_instance(SIM_INTERFACE, c) {
                Ok(i) => ids.push((key, i)),
                Err(e) => panic!("simulated node {name}: {e}"),
            }
        }
        let find = |key: &InstanceKey| match ids.iter().find(|(k, _)| k == key) {
            Some((_, i)) => *i,
            None => panic!("simulated node {name} has no instance {key}"),
        };
        for g in &node.spec.sync_groups {
            let members: Vec<InstanceId> = g.iter().map(find).collect();
            if let Err(e) = router.add_sync_group(&members) {
                panic!("simulated node {name}: {e}");
            }
        }
        for t in &node.spec.tracks {
            let targets: Vec<InstanceId> = match &t.instance {
                Some(key) => vec![find(key)],
                None => ids.iter().map(|(_, i)| *i).collect(),
            };
            for iid in targets {
                if let Err(e) = router.track(now, iid, t.id, t.config, t.up) {
                    panic!("simulated node {name}: {e}");
                }
            }
        }
        router.handle_startup(now);
        node.router = router;
        node.ids = ids;
        node.up = true;
        node.held.clear();
        self.drain(id);
    }

    fn node_mut(&mut self, n: NodeId) -> &mut SimNode {
        match self.nodes.get_mut(n.0) {
            Some(node) => node,
            None => panic!("no simulated node {}", n.0),
        }
    }

    fn apply(&mut self, op: SimOp) {
        let now = self.now;
        for n in op_nodes(&op) {
            if n.0 >= self.nodes.len() {
                panic!("{op}: no simulated node {}", n.0);
            }
        }
        self.record(op.node(), LogKind::Op(op.clone()));
        match op {
            SimOp::Crash(n) => {
                let node = self.node_mut(n);
                // A dead machine's addresses die with it.
                node.up = false;
                node.held.clear();
            }
            SimOp::Shutdown(n) => {
                if self.node_mut(n).up {
                    self.nodes[n.0].router.handle_shutdown(now);
                    self.drain(n);
                    self.nodes[n.0].up = false;
                }
            }
            SimOp::Restart(n) => {
                if !self.node_mut(n).up {
                    self.boot(n);
                }
            }
            SimOp::Partition(groups) => self.net.partition(&groups),
            SimOp::Heal => self.net.heal(),
            SimOp::Cut(a, b) => {
                self.net.cut(a, b);
                self.net.cut(b, a);
            }
            SimOp::CutOneWay { from, to } => self.net.cut(from, to),
            SimOp::Repair(a, b) => {
                self.net.repair(a, b);
                self.net.repair(b, a);
            }
            SimOp::RepairOneWay { from, to } => self.net.repair(from, to),
            SimOp::SetLink { from, to, profile } => self.net.set_link(from, to, profile),
            SimOp::SetDefaultLink(p) => self.net.set_default(p),
            SimOp::SetPriority(n, key, prio) => {
                let node = self.node_mut(n);
                if !node.has(key) {
                    panic!("simulated node {} has no instance {key}", node.spec.name);
                }
                if node.up {
                    if let Some(i) = node.id_of(key) {
                        // Priority 0 is refused by the engine: a test that
                        // tries it sees no change.
                        let _ = node.router.set_base_priority(now, i, prio);
                    }
                    self.drain(n);
                }
            }
            SimOp::SetTrack(n, track, up) => {
                let node = self.node_mut(n);
                if !node.spec.tracks.iter().any(|t| t.id == track) {
                    panic!(
                        "simulated node {} does not track {}",
                        node.spec.name, track.0
                    );
                }
                // Keep the spec in step: the object is outside the
                // daemon, so a restart sees its new state.
                for t in &mut node.spec.tracks {
                    if t.id == track {
                        t.up = up;
                    }
                }
                if node.up {
                    node.router.set_track_state(now, track, up);
                    self.drain(n);
                }
            }
            SimOp::Inject { from, to, packet } => self.inject_now(from, to, &packet),
        }
    }

    fn inject_now(&mut self, from: NodeId, to: Option<NodeId>, packet: &Crafted) {
        let family = packet.packet_family();
        let src = packet
            .source_override()
            .unwrap_or_else(|| self.nodes[from.0].address(family));
        let dst = packet.destination_override().unwrap_or_else(|| match to {
            Some(t) => self.nodes[t.0].address(family),
            None => wire::multicast_group(family),
        });
        let bytes = match packet.encode(src, dst) {
            Ok(b) => b,
            Err(e) => panic!("crafted packet {packet} cannot be encoded: {e}"),
        };
        let meta = RxMeta {
            src,
            dst,
            ttl: Some(packet.arrival_ttl()),
        };
        let targets: Vec<NodeId> = match to {
            Some(t) => vec![t],
            None => self.nodes().filter(|n| *n != from).collect(),
        };
        self.send(from, &targets, meta, &bytes, true);
    }

    /// Puts a packet on the links from `from` to each of `targets`.
    fn send(
        &mut self,
        from: NodeId,
        targets: &[NodeId],
        meta: RxMeta,
        bytes: &[u8],
        crafted: bool,
    ) {
        for &to in targets {
            match self.net.fate(from, to) {
                Fate::Unreachable => {}
                Fate::Lost => self.record(Some(to), LogKind::Lost { from }),
                Fate::Delivered(delays) => {
                    if delays.len() > 1 {
                        self.record(Some(to), LogKind::Duplicated { from });
                    }
                    for d in delays {
                        let deliver = Pending::Deliver {
                            from,
                            to,
                            meta,
                            bytes: bytes.to_vec(),
                            sent_at: self.now,
                            crafted,
                        };
                        self.push(self.now + d, deliver);
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
                sent_at,
                crafted,
            } => {
                let now = self.now;
                // A node with no instances (a test station) runs no VRRP
                // and ignores every packet.
                let Some(node) = self
                    .nodes
                    .get_mut(to.0)
                    .filter(|n| n.up && !n.spec.instances.is_empty())
                else {
                    return;
                };
                let result = node.router.handle_packet(now, SIM_INTERFACE, &meta, &bytes);
                let accepted = result.ok().and_then(|iid| node.key_of(iid));
                // The instance a dropped packet was meant for, by its VRID.
                let routed = bytes.get(1).and_then(|v| {
                    node.router
                        .lookup(SIM_INTERFACE, Family::of(&meta.src), *v)
                        .and_then(|i| node.key_of(i))
                });
                match result {
                    Ok(_) => {
                        if self.log_receives
                            && let Some(instance) = accepted
                        {
                            let priority = Priority::new(bytes.get(2).copied().unwrap_or(0));
                            self.record(
                                Some(to),
                                LogKind::Received {
                                    instance,
                                    from,
                                    priority,
                                    sent_at,
                                },
                            );
                        }
                    }
                    Err(DropReason::UnknownVrid) if !crafted => {}
                    Err(reason) => self.record(
                        Some(to),
                        LogKind::Dropped {
                            from,
                            instance: routed,
                            reason,
                        },
                    ),
                }
                self.drain(to);
            }
        }
    }

    fn drain(&mut self, id: NodeId) {
        while let Some((iid, out)) = self.nodes[id.0].router.poll_output() {
            let node = &self.nodes[id.0];
            let Some(instance) = node.key_of(iid) else {
                continue;
            };
            match out {
                Output::Transmit(t) => {
                    let len = match node.router.encode(iid, &t, &mut self.buf) {
                        Ok(len) => len,
                        Err(e) => panic!("encoding failed in the simulator: {e}"),
                    };
                    let bytes = self.buf[..len].to_vec();
                    let src = node.address(Family::of(&t.destination));
                    let targets: Vec<NodeId> = if t.destination.is_multicast() {
                        self.nodes().filter(|n| *n != id).collect()
                    } else {
                        self.nodes()
                            .filter(|n| {
                                self.nodes[n.0].address(Family::of(&t.destination)) == t.destination
                            })
                            .collect()
                    };
                    if self.log_sends {
                        self.record(
                            Some(id),
                            LogKind::Sent {
                                instance,
                                to: t.destination,
                                priority: t.priority,
                            },
                        );
                    }
                    if self.capture {
                        self.record(
                            Some(id),
                            LogKind::Captured {
                                instance,
                                to: t.destination,
                                ttl: REQUIRED_TTL,
                                bytes: bytes.clone(),
                            },
                        );
                    }
                    let meta = RxMeta {
                        src,
                        dst: t.destination,
                        ttl: Some(REQUIRED_TTL),
                    };
                    self.send(id, &targets, meta, &bytes, false);
                }
                Output::AddAddresses { addresses, .. } => {
                    let addresses: Vec<IpAddr> = addresses.iter().map(|v| v.addr).collect();
                    self.nodes[id.0].held.extend(addresses.iter().copied());
                    self.record(
                        Some(id),
                        LogKind::AddressesAdded {
                            instance,
                            addresses,
                        },
                    );
                }
                Output::RemoveAddresses { addresses, .. } => {
                    let addresses: Vec<IpAddr> = addresses.iter().map(|v| v.addr).collect();
                    for a in &addresses {
                        self.nodes[id.0].held.remove(a);
                    }
                    self.record(
                        Some(id),
                        LogKind::AddressesRemoved {
                            instance,
                            addresses,
                        },
                    );
                }
                Output::Announce { count, .. } => {
                    self.record(Some(id), LogKind::Announced { instance, count })
                }
                Output::StateChanged { from, to, reason } => {
                    self.record(
                        Some(id),
                        LogKind::StateChanged {
                            instance,
                            from,
                            to,
                            reason,
                        },
                    );
                }
                Output::PriorityChanged { to, .. } => {
                    self.record(Some(id), LogKind::PriorityChanged { instance, to })
                }
            }
        }
    }
}

/// Every node an operation names.
fn op_nodes(op: &SimOp) -> Vec<NodeId> {
    match op {
        SimOp::Crash(n)
        | SimOp::Shutdown(n)
        | SimOp::Restart(n)
        | SimOp::SetPriority(n, ..)
        | SimOp::SetTrack(n, ..) => vec![*n],
        SimOp::Partition(groups) => groups.iter().flatten().copied().collect(),
        SimOp::Heal | SimOp::SetDefaultLink(_) => Vec::new(),
        SimOp::Cut(a, b) | SimOp::Repair(a, b) => vec![*a, *b],
        SimOp::CutOneWay { from, to }
        | SimOp::RepairOneWay { from, to }
        | SimOp::SetLink { from, to, .. } => vec![*from, *to],
        SimOp::Inject { from, to, .. } => [Some(*from), *to].into_iter().flatten().collect(),
    }
}
