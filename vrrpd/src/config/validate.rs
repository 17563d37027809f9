//! Defaults that depend on other settings, and the checks that need the
//! whole configuration (references, duplicates, families, script files).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrrp_core::Family;

use super::Failed;
use super::command::CommandSpec;
use super::error::{ConfigError, Doc, ErrorKind, KeyPath};
use super::schema::{Config, Instance, VirtualServer};

/// Fills the defaults that come from `[global]` or other fields.
pub(crate) fn normalize(config: &mut Config) {
    let g = config.global.clone();
    for script in config.script.values_mut() {
        if script.timeout.is_none() {
            script.timeout = Some(script.interval);
        }
        if let Some(user) = script.user.take() {
            script.command.user = Some(user);
        }
        if script.shell && !script.command.shell {
            script.command.command = vec![script.command.command.join(" ")];
            script.command.shell = true;
        }
        script.shell = false;
    }
    for inst in config.instance.values_mut() {
        inst.version.get_or_insert(g.vrrp_version);
        inst.garp_master_delay
            .get_or_insert(g.vrrp_garp_master_delay);
        inst.garp_master_repeat
            .get_or_insert(g.vrrp_garp_master_repeat);
        inst.garp_master_refresh
            .get_or_insert(g.vrrp_garp_master_refresh);
        inst.garp_master_refresh_repeat
            .get_or_insert(g.vrrp_garp_master_refresh_repeat);
        inst.garp_interval.get_or_insert(g.vrrp_garp_interval);
        inst.lower_prio_no_advert
            .get_or_insert(g.vrrp_lower_prio_no_advert);
        inst.checksum_as_v2.get_or_insert(g.vrrp_v3_checksum_as_v2);
    }
    for vs in &mut config.virtual_server {
        if vs.fwmark.is_some() && vs.family.is_none() {
            vs.family = Some(Default::default());
        }
        for rs in &mut vs.real_server {
            if rs.port.is_none() {
                rs.port = Some(vs.port.unwrap_or(0));
            }
            rs.inhibit_on_failure.get_or_insert(vs.inhibit_on_failure);
            for c in &mut rs.tcp_check {
                c.delay_loop.get_or_insert(vs.delay_loop);
            }
            for c in rs.http_get.iter_mut().chain(rs.ssl_get.iter_mut()) {
                c.delay_loop.get_or_insert(vs.delay_loop);
                if c.virtualhost.is_none() {
                    c.virtualhost.clone_from(&vs.virtualhost);
                }
            }
            for c in &mut rs.misc_check {
                c.delay_loop.get_or_insert(vs.delay_loop);
            }
            for c in &mut rs.dns_check {
                c.delay_loop.get_or_insert(vs.delay_loop);
            }
            for c in &mut rs.smtp_check {
                c.delay_loop.get_or_insert(vs.delay_loop);
            }
            for c in &mut rs.ping_check {
                c.delay_loop.get_or_insert(vs.delay_loop);
            }
            for c in &mut rs.udp_check {
                c.delay_loop.get_or_insert(vs.delay_loop);
            }
        }
    }
}

/// The address family of an instance: that of its first virtual
/// address, else its source address, else its first peer, else IPv4.
pub(crate) fn instance_family(inst: &Instance) -> Family {
    inst.virtual_ipaddress
        .first()
        .map(|v| v.address)
        .or(inst.unicast_src_ip)
        .or_else(|| inst.unicast_peer.first().copied())
        .map_or(Family::Ipv4, |a| Family::of(&a))
}

struct Ctx<'a, 'd> {
    failed: &'a Failed,
    doc: &'a Doc<'d>,
    errors: &'a mut Vec<ConfigError>,
    config: &'a Config,
}

impl Ctx<'_, '_> {
    fn err(&mut self, key: KeyPath, kind: ErrorKind) {
        self.errors.push(self.doc.error_at(key, kind));
    }

    fn weight(&mut self, key: KeyPath, w: i32) {
        if !(-253..=253).contains(&w) {
            self.err(key, ErrorKind::Weight(w));
        }
    }

    fn nonzero(&mut self, key: KeyPath, d: Duration, what: &'static str) {
        if d.is_zero() {
            self.err(key, ErrorKind::Zero(what));
        }
    }

