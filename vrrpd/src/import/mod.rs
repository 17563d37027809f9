//! `vrrpd import-keepalived`: converts a keepalived.conf (global_defs,
//! vrrp_script, vrrp_track_file, vrrp_instance, vrrp_sync_group,
//! virtual_server with real servers and checks) into vrrpd's TOML. Every
//! keyword it cannot carry becomes a warning with its file and line;
//! nothing is dropped silently.

mod parse;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

#[allow(unused_imports)]
pub use parse::{Node, Pos, glob, parse_file};

use crate::config::{parse_duration, split_words};

/// Why a keepalived configuration could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A file could not be read.
    #[error("{}: cannot read: {message}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The system's message.
        message: String,
    },
    /// Unbalanced braces, a bad include.
    #[error("{pos}: {message}")]
    Syntax {
        /// Where.
        pos: Pos,
        /// What.
        message: String,
    },
}

/// Something of the keepalived configuration that the TOML does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where it was written.
    pub pos: Pos,
    /// What was not carried, and why.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// The result of a conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The TOML configuration.
    pub toml: String,
    /// What could not be carried.
    pub warnings: Vec<Warning>,
}

/// Converts the keepalived configuration at `path` (and its includes).
pub fn import_file(path: &Path) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    import_str(&String::from_utf8_lossy(&bytes), path)
}

/// Converts keepalived configuration text; `path` names it and anchors
/// relative includes.
pub fn import_str(text: &str, path: &Path) -> Result<Imported, ImportError> {
    let mut raw_warnings = Vec::new();
    let nodes = parse_file(path, text, &mut raw_warnings)?;
    let mut cx = Cx {
        warnings: raw_warnings
            .into_iter()
            .map(|(pos, message)| Warning { pos, message })
            .collect(),
        track_files: BTreeMap::new(),
    };
    let mut global = Table::new();
    let mut scripts = Table::new();
    let mut instances = Table::new();
    let mut groups = Table::new();
    let mut servers = Vec::new();
    // Track files are defined anywhere and referenced by instances.
    for n in &nodes {
        if n.keyword() == "vrrp_track_file" {
            cx.track_file(n);
        }
    }
    for n in &nodes {
        match n.keyword() {
            "global_defs" => cx.global(n, &mut global),
            "vrrp_script" => {
                if let Some(name) = cx.name(n) {
                    let t = cx.script(n);
                    insert_named(&mut cx, n, &mut scripts, name, t);
                }
            }
            "vrrp_track_file" => {}
            "vrrp_instance" => {
                if let Some(name) = cx.name(n) {
                    let t = cx.instance(n);
                    insert_named(&mut cx, n, &mut instances, name, t);
                }
            }
            "vrrp_sync_group" => {
                if let Some(name) = cx.name(n) {
                    let t = cx.sync_group(n);
                    insert_named(&mut cx, n, &mut groups, name, t);
                }
            }
            "virtual_server" => {
                if let Some(t) = cx.virtual_server(n) {
                    servers.push(Value::Table(t));
                }
            }
            "static_ipaddress" | "static_routes" | "static_rules" => cx.warn(
                n,
                format!("`{}` is out of scope for vrrpd (configure it with systemd-networkd or ip); dropped", n.keyword()),
            ),
            "" => cx.warn(n, "block without a keyword; dropped".to_owned()),
            other => cx.warn(n, format!("`{other}` is not supported by vrrpd; dropped")),
        }
    }
    let mut root = Table::new();
    if !global.is_empty() {
        root.insert("global".into(), Value::Table(global));
    }
    for (key, t) in [
        ("script", scripts),
        ("instance", instances),
        ("sync_group", groups),
    ] {
        if !t.is_empty() {
            root.insert(key.into(), Value::Table(t));
        }
    }
    if !servers.is_empty() {
        root.insert("virtual_server".into(), Value::Array(servers));
    }
    let body = toml::to_string(&root).map_err(|e| ImportError::Syntax {
        pos: Pos {
            file: path.to_path_buf(),
            line: 0,
        },
        message: format!("cannot write TOML: {e}"),
    })?;
    let mut header = format!(
        "# Converted from {} by `vrrpd import-keepalived`.\n",
        path.display()
    );
    if cx.warnings.is_empty() {
        header.push_str("# Every keyword was carried over.\n");
    } else {
        header.push_str(&format!(
            "# {} keyword(s) could not be carried over; see the warnings it printed.\n",
            cx.warnings.len()
        ));
    }
    header.push_str("# Validate with `vrrpd check -c FILE`.\n\n");
    Ok(Imported {
        toml: header + &body,
        warnings: cx.warnings,
    })
}

