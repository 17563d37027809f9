//! The TOML schema as written: one struct per table, keepalived's key
//! names, every setting optional (`None` = not written). Defaults, types
//! and cross-references are [`super::resolve()`]'s job; the importer builds
//! these structs too, so a renamed key is a compile error there.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vrrp_core::{Priority, Vrid};

use super::command::CommandSpec;
use super::duration::Dur;
use super::schema::{Documented, DocumentedTable, Shape};

/// A whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Documented)]
pub struct Config {
    /// `static_routes = [...]` (at the top of the file): keepalived's
    /// `static_routes`, routes installed while the daemon runs, whatever
    /// the instances' states, in the words of `virtual_routes`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<String>,
    /// `static_rules = [...]` (at the top of the file): keepalived's
    /// `static_rules`, policy rules installed while the daemon runs, in the
    /// words of `virtual_rules`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_rules: Vec<String>,
    /// `static_ipaddress = [...]` (at the top of the file): keepalived's
    /// `static_ipaddress`, addresses added while the daemon runs, outside
    /// any instance, in the forms of `virtual_ipaddress` (`dev` required).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_ipaddress: Vec<VirtualIp>,
    /// `[global]`: keepalived's `global_defs`.
    #[serde(skip_serializing_if = "Global::is_empty")]
    pub global: Global,
    /// `[script.NAME]`: keepalived's `vrrp_script NAME`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub script: BTreeMap<String, Script>,
    /// `[track_file.NAME]`: keepalived's `track_file NAME`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub track_file: BTreeMap<String, TrackFile>,
    /// `[track_process.NAME]`: keepalived's `vrrp_track_process NAME`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub track_process: BTreeMap<String, TrackProcess>,
    /// `[instance.NAME]`: keepalived's `vrrp_instance NAME`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub instance: BTreeMap<String, Instance>,
    /// `[sync_group.NAME]`: keepalived's `vrrp_sync_group NAME`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sync_group: BTreeMap<String, SyncGroup>,
    /// `[virtual_server_group]`: keepalived's `virtual_server_group NAME`
    /// blocks, each a list of its lines (`"192.0.2.1-10 80"`, `"fwmark
    /// 5"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub virtual_server_group: BTreeMap<String, Vec<String>>,
    /// `[[virtual_server]]`: keepalived's `virtual_server`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub virtual_server: Vec<VirtualServer>,
}

/// How logs are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Documented)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[global.http]`: the observability listener (/metrics, /status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Address to listen on; loopback port 9090 when absent.
    #[key(default = "127.0.0.1:9090", vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

/// `[global]`, keepalived's `global_defs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct Global {
    /// A name for this node (logs, status); the host name when absent.
    #[key(default_is = "the host name", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// VRRP version of IPv4 instances that do not set `version` (2).
    #[key(default = 2, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_version: Option<u8>,
    /// keepalived's strict RFC mode for every instance (off).
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_strict: Option<bool>,
    /// keepalived's script security (on, unlike keepalived: a root daemon
    /// running a file anybody may edit is a privilege escalation): scripts
    /// that run as root (or are set-uid/gid root) must be root's, in
    /// directories only root may change, and no script runs as root
    /// unless `script_user` says so (without one, scripts run as
    /// keepalived's `keepalived_script` user when it exists).
    #[key(default = true, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_script_security: Option<bool>,
    /// Run insecure scripts anyway (an explicit, visible opt-out).
    #[key(default = false, vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure_scripts: Option<bool>,
    /// Default user (`user` or `user:group`) scripts run as; `root` to run
    /// them as root. Without it: `keepalived_script` when that user
    /// exists, else root, which script security refuses.
    #[key(
        default_is = "keepalived_script when that user exists, else root (refused by script security)",
        keepalived = "script_user USER [GROUP]"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_user: Option<String>,
    /// Default of the instances' `checksum_as_v2` (keepalived 2.2.8's
    /// `v3_checksum_as_v2`).
    #[key(default = false, keepalived = "v3_checksum_as_v2 (keepalived 2.2.8)")]
    #[serde(
        default,
        alias = "v3_checksum_as_v2",
        skip_serializing_if = "Option::is_none"
    )]
    pub vrrp_v3_checksum_as_v2: Option<bool>,
    /// Default of the instances' `lower_prio_no_advert`.
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_lower_prio_no_advert: Option<bool>,
    /// Default of the instances' `garp_master_delay` (5 s).
    #[key(default = "5s", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_master_delay: Option<Dur>,
    /// Default of the instances' `garp_master_repeat` (5).
    #[key(default = 5, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_master_repeat: Option<u32>,
    /// Default of the instances' `garp_master_refresh` (0: off).
    #[key(default = "0s", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_master_refresh: Option<Dur>,
    /// Default of the instances' `garp_master_refresh_repeat` (1).
    #[key(default = 1, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_master_refresh_repeat: Option<u32>,
    /// Default of the instances' `garp_interval` (0).
    #[key(default = "0s", keepalived = "vrrp_garp_interval, vrrp_gna_interval")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_interval: Option<Dur>,
    /// Default of the instances' `garp_lower_prio_delay`.
    #[key(default_is = "`vrrp_garp_master_delay`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_lower_prio_delay: Option<Dur>,
    /// Default of the instances' `garp_lower_prio_repeat`.
    #[key(default_is = "`vrrp_garp_master_repeat`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_lower_prio_repeat: Option<u32>,
    /// Default of the instances' `down_timer_adverts` (3).
    #[key(default = 3, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_down_timer_adverts: Option<u8>,
    /// Default of the instances' `garp_extra_if`: while master, one
    /// gratuitous ARP / unsolicited NA every this long on each other
    /// interface holding one of the instance's addresses (virtual MAC
    /// interfaces only, unless `vrrp_garp_extra_if_all`), so that
    /// switches keep those interfaces' MAC addresses (keepalived: whole
    /// seconds, 1 s to a day).
    #[key(
        default_is = "off",
        keepalived = "vrrp_garp_extra_if DELAY, vrrp_vmac_garp_intvl"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_extra_if: Option<Dur>,
    /// `vrrp_garp_extra_if` on every other interface, not only virtual
    /// MAC ones.
    #[key(default_is = "off", keepalived = "vrrp_garp_extra_if all")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_extra_if_all: Option<bool>,
    /// The nftables table (family `inet`) in which instances without
    /// accept mode (`accept = false`, the default in strict mode) have
    /// their virtual addresses blocked (RFC 5798 6.4.3).
    /// keepalived's tables are `ip keepalived` and `ip6 keepalived`, of
    /// other families, so the two daemons never share one.
    #[key(default = "vrrpd", keepalived = "nftables")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables: Option<String>,
    /// Priority of that table's input and output chains (-1: before the
    /// usual filter chains).
    #[key(default = -1, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_priority: Option<i32>,
    /// A counter on each of that table's drop rules.
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_counters: Option<bool>,
    /// Match IPv6 link-local virtual addresses with their interface's
    /// index rather than its name.
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_ifindex: Option<bool>,
    /// Longest a notify script may run before its process group is
    /// killed (30 s).
    #[key(default = "30s", vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_timeout: Option<Dur>,
    /// Log format (text).
    #[key(default = "text", vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Observability listener; off when absent.
    #[key(default_is = "no listener", vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    /// A FIFO every VRRP and IPVS event is written to, one line each, in
    /// keepalived's format: `"/run/vrrpd.fifo"` or `{ path = "...", user =
    /// "user:group" }` (who owns it when vrrpd creates it).
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fifo: Option<Fifo>,
    /// Started with `notify_fifo`, the FIFO's path appended, to read it;
    /// stopped when vrrpd stops.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fifo_script: Option<CommandSpec>,
    /// A FIFO for the VRRP events only.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_notify_fifo: Option<Fifo>,
    /// Its reader.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_notify_fifo_script: Option<CommandSpec>,
    /// A FIFO for the IPVS (virtual and real server) events only.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lvs_notify_fifo: Option<Fifo>,
    /// Its reader.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lvs_notify_fifo_script: Option<CommandSpec>,
    /// Where alert mails go (with `smtp_server`).
    #[key(default_is = "none", keepalived = "notification_email { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notification_email: Vec<String>,
    /// Their sender (default: the daemon's user at the host's name).
    #[key(default_is = "the daemon's user at the host's name", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_email_from: Option<String>,
    /// The mail relay: `"192.0.2.25"`, `"192.0.2.25 2525"`,
    /// `"mail.example.com:25"` (port 25 by default).
    #[key(
        default_is = "none: no mail",
        keepalived = "smtp_server ADDRESS [PORT]"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_server: Option<String>,
    /// The name sent in HELO (default: the host's name).
    #[key(default_is = "the host name", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_helo_name: Option<String>,
    /// Time limit of the connection and of each reply (30 s).
    #[key(default_is = "30 s", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_connect_timeout: Option<Dur>,
    /// Default of every `smtp_alert` (instances, sync groups and virtual
    /// servers off, real servers on, as keepalived).
    #[key(
        default_is = "off for instances, sync groups and virtual servers, on for real servers",
        keepalived
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert: Option<bool>,
    /// Default of the instances' and sync groups' `smtp_alert`.
    #[key(default_is = "`global.smtp_alert`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert_vrrp: Option<bool>,
    /// Default of the virtual and real servers' `smtp_alert`.
    #[key(default_is = "`global.smtp_alert`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert_checker: Option<bool>,
    /// No mail when an instance or sync group enters Fault.
    #[key(default_is = "false", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_email_faults: Option<bool>,
    /// Checker mails only when the real server changes state.
    #[key(default_is = "false", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_checker_emails: Option<bool>,
}

