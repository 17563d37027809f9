//! Proves `vrrpd run` end to end against a real ip_vs, side by side with
//! keepalived 2.2.7 on the same keepalived.conf: for every file of
//! `tests/data/ipvs-vm/`, keepalived (checker only) and then vrrpd (on the
//! file `vrrpd import-keepalived` made of it) must each program exactly the
//! table `NAME.expected` records, take a real server out of every service
//! of its virtual_server_group when its MISC_CHECK fails, put it back, and
//! leave the table empty on SIGTERM.
//!
//! Both write keepalived's `lvs_notify_fifo`, read by a script
//! (`lvs_notify_fifo_script`): vrrpd's RS and VS lines must be keepalived's,
//! each real and virtual server's in keepalived's order.
//!
//! These run inside the VM of `lvs/vm/run-vm-tests.sh`, whose init sets
//! `LVS_VM_TEST=1` and `VRRPD_VM_BIN` / `VRRPD_VM_DATA` (the binaries and
//! data are copied into it). Without `LVS_VM_TEST` (a host `cargo test`,
//! whose kernel may have no IPVS) each test returns at once; the script
//! fails unless every test printed its `LVS-KERNEL-TEST-RAN` marker.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Under TCG everything is slow: keepalived's checker takes a few seconds
/// to start and run its first checks.
const SETTLE: Duration = Duration::from_secs(60);
/// The file a test's MISC_CHECKs test for.
const FLAG: &str = "/tmp/rs-up";

fn in_vm(test: &str) -> bool {
    if std::env::var_os("LVS_VM_TEST").is_none() {
        eprintln!("{test}: skipped (needs the ip_vs VM: lvs/vm/run-vm-tests.sh)");
        return false;
    }
    true
}

fn data() -> PathBuf {
    std::env::var_os("VRRPD_VM_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ipvs-vm"),
        PathBuf::from,
    )
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

/// The expected tables of a file, by step.
fn expected(name: &str) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(data().join(format!("{name}.expected"))).expect("expected");
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(step) = line.strip_prefix("== ") {
            steps.push((step.to_owned(), Vec::new()));
        } else if !line.starts_with('#')
            && !line.trim().is_empty()
            && let Some((_, lines)) = steps.last_mut()
        {
            lines.push(line.trim().to_owned());
        }
    }
    steps
}

