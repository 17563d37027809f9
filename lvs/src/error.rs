//! Errors: what the kernel refused and why, and replies we could not read.

use std::io;
use std::net::SocketAddr;

use crate::model::ServiceKey;

/// The IPVS operation an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Looking up the "IPVS" generic netlink family.
    ResolveFamily,
    /// `IPVS_CMD_NEW_SERVICE`.
    AddService,
    /// `IPVS_CMD_SET_SERVICE`.
    UpdateService,
    /// `IPVS_CMD_DEL_SERVICE`.
    DeleteService,
    /// `IPVS_CMD_GET_SERVICE` (dump).
    ListServices,
    /// `IPVS_CMD_NEW_DEST`.
    AddDestination,
    /// `IPVS_CMD_SET_DEST`.
    UpdateDestination,
    /// `IPVS_CMD_DEL_DEST`.
    DeleteDestination,
    /// `IPVS_CMD_GET_DEST` (dump).
    ListDestinations,
    /// `IPVS_CMD_FLUSH`.
    Flush,
}

/// A reply that is not a well-formed netlink / IPVS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A netlink header or attribute claims more bytes than there are.
    #[error("truncated {what}: need {needed} bytes, have {available}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// A required attribute is absent.
    #[error("missing attribute {0}")]
    MissingAttribute(&'static str),
    /// An attribute has the wrong size.
    #[error("attribute {name} has {len} bytes")]
    BadAttributeLength {
        /// Attribute name.
        name: &'static str,
        /// Its length.
        len: usize,
    },
    /// An address family other than IPv4/IPv6.
    #[error("unknown address family {0}")]
    UnknownFamily(u16),
    /// A protocol IPVS does not balance.
    #[error("unknown protocol {0}")]
    UnknownProtocol(u16),
    /// A forwarding method outside the kernel's set.
    #[error("unknown forwarding method {0:#x}")]
    UnknownForwardMethod(u32),
    /// A scheduler name that is not printable ASCII.
    #[error("invalid scheduler name in reply")]
    BadSchedulerName,
    /// An IPv4 persistence netmask that is not a prefix (e.g. 255.0.255.0).
    #[error("non-contiguous persistence netmask {0:#010x}")]
    NonContiguousNetmask(u32),
    /// An IPv6 persistence prefix length above 128.
    #[error("persistence prefix length {0} out of range")]
    BadPrefixLength(u32),
}

/// Everything that can go wrong talking to IPVS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel has no "IPVS" generic netlink family: ip_vs is not loaded
    /// (and could not be auto-loaded) or this network namespace has no IPVS.
    #[error("IPVS is not available (is the ip_vs module loaded?)")]
    IpvsUnavailable,
    /// The caller lacks `CAP_NET_ADMIN` in this network namespace.
    #[error("{operation:?}: permission denied (needs CAP_NET_ADMIN)")]
    PermissionDenied {
        /// What was attempted.
        operation: Operation,
    },
    /// The service does not exist (`ESRCH`).
    #[error("{operation:?}: service {service} does not exist")]
    ServiceNotFound {
        /// What was attempted.
        operation: Operation,
        /// The missing service.
        service: ServiceKey,
    },
    /// Adding a service that already exists (`EEXIST`).
    #[error("service {0} already exists")]
    ServiceExists(ServiceKey),
    /// The kernel has no scheduler of this name (`ENOENT` on add/edit service:
    /// module `ip_vs_<name>` is missing or could not be loaded).
    #[error("scheduler {scheduler:?} is not available for service {service}")]
    SchedulerNotFound {
        /// The service being added or edited.
        service: ServiceKey,
        /// The scheduler name that was asked for.
        scheduler: String,
    },
    /// Adding a destination that already exists (`EEXIST`).
    #[error("destination {destination} of service {service} already exists")]
    DestinationExists {
        /// The service.
        service: ServiceKey,
        /// The real server.
        destination: SocketAddr,
    },
    /// Editing or deleting a destination that does not exist (`ENOENT`).
    #[error("{operation:?}: destination {destination} of service {service} does not exist")]
    DestinationNotFound {
        /// What was attempted.
        operation: Operation,
        /// The service.
        service: ServiceKey,
        /// The real server.
        destination: SocketAddr,
    },
    /// A weight or threshold the kernel refuses (`ERANGE`: weight above
    /// `i32::MAX`, lower threshold above upper threshold).
    #[error("{operation:?}: weight or threshold out of range")]
    OutOfRange {
        /// What was attempted.
        operation: Operation,
    },
    /// The kernel called the request invalid (`EINVAL`): e.g. an IPv6
    /// persistence prefix of 0, a DR/TUN destination with no usable route,
    /// a destination family the forwarding method cannot carry, or a flag the
    /// scheduler does not allow.
    #[error("{operation:?}: invalid argument ({detail})")]
    InvalidArgument {
        /// What was attempted.
        operation: Operation,
        /// Which object the request was about.
        detail: String,
    },
    /// Another errno from the kernel.
    #[error("{operation:?}: kernel error: {source}")]
    Kernel {
        /// What was attempted.
        operation: Operation,
        /// The errno as an I/O error.
        source: io::Error,
    },
    /// The socket itself failed (open, send, receive).
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel's reply did not parse.
    #[error("{operation:?}: malformed reply: {source}")]
    Malformed {
        /// What was attempted.
        operation: Operation,
        /// Why it did not parse.
        source: DecodeError,
    },
}

