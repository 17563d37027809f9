//! Tracked file (keepalived's `track_file` / `vrrp_track_file`): the number
//! written in a file, read the way keepalived 2.2.7 reads it.
//!
//! keepalived (`trackers/track_file.c`) opens the file with `O_NONBLOCK`,
//! reads at most 127 bytes and parses them with `strtol(.., 0)`: leading
//! blanks, a sign, decimal, `0x` hex or `0` octal, stopping at the first
//! other character. A missing, unreadable or empty file, or text with no
//! number, reads as 0. A number out of range (beyond `i32`, except
//! `i32::MAX + 1`) is logged and ignored: the previous value stays. It
//! re-reads on inotify events of the file's directory (close after write,
//! delete, move); a deleted or moved-away file reads as 0.
//!
//! This probe does the same, with two safety rules keepalived lacks: only a
//! regular file is read (a FIFO, a device or a symlink to `/dev/zero` reads
//! as 0 without blocking), and the read runs on tokio's blocking pool so a
//! slow filesystem never stalls the runner. The [`Runner`](crate::Runner)
//! watches the directory with inotify and re-reads at once on a change; the
//! check's `delay_loop` is only a safety net (a directory created later, an
//! inotify queue overflow).
//!
//! The check is always up: it reports the number as
//! [`ProbeSuccess::value`](crate::ProbeSuccess::value), and each tracker
//! applies its own weight with [`FileCheck::weighted`], as keepalived does.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::error::DownReason;
use crate::schedule::{ProbeResult, ProbeSuccess};

/// Bytes read from the file, as keepalived (a 128-byte buffer with its NUL).
pub(crate) const MAX_READ: u64 = 127;

/// Reads the number in a file (keepalived `track_file`), see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileCheck {
    /// The file. Its directory is watched, so the file itself may come and
    /// go.
    pub path: PathBuf,
}

/// What a tracked value means to one tracker, see [`FileCheck::weighted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Weighted {
    /// The tracker is in fault (a VRRP instance goes to FAULT, a real server
    /// goes down).
    Fault,
    /// Add this to the tracker's priority or weight.
    Offset(i64),
}

impl FileCheck {
    /// A check of the number in `path`.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// keepalived's rule for a tracker with `weight` (`track_file NAME
    /// weight W [reverse]`, W in -254..=254):
    /// - weight 0: any non-zero value is a fault, 0 is fine; with `reverse`,
    ///   0 is the fault and any other value is fine;
    /// - otherwise the offset is `value × weight`, negated with `reverse`.
    ///
    /// The tracker then clamps the offset to its own range: for a VRRP
    /// instance keepalived clamps to -254..=253 and treats -254 as a fault;
    /// for an IPVS real server an offset at or below `i32::MIN` is a fault.
    #[must_use]
    pub fn weighted(value: i64, weight: i32, reverse: bool) -> Weighted {
        if weight == 0 {
            return if (value != 0) != reverse {
                Weighted::Fault
            } else {
                Weighted::Offset(0)
            };
        }
        let signed = if reverse {
            -i64::from(weight)
        } else {
            i64::from(weight)
        };
        Weighted::Offset(value.saturating_mul(signed))
    }
}

/// Parses what keepalived's `strtol(buf, NULL, 0)` would, and applies its
/// range rule: `Some(value)`, or `None` for a number to ignore.
#[must_use]
pub fn parse_value(bytes: &[u8]) -> Option<i64> {
    let text = bytes.split(|b| *b == 0).next().unwrap_or_default();
    let mut rest = text
        .iter()
        .skip_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .copied()
        .peekable();
    let negative = match rest.peek() {
        Some(b'-') => {
            rest.next();
            true
        }
        Some(b'+') => {
            rest.next();
            false
        }
        _ => false,
    };
    let digits: Vec<u8> = rest.collect();
    let (radix, body): (u32, &[u8]) = match digits.as_slice() {
        [b'0', b'x' | b'X', next, ..] if next.is_ascii_hexdigit() => {
            (16, digits.get(2..).unwrap_or_default())
        }
        [b'0', ..] => (8, digits.as_slice()),
        _ => (10, digits.as_slice()),
    };
    let mut magnitude: u64 = 0;
    for b in body {
        let Some(d) = char::from(*b).to_digit(radix) else {
            break;
        };
        // strtol reports ERANGE for anything beyond a long: ignored then.
        magnitude = magnitude
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(d))?;
        if magnitude > i64::MAX as u64 + 1 {
            return None;
        }
    }
    let value = if negative {
        0_i64.checked_sub_unsigned(magnitude)?
    } else {
        i64::try_from(magnitude).ok()?
    };
    // keepalived's own bound: an int, or exactly INT_MAX + 1.
    (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1)
        .contains(&value)
        .then_some(value)
}

