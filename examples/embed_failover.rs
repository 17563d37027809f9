//! Embedding VRRP failover in a Rust service with `vrrp_net::driver`.
//!
//! The program builds one [`InstanceSpec`] from its command line, spawns the
//! driver, prints every state change it broadcasts, and shows the two
//! run-time knobs a service has: the base priority
//! ([`VrrpHandle::set_priority`]) and a tracked object whose state the
//! service reports itself ([`VrrpHandle::set_track`], say the health of a
//! backend). Ctrl-C or SIGTERM stops it gracefully: a master sends a
//! priority-0 advertisement and every virtual address is removed.
//!
//! Run-time controls:
//! * `kill -USR1 <pid>` flips the tracked object (up -> down -> up ...);
//! * `kill -USR2 <pid>` switches the base priority between `--priority`
//!   and `--alt-priority`;
//! * `--demo-after SECS` does both by itself: after SECS the tracked
//!   object goes down, after 2*SECS it comes back up, after 3*SECS the
//!   priority switches to `--alt-priority`.
//!
//! It needs root (raw sockets, rtnetlink) and is best run in a network
//! namespace. Two nodes on a throwaway LAN:
//!
//! ```sh
//! ip netns add ef-a; ip netns add ef-b
//! ip link add ef-va type veth peer name ef-vb
//! ip link set ef-va netns ef-a; ip link set ef-vb netns ef-b
//! ip -n ef-a addr add 192.0.2.1/24 dev ef-va; ip -n ef-a link set ef-va up
//! ip -n ef-b addr add 192.0.2.2/24 dev ef-vb; ip -n ef-b link set ef-vb up
//! cargo build --example embed_failover
//! ip netns exec ef-a target/debug/examples/embed_failover \
//!     --interface ef-va --vrid 51 --priority 150 --vip 192.0.2.100/24 --demo-after 5 &
//! ip netns exec ef-b cargo run --example embed_failover -- \
//!     --interface ef-vb --vrid 51 --priority 100 --vip 192.0.2.100/24
//! # Ctrl-C, then: kill %1; ip netns del ef-a; ip netns del ef-b
//! ```
//!
//! With `--demo-after 5`, node A's tracked object (weight -60) goes down
//! at 5 s: its priority falls to 90 and B takes over. At 10 s the object
//! is back, A is at 150 again and preempts B. At 15 s A's base priority
//! drops to 50 and B takes over for good (`kill -USR2` on A restores it).
//!
//! `RUST_LOG=vrrp_net=debug` shows the driver's own logs.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;
use vrrp_core::{
    Centisecs, InstanceConfig, Priority, TrackConfig, TrackId, Version, VirtualAddress, Vrid,
};
use vrrp_net::driver::DriverConfig;
use vrrp_net::driver::{InstanceSpec, Snapshot, StateEvent, Vip, VrrpHandle, spawn};

const USAGE: &str = "\
usage: embed_failover --interface IF [options]

  --interface IF       interface to run on (required)
  --vrid N             virtual router id, 1..=255 (default 51)
  --priority P         base priority, 1..=255 (default 100)
  --alt-priority P     priority SIGUSR2 / --demo-after switches to (default 50)
  --vip ADDR[/LEN]     virtual address, repeatable (default prefix /32 or /128)
  --interval-ms MS     advertisement interval, a multiple of 10 (default 1000)
  --version 2|3        VRRP version (default 3)
  --track-weight W     weight of the tracked object, -253..=253; 0 means
                       Fault while it is down (default -60)
  --demo-after SECS    switch priority, fail and restore the tracked object
                       every SECS seconds, once
  -h, --help           this text

Needs root, inside a network namespace: see the top of examples/embed_failover.rs.";

/// The tracked object the service reports (a backend's health, say).
const BACKEND: TrackId = TrackId(1);
const INSTANCE: &str = "VI_1";

struct Args {
    interface: String,
    vrid: Vrid,
    priority: Priority,
    alt_priority: Priority,
    vips: Vec<VirtualAddress>,
    interval: Centisecs,
    version: Version,
    track_weight: i32,
    demo_after: Option<Duration>,
}

fn parse_priority(s: &str) -> Result<Priority> {
    let p: u8 = s.parse().with_context(|| format!("priority {s:?}"))?;
    Priority::configured(p).with_context(|| format!("priority {p} is not 1..=255"))
}

