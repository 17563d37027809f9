//! vrrpd(8): clap_mangen renders what clap knows (synopsis, options,
//! every subcommand with its own options), `super::sections` the rest.

use clap::Command;
use clap_mangen::Man;
use roff::{Roff, bold, roman};

use super::{paragraph, sections, strip_preamble};

/// The subcommands a page or a completion lists: clap's own `help`
/// subcommand and hidden ones (`generate-assets`) left out.
pub(super) fn listed_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// vrrpd(8) as roff source. `cmd` is the whole command line (`Cli::command()`).
pub fn render(cmd: Command) -> String {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let man = Man::new(cmd.clone());

    let mut text = String::new();
    text.push_str(&render_parts(
        &man,
        &[
            |m, w| m.render_name_section(w),
            |m, w| m.render_synopsis_section(w),
        ],
    ));
    text.push_str(&description());
    text.push_str(&render_parts(&man, &[|m, w| m.render_options_section(w)]));
    text.push_str(&commands(&cmd));
    text.push_str(&hand_written());
    super::title("VRRPD", "8", &version, "System Administration", &text)
}

type Part = fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>;

/// clap_mangen's sections, each without roff's preamble, with `code`
/// spans of help texts in bold.
fn render_parts(man: &Man, parts: &[Part]) -> String {
    let mut text = String::new();
    for part in parts {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = part(man, &mut out);
        for line in strip_preamble(&String::from_utf8_lossy(&out)).lines() {
            text.push_str(&code_spans(line));
            text.push('\n');
        }
    }
    text
}

/// A text line of clap_mangen's with `code` spans set in bold (help texts
/// come from doc comments); control lines and lines with an odd number of
/// backticks are left as they are.
fn code_spans(line: &str) -> String {
    let ticks = line.matches('`').count();
    if line.starts_with('.') || ticks == 0 || ticks % 2 == 1 {
        return line.to_owned();
    }
    let mut out = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i > 0 {
            out.push_str(if i % 2 == 1 { "\\fB" } else { "\\fR" });
        }
        out.push_str(part);
    }
    out
}

fn description() -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    for (i, p) in sections::DESCRIPTION.iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text(paragraph(p));
    }
    strip_preamble(&roff.render()).to_owned()
}

/// COMMANDS: each subcommand (and theirs, depth first) as a subsection
/// with its synopsis, description and options.
fn commands(cmd: &Command) -> String {
    let mut text = String::new();
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    text.push_str(strip_preamble(&roff.render()));
    for sub in listed_subcommands(cmd) {
        subcommand(sub, &mut text);
    }
    text
}

fn subcommand(sub: &Command, text: &mut String) {
    let full = sub
        .get_bin_name()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("vrrpd {}", sub.get_name()));
    // Global options (--log-format) and --help belong to vrrpd itself.
    let own = sub
        .clone()
        .mut_args(|a| {
            if a.is_global_set() || a.get_id() == "help" {
                a.hide(true)
            } else {
                a
            }
        })
        .disable_help_subcommand(true);
    let man = Man::new(own);
    let mut roff = Roff::new();
    roff.control("SS", [full.as_str()]);
    text.push_str(strip_preamble(&roff.render()));
    let fragment = render_parts(
        &man,
        &[
            |m, w| m.render_synopsis_section(w),
            |_, w| w.write_all(b".PP\n"),
            |m, w| m.render_description_section(w),
            |m, w| m.render_options_section(w),
        ],
    );
    for line in fragment.lines() {
        // The fragments come as whole sections; here they are parts of
        // one subsection.
        if !line.starts_with(".SH ") {
            text.push_str(line);
            text.push('\n');
        }
    }
    for nested in listed_subcommands(sub) {
        subcommand(nested, text);
    }
}

fn hand_written() -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["SIGNALS"]);
    roff.text([roman(
        "vrrpd run handles these signals; systemctl stop sends SIGTERM, systemctl reload SIGHUP.",
    )]);
    for (signal, what) in sections::SIGNALS {
        roff.control("TP", []);
        roff.text([bold(*signal)]);
        roff.text(paragraph(what));
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (status, what) in sections::EXIT_STATUSES {
        roff.control("TP", []);
        roff.text([bold(status.to_string())]);
        roff.text(paragraph(what));
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (var, what) in sections::ENVIRONMENT {
        roff.control("TP", []);
        roff.text([bold(*var)]);
        roff.text(paragraph(what));
    }
    roff.control("SH", ["FILES"]);
    for (path, what) in sections::FILES {
        roff.control("TP", []);
        roff.text([bold(*path)]);
        roff.text(paragraph(what));
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut see = Vec::new();
    for (i, (page, section)) in sections::SEE_ALSO.iter().enumerate() {
        if i > 0 {
            see.push(roman(", "));
        }
        see.push(bold(*page));
        see.push(roman(format!("({section})")));
    }
    roff.text(see);
    strip_preamble(&roff.render()).to_owned()
}
