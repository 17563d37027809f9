//! The manual pages and shell completions, generated from the code's own
//! definitions so that a new subcommand, option or configuration key is
//! documented when it is written:
//!
//! - vrrpd(8): the clap command (clap_mangen) plus [`sections`], the
//!   parts clap cannot know (signals, exit statuses, environment, files);
//! - vrrpd.toml(5): the configuration schema, every key of
//!   [`crate::config::raw`] with its doc comment, default and keepalived
//!   name ([`crate::config::schema`]);
//! - bash, zsh and fish completions (clap_complete).
//!
//! `vrrpd generate-assets DIR` (hidden) writes them; packaging/build-deb.sh
//! runs it before cargo-deb.

mod cli_page;
mod config_page;
#[cfg(test)]
mod config_tests;
pub mod sections;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use clap::Command;
use clap_complete::Shell;
use roff::{Inline, bold, roman};

#[cfg(test)]
use cli_page::listed_subcommands;

/// The date in the pages' footers: the commit's (build.rs), so that the
/// same commit gives the same pages.
const DATE: &str = env!("VRRPD_COMMIT_DATE");

/// Where each generated file goes under the output directory (and, after
/// the `/`, where the Debian package installs it).
pub const ASSETS: [(&str, &str); 5] = [
    ("man/vrrpd.8", "usr/share/man/man8/vrrpd.8"),
    ("man/vrrpd.toml.5", "usr/share/man/man5/vrrpd.toml.5"),
    (
        "completions/vrrpd.bash",
        "usr/share/bash-completion/completions/vrrpd",
    ),
    (
        "completions/_vrrpd",
        "usr/share/zsh/vendor-completions/_vrrpd",
    ),
    (
        "completions/vrrpd.fish",
        "usr/share/fish/vendor_completions.d/vrrpd.fish",
    ),
];

/// vrrpd(8) as roff source.
pub fn cli_page(cmd: Command) -> String {
    cli_page::render(cmd)
}

/// vrrpd.toml(5) as roff source; `version` as `vrrpd --version` says it.
pub fn config_page(version: &str) -> String {
    config_page::render(version)
}

/// The completion script of `shell`, for the commands a user sees.
pub fn completion(cmd: Command, shell: Shell) -> String {
    let mut cmd = visible(cmd.disable_help_subcommand(true));
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "vrrpd", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `cmd` (as `Cli::command()` gives it, not built) without hidden
/// subcommands at any depth, which clap_complete would offer.
fn visible(cmd: Command) -> Command {
    let mut out = if cmd.get_subcommands().any(Command::is_hide_set) {
        let mut out = Command::new(cmd.get_name().to_owned())
            .args(cmd.get_arguments().cloned())
            .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
            .subcommand_required(cmd.is_subcommand_required_set())
            .disable_help_subcommand(true);
        if let Some(version) = cmd.get_version() {
            out = out.version(version.to_owned());
        }
        if let Some(about) = cmd.get_about() {
            out = out.about(about.clone());
        }
        out
    } else {
        cmd
    };
    let names: Vec<String> = out
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        out = out.mut_subcommand(name, visible);
    }
    out
}

/// Writes every generated file under `dir` (see [`ASSETS`]); returns
/// their paths.
pub fn write_assets(cmd: Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let contents = [
        cli_page(cmd.clone()),
        config_page(&version),
        completion(cmd.clone(), Shell::Bash),
        completion(cmd.clone(), Shell::Zsh),
        completion(cmd, Shell::Fish),
    ];
    let mut written = Vec::new();
    for ((name, _), text) in ASSETS.iter().zip(contents) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

/// A page: roff's preamble, the title line (written here: an empty date
/// must still be a quoted argument), no hyphenation (key names would be
/// cut at their underscores), left-adjusted (no gaps around long key
/// paths), then `body` (a Roff rendering).
fn title(name: &str, section: &str, version: &str, manual: &str, body: &str) -> String {
    let quoted = |s: &str| s.replace('"', "'").replace('\\', "\\\\");
    let mut page = roff::Roff::new().render();
    page.push_str(&format!(
        ".TH {name} {section} \"{DATE}\" \"vrrpd {}\" \"{manual}\"\n.nh\n.ad l\n",
        quoted(version)
    ));
    page.push_str(strip_preamble(body));
    page
}

/// roff's crate writes a preamble (the apostrophe string) at the start of
/// every rendering; a page made of several renderings keeps the first.
fn strip_preamble(fragment: &str) -> &str {
    let mut rest = fragment;
    while let Some(line) = rest.lines().next() {
        if line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq") {
            rest = &rest[(line.len() + 1).min(rest.len())..];
        } else {
            break;
        }
    }
    rest
}

/// Doc-comment text as roff inlines: `code` spans in bold, the rest in
/// roman, lines joined.
fn paragraph(text: &str) -> Vec<Inline> {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    for (i, part) in joined.split('`').enumerate() {
        if part.is_empty() {
            continue;
        }
        out.push(if i % 2 == 1 { bold(part) } else { roman(part) });
    }
    out
}
