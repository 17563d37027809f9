//! Proves the sans-IO scheduling and up/down logic in simulated time: warmup
//! spread, an exact cadence with symmetric jitter, retries, rise/fall,
//! timeouts, stale results, weights and values, removal, idempotent
//! timeouts, the concurrency bound, wake-ups, lag statistics (also in fixed buckets), each attempt's duration and end in
//! its check's status, and durations
//! that would overflow an `Instant`. No clock, no socket, fixed seeds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use healthcheck::{
    CheckId, ConfigError, DownReason, Health, MAX_DURATION, Output, ProbeResult, ProbeSuccess,
    ProbeToken, Scheduler, Timing, Transition,
};

const MS: Duration = Duration::from_millis(1);

/// Steps a scheduler through virtual time. Probe attempts are answered by
/// `respond(check, attempt_number)` -> `Some((result, latency))`, or `None`
/// for an attempt that never answers.
struct Sim<F> {
    sched: Scheduler,
    start: Instant,
    now: Instant,
    respond: F,
    pending: Vec<(Instant, ProbeToken, ProbeResult)>,
    attempts: BTreeMap<CheckId, u32>,
    /// (check, started at, attempt-in-round)
    started: Vec<(CheckId, Duration, u32)>,
    transitions: Vec<Transition>,
    cancelled: Vec<ProbeToken>,
    /// Largest number of attempts started and not yet answered or cancelled.
    peak_in_flight: usize,
    /// The driver wakes this late after each deadline (a busy event loop).
    wake_late: Duration,
}

impl<F: FnMut(CheckId, u32) -> Option<(ProbeResult, Duration)>> Sim<F> {
    fn new(seed: u64, respond: F) -> Self {
        let start = Instant::now();
        Self {
            sched: Scheduler::new(seed),
            start,
            now: start,
            respond,
            pending: Vec::new(),
            attempts: BTreeMap::new(),
            started: Vec::new(),
            transitions: Vec::new(),
            cancelled: Vec::new(),
            peak_in_flight: 0,
            wake_late: Duration::ZERO,
        }
    }

    fn add(&mut self, id: u32, timing: Timing) {
        self.sched
            .add_check(CheckId::new(id), timing, self.now)
            .expect("valid timing");
    }

    fn drain(&mut self) {
        while let Some(output) = self.sched.poll_output() {
            match output {
                Output::StartProbe(req) => {
                    let check = req.token.check();
                    let n = self.attempts.entry(check).or_default();
                    *n += 1;
                    self.started
                        .push((check, self.now - self.start, req.attempt));
                    if let Some((result, latency)) = (self.respond)(check, *n) {
                        self.pending.push((self.now + latency, req.token, result));
                    }
                }
                Output::Transition(t) => self.transitions.push(t),
                Output::CancelProbe(token) => {
                    self.pending.retain(|p| p.1 != token);
                    self.cancelled.push(token);
                }
                other => panic!("unexpected output {other:?}"),
            }
        }
        self.peak_in_flight = self.peak_in_flight.max(self.sched.in_flight());
    }

    /// Runs until virtual time `until` (relative to start).
    fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        loop {
            self.drain();
            let next_result = self.pending.iter().map(|p| p.0).min();
            let next_timer = self.sched.poll_timeout().map(|t| t + self.wake_late);
            let next = match (next_result, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = next;
            // Results first, as a driver would see completed I/O first.
            let mut due: Vec<_> = Vec::new();
            self.pending.retain(|p| {
                if p.0 <= next {
                    due.push(p.clone());
                    false
                } else {
                    true
                }
            });
            for (at, token, result) in due {
                self.sched.handle_probe_result(token, result, at);
            }
            self.sched.handle_timeout(self.now);
        }
        self.now = end;
    }
}

fn ok() -> ProbeResult {
    Ok(ProbeSuccess::default())
}

fn refused() -> ProbeResult {
    Err(DownReason::ConnectionRefused)
}

