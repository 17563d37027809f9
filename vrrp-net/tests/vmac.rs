//! Proves keepalived's `use_vmac` against Debian's keepalived 2.2.7 using
//! `use_vmac` itself, in namespaces: our macvlan (private mode, MAC
//! 00:00:5e:00:01:VRID, or :02: for IPv6, IPv6 link-local of the base
//! interface and no generated address, keepalived's sysctls) carries the
//! virtual addresses; adverts and gratuitous ARPs / NAs leave with the
//! virtual MAC (from the base MAC with `vmac_xmit_base`); failover both
//! ways; a macvlan deleted by hand is made again; a crash's leftover is
//! reused by the next run; the macvlan is gone after a stop.

mod common;

use std::net::IpAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Node, state_file, wait_until};
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
use vrrp_net::driver::{DriverConfig, InstanceSpec, Vip, VmacSpec};
use vrrp_net::testnet::{Keepalived, Lan, Netns, Router};

const T: Duration = Duration::from_secs(5);

#[derive(Clone, Copy)]
struct Case {
    vrid: u8,
    vip: &'static str,
    prefix: u8,
    xmit_base: bool,
}

impl Case {
    fn v6(&self) -> bool {
        self.vip.contains(':')
    }
    fn vmac(&self) -> String {
        format!("vrrp.{}", self.vrid)
    }
    fn mac(&self) -> String {
        let kind = if self.v6() { 2 } else { 1 };
        format!("00:00:5e:00:{kind:02x}:{:02x}", self.vrid)
    }
}

fn keepalived_conf(c: Case, prio: u8) -> String {
    let xmit = if c.xmit_base {
        "  vmac_xmit_base\n"
    } else {
        ""
    };
    format!(
        "global_defs {{\n  router_id ka{vrid}\n  vrrp_garp_master_delay 0\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  use_vmac\n{xmit}  \
         virtual_router_id {vrid}\n  version 3\n  priority {prio}\n  advert_int 0.1\n  \
         virtual_ipaddress {{\n    {vip}/{prefix}\n  }}\n}}\n",
        vrid = c.vrid,
        vip = c.vip,
        prefix = c.prefix,
    )
}

fn ours(c: Case, prio: u8) -> Result<DriverConfig> {
    let any: IpAddr = if c.v6() {
        "::".parse()?
    } else {
        "0.0.0.0".parse()?
    };
    let config = InstanceConfig::new(Vrid::new(c.vrid).context("vrid")?, Version::V3, any)
        .with_priority(Priority::new(prio))
        .with_interval(Centisecs::new(10));
    let spec = InstanceSpec::new("VI_1", "eth0", config)
        .vip(Vip::new(VirtualAddress {
            addr: c.vip.parse()?,
            prefix_len: c.prefix,
        }))
        .with_vmac(VmacSpec {
            name: c.vmac(),
            xmit_base: c.xmit_base,
        });
    Ok(DriverConfig {
        instances: vec![spec],
        // One record for both runs on r1: the second finds what the first
        // left behind.
        state_file: Some(record(c)),
        ..DriverConfig::default()
    })
}

/// The record of the addresses the driver added, for case `c`.
fn record(c: Case) -> std::path::PathBuf {
    state_file(&format!("vmac-{}", c.vrid))
}

fn link(ns: &Netns, name: &str) -> Result<Option<String>> {
    // `ip` fails when there is no such device.
    Ok(ns.ip(&["-d", "link", "show", "dev", name]).ok())
}

fn addrs(ns: &Netns, name: &str) -> Result<String> {
    Ok(ns.ip(&["addr", "show", "dev", name]).unwrap_or_default())
}

fn sysctl(ns: &Netns, path: &str) -> Result<String> {
    let out = ns.exec("cat", &[&format!("/proc/sys/net/{path}")])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `tcpdump -e` on eth0 of a namespace, into a file.
struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(ns: &Netns, tag: &str) -> Result<Capture> {
        let file =
            std::env::temp_dir().join(format!("vrrp-net-vmac-{}-{tag}.txt", std::process::id()));
        let out = std::fs::File::create(&file)?;
        let err_file = file.with_extension("err");
        let err = std::fs::File::create(&err_file)?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "tcpdump",
                "-e",
                "-nn",
                "-l",
                "-i",
                "eth0",
                "vrrp or ip6 proto 112 or arp or icmp6",
            ])
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("tcpdump")?;
        let capture = Capture { child, file };
        wait_until("tcpdump listening", T, || {
            Ok(std::fs::read_to_string(&err_file)?.contains("listening on"))
        })?;
        let _ = std::fs::remove_file(&err_file);
        Ok(capture)
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

