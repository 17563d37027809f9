//! Reconfiguring a running driver, on a namespace LAN: an unchanged
//! instance keeps its state and addresses without a single transition, a
//! changed one is updated in place or restarted, a new one starts, a
//! removed one stops and releases its address, one naming a missing
//! interface waits for it; a reload that fails half-way (a socket that
//! cannot be opened after others were) leaves every instance, address and
//! socket exactly as before; an in-place priority edit sends no priority
//! 0 and causes no transition on either router; switching an instance
//! from unicast to multicast joins the group.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Node, Wire, has_address, join, spawn_capture, state_file, wait_ready, wait_until};
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
use vrrp_net::driver::{DriverConfig, InstanceSpec, Unbound, Vip};
use vrrp_net::testnet::{Lan, Router};

const T: Duration = Duration::from_secs(10);

fn spec(name: &str, iface: &str, vrid: u8, prio: u8, vip: &str) -> Result<InstanceSpec> {
    let any: IpAddr = if vip.contains(':') {
        "::".parse()?
    } else {
        "0.0.0.0".parse()?
    };
    let config = InstanceConfig::new(Vrid::new(vrid).context("vrid")?, Version::V3, any)
        .with_priority(Priority::new(prio))
        .with_interval(Centisecs::new(10));
    let mut s = InstanceSpec::new(name, iface, config);
    s.vips.push(Vip::new(VirtualAddress {
        addr: vip.parse()?,
        prefix_len: if vip.contains(':') { 64 } else { 32 },
    }));
    Ok(s)
}

fn driver(test: &str, instances: Vec<InstanceSpec>) -> DriverConfig {
    DriverConfig {
        instances,
        state_file: Some(state_file(test)),
        ..DriverConfig::default()
    }
}

/// The names, states, priorities and transition counts of every instance.
fn picture(node: &Node) -> Vec<(String, State, u8, u64)> {
    node.snapshot()
        .instances
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                i.state,
                i.priority.get(),
                i.stats.transitions,
            )
        })
        .collect()
}

/// Raw IP sockets open in a router's namespace (`ss -w`).
fn raw_sockets(router: &Router) -> Result<usize> {
    let out = router.ns().exec("ss", &["-H", "-w", "-a", "-n"])?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().count())
}

#[test]
fn reload_keeps_unchanged_instances_and_applies_the_rest() -> Result<()> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    let before = driver(
        "classify",
        vec![
            spec("keep", "eth0", 1, 200, "192.0.2.201")?,
            spec("edit", "eth0", 2, 200, "192.0.2.202")?,
            spec("drop", "eth0", 3, 200, "192.0.2.203")?,
        ],
    );
    let mut moved = spec("move", "eth0", 6, 200, "192.0.2.206")?;
    let mut after = driver(
        "classify",
        vec![
            spec("keep", "eth0", 1, 200, "192.0.2.201")?,
            spec("edit", "eth0", 2, 150, "192.0.2.202")?,
            spec("new", "eth0", 4, 200, "192.0.2.204")?,
            spec("wait", "nosuch0", 5, 200, "192.0.2.205")?,
        ],
    );
    let mut node = Node::start(r1, before)?;
    for name in ["keep", "edit", "drop"] {
        node.wait_state(name, State::Master, T)?;
    }
    wait_until("VIPs", T, || has_address(r1, "192.0.2.203"))?;
    node.poll();
    let seen_before = node.seen.len();
    let summary = node.reload(after.clone())?.map_err(anyhow::Error::msg)?;
    ensure!(summary.unchanged == vec!["keep"], "{summary:?}");
    ensure!(summary.updated == vec!["edit"], "{summary:?}");
    ensure!(summary.added == vec!["new", "wait"], "{summary:?}");
    ensure!(summary.removed == vec!["drop"], "{summary:?}");
    node.wait_state("new", State::Master, T)?;
    node.wait_state("drop", State::Initialize, T)?;
    wait_until("the removed instance's VIP released", T, || {
        Ok(!has_address(r1, "192.0.2.203")?)
    })?;
    let snap = node.snapshot();
    let wait = snap
        .instances
        .iter()
        .find(|i| i.name == "wait")
        .context("wait")?;
    ensure!(wait.state == State::Fault && wait.unbound == Some(Unbound::InterfaceMissing));
    node.poll();
    let later: Vec<_> = node.seen[seen_before..]
        .iter()
        .map(|(_, e)| (e.instance.clone(), e.to))
        .collect();
    ensure!(
        later.iter().all(|(n, _)| n != "keep" && n != "edit"),
        "unchanged and updated instances never moved: {later:?}"
    );
    // A changed VRID is another virtual router: restarted.
    moved.name = "edit".into();
    after.instances[1] = moved;
    let summary = node.reload(after)?.map_err(anyhow::Error::msg)?;
    ensure!(summary.restarted == vec!["edit"], "{summary:?}");
    node.stop()?;
    Ok(())
}

