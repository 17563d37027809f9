//! keepalived's `down_timer_adverts` in namespaces: a backup whose master
//! dies takes over after N advertisement intervals plus Skew_Time (RFC
//! 5798 6.1 has N = 3): with 50 ms adverts, N = 1 takes over within
//! 280 ms of the crash, N = 6 not before 280 ms (its Master_Down_Interval
//! is 330 ms; the master's last advert left at most 50 ms before the
//! crash).

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::Node;
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, VirtualAddress, Vrid};
use vrrp_net::driver::{DriverConfig, InstanceSpec};
use vrrp_net::testnet::Lan;

fn node(prio: u8, down_timer_adverts: u8) -> Result<DriverConfig> {
    let config = InstanceConfig::v3(Vrid::new(81).context("vrid")?)
        .virtual_address(VirtualAddress::host("192.0.2.181".parse()?))
        .primary_address("0.0.0.0".parse()?)
        .priority(Priority::new(prio))
        .advert_interval(Centisecs::new(5))
        .down_timer_adverts(down_timer_adverts)
        .build()?;
    Ok(DriverConfig {
        instances: vec![InstanceSpec::new("VI_1", "eth0", config)],
        ..DriverConfig::default()
    })
}

/// How long after the master's crash began the backup took over.
fn takeover_after_crash(down_timer_adverts: u8) -> Result<(Duration, Duration)> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let mut master = Node::start(r1, node(200, 3)?)?;
    master.wait_state("VI_1", State::Master, Duration::from_secs(3))?;
    let mut backup = Node::start(r2, node(100, down_timer_adverts)?)?;
    backup.wait_state("VI_1", State::Backup, Duration::from_secs(3))?;
    std::thread::sleep(Duration::from_millis(300));
    backup.poll();
    ensure!(
        backup.seen.iter().all(|(_, e)| e.to != State::Master),
        "the backup stayed backup while the master ran"
    );
    let crash = Instant::now();
    master.kill()?;
    let crashed = Instant::now();
    let took = backup.wait_state("VI_1", State::Master, Duration::from_secs(3))?;
    backup.stop()?;
    Ok((took - crash, took.saturating_duration_since(crashed)))
}

#[test]
fn down_timer_adverts_sets_how_long_a_backup_waits() -> Result<()> {
    let started = Instant::now();
    let (_, one) = takeover_after_crash(1)?;
    ensure!(
        one < Duration::from_millis(280),
        "down_timer_adverts 1: took over {one:?} after the crash"
    );
    let (six, _) = takeover_after_crash(6)?;
    ensure!(
        six >= Duration::from_millis(280),
        "down_timer_adverts 6: took over only {six:?} after the crash began"
    );
    eprintln!(
        "down_timer_adverts 1: {one:?}, 6: {six:?}; test took {:?}",
        started.elapsed()
    );
    Ok(())
}
