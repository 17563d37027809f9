//! The sans-IO heart of the crate: when to probe, and what the results mean.
//!
//! [`Scheduler`] never reads a clock, never draws OS randomness and never
//! touches a socket. Time comes in as `now`, randomness from the seed given to
//! [`Scheduler::new`], probe results through
//! [`Scheduler::handle_probe_result`]. The tokio [`runner`](crate::runner)
//! turns its outputs into real probes; tests drive it through simulated time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::check::{CheckId, Health, Timing};
use crate::error::{ConfigError, DownReason};
use crate::lag::{DurationBuckets, LagHistogram};
use crate::timer::{Timer, TimerWheel};

/// Identifies one probe attempt, so that a late result of an attempt the
/// scheduler already gave up on (timed out, check removed) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeToken {
    check: CheckId,
    serial: u64,
    /// Position of the check in the scheduler's table, so a result needs no
    /// lookup by id (checked against `check` before use).
    slot: u32,
}

impl ProbeToken {
    /// The check this attempt belongs to.
    #[must_use]
    pub const fn check(self) -> CheckId {
        self.check
    }

    /// A number unique among this check's attempts; probes may use it as a
    /// sequence number or nonce.
    #[must_use]
    pub const fn serial(self) -> u64 {
        self.serial
    }

    /// A token made up for a test of the code that runs attempts.
    #[cfg(test)]
    pub(crate) const fn for_test(check: CheckId, serial: u64, slot: u32) -> Self {
        Self {
            check,
            serial,
            slot,
        }
    }

    /// The check's position in the scheduler's table: dense, and held by
    /// one check at a time, so drivers can index per-check state by it.
    pub(crate) const fn position(self) -> usize {
        self.slot as usize
    }
}

/// What a successful attempt reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProbeSuccess {
    /// Dynamic weight reported by the target (keepalived's `misc_dynamic`),
    /// `None` when the check does not report one.
    pub weight: Option<u32>,
    /// A reading the probe reports besides up/down, such as the number in a
    /// tracked file (keepalived's `track_file`); consumers scale it by their
    /// own weight (see [`FileCheck`](crate::FileCheck)). `None` for probes
    /// that only say up or down.
    pub value: Option<i64>,
}

impl ProbeSuccess {
    /// Up, with no weight and no value.
    #[must_use]
    pub const fn up() -> Self {
        Self {
            weight: None,
            value: None,
        }
    }

    /// Up with a dynamic weight.
    #[must_use]
    pub const fn with_weight(weight: u32) -> Self {
        Self {
            weight: Some(weight),
            value: None,
        }
    }

    /// Up with a value.
    #[must_use]
    pub const fn with_value(value: i64) -> Self {
        Self {
            weight: None,
            value: Some(value),
        }
    }
}

/// The result of one probe attempt: success, or why it counts as down.
pub type ProbeResult = Result<ProbeSuccess, DownReason>;

/// A request to run one probe attempt, produced by [`Scheduler::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// Pass back to [`Scheduler::handle_probe_result`].
    pub token: ProbeToken,
    /// 0 for the first attempt of a round, then 1..=`retry`.
    pub attempt: u32,
    /// The attempt's time limit; the scheduler counts it failed at
    /// `started + timeout` if no result came back by then.
    pub timeout: Duration,
}

/// A change of a check's health, or of its dynamic weight or value while it
/// is up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The check.
    pub check: CheckId,
    /// Health before this transition.
    pub previous: Health,
    /// Health from now on (equal to `previous` for a weight- or value-only
    /// change).
    pub health: Health,
    /// Why the check went down; `None` for up and weight changes.
    pub reason: Option<DownReason>,
    /// Duration of the attempt that decided it.
    pub latency: Duration,
    /// Dynamic weight from now on, if the check reports one.
    pub weight: Option<u32>,
    /// Value from now on, if the check reports one (see
    /// [`ProbeSuccess::value`]); kept from the last success while down.
    pub value: Option<i64>,
    /// When it was decided.
    pub at: Instant,
}

