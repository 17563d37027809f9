//! Errors of [`super::VrrpSocket`].

use std::io;
use std::net::IpAddr;

use super::Family;

/// Errors of [`super::VrrpSocket`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The interface does not exist (in this thread's network namespace).
    #[error("interface {name:?} not found: {error}")]
    NoSuchInterface {
        /// Interface name looked up.
        name: String,
        /// Lookup error.
        error: nix::Error,
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
    #[error("{what}: {error}")]
    Setup {
        /// The step that failed.
        what: &'static str,
        /// OS error.
        error: io::Error,
    },
    /// Sending failed.
    #[error("send to {dst}: {error}")]
    Send {
        /// Destination of the failed send.
        dst: IpAddr,
        /// OS error.
        error: io::Error,
    },
    /// Receiving failed.
    #[error("receive: {0}")]
    Recv(io::Error),
}

/// A copy of an I/O error: the OS error number when there is one, else
/// its kind and message.
pub(crate) fn copy_io(e: &io::Error) -> io::Error {
    e.raw_os_error().map_or_else(
        || io::Error::new(e.kind(), e.to_string()),
        io::Error::from_raw_os_error,
    )
}

impl SocketError {
    /// A copy (the errors inside are not `Clone`): see [`copy_io`].
    pub(crate) fn duplicate(&self) -> SocketError {
        match self {
            SocketError::NoSuchInterface { name, error } => SocketError::NoSuchInterface {
                name: name.clone(),
                error: *error,
            },
            SocketError::InvalidInterfaceName(name) => {
                SocketError::InvalidInterfaceName(name.clone())
            }
            SocketError::FamilyMismatch { addr, family } => SocketError::FamilyMismatch {
                addr: *addr,
                family: *family,
            },
            SocketError::Setup { what, error } => SocketError::Setup {
                what,
                error: copy_io(error),
            },
            SocketError::Send { dst, error } => SocketError::Send {
                dst: *dst,
                error: copy_io(error),
            },
            SocketError::Recv(error) => SocketError::Recv(copy_io(error)),
        }
    }

    pub(super) fn setup(what: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |error| Self::Setup { what, error }
    }
}
