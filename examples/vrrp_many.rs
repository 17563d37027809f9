//! Many VRRPv3 instances in one process: the load generator of
//! `benches/vrrp_scale.sh`.
//!
//! Runs instances with VRIDs 1..=N on one interface through one driver
//! ([`vrrp_net::driver::spawn`]), prints a status line every second
//! (states, transitions so far, advertisements sent and accepted in the
//! last second) and,
//! at exit (SIGINT, SIGTERM or `--duration`), machine-readable
//! `key=value` totals of the state transitions seen on the event stream,
//! split into the settle period (`--settle`, the initial election), the
//! measurement window after it, and the shutdown.
//!
//! Needs root, in a network namespace:
//!
//! ```sh
//! cargo build --release --example vrrp_many
//! ip netns exec NS target/release/examples/vrrp_many \
//!     --interface eth0 --count 255 --interval-ms 10 --priority 200 --settle 10 --duration 70
//! ```
//!
//! Exit lines (one per key, after the line `totals:`):
//! `to_master`, `to_backup`, `to_fault`, `to_initialize` (all transitions
//! by new state), `settle_transitions`, `window_transitions`,
//! `window_to_master`, `window_to_backup`, `window_to_fault`,
//! `window_instances` (instances with at least one window transition),
//! `shutdown_transitions`, `events_lagged` (events lost by a slow
//! reader: non-zero makes the counts a lower bound), `adverts_sent`,
//! `adverts_received`, `send_errors`, `masters`, `backups`, `faults`
//! (states just before stopping) and `window_seconds`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
use vrrp_net::driver::{DriverConfig, InstanceSpec, Snapshot, StateEvent, Vip, spawn};

const USAGE: &str = "\
usage: vrrp_many [options]

  --interface IF       interface (default eth0)
  --count N            instances, VRIDs 1..=N, N in 1..=255 (default 255)
  --interval-ms MS     advertisement interval, a multiple of 10 (default 10)
  --priority P         priority of every instance, 1..=255 (default 100)
  --vip-base A.B.C.D/LEN
                       instance k gets A.B.C.(D+k-1)/LEN; must stay inside
                       A.B.C.1..=A.B.C.254 (default: no virtual addresses)
  --settle SECS        transitions before SECS count as the initial
                       election, after it as the window (default 10)
  --duration SECS      stop after SECS (default: run until SIGINT/SIGTERM)
  --threads N          tokio worker threads; 1 = current-thread runtime
                       (default 1)
  --quiet              no per-second status lines
  -h, --help           this text";

struct Args {
    interface: String,
    count: u8,
    interval: Centisecs,
    priority: Priority,
    vip_base: Option<(Ipv4Addr, u8)>,
    settle: Duration,
    duration: Option<Duration>,
    threads: usize,
    quiet: bool,
}

fn seconds(flag: &str, v: &str) -> Result<Duration> {
    let secs: f64 = v.parse().with_context(|| format!("{flag} {v:?}"))?;
    Duration::try_from_secs_f64(secs)
        .with_context(|| format!("{flag} {v}: use a number of seconds >= 0"))
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        interface: "eth0".to_owned(),
        count: 255,
        interval: Centisecs::new(1),
        priority: Priority::DEFAULT,
        vip_base: None,
        settle: Duration::from_secs(10),
        duration: None,
        threads: 1,
        quiet: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--quiet" => {
                args.quiet = true;
                continue;
            }
            _ => {}
        }
        let v = it
            .next()
            .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        match flag.as_str() {
            "--interface" => args.interface = v,
            "--count" => {
                args.count = v.parse().ok().filter(|n| *n > 0).with_context(|| {
                    format!("--count {v:?}: use 1..=255 (one instance per VRID)")
                })?;
            }
            "--interval-ms" => {
                let ms: u32 = v.parse().with_context(|| format!("--interval-ms {v:?}"))?;
                if ms == 0 || !ms.is_multiple_of(10) || ms / 10 > u32::from(Centisecs::V3_MAX.get())
                {
                    bail!("--interval-ms {ms}: use a multiple of 10 from 10 to 40950");
                }
                args.interval = Centisecs::new(u16::try_from(ms / 10)?);
            }
            "--priority" => {
                let p: u8 = v.parse().with_context(|| format!("--priority {v:?}"))?;
                args.priority = Priority::configured(p)
                    .with_context(|| format!("--priority {p}: use 1..=255"))?;
            }
            "--vip-base" => {
                let (addr, len) = v.split_once('/').unwrap_or((v.as_str(), "32"));
                let addr: Ipv4Addr = addr
                    .parse()
                    .with_context(|| format!("--vip-base {v:?}: an IPv4 address"))?;
                let len: u8 = len
                    .parse()
                    .ok()
                    .filter(|l| *l <= 32)
                    .with_context(|| format!("--vip-base {v:?}: prefix length 0..=32"))?;
                args.vip_base = Some((addr, len));
            }
            "--settle" => args.settle = seconds(&flag, &v)?,
            "--duration" => args.duration = Some(seconds(&flag, &v)?),
            "--threads" => {
                args.threads = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("--threads {v:?}: use 1 or more"))?;
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if let Some((base, _)) = args.vip_base {
        let last = u16::from(base.octets()[3]) + u16::from(args.count) - 1;
        if base.octets()[3] == 0 || last > 254 {
            bail!(
                "--vip-base {base} with {} instances runs to host .{last}: the addresses must stay in .1..=.254 of one /24",
                args.count
            );
        }
    }
    Ok(args)
}

