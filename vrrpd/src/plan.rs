//! From the resolved configuration ([`Effective`]) to what the daemon
//! runs ([`Plan`]): the vrrp-net driver's instances and tracked objects,
//! the IPVS tables and the health checks. Pure and infallible: every
//! check, lookup and default happened in [`crate::config`]. This is the
//! only module that builds vrrp-net, vrrp-core, lvs and healthcheck
//! runtime values from the configuration.

use std::net::SocketAddr;

use healthcheck::{CheckSpec, Health, Probe, Timing};
use vrrp_core::{TrackConfig, TrackId, Weight};
use vrrp_net::driver::{DriverConfig, InstanceSpec, Vip};

use crate::config::{
    Check, CheckKind, Command as ConfigCommand, Effective, Instance, LbKind,
    Notify as ConfigNotify, ServiceAddr, VirtualServer, VsProtocol,
};
use crate::run::plan::{
    AlertPlan, Command, FifoPlan, FileUse, GroupPlan, Notify, Plan, RealServerSpec, RsNotify,
    SmtpPlan, TrackFile, TrackProcessPlan, TrackScript, VirtualServerSpec, VsNotify,
    checker_bodies,
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
        static_routes: config.static_routes.clone(),
        static_rules: config.static_rules.clone(),
        static_addresses: config
            .static_addresses
            .iter()
            .map(|v| Vip {
                address: v.address,
                device: v.dev.clone(),
                label: v.label.clone(),
                excluded: false,
                attrs: v.attrs,
                no_track: v.no_track,
            })
            .collect(),
        firewall: config.global.nftables.clone(),
        ..DriverConfig::default()
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
    let processes = config
        .track_processes
        .iter()
        .map(|(name, p)| TrackProcessPlan {
            id: ids.process(name),
            spec: p.spec.clone(),
        })
        .collect();
    let (virtual_servers, vs_notify) = config
        .virtual_servers
        .iter()
        .flat_map(virtual_servers)
        .unzip();
    Plan {
        router_id: config.global.router_id.clone(),
        driver,
        notify: instance_notify,
        groups,
        scripts,
        files,
        processes,
        virtual_servers,
        http: config.global.http,
        notify_timeout: config.global.notify_timeout,
        alerts: alerts(config),
        vs_notify,
        vs_routes: config.virtual_servers.iter().flat_map(vs_routes).collect(),
    }
}

/// The host routes of a virtual server with `export_routes`: one per
/// service address (a firewall mark has none), out of `lo`, where the
/// address a balancer serves is local.
fn vs_routes(vs: &VirtualServer) -> Vec<(lvs::ServiceKey, vrrp_net::route::Route)> {
    let Some(export) = vs.export_routes else {
        return Vec::new();
    };
    let services = vs
        .group
        .as_ref()
        .map_or(std::slice::from_ref(&vs.service), |g| &g.services[..]);
    services
        .iter()
        .filter_map(|s| match s {
            ServiceAddr::Socket(_, addr) => Some((service_key(*s), export.route(addr.ip(), "lo"))),
            ServiceAddr::Fwmark(..) => None,
        })
        .collect()
}

