//! The keepalived.conf importer (`vrrpd import-keepalived`), through
//! `import::import_str`. Any text: no panic and no hang (include loops and
//! nesting are bounded); every warning, and every problem the converted
//! configuration has, names a file it read and a line of it. What it writes
//! is valid TOML that vrrpd's loader reads without a syntax error or an
//! unknown key (whatever it cannot carry is a warning, never a key vrrpd
//! does not know), and that `vrrpd check` judges as `import-keepalived`
//! did: both accept it, to the same effective configuration, or both
//! refuse it.
//!
//! Includes resolve in a scratch directory holding a few fixtures (a plain
//! file, a nested include, a self-include); inputs whose include lines
//! could reach outside it (absolute paths, `..`, `~`, escapes) are skipped
//! so the target never reads the machine's files.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vrrp_fuzz::config::{self, ErrorKind, Target};
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
    let options = import::Options {
        config_id: "fuzz".to_owned(),
    };
    let Ok(imported) = import::import_str(&text, &main, &options) else {
        return;
    };
    let lines = text.lines().count().max(1);
    let read_here = |file: &Path, line: usize, what: &dyn std::fmt::Display| {
        assert!(
            file == main || file.starts_with(dir),
            "{what} about a file never read: {}",
            file.display()
        );
        if file == main {
            assert!(line <= lines, "{what} on line {line} of {lines}");
        }
    };
    for w in &imported.warnings {
        read_here(&w.file, w.line, w);
    }
    let mut written = Vec::new();
    imported
        .write_toml(&mut written)
        .expect("writing to memory");
    let written = String::from_utf8(written).expect("TOML is UTF-8");
    if let Err(e) = written.parse::<toml::Table>() {
        panic!("the importer wrote invalid TOML: {e}\n---\n{written}");
    }
    // What `import-keepalived` checks (the converted configuration, its
    // problems placed at keepalived.conf lines) is what `vrrpd check`
    // then reads from the TOML it wrote.
    let direct = config::resolve(
        imported.config.clone(),
        Target::OtherHost,
        &config::Failed::default(),
        true,
    );
    for p in direct.errors.iter().chain(&direct.warnings) {
        let (file, line) = imported.locate(&p.key);
        read_here(&file, line, &p.key);
    }
    let (via_toml, errors) = config::read(&written, Path::new("imported.toml"), Target::OtherHost);
    for e in &errors {
        assert!(
            !matches!(e.kind, ErrorKind::Syntax(_) | ErrorKind::UnknownKey(_)),
            "the importer wrote what vrrpd cannot read: {e}\n---\n{written}"
        );
    }
    assert_eq!(
        direct.errors.is_empty(),
        errors.is_empty(),
        "import-keepalived and vrrpd check disagree:\n{:#?}\n{errors:#?}\n---\n{written}",
        direct.errors
    );
    if errors.is_empty() {
        assert!(
            direct.effective == via_toml.effective,
            "the written TOML resolves to another configuration:\n{written}"
        );
    }
});
