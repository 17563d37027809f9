//! What `/proc` says of processes: keepalived reads `stat` for the name
//! (skipping zombies) and `cmdline` for the command line.

use std::io::Read;

use super::tracker::ProcessInfo;

/// The longest command line read; longer ones are cut (no tracked
/// process's name and arguments come near it).
const MAX_CMDLINE: u64 = 64 * 1024;

/// The name in `/proc/PID/stat` (between the first `(` and the last `)`),
/// unless the process is a zombie.
fn comm_of_stat(stat: &str) -> Option<String> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let state = stat.get(close + 1..)?.trim_start().chars().next()?;
    (state != 'Z').then(|| comm.to_owned())
}

/// What `/proc/PID` says of one process (`None` when it is gone or a
/// zombie); its command line only with `cmdline`.
#[must_use]
pub fn read_process(pid: u32, cmdline: bool) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let comm = comm_of_stat(&stat)?;
    let mut line = Vec::new();
    if cmdline {
        std::fs::File::open(format!("/proc/{pid}/cmdline"))
            .ok()?
            .take(MAX_CMDLINE)
            .read_to_end(&mut line)
            .ok()?;
    }
    Some(ProcessInfo {
        pid,
        comm,
        cmdline: line,
    })
}

/// Every process running now (keepalived's `read_procs`).
///
/// # Errors
/// When `/proc` cannot be listed.
pub fn scan(cmdline: bool) -> std::io::Result<Vec<ProcessInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(p) = read_process(pid, cmdline) {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_with_parentheses_and_zombies() {
        assert_eq!(comm_of_stat("12 (nginx) S 1 2"), Some("nginx".to_owned()));
        assert_eq!(comm_of_stat("12 (a (b) c) R 1"), Some("a (b) c".to_owned()));
        assert_eq!(comm_of_stat("12 (gone) Z 1"), None);
        assert_eq!(comm_of_stat("garbage"), None);
        let me = read_process(std::process::id(), true).expect("this process");
        assert!(!me.cmdline.is_empty());
        assert!(
            scan(false)
                .expect("scan")
                .iter()
                .any(|p| p.pid == std::process::id())
        );
    }
}