#[test]
fn a_reload_that_fails_half_way_leaves_everything_as_before() -> Result<()> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    // Two more interfaces: one fine, one without IPv6 (an MTU below 1280),
    // on which an IPv6 socket cannot join ff02::12.
    r1.ns().ip_batch(
        "link add side0 type veth peer name side1\n\
         addr add 192.0.2.90/24 dev side0\n\
         link set side1 up\n\
         link set side0 up\n\
         link add low0 type veth peer name low1\n\
         link set low0 mtu 1000\n\
         link set low1 up\n\
         link set low0 up\n",
    )?;
    let running = vec![
        spec("a", "eth0", 10, 200, "192.0.2.210")?,
        spec("b", "eth0", 11, 200, "192.0.2.211")?,
    ];
    let mut node = Node::start(r1, driver("half_way", running.clone()))?;
    node.wait_state("a", State::Master, T)?;
    node.wait_state("b", State::Master, T)?;
    wait_until("VIPs", T, || {
        Ok(has_address(r1, "192.0.2.210")? && has_address(r1, "192.0.2.211")?)
    })?;
    let before = picture(&node);
    let sockets = raw_sockets(r1)?;
    eprintln!("raw sockets before the reload: {sockets}");
    node.poll();
    let events = node.seen.len();

    let mut low = spec("d", "low0", 13, 200, "2001:db8::213")?;
    low.config.primary_address = "fe80::77".parse()?;
    let broken = driver(
        "half_way",
        vec![
            spec("a", "eth0", 10, 150, "192.0.2.210")?, // updated
            // b removed
            spec("c", "side0", 12, 200, "192.0.2.212")?, // new socket: opens
            low,                                         // new socket: fails
        ],
    );
    let error = node.reload(broken)?.err().context("the reload must fail")?;
    ensure!(
        error.contains("low0"),
        "the error names the interface: {error}"
    );
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        picture(&node) == before,
        "{:?} != {before:?}",
        picture(&node)
    );
    ensure!(has_address(r1, "192.0.2.210")? && has_address(r1, "192.0.2.211")?);
    ensure!(!has_address(r1, "192.0.2.212")?);
    ensure!(
        raw_sockets(r1)? == sockets,
        "the socket opened half-way is closed again"
    );
    node.poll();
    ensure!(
        node.seen.len() == events,
        "no transition: {:?}",
        &node.seen[events..]
    );
    // The same reload without the impossible instance goes through.
    let fine = driver(
        "half_way",
        vec![
            spec("a", "eth0", 10, 150, "192.0.2.210")?,
            spec("c", "side0", 12, 200, "192.0.2.212")?,
        ],
    );
    let summary = node.reload(fine)?.map_err(anyhow::Error::msg)?;
    ensure!(
        summary.updated == vec!["a"] && summary.added == vec!["c"],
        "{summary:?}"
    );
    node.wait_state("c", State::Master, T)?;
    node.stop()?;
    Ok(())
}

