//! keepalived's address options in a namespace, with the driver running:
//! `scope`, `brd`, `peer`, `preferred_lft` and labels reach the kernel as
//! `ip -d addr` shows them, a reload that changes an owned address's scope
//! replaces it, static addresses stay from start to stop, `no_track`
//! keeps an instance Master when its address's interface goes down, and
//! `promote_secondaries` keeps a subnet's secondary address when the
//! virtual address that was its primary goes.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Node, wait_until};
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, VirtualAddress, Vrid};
use vrrp_net::addr::AddrAttrs;
use vrrp_net::driver::{DriverConfig, InstanceSpec, Vip};
use vrrp_net::testnet::{Lan, Router};

const STEP: Duration = Duration::from_secs(3);

fn vip(text: &str, attrs: AddrAttrs) -> Result<Vip> {
    let mut v = Vip::new(text.parse::<VirtualAddress>()?);
    v.attrs = attrs;
    Ok(v)
}

fn spec(name: &str, vrid: u8, vips: Vec<Vip>) -> Result<InstanceSpec> {
    let first = vips.first().context("one address")?.address;
    let config = InstanceConfig::v3(Vrid::new(vrid).context("vrid")?)
        .virtual_address(first)
        .primary_address("0.0.0.0".parse()?)
        .priority(Priority::new(150))
        .advert_interval(Centisecs::new(5))
        .build()?;
    let mut spec = InstanceSpec::new(name, "eth0", config);
    spec.vips = vips;
    Ok(spec)
}

/// The `ip -d -o addr` line of `addr` in the router's namespace, if any.
fn line_of(r: &Router, addr: &str) -> Result<Option<String>> {
    let out = r.ns().ip(&["-d", "-o", "addr", "show"])?;
    Ok(out
        .lines()
        .find(|l| {
            l.split_whitespace()
                .any(|w| w.split('/').next() == Some(addr))
        })
        .map(str::to_owned))
}

fn wait_line(r: &Router, addr: &str, what: &str, f: impl Fn(&str) -> bool) -> Result<String> {
    let mut last = None;
    wait_until(what, STEP, || {
        last = line_of(r, addr)?;
        Ok(last.as_deref().is_some_and(&f))
    })
    .with_context(|| format!("last seen: {last:?}"))?;
    last.context("line")
}

fn sysctl(r: &Router, key: &str) -> Result<String> {
    let out = r
        .ns()
        .exec("cat", &[&format!("/proc/sys/net/ipv4/conf/{key}")])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn address_options_reach_the_kernel_and_a_reload_replaces_a_changed_scope() -> Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let started = std::time::Instant::now();
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    let brd = "192.0.2.127".parse().ok();
    let mut labelled = vip(
        "192.0.2.101/26",
        AddrAttrs {
            scope: Some(253),
            broadcast: brd,
            ..AddrAttrs::default()
        },
    )?;
    labelled.label = Some("eth0:opt".into());
    let peer = vip(
        "192.0.2.102/32",
        AddrAttrs {
            peer: "192.0.2.202".parse().ok(),
            ..AddrAttrs::default()
        },
    )?;
    let mut deprecated = vip(
        "2001:db8::101/128",
        AddrAttrs {
            preferred_lft: Some(0),
            ..AddrAttrs::default()
        },
    )?;
    deprecated.excluded = true;
    let mut lifetime = vip(
        "2001:db8::102/64",
        AddrAttrs {
            preferred_lft: Some(120),
            ..AddrAttrs::default()
        },
    )?;
    lifetime.excluded = true;
    let mut static_host = vip(
        "192.0.2.150/32",
        AddrAttrs {
            scope: Some(254),
            ..AddrAttrs::default()
        },
    )?;
    static_host.device = Some("eth0".into());
    let instance = spec(
        "OPT",
        101,
        vec![labelled.clone(), peer, deprecated, lifetime],
    )?;
    let mut config = DriverConfig {
        instances: vec![instance.clone()],
        static_addresses: vec![static_host],
        ..DriverConfig::default()
    };
    let mut node = Node::start(r1, config.clone())?;
    // The static address is there from the start, whatever the state.
    wait_line(r1, "192.0.2.150", "static address", |l| {
        l.contains("scope host")
    })?;
    node.wait_state("OPT", State::Master, STEP)?;
    let l = wait_line(r1, "192.0.2.101", "scope and brd", |l| {
        l.contains("brd 192.0.2.127") && l.contains("scope link") && l.contains("eth0:opt")
    })?;
    eprintln!("{l}");
    let l = wait_line(r1, "192.0.2.102", "peer", |l| {
        l.contains("peer 192.0.2.202/32")
    })?;
    eprintln!("{l}");
    let l = wait_line(r1, "2001:db8::101", "deprecated", |l| {
        l.contains("deprecated") && l.contains("preferred_lft 0sec")
    })?;
    eprintln!("{l}");
    let l = wait_line(r1, "2001:db8::102", "preferred lifetime", |l| {
        l.contains("valid_lft forever")
            && !l.contains("preferred_lft forever")
            && !l.contains("deprecated")
    })?;
    eprintln!("{l}");
    let snap = node.snapshot();
    let restored_before = snap.vips_restored;

    // (The kernel refuses a secondary address whose scope is not its
    // primary's: the addresses with a scope of their own are alone in
    // their subnets.)
    // A reload giving the owned address another scope: the kernel cannot
    // change it in place, so the driver replaces it (as keepalived does on
    // a reload, whose comparison of addresses includes the scope).
    labelled.attrs.scope = Some(0);
    let mut changed = instance.clone();
    changed.vips[0] = labelled;
    config.instances = vec![changed];
    node.reload(config.clone())?
        .map_err(|e| anyhow::anyhow!("reload refused: {e}"))?;
    let l = wait_line(r1, "192.0.2.101", "scope global after the reload", |l| {
        l.contains("scope global") && l.contains("brd 192.0.2.127")
    })?;
    eprintln!("{l}");
    let snap = node.snapshot();
    ensure!(
        snap.vips_restored == restored_before + 1,
        "one replacement counted: {:?}",
        snap.vips_restored
    );
    // And it stays: nothing keeps replacing an address with options.
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        node.snapshot().vips_restored == restored_before + 1,
        "replaced again: {}",
        node.snapshot().vips_restored
    );

    node.stop()?;
    for a in [
        "192.0.2.101",
        "192.0.2.102",
        "2001:db8::101",
        "2001:db8::102",
        "192.0.2.150",
    ] {
        ensure!(line_of(r1, a)?.is_none(), "{a} left after the stop");
    }
    eprintln!("address options test took {:?}", started.elapsed());
    Ok(())
}