/// A notify FIFO: its path, and who owns it when vrrpd creates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fifo {
    /// The FIFO.
    pub path: String,
    /// Owner (`user` or `user:group`) of a FIFO vrrpd creates.
    pub user: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FifoTable {
    path: String,
    #[serde(default)]
    user: Option<String>,
}

impl TryFrom<FifoTable> for Fifo {
    type Error = String;
    fn try_from(t: FifoTable) -> Result<Self, String> {
        Ok(Fifo {
            path: t.path,
            user: t.user,
        })
    }
}

impl FromStr for Fifo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("empty FIFO path".to_owned());
        }
        Ok(Fifo {
            path: s.to_owned(),
            user: None,
        })
    }
}

impl<'de> Deserialize<'de> for Fifo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table::<D, Fifo, FifoTable>(d, "a path or { path = ..., user = ... }")
    }
}

impl Serialize for Fifo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match &self.user {
            None => s.serialize_str(&self.path),
            Some(user) => {
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("path", &self.path)?;
                map.serialize_entry("user", user)?;
                map.end()
            }
        }
    }
}

impl Global {
    /// Nothing written.
    pub fn is_empty(&self) -> bool {
        *self == Global::default()
    }
}

/// `[script.NAME]`, keepalived's `vrrp_script`: a command whose exit
/// status moves the priority of the instances that track it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// What to run (keepalived's `script`).
    #[key(required, keepalived = "script")]
    #[serde(default, alias = "script", skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,
    /// Pause between runs (1 s).
    #[key(default = "1s", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
    /// Longest a run may take (the interval).
    #[key(default_is = "the interval", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Priority change, -253..=253: 0 (default) means failure puts the
    /// instance in Fault; negative is added while failing, positive while
    /// succeeding.
    #[key(default = 0, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// keepalived's `weight N reverse`: failing while the script succeeds.
    #[key(default = false, keepalived = "weight N reverse")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
    /// Successes in a row to come up (1).
    #[key(default = 1, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    /// Failures in a row to go down (1).
    #[key(default = 1, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    /// Run as this user (`user` or `user:group`).
    #[key(default_is = "`global.script_user`", keepalived = "user USER [GROUP]")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Run through `/bin/sh -c`.
    #[key(default_is = "false: the command runs without a shell", vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<bool>,
    /// Start failed until `rise` runs succeed; otherwise the first run
    /// decides, as in keepalived.
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_fail: Option<bool>,
}

/// `[track_file.NAME]`, keepalived's `track_file`: a file holding a
/// number that moves the priority of the instances that track it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct TrackFile {
    /// The file. Missing, empty or not a number counts as 0.
    #[key(required, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Multiplies the file's number (1); 0 means any number but 0 puts
    /// the instance in Fault. -254..=254.
    #[key(default = 1, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Negates the product (with weight 0: 0 means Fault).
    #[key(default = false, keepalived = "weight N reverse")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
    /// Create the file with this number at start-up when it is missing.
    #[key(
        default_is = "the file is not created",
        keepalived = "init_file [VALUE]"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_file: Option<i32>,
    /// With `init_file`, write the number even when the file exists.
    #[key(default_is = "false", keepalived = "init_file VALUE overwrite")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_overwrite: Option<bool>,
}

/// How a tracked process's arguments match (keepalived's `param_match`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Documented)]
#[serde(rename_all = "lowercase")]
pub enum ParamMatch {
    /// Exactly the `params` (none when there are none).
    Exact,
    /// The `params` first, then anything.
    Partial,
    /// As `partial`, the last of `params` may be the start of a word.
    Initial,
}

/// `[track_process.NAME]`, keepalived's `vrrp_track_process`: how many
/// processes of a kind run moves the priority of the instances that track
/// it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct TrackProcess {
    /// The process: its name as the kernel keeps it (at most 15
    /// characters), or with `full_command` the first word of its command
    /// line (required).
    #[key(required, keepalived = "process NAME [PARAMS...]")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// Its arguments, matched as `param_match` says (giving them implies
    /// `full_command` and, by default, `param_match = "exact"`).
    #[key(default_is = "none", keepalived = "process NAME PARAMS...")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    /// "exact", "partial" or "initial" (implies `full_command`).
    #[key(default_is = "exact when params are given", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_match: Option<ParamMatch>,
    /// Match the command line, not the kernel's process name.
    #[key(default_is = "false", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_command: Option<bool>,
    /// Priority change, -254..=254: 0 (default) means no quorum puts the
    /// instance in Fault; negative is added without quorum, positive with.
    #[key(default_is = "0", keepalived = "weight N [reverse]")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// keepalived's `weight N reverse`.
    #[key(default_is = "false", keepalived = "weight N reverse")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
    /// Fewest processes for quorum (1).
    #[key(default_is = "1", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Most processes for quorum (no limit; 0: up while none runs).
    #[key(default_is = "no limit", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_max: Option<u32>,
    /// `fork_delay` and `terminate_delay` at once.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Dur>,
    /// Wait this long after forks bring quorum before saying so.
    #[key(default_is = "`delay`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_delay: Option<Dur>,
    /// Wait this long after exits lose quorum before saying so.
    #[key(default_is = "`delay`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate_delay: Option<Dur>,
}

/// The state an instance is configured to start in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Documented)]
pub enum StartState {
    /// Wait for Master_Down_Interval (the default).
    #[default]
    #[serde(rename = "BACKUP", alias = "backup")]
    Backup,
    /// keepalived's `state MASTER`: priority 255 unless one is written;
    /// below 255 the instance still starts as backup, as keepalived 2.2.7's
    /// does.
    #[serde(rename = "MASTER", alias = "master")]
    Master,
}

