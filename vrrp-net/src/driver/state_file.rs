//! The record of the addresses the driver added, kept in a small text
//! file so that the next run — after a crash, a SIGKILL, a power cut of
//! the process — knows which addresses are its leftovers and which are
//! someone else's.
//!
//! Why a file and not the kernel's address protocol field (`IFA_PROTO`,
//! Linux 5.18 and later): that field is one byte shared by every program
//! of the host, so two drivers (two daemons with disjoint instances) could
//! not tell each other's addresses apart, and older kernels drop it. A
//! file per driver, under `/run` (cleared at boot, like the addresses
//! themselves), works on every kernel and names its owner. A lock file
//! next to it (`PATH.lock`, `flock`) keeps two drivers from sharing one
//! record; the kernel releases it when a process dies, however it dies.
//!
//! Format: one address per line, `DEVICE ADDRESS/PREFIX`; `#` starts a
//! comment. Written whole to `PATH.tmp`, then renamed over `PATH`.

use std::fs::File;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::api::DriverError;
use super::core::OwnedAddress;

/// Where drivers keep their records by default.
pub(crate) const DEFAULT_DIR: &str = "/run/vrrp-net";

/// The locked record of one driver.
#[derive(Debug)]
pub(crate) struct StateFile {
    path: PathBuf,
    _lock: Flock<File>,
}

impl StateFile {
    /// Locks the record at `path` (or the default one for this network
    /// namespace) and reads it.
    pub(crate) fn open(path: Option<&Path>) -> Result<(Self, Vec<OwnedAddress>), DriverError> {
        let path = match path {
            Some(p) => p.to_owned(),
            None => default_path()?,
        };
        let err = |error: io::Error| DriverError::StateFile {
            path: path.clone(),
            error,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(err)?;
        let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(DriverError::StateFileLocked(path));
            }
            Err((_, e)) => return Err(err(e.into())),
        };
        let owned = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(err(e)),
        };
        Ok((StateFile { path, _lock: lock }, owned))
    }

    /// The record's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The last word of a graceful stop: the record as it is, or no file
    /// at all when the driver owns nothing (nothing for a later run to
    /// clean up, and no file left behind by a namespace that goes away).
    pub(crate) fn close(self, owned: &[OwnedAddress]) -> io::Result<()> {
        if owned.is_empty() {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let mut lock_path = self.path.clone().into_os_string();
            lock_path.push(".lock");
            // Removed while still locked, so no other driver can have
            // opened it in between and lost its lock with it.
            let _ = std::fs::remove_file(lock_path);
            Ok(())
        } else {
            write(&self.path, owned)
        }
    }
}

/// `/run/vrrp-net/owned.<cookie of this thread's network namespace>`
/// (or, on kernels before 5.14, `owned.ino-<its inode>`).
fn default_path() -> Result<PathBuf, DriverError> {
    if let Ok(cookie) = crate::sys::netns_cookie() {
        return Ok(Path::new(DEFAULT_DIR).join(format!("owned.{cookie}")));
    }
    let ns = "/proc/thread-self/ns/net";
    let ino = std::fs::metadata(ns)
        .map_err(|error| DriverError::StateFile {
            path: PathBuf::from(ns),
            error,
        })?
        .ino();
    Ok(Path::new(DEFAULT_DIR).join(format!("owned.ino-{ino}")))
}

/// Reads a record; lines that do not parse are skipped with a warning
/// (a damaged record must not stop the driver, and an address it does not
/// list is simply not removed).
pub(crate) fn parse(text: &str) -> Vec<OwnedAddress> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line.split_once(' ').and_then(|(device, addr)| {
            let (addr, prefix) = addr.trim().split_once('/')?;
            let addr: IpAddr = addr.parse().ok()?;
            let prefix_len: u8 = prefix.parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            (prefix_len <= max && !device.is_empty()).then(|| OwnedAddress {
                device: device.to_owned(),
                addr,
                prefix_len,
            })
        });
        match parsed {
            Some(a) => out.push(a),
            None => tracing::warn!(line, "ignoring a line of the state file"),
        }
    }
    out
}

/// The text of a record.
pub(crate) fn render(owned: &[OwnedAddress]) -> String {
    let mut text =
        String::from("# vrrp-net: addresses this driver added (device address/prefix)\n");
    for a in owned {
        text.push_str(&format!("{} {}/{}\n", a.device, a.addr, a.prefix_len));
    }
    text
}

/// Writes a record atomically (blocking: call it off the VRRP loop).
pub(crate) fn write(path: &Path, owned: &[OwnedAddress]) -> io::Result<()> {
    let mut tmp = path.to_owned().into_os_string();
    tmp.push(".tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(render(owned).as_bytes())?;
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Where the record of the virtual MAC interfaces a driver made is kept:
/// next to its record of addresses, `PATH.links`.
pub(crate) fn links_path(path: &Path) -> PathBuf {
    let mut p = path.to_owned().into_os_string();
    p.push(".links");
    PathBuf::from(p)
}

/// Reads the record of virtual MAC interfaces (one name a line; `#`
/// starts a comment); a missing or unreadable file is an empty record.
pub(crate) fn read_links(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty() && l.len() < libc::IFNAMSIZ && !l.contains(['/', ' ']))
        .map(str::to_owned)
        .collect()
}

/// Writes the record of virtual MAC interfaces atomically, or removes it
/// when there is none.
pub(crate) fn write_links(path: &Path, names: &[String]) -> io::Result<()> {
    if names.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut text = String::from("# vrrp-net: virtual MAC interfaces this driver made\n");
    for n in names {
        text.push_str(n);
        text.push('\n');
    }
    let mut tmp = path.to_owned().into_os_string();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_skipped() {
        let owned = vec![
            OwnedAddress {
                device: "eth0".into(),
                addr: "192.0.2.100".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                prefix_len: 24,
            },
            OwnedAddress {
                device: "vlan10".into(),
                addr: "2001:db8::1".parse().unwrap_or(IpAddr::from([0u8; 16])),
                prefix_len: 64,
            },
        ];
        assert_eq!(parse(&render(&owned)), owned);
        let text = "eth0 192.0.2.1/24\nnonsense\neth0 192.0.2.2/33\neth0 x/1\n  # c\n eth1 192.0.2.3/32 # note\n";
        let back = parse(text);
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].device, "eth1");
    }

    #[test]
    fn a_second_driver_cannot_take_the_same_record() {
        let dir = std::env::temp_dir().join(format!("vrrp-net-state-{}", std::process::id()));
        let path = dir.join("owned");
        let first = StateFile::open(Some(&path));
        assert!(first.is_ok(), "{first:?}");
        assert!(matches!(
            StateFile::open(Some(&path)),
            Err(DriverError::StateFileLocked(_))
        ));
        drop(first);
        assert!(StateFile::open(Some(&path)).is_ok(), "released on drop");
        let _ = std::fs::remove_dir_all(dir);
    }
}
