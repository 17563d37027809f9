//! Routes owned and healed like virtual addresses, level-triggered: the
//! desired set (the routes of every master, bound instance, and the
//! static routes while the driver runs) against the kernel's routes in the
//! tables concerned (dumps and notifications) and the record of the
//! routes the driver added (which outlives the process). The driver adds
//! what is missing (again, with back-off, when it fails), puts back what
//! someone removed while it is wanted (counted), removes only what it
//! added, and leaves a route of someone else's with the same identity
//! (table, destination, metric) where it is, reported.

use std::collections::{BTreeMap, BTreeSet};

use vrrp_core::{State, Timestamp};

use super::{DriverCore, Effect, FIRST_RETRY, MAX_RETRY};
use crate::route::{KernelRoute, Route, RouteEvent, RouteKey};

/// A route to add or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOp {
    /// The route.
    pub route: Route,
    /// The index of its device, when it names one.
    pub ifindex: Option<u32>,
}

#[derive(Debug, Default)]
struct RouteTrack {
    /// `Some(true)`: an add is out; `Some(false)`: a removal.
    in_flight: Option<bool>,
    retry_at: Option<Timestamp>,
    failures: u64,
    last_error: Option<String>,
    /// Ours and seen present while wanted: a later absence is a removal
    /// from outside.
    present: bool,
    /// Reported as someone else's (until it goes or is ours).
    conflict: bool,
    /// Removal scheduled at start-up: a leftover of an earlier run.
    leftover: bool,
    /// When the last change of ours finished.
    changed_at: Option<Timestamp>,
}

/// The routes part of the core.
#[derive(Debug, Default)]
pub(super) struct Routes {
    /// The kernel's routes in the tables the driver uses.
    kernel: BTreeMap<RouteKey, KernelRoute>,
    /// What the driver added and has not removed.
    owned: BTreeMap<RouteKey, Route>,
    dirty: bool,
    tracks: BTreeMap<RouteKey, RouteTrack>,
    retries: BTreeSet<(Timestamp, RouteKey)>,
    /// Installed while the driver runs.
    pub(super) statics: Vec<Route>,
    /// Shutting down: nothing is wanted any more.
    pub(super) stopping: bool,
    first_reconcile: bool,
    pub(super) counters: RouteCounters,
}

/// Route counters, for the snapshot.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RouteCounters {
    pub(super) restored: u64,
    pub(super) errors: u64,
    pub(super) foreign: u64,
    pub(super) leftovers_removed: u64,
}

impl Routes {
    pub(super) fn new(owned: Vec<Route>) -> Self {
        Routes {
            owned: owned.into_iter().map(|r| (r.key(), r)).collect(),
            first_reconcile: true,
            ..Routes::default()
        }
    }

    pub(super) fn next_retry(&self) -> Option<Timestamp> {
        self.retries.first().map(|(at, _)| *at)
    }

    pub(super) fn in_flight(&self) -> usize {
        self.tracks
            .values()
            .filter(|t| t.in_flight.is_some())
            .count()
    }
}

impl DriverCore {
    /// Routes an earlier run recorded as added (its state file): they are
    /// removed at start unless wanted. Call before [`DriverCore::start`].
    pub fn restore_owned_routes(&mut self, owned: Vec<Route>) {
        self.routes.owned = owned.into_iter().map(|r| (r.key(), r)).collect();
    }

    /// The routes the driver has added and not removed (also given by
    /// [`Effect::PersistRoutes`]).
    pub fn owned_routes(&self) -> Vec<Route> {
        self.routes.owned.values().cloned().collect()
    }

    /// A full read of the kernel's routes, started at `taken_at`: replaces
    /// what was known of the tables the driver uses, except changes of
    /// ours that finished after `taken_at`.
    pub fn handle_route_dump(
        &mut self,
        now: Timestamp,
        taken_at: Timestamp,
        routes: Vec<KernelRoute>,
    ) {
        let tables = self.route_tables();
        self.routes.kernel = routes
            .into_iter()
            .filter(|r| tables.contains(&r.key.table))
            .map(|r| (r.key, r))
            .collect();
        let newer: Vec<(RouteKey, bool)> = self
            .routes
            .tracks
            .iter()
            .filter(|(_, t)| t.changed_at.is_some_and(|at| at > taken_at))
            .map(|(k, _)| (*k, self.routes.owned.contains_key(k)))
            .collect();
        for (key, ours) in newer {
            match self.routes.owned.get(&key) {
                Some(route) if ours => {
                    let synthetic = synthetic(route, None);
                    self.routes.kernel.insert(key, synthetic);
                }
                _ => {
                    self.routes.kernel.remove(&key);
                }
            }
        }
        self.drain(now);
    }

