//! Programs as keepalived runs them: an argument vector executed directly
//! (no shell unless asked), optionally as another user, with extra
//! arguments appended (notify scripts get `INSTANCE name STATE priority`).

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use healthcheck::ScriptCheck;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A program to run: an argument vector, or a shell line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Command {
    /// Program and arguments; with `shell`, one element: the line.
    pub argv: Vec<String>,
    /// Run the line through `/bin/sh -c` (only when the configuration asks:
    /// keepalived executes scripts directly).
    pub shell: bool,
    /// Run as this user id (keepalived's `script_user`); `None` keeps ours.
    pub uid: Option<u32>,
    /// Run as this group id; `None` keeps ours.
    pub gid: Option<u32>,
}

impl Command {
    /// A program and its arguments, run directly as the caller's user.
    pub fn new(argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            shell: false,
            uid: None,
            gid: None,
        }
    }

    /// A line for `/bin/sh -c`; appended arguments are `$1`, `$2`...
    pub fn shell(line: impl Into<String>) -> Self {
        Command {
            argv: vec![line.into()],
            shell: true,
            uid: None,
            gid: None,
        }
    }

    /// The same command run as `uid` (and `gid`, when given).
    #[must_use]
    pub fn as_user(mut self, uid: u32, gid: Option<u32>) -> Self {
        self.uid = Some(uid);
        self.gid = gid;
        self
    }

    /// The program and the arguments it is started with, `extra`
    /// appended: for a shell line, `/bin/sh -c LINE vrrpd ARGS...` so the
    /// line sees them as `$1`...
    pub fn program_and_args(&self, extra: &[String]) -> (String, Vec<String>) {
        if self.shell {
            let line = self.argv.join(" ");
            let mut args = vec!["-c".to_owned(), line, "vrrpd".to_owned()];
            args.extend(extra.iter().cloned());
            ("/bin/sh".to_owned(), args)
        } else {
            let mut argv = self.argv.iter();
            let program = argv.next().cloned().unwrap_or_default();
            let args = argv.cloned().chain(extra.iter().cloned()).collect();
            (program, args)
        }
    }

    /// The health check that runs this command with `extra` appended
    /// (for a tracked script or a `MISC_CHECK`): up when it exits 0.
    pub fn script_check(&self, extra: &[String]) -> ScriptCheck {
        let (program, args) = self.program_and_args(extra);
        let mut check = ScriptCheck::new(program, args);
        check.uid = self.uid;
        check.gid = self.gid;
        check
    }

    /// Runs the command once with `extra` appended, as keepalived runs a
    /// notify script: in its own process group, standard input, output and
    /// error on `/dev/null`. It ends when the program exits (children it
    /// left in the background keep running, as under keepalived) or, after
    /// `timeout`, when its whole process group is killed.
    ///
    /// # Errors
    /// Why it did not exit 0 in time.
    pub async fn run(&self, extra: &[String], timeout: Duration) -> Result<(), RunError> {
        let (program, args) = self.program_and_args(extra);
        if program.is_empty() {
            return Err(RunError::Spawn("empty command".to_owned()));
        }
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            // The service manager's variables are the daemon's, not the
            // script's (a script must not ping the watchdog for us).
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .kill_on_drop(true);
        if let Some(uid) = self.uid {
            command.uid(uid);
        }
        if let Some(gid) = self.gid {
            command.gid(gid);
        }
        let mut child = command
            .spawn()
            .map_err(|e| RunError::Spawn(format!("{program}: {e}")))?;
        // Declared after `child`, so dropped first: if this future is
        // dropped (shutdown) or times out, the group dies while the leader
        // is not reaped yet, so its pid (the group's id) cannot have been
        // reused.
        let mut group = GroupKiller(
            child
                .id()
                .and_then(|pid| i32::try_from(pid).ok())
                .map(Pid::from_raw),
        );
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(result) => {
                group.disarm();
                let status = result.map_err(|e| RunError::Spawn(e.to_string()))?;
                match (status.code(), status.signal()) {
                    (Some(0), _) => Ok(()),
                    (Some(code), _) => Err(RunError::Exit(code)),
                    (None, signal) => Err(RunError::Signal(signal.unwrap_or(0))),
                }
            }
            Err(_) => {
                drop(group);
                let _ = child.wait().await;
                Err(RunError::Timeout(timeout))
            }
        }
    }
}

/// Kills a process group with SIGKILL when dropped, unless disarmed.
struct GroupKiller(Option<Pid>);

impl GroupKiller {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shell {
            write!(f, "sh -c {:?}", self.argv.join(" "))
        } else {
            f.write_str(&self.argv.join(" "))
        }
    }
}

/// Why a run of a [`Command`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The program could not be started.
    #[error("cannot start: {0}")]
    Spawn(String),
    /// It exited with a non-zero status.
    #[error("exit status {0}")]
    Exit(i32),
    /// A signal ended it.
    #[error("killed by signal {0}")]
    Signal(i32),
    /// It ran longer than allowed; its process group was killed.
    #[error("still running after {0:?}: killed with its process group")]
    Timeout(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_get_the_arguments_as_positional_parameters() {
        let c = Command::shell("echo \"$3\" >> /tmp/x");
        let (program, args) = c.program_and_args(&["INSTANCE".into(), "VI_1".into()]);
        assert_eq!(program, "/bin/sh");
        assert_eq!(
            args,
            ["-c", "echo \"$3\" >> /tmp/x", "vrrpd", "INSTANCE", "VI_1"]
        );
        let c = Command::new(["/usr/bin/notify", "--fast"]).as_user(1000, Some(100));
        let check = c.script_check(&["MASTER".into()]);
        assert_eq!(check.program.to_str(), Some("/usr/bin/notify"));
        assert_eq!(check.args, ["--fast", "MASTER"]);
        assert_eq!((check.uid, check.gid), (Some(1000), Some(100)));
    }

    #[tokio::test]
    async fn a_run_reports_exit_status_and_timeout_kills_the_group() {
        let ok = Command::new(["/bin/true"]);
        assert_eq!(ok.run(&[], Duration::from_secs(5)).await, Ok(()));
        let fail = Command::shell("exit 3");
        assert_eq!(
            fail.run(&[], Duration::from_secs(5)).await,
            Err(RunError::Exit(3))
        );
        let dir = std::env::temp_dir().join(format!("vk-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let marker = dir.join("grandchild");
        // A grandchild that would write after the timeout: killed with the
        // group, so the marker never appears.
        let hang = Command::shell(format!(
            "(sleep 0.5; touch {}) & sleep 10",
            marker.display()
        ));
        let started = std::time::Instant::now();
        assert_eq!(
            hang.run(&[], Duration::from_millis(100)).await,
            Err(RunError::Timeout(Duration::from_millis(100)))
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!marker.exists(), "the group was killed");
        // A background child of a script that exits normally survives, as
        // under keepalived.
        let bg = Command::shell(format!("(sleep 0.2; touch {}) &", marker.display()));
        assert_eq!(bg.run(&[], Duration::from_secs(5)).await, Ok(()));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !marker.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(marker.exists(), "background child kept running");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
