//! Tracked scripts and files: their results move the VRRP instances'
//! priorities (or put them in Fault) through the driver's tracked objects.

use std::collections::HashMap;
use std::time::Duration;

use healthcheck::{CheckId, CheckSpec, Health, Probe, RunnerHandle, Timing};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vrrp_core::TrackId;

use super::exec;
use super::plan::{TrackFile, TrackScript};

struct Running {
    check: CheckId,
    spec: TrackScript,
    watcher: JoinHandle<()>,
}

/// The health checks standing for `vrrp_script`s, judged as keepalived
/// judges them: `rise` and `fall` count runs in a row, a script without
/// `init_fail` is undecided until its first run and that run decides at
/// once (`vrrp_script_child_thread`), one with `init_fail` starts failed.
pub struct Scripts {
    by_name: HashMap<String, Running>,
    /// The decided verdicts (an undecided script has none).
    verdicts: HashMap<String, bool>,
    tx: mpsc::UnboundedSender<(String, bool)>,
    rx: mpsc::UnboundedReceiver<(String, bool)>,
}

impl Default for Scripts {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Scripts {
            by_name: HashMap::new(),
            verdicts: HashMap::new(),
            tx,
            rx,
        }
    }
}

impl Scripts {
    /// Adds or replaces the scripts, keeping those whose definition did not
    /// change (so a reload does not reset their state).
    pub fn apply(&mut self, runner: &RunnerHandle, scripts: &[TrackScript]) -> anyhow::Result<()> {
        let wanted: HashMap<&str, &TrackScript> =
            scripts.iter().map(|s| (s.name.as_str(), s)).collect();
        let stale: Vec<String> = self
            .by_name
            .iter()
            .filter(|(name, r)| wanted.get(name.as_str()).is_none_or(|new| **new != r.spec))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(r) = self.by_name.remove(&name) {
                r.watcher.abort();
                runner.remove(r.check);
            }
            self.verdicts.remove(&name);
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
            timing.first_round_decides = !s.init_fail;
            timing.warmup = Duration::ZERO;
            timing.jitter = Duration::ZERO;
            let spec = CheckSpec {
                name: s.name.clone(),
                probe: Probe::Script(exec::script(&s.command, &[])),
                timing,
            };
            let check = runner.add(spec)?;
            let mut watch = runner
                .watch(check)
                .ok_or_else(|| anyhow::anyhow!("script {} vanished", s.name))?;
            let tx = self.tx.clone();
            let name = s.name.clone();
            let watcher = tokio::spawn(async move {
                // The watch wakes when the script is first decided and on
                // every change of its health.
                while watch.changed().await.is_ok() {
                    let (decided, up) = {
                        let status = watch.borrow_and_update();
                        (status.decided(), status.health.is_up())
                    };
                    if decided {
                        let _ = tx.send((name.clone(), up));
                    }
                }
            });
            if s.init_fail {
                self.verdicts.insert(s.name.clone(), false);
            }
            self.by_name.insert(
                s.name.clone(),
                Running {
                    check,
                    spec: s.clone(),
                    watcher,
                },
            );
        }
        Ok(())
    }

    /// The next change of a script's verdict: its tracked object and
    /// whether it is up. Never ends while the set runs.
    pub async fn next(&mut self) -> (String, TrackId, bool) {
        loop {
            let Some((name, ok)) = self.rx.recv().await else {
                std::future::pending::<()>().await;
                continue;
            };
            let Some(running) = self.by_name.get(&name) else {
                continue;
            };
            if self.verdicts.insert(name.clone(), ok) != Some(ok) {
                return (name, running.spec.id, ok);
            }
        }
    }

    /// Every decided script's state.
    pub fn current(&self) -> Vec<(TrackId, bool)> {
        self.by_name
            .iter()
            .filter_map(|(name, r)| Some((r.spec.id, *self.verdicts.get(name)?)))
            .collect()
    }

    /// Script name and verdict (undecided counts as down), for /status.
    pub fn statuses(&self) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = self
            .by_name
            .keys()
            .map(|name| {
                let up = self.verdicts.get(name).copied().unwrap_or(false);
                (name.clone(), up)
            })
            .collect();
        v.sort();
        v
    }

    /// Stops watching.
    pub fn shutdown(&mut self) {
        for r in self.by_name.values() {
            r.watcher.abort();
        }
    }
}

/// keepalived's reading of a tracked file: `strtol(buf, NULL, 0)` of its
/// first 127 bytes (decimal, 0x hexadecimal or 0 octal, leading blanks and
/// a sign allowed, trailing text ignored); missing, empty or no number is
/// 0. `None` for a number out of the 32-bit range, which keepalived
/// ignores (the previous value stays).
pub fn read_track_file_value(bytes: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(127)]);
    let s = text.trim_start();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(rest) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
        && rest.chars().next().is_some_and(|c| c.is_ascii_hexdigit())
    {
        (16, rest)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let mut value: i64 = 0;
    for c in digits[..end].chars() {
        let d = i64::from(c.to_digit(radix).unwrap_or(0));
        value = value.saturating_mul(i64::from(radix)).saturating_add(d);
    }
    if negative {
        value = -value;
    }
    (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1)
        .contains(&value)
        .then_some(value)
}

/// Reads a tracked file as keepalived does (see
/// [`read_track_file_value`]); `None` to keep the previous
/// number.
pub fn file_value(path: &std::path::Path) -> Option<i64> {
    use std::io::Read;
    let mut buf = [0u8; 127];
    match std::fs::File::open(path) {
        Ok(mut f) => {
            let n = f.read(&mut buf).unwrap_or(0);
            read_track_file_value(&buf[..n])
        }
        Err(_) => Some(0),
    }
}

/// Creates the files that ask for it (`init_file`), at start-up only.
pub fn init_files(files: &[TrackFile]) {
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

/// Polls tracked files; returns the changes since the last poll.
#[derive(Default)]
pub struct Files {
    values: HashMap<std::path::PathBuf, i64>,
    last: HashMap<TrackId, bool>,
}

impl Files {
    /// The state of every tracked object now, and which changed.
    pub fn poll(&mut self, files: &[TrackFile]) -> Vec<(TrackId, bool)> {
        let mut changes = Vec::new();
        for f in files {
            let value = match file_value(&f.path) {
                Some(v) => v,
                None => {
                    tracing::warn!(file = %f.path.display(), "number out of range in track file; ignored");
                    self.values.get(&f.path).copied().unwrap_or(0)
                }
            };
            self.values.insert(f.path.clone(), value);
            for u in &f.uses {
                for (id, up) in u.states(value) {
                    if self.last.insert(id, up) != Some(up) {
                        changes.push((id, up));
                    }
                }
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_files_read_like_strtol() {
        for (text, want) in [
            ("", Some(0)),
            ("\n", Some(0)),
            ("0\n", Some(0)),
            ("  42 trailing", Some(42)),
            ("-7", Some(-7)),
            ("0x1f", Some(31)),
            ("010", Some(8)),
            ("abc", Some(0)),
            ("99999999999", None),
            ("2147483648", Some(2_147_483_648)),
        ] {
            assert_eq!(read_track_file_value(text.as_bytes()), want, "{text:?}");
        }
    }
}
