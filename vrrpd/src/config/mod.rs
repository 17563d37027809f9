//! The configuration pipeline, one way only:
//!
//! ```text
//! TOML text ──read──► raw::Config ──resolve──► Effective ──crate::plan──► run::plan::Plan
//!                     (as written:  (defaults, types,      (what the daemon runs)
//!                      serde, all    users, references;
//!                      optional)     vrrp-core validates
//!                                    each instance)
//! keepalived.conf ──crate::import──► raw::Config (same types, so a renamed key fails to compile)
//! ```
//!
//! Problems are found by key path and placed afterwards: in a TOML file by
//! re-reading it (only when there are problems), in a keepalived.conf by
//! the positions the importer recorded. [`Effective::write_toml`] prints the
//! effective configuration (`vrrpd check`), which loads back to the same
//! value.

mod command;
mod duration;
mod effective;
mod error;
pub mod raw;
mod resolve;
pub mod routes;
pub mod schema;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub use command::CommandSpec;
pub use duration::{Dur, DurationError, parse_duration};
pub use effective::*;
pub use error::{ConfigError, ConfigErrors, ErrorKind, KeyPath, Seg};
pub(crate) use resolve::vip::parse_scope;
pub use resolve::{
    Failed, Outcome, Problem, Resolver, Target, parse_hex, parse_host_port, resolve,
};

use error::Doc;

/// Top-level tables of a configuration file.
pub const SECTIONS: [&str; 11] = [
    "static_ipaddress",
    "static_rules",
    "static_routes",
    "global",
    "script",
    "track_file",
    "track_process",
    "instance",
    "sync_group",
    "virtual_server_group",
    "virtual_server",
];

/// Reads and resolves the configuration file at `path` for this host.
pub fn load(path: &Path) -> Result<Effective, ConfigErrors> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse(&text, path),
            Err(e) => Err(ConfigErrors(vec![whole_file(
                path,
                ErrorKind::Io(format!("not UTF-8: {e}")),
            )])),
        },
        Err(e) => Err(ConfigErrors(vec![whole_file(
            path,
            ErrorKind::Io(e.to_string()),
        )])),
    }
}

fn whole_file(path: &Path, kind: ErrorKind) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        key: KeyPath::default(),
        kind,
    }
}

