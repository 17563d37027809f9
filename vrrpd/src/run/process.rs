//! Tracked processes (keepalived's `vrrp_track_process`): the healthcheck
//! crate's process watcher, its quorum changes turned into the driver's
//! tracked objects.

use std::collections::HashMap;

use healthcheck::process::{ProcessWatcher, WatchMode, WatchOptions};
use tokio_util::sync::CancellationToken;
use vrrp_core::TrackId;

use super::plan::TrackProcessPlan;

/// The running watcher of the configured processes.
#[derive(Default)]
pub struct Processes {
    watcher: Option<ProcessWatcher>,
    plans: Vec<TrackProcessPlan>,
    ids: HashMap<String, TrackId>,
    states: HashMap<TrackId, bool>,
    cancel: Option<CancellationToken>,
}

impl Processes {
    /// Replaces the watched processes when they changed (a reload); the
    /// state of every tracked object now.
    pub fn apply(
        &mut self,
        plans: &[TrackProcessPlan],
        cancel: &CancellationToken,
    ) -> anyhow::Result<Vec<(TrackId, bool)>> {
        if plans != self.plans.as_slice() || (self.watcher.is_none() && !plans.is_empty()) {
            self.shutdown();
            self.plans = plans.to_vec();
            self.ids = plans.iter().map(|p| (p.spec.name.clone(), p.id)).collect();
            self.states.clear();
            if !plans.is_empty() {
                let token = cancel.child_token();
                let watcher = ProcessWatcher::start(
                    plans.iter().map(|p| p.spec.clone()).collect(),
                    &WatchOptions::default(),
                    token.clone(),
                )?;
                match watcher.mode() {
                    WatchMode::Polling(every) => tracing::warn!(
                        every = ?every,
                        reason = watcher.why_polling().unwrap_or_default(),
                        "tracked processes are polled (no process connector)"
                    ),
                    mode => tracing::info!(?mode, "tracked processes watched"),
                }
                for s in watcher.initial() {
                    tracing::info!(process = %s.name, quorum = s.up, count = s.count, "tracked process");
                    if let Some(id) = self.ids.get(&s.name) {
                        self.states.insert(*id, s.up);
                    }
                }
                self.watcher = Some(watcher);
                self.cancel = Some(token);
            }
        }
        Ok(self.current())
    }

    /// Every tracked object's state.
    pub fn current(&self) -> Vec<(TrackId, bool)> {
        self.states.iter().map(|(id, up)| (*id, *up)).collect()
    }

    /// The next quorum change: its process, tracked object and state.
    /// Never ends while watching.
    pub async fn next(&mut self) -> (String, TrackId, bool) {
        loop {
            let Some(w) = self.watcher.as_mut() else {
                std::future::pending::<()>().await;
                continue;
            };
            let Some(change) = w.next().await else {
                self.watcher = None;
                continue;
            };
            if let Some(id) = self.ids.get(&change.name).copied() {
                self.states.insert(id, change.up);
                tracing::info!(process = %change.name, quorum = change.up, count = change.count, "tracked process");
                return (change.name, id, change.up);
            }
        }
    }

    /// Stops watching.
    pub fn shutdown(&mut self) {
        if let Some(c) = self.cancel.take() {
            c.cancel();
        }
        if let Some(w) = self.watcher.take() {
            w.shutdown();
        }
    }
}