#[test]
fn an_in_place_priority_edit_sends_no_priority_zero_and_moves_nobody() -> Result<()> {
    let lan = Lan::new(3)?;
    let (r1, r2, obs) = (lan.router(1)?, lan.router(2)?, lan.router(3)?);
    let stop = Arc::new(AtomicBool::new(false));
    let (capture, ready) = spawn_capture(obs, stop.clone())?;
    wait_ready(&ready)?;
    let mut n1 = Node::start(
        r1,
        driver(
            "edit_r1",
            vec![spec("VI_1", "eth0", 20, 200, "192.0.2.220")?],
        ),
    )?;
    let mut n2 = Node::start(
        r2,
        driver(
            "edit_r2",
            vec![spec("VI_1", "eth0", 20, 100, "192.0.2.220")?],
        ),
    )?;
    n1.wait_state("VI_1", State::Master, T)?;
    n2.wait_state("VI_1", State::Backup, T)?;
    std::thread::sleep(Duration::from_millis(300));
    n1.poll();
    n2.poll();
    let (e1, e2) = (n1.seen.len(), n2.seen.len());
    let s1 = n1
        .reload(driver(
            "edit_r1",
            vec![spec("VI_1", "eth0", 20, 150, "192.0.2.220")?],
        ))?
        .map_err(anyhow::Error::msg)?;
    let s2 = n2
        .reload(driver(
            "edit_r2",
            vec![spec("VI_1", "eth0", 20, 120, "192.0.2.220")?],
        ))?
        .map_err(anyhow::Error::msg)?;
    ensure!(
        s1.updated == vec!["VI_1"] && s2.updated == vec!["VI_1"],
        "{s1:?} {s2:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    n1.poll();
    n2.poll();
    ensure!(n1.seen.len() == e1, "r1 moved: {:?}", &n1.seen[e1..]);
    ensure!(n2.seen.len() == e2, "r2 moved: {:?}", &n2.seen[e2..]);
    ensure!(has_address(r1, "192.0.2.220")? && !has_address(r2, "192.0.2.220")?);
    n1.stop()?;
    n2.stop()?;
    stop.store(true, Ordering::Relaxed);
    let frames = join(capture)?;
    let from_r1: Vec<u8> = frames
        .iter()
        .filter_map(|(_, w)| match w {
            Wire::Advert { src, priority, .. } if *src == IpAddr::V4(r1.ipv4()) => Some(*priority),
            _ => None,
        })
        .collect();
    let first_zero = from_r1.iter().position(|p| *p == 0).context("r1's stop")?;
    ensure!(
        from_r1[..first_zero].contains(&150),
        "r1 advertised its new priority before it stopped"
    );
    ensure!(
        first_zero == from_r1.len() - 1,
        "the only priority 0 is the stop's: {from_r1:?}"
    );
    Ok(())
}

#[test]
fn switching_from_unicast_to_multicast_joins_the_group() -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let mut n1 = Node::start(
        r1,
        driver(
            "switch_r1",
            vec![spec("VI_1", "eth0", 30, 200, "192.0.2.230")?],
        ),
    )?;
    n1.wait_state("VI_1", State::Master, T)?;
    // r2 starts unicast towards a peer that is not r1: its socket is not
    // in the group, it hears nobody and becomes master too.
    let mut uni = spec("VI_1", "eth0", 30, 100, "192.0.2.230")?;
    uni.config.unicast_peers = vec!["192.0.2.99".parse()?];
    let mut n2 = Node::start(r2, driver("switch_r2", vec![uni]))?;
    n2.wait_state("VI_1", State::Master, T)?;
    let s = n2
        .reload(driver(
            "switch_r2",
            vec![spec("VI_1", "eth0", 30, 100, "192.0.2.230")?],
        ))?
        .map_err(anyhow::Error::msg)?;
    ensure!(s.updated == vec!["VI_1"], "{s:?}");
    // Joined: it hears r1 now and steps down.
    n2.wait_state("VI_1", State::Backup, Duration::from_secs(2))?;
    wait_until("one VIP holder", T, || Ok(!has_address(r2, "192.0.2.230")?))?;
    n1.stop()?;
    n2.stop()?;
    Ok(())
}