fn timing(delay_loop_ms: u64) -> Timing {
    let mut t = Timing::every(Duration::from_millis(delay_loop_ms));
    t.timeout = 100 * MS;
    t.delay_before_retry = 20 * MS;
    t.warmup = Duration::ZERO;
    t.jitter = Duration::ZERO;
    t
}

#[test]
fn thousand_checks_are_spread_over_the_warmup() {
    let first_starts = |seed: u64| {
        let mut sim = Sim::new(seed, |_, _| Some((ok(), MS)));
        for id in 0..1000 {
            let mut t = Timing::every(Duration::from_secs(1));
            t.jitter = Duration::ZERO;
            sim.add(id, t);
        }
        sim.run_until(Duration::from_millis(999));
        let mut starts: Vec<Duration> = sim.started.iter().map(|s| s.1).collect();
        starts.sort();
        starts
    };
    let starts = first_starts(42);
    assert_eq!(
        starts.len(),
        1000,
        "each check starts once within the first second"
    );
    // Uniform spread: about 10 per 10 ms bucket; never a thundering herd.
    let mut buckets = [0_u32; 100];
    for s in &starts {
        buckets[(s.as_millis() / 10) as usize] += 1;
    }
    let max = buckets.iter().max().copied().unwrap_or(0);
    let min = buckets.iter().min().copied().unwrap_or(0);
    assert!(max <= 25, "busiest 10 ms bucket has {max} starts");
    assert!(min >= 1, "an empty 10 ms bucket means the spread is skewed");
    assert_eq!(first_starts(42), starts, "same seed, same schedule");
    assert_ne!(first_starts(43), starts, "another seed, another schedule");
}

#[test]
fn rounds_keep_the_cadence_with_symmetric_jitter() {
    let mut t = timing(1000);
    t.jitter = 100 * MS;
    // 5 ms of latency per attempt must not slow the cadence down.
    let mut sim = Sim::new(7, |_, _| Some((ok(), 5 * MS)));
    sim.add(1, t);
    sim.run_until(Duration::from_secs(200));
    let starts: Vec<Duration> = sim.started.iter().map(|s| s.1).collect();
    assert_eq!(starts[0], Duration::ZERO, "zero warmup starts at once");
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 190);
    for gap in &gaps {
        // A round is due delay_loop ± jitter/2 after the previous was due.
        assert!(*gap >= 950 * MS && *gap < 1050 * MS, "gap {gap:?}");
    }
    assert!(
        gaps.windows(2).any(|w| w[0] != w[1]),
        "jitter varies the gaps"
    );
    assert!(gaps.iter().any(|g| *g < 1000 * MS), "jitter goes both ways");
    // Jitter does not add up: after 200 rounds the schedule is within one
    // jitter of 200 × delay_loop (a one-sided jitter would be ~10 s late).
    let last = *starts.last().expect("started");
    let rounds = (starts.len() - 1) as u32;
    let drift = last.abs_diff(1000 * MS * rounds);
    assert!(drift < 1000 * MS, "drift {drift:?} after {rounds} rounds");
    assert!(
        sim.transitions.is_empty(),
        "initially up and always up: no transition"
    );
}

#[test]
fn retry_then_success_keeps_the_check_up() {
    let mut t = timing(1000);
    t.retry = 2;
    // Attempts 1 and 2 fail, 3 (second retry) succeeds, then all succeed.
    let mut sim = Sim::new(1, |_, n| Some((if n <= 2 { refused() } else { ok() }, MS)));
    sim.add(1, t);
    sim.run_until(Duration::from_millis(1500));
    let starts: Vec<(Duration, u32)> = sim.started.iter().map(|s| (s.1, s.2)).collect();
    assert_eq!(
        starts[..3],
        [(Duration::ZERO, 0), (21 * MS, 1), (42 * MS, 2)],
        "retries spaced by delay_before_retry after each failure"
    );
    assert_eq!(
        starts[3],
        (1000 * MS, 0),
        "next round delay_loop after the previous one was due"
    );
    assert!(sim.transitions.is_empty());
    let status = sim.sched.status(CheckId::new(1)).expect("exists");
    assert_eq!(status.stats.failures, 2);
    assert_eq!(status.stats.failed_rounds, 0);
}

