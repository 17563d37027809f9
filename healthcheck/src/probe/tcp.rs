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
            connect_timeout: None,
        }
    }
}

pub(crate) async fn probe(check: &TcpCheck) -> ProbeResult {
    let stream = super::connect_tcp(check.target, check.bind, check.connect_timeout).await?;
    drop(stream);
    Ok::<_, DownReason>(ProbeSuccess::default())
}
