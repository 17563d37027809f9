//! [`IpvsClient`]: the kernel's IPVS table over a generic netlink socket.

use std::net::SocketAddr;

use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;

use crate::error::{DecodeError, Error, Operation, from_errno};
use crate::model::{Destination, DestinationStatus, Service, ServiceKey, ServiceStatistics};
use crate::table::Ipvs;
use crate::wire::{self, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, Request};

/// Dump replies are at most 32 KiB per datagram (netlink caps its dump skb);
/// 64 KiB leaves room so nothing is ever truncated.
const RECV_BUFFER: usize = 64 * 1024;

/// A blocking client for the kernel's IPVS table in the caller's network namespace.
///
/// Each call is one request and its reply; calls take microseconds, so an
/// async daemon can run them inline or on `spawn_blocking`. Needs
/// `CAP_NET_ADMIN` for writes.
pub struct IpvsClient {
    socket: NlSocket,
    family: u16,
    seq: u32,
    pid: u32,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
}

impl std::fmt::Debug for IpvsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpvsClient")
            .field("family", &self.family)
            .field("pid", &self.pid)
            .finish()
    }
}

impl IpvsClient {
    /// Open a generic netlink socket and resolve the "IPVS" family.
    ///
    /// Fails with [`Error::IpvsUnavailable`] when the kernel has no IPVS.
    pub fn connect() -> Result<Self, Error> {
        let socket = NlSocket::connect(NlFamily::Generic, None, Groups::empty())?;
        let pid = socket.pid()?;
        let mut client = IpvsClient {
            socket,
            family: 0,
            seq: 0,
            pid,
            send_buf: Vec::with_capacity(512),
            recv_buf: vec![0; RECV_BUFFER],
        };
        let replies = client.request(&Request::ResolveFamily)?;
        let family = replies
            .first()
            .ok_or(Error::Malformed {
                operation: Operation::ResolveFamily,
                source: DecodeError::MissingAttribute("CTRL_ATTR_FAMILY_ID"),
            })
            .and_then(|p| {
                wire::decode_family_id(p).map_err(|source| Error::Malformed {
                    operation: Operation::ResolveFamily,
                    source,
                })
            })?;
        client.family = family;
        Ok(client)
    }

    /// The resolved IPVS generic netlink family id.
    pub fn family_id(&self) -> u16 {
        self.family
    }

    /// Delete every service in this network namespace, including ones other
    /// programs made (`ipvsadm -C`). Reconciliation never does this.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.request(&Request::Flush).map(drop)
    }

    /// Every service's traffic counters and its destinations', read
    /// from the kernel now: one dump of the services and one of each
    /// service's destinations (what `ipvsadm -Ln --stats` reads).
    ///
    /// # Errors
    /// The kernel's refusal, or a reply that does not decode.
    pub fn statistics(&mut self) -> Result<Vec<ServiceStatistics>, Error> {
        let malformed = |operation| move |source| Error::Malformed { operation, source };
        let replies = self.request(&Request::ListServices)?;
        let mut out = Vec::with_capacity(replies.len());
        for p in &replies {
            let key = wire::decode_service(p)
                .map_err(malformed(Operation::ListServices))?
                .key;
            let counters = wire::decode_service_counters(p)
                .map_err(malformed(Operation::ListServices))?
                .unwrap_or_default();
            out.push(ServiceStatistics {
                key,
                counters,
                destinations: Vec::new(),
            });
        }
        for s in &mut out {
            for p in self.request(&Request::ListDestinations(&s.key))? {
                let d = wire::decode_destination(&p, s.key.family())
                    .map_err(malformed(Operation::ListDestinations))?;
                let counters = wire::decode_destination_counters(&p)
                    .map_err(malformed(Operation::ListDestinations))?
                    .unwrap_or_default();
                s.destinations.push((d.destination.addr, counters));
            }
        }
        Ok(out)
    }

    /// Send one request; return the generic netlink payloads of the replies.
    fn request(&mut self, req: &Request<'_>) -> Result<Vec<Vec<u8>>, Error> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.send_buf.clear();
        req.emit(self.family, seq, self.pid, &mut self.send_buf);
        self.socket.send(&self.send_buf, Msg::empty())?;

        let dump = req.is_dump();
        let malformed = |source| Error::Malformed {
            operation: req.operation(),
            source,
        };
        let mut payloads = Vec::new();
        loop {
            let (len, _) = self.socket.recv(&mut self.recv_buf[..], Msg::empty())?;
            if len == 0 {
                return Err(Error::Io(std::io::Error::from(
                    std::io::ErrorKind::UnexpectedEof,
                )));
            }
            let data = self.recv_buf.get(..len).unwrap_or_default();
            for msg in wire::messages(data) {
                let msg = msg.map_err(malformed)?;
                if msg.seq != seq {
                    continue; // a late reply to an earlier request
                }
                match msg.msg_type {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR => match wire::error_code(msg.payload).map_err(malformed)? {
                        0 if dump => {}
                        0 => return Ok(payloads),
                        errno => return Err(from_errno(&req.error_context(), errno)),
                    },
                    NLMSG_DONE => match wire::error_code(msg.payload).unwrap_or(0) {
                        0 => return Ok(payloads),
                        errno => return Err(from_errno(&req.error_context(), errno)),
                    },
                    NLMSG_OVERRUN => {
                        return Err(Error::Io(std::io::Error::other(
                            "netlink overrun: reply lost",
                        )));
                    }
                    _ => payloads.push(msg.payload.to_vec()),
                }
            }
        }
    }
}

impl Ipvs for IpvsClient {
    fn services(&mut self) -> Result<Vec<Service>, Error> {
        let replies = self.request(&Request::ListServices)?;
        replies
            .iter()
            .map(|p| {
                wire::decode_service(p).map_err(|source| Error::Malformed {
                    operation: Operation::ListServices,
                    source,
                })
            })
            .collect()
    }

    fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<DestinationStatus>, Error> {
        let replies = self.request(&Request::ListDestinations(service))?;
        replies
            .iter()
            .map(|p| {
                wire::decode_destination(p, service.family()).map_err(|source| Error::Malformed {
                    operation: Operation::ListDestinations,
                    source,
                })
            })
            .collect()
    }

    fn add_service(&mut self, service: &Service) -> Result<(), Error> {
        self.request(&Request::AddService(service)).map(drop)
    }

    fn update_service(&mut self, service: &Service) -> Result<(), Error> {
        self.request(&Request::UpdateService(service)).map(drop)
    }

    fn delete_service(&mut self, service: &ServiceKey) -> Result<(), Error> {
        self.request(&Request::DeleteService(service)).map(drop)
    }

    fn add_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), Error> {
        self.request(&Request::AddDestination(service, destination))
            .map(drop)
    }

    fn update_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), Error> {
        self.request(&Request::UpdateDestination(service, destination))
            .map(drop)
    }

    fn delete_destination(
        &mut self,
        service: &ServiceKey,
        destination: SocketAddr,
    ) -> Result<(), Error> {
        self.request(&Request::DeleteDestination(service, destination))
            .map(drop)
    }
}
