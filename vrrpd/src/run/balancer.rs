//! The `virtual_server` half: IPVS services kept in step with the real
//! servers' health checks, with keepalived's notify_up / notify_down /
//! quorum_up / quorum_down scripts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use healthcheck::{CheckId, Health as CheckHealth, RunnerHandle, Transition};
use lvs::{Event, Health, IpvsClient, LoadBalancer, ServiceKey, ShutdownMode};

use super::exec;
use super::http::RealServerDoc;
use super::plan::{Command, VirtualServerPlan};

type Server = (ServiceKey, SocketAddr);

/// The running load balancer.
pub struct Balancer {
    lb: LoadBalancer,
    ipvs: IpvsClient,
    checks: HashMap<CheckId, Server>,
    by_server: HashMap<Server, Vec<CheckId>>,
    up_scripts: HashMap<Server, (Option<Command>, Option<Command>)>,
    quorum_scripts: HashMap<ServiceKey, (Option<Command>, Option<Command>)>,
    script_timeout: Duration,
}

impl Balancer {
    /// Connects to IPVS, programs the services and starts the checks.
    pub fn start(
        plans: &[VirtualServerPlan],
        runner: &RunnerHandle,
        script_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let ipvs =
            IpvsClient::connect().context("IPVS is not available (is the ip_vs module loaded?)")?;
        let lb = LoadBalancer::new(plans.iter().map(|p| p.server.clone()).collect())?;
        let mut b = Balancer {
            lb,
            ipvs,
            checks: HashMap::new(),
            by_server: HashMap::new(),
            up_scripts: HashMap::new(),
            quorum_scripts: HashMap::new(),
            script_timeout,
        };
        b.add_checks(plans, runner)?;
        b.refresh(runner)?;
        Ok(b)
    }

    /// Applies a new set of virtual servers: checks restart, the table is
    /// reconciled in place (unchanged services and servers are not touched
    /// in the kernel).
    pub fn reload(
        &mut self,
        plans: &[VirtualServerPlan],
        runner: &RunnerHandle,
    ) -> anyhow::Result<()> {
        for id in self.checks.keys() {
            runner.remove(*id);
        }
        self.checks.clear();
        self.by_server.clear();
        self.up_scripts.clear();
        self.quorum_scripts.clear();
        self.lb
            .reload(plans.iter().map(|p| p.server.clone()).collect())?;
        self.add_checks(plans, runner)?;
        self.refresh(runner)
    }

    fn add_checks(
        &mut self,
        plans: &[VirtualServerPlan],
        runner: &RunnerHandle,
    ) -> anyhow::Result<()> {
        for p in plans {
            let key = p.server.service.key;
            self.quorum_scripts
                .insert(key, (p.quorum_up.clone(), p.quorum_down.clone()));
            for rs in &p.real_servers {
                let server = (key, rs.addr);
                self.up_scripts
                    .insert(server, (rs.notify_up.clone(), rs.notify_down.clone()));
                let mut ids = Vec::new();
                for c in &rs.checks {
                    let id = runner.add(c.spec.clone())?;
                    self.checks.insert(id, server);
                    ids.push(id);
                }
                self.by_server.insert(server, ids);
            }
        }
        Ok(())
    }

    /// Reacts to a check's transition; returns whether it was ours.
    pub fn on_transition(&mut self, runner: &RunnerHandle, t: &Transition) -> anyhow::Result<bool> {
        if !self.checks.contains_key(&t.check) {
            return Ok(false);
        }
        self.refresh(runner)?;
        Ok(true)
    }

    /// Recomputes every real server's health from its checks and syncs.
    fn refresh(&mut self, runner: &RunnerHandle) -> anyhow::Result<()> {
        for ((key, addr), ids) in &self.by_server {
            if ids.is_empty() {
                continue;
            }
            let all_up = ids.iter().all(|id| {
                runner
                    .watch(*id)
                    .is_some_and(|w| w.borrow().health == CheckHealth::Up)
            });
            let _ = self
                .lb
                .set_health(key, *addr, if all_up { Health::Up } else { Health::Down });
        }
        let changes = self.lb.sync(&mut self.ipvs)?;
        if !changes.is_empty() {
            tracing::info!(changes = changes.len(), "IPVS table updated");
        }
        self.run_events();
        Ok(())
    }

    fn run_events(&mut self) {
        while let Some(event) = self.lb.poll_event() {
            tracing::info!(?event, "load balancer event");
            let command = match &event {
                Event::RealServerUp { service, server } => self
                    .up_scripts
                    .get(&(*service, *server))
                    .and_then(|s| s.0.clone()),
                Event::RealServerDown { service, server } => self
                    .up_scripts
                    .get(&(*service, *server))
                    .and_then(|s| s.1.clone()),
                Event::QuorumUp { service } => {
                    self.quorum_scripts.get(service).and_then(|s| s.0.clone())
                }
                Event::QuorumDown { service } => {
                    self.quorum_scripts.get(service).and_then(|s| s.1.clone())
                }
                _ => None,
            };
            if let Some(c) = command {
                let timeout = self.script_timeout;
                tokio::spawn(async move {
                    if let Err(e) = exec::run_once(&c, &[], timeout).await {
                        tracing::warn!(script = ?c.argv, error = %e, "load balancer script failed");
                    }
                });
            }
        }
    }

    /// Real servers for /status.
    pub fn statuses(&self) -> Vec<RealServerDoc> {
        let mut v: Vec<RealServerDoc> = self
            .by_server
            .keys()
            .map(|(key, addr)| RealServerDoc {
                service: key.to_string(),
                server: addr.to_string(),
                up: self.lb.health(key, *addr) == Some(Health::Up),
            })
            .collect();
        v.sort_by(|a, b| (&a.service, &a.server).cmp(&(&b.service, &b.server)));
        v
    }

    /// Removes our services from the kernel (keepalived's default on stop).
    pub fn shutdown(mut self) {
        if let Err(e) = self.lb.shutdown(&mut self.ipvs, ShutdownMode::Release) {
            tracing::warn!(error = %e, "releasing IPVS services failed");
        }
        self.run_events();
    }
}
