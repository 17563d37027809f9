//! From the configuration as written ([`raw`]) to the resolved one
//! ([`Effective`]), in one pass: defaults applied (keepalived's), values
//! typed, users resolved once, references and script files checked, and
//! each instance's engine configuration validated by vrrp-core itself
//! ([`vrrp_core::InstanceConfig::validate_all`]), its errors mapped back
//! to the key they came from. Problems are reported by key path; the
//! caller turns them into file and line (TOML or keepalived.conf).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrrp_core::{Centisecs, Family, Field, GarpConfig, Priority, Version, Weight};

use super::command::CommandSpec;
use super::duration::{Dur, DurationError, MAX_DURATION};
use super::effective::{
    Check, CheckKind, CheckTiming, Command, DnsCheck, Effective, Fifo, Fifos, Global, HttpCheck,
    Instance, MiscCheck, Notify, RealServer, Script, ServiceAddr, Smtp, SmtpCheck, Source,
    StartState, SyncGroup, TrackFile, TrackProcess, Tracked, TrackedFile, UdpCheck, UrlCheck, User,
    VirtualServer, VsGroup, family_of,
};
use super::error::{ErrorKind, KeyPath};
use super::raw;
use super::raw::{IpFamily, LbKind, VsProtocol};

#[path = "resolve_extra.rs"]
mod extra;
#[path = "resolve_vip.rs"]
pub(crate) mod vip;

#[path = "resolve_accept.rs"]
mod accept;

/// Where the file is meant to run, which decides how problems that depend
/// on the host (scripts that do not exist here, unknown users) count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This host: they are errors (`vrrpd check`, `vrrpd run`).
    ThisHost,
    /// Another host: they are warnings (`vrrpd import-keepalived`, run
    /// where the keepalived.conf was copied to).
    OtherHost,
}

/// One problem, at the key it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key.
    pub key: KeyPath,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// Sections that could not be read, so that references to them are not
/// reported as undefined on top of their own errors.
#[derive(Clone, Debug, Default)]
pub struct Failed {
    /// `[script.NAME]`.
    pub scripts: BTreeSet<String>,
    /// `[track_file.NAME]`.
    pub track_files: BTreeSet<String>,
    /// `[instance.NAME]`.
    pub instances: BTreeSet<String>,
    /// `[track_process.NAME]`.
    pub processes: BTreeSet<String>,
}

/// The result of resolving: the configuration (meaningful only without
/// errors), the errors, and the warnings.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The resolved configuration.
    pub effective: Effective,
    /// What makes it unusable.
    pub errors: Vec<Problem>,
    /// Host-dependent problems when checking for another host.
    pub warnings: Vec<Problem>,
}

/// Resolves a whole configuration. Without `keep_servers`, virtual
/// servers are checked and not kept (a check of a converted file).
pub fn resolve(raw: raw::Config, target: Target, failed: &Failed, keep_servers: bool) -> Outcome {
    let mut r = Resolver::new(target, failed.clone());
    r.keep_servers = keep_servers;
    r.global(raw.global);
    r.track_processes(raw.track_process);
    r.vrrp(raw.script, raw.track_file, raw.instance, raw.sync_group);
    r.virtual_server_groups(raw.virtual_server_group);
    r.static_routes(&raw.static_routes);
    r.static_rules(&raw.static_rules);
    r.static_ipaddress(raw.static_ipaddress);
    for (i, vs) in raw.virtual_server.into_iter().enumerate() {
        r.virtual_server(i, vs);
    }
    r.finish()
}

/// Resolves a configuration section by section (global first, virtual
/// servers one at a time, so that a large file never holds all of its
/// written and resolved forms at once).
pub struct Resolver {
    target: Target,
    failed: Failed,
    out: Outcome,
    users: HashMap<String, Option<(u32, Option<u32>)>>,
    /// Verdicts on script files, per file, user and security setting.
    script_files: HashMap<(PathBuf, RunsAs, bool), Result<PathBuf, ErrorKind>>,
    services: HashMap<ServiceAddr, usize>,
    /// Virtual servers using each group so far (keepalived's member
    /// numbers).
    group_members: HashMap<String, usize>,
    /// Keep resolved virtual servers (off: check them only).
    pub keep_servers: bool,
    /// [`ErrorKind::NoScriptUser`] was reported.
    root_scripts_reported: bool,
}

/// An interface name or address label as the kernel stores them: 1 to 15
/// bytes (IFNAMSIZ - 1) and no whitespace, so that the `ADDR dev X label Y`
/// form prints and reads back and the kernel takes it (keepalived removes
/// an address whose label is longer).
fn kernel_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 15 || value.contains(char::is_whitespace) {
        return Err(format!(
            "{what} `{value}` must be 1 to 15 bytes without spaces (a kernel interface name or label)"
        ));
    }
    Ok(())
}

/// Keepalived's range of script and interface weights.
const SCRIPT_WEIGHT: (i32, i32) = (-253, 253);
/// Keepalived's range of track file weights.
const FILE_WEIGHT: (i32, i32) = (-254, 254);

impl Resolver {
    /// A resolver with keepalived's global defaults.
    pub fn new(target: Target, failed: Failed) -> Self {
        Resolver {
            target,
            failed,
            out: Outcome::default(),
            users: HashMap::new(),
            script_files: HashMap::new(),
            services: HashMap::new(),
            group_members: HashMap::new(),
            keep_servers: true,
            root_scripts_reported: false,
        }
    }

    /// `static_routes`: each line parsed, each bad one an error at its
    /// index.
    pub fn static_routes(&mut self, lines: &[String]) {
        let mut problems = Vec::new();
        let routes = super::routes::parse_routes(
            lines,
            &KeyPath::root("static_routes"),
            &mut |key, kind| problems.push((key, kind)),
        );
        for (key, kind) in problems {
            self.err(key, kind);
        }
        self.out.effective.static_routes = routes;
    }

    /// `static_ipaddress`: each address resolved as a virtual one; each
    /// needs its `dev` (keepalived's fallback, its default interface, is
    /// one more thing to guess: the importer writes it out).
    pub fn static_ipaddress(&mut self, list: Vec<raw::VirtualIp>) {
        let mut out = Vec::with_capacity(list.len());
        for (n, v) in list.into_iter().enumerate() {
            let key = KeyPath::root("static_ipaddress").index(n);
            if v.dev.is_none() {
                self.err(key, ErrorKind::Missing("dev"));
                continue;
            }
            out.extend(self.vip(key, v));
        }
        self.out.effective.static_addresses = out;
    }

    /// `static_rules`: each line parsed, each bad one an error at its
    /// index.
    pub fn static_rules(&mut self, lines: &[String]) {
        let mut problems = Vec::new();
        let rules =
            super::routes::parse_rules(lines, &KeyPath::root("static_rules"), &mut |key, kind| {
                problems.push((key, kind))
            });
        for (key, kind) in problems {
            self.err(key, kind);
        }
        self.out.effective.static_rules = rules;
    }

    /// The errors and warnings so far, and the configuration.
    pub fn finish(self) -> Outcome {
        self.out
    }

    fn err(&mut self, key: KeyPath, kind: ErrorKind) {
        if self.target == Target::OtherHost && kind.depends_on_host() {
            self.out.warnings.push(Problem { key, kind });
        } else {
            self.out.errors.push(Problem { key, kind });
        }
    }

    /// The TOML reader refuses durations over [`MAX_DURATION`]; a
    /// keepalived.conf number of seconds reaches here unchecked.
    fn bounded(&mut self, key: impl FnOnce() -> KeyPath, d: Duration) {
        if d > MAX_DURATION {
            let e = DurationError::TooLong(Dur(d).to_string());
            self.err(key(), ErrorKind::Invalid(e.to_string()));
        }
    }

    fn nonzero(&mut self, key: impl FnOnce() -> KeyPath, d: Duration, what: &'static str) {
        if d.is_zero() {
            self.err(key(), ErrorKind::Zero(what));
        }
    }

    fn weight(&mut self, key: impl FnOnce() -> KeyPath, w: i32, range: (i32, i32)) -> Weight {
        match Weight::new(w).filter(|_| (range.0..=range.1).contains(&w)) {
            Some(w) => w,
            None => {
                self.err(
                    key(),
                    ErrorKind::Weight {
                        weight: w,
                        min: range.0,
                        max: range.1,
                    },
                );
                Weight::FAULT
            }
        }
    }

    /// `user` or `user:group`, looked up once per spelling.
    fn user(&mut self, key: impl FnOnce() -> KeyPath, spec: &str) -> User {
        let ids = *self
            .users
            .entry(spec.to_owned())
            .or_insert_with(|| lookup_user(spec));
        if ids.is_none() {
            self.err(key(), ErrorKind::UnknownUser(spec.to_owned()));
        }
        User {
            spec: spec.to_owned(),
            ids,
        }
    }

    /// A command with its user resolved and its program checked as
    /// keepalived checks scripts (`check_script_secure`). Without a user,
    /// the command runs as `global.script_user`, else as keepalived's
    /// unprivileged `keepalived_script` when it exists, else as root (which
    /// script security refuses unless asked). A bare name is looked up in
    /// PATH (a file executable by that user); the file found, links
    /// resolved, is pinned: the file checked is the file run. The program
    /// must be executable by its user; when
    /// it runs as root (or is set-uid/gid root) with script security on,
    /// every component of its path must be root's and not writable by
    /// anyone else. A shell line's shell is checked, and its first word
    /// when that is an absolute path (a bare first word may be a builtin).
    fn command(&mut self, key: &KeyPath, spec: CommandSpec) -> Command {
        let user = match (&spec.user, &self.out.effective.global.script_user) {
            (Some(u), _) => Some(self.user(|| key.key("user"), u)),
            (None, Some(global)) => Some(global.clone()),
            (None, None) => self.default_script_user(key),
        };
        let g = &self.out.effective.global;
        let security = g.enable_script_security && !g.allow_insecure_scripts;
        // Who the program runs as: the daemon (root) without a user; an
        // unknown user is reported already, and nothing can be checked for it.
        let runs_as = match &user {
            None => Some(RunsAs::ROOT),
            Some(u) => u.ids.map(|(uid, gid)| RunsAs {
                uid,
                gid: gid.unwrap_or(0),
            }),
        };
        let mut programs: Vec<(&str, bool)> = Vec::new();
        if spec.shell {
            programs.push(("/bin/sh", false));
            if let Some(p) = spec.program().filter(|p| Path::new(p).is_absolute()) {
                programs.push((p, false));
            }
        } else if let Some(p) = spec.program() {
            programs.push((p, true));
        }
        let mut pinned = None;
        for (program, is_argv0) in programs {
            let Some(runs_as) = runs_as else { break };
            let path = if program.contains('/') {
                // keepalived resolves a relative path from its working
                // directory; vrrpd leaves it to the system at run time.
                if !Path::new(program).is_absolute() {
                    continue;
                }
                PathBuf::from(program)
            } else {
                match find_in_path(program, runs_as) {
                    Ok(found) => found,
                    Err(path) => {
                        self.err(
                            key.clone(),
                            ErrorKind::ScriptNotInPath {
                                name: program.to_owned(),
                                path,
                                uid: runs_as.uid,
                            },
                        );
                        continue;
                    }
                }
            };
            let verdict = self
                .script_files
                .entry((path.clone(), runs_as, security))
                .or_insert_with(|| check_script_file(&path, runs_as, security))
                .clone();
            match verdict {
                Ok(run) if is_argv0 && run.as_os_str() != program => pinned = Some(run),
                Ok(_) => {}
                Err(kind) => self.err(key.clone(), kind),
            }
        }
        Command {
            argv: spec.command,
            shell: spec.shell,
            user,
            program: pinned,
        }
    }

