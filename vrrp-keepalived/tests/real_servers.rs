//! Real-server health from real TCP checks into an IPVS table (the
//! in-memory one with the kernel's rules): a dead server leaves the table
//! and stays out across reloads, drift made behind our back is repaired and
//! counted by a reconcile, lost check results are caught up by a resync,
//! and `notify_down` runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthcheck::{CheckSpec, Probe, Runner, RunnerConfig, TcpCheck, Timing};
use lvs::{
    Destination, ForwardMethod, Ipvs, MemoryIpvs, RealServer, Scheduler, Service, ServiceKey,
    ShutdownMode, VirtualServer,
};
use tokio_util::sync::CancellationToken;
use vrrp_keepalived::{
    Command, Event, RealServerSpec, RealServers, ScriptQueues, VirtualServerSpec,
};

/// An in-memory table the test can look into while `RealServers` owns it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<MemoryIpvs>>);

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&mut self, $($arg: $ty),*) -> $ret {
            self.0.lock().map_err(|_| lvs::Error::Io(std::io::Error::other("poisoned")))?.$name($($arg),*)
        })*
    };
}

impl Ipvs for Shared {
    forward! {
        services() -> Result<Vec<lvs::Service>, lvs::Error>;
        destinations(service: &ServiceKey) -> Result<Vec<lvs::DestinationStatus>, lvs::Error>;
        add_service(service: &lvs::Service) -> Result<(), lvs::Error>;
        update_service(service: &lvs::Service) -> Result<(), lvs::Error>;
        delete_service(service: &ServiceKey) -> Result<(), lvs::Error>;
        add_destination(service: &ServiceKey, destination: &Destination) -> Result<(), lvs::Error>;
        update_destination(service: &ServiceKey, destination: &Destination) -> Result<(), lvs::Error>;
        delete_destination(service: &ServiceKey, destination: SocketAddr) -> Result<(), lvs::Error>;
    }
}

fn destinations(table: &Shared, key: &ServiceKey) -> Vec<SocketAddr> {
    let mut t = table.clone();
    let mut v: Vec<SocketAddr> = t
        .destinations(key)
        .map(|v| v.into_iter().map(|d| d.destination.addr).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn tcp_check(target: SocketAddr) -> CheckSpec {
    let mut timing = Timing::every(Duration::from_millis(50));
    timing.timeout = Duration::from_millis(300);
    timing.retry = 0;
    timing.warmup = Duration::ZERO;
    timing.jitter = Duration::ZERO;
    CheckSpec {
        name: format!("{target} tcp"),
        probe: Probe::Tcp(TcpCheck::new(target)),
        timing,
    }
}

fn spec(
    key: ServiceKey,
    servers: &[SocketAddr],
    notify_down: Option<Command>,
) -> Vec<VirtualServerSpec> {
    let mut vs = VirtualServer::new(Service::new(key, Scheduler::WRR));
    for s in servers {
        vs = vs.with_real_server(RealServer::new(Destination::new(
            *s,
            ForwardMethod::Masquerade,
        )));
    }
    vec![VirtualServerSpec {
        server: vs,
        real_servers: servers
            .iter()
            .map(|s| RealServerSpec {
                addr: *s,
                checks: vec![tcp_check(*s)],
                notify_up: None,
                notify_down: notify_down.clone(),
            })
            .collect(),
        quorum_up: None,
        quorum_down: None,
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_stays_out_across_reloads_and_drift_is_repaired() -> anyhow::Result<()> {
    let alive = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let a = alive.local_addr()?;
    // A port nobody listens on: bind, note, close.
    let b = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await?
        .local_addr()?;
    let third = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let c = third.local_addr()?;
    let key = ServiceKey::tcp("192.0.2.50:80".parse()?);
    let dir = std::env::temp_dir().join(format!("vk-rs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("down");
    let notify_down = Command::shell(format!("echo down >> {}", log.display()));

    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let mut transitions = runner.subscribe();
    let table = Shared::default();
    let scripts = ScriptQueues::new(Duration::from_secs(5));
    let config = spec(key, &[a, b], Some(notify_down.clone()));
    let mut rs = RealServers::start(
        &config,
        runner.handle(),
        Box::new(table.clone()),
        scripts.clone(),
    )?;
    assert_eq!(
        destinations(&table, &key),
        {
            let mut v = vec![a, b];
            v.sort();
            v
        },
        "up until checked (no alpha)"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while destinations(&table, &key) != vec![a] {
        let t = tokio::time::timeout_at(deadline, transitions.recv()).await??;
        rs.on_transition(&t)?;
    }
    let mut events = Vec::new();
    while let Some(e) = rs.poll_event() {
        events.push(e);
    }
    assert!(
        events.contains(&Event::RealServer {
            service: key,
            server: b,
            up: false
        }),
        "{events:?}"
    );

    // The same configuration again: nothing is written, b stays out.
    let report = rs.reload(&config)?;
    assert_eq!(report.writes(), 0, "{report:?}");
    assert_eq!(destinations(&table, &key), vec![a]);
    assert_eq!(rs.poll_event(), None, "no spurious up/down");

    // Someone deletes a by hand: the next reconcile puts it back and says so.
    table.clone().delete_destination(&key, a)?;
    let report = rs.reconcile()?;
    assert_eq!(report.repairs, 1);
    assert_eq!(destinations(&table, &key), vec![a]);
    assert_eq!(rs.stats().repairs, 1);

    // A reload adding c: c starts up (no alpha), b still out.
    let config = spec(key, &[a, b, c], Some(notify_down));
    rs.reload(&config)?;
    let mut want = vec![a, c];
    want.sort();
    assert_eq!(destinations(&table, &key), want);

    // Lost results: c dies while nobody listens to the runner; a resync
    // reads the checks' states.
    drop(third);
    let c_down = || {
        runner.snapshot().iter().any(|(id, status)| {
            runner.name(*id).as_deref() == Some(&format!("{c} tcp")) && !status.health.is_up()
        })
    };
    while !c_down() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline + Duration::from_secs(5),
            "c never failed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(destinations(&table, &key), want, "not fed yet");
    rs.resync()?;
    assert_eq!(destinations(&table, &key), vec![a]);

    scripts.finish(Duration::from_secs(5)).await;
    let downs = std::fs::read_to_string(&log)?;
    assert_eq!(
        downs.lines().count(),
        2,
        "notify_down for b, then c: {downs}"
    );
    rs.shutdown(ShutdownMode::Release)?;
    assert!(table.clone().services()?.is_empty(), "released on stop");
    runner.shutdown().await;
    drop(alive);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
