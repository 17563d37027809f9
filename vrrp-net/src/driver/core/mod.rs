//! The driver's policy, sans IO: a [`vrrp_core::Router`] plus everything
//! the driver decides that is not protocol — which sockets exist, which
//! addresses belong on which interface, what a reload changes — with no
//! clock, no socket and no tokio, so that every rule is a unit test in
//! simulated time.
//!
//! # Contract (quinn-proto's, str0m's)
//! - Inputs are the `handle_*` methods and the commands
//!   ([`DriverCore::set_priority`], [`DriverCore::set_track`],
//!   [`DriverCore::commit_reload`], [`DriverCore::start`],
//!   [`DriverCore::shutdown`]); each takes `now`, the time since the
//!   driver's epoch. A received packet also carries when it arrived.
//! - After any of them, drain [`DriverCore::poll_effect`] until `None` and
//!   carry out each [`Effect`] in order: advertisements leave before
//!   addresses change, addresses change before they are announced (the
//!   advertisements one input causes come first, in one [`Effect::Send`]
//!   per socket and source, so a shell may also put them on the wire
//!   ahead of effects still pending from earlier inputs). Then
//!   read [`DriverCore::poll_timeout`] and call
//!   [`DriverCore::handle_timeout`] when it is due (early or repeated calls
//!   do nothing).
//! - Results of effects come back as inputs: an address change's outcome
//!   ([`DriverCore::handle_address_result`]), a socket opened or not
//!   ([`DriverCore::handle_socket_report`]), what a send did
//!   ([`DriverCore::handle_send_report`]).
//!
//! ```
//! use vrrp_core::{InstanceConfig, Timestamp, Version, VirtualAddress, Vrid};
//! use vrrp_net::driver::core::{DriverCore, Effect, SocketReport};
//! use vrrp_net::driver::{DriverConfig, InstanceSpec};
//! # use vrrp_net::link::{LinkInfo, OperState};
//! # use vrrp_net::addr::{AddrScope, IfAddr};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = InstanceConfig::new(Vrid::new(7).ok_or("vrid")?, Version::V3, "0.0.0.0".parse()?)
//!     .with_address(VirtualAddress::host("192.0.2.100".parse()?));
//! let spec = InstanceSpec::new("VI_7", "eth0", config);
//! let mut core = DriverCore::new(&DriverConfig { instances: vec![spec], ..Default::default() }, vec![])?;
//! // What the kernel has: eth0 (index 2), up, with 192.0.2.1/24.
//! # let eth0 = LinkInfo { ifindex: 2, name: "eth0".into(), mac: Some([2, 0, 0, 0, 0, 1]),
//! #     flags: 0x41, operstate: OperState::Up, mtu: Some(1500) };
//! # let primary = IfAddr { ifindex: 2, addr: "192.0.2.1".parse()?, prefix_len: 24, label: None,
//! #     scope: AddrScope::Universe, flags: 0, broadcast: None };
//! core.handle_dump(Timestamp::ZERO, vec![eth0], vec![primary]);
//! // The shell opens the sockets the core wants, and says so.
//! while let Some(effect) = core.poll_effect() {
//!     if let Effect::Sockets(wanted) = effect {
//!         for s in wanted {
//!             let opened = SocketReport::Opened { ifindex: s.ifindex, join_multicast: s.join_multicast };
//!             core.handle_socket_report(Timestamp::ZERO, s.key, opened);
//!         }
//!     }
//! }
//! core.start(Timestamp::ZERO);
//! // Nobody else advertises: at the deadline the instance takes over,
//! // advertises, then asks for its address.
//! while core.poll_effect().is_some() {}
//! let deadline = core.poll_timeout().ok_or("a deadline")?;
//! core.handle_timeout(deadline.at);
//! let effects: Vec<Effect> = std::iter::from_fn(|| core.poll_effect()).collect();
//! let send = effects.iter().position(|e| matches!(e, Effect::Send(_)));
//! let add = effects.iter().position(|e| matches!(e, Effect::AddAddress(_)));
//! assert!(send.is_some() && send < add);
//! # Ok(())
//! # }
//! ```
//!
//! # Owning kernel state
//! Addresses are reconciled level-triggered, like a controller: the
//! desired set (every virtual address of every master instance) against
//! what the kernel has (events, and full dumps that replace everything)
//! and what the driver added (a record that outlives the process). The
//! driver adds what is missing (again and again, with back-off, if it
//! fails), removes only what it added, and reports addresses equal to a
//! virtual address that someone else added.
//!
//! Interfaces are followed by name: an instance is *bound* when its
//! interface exists, has a source address and an open socket; while it is
//! not, a weight-0 tracked object holds it in Fault.

mod accept;
mod addresses;
mod extra_garp;
mod owned;
mod peers;
pub mod record;
mod reload;
#[cfg(test)]
mod route_tests;
mod routes;
mod rules;
mod tables;
#[cfg(test)]
mod tests;
mod vmac;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use vrrp_core::{
    ConfigError, DeadlineKind, DropReason, Family, InstanceConfig, InstanceId, Output, Priority,
    Router, RouterError, RxMeta, State, Timestamp, TrackConfig, TrackId, VirtualAddress,
};

use self::addresses::{VipKey, VipTrack, VipWant, static_vips, synthetic_address};
pub use self::extra_garp::GarpExtraIf;
use self::peers::PeerTable;
pub use self::peers::{MAX_PEERS, PEER_EXPIRY};
use self::record::{FlightRecord, Input, Recorder};
pub use self::reload::ReloadPlan;
pub use self::routes::RouteOp;
pub use self::tables::IfaceId;
use self::tables::{Interfaces, Kernel, TrackName, Tracks};
pub use self::vmac::{VmacOp, VmacRemoval};
use super::api::{
    AdvertWatch, DriverConfig, DriverError, ForeignAddressPolicy, InstanceSpec, InstanceStatus,
    Snapshot, StateEvent, TrackKey, Unbound, VipStatus,
};
use crate::addr::IfAddr;
use crate::link::{LinkEvent, LinkInfo};
use crate::route::Route;
use crate::rule::Rule;

/// A change of ours answered before the kernel's notification of it was
/// read waits this long for that echo (see `VipTrack::echoes`), then
/// takes it as lost (a notification overrun clears them at once).
const ECHO_WAIT: Duration = Duration::from_secs(2);

/// Changes of ours (`true` an add) answered before the kernel's notice of
/// them was read, oldest first, with when they were answered: see
/// `VipTrack::echoes`. Kept per virtual address, route and rule.
#[derive(Debug, Default)]
struct Echoes(std::collections::VecDeque<(bool, Timestamp)>);

impl Echoes {
    fn push(&mut self, added: bool, now: Timestamp) {
        self.0.push_back((added, now));
    }

    /// Forgets those not echoed within [`ECHO_WAIT`]; how many.
    fn expire(&mut self, now: Timestamp) -> usize {
        let before = self.0.len();
        self.0
            .retain(|&(_, at)| now.saturating_since(at) <= ECHO_WAIT);
        before - self.0.len()
    }

