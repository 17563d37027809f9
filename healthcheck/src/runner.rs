//! The tokio driver: runs the probes the [`Scheduler`] asks for and publishes
//! what it decides.
//!
//! It holds no health logic. One task owns the scheduler, keeps a single
//! sleep for the scheduler's next deadline (reset only when the deadline
//! moves), and runs every probe attempt in a [`JoinSet`], so that shutdown
//! aborts them all and nothing outlives the runner.
//!
//! Consumers see results two ways:
//! - a [`broadcast`] stream of [`Transition`]s ([`RunnerHandle::subscribe`]),
//!   for reacting to changes;
//! - a [`watch`] per check with its current [`CheckStatus`]
//!   ([`RunnerHandle::watch`], [`RunnerHandle::snapshot`]), for the state
//!   itself. A subscriber that lags (`RecvError::Lagged`) re-reads the
//!   snapshot and carries on: no state is ever lost, only intermediate
//!   transitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::check::{CheckId, Timing};
use crate::error::{ConfigError, DownReason};
use crate::probe::{Probe, ProbeReport, Prober};
use crate::schedule::{CheckStatus, Output, ProbeToken, Scheduler, Transition};

/// One check: what to probe and when.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    /// Name for logs (`"web1:80"`, the tracked object's name...).
    pub name: String,
    /// What to probe.
    pub probe: Probe,
    /// When, and how results become up/down.
    pub timing: Timing,
}

/// Runner-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Seed of the scheduler's warmup and jitter draws.
    pub seed: u64,
    /// Transitions buffered per subscriber before it lags.
    pub event_capacity: usize,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            seed: 0x6865_616c_7468,
            event_capacity: 1024,
        }
    }
}

enum Command {
    Add {
        id: CheckId,
        prober: Prober,
        timing: Timing,
    },
    Remove(CheckId),
}

struct Entry {
    name: String,
    status: watch::Sender<CheckStatus>,
}

type Registry = Arc<Mutex<BTreeMap<CheckId, Entry>>>;

fn lock(registry: &Registry) -> MutexGuard<'_, BTreeMap<CheckId, Entry>> {
    // The map stays consistent even if a holder panicked: every update is a
    // single insert, remove or watch send.
    registry.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A cheap, cloneable handle to a running [`Runner`]: add and remove checks,
/// subscribe to results.
#[derive(Clone)]
pub struct RunnerHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<Transition>,
    registry: Registry,
    next_id: Arc<AtomicU32>,
}

impl std::fmt::Debug for RunnerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerHandle")
            .field("checks", &lock(&self.registry).len())
            .finish_non_exhaustive()
    }
}

impl RunnerHandle {
    /// Validates and adds a check; its first round starts within
    /// `spec.timing.warmup`.
    ///
    /// # Errors
    /// A [`ConfigError`] for an invalid spec, or
    /// [`ConfigError::RunnerStopped`] after shutdown.
    pub fn add(&self, spec: CheckSpec) -> Result<CheckId, ConfigError> {
        spec.timing.validate()?;
        let prober = spec.probe.prepare()?;
        let id = CheckId::new(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (status, _) = watch::channel(CheckStatus::initial(&spec.timing));
        lock(&self.registry).insert(
            id,
            Entry {
                name: spec.name,
                status,
            },
        );
        let command = Command::Add {
            id,
            prober,
            timing: spec.timing,
        };
        if self.commands.send(command).is_err() {
            lock(&self.registry).remove(&id);
            return Err(ConfigError::RunnerStopped);
        }
        Ok(id)
    }

    /// Removes a check: its running attempt is dropped, its watch closes.
    /// Returns whether it existed.
    pub fn remove(&self, id: CheckId) -> bool {
        let existed = lock(&self.registry).remove(&id).is_some();
        if existed {
            // After shutdown there is nothing left to stop.
            let _ = self.commands.send(Command::Remove(id));
        }
        existed
    }

    /// Transitions from now on, for every check.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.events.subscribe()
    }

    /// The current status of one check, updated after every attempt.
    #[must_use]
    pub fn watch(&self, id: CheckId) -> Option<watch::Receiver<CheckStatus>> {
        lock(&self.registry)
            .get(&id)
            .map(|entry| entry.status.subscribe())
    }

    /// The check's name as given in its [`CheckSpec`].
    #[must_use]
    pub fn name(&self, id: CheckId) -> Option<String> {
        lock(&self.registry)
            .get(&id)
            .map(|entry| entry.name.clone())
    }

    /// Current status of every check, by id.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(CheckId, CheckStatus)> {
        lock(&self.registry)
            .iter()
            .map(|(id, entry)| (*id, entry.status.borrow().clone()))
            .collect()
    }
}

