//! keepalived's tracked scripts (`vrrp_script` / `track_script`) and
//! tracked files (`track_file`) as health checks of the `healthcheck`
//! runner feeding the VRRP driver's tracked objects.
//!
//! - A script is a [`ScriptCheck`](healthcheck::ScriptCheck) judged with
//!   keepalived's rules ([`ScriptSpec::check`]): `rise` and `fall` count
//!   runs in a row; without `init_fail` the script is undecided until its
//!   first run, which decides at once (`Timing::first_round_decides`); with
//!   `init_fail` it starts failed.
//! - A file is a [`FileCheck`]: the runner watches
//!   its directory with inotify and re-reads it at once on a change (no
//!   polling here). Each instance's use of it ([`FileUse`]) turns the
//!   number into keepalived's contribution: the number times the weight
//!   (negated with `reverse`), within -254..=253, -254 meaning FAULT
//!   (with weight 0, any number but 0 is FAULT, or 0 with `reverse`).
//!   vrrp-core's tracked objects are up or down with a weight, so a use is
//!   spelled as 17 objects: one of weight 0 for FAULT and the
//!   contribution in binary over objects of weights ±1, ±2 ... ±128
//!   ([`FileUse::tracks`]). When the number changes, the objects are
//!   reported in an order that never shows a higher priority than the
//!   old or the new one in between: entering FAULT first, then what lowers
//!   the priority, then what raises it, leaving FAULT last.
//!
//! [`Trackers`] keeps the state across reloads: a script whose definition
//! did not change keeps its check (so its verdict and its rise/fall
//! counts), a file keeps its value, and [`Trackers::initial_states`]
//! starts new or changed instances from the current states, not from
//! "up", so a node held in FAULT by a file stays there through a reload.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use healthcheck::{
    CheckId, CheckSpec, CheckStatus, FileCheck, Health, Probe, RunnerHandle, Timing,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vrrp_core::{TrackConfig, TrackId};
use vrrp_net::driver::{DriverConfig, DriverError, VrrpHandle};

use crate::command::Command;

/// How often a tracked file is read besides its inotify events: a safety
/// net for a directory created later or an overflowed inotify queue.
pub const FILE_RECHECK: Duration = Duration::from_secs(5);
/// How long [`Trackers::apply`] waits for the first reading of a new file.
pub const FIRST_READ_WAIT: Duration = Duration::from_secs(2);

/// A tracked script (keepalived's `vrrp_script`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    /// The tracked object it drives (the instances' `InstanceSpec::tracks`
    /// name it with its weight).
    pub id: TrackId,
    /// Its name.
    pub name: String,
    /// What to run.
    pub command: Command,
    /// Pause between runs (keepalived's `interval`).
    pub interval: Duration,
    /// Longest a run may take; then its process group is killed and the
    /// run counts as failed.
    pub timeout: Duration,
    /// Successes in a row to come up.
    pub rise: u32,
    /// Failures in a row to go down.
    pub fall: u32,
    /// Start failed (keepalived's `init_fail`); otherwise the first run
    /// decides.
    pub init_fail: bool,
}

impl ScriptSpec {
    /// The health check with keepalived's verdict rules (see the module
    /// docs); no retries, no warm-up, no jitter.
    pub fn check(&self) -> CheckSpec {
        let mut timing = Timing::every(self.interval);
        timing.timeout = self.timeout;
        timing.retry = 0;
        timing.rise = self.rise.max(1);
        timing.fall = self.fall.max(1);
        timing.initial = if self.init_fail {
            Health::Down
        } else {
            Health::Up
        };
        timing.first_round_decides = !self.init_fail;
        timing.warmup = Duration::ZERO;
        timing.jitter = Duration::ZERO;
        CheckSpec {
            name: self.name.clone(),
            probe: Probe::Script(self.command.script_check(&[])),
            timing,
        }
    }

    /// The verdict a status stands for: `None` while undecided.
    pub fn verdict(&self, status: &CheckStatus) -> Option<bool> {
        if status.decided() {
            Some(status.health.is_up())
        } else if self.init_fail {
            Some(false)
        } else {
            None
        }
    }
}

/// A tracked file and the instances' uses of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The file.
    pub path: PathBuf,
    /// Written at start-up (keepalived's `init_file`): the number, and
    /// whether to overwrite an existing file.
    pub init: Option<(i32, bool)>,
    /// Each instance's use of it, with its own tracked objects.
    pub uses: Vec<FileUse>,
}

