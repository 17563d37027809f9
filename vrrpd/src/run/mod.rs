//! The daemon: `vrrpd run` is configuration, wiring and signals around
//! the libraries — the VRRP driver (`vrrp-net`), the health-check runner
//! (`healthcheck`), and keepalived's glue between them and IPVS
//! (`vrrp-keepalived`: tracked scripts and files, notify scripts,
//! real-server health).
//!
//! Start-up checks everything that can fail before the first virtual
//! address is touched: the configuration (by the caller), the pid-file
//! lock ([`lock`]), IPVS (loading `ip_vs` when it is missing), raw
//! sockets, the HTTP bind, the tracked files, the IPVS table. Only then
//! does the driver start. From then on every way out — SIGTERM, SIGINT, or
//! a part that ends unexpectedly (the driver, the check runner, the HTTP
//! task) — goes through the same release: priority 0 from masters,
//! addresses removed (from the driver's record when the driver itself
//! died), IPVS services released, notify scripts given time to finish; a
//! failure exits non-zero. SIGHUP reloads as a transaction.
//!
//! Every event (instance and group state changes, real servers, quorum,
//! checkers) goes through [`events::Consumers::dispatch`], the one place
//! where consumers — notify scripts today, a FIFO, mail or an API
//! tomorrow — read them, none lost.

pub mod alerts;
pub mod api;
pub mod demo;
pub mod diff;
pub mod events;
#[cfg(debug_assertions)]
pub mod fault;
pub mod http;
pub mod ipvs_stats;
pub mod lock;
pub mod lvs_alerts;
pub mod plan;
pub mod process;
pub mod record;
pub mod watchdog;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use healthcheck::{Runner, RunnerConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use vrrp_keepalived::{
    EventStream, Notifier, RealServers, ScriptQueues, SyncGroup, TrackStatus, Trackers, Translator,
    init_files,
};
use vrrp_net::driver::{DriverConfig, Snapshot, StateEvent, VrrpHandle};

use self::alerts::Alerts;
use self::events::Consumers;
use self::http::{
    CheckDoc, CheckHistogramDoc, Health, HttpCounters, InstanceDoc, PeerDoc, RealServerDoc, Shared,
    StatusDoc, VipDoc,
};
use self::lock::{Identity, LockError, PidLock};
use self::lvs_alerts::LvsAlerts;
use self::plan::Plan;
use self::watchdog::Watchdog;

/// Reads, resolves and plans the configuration file again (SIGHUP).
pub type Loader = fn(&Path) -> anyhow::Result<Plan>;

/// How often the whole IPVS table is read and repaired.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(30);
/// How long notify scripts still queued at exit may run.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How `vrrpd run` ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another daemon holds the pid file: nothing was touched.
    #[error(transparent)]
    AlreadyRunning(LockError),
    /// Start-up or run-time failure (after a release of whatever was
    /// started).
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for RunError {
    fn from(e: anyhow::Error) -> Self {
        RunError::Failed(e)
    }
}

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

/// Seconds since the epoch, now.
fn wall_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn status_doc(snap: &Snapshot) -> Vec<InstanceDoc> {
    let now = wall_now();
    // Peer ages are as of the snapshot's publication: made current.
    let since = snap.published.map_or(Duration::ZERO, |at| at.elapsed());
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
                base_priority: i.base_priority.get(),
                maintenance: i.maintenance,
                source: i.source.map(|a| a.to_string()),
                unbound: i.unbound.as_ref().map(ToString::to_string),
                priority_zero: (s.rcvd_pri_zero_packets, s.sent_pri_zero_packets),
                vips: i
                    .vips
                    .iter()
                    .map(|v| VipDoc {
                        address: format!("{}/{}", v.address.addr, v.address.prefix_len),
                        device: v.device.clone(),
                        present: v.present,
                        ours: v.ours,
                        foreign: v.foreign,
                        restored: v.restored,
                    })
                    .collect(),
                transitions_by_reason: Vec::new(),
                dual_master: i.adverts.dual_master,
                advert_intervals: histogram_doc(&i.adverts.intervals),
                down_timer_margins: histogram_doc(&i.adverts.down_timer_margins),
                min_down_timer_margin: i.adverts.min_down_timer_margin.map(|d| d.as_secs_f64()),
                master_priority: i.master_priority.map(|p| p.get()),
                peers: i
                    .peers
                    .iter()
                    .map(|p| PeerDoc {
                        address: p.address.to_string(),
                        priority: p.priority.get(),
                        advert_interval: p.advert_interval.as_secs_f64(),
                        last_advert: now - (p.age + since).as_secs_f64(),
                        last_advert_age: (p.age + since).as_secs_f64(),
                        adverts: p.adverts,
                    })
                    .collect(),
                garps_sent: i.garps_sent,
                nas_sent: i.nas_sent,
            }
        })
        .collect()
}

fn histogram_doc(h: &vrrp_net::driver::DurationHistogram) -> (Vec<u64>, f64) {
    (h.counts.to_vec(), h.sum_ns as f64 / 1e9)
}

fn check_histogram(h: &healthcheck::DurationBuckets) -> CheckHistogramDoc {
    CheckHistogramDoc {
        counts: h.counts.to_vec(),
        sum: h.sum_micros as f64 / 1e6,
    }
}

