//! What the runtime runs: the configuration, resolved into the pieces each
//! part of the daemon consumes. Built from the resolved configuration by
//! `crate::plan`; the runtime never looks at the configuration.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vrrp_core::TrackId;
use vrrp_net::driver::DriverConfig;

/// A program to run: argv, or a shell line when `shell` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Program and arguments (with `shell`, one element: the line).
    pub argv: Vec<String>,
    /// Run through `/bin/sh -c` (only when the configuration asks).
    pub shell: bool,
    /// Run as this user id.
    pub uid: Option<u32>,
    /// Run as this group id.
    pub gid: Option<u32>,
}

#[cfg(test)]
impl Command {
    /// A command run directly, as the daemon's user.
    pub fn new(argv: Vec<String>) -> Self {
        Command {
            argv,
            shell: false,
            uid: None,
            gid: None,
        }
    }
}

/// A `vrrp_script`: its result moves the tracked object `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackScript {
    /// The tracked object it drives.
    pub id: TrackId,
    /// Its name in the configuration.
    pub name: String,
    /// What to run.
    pub command: Command,
    /// Pause between runs.
    pub interval: Duration,
    /// Longest a run may take; then its process group is killed.
    pub timeout: Duration,
    /// Successes in a row to come up.
    pub rise: u32,
    /// Failures in a row to go down.
    pub fall: u32,
    /// Starts failed (keepalived's `init_fail`); otherwise the first run
    /// decides, whatever `rise` and `fall` say, as in keepalived.
    pub init_fail: bool,
}

/// A `vrrp_track_process`: its quorum moves the tracked object `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackProcessPlan {
    /// The tracked object it drives.
    pub id: TrackId,
    /// What to count.
    pub spec: healthcheck::process::ProcessSpec,
}

/// A `track_file`: the number in it (0 when missing, empty or not a
/// number, as keepalived reads it) moves the instances that track it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFile {
    /// The file.
    pub path: PathBuf,
    /// Written at start-up: (number, even when the file exists).
    pub init: Option<(i32, bool)>,
    /// The instances' uses of it, each with its own tracked objects.
    pub uses: Vec<FileUse>,
}

/// Notify scripts of one instance or sync group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    /// Run on entering master.
    pub master: Option<Command>,
    /// Run on entering backup.
    pub backup: Option<Command>,
    /// Run on entering fault.
    pub fault: Option<Command>,
    /// Run when stopping.
    pub stop: Option<Command>,
    /// Run on every change with `INSTANCE|GROUP name STATE priority`
    /// appended, like keepalived's `notify`.
    pub generic: Option<Command>,
}

/// One sync group's members and scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    /// Group name.
    pub name: String,
    /// Instance names.
    pub members: Vec<String>,
    /// Scripts.
    pub notify: Notify,
}

/// One health check of a real server.
#[derive(Debug, Clone)]
pub struct RealServerCheck {
    /// What to probe and when.
    pub spec: healthcheck::CheckSpec,
}

/// One real server of a virtual server, with its checks and scripts.
#[derive(Debug, Clone)]
pub struct RealServerPlan {
    /// Address and port.
    pub addr: SocketAddr,
    /// keepalived's name of it in FIFO lines and mails (`[ip]:tcp:80`).
    pub label: String,
    /// Mail when one of its checks changes state.
    pub smtp_alert: bool,
    /// Checks; the server is up while all are up (none: always up).
    pub checks: Vec<RealServerCheck>,
    /// Run when it comes up.
    pub notify_up: Option<Command>,
    /// Run when it goes down.
    pub notify_down: Option<Command>,
}

/// One virtual server.
#[derive(Debug, Clone)]
pub struct VirtualServerPlan {
    /// What the kernel table should hold.
    pub server: lvs::VirtualServer,
    /// The real servers' checks and scripts.
    pub real_servers: Vec<RealServerPlan>,
    /// Run when quorum is gained.
    pub quorum_up: Option<Command>,
    /// Run when quorum is lost.
    pub quorum_down: Option<Command>,
    /// keepalived's name of it (`[192.0.2.1]:tcp:80`, `FWM 5`,
    /// `[GROUP]:0`).
    pub label: String,
    /// Whether its events are notified (FIFO lines, mails): a group's
    /// services share one set of notifications, on the first.
    pub notifies: bool,
    /// Mail when quorum is gained or lost.
    pub smtp_alert: bool,
}

/// keepalived's notify FIFOs and alert mails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertPlan {
    /// Each FIFO once, with what it receives.
    pub fifos: Vec<FifoPlan>,
    /// Alert mail.
    pub smtp: Option<SmtpPlan>,
    /// Instances with `smtp_alert`.
    pub instances: BTreeSet<String>,
    /// Sync groups with `smtp_alert`.
    pub groups: BTreeSet<String>,
}

