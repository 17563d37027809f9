//! keepalived's notify scripts, run from [`Event`]s: for an instance,
//! `notify_master` / `notify_backup` / `notify_fault` / `notify_stop` (and
//! `notify_deleted`) with no arguments, then the generic `notify` with
//! `INSTANCE name STATE priority` appended; for a sync group the same with
//! `GROUP name STATE 0` (`vrrp_notify.c`, `notify_script_exec`).
//!
//! Each instance and each group has its own ordered queue
//! ([`ScriptQueues`]): its scripts run one state change at a time, in the
//! order of the changes, each bounded by the queues' timeout; instances
//! never wait for each other and nothing here blocks the caller.

use std::collections::HashMap;

use crate::command::Command;
use crate::event::{Event, NotifyState};
use crate::queue::{Batch, ScriptQueues};

/// The notify scripts of one instance or sync group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyScripts {
    /// On entering MASTER.
    pub master: Option<Command>,
    /// On entering BACKUP.
    pub backup: Option<Command>,
    /// On entering FAULT.
    pub fault: Option<Command>,
    /// When the daemon stops.
    pub stop: Option<Command>,
    /// When a reload removes the instance (keepalived's `notify_deleted`).
    pub deleted: Option<Command>,
    /// On every change, with `INSTANCE|GROUP name STATE priority` appended.
    pub generic: Option<Command>,
}

impl NotifyScripts {
    /// Whether there is nothing to run.
    pub fn is_empty(&self) -> bool {
        *self == NotifyScripts::default()
    }

    /// The batch for entering `state`: the state's own script, then the
    /// generic one with keepalived's four arguments.
    pub fn batch(&self, kind: &str, name: &str, state: NotifyState, priority: u8) -> Batch {
        let specific = match state {
            NotifyState::Master => &self.master,
            NotifyState::Backup => &self.backup,
            NotifyState::Fault => &self.fault,
            NotifyState::Stop => &self.stop,
            NotifyState::Deleted => &self.deleted,
        };
        let mut jobs = Vec::with_capacity(2);
        if let Some(c) = specific {
            jobs.push((c.clone(), Vec::new()));
        }
        if let Some(c) = &self.generic {
            let args = vec![
                kind.to_owned(),
                name.to_owned(),
                state.word().to_owned(),
                priority.to_string(),
            ];
            jobs.push((c.clone(), args));
        }
        Batch { jobs }
    }
}

/// Runs notify scripts for instance and group [`Event`]s.
#[derive(Debug)]
pub struct Notifier {
    instances: HashMap<String, NotifyScripts>,
    groups: HashMap<String, NotifyScripts>,
    queues: ScriptQueues,
}

impl Notifier {
    /// A notifier running its scripts on `queues` (each instance on key
    /// `instance:NAME`, each group on `group:NAME`).
    pub fn new(queues: ScriptQueues) -> Self {
        Notifier {
            instances: HashMap::new(),
            groups: HashMap::new(),
            queues,
        }
    }

    /// The scripts, by instance and group name (at start-up and after a
    /// reload; what is already queued still runs).
    pub fn configure(
        &mut self,
        instances: impl IntoIterator<Item = (String, NotifyScripts)>,
        groups: impl IntoIterator<Item = (String, NotifyScripts)>,
    ) {
        self.instances = instances
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .collect();
        self.groups = groups.into_iter().filter(|(_, s)| !s.is_empty()).collect();
    }

    /// Queues the scripts an event calls for (other events are ignored).
    pub fn handle(&self, event: &Event) {
        match event {
            Event::Instance {
                name,
                state,
                priority,
            } => {
                if let Some(s) = self.instances.get(name) {
                    self.queues.push(
                        &format!("instance:{name}"),
                        s.batch("INSTANCE", name, *state, *priority),
                    );
                }
            }
            Event::Group { name, state } => {
                if let Some(s) = self.groups.get(name) {
                    // keepalived passes 0 as a group's priority.
                    self.queues
                        .push(&format!("group:{name}"), s.batch("GROUP", name, *state, 0));
                }
            }
            _ => {}
        }
    }

    /// The queues the scripts run on.
    pub fn queues(&self) -> &ScriptQueues {
        &self.queues
    }
}
