//! The only places in this crate that need `unsafe`.
//!
//! * tokio 1.53.3 deprecated the safe `AsyncFd::new` because it could not
//!   prove that the descriptor stays open; its replacement
//!   `AsyncFd::register` is `unsafe` and asks the caller for that proof.
//!   We only ever register a `socket2::Socket`, which owns its descriptor
//!   and closes it only when dropped, i.e. after the `AsyncFd` that owns it.
//! * nix has no safe constructor for an `AF_PACKET` link-layer address
//!   (`sockaddr_ll`), and neither does socket2; sending a frame out of one
//!   interface needs one.
//!
//! The same registration serves the driver's `timerfd`, which owns its
//! descriptor in the same way.
//! * `SO_NETNS_COOKIE` has no wrapper in nix or socket2: a plain
//!   `getsockopt` into a `u64`.
//! * neli's netlink socket lends only its raw descriptor; setting its
//!   receive buffer borrows it for one call.
//!
//! Both wrappers are safe to call and keep the `unsafe` blocks small.
#![allow(unsafe_code)]

use std::io;

use nix::sys::socket::{LinkAddr, SockaddrLike};
use tokio::io::unix::AsyncFd;

/// Registers `socket` with the tokio reactor of the current runtime.
///
/// Returns an error instead of panicking when called outside a runtime.
/// tokio itself still panics if the runtime was built without
/// `enable_io`: a programming error, not something input can cause.
pub(crate) fn register(socket: socket2::Socket) -> io::Result<AsyncFd<socket2::Socket>> {
    register_owned(socket)
}

/// A nix `TimerFd` (which owns its descriptor) seen as a raw descriptor,
/// which is what tokio's `AsyncFd` asks for.
#[derive(Debug)]
pub(crate) struct OwnedTimer(pub(crate) nix::sys::timerfd::TimerFd);

impl std::os::fd::AsRawFd for OwnedTimer {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// Registers a timer descriptor with the tokio reactor; see [`register`].
pub(crate) fn register_timer(timer: nix::sys::timerfd::TimerFd) -> io::Result<AsyncFd<OwnedTimer>> {
    register_owned(OwnedTimer(timer))
}

/// Both callers pass a type that owns its descriptor and closes it only
/// in its own Drop: `socket2::Socket` and `nix::sys::timerfd::TimerFd`.
fn register_owned<T: std::os::fd::AsRawFd>(socket: T) -> io::Result<AsyncFd<T>> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(
            "no tokio runtime: sockets must be opened inside a tokio runtime with I/O enabled",
        ));
    }
    // SAFETY: `T` (a `socket2::Socket` or a nix `TimerFd`, see the two
    // callers) owns its file descriptor: it is open now (it was just
    // created) and is closed only by `T`'s Drop, which runs when the
    // `AsyncFd` is dropped or `into_inner` hands it back. `as_raw_fd`
    // always returns that same descriptor.
    let registered = unsafe { AsyncFd::register(socket) };
    registered.map_err(|err| {
        let (_socket, cause) = err.into_parts();
        cause
    })
}

/// Builds an `AF_PACKET` link-layer address for sending a frame out of
/// `ifindex` towards `dst_mac`, with the given ethertype (host order).
pub(crate) fn link_addr(ifindex: u32, ethertype: u16, dst_mac: [u8; 6]) -> io::Result<LinkAddr> {
    let ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    let mut addr = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ethertype.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0; 8],
    };
    addr.sll_addr[..6].copy_from_slice(&dst_mac);
    let len = u32::try_from(std::mem::size_of::<libc::sockaddr_ll>())
        .map_err(|_| io::Error::other("sockaddr_ll size"))?;
    // SAFETY: `addr` is a fully initialised `sockaddr_ll` living on the stack
    // for the duration of the call, `len` is exactly its size, and
    // `LinkAddr::from_raw` copies the bytes and checks the family.
    let link = unsafe {
        LinkAddr::from_raw(
            std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
            Some(len),
        )
    };
    link.ok_or_else(|| io::Error::other("kernel sockaddr_ll rejected by nix"))
}

/// The network namespace's cookie (`SO_NETNS_COOKIE`, Linux 5.14): a
/// number the kernel never gives another namespace while it runs, unlike
/// the namespace's inode, which a new namespace may reuse.
pub(crate) fn netns_cookie() -> io::Result<u64> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)?;
    let mut cookie: u64 = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<u64>())
        .map_err(|_| io::Error::other("socklen"))?;
    use std::os::fd::AsRawFd as _;
    // SAFETY: `cookie` is a live, writable u64 for the duration of the
    // call and `len` holds its exact size; the kernel writes at most `len`
    // bytes and updates `len`. The descriptor is owned by `socket`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            std::ptr::from_mut(&mut cookie).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(cookie)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a socket's receive buffer (`SO_RCVBUFFORCE`, else `SO_RCVBUF`) on
/// a socket that only lends its raw descriptor (neli's netlink socket).
pub(crate) fn set_recv_buffer(owner: &impl std::os::fd::AsRawFd, bytes: usize) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    // SAFETY: the descriptor belongs to `owner`, which is borrowed for the
    // whole of this function, so it stays open while `fd` is used.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(owner.as_raw_fd()) };
    setsockopt(&fd, sockopt::RcvBufForce, &bytes)
        .or_else(|_| setsockopt(&fd, sockopt::RcvBuf, &bytes))
        .map_err(io::Error::from)
}

/// `NETLINK_GET_STRICT_CHK` (linux/netlink.h): the kernel then honours the
/// filters of dump requests.
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;

/// Asks the kernel to honour the filters of dump requests on a netlink
/// socket (Linux 4.20 and later): a route dump naming a table returns that
/// table only, not every route of the host.
pub(crate) fn set_strict_dumps(owner: &impl std::os::fd::AsRawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the descriptor belongs to `owner`, borrowed for the whole
    // call; the option value points to a live `c_int` of the given size.
    let r = unsafe {
        libc::setsockopt(
            owner.as_raw_fd(),
            libc::SOL_NETLINK,
            NETLINK_GET_STRICT_CHK,
            std::ptr::from_ref(&one).cast(),
            len,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
