//! TCP connect check (keepalived `TCP_CHECK`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::error::DownReason;
use crate::schedule::{ProbeResult, ProbeSuccess};

/// Up when a TCP connection to `target` completes; the connection is closed
/// right away.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TcpCheck {
    /// Address and port to connect to.
    pub target: SocketAddr,
    /// Source address to connect from (keepalived `bindto`).
    pub bind: Option<IpAddr>,
    /// Source port (keepalived `bind_port`).
    pub bind_port: Option<u16>,
    /// Interface to connect through (keepalived `bind_if`), also the scope
    /// of an IPv6 link-local target.
    pub bind_interface: Option<String>,
    /// Limit on the connect alone; the check's timeout bounds it anyway.
    pub connect_timeout: Option<Duration>,
}

impl TcpCheck {
    /// A check of `target` with no source address and no separate connect
    /// timeout.
    #[must_use]
    pub fn new(target: SocketAddr) -> Self {
        Self {
            target,
            bind: None,
            bind_port: None,
            bind_interface: None,
            connect_timeout: None,
        }
    }
}

pub(crate) async fn probe(check: &TcpCheck) -> ProbeResult {
    let source = super::Source {
        address: check.bind,
        port: check.bind_port,
        interface: check.bind_interface.as_deref(),
    };
    let stream = super::connect_tcp(check.target, source, check.connect_timeout).await?;
    drop(stream);
    Ok::<_, DownReason>(ProbeSuccess::default())
}