    /// keepalived's default script user (`get_default_script_user`):
    /// `keepalived_script` when it exists, else root — which script
    /// security refuses (once, at the first script).
    fn default_script_user(&mut self, key: &KeyPath) -> Option<User> {
        let ids = *self
            .users
            .entry(DEFAULT_SCRIPT_USER.to_owned())
            .or_insert_with(|| lookup_user(DEFAULT_SCRIPT_USER));
        if ids.is_some() {
            return Some(User {
                spec: DEFAULT_SCRIPT_USER.to_owned(),
                ids,
            });
        }
        if self.out.effective.global.enable_script_security && !self.root_scripts_reported {
            self.root_scripts_reported = true;
            self.err(key.clone(), ErrorKind::NoScriptUser);
        }
        None
    }

    fn opt_command(
        &mut self,
        key: impl FnOnce() -> KeyPath,
        spec: Option<CommandSpec>,
    ) -> Option<Command> {
        spec.map(|s| self.command(&key(), s))
    }

    fn notify(
        &mut self,
        k: &KeyPath,
        [master, backup, fault, stop, generic]: [Option<CommandSpec>; 5],
    ) -> Notify {
        Notify {
            master: self.opt_command(|| k.key("notify_master"), master),
            backup: self.opt_command(|| k.key("notify_backup"), backup),
            fault: self.opt_command(|| k.key("notify_fault"), fault),
            stop: self.opt_command(|| k.key("notify_stop"), stop),
            generic: self.opt_command(|| k.key("notify"), generic),
        }
    }

