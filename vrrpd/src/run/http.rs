//! The optional observability listener: `/metrics` in Prometheus text
//! format, `/status` as JSON, `/healthz` (the VRRP driver's loop and the
//! daemon's loop both made progress recently) and `/readyz` (started,
//! every instance out of Initialize, not stopping), plus the client
//! `vrrpd status --listen` uses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One instance in `/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InstanceDoc {
    /// Name.
    pub name: String,
    /// Interface.
    pub interface: String,
    /// VRID.
    pub vrid: u8,
    /// State name.
    pub state: String,
    /// Effective priority.
    pub priority: u8,
    /// Current master, if known.
    pub master: Option<String>,
    /// Transitions so far.
    pub transitions: u64,
    /// Times it became master.
    pub master_transitions: u64,
    /// Advertisements received.
    pub adverts_received: u64,
    /// Advertisements sent.
    pub adverts_sent: u64,
    /// Drops by reason.
    pub drops: Vec<(String, u64)>,
    /// Base (configured) priority.
    #[serde(default)]
    pub base_priority: u8,
    /// In maintenance (Backup until cleared).
    #[serde(default)]
    pub maintenance: bool,
    /// The address it advertises from, when bound.
    #[serde(default)]
    pub source: Option<String>,
    /// Why it cannot run, when it cannot.
    #[serde(default)]
    pub unbound: Option<String>,
    /// Priority-0 advertisements received and sent.
    #[serde(default)]
    pub priority_zero: (u64, u64),
    /// Its virtual addresses, as observed in the kernel.
    #[serde(default)]
    pub vips: Vec<VipDoc>,
    /// Transitions since the daemon loop started, by (from, to, reason).
    #[serde(default)]
    pub transitions_by_reason: Vec<(String, String, String, u64)>,
    /// Advertisements accepted from another router while master.
    #[serde(default)]
    pub dual_master: u64,
    /// Time between accepted advertisements: per bucket of
    /// `vrrp_net::driver::HISTOGRAM_BOUNDS_MS` (the last unbounded), and
    /// the sum in seconds.
    #[serde(default)]
    pub advert_intervals: (Vec<u64>, f64),
    /// How long before Master_Down_Timer each advertisement came, while
    /// backup: buckets and sum as above.
    #[serde(default)]
    pub down_timer_margins: (Vec<u64>, f64),
    /// The smallest such margin, in seconds.
    #[serde(default)]
    pub min_down_timer_margin: Option<f64>,
    /// The master's priority last seen (its advertisements'; our own
    /// while master).
    #[serde(default)]
    pub master_priority: Option<u8>,
    /// Every router heard on this virtual router, by address (at most
    /// `vrrp_net::driver::core::MAX_PEERS`, forgotten
    /// `vrrp_net::driver::core::PEER_EXPIRY` after their last
    /// advertisement).
    #[serde(default)]
    pub peers: Vec<PeerDoc>,
    /// Gratuitous ARPs sent (one per IPv4 address per round).
    #[serde(default)]
    pub garps_sent: u64,
    /// Unsolicited neighbour advertisements sent (one per IPv6 address
    /// per round).
    #[serde(default)]
    pub nas_sent: u64,
}

/// A router heard on an instance's virtual router.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PeerDoc {
    /// Its source address.
    pub address: String,
    /// The priority of its last advertisement (0: it resigned).
    pub priority: u8,
    /// The advertisement interval it advertises, in seconds.
    pub advert_interval: f64,
    /// When its last advertisement arrived (seconds since the epoch).
    pub last_advert: f64,
    /// How long ago that was, in seconds, when the status was made.
    pub last_advert_age: f64,
    /// Advertisements accepted from it.
    pub adverts: u64,
}

