//! [`LoadBalancer`]: keepalived's `virtual_server` decisions, pure.
//!
//! Health goes in ([`LoadBalancer::set_health`]); out come the desired IPVS
//! table ([`LoadBalancer::desired`]), the changes to reach it from the
//! kernel's table ([`LoadBalancer::plan`] / [`LoadBalancer::sync`]) and
//! notifications ([`LoadBalancer::poll_event`]). No clock, no socket: the
//! daemon owns the checkers and the [`IpvsClient`](crate::IpvsClient).
//!
//! Semantics follow keepalived's `check_daemon/ipwrapper.c`:
//! - a real server that goes down is removed, or kept with weight 0 when it
//!   has `inhibit_on_failure`; it is put back with its weight when it comes up;
//! - quorum is the minimum sum of the weights of live real servers. With
//!   hysteresis `h` it is lost when the sum drops below `quorum - h` and
//!   gained when it reaches `quorum + h` (`update_quorum_state`);
//! - while quorum is lost, the sorry server (if any) is added and the live real
//!   servers are taken out (or to weight 0 if inhibited); when quorum is
//!   gained back the sorry server is removed and they return;
//! - `alpha`: real servers start down until their first check succeeds;
//!   otherwise they start up;
//! - `omega`: on shutdown, real-server-down and quorum-down notifications are
//!   emitted for what was up (keepalived runs notify_down/quorum_down then).
//!   Whether shutdown removes the services is the caller's [`ShutdownMode`]
//!   (keepalived removes them unless run with `--dont-release-ipvs`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use crate::error::Error;
use crate::model::{Destination, Service, ServiceKey};
use crate::reconcile::{self, Change, DesiredService, DesiredTable, Ownership};
use crate::table::{Ipvs, Table, TableEntry};

/// A configured real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealServer {
    /// Address, forwarding method, weight and thresholds while up.
    pub destination: Destination,
    /// When down, keep it in the table with weight 0 instead of removing it
    /// (keepalived `inhibit_on_failure`): existing connections drain, no new ones.
    pub inhibit_on_failure: bool,
}

impl RealServer {
    /// A real server that is removed when down.
    pub const fn new(destination: Destination) -> Self {
        RealServer {
            destination,
            inhibit_on_failure: false,
        }
    }

    /// The same server, inhibited (weight 0) instead of removed when down.
    pub const fn inhibit_on_failure(mut self) -> Self {
        self.inhibit_on_failure = true;
        self
    }
}

/// A configured virtual server (keepalived `virtual_server` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    /// The IPVS service.
    pub service: Service,
    /// Real servers.
    pub real_servers: Vec<RealServer>,
    /// Served while quorum is lost (keepalived `sorry_server`).
    pub sorry_server: Option<Destination>,
    /// Minimum sum of live real servers' weights (keepalived `quorum`, default 1).
    pub quorum: u32,
    /// Hysteresis around `quorum` (keepalived `hysteresis`, default 0).
    pub hysteresis: u32,
    /// Real servers start down until their first successful check (keepalived `alpha`).
    pub alpha: bool,
    /// Emit down notifications on shutdown (keepalived `omega`).
    pub omega: bool,
}

impl VirtualServer {
    /// A virtual server with keepalived's defaults: quorum 1, no hysteresis,
    /// no sorry server, alpha and omega off.
    pub fn new(service: Service) -> Self {
        VirtualServer {
            service,
            real_servers: Vec::new(),
            sorry_server: None,
            quorum: 1,
            hysteresis: 0,
            alpha: false,
            omega: false,
        }
    }

    /// The same virtual server with one more real server.
    pub fn with_real_server(mut self, server: RealServer) -> Self {
        self.real_servers.push(server);
        self
    }

    /// The same virtual server with a sorry server.
    pub fn with_sorry_server(mut self, sorry: Destination) -> Self {
        self.sorry_server = Some(sorry);
        self
    }

    /// The same virtual server with quorum and hysteresis.
    pub fn with_quorum(mut self, quorum: u32, hysteresis: u32) -> Self {
        self.quorum = quorum;
        self.hysteresis = hysteresis;
        self
    }
}

/// Health of a real server as the checkers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Health {
    /// Checks pass: serve traffic.
    Up,
    /// Checks fail: take it out.
    Down,
}

