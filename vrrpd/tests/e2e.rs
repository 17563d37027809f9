//! The real `vrrpd` binary in network namespaces, on the scenarios keepalived
//! users run: the nginx pair (a failing check moves the VIP, nopreempt keeps
//! it after recovery), dual master, a sync group following a failed member,
//! notify scripts with keepalived's arguments in order, scripts run as
//! their user from the file PATH led to when checked, SIGHUP with an
//! unchanged and with a broken file, SIGTERM handing over within the skew
//! time, and a mixed cluster of vrrpd and keepalived built with
//! `import-keepalived`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Daemon, has_address, serial, test_dir};
use nix::sys::signal::Signal;
use vrrp_net::testnet::{Keepalived, Lan};

const T: Duration = Duration::from_secs(15);

/// The watching thread: (kernel arrival time, priority) of each advert.
type AdvertWatch = vrrp_net::testnet::NsTask<Result<Vec<(Duration, u8)>>>;

/// VRID 20 advertisements seen in `router`'s namespace: kernel arrival time
/// and priority, until `stop`.
fn watch_adverts(router: &vrrp_net::testnet::Router, stop: Arc<AtomicBool>) -> Result<AdvertWatch> {
    use vrrp_net::socket::{Family, RECV_BUFFER_LEN, SocketConfig, VrrpSocket};
    Ok(router.spawn(move || async move {
        let socket = VrrpSocket::open(&SocketConfig::new("eth0", Family::Ipv4))?;
        let mut buf = vec![0u8; RECV_BUFFER_LEN];
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Ok(packet) =
                tokio::time::timeout(Duration::from_millis(50), socket.recv(&mut buf)).await
            else {
                continue;
            };
            let packet = packet?;
            if packet.payload.get(1) == Some(&20) {
                let at = packet
                    .received
                    .and_then(|r| r.duration_since(std::time::UNIX_EPOCH).ok())
                    .unwrap_or_default();
                seen.push((at, packet.payload.get(2).copied().unwrap_or(0)));
            }
        }
        Ok(seen)
    }))
}

fn example(name: &str) -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).with_context(|| path.display().to_string())
}

/// The nginx example with its curl check replaced by a file test the test
/// controls, checked every 200 ms.
fn nginx(node: &str, flag: &Path) -> Result<String> {
    let text = example(&format!("nginx_pair_{node}.toml"))?;
    let command = text
        .lines()
        .find(|l| l.starts_with("command = "))
        .context("check command")?;
    Ok(text
        .replace(
            command,
            &format!(
                "command = [\"/usr/bin/test\", \"-e\", \"{}\"]",
                flag.display()
            ),
        )
        .replace("interval = \"2s\"", "interval = \"200ms\"")
        .replace("timeout = \"1s\"", "timeout = \"1s\"\n")
        .replace("fall = 2", "fall = 1")
        .replace("rise = 2", "rise = 1")
        .replace(
            "notify_master = [\"logger\", \"-t\", \"vrrpd\", \"nginx VIP is here\"]",
            "",
        ))
}

#[test]
fn nginx_pair_failing_check_moves_the_vip_and_nopreempt_keeps_it() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("nginx")?;
    let (fa, fb) = (dir.join("a-up"), dir.join("b-up"));
    std::fs::write(&fa, "")?;
    std::fs::write(&fb, "")?;
    // A first: it is master before B starts (two nodes started together
    // race for the first Master_Down_Interval, and A has nopreempt).
    let mut a = Daemon::start(ra, &dir, "a", &nginx("a", &fa)?)?;
    a.wait_state("VI_WEB", "master", T)?;
    let mut b = Daemon::start(rb, &dir, "b", &nginx("b", &fb)?)?;
    b.wait_state("VI_WEB", "backup", T)?;
    std::thread::sleep(Duration::from_secs(1));
    ensure!(
        has_address(ra, "192.0.2.80")? && !has_address(rb, "192.0.2.80")?,
        "VIP on A"
    );

    // nginx dies on A: A's priority drops below B's, B takes over.
    std::fs::remove_file(&fa)?;
    b.wait_state("VI_WEB", "master", T)?;
    a.wait_state("VI_WEB", "backup", T)?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        has_address(rb, "192.0.2.80")? && !has_address(ra, "192.0.2.80")?,
        "VIP moved to B"
    );

    // nginx comes back on A: nopreempt, so the VIP stays on B.
    std::fs::write(&fa, "")?;
    std::thread::sleep(Duration::from_secs(6));
    ensure!(
        a.changes_of("VI_WEB").last().map(String::as_str) == Some("backup"),
        "A stayed backup: {:?}",
        a.changes
    );
    ensure!(has_address(rb, "192.0.2.80")?, "VIP still on B");
    a.stop()?;
    b.stop()?;
    Ok(())
}

