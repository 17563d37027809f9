//! The TOML schema: one struct per table, keepalived's option names,
//! keepalived's defaults. After [`super::load`] every optional setting
//! that has a default is filled in, so serialising a [`Config`] prints the
//! effective configuration.

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

/// A whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Config {
    /// `[global]`: keepalived's `global_defs`.
    pub global: Global,
    /// `[script.NAME]`: keepalived's `vrrp_script NAME`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub script: BTreeMap<String, Script>,
    /// `[instance.NAME]`: keepalived's `vrrp_instance NAME`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub instance: BTreeMap<String, Instance>,
    /// `[sync_group.NAME]`: keepalived's `vrrp_sync_group NAME`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sync_group: BTreeMap<String, SyncGroup>,
    /// `[[virtual_server]]`: keepalived's `virtual_server`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub virtual_server: Vec<VirtualServer>,
}

/// How logs are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[global.http]`: the observability listener (/metrics, /status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Address to listen on; loopback by default.
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
}

fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

/// `[global]`, keepalived's `global_defs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    /// A name for this node (logs, status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// VRRP version of instances that do not set `version` (keepalived's
    /// default: 2).
    #[serde(default = "default_version")]
    pub vrrp_version: u8,
    /// Refuse scripts that a non-root user could modify. Enabled by
    /// default, unlike keepalived, where it is off: a root daemon running a
    /// file anybody may edit is a privilege escalation.
    #[serde(default = "yes")]
    pub enable_script_security: bool,
    /// Run insecure scripts anyway (an explicit, visible opt-out).
    #[serde(default)]
    pub allow_insecure_scripts: bool,
    /// Default user (`user` or `user:group`) scripts run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_user: Option<String>,
    /// VRRPv3 over IPv4 without the pseudo-header in the checksum, for
    /// peers that compute it like VRRPv2 (default for every instance).
    #[serde(default)]
    pub vrrp_v3_checksum_as_v2: bool,
    /// Default of the instances' `lower_prio_no_advert`.
    #[serde(default)]
    pub vrrp_lower_prio_no_advert: bool,
    /// Default of the instances' `garp_master_delay`.
    #[serde(default = "default_garp_delay")]
    pub vrrp_garp_master_delay: Dur,
    /// Default of the instances' `garp_master_repeat`.
    #[serde(default = "default_garp_repeat")]
    pub vrrp_garp_master_repeat: u32,
    /// Default of the instances' `garp_master_refresh` (0: off).
    #[serde(default)]
    pub vrrp_garp_master_refresh: Dur,
    /// Default of the instances' `garp_master_refresh_repeat`.
    #[serde(default = "one")]
    pub vrrp_garp_master_refresh_repeat: u32,
    /// Default of the instances' `garp_interval`.
    #[serde(default)]
    pub vrrp_garp_interval: Dur,
    /// Longest a notify script may run before its process group is killed.
    #[serde(default = "default_notify_timeout")]
    pub notify_timeout: Dur,
    /// Log format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Observability listener; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            router_id: None,
            vrrp_version: default_version(),
            enable_script_security: true,
            allow_insecure_scripts: false,
            script_user: None,
            vrrp_v3_checksum_as_v2: false,
            vrrp_lower_prio_no_advert: false,
            vrrp_garp_master_delay: default_garp_delay(),
            vrrp_garp_master_repeat: default_garp_repeat(),
            vrrp_garp_master_refresh: Dur::default(),
            vrrp_garp_master_refresh_repeat: 1,
            vrrp_garp_interval: Dur::default(),
            notify_timeout: default_notify_timeout(),
            log_format: LogFormat::Text,
            http: None,
        }
    }
}

