//! Proves the tokio runner: transitions on the broadcast stream, current
//! state on the watches, timeouts of hanging probes, removal, a shutdown
//! that leaves no attempt behind, identical checks run once for all their
//! users, the bound on attempts in flight, a panicking probe counted as a
//! failure, and an ended runner seen by its supervisor. Custom probes under
//! tokio's paused clock keep it deterministic; one test runs 200 real HTTP
//! checks on loopback; attempt durations by kind and the scheduling lag in
//! fixed buckets outlive the removal of their checks. On a multi-thread
//! runtime, where the scheduler has a thread of its own, real checks, a
//! panicking probe, a timed-out attempt and shutdown are proven again, and
//! attempts stay on that thread while it keeps up and overflow to the
//! workers when it does not.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use healthcheck::{
    CheckSpec, CustomProbe, DownReason, Health, HttpCheck, Probe, ProbeFuture, ProbeSuccess,
    Runner, RunnerConfig, TcpCheck, Timing,
};
use tokio_util::sync::CancellationToken;

/// Up while `healthy` is set; counts its attempts.
#[derive(Debug, Default)]
struct Switch {
    healthy: AtomicBool,
    attempts: AtomicUsize,
}

impl CustomProbe for Switch {
    fn probe(&self, _serial: u64) -> ProbeFuture<'_> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let healthy = self.healthy.load(Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if healthy {
                Ok(ProbeSuccess::default())
            } else {
                Err(DownReason::Custom("switched off".to_owned()))
            }
        })
    }
}

/// Never answers; records that its future was dropped.
#[derive(Debug, Default)]
struct Hang {
    started: AtomicUsize,
    dropped: Arc<AtomicUsize>,
}

struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CustomProbe for Hang {
    fn probe(&self, _serial: u64) -> ProbeFuture<'_> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let flag = DropFlag(Arc::clone(&self.dropped));
        Box::pin(async move {
            let _flag = flag;
            std::future::pending().await
        })
    }
}

fn timing(initial: Health) -> Timing {
    let mut t = Timing::every(Duration::from_secs(1));
    t.timeout = Duration::from_millis(200);
    t.retry = 1;
    t.delay_before_retry = Duration::from_millis(100);
    t.rise = 2;
    t.fall = 1;
    t.initial = initial;
    t
}