/// keepalived's local name: the host name (its `get_local_name`).
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The FIFOs (each path once: a VRRP and an LVS FIFO may be one) and the
/// mail settings, with keepalived's defaults for what is not written (the
/// sender is the daemon's user at the host's name, HELO the host's name).
fn alerts(config: &Effective) -> AlertPlan {
    let g = &config.global;
    let mut fifos: Vec<FifoPlan> = Vec::new();
    for (fifo, vrrp, lvs) in [
        (&g.fifos.notify, true, true),
        (&g.fifos.vrrp, true, false),
        (&g.fifos.lvs, false, true),
    ] {
        let Some(f) = fifo else { continue };
        if let Some(same) = fifos.iter_mut().find(|p| p.path == f.path) {
            same.vrrp |= vrrp;
            same.lvs |= lvs;
            if same.script.is_none() {
                same.script = f.script.as_ref().map(command);
            }
            continue;
        }
        fifos.push(FifoPlan {
            path: f.path.clone(),
            owner: f.owner.as_ref().and_then(|u| u.ids),
            script: f.script.as_ref().map(command),
            vrrp,
            lvs,
        });
    }
    let smtp = g.smtp.as_ref().map(|m| {
        let host = host_name();
        let server =
            crate::config::parse_host_port(&m.server, 25).unwrap_or((m.server.clone(), 25));
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map_or_else(|| "root".to_owned(), |u| u.name);
        SmtpPlan {
            server,
            helo: m.helo_name.clone().unwrap_or_else(|| host.clone()),
            from: m.from.clone().unwrap_or_else(|| format!("{user}@{host}")),
            to: m.to.clone(),
            timeout: m.connect_timeout,
            no_email_faults: m.no_email_faults,
            no_checker_emails: m.no_checker_emails,
        }
    });
    AlertPlan {
        fifos,
        instances: config
            .instances
            .iter()
            .filter(|(_, i)| i.smtp_alert && smtp.is_some())
            .map(|(n, _)| n.clone())
            .collect(),
        groups: config
            .sync_groups
            .iter()
            .filter(|(_, g)| g.smtp_alert && smtp.is_some())
            .map(|(n, _)| n.clone())
            .collect(),
        smtp,
    }
}

fn protocol_word(service: ServiceAddr) -> &'static str {
    match service {
        ServiceAddr::Socket(VsProtocol::Tcp, _) => "tcp",
        ServiceAddr::Socket(VsProtocol::Udp, _) => "udp",
        ServiceAddr::Socket(VsProtocol::Sctp, _) => "sctp",
        ServiceAddr::Fwmark(..) => "none",
    }
}

/// keepalived's `FMT_VS`: `[192.0.2.1]:tcp:80`, `FWM 5`, or `[GROUP]:N`
/// for the Nth virtual server using a group.
pub fn vs_label(vs: &VirtualServer) -> String {
    if let Some(g) = &vs.group {
        return format!("[{}]:{}", g.name, g.member);
    }
    match vs.service {
        ServiceAddr::Fwmark(mark, _) => format!("FWM {mark}"),
        ServiceAddr::Socket(_, a) => {
            format!("[{}]:{}:{}", a.ip(), protocol_word(vs.service), a.port())
        }
    }
}

/// keepalived's `FMT_RS`: the real server with its virtual server's
/// protocol (`none` for firewall marks).
pub fn rs_label(vs: &VirtualServer, addr: SocketAddr) -> String {
    let protocol = match &vs.group {
        Some(g) => g
            .services
            .iter()
            .find(|s| matches!(s, ServiceAddr::Socket(..)))
            .map_or("none", |s| protocol_word(*s)),
        None => protocol_word(vs.service),
    };
    format!("[{}]:{protocol}:{}", addr.ip(), addr.port())
}

fn command(c: &ConfigCommand) -> Command {
    let ids = c.user.as_ref().and_then(|u| u.ids);
    let mut argv = c.argv.clone();
    // The file checked is the file run (keepalived runs the file its
    // PATH search found, by its full name, too).
    if let (Some(program), Some(first)) = (&c.program, argv.first_mut()) {
        *first = program.display().to_string();
    }
    Command {
        argv,
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
        deleted: None,
        generic: n.generic.as_ref().map(command),
    }
}

/// Tracked-object ids the driver knows scripts and file bits by: derived
/// from names, so an unchanged script keeps its id across reloads and
/// unchanged instances compare equal.
struct Ids;

impl Ids {
    fn of(label: &str) -> TrackId {
        TrackId(fnv1a(label.as_bytes()))
    }

    fn script(&self, name: &str) -> TrackId {
        Self::of(&format!("script\0{name}"))
    }