    /// `[global]`; call first.
    pub fn global(&mut self, g: raw::Global) {
        let k = KeyPath::root("global");
        let d = GarpConfig::default();
        let version = match g.vrrp_version.map(Version::try_from) {
            None => Version::V2,
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                self.err(k.key("vrrp_version"), ErrorKind::Invalid(e.to_string()));
                Version::V2
            }
        };
        let refresh = g.vrrp_garp_master_refresh.map_or(Duration::ZERO, Dur::get);
        let global = Global {
            router_id: g.router_id,
            vrrp_version: version,
            vrrp_strict: g.vrrp_strict.unwrap_or(false),
            enable_script_security: g.enable_script_security.unwrap_or(true),
            allow_insecure_scripts: g.allow_insecure_scripts.unwrap_or(false),
            script_user: None,
            v3_checksum_as_v2: g.vrrp_v3_checksum_as_v2.unwrap_or(false),
            lower_prio_no_advert: g.vrrp_lower_prio_no_advert.unwrap_or(false),
            garp_extra_if: self
                .garp_extra_if_global(g.vrrp_garp_extra_if, g.vrrp_garp_extra_if_all),
            nftables: self.nftables(
                g.nftables,
                g.nftables_priority,
                g.nftables_counters,
                g.nftables_ifindex,
            ),
            down_timer_adverts: self.down_timer_adverts(
                KeyPath::root("global").key("vrrp_down_timer_adverts"),
                g.vrrp_down_timer_adverts,
                3,
            ),
            garp: GarpConfig {
                master_repeat: g.vrrp_garp_master_repeat.unwrap_or(d.master_repeat),
                master_delay: g.vrrp_garp_master_delay.map_or(d.master_delay, Dur::get),
                master_refresh: (!refresh.is_zero()).then_some(refresh),
                refresh_repeat: g
                    .vrrp_garp_master_refresh_repeat
                    .unwrap_or(d.refresh_repeat),
                interval: g.vrrp_garp_interval.map_or(d.interval, Dur::get),
                // keepalived: vrrp_garp_lower_prio_repeat and _delay
                // default to vrrp_garp_master_repeat and _delay.
                lower_prio_repeat: g
                    .vrrp_garp_lower_prio_repeat
                    .or(g.vrrp_garp_master_repeat)
                    .unwrap_or(d.master_repeat),
                lower_prio_delay: g
                    .vrrp_garp_lower_prio_delay
                    .or(g.vrrp_garp_master_delay)
                    .map_or(d.master_delay, Dur::get),
            },
            notify_timeout: g.notify_timeout.map_or(Duration::from_secs(30), Dur::get),
            log_format: g.log_format.unwrap_or_default(),
            http: g.http.map(|h| {
                h.listen
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090)))
            }),
            fifos: Fifos::default(),
            smtp: None,
            smtp_alert: [g.smtp_alert, g.smtp_alert_vrrp, g.smtp_alert_checker],
        };
        let timeout = global.notify_timeout;
        self.out.effective.global = global;
        self.nonzero(|| k.key("notify_timeout"), timeout, "notify_timeout");
        if let Some(spec) = g.script_user {
            let user = self.user(|| k.key("script_user"), &spec);
            self.out.effective.global.script_user = Some(user);
        }
        let fifos = Fifos {
            notify: self.fifo(&k, "notify_fifo", g.notify_fifo, g.notify_fifo_script),
            vrrp: self.fifo(
                &k,
                "vrrp_notify_fifo",
                g.vrrp_notify_fifo,
                g.vrrp_notify_fifo_script,
            ),
            lvs: self.fifo(
                &k,
                "lvs_notify_fifo",
                g.lvs_notify_fifo,
                g.lvs_notify_fifo_script,
            ),
        };
        // keepalived ignores a VRRP or LVS FIFO that is the global one,
        // and the LVS FIFO's script when it is the VRRP FIFO with one.
        let same = |a: &Option<Fifo>, b: &Option<Fifo>| matches!((a, b), (Some(a), Some(b)) if a.path == b.path);
        for (key, dup) in [
            ("vrrp_notify_fifo", same(&fifos.notify, &fifos.vrrp)),
            ("lvs_notify_fifo", same(&fifos.notify, &fifos.lvs)),
        ] {
            if dup {
                self.err(
                    k.key(key),
                    ErrorKind::Invalid(format!(
                        "{key} is notify_fifo, which has every event already (keepalived ignores {key} then); remove it"
                    )),
                );
            }
        }
        if same(&fifos.vrrp, &fifos.lvs)
            && fifos.vrrp.as_ref().is_some_and(|f| f.script.is_some())
            && fifos.lvs.as_ref().is_some_and(|f| f.script.is_some())
        {
            self.err(
                k.key("lvs_notify_fifo_script"),
                ErrorKind::Invalid(
                    "one FIFO, two readers: lvs_notify_fifo is vrrp_notify_fifo, which has a script already (keepalived ignores this one)"
                        .to_owned(),
                ),
            );
        }
        self.out.effective.global.fifos = fifos;
        let timeout = g
            .smtp_connect_timeout
            .map_or(Duration::from_secs(30), Dur::get);
        match (g.notification_email.is_empty(), g.smtp_server) {
            (true, None) => {
                for (key, set) in [
                    ("notification_email_from", g.notification_email_from.is_some()),
                    ("smtp_helo_name", g.smtp_helo_name.is_some()),
                    ("smtp_connect_timeout", g.smtp_connect_timeout.is_some()),
                ] {
                    if set {
                        self.err(
                            k.key(key),
                            ErrorKind::Invalid(format!(
                                "{key} without notification_email and smtp_server sends nothing"
                            )),
                        );
                    }
                }
            }
            (true, Some(_)) => self.err(
                k.key("smtp_server"),
                ErrorKind::Invalid(
                    "smtp_server without notification_email: no alert would be sent (keepalived sends none); add the recipients"
                        .to_owned(),
                ),
            ),
            (false, None) => self.err(
                k.key("notification_email"),
                ErrorKind::Invalid(
                    "notification_email without smtp_server: no alert would be sent (keepalived sends none); add the relay"
                        .to_owned(),
                ),
            ),
            (false, Some(server)) => {
                if let Err(e) = parse_host_port(&server, 25) {
                    self.err(k.key("smtp_server"), ErrorKind::Invalid(e));
                }
                for (n, to) in g.notification_email.iter().enumerate() {
                    if !is_mailbox(to) {
                        self.err(
                            k.key("notification_email").index(n),
                            ErrorKind::Invalid(format!("`{to}` is not a mail address")),
                        );
                    }
                }
                if let Some(from) = g.notification_email_from.as_deref()
                    && !is_mailbox(from)
                {
                    self.err(
                        k.key("notification_email_from"),
                        ErrorKind::Invalid(format!("`{from}` is not a mail address")),
                    );
                }
                self.nonzero(|| k.key("smtp_connect_timeout"), timeout, "smtp_connect_timeout");
                self.out.effective.global.smtp = Some(Box::new(Smtp {
                    server,
                    helo_name: g.smtp_helo_name,
                    from: g.notification_email_from,
                    to: g.notification_email,
                    connect_timeout: timeout,
                    no_email_faults: g.no_email_faults.unwrap_or(false),
                    no_checker_emails: g.no_checker_emails.unwrap_or(false),
                }));
            }
        }
    }

    /// A notify FIFO and its reader.
    fn fifo(
        &mut self,
        k: &KeyPath,
        key: &str,
        fifo: Option<raw::Fifo>,
        script: Option<CommandSpec>,
    ) -> Option<Fifo> {
        let script_key = format!("{key}_script");
        let Some(f) = fifo else {
            if script.is_some() {
                self.err(
                    k.key(&script_key),
                    ErrorKind::Invalid(format!("{script_key} without {key}")),
                );
            }
            return None;
        };
        if !Path::new(&f.path).is_absolute() {
            self.err(
                k.key(key),
                ErrorKind::Invalid(format!("`{}` is not an absolute path", f.path)),
            );
        }
        let owner = f.user.map(|u| self.user(|| k.key(key).key("user"), &u));
        let script = script.map(|s| self.command(&k.key(&script_key), s));
        Some(Fifo {
            path: PathBuf::from(f.path),
            owner,
            script,
        })
    }

    /// keepalived's `smtp_alert` default of instances and sync groups.
    fn vrrp_alert(&self, own: Option<bool>) -> bool {
        let [all, vrrp, _] = self.out.effective.global.smtp_alert;
        own.or(vrrp).or(all).unwrap_or(false)
    }

    /// keepalived's `smtp_alert` default of virtual servers (`rs`: of real
    /// servers, which is on).
    fn checker_alert(&self, own: Option<bool>, rs: bool) -> bool {
        let [all, _, checker] = self.out.effective.global.smtp_alert;
        own.or(checker).or(all).unwrap_or(rs)
    }

    /// `[track_process]`; after [`Resolver::global`], before
    /// [`Resolver::vrrp`].
    pub fn track_processes(&mut self, processes: BTreeMap<String, raw::TrackProcess>) {
        for (name, t) in processes {
            match self.track_process(&name, t) {
                Some(p) => {
                    self.out.effective.track_processes.insert(name, p);
                }
                None => {
                    self.failed.processes.insert(name);
                }
            }
        }
    }

    /// keepalived's `vrrp_track_process` rules (`vrrp_parser.c`).
    fn track_process(&mut self, name: &str, t: raw::TrackProcess) -> Option<TrackProcess> {
        use healthcheck::process::{ParamMatch, ProcessSpec};
        let k = KeyPath::root("track_process").key(name);
        let Some(process) = t.process.filter(|p| !p.trim().is_empty()) else {
            self.err(k.key("process"), ErrorKind::Missing("process"));
            return None;
        };
        let mut spec = ProcessSpec::new(name, process.clone());
        spec.params = t.params;
        spec.param_match = match t.param_match {
            Some(raw::ParamMatch::Exact) => ParamMatch::Exact,
            Some(raw::ParamMatch::Partial) => ParamMatch::Partial,
            Some(raw::ParamMatch::Initial) => ParamMatch::Initial,
            None if !spec.params.is_empty() => ParamMatch::Exact,
            None => ParamMatch::None,
        };
        spec.full_command =
            t.full_command.unwrap_or(false) || !spec.params.is_empty() || t.param_match.is_some();
        if !spec.full_command && process.len() > 15 {
            self.err(
                k.key("process"),
                ErrorKind::Invalid(format!(
                    "`{process}` is longer than the 15 characters of a process's name, so it never matches (keepalived's neither); write full_command = true to match the command line"
                )),
            );
        }
        if spec.full_command && t.full_command == Some(false) {
            self.err(
                k.key("full_command"),
                ErrorKind::Invalid(
                    "params and param_match match the command line: full_command = false contradicts them"
                        .to_owned(),
                ),
            );
        }
        let quorum_max = t.quorum_max.unwrap_or(u32::MAX);
        let quorum = match (t.quorum, quorum_max) {
            (None, 0) => 0,
            (q, _) => q.unwrap_or(1),
        };
        if (t.quorum == Some(0) && quorum_max != 0) || quorum > 65_535 {
            self.err(
                k.key("quorum"),
                ErrorKind::Invalid(format!("quorum {quorum} is out of 1..=65535")),
            );
        }
        if t.quorum_max.is_some_and(|m| m > 65_535) {
            self.err(
                k.key("quorum_max"),
                ErrorKind::Invalid(format!("quorum_max {quorum_max} is out of 0..=65535")),
            );
        } else if quorum_max < quorum {
            self.err(
                k.key("quorum_max"),
                ErrorKind::Invalid(format!("quorum_max {quorum_max} is below quorum {quorum}")),
            );
        }
        spec.quorum = quorum;
        spec.quorum_max = quorum_max;
        let delay = |d: Option<Dur>| d.map(Dur::get);
        let both = |key: &str, d: Option<Duration>, r: &mut Self| {
            if let Some(d) = d
                && (d.is_zero() || d > Duration::from_secs(3600))
            {
                r.err(
                    k.key(key),
                    ErrorKind::Invalid(format!("{key} must be above 0 and at most 3600s")),
                );
            }
            d.unwrap_or(Duration::ZERO)
        };
        let general = both("delay", delay(t.delay), self);
        spec.fork_delay =
            delay(t.fork_delay).map_or(general, |d| both("fork_delay", Some(d), self));
        spec.terminate_delay =
            delay(t.terminate_delay).map_or(general, |d| both("terminate_delay", Some(d), self));
        let weight = self.weight(|| k.key("weight"), t.weight.unwrap_or(0), FILE_WEIGHT);
        Some(TrackProcess {
            spec,
            weight,
            reverse: t.reverse.unwrap_or(false),
        })
    }

    /// Scripts, track files, instances and sync groups; after
    /// [`Resolver::global`].
    pub fn vrrp(
        &mut self,
        scripts: BTreeMap<String, raw::Script>,
        track_files: BTreeMap<String, raw::TrackFile>,
        instances: BTreeMap<String, raw::Instance>,
        groups: BTreeMap<String, raw::SyncGroup>,
    ) {
        for (name, s) in scripts {
            if let Some(script) = self.script(&name, s) {
                self.out.effective.scripts.insert(name, script);
            } else {
                self.failed.scripts.insert(name);
            }
        }
        for (name, t) in track_files {
            if let Some(tf) = self.track_file(&name, t) {
                self.out.effective.track_files.insert(name, tf);
            } else {
                self.failed.track_files.insert(name);
            }
        }
        let mut vrids: HashMap<(String, Family, u8), String> = HashMap::new();
        for (name, i) in instances {
            if let Some(inst) = self.instance(&name, i, &mut vrids) {
                self.out.effective.instances.insert(name, inst);
            } else {
                self.failed.instances.insert(name);
            }
        }
        let mut member_of: BTreeMap<String, String> = BTreeMap::new();
        for (name, g) in groups {
            let group = self.sync_group(&name, g, &mut member_of);
            self.out.effective.sync_groups.insert(name, group);
        }
        self.ignored_weights(&member_of);
    }

    fn script(&mut self, name: &str, s: raw::Script) -> Option<Script> {
        let k = KeyPath::root("script").key(name);
        let Some(mut spec) = s.command else {
            self.err(k.key("command"), ErrorKind::Missing("command"));
            return None;
        };
        if let Some(user) = s.user {
            spec.user = Some(user);
        }
        if s.shell == Some(true) && !spec.shell {
            spec.command = vec![spec.command.join(" ")];
            spec.shell = true;
        }
        let command = self.command(&k.key("command"), spec);
        let interval = s.interval.map_or(Duration::from_secs(1), Dur::get);
        let timeout = s.timeout.map_or(interval, Dur::get);
        self.nonzero(|| k.key("interval"), interval, "interval");
        self.nonzero(|| k.key("timeout"), timeout, "timeout");
        self.bounded(|| k.key("interval"), interval);
        self.bounded(|| k.key("timeout"), timeout);
        let weight = self.weight(|| k.key("weight"), s.weight.unwrap_or(0), SCRIPT_WEIGHT);
        let rise = s.rise.unwrap_or(1);
        let fall = s.fall.unwrap_or(1);
        if rise == 0 {
            self.err(k.key("rise"), ErrorKind::Zero("rise"));
        }
        if fall == 0 {
            self.err(k.key("fall"), ErrorKind::Zero("fall"));
        }
        Some(Script {
            command,
            interval,
            timeout,
            weight,
            reverse: s.reverse.unwrap_or(false),
            rise,
            fall,
            init_fail: s.init_fail.unwrap_or(false),
        })
    }

    fn track_file(&mut self, name: &str, t: raw::TrackFile) -> Option<TrackFile> {
        let k = KeyPath::root("track_file").key(name);
        let Some(file) = t.file.filter(|f| !f.is_empty()) else {
            self.err(k.key("file"), ErrorKind::Missing("file"));
            return None;
        };
        let weight = self.weight(|| k.key("weight"), t.weight.unwrap_or(1), FILE_WEIGHT);
        if t.init_overwrite.is_some() && t.init_file.is_none() {
            self.err(
                k.key("init_overwrite"),
                ErrorKind::Invalid("`init_overwrite` needs `init_file`".to_owned()),
            );
        }
        Some(TrackFile {
            file: PathBuf::from(file),
            weight,
            reverse: t.reverse.unwrap_or(false),
            init: t.init_file.map(|v| (v, t.init_overwrite.unwrap_or(false))),
        })
    }

    fn instance(
        &mut self,
        name: &str,
        i: raw::Instance,
        vrids: &mut HashMap<(String, Family, u8), String>,
    ) -> Option<Instance> {
        let k = KeyPath::root("instance").key(name);
        let g = self.out.effective.global.clone();
        let interface = match i.interface {
            Some(s) if !s.trim().is_empty() => s,
            Some(_) => {
                self.err(
                    k.key("interface"),
                    ErrorKind::Invalid("interface must not be empty".to_owned()),
                );
                return None;
            }
            None => {
                self.err(k.clone(), ErrorKind::Missing("interface"));
                return None;
            }
        };
        let Some(vrid) = i.virtual_router_id else {
            self.err(k.clone(), ErrorKind::Missing("virtual_router_id"));
            return None;
        };
        let strict = i.strict_mode.unwrap_or(g.vrrp_strict);
        let mut vips = Vec::with_capacity(i.virtual_ipaddress.len());
        for (n, v) in i.virtual_ipaddress.into_iter().enumerate() {
            vips.extend(self.vip(k.key("virtual_ipaddress").index(n), v));
        }
        let mut excluded = Vec::with_capacity(i.virtual_ipaddress_excluded.len());
        for (n, v) in i.virtual_ipaddress_excluded.into_iter().enumerate() {
            excluded.extend(self.vip(k.key("virtual_ipaddress_excluded").index(n), v));
        }
        let family = family_of(
            vips.first().map(|v| v.address.addr),
            i.unicast_src_ip,
            i.unicast_peer.first().copied(),
        );
        // keepalived: an IPv6 instance without a version is VRRPv3.
        let version = match i.version.map(Version::try_from) {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                self.err(k.key("version"), ErrorKind::Invalid(e.to_string()));
                g.vrrp_version
            }
            None if family == Family::Ipv6 => Version::V3,
            None => g.vrrp_version,
        };
        let state = i.state.unwrap_or_default();
        // keepalived: `state MASTER` without a priority is the owner.
        let priority = i.priority.unwrap_or(if state == StartState::Master {
            Priority::OWNER
        } else {
            Priority::DEFAULT
        });
        let advert = i.advert_int.map_or(Duration::from_secs(1), Dur::get);
        let advert_int = match Centisecs::from_duration(advert) {
            Some(cs) if advert.as_nanos().is_multiple_of(10_000_000) => cs,
            _ => {
                self.err(
                    k.key("advert_int"),
                    ErrorKind::Invalid(format!(
                        "advertisement interval {} is not a whole number of centiseconds up to 655.35s",
                        Dur(advert)
                    )),
                );
                Centisecs::ONE_SECOND
            }
        };
        let nopreempt = i.nopreempt.unwrap_or(false);
        let preempt_delay = i.preempt_delay.map_or(Duration::ZERO, Dur::get);
        if state == StartState::Master || priority.is_owner() {
            let why = if priority.is_owner() {
                "priority 255"
            } else {
                "state = \"MASTER\""
            };
            if nopreempt {
                self.err(
                    k.key("nopreempt"),
                    ErrorKind::Invalid(format!(
                        "nopreempt has no effect with {why} (keepalived clears it); remove one of them"
                    )),
                );
            }
            if !preempt_delay.is_zero() && state == StartState::Master {
                self.err(
                    k.key("preempt_delay"),
                    ErrorKind::Invalid(format!(
                        "preempt_delay has no effect with {why} (keepalived clears it); remove one of them"
                    )),
                );
            }
        }
        if strict {
            if !preempt_delay.is_zero() {
                self.err(
                    k.key("preempt_delay"),
                    ErrorKind::Strict("preempt_delay is not allowed in strict mode".to_owned()),
                );
            }
            if !i.unicast_peer.is_empty() {
                self.err(
                    k.key("unicast_peer"),
                    ErrorKind::Strict(
                        "unicast peers are not allowed in strict mode (keepalived refuses the whole configuration)"
                            .to_owned(),
                    ),
                );
            }
            if i.lower_prio_no_advert == Some(false) {
                self.err(
                    k.key("lower_prio_no_advert"),
                    ErrorKind::Strict(
                        "strict mode never answers a lower-priority advertisement at once"
                            .to_owned(),
                    ),
                );
            }
        }
        if vips.is_empty() && (strict || version == Version::V3) {
            self.err(
                k.key("virtual_ipaddress"),
                ErrorKind::Invalid(
                    "at least one virtual address is required (VRRPv3 or strict mode)".to_owned(),
                ),
            );
        }
        let auth_pass = match i.authentication {
            None => None,
            Some(a) => {
                let ak = k.key("authentication");
                let auth_type = a.auth_type.unwrap_or_else(|| "PASS".to_owned());
                if !auth_type.eq_ignore_ascii_case("PASS") {
                    self.err(ak.key("auth_type"), ErrorKind::AuthType(auth_type));
                }
                if strict {
                    self.err(
                        ak.clone(),
                        ErrorKind::Strict(
                            "authentication is not sent in strict mode (keepalived ignores it)"
                                .to_owned(),
                        ),
                    );
                }
                match a.auth_pass {
                    None => {
                        self.err(ak.clone(), ErrorKind::Missing("auth_pass"));
                        None
                    }
                    Some(p) if p.is_empty() => {
                        self.err(ak.key("auth_pass"), ErrorKind::PasswordEmpty);
                        None
                    }
                    Some(p) if p.len() > 8 => {
                        self.err(ak.key("auth_pass"), ErrorKind::PasswordTooLong(p.len()));
                        None
                    }
                    Some(p) => Some(p),
                }
            }
        };
        let refresh = i.garp_master_refresh.map_or(g.garp.master_refresh, |r| {
            Some(r.get()).filter(|r| !r.is_zero())
        });
        let master_repeat = i.garp_master_repeat.unwrap_or(g.garp.master_repeat);
        let master_delay = i.garp_master_delay.map_or(g.garp.master_delay, Dur::get);
        let garp = GarpConfig {
            master_repeat,
            master_delay,
            master_refresh: refresh,
            refresh_repeat: i
                .garp_master_refresh_repeat
                .unwrap_or(g.garp.refresh_repeat),
            interval: i.garp_interval.map_or(g.garp.interval, Dur::get),
            // keepalived: garp_lower_prio_repeat and _delay default to the
            // global ones, and are 0 in strict mode.
            lower_prio_repeat: self.lower_prio_garp(
                &k,
                "garp_lower_prio_repeat",
                strict,
                i.garp_lower_prio_repeat,
                g.garp.lower_prio_repeat,
                0,
            ),
            lower_prio_delay: self.lower_prio_garp(
                &k,
                "garp_lower_prio_delay",
                strict,
                i.garp_lower_prio_delay.map(Dur::get),
                g.garp.lower_prio_delay,
                Duration::ZERO,
            ),
        };
        let down_timer_adverts = self.down_timer_adverts(
            k.key("down_timer_adverts"),
            i.down_timer_adverts,
            g.down_timer_adverts,
        );
        let mut track_interface = Vec::new();
        for (n, t) in i.track_interface.into_iter().enumerate() {
            if t.name == interface {
                // keepalived: the instance's own interface is tracked with
                // weight 0 whatever track_interface says.
                self.err(
                    k.key("track_interface").index(n),
                    ErrorKind::Invalid(format!(
                        "{} is the instance's own interface, always tracked: down means Fault (keepalived ignores a weight given here); remove it from track_interface",
                        t.name
                    )),
                );
                continue;
            }
            let weight = self.weight(
                || k.key("track_interface").index(n),
                t.weight.unwrap_or(0),
                SCRIPT_WEIGHT,
            );
            track_interface.push(Tracked {
                name: t.name,
                weight,
                reverse: t.reverse.unwrap_or(false),
            });
        }
        let mut track_script = Vec::new();
        for (n, t) in i.track_script.into_iter().enumerate() {
            let tk = || k.key("track_script").index(n);
            let Some(script) = self.out.effective.scripts.get(&t.name) else {
                if !self.failed.scripts.contains(&t.name) {
                    self.err(tk(), ErrorKind::UndefinedScript(t.name));
                }
                continue;
            };
            let (default_weight, default_reverse) = (script.weight, script.reverse);
            let weight = match t.weight {
                Some(w) => self.weight(tk, w, SCRIPT_WEIGHT),
                None => default_weight,
            };
            track_script.push(Tracked {
                name: t.name,
                weight,
                reverse: t.reverse.unwrap_or(default_reverse),
            });
        }
        let mut track_file = Vec::new();
        for (n, t) in i.track_file.into_iter().enumerate() {
            let tk = || k.key("track_file").index(n);
            let (path, default_weight, default_reverse) = match (&t.name, t.path) {
                (Some(name), _) => match self.out.effective.track_files.get(name) {
                    Some(tf) => (tf.file.clone(), tf.weight, tf.reverse),
                    None => {
                        if !self.failed.track_files.contains(name) {
                            self.err(tk(), ErrorKind::UndefinedTrackFile(name.clone()));
                        }
                        continue;
                    }
                },
                (None, Some(path)) => (PathBuf::from(path), Weight::FAULT, false),
                (None, None) => continue,
            };
            let weight = match t.weight {
                Some(w) => self.weight(tk, w, FILE_WEIGHT),
                None => default_weight,
            };
            track_file.push(TrackedFile {
                name: t.name,
                path,
                weight,
                reverse: t.reverse.unwrap_or(default_reverse),
            });
        }
        let mut track_process = Vec::new();
        for (n, t) in i.track_process.into_iter().enumerate() {
            let tk = || k.key("track_process").index(n);
            let Some(p) = self.out.effective.track_processes.get(&t.name) else {
                if !self.failed.processes.contains(&t.name) {
                    self.err(
                        tk(),
                        ErrorKind::Invalid(format!(
                            "track process `{}` is not defined (no [track_process.{}])",
                            t.name, t.name
                        )),
                    );
                }
                continue;
            };
            let (default_weight, default_reverse) = (p.weight, p.reverse);
            if track_process.iter().any(|x: &Tracked| x.name == t.name) {
                self.err(
                    tk(),
                    ErrorKind::Invalid(format!(
                        "track process `{}` is tracked twice (keepalived ignores the second)",
                        t.name
                    )),
                );
                continue;
            }
            let weight = match t.weight {
                Some(w) => self.weight(tk, w, FILE_WEIGHT),
                None => default_weight,
            };
            track_process.push(Tracked {
                name: t.name,
                weight,
                reverse: t.reverse.unwrap_or(default_reverse),
            });
        }
        let mut problems = Vec::new();
        let mut problem = |key, kind| problems.push((key, kind));
        let routes =
            super::routes::parse_routes(&i.virtual_routes, &k.key("virtual_routes"), &mut problem);
        let export_routes = super::routes::export(i.export_routes, &k, &mut problem);
        let rules =
            super::routes::parse_rules(&i.virtual_rules, &k.key("virtual_rules"), &mut problem);
        for (key, kind) in problems {
            self.err(key, kind);
        }
        let notify = self.notify(
            &k,
            [
                i.notify_master,
                i.notify_backup,
                i.notify_fault,
                i.notify_stop,
                i.notify,
            ],
        );
        let family = family_of(
            vips.first().map(|v| v.address.addr),
            i.unicast_src_ip,
            i.unicast_peer.first().copied(),
        );
        let vmac = self.vmac(
            &k,
            i.use_vmac.as_ref(),
            i.vmac_xmit_base,
            vrid,
            family,
            &interface,
        );
        let accept = self.accept_mode(&k, i.accept, strict, version, priority);
        let garp_extra_if =
            self.garp_extra_if(&k, i.garp_extra_if, i.garp_extra_if_all, g.garp_extra_if);
        let inst = Instance {
            vmac,
            down_timer_adverts,
            dont_track_primary: i.dont_track_primary.unwrap_or(false),
            promote_secondaries: i.promote_secondaries.unwrap_or(false),
            accept,
            garp_extra_if,
            track_process,
            interface,
            vrid,
            priority,
            advert_int,
            version,
            state,
            nopreempt,
            preempt_delay,
            strict,
            vips,
            unicast_src_ip: i.unicast_src_ip,
            unicast_peer: i.unicast_peer,
            auth_pass,
            garp,
            track_interface,
            track_script,
            track_file,
            notify,
            // keepalived's strict mode forces it.
            lower_prio_no_advert: strict
                || i.lower_prio_no_advert.unwrap_or(g.lower_prio_no_advert),
            checksum_as_v2: i.checksum_as_v2.unwrap_or(g.v3_checksum_as_v2),
            smtp_alert: self.vrrp_alert(i.smtp_alert),
            routes,
            export_routes,
            rules,
            excluded,
        };
        for e in inst.core_config().validate_all() {
            let key = match e.field {
                Field::Priority => k.key("priority"),
                Field::Version => k.key("version"),
                Field::AdvertInterval => k.key("advert_int"),
                Field::Auth => k.key("authentication"),
                Field::VirtualAddress(n) if n < inst.vips.len() => {
                    k.key("virtual_ipaddress").index(n)
                }
                Field::VirtualAddress(_) => k.key("virtual_ipaddress"),
                Field::UnicastPeer(n) => k.key("unicast_peer").index(n),
                _ => k.clone(),
            };
            self.err(key, ErrorKind::Core(e.error));
        }
        let dup_key = (inst.interface.clone(), inst.family(), inst.vrid.get());
        if let Some(other) = vrids.get(&dup_key) {
            self.err(
                k.key("virtual_router_id"),
                ErrorKind::DuplicateVrid {
                    vrid: dup_key.2,
                    interface: dup_key.0.clone(),
                    family: dup_key.1.to_string(),
                    other: other.clone(),
                },
            );
        } else {
            vrids.insert(dup_key, name.to_owned());
        }
        Some(inst)
    }

    fn sync_group(
        &mut self,
        name: &str,
        g: raw::SyncGroup,
        member_of: &mut BTreeMap<String, String>,
    ) -> SyncGroup {
        let k = KeyPath::root("sync_group").key(name);
        if g.group.is_empty() {
            self.err(
                k.key("group"),
                ErrorKind::Invalid("a sync group needs at least one instance".to_owned()),
            );
        }
        for (n, member) in g.group.iter().enumerate() {
            if self.failed.instances.contains(member) {
                continue;
            }
            if !self.out.effective.instances.contains_key(member) {
                self.err(
                    k.key("group").index(n),
                    ErrorKind::UndefinedInstance(member.clone()),
                );
            } else if let Some(first) = member_of.get(member) {
                let first = first.clone();
                self.err(
                    k.key("group").index(n),
                    ErrorKind::InstanceInTwoGroups {
                        instance: member.clone(),
                        group: first,
                    },
                );
            } else {
                member_of.insert(member.clone(), name.to_owned());
            }
        }
        let notify = self.notify(
            &k,
            [
                g.notify_master,
                g.notify_backup,
                g.notify_fault,
                g.notify_stop,
                g.notify,
            ],
        );
        SyncGroup {
            members: g.group,
            tracking_weight: g.sync_group_tracking_weight.unwrap_or(false),
            notify,
            smtp_alert: self.vrrp_alert(g.smtp_alert),
        }
    }

    /// keepalived ignores the weights of sync-group members (unless the
    /// group sets `sync_group_tracking_weight`) and those of tracked files
    /// of an address owner; a file that asks for them is refused here
    /// rather than run with a meaning keepalived would not give it.
    fn ignored_weights(&mut self, member_of: &BTreeMap<String, String>) {
        let mut problems = Vec::new();
        for (name, inst) in &self.out.effective.instances {
            let k = KeyPath::root("instance").key(name);
            let group = member_of.get(name).filter(|g| {
                self.out
                    .effective
                    .sync_groups
                    .get(*g)
                    .is_some_and(|g| !g.tracking_weight)
            });
            if let Some(group) = group {
                let why = format!(
                    "instance `{name}` is in sync group `{group}`, whose members' weights keepalived ignores: write weight 0, or set sync_group_tracking_weight = true on the group"
                );
                for (list, key) in [
                    (&inst.track_interface, "track_interface"),
                    (&inst.track_script, "track_script"),
                ] {
                    for (n, t) in list.iter().enumerate() {
                        if t.weight != Weight::FAULT {
                            problems.push((k.key(key).index(n), why.clone()));
                        }
                    }
                }
                for (n, t) in inst.track_file.iter().enumerate() {
                    if t.weight != Weight::FAULT {
                        problems.push((k.key("track_file").index(n), why.clone()));
                    }
                }
            } else if inst.priority.is_owner() {
                for (n, t) in inst.track_file.iter().enumerate() {
                    if t.weight != Weight::FAULT {
                        problems.push((
                            k.key("track_file").index(n),
                            format!("instance `{name}` has priority 255, whose tracked files keepalived reads with weight 0 or not at all: write weight 0"),
                        ));
                    }
                }
            }
        }
        for (key, why) in problems {
            self.err(key, ErrorKind::IgnoredWeight(why));
        }
    }

    /// `[virtual_server_group]`: every entry read as keepalived reads it;
    /// after [`Resolver::global`], before the virtual servers.
    pub fn virtual_server_groups(&mut self, groups: BTreeMap<String, Vec<String>>) {
        for (name, lines) in groups {
            let k = KeyPath::root("virtual_server_group").key(&name);
            if lines.is_empty() {
                self.err(
                    k.clone(),
                    ErrorKind::VirtualServer(
                        "a virtual server group needs at least one entry (keepalived removes an empty one)"
                            .to_owned(),
                    ),
                );
            }
            let mut entries = Vec::with_capacity(lines.len());
            for (n, line) in lines.iter().enumerate() {
                match line.parse::<lvs::GroupEntry>() {
                    Ok(e) => entries.push(e),
                    Err(e) => self.err(k.index(n), ErrorKind::VirtualServer(e.to_string())),
                }
            }
            let has = |f: lvs::AddressFamily| entries.iter().any(|e| e.family() == Some(f));
            if has(lvs::AddressFamily::Ipv4)
                && has(lvs::AddressFamily::Ipv6)
                && entries
                    .iter()
                    .any(|e| e.is_fwmark() && e.family().is_none())
            {
                self.err(
                    k.clone(),
                    ErrorKind::VirtualServer(
                        "a group with IPv4 and IPv6 entries needs a family on every fwmark (`fwmark N inet6`); keepalived removes the group"
                            .to_owned(),
                    ),
                );
            }
            self.out
                .effective
                .virtual_server_groups
                .insert(name, entries);
        }
    }

    /// The services of a virtual server written with `group`, each
    /// registered against duplicates; `None` (and an error) when the group
    /// cannot serve it.
    fn group_services(
        &mut self,
        index: usize,
        name: &str,
        vs: &raw::VirtualServer,
    ) -> Option<VsGroup> {
        let k = || KeyPath::root("virtual_server").index(index);
        let vserr = |r: &mut Self, key: KeyPath, msg: String| {
            r.err(key, ErrorKind::VirtualServer(msg));
        };
        let Some(entries) = self.out.effective.virtual_server_groups.get(name).cloned() else {
            vserr(
                self,
                k().key("group"),
                format!(
                    "virtual_server_group `{name}` is not defined (no [virtual_server_group] {name})"
                ),
            );
            return None;
        };
        let families: BTreeSet<bool> = entries
            .iter()
            .filter_map(lvs::GroupEntry::family)
            .map(|f| f == lvs::AddressFamily::Ipv6)
            .collect();
        if families.len() > 1 {
            vserr(
                self,
                k().key("group"),
                format!(
                    "group `{name}` mixes IPv4 and IPv6 services; a virtual server's real servers are of one family: use one group per family"
                ),
            );
            return None;
        }
        // Firewall marks without a family: the virtual server's `family`,
        // else the group's other entries', else its real servers', else
        // IPv4 (keepalived's order).
        let fwmark_family = vs
            .family
            .or_else(|| {
                families
                    .first()
                    .map(|v6| if *v6 { IpFamily::Inet6 } else { IpFamily::Inet })
            })
            .or_else(|| {
                vs.real_server.first().map(|r| {
                    if r.ip.is_ipv6() {
                        IpFamily::Inet6
                    } else {
                        IpFamily::Inet
                    }
                })
            })
            .unwrap_or_default();
        if let (Some(f), Some(v6)) = (vs.family, families.first())
            && (f == IpFamily::Inet6) != *v6
        {
            vserr(
                self,
                k().key("family"),
                format!("family {f:?} does not match the addresses of group `{name}`"),
            );
        }
        let family = match fwmark_family {
            IpFamily::Inet => lvs::AddressFamily::Ipv4,
            IpFamily::Inet6 => lvs::AddressFamily::Ipv6,
        };
        let protocol = match vs.protocol.unwrap_or_default() {
            VsProtocol::Tcp => lvs::Protocol::Tcp,
            VsProtocol::Udp => lvs::Protocol::Udp,
            VsProtocol::Sctp => lvs::Protocol::Sctp,
        };
        if vs.persistence_timeout.is_none()
            && let Some(e) = entries
                .iter()
                .find(|e| matches!(e, lvs::GroupEntry::Addresses { port: 0, .. }))
        {
            vserr(
                self,
                k().key("group"),
                format!(
                    "group `{name}` entry `{e}` has no port: a service on every port must be persistent (keepalived sets persistence_timeout 360); write persistence_timeout"
                ),
            );
        }
        let mut services = Vec::new();
        let mut duplicate = None;
        for key in entries
            .iter()
            .flat_map(|e| e.services(protocol, family))
            .filter_map(ServiceAddr::from_key)
        {
            if let Some(first) = self.services.insert(key, index)
                && duplicate.is_none()
            {
                duplicate = Some((key, first));
            }
            services.push(key);
        }
        if let Some((key, first)) = duplicate {
            let what = if first == index {
                format!("group `{name}` holds {key} twice")
            } else {
                format!("virtual server {key} (group `{name}`) is also virtual_server[{first}]")
            };
            vserr(self, k(), what);
        }
        let member = self.group_members.entry(name.to_owned()).or_default();
        let n = *member;
        *member += 1;
        Some(VsGroup {
            name: name.to_owned(),
            member: n,
            fwmark_family,
            services,
        })
    }

    /// One `[[virtual_server]]`; after [`Resolver::global`].
    pub fn virtual_server(&mut self, index: usize, vs: raw::VirtualServer) {
        let k = || KeyPath::root("virtual_server").index(index);
        let vserr = |r: &mut Self, key: KeyPath, msg: String| {
            r.err(key, ErrorKind::VirtualServer(msg));
        };
        let protocol = vs.protocol.unwrap_or_default();
        let mut group = None;
        let service = match (vs.ip, vs.port, vs.fwmark, vs.group.as_deref()) {
            (Some(ip), Some(port), None, None) => {
                ServiceAddr::Socket(protocol, SocketAddr::new(ip, port))
            }
            (None, None, Some(0), None) => {
                vserr(self, k().key("fwmark"), "fwmark must not be 0".to_owned());
                return;
            }
            (None, None, Some(mark), None) => {
                ServiceAddr::Fwmark(mark, vs.family.unwrap_or_default())
            }
            (None, None, None, Some(name)) => {
                let name = name.to_owned();
                let Some(g) = self.group_services(index, &name, &vs) else {
                    return;
                };
                let Some(first) = g.services.first().copied() else {
                    return;
                };
                group = Some(Box::new(g));
                first
            }
            (Some(_), None, None, None) => {
                vserr(
                    self,
                    k().key("ip"),
                    "a virtual server with `ip` needs `port`".to_owned(),
                );
                return;
            }
            _ => {
                vserr(
                    self,
                    k(),
                    "set either `ip` and `port`, `fwmark`, or `group`".to_owned(),
                );
                return;
            }
        };
        if group.is_none()
            && let Some(first) = self.services.insert(service, index)
        {
            vserr(
                self,
                k(),
                format!("virtual server {service} is also virtual_server[{first}]"),
            );
        }
        let v6 = service.is_ipv6();
        let scheduler = match vs.lb_algo.as_deref() {
            None => lvs::Scheduler::WLC,
            Some(name) => match lvs::Scheduler::new(name) {
                Ok(s) => s,
                Err(_) => {
                    vserr(
                        self,
                        k().key("lb_algo"),
                        format!(
                            "`{name}` is not a scheduler name (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, mh, sed, nq, fo, ovf, twos)"
                        ),
                    );
                    lvs::Scheduler::WLC
                }
            },
        };
        let delay_loop = vs.delay_loop.map_or(Duration::from_secs(60), Dur::get);
        self.nonzero(|| k().key("delay_loop"), delay_loop, "delay_loop");
        if let Some(g) = vs.persistence_granularity
            && g > if v6 { 128 } else { 32 }
        {
            vserr(
                self,
                k().key("persistence_granularity"),
                format!("prefix length {g} is too long for the family"),
            );
        }
        // keepalived: a real server without a port takes the virtual
        // server's, except in a group (port 0).
        let default_port = match service {
            ServiceAddr::Socket(_, a) if group.is_none() => a.port(),
            _ => 0,
        };
        let group_addresses = group.as_ref().is_some_and(|g| {
            g.services
                .iter()
                .any(|s| matches!(s, ServiceAddr::Socket(..)))
        });
        let sorry_server = match vs
            .sorry_server
            .as_deref()
            .map(|s| parse_socket(s, default_port))
        {
            None => None,
            Some(Ok(addr)) => {
                if addr.is_ipv6() != v6 {
                    vserr(
                        self,
                        k().key("sorry_server"),
                        format!("{addr} is not of the virtual server's address family"),
                    );
                }
                Some(addr)
            }
            Some(Err(e)) => {
                vserr(self, k().key("sorry_server"), e);
                None
            }
        };
        let export_routes = {
            let mut problems = Vec::new();
            let export = super::routes::export(vs.export_routes, &k(), &mut |key, kind| {
                problems.push((key, kind));
            });
            for (key, kind) in problems {
                self.err(key, kind);
            }
            let services = group
                .as_ref()
                .map_or(std::slice::from_ref(&service), |g| &g.services[..]);
            if export.is_some()
                && !services
                    .iter()
                    .any(|s| matches!(s, ServiceAddr::Socket(..)))
            {
                vserr(
                    self,
                    k().key("export_routes"),
                    "a firewall-mark service has no address to export as a route: export the addresses the mark is set for with `static_routes` or an instance's `export_routes`".to_owned(),
                );
            }
            export
        };
        let quorum_up = self.opt_command(|| k().key("quorum_up"), vs.quorum_up);
        let quorum_down = self.opt_command(|| k().key("quorum_down"), vs.quorum_down);
        let defaults = Inherited {
            delay_loop,
            connect_timeout: vs.connect_timeout.map(Dur::get),
            retry: vs.retry,
            delay_before_retry: vs.delay_before_retry.map(Dur::get),
        };
        let alpha = vs.alpha.unwrap_or(false);
        let inhibit = vs.inhibit_on_failure.unwrap_or(false);
        let lb_kind = vs.lb_kind.unwrap_or_default();
        let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
        let mut real_servers = Vec::with_capacity(vs.real_server.len());
        for (n, rs) in vs.real_server.into_iter().enumerate() {
            let rk = || k().key("real_server").index(n);
            if rs.ip.is_ipv6() != v6 {
                vserr(
                    self,
                    rk().key("ip"),
                    format!("{} is not of the virtual server's address family", rs.ip),
                );
            }
            let port = rs.port.unwrap_or(default_port);
            let rs_kind = rs.lb_kind.unwrap_or(vs.lb_kind.unwrap_or_default());
            if port == 0
                && matches!(service, ServiceAddr::Socket(..))
                && (group.is_none() || rs_kind == LbKind::Nat)
            {
                let why = if group_addresses {
                    "a NAT real server of a group needs its port (keepalived would forward to port 0)"
                } else {
                    "port must not be 0"
                };
                vserr(self, rk().key("port"), why.to_owned());
            }
            let addr = SocketAddr::new(rs.ip, port);
            if sorry_server == Some(addr) {
                vserr(self, rk(), format!("{addr} is also the sorry_server"));
            }
            if let Some(first) = seen.insert(addr, n) {
                vserr(self, rk(), format!("{addr} is also real_server[{first}]"));
            }
            let inherited = Inherited {
                delay_loop: rs.delay_loop.map_or(defaults.delay_loop, Dur::get),
                connect_timeout: rs
                    .connect_timeout
                    .map(Dur::get)
                    .or(defaults.connect_timeout),
                retry: rs.retry.or(defaults.retry),
                delay_before_retry: rs
                    .delay_before_retry
                    .map(Dur::get)
                    .or(defaults.delay_before_retry),
            };
            let notify = match (rs.notify_up, rs.notify_down) {
                (None, None) => None,
                (up, down) => {
                    let up = self.opt_command(|| rk().key("notify_up"), up);
                    let down = self.opt_command(|| rk().key("notify_down"), down);
                    Some(Box::new((up, down)))
                }
            };
            let checks = self.checks(
                &rk,
                addr,
                &inherited,
                vs.virtualhost.as_deref(),
                rs.tcp_check,
                rs.http_get,
                rs.ssl_get,
                rs.misc_check,
                rs.dns_check,
                rs.smtp_check,
                rs.ping_check,
                rs.udp_check,
            );
            if group_addresses && port == 0 {
                for c in &checks {
                    if check_target(c).is_some_and(|t| t.port() == 0) {
                        vserr(self, rk(), "a real server of a group without a port: its checks would connect to port 0, as keepalived's do; write the port, or connect_port in the check".to_owned());
                        break;
                    }
                }
            }
            let smtp_alert = self.checker_alert(rs.smtp_alert, true);
            real_servers.push(RealServer {
                smtp_alert,
                addr,
                weight: rs.weight.unwrap_or(1),
                lb_kind: rs.lb_kind.unwrap_or(lb_kind),
                inhibit_on_failure: rs.inhibit_on_failure.unwrap_or(inhibit),
                thresholds: (rs.uthreshold.unwrap_or(0), rs.lthreshold.unwrap_or(0)),
                alpha: rs.alpha.unwrap_or(alpha),
                notify,
                checks,
            });
        }
        if !self.keep_servers {
            return;
        }
        self.out.effective.virtual_servers.push(VirtualServer {
            service,
            group,
            delay_loop,
            connect_timeout: defaults.connect_timeout,
            retry: defaults.retry,
            delay_before_retry: defaults.delay_before_retry,
            scheduler,
            lb_kind,
            persistence: vs
                .persistence_timeout
                .map(|t| (t.get(), vs.persistence_granularity)),
            ops: vs.ops.unwrap_or(false),
            sorry_server,
            quorum: vs.quorum.unwrap_or(1),
            hysteresis: vs.hysteresis.unwrap_or(0),
            alpha,
            omega: vs.omega.unwrap_or(false),
            inhibit_on_failure: inhibit,
            quorum_up,
            quorum_down,
            virtualhost: vs.virtualhost,
            smtp_alert: self.checker_alert(vs.smtp_alert, false),
            export_routes,
            real_servers,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn checks(
        &mut self,
        rk: &dyn Fn() -> KeyPath,
        rs: SocketAddr,
        inherited: &Inherited,
        virtualhost: Option<&str>,
        tcp: Vec<raw::TcpCheck>,
        http: Vec<raw::HttpCheck>,
        ssl: Vec<raw::HttpCheck>,
        misc: Vec<raw::MiscCheck>,
        dns: Vec<raw::DnsCheck>,
        smtp: Vec<raw::SmtpCheck>,
        ping: Vec<raw::PingCheck>,
        udp: Vec<raw::UdpCheck>,
    ) -> Vec<Check> {
        let mut out = Vec::with_capacity(
            tcp.len()
                + http.len()
                + ssl.len()
                + misc.len()
                + dns.len()
                + smtp.len()
                + ping.len()
                + udp.len(),
        );
        for (j, c) in tcp.into_iter().enumerate() {
            let ck = || rk().key("tcp_check").index(j);
            let conn = c.connect();
            let timing = self.timing(
                &ck,
                c.schedule(),
                conn.connect_timeout,
                inherited,
                Kind::Other,
            );
            let target = target(rs, &conn);
            let source = self.source(&ck, &conn, target);
            out.push(Check {
                timing,
                kind: CheckKind::Tcp {
                    target,
                    source: Box::new(source),
                },
            });
        }
        for (tls, list, name) in [(false, http, "http_get"), (true, ssl, "ssl_get")] {
            for (j, c) in list.into_iter().enumerate() {
                let ck = || rk().key(name).index(j);
                let conn = c.connect();
                let timing = self.timing(
                    &ck,
                    c.schedule(),
                    conn.connect_timeout,
                    inherited,
                    Kind::Http,
                );
                let mut urls = Vec::new();
                let raw_urls = if c.url.is_empty() {
                    vec![raw::Url::default()]
                } else {
                    c.url
                };
                for (u, url) in raw_urls.into_iter().enumerate() {
                    let uk = || ck().key("url").index(u);
                    let regex = self.body_regex(&uk, &url);
                    let path = url.path.unwrap_or_else(|| "/".to_owned());
                    if !path.starts_with('/') {
                        self.err(
                            uk().key("path"),
                            ErrorKind::VirtualServer(format!("path `{path}` must start with /")),
                        );
                    }
                    let digest = match url
                        .digest
                        .as_deref()
                        .map(|d| d.trim().parse::<healthcheck::Md5Digest>())
                    {
                        None => None,
                        Some(Ok(d)) => Some(d),
                        Some(Err(_)) => {
                            self.err(
                                uk().key("digest"),
                                ErrorKind::VirtualServer(format!(
                                    "digest `{}` is not 32 hexadecimal digits (an MD5 as genhash prints it)",
                                    url.digest.as_deref().unwrap_or_default()
                                )),
                            );
                            None
                        }
                    };
                    let status = match url.status_code {
                        None => None,
                        Some(text) => match parse_status_ranges(&text).and_then(|r| {
                            healthcheck::StatusRanges::new(r).map_err(|e| e.to_string())
                        }) {
                            Ok(ranges) => Some((text, ranges)),
                            Err(e) => {
                                self.err(uk().key("status_code"), ErrorKind::VirtualServer(e));
                                None
                            }
                        },
                    };
                    urls.push(UrlCheck {
                        path,
                        digest,
                        status,
                        regex,
                    });
                }
                let target = target(rs, &conn);
                let source = self.source(&ck, &conn, target);
                out.push(Check {
                    timing,
                    kind: CheckKind::Http(Box::new(HttpCheck {
                        tls,
                        target,
                        source,
                        urls,
                        virtualhost: c.virtualhost.or_else(|| virtualhost.map(str::to_owned)),
                        sni: c.sni,
                        enable_sni: c.enable_sni,
                    })),
                });
            }
        }
        for (j, c) in misc.into_iter().enumerate() {
            let ck = || rk().key("misc_check").index(j);
            let timeout = c.misc_timeout.map(Dur::get);
            let timing = self.timing(&ck, c.schedule(), None, inherited, Kind::Misc(timeout));
            let Some(mut spec) = c.misc_path else {
                self.err(ck(), ErrorKind::Missing("misc_path"));
                continue;
            };
            if spec.user.is_none() {
                spec.user = c.user;
            }
            let command = self.command(&ck().key("misc_path"), spec);
            out.push(Check {
                timing,
                kind: CheckKind::Misc(Box::new(MiscCheck {
                    command,
                    dynamic: c.misc_dynamic.unwrap_or(false),
                })),
            });
        }
        for (j, c) in dns.into_iter().enumerate() {
            let ck = || rk().key("dns_check").index(j);
            let conn = c.connect();
            let timing = self.timing(
                &ck,
                c.schedule(),
                conn.connect_timeout,
                inherited,
                Kind::Dns,
            );
            // keepalived queries the real server's own port unless
            // connect_port says otherwise, as for every check.
            let server = target(rs, &conn);
            let source = self.source(&ck, &conn, server);
            out.push(Check {
                timing,
                kind: CheckKind::Dns(Box::new(DnsCheck {
                    target: server,
                    source,
                    record_type: c.record_type.unwrap_or_else(|| "SOA".to_owned()),
                    name: c.name.unwrap_or_else(|| ".".to_owned()),
                })),
            });
        }
        for (j, c) in smtp.into_iter().enumerate() {
            let ck = || rk().key("smtp_check").index(j);
            let conn = c.connect();
            let timing = self.timing(
                &ck,
                c.schedule(),
                conn.connect_timeout,
                inherited,
                Kind::Other,
            );
            let target = target(rs, &conn);
            let source = self.source(&ck, &conn, target);
            out.push(Check {
                timing,
                kind: CheckKind::Smtp(Box::new(SmtpCheck {
                    target,
                    source,
                    helo_name: c.helo_name,
                })),
            });
        }
        for (j, c) in ping.into_iter().enumerate() {
            let ck = || rk().key("ping_check").index(j);
            let conn = c.connect();
            let timing = self.timing(
                &ck,
                c.schedule(),
                conn.connect_timeout,
                inherited,
                Kind::Other,
            );
            let target = conn.connect_ip.unwrap_or(rs.ip());
            let mut source = self.source(&ck, &conn, SocketAddr::new(target, 0));
            source.port = None;
            out.push(Check {
                timing,
                kind: CheckKind::Ping {
                    target,
                    source: Box::new(source),
                },
            });
        }
        for (j, c) in udp.into_iter().enumerate() {
            let ck = || rk().key("udp_check").index(j);
            let conn = c.connect();
            let timing = self.timing(
                &ck,
                c.schedule(),
                conn.connect_timeout,
                inherited,
                Kind::Other,
            );
            let payload = match c.payload.as_deref().map(parse_hex) {
                None => Vec::new(),
                Some(Ok(p)) => p,
                Some(Err(e)) => {
                    self.err(ck().key("payload"), ErrorKind::VirtualServer(e));
                    Vec::new()
                }
            };
            let reply = match c.reply.as_deref().map(parse_hex) {
                None => None,
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    self.err(ck().key("reply"), ErrorKind::VirtualServer(e));
                    None
                }
            };
            let require_reply = c.require_reply.unwrap_or(false);
            if reply.is_some() && !require_reply {
                self.err(
                    ck().key("reply"),
                    ErrorKind::VirtualServer("`reply` needs `require_reply = true`".to_owned()),
                );
            }
            let target = target(rs, &conn);
            let source = self.source(&ck, &conn, target);
            out.push(Check {
                timing,
                kind: CheckKind::Udp(Box::new(UdpCheck {
                    target,
                    source,
                    payload,
                    require_reply,
                    reply,
                })),
            });
        }
        out
    }

    /// keepalived's `bindto`, `bind_port` and `bind_if`, checked as
    /// keepalived checks them (`co_srcip_handler`, `check_conn_opts`).
    fn source(
        &mut self,
        ck: &dyn Fn() -> KeyPath,
        conn: &raw::Connect,
        target: SocketAddr,
    ) -> Source {
        if let Some(a) = conn.bind_to
            && a.is_ipv6() != target.is_ipv6()
        {
            self.err(
                ck().key("bind_to"),
                ErrorKind::VirtualServer(format!(
                    "bindto {a} is not of the family of the address checked, {}",
                    target.ip()
                )),
            );
        }
        if let Some(name) = &conn.bind_if
            && (name.is_empty() || name.len() > 15 || name.contains(['/', ' ']))
        {
            self.err(
                ck().key("bind_if"),
                ErrorKind::VirtualServer(format!("`{name}` is not an interface name")),
            );
        }
        if let IpAddr::V6(v6) = target.ip()
            && v6.is_unicast_link_local()
            && conn.bind_if.is_none()
        {
            self.err(
                ck().key("connect_ip"),
                ErrorKind::VirtualServer(format!(
                    "{v6} is a link-local address: the check needs bind_if (the interface it is on), as keepalived's does"
                )),
            );
        }
        Source {
            address: conn.bind_to,
            port: conn.bind_port.filter(|p| *p != 0),
            interface: conn.bind_if.clone(),
        }
    }

    /// keepalived's `regex` and its companions on one URL.
    fn body_regex(
        &mut self,
        uk: &dyn Fn() -> KeyPath,
        url: &raw::Url,
    ) -> Option<healthcheck::BodyRegex> {
        let Some(pattern) = &url.regex else {
            let companion = [
                ("regex_no_match", url.regex_no_match.is_some()),
                ("regex_options", !url.regex_options.is_empty()),
                ("regex_min_offset", url.regex_min_offset.is_some()),
                ("regex_max_offset", url.regex_max_offset.is_some()),
            ]
            .into_iter()
            .find(|(_, set)| *set);
            if let Some((key, _)) = companion {
                self.err(
                    uk().key(key),
                    ErrorKind::VirtualServer(format!("`{key}` needs `regex`")),
                );
            }
            return None;
        };
        let mut r = healthcheck::BodyRegex::new(pattern.clone());
        r.no_match = url.regex_no_match.unwrap_or(false);
        r.min_offset = url.regex_min_offset.unwrap_or(0);
        r.max_offset = url.regex_max_offset;
        for (n, option) in url.regex_options.iter().enumerate() {
            if r.options.set(option).is_none() {
                self.err(
                    uk().key("regex_options").index(n),
                    ErrorKind::VirtualServer(format!(
                        "`{option}` is not a regex option vrrpd has (caseless, multiline, dotall, extended, ungreedy, utf)"
                    )),
                );
            }
        }
        if let Some(max) = r.max_offset
            && max < r.min_offset
        {
            self.err(
                uk().key("regex_max_offset"),
                ErrorKind::VirtualServer(format!(
                    "regex_max_offset {max} is below regex_min_offset {}",
                    r.min_offset
                )),
            );
        }
        if let Err(e) = r.compile() {
            self.err(uk().key("regex"), ErrorKind::VirtualServer(e.to_string()));
        }
        Some(r)
    }

    /// keepalived's inheritance: the check's own value, else the real
    /// server's, else the virtual server's, else the check kind's default.
    fn timing(
        &mut self,
        ck: &dyn Fn() -> KeyPath,
        s: raw::Schedule,
        connect_timeout: Option<Dur>,
        inherited: &Inherited,
        kind: Kind,
    ) -> CheckTiming {
        let delay_loop = s.delay_loop.map_or(inherited.delay_loop, Dur::get);
        let (default_retry, default_delay) = match kind {
            Kind::Http => (1, Duration::from_secs(3)),
            Kind::Dns => (3, delay_loop),
            Kind::Misc(_) => (0, Duration::from_secs(1)),
            Kind::Other => (1, Duration::from_secs(1)),
        };
        let timeout = match kind {
            // keepalived: misc_timeout, else the virtual server's delay_loop.
            Kind::Misc(t) => t.unwrap_or(inherited.delay_loop),
            _ => connect_timeout
                .map(Dur::get)
                .or(inherited.connect_timeout)
                .unwrap_or(Duration::from_secs(5)),
        };
        let timing = CheckTiming {
            delay_loop,
            timeout,
            retry: s.retry.or(inherited.retry).unwrap_or(default_retry),
            delay_before_retry: s
                .delay_before_retry
                .map(Dur::get)
                .or(inherited.delay_before_retry)
                .unwrap_or(default_delay),
            rise: s.rise.unwrap_or(1),
            fall: s.fall.unwrap_or(1),
        };
        if timing.rise == 0 {
            self.err(ck().key("rise"), ErrorKind::Zero("rise"));
        }
        if timing.fall == 0 {
            self.err(ck().key("fall"), ErrorKind::Zero("fall"));
        }
        if s.delay_loop.is_some() {
            self.nonzero(|| ck().key("delay_loop"), delay_loop, "delay_loop");
        }
        let what = if matches!(kind, Kind::Misc(_)) {
            "misc_timeout"
        } else {
            "connect_timeout"
        };
        self.nonzero(|| ck().key(what), timeout, what);
        self.bounded(|| ck().key(what), timeout);
        timing
    }
}

/// Check settings a real server passes on to its checks.
struct Inherited {
    delay_loop: Duration,
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
}

/// Check kinds with their own keepalived defaults.
#[derive(Clone, Copy)]
enum Kind {
    Http,
    Dns,
    Misc(Option<Duration>),
    Other,
}

/// Where a check connects, for the kinds that connect to a port.
fn check_target(c: &Check) -> Option<SocketAddr> {
    match &c.kind {
        CheckKind::Tcp { target, .. } => Some(*target),
        CheckKind::Http(h) => Some(h.target),
        CheckKind::Dns(d) => Some(d.target),
        CheckKind::Smtp(s) => Some(s.target),
        CheckKind::Udp(u) => Some(u.target),
        CheckKind::Misc(_) | CheckKind::Ping { .. } => None,
    }
}

fn target(rs: SocketAddr, c: &raw::Connect) -> SocketAddr {
    SocketAddr::new(
        c.connect_ip.unwrap_or(rs.ip()),
        c.connect_port.unwrap_or(rs.port()),
    )
}

/// keepalived's default script user, used when it exists.
pub const DEFAULT_SCRIPT_USER: &str = "keepalived_script";

/// The PATH scripts are looked up in: the daemon's, else the system
/// default (`confstr(_CS_PATH)`'s value on glibc).
fn search_path() -> String {
    std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/bin:/usr/bin".to_owned())
}

/// The user and group a script runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunsAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl RunsAs {
    /// The daemon itself.
    pub const ROOT: RunsAs = RunsAs { uid: 0, gid: 0 };
}