impl FileSpec {
    /// The health check reading it.
    pub fn check(&self) -> CheckSpec {
        let mut timing = Timing::every(FILE_RECHECK);
        timing.timeout = Duration::from_secs(2);
        timing.retry = 0;
        timing.warmup = Duration::ZERO;
        timing.jitter = Duration::ZERO;
        CheckSpec {
            name: format!("file {}", self.path.display()),
            probe: Probe::File(FileCheck::new(&self.path)),
            timing,
        }
    }
}

/// One instance's use of a tracked file (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUse {
    /// keepalived's weight (-254..=254).
    pub weight: i32,
    /// keepalived's `reverse`.
    pub reverse: bool,
    /// Down means FAULT.
    pub fault: TrackId,
    /// Up adds 2^k.
    pub up: [TrackId; 8],
    /// Down adds -2^k.
    pub down: [TrackId; 8],
}

impl FileUse {
    /// A use with its 17 tracked objects named by `id` from a label
    /// (`"fault"`, `"+0"`..`"+7"`, `"-0"`..`"-7"`): give each use its own.
    pub fn new(weight: i32, reverse: bool, mut id: impl FnMut(&str) -> TrackId) -> Self {
        FileUse {
            weight,
            reverse,
            fault: id("fault"),
            up: std::array::from_fn(|k| id(&format!("+{k}"))),
            down: std::array::from_fn(|k| id(&format!("-{k}"))),
        }
    }

    /// The objects to put in the instance's `InstanceSpec::tracks`, at
    /// rest (no contribution, no fault) until the file is read.
    pub fn tracks(&self) -> Vec<(TrackId, TrackConfig, bool)> {
        let mut out = Vec::with_capacity(17);
        out.push((self.fault, TrackConfig::weight(0), true));
        for k in 0..8 {
            out.push((self.up[k], TrackConfig::weight(1 << k), false));
        }
        for k in 0..8 {
            out.push((self.down[k], TrackConfig::weight(-(1 << k)), true));
        }
        out
    }

    /// keepalived's contribution of the number `value`: `None` for FAULT.
    pub fn contribution(&self, value: i64) -> Option<i32> {
        match FileCheck::weighted(value, self.weight, self.reverse) {
            healthcheck::Weighted::Offset(offset) => {
                let clamped = offset.clamp(-254, 253);
                (clamped != -254).then(|| i32::try_from(clamped).unwrap_or(0))
            }
            _ => None,
        }
    }

    /// The state of each of its objects for the number `value`.
    pub fn states(&self, value: i64) -> Vec<(TrackId, bool)> {
        let c = self.contribution(value);
        let mut out = Vec::with_capacity(17);
        out.push((self.fault, c.is_some()));
        let c = c.unwrap_or(0);
        let (plus, minus) = if c >= 0 { (c, 0) } else { (0, -c) };
        for k in 0..8 {
            out.push((self.up[k], plus & (1 << k) != 0));
        }
        for k in 0..8 {
            out.push((self.down[k], minus & (1 << k) == 0));
        }
        out
    }

    /// The reports that take the objects from `reported` to the states
    /// for `value`, in the order of the module docs.
    fn updates(&self, value: i64, reported: &HashMap<TrackId, bool>) -> Vec<(TrackId, bool)> {
        let mut changes: Vec<(u8, TrackId, bool)> = self
            .states(value)
            .into_iter()
            .filter(|(id, up)| reported.get(id) != Some(up))
            .map(|(id, up)| {
                let class = if id == self.fault {
                    if up { 3 } else { 0 }
                } else {
                    // An up-bit going up, or a down-bit going up (its
                    // negative weight no longer applies), raises.
                    if up { 2 } else { 1 }
                };
                (class, id, up)
            })
            .collect();
        changes.sort_by_key(|c| c.0);
        changes.into_iter().map(|(_, id, up)| (id, up)).collect()
    }
}

/// Creates the files that ask for it (`init_file`); call once at start-up.
pub fn init_files(files: &[FileSpec]) {
    for f in files {
        let Some((value, overwrite)) = f.init else {
            continue;
        };
        if (overwrite || !f.path.exists())
            && let Err(e) = std::fs::write(&f.path, format!("{value}\n"))
        {
            tracing::warn!(file = %f.path.display(), error = %e, "cannot initialise track file");
        }
    }
}

/// A report for the driver: a tracked object is up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackUpdate {
    /// The object.
    pub id: TrackId,
    /// Its state.
    pub up: bool,
}