/// A health check (tracked script or file, real server check) in
/// `/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CheckDoc {
    /// Its name (`192.0.2.10:80 tcp`, a script's name, `file PATH`).
    pub name: String,
    /// Its kind (`tcp`, `http`, `https`, `script`, `file`...).
    pub kind: String,
    /// `up` or `down` (the configured initial state until a round ends).
    pub state: String,
    /// Whether a round has ended (before, `state` is the initial one).
    pub decided: bool,
    /// The last attempt's result: `success` or `failure`; none before
    /// the first.
    pub last_result: Option<String>,
    /// Why the last attempt failed.
    pub reason: Option<String>,
    /// How long the last attempt took, in seconds.
    pub last_duration: Option<f64>,
    /// Failed rounds in a row.
    pub consecutive_failures: u32,
    /// When the last attempt ended (seconds since the epoch).
    pub last_run: Option<f64>,
    /// Attempts so far.
    pub attempts: u64,
}

/// Durations in the fixed buckets of `healthcheck::BUCKET_BOUNDS_MICROS`
/// (the last unbounded), and their sum in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CheckHistogramDoc {
    /// Per bucket, not cumulative.
    pub counts: Vec<u64>,
    /// Sum in seconds.
    pub sum: f64,
}

/// A virtual address in `/status`, as the kernel has it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VipDoc {
    /// Address/prefix.
    pub address: String,
    /// Interface.
    pub device: String,
    /// On the interface now.
    pub present: bool,
    /// Added by this daemon.
    pub ours: bool,
    /// Present though not ours while not master.
    pub foreign: bool,
    /// Times put back after it was removed from outside (or found
    /// changed) while wanted.
    #[serde(default)]
    pub restored: u64,
}

/// A real server in `/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RealServerDoc {
    /// Virtual service.
    pub service: String,
    /// Real server.
    pub server: String,
    /// Up or down.
    pub up: bool,
}

/// The whole `/status` document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StatusDoc {
    /// `global.router_id`.
    pub router_id: String,
    /// Instances.
    pub instances: Vec<InstanceDoc>,
    /// Tracked scripts: name and whether up.
    pub scripts: Vec<(String, bool)>,
    /// Real servers.
    pub real_servers: Vec<RealServerDoc>,
    /// Reloads done, and failed.
    pub reloads: u64,
    /// Reloads refused (bad configuration).
    pub reload_failures: u64,
    /// Daemon counters (`vrrpd_NAME` in /metrics): notify scripts, IPVS
    /// syncs and repairs, driver errors, HTTP connections evicted...
    #[serde(default)]
    pub counters: Vec<(String, u64)>,
    /// Packets dropped before they reached an instance, by reason (RFC
    /// 6527 router statistics).
    #[serde(default)]
    pub router_drops: Vec<(String, u64)>,
    /// Every health check the runner has (tracked scripts and files, real
    /// server checks).
    #[serde(default)]
    pub checks: Vec<CheckDoc>,
    /// How long check attempts took, by kind of check.
    #[serde(default)]
    pub check_durations: Vec<(String, CheckHistogramDoc)>,
    /// How late check attempts started against their schedule.
    #[serde(default)]
    pub check_lag: CheckHistogramDoc,
}

/// Shared status, written by the daemon loop, read by the listener.
pub type Shared = Arc<RwLock<StatusDoc>>;

/// Longest time without progress of either loop that `/healthz` accepts:
/// the driver publishes its status at least every second, the daemon loop
/// refreshes the status every second.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(3);

