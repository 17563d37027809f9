//! vrrpd.toml(5) holds every key of the schema; every key says its default
//! and its keepalived name; the literal defaults are what `vrrpd check`
//! prints for a configuration that leaves them out; the keepalived names
//! are keywords the importer reads; groff renders the page without a
//! warning.

use std::path::Path;

use super::config_page;
use super::tests::{render_man, tempdir};
use crate::config::raw::Config;
use crate::config::schema::{DefaultValue, DocumentedTable, Keepalived, Key, Shape, Table};

/// Every key under `table`, with its dotted path (`instance.NAME.priority`)
/// and whether it is a table of keys itself.
fn keys_under(table: &'static Table, path: &str, out: &mut Vec<(String, &'static Key)>) {
    for key in table.keys {
        let here = if path.is_empty() {
            key.name.to_owned()
        } else {
            format!("{path}.{}", key.name)
        };
        out.push((here.clone(), key));
        match (key.shape)() {
            Shape::Table(t) => keys_under(t(), &here, out),
            Shape::Named(inner) => {
                if let Some(t) = inner().table() {
                    keys_under(t, &format!("{here}.NAME"), out);
                }
            }
            Shape::List(inner) => match inner() {
                Shape::Table(t) | Shape::StringOrTable(_, t) => keys_under(t(), &here, out),
                _ => {}
            },
            Shape::StringOrTable(_, t) => keys_under(t(), &here, out),
            Shape::Value(_) | Shape::Choice(_) => {}
        }
    }
}

fn all_keys() -> Vec<(String, &'static Key)> {
    let mut out = Vec::new();
    keys_under(Config::table(), "", &mut out);
    out
}

/// A key holding tables (a section or a sub-table) rather than a value.
fn holds_tables(key: &Key) -> bool {
    (key.shape)().table().is_some()
}

