//! keepalived's notify FIFO and alert mails, side by side: node 1 runs
//! keepalived 2.2.7, then vrrpd on the same keepalived.conf converted by
//! `import-keepalived`, through the same real state changes (alone it
//! becomes master, a higher-priority keepalived peer takes over, the peer
//! stops, node 1 stops), with a sync group of two instances. A reader
//! script of the FIFO (`notify_fifo_script`) copies what it reads; the
//! lines must be keepalived's, in keepalived's order, and the mails a real
//! SMTP server (python3-aiosmtpd) receives must have keepalived's subjects
//! and bodies.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{Daemon, serial, test_dir};
use vrrp_net::testnet::{Keepalived, Lan, Router};

const T: Duration = Duration::from_secs(20);
const SPOOL: &str = include_str!("../../healthcheck/tests/support/smtp_spool.py");
const SMTP_PORT: u16 = 2525;

fn conf(prio: u8, dir: Option<&Path>) -> String {
    let global = match dir {
        Some(d) => format!(
            "global_defs {{\n  router_id node1\n  notify_fifo {d}/events.fifo\n  notify_fifo_script {d}/reader.sh\n  \
             notification_email {{\n    ops@example.com\n  }}\n  notification_email_from vrrp@example.com\n  \
             smtp_server 127.0.0.1 {SMTP_PORT}\n  smtp_helo_name node1.example.com\n  smtp_connect_timeout 5\n  smtp_alert\n}}\n",
            d = d.display()
        ),
        None => "global_defs {\n  router_id node2\n}\n".to_owned(),
    };
    let instance = |n: u8| {
        format!(
            "vrrp_instance VI_{n} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {}\n  priority {prio}\n  \
             version 3\n  advert_int 0.1\n  virtual_ipaddress {{\n    192.0.2.{}/24\n  }}\n}}\n",
            50 + n,
            50 + n
        )
    };
    format!(
        "{global}vrrp_sync_group G {{\n  group {{\n    VI_1\n    VI_2\n  }}\n}}\n{}{}",
        instance(1),
        instance(2)
    )
}

/// aiosmtpd in node 1's namespace, spooling each message to a directory.
struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn relay(router: &Router, dir: &Path) -> Result<Relay> {
    std::fs::create_dir_all(dir.join("spool"))?;
    std::fs::write(dir.join("smtp_spool.py"), SPOOL)?;
    let child = Command::new("ip")
        .args(["netns", "exec", router.ns().name(), "/usr/bin/python3"])
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{SMTP_PORT}"),
        ])
        .args(["-c", "smtp_spool.Spool"])
        .arg(dir.join("spool"))
        .env("PYTHONPATH", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("python3-aiosmtpd")?;
    let r = Relay(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !router
        .ns()
        .exec("ss", &["-Hltn", &format!("sport = :{SMTP_PORT}")])
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false)
    {
        ensure!(Instant::now() < deadline, "aiosmtpd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(r)
}

/// The lines the reader script copied so far.
fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("events.fifo.lines"))
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn wait_line(dir: &Path, line: &str, count: usize, log: &dyn Fn() -> String) -> Result<()> {
    let deadline = Instant::now() + T;
    loop {
        let seen = lines(dir);
        if seen.iter().filter(|l| *l == line).count() >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no {count} x {line:?} after {T:?}; lines {seen:#?}\nlog:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A received mail: its subject, body and envelope (sender, recipients,
/// HELO name).
type Mail = (String, String, String);

/// Subject, body and envelope of each spooled mail, sorted (mails travel
/// on separate connections: their order of arrival is not the order of
/// the events).
fn mails(dir: &Path) -> Vec<Mail> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("spool"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    let mut out: Vec<Mail> = files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let header = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_default()
                    .to_owned()
            };
            let subject = header("Subject: ");
            let envelope = format!(
                "{} -> {} ({}), To: {}",
                header("X-Envelope-From: "),
                header("X-Envelope-To: "),
                header("X-Helo: "),
                header("To: ")
            );
            let body = text
                .split("\r\n\r\n")
                .nth(1)
                .or_else(|| text.split("\n\n").nth(1))
                .unwrap_or_default()
                .trim()
                .to_owned();
            (subject, body, envelope)
        })
        .collect();
    out.sort();
    out
}

/// Node 1 under test: keepalived or vrrpd.
enum Node {
    Keepalived(Keepalived),
    Vrrpd(Daemon),
}

impl Node {
    fn log(&self) -> String {
        match self {
            Node::Keepalived(k) => k.log(),
            Node::Vrrpd(d) => d.log_text(),
        }
    }
}

/// One run: node 1's FIFO lines and the mails it sent.
fn run(vrrpd: bool) -> Result<(Vec<String>, Vec<Mail>)> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir(if vrrpd {
        "alerts-vrrpd"
    } else {
        "alerts-keepalived"
    })?;
    // The test's reader: keeps reading past SIGTERM, to the end of the
    // FIFO, and copies every line.
    let reader = dir.join("reader.sh");
    std::fs::write(
        &reader,
        "#!/bin/sh\ntrap '' TERM\nexec cat \"$1\" >> \"$1.lines\"\n",
    )?;
    std::fs::set_permissions(&reader, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let _relay = relay(r1, &dir)?;
    let text = conf(150, Some(&dir));
    let node = if vrrpd {
        let file = dir.join("keepalived.conf");
        std::fs::write(&file, &text)?;
        let out = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
            .arg("import-keepalived")
            .arg(&file)
            .output()?;
        ensure!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let toml = String::from_utf8(out.stdout)?;
        Node::Vrrpd(Daemon::start(r1, &dir, "node1", &toml)?)
    } else {
        Node::Keepalived(Keepalived::start(r1.ns(), &text)?)
    };
    let log = || node.log();
    // Alone: master.
    wait_line(&dir, "GROUP \"G\" MASTER 0", 1, &log)?;
    // A higher priority peer takes over (the first BACKUP line is the
    // start's)...
    let backups = lines(&dir)
        .iter()
        .filter(|l| *l == "GROUP \"G\" BACKUP 0")
        .count();
    let peer = Keepalived::start(r2.ns(), &conf(200, None))?;
    wait_line(&dir, "GROUP \"G\" BACKUP 0", backups + 1, &log)?;
    // ... and leaves.
    peer.stop(T)?;
    wait_line(&dir, "GROUP \"G\" MASTER 0", 2, &log)?;
    std::thread::sleep(Duration::from_millis(500));
    match node {
        Node::Keepalived(k) => {
            k.stop(T)?;
        }
        Node::Vrrpd(d) => {
            d.stop()?;
        }
    }
    wait_line(&dir, "GROUP \"G\" STOP 0", 1, &|| String::new())?;
    // Mails go out on their own connections: give the last ones a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent = mails(&dir);
    let expected = if vrrpd { 15 } else { 12 };
    while sent.len() < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        sent = mails(&dir);
    }
    Ok((lines(&dir), sent))
}