#[tokio::test(start_paused = true)]
async fn transitions_stream_and_current_state() {
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let mut events = runner.subscribe();
    let switches: Vec<Arc<Switch>> = (0..3).map(|_| Arc::new(Switch::default())).collect();
    let mut ids = Vec::new();
    for (n, switch) in switches.iter().enumerate() {
        switch.healthy.store(true, Ordering::SeqCst);
        let probe: Arc<dyn CustomProbe> = switch.clone();
        ids.push(
            runner
                .add(CheckSpec {
                    name: format!("switch{n}"),
                    probe: Probe::Custom(probe),
                    timing: timing(Health::Down),
                })
                .expect("valid"),
        );
    }
    assert_eq!(runner.name(ids[1]).as_deref(), Some("switch1"));
    let mut watch = runner.watch(ids[0]).expect("watch");
    assert_eq!(
        watch.borrow().health,
        Health::Down,
        "initial state visible at once"
    );

    // rise 2: up after the second good round, within warmup + delay_loop.
    let start = tokio::time::Instant::now();
    let mut up = Vec::new();
    for _ in 0..3 {
        let t = events.recv().await.expect("transition");
        assert_eq!(
            (t.previous, t.health, t.reason),
            (Health::Down, Health::Up, None)
        );
        up.push(t.check);
    }
    up.sort();
    assert_eq!(up, ids);
    assert!(
        start.elapsed() < Duration::from_millis(2300),
        "{:?}",
        start.elapsed()
    );
    watch.changed().await.expect("watch updated");
    assert_eq!(watch.borrow().health, Health::Up);
    assert!(
        switches
            .iter()
            .all(|s| s.attempts.load(Ordering::SeqCst) == 2)
    );

    // One switch off: down after one failed round (attempt + one retry).
    switches[1].healthy.store(false, Ordering::SeqCst);
    let down = events.recv().await.expect("transition");
    assert_eq!((down.check, down.health), (ids[1], Health::Down));
    assert_eq!(
        down.reason,
        Some(DownReason::Custom("switched off".to_owned()))
    );
    assert_eq!(
        switches[1].attempts.load(Ordering::SeqCst),
        4,
        "probe + retry"
    );
    let snapshot = runner.snapshot();
    let healths: Vec<Health> = snapshot.iter().map(|(_, s)| s.health).collect();
    assert_eq!(healths, [Health::Up, Health::Down, Health::Up]);
    assert_eq!(snapshot[1].1.stats.failed_rounds, 1);

    // Removing a check closes its watch and stops its probes.
    let mut removed = runner.watch(ids[2]).expect("watch");
    assert!(runner.remove(ids[2]));
    assert!(removed.changed().await.is_err(), "watch closed");
    let attempts = switches[2].attempts.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(switches[2].attempts.load(Ordering::SeqCst), attempts);
    assert!(
        switches[0].attempts.load(Ordering::SeqCst) >= 6,
        "others keep running"
    );
    runner.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn hanging_probe_times_out_and_shutdown_drops_it() {
    let cancel = CancellationToken::new();
    let runner = Runner::spawn(RunnerConfig::default(), cancel.clone());
    let mut events = runner.subscribe();
    let hang = Arc::new(Hang::default());
    let probe: Arc<dyn CustomProbe> = hang.clone();
    let mut t = timing(Health::Up);
    t.retry = 0;
    let id = runner
        .add(CheckSpec {
            name: "hang".to_owned(),
            probe: Probe::Custom(probe),
            timing: t,
        })
        .expect("valid");
    let down = events.recv().await.expect("transition");
    assert_eq!((down.check, down.health), (id, Health::Down));
    assert_eq!(
        down.reason,
        Some(DownReason::Timeout(Duration::from_millis(200)))
    );
    assert_eq!(
        hang.started.load(Ordering::SeqCst),
        hang.dropped.load(Ordering::SeqCst)
    );

    // Let the next attempt start and hang, then shut down: it is dropped.
    // It is due 1 s ± 50 ms after the first was, so between 750 and 850 ms
    // after the first timed out, and times out 200 ms later.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(hang.started.load(Ordering::SeqCst), 2);
    assert_eq!(
        hang.dropped.load(Ordering::SeqCst),
        1,
        "second attempt in flight"
    );
    cancel.cancel();
    runner.shutdown().await;
    assert_eq!(
        hang.dropped.load(Ordering::SeqCst),
        2,
        "no attempt outlives the runner"
    );
    assert!(events.recv().await.is_err(), "stream ends with the runner");
    assert!(matches!(
        runner_after_shutdown_add().await,
        Err(healthcheck::ConfigError::RunnerStopped)
    ));
}

/// On a multi-thread runtime (the scheduler on its own thread): a hanging
/// attempt is dropped at its timeout, and the runner's shutdown waits until
/// the one in flight is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_attempt_on_a_multi_thread_runtime_is_dropped_and_none_outlives_shutdown() {
    let cancel = CancellationToken::new();
    let runner = Runner::spawn(RunnerConfig::default(), cancel.clone());
    let mut events = runner.subscribe();
    let hang = Arc::new(Hang::default());
    let probe: Arc<dyn CustomProbe> = hang.clone();
    let mut t = timing(Health::Up);
    t.warmup = Duration::ZERO;
    t.retry = 0;
    t.delay_loop = Duration::from_millis(400);
    t.jitter = Duration::ZERO;
    let id = runner
        .add(CheckSpec {
            name: "hang".to_owned(),
            probe: Probe::Custom(probe),
            timing: t,
        })
        .expect("valid");
    let down = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("times out within 200 ms")
        .expect("transition");
    assert_eq!((down.check, down.health), (id, Health::Down));
    assert_eq!(
        down.reason,
        Some(DownReason::Timeout(Duration::from_millis(200)))
    );
    // Dropped on the scheduler's thread: soon, seen from here.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hang.dropped.load(Ordering::SeqCst) < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed-out attempt never dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The second round is due 400 ms after the first was: let it start and
    // hang, then shut down.
    while hang.started.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second attempt");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(hang.dropped.load(Ordering::SeqCst), 1, "second in flight");
    cancel.cancel();
    runner.shutdown().await;
    assert_eq!(
        hang.dropped.load(Ordering::SeqCst),
        2,
        "no attempt outlives the runner"
    );
}