#[test]
fn fall_counts_failed_rounds_not_attempts() {
    let mut t = timing(1000);
    t.retry = 1;
    t.fall = 2;
    let mut sim = Sim::new(1, |_, _| Some((refused(), MS)));
    sim.add(1, t);
    sim.run_until(Duration::from_millis(500));
    assert!(
        sim.transitions.is_empty(),
        "one failed round (2 attempts) is not enough"
    );
    sim.run_until(Duration::from_millis(1500));
    assert_eq!(sim.transitions.len(), 1);
    let down = &sim.transitions[0];
    assert_eq!((down.previous, down.health), (Health::Up, Health::Down));
    assert_eq!(down.reason, Some(DownReason::ConnectionRefused));
    assert_eq!(
        down.at - sim.start,
        1022 * MS,
        "second round's retry decided it"
    );
    assert_eq!(sim.started.len(), 4);
}

#[test]
fn rise_needs_consecutive_good_rounds() {
    let mut t = timing(100);
    t.initial = Health::Down;
    t.retry = 0;
    t.rise = 3;
    // Rounds: ok, fail, ok, ok, ok -> up at the fifth.
    let mut sim = Sim::new(1, |_, n| Some((if n == 2 { refused() } else { ok() }, MS)));
    sim.add(1, t);
    sim.run_until(Duration::from_millis(350));
    assert!(
        sim.transitions.is_empty(),
        "the failure reset the rise count"
    );
    sim.run_until(Duration::from_millis(500));
    assert_eq!(sim.transitions.len(), 1);
    let up = &sim.transitions[0];
    assert_eq!(
        (up.previous, up.health, up.reason.clone()),
        (Health::Down, Health::Up, None)
    );
    assert_eq!(up.at - sim.start, 401 * MS);
}

/// The health after each round of a check answering `results` in turn, one
/// round per 100 ms (no retry), keepalived's tracked-script counting.
fn healths(t: Timing, results: &'static [bool]) -> Vec<(bool, Health)> {
    let mut t = t;
    t.retry = 0;
    let mut sim = Sim::new(1, move |_, n| {
        let ok_now = results.get(n as usize - 1).copied().unwrap_or(true);
        Some((if ok_now { ok() } else { refused() }, MS))
    });
    sim.add(1, t);
    let mut seen = Vec::new();
    for round in 0..results.len() as u64 {
        sim.run_until(Duration::from_millis(100 * round + 50));
        let status = sim.sched.status(CheckId::new(1)).expect("check");
        seen.push((status.decided(), status.health));
    }
    seen
}

#[test]
fn first_round_decides_whatever_rise_and_fall_say() {
    let mut t = timing(100);
    t.rise = 3;
    t.fall = 3;
    t.first_round_decides = true;
    // keepalived's vrrp_script without init_fail: undecided (assumed up)
    // until the first result, which decides at once.
    let status = {
        let mut sim = Sim::new(1, |_, _| Some((ok(), MS)));
        sim.add(1, t.clone());
        sim.sched.status(CheckId::new(1)).expect("check").clone()
    };
    assert!(!status.decided(), "nothing ran yet");
    use Health::{Down, Up};
    assert_eq!(healths(t.clone(), &[false]), [(true, Down)]);
    // After a first success: three failures in a row to go down, then
    // three successes in a row to come back.
    assert_eq!(
        healths(
            t.clone(),
            &[
                true, false, false, true, false, false, false, true, true, false, true, true, true
            ]
        ),
        [
            (true, Up),
            (true, Up),
            (true, Up),
            (true, Up),
            (true, Up),
            (true, Up),
            (true, Down),
            (true, Down),
            (true, Down),
            (true, Down),
            (true, Down),
            (true, Down),
            (true, Up),
        ]
    );
    // Without the rule, a first failure is one of `fall`.
    t.first_round_decides = false;
    assert_eq!(healths(t, &[false]), [(true, Up)]);
}