/// Reads and resolves configuration text for this host; `file` names it
/// in errors.
pub fn parse(text: &str, file: &Path) -> Result<Effective, ConfigErrors> {
    let (outcome, errors) = read(text, file, Target::ThisHost);
    if errors.is_empty() {
        Ok(outcome.effective)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// An error found before its key is known: a serde error at a span, or a
/// resolve problem at a key.
enum Pending {
    Span(Range<usize>, KeyPath, ErrorKind),
    Key(Problem),
}

/// Where the parts of a document are: the head (every section but the
/// virtual servers), then one part per `[[virtual_server]]`. A large file
/// is parsed a part at a time: toml's parser holds every token of what it
/// parses at once (about 20 times the text).
struct Parts {
    head: Range<usize>,
    servers: Vec<Range<usize>>,
}

impl Parts {
    /// The parts of `text`; the whole text as the head when it cannot be
    /// cut safely (a multi-line string, or a section other than a virtual
    /// server's after the first `[[virtual_server]]`).
    fn of(text: &str) -> Parts {
        let whole = Parts {
            head: 0..text.len(),
            servers: Vec::new(),
        };
        if text.contains("\"\"\"") || text.contains("'''") {
            return whole;
        }
        let mut starts = Vec::new();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let t = line.split('#').next().unwrap_or("").trim();
            if t == "[[virtual_server]]" {
                starts.push(offset);
            } else if t.starts_with('[')
                && !starts.is_empty()
                && !t.starts_with("[[virtual_server.")
                && !t.starts_with("[virtual_server.")
            {
                return whole;
            }
            offset += line.len();
        }
        let Some(&first) = starts.first() else {
            return whole;
        };
        let mut servers: Vec<Range<usize>> = starts.windows(2).map(|w| w[0]..w[1]).collect();
        if let Some(&last) = starts.last() {
            servers.push(last..text.len());
        }
        Parts {
            head: 0..first,
            servers,
        }
    }
}

fn shift(span: Range<usize>, by: usize) -> Range<usize> {
    span.start + by..span.end + by
}

/// Reads TOML text section by section (one bad section does not hide the
/// errors of the next) and resolves it; the errors come back placed, in
/// file order. Each `[[virtual_server]]` is read, resolved and dropped in
/// turn.
pub fn read(text: &str, file: &Path, target: Target) -> (Outcome, Vec<ConfigError>) {
    read_parts(text, file, target, &Parts::of(text))
}

fn read_parts(
    text: &str,
    file: &Path,
    target: Target,
    parts: &Parts,
) -> (Outcome, Vec<ConfigError>) {
    let (root, syntax) = DeTable::parse_recoverable(&text[parts.head.clone()]);
    let mut pending: Vec<Pending> = syntax
        .into_iter()
        .map(|e| {
            Pending::Span(
                e.span().unwrap_or(0..0),
                KeyPath::default(),
                ErrorKind::Syntax(e.message().to_owned()),
            )
        })
        .collect();
    if !pending.is_empty() {
        return (Outcome::default(), place(text, file, parts, pending));
    }
    let mut table = root.into_inner();
    if !parts.servers.is_empty() && table.contains_key("virtual_server") {
        // `virtual_server = [...]` before the first `[[virtual_server]]`:
        // read the whole text, so that toml reports the conflict.
        let whole = Parts {
            head: 0..text.len(),
            servers: Vec::new(),
        };
        return read_parts(text, file, target, &whole);
    }
    for (key, _) in table.iter() {
        let name = key.get_ref().as_ref();
        if !SECTIONS.contains(&name) {
            pending.push(Pending::Span(
                key.span(),
                KeyPath::root(name),
                ErrorKind::UnknownKey(format!(
                    "unknown section `{name}`, expected one of {}",
                    SECTIONS.join(", ")
                )),
            ));
        }
    }
    let mut failed = Failed::default();
    let mut section = |name: &str| table.remove(name);
    let global = section("global")
        .and_then(|v| read_one::<raw::Global>(v, &KeyPath::root("global"), &mut pending))
        .unwrap_or_default();
    let scripts = read_named::<raw::Script>(
        section("script"),
        "script",
        &mut pending,
        &mut failed.scripts,
    );
    let track_files = read_named::<raw::TrackFile>(
        section("track_file"),
        "track_file",
        &mut pending,
        &mut failed.track_files,
    );
    let processes = read_named::<raw::TrackProcess>(
        section("track_process"),
        "track_process",
        &mut pending,
        &mut failed.processes,
    );
    let instances = read_named::<raw::Instance>(
        section("instance"),
        "instance",
        &mut pending,
        &mut failed.instances,
    );
    let groups = read_named::<raw::SyncGroup>(
        section("sync_group"),
        "sync_group",
        &mut pending,
        &mut Default::default(),
    );
    let server_groups = section("virtual_server_group")
        .and_then(|v| {
            read_one::<std::collections::BTreeMap<String, Vec<String>>>(
                v,
                &KeyPath::root("virtual_server_group"),
                &mut pending,
            )
        })
        .unwrap_or_default();
    let servers = section("virtual_server");
    let static_routes = section("static_routes")
        .and_then(|v| read_one::<Vec<String>>(v, &KeyPath::root("static_routes"), &mut pending))
        .unwrap_or_default();
    let static_rules = section("static_rules")
        .and_then(|v| read_one::<Vec<String>>(v, &KeyPath::root("static_rules"), &mut pending))
        .unwrap_or_default();
    let static_ipaddress = section("static_ipaddress")
        .and_then(|v| {
            read_one::<Vec<raw::VirtualIp>>(v, &KeyPath::root("static_ipaddress"), &mut pending)
        })
        .unwrap_or_default();
    drop(table);
    let mut resolver = Resolver::new(target, failed);
    resolver.global(global);
    resolver.track_processes(processes);
    resolver.vrrp(scripts, track_files, instances, groups);
    resolver.virtual_server_groups(server_groups);
    resolver.static_routes(&static_routes);
    resolver.static_rules(&static_rules);
    resolver.static_ipaddress(static_ipaddress);
    let mut index = 0;
    let mut servers_of =
        |value: toml::Spanned<DeValue<'_>>, offset: usize, pending: &mut Vec<Pending>| {
            let span = value.span();
            match value.into_inner() {
                DeValue::Array(items) => {
                    for v in items {
                        let path = KeyPath::root("virtual_server").index(index);
                        let mut local = Vec::new();
                        let vs = read_one::<raw::VirtualServer>(v, &path, &mut local);
                        pending.extend(local.into_iter().map(|p| match p {
                            Pending::Span(s, k, e) => Pending::Span(shift(s, offset), k, e),
                            key => key,
                        }));
                        if let Some(vs) = vs {
                            resolver.virtual_server(index, vs);
                        }
                        index += 1;
                    }
                }
                _ => pending.push(Pending::Span(
                    shift(span, offset),
                    KeyPath::root("virtual_server"),
                    ErrorKind::Invalid(
                        "expected an array of tables: write [[virtual_server]]".to_owned(),
                    ),
                )),
            }
        };
    if let Some(servers) = servers {
        servers_of(servers, parts.head.start, &mut pending);
    }
    for part in &parts.servers {
        let (root, syntax) = DeTable::parse_recoverable(&text[part.clone()]);
        if !syntax.is_empty() {
            pending.extend(syntax.into_iter().map(|e| {
                Pending::Span(
                    shift(e.span().unwrap_or(0..0), part.start),
                    KeyPath::default(),
                    ErrorKind::Syntax(e.message().to_owned()),
                )
            }));
            continue;
        }
        for (_, v) in root.into_inner() {
            servers_of(v, part.start, &mut pending);
        }
    }
    let mut outcome = resolver.finish();
    pending.extend(outcome.errors.drain(..).map(Pending::Key));
    let mut placed = place(text, file, parts, pending);
    placed.sort_by_key(|e| (e.line, e.column));
    placed.dedup();
    (outcome, placed)
}

