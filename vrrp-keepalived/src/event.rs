//! The events keepalived notifies, derived from the VRRP driver's state
//! changes: instances and sync groups entering MASTER, BACKUP, FAULT, STOP
//! (the daemon stopping) or, for an instance removed by a reload, what
//! keepalived 2.2.7 reports then (FAULT, unless it already was in FAULT;
//! `vrrp_notify.c` `send_instance_notifies`, `vrrp.c` `clear_diff_vrrp`).
//!
//! [`Translator`] is the rule, sans IO; [`EventStream`] runs it on a
//! driver's broadcast and never loses the final state: when the broadcast
//! lags it re-reads the driver's snapshot and reports, for every instance
//! whose state differs from the one last reported, its current state (the
//! intermediate ones are gone). Every consumer (notify scripts, a FIFO,
//! mail, an API) reads the same [`Event`]s.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::watch;
use vrrp_core::State;
use vrrp_net::driver::{Snapshot, StateEvent};

/// A state as keepalived names it to notify scripts and FIFOs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotifyState {
    /// MASTER.
    Master,
    /// BACKUP.
    Backup,
    /// FAULT.
    Fault,
    /// STOP: the daemon is stopping.
    Stop,
    /// DELETED: removed by a reload (keepalived with `notify_deleted`).
    Deleted,
}

impl NotifyState {
    /// keepalived's word for it (`MASTER`, `BACKUP`...).
    pub fn word(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
            NotifyState::Deleted => "DELETED",
        }
    }

    /// The state a VRRP state is notified as (`None` for Initialize,
    /// which is STOP or a deletion depending on why it was entered).
    pub fn of(state: State) -> Option<Self> {
        match state {
            State::Master => Some(NotifyState::Master),
            State::Backup => Some(NotifyState::Backup),
            State::Fault => Some(NotifyState::Fault),
            _ => None,
        }
    }
}

impl fmt::Display for NotifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// How an instance removed by a reload is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Removal {
    /// keepalived 2.2.7's default: FAULT (nothing if it was in FAULT).
    #[default]
    AsFault,
    /// keepalived's `notify_deleted`: DELETED.
    AsDeleted,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A VRRP instance changed state.
    Instance {
        /// Its name.
        name: String,
        /// The new state.
        state: NotifyState,
        /// Its effective priority then.
        priority: u8,
    },
    /// A sync group changed state (keepalived passes priority 0).
    Group {
        /// Its name.
        name: String,
        /// The new state.
        state: NotifyState,
    },
    /// A real server of a virtual server came up or went down (see
    /// [`crate::RealServers`]).
    RealServer {
        /// The virtual service.
        service: lvs::ServiceKey,
        /// The real server.
        server: std::net::SocketAddr,
        /// Up or down.
        up: bool,
    },
    /// A virtual server gained or lost its quorum.
    Quorum {
        /// The virtual service.
        service: lvs::ServiceKey,
        /// Gained (true) or lost.
        up: bool,
    },
    /// One health check of a real server changed state.
    Checker {
        /// The virtual service.
        service: lvs::ServiceKey,
        /// The real server.
        server: std::net::SocketAddr,
        /// The check's name.
        check: String,
        /// Up or down.
        up: bool,
    },
}

/// One sync group: its name and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroup {
    /// The group's name.
    pub name: String,
    /// Its instances' names.
    pub members: Vec<String>,
}

/// keepalived's notification rules over driver state changes, sans IO.
///
/// - An instance's change to Master, Backup or Fault is notified as such;
///   to Initialize, as STOP, unless [`Translator::removing`] announced it
///   is being removed by a reload: then as [`Removal`] says.
/// - A sync group is notified when every member is in the new state; at
///   start-up keepalived puts a group in BACKUP (or FAULT) before its
///   members (`vrrp_init_state`), so the first member entering one of
///   those notifies the group first.
#[derive(Debug, Clone, Default)]
pub struct Translator {
    groups: Vec<SyncGroup>,
    removal: Removal,
    removing: HashSet<String>,
    /// Last state notified per instance.
    instances: HashMap<String, NotifyState>,
    /// Last state notified per group.
    group_state: HashMap<String, NotifyState>,
}

