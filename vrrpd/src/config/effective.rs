//! The resolved configuration: every default applied, every value in the
//! type of the crate that uses it (vrrp-core's priorities, VRIDs,
//! intervals and weights, lvs's schedulers, healthcheck's digests and
//! status ranges), users resolved to ids, references checked. Built by
//! [`super::resolve()`]; turned into what the daemon runs by
//! [`crate::plan`]; printed back as TOML (with every default written out)
//! by [`Effective::head_to_raw`] and [`VirtualServer::to_raw`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use vrrp_core::{
    Auth, Centisecs, ChecksumMode, Family, GarpConfig, InitialState, InstanceConfig, Priority,
    Version, VirtualAddress, Vrid, Weight,
};

use super::command::CommandSpec;
use super::duration::Dur;
use super::raw;

pub use raw::{IpFamily, LbKind, LogFormat, StartState, VsProtocol};

/// A whole resolved configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effective {
    /// Routes installed while the daemon runs (`static_routes`).
    pub static_routes: Vec<vrrp_net::route::Route>,
    /// Policy rules installed while the daemon runs (`static_rules`).
    pub static_rules: Vec<vrrp_net::rule::Rule>,
    /// Addresses added while the daemon runs (`static_ipaddress`), each
    /// with its `dev`.
    pub static_addresses: Vec<Vip>,
    /// Node-wide settings.
    pub global: Global,
    /// Tracked scripts by name.
    pub scripts: BTreeMap<String, Script>,
    /// Named tracked files.
    pub track_files: BTreeMap<String, TrackFile>,
    /// Tracked processes by name.
    pub track_processes: BTreeMap<String, TrackProcess>,
    /// VRRP instances by name.
    pub instances: BTreeMap<String, Instance>,
    /// Sync groups by name.
    pub sync_groups: BTreeMap<String, SyncGroup>,
    /// `virtual_server_group`s by name, each entry as keepalived reads it.
    pub virtual_server_groups: BTreeMap<String, Vec<lvs::GroupEntry>>,
    /// IPVS virtual servers, in file order.
    pub virtual_servers: Vec<VirtualServer>,
}

/// Node-wide settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Global {
    /// The node's name, if written.
    pub router_id: Option<String>,
    /// Version of IPv4 instances that do not set one.
    pub vrrp_version: Version,
    /// keepalived's strict mode by default.
    pub vrrp_strict: bool,
    /// Refuse scripts a non-root user could change.
    pub enable_script_security: bool,
    /// Run them anyway.
    pub allow_insecure_scripts: bool,
    /// Default user of scripts.
    pub script_user: Option<User>,
    /// Default of the instances' `checksum_as_v2`.
    pub v3_checksum_as_v2: bool,
    /// Default of the instances' `lower_prio_no_advert`.
    pub lower_prio_no_advert: bool,
    /// Default of the instances' `down_timer_adverts`.
    pub down_timer_adverts: u8,
    /// The accept-mode firewall's nftables settings.
    pub nftables: vrrp_net::firewall::FirewallConfig,
    /// Default of the instances' `garp_extra_if` (interval, all).
    pub garp_extra_if: Option<(Duration, bool)>,
    /// Default gratuitous ARP timing.
    pub garp: GarpConfig,
    /// Longest a notify script may run.
    pub notify_timeout: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Observability listener.
    pub http: Option<SocketAddr>,
    /// Notify FIFOs.
    pub fifos: Fifos,
    /// Alert mail, when `notification_email` and `smtp_server` are set.
    pub smtp: Option<Box<Smtp>>,
    /// `smtp_alert`, `smtp_alert_vrrp`, `smtp_alert_checker` as written
    /// (the defaults of the instances', groups' and servers').
    pub smtp_alert: [Option<bool>; 3],
}

/// keepalived's notify FIFOs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fifos {
    /// `notify_fifo`: every event.
    pub notify: Option<Fifo>,
    /// `vrrp_notify_fifo`: VRRP events.
    pub vrrp: Option<Fifo>,
    /// `lvs_notify_fifo`: IPVS events.
    pub lvs: Option<Fifo>,
}

/// A notify FIFO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fifo {
    /// The FIFO.
    pub path: PathBuf,
    /// Owner of a FIFO vrrpd creates.
    pub owner: Option<User>,
    /// Its reader, started with the FIFO's path appended.
    pub script: Option<Command>,
}

/// Alert mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Smtp {
    /// The relay as written: `HOST`, `HOST PORT` or `HOST:PORT`.
    pub server: String,
    /// HELO name (default: the host's name).
    pub helo_name: Option<String>,
    /// Sender (default: the daemon's user at the host's name).
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Time limit of the connection and each reply.
    pub connect_timeout: Duration,
    /// No mail on Fault.
    pub no_email_faults: bool,
    /// Checker mails only when the real server changes state.
    pub no_checker_emails: bool,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            router_id: None,
            vrrp_version: Version::V2,
            vrrp_strict: false,
            enable_script_security: true,
            allow_insecure_scripts: false,
            script_user: None,
            v3_checksum_as_v2: false,
            lower_prio_no_advert: false,
            down_timer_adverts: 3,
            nftables: vrrp_net::firewall::FirewallConfig::default(),
            garp_extra_if: None,
            garp: GarpConfig::default(),
            notify_timeout: Duration::from_secs(30),
            log_format: LogFormat::Text,
            http: None,
            fifos: Fifos::default(),
            smtp: None,
            smtp_alert: [None; 3],
        }
    }
}

