//! What the Debian package ships, from the built binary: `vrrpd --version`
//! names the commit it was built from; the conffile (packaging/vrrpd.toml)
//! and its commented-out example pass `vrrpd check`; `vrrpd
//! generate-assets` writes every page and completion that vrrpd/Cargo.toml
//! packages, and nothing it does not.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vrrpd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(args)
        .output()
        .expect("run vrrpd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("packaging");
    std::fs::create_dir_all(&dir).expect("tmp");
    dir.join(name)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let (ok, out, _) = vrrpd(&["--version"]);
    assert!(ok);
    let line = out.trim();
    let rest = line
        .strip_prefix(&format!("vrrpd {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("vrrpd --version: {line}"));
    // In a git checkout (CI's clone, a developer's tree) it is HEAD's.
    if git(&["ls-files", "--error-unmatch", "Cargo.toml"]).is_some() {
        let head = git(&["rev-parse", "--short=12", "HEAD"]).expect("HEAD");
        assert_eq!(rest, head);
    } else {
        assert!(
            rest == "unknown" || (rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_hexdigit())),
            "{rest}"
        );
    }
}

#[test]
fn the_conffile_and_its_example_pass_check() {
    let conffile = repo().join("packaging/vrrpd.toml");
    let (ok, _, err) = vrrpd(&["check", "-c", conffile.to_str().expect("path")]);
    assert!(ok, "{err}");
    // Settings are commented out with "#" and no space; prose with "# ".
    let text = std::fs::read_to_string(&conffile).expect("read");
    let example: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if !rest.starts_with([' ', '#', '!']) && !rest.is_empty() => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(example.contains("[instance.VI_1]"), "{example}");
    let path = tmp("uncommented.toml");
    std::fs::write(&path, &example).expect("write");
    let (ok, out, err) = vrrpd(&["check", "-c", path.to_str().expect("path")]);
    assert!(ok, "{err}");
    assert!(out.contains("virtual_router_id = 51"), "{out}");
}

#[test]
fn generate_assets_writes_what_the_package_lists() {
    let dir = tmp("assets");
    let _ = std::fs::remove_dir_all(&dir);
    let (ok, _, err) = vrrpd(&["generate-assets", dir.to_str().expect("path")]);
    assert!(ok, "{err}");
    let mut written = Vec::new();
    for sub in ["man", "completions"] {
        for entry in std::fs::read_dir(dir.join(sub)).expect("generated") {
            let path = entry.expect("entry").path();
            assert!(
                std::fs::metadata(&path).expect("stat").len() > 1000,
                "{}",
                path.display()
            );
            written.push(format!(
                "{sub}/{}",
                path.file_name().expect("name").to_string_lossy()
            ));
        }
    }
    written.sort();
    let manifest: toml::Table = toml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("Cargo.toml"),
    )
    .expect("Cargo.toml");
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .expect("assets");
    let mut packaged: Vec<String> = assets
        .iter()
        .filter_map(|a| a.as_array()?.first()?.as_str())
        .filter_map(|src| src.strip_prefix("../packaging/out/"))
        .filter(|src| src.starts_with("man/") || src.starts_with("completions/"))
        .map(str::to_owned)
        .collect();
    packaged.sort();
    assert_eq!(written, packaged);
}