/// Blocks its thread for `hold` when polled (a probe that does real work,
/// such as a digest); records the name of every thread it ran on.
#[derive(Debug)]
struct Busy {
    hold: Duration,
    threads: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl CustomProbe for Busy {
    fn probe(&self, _serial: u64) -> ProbeFuture<'_> {
        Box::pin(async move {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            self.threads.lock().expect("lock").insert(name);
            std::thread::sleep(self.hold);
            Ok(ProbeSuccess::default())
        })
    }
}

/// Adds `count` [`Busy`] checks every 10 ms sharing one record of threads;
/// returns it once the checks ran for `run`.
async fn threads_of_busy_checks(
    count: usize,
    hold: Duration,
    run: Duration,
) -> std::collections::BTreeSet<String> {
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let threads = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let mut t = timing(Health::Up);
    t.delay_loop = Duration::from_millis(10);
    t.warmup = Duration::ZERO;
    t.timeout = Duration::from_secs(5);
    for n in 0..count {
        let probe: Arc<dyn CustomProbe> = Arc::new(Busy {
            hold,
            threads: Arc::clone(&threads),
        });
        runner
            .add(CheckSpec {
                name: format!("busy{n}"),
                probe: Probe::Custom(probe),
                timing: t.clone(),
            })
            .expect("valid");
    }
    tokio::time::sleep(run).await;
    runner.shutdown().await;
    let seen = threads.lock().expect("lock");
    seen.clone()
}

/// On a multi-thread runtime, a few cheap checks run on the scheduler's own
/// thread: no task, no cross-thread wake-up per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheap_checks_stay_on_the_scheduler_thread() {
    let threads = threads_of_busy_checks(5, Duration::ZERO, Duration::from_millis(300)).await;
    assert_eq!(
        threads.into_iter().collect::<Vec<_>>(),
        vec!["healthcheck".to_owned()]
    );
}

/// More work than one thread can do (40 checks every 10 ms, each holding
/// its thread 2 ms: 8 threads' worth): the scheduler's passes stop at their
/// deadline and new attempts overflow to the runtime's workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_one_thread_cannot_keep_up_with_overflow_to_the_workers() {
    let threads =
        threads_of_busy_checks(40, Duration::from_millis(2), Duration::from_millis(500)).await;
    assert!(threads.contains("healthcheck"), "{threads:?}");
    assert!(
        threads.iter().any(|name| name != "healthcheck"),
        "no attempt overflowed: {threads:?}"
    );
}

async fn runner_after_shutdown_add() -> Result<healthcheck::CheckId, healthcheck::ConfigError> {
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let handle = runner.handle();
    runner.shutdown().await;
    handle.add(CheckSpec {
        name: "late".to_owned(),
        probe: Probe::Custom(Arc::new(Switch::default())),
        timing: timing(Health::Up),
    })
}

#[tokio::test]
async fn two_hundred_real_http_checks_come_up_then_go_down() {
    two_hundred_real_http_checks().await;
}