/// Output of the scheduler, see [`Scheduler::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Start a probe attempt now and report its result.
    StartProbe(ProbeRequest),
    /// Publish a transition.
    Transition(Transition),
    /// Drop the attempt `token` if it is still running: the scheduler gave up
    /// on it (timeout, or its check was removed or replaced) and will ignore
    /// its result.
    CancelProbe(ProbeToken),
}

/// Per-check counters, in the spirit of a MIB table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckStats {
    /// Attempts started.
    pub attempts: u64,
    /// Attempts that succeeded.
    pub successes: u64,
    /// Attempts that failed (timeouts included).
    pub failures: u64,
    /// Attempts that the scheduler's own deadline ended.
    pub timeouts: u64,
    /// Rounds that failed after all retries.
    pub failed_rounds: u64,
    /// Health transitions emitted.
    pub transitions: u64,
    /// Attempts that had to wait for a free slot under the runner's
    /// concurrency bound ([`Scheduler::set_max_in_flight`]).
    pub queued: u64,
}

/// The current state of one check, as shown to consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStatus {
    /// Current health.
    pub health: Health,
    /// Current dynamic weight, if any.
    pub weight: Option<u32>,
    /// Last value reported (see [`ProbeSuccess::value`]), if any.
    pub value: Option<i64>,
    /// Failure reason of the last attempt, `None` if it succeeded or none ran.
    pub last_reason: Option<DownReason>,
    /// Latency of the last finished attempt.
    pub last_latency: Option<Duration>,
    /// Good rounds in a row.
    pub good_rounds: u32,
    /// Failed rounds in a row.
    pub failed_rounds: u32,
    /// Counters.
    pub stats: CheckStats,
    /// When the last attempt ended (a result, or the scheduler's
    /// timeout), if one did.
    pub last_run: Option<Instant>,
    /// How long the attempts took (timeouts count their limit).
    pub durations: DurationBuckets,
}

impl CheckStatus {
    /// Whether a round has ended (a success, or a failure after every
    /// retry): before that, `health` is only [`Timing::initial`].
    #[must_use]
    pub fn decided(&self) -> bool {
        self.stats.successes > 0 || self.stats.failed_rounds > 0
    }

