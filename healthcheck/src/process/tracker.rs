//! keepalived's `vrrp_track_process` logic, sans-IO: which processes count
//! for which tracker, and when a tracker's quorum is gained or lost, with
//! its fork and terminate delays. Time is a parameter; the I/O (the /proc
//! scan, the kernel's process events) is [`super::ProcessWatcher`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How the arguments of a process must match (keepalived's
/// `param_match`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParamMatch {
    /// Arguments are not looked at.
    #[default]
    None,
    /// Exactly these arguments (none when none are given).
    Exact,
    /// These arguments first, then anything (whole words).
    Partial,
    /// As `Partial`, but the last given argument may be the start of the
    /// process's.
    Initial,
}

/// One `vrrp_track_process`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcessSpec {
    /// Its name.
    pub name: String,
    /// The process: its name as the kernel keeps it (`comm`, at most 15
    /// characters), or with `full_command` the first word of its command
    /// line.
    pub process: String,
    /// Arguments to match (see `param_match`).
    pub params: Vec<String>,
    /// How arguments match.
    pub param_match: ParamMatch,
    /// Match the command line rather than `comm`.
    pub full_command: bool,
    /// Fewest processes for quorum (1; 0 with `quorum_max` 0: up while none
    /// runs).
    pub quorum: u32,
    /// Most processes for quorum (no limit by default).
    pub quorum_max: u32,
    /// Wait this long after the count reaches quorum by a fork before
    /// saying so.
    pub fork_delay: Duration,
    /// Wait this long after the count drops out of quorum by an exit before
    /// saying so.
    pub terminate_delay: Duration,
}

impl ProcessSpec {
    /// A tracker of processes called `process` with keepalived's defaults:
    /// quorum 1, no maximum, no delays.
    #[must_use]
    pub fn new(name: impl Into<String>, process: impl Into<String>) -> Self {
        ProcessSpec {
            name: name.into(),
            process: process.into(),
            params: Vec::new(),
            param_match: ParamMatch::None,
            full_command: false,
            quorum: 1,
            quorum_max: u32::MAX,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
        }
    }
}

/// What is known of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its id (thread group id).
    pub pid: u32,
    /// Its name as the kernel keeps it.
    pub comm: String,
    /// Its command line: the words, each ending in a NUL byte.
    pub cmdline: Vec<u8>,
}

/// A process event, as the kernel's process connector reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessEvent {
    /// A process forked (threads are not reported).
    Fork {
        /// The parent.
        parent: u32,
        /// The child.
        child: u32,
    },
    /// A process executed a program: what it is now (`None` when it is
    /// gone already).
    Exec(u32, Option<ProcessInfo>),
    /// A process changed its name.
    Comm {
        /// The process.
        pid: u32,
        /// Its new name.
        comm: String,
    },
    /// A process exited.
    Exit(u32),
}

/// A tracker gained or lost quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumChange {
    /// The tracker.
    pub name: String,
    /// Quorum now.
    pub up: bool,
    /// Processes counted now.
    pub count: u32,
}

#[derive(Debug)]
struct Tracker {
    spec: ProcessSpec,
    pids: BTreeSet<u32>,
    up: bool,
    fork_timer: Option<Instant>,
    terminate_timer: Option<Instant>,
}

impl Tracker {
    fn count(&self) -> u32 {
        u32::try_from(self.pids.len()).unwrap_or(u32::MAX)
    }

    fn in_quorum(&self) -> bool {
        let n = self.count();
        n >= self.spec.quorum && n <= self.spec.quorum_max
    }

    /// keepalived's `check_params`: `params` are the process's arguments,
    /// each NUL-terminated.
    fn params_match(&self, params: &[u8]) -> bool {
        let s = &self.spec;
        let mut wanted = Vec::new();
        for p in &s.params {
            wanted.extend_from_slice(p.as_bytes());
            wanted.push(0);
        }
        match s.param_match {
            ParamMatch::None => true,
            ParamMatch::Exact => params == wanted.as_slice(),
            _ if s.params.is_empty() => true,
            ParamMatch::Partial => params.starts_with(&wanted),
            ParamMatch::Initial => {
                params.len() >= wanted.len() && params.starts_with(&wanted[..wanted.len() - 1])
            }
        }
    }

