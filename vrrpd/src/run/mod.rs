//! The daemon: `vrrpd run` wires the VRRP driver, the health checker and
//! the IPVS balancer together from one configuration file, and handles
//! signals (SIGTERM/SIGINT stop gracefully, SIGHUP reloads).

pub mod alerts;
pub mod balancer;
pub mod demo;
pub mod exec;
pub mod http;
pub mod notify;
pub mod plan;
pub mod process;
pub mod track;

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use healthcheck::{Runner, RunnerConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use vrrp_net::driver::{Snapshot, VrrpHandle};

use self::balancer::Balancer;
use self::http::{InstanceDoc, Shared, StatusDoc};
use self::notify::Notifier;
use self::plan::Plan;
use self::track::{Files, Scripts};
/// Reads, resolves and plans the configuration file again (SIGHUP).
pub type Loader = fn(&Path) -> anyhow::Result<Plan>;

/// The node's name: the configured one, else the host name.
fn router_id(plan: &Plan) -> String {
    plan.router_id
        .clone()
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
        })
        .unwrap_or_default()
}

fn status_doc(snap: &Snapshot) -> Vec<InstanceDoc> {
    snap.instances
        .iter()
        .map(|i| {
            let s = &i.stats;
            let drops = [
                ("ip_ttl", s.ip_ttl_errors),
                ("advert_interval", s.adv_interval_errors),
                ("address_list", s.address_list_errors),
                ("invalid_type", s.rcvd_invalid_type_packets),
                ("packet_length", s.packet_length_errors),
                ("auth_failure", s.auth_failures),
                ("invalid_auth_type", s.invalid_auth_type),
                ("auth_type_mismatch", s.auth_type_mismatch),
                ("version_mismatch", s.version_mismatch),
                ("unknown_peer", s.unknown_peer),
                ("checksum", s.checksum_errors),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            InstanceDoc {
                name: i.name.clone(),
                interface: i.interface.clone(),
                vrid: i.vrid.get(),
                state: i.state.name().to_owned(),
                priority: i.priority.get(),
                master: i.master.map(|m| m.to_string()),
                transitions: s.transitions,
                master_transitions: s.master_transitions,
                adverts_received: s.rcvd_advertisements,
                adverts_sent: s.sent_advertisements,
                drops,
            }
        })
        .collect()
}

fn write_status(shared: &Shared, f: impl FnOnce(&mut StatusDoc)) {
    match shared.write() {
        Ok(mut doc) => f(&mut doc),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

async fn push_tracks(handle: &VrrpHandle, changes: Vec<(vrrp_core::TrackId, bool)>) {
    for (id, up) in changes {
        match handle.set_track(id, up).await {
            // A script or file no instance tracks: nothing to move.
            Ok(()) | Err(vrrp_net::driver::DriverError::UnknownTrack(_)) => {}
            Err(e) => tracing::error!(error = %e, "driver gone"),
        }
    }
}

/// Runs the daemon in the foreground with `plan`, from `path` (which
/// `load` reads again on SIGHUP), until SIGTERM or SIGINT.
pub fn run(path: &Path, plan: Plan, load: Loader) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(run_async(path, plan, load))
}

async fn run_async(path: &Path, mut plan: Plan, load: Loader) -> anyhow::Result<()> {
    let router_id = router_id(&plan);
    let cancel = CancellationToken::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;

    let runner = Runner::spawn(RunnerConfig::default(), cancel.child_token());
    let mut transitions = runner.subscribe();
    let mut scripts = Scripts::default();
    scripts.apply(&runner, &plan.scripts)?;
    let mut files = Files::default();
    // Tracked files start in the state they are in now (created first
    // when they ask for it).
    track::init_files(&plan.files);
    let mut initial_files = files.poll(&plan.files);
    // Tracked processes too: scanned before the instances start.
    let mut processes = process::Processes::start(&plan.processes, &cancel)?;
    initial_files.extend(processes.current());
    for spec in &mut plan.driver.instances {
        for (id, _, up) in &mut spec.tracks {
            if let Some((_, now_up)) = initial_files.iter().find(|(f, _)| f == id) {
                *up = *now_up;
            }
        }
    }
    // Notify FIFOs (and their readers) before the first event.
    let alerts = alerts::Alerts::start(&plan.alerts, &router_id);
    let handle = vrrp_net::driver::spawn_with_token(plan.driver.clone(), cancel.child_token())
        .await
        .context("starting VRRP")?;
    let mut events = handle.subscribe_from_start();
    let mut notifier = Notifier::new(
        plan.notify.clone(),
        plan.groups.clone(),
        plan.notify_timeout,
    );
    notifier.set_alerts(alerts.sender());
    let mut balancer = if plan.virtual_servers.is_empty() {
        None
    } else {
        let mut b = Balancer::start(&plan.virtual_servers, &runner, plan.notify_timeout)?;
        let no_checker_emails = plan
            .alerts
            .smtp
            .as_ref()
            .is_some_and(|m| m.no_checker_emails);
        b.set_alerts(alerts.sender(), no_checker_emails);
        Some(b)
    };
    let shared: Shared = Arc::new(RwLock::new(StatusDoc {
        router_id: router_id.clone(),
        ..StatusDoc::default()
    }));
    let http_cancel = cancel.child_token();
    let mut http_task = plan
        .http
        .map(|addr| tokio::spawn(http::serve(addr, shared.clone(), http_cancel.clone())));
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(config = %path.display(), instances = plan.driver.instances.len(), "vrrpd running");

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // keepalived watches tracked files with inotify; a tenth of a second
    // of polling is close enough and costs a few reads.
    let mut file_tick = tokio::time::interval(Duration::from_millis(100));
    file_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                match load(path) {
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "reload refused: the running configuration stays");
                        write_status(&shared, |d| d.reload_failures += 1);
                    }
                    Ok(new) => match handle.reconfigure(new.driver.clone()).await {
                        Err(e) => {
                            tracing::error!(error = %e, "reload refused: the running configuration stays");
                            write_status(&shared, |d| d.reload_failures += 1);
                        }
                        Ok(summary) => {
                            tracing::info!(
                                unchanged = ?summary.unchanged,
                                restarted = ?summary.restarted,
                                added = ?summary.added,
                                removed = ?summary.removed,
                                "configuration reloaded"
                            );
                            if let Err(e) = scripts.apply(&runner, &new.scripts) {
                                tracing::error!(error = %e, "tracked scripts not reloaded");
                            }
                            push_tracks(&handle, scripts.current()).await;
                            match processes.apply(&new.processes, &cancel) {
                                Ok(states) => push_tracks(&handle, states).await,
                                Err(e) => tracing::error!(error = %format!("{e:#}"), "tracked processes not reloaded"),
                            }
                            notifier.reconfigure(new.notify.clone(), new.groups.clone());
                            if let Some(b) = balancer.as_mut()
                                && let Err(e) = b.reload(&new.virtual_servers, &runner) {
                                    tracing::error!(error = %format!("{e:#}"), "virtual servers not reloaded");
                                }
                            if new.http != plan.http {
                                tracing::warn!("the HTTP listener address changed: restart to apply it");
                            }
                            let http = plan.http;
                            plan = new;
                            plan.http = http;
                            write_status(&shared, |d| d.reloads += 1);
                        }
                    },
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
            event = events.recv() => match event {
                Ok(e) => notifier.on_event(&e),
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "state events lagged"),
                Err(RecvError::Closed) => {
                    tracing::error!("the VRRP driver stopped");
                    break;
                }
            },
            (name, id, up) = scripts.next() => {
                tracing::info!(script = %name, up, "tracked script");
                push_tracks(&handle, vec![(id, up)]).await;
            }
            (_, id, up) = processes.next() => push_tracks(&handle, vec![(id, up)]).await,
            t = transitions.recv() => match t {
                Ok(t) => {
                    if let Some(b) = balancer.as_mut()
                        && let Err(e) = b.on_transition(&runner, &t) {
                            tracing::error!(error = %format!("{e:#}"), "IPVS update failed");
                        }
                }
                Err(RecvError::Lagged(_)) => push_tracks(&handle, scripts.current()).await,
                Err(RecvError::Closed) => break,
            },
            _ = file_tick.tick() => {
                let changes = files.poll(&plan.files);
                push_tracks(&handle, changes).await;
            }
            _ = tick.tick() => {
                let instances = status_doc(&handle.snapshot());
                let script_states = scripts.statuses();
                let real = balancer.as_ref().map(Balancer::statuses).unwrap_or_default();
                write_status(&shared, |d| {
                    d.instances = instances;
                    d.scripts = script_states;
                    d.real_servers = real;
                });
            }
        }
    }
    tracing::info!("stopping");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    handle.shutdown().await?;
    while let Ok(e) = events.try_recv() {
        notifier.on_event(&e);
    }
    if let Some(b) = balancer {
        b.shutdown();
    }
    scripts.shutdown();
    processes.shutdown();
    runner.shutdown().await;
    notifier.finish().await;
    alerts.finish().await;
    cancel.cancel();
    if let Some(t) = http_task.take() {
        let _ = t.await;
    }
    tracing::info!("stopped");
    Ok(())
}
