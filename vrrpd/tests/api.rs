//! The local API of the real binary in network namespaces: the control
//! socket (mode 0600, named after `--name`) answers `vrrpd status` (table
//! and `--json`) with what the kernel has; `vrrpd events` shows a
//! maintenance failover and the recovery in order with their reasons;
//! `vrrpd ctl maintenance` makes a master leave with a priority-0
//! advertisement (the backup takes over before Master_Down_Interval) and
//! the node stays Backup across a SIGHUP until cleared; `vrrpd diff`
//! prints what a reload would change and changes nothing; `/healthz` and
//! `/readyz` answer; a failover recorded by the flight recorder (`vrrpd
//! ctl dump`) replays (`vrrpd replay`) to the same transitions, and a
//! recording with its advertisements cut does not; `/metrics` of a live
//! daemon passes `promtool check metrics` and shows a failover's
//! transitions by reason, priority 0, the VIP as the kernel has it,
//! advertisement intervals and down-timer margins. The status names the
//! master's priority and every peer heard, each health check's state,
//! last result, duration and failed rounds; the gratuitous ARPs counted
//! after a takeover are those a capture sees; check durations and the
//! scheduling lag show in `/metrics`, and so do the unsolicited neighbour
//! advertisements of an IPv6 instance; `vrrpd ctl reload` applies a new
//! VIP (in the answer and in the kernel), refuses a broken file naming
//! it and changes nothing, and `--dry-run` only prints the diff.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use common::{Daemon, has_address, serial, test_dir, wait_address};
use nix::sys::signal::Signal;
use vrrp_net::testnet::{Lan, Router};

const T: Duration = Duration::from_secs(15);
/// Master_Down_Interval of priority 100 at 100 ms: 3 x 100 + 61 ms.
const MASTER_DOWN_100: Duration = Duration::from_micros(360_937);

fn config(prio: u8, http: Option<&str>) -> String {
    let http = http
        .map(|a| format!("http = {{ listen = \"{a}\" }}\n"))
        .unwrap_or_default();
    format!(
        "[global]\nvrrp_version = 3\n{http}\n[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 30\n\
         priority = {prio}\nadvert_int = \"100ms\"\nvirtual_ipaddress = [\"192.0.2.30/24\"]\n"
    )
}

/// `vrrpd ARGS` (not in any namespace: the socket is a file); stdout, or
/// the error with stderr.
fn vrrpd(args: &[&str]) -> Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(args)
        .output()?;
    ensure!(
        out.status.success(),
        "vrrpd {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn status_json(name: &str) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(&vrrpd(&[
        "status", "--json", "--name", name,
    ])?)?)
}

