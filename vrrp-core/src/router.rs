//! Many instances behind one demultiplexer, with keepalived's sync groups.

use std::collections::{BTreeSet, HashMap, VecDeque};

use thiserror::Error;

use crate::config::{ConfigError, InstanceConfig};
use crate::instance::{Instance, Output, RxMeta, State, TrackConfig, TrackId, Transmit};
use crate::stats::{DropReason, RouterStatistics};
use crate::time::Timestamp;
use crate::types::{Family, Priority};
use crate::wire::EncodeError;

/// Names an instance inside a [`Router`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub usize);

/// The next deadline of a [`Router`] and what firing it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// When [`Router::handle_timeout`] must be called.
    pub at: Timestamp,
    /// What is due then.
    pub kind: DeadlineKind,
}

/// What a [`Deadline`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadlineKind {
    /// An instance in Backup whose Master_Down_Timer runs out: firing it
    /// is a takeover, the one deadline where lateness is failover time. A
    /// driver may wake a little early for it and wait out the rest
    /// precisely; it fires only when the master has really gone quiet.
    Takeover,
    /// Anything else (advertisements, announcements).
    Other,
}

/// Names a sync group inside a [`Router`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub usize);

/// Why the router refused a request.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The instance configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Another instance has this VRID on the interface and family.
    #[error("VRID {vrid} is already used on interface {interface} for {family}")]
    DuplicateVrid {
        /// Interface index.
        interface: u32,
        /// Address family.
        family: Family,
        /// The VRID.
        vrid: u8,
    },
    /// No such instance (never added, or removed).
    #[error("no instance {0:?}")]
    NoSuchInstance(InstanceId),
    /// An instance can be in one sync group only.
    #[error("instance {0:?} is already in a sync group")]
    AlreadyGrouped(InstanceId),
}

#[derive(Debug)]
struct Slot {
    instance: Instance,
    interface: u32,
    group: Option<GroupId>,
    /// Removed: kept only until its last outputs are drained.
    retired: bool,
    deadline: Option<Timestamp>,
    queued: bool,
}

