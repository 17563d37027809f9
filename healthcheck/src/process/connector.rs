//! The kernel's process connector (`drivers/connector/cn_proc.c`): a
//! netlink socket subscribed to process events. Messages are one netlink
//! header, one `cn_msg` and one `proc_event` each (the kernel never chains
//! them), parsed here from bytes in the host's byte order.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{MsgFlags, NetlinkAddr};
use tokio::io::unix::AsyncFd;

use super::tracker::ProcessEvent;

/// `NETLINK_CONNECTOR`.
const NETLINK_CONNECTOR: i32 = 11;
/// `CN_IDX_PROC` / `CN_VAL_PROC`.
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
/// `PROC_CN_MCAST_LISTEN`.
const PROC_CN_MCAST_LISTEN: u32 = 1;
/// `NLMSG_NOOP`, `NLMSG_ERROR`, `NLMSG_DONE`.
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `enum proc_cn_event` values.
const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 0x1;
const PROC_EVENT_EXEC: u32 = 0x2;
const PROC_EVENT_COMM: u32 = 0x200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
/// Offsets: `nlmsghdr` (16 bytes), `cn_msg` (20), then `proc_event`:
/// `what`, `cpu`, `timestamp_ns`, `event_data`.
const CN_MSG: usize = 16;
const WHAT: usize = CN_MSG + 20;
const DATA: usize = WHAT + 16;
/// Receive buffer asked for at first (keepalived's default is the
/// system's; bursts of forks overrun it).
const RCVBUF: usize = 1 << 20;

/// An event as the kernel reports it; an exec needs `/proc` read next.
#[derive(Debug)]
pub(super) enum Raw {
    Event(ProcessEvent),
    Exec(u32),
}

/// Why a receive failed.
#[derive(Debug)]
pub(super) enum RecvError {
    /// The kernel dropped events (`ENOBUFS`).
    Overrun,
    /// Anything else.
    Io(io::Error),
}

/// A subscribed socket.
#[derive(Debug)]
pub(super) struct Socket {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// One message from the kernel; `None` for anything but a process's
/// fork, exec, name change or exit (threads are not processes).
pub(super) fn parse(msg: &[u8]) -> Option<Raw> {
    let kind = u16_at(msg, 4)?;
    if kind == NLMSG_NOOP || kind == NLMSG_ERROR {
        return None;
    }
    if u32_at(msg, CN_MSG)? != CN_IDX_PROC || u32_at(msg, CN_MSG + 4)? != CN_VAL_PROC {
        return None;
    }
    let what = u32_at(msg, WHAT)?;
    let pid = u32_at(msg, DATA)?;
    let tgid = u32_at(msg, DATA + 4)?;
    match what {
        PROC_EVENT_FORK => {
            let child_pid = u32_at(msg, DATA + 8)?;
            let child_tgid = u32_at(msg, DATA + 12)?;
            (child_pid == child_tgid).then_some(Raw::Event(ProcessEvent::Fork {
                parent: tgid,
                child: child_tgid,
            }))
        }
        PROC_EVENT_EXEC => (pid == tgid).then_some(Raw::Exec(tgid)),
        PROC_EVENT_COMM => {
            let raw = msg.get(DATA + 8..DATA + 24)?;
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            let comm = String::from_utf8_lossy(&raw[..end]).into_owned();
            (pid == tgid).then_some(Raw::Event(ProcessEvent::Comm { pid: tgid, comm }))
        }
        PROC_EVENT_EXIT => (pid == tgid).then_some(Raw::Event(ProcessEvent::Exit(tgid))),
        _ => None,
    }
}

/// The subscription request: `PROC_CN_MCAST_LISTEN`.
fn listen_message() -> Vec<u8> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    m.extend_from_slice(&NLMSG_DONE.to_ne_bytes()); // nlmsg_type
    m.extend_from_slice(&0u16.to_ne_bytes()); // nlmsg_flags
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // ack
    m.extend_from_slice(&4u16.to_ne_bytes()); // len
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    m
}

/// A socket of this thread's network namespace, subscribed, once the
/// kernel acknowledged the subscription.
fn subscribe() -> io::Result<OwnedFd> {
    let socket = socket2::Socket::new(
        socket2::Domain::from(nix::libc::AF_NETLINK),
        socket2::Type::DGRAM.nonblocking().cloexec(),
        Some(socket2::Protocol::from(NETLINK_CONNECTOR)),
    )?;
    let _ = socket.set_recv_buffer_size(RCVBUF);
    let fd: OwnedFd = socket.into();
    nix::sys::socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, CN_IDX_PROC))?;
    nix::sys::socket::send(fd.as_raw_fd(), &listen_message(), MsgFlags::empty())?;
    // The kernel answers a subscription with PROC_EVENT_NONE; without
    // CONFIG_PROC_EVENTS nothing comes (keepalived: "the kernel does not
    // support proc events").
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms))? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel does not answer process event subscriptions",
            ));
        }
        let (n, from) = nix::sys::socket::recvfrom::<NetlinkAddr>(fd.as_raw_fd(), &mut buf)?;
        if from.is_some_and(|a| a.pid() == 0) && u32_at(&buf[..n], WHAT) == Some(PROC_EVENT_NONE) {
            return Ok(fd);
        }
    }
}