    fn command(&mut self, key: KeyPath, cmd: &CommandSpec) {
        let g = &self.config.global;
        if let Some(user) = cmd.user.as_deref().or(g.script_user.as_deref())
            && resolve_user(user).is_none()
        {
            let k = if cmd.user.is_some() {
                key.key("user")
            } else {
                KeyPath::root("global").key("script_user")
            };
            self.err(k, ErrorKind::UnknownUser(user.to_owned()));
        }
        let Some(program) = cmd.program() else { return };
        let path = Path::new(program);
        if !path.is_absolute() {
            // A bare name is looked up in PATH when it runs; nothing to
            // check against the file system here.
            return;
        }
        let security = g.enable_script_security && !g.allow_insecure_scripts;
        if let Err(kind) = check_script_file(path, security) {
            self.err(key, kind);
        }
    }
}

/// Resolves `user` or `user:group` to ids.
pub(crate) fn resolve_user(spec: &str) -> Option<(u32, Option<u32>)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = nix::unistd::User::from_name(user).ok().flatten()?;
    let gid = match group {
        Some(g) => Some(
            nix::unistd::Group::from_name(g)
                .ok()
                .flatten()?
                .gid
                .as_raw(),
        ),
        None => Some(u.gid.as_raw()),
    };
    Some((u.uid.as_raw(), gid))
}

/// Checks that a script exists, is executable, and (with `security`)
/// that no non-root user can change it or the directories leading to it.
pub(crate) fn check_script_file(path: &Path, security: bool) -> Result<(), ErrorKind> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ErrorKind::ScriptMissing(path.to_path_buf()));
        }
        Err(_) => return Err(ErrorKind::ScriptNotExecutable(path.to_path_buf())),
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(ErrorKind::ScriptNotExecutable(path.to_path_buf()));
    }
    if !security {
        return Ok(());
    }
    let insecure = |reason: String| ErrorKind::ScriptInsecure {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(reason) = writable_by_non_root(&meta, false) {
        return Err(insecure(format!("the file {reason}")));
    }
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut dir: Option<PathBuf> = real.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if let Ok(m) = std::fs::metadata(&d)
            && let Some(reason) = writable_by_non_root(&m, true)
        {
            return Err(insecure(format!("its directory {} {reason}", d.display())));
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    Ok(())
}

fn writable_by_non_root(meta: &std::fs::Metadata, is_dir: bool) -> Option<String> {
    let mode = meta.mode();
    // A sticky directory lets others add files but not replace ours.
    if is_dir && mode & 0o1000 != 0 {
        return (meta.uid() != 0).then(|| format!("is owned by uid {}", meta.uid()));
    }
    if meta.uid() != 0 {
        return Some(format!("is owned by uid {}", meta.uid()));
    }
    if mode & 0o002 != 0 {
        return Some("is writable by everyone".to_owned());
    }
    if mode & 0o020 != 0 && meta.gid() != 0 {
        return Some(format!("is writable by group {}", meta.gid()));
    }
    None
}

/// Every whole-configuration check; errors go to `errors`.
pub(crate) fn validate(
    config: &Config,
    doc: &Doc<'_>,
    failed: &Failed,
    errors: &mut Vec<ConfigError>,
) {
    let mut cx = Ctx {
        doc,
        errors,
        config,
        failed,
    };
    let g = &config.global;
    let gk = KeyPath::root("global");
    if !matches!(g.vrrp_version, 2 | 3) {
        cx.err(gk.key("vrrp_version"), ErrorKind::Version(g.vrrp_version));
    }
    cx.nonzero(
        gk.key("notify_timeout"),
        g.notify_timeout.get(),
        "notify_timeout",
    );
    if let Some(user) = &g.script_user
        && resolve_user(user).is_none()
    {
        cx.err(gk.key("script_user"), ErrorKind::UnknownUser(user.clone()));
    }

    for (name, s) in &config.script {
        let k = KeyPath::root("script").key(name);
        cx.weight(k.key("weight"), s.weight);
        cx.nonzero(k.key("interval"), s.interval.get(), "interval");
        if let Some(t) = s.timeout {
            cx.nonzero(k.key("timeout"), t.get(), "timeout");
        }
        if s.rise == 0 {
            cx.err(k.key("rise"), ErrorKind::Zero("rise"));
        }
        if s.fall == 0 {
            cx.err(k.key("fall"), ErrorKind::Zero("fall"));
        }
        cx.command(k.key("command"), &s.command);
    }

    // (interface, family, vrid) -> first instance using it
    let mut vrids: HashMap<(String, Family, u8), String> = HashMap::new();
    for (name, inst) in &config.instance {
        let k = KeyPath::root("instance").key(name);
        validate_instance(&mut cx, &k, name, inst, &mut vrids);
    }

    let mut member_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, grp) in &config.sync_group {
        let k = KeyPath::root("sync_group").key(name);
        if grp.group.is_empty() {
            cx.err(
                k.key("group"),
                ErrorKind::Invalid("a sync group needs at least one instance".to_owned()),
            );
        }
        for (i, member) in grp.group.iter().enumerate() {
            let mk = k.key("group").index(i);
            if cx.failed.instances.contains(member) {
                continue;
            }
            if !config.instance.contains_key(member) {
                cx.err(mk, ErrorKind::UndefinedInstance(member.clone()));
            } else if let Some(first) = member_of.insert(member, name) {
                cx.err(
                    mk,
                    ErrorKind::InstanceInTwoGroups {
                        instance: member.clone(),
                        group: first.to_owned(),
                    },
                );
            }
        }
        for (key, cmd) in [
            ("notify_master", &grp.notify_master),
            ("notify_backup", &grp.notify_backup),
            ("notify_fault", &grp.notify_fault),
            ("notify_stop", &grp.notify_stop),
            ("notify", &grp.notify),
        ] {
            if let Some(c) = cmd {
                cx.command(k.key(key), c);
            }
        }
    }

    let mut keys = HashMap::new();
    for (i, vs) in config.virtual_server.iter().enumerate() {
        let k = KeyPath::root("virtual_server").index(i);
        validate_virtual_server(&mut cx, &k, vs, &mut keys);
    }
}

