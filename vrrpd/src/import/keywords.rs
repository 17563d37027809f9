//! keepalived's keywords, block by block, into the typed configuration.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::str::FromStr;

use vrrp_core::{Priority, Vrid};

use super::parse::{Node, Pos, split_quoted_escaped};
use super::{Fate, Report};
use crate::config::{CommandSpec, Dur, KeyPath, parse_duration, raw};

/// The conversion's state: what is built, what was said about it, and
/// where each key came from.
#[derive(Default)]
pub(super) struct Cx {
    pub config: raw::Config,
    pub warnings: Vec<(Pos, String)>,
    pub report: Report,
    pub locations: HashMap<String, Pos>,
    /// Real servers' positions by virtual server and real server index
    /// (tens of thousands in large files: no key strings for them).
    pub real_servers: Vec<Vec<Pos>>,
    /// The first thing that makes the file unusable.
    pub refused: Option<(Pos, String)>,
    /// keepalived's `vrrp_strict`, read from global_defs.
    strict: bool,
    /// Virtual servers written with `group NAME`: index and line, linked
    /// to their groups once the whole file is read.
    group_uses: Vec<(usize, Pos)>,
    /// Global VRRP version.
    version: Option<u8>,
}

/// keepalived's booleans: no argument, or true/yes/on, false/no/off.
fn boolean(args: &[String]) -> Option<bool> {
    match args.first().map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("true" | "yes" | "on") => Some(true),
        Some("false" | "no" | "off") => Some(false),
        _ => None,
    }
}

/// keepalived's addresses: a `/prefix` after them is ignored
/// (`inet_stosockaddr`).
fn address(s: &str) -> Option<(IpAddr, bool)> {
    let (a, prefixed) = match s.split_once('/') {
        Some((a, _)) => (a, true),
        None => (s, false),
    };
    a.parse().ok().map(|ip| (ip, prefixed))
}

/// Characters that make keepalived run a script through the shell (its
/// first word is then not an executable file).
fn needs_shell(program: &str) -> bool {
    program.is_empty()
        || program.contains([
            '<', '>', '|', '&', ';', '(', ')', '$', '`', '*', '?', '~', '=',
        ])
}

impl Cx {
    fn report_as(&mut self, n: &Node, ctx: &str, fate: Fate, message: Option<String>) {
        let kw = if ctx.is_empty() {
            n.keyword().to_owned()
        } else {
            format!("{ctx} {}", n.keyword())
        };
        self.report.count(&kw, fate);
        if let Some(m) = message {
            self.warnings.push((n.pos, m));
        }
    }

    /// A line of a list block (an address, a tracked object).
    fn entry(&mut self, n: &Node, row: &str, fate: Fate, message: Option<String>) {
        self.report.count(row, fate);
        if let Some(m) = message {
            self.warnings.push((n.pos, m));
        }
    }

    fn carried(&mut self, n: &Node, ctx: &str) {
        self.report_as(n, ctx, Fate::Carried, None);
    }

    fn changed(&mut self, n: &Node, ctx: &str, message: String) {
        self.report_as(n, ctx, Fate::Changed, Some(message));
    }

    fn dropped(&mut self, n: &Node, ctx: &str, message: String) {
        self.report_as(n, ctx, Fate::Dropped, Some(message));
    }

    fn unsupported(&mut self, n: &Node, ctx: &str) {
        let kw = n.keyword().to_owned();
        let where_ = if ctx.is_empty() {
            String::new()
        } else {
            format!(" in {ctx}")
        };
        self.dropped(
            n,
            ctx,
            format!("`{kw}`{where_} is not supported by vrrpd; dropped"),
        );
    }

    /// A warning that is not about one keyword.
    pub fn note(&mut self, pos: Pos, message: String) {
        self.warnings.push((pos, message));
    }

    fn refuse(&mut self, pos: Pos, message: String) {
        if self.refused.is_none() {
            self.refused = Some((pos, message));
        }
    }

    fn at(&mut self, key: &KeyPath, pos: Pos) {
        self.locations.insert(key.to_string(), pos);
    }

    fn pos_of(&self, key: &KeyPath) -> Pos {
        self.locations
            .get(&key.to_string())
            .copied()
            .unwrap_or_default()
    }

