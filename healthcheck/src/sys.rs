//! The only place in this crate that needs `unsafe`.
//!
//! tokio 1.53.3 deprecated the safe `AsyncFd::new` because it could not
//! prove that the descriptor stays open; its replacement `AsyncFd::register`
//! is `unsafe` and asks the caller for that proof. Two descriptors are
//! registered: the inotify instance that watches tracked files, owned by
//! nix's `Inotify` and closed only by its Drop, and the process
//! connector's socket, an `OwnedFd`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::sys::inotify::{InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

/// A nix `Inotify` (which owns its descriptor) seen as a raw descriptor,
/// which is what tokio's `AsyncFd` asks for.
#[derive(Debug)]
pub(crate) struct OwnedInotify(pub(crate) Inotify);

impl AsRawFd for OwnedInotify {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A non-blocking inotify instance registered with the current runtime.
pub(crate) fn inotify() -> io::Result<AsyncFd<OwnedInotify>> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other("no tokio runtime"));
    }
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    // SAFETY: `OwnedInotify` owns the descriptor nix just opened (an
    // `OwnedFd` inside `Inotify`): it is open now and is closed only by
    // `Inotify`'s Drop, which runs when the `AsyncFd` is dropped or
    // `into_inner` hands it back. `as_raw_fd` always returns that same
    // descriptor.
    let registered = unsafe { AsyncFd::register(OwnedInotify(inotify)) };
    registered.map_err(|err| {
        let (_inotify, cause) = err.into_parts();
        cause
    })
}

/// A non-blocking socket (the process connector's) registered with the
/// current runtime.
pub(crate) fn register_socket(
    fd: std::os::fd::OwnedFd,
) -> io::Result<AsyncFd<std::os::fd::OwnedFd>> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other("no tokio runtime"));
    }
    // SAFETY: the `OwnedFd` is open (the caller just made it) and is closed
    // only by its own Drop, which runs when the `AsyncFd` is dropped or
    // `into_inner` hands it back; `as_raw_fd` returns that descriptor.
    let registered = unsafe { AsyncFd::register(fd) };
    registered.map_err(|err| {
        let (_fd, cause) = err.into_parts();
        cause
    })
}
