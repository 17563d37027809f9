//! The systemd watchdog, fed by the VRRP loop's own progress: the driver
//! publishes its status at least every second from its loop (and on every
//! transition), and `WATCHDOG=1` is sent only when a new status arrived
//! since the last ping. A stalled driver loop (a stuck thread, a kernel
//! call that never returns) therefore stops the pings, and systemd kills
//! and restarts the daemon after `WatchdogSec=`; so does a stalled daemon
//! loop, which is where the pings are sent from.

use std::time::Duration;

use tokio::sync::watch;
use vrrp_net::driver::Snapshot;

/// The smallest `WatchdogSec=` that works: two of the driver's one-second
/// publications must fit in one ping period (half of it).
pub const MIN_WATCHDOG: Duration = Duration::from_secs(4);

/// Pings systemd while the driver makes progress.
#[derive(Debug)]
pub struct Watchdog {
    period: Duration,
    progress: watch::Receiver<Snapshot>,
    /// Pings sent, and periods without progress.
    pub pings: u64,
    /// Periods that saw no progress (no ping sent).
    pub missed: u64,
}

impl Watchdog {
    /// The watchdog systemd asked for (`WATCHDOG_USEC` for our pid), fed
    /// by `progress` (the driver's status watch); `None` when it asked for
    /// none.
    pub fn from_systemd(progress: watch::Receiver<Snapshot>) -> Option<Self> {
        let timeout = sd_notify::watchdog_enabled()?;
        if timeout < MIN_WATCHDOG {
            tracing::warn!(?timeout, min = ?MIN_WATCHDOG, "WatchdogSec is shorter than the driver's progress can prove; pings may be missed");
        }
        Some(Self::new(timeout, progress))
    }

    /// A watchdog of `timeout`, pinging every half of it.
    pub fn new(timeout: Duration, mut progress: watch::Receiver<Snapshot>) -> Self {
        progress.mark_unchanged();
        Watchdog {
            period: timeout / 2,
            progress,
            pings: 0,
            missed: 0,
        }
    }

    /// How often [`Watchdog::tick`] must be called.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Pings when the driver published since the last call; returns
    /// whether it did.
    pub fn tick(&mut self) -> bool {
        if self.progress.has_changed().unwrap_or(false) {
            self.progress.mark_unchanged();
            self.pings += 1;
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            true
        } else {
            self.missed += 1;
            tracing::error!("no progress from the VRRP driver loop: watchdog ping withheld");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_only_after_the_driver_published() {
        let (tx, rx) = watch::channel(Snapshot::default());
        let mut w = Watchdog::new(Duration::from_secs(10), rx);
        assert_eq!(w.period(), Duration::from_secs(5));
        assert!(!w.tick(), "nothing published yet");
        // The driver publishes every second, equal or not.
        tx.send_replace(Snapshot::default());
        tx.send_replace(Snapshot::default());
        assert!(w.tick());
        assert!(!w.tick(), "stalled: no ping");
        tx.send_replace(Snapshot::default());
        assert!(w.tick());
        assert_eq!((w.pings, w.missed), (2, 2));
    }
}
