//! `virtual_routes`, `virtual_rules`, `static_routes` and `static_rules`
//! checked in the kernel's tables as masters change, with keepalived 2.2.7
//! as the peer: keepalived runs a keepalived.conf with virtual routes in
//! table 100 (one of them multipath with weighted `nexthop`s, one written
//! with keepalived's deprecated `via A or B`), virtual rules, a static route in table 101 and a static
//! rule; `vrrpd` runs the same file converted by `import-keepalived`.
//! Whichever is master has exactly the virtual routes and rules, and the
//! same ones (as `ip route show table 100` and `ip rule` print them); the
//! other has none; a route and a rule deleted from vrrpd's tables while it
//! is master are put back; both daemons keep the same static route and
//! rule whatever their state, and remove them when they stop. The
//! instance's `virtual_ipaddress_excluded` (an IPv6 address on an IPv4
//! instance, which only the exclusion allows) moves with the master and
//! keeps the two interoperating: neither advertises it.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Daemon, has_address, serial, test_dir};
use vrrp_net::testnet::{Keepalived, Lan, Router};

const T: Duration = Duration::from_secs(15);
const EXCLUDED: &str = "2001:db8::61";

fn conf(priority: u8) -> String {
    format!(
        "global_defs {{\n  vrrp_version 3\n}}\n\
         static_routes {{\n  198.51.100.128/25 via 192.0.2.254 dev eth0 table 101 metric 7\n}}\n\
         static_rules {{\n  from 198.51.100.0/24 table 101 priority 201\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  priority {priority}\n  \
         advert_int 0.1\n  virtual_ipaddress {{\n    192.0.2.61/24\n  }}\n  \
         virtual_ipaddress_excluded {{\n    2001:db8::61/64\n  }}\n  \
         virtual_routes {{\n    198.51.100.0/24 via 192.0.2.254 dev eth0 table 100 metric 5\n    \
         blackhole 203.0.113.0/24 table 100\n    src 192.0.2.61 203.0.113.128/25 dev eth0 table 100\n    \
         198.51.100.0/26 table 100 nexthop via 192.0.2.254 dev eth0 weight 2 nexthop via 192.0.2.253 dev eth0\n    \
         203.0.113.64/26 via 192.0.2.252 or 192.0.2.251 table 100\n  }}\n  \
         virtual_rules {{\n    from 192.0.2.61/32 table 100 priority 100\n    fwmark 0x10/0xff table 100 priority 101\n    \
         to 203.0.113.0/24 iif eth0 table 100 priority 102 no_track\n  }}\n}}\n"
    )
}

