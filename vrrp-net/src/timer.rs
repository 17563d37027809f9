//! A sub-millisecond timer for the driver. tokio's timer wheel has a
//! resolution of one millisecond and rounds deadlines up, which alone can
//! make a takeover up to 2 ms late; a `timerfd` armed at an absolute
//! CLOCK_MONOTONIC time fires within microseconds.

use std::io;
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::clock_gettime;
use tokio::io::unix::AsyncFd;

/// One re-armable deadline, measured from an epoch taken at creation.
#[derive(Debug)]
pub(crate) struct PreciseTimer {
    fd: AsyncFd<crate::sys::OwnedTimer>,
    /// CLOCK_MONOTONIC at the epoch.
    epoch: Duration,
    armed: bool,
}

impl PreciseTimer {
    /// A disarmed timer whose epoch is now (call right next to the
    /// `Instant::now()` that is the caller's epoch).
    pub(crate) fn new() -> io::Result<Self> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let now = clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_err(io::Error::from)?;
        let epoch = Duration::from(now);
        Ok(PreciseTimer {
            fd: crate::sys::register_timer(timer)?,
            epoch,
            armed: false,
        })
    }

    /// Arms the timer for `at` after the epoch, or disarms it.
    pub(crate) fn reset(&mut self, at: Option<Duration>) -> io::Result<()> {
        match at {
            Some(at) => {
                let when = TimeSpec::from_duration(self.epoch + at.max(Duration::from_nanos(1)));
                self.fd
                    .get_ref()
                    .0
                    .set(
                        Expiration::OneShot(when),
                        TimerSetTimeFlags::TFD_TIMER_ABSTIME,
                    )
                    .map_err(io::Error::from)?;
                self.armed = true;
            }
            None => {
                self.fd.get_ref().0.unset().map_err(io::Error::from)?;
                self.armed = false;
            }
        }
        Ok(())
    }

    /// Waits until the armed deadline passes; never returns while disarmed.
    pub(crate) async fn expired(&mut self) -> io::Result<()> {
        if !self.armed {
            return std::future::pending().await;
        }
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(Ok(())) => {
                    self.armed = false;
                    return Ok(());
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}