fn validate_instance(
    cx: &mut Ctx<'_, '_>,
    k: &KeyPath,
    name: &str,
    inst: &Instance,
    vrids: &mut HashMap<(String, Family, u8), String>,
) {
    let version = inst.version.unwrap_or(2);
    if !matches!(version, 2 | 3) {
        cx.err(k.key("version"), ErrorKind::Version(version));
    }
    if inst.interface.trim().is_empty() {
        cx.err(
            k.key("interface"),
            ErrorKind::Invalid("interface must not be empty".to_owned()),
        );
    }
    let family = instance_family(inst);
    let fam_name = family.to_string();
    let mixed = |cx: &mut Ctx<'_, '_>, key: KeyPath, a: IpAddr| {
        if Family::of(&a) != family {
            cx.err(
                key,
                ErrorKind::MixedFamily {
                    address: a,
                    family: fam_name.clone(),
                },
            );
        }
    };
    for (i, v) in inst.virtual_ipaddress.iter().enumerate() {
        mixed(cx, k.key("virtual_ipaddress").index(i), v.address);
    }
    if let Some(src) = inst.unicast_src_ip {
        mixed(cx, k.key("unicast_src_ip"), src);
    }
    for (i, p) in inst.unicast_peer.iter().enumerate() {
        mixed(cx, k.key("unicast_peer").index(i), *p);
    }
    if inst.virtual_ipaddress.len() > 255 {
        cx.err(
            k.key("virtual_ipaddress"),
            ErrorKind::Invalid(format!(
                "{} virtual addresses; at most 255 fit an advertisement",
                inst.virtual_ipaddress.len()
            )),
        );
    }
    if version == 2 && family == Family::Ipv6 {
        // Point at what made the instance IPv6 (the version may be a default).
        let what = if inst.virtual_ipaddress.is_empty() {
            k.key("unicast_src_ip")
        } else {
            k.key("virtual_ipaddress")
        };
        cx.err(what, ErrorKind::V2OverIpv6);
    }

    let interval = inst.advert_int.get();
    let nanos = interval.as_nanos();
    let ok = match version {
        2 => nanos.is_multiple_of(1_000_000_000) && (1..=255).contains(&(nanos / 1_000_000_000)),
        _ => nanos.is_multiple_of(10_000_000) && (1..=4095).contains(&(nanos / 10_000_000)),
    };
    if !ok {
        cx.err(
            k.key("advert_int"),
            ErrorKind::Interval {
                interval: inst.advert_int.to_string(),
                version,
            },
        );
    }

    if let Some(auth) = &inst.authentication {
        let ak = k.key("authentication");
        if !auth.auth_type.eq_ignore_ascii_case("PASS") {
            cx.err(
                ak.key("auth_type"),
                ErrorKind::AuthType(auth.auth_type.clone()),
            );
        } else if version != 2 {
            cx.err(ak.clone(), ErrorKind::AuthNeedsV2);
        }
        if auth.auth_pass.len() > 8 {
            cx.err(
                ak.key("auth_pass"),
                ErrorKind::PasswordTooLong(auth.auth_pass.len()),
            );
        } else if auth.auth_pass.is_empty() {
            cx.err(ak.key("auth_pass"), ErrorKind::PasswordEmpty);
        }
    }

    let key = (inst.interface.clone(), family, inst.virtual_router_id.get());
    if let Some(other) = vrids.get(&key) {
        cx.err(
            k.key("virtual_router_id"),
            ErrorKind::DuplicateVrid {
                vrid: key.2,
                interface: key.0.clone(),
                family: family.to_string(),
                other: other.clone(),
            },
        );
    } else {
        vrids.insert(key, name.to_owned());
    }

    for (i, t) in inst.track_interface.iter().enumerate() {
        if let Some(w) = t.weight {
            cx.weight(k.key("track_interface").index(i), w);
        }
    }
    for (i, t) in inst.track_script.iter().enumerate() {
        let tk = k.key("track_script").index(i);
        if !cx.config.script.contains_key(&t.name) && !cx.failed.scripts.contains(&t.name) {
            cx.err(tk.clone(), ErrorKind::UndefinedScript(t.name.clone()));
        }
        if let Some(w) = t.weight {
            cx.weight(tk, w);
        }
    }
    for (i, t) in inst.track_file.iter().enumerate() {
        cx.weight(k.key("track_file").index(i), t.weight);
    }
    for (key, cmd) in [
        ("notify_master", &inst.notify_master),
        ("notify_backup", &inst.notify_backup),
        ("notify_fault", &inst.notify_fault),
        ("notify_stop", &inst.notify_stop),
        ("notify", &inst.notify),
    ] {
        if let Some(c) = cmd {
            cx.command(k.key(key), c);
        }
    }
}

