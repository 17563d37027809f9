//! The control measurement of `benches/vrrp_scale.sh`: how late this
//! machine wakes a thread that sleeps to a 10 ms cadence, with nothing
//! else to do. A VRRP master is such a thread; when it wakes more than
//! Master_Down_Interval - Advertisement_Interval late (26.09 ms for a
//! priority-100 backup at 10 ms), every backup legitimately hears a silent
//! master, whatever program runs. On a virtual machine the cause is
//! usually the hypervisor not running the vCPU (steal time).
//!
//! ```sh
//! cargo run --release --example wake_latency -- 60
//! ```
//!
//! A second argument sets another cadence in milliseconds
//! (`benches/healthcheck_vs_keepalived.sh` uses 1 ms, a health-check
//! runner's timer granularity).
//!
//! Prints one `key=value` line: `wakes`, `late_over_10ms`,
//! `late_over_26ms`, `p50_ms`, `p99_ms`, `max_ms`, `interval_ms`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

const DEFAULT_INTERVAL: Duration = Duration::from_millis(10);
/// Master_Down_Interval - Advertisement_Interval for priority 100 at 10 ms.
const SILENCE: Duration = Duration::from_nanos(26_093_750);

fn main() -> Result<()> {
    let seconds: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().context("usage: wake_latency [SECONDS]")?,
        None => 60,
    };
    let interval = match std::env::args().nth(2) {
        Some(s) => Duration::from_millis(
            s.parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .context("usage: wake_latency [SECONDS] [INTERVAL_MS > 0]")?,
        ),
        None => DEFAULT_INTERVAL,
    };
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut late = Vec::new();
    let mut next = Instant::now() + interval;
    while next < end {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let woke = Instant::now();
        let by = woke.saturating_duration_since(next);
        late.push(by);
        // Like an advertisement timer: keep the cadence unless a whole
        // interval was lost.
        next = if by > interval { woke } else { next } + interval;
    }
    late.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p50 = late.get(late.len() / 2).copied().unwrap_or_default();
    let p99 = late.get(late.len() * 99 / 100).copied().unwrap_or_default();
    println!(
        "wakes={} late_over_10ms={} late_over_26ms={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} interval_ms={}",
        late.len(),
        late.iter()
            .filter(|d| **d > Duration::from_millis(10))
            .count(),
        late.iter().filter(|d| **d > SILENCE).count(),
        ms(p50),
        ms(p99),
        ms(late.last().copied().unwrap_or_default()),
        interval.as_millis()
    );
    Ok(())
}
