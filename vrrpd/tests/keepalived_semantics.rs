//! keepalived 2.2.7's rules that decide where a VIP lives, on the wire with
//! keepalived as the peer: vrrpd imported from the same keepalived.conf
//! sends no authentication in strict mode and keeps one master with it;
//! an IPv6 instance without `version` (and with `authentication`) speaks
//! VRRPv3; `state MASTER` below 255 starts as backup and never takes over
//! from an equal master with a higher address; a weight-0 script holds
//! its instance in Fault until its first result. Each rule is checked on
//! keepalived itself first, as the reference, then on vrrpd.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Daemon, has_address, serial, test_dir};
use vrrp_net::testnet::{Keepalived, Lan, NsTask, Router};

const T: Duration = Duration::from_secs(20);

/// An advertisement seen on the wire: when, from whom, and its bytes.
type Seen = (Instant, IpAddr, Vec<u8>);

/// Every VRRP packet of `vrid` router 3 (a bystander) sees, until `stop`.
fn watch(
    router: &Router,
    family: vrrp_net::socket::Family,
    vrid: u8,
    stop: Arc<AtomicBool>,
) -> NsTask<Result<Vec<Seen>>> {
    use vrrp_net::socket::{RECV_BUFFER_LEN, SocketConfig, VrrpSocket};
    router.spawn(move || async move {
        let socket = VrrpSocket::open(&SocketConfig::new("eth0", family))?;
        let mut buf = vec![0u8; RECV_BUFFER_LEN];
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Ok(packet) =
                tokio::time::timeout(Duration::from_millis(50), socket.recv(&mut buf)).await
            else {
                continue;
            };
            let packet = packet?;
            if packet.payload.get(1) == Some(&vrid) {
                seen.push((Instant::now(), packet.src, packet.payload.to_vec()));
            }
        }
        Ok(seen)
    })
}

