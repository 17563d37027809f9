//! The rtnetlink connection shared by [`crate::addr`] and [`crate::link`]:
//! neli's tokio socket for framing, sending and receiving, and a small
//! bounds-checked reader for the route attributes of received messages
//! (received messages are taken as raw buffers and branched on their type,
//! because neli ends a typed stream at the first message of another type).

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use neli::consts::nl::{NlType, NlmF, Nlmsg};
use neli::consts::socket::NlFamily;
use neli::nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder};
use neli::socket::asynchronous::NlSocketHandle;
use neli::types::Buffer;
use neli::utils::Groups;
use neli::{Size, ToBytes};

/// Errors of the rtnetlink operations in [`crate::addr`] and [`crate::link`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// Called outside a tokio runtime.
    #[error("no tokio runtime: netlink sockets must be opened inside a tokio runtime")]
    NoRuntime,
    /// Opening, sending on or receiving from the netlink socket failed.
    #[error("netlink {what}: {message}")]
    Socket {
        /// The operation that failed.
        what: &'static str,
        /// The error as reported by neli or the OS.
        message: String,
        /// The OS error number, when there is one.
        errno: Option<i32>,
    },
    /// The kernel refused a request.
    #[error("netlink {op}: {}", io::Error::from_raw_os_error(*.errno))]
    Kernel {
        /// The request refused.
        op: &'static str,
        /// Positive errno from the kernel's `NLMSG_ERROR`.
        errno: i32,
    },
    /// Multicast notifications were lost because the socket buffer
    /// overflowed (ENOBUFS): the caller should resynchronise its view.
    #[error("netlink notifications lost (receive buffer overrun)")]
    Overrun,
    /// A message from the kernel could not be decoded.
    #[error("malformed netlink message: {0}")]
    Malformed(String),
    /// An argument was invalid (e.g. a prefix length beyond the address
    /// size or a label on an IPv6 address).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl NetlinkError {
    pub(crate) fn socket(what: &'static str, err: &neli::err::SocketError) -> Self {
        let errno = match err {
            neli::err::SocketError::Io(io) => io.raw_os_error(),
            _ => None,
        };
        if errno == Some(libc::ENOBUFS) {
            return Self::Overrun;
        }
        Self::Socket {
            what,
            message: err.to_string(),
            errno,
        }
    }

    fn build(what: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Socket {
            what,
            message: err.to_string(),
            errno: None,
        }
    }
}

/// Receive buffer of a socket subscribed to notifications.
const EVENT_BUFFER_BYTES: usize = 4 << 20;

/// One rtnetlink message as received: its type and payload bytes.
#[derive(Debug, Clone)]
pub(crate) struct RawMessage {
    pub(crate) ty: u16,
    pub(crate) payload: Vec<u8>,
}

/// An `NETLINK_ROUTE` socket. Requests are serialised by a lock so that
/// replies are not interleaved.
pub(crate) struct RtSocket {
    socket: NlSocketHandle,
    seq: AtomicU32,
    request_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RtSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtSocket")
            .field("pid", &self.socket.pid())
            .finish_non_exhaustive()
    }
}