    /// The status of a check that has not run yet.
    #[must_use]
    pub fn initial(timing: &Timing) -> Self {
        Self {
            health: timing.initial,
            weight: None,
            value: None,
            last_reason: None,
            last_latency: None,
            good_rounds: 0,
            failed_rounds: 0,
            stats: CheckStats::default(),
            last_run: None,
            durations: DurationBuckets::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Next attempt (`attempt` of the round) is due at `due`.
    Waiting { due: Instant, attempt: u32 },
    /// Due since `due`, waiting for a free slot under the concurrency bound.
    Queued { due: Instant, attempt: u32 },
    /// Attempt running since `started`, abandoned at `deadline`.
    Probing {
        serial: u64,
        attempt: u32,
        started: Instant,
        deadline: Instant,
    },
}

#[derive(Debug)]
struct Slot {
    id: CheckId,
    timing: Timing,
    phase: Phase,
    /// When the current round's first attempt was due: the next round is due
    /// `delay_loop` after it, so rounds keep their cadence whatever the
    /// attempts' latency.
    round_due: Instant,
    /// A [`Scheduler::wake`] came while probing: start the next round as
    /// soon as this one ends.
    woken: bool,
    next_serial: u64,
    status: CheckStatus,
}

/// One position of the slot table. The generation survives reuse, so a
/// timer armed for a removed check can never match its successor.
#[derive(Debug)]
struct Entry {
    generation: u32,
    slot: Option<Slot>,
}

/// SplitMix64: tiny, seedable, good enough to spread timers. Not for secrets.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, max)`; zero when `max` is zero.
    fn duration_below(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        // Multiply-shift keeps the bias below 2^-64 per draw.
        let scaled = (u128::from(self.next_u64()) * u128::from(nanos)) >> 64;
        Duration::from_nanos(u64::try_from(scaled).unwrap_or(0))
    }
}

/// `at + delay`, saturating instead of panicking. Timings are validated
/// against [`MAX_DURATION`](crate::MAX_DURATION), so this only matters for
/// an `Instant` near the end of its range; the result then stays far in the
/// future, which is what a huge delay means anyway.
fn later(at: Instant, delay: Duration) -> Instant {
    at.checked_add(delay).unwrap_or_else(|| {
        // Halve until it fits: still at least half the requested delay away.
        let mut step = delay;
        let mut out = at;
        while !step.is_zero() {
            if let Some(next) = out.checked_add(step) {
                out = next;
            }
            step /= 2;
        }
        out
    })
}

/// Schedules many checks and turns attempt results into up/down decisions.
///
/// Contract, in the style of `quinn-proto`:
/// - input: [`add_check`](Self::add_check), [`remove_check`](Self::remove_check),
///   [`wake`](Self::wake), [`handle_probe_result`](Self::handle_probe_result),
///   [`handle_timeout`](Self::handle_timeout);
/// - output: after any input, drain [`poll_output`](Self::poll_output) until
///   it returns `None` (start the probes, cancel the abandoned ones, publish
///   the transitions, in the order given), then ask
///   [`poll_timeout`](Self::poll_timeout) for the next deadline and call
///   `handle_timeout` once it has passed.
///
/// `handle_timeout` before the deadline, or twice for the same deadline, is a
/// no-op. Results for unknown or abandoned attempts are ignored.
///
/// Cadence: a round's first attempt is due `delay_loop` (± half the jitter)
/// after the previous round's first attempt was due, and never before the
/// previous round ended. A healthy check therefore runs exactly
/// `1 / delay_loop` times per second on average, however long each attempt
/// takes and however late the driver wakes up (keepalived waits `delay_loop`
/// after the end of a round instead, so its rate drifts below the configured
/// one by the check's latency and its scheduling delay).
///
/// Concurrency: with [`set_max_in_flight`](Self::set_max_in_flight), attempts
/// that fall due while that many are running wait in a FIFO queue and start
/// as others finish; the wait shows in [`lag`](Self::lag) and in
/// [`CheckStats::queued`]. The attempt's timeout runs from its real start.
///
/// ```
/// use std::time::{Duration, Instant};
/// use healthcheck::{CheckId, Health, Output, ProbeSuccess, Scheduler, Timing};
///
/// let start = Instant::now();
/// let mut sched = Scheduler::new(7);
/// let mut timing = Timing::every(Duration::from_secs(1));
/// timing.initial = Health::Down;
/// sched.add_check(CheckId::new(1), timing, start)?;
///
/// let mut now = start;
/// let mut transitions = Vec::new();
/// while transitions.is_empty() {
///     now = sched.poll_timeout().expect("a check is scheduled");
///     sched.handle_timeout(now);
///     while let Some(output) = sched.poll_output() {
///         match output {
///             // A real driver runs the probe; here it succeeds at once.
///             Output::StartProbe(req) => {
///                 sched.handle_probe_result(req.token, Ok(ProbeSuccess::up()), now)
///             }
///             Output::Transition(t) => transitions.push(t),
///             _ => {}
///         }
///     }
/// }
/// assert_eq!(transitions[0].health, Health::Up);
/// assert!(now < start + Duration::from_secs(1), "first round within warmup");
/// # Ok::<(), healthcheck::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct Scheduler {
    index: HashMap<CheckId, u32>,
    entries: Vec<Entry>,
    free: Vec<u32>,
    timers: TimerWheel,
    /// Scratch space for the timers due in one `handle_timeout`.
    due: Vec<Timer>,
    outputs: VecDeque<Output>,
    rng: SplitMix64,
    max_in_flight: usize,
    in_flight: usize,
    /// Attempts due but waiting for a slot: (slot, generation), FIFO.
    queue: VecDeque<(u32, u32)>,
    lag: LagHistogram,
    lag_buckets: DurationBuckets,
    started: u64,
}