/// A user (and group) scripts run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// As written: `user` or `user:group`.
    pub spec: String,
    /// Its ids on this host; `None` when the user is unknown here (only
    /// when the file was checked for another host).
    pub ids: Option<(u32, Option<u32>)>,
}

/// A program to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Program and arguments; with `shell`, one element holding the line.
    pub argv: Vec<String>,
    /// Run through `/bin/sh -c`.
    pub shell: bool,
    /// Run as this user (the command's own, else `global.script_user`).
    pub user: Option<User>,
    /// The file the program was found to be when the configuration was
    /// checked (a name looked up in PATH, symbolic links resolved), when
    /// that is not how it is written: that file is run, not whatever
    /// PATH or a link leads to later (keepalived pins it the same way).
    pub program: Option<PathBuf>,
}

impl Command {
    fn to_raw(&self) -> CommandSpec {
        CommandSpec {
            command: self.argv.clone(),
            shell: self.shell,
            user: self.user.as_ref().map(|u| u.spec.clone()),
        }
    }
}

/// A `vrrp_script`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// What to run.
    pub command: Command,
    /// Pause between runs.
    pub interval: Duration,
    /// Longest a run may take.
    pub timeout: Duration,
    /// Default weight of the instances that track it.
    pub weight: Weight,
    /// Default `reverse`.
    pub reverse: bool,
    /// Successes in a row to come up.
    pub rise: u32,
    /// Failures in a row to go down.
    pub fall: u32,
    /// Starts failed instead of undecided.
    pub init_fail: bool,
}

/// A named `track_file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFile {
    /// The file.
    pub file: PathBuf,
    /// Default weight of the instances that track it.
    pub weight: Weight,
    /// Default `reverse`.
    pub reverse: bool,
    /// Created with this number at start-up: (value, even if it exists).
    pub init: Option<(i32, bool)>,
}

/// A `vrrp_track_process`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackProcess {
    /// What is counted.
    pub spec: healthcheck::process::ProcessSpec,
    /// Default weight of the instances that track it.
    pub weight: Weight,
    /// Default `reverse`.
    pub reverse: bool,
}

/// A virtual address with where to put it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    /// Address and prefix.
    pub address: VirtualAddress,
    /// Interface (the instance's when `None`).
    pub dev: Option<String>,
    /// IPv4 label.
    pub label: Option<String>,
    /// Scope, broadcast, peer, IPv6 preferred lifetime (keepalived's
    /// defaults applied).
    pub attrs: vrrp_net::addr::AddrAttrs,
    /// keepalived's `no_track`.
    pub no_track: bool,
}

/// An instance's reference to a tracked object, weight resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// Interface or script name.
    pub name: String,
    /// Weight in force.
    pub weight: Weight,
    /// `reverse` in force.
    pub reverse: bool,
}

/// An instance's tracked file, weight resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedFile {
    /// The `[track_file.NAME]`, or `None` for a file written inline.
    pub name: Option<String>,
    /// The file.
    pub path: PathBuf,
    /// Weight in force: multiplies the file's number (0: Fault unless 0).
    pub weight: Weight,
    /// Negates the product.
    pub reverse: bool,
}

/// Notify scripts of an instance or sync group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// On entering master.
    pub master: Option<Command>,
    /// On entering backup.
    pub backup: Option<Command>,
    /// On entering fault.
    pub fault: Option<Command>,
    /// On stopping.
    pub stop: Option<Command>,
    /// On every change, with `INSTANCE|GROUP name STATE priority`.
    pub generic: Option<Command>,
}