/// Every check of the runner, as the status shows it.
fn check_docs(runner: &healthcheck::RunnerHandle) -> Vec<CheckDoc> {
    let now = Instant::now();
    let wall = wall_now();
    let mut docs: Vec<CheckDoc> = runner
        .snapshot()
        .into_iter()
        .map(|(id, s)| {
            let last_result = (s.stats.attempts > 0 && s.last_run.is_some()).then(|| {
                if s.last_reason.is_some() {
                    "failure".to_owned()
                } else {
                    "success".to_owned()
                }
            });
            CheckDoc {
                name: runner.name(id).unwrap_or_else(|| id.to_string()),
                kind: runner.kind(id).unwrap_or("unknown").to_owned(),
                state: s.health.to_string(),
                decided: s.decided(),
                last_result,
                reason: s.last_reason.as_ref().map(ToString::to_string),
                last_duration: s.last_latency.map(|d| d.as_secs_f64()),
                consecutive_failures: s.failed_rounds,
                last_run: s
                    .last_run
                    .map(|at| wall - now.saturating_duration_since(at).as_secs_f64()),
                attempts: s.stats.attempts,
            }
        })
        .collect();
    docs.sort_by(|a, b| a.name.cmp(&b.name));
    docs
}

fn write_status(shared: &Shared, f: impl FnOnce(&mut StatusDoc)) {
    match shared.write() {
        Ok(mut doc) => f(&mut doc),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

fn groups(plan: &Plan) -> Vec<SyncGroup> {
    plan.groups
        .iter()
        .map(|g| SyncGroup {
            name: g.name.clone(),
            members: g.members.clone(),
        })
        .collect()
}

fn configure_notifier(notifier: &mut Notifier, plan: &Plan) {
    notifier.configure(
        plan.notify.iter().cloned(),
        plan.groups
            .iter()
            .map(|g| (g.name.clone(), g.notify.clone())),
    );
}

/// The driver's configuration with our record of added addresses and the
/// tracked objects' current states (scripts, files, processes).
fn driver_config(
    plan: &Plan,
    identity: &Identity,
    trackers: &Trackers,
    processes: &process::Processes,
) -> DriverConfig {
    let mut config = plan.driver.clone();
    config.state_file = Some(identity.state_file.clone());
    trackers.initial_states(&mut config);
    let now = processes.current();
    for spec in &mut config.instances {
        for (id, _, up) in &mut spec.tracks {
            if let Some((_, now_up)) = now.iter().find(|(p, _)| p == id) {
                *up = *now_up;
            }
        }
    }
    config
}

/// What the FIFO lines and mails say about the virtual servers of `plan`,
/// their real servers' health as `real` has it.
fn lvs_alerts(plan: &Plan, real: Option<&RealServers>) -> LvsAlerts {
    // A set: a scan of every status per real server was quadratic (37,205
    // real servers: seconds of CPU at every start and reload).
    let up: std::collections::HashSet<(lvs::ServiceKey, std::net::SocketAddr)> = real
        .map(RealServers::statuses)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.up)
        .map(|s| (s.service, s.server))
        .collect();
    let no_checker_emails = plan
        .alerts
        .smtp
        .as_ref()
        .is_some_and(|m| m.no_checker_emails);
    LvsAlerts::new(
        &plan.virtual_servers,
        &plan.vs_notify,
        no_checker_emails,
        |service, server| up.contains(&(service, server)),
    )
}

/// Opens IPVS, loading `ip_vs` as keepalived does when it is missing.
fn open_ipvs() -> anyhow::Result<lvs::IpvsClient> {
    match lvs::IpvsClient::connect() {
        Ok(c) => Ok(c),
        Err(lvs::Error::IpvsUnavailable) => {
            let modprobe = std::fs::read_to_string("/proc/sys/kernel/modprobe")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/sbin/modprobe".to_owned());
            tracing::info!(%modprobe, "IPVS is not available: loading ip_vs");
            let outcome = match std::process::Command::new(&modprobe)
                .arg("ip_vs")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .output()
            {
                Ok(out) if out.status.success() => "succeeded".to_owned(),
                Ok(out) => format!(
                    "failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(e) => format!("could not run: {e}"),
            };
            lvs::IpvsClient::connect()
                .map_err(|e| anyhow!("IPVS is not available ({e}); `{modprobe} ip_vs` {outcome}"))
        }
        Err(e) => Err(anyhow!("IPVS: {e}")),
    }
}

/// Raw IP sockets need CAP_NET_RAW: say so now rather than leave every
/// instance waiting in Fault.
fn check_raw_sockets() -> anyhow::Result<()> {
    socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(112)),
    )
    .map(drop)
    .context("cannot open a raw VRRP socket (vrrpd needs CAP_NET_RAW and CAP_NET_ADMIN)")
}

/// Runs the daemon in the foreground with `plan`, from `path` (which
/// `load` reads again on SIGHUP), until SIGTERM or SIGINT.
///
/// # Errors
/// [`RunError::AlreadyRunning`] when another daemon holds the pid file
/// (nothing touched); otherwise why it failed, after releasing what it had
/// started.
pub fn run(path: &Path, plan: Plan, load: Loader, identity: Identity) -> Result<(), RunError> {
    let lock = PidLock::acquire(&identity.pid_file).map_err(|e| match e {
        held @ LockError::Held { .. } => RunError::AlreadyRunning(held),
        other => RunError::Failed(other.into()),
    })?;
    match healthcheck::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let result = runtime.block_on(run_async(path, plan, load, &identity));
    drop(lock);
    result.map_err(RunError::Failed)
}

/// What the start-up made, released in reverse on the way out.
struct Parts {
    cancel: CancellationToken,
    /// The runner's own token (a child of `cancel`).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    runner_cancel: CancellationToken,
    runner: Runner,
    trackers: Trackers,
    processes: process::Processes,
    queues: ScriptQueues,
    alerts: Option<Alerts>,
    real: Option<RealServers>,
    http: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The control socket's task (removes the socket when it ends).
    api: Option<tokio::task::JoinHandle<()>>,
}

