//! From a validated [`Config`] to what the crates run: the VRRP driver's
//! [`DriverConfig`], IPVS [`lvs::VirtualServer`]s and health checks.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use vrrp_core::{
    Auth, Centisecs, ChecksumMode, Family, GarpConfig, InitialState, InstanceConfig, TrackConfig,
    TrackId, Version, VirtualAddress,
};
use vrrp_net::driver::{DriverConfig, InstanceSpec, Vip};

use super::schema::{
    Config, HttpCheck, Instance, IpFamily, LbKind, RealServer, StartState, VirtualServer,
    VsProtocol,
};
use super::validate::{instance_family, resolve_user};

/// What a [`TrackId`] handed to the driver stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracked {
    /// A `[script.NAME]`.
    Script(String),
    /// A tracked file, by path.
    File(String),
}

/// The tracked objects the driver knows by id: scripts and files. Ids are
/// derived from the names, so an unchanged script keeps its id across
/// reloads and unchanged instances compare equal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracking {
    /// Script name to id.
    pub scripts: BTreeMap<String, TrackId>,
    /// File path to id.
    pub files: BTreeMap<String, TrackId>,
}

impl Tracking {
    /// What `id` stands for.
    pub fn get(&self, id: TrackId) -> Option<Tracked> {
        self.scripts
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| Tracked::Script(k.clone()))
            .or_else(|| {
                self.files
                    .iter()
                    .find(|(_, v)| **v == id)
                    .map(|(k, _)| Tracked::File(k.clone()))
            })
    }

    fn build(config: &Config) -> Tracking {
        let mut used = std::collections::BTreeSet::new();
        let mut alloc = |label: &str| {
            // Any u32: the driver keeps callers' ids apart from interfaces.
            let mut id = fnv1a(label.as_bytes());
            while !used.insert(id) {
                id = id.wrapping_add(1);
            }
            TrackId(id)
        };
        let mut t = Tracking::default();
        for name in config.script.keys() {
            t.scripts
                .insert(name.clone(), alloc(&format!("script\0{name}")));
        }
        let mut files: Vec<&str> = config
            .instance
            .values()
            .flat_map(|i| i.track_file.iter().map(|f| f.path.as_str()))
            .collect();
        files.sort_unstable();
        files.dedup();
        for path in files {
            t.files
                .insert(path.to_owned(), alloc(&format!("file\0{path}")));
        }
        t
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Parses an MD5 digest written as 32 hex digits.
pub(crate) fn parse_digest(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// One health check of a real server, as data: what to probe, when and
/// how, before it becomes a `healthcheck::CheckSpec`.
#[derive(Clone, Debug)]
pub struct CheckDef {
    /// The virtual service.
    pub service: lvs::ServiceKey,
    /// The real server.
    pub server: SocketAddr,
    /// The check, ready for the healthcheck runner.
    pub spec: healthcheck::CheckSpec,
}

impl Config {
    /// The effective configuration as TOML (every default filled in).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print configuration: {e}\n"))
    }

    /// The VRRP instances and sync groups for the driver, with the table
    /// of tracked scripts and files behind the [`TrackId`]s it uses.
    pub fn driver_config(&self) -> (DriverConfig, Tracking) {
        let tracking = Tracking::build(self);
        let instances = self
            .instance
            .iter()
            .map(|(name, inst)| instance_spec(self, name, inst, &tracking))
            .collect();
        let sync_groups = self.sync_group.values().map(|g| g.group.clone()).collect();
        (
            DriverConfig {
                instances,
                sync_groups,
                ..DriverConfig::default()
            },
            tracking,
        )
    }

    /// The IPVS virtual servers, for `lvs::LoadBalancer::new`.
    pub fn virtual_servers(&self) -> Vec<lvs::VirtualServer> {
        self.virtual_server.iter().map(lvs_virtual_server).collect()
    }

    /// The health checks of every real server of every virtual server.
    pub fn real_server_checks(&self) -> Vec<CheckDef> {
        let mut out = Vec::new();
        for vs in &self.virtual_server {
            let service = service_key(vs);
            for rs in &vs.real_server {
                let server = rs_addr(rs);
                for spec in checks_of(self, vs, rs) {
                    out.push(CheckDef {
                        service,
                        server,
                        spec,
                    });
                }
            }
        }
        out
    }
}

fn instance_spec(
    config: &Config,
    name: &str,
    inst: &Instance,
    tracking: &Tracking,
) -> InstanceSpec {
    let family = instance_family(inst);
    let version = if inst.version == Some(3) {
        Version::V3
    } else {
        Version::V2
    };
    let primary = inst.unicast_src_ip.unwrap_or(match family {
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    let mut c = InstanceConfig::new(inst.virtual_router_id, version, primary);
    c.priority = inst.priority;
    c.advert_interval =
        Centisecs::from_duration(inst.advert_int.get()).unwrap_or(Centisecs::ONE_SECOND);
    c.preempt = !inst.nopreempt;
    c.preempt_delay = inst.preempt_delay.get();
    c.virtual_addresses = inst
        .virtual_ipaddress
        .iter()
        .map(|v| VirtualAddress {
            addr: v.address,
            prefix_len: v.prefix_len,
        })
        .collect();
    c.auth = inst
        .authentication
        .as_ref()
        .and_then(|a| Auth::password(a.auth_pass.as_bytes()))
        .unwrap_or(Auth::None);
    c.unicast_peers = inst.unicast_peer.clone();
    c.initial_state = match inst.state {
        StartState::Master => InitialState::Master,
        StartState::Backup => InitialState::Backup,
    };
    let refresh = inst.garp_master_refresh.unwrap_or_default().get();
    c.garp = GarpConfig {
        master_repeat: inst.garp_master_repeat.unwrap_or(5),
        master_delay: inst.garp_master_delay.unwrap_or_default().get(),
        master_refresh: (!refresh.is_zero()).then_some(refresh),
        refresh_repeat: inst.garp_master_refresh_repeat.unwrap_or(1),
        interval: inst.garp_interval.unwrap_or_default().get(),
        ..GarpConfig::default()
    };
    c.checksum_mode = if inst.checksum_as_v2 == Some(true) {
        ChecksumMode::V3WithoutPseudoHeader
    } else {
        ChecksumMode::Rfc
    };
    c.lower_prio_no_advert = inst.lower_prio_no_advert.unwrap_or(false);

    let mut spec = InstanceSpec::new(name, inst.interface.clone(), c);
    spec.vips = inst
        .virtual_ipaddress
        .iter()
        .map(|v| Vip {
            address: VirtualAddress {
                addr: v.address,
                prefix_len: v.prefix_len,
            },
            device: v.dev.clone(),
            label: v.label.clone(),
        })
        .collect();
    spec.track_interfaces = inst
        .track_interface
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TrackConfig {
                    weight: t.weight.unwrap_or(0),
                    reverse: t.reverse,
                },
            )
        })
        .collect();
    for t in &inst.track_script {
        if let (Some(script), Some(id)) =
            (config.script.get(&t.name), tracking.scripts.get(&t.name))
        {
            let cfg = TrackConfig {
                weight: t.weight.unwrap_or(script.weight),
                reverse: t.reverse != script.reverse,
            };
            spec.tracks.push((*id, cfg, !script.init_fail));
        }
    }
    for f in &inst.track_file {
        if let Some(id) = tracking.files.get(&f.path) {
            let cfg = TrackConfig {
                weight: f.weight,
                reverse: f.reverse,
            };
            spec.tracks.push((*id, cfg, true));
        }
    }
    spec
}

