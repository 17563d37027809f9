//! `vrrpd import-keepalived`: reads a keepalived.conf as keepalived 2.2.7
//! reads it and builds the typed configuration ([`raw::Config`]) that
//! means the same to vrrpd. Where keepalived itself changes what the file
//! says (authentication in strict mode or with VRRPv3, weights of
//! sync-group members, a prefix on a unicast address...), the conversion
//! does what keepalived does and says so. Every keyword is counted as
//! carried, carried with a changed meaning, or dropped ([`Report`]), and
//! each of the last two is a warning with its file and line. A file that
//! keepalived would run in a harmful way (an unclosed block swallowing the
//! rest of the file) is refused with its line.

mod keywords;
mod parse;
mod routes;

#[cfg(test)]
mod interface_tests;
#[cfg(test)]
mod retry_tests;
#[cfg(test)]
mod source_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub use parse::{Pos, Reader};

use crate::config::{KeyPath, raw};

/// Why a keepalived configuration could not be converted at all.
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
    /// Something keepalived would read in a harmful way, or vrrpd cannot
    /// carry at all (an unclosed block, `~SEQ`, unicast in strict mode...).
    #[error("{}:{line}: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What.
        message: String,
    },
}

/// What became of a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    /// Carried with keepalived's meaning.
    Carried,
    /// Carried, but vrrpd does something different (named in a warning).
    Changed,
    /// Not carried (named in a warning).
    Dropped,
}

/// Per keyword (`vrrp_instance priority`), how often each fate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Counts: carried, changed, dropped.
    pub rows: BTreeMap<String, [usize; 3]>,
}

impl Report {
    fn count(&mut self, keyword: &str, fate: Fate) {
        let row = self.rows.entry(keyword.to_owned()).or_default();
        row[fate as usize] += 1;
    }

    /// Moves one count of `keyword` from carried to `fate` (a rule applied
    /// after the keyword was read).
    fn recount(&mut self, keyword: &str, fate: Fate) {
        let row = self.rows.entry(keyword.to_owned()).or_default();
        row[Fate::Carried as usize] = row[Fate::Carried as usize].saturating_sub(1);
        row[fate as usize] += 1;
    }

    /// The table `--report` prints.
    pub fn table(&self) -> String {
        let width = self.rows.keys().map(String::len).max().unwrap_or(7).max(7);
        let mut out = format!(
            "{:<width$}  {:>7}  {:>7}  {:>7}\n",
            "keyword", "carried", "changed", "dropped"
        );
        let mut totals = [0usize; 3];
        for (kw, counts) in &self.rows {
            out.push_str(&format!(
                "{kw:<width$}  {:>7}  {:>7}  {:>7}\n",
                counts[0], counts[1], counts[2]
            ));
            for (t, c) in totals.iter_mut().zip(counts) {
                *t += c;
            }
        }
        out.push_str(&format!(
            "{:<width$}  {:>7}  {:>7}  {:>7}\n",
            "total", totals[0], totals[1], totals[2]
        ));
        out
    }
}

/// Something of the keepalived configuration that is not carried as
/// written, at its file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file.
    pub file: PathBuf,
    /// The line, from 1.
    pub line: usize,
    /// What, and why.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// How to read the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// keepalived's `-i`: the configuration id `@id` lines are compared
    /// with (keepalived's default: the host name up to its first dot).
    pub config_id: String,
}

impl Default for Options {
    fn default() -> Self {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        Options {
            config_id: host.split('.').next().unwrap_or_default().to_owned(),
        }
    }
}

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The configuration, as TOML would write it.
    pub config: raw::Config,
    /// What was not carried as written.
    pub warnings: Vec<Warning>,
    /// Per keyword fates.
    pub report: Report,
    /// Where each key came from, to place problems found later.
    locations: HashMap<String, Pos>,
    /// Where each real server came from, by virtual server.
    real_servers: Vec<Vec<Pos>>,
    files: Vec<PathBuf>,
}

impl Imported {
    /// The keepalived.conf file and line `key` came from (its nearest
    /// recorded parent).
    pub fn locate(&self, key: &KeyPath) -> (PathBuf, usize) {
        use crate::config::Seg;
        let file_line = |pos: &Pos| {
            (
                self.files
                    .get(pos.file as usize)
                    .cloned()
                    .unwrap_or_default(),
                pos.line as usize,
            )
        };
        if let [Seg::Key(vs), Seg::Index(i), Seg::Key(rs), Seg::Index(j), ..] = key.0.as_slice()
            && vs == "virtual_server"
            && rs == "real_server"
            && let Some(pos) = self.real_servers.get(*i).and_then(|l| l.get(*j))
        {
            return file_line(pos);
        }
        let mut k = key.to_string();
        loop {
            if let Some(pos) = self.locations.get(&k) {
                return (
                    self.files
                        .get(pos.file as usize)
                        .cloned()
                        .unwrap_or_default(),
                    pos.line as usize,
                );
            }
            match k.rfind(['.', '[']) {
                Some(i) => k.truncate(i),
                None => return (self.files.first().cloned().unwrap_or_default(), 0),
            }
        }
    }

