//! The sans-IO heart of the crate: when to probe, and what the results mean.
//!
//! [`Scheduler`] never reads a clock, never draws OS randomness and never
//! touches a socket. Time comes in as `now`, randomness from the seed given to
//! [`Scheduler::new`], probe results through
//! [`Scheduler::handle_probe_result`]. The tokio [`runner`](crate::runner)
//! turns its outputs into real probes; tests drive it through simulated time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use crate::check::{CheckId, Health, Timing};
use crate::error::{ConfigError, DownReason};

/// Identifies one probe attempt, so that a late result of an attempt the
/// scheduler already gave up on (timed out, check removed) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeToken {
    check: CheckId,
    serial: u64,
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
}

/// What a successful attempt reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeSuccess {
    /// Dynamic weight reported by the target (keepalived's `misc_dynamic`),
    /// `None` when the check does not report one.
    pub weight: Option<u32>,
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

/// A change of a check's health, or of its dynamic weight while it is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The check.
    pub check: CheckId,
    /// Health before this transition.
    pub previous: Health,
    /// Health from now on (equal to `previous` for a weight-only change).
    pub health: Health,
    /// Why the check went down; `None` for up and weight changes.
    pub reason: Option<DownReason>,
    /// Duration of the attempt that decided it.
    pub latency: Duration,
    /// Dynamic weight from now on, if the check reports one.
    pub weight: Option<u32>,
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
}

/// The current state of one check, as shown to consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStatus {
    /// Current health.
    pub health: Health,
    /// Current dynamic weight, if any.
    pub weight: Option<u32>,
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
}

impl CheckStatus {
    /// The status of a check that has not run yet.
    #[must_use]
    pub fn initial(timing: &Timing) -> Self {
        Self {
            health: timing.initial,
            weight: None,
            last_reason: None,
            last_latency: None,
            good_rounds: 0,
            failed_rounds: 0,
            stats: CheckStats::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Next attempt (`attempt` of the round) is due at `due`.
    Waiting { due: Instant, attempt: u32 },
    /// Attempt running since `started`, abandoned at `deadline`.
    Probing {
        serial: u64,
        attempt: u32,
        started: Instant,
        deadline: Instant,
    },
}

impl Phase {
    fn timer(self) -> Instant {
        match self {
            Phase::Waiting { due, .. } => due,
            Phase::Probing { deadline, .. } => deadline,
        }
    }
}

#[derive(Debug)]
struct Slot {
    timing: Timing,
    phase: Phase,
    /// Bumped whenever `phase` changes; timer heap entries carry it.
    timer_generation: u64,
    next_serial: u64,
    status: CheckStatus,
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

/// Schedules many checks and turns attempt results into up/down decisions.
///
/// Contract, in the style of `quinn-proto`:
/// - input: [`add_check`](Self::add_check), [`remove_check`](Self::remove_check),
///   [`handle_probe_result`](Self::handle_probe_result),
///   [`handle_timeout`](Self::handle_timeout);
/// - output: after any input, drain [`poll_output`](Self::poll_output) until
///   it returns `None` (start the probes, publish the transitions, in the
///   order given), then ask [`poll_timeout`](Self::poll_timeout) for the next
///   deadline and call `handle_timeout` once it has passed.
///
/// `handle_timeout` before the deadline, or twice for the same deadline, is a
/// no-op. Results for unknown or abandoned attempts are ignored.
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
///                 sched.handle_probe_result(req.token, Ok(ProbeSuccess::default()), now)
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
    slots: BTreeMap<CheckId, Slot>,
    /// Min-heap of (deadline, check, generation); stale entries are skipped.
    timers: BinaryHeap<Reverse<(Instant, CheckId, u64)>>,
    outputs: VecDeque<Output>,
    rng: SplitMix64,
}

impl Scheduler {
    /// An empty scheduler whose jitter and warmup draws come from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            slots: BTreeMap::new(),
            timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
            rng: SplitMix64(seed),
        }
    }

    /// Adds a check; its first round starts within `timing.warmup` of `now`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidTiming`] if `timing` is invalid. Adding an id
    /// that already exists replaces that check (its pending attempt is
    /// abandoned).
    pub fn add_check(
        &mut self,
        id: CheckId,
        timing: Timing,
        now: Instant,
    ) -> Result<(), ConfigError> {
        timing.validate()?;
        self.remove_check(id);
        let due = now + self.rng.duration_below(timing.warmup);
        let status = CheckStatus::initial(&timing);
        let slot = Slot {
            timing,
            phase: Phase::Waiting { due, attempt: 0 },
            timer_generation: 0,
            next_serial: 0,
            status,
        };
        self.timers.push(Reverse((due, id, 0)));
        self.slots.insert(id, slot);
        Ok(())
    }

    /// Removes a check and drops its queued outputs. Returns whether it existed.
    pub fn remove_check(&mut self, id: CheckId) -> bool {
        let existed = self.slots.remove(&id).is_some();
        if existed {
            self.outputs.retain(|output| match output {
                Output::StartProbe(req) => req.token.check != id,
                Output::Transition(t) => t.check != id,
            });
        }
        existed
    }

