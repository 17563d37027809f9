//! Routed VIPs with a real BGP engine: two `vrrpd` routers export their
//! virtual address as a /32 route in kernel table 198 while Master
//! (`export_routes`); Debian's BIRD 2 in each router namespace learns that
//! table and announces it over eBGP to an upstream BIRD. Proves that the
//! upstream's route for the VIP points at the master, that a route an
//! operator deletes is put back, that after the master node dies the
//! upstream points at the new master within Master_Down_Interval plus the
//! BGP update time (both printed), that nothing from the dead node is left
//! once its session is down, and that a graceful stop removes the route.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{Daemon, serial, test_dir};
use vrrp_net::testnet::{Lan, Netns, Router};

const VIP: &str = "203.0.113.10";
const TABLE: u32 = 198;
const PROTO: u8 = 248;
const T: Duration = Duration::from_secs(20);

/// A `bird -f` in a namespace, killed on drop.
struct Bird {
    child: Child,
    socket: PathBuf,
}

impl Bird {
    fn start(ns: &Netns, dir: &Path, name: &str, conf: &str) -> Result<Bird> {
        let conf_path = dir.join(format!("{name}.conf"));
        std::fs::write(&conf_path, conf)?;
        let socket = dir.join(format!("{name}.ctl"));
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "bird", "-f", "-c"])
            .arg(&conf_path)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(dir.join(format!("{name}.pid")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning bird")?;
        Ok(Bird { child, socket })
    }

    /// `birdc -s SOCKET ARGS...`'s output.
    fn show(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("running birdc")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// SIGKILL: the node dies.
    fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A router's BIRD: learns kernel table 198 (`learn`: routes of other
/// programs) and announces it to the upstream over eBGP, as the README
/// shows.
fn router_bird(me: &Router, upstream: &Router) -> String {
    format!(
        "router id {me};\n\
         protocol device {{ }}\n\
         protocol kernel vips {{\n  kernel table {TABLE};\n  learn;\n  scan time 10;\n  ipv4 {{ import all; export none; }};\n}}\n\
         protocol bgp upstream {{\n  local {me} as 65001;\n  neighbor {up} as 65000;\n  hold time 3;\n  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 2;\n  ipv4 {{ import none; export all; }};\n}}\n",
        me = me.ipv4(),
        up = upstream.ipv4(),
    )
}

/// The upstream's BIRD: a session to each router, best routes exported to
/// its kernel's main table.
fn upstream_bird(me: &Router, peers: &[&Router]) -> String {
    let mut conf = format!(
        "router id {me};\n\
         protocol device {{ }}\n\
         protocol kernel {{\n  ipv4 {{ import none; export all; }};\n}}\n",
        me = me.ipv4()
    );
    for (n, p) in peers.iter().enumerate() {
        conf.push_str(&format!(
            "protocol bgp r{n} {{\n  local {me} as 65000;\n  neighbor {peer} as 65001;\n  hold time 3;\n  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 2;\n  ipv4 {{ import all; export none; }};\n}}\n",
            me = me.ipv4(),
            peer = p.ipv4()
        ));
    }
    conf
}

fn vrrpd_config(priority: u8) -> String {
    format!(
        "[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 51\nversion = 3\npriority = {priority}\n\
         advert_int = \"100ms\"\nvirtual_ipaddress = [\"{VIP}/32\"]\n\
         export_routes = {{ table = {TABLE}, protocol = {PROTO} }}\n"
    )
}

/// Router `r`'s table 198 (empty when the kernel has no such table: it
/// never held a route).
fn table(r: &Router) -> Result<String> {
    match r
        .ns()
        .ip(&["-4", "route", "show", "table", &TABLE.to_string()])
    {
        Ok(out) => Ok(out),
        Err(e) if e.to_string().contains("FIB table does not exist") => Ok(String::new()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// The upstream's kernel route for the VIP (empty when none).
fn upstream_route(up: &Router) -> Result<String> {
    up.ns()
        .ip(&["-4", "route", "show", VIP])
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Polls `check` every 5 ms until it holds; the instant it first held.
fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("{what}: not after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn established(bird: &Bird, protocol: &str) -> Result<bool> {
    let out = bird.show(&["show", "protocols", protocol])?;
    Ok(out.contains("Established"))
}

#[test]
fn bgp_upstream_follows_the_master_of_a_routed_vip() -> Result<()> {
    let _serial = serial();
    let started = Instant::now();
    let lan = Lan::new(3)?;
    let (r1, r2, up) = (lan.router(1)?, lan.router(2)?, lan.router(3)?);
    let dir = test_dir("routed-vips")?;
    let mut bird1 = Bird::start(r1.ns(), &dir, "bird1", &router_bird(r1, up))?;
    let _bird2 = Bird::start(r2.ns(), &dir, "bird2", &router_bird(r2, up))?;
    let upstream = Bird::start(up.ns(), &dir, "upstream", &upstream_bird(up, &[r1, r2]))?;
    let mut d1 = Daemon::start(r1, &dir, "r1", &vrrpd_config(200))?;
    let mut d2 = Daemon::start(r2, &dir, "r2", &vrrpd_config(100))?;
    d1.wait_state("VI_1", "master", T)?;
    d2.wait_state("VI_1", "backup", T)?;
    wait_until("both BGP sessions up", T, || {
        Ok(established(&upstream, "r0")? && established(&upstream, "r1")?)
    })?;

    // The master's table holds the VIP's route, the backup's nothing.
    let wanted = format!("{VIP} dev eth0 proto {PROTO} scope link");
    wait_until("the route in the master's table", T, || {
        Ok(table(r1)?.contains(&wanted))
    })?;
    ensure!(table(r2)?.trim().is_empty(), "backup: {}", table(r2)?);
    wait_until("the upstream's route via r1", T, || {
        Ok(upstream_route(up)?.contains(&format!("via {}", r1.ipv4())))
    })?;

    // An operator deletes it: put back (and said so).
    r1.ns()
        .ip(&[
            "route",
            "del",
            &format!("{VIP}/32"),
            "table",
            &TABLE.to_string(),
        ])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    d1.wait_message(
        "route removed from outside while wanted",
        Duration::from_secs(2),
    )?;
    wait_until("the route put back", Duration::from_secs(2), || {
        Ok(table(r1)?.contains(&wanted))
    })?;
    wait_until("the upstream's route via r1 again", T, || {
        Ok(upstream_route(up)?.contains(&format!("via {}", r1.ipv4())))
    })?;

    // The master node dies: its vrrpd and its BIRD, at once.
    let killed = Instant::now();
    d1.kill()?;
    bird1.kill()?;
    let became_master = d2.wait_state("VI_1", "master", T)?;
    let rerouted = wait_until("the upstream's route via r2", T, || {
        Ok(upstream_route(up)?.contains(&format!("via {}", r2.ipv4())))
    })?;
    // RFC 5798 6.1: Master_Down_Interval = 3 * interval + skew, with
    // Skew_Time = (256 - priority) * interval / 256.
    let mdi = Duration::from_micros(300_000 + (256 - 100) * 100_000 / 256);
    let takeover = became_master.saturating_duration_since(killed);
    let bgp = rerouted.saturating_duration_since(became_master);
    let total = rerouted.saturating_duration_since(killed);
    println!(
        "routed VIP failover: Master_Down_Interval {mdi:?}; new master after {takeover:?}; \
         upstream route moved {bgp:?} later (route in table {TABLE}, BIRD learn, eBGP update, upstream kernel); \
         total {total:?}"
    );
    ensure!(table(r2)?.contains(&wanted), "new master: {}", table(r2)?);
    // Master_Down_Interval, plus 1 s for the BGP update: BIRD learns the
    // kernel route at once (netlink) and sends updates without a minimum
    // advertisement interval; what remains is scheduling on a shared host.
    ensure!(
        total <= mdi + Duration::from_secs(1),
        "upstream rerouted {total:?} after the kill (Master_Down_Interval {mdi:?})"
    );

    // Nothing remains from the dead node once its session is down.
    wait_until("r1's session down", T, || {
        Ok(!established(&upstream, "r0")?)
    })?;
    let routes = upstream.show(&["show", "route", &format!("{VIP}/32"), "all"])?;
    ensure!(
        !routes.contains(&r1.ipv4().to_string()),
        "a route from the dead node remains:\n{routes}"
    );
    ensure!(
        upstream_route(up)?.contains(&format!("via {}", r2.ipv4())),
        "upstream: {}",
        upstream_route(up)?
    );

    // A graceful stop removes the route: the upstream has none left.
    let status = d2.stop()?;
    ensure!(status.success(), "vrrpd exited with {status}");
    ensure!(table(r2)?.trim().is_empty(), "after stop: {}", table(r2)?);
    wait_until("the upstream's route withdrawn", T, || {
        Ok(upstream_route(up)?.trim().is_empty())
    })?;
    println!("routed VIP test took {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