/// Whether `who` may execute a file with `meta`, by keepalived's rule
/// (`is_executable`): root needs any execute bit; the owner the owner's;
/// the file's group the group's; anyone else the others'.
fn executable_by(meta: &std::fs::Metadata, who: RunsAs) -> bool {
    let mode = meta.mode();
    if who.uid == 0 {
        mode & 0o111 != 0
    } else if who.uid == meta.uid() {
        mode & 0o100 != 0
    } else if who.gid == meta.gid() {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// The first regular file called `name` in PATH that `who` may execute
/// (keepalived's path search for a script given by name), or the PATH
/// searched.
pub fn find_in_path(name: &str, who: RunsAs) -> Result<PathBuf, String> {
    find_in(name, &search_path(), who)
}

/// [`find_in_path`] with the PATH given. An empty element is the working
/// directory.
pub fn find_in(name: &str, path: &str, who: RunsAs) -> Result<PathBuf, String> {
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && executable_by(&meta, who)
        {
            return Ok(candidate);
        }
    }
    Err(path.to_owned())
}

/// Looks up `user` or `user:group` on this host.
pub fn lookup_user(spec: &str) -> Option<(u32, Option<u32>)> {
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

/// Checks a script file as keepalived does (`check_script_secure`): it
/// exists and is a regular file `who` may execute; and, with `security`,
/// when it runs as root (user or group 0) or is set-uid/set-gid root,
/// that no one but root can change it or what leads to it: every
/// component of its real path from `/` down, and of the real directory
/// joined with the name it is called by when that is a symbolic link to
/// it (some programs act on the name they are called by), must be owned
/// by root and not writable by a group other than root's or by everyone
/// (a sticky directory may be).
///
/// Gives the file to run, as keepalived runs it: the real path, or the
/// real directory joined with the name it is called by when that names
/// the same file; so a link changed later does not change what runs.
pub fn check_script_file(path: &Path, who: RunsAs, security: bool) -> Result<PathBuf, ErrorKind> {
    let real = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ErrorKind::ScriptMissing(path.to_path_buf()));
        }
        Err(_) => return Err(ErrorKind::ScriptNotExecutable(path.to_path_buf())),
    };
    let meta = match std::fs::metadata(&real) {
        Ok(m) => m,
        Err(_) => return Err(ErrorKind::ScriptNotExecutable(path.to_path_buf())),
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(ErrorKind::ScriptNotExecutable(path.to_path_buf()));
    }
    if !executable_by(&meta, who) {
        return Err(ErrorKind::ScriptNotExecutableBy {
            path: path.to_path_buf(),
            uid: who.uid,
            gid: who.gid,
        });
    }
    let mut paths = vec![real.clone()];
    if let (Some(called), Some(dir)) = (path.file_name(), real.parent())
        && Some(called) != real.file_name()
    {
        let by_name = dir.join(called);
        if let Ok(m) = std::fs::metadata(&by_name)
            && m.dev() == meta.dev()
            && m.ino() == meta.ino()
        {
            paths.insert(0, by_name);
        }
    }
    let run = paths[0].clone();
    let mode = meta.mode();
    let set_id_root = (meta.uid() == 0 && mode & 0o4100 == 0o4100)
        || (meta.gid() == 0 && mode & 0o2010 == 0o2010);
    if !security || !(who.uid == 0 || who.gid == 0 || set_id_root) {
        return Ok(run);
    }
    for p in paths {
        if let Err(reason) = path_secure(&p) {
            return Err(ErrorKind::ScriptInsecure {
                path: path.to_path_buf(),
                reason,
            });
        }
    }
    Ok(run)
}