/// A VRRP instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Its interface.
    pub interface: String,
    /// Virtual router id.
    pub vrid: Vrid,
    /// Base priority.
    pub priority: Priority,
    /// Advertisement interval.
    pub advert_int: Centisecs,
    /// Protocol version.
    pub version: Version,
    /// The configured start state (see [`Instance::initial_state`]).
    pub state: StartState,
    /// No preemption of a lower-priority master.
    pub nopreempt: bool,
    /// Delay before preempting.
    pub preempt_delay: Duration,
    /// keepalived's strict mode.
    pub strict: bool,
    /// Virtual addresses.
    pub vips: Vec<Vip>,
    /// Source address of advertisements, if set.
    pub unicast_src_ip: Option<IpAddr>,
    /// Unicast peers (multicast when empty).
    pub unicast_peer: Vec<IpAddr>,
    /// VRRPv2 simple password.
    pub auth_pass: Option<String>,
    /// Gratuitous ARP / NA timing.
    pub garp: GarpConfig,
    /// Tracked interfaces.
    pub track_interface: Vec<Tracked>,
    /// Tracked scripts (names of [`Effective::scripts`]).
    pub track_script: Vec<Tracked>,
    /// Tracked files.
    pub track_file: Vec<TrackedFile>,
    /// Tracked processes (names of [`Effective::track_processes`]).
    pub track_process: Vec<Tracked>,
    /// Notify scripts.
    pub notify: Notify,
    /// Do not answer lower-priority adverts at once.
    pub lower_prio_no_advert: bool,
    /// VRRPv3/IPv4 checksum without the pseudo-header.
    pub checksum_as_v2: bool,
    /// Mail on state changes.
    pub smtp_alert: bool,
    /// keepalived's `use_vmac` (and `vmac_xmit_base`).
    pub vmac: Option<Vmac>,
    /// Advertisement intervals before a backup takes over.
    pub down_timer_adverts: u8,
    /// Own interface down is not a fault.
    pub dont_track_primary: bool,
    /// keepalived's `promote_secondaries`.
    pub promote_secondaries: bool,
    /// RFC 5798 Accept_Mode (off: the firewall blocks the virtual
    /// addresses while master).
    pub accept: bool,
    /// keepalived's `garp_extra_if` (interval, all); zero interval: off.
    pub garp_extra_if: Option<(Duration, bool)>,
    /// Routes installed while Master (`virtual_routes`).
    pub routes: Vec<vrrp_net::route::Route>,
    /// Virtual addresses exported as host routes while Master.
    pub export_routes: Option<super::routes::Export>,
    /// Policy rules installed while Master (`virtual_rules`).
    pub rules: Vec<vrrp_net::rule::Rule>,
    /// Addresses kept out of the advertisements
    /// (`virtual_ipaddress_excluded`).
    pub excluded: Vec<Vip>,
}

/// A virtual MAC interface (keepalived's `use_vmac`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vmac {
    /// The macvlan's name.
    pub name: String,
    /// Advertise on the base interface (`vmac_xmit_base`).
    pub xmit_base: bool,
}

impl Instance {
    /// The address family: that of the first virtual address, else of the
    /// source address, else of the first peer, else IPv4.
    pub fn family(&self) -> Family {
        family_of(
            self.vips.first().map(|v| v.address.addr),
            self.unicast_src_ip,
            self.unicast_peer.first().copied(),
        )
    }

    /// keepalived 2.2.7 takes over at start-up only as the address owner;
    /// a `state MASTER` below 255 starts as backup like any other
    /// (`vrrp_init_state`: "Entering BACKUP STATE (init)").
    pub fn initial_state(&self) -> InitialState {
        InitialState::Backup
    }

    /// The engine's configuration of this instance: what
    /// [`InstanceConfig::validate_all`] checks and what the driver runs.
    /// An unset source address is the family's unspecified address (the
    /// driver fills in the interface's).
    pub fn core_config(&self) -> InstanceConfig {
        let primary = self.unicast_src_ip.unwrap_or(match self.family() {
            Family::Ipv6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        });
        let mut c = InstanceConfig::new(self.vrid, self.version, primary);
        c.priority = self.priority;
        c.advert_interval = self.advert_int;
        c.preempt = !self.nopreempt;
        c.preempt_delay = self.preempt_delay;
        c.virtual_addresses = self.vips.iter().map(|v| v.address).collect();
        c.auth = self
            .auth_pass
            .as_deref()
            .and_then(|p| Auth::password(p.as_bytes()))
            .unwrap_or(Auth::None);
        c.unicast_peers = self.unicast_peer.clone();
        c.initial_state = self.initial_state();
        c.garp = self.garp;
        c.checksum_mode = if self.checksum_as_v2 {
            ChecksumMode::V3WithoutPseudoHeader
        } else {
            ChecksumMode::Rfc
        };
        c.lower_prio_no_advert = self.lower_prio_no_advert;
        c.down_timer_adverts = self.down_timer_adverts;
        c
    }
}

/// The family of the first of these addresses that is set (IPv4 if none).
pub fn family_of(a: Option<IpAddr>, b: Option<IpAddr>, c: Option<IpAddr>) -> Family {
    a.or(b).or(c).map_or(Family::Ipv4, |x| Family::of(&x))
}

/// A sync group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroup {
    /// Member instances.
    pub members: Vec<String>,
    /// Whether members' weights apply.
    pub tracking_weight: bool,
    /// Notify scripts.
    pub notify: Notify,
    /// Mail on state changes.
    pub smtp_alert: bool,
}

/// What an IPVS service is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceAddr {
    /// Protocol, address and port.
    Socket(VsProtocol, SocketAddr),
    /// Firewall mark and family.
    Fwmark(u32, IpFamily),
}

impl ServiceAddr {
    /// The service of an IPVS key (`None` for a protocol vrrpd does not
    /// configure).
    pub fn from_key(key: lvs::ServiceKey) -> Option<Self> {
        Some(match key {
            lvs::ServiceKey::Socket { protocol, addr } => {
                let p = match protocol {
                    lvs::Protocol::Tcp => VsProtocol::Tcp,
                    lvs::Protocol::Udp => VsProtocol::Udp,
                    lvs::Protocol::Sctp => VsProtocol::Sctp,
                    _ => return None,
                };
                ServiceAddr::Socket(p, addr)
            }
            lvs::ServiceKey::Fwmark { family, mark } => ServiceAddr::Fwmark(
                mark,
                match family {
                    lvs::AddressFamily::Ipv6 => IpFamily::Inet6,
                    _ => IpFamily::Inet,
                },
            ),
            _ => return None,
        })
    }

