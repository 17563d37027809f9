//! The real `vrrpd` binary in network namespaces, under load and reloads:
//! a burst of 200 transitions (a tracked interface flapped 100 times by one
//! `ip -batch`) produces 200 notify calls in the order of the transitions;
//! SIGHUP while a tracked file holds an instance in FAULT keeps it there
//! (unchanged, changed and newly added instances alike) while the peer
//! stays master; 2,000 idle HTTP connections leave /metrics answering, the
//! daemon's descriptors bounded and VRRP undisturbed.

mod common;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Daemon, has_address, serial, test_dir};
use nix::sys::signal::Signal;
use vrrp_net::testnet::Lan;

const T: Duration = Duration::from_secs(15);

#[test]
fn a_burst_of_200_transitions_makes_200_notify_calls_in_order() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(1)?;
    let r = lan.router(1)?;
    // A second interface of the router's own to track (a veth pair).
    r.ns()
        .ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])?;
    r.ns().ip(&["link", "set", "d1", "up"])?;
    r.ns().ip(&["link", "set", "d0", "up"])?;
    let dir = test_dir("burst")?;
    let out = dir.join("notify.log");
    let config = format!(
        "[global]\nvrrp_version = 3\nscript_user = \"root\"\n\n[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 8\npriority = 100\n\
         advert_int = \"1s\"\nvirtual_ipaddress = [\"192.0.2.8/24\"]\ntrack_interface = [\"d0\"]\n\
         notify = [\"/bin/sh\", \"-c\", \"echo \\\"$3\\\" >> {}\", \"notify\"]\n",
        out.display()
    );
    let mut d = Daemon::start(r, &dir, "burst", &config)?;
    d.wait_state("VI_1", "backup", T)?;
    // 100 flaps of the tracked interface in one process: 200 transitions
    // (FAULT, BACKUP) within milliseconds, far faster than scripts run.
    let batch: String = (0..100)
        .map(|_| "link set d0 down\nlink set d0 up\n")
        .collect();
    let flapped = Instant::now();
    r.ns().ip_batch(&batch)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.changes_of("VI_1").len() < 201 {
        ensure!(
            Instant::now() < deadline,
            "{} transitions seen",
            d.changes_of("VI_1").len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let burst = flapped.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    d.signal(Signal::SIGTERM)?;
    ensure!(d.wait_exit(T)?.success(), "clean exit");
    let states: Vec<String> = d
        .changes_of("VI_1")
        .iter()
        .map(|s| match s.as_str() {
            "init" => "STOP".to_owned(),
            other => other.to_uppercase(),
        })
        .collect();
    ensure!(
        states.len() >= 202,
        "start, 200 flaps and the stop: {}",
        states.len()
    );
    let got: Vec<String> = std::fs::read_to_string(&out)?
        .lines()
        .map(str::to_owned)
        .collect();
    ensure!(
        got == states,
        "the notify calls follow the {} transitions (burst took {burst:?}); got {} calls; first differences: {:?}",
        states.len(),
        got.len(),
        got.iter()
            .zip(&states)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(3)
            .collect::<Vec<_>>()
    );
    Ok(())
}

fn maint_config(prio: u8, file: &std::path::Path, extra: &str) -> String {
    format!(
        "[global]\nvrrp_version = 3\n\n[track_file.maint]\nfile = \"{}\"\nweight = 0\n\n\
         [instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 9\npriority = {prio}\n\
         advert_int = \"100ms\"\nvirtual_ipaddress = [\"192.0.2.9/24\"]\ntrack_file = [\"maint\"]\n{extra}",
        file.display()
    )
}

#[test]
fn sighup_while_a_tracked_file_is_down_keeps_the_instance_down() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("maint")?;
    let file = dir.join("maint");
    // Maintenance: the higher-priority node is held in FAULT by its file.
    std::fs::write(&file, "1\n")?;
    let mut a = Daemon::start(ra, &dir, "a", &maint_config(200, &file, ""))?;
    let mut b = Daemon::start(rb, &dir, "b", &maint_config(100, &dir.join("b-never"), ""))?;
    a.wait_state("VI_1", "fault", T)?;
    b.wait_state("VI_1", "master", T)?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        a.changes_of("VI_1") == ["fault"],
        "a started in FAULT, never BACKUP: {:?}",
        a.changes_of("VI_1")
    );
    // Reloads: the same file; then a changed instance (another priority)
    // and a new instance tracking the same file.
    a.signal(Signal::SIGHUP)?;
    a.wait_message("configuration reloaded", T)?;
    let changed = maint_config(
        210,
        &file,
        "\n[instance.VI_2]\ninterface = \"eth0\"\nvirtual_router_id = 10\npriority = 250\n\
         advert_int = \"100ms\"\nvirtual_ipaddress = [\"192.0.2.10/24\"]\ntrack_file = [\"maint\"]\n",
    );
    std::fs::write(&a.config, changed)?;
    a.signal(Signal::SIGHUP)?;
    let reloaded = a.wait_message("configuration reloaded", T)?;
    let fields = &reloaded["fields"];
    ensure!(
        fields["updated"]
            .as_str()
            .unwrap_or_default()
            .contains("VI_1")
            && fields["added"]
                .as_str()
                .unwrap_or_default()
                .contains("VI_2"),
        "{reloaded}"
    );
    std::thread::sleep(Duration::from_millis(800));
    ensure!(
        a.changes_of("VI_1") == ["fault"] && a.changes_of("VI_2") == ["fault"],
        "held in FAULT through the reloads: VI_1 {:?}, VI_2 {:?}",
        a.changes_of("VI_1"),
        a.changes_of("VI_2")
    );
    ensure!(
        b.changes_of("VI_1").last().map(String::as_str) == Some("master")
            && !has_address(ra, "192.0.2.9")?
            && has_address(rb, "192.0.2.9")?,
        "the peer stayed master"
    );
    // Maintenance over: a leaves FAULT and preempts.
    std::fs::write(&file, "0\n")?;
    a.wait_state("VI_1", "master", T)?;
    a.wait_state("VI_2", "master", T)?;
    b.wait_state("VI_1", "backup", T)?;
    a.stop()?;
    b.stop()?;
    Ok(())
}