fn parse_vip(s: &str) -> Result<VirtualAddress> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().with_context(|| format!("address {addr:?}"))?;
    let mut vip = VirtualAddress::host(addr);
    if let Some(len) = len {
        vip.prefix_len = len
            .parse()
            .with_context(|| format!("prefix length {len:?}"))?;
    }
    Ok(vip)
}

fn parse_args() -> Result<Args> {
    let mut interface = None;
    let mut args = Args {
        interface: String::new(),
        vrid: Vrid::new(51).context("vrid 51")?,
        priority: Priority::DEFAULT,
        alt_priority: Priority::new(50),
        vips: Vec::new(),
        interval: Centisecs::ONE_SECOND,
        version: Version::V3,
        track_weight: -60,
        demo_after: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match flag.as_str() {
            "--interface" => interface = Some(value()?),
            "--vrid" => {
                let v = value()?;
                let n: u8 = v.parse().with_context(|| format!("vrid {v:?}"))?;
                args.vrid = Vrid::new(n).context("vrid 0 is not valid; use 1..=255")?;
            }
            "--priority" => args.priority = parse_priority(&value()?)?,
            "--alt-priority" => args.alt_priority = parse_priority(&value()?)?,
            "--vip" => args.vips.push(parse_vip(&value()?)?),
            "--interval-ms" => {
                let v = value()?;
                let ms: u32 = v.parse().with_context(|| format!("interval {v:?}"))?;
                if ms == 0 || !ms.is_multiple_of(10) || ms / 10 > u32::from(u16::MAX) {
                    bail!("--interval-ms {ms}: use a non-zero multiple of 10");
                }
                args.interval = Centisecs::new(u16::try_from(ms / 10)?);
            }
            "--version" => {
                args.version = match value()?.as_str() {
                    "2" => Version::V2,
                    "3" => Version::V3,
                    other => bail!("--version {other:?}: use 2 or 3"),
                }
            }
            "--track-weight" => {
                let v = value()?;
                args.track_weight = v.parse().with_context(|| format!("weight {v:?}"))?;
                if !(-253..=253).contains(&args.track_weight) {
                    bail!("--track-weight {}: use -253..=253", args.track_weight);
                }
            }
            "--demo-after" => {
                let v = value()?;
                let secs: f64 = v.parse().with_context(|| format!("seconds {v:?}"))?;
                args.demo_after = Some(
                    Duration::try_from_secs_f64(secs)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .with_context(|| format!("--demo-after {v}: use a positive number"))?,
                );
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    args.interface = interface.with_context(|| format!("--interface is required\n\n{USAGE}"))?;
    Ok(args)
}

/// The configuration a service would build from its own settings.
fn instance_spec(args: &Args) -> InstanceSpec {
    // The unspecified primary address makes the driver advertise from the
    // interface's primary IPv4 address, or its link-local IPv6 address.
    let family_any: IpAddr = match args.vips.first().map(|v| v.addr) {
        Some(IpAddr::V6(_)) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    let config = InstanceConfig::new(args.vrid, args.version, family_any)
        .with_priority(args.priority)
        .with_interval(args.interval);
    let mut spec = InstanceSpec::new(INSTANCE, args.interface.clone(), config);
    spec.vips = args.vips.iter().map(|a| Vip::new(*a)).collect();
    // Up at start; the service reports changes with set_track.
    spec.tracks
        .push((BACKEND, TrackConfig::weight(args.track_weight), true));
    spec
}

fn print_event(start: Instant, e: &StateEvent) {
    println!(
        "[{:>8.3}s] {} (vrid {}): {} -> {} ({:?}), priority {}",
        start.elapsed().as_secs_f64(),
        e.instance,
        e.vrid,
        e.from,
        e.to,
        e.reason,
        e.priority
    );
}

fn print_status(start: Instant, what: &str, snapshot: &Snapshot) {
    for i in &snapshot.instances {
        println!(
            "[{:>8.3}s] {what}: {} on {} is {} at priority {}, master {}, {} adverts sent, {} received, {} transitions",
            start.elapsed().as_secs_f64(),
            i.name,
            i.interface,
            i.state,
            i.priority,
            i.master
                .map_or_else(|| "unknown".to_owned(), |m| m.to_string()),
            i.stats.sent_advertisements,
            i.stats.rcvd_advertisements,
            i.stats.transitions,
        );
    }
}

/// What the service can change at run time.
struct Knobs {
    priority: Priority,
    alt_priority: Priority,
    using_alt: bool,
    backend_up: bool,
}

impl Knobs {
    async fn switch_priority(&mut self, handle: &VrrpHandle, start: Instant) -> Result<()> {
        self.using_alt = !self.using_alt;
        let p = if self.using_alt {
            self.alt_priority
        } else {
            self.priority
        };
        println!(
            "[{:>8.3}s] service: base priority -> {p}",
            start.elapsed().as_secs_f64()
        );
        handle
            .set_priority(INSTANCE, p)
            .await
            .context("set_priority")
    }

    async fn flip_backend(&mut self, handle: &VrrpHandle, start: Instant) -> Result<()> {
        self.backend_up = !self.backend_up;
        println!(
            "[{:>8.3}s] service: tracked object {} -> {}",
            start.elapsed().as_secs_f64(),
            BACKEND.0,
            if self.backend_up { "up" } else { "down" }
        );
        handle
            .set_track(BACKEND, self.backend_up)
            .await
            .context("set_track")
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let start = Instant::now();
    let spec = instance_spec(&args);
    println!(
        "starting {} vrid {} on {} (VRRPv{}, priority {}, interval {}, tracked object {} weight {}), pid {}",
        spec.name,
        args.vrid,
        args.interface,
        args.version.number(),
        args.priority,
        args.interval,
        BACKEND.0,
        args.track_weight,
        std::process::id()
    );
    let handle = spawn(DriverConfig {
        instances: vec![spec],
        sync_groups: vec![],
        ..DriverConfig::default()
    })
    .await
    .context("starting the VRRP driver (root, in a network namespace, existing interface?)")?;
    let mut events = handle.subscribe_from_start();
    // The watch closes when the driver task ends on its own (an error).
    let mut status = handle.watch();

    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut sigusr1 = signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?;
    let mut sigusr2 = signal(SignalKind::user_defined2()).context("SIGUSR2 handler")?;

    let mut knobs = Knobs {
        priority: args.priority,
        alt_priority: args.alt_priority,
        using_alt: false,
        backend_up: true,
    };
    // The --demo-after script: (when, step).
    let mut demo: Vec<(Duration, u8)> = match args.demo_after {
        Some(d) => vec![(d, 0), (d * 2, 1), (d * 3, 2)],
        None => Vec::new(),
    };
    demo.reverse();
    let mut report = tokio::time::interval(Duration::from_secs(10));
    report.tick().await;

    let failed = loop {
        let next_demo = demo
            .last()
            .map(|(at, _)| tokio::time::Instant::from_std(start + *at));
        tokio::select! {
            _ = sigint.recv() => break None,
            _ = sigterm.recv() => break None,
            _ = sigusr1.recv() => knobs.flip_backend(&handle, start).await?,
            _ = sigusr2.recv() => knobs.switch_priority(&handle, start).await?,
            () = async {
                match next_demo {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                match demo.pop().map(|(_, step)| step) {
                    Some(0 | 1) => knobs.flip_backend(&handle, start).await?,
                    Some(_) => knobs.switch_priority(&handle, start).await?,
                    None => {}
                }
            }
            event = events.recv() => match event {
                Ok(e) => print_event(start, &e),
                Err(RecvError::Lagged(n)) => eprintln!("missed {n} state events"),
                Err(RecvError::Closed) => break Some("event stream closed"),
            },
            changed = status.changed() => {
                if changed.is_err() {
                    break Some("driver stopped");
                }
            }
            _ = report.tick() => print_status(start, "status", &handle.snapshot()),
        }
    };
    if let Some(why) = failed {
        // The task's own error says what went wrong.
        handle.wait().await.context(why)?;
        bail!("{why}");
    }
    println!(
        "[{:>8.3}s] stopping: priority 0 if master, virtual addresses removed",
        start.elapsed().as_secs_f64()
    );
    let last = handle.watch();
    // Drain the shutdown transitions while the driver stops.
    let shutdown = handle.shutdown();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            result = &mut shutdown => {
                result.context("graceful shutdown")?;
                break;
            }
            event = events.recv() => match event {
                Ok(e) => print_event(start, &e),
                Err(RecvError::Lagged(n)) => eprintln!("missed {n} state events"),
                Err(RecvError::Closed) => {
                    (&mut shutdown).await.context("graceful shutdown")?;
                    break;
                }
            },
        }
    }
    while let Ok(e) = events.try_recv() {
        print_event(start, &e);
    }
    print_status(start, "final", &last.borrow());
    Ok(())
}