    /// Whether the service is IPv6.
    pub fn is_ipv6(&self) -> bool {
        match self {
            ServiceAddr::Socket(_, a) => a.is_ipv6(),
            ServiceAddr::Fwmark(_, f) => *f == IpFamily::Inet6,
        }
    }
}

impl std::fmt::Display for ServiceAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceAddr::Socket(p, a) => write!(f, "{p:?}/{a}"),
            ServiceAddr::Fwmark(m, fam) => write!(f, "fwmark {m} ({fam:?})"),
        }
    }
}

/// The services of a virtual server written with `group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsGroup {
    /// The `[virtual_server_group]` name.
    pub name: String,
    /// keepalived's number of this virtual server among those using the
    /// group (from 0, in file order): its `[NAME]:N` in notify FIFOs and
    /// alerts.
    pub member: usize,
    /// Family of the group's firewall marks written without one.
    pub fwmark_family: IpFamily,
    /// Every service, in keepalived's order (address entries, then marks).
    pub services: Vec<ServiceAddr>,
}

/// A virtual server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServer {
    /// The service (a group's first).
    pub service: ServiceAddr,
    /// Written with `group`: all its services.
    pub group: Option<Box<VsGroup>>,
    /// Default pause between checks.
    pub delay_loop: Duration,
    /// Default check time limit, if written here.
    pub connect_timeout: Option<Duration>,
    /// Default retries, if written here.
    pub retry: Option<u32>,
    /// Default pause before a retry, if written here.
    pub delay_before_retry: Option<Duration>,
    /// Scheduler.
    pub scheduler: lvs::Scheduler,
    /// Forwarding method.
    pub lb_kind: LbKind,
    /// Persistence timeout and granularity.
    pub persistence: Option<(Duration, Option<u8>)>,
    /// One-packet scheduling.
    pub ops: bool,
    /// Served while quorum is lost.
    pub sorry_server: Option<SocketAddr>,
    /// Quorum.
    pub quorum: u32,
    /// Hysteresis.
    pub hysteresis: u32,
    /// Real servers start down.
    pub alpha: bool,
    /// Down notifications on shutdown.
    pub omega: bool,
    /// Default `inhibit_on_failure`.
    pub inhibit_on_failure: bool,
    /// Quorum scripts.
    pub quorum_up: Option<Command>,
    /// Quorum scripts.
    pub quorum_down: Option<Command>,
    /// Default `Host:` of HTTP checks.
    pub virtualhost: Option<String>,
    /// Mail on quorum changes.
    pub smtp_alert: bool,
    /// Each service address as a host route while its quorum is up.
    pub export_routes: Option<super::routes::Export>,
    /// Real servers.
    pub real_servers: Vec<RealServer>,
}

/// A real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServer {
    /// Address and port (port 0 for a fwmark service without one).
    pub addr: SocketAddr,
    /// IPVS weight.
    pub weight: u32,
    /// Forwarding method.
    pub lb_kind: LbKind,
    /// Weight 0 instead of removal when down.
    pub inhibit_on_failure: bool,
    /// Connection thresholds (upper, lower).
    pub thresholds: (u32, u32),
    /// Starts down until its checks pass.
    pub alpha: bool,
    /// Up/down scripts, rarely set.
    pub notify: Option<Box<(Option<Command>, Option<Command>)>>,
    /// Mail when a check changes state.
    pub smtp_alert: bool,
    /// Checks; up while all pass.
    pub checks: Vec<Check>,
}

/// When and how often a check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckTiming {
    /// Pause between rounds.
    pub delay_loop: Duration,
    /// Time limit of an attempt.
    pub timeout: Duration,
    /// Extra attempts per round.
    pub retry: u32,
    /// Pause before a retry.
    pub delay_before_retry: Duration,
    /// Good rounds to come up.
    pub rise: u32,
    /// Failed rounds to go down.
    pub fall: u32,
}

/// One health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// When.
    pub timing: CheckTiming,
    /// What.
    pub kind: CheckKind,
}

/// Where a check's packets come from: keepalived's `bindto`, `bind_port`
/// and `bind_if`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    /// Source address.
    pub address: Option<IpAddr>,
    /// Source port.
    pub port: Option<u16>,
    /// Interface.
    pub interface: Option<String>,
}

/// What a check probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// TCP connect.
    Tcp {
        /// Where.
        target: SocketAddr,
        /// From.
        source: Box<Source>,
    },
    /// HTTP(S) GET.
    Http(Box<HttpCheck>),
    /// A program.
    Misc(Box<MiscCheck>),
    /// DNS query.
    Dns(Box<DnsCheck>),
    /// SMTP dialogue.
    Smtp(Box<SmtpCheck>),
    /// ICMP echo.
    Ping {
        /// Where.
        target: IpAddr,
        /// From.
        source: Box<Source>,
    },
    /// UDP datagram.
    Udp(Box<UdpCheck>),
}

