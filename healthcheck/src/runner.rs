//! The tokio driver: runs the probes the [`Scheduler`] asks for and publishes
//! what it decides.
//!
//! It holds no health logic. One task owns the scheduler and keeps a single
//! sleep for the scheduler's next deadline (reset only when the deadline
//! moves); it also compares that deadline with the clock on every turn of
//! its loop, since a runtime busy with attempts turns its timer wheel late.
//!
//! # Where attempts run
//!
//! The scheduler's task polls the attempts itself (no task per attempt: a
//! task costs an allocation, a trip through a run queue and a wake-up of the
//! scheduler when it ends), in passes of at most a millisecond, between
//! which it looks at its timers and lets the runtime turn its I/O driver.
//!
//! - On a **multi-thread** runtime (as `vrrpd run` builds it) the scheduler
//!   runs on a thread of its own, so that its timers are not kept waiting
//!   behind other tasks, and while it cannot keep up (a pass stopped at its
//!   deadline with attempts left) new attempts overflow to the runtime's
//!   workers as tasks of their own. At 1,000 checks a second everything
//!   stays on the one thread (about keepalived's cost per check); at 10,000
//!   on two cores, connects, HTTP exchanges and digests spread over the
//!   workers instead of queueing behind each other.
//! - On a **current-thread** runtime everything is the one task.
//!
//! Either way an attempt the scheduler gives up on (timeout, check removed)
//! is dropped or aborted at once, and shutdown waits until no attempt is
//! left.
//!
//! Consumers see results two ways:
//! - a [`broadcast`] stream of [`Transition`]s ([`RunnerHandle::subscribe`]),
//!   for reacting to changes;
//! - a [`watch`] per check with its current [`CheckStatus`]
//!   ([`RunnerHandle::watch`], [`RunnerHandle::snapshot`]), for the state
//!   itself. A subscriber that lags (`RecvError::Lagged`) re-reads the
//!   snapshot and carries on: no state is ever lost, only intermediate
//!   transitions.
//!
//! # Shared checks
//!
//! Checks with the same [`Probe`] and the same [`Timing`] (say, one real
//! server in several virtual servers, each with the same `TCP_CHECK`) run
//! once. Each [`RunnerHandle::add`] still returns its own [`CheckId`], with
//! its own watch and its own [`Transition`]s (`check` is that id); a check
//! that joins a running one starts from its current status, and removing one
//! user leaves the others running. [`RunnerConfig::share_identical_checks`]
//! turns this off.
//!
//! # Open files and concurrency
//!
//! Every attempt holds at most one file descriptor (a socket, or the pipes
//! of a script) while it runs. The runner starts at most
//! [`RunnerConfig::max_in_flight`] attempts at once; further due attempts
//! wait in a FIFO queue, so thousands of checks against black-holed targets
//! slow down (the wait shows as scheduling lag in [`RunnerStats::lag`])
//! instead of failing with `EMFILE`. By default the bound is half the
//! process's soft `RLIMIT_NOFILE` when the runner starts (the other half
//! stays free for everything else); call [`raise_open_files_limit`] first to
//! lift the soft limit to the hard one, as keepalived does.
//!
//! # Timer coalescing
//!
//! With [`RunnerConfig::timer_slack`] the runner wakes on a grid of that
//! period and starts everything due by then, instead of waking for each
//! deadline: at 10,000 checks a second this saves most of the wake-ups for
//! at most that much extra lag.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::attempts::Attempts;
use crate::check::{CheckId, Timing};
use crate::error::ConfigError;
use crate::lag::{DurationBuckets, LagHistogram};
use crate::probe::{Probe, Prober};
use crate::schedule::{CheckStatus, Output, ProbeResult, ProbeToken, Scheduler, Transition};
use crate::sys::OwnedInotify;

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
    /// Most attempts running at once (see the module docs); `None` for half
    /// the soft `RLIMIT_NOFILE` when the runner starts, at least 16.
    pub max_in_flight: Option<usize>,
    /// Wake-ups are rounded up to a grid of this period (zero: wake for each
    /// deadline). Default 2 ms.
    pub timer_slack: Duration,
    /// Run checks with equal probe and timing once (see the module docs).
    /// Default `true`.
    pub share_identical_checks: bool,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            seed: 0x6865_616c_7468,
            event_capacity: 1024,
            max_in_flight: None,
            timer_slack: Duration::from_millis(2),
            share_identical_checks: true,
        }
    }
}