fn specs(args: &Args) -> Result<Vec<InstanceSpec>> {
    (1..=args.count)
        .map(|n| {
            let vrid = Vrid::new(n).context("VRID 0")?;
            // Advertise from the interface's primary address.
            let config = InstanceConfig::new(vrid, Version::V3, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
                .with_priority(args.priority)
                .with_interval(args.interval);
            let mut spec = InstanceSpec::new(format!("VI_{n}"), args.interface.clone(), config);
            if let Some((base, prefix_len)) = args.vip_base {
                let [a, b, c, d] = base.octets();
                let addr = IpAddr::V4(Ipv4Addr::new(a, b, c, d + (n - 1)));
                spec.vips
                    .push(Vip::new(VirtualAddress { addr, prefix_len }));
            }
            Ok(spec)
        })
        .collect()
}

/// Transition counts, by phase and new state.
#[derive(Default)]
struct Tally {
    to_master: u64,
    to_backup: u64,
    to_fault: u64,
    to_initialize: u64,
    settle: u64,
    window: u64,
    window_to_master: u64,
    window_to_backup: u64,
    window_to_fault: u64,
    window_instances: BTreeSet<String>,
    shutdown: u64,
    lagged: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Settle,
    Window,
    Shutdown,
}

impl Tally {
    fn count(&mut self, phase: Phase, e: &StateEvent) {
        match e.to {
            State::Master => self.to_master += 1,
            State::Backup => self.to_backup += 1,
            State::Fault => self.to_fault += 1,
            _ => self.to_initialize += 1,
        }
        match phase {
            Phase::Settle => self.settle += 1,
            Phase::Shutdown => self.shutdown += 1,
            Phase::Window => {
                self.window += 1;
                match e.to {
                    State::Master => self.window_to_master += 1,
                    State::Backup => self.window_to_backup += 1,
                    State::Fault => self.window_to_fault += 1,
                    _ => {}
                }
                if self.window_instances.len() < 1024 {
                    self.window_instances.insert(e.instance.clone());
                }
                // Spurious transitions are what this program looks for:
                // say when and why.
                eprintln!(
                    "window transition: {} {} -> {} ({:?}) at {:.3}s",
                    e.instance,
                    e.from,
                    e.to,
                    e.reason,
                    e.at.as_secs_f64()
                );
            }
        }
    }
}

struct Census {
    masters: usize,
    backups: usize,
    faults: usize,
    other: usize,
}

fn census(s: &Snapshot) -> Census {
    let mut c = Census {
        masters: 0,
        backups: 0,
        faults: 0,
        other: 0,
    };
    for i in &s.instances {
        match i.state {
            State::Master => c.masters += 1,
            State::Backup => c.backups += 1,
            State::Fault => c.faults += 1,
            _ => c.other += 1,
        }
    }
    c
}

/// Advertisements sent and accepted by all instances so far (the
/// snapshot's counters are refreshed every second).
fn advert_counts(s: &Snapshot) -> (u64, u64) {
    s.instances.iter().fold((0, 0), |(sent, rcvd), i| {
        (
            sent + i.stats.sent_advertisements,
            rcvd + i.stats.rcvd_advertisements,
        )
    })
}

async fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let handle = spawn(DriverConfig {
        instances: specs(&args)?,
        sync_groups: vec![],
        ..DriverConfig::default()
    })
    .await
    .with_context(|| {
        format!(
            "starting {} instances on {} (root, in a network namespace, interface with an IPv4 address?)",
            args.count, args.interface
        )
    })?;
    let mut events = handle.subscribe_from_start();
    let mut status = handle.watch();
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let stop_at = args
        .duration
        .map(|d| tokio::time::Instant::from_std(start + d));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tally = Tally::default();
    let mut last_counts = (0, 0);
    let phase = |at: Instant| {
        if at.duration_since(start) < args.settle {
            Phase::Settle
        } else {
            Phase::Window
        }
    };
    println!(
        "started {} instances on {}: VRRPv3, interval {}, priority {}, pid {}",
        args.count,
        args.interface,
        args.interval,
        args.priority,
        std::process::id()
    );
    let failed = loop {
        tokio::select! {
            _ = sigint.recv() => break None,
            _ = sigterm.recv() => break None,
            () = async {
                match stop_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => break None,
            event = events.recv() => match event {
                Ok(e) => tally.count(phase(Instant::now()), &e),
                Err(RecvError::Lagged(n)) => tally.lagged += n,
                Err(RecvError::Closed) => break Some("event stream closed"),
            },
            changed = status.changed() => {
                if changed.is_err() {
                    break Some("driver stopped");
                }
            }
            _ = tick.tick(), if !args.quiet => {
                let snapshot = handle.snapshot();
                let c = census(&snapshot);
                let counts = advert_counts(&snapshot);
                println!(
                    "t={:.0} masters={} backups={} faults={} init={} transitions={} sent={} received={}",
                    start.elapsed().as_secs_f64(),
                    c.masters,
                    c.backups,
                    c.faults,
                    c.other,
                    tally.settle + tally.window,
                    counts.0 - last_counts.0,
                    counts.1 - last_counts.1,
                );
                last_counts = counts;
            }
        }
    };
    // What was queued before the stop belongs to the run.
    loop {
        match events.try_recv() {
            Ok(e) => tally.count(phase(Instant::now()), &e),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => tally.lagged += n,
            Err(_) => break,
        }
    }
    if let Some(why) = failed {
        handle.wait().await.context(why)?;
        bail!("{why}");
    }
    let stopped = Instant::now();
    let before = handle.snapshot();
    let c = census(&before);
    let shutdown = handle.shutdown();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            result = &mut shutdown => {
                result.context("graceful shutdown")?;
                break;
            }
            event = events.recv() => match event {
                Ok(e) => tally.count(Phase::Shutdown, &e),
                Err(RecvError::Lagged(n)) => tally.lagged += n,
                Err(RecvError::Closed) => {
                    (&mut shutdown).await.context("graceful shutdown")?;
                    break;
                }
            },
        }
    }
    while let Ok(e) = events.try_recv() {
        tally.count(Phase::Shutdown, &e);
    }
    let (sent, received) = advert_counts(&before);
    let window_seconds = stopped.duration_since(start).saturating_sub(args.settle);
    println!("totals:");
    let lines: [(&str, String); 21] = [
        ("instances", args.count.to_string()),
        ("to_master", tally.to_master.to_string()),
        ("to_backup", tally.to_backup.to_string()),
        ("to_fault", tally.to_fault.to_string()),
        ("to_initialize", tally.to_initialize.to_string()),
        ("settle_transitions", tally.settle.to_string()),
        ("window_transitions", tally.window.to_string()),
        ("window_to_master", tally.window_to_master.to_string()),
        ("window_to_backup", tally.window_to_backup.to_string()),
        ("window_to_fault", tally.window_to_fault.to_string()),
        ("window_instances", tally.window_instances.len().to_string()),
        ("shutdown_transitions", tally.shutdown.to_string()),
        ("events_lagged", tally.lagged.to_string()),
        ("adverts_sent", sent.to_string()),
        ("adverts_received", received.to_string()),
        ("send_errors", before.send_errors.to_string()),
        ("masters", c.masters.to_string()),
        ("backups", c.backups.to_string()),
        ("faults", c.faults.to_string()),
        (
            "window_seconds",
            format!("{:.1}", window_seconds.as_secs_f64()),
        ),
        (
            "run_seconds",
            format!("{:.1}", stopped.duration_since(start).as_secs_f64()),
        ),
    ];
    for (k, v) in lines {
        println!("{k}={v}");
    }
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .context("building the tokio runtime")?;
    runtime.block_on(run(args))
}