#[test]
fn dual_master_either_node_dies_the_other_holds_both() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("dual")?;
    let mut a = Daemon::start(ra, &dir, "a", &example("dual_master_a.toml")?)?;
    let mut b = Daemon::start(rb, &dir, "b", &example("dual_master_b.toml")?)?;
    a.wait_state("VI_A", "master", T)?;
    b.wait_state("VI_B", "master", T)?;
    a.wait_state("VI_B", "backup", T)?;
    b.wait_state("VI_A", "backup", T)?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        has_address(ra, "192.0.2.61")? && has_address(rb, "192.0.2.62")?,
        "each holds its own"
    );
    ensure!(
        !has_address(ra, "192.0.2.62")? && !has_address(rb, "192.0.2.61")?,
        "and only its own"
    );
    b.kill()?;
    rb.set_link(false)?;
    a.wait_state("VI_B", "master", T)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        has_address(ra, "192.0.2.61")? && has_address(ra, "192.0.2.62")?,
        "A holds both"
    );
    rb.set_link(true)?;
    let mut b = Daemon::start(rb, &dir, "b2", &example("dual_master_b.toml")?)?;
    b.wait_state("VI_B", "master", T)?;
    a.wait_state("VI_B", "backup", T)?;
    // Now A dies.
    a.kill()?;
    ra.set_link(false)?;
    b.wait_state("VI_A", "master", T)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        has_address(rb, "192.0.2.61")? && has_address(rb, "192.0.2.62")?,
        "B holds both"
    );
    b.stop()?;
    Ok(())
}

fn sync_config(prio: u8, flag: &Path) -> String {
    format!(
        "[global]\nvrrp_version = 3\n\n\
         [instance.VI_OUT]\ninterface = \"eth0\"\nvirtual_router_id = 10\npriority = {prio}\nadvert_int = \"100ms\"\n\
         virtual_ipaddress = [\"192.0.2.10/24\"]\n\n\
         [instance.VI_IN]\ninterface = \"eth0\"\nvirtual_router_id = 11\npriority = {prio}\nadvert_int = \"100ms\"\n\
         virtual_ipaddress = [\"192.0.2.11/24\"]\ntrack_file = [{{ path = \"{}\", weight = 0 }}]\n\n\
         [sync_group.G]\ngroup = [\"VI_OUT\", \"VI_IN\"]\n",
        flag.display()
    )
}

#[test]
fn sync_group_follows_a_failed_member() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("sync")?;
    let (fa, fb) = (dir.join("a"), dir.join("b"));
    std::fs::write(&fa, "0\n")?;
    std::fs::write(&fb, "0\n")?;
    let mut a = Daemon::start(ra, &dir, "a", &sync_config(200, &fa))?;
    let mut b = Daemon::start(rb, &dir, "b", &sync_config(100, &fb))?;
    a.wait_state("VI_OUT", "master", T)?;
    a.wait_state("VI_IN", "master", T)?;
    b.wait_state("VI_OUT", "backup", T)?;
    // Only VI_IN's tracked file fails; VI_OUT follows its group.
    std::fs::write(&fa, "1\n")?;
    a.wait_state("VI_IN", "fault", T)?;
    a.wait_state("VI_OUT", "fault", T)?;
    b.wait_state("VI_OUT", "master", T)?;
    b.wait_state("VI_IN", "master", T)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        has_address(rb, "192.0.2.10")? && has_address(rb, "192.0.2.11")?,
        "both VIPs on B"
    );
    ensure!(
        !has_address(ra, "192.0.2.10")?,
        "A gave up the member that had no fault of its own"
    );
    std::fs::write(&fa, "0\n")?;
    a.wait_state("VI_OUT", "master", T)?;
    a.wait_state("VI_IN", "master", T)?;
    a.stop()?;
    b.stop()?;
    Ok(())
}

#[test]
fn notify_scripts_get_keepalived_arguments_in_order() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(1)?;
    let r = lan.router(1)?;
    let dir = test_dir("notify")?;
    let out = dir.join("notify.log");
    let line = |what: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"echo {what} \\\"$@\\\" >> {}\", \"notify\"]",
            out.display()
        )
    };
    let config = format!(
        "[global]\nvrrp_version = 3\nscript_user = \"root\"\n\n[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 7\npriority = 200\n\
         advert_int = \"100ms\"\nvirtual_ipaddress = [\"192.0.2.7/24\"]\n\
         notify_backup = {}\nnotify_master = {}\nnotify_stop = {}\nnotify = {}\n",
        line("backup"),
        line("master"),
        line("stop"),
        line("notify")
    );
    let mut d = Daemon::start(r, &dir, "n", &config)?;
    d.wait_state("VI_1", "master", T)?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(d.stop()?.success(), "clean exit");
    let got = std::fs::read_to_string(&out)?;
    let lines: Vec<&str> = got.lines().collect();
    ensure!(
        lines
            == [
                "backup",
                "notify INSTANCE VI_1 BACKUP 200",
                "master",
                "notify INSTANCE VI_1 MASTER 200",
                "stop",
                "notify INSTANCE VI_1 STOP 200"
            ],
        "notify log:\n{got}"
    );
    Ok(())
}