/// `[script.NAME]`, keepalived's `vrrp_script`: a command whose exit
/// status moves the priority of the instances that track it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// What to run (keepalived's `script`).
    #[serde(alias = "script")]
    pub command: CommandSpec,
    /// Pause between runs (default 1 s).
    #[serde(default = "one_second")]
    pub interval: Dur,
    /// Longest a run may take (default: the interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Priority change: 0 means failure puts the instance in Fault;
    /// negative is added while failing, positive while succeeding
    /// (-253..=253).
    #[serde(default)]
    pub weight: i32,
    /// keepalived's `weight N reverse`: failing while the script succeeds.
    #[serde(default)]
    pub reverse: bool,
    /// Successes in a row to come up (default 1).
    #[serde(default = "one")]
    pub rise: u32,
    /// Failures in a row to go down (default 1).
    #[serde(default = "one")]
    pub fall: u32,
    /// Run as this user (`user` or `user:group`); moved into the command.
    #[serde(default, skip_serializing)]
    pub user: Option<String>,
    /// Run through `/bin/sh -c`; moved into the command.
    #[serde(default, skip_serializing)]
    pub shell: bool,
    /// Start failed until the first run succeeds.
    #[serde(default)]
    pub init_fail: bool,
}

/// The state an instance starts in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartState {
    /// Wait for Master_Down_Interval (the default).
    #[default]
    #[serde(rename = "BACKUP", alias = "backup")]
    Backup,
    /// Take over at once.
    #[serde(rename = "MASTER", alias = "master")]
    Master,
}

/// `[instance.NAME]`, keepalived's `vrrp_instance`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// Interface the instance runs on.
    pub interface: String,
    /// Virtual router id, 1..=255.
    #[serde(with = "vrid_serde")]
    pub virtual_router_id: Vrid,
    /// Priority, 1..=255 (255: address owner). Default 100.
    #[serde(default = "default_priority", with = "priority_serde")]
    pub priority: Priority,
    /// Advertisement interval (default 1 s). v2: whole seconds 1..=255;
    /// v3: 10 ms..=40.95 s in steps of 10 ms.
    #[serde(default = "one_second")]
    pub advert_int: Dur,
    /// VRRP version, 2 or 3 (default: `global.vrrp_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u8>,
    /// Start-up state: "BACKUP" (default) or "MASTER".
    #[serde(default)]
    pub state: StartState,
    /// Do not take over from a lower-priority master.
    #[serde(default)]
    pub nopreempt: bool,
    /// Wait this long before preempting a lower-priority master.
    #[serde(default)]
    pub preempt_delay: Dur,
    /// The virtual addresses: `"192.0.2.100/24 dev eth0 label eth0:vip"`
    /// or `{ address = "...", dev = "...", label = "..." }`.
    #[serde(default)]
    pub virtual_ipaddress: Vec<VirtualIp>,
    /// Source address of advertisements (keepalived's `unicast_src_ip`
    /// or `mcast_src_ip`); the interface's address when absent.
    #[serde(
        default,
        alias = "mcast_src_ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub unicast_src_ip: Option<IpAddr>,
    /// Unicast peers; multicast when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peer: Vec<IpAddr>,
    /// VRRPv2 simple-password authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    /// Delay of the second gratuitous ARP burst after becoming master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_delay: Option<Dur>,
    /// Gratuitous ARPs per burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_repeat: Option<u32>,
    /// Period of gratuitous ARP refreshes while master (0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_refresh: Option<Dur>,
    /// Gratuitous ARPs per refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_refresh_repeat: Option<u32>,
    /// Spacing of the packets of one burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_interval: Option<Dur>,
    /// Other interfaces to track: `"eth1"` or `{ name = "eth1", weight = -10 }`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_interface: Vec<TrackRef>,
    /// Scripts to track: `"chk_nginx"` or `{ name = "chk_nginx", weight = 2 }`
    /// (the weight overrides the script's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_script: Vec<TrackRef>,
    /// Files to track: `{ path = "/run/vrrp/down", weight = -50 }`; 0 in
    /// the file is up, anything else down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_file: Vec<TrackFile>,
    /// Run on entering master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<CommandSpec>,
    /// Run on entering backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<CommandSpec>,
    /// Run on entering fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<CommandSpec>,
    /// Run when the instance stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<CommandSpec>,
    /// Run on every change with `INSTANCE name STATE priority` appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<CommandSpec>,
    /// Do not answer a lower-priority advertisement at once (default:
    /// `global.vrrp_lower_prio_no_advert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_prio_no_advert: Option<bool>,
    /// VRRPv3/IPv4 checksum without the pseudo-header (default:
    /// `global.vrrp_v3_checksum_as_v2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_as_v2: Option<bool>,
}