    /// The single argument of `n`; `None` (and dropped) when missing.
    fn arg<'n>(&mut self, n: &'n Node, ctx: &str) -> Option<&'n str> {
        match n.args() {
            [] => {
                let kw = n.keyword().to_owned();
                self.dropped(n, ctx, format!("`{kw}` needs a value; dropped"));
                None
            }
            [a] => Some(a),
            [a, extra @ ..] => {
                let (kw, extra) = (n.keyword().to_owned(), extra.join(" "));
                self.note(
                    n.pos,
                    format!("`{kw}` takes one value; keepalived ignores `{extra}` after it, so does vrrpd"),
                );
                Some(a)
            }
        }
    }

    /// A number of the type `T`; dropped with keepalived's message when
    /// it is not one.
    fn number<T: FromStr>(&mut self, n: &Node, ctx: &str) -> Option<T> {
        let a = self.arg(n, ctx)?;
        match a.parse() {
            Ok(v) => {
                self.carried(n, ctx);
                Some(v)
            }
            Err(_) => {
                let (kw, a) = (n.keyword().to_owned(), a.to_owned());
                self.dropped(
                    n,
                    ctx,
                    format!(
                        "`{kw} {a}` is not a valid value; keepalived ignores it, so does vrrpd"
                    ),
                );
                None
            }
        }
    }

    /// keepalived's seconds, possibly fractional.
    fn seconds(&mut self, n: &Node, ctx: &str) -> Option<Dur> {
        let a = self.arg(n, ctx)?;
        match parse_duration(a) {
            Ok(d) if !a.ends_with(char::is_alphabetic) => {
                self.carried(n, ctx);
                Some(Dur(d))
            }
            Err(crate::config::DurationError::TooLong(_)) => {
                let (kw, a) = (n.keyword().to_owned(), a.to_owned());
                self.dropped(
                    n,
                    ctx,
                    format!("`{kw} {a}` is longer than a year, the longest vrrpd accepts; dropped"),
                );
                None
            }
            _ => {
                let (kw, a) = (n.keyword().to_owned(), a.to_owned());
                self.dropped(
                    n,
                    ctx,
                    format!("`{kw} {a}` is not a number of seconds; keepalived ignores it, so does vrrpd"),
                );
                None
            }
        }
    }

    fn flag(&mut self, n: &Node, ctx: &str) -> Option<bool> {
        match boolean(n.args()) {
            Some(b) => {
                self.carried(n, ctx);
                Some(b)
            }
            None => {
                let kw = n.keyword().to_owned();
                self.dropped(
                    n,
                    ctx,
                    format!("`{kw}` takes no value or true/false; dropped"),
                );
                None
            }
        }
    }

    /// keepalived's `garp_extra_if [all] DELAY` (either order; DELAY in
    /// whole seconds from `min` to a day).
    fn garp_extra_if(&mut self, n: &Node, ctx: &str, min: u64) -> Option<(u64, bool)> {
        let mut all = false;
        let mut secs = None;
        for a in n.args() {
            if a == "all" {
                all = true;
            } else {
                match a.parse::<u64>() {
                    Ok(v) if (min..=86_400).contains(&v) => secs = Some(v),
                    _ => {
                        let kw = n.keyword().to_owned();
                        self.dropped(n, ctx, format!("`{kw}` {a}: not `all` or {min}..86400 seconds; keepalived ignores it, so does vrrpd"));
                        return None;
                    }
                }
            }
        }
        let Some(secs) = secs else {
            let kw = n.keyword().to_owned();
            self.dropped(
                n,
                ctx,
                format!("`{kw}` without a time; keepalived ignores it, so does vrrpd"),
            );
            return None;
        };
        self.carried(n, ctx);
        Some((secs, all))
    }

    /// keepalived's `use_vmac [NAME] [MAC]`: a name is carried; a MAC of
    /// one's own is not (vrrpd uses the RFC 5798 virtual MAC).
    fn use_vmac(&mut self, n: &Node, ctx: &str) -> Option<raw::UseVmac> {
        let is_mac = |a: &str| {
            a.contains(':')
                && a.split(':').all(|p| {
                    !p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_hexdigit())
                })
        };
        let name = n.args().iter().find(|a| !is_mac(a)).cloned();
        match n.args().iter().find(|a| is_mac(a)) {
            Some(mac) => self.changed(
                n,
                ctx,
                format!("`use_vmac` with MAC address {mac}: vrrpd uses the RFC 5798 virtual MAC 00:00:5e:00:01:VRID (00:00:5e:00:02:VRID for IPv6) instead"),
            ),
            None => self.carried(n, ctx),
        }
        Some(name.map_or(raw::UseVmac::On(true), raw::UseVmac::Named))
    }

    fn string(&mut self, n: &Node, ctx: &str) -> Option<String> {
        let a = self.arg(n, ctx)?.to_owned();
        self.carried(n, ctx);
        Some(a)
    }

    /// `KEYWORD SCRIPT [USER [GROUP]]`, read as keepalived re-reads script
    /// lines (single and double quotes, escapes): SCRIPT is split into
    /// words again; USER and GROUP are who it runs as.
    fn command(&mut self, n: &Node, ctx: &str) -> Option<CommandSpec> {
        let kw = n.keyword().to_owned();
        let words = match &n.line {
            Some(line) => split_quoted_escaped(line),
            None => Some(n.words.clone()),
        };
        let Some(words) = words else {
            self.dropped(
                n,
                ctx,
                format!("`{kw}`: unterminated quote; keepalived ignores the script, so does vrrpd"),
            );
            return None;
        };
        let Some(script) = words.get(1) else {
            self.dropped(n, ctx, format!("`{kw}` needs a script; dropped"));
            return None;
        };
        let argv = split_quoted_escaped(script).filter(|a| !a.is_empty());
        let Some(argv) = argv else {
            self.dropped(
                n,
                ctx,
                format!("`{kw}`: cannot read `{script}`; keepalived ignores it, so does vrrpd"),
            );
            return None;
        };
        let user = match words.get(2..).unwrap_or(&[]) {
            [] => None,
            [u] => Some(u.clone()),
            [u, g, rest @ ..] => {
                if !rest.is_empty() {
                    let rest = rest.join(" ");
                    self.note(
                        n.pos,
                        format!("`{kw}`: `{rest}` after the user and group is ignored, as keepalived does (quote the script to pass arguments)"),
                    );
                }
                Some(format!("{u}:{g}"))
            }
        };
        self.carried(n, ctx);
        let shell = needs_shell(&argv[0]);
        Some(CommandSpec {
            command: if shell { vec![script.clone()] } else { argv },
            shell,
            user,
        })
    }

    /// A top-level keyword other than the VRRP blocks and virtual_server.
    pub fn top_level_other(&mut self, n: &Node) {
        match n.keyword() {
            "" => self.dropped(
                n,
                "",
                "block without a keyword; keepalived ignores it, so does vrrpd".to_owned(),
            ),
            "static_routes" => {
                self.carried(n, "");
                let start = self.config.static_routes.len();
                let key = KeyPath::root("static_routes");
                let lines = self.route_lines(n, &key, start, "static_routes entry");
                self.config.static_routes.extend(lines);
            }
            "static_rules" => {
                self.carried(n, "");
                let start = self.config.static_rules.len();
                let key = KeyPath::root("static_rules");
                let lines = self.rule_lines(n, &key, start, "static_rules entry");
                self.config.static_rules.extend(lines);
            }
            "static_ipaddress" => {
                self.carried(n, "");
                let key = KeyPath::root("static_ipaddress");
                let start = self.config.static_ipaddress.len();
                let list = self.addresses(n, &key, start, "static_ipaddress entry", true);
                self.config.static_ipaddress.extend(list);
            }
            "garp_group"
            | "linkbeat_interfaces"
            | "bfd_instance"
            | "SSL"
            | "net_namespace"
            | "net_namespace_ipvs"
            | "instance"
            | "use_pid_dir"
            | "static_track_group" => {
                let kw = n.keyword().to_owned();
                let consequence = "";
                self.dropped(
                    n,
                    "",
                    format!("`{kw}` is not supported by vrrpd yet; dropped{consequence}"),
                );
            }
            _ => self.unsupported(n, ""),
        }
    }

    /// global_defs, scripts, track files, instances and sync groups, in
    /// that order (keepalived completes instances after reading the whole
    /// file).
    pub fn vrrp(&mut self, nodes: &[Node]) {
        for n in nodes.iter().filter(|n| n.keyword() == "global_defs") {
            self.carried(n, "");
            self.global(n);
        }
        for n in nodes.iter().filter(|n| n.keyword() == "vrrp_script") {
            self.script(n);
        }
        for n in nodes
            .iter()
            .filter(|n| matches!(n.keyword(), "vrrp_track_process" | "track_process"))
        {
            self.track_process(n);
        }
        let mut file_defaults = BTreeMap::new();
        for n in nodes
            .iter()
            .filter(|n| matches!(n.keyword(), "track_file" | "vrrp_track_file"))
        {
            self.track_file(n, &mut file_defaults);
        }
        let mut info = BTreeMap::new();
        for n in nodes.iter().filter(|n| n.keyword() == "vrrp_instance") {
            if let Some((name, i, meta)) = self.instance(n, &file_defaults) {
                if self.config.instance.contains_key(&name) {
                    self.dropped(n, "", format!("`vrrp_instance {name}` is defined again; keepalived refuses the duplicate, so this one is dropped"));
                    continue;
                }
                self.config.instance.insert(name.clone(), i);
                info.insert(name, meta);
            }
        }
        let mut group_tracks = Vec::new();
        for n in nodes.iter().filter(|n| n.keyword() == "vrrp_sync_group") {
            group_tracks.extend(self.sync_group(n));
        }
        self.keepalived_rules(&info);
        for (group, tracks) in group_tracks {
            self.group_tracks(&group, tracks, &file_defaults);
        }
    }

    fn name(&mut self, n: &Node) -> Option<String> {
        match n.args() {
            [name] => Some(name.clone()),
            _ => {
                let kw = n.keyword().to_owned();
                self.dropped(
                    n,
                    "",
                    format!("`{kw}` needs exactly one name; block dropped"),
                );
                None
            }
        }
    }

    fn global(&mut self, n: &Node) {
        const CTX: &str = "global_defs";
        let gk = KeyPath::root("global");
        self.at(&gk, n.pos);
        let mut mail_pos = None;
        for c in n.block() {
            let key = gk.key(c.keyword());
            self.at(&key, c.pos);
            match c.keyword() {
                "router_id" => self.config.global.router_id = self.string(c, CTX),
                "vrrp_version" => match self.number::<u8>(c, CTX) {
                    Some(v @ (2 | 3)) => {
                        self.version = Some(v);
                        self.config.global.vrrp_version = Some(v);
                    }
                    Some(v) => self.refuse(c.pos, format!("vrrp_version {v}: keepalived accepts 2 or 3")),
                    None => {}
                },
                "vrrp_strict" => {
                    self.strict = true;
                    self.config.global.vrrp_strict = Some(true);
                    self.carried(c, CTX);
                }
                "enable_script_security" => {
                    self.config.global.enable_script_security = self.flag(c, CTX);
                }
                "script_user" => match c.args() {
                    [u] => {
                        self.config.global.script_user = Some(u.clone());
                        self.carried(c, CTX);
                    }
                    [u, g] => {
                        self.config.global.script_user = Some(format!("{u}:{g}"));
                        self.carried(c, CTX);
                    }
                    _ => self.dropped(c, CTX, "`script_user` takes USER [GROUP]; dropped".to_owned()),
                },
                "vrrp_garp_master_delay" => {
                    self.config.global.vrrp_garp_master_delay = self.seconds(c, CTX);
                }
                "vrrp_garp_master_repeat" => {
                    self.config.global.vrrp_garp_master_repeat = self.number(c, CTX);
                }
                "vrrp_garp_lower_prio_delay" => {
                    self.config.global.vrrp_garp_lower_prio_delay = self.seconds(c, CTX);
                }
                "vrrp_garp_lower_prio_repeat" => {
                    self.config.global.vrrp_garp_lower_prio_repeat = self.number(c, CTX);
                }
                "vrrp_down_timer_adverts" => {
                    self.config.global.vrrp_down_timer_adverts = self.number(c, CTX);
                }
                "vrrp_garp_master_refresh" => {
                    self.config.global.vrrp_garp_master_refresh = self.seconds(c, CTX);
                }
                "vrrp_garp_master_refresh_repeat" => {
                    self.config.global.vrrp_garp_master_refresh_repeat = self.number(c, CTX);
                }
                "vrrp_garp_interval" | "vrrp_gna_interval" => {
                    if let Some(d) = self.arg(c, CTX).and_then(|a| parse_duration(a).ok()) {
                        let kw = c.keyword().to_owned();
                        self.changed(c, CTX, format!("`{kw}`: vrrpd has one spacing for gratuitous ARPs and neighbour advertisements; it takes the last of vrrp_garp_interval and vrrp_gna_interval"));
                        self.config.global.vrrp_garp_interval = Some(Dur(d));
                    }
                }
                "vrrp_lower_prio_no_advert" => {
                    self.config.global.vrrp_lower_prio_no_advert = self.flag(c, CTX);
                }
                "v3_checksum_as_v2" | "vrrp_v3_checksum_as_v2" => {
                    self.config.global.vrrp_v3_checksum_as_v2 = self.flag(c, CTX);
                }
                "vrrp_check_unicast_src" => {
                    // vrrpd always accepts unicast adverts from the peers only.
                    self.carried(c, CTX);
                }
                "vrrp_skip_check_adv_addr" => self.dropped(c, CTX, "`vrrp_skip_check_adv_addr`: vrrpd always checks the addresses of an advertisement (harmless when both sides list the same addresses); dropped".to_owned()),
                "lvs_id" => self.dropped(c, CTX, "`lvs_id` is ignored by keepalived 2.x too; dropped".to_owned()),
                "notify_fifo" | "vrrp_notify_fifo" | "lvs_notify_fifo" => {
                    let fifo = match c.args() {
                        [path] => Some(raw::Fifo { path: path.clone(), user: None }),
                        [path, u] => Some(raw::Fifo { path: path.clone(), user: Some(u.clone()) }),
                        [path, u, g] => Some(raw::Fifo { path: path.clone(), user: Some(format!("{u}:{g}")) }),
                        _ => None,
                    };
                    let Some(fifo) = fifo else {
                        let kw = c.keyword().to_owned();
                        self.dropped(c, CTX, format!("`{kw}` takes FIFO [USER [GROUP]]; dropped"));
                        continue;
                    };
                    self.carried(c, CTX);
                    let g = &mut self.config.global;
                    match c.keyword() {
                        "notify_fifo" => g.notify_fifo = Some(fifo),
                        "vrrp_notify_fifo" => g.vrrp_notify_fifo = Some(fifo),
                        _ => g.lvs_notify_fifo = Some(fifo),
                    }
                }
                "notify_fifo_script" | "vrrp_notify_fifo_script" | "lvs_notify_fifo_script" => {
                    let cmd = self.command(c, CTX);
                    let g = &mut self.config.global;
                    match c.keyword() {
                        "notify_fifo_script" => g.notify_fifo_script = cmd,
                        "vrrp_notify_fifo_script" => g.vrrp_notify_fifo_script = cmd,
                        _ => g.lvs_notify_fifo_script = cmd,
                    }
                }
                "notification_email" => {
                    self.carried(c, CTX);
                    for m in c.block() {
                        for w in &m.words {
                            self.config.global.notification_email.push(w.clone());
                        }
                    }
                    mail_pos.get_or_insert(c.pos);
                }
                "notification_email_from" => {
                    self.config.global.notification_email_from = self.string(c, CTX);
                }
                "smtp_server" => match c.args() {
                    [host] => {
                        self.config.global.smtp_server = Some(host.clone());
                        self.carried(c, CTX);
                    }
                    [host, port] => {
                        self.config.global.smtp_server = Some(format!("{host} {port}"));
                        self.carried(c, CTX);
                    }
                    _ => self.dropped(c, CTX, "`smtp_server` takes HOST [PORT]; dropped".to_owned()),
                },
                "smtp_helo_name" => self.config.global.smtp_helo_name = self.string(c, CTX),
                "smtp_connect_timeout" => {
                    self.config.global.smtp_connect_timeout = self.seconds(c, CTX);
                }
                "smtp_alert" => self.config.global.smtp_alert = self.flag(c, CTX),
                "smtp_alert_vrrp" => self.config.global.smtp_alert_vrrp = self.flag(c, CTX),
                "smtp_alert_checker" => self.config.global.smtp_alert_checker = self.flag(c, CTX),
                "no_email_faults" => self.config.global.no_email_faults = self.flag(c, CTX),
                "no_checker_emails" => self.config.global.no_checker_emails = self.flag(c, CTX),
                "vrrp_garp_extra_if" | "vrrp_vmac_garp_intvl" => {
                    if let Some((secs, all)) = self.garp_extra_if(c, CTX, 1) {
                        let g = &mut self.config.global;
                        g.vrrp_garp_extra_if = Some(Dur(std::time::Duration::from_secs(secs)));
                        g.vrrp_garp_extra_if_all = all.then_some(true);
                    }
                }
                "nftables" => match c.args() {
                    [] => self.carried(c, CTX),
                    [t] => {
                        self.config.global.nftables = Some(t.clone());
                        self.carried(c, CTX);
                    }
                    _ => self.dropped(c, CTX, "`nftables` takes [TABLE]; dropped".to_owned()),
                },
                "nftables_priority" => self.config.global.nftables_priority = self.number(c, CTX),
                "nftables_counters" => self.config.global.nftables_counters = self.flag(c, CTX),
                "nftables_ifindex" => self.config.global.nftables_ifindex = self.flag(c, CTX),
                "vrrp_iptables" | "vrrp_ipsets" => {
                    let kw = c.keyword().to_owned();
                    self.changed(c, CTX, format!("`{kw}`: keepalived as Debian builds it has no iptables and uses nftables instead, so does vrrpd (table `inet vrrpd` unless `nftables` names one)"));
                }
                _ => self.unsupported(c, CTX),
            }
        }
        self.keepalived_fifo_rules(n.pos);
        self.keepalived_mail_rules(mail_pos.unwrap_or(n.pos));
    }

    /// keepalived ignores a VRRP or LVS FIFO that is the global one, and
    /// the LVS FIFO's script when it shares the VRRP FIFO, which has one.
    fn keepalived_fifo_rules(&mut self, pos: Pos) {
        let g = &mut self.config.global;
        let path = |f: &Option<raw::Fifo>| f.as_ref().map(|f| f.path.clone());
        let mut notes = Vec::new();
        if path(&g.notify_fifo).is_some() && path(&g.notify_fifo) == path(&g.vrrp_notify_fifo) {
            g.vrrp_notify_fifo = None;
            g.vrrp_notify_fifo_script = None;
            notes.push("vrrp_notify_fifo is notify_fifo: keepalived ignores it (and its script), so does vrrpd");
        }
        if path(&g.notify_fifo).is_some() && path(&g.notify_fifo) == path(&g.lvs_notify_fifo) {
            g.lvs_notify_fifo = None;
            g.lvs_notify_fifo_script = None;
            notes.push("lvs_notify_fifo is notify_fifo: keepalived ignores it (and its script), so does vrrpd");
        }
        if path(&g.vrrp_notify_fifo).is_some()
            && path(&g.vrrp_notify_fifo) == path(&g.lvs_notify_fifo)
            && g.vrrp_notify_fifo_script.is_some()
            && g.lvs_notify_fifo_script.is_some()
        {
            g.lvs_notify_fifo_script = None;
            notes.push("lvs_notify_fifo is vrrp_notify_fifo and both have a script: keepalived runs the VRRP one only, so does vrrpd");
        }
        for (script, fifo) in [
            (
                "notify_fifo_script",
                g.notify_fifo.is_none() && g.notify_fifo_script.take().is_some(),
            ),
            (
                "vrrp_notify_fifo_script",
                g.vrrp_notify_fifo.is_none() && g.vrrp_notify_fifo_script.take().is_some(),
            ),
            (
                "lvs_notify_fifo_script",
                g.lvs_notify_fifo.is_none() && g.lvs_notify_fifo_script.take().is_some(),
            ),
        ] {
            if fifo {
                self.warnings.push((
                    pos,
                    format!("{script} without its FIFO: keepalived does not run it, so does vrrpd"),
                ));
            }
        }
        for n in notes {
            self.warnings.push((pos, n.to_owned()));
        }
    }

    /// keepalived sends mail only with recipients and a relay: without
    /// both, the mail settings are dropped.
    fn keepalived_mail_rules(&mut self, pos: Pos) {
        let g = &mut self.config.global;
        let any = !g.notification_email.is_empty()
            || g.smtp_server.is_some()
            || g.notification_email_from.is_some()
            || g.smtp_helo_name.is_some()
            || g.smtp_connect_timeout.is_some();
        if any && (g.notification_email.is_empty() || g.smtp_server.is_none()) {
            let missing = if g.smtp_server.is_none() {
                "smtp_server"
            } else {
                "notification_email"
            };
            let present = [
                ("notification_email", !g.notification_email.is_empty()),
                ("smtp_server", g.smtp_server.is_some()),
                (
                    "notification_email_from",
                    g.notification_email_from.is_some(),
                ),
                ("smtp_helo_name", g.smtp_helo_name.is_some()),
                ("smtp_connect_timeout", g.smtp_connect_timeout.is_some()),
            ];
            g.notification_email.clear();
            g.smtp_server = None;
            g.notification_email_from = None;
            g.smtp_helo_name = None;
            g.smtp_connect_timeout = None;
            for (kw, set) in present {
                if set {
                    self.report
                        .recount(&format!("global_defs {kw}"), Fate::Dropped);
                }
            }
            self.warnings.push((
                pos,
                format!(
                    "mail settings without {missing}: keepalived sends no mail, so they are dropped"
                ),
            ));
        }
    }

    fn script(&mut self, n: &Node) {
        const CTX: &str = "vrrp_script";
        let Some(name) = self.name(n) else { return };
        let k = KeyPath::root("script").key(&name);
        self.at(&k, n.pos);
        let mut s = raw::Script::default();
        for c in n.block() {
            self.at(&k.key(c.keyword()), c.pos);
            match c.keyword() {
                "script" => {
                    s.command = self.command(c, CTX);
                    self.at(&k.key("command"), c.pos);
                }
                "interval" | "timeout" => {
                    let kw = c.keyword();
                    let v = self.number::<u64>(c, CTX).map(|v| Dur::secs(v.max(1)));
                    if kw == "interval" {
                        s.interval = v;
                    } else {
                        s.timeout = v;
                    }
                }
                "weight" => {
                    let Some(w) = c.args().first().and_then(|w| w.parse::<i32>().ok()) else {
                        self.dropped(c, CTX, "`weight` needs a number; dropped".to_owned());
                        continue;
                    };
                    if !(-253..=253).contains(&w) {
                        self.dropped(c, CTX, format!("vrrp_script {name} weight {w} is out of -253..=253; keepalived ignores it, so does vrrpd"));
                        continue;
                    }
                    s.weight = Some(w);
                    match c.args().get(1).map(String::as_str) {
                        Some("reverse") => s.reverse = Some(true),
                        None => {}
                        Some(other) => {
                            let other = other.to_owned();
                            self.note(
                                c.pos,
                                format!(
                                    "unknown weight option `{other}` ignored, as keepalived does"
                                ),
                            );
                        }
                    }
                    self.carried(c, CTX);
                }
                "rise" | "fall" => {
                    let v = self.number::<u32>(c, CTX).map(|v| v.max(1));
                    if c.keyword() == "rise" {
                        s.rise = v;
                    } else {
                        s.fall = v;
                    }
                }
                "user" => match c.args() {
                    [u] => {
                        s.user = Some(u.clone());
                        self.carried(c, CTX);
                    }
                    [u, g] => {
                        s.user = Some(format!("{u}:{g}"));
                        self.carried(c, CTX);
                    }
                    _ => self.dropped(c, CTX, "`user` takes USER [GROUP]; dropped".to_owned()),
                },
                "init_fail" => {
                    s.init_fail = Some(true);
                    self.carried(c, CTX);
                }
                _ => self.unsupported(c, CTX),
            }
        }
        if s.command.is_none() {
            self.dropped(n, "", format!("vrrp_script {name} has no `script`; keepalived drops it (and the instances tracking it do not track it), so does vrrpd"));
            return;
        }
        if self.config.script.contains_key(&name) {
            self.dropped(
                n,
                "",
                format!("`vrrp_script {name}` is defined again; the second definition is dropped"),
            );
            return;
        }
        self.carried(n, "");
        self.config.script.insert(name, s);
    }

    fn track_file(&mut self, n: &Node, defaults: &mut BTreeMap<String, i32>) {
        const CTX: &str = "track_file";
        let Some(name) = self.name(n) else { return };
        let k = KeyPath::root("track_file").key(&name);
        self.at(&k, n.pos);
        let mut t = raw::TrackFile::default();
        for c in n.block() {
            self.at(&k.key(c.keyword()), c.pos);
            match c.keyword() {
                "file" => t.file = self.string(c, CTX),
                "weight" => {
                    let Some(w) = c.args().first().and_then(|w| w.parse::<i32>().ok()) else {
                        self.dropped(c, CTX, "`weight` needs a number; dropped".to_owned());
                        continue;
                    };
                    if !(-254..=254).contains(&w) {
                        self.dropped(c, CTX, format!("track_file {name} weight {w} is out of -254..=254; keepalived uses 1, so does vrrpd"));
                        continue;
                    }
                    t.weight = Some(w);
                    if c.args().get(1).is_some_and(|r| r == "reverse") {
                        t.reverse = Some(true);
                    }
                    self.carried(c, CTX);
                }
                "init_file" => {
                    let mut value = 0;
                    for a in c.args() {
                        if a == "overwrite" {
                            t.init_overwrite = Some(true);
                        } else if let Ok(v) = a.parse::<i32>() {
                            value = v;
                        }
                    }
                    t.init_file = Some(value);
                    self.carried(c, CTX);
                }
                _ => self.unsupported(c, CTX),
            }
        }
        if t.file.is_none() {
            self.dropped(
                n,
                "",
                format!("track_file {name} has no `file`; keepalived ignores it, so does vrrpd"),
            );
            return;
        }
        self.carried(n, "");
        defaults.insert(name.clone(), t.weight.unwrap_or(1));
        self.config.track_file.insert(name, t);
    }

    /// `vrrp_track_process NAME { ... }`.
    fn track_process(&mut self, n: &Node) {
        const CTX: &str = "vrrp_track_process";
        let Some(name) = self.name(n) else { return };
        let k = KeyPath::root("track_process").key(&name);
        self.at(&k, n.pos);
        let mut t = raw::TrackProcess::default();
        for c in n.block() {
            self.at(&k.key(c.keyword()), c.pos);
            match c.keyword() {
                "process" => match c.args() {
                    [] => self.dropped(c, CTX, "`process` needs a name; dropped".to_owned()),
                    [process, params @ ..] => {
                        if t.process.is_some() {
                            self.dropped(c, CTX, format!("track process {name}: process already set; keepalived ignores this one, so does vrrpd"));
                            continue;
                        }
                        t.process = Some(process.clone());
                        t.params = params.to_vec();
                        self.carried(c, CTX);
                    }
                },
                "param_match" => match c.args().first().map(String::as_str) {
                    None => {
                        t.param_match = Some(raw::ParamMatch::Exact);
                        self.carried(c, CTX);
                    }
                    Some("initial") => {
                        t.param_match = Some(raw::ParamMatch::Initial);
                        self.carried(c, CTX);
                    }
                    Some("partial") => {
                        t.param_match = Some(raw::ParamMatch::Partial);
                        self.carried(c, CTX);
                    }
                    Some(other) => {
                        let other = other.to_owned();
                        self.dropped(c, CTX, format!("param_match `{other}` is not initial or partial; keepalived ignores it, so does vrrpd"));
                    }
                },
                "weight" => {
                    let Some(w) = c.args().first().and_then(|w| w.parse::<i32>().ok()) else {
                        self.dropped(c, CTX, "`weight` needs a number; dropped".to_owned());
                        continue;
                    };
                    if !(-254..=254).contains(&w) {
                        self.dropped(c, CTX, format!("vrrp_track_process {name} weight {w} is out of -254..=254; keepalived ignores it, so does vrrpd"));
                        continue;
                    }
                    t.weight = Some(w);
                    if c.args().get(1).is_some_and(|r| r == "reverse") {
                        t.reverse = Some(true);
                    }
                    self.carried(c, CTX);
                }
                "quorum" => match self.number::<u32>(c, CTX) {
                    Some(q) if (1..=65_535).contains(&q) => t.quorum = Some(q),
                    Some(q) => {
                        self.report.recount(&format!("{CTX} quorum"), Fate::Dropped);
                        self.note(c.pos, format!("quorum {q} is out of 1..=65535; keepalived ignores it, so does vrrpd"));
                    }
                    None => {}
                },
                "quorum_max" => match self.number::<u32>(c, CTX) {
                    Some(q) if q <= 65_535 => t.quorum_max = Some(q),
                    Some(q) => {
                        self.report
                            .recount(&format!("{CTX} quorum_max"), Fate::Dropped);
                        self.note(c.pos, format!("quorum_max {q} is out of 0..=65535; keepalived ignores it, so does vrrpd"));
                    }
                    None => {}
                },
                "delay" => t.delay = self.seconds(c, CTX),
                "fork_delay" => t.fork_delay = self.seconds(c, CTX),
                "terminate_delay" => t.terminate_delay = self.seconds(c, CTX),
                "full_command" => {
                    t.full_command = Some(true);
                    self.carried(c, CTX);
                }
                _ => self.unsupported(c, CTX),
            }
        }
        // keepalived's own consistency rules: quorum above quorum_max, a
        // zero quorum_max.
        if let (Some(q), Some(m)) = (t.quorum, t.quorum_max)
            && m != 0
            && q > m
        {
            self.note(n.pos, format!("track process {name}: quorum {q} is above quorum_max {m}; keepalived ignores quorum_max, so does vrrpd"));
            t.quorum_max = None;
        }
        let Some(process) = t.process.clone() else {
            self.dropped(n, "", format!("track process {name} has no `process`; keepalived ignores it (and the instances tracking it do not track it), so does vrrpd"));
            return;
        };
        if !t.full_command.unwrap_or(false)
            && t.params.is_empty()
            && t.param_match.is_none()
            && process.len() > 15
        {
            self.note(n.pos, format!("track process {name}: `{process}` is longer than a process name (15 characters) and never matches in keepalived; vrrpd refuses it (use full_command)"));
        }
        if self.config.track_process.contains_key(&name) {
            self.dropped(
                n,
                "",
                format!(
                    "`vrrp_track_process {name}` is defined again; the second definition is dropped"
                ),
            );
            return;
        }
        self.carried(n, "");
        self.config.track_process.insert(name, t);
    }

    /// `NAME [weight W [reverse|noreverse]]` lines of track_interface,
    /// track_script and track_file blocks.
    /// The entries of a `track_*` block, each with its line.
    fn track_entries(&mut self, n: &Node, ctx: &str) -> Vec<(raw::TrackRef, Pos)> {
        let mut out = Vec::new();
        for c in n.block() {
            let name = c.keyword();
            if name.is_empty() || name.contains(char::is_whitespace) {
                self.entry(c, &format!("{ctx} entry"), Fate::Dropped, Some(format!("`{name}` in {ctx}: not a name (empty or with spaces); keepalived finds nothing by it and ignores the entry, so does vrrpd")));
                continue;
            }
            let mut r = raw::TrackRef::named(name);
            let mut args = c.args().iter();
            let mut ok = true;
            while let Some(a) = args.next() {
                match a.as_str() {
                    "weight" => match args.next().and_then(|w| w.parse::<i32>().ok()) {
                        Some(w) => r.weight = Some(w),
                        None => ok = false,
                    },
                    "reverse" => r.reverse = Some(true),
                    "noreverse" | "no_reverse" => r.reverse = Some(false),
                    _ => ok = false,
                }
            }
            if !ok {
                let line = c.words.join(" ");
                self.entry(c, &format!("{ctx} entry"), Fate::Dropped, Some(format!("`{line}` in {ctx}: options not understood; keepalived ignores the entry, so does vrrpd")));
                continue;
            }
            self.report.count(&format!("{ctx} entry"), Fate::Carried);
            out.push((r, c.pos));
        }
        out
    }

    fn track_refs(
        &mut self,
        n: &Node,
        ctx: &str,
        key: &KeyPath,
        start: usize,
    ) -> Vec<raw::TrackRef> {
        let entries = self.track_entries(n, ctx);
        let mut out = Vec::with_capacity(entries.len());
        for (r, pos) in entries {
            self.at(&key.index(start + out.len()), pos);
            out.push(r);
        }
        out
    }

    #[allow(clippy::too_many_lines)]
    fn instance(
        &mut self,
        n: &Node,
        file_defaults: &BTreeMap<String, i32>,
    ) -> Option<(String, raw::Instance, InstanceInfo)> {
        const CTX: &str = "vrrp_instance";
        let name = self.name(n)?;
        self.carried(n, "");
        let k = KeyPath::root("instance").key(&name);
        self.at(&k, n.pos);
        let mut i = raw::Instance::default();
        let mut info = InstanceInfo {
            pos: n.pos,
            ..Default::default()
        };
        for c in n.block() {
            let key = k.key(c.keyword());
            self.at(&key, c.pos);
            match c.keyword() {
                "state" => match c.args().first().map(String::as_str) {
                    Some("MASTER") => {
                        i.state = Some(raw::StartState::Master);
                        self.carried(c, CTX);
                    }
                    Some("BACKUP") if i.state == Some(raw::StartState::Master) => {
                        self.dropped(c, CTX, "`state BACKUP` after `state MASTER`: keepalived keeps MASTER, so does vrrpd".to_owned());
                    }
                    Some("BACKUP") => {
                        i.state = Some(raw::StartState::Backup);
                        self.carried(c, CTX);
                    }
                    other => {
                        let other = other.unwrap_or("").to_owned();
                        self.changed(
                            c,
                            CTX,
                            format!(
                                "unknown state `{other}`: keepalived uses BACKUP, so does vrrpd"
                            ),
                        );
                        i.state = Some(raw::StartState::Backup);
                    }
                },
                "interface" => i.interface = self.string(c, CTX),
                "virtual_router_id" => match c.args().first().map(|a| a.parse::<Vrid>()) {
                    Some(Ok(v)) => {
                        i.virtual_router_id = Some(v);
                        self.carried(c, CTX);
                    }
                    _ => {
                        let a = c.args().join(" ");
                        self.refuse(c.pos, format!("({name}) virtual_router_id `{a}` is not 1..=255; keepalived refuses the instance"));
                    }
                },
                "priority" => match c.args().first().map(|a| a.parse::<Priority>()) {
                    Some(Ok(p)) => {
                        i.priority = Some(p);
                        self.carried(c, CTX);
                    }
                    _ => {
                        let a = c.args().join(" ");
                        self.changed(c, CTX, format!("({name}) priority `{a}` is not 1..=255: keepalived uses 100, so does vrrpd"));
                        i.priority = Some(Priority::DEFAULT);
                    }
                },
                "advert_int" => {
                    info.advert_int = self.seconds(c, CTX);
                    i.advert_int = info.advert_int;
                }
                "version" => match self.number::<u8>(c, CTX) {
                    Some(v @ (2 | 3)) => i.version = Some(v),
                    Some(v) => self.refuse(
                        c.pos,
                        format!("({name}) version {v}: keepalived accepts 2 or 3"),
                    ),
                    None => {}
                },
                "nopreempt" => {
                    i.nopreempt = Some(true);
                    self.carried(c, CTX);
                }
                "preempt" => {
                    // keepalived's (deprecated) default; nothing to carry.
                    self.carried(c, CTX);
                }
                "preempt_delay" => i.preempt_delay = self.seconds(c, CTX),
                "strict_mode" => i.strict_mode = self.flag(c, CTX),
                "virtual_ipaddress" => {
                    self.carried(c, CTX);
                    i.virtual_ipaddress = self.vips(c, &key);
                }
                "unicast_src_ip" | "mcast_src_ip" => {
                    let kw = c.keyword().to_owned();
                    match c.args().first().and_then(|a| address(a)) {
                        Some((ip, prefixed)) => {
                            if prefixed {
                                self.note(
                                    c.pos,
                                    format!("`{kw}`: the /prefix is ignored, as keepalived does"),
                                );
                            }
                            i.unicast_src_ip = Some(ip);
                            self.carried(c, CTX);
                        }
                        None => self.dropped(c, CTX, format!("`{kw}` needs an address; dropped")),
                    }
                    self.at(&k.key("unicast_src_ip"), c.pos);
                }
                "unicast_peer" => {
                    self.carried(c, CTX);
                    for p in c.block() {
                        match address(p.keyword()) {
                            Some((ip, prefixed)) => {
                                if prefixed {
                                    self.note(
                                        p.pos,
                                        "unicast_peer: the /prefix is ignored, as keepalived does"
                                            .to_owned(),
                                    );
                                }
                                if !p.args().is_empty() {
                                    let extra = p.args().join(" ");
                                    self.entry(p, "unicast_peer entry", Fate::Changed, Some(format!("unicast_peer options `{extra}` are not supported (vrrpd does not check TTLs of unicast adverts); the peer is kept")));
                                } else {
                                    self.report.count("unicast_peer entry", Fate::Carried);
                                }
                                self.at(&key.index(i.unicast_peer.len()), p.pos);
                                i.unicast_peer.push(ip);
                            }
                            None => {
                                let kw = p.keyword().to_owned();
                                self.entry(p, "unicast_peer entry", Fate::Dropped, Some(format!("`{kw}` is not an address; keepalived ignores it, so does vrrpd")));
                            }
                        }
                    }
                }
                "authentication" => {
                    self.carried(c, CTX);
                    info.auth = Some(c.pos);
                    let mut a = raw::Authentication::default();
                    for x in c.block() {
                        self.at(&key.key(x.keyword()), x.pos);
                        match x.keyword() {
                            "auth_type" => {
                                a.auth_type = self.string(x, "authentication");
                            }
                            "auth_pass" => {
                                if let Some(p) = self.arg(x, "authentication") {
                                    let mut pass = p.to_owned();
                                    if pass.len() > 8 {
                                        let mut cut = 8;
                                        while !pass.is_char_boundary(cut) {
                                            cut -= 1;
                                        }
                                        pass.truncate(cut);
                                        self.note(x.pos, format!("auth_pass is longer than 8 bytes; keepalived sends only the first 8, so the converted file uses `{pass}`"));
                                    }
                                    self.carried(x, "authentication");
                                    a.auth_pass = Some(pass);
                                }
                            }
                            _ => self.unsupported(x, "authentication"),
                        }
                    }
                    i.authentication = Some(a);
                }
                "garp_master_delay" => i.garp_master_delay = self.seconds(c, CTX),
                "garp_master_refresh" => i.garp_master_refresh = self.seconds(c, CTX),
                "garp_master_repeat" => i.garp_master_repeat = self.number(c, CTX),
                "garp_master_refresh_repeat" => i.garp_master_refresh_repeat = self.number(c, CTX),
                "lower_prio_no_advert" => i.lower_prio_no_advert = self.flag(c, CTX),
                "v3_checksum_as_v2" => i.checksum_as_v2 = self.flag(c, CTX),
                "smtp_alert" => i.smtp_alert = self.flag(c, CTX),
                "use_vmac" => i.use_vmac = self.use_vmac(c, CTX),
                "garp_lower_prio_delay" => i.garp_lower_prio_delay = self.seconds(c, CTX),
                "garp_lower_prio_repeat" => i.garp_lower_prio_repeat = self.number(c, CTX),
                "down_timer_adverts" => i.down_timer_adverts = self.number(c, CTX),
                "dont_track_primary" => i.dont_track_primary = self.flag(c, CTX),
                "promote_secondaries" => i.promote_secondaries = self.flag(c, CTX),
                "accept" => i.accept = self.flag(c, CTX),
                "garp_extra_if" | "vmac_garp_intvl" => {
                    if let Some((secs, all)) = self.garp_extra_if(c, CTX, 0) {
                        i.garp_extra_if = Some(Dur(std::time::Duration::from_secs(secs)));
                        i.garp_extra_if_all = all.then_some(true);
                    }
                }
                "no_accept" => i.accept = self.flag(c, CTX).map(|on| !on),
                "vmac_xmit_base" => i.vmac_xmit_base = self.flag(c, CTX),
                "track_interface" => {
                    self.carried(c, CTX);
                    let start = i.track_interface.len();
                    let refs = self.track_refs(c, "track_interface", &key, start);
                    i.track_interface.extend(refs);
                }
                "track_script" => {
                    self.carried(c, CTX);
                    let start = i.track_script.len();
                    let refs = self.track_refs(c, "track_script", &key, start);
                    for (n_ref, r) in refs.into_iter().enumerate() {
                        let pos = self.pos_of(&key.index(start + n_ref));
                        if self.config.script.contains_key(&r.name) {
                            self.at(&key.index(i.track_script.len()), pos);
                            i.track_script.push(r);
                        } else {
                            let name_ref = r.name.clone();
                            self.report.recount("track_script entry", Fate::Dropped);
                            self.note(pos, format!("({name}) track_script `{name_ref}` has no usable vrrp_script; keepalived ignores the entry, so does vrrpd"));
                        }
                    }
                }
                "track_file" => {
                    self.carried(c, CTX);
                    let start = i.track_file.len();
                    let refs = self.track_refs(c, "track_file", &key, start);
                    for (n_ref, r) in refs.into_iter().enumerate() {
                        let pos = self.pos_of(&key.index(start + n_ref));
                        if file_defaults.contains_key(&r.name) {
                            self.at(&key.index(i.track_file.len()), pos);
                            i.track_file.push(raw::TrackFileRef {
                                name: Some(r.name),
                                path: None,
                                weight: r.weight,
                                reverse: r.reverse,
                            });
                        } else {
                            let name_ref = r.name.clone();
                            self.report.recount("track_file entry", Fate::Dropped);
                            self.note(pos, format!("({name}) track_file `{name_ref}` has no track_file block; keepalived ignores the entry, so does vrrpd"));
                        }
                    }
                }
                "track_process" => {
                    self.carried(c, CTX);
                    let start = i.track_process.len();
                    let refs = self.track_refs(c, "track_process", &key, start);
                    for (n_ref, r) in refs.into_iter().enumerate() {
                        let pos = self.pos_of(&key.index(start + n_ref));
                        if !self.config.track_process.contains_key(&r.name) {
                            let name_ref = r.name.clone();
                            self.report.recount("track_process entry", Fate::Dropped);
                            self.note(pos, format!("({name}) track_process `{name_ref}` has no usable vrrp_track_process; keepalived ignores the entry, so does vrrpd"));
                        } else if i.track_process.iter().any(|t| t.name == r.name) {
                            let name_ref = r.name.clone();
                            self.report.recount("track_process entry", Fate::Dropped);
                            self.note(pos, format!("({name}) duplicate track_process {name_ref}: keepalived ignores it, so does vrrpd"));
                        } else {
                            self.at(&key.index(i.track_process.len()), pos);
                            i.track_process.push(r);
                        }
                    }
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                    let cmd = self.command(c, CTX);
                    match c.keyword() {
                        "notify_master" => i.notify_master = cmd,
                        "notify_backup" => i.notify_backup = cmd,
                        "notify_fault" => i.notify_fault = cmd,
                        "notify_stop" => i.notify_stop = cmd,
                        _ => i.notify = cmd,
                    }
                }
                "virtual_routes" => {
                    self.carried(c, CTX);
                    let start = i.virtual_routes.len();
                    let lines = self.route_lines(c, &key, start, "virtual_routes entry");
                    i.virtual_routes.extend(lines);
                }
                "debug" | "native_ipv6" | "kernel_rx_buf_size" | "linkbeat_use_polling" => {
                    let kw = c.keyword().to_owned();
                    self.dropped(
                        c,
                        CTX,
                        format!(
                            "`{kw}` has no equivalent in vrrpd (no effect on the election); dropped"
                        ),
                    );
                }
                "virtual_rules" => {
                    self.carried(c, CTX);
                    let start = i.virtual_rules.len();
                    let lines = self.rule_lines(c, &key, start, "virtual_rules entry");
                    i.virtual_rules.extend(lines);
                }
                "virtual_ipaddress_excluded" => {
                    self.carried(c, CTX);
                    let vips = self.vips(c, &key);
                    i.virtual_ipaddress_excluded.extend(vips);
                }
                "track_bfd"
                | "use_vmac_addr"
                | "use_ipvlan"
                | "higher_prio_send_advert"
                | "notify_deleted"
                | "notify_master_rx_lower_pri"
                | "notify_priority_changes"
                | "lvs_sync_daemon_interface"
                | "unicast_ttl"
                | "unicast_fault_no_peer"
                | "check_unicast_src"
                | "old_unicast_checksum"
                | "mcast_dst_ip"
                | "track_src_ip"
                | "vrf"
                | "skip_check_adv_addr" => {
                    let kw = c.keyword().to_owned();
                    self.dropped(
                        c,
                        CTX,
                        format!("`{kw}` in vrrp_instance is not supported by vrrpd yet; dropped"),
                    );
                }
                _ => self.unsupported(c, CTX),
            }
        }
        Some((name, i, info))
    }

    fn vips(&mut self, n: &Node, key: &KeyPath) -> Vec<raw::VirtualIp> {
        self.addresses(n, key, 0, "virtual_ipaddress entry", false)
    }

    /// The addresses of a `virtual_ipaddress`-like block, each line read
    /// as keepalived 2.2.7 reads it (`alloc_ipaddress`): what keepalived
    /// would ignore with an error is dropped with a note, an entry it
    /// would skip is dropped. `static_addr`: a `static_ipaddress` block
    /// (no `use_vmac`; without `dev`, keepalived's default interface).
    /// The entries are at `key[start..]`.
    pub(super) fn addresses(
        &mut self,
        n: &Node,
        key: &KeyPath,
        start: usize,
        row: &str,
        static_addr: bool,
    ) -> Vec<raw::VirtualIp> {
        let mut out = Vec::new();
        for v in n.block() {
            // A word with spaces (quoted, or with a control character) is
            // no address, interface or label. Kept, it would print as
            // `ADDR dev X` and read back as another entry.
            let spaced = |w: &str| w.contains(char::is_whitespace);
            if spaced(v.keyword()) || v.args().iter().any(|a| spaced(a)) {
                self.entry(v, row, Fate::Dropped, Some(format!("`{}`: a word with spaces is not an address, interface or label; keepalived ignores the entry, so does vrrpd", v.keyword())));
                continue;
            }
            match self.address_line(v, static_addr) {
                Ok((vip, notes)) => {
                    self.at(&key.index(start + out.len()), v.pos);
                    if notes.is_empty() {
                        self.report.count(row, Fate::Carried);
                    } else {
                        let d = notes.join("; ");
                        self.entry(
                            v,
                            row,
                            Fate::Changed,
                            Some(format!("address `{}`: {d}", v.keyword())),
                        );
                    }
                    out.push(vip);
                }
                Err(why) => {
                    self.entry(
                        v,
                        row,
                        Fate::Dropped,
                        Some(format!("address `{}` dropped: {why}", v.keyword())),
                    );
                }
            }
        }
        if n.children.is_none() {
            self.note(
                n.pos,
                format!("`{}` without a block; nothing carried", n.keyword()),
            );
        }
        out
    }

    /// One address line: the address and what was left out of it, or why
    /// keepalived would skip it.
    fn address_line(
        &mut self,
        v: &Node,
        static_addr: bool,
    ) -> Result<(raw::VirtualIp, Vec<String>), String> {
        let mut vip = raw::VirtualIp {
            address: v.keyword().to_owned(),
            ..raw::VirtualIp::default()
        };
        let Ok(address) = v.keyword().parse::<vrrp_core::VirtualAddress>() else {
            return Err("not an address (keepalived skips it)".to_owned());
        };
        let v6 = address.addr.is_ipv6();
        let mut notes = Vec::new();
        let mut brd: Option<String> = None;
        let mut args = v.args().iter();
        while let Some(opt) = args.next() {
            let opt = opt.as_str();
            let takes_value = matches!(
                opt,
                "dev" | "label" | "brd" | "broadcast" | "scope" | "peer" | "preferred_lft"
            ) || (static_addr && opt == "track_group");
            if !takes_value {
                match opt {
                    "no_track" => vip.no_track = true,
                    "home" | "-nodad" | "mngtmpaddr" | "noprefixroute" | "autojoin" => {
                        notes.push(format!("`{opt}` is not supported; left out"));
                    }
                    "use_vmac" if !static_addr => {
                        notes
                            .push("`use_vmac` on an address is not supported; left out".to_owned());
                    }
                    other => notes.push(format!(
                        "`{other}` is no address option (keepalived ignores it too)"
                    )),
                }
                continue;
            }
            let Some(value) = args.next().cloned() else {
                return Err(format!(
                    "`{opt}` without a value (keepalived skips the address)"
                ));
            };
            match opt {
                "dev" => vip.dev = Some(value),
                "label" if v6 => notes.push("an IPv6 address has no label (keepalived ignores it); left out".to_owned()),
                "label" => vip.label = Some(value),
                "scope" => match crate::config::parse_scope(&value) {
                    Ok(_) if v6 => notes.push(format!("`scope {value}`: an IPv6 address gets its scope from the kernel (keepalived ignores it); left out")),
                    Ok(_) => vip.scope = Some(value),
                    Err(e) => notes.push(format!("{e} (keepalived ignores it); left out")),
                },
                "brd" | "broadcast" => {
                    if v6 {
                        return Err(format!("`{opt} {value}` on an IPv6 address (keepalived skips the address)"));
                    }
                    if value != "+" && value != "-" && value.parse::<std::net::Ipv4Addr>().is_err() {
                        return Err(format!("`{opt} {value}` is no broadcast address (keepalived skips the address)"));
                    }
                    brd = Some(value);
                }
                "peer" => {
                    // keepalived reads the peer without a length (one
                    // written is an invalid address to it): the address
                    // becomes a /32 (/128) to its peer.
                    match value.parse::<std::net::IpAddr>() {
                        Ok(p) if vip.peer.is_none() && p.is_ipv6() == v6 => {
                            vip.peer = Some(value.clone());
                        }
                        _ => notes.push(format!("`peer {value}` is ignored by keepalived (not a plain address, of the other family, or a second peer); left out")),
                    }
                }
                "preferred_lft" => {
                    if value == "forever" || value.parse::<u32>().is_ok() {
                        vip.preferred_lft = Some(value);
                    } else {
                        notes.push(format!("`preferred_lft {value}` is invalid (keepalived ignores it); left out"));
                    }
                }
                _ => notes.push(format!("`{opt} {value}` is not supported; left out")),
            }
        }
        if vip.peer.is_some() && vip.address.contains('/') {
            // keepalived takes the peer's length.
            vip.address = address.addr.to_string();
            notes.push("the prefix length of an address with a peer is the peer's (keepalived ignores the address's); left out".to_owned());
        }
        if let Some(b) = brd {
            let prefix = if vip.peer.is_some() {
                32
            } else {
                address.prefix_len
            };
            if vip.peer.is_some() {
                notes.push(format!(
                    "`brd {b}` with a peer is ignored by keepalived; left out"
                ));
            } else if (b == "+" || b == "-") && prefix > 30 {
                notes.push(format!(
                    "`brd {b}` on a /{prefix} is ignored by keepalived; left out"
                ));
            } else {
                vip.brd = Some(b);
            }
        }
        if static_addr && vip.dev.is_none() {
            vip.dev = Some("eth0".to_owned());
            notes.push("no `dev`: keepalived's default interface, eth0 (vrrpd needs it written; check it is the right one if global_defs sets default_interface)".to_owned());
        }
        Ok((vip, notes))
    }

    fn sync_group<'n>(&mut self, n: &'n Node) -> Option<(String, Vec<(&'n Node, &'static str)>)> {
        const CTX: &str = "vrrp_sync_group";
        let name = self.name(n)?;
        let k = KeyPath::root("sync_group").key(&name);
        self.at(&k, n.pos);
        let mut g = raw::SyncGroup::default();
        let mut tracks: Vec<(&'n Node, &'static str)> = Vec::new();
        for c in n.block() {
            self.at(&k.key(c.keyword()), c.pos);
            match c.keyword() {
                "group" => {
                    self.carried(c, CTX);
                    for m in c.block() {
                        for w in &m.words {
                            self.at(&k.key("group").index(g.group.len()), m.pos);
                            g.group.push(w.clone());
                        }
                    }
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                    let cmd = self.command(c, CTX);
                    match c.keyword() {
                        "notify_master" => g.notify_master = cmd,
                        "notify_backup" => g.notify_backup = cmd,
                        "notify_fault" => g.notify_fault = cmd,
                        "notify_stop" => g.notify_stop = cmd,
                        _ => g.notify = cmd,
                    }
                }
                "sync_group_tracking_weight" | "global_tracking" => {
                    g.sync_group_tracking_weight = Some(true);
                    self.carried(c, CTX);
                }
                "track_interface" => tracks.push((c, "track_interface")),
                "track_script" => tracks.push((c, "track_script")),
                "track_file" => tracks.push((c, "track_file")),
                "track_process" => tracks.push((c, "track_process")),
                "smtp_alert" => g.smtp_alert = self.flag(c, CTX),
                "notify_priority_changes" | "track_bfd" => {
                    let kw = c.keyword().to_owned();
                    self.dropped(
                        c,
                        CTX,
                        format!("`{kw}` in vrrp_sync_group is not supported by vrrpd yet; dropped"),
                    );
                }
                other if self.config.instance.contains_key(other) && c.children.is_none() => {
                    let other = other.to_owned();
                    self.dropped(c, CTX, format!("`{other}` directly in vrrp_sync_group: keepalived reads only a `group {{ ... }}` block and ignores this line, so does vrrpd"));
                }
                _ => self.unsupported(c, CTX),
            }
        }
        if g.group.is_empty() {
            self.dropped(n, "", format!("sync group {name} has no instance (no `group {{ ... }}` block); keepalived removes it, so does vrrpd"));
            return None;
        }
        self.carried(n, "");
        self.config.sync_group.insert(name.clone(), g);
        Some((name, tracks))
    }

    /// A sync group's `track_*` blocks: keepalived adds them to every
    /// member after its own rules (`vrrp_complete_instance`) ran, with
    /// their weights (`sync_group_tracking_init`); weights are cleared
    /// only when a member owns its addresses. A member already tracking
    /// the object keeps its entry, with the group's weight unless its own
    /// was 0.
    fn group_tracks(
        &mut self,
        group: &str,
        tracks: Vec<(&Node, &'static str)>,
        file_defaults: &BTreeMap<String, i32>,
    ) {
        const CTX: &str = "vrrp_sync_group";
        let members = self
            .config
            .sync_group
            .get(group)
            .map(|g| g.group.clone())
            .unwrap_or_default();
        let owner = members.iter().find(|m| {
            self.config.instance.get(*m).is_some_and(|i| {
                i.priority
                    .map_or(i.state == Some(raw::StartState::Master), Priority::is_owner)
            })
        });
        let owner = owner.cloned();
        let mut weighted = None;
        for (c, kind) in tracks {
            self.carried(c, CTX);
            for (mut r, pos) in self.track_entries(c, kind) {
                let (default, default_reverse) = match kind {
                    "track_script" => match self.config.script.get(&r.name) {
                        Some(s) => (s.weight.unwrap_or(0), s.reverse),
                        None => {
                            self.note(pos, format!("sync group {group}: track script {} is not defined; keepalived ignores the entry, so does vrrpd", r.name));
                            continue;
                        }
                    },
                    "track_file" => match file_defaults.get(&r.name) {
                        Some(w) => (*w, None),
                        None => {
                            self.note(pos, format!("sync group {group}: track file {} is not defined; keepalived ignores the entry, so does vrrpd", r.name));
                            continue;
                        }
                    },
                    "track_process" => match self.config.track_process.get(&r.name) {
                        Some(p) => (p.weight.unwrap_or(0), p.reverse),
                        None => {
                            self.note(pos, format!("sync group {group}: track process {} is not defined; keepalived ignores the entry, so does vrrpd", r.name));
                            continue;
                        }
                    },
                    _ => (0, None),
                };
                let weight = r.weight.unwrap_or(default);
                r.weight = Some(weight);
                r.reverse = r.reverse.or(default_reverse);
                if weight != 0 {
                    if let Some(o) = &owner {
                        self.report.recount(&format!("{kind} entry"), Fate::Changed);
                        self.note(pos, format!("sync group {group}: {kind} {} weight {weight}: member {o} owns its addresses (priority 255), so keepalived clears the weight (a failure means Fault), so does vrrpd", r.name));
                        r.weight = Some(0);
                        r.reverse = None;
                    } else if kind != "track_process" {
                        // keepalived applies a process's weight to sync
                        // group members in any case.
                        weighted.get_or_insert(pos);
                    }
                }
                for m in &members {
                    self.add_group_track(group, m, kind, &r, pos);
                }
            }
        }
        if let Some(pos) = weighted
            && let Some(g) = self.config.sync_group.get_mut(group)
            && g.sync_group_tracking_weight != Some(true)
        {
            g.sync_group_tracking_weight = Some(true);
            self.note(pos, format!("sync group {group} tracks with a weight: keepalived applies a group's weights to its members (their own weights were already ignored above); vrrpd writes that as sync_group_tracking_weight = true"));
        }
    }

    /// Adds one of a sync group's tracked objects to one member.
    fn add_group_track(
        &mut self,
        group: &str,
        member: &str,
        kind: &str,
        r: &raw::TrackRef,
        pos: Pos,
    ) {
        let scripts = &self.config.script;
        let files = &self.config.track_file;
        let processes = &self.config.track_process;
        let Some(inst) = self.config.instance.get_mut(member) else {
            return;
        };
        let key = KeyPath::root("instance").key(member).key(kind);
        let own = kind == "track_interface" && inst.interface.as_deref() == Some(r.name.as_str());
        // The instance's entry, with its weight as keepalived reads it.
        let (exists, len) = match kind {
            "track_process" => {
                let default = processes.get(&r.name).and_then(|p| p.weight).unwrap_or(0);
                let e = inst.track_process.iter_mut().find(|t| t.name == r.name);
                let exists = e.is_some();
                // keepalived: the group's weight, unless the instance's was 0.
                if let Some(e) = e.filter(|e| e.weight.unwrap_or(default) != 0) {
                    e.weight = r.weight;
                    e.reverse = r.reverse;
                }
                (exists, inst.track_process.len())
            }
            "track_interface" => {
                let e = inst.track_interface.iter_mut().find(|t| t.name == r.name);
                let exists = e.is_some() || own;
                if let Some(e) = e.filter(|e| e.weight.unwrap_or(0) != 0) {
                    e.weight = r.weight;
                    e.reverse = r.reverse;
                }
                (exists, inst.track_interface.len())
            }
            "track_script" => {
                let default = scripts.get(&r.name).and_then(|s| s.weight).unwrap_or(0);
                let e = inst.track_script.iter_mut().find(|t| t.name == r.name);
                let exists = e.is_some();
                if let Some(e) = e.filter(|e| e.weight.unwrap_or(default) != 0) {
                    e.weight = r.weight;
                    e.reverse = r.reverse;
                }
                (exists, inst.track_script.len())
            }
            _ => {
                let default = files.get(&r.name).and_then(|f| f.weight).unwrap_or(1);
                let e = inst
                    .track_file
                    .iter_mut()
                    .find(|t| t.name.as_deref() == Some(r.name.as_str()));
                let exists = e.is_some();
                if let Some(e) = e.filter(|e| e.weight.unwrap_or(default) != 0) {
                    e.weight = r.weight;
                    e.reverse = r.reverse;
                }
                (exists, inst.track_file.len())
            }
        };
        if exists {
            let what = if own {
                "is its own interface, tracked with weight 0".to_owned()
            } else {
                "is also tracked by the instance: keepalived keeps one entry, with the group's weight unless the instance's was 0".to_owned()
            };
            self.note(
                pos,
                format!(
                    "sync group {group}: {kind} {} on member {member} {what}",
                    r.name
                ),
            );
            return;
        }
        match kind {
            "track_interface" => inst.track_interface.push(r.clone()),
            "track_script" => inst.track_script.push(r.clone()),
            "track_process" => inst.track_process.push(r.clone()),
            _ => inst.track_file.push(raw::TrackFileRef {
                name: Some(r.name.clone()),
                path: None,
                weight: r.weight,
                reverse: r.reverse,
            }),
        }
        self.at(&key.index(len), pos);
    }

    /// What keepalived does to an instance after reading the whole file
    /// (`vrrp_complete_instance`), done to the converted one, each change
    /// a warning.
    #[allow(clippy::too_many_lines)]
    fn keepalived_rules(&mut self, info: &BTreeMap<String, InstanceInfo>) {
        let members: BTreeMap<String, (String, bool)> = self
            .config
            .sync_group
            .iter()
            .flat_map(|(g, sg)| {
                let weights = sg.sync_group_tracking_weight == Some(true);
                sg.group
                    .iter()
                    .map(move |m| (m.clone(), (g.clone(), weights)))
            })
            .collect();
        let file_weights: BTreeMap<String, i32> = self
            .config
            .track_file
            .iter()
            .map(|(n, t)| (n.clone(), t.weight.unwrap_or(1)))
            .collect();
        let names: Vec<String> = self.config.instance.keys().cloned().collect();
        let global_strict = self.strict;
        let global_version = self.version;
        for name in names {
            let k = KeyPath::root("instance").key(&name);
            let meta = info.get(&name).cloned().unwrap_or_default();
            let Some(mut i) = self.config.instance.remove(&name) else {
                continue;
            };
            let mut notes: Vec<(Pos, &'static str, Fate, String)> = Vec::new();
            let at = |cx: &Self, key: &str| cx.pos_of(&k.key(key));
            let strict = i.strict_mode.unwrap_or(global_strict);
            if i.interface.is_none() {
                self.refuse(meta.pos, format!("({name}) has no `interface`; keepalived allows that for unicast instances with unicast_src_ip, vrrpd needs the interface"));
            }
            if i.virtual_router_id.is_none() {
                self.refuse(
                    meta.pos,
                    format!("({name}) has no virtual_router_id; keepalived refuses the instance"),
                );
            }
            let v6 = i
                .virtual_ipaddress
                .first()
                .and_then(|v| address(&v.address))
                .map(|(a, _)| a.is_ipv6())
                .or_else(|| i.unicast_src_ip.map(|a| a.is_ipv6()))
                .or_else(|| i.unicast_peer.first().map(IpAddr::is_ipv6))
                .unwrap_or(false);
            let version = match (i.version, v6) {
                (Some(2), true) if strict => {
                    notes.push((at(self, "version"), "vrrp_instance version", Fate::Changed, format!("({name}) VRRPv2 cannot carry IPv6: keepalived's strict mode switches to version 3, so does vrrpd")));
                    i.version = Some(3);
                    3
                }
                (Some(2), true) => {
                    self.refuse(at(self, "version"), format!("({name}) `version 2` on an IPv6 instance: keepalived would send VRRPv2 over IPv6, which no RFC defines and vrrpd cannot; remove `version 2` (keepalived then uses version 3)"));
                    2
                }
                (Some(v), _) => v,
                (None, true) => 3,
                (None, false) => global_version.unwrap_or(2),
            };
            let owner = i
                .priority
                .map_or(i.state == Some(raw::StartState::Master), Priority::is_owner);
            // keepalived tracks the instance's own interface with weight 0,
            // whatever track_interface says of it.
            if let Some(own) = i.interface.clone() {
                let mut kept = Vec::new();
                for (n, t) in std::mem::take(&mut i.track_interface)
                    .into_iter()
                    .enumerate()
                {
                    let pos = self.pos_of(&k.key("track_interface").index(n));
                    if t.name == own {
                        if t.weight.is_some_and(|w| w != 0) {
                            notes.push((pos, "track_interface entry", Fate::Changed, format!("({name}) track_interface {own}: the instance's own interface is tracked with weight 0 by keepalived (down means Fault), whatever weight is given; so by vrrpd")));
                        }
                        continue;
                    }
                    self.at(&k.key("track_interface").index(kept.len()), pos);
                    kept.push(t);
                }
                i.track_interface = kept;
            }
            if i.virtual_ipaddress.is_empty() && (version == 3 || v6 || strict) {
                self.refuse(meta.pos, format!("({name}) has no virtual_ipaddress; keepalived refuses such an instance with VRRPv3, IPv6 or strict mode"));
            }
            // Authentication: strict mode and VRRPv3 ignore it; AH cannot
            // be carried.
            if let Some(a) = &i.authentication {
                let pos = meta.auth.unwrap_or(meta.pos);
                let ah = a
                    .auth_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("AH"));
                if strict {
                    notes.push((pos, "vrrp_instance authentication", Fate::Changed, format!("({name}) authentication in strict mode: keepalived ignores it and sends none, so does vrrpd")));
                    i.authentication = None;
                } else if version == 3 {
                    notes.push((pos, "vrrp_instance authentication", Fate::Changed, format!("({name}) authentication with VRRPv3: keepalived ignores it and sends none, so does vrrpd")));
                    i.authentication = None;
                } else if ah {
                    self.refuse(pos, format!("({name}) auth_type AH: vrrpd does not implement it. RFC 3768 removed IPsec AH from VRRP (one of its changes from RFC 2338), keepalived's AH does not interoperate with other implementations, and a converted node without it would be ignored by a keepalived peer still using AH (both would become master). Use auth_type PASS or no authentication on every node"));
                    i.authentication = None;
                } else if a.auth_pass.as_deref().is_none_or(str::is_empty) {
                    notes.push((pos, "vrrp_instance authentication", Fate::Changed, format!("({name}) authentication without a password: keepalived ignores it, so does vrrpd")));
                    i.authentication = None;
                } else if a
                    .auth_type
                    .as_deref()
                    .is_some_and(|t| !t.eq_ignore_ascii_case("PASS"))
                {
                    let t = a.auth_type.clone().unwrap_or_default();
                    notes.push((pos, "vrrp_instance authentication", Fate::Changed, format!("({name}) unknown auth_type `{t}`: keepalived ignores the block, so does vrrpd")));
                    i.authentication = None;
                }
            }
            // Advertisement interval: keepalived rounds what the version
            // cannot carry.
            if let Some(d) = i.advert_int {
                let cs = (d.get().as_micros() + 5_000) / 10_000;
                let rounded_cs = match version {
                    2 => ((cs + 50) / 100 * 100).clamp(100, 25_500),
                    _ => cs.clamp(1, 4095),
                };
                let rounded = Dur(std::time::Duration::from_millis(
                    u64::try_from(rounded_cs * 10).unwrap_or(1000),
                ));
                if rounded != d {
                    notes.push((at(self, "advert_int"), "vrrp_instance advert_int", Fate::Changed, format!("({name}) advert_int {d} cannot be carried by VRRPv{version}: keepalived uses {rounded}, so does vrrpd")));
                    i.advert_int = Some(rounded);
                }
            }
            if strict && version == 2 && !owner && i.accept == Some(true) {
                notes.push((at(self, "accept"), "vrrp_instance accept", Fate::Changed, format!("({name}) accept with VRRPv2 in strict mode: keepalived turns it off (RFC 3768 has no accept mode), so does vrrpd")));
                i.accept = None;
            }
            if strict {
                if !i.unicast_peer.is_empty() {
                    self.refuse(at(self, "unicast_peer"), format!("({name}) unicast peers in strict mode: keepalived refuses the whole configuration (\"Unicast peers are not supported in strict mode\")"));
                }
                if i.preempt_delay.is_some() {
                    notes.push((at(self, "preempt_delay"), "vrrp_instance preempt_delay", Fate::Dropped, format!("({name}) preempt_delay in strict mode: keepalived resets it, so does vrrpd")));
                    i.preempt_delay = None;
                }
                if i.lower_prio_no_advert == Some(false) {
                    notes.push((at(self, "lower_prio_no_advert"), "vrrp_instance lower_prio_no_advert", Fate::Changed, format!("({name}) strict mode requires lower_prio_no_advert: keepalived sets it, so does vrrpd")));
                    i.lower_prio_no_advert = None;
                }
                if i.garp_lower_prio_repeat.is_some_and(|r| r != 0) {
                    notes.push((at(self, "garp_lower_prio_repeat"), "vrrp_instance garp_lower_prio_repeat", Fate::Changed, format!("({name}) strict mode sends no garp_lower_prio_repeat: keepalived resets it to 0, so does vrrpd")));
                    i.garp_lower_prio_repeat = None;
                }
                if i.garp_lower_prio_delay.is_some_and(|d| !d.get().is_zero()) {
                    notes.push((at(self, "garp_lower_prio_delay"), "vrrp_instance garp_lower_prio_delay", Fate::Changed, format!("({name}) strict mode has no garp_lower_prio_delay: keepalived resets it to 0, so does vrrpd")));
                    i.garp_lower_prio_delay = None;
                }
            }
            if i.state == Some(raw::StartState::Master) || owner {
                if i.nopreempt == Some(true) {
                    notes.push((at(self, "nopreempt"), "vrrp_instance nopreempt", Fate::Dropped, format!("({name}) nopreempt with state MASTER or priority 255: keepalived clears it, so does vrrpd")));
                    i.nopreempt = None;
                }
                if i.preempt_delay.is_some() && i.state == Some(raw::StartState::Master) {
                    notes.push((at(self, "preempt_delay"), "vrrp_instance preempt_delay", Fate::Dropped, format!("({name}) preempt_delay with state MASTER: keepalived clears it, so does vrrpd")));
                    i.preempt_delay = None;
                }
            }
            // Weights keepalived ignores: of sync-group members (unless
            // the group says sync_group_tracking_weight) and of the
            // address owner.
            let group = members.get(&name).filter(|(_, weights)| !weights);
            if group.is_some() || owner {
                let why = match group {
                    Some((g, _)) => format!("member of sync group {g}"),
                    None => "address owner (priority 255)".to_owned(),
                };
                let mut kept = Vec::new();
                for (n, mut t) in std::mem::take(&mut i.track_interface)
                    .into_iter()
                    .enumerate()
                {
                    let pos = self.pos_of(&k.key("track_interface").index(n));
                    if t.weight.is_some_and(|w| w != 0) {
                        if group.is_some() {
                            notes.push((pos, "track_interface entry", Fate::Changed, format!("({name}) track_interface {} weight: keepalived ignores weights of a {why} and tracks it with weight 0 (down means Fault), so does vrrpd", t.name)));
                            t.weight = Some(0);
                            t.reverse = None;
                        } else {
                            notes.push((pos, "track_interface entry", Fate::Dropped, format!("({name}) weighted track_interface {}: keepalived stops tracking it for the {why}, so does vrrpd", t.name)));
                            continue;
                        }
                    }
                    kept.push(t);
                }
                i.track_interface = kept;
                let scripts = &self.config.script;
                let mut kept = Vec::new();
                for (n, t) in std::mem::take(&mut i.track_script).into_iter().enumerate() {
                    let weight = t
                        .weight
                        .or_else(|| scripts.get(&t.name).and_then(|s| s.weight))
                        .unwrap_or(0);
                    if weight != 0 {
                        let pos = self.pos_of(&k.key("track_script").index(n));
                        notes.push((pos, "track_script entry", Fate::Dropped, format!("({name}) track_script {} with weight {weight}: keepalived ignores weighted scripts of a {why}, so does vrrpd", t.name)));
                        continue;
                    }
                    kept.push(t);
                }
                i.track_script = kept;
                let mut kept = Vec::new();
                for (n, mut t) in std::mem::take(&mut i.track_file).into_iter().enumerate() {
                    let pos = self.pos_of(&k.key("track_file").index(n));
                    let default = t
                        .name
                        .as_ref()
                        .and_then(|n| file_weights.get(n))
                        .copied()
                        .unwrap_or(1);
                    let weight = t.weight.unwrap_or(default);
                    let label = t.name.clone().unwrap_or_default();
                    if weight == 1 {
                        notes.push((pos, "track_file entry", Fate::Changed, format!("({name}) track_file {label}: keepalived reads the file with weight 0 for a {why} (any number but 0 means Fault), so does vrrpd")));
                        t.weight = Some(0);
                    } else if weight != 0 {
                        notes.push((pos, "track_file entry", Fate::Dropped, format!("({name}) track_file {label} with weight {weight}: keepalived ignores it for a {why}, so does vrrpd")));
                        continue;
                    }
                    kept.push(t);
                }
                i.track_file = kept;
            }
            for (pos, keyword, fate, msg) in notes {
                self.report.recount(keyword, fate);
                self.warnings.push((pos, msg));
            }
            self.config.instance.insert(name, i);
        }
    }

    /// A `virtual_server` block.
    #[allow(clippy::too_many_lines)]
    pub fn virtual_server(&mut self, n: &Node, index: usize) -> Option<raw::VirtualServer> {
        const CTX: &str = "virtual_server";
        let k = KeyPath::root("virtual_server").index(index);
        let mut vs = raw::VirtualServer::default();
        match n.args() {
            [kw, mark] if kw == "fwmark" => match mark.parse() {
                Ok(m) => vs.fwmark = Some(m),
                Err(_) => {
                    self.dropped(
                        n,
                        "",
                        format!("virtual_server fwmark `{mark}` is not a number; block dropped"),
                    );
                    return None;
                }
            },
            [kw, name] if kw == "group" => {
                vs.group = Some(name.clone());
                self.group_uses.push((index, n.pos));
            }
            [ip, port] => match (ip.parse(), port.parse()) {
                (Ok(ip), Ok(port)) => {
                    vs.ip = Some(ip);
                    vs.port = Some(port);
                }
                _ => {
                    self.dropped(n, "", format!("virtual_server `{ip} {port}` is not an address and a port; block dropped"));
                    return None;
                }
            },
            [ip] if ip.parse::<IpAddr>().is_ok() => {
                self.dropped(n, "", "`virtual_server IP` without a port (all ports) is not supported by vrrpd yet; this service is NOT configured".to_owned());
                return None;
            }
            _ => {
                self.dropped(
                    n,
                    "",
                    "virtual_server needs `IP PORT` or `fwmark N`; block dropped".to_owned(),
                );
                return None;
            }
        }
        self.carried(n, "");
        self.at(&k, n.pos);
        self.real_servers.push(Vec::new());
        for c in n.block() {
            let key = k.key(c.keyword());
            match c.keyword() {
                "delay_loop" => vs.delay_loop = self.seconds(c, CTX),
                "connect_timeout" => vs.connect_timeout = self.seconds(c, CTX),
                "retry" => vs.retry = self.number(c, CTX),
                "delay_before_retry" => vs.delay_before_retry = self.seconds(c, CTX),
                "lb_algo" | "lvs_sched" => vs.lb_algo = self.string(c, CTX),
                "lb_kind" | "lvs_method" => vs.lb_kind = self.lb_kind(c, CTX),
                "persistence_timeout" => {
                    if c.args().is_empty() {
                        self.carried(c, CTX);
                        vs.persistence_timeout = Some(Dur::secs(360));
                    } else {
                        vs.persistence_timeout = self.seconds(c, CTX);
                    }
                }
                "persistence_granularity" => match self.arg(c, CTX).map(raw::parse_granularity) {
                    Some(Ok(g)) => {
                        vs.persistence_granularity = Some(g);
                        self.carried(c, CTX);
                    }
                    Some(Err(e)) => {
                        self.dropped(c, CTX, format!("persistence_granularity: {e}; dropped"))
                    }
                    None => {}
                },
                "protocol" => match c.args().first().map(|p| p.to_ascii_uppercase()).as_deref() {
                    Some("TCP") => {
                        vs.protocol = Some(raw::VsProtocol::Tcp);
                        self.carried(c, CTX);
                    }
                    Some("UDP") => {
                        vs.protocol = Some(raw::VsProtocol::Udp);
                        self.carried(c, CTX);
                    }
                    Some("SCTP") => {
                        vs.protocol = Some(raw::VsProtocol::Sctp);
                        self.carried(c, CTX);
                    }
                    _ => self.dropped(
                        c,
                        CTX,
                        "protocol must be TCP, UDP or SCTP; dropped".to_owned(),
                    ),
                },
                "ip_family" => match c.args().first().map(String::as_str) {
                    Some("inet") => {
                        vs.family = Some(raw::IpFamily::Inet);
                        self.carried(c, CTX);
                    }
                    Some("inet6") => {
                        vs.family = Some(raw::IpFamily::Inet6);
                        self.carried(c, CTX);
                    }
                    _ => self.dropped(
                        c,
                        CTX,
                        "ip_family must be inet or inet6; dropped".to_owned(),
                    ),
                },
                "sorry_server" => match c.args() {
                    [ip] => {
                        vs.sorry_server = Some(ip.clone());
                        self.carried(c, CTX);
                    }
                    [ip, port] => {
                        vs.sorry_server = Some(format!("{ip} {port}"));
                        self.carried(c, CTX);
                    }
                    _ => self.dropped(c, CTX, "sorry_server takes IP [PORT]; dropped".to_owned()),
                },
                "quorum" => vs.quorum = self.number(c, CTX),
                "hysteresis" => vs.hysteresis = self.number(c, CTX),
                "alpha" => vs.alpha = self.flag(c, CTX),
                "omega" => vs.omega = self.flag(c, CTX),
                "inhibit_on_failure" => vs.inhibit_on_failure = self.flag(c, CTX),
                "ops" => vs.ops = self.flag(c, CTX),
                "quorum_up" => vs.quorum_up = self.command(c, CTX),
                "quorum_down" => vs.quorum_down = self.command(c, CTX),
                "virtualhost" => vs.virtualhost = self.string(c, CTX),
                "smtp_alert" => vs.smtp_alert = self.flag(c, CTX),
                "real_server" => {
                    if let Some(rs) = self.real_server(c) {
                        vs.real_server.push(rs);
                    }
                }
                _ => self.unsupported(c, CTX),
            }
            self.at(&key, c.pos);
        }
        vs.real_server.shrink_to_fit();
        // keepalived sends SNI only with enable_sni; vrrpd, unless told,
        // whenever there is a name.
        for rs in &mut vs.real_server {
            for h in &mut rs.ssl_get {
                if h.enable_sni.is_none() && (h.virtualhost.is_some() || vs.virtualhost.is_some()) {
                    h.enable_sni = Some(false);
                }
            }
        }
        if vs.ip.is_some() && vs.protocol.is_none() {
            self.default_udp(&mut vs, n.pos);
        }
        Some(vs)
    }

    fn lb_kind(&mut self, c: &Node, ctx: &str) -> Option<raw::LbKind> {
        let kind = match c.args().first().map(|p| p.to_ascii_uppercase()).as_deref() {
            Some("NAT") => raw::LbKind::Nat,
            Some("DR") => raw::LbKind::Dr,
            Some("TUN") => raw::LbKind::Tun,
            _ => {
                self.dropped(c, ctx, "lb_kind must be NAT, DR or TUN; dropped".to_owned());
                return None;
            }
        };
        if c.args().len() > 1 {
            let extra = c.args()[1..].join(" ");
            self.changed(
                c,
                ctx,
                format!("tunnel options `{extra}` are not supported; plain IP-in-IP is used"),
            );
        } else {
            self.carried(c, ctx);
        }
        Some(kind)
    }

    fn real_server(&mut self, n: &Node) -> Option<raw::RealServer> {
        const CTX: &str = "real_server";
        let (ip, port) = match n.args() {
            [ip, port] => (
                ip.parse::<IpAddr>().ok(),
                port.parse::<u16>().ok().map(Some),
            ),
            [ip] => (ip.parse::<IpAddr>().ok(), Some(None)),
            _ => (None, None),
        };
        let (Some(ip), Some(port)) = (ip, port) else {
            self.dropped(
                n,
                "virtual_server",
                "real_server needs `IP [PORT]`; dropped".to_owned(),
            );
            return None;
        };
        self.carried(n, "virtual_server");
        if let Some(list) = self.real_servers.last_mut() {
            list.push(n.pos);
        }
        let mut rs = raw::RealServer::new(ip);
        rs.port = port;
        for c in n.block() {
            match c.keyword() {
                "weight" => rs.weight = self.number(c, CTX),
                "uthreshold" => rs.uthreshold = self.number(c, CTX),
                "lthreshold" => rs.lthreshold = self.number(c, CTX),
                "inhibit_on_failure" => rs.inhibit_on_failure = self.flag(c, CTX),
                "lb_kind" | "lvs_method" => rs.lb_kind = self.lb_kind(c, CTX),
                "notify_up" => rs.notify_up = self.command(c, CTX),
                "notify_down" => rs.notify_down = self.command(c, CTX),
                "delay_loop" => rs.delay_loop = self.seconds(c, CTX),
                "connect_timeout" => rs.connect_timeout = self.seconds(c, CTX),
                "retry" => rs.retry = self.number(c, CTX),
                "delay_before_retry" => rs.delay_before_retry = self.seconds(c, CTX),
                "alpha" => rs.alpha = self.flag(c, CTX),
                "smtp_alert" => rs.smtp_alert = self.flag(c, CTX),
                "TCP_CHECK" => {
                    let mut t = raw::TcpCheck::default();
                    let (conn, sched) =
                        self.check_common(c, "TCP_CHECK", |cx, x| cx.unsupported(x, "TCP_CHECK"));
                    t.set_connect(conn);
                    t.set_schedule(sched);
                    rs.tcp_check.reserve_exact(1);
                    rs.tcp_check.push(t);
                }
                "HTTP_GET" | "SSL_GET" => {
                    let kw = c.keyword();
                    let mut h = raw::HttpCheck::default();
                    let mut urls = Vec::new();
                    let mut vhost = None;
                    let mut sni = None;
                    let (conn, sched) = self.check_common(c, kw, |cx, x| match x.keyword() {
                        "url" => {
                            let mut u = raw::Url::default();
                            for y in x.block() {
                                match y.keyword() {
                                    "path" => u.path = cx.string(y, "url"),
                                    "digest" => u.digest = cx.string(y, "url"),
                                    "status_code" => {
                                        let codes = y.args().join(" ");
                                        if codes.is_empty() {
                                            cx.dropped(
                                                y,
                                                "url",
                                                "`status_code` needs a value; dropped".to_owned(),
                                            );
                                        } else {
                                            u.status_code = Some(codes);
                                            cx.carried(y, "url");
                                        }
                                    }
                                    "regex" => {
                                        let words = match &y.line {
                                            Some(line) => split_quoted_escaped(line),
                                            None => Some(y.words.clone()),
                                        };
                                        match words.as_deref() {
                                            Some([_, pattern]) => {
                                                u.regex = Some(pattern.clone());
                                                cx.carried(y, "url");
                                            }
                                            _ => cx.dropped(y, "url", "`regex` takes one pattern (quote it when it has blanks); keepalived ignores this one (\"regex missing or too many fields\"), so does vrrpd".to_owned()),
                                        }
                                    }
                                    "regex_no_match" => {
                                        u.regex_no_match = Some(true);
                                        cx.carried(y, "url");
                                    }
                                    "regex_options" => {
                                        let mut options = healthcheck::RegexOptions::default();
                                        for o in y.args() {
                                            if options.set(o).is_some() {
                                                u.regex_options.push(o.clone());
                                            } else {
                                                cx.note(y.pos, format!("regex_options `{o}` has no equivalent in vrrpd's regular expressions; dropped"));
                                            }
                                        }
                                        cx.carried(y, "url");
                                    }
                                    "regex_min_offset" => u.regex_min_offset = cx.number(y, "url"),
                                    "regex_max_offset" => u.regex_max_offset = cx.number(y, "url"),
                                    "regex_stack" => cx.dropped(y, "url", "`regex_stack` (PCRE2's JIT stack size) has no meaning for vrrpd's regular expressions; dropped".to_owned()),
                                    _ => cx.unsupported(y, "url"),
                                }
                            }
                            cx.carried(x, kw);
                            urls.push(u);
                        }
                        "virtualhost" => vhost = cx.string(x, kw),
                        "enable_sni" => sni = cx.flag(x, kw),
                        _ => cx.unsupported(x, kw),
                    });
                    h.set_connect(conn);
                    h.set_schedule(sched);
                    h.url = urls;
                    h.enable_sni = sni.filter(|_| kw == "SSL_GET");
                    h.virtualhost = vhost;
                    if kw == "SSL_GET" {
                        rs.ssl_get.push(h);
                    } else {
                        rs.http_get.push(h);
                    }
                }
                "DNS_CHECK" => {
                    let mut d = raw::DnsCheck::default();
                    let (mut rt, mut name) = (None, None);
                    let (conn, sched) =
                        self.check_common(c, "DNS_CHECK", |cx, x| match x.keyword() {
                            "type" => rt = cx.string(x, "DNS_CHECK"),
                            "name" => name = cx.string(x, "DNS_CHECK"),
                            _ => cx.unsupported(x, "DNS_CHECK"),
                        });
                    d.set_connect(conn);
                    d.set_schedule(sched);
                    d.record_type = rt;
                    d.name = name;
                    rs.dns_check.push(d);
                }
                "SMTP_CHECK" => {
                    let mut s = raw::SmtpCheck::default();
                    let mut helo = None;
                    let (conn, sched) =
                        self.check_common(c, "SMTP_CHECK", |cx, x| match x.keyword() {
                            "helo_name" => helo = cx.string(x, "SMTP_CHECK"),
                            // keepalived's host-list code is compiled only
                            // with WITH_HOST_ENTRIES, which 2.2.7's build
                            // never defines: the block is an unknown keyword.
                            "host" => cx.dropped(x, "SMTP_CHECK", "`host` blocks in SMTP_CHECK are ignored by keepalived 2.2.7 (built without its deprecated host lists), which checks the real server's own address; so does vrrpd. To check another host, write another SMTP_CHECK with connect_ip".to_owned()),
                            _ => cx.unsupported(x, "SMTP_CHECK"),
                        });
                    s.set_connect(conn);
                    s.set_schedule(sched);
                    s.helo_name = helo;
                    rs.smtp_check.push(s);
                }
                "PING_CHECK" | "ICMP_CHECK" => {
                    let mut p = raw::PingCheck::default();
                    let kw = c.keyword();
                    let (conn, sched) = self.check_common(c, kw, |cx, x| cx.unsupported(x, kw));
                    p.set_connect(conn);
                    p.set_schedule(sched);
                    rs.ping_check.push(p);
                }
                "UDP_CHECK" => {
                    let mut u = raw::UdpCheck::default();
                    let (mut payload, mut require, mut reply) = (None, None, None);
                    let (conn, sched) = self.check_common(
                        c,
                        "UDP_CHECK",
                        |cx, x| match x.keyword() {
                            "payload" => {
                                let hex = x.args().join(" ");
                                match crate::config::parse_hex(&hex) {
                                    Ok(_) => {
                                        payload = Some(hex);
                                        cx.carried(x, "UDP_CHECK");
                                    }
                                    Err(e) => cx.dropped(x, "UDP_CHECK", format!("payload: {e}; keepalived reports it invalid, so vrrpd sends an empty payload")),
                                }
                            }
                            "require_reply" => {
                                require = Some(true);
                                let hex = x.args().join(" ");
                                if hex.is_empty() {
                                    cx.carried(x, "UDP_CHECK");
                                } else if hex.contains(['x', 'X']) {
                                    cx.changed(x, "UDP_CHECK", "require_reply with wildcard nibbles (x) is not supported: any reply is accepted".to_owned());
                                } else {
                                    match crate::config::parse_hex(&hex) {
                                        Ok(_) => {
                                            reply = Some(hex);
                                            cx.changed(x, "UDP_CHECK", "require_reply: the reply must start with these bytes; keepalived also accepts a shorter reply that matches as far as it goes, and refuses replies over 255 bytes".to_owned());
                                        }
                                        Err(e) => cx.dropped(x, "UDP_CHECK", format!("require_reply: {e}; any reply is accepted")),
                                    }
                                }
                            }
                            _ => cx.unsupported(x, "UDP_CHECK"),
                        },
                    );
                    u.set_connect(conn);
                    u.set_schedule(sched);
                    u.payload = payload;
                    u.require_reply = require;
                    u.reply = reply;
                    rs.udp_check.push(u);
                }
                "MISC_CHECK" => {
                    let mut m = raw::MiscCheck::default();
                    let mut schedule = raw::Schedule::default();
                    for x in c.block() {
                        match x.keyword() {
                            "misc_path" => m.misc_path = self.command(x, "MISC_CHECK"),
                            "misc_timeout" => {
                                m.misc_timeout = self.number::<u64>(x, "MISC_CHECK").map(Dur::secs)
                            }
                            "misc_dynamic" => {
                                m.misc_dynamic = Some(true);
                                self.carried(x, "MISC_CHECK");
                            }
                            "user" => match x.args() {
                                [u] => {
                                    m.user = Some(u.clone());
                                    self.carried(x, "MISC_CHECK");
                                }
                                [u, g] => {
                                    m.user = Some(format!("{u}:{g}"));
                                    self.carried(x, "MISC_CHECK");
                                }
                                _ => self.dropped(
                                    x,
                                    "MISC_CHECK",
                                    "`user` takes USER [GROUP]; dropped".to_owned(),
                                ),
                            },
                            "retry" | "nb_get_retry" => {
                                schedule.retry = self.number(x, "MISC_CHECK")
                            }
                            "delay_before_retry" => {
                                schedule.delay_before_retry = self.seconds(x, "MISC_CHECK")
                            }
                            "delay_loop" => schedule.delay_loop = self.seconds(x, "MISC_CHECK"),
                            _ => self.unsupported(x, "MISC_CHECK"),
                        }
                    }
                    m.set_schedule(schedule);
                    if m.misc_path.is_none() {
                        self.dropped(c, CTX, "MISC_CHECK without `misc_path`: keepalived drops the check, so does vrrpd".to_owned());
                    } else {
                        self.carried(c, CTX);
                        rs.misc_check.push(m);
                    }
                }
                "FILE_CHECK" | "BFD_CHECK" | "warmup" | "virtualhost" | "snmp_name" => {
                    let kw = c.keyword().to_owned();
                    self.dropped(
                        c,
                        CTX,
                        format!("`{kw}` in real_server is not supported by vrrpd yet; dropped"),
                    );
                }
                _ => self.unsupported(c, CTX),
            }
        }
        shrink_checks(&mut rs);
        Some(rs)
    }

    /// The keywords every checker has; others go to `other`.
    fn check_common(
        &mut self,
        n: &Node,
        kw: &str,
        mut other: impl FnMut(&mut Self, &Node),
    ) -> (raw::Connect, raw::Schedule) {
        let mut conn = raw::Connect::default();
        let mut sched = raw::Schedule::default();
        let (mut bind_port, mut bind_port_pos) = (None, None);
        for c in n.block() {
            match c.keyword() {
                "connect_ip" => match c.args().first().and_then(|a| address(a)) {
                    Some((ip, _)) => {
                        conn.connect_ip = Some(ip);
                        self.carried(c, kw);
                    }
                    None => self.dropped(c, kw, "connect_ip needs an address; dropped".to_owned()),
                },
                "bindto" | "bind_to" => match c.args().first().and_then(|a| address(a)) {
                    Some((ip, _)) => {
                        conn.bind_to = Some(ip);
                        self.carried(c, kw);
                    }
                    None => self.dropped(c, kw, "bindto needs an address; dropped".to_owned()),
                },
                "connect_port" => conn.connect_port = self.number(c, kw),
                "connect_timeout" => conn.connect_timeout = self.seconds(c, kw),
                "retry" | "nb_get_retry" => sched.retry = self.number(c, kw),
                "delay_before_retry" => sched.delay_before_retry = self.seconds(c, kw),
                "delay_loop" => sched.delay_loop = self.seconds(c, kw),
                "bind_port" => {
                    bind_port = self.number::<u16>(c, kw).filter(|p| *p != 0);
                    bind_port_pos = Some(c.pos);
                }
                "bind_if" => match c.args() {
                    [name] if name.len() <= 15 => {
                        conn.bind_if = Some(name.clone());
                        self.carried(c, kw);
                    }
                    _ => self.dropped(c, kw, "`bind_if` takes an interface name (at most 15 characters); keepalived ignores it, so does vrrpd".to_owned()),
                },
                "fwmark" | "warmup" | "alpha" | "log_all_failures" => {
                    let k = c.keyword().to_owned();
                    self.dropped(
                        c,
                        kw,
                        format!("`{k}` in {kw} is not supported by vrrpd yet; dropped"),
                    );
                }
                _ => other(self, c),
            }
        }
        // keepalived binds the port only together with an address.
        match (bind_port, bind_port_pos) {
            (Some(port), _) if conn.bind_to.is_some() => conn.bind_port = Some(port),
            (Some(port), Some(pos)) => {
                self.report
                    .recount(&format!("{kw} bind_port"), Fate::Dropped);
                self.note(pos, format!("`bind_port {port}` without `bindto`: keepalived does not bind the port then, so vrrpd does not either; dropped"));
            }
            _ => {}
        }
        self.carried(n, "real_server");
        (conn, sched)
    }
}