/// keepalived's `check_security` of one absolute path, component by
/// component, symbolic links not followed.
fn path_secure(path: &Path) -> Result<(), String> {
    let components: Vec<_> = path.components().collect();
    let mut prefix = PathBuf::new();
    for (i, component) in components.iter().enumerate() {
        prefix.push(component);
        let last = i + 1 == components.len();
        let what = if last {
            "the file".to_owned()
        } else {
            format!("its directory {}", prefix.display())
        };
        let meta = std::fs::symlink_metadata(&prefix)
            .map_err(|e| format!("{what} cannot be read ({e})"))?;
        let kind = meta.file_type();
        if !last && !kind.is_dir() {
            return Err(format!("{} is not a directory", prefix.display()));
        }
        if last && !kind.is_file() && !kind.is_symlink() {
            return Err("it is not a regular file".to_owned());
        }
        if meta.uid() != 0 {
            return Err(format!("{what} is owned by uid {}", meta.uid()));
        }
        // A sticky directory lets others add files but not replace ours;
        // a symbolic link's own mode means nothing.
        let mode = meta.mode();
        if (kind.is_dir() && mode & 0o1000 == 0) || kind.is_file() {
            if mode & 0o002 != 0 {
                return Err(format!("{what} is writable by everyone"));
            }
            if mode & 0o020 != 0 && meta.gid() != 0 {
                return Err(format!("{what} is writable by group {}", meta.gid()));
            }
        }
    }
    Ok(())
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

/// keepalived's hexadecimal strings: pairs of hex digits, spaces between
/// bytes allowed, a lone last digit is a byte of its own ("0a0b0c",
/// "0a 0b c").
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let digit = |c: u8| -> Result<u8, String> {
        (c as char)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .ok_or_else(|| {
                format!("`{s}` is not hexadecimal (keepalived writes payloads as hex digits)")
            })
    };
    while i < bytes.len() {
        if bytes[i] == b' ' || bytes[i] == b'\t' {
            i += 1;
            continue;
        }
        let hi = digit(bytes[i])?;
        i += 1;
        match bytes.get(i) {
            Some(b' ' | b'\t') | None => out.push(hi),
            Some(&c) => {
                out.push(hi << 4 | digit(c)?);
                i += 1;
            }
        }
    }
    if out.is_empty() {
        return Err("empty hexadecimal string".to_owned());
    }
    Ok(out)
}

