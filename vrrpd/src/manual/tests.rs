//! The generated pages and completions cover the whole command line, and
//! the hand-written sections cover every exit status, signal and
//! environment variable the code uses (found by reading the sources).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::{Command, CommandFactory, Parser as _};
use clap_complete::Shell;

use super::{cli_page, completion, listed_subcommands, sections};
use crate::Cli;

/// Every listed subcommand at any depth, with its full name.
fn subcommands(cmd: &Command, prefix: &str, out: &mut Vec<(String, Command)>) {
    for sub in listed_subcommands(cmd) {
        let name = format!("{prefix} {}", sub.get_name());
        out.push((name.clone(), sub.clone()));
        subcommands(sub, &name, out);
    }
}

fn all_subcommands() -> Vec<(String, Command)> {
    let mut out = Vec::new();
    subcommands(&Cli::command(), "vrrpd", &mut out);
    out
}

/// How roff text writes `s` (what the page holds for it).
fn escaped(s: &str) -> String {
    s.replace('-', "\\-")
}

/// The options a user sees in `sub`: not hidden, not global (documented
/// once, under vrrpd itself), not --help.
fn own_args(sub: &Command) -> impl Iterator<Item = &clap::Arg> {
    sub.get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set() && a.get_id() != "help")
}

#[test]
fn every_subcommand_and_its_options_are_in_vrrpd_8() {
    let page = cli_page(Cli::command());
    let subs = all_subcommands();
    assert!(subs.len() >= 6, "{} subcommands", subs.len());
    for (name, sub) in &subs {
        let heading = format!(".SS \"{name}\"\n");
        let start = page
            .find(&heading)
            .unwrap_or_else(|| panic!("vrrpd(8) has no subsection for `{name}`"));
        let body = &page[start + heading.len()..];
        let body = &body[..body.find("\n.S").unwrap_or(body.len())];
        if let Some(about) = sub.get_about() {
            let first_words: String = about.to_string().chars().take(20).collect();
            assert!(
                body.contains(&escaped(&first_words).replace('\'', "\\*(Aq")),
                "`{name}`'s description is missing:\n{body}"
            );
        }
        for arg in own_args(sub) {
            let shown = if let Some(long) = arg.get_long() {
                escaped(&format!("--{long}"))
            } else if let Some(short) = arg.get_short() {
                escaped(&format!("-{short}"))
            } else {
                let value = arg
                    .get_value_names()
                    .map(|v| v.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" "))
                    .unwrap_or_else(|| arg.get_id().as_str().to_owned());
                // An optional positional is shown in brackets.
                if arg.is_required_set() {
                    format!("<\\fI{}\\fR>", escaped(&value))
                } else {
                    format!("[\\fI{}\\fR]", escaped(&value))
                }
            };
            assert!(
                body.contains(&shown),
                "`{name}`'s option {shown} is missing:\n{body}"
            );
        }
    }
    for arg in Cli::command().get_arguments() {
        if let Some(long) = arg.get_long() {
            assert!(page.contains(&escaped(&format!("--{long}"))), "--{long}");
        }
    }
}

#[test]
fn hidden_subcommands_are_in_no_page_or_completion() {
    let hidden: Vec<String> = Cli::command()
        .get_subcommands()
        .filter(|s| s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect();
    assert!(hidden.contains(&"generate-assets".to_owned()), "{hidden:?}");
    let mut texts = vec![cli_page(Cli::command())];
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        texts.push(completion(Cli::command(), shell));
    }
    for name in &hidden {
        for text in &texts {
            assert!(!text.contains(name.as_str()), "{name} is listed");
            assert!(!text.contains(&escaped(name)), "{name} is listed");
        }
    }
}

