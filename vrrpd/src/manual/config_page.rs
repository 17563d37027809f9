//! vrrpd.toml(5), made by walking the configuration schema
//! ([`crate::config::schema`]) from [`crate::config::raw::Config`]: one
//! section per table, every key with its value, doc comment, default,
//! keepalived name and aliases. Each kind of table is described once; a
//! table met again (a command's table form) refers to its description.

use std::collections::BTreeMap;

use roff::{Inline, Roff, bold, italic, roman};

use super::{paragraph, title};
use crate::config::raw::Config;
use crate::config::schema::{DefaultValue, DocumentedTable, Keepalived, Key, Shape, Table};

/// The DESCRIPTION, one paragraph per entry (`code` in bold).
const DESCRIPTION: &[&str] = &[
    "vrrpd(8) reads its whole configuration from one TOML file, by default \
     /etc/vrrpd/vrrpd.toml: VRRP instances and what they track, and IPVS virtual \
     servers with their real servers and health checks. Every key is optional \
     unless said otherwise; `vrrpd check -c FILE` validates a file and prints it \
     with every default filled in. Errors name the file, the line and the key.",
    "The key names are keepalived's, so that a keepalived.conf reads across: \
     `global_defs` becomes `[global]`, `vrrp_instance NAME` becomes \
     `[instance.NAME]`, and so on. Each key below says its keepalived \
     equivalent. `vrrpd import-keepalived keepalived.conf` converts a whole \
     file, and says what it could not carry.",
    "A reload (`systemctl reload vrrpd`, or SIGHUP) reads the file again; \
     instances whose settings did not change keep running.",
];

/// VALUES: how the kinds of values are written.
const VALUES: &[(&str, &str)] = &[
    (
        "duration",
        "A string with a unit: `\"150ms\"`, `\"1s\"`, `\"1.5s\"`, `\"2m\"`, `\"1h\"` \
         (also us and ns), or a number of seconds as keepalived writes it: \
         `advert_int = 1`.",
    ),
    (
        "boolean",
        "`true` or `false`. keepalived's flags without a value (`nopreempt`) are \
         `nopreempt = true`.",
    ),
    (
        "IP address",
        "IPv4 or IPv6, as a string: `\"192.0.2.10\"`, `\"2001:db8::10\"`.",
    ),
    ("address:port", "`\"127.0.0.1:9090\"`, `\"[::1]:9090\"`."),
    (
        "command",
        "A program to run, never through a shell unless asked: a command line \
         split into words as keepalived splits it \
         (`\"/usr/local/bin/check --fast\"`), an array of words \
         (`[\"/usr/local/bin/check\", \"--fast\"]`), or a table with the keys \
         below. A program named by its absolute path must exist and be \
         executable, and with `global.enable_script_security` neither it nor \
         its directories may be writable by anyone but root; a bare name is \
         looked up in PATH.",
    ),
];

/// vrrpd.toml(5) as roff source.
pub fn render(version: &str) -> String {
    let mut page = Page {
        roff: Roff::new(),
        described: BTreeMap::new(),
    };
    let r = &mut page.roff;
    r.control("SH", ["NAME"]);
    r.text([roman("vrrpd.toml - configuration file of vrrpd(8)")]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([bold("/etc/vrrpd/vrrpd.toml")]);
    r.control("SH", ["DESCRIPTION"]);
    for (i, p) in DESCRIPTION.iter().enumerate() {
        if i > 0 {
            r.control("PP", []);
        }
        r.text(paragraph(p));
    }
    r.control("SH", ["VALUES"]);
    for (what, how) in VALUES {
        r.control("TP", []);
        r.text([italic(*what)]);
        r.text(paragraph(how));
    }
    let command = crate::config::schema::command_table();
    page.described
        .insert(command.type_name, "the VALUES section".to_owned());
    page.roff.control("RS", []);
    page.keys(command, "a command's table");
    page.roff.control("RE", []);
    for key in Config::table().keys {
        let shape = (key.shape)();
        let Some(table) = shape.table() else { continue };
        let header = header(key.name, shape);
        page.table(&header, &section_path(key.name, shape), table, "SH");
    }
    let r = &mut page.roff;
    r.control("SH", ["FILES"]);
    r.control("TP", []);
    r.text([bold("/etc/vrrpd/vrrpd.toml")]);
    r.text([roman(
        "The configuration of the packaged systemd unit (a conffile: upgrades keep your edits).",
    )]);
    r.control("TP", []);
    r.text([bold("/usr/share/doc/vrrpd/examples/")]);
    r.text([roman("Example configurations.")]);
    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("vrrpd"),
        roman("(8), "),
        bold("keepalived.conf"),
        roman("(5), "),
        roman("the TOML specification: https://toml.io/"),
    ]);
    let body = page.roff.render();
    title("VRRPD.TOML", "5", version, "File Formats", &body)
}

/// The TOML header of a top-level table: `[global]`, `[script.NAME]`,
/// `[[virtual_server]]`.
fn header(name: &str, shape: Shape) -> String {
    match shape {
        Shape::Named(_) => format!("[{name}.NAME]"),
        Shape::List(_) => format!("[[{name}]]"),
        _ => format!("[{name}]"),
    }
}

/// The dotted path of a table, for the headers of the tables inside it.
fn section_path(name: &str, shape: Shape) -> String {
    match shape {
        Shape::Named(_) => format!("{name}.NAME"),
        _ => name.to_owned(),
    }
}

struct Page {
    roff: Roff,
    /// Tables already described (by Rust type), and where.
    described: BTreeMap<&'static str, String>,
}

