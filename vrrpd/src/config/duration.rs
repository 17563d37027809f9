//! Durations as users write them: `"1s"`, `"150ms"`, `"2m"`, `"1h"`,
//! `"1.5s"`, or a plain number of seconds (`advert_int = 1`, as in
//! keepalived.conf).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configured duration. Deserialises from a string with a unit or a
/// number of seconds; serialises to the shortest exact string form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    /// `secs` seconds.
    pub const fn secs(secs: u64) -> Self {
        Dur(Duration::from_secs(secs))
    }

    /// `ms` milliseconds.
    #[cfg(test)]
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

/// The longest duration accepted: a year. Any timer longer is surely a
/// mistake, and this bound keeps every sum and every product with a
/// 32-bit count (a timeout times `fall`, a delay times `retry`) far from
/// overflowing a `Duration` or the monotonic clock, so no configured
/// value can make the daemon panic at run time.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a duration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration.
    #[error(
        "invalid duration `{0}`: write a number with a unit (\"150ms\", \"1s\", \"2m\", \"1h\") or a number of seconds"
    )]
    Invalid(String),
    /// Longer than [`MAX_DURATION`].
    #[error("duration `{0}` is longer than a year, the longest vrrpd accepts")]
    TooLong(String),
}

/// `d` if it is at most [`MAX_DURATION`].
fn bounded(d: Duration, text: impl FnOnce() -> String) -> Result<Duration, DurationError> {
    if d > MAX_DURATION {
        Err(DurationError::TooLong(text()))
    } else {
        Ok(d)
    }
}

/// Parses `"1s"`, `"150ms"`, `"1.5s"`, `"2m"`, `"1h"`, `"10us"` or `"3"`
/// (seconds). Negative, empty and malformed values are refused, and so are
/// values longer than [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError::Invalid(text.to_owned());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let nanos_per_unit: u128 = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" | "µs" => 1_000,
        "ns" => 1,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(err()),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(err());
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    // No bound on the integer's digits: u128 parsing and the checked
    // arithmetic below refuse what does not fit, and the printed form of a
    // large duration with nanoseconds has up to 29 digits.
    if frac.contains('.') || frac.len() > 9 {
        return Err(err());
    }
    let int: u128 = int.parse().map_err(|_| err())?;
    let mut nanos = int.checked_mul(nanos_per_unit).ok_or_else(err)?;
    if !frac.is_empty() {
        let digits: u128 = frac.parse().map_err(|_| err())?;
        let scale = 10u128.pow(u32::try_from(frac.len()).map_err(|_| err())?);
        nanos = nanos
            .checked_add(digits * nanos_per_unit / scale)
            .ok_or_else(err)?;
    }
    if nanos > MAX_DURATION.as_nanos() {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| err())?;
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| err())?;
    bounded(Duration::new(secs, sub), || t.to_owned())
}

/// The shortest exact form: `"2m"`, `"1s"`, `"150ms"`, `"10us"`, `"0s"`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    for (unit, per) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if nanos.is_multiple_of(per) {
            return format!("{}{unit}", nanos / per);
        }
    }
    format!("{nanos}ns")
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"1s\" or \"150ms\", or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                let secs =
                    u64::try_from(v).map_err(|_| E::custom(format!("negative duration {v}")))?;
                self.visit_u64(secs)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                bounded(Duration::from_secs(v), || v.to_string())
                    .map(Dur)
                    .map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                if v.is_finite() && v > MAX_DURATION.as_secs_f64() {
                    return Err(E::custom(DurationError::TooLong(v.to_string())));
                }
                let d = Duration::try_from_secs_f64(v)
                    .map_err(|_| E::custom(format!("invalid duration {v}")))?;
                bounded(d, || v.to_string()).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_plain_seconds() {
        let cases = [
            ("1s", Duration::from_secs(1)),
            ("150ms", Duration::from_millis(150)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.01", Duration::from_millis(10)),
            ("3", Duration::from_secs(3)),
            ("10us", Duration::from_micros(10)),
            (" 5 s ", Duration::from_secs(5)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "s",
            "1x",
            "-1s",
            "1..2s",
            ".5s",
            "5.s",
            "1e3s",
            "99999999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_durations_longer_than_a_year() {
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("31536000"), Ok(MAX_DURATION));
        for long in [
            "3000000000000000h",
            "8761h",
            "31536000.000000001",
            "18446744073709551615s",
        ] {
            assert_eq!(
                parse_duration(long),
                Err(DurationError::TooLong(long.to_owned())),
                "{long}"
            );
        }
        #[derive(Deserialize, Debug)]
        struct T {
            #[allow(dead_code)]
            a: Dur,
        }
        for text in [
            "a = \"3000000000000000h\"",
            "a = 31536001",
            "a = 1e300",
            "a = 9223372036854775807",
        ] {
            let e = toml::from_str::<T>(text).expect_err(text).to_string();
            assert!(e.contains("longer than a year"), "{text}: {e}");
        }
        assert!(toml::from_str::<T>("a = 31536000").is_ok());
    }

    #[test]
    fn formats_shortest_exact() {
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_millis(150)), "150ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
        for d in ["1h", "90s", "150ms", "10us", "7ns"] {
            let parsed = parse_duration(d).expect("valid");
            assert_eq!(parse_duration(&format_duration(parsed)), Ok(parsed));
        }
    }

    /// Found by fuzz/fuzz_targets/toml_config.rs: `vrrpd check` printed
    /// "100000000000000000001ns" for "100000000000.000000001s", which did
    /// not load back (more than 20 digits), and accepted durations no
    /// clock can hold ("3000000000000000h"), which failed at run time.
    #[test]
    fn every_duration_prints_to_a_form_that_parses_back_up_to_the_limit() {
        for d in [
            MAX_DURATION,
            MAX_DURATION - Duration::from_nanos(1),
            Duration::new(12_345_678, 1),
            Duration::from_nanos(u64::from(u32::MAX) * 7),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        assert_eq!(parse_duration("365d").ok(), None, "no unit d");
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        for too_long in [
            "8760.000000001h",
            "31536001",
            "3000000000000000h",
            "100000000000.000000001s",
            "18446744073709551615s",
        ] {
            assert_eq!(
                parse_duration(too_long),
                Err(DurationError::TooLong(too_long.to_owned()))
            );
        }
        assert!(matches!(
            parse_duration(&"9".repeat(40)),
            Err(DurationError::Invalid(_))
        ));
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct T {
            a: Dur,
        }
        for too_long in ["a = 31536001", "a = 3.2e7", "a = \"3000000000000000h\""] {
            let e = toml::from_str::<T>(too_long).expect_err(too_long);
            assert!(e.to_string().contains("longer than a year"), "{e}");
        }
        assert!(toml::from_str::<T>("a = 31536000").is_ok());
    }

    #[test]
    fn deserialises_strings_integers_and_floats() {
        #[derive(Deserialize)]
        struct T {
            a: Dur,
            b: Dur,
            c: Dur,
        }
        let t: T = toml::from_str("a = \"150ms\"\nb = 2\nc = 0.5").expect("valid");
        assert_eq!(t.a, Dur::millis(150));
        assert_eq!(t.b, Dur::secs(2));
        assert_eq!(t.c, Dur::millis(500));
        assert!(toml::from_str::<T>("a = -1\nb = 1\nc = 1").is_err());
        assert!(toml::from_str::<T>("a = true\nb = 1\nc = 1").is_err());
    }
}