fn service_key(vs: &VirtualServer) -> lvs::ServiceKey {
    match (vs.ip, vs.port, vs.fwmark) {
        (_, _, Some(mark)) => {
            let family = match vs.family.unwrap_or_default() {
                IpFamily::Inet => lvs::AddressFamily::Ipv4,
                IpFamily::Inet6 => lvs::AddressFamily::Ipv6,
            };
            lvs::ServiceKey::fwmark(family, mark)
        }
        (ip, port, None) => {
            let addr = SocketAddr::new(
                ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                port.unwrap_or(0),
            );
            match vs.protocol {
                VsProtocol::Tcp => lvs::ServiceKey::tcp(addr),
                VsProtocol::Udp => lvs::ServiceKey::udp(addr),
                VsProtocol::Sctp => lvs::ServiceKey::sctp(addr),
            }
        }
    }
}

fn forward(kind: LbKind) -> lvs::ForwardMethod {
    match kind {
        LbKind::Nat => lvs::ForwardMethod::Masquerade,
        LbKind::Dr => lvs::ForwardMethod::Route,
        LbKind::Tun => lvs::ForwardMethod::Tunnel,
    }
}

fn rs_addr(rs: &RealServer) -> SocketAddr {
    SocketAddr::new(rs.ip, rs.port.unwrap_or(0))
}