    /// A notice of kind `added`: the echo it is. The kernel notifies in
    /// the order it changes, so it is the echo of the first change of
    /// that kind waiting (those before it were echoed, unread or lost).
    fn take(&mut self, added: bool) -> Echo {
        let Some(at) = self.0.iter().position(|&(a, _)| a == added) else {
            return Echo::None;
        };
        self.0.drain(..=at);
        if self.0.is_empty() {
            Echo::Latest
        } else {
            Echo::Outdated
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// What a notification is to the changes of ours answered before it was
/// read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Echo {
    /// None of theirs: someone else's change, or that of ours out now.
    None,
    /// The echo of the latest of them: what the kernel has now.
    Latest,
    /// The echo of an earlier one: the table already holds a later one.
    Outdated,
}

/// The first retry of a failed address change waits this long; each
/// further failure doubles it, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two attempts at an address change.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// A dropped advertisement of a notable kind is logged at most this often
/// per interface, VRID and reason (RFC 5798 7.1: "SHOULD log the event
/// (subject to rate-limiting)").
const DROP_LOG_SPACING: Duration = Duration::from_secs(10);

/// One raw socket of the driver: an interface (by name) and a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketKey {
    /// The interface.
    pub iface: IfaceId,
    /// The family.
    pub family: Family,
}

/// A socket the driver wants open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// Its key.
    pub key: SocketKey,
    /// The interface name.
    pub interface: String,
    /// The interface's index now: a socket bound to another one (an
    /// interface of that name deleted and re-created) must be re-opened.
    pub ifindex: u32,
    /// Whether it must be a member of the VRRP multicast group (some
    /// instance on it uses multicast).
    pub join_multicast: bool,
}

/// What became of a socket the driver wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketReport {
    /// It is open on this interface index, with this membership.
    Opened {
        /// The interface index it is bound to.
        ifindex: u32,
        /// Whether it joined the multicast group.
        join_multicast: bool,
    },
    /// It could not be opened.
    Failed(String),
}

/// Advertisements to send out of one socket in one batch (one `sendmmsg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBatch {
    /// The socket.
    pub socket: SocketKey,
    /// The source address of every datagram (their checksums cover it).
    pub source: IpAddr,
    /// The payloads, back to back.
    pub bytes: Vec<u8>,
    /// Each datagram: its range in `bytes` and its destination.
    pub datagrams: Vec<(Range<usize>, IpAddr)>,
}

impl SendBatch {
    /// Each datagram's payload and destination.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], IpAddr)> {
        self.datagrams
            .iter()
            .filter_map(|(r, d)| Some((self.bytes.get(r.clone())?, *d)))
    }
}

/// What a send did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams dropped because the send buffer was full.
    pub dropped: usize,
    /// Datagrams the kernel refused.
    pub failed: usize,
}

/// An address the driver added, as recorded across runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnedAddress {
    /// The interface name.
    pub device: String,
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
}

impl OwnedAddress {
    /// The address with its prefix length.
    pub fn address(&self) -> VirtualAddress {
        VirtualAddress {
            addr: self.addr,
            prefix_len: self.prefix_len,
        }
    }
}

/// An address to add or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressOp {
    /// The interface index.
    pub ifindex: u32,
    /// The interface name.
    pub device: String,
    /// The address.
    pub address: VirtualAddress,
    /// IPv4 label.
    pub label: Option<String>,
    /// Scope, broadcast, peer, preferred lifetime.
    pub attrs: crate::addr::AddrAttrs,
}

/// Gratuitous ARPs / unsolicited neighbour advertisements to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The instance they are for (for logs).
    pub instance: String,
    /// The interface index.
    pub ifindex: u32,
    /// The interface's hardware address.
    pub mac: [u8; 6],
    /// The addresses.
    pub addresses: Vec<IpAddr>,
    /// Packets per address.
    pub count: u32,
    /// Spacing between them.
    pub interval: Duration,
}

/// Something the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effect {
    /// Send advertisements (never waiting for a full buffer).
    Send(SendBatch),
    /// Add an address; report with [`DriverCore::handle_address_result`].
    AddAddress(AddressOp),
    /// Remove an address; report with
    /// [`DriverCore::handle_address_result`].
    RemoveAddress(AddressOp),
    /// Announce addresses, after the address changes queued before.
    Announce(Announcement),
    /// The sockets wanted now: open what is missing or bound to another
    /// interface index or membership, close the rest; report each with
    /// [`DriverCore::handle_socket_report`].
    Sockets(Vec<SocketSpec>),
    /// The record of added addresses changed: write it, as
    /// [`DriverCore::owned`] gives it when this is carried out (a chain of
    /// takeovers asks for one write, not for a copy of the whole record
    /// per takeover while its advertisements are still going out).
    PersistOwned,
    /// A state change for subscribers.
    Event(StateEvent),
    /// Make a virtual MAC interface (or make an existing one as wanted);
    /// report with [`DriverCore::handle_vmac_result`].
    EnsureVmac(VmacOp),
    /// Delete a virtual MAC interface of ours; report with
    /// [`DriverCore::handle_vmac_result`].
    RemoveVmac(VmacRemoval),
    /// The record of the virtual MAC interfaces the driver made changed:
    /// write it.
    PersistOwnedLinks(Vec<String>),
    /// Add a route; report with [`DriverCore::handle_route_result`].
    AddRoute(RouteOp),
    /// Remove a route; report with [`DriverCore::handle_route_result`].
    RemoveRoute(RouteOp),
    /// The record of added routes changed: write it.
    PersistRoutes(Vec<Route>),
    /// Add a policy rule; report with [`DriverCore::handle_rule_result`].
    AddRule(Rule),
    /// Remove a policy rule; report with
    /// [`DriverCore::handle_rule_result`].
    RemoveRule(Rule),
    /// The record of added rules changed: write it.
    PersistRules(Vec<Rule>),
    /// Make the accept-mode firewall block exactly these addresses
    /// (RFC 5798 6.4.3; see [`crate::firewall`]); report with
    /// [`DriverCore::handle_firewall_result`].
    Firewall(BTreeSet<crate::firewall::BlockedAddress>),
}

/// The next time [`DriverCore::handle_timeout`] is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreDeadline {
    /// When.
    pub at: Timestamp,
    /// Whether it is a takeover (see [`vrrp_core::DeadlineKind`]).
    pub takeover: bool,
}

struct Entry {
    name: String,
    spec: InstanceSpec,
    iface: IfaceId,
    family: Family,
    /// The source follows the interface's address (primary address
    /// unspecified in the configuration).
    auto_source: bool,
    binding: Result<(u32, IpAddr), Unbound>,
    binding_track: TrackId,
    vips: Vec<(VipKey, VipWant)>,
    /// The tracked objects applied in the router, with their config.
    tracks: Vec<(TrackId, TrackConfig)>,
    multicast: bool,
    /// The accepted advertisements so far, and when the last came.
    adverts: AdvertWatch,
    last_advert: Option<Timestamp>,
    /// The routers heard on this virtual router.
    peers: PeerTable,
    /// Gratuitous ARPs and unsolicited NAs sent for it.
    garps_sent: u64,
    nas_sent: u64,
}

#[derive(Debug, Default, Clone)]
struct SocketSlot {
    open: Option<(u32, bool)>,
    error: Option<String>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    send_errors: u64,
    send_dropped: u64,
    address_errors: u64,
    announce_errors: u64,
    vips_restored: u64,
    foreign_addresses: u64,
    foreign_removed: u64,
    leftovers_removed: u64,
    reconciliations: u64,
    netlink_overruns: u64,
    state_file_errors: u64,
}

/// How often silent peers are swept out of the peer tables. Status reads
/// leave out a peer past [`peers::PEER_EXPIRY`] at once; the sweep only
/// frees its row.
const PEER_SWEEP: Duration = Duration::from_secs(1);

