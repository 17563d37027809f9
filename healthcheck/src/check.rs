//! Identifiers, health states and per-check timing: the vocabulary shared by
//! the sans-IO [`Scheduler`](crate::Scheduler) and the tokio runner.

use std::fmt;
use std::time::Duration;

use crate::error::ConfigError;

/// Longest duration any [`Timing`] field may hold: 365 days.
///
/// Every deadline is an instant plus one of these durations; capping them
/// keeps that sum far from the end of `Instant`'s range (an overflow there
/// panics) and within tokio's timer range (about two years). A configuration
/// layer should reject larger values with its own file and line before they
/// reach [`Timing::validate`], which rejects them too.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Identifies one check inside a [`Scheduler`](crate::Scheduler) or a runner.
///
/// The runner allocates ids; a consumer keeps its own map from id to what the
/// check guards (a tracked object, a real server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckId(u32);

impl CheckId {
    /// Wraps a raw id.
    #[must_use]
    pub const fn new(raw: u32) -> Self {
        Self(raw)
    }

    /// The raw id.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "check#{}", self.0)
    }
}

/// Whether the checked service is considered usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Health {
    /// The service answers as expected (after `rise` good rounds).
    Up,
    /// The service failed `fall` rounds in a row (or started down).
    Down,
}

impl Health {
    /// `true` for [`Health::Up`].
    #[must_use]
    pub const fn is_up(self) -> bool {
        matches!(self, Health::Up)
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Up => "up",
            Health::Down => "down",
        })
    }
}

/// When a check runs and how its results become an up/down decision.
///
/// Names and defaults follow keepalived's checker options where keepalived has
/// one (`delay_loop`, `connect_timeout`, `retry`, `delay_before_retry`,
/// `warmup`); `rise`/`fall` come from keepalived's `vrrp_script`.
///
/// A *round* is one probe plus up to `retry` retries spaced by
/// `delay_before_retry`; the round succeeds at the first successful attempt
/// and fails when every attempt failed. `rise` good rounds in a row bring a
/// down check up, `fall` failed rounds in a row bring an up check down. The
/// next round is due `delay_loop` (± half the jitter) after the previous one
/// was due, and not before it ended: a healthy check keeps an exact cadence
/// (keepalived waits `delay_loop` after the end of a round, so its rate falls
/// behind by the check's latency). Every duration is at most
/// [`MAX_DURATION`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timing {
    /// Time from one round's start to the next one's.
    pub delay_loop: Duration,
    /// Upper bound on one attempt, connection set-up included.
    pub timeout: Duration,
    /// Extra attempts after a failed one before the round counts as failed.
    pub retry: u32,
    /// Pause before each retry.
    pub delay_before_retry: Duration,
    /// Good rounds in a row that bring a down check up (at least 1).
    pub rise: u32,
    /// Failed rounds in a row that bring an up check down (at least 1).
    pub fall: u32,
    /// Health assumed before the first decision.
    pub initial: Health,
    /// The first round starts after a random delay in `[0, warmup)`, so that
    /// checks added together do not fire together.
    pub warmup: Duration,
    /// Each `delay_loop` is moved by a random amount in
    /// `[-jitter/2, +jitter/2)`, so that checks that failed together do not
    /// stay in step; the average cadence stays `delay_loop`.
    pub jitter: Duration,
    /// keepalived's rule for a tracked script without `init_fail`: the
    /// check is undecided until its first round ends, and that round sets
    /// the health whatever `rise` and `fall` say; later rounds count `rise`
    /// and `fall` as usual. `initial` is the health assumed meanwhile, and
    /// [`CheckStatus::decided`](crate::CheckStatus::decided) tells the two
    /// apart.
    pub first_round_decides: bool,
}

impl Timing {
    /// keepalived-like defaults for the given `delay_loop`: timeout 5 s,
    /// one retry after 1 s, rise 1, fall 1, initially up, warmup one
    /// `delay_loop`, jitter a tenth of it (so ±5 %).
    #[must_use]
    pub fn every(delay_loop: Duration) -> Self {
        Self {
            delay_loop,
            timeout: Duration::from_secs(5),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            rise: 1,
            fall: 1,
            initial: Health::Up,
            warmup: delay_loop,
            jitter: delay_loop / 10,
            first_round_decides: false,
        }
    }

    /// Checks the invariants the scheduler relies on.
    ///
    /// # Errors
    /// [`ConfigError::InvalidTiming`] when `delay_loop` or `timeout` is zero
    /// or `rise`/`fall` is zero; [`ConfigError::DurationTooLong`] when a
    /// duration exceeds [`MAX_DURATION`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("delay_loop", self.delay_loop),
            ("timeout", self.timeout),
            ("delay_before_retry", self.delay_before_retry),
            ("warmup", self.warmup),
            ("jitter", self.jitter),
        ] {
            if value > MAX_DURATION {
                return Err(ConfigError::DurationTooLong {
                    field,
                    value,
                    max: MAX_DURATION,
                });
            }
        }
        let problem = if self.delay_loop.is_zero() {
            "delay_loop must be greater than zero"
        } else if self.timeout.is_zero() {
            "timeout must be greater than zero"
        } else if self.rise == 0 {
            "rise must be at least 1"
        } else if self.fall == 0 {
            "fall must be at least 1"
        } else {
            return Ok(());
        };
        Err(ConfigError::InvalidTiming(problem))
    }
}

impl Default for Timing {
    /// keepalived's `delay_loop` default of 60 s, see [`Timing::every`].
    fn default() -> Self {
        Self::every(Duration::from_secs(60))
    }
}
