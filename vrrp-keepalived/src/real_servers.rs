//! keepalived's `virtual_server` half on the libraries: health checks of
//! the `healthcheck` runner decide each real server's health
//! ([`lvs::HealthAggregator`]: up while every check is up), the
//! [`lvs::LoadBalancer`] decides the IPVS table, and the table is kept in
//! step — incrementally on each change, in full every
//! [`RealServers::reconcile`] (drift made behind our back is repaired and
//! counted) and after lost check results ([`RealServers::resync`]).
//!
//! Health survives reloads: a check whose probe and timing did not change
//! keeps running with its state, so a dead real server stays out of the
//! table and a live one stays in; only new checks start from their initial
//! health (down with the virtual server's `alpha`, up without).
//!
//! `notify_up` / `notify_down` and `quorum_up` / `quorum_down` scripts run
//! in order per real server and per virtual server on [`ScriptQueues`];
//! every change is also an [`Event`] for other consumers.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use healthcheck::{CheckId, CheckSpec, RunnerHandle, Transition};
use lvs::{
    Health, HealthAggregator, Ipvs, LoadBalancer, ServerChecks, ServiceKey, ShutdownMode,
    SyncReport, SyncStats, VirtualServer,
};

use crate::command::Command;
use crate::event::Event;
use crate::queue::{Batch, ScriptQueues};

/// One real server of a [`VirtualServerSpec`]: its checks and scripts.
#[derive(Debug, Clone)]
pub struct RealServerSpec {
    /// Its address (as in the virtual server's real servers).
    pub addr: SocketAddr,
    /// Its checks: it is up while all are up (none: always up).
    pub checks: Vec<CheckSpec>,
    /// Run when it comes up (keepalived's `notify_up`).
    pub notify_up: Option<Command>,
    /// Run when it goes down (`notify_down`).
    pub notify_down: Option<Command>,
}

/// One virtual server: what the table should hold, with the real servers'
/// checks and the scripts.
#[derive(Debug, Clone)]
pub struct VirtualServerSpec {
    /// The service and its real servers for [`lvs::LoadBalancer`].
    pub server: VirtualServer,
    /// The real servers' checks and scripts.
    pub real_servers: Vec<RealServerSpec>,
    /// Run when quorum is gained (`quorum_up`).
    pub quorum_up: Option<Command>,
    /// Run when quorum is lost (`quorum_down`).
    pub quorum_down: Option<Command>,
}

/// Why [`RealServers`] could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RealServerError {
    /// The load balancer refused the configuration.
    #[error(transparent)]
    Config(#[from] lvs::ConfigError),
    /// The health check runner refused a check.
    #[error("check {name}: {source}")]
    Check {
        /// The check's name.
        name: String,
        /// The runner's reason.
        #[source]
        source: healthcheck::ConfigError,
    },
    /// The kernel refused a change (the next sync retries from a fresh
    /// read).
    #[error(transparent)]
    Ipvs(#[from] lvs::Error),
}

/// A check's identity across reloads: its probe and timing.
type CheckKey = u64;
type ServerKey = (ServiceKey, SocketAddr);

fn check_key(spec: &CheckSpec) -> CheckKey {
    let mut h = DefaultHasher::new();
    spec.probe.hash(&mut h);
    spec.timing.hash(&mut h);
    h.finish()
}

/// Status of one real server, for a status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerStatus {
    /// The virtual service.
    pub service: ServiceKey,
    /// The real server.
    pub server: SocketAddr,
    /// Whether its checks pass.
    pub up: bool,
}

/// Real servers kept in the IPVS table by their health (see the module
/// docs). The IPVS calls are blocking netlink requests: call the methods
/// that sync where blocking is allowed.
pub struct RealServers {
    lb: LoadBalancer,
    health: HealthAggregator<CheckKey>,
    ipvs: Box<dyn Ipvs + Send>,
    runner: RunnerHandle,
    checks: HashMap<CheckId, (ServerKey, CheckKey, String)>,
    by_key: HashMap<(ServerKey, CheckKey), CheckId>,
    server_scripts: HashMap<ServerKey, (Option<Command>, Option<Command>)>,
    quorum_scripts: HashMap<ServiceKey, (Option<Command>, Option<Command>)>,
    scripts: ScriptQueues,
    events: VecDeque<Event>,
    /// The last sync failed: the next [`RealServers::reconcile`] is due
    /// now.
    failed: bool,
}

impl std::fmt::Debug for RealServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealServers")
            .field("checks", &self.checks.len())
            .field("stats", &self.lb.stats())
            .finish_non_exhaustive()
    }
}

