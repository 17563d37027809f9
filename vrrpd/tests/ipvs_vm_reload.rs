//! Proves against a real ip_vs that SIGHUP keeps a dead real server out of
//! IPVS: `vrrpd run` programs a virtual server with two MISC_CHECKed real
//! servers, one check fails and its server leaves the table, the daemon is
//! reloaded (keepalived re-adds every real server on reload until its
//! checks fail again), and the dead server stays out of the table, polled
//! all along, until its check passes; the live one never leaves; SIGTERM
//! empties the table.
//!
//! These run inside the VM of `lvs/vm/run-vm-tests.sh`, whose init sets
//! `LVS_VM_TEST=1` and `VRRPD_VM_BIN` (the binaries are copied into it).
//! Without `LVS_VM_TEST` (a host `cargo test`, whose kernel may have no
//! IPVS) each test returns at once; the script fails unless every test
//! printed its `LVS-KERNEL-TEST-RAN` marker.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Under TCG everything is slow: the daemon takes seconds to start and run
/// its first checks.
const SETTLE: Duration = Duration::from_secs(60);

fn in_vm(test: &str) -> bool {
    if std::env::var_os("LVS_VM_TEST").is_none() {
        eprintln!("{test}: skipped (needs the ip_vs VM: lvs/vm/run-vm-tests.sh)");
        return false;
    }
    true
}

fn vrrpd_bin() -> PathBuf {
    std::env::var_os("VRRPD_VM_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vrrpd")), PathBuf::from)
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ipvsadm -Sn`, lines sorted: the kernel lists services in hash order
/// and destinations in the order they were added, which differ between
/// two daemons programming the same table.
fn table() -> Vec<String> {
    let mut lines: Vec<String> = run("ipvsadm", &["-Sn"])
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(program: &Path, args: &[&str], log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        Daemon { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal");
    }

    /// SIGTERM, and the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not stop on SIGTERM:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Waits until `done` holds for the table; panics with the last table
/// seen and the daemon's output.
fn wait_until(step: &str, daemon: &mut Daemon, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + SETTLE;
    let started = Instant::now();
    loop {
        let now = table();
        if done(&now) {
            println!("vrrpd: {step} after {:?}", started.elapsed());
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "vrrpd: {step}: not reached after {SETTLE:?}; table: {now:#?}\noutput:\n{}",
            daemon.output()
        );
        if let Some(status) = daemon.exited() {
            panic!("vrrpd exited with {status} at {step}:\n{}", daemon.output());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Printed only when a test got to its end in the VM; the script counts these.
fn ran(test: &str) {
    println!("LVS-KERNEL-TEST-RAN {test}");
}

const RS_LIVE: &str = "192.0.2.11:80";
const RS_DEAD: &str = "192.0.2.12:80";

/// A virtual server with two real servers, each up while its flag file
/// exists (checked every second, failing at the first miss; a generous
/// timeout, since a busy host can stall the emulated machine for seconds).
fn reload_config(live_flag: &str, dead_flag: &str) -> String {
    let rs = |ip: &str, flag: &str| {
        format!(
            "[[virtual_server.real_server]]\nip = \"{ip}\"\nport = 80\n\
             misc_check = {{ misc_path = [\"/bin/sh\", \"-c\", \"test -e {flag}\"], misc_timeout = \"30s\", retry = 0 }}\n"
        )
    };
    format!(
        "# Written by vrrpd/tests/ipvs_vm_reload.rs.\n[global]\nscript_user = \"root\"\n\n\
         [[virtual_server]]\nip = \"192.0.2.100\"\nport = 80\nprotocol = \"TCP\"\n\
         delay_loop = \"1s\"\nlb_algo = \"rr\"\nlb_kind = \"NAT\"\n\n{}\n{}",
        rs("192.0.2.11", live_flag),
        rs("192.0.2.12", dead_flag)
    )
}

fn has(table: &[String], server: &str) -> bool {
    table.iter().any(|l| l.contains(&format!("-r {server} ")))
}

#[test]
fn sighup_keeps_a_dead_real_server_out_of_ipvs() {
    const TEST: &str = "sighup_keeps_a_dead_real_server_out_of_ipvs";
    if !in_vm(TEST) {
        return;
    }
    let (live_flag, dead_flag) = ("/tmp/rs-live-up", "/tmp/rs-dead-up");
    std::fs::write(live_flag, "").expect("flag");
    std::fs::write(dead_flag, "").expect("flag");
    run("ipvsadm", &["-C"]);
    let config = "/tmp/reload.toml";
    std::fs::write(config, reload_config(live_flag, dead_flag)).expect("config");
    let mut vrrpd = Daemon::spawn(
        &vrrpd_bin(),
        &["run", "-c", config],
        PathBuf::from("/tmp/vrrpd-reload.log"),
    );
    wait_until("both real servers in", &mut vrrpd, |t| {
        has(t, RS_LIVE) && has(t, RS_DEAD)
    });
    std::fs::remove_file(dead_flag).expect("flag");
    wait_until("the failed real server out", &mut vrrpd, |t| {
        has(t, RS_LIVE) && !has(t, RS_DEAD)
    });
    // Reload, and watch the table through the reload and several check
    // periods after it: the dead server is never re-added, the live one
    // never leaves.
    let reloaded_before = vrrpd.output().matches("configuration reloaded").count();
    vrrpd.signal(nix::sys::signal::Signal::SIGHUP);
    let watch = Duration::from_secs(8);
    let start = Instant::now();
    let mut polls = 0;
    let mut reloaded_at = None;
    while reloaded_at.is_none_or(|at: Instant| at.elapsed() < watch) {
        let t = table();
        polls += 1;
        assert!(
            !has(&t, RS_DEAD),
            "the dead real server is back after SIGHUP ({:?} after the signal): {t:#?}\n{}",
            start.elapsed(),
            vrrpd.output()
        );
        assert!(
            has(&t, RS_LIVE),
            "the live real server left after SIGHUP: {t:#?}\n{}",
            vrrpd.output()
        );
        if reloaded_at.is_none()
            && vrrpd.output().matches("configuration reloaded").count() > reloaded_before
        {
            reloaded_at = Some(Instant::now());
        }
        assert!(
            start.elapsed() < SETTLE,
            "no reload seen:\n{}",
            vrrpd.output()
        );
        if let Some(status) = vrrpd.exited() {
            panic!(
                "vrrpd exited with {status} after SIGHUP:\n{}",
                vrrpd.output()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "vrrpd: the dead real server stayed out for {watch:?} after the reload ({polls} polls)"
    );
    // Its check still runs after the reload: back when it passes.
    std::fs::write(dead_flag, "").expect("flag");
    wait_until("the recovered real server back", &mut vrrpd, |t| {
        has(t, RS_LIVE) && has(t, RS_DEAD)
    });
    let status = vrrpd.stop();
    assert!(status.success(), "vrrpd exited with {status}");
    let left = table();
    assert!(left.is_empty(), "vrrpd left services behind: {left:#?}");
    ran(TEST);
}