/// An HTTP or HTTPS check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// HTTPS.
    pub tls: bool,
    /// Where.
    pub target: SocketAddr,
    /// From.
    pub source: Source,
    /// URLs, all must pass.
    pub urls: Vec<UrlCheck>,
    /// `Host:`.
    pub virtualhost: Option<String>,
    /// TLS server name.
    pub sni: Option<String>,
    /// Whether the name goes in the TLS handshake (`None`: when there is
    /// one).
    pub enable_sni: Option<bool>,
}

/// One URL of an HTTP check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlCheck {
    /// Path.
    pub path: String,
    /// Expected body digest.
    pub digest: Option<healthcheck::Md5Digest>,
    /// Expected status codes: as written, and parsed.
    pub status: Option<(String, healthcheck::StatusRanges)>,
    /// A regular expression the body must (or must not) match.
    pub regex: Option<healthcheck::BodyRegex>,
}

/// A `MISC_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiscCheck {
    /// What to run.
    pub command: Command,
    /// Exit status 2..=255 sets the weight.
    pub dynamic: bool,
}

/// A `DNS_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsCheck {
    /// Server.
    pub target: SocketAddr,
    /// From.
    pub source: Source,
    /// Record type.
    pub record_type: String,
    /// Name.
    pub name: String,
}

/// An `SMTP_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpCheck {
    /// Server.
    pub target: SocketAddr,
    /// From.
    pub source: Source,
    /// HELO name.
    pub helo_name: Option<String>,
}

/// A `UDP_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpCheck {
    /// Where.
    pub target: SocketAddr,
    /// From.
    pub source: Source,
    /// Datagram.
    pub payload: Vec<u8>,
    /// Silence counts as down.
    pub require_reply: bool,
    /// The answer must start with these bytes.
    pub reply: Option<Vec<u8>>,
}

/// Lower-case hexadecimal, as keepalived writes payloads.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dur(d: Duration) -> Option<Dur> {
    Some(Dur(d))
}

impl Effective {
    /// The configuration but its virtual servers (see
    /// [`VirtualServer::to_raw`]) as TOML writes it, every default written
    /// out; it loads back to the same [`Effective`].
    pub fn head_to_raw(&self) -> raw::Config {
        raw::Config {
            static_routes: self.static_routes.iter().map(ToString::to_string).collect(),
            static_rules: self.static_rules.iter().map(ToString::to_string).collect(),
            static_ipaddress: self
                .static_addresses
                .iter()
                .map(super::resolve::vip::vip_to_raw)
                .collect(),
            global: self.global.to_raw(),
            script: self
                .scripts
                .iter()
                .map(|(n, s)| (n.clone(), s.to_raw()))
                .collect(),
            track_file: self
                .track_files
                .iter()
                .map(|(n, t)| (n.clone(), t.to_raw()))
                .collect(),
            track_process: self
                .track_processes
                .iter()
                .map(|(n, t)| (n.clone(), t.to_raw()))
                .collect(),
            instance: self
                .instances
                .iter()
                .map(|(n, i)| (n.clone(), i.to_raw()))
                .collect(),
            sync_group: self
                .sync_groups
                .iter()
                .map(|(n, g)| (n.clone(), g.to_raw()))
                .collect(),
            virtual_server_group: self
                .virtual_server_groups
                .iter()
                .map(|(n, entries)| (n.clone(), entries.iter().map(ToString::to_string).collect()))
                .collect(),
            virtual_server: Vec::new(),
        }
    }
}

impl Global {
    fn to_raw(&self) -> raw::Global {
        raw::Global {
            router_id: self.router_id.clone(),
            vrrp_version: Some(self.vrrp_version.number()),
            vrrp_strict: Some(self.vrrp_strict),
            enable_script_security: Some(self.enable_script_security),
            allow_insecure_scripts: Some(self.allow_insecure_scripts),
            script_user: self.script_user.as_ref().map(|u| u.spec.clone()),
            vrrp_v3_checksum_as_v2: Some(self.v3_checksum_as_v2),
            vrrp_lower_prio_no_advert: Some(self.lower_prio_no_advert),
            vrrp_garp_master_delay: dur(self.garp.master_delay),
            vrrp_garp_master_repeat: Some(self.garp.master_repeat),
            vrrp_garp_master_refresh: dur(self.garp.master_refresh.unwrap_or_default()),
            vrrp_garp_master_refresh_repeat: Some(self.garp.refresh_repeat),
            vrrp_garp_interval: dur(self.garp.interval),
            vrrp_garp_lower_prio_delay: dur(self.garp.lower_prio_delay),
            vrrp_garp_lower_prio_repeat: Some(self.garp.lower_prio_repeat),
            vrrp_down_timer_adverts: Some(self.down_timer_adverts),
            vrrp_garp_extra_if: self.garp_extra_if.map(|(d, _)| Dur(d)),
            vrrp_garp_extra_if_all: self.garp_extra_if.map(|(_, all)| all),
            nftables: Some(self.nftables.table.clone()),
            nftables_priority: Some(self.nftables.priority),
            nftables_counters: Some(self.nftables.counters),
            nftables_ifindex: Some(self.nftables.ifindex),
            notify_timeout: dur(self.notify_timeout),
            log_format: Some(self.log_format),
            http: self.http.map(|listen| raw::Http {
                listen: Some(listen),
            }),
            notify_fifo: self.fifos.notify.as_ref().map(Fifo::to_raw),
            notify_fifo_script: self.fifos.notify.as_ref().and_then(Fifo::script_raw),
            vrrp_notify_fifo: self.fifos.vrrp.as_ref().map(Fifo::to_raw),
            vrrp_notify_fifo_script: self.fifos.vrrp.as_ref().and_then(Fifo::script_raw),
            lvs_notify_fifo: self.fifos.lvs.as_ref().map(Fifo::to_raw),
            lvs_notify_fifo_script: self.fifos.lvs.as_ref().and_then(Fifo::script_raw),
            notification_email: self.smtp.as_ref().map(|m| m.to.clone()).unwrap_or_default(),
            notification_email_from: self.smtp.as_ref().and_then(|m| m.from.clone()),
            smtp_server: self.smtp.as_ref().map(|m| m.server.clone()),
            smtp_helo_name: self.smtp.as_ref().and_then(|m| m.helo_name.clone()),
            smtp_connect_timeout: self.smtp.as_ref().map(|m| Dur(m.connect_timeout)),
            smtp_alert: self.smtp_alert[0],
            smtp_alert_vrrp: self.smtp_alert[1],
            smtp_alert_checker: self.smtp_alert[2],
            no_email_faults: self.smtp.as_ref().map(|m| m.no_email_faults),
            no_checker_emails: self.smtp.as_ref().map(|m| m.no_checker_emails),
        }
    }
}

