//! keepalived's `garp_extra_if all 1` against keepalived 2.2.7, on one
//! keepalived.conf, captured with tcpdump on each interface: while
//! master, one gratuitous ARP every second on eth1 for the first of the
//! instance's addresses there (never for the second), one unsolicited
//! neighbour advertisement every second on eth2 for the excluded IPv6
//! address there, nothing periodic on the instance's own eth0; the same
//! packets, interfaces and spacing from keepalived and from `vrrpd`
//! running the file converted by `import-keepalived`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{Daemon, serial, test_dir, wait_address};
use vrrp_net::testnet::{Keepalived, Lan, Router};

const T: Duration = Duration::from_secs(15);
/// How long the packets are captured once the addresses are up.
const WATCH: Duration = Duration::from_millis(3600);

const CONF: &str = "global_defs {\n  vrrp_version 3\n  vrrp_garp_master_delay 0\n  vrrp_garp_master_repeat 1\n}\n\
vrrp_instance VI_X {\n  state BACKUP\n  interface eth0\n  virtual_router_id 91\n  priority 100\n  advert_int 0.1\n  \
garp_extra_if all 1\n  virtual_ipaddress {\n    192.0.2.91/24\n    192.0.2.92/32 dev eth1\n    192.0.2.93/32 dev eth1\n  }\n  \
virtual_ipaddress_excluded {\n    2001:db8::94/128 dev eth2\n  }\n}\n";

/// tcpdump on one interface of a namespace, its lines in a file; stopped
/// (SIGTERM, so it flushes) by [`Capture::finish`] or on drop.
struct Capture {
    child: Child,
    out: PathBuf,
}