fn has_vip(r: &Router, dev: &str, vip: &str) -> Result<bool> {
    Ok(addrs(r.ns(), dev)?.contains(&format!("{vip}/")))
}

fn run(c: Case) -> Result<()> {
    let started = std::time::Instant::now();
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let vmac = c.vmac();
    let mac = c.mac();
    let base_mac = r1
        .mac()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let capture = Capture::start(r2.ns(), &format!("{}", c.vrid))?;

    // 1. Ours (200) and a keepalived backup (100), both with use_vmac.
    let ka = Keepalived::start(r2.ns(), &keepalived_conf(c, 100))?;
    let mut node = Node::start(r1, ours(c, 200)?)?;
    node.wait_state("VI_1", State::Master, T)?;
    ka.wait_for_log("Entering BACKUP STATE", T)
        .context("keepalived backup")?;
    wait_until("VIP on our macvlan", T, || has_vip(r1, &vmac, c.vip))?;
    let shown = link(r1.ns(), &vmac)?.context("our macvlan exists")?;
    ensure!(
        shown.contains("macvlan mode private") && shown.contains(&format!("link/ether {mac}")),
        "{shown}"
    );
    ensure!(shown.contains("addrgenmode none"), "{shown}");
    ensure!(!has_vip(r1, "eth0", c.vip)?, "the VIP is not on the base");
    if c.v6() {
        let ll = r1.link_local().to_string();
        let on_vmac = addrs(r1.ns(), &vmac)?;
        if c.xmit_base {
            ensure!(!on_vmac.contains("fe80:"), "{on_vmac}");
        } else {
            ensure!(
                on_vmac.contains(&format!("{ll}/64")),
                "the base's link-local on the macvlan: {on_vmac}"
            );
        }
    } else {
        for (key, want) in [
            ("arp_ignore", "1"),
            ("accept_local", "1"),
            ("rp_filter", "0"),
            ("promote_secondaries", "1"),
        ] {
            let got = sysctl(r1.ns(), &format!("ipv4/conf/{vmac}/{key}"))?;
            ensure!(got == want, "{vmac} {key} = {got}");
        }
        ensure!(sysctl(r1.ns(), &format!("ipv6/conf/{vmac}/disable_ipv6"))? == "1");
        ensure!(sysctl(r1.ns(), "ipv4/conf/eth0/arp_ignore")? == "1");
        ensure!(sysctl(r1.ns(), "ipv4/conf/eth0/arp_filter")? == "1");
    }
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        !ka.log().contains("Entering MASTER STATE"),
        "keepalived respected our master:\n{}",
        ka.log()
    );

    // 2. Deleted by hand: made again, and master again with its VIP.
    r1.ns().ip(&["link", "del", &vmac])?;
    wait_until("macvlan made again", T, || {
        Ok(link(r1.ns(), &vmac)?.is_some())
    })?;
    wait_until("VIP back on the macvlan", T, || has_vip(r1, &vmac, c.vip))?;
    node.wait_state("VI_1", State::Master, T)?;

    // 3. Ours dies: keepalived takes over; our macvlan stays (a crash).
    // The crash comes once the VIP is in the record (written off the loop,
    // after the kernel confirmed the add: a crash before that write leaves
    // an address no record names, someone else's to the next run).
    wait_until("the VIP in the record", T, || {
        Ok(std::fs::read_to_string(record(c))
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.starts_with(&format!("{}/", c.vip)))
            }))
    })?;
    node.kill()?;
    ka.wait_for_log("Entering MASTER STATE", T)
        .context("keepalived took over")?;
    ensure!(link(r1.ns(), &vmac)?.is_some(), "a crash leaves it");
    // The operator puts the base's ARP settings back by hand: the next
    // run must restore these when it stops.
    if !c.v6() {
        r1.ns().sysctl(&[
            "net.ipv4.conf.eth0.arp_ignore=0",
            "net.ipv4.conf.eth0.arp_filter=0",
        ])?;
    }

    // 4. Ours again at 50: backup, reusing its leftover; keepalived dies,
    //    ours takes over.
    let mut node = Node::start(r1, ours(c, 50)?)?;
    node.wait_state("VI_1", State::Backup, T)?;
    std::thread::sleep(Duration::from_millis(500));
    node.poll();
    ensure!(
        node.seen.iter().all(|(_, e)| e.to != State::Master),
        "ours stayed backup: {:?}",
        node.seen
    );
    // The crash's leftover VIP goes at start-up (from the record; under
    // load that can take longer than the pause above).
    let deadline = Instant::now() + T;
    while has_vip(r1, &vmac, c.vip)? {
        ensure!(Instant::now() < deadline, "backup holds no VIP");
        std::thread::sleep(Duration::from_millis(10));
    }
    ka.kill()?;
    node.wait_state("VI_1", State::Master, T)?;
    wait_until("VIP on our macvlan again", T, || has_vip(r1, &vmac, c.vip))?;

    // 5. A stop removes the macvlan and puts the base's ARP settings back.
    node.stop()?;
    ensure!(link(r1.ns(), &vmac)?.is_none(), "macvlan removed on stop");
    if !c.v6() {
        ensure!(sysctl(r1.ns(), "ipv4/conf/eth0/arp_ignore")? == "0");
        ensure!(sysctl(r1.ns(), "ipv4/conf/eth0/arp_filter")? == "0");
    }

    // What r2 saw on the wire: adverts from both with the virtual MAC (the
    // base MAC with xmit_base), and our announcements with the virtual MAC.
    let text = capture.text();
    // Ours: from r1's address; keepalived's: from r2's.
    let ip = |r: &Router| -> String {
        if c.v6() {
            r.link_local().to_string()
        } else {
            r.ipv4().to_string()
        }
    };
    let adverts_from = |src: &str, r: &Router| {
        let from = format!(" {} > ", ip(r));
        text.lines()
            .filter(|l| l.starts_with_src(src) && l.contains("VRRP") && l.contains(&from))
            .count()
    };
    let (advert_mac, ka_mac) = if c.xmit_base {
        let r2_mac = r2
            .mac()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        (base_mac, r2_mac)
    } else {
        (mac.clone(), mac.clone())
    };
    ensure!(
        adverts_from(&advert_mac, r1) >= 5,
        "our adverts from {advert_mac}:\n{}",
        tail(&text)
    );
    ensure!(
        adverts_from(&ka_mac, r2) >= 2,
        "keepalived's adverts from {ka_mac}:\n{}",
        tail(&text)
    );
    let announce = text.lines().any(|l| {
        l.starts_with_src(&mac)
            && if c.v6() {
                l.contains("neighbor advertisement") && l.contains(c.vip)
            } else {
                l.contains("ARP") && l.contains(&format!("tell {}", c.vip))
            }
    });
    ensure!(announce, "announcement from {mac}:\n{}", tail(&text));
    eprintln!("use_vmac case {} took {:?}", c.vrid, started.elapsed());
    Ok(())
}

trait SrcMac {
    fn starts_with_src(&self, mac: &str) -> bool;
}

impl SrcMac for &str {
    /// A `tcpdump -e` line whose source MAC is `mac` (after the timestamp).
    fn starts_with_src(&self, mac: &str) -> bool {
        self.split_whitespace().nth(1) == Some(mac)
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn use_vmac_ipv4_against_keepalived() -> Result<()> {
    run(Case {
        vrid: 71,
        vip: "192.0.2.171",
        prefix: 24,
        xmit_base: false,
    })
}

#[test]
fn use_vmac_ipv6_against_keepalived() -> Result<()> {
    run(Case {
        vrid: 72,
        vip: "2001:db8::172",
        prefix: 64,
        xmit_base: false,
    })
}

#[test]
fn vmac_xmit_base_against_keepalived() -> Result<()> {
    run(Case {
        vrid: 73,
        vip: "192.0.2.173",
        prefix: 24,
        xmit_base: true,
    })
}