    /// The configuration as TOML, with a header naming its source.
    #[cfg(test)]
    pub fn toml(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_toml(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Writes the configuration as TOML, one virtual server at a time.
    pub fn write_toml(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let source = self.files.first().map(|f| f.display().to_string());
        writeln!(
            out,
            "# Converted from {} by `vrrpd import-keepalived`.",
            source.unwrap_or_default()
        )?;
        if self.warnings.is_empty() {
            writeln!(out, "# Every keyword was carried over.")?;
        } else {
            writeln!(
                out,
                "# {} keyword(s) were not carried as written; see the warnings it printed.",
                self.warnings.len()
            )?;
        }
        writeln!(
            out,
            "# Validate on the target host with `vrrpd check -c FILE`.\n"
        )?;
        let head = raw::Config {
            static_routes: self.config.static_routes.clone(),
            static_rules: self.config.static_rules.clone(),
            static_ipaddress: self.config.static_ipaddress.clone(),
            global: self.config.global.clone(),
            script: self.config.script.clone(),
            track_file: self.config.track_file.clone(),
            track_process: self.config.track_process.clone(),
            instance: self.config.instance.clone(),
            sync_group: self.config.sync_group.clone(),
            virtual_server_group: self.config.virtual_server_group.clone(),
            virtual_server: Vec::new(),
        };
        out.write_all(crate::config::to_toml(&head).as_bytes())?;
        #[derive(serde::Serialize)]
        struct One<'a> {
            virtual_server: [&'a raw::VirtualServer; 1],
        }
        for vs in &self.config.virtual_server {
            out.write_all(b"\n")?;
            out.write_all(
                crate::config::to_toml(&One {
                    virtual_server: [vs],
                })
                .as_bytes(),
            )?;
        }
        Ok(())
    }
}

/// Converts the keepalived configuration at `path` (and its includes).
pub fn import_file(path: &Path, options: &Options) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    import_str(&text, path, options)
}

/// Converts keepalived configuration text; `path` names it and anchors
/// relative includes.
pub fn import_str(text: &str, path: &Path, options: &Options) -> Result<Imported, ImportError> {
    let mut reader = Reader::new(path, text, &options.config_id);
    let mut cx = keywords::Cx::default();
    let mut vrrp = Vec::new();
    while let Some(node) = reader.next_top()? {
        match node.keyword() {
            "global_defs" | "vrrp_script" | "track_file" | "vrrp_track_file"
            | "vrrp_track_process" | "track_process" | "vrrp_instance" | "vrrp_sync_group" => {
                vrrp.push(node)
            }
            "virtual_server" => {
                let index = cx.config.virtual_server.len();
                if let Some(vs) = cx.virtual_server(&node, index) {
                    cx.config.virtual_server.push(vs);
                }
            }
            "virtual_server_group" => cx.virtual_server_group(&node),
            _ => cx.top_level_other(&node),
        }
    }
    cx.link_groups();
    if let Some(pos) = reader.conditionals_seen {
        cx.note(
            pos,
            format!(
                "conditional `@` lines were read for configuration id `{}` (keepalived's -i; import-keepalived --config-id)",
                options.config_id
            ),
        );
    }
    cx.vrrp(&vrrp);
    // keepalived checks scripts (and refuses to run them as root by
    // default) only with `enable_script_security`; without it, it runs
    // them as root when no keepalived_script user exists. The converted
    // file keeps that choice rather than take vrrpd's stricter default.
    if cx.config.global.enable_script_security.is_none() {
        cx.config.global.enable_script_security = Some(false);
    }
    let files = reader.files;
    let mut warnings: Vec<Warning> = reader
        .warnings
        .into_iter()
        .chain(cx.warnings)
        .map(|(pos, message)| Warning {
            file: files.get(pos.file as usize).cloned().unwrap_or_default(),
            line: pos.line as usize,
            message,
        })
        .collect();
    warnings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    if let Some(e) = cx.refused {
        return Err(ImportError::Syntax {
            file: files.get(e.0.file as usize).cloned().unwrap_or_default(),
            line: e.0.line as usize,
            message: e.1,
        });
    }
    Ok(Imported {
        config: cx.config,
        warnings,
        report: cx.report,
        locations: cx.locations,
        real_servers: cx.real_servers,
        files,
    })
}