impl Capture {
    fn start(r: &Router, iface: &str, dir: &Path) -> Result<Capture> {
        let out = dir.join(format!("r{}-{iface}.txt", r.number()));
        let err = dir.join(format!("r{}-{iface}.err", r.number()));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                r.ns().name(),
                "tcpdump",
                "-i",
                iface,
                "-n",
                "-tt",
                "-l",
            ])
            .args(["arp", "or", "icmp6"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()
            .context("tcpdump")?;
        let deadline = Instant::now() + T;
        while !std::fs::read_to_string(&err)?.contains("listening on") {
            ensure!(
                Instant::now() < deadline,
                "tcpdump on {iface} not listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Capture { child, out })
    }

    /// Stops tcpdump; the capture's lines as (time, text).
    fn finish(mut self) -> Result<Vec<(f64, String)>> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        self.child.wait()?;
        Ok(std::fs::read_to_string(&self.out)?
            .lines()
            .filter_map(|l| {
                let (t, rest) = l.split_once(' ')?;
                Some((t.parse().ok()?, rest.to_owned()))
            })
            .collect())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds eth1 and eth2 (veth pairs inside the namespace, so what leaves
/// them is seen).
fn extra_interfaces(r: &Router) -> Result<()> {
    r.ns()
        .ip_batch(
            "link add eth1 type veth peer name eth1p\nlink add eth2 type veth peer name eth2p\n\
             link set eth1 up\nlink set eth1p up\nlink set eth2 up\nlink set eth2p up\n",
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Times of the captured packets that announce `addr` (a gratuitous ARP,
/// or an NA whose target it is), relative to the first.
fn announcing(lines: &[(f64, String)], addr: &str) -> Vec<f64> {
    let (who_has, tell) = (format!("who-has {addr} "), format!("tell {addr},"));
    let arp_reply = format!("Reply {addr} is-at");
    let na = format!("neighbor advertisement, tgt is {addr},");
    let times: Vec<f64> = lines
        .iter()
        .filter(|(_, l)| {
            (l.contains(&who_has) && l.contains(&tell)) || l.contains(&arp_reply) || l.contains(&na)
        })
        .map(|(t, _)| *t)
        .collect();
    let first = times.first().copied().unwrap_or_default();
    times.iter().map(|t| t - first).collect()
}

/// What one daemon sent: per (interface, address), the packets' times.
type Seen = Vec<(&'static str, &'static str, Vec<f64>)>;

fn watch(r: &Router, dir: &Path, start: impl FnOnce() -> Result<()>) -> Result<Seen> {
    let caps = [
        ("eth0", Capture::start(r, "eth0", dir)?),
        ("eth1", Capture::start(r, "eth1", dir)?),
        ("eth2", Capture::start(r, "eth2", dir)?),
    ];
    start()?;
    std::thread::sleep(WATCH);
    let mut lines = Vec::new();
    for (iface, c) in caps {
        lines.push((iface, c.finish()?));
    }
    let of = |iface: &str| {
        lines
            .iter()
            .find(|(i, _)| *i == iface)
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    };
    Ok(vec![
        ("eth0", "192.0.2.91", announcing(&of("eth0"), "192.0.2.91")),
        ("eth1", "192.0.2.92", announcing(&of("eth1"), "192.0.2.92")),
        ("eth1", "192.0.2.93", announcing(&of("eth1"), "192.0.2.93")),
        (
            "eth2",
            "2001:db8::94",
            announcing(&of("eth2"), "2001:db8::94"),
        ),
    ])
}

/// The master's packets: one at takeover for each address (repeat 1, no
/// second burst), then one a second on eth1 and eth2 for their first
/// address only; nothing more on eth0 or for the second eth1 address.
fn check(who: &str, seen: &Seen) -> Result<()> {
    for (iface, addr, times) in seen {
        let periodic = matches!(*addr, "192.0.2.92" | "2001:db8::94");
        if !periodic {
            ensure!(
                times.len() == 1,
                "{who}: {addr} on {iface}: {times:?}, expected only the takeover's"
            );
            continue;
        }
        // Takeover, then about every second for 3.6 s.
        ensure!(
            (3..=5).contains(&times.len()),
            "{who}: {addr} on {iface}: {times:?}"
        );
        for w in times.windows(2).skip(1) {
            let gap = w[1] - w[0];
            ensure!(
                (0.95..=1.3).contains(&gap),
                "{who}: {addr} on {iface}: {gap:.3} s between two periodic packets: {times:?}"
            );
        }
        // The first periodic packet, a second after the takeover's.
        let first = times[1];
        ensure!(
            (0.95..=1.3).contains(&first),
            "{who}: {addr} on {iface}: first periodic packet at {first:.3} s: {times:?}"
        );
    }
    Ok(())
}

#[test]
fn periodic_garps_on_the_other_interfaces_like_keepalived() -> Result<()> {
    let _serial = serial();
    let started = Instant::now();
    let lan = Lan::new(2)?;
    let (ka_router, ours_router) = (lan.router(1)?, lan.router(2)?);
    extra_interfaces(ka_router)?;
    extra_interfaces(ours_router)?;
    let dir = test_dir("garp-extra-if")?;
    let ka_conf = dir.join("keepalived.conf");
    std::fs::write(&ka_conf, CONF)?;
    let toml = common::import_whole(&ka_conf)?;

    // keepalived alone on router 1.
    let mut ka = None;
    let keepalived = watch(ka_router, &dir, || {
        let k = Keepalived::start(ka_router.ns(), CONF)?;
        wait_address(ka_router, "192.0.2.91", T).with_context(|| k.log())?;
        ka = Some(k);
        Ok(())
    })?;
    let Some(ka) = ka else {
        bail!("keepalived did not start");
    };
    check("keepalived", &keepalived).with_context(|| ka.log())?;
    ka.stop(T)?;

    // vrrpd alone on router 2.
    let mut ours = None;
    let vrrpd = watch(ours_router, &dir, || {
        let d = Daemon::start(ours_router, &dir, "ours", &toml)?;
        wait_address(ours_router, "192.0.2.91", T)?;
        ours = Some(d);
        Ok(())
    })?;
    let Some(ours) = ours else {
        bail!("vrrpd did not start");
    };
    check("vrrpd", &vrrpd).with_context(|| ours.log_text())?;
    let counts = |s: &Seen| s.iter().map(|(_, _, t)| t.len()).collect::<Vec<_>>();
    eprintln!(
        "garp_extra_if: packets per (interface, address): keepalived {:?}, vrrpd {:?}",
        counts(&keepalived),
        counts(&vrrpd)
    );
    ours.stop()?;
    eprintln!("garp_extra_if test: {:?}", started.elapsed());
    Ok(())
}
