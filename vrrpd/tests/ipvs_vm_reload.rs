//! Proves against a real ip_vs that SIGHUP keeps a dead real server out of
//! IPVS: `vrrpd run` programs a virtual server with two MISC_CHECKed real
//! servers, one check fails and its server leaves the table, the daemon is
//! reloaded (keepalived re-adds every real server on reload until its
//! checks fail again), and the dead server stays out of the table, polled
//! all along, until its check passes; the live one never leaves; SIGTERM
//! empties the table. Also that a virtual server's `export_routes` route
//! follows its quorum (gone below it, back with it, put back when deleted
//! by hand, gone when the daemon stops), and that `/metrics` shows the
//! kernel's counters moved by exactly the UDP traffic sent through the
//! service (its text is printed for the script to run `promtool check
//! metrics` on).
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

/// A test that fails leaves no daemon behind for the next one.
impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
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

/// `ip route show table 198` by iproute2 (copied into the VM as
/// `/sbin/ip`: busybox's `ip` does not print the protocol).
fn exported() -> String {
    let out = Command::new("/sbin/ip")
        .args(["-4", "route", "show", "table", "198"])
        .output()
        .expect("/sbin/ip");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("FIB table does not exist") {
        return String::new();
    }
    assert!(out.status.success(), "ip route show table 198: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const EXPORTED: &str = "192.0.2.100 dev lo proto 248 scope link metric 10";

/// Waits until `done` holds for table 198.
fn wait_route(step: &str, daemon: &mut Daemon, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + SETTLE;
    let started = Instant::now();
    loop {
        let now = exported();
        if done(&now) {
            println!("vrrpd: {step} after {:?}", started.elapsed());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "vrrpd: {step}: not reached after {SETTLE:?}; table 198: {now:?}\noutput:\n{}",
            daemon.output()
        );
        if let Some(status) = daemon.exited() {
            panic!("vrrpd exited with {status} at {step}:\n{}", daemon.output());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The body of `GET /metrics` from the daemon's listener.
fn scrape() -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect("127.0.0.1:9100").expect("metrics listener");
    s.set_read_timeout(Some(SETTLE)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: vm\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample `name{labels}` (labels as written), 0 when
/// absent; and the sum over every sample of `name` whose labels contain
/// `part`.
fn sample(body: &str, name: &str, part: &str) -> u64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(part))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn exported_route_follows_quorum_and_metrics_follow_traffic() {
    const TEST: &str = "exported_route_follows_quorum_and_metrics_follow_traffic";
    if !in_vm(TEST) {
        return;
    }
    // The real servers are on a dummy link: what IPVS forwards to them is
    // dropped there, after being counted.
    run("ip", &["link", "add", "d0", "type", "dummy"]);
    run("ip", &["link", "set", "d0", "up"]);
    run("ip", &["addr", "add", "192.0.2.1/24", "dev", "d0"]);
    run("ipvsadm", &["-C"]);
    let (a, b) = ("/tmp/export-a-up", "/tmp/export-b-up");
    std::fs::write(a, "").expect("flag");
    std::fs::write(b, "").expect("flag");
    let rs = |ip: &str, flag: &str| {
        format!(
            "[[virtual_server.real_server]]\nip = \"{ip}\"\nport = 53\n\
             misc_check = {{ misc_path = [\"/bin/sh\", \"-c\", \"test -e {flag}\"], misc_timeout = \"30s\", retry = 0 }}\n"
        )
    };
    let config = format!(
        "# Written by vrrpd/tests/ipvs_vm_reload.rs.\n[global]\nscript_user = \"root\"\n\
         [global.http]\nlisten = \"127.0.0.1:9100\"\n\n\
         [[virtual_server]]\nip = \"192.0.2.100\"\nport = 53\nprotocol = \"UDP\"\n\
         delay_loop = \"1s\"\nlb_algo = \"rr\"\nlb_kind = \"NAT\"\nquorum = 2\n\
         export_routes = {{ table = 198, protocol = 248, metric = 10 }}\n\n{}\n{}",
        rs("192.0.2.11", a),
        rs("192.0.2.12", b)
    );
    let path = "/tmp/export.toml";
    std::fs::write(path, config).expect("config");
    let mut vrrpd = Daemon::spawn(
        &vrrpd_bin(),
        &["run", "-c", path],
        PathBuf::from("/tmp/vrrpd-export.log"),
    );
    wait_until("both real servers in", &mut vrrpd, |t| {
        has(t, "192.0.2.11:53") && has(t, "192.0.2.12:53")
    });
    wait_route("the route exported with quorum", &mut vrrpd, |r| {
        r.trim() == EXPORTED
    });

    // Traffic: 20 datagrams of 100 bytes from one socket (one IPVS
    // connection), each 128 bytes with its UDP and IP headers.
    let before = scrape();
    let vip = "service=\"udp/192.0.2.100:53\"";
    let socket = std::net::UdpSocket::bind("192.0.2.1:0").expect("udp socket");
    for _ in 0..20 {
        socket
            .send_to(&[0x5a; 100], "192.0.2.100:53")
            .expect("send");
    }
    // The kernel folds its per-CPU counters into what it reports every
    // 2 s (the rate estimator's timer): wait for the packets to show.
    let deadline = Instant::now() + SETTLE;
    let after = loop {
        let now = scrape();
        let shown = sample(&now, "lvs_vip_in_packets_total", vip)
            - sample(&before, "lvs_vip_in_packets_total", vip);
        if shown >= 20 || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let moved = |name: &str| sample(&after, name, vip) - sample(&before, name, vip);
    let by_service = [
        moved("lvs_vip_connections_total"),
        moved("lvs_vip_in_packets_total"),
        moved("lvs_vip_in_bytes_total"),
        moved("lvs_vip_out_packets_total"),
    ];
    let by_servers = [
        moved("lvs_rs_connections_total"),
        moved("lvs_rs_in_packets_total"),
        moved("lvs_rs_in_bytes_total"),
        moved("lvs_rs_out_packets_total"),
    ];
    println!("vrrpd: counters moved by service {by_service:?}, by real servers {by_servers:?}");
    assert_eq!(by_service, [1, 20, 20 * 128, 0], "{after}");
    assert_eq!(by_servers, by_service, "{after}");
    println!("VRRPD-METRICS-BEGIN\n{after}VRRPD-METRICS-END");

    // One of two real servers fails: below quorum 2, the route goes.
    std::fs::remove_file(b).expect("flag");
    wait_route("the route withdrawn below quorum", &mut vrrpd, |r| {
        r.trim().is_empty()
    });
    std::fs::write(b, "").expect("flag");
    wait_route("the route back with quorum", &mut vrrpd, |r| {
        r.trim() == EXPORTED
    });
    // Deleted by hand: put back.
    run(
        "ip",
        &[
            "route",
            "del",
            "192.0.2.100/32",
            "dev",
            "lo",
            "table",
            "198",
        ],
    );
    wait_route("the route deleted by hand restored", &mut vrrpd, |r| {
        r.trim() == EXPORTED
    });
    let status = vrrpd.stop();
    assert!(status.success(), "vrrpd exited with {status}");
    let left = exported();
    assert!(left.trim().is_empty(), "vrrpd left its route: {left:?}");
    let left = table();
    assert!(left.is_empty(), "vrrpd left services behind: {left:#?}");
    run("ip", &["link", "del", "d0"]);
    ran(TEST);
}
