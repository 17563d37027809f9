//! `examples/embed_failover.rs`, as a user would run it, in two namespaces
//! of a test LAN (VRRPv3 at 100 ms): router A (priority 150) holds the
//! virtual address while its TCP backend answers; when the backend stops,
//! A's health check takes it to priority 90 and B (100) takes over within
//! 3 s; when the backend is back, A takes the address back; when A's
//! service stops, it leaves gracefully and B takes over within 250 ms of
//! A's last transition: Skew_Time (61 ms) after A's priority-0
//! advertisement, not Master_Down_Interval (361 ms). At every step the
//! address is on the master only.

#[path = "../examples/embed_failover.rs"]
#[allow(dead_code)] // its `main`
mod example;

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use tokio::sync::oneshot;
use vrrp_core::{Centisecs, Priority, Reason, State, Vrid};
use vrrp_net::driver::StateEvent;
use vrrp_net::testnet::{Lan, NsTask, Router};

const T: Duration = Duration::from_secs(10);
const VIP: &str = "192.0.2.100";
const BACKEND_PORT: u16 = 8080;

fn run_until_stopped(
    router: &Router,
    f: impl AsyncFnOnce(oneshot::Receiver<()>) -> Result<()> + Send + 'static,
) -> (oneshot::Sender<()>, NsTask<Result<()>>) {
    let (stop, stopped) = oneshot::channel();
    (stop, router.spawn(move || f(stopped)))
}

/// A TCP server on the router's address, as the service's backend.
struct Backend {
    stop: oneshot::Sender<()>,
    task: NsTask<Result<()>>,
}

impl Backend {
    fn start(router: &Router) -> Result<Backend> {
        let addr = SocketAddr::new(IpAddr::V4(router.ipv4()), BACKEND_PORT);
        let (ready, listening) = mpsc::channel();
        let (stop, task) = run_until_stopped(router, async move |stopped| {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let _ = ready.send(());
            tokio::select! {
                _ = stopped => {}
                () = async { while listener.accept().await.is_ok() {} } => {}
            }
            Ok(())
        });
        listening.recv_timeout(T).context("backend listening")?;
        Ok(Backend { stop, task })
    }

    /// Closes the listener: connections are refused.
    fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.join()?
    }
}

/// The example's service in a router's namespace.
struct Service {
    events: mpsc::Receiver<(Instant, StateEvent)>,
    stop: oneshot::Sender<()>,
    task: NsTask<Result<()>>,
}

impl Service {
    fn start(router: &Router, priority: u8, notify: Option<String>) -> Result<Service> {
        let settings = example::Settings {
            interface: router.ifname().into(),
            vrid: Vrid::new(51).context("vrid")?,
            priority: Priority::new(priority),
            vip: format!("{VIP}/24").parse()?,
            advert_interval: Centisecs::new(10),
            backend: SocketAddr::new(IpAddr::V4(router.ipv4()), BACKEND_PORT),
            notify,
        };
        let (tx, events) = mpsc::channel();
        let (stop, task) = run_until_stopped(router, async move |stopped| {
            let service = example::start(&settings, async move {
                let _ = stopped.await;
            })
            .await?;
            // What the test watches, from a clone of the handle.
            let mut watched = service.handle.subscribe();
            tokio::spawn(async move {
                while let Ok(e) = watched.recv().await {
                    let _ = tx.send((Instant::now(), e));
                }
            });
            example::report(service).await
        });
        Ok(Service { events, stop, task })
    }

    /// The next transition matching `want`, within [`T`].
    fn next(&self, want: impl Fn(&StateEvent) -> bool) -> Result<(Instant, StateEvent)> {
        let give_up = Instant::now() + T;
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            let (at, e) = self
                .events
                .recv_timeout(left)
                .context("no such transition")?;
            if want(&e) {
                return Ok((at, e));
            }
        }
    }

    /// Completes the stop future; returns what the service returned and
    /// the transitions it made meanwhile.
    fn stop(self) -> Result<Vec<(Instant, StateEvent)>> {
        let _ = self.stop.send(());
        self.task.join()??;
        Ok(self.events.try_iter().collect())
    }
}