    /// Route notifications, in the order received.
    pub fn handle_route_events(&mut self, now: Timestamp, events: Vec<RouteEvent>) {
        let tables = self.route_tables();
        for event in events {
            match event {
                RouteEvent::Added(r) if tables.contains(&r.key.table) => {
                    self.routes.kernel.insert(r.key, r);
                }
                RouteEvent::Removed(r) => {
                    self.routes.kernel.remove(&r.key);
                }
                _ => {}
            }
        }
        self.drain(now);
    }

    /// The outcome of an [`Effect::AddRoute`] (`add`) or
    /// [`Effect::RemoveRoute`]: `Ok(true)` done, `Ok(false)` it already
    /// was so (EEXIST: a route of someone else's has that identity; ESRCH:
    /// it was gone), or the error.
    pub fn handle_route_result(
        &mut self,
        now: Timestamp,
        op: &RouteOp,
        add: bool,
        result: Result<bool, String>,
    ) {
        let key = op.route.key();
        let track = self.routes.tracks.entry(key).or_default();
        track.in_flight = None;
        track.changed_at = Some(now);
        if let Some(at) = track.retry_at.take() {
            self.routes.retries.remove(&(at, key));
        }
        match (add, result) {
            (true, Ok(added)) => {
                track.failures = 0;
                track.last_error = None;
                if added {
                    track.present = true;
                    self.routes.owned.insert(key, op.route.clone());
                    self.routes.dirty = true;
                    self.routes
                        .kernel
                        .insert(key, synthetic(&op.route, op.ifindex));
                } else {
                    tracing::info!(route = %op.route, "a route with this table, destination and metric was already there; not recording it as ours");
                    // Someone else's: present, details unknown until the
                    // next read.
                    self.routes.kernel.entry(key).or_insert_with(|| {
                        let mut r = synthetic(&op.route, op.ifindex);
                        r.protocol = 0;
                        r
                    });
                }
            }
            (false, Ok(_)) => {
                track.failures = 0;
                track.last_error = None;
                if std::mem::take(&mut track.leftover) {
                    self.routes.counters.leftovers_removed += 1;
                    tracing::info!(route = %op.route, "removed a route an earlier run left behind");
                }
                self.routes.kernel.remove(&key);
                if self.routes.owned.remove(&key).is_some() {
                    self.routes.dirty = true;
                }
            }
            (add, Err(e)) => {
                track.failures += 1;
                let shift = track.failures.saturating_sub(1).min(16) as u32;
                let wait = FIRST_RETRY
                    .checked_mul(1u32 << shift)
                    .map_or(MAX_RETRY, |d| d.min(MAX_RETRY));
                track.retry_at = Some(now + wait);
                self.routes.retries.insert((now + wait, key));
                self.routes.counters.errors += 1;
                tracing::error!(route = %op.route, add, error = %e, retry_in = ?wait, failures = track.failures, "route change failed");
                track.last_error = Some(e);
            }
        }
        self.changed = true;
        self.drain(now);
    }

    /// Retries that are due.
    pub(super) fn route_retries_due(&mut self, now: Timestamp) {
        while let Some((at, key)) = self.routes.retries.first().copied() {
            if at > now {
                break;
            }
            self.routes.retries.remove(&(at, key));
            if let Some(t) = self.routes.tracks.get_mut(&key) {
                t.retry_at = None;
            }
        }
    }

    /// The tables of every configured route and of every route the
    /// driver owns: the part of the kernel's routes it follows.
    fn route_tables(&self) -> BTreeSet<u32> {
        let configured = self.entries.values().flat_map(|e| e.spec.routes.iter());
        self.routes
            .statics
            .iter()
            .chain(configured)
            .map(|r| r.table)
            .chain(self.routes.owned.keys().map(|k| k.table))
            .collect()
    }