impl Parts {
    /// Stops everything but the driver (released before).
    async fn release(mut self) {
        ipvs_stats::clear();
        if let Some(real) = self.real.take()
            && let Err(e) =
                tokio::task::block_in_place(|| real.shutdown(lvs::ShutdownMode::Release))
        {
            tracing::warn!(error = %e, "releasing IPVS services failed");
        }
        self.trackers.shutdown();
        self.processes.shutdown();
        self.runner.shutdown().await;
        if !self.queues.finish(STOP_GRACE).await {
            tracing::warn!(grace = ?STOP_GRACE, "notify scripts still running at exit were killed");
        }
        if let Some(alerts) = self.alerts.take() {
            alerts.finish().await;
        }
        self.cancel.cancel();
        if let Some(t) = self.http.take() {
            let _ = t.await;
        }
        if let Some(t) = self.api.take() {
            let _ = t.await;
        }
    }
}

async fn run_async(
    path: &Path,
    plan: Plan,
    load: Loader,
    identity: &Identity,
) -> anyhow::Result<()> {
    let router_id = router_id(&plan);
    let cancel = CancellationToken::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;

    // Everything that can fail, before any address is touched.
    let ipvs = if plan.virtual_servers.is_empty() {
        None
    } else {
        let client = tokio::task::block_in_place(open_ipvs)?;
        ipvs_stats::install(tokio::task::block_in_place(open_ipvs)?);
        Some(client)
    };
    if !plan.driver.instances.is_empty() {
        check_raw_sockets()?;
    }
    let listener = match plan.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("HTTP listener on {addr}"))?,
        ),
        None => None,
    };
    let control = api::bind(&identity.socket)?;
    let (api_tx, api_rx) = mpsc::channel(16);
    let api_events = api::events();
    let api_task = tokio::spawn(api::serve(
        control,
        identity.socket.clone(),
        api_tx.clone(),
        api_events.clone(),
        cancel.child_token(),
    ));
    let runner_cancel = cancel.child_token();
    let runner = Runner::spawn(RunnerConfig::default(), runner_cancel.clone());
    let queues = ScriptQueues::new(plan.notify_timeout);
    let mut parts = Parts {
        cancel: cancel.clone(),
        runner_cancel,
        trackers: Trackers::new(runner.handle()),
        processes: process::Processes::default(),
        runner,
        queues,
        alerts: None,
        real: None,
        http: None,
        api: Some(api_task),
    };
    init_files(&plan.files);
    if let Err(e) = parts.trackers.apply(&plan.scripts, &plan.files).await {
        parts.release().await;
        return Err(e.into());
    }
    // Tracked processes are scanned before the instances start.
    if let Err(e) = parts.processes.apply(&plan.processes, &cancel) {
        parts.release().await;
        return Err(e.context("tracked processes"));
    }
    // Notify FIFOs (and their readers) before the first event.
    let alerts = Alerts::start(&plan.alerts, &router_id);
    let alert_sender = alerts.sender();
    parts.alerts = Some(alerts);
    if let Some(ipvs) = ipvs {
        let started = tokio::task::block_in_place(|| {
            RealServers::start(
                &plan.virtual_servers,
                parts.runner.handle(),
                Box::new(ipvs),
                parts.queues.clone(),
            )
        });
        match started {
            Ok(r) => parts.real = Some(r),
            Err(e) => {
                parts.release().await;
                return Err(anyhow!(e).context("programming IPVS"));
            }
        }
    }
    let lvs = lvs_alerts(&plan, parts.real.as_ref());
    for alert in lvs.at_start() {
        alert_sender.send(alert);
    }
    let config = driver_config(&plan, identity, &parts.trackers, &parts.processes);
    let handle = match vrrp_net::driver::spawn_with_token(config, cancel.child_token()).await {
        Ok(h) => h,
        Err(e) => {
            parts.release().await;
            return Err(anyhow!(e).context("starting VRRP"));
        }
    };
    // From here on, every way out releases the addresses.
    parts.trackers.resend_all();
    let events = EventStream::new(
        handle.subscribe_from_start(),
        handle.watch(),
        Translator::new(groups(&plan)),
    );
    let mut notifier = Notifier::new(parts.queues.clone());
    configure_notifier(&mut notifier, &plan);
    let shared: Shared = Arc::new(RwLock::new(StatusDoc {
        router_id: router_id.clone(),
        ..StatusDoc::default()
    }));
    let http_counters = Arc::new(HttpCounters::default());
    let health = Arc::new(Health::new());
    tokio::spawn(http::follow_progress(
        handle.watch(),
        health.clone(),
        cancel.child_token(),
    ));
    parts.http = listener.map(|l| {
        tokio::spawn(http::serve(
            l,
            shared.clone(),
            health.clone(),
            http_counters.clone(),
            cancel.child_token(),
        ))
    });
    let watchdog = Watchdog::from_systemd(handle.watch());
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(config = %path.display(), instances = plan.driver.instances.len(), pid_file = %identity.pid_file.display(), "vrrpd running");

    let state_changes = handle.subscribe();
    let mut daemon = Daemon {
        path: path.to_owned(),
        load,
        identity: identity.clone(),
        plan,
        handle: Some(handle),
        events,
        consumers: Consumers::new(notifier, alert_sender, lvs, api_events.clone()),
        parts,
        shared,
        http_counters,
        watchdog,
        driver_lost: None,
        api_tx,
        api_rx,
        api_events,
        state_changes: Some(state_changes),
        maintenance: BTreeSet::new(),
        health,
        vips_restored: 0,
        vip_restored: std::collections::BTreeMap::new(),
        reasons: std::collections::BTreeMap::new(),
        check_stats: None,
        vs_routes: None,
    };
    daemon.publish_status();
    daemon.health.set_ready(true);
    let outcome = daemon.run(&mut sigterm, &mut sigint, &mut sighup).await;
    if let Err(e) = &outcome {
        tracing::error!(error = %format!("{e:#}"), "stopping after a failure: releasing the addresses");
    }
    daemon.stop().await;
    outcome
}

