//! keepalived's `vrrp_track_process` in the real daemon: two vrrpd nodes in
//! namespaces, converted from a keepalived.conf by `import-keepalived`.
//! Node A tracks a process it needs two of (quorum 2, weight -60): with
//! both running it is master; killing one of them drops its priority
//! below B's and B takes the address; starting another one gives A its
//! priority back and, preempting, the address. A second tracker with
//! weight 0 and `quorum_max 0` puts A in Fault while a forbidden process
//! runs.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::{Daemon, has_address, serial, test_dir};
use vrrp_net::testnet::Lan;

const T: Duration = Duration::from_secs(15);

/// A copy of `sleep` under a name no other process on the machine has.
struct Program {
    path: PathBuf,
    name: String,
}

impl Program {
    fn new(dir: &std::path::Path, tag: &str) -> Result<Program> {
        let name = format!("vt{tag}{}", std::process::id() % 100_000);
        let path = dir.join(&name);
        std::fs::copy("/bin/sleep", &path)?;
        Ok(Program { path, name })
    }

    fn start(&self) -> Result<Child> {
        Ok(Command::new(&self.path).arg("600").spawn()?)
    }
}

struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn conf(node: &str, prio: u8, tracked: &[(&str, &str)]) -> String {
    let mut text = format!("global_defs {{\n  router_id {node}\n}}\n");
    for (kind, name) in tracked {
        text.push_str(&match *kind {
            "needed" => format!(
                "vrrp_track_process needed {{\n  process {name}\n  quorum 2\n  weight -60\n}}\n"
            ),
            _ => format!(
                "vrrp_track_process forbidden {{\n  process {name}\n  quorum_max 0\n  weight 0\n}}\n"
            ),
        });
    }
    text.push_str(&format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  priority {prio}\n  \
         version 3\n  advert_int 0.1\n  virtual_ipaddress {{\n    192.0.2.61/24\n  }}\n"
    ));
    if !tracked.is_empty() {
        text.push_str("  track_process {\n");
        for (kind, _) in tracked {
            text.push_str(&format!("    {kind}\n"));
        }
        text.push_str("  }\n");
    }
    text.push_str("}\n");
    text
}

fn import(dir: &std::path::Path, name: &str, text: &str) -> Result<String> {
    let file = dir.join(format!("{name}.conf"));
    std::fs::write(&file, text)?;
    let out = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .arg("import-keepalived")
        .arg(&file)
        .output()?;
    ensure!(
        out.status.success() && out.stderr.is_empty(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn tracked_processes_move_the_address() -> Result<()> {
    let _serial = serial();
    let lan = Lan::new(2)?;
    let (ra, rb) = (lan.router(1)?, lan.router(2)?);
    let dir = test_dir("track-process")?;
    let needed = Program::new(&dir, "n")?;
    let forbidden = Program::new(&dir, "f")?;
    let mut running = Running(vec![needed.start()?, needed.start()?]);
    let a_toml = import(
        &dir,
        "a",
        &conf(
            "a",
            150,
            &[("needed", &needed.name), ("forbidden", &forbidden.name)],
        ),
    )?;
    let b_toml = import(&dir, "b", &conf("b", 120, &[]))?;
    let mut a = Daemon::start(ra, &dir, "a", &a_toml)?;
    let mut b = Daemon::start(rb, &dir, "b", &b_toml)?;
    a.wait_state("VI_1", "master", T)?;
    b.wait_state("VI_1", "backup", T)?;

    // One of the two needed processes dies: A is 90, below B's 120.
    let killed_at = Instant::now();
    let mut one = running.0.remove(0);
    let _ = one.kill();
    let _ = one.wait();
    let took_over = b.wait_state("VI_1", "master", T)?;
    a.wait_state("VI_1", "backup", T)?;
    println!(
        "B master {:?} after the kill",
        took_over.saturating_duration_since(killed_at)
    );
    std::thread::sleep(Duration::from_millis(300));
    ensure!(has_address(rb, "192.0.2.61")? && !has_address(ra, "192.0.2.61")?);

    // A second one: A is 150 again and preempts.
    running.0.push(needed.start()?);
    a.wait_state("VI_1", "master", T)?;
    b.wait_state("VI_1", "backup", T)?;

    // A forbidden process (quorum_max 0, weight 0): A in Fault.
    running.0.push(forbidden.start()?);
    a.wait_state("VI_1", "fault", T)?;
    b.wait_state("VI_1", "master", T)?;
    let mut f = running
        .0
        .pop()
        .ok_or_else(|| anyhow::anyhow!("forbidden"))?;
    let _ = f.kill();
    let _ = f.wait();
    a.wait_state("VI_1", "master", T)?;
    // How A watched: the process connector, or (where this namespace has
    // none and the initial one cannot be entered) /proc every 100 ms.
    let log = a.log_text();
    let how = log
        .lines()
        .find(|l| {
            l.contains("tracked processes are polled") || l.contains("tracked processes watched")
        })
        .unwrap_or_default()
        .to_owned();
    ensure!(!how.is_empty(), "no watch mode logged:\n{log}");
    println!("{how}");
    a.stop()?;
    b.stop()?;
    Ok(())
}
