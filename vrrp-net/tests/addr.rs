//! Proves `AddressManager`: IPv4 (with label) and IPv6 addresses added and
//! removed on a namespaced interface show in `ip addr`, repeats are not
//! errors, and listing finds the primary IPv4 and the IPv6 link-local.

mod common;

use std::net::IpAddr;

use anyhow::{Context, Result, ensure};
use common::join;
use vrrp_net::addr::{AddOptions, AddressManager};
use vrrp_net::link::ifindex_of;
use vrrp_net::testnet::Lan;

#[test]
fn add_list_remove_is_idempotent_and_visible() -> Result<()> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    let (ipv4, link_local) = (r1.ipv4(), r1.link_local());
    let vip4: IpAddr = "192.0.2.100".parse()?;
    let vip6: IpAddr = "2001:db8::100".parse()?;

    let added = join(r1.spawn(move || async move {
        let ifindex = ifindex_of("eth0")?;
        let mgr = AddressManager::new()?;
        let label = AddOptions {
            label: Some("eth0:vip".into()),
            ..AddOptions::default()
        };
        let nodad = AddOptions {
            no_dad: true,
            ..AddOptions::default()
        };
        ensure!(mgr.add(ifindex, vip4, 32, &label).await?, "first v4 add");
        ensure!(!mgr.add(ifindex, vip4, 32, &label).await?, "second v4 add");
        ensure!(mgr.add(ifindex, vip6, 64, &nodad).await?, "first v6 add");
        ensure!(!mgr.add(ifindex, vip6, 64, &nodad).await?, "second v6 add");

        let list = mgr.list(Some(ifindex)).await?;
        let v4 = list
            .iter()
            .find(|a| a.addr == vip4)
            .context("vip4 listed")?;
        ensure!(
            v4.prefix_len == 32 && v4.label.as_deref() == Some("eth0:vip"),
            "{v4:?}"
        );
        let v6 = list
            .iter()
            .find(|a| a.addr == vip6)
            .context("vip6 listed")?;
        ensure!(v6.prefix_len == 64 && !v6.is_tentative(), "{v6:?}");

        let primary = mgr.primary_ipv4(ifindex).await?.context("primary")?;
        ensure!(primary.addr == IpAddr::V4(ipv4), "primary {primary:?}");
        let ll = mgr.ipv6_link_local(ifindex).await?.context("link-local")?;
        ensure!(ll.addr == IpAddr::V6(link_local), "link-local {ll:?}");
        Ok(ifindex)
    }))?;

    let shown = r1.addresses()?;
    ensure!(
        shown.contains("192.0.2.100/32") && shown.contains("eth0:vip"),
        "{shown}"
    );
    ensure!(shown.contains("2001:db8::100/64"), "{shown}");

    join(r1.spawn(move || async move {
        let mgr = AddressManager::new()?;
        ensure!(mgr.remove(added, vip4, 32).await?, "first v4 remove");
        ensure!(!mgr.remove(added, vip4, 32).await?, "second v4 remove");
        ensure!(mgr.remove(added, vip6, 64).await?, "first v6 remove");
        ensure!(!mgr.remove(added, vip6, 64).await?, "second v6 remove");
        Ok(())
    }))?;
    let shown = r1.addresses()?;
    ensure!(
        !shown.contains("192.0.2.100") && !shown.contains("2001:db8::100/"),
        "{shown}"
    );
    Ok(())
}

#[test]
fn kernel_refusals_are_errors() -> Result<()> {
    let lan = Lan::new(1)?;
    join(lan.router(1)?.spawn(|| async {
        let mgr = AddressManager::new()?;
        let missing = mgr
            .add(9999, "192.0.2.200".parse()?, 24, &AddOptions::default())
            .await;
        ensure!(
            missing.is_err(),
            "adding on a missing interface: {missing:?}"
        );
        Ok(())
    }))
}

#[test]
fn netlink_outside_a_runtime_is_an_error() {
    assert!(AddressManager::new().is_err());
}