/// What `/healthz` and `/readyz` report.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    /// Milliseconds since `start` at the driver's last publication.
    driver: AtomicU64,
    /// Milliseconds since `start` at the daemon loop's last status tick.
    daemon: AtomicU64,
    ready: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Both loops just made progress; not ready.
    pub fn new() -> Self {
        Health {
            start: Instant::now(),
            driver: AtomicU64::new(0),
            daemon: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The VRRP driver published a status.
    pub fn driver_progress(&self) {
        self.driver.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The daemon loop went round.
    pub fn loop_progress(&self) {
        self.daemon.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Start-up finished (true) or the stop began (false).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// `Ok` when both loops made progress within [`HEALTHY_WITHIN`], else
    /// which one stalled and for how long.
    pub fn healthy(&self) -> Result<(), String> {
        self.healthy_at(self.now_ms())
    }

    fn healthy_at(&self, now: u64) -> Result<(), String> {
        let limit = HEALTHY_WITHIN.as_millis() as u64;
        for (what, at) in [
            ("the VRRP driver loop", &self.driver),
            ("the daemon loop", &self.daemon),
        ] {
            let age = now.saturating_sub(at.load(Ordering::Relaxed));
            if age > limit {
                return Err(format!("{what} made no progress for {age} ms"));
            }
        }
        Ok(())
    }

    /// `Ok` when started, not stopping, and no instance is still in
    /// Initialize.
    pub fn readiness(&self, doc: &StatusDoc) -> Result<(), String> {
        if !self.ready.load(Ordering::Relaxed) {
            return Err("starting or stopping".to_owned());
        }
        match doc.instances.iter().find(|i| i.state == "init") {
            Some(i) => Err(format!("instance {} is not running yet", i.name)),
            None => Ok(()),
        }
    }
}

/// Marks the driver's progress on `health` every time it publishes its
/// status, until `cancel`.
pub async fn follow_progress(
    mut progress: tokio::sync::watch::Receiver<vrrp_net::driver::Snapshot>,
    health: Arc<Health>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = progress.changed() => {
                if changed.is_err() {
                    return;
                }
                progress.mark_unchanged();
                health.driver_progress();
            }
        }
    }
}

#[derive(Debug)]
struct Metrics(Shared);

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, i64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, u64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Metrics {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let doc = match self.0.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let inst =
            |i: &InstanceDoc| vec![("instance", i.name.clone()), ("vrid", i.vrid.to_string())];
        let states = ["init", "backup", "master", "fault"];
        let mut rows = Vec::new();
        for i in &doc.instances {
            for s in states {
                let mut l = inst(i);
                l.push(("state", s.to_owned()));
                rows.push((l, i64::from(i.state == s)));
            }
        }
        gauge(
            &mut enc,
            "vrrp_instance_state",
            "1 for the state the instance is in",
            &rows,
        )?;
        let rows: Vec<_> = doc
            .instances
            .iter()
            .map(|i| (inst(i), i64::from(i.priority)))
            .collect();
        gauge(
            &mut enc,
            "vrrp_instance_effective_priority",
            "Priority after tracked weights",
            &rows,
        )?;
        let rows: Vec<_> = doc
            .instances
            .iter()
            .map(|i| (inst(i), i.transitions))
            .collect();
        counter(
            &mut enc,
            "vrrp_instance_transitions",
            "State changes",
            &rows,
        )?;
        let rows: Vec<_> = doc
            .instances
            .iter()
            .map(|i| (inst(i), i.master_transitions))
            .collect();
        counter(
            &mut enc,
            "vrrp_instance_master_transitions",
            "Times the instance became master",
            &rows,
        )?;
        let rows: Vec<_> = doc
            .instances
            .iter()
            .map(|i| (inst(i), i.adverts_received))
            .collect();
        counter(
            &mut enc,
            "vrrp_instance_adverts_received",
            "Advertisements accepted",
            &rows,
        )?;
        let rows: Vec<_> = doc
            .instances
            .iter()
            .map(|i| (inst(i), i.adverts_sent))
            .collect();
        counter(
            &mut enc,
            "vrrp_instance_adverts_sent",
            "Advertisements sent",
            &rows,
        )?;
        let mut rows = Vec::new();
        for i in &doc.instances {
            for (reason, n) in &i.drops {
                let mut l = inst(i);
                l.push(("reason", reason.clone()));
                rows.push((l, *n));
            }
        }
        counter(
            &mut enc,
            "vrrp_instance_dropped",
            "Advertisements dropped, by reason",
            &rows,
        )?;
        let rows: Vec<_> = doc
            .scripts
            .iter()
            .map(|(n, up)| (vec![("script", n.clone())], i64::from(*up)))
            .collect();
        gauge(
            &mut enc,
            "vrrp_script_up",
            "1 while the tracked script succeeds",
            &rows,
        )?;
        let rows: Vec<_> = doc
            .real_servers
            .iter()
            .map(|r| {
                (
                    vec![("service", r.service.clone()), ("server", r.server.clone())],
                    i64::from(r.up),
                )
            })
            .collect();
        gauge(
            &mut enc,
            "lvs_real_server_up",
            "1 while the real server's checks pass",
            &rows,
        )?;
        encode_more(&mut enc, &doc)?;
        for (name, value) in &doc.counters {
            counter(
                &mut enc,
                &format!("vrrpd_{name}"),
                name,
                &[(vec![], *value)],
            )?;
        }
        Ok(())
    }
}

