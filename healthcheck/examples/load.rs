//! Load generator for `benches/healthcheck_1000.sh`: many loopback servers
//! in one process, many checks in another, and the checker's own CPU and
//! memory use.
//!
//! ```text
//! load serve --tcp N --http N --ports-file FILE
//!     listen on N TCP and N HTTP ports of 127.0.0.1, write "tcp PORT" /
//!     "http PORT" lines to FILE, serve until killed; every second, write
//!     the number of connections accepted so far to FILE.accepts (so any
//!     checker's real probe rate can be measured)
//! load check --ports-file FILE [--interval-ms 1000] [--duration-secs 30]
//!            [--warmup-secs 5] [--threads 1]
//!     check every port (TCP connect or HTTP GET / with an MD5 digest),
//!     then print, over the window after the warmup: the checker's CPU %
//!     and RSS, the attempts per second against the configured rate, and
//!     the scheduling lag (p50, p99, max) from the runner's own histogram
//! ```

use std::convert::Infallible;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use healthcheck::{
    CheckSpec, Health, HttpCheck, Md5Digest, Probe, Runner, RunnerConfig, TcpCheck, Timing,
    raise_open_files_limit,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const PAGE: &[u8] = b"<html><body>ok</body></html>\n";

struct Args(Vec<String>);

impl Args {
    fn get<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> anyhow::Result<T> {
        match self.0.iter().position(|a| a == name) {
            Some(i) => self
                .0
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("bad value for {name}")),
            None => default.with_context(|| format!("missing {name}")),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mode = argv.first().cloned().unwrap_or_default();
    let args = Args(argv);
    match mode.as_str() {
        "serve" => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve(&args))
        }
        "check" => {
            let threads: usize = args.get("--threads", Some(1))?;
            let runtime = if threads <= 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()?
            };
            runtime.block_on(check(&args))
        }
        _ => bail!("usage: load serve|check ... (see the source)"),
    }
}

async fn serve(args: &Args) -> anyhow::Result<()> {
    let tcp: usize = args.get("--tcp", None)?;
    let http: usize = args.get("--http", None)?;
    let ports_file: String = args.get("--ports-file", None)?;
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut lines = String::new();
    for kind in std::iter::repeat_n("tcp", tcp).chain(std::iter::repeat_n("http", http)) {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        lines.push_str(&format!("{kind} {}\n", listener.local_addr()?.port()));
        let is_http = kind == "http";
        let accepted = std::sync::Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if is_http {
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(|_req| async {
                            Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(
                                hyper::body::Bytes::from_static(PAGE),
                            )))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
    }
    // Written last and renamed, so the reader sees every port or none.
    let partial = format!("{ports_file}.partial");
    std::fs::write(&partial, lines)?;
    std::fs::rename(&partial, &ports_file)?;
    let accepts_file = format!("{ports_file}.accepts");
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let count = accepted.load(std::sync::atomic::Ordering::Relaxed);
        std::fs::write(&partial, format!("{count}\n"))?;
        std::fs::rename(&partial, &accepts_file)?;
    }
}

/// (user + system CPU time, RSS KiB, peak RSS KiB) of this process.
fn usage() -> anyhow::Result<(Duration, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat")?
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the comm field.
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    let hz = 100; // USER_HZ is 100 on every Linux ABI.
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((
        Duration::from_millis(ticks * 1000 / hz),
        kib("VmRSS:"),
        kib("VmHWM:"),
    ))
}

