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
//! the positions the importer recorded. [`Effective::to_raw`] prints the
//! effective configuration (`vrrpd check`), which loads back to the same
//! value.

mod command;
mod duration;
mod effective;
mod error;
pub mod raw;
mod resolve;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub use command::CommandSpec;
pub use duration::{Dur, parse_duration};
pub use effective::*;
pub use error::{ConfigError, ConfigErrors, ErrorKind, KeyPath};
pub use resolve::{Failed, Outcome, Problem, Resolver, Target, parse_hex, resolve};

use error::Doc;

/// Top-level tables of a configuration file.
pub const SECTIONS: [&str; 6] = [
    "global",
    "script",
    "track_file",
    "instance",
    "sync_group",
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

/// Reads TOML text section by section (one bad section does not hide the
/// errors of the next) and resolves it; the errors come back placed, in
/// file order. Each `[[virtual_server]]` is read, resolved and dropped in
/// turn.
pub fn read(text: &str, file: &Path, target: Target) -> (Outcome, Vec<ConfigError>) {
    let (root, syntax) = DeTable::parse_recoverable(text);
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
        return (Outcome::default(), place(text, file, pending));
    }
    let mut table = root.into_inner();
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
    let servers = section("virtual_server");
    drop(table);
    let mut resolver = Resolver::new(target, failed);
    resolver.global(global);
    resolver.vrrp(scripts, track_files, instances, groups);
    if let Some(servers) = servers {
        let span = servers.span();
        match servers.into_inner() {
            DeValue::Array(items) => {
                for (i, v) in items.into_iter().enumerate() {
                    let path = KeyPath::root("virtual_server").index(i);
                    if let Some(vs) = read_one::<raw::VirtualServer>(v, &path, &mut pending) {
                        resolver.virtual_server(i, vs);
                    }
                }
            }
            _ => pending.push(Pending::Span(
                span,
                KeyPath::root("virtual_server"),
                ErrorKind::Invalid(
                    "expected an array of tables: write [[virtual_server]]".to_owned(),
                ),
            )),
        }
    }
    let mut outcome = resolver.finish();
    pending.extend(outcome.errors.drain(..).map(Pending::Key));
    let mut placed = place(text, file, pending);
    placed.sort_by_key(|e| (e.line, e.column));
    placed.dedup();
    (outcome, placed)
}

/// Places problems in the file, re-reading it (only called with problems
/// found or none at all).
fn place(text: &str, file: &Path, pending: Vec<Pending>) -> Vec<ConfigError> {
    if pending.is_empty() {
        return Vec::new();
    }
    let (root, _) = DeTable::parse_recoverable(text);
    let doc = Doc {
        file,
        text,
        root: &root,
    };
    pending
        .into_iter()
        .map(|p| match p {
            Pending::Span(span, fallback, kind) => doc.error_at_span(span, &fallback, kind),
            Pending::Key(Problem { key, kind }) => doc.error_at(key, kind),
        })
        .collect()
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
        let mut head = self.to_raw();
        let servers = std::mem::take(&mut head.virtual_server);
        drop(servers);
        out.write_all(to_toml(&head).as_bytes())?;
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
