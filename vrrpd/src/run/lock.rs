//! One daemon per configuration: before it touches any address, socket or
//! IPVS entry, `vrrpd run` takes an exclusive `flock` on its pid file
//! (`/run/vrrpd/NAME.pid`, keepalived's `/run/keepalived.pid`) and writes
//! its pid there; a second copy finds the lock held and exits with
//! [`EXIT_RUNNING`]. The kernel drops the lock when the process dies,
//! however it dies, so a stale file never blocks a restart; a clean exit
//! removes the file.
//!
//! Several daemons with disjoint instances can run side by side under
//! different names (`--name`, like keepalived's `--instance`), or pid files
//! (`--pid-file`, keepalived's `-p`). Daemons in different network
//! namespaces never conflict: in a named namespace (`ip netns exec blue`)
//! the default name is `vrrpd@blue`, in another one distinct from PID 1's
//! `vrrpd@INODE`.
//!
//! The VRRP driver's record of the addresses it added (its state file)
//! sits next to the pid file (`NAME.addresses`), so it is exactly as
//! private as the lock.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Exit status of a second copy refused by the lock (1 is a failure, 2 a
/// configuration error).
pub const EXIT_RUNNING: u8 = 3;

/// Where pid files and address records go.
pub const RUN_DIR: &str = "/run/vrrpd";

/// The name of the default daemon in this network namespace: `vrrpd`, or
/// in a named namespace (`ip netns exec NAME ...`) `vrrpd@NAME`, or in
/// another namespace distinct from PID 1's `vrrpd@INODE`.
pub fn default_name() -> String {
    let Some(ours) = netns_inode(Path::new("/proc/self/ns/net")) else {
        return "vrrpd".to_owned();
    };
    for dir in ["/run/netns", "/var/run/netns"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            if netns_inode(&e.path()) == Some(ours)
                && let Some(name) = e.file_name().to_str()
            {
                return format!("vrrpd@{name}");
            }
        }
    }
    match netns_inode(Path::new("/proc/1/ns/net")) {
        Some(host) if host != ours => format!("vrrpd@{ours}"),
        _ => "vrrpd".to_owned(),
    }
}

fn netns_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// A daemon's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The pid file, locked while the daemon runs.
    pub pid_file: PathBuf,
    /// The VRRP driver's record of the addresses it added.
    pub state_file: PathBuf,
    /// The control socket (`NAME.sock`).
    pub socket: PathBuf,
}

impl Identity {
    /// The files of the daemon called `name` (default: [`default_name`]),
    /// or with the pid file `pid_file`.
    pub fn new(name: Option<&str>, pid_file: Option<&Path>) -> Self {
        let pid_file = match pid_file {
            Some(p) => p.to_owned(),
            None => {
                let name = name.map_or_else(default_name, str::to_owned);
                Path::new(RUN_DIR).join(format!("{name}.pid"))
            }
        };
        let sibling = |ext: &str| {
            if pid_file.extension().is_some_and(|e| e == "pid") {
                pid_file.with_extension(ext)
            } else {
                let mut s = pid_file.clone().into_os_string();
                s.push(".");
                s.push(ext);
                PathBuf::from(s)
            }
        };
        Identity {
            state_file: sibling("addresses"),
            socket: sibling("sock"),
            pid_file,
        }
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another daemon holds it.
    #[error(
        "another vrrpd{} is running with {path}: refusing to start a second copy (run daemons with disjoint instances under different --name or --pid-file)",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Held {
        /// The pid file.
        path: PathBuf,
        /// The pid written in it, if readable.
        pid: Option<u32>,
    },
    /// The file could not be created or locked.
    #[error("pid file {path}: {source}")]
    Io {
        /// The pid file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; the pid file is removed when it is dropped.
#[derive(Debug)]
pub struct PidLock {
    file: Flock<File>,
    path: PathBuf,
}

impl PidLock {
    /// Takes the lock on `path` (creating its directory) and writes our pid.
    ///
    /// # Errors
    /// [`LockError::Held`] when another process holds it.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        use std::os::unix::fs::MetadataExt as _;
        let io = |source: std::io::Error| LockError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // A holder that exits unlinks the file; whoever locked the old,
        // unlinked file in between must try again on the new one.
        for _ in 0..16 {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(path)
                .map_err(io)?;
            let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(f) => f,
                Err((mut f, nix::errno::Errno::EWOULDBLOCK)) => {
                    let mut text = String::new();
                    let _ = f.read_to_string(&mut text);
                    return Err(LockError::Held {
                        path: path.to_owned(),
                        pid: text.trim().parse().ok(),
                    });
                }
                Err((_, e)) => return Err(io(e.into())),
            };
            let same = match (std::fs::metadata(path), file.metadata()) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if !same {
                continue;
            }
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            writeln!(file, "{}", std::process::id()).map_err(io)?;
            file.flush().map_err(io)?;
            return Ok(PidLock {
                file,
                path: path.to_owned(),
            });
        }
        Err(io(std::io::Error::other(
            "the pid file keeps being replaced",
        )))
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        // Removed while still locked, as keepalived removes its pid file;
        // a starter that locked it meanwhile sees it gone and retries.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_s_pid() {
        let dir = std::env::temp_dir().join(format!("vrrpd-lock-{}", std::process::id()));
        let path = dir.join("sub").join("test.pid");
        let held = PidLock::acquire(&path).expect("first");
        assert_eq!(
            std::fs::read_to_string(&path).expect("pid"),
            format!("{}\n", std::process::id())
        );
        match PidLock::acquire(&path) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(held);
        assert!(!path.exists(), "removed at exit");
        assert!(PidLock::acquire(&path).is_ok(), "free again");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_follow_the_name_or_the_pid_file() {
        let i = Identity::new(Some("edge"), None);
        assert_eq!(i.pid_file, Path::new("/run/vrrpd/edge.pid"));
        assert_eq!(i.state_file, Path::new("/run/vrrpd/edge.addresses"));
        let i = Identity::new(None, Some(Path::new("/var/run/x.lock")));
        assert_eq!(i.state_file, Path::new("/var/run/x.lock.addresses"));
    }
}