/// The lines as segments ending at each GROUP line, the INSTANCE lines of
/// a segment ordered by instance, each instance's own lines kept in their
/// order: when two members change state for one group transition, which
/// one's timer fires first is not keepalived's to promise either.
fn segments(lines: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for l in lines {
        current.push(l.clone());
        if l.starts_with("GROUP ") {
            let group = current.pop().unwrap_or_default();
            current.sort_by_key(|l| l.split('"').nth(1).unwrap_or_default().to_owned());
            current.push(group);
            out.push(std::mem::take(&mut current));
        }
    }
    current.sort_by_key(|l| l.split('"').nth(1).unwrap_or_default().to_owned());
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[test]
fn notify_fifo_lines_and_mails_are_keepalived_s() -> Result<()> {
    let _serial = serial();
    let (ka_lines, ka_mails) = run(false)?;
    let (our_lines, our_mails) = run(true)?;
    // Every line is keepalived's format.
    for l in ka_lines.iter().chain(&our_lines) {
        let w: Vec<&str> = l.split(' ').collect();
        ensure!(
            matches!(w.as_slice(), ["INSTANCE" | "GROUP", name, "MASTER" | "BACKUP" | "FAULT" | "STOP", prio]
                if name.starts_with('"') && name.ends_with('"') && prio.parse::<u8>().is_ok()),
            "not keepalived's format: {l:?}"
        );
    }
    ensure!(
        segments(&our_lines) == segments(&ka_lines),
        "FIFO lines differ:\nkeepalived {ka_lines:#?}\nvrrpd {our_lines:#?}"
    );
    // keepalived queues its "Stopping" mails too, but exits before they
    // leave; vrrpd sends them (within two seconds of its exit).
    let (stopping, others): (Vec<_>, Vec<_>) = our_mails
        .into_iter()
        .partition(|(subject, ..)| subject.ends_with("- Stopping"));
    let ka_mails: Vec<_> = ka_mails
        .into_iter()
        .filter(|(subject, ..)| !subject.ends_with("- Stopping"))
        .collect();
    ensure!(
        others == ka_mails,
        "mails differ:\nkeepalived {ka_mails:#?}\nvrrpd {others:#?}"
    );
    ensure!(ka_mails.len() == 12, "{ka_mails:#?}");
    ensure!(
        ka_mails.iter().all(|m| m.2
            == "vrrp@example.com -> ops@example.com (node1.example.com), To: ops@example.com"),
        "{ka_mails:#?}"
    );
    ensure!(stopping.len() == 3, "{stopping:#?}");
    Ok(())
}
