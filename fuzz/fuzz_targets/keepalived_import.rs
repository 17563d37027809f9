//! The keepalived.conf importer (`vrrpd import-keepalived`), through
//! `import::import_str`. Any text: no panic and no hang (include loops and
//! nesting are bounded); every warning names a file it read and a line of
//! it. What it converts is valid TOML that vrrpd's loader reads without a
//! syntax error or an unknown key (whatever it cannot carry is a warning,
//! never a key vrrpd does not know).
//!
//! Includes resolve in a scratch directory holding a few fixtures (a plain
//! file, a nested include, a self-include); inputs whose include lines
//! could reach outside it (absolute paths, `..`, `~`, escapes) are skipped
//! so the target never reads the machine's files.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vrrp_fuzz::config::{self, ErrorKind};
use vrrp_fuzz::import;

fn sandbox() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vrrp-fuzz-import-{}", std::process::id()));
        let inc = dir.join("inc");
        std::fs::create_dir_all(&inc).expect("scratch directory");
        let files = [
            ("inc/one.conf", "vrrp_instance VI_INC {\n  state BACKUP\n  interface eth0\n  virtual_router_id 7\n  priority 90\n  virtual_ipaddress {\n    192.0.2.7/24\n  }\n}\n"),
            ("inc/two.conf", "include one.conf\nvrrp_script chk {\n  script \"true\"\n  interval 2\n}\n"),
            ("inc/loop.conf", "include loop.conf\n"),
            ("open.conf", "vrrp_instance OPEN {\n  state MASTER\n"),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("fixture");
        }
        dir
    })
}

/// Whether an include line could name a file outside the sandbox.
fn escapes(text: &str) -> bool {
    text.lines().any(|line| {
        // The tokenizer drops quotes and backslash escapes: look past them.
        let plain: String = line.chars().filter(|c| *c != '"' && *c != '\\').collect();
        if !plain.contains("include") {
            return false;
        }
        if plain.contains("..") || plain.contains('~') {
            return true;
        }
        let chars: Vec<char> = plain.chars().collect();
        chars.iter().enumerate().any(|(i, c)| {
            *c == '/'
                && (i == 0
                    || !(chars[i - 1].is_ascii_alphanumeric() || "_*?]".contains(chars[i - 1])))
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if escapes(&text) {
        return;
    }
    let dir = sandbox();
    let main = dir.join("keepalived.conf");
    let Ok(imported) = import::import_str(&text, &main) else {
        return;
    };
    let lines = text.lines().count().max(1);
    for w in &imported.warnings {
        assert!(
            w.pos.file == main || w.pos.file.starts_with(dir),
            "warning about a file never read: {w}"
        );
        if w.pos.file == main {
            assert!(
                w.pos.line <= lines,
                "warning on line {} of {lines}: {w}",
                w.pos.line
            );
        }
    }
    let _: toml::Table = imported.toml.parse().unwrap_or_else(|e| {
        panic!(
            "the importer wrote invalid TOML: {e}\n---\n{}",
            imported.toml
        )
    });
    if let Err(errors) = config::parse(&imported.toml, Path::new("imported.toml")) {
        for e in &errors.0 {
            assert!(
                !matches!(e.kind, ErrorKind::Syntax(_) | ErrorKind::UnknownKey(_)),
                "the importer wrote what vrrpd cannot read: {e}\n---\n{}",
                imported.toml
            );
        }
    }
});