impl Cx {
    /// `virtual_server_group NAME { ... }`: each line read as keepalived
    /// reads it; lines keepalived skips are dropped with its reason.
    pub fn virtual_server_group(&mut self, n: &Node) {
        let Some(name) = self.name(n) else { return };
        if self.config.virtual_server_group.contains_key(&name) {
            self.dropped(
                n,
                "",
                format!("`virtual_server_group {name}` is defined again; the virtual servers use the first, so does vrrpd"),
            );
            return;
        }
        let k = KeyPath::root("virtual_server_group").key(&name);
        self.at(&k, n.pos);
        let mut lines: Vec<String> = Vec::new();
        for c in n.block() {
            let line = c.words.join(" ");
            match line.parse::<lvs::GroupEntry>() {
                Ok(e) => {
                    self.at(&k.index(lines.len()), c.pos);
                    self.entry(c, "virtual_server_group entry", Fate::Carried, None);
                    lines.push(e.to_string());
                }
                Err(e) => self.entry(
                    c,
                    "virtual_server_group entry",
                    Fate::Dropped,
                    Some(format!("virtual_server_group {name}: {e}; keepalived skips the entry, so does vrrpd")),
                ),
            }
        }
        if lines.is_empty() {
            self.dropped(n, "", format!("virtual_server_group {name} has no usable entry; keepalived removes it (and the virtual servers that use it), so does vrrpd"));
            return;
        }
        self.carried(n, "");
        self.config.virtual_server_group.insert(name, lines);
    }

