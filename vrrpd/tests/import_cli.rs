//! `vrrpd import-keepalived`: the four keepalived vectors convert into
//! TOML that `vrrpd check` accepts; warnings go to stderr with file:line.

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
        "global_defs {\n  router_id r9\n  lvs_id old\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 7\n  smtp_alert\n}\n",
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
    assert!(
        stderr.contains(&format!("warning: {c}:3: `lvs_id` in global_defs")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("warning: {c}:8: `smtp_alert` in vrrp_instance")),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[instance.VI_1]"), "{stdout}");
    assert!(stdout.contains("router_id = \"r9\""), "{stdout}");
}

#[test]
fn output_that_fails_check_exits_2_and_a_broken_file_too() {
    let conf = tmp("badvrid.conf");
    std::fs::write(
        &conf,
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 0\n}\n",
    )
    .expect("write");
    let out = vrrpd(&["import-keepalived".as_ref(), conf.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key `instance.VI_1.virtual_router_id`"));

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
}