async fn check(args: &Args) -> anyhow::Result<()> {
    let ports_file: String = args.get("--ports-file", None)?;
    let interval = Duration::from_millis(args.get("--interval-ms", Some(1000))?);
    let duration = Duration::from_secs(args.get("--duration-secs", Some(30))?);
    let warmup = Duration::from_secs(args.get("--warmup-secs", Some(5))?);
    let open_files = raise_open_files_limit()?;
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let mut events = runner.subscribe();
    let mut timing = Timing::every(interval);
    timing.timeout = Duration::from_secs(3);
    timing.initial = Health::Down;
    let (mut tcp, mut http) = (0, 0);
    for line in std::fs::read_to_string(&ports_file)?.lines() {
        let (kind, port) = line.split_once(' ').context("ports file line")?;
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], port.parse()?));
        let probe = match kind {
            "tcp" => {
                tcp += 1;
                Probe::Tcp(TcpCheck::new(target))
            }
            _ => {
                http += 1;
                let mut check = HttpCheck::new(target);
                check.digest = Some(Md5Digest::of(PAGE));
                Probe::Http(check)
            }
        };
        runner.add(CheckSpec {
            name: format!("{kind}:{port}"),
            probe,
            timing: timing.clone(),
        })?;
    }
    let started = Instant::now();
    let mut transitions = 0_u64;
    let mut measure_from = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while started.elapsed() < warmup + duration {
        tokio::select! {
            event = events.recv() => {
                if event.is_ok() {
                    transitions += 1;
                }
            }
            _ = tick.tick() => {
                if measure_from.is_none() && started.elapsed() >= warmup {
                    let stats = runner.stats().await.context("runner stopped")?;
                    measure_from = Some((Instant::now(), usage()?, stats));
                }
            }
        }
    }
    let (t0, (cpu0, _, _), stats0) = measure_from.context("warmup longer than the run")?;
    let (cpu1, rss, hwm) = usage()?;
    let stats = runner.stats().await.context("runner stopped")?;
    let wall = t0.elapsed();
    let snapshot = runner.snapshot();
    let failures: u64 = snapshot.iter().map(|(_, s)| s.stats.failures).sum();
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for (_, status) in &snapshot {
        if let Some(reason) = &status.last_reason {
            *reasons.entry(reason.to_string()).or_default() += 1;
        }
    }
    // Attempts per check over the whole run: a check that skipped rounds
    // shows here, where the rate only shows their sum.
    let per_check = |f: fn(&[u64]) -> Option<&u64>| {
        let mut counts: Vec<u64> = snapshot.iter().map(|(_, s)| s.stats.attempts).collect();
        counts.sort_unstable();
        f(&counts).copied().unwrap_or(0)
    };
    let (attempts_min, attempts_max) = (per_check(<[u64]>::first), per_check(<[u64]>::last));
    let up = snapshot
        .iter()
        .filter(|(_, s)| s.health == Health::Up)
        .count();
    runner.shutdown().await;
    let cpu_percent = (cpu1 - cpu0).as_secs_f64() * 100.0 / wall.as_secs_f64();
    let rate = (stats.attempts - stats0.attempts) as f64 / wall.as_secs_f64();
    let configured = snapshot.len() as f64 / interval.as_secs_f64();
    let lag = stats.lag.since(&stats0.lag);
    println!(
        "checks={} tcp={tcp} http={http} up={up} transitions={transitions} configured_per_sec={configured:.0} \
         attempts_per_sec={rate:.1} rate_vs_configured_percent={:+.2} failures={failures} \
         lag_p50_us={} lag_p99_us={} lag_max_us={} max_in_flight={} open_files={open_files} \
         attempts_per_check={attempts_min}-{attempts_max} window_secs={:.1} cpu_percent={cpu_percent:.1} cpu_us_per_attempt={:.1} rss_kib={rss} peak_rss_kib={hwm}",
        snapshot.len(),
        (rate / configured - 1.0) * 100.0,
        lag.quantile(0.5).as_micros(),
        lag.quantile(0.99).as_micros(),
        lag.max().as_micros(),
        stats.max_in_flight,
        wall.as_secs_f64(),
        (cpu1 - cpu0).as_secs_f64() * 1e6 / (rate * wall.as_secs_f64()).max(1.0),
    );
    // How long attempts took, by kind: an attempt that outlasts the
    // interval pushes its check's next round back (rounds are not run in
    // parallel), which the rate shows as a shortfall.
    for (kind, buckets) in &stats.durations_by_kind {
        let over = |micros: u64| -> u64 {
            healthcheck::BUCKET_BOUNDS_MICROS
                .iter()
                .zip(buckets.counts.iter())
                .filter(|(bound, _)| **bound > micros)
                .map(|(_, n)| *n)
                .sum::<u64>()
                + buckets.counts.last().copied().unwrap_or(0)
        };
        println!(
            "{kind} attempts: {} (whole run), mean {} us, over 10 ms {}, over 100 ms {}, over 1 s {}",
            buckets.count(),
            buckets.sum_micros / buckets.count().max(1),
            over(10_000),
            over(100_000),
            over(1_000_000),
        );
    }
    for (reason, count) in reasons {
        println!("last failure of {count} checks: {reason}");
    }
    Ok(())
}