    /// Whether `info` is one of this tracker's processes.
    fn matches(&self, info: &ProcessInfo) -> bool {
        if self.spec.full_command {
            let argv0_end = info
                .cmdline
                .iter()
                .position(|b| *b == 0)
                .unwrap_or(info.cmdline.len());
            if &info.cmdline[..argv0_end] != self.spec.process.as_bytes() {
                return false;
            }
            let params = info.cmdline.get(argv0_end + 1..).unwrap_or_default();
            self.params_match(params)
        } else {
            info.comm == self.spec.process
        }
    }
}

/// keepalived's process tracking, over events and time given to it.
///
/// Feed it the processes running at start ([`ProcessTracker::new`]), then
/// each [`ProcessEvent`] ([`ProcessTracker::handle_event`]) and the time
/// ([`ProcessTracker::handle_timeout`] at [`ProcessTracker::poll_timeout`]);
/// drain [`ProcessTracker::poll_change`] after each.
#[derive(Debug)]
pub struct ProcessTracker {
    trackers: Vec<Tracker>,
    changes: std::collections::VecDeque<QuorumChange>,
}

impl ProcessTracker {
    /// Trackers counting the `running` processes (keepalived's
    /// `read_procs`); each starts in quorum or not, without delay.
    #[must_use]
    pub fn new(specs: Vec<ProcessSpec>, running: &[ProcessInfo]) -> Self {
        let mut trackers: Vec<Tracker> = specs
            .into_iter()
            .map(|spec| Tracker {
                spec,
                pids: BTreeSet::new(),
                up: false,
                fork_timer: None,
                terminate_timer: None,
            })
            .collect();
        for t in &mut trackers {
            for p in running {
                if t.matches(p) {
                    t.pids.insert(p.pid);
                }
            }
            t.up = t.in_quorum();
        }
        ProcessTracker {
            trackers,
            changes: std::collections::VecDeque::new(),
        }
    }

    /// Each tracker's state: name, quorum, count.
    #[must_use]
    pub fn states(&self) -> Vec<QuorumChange> {
        self.trackers
            .iter()
            .map(|t| QuorumChange {
                name: t.spec.name.clone(),
                up: t.up,
                count: t.count(),
            })
            .collect()
    }

    /// Whether any tracker needs command lines (to read them only then,
    /// as keepalived does).
    #[must_use]
    pub fn needs_cmdline(&self) -> bool {
        self.trackers.iter().any(|t| t.spec.full_command)
    }

    fn set(&mut self, i: usize, up: bool) {
        let t = &mut self.trackers[i];
        if t.up == up {
            return;
        }
        t.up = up;
        self.changes.push_back(QuorumChange {
            name: t.spec.name.clone(),
            up,
            count: t.count(),
        });
    }

    /// One more process for tracker `i` (keepalived's `check_process` /
    /// `check_process_fork`).
    fn gained(&mut self, i: usize, pid: u32, by_fork: bool, now: Instant) {
        let t = &mut self.trackers[i];
        if !t.pids.insert(pid) {
            return;
        }
        let n = t.count();
        let max = t.spec.quorum_max.saturating_add(1);
        if n != t.spec.quorum && n != max {
            return;
        }
        if t.terminate_timer.take().is_none() && by_fork && !t.spec.fork_delay.is_zero() {
            t.fork_timer = Some(now + t.spec.fork_delay);
            return;
        }
        let up = n == t.spec.quorum;
        self.set(i, up);
    }

    /// One process less for tracker `i`: an exit (`check_process_termination`,
    /// with the terminate delay) or a process that is no longer one of its
    /// (`remove_process_from_track`, without).
    fn lost(&mut self, i: usize, pid: u32, by_exit: bool, now: Instant) {
        let t = &mut self.trackers[i];
        let before = t.count();
        if !t.pids.remove(&pid) {
            return;
        }
        let n = t.count();
        if before != t.spec.quorum && n != t.spec.quorum_max {
            return;
        }
        if t.fork_timer.take().is_none() && by_exit && !t.spec.terminate_delay.is_zero() {
            t.terminate_timer = Some(now + t.spec.terminate_delay);
            return;
        }
        let up = n == t.spec.quorum_max;
        self.set(i, up);
    }