/// `vrrpd import-keepalived --config-id ID` of `conf`: the TOML.
fn import(dir: &std::path::Path, conf: &str, id: &str) -> Result<String> {
    let path = dir.join(format!("{id}.conf"));
    std::fs::write(&path, conf)?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(["import-keepalived", "--config-id", id])
        .arg(&path)
        .output()?;
    ensure!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// keepalived's config for `node`: the file with its `@node` lines (the
/// test helper cannot pass keepalived `-i`).
fn for_node(conf: &str, node: &str) -> String {
    conf.lines()
        .filter_map(|l| match l.trim_start().strip_prefix('@') {
            Some(rest) => {
                let (id, text) = rest.split_once(' ')?;
                (id == node).then(|| text.to_owned())
            }
            None => Some(l.to_owned()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const STRICT: &str = "! The stock CentOS keepalived.conf, VRRP part\n\
global_defs {\n   router_id LVS_DEVEL\n   vrrp_skip_check_adv_addr\n   vrrp_strict\n   vrrp_garp_interval 0\n   vrrp_gna_interval 0\n}\n\
vrrp_instance VI_1 {\n@node1    state MASTER\n@node2    state BACKUP\n    interface eth0\n    virtual_router_id 51\n\
@node1    priority 100\n@node2    priority 90\n    advert_int 1\n    authentication {\n        auth_type PASS\n        auth_pass 1111\n    }\n\
    virtual_ipaddress {\n        192.0.2.16\n    }\n}\n";

#[test]
fn strict_mode_sends_no_authentication_and_keeps_one_master_with_keepalived() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(3)?;
    let (r1, r2, r3) = (lan.router(1)?, lan.router(2)?, lan.router(3)?);
    let dir = test_dir("strict")?;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = watch(r3, vrrp_net::socket::Family::Ipv4, 51, stop.clone());

    let ka = Keepalived::start(r1.ns(), &for_node(STRICT, "node1"))?;
    ka.wait_for_log("Entering MASTER STATE", T)?;
    let toml = import(&dir, STRICT, "node2")?;
    ensure!(
        toml.contains("vrrp_strict = true") && !toml.contains("auth_pass"),
        "{toml}"
    );
    let mut ours = Daemon::start(r2, &dir, "b", &toml)?;
    ours.wait_state("VI_1", "backup", T)?;
    // keepalived master, vrrpd backup: no split brain over 3 adverts.
    std::thread::sleep(Duration::from_secs(3));
    ensure!(ours.changes_of("VI_1") == ["backup"], "{:?}", ours.changes);
    ensure!(has_address(r1, "192.0.2.16")? && !has_address(r2, "192.0.2.16")?);
    // keepalived stops: vrrpd takes over and keepalived, back, preempts it.
    ka.stop(Duration::from_secs(10))?;
    ours.wait_state("VI_1", "master", T)?;
    std::thread::sleep(Duration::from_secs(2));
    let ka = Keepalived::start(r1.ns(), &for_node(STRICT, "node1"))?;
    ka.wait_for_log("Entering MASTER STATE", T)?;
    ours.wait_state("VI_1", "backup", T)?;
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let seen = seen.join()??;
    ours.stop()?;
    let from = |ip: std::net::Ipv4Addr| seen.iter().filter(move |s| s.1 == IpAddr::V4(ip));
    ensure!(
        from(r2.ipv4()).count() >= 2,
        "vrrpd advertised as master: {seen:?}"
    );
    ensure!(
        from(r1.ipv4()).count() >= 4,
        "keepalived advertised: {seen:?}"
    );
    // RFC 3768 5.3.6: the Auth Type octet. Strict mode sends none (0),
    // from either implementation.
    for (_, src, bytes) in &seen {
        ensure!(bytes[0] >> 4 == 2, "VRRPv2 from {src}");
        ensure!(bytes[4] == 0, "authentication type {} from {src}", bytes[4]);
    }
    drop(ka);
    Ok(())
}

const V6: &str = "# IPv6 without `version`, with authentication (ignored)\n\
vrrp_instance VI6 {\n    interface eth0\n    virtual_router_id 66\n@node1    priority 150\n@node2    priority 100\n    advert_int 0.1\n\
    authentication {\n        auth_type PASS\n        auth_pass secret\n    }\n    virtual_ipaddress {\n        2001:db8::66/64\n    }\n}\n";

#[test]
fn ipv6_without_version_and_with_authentication_speaks_vrrpv3_with_keepalived() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(3)?;
    let (r1, r2, r3) = (lan.router(1)?, lan.router(2)?, lan.router(3)?);
    let dir = test_dir("v6")?;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = watch(r3, vrrp_net::socket::Family::Ipv6, 66, stop.clone());
    let ka = Keepalived::start(r1.ns(), &for_node(V6, "node1"))?;
    ka.wait_for_log("Entering MASTER STATE", T)?;
    let toml = import(&dir, V6, "node2")?;
    let mut ours = Daemon::start(r2, &dir, "b", &toml)?;
    ours.wait_state("VI6", "backup", T)?;
    std::thread::sleep(Duration::from_secs(1));
    ensure!(ours.changes_of("VI6") == ["backup"], "{:?}", ours.changes);
    ka.kill()?;
    ours.wait_state("VI6", "master", T)?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(has_address(r2, "2001:db8::66")?);
    stop.store(true, Ordering::Relaxed);
    let seen = seen.join()??;
    ours.stop()?;
    let ours_seen: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.1 == IpAddr::V6(r2.link_local()))
        .collect();
    let theirs: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.1 == IpAddr::V6(r1.link_local()))
        .collect();
    ensure!(ours_seen.len() >= 3 && theirs.len() >= 3, "{seen:?}");
    for (_, src, bytes) in &seen {
        // RFC 5798 5.2.1: version 3, and no authentication field.
        ensure!(bytes[0] >> 4 == 3, "version {} from {src}", bytes[0] >> 4);
        ensure!(bytes.len() == 8 + 16, "{} bytes from {src}", bytes.len());
    }
    Ok(())
}

const START: &str = "vrrp_script chk {\n    script /bin/true\n    interval 1\n    weight -10\n}\n\
vrrp_instance VI_1 {\n@node1    state MASTER\n@node2    state BACKUP\n    interface eth0\n    virtual_router_id 73\n    priority 100\n\
    advert_int 0.1\n    version 3\n    virtual_ipaddress {\n        192.0.2.73\n    }\n    track_script {\n        chk\n    }\n}\n";

/// Node 2 (keepalived) is master; node 1 starts with `state MASTER` and
/// the same priority from a lower address: the adverts node 1 sends and
/// whether it ever holds the address, over 2 s.
fn state_master_joins(on_node1: &str) -> Result<(usize, bool)> {
    let lan = Lan::new(3)?;
    let (r1, r2, r3) = (lan.router(1)?, lan.router(2)?, lan.router(3)?);
    let dir = test_dir(&format!("start-{on_node1}"))?;
    let peer = Keepalived::start(r2.ns(), &for_node(START, "node2"))?;
    peer.wait_for_log("Entering MASTER STATE", T)?;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = watch(r3, vrrp_net::socket::Family::Ipv4, 73, stop.clone());
    let monitor = std::process::Command::new("ip")
        .args(["-n", r1.ns().name(), "-o", "monitor", "address"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut node1_ka = None;
    let mut node1_ours = None;
    if on_node1 == "keepalived" {
        node1_ka = Some(Keepalived::start(r1.ns(), &for_node(START, "node1"))?);
    } else {
        let toml = import(&dir, START, "node1")?;
        node1_ours = Some(Daemon::start(r1, &dir, "a", &toml)?);
    }
    let started = Instant::now();
    if let Some(ka) = &node1_ka {
        ka.wait_for_log("Entering BACKUP STATE", T)?;
    }
    if let Some(d) = node1_ours.as_mut() {
        d.wait_state("VI_1", "backup", T)?;
    }
    std::thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
    stop.store(true, Ordering::Relaxed);
    let seen = seen.join()??;
    let mut monitor = monitor;
    let _ = monitor.kill();
    let out = monitor.wait_with_output()?;
    let took = String::from_utf8_lossy(&out.stdout).contains("192.0.2.73");
    ensure!(has_address(r2, "192.0.2.73")?, "node 2 kept the address");
    if let Some(mut d) = node1_ours {
        ensure!(d.changes_of("VI_1") == ["backup"], "{:?}", d.changes);
        d.stop()?;
    }
    drop(node1_ka);
    drop(peer);
    let from_node1 = seen.iter().filter(|s| s.1 == IpAddr::V4(r1.ipv4())).count();
    Ok((from_node1, took))
}

#[test]
fn state_master_below_255_starts_as_backup_like_keepalived() -> Result<()> {
    let _serial = serial();
    // keepalived 2.2.7: "(VI_1) Entering BACKUP STATE (init)"; it hears the
    // equal master with the higher address and stays backup, silent.
    let reference = state_master_joins("keepalived")?;
    ensure!(reference == (0, false), "keepalived itself: {reference:?}");
    let ours = state_master_joins("vrrpd")?;
    ensure!(
        ours == reference,
        "vrrpd sent {} adverts / took the address: {}",
        ours.0,
        ours.1
    );
    Ok(())
}

const SLOW: &str = "vrrp_script slow {\n    script \"/bin/sleep 1.5\"\n    interval 5\n    timeout 4\n}\n\
vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n    virtual_router_id 74\n    priority 100\n    advert_int 0.1\n    version 3\n\
    virtual_ipaddress {\n        192.0.2.74\n    }\n    track_script {\n        slow\n    }\n}\n";

/// How long after start the lone node holds the address.
fn time_to_address(daemon: &str) -> Result<Duration> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    let dir = test_dir(&format!("slow-{daemon}"))?;
    let started = Instant::now();
    let _ka;
    let _ours;
    if daemon == "keepalived" {
        _ka = Keepalived::start(r1.ns(), SLOW)?;
    } else {
        let toml = import(&dir, SLOW, "node1")?;
        _ours = Daemon::start(r1, &dir, "a", &toml)?;
    }
    loop {
        if has_address(r1, "192.0.2.74")? {
            return Ok(started.elapsed());
        }
        ensure!(started.elapsed() < T, "{daemon} never took the address");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn weight0_script_holds_its_instance_in_fault_until_its_first_result_like_keepalived() -> Result<()>
{
    let _serial = serial();
    // keepalived: a weight-0 script in its initial state keeps the
    // instance in Fault ("Entering FAULT STATE (init)") until it exits.
    let reference = time_to_address("keepalived").context("keepalived")?;
    ensure!(
        reference >= Duration::from_millis(1500),
        "keepalived: {reference:?}"
    );
    let ours = time_to_address("vrrpd").context("vrrpd")?;
    ensure!(
        ours >= Duration::from_millis(1500) && ours < reference + Duration::from_secs(1),
        "vrrpd took the address after {ours:?}, keepalived after {reference:?}"
    );
    Ok(())
}