/// Highest soft limit [`raise_open_files_limit`] asks for when the hard
/// limit is unlimited (the kernel's default `fs.nr_open`).
const NOFILE_CEILING: u64 = 1 << 20;

/// Raises the soft limit on open files to the hard limit (capped at 2^20),
/// as keepalived does at start-up, and returns the new soft limit.
///
/// # Errors
/// The `getrlimit`/`setrlimit` error.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let target = hard.min(NOFILE_CEILING).max(soft);
    if target > soft {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
    }
    Ok(target)
}

/// The default for [`RunnerConfig::max_in_flight`] under the current soft
/// limit on open files: half of it, at least 16.
#[must_use]
pub fn default_max_in_flight() -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / 2).unwrap_or(usize::MAX).max(16)
}

/// Counters of a running [`Runner`], from [`RunnerHandle::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunnerStats {
    /// Checks added and not removed (one per [`RunnerHandle::add`]).
    pub checks: usize,
    /// Checks actually scheduled (shared checks count once).
    pub scheduled: usize,
    /// Attempts running now.
    pub in_flight: usize,
    /// Attempts due but waiting for a slot.
    pub queued: usize,
    /// The concurrency bound in force.
    pub max_in_flight: usize,
    /// Attempts started since the runner started.
    pub attempts: u64,
    /// How late attempts started, since the runner started (see
    /// [`LagHistogram::since`] to measure a window).
    pub lag: LagHistogram,
    /// Files watched with inotify for [`FileCheck`](crate::FileCheck)s.
    pub watched_files: usize,
    /// How late attempts started, in fixed buckets (a Prometheus
    /// histogram), since the runner started.
    pub lag_buckets: DurationBuckets,
    /// How long attempts took, by kind of check ([`Probe::kind`]), since
    /// the runner started (removed checks included).
    pub durations_by_kind: BTreeMap<&'static str, DurationBuckets>,
}

/// Where a check's results go: one per [`RunnerHandle::add`].
#[derive(Debug, Clone)]
struct Sink {
    user: CheckId,
    name: Arc<str>,
    status: watch::Sender<CheckStatus>,
}

enum Command {
    Add {
        id: CheckId,
        kind: &'static str,
        prober: Prober,
        timing: Timing,
        sink: Sink,
    },
    Attach {
        id: CheckId,
        sink: Sink,
    },
    Detach {
        id: CheckId,
        user: CheckId,
    },
    Remove(CheckId),
    Stats(oneshot::Sender<RunnerStats>),
}

/// What makes two checks the same check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ShareKey {
    probe: Probe,
    timing: Timing,
}

struct User {
    name: Arc<str>,
    kind: &'static str,
    scheduled: CheckId,
    status: watch::Sender<CheckStatus>,
}

struct Scheduled {
    key: Option<Arc<ShareKey>>,
    users: Vec<CheckId>,
}

#[derive(Default)]
struct Registry {
    users: BTreeMap<CheckId, User>,
    scheduled: HashMap<CheckId, Scheduled>,
    by_key: HashMap<Arc<ShareKey>, CheckId>,
}

type SharedRegistry = Arc<Mutex<Registry>>;

fn lock(registry: &SharedRegistry) -> MutexGuard<'_, Registry> {
    // Each critical section leaves the maps consistent before it can panic:
    // inserts and removes only.
    registry.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A cheap, cloneable handle to a running [`Runner`]: add and remove checks,
/// subscribe to results.
#[derive(Clone)]
pub struct RunnerHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<Transition>,
    registry: SharedRegistry,
    next_user: Arc<AtomicU32>,
    next_scheduled: Arc<AtomicU32>,
    share: bool,
}