/// `authentication = { auth_type = "PASS", auth_pass = "..." }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Only "PASS" (RFC 3768 simple password); "AH" is refused.
    #[serde(default = "default_auth_type")]
    pub auth_type: String,
    /// At most 8 bytes (keepalived truncates longer ones; we refuse).
    pub auth_pass: String,
}

fn default_auth_type() -> String {
    "PASS".to_owned()
}

/// One virtual address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualIp {
    /// The address.
    pub address: IpAddr,
    /// Prefix length (default /32 or /128).
    pub prefix_len: u8,
    /// Interface to add it to (default: the instance's).
    pub dev: Option<String>,
    /// IPv4 label.
    pub label: Option<String>,
}

impl FromStr for VirtualIp {
    type Err = String;
    /// `ADDR[/LEN] [dev IFNAME] [label LABEL]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split_whitespace();
        let first = words.next().ok_or("empty virtual address")?;
        let (address, prefix_len) = parse_prefix(first)?;
        let mut vip = VirtualIp {
            address,
            prefix_len,
            dev: None,
            label: None,
        };
        while let Some(word) = words.next() {
            let value = words
                .next()
                .ok_or_else(|| format!("`{word}` needs a value in virtual address `{s}`"))?;
            match word {
                "dev" => vip.dev = Some(interface_name("dev", value)?),
                "label" => vip.label = Some(interface_name("label", value)?),
                other => {
                    return Err(format!(
                        "unknown option `{other}` in virtual address `{s}` (known: dev, label)"
                    ));
                }
            }
        }
        Ok(vip)
    }
}

/// Parses `ADDR` or `ADDR/LEN`, checking the length against the family.
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let address: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("prefix length `/{l}` is not valid for {address}"))?,
    };
    Ok((address, prefix_len))
}

impl fmt::Display for VirtualIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)?;
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        if let Some(label) = &self.label {
            write!(f, " label {label}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VirtualIpTable {
    address: String,
    #[serde(default)]
    dev: Option<String>,
    #[serde(default)]
    label: Option<String>,
}

impl TryFrom<VirtualIpTable> for VirtualIp {
    type Error = String;
    fn try_from(t: VirtualIpTable) -> Result<Self, String> {
        let (address, prefix_len) = parse_prefix(&t.address)?;
        Ok(VirtualIp {
            address,
            prefix_len,
            dev: t.dev.map(|d| interface_name("dev", &d)).transpose()?,
            label: t.label.map(|l| interface_name("label", &l)).transpose()?,
        })
    }
}

/// An interface name or address label as the kernel stores them: 1 to 15
/// bytes (IFNAMSIZ - 1), no whitespace (so the string form prints and
/// reads back).
fn interface_name(what: &str, value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 15 || value.contains(char::is_whitespace) {
        return Err(format!(
            "{what} `{value}` must be 1 to 15 bytes without spaces (a kernel interface name or label)"
        ));
    }
    Ok(value.to_owned())
}

/// A tracked interface or script, with an optional weight override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackRef {
    /// Interface or script name.
    pub name: String,
    /// Weight (for scripts: overrides the script's weight).
    pub weight: Option<i32>,
    /// Failing while up (keepalived's `reverse`).
    pub reverse: bool,
}

impl FromStr for TrackRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("empty name".to_owned());
        }
        Ok(TrackRef {
            name: s.to_owned(),
            weight: None,
            reverse: false,
        })
    }
}