/// Something the daemon may want to act on (notify scripts, logs, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A real server came up (keepalived `notify_up`).
    RealServerUp {
        /// The virtual service.
        service: ServiceKey,
        /// The real server.
        server: SocketAddr,
    },
    /// A real server went down (keepalived `notify_down`).
    RealServerDown {
        /// The virtual service.
        service: ServiceKey,
        /// The real server.
        server: SocketAddr,
    },
    /// Quorum gained (keepalived `quorum_up`); the sorry server, if any, is withdrawn.
    QuorumUp {
        /// The virtual service.
        service: ServiceKey,
    },
    /// Quorum lost (keepalived `quorum_down`); the sorry server, if any, takes over.
    QuorumDown {
        /// The virtual service.
        service: ServiceKey,
    },
}

/// What shutdown does to the kernel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownMode {
    /// Delete every service we own (keepalived's default on stop).
    Release,
    /// Leave the table as it is, so a restarted instance adopts it without
    /// dropping connections (keepalived `--dont-release-ipvs`).
    Keep,
}

/// A configuration the balancer refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Two virtual servers with the same key.
    #[error("virtual server {0} is configured twice")]
    DuplicateService(ServiceKey),
    /// Two real servers (or a real server and the sorry server) with one address.
    #[error("virtual server {service}: {server} is configured twice")]
    DuplicateRealServer {
        /// The virtual service.
        service: ServiceKey,
        /// The repeated address.
        server: SocketAddr,
    },
}

/// A health report for a real server that is not configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no real server {server} in virtual server {service}")]
pub struct UnknownRealServer {
    /// The virtual service asked for.
    pub service: ServiceKey,
    /// The real server asked for.
    pub server: SocketAddr,
}

#[derive(Debug, Clone)]
struct VsState {
    config: VirtualServer,
    health: BTreeMap<SocketAddr, Health>,
    quorum_up: bool,
}

impl VsState {
    fn new(config: VirtualServer, previous: Option<&VsState>) -> Self {
        let initial = if config.alpha {
            Health::Down
        } else {
            Health::Up
        };
        let health = config
            .real_servers
            .iter()
            .map(|rs| {
                let addr = rs.destination.addr;
                (
                    addr,
                    previous
                        .and_then(|p| p.health.get(&addr).copied())
                        .unwrap_or(initial),
                )
            })
            .collect();
        VsState {
            config,
            health,
            quorum_up: previous.is_none_or(|p| p.quorum_up),
        }
    }

    fn live_weight(&self) -> u64 {
        self.config
            .real_servers
            .iter()
            .filter(|rs| self.health.get(&rs.destination.addr) == Some(&Health::Up))
            .map(|rs| u64::from(rs.destination.weight))
            .sum()
    }

    /// keepalived `update_quorum_state`: the threshold moves by the hysteresis
    /// away from the current state, so a sum that wobbles around `quorum` does not flap.
    fn update_quorum(&mut self, init: bool, events: &mut VecDeque<Event>) {
        let quorum = u64::from(self.config.quorum);
        let hysteresis = u64::from(self.config.hysteresis);
        let threshold = if self.quorum_up {
            quorum.saturating_sub(hysteresis)
        } else {
            quorum + hysteresis
        };
        let sum = self.live_weight();
        let service = self.config.service.key;
        if !self.quorum_up && sum >= threshold {
            self.quorum_up = true;
            events.push_back(Event::QuorumUp { service });
        } else if (self.quorum_up || init) && sum < threshold {
            self.quorum_up = false;
            events.push_back(Event::QuorumDown { service });
        }
    }

    fn desired(&self) -> DesiredService {
        let sorry_active = !self.quorum_up && self.config.sorry_server.is_some();
        let mut destinations = BTreeMap::new();
        let mut managed = BTreeSet::new();
        for rs in &self.config.real_servers {
            let addr = rs.destination.addr;
            managed.insert(addr);
            let up = self.health.get(&addr) == Some(&Health::Up);
            if up && !sorry_active {
                destinations.insert(addr, rs.destination);
            } else if rs.inhibit_on_failure {
                destinations.insert(addr, rs.destination.with_weight(0));
            }
        }
        if let Some(sorry) = self.config.sorry_server {
            managed.insert(sorry.addr);
            if sorry_active {
                destinations.insert(sorry.addr, sorry);
            }
        }
        DesiredService {
            service: self.config.service.clone(),
            destinations,
            managed,
        }
    }
}