impl std::fmt::Debug for RunnerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerHandle")
            .field("checks", &lock(&self.registry).users.len())
            .finish_non_exhaustive()
    }
}

impl RunnerHandle {
    /// Validates and adds a check; its first round starts within
    /// `spec.timing.warmup`, or it joins a running identical check (see
    /// the module docs).
    ///
    /// # Errors
    /// A [`ConfigError`] for an invalid spec, or
    /// [`ConfigError::RunnerStopped`] after shutdown.
    pub fn add(&self, spec: CheckSpec) -> Result<CheckId, ConfigError> {
        spec.timing.validate()?;
        let key = self.share.then(|| {
            Arc::new(ShareKey {
                probe: spec.probe.clone(),
                timing: spec.timing.clone(),
            })
        });
        let name: Arc<str> = Arc::from(spec.name);
        let kind = spec.probe.kind();
        if let Some(key) = &key {
            let mut registry = lock(&self.registry);
            if let Some(scheduled) = registry.by_key.get(key).copied() {
                return self.attach(&mut registry, scheduled, name, kind);
            }
        }
        // Preparing may build a TLS configuration: not under the lock.
        let prober = spec.probe.prepare()?;
        let mut registry = lock(&self.registry);
        if let Some(key) = &key
            && let Some(scheduled) = registry.by_key.get(key).copied()
        {
            return self.attach(&mut registry, scheduled, name, kind);
        }
        let user = CheckId::new(self.next_user.fetch_add(1, Ordering::Relaxed));
        let scheduled = CheckId::new(self.next_scheduled.fetch_add(1, Ordering::Relaxed));
        let (status, _) = watch::channel(CheckStatus::initial(&spec.timing));
        let sink = Sink {
            user,
            name: Arc::clone(&name),
            status: status.clone(),
        };
        registry.users.insert(
            user,
            User {
                name,
                kind,
                scheduled,
                status,
            },
        );
        if let Some(key) = &key {
            registry.by_key.insert(Arc::clone(key), scheduled);
        }
        registry.scheduled.insert(
            scheduled,
            Scheduled {
                key,
                users: vec![user],
            },
        );
        let command = Command::Add {
            id: scheduled,
            kind,
            prober,
            timing: spec.timing,
            sink,
        };
        if self.commands.send(command).is_err() {
            forget(&mut registry, user);
            return Err(ConfigError::RunnerStopped);
        }
        Ok(user)
    }

    /// Adds one more user to a scheduled check.
    fn attach(
        &self,
        registry: &mut Registry,
        scheduled: CheckId,
        name: Arc<str>,
        kind: &'static str,
    ) -> Result<CheckId, ConfigError> {
        let current = registry
            .scheduled
            .get(&scheduled)
            .and_then(|s| s.users.first())
            .and_then(|first| registry.users.get(first))
            .map(|user| user.status.borrow().clone());
        let Some(current) = current else {
            return Err(ConfigError::RunnerStopped); // cannot happen: users are never empty
        };
        let user = CheckId::new(self.next_user.fetch_add(1, Ordering::Relaxed));
        let (status, _) = watch::channel(current);
        let sink = Sink {
            user,
            name: Arc::clone(&name),
            status: status.clone(),
        };
        registry.users.insert(
            user,
            User {
                name,
                kind,
                scheduled,
                status,
            },
        );
        if let Some(entry) = registry.scheduled.get_mut(&scheduled) {
            entry.users.push(user);
        }
        if self
            .commands
            .send(Command::Attach {
                id: scheduled,
                sink,
            })
            .is_err()
        {
            forget(registry, user);
            return Err(ConfigError::RunnerStopped);
        }
        Ok(user)
    }

