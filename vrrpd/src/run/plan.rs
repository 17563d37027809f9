//! What the runtime runs: the configuration, resolved into the pieces each
//! part of the daemon consumes. Built from the resolved configuration by
//! `crate::plan`; the runtime never looks at TOML.

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

/// A `track_file`: the number in it (0 when missing, empty or not a
/// number, as keepalived reads it) moves the instances that track it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFile {
    /// The file.
    pub path: PathBuf,
    /// Written at start-up: (number, even when the file exists).
    pub init: Option<(i32, bool)>,
    /// The instances' uses of it, each with its own tracked objects.
    pub uses: Vec<crate::plan::FileUse>,
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
}

/// Everything the daemon runs.
#[derive(Debug, Clone, Default)]
pub struct Plan {
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
    /// Virtual servers (IPVS).
    pub virtual_servers: Vec<VirtualServerPlan>,
    /// Where to serve /metrics and /status (off when `None`).
    pub http: Option<SocketAddr>,
    /// Longest a notify script may run.
    pub notify_timeout: Duration,
}
