//! Proves the test LAN itself: addresses and link-local are usable at once,
//! namespaces are deleted on drop (also after a panic), and
//! `Lan::block_multicast` stops VRRP multicast while unicast (IPv4 and
//! IPv6) keeps working.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{join, spawn_receiver, wait_ready};
use vrrp_net::socket::{Family, SocketConfig, VrrpSocket};
use vrrp_net::testnet::{Lan, Router};

#[test]
fn lan_has_addresses_and_is_removed_on_drop_even_after_panic() -> Result<()> {
    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let lan = Lan::new(3).expect("lan");
        let mut n = names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        n.push(lan.bridge().path());
        for r in lan.routers() {
            n.push(r.ns().path());
            let addrs = r.addresses().expect("ip addr");
            assert!(addrs.contains(&format!("{}/24", r.ipv4())), "{addrs}");
            assert!(addrs.contains(&format!("{}/64", r.ipv6())), "{addrs}");
            assert!(addrs.contains(&r.link_local().to_string()), "{addrs}");
            assert!(!addrs.contains("tentative"), "{addrs}");
        }
        panic!("deliberate");
    });
    ensure!(result.is_err(), "the closure should have panicked");
    let names = names
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ensure!(names.len() == 4, "namespaces recorded: {names:?}");
    for path in names {
        ensure!(!Path::new(&path).exists(), "{path:?} left behind");
    }
    Ok(())
}

fn multicast_and_unicast_received(lan: &Lan, family: Family) -> Result<(usize, usize)> {
    let (r1, r2): (&Router, &Router) = (lan.router(1)?, lan.router(2)?);
    let (source, unicast) = match family {
        Family::Ipv4 => (IpAddr::V4(r1.ipv4()), IpAddr::V4(r2.ipv4())),
        _ => (IpAddr::V6(r1.link_local()), IpAddr::V6(r2.ipv6())),
    };
    let (receiver, ready) =
        spawn_receiver(r2, family, true, Duration::from_millis(400), |_| false)?;
    wait_ready(&ready)?;
    let ifname = r1.ifname().to_owned();
    join(r1.spawn(move || async move {
        let socket = VrrpSocket::open(&SocketConfig::new(ifname, family).with_source(source))?;
        for _ in 0..3 {
            // Sends to a blocked interface may fail or be dropped silently;
            // either way nothing may arrive.
            let _ = socket
                .send_to(
                    &[0x31, 1, 100, 0, 0, 100, 0, 0],
                    vrrp_core::wire::multicast_group(family),
                )
                .await;
            socket
                .send_to(&[0x31, 2, 100, 0, 0, 100, 0, 0], unicast)
                .await
                .context("unicast send")?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }))?;
    let (_, got) = join(receiver)?;
    let multicast = got
        .iter()
        .filter(|p| p.dst == vrrp_core::wire::multicast_group(family))
        .count();
    let unicast_count = got.iter().filter(|p| p.dst == unicast).count();
    Ok((multicast, unicast_count))
}

#[test]
fn block_multicast_stops_vrrp_multicast_but_not_unicast() -> Result<()> {
    let lan = Lan::new(2)?;
    for family in [Family::Ipv4, Family::Ipv6] {
        let (m, u) = multicast_and_unicast_received(&lan, family)?;
        ensure!(
            m == 3 && u == 3,
            "{family:?} open: multicast {m}, unicast {u}"
        );
    }
    lan.block_multicast(true)?;
    for family in [Family::Ipv4, Family::Ipv6] {
        let (m, u) = multicast_and_unicast_received(&lan, family)?;
        ensure!(
            m == 0 && u == 3,
            "{family:?} blocked: multicast {m}, unicast {u}"
        );
    }
    lan.block_multicast(false)?;
    for family in [Family::Ipv4, Family::Ipv6] {
        let (m, u) = multicast_and_unicast_received(&lan, family)?;
        ensure!(
            m == 3 && u == 3,
            "{family:?} unblocked: multicast {m}, unicast {u}"
        );
    }
    Ok(())
}