/// `[instance.NAME]`, keepalived's `vrrp_instance`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// Interface the instance runs on (required).
    #[key(required, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Virtual router id, 1..=255 (required).
    #[key(required, keepalived)]
    #[serde(default, with = "vrid_serde", skip_serializing_if = "Option::is_none")]
    pub virtual_router_id: Option<Vrid>,
    /// Priority, 1..=255 (255: address owner). 100, or 255 with
    /// `state = "MASTER"`.
    #[key(default = 100, keepalived)]
    #[serde(
        default,
        with = "priority_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub priority: Option<Priority>,
    /// Advertisement interval (1 s). v2: whole seconds 1..=255; v3:
    /// 10 ms..=40.95 s in steps of 10 ms.
    #[key(default = "1s", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advert_int: Option<Dur>,
    /// VRRP version, 2 or 3 (IPv6 instances: 3; else
    /// `global.vrrp_version`).
    #[key(
        default_is = "3 for an IPv6 instance, else `global.vrrp_version`",
        keepalived
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u8>,
    /// Start-up state: "BACKUP" (default) or "MASTER".
    #[key(default = "BACKUP", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StartState>,
    /// Do not take over from a lower-priority master.
    #[key(default = false, keepalived = "nopreempt (and preempt)")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nopreempt: Option<bool>,
    /// Wait this long before preempting a lower-priority master.
    #[key(default = "0s", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<Dur>,
    /// keepalived's `strict_mode` (default: `global.vrrp_strict`).
    #[key(default_is = "`global.vrrp_strict`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_mode: Option<bool>,
    /// While master, one gratuitous ARP / unsolicited NA every this long
    /// on each interface other than the instance's holding one of its
    /// addresses (the first of them), virtual MAC interfaces only unless
    /// `garp_extra_if_all`; the instance's own virtual MAC with
    /// `vmac_xmit_base`. Off (`"0s"`) when no interface qualifies.
    #[key(
        default_is = "`global.vrrp_garp_extra_if`",
        keepalived = "garp_extra_if DELAY, vmac_garp_intvl"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_extra_if: Option<Dur>,
    /// `garp_extra_if` on every other interface, not only virtual MAC
    /// ones.
    #[key(
        default_is = "off with `garp_extra_if`, else `global.vrrp_garp_extra_if_all`",
        keepalived = "garp_extra_if all"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_extra_if_all: Option<bool>,
    /// RFC 5798 6.1 Accept_Mode: whether a master that is not the address
    /// owner accepts packets addressed to its virtual addresses. When
    /// off, they are dropped (and none are sent from them) by nftables
    /// rules in `global.nftables`. Not allowed with
    /// VRRPv2 in strict mode (RFC 3768 has no accept mode).
    #[key(
        default_is = "on; off in strict mode (always on for the owner, priority 255)",
        keepalived = "accept / no_accept"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<bool>,
    /// The virtual addresses: `"192.0.2.100/24 dev eth0 label eth0:vip"`
    /// or `{ address = "...", dev = "...", label = "..." }`.
    #[key(default_is = "none", keepalived = "virtual_ipaddress { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_ipaddress: Vec<VirtualIp>,
    /// Source address of advertisements (keepalived's `unicast_src_ip`
    /// or `mcast_src_ip`); the interface's address when absent.
    #[key(
        default_is = "the interface's address",
        keepalived = "unicast_src_ip, mcast_src_ip"
    )]
    #[serde(
        default,
        alias = "mcast_src_ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub unicast_src_ip: Option<IpAddr>,
    /// Unicast peers; multicast when empty.
    #[key(default_is = "none: multicast", keepalived = "unicast_peer { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peer: Vec<IpAddr>,
    /// VRRPv2 simple-password authentication.
    #[key(default_is = "none", keepalived = "authentication { ... }")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    /// Delay of the second gratuitous ARP burst after becoming master.
    #[key(default_is = "`global.vrrp_garp_master_delay`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_delay: Option<Dur>,
    /// Gratuitous ARPs per burst.
    #[key(default_is = "`global.vrrp_garp_master_repeat`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_repeat: Option<u32>,
    /// Period of gratuitous ARP refreshes while master (0: off).
    #[key(default_is = "`global.vrrp_garp_master_refresh`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_refresh: Option<Dur>,
    /// Gratuitous ARPs per refresh.
    #[key(default_is = "`global.vrrp_garp_master_refresh_repeat`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_refresh_repeat: Option<u32>,
    /// Spacing of the packets of one burst.
    #[key(default_is = "`global.vrrp_garp_interval`", vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_interval: Option<Dur>,
    /// Gratuitous ARPs / NAs a master sends when it hears a
    /// lower-priority advertisement (0: none; must be 0 in strict mode).
    #[key(
        default_is = "`global.vrrp_garp_lower_prio_repeat`, 0 in strict mode",
        keepalived
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_lower_prio_repeat: Option<u32>,
    /// Delay of a second such burst (0: none; must be 0 in strict mode).
    #[key(
        default_is = "`global.vrrp_garp_lower_prio_delay`, 0 in strict mode",
        keepalived
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_lower_prio_delay: Option<Dur>,
    /// Advertisement intervals a backup waits for the master before
    /// taking over (plus Skew_Time), 1..=100.
    #[key(default_is = "`global.vrrp_down_timer_adverts`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_timer_adverts: Option<u8>,
    /// Other interfaces to track: `"eth1"` or `{ name = "eth1", weight = -10 }`.
    #[key(default_is = "none", keepalived = "track_interface { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_interface: Vec<TrackRef>,
    /// Scripts to track: `"chk_nginx"` or `{ name = "chk_nginx", weight = 2 }`
    /// (the weight overrides the script's).
    #[key(default_is = "none", keepalived = "track_script { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_script: Vec<TrackRef>,
    /// Files to track: `"maint"` (a `[track_file.maint]`), `{ name =
    /// "maint", weight = -10 }`, or a file of its own `{ path =
    /// "/run/vrrp/down", weight = 0 }`.
    #[key(default_is = "none", keepalived = "track_file { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_file: Vec<TrackFileRef>,
    /// Processes to track: `"web"` (a `[track_process.web]`) or `{ name =
    /// "web", weight = -20, reverse = true }`.
    #[key(default_is = "none", keepalived = "track_process { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_process: Vec<TrackRef>,
    /// Run on entering master.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<CommandSpec>,
    /// Run on entering backup.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<CommandSpec>,
    /// Run on entering fault.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<CommandSpec>,
    /// Run when the instance stops.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<CommandSpec>,
    /// Run on every change with `INSTANCE name STATE priority` appended.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<CommandSpec>,
    /// Do not answer a lower-priority advertisement at once (default:
    /// `global.vrrp_lower_prio_no_advert`; always on in strict mode).
    #[key(default_is = "`global.vrrp_lower_prio_no_advert`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_prio_no_advert: Option<bool>,
    /// VRRPv3/IPv4 checksum without the pseudo-header (default:
    /// `global.vrrp_v3_checksum_as_v2`).
    #[key(
        default_is = "`global.vrrp_v3_checksum_as_v2`",
        keepalived = "v3_checksum_as_v2"
    )]
    #[serde(
        default,
        alias = "v3_checksum_as_v2",
        skip_serializing_if = "Option::is_none"
    )]
    pub checksum_as_v2: Option<bool>,
    /// Mail on state changes (default: `global.smtp_alert_vrrp`, else
    /// `global.smtp_alert`, else off).
    #[key(default_is = "`global.smtp_alert_vrrp`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert: Option<bool>,
    /// A virtual MAC interface for the instance: `true` (a macvlan named
    /// `vrrp.VRID`) or the macvlan's name. It gets the VRRP MAC address
    /// (00:00:5e:00:01:VRID, 00:00:5e:00:02:VRID for IPv6), the virtual
    /// addresses without a `dev`, and sends the advertisements.
    #[key(
        default = false,
        keepalived = "use_vmac [NAME]",
        value = "true, or the macvlan's name"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_vmac: Option<UseVmac>,
    /// With `use_vmac`: advertise (and listen) on `interface` rather than
    /// on the macvlan.
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmac_xmit_base: Option<bool>,
    /// The instance's own interface going down is not a fault (its
    /// absence still is).
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dont_track_primary: Option<bool>,
    /// Turn on `net.ipv4.conf.INTERFACE.promote_secondaries` (when off;
    /// off again at exit), so that removing a virtual address that is the
    /// primary of its subnet keeps the subnet's other addresses. Ignored
    /// with `use_vmac`, as keepalived ignores it.
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_secondaries: Option<bool>,
    /// Routes installed while the instance is Master and removed
    /// otherwise, one a string in keepalived's (iproute2's) words:
    /// `"198.51.100.0/24 via 192.0.2.254 dev eth0 table 100 metric 5"`,
    /// `"blackhole 203.0.113.0/24"` (`[TYPE] DEST[/LEN] [via GW] [dev IF]
    /// [src ADDR] [table T] [metric N] [proto P] [scope S] [onlink]
    /// [nexthop [via GW] [dev IF] [weight W] [onlink]]...`, a multipath
    /// route's next hops last; `via A or B` is two next hops;
    /// protocol 18, keepalived's, unless given).
    #[key(default_is = "none", keepalived = "virtual_routes { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_routes: Vec<String>,
    /// Each virtual address as a /32 or /128 route in a kernel table while
    /// Master, for a routing daemon (BIRD, FRR) to announce:
    /// `{ table = 198, protocol = 248, metric = 10 }`.
    #[key(default_is = "none", vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_routes: Option<super::routes::ExportRoutes>,
    /// Policy rules installed while the instance is Master and removed
    /// otherwise, in keepalived's (iproute2's) words: `"from 192.0.2.0/24
    /// table 100"`, `"fwmark 0x10/0xff priority 100 lookup 200"` (`from`,
    /// `to`, `priority`, `tos`, `fwmark`, `iif`, `oif`, then `table N`,
    /// `goto N`, `nop`, `blackhole`, `unreachable` or `prohibit`; protocol
    /// 18, keepalived's, unless given).
    #[key(default_is = "none", keepalived = "virtual_rules { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_rules: Vec<String>,
    /// Addresses added and removed with `virtual_ipaddress` but not carried
    /// in the advertisements: many addresses, or addresses of the other
    /// family; same forms as `virtual_ipaddress`.
    #[key(default_is = "none", keepalived = "virtual_ipaddress_excluded { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_ipaddress_excluded: Vec<VirtualIp>,
}