impl Translator {
    /// A translator for these sync groups.
    pub fn new(groups: Vec<SyncGroup>) -> Self {
        Translator {
            groups,
            ..Translator::default()
        }
    }

    /// How removed instances are reported.
    pub fn set_removal(&mut self, removal: Removal) {
        self.removal = removal;
    }

    /// The sync groups from now on (after a reload).
    pub fn set_groups(&mut self, groups: Vec<SyncGroup>) {
        self.group_state
            .retain(|g, _| groups.iter().any(|n| &n.name == g));
        self.groups = groups;
    }

    /// Instances a reload removes (or restarts): their next change to
    /// Initialize is a removal, not a stop.
    pub fn removing(&mut self, names: impl IntoIterator<Item = String>) {
        self.removing.extend(names);
    }

    /// The last state notified for an instance.
    pub fn instance_state(&self, name: &str) -> Option<NotifyState> {
        self.instances.get(name).copied()
    }

    /// The notifications a driver state change calls for, in order.
    pub fn handle(&mut self, event: &StateEvent) -> Vec<Event> {
        let mut out = Vec::new();
        let state = match NotifyState::of(event.to) {
            Some(s) => s,
            None if self.removing.remove(&event.instance) => {
                let last = self.instances.remove(&event.instance);
                match self.removal {
                    Removal::AsDeleted => NotifyState::Deleted,
                    // keepalived: an instance removed in FAULT says nothing.
                    Removal::AsFault if last == Some(NotifyState::Fault) => return out,
                    Removal::AsFault => NotifyState::Fault,
                }
            }
            None if event.to == State::Initialize => NotifyState::Stop,
            None => return out,
        };
        self.instance(
            &event.instance,
            state,
            event.priority.get(),
            event.from == State::Initialize,
            &mut out,
        );
        out
    }

    fn instance(
        &mut self,
        name: &str,
        state: NotifyState,
        priority: u8,
        starting: bool,
        out: &mut Vec<Event>,
    ) {
        if starting && matches!(state, NotifyState::Backup | NotifyState::Fault) {
            for g in &self.groups {
                if g.members.iter().any(|m| m == name) && !self.group_state.contains_key(&g.name) {
                    self.group_state.insert(g.name.clone(), state);
                    out.push(Event::Group {
                        name: g.name.clone(),
                        state,
                    });
                }
            }
        }
        out.push(Event::Instance {
            name: name.to_owned(),
            state,
            priority,
        });
        if matches!(state, NotifyState::Deleted) {
            return;
        }
        self.instances.insert(name.to_owned(), state);
        for g in &self.groups {
            if !g.members.iter().any(|m| m == name) {
                continue;
            }
            let all = g
                .members
                .iter()
                .all(|m| self.instances.get(m) == Some(&state));
            if all && self.group_state.get(&g.name) != Some(&state) {
                self.group_state.insert(g.name.clone(), state);
                out.push(Event::Group {
                    name: g.name.clone(),
                    state,
                });
            }
        }
        if state == NotifyState::Stop {
            // A stopped group starts afresh if its members start again.
            let stopped: Vec<String> = self
                .group_state
                .iter()
                .filter(|(_, s)| **s == NotifyState::Stop)
                .map(|(g, _)| g.clone())
                .collect();
            for g in stopped {
                self.group_state.remove(&g);
            }
        }
    }