#[test]
fn init_fail_starts_down_and_needs_rise_successes() {
    use Health::{Down, Up};
    let mut t = timing(100);
    t.rise = 2;
    t.fall = 1;
    t.initial = Down;
    assert_eq!(
        healths(t, &[false, true, true, false]),
        [(true, Down), (true, Down), (true, Up), (true, Down)]
    );
}

#[test]
fn silent_probe_times_out_and_late_result_is_ignored() {
    let mut t = timing(1000);
    t.retry = 0;
    let mut sim = Sim::new(1, |_, n| match n {
        // First attempt answers "ok" only after 300 ms, past the 100 ms timeout.
        1 => Some((ok(), 300 * MS)),
        _ => None,
    });
    sim.add(1, t);
    sim.run_until(Duration::from_millis(999));
    assert_eq!(
        sim.transitions.len(),
        1,
        "late ok must not bring it back up"
    );
    let down = &sim.transitions[0];
    assert_eq!(down.reason, Some(DownReason::Timeout(100 * MS)));
    assert_eq!(down.latency, 100 * MS);
    assert_eq!(down.at - sim.start, 100 * MS);
    let status = sim.sched.status(CheckId::new(1)).expect("exists");
    assert_eq!((status.health, status.stats.timeouts), (Health::Down, 1));
    // A never-answering attempt is abandoned on time too.
    sim.run_until(Duration::from_millis(1200));
    assert_eq!(
        sim.sched.status(CheckId::new(1)).map(|s| s.stats.timeouts),
        Some(2)
    );
}

#[test]
fn handle_timeout_early_or_twice_is_a_noop() {
    let mut sched = Scheduler::new(3);
    let start = Instant::now();
    let mut t = timing(1000);
    t.warmup = 500 * MS;
    sched.add_check(CheckId::new(9), t, start).expect("valid");
    let due = sched.poll_timeout().expect("scheduled");
    assert!(due >= start && due < start + 500 * MS);
    sched.handle_timeout(due - MS);
    assert_eq!(sched.poll_output(), None, "early timeout does nothing");
    assert_eq!(sched.poll_timeout(), Some(due));
    sched.handle_timeout(due);
    let Some(Output::StartProbe(req)) = sched.poll_output() else {
        panic!("due timeout starts a probe");
    };
    assert_eq!(sched.poll_output(), None);
    sched.handle_timeout(due);
    assert_eq!(sched.poll_output(), None, "repeated timeout does nothing");
    assert_eq!(
        sched.poll_timeout(),
        Some(due + 100 * MS),
        "probe deadline is next"
    );
    sched.handle_probe_result(req.token, ok(), due + 10 * MS);
    sched.handle_probe_result(req.token, refused(), due + 11 * MS);
    let status = sched.status(CheckId::new(9)).expect("exists");
    assert_eq!(
        (status.stats.successes, status.stats.failures),
        (1, 0),
        "duplicate ignored"
    );
}

#[test]
fn dynamic_weight_changes_are_transitions_only_while_up() {
    let mut t = timing(100);
    t.retry = 0;
    let weights = [Some(10), Some(10), Some(3), None];
    let mut sim = Sim::new(1, move |_, n| {
        let weight = weights.get(n as usize - 1).copied().flatten();
        let success = weight.map_or(ProbeSuccess::up(), ProbeSuccess::with_weight);
        Some((Ok(success), MS))
    });
    sim.add(1, t);
    sim.run_until(Duration::from_millis(350));
    let seen: Vec<(Health, Option<u32>)> = sim
        .transitions
        .iter()
        .map(|t| (t.health, t.weight))
        .collect();
    assert_eq!(
        seen,
        [
            (Health::Up, Some(10)),
            (Health::Up, Some(3)),
            (Health::Up, None)
        ]
    );
    assert!(sim.transitions.iter().all(|t| t.previous == Health::Up));
    assert_eq!(
        sim.sched
            .status(CheckId::new(1))
            .map(|s| s.stats.transitions),
        Some(0)
    );
}