fn validate_virtual_server(
    cx: &mut Ctx<'_, '_>,
    k: &KeyPath,
    vs: &VirtualServer,
    keys: &mut HashMap<String, usize>,
) {
    let vserr = |cx: &mut Ctx<'_, '_>, key: KeyPath, msg: String| {
        cx.err(key, ErrorKind::VirtualServer(msg));
    };
    let ident = match (vs.ip, vs.port, vs.fwmark) {
        (Some(ip), Some(port), None) => {
            format!("{:?}/{}", vs.protocol, std::net::SocketAddr::new(ip, port))
        }
        (None, None, Some(0)) => {
            vserr(cx, k.key("fwmark"), "fwmark must not be 0".to_owned());
            return;
        }
        (None, None, Some(mark)) => format!("fwmark/{mark}/{:?}", vs.family.unwrap_or_default()),
        (Some(_), None, None) => {
            vserr(
                cx,
                k.key("ip"),
                "a virtual server with `ip` needs `port`".to_owned(),
            );
            return;
        }
        _ => {
            vserr(
                cx,
                k.clone(),
                "set either `ip` and `port`, or `fwmark`".to_owned(),
            );
            return;
        }
    };
    let index = keys.len();
    if let Some(first) = keys.insert(ident.clone(), index) {
        vserr(
            cx,
            k.clone(),
            format!("virtual server {ident} is also virtual_server[{first}]"),
        );
    }
    if lvs::Scheduler::new(vs.lb_algo.clone()).is_err() {
        vserr(
            cx,
            k.key("lb_algo"),
            format!(
                "`{}` is not a scheduler name (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, mh, sed, nq, fo, ovf, twos)",
                vs.lb_algo
            ),
        );
    }
    cx.nonzero(k.key("delay_loop"), vs.delay_loop.get(), "delay_loop");
    let family_v6 = match (vs.ip, vs.family) {
        (Some(ip), _) => ip.is_ipv6(),
        (None, f) => f == Some(super::schema::IpFamily::Inet6),
    };
    if let Some(g) = vs.persistence_granularity {
        let max = if family_v6 { 128 } else { 32 };
        if g > max {
            vserr(
                cx,
                k.key("persistence_granularity"),
                format!("prefix length {g} is too long for the family"),
            );
        }
    }
    if let Some(sorry) = vs.sorry_server
        && sorry.is_ipv6() != family_v6
    {
        vserr(
            cx,
            k.key("sorry_server"),
            format!("{sorry} is not of the virtual server's address family"),
        );
    }
    for (key, cmd) in [
        ("quorum_up", &vs.quorum_up),
        ("quorum_down", &vs.quorum_down),
    ] {
        if let Some(c) = cmd {
            cx.command(k.key(key), c);
        }
    }
    let mut seen = HashMap::new();
    if let Some(sorry) = vs.sorry_server {
        seen.insert(sorry, "sorry_server".to_owned());
    }
    for (i, rs) in vs.real_server.iter().enumerate() {
        let rk = k.key("real_server").index(i);
        // Tunnelled and routed real servers may be of either family with
        // some kernels; keepalived requires the virtual server's, so do we.
        if rs.ip.is_ipv6() != family_v6 {
            vserr(
                cx,
                rk.key("ip"),
                format!("{} is not of the virtual server's address family", rs.ip),
            );
        }
        let port = rs.port.unwrap_or(0);
        if port == 0 && vs.fwmark.is_none() {
            vserr(cx, rk.key("port"), "port must not be 0".to_owned());
        }
        let addr = std::net::SocketAddr::new(rs.ip, port);
        if let Some(first) = seen.insert(addr, format!("real_server[{i}]")) {
            vserr(cx, rk.clone(), format!("{addr} is also {first}"));
        }
        for (key, cmd) in [
            ("notify_up", &rs.notify_up),
            ("notify_down", &rs.notify_down),
        ] {
            if let Some(c) = cmd {
                cx.command(rk.key(key), c);
            }
        }
        validate_checks(cx, &rk, rs);
    }
}

