//! Proves interop plumbing with Debian's keepalived: started in a router
//! namespace with a private configuration, its VRRPv2 (IPv4) and VRRPv3
//! (IPv6) advertisements are received by our socket in the neighbour
//! namespace with the expected source, destination, TTL and VRID; a
//! SIGTERM stop makes it send a priority 0 advertisement.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Received, join, spawn_receiver, wait_ready};
use vrrp_net::socket::Family;
use vrrp_net::testnet::{Keepalived, Lan};

fn config(vrid: u8, version: u8, vip: &str) -> String {
    format!(
        "global_defs {{\n  router_id test{vrid}\n}}\n\
         vrrp_instance VI_{vrid} {{\n  state MASTER\n  interface eth0\n  \
         virtual_router_id {vrid}\n  version {version}\n  priority 200\n  \
         advert_int 1\n  virtual_ipaddress {{\n    {vip}\n  }}\n}}\n"
    )
}

fn adverts(got: &[Received], vrid: u8) -> impl Iterator<Item = &Received> {
    got.iter().filter(move |p| p.payload.get(1) == Some(&vrid))
}

fn run(family: Family, vrid: u8, version: u8, vip: &str) -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let expected_src = match family {
        Family::Ipv4 => IpAddr::V4(r1.ipv4()),
        _ => IpAddr::V6(r1.link_local()),
    };
    // Collect until a priority 0 advertisement (the graceful stop) arrives.
    let (receiver, ready) =
        spawn_receiver(r2, family, true, Duration::from_secs(15), move |got| {
            adverts(got, vrid).any(|p| p.payload.get(2) == Some(&0))
        })?;
    wait_ready(&ready)?;
    let keepalived = Keepalived::start(r1.ns(), &config(vrid, version, vip))?;
    keepalived
        .wait_for_log("Entering MASTER STATE", Duration::from_secs(8))
        .context("keepalived did not become master")?;
    // At least one advertisement after becoming master.
    std::thread::sleep(Duration::from_millis(1100));
    let log = keepalived.log();
    let status = keepalived.stop(Duration::from_secs(5))?;
    ensure!(status.success(), "keepalived exit {status}; log:\n{log}");

    let (ifindex, got) = join(receiver)?;
    let ours: Vec<_> = adverts(&got, vrid).collect();
    ensure!(ours.len() >= 2, "adverts received: {got:?}\nlog:\n{log}");
    for p in &ours {
        ensure!(p.src == expected_src, "source {p:?}");
        ensure!(
            p.dst == vrrp_core::wire::multicast_group(family),
            "destination {p:?}"
        );
        ensure!(
            p.ttl == Some(255) && p.ifindex == ifindex,
            "ttl/ifindex {p:?}"
        );
        ensure!(
            p.payload.first() == Some(&(version << 4 | 1)),
            "version/type {p:?}"
        );
    }
    ensure!(
        ours.iter().any(|p| p.payload.get(2) == Some(&200)),
        "priority 200 advert"
    );
    ensure!(
        ours.iter().any(|p| p.payload.get(2) == Some(&0)),
        "priority 0 advert"
    );
    Ok(())
}

#[test]
fn keepalived_vrrpv2_ipv4_adverts_are_received() -> Result<()> {
    run(Family::Ipv4, 51, 2, "192.0.2.100/24")
}

#[test]
fn keepalived_vrrpv3_ipv6_adverts_are_received() -> Result<()> {
    run(Family::Ipv6, 52, 3, "2001:db8::200/64")
}

#[test]
fn keepalived_kill_leaves_no_process() -> Result<()> {
    let lan = Lan::new(1)?;
    let mut keepalived = Keepalived::start(lan.router(1)?.ns(), &config(53, 2, "192.0.2.101/24"))?;
    keepalived.wait_for_log("Entering", Duration::from_secs(8))?;
    ensure!(keepalived.is_running());
    let vrrp_pid = std::fs::read_to_string(keepalived.dir().join("vrrp.pid"))?;
    let vrrp_pid = vrrp_pid.trim().to_owned();
    keepalived.kill()?;
    // The VRRP child shares the process group and dies with the parent.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::path::Path::new("/proc").join(&vrrp_pid).exists() {
        ensure!(
            std::time::Instant::now() < deadline,
            "VRRP child {vrrp_pid} survived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