impl RealServers {
    /// Starts the checks and programs the table (a full sync: what an
    /// earlier run left is adopted, foreign entries are left alone).
    ///
    /// # Errors
    /// A refused configuration or check, or the kernel's refusal; nothing
    /// keeps running then.
    pub fn start(
        specs: &[VirtualServerSpec],
        runner: RunnerHandle,
        ipvs: Box<dyn Ipvs + Send>,
        scripts: ScriptQueues,
    ) -> Result<Self, RealServerError> {
        let lb = LoadBalancer::new(specs.iter().map(|s| s.server.clone()).collect())?;
        let mut rs = RealServers {
            lb,
            health: HealthAggregator::new(),
            ipvs,
            runner,
            checks: HashMap::new(),
            by_key: HashMap::new(),
            server_scripts: HashMap::new(),
            quorum_scripts: HashMap::new(),
            scripts,
            events: VecDeque::new(),
            failed: false,
        };
        if let Err(e) = rs.configure(specs) {
            rs.stop_checks();
            return Err(e);
        }
        rs.health.apply(&mut rs.lb);
        if let Err(e) = rs.lb.sync_report(rs.ipvs.as_mut()) {
            rs.stop_checks();
            return Err(e.into());
        }
        rs.drain_lb_events();
        Ok(rs)
    }

