//! What the runtime runs: the configuration, resolved into the pieces each
//! part of the daemon consumes — mostly `vrrp-keepalived`'s own types.
//! Built from the resolved configuration by `crate::plan`; the runtime
//! never looks at the configuration.

use std::net::SocketAddr;
use std::time::Duration;

use vrrp_net::driver::DriverConfig;

pub use vrrp_keepalived::{
    Command, FileSpec as TrackFile, FileUse, NotifyScripts as Notify, RealServerSpec,
    ScriptSpec as TrackScript, VirtualServerSpec,
};

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
    /// Virtual servers (IPVS).
    pub virtual_servers: Vec<VirtualServerSpec>,
    /// Where to serve /metrics and /status (off when `None`).
    pub http: Option<SocketAddr>,
    /// Longest a notify script may run.
    pub notify_timeout: Duration,
}