/// Table `n` as `ip route` prints it (empty when the table does not
/// exist).
fn table_n(r: &Router, n: &str) -> Result<String> {
    match r.ns().ip(&["-4", "route", "show", "table", n]) {
        Ok(out) => Ok(out.trim().to_owned()),
        Err(e) if e.to_string().contains("FIB table does not exist") => Ok(String::new()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// How many routes `ip route` printed (a multipath route's next hops are
/// indented lines of their own).
fn routes_in(table: &str) -> usize {
    table
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .count()
}

/// Table 100: the virtual routes.
fn table(r: &Router) -> Result<String> {
    table_n(r, "100")
}

/// The rules of priorities `from..=to`, as `ip rule` prints them.
fn rules(r: &Router, from: u32, to: u32) -> Result<String> {
    let out = r
        .ns()
        .ip(&["-4", "rule", "show"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(out
        .lines()
        .filter(|l| {
            l.split(':')
                .next()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .is_some_and(|p| (from..=to).contains(&p))
        })
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The virtual rules (priorities 100 to 102).
fn virtual_rules(r: &Router) -> Result<String> {
    rules(r, 100, 102)
}

/// The static rule (priority 201).
fn static_rule(r: &Router) -> Result<String> {
    rules(r, 201, 201)
}

fn wait_until(what: &str, check: impl FnMut() -> Result<bool>) -> Result<()> {
    common::wait_for(what, T, check)
}

#[test]
fn routes_and_rules_follow_the_master_like_keepalived() -> Result<()> {
    let _serial = serial();
    let started = Instant::now();
    let lan = Lan::new(2)?;
    let (ka_router, ours_router) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("virtual-routes")?;
    let ka_conf = dir.join("keepalived.conf");
    std::fs::write(&ka_conf, conf(100))?;
    let toml = common::import_whole(&ka_conf)?;

    // keepalived (priority 200) is master: its tables have the virtual
    // routes and rules; ours, backup, has none; both have the static ones.
    let ka = Keepalived::start(ka_router.ns(), &conf(200))?;
    ka.wait_for_log("Entering MASTER STATE", T)?;
    let mut ours = Daemon::start(ours_router, &dir, "ours", &toml)?;
    ours.wait_state("VI_1", "backup", T)?;
    wait_until("keepalived's five routes and three rules", || {
        Ok(routes_in(&table(ka_router)?) == 5 && virtual_rules(ka_router)?.lines().count() == 3)
    })?;
    let keepalived_table = table(ka_router)?;
    let keepalived_rules = virtual_rules(ka_router)?;
    wait_until("keepalived's excluded address", || {
        has_address(ka_router, EXCLUDED)
    })?;
    ensure!(
        !has_address(ours_router, EXCLUDED)?,
        "backup holds the excluded address"
    );
    wait_until("the same static route and rule on both", || {
        Ok(!table_n(ka_router, "101")?.is_empty()
            && table_n(ka_router, "101")? == table_n(ours_router, "101")?
            && !static_rule(ka_router)?.is_empty()
            && static_rule(ka_router)? == static_rule(ours_router)?)
    })?;
    ensure!(
        table(ours_router)?.is_empty(),
        "backup: {}",
        table(ours_router)?
    );
    ensure!(
        virtual_rules(ours_router)?.is_empty(),
        "backup: {}",
        virtual_rules(ours_router)?
    );

    // keepalived stops (priority 0, all its entries removed): ours takes
    // over with the same routes and rules, as `ip` prints them.
    ka.stop(T)?;
    ours.wait_state("VI_1", "master", T)?;
    wait_until("the same routes and rules in vrrpd's tables", || {
        Ok(table(ours_router)? == keepalived_table
            && virtual_rules(ours_router)? == keepalived_rules)
    })
    .with_context(|| {
        format!(
            "keepalived's:\n{keepalived_table}\n{keepalived_rules}\nvrrpd's:\n{}\n{}\nlog:\n{}",
            table(ours_router).unwrap_or_default(),
            virtual_rules(ours_router).unwrap_or_default(),
            ours.log_text()
        )
    })?;
    ensure!(
        table(ka_router)?.is_empty(),
        "stopped keepalived: {}",
        table(ka_router)?
    );
    ensure!(
        virtual_rules(ka_router)?.is_empty()
            && static_rule(ka_router)?.is_empty()
            && table_n(ka_router, "101")?.is_empty(),
        "keepalived removes its routes and rules when it stops"
    );
    ensure!(
        !static_rule(ours_router)?.is_empty() && !table_n(ours_router, "101")?.is_empty(),
        "ours keeps its static route and rule"
    );

    wait_until("the excluded address on vrrpd's master", || {
        Ok(has_address(ours_router, EXCLUDED)? && !has_address(ka_router, EXCLUDED)?)
    })?;

    // Deleted from outside while master: put back.
    ours_router
        .ns()
        .ip(&[
            "route",
            "del",
            "blackhole",
            "203.0.113.0/24",
            "table",
            "100",
        ])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ours.wait_message(
        "route removed from outside while wanted",
        Duration::from_secs(2),
    )?;
    wait_until("the route put back", || {
        Ok(table(ours_router)? == keepalived_table)
    })?;
    ours_router
        .ns()
        .ip(&["rule", "del", "priority", "101"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ours.wait_message(
        "rule removed from outside while wanted",
        Duration::from_secs(2),
    )?;
    wait_until("the rule put back", || {
        Ok(virtual_rules(ours_router)? == keepalived_rules)
    })?;

    // keepalived back with the higher priority preempts: ours removes its
    // virtual routes and rules, keepalived installs its own.
    let ka = Keepalived::start(ka_router.ns(), &conf(200))?;
    ours.wait_state("VI_1", "backup", T)?;
    wait_until("the excluded address back on keepalived only", || {
        Ok(has_address(ka_router, EXCLUDED)? && !has_address(ours_router, EXCLUDED)?)
    })?;
    wait_until("vrrpd's routes and rules removed", || {
        Ok(table(ours_router)?.is_empty() && virtual_rules(ours_router)?.is_empty())
    })?;
    wait_until("keepalived's routes and rules back", || {
        Ok(table(ka_router)? == keepalived_table && virtual_rules(ka_router)? == keepalived_rules)
    })?;
    ka.stop(T)?;
    ours.wait_state("VI_1", "master", T)?;
    let status = ours.stop()?;
    ensure!(status.success(), "vrrpd exited with {status}");
    ensure!(
        table(ours_router)?.is_empty()
            && virtual_rules(ours_router)?.is_empty()
            && table_n(ours_router, "101")?.is_empty()
            && static_rule(ours_router)?.is_empty(),
        "vrrpd removes its routes and rules when it stops, as keepalived"
    );
    println!("virtual routes and rules test took {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The kernel drops an IPv4 route through an interface that goes down
/// without notifying it: the driver re-reads the routes it follows when
/// the link notice comes (not at a periodic re-read, now a minute apart),
/// and puts the virtual route back once the interface is up.
#[test]
fn a_route_flushed_with_its_interface_is_noticed_at_once_and_put_back() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(1)?;
    let router = lan.router(1)?;
    let ip = |args: &[&str]| -> Result<String> {
        router.ns().ip(args).map_err(|e| anyhow::anyhow!("{e}"))
    };
    // A second interface of the router's own, up, with a network of its
    // own: the virtual route goes through it.
    ip(&[
        "link", "add", "dum0", "type", "veth", "peer", "name", "dum0p",
    ])?;
    ip(&["link", "set", "dum0p", "up"])?;
    ip(&["link", "set", "dum0", "up"])?;
    ip(&["addr", "add", "198.51.100.1/24", "dev", "dum0"])?;
    let dir = test_dir("virtual-routes-flush")?;
    let conf = dir.join("keepalived.conf");
    std::fs::write(
        &conf,
        "global_defs {\n  vrrp_version 3\n}\n\
         vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 62\n  \
         priority 200\n  advert_int 0.1\n  virtual_ipaddress {\n    192.0.2.62/24\n  }\n  \
         virtual_routes {\n    203.0.113.0/24 via 198.51.100.254 dev dum0\n  }\n}\n",
    )?;
    let toml = common::import_whole(&conf)?;
    let mut ours = Daemon::start(router, &dir, "ours", &toml)?;
    ours.wait_state("VI_1", "master", T)?;
    let route = || -> Result<bool> {
        Ok(ip(&["-4", "route", "show", "203.0.113.0/24"])?.contains("via 198.51.100.254 dev dum0"))
    };
    wait_until("the virtual route", route)?;

    ip(&["link", "set", "dum0", "down"])?;
    ensure!(!route()?, "the kernel flushed the route with its interface");
    ours.wait_message(
        "route removed from outside while wanted",
        Duration::from_secs(1),
    )
    .with_context(|| format!("the flush noticed within 1 s\nlog:\n{}", ours.log_text()))?;
    ip(&["link", "set", "dum0", "up"])?;
    wait_until("the route put back once dum0 is up", route).with_context(|| ours.log_text())?;
    ours.stop()?;
    ensure!(!route()?, "removed at stop");
    Ok(())
}
