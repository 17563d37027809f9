//! keepalived's `dont_track_primary` in a namespace: with the instance's
//! own interface losing its carrier, an instance that does not track it stays master
//! (with its address) while one that does goes to Fault; both run again
//! when the link comes back.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Node, has_address};
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, VirtualAddress, Vrid};
use vrrp_net::driver::{DriverConfig, InstanceSpec};
use vrrp_net::testnet::Lan;

fn spec(name: &str, vrid: u8, vip: &str, dont_track_primary: bool) -> Result<InstanceSpec> {
    let config = InstanceConfig::v3(Vrid::new(vrid).context("vrid")?)
        .virtual_address(VirtualAddress::host(vip.parse()?))
        .primary_address("0.0.0.0".parse()?)
        .priority(Priority::new(150))
        .advert_interval(Centisecs::new(5))
        .build()?;
    let mut spec = InstanceSpec::new(name, "eth0", config);
    spec.dont_track_primary = dont_track_primary;
    Ok(spec)
}

#[test]
fn dont_track_primary_keeps_the_master_through_link_down() -> Result<()> {
    let started = std::time::Instant::now();
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    let config = DriverConfig {
        instances: vec![
            spec("KEEP", 91, "192.0.2.191", true)?,
            spec("TRACK", 92, "192.0.2.192", false)?,
        ],
        ..DriverConfig::default()
    };
    let mut node = Node::start(r1, config)?;
    let t = Duration::from_secs(3);
    node.wait_state("KEEP", State::Master, t)?;
    node.wait_state("TRACK", State::Master, t)?;
    node.poll();
    let keep_events = |n: &Node| n.seen.iter().filter(|(_, e)| e.instance == "KEEP").count();
    let before = keep_events(&node);
    r1.set_carrier(false)?;
    node.wait_state("TRACK", State::Fault, t)?;
    // Long enough for KEEP to have left Master too if it were tracking
    // (the link event reaches both instances at once).
    std::thread::sleep(Duration::from_millis(200));
    node.poll();
    ensure!(
        keep_events(&node) == before && node.state("KEEP") == Some(State::Master),
        "KEEP left Master: {:?}",
        node.seen
    );
    ensure!(has_address(r1, "192.0.2.191")?, "KEEP keeps its address");
    ensure!(
        !has_address(r1, "192.0.2.192")?,
        "TRACK gave its address up"
    );
    r1.set_carrier(true)?;
    node.wait_state("TRACK", State::Master, t)?;
    node.stop()?;
    eprintln!("dont_track_primary test took {:?}", started.elapsed());
    Ok(())
}