impl RtSocket {
    /// Opens a route socket in the calling thread's network namespace,
    /// subscribed to `groups` (RTNLGRP_* numbers).
    pub(crate) fn connect(groups: &[u32]) -> Result<Self, NetlinkError> {
        // neli registers the socket with tokio, which panics outside a
        // runtime: check first.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NetlinkError::NoRuntime);
        }
        let socket = NlSocketHandle::connect(NlFamily::Route, None, Groups::empty())
            .map_err(|e| NetlinkError::socket("connect", &e))?;
        if !groups.is_empty() {
            socket
                .add_mcast_membership(Groups::new_groups(groups))
                .map_err(|e| NetlinkError::socket("join groups", &e))?;
            // Room for a storm of notifications (keepalived's
            // netlink_rcv_bufs): an overrun costs a full re-read. Beyond
            // net.core.rmem_max only with CAP_NET_ADMIN; best effort.
            if let Err(e) = crate::sys::set_recv_buffer(&socket, EVENT_BUFFER_BYTES) {
                tracing::debug!(error = %e, "netlink receive buffer not enlarged");
            }
        }
        Ok(Self {
            socket,
            seq: AtomicU32::new(1),
            request_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Makes the kernel honour dump filters (see
    /// [`crate::sys::set_strict_dumps`]); false when it cannot (an older
    /// kernel), and dumps then return everything.
    pub(crate) fn strict_dumps(&self) -> bool {
        crate::sys::set_strict_dumps(&self.socket).is_ok()
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    async fn send<T, P>(&self, ty: T, flags: NlmF, seq: u32, payload: P) -> Result<(), NetlinkError>
    where
        T: NlType,
        P: Size + ToBytes,
    {
        let msg: Nlmsghdr<T, P> = NlmsghdrBuilder::default()
            .nl_type(ty)
            .nl_flags(flags)
            .nl_seq(seq)
            .nl_payload(NlPayload::Payload(payload))
            .build()
            .map_err(|e| NetlinkError::build("build message", e))?;
        self.socket
            .send(&msg)
            .await
            .map_err(|e| NetlinkError::socket("send", &e))
    }

    /// Sends a request with `NLM_F_ACK` and waits for the kernel's answer.
    /// Returns `Ok(())` on success and `Kernel { errno }` on refusal.
    pub(crate) async fn request_ack<T, P>(
        &self,
        op: &'static str,
        ty: T,
        flags: NlmF,
        payload: P,
    ) -> Result<(), NetlinkError>
    where
        T: NlType,
        P: Size + ToBytes,
    {
        let _guard = self.request_lock.lock().await;
        let seq = self.next_seq();
        self.send(ty, flags | NlmF::REQUEST | NlmF::ACK, seq, payload)
            .await?;
        loop {
            let (iter, _groups) = self
                .socket
                .recv::<u16, Buffer>()
                .await
                .map_err(|e| NetlinkError::socket("receive", &e))?;
            for msg in iter {
                let msg = msg.map_err(|e| NetlinkError::Malformed(e.to_string()))?;
                if *msg.nl_seq() != seq {
                    continue;
                }
                match msg.nl_payload() {
                    NlPayload::Ack(_) => return Ok(()),
                    NlPayload::Err(err) => {
                        return Err(NetlinkError::Kernel {
                            op,
                            errno: err.error().saturating_abs(),
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends a dump request and collects every reply message up to
    /// `NLMSG_DONE`.
    pub(crate) async fn dump<T, P>(
        &self,
        op: &'static str,
        ty: T,
        payload: P,
    ) -> Result<Vec<RawMessage>, NetlinkError>
    where
        T: NlType,
        P: Size + ToBytes,
    {
        self.dump_map(op, ty, payload, |ty, payload| {
            Some(RawMessage {
                ty,
                payload: payload.to_vec(),
            })
        })
        .await
    }

    /// Sends a dump request and keeps what `keep` makes of each reply
    /// message (its type and payload) up to `NLMSG_DONE`, as they come: a
    /// large table is never held whole, only what is kept.
    pub(crate) async fn dump_map<T, P, R>(
        &self,
        op: &'static str,
        ty: T,
        payload: P,
        mut keep: impl FnMut(u16, &[u8]) -> Option<R>,
    ) -> Result<Vec<R>, NetlinkError>
    where
        T: NlType,
        P: Size + ToBytes,
    {
        let _guard = self.request_lock.lock().await;
        let seq = self.next_seq();
        self.send(ty, NlmF::REQUEST | NlmF::DUMP, seq, payload)
            .await?;
        let mut out = Vec::new();
        loop {
            let (iter, _groups) = self
                .socket
                .recv::<u16, Buffer>()
                .await
                .map_err(|e| NetlinkError::socket("receive", &e))?;
            for msg in iter {
                let msg = msg.map_err(|e| NetlinkError::Malformed(e.to_string()))?;
                if *msg.nl_seq() != seq {
                    continue;
                }
                let ty = *msg.nl_type();
                if ty == u16::from(Nlmsg::Done) {
                    return Ok(out);
                }
                match msg.nl_payload() {
                    NlPayload::Err(err) => {
                        return Err(NetlinkError::Kernel {
                            op,
                            errno: err.error().saturating_abs(),
                        });
                    }
                    NlPayload::Payload(buf) => out.extend(keep(ty, buf.as_ref())),
                    _ => {}
                }
            }
        }
    }

    /// Receives the next batch of multicast notifications.
    pub(crate) async fn recv_notifications(&self) -> Result<Vec<RawMessage>, NetlinkError> {
        let (iter, _groups) = self
            .socket
            .recv::<u16, Buffer>()
            .await
            .map_err(|e| NetlinkError::socket("receive", &e))?;
        let mut out = Vec::new();
        for msg in iter {
            let msg = msg.map_err(|e| NetlinkError::Malformed(e.to_string()))?;
            let ty = *msg.nl_type();
            if ty == u16::from(Nlmsg::Overrun) {
                return Err(NetlinkError::Overrun);
            }
            if let NlPayload::Payload(buf) = msg.nl_payload() {
                out.push(RawMessage {
                    ty,
                    payload: buf.as_ref().to_vec(),
                });
            }
        }
        Ok(out)
    }
}

/// Iterates over the route attributes (`struct rtattr`) in `bytes`,
/// yielding `(type, payload)`; stops at the first malformed attribute.
pub(crate) fn attributes(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*rest.first()?, *rest.get(1)?]));
        let ty = u16::from_ne_bytes([*rest.get(2)?, *rest.get(3)?]);
        if len < 4 {
            return None;
        }
        let payload = rest.get(4..len)?;
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or_default();
        // Strip NLA_F_NESTED / NLA_F_NET_BYTEORDER.
        Some((ty & 0x3fff, payload))
    })
}

/// Reads a native-endian `u32` from the start of `bytes`.
pub(crate) fn read_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// Reads a NUL-terminated (or unterminated) string attribute.
pub(crate) fn read_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_parse_and_stop_on_garbage() {
        // IFA_LABEL "eth0" (len 9, padded to 12) then a u32 attribute.
        let mut bytes = vec![9, 0, 3, 0, b'e', b't', b'h', b'0', 0, 0, 0, 0];
        bytes.extend_from_slice(&[8, 0, 8, 0]);
        bytes.extend_from_slice(&7u32.to_ne_bytes());
        let attrs: Vec<_> = attributes(&bytes).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].0, 3);
        assert_eq!(read_string(attrs[0].1), "eth0");
        assert_eq!(read_u32(attrs[1].1), Some(7));

        for cut in 0..bytes.len() {
            let _ = attributes(&bytes[..cut]).count();
        }
        assert_eq!(attributes(&[2, 0, 1, 0]).count(), 0);
        assert_eq!(attributes(&[255, 255, 1, 0, 0]).count(), 0);
    }
}
