//! The real `vrrpd` binary in network namespaces, supervised: a second copy
//! is refused (exit 3) with the master's VIP untouched while daemons under
//! other names run beside it; a part that dies (the VRRP driver thread by
//! an injected panic, the HTTP task by an injected panic, the check
//! runner) releases the VIP and exits non-zero, with a priority-0 handover
//! when the driver still lives; and start-up failures (IPVS unavailable, an
//! HTTP address that cannot be bound) happen before any VIP is added.

mod common;

use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Daemon, has_address, serial, test_dir, wait_address};
use vrrp_net::testnet::{Lan, Router};

const T: Duration = Duration::from_secs(15);
const VIP: &str = "192.0.2.30";

fn config(prio: u8, extra: &str) -> String {
    format!(
        "[global]\nvrrp_version = 3\n{extra}\n[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 30\npriority = {prio}\n\
         advert_int = \"100ms\"\nvirtual_ipaddress = [\"{VIP}/24\"]\n"
    )
}

/// Polls `router`'s addresses until stopped: how often the VIP was seen
/// and missed.
struct VipWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
    missed: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl VipWatch {
    fn start(router: &Router) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let missed = Arc::new(AtomicUsize::new(0));
        let ns = router.ns().name().to_owned();
        let (s, se, mi) = (stop.clone(), seen.clone(), missed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let out = std::process::Command::new("ip")
                    .args(["-n", &ns, "-o", "addr", "show", "dev", "eth0"])
                    .output();
                let present = out.is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .any(|w| w.split('/').next() == Some(VIP))
                });
                if present { &se } else { &mi }.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        VipWatch {
            stop,
            seen,
            missed,
            thread,
        }
    }

    /// (times seen, times missed).
    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        (
            self.seen.load(Ordering::Relaxed),
            self.missed.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn a_second_copy_is_refused_and_the_vip_stays() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(1)?;
    let r = lan.router(1)?;
    let dir = test_dir("second")?;
    let text = config(200, "");
    let mut a = Daemon::start(r, &dir, "a", &text)?;
    a.wait_state("VI_1", "master", T)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(has_address(r, VIP)?, "the master holds the VIP");
    let before = a.changes_of("VI_1").len();
    let watch = VipWatch::start(r);
    // The same configuration again, as an operator would start it.
    let mut again = Daemon::start(r, &dir, "again", &text)?;
    let status = again.wait_exit(T)?;
    // And a while after it left.
    std::thread::sleep(Duration::from_millis(500));
    let (seen, missed) = watch.finish();
    ensure!(
        status.code() == Some(3),
        "exit status 3 for a second copy, got {status}; log:\n{}",
        again.log_text()
    );
    ensure!(
        again.log_text().contains("refusing to start a second copy")
            && again.log_text().contains(&a.pid().to_string()),
        "the message names the running daemon:\n{}",
        again.log_text()
    );
    ensure!(
        missed == 0 && seen > 20,
        "the VIP stayed: seen {seen}, missed {missed}"
    );
    ensure!(
        !again.log_text().contains("state change"),
        "the second copy started nothing"
    );
    ensure!(
        a.changes_of("VI_1").len() == before,
        "the master never moved"
    );

    // A daemon under another name with a disjoint instance runs beside it.
    let other = "[global]\nvrrp_version = 3\n[instance.VI_2]\ninterface = \"eth0\"\nvirtual_router_id = 31\npriority = 200\n\
                 advert_int = \"100ms\"\nvirtual_ipaddress = [\"192.0.2.31/24\"]\n";
    let mut b = Daemon::start_with(
        r,
        &dir,
        "other",
        other,
        &["--name", "vrrpd-test-other"],
        &[],
    )?;
    b.wait_state("VI_2", "master", T)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        has_address(r, "192.0.2.31")? && has_address(r, VIP)?,
        "both VIPs"
    );
    ensure!(b.stop()?.success());
    ensure!(has_address(r, VIP)?, "stopping one leaves the other's VIP");
    ensure!(a.stop()?.success());
    ensure!(!has_address(r, VIP)?);
    Ok(())
}

/// A master `a` and a backup `b`; `a` gets `envs`. Returns both, with the
/// VIP on `a`.
fn pair(lan: &Lan, dir: &Path, envs: &[(&str, &str)], extra: &str) -> Result<(Daemon, Daemon)> {
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let mut a = Daemon::start_with(ra, dir, "a", &config(200, extra), &[], envs)?;
    let mut b = Daemon::start(rb, dir, "b", &config(100, ""))?;
    a.wait_state("VI_1", "master", T)?;
    b.wait_state("VI_1", "backup", T)?;
    wait_address(ra, VIP, Duration::from_secs(2)).context("a holds the VIP")?;
    Ok((a, b))
}