/// `use_vmac = true` or `use_vmac = "NAME"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UseVmac {
    /// On (named `vrrp.VRID`) or off.
    On(bool),
    /// On, with this name.
    Named(String),
}

/// `authentication = { auth_type = "PASS", auth_pass = "..." }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Only "PASS" (RFC 3768 simple password); "AH" is refused.
    #[key(required, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    /// At most 8 bytes (keepalived truncates longer ones; we refuse).
    #[key(required, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_pass: Option<String>,
}

/// One virtual (or static) address, its words as written; resolve checks
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtualIp {
    /// `ADDR` or `ADDR/LEN`, parsed by resolve.
    pub address: String,
    /// Interface to add it to (default: the instance's).
    pub dev: Option<String>,
    /// IPv4 label.
    pub label: Option<String>,
    /// Scope: a name (`global`, `site`, `link`, `host`, `nowhere`) or a
    /// number.
    pub scope: Option<String>,
    /// IPv4 broadcast: an address, `+` (the prefix's last address) or `-`
    /// (its first).
    pub brd: Option<String>,
    /// The peer of a point-to-point address, `ADDR[/LEN]`.
    pub peer: Option<String>,
    /// IPv6 preferred lifetime: seconds or `forever`.
    pub preferred_lft: Option<String>,
    /// The address's interface is not tracked.
    pub no_track: bool,
}

impl FromStr for VirtualIp {
    type Err = String;
    /// `ADDR[/LEN] [dev IFNAME] [label LABEL] [scope S] [brd|broadcast B]
    /// [peer P[/LEN]] [preferred_lft N|forever] [no_track]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split_whitespace();
        let first = words.next().ok_or("empty virtual address")?;
        let mut vip = VirtualIp {
            address: first.to_owned(),
            ..VirtualIp::default()
        };
        while let Some(word) = words.next() {
            if word == "no_track" {
                vip.no_track = true;
                continue;
            }
            let value = words
                .next()
                .ok_or_else(|| format!("`{word}` needs a value in virtual address `{s}`"))?
                .to_owned();
            match word {
                "dev" => vip.dev = Some(value),
                "label" => vip.label = Some(value),
                "scope" => vip.scope = Some(value),
                "brd" | "broadcast" => vip.brd = Some(value),
                "peer" => vip.peer = Some(value),
                "preferred_lft" => vip.preferred_lft = Some(value),
                other => {
                    return Err(format!(
                        "unknown option `{other}` in virtual address `{s}` (known: dev, label, scope, brd, peer, preferred_lft, no_track)"
                    ));
                }
            }
        }
        Ok(vip)
    }
}

impl fmt::Display for VirtualIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)?;
        for (word, value) in [
            ("dev", &self.dev),
            ("label", &self.label),
            ("scope", &self.scope),
            ("brd", &self.brd),
            ("peer", &self.peer),
            ("preferred_lft", &self.preferred_lft),
        ] {
            if let Some(value) = value {
                write!(f, " {word} {value}")?;
            }
        }
        if self.no_track {
            f.write_str(" no_track")?;
        }
        Ok(())
    }
}

/// `preferred_lft = 0` or `preferred_lft = "forever"`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Lifetime {
    /// Seconds.
    Secs(u32),
    /// A word (`forever`, or seconds written as a string).
    Word(String),
}

#[derive(Deserialize, Documented)]
#[serde(deny_unknown_fields)]
struct VirtualIpTable {
    /// `ADDR` or `ADDR/LEN`.
    #[key(required, keepalived = "the address of a virtual_ipaddress line")]
    address: String,
    /// Interface to add it to.
    #[key(default_is = "the instance's interface", keepalived = "dev IFNAME")]
    #[serde(default)]
    dev: Option<String>,
    /// IPv4 label (`eth0:vip`).
    #[key(default_is = "none", keepalived = "label LABEL")]
    #[serde(default)]
    label: Option<String>,
    /// IPv4 scope: `global`, `site`, `link`, `host`, `nowhere` or a
    /// number 0..255 (IPv6 addresses get theirs from the kernel).
    #[key(default_is = "\"global\"", keepalived = "scope SCOPE")]
    #[serde(default)]
    scope: Option<String>,
    /// IPv4 broadcast address: an address, `"+"` (the prefix's last
    /// address) or `"-"` (its first); none unless given, as keepalived.
    #[key(default_is = "none", keepalived = "brd ADDR, broadcast ADDR")]
    #[serde(default, alias = "broadcast")]
    brd: Option<String>,
    /// The other end of a point-to-point address (`"ADDR[/LEN]"`, the
    /// length then the peer's).
    #[key(default_is = "none", keepalived = "peer ADDR[/LEN]")]
    #[serde(default)]
    peer: Option<String>,
    /// IPv6 preferred lifetime, seconds or `"forever"`; 0 marks the
    /// address deprecated, so that it is not chosen as a source address.
    #[key(
        default_is = "0 for an IPv6 /128, forever otherwise (keepalived's defaults)",
        keepalived = "preferred_lft N|forever"
    )]
    #[serde(default)]
    preferred_lft: Option<Lifetime>,
    /// Do not track the address's interface (when it is not the
    /// instance's: down would put the instance in Fault).
    #[key(default_is = "false", keepalived = "no_track")]
    #[serde(default)]
    no_track: bool,
}

