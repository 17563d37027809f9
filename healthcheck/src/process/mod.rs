//! keepalived's `vrrp_track_process`: counts of running processes, quorum
//! gained and lost as processes start and stop.
//!
//! The design is keepalived's (`core/track_process.c`): one scan of
//! `/proc` at start, then the kernel's process events (fork, exec, name
//! change, exit) through the netlink process connector, so a process that
//! dies is seen at once, without polling. The connector exists in the
//! initial network namespace only: in another one (a daemon run with `ip
//! netns exec`), the socket is opened from the initial namespace
//! ([`WatchOptions::initial_namespace`]) when the process may enter it
//! (root, same PID namespace, `/proc/1/ns/net` readable). Where the connector
//! cannot be had at all, [`ProcessWatcher`] scans `/proc` every
//! [`WatchOptions::poll_interval`] instead ([`WatchMode::Polling`]). Lost
//! events (`ENOBUFS`) are repaired by a rescan, as keepalived does.
//!
//! The decisions are [`ProcessTracker`]'s, sans-IO and tested in simulated
//! time.

mod connector;
mod procfs;
mod tracker;

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use procfs::{read_process, scan};
pub use tracker::{
    ParamMatch, ProcessEvent, ProcessInfo, ProcessSpec, ProcessTracker, QuorumChange,
};

/// How processes are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchMode {
    /// The kernel's process connector, in this network namespace.
    Connector,
    /// The process connector, opened from the initial network namespace.
    ConnectorFromInitialNamespace,
    /// A scan of `/proc` every so often.
    Polling(Duration),
}

/// How to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// Scan period when the process connector is not available (100 ms).
    pub poll_interval: Duration,
    /// Use the process connector when it can be had (default); off, always
    /// poll.
    pub use_connector: bool,
    /// The initial network namespace, where the connector is when this
    /// thread's namespace has none (`/proc/1/ns/net`).
    pub initial_namespace: std::path::PathBuf,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            poll_interval: Duration::from_millis(100),
            use_connector: true,
            initial_namespace: std::path::PathBuf::from("/proc/1/ns/net"),
        }
    }
}

/// Why process tracking could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// `/proc` could not be read.
    #[error("cannot scan /proc: {0}")]
    Scan(std::io::Error),
}

/// The running watcher: the initial states, then each quorum change.
#[derive(Debug)]
pub struct ProcessWatcher {
    initial: Vec<QuorumChange>,
    mode: WatchMode,
    why_polling: Option<String>,
    rx: mpsc::UnboundedReceiver<QuorumChange>,
    task: JoinHandle<()>,
}

impl ProcessWatcher {
    /// Scans `/proc`, subscribes to process events (or falls back to
    /// polling) and starts watching, until `cancel`.
    ///
    /// # Errors
    /// [`ProcessError::Scan`] when `/proc` cannot be read.
    pub fn start(
        specs: Vec<ProcessSpec>,
        options: &WatchOptions,
        cancel: CancellationToken,
    ) -> Result<Self, ProcessError> {
        let probe = ProcessTracker::new(specs.clone(), &[]);
        let cmdline = probe.needs_cmdline();
        // Subscribe first, scan second: a process started in between is
        // seen by both, which the tracker counts once.
        let mut why_polling = None;
        let socket = if options.use_connector {
            match connector::open(&options.initial_namespace) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "no process connector: tracked processes are polled");
                    why_polling = Some(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        let running = scan(cmdline).map_err(ProcessError::Scan)?;
        let tracker = ProcessTracker::new(specs, &running);
        let initial = tracker.states();
        let (tx, rx) = mpsc::unbounded_channel();
        let (mode, task) = match socket {
            Some((socket, from_initial)) => {
                let mode = if from_initial {
                    WatchMode::ConnectorFromInitialNamespace
                } else {
                    WatchMode::Connector
                };
                (
                    mode,
                    tokio::spawn(events(tracker, socket, cmdline, tx, cancel)),
                )
            }
            None => (
                WatchMode::Polling(options.poll_interval),
                tokio::spawn(polling(tracker, options.poll_interval, cmdline, tx, cancel)),
            ),
        };
        Ok(ProcessWatcher {
            initial,
            mode,
            why_polling,
            rx,
            task,
        })
    }

    /// Each tracker's state at start.
    #[must_use]
    pub fn initial(&self) -> &[QuorumChange] {
        &self.initial
    }

    /// How processes are watched.
    #[must_use]
    pub fn mode(&self) -> WatchMode {
        self.mode
    }

    /// Why the process connector could not be used, when it was wanted.
    #[must_use]
    pub fn why_polling(&self) -> Option<&str> {
        self.why_polling.as_deref()
    }

    /// The next quorum change; `None` once the watcher stopped.
    pub async fn next(&mut self) -> Option<QuorumChange> {
        self.rx.recv().await
    }

    /// Stops watching.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// Sends every pending change; false once nobody listens.
fn drain(tracker: &mut ProcessTracker, tx: &mpsc::UnboundedSender<QuorumChange>) -> bool {
    while let Some(change) = tracker.poll_change() {
        if tx.send(change).is_err() {
            return false;
        }
    }
    true
}

/// Sleeps until the tracker's next delay runs out (forever without one).
async fn next_deadline(tracker: &ProcessTracker) {
    match tracker.poll_timeout() {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

async fn events(
    mut tracker: ProcessTracker,
    socket: connector::Socket,
    cmdline: bool,
    tx: mpsc::UnboundedSender<QuorumChange>,
    cancel: CancellationToken,
) {
    let mut socket = socket;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = next_deadline(&tracker) => tracker.handle_timeout(Instant::now()),
            batch = socket.next_batch() => match batch {
                Ok(events) => {
                    let now = Instant::now();
                    for event in events {
                        let event = match event {
                            connector::Raw::Exec(pid) => {
                                ProcessEvent::Exec(pid, read_process(pid, cmdline))
                            }
                            connector::Raw::Event(e) => e,
                        };
                        tracker.handle_event(&event, now);
                    }
                }
                Err(connector::RecvError::Overrun) => {
                    tracing::warn!("process events were lost (receive buffer overrun): rescanning /proc");
                    socket.grow_buffer();
                    match scan(cmdline) {
                        Ok(running) => tracker.handle_rescan(&running, Instant::now()),
                        Err(e) => tracing::error!(error = %e, "cannot scan /proc"),
                    }
                }
                Err(connector::RecvError::Io(e)) => {
                    tracing::error!(error = %e, "process connector failed: polling /proc from now on");
                    drop(socket);
                    polling(tracker, WatchOptions::default().poll_interval, cmdline, tx, cancel).await;
                    return;
                }
            },
        }
        if !drain(&mut tracker, &tx) {
            return;
        }
    }
}

async fn polling(
    mut tracker: ProcessTracker,
    period: Duration,
    cmdline: bool,
    tx: mpsc::UnboundedSender<QuorumChange>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = next_deadline(&tracker) => tracker.handle_timeout(Instant::now()),
            _ = tick.tick() => match scan(cmdline) {
                Ok(running) => tracker.handle_rescan(&running, Instant::now()),
                Err(e) => tracing::error!(error = %e, "cannot scan /proc"),
            },
        }
        if !drain(&mut tracker, &tx) {
            return;
        }
    }
}
