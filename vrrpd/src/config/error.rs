//! Configuration errors, each pointing at a file, a line and a key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A key in a table.
    Key(String),
    /// An element of an array.
    Index(usize),
}

/// A dotted key path such as `instance.VI_1.virtual_router_id` or
/// `virtual_server[0].real_server[1].port`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// The path of a top-level key.
    pub fn root(key: &str) -> Self {
        KeyPath(vec![Seg::Key(key.to_owned())])
    }

    /// This path with one more key.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_owned()));
        p
    }

    /// This path with one more index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c));
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// What is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// The file is not valid TOML.
    #[error("TOML syntax: {0}")]
    Syntax(String),
    /// A key the schema does not have.
    #[error("{0}")]
    UnknownKey(String),
    /// A value of the wrong type or out of range.
    #[error("{0}")]
    Invalid(String),
    /// A key that must be written.
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// A rule of the VRRP engine (vrrp-core) the instance breaks.
    #[error("{0}")]
    Core(vrrp_core::ConfigError),
    /// Two instances with one VRID on one interface and family.
    #[error(
        "virtual_router_id {vrid} on {interface} ({family}) is also used by instance `{other}`"
    )]
    DuplicateVrid {
        /// The VRID.
        vrid: u8,
        /// The interface.
        interface: String,
        /// "IPv4" or "IPv6".
        family: String,
        /// The other instance.
        other: String,
    },
    /// A password longer than VRRPv2 can carry.
    #[error(
        "auth_pass is {0} bytes; VRRPv2 carries at most 8 (keepalived would silently truncate it)"
    )]
    PasswordTooLong(usize),
    /// An empty password.
    #[error("auth_pass is empty")]
    PasswordEmpty,
    /// An authentication type other than PASS.
    #[error(
        "auth_type `{0}` is not supported; only PASS (RFC 3768 simple password; RFC 3768 removed AH)"
    )]
    AuthType(String),
    /// A combination keepalived's strict mode forbids.
    #[error("{0} (vrrp_strict / strict_mode)")]
    Strict(String),
    /// A weight keepalived would ignore: sync-group members and address
    /// owners.
    #[error("{0}")]
    IgnoredWeight(String),
    /// `track_script` naming no `[script.NAME]`.
    #[error("script `{0}` is not defined (no [script.{0}])")]
    UndefinedScript(String),
    /// `track_file` naming no `[track_file.NAME]`.
    #[error("track file `{0}` is not defined (no [track_file.{0}])")]
    UndefinedTrackFile(String),
    /// A sync group member naming no `[instance.NAME]`.
    #[error("instance `{0}` is not defined (no [instance.{0}])")]
    UndefinedInstance(String),
    /// An instance in two sync groups.
    #[error("instance `{instance}` is already a member of sync group `{group}`")]
    InstanceInTwoGroups {
        /// The instance.
        instance: String,
        /// The first group.
        group: String,
    },
    /// A script given by absolute path that does not exist.
    #[error("script {0} does not exist")]
    ScriptMissing(PathBuf),
    /// A script that is not an executable file.
    #[error("script {0} is not an executable file")]
    ScriptNotExecutable(PathBuf),
    /// A script given by name that no directory of PATH holds as a file
    /// its user may execute.
    #[error("script `{name}` is not found in PATH ({path}) as a file uid {uid} may execute")]
    ScriptNotInPath {
        /// The name.
        name: String,
        /// The PATH searched.
        path: String,
        /// The user it runs as.
        uid: u32,
    },
    /// A script its user may not execute.
    #[error("script {path} is not executable by the user it runs as (uid {uid}, gid {gid})")]
    ScriptNotExecutableBy {
        /// The script.
        path: PathBuf,
        /// The user it runs as.
        uid: u32,
        /// The group it runs as.
        gid: u32,
    },
    /// Scripts would run as root without being asked to (script security
    /// on, no `script_user`, no `keepalived_script` user).
    #[error(
        "scripts would run as root: create the unprivileged user keepalived_script (keepalived's default script user), or set global.script_user (\"root\" to run them as root)"
    )]
    NoScriptUser,
    /// A script a non-root user could modify.
    #[error(
        "script {path} is insecure: {reason} (enable_script_security; set global.allow_insecure_scripts = true to run it anyway)"
    )]
    ScriptInsecure {
        /// The script.
        path: PathBuf,
        /// What makes it insecure.
        reason: String,
    },
    /// A user or group that does not exist.
    #[error("unknown user or group `{0}`")]
    UnknownUser(String),
    /// A weight out of keepalived's range for the key.
    #[error("weight {weight} is out of {min}..={max}")]
    Weight {
        /// The weight.
        weight: i32,
        /// Lowest allowed.
        min: i32,
        /// Highest allowed.
        max: i32,
    },
    /// A value that must not be zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// Anything else about a virtual server or check.
    #[error("{0}")]
    VirtualServer(String),
}

impl ErrorKind {
    /// Whether the problem depends on the host the file is checked on
    /// (scripts, users), rather than on the file itself: `vrrpd check` and
    /// `vrrpd run` refuse it, `import-keepalived` (run anywhere) warns.
    pub fn depends_on_host(&self) -> bool {
        matches!(
            self,
            ErrorKind::ScriptMissing(_)
                | ErrorKind::ScriptNotExecutable(_)
                | ErrorKind::ScriptNotInPath { .. }
                | ErrorKind::ScriptNotExecutableBy { .. }
                | ErrorKind::NoScriptUser
                | ErrorKind::ScriptInsecure { .. }
                | ErrorKind::UnknownUser(_)
        )
    }
}