/// The sans-IO driver core. See the [module docs](self).
pub struct DriverCore {
    router: Router,
    foreign_policy: ForeignAddressPolicy,
    entries: BTreeMap<InstanceId, Entry>,
    names: HashMap<String, InstanceId>,
    /// Configuration order.
    order: Vec<InstanceId>,
    groups: Vec<Vec<String>>,
    ifaces: Interfaces,
    kernel: Kernel,
    tracks: Tracks,
    sockets: BTreeMap<SocketKey, SocketSlot>,
    wanted_sockets: BTreeMap<SocketKey, SocketSpec>,
    owned: BTreeSet<VipKey>,
    owned_dirty: bool,
    /// See [`DriverCore::set_hurry`].
    hurry: bool,
    /// What the router said while hurried, with when, in order.
    deferred: VecDeque<(Timestamp, InstanceId, Output)>,
    vips: BTreeMap<VipKey, VipTrack>,
    /// Address changes waiting to be tried again, by when.
    retries: BTreeSet<(Timestamp, VipKey)>,
    /// Which instances list each virtual address key.
    vip_index: HashMap<VipKey, Vec<InstanceId>>,
    /// The static addresses (wanted from start to stop), by key.
    static_vips: BTreeMap<VipKey, VipWant>,
    effects: VecDeque<Effect>,
    outbox: Vec<SendBatch>,
    /// While a drain runs: where in `effects` its advertisements go.
    sends_at: Option<usize>,
    buf: Vec<u8>,
    counters: Counters,
    last_packet: Timestamp,
    /// When the peer tables were last swept of silent peers (a sweep walks
    /// every instance: once a second, not on every wake, and never in the
    /// middle of a chain of takeovers for more than one of them).
    peers_swept_at: Option<Timestamp>,
    started: bool,
    /// The first reconciliation after start is still to come: what it
    /// removes from the record is a leftover of an earlier run.
    first_reconcile: bool,
    changed: bool,
    drop_logged: HashMap<(IfaceId, u8, DropReason), Timestamp>,
    /// The flight recorder of the router's inputs and transitions.
    recorder: Recorder,
    vmacs: vmac::VmacTable,
    routes: owned::Owned<Route>,
    rules: owned::Owned<Rule>,
    /// Shutting down: no route or rule is wanted any more.
    stopping: bool,
    /// The accept-mode firewall.
    firewall: accept::FirewallTrack,
    /// When each master's next `garp_extra_if` packets are due.
    extra_garp: BTreeMap<InstanceId, Timestamp>,
}

