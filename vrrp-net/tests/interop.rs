//! Interop with Debian's keepalived 2.2.7 in a neighbouring namespace, for
//! VRRPv2 without and with PASS authentication, VRRPv3 over IPv4 and over
//! IPv6. In each: our master is respected by a keepalived backup, which
//! takes over when ours dies; a keepalived master of higher priority is
//! respected by ours, which takes over when keepalived dies.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Node, has_address};
use vrrp_core::{Auth, Centisecs, InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
use vrrp_net::driver::{DriverConfig, InstanceSpec, Vip};
use vrrp_net::testnet::{Keepalived, Lan};

#[derive(Clone, Copy)]
struct Variant {
    vrid: u8,
    version: Version,
    password: Option<&'static str>,
    vip: &'static str,
    prefix: u8,
}

fn keepalived_conf(v: Variant, prio: u8) -> String {
    let version = if v.version == Version::V2 { 2 } else { 3 };
    let auth = v
        .password
        .map(|p| format!("  authentication {{\n    auth_type PASS\n    auth_pass {p}\n  }}\n"))
        .unwrap_or_default();
    format!(
        "global_defs {{\n  router_id ka{vrid}\n  vrrp_version {version}\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  \
         priority {prio}\n  advert_int 1\n{auth}  virtual_ipaddress {{\n    {vip}/{prefix}\n  }}\n}}\n",
        vrid = v.vrid,
        vip = v.vip,
        prefix = v.prefix,
    )
}

fn ours(v: Variant, prio: u8) -> Result<DriverConfig> {
    let any: IpAddr = if v.vip.contains(':') {
        "::".parse()?
    } else {
        "0.0.0.0".parse()?
    };
    let mut config = InstanceConfig::new(Vrid::new(v.vrid).context("vrid")?, v.version, any)
        .with_priority(Priority::new(prio))
        .with_interval(Centisecs::new(100));
    if let Some(p) = v.password {
        config.auth = Auth::password(p.as_bytes()).context("password")?;
    }
    let mut spec = InstanceSpec::new("VI_1", "eth0", config);
    spec.vips.push(Vip::new(VirtualAddress {
        addr: v.vip.parse()?,
        prefix_len: v.prefix,
    }));
    Ok(DriverConfig {
        instances: vec![spec],
        sync_groups: vec![],
        ..DriverConfig::default()
    })
}

const T: Duration = Duration::from_secs(10);

fn interop(v: Variant) -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);

    // 1. Ours (200) and a keepalived backup (100): ours wins, keepalived
    //    stays backup and holds no VIP.
    let ka = Keepalived::start(r2.ns(), &keepalived_conf(v, 100))?;
    let mut node = Node::start(r1, ours(v, 200)?)?;
    node.wait_state("VI_1", State::Master, T)?;
    ka.wait_for_log("Entering BACKUP STATE", T)
        .context("keepalived backup")?;
    std::thread::sleep(Duration::from_secs(5));
    ensure!(
        !ka.log().contains("Entering MASTER STATE"),
        "keepalived respected our master:\n{}",
        ka.log()
    );
    ensure!(
        has_address(r1, v.vip)? && !has_address(r2, v.vip)?,
        "VIP on our master only"
    );

    // 2. Ours dies: the keepalived backup takes over.
    node.kill()?;
    ka.wait_for_log("Entering MASTER STATE", T)
        .context("keepalived took over")?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(has_address(r2, v.vip)?, "keepalived added the VIP");

    // 3. Ours comes back with a lower priority (50): keepalived's master is
    //    respected, and our restart removed the VIP its crash left behind.
    let mut node = Node::start(r1, ours(v, 50)?)?;
    node.wait_state("VI_1", State::Backup, T)?;
    std::thread::sleep(Duration::from_secs(5));
    node.poll();
    ensure!(
        node.seen.iter().all(|(_, e)| e.to != State::Master),
        "ours stayed backup: {:?}",
        node.seen
    );
    ensure!(!has_address(r1, v.vip)?, "leftover VIP removed at start-up");

    // 4. keepalived dies: ours takes over.
    ka.kill()?;
    node.wait_state("VI_1", State::Master, T)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(has_address(r1, v.vip)?);
    node.stop()?;
    Ok(())
}

#[test]
fn keepalived_vrrpv2_without_authentication() -> Result<()> {
    interop(Variant {
        vrid: 61,
        version: Version::V2,
        password: None,
        vip: "192.0.2.161",
        prefix: 24,
    })
}

#[test]
fn keepalived_vrrpv2_with_pass_authentication() -> Result<()> {
    interop(Variant {
        vrid: 62,
        version: Version::V2,
        password: Some("s3cr3t"),
        vip: "192.0.2.162",
        prefix: 24,
    })
}

#[test]
fn keepalived_vrrpv3_ipv4() -> Result<()> {
    interop(Variant {
        vrid: 63,
        version: Version::V3,
        password: None,
        vip: "192.0.2.163",
        prefix: 24,
    })
}

#[test]
fn keepalived_vrrpv3_ipv6() -> Result<()> {
    interop(Variant {
        vrid: 64,
        version: Version::V3,
        password: None,
        vip: "2001:db8::164",
        prefix: 64,
    })
}

#[test]
fn wrong_password_is_not_accepted_from_keepalived() -> Result<()> {
    // keepalived master with one password, ours with another: ours must
    // not count keepalived's adverts, so both end up master.
    let v = Variant {
        vrid: 65,
        version: Version::V2,
        password: Some("right"),
        vip: "192.0.2.165",
        prefix: 24,
    };
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let ka = Keepalived::start(r2.ns(), &keepalived_conf(v, 200))?;
    ka.wait_for_log("Entering MASTER STATE", T)?;
    let mut node = Node::start(
        r1,
        ours(
            Variant {
                password: Some("wrong"),
                ..v
            },
            100,
        )?,
    )?;
    node.wait_state("VI_1", State::Master, T)?;
    node.stop()?;
    ka.kill()?;
    Ok(())
}
