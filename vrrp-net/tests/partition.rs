//! After a partition heals, the neighbours' ARP caches follow the real
//! master again within one advertisement interval: during a partition
//! (nftables in the bridge namespace drops VRRP between the two routers)
//! the backup becomes master too and its gratuitous ARPs move a neighbour's
//! cache entry for the virtual address to its MAC; once the partition
//! heals, the master learns of the other master (its advertisement, or
//! the last one it sends when it steps down) and announces the address
//! again (keepalived's garp_lower_prio_repeat), whichever router hears the
//! other first.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Node, has_address, state_file, wait_until};
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
use vrrp_net::driver::{DriverConfig, InstanceSpec, Vip};
use vrrp_net::testnet::{Lan, Router};

const T: Duration = Duration::from_secs(10);
const INTERVAL: Duration = Duration::from_millis(100);
/// Polling the neighbour's cache every millisecond adds this at most.
const POLL_SLACK: Duration = Duration::from_millis(2);
const VIP: &str = "192.0.2.240";

fn driver(test: &str, prio: u8) -> Result<DriverConfig> {
    let mut config = InstanceConfig::new(
        Vrid::new(40).context("vrid")?,
        Version::V3,
        "0.0.0.0".parse()?,
    )
    .with_priority(Priority::new(prio))
    .with_interval(Centisecs::new(10));
    // No second burst 5 s after a takeover: the only announcements are the
    // takeover's and the repair's, whatever the timing of the test.
    config.garp.master_delay = Duration::ZERO;
    let mut spec = InstanceSpec::new("VI_1", "eth0", config);
    spec.vips.push(Vip::new(VirtualAddress {
        addr: VIP.parse()?,
        prefix_len: 24,
    }));
    Ok(DriverConfig {
        instances: vec![spec],
        state_file: Some(state_file(test)),
        ..DriverConfig::default()
    })
}

/// The MAC in `neighbour`'s ARP cache for the VIP, if any.
fn cached_mac(neighbour: &Router) -> Result<Option<String>> {
    let out = neighbour
        .ns()
        .ip(&["-4", "neigh", "show", VIP, "dev", "eth0"])?;
    Ok(out
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_owned))
}

fn mac_text(r: &Router) -> String {
    r.mac()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn a_healed_partition_sends_the_neighbours_back_to_the_master_within_one_interval() -> Result<()> {
    let lan = Lan::new(3)?;
    let (r1, r2, r3) = (lan.router(1)?, lan.router(2)?, lan.router(3)?);
    let mut n1 = Node::start(r1, driver("partition_r1", 200)?)?;
    let mut n2 = Node::start(r2, driver("partition_r2", 100)?)?;
    n1.wait_state("VI_1", State::Master, T)?;
    n2.wait_state("VI_1", State::Backup, T)?;
    wait_until("VIP on r1", T, || has_address(r1, VIP))?;
    // The neighbour talks to the VIP (a UDP datagram resolves it): its
    // cache points at r1.
    common::join(r3.spawn(|| async {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
        socket.send_to(b"hello", (VIP, 9))?;
        anyhow::Ok(())
    }))?;
    let (m1, m2) = (mac_text(r1), mac_text(r2));
    wait_until("the neighbour resolves the VIP to r1", T, || {
        Ok(cached_mac(r3)?.as_deref() == Some(m1.as_str()))
    })?;

    // Partition: VRRP between r1 and r2 is dropped, both ways.
    let (p1, p2) = (r1.port(), r2.port());
    lan.bridge().exec_with_input(
        "nft",
        &["-f", "-"],
        &format!(
            "table bridge vrrp_partition {{\n\
               chain forward {{\n\
                 type filter hook forward priority 0; policy accept;\n\
                 iifname \"{p1}\" oifname \"{p2}\" ip protocol 112 drop\n\
                 iifname \"{p2}\" oifname \"{p1}\" ip protocol 112 drop\n\
               }}\n\
             }}\n"
        ),
    )?;
    n2.wait_state("VI_1", State::Master, T)?;
    wait_until("the neighbour follows r2's announcements", T, || {
        Ok(cached_mac(r3)?.as_deref() == Some(m2.as_str()))
    })?;
    // Long enough for r2's takeover burst to be over.
    std::thread::sleep(Duration::from_millis(1200));

    ensure!(
        cached_mac(r3)?.as_deref() == Some(m2.as_str()),
        "the neighbour still follows r2 before the heal"
    );
    // Watch the neighbour's cache from inside its namespace, every
    // millisecond, then heal.
    let want = m1.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let watcher = r3.spawn(move || async move {
        let _ = ready_tx.send(());
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            let arp = std::fs::read_to_string("/proc/thread-self/net/arp")?;
            let hit = arp.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(&VIP) && f.get(3) == Some(&want.as_str())
            });
            if hit {
                return Ok(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        anyhow::bail!("the neighbour never followed r1 again")
    });
    ready_rx.recv_timeout(T)?;
    // The heal takes effect at some moment while the command runs (the
    // process start-up alone takes 5-80 ms on a loaded machine): the
    // neighbour must follow within one interval of that moment, so at the
    // latest one interval after the command returns.
    let started = Instant::now();
    lan.bridge()
        .exec("nft", &["delete", "table", "bridge", "vrrp_partition"])?;
    let healed = Instant::now();
    let seen: Instant = common::join(watcher)?;
    let took = seen.saturating_duration_since(healed);
    eprintln!(
        "the neighbour's cache points at the master {took:?} after the heal ({:?} after the command started)",
        seen.saturating_duration_since(started)
    );
    n2.wait_state("VI_1", State::Backup, T)?;
    ensure!(
        took <= INTERVAL + POLL_SLACK,
        "{took:?} after the heal, more than one interval"
    );
    ensure!(n1.state("VI_1") == Some(State::Master));
    n1.stop()?;
    n2.stop()?;
    Ok(())
}
