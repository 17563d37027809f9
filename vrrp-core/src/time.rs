//! Time as the caller gives it: a [`Timestamp`] on the caller's own clock and
//! [`Centisecs`], the unit VRRP intervals travel in.

use core::fmt;
use core::ops::{Add, Sub};
use std::time::Duration;

/// A point in time on the caller's clock, in nanoseconds since an epoch the
/// caller picks (process start, simulation start, ...).
///
/// The engine never reads a clock: every `handle_*` and `poll_timeout` call
/// works with the `Timestamp` it is given, so tests can drive it with
/// simulated time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// A timestamp `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// A timestamp `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The time since the epoch as a [`Duration`].
    pub const fn since_epoch(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl From<Duration> for Timestamp {
    fn from(d: Duration) -> Self {
        Timestamp(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    /// Saturates at the end of time rather than wrapping.
    fn add(self, rhs: Duration) -> Timestamp {
        let add = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(add))
    }
}

impl Sub for Timestamp {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, rhs: Timestamp) -> Duration {
        self.saturating_since(rhs)
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    /// Saturates at the epoch.
    fn sub(self, rhs: Duration) -> Timestamp {
        let sub = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(sub))
    }
}

impl fmt::Display for Timestamp {
    /// Seconds with microseconds: `13.632912s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0 / 1_000;
        write!(f, "{}.{:06}s", micros / 1_000_000, micros % 1_000_000)
    }
}

/// A duration in centiseconds, the unit of the VRRPv3 Max Advertise
/// Interval (12 bits on the wire) and the unit this crate keeps every
/// advertisement interval in. VRRPv2 intervals are whole seconds and are
/// stored as multiples of 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Centisecs(u16);

impl Centisecs {
    /// The largest interval VRRPv3 can carry (12 bits): 40.95 s.
    pub const V3_MAX: Centisecs = Centisecs(4095);
    /// The largest interval VRRPv2 can carry (8 bits of seconds).
    pub const V2_MAX: Centisecs = Centisecs(25_500);
    /// keepalived's and the RFCs' default: one second.
    pub const ONE_SECOND: Centisecs = Centisecs(100);

    /// `cs` centiseconds.
    pub const fn new(cs: u16) -> Self {
        Centisecs(cs)
    }

    /// `secs` whole seconds; `None` if that does not fit in 16 bits of
    /// centiseconds.
    pub const fn from_secs(secs: u16) -> Option<Self> {
        match secs.checked_mul(100) {
            Some(cs) => Some(Centisecs(cs)),
            None => None,
        }
    }

    /// The nearest whole number of centiseconds in `d`, if it fits.
    pub fn from_duration(d: Duration) -> Option<Self> {
        let cs = (d.as_nanos() + 5_000_000) / 10_000_000;
        u16::try_from(cs).ok().map(Centisecs)
    }

    /// The raw count of centiseconds.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// As a [`Duration`].
    pub const fn as_duration(self) -> Duration {
        Duration::from_millis(self.0 as u64 * 10)
    }

    /// As nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0 as u64 * 10_000_000
    }
}

impl fmt::Display for Centisecs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(100) {
            write!(f, "{}s", self.0 / 100)
        } else {
            write!(f, "{}ms", u32::from(self.0) * 10)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp::from_millis(5);
        assert_eq!(t + Duration::from_millis(3), Timestamp::from_millis(8));
        assert_eq!(t - Timestamp::from_millis(7), Duration::ZERO);
        assert_eq!(
            Timestamp::from_nanos(u64::MAX) + Duration::from_secs(1),
            Timestamp::from_nanos(u64::MAX)
        );
        assert_eq!(
            Timestamp::from(Duration::from_micros(1500)).as_nanos(),
            1_500_000
        );
    }

    #[test]
    fn centisecs_conversions() {
        assert_eq!(Centisecs::from_secs(3), Some(Centisecs::new(300)));
        assert_eq!(Centisecs::from_secs(1000), None);
        assert_eq!(
            Centisecs::from_duration(Duration::from_millis(150)),
            Some(Centisecs::new(15))
        );
        assert_eq!(Centisecs::new(15).as_duration(), Duration::from_millis(150));
        assert_eq!(Centisecs::new(15).to_string(), "150ms");
        assert_eq!(Centisecs::new(200).to_string(), "2s");
    }
}
