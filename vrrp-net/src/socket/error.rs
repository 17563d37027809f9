//! Errors of [`super::VrrpSocket`].

use std::io;
use std::net::IpAddr;

use super::Family;

/// Errors of [`super::VrrpSocket`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The interface does not exist (in this thread's network namespace).
    #[error("interface {name:?} not found: {source}")]
    NoSuchInterface {
        /// Interface name looked up.
        name: String,
        /// Lookup error.
        source: nix::Error,
    },
    /// The interface name is empty or longer than the kernel allows.
    #[error("invalid interface name {0:?}")]
    InvalidInterfaceName(String),
    /// An address of the other family was given (source or destination).
    #[error("address {addr} does not match the socket family {family:?}")]
    FamilyMismatch {
        /// The offending address.
        addr: IpAddr,
        /// The socket's family.
        family: Family,
    },
    /// Creating or configuring the socket failed.
    #[error("{what}: {source}")]
    Setup {
        /// The step that failed.
        what: &'static str,
        /// OS error.
        source: io::Error,
    },
    /// Sending failed.
    #[error("send to {dst}: {source}")]
    Send {
        /// Destination of the failed send.
        dst: IpAddr,
        /// OS error.
        source: io::Error,
    },
    /// Receiving failed.
    #[error("receive: {0}")]
    Recv(io::Error),
}

impl SocketError {
    pub(super) fn setup(what: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Setup { what, source }
    }
}