fn lvs_virtual_server(vs: &VirtualServer) -> lvs::VirtualServer {
    let scheduler = lvs::Scheduler::new(vs.lb_algo.clone()).unwrap_or(lvs::Scheduler::WLC);
    let mut service = lvs::Service::new(service_key(vs), scheduler);
    if let Some(t) = vs.persistence_timeout {
        let mut p = lvs::Persistence::new(t.get());
        p.prefix_len = vs.persistence_granularity;
        service = service.with_persistence(p);
    }
    if vs.ops {
        service = service.with_flags(lvs::ServiceFlags::ONE_PACKET);
    }
    let mut out = lvs::VirtualServer::new(service).with_quorum(vs.quorum, vs.hysteresis);
    out.alpha = vs.alpha;
    out.omega = vs.omega;
    out.sorry_server = vs
        .sorry_server
        .map(|addr| lvs::Destination::new(addr, forward(vs.lb_kind)));
    for rs in &vs.real_server {
        let dest = lvs::Destination::new(rs_addr(rs), forward(rs.lb_kind.unwrap_or(vs.lb_kind)))
            .with_weight(rs.weight)
            .with_thresholds(rs.uthreshold, rs.lthreshold);
        let mut server = lvs::RealServer::new(dest);
        server.inhibit_on_failure = rs.inhibit_on_failure.unwrap_or(vs.inhibit_on_failure);
        out = out.with_real_server(server);
    }
    out
}

/// The scheduling fields every check kind has (keepalived's names).
trait CheckTiming {
    fn delay_loop(&self) -> Option<super::Dur>;
    fn timeout(&self) -> super::Dur;
    fn retry(&self) -> u32;
    fn delay_before_retry(&self) -> super::Dur;
    fn rise(&self) -> u32;
    fn fall(&self) -> u32;
}

macro_rules! check_timing {
    ($timeout:ident: $($ty:ty),*) => {$(
        impl CheckTiming for $ty {
            fn delay_loop(&self) -> Option<super::Dur> { self.delay_loop }
            fn timeout(&self) -> super::Dur { self.$timeout }
            fn retry(&self) -> u32 { self.retry }
            fn delay_before_retry(&self) -> super::Dur { self.delay_before_retry }
            fn rise(&self) -> u32 { self.rise }
            fn fall(&self) -> u32 { self.fall }
        }
    )*};
}

check_timing!(connect_timeout: super::schema::TcpCheck, HttpCheck, super::schema::DnsCheck, super::schema::SmtpCheck, super::schema::PingCheck, super::schema::UdpCheck);
check_timing!(misc_timeout: super::schema::MiscCheck);

fn target(rs: &RealServer, ip: Option<IpAddr>, port: Option<u16>) -> SocketAddr {
    SocketAddr::new(ip.unwrap_or(rs.ip), port.or(rs.port).unwrap_or(0))
}

