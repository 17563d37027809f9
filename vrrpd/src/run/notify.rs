//! keepalived's notify scripts: per instance, `notify_master`,
//! `notify_backup`, `notify_fault`, `notify_stop`, then the generic
//! `notify` with `INSTANCE name STATE priority` appended; per sync group,
//! the same with `GROUP name STATE 0`, fired once every member is in the
//! new state. Each change also goes to the notify FIFOs and alert mails
//! ([`super::alerts`]).
//! Scripts of one instance or group run one at a time, in order; different
//! instances do not wait for each other, and nothing here ever blocks the
//! state machine.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use vrrp_core::State;
use vrrp_net::driver::StateEvent;

use super::alerts::{Alert, AlertSender};
use super::exec;
use super::plan::{Command, GroupPlan, Notify};

/// keepalived's state names, as notify scripts receive them.
pub fn state_word(state: State) -> &'static str {
    state.keepalived_name()
}

struct Job {
    command: Command,
    args: Vec<String>,
}

/// Runs notify scripts in order per instance and group.
pub struct Notifier {
    instances: HashMap<String, Notify>,
    groups: Vec<GroupPlan>,
    member_state: HashMap<String, State>,
    group_state: HashMap<String, State>,
    queues: HashMap<String, mpsc::UnboundedSender<Job>>,
    workers: JoinSet<()>,
    timeout: Duration,
    alerts: AlertSender,
}

impl Notifier {
    /// A notifier for these instances and groups.
    pub fn new(
        instances: Vec<(String, Notify)>,
        groups: Vec<GroupPlan>,
        timeout: Duration,
    ) -> Self {
        Notifier {
            instances: instances.into_iter().collect(),
            groups,
            member_state: HashMap::new(),
            group_state: HashMap::new(),
            queues: HashMap::new(),
            workers: JoinSet::new(),
            timeout,
            alerts: AlertSender::none(),
        }
    }

    /// Sends every instance and group change to the notify FIFOs and
    /// alert mails too.
    pub fn set_alerts(&mut self, alerts: AlertSender) {
        self.alerts = alerts;
    }

    /// Replaces the scripts (after a reload); queued runs still happen.
    pub fn reconfigure(&mut self, instances: Vec<(String, Notify)>, groups: Vec<GroupPlan>) {
        self.instances = instances.into_iter().collect();
        self.groups = groups;
    }

    /// Queues the scripts a state change calls for.
    pub fn on_event(&mut self, event: &StateEvent) {
        let to = event.to;
        // keepalived starts a sync group in Backup (or Fault) before its
        // members (`vrrp_init_state`): the group's notifications come
        // first, at its first member's start.
        if event.from == State::Initialize && matches!(to, State::Backup | State::Fault) {
            for g in self.groups.clone() {
                if g.members.contains(&event.instance) && !self.group_state.contains_key(&g.name) {
                    self.group_changed(&g, to);
                }
            }
        }
        let priority = event.priority.get().to_string();
        self.alerts.send(Alert::Instance {
            name: event.instance.clone(),
            state: to,
            priority: event.priority.get(),
        });
        if let Some(n) = self.instances.get(&event.instance).cloned() {
            self.queue_scripts(
                &format!("i:{}", event.instance),
                &n,
                "INSTANCE",
                &event.instance,
                to,
                &priority,
            );
        }
        self.member_state.insert(event.instance.clone(), to);
        for g in self.groups.clone() {
            if !g.members.contains(&event.instance) {
                continue;
            }
            let all = g
                .members
                .iter()
                .all(|m| self.member_state.get(m) == Some(&to));
            if all && self.group_state.get(&g.name) != Some(&to) {
                self.group_changed(&g, to);
            }
        }
    }

    /// A sync group's scripts (keepalived passes 0 as a group's priority)
    /// and alerts.
    fn group_changed(&mut self, g: &GroupPlan, to: State) {
        self.group_state.insert(g.name.clone(), to);
        self.queue_scripts(
            &format!("g:{}", g.name),
            &g.notify,
            "GROUP",
            &g.name,
            to,
            "0",
        );
        self.alerts.send(Alert::Group {
            name: g.name.clone(),
            state: to,
        });
    }

    fn queue_scripts(
        &mut self,
        key: &str,
        n: &Notify,
        kind: &str,
        name: &str,
        to: State,
        priority: &str,
    ) {
        let specific = match to {
            State::Master => n.master.as_ref(),
            State::Backup => n.backup.as_ref(),
            State::Fault => n.fault.as_ref(),
            _ => n.stop.as_ref(),
        };
        let mut jobs = Vec::new();
        if let Some(c) = specific {
            jobs.push(Job {
                command: c.clone(),
                args: Vec::new(),
            });
        }
        if let Some(c) = &n.generic {
            let args = vec![
                kind.to_owned(),
                name.to_owned(),
                state_word(to).to_owned(),
                priority.to_owned(),
            ];
            jobs.push(Job {
                command: c.clone(),
                args,
            });
        }
        if jobs.is_empty() {
            return;
        }
        let timeout = self.timeout;
        let queue = self.queues.entry(key.to_owned()).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            self.workers.spawn(async move {
                while let Some(job) = rx.recv().await {
                    if let Err(e) = exec::run_once(&job.command, &job.args, timeout).await {
                        tracing::warn!(script = ?job.command.argv, args = ?job.args, error = %e, "notify script failed");
                    }
                }
            });
            tx
        });
        for job in jobs {
            let _ = queue.send(job);
        }
    }

    /// Lets queued scripts finish (up to their timeouts).
    pub async fn finish(mut self) {
        self.queues.clear();
        while self.workers.join_next().await.is_some() {}
    }
}