/// A histogram of the status document: counts per bucket of
/// `vrrp_net::driver::HISTOGRAM_BOUNDS_MS` (the last unbounded), and the
/// sum in seconds.
type HistogramDoc = (Vec<u64>, f64);

/// Label pairs of one row.
type Labels<'a> = Vec<(&'a str, String)>;

fn histogram(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels<'_>, &HistogramDoc)],
) -> std::fmt::Result {
    let bounds: Vec<f64> = vrrp_net::driver::HISTOGRAM_BOUNDS_MS
        .iter()
        .map(|ms| *ms as f64 / 1000.0)
        .collect();
    histogram_with(enc, name, help, &bounds, rows)
}

/// A histogram family whose rows count per bucket of `bounds` (seconds;
/// a last bucket above them).
fn histogram_with(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    bounds: &[f64],
    rows: &[(Labels<'_>, &HistogramDoc)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, (counts, sum)) in rows {
        let mut buckets: Vec<(f64, u64)> = bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(counts.iter().copied().chain(std::iter::repeat(0)))
            .collect();
        let n = buckets.len();
        if counts.len() > n
            && let Some(last) = buckets.last_mut()
        {
            last.1 += counts[n..].iter().sum::<u64>();
        }
        let count = buckets.iter().map(|b| b.1).sum();
        m.encode_family(labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                *sum, count, &buckets, None,
            )?;
    }
    Ok(())
}

/// The metrics beyond the first exporters': maintenance, priority 0,
/// virtual addresses as the kernel has them, transitions by reason, dual
/// masters, advertisement intervals and down-timer margins, router drops,
/// reloads by result, build information.
fn encode_more(enc: &mut DescriptorEncoder<'_>, doc: &StatusDoc) -> std::fmt::Result {
    let inst = |i: &InstanceDoc| vec![("instance", i.name.clone()), ("vrid", i.vrid.to_string())];
    let rows: Vec<_> = doc
        .instances
        .iter()
        .map(|i| (inst(i), i64::from(i.base_priority)))
        .collect();
    gauge(
        enc,
        "vrrp_instance_base_priority",
        "Configured priority, before tracked weights",
        &rows,
    )?;
    let rows: Vec<_> = doc
        .instances
        .iter()
        .map(|i| (inst(i), i64::from(i.maintenance)))
        .collect();
    gauge(
        enc,
        "vrrp_instance_maintenance",
        "1 while the instance is held in maintenance (Backup until cleared)",
        &rows,
    )?;
    let rows: Vec<_> = doc
        .instances
        .iter()
        .map(|i| (inst(i), i.priority_zero.0))
        .collect();
    counter(
        enc,
        "vrrp_instance_priority_zero_received",
        "Priority-0 advertisements accepted (the master leaving)",
        &rows,
    )?;
    let rows: Vec<_> = doc
        .instances
        .iter()
        .map(|i| (inst(i), i.priority_zero.1))
        .collect();
    counter(
        enc,
        "vrrp_instance_priority_zero_sent",
        "Priority-0 advertisements sent (leaving master)",
        &rows,
    )?;
    let mut rows = Vec::new();
    for i in &doc.instances {
        for (from, to, reason, n) in &i.transitions_by_reason {
            let mut l = inst(i);
            l.extend([
                ("from", from.clone()),
                ("to", to.clone()),
                ("reason", reason.clone()),
            ]);
            rows.push((l, *n));
        }
    }
    counter(
        enc,
        "vrrp_instance_transitions_by_reason",
        "State changes since the daemon started running, by old and new state and reason",
        &rows,
    )?;
    let rows: Vec<_> = doc
        .instances
        .iter()
        .map(|i| (inst(i), i.dual_master))
        .collect();
    counter(
        enc,
        "vrrp_instance_dual_master",
        "Advertisements accepted from another router while master (two masters at once)",
        &rows,
    )?;
    let mut rows = Vec::new();
    for i in &doc.instances {
        for v in &i.vips {
            let mut l = inst(i);
            l.extend([("address", v.address.clone()), ("device", v.device.clone())]);
            rows.push((l, i64::from(v.present)));
        }
    }
    gauge(
        enc,
        "vrrp_vip_present",
        "1 while the virtual address is on its interface, as the kernel says",
        &rows,
    )?;
    let rows: Vec<_> = doc
        .instances
        .iter()
        .map(|i| (inst(i), &i.advert_intervals))
        .collect();
    histogram(
        enc,
        "vrrp_instance_advert_interval_seconds",
        "Time between accepted advertisements, as they arrived",
        &rows,
    )?;
    let rows: Vec<_> = doc
        .instances
        .iter()
        .map(|i| (inst(i), &i.down_timer_margins))
        .collect();
    histogram(
        enc,
        "vrrp_instance_down_timer_margin_seconds",
        "In backup: how long before Master_Down_Timer each accepted advertisement came",
        &rows,
    )?;
    let mut m = enc.encode_descriptor(
        "vrrp_instance_down_timer_margin_min_seconds",
        "The closest a backup came to taking over",
        None,
        MetricType::Gauge,
    )?;
    for i in &doc.instances {
        if let Some(v) = i.min_down_timer_margin {
            ConstGauge::new(v).encode(m.encode_family(&inst(i))?)?;
        }
    }
    let rows: Vec<_> = doc
        .router_drops
        .iter()
        .map(|(r, n)| (vec![("reason", r.clone())], *n))
        .collect();
    counter(
        enc,
        "vrrp_router_dropped",
        "Packets dropped before they reached an instance, by reason (RFC 6527)",
        &rows,
    )?;
    counter(
        enc,
        "vrrp_instance_gratuitous_arps_sent",
        "Gratuitous ARPs sent for the instance's IPv4 addresses",
        &doc.instances
            .iter()
            .map(|i| (inst(i), i.garps_sent))
            .collect::<Vec<_>>(),
    )?;
    counter(
        enc,
        "vrrp_instance_neighbour_adverts_sent",
        "Unsolicited neighbour advertisements sent for the instance's IPv6 addresses",
        &doc.instances
            .iter()
            .map(|i| (inst(i), i.nas_sent))
            .collect::<Vec<_>>(),
    )?;
    encode_checks(enc, doc)?;
    counter(
        enc,
        "vrrpd_config_reloads",
        "Configuration reloads (SIGHUP), by result",
        &[
            (vec![("result", "applied".to_owned())], doc.reloads),
            (vec![("result", "refused".to_owned())], doc.reload_failures),
        ],
    )?;
    gauge(
        enc,
        "vrrpd_build_info",
        "Always 1: the daemon's version",
        &[(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], 1)],
    )?;
    Ok(())
}