impl Page {
    /// A table's section (`SH`) or subsection (`SS`): its doc, its keys,
    /// then the tables inside it.
    fn table(&mut self, header: &str, path: &str, table: &'static Table, level: &str) {
        self.roff.control(level, [header]);
        if let Some(place) = self.described.get(table.type_name) {
            self.roff
                .text([roman("The keys of "), bold(place.clone()), roman(".")]);
            return;
        }
        self.described.insert(table.type_name, header.to_owned());
        if !table.doc.is_empty() {
            self.roff.text(paragraph(table.doc));
        }
        self.keys(table, path);
        for key in table.keys {
            let shape = (key.shape)();
            let child = format!("{path}.{}", key.name);
            match shape {
                Shape::Table(t) => self.table(&format!("[{child}]"), &child, t(), "SS"),
                Shape::List(inner) => match inner() {
                    Shape::Table(t) => self.table(&format!("[[{child}]]"), &child, t(), "SS"),
                    Shape::StringOrTable(_, t) => self.entries(path, table, t()),
                    _ => {}
                },
                Shape::Named(inner) => {
                    if let Some(t) = inner().table() {
                        let named = format!("{child}.NAME");
                        self.table(&format!("[{named}]"), &named, t, "SS");
                    }
                }
                Shape::StringOrTable(_, t) => self.entries(path, table, t()),
                Shape::Value(_) | Shape::Choice(_) => {}
            }
        }
    }

    /// The table form of the string-or-table values of `parent`'s keys,
    /// described once, naming every key of `parent` that takes it.
    fn entries(&mut self, path: &str, parent: &'static Table, form: &'static Table) {
        if self.described.contains_key(form.type_name) {
            return;
        }
        let users: Vec<String> = parent
            .keys
            .iter()
            .filter(|k| string_or_table(k).is_some_and(|t| t.type_name == form.type_name))
            .map(|k| format!("{path}.{}", k.name))
            .collect();
        let header = format!("{} as tables", users.join(", "));
        self.described.insert(form.type_name, header.clone());
        self.roff.control("SS", [header.as_str()]);
        if !form.doc.is_empty() {
            self.roff.text(paragraph(form.doc));
        }
        self.keys(form, path);
    }

    fn keys(&mut self, table: &'static Table, path: &str) {
        for key in table.keys {
            self.key(key, path);
        }
    }

    fn key(&mut self, key: &Key, path: &str) {
        let r = &mut self.roff;
        r.control("TP", []);
        r.text([bold(key.name), roman(" = "), italic(value_text(key))]);
        if !key.doc.is_empty() {
            r.text(paragraph(key.doc));
        }
        let shape = (key.shape)();
        match shape {
            Shape::Table(_) => {
                r.text([
                    roman("See "),
                    bold(format!("[{path}.{}]", key.name)),
                    roman("."),
                ]);
            }
            Shape::List(inner) if matches!(inner(), Shape::Table(_)) => {
                r.text([
                    roman("See "),
                    bold(format!("[[{path}.{}]]", key.name)),
                    roman("."),
                ]);
            }
            _ => {}
        }
        let mut facts: Vec<Inline> = Vec::new();
        match key.default {
            Some(DefaultValue::Toml(v)) => facts.extend([roman("Default: "), bold(v), roman(".")]),
            Some(DefaultValue::Text(t)) => {
                facts.push(roman("Default: "));
                facts.extend(paragraph(t));
                facts.push(roman("."));
            }
            Some(DefaultValue::Required) => facts.push(roman("Required.")),
            None => {}
        }
        match key.keepalived {
            Some(Keepalived::Same) => {
                facts.extend([roman(" keepalived: "), bold(key.name), roman(".")]);
            }
            Some(Keepalived::Named(text)) => {
                facts.push(roman(" keepalived: "));
                match text.split_once(" (") {
                    Some((name, note)) => {
                        facts.extend([bold(name), roman(format!(" ({note}."))]);
                    }
                    None => facts.extend([bold(text), roman(".")]),
                }
            }
            Some(Keepalived::None) => facts.push(roman(" keepalived: none (vrrpd only).")),
            None => {}
        }
        if !key.aliases.is_empty() {
            facts.push(roman(" Also accepted: "));
            for (i, alias) in key.aliases.iter().enumerate() {
                if i > 0 {
                    facts.push(roman(", "));
                }
                facts.push(bold(*alias));
            }
            facts.push(roman("."));
        }
        if !facts.is_empty() {
            r.control("br", []);
            r.text(facts);
        }
    }
}

/// The table form of a key's string-or-table value (or values).
fn string_or_table(key: &Key) -> Option<&'static Table> {
    match (key.shape)() {
        Shape::StringOrTable(_, t) => Some(t()),
        Shape::List(inner) => match inner() {
            Shape::StringOrTable(_, t) => Some(t()),
            _ => None,
        },
        _ => None,
    }
}

/// What a key's value is written as.
fn value_text(key: &Key) -> String {
    if let Some(v) = key.value {
        return v.to_owned();
    }
    shape_text((key.shape)())
}

fn shape_text(shape: Shape) -> String {
    match shape {
        Shape::Value(v) => v.to_owned(),
        Shape::Choice(names) => names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(" | "),
        Shape::Table(_) => "table".to_owned(),
        Shape::List(inner) => match inner() {
            Shape::Table(_) => "array of tables".to_owned(),
            Shape::StringOrTable(s, _) => format!("array of {s} or tables"),
            Shape::Value(v) if v.ends_with("ss") => format!("array of {v}es"),
            Shape::Value(v) => format!("array of {v}s"),
            other => format!("array of {}", shape_text(other)),
        },
        Shape::Named(_) => "tables by name".to_owned(),
        Shape::StringOrTable(s, t) if t().type_name == "CommandTable" => {
            let _ = s;
            "command".to_owned()
        }
        Shape::StringOrTable(s, _) => format!("{s} or a table"),
    }
}