/// A running set of checks. Dropping it does not stop the task: cancel the
/// token given to [`Runner::spawn`], or call [`Runner::shutdown`].
#[derive(Debug)]
pub struct Runner {
    handle: RunnerHandle,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Runner {
    /// Starts the runner task on the current tokio runtime. It stops when
    /// `cancel` is cancelled, aborting the attempts in flight (scripts are
    /// killed with their process group).
    ///
    /// # Panics
    /// If called outside a tokio runtime (like [`tokio::spawn`]).
    #[must_use]
    pub fn spawn(config: RunnerConfig, cancel: CancellationToken) -> Self {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let registry: Registry = Arc::default();
        let handle = RunnerHandle {
            commands,
            events: events.clone(),
            registry: Arc::clone(&registry),
            next_id: Arc::new(AtomicU32::new(0)),
        };
        let driver = Driver {
            scheduler: Scheduler::new(config.seed),
            probers: HashMap::new(),
            attempts: JoinSet::new(),
            in_flight: HashMap::new(),
            events,
            registry,
        };
        let task = tokio::spawn(driver.run(command_rx, cancel.clone()));
        Self {
            handle,
            cancel,
            task,
        }
    }

    /// A handle to share with other tasks.
    #[must_use]
    pub fn handle(&self) -> RunnerHandle {
        self.handle.clone()
    }

    /// Cancels the runner and waits until every attempt has been dropped.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "health check runner task failed");
        }
    }
}

impl std::ops::Deref for Runner {
    type Target = RunnerHandle;

    fn deref(&self) -> &RunnerHandle {
        &self.handle
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

struct Driver {
    scheduler: Scheduler,
    probers: HashMap<CheckId, Prober>,
    attempts: JoinSet<(ProbeToken, ProbeReport)>,
    in_flight: HashMap<tokio::task::Id, ProbeToken>,
    events: broadcast::Sender<Transition>,
    registry: Registry,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        cancel: CancellationToken,
    ) {
        // Placeholder deadline, replaced before the sleep is ever polled.
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        let mut sleep = std::pin::pin!(sleep);
        let mut armed: Option<std::time::Instant> = None;
        let mut commands_open = true;
        loop {
            self.drain_outputs();
            let deadline = self.scheduler.poll_timeout();
            if deadline != armed {
                if let Some(when) = deadline {
                    sleep.as_mut().reset(tokio::time::Instant::from_std(when));
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                command = commands.recv(), if commands_open => match command {
                    Some(command) => self.apply(command),
                    // Every handle is gone: keep checking until cancelled.
                    None => commands_open = false,
                },
                Some(joined) = self.attempts.join_next_with_id(), if !self.attempts.is_empty() => {
                    self.finish(joined);
                }
                () = &mut sleep, if armed.is_some() => {
                    self.scheduler.handle_timeout(now());
                }
            }
        }
        self.attempts.shutdown().await;
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Add { id, prober, timing } => {
                match self.scheduler.add_check(id, timing, now()) {
                    Ok(()) => {
                        self.probers.insert(id, prober);
                    }
                    // Validated by the handle already; never reached.
                    Err(error) => tracing::error!(%id, %error, "check rejected"),
                }
            }
            Command::Remove(id) => {
                self.scheduler.remove_check(id);
                self.probers.remove(&id);
            }
        }
    }

    fn finish(
        &mut self,
        joined: Result<(tokio::task::Id, (ProbeToken, ProbeReport)), tokio::task::JoinError>,
    ) {
        let (token, result) = match joined {
            Ok((task, (token, report))) => {
                self.in_flight.remove(&task);
                (token, report.result)
            }
            Err(error) => {
                let Some(token) = self.in_flight.remove(&error.id()) else {
                    return;
                };
                (token, Err(DownReason::Internal(error.to_string())))
            }
        };
        self.scheduler.handle_probe_result(token, result, now());
        self.publish_status(token.check());
    }

    fn drain_outputs(&mut self) {
        while let Some(output) = self.scheduler.poll_output() {
            match output {
                Output::StartProbe(request) => {
                    let Some(prober) = self.probers.get(&request.token.check()).cloned() else {
                        continue;
                    };
                    let token = request.token;
                    let abort = self.attempts.spawn(async move {
                        let report = prober.run(token.serial(), request.timeout).await;
                        (token, report)
                    });
                    self.in_flight.insert(abort.id(), token);
                }
                Output::Transition(transition) => {
                    let check = transition.check;
                    tracing::info!(
                        %check,
                        name = self.name(check).as_deref().unwrap_or(""),
                        from = %transition.previous,
                        to = %transition.health,
                        reason = transition.reason.as_ref().map(ToString::to_string).as_deref().unwrap_or(""),
                        latency_us = u64::try_from(transition.latency.as_micros()).unwrap_or(u64::MAX),
                        "health check transition"
                    );
                    self.publish_status(check);
                    // No subscriber is not an error: the watch holds the state.
                    let _ = self.events.send(transition);
                }
            }
        }
    }

    fn name(&self, id: CheckId) -> Option<String> {
        lock(&self.registry)
            .get(&id)
            .map(|entry| entry.name.clone())
    }

    fn publish_status(&self, id: CheckId) {
        let Some(status) = self.scheduler.status(id) else {
            return;
        };
        if let Some(entry) = lock(&self.registry).get(&id) {
            entry.status.send_if_modified(|current| {
                if current == status {
                    false
                } else {
                    current.clone_from(status);
                    true
                }
            });
        }
    }
}