impl TryFrom<VirtualIpTable> for VirtualIp {
    type Error = String;
    fn try_from(t: VirtualIpTable) -> Result<Self, String> {
        Ok(VirtualIp {
            address: t.address,
            dev: t.dev,
            label: t.label,
            scope: t.scope,
            brd: t.brd,
            peer: t.peer,
            preferred_lft: t.preferred_lft.map(|l| match l {
                Lifetime::Secs(n) => n.to_string(),
                Lifetime::Word(w) => w,
            }),
            no_track: t.no_track,
        })
    }
}

/// A tracked interface or script, with an optional weight override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackRef {
    /// Interface or script name.
    pub name: String,
    /// Weight (for scripts: overrides the script's).
    pub weight: Option<i32>,
    /// Failing while up (keepalived's `reverse`); for scripts, overrides
    /// the script's.
    pub reverse: Option<bool>,
}

impl TrackRef {
    /// A reference by name only.
    pub fn named(name: impl Into<String>) -> Self {
        TrackRef {
            name: name.into(),
            weight: None,
            reverse: None,
        }
    }
}

impl FromStr for TrackRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("empty name".to_owned());
        }
        Ok(TrackRef::named(s))
    }
}

/// A tracked file: a `[track_file.NAME]` by name, or a file of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFileRef {
    /// `[track_file.NAME]`, when given by name.
    pub name: Option<String>,
    /// The file, when given inline.
    pub path: Option<String>,
    /// Weight (by name: overrides the track file's; inline: 0).
    pub weight: Option<i32>,
    /// Negates the product.
    pub reverse: Option<bool>,
}

impl FromStr for TrackFileRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("empty name".to_owned());
        }
        Ok(TrackFileRef {
            name: Some(s.to_owned()),
            path: None,
            weight: None,
            reverse: None,
        })
    }
}

/// `[sync_group.NAME]`, keepalived's `vrrp_sync_group`: instances that
/// change state together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct SyncGroup {
    /// Member instance names.
    #[key(required, keepalived = "group { ... }")]
    #[serde(default)]
    pub group: Vec<String>,
    /// Let the members' tracked objects move their priorities (keepalived
    /// ignores weights of sync-group members unless this is set).
    #[key(
        default = false,
        keepalived = "sync_group_tracking_weight, global_tracking"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_group_tracking_weight: Option<bool>,
    /// Run when the group enters master.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<CommandSpec>,
    /// Run when the group enters backup.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<CommandSpec>,
    /// Run when the group enters fault.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<CommandSpec>,
    /// Run when the group stops.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<CommandSpec>,
    /// Run on every change with `GROUP name STATE 0` appended.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<CommandSpec>,
    /// Mail on state changes (default: `global.smtp_alert_vrrp`, else
    /// `global.smtp_alert`, else off).
    #[key(default_is = "`global.smtp_alert_vrrp`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert: Option<bool>,
}

/// IPVS transport protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, Documented)]
pub enum VsProtocol {
    /// TCP (default).
    #[default]
    #[serde(rename = "TCP", alias = "tcp")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP", alias = "udp")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP", alias = "sctp")]
    Sctp,
}

/// IPVS forwarding method (keepalived's `lb_kind` / `lvs_method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Documented)]
pub enum LbKind {
    /// Masquerading (default).
    #[default]
    #[serde(rename = "NAT", alias = "nat")]
    Nat,
    /// Direct routing.
    #[serde(rename = "DR", alias = "dr")]
    Dr,
    /// IP-in-IP tunnelling.
    #[serde(rename = "TUN", alias = "tun")]
    Tun,
}

/// Address family of a firewall-mark virtual server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, Documented)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4 (default).
    #[default]
    Inet,
    /// IPv6.
    Inet6,
}

/// `[[virtual_server]]`, keepalived's `virtual_server`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct VirtualServer {
    /// Virtual address (with `port`), or use `fwmark`.
    #[key(
        default_is = "none: give `ip` and `port`, or `fwmark`",
        keepalived = "virtual_server IP PORT"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Virtual port.
    #[key(
        default_is = "none: give `ip` and `port`, or `fwmark`",
        keepalived = "virtual_server IP PORT"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Firewall mark, instead of `ip`/`port`.
    #[key(default_is = "none", keepalived = "virtual_server fwmark MARK")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// A `[virtual_server_group]` name, instead of `ip`/`port` or
    /// `fwmark` (keepalived's `virtual_server group NAME`): the same
    /// settings and real servers on every service of the group.
    #[key(
        default_is = "none: `ip` and `port` (or `fwmark`) name the service",
        keepalived = "virtual_server group NAME"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Family of a firewall-mark service: "inet" (default) or "inet6"
    /// (keepalived's `ip_family`).
    #[key(default_is = "\"inet\"", keepalived = "ip_family")]
    #[serde(default, alias = "ip_family", skip_serializing_if = "Option::is_none")]
    pub family: Option<IpFamily>,
    /// "TCP" (default), "UDP" or "SCTP".
    #[key(default = "TCP", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<VsProtocol>,
    /// Default pause between checks (60 s).
    #[key(default = "1m", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_loop: Option<Dur>,
    /// Default check time limit (5 s).
    #[key(default_is = "5s, unless a real server or check says", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    /// Default extra attempts of checks (per check kind).
    #[key(default_is = "each check kind's", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    /// Default pause before a retry (per check kind).
    #[key(default_is = "each check kind's", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_before_retry: Option<Dur>,
    /// Scheduler name: rr, wrr, lc, wlc (default), lblc, sh, mh, ...
    #[key(default = "wlc", keepalived = "lb_algo, lvs_sched")]
    #[serde(default, alias = "lvs_sched", skip_serializing_if = "Option::is_none")]
    pub lb_algo: Option<String>,
    /// Forwarding: "NAT" (default), "DR" or "TUN".
    #[key(default = "NAT", keepalived = "lb_kind, lvs_method")]
    #[serde(default, alias = "lvs_method", skip_serializing_if = "Option::is_none")]
    pub lb_kind: Option<LbKind>,
    /// Persistence timeout; no persistence when absent.
    #[key(default_is = "none: no persistence", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<Dur>,
    /// Persistence granularity as a prefix length or netmask.
    #[key(
        default_is = "one client address",
        keepalived,
        value = "a prefix length (24) or a netmask (\"255.255.255.0\")"
    )]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "granularity"
    )]
    pub persistence_granularity: Option<u8>,
    /// One-packet scheduling (UDP).
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<bool>,
    /// Served while quorum is lost: "198.51.100.99:3306",
    /// "198.51.100.99 3306", or an address alone (the service's port).
    #[key(default_is = "none", keepalived = "sorry_server IP PORT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<String>,
    /// Minimum sum of live real servers' weights (1).
    #[key(default = 1, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Hysteresis around the quorum (0).
    #[key(default = 0, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<u32>,
    /// Real servers start down until their first successful check.
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<bool>,
    /// Emit down notifications on shutdown.
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omega: Option<bool>,
    /// Default for real servers: weight 0 instead of removal when down.
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibit_on_failure: Option<bool>,
    /// Run when quorum is gained.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_up: Option<CommandSpec>,
    /// Run when quorum is lost.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_down: Option<CommandSpec>,
    /// Default `Host:` of HTTP checks.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
    /// Mail when quorum is gained or lost (default:
    /// `global.smtp_alert_checker`, else `global.smtp_alert`, else off).
    #[key(default_is = "`global.smtp_alert_checker`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert: Option<bool>,
    /// The service's address as a /32 or /128 route out of `lo` in a
    /// kernel table while its quorum is up (health-gated anycast), for a
    /// routing daemon (BIRD, FRR) to announce: `{ table = 198, protocol =
    /// 248, metric = 10 }`. Each address of a group's services; a
    /// firewall-mark service has no address and refuses it.
    #[key(default_is = "none", vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_routes: Option<super::routes::ExportRoutes>,
    /// The real servers.
    #[key(default_is = "none", keepalived = "real_server IP PORT { ... }")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub real_server: Vec<RealServer>,
}