#[test]
fn scripts_run_as_their_user_from_the_file_path_search_found() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(1)?;
    let r = lan.router(1)?;
    let dir = test_dir("script-user")?;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let out = dir.join("who.log");
    // The unprivileged user may append to the log, nothing else.
    std::fs::write(&out, "")?;
    for (path, mode) in [(&dir, 0o755), (&bin, 0o755), (&out, 0o666)] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    }
    let script = bin.join("vrrpd_who");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$(id -u) $0 $*\" >> {}\n", out.display()),
    )?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let config = "[global]\nvrrp_version = 3\nscript_user = \"nobody\"\n\n[instance.VI_1]\ninterface = \"eth0\"\n\
                  virtual_router_id = 9\npriority = 200\nadvert_int = \"100ms\"\nvirtual_ipaddress = [\"192.0.2.9/24\"]\n\
                  notify_master = \"vrrpd_who master\"\n\
                  notify_stop = { command = \"vrrpd_who stop\", user = \"root\" }\n";
    let path = format!("{}:{}", bin.display(), std::env::var("PATH")?);
    let mut d = Daemon::start_with(r, &dir, "who", config, &[], &[("PATH", &path)])?;
    d.wait_state("VI_1", "master", T)?;
    ensure!(d.stop()?.success(), "clean exit");
    let got = std::fs::read_to_string(&out)?;
    let nobody = nix::unistd::User::from_name("nobody")?
        .context("user nobody")?
        .uid;
    let script = script.display();
    ensure!(
        got.lines().collect::<Vec<_>>()
            == [
                format!("{nobody} {script} master"),
                format!("0 {script} stop"),
            ],
        "who.log:\n{got}"
    );
    Ok(())
}

fn pair_config(prio: u8, interval: &str) -> String {
    format!(
        "[global]\nvrrp_version = 3\n\n[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 20\npriority = {prio}\n\
         advert_int = \"{interval}\"\nvirtual_ipaddress = [\"192.0.2.20/24\"]\n"
    )
}

#[test]
fn sighup_keeps_unchanged_instances_and_survives_a_broken_file() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("hup")?;
    let mut a = Daemon::start(ra, &dir, "a", &pair_config(200, "100ms"))?;
    let mut b = Daemon::start(rb, &dir, "b", &pair_config(100, "100ms"))?;
    a.wait_state("VI_1", "master", T)?;
    b.wait_state("VI_1", "backup", T)?;
    std::thread::sleep(Duration::from_millis(500));

    // Same file: nothing may move, on either node, nor on the wire: the
    // backup's namespace watches the master's advertisements throughout.
    let before_a = a.changes_of("VI_1").len();
    let before_b = b.changes_of("VI_1").len();
    let stop = Arc::new(AtomicBool::new(false));
    let wire = watch_adverts(rb, stop.clone())?;
    std::thread::sleep(Duration::from_millis(300));
    let hup_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    a.signal(Signal::SIGHUP)?;
    let reloaded = a.wait_message("configuration reloaded", T)?;
    ensure!(
        reloaded["fields"]["unchanged"]
            .as_str()
            .is_some_and(|s| s.contains("VI_1")),
        "{reloaded}"
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let seen = wire.join().map_err(|e| anyhow::anyhow!("{e}"))??;
    // The largest silence on the wire and when it began, for every message:
    // it tells a paused sender from a deaf receiver.
    let (gap_at, max_gap) = seen
        .windows(2)
        .map(|w| (w[0].0, w[1].0 - w[0].0))
        .max_by_key(|(_, gap)| *gap)
        .unwrap_or_default();
    let wire_note = format!(
        "{} adverts on the wire, largest gap {max_gap:?} starting {} ms {} the SIGHUP",
        seen.len(),
        gap_at.abs_diff(hup_at).as_millis(),
        if gap_at < hup_at { "before" } else { "after" }
    );
    ensure!(
        a.changes_of("VI_1").len() == before_a,
        "master did not flap: {:?}; {wire_note}",
        a.changes
    );
    ensure!(
        b.changes_of("VI_1").len() == before_b,
        "backup saw no takeover: {:?}; {wire_note}",
        b.changes
    );
    ensure!(has_address(ra, "192.0.2.20")?, "VIP stayed");
    ensure!(
        seen.len() >= 10,
        "adverts seen across the reload: {wire_note}"
    );
    ensure!(
        seen.iter().all(|(_, prio)| *prio == 200),
        "only the master, never priority 0: {seen:?}"
    );
    ensure!(
        max_gap < Duration::from_millis(150),
        "no pause in the 100 ms adverts: {wire_note}"
    );

    // A broken file: reported, the old configuration keeps running.
    std::fs::write(&a.config, "[instance.VI_1]\nvirtual_router_id = 300\n")?;
    a.signal(Signal::SIGHUP)?;
    a.wait_message("reload refused", T)?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        a.changes_of("VI_1").len() == before_a,
        "still master: {:?}",
        a.changes
    );
    ensure!(has_address(ra, "192.0.2.20")?);

    // A changed priority is applied.
    std::fs::write(&a.config, pair_config(50, "100ms"))?;
    a.signal(Signal::SIGHUP)?;
    a.wait_message("configuration reloaded", T)?;
    b.wait_state("VI_1", "master", T)?;
    a.stop()?;
    b.stop()?;
    Ok(())
}

