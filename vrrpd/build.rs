//! Embeds the commit the binary is built from, for `vrrpd --version`
//! (`VRRPD_GIT_COMMIT`), and its date, for the manual pages' footers
//! (`VRRPD_COMMIT_DATE`, YYYY-MM-DD).
//!
//! The commit, in order: the `VRRPD_GIT_COMMIT` environment variable (a
//! packager building from a tarball can say it), the git checkout this
//! crate is in, the `.cargo_vcs_info.json` that `cargo package` writes,
//! else "unknown". The date: the commit's in git, else
//! `SOURCE_DATE_EPOCH` (reproducible builds), else empty.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=VRRPD_GIT_COMMIT");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
    let dir = Path::new(&dir);
    let commit = std::env::var("VRRPD_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.trim().to_owned())
        .or_else(|| from_git(dir))
        .or_else(|| from_vcs_info(dir))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=VRRPD_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let date = git(dir, &["log", "-1", "--format=%cs", "HEAD"])
        .filter(|_| commit != "unknown")
        .or_else(|| {
            let epoch: i64 = std::env::var("SOURCE_DATE_EPOCH")
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some(civil_date(epoch))
        })
        .unwrap_or_default();
    println!("cargo:rustc-env=VRRPD_COMMIT_DATE={date}");
    // Without any rerun-if-changed, cargo would run this on every change
    // of any file of the crate.
    println!("cargo:rerun-if-changed=build.rs");
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The commit of HEAD, when this crate's files are tracked by the
/// repository git finds (not some unrelated repository a tarball was
/// unpacked into).
fn from_git(dir: &Path) -> Option<String> {
    git(dir, &["ls-files", "--error-unmatch", "Cargo.toml"])?;
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    // Run again when HEAD moves: HEAD itself (a checkout), the branch it
    // points to (a commit), and packed-refs (a gc). Worktrees keep HEAD and
    // the refs in different directories: ask git for each path.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        // A path that does not exist would make cargo run this every time.
        if let Some(path) = git(
            dir,
            &["rev-parse", "--path-format=absolute", "--git-path", &name],
        )
        .filter(|p| Path::new(p).exists())
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(commit)
}

/// `cargo package` records the commit in `.cargo_vcs_info.json`.
fn from_vcs_info(dir: &Path) -> Option<String> {
    let path = dir.join(".cargo_vcs_info.json");
    if !path.exists() {
        return None;
    }
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    let sha = &rest[start..start + len];
    (sha.len() >= 12 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then(|| sha[..12].to_owned())
}

/// YYYY-MM-DD of a Unix time (UTC), by the days-from-civil inverse of
/// Howard Hinnant's date algorithms.
fn civil_date(epoch: i64) -> String {
    let z = epoch.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