/// Health checks: up per check, attempt durations by kind, scheduling
/// lag.
fn encode_checks(enc: &mut DescriptorEncoder<'_>, doc: &StatusDoc) -> std::fmt::Result {
    let rows: Vec<_> = doc
        .checks
        .iter()
        .map(|c| {
            (
                vec![("check", c.name.clone()), ("kind", c.kind.clone())],
                i64::from(c.state == "up"),
            )
        })
        .collect();
    gauge(
        enc,
        "healthcheck_up",
        "1 while the health check is up",
        &rows,
    )?;
    let rows: Vec<_> = doc
        .checks
        .iter()
        .map(|c| {
            (
                vec![("check", c.name.clone()), ("kind", c.kind.clone())],
                i64::from(c.consecutive_failures),
            )
        })
        .collect();
    gauge(
        enc,
        "healthcheck_consecutive_failures",
        "Failed rounds in a row",
        &rows,
    )?;
    let bounds: Vec<f64> = healthcheck::BUCKET_BOUNDS_MICROS
        .iter()
        .map(|us| *us as f64 / 1e6)
        .collect();
    let durations: Vec<HistogramDoc> = doc
        .check_durations
        .iter()
        .map(|(_, h)| (h.counts.clone(), h.sum))
        .collect();
    let rows: Vec<_> = doc
        .check_durations
        .iter()
        .zip(&durations)
        .map(|((kind, _), h)| (vec![("kind", kind.clone())], h))
        .collect();
    histogram_with(
        enc,
        "healthcheck_duration_seconds",
        "How long health-check attempts took, by kind of check",
        &bounds,
        &rows,
    )?;
    let lag = (doc.check_lag.counts.clone(), doc.check_lag.sum);
    histogram_with(
        enc,
        "healthcheck_schedule_lag_seconds",
        "How late health-check attempts started against their schedule",
        &bounds,
        &[(vec![], &lag)],
    )?;
    Ok(())
}

