//! Starts the real `vrrpd` binary in network namespaces and watches it:
//! its JSON log (state changes), its addresses, signals.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use vrrp_net::testnet::Router;

/// A `vrrpd run` process in a router namespace.
pub struct Daemon {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<(Instant, serde_json::Value)>,
    /// Every log line seen so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// State changes seen so far: (when, instance, from, to).
    pub changes: Vec<(Instant, String, String, String)>,
    pub config: PathBuf,
}

/// The e2e assertions are about timing on the wire (100 ms adverts, skew
/// times): run them one at a time rather than let seven pairs of daemons
/// compete for two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the one-at-a-time lock until dropped; a failed test does not
/// poison it for the others.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A private directory for one test's files.
pub fn test_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("vrrpd-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl Daemon {
    /// Writes `config` to `dir/NAME.toml` and runs the daemon on it.
    pub fn start(router: &Router, dir: &Path, name: &str, config: &str) -> Result<Daemon> {
        Self::start_with(router, dir, name, config, &[], &[])
    }

    /// Like [`Daemon::start`], with more arguments to `vrrpd run` and
    /// variables in its environment.
    pub fn start_with(
        router: &Router,
        dir: &Path,
        name: &str,
        config: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Daemon> {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config)?;
        let mut child = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                router.ns().name(),
                env!("CARGO_BIN_EXE_vrrpd"),
                "--log-format",
                "json",
                "run",
                "-c",
            ])
            .arg(&path)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning vrrpd")?;
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = log2.lock() {
                    l.push(line.clone());
                }
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && tx.send((Instant::now(), v)).is_err()
                {
                    return;
                }
            }
        });
        Ok(Daemon {
            name: name.to_owned(),
            child,
            lines: rx,
            log,
            changes: Vec::new(),
            config: path,
        })
    }

    fn absorb(&mut self, at: Instant, v: &serde_json::Value) -> Option<(String, String)> {
        let f = &v["fields"];
        if f["message"] != "state change" {
            return None;
        }
        let instance = f["instance"].as_str().unwrap_or_default().to_owned();
        let to = f["to"].as_str().unwrap_or_default().to_owned();
        let from = f["from"].as_str().unwrap_or_default().to_owned();
        self.changes.push((at, instance.clone(), from, to.clone()));
        Some((instance, to))
    }

    /// Collects what arrived meanwhile.
    pub fn poll(&mut self) {
        while let Ok((at, v)) = self.lines.try_recv() {
            self.absorb(at, &v);
        }
    }

    /// Waits until `instance` enters `state` ("master", "backup", "fault",
    /// "init"); earlier changes count too.
    pub fn wait_state(
        &mut self,
        instance: &str,
        state: &str,
        timeout: Duration,
    ) -> Result<Instant> {
        self.poll();
        if let Some((at, ..)) = self
            .changes
            .iter()
            .rev()
            .find(|c| c.1 == instance)
            .filter(|c| c.3 == state)
        {
            return Ok(*at);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, v) = self.lines.recv_timeout(left).map_err(|_| {
                anyhow!(
                    "{}: {instance} not {state} after {timeout:?}; changes {:?}; log:\n{}",
                    self.name,
                    self.changes,
                    self.log_text()
                )
            })?;
            if let Some((i, to)) = self.absorb(at, &v)
                && i == instance
                && to == state
            {
                return Ok(at);
            }
        }
    }

    /// Waits for a log message (the `message` field) containing `needle`.
    pub fn wait_message(&mut self, needle: &str, timeout: Duration) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, v) = self.lines.recv_timeout(left).map_err(|_| {
                anyhow!(
                    "{}: no log message {needle:?}; log:\n{}",
                    self.name,
                    self.log_text()
                )
            })?;
            self.absorb(at, &v);
            if v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle))
            {
                return Ok(v);
            }
        }
    }

    /// The state changes of `instance` so far.
    pub fn changes_of(&mut self, instance: &str) -> Vec<String> {
        self.poll();
        self.changes
            .iter()
            .filter(|c| c.1 == instance)
            .map(|c| c.3.clone())
            .collect()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) -> Result<()> {
        // `ip netns exec` execs the daemon: the child's pid is the daemon's.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig)?;
        Ok(())
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the daemon exits by itself; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Let the log reader catch up with the last lines.
                std::thread::sleep(Duration::from_millis(50));
                self.poll();
                return Ok(status);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{} still running after {timeout:?}; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and wait; the exit status.
    pub fn stop(mut self) -> Result<std::process::ExitStatus> {
        self.signal(nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                anyhow::bail!(
                    "{} did not stop on SIGTERM; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether `addr` is on the router's eth0.
pub fn has_address(router: &Router, addr: &str) -> Result<bool> {
    let out = router.addresses().map_err(|e| anyhow!("{e}"))?;
    Ok(out
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(addr)))
}

/// Waits until `addr` is on the router's eth0 (a new master announces
/// itself, then adds its addresses: the state line comes first).
/// Polls `check` every 10 ms until it holds; an error after `timeout`.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !check()? {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not after {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// `vrrpd import-keepalived CONF`: the TOML it prints. An error, or any
/// warning (the test's configuration is meant to be carried whole), fails.
pub fn import_whole(conf: &Path) -> Result<String> {
    let converted = std::process::Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .arg("import-keepalived")
        .arg(conf)
        .output()?;
    let stderr = String::from_utf8_lossy(&converted.stderr);
    anyhow::ensure!(converted.status.success(), "import: {stderr}");
    anyhow::ensure!(!stderr.contains("warning"), "import warned: {stderr}");
    String::from_utf8(converted.stdout).context("import output")
}

pub fn wait_address(router: &Router, addr: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !has_address(router, addr)? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{addr} not on router {} after {timeout:?}",
            router.number()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
