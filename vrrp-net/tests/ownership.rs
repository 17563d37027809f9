//! The driver owns its addresses and only those, on a namespace LAN: a
//! virtual address deleted by hand from a master comes back within one
//! advertisement interval; an address equal to a virtual address that an
//! operator configured is reported and kept (or removed, reported, under
//! keepalived's policy); leftovers of a SIGKILLed run are removed at the
//! next start while the operator's address stays; an address owner
//! demoted by a spoofed priority-255 advertisement keeps its interface
//! address and is master again when the spoofing stops (and, by default,
//! is never demoted at all).

mod common;

use std::io::BufRead as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{AddressWatch, Node, has_address, spawn_adverts, state_file, wait_until};
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
use vrrp_net::driver::{DriverConfig, ForeignAddressPolicy, InstanceSpec, Vip};
use vrrp_net::testnet::Lan;

const T: Duration = Duration::from_secs(10);
/// The advertisement interval of these tests.
const INTERVAL: Duration = Duration::from_millis(100);

fn instance(name: &str, vrid: u8, prio: u8, vip: &str) -> Result<InstanceSpec> {
    let config = InstanceConfig::new(
        Vrid::new(vrid).context("vrid")?,
        Version::V3,
        "0.0.0.0".parse()?,
    )
    .with_priority(Priority::new(prio))
    .with_interval(Centisecs::new(10));
    let mut spec = InstanceSpec::new(name, "eth0", config);
    spec.vips.push(Vip::new(VirtualAddress {
        addr: vip.parse()?,
        prefix_len: 24,
    }));
    Ok(spec)
}

fn driver(state: &std::path::Path, instances: Vec<InstanceSpec>) -> DriverConfig {
    DriverConfig {
        instances,
        state_file: Some(state.to_owned()),
        ..DriverConfig::default()
    }
}

#[test]
fn a_vip_deleted_by_hand_from_the_master_is_back_within_one_interval() -> Result<()> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    let state = state_file("vip_deleted");
    let mut node = Node::start(
        r1,
        driver(&state, vec![instance("VI_1", 60, 200, "192.0.2.160")?]),
    )?;
    node.wait_state("VI_1", State::Master, T)?;
    wait_until("VIP added", T, || has_address(r1, "192.0.2.160"))?;
    let vip: IpAddr = "192.0.2.160".parse()?;
    let watch = AddressWatch::start(r1, vip)?;
    r1.ns()
        .ip(&["addr", "del", "192.0.2.160/24", "dev", "eth0"])?;
    wait_until("VIP back", T, || has_address(r1, "192.0.2.160"))?;
    let events = watch.finish()?;
    let removed = events
        .iter()
        .find(|(_, added)| !added)
        .context("removal seen")?
        .0;
    let back = events
        .iter()
        .find(|(at, added)| *added && *at >= removed)
        .context("re-addition seen")?
        .0;
    let took = back - removed;
    eprintln!("VIP back {took:?} after its removal");
    ensure!(
        took <= INTERVAL,
        "back after {took:?}, more than one interval"
    );
    node.wait_snapshot("restore counted", T, |s| s.vips_restored == 1)?;
    ensure!(node.state("VI_1") == Some(State::Master));
    node.stop()?;
    ensure!(!has_address(r1, "192.0.2.160")?, "removed on stop");
    Ok(())
}

#[test]
fn an_address_equal_to_a_vip_that_the_driver_did_not_add_is_reported() -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let mut master = Node::start(
        r2,
        driver(
            &state_file("foreign_r2"),
            vec![instance("VI_1", 61, 200, "192.0.2.161")?],
        ),
    )?;
    master.wait_state("VI_1", State::Master, T)?;
    // An operator's address on r1 that equals the virtual address.
    r1.ns()
        .ip(&["addr", "add", "192.0.2.161/24", "dev", "eth0"])?;
    let state = state_file("foreign_r1");
    let mut backup = Node::start(
        r1,
        driver(&state, vec![instance("VI_1", 61, 100, "192.0.2.161")?]),
    )?;
    backup.wait_state("VI_1", State::Backup, T)?;
    let snap = backup.wait_snapshot("foreign address reported", T, |s| s.foreign_addresses == 1)?;
    let vip = &snap.instances[0].vips[0];
    ensure!(vip.present && vip.foreign && !vip.ours, "{vip:?}");
    std::thread::sleep(4 * INTERVAL);
    ensure!(
        has_address(r1, "192.0.2.161")?,
        "kept: the driver removes only what it added"
    );
    backup.stop()?;
    ensure!(has_address(r1, "192.0.2.161")?, "kept on stop too");

    // keepalived's behaviour on request: removed, and said so.
    let mut cfg = driver(&state, vec![instance("VI_1", 61, 100, "192.0.2.161")?]);
    cfg.foreign_addresses = ForeignAddressPolicy::Remove;
    let backup = Node::start(r1, cfg)?;
    wait_until("foreign address removed", T, || {
        Ok(!has_address(r1, "192.0.2.161")?)
    })?;
    let snap = backup.wait_snapshot("removal counted", T, |s| s.foreign_removed == 1)?;
    ensure!(snap.foreign_addresses == 1, "{snap:?}");
    backup.stop()?;
    master.stop()?;
    Ok(())
}

