//! `vrrpd demo`: election, master death, failover and recovery, shown with
//! timings. As root it builds a namespace LAN of three nodes, each running
//! the real daemon (`vrrpd run`) as its own process, and watches the wire
//! and the daemons' status; without root it runs the same story on
//! `vrrp_core`'s simulator.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use vrrp_core::sim::{LogKind, NodeSpec, Simulation};
use vrrp_core::{InstanceConfig, Priority, Version, VirtualAddress, Vrid};

const VIP: &str = "192.0.2.100";

/// The demo's own throwaway LAN: three router namespaces on a bridge
/// namespace, 192.0.2.N/24 on each router's eth0 (built with `ip`, no
/// test-only code in the daemon), deleted on drop.
struct Lan {
    prefix: String,
    routers: usize,
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Lan {
    fn new(routers: usize) -> anyhow::Result<Self> {
        let lan = Lan {
            prefix: format!("vrrpd-demo-{}", std::process::id()),
            routers: 0,
        };
        let br = lan.bridge();
        ip(&["netns", "add", &br])?;
        let mut lan = lan;
        ip(&[
            "-n",
            &br,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for n in 1..=routers {
            let ns = lan.ns(n);
            ip(&["netns", "add", &ns])?;
            lan.routers = n;
            let port = format!("p{n}");
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("192.0.2.{n}/24"),
                "dev",
                "eth0",
            ])?;
        }
        Ok(lan)
    }

    fn bridge(&self) -> String {
        format!("{}-br", self.prefix)
    }

    fn ns(&self, n: usize) -> String {
        format!("{}-r{n}", self.prefix)
    }

    fn set_link(&self, n: usize, up: bool) -> anyhow::Result<()> {
        ip(&[
            "-n",
            &self.ns(n),
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ])
        .map(drop)
    }

    fn addresses(&self, n: usize) -> anyhow::Result<String> {
        ip(&["-n", &self.ns(n), "-o", "addr", "show", "dev", "eth0"])
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for n in 1..=self.routers {
            let _ = ip(&["netns", "del", &self.ns(n)]);
        }
        let _ = ip(&["netns", "del", &self.bridge()]);
    }
}

/// Runs the demo: the real one as root, the simulated one otherwise.
pub fn demo(simulate: bool) -> anyhow::Result<()> {
    if simulate || !nix::unistd::Uid::effective().is_root() {
        if !simulate {
            println!("(not root: network namespaces need root, so this is the simulated LAN)\n");
        }
        return simulated();
    }
    real()
}

fn node_config(name: &str, prio: u8) -> String {
    format!(
        "# demo node {name}\n[global]\nrouter_id = \"{name}\"\n\n\
         [instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 51\nversion = 3\n\
         priority = {prio}\nadvert_int = \"100ms\"\nvirtual_ipaddress = [\"{VIP}/24\"]\n"
    )
}

struct Daemon {
    name: &'static str,
    child: Child,
}

/// Lines of every daemon's JSON log: (node, time seen, line).
type LogLines = mpsc::Receiver<(&'static str, Instant, String)>;

fn start(
    lan: &Lan,
    n: usize,
    name: &'static str,
    dir: &Path,
    prio: u8,
    logs: &mpsc::Sender<(&'static str, Instant, String)>,
) -> anyhow::Result<Daemon> {
    let conf = dir.join(format!("{name}.toml"));
    std::fs::write(&conf, node_config(name, prio))?;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &lan.ns(n)])
        .arg(&exe)
        .args(["--log-format", "json", "run", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stderr = child.stderr.take().context("daemon stderr")?;
    let tx = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send((name, Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    Ok(Daemon { name, child })
}

/// Waits for a "state change" log line of `node` into `state`.
fn wait_state(
    logs: &LogLines,
    node: &str,
    state: &str,
    timeout: Duration,
    t0: Instant,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (who, at, line) = logs
            .recv_timeout(left)
            .with_context(|| format!("{node} never became {state}"))?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let fields = &v["fields"];
        if fields["message"] == "state change" {
            println!(
                "{:>9.3}s  {who:<3} {} -> {}",
                at.duration_since(t0).as_secs_f64(),
                fields["from"].as_str().unwrap_or("?"),
                fields["to"].as_str().unwrap_or("?")
            );
            if who == node && fields["to"] == state {
                return Ok(at);
            }
        }
    }
}

fn holds_vip(lan: &Lan, n: usize) -> bool {
    lan.addresses(n).ok().is_some_and(|a| {
        a.split_whitespace()
            .any(|w| w.split('/').next() == Some(VIP))
    })
}

fn real() -> anyhow::Result<()> {
    let lan = Lan::new(3).context("building the namespace LAN (needs root and iproute2)")?;
    let dir = std::env::temp_dir().join(format!("vrrpd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (tx, logs) = mpsc::channel();
    println!(
        "three namespaces on a bridge, 192.0.2.1-3/24; VRRPv3, VRID 51, 100 ms adverts, VIP {VIP}"
    );
    println!("r1 priority 200, r2 150, r3 100; each runs `vrrpd run` in its namespace\n");
    let t0 = Instant::now();
    let mut daemons = vec![
        start(&lan, 1, "r1", &dir, 200, &tx)?,
        start(&lan, 2, "r2", &dir, 150, &tx)?,
        start(&lan, 3, "r3", &dir, 100, &tx)?,
    ];
    let elected = wait_state(&logs, "r1", "master", Duration::from_secs(10), t0)?;
    println!(
        "   election: r1 is master {:.0} ms after start-up",
        elected.duration_since(t0).as_secs_f64() * 1000.0
    );
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "   VIP on r1: {}, r2: {}, r3: {}\n",
        holds_vip(&lan, 1),
        holds_vip(&lan, 2),
        holds_vip(&lan, 3)
    );

    println!("-- killing r1 (SIGKILL, no goodbye)");
    let killed = Instant::now();
    daemons[0].child.kill()?;
    let _ = daemons[0].child.wait();
    // A dead machine's address dies with it.
    lan.set_link(1, false)?;
    let took = wait_state(&logs, "r2", "master", Duration::from_secs(10), t0)?;
    let mdi = Duration::from_nanos(300_000_000 + (256 - 150) * 100_000_000 / 256);
    println!(
        "   failover: r2 is master {:.1} ms after the kill (Master_Down_Interval {:.1} ms, from r1's last advert)",
        took.duration_since(killed).as_secs_f64() * 1000.0,
        mdi.as_secs_f64() * 1000.0
    );
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "   VIP on r2: {}, r3: {}\n",
        holds_vip(&lan, 2),
        holds_vip(&lan, 3)
    );

    println!("-- r1 comes back");
    lan.set_link(1, true)?;
    let back = Instant::now();
    daemons[0] = start(&lan, 1, "r1", &dir, 200, &tx)?;
    let again = wait_state(&logs, "r1", "master", Duration::from_secs(10), t0)?;
    println!(
        "   recovery: r1 preempts {:.0} ms after restarting",
        again.duration_since(back).as_secs_f64() * 1000.0
    );
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "   VIP on r1: {}, r2: {}\n",
        holds_vip(&lan, 1),
        holds_vip(&lan, 2)
    );

    println!("-- stopping r1 gracefully (SIGTERM: priority 0)");
    let stop = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemons[0].child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    let handed = wait_state(&logs, "r2", "master", Duration::from_secs(10), t0)?;
    println!(
        "   handover: r2 is master {:.1} ms after SIGTERM (Skew_Time {:.1} ms)",
        handed.duration_since(stop).as_secs_f64() * 1000.0,
        (256.0 - 150.0) * 100.0 / 256.0
    );
    for d in &mut daemons {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(d.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    for d in &mut daemons {
        if d.child.wait().is_err() {
            bail!("{} did not stop", d.name);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("\nall daemons stopped; namespaces removed");
    Ok(())
}

fn simulated() -> anyhow::Result<()> {
    let vrid = Vrid::new(51).context("vrid")?;
    let vip = VirtualAddress::host(VIP.parse::<IpAddr>()?);
    let config = |prio| -> anyhow::Result<InstanceConfig> {
        Ok(InstanceConfig::new(vrid, Version::V3, "0.0.0.0".parse()?)
            .with_priority(Priority::new(prio))
            .with_interval(vrrp_core::Centisecs::new(10))
            .with_address(vip))
    };
    let mut sim = Simulation::new(2026);
    sim.log_sends(false);
    let names = ["r1", "r2", "r3"];
    let r1 = sim.add_node(NodeSpec::new(names[0]).instance(config(200)?));
    let r2 = sim.add_node(NodeSpec::new(names[1]).instance(config(150)?));
    sim.add_node(NodeSpec::new(names[2]).instance(config(100)?));
    let show = |sim: &Simulation, from: usize| {
        for e in &sim.log()[from..] {
            if let LogKind::StateChanged { from, to, .. } = &e.kind {
                println!(
                    "{:>12}  {:<3} {from} -> {to}",
                    e.at.to_string(),
                    e.node.and_then(|n| names.get(n.0)).copied().unwrap_or("?")
                );
            }
        }
        sim.log().len()
    };
    println!("simulated LAN: r1 priority 200, r2 150, r3 100; VRRPv3, 100 ms adverts, VIP {VIP}\n");
    sim.run_for(Duration::from_secs(2));
    let mut seen = show(&sim, 0);
    println!("-- r1 crashes");
    let crash = sim.now();
    sim.crash(r1);
    sim.run_for(Duration::from_secs(2));
    seen = show(&sim, seen);
    let took = sim
        .log()
        .iter()
        .find(|e| {
            e.node == Some(r2) && e.at > crash && matches!(e.kind, LogKind::StateChanged { .. })
        })
        .map(|e| e.at - crash);
    println!("   failover after {took:?}");
    println!("-- r1 restarts");
    sim.restart(r1);
    sim.run_for(Duration::from_secs(2));
    seen = show(&sim, seen);
    println!("-- r1 shuts down gracefully");
    sim.shutdown(r1);
    sim.run_for(Duration::from_secs(1));
    show(&sim, seen);
    println!(
        "\nmaster now: {:?}",
        sim.masters(vrid)
            .iter()
            .map(|n| names[n.0])
            .collect::<Vec<_>>()
    );
    Ok(())
}
