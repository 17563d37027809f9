//! `virtual_routes` and `static_routes` checked in the kernel's tables as
//! masters change, with keepalived 2.2.7 as the peer: keepalived runs a
//! keepalived.conf with virtual routes in table 100 and a static route in
//! table 101, `vrrpd` runs the same file converted by `import-keepalived`.
//! Whichever is master has exactly the virtual routes, and the same ones
//! (as `ip route show table 100` prints them); the other has none; a route
//! deleted from vrrpd's table while it is master is put back; both daemons
//! keep the same static route whatever their state, and remove it when
//! they stop.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{Daemon, serial, test_dir};
use vrrp_net::testnet::{Keepalived, Lan, Router};

const T: Duration = Duration::from_secs(15);

fn conf(priority: u8) -> String {
    format!(
        "global_defs {{\n  vrrp_version 3\n}}\n\
         static_routes {{\n  198.51.100.128/25 via 192.0.2.254 dev eth0 table 101 metric 7\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  priority {priority}\n  \
         advert_int 0.1\n  virtual_ipaddress {{\n    192.0.2.61/24\n  }}\n  \
         virtual_routes {{\n    198.51.100.0/24 via 192.0.2.254 dev eth0 table 100 metric 5\n    \
         blackhole 203.0.113.0/24 table 100\n    src 192.0.2.61 203.0.113.128/25 dev eth0 table 100\n  }}\n}}\n"
    )
}

/// Table 100 as `ip route` prints it (empty when the table does not
/// exist).
fn table(r: &Router) -> Result<String> {
    table_n(r, "100")
}

fn table_n(r: &Router, n: &str) -> Result<String> {
    match r.ns().ip(&["-4", "route", "show", "table", n]) {
        Ok(out) => Ok(out.trim().to_owned()),
        Err(e) if e.to_string().contains("FIB table does not exist") => Ok(String::new()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

fn wait_until(what: &str, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + T;
    while !check()? {
        if Instant::now() > deadline {
            bail!("{what}: not after {T:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

#[test]
fn virtual_routes_follow_the_master_like_keepalived() -> Result<()> {
    let _serial = serial();
    let started = Instant::now();
    let lan = Lan::new(2)?;
    let (ka_router, ours_router) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("virtual-routes")?;
    let ka_conf = dir.join("keepalived.conf");
    std::fs::write(&ka_conf, conf(100))?;
    let converted = std::process::Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .arg("import-keepalived")
        .arg(&ka_conf)
        .output()?;
    let stderr = String::from_utf8_lossy(&converted.stderr);
    ensure!(converted.status.success(), "import: {stderr}");
    ensure!(!stderr.contains("warning"), "import warned: {stderr}");
    let toml = String::from_utf8(converted.stdout).context("import output")?;

    // keepalived (priority 200) is master: its table has the routes.
    let ka = Keepalived::start(ka_router.ns(), &conf(200))?;
    ka.wait_for_log("Entering MASTER STATE", T)?;
    let mut ours = Daemon::start(ours_router, &dir, "ours", &toml)?;
    ours.wait_state("VI_1", "backup", T)?;
    wait_until("keepalived's three routes", || {
        Ok(table(ka_router)?.lines().count() == 3)
    })?;
    let keepalived_table = table(ka_router)?;
    ensure!(
        table(ours_router)?.is_empty(),
        "backup: {}",
        table(ours_router)?
    );

    // keepalived stops (priority 0, its routes removed): ours takes over
    // with the same routes, as `ip route` prints them.
    ka.stop(T)?;
    ours.wait_state("VI_1", "master", T)?;
    wait_until("the same routes in vrrpd's table", || {
        Ok(table(ours_router)? == keepalived_table)
    })
    .with_context(|| {
        format!(
            "keepalived's:\n{keepalived_table}\nvrrpd's:\n{}\nlog:\n{}",
            table(ours_router).unwrap_or_default(),
            ours.log_text()
        )
    })?;
    ensure!(
        table(ka_router)?.is_empty(),
        "stopped keepalived: {}",
        table(ka_router)?
    );

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

    // keepalived back with the higher priority preempts: ours removes its
    // routes, keepalived installs its own.
    let ka = Keepalived::start(ka_router.ns(), &conf(200))?;
    ours.wait_state("VI_1", "backup", T)?;
    wait_until("vrrpd's routes removed", || {
        Ok(table(ours_router)?.is_empty())
    })?;
    wait_until("keepalived's routes back", || {
        Ok(table(ka_router)? == keepalived_table)
    })?;
    ka.stop(T)?;
    ours.wait_state("VI_1", "master", T)?;
    let status = ours.stop()?;
    ensure!(status.success(), "vrrpd exited with {status}");
    ensure!(
        table(ours_router)?.is_empty(),
        "after stop: {}",
        table(ours_router)?
    );
    println!("virtual_routes test took {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