#[test]
fn two_thousand_idle_http_connections_leave_metrics_answering_and_vrrp_undisturbed() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("http-flood")?;
    let config = |prio: u8| {
        format!(
            "[global]\nvrrp_version = 3\n[global.http]\nlisten = \"127.0.0.1:9190\"\n\n\
             [instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 11\npriority = {prio}\n\
             advert_int = \"100ms\"\nvirtual_ipaddress = [\"192.0.2.11/24\"]\n"
        )
    };
    let mut a = Daemon::start(ra, &dir, "a", &config(200))?;
    let mut b = Daemon::start(rb, &dir, "b", &config(100))?;
    a.wait_state("VI_1", "master", T)?;
    b.wait_state("VI_1", "backup", T)?;
    std::thread::sleep(Duration::from_millis(500));
    let (before_a, before_b) = (a.changes_of("VI_1").len(), b.changes_of("VI_1").len());
    let pid = a.pid();
    let fds = move || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let fds_before = fds();

    let flood = ra.spawn(move || async move {
        healthcheck::raise_open_files_limit().context("raising our open files limit")?;
        let mut idle = Vec::with_capacity(2000);
        for _ in 0..2000 {
            idle.push(std::net::TcpStream::connect("127.0.0.1:9190").context("connect")?);
        }
        // Then a scrape, while all 2,000 are open and silent.
        let asked = Instant::now();
        let mut s = std::net::TcpStream::connect("127.0.0.1:9190")?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: vrrpd\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        let took = asked.elapsed();
        Ok::<_, anyhow::Error>((idle, body, took))
    });
    // The daemon's descriptors while the flood is on.
    let mut peak = 0;
    while !flood.is_finished() {
        peak = peak.max(fds());
        std::thread::sleep(Duration::from_millis(5));
    }
    let (idle, body, took) = flood.join().map_err(|e| anyhow::anyhow!("{e}"))??;
    ensure!(
        body.starts_with("HTTP/1.1 200") && body.contains("vrrp_instance_state"),
        "/metrics answered: {}",
        body.lines().next().unwrap_or_default()
    );
    ensure!(took < Duration::from_secs(1), "/metrics took {took:?}");
    ensure!(
        peak < fds_before + 128,
        "descriptors bounded: {fds_before} before, peak {peak}"
    );
    ensure!(
        body.contains("vrrpd_http_connections_evicted") || body.contains("vrrpd_http_connections"),
        "counters exported"
    );
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        a.changes_of("VI_1").len() == before_a && b.changes_of("VI_1").len() == before_b,
        "no transition on either node: a {:?}, b {:?}",
        a.changes_of("VI_1"),
        b.changes_of("VI_1")
    );
    ensure!(has_address(ra, "192.0.2.11")?, "the master kept its VIP");
    drop(idle);
    a.stop()?;
    b.stop()?;
    Ok(())
}
