//! Proves `RouteManager` and `RuleManager` against a real kernel in a
//! namespace: routes and rules added, listed and removed as `ip` shows
//! them; a repeated add or removal is `false`, not an error; a table dump
//! returns that table only (the kernel filters, so a host with a full
//! routing table elsewhere is not read whole); a removal names the
//! protocol, so someone else's route of the same identity stays.

mod common;

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use common::join;
use vrrp_net::link::ifindex_of;
use vrrp_net::route::{Route, RouteManager};
use vrrp_net::rule::{Rule, RuleManager};
use vrrp_net::testnet::Lan;

#[test]
fn routes_and_rules_round_trip_through_the_kernel() -> Result<()> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    // Someone else's routes: one in the table the driver reads, many in
    // another.
    r1.ns().ip(&[
        "route",
        "add",
        "203.0.113.0/24",
        "dev",
        "eth0",
        "table",
        "100",
        "proto",
        "static",
    ])?;
    let mut batch = String::new();
    for n in 0..200 {
        batch.push_str(&format!("route add 198.51.100.{n}/32 dev eth0 table 200\n"));
    }
    r1.ns().ip_batch(&batch)?;
    let via: Route = "198.51.100.0/24 via 192.0.2.254 dev eth0 table 100 metric 5".parse()?;
    let v6: Route = "2001:db8:1::/48 dev eth0 table 100".parse()?;
    let rule: Rule = "from 192.0.2.0/24 table 100 priority 100".parse()?;
    let auto: Rule = "fwmark 0x10/0xff table 100".parse()?;
    let clash: Route = "203.0.113.0/24 dev eth0 table 100".parse()?;
    let (v, v6c, rl, au, cl) = (
        via.clone(),
        v6.clone(),
        rule.clone(),
        auto.clone(),
        clash.clone(),
    );
    join(r1.spawn(move || async move {
        let ifindex = ifindex_of("eth0")?;
        let routes = RouteManager::new()?;
        let rules = RuleManager::new()?;
        ensure!(routes.add(&v, Some(ifindex)).await?, "first add");
        ensure!(!routes.add(&v, Some(ifindex)).await?, "second add");
        ensure!(routes.add(&v6c, Some(ifindex)).await?, "v6 add");
        ensure!(
            !routes.add(&cl, Some(ifindex)).await?,
            "someone else's has the identity"
        );
        let table100 = routes.list_tables(&BTreeSet::from([100])).await?;
        let keys: Vec<_> = table100.iter().map(|r| r.key).collect();
        ensure!(table100.iter().all(|r| r.key.table == 100), "{table100:?}");
        ensure!(
            keys.contains(&v.key()) && keys.contains(&v6c.key()),
            "{keys:?}"
        );
        ensure!(keys.contains(&cl.key()), "{keys:?}");
        ensure!(
            table100.len() < 10,
            "table 200 was read too: {}",
            table100.len()
        );
        // Ours removes ours only: the protocols differ.
        ensure!(
            !routes.remove(&cl, Some(ifindex)).await?,
            "someone else's route removed"
        );
        ensure!(routes.remove(&v, Some(ifindex)).await?, "first removal");
        ensure!(!routes.remove(&v, Some(ifindex)).await?, "second removal");
        ensure!(routes.remove(&v6c, Some(ifindex)).await?, "v6 removal");

        ensure!(rules.add(&rl).await?, "first rule add");
        ensure!(!rules.add(&rl).await?, "second rule add");
        ensure!(rules.add(&au).await?, "rule without priority");
        let listed = rules.list().await?;
        ensure!(listed.iter().any(|r| r.key() == rl.key()), "{listed:?}");
        ensure!(
            listed.iter().any(|r| au.key().covers(&r.key())),
            "the kernel's priority: {listed:?}"
        );
        ensure!(rules.remove(&au).await?, "rule removal");
        ensure!(rules.remove(&rl).await?, "rule removal");
        ensure!(!rules.remove(&rl).await?, "second rule removal");
        Ok(())
    }))?;
    let left = r1.ns().ip(&["route", "show", "table", "100"])?;
    ensure!(
        left.trim() == "203.0.113.0/24 dev eth0 proto static scope link",
        "{left}"
    );
    let rules_left = r1.ns().ip(&["rule", "show"])?;
    ensure!(!rules_left.contains("lookup 100"), "{rules_left}");
    Ok(())
}