/// The status once `pred` holds (the kernel confirms addresses after the
/// transition).
fn wait_status(name: &str, pred: impl Fn(&serde_json::Value) -> bool) -> Result<serde_json::Value> {
    let deadline = Instant::now() + T;
    loop {
        let doc = status_json(name)?;
        if pred(&doc) {
            return Ok(doc);
        }
        if Instant::now() > deadline {
            return Err(anyhow!("status of {name} never matched: {doc}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `vrrpd events` process and the lines it printed.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Follower {
    fn start(name: &str) -> Result<Follower> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
            .args(["events", "--name", name])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = child.stdout.take().context("stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line)
                    && let Ok(mut l) = l2.lock()
                {
                    l.push(v);
                }
            }
        });
        let f = Follower { child, lines };
        f.wait(|v| v["type"] == "hello", "the greeting")?;
        Ok(f)
    }

    /// Waits for a line matching `pred`; returns it.
    fn wait(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
        what: &str,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + T;
        loop {
            if let Some(v) = self.lines().into_iter().find(|v| pred(v)) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(anyhow!("no event {what}; got {:?}", self.lines()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The state changes seen: (from, to, reason).
    fn states(&self) -> Vec<(String, String, String)> {
        self.lines()
            .iter()
            .filter(|v| v["type"] == "state")
            .map(|v| {
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                (s("from"), s("to"), s("reason"))
            })
            .collect()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(router: &Router, addr: &'static str, path: &'static str) -> Result<String> {
    let task = router.spawn(move || async move {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        anyhow::Ok(body)
    });
    task.join().map_err(|e| anyhow!("{e}"))?
}

#[test]
fn status_events_maintenance_across_sighup_diff_and_health() -> Result<()> {
    let _serial = serial();
    let started = Instant::now();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("api")?;
    let pid = std::process::id();
    let (na, nb) = (format!("api-a-{pid}"), format!("api-b-{pid}"));
    let http = "127.0.0.1:9471";
    let mut a = Daemon::start_with(
        ra,
        &dir,
        "a",
        &config(200, Some(http)),
        &["--name", &na],
        &[],
    )?;
    a.wait_state("VI_1", "master", T)?;
    let mut b = Daemon::start_with(rb, &dir, "b", &config(100, None), &["--name", &nb], &[])?;
    b.wait_state("VI_1", "backup", T)?;

    // The socket: next to the pid file, root only.
    let socket = Path::new("/run/vrrpd").join(format!("{na}.sock"));
    {
        use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
        let meta = std::fs::metadata(&socket)?;
        ensure!(meta.file_type().is_socket(), "{socket:?} is a socket");
        ensure!(meta.permissions().mode() & 0o777 == 0o600, "mode {meta:?}");
    }

    // Status: JSON with the kernel's view, and the table.
    let doc = wait_status(&na, |d| d["instances"][0]["vips"][0]["present"] == true)?;
    let vi = &doc["instances"][0];
    ensure!(
        vi["state"] == "master" && vi["base_priority"] == 200,
        "{doc}"
    );
    ensure!(vi["maintenance"] == false, "{doc}");
    ensure!(
        vi["vips"][0]["address"] == "192.0.2.30/24"
            && vi["vips"][0]["present"] == true
            && vi["vips"][0]["ours"] == true,
        "{doc}"
    );
    // B follows A (counters and the master seen refresh within a second).
    wait_status(&nb, |d| {
        d["instances"][0]["master"] == ra.ipv4().to_string()
            && d["instances"][0]["adverts_received"].as_u64() > Some(0)
    })?;
    let table = vrrpd(&["status", "--name", &na])?;
    let row = table
        .lines()
        .find(|l| l.starts_with("VI_1"))
        .context("row")?;
    ensure!(
        row.split_whitespace().collect::<Vec<_>>()[..5] == ["VI_1", "eth0", "30", "master", "200"],
        "{table}"
    );
    ensure!(
        table.contains("vip 192.0.2.30/24 on eth0 (VI_1): present"),
        "{table}"
    );

    // Health.
    let h = http_get(ra, http, "/healthz")?;
    ensure!(h.starts_with("HTTP/1.1 200") && h.ends_with("ok\n"), "{h}");
    let r = http_get(ra, http, "/readyz")?;
    ensure!(r.starts_with("HTTP/1.1 200"), "{r}");

    // Maintenance on A: it leaves with priority 0, B takes over at once.
    let ea = Follower::start(&na)?;
    let eb = Follower::start(&nb)?;
    let out = vrrpd(&["ctl", "--name", &na, "maintenance", "VI_1", "on"])?;
    ensure!(out.trim() == "maintenance on for VI_1", "{out}");
    let left = a.wait_state("VI_1", "backup", T)?;
    let took = b.wait_state("VI_1", "master", T)? - left;
    ensure!(
        took < MASTER_DOWN_100,
        "B took over {took:?} after A left: not the priority-0 handover"
    );
    ea.wait(
        |v| v["type"] == "state" && v["to"] == "backup" && v["reason"] == "maintenance",
        "A leaving for maintenance",
    )?;
    ea.wait(
        |v| v["type"] == "maintenance" && v["name"] == "VI_1" && v["on"] == true,
        "the maintenance command",
    )?;
    eb.wait(
        |v| v["type"] == "state" && v["to"] == "master" && v["reason"] == "master_down",
        "B taking over",
    )?;
    let doc = status_json(&na)?;
    let vi = &doc["instances"][0];
    ensure!(
        vi["maintenance"] == true && vi["state"] == "backup",
        "{doc}"
    );
    ensure!(
        vi["priority_zero"][1].as_u64() >= Some(1),
        "priority 0 sent: {doc}"
    );
    ensure!(
        !has_address(ra, "192.0.2.30")? && has_address(rb, "192.0.2.30")?,
        "the VIP moved"
    );

    // SIGHUP with a changed priority (an update in place): A stays in
    // maintenance, B stays master, though A's priority is the higher.
    std::fs::write(&a.config, config(210, Some(http)))?;
    a.signal(Signal::SIGHUP)?;
    let reload = ea.wait(|v| v["type"] == "reload", "the reload")?;
    ensure!(reload["result"] == "applied", "{reload}");
    ensure!(
        reload["changes"][0]["name"] == "VI_1" && reload["changes"][0]["action"] == "updated",
        "{reload}"
    );
    std::thread::sleep(MASTER_DOWN_100 * 3);
    let doc = status_json(&na)?;
    let vi = &doc["instances"][0];
    ensure!(
        vi["maintenance"] == true && vi["state"] == "backup" && vi["base_priority"] == 210,
        "{doc}"
    );
    ensure!(
        a.changes_of("VI_1").last().map(String::as_str) == Some("backup"),
        "A stayed backup: {:?}",
        a.changes_of("VI_1")
    );
    ensure!(
        b.changes_of("VI_1").last().map(String::as_str) == Some("master"),
        "B stayed master"
    );

    // A dry run: the diff printed, nothing applied.
    let new = dir.join("new.toml");
    std::fs::write(
        &new,
        config(250, Some(http))
            + "\n[instance.VI_2]\ninterface = \"eth0\"\nvirtual_router_id = 31\npriority = 100\n\
               advert_int = \"100ms\"\nvirtual_ipaddress = [\"192.0.2.31/24\"]\n",
    )?;
    let reloads_before = ea.lines().iter().filter(|v| v["type"] == "reload").count();
    let diff = vrrpd(&["diff", "-c", &new.display().to_string(), "--name", &na])?;
    ensure!(
        diff == "instance VI_1: updated in place (priority: 210 -> 250)\ninstance VI_2: added\n",
        "{diff}"
    );
    // The file as an argument works as `-c FILE` does.
    let same = vrrpd(&["diff", &a.config.display().to_string(), "--name", &na])?;
    ensure!(same == "no change\n", "{same}");
    std::thread::sleep(MASTER_DOWN_100 * 2);
    let doc = status_json(&na)?;
    ensure!(
        doc["instances"].as_array().map(Vec::len) == Some(1)
            && doc["instances"][0]["base_priority"] == 210,
        "nothing applied: {doc}"
    );
    ensure!(!has_address(ra, "192.0.2.31")?, "no VI_2 address");
    ensure!(
        ea.lines().iter().filter(|v| v["type"] == "reload").count() == reloads_before,
        "no reload"
    );
    // A broken file: the daemon's error, nothing applied.
    std::fs::write(&new, "[instance.VI_1]\npriority = 1000\n")?;
    let err =
        vrrpd(&["diff", "-c", &new.display().to_string(), "--name", &na]).expect_err("refused");
    ensure!(err.to_string().contains("new.toml"), "{err}");

    // Unknown names are refused.
    let err = vrrpd(&["ctl", "--name", &na, "maintenance", "NOPE", "on"]).expect_err("refused");
    ensure!(
        err.to_string()
            .contains("no instance or sync group is named NOPE"),
        "{err}"
    );

    // Cleared: A (210) preempts B; both streams show the failover and
    // the recovery in order.
    vrrpd(&["ctl", "--name", &na, "maintenance", "VI_1", "off"])?;
    a.wait_state("VI_1", "master", T)?;
    b.wait_state("VI_1", "backup", T)?;
    eb.wait(
        |v| v["type"] == "state" && v["to"] == "backup",
        "B stepping down",
    )?;
    ea.wait(|v| v["type"] == "state" && v["to"] == "master", "A back")?;
    let s = |f: &str, t: &str, r: &str| (f.to_owned(), t.to_owned(), r.to_owned());
    ensure!(
        ea.states()
            == [
                s("master", "backup", "maintenance"),
                s("backup", "master", "master_down")
            ],
        "A: {:?}",
        ea.states()
    );
    ensure!(
        eb.states()
            == [
                s("backup", "master", "master_down"),
                s("master", "backup", "preempted")
            ],
        "B: {:?}",
        eb.states()
    );
    let preempted = eb.wait(|v| v["reason"] == "preempted", "preempted")?;
    ensure!(
        preempted["by"] == ra.ipv4().to_string() && preempted["by_priority"] == 210,
        "{preempted}"
    );

    let status = a.stop()?;
    ensure!(status.success(), "clean exit");
    ensure!(!socket.exists(), "socket removed at exit");
    b.stop()?;
    eprintln!("api suite: {:?}", started.elapsed());
    Ok(())
}

#[test]
fn a_recorded_failover_replays_to_the_same_transitions() -> Result<()> {
    let _serial = serial();
    let started = Instant::now();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("replay")?;
    let pid = std::process::id();
    let nb = format!("rec-b-{pid}");
    // A first: B starts as the backup of a running master, so its
    // transitions are known.
    let mut a = Daemon::start_with(
        ra,
        &dir,
        "a",
        &config(200, None),
        &["--name", &format!("rec-a-{pid}")],
        &[],
    )?;
    a.wait_state("VI_1", "master", T)?;
    let mut b = Daemon::start_with(rb, &dir, "b", &config(100, None), &["--name", &nb], &[])?;
    b.wait_state("VI_1", "backup", T)?;
    std::thread::sleep(Duration::from_millis(300));
    // A crash: no priority 0; B takes over after Master_Down_Interval.
    a.kill()?;
    b.wait_state("VI_1", "master", T)?;

    let dump = vrrpd(&["ctl", "--name", &nb, "dump"])?;
    let file = dir.join("b.jsonl");
    std::fs::write(&file, &dump)?;
    let types: Vec<String> = dump
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    ensure!(
        types.first().map(String::as_str) == Some("flight_record"),
        "{dump}"
    );
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    ensure!(
        count("add_instance") == 1 && count("startup") == 1,
        "{types:?}"
    );
    ensure!(count("packet") >= 3, "A's adverts recorded: {types:?}");
    ensure!(count("transition") == 2, "{types:?}");

    let out = vrrpd(&["replay", &file.display().to_string()])?;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines.len() == 3
            && lines[0].ends_with("VI_1 init -> backup (startup)")
            && lines[1].ends_with("VI_1 backup -> master (master_down)")
            && lines[2] == "replayed 2 transitions: identical to the recording",
        "{out}"
    );
    // The timer that made B master was due Master_Down_Interval after
    // A's last advertisement arrived, to the nanosecond, and fired then
    // or a little later.
    let records: Vec<serde_json::Value> = dump
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let last_advert = records
        .iter()
        .filter(|v| v["type"] == "packet")
        .filter_map(|v| v["at_ns"].as_u64())
        .max()
        .context("an advert")?;
    let takeover = records
        .iter()
        .find(|v| v["type"] == "transition" && v["to"] == "master")
        .and_then(|v| v["at_ns"].as_u64())
        .context("the takeover")?;
    let firing = records
        .iter()
        .find(|v| v["type"] == "timeout" && v["at_ns"].as_u64() == Some(takeover))
        .context("the timer firing")?;
    ensure!(
        firing["due_ns"].as_u64() == Some(last_advert + 360_937_500),
        "due {firing} after the last advert at {last_advert}"
    );
    ensure!(
        b.changes_of("VI_1") == ["backup", "master"],
        "{:?}",
        b.changes_of("VI_1")
    );

    // Without A's advertisements the recording no longer explains itself.
    let cut: String = dump
        .lines()
        .filter(|l| !l.contains("\"type\":\"packet\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let cut_file = dir.join("cut.jsonl");
    std::fs::write(&cut_file, cut)?;
    let out = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(["replay", &cut_file.display().to_string()])
        .output()?;
    ensure!(out.status.code() == Some(1), "{out:?}");
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("DIFFERENT"),
        "{out:?}"
    );
    b.stop()?;
    eprintln!("replay suite: {:?}", started.elapsed());
    Ok(())
}

/// The value of the first sample line starting with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_pass_promtool_and_show_a_failover() -> Result<()> {
    let _serial = serial();
    let started = Instant::now();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("promtool")?;
    let pid = std::process::id();
    let (na, nb) = (format!("prom-a-{pid}"), format!("prom-b-{pid}"));
    // Each router namespace has its own loopback: one port for both.
    let http = "127.0.0.1:9472";
    let mut a = Daemon::start_with(
        ra,
        &dir,
        "a",
        &config(200, Some(http)),
        &["--name", &na],
        &[],
    )?;
    a.wait_state("VI_1", "master", T)?;
    let mut b = Daemon::start_with(
        rb,
        &dir,
        "b",
        &config(100, Some(http)),
        &["--name", &nb],
        &[],
    )?;
    b.wait_state("VI_1", "backup", T)?;
    std::thread::sleep(Duration::from_millis(500));
    vrrpd(&["ctl", "--name", &na, "maintenance", "VI_1", "on"])?;
    b.wait_state("VI_1", "master", T)?;

    // The status behind /metrics refreshes every second.
    let vi = "{instance=\"VI_1\",vrid=\"30\"";
    let takeover = format!(
        "vrrp_instance_transitions_by_reason_total{vi},from=\"backup\",to=\"master\",reason=\"master_down\"}}"
    );
    let deadline = Instant::now() + T;
    let body = loop {
        let body = metrics_of(rb, http)?;
        if sample(&body, &takeover) == Some(1.0) {
            break body;
        }
        ensure!(Instant::now() < deadline, "no takeover in:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    promtool(&body)?;
    for (name, want) in [
        (format!("vrrp_instance_state{vi},state=\"master\"}}"), 1.0),
        (
            format!("vrrp_instance_priority_zero_received_total{vi}}}"),
            1.0,
        ),
        (format!("vrrp_instance_dual_master_total{vi}}}"), 0.0),
        (
            format!("vrrp_vip_present{vi},address=\"192.0.2.30/24\",device=\"eth0\"}}"),
            1.0,
        ),
        (format!("vrrp_instance_base_priority{vi}}}"), 100.0),
        (
            "vrrpd_config_reloads_total{result=\"applied\"}".to_owned(),
            0.0,
        ),
        (
            format!(
                "vrrpd_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        ),
    ] {
        ensure!(
            sample(&body, &name) == Some(want),
            "{name} != {want} in:\n{body}"
        );
    }
    // B heard A every 100 ms before the handover, each well before its
    // Master_Down_Timer.
    let intervals = sample(
        &body,
        &format!("vrrp_instance_advert_interval_seconds_count{vi}}}"),
    )
    .context("interval count")?;
    ensure!(intervals >= 3.0, "{body}");
    let within = sample(
        &body,
        r#"vrrp_instance_advert_interval_seconds_bucket{le="0.25",instance="VI_1",vrid="30"}"#,
    )
    .with_context(|| format!("bucket in {body}"))?;
    ensure!(within == intervals, "all intervals under 250 ms:\n{body}");
    let margin = sample(
        &body,
        &format!("vrrp_instance_down_timer_margin_min_seconds{vi}}}"),
    )
    .context("margin")?;
    ensure!(
        margin > 0.0 && margin < MASTER_DOWN_100.as_secs_f64(),
        "margin {margin}"
    );
    // A's side: it left master for maintenance, with priority 0.
    let resp = http_get(ra, http, "/metrics")?;
    let deadline = Instant::now() + T;
    let mut resp = resp;
    while sample(&resp, &format!("vrrp_instance_maintenance{vi}}}")) != Some(1.0) {
        ensure!(Instant::now() < deadline, "{resp}");
        std::thread::sleep(Duration::from_millis(100));
        resp = http_get(ra, http, "/metrics")?;
    }
    ensure!(
        sample(
            &resp,
            &format!(
                "vrrp_instance_transitions_by_reason_total{vi},from=\"master\",to=\"backup\",reason=\"maintenance\"}}"
            )
        ) == Some(1.0)
            && sample(
                &resp,
                &format!("vrrp_instance_priority_zero_sent_total{vi}}}")
            ) == Some(1.0),
        "{resp}"
    );
    a.stop()?;
    b.stop()?;
    eprintln!("promtool suite: {:?}", started.elapsed());
    Ok(())
}

/// A node with a passing and a failing tracked script (weight -5), and
/// three gratuitous ARPs per round, the second round 300 ms after the
/// first.
fn checked_config(prio: u8, http: &str, vips: &[&str], extra: &str) -> String {
    let vips: Vec<String> = vips.iter().map(|v| format!("\"{v}\"")).collect();
    format!(
        "[global]\nvrrp_version = 3\nscript_user = \"root\"\nhttp = {{ listen = \"{http}\" }}\n\n\
         [script.chk_ok]\ncommand = \"/bin/true\"\ninterval = \"100ms\"\n\n\
         [script.chk_bad]\ncommand = \"/bin/false\"\ninterval = \"100ms\"\nweight = -5\n\n\
         [instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 30\npriority = {prio}\n{extra}\
         advert_int = \"100ms\"\ngarp_master_delay = \"300ms\"\ngarp_master_repeat = 3\n\
         track_script = [\"chk_ok\", \"chk_bad\"]\nvirtual_ipaddress = [{}]\n",
        vips.join(", ")
    )
}

/// `tcpdump` in `router`'s namespace, printing the ARP frames from `mac`.
struct Capture {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    fn arp_from(router: &Router, mac: [u8; 6]) -> Result<Capture> {
        Capture::start(router, mac, "arp")
    }

    /// Neighbour advertisements (ICMPv6 type 136) from `mac`.
    fn na_from(router: &Router, mac: [u8; 6]) -> Result<Capture> {
        Capture::start(router, mac, "icmp6 and ip6[40] == 136")
    }

    fn start(router: &Router, mac: [u8; 6], what: &str) -> Result<Capture> {
        let mac = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let filter = format!("{what} and ether src {mac}");
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                router.ns().name(),
                "tcpdump",
                "-l",
                "-n",
                "-i",
            ])
            .arg(router.ifname())
            .arg(&filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().context("stdout")?;
        let err = child.stderr.take().context("stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(mut l) = l2.lock() {
                    l.push(line);
                }
            }
        });
        // tcpdump says it listens once the capture is open.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if !told && line.contains("listening on") {
                    let _ = tx.send(());
                    told = true;
                }
            }
        });
        rx.recv_timeout(T).context("tcpdump never listened")?;
        Ok(Capture { child, lines })
    }

    /// Gratuitous ARPs for `vip` seen so far.
    fn garps(&self, vip: &str) -> usize {
        // `Request who-has VIP (ff:ff:ff:ff:ff:ff) tell VIP, length 46`
        let (asked, by) = (format!("who-has {vip} "), format!("tell {vip},"));
        self.lines
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|x| x.contains(&asked) && x.contains(&by))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Capture {
    /// Unsolicited neighbour advertisements for `vip` seen so far.
    fn nas(&self, vip: &str) -> usize {
        let target = format!("neighbor advertisement, tgt is {vip},");
        self.lines
            .lock()
            .map(|l| l.iter().filter(|x| x.contains(&target)).count())
            .unwrap_or(0)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metrics_of(router: &Router, http: &'static str) -> Result<String> {
    let resp = http_get(router, http, "/metrics")?;
    ensure!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .context("body")
}

fn promtool(body: &str) -> Result<()> {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    check
        .stdin
        .take()
        .context("stdin")?
        .write_all(body.as_bytes())?;
    let verdict = check.wait_with_output()?;
    ensure!(
        verdict.status.success(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&verdict.stdout),
        String::from_utf8_lossy(&verdict.stderr)
    );
    Ok(())
}

#[test]
fn status_peers_checks_garps_and_reload_over_the_socket() -> Result<()> {
    let _serial = serial();
    let started = Instant::now();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("status2")?;
    let pid = std::process::id();
    let (na, nb) = (format!("st-a-{pid}"), format!("st-b-{pid}"));
    let http = "127.0.0.1:9473";
    let vip = "192.0.2.30/24";
    let mut a = Daemon::start_with(
        ra,
        &dir,
        "a",
        &checked_config(200, http, &[vip], ""),
        &["--name", &na],
        &[],
    )?;
    a.wait_state("VI_1", "master", T)?;
    let mut b = Daemon::start_with(
        rb,
        &dir,
        "b",
        &checked_config(100, http, &[vip], ""),
        &["--name", &nb],
        &[],
    )?;
    b.wait_state("VI_1", "backup", T)?;

    // B's view of A: the master's address and priority (200 - 5 for the
    // failing script), and A in the peer table with what it advertises.
    let a_ip = ra.ipv4().to_string();
    let doc = wait_status(&nb, |d| {
        let i = &d["instances"][0];
        i["master"] == a_ip.as_str()
            && i["master_priority"] == 195
            && i["peers"][0]["adverts"].as_u64() >= Some(3)
    })?;
    let vi = &doc["instances"][0];
    ensure!(
        vi["peers"].as_array().map(Vec::len) == Some(1),
        "only A: {doc}"
    );
    let peer = &vi["peers"][0];
    ensure!(
        peer["address"] == a_ip.as_str()
            && peer["priority"] == 195
            && peer["advert_interval"] == 0.1
            && peer["last_advert_age"].as_f64() < Some(2.0),
        "{peer}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    let last = peer["last_advert"].as_f64().context("last_advert")?;
    ensure!((now - last).abs() < 3.0, "last advert at {last}, now {now}");
    // A hears nobody better; it is its own master.
    let doc = wait_status(&na, |d| {
        d["checks"].as_array().is_some_and(|c| {
            c.iter().filter(|c| c["last_result"].is_string()).count() == 2
                && c.iter()
                    .any(|c| c["consecutive_failures"].as_u64() >= Some(2))
        })
    })?;
    ensure!(doc["instances"][0]["master_priority"] == 195, "{doc}");
    let check = |name: &str| {
        doc["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    let ok = check("chk_ok");
    ensure!(
        ok["kind"] == "script"
            && ok["state"] == "up"
            && ok["decided"] == true
            && ok["last_result"] == "success"
            && ok["reason"].is_null()
            && ok["consecutive_failures"] == 0
            && ok["last_duration"]
                .as_f64()
                .is_some_and(|d| d > 0.0 && d < 1.0)
            && ok["last_run"]
                .as_f64()
                .is_some_and(|t| (now - t).abs() < 3.0),
        "{ok}"
    );
    let bad = check("chk_bad");
    ensure!(
        bad["kind"] == "script"
            && bad["state"] == "down"
            && bad["last_result"] == "failure"
            && bad["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{bad}"
    );
    let table = vrrpd(&["status", "--name", &nb])?;
    ensure!(
        table.contains(&format!("master of VI_1: {a_ip} priority 195"))
            && table.contains(&format!("peer {a_ip} (VI_1): priority 195, advert 0.1s")),
        "{table}"
    );
    let table = vrrpd(&["status", "--name", &na])?;
    ensure!(
        table.contains("check chk_ok [script]: up, last success")
            && table.contains("check chk_bad [script]: down, last failure ("),
        "{table}"
    );

    // A takeover by B: the gratuitous ARPs it counts are those on the
    // wire, seen from A.
    let capture = Capture::arp_from(ra, rb.mac())?;
    vrrpd(&["ctl", "--name", &na, "maintenance", "VI_1", "on"])?;
    b.wait_state("VI_1", "master", T)?;
    wait_status(&nb, |d| d["instances"][0]["garps_sent"].as_u64() > Some(0))?;
    // Both rounds (300 ms apart) are over well within a second and a
    // half; the capture then has had time to print them.
    std::thread::sleep(Duration::from_millis(1500));
    let doc = status_json(&nb)?;
    let counted = doc["instances"][0]["garps_sent"]
        .as_u64()
        .context("garps_sent")?;
    let seen = capture.garps("192.0.2.30");
    ensure!(
        counted >= 2 && usize::try_from(counted)? == seen,
        "B counted {counted} gratuitous ARPs, the capture saw {seen}: {:?}",
        capture.lines.lock().map(|l| l.clone()).unwrap_or_default()
    );
    ensure!(doc["instances"][0]["nas_sent"] == 0, "{doc}");
    // /metrics says the same, and check durations and lag moved.
    let vi = "{instance=\"VI_1\",vrid=\"30\"";
    let body = metrics_of(rb, http)?;
    promtool(&body)?;
    ensure!(
        sample(
            &body,
            &format!("vrrp_instance_gratuitous_arps_sent_total{vi}}}")
        ) == Some(counted as f64),
        "{body}"
    );
    let durations = sample(&body, "healthcheck_duration_seconds_count{kind=\"script\"}")
        .context("script durations")?;
    ensure!(durations >= 4.0, "{body}");
    let under_a_second = sample(
        &body,
        "healthcheck_duration_seconds_bucket{le=\"1.0\",kind=\"script\"}",
    )
    .context("bucket")?;
    ensure!(under_a_second == durations, "{body}");
    let lag = sample(&body, "healthcheck_schedule_lag_seconds_count").context("lag")?;
    ensure!(lag >= durations, "an attempt starts before it ends: {body}");
    ensure!(
        sample(&body, "healthcheck_up{check=\"chk_bad\",kind=\"script\"}") == Some(0.0)
            && sample(&body, "healthcheck_up{check=\"chk_ok\",kind=\"script\"}") == Some(1.0),
        "{body}"
    );
    drop(capture);
    vrrpd(&["ctl", "--name", &na, "maintenance", "VI_1", "off"])?;
    a.wait_state("VI_1", "master", T)?;

    // Reload over the socket. A dry run of a file adding a VIP: the diff,
    // nothing applied.
    let vip2 = "192.0.2.31/24";
    std::fs::write(&a.config, checked_config(200, http, &[vip, vip2], ""))?;
    let out = vrrpd(&["ctl", "--name", &na, "reload", "--dry-run"])?;
    let mut lines = out.lines();
    ensure!(
        lines.next() == Some("dry run: nothing applied")
            && lines
                .any(|l| l.starts_with("instance VI_1: updated in place")
                    && l.contains("192.0.2.31")),
        "{out}"
    );
    std::thread::sleep(MASTER_DOWN_100 * 2);
    ensure!(!has_address(ra, "192.0.2.31")?, "dry run added nothing");
    let doc = status_json(&na)?;
    ensure!(doc["reloads"] == 0 && doc["reload_failures"] == 0, "{doc}");
    // Applied: in the answer and in the kernel.
    let out = vrrpd(&["ctl", "--name", &na, "reload"])?;
    let mut lines = out.lines();
    ensure!(
        lines.next() == Some("reload applied")
            && lines
                .any(|l| l.starts_with("instance VI_1: updated in place")
                    && l.contains("192.0.2.31")),
        "{out}"
    );
    wait_address(ra, "192.0.2.31", T)?;
    // A broken file: refused, named, nothing changed.
    std::fs::write(
        &a.config,
        checked_config(200, http, &[vip, vip2], "").replace("priority = 200", "priority = 1000"),
    )?;
    let err = vrrpd(&["ctl", "--name", &na, "reload"]).expect_err("refused");
    let err = err.to_string();
    let file = a.config.display().to_string();
    ensure!(
        err.contains("reload refused") && err.contains(&file) && err.contains("priority"),
        "{err}"
    );
    // The line of the bad key is named.
    let line = std::fs::read_to_string(&a.config)?
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("priority"))
        .map(|(i, _)| i + 1)
        .last()
        .context("the line")?;
    ensure!(
        err.contains(&format!("{file}:{line}")),
        "line {line}: {err}"
    );
    std::thread::sleep(MASTER_DOWN_100 * 2);
    ensure!(
        has_address(ra, "192.0.2.30")? && has_address(ra, "192.0.2.31")?,
        "still running"
    );
    let doc = status_json(&na)?;
    ensure!(
        doc["instances"][0]["state"] == "master"
            && doc["reloads"] == 1
            && doc["reload_failures"] == 1,
        "{doc}"
    );
    ensure!(
        a.changes_of("VI_1").last().map(String::as_str) == Some("master"),
        "{:?}",
        a.changes_of("VI_1")
    );
    a.stop()?;
    b.stop()?;
    eprintln!("status/reload suite: {:?}", started.elapsed());
    Ok(())
}

#[test]
fn unsolicited_neighbour_advertisements_are_counted_as_a_capture_sees_them() -> Result<()> {
    let _serial = serial();
    let started = Instant::now();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("na")?;
    let na = format!("na-a-{}", std::process::id());
    // Seen from the neighbour, from before A starts.
    let capture = Capture::na_from(rb, ra.mac())?;
    let config = "[global]\nvrrp_version = 3\n\n[instance.VI_6]\ninterface = \"eth0\"\n\
                  virtual_router_id = 36\npriority = 200\nadvert_int = \"100ms\"\n\
                  garp_master_delay = \"300ms\"\ngarp_master_repeat = 2\n\
                  virtual_ipaddress = [\"2001:db8::36/64\", \"2001:db8::37/64\"]\n";
    let mut a = Daemon::start_with(ra, &dir, "a", config, &["--name", &na], &[])?;
    a.wait_state("VI_6", "master", T)?;
    wait_status(&na, |d| d["instances"][0]["nas_sent"].as_u64() > Some(0))?;
    // Both rounds (300 ms apart) are over well within a second and a
    // half.
    std::thread::sleep(Duration::from_millis(1500));
    let doc = status_json(&na)?;
    let vi = &doc["instances"][0];
    let counted = vi["nas_sent"].as_u64().context("nas_sent")?;
    let seen = capture.nas("2001:db8::36") + capture.nas("2001:db8::37");
    ensure!(
        counted >= 4 && usize::try_from(counted)? == seen && vi["garps_sent"] == 0,
        "A counted {counted} neighbour advertisements, the capture saw {seen}: {doc} {:?}",
        capture.lines.lock().map(|l| l.clone()).unwrap_or_default()
    );
    a.stop()?;
    eprintln!("neighbour advertisement suite: {:?}", started.elapsed());
    Ok(())
}
