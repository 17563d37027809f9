//! Every examples/*.toml passes `vrrpd check`, has a comment header, uses
//! only documentation addresses, and its printed effective configuration
//! passes `vrrpd check` again. Programs the examples call by name that
//! this host lacks (mysqladmin) are stood in for by stubs in PATH, since
//! `vrrpd check` looks bare names up in PATH as keepalived does.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_validates() {
    let files = examples();
    assert!(
        files.len() >= 11,
        "expected the documented examples, found {files:?}"
    );
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config_examples");
    std::fs::create_dir_all(&out_dir).expect("tmp");
    let stubs = out_dir.join("bin");
    std::fs::create_dir_all(&stubs).expect("stubs");
    for program in ["mysqladmin", "curl", "logger", "pidof"] {
        let stub = stubs.join(program);
        std::fs::write(&stub, "#!/bin/sh\nexit 0\n").expect("stub");
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    // The host's own programs first; stubs only for what it lacks.
    let path = format!(
        "{}:{}",
        std::env::var("PATH").unwrap_or_default(),
        stubs.display()
    );
    for file in files {
        let out = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
            .args(["check", "-c"])
            .arg(&file)
            .env("PATH", &path)
            .output()
            .expect("run vrrpd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} fails check:\n{stderr}",
            file.display()
        );
        let effective = out_dir.join(file.file_name().expect("name"));
        std::fs::write(&effective, &out.stdout).expect("write");
        let again = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
            .args(["check", "-c"])
            .arg(&effective)
            .env("PATH", &path)
            .output()
            .expect("run vrrpd");
        assert!(
            again.status.success(),
            "effective config of {} fails check:\n{}",
            file.display(),
            String::from_utf8_lossy(&again.stderr)
        );
    }
}

#[test]
fn examples_have_a_header_and_documentation_addresses_only() {
    for file in examples() {
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(
            text.starts_with("# "),
            "{} has no comment header",
            file.display()
        );
        for word in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':')) {
            if let Ok(ip) = word.parse::<std::net::IpAddr>() {
                let ok = match ip {
                    std::net::IpAddr::V4(v4) => {
                        let o = v4.octets();
                        matches!(
                            (o[0], o[1], o[2]),
                            (192, 0, 2) | (198, 51, 100) | (203, 0, 113)
                        ) || v4.is_loopback()
                    }
                    // ff02::12 is VRRP's group, mentioned in comments.
                    std::net::IpAddr::V6(v6) => {
                        (v6.segments()[0] == 0x2001 && v6.segments()[1] == 0xdb8)
                            || v6.is_multicast()
                    }
                };
                assert!(
                    ok,
                    "{} uses {ip}, not a documentation address",
                    file.display()
                );
            }
        }
    }
}