/// Whether this thread's network namespace is not `initial`.
fn in_other_namespace(initial: &std::path::Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let a = std::fs::metadata("/proc/thread-self/ns/net")?;
    let b = std::fs::metadata(initial)?;
    Ok(a.ino() != b.ino() || a.dev() != b.dev())
}

/// A subscribed socket: of this network namespace, or (where the
/// connector exists only in the initial one) opened there by a thread
/// that enters it; `true` in the second case.
pub(super) fn open(initial: &std::path::Path) -> io::Result<(Socket, bool)> {
    let (fd, from_initial) = match subscribe() {
        Ok(fd) => (fd, false),
        Err(e) => {
            match in_other_namespace(initial) {
                Ok(true) => {}
                Ok(false) => return Err(e),
                Err(e2) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{e}; {} unreadable: {e2}", initial.display()),
                    ));
                }
            }
            let path = initial.to_path_buf();
            let fd = std::thread::spawn(move || -> io::Result<OwnedFd> {
                let ns = std::fs::File::open(&path)?;
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                subscribe()
            })
            .join()
            .map_err(|_| io::Error::other("namespace thread panicked"))?
            .map_err(|e2| {
                io::Error::new(e2.kind(), format!("{e}; from the initial namespace: {e2}"))
            })?;
            (fd, true)
        }
    };
    Ok((
        Socket {
            fd: crate::sys::register_socket(fd)?,
            buf: vec![0; 4096],
        },
        from_initial,
    ))
}

impl Socket {
    /// Waits for events and returns all that are queued.
    pub(super) async fn next_batch(&mut self) -> Result<Vec<Raw>, RecvError> {
        loop {
            let mut guard = self.fd.readable().await.map_err(RecvError::Io)?;
            let mut out = Vec::new();
            loop {
                match nix::sys::socket::recvfrom::<NetlinkAddr>(
                    self.fd.get_ref().as_raw_fd(),
                    &mut self.buf,
                ) {
                    Ok((n, from)) => {
                        // Only the kernel speaks here.
                        if from.is_some_and(|a| a.pid() == 0)
                            && let Some(raw) = parse(&self.buf[..n])
                        {
                            out.push(raw);
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(nix::errno::Errno::ENOBUFS) => return Err(RecvError::Overrun),
                    Err(e) => return Err(RecvError::Io(e.into())),
                }
            }
            guard.clear_ready();
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Doubles the receive buffer after an overrun, as keepalived does.
    pub(super) fn grow_buffer(&mut self) {
        let s = socket2::SockRef::from(self.fd.get_ref());
        if let Ok(size) = s.recv_buffer_size() {
            let _ = s.set_recv_buffer_size(size.saturating_mul(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel message: header, cn_msg, proc_event with `data`.
    fn message(what: u32, data: &[u32]) -> Vec<u8> {
        let mut m = vec![0u8; DATA];
        m[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        m[CN_MSG..CN_MSG + 4].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
        m[CN_MSG + 4..CN_MSG + 8].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
        m[WHAT..WHAT + 4].copy_from_slice(&what.to_ne_bytes());
        for d in data {
            m.extend_from_slice(&d.to_ne_bytes());
        }
        m
    }

    #[test]
    fn events_parse_and_threads_are_ignored() {
        let fork = parse(&message(PROC_EVENT_FORK, &[10, 10, 11, 11]));
        assert!(matches!(
            fork,
            Some(Raw::Event(ProcessEvent::Fork {
                parent: 10,
                child: 11
            }))
        ));
        assert!(
            parse(&message(PROC_EVENT_FORK, &[10, 10, 12, 11])).is_none(),
            "a thread"
        );
        assert!(matches!(
            parse(&message(PROC_EVENT_EXEC, &[7, 7])),
            Some(Raw::Exec(7))
        ));
        assert!(matches!(
            parse(&message(PROC_EVENT_EXIT, &[7, 7, 0, 17])),
            Some(Raw::Event(ProcessEvent::Exit(7)))
        ));
        let mut comm = message(PROC_EVENT_COMM, &[5, 5]);
        comm.extend_from_slice(b"nginx\0\0\0\0\0\0\0\0\0\0\0");
        assert!(matches!(
            parse(&comm),
            Some(Raw::Event(ProcessEvent::Comm { pid: 5, ref comm })) if comm == "nginx"
        ));
        // Garbage: short, foreign, errors.
        assert!(parse(&[1, 2, 3]).is_none());
        assert!(parse(&message(PROC_EVENT_NONE, &[0, 0])).is_none());
        let mut other = message(PROC_EVENT_EXIT, &[7, 7]);
        other[CN_MSG] = 9;
        assert!(parse(&other).is_none());
        assert_eq!(listen_message().len(), 40);
    }
}