    /// Removes a check: its watch closes and it gets no more transitions.
    /// The probing stops (and a running attempt is dropped) once no other
    /// user shares it. Returns whether it existed.
    pub fn remove(&self, id: CheckId) -> bool {
        let mut registry = lock(&self.registry);
        let Some(user) = registry.users.get(&id) else {
            return false;
        };
        let scheduled = user.scheduled;
        // After shutdown there is nothing left to stop.
        if forget(&mut registry, id) {
            let _ = self.commands.send(Command::Remove(scheduled));
        } else {
            let _ = self.commands.send(Command::Detach {
                id: scheduled,
                user: id,
            });
        }
        true
    }

    /// Transitions from now on, for every check.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.events.subscribe()
    }

    /// The current status of one check, updated after every attempt;
    /// `changed()` fires when the check is first decided
    /// ([`CheckStatus::decided`]) and when its health, weight, value or
    /// failure reason changes (not for the counters alone).
    #[must_use]
    pub fn watch(&self, id: CheckId) -> Option<watch::Receiver<CheckStatus>> {
        lock(&self.registry)
            .users
            .get(&id)
            .map(|user| user.status.subscribe())
    }

    /// The check's name as given in its [`CheckSpec`].
    #[must_use]
    pub fn name(&self, id: CheckId) -> Option<String> {
        lock(&self.registry)
            .users
            .get(&id)
            .map(|user| user.name.to_string())
    }

    /// The check's kind ([`Probe::kind`]).
    #[must_use]
    pub fn kind(&self, id: CheckId) -> Option<&'static str> {
        lock(&self.registry).users.get(&id).map(|user| user.kind)
    }

    /// Current status of every check, by id.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(CheckId, CheckStatus)> {
        lock(&self.registry)
            .users
            .iter()
            .map(|(id, user)| (*id, user.status.borrow().clone()))
            .collect()
    }

    /// The runner's counters; `None` once it has stopped.
    pub async fn stats(&self) -> Option<RunnerStats> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Stats(reply)).ok()?;
        answer.await.ok()
    }
}

/// Drops a user from the registry; returns whether it was the last user of
/// its scheduled check (which is then forgotten too).
fn forget(registry: &mut Registry, user: CheckId) -> bool {
    let Some(removed) = registry.users.remove(&user) else {
        return false;
    };
    let Some(entry) = registry.scheduled.get_mut(&removed.scheduled) else {
        return false;
    };
    entry.users.retain(|u| *u != user);
    if !entry.users.is_empty() {
        return false;
    }
    if let Some(entry) = registry.scheduled.remove(&removed.scheduled)
        && let Some(key) = entry.key
        && registry.by_key.get(&key) == Some(&removed.scheduled)
    {
        registry.by_key.remove(&key);
    }
    true
}

/// A running set of checks. Dropping it does not stop the task: cancel the
/// token given to [`Runner::spawn`], or call [`Runner::shutdown`].
#[derive(Debug)]
pub struct Runner {
    handle: RunnerHandle,
    cancel: CancellationToken,
    /// The scheduler's task, or on a multi-thread runtime a task that ends
    /// with the scheduler's thread (`Err` if that thread died).
    task: JoinHandle<Result<(), &'static str>>,
}