    /// Every route wanted now, by key (the first of several with one key
    /// wins): the static routes, then the routes of each master, bound
    /// instance in configuration order.
    pub(super) fn desired_routes(&self) -> BTreeMap<RouteKey, Route> {
        let mut out = BTreeMap::new();
        if self.routes.stopping || !self.started {
            return out;
        }
        let masters = self.order.iter().filter_map(|id| {
            let entry = self.entries.get(id)?;
            let master = entry.binding.is_ok()
                && self
                    .router
                    .instance(*id)
                    .is_some_and(|i| i.state() == State::Master);
            master.then_some(&entry.spec.routes)
        });
        for route in self.routes.statics.iter().chain(masters.flatten()) {
            out.entry(route.key()).or_insert_with(|| route.clone());
        }
        out
    }

    /// Brings every route the driver knows of to where it should be.
    pub(super) fn reconcile_routes(&mut self, now: Timestamp) {
        if !self.started {
            return;
        }
        let desired = self.desired_routes();
        let mut keys: BTreeSet<RouteKey> = desired.keys().copied().collect();
        keys.extend(self.routes.owned.keys().copied());
        keys.extend(self.routes.tracks.keys().copied());
        for key in keys {
            self.reconcile_route(now, key, desired.get(&key));
        }
        self.routes.first_reconcile = false;
        if std::mem::take(&mut self.routes.dirty) {
            self.effects
                .push_back(Effect::PersistRoutes(self.owned_routes()));
            self.changed = true;
        }
    }

    fn reconcile_route(&mut self, now: Timestamp, key: RouteKey, wanted: Option<&Route>) {
        let present = self.routes.kernel.contains_key(&key);
        let track = self.routes.tracks.entry(key).or_default();
        if track.in_flight.is_some() || track.retry_at.is_some_and(|at| at > now) {
            return;
        }
        // A route of ours that is gone is no longer ours: whatever appears
        // there later is someone else's until we create it again.
        if !present && self.routes.owned.remove(&key).is_some() {
            self.routes.dirty = true;
        }
        let owned = self.routes.owned.get(&key).cloned();
        match wanted {
            Some(route) => {
                track.leftover = false;
                if present {
                    if owned.is_some() {
                        track.present = true;
                        track.conflict = false;
                    } else if !track.conflict {
                        track.conflict = true;
                        self.routes.counters.foreign += 1;
                        self.changed = true;
                        tracing::warn!(route = %route, "a route of someone else's has this table, destination and metric: left in place, ours not added");
                    }
                    return;
                }
                track.conflict = false;
                if std::mem::take(&mut track.present) {
                    self.routes.counters.restored += 1;
                    self.changed = true;
                    tracing::warn!(route = %route, "route removed from outside while wanted; putting it back");
                }
                let route = route.clone();
                self.start_route_op(key, route, true);
            }
            None => {
                track.present = false;
                if !present {
                    track.conflict = false;
                    // Nothing to do, nothing to remember.
                    if track.retry_at.is_none() && track.failures == 0 {
                        self.routes.tracks.remove(&key);
                    }
                    return;
                }
                if let Some(route) = owned {
                    if self.routes.first_reconcile {
                        track.leftover = true;
                    }
                    self.start_route_op(key, route, false);
                }
            }
        }
    }

    fn start_route_op(&mut self, key: RouteKey, route: Route, add: bool) {
        let ifindex = match &route.device {
            Some(name) => match self.kernel.link_by_name(name) {
                Some(l) => Some(l.ifindex),
                None => {
                    if let Some(t) = self.routes.tracks.get_mut(&key) {
                        t.last_error = Some(format!("interface {name} missing"));
                    }
                    return;
                }
            },
            None => None,
        };
        if let Some(t) = self.routes.tracks.get_mut(&key) {
            t.in_flight = Some(add);
        }
        let op = RouteOp { route, ifindex };
        // Advertisements queued so far leave first; address changes queued
        // before (a route's source or gateway may need them) go first too.
        self.flush_outbox();
        self.effects.push_back(if add {
            Effect::AddRoute(op)
        } else {
            Effect::RemoveRoute(op)
        });
    }
}

/// The route as the kernel would report it after our add.
fn synthetic(route: &Route, ifindex: Option<u32>) -> KernelRoute {
    KernelRoute {
        key: route.key(),
        gateway: route.gateway,
        ifindex,
        protocol: route.protocol,
        kind: route.kind,
    }
}