fn insert_named(cx: &mut Cx, n: &Node, table: &mut Table, name: String, value: Table) {
    if table.contains_key(&name) {
        cx.warn(
            n,
            format!("`{} {name}` is defined again; keepalived refuses this too, this second definition is dropped", n.keyword()),
        );
    } else {
        table.insert(name, Value::Table(value));
    }
}

struct Cx {
    warnings: Vec<Warning>,
    /// `vrrp_track_file` name -> (path, weight, reverse).
    track_files: BTreeMap<String, (String, i64, bool)>,
}

/// A number if it is one, else the text, so that `vrrpd check` reports
/// the bad value with the key it belongs to.
fn int_or_str(s: &str) -> Value {
    s.parse::<i64>()
        .map_or_else(|_| Value::String(s.to_owned()), Value::Integer)
}

/// keepalived durations are seconds, possibly fractional ("0.5").
fn seconds(s: &str) -> Value {
    if let Ok(i) = s.parse::<i64>() {
        return Value::Integer(i);
    }
    match parse_duration(s) {
        Ok(d) => Value::String(crate::config::format_duration(d)),
        Err(_) => Value::String(s.to_owned()),
    }
}

/// keepalived booleans: no argument, or true/yes/on/1, false/no/off/0.
fn boolean(args: &[String]) -> Option<bool> {
    match args.first().map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("true" | "yes" | "on" | "1") => Some(true),
        Some("false" | "no" | "off" | "0") => Some(false),
        _ => None,
    }
}

