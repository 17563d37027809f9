//! From the resolved configuration ([`Effective`]) to what the daemon
//! runs ([`Plan`]): the vrrp-net driver's instances and tracked objects,
//! the IPVS tables and the health checks. Pure and infallible: every
//! check, lookup and default happened in [`crate::config`]. This is the
//! only module that builds vrrp-net, vrrp-core, lvs and healthcheck
//! runtime values from the configuration.

use std::net::SocketAddr;

use healthcheck::{CheckSpec, Health, Probe, Timing};
use vrrp_core::{TrackConfig, TrackId, Weight};
use vrrp_net::driver::{DriverConfig, INTERFACE_TRACK_BASE, InstanceSpec, Vip};

use crate::config::{
    Check, CheckKind, Command as ConfigCommand, Effective, Instance, LbKind,
    Notify as ConfigNotify, ServiceAddr, VirtualServer, VsProtocol,
};
use crate::run::plan::{
    Command, GroupPlan, Notify, Plan, RealServerCheck, RealServerPlan, TrackFile, TrackScript,
    VirtualServerPlan,
};

/// Everything the daemon runs.
pub fn plan(config: &Effective) -> Plan {
    let ids = Ids;
    let mut files: Vec<TrackFile> = Vec::new();
    let instances = config
        .instances
        .iter()
        .map(|(name, inst)| instance_spec(config, name, inst, &ids, &mut files))
        .collect();
    let driver = DriverConfig {
        instances,
        sync_groups: config
            .sync_groups
            .values()
            .map(|g| g.members.clone())
            .collect(),
    };
    let instance_notify = config
        .instances
        .iter()
        .map(|(name, i)| (name.clone(), notify(&i.notify)))
        .collect();
    let groups = config
        .sync_groups
        .iter()
        .map(|(name, g)| GroupPlan {
            name: name.clone(),
            members: g.members.clone(),
            notify: notify(&g.notify),
        })
        .collect();
    let scripts = config
        .scripts
        .iter()
        .map(|(name, s)| TrackScript {
            id: ids.script(name),
            name: name.clone(),
            command: command(&s.command),
            interval: s.interval,
            timeout: s.timeout,
            rise: s.rise,
            fall: s.fall,
            init_fail: s.init_fail,
        })
        .collect();
    let virtual_servers = config.virtual_servers.iter().map(virtual_server).collect();
    Plan {
        driver,
        notify: instance_notify,
        groups,
        scripts,
        files,
        virtual_servers,
        http: config.global.http,
        notify_timeout: config.global.notify_timeout,
    }
}

fn command(c: &ConfigCommand) -> Command {
    let ids = c.user.as_ref().and_then(|u| u.ids);
    Command {
        argv: c.argv.clone(),
        shell: c.shell,
        uid: ids.map(|(u, _)| u),
        gid: ids.and_then(|(_, g)| g),
    }
}

fn notify(n: &ConfigNotify) -> Notify {
    Notify {
        master: n.master.as_ref().map(command),
        backup: n.backup.as_ref().map(command),
        fault: n.fault.as_ref().map(command),
        stop: n.stop.as_ref().map(command),
        generic: n.generic.as_ref().map(command),
    }
}

/// Tracked-object ids the driver knows scripts and file bits by: derived
/// from names, so an unchanged script keeps its id across reloads and
/// unchanged instances compare equal. Below the driver's interface range.
struct Ids;

impl Ids {
    fn of(label: &str) -> TrackId {
        TrackId(fnv1a(label.as_bytes()) % INTERFACE_TRACK_BASE)
    }

    fn script(&self, name: &str) -> TrackId {
        Self::of(&format!("script\0{name}"))
    }