/// Why [`Trackers::apply`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackError {
    /// The health check runner refused a check.
    #[error("tracked {what}: {source}")]
    Check {
        /// The script's name or the file's path.
        what: String,
        /// The runner's reason.
        #[source]
        source: healthcheck::ConfigError,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Source {
    Script(String),
    File(PathBuf),
}

struct Running<S> {
    spec: S,
    check: CheckId,
    watcher: JoinHandle<()>,
}

/// The status of a tracked script or file, for a status page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackStatus {
    /// A script: its name and verdict (`None` while undecided).
    Script {
        /// Its name.
        name: String,
        /// Its verdict.
        up: Option<bool>,
    },
    /// A file: its path and number (`None` before the first reading).
    File {
        /// Its path.
        path: PathBuf,
        /// Its number.
        value: Option<i64>,
    },
}

/// Tracked scripts and files feeding a VRRP driver (see the module docs).
pub struct Trackers {
    runner: RunnerHandle,
    scripts: BTreeMap<String, Running<ScriptSpec>>,
    files: BTreeMap<PathBuf, Running<FileSpec>>,
    verdicts: HashMap<String, bool>,
    values: HashMap<PathBuf, i64>,
    /// Checks replaced or removed by [`Trackers::apply`], stopped by
    /// [`Trackers::retire`].
    retiring: Vec<(CheckId, JoinHandle<()>)>,
    /// What the driver was last told (or assumed) of each object.
    reported: HashMap<TrackId, bool>,
    pending: VecDeque<TrackUpdate>,
    tx: mpsc::UnboundedSender<(Source, CheckId, CheckStatus)>,
    rx: mpsc::UnboundedReceiver<(Source, CheckId, CheckStatus)>,
}

