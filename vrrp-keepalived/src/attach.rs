//! One-call attachments for a service embedding the VRRP driver
//! (`vrrp_net::driver`): a health check that moves an instance's priority,
//! and keepalived-style notify scripts. Both run until the driver stops.
//!
//! ```no_run
//! # async fn demo(handle: vrrp_net::driver::VrrpHandle, runner: healthcheck::RunnerHandle)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use healthcheck::{CheckSpec, Probe, TcpCheck, Timing};
//! use vrrp_core::TrackId;
//! use vrrp_keepalived::{Command, NotifyScripts, attach};
//!
//! // The instance tracks TrackId(1) with a weight (InstanceSpec::track).
//! let backend = CheckSpec {
//!     name: "backend".into(),
//!     probe: Probe::Tcp(TcpCheck::new("192.0.2.10:8080".parse()?)),
//!     timing: Timing::every(Duration::from_millis(200)),
//! };
//! attach::track_check(&runner, backend, &handle, TrackId(1))?;
//! let scripts = NotifyScripts {
//!     generic: Some(Command::new(["/usr/local/bin/on-vrrp-change"])),
//!     ..NotifyScripts::default()
//! };
//! attach::notify_scripts(&handle, [("VI_1".to_owned(), scripts)], Duration::from_secs(30));
//! # Ok(()) }
//! ```

use std::time::Duration;

use healthcheck::{CheckSpec, ConfigError, Health, RunnerHandle};
use tokio::task::JoinHandle;
use vrrp_core::TrackId;
use vrrp_net::driver::VrrpHandle;

use crate::event::{EventStream, Translator};
use crate::notify::{Notifier, NotifyScripts};
use crate::queue::ScriptQueues;

/// Runs `check` on `runner` and sets the driver's tracked object `id` up
/// while the check is up, down while it is down (nothing before its first
/// verdict). The check is removed when the driver stops.
///
/// # Errors
/// The runner refused the check.
pub fn track_check(
    runner: &RunnerHandle,
    check: CheckSpec,
    driver: &VrrpHandle,
    id: TrackId,
) -> Result<JoinHandle<()>, ConfigError> {
    let check = runner.add(check)?;
    let mut status = runner.watch(check).ok_or(ConfigError::RunnerStopped)?;
    let (runner, driver) = (runner.clone(), driver.clone());
    Ok(tokio::spawn(async move {
        let mut reported = None;
        loop {
            let now = status.borrow_and_update().clone();
            let up = now.health == Health::Up;
            if now.decided() && reported != Some(up) {
                match driver.set_track(id, up).await {
                    Ok(()) => {}
                    // Tracked by no instance (yet): nothing to move.
                    Err(vrrp_net::driver::DriverError::UnknownTrack(_)) => {}
                    Err(_) => break,
                }
                reported = Some(up);
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() { break },
                _ = driver.wait() => break,
            }
        }
        runner.remove(check);
    }))
}

/// Runs keepalived's notify scripts for the driver's instances (by
/// instance name), in order per instance, none skipped, each within
/// `timeout`; after the driver stops, the queued scripts get `timeout` to
/// finish. The task ends then: await it before the process (or the
/// runtime) ends, or the last calls (`STOP` among them) are lost.
pub fn notify_scripts(
    driver: &VrrpHandle,
    instances: impl IntoIterator<Item = (String, NotifyScripts)>,
    timeout: Duration,
) -> JoinHandle<()> {
    let mut notifier = Notifier::new(ScriptQueues::new(timeout));
    notifier.configure(instances, []);
    let mut events = EventStream::new(
        driver.subscribe_from_start(),
        driver.watch(),
        Translator::default(),
    );
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            notifier.handle(&event);
        }
        notifier.queues().finish(timeout).await;
    })
}