struct Daemon {
    path: PathBuf,
    load: Loader,
    identity: Identity,
    plan: Plan,
    handle: Option<VrrpHandle>,
    events: EventStream,
    consumers: Consumers,
    parts: Parts,
    shared: Shared,
    http_counters: Arc<HttpCounters>,
    watchdog: Option<Watchdog>,
    /// The driver ended by itself (its error).
    driver_lost: Option<String>,
    /// Kept so that the request channel never closes.
    #[allow(dead_code)]
    api_tx: mpsc::Sender<api::Request>,
    /// Requests from the control socket.
    api_rx: mpsc::Receiver<api::Request>,
    /// The event stream of the control socket.
    api_events: api::Events,
    /// The driver's state changes with their reasons, for the event
    /// stream (`None` once the driver closed it).
    state_changes: Option<broadcast::Receiver<StateEvent>>,
    /// Instances and sync groups put in maintenance, by the name given:
    /// applied again after every reload.
    maintenance: BTreeSet<String>,
    /// What /healthz and /readyz report.
    health: Arc<Health>,
    /// The driver's count of repaired addresses last seen.
    vips_restored: u64,
    /// ... and by instance, address and device.
    vip_restored: std::collections::BTreeMap<(String, String, String), u64>,
    /// Transitions seen on the driver's stream, by instance, from, to
    /// and reason.
    reasons: std::collections::BTreeMap<(String, String, String, String), u64>,
    /// The health-check runner's counters, refreshed with the status.
    check_stats: Option<healthcheck::RunnerStats>,
    /// The virtual servers' host routes last given to the driver.
    vs_routes: Option<Vec<vrrp_net::route::Route>>,
}

impl Daemon {
    async fn run(
        &mut self,
        sigterm: &mut tokio::signal::unix::Signal,
        sigint: &mut tokio::signal::unix::Signal,
        sighup: &mut tokio::signal::unix::Signal,
    ) -> anyhow::Result<()> {
        let mut transitions = self.parts.runner.subscribe();
        // Checks ran between their start and this subscription (under a
        // slow machine, for seconds): what they found then is read now, or
        // a real server that failed during start-up would stay in the
        // table until its check changed again.
        self.with_real(RealServers::resync);
        let mut status_tick = tokio::time::interval(Duration::from_secs(1));
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lvs_tick = tokio::time::interval(Duration::from_secs(1));
        lvs_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reconcile = Instant::now();
        let watchdog_period = self
            .watchdog
            .as_ref()
            .map_or(Duration::from_secs(3600), Watchdog::period);
        let mut watchdog_tick = tokio::time::interval(watchdog_period);
        watchdog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        watchdog_tick.tick().await;
        #[cfg(debug_assertions)]
        let runner_stop = fault::after("runner-stop").map(|d| tokio::time::Instant::now() + d);
        loop {
            // Quorum moves only where the real servers were handled (in
            // the arms below): the routes follow it before the next wait.
            self.sync_vs_routes().await;
            #[cfg(debug_assertions)]
            let injected = async {
                match runner_stop {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(debug_assertions))]
            let injected = std::future::pending::<()>();
            let http_done = async {
                match self.parts.http.as_mut() {
                    Some(t) => t.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sigterm.recv() => return Ok(()),
                _ = sigint.recv() => return Ok(()),
                _ = sighup.recv() => {
                    let _ = self.reload().await;
                }
                event = self.events.next() => match event {
                    Some(e) => self.consumers.dispatch(&e),
                    None => return Err(self.driver_died().await),
                },
                request = self.api_rx.recv() => {
                    if let Some(r) = request {
                        self.on_request(r).await;
                    }
                }
                change = async {
                    match self.state_changes.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match change {
                    Ok(e) => {
                        let j = state_json(&e);
                        let key = (
                            e.instance.clone(),
                            e.from.name().to_owned(),
                            e.to.name().to_owned(),
                            j["reason"].as_str().unwrap_or_default().to_owned(),
                        );
                        *self.reasons.entry(key).or_default() += 1;
                        api::publish(&self.api_events, j);
                    }
                    Err(RecvError::Lagged(n)) => api::publish(
                        &self.api_events,
                        serde_json::json!({"type": "lagged", "missed": n}),
                    ),
                    Err(RecvError::Closed) => self.state_changes = None,
                },
                update = self.parts.trackers.next() => {
                    api::publish(
                        &self.api_events,
                        serde_json::json!({
                            "type": "track",
                            "object": track_name(&self.plan, update.id),
                            "id": update.id.0,
                            "up": update.up,
                        }),
                    );
                    if !self.set_track(update.id, update.up).await {
                        return Err(self.driver_died().await);
                    }
                }
                (name, id, up) = self.parts.processes.next() => {
                    tracing::info!(process = %name, quorum = up, "tracked process");
                    if !self.set_track(id, up).await {
                        return Err(self.driver_died().await);
                    }
                }
                t = transitions.recv() => match t {
                    Ok(t) => self.on_transition(&t),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "check results lagged: resyncing the real servers");
                        self.with_real(RealServers::resync);
                    }
                    Err(RecvError::Closed) => return Err(anyhow!("the health-check runner stopped")),
                },
                _ = lvs_tick.tick() => {
                    let due = last_reconcile.elapsed() >= RECONCILE_EVERY;
                    if due || self.parts.real.as_ref().is_some_and(RealServers::needs_retry) {
                        last_reconcile = Instant::now();
                        self.with_real(RealServers::reconcile);
                    }
                }
                _ = status_tick.tick() => {
                    if self.parts.runner.is_finished() {
                        return Err(anyhow!("the health-check runner ended unexpectedly"));
                    }
                    self.refresh_check_stats().await;
                    self.publish_status();
                    self.health.loop_progress();
                }
                _ = watchdog_tick.tick(), if self.watchdog.is_some() => {
                    if let Some(w) = &mut self.watchdog {
                        w.tick();
                    }
                }
                result = http_done => {
                    self.parts.http = None;
                    return Err(match result {
                        Ok(Ok(())) => anyhow!("the HTTP listener stopped"),
                        Ok(Err(e)) => e.context("the HTTP listener failed"),
                        Err(e) => anyhow!("the HTTP listener task died: {e}"),
                    });
                }
                () = injected => {
                    tracing::warn!("VRRPD_DEBUG_FAULT: stopping the health-check runner");
                    self.parts.runner_cancel.cancel();
                }
            }
        }
    }