#[test]
fn sigterm_hands_over_within_the_skew_time() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("term")?;
    let mut a = Daemon::start(ra, &dir, "a", &pair_config(200, "1s"))?;
    let mut b = Daemon::start(rb, &dir, "b", &pair_config(100, "1s"))?;
    a.wait_state("VI_1", "master", T)?;
    b.wait_state("VI_1", "backup", T)?;
    std::thread::sleep(Duration::from_millis(1200));
    let sent = Instant::now();
    let status = a.stop()?;
    ensure!(status.success(), "clean exit");
    let took = b.wait_state("VI_1", "master", T)? - sent;
    // Skew_Time of priority 100 at 1 s: 609 ms; the margin covers process
    // start-up of the signal and log delivery, not the protocol.
    let skew = Duration::from_nanos(156 * 1_000_000_000 / 256);
    ensure!(
        took <= skew + Duration::from_millis(100),
        "handover took {took:?}, skew {skew:?}"
    );
    ensure!(
        took >= skew - Duration::from_millis(5),
        "not before the skew time: {took:?}"
    );
    ensure!(
        !has_address(ra, "192.0.2.20")?,
        "the stopped node released its VIP"
    );
    b.stop()?;
    Ok(())
}

#[test]
fn mixed_cluster_with_keepalived_from_import() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("mixed")?;
    let conf = |prio: u8| {
        format!(
            "! node config\nglobal_defs {{\n  router_id node{prio}\n  vrrp_version 2\n}}\n\
             vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 33\n  priority {prio}\n  \
             advert_int 1\n  authentication {{\n    auth_type PASS\n    auth_pass s3cr3t!x\n  }}\n  \
             virtual_ipaddress {{\n    192.0.2.33/24\n  }}\n}}\n"
        )
    };
    // Node A runs keepalived on its own file; node B runs vrrpd on the
    // same kind of file, converted.
    let ka_conf = dir.join("keepalived-b.conf");
    std::fs::write(&ka_conf, conf(100))?;
    let converted = std::process::Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .arg("import-keepalived")
        .arg(&ka_conf)
        .output()?;
    ensure!(
        converted.status.success(),
        "import: {}",
        String::from_utf8_lossy(&converted.stderr)
    );
    let toml = String::from_utf8(converted.stdout)?;

    let ka = Keepalived::start(ra.ns(), &conf(200))?;
    ka.wait_for_log("Entering MASTER STATE", T)?;
    let mut ours = Daemon::start(rb, &dir, "b", &toml)?;
    ours.wait_state("VI_1", "backup", T)?;
    std::thread::sleep(Duration::from_secs(4));
    ensure!(
        ours.changes_of("VI_1") == ["backup"],
        "ours respects keepalived's master: {:?}",
        ours.changes
    );
    ka.kill()?;
    ours.wait_state("VI_1", "master", T)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(has_address(rb, "192.0.2.33")?);

    // keepalived back with a lower priority stays backup behind ours.
    let ka = Keepalived::start(ra.ns(), &conf(50))?;
    ka.wait_for_log("Entering BACKUP STATE", T)?;
    std::thread::sleep(Duration::from_secs(5));
    ensure!(
        !ka.log().contains("Entering MASTER STATE"),
        "keepalived respects ours:\n{}",
        ka.log()
    );
    ours.stop()?;
    ka.wait_for_log("Entering MASTER STATE", T)?;
    ka.kill()?;
    Ok(())
}