    /// After lost driver events: the notifications that bring every
    /// instance of `snapshot` from its last notified state to its current
    /// one (one per instance whose state differs).
    pub fn resync(&mut self, snapshot: &Snapshot) -> Vec<Event> {
        let mut out = Vec::new();
        for i in &snapshot.instances {
            let Some(state) = NotifyState::of(i.state) else {
                continue;
            };
            if self.instances.get(&i.name) != Some(&state) {
                let starting = !self.instances.contains_key(&i.name);
                self.instance(&i.name, state, i.priority.get(), starting, &mut out);
            }
        }
        out
    }
}

/// A driver's state changes as [`Event`]s, without loss of the final
/// state (see the module docs).
#[derive(Debug)]
pub struct EventStream {
    events: broadcast::Receiver<StateEvent>,
    snapshot: watch::Receiver<Snapshot>,
    translator: Translator,
    ready: VecDeque<Event>,
    lagged: u64,
    closed: bool,
}

impl EventStream {
    /// Reads `events` (take them with
    /// `VrrpHandle::subscribe_from_start` to see the start-up
    /// transitions) and, after a lag, `snapshot` (`VrrpHandle::watch`).
    pub fn new(
        events: broadcast::Receiver<StateEvent>,
        snapshot: watch::Receiver<Snapshot>,
        translator: Translator,
    ) -> Self {
        EventStream {
            events,
            snapshot,
            translator,
            ready: VecDeque::new(),
            lagged: 0,
            closed: false,
        }
    }

    /// The rules, to announce removals or change the groups.
    pub fn translator(&mut self) -> &mut Translator {
        &mut self.translator
    }

    /// Driver events lost to lag so far (each followed by a resync).
    pub fn lagged(&self) -> u64 {
        self.lagged
    }