/// Every VRRP instance of a host: routes received packets by interface,
/// family and VRID, keeps one timer queue, and moves sync groups together
/// (a member in Fault faults the group; a member falling back to Backup
/// takes the group's masters with it; the group becomes master only when
/// every member is ready to).
///
/// Drain order is that of [`Instance`]: after any input (`handle_*`) or
/// mutator ([`Router::add_instance`], [`Router::remove_instance`],
/// [`Router::start`], [`Router::track`], [`Router::untrack`],
/// [`Router::set_track_state`], [`Router::set_base_priority`],
/// [`Router::reconfigure`], [`Router::add_sync_group`]), drain
/// [`Router::poll_output`], then read [`Router::poll_timeout`] (or
/// [`Router::poll_deadline`]).
#[derive(Debug, Default)]
pub struct Router {
    slots: Vec<Option<Slot>>,
    by_key: HashMap<(u32, Family, u8), InstanceId>,
    groups: Vec<Vec<InstanceId>>,
    timeouts: BTreeSet<(Timestamp, InstanceId)>,
    ready: VecDeque<InstanceId>,
    stats: RouterStatistics,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds an instance on `interface` (the caller's interface index).
    /// It stays in Initialize until [`Router::start`] or
    /// [`Router::handle_startup`].
    pub fn add_instance(
        &mut self,
        interface: u32,
        config: InstanceConfig,
    ) -> Result<InstanceId, RouterError> {
        let key = (interface, config.family(), config.vrid.get());
        if self.by_key.contains_key(&key) {
            return Err(RouterError::DuplicateVrid {
                interface,
                family: key.1,
                vrid: key.2,
            });
        }
        let instance = Instance::new(config)?;
        let id = InstanceId(self.slots.len());
        self.slots.push(Some(Slot {
            instance,
            interface,
            group: None,
            retired: false,
            deadline: None,
            queued: false,
        }));
        self.by_key.insert(key, id);
        Ok(id)
    }

    /// Shuts an instance down (a master sends priority 0 and releases
    /// its addresses) and forgets it once its outputs are drained.
    pub fn remove_instance(&mut self, now: Timestamp, id: InstanceId) -> Result<(), RouterError> {
        let slot = self.live_slot(id)?;
        slot.retired = true;
        let group = slot.group.take();
        slot.instance.set_sync_member(false);
        slot.instance.handle_shutdown(now);
        let key = (
            slot.interface,
            slot.instance.config().family(),
            slot.instance.config().vrid.get(),
        );
        self.by_key.remove(&key);
        for g in &mut self.groups {
            g.retain(|m| *m != id);
        }
        self.touched(id);
        self.sweep(id);
        // The group's rules without the member: one waiting for it to be
        // ready takes over now, a fault it caused clears.
        if let Some(g) = group {
            self.settle_group(now, g);
        }
        Ok(())
    }

    /// Puts instances in a sync group.
    pub fn add_sync_group(&mut self, members: &[InstanceId]) -> Result<GroupId, RouterError> {
        for &m in members {
            if self.live_slot(m)?.group.is_some() {
                return Err(RouterError::AlreadyGrouped(m));
            }
        }
        let gid = GroupId(self.groups.len());
        for &m in members {
            let slot = self.live_slot(m)?;
            slot.group = Some(gid);
            slot.instance.set_sync_member(true);
        }
        self.groups.push(members.to_vec());
        Ok(gid)
    }

    /// An instance, if it exists.
    pub fn instance(&self, id: InstanceId) -> Option<&Instance> {
        self.slots
            .get(id.0)
            .and_then(Option::as_ref)
            .filter(|s| !s.retired)
            .map(|s| &s.instance)
    }

    /// The interface an instance runs on.
    pub fn interface_of(&self, id: InstanceId) -> Option<u32> {
        self.slots
            .get(id.0)
            .and_then(Option::as_ref)
            .map(|s| s.interface)
    }

    /// All live instances.
    pub fn instances(&self) -> impl Iterator<Item = (InstanceId, &Instance)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref()
                .filter(|s| !s.retired)
                .map(|s| (InstanceId(i), &s.instance))
        })
    }

    /// The instance for a VRID on an interface and family.
    pub fn lookup(&self, interface: u32, family: Family, vrid: u8) -> Option<InstanceId> {
        self.by_key.get(&(interface, family, vrid)).copied()
    }

    /// Packets dropped before reaching an instance.
    pub fn statistics(&self) -> &RouterStatistics {
        &self.stats
    }

    /// Starts every instance still in Initialize.
    pub fn handle_startup(&mut self, now: Timestamp) {
        for i in 0..self.slots.len() {
            self.start_slot(now, InstanceId(i));
        }
    }

    /// Starts one instance.
    pub fn start(&mut self, now: Timestamp, id: InstanceId) -> Result<(), RouterError> {
        self.live_slot(id)?;
        self.start_slot(now, id);
        Ok(())
    }

    /// Starts an instance as a member of its sync group again, if it has
    /// one ([`Router::handle_shutdown`] lets members stop on their own).
    fn start_slot(&mut self, now: Timestamp, id: InstanceId) {
        if let Some(slot) = self.slots.get_mut(id.0).and_then(Option::as_mut)
            && !slot.retired
            && slot.instance.state() == State::Initialize
        {
            slot.instance.set_sync_member(slot.group.is_some());
        }
        self.with(now, id, |inst| inst.handle_startup(now));
    }

    /// Shuts every instance down.
    pub fn handle_shutdown(&mut self, now: Timestamp) {
        for i in 0..self.slots.len() {
            if let Some(slot) = self.slots[i].as_mut() {
                slot.instance.set_sync_member(false);
            }
            self.with(now, InstanceId(i), |inst| inst.handle_shutdown(now));
        }
    }

    /// Routes a received VRRP packet (the IP payload) to its instance.
    /// Returns the instance, or why the packet was dropped (also counted:
    /// by the instance when one was found, in [`Router::statistics`] for
    /// the router-wide counters of RFC 6527).
    pub fn handle_packet(
        &mut self,
        now: Timestamp,
        interface: u32,
        rx: &RxMeta,
        bytes: &[u8],
    ) -> Result<InstanceId, DropReason> {
        let (Some(&ver_type), Some(&vrid)) = (bytes.first(), bytes.get(1)) else {
            // Too short to be routed: a router-level length error.
            self.stats.packet_length_errors += 1;
            return Err(DropReason::PacketLength);
        };
        let family = Family::of(&rx.src);
        let Some(id) = self.lookup(interface, family, vrid) else {
            // Sort out garbage from a VRID we simply do not run, in the
            // order of RFC 5798 7.1: version, type, then the VRID.
            let reason = match (ver_type >> 4, ver_type & 0x0f) {
                (2 | 3, 1) => DropReason::UnknownVrid,
                (2 | 3, _) => DropReason::InvalidType,
                _ => DropReason::Version,
            };
            self.count_router_drop(reason);
            return Err(reason);
        };
        let mut result = Ok(id);
        self.with(now, id, |inst| {
            if let Err(e) = inst.handle_advert(now, rx, bytes) {
                result = Err(e);
            }
        });
        // The one router-wide counter of a check an instance makes: RFC
        // 6527's vrrpv3RouterChecksumErrors (also counted by the instance).
        if let Err(DropReason::Checksum) = result {
            self.stats.checksum_errors += 1;
        }
        result
    }

    /// Counts a packet no instance saw in the router-wide counters of RFC
    /// 6527 (`vrrpv3RouterVersionErrors`, `vrrpv3RouterVrIdErrors`) and the
    /// two this crate adds.
    fn count_router_drop(&mut self, reason: DropReason) {
        match reason {
            DropReason::Version => self.stats.version_errors += 1,
            DropReason::UnknownVrid => self.stats.vrid_errors += 1,
            DropReason::InvalidType => self.stats.invalid_type_errors += 1,
            _ => {}
        }
    }

    /// Fires every instance timer due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(&(at, id)) = self.timeouts.first() {
            if at > now {
                break;
            }
            self.with(now, id, |inst| inst.handle_timeout(now));
            // An instance whose timer did not move must not spin the loop.
            if self
                .slots
                .get(id.0)
                .and_then(Option::as_ref)
                .and_then(|s| s.deadline)
                == Some(at)
            {
                self.timeouts.remove(&(at, id));
                if let Some(s) = self.slots[id.0].as_mut() {
                    s.deadline = None;
                }
            }
        }
    }

    /// Starts tracking an object for one instance.
    pub fn track(
        &mut self,
        now: Timestamp,
        id: InstanceId,
        track: TrackId,
        config: TrackConfig,
        up: bool,
    ) -> Result<(), RouterError> {
        self.live_slot(id)?;
        self.with(now, id, |inst| inst.track(now, track, config, up));
        Ok(())
    }

    /// Stops tracking an object for one instance.
    pub fn untrack(
        &mut self,
        now: Timestamp,
        id: InstanceId,
        track: TrackId,
    ) -> Result<(), RouterError> {
        self.live_slot(id)?;
        self.with(now, id, |inst| inst.untrack(now, track));
        Ok(())
    }

    /// Applies a new configuration to a running instance in place (see
    /// [`Instance::reconfigure`]): same VRID, version and family, so the
    /// same key on its interface.
    pub fn reconfigure(
        &mut self,
        now: Timestamp,
        id: InstanceId,
        config: InstanceConfig,
    ) -> Result<(), RouterError> {
        self.live_slot(id)?;
        let mut result = Ok(());
        self.with(now, id, |inst| {
            result = inst.reconfigure(now, config);
        });
        result.map_err(RouterError::from)
    }

    /// Reports a tracked object's state to every instance tracking it.
    pub fn set_track_state(&mut self, now: Timestamp, track: TrackId, up: bool) {
        for i in 0..self.slots.len() {
            self.with(now, InstanceId(i), |inst| {
                inst.set_track_state(now, track, up)
            });
        }
    }

    /// Changes an instance's base priority.
    pub fn set_base_priority(
        &mut self,
        now: Timestamp,
        id: InstanceId,
        priority: Priority,
    ) -> Result<(), RouterError> {
        self.live_slot(id)?;
        self.with(now, id, |inst| inst.set_base_priority(now, priority));
        Ok(())
    }

    /// Puts instances in maintenance or takes them out, all at once (see
    /// [`Instance::set_maintenance`]): the members of a sync group put in
    /// maintenance together each leave Master with their own priority-0
    /// advertisement, before the group's rules run. Nothing changes if an
    /// id is unknown.
    pub fn set_maintenance(
        &mut self,
        now: Timestamp,
        ids: &[InstanceId],
        on: bool,
    ) -> Result<(), RouterError> {
        for &id in ids {
            self.live_slot(id)?;
        }
        let mut groups = Vec::new();
        for &id in ids {
            if let Some(slot) = self.slots.get_mut(id.0).and_then(Option::as_mut) {
                slot.instance.set_maintenance(now, on);
                groups.extend(slot.group);
            }
            self.touched(id);
        }
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            self.settle_group(now, g);
        }
        Ok(())
    }

    /// The next output of any instance.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<(InstanceId, Output)> {
        while let Some(&id) = self.ready.front() {
            let out = self
                .slots
                .get_mut(id.0)
                .and_then(Option::as_mut)
                .and_then(|s| s.instance.poll_output());
            match out {
                Some(o) => return Some((id, o)),
                None => {
                    self.ready.pop_front();
                    if let Some(s) = self.slots.get_mut(id.0).and_then(Option::as_mut) {
                        s.queued = false;
                    }
                    self.sweep(id);
                }
            }
        }
        None
    }

    /// The earliest deadline of any instance.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timeouts.first().map(|(t, _)| *t)
    }

    /// The earliest deadline of any instance, with what firing it does
    /// (a takeover or anything else).
    #[must_use]
    pub fn poll_deadline(&self) -> Option<Deadline> {
        self.timeouts.first().map(|&(at, id)| {
            let takeover = self
                .instance(id)
                .is_some_and(|i| i.state() == crate::State::Backup);
            Deadline {
                at,
                kind: if takeover {
                    DeadlineKind::Takeover
                } else {
                    DeadlineKind::Other
                },
            }
        })
    }

    /// Encodes a [`Transmit`] of instance `id` into `buf`.
    pub fn encode(
        &self,
        id: InstanceId,
        t: &Transmit,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        match self.slots.get(id.0).and_then(Option::as_ref) {
            Some(s) => s.instance.encode(t, buf),
            // A removed instance has nothing to say; an empty write is the
            // honest answer rather than a panic.
            None => Ok(0),
        }
    }

    /// The configuration of an instance, including one being removed whose
    /// last outputs are still being drained.
    pub fn config_of(&self, id: InstanceId) -> Option<&InstanceConfig> {
        self.slots
            .get(id.0)
            .and_then(Option::as_ref)
            .map(|s| s.instance.config())
    }

    fn live_slot(&mut self, id: InstanceId) -> Result<&mut Slot, RouterError> {
        self.slots
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .filter(|s| !s.retired)
            .ok_or(RouterError::NoSuchInstance(id))
    }

    /// Runs `f` on an instance, then updates the timer queue, the output
    /// queue and its sync group.
    fn with(&mut self, now: Timestamp, id: InstanceId, f: impl FnOnce(&mut Instance)) {
        let Some(slot) = self.slots.get_mut(id.0).and_then(Option::as_mut) else {
            return;
        };
        f(&mut slot.instance);
        let group = slot.group;
        self.touched(id);
        if let Some(g) = group {
            self.settle_group(now, g);
        }
    }

    fn touched(&mut self, id: InstanceId) {
        let Some(slot) = self.slots.get_mut(id.0).and_then(Option::as_mut) else {
            return;
        };
        let new = slot.instance.poll_timeout();
        if new != slot.deadline {
            if let Some(old) = slot.deadline {
                self.timeouts.remove(&(old, id));
            }
            if let Some(t) = new {
                self.timeouts.insert((t, id));
            }
            slot.deadline = new;
        }
        if !slot.queued && slot.instance.has_output() {
            slot.queued = true;
            self.ready.push_back(id);
        }
    }

    /// Drops a retired slot once it has nothing left to say.
    fn sweep(&mut self, id: InstanceId) {
        let done = self
            .slots
            .get(id.0)
            .and_then(Option::as_ref)
            .is_some_and(|s| s.retired && !s.queued && !s.instance.has_output());
        if done {
            if let Some(Some(s)) = self.slots.get(id.0)
                && let Some(d) = s.deadline
            {
                self.timeouts.remove(&(d, id));
            }
            self.slots[id.0] = None;
        }
    }

    fn inst(&self, m: InstanceId) -> Option<&Instance> {
        self.slots
            .get(m.0)
            .and_then(Option::as_ref)
            .map(|s| &s.instance)
    }

    /// Applies keepalived's sync-group rules until nothing changes.
    fn settle_group(&mut self, now: Timestamp, g: GroupId) {
        let Some(members) = self.groups.get(g.0).cloned() else {
            return;
        };
        for _ in 0..4 {
            let mut changed = false;
            // A member's own fault faults the others.
            for &m in &members {
                let others_fault = members
                    .iter()
                    .any(|&o| o != m && self.inst(o).is_some_and(Instance::own_fault));
                if let Some(slot) = self.slots.get_mut(m.0).and_then(Option::as_mut) {
                    let before = slot.instance.state();
                    slot.instance.set_group_fault(now, others_fault);
                    changed |= before != slot.instance.state();
                }
            }
            let states: Vec<(InstanceId, State, bool)> = members
                .iter()
                .filter_map(|&m| self.inst(m).map(|i| (m, i.state(), i.wants_master())))
                .collect();
            let all_ready = states.iter().all(|(_, s, w)| *s == State::Master || *w);
            let any_waiting = states.iter().any(|(_, _, w)| *w);
            let any_master = states.iter().any(|(_, s, _)| *s == State::Master);
            let any_backup = states.iter().any(|(_, s, w)| *s == State::Backup && !*w);
            let target = if all_ready && any_waiting {
                Some(State::Master)
            } else if any_master && any_backup {
                Some(State::Backup)
            } else {
                None
            };
            if let Some(to) = target {
                for (m, s, _) in &states {
                    if *s != to
                        && let Some(slot) = self.slots.get_mut(m.0).and_then(Option::as_mut)
                    {
                        slot.instance.sync_force(now, to);
                        changed = true;
                    }
                }
            }
            for &m in &members {
                self.touched(m);
            }
            if !changed {
                break;
            }
        }
    }
}