/// Waits for `a` to notice a failure (its error saying `needle`) and exit;
/// then `b` must take over, and `a`'s VIP be gone. Returns a's exit status
/// and how long b took after a's log line about the failure.
fn dies_and_releases(
    lan: &Lan,
    a: &mut Daemon,
    b: &mut Daemon,
    needle: &str,
) -> Result<(ExitStatus, Duration)> {
    let line = a.wait_message("stopping after a failure", T)?;
    let failed = Instant::now();
    let error = line["fields"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(error.contains(needle), "{error:?} does not say {needle:?}");
    let status = a.wait_exit(T)?;
    let took = b
        .wait_state("VI_1", "master", T)?
        .saturating_duration_since(failed);
    ensure!(
        !has_address(lan.router(1)?, VIP)?,
        "the VIP was released; log:\n{}",
        a.log_text()
    );
    ensure!(!status.success(), "a failure exits non-zero, got {status}");
    Ok((status, took))
}

#[test]
fn an_injected_driver_panic_releases_the_vip_and_exits_non_zero() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let dir = test_dir("driver-panic")?;
    let (mut a, mut b) = pair(&lan, &dir, &[("VRRP_NET_DEBUG_PANIC_AFTER_MS", "2000")], "")?;
    let (status, _) = dies_and_releases(&lan, &mut a, &mut b, "ended unexpectedly")?;
    let log = a.log_text();
    ensure!(
        log.contains("injected driver panic") && log.contains("removing the addresses it recorded"),
        "{status}; log:\n{log}"
    );
    b.stop()?;
    Ok(())
}

#[test]
fn a_dead_kernel_worker_stops_the_driver_releases_the_vip_and_exits_non_zero() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let dir = test_dir("kernel-panic")?;
    let (mut a, mut b) = pair(
        &lan,
        &dir,
        &[("VRRP_NET_DEBUG_KERNEL_PANIC_AFTER_MS", "2000")],
        "",
    )?;
    let (status, _) = dies_and_releases(&lan, &mut a, &mut b, "kernel worker thread ended")?;
    let log = a.log_text();
    ensure!(
        log.contains("injected kernel worker panic")
            && log.contains("removing the addresses it recorded"),
        "{status}; log:\n{log}"
    );
    b.stop()?;
    Ok(())
}

#[test]
fn a_dead_http_task_or_runner_hands_over_with_priority_zero_and_exits_non_zero() -> Result<()> {
    let _serial = serial();
    // Skew_Time of priority 100 at 100 ms is 61 ms, Master_Down_Interval
    // 361 ms: a takeover within 250 ms of the failure was started by a
    // priority-0 advertisement.
    let bound = Duration::from_millis(250);
    for (fault, needle) in [
        ("http-panic:1500", "HTTP listener task died"),
        ("runner-stop:1500", "health-check runner"),
    ] {
        let lan = Lan::new(2)?;
        let dir = test_dir(&format!("fault-{}", fault.split(':').next().unwrap_or("x")))?;
        let extra = "[global.http]\nlisten = \"127.0.0.1:9190\"\n";
        let (mut a, mut b) = pair(&lan, &dir, &[("VRRPD_DEBUG_FAULT", fault)], extra)?;
        let (status, took) =
            dies_and_releases(&lan, &mut a, &mut b, needle).with_context(|| fault.to_owned())?;
        ensure!(
            took < bound,
            "{fault}: takeover {took:?} after the failure ({status})"
        );
        b.stop()?;
    }
    Ok(())
}

#[test]
fn ipvs_unavailable_fails_start_up_before_any_vip() -> Result<()> {
    let _serial = serial();
    // The premise: this kernel cannot give IPVS (no module to load).
    let probe = std::process::Command::new("modprobe")
        .args(["-n", "ip_vs"])
        .output()?;
    if probe.status.success() || Path::new("/proc/net/ip_vs").exists() {
        eprintln!("this kernel has ip_vs: the VM tests cover IPVS; skipped here");
        return Ok(());
    }
    let lan = Lan::new(1)?;
    let r = lan.router(1)?;
    let dir = test_dir("no-ipvs")?;
    // An owner (priority 255) would add its VIP at once.
    let text = format!(
        "{}\n[[virtual_server]]\nip = \"{VIP}\"\nport = 80\nprotocol = \"TCP\"\n\
         [[virtual_server.real_server]]\nip = \"192.0.2.1\"\nport = 80\n",
        config(255, "")
    );
    let watch = VipWatch::start(r);
    let mut d = Daemon::start(r, &dir, "d", &text)?;
    let status = d.wait_exit(T)?;
    let (seen, missed) = watch.finish();
    let log = d.log_text();
    ensure!(status.code() == Some(1), "{status}; log:\n{log}");
    ensure!(
        log.contains("IPVS is not available") && log.contains("ip_vs"),
        "says why and that it tried to load ip_vs:\n{log}"
    );
    ensure!(seen == 0 && missed > 0, "no VIP ever: seen {seen}");
    ensure!(
        !log.contains("state change"),
        "the driver never started:\n{log}"
    );
    Ok(())
}

#[test]
fn an_http_bind_failure_fails_start_up_before_any_vip() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(1)?;
    let r = lan.router(1)?;
    let dir = test_dir("no-bind")?;
    // An address this namespace does not have.
    let text = config(255, "[global.http]\nlisten = \"192.0.2.250:9090\"\n");
    let watch = VipWatch::start(r);
    let mut d = Daemon::start(r, &dir, "d", &text)?;
    let status = d.wait_exit(T)?;
    let (seen, _) = watch.finish();
    let log = d.log_text();
    ensure!(status.code() == Some(1), "{status}; log:\n{log}");
    ensure!(log.contains("HTTP listener on 192.0.2.250:9090"), "{log}");
    ensure!(seen == 0, "no VIP ever");
    Ok(())
}