/// A tracked file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackFile {
    /// The file: 0 in it is up, anything else (or no file) down.
    pub path: String,
    /// Weight: 0 (default) puts the instance in Fault while down.
    #[serde(default)]
    pub weight: i32,
    /// Failing while up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverse: bool,
}

/// `[sync_group.NAME]`, keepalived's `vrrp_sync_group`: instances that
/// change state together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncGroup {
    /// Member instance names.
    pub group: Vec<String>,
    /// Run when the group enters master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<CommandSpec>,
    /// Run when the group enters backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<CommandSpec>,
    /// Run when the group enters fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<CommandSpec>,
    /// Run when the group stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<CommandSpec>,
    /// Run on every change with `GROUP name STATE priority` appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<CommandSpec>,
}

/// IPVS transport protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4 (default).
    #[default]
    Inet,
    /// IPv6.
    Inet6,
}

/// `[[virtual_server]]`, keepalived's `virtual_server`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualServer {
    /// Virtual address (with `port`), or use `fwmark`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Virtual port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Firewall mark, instead of `ip`/`port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// Family of a firewall-mark service: "inet" (default) or "inet6".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<IpFamily>,
    /// "TCP" (default), "UDP" or "SCTP".
    #[serde(default)]
    pub protocol: VsProtocol,
    /// Default pause between checks (default 60 s).
    #[serde(default = "default_delay_loop")]
    pub delay_loop: Dur,
    /// Scheduler name: rr, wrr, lc, wlc (default), lblc, sh, mh, ...
    #[serde(default = "default_sched", alias = "lvs_sched")]
    pub lb_algo: String,
    /// Forwarding: "NAT" (default), "DR" or "TUN".
    #[serde(default, alias = "lvs_method")]
    pub lb_kind: LbKind,
    /// Persistence timeout; no persistence when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<Dur>,
    /// Persistence granularity as a prefix length or netmask.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "granularity"
    )]
    pub persistence_granularity: Option<u8>,
    /// One-packet scheduling (UDP).
    #[serde(default)]
    pub ops: bool,
    /// Served while quorum is lost: "198.51.100.99:3306" or "198.51.100.99 3306".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "sorry_server"
    )]
    pub sorry_server: Option<SocketAddr>,
    /// Minimum sum of live real servers' weights (default 1).
    #[serde(default = "one")]
    pub quorum: u32,
    /// Hysteresis around the quorum (default 0).
    #[serde(default)]
    pub hysteresis: u32,
    /// Real servers start down until their first successful check.
    #[serde(default)]
    pub alpha: bool,
    /// Emit down notifications on shutdown.
    #[serde(default)]
    pub omega: bool,
    /// Default for real servers: weight 0 instead of removal when down.
    #[serde(default)]
    pub inhibit_on_failure: bool,
    /// Run when quorum is gained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_up: Option<CommandSpec>,
    /// Run when quorum is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_down: Option<CommandSpec>,
    /// Default `Host:` of HTTP checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
    /// The real servers.
    #[serde(default)]
    pub real_server: Vec<RealServer>,
}

/// `[[virtual_server.real_server]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    /// Address.
    pub ip: IpAddr,
    /// Port (default: the virtual server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Weight (default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// Forwarding method override.
    #[serde(default, alias = "lvs_method", skip_serializing_if = "Option::is_none")]
    pub lb_kind: Option<LbKind>,
    /// Weight 0 instead of removal when down (default: the virtual
    /// server's setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibit_on_failure: Option<bool>,
    /// Upper connection threshold (0: none).
    #[serde(default)]
    pub uthreshold: u32,
    /// Lower connection threshold (0: none).
    #[serde(default)]
    pub lthreshold: u32,
    /// Run when it comes up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_up: Option<CommandSpec>,
    /// Run when it goes down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_down: Option<CommandSpec>,
    /// TCP connect checks.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tcp_check: Vec<TcpCheck>,
    /// HTTP GET checks.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub http_get: Vec<HttpCheck>,
    /// HTTPS GET checks.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ssl_get: Vec<HttpCheck>,
    /// Script checks.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub misc_check: Vec<MiscCheck>,
    /// DNS checks.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns_check: Vec<DnsCheck>,
    /// SMTP checks.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub smtp_check: Vec<SmtpCheck>,
    /// ICMP echo checks.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ping_check: Vec<PingCheck>,
    /// UDP checks.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub udp_check: Vec<UdpCheck>,
}