    /// Gives the driver the host routes of the virtual servers whose
    /// quorum is up (`export_routes`), when they changed.
    async fn sync_vs_routes(&mut self) {
        let wanted: Vec<vrrp_net::route::Route> = match &self.parts.real {
            Some(real) => self
                .plan
                .vs_routes
                .iter()
                .filter(|(service, _)| real.has_quorum(service) == Some(true))
                .map(|(_, route)| route.clone())
                .collect(),
            None => Vec::new(),
        };
        if self.vs_routes.as_ref() == Some(&wanted) {
            return;
        }
        let Some(handle) = &self.handle else {
            return;
        };
        match handle.set_gated_routes(wanted.clone()).await {
            Ok(()) => {
                tracing::debug!(routes = wanted.len(), "virtual servers' routes");
                self.vs_routes = Some(wanted);
            }
            Err(e) => tracing::warn!(error = %e, "virtual servers' routes not given to the driver"),
        }
    }

    /// The driver ended by itself: why.
    async fn driver_died(&mut self) -> anyhow::Error {
        let why = match self.handle.take() {
            Some(h) => match h.wait().await {
                Ok(()) => "stopped".to_owned(),
                Err(e) => e.to_string(),
            },
            None => "gone".to_owned(),
        };
        self.driver_lost = Some(why.clone());
        anyhow!("the VRRP driver ended unexpectedly: {why}")
    }

    /// Runs `f` on the real servers where blocking is allowed, and
    /// dispatches what it produced.
    fn with_real<T>(
        &mut self,
        f: impl FnOnce(&mut RealServers) -> Result<T, vrrp_keepalived::RealServerError>,
    ) {
        let Some(real) = self.parts.real.as_mut() else {
            return;
        };
        if let Err(e) = tokio::task::block_in_place(|| f(real)) {
            tracing::error!(error = %e, "IPVS");
        }
        let mut events = Vec::new();
        while let Some(e) = real.poll_event() {
            events.push(e);
        }
        self.consumers.dispatch_all(&events);
    }

    /// Sets a tracked object's state in the driver; false when the driver
    /// is gone (an object no instance tracks is nothing to move).
    async fn set_track(&self, id: vrrp_core::TrackId, up: bool) -> bool {
        let Some(handle) = &self.handle else {
            return true;
        };
        use vrrp_net::driver::DriverError;
        match handle.set_track(id, up).await {
            Ok(()) | Err(DriverError::UnknownTrack(_)) => true,
            Err(DriverError::Stopped | DriverError::Panicked(_)) => false,
            Err(e) => {
                tracing::warn!(error = %e, "tracked object not applied");
                true
            }
        }
    }

    fn on_transition(&mut self, t: &healthcheck::Transition) {
        self.with_real(|r| r.on_transition(t).map(drop));
    }