/// `[[virtual_server.real_server]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    /// Address.
    #[key(required, keepalived = "real_server IP PORT")]
    pub ip: IpAddr,
    /// Port (default: the virtual server's).
    #[key(
        default_is = "the virtual server's port",
        keepalived = "real_server IP PORT"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Weight (1).
    #[key(default = 1, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Forwarding method override.
    #[key(
        default_is = "the virtual server's `lb_kind`",
        keepalived = "lb_kind, lvs_method"
    )]
    #[serde(default, alias = "lvs_method", skip_serializing_if = "Option::is_none")]
    pub lb_kind: Option<LbKind>,
    /// Weight 0 instead of removal when down (default: the virtual
    /// server's setting).
    #[key(default_is = "the virtual server's `inhibit_on_failure`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibit_on_failure: Option<bool>,
    /// Upper connection threshold (0: none).
    #[key(default = 0, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uthreshold: Option<u32>,
    /// Lower connection threshold (0: none).
    #[key(default = 0, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lthreshold: Option<u32>,
    /// Default pause between this server's checks.
    #[key(default_is = "the virtual server's `delay_loop`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_loop: Option<Dur>,
    /// Default check time limit.
    #[key(default_is = "the virtual server's `connect_timeout`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    /// Default extra attempts of this server's checks.
    #[key(default_is = "the virtual server's `retry`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    /// Default pause before a retry.
    #[key(default_is = "the virtual server's `delay_before_retry`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_before_retry: Option<Dur>,
    /// Starts down until its first successful check (default: the
    /// virtual server's `alpha`).
    #[key(default_is = "the virtual server's `alpha`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<bool>,
    /// Run when it comes up.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_up: Option<CommandSpec>,
    /// Run when it goes down.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_down: Option<CommandSpec>,
    /// Mail when one of its checks changes state (default:
    /// `global.smtp_alert_checker`, else `global.smtp_alert`, else on, as
    /// keepalived).
    #[key(default_is = "`global.smtp_alert_checker`, else on", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert: Option<bool>,
    /// TCP connect checks.
    #[key(default_is = "none", keepalived = "TCP_CHECK")]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tcp_check: Vec<TcpCheck>,
    /// HTTP GET checks.
    #[key(default_is = "none", keepalived = "HTTP_GET")]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub http_get: Vec<HttpCheck>,
    /// HTTPS GET checks.
    #[key(default_is = "none", keepalived = "SSL_GET")]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ssl_get: Vec<HttpCheck>,
    /// Script checks.
    #[key(default_is = "none", keepalived = "MISC_CHECK")]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub misc_check: Vec<MiscCheck>,
    /// DNS checks.
    #[key(default_is = "none", keepalived = "DNS_CHECK")]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns_check: Vec<DnsCheck>,
    /// SMTP checks.
    #[key(default_is = "none", keepalived = "SMTP_CHECK")]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub smtp_check: Vec<SmtpCheck>,
    /// ICMP echo checks.
    #[key(default_is = "none", keepalived = "PING_CHECK, ICMP_CHECK")]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ping_check: Vec<PingCheck>,
    /// UDP checks.
    #[key(default_is = "none", keepalived = "UDP_CHECK")]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub udp_check: Vec<UdpCheck>,
}

impl RealServer {
    /// A real server with nothing but its address.
    pub fn new(ip: IpAddr) -> Self {
        RealServer {
            ip,
            port: None,
            weight: None,
            lb_kind: None,
            inhibit_on_failure: None,
            uthreshold: None,
            lthreshold: None,
            delay_loop: None,
            connect_timeout: None,
            retry: None,
            delay_before_retry: None,
            alpha: None,
            notify_up: None,
            notify_down: None,
            smtp_alert: None,
            tcp_check: Vec::new(),
            http_get: Vec::new(),
            ssl_get: Vec::new(),
            misc_check: Vec::new(),
            dns_check: Vec::new(),
            smtp_check: Vec::new(),
            ping_check: Vec::new(),
            udp_check: Vec::new(),
        }
    }
}

/// The fields every connecting check has (keepalived's common checker
/// keywords), as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connect {
    /// Address to probe (default: the real server's).
    pub connect_ip: Option<IpAddr>,
    /// Port to probe (default: the real server's).
    pub connect_port: Option<u16>,
    /// Source address (keepalived's `bindto`).
    pub bind_to: Option<IpAddr>,
    /// Source port (keepalived's `bind_port`).
    pub bind_port: Option<u16>,
    /// Interface (keepalived's `bind_if`).
    pub bind_if: Option<String>,
    /// Time limit of one attempt.
    pub connect_timeout: Option<Dur>,
}

/// The scheduling fields every check has, as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Extra attempts before a round fails.
    pub retry: Option<u32>,
    /// Pause before a retry.
    pub delay_before_retry: Option<Dur>,
    /// Pause between rounds.
    pub delay_loop: Option<Dur>,
    /// Good rounds to come up.
    pub rise: Option<u32>,
    /// Failed rounds to go down.
    pub fall: Option<u32>,
}