/// The same on a multi-thread runtime, where the scheduler has a thread of
/// its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_real_http_checks_on_a_multi_thread_runtime() {
    two_hundred_real_http_checks().await;
}

async fn two_hundred_real_http_checks() {
    let server = support::http_server().await;
    // The checks are identical: without sharing, each runs on its own.
    let config = RunnerConfig {
        share_identical_checks: false,
        ..RunnerConfig::default()
    };
    let runner = Runner::spawn(config, CancellationToken::new());
    let mut events = runner.subscribe();
    let mut t = Timing::every(Duration::from_millis(200));
    t.initial = Health::Down;
    t.timeout = Duration::from_secs(2);
    t.retry = 0;
    let bad_path_checks = 20;
    for n in 0..200 {
        let mut check = HttpCheck::new(server);
        check.path = if n < bad_path_checks {
            "/status/500".into()
        } else {
            "/".into()
        };
        runner
            .add(CheckSpec {
                name: format!("web{n}"),
                probe: Probe::Http(check),
                timing: t.clone(),
            })
            .expect("valid");
    }
    let mut ups = 0;
    while ups < 200 - bad_path_checks {
        let transition = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("transitions keep coming")
            .expect("no lag with 200 checks");
        assert_eq!(transition.health, Health::Up);
        ups += 1;
    }
    // Every check has run at least once 200 ms (the warmup) after the start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snapshot = runner.snapshot();
    let down: Vec<_> = snapshot
        .iter()
        .filter(|(_, s)| s.health == Health::Down)
        .collect();
    assert_eq!(down.len(), bad_path_checks);
    assert!(
        down.iter()
            .all(|(_, s)| s.last_reason == Some(DownReason::HttpStatus(500)))
    );
    runner.shutdown().await;
}

fn spec(name: &str, probe: &Arc<Switch>, timing: Timing) -> CheckSpec {
    let probe: Arc<dyn CustomProbe> = probe.clone();
    CheckSpec {
        name: name.to_owned(),
        probe: Probe::Custom(probe),
        timing,
    }
}

#[tokio::test(start_paused = true)]
async fn identical_checks_run_once_and_feed_every_user() {
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let mut events = runner.subscribe();
    let switch = Arc::new(Switch::default());
    switch.healthy.store(true, Ordering::SeqCst);
    let mut t = timing(Health::Down);
    t.rise = 1;
    // Three virtual servers use the same real server with the same check.
    let users: Vec<_> = (0..3)
        .map(|n| {
            runner
                .add(spec(&format!("vs{n}"), &switch, t.clone()))
                .expect("valid")
        })
        .collect();
    let mut up = Vec::new();
    for _ in 0..3 {
        let event = events.recv().await.expect("transition");
        assert_eq!(event.health, Health::Up);
        up.push(event.check);
    }
    up.sort();
    assert_eq!(up, users, "every user gets its own transition");
    assert_eq!(
        switch.attempts.load(Ordering::SeqCst),
        1,
        "probed once for all"
    );
    let stats = runner.stats().await.expect("running");
    assert_eq!((stats.checks, stats.scheduled), (3, 1));

    // A fourth user joins a running check: it starts from the current state.
    let late = runner.add(spec("vs3", &switch, t.clone())).expect("valid");
    let watch = runner.watch(late).expect("watch");
    assert_eq!(
        watch.borrow().health,
        Health::Up,
        "joins as up, not as initial"
    );

    // Other timing: another check.
    let mut other = t.clone();
    other.delay_loop = Duration::from_millis(700);
    let separate = runner.add(spec("other", &switch, other)).expect("valid");
    assert_eq!(runner.stats().await.map(|s| s.scheduled), Some(2));

    // Down reaches every user of the shared check, once each.
    tokio::time::sleep(Duration::from_secs(3)).await;
    while events.try_recv().is_ok() {}
    switch.healthy.store(false, Ordering::SeqCst);
    let mut down = Vec::new();
    while down.len() < 5 {
        let event = events.recv().await.expect("transition");
        assert_eq!(event.health, Health::Down);
        down.push(event.check);
    }
    down.sort();
    let mut want = users.clone();
    want.extend([late, separate]);
    want.sort();
    assert_eq!(down, want);

    // Removing users keeps the check running until the last one goes.
    for id in &users {
        assert!(runner.remove(*id));
    }
    assert_eq!(
        runner.stats().await.map(|s| (s.checks, s.scheduled)),
        Some((2, 2))
    );
    let before = switch.attempts.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        switch.attempts.load(Ordering::SeqCst) > before,
        "still probed for vs3"
    );
    assert!(runner.remove(late));
    assert!(runner.remove(separate));
    assert_eq!(runner.stats().await.map(|s| s.scheduled), Some(0));
    let before = switch.attempts.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(switch.attempts.load(Ordering::SeqCst), before, "stopped");
    runner.shutdown().await;
}