impl Fifo {
    fn to_raw(&self) -> raw::Fifo {
        raw::Fifo {
            path: self.path.display().to_string(),
            user: self.owner.as_ref().map(|u| u.spec.clone()),
        }
    }

    fn script_raw(&self) -> Option<CommandSpec> {
        self.script.as_ref().map(Command::to_raw)
    }
}

impl Script {
    fn to_raw(&self) -> raw::Script {
        raw::Script {
            command: Some(self.command.to_raw()),
            interval: dur(self.interval),
            timeout: dur(self.timeout),
            weight: Some(self.weight.get()),
            reverse: Some(self.reverse),
            rise: Some(self.rise),
            fall: Some(self.fall),
            user: None,
            shell: None,
            init_fail: Some(self.init_fail),
        }
    }
}

impl TrackFile {
    fn to_raw(&self) -> raw::TrackFile {
        raw::TrackFile {
            file: Some(self.file.display().to_string()),
            weight: Some(self.weight.get()),
            reverse: Some(self.reverse),
            init_file: self.init.map(|(v, _)| v),
            init_overwrite: self.init.map(|(_, o)| o),
        }
    }
}

impl TrackProcess {
    fn to_raw(&self) -> raw::TrackProcess {
        use healthcheck::process::ParamMatch as P;
        let s = &self.spec;
        let delay = |d: Duration| (!d.is_zero()).then_some(Dur(d));
        raw::TrackProcess {
            process: Some(s.process.clone()),
            params: s.params.clone(),
            param_match: match s.param_match {
                P::Exact => Some(raw::ParamMatch::Exact),
                P::Partial => Some(raw::ParamMatch::Partial),
                P::Initial => Some(raw::ParamMatch::Initial),
                _ => None,
            },
            full_command: Some(s.full_command),
            weight: Some(self.weight.get()),
            reverse: Some(self.reverse),
            quorum: Some(s.quorum),
            quorum_max: (s.quorum_max != u32::MAX).then_some(s.quorum_max),
            delay: None,
            fork_delay: delay(s.fork_delay),
            terminate_delay: delay(s.terminate_delay),
        }
    }
}

fn tracked_to_raw(t: &Tracked) -> raw::TrackRef {
    raw::TrackRef {
        name: t.name.clone(),
        weight: Some(t.weight.get()),
        reverse: Some(t.reverse),
    }
}

impl Notify {
    fn parts(&self) -> [Option<CommandSpec>; 5] {
        [
            self.master.as_ref().map(Command::to_raw),
            self.backup.as_ref().map(Command::to_raw),
            self.fault.as_ref().map(Command::to_raw),
            self.stop.as_ref().map(Command::to_raw),
            self.generic.as_ref().map(Command::to_raw),
        ]
    }
}