/// The virtual servers, their real servers' health and quorum state, and the
/// ownership record; turns health into IPVS table changes.
///
/// Drive it like this: feed every health change with
/// [`set_health`](Self::set_health) (or a [`HealthAggregator`](crate::HealthAggregator)),
/// then call [`sync_changed`](Self::sync_changed), then drain
/// [`poll_event`](Self::poll_event) until `None`. Events are queued in the
/// order the changes happened; syncing does not produce events. Call
/// [`sync`](Self::sync) at start-up and periodically (keepalived has no such
/// timer; 30 s to a few minutes is sensible) to find and repair what
/// someone changed by hand.
///
/// Two ways to sync:
/// - [`sync`](Self::sync) / [`sync_report`](Self::sync_report) read the
///   whole kernel table (one dump per service), plan the difference and
///   apply it. Writes the kernel needs although our wishes did not change
///   (an entry deleted or edited by hand) are *repairs*, counted in the
///   report and in [`stats`](Self::stats).
/// - [`sync_changed`](Self::sync_changed) reads and plans only the services
///   whose desired state changed since they were last synced (a health
///   change, a reload that touched them): nothing at all after a reload
///   with no change, one service after a health transition.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    servers: BTreeMap<ServiceKey, VsState>,
    events: VecDeque<Event>,
    ownership: Ownership,
    /// Each managed service as the last sync that reached it left it.
    applied: BTreeMap<ServiceKey, Applied>,
    /// Services whose desired state may differ from `applied`.
    dirty: BTreeSet<ServiceKey>,
    stats: SyncStats,
}

/// What one sync did, from [`LoadBalancer::sync_report`] and
/// [`LoadBalancer::sync_changed`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SyncReport {
    /// Every change made, in order (adoptions included; see [`Change::writes`]).
    pub changes: Vec<Change>,
    /// Writes that only undid a change made behind our back (an entry we
    /// programmed was deleted or edited, or a managed server was added).
    pub repairs: usize,
    /// Services whose kernel state was read.
    pub services_read: usize,
}

impl SyncReport {
    /// Number of changes that wrote to the kernel.
    pub fn writes(&self) -> usize {
        self.changes.iter().filter(|c| c.writes()).count()
    }
}

/// Counters over the balancer's life, from [`LoadBalancer::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SyncStats {
    /// Full syncs ([`LoadBalancer::sync`]) that completed.
    pub full_syncs: u64,
    /// Incremental syncs ([`LoadBalancer::sync_changed`]) that completed.
    pub incremental_syncs: u64,
    /// Kernel writes made.
    pub writes: u64,
    /// Of those, repairs of changes made behind our back.
    pub repairs: u64,
    /// Syncs that failed (the next one retries from a fresh read).
    pub failures: u64,
}

/// What a sync left a managed service as: its settings and destinations,
/// sorted by address (a compact copy: at 37,205 real servers it costs about
/// 2 MB where a second `DesiredTable` costs 10).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Applied {
    service: Service,
    destinations: Vec<Destination>,
}

impl Applied {
    fn of(desired: &DesiredService) -> Self {
        Applied {
            service: desired.service.normalized(),
            // A BTreeMap's values come sorted by their address.
            destinations: desired.destinations.values().copied().collect(),
        }
    }

    fn destination(&self, addr: &SocketAddr) -> Option<&Destination> {
        self.destinations
            .binary_search_by(|d| d.addr.cmp(addr))
            .ok()
            .and_then(|i| self.destinations.get(i))
    }

    fn matches(&self, desired: &DesiredService) -> bool {
        self.destinations.len() == desired.destinations.len()
            && self
                .destinations
                .iter()
                .zip(desired.destinations.values())
                .all(|(a, b)| a == b)
            && self.service == desired.service.normalized()
    }
}

/// The kernel's services by key (one dump).
fn listed_services<I: Ipvs + ?Sized>(ipvs: &mut I) -> Result<BTreeMap<ServiceKey, Service>, Error> {
    Ok(ipvs
        .services()?
        .into_iter()
        .map(|service| (service.key, service))
        .collect())
}

