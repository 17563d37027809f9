//! `vrrpd check`: exit status 2 and every error on stderr as
//! `FILE:LINE:COL: key `...`: message`; effective config on success.

use std::path::PathBuf;
use std::process::{Command, Output};

fn write(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("config_cli");
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn check(path: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(["check", "-c"])
        .arg(path)
        .output()
        .expect("run vrrpd")
}

#[test]
fn errors_exit_2_and_name_file_line_and_key() {
    let path = write(
        "bad.toml",
        "[global]\nvrrp_version = 2\n\n\
         [instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 0\n\n\
         [instance.VI_2]\ninterface = \"eth0\"\nvirtual_router_id = 9\nadvert_int = \"150ms\"\n\
         authentication = { auth_pass = \"0123456789\" }\ntrack_script = [\"chk_none\"]\nbogus = 1\n\n\
         [instance.VI_3]\ninterface = \"eth0\"\nvirtual_router_id = 10\npriority = 300\n\
         [instance.VI_4]\ninterface = \"eth0\"\nvirtual_router_id = 11\nadvert_int = \"150ms\"\n\
         authentication = { auth_pass = \"0123456789\" }\ntrack_script = [\"chk_none\"]\n\
         [instance.VI_5]\ninterface = \"eth0\"\nvirtual_router_id = 11\n\
         [sync_group.G]\ngroup = [\"VI_4\", \"VI_404\"]\n",
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing printed on stdout on error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    for expected in [
        format!(
            "{p}:6:21: key `instance.VI_1.virtual_router_id`: virtual_router_id 0 is out of 1..=255"
        ),
        format!("{p}:14:1: key `instance.VI_2.bogus`: unknown field `bogus`"),
        format!("{p}:19:12: key `instance.VI_3.priority`: priority 300 is out of 1..=255"),
        format!(
            "{p}:23:1: key `instance.VI_4.advert_int`: advertisement interval 150ms cannot be carried by VRRPv2"
        ),
        format!("{p}:24:20: key `instance.VI_4.authentication.auth_pass`: auth_pass is 10 bytes"),
        format!("{p}:25:17: key `instance.VI_4.track_script[0]`: script `chk_none` is not defined"),
        format!(
            "{p}:28:1: key `instance.VI_5.virtual_router_id`: virtual_router_id 11 on eth0 (IPv4) is also used by instance `VI_4`"
        ),
        format!("{p}:30:18: key `sync_group.G.group[1]`: instance `VI_404` is not defined"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing\n  {expected}\nin\n{stderr}"
        );
    }
    assert!(stderr.contains("8 error(s); nothing started"), "{stderr}");
}

#[test]
fn missing_file_and_syntax_errors_exit_2() {
    let out = check(std::path::Path::new("/nonexistent/vrrpd.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/vrrpd.toml"));

    let path = write("syntax.toml", "[instance.VI_1]\ninterface = eth0\n");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2:13: key `instance.VI_1.interface`: TOML syntax",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn success_prints_the_effective_configuration() {
    let path = write(
        "ok.toml",
        "[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 1\n",
    );
    let out = check(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "vrrp_version = 2",
        "enable_script_security = true",
        "priority = 100",
        "advert_int = \"1s\"",
        "version = 2",
        "state = \"BACKUP\"",
        "nopreempt = false",
        "garp_master_delay = \"5s\"",
        "garp_master_repeat = 5",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "`{line}` missing in\n{stdout}"
        );
    }
}

#[test]
fn run_refuses_a_bad_configuration_with_status_2() {
    let path = write(
        "run_bad.toml",
        "[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 999\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .expect("run vrrpd");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key `instance.VI_1.virtual_router_id`"));
}

/// `vrrpd check` with PATH set to `path`.
fn check_with_path(config: &std::path::Path, path: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(["check", "-c"])
        .arg(config)
        .env("PATH", path)
        .output()
        .expect("run vrrpd")
}

#[test]
fn a_script_named_without_a_path_is_looked_up_in_path_and_checked() {
    if !nix::unistd::geteuid().is_root() {
        // The scripts must be root's for the secure case to pass.
        eprintln!("skipped: needs root");
        return;
    }
    let base = std::env::temp_dir().join(format!("vrrpd-config-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (open, safe) = (base.join("open"), base.join("safe"));
    for (dir, mode) in [(&base, 0o755), (&open, 0o777), (&safe, 0o755)] {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
    }
    for dir in [&open, &safe] {
        let script = dir.join("chk_vrrpd");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    let config = write(
        "path_script.toml",
        "[global]\nscript_user = \"root\"\n\n[script.chk]\ncommand = \"chk_vrrpd --fast\"\n",
    );
    // Found first in a directory anyone may write to: refused, as keepalived
    // refuses it with enable_script_security.
    let out = check_with_path(&config, &format!("{}:{}", open.display(), safe.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let expected = format!("its directory {} is writable by everyone", open.display());
    assert!(
        stderr.lines().any(|l| l.contains("path_script.toml:5:")
            && l.contains("key `script.chk.command`")
            && l.contains(&expected)),
        "{stderr}"
    );
    // Found in a safe directory: accepted; the effective configuration
    // keeps the name as written.
    let out = check_with_path(&config, &safe.display().to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"chk_vrrpd\""));
    // Nowhere in PATH: an error naming the PATH searched.
    let out = check_with_path(&config, "/nonexistent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("path_script.toml:5:")
            && stderr.contains("`chk_vrrpd` is not found in PATH (/nonexistent)"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&base);
}