    /// A process event at `now`.
    pub fn handle_event(&mut self, event: &ProcessEvent, now: Instant) {
        match event {
            ProcessEvent::Fork { parent, child } => {
                for i in 0..self.trackers.len() {
                    if self.trackers[i].pids.contains(parent) {
                        self.gained(i, *child, true, now);
                    }
                }
            }
            ProcessEvent::Exec(pid, info) => {
                for i in 0..self.trackers.len() {
                    let matches = info.as_ref().is_some_and(|p| self.trackers[i].matches(p));
                    if matches {
                        self.gained(i, *pid, false, now);
                    } else {
                        self.lost(i, *pid, false, now);
                    }
                }
            }
            ProcessEvent::Comm { pid, comm } => {
                for i in 0..self.trackers.len() {
                    let t = &self.trackers[i];
                    // A name change says nothing of the command line.
                    if t.spec.full_command {
                        continue;
                    }
                    if t.spec.process == *comm {
                        if !t.pids.contains(pid) {
                            self.gained(i, *pid, false, now);
                        }
                    } else {
                        self.lost(i, *pid, false, now);
                    }
                }
            }
            ProcessEvent::Exit(pid) => {
                for i in 0..self.trackers.len() {
                    self.lost(i, *pid, true, now);
                }
            }
        }
    }

    /// The processes running now (a rescan after lost events): counts are
    /// replaced; a tracker that crossed its quorum changes with its delays
    /// (keepalived's `reinitialise_track_processes`).
    pub fn handle_rescan(&mut self, running: &[ProcessInfo], now: Instant) {
        for i in 0..self.trackers.len() {
            let t = &mut self.trackers[i];
            t.pids = running
                .iter()
                .filter(|p| t.matches(p))
                .map(|p| p.pid)
                .collect();
            let want = t.in_quorum();
            if want == t.up {
                t.fork_timer = None;
                t.terminate_timer = None;
                continue;
            }
            // A delay already running keeps running (a poll every so often
            // sees the same change again and again).
            if want {
                t.terminate_timer = None;
                if !t.spec.fork_delay.is_zero() {
                    t.fork_timer.get_or_insert(now + t.spec.fork_delay);
                    continue;
                }
            } else {
                t.fork_timer = None;
                if !t.spec.terminate_delay.is_zero() {
                    t.terminate_timer
                        .get_or_insert(now + t.spec.terminate_delay);
                    continue;
                }
            }
            self.set(i, want);
        }
    }

