//! The TOML configuration: schema, loading with errors that name file,
//! line and key, validation, and conversion into what the runtime runs.
//!
//! ```text
//! load(path) ──► Config ──► driver_config()  → (DriverConfig, Tracking)
//!                       ├─► virtual_servers() → Vec<lvs::VirtualServer>
//!                       ├─► real_server_checks() → health checks per real server
//!                       └─► plan()            → run::plan::Plan (all of it)
//! ```
//!
//! A [`Config`] returned by [`load`] or [`parse`] is validated and has
//! every default filled in; serialising it (see [`Config::to_toml`])
//! prints the effective configuration, which loads back to the same value.

mod command;
mod convert;
mod duration;
mod error;
mod plan;
mod schema;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};

// Re-exported for the runtime and tests; not every item is used by the binary yet.
#[allow(unused_imports)]
pub use command::{CommandSpec, split_words};
#[allow(unused_imports)]
pub use convert::{CheckDef, Tracked, Tracking};
#[allow(unused_imports)]
pub use duration::{Dur, DurationError, format_duration, parse_duration};
#[allow(unused_imports)]
pub use error::{ConfigError, ConfigErrors, ErrorKind, KeyPath, Seg};
#[allow(unused_imports)]
pub use schema::{
    Authentication, Config, DnsCheck, Global, Http, HttpCheck, Instance, IpFamily, LbKind,
    LogFormat, MiscCheck, PingCheck, RealServer, Script, SmtpCheck, StartState, SyncGroup,
    TcpCheck, TrackFile, TrackRef, UdpCheck, Url, VirtualIp, VirtualServer, VsProtocol,
    parse_prefix, parse_socket, parse_status_ranges,
};

use error::Doc;

/// Top-level tables of a configuration file.
pub const SECTIONS: [&str; 5] = [
    "global",
    "script",
    "instance",
    "sync_group",
    "virtual_server",
];

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
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

/// Parses and validates configuration text; `file` names it in errors and
/// relative paths are not resolved against it.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    let doc = Doc {
        file,
        text,
        root: &root,
    };
    if !syntax.is_empty() {
        let errors = syntax
            .into_iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                doc.error_at_span(
                    span,
                    &KeyPath::default(),
                    ErrorKind::Syntax(e.message().to_owned()),
                )
            })
            .collect();
        return Err(ConfigErrors(errors));
    }
    let mut errors = Vec::new();
    let mut failed = Failed::default();
    let mut config = read_sections(&doc, &mut errors, &mut failed);
    // Sections that did not deserialise are left out; the rest is still
    // validated, without reporting references to the ones left out.
    validate::normalize(&mut config);
    validate::validate(&config, &doc, &failed, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        Err(ConfigErrors(errors))
    }
}

/// Deserialises each section on its own, so that one bad instance does
/// not hide the errors of the next.
/// Names of sections that could not be read, so that references to them
/// are not reported as undefined on top of their own errors.
#[derive(Default)]
pub(crate) struct Failed {
    /// `[script.NAME]` that failed.
    pub scripts: std::collections::BTreeSet<String>,
    /// `[instance.NAME]` that failed.
    pub instances: std::collections::BTreeSet<String>,
}

fn read_sections(doc: &Doc<'_>, errors: &mut Vec<ConfigError>, failed: &mut Failed) -> Config {
    let mut config = Config::default();
    for (key, value) in doc.root.get_ref().iter() {
        let name = key.get_ref().as_ref();
        let path = KeyPath::root(name);
        match name {
            "global" => {
                if let Some(g) = read_one::<Global>(doc, value, &path, errors) {
                    config.global = g;
                }
            }
            "script" => {
                for (n, v) in named(doc, value, &path, errors) {
                    match read_one::<Script>(doc, v, &path.key(&n), errors) {
                        Some(s) => {
                            config.script.insert(n, s);
                        }
                        None => {
                            failed.scripts.insert(n);
                        }
                    }
                }
            }
            "instance" => {
                for (n, v) in named(doc, value, &path, errors) {
                    match read_one::<Instance>(doc, v, &path.key(&n), errors) {
                        Some(s) => {
                            config.instance.insert(n, s);
                        }
                        None => {
                            failed.instances.insert(n);
                        }
                    }
                }
            }
            "sync_group" => {
                for (n, v) in named(doc, value, &path, errors) {
                    if let Some(s) = read_one::<SyncGroup>(doc, v, &path.key(&n), errors) {
                        config.sync_group.insert(n, s);
                    }
                }
            }
            "virtual_server" => match value.get_ref() {
                DeValue::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        if let Some(vs) = read_one::<VirtualServer>(doc, v, &path.index(i), errors)
                        {
                            config.virtual_server.push(vs);
                        }
                    }
                }
                _ => errors.push(doc.error_at(
                    path,
                    ErrorKind::Invalid(
                        "expected an array of tables: write [[virtual_server]]".to_owned(),
                    ),
                )),
            },
            other => errors.push(doc.error_at(
                path,
                ErrorKind::UnknownKey(format!(
                    "unknown section `{other}`, expected one of {}",
                    SECTIONS.join(", ")
                )),
            )),
        }
    }
    config
}

fn named<'a>(
    doc: &Doc<'_>,
    value: &'a toml::Spanned<DeValue<'a>>,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, &'a toml::Spanned<DeValue<'a>>)> {
    match value.get_ref() {
        DeValue::Table(t) => t
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), v))
            .collect(),
        _ => {
            errors.push(doc.error_at(
                path.clone(),
                ErrorKind::Invalid(format!("expected tables named [{path}.NAME]")),
            ));
            Vec::new()
        }
    }
}

fn read_one<T: for<'de> Deserialize<'de>>(
    doc: &Doc<'_>,
    value: &toml::Spanned<DeValue<'_>>,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(t) => Some(t),
        Err(e) => {
            let message = e.message().to_owned();
            let kind = if message.starts_with("unknown field") {
                ErrorKind::UnknownKey(message)
            } else {
                ErrorKind::Invalid(message)
            };
            let span = e.span().unwrap_or_else(|| doc.span_of(path));
            errors.push(doc.error_at_span(span, path, kind));
            None
        }
    }
}