/// Whether `change` only restores what we had already programmed.
fn is_repair(change: &Change, applied: &BTreeMap<ServiceKey, Applied>) -> bool {
    match change {
        Change::AddService(service) | Change::UpdateService(service) => applied
            .get(&service.key)
            .is_some_and(|a| a.service == *service),
        Change::AddDestination(key, dest) | Change::UpdateDestination(key, dest) => {
            applied.get(key).and_then(|a| a.destination(&dest.addr)) == Some(dest)
        }
        Change::DeleteDestination(key, addr) => applied
            .get(key)
            .is_some_and(|a| a.destination(addr).is_none()),
        Change::DeleteService(_) | Change::AdoptService(_) | Change::AdoptDestination(..) => false,
    }
}

fn validate(config: &[VirtualServer]) -> Result<(), ConfigError> {
    let mut keys = std::collections::HashSet::with_capacity(config.len());
    let mut addrs = std::collections::HashSet::new();
    for vs in config {
        let service = vs.service.key;
        if !keys.insert(service) {
            return Err(ConfigError::DuplicateService(service));
        }
        addrs.clear();
        let sorry = vs.sorry_server.iter().map(|d| d.addr);
        for server in vs
            .real_servers
            .iter()
            .map(|rs| rs.destination.addr)
            .chain(sorry)
        {
            if !addrs.insert(server) {
                return Err(ConfigError::DuplicateRealServer { service, server });
            }
        }
    }
    Ok(())
}

impl LoadBalancer {
    /// A balancer for `config`. Real servers start up, or down with `alpha`;
    /// a virtual server that starts below quorum queues [`Event::QuorumDown`].
    pub fn new(config: Vec<VirtualServer>) -> Result<Self, ConfigError> {
        let mut lb = LoadBalancer {
            servers: BTreeMap::new(),
            events: VecDeque::new(),
            ownership: Ownership::default(),
            applied: BTreeMap::new(),
            dirty: BTreeSet::new(),
            stats: SyncStats::default(),
        };
        lb.reload(config)?;
        Ok(lb)
    }

    /// The same balancer with an ownership record saved by a previous run.
    pub fn with_ownership(mut self, ownership: Ownership) -> Self {
        self.ownership = ownership;
        self
    }

    /// Replace the configuration. Real servers that stay keep their health and
    /// virtual servers that stay keep their quorum state; new ones start as in
    /// [`new`](Self::new). Services that left are deleted by the next
    /// [`sync`](Self::sync) or [`sync_changed`](Self::sync_changed) (we own
    /// them). Only services whose configuration changed, appeared or left
    /// are marked for [`sync_changed`](Self::sync_changed).
    pub fn reload(&mut self, config: Vec<VirtualServer>) -> Result<(), ConfigError> {
        validate(&config)?;
        let mut servers = BTreeMap::new();
        for vs in config {
            let key = vs.service.key;
            let previous = self.servers.remove(&key);
            let state = match previous {
                // Unchanged: keep the state as it is (nothing to recompute).
                Some(previous) if previous.config == vs => previous,
                previous => {
                    self.dirty.insert(key);
                    let mut state = VsState::new(vs, previous.as_ref());
                    state.update_quorum(previous.is_none(), &mut self.events);
                    state
                }
            };
            servers.insert(key, state);
        }
        // What is left in the old map has left the configuration.
        self.dirty.extend(self.servers.keys().copied());
        self.servers = servers;
        Ok(())
    }

    /// Report a real server's health. Returns whether it changed; a change
    /// queues [`Event::RealServerUp`]/[`Event::RealServerDown`] and possibly a
    /// quorum event.
    pub fn set_health(
        &mut self,
        service: &ServiceKey,
        server: SocketAddr,
        health: Health,
    ) -> Result<bool, UnknownRealServer> {
        let unknown = || UnknownRealServer {
            service: *service,
            server,
        };
        let state = self.servers.get_mut(service).ok_or_else(unknown)?;
        let slot = state.health.get_mut(&server).ok_or_else(unknown)?;
        if *slot == health {
            return Ok(false);
        }
        *slot = health;
        let service = *service;
        self.dirty.insert(service);
        self.events.push_back(match health {
            Health::Up => Event::RealServerUp { service, server },
            Health::Down => Event::RealServerDown { service, server },
        });
        state.update_quorum(false, &mut self.events);
        Ok(true)
    }

