//! Interfaces are followed by name, on a namespace LAN: a master whose
//! interface is deleted goes to Fault and, when an interface of that name
//! comes back (a new index), re-opens its socket, re-learns its source and
//! is master again (it has the higher priority) within
//! Master_Down_Interval plus one interval of the return; an instance whose
//! interface does not exist at start-up waits for it in Fault instead of
//! failing the start, and runs once it appears; a renumbered primary
//! address is followed (the new one becomes the source) without a
//! transition.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Node, has_address, state_file, wait_until};
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
use vrrp_net::driver::{DriverConfig, InstanceSpec, Unbound, Vip};
use vrrp_net::testnet::Lan;

const T: Duration = Duration::from_secs(10);

fn config(test: &str, interface: &str, vrid: u8, prio: u8, vip: &str) -> Result<DriverConfig> {
    let c = InstanceConfig::new(
        Vrid::new(vrid).context("vrid")?,
        Version::V3,
        "0.0.0.0".parse()?,
    )
    .with_priority(Priority::new(prio))
    .with_interval(Centisecs::new(10));
    let mut spec = InstanceSpec::new("VI_1", interface, c);
    spec.vips.push(Vip::new(VirtualAddress {
        addr: vip.parse()?,
        prefix_len: 24,
    }));
    Ok(DriverConfig {
        instances: vec![spec],
        state_file: Some(state_file(test)),
        ..DriverConfig::default()
    })
}

#[test]
fn a_deleted_and_recreated_interface_returns_the_better_router_to_master() -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let mut n1 = Node::start(r1, config("recreate_r1", "eth0", 80, 200, "192.0.2.180")?)?;
    let mut n2 = Node::start(r2, config("recreate_r2", "eth0", 80, 100, "192.0.2.180")?)?;
    n1.wait_state("VI_1", State::Master, T)?;
    n2.wait_state("VI_1", State::Backup, T)?;

    r1.delete_link()?;
    n1.wait_state("VI_1", State::Fault, T)?;
    n2.wait_state("VI_1", State::Master, T)?;
    let snap = n1.snapshot();
    ensure!(
        snap.instances[0].unbound == Some(Unbound::InterfaceMissing),
        "{:?}",
        snap.instances[0]
    );

    r1.recreate_link()?;
    let back = Instant::now();
    n1.wait_state("VI_1", State::Backup, T)?;
    let master = n1.wait_state("VI_1", State::Master, T)?;
    let took = master.saturating_duration_since(back);
    // Master_Down_Interval at priority 200 and 100 ms: 300 + 21.875 ms;
    // plus one interval.
    let bound = Duration::from_micros(321_875) + Duration::from_millis(100);
    eprintln!("master {took:?} after the interface came back (bound {bound:?})");
    ensure!(
        took <= bound,
        "master {took:?} after the interface's return"
    );
    n2.wait_state("VI_1", State::Backup, T)?;
    wait_until("the VIP on the new interface", T, || {
        has_address(r1, "192.0.2.180")
    })?;
    let snap = n1.snapshot();
    ensure!(
        snap.instances[0].source == Some(r1.ipv4().into()),
        "{snap:?}"
    );
    n1.stop()?;
    n2.stop()?;
    Ok(())
}

#[test]
fn an_interface_missing_at_start_is_waited_for_in_fault() -> Result<()> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    let mut node = Node::start(r1, config("missing", "late0", 81, 100, "192.0.2.181")?)?;
    node.wait_state("VI_1", State::Fault, T)?;
    ensure!(node.snapshot().instances[0].unbound == Some(Unbound::InterfaceMissing));
    // The interface appears (a VLAN created after the daemon, say).
    r1.ns().ip_batch(
        "link add late0 type veth peer name late1\n\
         addr add 192.0.2.81/24 dev late0\n\
         link set late1 up\n\
         link set late0 up\n",
    )?;
    node.wait_state("VI_1", State::Backup, T)?;
    node.wait_state("VI_1", State::Master, T)?;
    wait_until("the VIP on the late interface", T, || {
        Ok(r1
            .ns()
            .ip(&["-o", "addr", "show", "dev", "late0"])?
            .contains("192.0.2.181/24"))
    })?;
    ensure!(node.snapshot().instances[0].source == Some("192.0.2.81".parse()?));
    node.stop()?;
    Ok(())
}

#[test]
fn a_renumbered_primary_address_is_followed_without_a_transition() -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    r1.ns()
        .sysctl(&["net.ipv4.conf.eth0.promote_secondaries=1"])?;
    let mut node = Node::start(r1, config("renumber", "eth0", 82, 200, "192.0.2.182")?)?;
    node.wait_state("VI_1", State::Master, T)?;
    wait_until("VIP", T, || has_address(r1, "192.0.2.182"))?;
    // The interface gets a new address and loses its old primary one.
    r1.ns()
        .ip(&["addr", "add", "192.0.2.51/24", "dev", "eth0"])?;
    r1.ns()
        .ip(&["addr", "del", "192.0.2.1/24", "dev", "eth0"])?;
    node.wait_snapshot("new source", T, |s| {
        s.instances[0].source
            == Some(
                "192.0.2.51"
                    .parse()
                    .unwrap_or(std::net::IpAddr::from([0u8; 4])),
            )
    })?;
    // Advertisements now come from the new address (a peer hears them).
    let (rx, ready) = common::spawn_receiver(r2, vrrp_net::socket::Family::Ipv4, true, T, |got| {
        got.iter()
            .any(|p| p.src == std::net::IpAddr::from([192, 0, 2, 51]))
    })?;
    common::wait_ready(&ready)?;
    let (_, got) = common::join(rx)?;
    ensure!(
        got.iter()
            .any(|p| p.src == std::net::IpAddr::from([192, 0, 2, 51])),
        "no advertisement from the new address"
    );
    node.poll();
    ensure!(
        node.seen
            .iter()
            .filter(|(_, e)| e.to == State::Master)
            .count()
            == 1
            && node.seen.iter().all(|(_, e)| e.to != State::Fault),
        "no transition: {:?}",
        node.seen
    );
    ensure!(has_address(r1, "192.0.2.182")?);
    node.stop()?;
    Ok(())
}
