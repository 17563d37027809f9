//! The systemd watchdog with a real systemd: a user service manager
//! (`systemd --user`, systemd 252, in a private mount namespace and a
//! cgroup of its own) runs the real `vrrpd` binary in a network namespace
//! with the packaging unit's watchdog settings (`Type=notify`,
//! `WatchdogSec=`, `Restart=on-failure`). The VRRP loop's thread alone is
//! then stopped (ptrace interrupt of that one thread: the rest of the
//! process, the daemon loop that sends the pings included, keeps running).
//! The daemon must withhold its pings, systemd must kill and restart it,
//! and the new copy must take the VIP again.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{has_address, serial, test_dir};
use nix::sys::ptrace;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use vrrp_net::testnet::Lan;

const VIP: &str = "192.0.2.40";
const UNIT: &str = "vrrpd-watchdog-test.service";

/// The cgroup hierarchies a user manager needs a directory of its own in.
fn cgroup_roots() -> Vec<PathBuf> {
    [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| p.join("cgroup.procs").exists())
    .collect()
}

/// A `systemd --user` of our own; everything it started dies with it.
struct Manager {
    child: Child,
    runtime: PathBuf,
    cgroups: Vec<PathBuf>,
}

impl Manager {
    fn start(dir: &Path, unit: &str) -> Result<Manager> {
        let runtime = dir.join("xdg");
        let config = dir.join("config");
        std::fs::create_dir_all(config.join("systemd/user"))?;
        std::fs::create_dir_all(&runtime)?;
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        std::fs::write(config.join("systemd/user").join(UNIT), unit)?;
        let name = format!("vrrpd-watchdog-{}", std::process::id());
        // On the hybrid hierarchy every root gets the directory; on a pure
        // v2 host /sys/fs/cgroup is the only one.
        let roots = cgroup_roots();
        let roots: Vec<PathBuf> = if roots.len() > 1 {
            roots
                .into_iter()
                .filter(|r| r != Path::new("/sys/fs/cgroup"))
                .collect()
        } else {
            roots
        };
        let cgroups: Vec<PathBuf> = roots.iter().map(|r| r.join(&name)).collect();
        let mut script = String::from("set -e\n");
        for cg in &cgroups {
            script.push_str(&format!(
                "mkdir -p {0}; echo $$ > {0}/cgroup.procs\n",
                cg.display()
            ));
        }
        // A user manager refuses to run unless the system looks booted
        // with systemd; the marker exists only in this mount namespace.
        script.push_str(
            "mkdir -p /run/systemd; mount -t tmpfs tmpfs /run/systemd; mkdir /run/systemd/system\n",
        );
        script.push_str("exec /lib/systemd/systemd --user --log-target=console --log-level=info\n");
        let log = std::fs::File::create(dir.join("manager.log"))?;
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "bash", "-c", &script])
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_CONFIG_HOME", &config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("unshare")?;
        let mut m = Manager {
            child,
            runtime,
            cgroups,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !m.runtime.join("systemd/private").exists() {
            if let Some(status) = m.child.try_wait()? {
                bail!(
                    "systemd --user exited ({status}): {}",
                    std::fs::read_to_string(dir.join("manager.log")).unwrap_or_default()
                );
            }
            ensure!(Instant::now() < deadline, "systemd --user did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(m)
    }

    fn systemctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("nsenter")
            .args([
                "-m",
                "-t",
                &self.child.id().to_string(),
                "systemctl",
                "--user",
            ])
            .args(args)
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .stdin(Stdio::null())
            .output()?;
        ensure!(
            out.status.success(),
            "systemctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn property(&self, name: &str) -> Result<String> {
        self.systemctl(&["show", "-p", name, "--value", UNIT])
    }

    fn main_pid(&self) -> Result<i32> {
        Ok(self.property("MainPID")?.parse()?)
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.systemctl(&["stop", UNIT]);
        let _ = self.systemctl(&["exit"]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever is left in our cgroups was started by our manager.
        for cg in &self.cgroups {
            let dirs: Vec<PathBuf> = walk(cg);
            for d in &dirs {
                if let Ok(pids) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    for pid in pids.lines().filter_map(|p| p.parse::<i32>().ok()) {
                        let _ = nix::sys::signal::kill(
                            Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
            for d in dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// A cgroup directory and its descendants, parents first.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_owned()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// The thread of `pid` named `comm`.
fn thread(pid: i32, comm: &str) -> Result<i32> {
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if name.trim() == comm {
            return Ok(e.file_name().to_string_lossy().parse()?);
        }
    }
    bail!("no thread {comm} in {pid}")
}

fn wait_vip(lan: &Lan, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    while !has_address(lan.router(1)?, VIP)? {
        ensure!(started.elapsed() < timeout, "no VIP after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(started.elapsed())
}

#[test]
fn the_watchdog_restarts_a_daemon_whose_vrrp_loop_stopped() -> Result<()> {
    let _serial = serial();
    if !Path::new("/lib/systemd/systemd").exists() || cgroup_roots().is_empty() {
        eprintln!("no systemd binary or no cgroup hierarchy here: skipped");
        return Ok(());
    }
    let lan = Lan::new(1)?;
    let dir = test_dir("watchdog")?;
    let config = dir.join("vrrpd.toml");
    std::fs::write(
        &config,
        format!(
            "[global]\nvrrp_version = 3\n[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 40\n\
             priority = 200\nadvert_int = \"100ms\"\nvirtual_ipaddress = [\"{VIP}/24\"]\n"
        ),
    )?;
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("ip")?;
    let log = dir.join("vrrpd.log");
    // The packaging unit's supervision settings, with a shorter watchdog.
    let unit = format!(
        "[Service]\nType=notify\nNotifyAccess=main\n\
         ExecStart={ip} netns exec {ns} {bin} --log-format json run -c {config} --pid-file {pid}\n\
         WatchdogSec=4s\nRestart=on-failure\nRestartSec=1\nRestartPreventExitStatus=2 3\n\
         TimeoutStopSec=15\nLimitCORE=0\nStandardError=append:{log}\n",
        ns = lan.router(1)?.ns().name(),
        bin = env!("CARGO_BIN_EXE_vrrpd"),
        config = config.display(),
        pid = dir.join("vrrpd.pid").display(),
        log = log.display(),
    );
    let manager = Manager::start(&dir, &unit)?;
    manager.systemctl(&["start", UNIT])?;
    wait_vip(&lan, Duration::from_secs(15))?;
    let first = manager.main_pid()?;
    ensure!(first > 0, "a main pid");
    // Pings flow: after two watchdog periods it is still the same process.
    std::thread::sleep(Duration::from_secs(5));
    ensure!(manager.main_pid()? == first, "not restarted while healthy");
    ensure!(manager.property("NRestarts")? == "0");

    // Stop the VRRP loop's thread only.
    let loop_thread = Pid::from_raw(thread(first, "vrrp-driver")?);
    ptrace::seize(loop_thread, ptrace::Options::empty())?;
    ptrace::interrupt(loop_thread)?;
    let stopped_at = Instant::now();
    // Follow the stopped thread until the process is killed (the thread
    // must be reaped by us, its tracer, for the process to go).
    let mut died = None;
    while died.is_none() {
        ensure!(
            stopped_at.elapsed() < Duration::from_secs(20),
            "never killed"
        );
        match waitpid(
            loop_thread,
            Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG),
        ) {
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                died = Some((stopped_at.elapsed(), Some(signal)));
            }
            Ok(WaitStatus::Exited(..)) => died = Some((stopped_at.elapsed(), None)),
            Err(e) => bail!("waitpid on the stopped thread: {e}"),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let (died, signal) = died.unwrap_or_default();
    ensure!(
        signal == Some(nix::sys::signal::Signal::SIGABRT),
        "killed by systemd's watchdog signal (SIGABRT), not {signal:?}"
    );
    // systemd acts WatchdogSec (4 s) after the last ping, which came at
    // most one ping period (2 s) before the stop.
    ensure!(
        died >= Duration::from_secs(2) && died < Duration::from_secs(8),
        "killed {died:?} after the loop stopped"
    );
    // Restarted (RestartSec=1), and master again with the VIP.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pid = manager.main_pid()?;
        if pid > 0 && pid != first {
            break;
        }
        ensure!(Instant::now() < deadline, "not restarted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(15);
    // Both copies said they run, and both became master.
    while text().matches("\"vrrpd running\"").count() < 2
        || text().matches("\"to\":\"master\"").count() < 2
    {
        ensure!(
            Instant::now() < deadline,
            "the new copy never became master:\n{}",
            text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_vip(&lan, Duration::from_secs(5))?;
    let text = text();
    ensure!(manager.property("NRestarts")? == "1");
    ensure!(
        text.contains("watchdog ping withheld"),
        "the daemon loop went on and withheld its pings:\n{text}"
    );
    manager.systemctl(&["stop", UNIT])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while has_address(lan.router(1)?, VIP)? {
        ensure!(Instant::now() < deadline, "the VIP stays after a stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
