//! Embedding VRRP failover in a tokio service, with `vrrp_net::driver`.
//!
//! The service holds a virtual address while its backend answers: a TCP
//! health check on the backend takes 60 off its priority while it fails,
//! so a peer with a priority in between takes the address over. Stopping
//! the service (Ctrl-C, SIGTERM) hands the address over at once
//! (priority 0). Every transition is printed and, when one is given, a
//! notify script is run with keepalived's arguments (`INSTANCE VI_1
//! MASTER 150`); `RUST_LOG=vrrp_net=debug` shows the driver's logs.
//!
//! As root, on two routers of a LAN (or two network namespaces):
//!
//! ```sh
//! embed_failover eth0 150 192.0.2.100/24 192.0.2.1:8080 /usr/local/bin/on-change  # router A
//! embed_failover eth0 100 192.0.2.100/24 192.0.2.2:8080   # router B
//! ```
//!
//! `tests/embed_failover.rs` runs two of them on a namespace LAN.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use healthcheck::{CheckSpec, Probe, Runner, RunnerConfig, TcpCheck, Timing};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use vrrp_core::{Centisecs, InstanceConfig, Priority, TrackConfig, TrackId, VirtualAddress, Vrid};
use vrrp_keepalived::{Command, NotifyScripts, attach};
use vrrp_net::driver::{DriverConfig, InstanceSpec, VrrpHandle, spawn_until};

/// What the service is configured with.
pub struct Settings {
    pub interface: String,
    pub vrid: Vrid,
    pub priority: Priority,
    pub vip: VirtualAddress,
    pub advert_interval: Centisecs,
    /// The backend whose health moves the priority.
    pub backend: SocketAddr,
    /// A keepalived-style notify script (`notify`), if any.
    pub notify: Option<String>,
}

/// The tracked object that stands for the backend's health.
const BACKEND: TrackId = TrackId(1);

/// The running service.
pub struct Service {
    /// VRRP.
    pub handle: VrrpHandle,
    /// Runs the notify script; ends once VRRP has stopped and every call
    /// queued until then (the last, STOP, among them) has run.
    notify: Option<JoinHandle<()>>,
}

/// Starts VRRP, the health check and the notify script; all stop when
/// `stop` completes.
pub async fn start(
    s: &Settings,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Service> {
    let config = InstanceConfig::v3(s.vrid)
        .priority(s.priority)
        .advert_interval(s.advert_interval)
        .virtual_address(s.vip)
        .build()?;
    let spec = InstanceSpec::new("VI_1", &s.interface, config);
    let spec = spec.track(BACKEND, TrackConfig::weight(-60), true);
    let handle = spawn_until(DriverConfig::new([spec]), stop)
        .await
        .context("starting VRRP (as root, on an existing interface?)")?;

    // The backend every 200 ms (200 ms timeout, no retry); two failures in
    // a row mark it down, one success up.
    let runner = Runner::spawn(RunnerConfig::default(), handle.cancellation_token());
    let mut timing = Timing::every(Duration::from_millis(200));
    (timing.timeout, timing.retry, timing.fall) = (Duration::from_millis(200), 0, 2);
    let probe = Probe::Tcp(TcpCheck::new(s.backend));
    let check = CheckSpec {
        name: "backend".into(),
        probe,
        timing,
    };
    attach::track_check(&runner.handle(), check, &handle, BACKEND)?;

    // keepalived's `notify`: the script gets `INSTANCE VI_1 MASTER 150`...
    let notify = s.notify.as_ref().map(|script| {
        let scripts = NotifyScripts {
            generic: Some(Command::new([script])),
            ..Default::default()
        };
        attach::notify_scripts(&handle, [("VI_1".into(), scripts)], Duration::from_secs(10))
    });
    Ok(Service { handle, notify })
}

/// Prints every transition until the driver stops; waits for the notify
/// calls queued until then (a process that exits first loses them); then
/// says how VRRP ended.
pub async fn report(service: Service) -> Result<()> {
    let Service { handle, notify } = service;
    let mut events = handle.subscribe_from_start();
    loop {
        match events.recv().await {
            Ok(e) => println!(
                "{}: {} -> {} ({:?}) at priority {}",
                e.instance, e.from, e.to, e.reason, e.priority
            ),
            Err(RecvError::Lagged(n)) => eprintln!("{n} transitions missed"),
            Err(RecvError::Closed) => break,
        }
    }
    let ended = handle.wait().await;
    if let Some(notify) = notify {
        notify.await.context("the notify script's queue")?;
    }
    ended.context("VRRP stopped")
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let mut arg = |what: &str| {
        let usage =
            "usage: embed_failover INTERFACE PRIORITY VIP[/LEN] BACKEND_IP:PORT [NOTIFY_SCRIPT]";
        args.next()
            .with_context(|| format!("{usage} ({what} missing)"))
    };
    let settings = Settings {
        interface: arg("INTERFACE")?,
        vrid: Vrid::new(51).context("VRID")?,
        priority: arg("PRIORITY")?.parse()?,
        vip: arg("VIP")?.parse()?,
        advert_interval: Centisecs::ONE_SECOND,
        backend: arg("BACKEND")?.parse()?,
        notify: arg("NOTIFY_SCRIPT").ok(),
    };
    let mut sigterm = signal(SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let service = start(&settings, stop).await?;
    report(service).await
}