#[test]
fn removed_check_drops_outputs_and_ignores_results() {
    let mut sched = Scheduler::new(5);
    let start = Instant::now();
    let mut t = timing(1000);
    t.retry = 0;
    sched
        .add_check(CheckId::new(1), t.clone(), start)
        .expect("valid");
    sched.add_check(CheckId::new(2), t, start).expect("valid");
    sched.handle_timeout(start);
    let mut tokens = Vec::new();
    while let Some(Output::StartProbe(req)) = sched.poll_output() {
        tokens.push(req.token);
    }
    assert_eq!(tokens.len(), 2);
    assert!(sched.remove_check(CheckId::new(1)));
    assert!(!sched.remove_check(CheckId::new(1)));
    assert_eq!(
        sched.poll_output(),
        Some(Output::CancelProbe(tokens[0])),
        "the removed check's running attempt is cancelled"
    );
    for token in &tokens {
        sched.handle_probe_result(*token, refused(), start + MS);
    }
    let Some(Output::Transition(t)) = sched.poll_output() else {
        panic!("check 2 still reports");
    };
    assert_eq!((t.check, t.health), (CheckId::new(2), Health::Down));
    assert_eq!(sched.poll_output(), None);
    assert_eq!(sched.len(), 1);
    assert_eq!(sched.check_ids().collect::<Vec<_>>(), [CheckId::new(2)]);
}

#[test]
fn invalid_timing_is_rejected() {
    let mut sched = Scheduler::new(0);
    let now = Instant::now();
    for (mutate, expected) in [
        (
            (|t: &mut Timing| t.delay_loop = Duration::ZERO) as fn(&mut Timing),
            "delay_loop",
        ),
        (|t: &mut Timing| t.timeout = Duration::ZERO, "timeout"),
        (|t: &mut Timing| t.rise = 0, "rise"),
        (|t: &mut Timing| t.fall = 0, "fall"),
        (
            |t: &mut Timing| t.timeout = MAX_DURATION + Duration::from_nanos(1),
            "timeout",
        ),
        (|t: &mut Timing| t.delay_loop = Duration::MAX, "delay_loop"),
        (
            |t: &mut Timing| t.delay_before_retry = Duration::from_secs(u64::MAX),
            "delay_before_retry",
        ),
        (|t: &mut Timing| t.warmup = Duration::MAX, "warmup"),
        (|t: &mut Timing| t.jitter = Duration::MAX, "jitter"),
    ] {
        let mut t = Timing::default();
        mutate(&mut t);
        match sched.add_check(CheckId::new(1), t, now) {
            Err(ConfigError::InvalidTiming(msg)) => assert!(msg.contains(expected), "{msg}"),
            Err(ConfigError::DurationTooLong { field, max, .. }) => {
                assert_eq!((field, max), (expected, MAX_DURATION));
            }
            other => panic!("expected InvalidTiming, got {other:?}"),
        }
    }
    assert!(sched.is_empty());
    assert_eq!(sched.poll_timeout(), None);
}

#[test]
fn ten_thousand_checks_run_at_exactly_the_configured_rate() {
    // Latency 0.3-20 ms, driver waking 1.5 ms late: the rate must not drop.
    let mut sim = Sim::new(11, |check, n| {
        let micros = 300 + (u64::from(check.get()) * 7919 + u64::from(n) * 104_729) % 19_700;
        Some((ok(), Duration::from_micros(micros)))
    });
    sim.wake_late = Duration::from_micros(1500);
    for id in 0..10_000 {
        sim.add(id, Timing::every(Duration::from_secs(1)));
    }
    sim.run_until(Duration::from_secs(31));
    let window = |from: u64, to: u64| {
        sim.started
            .iter()
            .filter(|s| s.1 >= Duration::from_secs(from) && s.1 < Duration::from_secs(to))
            .count()
    };
    let steady = window(1, 31) as f64 / 30.0;
    assert!(
        (steady - 10_000.0).abs() <= 10_000.0 * 0.001,
        "{steady} attempts/s for 10,000 checks at 1 s"
    );
    let lag = sim.sched.lag();
    assert_eq!(lag.count() as usize, sim.started.len());
    assert!(
        lag.quantile(0.99) <= Duration::from_micros(1500),
        "p99 lag {:?}: never later than the late wake-ups",
        lag.quantile(0.99)
    );
}