impl std::fmt::Debug for DriverCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverCore")
            .field("instances", &self.order.len())
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl DriverCore {
    /// A core for `config`, knowing that an earlier run recorded `owned`
    /// as added by it. Checks the configuration; resolves nothing against
    /// the system yet (feed [`DriverCore::handle_dump`]), starts nothing
    /// (call [`DriverCore::start`]).
    pub fn new(config: &DriverConfig, owned: Vec<OwnedAddress>) -> Result<Self, DriverError> {
        reload::validate(config)?;
        let mut core = DriverCore {
            router: Router::new(),
            foreign_policy: config.foreign_addresses,
            entries: BTreeMap::new(),
            names: HashMap::new(),
            order: Vec::new(),
            groups: config.sync_groups.clone(),
            ifaces: Interfaces::default(),
            kernel: Kernel::default(),
            tracks: Tracks::default(),
            sockets: BTreeMap::new(),
            wanted_sockets: BTreeMap::new(),
            owned: owned.iter().map(VipKey::from).collect(),
            owned_dirty: false,
            hurry: false,
            deferred: VecDeque::new(),
            vips: BTreeMap::new(),
            retries: BTreeSet::new(),
            vip_index: HashMap::new(),
            static_vips: static_vips(&config.static_addresses),
            effects: VecDeque::new(),
            outbox: Vec::new(),
            sends_at: None,
            buf: vec![0; vrrp_core::wire::MAX_PACKET_LEN],
            counters: Counters::default(),
            last_packet: Timestamp::ZERO,
            peers_swept_at: None,
            started: false,
            first_reconcile: true,
            changed: false,
            drop_logged: HashMap::new(),
            recorder: Recorder::default(),
            vmacs: vmac::VmacTable::default(),
            routes: owned::Owned::default(),
            rules: owned::Owned::default(),
            stopping: false,
            firewall: accept::FirewallTrack::default(),
            extra_garp: BTreeMap::new(),
        };
        core.routes.statics = config.static_routes.clone();
        core.rules.statics = config.static_rules.clone();
        for spec in &config.instances {
            let id = core.add_entry(Timestamp::ZERO, spec.clone())?;
            core.order.push(id);
        }
        core.add_groups(&config.sync_groups, |_| true)?;
        Ok(core)
    }

    // ------------------------------------------------------------------
    // Outputs.

    /// The next effect to carry out.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`DriverCore::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<CoreDeadline> {
        let router = self.router.poll_deadline().map(|d| CoreDeadline {
            at: d.at,
            takeover: d.kind == DeadlineKind::Takeover,
        });
        let retry = self
            .retries
            .first()
            .map(|(at, _)| *at)
            .into_iter()
            .chain(self.routes.next_retry())
            .chain(self.rules.next_retry())
            .chain(self.vmac_deadline())
            .chain(self.firewall_deadline())
            .chain(self.extra_garp_deadline())
            .min()
            .map(|at| CoreDeadline {
                at,
                takeover: false,
            });
        [router, retry]
            .into_iter()
            .flatten()
            .min_by_key(|d| (d.at, !d.takeover))
    }

    /// Whether the status changed since the last call (a transition, a
    /// priority change, an address change): time to publish a snapshot.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The status of every instance and the driver's counters (socket
    /// counters, which the core does not see, are zero).
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let instances = self
            .order
            .iter()
            .filter_map(|id| {
                let e = self.entries.get(id)?;
                let inst = self.router.instance(*id)?;
                let vips = e
                    .vips
                    .iter()
                    .map(|(key, _)| {
                        let t = self.vips.get(key);
                        let present = self.observed(key);
                        VipStatus {
                            address: key.address(),
                            device: key.device.clone(),
                            present,
                            ours: self.owned.contains(key),
                            foreign: t.is_some_and(|t| t.conflict),
                            add_failures: t.map_or(0, |t| t.failures),
                            restored: t.map_or(0, |t| t.restored),
                            last_error: t.and_then(|t| t.last_error.clone()),
                        }
                    })
                    .collect();
                Some(InstanceStatus {
                    name: e.name.clone(),
                    interface: e.spec.interface.clone(),
                    vrid: inst.config().vrid,
                    state: inst.state(),
                    priority: inst.effective_priority(),
                    base_priority: inst.config().priority,
                    maintenance: inst.in_maintenance(),
                    master: inst.master_address(),
                    source: e.binding.as_ref().ok().map(|(_, s)| *s),
                    unbound: e.binding.as_ref().err().cloned(),
                    vips,
                    stats: *inst.statistics(),
                    adverts: e.adverts.clone(),
                    master_priority: if inst.state() == State::Master {
                        Some(inst.effective_priority())
                    } else {
                        inst.master_address().and_then(|m| e.peers.priority_of(m))
                    },
                    peers: e.peers.status(self.last_packet),
                    garps_sent: e.garps_sent,
                    nas_sent: e.nas_sent,
                })
            })
            .collect();
        let c = self.counters;
        Snapshot {
            instances,
            router: *self.router.statistics(),
            send_errors: c.send_errors,
            send_dropped: c.send_dropped,
            address_errors: c.address_errors,
            announce_errors: c.announce_errors,
            vips_restored: c.vips_restored,
            foreign_addresses: c.foreign_addresses,
            foreign_removed: c.foreign_removed,
            leftovers_removed: c.leftovers_removed,
            reconciliations: c.reconciliations,
            netlink_overruns: c.netlink_overruns,
            state_file_errors: c.state_file_errors,
            routes_restored: self.routes.counters.restored,
            route_errors: self.routes.counters.errors,
            foreign_routes: self.routes.counters.foreign,
            route_leftovers_removed: self.routes.counters.leftovers_removed,
            rules_restored: self.rules.counters.restored,
            rule_errors: self.rules.counters.errors,
            foreign_rules: self.rules.counters.foreign,
            rule_leftovers_removed: self.rules.counters.leftovers_removed,
            peers_evicted: self.entries.values().map(|e| e.peers.evicted()).sum(),
            firewall_errors: self.firewall.errors,
            firewall_repairs: self.firewall.repairs,
            ..Snapshot::default()
        }
    }

    /// The addresses the driver has added and not removed.
    pub fn owned(&self) -> Vec<OwnedAddress> {
        self.owned.iter().map(VipKey::owned).collect()
    }

    /// The sockets wanted now (also given by [`Effect::Sockets`]).
    pub fn wanted_sockets(&self) -> Vec<SocketSpec> {
        self.wanted_sockets.values().cloned().collect()
    }

    /// The flight recorder's contents: every input given to the router
    /// and every transition, bounded (see [`record`]).
    pub fn flight_record(&self) -> FlightRecord {
        self.recorder.dump()
    }

    /// The router, to read.
    pub fn router(&self) -> &Router {
        &self.router
    }

    // ------------------------------------------------------------------
    // Inputs.

    /// A full read of the kernel's links and addresses: replaces all that
    /// was known (level-triggered; events may have been lost).
    pub fn handle_dump(&mut self, now: Timestamp, links: Vec<LinkInfo>, addrs: Vec<IfAddr>) {
        self.kernel.replace(links, addrs);
        if self.started {
            self.counters.reconciliations += 1;
        }
        self.refresh(now);
    }

    /// Like [`DriverCore::handle_dump`] for a read that started at
    /// `taken_at` and is handled later: address changes the core saw
    /// finish after `taken_at` are newer than the read and are kept.
    pub fn handle_dump_taken_at(
        &mut self,
        now: Timestamp,
        taken_at: Timestamp,
        links: Vec<LinkInfo>,
        addrs: Vec<IfAddr>,
    ) {
        self.kernel.replace(links, addrs);
        let newer: Vec<(VipKey, bool)> = self
            .vips
            .iter()
            .filter(|(_, t)| t.changed_at.is_some_and(|at| at > taken_at))
            .map(|(k, _)| (k.clone(), self.owned.contains(k) || self.wanted(k)))
            .collect();
        for (key, present) in newer {
            let Some(ifindex) = self.kernel.link_by_name(&key.device).map(|l| l.ifindex) else {
                continue;
            };
            if present {
                let want = self.vip_want(&key).unwrap_or_default();
                let op = AddressOp {
                    ifindex,
                    device: key.device.clone(),
                    address: key.address(),
                    label: want.label,
                    attrs: want.attrs,
                };
                self.kernel.add_address(synthetic_address(&op));
            } else {
                self.kernel.remove_address(ifindex, key.addr);
            }
        }
        if self.started {
            self.counters.reconciliations += 1;
        }
        self.refresh(now);
    }

    /// Address changes sent and not answered yet.
    pub fn pending_address_changes(&self) -> usize {
        self.vips.values().filter(|t| t.in_flight.is_some()).count()
            + self.routes.in_flight()
            + self.rules.in_flight()
    }

    /// Notifications were lost (ENOBUFS): counted; a dump follows.
    pub fn handle_overrun(&mut self) {
        self.counters.netlink_overruns += 1;
        self.forget_echoes();
        tracing::warn!("link and address notifications were lost; re-reading them");
    }

    /// Link and address notifications, in the order received.
    pub fn handle_link_events(&mut self, now: Timestamp, events: Vec<LinkEvent>) {
        // The addresses of address events; None once a link event is seen.
        let mut addresses: Option<BTreeSet<IpAddr>> = Some(BTreeSet::new());
        for event in events {
            match &event {
                LinkEvent::AddressAdded(a) | LinkEvent::AddressRemoved(a) => {
                    if let Some(set) = &mut addresses {
                        set.insert(a.addr);
                    }
                }
                _ => addresses = None,
            }
            match event {
                LinkEvent::Up(l) | LinkEvent::Down(l) | LinkEvent::Changed(l) => {
                    self.kernel.upsert_link(l);
                }
                LinkEvent::Removed { ifindex, name } => {
                    tracing::warn!(interface = %name, ifindex, "interface removed");
                    self.kernel.remove_link(ifindex);
                }
                LinkEvent::AddressAdded(a) => match self.echo_of_ours(now, &a, true) {
                    Echo::Outdated => {}
                    Echo::Latest => self.kernel.add_address(a),
                    Echo::None => {
                        self.note_in_flight(&a, true);
                        self.kernel.add_address(a);
                    }
                },
                LinkEvent::AddressRemoved(a) => match self.echo_of_ours(now, &a, false) {
                    Echo::Outdated => {}
                    Echo::Latest => self.kernel.remove_address(a.ifindex, a.addr),
                    Echo::None => {
                        self.note_in_flight(&a, false);
                        self.kernel.remove_address(a.ifindex, a.addr);
                    }
                },
            }
        }
        match addresses {
            // Only addresses came or went (as each virtual address added
            // echoes back): the links, and so the sockets and interface
            // tracks, are as they were; a source address may have moved.
            // When no binding moved, only the keys of those addresses can
            // have changed, and only they are reconciled: a takeover of
            // hundreds of instances adds as many addresses, and a pass
            // over every key for each would be quadratic.
            Some(addresses) if self.started => {
                if self.rebind(now) {
                    self.reconcile_all(now);
                } else {
                    let keys: BTreeSet<VipKey> = self
                        .vip_index
                        .keys()
                        .chain(self.owned.iter())
                        .filter(|k| addresses.contains(&k.addr))
                        .cloned()
                        .collect();
                    for key in keys {
                        self.reconcile_key(now, &key);
                    }
                }
                self.drain(now);
            }
            _ => self.refresh(now),
        }
    }

    /// What became of a socket of [`Effect::Sockets`].
    pub fn handle_socket_report(&mut self, now: Timestamp, key: SocketKey, report: SocketReport) {
        let slot = self.sockets.entry(key).or_default();
        match report {
            SocketReport::Opened {
                ifindex,
                join_multicast,
            } => {
                slot.open = Some((ifindex, join_multicast));
                slot.error = None;
            }
            SocketReport::Failed(e) => {
                tracing::warn!(interface = %self.ifaces.name(key.iface), family = %key.family, error = %e, "cannot open the VRRP socket");
                slot.open = None;
                slot.error = Some(e);
            }
        }
        self.refresh(now);
    }

    /// What a [`Effect::Send`] did.
    pub fn handle_send_report(&mut self, report: SendReport) {
        self.counters.send_dropped += report.dropped as u64;
        self.counters.send_errors += report.failed as u64;
    }

    /// Gratuitous ARPs / NAs that failed.
    pub fn handle_announce_failures(&mut self, failed: u64) {
        self.counters.announce_errors += failed;
    }

    /// The shell sent `garps` gratuitous ARPs and `nas` unsolicited
    /// neighbour advertisements for `instance` (counted as they leave).
    pub fn handle_announced(&mut self, instance: &str, garps: u64, nas: u64) {
        if let Some(e) = self
            .names
            .get(instance)
            .and_then(|id| self.entries.get_mut(id))
        {
            e.garps_sent = e.garps_sent.saturating_add(garps);
            e.nas_sent = e.nas_sent.saturating_add(nas);
        }
    }

    /// A write of the state file failed.
    pub fn handle_state_file_error(&mut self) {
        self.counters.state_file_errors += 1;
    }

    /// A packet read from socket `socket`: the VRRP payload, what the IP
    /// layer said, and when it arrived (timers run from then, not from
    /// when it was read; never before a packet or timeout already handled).
    pub fn handle_packet(
        &mut self,
        now: Timestamp,
        socket: SocketKey,
        arrived: Timestamp,
        meta: &RxMeta,
        bytes: &[u8],
    ) {
        let at = arrived.min(now).max(self.last_packet);
        self.last_packet = at;
        self.recorder.record(
            at,
            Input::Packet {
                interface: socket.iface.0,
                meta: *meta,
                bytes: bytes.to_vec(),
            },
        );
        let family = match meta.src {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        };
        let target = bytes
            .get(1)
            .and_then(|vrid| self.router.lookup(socket.iface.0, family, *vrid));
        let before = target.and_then(|id| self.router.instance(id)).map(|i| {
            (
                i.statistics().rcvd_advertisements,
                i.state(),
                i.poll_timeout(),
            )
        });
        if let Err(reason) = self.router.handle_packet(at, socket.iface.0, meta, bytes) {
            self.log_drop(at, socket.iface, meta, bytes, reason);
        }
        if let (Some(id), Some((rcvd, state, deadline))) = (target, before) {
            let accepted = self
                .router
                .instance(id)
                .is_some_and(|i| i.statistics().rcvd_advertisements > rcvd);
            // Byte 2 is the priority in both versions.
            let priority = bytes.get(2).copied().unwrap_or(0);
            if accepted
                && let Some(e) = self.entries.get_mut(&id)
                && let Ok(packet) = vrrp_core::wire::Packet::new_checked(bytes, family)
            {
                e.peers
                    .heard(at, meta.src, packet.priority(), packet.advert_interval());
            }
            if accepted
                && priority != 0
                && let Some(e) = self.entries.get_mut(&id)
            {
                if let Some(last) = e.last_advert {
                    e.adverts.intervals.observe(at.saturating_since(last));
                }
                e.last_advert = Some(at);
                match state {
                    State::Master => e.adverts.dual_master += 1,
                    State::Backup => {
                        if let Some(d) = deadline {
                            let margin = d.saturating_since(at);
                            e.adverts.down_timer_margins.observe(margin);
                            e.adverts.min_down_timer_margin = Some(
                                e.adverts
                                    .min_down_timer_margin
                                    .map_or(margin, |m| m.min(margin)),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        self.drain_settling(now, false);
    }

    /// Fires what is due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.last_packet = self.last_packet.max(now);
        // Only firings that are due: the shell also wakes for retries and
        // its own timers, which the router ignores.
        if let Some(due) = self.router.poll_timeout().filter(|t| *t <= now) {
            self.recorder.record(now, Input::Timeout { due });
        }
        // A retry of a virtual MAC interface, route, rule or the firewall
        // is due: those are reconciled (see drain_settling).
        let settle_all = [
            self.vmac_deadline(),
            self.routes.next_retry(),
            self.rules.next_retry(),
            self.firewall.retry_at,
        ]
        .into_iter()
        .flatten()
        .any(|at| at <= now);
        self.router.handle_timeout(now);
        while let Some((at, key)) = self.retries.first().cloned() {
            if at > now {
                break;
            }
            self.retries.remove(&(at, key.clone()));
            if let Some(t) = self.vips.get_mut(&key) {
                t.retry_at = None;
            }
            self.reconcile_key(now, &key);
        }
        self.routes.retries_due(now);
        self.rules.retries_due(now);
        if self
            .peers_swept_at
            .is_none_or(|at| now.saturating_since(at) >= PEER_SWEEP)
        {
            self.peers_swept_at = Some(now);
            for e in self.entries.values_mut() {
                e.peers.expire(now);
            }
        }
        self.firewall_timeout(now);
        self.extra_garp_due(now);
        self.drain_settling(now, settle_all);
    }

    /// Starts every instance.
    pub fn start(&mut self, now: Timestamp) {
        self.last_packet = now;
        self.refresh_bindings(now);
        self.started = true;
        for e in self.entries.values() {
            if let Err(why) = &e.binding {
                tracing::warn!(instance = %e.name, interface = %e.spec.interface, reason = %why, "instance cannot run; waiting in Fault");
            }
        }
        self.recorder.record(now, Input::Startup);
        self.router.handle_startup(now);
        self.reconcile_all(now);
        self.first_reconcile = false;
        self.drain(now);
    }

    /// Stops every instance gracefully: masters send priority 0; every
    /// address the driver added is removed.
    pub fn shutdown(&mut self, now: Timestamp) {
        self.recorder.record(now, Input::Shutdown);
        self.stopping = true;
        self.router.handle_shutdown(now);
        self.drain(now);
        self.reconcile_all(now);
        self.stop_vmacs(now);
        self.drain(now);
    }

    /// Sets an instance's base priority. Refused, with nothing changed:
    /// an unknown name ([`DriverError::NoSuchInstance`]) and priority 0,
    /// which only a stopping master sends (a `Config` error).
    pub fn set_priority(
        &mut self,
        now: Timestamp,
        name: &str,
        priority: Priority,
    ) -> Result<(), DriverError> {
        let id = *self
            .names
            .get(name)
            .ok_or_else(|| DriverError::NoSuchInstance(name.to_owned()))?;
        let config_error = |error| DriverError::Config {
            instance: name.to_owned(),
            error,
        };
        if priority == Priority::STOP {
            return Err(config_error(RouterError::Config(ConfigError::ZeroPriority)));
        }
        self.recorder
            .record(now, Input::BasePriority { id, priority });
        let result = self
            .router
            .set_base_priority(now, id, priority)
            .map_err(config_error);
        self.drain(now);
        result
    }

    /// Puts the named instances in maintenance or takes them out, all at
    /// once (see [`vrrp_core::Instance::set_maintenance`]); nothing changes
    /// if a name is unknown. An instance keeps its maintenance across
    /// reloads that keep or update it; one that a reload restarts or adds
    /// starts without.
    pub fn set_maintenance(
        &mut self,
        now: Timestamp,
        names: &[String],
        on: bool,
    ) -> Result<(), DriverError> {
        let ids = names
            .iter()
            .map(|name| {
                self.names
                    .get(name)
                    .copied()
                    .ok_or_else(|| DriverError::NoSuchInstance(name.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.recorder.record(
            now,
            Input::Maintenance {
                ids: ids.clone(),
                on,
            },
        );
        let result =
            self.router
                .set_maintenance(now, &ids, on)
                .map_err(|error| DriverError::Config {
                    instance: names.join(","),
                    error,
                });
        self.drain(now);
        result
    }

    /// Reports the state of a tracked object to every instance tracking
    /// it. Refused, with nothing changed or remembered, when no instance
    /// tracks it ([`DriverError::UnknownTrack`]).
    pub fn set_track(
        &mut self,
        now: Timestamp,
        key: &TrackKey,
        up: bool,
    ) -> Result<(), DriverError> {
        let id = self
            .tracks
            .get(&TrackName::Key(key.clone()))
            .filter(|id| {
                self.entries
                    .values()
                    .any(|e| e.tracks.iter().any(|(t, _)| t == id))
            })
            .ok_or_else(|| DriverError::UnknownTrack(key.clone()))?;
        if let TrackKey::User(user) = key {
            self.tracks.set_user_state(*user, up);
        }
        self.recorder
            .record(now, Input::TrackState { track: id, up });
        self.router.set_track_state(now, id, up);
        self.drain(now);
        Ok(())
    }

    // ------------------------------------------------------------------
    // Instances.

    /// Registers an instance in the router (not started).
    fn add_entry(&mut self, now: Timestamp, spec: InstanceSpec) -> Result<InstanceId, DriverError> {
        let name = spec.name.clone();
        let iface = self.ifaces.intern(spec.socket_interface());
        let config = spec.engine_config();
        let family = config.family();
        let auto_source = config.primary_address.is_unspecified();
        let multicast = config.unicast_peers.is_empty();
        let recorded = Box::new(config.clone());
        let id =
            self.router
                .add_instance(iface.0, config)
                .map_err(|error| DriverError::Config {
                    instance: name.clone(),
                    error,
                })?;
        self.recorder.record(
            now,
            Input::AddInstance {
                id,
                interface: iface.0,
                name: name.clone(),
                config: recorded,
            },
        );
        let binding_track = self.tracks.id(TrackName::Binding(name.clone()));
        let mut entry = Entry {
            name: name.clone(),
            spec,
            iface,
            family,
            auto_source,
            binding: Err(Unbound::InterfaceMissing),
            binding_track,
            vips: Vec::new(),
            tracks: Vec::new(),
            multicast,
            adverts: AdvertWatch::default(),
            peers: PeerTable::default(),
            garps_sent: 0,
            nas_sent: 0,
            last_advert: None,
        };
        entry.vips = self.vip_keys(&entry.spec);
        for (key, _) in &entry.vips {
            self.vip_index.entry(key.clone()).or_default().push(id);
        }
        let wanted = self.wanted_tracks(&entry.spec, binding_track);
        for (track, config, up) in &wanted {
            self.recorder.record(
                now,
                Input::Track {
                    id,
                    track: *track,
                    config: *config,
                    up: *up,
                },
            );
            let _ = self.router.track(now, id, *track, *config, *up);
        }
        entry.tracks = wanted.into_iter().map(|(t, c, _)| (t, c)).collect();
        self.names.insert(name, id);
        self.entries.insert(id, entry);
        Ok(id)
    }

    /// Forgets an instance after the router let it go and its last
    /// outputs were carried out.
    fn remove_entry(&mut self, now: Timestamp, id: InstanceId) {
        self.recorder.record(now, Input::Remove { id });
        let _ = self.router.remove_instance(now, id);
        // Its last words (priority 0, addresses) while it is still known.
        self.drain(now);
        if let Some(entry) = self.entries.remove(&id) {
            self.names.remove(&entry.name);
            for (key, _) in &entry.vips {
                if let Some(list) = self.vip_index.get_mut(key) {
                    list.retain(|i| *i != id);
                    if list.is_empty() {
                        self.vip_index.remove(key);
                    }
                }
            }
        }
        self.order.retain(|i| *i != id);
    }

    fn vip_keys(&self, spec: &InstanceSpec) -> Vec<(VipKey, VipWant)> {
        spec.all_vips()
            .into_iter()
            .map(|v| {
                let device = v.device.unwrap_or_else(|| spec.vip_interface().to_owned());
                (
                    VipKey {
                        device,
                        addr: v.address.addr,
                        prefix_len: v.address.prefix_len,
                    },
                    VipWant {
                        label: v.label,
                        attrs: v.attrs,
                    },
                )
            })
            .collect()
    }

    /// The tracked objects of a spec with their current state: its own
    /// interface and binding (weight 0), its tracked interfaces, the
    /// caller's objects (their last reported state, else the spec's).
    fn wanted_tracks(
        &mut self,
        spec: &InstanceSpec,
        binding: TrackId,
    ) -> Vec<(TrackId, TrackConfig, bool)> {
        let bound = self
            .names
            .get(&spec.name)
            .and_then(|id| self.entries.get(id))
            .is_some_and(|e| e.binding.is_ok());
        let mut out = vec![(binding, TrackConfig::weight(0), bound)];
        let own = std::iter::once((spec.interface.clone(), TrackConfig::weight(0)))
            .filter(|_| !spec.dont_track_primary);
        // keepalived tracks the interface of a virtual address put on
        // another device (weight 0: down is Fault) unless it says
        // `no_track`.
        let vip_devices: Vec<(String, TrackConfig)> = spec
            .vips
            .iter()
            .filter(|v| !v.no_track)
            .filter_map(|v| v.device.clone())
            .filter(|d| *d != spec.interface && *d != spec.vip_interface())
            .map(|d| (d, TrackConfig::weight(0)))
            .collect();
        for (name, config) in own
            .chain(spec.track_interfaces.iter().cloned())
            .chain(vip_devices)
        {
            let up = self.kernel.link_by_name(&name).is_some_and(LinkInfo::is_up);
            let id = self.tracks.id(TrackName::Key(TrackKey::Interface(name)));
            match out.iter_mut().find(|(t, _, _)| *t == id) {
                // The own interface tracked again with a weight: the
                // weight-0 entry wins (link down is Fault).
                Some(_) => {}
                None => out.push((id, config, up)),
            }
        }
        for (user, config, initial) in &spec.tracks {
            let up = self.tracks.user_state(*user).unwrap_or(*initial);
            let id = self.tracks.id(TrackName::Key(TrackKey::User(*user)));
            out.push((id, *config, up));
        }
        out
    }

    fn add_groups(
        &mut self,
        groups: &[Vec<String>],
        new: impl Fn(&[String]) -> bool,
    ) -> Result<(), DriverError> {
        for group in groups.iter().filter(|g| new(g)) {
            let members = group
                .iter()
                .map(|n| {
                    self.names
                        .get(n)
                        .copied()
                        .ok_or_else(|| DriverError::UnknownInstance(n.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.recorder.record(
                Timestamp::ZERO,
                Input::AddSyncGroup {
                    members: members.clone(),
                },
            );
            self.router
                .add_sync_group(&members)
                .map_err(|error| DriverError::Config {
                    instance: group.first().cloned().unwrap_or_default(),
                    error,
                })?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Level-triggered refresh: sockets, bindings, interface tracks,
    // addresses.

    fn refresh(&mut self, now: Timestamp) {
        self.refresh_bindings(now);
        if self.started {
            self.reconcile_all(now);
        }
        self.drain(now);
    }

    fn refresh_bindings(&mut self, now: Timestamp) {
        self.update_sockets();
        // Interface tracks.
        let states: Vec<(TrackId, bool)> = self
            .tracks
            .interfaces()
            .map(|(name, id)| {
                (
                    id,
                    self.kernel.link_by_name(name).is_some_and(LinkInfo::is_up),
                )
            })
            .collect();
        for (id, up) in states {
            self.recorder
                .record(now, Input::TrackState { track: id, up });
            self.router.set_track_state(now, id, up);
        }
        self.rebind(now);
    }

    /// Brings every instance's binding (interface, source address,
    /// socket) up to date; whether one changed.
    fn rebind(&mut self, now: Timestamp) -> bool {
        // Bindings: what changed, read first. The source address is looked
        // up once per interface and family (hundreds of instances share
        // one interface, and each lookup checks the interface's addresses
        // against the record of ours).
        let changed: Vec<(InstanceId, Binding)> = {
            let mut sources = SourceCache::new();
            self.entries
                .iter()
                .filter_map(|(id, entry)| {
                    let binding = self.binding_of(entry, &mut sources);
                    (binding != entry.binding).then_some((*id, binding))
                })
                .collect()
        };
        let moved = !changed.is_empty();
        for (id, binding) in changed {
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            let (name, track, auto) = (entry.name.clone(), entry.binding_track, entry.auto_source);
            match &binding {
                Ok((ifindex, source)) => {
                    tracing::debug!(instance = %name, ifindex, %source, "instance bound to its interface");
                    if auto
                        && let Some(inst) = self.router.instance(id)
                        && inst.config().primary_address != *source
                    {
                        let mut config = inst.config().clone();
                        config.primary_address = *source;
                        self.recorder.record(
                            now,
                            Input::Reconfigure {
                                id,
                                config: Box::new(config.clone()),
                            },
                        );
                        if let Err(e) = self.router.reconfigure(now, id, config) {
                            tracing::error!(instance = %name, error = %e, "cannot change the source address");
                        }
                    }
                }
                // Before the start, sockets are still being opened: the
                // start says what is left.
                Err(why) if self.started => {
                    tracing::warn!(instance = %name, reason = %why, "instance cannot run; waiting in Fault");
                }
                Err(_) => {}
            }
            if let Some(e) = self.entries.get_mut(&id) {
                e.binding = binding.clone();
            }
            self.recorder.record(
                now,
                Input::TrackState {
                    track,
                    up: binding.is_ok(),
                },
            );
            self.router.set_track_state(now, track, binding.is_ok());
            self.changed = true;
        }
        moved
    }

    fn binding_of<'a>(
        &self,
        entry: &'a Entry,
        sources: &mut SourceCache<'a>,
    ) -> Result<(u32, IpAddr), Unbound> {
        // The configured interface gives the source address; the socket
        // is on it or on the instance's virtual MAC interface.
        let base = self
            .kernel
            .link_by_name(&entry.spec.interface)
            .ok_or(Unbound::InterfaceMissing)?;
        self.vmac_binding(&entry.spec)?;
        let link = self
            .kernel
            .link_by_name(entry.spec.socket_interface())
            .ok_or(Unbound::InterfaceMissing)?;
        let source = if entry.auto_source {
            let key = (
                base.ifindex,
                entry.family,
                entry.spec.interface.as_str(),
                entry.spec.vip_interface(),
            );
            let source = *sources.entry(key).or_insert_with(|| {
                self.kernel.source(base.ifindex, entry.family, |a| {
                    self.owned.iter().any(|o| {
                        o.addr == a
                            && (o.device == entry.spec.interface
                                || o.device == entry.spec.vip_interface())
                    })
                })
            });
            source.ok_or(Unbound::NoSourceAddress)?
        } else {
            entry.spec.config.primary_address
        };
        let key = SocketKey {
            iface: entry.iface,
            family: entry.family,
        };
        let slot = self.sockets.get(&key);
        match slot.and_then(|s| s.open) {
            Some((ifindex, join)) if ifindex == link.ifindex && (join || !entry.multicast) => {
                Ok((link.ifindex, source))
            }
            _ => Err(Unbound::Socket(
                slot.and_then(|s| s.error.clone())
                    .unwrap_or_else(|| "not open yet".to_owned()),
            )),
        }
    }

    /// The sockets wanted: one per interface and family in use whose
    /// interface exists, joined when any instance on it is multicast.
    fn sockets_for<'a>(
        &self,
        specs: impl Iterator<Item = (&'a InstanceSpec, IfaceId)>,
    ) -> BTreeMap<SocketKey, SocketSpec> {
        let mut wanted: BTreeMap<SocketKey, SocketSpec> = BTreeMap::new();
        for (spec, iface) in specs {
            let Some(link) = self.kernel.link_by_name(spec.socket_interface()) else {
                continue;
            };
            let config = spec.engine_config();
            let key = SocketKey {
                iface,
                family: config.family(),
            };
            let join = config.unicast_peers.is_empty();
            wanted
                .entry(key)
                .and_modify(|s| s.join_multicast |= join)
                .or_insert(SocketSpec {
                    key,
                    interface: spec.socket_interface().to_owned(),
                    ifindex: link.ifindex,
                    join_multicast: join,
                });
        }
        wanted
    }

    fn update_sockets(&mut self) {
        let wanted = self.sockets_for(self.entries.values().map(|e| (&e.spec, e.iface)));
        if wanted != self.wanted_sockets {
            self.sockets.retain(|k, _| wanted.contains_key(k));
            self.wanted_sockets = wanted;
            self.effects.push_back(Effect::Sockets(
                self.wanted_sockets.values().cloned().collect(),
            ));
        }
    }

    // ------------------------------------------------------------------
    // Router outputs.

    /// Turns the router's outputs into effects. The advertisements of one
    /// drain are collected into one batch per socket and source (one
    /// `sendmmsg`) and placed ahead of every other effect of the drain
    /// (address changes, announcements, events): a wake that finds several
    /// takeovers due puts all their advertisements on the wire first, and
    /// each instance's advertisement still leaves before its addresses
    /// change (RFC 5798 6.4.1/6.4.2) or its priority-0 goodbye before they
    /// go (6.4.3).
    fn drain(&mut self, now: Timestamp) {
        self.drain_settling(now, true);
    }

    /// [`DriverCore::drain`] for the two inputs that run all the time (a
    /// received advertisement, a timer): the virtual MAC interfaces, routes
    /// and rules are reconciled (a pass over every instance, which at
    /// hundreds of instances is most of the first takeover's time on a
    /// cold cache) only when `settle_all` says something they depend on
    /// may have changed, or a transition of an instance that has routes or
    /// rules moved what is wanted. Their inputs other than instance states
    /// (configuration, kernel notifications, results, retries) all come
    /// through full drains.
    fn drain_settling(&mut self, now: Timestamp, settle_all: bool) {
        let (mut routes_moved, mut rules_moved) = (settle_all, settle_all);
        // An inner drain (none today) leaves the batch to the outer one.
        let outer = self.sends_at.is_none();
        if outer {
            self.sends_at = Some(self.effects.len());
        }
        // During a chain of takeovers (see [`DriverCore::set_hurry`]) only
        // the advertisements are made: the rest of what the router says
        // waits, in order, for the chain to end.
        if !self.hurry {
            for (at, id, output) in std::mem::take(&mut self.deferred) {
                let moved = (&mut routes_moved, &mut rules_moved);
                self.settle_output(at, id, output, false, moved);
            }
        }
        while let Some((id, output)) = self.router.poll_output() {
            if self.hurry && !matches!(output, Output::Transmit(_)) {
                // The flight recorder dates a transition by the input
                // that caused it, which is this one.
                if let Output::StateChanged { from, to, reason } = &output {
                    let (from, to, reason) = (*from, *to, *reason);
                    let transition = Input::Transition {
                        id,
                        from,
                        to,
                        reason,
                    };
                    self.recorder.record(now, transition);
                }
                self.deferred.push_back((now, id, output));
                continue;
            }
            let moved = (&mut routes_moved, &mut rules_moved);
            self.settle_output(now, id, output, true, moved);
        }
        if settle_all {
            self.reconcile_firewall(now);
            self.extra_garp_sync(now);
            self.reconcile_vmacs(now);
        }
        if routes_moved {
            self.reconcile_routes(now);
        }
        if rules_moved {
            self.reconcile_rules(now);
        }
        if std::mem::take(&mut self.owned_dirty) {
            if !self
                .effects
                .iter()
                .any(|e| matches!(e, Effect::PersistOwned))
            {
                self.effects.push_back(Effect::PersistOwned);
            }
            self.changed = true;
        }
        if outer && let Some(at) = self.sends_at.take() {
            let at = at.min(self.effects.len());
            for (i, batch) in self.outbox.drain(..).enumerate() {
                self.effects.insert(at + i, Effect::Send(batch));
            }
        }
    }

    /// One output of the router turned into effects (see
    /// [`DriverCore::drain_settling`]); a transition is entered in the
    /// flight recorder unless it already was (`record` false: it was when
    /// it happened, during a hurry).
    fn settle_output(
        &mut self,
        now: Timestamp,
        id: InstanceId,
        output: Output,
        record: bool,
        (routes_moved, rules_moved): (&mut bool, &mut bool),
    ) {
        match output {
            Output::Transmit(t) => self.queue_transmit(id, &t),
            Output::AddAddresses { .. } => {
                let keys: Vec<VipKey> = self
                    .entries
                    .get(&id)
                    .map(|e| e.vips.iter().map(|(k, _)| k.clone()).collect())
                    .unwrap_or_default();
                for key in keys {
                    self.reconcile_key(now, &key);
                }
            }
            Output::RemoveAddresses { addresses, .. } => {
                // The engine names the advertised addresses; the
                // instance's excluded ones go with them.
                let own: Vec<VipKey> = self
                    .entries
                    .get(&id)
                    .map(|e| e.vips.iter().map(|(k, _)| k.clone()).collect())
                    .unwrap_or_default();
                let keys: Vec<VipKey> = self
                    .vips
                    .keys()
                    .chain(self.owned.iter())
                    .filter(|k| addresses.iter().any(|a| a.addr == k.addr))
                    .cloned()
                    .chain(own)
                    .collect();
                for key in keys {
                    self.reconcile_key(now, &key);
                }
            }
            Output::Announce {
                addresses,
                count,
                interval,
                ..
            } => {
                // Excluded addresses are announced with the others.
                let mut addresses = addresses.to_vec();
                if let Some(e) = self.entries.get(&id) {
                    addresses.extend(e.spec.vips.iter().filter(|v| v.excluded).map(|v| v.address));
                }
                self.push_announce(id, &addresses, count, interval);
            }
            Output::StateChanged { from, to, reason } => {
                self.changed = true;
                self.extra_garp_transition(now, id, to);
                if record {
                    self.recorder.record(
                        now,
                        Input::Transition {
                            id,
                            from,
                            to,
                            reason,
                        },
                    );
                }
                let Some(entry) = self.entries.get(&id) else {
                    return;
                };
                *routes_moved |= !entry.spec.routes.is_empty();
                *rules_moved |= !entry.spec.rules.is_empty();
                let config = self.router.config_of(id);
                let priority = self
                    .router
                    .instance(id)
                    .map(vrrp_core::Instance::effective_priority)
                    .or_else(|| config.map(|c| c.priority))
                    .unwrap_or(Priority::STOP);
                let vrid = config.map_or(entry.spec.config.vrid, |c| c.vrid);
                self.effects.push_back(Effect::Event(StateEvent {
                    instance: entry.name.clone(),
                    vrid,
                    from,
                    to,
                    reason,
                    priority,
                    at: now.since_epoch(),
                }));
            }
            Output::PriorityChanged { from, to } => {
                self.changed = true;
                if let Some(e) = self.entries.get(&id) {
                    tracing::info!(instance = %e.name, %from, %to, "priority change");
                }
            }
            _ => {}
        }
    }

    /// Hurried or not: while hurried (a chain of takeovers is sending its
    /// advertisements), inputs make only the advertisements; address
    /// changes, announcements, events and everything else the router says
    /// wait, in their order, until the hurry ends, which makes them (a
    /// takeover with a virtual address costs about a third as much while
    /// hurried, so a chain keeps pace with the deadlines).
    pub fn set_hurry(&mut self, now: Timestamp, hurry: bool) {
        self.hurry = hurry;
        if !hurry && !self.deferred.is_empty() {
            self.drain_settling(now, false);
        }
    }

    /// A transition's reason in words (a tracked object by its name).
    pub(crate) fn describe(&self, reason: &vrrp_core::Reason) -> String {
        match reason {
            vrrp_core::Reason::TrackFailed(id) => match self.tracks.name(*id) {
                Some(TrackName::Key(k)) => format!("{k} failed"),
                Some(TrackName::Binding(_)) => "cannot run (interface, source or socket)".into(),
                None => format!("{reason:?}"),
            },
            other => format!("{other:?}"),
        }
    }

    fn queue_transmit(&mut self, id: InstanceId, t: &vrrp_core::Transmit) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        let Ok((_, source)) = entry.binding else {
            return;
        };
        let socket = SocketKey {
            iface: entry.iface,
            family: entry.family,
        };
        let len = match self.router.encode(id, t, &mut self.buf) {
            Ok(len) => len,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode advertisement");
                return;
            }
        };
        let payload = self.buf.get(..len).unwrap_or_default();
        let batch = match self
            .outbox
            .iter_mut()
            .find(|b| b.socket == socket && b.source == source)
        {
            Some(b) => b,
            None => {
                self.outbox.push(SendBatch {
                    socket,
                    source,
                    bytes: Vec::new(),
                    datagrams: Vec::new(),
                });
                let Some(b) = self.outbox.last_mut() else {
                    return;
                };
                b
            }
        };
        let start = batch.bytes.len();
        batch.bytes.extend_from_slice(payload);
        batch
            .datagrams
            .push((start..batch.bytes.len(), t.destination));
    }

    /// Queues the advertisements collected so far, unless a drain is
    /// collecting them (it places them itself, see [`DriverCore::drain`]).
    fn flush_outbox(&mut self) {
        if self.sends_at.is_some() {
            return;
        }
        for batch in self.outbox.drain(..) {
            self.effects.push_back(Effect::Send(batch));
        }
    }

    fn log_drop(
        &mut self,
        now: Timestamp,
        iface: IfaceId,
        meta: &RxMeta,
        bytes: &[u8],
        reason: DropReason,
    ) {
        let notable = matches!(
            reason,
            DropReason::AddressOwner
                | DropReason::OwnPacket
                | DropReason::PriorityZeroNotFromMaster
                | DropReason::ZeroAddressCount
                | DropReason::AddressList
                | DropReason::AuthFailure
                | DropReason::AuthTypeMismatch
                | DropReason::AdvertInterval
                | DropReason::VersionMismatch
        );
        if !notable {
            tracing::trace!(src = %meta.src, %reason, "advertisement dropped");
            return;
        }
        let vrid = bytes.get(1).copied().unwrap_or(0);
        let key = (iface, vrid, reason);
        if self
            .drop_logged
            .get(&key)
            .is_some_and(|at| now < *at + DROP_LOG_SPACING)
        {
            return;
        }
        self.drop_logged.insert(key, now);
        let what = match reason {
            DropReason::AddressOwner => {
                "we are the address owner (priority 255) and discard every advertisement (RFC 5798 7.1): another router advertises this VRID"
            }
            DropReason::OwnPacket => {
                "an advertisement from our own address: another host on the link uses it"
            }
            DropReason::PriorityZeroNotFromMaster => {
                "a priority 0 advertisement from a router that is not our master: ignored"
            }
            DropReason::ZeroAddressCount => {
                "an advertisement without addresses (RFC 9568 erratum 8299)"
            }
            _ => "advertisement dropped: the sender's configuration differs from ours",
        };
        tracing::warn!(interface = %self.ifaces.name(iface), vrid, src = %meta.src, %reason, "{what}");
    }
}

/// Where an instance runs (interface index, source address), or why not.
type Binding = Result<(u32, IpAddr), Unbound>;

/// The source addresses found during one pass over the bindings, by base
/// interface index, family, interface and virtual address interface.
type SourceCache<'a> = HashMap<(u32, Family, &'a str, &'a str), Option<IpAddr>>;

/// An engine configuration with the source the binding chose.
fn with_source(mut config: InstanceConfig, source: Option<IpAddr>) -> InstanceConfig {
    if let Some(source) = source
        && config.primary_address.is_unspecified()
    {
        config.primary_address = source;
    }
    config
}
