//! The two nodes of a case: a namespace each on a test LAN, keepalived or
//! vrrpd (imported from the same keepalived.conf) running in it, the flags
//! its tracked scripts and files read, and a watch on its addresses
//! (`ip monitor address`, so that placement is seen as it changes).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vrrp_net::testnet::Router;

/// Which daemon a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daemon {
    /// keepalived 2.2.7 (`--vrrp`), the reference.
    Keepalived,
    /// vrrpd, from `vrrpd import-keepalived` of the same file.
    Vrrpd,
}

impl Daemon {
    pub fn short(self) -> &'static str {
        match self {
            Daemon::Keepalived => "ka",
            Daemon::Vrrpd => "vrrpd",
        }
    }
}

/// The addresses of a namespace as `ip monitor` reports them (with what
/// [`attributes`] keeps of each), and when they last changed.
#[derive(Default)]
struct Seen {
    addresses: BTreeMap<String, String>,
    changed: Option<Instant>,
}

/// What the harness compares of an address besides where it is: its
/// broadcast, peer, scope other than global, and IPv6 deprecation
/// (`preferred_lft 0`), from the words after the address in an
/// `ip -o addr` / `ip -o monitor address` line. Empty for a plain address.
fn attributes(words: &[&str]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        match *w {
            "brd" | "peer" => {
                if let Some(v) = words.get(i + 1) {
                    out.push(format!("{w} {v}"));
                }
                i += 1;
            }
            "scope" => {
                if let Some(v) = words.get(i + 1).filter(|v| **v != "global") {
                    out.push(format!("scope {v}"));
                }
                i += 1;
            }
            "deprecated" => out.push("deprecated".to_owned()),
            w if w.starts_with('\\') => break,
            _ => {}
        }
        i += 1;
    }
    out.join(",")
}

/// The address of an `ip -o` line (without its prefix) and its
/// attributes.
fn parse_line(line: &str) -> Option<(String, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "inet" || *w == "inet6")?;
    let addr = words
        .get(at + 1)?
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    Some((addr, attributes(words.get(at + 2..).unwrap_or(&[]))))
}

/// Watches a namespace's addresses.
pub struct Watch {
    seen: Arc<Mutex<Seen>>,
    child: Child,
}