    /// A real server's current health.
    pub fn health(&self, service: &ServiceKey, server: SocketAddr) -> Option<Health> {
        self.servers.get(service)?.health.get(&server).copied()
    }

    /// Whether a virtual server has quorum.
    pub fn has_quorum(&self, service: &ServiceKey) -> Option<bool> {
        self.servers.get(service).map(|s| s.quorum_up)
    }

    /// The next queued event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// What the managed part of the IPVS table should be now.
    pub fn desired(&self) -> DesiredTable {
        self.servers
            .iter()
            .map(|(k, s)| (*k, s.desired()))
            .collect()
    }

    /// The changes that bring `current` (the kernel's table) to [`desired`](Self::desired).
    pub fn plan(&self, current: &Table) -> Vec<Change> {
        reconcile::plan(&self.desired(), current, &self.ownership)
    }

    /// Read the kernel table, apply the difference, update the ownership
    /// record. Returns every change made (including no-write adoptions); see
    /// [`sync_report`](Self::sync_report) for the repair count.
    pub fn sync<I: Ipvs + ?Sized>(&mut self, ipvs: &mut I) -> Result<Vec<Change>, Error> {
        self.sync_report(ipvs).map(|report| report.changes)
    }

    /// Like [`sync`](Self::sync), and says how many writes were repairs of
    /// changes made behind our back (also added to [`stats`](Self::stats)).
    ///
    /// Stops at the first failing change (the changes before it stay
    /// applied and recorded); the next sync retries from a fresh read.
    pub fn sync_report<I: Ipvs + ?Sized>(&mut self, ipvs: &mut I) -> Result<SyncReport, Error> {
        let result = self.full_sync(ipvs);
        match &result {
            Ok(_) => self.stats.full_syncs += 1,
            Err(_) => self.stats.failures += 1,
        }
        result
    }

    fn full_sync<I: Ipvs + ?Sized>(&mut self, ipvs: &mut I) -> Result<SyncReport, Error> {
        let listed = listed_services(ipvs)?;
        let keys: Vec<ServiceKey> = self.servers.keys().copied().collect();
        // Services we own that someone deleted are no longer ours.
        let owned: Vec<ServiceKey> = self.ownership.services().copied().collect();
        for key in owned.iter().filter(|k| !listed.contains_key(k)) {
            self.ownership.retain_present_service(key, None);
        }
        let mut report = SyncReport::default();
        self.sync_services(ipvs, &listed, &keys, &owned, &mut report)?;
        let servers = &self.servers;
        self.applied.retain(|key, _| servers.contains_key(key));
        self.dirty.clear();
        Ok(report)
    }

    /// Sync only the services whose desired state changed since they were
    /// last synced (see the type's docs): after a reload with no change, no
    /// kernel request at all; after one real server's transition, one
    /// service dump and one list of its destinations, then its writes.
    ///
    /// Drift in other services is not seen: that is [`sync`](Self::sync)'s
    /// job. On error the services stay marked and the next call retries.
    pub fn sync_changed<I: Ipvs + ?Sized>(&mut self, ipvs: &mut I) -> Result<SyncReport, Error> {
        let result = self.incremental_sync(ipvs);
        match &result {
            Ok(_) => self.stats.incremental_syncs += 1,
            Err(_) => self.stats.failures += 1,
        }
        result
    }

    fn incremental_sync<I: Ipvs + ?Sized>(&mut self, ipvs: &mut I) -> Result<SyncReport, Error> {
        let mut wanted = Vec::new();
        let mut leaving = Vec::new();
        for key in &self.dirty {
            match self.servers.get(key) {
                Some(state) => {
                    let unchanged = self
                        .applied
                        .get(key)
                        .is_some_and(|a| a.matches(&state.desired()));
                    if !unchanged {
                        wanted.push(*key);
                    }
                }
                None => {
                    if self.applied.contains_key(key) || self.ownership.owns_service(key) {
                        leaving.push(*key);
                    }
                }
            }
        }
        let mut report = SyncReport::default();
        if !wanted.is_empty() || !leaving.is_empty() {
            let listed = listed_services(ipvs)?;
            for key in wanted.iter().chain(&leaving) {
                if !listed.contains_key(key) {
                    self.ownership.retain_present_service(key, None);
                }
            }
            self.sync_services(ipvs, &listed, &wanted, &leaving, &mut report)?;
        }
        self.dirty.clear();
        Ok(report)
    }