impl Runner {
    /// Starts the runner on the current tokio runtime. It stops when
    /// `cancel` is cancelled, dropping the attempts in flight (scripts are
    /// killed with their process group).
    ///
    /// On a multi-thread runtime the scheduler gets a thread of its own
    /// (named `healthcheck`) and attempts it cannot keep up with overflow
    /// to the runtime's workers; on a current-thread runtime everything is
    /// one task (see the module docs).
    ///
    /// # Panics
    /// If called outside a tokio runtime (like [`tokio::spawn`]).
    #[must_use]
    pub fn spawn(config: RunnerConfig, cancel: CancellationToken) -> Self {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let handle = RunnerHandle {
            commands,
            events: events.clone(),
            registry: SharedRegistry::default(),
            next_user: Arc::new(AtomicU32::new(0)),
            next_scheduled: Arc::new(AtomicU32::new(0)),
            share: config.share_identical_checks,
        };
        let mut scheduler = Scheduler::new(config.seed);
        scheduler.set_max_in_flight(config.max_in_flight.unwrap_or_else(default_max_in_flight));
        let runtime = tokio::runtime::Handle::current();
        let multi_thread = runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
        let driver = Driver {
            scheduler,
            checks: Vec::new(),
            attempts: if multi_thread {
                Attempts::overflowing_to(runtime)
            } else {
                Attempts::inline()
            },
            done: Vec::new(),
            events,
            files: FileWatch::default(),
            slack: config.timer_slack,
            origin: now(),
            retired: BTreeMap::new(),
        };
        let run = driver.run(command_rx, cancel.clone());
        let task = if multi_thread {
            on_own_thread(run)
        } else {
            tokio::spawn(async move {
                run.await;
                Ok(())
            })
        };
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

    /// Whether the runner task has ended: after cancellation of its token
    /// (by whoever holds it), or by a bug in the runner itself (a probe's
    /// panic is only a failed attempt). A supervisor polls it to notice a
    /// runner that stopped while it was still needed.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Cancels the runner and waits until every attempt has been dropped.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(error, "health check runner failed"),
            Err(error) => tracing::error!(%error, "health check runner task failed"),
        }
    }
}

/// Runs the scheduler on a thread of its own, in a current-thread runtime
/// that does nothing else but its own attempts: its timers then wake it on
/// time however busy the workers running the overflow are (as one more task
/// among thousands of attempts, its wake-ups waited behind them: p99 lag
/// 27 ms at 10,000 checks a second on a busy 2-core host, against 2.4 ms
/// for a thread that only sleeps). The returned task, on the caller's
/// runtime, ends when the thread does.
fn on_own_thread(
    run: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<Result<(), &'static str>> {
    let (done, ended) = oneshot::channel::<()>();
    let started = std::thread::Builder::new()
        .name("healthcheck".to_owned())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    runtime.block_on(run);
                    let _ = done.send(());
                }
                Err(error) => tracing::error!(%error, "cannot build the health check runtime"),
            }
        });
    if let Err(error) = &started {
        tracing::error!(%error, "cannot start the health check thread");
    }
    tokio::spawn(async move {
        // Dropped without a send: the thread failed to start or panicked.
        ended
            .await
            .map_err(|_| "the health check thread ended abnormally")
    })
}

impl std::ops::Deref for Runner {
    type Target = RunnerHandle;