/// The child process of the SIGKILL test: a driver whose instance becomes
/// master and adds its address, then waits to be killed. Does nothing
/// unless started by that test.
#[test]
#[ignore = "run by leftovers_of_a_sigkilled_run_are_removed_at_the_next_start"]
fn sigkill_child() -> Result<()> {
    let Ok(state) = std::env::var("VRRP_NET_SIGKILL_CHILD") else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let cfg = driver(
            std::path::Path::new(&state),
            vec![instance("VI_1", 62, 200, "192.0.2.162")?],
        );
        let handle = vrrp_net::driver::spawn(cfg).await?;
        loop {
            let snap = handle.snapshot();
            if snap.instances[0].state == State::Master && snap.instances[0].vips[0].ours {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!("CHILD-MASTER");
        std::future::pending::<()>().await;
        Ok(())
    })
}

#[test]
fn leftovers_of_a_sigkilled_run_are_removed_at_the_next_start() -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let state = state_file("sigkill");
    let exe = std::env::current_exe()?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", r1.ns().name()])
        .arg(&exe)
        .args([
            "sigkill_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("VRRP_NET_SIGKILL_CHILD", &state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("CHILD-MASTER") {
                let _ = tx.send(());
            }
        }
    });
    let master = rx.recv_timeout(T);
    if master.is_err() {
        let _ = child.kill();
        anyhow::bail!("the child driver never became master");
    }
    wait_until("the record lists the VIP", T, || {
        Ok(std::fs::read_to_string(&state).is_ok_and(|t| t.contains("192.0.2.162/24")))
    })?;
    child.kill()?; // SIGKILL: no priority 0, no cleanup
    child.wait()?;
    ensure!(
        has_address(r1, "192.0.2.162")?,
        "a killed driver leaves its VIP"
    );
    // Meanwhile an operator adds an address equal to another VIP.
    r1.ns()
        .ip(&["addr", "add", "192.0.2.163/24", "dev", "eth0"])?;
    // A better router is master for both now.
    let mut peer = Node::start(
        r2,
        driver(
            &state_file("sigkill_peer"),
            vec![
                instance("VI_1", 62, 250, "192.0.2.162")?,
                instance("VI_2", 63, 250, "192.0.2.163")?,
            ],
        ),
    )?;
    peer.wait_state("VI_1", State::Master, T)?;
    peer.wait_state("VI_2", State::Master, T)?;
    // The killed driver starts again with the same record.
    let started = Instant::now();
    let mut again = Node::start(
        r1,
        driver(
            &state,
            vec![
                instance("VI_1", 62, 100, "192.0.2.162")?,
                instance("VI_2", 63, 100, "192.0.2.163")?,
            ],
        ),
    )?;
    wait_until("the leftover is removed", T, || {
        Ok(!has_address(r1, "192.0.2.162")?)
    })?;
    eprintln!(
        "leftover removed within {:?} of the start",
        started.elapsed()
    );
    again.wait_state("VI_1", State::Backup, T)?;
    let snap = again.wait_snapshot("leftover counted", T, |s| s.leftovers_removed == 1)?;
    ensure!(
        snap.foreign_addresses == 1,
        "the operator's address is reported: {snap:?}"
    );
    ensure!(
        has_address(r1, "192.0.2.163")?,
        "the operator's address stays"
    );
    again.stop()?;
    peer.stop()?;
    Ok(())
}

fn owner(ignore_adverts: bool) -> Result<InstanceSpec> {
    let mut config = InstanceConfig::new(
        Vrid::new(64).context("vrid")?,
        Version::V3,
        "0.0.0.0".parse()?,
    )
    .with_priority(Priority::OWNER)
    .with_interval(Centisecs::new(10));
    config.owner_ignore_adverts = ignore_adverts;
    let mut spec = InstanceSpec::new("OWNER", "eth0", config);
    // The owner's virtual address is its own interface address.
    spec.vips.push(Vip::new(VirtualAddress {
        addr: "192.0.2.1".parse()?,
        prefix_len: 24,
    }));
    Ok(spec)
}

#[test]
fn a_spoofed_owner_advert_never_costs_the_owner_its_address() -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let own: IpAddr = "192.0.2.1".parse()?;

    // keepalived 2.2.7's behaviour: the owner is demoted...
    let mut node = Node::start(r1, driver(&state_file("owner_compat"), vec![owner(false)?]))?;
    node.wait_state("OWNER", State::Master, T)?;
    let spoofer = spawn_adverts(r2, 64, 255, vec![own], 10, INTERVAL);
    node.wait_state("OWNER", State::Backup, T)?;
    // ... keeps its interface address all along ...
    while !spoofer.is_finished() {
        ensure!(
            has_address(r1, "192.0.2.1")?,
            "the owner lost its own address"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    common::join(spoofer)?;
    ensure!(has_address(r1, "192.0.2.1")?);
    // ... and is master again once the spoofing stops (Master_Down_Interval
    // at priority 255: 300 ms + 0.4 ms).
    node.wait_state("OWNER", State::Master, T)?;
    ensure!(has_address(r1, "192.0.2.1")?);
    node.stop()?;
    ensure!(
        has_address(r1, "192.0.2.1")?,
        "an owner never removes its own address"
    );

    // RFC 5798 7.1 (the default): every advertisement is discarded.
    let mut node = Node::start(r1, driver(&state_file("owner_rfc"), vec![owner(true)?]))?;
    node.wait_state("OWNER", State::Master, T)?;
    common::join(spawn_adverts(r2, 64, 255, vec![own], 5, INTERVAL))?;
    let snap = node.wait_snapshot("discards counted", T, |s| {
        s.instances[0].stats.owner_discards == 5
    })?;
    node.poll();
    ensure!(
        node.seen.iter().all(|(_, e)| e.to != State::Backup),
        "never demoted: {:?}",
        node.seen
    );
    ensure!(snap.instances[0].state == State::Master);
    node.stop()?;
    ensure!(has_address(r1, "192.0.2.1")?);
    Ok(())
}
