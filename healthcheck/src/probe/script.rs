//! Script check (keepalived `MISC_CHECK`, with `misc_dynamic`).
//!
//! The script runs in its own process group with stdin, stdout and stderr on
//! `/dev/null` (so a script flooding its output costs nothing). When the
//! attempt ends for any reason, timeout or shutdown included, the whole
//! group is killed, so that no grandchild survives the check.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::error::DownReason;
use crate::schedule::{ProbeResult, ProbeSuccess};

/// Runs a program; exit status 0 means up.
///
/// With `dynamic_weight` (keepalived `misc_dynamic`): 0 = up with the
/// configured weight (`weight: None`), 1 = down, 2..=255 = up with weight
/// `status - 2`. Without it any non-zero status is down.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScriptCheck {
    /// Program to execute (not through a shell).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Read a weight from the exit status.
    pub dynamic_weight: bool,
    /// Run as this user id (keepalived `user`); `None` keeps ours.
    pub uid: Option<u32>,
    /// Run as this group id; `None` keeps ours.
    pub gid: Option<u32>,
}

impl ScriptCheck {
    /// Runs `program` with `args`.
    #[must_use]
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            dynamic_weight: false,
            uid: None,
            gid: None,
        }
    }

    /// Runs `command` through `/bin/sh -c`.
    #[must_use]
    pub fn shell(command: impl Into<String>) -> Self {
        Self::new("/bin/sh", ["-c".to_owned(), command.into()])
    }
}

/// Kills a process group with SIGKILL when dropped.
struct GroupKiller(Option<Pid>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // ESRCH (group already empty) is the normal case after a clean
            // exit; nothing else can be done about other errors in a drop.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

pub(crate) async fn probe(check: &ScriptCheck) -> ProbeResult {
    let mut command = Command::new(&check.program);
    command
        .args(&check.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(uid) = check.uid {
        command.uid(uid);
    }
    if let Some(gid) = check.gid {
        command.gid(gid);
    }
    let mut child = command
        .spawn()
        .map_err(|e| DownReason::ScriptSpawn(e.to_string()))?;
    // The child leads its own group (process_group(0)), so its pid is the
    // group id. Declared after `child` so it drops first: on cancellation the
    // group dies before kill_on_drop reaps the leader (so the id cannot have
    // been reused); after a normal exit it removes leftover background
    // children of the script.
    let _killer = GroupKiller(
        child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw),
    );
    let status = child
        .wait()
        .await
        .map_err(|e| DownReason::ScriptSpawn(e.to_string()))?;
    interpret(status.code(), status.signal(), check.dynamic_weight)
}

fn interpret(code: Option<i32>, signal: Option<i32>, dynamic_weight: bool) -> ProbeResult {
    match (code, signal) {
        (Some(0), _) => Ok(ProbeSuccess::default()),
        (Some(code @ 2..=255), _) if dynamic_weight => Ok(match u32::try_from(code - 2) {
            Ok(weight) => ProbeSuccess::with_weight(weight),
            Err(_) => ProbeSuccess::up(),
        }),
        (Some(code), _) => Err(DownReason::ScriptExit(code)),
        (None, Some(signal)) => Err(DownReason::ScriptSignal(signal)),
        (None, None) => Err(DownReason::ScriptExit(-1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_misc_dynamic() {
        assert_eq!(interpret(Some(0), None, true), Ok(ProbeSuccess::up()));
        assert_eq!(
            interpret(Some(1), None, true),
            Err(DownReason::ScriptExit(1))
        );
        assert_eq!(
            interpret(Some(2), None, true),
            Ok(ProbeSuccess::with_weight(0))
        );
        assert_eq!(
            interpret(Some(255), None, true),
            Ok(ProbeSuccess::with_weight(253))
        );
        assert_eq!(
            interpret(Some(7), None, false),
            Err(DownReason::ScriptExit(7))
        );
        assert_eq!(
            interpret(None, Some(9), true),
            Err(DownReason::ScriptSignal(9))
        );
    }
}