/// Renders the Prometheus text exposition of `doc`.
pub fn render_metrics(shared: &Shared) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Metrics(shared.clone())));
    super::ipvs_stats::register(&mut registry);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The classic Prometheus text format (0.0.4) from OpenMetrics text:
/// counter families are named with their `_total` suffix in `# HELP` and
/// `# TYPE`, `# UNIT` and `# EOF` go. Scrapers that do not ask for
/// OpenMetrics (promtool, older servers, curl) get this.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, "counter")) = rest.split_once(' ')
        {
            counters.insert(name.to_owned());
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn respond(
    shared: &Shared,
    health: &Health,
    path: &str,
    openmetrics: bool,
) -> Response<Full<Bytes>> {
    let verdict = |r: Result<(), String>| match r {
        Ok(()) => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("{why}\n"),
        ),
    };
    let (status, ctype, body) = match path {
        "/healthz" => verdict(health.healthy()),
        "/readyz" => {
            let doc = match shared.read() {
                Ok(d) => d.clone(),
                Err(p) => p.into_inner().clone(),
            };
            verdict(health.readiness(&doc))
        }
        "/metrics" => match render_metrics(shared) {
            Ok(text) if openmetrics => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Ok(text) => (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                to_prometheus_text(&text),
            ),
            Err(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "encoding failed\n".to_owned(),
            ),
        },
        "/status" => {
            let doc = match shared.read() {
                Ok(d) => d.clone(),
                Err(p) => p.into_inner().clone(),
            };
            match serde_json::to_string_pretty(&doc) {
                Ok(json) => (StatusCode::OK, "application/json", json),
                Err(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "encoding failed\n".to_owned(),
                ),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /status, /healthz or /readyz\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// Connections served at once; beyond that the oldest is closed to make
/// room, so idle connections can never lock the listener up.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection may live, whatever it does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of the listener.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed early to make room for new ones.
    pub evicted: AtomicU64,
    /// Failed accepts (out of file descriptors...), each followed by a
    /// pause.
    pub accept_errors: AtomicU64,
}

/// Serves `/metrics` and `/status` on `listener` until `cancel`: one
/// request per connection (no keep-alive), the request head within
/// [`HEADER_TIMEOUT`], the whole connection within [`CONNECTION_TIMEOUT`],
/// at most [`MAX_CONNECTIONS`] at once (the oldest is evicted), and a
/// growing pause after a failed accept (`EMFILE` would otherwise spin).
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    health: Arc<Health>,
    counters: Arc<HttpCounters>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "observability listener up");
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the observability listener is not on a loopback address: anyone who reaches it reads the cluster's state");
        }
    }
    #[cfg(debug_assertions)]
    let panic_at = super::fault::after("http-panic").map(|d| tokio::time::Instant::now() + d);
    let live: Arc<Mutex<BTreeMap<u64, CancellationToken>>> = Arc::default();
    let mut next_id: u64 = 0;
    let mut backoff = Duration::from_millis(10);
    loop {
        #[cfg(debug_assertions)]
        let injected = async {
            match panic_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(debug_assertions))]
        let injected = std::future::pending::<()>();
        let (stream, _) = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            () = injected => panic!("injected HTTP task panic (VRRPD_DEBUG_FAULT)"),
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff = Duration::from_millis(10);
                    a
                }
                Err(e) => {
                    counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, pause = ?backoff, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let id = next_id;
        next_id += 1;
        let token = cancel.child_token();
        let evicted = {
            let mut live = lock(&live);
            let mut evicted = false;
            while live.len() >= MAX_CONNECTIONS {
                if let Some((_, oldest)) = live.pop_first() {
                    oldest.cancel();
                    counters.evicted.fetch_add(1, Ordering::Relaxed);
                    evicted = true;
                }
            }
            live.insert(id, token.clone());
            evicted
        };
        if evicted {
            // Let the evicted connection's task run and close its socket
            // before the next accept, so a flood cannot pile up
            // descriptors faster than evictions release them.
            tokio::task::yield_now().await;
        }
        let shared = shared.clone();
        let health = health.clone();
        let live = Arc::clone(&live);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let openmetrics = req
                    .headers()
                    .get(hyper::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("application/openmetrics-text"));
                let resp = respond(&shared, &health, req.uri().path(), openmetrics);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .max_buf_size(64 * 1024);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = token.cancelled() => {}
                _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn) => {}
            }
            lock(&live).remove(&id);
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Fetches `/status` from a running daemon.
pub async fn fetch_status(addr: SocketAddr) -> anyhow::Result<StatusDoc> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get("/status")
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    anyhow::ensure!(resp.status() == StatusCode::OK, "status {}", resp.status());
    // A status document is a few kilobytes; anything far larger is not
    // a vrrpd.
    let body = http_body_util::Limited::new(resp.into_body(), 16 << 20)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading /status: {e}"))?
        .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