    fn file_bit(&self, instance: &str, n: usize, path: &str, bit: &str) -> TrackId {
        Self::of(&format!("file\0{instance}\0{n}\0{path}\0{bit}"))
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

/// keepalived's `weight W reverse` negates the contribution of the
/// object (`weight -10 reverse`: +10 while failing); vrrp-core's
/// `reverse` inverts its state. The same contributions in vrrp-core's
/// terms: the weight negated, and `reverse`.
fn track_config(weight: Weight, reverse: bool) -> TrackConfig {
    if reverse {
        TrackConfig {
            weight: -weight.get(),
            reverse: true,
        }
    } else {
        TrackConfig::weight(weight.get())
    }
}

/// The state that makes a tracked object contribute nothing: keepalived's
/// scripts before their first result move no priority, and those of
/// weight 0 hold the instance in Fault ("Entering FAULT STATE (init)").
fn undecided(c: TrackConfig) -> bool {
    if c.weight < 0 { !c.reverse } else { c.reverse }
}

fn instance_spec(
    config: &Effective,
    name: &str,
    inst: &Instance,
    ids: &Ids,
    files: &mut Vec<TrackFile>,
) -> InstanceSpec {
    let mut spec = InstanceSpec::new(name, inst.interface.clone(), inst.core_config());
    spec.vips = inst
        .vips
        .iter()
        .map(|v| Vip {
            address: v.address,
            device: v.dev.clone(),
            label: v.label.clone(),
        })
        .collect();
    spec.track_interfaces = inst
        .track_interface
        .iter()
        .map(|t| (t.name.clone(), track_config(t.weight, t.reverse)))
        .collect();
    for t in &inst.track_script {
        let Some(script) = config.scripts.get(&t.name) else {
            continue;
        };
        let cfg = track_config(t.weight, t.reverse);
        let up = if script.init_fail {
            // keepalived's `init_fail`: failed until `rise` runs succeed.
            false
        } else {
            undecided(cfg)
        };
        spec.tracks.push((ids.script(&t.name), cfg, up));
    }
    for (n, f) in inst.track_file.iter().enumerate() {
        let path = f.path.display().to_string();
        let bit = |b: &str| ids.file_bit(name, n, &path, b);
        let use_ = FileUse {
            weight: f.weight.get(),
            reverse: f.reverse,
            fault: bit("fault"),
            up: std::array::from_fn(|k| bit(&format!("+{k}"))),
            down: std::array::from_fn(|k| bit(&format!("-{k}"))),
        };
        // Every bit at rest: no contribution, no fault, until the file is
        // read at start-up.
        spec.tracks.push((use_.fault, TrackConfig::weight(0), true));
        for (k, id) in use_.up.iter().enumerate() {
            spec.tracks.push((*id, TrackConfig::weight(1 << k), false));
        }
        for (k, id) in use_.down.iter().enumerate() {
            spec.tracks
                .push((*id, TrackConfig::weight(-(1 << k)), true));
        }
        let init = f
            .name
            .as_ref()
            .and_then(|n| config.track_files.get(n))
            .and_then(|t| t.init);
        match files.iter_mut().find(|t| t.path == f.path) {
            Some(t) => {
                t.uses.push(use_);
                t.init = t.init.or(init);
            }
            None => files.push(TrackFile {
                path: f.path.clone(),
                init,
                uses: vec![use_],
            }),
        }
    }
    spec
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

/// keepalived's reading of a tracked file: `strtol(buf, NULL, 0)` of its
/// first 127 bytes (decimal, 0x hexadecimal or 0 octal, leading blanks and
/// a sign allowed, trailing text ignored); missing, empty or no number is
/// 0. `None` for a number out of the 32-bit range, which keepalived
/// ignores (the previous value stays).
pub fn read_track_file_value(bytes: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(127)]);
    let s = text.trim_start();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(rest) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
        && rest.chars().next().is_some_and(|c| c.is_ascii_hexdigit())
    {
        (16, rest)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let mut value: i64 = 0;
    for c in digits[..end].chars() {
        let d = i64::from(c.to_digit(radix).unwrap_or(0));
        value = value.saturating_mul(i64::from(radix)).saturating_add(d);
    }
    if negative {
        value = -value;
    }
    (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1)
        .contains(&value)
        .then_some(value)
}

fn service_key(service: ServiceAddr) -> lvs::ServiceKey {
    match service {
        ServiceAddr::Fwmark(mark, family) => {
            let family = match family {
                crate::config::IpFamily::Inet => lvs::AddressFamily::Ipv4,
                crate::config::IpFamily::Inet6 => lvs::AddressFamily::Ipv6,
            };
            lvs::ServiceKey::fwmark(family, mark)
        }
        ServiceAddr::Socket(protocol, addr) => match protocol {
            VsProtocol::Tcp => lvs::ServiceKey::tcp(addr),
            VsProtocol::Udp => lvs::ServiceKey::udp(addr),
            VsProtocol::Sctp => lvs::ServiceKey::sctp(addr),
        },
    }
}

fn forward(kind: LbKind) -> lvs::ForwardMethod {
    match kind {
        LbKind::Nat => lvs::ForwardMethod::Masquerade,
        LbKind::Dr => lvs::ForwardMethod::Route,
        LbKind::Tun => lvs::ForwardMethod::Tunnel,
    }
}

fn virtual_server(vs: &VirtualServer) -> VirtualServerPlan {
    let mut service = lvs::Service::new(service_key(vs.service), vs.scheduler.clone());
    if let Some((timeout, granularity)) = vs.persistence {
        let mut p = lvs::Persistence::new(timeout);
        p.prefix_len = granularity;
        service = service.with_persistence(p);
    }
    if vs.ops {
        service = service.with_flags(lvs::ServiceFlags::ONE_PACKET);
    }
    let mut server = lvs::VirtualServer::new(service).with_quorum(vs.quorum, vs.hysteresis);
    server.alpha = vs.alpha;
    server.omega = vs.omega;
    server.sorry_server = vs
        .sorry_server
        .map(|addr| lvs::Destination::new(addr, forward(vs.lb_kind)));
    let mut real_servers = Vec::with_capacity(vs.real_servers.len());
    for rs in &vs.real_servers {
        let dest = lvs::Destination::new(rs.addr, forward(rs.lb_kind))
            .with_weight(rs.weight)
            .with_thresholds(rs.thresholds.0, rs.thresholds.1);
        let mut lrs = lvs::RealServer::new(dest);
        lrs.inhibit_on_failure = rs.inhibit_on_failure;
        server = server.with_real_server(lrs);
        let initial = if rs.alpha { Health::Down } else { Health::Up };
        let checks = rs
            .checks
            .iter()
            .flat_map(|c| check_specs(rs.addr, c, initial))
            .map(|spec| RealServerCheck { spec })
            .collect();
        let (notify_up, notify_down) = match &rs.notify {
            Some(n) => (n.0.as_ref().map(command), n.1.as_ref().map(command)),
            None => (None, None),
        };
        real_servers.push(RealServerPlan {
            addr: rs.addr,
            checks,
            notify_up,
            notify_down,
        });
    }
    VirtualServerPlan {
        server,
        real_servers,
        quorum_up: vs.quorum_up.as_ref().map(command),
        quorum_down: vs.quorum_down.as_ref().map(command),
    }
}

fn check_specs(rs: SocketAddr, c: &Check, initial: Health) -> Vec<CheckSpec> {
    let mut timing = Timing::every(c.timing.delay_loop);
    timing.timeout = c.timing.timeout;
    timing.retry = c.timing.retry;
    timing.delay_before_retry = c.timing.delay_before_retry;
    timing.rise = c.timing.rise.max(1);
    timing.fall = c.timing.fall.max(1);
    timing.initial = initial;
    let spec = |name: String, probe: Probe| CheckSpec {
        name,
        probe,
        timing: timing.clone(),
    };
    match &c.kind {
        CheckKind::Tcp { target, bind } => {
            let mut p = healthcheck::TcpCheck::new(*target);
            p.bind = *bind;
            p.connect_timeout = Some(c.timing.timeout);
            vec![spec(format!("{rs} tcp"), Probe::Tcp(p))]
        }
        CheckKind::Http(h) => h
            .urls
            .iter()
            .map(|u| {
                let mut p = healthcheck::HttpCheck::new(h.target);
                p.bind = h.bind;
                p.connect_timeout = Some(c.timing.timeout);
                p.path.clone_from(&u.path);
                p.virtual_host.clone_from(&h.virtualhost);
                if let Some((_, ranges)) = &u.status {
                    p.status = ranges.clone();
                }
                p.digest = u.digest.clone();
                if h.tls {
                    let mut t = healthcheck::TlsOptions::insecure();
                    t.sni.clone_from(&h.sni);
                    p.tls = Some(t);
                }
                let scheme = if h.tls { "https" } else { "http" };
                spec(format!("{rs} {scheme} {}", u.path), Probe::Http(p))
            })
            .collect(),
        CheckKind::Misc(m) => {
            let cmd = command(&m.command);
            let mut p = crate::run::exec::script(&cmd, &[]);
            p.dynamic_weight = m.dynamic;
            vec![spec(format!("{rs} misc"), Probe::Script(p))]
        }
        CheckKind::Dns(d) => {
            let mut p = healthcheck::DnsCheck::new(d.target, d.name.clone());
            p.record_type.clone_from(&d.record_type);
            p.bind = d.bind.map(|ip| SocketAddr::new(ip, 0));
            vec![spec(format!("{rs} dns"), Probe::Dns(p))]
        }
        CheckKind::Smtp(s) => {
            let mut p = healthcheck::SmtpCheck::new(s.target);
            p.bind = s.bind;
            p.connect_timeout = Some(c.timing.timeout);
            p.helo_name.clone_from(&s.helo_name);
            vec![spec(format!("{rs} smtp"), Probe::Smtp(p))]
        }
        CheckKind::Ping { target, bind } => {
            let mut p = healthcheck::IcmpCheck::new(*target);
            p.source = *bind;
            vec![spec(format!("{rs} ping"), Probe::Icmp(p))]
        }
        CheckKind::Udp(u) => {
            let mut p = healthcheck::UdpCheck::new(u.target);
            p.bind = u.bind;
            p.payload.clone_from(&u.payload);
            p.require_reply = u.require_reply;
            p.expected_prefix.clone_from(&u.reply);
            vec![spec(format!("{rs} udp"), Probe::Udp(p))]
        }
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

    #[test]
    fn track_files_read_like_strtol() {
        for (text, want) in [
            ("", Some(0)),
            ("\n", Some(0)),
            ("0\n", Some(0)),
            ("  42 trailing", Some(42)),
            ("-7", Some(-7)),
            ("0x1f", Some(31)),
            ("010", Some(8)),
            ("abc", Some(0)),
            ("99999999999", None),
            ("2147483648", Some(2_147_483_648)),
        ] {
            assert_eq!(read_track_file_value(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn reverse_negates_the_contribution_like_keepalived() {
        // keepalived: weight -10 reverse adds +10 while failing, 0 while OK.
        let c = track_config(Weight::new(-10).expect("weight"), true);
        let delta = |up: bool| {
            let failing = up == c.reverse;
            match (failing, c.weight) {
                (true, w) if w < 0 => w,
                (false, w) if w > 0 => w,
                _ => 0,
            }
        };
        assert_eq!(delta(true), 0);
        assert_eq!(delta(false), 10);
        assert_eq!(delta(undecided(c)), 0);
        for w in [-5, 0, 5] {
            for r in [false, true] {
                let c = track_config(Weight::new(w).expect("weight"), r);
                let failing = undecided(c) == c.reverse;
                if w == 0 {
                    assert!(failing, "weight 0 starts in fault");
                } else {
                    let d = match (failing, c.weight) {
                        (true, w) if w < 0 => w,
                        (false, w) if w > 0 => w,
                        _ => 0,
                    };
                    assert_eq!(d, 0, "{w} {r}");
                }
            }
        }
    }
}