#[test]
fn completions_offer_every_subcommand_and_option() {
    let subs = all_subcommands();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let text = completion(Cli::command(), shell);
        for (name, sub) in &subs {
            let last = name.rsplit(' ').next().unwrap_or(name);
            assert!(text.contains(last), "{shell}: no {name}");
            for arg in own_args(sub) {
                if let Some(long) = arg.get_long() {
                    // fish writes `-l NAME`, the others `--NAME`.
                    assert!(
                        text.contains(&format!("--{long}")) || text.contains(&format!("-l {long}")),
                        "{shell}: no --{long} for {name}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_bash_completion_is_valid_bash() {
    let dir = tempdir("bash");
    let file = dir.join("vrrpd.bash");
    std::fs::write(&file, completion(Cli::command(), Shell::Bash)).expect("write");
    let out = Process::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn vrrpd_8_renders_without_groff_warnings() {
    let dir = tempdir("man");
    let file = dir.join("vrrpd.8");
    std::fs::write(&file, cli_page(Cli::command())).expect("write");
    let (rendered, warnings) = render_man(&file);
    assert_eq!(warnings, "", "groff warnings");
    for heading in ["SYNOPSIS", "COMMANDS", "SIGNALS", "EXIT STATUS", "FILES"] {
        assert!(rendered.contains(heading), "{heading}:\n{rendered}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `man -l` of a page at 80 columns with every groff warning: the text and
/// the warnings. man-db and groff are in .ci/run's package list.
pub(super) fn render_man(file: &Path) -> (String, String) {
    let out = Process::new("man")
        .args(["--warnings=w", "-l"])
        .arg(file)
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("man (man-db) is needed to check the pages: apt-get install man-db groff-base");
    assert!(out.status.success(), "man -l {}", file.display());
    // Bold and underline as overstrikes: `X\bX`, `_\bX`.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if chars.peek() == Some(&'\u{8}') {
            chars.next();
        } else {
            plain.push(c);
        }
    }
    (plain, String::from_utf8_lossy(&out.stderr).into_owned())
}

pub(super) fn tempdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vrrpd-manual-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Every `.rs` file under vrrpd/src but this one (its patterns would
/// match themselves), with its text.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read src")
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with(file!()) {
                let text = std::fs::read_to_string(&path).expect("read source");
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    assert!(out.len() > 10, "sources not found");
    out
}

/// The argument of each call `pattern(ARG)` in the sources, with where it is.
fn call_arguments<'a>(sources: &'a [(PathBuf, String)], pattern: &str) -> Vec<(String, &'a Path)> {
    let mut out = Vec::new();
    for (path, text) in sources {
        let mut rest = text.as_str();
        while let Some(at) = rest.find(pattern) {
            rest = &rest[at + pattern.len()..];
            let end = rest.find(')').unwrap_or(rest.len());
            out.push((rest[..end].trim().to_owned(), path.as_path()));
        }
    }
    out
}

/// The value of `const NAME: u8 = N;` (or i32) in the sources.
fn const_value(sources: &[(PathBuf, String)], name: &str) -> Option<i64> {
    for (_, text) in sources {
        for ty in ["u8", "i32"] {
            let decl = format!("const {name}: {ty} = ");
            if let Some(at) = text.find(&decl) {
                let rest = &text[at + decl.len()..];
                return rest[..rest.find(';')?].trim().parse().ok();
            }
        }
    }
    None
}

#[test]
fn every_exit_status_the_code_uses_is_in_vrrpd_8() {
    let sources = sources();
    let mut used = BTreeSet::new();
    for (path, text) in &sources {
        if text.contains("ExitCode::SUCCESS") {
            used.insert((0, path.display().to_string()));
        }
        if text.contains("ExitCode::FAILURE") {
            used.insert((1, path.display().to_string()));
        }
    }
    for pattern in ["ExitCode::from(", "process::exit("] {
        for (arg, path) in call_arguments(&sources, pattern) {
            let status = arg
                .parse::<i64>()
                .ok()
                .or_else(|| const_value(&sources, &arg))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: cannot tell which status `{pattern}{arg})` exits with: \
                         use a literal or a `const NAME: u8` (and list it in manual/sections.rs)",
                        path.display()
                    )
                });
            used.insert((status, path.display().to_string()));
        }
    }
    // clap's own status for a wrong command line.
    let usage = Cli::try_parse_from(["vrrpd", "--no-such-option"])
        .err()
        .map(|e| e.exit_code())
        .expect("a usage error");
    used.insert((i64::from(usage), "clap".to_owned()));
    assert!(used.iter().any(|(s, _)| *s == 2), "{used:?}");
    let listed: BTreeSet<i64> = sections::EXIT_STATUSES
        .iter()
        .map(|(s, _)| i64::from(*s))
        .collect();
    for (status, place) in &used {
        assert!(
            listed.contains(status),
            "exit status {status} ({place}) is not in manual/sections.rs EXIT_STATUSES"
        );
    }
    let page = cli_page(Cli::command());
    for status in listed {
        assert!(
            page.contains(&format!(".TP\n\\fB{status}\\fR\n")),
            "{status}"
        );
    }
}

#[test]
fn every_signal_the_daemon_handles_is_in_vrrpd_8() {
    let sources = sources();
    let mut handled = BTreeSet::new();
    for (kind, path) in call_arguments(&sources, "SignalKind::") {
        // `SignalKind::terminate(` gives "terminate(" up to the `)`.
        let kind = kind.trim_end_matches('(');
        let signal = match kind {
            "terminate" => "SIGTERM",
            "interrupt" => "SIGINT",
            "hangup" => "SIGHUP",
            "quit" => "SIGQUIT",
            "user_defined1" => "SIGUSR1",
            "user_defined2" => "SIGUSR2",
            "child" => "SIGCHLD",
            "alarm" => "SIGALRM",
            "pipe" => "SIGPIPE",
            "window_change" => "SIGWINCH",
            "io" => "SIGIO",
            other => panic!(
                "{}: SignalKind::{other}: name its signal in this test and document it",
                path.display()
            ),
        };
        handled.insert(signal.to_owned());
    }
    for (_, text) in &sources {
        for line in text.lines().filter(|l| l.contains("sigaction(")) {
            for word in line.split(|c: char| !c.is_ascii_alphanumeric()) {
                if word.starts_with("SIG") && word.len() > 3 {
                    handled.insert(word.to_owned());
                }
            }
        }
    }
    assert!(handled.contains("SIGHUP"), "{handled:?}");
    let page = cli_page(Cli::command());
    for signal in handled {
        assert!(
            sections::SIGNALS.iter().any(|(s, _)| *s == signal.as_str()),
            "{signal} is handled but not in manual/sections.rs SIGNALS"
        );
        assert!(page.contains(&format!("\\fB{signal}\\fR")), "{signal}");
    }
}

#[test]
fn every_environment_variable_read_is_in_vrrpd_8() {
    let sources = sources();
    let mut read = BTreeSet::new();
    for pattern in ["env::var(", "env::var_os(", "from_env(", "from_env_lossy("] {
        for (arg, path) in call_arguments(&sources, pattern) {
            let name = arg.trim_matches('"');
            if name.is_empty() || name.contains(|c: char| !c.is_ascii_uppercase() && c != '_') {
                panic!(
                    "{}: cannot tell which variable `{pattern}{arg})` reads: use a literal",
                    path.display()
                );
            }
            read.insert(name.to_owned());
        }
    }
    assert!(read.contains("VRRPD_LOG"), "{read:?}");
    for var in read {
        assert!(
            sections::ENVIRONMENT.iter().any(|(v, _)| *v == var),
            "{var} is read but not in manual/sections.rs ENVIRONMENT"
        );
    }
}