macro_rules! check_struct {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Address to probe (default: the real server's).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub connect_ip: Option<IpAddr>,
            /// Port to probe (default: the real server's).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub connect_port: Option<u16>,
            /// Source address.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub bind_to: Option<IpAddr>,
            /// Time limit of one attempt (default 5 s).
            #[serde(default = "five_seconds")]
            pub connect_timeout: Dur,
            /// Extra attempts before a round fails (default 1).
            #[serde(default = "one", alias = "nb_get_retry")]
            pub retry: u32,
            /// Pause before a retry (default 1 s).
            #[serde(default = "one_second")]
            pub delay_before_retry: Dur,
            /// Pause between rounds (default: the virtual server's `delay_loop`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub delay_loop: Option<Dur>,
            /// Good rounds to come up (default 1).
            #[serde(default = "one")]
            pub rise: u32,
            /// Failed rounds to go down (default 1).
            #[serde(default = "one")]
            pub fall: u32,
            $($(#[$fdoc])* pub $field: $ty,)*
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
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        url: Vec<Url>,
        /// `Host:` header (default: the virtual server's `virtualhost`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        virtualhost: Option<String>,
        /// TLS server name (SSL_GET).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
    }
);

check_struct!(
    /// keepalived's `DNS_CHECK`.
    DnsCheck {
        /// Record type (default "SOA").
        #[serde(default = "default_dns_type", rename = "type")]
        record_type: String,
        /// Name to resolve (default ".").
        #[serde(default = "default_dns_name")]
        name: String,
    }
);

check_struct!(
    /// keepalived's `SMTP_CHECK`.
    SmtpCheck {
        /// HELO name.
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
        /// Payload to send (default: empty).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
        /// An answer is required (default: no ICMP error is enough).
        #[serde(default)]
        require_reply: bool,
    }
);

/// keepalived's `MISC_CHECK`: a program whose exit status is the verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiscCheck {
    /// What to run.
    pub misc_path: CommandSpec,
    /// Its time limit (default 5 s).
    #[serde(default = "five_seconds")]
    pub misc_timeout: Dur,
    /// Exit status 2..=255 sets the weight to status - 2.
    #[serde(default)]
    pub misc_dynamic: bool,
    /// Run as this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Extra attempts before a round fails (default 0).
    #[serde(default)]
    pub retry: u32,
    /// Pause before a retry (default 1 s).
    #[serde(default = "one_second")]
    pub delay_before_retry: Dur,
    /// Pause between rounds (default: the virtual server's `delay_loop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_loop: Option<Dur>,
    /// Good rounds to come up (default 1).
    #[serde(default = "one")]
    pub rise: u32,
    /// Failed rounds to go down (default 1).
    #[serde(default = "one")]
    pub fall: u32,
}

/// One URL of an HTTP check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Url {
    /// Path (default "/").
    #[serde(default = "default_path")]
    pub path: String,
    /// Expected MD5 of the body, 32 hex digits (as `genhash` prints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Expected status: 200, or "200-299", or "200 301-302".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "status_code"
    )]
    pub status_code: Option<String>,
}

