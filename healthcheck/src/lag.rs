//! [`LagHistogram`]: how late attempts start compared with when they were
//! due, the figure that says whether a runner keeps its schedule.

use std::time::Duration;

/// Sub-buckets per power of two: 8, so a quantile is within 12.5 %.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any `u64` number of microseconds.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// A log-linear histogram of scheduling lag, in microseconds: exact below
/// 8 µs, then 8 buckets per power of two (each quantile within 12.5 %).
///
/// [`Scheduler`](crate::Scheduler) records one sample per attempt it starts:
/// the time between the instant the attempt was due and the `now` at which
/// it was handed out (timer lateness, a busy event loop and waiting for a
/// concurrency slot all show up here).
#[derive(Clone, PartialEq, Eq)]
pub struct LagHistogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    max_micros: u64,
}

impl Default for LagHistogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            max_micros: 0,
        }
    }
}

impl std::fmt::Debug for LagHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagHistogram")
            .field("count", &self.count)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max())
            .finish()
    }
}

fn bucket_of(micros: u64) -> usize {
    if micros < SUB {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros(); // >= SUB_BITS
    let sub = (micros >> (exponent - SUB_BITS)) & (SUB - 1);
    ((exponent - SUB_BITS + 1) as usize) * SUB as usize + sub as usize
}

/// Largest value (exclusive) that falls in `bucket`.
fn upper_bound(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < SUB {
        return bucket + 1;
    }
    let exponent = bucket / SUB + u64::from(SUB_BITS) - 1;
    let sub = bucket % SUB;
    let width = 1_u64 << (exponent - u64::from(SUB_BITS));
    ((SUB + sub) << (exponent - u64::from(SUB_BITS))).saturating_add(width)
}

impl LagHistogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample.
    pub fn record(&mut self, lag: Duration) {
        let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        if let Some(slot) = self.counts.get_mut(bucket_of(micros)) {
            *slot = slot.saturating_add(1);
        }
        self.count = self.count.saturating_add(1);
        self.max_micros = self.max_micros.max(micros);
    }

    /// Number of samples.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest sample (to the microsecond).
    #[must_use]
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_micros)
    }

    /// The lag that a fraction `q` (0.0..=1.0) of the samples do not exceed,
    /// rounded up to its bucket's bound (at most 12.5 % over, never under),
    /// and never above [`max`](Self::max). Zero when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // Rank of the sample asked for, 1-based; the cast saturates.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0_u64;
        for (bucket, n) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(*n);
            if seen >= rank {
                let bound = upper_bound(bucket).saturating_sub(1);
                return Duration::from_micros(bound.min(self.max_micros));
            }
        }
        self.max()
    }

    /// The samples recorded since `earlier` (a clone of this histogram taken
    /// before), for measuring a window. The window's maximum is not known:
    /// it is reported as the largest bucket bound seen in the window.
    #[must_use]
    pub fn since(&self, earlier: &LagHistogram) -> LagHistogram {
        let mut out = LagHistogram::new();
        let mut top = None;
        for (bucket, (now, before)) in self.counts.iter().zip(earlier.counts.iter()).enumerate() {
            let n = now.saturating_sub(*before);
            if let Some(slot) = out.counts.get_mut(bucket) {
                *slot = n;
            }
            out.count = out.count.saturating_add(n);
            if n > 0 {
                top = Some(bucket);
            }
        }
        out.max_micros = top.map_or(0, |bucket| {
            upper_bound(bucket).saturating_sub(1).min(self.max_micros)
        });
        out
    }
}

/// Upper bounds of [`DurationBuckets`]' buckets, in microseconds (a last
/// bucket takes everything above): from half a millisecond to 30 s, the
/// range of both a check's duration and a runner's lateness.
pub const BUCKET_BOUNDS_MICROS: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Durations counted in fixed buckets ([`BUCKET_BOUNDS_MICROS`]) with their
/// sum: what a Prometheus histogram exports, exactly (unlike
/// [`LagHistogram`], whose buckets do not fall on round bounds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationBuckets {
    /// Per bucket (not cumulative); the last one is above every bound.
    pub counts: [u64; BUCKET_BOUNDS_MICROS.len() + 1],
    /// Sum of the samples, in microseconds (saturating).
    pub sum_micros: u64,
}

impl DurationBuckets {
    /// Counts `d`.
    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKET_BOUNDS_MICROS
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(BUCKET_BOUNDS_MICROS.len());
        if let Some(slot) = self.counts.get_mut(i) {
            *slot = slot.saturating_add(1);
        }
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }

    /// How many samples were counted.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0, |a, n| a.saturating_add(*n))
    }

    /// Adds `other`'s samples to these.
    pub fn merge(&mut self, other: &DurationBuckets) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_take_their_bound_and_merge() {
        let mut b = DurationBuckets::default();
        b.record(Duration::from_micros(500));
        b.record(Duration::from_micros(501));
        b.record(Duration::from_secs(60));
        assert_eq!(b.counts[0], 1, "a bound is in its bucket");
        assert_eq!(b.counts[1], 1);
        assert_eq!(b.counts[BUCKET_BOUNDS_MICROS.len()], 1, "above every bound");
        assert_eq!(b.count(), 3);
        assert_eq!(b.sum_micros, 60_001_001);
        let mut total = b;
        total.merge(&b);
        assert_eq!((total.count(), total.sum_micros), (6, 120_002_002));
    }

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut previous = 0;
        for micros in (0..100_000_u64).chain([u64::MAX / 2, u64::MAX]) {
            let bucket = bucket_of(micros);
            assert!(bucket < BUCKETS, "{micros} -> {bucket}");
            assert!(bucket >= previous || micros > 100_000);
            assert!(micros < upper_bound(bucket) || upper_bound(bucket) == u64::MAX);
            if bucket > 0 && micros < 100_000 {
                assert!(micros >= upper_bound(bucket - 1), "{micros}");
            }
            previous = bucket;
        }
    }

    #[test]
    fn quantiles_are_within_an_eighth() {
        let mut h = LagHistogram::new();
        for micros in 1..=1000_u64 {
            h.record(Duration::from_micros(micros * 10));
        }
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((9900.0..=9900.0 * 1.125).contains(&p99), "{p99}");
        let p50 = h.quantile(0.5).as_micros() as f64;
        assert!((5000.0..=5000.0 * 1.125).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), Duration::from_micros(10_000));
        assert_eq!(h.max(), Duration::from_micros(10_000));
        assert_eq!(h.count(), 1000);
        assert_eq!(LagHistogram::new().quantile(0.99), Duration::ZERO);
    }

    #[test]
    fn a_window_is_the_difference() {
        let mut h = LagHistogram::new();
        h.record(Duration::from_secs(5));
        let before = h.clone();
        for _ in 0..100 {
            h.record(Duration::from_micros(3));
        }
        let window = h.since(&before);
        assert_eq!(window.count(), 100);
        assert_eq!(window.quantile(0.99), Duration::from_micros(3));
        assert_eq!(window.max(), Duration::from_micros(3));
    }
}