/// Prints a status document as a table.
pub fn print_table(doc: &StatusDoc) {
    if let Ok(table) = render_table(doc) {
        print!("{table}");
    }
}

/// A status document as the table `vrrpd status` prints.
fn render_table(doc: &StatusDoc) -> Result<String, std::fmt::Error> {
    use std::fmt::Write as _;
    let mut out = String::new();
    writeln!(out, "router {}", doc.router_id)?;
    writeln!(
        out,
        "{:<16} {:<10} {:>4} {:<8} {:>4} {:<26} {:>6} {:>4} NOTE",
        "INSTANCE", "IFACE", "VRID", "STATE", "PRIO", "MASTER", "TRANS", "BASE"
    )?;
    for i in &doc.instances {
        let mut note = Vec::new();
        if i.maintenance {
            note.push("maintenance".to_owned());
        }
        if let Some(why) = &i.unbound {
            note.push(why.clone());
        }
        writeln!(
            out,
            "{:<16} {:<10} {:>4} {:<8} {:>4} {:<26} {:>6} {:>4} {}",
            i.name,
            i.interface,
            i.vrid,
            i.state,
            i.priority,
            i.master.clone().unwrap_or_else(|| "-".into()),
            i.transitions,
            i.base_priority,
            note.join(", ")
        )?;
    }
    for i in &doc.instances {
        for v in &i.vips {
            writeln!(
                out,
                "vip {} on {} ({}): {}{}{}",
                v.address,
                v.device,
                i.name,
                if v.present { "present" } else { "absent" },
                if v.foreign { ", foreign" } else { "" },
                match v.restored {
                    0 => String::new(),
                    1 => ", put back once after a removal from outside".to_owned(),
                    n => format!(", put back {n} times after removals from outside"),
                }
            )?;
        }
    }
    for i in &doc.instances {
        if let Some(p) = i.master_priority {
            writeln!(
                out,
                "master of {}: {} priority {p}",
                i.name,
                i.master.as_deref().unwrap_or("-")
            )?;
        }
        for p in &i.peers {
            writeln!(
                out,
                "peer {} ({}): priority {}, advert {}s, last {:.1}s ago, {} adverts",
                p.address, i.name, p.priority, p.advert_interval, p.last_advert_age, p.adverts
            )?;
        }
        if i.garps_sent + i.nas_sent > 0 {
            writeln!(
                out,
                "announced ({}): {} gratuitous ARPs, {} neighbour advertisements",
                i.name, i.garps_sent, i.nas_sent
            )?;
        }
        // Advertisements dropped, by reason: a peer whose configuration
        // differs is not heard at all, and two masters can follow.
        let dropped: Vec<String> = i
            .drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        if !dropped.is_empty() {
            let differs = i
                .drops
                .iter()
                .any(|(reason, n)| *n > 0 && PEER_CONFIG_DROPS.contains(&reason.as_str()));
            writeln!(
                out,
                "dropped ({}): {}{}",
                i.name,
                dropped.join(", "),
                if differs {
                    " (a peer's configuration differs from ours: its advertisements are ignored)"
                } else {
                    ""
                }
            )?;
        }
    }
    for (name, up) in &doc.scripts {
        writeln!(out, "script {name}: {}", if *up { "up" } else { "down" })?;
    }
    for c in &doc.checks {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut line = format!("check {} [{}]: {}", c.name, c.kind, c.state);
        if !c.decided {
            line.push_str(" (initial)");
        }
        if let Some(r) = &c.last_result {
            line.push_str(&format!(", last {r}"));
        }
        if let Some(why) = &c.reason {
            line.push_str(&format!(" ({why})"));
        }
        if let Some(d) = c.last_duration {
            line.push_str(&format!(" in {:.1} ms", d * 1000.0));
        }
        if let Some(at) = c.last_run {
            line.push_str(&format!(" {:.1}s ago", (now - at).max(0.0)));
        }
        if c.consecutive_failures > 0 {
            line.push_str(&format!(
                ", {} failed rounds in a row",
                c.consecutive_failures
            ));
        }
        writeln!(out, "{line}")?;
    }
    for r in &doc.real_servers {
        writeln!(
            out,
            "{} -> {}: {}",
            r.service,
            r.server,
            if r.up { "up" } else { "down" }
        )?;
    }
    Ok(out)
}