/// What one read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A number (0 for a missing, empty or non-regular file).
    Value(i64),
    /// A number out of range: keep the previous value.
    Ignored,
}

/// Reads `path` without blocking on FIFOs or devices and without reading
/// more than [`MAX_READ`] bytes.
pub(crate) fn read_value(path: &Path) -> Reading {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path);
    let Ok(file) = file else {
        return Reading::Value(0); // missing or unreadable, as keepalived
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => {}
        _ => {
            tracing::warn!(path = %path.display(), "tracked file is not a regular file; reading it as 0");
            return Reading::Value(0);
        }
    }
    let mut buf = Vec::with_capacity(MAX_READ as usize);
    if file.take(MAX_READ).read_to_end(&mut buf).is_err() || buf.is_empty() {
        return Reading::Value(0);
    }
    match parse_value(&buf) {
        Some(value) => Reading::Value(value),
        None => {
            tracing::info!(path = %path.display(), "invalid number in tracked file; ignoring it");
            Reading::Ignored
        }
    }
}

/// A [`FileCheck`] with the state its attempts share.
#[derive(Debug)]
pub(crate) struct PreparedFile {
    path: PathBuf,
    /// Last value read, kept when a read is ignored.
    last: AtomicI64,
    /// A read is still running on the blocking pool (a hung filesystem):
    /// do not pile up more.
    busy: Arc<AtomicBool>,
}

impl PreparedFile {
    pub(crate) fn new(check: &FileCheck) -> Self {
        Self {
            path: check.path.clone(),
            last: AtomicI64::new(0),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn probe(&self) -> ProbeResult {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(DownReason::Io {
                op: "read",
                kind: std::io::ErrorKind::WouldBlock,
                message: format!("previous read of {} has not returned", self.path.display()),
            });
        }
        let path = self.path.clone();
        let busy = Arc::clone(&self.busy);
        let read = tokio::task::spawn_blocking(move || {
            let reading = read_value(&path);
            busy.store(false, Ordering::Release);
            reading
        })
        .await;
        let reading = read.map_err(|e| DownReason::Internal(e.to_string()))?;
        let value = match reading {
            Reading::Value(value) => {
                self.last.store(value, Ordering::Relaxed);
                value
            }
            Reading::Ignored => self.last.load(Ordering::Relaxed),
        };
        Ok(ProbeSuccess::with_value(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_strtol_base_0() {
        for (text, want) in [
            ("0", Some(0)),
            ("42\n", Some(42)),
            ("  -17 trailing", Some(-17)),
            ("+5", Some(5)),
            ("0x1f", Some(31)),
            ("0X1F", Some(31)),
            ("010", Some(8)),
            ("08", Some(0)),
            ("0x", Some(0)),
            ("0xg", Some(0)),
            ("", Some(0)),
            ("abc", Some(0)),
            ("-", Some(0)),
            ("2147483647", Some(2_147_483_647)),
            ("2147483648", Some(2_147_483_648)),
            ("2147483649", None),
            ("-2147483648", Some(-2_147_483_648)),
            ("-2147483649", None),
            ("99999999999999999999999", None),
            ("7\u{0}9", Some(7)),
        ] {
            assert_eq!(parse_value(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn weights_follow_keepalived() {
        assert_eq!(FileCheck::weighted(0, 0, false), Weighted::Offset(0));
        assert_eq!(FileCheck::weighted(3, 0, false), Weighted::Fault);
        assert_eq!(FileCheck::weighted(0, 0, true), Weighted::Fault);
        assert_eq!(FileCheck::weighted(3, 0, true), Weighted::Offset(0));
        assert_eq!(FileCheck::weighted(3, 10, false), Weighted::Offset(30));
        assert_eq!(FileCheck::weighted(3, 10, true), Weighted::Offset(-30));
        assert_eq!(FileCheck::weighted(-2, -5, false), Weighted::Offset(10));
    }
}
