//! Tracked scripts and files: their results move the VRRP instances'
//! priorities (or put them in Fault) through the driver's tracked objects.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use healthcheck::{CheckId, CheckSpec, Health, Probe, RunnerHandle, Timing};
use vrrp_core::TrackId;

use super::exec;
use super::plan::{TrackFile, TrackScript};

/// The health checks standing for `vrrp_script`s.
#[derive(Default)]
pub struct Scripts {
    by_check: HashMap<CheckId, TrackId>,
    by_name: HashMap<String, (CheckId, TrackScript)>,
}

impl Scripts {
    /// Adds or replaces the scripts, keeping those whose definition did not
    /// change (so a reload does not reset their rise/fall state).
    pub fn apply(&mut self, runner: &RunnerHandle, scripts: &[TrackScript]) -> anyhow::Result<()> {
        let wanted: HashMap<&str, &TrackScript> =
            scripts.iter().map(|s| (s.name.as_str(), s)).collect();
        let stale: Vec<String> = self
            .by_name
            .iter()
            .filter(|(name, (_, old))| wanted.get(name.as_str()).is_none_or(|new| *new != old))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some((check, _)) = self.by_name.remove(&name) {
                runner.remove(check);
                self.by_check.remove(&check);
            }
        }
        for s in scripts {
            if self.by_name.contains_key(&s.name) {
                continue;
            }
            let mut timing = Timing::every(s.interval);
            timing.timeout = s.timeout;
            timing.retry = 0;
            timing.rise = s.rise.max(1);
            timing.fall = s.fall.max(1);
            timing.initial = if s.init_fail {
                Health::Down
            } else {
                Health::Up
            };
            timing.warmup = Duration::ZERO;
            timing.jitter = Duration::ZERO;
            let spec = CheckSpec {
                name: s.name.clone(),
                probe: Probe::Script(exec::script(&s.command, &[])),
                timing,
            };
            let check = runner.add(spec)?;
            self.by_check.insert(check, s.id);
            self.by_name.insert(s.name.clone(), (check, s.clone()));
        }
        Ok(())
    }

    /// The tracked object a check drives.
    pub fn track_of(&self, check: CheckId) -> Option<TrackId> {
        self.by_check.get(&check).copied()
    }

    /// Every script's current health, from the runner.
    pub fn current(&self, runner: &RunnerHandle) -> Vec<(TrackId, bool)> {
        self.by_check
            .iter()
            .filter_map(|(check, track)| {
                runner
                    .watch(*check)
                    .map(|w| (*track, w.borrow().health == Health::Up))
            })
            .collect()
    }

    /// Script name and health, for /status.
    pub fn statuses(&self, runner: &RunnerHandle) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = self
            .by_name
            .iter()
            .filter_map(|(name, (check, _))| {
                runner
                    .watch(*check)
                    .map(|w| (name.clone(), w.borrow().health == Health::Up))
            })
            .collect();
        v.sort();
        v
    }
}

/// Reads a tracked file the way keepalived does with weight 0: a number,
/// 0 meaning up; anything else, a missing file or no number, down.
pub fn file_up(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|w| w.parse::<i64>().ok())
        })
        .is_some_and(|v| v == 0)
}

/// Polls tracked files; returns the changes since the last poll.
#[derive(Default)]
pub struct Files {
    last: HashMap<TrackId, bool>,
}

impl Files {
    /// The state of every file now, and which changed.
    pub fn poll(&mut self, files: &[TrackFile]) -> Vec<(TrackId, bool)> {
        let mut changes = Vec::new();
        for f in files {
            let up = file_up(&f.path);
            if self.last.insert(f.id, up) != Some(up) {
                changes.push((f.id, up));
            }
        }
        changes
    }
}