#[test]
fn no_track_keeps_an_instance_master_when_its_address_interface_goes_down() -> Result<()> {
    let started = std::time::Instant::now();
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    r1.ns().ip_batch(
        "link add eth1 type veth peer name eth1p\nlink set eth1p up\nlink set eth1 up\n",
    )?;
    let on_eth1 = |text: &str, no_track: bool| -> Result<Vip> {
        let mut v = Vip::new(text.parse()?);
        v.device = Some("eth1".into());
        v.no_track = no_track;
        Ok(v)
    };
    let config = DriverConfig {
        instances: vec![
            spec(
                "TRACK",
                111,
                vec![
                    Vip::new("192.0.2.111".parse()?),
                    on_eth1("198.51.100.1/32", false)?,
                ],
            )?,
            spec(
                "NOTRACK",
                112,
                vec![
                    Vip::new("192.0.2.112".parse()?),
                    on_eth1("198.51.100.2/32", true)?,
                ],
            )?,
        ],
        ..DriverConfig::default()
    };
    let mut node = Node::start(r1, config)?;
    node.wait_state("TRACK", State::Master, STEP)?;
    node.wait_state("NOTRACK", State::Master, STEP)?;
    r1.ns().ip(&["link", "set", "eth1", "down"])?;
    // keepalived tracks the interface of an address on another device.
    node.wait_state("TRACK", State::Fault, STEP)?;
    node.poll();
    ensure!(
        node.state("NOTRACK") == Some(State::Master),
        "NOTRACK left Master: {:?}",
        node.seen
    );
    r1.ns().ip(&["link", "set", "eth1", "up"])?;
    node.wait_state("TRACK", State::Master, STEP)?;
    node.stop()?;
    eprintln!("no_track test took {:?}", started.elapsed());
    Ok(())
}

/// With `promote`, the instance asks for promote_secondaries. Its virtual
/// address 192.0.2.129/25 is the primary of its subnet; an operator's
/// 192.0.2.130/25 is its secondary. Returns whether the secondary
/// survived the driver's stop (which removes the virtual address).
fn secondary_survives(promote: bool) -> Result<bool> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    ensure!(
        sysctl(r1, "eth0/promote_secondaries")? == "0",
        "off to begin with"
    );
    let mut s = spec("PROMOTE", 121, vec![Vip::new("192.0.2.129/25".parse()?)])?;
    s.promote_secondaries = promote;
    let mut node = Node::start(r1, DriverConfig::new([s]))?;
    node.wait_state("PROMOTE", State::Master, STEP)?;
    wait_line(r1, "192.0.2.129", "virtual address", |_| true)?;
    r1.ns()
        .ip(&["addr", "add", "192.0.2.130/25", "dev", "eth0"])?;
    let l = line_of(r1, "192.0.2.130")?.context("secondary added")?;
    ensure!(
        l.contains("secondary"),
        "the operator's address is a secondary: {l}"
    );
    ensure!(
        sysctl(r1, "eth0/promote_secondaries")? == if promote { "1" } else { "0" },
        "promote_secondaries while running"
    );
    node.stop()?;
    ensure!(
        line_of(r1, "192.0.2.129")?.is_none(),
        "virtual address removed"
    );
    ensure!(
        sysctl(r1, "eth0/promote_secondaries")? == "0",
        "promote_secondaries turned off again at the stop"
    );
    Ok(line_of(r1, "192.0.2.130")?.is_some())
}

#[test]
fn promote_secondaries_keeps_the_subnet_when_its_primary_vip_goes() -> Result<()> {
    let started = std::time::Instant::now();
    ensure!(
        !secondary_survives(false)?,
        "without promote_secondaries the kernel takes the secondary with its primary"
    );
    ensure!(
        secondary_survives(true)?,
        "with promote_secondaries the secondary is promoted"
    );
    eprintln!("promote_secondaries test took {:?}", started.elapsed());
    Ok(())
}