impl Watch {
    pub fn start(ns: &str) -> Result<Watch> {
        let mut child = Command::new("ip")
            .args(["-n", ns, "-o", "monitor", "address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("ip monitor")?;
        let stdout = child.stdout.take().context("stdout")?;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let shared = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let deleted = line.starts_with("Deleted");
                let Some((addr, attrs)) = parse_line(&line) else {
                    continue;
                };
                let Ok(mut s) = shared.lock() else { return };
                let changed = if deleted {
                    s.addresses.remove(&addr).is_some()
                } else {
                    s.addresses.insert(addr, attrs.clone()) != Some(attrs)
                };
                if changed {
                    s.changed = Some(Instant::now());
                }
            }
        });
        // Addresses already there (the router's own) count from now.
        let out = Command::new("ip")
            .args(["-n", ns, "-o", "addr", "show"])
            .output()
            .context("ip addr")?;
        {
            let mut s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((addr, attrs)) = parse_line(line) {
                    s.addresses.insert(addr, attrs);
                }
            }
        }
        Ok(Watch { seen, child })
    }

    /// The attributes of `addr` if the namespace has it (see
    /// [`attributes`]).
    pub fn get(&self, addr: &str) -> Option<String> {
        self.seen
            .lock()
            .ok()
            .and_then(|s| s.addresses.get(addr).cloned())
    }

    /// When the addresses last changed.
    pub fn changed(&self) -> Option<Instant> {
        self.seen.lock().ok().and_then(|s| s.changed)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One node of a case.
pub struct Node {
    pub number: usize,
    pub daemon: Daemon,
    pub ns: String,
    /// keepalived.conf of this node (`$FLAGS` first).
    pub conf: PathBuf,
    /// Directory of flags, logs and files.
    pub dir: PathBuf,
    child: Option<Child>,
    starts: usize,
    pub watch: Watch,
}

impl Node {
    /// A node in `router`'s namespace, not started; `conf` is the
    /// rewritten keepalived.conf.
    pub fn new(router: &Router, daemon: Daemon, dir: &Path, conf: &str) -> Result<Node> {
        let number = router.number();
        let dir = dir.join(format!("node{number}-{}", daemon.short()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("keepalived.conf");
        std::fs::write(&path, format!("$FLAGS={}\n{conf}", dir.display()))?;
        let ns = router.ns().name().to_owned();
        Ok(Node {
            number,
            daemon,
            watch: Watch::start(&ns)?,
            ns,
            conf: path,
            dir,
            child: None,
            starts: 0,
        })
    }

    fn id(&self) -> String {
        format!("node{}", self.number)
    }

    /// Imports the file for vrrpd (once); the TOML path.
    fn import(&self) -> Result<PathBuf> {
        let toml = self.dir.join("vrrpd.toml");
        if toml.exists() {
            return Ok(toml);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
            .args(["import-keepalived", "--config-id", &self.id(), "-o"])
            .arg(&toml)
            .arg(&self.conf)
            .output()
            .context("vrrpd import-keepalived")?;
        std::fs::write(self.dir.join("import.log"), &out.stderr)?;
        if !out.status.success() {
            bail!(
                "import-keepalived failed for {}:\n{}",
                self.conf.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(toml)
    }

    /// The log of the current (or last) run.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("run{}.log", self.starts))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn start(&mut self) -> Result<()> {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path())?;
        let log_err = log.try_clone()?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]);
        match self.daemon {
            Daemon::Keepalived => {
                let p = |f: &str| self.dir.join(f).display().to_string();
                cmd.arg("keepalived").args([
                    "--dont-fork",
                    "--log-console",
                    "--log-detail",
                    "--no-syslog",
                    "--vrrp",
                    &format!("--config-id={}", self.id()),
                    &format!("--use-file={}", self.conf.display()),
                    &format!("--pid={}", p("keepalived.pid")),
                    &format!("--vrrp_pid={}", p("vrrp.pid")),
                    &format!("--checkers_pid={}", p("checkers.pid")),
                    &format!("--bfd_pid={}", p("bfd.pid")),
                ]);
            }
            Daemon::Vrrpd => {
                let toml = self.import()?;
                cmd.arg(env!("CARGO_BIN_EXE_vrrpd"))
                    .args(["--log-format", "json", "run", "-c"])
                    .arg(toml);
            }
        }
        use std::os::unix::process::CommandExt as _;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .context("starting the daemon")?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits for the daemon's own word that it runs (keepalived's VRRP
    /// process logs "Startup complete", vrrpd "vrrpd running"), so that a
    /// checkpoint's time counts from there and not from a start-up slowed
    /// down by a busy machine.
    fn wait_ready(&mut self) -> Result<()> {
        let word = match self.daemon {
            Daemon::Keepalived => "Startup complete",
            Daemon::Vrrpd => "vrrpd running",
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.log().contains(word) {
                return Ok(());
            }
            if self.died() {
                bail!(
                    "node{} ({}) exited at start; its log:\n{}",
                    self.number,
                    self.daemon.short(),
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "node{} ({}) did not log {word:?} within 20 s; its log:\n{}",
                    self.number,
                    self.daemon.short(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, and wait for the process (10 s at most, then SIGKILL).
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                bail!(
                    "node{} ({}) did not stop on SIGTERM",
                    self.number,
                    self.daemon.short()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the daemon exited by itself.
    pub fn died(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Sets every tracked script and file of this node to pass or fail (a
    /// failing file holds its `fails` value, else 1).
    pub fn set_checks(
        &self,
        scripts: &[String],
        files: &[String],
        fails: &BTreeMap<String, String>,
        pass: bool,
    ) -> Result<()> {
        for s in scripts {
            let flag = self.dir.join(format!("script-{s}"));
            if pass {
                std::fs::write(&flag, "")?;
            } else if flag.exists() {
                std::fs::remove_file(&flag)?;
            }
        }
        // A missing tracked file reads as 0 (keepalived): passing is no
        // file at all.
        for f in files {
            let path = self.dir.join(format!("file-{f}"));
            if pass {
                if path.exists() {
                    std::fs::remove_file(&path)?;
                }
            } else {
                let value = fails.get(f).map_or("1", String::as_str);
                std::fs::write(&path, format!("{value}\n"))?;
            }
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && let Ok(pid) = i32::try_from(child.id())
        {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
        }
    }
}