impl Instance {
    fn to_raw(&self) -> raw::Instance {
        let [
            notify_master,
            notify_backup,
            notify_fault,
            notify_stop,
            notify,
        ] = self.notify.parts();
        raw::Instance {
            interface: Some(self.interface.clone()),
            virtual_router_id: Some(self.vrid),
            priority: Some(self.priority),
            advert_int: dur(self.advert_int.as_duration()),
            version: Some(self.version.number()),
            state: Some(self.state),
            nopreempt: Some(self.nopreempt),
            preempt_delay: dur(self.preempt_delay),
            strict_mode: Some(self.strict),
            virtual_ipaddress: self
                .vips
                .iter()
                .map(super::resolve::vip::vip_to_raw)
                .collect(),
            unicast_src_ip: self.unicast_src_ip,
            unicast_peer: self.unicast_peer.clone(),
            authentication: self.auth_pass.as_ref().map(|p| raw::Authentication {
                auth_type: Some("PASS".to_owned()),
                auth_pass: Some(p.clone()),
            }),
            garp_master_delay: dur(self.garp.master_delay),
            garp_master_repeat: Some(self.garp.master_repeat),
            garp_master_refresh: dur(self.garp.master_refresh.unwrap_or_default()),
            garp_master_refresh_repeat: Some(self.garp.refresh_repeat),
            garp_interval: dur(self.garp.interval),
            garp_lower_prio_repeat: Some(self.garp.lower_prio_repeat),
            garp_lower_prio_delay: dur(self.garp.lower_prio_delay),
            down_timer_adverts: Some(self.down_timer_adverts),
            track_interface: self.track_interface.iter().map(tracked_to_raw).collect(),
            track_script: self.track_script.iter().map(tracked_to_raw).collect(),
            track_process: self.track_process.iter().map(tracked_to_raw).collect(),
            track_file: self
                .track_file
                .iter()
                .map(|t| raw::TrackFileRef {
                    path: t.name.is_none().then(|| t.path.display().to_string()),
                    name: t.name.clone(),
                    weight: Some(t.weight.get()),
                    reverse: Some(t.reverse),
                })
                .collect(),
            notify_master,
            notify_backup,
            notify_fault,
            notify_stop,
            notify,
            lower_prio_no_advert: Some(self.lower_prio_no_advert),
            checksum_as_v2: Some(self.checksum_as_v2),
            smtp_alert: Some(self.smtp_alert),
            use_vmac: Some(match &self.vmac {
                Some(v) => raw::UseVmac::Named(v.name.clone()),
                None => raw::UseVmac::On(false),
            }),
            vmac_xmit_base: Some(self.vmac.as_ref().is_some_and(|v| v.xmit_base)),
            dont_track_primary: Some(self.dont_track_primary),
            promote_secondaries: Some(self.promote_secondaries),
            accept: Some(self.accept),
            garp_extra_if: self.garp_extra_if.map(|(d, _)| Dur(d)),
            garp_extra_if_all: self.garp_extra_if.map(|(_, all)| all),
            virtual_routes: self.routes.iter().map(ToString::to_string).collect(),
            export_routes: self.export_routes.map(super::routes::Export::to_raw),
            virtual_rules: self.rules.iter().map(ToString::to_string).collect(),
            virtual_ipaddress_excluded: self
                .excluded
                .iter()
                .map(super::resolve::vip::vip_to_raw)
                .collect(),
        }
    }
}

impl SyncGroup {
    fn to_raw(&self) -> raw::SyncGroup {
        let [
            notify_master,
            notify_backup,
            notify_fault,
            notify_stop,
            notify,
        ] = self.notify.parts();
        raw::SyncGroup {
            group: self.members.clone(),
            sync_group_tracking_weight: Some(self.tracking_weight),
            notify_master,
            notify_backup,
            notify_fault,
            notify_stop,
            notify,
            smtp_alert: Some(self.smtp_alert),
        }
    }
}

impl VirtualServer {
    /// This virtual server as TOML with every default written out.
    pub fn to_raw(&self) -> raw::VirtualServer {
        let (ip, port, fwmark, mut family, mut protocol) = match self.service {
            ServiceAddr::Socket(p, a) => (Some(a.ip()), Some(a.port()), None, None, Some(p)),
            ServiceAddr::Fwmark(m, f) => (None, None, Some(m), Some(f), None),
        };
        let (ip, port, fwmark, group) = match &self.group {
            None => (ip, port, fwmark, None),
            Some(g) => {
                protocol = g.services.iter().find_map(|s| match s {
                    ServiceAddr::Socket(p, _) => Some(*p),
                    ServiceAddr::Fwmark(..) => None,
                });
                family = Some(g.fwmark_family);
                (None, None, None, Some(g.name.clone()))
            }
        };
        raw::VirtualServer {
            ip,
            port,
            fwmark,
            group,
            family,
            protocol,
            delay_loop: dur(self.delay_loop),
            connect_timeout: self.connect_timeout.map(Dur),
            retry: self.retry,
            delay_before_retry: self.delay_before_retry.map(Dur),
            lb_algo: Some(self.scheduler.name().to_owned()),
            lb_kind: Some(self.lb_kind),
            persistence_timeout: self.persistence.map(|(t, _)| Dur(t)),
            persistence_granularity: self.persistence.and_then(|(_, g)| g),
            ops: Some(self.ops),
            sorry_server: self.sorry_server.map(|s| s.to_string()),
            quorum: Some(self.quorum),
            hysteresis: Some(self.hysteresis),
            alpha: Some(self.alpha),
            omega: Some(self.omega),
            inhibit_on_failure: Some(self.inhibit_on_failure),
            quorum_up: self.quorum_up.as_ref().map(Command::to_raw),
            quorum_down: self.quorum_down.as_ref().map(Command::to_raw),
            virtualhost: self.virtualhost.clone(),
            smtp_alert: Some(self.smtp_alert),
            export_routes: self.export_routes.map(super::routes::Export::to_raw),
            real_server: self.real_servers.iter().map(RealServer::to_raw).collect(),
        }
    }
}