/// Waits until the virtual address is on `holder` and not on `other`.
fn wait_vip_on(holder: &Router, other: &Router) -> Result<()> {
    let has = |r: &Router| -> Result<bool> {
        let out = r.addresses().map_err(|e| anyhow!("{e}"))?;
        Ok(out
            .split_whitespace()
            .any(|w| w.split('/').next() == Some(VIP)))
    };
    let give_up = Instant::now() + T;
    while !has(holder)? || has(other)? {
        if Instant::now() > give_up {
            bail!("{VIP} not on router {} alone", holder.number());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

#[test]
fn the_embedding_example_fails_over_on_a_failed_health_check_and_on_stop() -> Result<()> {
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let a_ip = IpAddr::V4(ra.ipv4());
    let b_ip = IpAddr::V4(rb.ipv4());
    let backend_a = Backend::start(ra)?;
    let backend_b = Backend::start(rb)?;
    // A's notify script logs keepalived's arguments, slowly: the service
    // must wait for the last call (STOP) before it ends.
    let dir = std::env::temp_dir().join(format!("embed-failover-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (script, log) = (dir.join("notify.sh"), dir.join("notify.log"));
    std::fs::write(
        &script,
        format!("#!/bin/sh\nsleep 0.3\necho \"$*\" >> {}\n", log.display()),
    )?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let a = Service::start(ra, 150, Some(script.display().to_string()))?;
    let b = Service::start(rb, 100, None)?;
    a.next(|e| e.to == State::Master)?;
    wait_vip_on(ra, rb)?;

    // A's backend stops answering.
    let failed = Instant::now();
    backend_a.stop()?;
    let (_, down) = a.next(|e| e.from == State::Master)?;
    let preempted = Reason::Preempted {
        by: b_ip,
        priority: Priority::new(100),
    };
    ensure!(
        down.to == State::Backup && down.reason == preempted && down.priority == Priority::new(90),
        "A steps down at 150 - 60: {down:?}"
    );
    let (took, _) = b.next(|e| e.to == State::Master)?;
    let after = took - failed;
    println!("health check failed: B master {after:?} later");
    ensure!(
        after < Duration::from_secs(3),
        "B took over {after:?} after the failure"
    );
    wait_vip_on(rb, ra)?;

    // The backend is back: A at 150 again takes the address back.
    let backend_a = Backend::start(ra)?;
    a.next(|e| e.to == State::Master)?;
    let (_, back) = b.next(|e| e.from == State::Master)?;
    ensure!(
        back.reason
            == Reason::Preempted {
                by: a_ip,
                priority: Priority::new(150)
            },
        "{back:?}"
    );
    wait_vip_on(ra, rb)?;

    // A's service stops: priority 0, address removed, B within Skew_Time.
    let left = a.stop()?;
    let (a_left, last) = left.last().cloned().context("A's last transition")?;
    ensure!(
        (last.from, last.to, last.reason) == (State::Master, State::Initialize, Reason::Shutdown),
        "{last:?}"
    );
    let (took, e) = b.next(|e| e.to == State::Master)?;
    ensure!(e.reason == Reason::MasterDown, "{e:?}");
    let gap = took.saturating_duration_since(a_left);
    println!("A stopped: B master {gap:?} after A's last transition");
    ensure!(
        gap < Duration::from_millis(250),
        "B took over {gap:?} after A left"
    );
    wait_vip_on(rb, ra)?;

    b.stop()?;
    backend_a.stop()?;
    backend_b.stop()?;
    // Every transition reached the notify script, in order, with
    // keepalived's arguments (the service waits for its queued scripts).
    let calls = std::fs::read_to_string(&log)?;
    let _ = std::fs::remove_dir_all(&dir);
    ensure!(
        calls
            == "INSTANCE VI_1 BACKUP 150\nINSTANCE VI_1 MASTER 150\nINSTANCE VI_1 BACKUP 90\n\
                INSTANCE VI_1 MASTER 150\nINSTANCE VI_1 STOP 150\n",
        "notify calls: {calls:?}"
    );
    Ok(())
}