#[test]
fn lag_measures_late_wake_ups() {
    let mut sim = Sim::new(2, |_, _| Some((ok(), MS)));
    sim.wake_late = 3 * MS;
    sim.add(1, timing(100));
    sim.run_until(Duration::from_secs(2));
    let lag = sim.sched.lag();
    assert!(lag.count() >= 19, "{} attempts", lag.count());
    assert_eq!(lag.quantile(0.5), 3 * MS);
    assert_eq!(lag.max(), 3 * MS);
    // Late starts do not slow the cadence: one round per 100 ms.
    let starts: Vec<Duration> = sim.started.iter().map(|s| s.1).collect();
    assert_eq!(starts[..3], [3 * MS, 103 * MS, 203 * MS]);
    // The same samples in fixed buckets: all in (2.5 ms, 5 ms].
    let b = sim.sched.lag_buckets();
    assert_eq!(b.count(), lag.count());
    let i = healthcheck::BUCKET_BOUNDS_MICROS
        .iter()
        .position(|us| *us == 5_000)
        .expect("a 5 ms bound");
    assert_eq!(b.counts[i], b.count());
    assert_eq!(b.sum_micros, 3_000 * b.count());
}

#[test]
fn each_attempt_leaves_its_duration_and_end() {
    // 7 ms successes, then a refusal after 2 ms, then a silent attempt
    // that the 100 ms timeout ends.
    let mut t = timing(1000);
    t.retry = 0;
    t.fall = 5;
    let mut sim = Sim::new(4, |_, n| match n {
        1 | 2 => Some((ok(), 7 * MS)),
        3 => Some((refused(), 2 * MS)),
        _ => None,
    });
    sim.add(1, t);
    let status = |sim: &Sim<_>| sim.sched.status(CheckId::new(1)).expect("exists").clone();
    assert_eq!(status(&sim).last_run, None);
    sim.run_until(Duration::from_millis(1500));
    let s = status(&sim);
    assert_eq!(s.last_run.map(|at| at - sim.start), Some(1007 * MS));
    assert_eq!(s.last_latency, Some(7 * MS));
    assert_eq!((s.durations.count(), s.durations.sum_micros), (2, 14_000));
    sim.run_until(Duration::from_millis(3500));
    let s = status(&sim);
    assert_eq!(s.last_reason, Some(DownReason::Timeout(100 * MS)));
    assert_eq!(s.last_run.map(|at| at - sim.start), Some(3100 * MS));
    assert_eq!(s.failed_rounds, 2, "consecutive failures");
    assert_eq!(s.durations.count(), 4);
    assert_eq!(s.durations.sum_micros, 14_000 + 2_000 + 100_000);
}

#[test]
fn concurrency_bound_queues_attempts_in_order() {
    let mut sched = Scheduler::new(3);
    sched.set_max_in_flight(10);
    let mut sim = Sim::new(3, |_, _| None); // every attempt hangs until its timeout
    sim.sched = sched;
    for id in 0..100 {
        let mut t = timing(1000);
        t.retry = 0;
        sim.add(id, t);
    }
    sim.run_until(Duration::from_millis(999));
    assert_eq!(sim.peak_in_flight, 10, "never more than the bound");
    // 100 ms timeouts, 10 at a time: 10 waves of 10 within the first second.
    assert_eq!(sim.started.len(), 100);
    let starts: Vec<Duration> = sim.started.iter().map(|s| s.1).collect();
    for (i, start) in starts.iter().enumerate() {
        assert_eq!(*start, MS * 100 * (i as u32 / 10), "attempt {i}");
    }
    // FIFO: checks start in the order they fell due.
    let order: Vec<u32> = sim.started.iter().map(|s| s.0.get()).collect();
    assert_eq!(order, (0..100).collect::<Vec<_>>());
    // The wait is lag, and is counted.
    assert_eq!(sim.sched.lag().max(), 900 * MS);
    let queued: u64 = (0..100)
        .filter_map(|id| sim.sched.status(CheckId::new(id)))
        .map(|s| s.stats.queued)
        .sum();
    assert_eq!(queued, 90);
    assert_eq!(
        sim.cancelled.len(),
        90,
        "every timed-out attempt is cancelled"
    );
}