/// Places problems in the file, re-reading the part of it each is in
/// (only called with problems found or none at all).
fn place(text: &str, file: &Path, parts: &Parts, pending: Vec<Pending>) -> Vec<ConfigError> {
    if pending.is_empty() {
        return Vec::new();
    }
    // The part (None: the head) of a problem, and the index its virtual
    // server has in that part.
    let part_of_key = |key: &KeyPath| -> Option<(usize, usize)> {
        match key.0.as_slice() {
            [Seg::Key(k), Seg::Index(i), ..]
                if k == "virtual_server" && !parts.servers.is_empty() =>
            {
                Some((*i, 0))
            }
            _ => None,
        }
    };
    let part_of_span = |span: &Range<usize>| -> Option<usize> {
        parts.servers.iter().position(|r| r.contains(&span.start))
    };
    let mut by_part: std::collections::BTreeMap<Option<usize>, Vec<Pending>> = Default::default();
    for p in pending {
        let part = match &p {
            Pending::Span(s, ..) => part_of_span(s),
            Pending::Key(k) => part_of_key(&k.key).map(|(i, _)| i),
        };
        by_part.entry(part).or_default().push(p);
    }
    let mut out = Vec::new();
    for (part, items) in by_part {
        let range = part
            .and_then(|i| parts.servers.get(i).cloned())
            .unwrap_or(parts.head.clone());
        let slice = &text[range.clone()];
        let lines_before = text[..range.start].matches('\n').count();
        let (root, _) = DeTable::parse_recoverable(slice);
        let doc = Doc {
            file,
            text: slice,
            root: &root,
        };
        // In a part, its virtual server is the first (index 0).
        let local = |key: &KeyPath| -> KeyPath {
            let mut k = key.clone();
            if part.is_some()
                && let Some(Seg::Index(i)) = k.0.get_mut(1)
            {
                *i = 0;
            }
            k
        };
        let global = |mut e: ConfigError| -> ConfigError {
            if e.line > 0 {
                e.line += lines_before;
            }
            if let (Some(n), Some(Seg::Index(i))) = (part, e.key.0.get_mut(1)) {
                *i = n;
            }
            e
        };
        for p in items {
            let e = match p {
                Pending::Span(span, fallback, kind) => doc.error_at_span(
                    span.start.saturating_sub(range.start)..span.end.saturating_sub(range.start),
                    &local(&fallback),
                    kind,
                ),
                Pending::Key(Problem { key, kind }) => doc.error_at(local(&key), kind),
            };
            out.push(global(e));
        }
    }
    out
}

