//! Advertisement send jitter of a VRRP master under load (issue 9).
//!
//! One node process runs the VRRP driver with 255 VRIDs at a 10 ms
//! advertisement interval, all master, the way `vrrpd run` does: a tokio
//! runtime with 2 workers, the driver spawned with
//! `vrrp_net::driver::spawn`, the health-check runner on the same runtime.
//! A neighbour namespace captures every advertisement with its kernel
//! receive time; the figure is the interval between consecutive
//! advertisements of one VRID (ideal: 10 ms), as p50 / p99 / p99.9 / max
//! over every VRID.
//!
//! Two phases in one run, so the machine's own noise is measured beside
//! the result:
//! - `control`: the driver alone in its process;
//! - `checks`: the same, plus 1,000 health checks every second in the
//!   same process (500 TCP connects and 500 HTTP GETs with an MD5 digest,
//!   against loopback servers of a separate process).
//!
//! Also reported per phase: the node's CPU %, how busy the whole host was
//! (the machine is shared), and how many intervals exceeded 20 ms (two
//! intervals: a backup at priority 100 would take over at 26.1 ms).
//!
//! Needs root (network namespaces, raw sockets):
//!
//! ```sh
//! cargo bench --bench advert_jitter                 # 20 s per phase
//! cargo bench --bench advert_jitter -- --seconds 60 --vrids 255 --checks 1000
//! ```
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does
//! nothing: it needs root and a minute.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, bail, ensure};
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, Version, Vrid};
use vrrp_net::driver::{DriverConfig, InstanceSpec};
use vrrp_net::testnet::{Lan, NsTask, Router};

/// Body served to the HTTP checks.
const PAGE: &[u8] = b"<html><body>ok</body></html>\n";

struct Options {
    seconds: u64,
    settle: u64,
    vrids: u8,
    interval_cs: u16,
    checks: usize,
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("bad value for {name}")),
        None => Ok(default),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("__node") => return node(&args),
        Some("__serve") => return serve(&args),
        _ => {}
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("advert_jitter: run with `cargo bench --bench advert_jitter` (root)");
        return Ok(());
    }
    ensure!(
        nix::unistd::Uid::effective().is_root(),
        "advert_jitter needs root"
    );
    let options = Options {
        seconds: flag(&args, "--seconds", 20)?,
        settle: flag(&args, "--settle", 5)?,
        vrids: flag(&args, "--vrids", 255)?,
        interval_cs: flag(&args, "--interval-cs", 1)?,
        checks: flag(&args, "--checks", 1000)?,
    };
    coordinate(&options)
}

/// One advertisement seen by the neighbour: kernel receive time, VRID.
type Seen = (SystemTime, u8);