fn checks_of(config: &Config, vs: &VirtualServer, rs: &RealServer) -> Vec<healthcheck::CheckSpec> {
    use healthcheck::{CheckSpec, Health, Probe, Timing};
    let rs_name = rs_addr(rs).to_string();
    let initial = if vs.alpha { Health::Down } else { Health::Up };
    let timing = |c: &dyn CheckTiming| {
        let mut t = Timing::every(c.delay_loop().unwrap_or(vs.delay_loop).get());
        t.timeout = c.timeout().get();
        t.retry = c.retry();
        t.delay_before_retry = c.delay_before_retry().get();
        t.rise = c.rise().max(1);
        t.fall = c.fall().max(1);
        t.initial = initial;
        t
    };
    let mut out = Vec::new();
    for c in &rs.tcp_check {
        let mut p = healthcheck::TcpCheck::new(target(rs, c.connect_ip, c.connect_port));
        p.bind = c.bind_to;
        p.connect_timeout = Some(c.connect_timeout.get());
        out.push(CheckSpec {
            name: format!("{rs_name} tcp"),
            probe: Probe::Tcp(p),
            timing: timing(c),
        });
    }
    for (tls, list) in [(false, &rs.http_get), (true, &rs.ssl_get)] {
        for c in list {
            for p in http_probes(rs, c, tls) {
                out.push(CheckSpec {
                    name: format!(
                        "{rs_name} {}{}",
                        if tls { "https " } else { "http " },
                        p.path
                    ),
                    probe: Probe::Http(p),
                    timing: timing(c),
                });
            }
        }
    }
    for c in &rs.misc_check {
        let user = c
            .misc_path
            .user
            .as_deref()
            .or(c.user.as_deref())
            .or(config.global.script_user.as_deref());
        let ids = user.and_then(resolve_user);
        let mut p = if c.misc_path.shell {
            healthcheck::ScriptCheck::shell(c.misc_path.command.join(" "))
        } else {
            let mut words = c.misc_path.command.iter();
            let program = words.next().cloned().unwrap_or_default();
            healthcheck::ScriptCheck::new(program, words.cloned())
        };
        p.dynamic_weight = c.misc_dynamic;
        p.uid = ids.map(|(u, _)| u);
        p.gid = ids.and_then(|(_, g)| g);
        out.push(CheckSpec {
            name: format!("{rs_name} misc"),
            probe: Probe::Script(p),
            timing: timing(c),
        });
    }
    for c in &rs.dns_check {
        let mut server = target(rs, c.connect_ip, c.connect_port);
        if server.port() == 0 {
            server.set_port(53);
        }
        let mut p = healthcheck::DnsCheck::new(server, c.name.clone());
        p.record_type.clone_from(&c.record_type);
        p.bind = c.bind_to.map(|ip| SocketAddr::new(ip, 0));
        out.push(CheckSpec {
            name: format!("{rs_name} dns"),
            probe: Probe::Dns(p),
            timing: timing(c),
        });
    }
    for c in &rs.smtp_check {
        let mut p = healthcheck::SmtpCheck::new(target(rs, c.connect_ip, c.connect_port));
        p.bind = c.bind_to;
        p.connect_timeout = Some(c.connect_timeout.get());
        p.helo_name.clone_from(&c.helo_name);
        out.push(CheckSpec {
            name: format!("{rs_name} smtp"),
            probe: Probe::Smtp(p),
            timing: timing(c),
        });
    }
    for c in &rs.ping_check {
        let mut p = healthcheck::IcmpCheck::new(c.connect_ip.unwrap_or(rs.ip));
        p.source = c.bind_to;
        out.push(CheckSpec {
            name: format!("{rs_name} ping"),
            probe: Probe::Icmp(p),
            timing: timing(c),
        });
    }
    for c in &rs.udp_check {
        let mut p = healthcheck::UdpCheck::new(target(rs, c.connect_ip, c.connect_port));
        p.bind = c.bind_to;
        p.payload = c.payload.clone().unwrap_or_default().into_bytes();
        p.require_reply = c.require_reply;
        out.push(CheckSpec {
            name: format!("{rs_name} udp"),
            probe: Probe::Udp(p),
            timing: timing(c),
        });
    }
    out
}

fn http_probes(rs: &RealServer, c: &HttpCheck, tls: bool) -> Vec<healthcheck::HttpCheck> {
    let default_url = [super::schema::Url {
        path: "/".to_owned(),
        digest: None,
        status_code: None,
    }];
    let urls: &[super::schema::Url] = if c.url.is_empty() {
        &default_url
    } else {
        &c.url
    };
    urls.iter()
        .map(|u| {
            let mut p = healthcheck::HttpCheck::new(target(rs, c.connect_ip, c.connect_port));
            p.bind = c.bind_to;
            p.connect_timeout = Some(c.connect_timeout.get());
            p.path.clone_from(&u.path);
            p.virtual_host.clone_from(&c.virtualhost);
            if let Some(ranges) = u
                .status_code
                .as_deref()
                .and_then(|s| super::schema::parse_status_ranges(s).ok())
                .and_then(|r| healthcheck::StatusRanges::new(r).ok())
            {
                p.status = ranges;
            }
            p.digest = u
                .digest
                .as_deref()
                .and_then(parse_digest)
                .map(healthcheck::Md5Digest::from_bytes);
            if tls {
                let mut t = healthcheck::TlsOptions::insecure();
                t.sni.clone_from(&c.sni);
                p.tls = Some(t);
            }
            p
        })
        .collect()
}
