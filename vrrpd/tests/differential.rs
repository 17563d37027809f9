//! Differential test against keepalived: the same keepalived.conf runs on
//! two namespaced nodes, first as keepalived + keepalived, then with vrrpd
//! (imported from that very file) on either side, through one timeline
//! (node 1 starts, then node 2; node 1's tracked checks fail; they
//! recover; node 1 stops; it restarts; its link goes down; it comes
//! back), and at every checkpoint
//! each virtual address must be where keepalived put it. keepalived's
//! placements are recorded in `tests/differential/expected/` and checked
//! on every run too, so a harness that stops being deterministic for
//! keepalived fails as well. See `tests/differential/README.md` to add a
//! configuration.

#[path = "differential/nodes.rs"]
mod nodes;
#[path = "differential/rewrite.rs"]
mod rewrite;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nodes::{Daemon, Node};
use vrrp_net::testnet::Lan;

/// Debian's keepalived samples.
const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

/// The checkpoints, in order.
const STEPS: [&str; 8] = [
    "node1-starts",
    "node2-starts",
    "node1-checks-fail",
    "node1-checks-recover",
    "node1-stops",
    "node1-restarts",
    "node1-link-down",
    "node1-link-up",
];

/// Placement must have stopped changing for this long (keepalived runs).
const QUIET: Duration = Duration::from_millis(1200);

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential")
}

/// One configuration of the corpus.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    source: PathBuf,
}