fn coordinate(o: &Options) -> Result<()> {
    let lan = Lan::new(2)?;
    let (node_router, observer) = (lan.router(1)?, lan.router(2)?);
    let exe = std::env::current_exe()?;
    let work = tempdir()?;
    let ports_file = work.join("ports");
    let tcp = o.checks / 2;
    let http = o.checks - tcp;
    let mut server = in_ns(node_router, &exe)
        .args([
            "__serve",
            "--tcp",
            &tcp.to_string(),
            "--http",
            &http.to_string(),
        ])
        .args(["--ports-file", &ports_file.to_string_lossy()])
        .stdout(Stdio::null())
        .spawn()
        .context("start the servers")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ports_file.exists() {
        ensure!(Instant::now() < deadline, "servers did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "advert_jitter: {} VRIDs at {} ms, {} s per phase after {} s settling",
        o.vrids,
        u32::from(o.interval_cs) * 10,
        o.seconds,
        o.settle
    );
    let mut rows = Vec::new();
    for (phase, checks) in [("control", 0), ("checks", o.checks)] {
        let result = run_phase(o, node_router, observer, &exe, &ports_file, checks);
        match result {
            Ok(row) => rows.push((phase, checks, row)),
            Err(e) => {
                let _ = server.kill();
                return Err(e.context(format!("phase {phase}")));
            }
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "{:<8} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>6}",
        "phase",
        "checks",
        "intervals",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "over_2x",
        "cpu_%",
        "checks/s",
        "host_%"
    );
    for (phase, checks, r) in &rows {
        println!(
            "{phase:<8} {checks:>6} {:>9} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8} {:>7.1} {:>9.0} {:>6.1}",
            r.count, r.p50, r.p99, r.p999, r.max, r.over_two, r.cpu, r.checks_per_sec, r.host_busy
        );
    }
    Ok(())
}

struct Row {
    count: usize,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    over_two: usize,
    cpu: f64,
    checks_per_sec: f64,
    host_busy: f64,
}

fn in_ns(router: &Router, exe: &std::path::Path) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", router.ns().name()]).arg(exe);
    c
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("advert-jitter-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn run_phase(
    o: &Options,
    node_router: &Router,
    observer: &Router,
    exe: &std::path::Path,
    ports_file: &std::path::Path,
    checks: usize,
) -> Result<Row> {
    let mut child = in_ns(node_router, exe)
        .args(["__node", "--vrids", &o.vrids.to_string()])
        .args(["--interval-cs", &o.interval_cs.to_string()])
        .args(["--checks", &checks.to_string()])
        .args(["--ports-file", &ports_file.to_string_lossy()])
        .stdout(Stdio::piped())
        .spawn()
        .context("start the node")?;
    let result = measure(o, observer, &mut child);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    result
}

fn measure(o: &Options, observer: &Router, child: &mut Child) -> Result<Row> {
    let stdout = child.stdout.take().context("node stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // The node says "ready" once every instance is master, then "checks N"
    // lines with the checks done so far, once a second.
    let ready = lines.next().context("node ended")??;
    ensure!(ready == "ready", "node said {ready:?}");
    let checks_seen = Arc::new(std::sync::Mutex::new(Vec::<(Instant, u64)>::new()));
    let cs = checks_seen.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(std::result::Result::ok) {
            if let Some(n) = line.strip_prefix("checks ").and_then(|n| n.parse().ok()) {
                cs.lock().unwrap().push((Instant::now(), n));
            }
        }
    });
    std::thread::sleep(Duration::from_secs(o.settle));
    let stop = Arc::new(AtomicBool::new(false));
    let capture = spawn_capture(observer, stop.clone())?;
    let pid = child.id();
    let cpu0 = process_cpu(pid)?;
    let host0 = host_ticks()?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(o.seconds));
    let cpu1 = process_cpu(pid)?;
    let host1 = host_ticks()?;
    let wall = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let seen = capture.join().map_err(|e| anyhow::anyhow!("{e}"))??;
    let checks_done = {
        let c = checks_seen.lock().unwrap();
        let inside: Vec<&(Instant, u64)> = c.iter().filter(|(at, _)| *at >= t0).collect();
        match (inside.first(), inside.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64(),
            _ => 0.0,
        }
    };
    let mut by_vrid: BTreeMap<u8, Vec<SystemTime>> = BTreeMap::new();
    for (at, vrid) in seen {
        by_vrid.entry(vrid).or_default().push(at);
    }
    ensure!(
        by_vrid.len() == usize::from(o.vrids),
        "adverts of {} VRIDs seen, {} expected",
        by_vrid.len(),
        o.vrids
    );
    let mut intervals: Vec<f64> = Vec::new();
    for times in by_vrid.values_mut() {
        times.sort();
        for w in times.windows(2) {
            let d = w[1].duration_since(w[0]).unwrap_or_default();
            intervals.push(d.as_secs_f64() * 1000.0);
        }
    }
    ensure!(!intervals.is_empty(), "no advertisement captured");
    intervals.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let i = ((intervals.len() as f64 - 1.0) * q).round() as usize;
        intervals[i.min(intervals.len() - 1)]
    };
    let two = f64::from(o.interval_cs) * 10.0 * 2.0;
    let (busy0, total0) = host0;
    let (busy1, total1) = host1;
    Ok(Row {
        count: intervals.len(),
        p50: pick(0.5),
        p99: pick(0.99),
        p999: pick(0.999),
        max: *intervals.last().unwrap_or(&0.0),
        over_two: intervals.iter().filter(|d| **d > two).count(),
        cpu: (cpu1 - cpu0).as_secs_f64() * 100.0 / wall.as_secs_f64(),
        checks_per_sec: checks_done,
        host_busy: (busy1 - busy0) as f64 * 100.0 / (total1 - total0).max(1) as f64,
    })
}

/// user + system CPU time of process `pid` and its threads.
fn process_cpu(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// (busy, total) jiffies of the whole host from /proc/stat.
fn host_ticks() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu = stat.lines().next().context("/proc/stat")?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// Captures VRRP advertisements on the observer's eth0 with kernel
/// receive timestamps until `stop` is set.
fn spawn_capture(observer: &Router, stop: Arc<AtomicBool>) -> Result<NsTask<Result<Vec<Seen>>>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let task = observer.spawn(move || async move {
        use socket2::{Domain, Protocol, Socket, Type};
        use std::os::fd::AsRawFd as _;
        let eth_p_all = i32::from((libc::ETH_P_ALL as u16).to_be());
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(eth_p_all)))?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let _ = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::RcvBufForce,
            &(32 << 20),
        );
        nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::ReceiveTimestampns,
            &true,
        )?;
        let _ = ready_tx.send(());
        let mut seen = Vec::with_capacity(1 << 20);
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let Ok(msg) = nix::sys::socket::recvmsg::<()>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                nix::sys::socket::MsgFlags::empty(),
            ) else {
                continue;
            };
            let n = msg.bytes;
            let mut at = None;
            for c in msg.cmsgs().into_iter().flatten() {
                if let nix::sys::socket::ControlMessageOwned::ScmTimestampns(ts) = c {
                    at = Some(std::time::UNIX_EPOCH + Duration::from(ts));
                }
            }
            // Ethernet + IPv4 (no options: the kernel builds it) + VRRP.
            let frame = buf.get(..n).unwrap_or_default();
            if frame.len() < 14 + 20 + 2 || frame[12..14] != [0x08, 0x00] || frame[23] != 112 {
                continue;
            }
            let ihl = usize::from(frame[14] & 0x0f) * 4;
            if let (Some(at), Some(&vrid)) = (at, frame.get(14 + ihl + 1)) {
                seen.push((at, vrid));
            }
        }
        anyhow::Ok(seen)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("capture not ready")?;
    Ok(task)
}