/// One notify FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoPlan {
    /// The FIFO.
    pub path: PathBuf,
    /// Owner (uid, gid) of a FIFO vrrpd creates.
    pub owner: Option<(u32, Option<u32>)>,
    /// Its reader, started with the path appended.
    pub script: Option<Command>,
    /// VRRP lines go to it.
    pub vrrp: bool,
    /// IPVS lines go to it.
    pub lvs: bool,
}

/// Alert mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpPlan {
    /// Relay: host and port.
    pub server: (String, u16),
    /// HELO name.
    pub helo: String,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Time limit of each step.
    pub timeout: Duration,
    /// No mail on Fault.
    pub no_email_faults: bool,
    /// Checker mails only when the real server changes state.
    pub no_checker_emails: bool,
}

/// Everything the daemon runs.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The node's name, if configured (else the host name).
    pub router_id: Option<String>,
    /// The VRRP instances and sync groups.
    pub driver: DriverConfig,
    /// Instance name to notify scripts.
    pub notify: Vec<(String, Notify)>,
    /// Sync groups with their scripts.
    pub groups: Vec<GroupPlan>,
    /// Tracked scripts.
    pub scripts: Vec<TrackScript>,
    /// Tracked files.
    pub files: Vec<TrackFile>,
    /// Tracked processes.
    pub processes: Vec<TrackProcessPlan>,
    /// Virtual servers (IPVS).
    pub virtual_servers: Vec<VirtualServerPlan>,
    /// Where to serve /metrics and /status (off when `None`).
    pub http: Option<SocketAddr>,
    /// Longest a notify script may run.
    pub notify_timeout: Duration,
    /// Notify FIFOs and alert mails.
    pub alerts: AlertPlan,
}

/// One instance's use of a tracked file: keepalived adds the file's number
/// times the weight (negated with `reverse`) to the priority, within
/// -254..=253, and -254 (or, with weight 0, any number but 0; with
/// `reverse`, 0) means Fault. vrrp-core's tracked objects are up or down,
/// so the contribution is spelled in binary over up/down objects of
/// weights ±1, ±2 ... ±128, plus one of weight 0 for Fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUse {
    /// The weight.
    pub weight: i32,
    /// `reverse`.
    pub reverse: bool,
    /// Down for Fault.
    pub fault: TrackId,
    /// Up adds 2^k.
    pub up: [TrackId; 8],
    /// Down adds -2^k.
    pub down: [TrackId; 8],
}

impl FileUse {
    /// keepalived's contribution of the number `value`: `None` for Fault.
    pub fn contribution(&self, value: i64) -> Option<i32> {
        if self.weight == 0 {
            return ((value != 0) == self.reverse).then_some(0);
        }
        let sign = if self.reverse { -1 } else { 1 };
        let product = value
            .saturating_mul(i64::from(self.weight))
            .saturating_mul(sign)
            .clamp(-254, 253);
        (product != -254).then(|| i32::try_from(product).unwrap_or(0))
    }

    /// The state of each tracked object for the number `value`.
    pub fn states(&self, value: i64) -> Vec<(TrackId, bool)> {
        let c = self.contribution(value);
        let mut out = Vec::with_capacity(17);
        out.push((self.fault, c.is_some()));
        let c = c.unwrap_or(0);
        let (plus, minus) = if c >= 0 { (c, 0) } else { (0, -c) };
        for k in 0..8 {
            out.push((self.up[k], plus & (1 << k) != 0));
            out.push((self.down[k], minus & (1 << k) == 0));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_use(weight: i32, reverse: bool) -> FileUse {
        FileUse {
            weight,
            reverse,
            fault: TrackId(0),
            up: std::array::from_fn(|k| TrackId(1 + k as u32)),
            down: std::array::from_fn(|k| TrackId(10 + k as u32)),
        }
    }

    /// The priority change the engine computes from the states.
    fn engine_delta(u: &FileUse, value: i64) -> Option<i32> {
        let states = u.states(value);
        if !states[0].1 {
            return None;
        }
        let mut delta = 0;
        for (id, up) in &states[1..] {
            let k = if id.0 >= 10 { id.0 - 10 } else { id.0 - 1 };
            match (id.0 >= 10, up) {
                (false, true) => delta += 1 << k,
                (true, false) => delta -= 1 << k,
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
        let w10r = file_use(-10, true);
        assert_eq!(w10r.contribution(2), Some(20));
        let w0 = file_use(0, false);
        assert_eq!(w0.contribution(0), Some(0));
        assert_eq!(w0.contribution(7), None);
        let w0r = file_use(0, true);
        assert_eq!(w0r.contribution(0), None);
        assert_eq!(w0r.contribution(7), Some(0));
        for u in [&w1, &w10r, &w0, &w0r, &file_use(-3, false)] {
            for v in [-300, -85, -1, 0, 1, 2, 7, 100, 253, 254, 10_000] {
                assert_eq!(engine_delta(u, v), u.contribution(v), "{u:?} {v}");
            }
        }
    }
}
