//! Routes owned and healed like virtual addresses (see [`super::owned`]):
//! the desired set is the routes of every master, bound instance and the
//! static routes while the driver runs; of the kernel's routes, only those
//! with the identity of one it may want or owns are followed
//! ([`DriverCore::followed_routes`]).

use std::collections::{BTreeMap, BTreeSet};

use vrrp_core::{State, Timestamp};

use super::owned::{Installable, Op};
use super::{DriverCore, Effect};
use crate::route::{KernelRoute, Route, RouteEvent, RouteKey};

/// A route to add or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOp {
    /// The route.
    pub route: Route,
    /// The index of its device, when it names one.
    pub ifindex: Option<u32>,
}

impl Installable for Route {
    type Key = RouteKey;
    const WHAT: &'static str = "route";

    fn key(&self) -> RouteKey {
        Route::key(self)
    }

    fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }
}

impl DriverCore {
    /// Routes an earlier run recorded as added (its state file): they are
    /// removed at start unless wanted. Call before [`DriverCore::start`].
    pub fn restore_owned_routes(&mut self, owned: Vec<Route>) {
        self.routes.restore(owned);
    }

    /// The routes the driver has added and not removed (also given by
    /// [`Effect::PersistRoutes`]).
    pub fn owned_routes(&self) -> Vec<Route> {
        self.routes.owned()
    }

    /// A full read of the kernel's routes, started at `taken_at`: replaces
    /// what was known of the routes the driver follows
    /// ([`DriverCore::followed_routes`]; the rest is ignored), except
    /// changes of ours that finished after `taken_at`.
    pub fn handle_route_dump(
        &mut self,
        now: Timestamp,
        taken_at: Timestamp,
        routes: Vec<KernelRoute>,
    ) {
        let followed = self.followed_routes();
        let keys = routes
            .into_iter()
            .map(|r| r.key)
            .filter(|k| followed.contains(k))
            .collect();
        self.routes.replace_kernel(keys, taken_at);
        self.drain(now);
    }

    /// Route notifications, in the order received.
    pub fn handle_route_events(&mut self, now: Timestamp, events: Vec<RouteEvent>) {
        let followed = self.followed_routes();
        for event in events {
            match event {
                RouteEvent::Added(r) if followed.contains(&r.key) => {
                    self.routes.event(now, r.key, true);
                }
                RouteEvent::Removed(r) => self.routes.event(now, r.key, false),
                RouteEvent::Added(_) => {}
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
        self.routes.result(now, &op.route, add, result);
        self.changed = true;
        self.drain(now);
    }

    /// The identities of the kernel's routes the driver follows: every
    /// route configured (static, gated, any instance's, master or not),
    /// every route it owns and every one whose change of its own it still
    /// tracks. Nothing else in the kernel can change what it does, so
    /// whoever reads the kernel for it may keep only these: a host with
    /// a full routing table in the table of its virtual routes is read
    /// whole, but never held or handed over whole. A superset is harmless;
    /// a key must be in it before the driver changes its route (the shell
    /// publishes it before carrying out [`Effect::AddRoute`] and
    /// [`Effect::RemoveRoute`]).
    pub fn followed_routes(&self) -> BTreeSet<RouteKey> {
        let configured = self.entries.values().flat_map(|e| e.spec.routes.iter());
        self.routes
            .statics
            .iter()
            .chain(&self.routes.gated)
            .chain(configured)
            .map(Route::key)
            .chain(self.routes.owned_keys().cloned())
            .chain(self.routes.tracked_keys().cloned())
            .collect()
    }

    /// Replaces the gated routes: routes the driver's owner wants while
    /// some condition of its own holds (vrrpd: the host routes of virtual
    /// servers whose quorum is up). They are owned and healed like the
    /// instances' routes, and removed when no longer given or when the
    /// driver stops. The routes followed change with them (the shell
    /// reads [`DriverCore::followed_routes`] again).
    pub fn set_gated_routes(&mut self, now: Timestamp, routes: Vec<Route>) {
        self.routes.gated = routes;
        self.forget_unfollowed_routes();
        self.changed = true;
        self.drain(now);
    }

    /// What is known of routes no longer followed is dropped: their
    /// notices are no longer read, so it would go stale (a route of
    /// someone else's taken for present when configured again; the add is
    /// refused with EEXIST then, which says the same).
    pub(super) fn forget_unfollowed_routes(&mut self) {
        let followed = self.followed_routes();
        self.routes.retain_kernel(|k| followed.contains(k));
    }

    /// Every route wanted now, by key (the first of several with one key
    /// wins): the static routes, then the routes of each master, bound
    /// instance in configuration order, then the gated routes.
    fn desired_routes(&self) -> BTreeMap<RouteKey, Route> {
        let mut out = BTreeMap::new();
        if self.stopping || !self.started {
            return out;
        }
        for route in self
            .routes
            .statics
            .iter()
            .chain(self.masters().flat_map(|e| e.spec.routes.iter()))
            .chain(&self.routes.gated)
        {
            out.entry(route.key()).or_insert_with(|| route.clone());
        }
        out
    }

    /// The entries of the master, bound instances, in configuration order.
    pub(super) fn masters(&self) -> impl Iterator<Item = &super::Entry> {
        self.order.iter().filter_map(|id| {
            let entry = self.entries.get(id)?;
            let master = entry.binding.is_ok()
                && self
                    .router
                    .instance(*id)
                    .is_some_and(|i| i.state() == State::Master);
            master.then_some(entry)
        })
    }

    /// Brings every route the driver knows of to where it should be.
    pub(super) fn reconcile_routes(&mut self, now: Timestamp) {
        if !self.started {
            return;
        }
        let desired = self.desired_routes();
        let kernel = &self.kernel;
        let (ops, changed) = self.routes.reconcile(now, &desired, |name| {
            kernel.link_by_name(name).map(|l| l.ifindex)
        });
        self.changed |= changed;
        if !ops.is_empty() {
            // Advertisements queued so far leave first; address changes
            // queued before (a route's source or gateway may need them)
            // go first too.
            self.flush_outbox();
        }
        for Op {
            add,
            entry,
            ifindex,
        } in ops
        {
            let op = RouteOp {
                route: entry,
                ifindex,
            };
            self.effects.push_back(if add {
                Effect::AddRoute(op)
            } else {
                Effect::RemoveRoute(op)
            });
        }
        if self.routes.take_dirty() {
            self.effects
                .push_back(Effect::PersistRoutes(self.owned_routes()));
            self.changed = true;
        }
    }
}