/// The node: the driver and the health-check runner on one 2-worker
/// runtime, as `vrrpd run` builds it.
fn node(args: &[String]) -> Result<()> {
    let vrids: u8 = flag(args, "--vrids", 255)?;
    let interval_cs: u16 = flag(args, "--interval-cs", 1)?;
    let checks: usize = flag(args, "--checks", 0)?;
    let ports_file: String = flag(args, "--ports-file", String::new())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let instances = (1..=vrids)
            .map(|v| {
                let config = InstanceConfig::new(
                    Vrid::new(v).context("vrid")?,
                    Version::V3,
                    "0.0.0.0".parse()?,
                )
                .with_priority(Priority::new(200))
                .with_interval(Centisecs::new(interval_cs));
                Ok(InstanceSpec::new(format!("VI_{v}"), "eth0", config))
            })
            .collect::<Result<Vec<_>>>()?;
        let handle = vrrp_net::driver::spawn(DriverConfig {
            instances,
            ..DriverConfig::default()
        })
        .await?;
        let cancel = tokio_util::sync::CancellationToken::new();
        let runner =
            healthcheck::Runner::spawn(healthcheck::RunnerConfig::default(), cancel.clone());
        if checks > 0 {
            add_checks(&runner, &ports_file, checks)?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let snap = handle.snapshot();
            if snap.instances.len() == usize::from(vrids)
                && snap.instances.iter().all(|i| i.state == State::Master)
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("instances not all master: {:?}", snap.instances.len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut out = std::io::stdout();
        writeln!(out, "ready")?;
        out.flush()?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tick.tick() => {
                    let done: u64 = runner.snapshot().iter().map(|(_, s)| s.stats.attempts).sum();
                    let _ = writeln!(out, "checks {done}");
                    let _ = out.flush();
                }
            }
        }
        handle.shutdown().await?;
        runner.shutdown().await;
        anyhow::Ok(())
    })
}

fn add_checks(runner: &healthcheck::Runner, ports_file: &str, limit: usize) -> Result<()> {
    use healthcheck::{CheckSpec, Health, HttpCheck, Md5Digest, Probe, TcpCheck, Timing};
    let mut timing = Timing::every(Duration::from_secs(1));
    timing.timeout = Duration::from_secs(3);
    timing.initial = Health::Down;
    for line in std::fs::read_to_string(ports_file)?.lines().take(limit) {
        let (kind, port) = line.split_once(' ').context("ports file line")?;
        let target = SocketAddr::from(([127, 0, 0, 1], port.parse()?));
        let probe = if kind == "tcp" {
            Probe::Tcp(TcpCheck::new(target))
        } else {
            let mut check = HttpCheck::new(target);
            check.digest = Some(Md5Digest::of(PAGE));
            Probe::Http(check)
        };
        runner.add(CheckSpec {
            name: format!("{kind}:{port}"),
            probe,
            timing: timing.clone(),
        })?;
    }
    Ok(())
}

/// Loopback servers for the checks: TCP listeners that accept and close,
/// and minimal HTTP/1.1 servers answering every request with [`PAGE`].
fn serve(args: &[String]) -> Result<()> {
    let tcp: usize = flag(args, "--tcp", 500)?;
    let http: usize = flag(args, "--http", 500)?;
    let ports_file: String = flag(args, "--ports-file", String::new())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut lines = String::new();
        for kind in std::iter::repeat_n("tcp", tcp).chain(std::iter::repeat_n("http", http)) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            lines.push_str(&format!("{kind} {}\n", listener.local_addr()?.port()));
            let is_http = kind == "http";
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    if !is_http {
                        continue;
                    }
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            PAGE.len()
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.write_all(PAGE).await;
                        let _ = stream.shutdown().await;
                    });
                }
            });
        }
        let partial = format!("{ports_file}.partial");
        std::fs::write(&partial, lines)?;
        std::fs::rename(&partial, &ports_file)?;
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}