fn corpus() -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    let list = std::fs::read_to_string(here().join("debian.list"))?;
    for name in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        cases.push(Case {
            name: format!("debian-{}", name.trim_start_matches("keepalived.conf.")),
            source: Path::new(SAMPLES).join(name),
        });
    }
    let mut own: Vec<PathBuf> = std::fs::read_dir(here().join("corpus"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    own.sort();
    for p in own {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        cases.push(Case { name, source: p });
    }
    if let Ok(only) = std::env::var("DIFFERENTIAL_ONLY") {
        cases.retain(|c| only.split(',').any(|o| c.name.contains(o)));
    }
    Ok(cases)
}

/// Where every virtual address is: `ADDR=1`, `=2`, `=1+2` or `=-`, each
/// holder followed by the address's attributes there when it has any
/// (`=1(brd 192.0.2.127,scope link)`: see `nodes::attributes`).
fn placement(nodes: &[Node; 2], vips: &[String]) -> String {
    vips.iter()
        .map(|v| {
            let holders: Vec<String> = nodes
                .iter()
                .zip(["1", "2"])
                .filter_map(|(n, h)| {
                    let attrs = n.watch.get(v)?;
                    Some(if attrs.is_empty() {
                        h.to_owned()
                    } else {
                        format!("{h}({attrs})")
                    })
                })
                .collect();
            let h = if holders.is_empty() {
                "-".to_owned()
            } else {
                holders.join("+")
            };
            format!("{v}={h}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn last_change(nodes: &[Node; 2]) -> Option<Instant> {
    nodes.iter().filter_map(|n| n.watch.changed()).max()
}

/// keepalived + keepalived: at least `min` after the event and `QUIET`
/// without a change of placement.
fn settle(nodes: &[Node; 2], vips: &[String], since: Instant, min: Duration) -> Result<String> {
    let give_up = since + min + Duration::from_secs(20);
    loop {
        let now = Instant::now();
        let last = last_change(nodes).filter(|t| *t > since).unwrap_or(since);
        let ready = (since + min).max(last + QUIET);
        if now >= ready {
            return Ok(placement(nodes, vips));
        }
        if now > give_up {
            bail!("placement never settled: {}", placement(nodes, vips));
        }
        std::thread::sleep((ready - now).min(Duration::from_millis(50)));
    }
}

/// With vrrpd: `expected` reached and held from at least `min` after the
/// event until `QUIET` after it was reached (or after `min`).
fn reach(
    nodes: &[Node; 2],
    vips: &[String],
    since: Instant,
    min: Duration,
    expected: &str,
) -> Result<()> {
    let give_up = since + min + Duration::from_secs(10);
    let mut equal_since: Option<Instant> = None;
    let mut history = Vec::new();
    loop {
        let now = Instant::now();
        let p = placement(nodes, vips);
        if history.last().map(|(_, h)| h) != Some(&p) {
            history.push((now - since, p.clone()));
        }
        if p == expected {
            let from = *equal_since.get_or_insert(now);
            if now >= (since + min).max(from + QUIET) {
                return Ok(());
            }
        } else {
            equal_since = None;
        }
        if now > give_up {
            bail!("expected `{expected}`; placements seen (time after the event): {history:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Builds the LAN of one run: two routers whose eth0 (192.0.2.1 and .2)
/// and eth1 .. eth4 (192.0.2.2K1/32 and .2K2/32) are each on a segment of
/// their own, so that instances run on the interfaces their file names.
fn lan() -> Result<Lan> {
    let lan = Lan::new(2)?;
    for k in 1..=4 {
        lan.bridge().ip_batch(&format!(
            "link add br{k} type bridge mcast_snooping 0 stp_state 0 forward_delay 0\nlink set br{k} up\n"
        ))?;
        for r in lan.routers() {
            let n = r.number();
            let ns = r.ns().name();
            lan.bridge().ip_batch(&format!(
                "link add p{n}e{k} type veth peer name eth{k} netns {ns}\n\
                 link set p{n}e{k} master br{k}\nlink set p{n}e{k} up\n"
            ))?;
            r.ns().ip_batch(&format!(
                "link set eth{k} up\naddr add 192.0.2.{}/32 dev eth{k}\n",
                200 + 10 * k + n
            ))?;
        }
    }
    Ok(lan)
}

/// One run of the timeline with `daemons` on nodes 1 and 2. Without
/// `expected`, records where keepalived puts the addresses; with it,
/// checks each checkpoint.
fn timeline(
    case: &Case,
    conf: &rewrite::Rewritten,
    daemons: [Daemon; 2],
    expected: Option<&[String]>,
    dir: &Path,
) -> Result<Vec<String>> {
    let lan = lan()?;
    let run_dir = dir.join(format!("{}-{}", daemons[0].short(), daemons[1].short()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut nodes = [
        Node::new(lan.router(1)?, daemons[0], &run_dir, &conf.text)?,
        Node::new(lan.router(2)?, daemons[1], &run_dir, &conf.text)?,
    ];
    for n in &nodes {
        n.set_checks(&conf.scripts, &conf.files, &conf.file_fails, true)?;
    }
    // keepalived runs scripts every second: `rise`/`fall` runs, a second
    // of phase, and the election after.
    let check_time = if conf.scripts.is_empty() && conf.files.is_empty() {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(u64::from(conf.max_rise_fall) + 1) + Duration::from_millis(500)
    };
    let mut out = Vec::new();
    for (i, step) in STEPS.iter().enumerate() {
        let mut since = Instant::now();
        let min = match *step {
            // One after the other: started together, who comes up first
            // is a race between two processes' start-up times. Time counts
            // from the daemon's word that it runs.
            "node1-starts" => {
                nodes[0].start()?;
                since = Instant::now();
                Duration::from_secs(2)
            }
            "node2-starts" => {
                nodes[1].start()?;
                since = Instant::now();
                Duration::from_secs(2)
            }
            "node1-checks-fail" => {
                nodes[0].set_checks(&conf.scripts, &conf.files, &conf.file_fails, false)?;
                check_time
            }
            "node1-checks-recover" => {
                nodes[0].set_checks(&conf.scripts, &conf.files, &conf.file_fails, true)?;
                check_time
            }
            "node1-stops" => {
                nodes[0].stop()?;
                Duration::from_secs(1)
            }
            "node1-restarts" => {
                nodes[0].start()?;
                since = Instant::now();
                Duration::from_secs(2)
            }
            "node1-link-down" => {
                lan.router(1)?.set_carrier(false)?;
                Duration::from_millis(1500)
            }
            _ => {
                lan.router(1)?.set_carrier(true)?;
                Duration::from_secs(2)
            }
        };
        let result = match expected.and_then(|e| e.get(i)) {
            None => settle(&nodes, &conf.vips, since, min),
            Some(want) => reach(&nodes, &conf.vips, since, min, want).map(|()| want.clone()),
        };
        for n in &mut nodes {
            if *step != "node1-stops" && n.died() {
                bail!(
                    "{}: node{} ({}) exited at `{step}`; its log:\n{}",
                    case.name,
                    n.number,
                    n.daemon.short(),
                    n.log()
                );
            }
        }
        match result {
            Ok(p) => out.push(p),
            Err(e) => {
                let logs: Vec<String> = nodes
                    .iter()
                    .map(|n| {
                        format!(
                            "node{} ({}): {}",
                            n.number,
                            n.daemon.short(),
                            n.log_path().display()
                        )
                    })
                    .collect();
                return Err(e.context(format!(
                    "{} with {}+{}, checkpoint `{step}` (logs: {})",
                    case.name,
                    daemons[0].short(),
                    daemons[1].short(),
                    logs.join(", ")
                )));
            }
        }
    }
    for n in &mut nodes {
        n.stop()?;
    }
    Ok(out)
}

fn expected_path(case: &Case) -> PathBuf {
    here().join("expected").join(format!("{}.txt", case.name))
}

fn read_expected(case: &Case) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(expected_path(case)).ok()?;
    let mut out = Vec::new();
    for step in STEPS {
        let line = text
            .lines()
            .find(|l| l.split_once(':').is_some_and(|(s, _)| s == step))?;
        out.push(line.split_once(':')?.1.trim().to_owned());
    }
    Some(out)
}

fn write_expected(case: &Case, placements: &[String]) -> Result<()> {
    let mut text = format!(
        "# {}: where keepalived 2.2.7 + keepalived 2.2.7 put each virtual address\n\
         # (recorded by `DIFFERENTIAL_RECORD=1 cargo test -p vrrpd --test differential`).\n",
        case.source
            .file_name()
            .map_or_else(|| case.name.clone(), |f| f.to_string_lossy().into_owned())
    );
    for (step, p) in STEPS.iter().zip(placements) {
        text.push_str(&format!("{step}: {p}\n"));
    }
    std::fs::write(expected_path(case), text)?;
    Ok(())
}

fn run_case(case: &Case, dir: &Path) -> Result<Duration> {
    let started = Instant::now();
    let source = std::fs::read_to_string(&case.source)
        .with_context(|| format!("reading {}", case.source.display()))?;
    let conf = rewrite::rewrite(&source);
    if conf.vips.is_empty() {
        bail!("{}: no virtual address to compare", case.name);
    }
    let dir = dir.join(&case.name);
    let record = std::env::var_os("DIFFERENTIAL_RECORD").is_some();
    let stored = read_expected(case);
    let keepalived = timeline(
        case,
        &conf,
        [Daemon::Keepalived, Daemon::Keepalived],
        None,
        &dir,
    )?;
    let expected = match stored {
        Some(e) if !record => {
            if e != keepalived {
                bail!(
                    "{}: keepalived + keepalived no longer does what {} records:\n  recorded {e:#?}\n  now      {keepalived:#?}",
                    case.name,
                    expected_path(case).display()
                );
            }
            e
        }
        _ if record => {
            write_expected(case, &keepalived)?;
            keepalived
        }
        _ => bail!(
            "{}: no {}; record it with DIFFERENTIAL_RECORD=1",
            case.name,
            expected_path(case).display()
        ),
    };
    timeline(
        case,
        &conf,
        [Daemon::Vrrpd, Daemon::Keepalived],
        Some(&expected),
        &dir,
    )?;
    timeline(
        case,
        &conf,
        [Daemon::Keepalived, Daemon::Vrrpd],
        Some(&expected),
        &dir,
    )?;
    Ok(started.elapsed())
}

#[test]
fn vrrpd_places_every_address_where_keepalived_does() -> Result<()> {
    vrrp_net::testnet::ensure_keepalived()?;
    let cases = corpus()?;
    assert!(
        std::env::var("DIFFERENTIAL_ONLY").is_ok() || cases.len() >= 20,
        "{} cases",
        cases.len()
    );
    let dir = std::env::temp_dir().join(format!("vrrpd-differential-{}", std::process::id()));
    let jobs: usize = std::env::var("DIFFERENTIAL_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(5);
    let started = Instant::now();
    let queue = Mutex::new(cases.clone());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let Some(case) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                        return;
                    };
                    let r = run_case(&case, &dir);
                    if let Ok(mut res) = results.lock() {
                        res.push((case.name.clone(), r));
                    }
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut failures = Vec::new();
    for (name, r) in &results {
        match r {
            Ok(d) => {
                eprintln!("{name}: same placement as keepalived at every checkpoint ({d:.1?})")
            }
            Err(e) => failures.push(format!("{name}: {e:#}")),
        }
    }
    eprintln!(
        "{} configurations, {} jobs, {:.1?}",
        results.len(),
        jobs,
        started.elapsed()
    );
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    } else {
        bail!(
            "{} of {} differ:\n{}",
            failures.len(),
            results.len(),
            failures.join("\n\n")
        )
    }
}