    /// After the whole file: virtual servers whose group is not defined
    /// are dropped (keepalived: "specified but not configured - ignoring
    /// virtual server"), and a group entry without a port makes its
    /// virtual servers persistent as keepalived does.
    pub fn link_groups(&mut self) {
        let uses = std::mem::take(&mut self.group_uses);
        let mut gone = Vec::new();
        for (index, pos) in uses {
            let Some(vs) = self.config.virtual_server.get_mut(index) else {
                continue;
            };
            let name = vs.group.clone().unwrap_or_default();
            let Some(lines) = self.config.virtual_server_group.get(&name) else {
                self.report.recount("virtual_server", Fate::Dropped);
                self.warnings.push((pos, format!("virtual_server group {name}: no such virtual_server_group; keepalived ignores this virtual server, so does vrrpd")));
                gone.push(index);
                continue;
            };
            let entries: Vec<lvs::GroupEntry> =
                lines.iter().filter_map(|l| l.parse().ok()).collect();
            let portless = entries
                .iter()
                .any(|e| matches!(e, lvs::GroupEntry::Addresses { port: 0, .. }));
            if vs.protocol.is_none() && entries.iter().any(|e| !e.is_fwmark()) {
                vs.protocol = Some(raw::VsProtocol::Udp);
                self.report.recount("virtual_server", Fate::Changed);
                self.warnings.push((pos, "virtual_server without `protocol`: keepalived 2.2.7 uses UDP (\"no protocol set - defaulting to UDP\"), so does vrrpd".to_owned()));
            }
            if portless && vs.persistence_timeout.is_none() {
                vs.persistence_timeout = Some(Dur::secs(360));
                self.warnings.push((pos, format!("virtual_server group {name}: an entry has no port, so keepalived makes the virtual server persistent (persistence_timeout 360), so does vrrpd")));
            }
        }
        for index in gone.into_iter().rev() {
            self.remove_virtual_server(index);
        }
    }