    /// The next event; `None` once the driver has stopped and every event
    /// it sent was read. Cancel-safe.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            if self.closed {
                return None;
            }
            match self.events.recv().await {
                Ok(e) => self.ready.extend(self.translator.handle(&e)),
                Err(RecvError::Lagged(n)) => self.resync(n),
                Err(RecvError::Closed) => self.closed = true,
            }
        }
    }

    /// Every event available now, without waiting (after a reload, to
    /// notify what happened with the scripts of the configuration it
    /// happened under).
    pub fn drain_now(&mut self) -> Vec<Event> {
        loop {
            match self.events.try_recv() {
                Ok(e) => self.ready.extend(self.translator.handle(&e)),
                Err(TryRecvError::Lagged(n)) => self.resync(n),
                Err(TryRecvError::Closed) => {
                    self.closed = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        self.ready.drain(..).collect()
    }

    fn resync(&mut self, missed: u64) {
        self.lagged += missed;
        tracing::warn!(
            missed,
            "state events lagged: notifying current states from the snapshot"
        );
        let snapshot = self.snapshot.borrow().clone();
        self.ready.extend(self.translator.resync(&snapshot));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vrrp_core::{Priority, Reason, Vrid};

    use super::*;

    fn ev(name: &str, from: State, to: State) -> StateEvent {
        StateEvent {
            instance: name.into(),
            vrid: Vrid::new(1).expect("vrid"),
            from,
            to,
            reason: Reason::Startup,
            priority: Priority::new(100),
            at: Duration::ZERO,
        }
    }

    fn inst(name: &str, state: NotifyState) -> Event {
        Event::Instance {
            name: name.into(),
            state,
            priority: 100,
        }
    }

    fn group(name: &str, state: NotifyState) -> Event {
        Event::Group {
            name: name.into(),
            state,
        }
    }

    #[test]
    fn groups_follow_their_members_and_start_before_them() {
        use NotifyState::*;
        let mut t = Translator::new(vec![SyncGroup {
            name: "G".into(),
            members: vec!["a".into(), "b".into()],
        }]);
        assert_eq!(
            t.handle(&ev("a", State::Initialize, State::Backup)),
            vec![group("G", Backup), inst("a", Backup)]
        );
        assert_eq!(
            t.handle(&ev("b", State::Initialize, State::Backup)),
            vec![inst("b", Backup)]
        );
        assert_eq!(
            t.handle(&ev("a", State::Backup, State::Master)),
            vec![inst("a", Master)]
        );
        assert_eq!(
            t.handle(&ev("b", State::Backup, State::Master)),
            vec![inst("b", Master), group("G", Master)]
        );
        // Stop: the instances, then the group after the last one.
        assert_eq!(
            t.handle(&ev("a", State::Master, State::Initialize)),
            vec![inst("a", Stop)]
        );
        assert_eq!(
            t.handle(&ev("b", State::Master, State::Initialize)),
            vec![inst("b", Stop), group("G", Stop)]
        );
    }

    #[test]
    fn a_removed_instance_is_reported_as_keepalived_does() {
        use NotifyState::*;
        let mut t = Translator::default();
        t.handle(&ev("a", State::Initialize, State::Master));
        t.handle(&ev("f", State::Initialize, State::Fault));
        t.removing(["a".to_owned(), "f".to_owned()]);
        assert_eq!(
            t.handle(&ev("a", State::Master, State::Initialize)),
            vec![inst("a", Fault)]
        );
        assert_eq!(
            t.handle(&ev("f", State::Fault, State::Initialize)),
            vec![],
            "FAULT says nothing"
        );
        // The flag is used once: a later stop is a stop.
        t.handle(&ev("a", State::Initialize, State::Backup));
        assert_eq!(
            t.handle(&ev("a", State::Backup, State::Initialize)),
            vec![inst("a", Stop)]
        );
        let mut t = Translator::default();
        t.set_removal(Removal::AsDeleted);
        t.handle(&ev("f", State::Initialize, State::Fault));
        t.removing(["f".to_owned()]);
        assert_eq!(
            t.handle(&ev("f", State::Fault, State::Initialize)),
            vec![inst("f", Deleted)]
        );
    }

    #[tokio::test]
    async fn a_lagging_stream_reports_the_final_states_from_the_snapshot() {
        use NotifyState::*;
        let (tx, rx) = broadcast::channel(4);
        let (snap_tx, snap_rx) = watch::channel(Snapshot::default());
        let mut stream = EventStream::new(rx, snap_rx, Translator::default());
        tx.send(ev("a", State::Initialize, State::Backup))
            .expect("send");
        assert_eq!(stream.next().await, Some(inst("a", Backup)));
        // b starts, then a flaps ten times: b's only change is lost in
        // the lag, the broadcast keeping the newest four.
        tx.send(ev("b", State::Initialize, State::Master))
            .expect("send");
        for i in 0..10 {
            let (from, to) = if i % 2 == 0 {
                (State::Backup, State::Master)
            } else {
                (State::Master, State::Backup)
            };
            tx.send(ev("a", from, to)).expect("send");
        }
        let status = |name: &str, state| vrrp_net::driver::InstanceStatus {
            name: name.into(),
            interface: "eth0".into(),
            vrid: Vrid::new(1).expect("vrid"),
            state,
            priority: Priority::new(100),
            base_priority: Priority::new(100),
            maintenance: false,
            master: None,
            source: None,
            unbound: None,
            vips: Vec::new(),
            stats: vrrp_core::Statistics::default(),
            adverts: Default::default(),
            master_priority: None,
            peers: Vec::new(),
            garps_sent: 0,
            nas_sent: 0,
        };
        let mut snapshot = Snapshot::default();
        snapshot.instances.push(status("a", State::Backup));
        snapshot.instances.push(status("b", State::Master));
        snap_tx.send_replace(snapshot);
        drop(tx);
        let mut got = Vec::new();
        while let Some(e) = stream.next().await {
            got.push(e);
        }
        assert_eq!(stream.lagged(), 7);
        assert_eq!(
            got,
            vec![
                inst("b", Master), // from the snapshot
                inst("a", Master), // the four kept events
                inst("a", Backup),
                inst("a", Master),
                inst("a", Backup),
            ]
        );
    }
}
