//! Proves the sans-IO scheduling and up/down logic in simulated time: warmup
//! spread and jitter, retries, rise/fall, timeouts, stale results, weights,
//! removal and idempotent timeouts. No clock, no socket, fixed seeds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use healthcheck::{
    CheckId, ConfigError, DownReason, Health, Output, ProbeResult, ProbeSuccess, ProbeToken,
    Scheduler, Timing, Transition,
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
                other => panic!("unexpected output {other:?}"),
            }
        }
    }

    /// Runs until virtual time `until` (relative to start).
    fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        loop {
            self.drain();
            let next_result = self.pending.iter().map(|p| p.0).min();
            let next_timer = self.sched.poll_timeout();
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
fn rounds_repeat_every_delay_loop_plus_jitter() {
    let mut t = timing(1000);
    t.jitter = 100 * MS;
    let mut sim = Sim::new(7, |_, _| Some((ok(), 5 * MS)));
    sim.add(1, t);
    sim.run_until(Duration::from_secs(20));
    let starts: Vec<Duration> = sim.started.iter().map(|s| s.1).collect();
    assert_eq!(starts[0], Duration::ZERO, "zero warmup starts at once");
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 17);
    for gap in &gaps {
        // Next round starts delay_loop + [0, jitter) after the previous ended.
        assert!(*gap >= 1005 * MS && *gap < 1105 * MS, "gap {gap:?}");
    }
    assert!(
        gaps.windows(2).any(|w| w[0] != w[1]),
        "jitter varies the gaps"
    );
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
        (1043 * MS, 0),
        "next round delay_loop after the round ended"
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
        1044 * MS,
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
    assert_eq!(up.at - sim.start, 405 * MS);
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
        Some((Ok(ProbeSuccess { weight }), MS))
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
    ] {
        let mut t = Timing::default();
        mutate(&mut t);
        match sched.add_check(CheckId::new(1), t, now) {
            Err(ConfigError::InvalidTiming(msg)) => assert!(msg.contains(expected), "{msg}"),
            other => panic!("expected InvalidTiming, got {other:?}"),
        }
    }
    assert!(sched.is_empty());
    assert_eq!(sched.poll_timeout(), None);
}