    /// Number of checks.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// `true` when no check is scheduled.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Current state of a check.
    #[must_use]
    pub fn status(&self, id: CheckId) -> Option<&CheckStatus> {
        self.slots.get(&id).map(|slot| &slot.status)
    }

    /// Ids of all checks, in order.
    pub fn check_ids(&self) -> impl Iterator<Item = CheckId> + '_ {
        self.slots.keys().copied()
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
        while let Some(Reverse((when, id, generation))) = self.timers.peek().copied() {
            if self.timer_is_live(id, generation) {
                return Some(when);
            }
            self.timers.pop();
        }
        None
    }

    /// Starts the attempts that are due and abandons the ones past their
    /// deadline. Idempotent: nothing happens for deadlines after `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((when, id, generation))) = self.timers.peek().copied() {
            if when > now {
                break;
            }
            self.timers.pop();
            if !self.timer_is_live(id, generation) {
                continue;
            }
            let Some(phase) = self.slots.get(&id).map(|slot| slot.phase) else {
                continue;
            };
            match phase {
                Phase::Waiting { attempt, .. } => self.start_attempt(id, attempt, now),
                Phase::Probing {
                    started, attempt, ..
                } => {
                    let limit = self
                        .slots
                        .get(&id)
                        .map_or(Duration::ZERO, |s| s.timing.timeout);
                    if let Some(slot) = self.slots.get_mut(&id) {
                        slot.status.stats.timeouts += 1;
                    }
                    let latency = now.saturating_duration_since(started);
                    self.finish_attempt(id, attempt, Err(DownReason::Timeout(limit)), latency, now);
                }
            }
        }
    }

    /// Feeds the result of the attempt `token` finished at `now`.
    ///
    /// Results for removed checks or abandoned attempts are ignored.
    pub fn handle_probe_result(&mut self, token: ProbeToken, result: ProbeResult, now: Instant) {
        let Some(slot) = self.slots.get(&token.check) else {
            return;
        };
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
        self.finish_attempt(token.check, attempt, result, latency, now);
    }

    fn timer_is_live(&self, id: CheckId, generation: u64) -> bool {
        self.slots
            .get(&id)
            .is_some_and(|slot| slot.timer_generation == generation)
    }

    fn set_phase(&mut self, id: CheckId, phase: Phase) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.phase = phase;
            slot.timer_generation += 1;
            self.timers
                .push(Reverse((phase.timer(), id, slot.timer_generation)));
        }
    }

    fn start_attempt(&mut self, id: CheckId, attempt: u32, now: Instant) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let serial = slot.next_serial;
        slot.next_serial += 1;
        slot.status.stats.attempts += 1;
        let timeout = slot.timing.timeout;
        self.set_phase(
            id,
            Phase::Probing {
                serial,
                attempt,
                started: now,
                deadline: now + timeout,
            },
        );
        self.outputs.push_back(Output::StartProbe(ProbeRequest {
            token: ProbeToken { check: id, serial },
            attempt,
            timeout,
        }));
    }

    fn finish_attempt(
        &mut self,
        id: CheckId,
        attempt: u32,
        result: ProbeResult,
        latency: Duration,
        now: Instant,
    ) {
        let jitter = match self.slots.get(&id) {
            Some(slot) => self.rng.duration_below(slot.timing.jitter),
            None => return,
        };
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        slot.status.last_latency = Some(latency);
        let next_round = Phase::Waiting {
            due: now + slot.timing.delay_loop + jitter,
            attempt: 0,
        };
        let status = &mut slot.status;
        let previous = status.health;
        let previous_weight = status.weight;
        let next_phase = match result {
            Ok(success) => {
                status.stats.successes += 1;
                status.last_reason = None;
                status.failed_rounds = 0;
                status.good_rounds = status.good_rounds.saturating_add(1);
                status.weight = success.weight;
                if previous == Health::Down && status.good_rounds >= slot.timing.rise {
                    status.health = Health::Up;
                }
                next_round
            }
            Err(reason) => {
                status.stats.failures += 1;
                status.last_reason = Some(reason.clone());
                if attempt < slot.timing.retry {
                    Phase::Waiting {
                        due: now + slot.timing.delay_before_retry,
                        attempt: attempt + 1,
                    }
                } else {
                    status.stats.failed_rounds += 1;
                    status.good_rounds = 0;
                    status.failed_rounds = status.failed_rounds.saturating_add(1);
                    if previous == Health::Up && status.failed_rounds >= slot.timing.fall {
                        status.health = Health::Down;
                    }
                    next_round
                }
            }
        };
        let health = status.health;
        let weight_changed =
            health == Health::Up && previous == Health::Up && status.weight != previous_weight;
        if health != previous || weight_changed {
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
                at: now,
            }));
        }
        self.set_phase(id, next_phase);
    }
}