impl Scheduler {
    /// An empty scheduler whose jitter and warmup draws come from `seed`.
    /// No bound on concurrent attempts until
    /// [`set_max_in_flight`](Self::set_max_in_flight).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            index: HashMap::new(),
            entries: Vec::new(),
            free: Vec::new(),
            timers: TimerWheel::new(),
            due: Vec::new(),
            outputs: VecDeque::new(),
            rng: SplitMix64(seed),
            max_in_flight: usize::MAX,
            in_flight: 0,
            queue: VecDeque::new(),
            lag: LagHistogram::new(),
            lag_buckets: DurationBuckets::default(),
            started: 0,
        }
    }

    /// Bounds the number of attempts running at once (at least 1). Attempts
    /// already running are not affected; new ones wait their turn.
    pub fn set_max_in_flight(&mut self, max: usize) {
        self.max_in_flight = max.max(1);
    }

    /// The bound set by [`set_max_in_flight`](Self::set_max_in_flight)
    /// (`usize::MAX` when unbounded).
    #[must_use]
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Attempts running now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Attempts due but waiting for a free slot.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Attempts started since this scheduler was created.
    #[must_use]
    pub fn attempts_started(&self) -> u64 {
        self.started
    }

    /// How late attempts started compared with when they were due, since
    /// this scheduler was created.
    #[must_use]
    pub fn lag(&self) -> &LagHistogram {
        &self.lag
    }

    /// The same lateness in fixed buckets (for a Prometheus histogram).
    #[must_use]
    pub fn lag_buckets(&self) -> &DurationBuckets {
        &self.lag_buckets
    }

    /// Adds a check; its first round starts within `timing.warmup` of `now`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidTiming`] or [`ConfigError::DurationTooLong`] if
    /// `timing` is invalid. Adding an id that already exists replaces that
    /// check (its pending attempt is abandoned).
    pub fn add_check(
        &mut self,
        id: CheckId,
        timing: Timing,
        now: Instant,
    ) -> Result<(), ConfigError> {
        timing.validate()?;
        self.remove_check(id);
        let due = later(now, self.rng.duration_below(timing.warmup));
        let slot = Slot {
            id,
            status: CheckStatus::initial(&timing),
            timing,
            phase: Phase::Waiting { due, attempt: 0 },
            round_due: due,
            woken: false,
            next_serial: 0,
        };
        let position = match self.free.pop() {
            Some(position) => position,
            None => {
                let position = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
                self.entries.push(Entry {
                    generation: 0,
                    slot: None,
                });
                position
            }
        };
        let Some(entry) = self.entries.get_mut(position as usize) else {
            return Ok(()); // more than u32::MAX checks: cannot happen in memory
        };
        entry.generation = entry.generation.wrapping_add(1);
        entry.slot = Some(slot);
        self.index.insert(id, position);
        self.arm(position, due);
        Ok(())
    }

    /// Removes a check and drops its queued outputs; a running attempt gets
    /// an [`Output::CancelProbe`]. Returns whether it existed.
    pub fn remove_check(&mut self, id: CheckId) -> bool {
        let Some(position) = self.index.remove(&id) else {
            return false;
        };
        let Some(entry) = self.entries.get_mut(position as usize) else {
            return false;
        };
        entry.generation = entry.generation.wrapping_add(1);
        let removed = entry.slot.take();
        self.free.push(position);
        self.outputs.retain(|output| match output {
            Output::StartProbe(req) => req.token.check != id,
            Output::Transition(t) => t.check != id,
            Output::CancelProbe(_) => true,
        });
        if let Some(Slot {
            phase: Phase::Probing { serial, .. },
            ..
        }) = removed
        {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.outputs.push_back(Output::CancelProbe(ProbeToken {
                check: id,
                serial,
                slot: position,
            }));
        }
        true
    }

    /// Asks for a check to run as soon as possible, for instance because a
    /// watched file changed: a waiting check is due now (its cadence starts
    /// again from now); a check that is running or queued starts its next
    /// round as soon as this one ends. Returns whether the check exists.
    pub fn wake(&mut self, id: CheckId, now: Instant) -> bool {
        let Some(position) = self.index.get(&id).copied() else {
            return false;
        };
        let Some(slot) = self.slot_mut(position) else {
            return false;
        };
        match slot.phase {
            Phase::Waiting { due, attempt } if due > now => {
                slot.phase = Phase::Waiting { due: now, attempt };
                if attempt == 0 {
                    slot.round_due = now;
                }
                self.rearm(position, now);
            }
            Phase::Waiting { .. } => {}
            Phase::Queued { .. } | Phase::Probing { .. } => slot.woken = true,
        }
        true
    }

    /// Number of checks.
    #[must_use]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// `true` when no check is scheduled.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Current state of a check.
    #[must_use]
    pub fn status(&self, id: CheckId) -> Option<&CheckStatus> {
        let position = *self.index.get(&id)?;
        self.slot(position).map(|slot| &slot.status)
    }

    /// Where `id` sits in the table (see [`ProbeToken::position`]).
    pub(crate) fn position(&self, id: CheckId) -> Option<usize> {
        self.index.get(&id).map(|p| *p as usize)
    }

    /// Current state of the check at `position`.
    pub(crate) fn status_at(&self, position: usize) -> Option<&CheckStatus> {
        self.slot(u32::try_from(position).ok()?)
            .map(|slot| &slot.status)
    }

    /// Ids of all checks, in order.
    pub fn check_ids(&self) -> impl Iterator<Item = CheckId> + '_ {
        let mut ids: Vec<CheckId> = self.index.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
    }

    /// The next output, `None` when drained. See the type's contract.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout)
    /// has work to do, `None` with no checks.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let entries = &self.entries;
        let timer = self
            .timers
            .next_deadline(|timer| timer_is_live(entries, timer));
        let queued = if self.in_flight < self.max_in_flight {
            self.first_queued_due()
        } else {
            None
        };
        match (timer, queued) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts the attempts that are due and abandons the ones past their
    /// deadline. Idempotent: nothing happens for deadlines after `now`.
    ///
    /// One pass: a deadline that this call itself sets at or before `now`
    /// (a zero `delay_before_retry`) is left for the next call, which
    /// [`poll_timeout`](Self::poll_timeout) asks for at once. That bounds
    /// the work of one call even where time cannot advance (deadlines
    /// saturated at the end of `Instant`'s range).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.start_queued(now);
        let mut due = std::mem::take(&mut self.due);
        self.timers.take_due(now, &mut due);
        for timer in due.drain(..) {
            if !timer_is_live(&self.entries, &timer) {
                continue;
            }
            let Some(slot) = self.slot(timer.slot) else {
                continue;
            };
            match slot.phase {
                Phase::Waiting { due, attempt } => self.begin(timer.slot, attempt, due, now),
                Phase::Queued { .. } => {}
                Phase::Probing {
                    serial,
                    started,
                    attempt,
                    ..
                } => {
                    let limit = slot.timing.timeout;
                    let token = ProbeToken {
                        check: slot.id,
                        serial,
                        slot: timer.slot,
                    };
                    if let Some(slot) = self.slot_mut(timer.slot) {
                        slot.status.stats.timeouts += 1;
                    }
                    self.outputs.push_back(Output::CancelProbe(token));
                    let latency = now.saturating_duration_since(started);
                    self.finish_attempt(
                        timer.slot,
                        attempt,
                        Err(DownReason::Timeout(limit)),
                        latency,
                        now,
                    );
                }
            }
        }
        self.due = due;
        self.start_queued(now);
    }

    /// Feeds the result of the attempt `token` finished at `now`.
    ///
    /// Results for removed checks or abandoned attempts are ignored.
    pub fn handle_probe_result(&mut self, token: ProbeToken, result: ProbeResult, now: Instant) {
        let Some(slot) = self.slot(token.slot) else {
            return;
        };
        if slot.id != token.check {
            return;
        }
        let Phase::Probing {
            serial,
            attempt,
            started,
            ..
        } = slot.phase
        else {
            return;
        };
        if serial != token.serial {
            return;
        }
        let latency = now.saturating_duration_since(started);
        self.finish_attempt(token.slot, attempt, result, latency, now);
        self.start_queued(now);
    }

    fn slot(&self, position: u32) -> Option<&Slot> {
        self.entries.get(position as usize)?.slot.as_ref()
    }

    fn slot_mut(&mut self, position: u32) -> Option<&mut Slot> {
        self.entries.get_mut(position as usize)?.slot.as_mut()
    }

    fn first_queued_due(&mut self) -> Option<Instant> {
        while let Some(&(position, generation)) = self.queue.front() {
            let live = self
                .entries
                .get(position as usize)
                .filter(|entry| entry.generation == generation)
                .and_then(|entry| entry.slot.as_ref());
            if let Some(Slot {
                phase: Phase::Queued { due, .. },
                ..
            }) = live
            {
                return Some(*due);
            }
            self.queue.pop_front();
        }
        None
    }

    /// Arms the check's timer for its new phase (bumping the generation so
    /// that the timer of the previous phase goes stale).
    fn rearm(&mut self, position: u32, when: Instant) {
        if let Some(entry) = self.entries.get_mut(position as usize) {
            entry.generation = entry.generation.wrapping_add(1);
        }
        self.arm(position, when);
    }

    fn arm(&mut self, position: u32, when: Instant) {
        if let Some(entry) = self.entries.get(position as usize) {
            self.timers.insert(Timer {
                when,
                slot: position,
                generation: entry.generation,
            });
        }
    }

    /// A due attempt: start it, or queue it when at the concurrency bound.
    fn begin(&mut self, position: u32, attempt: u32, due: Instant, now: Instant) {
        if self.in_flight < self.max_in_flight {
            self.start_attempt(position, attempt, due, now);
            return;
        }
        let Some(entry) = self.entries.get_mut(position as usize) else {
            return;
        };
        entry.generation = entry.generation.wrapping_add(1);
        let generation = entry.generation;
        if let Some(slot) = entry.slot.as_mut() {
            slot.phase = Phase::Queued { due, attempt };
            slot.status.stats.queued += 1;
            self.queue.push_back((position, generation));
        }
    }

    fn start_queued(&mut self, now: Instant) {
        while self.in_flight < self.max_in_flight {
            let Some((position, generation)) = self.queue.pop_front() else {
                return;
            };
            let live = self
                .entries
                .get(position as usize)
                .filter(|entry| entry.generation == generation)
                .and_then(|entry| entry.slot.as_ref());
            if let Some(Slot {
                phase: Phase::Queued { due, attempt },
                ..
            }) = live
            {
                let (due, attempt) = (*due, *attempt);
                self.start_attempt(position, attempt, due, now);
            }
        }
    }

    fn start_attempt(&mut self, position: u32, attempt: u32, due: Instant, now: Instant) {
        let Some(slot) = self.slot_mut(position) else {
            return;
        };
        let serial = slot.next_serial;
        slot.next_serial += 1;
        slot.status.stats.attempts += 1;
        let timeout = slot.timing.timeout;
        let deadline = later(now, timeout);
        slot.phase = Phase::Probing {
            serial,
            attempt,
            started: now,
            deadline,
        };
        let token = ProbeToken {
            check: slot.id,
            serial,
            slot: position,
        };
        self.in_flight += 1;
        self.started += 1;
        self.lag.record(now.saturating_duration_since(due));
        self.lag_buckets.record(now.saturating_duration_since(due));
        self.rearm(position, deadline);
        self.outputs.push_back(Output::StartProbe(ProbeRequest {
            token,
            attempt,
            timeout,
        }));
    }

    /// When the next round is due: `delay_loop` ± half the jitter after this
    /// round was due, and not before `now` (the round's end).
    fn next_round_due(&mut self, position: u32, now: Instant) -> Instant {
        let Some(slot) = self.slot(position) else {
            return now;
        };
        if slot.woken {
            return now;
        }
        let (round_due, delay_loop, jitter) =
            (slot.round_due, slot.timing.delay_loop, slot.timing.jitter);
        let draw = self.rng.duration_below(jitter);
        let base = later(round_due, delay_loop);
        // `base + draw - jitter/2`, without going below zero.
        let half = jitter / 2;
        let due = if draw >= half {
            later(base, draw - half)
        } else {
            base.checked_sub(half - draw).unwrap_or(base)
        };
        due.max(now)
    }

    fn finish_attempt(
        &mut self,
        position: u32,
        attempt: u32,
        result: ProbeResult,
        latency: Duration,
        now: Instant,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let round_over = match &result {
            Ok(_) => true,
            Err(_) => self
                .slot(position)
                .is_none_or(|slot| attempt >= slot.timing.retry),
        };
        let next_due = if round_over {
            self.next_round_due(position, now)
        } else {
            now
        };
        let Some(slot) = self
            .entries
            .get_mut(position as usize)
            .and_then(|entry| entry.slot.as_mut())
        else {
            return;
        };
        slot.status.last_latency = Some(latency);
        slot.status.last_run = Some(now);
        slot.status.durations.record(latency);
        let id = slot.id;
        let status = &mut slot.status;
        let previous = status.health;
        let previous_weight = status.weight;
        let previous_value = status.value;
        let first_round = slot.timing.first_round_decides && !status.decided();
        let next_phase = match result {
            Ok(success) => {
                status.stats.successes += 1;
                status.last_reason = None;
                status.failed_rounds = 0;
                status.good_rounds = status.good_rounds.saturating_add(1);
                status.weight = success.weight;
                status.value = success.value;
                if previous == Health::Down
                    && (first_round || status.good_rounds >= slot.timing.rise)
                {
                    status.health = Health::Up;
                }
                Phase::Waiting {
                    due: next_due,
                    attempt: 0,
                }
            }
            Err(reason) => {
                status.stats.failures += 1;
                status.last_reason = Some(reason);
                if round_over {
                    status.stats.failed_rounds += 1;
                    status.good_rounds = 0;
                    status.failed_rounds = status.failed_rounds.saturating_add(1);
                    if previous == Health::Up
                        && (first_round || status.failed_rounds >= slot.timing.fall)
                    {
                        status.health = Health::Down;
                    }
                    Phase::Waiting {
                        due: next_due,
                        attempt: 0,
                    }
                } else {
                    Phase::Waiting {
                        due: later(now, slot.timing.delay_before_retry),
                        attempt: attempt + 1,
                    }
                }
            }
        };
        let health = status.health;
        let still_up = health == Health::Up && previous == Health::Up;
        let reading_changed =
            still_up && (status.weight != previous_weight || status.value != previous_value);
        if health != previous || reading_changed {
            if health != previous {
                status.stats.transitions += 1;
            }
            let reason = if health == Health::Down {
                status.last_reason.clone()
            } else {
                None
            };
            self.outputs.push_back(Output::Transition(Transition {
                check: id,
                previous,
                health,
                reason,
                latency,
                weight: status.weight,
                value: status.value,
                at: now,
            }));
        }
        if round_over {
            slot.woken = false;
        }
        let Phase::Waiting { due: when, attempt } = next_phase else {
            return; // both arms above build a `Waiting` phase
        };
        if attempt == 0 {
            slot.round_due = when;
        }
        slot.phase = next_phase;
        self.rearm(position, when);
    }
}

fn timer_is_live(entries: &[Entry], timer: &Timer) -> bool {
    entries
        .get(timer.slot as usize)
        .is_some_and(|entry| entry.generation == timer.generation && entry.slot.is_some())
}