fn default_path() -> String {
    "/".to_owned()
}
fn default_dns_type() -> String {
    "SOA".to_owned()
}
fn default_dns_name() -> String {
    ".".to_owned()
}
fn default_sched() -> String {
    "wlc".to_owned()
}
fn default_delay_loop() -> Dur {
    Dur::secs(60)
}
fn default_version() -> u8 {
    2
}
fn default_priority() -> Priority {
    Priority::DEFAULT
}
fn default_garp_delay() -> Dur {
    Dur::secs(5)
}
fn default_garp_repeat() -> u32 {
    5
}
fn default_notify_timeout() -> Dur {
    Dur::secs(30)
}
fn one_second() -> Dur {
    Dur::secs(1)
}
fn five_seconds() -> Dur {
    Dur::secs(5)
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Parses HTTP status ranges: "200", "200-299", "200 301-302".
pub fn parse_status_ranges(s: &str) -> Result<Vec<std::ops::RangeInclusive<u16>>, String> {
    let mut ranges = Vec::new();
    for part in s.split([' ', ',']).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u16 = a.parse().map_err(|_| format!("bad status code `{part}`"))?;
        let b: u16 = b.parse().map_err(|_| format!("bad status code `{part}`"))?;
        if !(100..=999).contains(&a) || !(100..=999).contains(&b) || a > b {
            return Err(format!("bad status code range `{part}` (100..=999)"));
        }
        ranges.push(a..=b);
    }
    if ranges.is_empty() {
        return Err("empty status_code".to_owned());
    }
    Ok(ranges)
}

fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a status code (200) or ranges (\"200-299 301\")")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_status_ranges(v).map_err(E::custom)?;
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
            if let Ok(n) = v.parse::<i64>() {
                return self.visit_i64(n);
            }
            let mask: std::net::Ipv4Addr = v
                .parse()
                .map_err(|_| E::custom(format!("`{v}` is not a netmask")))?;
            let bits = u32::from(mask);
            let len = bits.leading_ones();
            if bits.checked_shl(len).unwrap_or(0) != 0 {
                return Err(E::custom(format!("`{v}` is not a contiguous netmask")));
            }
            Ok(Some(len as u8))
        }
    }
    d.deserialize_any(V)
}

/// Parses "IP:PORT", "[IPv6]:PORT" or keepalived's "IP PORT".
pub fn parse_socket(v: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(a);
    }
    let mut words = v.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(ip), Some(port), None) => {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("`{ip}` is not an IP address"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("`{port}` is not a port"))?;
            Ok(SocketAddr::new(ip, port))
        }
        _ => Err(format!("`{v}` is not \"IP:PORT\" or \"IP PORT\"")),
    }
}

fn sorry_server<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    parse_socket(&s).map(Some).map_err(de::Error::custom)
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

impl<'de> Deserialize<'de> for VirtualIp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table::<D, VirtualIp, VirtualIpTable>(
            d,
            "\"ADDR[/LEN] [dev IF] [label LABEL]\" or { address = ..., dev = ..., label = ... }",
        )
    }
}

impl Serialize for VirtualIp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackRefTable {
    name: String,
    #[serde(default)]
    weight: Option<i32>,
    #[serde(default)]
    reverse: bool,
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
        if self.weight.is_none() && !self.reverse {
            return s.serialize_str(&self.name);
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        if let Some(w) = self.weight {
            map.serialize_entry("weight", &w)?;
        }
        if self.reverse {
            map.serialize_entry("reverse", &true)?;
        }
        map.end()
    }
}

/// A virtual router id, written as an integer 1..=255.
mod vrid_serde {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Vrid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(v.get())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vrid, D::Error> {
        let v = i64::deserialize(d)?;
        u8::try_from(v)
            .ok()
            .and_then(Vrid::new)
            .ok_or_else(|| de::Error::custom(format!("virtual_router_id {v} is out of 1..=255")))
    }
}

/// A configured priority, written as an integer 1..=255.
mod priority_serde {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Priority, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(v.get())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Priority, D::Error> {
        let v = i64::deserialize(d)?;
        u8::try_from(v)
            .ok()
            .and_then(Priority::configured)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "priority {v} is out of 1..=255 (255 only for the address owner)"
                ))
            })
    }
}
