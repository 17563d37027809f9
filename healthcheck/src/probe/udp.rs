//! UDP check (keepalived `UDP_CHECK`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::error::DownReason;
use crate::schedule::{ProbeResult, ProbeSuccess};

/// The largest reply read; longer datagrams are truncated to this.
const MAX_REPLY: usize = 2048;

/// Sends `payload` to `target`.
///
/// With `require_reply`, up when a datagram comes back (starting with
/// `expected_prefix`, if set) within the timeout. Without it, up unless an
/// ICMP port unreachable (seen as "connection refused") arrives within half
/// the timeout, as keepalived does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UdpCheck {
    /// Address and port to send to.
    pub target: SocketAddr,
    /// Source address to send from (keepalived `bindto`).
    pub bind: Option<IpAddr>,
    /// Source port (keepalived `bind_port`).
    pub bind_port: Option<u16>,
    /// Interface to send through (keepalived `bind_if`).
    pub bind_interface: Option<String>,
    /// Datagram content.
    pub payload: Vec<u8>,
    /// Whether silence counts as down.
    pub require_reply: bool,
    /// Bytes the reply must start with (only with `require_reply`).
    pub expected_prefix: Option<Vec<u8>>,
}

impl UdpCheck {
    /// A check of `target` that sends an empty datagram and needs no reply.
    #[must_use]
    pub fn new(target: SocketAddr) -> Self {
        Self {
            target,
            bind: None,
            bind_port: None,
            bind_interface: None,
            payload: Vec::new(),
            require_reply: false,
            expected_prefix: None,
        }
    }
}

pub(crate) async fn probe(check: &UdpCheck, timeout: Duration) -> ProbeResult {
    let source = super::Source {
        address: check.bind,
        port: check.bind_port,
        interface: check.bind_interface.as_deref(),
    };
    let socket = super::udp_socket(check.target, source).await?;
    socket
        .send(&check.payload)
        .await
        .map_err(|e| DownReason::from_io("send", &e))?;
    let mut buf = vec![0_u8; MAX_REPLY];
    if check.require_reply {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| DownReason::from_io("recv", &e))?;
        judge_reply(check, &buf[..n])
    } else {
        match tokio::time::timeout(timeout / 2, socket.recv(&mut buf)).await {
            Ok(Err(e)) => Err(DownReason::from_io("recv", &e)),
            Ok(Ok(_)) | Err(_) => Ok(ProbeSuccess::default()),
        }
    }
}

/// The verdict on the reply datagram of a check that requires one.
pub(crate) fn judge_reply(check: &UdpCheck, reply: &[u8]) -> ProbeResult {
    match &check.expected_prefix {
        Some(prefix) if !reply.starts_with(prefix) => Err(DownReason::UdpReplyMismatch),
        _ => Ok(ProbeSuccess::default()),
    }
}