#[test]
fn wake_runs_a_waiting_check_now_and_a_running_one_right_after() {
    let mut t = timing(60_000);
    t.retry = 0;
    let mut sim = Sim::new(5, |_, _| Some((ok(), 10 * MS)));
    sim.add(1, t);
    sim.run_until(Duration::from_secs(1));
    assert_eq!(sim.started.len(), 1);
    // Waiting for a minute: a wake starts it now.
    assert!(sim.sched.wake(CheckId::new(1), sim.now));
    sim.run_until(Duration::from_millis(1005));
    assert_eq!(sim.started.len(), 2);
    assert_eq!(sim.started[1].1, Duration::from_secs(1));
    // Woken while probing: the next round starts when this one ends.
    assert!(sim.sched.wake(CheckId::new(1), sim.now));
    sim.run_until(Duration::from_millis(1100));
    assert_eq!(sim.started.len(), 3);
    assert_eq!(sim.started[2].1, Duration::from_millis(1010));
    // Then the cadence is back to a minute, from the last round.
    sim.run_until(Duration::from_millis(61_020));
    assert_eq!(sim.started.len(), 4);
    assert_eq!(sim.started[3].1, Duration::from_millis(61_010));
    assert!(!sim.sched.wake(CheckId::new(2), sim.now), "unknown check");
}

#[test]
fn value_changes_are_transitions_while_up() {
    let mut t = timing(100);
    t.retry = 0;
    let values = [5, 5, 0, -3];
    let mut sim = Sim::new(1, move |_, n| {
        let value = values.get(n as usize - 1).copied().unwrap_or(-3);
        Some((Ok(ProbeSuccess::with_value(value)), MS))
    });
    sim.add(1, t);
    sim.run_until(Duration::from_millis(450));
    let seen: Vec<(Health, Option<i64>)> = sim
        .transitions
        .iter()
        .map(|t| (t.health, t.value))
        .collect();
    assert_eq!(
        seen,
        [
            (Health::Up, Some(5)),
            (Health::Up, Some(0)),
            (Health::Up, Some(-3))
        ]
    );
    assert_eq!(
        sim.sched.status(CheckId::new(1)).and_then(|s| s.value),
        Some(-3)
    );
}

#[test]
fn longest_durations_never_overflow_an_instant() {
    // The latest instant this platform can represent, near enough.
    let mut far = Instant::now();
    let mut step = Duration::from_secs(u64::MAX / 2);
    while !step.is_zero() {
        if let Some(next) = far.checked_add(step) {
            far = next;
        }
        step /= 2;
    }
    let mut sched = Scheduler::new(9);
    let mut t = Timing::every(MAX_DURATION);
    t.timeout = MAX_DURATION;
    t.delay_before_retry = MAX_DURATION;
    t.warmup = MAX_DURATION;
    t.jitter = MAX_DURATION;
    t.retry = 3;
    sched.add_check(CheckId::new(1), t, far).expect("valid");
    // Deadlines saturate at the end of time: each step does bounded work
    // and nothing panics.
    for _ in 0..5 {
        let due = sched.poll_timeout().expect("armed");
        assert!(due >= far);
        sched.handle_timeout(due);
        while let Some(output) = sched.poll_output() {
            if let Output::StartProbe(req) = output {
                sched.handle_probe_result(req.token, refused(), due);
            }
        }
    }
    let status = sched.status(CheckId::new(1)).expect("exists");
    assert!(status.stats.attempts >= 2);
}