#[test]
fn every_key_says_what_it_is_its_default_and_its_keepalived_name() {
    let keys = all_keys();
    assert!(keys.len() > 150, "{} keys", keys.len());
    let mut missing = Vec::new();
    for (path, key) in &keys {
        if key.doc.is_empty() {
            missing.push(format!("{path}: no doc comment"));
        }
        let section = !path.contains('.');
        if section || holds_tables(key) {
            continue;
        }
        if key.default.is_none() {
            missing.push(format!(
                "{path}: no default: add #[key(default = LITERAL)], #[key(default_is = \"...\")] or #[key(required)]"
            ));
        }
        if key.keepalived.is_none() {
            missing.push(format!(
                "{path}: no keepalived name: add #[key(keepalived)] (same name), #[key(keepalived = \"...\")] or #[key(vrrpd_only)]"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "keys of config/raw.rs without their documentation (vrrpd.toml(5) is made from it):\n{}",
        missing.join("\n")
    );
}

/// The page's sections and subsections, each as its lines.
fn blocks(page: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = vec![Vec::new()];
    for line in page.lines() {
        if line.starts_with(".SH ") || line.starts_with(".SS ") {
            out.push(Vec::new());
        }
        if let Some(block) = out.last_mut() {
            block.push(line);
        }
    }
    out
}

/// Every table of the schema (once per Rust type).
fn tables() -> Vec<&'static Table> {
    let mut out: Vec<&'static Table> = vec![Config::table()];
    let mut i = 0;
    while i < out.len() {
        for key in out[i].keys {
            let inner = match (key.shape)() {
                Shape::List(inner) | Shape::Named(inner) => inner(),
                other => other,
            };
            let t = match inner {
                Shape::Table(t) | Shape::StringOrTable(_, t) => t(),
                _ => continue,
            };
            if !out.iter().any(|o| o.type_name == t.type_name) {
                out.push(t);
            }
        }
        i += 1;
    }
    out
}

#[test]
fn every_table_has_a_part_of_vrrpd_toml_5_with_all_its_keys() {
    let page = config_page("test");
    let blocks = blocks(&page);
    let tables = tables();
    assert!(tables.len() > 20, "{} tables", tables.len());
    for table in tables.iter().skip(1) {
        let entries: Vec<String> = table
            .keys
            .iter()
            .map(|k| format!("\\fB{}\\fR = \\fI", k.name.replace('-', "\\-")))
            .collect();
        let found = blocks.iter().any(|block| {
            entries
                .iter()
                .all(|e| block.iter().any(|line| line.starts_with(e.as_str())))
        });
        assert!(
            found,
            "no part of vrrpd.toml(5) lists every key of {}: {entries:?}",
            table.type_name
        );
        for key in table.keys {
            for alias in key.aliases {
                assert!(page.contains(&format!("\\fB{alias}\\fR")), "alias {alias}");
            }
        }
    }
    for section in [
        "[global]",
        "[script.NAME]",
        "[instance.NAME]",
        "[[virtual_server]]",
    ] {
        assert!(page.contains(&format!(".SH {section}\n")), "{section}");
    }
}

/// A configuration with one of every table and nothing but what must be
/// written: `vrrpd check` prints it with the defaults filled in.
const PROBE: &str = r#"
[global]
script_user = "root"

[global.http]

[script.chk]
command = "/bin/true"

[track_file.tf]
file = "/run/vrrpd-manual-probe"

[track_process.tp]
process = "vrrpd-probe"

[instance.VI_1]
interface = "lo"
virtual_router_id = 1
virtual_ipaddress = ["192.0.2.1/24"]
track_script = ["chk"]
track_file = [{ name = "tf", weight = 0 }]
track_process = ["tp"]
authentication = { auth_type = "PASS", auth_pass = "x" }

[sync_group.G]
group = ["VI_1"]

[[virtual_server]]
ip = "192.0.2.10"
port = 80

[[virtual_server.real_server]]
ip = "192.0.2.20"
tcp_check = {}
http_get = { url = [{}] }
ssl_get = {}
misc_check = { misc_path = "/bin/true" }
dns_check = {}
smtp_check = {}
ping_check = {}
udp_check = {}
"#;

/// The table a schema key's value is in `doc`: a table, the first of an
/// array of tables, the first of the named tables.
fn sub_table(value: Option<&toml::Value>, shape: Shape) -> Option<&toml::Table> {
    let value = value?;
    match shape {
        Shape::Table(_) => value.as_table(),
        Shape::List(_) => value.as_array()?.first()?.as_table(),
        Shape::Named(_) => value.as_table()?.values().next()?.as_table(),
        _ => None,
    }
}

fn compare_defaults(
    table: &'static Table,
    effective: &toml::Table,
    probe: Option<&toml::Table>,
    path: &str,
    failures: &mut Vec<String>,
) {
    for key in table.keys {
        let here = format!("{path}.{}", key.name);
        let shape = (key.shape)();
        if let Some(inner) = shape.table() {
            let inside = match shape {
                Shape::Named(_) => format!("{here}.NAME"),
                _ => here.clone(),
            };
            match sub_table(effective.get(key.name), shape) {
                Some(eff) => compare_defaults(
                    inner,
                    eff,
                    probe.and_then(|p| sub_table(p.get(key.name), shape)),
                    &inside,
                    failures,
                ),
                None if inner
                    .keys
                    .iter()
                    .any(|k| matches!(k.default, Some(DefaultValue::Toml(_)))) =>
                {
                    failures.push(format!(
                        "{here}: `vrrpd check` prints no such table: add one to PROBE"
                    ));
                }
                None => {}
            }
            continue;
        }
        let Some(DefaultValue::Toml(literal)) = key.default else {
            continue;
        };
        if probe.is_some_and(|p| p.contains_key(key.name)) {
            failures.push(format!("{here}: PROBE writes it; leave it out"));
            continue;
        }
        let expected: toml::Table = toml::from_str(&format!("v = {literal}"))
            .unwrap_or_else(|e| panic!("{here}: default {literal} is not TOML: {e}"));
        match effective.get(key.name) {
            Some(v) if Some(v) == expected.get("v") => {}
            Some(v) => failures.push(format!(
                "{here}: documented default {literal}, `vrrpd check` prints {v}"
            )),
            None => failures.push(format!(
                "{here}: documented default {literal}, `vrrpd check` prints nothing: \
                 say it with default_is = \"...\""
            )),
        }
    }
}

#[test]
fn literal_defaults_are_what_vrrpd_check_prints() {
    let effective = crate::config::parse(PROBE, Path::new("probe.toml"))
        .unwrap_or_else(|e| panic!("the probe configuration is refused: {e}"));
    let printed: toml::Table = toml::from_str(&effective.to_toml()).expect("check's output");
    let probe: toml::Table = toml::from_str(PROBE).expect("probe");
    let mut failures = Vec::new();
    let mut compared = 0;
    for key in Config::table().keys {
        let shape = (key.shape)();
        let Some(table) = shape.table() else { continue };
        compared += table
            .keys
            .iter()
            .filter(|k| matches!(k.default, Some(DefaultValue::Toml(_))))
            .count();
        match sub_table(printed.get(key.name), shape) {
            Some(eff) => compare_defaults(
                table,
                eff,
                sub_table(probe.get(key.name), shape),
                &match shape {
                    Shape::Named(_) => format!("{}.NAME", key.name),
                    _ => key.name.to_owned(),
                },
                &mut failures,
            ),
            None => failures.push(format!("[{}]: not in `vrrpd check`'s output", key.name)),
        }
    }
    assert!(compared > 30, "{compared} defaults compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn keepalived_names_are_keywords_the_importer_reads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/import");
    let importer: String = std::fs::read_dir(&dir)
        .expect("src/import")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| std::fs::read_to_string(e.path()).expect("read"))
        .collect();
    let mut unknown = Vec::new();
    let mut checked = 0;
    for (path, key) in all_keys() {
        let words: Vec<&str> = match key.keepalived {
            Some(Keepalived::Same) => vec![key.name],
            // "lb_kind, lvs_method", "weight N reverse", "init_file [VALUE]",
            // "v3_checksum_as_v2 (keepalived 2.2.8)": the keywords are the
            // first words of each alternative; prose ("the name of ...")
            // names none.
            Some(Keepalived::Named(text)) => text
                .split(", ")
                .filter_map(|alt| alt.split([' ', '(']).next())
                .filter(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.chars().any(|c| c.is_ascii_lowercase() || c == '_'))
                .filter(|w| *w != "the")
                .collect(),
            _ => Vec::new(),
        };
        for word in words {
            checked += 1;
            if !importer.contains(&format!("\"{word}\"")) {
                unknown.push(format!("{path}: keepalived `{word}`"));
            }
        }
    }
    assert!(checked > 100, "{checked} keywords");
    assert!(
        unknown.is_empty(),
        "keepalived keywords in vrrpd.toml(5) that src/import does not read:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn vrrpd_toml_5_renders_without_groff_warnings() {
    let dir = tempdir("toml5");
    let file = dir.join("vrrpd.toml.5");
    std::fs::write(&file, config_page("test")).expect("write");
    let (rendered, warnings) = render_man(&file);
    assert_eq!(warnings, "", "groff warnings");
    assert!(rendered.contains("advert_int = duration"), "{rendered}");
    assert!(rendered.contains("[[virtual_server.real_server]]"));
    let _ = std::fs::remove_dir_all(dir);
}