/// What a request was about, for turning an errno into an [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorContext {
    pub(crate) operation: Operation,
    pub(crate) service: Option<ServiceKey>,
    pub(crate) destination: Option<SocketAddr>,
    pub(crate) scheduler: Option<String>,
}

impl ErrorContext {
    fn describe(&self) -> String {
        match (&self.service, &self.destination) {
            (Some(s), Some(d)) => format!("service {s}, destination {d}"),
            (Some(s), None) => format!("service {s}"),
            _ => "no object".to_owned(),
        }
    }
}

/// Map a kernel errno (positive) to a typed error, using which request it answered.
///
/// The errno meanings are those of `net/netfilter/ipvs/ip_vs_ctl.c`
/// (`ip_vs_genl_set_cmd` and the add/edit/del helpers).
pub(crate) fn from_errno(ctx: &ErrorContext, errno: i32) -> Error {
    use Operation as Op;
    let op = ctx.operation;
    match (errno, op, &ctx.service, ctx.destination) {
        (libc_errno::ENOENT, Op::ResolveFamily, _, _) => Error::IpvsUnavailable,
        (libc_errno::EPERM | libc_errno::EACCES, _, _, _) => {
            Error::PermissionDenied { operation: op }
        }
        (libc_errno::ESRCH, _, Some(service), _) => Error::ServiceNotFound {
            operation: op,
            service: *service,
        },
        (libc_errno::EEXIST, Op::AddService, Some(service), _) => Error::ServiceExists(*service),
        (libc_errno::ENOENT, Op::AddService | Op::UpdateService, Some(service), _) => {
            Error::SchedulerNotFound {
                service: *service,
                scheduler: ctx.scheduler.clone().unwrap_or_default(),
            }
        }
        (libc_errno::EEXIST, Op::AddDestination, Some(service), Some(destination)) => {
            Error::DestinationExists {
                service: *service,
                destination,
            }
        }
        (
            libc_errno::ENOENT,
            Op::UpdateDestination | Op::DeleteDestination,
            Some(service),
            Some(destination),
        ) => Error::DestinationNotFound {
            operation: op,
            service: *service,
            destination,
        },
        (libc_errno::ERANGE, _, _, _) => Error::OutOfRange { operation: op },
        (libc_errno::EINVAL, _, _, _) => Error::InvalidArgument {
            operation: op,
            detail: ctx.describe(),
        },
        _ => Error::Kernel {
            operation: op,
            source: io::Error::from_raw_os_error(errno),
        },
    }
}

/// The errno values IPVS answers with (Linux, all architectures we build for).
mod libc_errno {
    pub(super) const EPERM: i32 = 1;
    pub(super) const ENOENT: i32 = 2;
    pub(super) const ESRCH: i32 = 3;
    pub(super) const EACCES: i32 = 13;
    pub(super) const EEXIST: i32 = 17;
    pub(super) const EINVAL: i32 = 22;
    pub(super) const ERANGE: i32 = 34;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(operation: Operation, dest: bool) -> ErrorContext {
        ErrorContext {
            operation,
            service: Some("tcp/192.0.2.1:80".parse().expect("key")),
            destination: dest.then(|| "192.0.2.9:80".parse().expect("addr")),
            scheduler: Some("nope".to_owned()),
        }
    }

    #[test]
    fn errnos_map_by_operation() {
        assert!(matches!(
            from_errno(&ctx(Operation::ResolveFamily, false), 2),
            Error::IpvsUnavailable
        ));
        assert!(matches!(
            from_errno(&ctx(Operation::AddService, false), 17),
            Error::ServiceExists(_)
        ));
        assert!(
            matches!(from_errno(&ctx(Operation::AddService, false), 2), Error::SchedulerNotFound { ref scheduler, .. } if scheduler == "nope")
        );
        assert!(matches!(
            from_errno(&ctx(Operation::AddDestination, true), 3),
            Error::ServiceNotFound { .. }
        ));
        assert!(matches!(
            from_errno(&ctx(Operation::AddDestination, true), 17),
            Error::DestinationExists { .. }
        ));
        assert!(matches!(
            from_errno(&ctx(Operation::DeleteDestination, true), 2),
            Error::DestinationNotFound { .. }
        ));
        assert!(matches!(
            from_errno(&ctx(Operation::UpdateDestination, true), 34),
            Error::OutOfRange { .. }
        ));
        assert!(matches!(
            from_errno(&ctx(Operation::AddDestination, true), 22),
            Error::InvalidArgument { .. }
        ));
        assert!(matches!(
            from_errno(&ctx(Operation::Flush, false), 1),
            Error::PermissionDenied { .. }
        ));
        assert!(
            matches!(from_errno(&ctx(Operation::Flush, false), 12), Error::Kernel { ref source, .. } if source.raw_os_error() == Some(12))
        );
    }
}