/// Declares a check table with the common fields written out (serde's
/// `flatten` buffers every table, which costs at 40,000 checks), plus
/// `connect()` and `schedule()` views of them.
macro_rules! check_struct {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Documented)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Address to probe (default: the real server's).
            #[key(default_is = "the real server's address", keepalived)]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub connect_ip: Option<IpAddr>,
            /// Port to probe (default: the real server's).
            #[key(default_is = "the real server's port", keepalived)]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub connect_port: Option<u16>,
            /// Source address (keepalived's `bindto`).
            #[key(default_is = "chosen by the kernel", keepalived = "bindto")]
            #[serde(default, alias = "bindto", skip_serializing_if = "Option::is_none")]
            pub bind_to: Option<IpAddr>,
            /// Source port (keepalived's `bind_port`).
            #[key(default_is = "chosen by the kernel", keepalived)]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub bind_port: Option<u16>,
            /// Interface the check's packets leave by (keepalived's
            /// `bind_if`); required for an IPv6 link-local `connect_ip`.
            #[key(default_is = "chosen by the routing table", keepalived)]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub bind_if: Option<String>,
            /// Time limit of one attempt (the real server's, else the
            /// virtual server's, else 5 s).
            #[key(default_is = "the real server's, else the virtual server's, else 5s", keepalived)]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub connect_timeout: Option<Dur>,
            /// Extra attempts before a round fails (keepalived's per-kind
            /// default: 1, DNS 3).
            #[key(default_is = "the real server's, else the virtual server's, else 1 (DNS_CHECK: 3)", keepalived = "retry, nb_get_retry")]
            #[serde(default, alias = "nb_get_retry", skip_serializing_if = "Option::is_none")]
            pub retry: Option<u32>,
            /// Pause before a retry (keepalived's per-kind default: 1 s,
            /// HTTP and SSL 3 s, DNS the `delay_loop`).
            #[key(default_is = "the real server's, else the virtual server's, else 1s (HTTP_GET and SSL_GET: 3s; DNS_CHECK: the `delay_loop`)", keepalived)]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub delay_before_retry: Option<Dur>,
            /// Pause between rounds (default: the real server's, else the
            /// virtual server's `delay_loop`).
            #[key(default_is = "the real server's, else the virtual server's", keepalived)]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub delay_loop: Option<Dur>,
            /// Good rounds to come up (1).
            #[key(default = 1, vrrpd_only)]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub rise: Option<u32>,
            /// Failed rounds to go down (1).
            #[key(default = 1, vrrpd_only)]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub fall: Option<u32>,
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl $name {
            /// The connection fields.
            pub fn connect(&self) -> Connect {
                Connect {
                    connect_ip: self.connect_ip,
                    connect_port: self.connect_port,
                    bind_to: self.bind_to,
                    bind_port: self.bind_port,
                    bind_if: self.bind_if.clone(),
                    connect_timeout: self.connect_timeout,
                }
            }

            /// The scheduling fields.
            pub fn schedule(&self) -> Schedule {
                Schedule {
                    retry: self.retry,
                    delay_before_retry: self.delay_before_retry,
                    delay_loop: self.delay_loop,
                    rise: self.rise,
                    fall: self.fall,
                }
            }

            /// Sets the connection fields.
            pub fn set_connect(&mut self, c: Connect) {
                self.connect_ip = c.connect_ip;
                self.connect_port = c.connect_port;
                self.bind_to = c.bind_to;
                self.bind_port = c.bind_port;
                self.bind_if = c.bind_if;
                self.connect_timeout = c.connect_timeout;
            }

            /// Sets the scheduling fields.
            pub fn set_schedule(&mut self, s: Schedule) {
                self.retry = s.retry;
                self.delay_before_retry = s.delay_before_retry;
                self.delay_loop = s.delay_loop;
                self.rise = s.rise;
                self.fall = s.fall;
            }
        }
    };
}

check_struct!(
    /// keepalived's `TCP_CHECK`: a TCP connect.
    TcpCheck {}
);

check_struct!(
    /// keepalived's `HTTP_GET` / `SSL_GET`.
    HttpCheck {
        /// URLs to fetch; all must pass (default: `/`, any 2xx).
        #[key(default_is = "one URL: path `/`, any 2xx status", keepalived = "url { ... }")]
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        url: Vec<Url>,
        /// `Host:` header (default: the virtual server's `virtualhost`).
        #[key(default_is = "the virtual server's `virtualhost`", keepalived)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        virtualhost: Option<String>,
        /// TLS server name (SSL_GET).
        #[key(default_is = "the `virtualhost` without its port; none without one", keepalived = "enable_sni (which sends the virtualhost)")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
        /// Send the server name (`sni`, else the virtual host) in the TLS
        /// handshake (SSL_GET). Default: when there is a name; keepalived's
        /// default is off, which `import-keepalived` writes out.
        #[key(default_is = "on when there is a name (keepalived: off)", keepalived)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enable_sni: Option<bool>,
    }
);

check_struct!(
    /// keepalived's `DNS_CHECK`: a query over UDP to the real server's
    /// address and port (or `connect_ip` / `connect_port`).
    DnsCheck {
        /// Record type ("SOA").
        #[key(default = "SOA", keepalived = "type")]
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        record_type: Option<String>,
        /// Name to resolve (".").
        #[key(default = ".", keepalived)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    }
);

check_struct!(
    /// keepalived's `SMTP_CHECK`.
    SmtpCheck {
        /// HELO name.
        #[key(default_is = "none: no HELO is sent", keepalived)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        helo_name: Option<String>,
    }
);

check_struct!(
    /// keepalived's `PING_CHECK`.
    PingCheck {}
);

check_struct!(
    /// keepalived's `UDP_CHECK`.
    UdpCheck {
        /// Payload to send, in hexadecimal as keepalived writes it
        /// ("0a0b0c"; empty by default).
        #[key(default = "", keepalived)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
        /// An answer is required (default: no ICMP error is enough).
        #[key(default = false, keepalived)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        require_reply: Option<bool>,
        /// With `require_reply`, the bytes the answer must start with, in
        /// hexadecimal.
        #[key(default_is = "any reply", keepalived = "require_reply HEX")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply: Option<String>,
    }
);

/// keepalived's `MISC_CHECK`: a program whose exit status is the verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct MiscCheck {
    /// What to run (required).
    #[key(required, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misc_path: Option<CommandSpec>,
    /// Its time limit (default: the `delay_loop`, as in keepalived).
    #[key(default_is = "the `delay_loop`", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misc_timeout: Option<Dur>,
    /// Exit status 2..=255 sets the weight to status - 2.
    #[key(default = false, keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misc_dynamic: Option<bool>,
    /// Run as this user.
    #[key(default_is = "`global.script_user`", keepalived = "user USER [GROUP]")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Extra attempts before a round fails (0).
    #[key(
        default_is = "the real server's, else the virtual server's, else 0",
        keepalived = "retry, nb_get_retry"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    /// Pause before a retry (1 s).
    #[key(
        default_is = "the real server's, else the virtual server's, else 1s",
        keepalived
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_before_retry: Option<Dur>,
    /// Pause between rounds (default: the real server's, else the virtual
    /// server's `delay_loop`).
    #[key(
        default_is = "the real server's, else the virtual server's",
        keepalived
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_loop: Option<Dur>,
    /// Good rounds to come up (1).
    #[key(default = 1, vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    /// Failed rounds to go down (1).
    #[key(default = 1, vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
}

impl MiscCheck {
    /// The scheduling fields.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            delay_loop: self.delay_loop,
            rise: self.rise,
            fall: self.fall,
        }
    }

    /// Sets the scheduling fields.
    pub fn set_schedule(&mut self, s: Schedule) {
        self.retry = s.retry;
        self.delay_before_retry = s.delay_before_retry;
        self.delay_loop = s.delay_loop;
        self.rise = s.rise;
        self.fall = s.fall;
    }
}

/// One URL of an HTTP check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct Url {
    /// Path ("/").
    #[key(default = "/", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Expected MD5 of the body, 32 hex digits (as `genhash` prints).
    #[key(default_is = "not checked", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Expected status: 200, or "200-299", or "200 301-302".
    #[key(
        default_is = "any 2xx",
        keepalived,
        value = "a status (200) or ranges (\"200-299 301\")"
    )]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "status_code"
    )]
    pub status_code: Option<String>,
    /// A regular expression the body must match (the `regex` crate's
    /// syntax: PCRE's without look-around and back-references).
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Up while the body does not match `regex`.
    #[key(default_is = "false", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_no_match: Option<bool>,
    /// keepalived's PCRE2 options: caseless, multiline, dotall, extended,
    /// ungreedy, utf.
    #[key(default_is = "none", keepalived)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regex_options: Vec<String>,
    /// The match may not start before this byte of the body.
    #[key(default_is = "0", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_min_offset: Option<usize>,
    /// The match must start at or before this byte of the body.
    #[key(default_is = "the end of the body", keepalived)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_max_offset: Option<usize>,
}

fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a status code (200) or ranges (\"200-299 301\")")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
    }
    d.deserialize_any(V)
}

