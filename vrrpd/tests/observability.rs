//! The observability listener of a running daemon: `/metrics` in
//! Prometheus text format with state, priority, transitions, adverts and
//! drops per instance; `/status` as JSON, printed by `vrrpd status`; and
//! `vrrpd genhash` against a local server; a peer whose address list
//! differs shows in the status table as drops; an address deleted by
//! hand is put back and named in the event stream and the status.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Daemon, test_dir};
use vrrp_net::testnet::Lan;

fn get(router: &vrrp_net::testnet::Router, path: &'static str) -> Result<String> {
    let task = router.spawn(move || async move {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9464")?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        anyhow::Ok(body)
    });
    task.join().map_err(|e| anyhow::anyhow!("{e}"))?
}

#[test]
fn metrics_and_status_describe_the_instances() -> Result<()> {
    let lan = Lan::new(1)?;
    let r = lan.router(1)?;
    let dir = test_dir("metrics")?;
    let config = "[global]\nrouter_id = \"obs\"\nvrrp_version = 3\nhttp = { listen = \"127.0.0.1:9464\" }\n\n\
                  [instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 5\npriority = 150\nadvert_int = \"100ms\"\n\
                  virtual_ipaddress = [\"192.0.2.5/24\"]\n";
    let mut d = Daemon::start(r, &dir, "obs", config)?;
    d.wait_state("VI_1", "master", Duration::from_secs(10))?;

    // The status is refreshed every second: wait for a view with adverts.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (metrics, sent) = loop {
        let metrics = get(r, "/metrics")?;
        ensure!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        let sent = metrics
            .lines()
            .find(|l| l.starts_with("vrrp_instance_adverts_sent_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        if sent >= 5 || std::time::Instant::now() > deadline {
            break (metrics, sent);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    ensure!(sent >= 5, "adverts counted: {sent}");
    for needle in [
        "vrrp_instance_state{instance=\"VI_1\",vrid=\"5\",state=\"master\"} 1",
        "vrrp_instance_state{instance=\"VI_1\",vrid=\"5\",state=\"backup\"} 0",
        "vrrp_instance_effective_priority{instance=\"VI_1\",vrid=\"5\"} 150",
        "vrrp_instance_transitions_total{instance=\"VI_1\",vrid=\"5\"} 2",
        "vrrp_instance_dropped_total{instance=\"VI_1\",vrid=\"5\",reason=\"checksum\"} 0",
    ] {
        ensure!(
            metrics.contains(needle),
            "missing {needle:?} in:\n{metrics}"
        );
    }

    let status = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            r.ns().name(),
            env!("CARGO_BIN_EXE_vrrpd"),
            "status",
            "--listen",
            "127.0.0.1:9464",
        ])
        .output()?;
    let table = String::from_utf8_lossy(&status.stdout);
    ensure!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    ensure!(table.contains("router obs"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("VI_1"))
        .context("instance row")?;
    ensure!(
        row.split_whitespace().collect::<Vec<_>>()[..5] == ["VI_1", "eth0", "5", "master", "150"],
        "{table}"
    );
    d.stop()?;
    Ok(())
}

#[test]
fn genhash_prints_the_md5_of_the_body() -> Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
            );
        }
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(["genhash", &format!("http://{addr}/")])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // md5("hello world")
    ensure!(
        text.contains("MD5SUM = 5eb63bbbe01eeed093cb22bb8f5acdc3"),
        "{text}"
    );
    Ok(())
}

/// Two nodes whose address lists differ ignore each other's
/// advertisements, as keepalived does, and both become master: the
/// status table says so instead of showing two healthy masters.
#[test]
fn status_names_the_drops_of_a_peer_configured_differently() -> Result<()> {
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("drops")?;
    let name_a = format!("drops-a-{}", std::process::id());
    let name_b = format!("drops-b-{}", std::process::id());
    let config = |prio: u8, vips: &str| {
        format!(
            "[global]\nvrrp_version = 3\n\n[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 6\n\
             priority = {prio}\nadvert_int = \"100ms\"\nvirtual_ipaddress = [{vips}]\n"
        )
    };
    let mut a = Daemon::start_with(
        ra,
        &dir,
        "a",
        &config(150, "\"192.0.2.6/24\""),
        &["--name", &name_a],
        &[],
    )?;
    let mut b = Daemon::start_with(
        rb,
        &dir,
        "b",
        &config(100, "\"192.0.2.6/24\", \"192.0.2.7/24\""),
        &["--name", &name_b],
        &[],
    )?;
    a.wait_state("VI_1", "master", Duration::from_secs(10))?;
    // B drops A's advertisements and takes over after its down interval.
    b.wait_state("VI_1", "master", Duration::from_secs(10))?;

    // The status is refreshed every second: wait for a view with the drops.
    let status = || -> Result<String> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vrrpd"))
            .args(["status", "--name", &name_a])
            .output()?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let table = loop {
        let table = status()?;
        if table.contains("dropped (VI_1)") || std::time::Instant::now() > deadline {
            break table;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let line = table
        .lines()
        .find(|l| l.starts_with("dropped (VI_1): "))
        .with_context(|| format!("no drops line in:\n{table}"))?;
    ensure!(
        line.contains("address_list ")
            && line.ends_with(
                "(a peer's configuration differs from ours: its advertisements are ignored)"
            ),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("VI_1"))
        .context("instance row")?;
    ensure!(row.split_whitespace().nth(3) == Some("master"), "{table}");
    a.stop()?;
    b.stop()?;
    Ok(())
}

/// A virtual address deleted by hand on the master is put back, and the
/// event stream and the status table name it.
#[test]
fn a_vip_put_back_is_named_in_the_events_and_the_status() -> Result<()> {
    use std::io::BufRead;

    let lan = Lan::new(1)?;
    let r = lan.router(1)?;
    let dir = test_dir("repair")?;
    let name = format!("repair-{}", std::process::id());
    let config = "[global]\nvrrp_version = 3\n\n[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 8\n\
                  priority = 150\nadvert_int = \"100ms\"\nvirtual_ipaddress = [\"192.0.2.8/24\"]\n";
    let mut d = Daemon::start_with(r, &dir, "repair", config, &["--name", &name], &[])?;
    d.wait_state("VI_1", "master", Duration::from_secs(10))?;
    common::wait_address(r, "192.0.2.8", Duration::from_secs(5))?;

    let mut events = std::process::Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(["events", "--name", &name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = events.stdout.take().context("stdout")?;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The stream is open once it says hello.
    let hello = rx.recv_timeout(Duration::from_secs(5))?;
    ensure!(hello.contains("\"hello\""), "{hello}");

    r.ns()
        .ip(&["addr", "del", "192.0.2.8/24", "dev", "eth0"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The status (and with it the event) is refreshed every second.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let repair = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .context("no vip_repair event within 5 s")?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        if v["type"] == "vip_repair" {
            break v;
        }
    };
    let _ = events.kill();
    let _ = events.wait();
    ensure!(
        repair["instance"] == "VI_1"
            && repair["address"] == "192.0.2.8/24"
            && repair["device"] == "eth0"
            && repair["restored"] == 1,
        "{repair}"
    );
    ensure!(common::has_address(r, "192.0.2.8")?, "put back");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(["status", "--name", &name])
        .output()?;
    let table = String::from_utf8_lossy(&out.stdout);
    ensure!(
        table.contains(
            "vip 192.0.2.8/24 on eth0 (VI_1): present, put back once after a removal from outside"
        ),
        "{table}"
    );
    d.stop()?;
    Ok(())
}