    fn process(&self, name: &str) -> TrackId {
        Self::of(&format!("process\0{name}"))
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
        .map(|v| (v, false))
        .chain(inst.excluded.iter().map(|v| (v, true)))
        .map(|(v, excluded)| Vip {
            address: v.address,
            device: v.dev.clone(),
            label: v.label.clone(),
            excluded,
            attrs: v.attrs,
            no_track: v.no_track,
        })
        .collect();
    spec.vmac = inst.vmac.as_ref().map(|v| vrrp_net::driver::VmacSpec {
        name: v.name.clone(),
        xmit_base: v.xmit_base,
    });
    spec.dont_track_primary = inst.dont_track_primary;
    spec.promote_secondaries = inst.promote_secondaries;
    spec.accept = inst.accept;
    spec.garp_extra_if = inst
        .garp_extra_if
        .map(|(interval, all)| vrrp_net::driver::GarpExtraIf { interval, all });
    spec.routes = inst.routes.clone();
    spec.rules = inst.rules.clone();
    if let Some(export) = inst.export_routes {
        spec.routes.extend(
            inst.vips
                .iter()
                .map(|v| export.route(v.address.addr, v.dev.as_deref().unwrap_or(&inst.interface))),
        );
    }
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
    for t in &inst.track_process {
        // The state is set from the process scan when the daemon starts.
        let cfg = track_config(t.weight, t.reverse);
        spec.tracks
            .push((ids.process(&t.name), cfg, undecided(cfg)));
    }
    for (n, f) in inst.track_file.iter().enumerate() {
        let path = f.path.display().to_string();
        let use_ = FileUse::new(f.weight.get(), f.reverse, |bit| {
            ids.file_bit(name, n, &path, bit)
        });
        // Every object at rest (no contribution, no fault); the daemon
        // starts each instance from what the file holds.
        spec.tracks.extend(use_.tracks());
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

/// The IPVS services of a virtual server: one, or every service of its
/// group. keepalived's group runs one set of checks and scripts for all
/// its services: the checks here are the same on each (the runner runs
/// identical checks once) and the scripts are on the first only, so they
/// run once per transition.
fn virtual_servers(vs: &VirtualServer) -> Vec<(VirtualServerSpec, VsNotify)> {
    match &vs.group {
        None => vec![virtual_server(vs, vs.service, true)],
        Some(g) => g
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| virtual_server(vs, *s, i == 0))
            .collect(),
    }
}

/// The port a real server gets in the kernel: its own with NAT; otherwise
/// the service's (0 for a firewall mark), as keepalived programs a group's
/// services (`ipvs_group_cmd`).
fn destination(
    vs: &VirtualServer,
    service: ServiceAddr,
    addr: SocketAddr,
    kind: LbKind,
) -> SocketAddr {
    if vs.group.is_none() || kind == LbKind::Nat {
        return addr;
    }
    let port = match service {
        ServiceAddr::Socket(_, a) => a.port(),
        ServiceAddr::Fwmark(..) => 0,
    };
    SocketAddr::new(addr.ip(), port)
}

fn virtual_server(
    vs: &VirtualServer,
    key: ServiceAddr,
    scripts: bool,
) -> (VirtualServerSpec, VsNotify) {
    let mut service = lvs::Service::new(service_key(key), vs.scheduler.clone());
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
    server.sorry_server = vs.sorry_server.map(|addr| {
        lvs::Destination::new(destination(vs, key, addr, vs.lb_kind), forward(vs.lb_kind))
    });
    let mut real_servers = Vec::with_capacity(vs.real_servers.len());
    let mut notices = Vec::with_capacity(vs.real_servers.len());
    for rs in &vs.real_servers {
        let addr = destination(vs, key, rs.addr, rs.lb_kind);
        let dest = lvs::Destination::new(addr, forward(rs.lb_kind))
            .with_weight(rs.weight)
            .with_thresholds(rs.thresholds.0, rs.thresholds.1);
        let mut lrs = lvs::RealServer::new(dest);
        lrs.inhibit_on_failure = rs.inhibit_on_failure;
        server = server.with_real_server(lrs);
        let initial = if rs.alpha { Health::Down } else { Health::Up };
        let checks: Vec<CheckSpec> = rs
            .checks
            .iter()
            .flat_map(|c| check_specs(rs.addr, c, initial))
            .collect();
        let (notify_up, notify_down) = match (&rs.notify, scripts) {
            (Some(n), true) => (n.0.as_ref().map(command), n.1.as_ref().map(command)),
            _ => (None, None),
        };
        notices.push(RsNotify {
            addr,
            label: rs_label(vs, rs.addr),
            smtp_alert: rs.smtp_alert,
            checks: checks
                .iter()
                .map(|c: &CheckSpec| (c.name.clone(), checker_bodies(&c.probe)))
                .collect(),
        });
        real_servers.push(RealServerSpec {
            addr,
            checks,
            notify_up,
            notify_down,
        });
    }
    let spec = VirtualServerSpec {
        server,
        real_servers,
        quorum_up: vs.quorum_up.as_ref().filter(|_| scripts).map(command),
        quorum_down: vs.quorum_down.as_ref().filter(|_| scripts).map(command),
    };
    let notice = VsNotify {
        label: vs_label(vs),
        notifies: scripts,
        smtp_alert: vs.smtp_alert,
        real_servers: notices,
    };
    (spec, notice)
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
        CheckKind::Tcp { target, source } => {
            let mut p = healthcheck::TcpCheck::new(*target);
            p.bind = source.address;
            p.bind_port = source.port;
            p.bind_interface.clone_from(&source.interface);
            p.connect_timeout = Some(c.timing.timeout);
            vec![spec(format!("{rs} tcp"), Probe::Tcp(p))]
        }
        CheckKind::Http(h) => h
            .urls
            .iter()
            .map(|u| {
                let mut p = healthcheck::HttpCheck::new(h.target);
                p.bind = h.source.address;
                p.bind_port = h.source.port;
                p.bind_interface.clone_from(&h.source.interface);
                p.regex.clone_from(&u.regex);
                p.connect_timeout = Some(c.timing.timeout);
                p.path.clone_from(&u.path);
                p.virtual_host.clone_from(&h.virtualhost);
                if let Some((_, ranges)) = &u.status {
                    p.status = ranges.clone();
                }
                p.digest = u.digest;
                if h.tls {
                    let mut t = healthcheck::TlsOptions::insecure();
                    t.sni.clone_from(&h.sni);
                    // keepalived's enable_sni; unset, the name is sent when
                    // there is one.
                    t.send_sni = h.enable_sni.unwrap_or(true);
                    p.tls = Some(t);
                }
                let scheme = if h.tls { "https" } else { "http" };
                spec(format!("{rs} {scheme} {}", u.path), Probe::Http(p))
            })
            .collect(),
        CheckKind::Misc(m) => {
            let cmd = command(&m.command);
            let mut p = cmd.script_check(&[]);
            p.dynamic_weight = m.dynamic;
            vec![spec(format!("{rs} misc"), Probe::Script(p))]
        }
        CheckKind::Dns(d) => {
            let mut p = healthcheck::DnsCheck::new(d.target, d.name.clone());
            p.record_type.clone_from(&d.record_type);
            p.bind = match (d.source.address, d.source.port) {
                (None, None) => None,
                (ip, port) => Some(SocketAddr::new(
                    ip.unwrap_or(if d.target.is_ipv6() {
                        std::net::Ipv6Addr::UNSPECIFIED.into()
                    } else {
                        std::net::Ipv4Addr::UNSPECIFIED.into()
                    }),
                    port.unwrap_or(0),
                )),
            };
            p.bind_interface.clone_from(&d.source.interface);
            vec![spec(format!("{rs} dns"), Probe::Dns(p))]
        }
        CheckKind::Smtp(s) => {
            let mut p = healthcheck::SmtpCheck::new(s.target);
            p.bind = s.source.address;
            p.bind_port = s.source.port;
            p.bind_interface.clone_from(&s.source.interface);
            p.connect_timeout = Some(c.timing.timeout);
            p.helo_name.clone_from(&s.helo_name);
            vec![spec(format!("{rs} smtp"), Probe::Smtp(p))]
        }
        CheckKind::Ping { target, source } => {
            let mut p = healthcheck::IcmpCheck::new(*target);
            p.source = source.address;
            p.interface.clone_from(&source.interface);
            vec![spec(format!("{rs} ping"), Probe::Icmp(p))]
        }
        CheckKind::Udp(u) => {
            let mut p = healthcheck::UdpCheck::new(u.target);
            p.bind = u.source.address;
            p.bind_port = u.source.port;
            p.bind_interface.clone_from(&u.source.interface);
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