fn granularity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a prefix length (24) or a netmask (\"255.255.255.0\")")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u8::try_from(v)
                .ok()
                .filter(|v| *v <= 128)
                .map(Some)
                .ok_or_else(|| E::custom(format!("prefix length {v} is out of 0..=128")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_granularity(v).map(Some).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// A prefix length ("24") or a contiguous IPv4 netmask ("255.255.255.0").
pub fn parse_granularity(v: &str) -> Result<u8, String> {
    if let Ok(n) = v.parse::<u8>() {
        return if n <= 128 {
            Ok(n)
        } else {
            Err(format!("prefix length {n} is out of 0..=128"))
        };
    }
    let mask: std::net::Ipv4Addr = v
        .parse()
        .map_err(|_| format!("`{v}` is not a netmask or a prefix length"))?;
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    if bits.checked_shl(len).unwrap_or(0) != 0 {
        return Err(format!("`{v}` is not a contiguous netmask"));
    }
    u8::try_from(len).map_err(|_| format!("`{v}` is not a netmask"))
}

/// A single table or an array of tables.
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table or an array of tables")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut v = Vec::new();
            while let Some(item) = seq.next_element()? {
                v.push(item);
            }
            Ok(v)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
            Ok(vec![T::deserialize(
                de::value::MapAccessDeserializer::new(map),
            )?])
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// Deserialises a `T` from a string (via `FromStr`) or a table (via `Tab`).
fn string_or_table<'de, D, T, Tab>(d: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String> + TryFrom<Tab, Error = String>,
    Tab: Deserialize<'de>,
{
    struct V<T, Tab>(&'static str, PhantomData<(T, Tab)>);
    impl<'de, T, Tab> Visitor<'de> for V<T, Tab>
    where
        T: FromStr<Err = String> + TryFrom<Tab, Error = String>,
        Tab: Deserialize<'de>,
    {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(E::custom)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let t = Tab::deserialize(de::value::MapAccessDeserializer::new(map))?;
            T::try_from(t).map_err(de::Error::custom)
        }
    }
    d.deserialize_any(V(expecting, PhantomData))
}

impl Documented for VirtualIp {
    fn shape() -> Shape {
        Shape::StringOrTable(
            "\"ADDR[/LEN] [dev IFNAME] [label LABEL] [scope S] [brd B] [peer P] [preferred_lft N] [no_track]\"",
            VirtualIpTable::table,
        )
    }
}

impl<'de> Deserialize<'de> for VirtualIp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table::<D, VirtualIp, VirtualIpTable>(
            d,
            "\"ADDR[/LEN] [dev IF] [label LABEL] [scope S] [brd B] [peer P] [preferred_lft N] [no_track]\" or { address = ..., dev = ..., ... }",
        )
    }
}

impl Serialize for VirtualIp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[derive(Deserialize, Documented)]
#[serde(deny_unknown_fields)]
struct TrackRefTable {
    /// The interface or `[script.NAME]`.
    #[key(
        required,
        keepalived = "the name of a track_script or track_interface line"
    )]
    name: String,
    /// Priority change, -253..=253 (0: failing puts the instance in Fault).
    #[key(
        default_is = "a script's own weight; 0 for an interface",
        keepalived = "weight N"
    )]
    #[serde(default)]
    weight: Option<i32>,
    /// Failing while up (or while the script succeeds).
    #[key(
        default_is = "a script's own setting; false for an interface",
        keepalived = "weight N reverse"
    )]
    #[serde(default)]
    reverse: Option<bool>,
}

impl TryFrom<TrackRefTable> for TrackRef {
    type Error = String;
    fn try_from(t: TrackRefTable) -> Result<Self, String> {
        Ok(TrackRef {
            name: t.name,
            weight: t.weight,
            reverse: t.reverse,
        })
    }
}

impl Documented for TrackRef {
    fn shape() -> Shape {
        Shape::StringOrTable("a name", TrackRefTable::table)
    }
}

impl<'de> Deserialize<'de> for TrackRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table::<D, TrackRef, TrackRefTable>(
            d,
            "a name or { name = ..., weight = ..., reverse = ... }",
        )
    }
}

impl Serialize for TrackRef {
    /// A bare name when it has no options.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.weight.is_none() && self.reverse.is_none() {
            return s.serialize_str(&self.name);
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        if let Some(w) = self.weight {
            map.serialize_entry("weight", &w)?;
        }
        if let Some(r) = self.reverse {
            map.serialize_entry("reverse", &r)?;
        }
        map.end()
    }
}

#[derive(Deserialize, Documented)]
#[serde(deny_unknown_fields)]
struct TrackFileRefTable {
    /// A `[track_file.NAME]`.
    #[key(
        default_is = "none: give `name` or `path`",
        keepalived = "the name of a track_file line"
    )]
    #[serde(default)]
    name: Option<String>,
    /// A file of its own, instead of `name`.
    #[key(default_is = "none: give `name` or `path`", vrrpd_only)]
    #[serde(default)]
    path: Option<String>,
    /// Multiplies the file's number, -254..=254 (0: any number but 0 means Fault).
    #[key(
        default_is = "the track file's own weight; 0 for a path",
        keepalived = "weight N"
    )]
    #[serde(default)]
    weight: Option<i32>,
    /// Negates the product.
    #[key(default_is = "false", keepalived = "weight N reverse")]
    #[serde(default)]
    reverse: Option<bool>,
}

impl TryFrom<TrackFileRefTable> for TrackFileRef {
    type Error = String;
    fn try_from(t: TrackFileRefTable) -> Result<Self, String> {
        if t.name.is_some() == t.path.is_some() {
            return Err(
                "a tracked file needs either `name` (a [track_file.NAME]) or `path`".into(),
            );
        }
        Ok(TrackFileRef {
            name: t.name,
            path: t.path,
            weight: t.weight,
            reverse: t.reverse,
        })
    }
}

impl Documented for TrackFileRef {
    fn shape() -> Shape {
        Shape::StringOrTable("a [track_file.NAME] name", TrackFileRefTable::table)
    }
}

impl<'de> Deserialize<'de> for TrackFileRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table::<D, TrackFileRef, TrackFileRefTable>(
            d,
            "a [track_file.NAME] name, { name = ..., weight = ... } or { path = ..., weight = ... }",
        )
    }
}

impl Serialize for TrackFileRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if let (Some(name), None, None, None) = (&self.name, &self.path, self.weight, self.reverse)
        {
            return s.serialize_str(name);
        }
        let mut map = s.serialize_map(None)?;
        if let Some(name) = &self.name {
            map.serialize_entry("name", name)?;
        }
        if let Some(path) = &self.path {
            map.serialize_entry("path", path)?;
        }
        if let Some(w) = self.weight {
            map.serialize_entry("weight", &w)?;
        }
        if let Some(r) = self.reverse {
            map.serialize_entry("reverse", &r)?;
        }
        map.end()
    }
}

/// A virtual router id, written as an integer 1..=255.
mod vrid_serde {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Vrid>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_u8(v.get()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vrid>, D::Error> {
        let v = i64::deserialize(d)?;
        u8::try_from(v)
            .ok()
            .and_then(Vrid::new)
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("virtual_router_id {v} is out of 1..=255")))
    }
}

/// A configured priority, written as an integer 1..=255.
mod priority_serde {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Priority>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_u8(v.get()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Priority>, D::Error> {
        let v = i64::deserialize(d)?;
        u8::try_from(v)
            .ok()
            .and_then(Priority::configured)
            .map(Some)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "priority {v} is out of 1..=255 (255 only for the address owner)"
                ))
            })
    }
}