impl std::fmt::Debug for Trackers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trackers")
            .field("scripts", &self.scripts.keys().collect::<Vec<_>>())
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Trackers {
    /// Trackers running their checks on `runner`.
    pub fn new(runner: RunnerHandle) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Trackers {
            runner,
            scripts: BTreeMap::new(),
            files: BTreeMap::new(),
            verdicts: HashMap::new(),
            values: HashMap::new(),
            retiring: Vec::new(),
            reported: HashMap::new(),
            pending: VecDeque::new(),
            tx,
            rx,
        }
    }

    fn watch(&self, source: Source, check: CheckId) -> Option<JoinHandle<()>> {
        let mut watch = self.runner.watch(check)?;
        let tx = self.tx.clone();
        Some(tokio::spawn(async move {
            // The current status first (a shared check may be decided
            // already), then every change.
            loop {
                let status = watch.borrow_and_update().clone();
                if tx.send((source.clone(), check, status)).is_err() {
                    return;
                }
                if watch.changed().await.is_err() {
                    return;
                }
            }
        }))
    }

    /// Sets the scripts and files: unchanged ones keep their checks and
    /// state, new or changed ones start checks (files are read before this
    /// returns, waiting at most [`FIRST_READ_WAIT`]); the checks of
    /// removed or changed ones keep running until [`Trackers::retire`], so
    /// applying the previous set again (a reload the driver refused) finds
    /// them with their state.
    ///
    /// # Errors
    /// A check the runner refused; what was applied before it stays.
    pub async fn apply(
        &mut self,
        scripts: &[ScriptSpec],
        files: &[FileSpec],
    ) -> Result<(), TrackError> {
        let wanted: BTreeMap<&str, &ScriptSpec> =
            scripts.iter().map(|s| (s.name.as_str(), s)).collect();
        let stale: Vec<String> = self
            .scripts
            .iter()
            .filter(|(name, r)| wanted.get(name.as_str()).is_none_or(|s| **s != r.spec))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(r) = self.scripts.remove(&name) {
                self.retiring.push((r.check, r.watcher));
            }
            self.verdicts.remove(&name);
        }
        for s in scripts {
            if self.scripts.contains_key(&s.name) {
                continue;
            }
            let check = self
                .runner
                .add(s.check())
                .map_err(|source| TrackError::Check {
                    what: format!("script {}", s.name),
                    source,
                })?;
            let Some(watcher) = self.watch(Source::Script(s.name.clone()), check) else {
                continue;
            };
            if s.init_fail {
                self.verdicts.insert(s.name.clone(), false);
            }
            self.scripts.insert(
                s.name.clone(),
                Running {
                    spec: s.clone(),
                    check,
                    watcher,
                },
            );
        }
        let wanted: BTreeMap<&Path, &FileSpec> =
            files.iter().map(|f| (f.path.as_path(), f)).collect();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !wanted.contains_key(p.as_path()))
            .cloned()
            .collect();
        for path in gone {
            if let Some(r) = self.files.remove(&path) {
                self.retiring.push((r.check, r.watcher));
            }
        }
        let mut new_files = Vec::new();
        for f in files {
            if let Some(r) = self.files.get_mut(&f.path) {
                r.spec = f.clone();
                continue;
            }
            let check = self
                .runner
                .add(f.check())
                .map_err(|source| TrackError::Check {
                    what: format!("file {}", f.path.display()),
                    source,
                })?;
            let Some(watcher) = self.watch(Source::File(f.path.clone()), check) else {
                continue;
            };
            new_files.push((f.path.clone(), check));
            self.files.insert(
                f.path.clone(),
                Running {
                    spec: f.clone(),
                    check,
                    watcher,
                },
            );
        }
        // A file starts from what it holds, not from "up".
        let deadline = tokio::time::Instant::now() + FIRST_READ_WAIT;
        for (path, check) in new_files {
            let Some(mut watch) = self.runner.watch(check) else {
                continue;
            };
            let read =
                tokio::time::timeout_at(deadline, watch.wait_for(|s| s.value.is_some())).await;
            match read {
                Ok(Ok(status)) => {
                    if let Some(v) = status.value {
                        self.values.insert(path, v);
                    }
                }
                _ => {
                    tracing::warn!(file = %path.display(), "tracked file not read in time; its instances start as if it held 0")
                }
            }
        }
        Ok(())
    }

    /// Stops the checks that [`Trackers::apply`] replaced or removed.
    pub fn retire(&mut self) {
        for (check, watcher) in self.retiring.drain(..) {
            watcher.abort();
            self.runner.remove(check);
        }
    }

    /// The current state of every tracked object known now.
    fn current(&self) -> Vec<(TrackId, bool)> {
        let mut out = Vec::new();
        for (name, r) in &self.scripts {
            if let Some(v) = self.verdicts.get(name) {
                out.push((r.spec.id, *v));
            }
        }
        for (path, r) in &self.files {
            let value = self.values.get(path).copied().unwrap_or(0);
            for u in &r.spec.uses {
                out.extend(u.states(value));
            }
        }
        out
    }

    /// Starts the instances of `config` from the current states of their
    /// scripts and files (call before spawning or reconfiguring the
    /// driver with it).
    pub fn initial_states(&self, config: &mut DriverConfig) {
        let current: HashMap<TrackId, bool> = self.current().into_iter().collect();
        for spec in &mut config.instances {
            for (id, _, up) in &mut spec.tracks {
                if let Some(now) = current.get(id) {
                    *up = *now;
                }
            }
        }
    }

    /// Queues every current state for the driver (after it started or
    /// took a new configuration; reports that change nothing cost
    /// nothing there).
    pub fn resend_all(&mut self) {
        self.pending.clear();
        let mut files: Vec<(TrackId, bool)> = Vec::new();
        for (path, r) in &self.files {
            let value = self.values.get(path).copied().unwrap_or(0);
            for u in &r.spec.uses {
                files.extend(u.updates(value, &HashMap::new()));
            }
        }
        for (name, r) in &self.scripts {
            if let Some(v) = self.verdicts.get(name) {
                self.pending.push_back(TrackUpdate {
                    id: r.spec.id,
                    up: *v,
                });
            }
        }
        self.pending
            .extend(files.into_iter().map(|(id, up)| TrackUpdate { id, up }));
        for u in &self.pending {
            self.reported.insert(u.id, u.up);
        }
    }

    /// The next report for the driver. Cancel-safe; never ends while the
    /// trackers exist.
    pub async fn next(&mut self) -> TrackUpdate {
        loop {
            if let Some(u) = self.pending.pop_front() {
                return u;
            }
            let Some((source, check, status)) = self.rx.recv().await else {
                // Unreachable: `self` holds a sender.
                std::future::pending::<()>().await;
                continue;
            };
            self.absorb(&source, check, &status);
        }
    }

    fn absorb(&mut self, source: &Source, check: CheckId, status: &CheckStatus) {
        match source {
            Source::Script(name) => {
                let Some(r) = self.scripts.get(name).filter(|r| r.check == check) else {
                    return;
                };
                let Some(verdict) = r.spec.verdict(status) else {
                    return;
                };
                let id = r.spec.id;
                if self.verdicts.insert(name.clone(), verdict) != Some(verdict) {
                    tracing::info!(script = %name, up = verdict, "tracked script");
                }
                if self.reported.insert(id, verdict) != Some(verdict) {
                    self.pending.push_back(TrackUpdate { id, up: verdict });
                }
            }
            Source::File(path) => {
                let Some(r) = self.files.get(path).filter(|r| r.check == check) else {
                    return;
                };
                let Some(value) = status.value else {
                    return;
                };
                if self.values.insert(path.clone(), value) != Some(value) {
                    tracing::info!(file = %path.display(), value, "tracked file");
                }
                let mut updates = Vec::new();
                for u in &r.spec.uses {
                    updates.extend(u.updates(value, &self.reported));
                }
                for (id, up) in updates {
                    self.reported.insert(id, up);
                    self.pending.push_back(TrackUpdate { id, up });
                }
            }
        }
    }

    /// Runs forever, reporting every change to `driver`; returns only when
    /// the driver has stopped.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the driver is gone.
    pub async fn forward(&mut self, driver: &VrrpHandle) -> Result<(), DriverError> {
        loop {
            let u = self.next().await;
            match driver.set_track(u.id, u.up).await {
                // A script or file no instance tracks: nothing to move.
                Ok(()) | Err(DriverError::UnknownTrack(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Every script's verdict and every file's number.
    pub fn statuses(&self) -> Vec<TrackStatus> {
        let mut out: Vec<TrackStatus> = self
            .scripts
            .keys()
            .map(|name| TrackStatus::Script {
                name: name.clone(),
                up: self.verdicts.get(name).copied(),
            })
            .collect();
        out.extend(self.files.keys().map(|path| TrackStatus::File {
            path: path.clone(),
            value: self.values.get(path).copied(),
        }));
        out
    }

    /// Stops every check.
    pub fn shutdown(&mut self) {
        self.retire();
        for (_, r) in std::mem::take(&mut self.scripts) {
            r.watcher.abort();
            self.runner.remove(r.check);
        }
        for (_, r) in std::mem::take(&mut self.files) {
            r.watcher.abort();
            self.runner.remove(r.check);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_use(weight: i32, reverse: bool) -> FileUse {
        let mut n = 0;
        FileUse::new(weight, reverse, |_| {
            n += 1;
            TrackId(n)
        })
    }

    /// The priority change vrrp-core computes from the objects' states.
    fn engine_delta(u: &FileUse, states: &HashMap<TrackId, bool>) -> Option<i32> {
        let mut delta = 0;
        for (id, config, _) in u.tracks() {
            let up = states[&id];
            match (config.weight, up) {
                (0, false) => return None,
                (w, true) if w > 0 => delta += w,
                (w, false) if w < 0 => delta += w,
                _ => {}
            }
        }
        Some(delta)
    }

    #[test]
    fn track_file_contributions_are_keepalived_s() {
        let w1 = file_use(1, false);
        assert_eq!(w1.contribution(0), Some(0));
        assert_eq!(w1.contribution(5), Some(5));
        assert_eq!(w1.contribution(-20), Some(-20));
        assert_eq!(w1.contribution(1000), Some(253));
        assert_eq!(w1.contribution(-254), None);
        assert_eq!(w1.contribution(-1000), None);
        assert_eq!(file_use(-10, true).contribution(2), Some(20));
        let w0 = file_use(0, false);
        assert_eq!(w0.contribution(0), Some(0));
        assert_eq!(w0.contribution(7), None);
        let w0r = file_use(0, true);
        assert_eq!(w0r.contribution(0), None);
        assert_eq!(w0r.contribution(7), Some(0));
        for u in [&w1, &file_use(-10, true), &w0, &w0r, &file_use(-3, false)] {
            for v in [-300, -85, -1, 0, 1, 2, 7, 100, 253, 254, 10_000] {
                let states: HashMap<TrackId, bool> = u.states(v).into_iter().collect();
                assert_eq!(engine_delta(u, &states), u.contribution(v), "{u:?} {v}");
            }
        }
    }

    #[test]
    fn a_changing_number_never_shows_a_higher_priority_in_between() {
        let values = [
            -300, -254, -100, -3, 0, 1, 3, 4, 7, 8, 100, 127, 128, 253, 500,
        ];
        for (weight, reverse) in [(1, false), (-1, false), (5, true), (0, false), (0, true)] {
            let u = file_use(weight, reverse);
            for &from in &values {
                for &to in &values {
                    let mut reported: HashMap<TrackId, bool> = u.states(from).into_iter().collect();
                    let bound = [u.contribution(from), u.contribution(to)]
                        .into_iter()
                        .map(|c| c.unwrap_or(i32::MIN))
                        .max()
                        .unwrap_or(i32::MIN);
                    for (id, up) in u.updates(to, &reported) {
                        reported.insert(id, up);
                        let now = engine_delta(&u, &reported).unwrap_or(i32::MIN);
                        assert!(
                            now <= bound,
                            "w{weight} r{reverse} {from}->{to}: {now} > {bound}"
                        );
                    }
                    assert_eq!(engine_delta(&u, &reported), u.contribution(to));
                }
            }
        }
    }
}