    fn deref(&self) -> &RunnerHandle {
        &self.handle
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The inotify side of [`FileCheck`](crate::FileCheck)s: one watch per
/// directory, shared by the files in it.
#[derive(Default)]
struct FileWatch {
    inotify: Option<AsyncFd<OwnedInotify>>,
    /// Directory watch → (file name, check) pairs in it.
    dirs: HashMap<WatchDescriptor, Vec<(OsString, CheckId)>>,
    /// Check → the (watch, file name) pairs it is registered under.
    checks: HashMap<CheckId, Vec<(WatchDescriptor, OsString)>>,
}

/// Directory and file name to watch for `path`: the path as given and, if
/// it is (or sits behind) a symlink, where it really lives.
fn watch_targets(path: &Path) -> Vec<(PathBuf, OsString)> {
    let split = |p: &Path| -> Option<(PathBuf, OsString)> {
        let name = p.file_name()?.to_owned();
        let dir = match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Some((dir, name))
    };
    let mut targets: Vec<(PathBuf, OsString)> = split(path).into_iter().collect();
    let resolved = std::fs::canonicalize(path).ok().or_else(|| {
        // A missing file: resolve its directory.
        let (dir, name) = split(path)?;
        Some(std::fs::canonicalize(dir).ok()?.join(name))
    });
    if let Some(real) = resolved.as_deref().and_then(split) {
        let same = targets.iter().any(|(dir, name)| {
            *name == real.1 && std::fs::canonicalize(dir).is_ok_and(|d| d == real.0)
        });
        if !same {
            targets.push(real);
        }
    }
    targets
}

impl FileWatch {
    const MASK: AddWatchFlags = AddWatchFlags::IN_CLOSE_WRITE
        .union(AddWatchFlags::IN_DELETE)
        .union(AddWatchFlags::IN_MOVED_FROM)
        .union(AddWatchFlags::IN_MOVED_TO);

    fn len(&self) -> usize {
        self.checks.len()
    }

    fn add(&mut self, id: CheckId, path: &Path) {
        if self.inotify.is_none() {
            match crate::sys::inotify() {
                Ok(fd) => self.inotify = Some(fd),
                Err(error) => {
                    tracing::warn!(%error, "inotify unavailable: tracked files are only polled");
                    return;
                }
            }
        }
        let Some(inotify) = &self.inotify else {
            return;
        };
        for (dir, name) in watch_targets(path) {
            match inotify.get_ref().0.add_watch(&dir, Self::MASK) {
                Ok(wd) => {
                    self.dirs.entry(wd).or_default().push((name.clone(), id));
                    self.checks.entry(id).or_default().push((wd, name));
                }
                Err(error) => tracing::warn!(
                    dir = %dir.display(), %error,
                    "cannot watch the directory of a tracked file: polling it only"
                ),
            }
        }
    }

    fn remove(&mut self, id: CheckId) {
        let Some(registered) = self.checks.remove(&id) else {
            return;
        };
        for (wd, name) in registered {
            let Some(files) = self.dirs.get_mut(&wd) else {
                continue;
            };
            files.retain(|(n, check)| !(*check == id && *n == name));
            if files.is_empty() {
                self.dirs.remove(&wd);
                if let Some(inotify) = &self.inotify {
                    // The directory may be gone already (then so is the watch).
                    let _ = inotify.get_ref().0.rm_watch(wd);
                }
            }
        }
    }

    async fn readable(&self) {
        let Some(inotify) = &self.inotify else {
            return std::future::pending().await;
        };
        match inotify.readable().await {
            Ok(mut guard) => guard.clear_ready(),
            Err(error) => {
                tracing::warn!(%error, "inotify failed: tracked files are only polled");
                std::future::pending::<()>().await;
            }
        }
    }

    /// Reads every queued event; returns the checks to re-read.
    fn changed(&self, out: &mut Vec<CheckId>) {
        let Some(inotify) = &self.inotify else {
            return;
        };
        loop {
            match inotify.get_ref().0.read_events() {
                Ok(events) if events.is_empty() => return,
                Ok(events) => {
                    for event in events {
                        if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                            // Events were lost: re-read every file.
                            out.extend(self.checks.keys().copied());
                            continue;
                        }
                        let (Some(files), Some(name)) = (self.dirs.get(&event.wd), &event.name)
                        else {
                            continue;
                        };
                        out.extend(
                            files
                                .iter()
                                .filter(|(file, _)| file == name)
                                .map(|(_, id)| *id),
                        );
                    }
                }
                // EAGAIN: drained.
                Err(_) => return,
            }
        }
    }
}

/// What the driver keeps per scheduled check, at the check's position in
/// the scheduler's table.
struct DriverCheck {
    id: CheckId,
    kind: &'static str,
    prober: Prober,
    sinks: Vec<Sink>,
}

/// The longest one pass over finished attempts runs before the runner looks
/// at its timers again.
const PASS_BUDGET: Duration = Duration::from_millis(1);

struct Driver {
    scheduler: Scheduler,
    checks: Vec<Option<DriverCheck>>,
    attempts: Attempts,
    done: Vec<(ProbeToken, ProbeResult)>,
    events: broadcast::Sender<Transition>,
    files: FileWatch,
    slack: Duration,
    origin: Instant,
    /// Attempt durations of removed checks, by kind.
    retired: BTreeMap<&'static str, DurationBuckets>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        cancel: CancellationToken,
    ) {
        let cancelled = cancel.cancelled();
        let mut cancelled = std::pin::pin!(cancelled);
        // Placeholder deadline, replaced before the sleep is ever polled.
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        let mut sleep = std::pin::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut commands_open = true;
        let mut woken = Vec::new();
        loop {
            self.drain_outputs();
            let mut deadline = self.scheduler.poll_timeout().map(|d| self.coalesce(d));
            // Timers are checked against the clock on every turn, not only
            // when the runtime's timer wheel next fires: a runtime busy
            // with this task's own attempts turns its wheel late.
            let at = now();
            if deadline.is_some_and(|when| when <= at) {
                self.scheduler.handle_timeout(at);
                self.drain_outputs();
                deadline = self.scheduler.poll_timeout().map(|d| self.coalesce(d));
            }
            if deadline != armed {
                if let Some(when) = deadline {
                    sleep.as_mut().reset(tokio::time::Instant::from_std(when));
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                () = &mut cancelled => break,
                command = commands.recv(), if commands_open => match command {
                    Some(command) => self.apply(command),
                    // Every handle is gone: keep checking until cancelled.
                    None => commands_open = false,
                },
                () = &mut sleep, if armed.is_some() => {
                    self.scheduler.handle_timeout(now());
                }
                () = std::future::poll_fn(|cx| {
                    let until = now() + PASS_BUDGET;
                    self.attempts.poll_done(cx, &mut self.done, until)
                }), if !self.attempts.is_empty() => {
                    self.finish();
                    if self.attempts.has_backlog() {
                        // Let the runtime turn its I/O driver (and run its
                        // other tasks) before the next slice of the backlog.
                        tokio::task::yield_now().await;
                    }
                }
                () = self.files.readable() => {
                    self.files.changed(&mut woken);
                    let at = now();
                    for id in woken.drain(..) {
                        self.scheduler.wake(id, at);
                    }
                }
            }
        }
        // No attempt outlives the runner: aborted tasks are waited for.
        for task in self.attempts.clear() {
            let _ = task.await;
        }
    }

    /// `when` rounded up to the slack grid.
    fn coalesce(&self, when: Instant) -> Instant {
        let slack = self.slack.as_nanos();
        if slack == 0 {
            return when;
        }
        let since = when.saturating_duration_since(self.origin).as_nanos();
        let rounded = since.div_ceil(slack).saturating_mul(slack);
        let extra = u64::try_from(rounded - since).unwrap_or(0);
        when.checked_add(Duration::from_nanos(extra))
            .unwrap_or(when)
    }

    fn check_mut(&mut self, id: CheckId) -> Option<&mut DriverCheck> {
        let position = self.scheduler.position(id)?;
        self.checks
            .get_mut(position)?
            .as_mut()
            .filter(|check| check.id == id)
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Add {
                id,
                kind,
                prober,
                timing,
                sink,
            } => {
                if let Err(error) = self.scheduler.add_check(id, timing, now()) {
                    // Validated by the handle already; never reached.
                    tracing::error!(%id, %error, "check rejected");
                    return;
                }
                let Some(position) = self.scheduler.position(id) else {
                    return;
                };
                if let Some(path) = prober.watched_file() {
                    self.files.add(id, path);
                }
                if self.checks.len() <= position {
                    self.checks.resize_with(position + 1, || None);
                }
                if let Some(entry) = self.checks.get_mut(position) {
                    *entry = Some(DriverCheck {
                        id,
                        kind,
                        prober,
                        sinks: vec![sink],
                    });
                }
            }
            Command::Attach { id, sink } => {
                if let Some(status) = self.scheduler.status(id) {
                    publish(&sink, status);
                }
                if let Some(check) = self.check_mut(id) {
                    check.sinks.push(sink);
                }
            }
            Command::Detach { id, user } => {
                if let Some(check) = self.check_mut(id) {
                    check.sinks.retain(|sink| sink.user != user);
                }
            }
            Command::Remove(id) => {
                // The slot is emptied either way; its durations are kept.
                let removed = self
                    .scheduler
                    .position(id)
                    .and_then(|position| self.checks.get_mut(position))
                    .and_then(Option::take);
                if let (Some(check), Some(status)) = (removed, self.scheduler.status(id)) {
                    self.retired
                        .entry(check.kind)
                        .or_default()
                        .merge(&status.durations);
                }
                self.scheduler.remove_check(id);
                self.files.remove(id);
            }
            Command::Stats(reply) => {
                let _ = reply.send(RunnerStats {
                    checks: self.checks.iter().flatten().map(|c| c.sinks.len()).sum(),
                    scheduled: self.scheduler.len(),
                    in_flight: self.scheduler.in_flight(),
                    queued: self.scheduler.queued(),
                    max_in_flight: self.scheduler.max_in_flight(),
                    attempts: self.scheduler.attempts_started(),
                    lag: self.scheduler.lag().clone(),
                    watched_files: self.files.len(),
                    lag_buckets: *self.scheduler.lag_buckets(),
                    durations_by_kind: self.durations_by_kind(),
                });
            }
        }
    }

