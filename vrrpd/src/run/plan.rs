//! What the runtime runs: the configuration, resolved into the pieces each
//! part of the daemon consumes — mostly `vrrp-keepalived`'s own types.
//! Built from the resolved configuration by `crate::plan`; the runtime
//! never looks at the configuration.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vrrp_core::TrackId;
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
    /// Tracked processes.
    pub processes: Vec<TrackProcessPlan>,
    /// Notify FIFOs and alert mails.
    pub alerts: AlertPlan,
    /// What the FIFO lines and mails say about each virtual server (one
    /// per entry of `virtual_servers`, in the same order).
    pub vs_notify: Vec<VsNotify>,
    /// The host routes of virtual servers with `export_routes`, each
    /// wanted while its service's quorum is up.
    pub vs_routes: Vec<(lvs::ServiceKey, vrrp_net::route::Route)>,
}

/// A `vrrp_track_process`: its quorum moves the tracked object `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackProcessPlan {
    /// The tracked object it drives.
    pub id: TrackId,
    /// What to count.
    pub spec: healthcheck::process::ProcessSpec,
}

/// keepalived's names and mail settings of one IPVS service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsNotify {
    /// keepalived's name of it (`[192.0.2.1]:tcp:80`, `FWM 5`,
    /// `[GROUP]:0`).
    pub label: String,
    /// Whether its events are notified (FIFO lines, mails): a group's
    /// services share one set of notifications, on the first.
    pub notifies: bool,
    /// Mail when quorum is gained or lost.
    pub smtp_alert: bool,
    /// Its real servers.
    pub real_servers: Vec<RsNotify>,
}

/// keepalived's name and mail settings of one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsNotify {
    /// Address and port as configured.
    pub addr: SocketAddr,
    /// keepalived's name of it (`[ip]:tcp:80`).
    pub label: String,
    /// Mail when one of its checks changes state.
    pub smtp_alert: bool,
    /// Each check's name and keepalived's mail bodies (up, down).
    pub checks: Vec<(String, [&'static str; 2])>,
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

/// keepalived's checker mail bodies, by probe kind: (up, down).
pub fn checker_bodies(probe: &healthcheck::Probe) -> [&'static str; 2] {
    use healthcheck::Probe;
    let (ok, failed) = match probe {
        Probe::Tcp(_) => (
            "=> TCP CHECK succeed on service <=",
            "=> TCP CHECK failed on service <=",
        ),
        Probe::Http(_) => (
            "=> CHECK succeed on service <=",
            "=> CHECK failed on service : HTTP request failed <=",
        ),
        Probe::Script(_) => (
            "=> MISC CHECK succeeded on service <=",
            "=> MISC CHECK failed on service <=",
        ),
        Probe::Smtp(_) => (
            "=> SMTP CHECK succeed on service <=",
            "=> SMTP CHECK failed on service <=",
        ),
        Probe::Dns(_) => (
            "=> DNS_CHECK succeed on service <=",
            "=> DNS_CHECK failed on service <=",
        ),
        Probe::Icmp(_) => (
            "=> PING CHECK succeed on service <=",
            "=> PING CHECK failed on service <=",
        ),
        Probe::Udp(_) => (
            "=> UDP CHECK succeed on service <=",
            "=> UDP CHECK failed on service <=",
        ),
        _ => (
            "=> CHECK succeed on service <=",
            "=> CHECK failed on service <=",
        ),
    };
    [ok, failed]
}