/// A keepalived script line: the arguments joined back into one command
/// line (quoting words that contain spaces).
fn command_line(args: &[String]) -> String {
    if args.len() == 1 {
        return args[0].clone();
    }
    args.iter()
        .map(|a| {
            if a.contains(char::is_whitespace) || a.is_empty() {
                format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Cx {
    fn warn(&mut self, n: &Node, message: String) {
        self.warnings.push(Warning {
            pos: n.pos.clone(),
            message,
        });
    }

    fn unsupported(&mut self, n: &Node, context: &str) {
        let kw = n.keyword().to_owned();
        self.warn(
            n,
            format!("`{kw}` in {context} is not supported by vrrpd; dropped"),
        );
    }

    fn name(&mut self, n: &Node) -> Option<String> {
        match n.args() {
            [name] => Some(name.clone()),
            _ => {
                self.warn(
                    n,
                    format!("`{}` needs exactly one name; block dropped", n.keyword()),
                );
                None
            }
        }
    }

    /// The first argument, or a warning.
    fn arg<'n>(&mut self, n: &'n Node) -> Option<&'n str> {
        let a = n.args().first().map(String::as_str);
        if a.is_none() {
            self.warn(n, format!("`{}` needs a value; dropped", n.keyword()));
        }
        if let Some(extra) = n.args().get(1..).filter(|e| !e.is_empty()) {
            let extra = extra.join(" ");
            let kw = n.keyword().to_owned();
            self.warn(
                n,
                format!(
                    "`{kw}` takes one value; `{extra}` after it is ignored (one keyword per line)"
                ),
            );
        }
        a
    }

    fn set_str(&mut self, t: &mut Table, key: &str, n: &Node) {
        if let Some(a) = self.arg(n) {
            t.insert(key.into(), Value::String(a.to_owned()));
        }
    }

    fn set_int(&mut self, t: &mut Table, key: &str, n: &Node) {
        if let Some(a) = self.arg(n) {
            t.insert(key.into(), int_or_str(a));
        }
    }

    fn set_secs(&mut self, t: &mut Table, key: &str, n: &Node) {
        if let Some(a) = self.arg(n) {
            t.insert(key.into(), seconds(a));
        }
    }

    fn set_bool(&mut self, t: &mut Table, key: &str, n: &Node) {
        match boolean(n.args()) {
            Some(b) => {
                t.insert(key.into(), Value::Boolean(b));
            }
            None => self.warn(
                n,
                format!("`{}` takes no value or true/false; dropped", n.keyword()),
            ),
        }
    }

    fn set_cmd(&mut self, t: &mut Table, key: &str, n: &Node) {
        if n.args().is_empty() {
            self.warn(n, format!("`{}` needs a command; dropped", n.keyword()));
            return;
        }
        let line = command_line(n.args());
        if split_words(&line).is_err() {
            self.warn(
                n,
                format!(
                    "`{}`: cannot split `{line}` into words; dropped",
                    n.keyword()
                ),
            );
            return;
        }
        t.insert(key.into(), Value::String(line));
    }

    fn global(&mut self, n: &Node, g: &mut Table) {
        for c in n.block() {
            match c.keyword() {
                "router_id" => self.set_str(g, "router_id", c),
                "vrrp_version" => self.set_int(g, "vrrp_version", c),
                "enable_script_security" => self.set_bool(g, "enable_script_security", c),
                "script_user" => match c.args() {
                    [u] => {
                        g.insert("script_user".into(), Value::String(u.clone()));
                    }
                    [u, grp] => {
                        g.insert("script_user".into(), Value::String(format!("{u}:{grp}")));
                    }
                    _ => self.warn(c, "`script_user` takes USER [GROUP]; dropped".to_owned()),
                },
                "vrrp_garp_master_delay" => self.set_secs(g, "vrrp_garp_master_delay", c),
                "vrrp_garp_master_repeat" => self.set_int(g, "vrrp_garp_master_repeat", c),
                "vrrp_garp_master_refresh" => self.set_secs(g, "vrrp_garp_master_refresh", c),
                "vrrp_garp_master_refresh_repeat" => {
                    self.set_int(g, "vrrp_garp_master_refresh_repeat", c);
                }
                "vrrp_garp_interval" | "vrrp_gna_interval" => {
                    self.set_secs(g, "vrrp_garp_interval", c);
                }
                "vrrp_lower_prio_no_advert" => self.set_bool(g, "vrrp_lower_prio_no_advert", c),
                _ => self.unsupported(c, "global_defs"),
            }
        }
    }

    fn script(&mut self, n: &Node) -> Table {
        let mut t = Table::new();
        for c in n.block() {
            match c.keyword() {
                "script" => self.set_cmd(&mut t, "command", c),
                "interval" => self.set_secs(&mut t, "interval", c),
                "timeout" => self.set_secs(&mut t, "timeout", c),
                "weight" => {
                    match c.args().first() {
                        Some(w) => {
                            t.insert("weight".into(), int_or_str(w));
                        }
                        None => self.warn(c, "`weight` needs a value; dropped".to_owned()),
                    }
                    match c.args().get(1).map(String::as_str) {
                        Some("reverse") => {
                            t.insert("reverse".into(), Value::Boolean(true));
                        }
                        Some(other) => {
                            let other = other.to_owned();
                            self.warn(
                                c,
                                format!(
                                    "`weight ... {other}` is not understood; only `reverse` is"
                                ),
                            );
                        }
                        None => {}
                    }
                }
                "rise" => self.set_int(&mut t, "rise", c),
                "fall" => self.set_int(&mut t, "fall", c),
                "user" => match c.args() {
                    [u] => {
                        t.insert("user".into(), Value::String(u.clone()));
                    }
                    [u, g] => {
                        t.insert("user".into(), Value::String(format!("{u}:{g}")));
                    }
                    _ => self.warn(c, "`user` takes USER [GROUP]; dropped".to_owned()),
                },
                "init_fail" => {
                    t.insert("init_fail".into(), Value::Boolean(true));
                }
                _ => self.unsupported(c, "vrrp_script"),
            }
        }
        if !t.contains_key("command") {
            self.warn(
                n,
                "vrrp_script without `script`: vrrpd check will refuse it".to_owned(),
            );
        }
        t
    }

    fn track_file(&mut self, n: &Node) {
        let Some(name) = self.name(n) else { return };
        let mut path = None;
        let mut weight = 1;
        let mut reverse = false;
        for c in n.block() {
            match c.keyword() {
                "file" => path = c.args().first().cloned(),
                "weight" => {
                    weight = c.args().first().and_then(|w| w.parse().ok()).unwrap_or(1);
                    reverse = c.args().get(1).is_some_and(|r| r == "reverse");
                }
                _ => self.unsupported(c, "vrrp_track_file"),
            }
        }
        match path {
            Some(p) => {
                self.track_files.insert(name, (p, weight, reverse));
            }
            None => self.warn(n, "vrrp_track_file without `file`; dropped".to_owned()),
        }
    }

    fn instance(&mut self, n: &Node) -> Table {
        let mut t = Table::new();
        for c in n.block() {
            match c.keyword() {
                "state" => {
                    if let Some(a) = self.arg(c) {
                        t.insert("state".into(), Value::String(a.to_ascii_uppercase()));
                    }
                }
                "interface" => self.set_str(&mut t, "interface", c),
                "virtual_router_id" => self.set_int(&mut t, "virtual_router_id", c),
                "priority" => self.set_int(&mut t, "priority", c),
                "advert_int" => self.set_secs(&mut t, "advert_int", c),
                "version" => self.set_int(&mut t, "version", c),
                "nopreempt" => {
                    t.insert("nopreempt".into(), Value::Boolean(true));
                }
                "preempt" => {
                    // keepalived's (deprecated) default; nothing to carry.
                }
                "preempt_delay" => self.set_secs(&mut t, "preempt_delay", c),
                "virtual_ipaddress" => {
                    let vips = self.vips(c);
                    t.insert("virtual_ipaddress".into(), Value::Array(vips));
                }
                "unicast_src_ip" | "mcast_src_ip" => self.set_str(&mut t, "unicast_src_ip", c),
                "unicast_peer" => {
                    let mut peers = Vec::new();
                    for p in c.block() {
                        peers.push(Value::String(p.keyword().to_owned()));
                        if !p.args().is_empty() {
                            let extra = p.args().join(" ");
                            self.warn(p, format!("unicast_peer options `{extra}` are not supported; the peer is kept without them"));
                        }
                    }
                    t.insert("unicast_peer".into(), Value::Array(peers));
                }
                "authentication" => {
                    let auth = self.auth(c);
                    t.insert("authentication".into(), Value::Table(auth));
                }
                "garp_master_delay" | "garp_master_refresh" | "garp_interval" => {
                    self.set_secs(&mut t, c.keyword(), c);
                }
                "garp_master_repeat" | "garp_master_refresh_repeat" => {
                    self.set_int(&mut t, c.keyword(), c);
                }
                "track_interface" => {
                    let refs = self.track_refs(c, false);
                    t.insert("track_interface".into(), Value::Array(refs));
                }
                "track_script" => {
                    let refs = self.track_refs(c, true);
                    t.insert("track_script".into(), Value::Array(refs));
                }
                "track_file" => {
                    let files = self.track_file_refs(c);
                    t.insert("track_file".into(), Value::Array(files));
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                    self.set_cmd(&mut t, c.keyword(), c);
                }
                "lower_prio_no_advert" => self.set_bool(&mut t, "lower_prio_no_advert", c),
                _ => self.unsupported(c, "vrrp_instance"),
            }
        }
        t
    }

    fn vips(&mut self, n: &Node) -> Vec<Value> {
        let mut out = Vec::new();
        for v in n.block() {
            let mut text = v.keyword().to_owned();
            let mut args = v.args().iter();
            while let Some(opt) = args.next() {
                let value = args.next();
                match (opt.as_str(), value) {
                    ("dev" | "label", Some(val)) => {
                        text.push_str(&format!(" {opt} {val}"));
                    }
                    (_, val) => {
                        let val = val.map(String::as_str).unwrap_or("");
                        self.warn(
                            v,
                            format!("virtual address option `{opt} {val}` is not supported (only dev and label); the address is kept without it"),
                        );
                    }
                }
            }
            out.push(Value::String(text));
        }
        if n.children.is_none() {
            self.warn(
                n,
                "`virtual_ipaddress` without a block; nothing carried".to_owned(),
            );
        }
        out
    }

    fn auth(&mut self, n: &Node) -> Table {
        let mut t = Table::new();
        for c in n.block() {
            match c.keyword() {
                "auth_type" => self.set_str(&mut t, "auth_type", c),
                "auth_pass" => {
                    if let Some(p) = self.arg(c) {
                        let mut pass = p.to_owned();
                        if pass.len() > 8 {
                            let mut cut = 8;
                            while !pass.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            pass.truncate(cut);
                            self.warn(
                                c,
                                format!("auth_pass is longer than 8 bytes; keepalived sends only the first 8, so the converted file uses `{pass}`"),
                            );
                        }
                        t.insert("auth_pass".into(), Value::String(pass));
                    }
                }
                _ => self.unsupported(c, "authentication"),
            }
        }
        t
    }

    fn track_refs(&mut self, n: &Node, scripts: bool) -> Vec<Value> {
        let mut out = Vec::new();
        for c in n.block() {
            let name = c.keyword().to_owned();
            let mut weight = None;
            let mut reverse = false;
            let mut args = c.args().iter();
            while let Some(a) = args.next() {
                match a.as_str() {
                    "weight" => weight = args.next().map(|w| int_or_str(w)),
                    "reverse" if scripts => reverse = true,
                    other => {
                        let other = other.to_owned();
                        self.warn(
                            c,
                            format!("`{other}` after `{name}` is not supported; ignored"),
                        );
                    }
                }
            }
            if weight.is_none() && !reverse {
                out.push(Value::String(name));
            } else {
                let mut t = Table::new();
                t.insert("name".into(), Value::String(name));
                if let Some(w) = weight {
                    t.insert("weight".into(), w);
                }
                if reverse {
                    t.insert("reverse".into(), Value::Boolean(true));
                }
                out.push(Value::Table(t));
            }
        }
        out
    }

    fn track_file_refs(&mut self, n: &Node) -> Vec<Value> {
        let mut out = Vec::new();
        for c in n.block() {
            let name = c.keyword();
            let Some((path, default_weight, default_reverse)) = self.track_files.get(name).cloned()
            else {
                self.warn(
                    c,
                    format!("track_file `{name}` has no vrrp_track_file block; dropped"),
                );
                continue;
            };
            let mut weight = default_weight;
            let mut reverse = default_reverse;
            let mut args = c.args().iter();
            while let Some(a) = args.next() {
                match a.as_str() {
                    "weight" => {
                        weight = args.next().and_then(|w| w.parse().ok()).unwrap_or(weight);
                    }
                    "reverse" => reverse = true,
                    other => {
                        let other = other.to_owned();
                        self.warn(
                            c,
                            format!("`{other}` after `{name}` is not supported; ignored"),
                        );
                    }
                }
            }
            if weight != 0 {
                self.warn(
                    c,
                    format!("track_file `{name}`: keepalived multiplies the file's number by the weight; vrrpd applies weight {weight} while the file is not 0"),
                );
            }
            let mut t = Table::new();
            t.insert("path".into(), Value::String(path));
            t.insert("weight".into(), Value::Integer(weight));
            if reverse {
                t.insert("reverse".into(), Value::Boolean(true));
            }
            out.push(Value::Table(t));
        }
        out
    }

    fn sync_group(&mut self, n: &Node) -> Table {
        let mut t = Table::new();
        for c in n.block() {
            match c.keyword() {
                "group" => {
                    let members: Vec<Value> = c
                        .block()
                        .iter()
                        .flat_map(|m| m.words.iter().cloned().map(Value::String))
                        .collect();
                    t.insert("group".into(), Value::Array(members));
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                    self.set_cmd(&mut t, c.keyword(), c);
                }
                _ => self.unsupported(c, "vrrp_sync_group"),
            }
        }
        t
    }

    fn virtual_server(&mut self, n: &Node) -> Option<Table> {
        let mut t = Table::new();
        match n.args() {
            [kw, mark] if kw == "fwmark" => {
                t.insert("fwmark".into(), int_or_str(mark));
            }
            [kw, ..] if kw == "group" => {
                self.warn(
                    n,
                    "`virtual_server group` (virtual_server_group) is not supported; block dropped"
                        .to_owned(),
                );
                return None;
            }
            [ip, port] => {
                t.insert("ip".into(), Value::String(ip.clone()));
                t.insert("port".into(), int_or_str(port));
            }
            _ => {
                self.warn(
                    n,
                    "virtual_server needs `IP PORT` or `fwmark N`; block dropped".to_owned(),
                );
                return None;
            }
        }
        let mut reals = Vec::new();
        for c in n.block() {
            match c.keyword() {
                "delay_loop" => self.set_secs(&mut t, "delay_loop", c),
                "lb_algo" | "lvs_sched" => self.set_str(&mut t, "lb_algo", c),
                "lb_kind" | "lvs_method" => {
                    if let Some(a) = self.arg(c) {
                        t.insert("lb_kind".into(), Value::String(a.to_ascii_uppercase()));
                    }
                }
                "persistence_timeout" => self.set_secs(&mut t, "persistence_timeout", c),
                "persistence_granularity" => self.set_str(&mut t, "persistence_granularity", c),
                "protocol" => {
                    if let Some(a) = self.arg(c) {
                        t.insert("protocol".into(), Value::String(a.to_ascii_uppercase()));
                    }
                }
                "sorry_server" => {
                    t.insert("sorry_server".into(), Value::String(c.args().join(" ")));
                }
                "quorum" | "hysteresis" => self.set_int(&mut t, c.keyword(), c),
                "alpha" | "omega" | "inhibit_on_failure" | "ops" => {
                    t.insert(c.keyword().into(), Value::Boolean(true));
                }
                "quorum_up" | "quorum_down" => self.set_cmd(&mut t, c.keyword(), c),
                "virtualhost" => self.set_str(&mut t, "virtualhost", c),
                "real_server" => {
                    if let Some(rs) = self.real_server(c) {
                        reals.push(Value::Table(rs));
                    }
                }
                _ => self.unsupported(c, "virtual_server"),
            }
        }
        if !reals.is_empty() {
            t.insert("real_server".into(), Value::Array(reals));
        }
        Some(t)
    }

    fn real_server(&mut self, n: &Node) -> Option<Table> {
        let mut t = Table::new();
        match n.args() {
            [ip, port] => {
                t.insert("ip".into(), Value::String(ip.clone()));
                t.insert("port".into(), int_or_str(port));
            }
            [ip] => {
                t.insert("ip".into(), Value::String(ip.clone()));
            }
            _ => {
                self.warn(n, "real_server needs `IP [PORT]`; dropped".to_owned());
                return None;
            }
        }
        let mut checks: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
        for c in n.block() {
            match c.keyword() {
                "weight" | "uthreshold" | "lthreshold" => self.set_int(&mut t, c.keyword(), c),
                "inhibit_on_failure" => self.set_bool(&mut t, "inhibit_on_failure", c),
                "lb_kind" | "lvs_method" => {
                    if let Some(a) = self.arg(c) {
                        t.insert("lb_kind".into(), Value::String(a.to_ascii_uppercase()));
                    }
                }
                "notify_up" | "notify_down" => self.set_cmd(&mut t, c.keyword(), c),
                kw => {
                    let key = match kw {
                        "TCP_CHECK" => "tcp_check",
                        "HTTP_GET" => "http_get",
                        "SSL_GET" => "ssl_get",
                        "MISC_CHECK" => "misc_check",
                        "DNS_CHECK" => "dns_check",
                        "SMTP_CHECK" => "smtp_check",
                        "PING_CHECK" | "ICMP_CHECK" => "ping_check",
                        "UDP_CHECK" => "udp_check",
                        _ => {
                            self.unsupported(c, "real_server");
                            continue;
                        }
                    };
                    let check = self.check(c, key);
                    checks.entry(key).or_default().push(Value::Table(check));
                }
            }
        }
        for (key, list) in checks {
            t.insert(key.into(), Value::Array(list));
        }
        Some(t)
    }

    fn check(&mut self, n: &Node, kind: &str) -> Table {
        let mut t = Table::new();
        let context = n.keyword().to_owned();
        for c in n.block() {
            let kw = c.keyword();
            let common_conn = kind != "misc_check";
            match kw {
                "connect_ip" | "bind_to" if common_conn => self.set_str(&mut t, kw, c),
                "connect_port" if common_conn => self.set_int(&mut t, kw, c),
                "connect_timeout" if common_conn => self.set_secs(&mut t, kw, c),
                "retry" | "nb_get_retry" => self.set_int(&mut t, "retry", c),
                "delay_before_retry" | "delay_loop" => self.set_secs(&mut t, kw, c),
                "url" if kind == "http_get" || kind == "ssl_get" => {
                    let mut u = Table::new();
                    for x in c.block() {
                        match x.keyword() {
                            "path" | "digest" => self.set_str(&mut u, x.keyword(), x),
                            "status_code" => {
                                let codes = x.args().join(" ");
                                if codes.is_empty() {
                                    self.warn(x, "`status_code` needs a value; dropped".to_owned());
                                } else {
                                    u.insert("status_code".into(), Value::String(codes));
                                }
                            }
                            _ => self.unsupported(x, "url"),
                        }
                    }
                    if let Some(urls) = t
                        .entry("url")
                        .or_insert_with(|| Value::Array(Vec::new()))
                        .as_array_mut()
                    {
                        urls.push(Value::Table(u));
                    }
                }
                "virtualhost" if kind == "http_get" || kind == "ssl_get" => {
                    self.set_str(&mut t, "virtualhost", c);
                }
                "misc_path" if kind == "misc_check" => self.set_cmd(&mut t, "misc_path", c),
                "misc_timeout" if kind == "misc_check" => self.set_secs(&mut t, "misc_timeout", c),
                "misc_dynamic" if kind == "misc_check" => {
                    t.insert("misc_dynamic".into(), Value::Boolean(true));
                }
                "user" if kind == "misc_check" => {
                    let u = c.args().join(":");
                    if u.is_empty() {
                        self.warn(c, "`user` needs a value; dropped".to_owned());
                    } else {
                        t.insert("user".into(), Value::String(u));
                    }
                }
                "type" if kind == "dns_check" => self.set_str(&mut t, "type", c),
                "name" if kind == "dns_check" => self.set_str(&mut t, "name", c),
                "helo_name" if kind == "smtp_check" => self.set_str(&mut t, "helo_name", c),
                "require_reply" if kind == "udp_check" => {
                    t.insert("require_reply".into(), Value::Boolean(true));
                }
                "payload" if kind == "udp_check" => self.set_str(&mut t, "payload", c),
                _ => self.unsupported(c, &context),
            }
        }
        if kind == "misc_check" && !t.contains_key("misc_path") {
            self.warn(
                n,
                "MISC_CHECK without `misc_path`: vrrpd check will refuse it".to_owned(),
            );
        }
        t
    }
}