impl RealServer {
    fn to_raw(&self) -> raw::RealServer {
        let mut r = raw::RealServer::new(self.addr.ip());
        r.port = Some(self.addr.port());
        r.weight = Some(self.weight);
        r.lb_kind = Some(self.lb_kind);
        r.inhibit_on_failure = Some(self.inhibit_on_failure);
        r.uthreshold = Some(self.thresholds.0);
        r.lthreshold = Some(self.thresholds.1);
        r.alpha = Some(self.alpha);
        r.smtp_alert = Some(self.smtp_alert);
        if let Some(n) = &self.notify {
            r.notify_up = n.0.as_ref().map(Command::to_raw);
            r.notify_down = n.1.as_ref().map(Command::to_raw);
        }
        for check in &self.checks {
            check.push_raw(&mut r);
        }
        r
    }
}

impl CheckTiming {
    fn to_raw(self) -> raw::Schedule {
        raw::Schedule {
            retry: Some(self.retry),
            delay_before_retry: dur(self.delay_before_retry),
            delay_loop: dur(self.delay_loop),
            rise: Some(self.rise),
            fall: Some(self.fall),
        }
    }
}

fn connect(target: SocketAddr, source: &Source, timeout: Duration) -> raw::Connect {
    raw::Connect {
        connect_ip: Some(target.ip()),
        connect_port: Some(target.port()),
        bind_to: source.address,
        bind_port: source.port,
        bind_if: source.interface.clone(),
        connect_timeout: dur(timeout),
    }
}

impl Check {
    fn push_raw(&self, r: &mut raw::RealServer) {
        let schedule = self.timing.to_raw();
        let timeout = self.timing.timeout;
        match &self.kind {
            CheckKind::Tcp { target, source } => {
                let mut c = raw::TcpCheck::default();
                c.set_connect(connect(*target, source, timeout));
                c.set_schedule(schedule);
                r.tcp_check.push(c);
            }
            CheckKind::Http(h) => {
                let mut c = raw::HttpCheck {
                    url: h
                        .urls
                        .iter()
                        .map(|u| raw::Url {
                            path: Some(u.path.clone()),
                            digest: u.digest.map(|d| d.to_string()),
                            status_code: u.status.as_ref().map(|(text, _)| text.clone()),
                            regex: u.regex.as_ref().map(|r| r.pattern.clone()),
                            regex_no_match: u.regex.as_ref().map(|r| r.no_match),
                            regex_options: u.regex.as_ref().map_or_else(Vec::new, |r| {
                                r.options.names().into_iter().map(str::to_owned).collect()
                            }),
                            regex_min_offset: u
                                .regex
                                .as_ref()
                                .map(|r| r.min_offset)
                                .filter(|o| *o > 0),
                            regex_max_offset: u.regex.as_ref().and_then(|r| r.max_offset),
                        })
                        .collect(),
                    virtualhost: h.virtualhost.clone(),
                    sni: h.sni.clone(),
                    enable_sni: h.enable_sni,
                    ..Default::default()
                };
                c.set_connect(connect(h.target, &h.source, timeout));
                c.set_schedule(schedule);
                if h.tls {
                    r.ssl_get.push(c);
                } else {
                    r.http_get.push(c);
                }
            }
            CheckKind::Misc(m) => {
                let mut c = raw::MiscCheck {
                    misc_path: Some(m.command.to_raw()),
                    misc_timeout: dur(timeout),
                    misc_dynamic: Some(m.dynamic),
                    ..Default::default()
                };
                c.set_schedule(schedule);
                r.misc_check.push(c);
            }
            CheckKind::Dns(d) => {
                let mut c = raw::DnsCheck {
                    record_type: Some(d.record_type.clone()),
                    name: Some(d.name.clone()),
                    ..Default::default()
                };
                c.set_connect(connect(d.target, &d.source, timeout));
                c.set_schedule(schedule);
                r.dns_check.push(c);
            }
            CheckKind::Smtp(s) => {
                let mut c = raw::SmtpCheck {
                    helo_name: s.helo_name.clone(),
                    ..Default::default()
                };
                c.set_connect(connect(s.target, &s.source, timeout));
                c.set_schedule(schedule);
                r.smtp_check.push(c);
            }
            CheckKind::Ping { target, source } => {
                let mut c = raw::PingCheck::default();
                c.set_connect(raw::Connect {
                    connect_ip: Some(*target),
                    connect_port: None,
                    bind_to: source.address,
                    bind_port: None,
                    bind_if: source.interface.clone(),
                    connect_timeout: dur(timeout),
                });
                c.set_schedule(schedule);
                r.ping_check.push(c);
            }
            CheckKind::Udp(u) => {
                let mut c = raw::UdpCheck {
                    payload: Some(to_hex(&u.payload)),
                    require_reply: Some(u.require_reply),
                    reply: u.reply.as_deref().map(to_hex),
                    ..Default::default()
                };
                c.set_connect(connect(u.target, &u.source, timeout));
                c.set_schedule(schedule);
                r.udp_check.push(c);
            }
        }
    }
}