fn validate_checks(cx: &mut Ctx<'_, '_>, rk: &KeyPath, rs: &super::schema::RealServer) {
    macro_rules! timing {
        ($list:expr, $name:literal) => {
            for (j, c) in $list.iter().enumerate() {
                let ck = rk.key($name).index(j);
                if c.rise == 0 {
                    cx.err(ck.key("rise"), ErrorKind::Zero("rise"));
                }
                if c.fall == 0 {
                    cx.err(ck.key("fall"), ErrorKind::Zero("fall"));
                }
                if let Some(d) = c.delay_loop {
                    cx.nonzero(ck.key("delay_loop"), d.get(), "delay_loop");
                }
            }
        };
    }
    macro_rules! connect {
        ($list:expr, $name:literal) => {
            timing!($list, $name);
            for (j, c) in $list.iter().enumerate() {
                let ck = rk.key($name).index(j);
                cx.nonzero(
                    ck.key("connect_timeout"),
                    c.connect_timeout.get(),
                    "connect_timeout",
                );
            }
        };
    }
    connect!(rs.tcp_check, "tcp_check");
    connect!(rs.http_get, "http_get");
    connect!(rs.ssl_get, "ssl_get");
    connect!(rs.dns_check, "dns_check");
    connect!(rs.smtp_check, "smtp_check");
    connect!(rs.ping_check, "ping_check");
    connect!(rs.udp_check, "udp_check");
    timing!(rs.misc_check, "misc_check");
    for (name, list) in [("http_get", &rs.http_get), ("ssl_get", &rs.ssl_get)] {
        for (j, c) in list.iter().enumerate() {
            for (u, url) in c.url.iter().enumerate() {
                let uk = rk.key(name).index(j).key("url").index(u);
                if !url.path.starts_with('/') {
                    cx.err(
                        uk.key("path"),
                        ErrorKind::VirtualServer(format!("path `{}` must start with /", url.path)),
                    );
                }
                if let Some(d) = &url.digest
                    && super::convert::parse_digest(d).is_none()
                {
                    cx.err(
                        uk.key("digest"),
                        ErrorKind::VirtualServer(format!(
                            "digest `{d}` is not 32 hexadecimal digits (an MD5 as genhash prints it)"
                        )),
                    );
                }
            }
        }
    }
    for (j, c) in rs.misc_check.iter().enumerate() {
        let ck = rk.key("misc_check").index(j);
        cx.nonzero(ck.key("misc_timeout"), c.misc_timeout.get(), "misc_timeout");
        let mut cmd = c.misc_path.clone();
        if cmd.user.is_none() {
            cmd.user.clone_from(&c.user);
        }
        cx.command(ck.key("misc_path"), &cmd);
    }
}