    /// Adds the checks new to `specs` (unchanged ones keep running), stops
    /// the others, and configures the aggregator.
    fn configure(&mut self, specs: &[VirtualServerSpec]) -> Result<(), RealServerError> {
        let mut wanted: HashSet<(ServerKey, CheckKey)> = HashSet::new();
        let mut servers = Vec::new();
        let mut added = Vec::new();
        self.server_scripts.clear();
        self.quorum_scripts.clear();
        for vs in specs {
            let service = vs.server.service.key;
            self.quorum_scripts
                .insert(service, (vs.quorum_up.clone(), vs.quorum_down.clone()));
            // keepalived's `alpha`: down until the checks pass.
            let initial = if vs.server.alpha {
                Health::Down
            } else {
                Health::Up
            };
            for rs in &vs.real_servers {
                let server = (service, rs.addr);
                self.server_scripts
                    .insert(server, (rs.notify_up.clone(), rs.notify_down.clone()));
                let mut keys = Vec::new();
                for spec in &rs.checks {
                    let key = check_key(spec);
                    keys.push((key, initial));
                    if !wanted.insert((server, key)) || self.by_key.contains_key(&(server, key)) {
                        continue;
                    }
                    let id = match self.runner.add(spec.clone()) {
                        Ok(id) => id,
                        Err(source) => {
                            for id in added {
                                self.forget(id);
                            }
                            return Err(RealServerError::Check {
                                name: spec.name.clone(),
                                source,
                            });
                        }
                    };
                    added.push(id);
                    self.by_key.insert((server, key), id);
                    self.checks.insert(id, (server, key, spec.name.clone()));
                }
                servers.push(ServerChecks::new(service, rs.addr, keys));
            }
        }
        let stale: Vec<CheckId> = self
            .checks
            .iter()
            .filter(|(_, (server, key, _))| !wanted.contains(&(*server, *key)))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.forget(id);
        }
        let report = self.health.configure(servers);
        tracing::debug!(
            kept = report.kept,
            added = report.added,
            removed = report.removed,
            "real server checks"
        );
        // A check that joined a running identical one (the runner shares
        // them) starts from that one's decided health.
        for id in added {
            self.absorb_status(id);
        }
        Ok(())
    }

    fn forget(&mut self, id: CheckId) {
        if let Some((server, key, _)) = self.checks.remove(&id) {
            self.by_key.remove(&(server, key));
        }
        self.runner.remove(id);
    }

    fn stop_checks(&mut self) {
        let ids: Vec<CheckId> = self.checks.keys().copied().collect();
        for id in ids {
            self.forget(id);
        }
    }

    /// Takes a check's current health from the runner, if decided.
    fn absorb_status(&mut self, id: CheckId) -> bool {
        let Some(((service, server), key, _)) = self.checks.get(&id).cloned() else {
            return false;
        };
        let Some(status) = self.runner.watch(id).map(|w| w.borrow().clone()) else {
            return false;
        };
        if !status.decided() {
            return false;
        }
        let health = if status.health.is_up() {
            Health::Up
        } else {
            Health::Down
        };
        matches!(self.health.set(&service, server, &key, health), Ok(Some(_)))
    }

    /// Applies a new configuration: unchanged checks keep their state
    /// (see the module docs), the table changes only where the desired
    /// state did.
    ///
    /// # Errors
    /// A refused configuration or check (nothing changes then), or the
    /// kernel's refusal (retried by the next [`RealServers::reconcile`]).
    pub fn reload(&mut self, specs: &[VirtualServerSpec]) -> Result<SyncReport, RealServerError> {
        // Validate before touching anything.
        LoadBalancer::new(specs.iter().map(|s| s.server.clone()).collect())?;
        self.configure(specs)?;
        self.lb
            .reload(specs.iter().map(|s| s.server.clone()).collect())?;
        self.health.apply(&mut self.lb);
        self.sync(false)
    }

    /// Feeds one check result; returns whether the check is one of ours.
    ///
    /// # Errors
    /// The kernel's refusal (retried by the next reconcile).
    pub fn on_transition(&mut self, t: &Transition) -> Result<bool, RealServerError> {
        let Some(((service, server), key, name)) = self.checks.get(&t.check).cloned() else {
            return Ok(false);
        };
        if t.health != t.previous {
            self.events.push_back(Event::Checker {
                service,
                server,
                check: name,
                up: t.health.is_up(),
            });
        }
        let health = if t.health.is_up() {
            Health::Up
        } else {
            Health::Down
        };
        if let Ok(Some(_)) = self.health.set(&service, server, &key, health) {
            self.health.apply(&mut self.lb);
            self.sync(false)?;
        }
        Ok(true)
    }

    /// After lost check results (the runner's broadcast lagged): reads
    /// every check's current state and syncs the whole table.
    ///
    /// # Errors
    /// The kernel's refusal (retried by the next reconcile).
    pub fn resync(&mut self) -> Result<SyncReport, RealServerError> {
        let ids: Vec<CheckId> = self.checks.keys().copied().collect();
        for id in ids {
            self.absorb_status(id);
        }
        self.health.apply(&mut self.lb);
        self.sync(true)
    }

    /// A full sync: reads the kernel's table and repairs what differs
    /// (entries deleted or edited by hand), counted in
    /// [`SyncReport::repairs`] and [`RealServers::stats`]. Call it
    /// periodically, and soon after a failed sync
    /// ([`RealServers::needs_retry`]).
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn reconcile(&mut self) -> Result<SyncReport, RealServerError> {
        self.sync(true)
    }

    /// Whether the last sync failed (and the table may be stale).
    pub fn needs_retry(&self) -> bool {
        self.failed
    }

    fn sync(&mut self, full: bool) -> Result<SyncReport, RealServerError> {
        let result = if full || self.failed {
            self.lb.sync_report(self.ipvs.as_mut())
        } else {
            self.lb.sync_changed(self.ipvs.as_mut())
        };
        self.drain_lb_events();
        match result {
            Ok(report) => {
                self.failed = false;
                if report.repairs > 0 {
                    tracing::warn!(
                        repairs = report.repairs,
                        "IPVS entries changed behind our back were repaired"
                    );
                }
                if report.writes() > 0 {
                    tracing::info!(writes = report.writes(), "IPVS table updated");
                }
                Ok(report)
            }
            Err(e) => {
                self.failed = true;
                tracing::error!(error = %e, "IPVS sync failed; retrying");
                Err(e.into())
            }
        }
    }

    fn drain_lb_events(&mut self) {
        while let Some(event) = self.lb.poll_event() {
            tracing::info!(?event, "load balancer event");
            let (key, command, event) = match event {
                lvs::Event::RealServerUp { service, server } => (
                    format!("rs:{service}/{server}"),
                    self.server_scripts
                        .get(&(service, server))
                        .and_then(|s| s.0.clone()),
                    Event::RealServer {
                        service,
                        server,
                        up: true,
                    },
                ),
                lvs::Event::RealServerDown { service, server } => (
                    format!("rs:{service}/{server}"),
                    self.server_scripts
                        .get(&(service, server))
                        .and_then(|s| s.1.clone()),
                    Event::RealServer {
                        service,
                        server,
                        up: false,
                    },
                ),
                lvs::Event::QuorumUp { service } => (
                    format!("vs:{service}"),
                    self.quorum_scripts.get(&service).and_then(|s| s.0.clone()),
                    Event::Quorum { service, up: true },
                ),
                lvs::Event::QuorumDown { service } => (
                    format!("vs:{service}"),
                    self.quorum_scripts.get(&service).and_then(|s| s.1.clone()),
                    Event::Quorum { service, up: false },
                ),
                _ => continue,
            };
            if let Some(c) = command {
                self.scripts.push(
                    &key,
                    Batch {
                        jobs: vec![(c, Vec::new())],
                    },
                );
            }
            self.events.push_back(event);
        }
    }

    /// The next event for other consumers (FIFO, mail...), in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether `service` has quorum now (`None`: no such service).
    pub fn has_quorum(&self, service: &ServiceKey) -> Option<bool> {
        self.lb.has_quorum(service)
    }

    /// Every real server and its health.
    pub fn statuses(&self) -> Vec<RealServerStatus> {
        self.health
            .servers()
            .map(|(service, server, health)| RealServerStatus {
                service,
                server,
                up: health == Health::Up,
            })
            .collect()
    }

    /// The load balancer's counters (syncs, writes, repairs, failures).
    pub fn stats(&self) -> SyncStats {
        self.lb.stats()
    }

    /// Stops the checks and, with [`ShutdownMode::Release`], deletes the
    /// services we own (keepalived's default on stop).
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn shutdown(mut self, mode: ShutdownMode) -> Result<(), RealServerError> {
        self.stop_checks();
        let result = self.lb.shutdown(self.ipvs.as_mut(), mode);
        self.drain_lb_events();
        result.map(|_| ()).map_err(Into::into)
    }
}