/// One configuration error: `FILE:LINE:COL: key `a.b.c`: message` (no
/// column when it is not known: a keepalived.conf line).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{}key `{key}`: {kind}", file.display(), if *column > 0 { format!("{column}: ") } else { " ".to_owned() })]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// Line, from 1 (0 when the error concerns the whole file).
    pub line: usize,
    /// Column, from 1; 0 when unknown.
    pub column: usize,
    /// The key the error is about.
    pub key: KeyPath,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// Every error found in one configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The parsed document, kept to turn spans into lines and keys into spans.
pub(crate) struct Doc<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    pub root: &'a Spanned<DeTable<'a>>,
}

impl Doc<'_> {
    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, pos: usize) -> (usize, usize) {
        let pos = pos.min(self.text.len());
        let before = self.text.get(..pos).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }

    /// An error at the given key (or at its nearest existing parent).
    pub fn error_at(&self, key: KeyPath, kind: ErrorKind) -> ConfigError {
        let span = self.span_of(&key);
        let (line, column) = self.line_col(span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key,
            kind,
        }
    }

    /// An error at a span, its key found from the span.
    pub fn error_at_span(
        &self,
        span: Range<usize>,
        fallback: &KeyPath,
        kind: ErrorKind,
    ) -> ConfigError {
        let mut key = self.key_at(span.start);
        if key.0.len() < fallback.0.len() {
            key = fallback.clone();
        }
        if key.0.is_empty() {
            key = self.key_from_text(span.start);
        }
        let (line, column) = self.line_col(span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key,
            kind,
        }
    }

    /// The span of the key at `path`: the key itself when it exists, else
    /// its nearest existing parent.
    pub fn span_of(&self, path: &KeyPath) -> Range<usize> {
        let mut best = 0..0;
        let mut value: Option<&Spanned<DeValue<'_>>> = None;
        let mut table: Option<&DeTable<'_>> = Some(self.root.get_ref());
        for seg in &path.0 {
            match seg {
                Seg::Key(k) => {
                    let Some(t) = table else { break };
                    let Some((key, v)) = t
                        .iter()
                        .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                    else {
                        break;
                    };
                    best = key.span();
                    value = Some(v);
                }
                Seg::Index(i) => {
                    let Some(arr) = value.and_then(|v| v.get_ref().as_array()) else {
                        break;
                    };
                    let Some(el) = arr.get(*i) else { break };
                    best = el.span();
                    value = Some(el);
                }
            }
            table = value.and_then(|v| v.get_ref().as_table());
        }
        best
    }

    /// The key written on the line of `pos`, under the last `[table]`
    /// header before it: for syntax errors, where there is no tree.
    fn key_from_text(&self, pos: usize) -> KeyPath {
        let pos = pos.min(self.text.len());
        let before = self.text.get(..pos).unwrap_or("");
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = self
            .text
            .get(pos..)
            .and_then(|r| r.find('\n'))
            .map_or(self.text.len(), |i| pos + i);
        let line = self.text.get(line_start..line_end).unwrap_or("").trim();
        let header = |l: &str| -> Option<String> {
            let l = l.trim();
            l.starts_with('[')
                .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
        };
        let mut parts = Vec::new();
        if let Some(h) = header(line) {
            parts.push(h);
        } else {
            if let Some(h) = before
                .get(..line_start)
                .and_then(|b| b.lines().rev().find_map(header))
            {
                parts.push(h);
            }
            if let Some((k, _)) = line.split_once('=') {
                parts.push(k.trim().to_owned());
            }
        }
        let joined = parts.join(".");
        if joined.is_empty() {
            KeyPath::default()
        } else {
            KeyPath(vec![Seg::Key(joined)])
        }
    }

    /// The deepest key whose key or value contains `pos`.
    pub fn key_at(&self, pos: usize) -> KeyPath {
        let mut path = KeyPath::default();
        key_at_table(self.root.get_ref(), pos, &mut path);
        path
    }
}

fn contains(span: &Range<usize>, pos: usize) -> bool {
    span.start <= pos && pos < span.end.max(span.start + 1)
}

fn key_at_table(table: &DeTable<'_>, pos: usize, path: &mut KeyPath) {
    // An entry containing the position, else the last sub-table whose
    // header comes before it (the body of a `[table]` is not inside the
    // header's span).
    let mut found = None;
    let mut preceding = None;
    for (k, v) in table.iter() {
        if contains(&k.span(), pos) || contains(&v.span(), pos) {
            found = Some((k, v));
            break;
        }
        let is_section = v.get_ref().is_table() || v.get_ref().is_array();
        if is_section
            && k.span().start <= pos
            && preceding.is_none_or(|(pk, _): (&Spanned<_>, _)| pk.span().start < k.span().start)
        {
            preceding = Some((k, v));
        }
    }
    if let Some((k, v)) = found.or(preceding) {
        path.0.push(Seg::Key(k.get_ref().to_string()));
        if !contains(&k.span(), pos) {
            key_at_value(v, pos, path);
        }
    }
}

fn key_at_value(value: &Spanned<DeValue<'_>>, pos: usize, path: &mut KeyPath) {
    match value.get_ref() {
        DeValue::Table(t) => key_at_table(t, pos, path),
        DeValue::Array(a) => {
            let mut chosen = None;
            for (i, el) in a.iter().enumerate() {
                if contains(&el.span(), pos) {
                    chosen = Some((i, el));
                    break;
                }
                if el.span().start <= pos {
                    chosen = Some((i, el));
                }
            }
            if let Some((i, el)) = chosen {
                path.0.push(Seg::Index(i));
                key_at_value(el, pos, path);
            }
        }
        _ => {}
    }
}