#[tokio::test]
async fn equal_real_probes_share_and_sharing_can_be_turned_off() {
    let target = "127.0.0.1:9".parse().expect("addr");
    let tcp = |t: &Timing| CheckSpec {
        name: "rs".to_owned(),
        probe: Probe::Tcp(TcpCheck::new(target)),
        timing: t.clone(),
    };
    let t = timing(Health::Up);
    let shared = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    for _ in 0..4 {
        shared.add(tcp(&t)).expect("valid");
    }
    let mut bound = TcpCheck::new(target);
    bound.connect_timeout = Some(Duration::from_millis(50));
    shared
        .add(CheckSpec {
            name: "rs".to_owned(),
            probe: Probe::Tcp(bound),
            timing: t.clone(),
        })
        .expect("valid");
    assert_eq!(shared.stats().await.map(|s| s.scheduled), Some(2));
    shared.shutdown().await;

    let config = RunnerConfig {
        share_identical_checks: false,
        ..RunnerConfig::default()
    };
    let separate = Runner::spawn(config, CancellationToken::new());
    for _ in 0..4 {
        separate.add(tcp(&t)).expect("valid");
    }
    assert_eq!(separate.stats().await.map(|s| s.scheduled), Some(4));
    separate.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn attempts_in_flight_stay_under_the_bound() {
    let config = RunnerConfig {
        max_in_flight: Some(5),
        share_identical_checks: false,
        ..RunnerConfig::default()
    };
    let runner = Runner::spawn(config, CancellationToken::new());
    let hangs: Vec<Arc<Hang>> = (0..50).map(|_| Arc::new(Hang::default())).collect();
    let mut t = timing(Health::Up);
    t.retry = 0;
    t.warmup = Duration::ZERO;
    for (n, hang) in hangs.iter().enumerate() {
        let probe: Arc<dyn CustomProbe> = hang.clone();
        runner
            .add(CheckSpec {
                name: format!("hang{n}"),
                probe: Probe::Custom(probe),
                timing: t.clone(),
            })
            .expect("valid");
    }
    let mut peak = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let running: usize = hangs
            .iter()
            .map(|h| h.started.load(Ordering::SeqCst) - h.dropped.load(Ordering::SeqCst))
            .sum();
        peak = peak.max(running);
        let stats = runner.stats().await.expect("running");
        assert!(
            stats.in_flight <= 5 && running <= 5,
            "{stats:?} / {running}"
        );
        assert_eq!(stats.max_in_flight, 5);
    }
    assert_eq!(peak, 5);
    let stats = runner.stats().await.expect("running");
    // 10 waves of 5 attempts of 200 ms: the last wave waited 1.8 s.
    assert!(stats.lag.max() >= Duration::from_millis(1800), "{stats:?}");
    assert!(
        hangs.iter().all(|h| h.started.load(Ordering::SeqCst) >= 1),
        "nobody starves"
    );
    runner.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_held_watch_sees_every_attempt_and_an_unheld_one_costs_nothing() {
    // keepalived's vrrp_script judges every run itself (rise, fall, the
    // first result): a consumer holding the watch is woken by each attempt,
    // not only by changes of health.
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let switch = Arc::new(Switch::default());
    switch.healthy.store(true, Ordering::SeqCst);
    let mut t = timing(Health::Up);
    t.retry = 0;
    t.rise = 1;
    t.warmup = Duration::ZERO;
    let id = runner.add(spec("script", &switch, t)).expect("valid");
    let mut watch = runner.watch(id).expect("watch");
    for n in 1..=3u64 {
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("woken by the attempt")
            .expect("runner running");
        let status = watch.borrow_and_update().clone();
        assert_eq!((status.health, status.stats.successes), (Health::Up, n));
    }
    runner.shutdown().await;
}

/// Panics when probed.
#[derive(Debug)]
struct Boom;

impl CustomProbe for Boom {
    fn probe(&self, _serial: u64) -> ProbeFuture<'_> {
        Box::pin(async { panic!("probe bug") })
    }
}