/// Waits until the table is `want`; panics with the last table seen and
/// the daemon's output.
fn wait_table(who: &str, step: &str, want: &[String], daemon: &mut Daemon) {
    let deadline = Instant::now() + SETTLE;
    let started = Instant::now();
    loop {
        let now = table();
        if now == want {
            println!(
                "{who}: {step}: {} lines after {:?}",
                now.len(),
                started.elapsed()
            );
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<&String> = want.iter().filter(|l| !now.contains(l)).collect();
            let extra: Vec<&String> = now.iter().filter(|l| !want.contains(l)).collect();
            panic!(
                "{who}: {step}: the table is not as expected after {SETTLE:?}\nmissing: {missing:#?}\nextra: {extra:#?}\n{who} output:\n{}",
                daemon.output()
            );
        }
        if let Some(status) = daemon.exited() {
            panic!("{who} exited with {status} at {step}:\n{}", daemon.output());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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

    /// SIGTERM, and the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
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

/// What the FIFO reader copied.
const FIFO_LINES: &str = "/tmp/lvs.fifo.lines";

/// The lines of each real or virtual server, in order: checks of different
/// servers run on their own timers, so only each one's order is promised.
fn by_object(lines: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in lines.lines() {
        let (object, state) = line.rsplit_once(' ').unwrap_or((line, ""));
        out.entry(object.to_owned())
            .or_default()
            .push(state.to_owned());
    }
    out
}

/// The steps of one file with one daemon: start (every check passes), a
/// real server's check fails, it passes again, SIGTERM. Returns the lines
/// its LVS notify FIFO's reader copied.
fn steps(who: &str, name: &str, mut daemon: Daemon) -> String {
    let steps = expected(name);
    let want = |step: &str| -> Vec<String> {
        let mut v = steps
            .iter()
            .find(|(s, _)| s == step)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| panic!("{name}.expected has no `== {step}`"));
        v.sort();
        v
    };
    wait_table(who, "start", &want("start"), &mut daemon);
    std::fs::remove_file(FLAG).expect("flag");
    wait_table(who, "rs-down", &want("rs-down"), &mut daemon);
    std::fs::write(FLAG, "").expect("flag");
    wait_table(who, "rs-up", &want("start"), &mut daemon);
    let status = daemon.stop();
    assert!(status.success(), "{who} exited with {status}");
    let left = table();
    assert!(left.is_empty(), "{who} left services behind: {left:#?}");
    // The reader sees the end of the FIFO once the daemon closed it.
    std::thread::sleep(Duration::from_millis(500));
    let lines = std::fs::read_to_string(FIFO_LINES).unwrap_or_default();
    println!("{who}: LVS notify FIFO:\n{lines}");
    lines
}

fn case(name: &str) {
    let conf = data().join(format!("{name}.conf"));
    let conf_s = conf.to_str().expect("path");
    std::fs::write(FLAG, "").expect("flag");
    run("ipvsadm", &["-C"]);
    let _ = std::fs::remove_file(FIFO_LINES);

    // keepalived 2.2.7, its checker process only.
    let pid = |what: &str| format!("/tmp/ka-{name}-{what}.pid");
    let (p, c, v) = (pid("main"), pid("checker"), pid("vrrp"));
    let keepalived = Daemon::spawn(
        Path::new("keepalived"),
        &[
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--check",
            "--use-file",
            conf_s,
            "--pid",
            &p,
            "--checkers_pid",
            &c,
            "--vrrp_pid",
            &v,
        ],
        PathBuf::from(format!("/tmp/ka-{name}.log")),
    );
    let ka_lines = steps("keepalived", name, keepalived);
    let _ = std::fs::remove_file(FIFO_LINES);

    // vrrpd on the converted file.
    let toml = format!("/tmp/{name}.toml");
    let bin = vrrpd_bin();
    let bin_s = bin.to_str().expect("path");
    let import = Command::new(bin_s)
        .args(["import-keepalived", conf_s, "-o", &toml])
        .output()
        .expect("import-keepalived");
    assert!(
        import.status.success(),
        "import-keepalived {name}: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let vrrpd = Daemon::spawn(
        &bin,
        &["run", "-c", &toml],
        PathBuf::from(format!("/tmp/vrrpd-{name}.log")),
    );
    let our_lines = steps("vrrpd", name, vrrpd);
    assert!(!ka_lines.is_empty(), "keepalived wrote no FIFO line");
    assert_eq!(
        by_object(&our_lines),
        by_object(&ka_lines),
        "LVS notify FIFO lines\nkeepalived:\n{ka_lines}\nvrrpd:\n{our_lines}"
    );
}

/// Printed only when a test got to its end in the VM; the script counts these.
fn ran(test: &str) {
    println!("LVS-KERNEL-TEST-RAN {test}");
}

#[test]
fn virtual_server_groups_of_ipv4_ranges_prefixes_and_marks() {
    if !in_vm("virtual_server_groups_of_ipv4_ranges_prefixes_and_marks") {
        return;
    }
    case("vsg-ranges");
    ran("virtual_server_groups_of_ipv4_ranges_prefixes_and_marks");
}

#[test]
fn virtual_server_groups_of_ipv6_ranges_and_portless_addresses() {
    if !in_vm("virtual_server_groups_of_ipv6_ranges_and_portless_addresses") {
        return;
    }
    case("vsg-ipv6");
    ran("virtual_server_groups_of_ipv6_ranges_and_portless_addresses");
}