/// Drop reasons that mean a peer is configured differently (addresses,
/// interval, authentication, version): its advertisements are ignored.
const PEER_CONFIG_DROPS: [&str; 6] = [
    "address_list",
    "advert_interval",
    "auth_failure",
    "invalid_auth_type",
    "auth_type_mismatch",
    "version_mismatch",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_their_total() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total{x=\"1\"} 2\n\
                  # HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total{x=\"1\"} 2\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }

    #[test]
    fn the_table_shows_drops_and_names_a_peer_configured_differently() {
        let mut doc = StatusDoc {
            router_id: "a".into(),
            ..StatusDoc::default()
        };
        doc.instances.push(InstanceDoc {
            name: "VI_1".into(),
            state: "master".into(),
            drops: vec![("checksum".into(), 0), ("ip_ttl".into(), 2)],
            ..InstanceDoc::default()
        });
        let table = render_table(&doc).expect("a table");
        assert!(
            table.lines().any(|l| l == "dropped (VI_1): ip_ttl 2"),
            "{table}"
        );
        doc.instances[0].drops.push(("address_list".into(), 25));
        let table = render_table(&doc).expect("a table");
        assert!(
            table.lines().any(|l| l.starts_with(
                "dropped (VI_1): ip_ttl 2, address_list 25 (a peer's configuration differs"
            )),
            "{table}"
        );
        doc.instances[0].drops = vec![("checksum".into(), 0)];
        let table = render_table(&doc).expect("a table");
        assert!(!table.contains("dropped"), "nothing dropped: {table}");
    }

    #[test]
    fn health_needs_both_loops_and_readiness_every_instance_running() {
        let h = Health::new();
        assert!(h.healthy_at(3000).is_ok());
        h.driver.store(2000, Ordering::Relaxed);
        h.daemon.store(500, Ordering::Relaxed);
        assert_eq!(
            h.healthy_at(4000),
            Err("the daemon loop made no progress for 3500 ms".to_owned())
        );
        h.daemon.store(3900, Ordering::Relaxed);
        assert!(h.healthy_at(4000).is_ok());
        assert!(h.healthy_at(5001).is_err(), "driver stalled");

        let mut doc = StatusDoc::default();
        doc.instances.push(InstanceDoc {
            name: "VI_1".into(),
            state: "init".into(),
            ..InstanceDoc::default()
        });
        assert!(h.readiness(&doc).is_err(), "not started");
        h.set_ready(true);
        assert_eq!(
            h.readiness(&doc),
            Err("instance VI_1 is not running yet".to_owned())
        );
        doc.instances[0].state = "backup".into();
        assert!(h.readiness(&doc).is_ok());
        h.set_ready(false);
        assert!(h.readiness(&doc).is_err(), "stopping");
    }
}