    /// Attempt durations by kind: the removed checks' and the live ones'.
    fn durations_by_kind(&self) -> BTreeMap<&'static str, DurationBuckets> {
        let mut out = self.retired.clone();
        for check in self.checks.iter().flatten() {
            if let Some(status) = self.scheduler.status(check.id) {
                out.entry(check.kind).or_default().merge(&status.durations);
            }
        }
        out
    }

    fn finish(&mut self) {
        let at = now();
        let mut done = std::mem::take(&mut self.done);
        for (token, result) in done.drain(..) {
            self.scheduler.handle_probe_result(token, result, at);
            self.publish_status(token.position());
        }
        self.done = done;
    }

    fn drain_outputs(&mut self) {
        while let Some(output) = self.scheduler.poll_output() {
            match output {
                Output::StartProbe(request) => {
                    let token = request.token;
                    let check = self.checks.get(token.position()).and_then(Option::as_ref);
                    if let Some(check) = check.filter(|c| c.id == token.check()) {
                        let attempt = check.prober.attempt_owned(token.serial(), request.timeout);
                        self.attempts.push(token, attempt);
                    }
                }
                Output::CancelProbe(token) => self.attempts.cancel(token),
                Output::Transition(transition) => {
                    let Some(position) = self.scheduler.position(transition.check) else {
                        continue;
                    };
                    self.publish_status(position);
                    let Some(check) = self.checks.get(position).and_then(Option::as_ref) else {
                        continue;
                    };
                    for sink in &check.sinks {
                        tracing::info!(
                            check = %sink.user,
                            name = &*sink.name,
                            from = %transition.previous,
                            to = %transition.health,
                            reason = transition.reason.as_ref().map(ToString::to_string).as_deref().unwrap_or(""),
                            latency_us = u64::try_from(transition.latency.as_micros()).unwrap_or(u64::MAX),
                            "health check transition"
                        );
                        let mut event = transition.clone();
                        event.check = sink.user;
                        // No subscriber is not an error: the watch holds the state.
                        let _ = self.events.send(event);
                    }
                }
            }
        }
    }

    fn publish_status(&self, position: usize) {
        let status = self.scheduler.status_at(position);
        let check = self.checks.get(position).and_then(Option::as_ref);
        if let (Some(status), Some(check)) = (status, check) {
            for sink in &check.sinks {
                publish(sink, status);
            }
        }
    }
}

/// Stores `status` in the sink's watch; wakes its receivers when the check
/// was decided for the first time, or its health, weight, value or failure
/// reason changed, and on every finished attempt only when someone holds a
/// receiver (a consumer that judges each result itself, such as keepalived's
/// vrrp_script counting): with thousands of checks nobody watches, attempts
/// wake nothing.
fn publish(sink: &Sink, status: &CheckStatus) {
    let watched = sink.status.receiver_count() > 0;
    sink.status.send_if_modified(|current| {
        let notable = current.decided() != status.decided()
            || current.health != status.health
            || current.weight != status.weight
            || current.value != status.value
            || current.last_reason != status.last_reason
            || (watched
                && (current.stats.successes != status.stats.successes
                    || current.stats.failures != status.stats.failures));
        current.clone_from(status);
        notable
    });
}