    /// Brings each of `keys` (configured services) to its desired state, one
    /// service at a time, then deletes those of `leaving` that we own, are
    /// no longer configured and still exist. Keeps only one service's kernel
    /// state in memory at a time.
    fn sync_services<I: Ipvs + ?Sized>(
        &mut self,
        ipvs: &mut I,
        listed: &BTreeMap<ServiceKey, Service>,
        keys: &[ServiceKey],
        leaving: &[ServiceKey],
        report: &mut SyncReport,
    ) -> Result<(), Error> {
        let mut changes = Vec::new();
        for key in keys {
            let Some(want) = self.servers.get(key).map(VsState::desired) else {
                continue;
            };
            let have = match listed.get(key) {
                Some(service) => {
                    report.services_read += 1;
                    let mut entry = TableEntry {
                        service: service.clone(),
                        destinations: BTreeMap::new(),
                    };
                    for d in ipvs.destinations(key)? {
                        entry.destinations.insert(d.destination.addr, d.destination);
                    }
                    Some(entry)
                }
                None => None,
            };
            self.ownership.retain_present_service(key, have.as_ref());
            reconcile::plan_service(key, &want, have.as_ref(), &self.ownership, &mut changes);
            self.apply(ipvs, &mut changes, report)?;
            self.applied.insert(*key, Applied::of(&want));
        }
        for key in leaving {
            if !self.servers.contains_key(key)
                && self.ownership.owns_service(key)
                && listed.contains_key(key)
            {
                changes.push(Change::DeleteService(*key));
                self.apply(ipvs, &mut changes, report)?;
            }
            if !self.servers.contains_key(key) {
                self.applied.remove(key);
            }
        }
        Ok(())
    }

    /// Applies and drains `changes` in order, recording ownership, counting
    /// repairs and appending them to `report`.
    fn apply<I: Ipvs + ?Sized>(
        &mut self,
        ipvs: &mut I,
        changes: &mut Vec<Change>,
        report: &mut SyncReport,
    ) -> Result<(), Error> {
        for change in changes.drain(..) {
            reconcile::apply_change(ipvs, &change)?;
            self.ownership.record(&change);
            if change.writes() {
                self.stats.writes += 1;
                if is_repair(&change, &self.applied) {
                    report.repairs += 1;
                    self.stats.repairs += 1;
                }
            }
            report.changes.push(change);
        }
        Ok(())
    }

    /// Counters of the syncs so far.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// Stop: with `omega`, queue down events for live real servers and
    /// quorum-down for virtual servers that had quorum; then, with
    /// [`ShutdownMode::Release`], delete every service we own.
    pub fn shutdown<I: Ipvs + ?Sized>(
        &mut self,
        ipvs: &mut I,
        mode: ShutdownMode,
    ) -> Result<Vec<Change>, Error> {
        for (key, state) in &mut self.servers {
            if !state.config.omega {
                continue;
            }
            for (addr, health) in &mut state.health {
                if *health == Health::Up {
                    *health = Health::Down;
                    self.events.push_back(Event::RealServerDown {
                        service: *key,
                        server: *addr,
                    });
                }
            }
            if state.quorum_up {
                state.quorum_up = false;
                self.events.push_back(Event::QuorumDown { service: *key });
            }
        }
        let mut changes = Vec::new();
        if mode == ShutdownMode::Release {
            let current = ipvs.table()?;
            let owned: Vec<ServiceKey> = self.ownership.services().copied().collect();
            for key in owned {
                if current.services.contains_key(&key) {
                    let change = Change::DeleteService(key);
                    reconcile::apply_change(ipvs, &change)?;
                    self.ownership.record(&change);
                    changes.push(change);
                }
            }
        }
        Ok(changes)
    }

    /// The ownership record (persist it with [`Ownership::to_text`]).
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }
}

#[cfg(test)]
mod tests;
