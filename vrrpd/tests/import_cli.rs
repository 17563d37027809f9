//! `vrrpd import-keepalived`: every keepalived.conf Debian ships imports
//! with exit status 0 on a host that has none of its scripts, into TOML
//! `vrrpd check` reads; the keepalived vectors convert without warnings;
//! warnings, errors and the `--report` table name the keepalived.conf file
//! and line; files keepalived would run harmfully are refused (exit 2).

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("import_cli");
    std::fs::create_dir_all(&dir).expect("tmp");
    dir.join(name)
}

fn vrrpd(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(args)
        .output()
        .expect("run vrrpd")
}

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

#[test]
fn every_debian_sample_but_the_ah_one_imports_with_status_0_and_reads_back() {
    let mut samples: Vec<PathBuf> = std::fs::read_dir(SAMPLES)
        .expect("keepalived's samples (apt-get install keepalived)")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("keepalived.conf."))
        })
        .collect();
    samples.sort();
    assert!(samples.len() >= 25, "{samples:?}");
    for sample in samples {
        let name = sample
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let out_file = tmp(&format!("{name}.toml"));
        let out = vrrpd(&[
            "import-keepalived".as_ref(),
            sample.as_os_str(),
            "-o".as_ref(),
            out_file.as_os_str(),
            "--report".as_ref(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if name == "keepalived.conf.SSL_GET" {
            // Its instances use auth_type AH, which RFC 3768 removed.
            assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
            assert!(stderr.contains("auth_type AH"), "{name}: {stderr}");
            continue;
        }
        assert!(out.status.success(), "{name}: {stderr}");
        // Every warning names the sample (or an include) and a line.
        for line in stderr.lines().filter(|l| l.starts_with("warning: ")) {
            assert!(
                line.starts_with(&format!("warning: {}:", sample.display())),
                "{name}: {line}"
            );
        }
        assert!(stderr.contains("keyword "), "{name}: no report\n{stderr}");
        // The TOML reads back; what fails on this host is the scripts and
        // users it names, nothing else.
        let checked = vrrpd(&["check".as_ref(), "-c".as_ref(), out_file.as_os_str()]);
        if !checked.status.success() {
            let errors = String::from_utf8_lossy(&checked.stderr);
            for line in errors.lines().filter(|l| l.contains(": key `")) {
                assert!(
                    line.contains("does not exist") || line.contains("unknown user"),
                    "{name}: {line}"
                );
            }
        }
    }
}

#[test]
fn vectors_convert_and_pass_check() {
    for name in [
        "keepalived_v2_noauth.conf",
        "keepalived_v2_pass.conf",
        "keepalived_v3_v4.conf",
        "keepalived_v3_v6.conf",
    ] {
        let out_file = tmp(&name.replace(".conf", ".toml"));
        let out = vrrpd(&[
            "import-keepalived".as_ref(),
            data(name).as_os_str(),
            "-o".as_ref(),
            out_file.as_os_str(),
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{name}: unexpected warnings {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let checked = vrrpd(&["check".as_ref(), "-c".as_ref(), out_file.as_os_str()]);
        assert!(
            checked.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let effective = String::from_utf8_lossy(&checked.stdout);
        assert!(effective.contains("virtual_router_id = 42"), "{effective}");
        assert!(effective.contains("priority = 150"), "{effective}");
        if name.contains("pass") {
            assert!(effective.contains("auth_pass = \"s3cr3t\""), "{effective}");
        }
        if name.contains("v3") {
            assert!(effective.contains("version = 3"), "{effective}");
        }
    }
}

#[test]
fn warnings_go_to_stderr_with_file_and_line_and_toml_to_stdout() {
    let conf = tmp("warn.conf");
    std::fs::write(
        &conf,
        "global_defs {\n  router_id r9\n  lvs_id old\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 7\n  higher_prio_send_advert\n  notify_master /nonexistent/master.sh\n}\n",
    )
    .expect("write");
    let out = vrrpd(&["import-keepalived".as_ref(), conf.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let c = conf.display();
    for expected in [
        format!("warning: {c}:3: `lvs_id`"),
        format!("warning: {c}:8: `higher_prio_send_advert` in vrrp_instance"),
        format!(
            "warning: {c}:9: key `instance.VI_1.notify_master`: script /nonexistent/master.sh does not exist (on this host"
        ),
    ] {
        assert!(stderr.contains(&expected), "{expected}\nnot in\n{stderr}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[instance.VI_1]"), "{stdout}");
    assert!(stdout.contains("router_id = \"r9\""), "{stdout}");
}

#[test]
fn the_report_counts_every_keyword() {
    let conf = tmp("report.conf");
    std::fs::write(
        &conf,
        "global_defs {\n  vrrp_strict\n  smtp_server 192.0.2.25\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 7\n  authentication {\n    auth_type PASS\n    auth_pass 1111\n  }\n  virtual_ipaddress {\n    192.0.2.7\n  }\n}\n",
    )
    .expect("write");
    let out = vrrpd(&[
        "import-keepalived".as_ref(),
        conf.as_os_str(),
        "--report".as_ref(),
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let row = |kw: &str| -> Vec<usize> {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("{kw} ")))
            .unwrap_or_else(|| panic!("no row {kw} in\n{stderr}"));
        line.split_whitespace()
            .rev()
            .take(3)
            .map(|n| n.parse().expect("count"))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    };
    assert_eq!(row("global_defs vrrp_strict"), [1, 0, 0]);
    assert_eq!(row("global_defs smtp_server"), [0, 0, 1]);
    assert_eq!(row("vrrp_instance authentication"), [0, 1, 0]);
    assert_eq!(row("vrrp_instance virtual_router_id"), [1, 0, 0]);
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let conf = tmp("cond.conf");
    std::fs::write(
        &conf,
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 7\n@lb1  priority 150\n@lb2  priority 50\n  virtual_ipaddress {\n    192.0.2.7\n  }\n}\n",
    )
    .expect("write");
    for (id, prio) in [("lb1", "150"), ("lb2", "50"), ("other", "100")] {
        let out = vrrpd(&[
            "import-keepalived".as_ref(),
            conf.as_os_str(),
            "--config-id".as_ref(),
            id.as_ref(),
        ]);
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        if prio == "100" {
            assert!(!stdout.contains("priority"), "{stdout}");
        } else {
            assert!(stdout.contains(&format!("priority = {prio}")), "{stdout}");
        }
    }
}

#[test]
fn refused_files_exit_2_with_their_line() {
    let conf = tmp("badvrid.conf");
    std::fs::write(
        &conf,
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 0\n}\n",
    )
    .expect("write");
    let out = vrrpd(&["import-keepalived".as_ref(), conf.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3: (VI_1) virtual_router_id", conf.display())),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let conf = tmp("unbalanced.conf");
    std::fs::write(&conf, "vrrp_instance VI_1 {\n  interface eth0\n").expect("write");
    let out = vrrpd(&["import-keepalived".as_ref(), conf.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:1: block opened here is never closed",
            conf.display()
        )),
        "{stderr}"
    );

    // A duplicate VRID is found after the conversion, at its line.
    let conf = tmp("dupvrid.conf");
    std::fs::write(
        &conf,
        "vrrp_instance A {\n  interface eth0\n  virtual_router_id 5\n}\nvrrp_instance B {\n  interface eth0\n  virtual_router_id 5\n}\n",
    )
    .expect("write");
    let out = vrrpd(&["import-keepalived".as_ref(), conf.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:7: key `instance.B.virtual_router_id`",
            conf.display()
        )),
        "{stderr}"
    );
}