fn read_named<T: for<'de> Deserialize<'de>>(
    value: Option<toml::Spanned<DeValue<'_>>>,
    section: &str,
    pending: &mut Vec<Pending>,
    failed: &mut std::collections::BTreeSet<String>,
) -> std::collections::BTreeMap<String, T> {
    let mut out = std::collections::BTreeMap::new();
    let Some(value) = value else { return out };
    let path = KeyPath::root(section);
    let span = value.span();
    match value.into_inner() {
        DeValue::Table(t) => {
            for (k, v) in t {
                let name = k.into_inner().into_owned();
                match read_one::<T>(v, &path.key(&name), pending) {
                    Some(s) => {
                        out.insert(name, s);
                    }
                    None => {
                        failed.insert(name);
                    }
                }
            }
        }
        _ => pending.push(Pending::Span(
            span,
            path.clone(),
            ErrorKind::Invalid(format!("expected tables named [{path}.NAME]")),
        )),
    }
    out
}

fn read_one<T: for<'de> Deserialize<'de>>(
    value: toml::Spanned<DeValue<'_>>,
    path: &KeyPath,
    pending: &mut Vec<Pending>,
) -> Option<T> {
    let whole = value.span();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(t) => Some(t),
        Err(e) => {
            let message = e.message().to_owned();
            let kind = if message.starts_with("unknown field") {
                ErrorKind::UnknownKey(message)
            } else {
                ErrorKind::Invalid(message)
            };
            pending.push(Pending::Span(e.span().unwrap_or(whole), path.clone(), kind));
            None
        }
    }
}

impl Effective {
    /// Writes the effective configuration as TOML, every default written
    /// out, one virtual server at a time.
    pub fn write_toml(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(to_toml(&self.head_to_raw()).as_bytes())?;
        #[derive(serde::Serialize)]
        struct One {
            virtual_server: [raw::VirtualServer; 1],
        }
        for vs in &self.virtual_servers {
            out.write_all(b"\n")?;
            let one = One {
                virtual_server: [vs.to_raw()],
            };
            out.write_all(to_toml(&one).as_bytes())?;
        }
        Ok(())
    }

    /// The effective configuration as TOML.
    #[cfg(test)]
    pub fn to_toml(&self) -> String {
        let mut out = Vec::new();
        match self.write_toml(&mut out) {
            Ok(()) => String::from_utf8_lossy(&out).into_owned(),
            Err(e) => format!("# cannot print configuration: {e}\n"),
        }
    }
}

/// Any serialisable configuration part as TOML.
pub fn to_toml<T: serde::Serialize>(value: &T) -> String {
    toml::to_string(value).unwrap_or_else(|e| format!("# cannot print configuration: {e}\n"))
}