/// A mail address as a relay takes it in `MAIL FROM:<...>` / `RCPT
/// TO:<...>`: `local@domain`, or a local user alone (keepalived's samples
/// mail `acassen`); no blank, quote or angle bracket.
fn is_mailbox(s: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty() && !part.contains(|c: char| c.is_whitespace() || "<>\"".contains(c))
    };
    match s.split_once('@') {
        Some((l, d)) => ok(l) && ok(d) && !d.contains('@'),
        None => ok(s),
    }
}

/// A host (address or name) and a port: `HOST`, `HOST PORT`, `HOST:PORT`,
/// `[IPv6]:PORT` or an IPv6 address alone.
pub fn parse_host_port(v: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("`{v}` is not \"HOST\", \"HOST PORT\" or \"HOST:PORT\"");
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok((a.ip().to_string(), a.port()));
    }
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok((ip.to_string(), default_port));
    }
    let mut words = v.split_whitespace();
    let (host, port) = match (words.next(), words.next(), words.next()) {
        (Some(h), Some(p), None) => (h, Some(p)),
        (Some(h), None, None) => match h.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            _ => (h, None),
        },
        _ => return Err(bad()),
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        None => default_port,
    };
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let name_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if host.parse::<IpAddr>().is_ok() || name_ok {
        Ok((host.to_owned(), port))
    } else {
        Err(bad())
    }
}

/// Parses "IP:PORT", "\[IPv6\]:PORT", keepalived's "IP PORT", or an address
/// alone (then `default_port`; keepalived's `sorry_server IP`).
pub fn parse_socket(v: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(a);
    }
    let mut words = v.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(ip), port, None) => {
            let ip: IpAddr = ip
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| format!("`{ip}` is not an IP address"))?;
            let port: u16 = match port {
                Some(p) => p.parse().map_err(|_| format!("`{p}` is not a port"))?,
                None => default_port,
            };
            Ok(SocketAddr::new(ip, port))
        }
        _ => Err(format!("`{v}` is not \"IP:PORT\", \"IP PORT\" or \"IP\"")),
    }
}