    /// The next time [`ProcessTracker::handle_timeout`] has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.trackers
            .iter()
            .flat_map(|t| [t.fork_timer, t.terminate_timer])
            .flatten()
            .min()
    }

    /// Delays that ran out by `now` settle their trackers; early or
    /// repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.trackers.len() {
            let t = &mut self.trackers[i];
            let due = |timer: &mut Option<Instant>| {
                if timer.is_some_and(|at| at <= now) {
                    *timer = None;
                    true
                } else {
                    false
                }
            };
            let fired = due(&mut t.fork_timer) | due(&mut t.terminate_timer);
            if fired {
                let want = t.in_quorum();
                self.set(i, want);
            }
        }
    }

    /// The next quorum change, in order.
    #[must_use]
    pub fn poll_change(&mut self) -> Option<QuorumChange> {
        self.changes.pop_front()
    }

    /// Processes counted by each tracker, by name (for status).
    #[must_use]
    pub fn counts(&self) -> BTreeMap<String, u32> {
        self.trackers
            .iter()
            .map(|t| (t.spec.name.clone(), t.count()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, comm: &str, cmdline: &[&str]) -> ProcessInfo {
        let mut c = Vec::new();
        for w in cmdline {
            c.extend_from_slice(w.as_bytes());
            c.push(0);
        }
        ProcessInfo {
            pid,
            comm: comm.to_owned(),
            cmdline: c,
        }
    }

    fn changes(t: &mut ProcessTracker) -> Vec<(String, bool, u32)> {
        std::iter::from_fn(|| t.poll_change())
            .map(|c| (c.name, c.up, c.count))
            .collect()
    }

    #[test]
    fn quorum_and_quorum_max_count_processes() {
        let mut spec = ProcessSpec::new("web", "nginx");
        spec.quorum = 2;
        spec.quorum_max = 3;
        let now = Instant::now();
        let mut t = ProcessTracker::new(vec![spec], &[proc(10, "nginx", &["nginx"])]);
        assert!(!t.states()[0].up, "one of two");
        t.handle_event(
            &ProcessEvent::Fork {
                parent: 10,
                child: 11,
            },
            now,
        );
        assert_eq!(changes(&mut t), [("web".into(), true, 2)]);
        t.handle_event(
            &ProcessEvent::Fork {
                parent: 10,
                child: 12,
            },
            now,
        );
        assert!(changes(&mut t).is_empty(), "3 is within 2..=3");
        t.handle_event(
            &ProcessEvent::Fork {
                parent: 11,
                child: 13,
            },
            now,
        );
        assert_eq!(changes(&mut t), [("web".into(), false, 4)], "too many");
        t.handle_event(&ProcessEvent::Exit(13), now);
        assert_eq!(changes(&mut t), [("web".into(), true, 3)]);
        t.handle_event(&ProcessEvent::Exit(12), now);
        t.handle_event(&ProcessEvent::Exit(99), now);
        assert!(changes(&mut t).is_empty());
        t.handle_event(&ProcessEvent::Exit(11), now);
        assert_eq!(changes(&mut t), [("web".into(), false, 1)]);
    }

    #[test]
    fn delays_hold_the_change_and_a_return_cancels_it() {
        let mut spec = ProcessSpec::new("db", "postgres");
        spec.terminate_delay = Duration::from_secs(2);
        spec.fork_delay = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut t = ProcessTracker::new(vec![spec], &[proc(5, "postgres", &["postgres"])]);
        assert!(t.states()[0].up);
        // Dies: down only after the terminate delay.
        t.handle_event(&ProcessEvent::Exit(5), t0);
        assert!(changes(&mut t).is_empty());
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        t.handle_timeout(t0 + Duration::from_millis(1999));
        assert!(changes(&mut t).is_empty(), "early timeouts do nothing");
        t.handle_timeout(t0 + Duration::from_secs(2));
        assert_eq!(changes(&mut t), [("db".into(), false, 0)]);
        // Started again by exec: up at once (no fork delay on exec).
        t.handle_event(
            &ProcessEvent::Exec(6, Some(proc(6, "postgres", &["postgres"]))),
            t0,
        );
        assert_eq!(changes(&mut t), [("db".into(), true, 1)]);
        // Dies and comes back within the terminate delay: no change.
        t.handle_event(&ProcessEvent::Exit(6), t0);
        t.handle_event(
            &ProcessEvent::Exec(7, Some(proc(7, "postgres", &["postgres"]))),
            t0,
        );
        t.handle_timeout(t0 + Duration::from_secs(5));
        assert!(changes(&mut t).is_empty(), "{:?}", t.states());
        assert_eq!(t.poll_timeout(), None);
        // Down, then a fork brings it back: after the fork delay.
        let mut spec = ProcessSpec::new("w", "worker");
        spec.fork_delay = Duration::from_secs(1);
        spec.quorum = 2;
        let mut t = ProcessTracker::new(vec![spec], &[proc(1, "worker", &["worker"])]);
        t.handle_event(
            &ProcessEvent::Fork {
                parent: 1,
                child: 2,
            },
            t0,
        );
        assert!(changes(&mut t).is_empty());
        t.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(changes(&mut t), [("w".into(), true, 2)]);
        // Forks of untracked processes and threads' parents do not count.
        t.handle_event(
            &ProcessEvent::Fork {
                parent: 77,
                child: 78,
            },
            t0,
        );
        assert_eq!(t.counts()["w"], 2);
    }

    #[test]
    fn names_and_arguments_match_like_keepalived_s() {
        let running = [
            proc(
                1,
                "haproxy",
                &["/usr/sbin/haproxy", "-f", "/etc/haproxy.cfg"],
            ),
            proc(2, "haproxy", &["/usr/sbin/haproxy", "-f", "/etc/other.cfg"]),
            proc(3, "sh", &["/bin/sh", "-c", "sleep 1"]),
        ];
        let spec = |params: &[&str], m: ParamMatch| {
            let mut s = ProcessSpec::new("p", "/usr/sbin/haproxy");
            s.full_command = true;
            s.params = params.iter().map(|p| (*p).to_owned()).collect();
            s.param_match = m;
            ProcessTracker::new(vec![s], &running).counts()["p"]
        };
        assert_eq!(spec(&[], ParamMatch::None), 2);
        assert_eq!(spec(&["-f", "/etc/haproxy.cfg"], ParamMatch::Exact), 1);
        assert_eq!(spec(&["-f"], ParamMatch::Exact), 0);
        assert_eq!(spec(&[], ParamMatch::Exact), 0, "exact: no arguments");
        assert_eq!(spec(&["-f"], ParamMatch::Partial), 2);
        assert_eq!(spec(&["-f", "/etc/h"], ParamMatch::Partial), 0);
        assert_eq!(spec(&["-f", "/etc/h"], ParamMatch::Initial), 1);
        // By comm.
        let by_comm = ProcessTracker::new(vec![ProcessSpec::new("p", "haproxy")], &running);
        assert_eq!(by_comm.counts()["p"], 2);
        // A rename moves a process out of (and into) a comm tracker.
        let mut t = ProcessTracker::new(vec![ProcessSpec::new("p", "haproxy")], &running);
        let now = Instant::now();
        t.handle_event(
            &ProcessEvent::Comm {
                pid: 1,
                comm: "haproxy-old".into(),
            },
            now,
        );
        t.handle_event(
            &ProcessEvent::Comm {
                pid: 2,
                comm: "x".into(),
            },
            now,
        );
        assert_eq!(changes(&mut t), [("p".into(), false, 0)]);
        t.handle_event(
            &ProcessEvent::Comm {
                pid: 3,
                comm: "haproxy".into(),
            },
            now,
        );
        assert_eq!(changes(&mut t), [("p".into(), true, 1)]);
        // An exec into another program leaves the tracker at once.
        t.handle_event(
            &ProcessEvent::Exec(3, Some(proc(3, "sleep", &["sleep"]))),
            now,
        );
        assert_eq!(changes(&mut t), [("p".into(), false, 0)]);
    }

    #[test]
    fn quorum_zero_is_up_while_none_runs() {
        let mut spec = ProcessSpec::new("none", "forbidden");
        spec.quorum = 0;
        spec.quorum_max = 0;
        let now = Instant::now();
        let mut t = ProcessTracker::new(vec![spec], &[]);
        assert!(t.states()[0].up);
        t.handle_event(
            &ProcessEvent::Exec(4, Some(proc(4, "forbidden", &["forbidden"]))),
            now,
        );
        assert_eq!(changes(&mut t), [("none".into(), false, 1)]);
        t.handle_event(&ProcessEvent::Exit(4), now);
        assert_eq!(changes(&mut t), [("none".into(), true, 0)]);
    }

    #[test]
    fn a_rescan_after_lost_events_settles_the_counts() {
        let mut spec = ProcessSpec::new("web", "nginx");
        spec.terminate_delay = Duration::from_secs(1);
        let now = Instant::now();
        let mut t = ProcessTracker::new(vec![spec], &[proc(1, "nginx", &["nginx"])]);
        t.handle_rescan(&[], now);
        assert!(changes(&mut t).is_empty(), "terminate delay");
        // Polled again: the delay keeps its deadline.
        t.handle_rescan(&[], now + Duration::from_millis(500));
        assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(1)));
        t.handle_timeout(now + Duration::from_secs(1));
        assert_eq!(changes(&mut t), [("web".into(), false, 0)]);
        t.handle_rescan(&[proc(9, "nginx", &["nginx"])], now);
        assert_eq!(changes(&mut t), [("web".into(), true, 1)]);
    }
}