#[tokio::test]
async fn a_panicking_probe_is_a_failure_and_a_supervisor_sees_the_runner_end() {
    a_panicking_probe().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_probe_on_a_multi_thread_runtime_is_a_failure() {
    a_panicking_probe().await;
}

async fn a_panicking_probe() {
    let cancel = CancellationToken::new();
    let runner = Runner::spawn(RunnerConfig::default(), cancel.clone());
    let mut events = runner.subscribe();
    let mut t = timing(Health::Up);
    t.warmup = Duration::ZERO;
    t.retry = 0;
    runner
        .add(CheckSpec {
            name: "boom".to_owned(),
            probe: Probe::Custom(Arc::new(Boom)),
            timing: t,
        })
        .expect("valid");
    let down = events.recv().await.expect("transition");
    assert_eq!(down.health, Health::Down);
    assert!(
        matches!(&down.reason, Some(DownReason::Internal(m)) if m.contains("probe bug")),
        "{:?}",
        down.reason
    );
    assert!(
        !runner.is_finished(),
        "a probe's panic does not stop the runner"
    );
    // Whoever cancels its token (not the supervisor) ends it: seen.
    cancel.cancel();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !runner.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "still running");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    runner.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn durations_by_kind_and_lag_survive_the_removal_of_their_checks() {
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let switch = Arc::new(Switch::default());
    switch.healthy.store(true, Ordering::SeqCst);
    let mut timing = Timing::every(Duration::from_millis(100));
    timing.warmup = Duration::ZERO;
    timing.jitter = Duration::ZERO;
    let id = runner
        .add(CheckSpec {
            name: "sw".into(),
            probe: Probe::Custom(switch.clone()),
            timing,
        })
        .expect("valid");
    assert_eq!(runner.kind(id), Some("custom"));
    tokio::time::sleep(Duration::from_millis(450)).await;
    let status = runner.watch(id).expect("watch").borrow().clone();
    assert!(status.last_run.is_some());
    let stats = runner.stats().await.expect("running");
    let custom = stats
        .durations_by_kind
        .get("custom")
        .copied()
        .expect("custom");
    let ran = u64::try_from(switch.attempts.load(Ordering::SeqCst)).unwrap_or(0);
    assert!(ran >= 4, "{ran} attempts");
    assert_eq!(custom.count(), status.durations.count());
    // Each attempt sleeps 5 ms of the paused clock: all in (2.5, 5] ms.
    assert_eq!(custom.counts[3], custom.count(), "{custom:?}");
    assert_eq!(stats.lag_buckets.count(), stats.attempts);
    assert!(runner.remove(id));
    let after = runner.stats().await.expect("running");
    let kept = after
        .durations_by_kind
        .get("custom")
        .copied()
        .expect("kept");
    assert!(kept.count() >= custom.count(), "{kept:?} < {custom:?}");
    runner.shutdown().await;
}