    /// keepalived 2.2.7 makes an address virtual server without `protocol`
    /// a UDP one.
    fn default_udp(&mut self, vs: &mut raw::VirtualServer, pos: Pos) {
        vs.protocol = Some(raw::VsProtocol::Udp);
        self.report.recount("virtual_server", Fate::Changed);
        self.warnings.push((pos, "virtual_server without `protocol`: keepalived 2.2.7 uses UDP (\"no protocol set - defaulting to UDP\"), so does vrrpd".to_owned()));
    }

    /// Removes a converted virtual server, renumbering the positions of
    /// those after it.
    fn remove_virtual_server(&mut self, index: usize) {
        if index >= self.config.virtual_server.len() {
            return;
        }
        self.config.virtual_server.remove(index);
        if index < self.real_servers.len() {
            self.real_servers.remove(index);
        }
        let prefix = "virtual_server[";
        let old = std::mem::take(&mut self.locations);
        for (key, pos) in old {
            let renumbered = key.strip_prefix(prefix).and_then(|rest| {
                let (n, tail) = rest.split_once(']')?;
                let n: usize = n.parse().ok()?;
                Some((n, tail.to_owned()))
            });
            match renumbered {
                Some((n, _)) if n == index => {}
                Some((n, tail)) if n > index => {
                    self.locations
                        .insert(format!("{prefix}{}]{tail}", n - 1), pos);
                }
                _ => {
                    self.locations.insert(key, pos);
                }
            }
        }
    }
}

/// Large files hold tens of thousands of these: no spare capacity.
fn shrink_checks(rs: &mut raw::RealServer) {
    rs.tcp_check.shrink_to_fit();
    rs.http_get.shrink_to_fit();
    rs.ssl_get.shrink_to_fit();
    rs.misc_check.shrink_to_fit();
    rs.dns_check.shrink_to_fit();
    rs.smtp_check.shrink_to_fit();
    rs.ping_check.shrink_to_fit();
    rs.udp_check.shrink_to_fit();
}

/// What the rules applied after reading the file need to know of an
/// instance besides its converted form.
#[derive(Clone, Debug, Default)]
pub(super) struct InstanceInfo {
    pos: Pos,
    auth: Option<Pos>,
    advert_int: Option<Dur>,
}