    /// Reads, resolves and plans `config` off the loop: the plan, or
    /// the configuration error (file, line and key).
    async fn load(&self, config: PathBuf) -> Result<Plan, String> {
        let load = self.load;
        match tokio::task::spawn_blocking(move || load(&config)).await {
            Ok(Ok(new)) => Ok(new),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The answer of `diff` and of a reload: what going from the running
    /// plan to `new` changes, as records and as lines.
    fn diff_reply(&self, new: &Plan) -> serde_json::Value {
        let changes = diff::diff(&self.plan, new);
        let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
        serde_json::json!({ "changes": changes, "text": text })
    }

    /// SIGHUP and the socket's `reload`: the configuration file read again
    /// and applied as a transaction. The diff on success; why it was
    /// refused otherwise (the running configuration stays).
    async fn reload(&mut self) -> Result<serde_json::Value, String> {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
        let (outcome, event) = match self.load(self.path.clone()).await {
            Ok(new) => {
                let mut reply = self.diff_reply(&new);
                let changes = reply["changes"].clone();
                match self.apply(new).await {
                    Ok(()) => {
                        reply["result"] = serde_json::json!("applied");
                        (
                            Ok(reply),
                            serde_json::json!({"type": "reload", "result": "applied", "changes": changes}),
                        )
                    }
                    Err(why) => (
                        Err(why.clone()),
                        serde_json::json!({"type": "reload", "result": "refused", "error": why, "changes": changes}),
                    ),
                }
            }
            Err(why) => {
                tracing::error!(error = %why, "reload refused: the running configuration stays");
                (
                    Err(why.clone()),
                    serde_json::json!({"type": "reload", "result": "refused", "error": why}),
                )
            }
        };
        let applied = outcome.is_ok();
        if applied {
            self.reapply_maintenance().await;
        }
        api::publish(&self.api_events, event);
        tracing::info!(applied, "reload finished");
        write_status(&self.shared, |d| {
            if applied {
                d.reloads += 1;
            } else {
                d.reload_failures += 1;
            }
        });
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        outcome.map_err(|why| format!("reload refused (the running configuration stays): {why}"))
    }

    /// Applies a new plan as a transaction; why not, when it was refused
    /// (logged too).
    async fn apply(&mut self, new: Plan) -> Result<(), String> {
        let refused = |why: String| {
            tracing::error!(error = %why, "reload refused: the running configuration stays");
            why
        };
        let Some(handle) = &self.handle else {
            return Err(refused("the VRRP driver is gone".to_owned()));
        };
        // IPVS for a first virtual server, before anything changes.
        let new_ipvs = if self.parts.real.is_none() && !new.virtual_servers.is_empty() {
            match tokio::task::block_in_place(open_ipvs) {
                Ok(c) => {
                    if !ipvs_stats::installed()
                        && let Ok(stats) = tokio::task::block_in_place(open_ipvs)
                    {
                        ipvs_stats::install(stats);
                    }
                    Some(c)
                }
                Err(e) => return Err(refused(format!("{e:#}"))),
            }
        } else {
            None
        };
        if let Err(e) = self.parts.trackers.apply(&new.scripts, &new.files).await {
            roll_back(&mut self.parts, &self.plan).await;
            return Err(refused(e.to_string()));
        }
        if let Err(e) = self
            .parts
            .processes
            .apply(&new.processes, &self.parts.cancel)
        {
            roll_back(&mut self.parts, &self.plan).await;
            return Err(refused(format!("{e:#}")));
        }
        let config = driver_config(
            &new,
            &self.identity,
            &self.parts.trackers,
            &self.parts.processes,
        );
        let summary = match handle.reconfigure(config).await {
            Ok(s) => s,
            Err(e) => {
                roll_back(&mut self.parts, &self.plan).await;
                return Err(refused(e.to_string()));
            }
        };
        for (id, up) in self.parts.processes.current() {
            if !self.set_track(id, up).await {
                tracing::error!("the VRRP driver is gone");
            }
        }
        // What the reload did to the instances is notified with the
        // scripts of the configuration it happened under.
        self.events
            .translator()
            .removing(summary.removed.iter().chain(&summary.restarted).cloned());
        for e in self.events.drain_now() {
            self.consumers.dispatch(&e);
        }
        configure_notifier(&mut self.consumers.notifier, &new);
        self.events.translator().set_groups(groups(&new));
        self.parts.trackers.retire();
        self.parts.trackers.resend_all();
        if let Some(ipvs) = new_ipvs {
            let started = tokio::task::block_in_place(|| {
                RealServers::start(
                    &new.virtual_servers,
                    self.parts.runner.handle(),
                    Box::new(ipvs),
                    self.parts.queues.clone(),
                )
            });
            match started {
                Ok(r) => self.parts.real = Some(r),
                Err(e) => tracing::error!(error = %e, "virtual servers not started"),
            }
        } else {
            let specs = new.virtual_servers.clone();
            self.with_real(|r| r.reload(&specs).map(drop));
        }
        self.consumers.lvs = lvs_alerts(&new, self.parts.real.as_ref());
        if new.alerts != self.plan.alerts {
            tracing::warn!("notify FIFOs or alert mail changed: restart to apply them");
        }
        if new.http != self.plan.http {
            tracing::warn!("the HTTP listener address changed: restart to apply it");
        }
        if new.notify_timeout != self.plan.notify_timeout {
            tracing::warn!("notify_timeout changed: restart to apply it");
        }
        self.plan = new;
        Ok(())
    }

    fn publish_status(&mut self) {
        let mut instances = self
            .handle
            .as_ref()
            .map(|h| status_doc(&h.snapshot()))
            .unwrap_or_default();
        for i in &mut instances {
            i.transitions_by_reason = self
                .reasons
                .iter()
                .filter(|((name, ..), _)| *name == i.name)
                .map(|((_, from, to, reason), n)| (from.clone(), to.clone(), reason.clone(), *n))
                .collect();
        }
        let router_drops = self
            .handle
            .as_ref()
            .map(|h| {
                let r = h.snapshot().router;
                vec![
                    ("checksum".to_owned(), r.checksum_errors),
                    ("version".to_owned(), r.version_errors),
                    ("vrid".to_owned(), r.vrid_errors),
                    ("packet_length".to_owned(), r.packet_length_errors),
                    ("invalid_type".to_owned(), r.invalid_type_errors),
                ]
            })
            .unwrap_or_default();
        let scripts: Vec<(String, bool)> = self
            .parts
            .trackers
            .statuses()
            .into_iter()
            .filter_map(|s| match s {
                TrackStatus::Script { name, up } => Some((name, up.unwrap_or(false))),
                _ => None,
            })
            .collect();
        let real: Vec<RealServerDoc> = self
            .parts
            .real
            .as_ref()
            .map(|r| {
                r.statuses()
                    .into_iter()
                    .map(|s| RealServerDoc {
                        service: s.service.to_string(),
                        server: s.server.to_string(),
                        up: s.up,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut counters = Vec::new();
        if let Some(h) = &self.handle {
            let s = h.snapshot();
            if s.vips_restored > self.vips_restored {
                // One event per address put back, naming it; what no
                // instance's address accounts for (a static address) in
                // one more.
                let mut unnamed = s.vips_restored - self.vips_restored;
                for i in &s.instances {
                    for v in &i.vips {
                        let address = format!("{}/{}", v.address.addr, v.address.prefix_len);
                        let key = (i.name.clone(), address, v.device.clone());
                        let seen = self.vip_restored.get(&key).copied().unwrap_or(0);
                        if v.restored > seen {
                            let n = v.restored - seen;
                            unnamed = unnamed.saturating_sub(n);
                            api::publish(
                                &self.api_events,
                                serde_json::json!({
                                    "type": "vip_repair",
                                    "instance": key.0,
                                    "address": key.1,
                                    "device": key.2,
                                    "restored": n,
                                }),
                            );
                            self.vip_restored.insert(key, v.restored);
                        }
                    }
                }
                if unnamed > 0 {
                    api::publish(
                        &self.api_events,
                        serde_json::json!({ "type": "vip_repair", "restored": unnamed }),
                    );
                }
                self.vips_restored = s.vips_restored;
            }
            counters.extend([
                ("send_errors", s.send_errors),
                ("send_dropped", s.send_dropped),
                ("address_errors", s.address_errors),
                ("announce_errors", s.announce_errors),
                ("kernel_drops", s.kernel_drops),
                ("vips_restored", s.vips_restored),
                ("netlink_overruns", s.netlink_overruns),
                ("peers_evicted", s.peers_evicted),
                ("firewall_errors", s.firewall_errors),
                ("firewall_repairs", s.firewall_repairs),
            ]);
        }
        let q = self.parts.queues.stats();
        counters.extend([
            ("scripts_started", q.started),
            ("scripts_failed", q.failed),
            ("scripts_timed_out", q.timed_out),
            ("scripts_coalesced", q.coalesced),
            ("state_events_lagged", self.events.lagged()),
            (
                "http_connections",
                self.http_counters.accepted.load(Ordering::Relaxed),
            ),
            (
                "http_connections_evicted",
                self.http_counters.evicted.load(Ordering::Relaxed),
            ),
            (
                "http_accept_errors",
                self.http_counters.accept_errors.load(Ordering::Relaxed),
            ),
        ]);
        if let Some(r) = &self.parts.real {
            let s = r.stats();
            counters.extend([
                ("ipvs_syncs", s.full_syncs + s.incremental_syncs),
                ("ipvs_writes", s.writes),
                ("ipvs_repairs", s.repairs),
                ("ipvs_sync_failures", s.failures),
            ]);
        }
        if let Some(w) = &self.watchdog {
            counters.extend([("watchdog_pings", w.pings), ("watchdog_missed", w.missed)]);
        }
        let counters = counters
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let checks = check_docs(&self.parts.runner.handle());
        let (check_durations, check_lag) = self
            .check_stats
            .as_ref()
            .map(|s| {
                (
                    s.durations_by_kind
                        .iter()
                        .map(|(k, h)| ((*k).to_owned(), check_histogram(h)))
                        .collect(),
                    check_histogram(&s.lag_buckets),
                )
            })
            .unwrap_or_default();
        write_status(&self.shared, |d| {
            d.instances = instances;
            d.checks = checks;
            d.check_durations = check_durations;
            d.check_lag = check_lag;
            d.scripts = scripts;
            d.real_servers = real;
            d.counters = counters;
            d.router_drops = router_drops;
        });
    }

    /// Answers a request of the control socket.
    async fn on_request(&mut self, request: api::Request) {
        let reply = match request.command {
            api::Command::Status => {
                self.refresh_check_stats().await;
                self.publish_status();
                let doc = match self.shared.read() {
                    Ok(d) => d.clone(),
                    Err(p) => p.into_inner().clone(),
                };
                serde_json::to_value(doc).map_err(|e| e.to_string())
            }
            api::Command::Maintenance { name, on } => self.set_maintenance(&name, on).await,
            api::Command::Diff { config } => {
                self.load(config).await.map(|new| self.diff_reply(&new))
            }
            api::Command::Reload { dry_run: true } => {
                self.load(self.path.clone()).await.map(|new| {
                    let mut reply = self.diff_reply(&new);
                    reply["result"] = serde_json::json!("dry_run");
                    reply
                })
            }
            api::Command::Reload { dry_run: false } => self.reload().await,
            api::Command::Dump => match &self.handle {
                Some(h) => match h.flight_record().await {
                    Ok(r) => {
                        let lines: Vec<serde_json::Value> = record::to_lines(&r)
                            .iter()
                            .filter_map(|l| serde_json::from_str(l).ok())
                            .collect();
                        Ok(serde_json::json!({ "flight_record": lines }))
                    }
                    Err(e) => Err(e.to_string()),
                },
                None => Err("the VRRP driver is gone".to_owned()),
            },
            api::Command::Events => Err("the socket serves the event stream".to_owned()),
        };
        let _ = request.reply.send(reply);
    }

    /// Asks the check runner for its counters (it answers from its own
    /// loop; a runner too busy to answer within a second keeps the last).
    async fn refresh_check_stats(&mut self) {
        let runner = self.parts.runner.handle();
        if let Ok(Some(s)) = tokio::time::timeout(Duration::from_secs(1), runner.stats()).await {
            self.check_stats = Some(s);
        }
    }

    /// The instances `name` stands for: an instance, or a sync group's
    /// members.
    fn members(&self, name: &str) -> Option<Vec<String>> {
        if self.plan.driver.instances.iter().any(|i| i.name == name) {
            Some(vec![name.to_owned()])
        } else {
            self.plan
                .groups
                .iter()
                .find(|g| g.name == name)
                .map(|g| g.members.clone())
        }
    }

    async fn set_maintenance(&mut self, name: &str, on: bool) -> Result<serde_json::Value, String> {
        let members = self
            .members(name)
            .ok_or_else(|| format!("no instance or sync group is named {name}"))?;
        let handle = self.handle.as_ref().ok_or("the VRRP driver is gone")?;
        handle
            .set_maintenance(&members, on)
            .await
            .map_err(|e| e.to_string())?;
        if on {
            self.maintenance.insert(name.to_owned());
        } else {
            self.maintenance.remove(name);
            for m in &members {
                self.maintenance.remove(m);
            }
        }
        tracing::warn!(name, on, instances = ?members, "maintenance");
        api::publish(
            &self.api_events,
            serde_json::json!({"type": "maintenance", "name": name, "on": on, "instances": members}),
        );
        self.publish_status();
        Ok(serde_json::json!({ "name": name, "on": on, "instances": members }))
    }

    /// After a reload: instances it restarted or added start without
    /// maintenance; put every one named in maintenance back in it.
    async fn reapply_maintenance(&mut self) {
        let names: Vec<String> = self.maintenance.iter().cloned().collect();
        for name in names {
            let Some(members) = self.members(&name) else {
                tracing::warn!(
                    name,
                    "maintenance dropped: no such instance or sync group any more"
                );
                self.maintenance.remove(&name);
                continue;
            };
            let Some(handle) = &self.handle else { return };
            if let Err(e) = handle.set_maintenance(&members, true).await {
                tracing::error!(name, error = %e, "maintenance could not be applied again");
            }
        }
    }

    /// The release every way out goes through.
    async fn stop(self) {
        tracing::info!("stopping");
        self.health.set_ready(false);
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        let Daemon {
            handle,
            mut events,
            mut consumers,
            parts,
            identity,
            driver_lost,
            ..
        } = self;
        match handle {
            Some(h) => {
                if let Err(e) = h.shutdown().await {
                    tracing::error!(error = %e, "the VRRP driver did not stop cleanly");
                }
            }
            None => {
                tracing::error!(
                    driver = driver_lost.as_deref().unwrap_or("?"),
                    "the VRRP driver is gone: removing the addresses it recorded"
                );
                release_leftovers(&identity).await;
            }
        }
        // The stop's own transitions (STOP notifications).
        while let Some(e) = events.next().await {
            consumers.dispatch(&e);
        }
        drop(consumers);
        parts.release().await;
        tracing::info!("stopped");
    }
}

/// The tracked script or file behind a driver track id.
fn track_name(plan: &Plan, id: vrrp_core::TrackId) -> Option<String> {
    plan.scripts
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.name.clone())
        .or_else(|| {
            plan.files
                .iter()
                .find(|f| {
                    f.uses
                        .iter()
                        .any(|u| u.fault == id || u.up.contains(&id) || u.down.contains(&id))
                })
                .map(|f| f.path.display().to_string())
        })
}

/// A state change on the event stream.
fn state_json(e: &StateEvent) -> serde_json::Value {
    use vrrp_core::Reason;
    let mut v = serde_json::json!({
        "type": "state",
        "instance": e.instance,
        "vrid": e.vrid.get(),
        "from": e.from.name(),
        "to": e.to.name(),
        "priority": e.priority.get(),
        "at_ms": e.at.as_millis() as u64,
    });
    let reason = match e.reason {
        Reason::Startup => "startup".to_owned(),
        Reason::AddressOwner => "address_owner".to_owned(),
        Reason::ConfiguredMaster => "configured_master".to_owned(),
        Reason::MasterDown => "master_down".to_owned(),
        Reason::Preempted { by, priority } => {
            v["by"] = serde_json::json!(by.to_string());
            v["by_priority"] = serde_json::json!(priority.get());
            "preempted".to_owned()
        }
        Reason::TrackFailed(t) => {
            v["track"] = serde_json::json!(t.0);
            "track_failed".to_owned()
        }
        Reason::FaultCleared => "fault_cleared".to_owned(),
        Reason::SyncGroup => "sync_group".to_owned(),
        Reason::Shutdown => "shutdown".to_owned(),
        Reason::Maintenance => "maintenance".to_owned(),
        other => format!("{other:?}"),
    };
    v["reason"] = serde_json::json!(reason);
    v
}

/// A refused reload: tracked scripts, files and processes back to the
/// running plan's (unchanged ones kept their state throughout).
async fn roll_back(parts: &mut Parts, plan: &Plan) {
    let _ = parts.trackers.apply(&plan.scripts, &plan.files).await;
    parts.trackers.retire();
    let _ = parts.processes.apply(&plan.processes, &parts.cancel);
}

/// Removes every address the driver recorded as added, with a driver of
/// no instances on the same record (after the driver itself died).
async fn release_leftovers(identity: &Identity) {
    let config = DriverConfig {
        state_file: Some(identity.state_file.clone()),
        ..DriverConfig::default()
    };
    match vrrp_net::driver::spawn(config).await {
        // The removals start with the driver; its graceful stop waits for
        // the kernel to confirm them.
        Ok(h) => {
            if let Err(e) = h.shutdown().await {
                tracing::error!(error = %e, "releasing the recorded addresses failed");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot release the recorded addresses"),
    }
}
