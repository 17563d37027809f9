//! The netlink, generic netlink and IPVS attribute codec. Pure: no socket.
//!
//! Requests are encoded into a caller-owned `Vec<u8>`; replies are decoded from
//! byte slices and decoding never panics on any input (it returns
//! [`DecodeError`]). Layouts follow the kernel's uapi `linux/netlink.h`,
//! `linux/genetlink.h` and `linux/ip_vs.h`; attribute order and sizes follow
//! ipvsadm/libipvs, whose captured messages the tests compare against
//! (`testdata/ipvsadm/`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::error::{DecodeError, ErrorContext, Operation};
use crate::model::{
    AddressFamily, Counters, Destination, DestinationStatus, ForwardMethod, Persistence, Protocol,
    Scheduler, Service, ServiceFlags, ServiceKey,
};

/// Netlink message header length (`struct nlmsghdr`).
pub const NLMSG_HDRLEN: usize = 16;
/// Generic netlink header length (`struct genlmsghdr`).
pub const GENL_HDRLEN: usize = 4;
/// `NLMSG_NOOP`.
pub const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR` (also carries ACKs: error 0).
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`.
pub const NLMSG_OVERRUN: u16 = 4;
/// `GENL_ID_CTRL`: the generic netlink controller's message type.
pub const GENL_ID_CTRL: u16 = 0x10;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const CTRL_VERSION: u8 = 1;

/// Name of the IPVS generic netlink family.
pub const IPVS_GENL_NAME: &str = "IPVS";
const IPVS_GENL_VERSION: u8 = 1;

/// `IPVS_CMD_*` command numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum IpvsCommand {
    /// Add a service.
    NewService = 1,
    /// Edit a service.
    SetService = 2,
    /// Delete a service.
    DelService = 3,
    /// Get / dump services.
    GetService = 4,
    /// Add a destination.
    NewDest = 5,
    /// Edit a destination.
    SetDest = 6,
    /// Delete a destination.
    DelDest = 7,
    /// Get / dump destinations.
    GetDest = 8,
    /// Remove every service.
    Flush = 17,
}

// IPVS_CMD_ATTR_*
const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;
// IPVS_SVC_ATTR_*
const SVC_ATTR_AF: u16 = 1;
const SVC_ATTR_PROTOCOL: u16 = 2;
const SVC_ATTR_ADDR: u16 = 3;
const SVC_ATTR_PORT: u16 = 4;
const SVC_ATTR_FWMARK: u16 = 5;
const SVC_ATTR_SCHED_NAME: u16 = 6;
const SVC_ATTR_FLAGS: u16 = 7;
const SVC_ATTR_TIMEOUT: u16 = 8;
const SVC_ATTR_NETMASK: u16 = 9;
const SVC_ATTR_STATS: u16 = 10;
const SVC_ATTR_STATS64: u16 = 12;
// IPVS_DEST_ATTR_*
const DEST_ATTR_ADDR: u16 = 1;
const DEST_ATTR_PORT: u16 = 2;
const DEST_ATTR_FWD_METHOD: u16 = 3;
const DEST_ATTR_WEIGHT: u16 = 4;
const DEST_ATTR_U_THRESH: u16 = 5;
const DEST_ATTR_L_THRESH: u16 = 6;
const DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const DEST_ATTR_INACT_CONNS: u16 = 8;
const DEST_ATTR_PERSIST_CONNS: u16 = 9;
const DEST_ATTR_STATS: u16 = 10;
const DEST_ATTR_ADDR_FAMILY: u16 = 11;
const DEST_ATTR_STATS64: u16 = 12;
const DEST_ATTR_TUN_TYPE: u16 = 13;
const DEST_ATTR_TUN_PORT: u16 = 14;
const DEST_ATTR_TUN_FLAGS: u16 = 15;

/// One request to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request<'a> {
    /// `CTRL_CMD_GETFAMILY` for "IPVS" (sent to the controller, type 0x10).
    ResolveFamily,
    /// Add a service.
    AddService(&'a Service),
    /// Edit a service in place.
    UpdateService(&'a Service),
    /// Delete a service and its destinations.
    DeleteService(&'a ServiceKey),
    /// Dump all services.
    ListServices,
    /// Add a destination to a service.
    AddDestination(&'a ServiceKey, &'a Destination),
    /// Edit a destination in place.
    UpdateDestination(&'a ServiceKey, &'a Destination),
    /// Delete a destination.
    DeleteDestination(&'a ServiceKey, SocketAddr),
    /// Dump a service's destinations.
    ListDestinations(&'a ServiceKey),
    /// Delete every service.
    Flush,
}

impl Request<'_> {
    /// Whether the reply is a multi-part dump ending in `NLMSG_DONE`.
    pub fn is_dump(&self) -> bool {
        matches!(self, Request::ListServices | Request::ListDestinations(_))
    }

    /// Which operation this is, for errors.
    pub fn operation(&self) -> Operation {
        match self {
            Request::ResolveFamily => Operation::ResolveFamily,
            Request::AddService(_) => Operation::AddService,
            Request::UpdateService(_) => Operation::UpdateService,
            Request::DeleteService(_) => Operation::DeleteService,
            Request::ListServices => Operation::ListServices,
            Request::AddDestination(..) => Operation::AddDestination,
            Request::UpdateDestination(..) => Operation::UpdateDestination,
            Request::DeleteDestination(..) => Operation::DeleteDestination,
            Request::ListDestinations(_) => Operation::ListDestinations,
            Request::Flush => Operation::Flush,
        }
    }

    pub(crate) fn error_context(&self) -> ErrorContext {
        let (service, destination, scheduler) = match self {
            Request::ResolveFamily | Request::ListServices | Request::Flush => (None, None, None),
            Request::AddService(s) | Request::UpdateService(s) => {
                (Some(s.key), None, Some(s.scheduler.to_string()))
            }
            Request::DeleteService(k) | Request::ListDestinations(k) => (Some(**k), None, None),
            Request::AddDestination(k, d) | Request::UpdateDestination(k, d) => {
                (Some(**k), Some(d.addr), None)
            }
            Request::DeleteDestination(k, a) => (Some(**k), Some(*a), None),
        };
        ErrorContext {
            operation: self.operation(),
            service,
            destination,
            scheduler,
        }
    }

    /// The generic netlink command byte.
    fn command(&self) -> u8 {
        let cmd = match self {
            Request::ResolveFamily => return CTRL_CMD_GETFAMILY,
            Request::AddService(_) => IpvsCommand::NewService,
            Request::UpdateService(_) => IpvsCommand::SetService,
            Request::DeleteService(_) => IpvsCommand::DelService,
            Request::ListServices => IpvsCommand::GetService,
            Request::AddDestination(..) => IpvsCommand::NewDest,
            Request::UpdateDestination(..) => IpvsCommand::SetDest,
            Request::DeleteDestination(..) => IpvsCommand::DelDest,
            Request::ListDestinations(_) => IpvsCommand::GetDest,
            Request::Flush => IpvsCommand::Flush,
        };
        cmd as u8
    }

    /// Append the whole netlink message to `out`. `ipvs_family` is the
    /// resolved IPVS family id (ignored for [`Request::ResolveFamily`]).
    /// Flags are `NLM_F_REQUEST | NLM_F_ACK` (plus `NLM_F_DUMP` for listings),
    /// as libnl sends them for ipvsadm.
    pub fn emit(&self, ipvs_family: u16, seq: u32, pid: u32, out: &mut Vec<u8>) {
        // netlink aligns to 4 bytes from the message start, so build the message on its own
        let mut msg = Vec::with_capacity(256);
        self.emit_aligned(ipvs_family, seq, pid, &mut msg);
        out.extend_from_slice(&msg);
    }

    fn emit_aligned(&self, ipvs_family: u16, seq: u32, pid: u32, out: &mut Vec<u8>) {
        let start = out.len();
        let msg_type = if matches!(self, Request::ResolveFamily) {
            GENL_ID_CTRL
        } else {
            ipvs_family
        };
        let mut flags = NLM_F_REQUEST | NLM_F_ACK;
        if self.is_dump() {
            flags |= NLM_F_DUMP;
        }
        put_u32(out, 0); // length, patched below
        put_u16(out, msg_type);
        put_u16(out, flags);
        put_u32(out, seq);
        put_u32(out, pid);
        let version = if matches!(self, Request::ResolveFamily) {
            CTRL_VERSION
        } else {
            IPVS_GENL_VERSION
        };
        out.extend_from_slice(&[self.command(), version, 0, 0]);
        match self {
            Request::ResolveFamily => {
                let mut name = IPVS_GENL_NAME.as_bytes().to_vec();
                name.push(0);
                put_attr(out, CTRL_ATTR_FAMILY_NAME, &name);
            }
            Request::AddService(s) | Request::UpdateService(s) => {
                let nest = nest_start(out, CMD_ATTR_SERVICE);
                emit_service_key(out, &s.key);
                emit_service_settings(out, s);
                nest_end(out, nest);
            }
            Request::DeleteService(k) | Request::ListDestinations(k) => {
                let nest = nest_start(out, CMD_ATTR_SERVICE);
                emit_service_key(out, k);
                nest_end(out, nest);
            }
            Request::AddDestination(k, d) | Request::UpdateDestination(k, d) => {
                let nest = nest_start(out, CMD_ATTR_SERVICE);
                emit_service_key(out, k);
                nest_end(out, nest);
                let nest = nest_start(out, CMD_ATTR_DEST);
                emit_destination(out, d);
                nest_end(out, nest);
            }
            Request::DeleteDestination(k, addr) => {
                let nest = nest_start(out, CMD_ATTR_SERVICE);
                emit_service_key(out, k);
                nest_end(out, nest);
                let nest = nest_start(out, CMD_ATTR_DEST);
                put_u16_attr(
                    out,
                    DEST_ATTR_ADDR_FAMILY,
                    AddressFamily::of(addr.ip()).number(),
                );
                put_attr(out, DEST_ATTR_ADDR, &addr_bytes(addr.ip()));
                put_attr(out, DEST_ATTR_PORT, &addr.port().to_be_bytes());
                nest_end(out, nest);
            }
            Request::ListServices | Request::Flush => {}
        }
        let len = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
        out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_ne_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_ne_bytes());
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn put_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
    put_u16(out, len);
    put_u16(out, kind);
    out.extend_from_slice(payload);
    pad(out);
}

fn put_u16_attr(out: &mut Vec<u8>, kind: u16, v: u16) {
    put_attr(out, kind, &v.to_ne_bytes());
}

fn put_u32_attr(out: &mut Vec<u8>, kind: u16, v: u32) {
    put_attr(out, kind, &v.to_ne_bytes());
}

fn nest_start(out: &mut Vec<u8>, kind: u16) -> usize {
    let at = out.len();
    put_u16(out, 0);
    put_u16(out, kind | NLA_F_NESTED);
    at
}

fn nest_end(out: &mut [u8], at: usize) {
    let len = u16::try_from(out.len() - at).unwrap_or(u16::MAX);
    out[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

/// Addresses travel as `union nf_inet_addr`: always 16 bytes, IPv4 in the first 4.
fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b = v6.octets(),
    }
    b
}

fn emit_service_key(out: &mut Vec<u8>, key: &ServiceKey) {
    put_u16_attr(out, SVC_ATTR_AF, key.family().number());
    match key {
        ServiceKey::Socket { protocol, addr } => {
            put_u16_attr(out, SVC_ATTR_PROTOCOL, protocol.number());
            put_attr(out, SVC_ATTR_ADDR, &addr_bytes(addr.ip()));
            put_attr(out, SVC_ATTR_PORT, &addr.port().to_be_bytes());
        }
        ServiceKey::Fwmark { mark, .. } => put_u32_attr(out, SVC_ATTR_FWMARK, *mark),
    }
}

/// The persistence netmask as the kernel wants it: an IPv4 mask in network
/// byte order, or an IPv6 prefix length (ipvsadm sends 128 by default; 0 is EINVAL).
fn netmask_value(family: AddressFamily, prefix_len: Option<u8>) -> [u8; 4] {
    let max = family.max_prefix_len();
    let len = prefix_len.unwrap_or(max).min(max);
    match family {
        AddressFamily::Ipv4 => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            mask.to_be_bytes()
        }
        AddressFamily::Ipv6 => u32::from(len).to_ne_bytes(),
    }
}

fn emit_service_settings(out: &mut Vec<u8>, s: &Service) {
    let mut sched = s.scheduler.name().as_bytes().to_vec();
    sched.push(0);
    put_attr(out, SVC_ATTR_SCHED_NAME, &sched);
    let mut flags = s.flags.bits();
    if s.persistence.is_some() {
        flags |= ServiceFlags::PERSISTENT_BIT;
    }
    // struct ip_vs_flags { flags, mask }: a full mask sets every flag, as ipvsadm does
    let mut both = [0u8; 8];
    both[..4].copy_from_slice(&flags.to_ne_bytes());
    both[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
    put_attr(out, SVC_ATTR_FLAGS, &both);
    let timeout = s.persistence.map_or(0, |p| p.timeout_secs());
    put_u32_attr(out, SVC_ATTR_TIMEOUT, timeout);
    let prefix = s.persistence.and_then(|p| p.prefix_len);
    put_attr(
        out,
        SVC_ATTR_NETMASK,
        &netmask_value(s.key.family(), prefix),
    );
}

fn emit_destination(out: &mut Vec<u8>, d: &Destination) {
    put_u16_attr(
        out,
        DEST_ATTR_ADDR_FAMILY,
        AddressFamily::of(d.addr.ip()).number(),
    );
    put_attr(out, DEST_ATTR_ADDR, &addr_bytes(d.addr.ip()));
    put_attr(out, DEST_ATTR_PORT, &d.addr.port().to_be_bytes());
    put_u32_attr(out, DEST_ATTR_FWD_METHOD, d.forward.bits());
    put_u32_attr(out, DEST_ATTR_WEIGHT, d.weight);
    // tunnel type IPIP (0), no GUE port, no tunnel flags: what ipvsadm sends by default
    put_attr(out, DEST_ATTR_TUN_TYPE, &[0]);
    put_attr(out, DEST_ATTR_TUN_PORT, &0u16.to_be_bytes());
    put_u16_attr(out, DEST_ATTR_TUN_FLAGS, 0);
    put_u32_attr(out, DEST_ATTR_U_THRESH, d.upper_threshold);
    put_u32_attr(out, DEST_ATTR_L_THRESH, d.lower_threshold);
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// One netlink message inside a received buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetlinkMessage<'a> {
    /// `nlmsg_type`.
    pub msg_type: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`.
    pub pid: u32,
    /// Everything after the 16-byte header.
    pub payload: &'a [u8],
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_ne_bytes)
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
}

/// Iterate over the netlink messages of one datagram.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

/// Iterator returned by [`messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<NetlinkMessage<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let truncated = |needed| DecodeError::Truncated {
            what: "netlink message",
            needed,
            available: b.len(),
        };
        let parsed = (|| {
            let len = read_u32(b, 0).ok_or(truncated(NLMSG_HDRLEN))? as usize;
            if len < NLMSG_HDRLEN || len > b.len() {
                return Err(truncated(len.max(NLMSG_HDRLEN)));
            }
            let msg = NetlinkMessage {
                msg_type: read_u16(b, 4).ok_or(truncated(NLMSG_HDRLEN))?,
                flags: read_u16(b, 6).ok_or(truncated(NLMSG_HDRLEN))?,
                seq: read_u32(b, 8).ok_or(truncated(NLMSG_HDRLEN))?,
                pid: read_u32(b, 12).ok_or(truncated(NLMSG_HDRLEN))?,
                payload: b.get(NLMSG_HDRLEN..len).ok_or(truncated(len))?,
            };
            let next = len.saturating_add(3) & !3;
            Ok((msg, next.min(b.len())))
        })();
        match parsed {
            Ok((msg, next)) => {
                self.rest = b.get(next..).unwrap_or(&[]);
                Some(Ok(msg))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// The errno of an `NLMSG_ERROR` or `NLMSG_DONE` payload, positive (0 = ACK / success).
pub fn error_code(payload: &[u8]) -> Result<i32, DecodeError> {
    let raw = read_u32(payload, 0).ok_or(DecodeError::Truncated {
        what: "netlink error",
        needed: 4,
        available: payload.len(),
    })?;
    Ok((raw as i32).saturating_neg())
}

/// Iterate over the attributes in `buf` (type without the nested/byte-order flags, payload).
pub fn attributes(buf: &[u8]) -> Attributes<'_> {
    Attributes { rest: buf }
}

/// Iterator returned by [`attributes`].
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(u16, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        // trailing padding shorter than a header is not an attribute
        if self.rest.len() < 4 {
            return None;
        }
        let b = self.rest;
        let len = read_u16(b, 0).map_or(0, usize::from);
        let kind = read_u16(b, 2).unwrap_or(0) & NLA_TYPE_MASK;
        match b.get(4..len.max(4)) {
            Some(payload) if len >= 4 => {
                let next = (len + 3) & !3;
                self.rest = b.get(next..).unwrap_or(&[]);
                Some(Ok((kind, payload)))
            }
            _ => {
                self.rest = &[];
                Some(Err(DecodeError::Truncated {
                    what: "attribute",
                    needed: len.max(4),
                    available: b.len(),
                }))
            }
        }
    }
}

/// Find attribute `kind` in `buf`.
fn find(buf: &[u8], kind: u16) -> Result<Option<&[u8]>, DecodeError> {
    for attr in attributes(buf) {
        let (k, payload) = attr?;
        if k == kind {
            return Ok(Some(payload));
        }
    }
    Ok(None)
}

fn need<'a>(buf: &'a [u8], kind: u16, name: &'static str) -> Result<&'a [u8], DecodeError> {
    find(buf, kind)?.ok_or(DecodeError::MissingAttribute(name))
}

fn fixed<const N: usize>(payload: &[u8], name: &'static str) -> Result<[u8; N], DecodeError> {
    payload
        .get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::BadAttributeLength {
            name,
            len: payload.len(),
        })
}

fn u16_attr(buf: &[u8], kind: u16, name: &'static str) -> Result<u16, DecodeError> {
    Ok(u16::from_ne_bytes(fixed(need(buf, kind, name)?, name)?))
}

fn u32_attr(buf: &[u8], kind: u16, name: &'static str) -> Result<u32, DecodeError> {
    Ok(u32::from_ne_bytes(fixed(need(buf, kind, name)?, name)?))
}

fn optional_u32(buf: &[u8], kind: u16, name: &'static str) -> Result<u32, DecodeError> {
    match find(buf, kind)? {
        Some(p) => Ok(u32::from_ne_bytes(fixed(p, name)?)),
        None => Ok(0),
    }
}

fn ip_attr(
    buf: &[u8],
    kind: u16,
    family: AddressFamily,
    name: &'static str,
) -> Result<IpAddr, DecodeError> {
    let p = need(buf, kind, name)?;
    Ok(match family {
        AddressFamily::Ipv4 => IpAddr::V4(Ipv4Addr::from(fixed::<4>(p, name)?)),
        AddressFamily::Ipv6 => IpAddr::V6(Ipv6Addr::from(fixed::<16>(p, name)?)),
    })
}

fn port_attr(buf: &[u8], kind: u16, name: &'static str) -> Result<u16, DecodeError> {
    Ok(u16::from_be_bytes(fixed(need(buf, kind, name)?, name)?))
}

fn family_attr(buf: &[u8], kind: u16, name: &'static str) -> Result<AddressFamily, DecodeError> {
    let n = u16_attr(buf, kind, name)?;
    AddressFamily::from_number(n).ok_or(DecodeError::UnknownFamily(n))
}

/// Skip the generic netlink header of a message payload.
fn genl_attrs(genl_payload: &[u8]) -> Result<&[u8], DecodeError> {
    genl_payload
        .get(GENL_HDRLEN..)
        .ok_or(DecodeError::Truncated {
            what: "generic netlink header",
            needed: GENL_HDRLEN,
            available: genl_payload.len(),
        })
}

/// The family id in a `CTRL_CMD_NEWFAMILY` reply payload.
pub fn decode_family_id(genl_payload: &[u8]) -> Result<u16, DecodeError> {
    u16_attr(
        genl_attrs(genl_payload)?,
        CTRL_ATTR_FAMILY_ID,
        "CTRL_ATTR_FAMILY_ID",
    )
}

/// A service from one `IPVS_CMD_GET_SERVICE` dump message payload.
pub fn decode_service(genl_payload: &[u8]) -> Result<Service, DecodeError> {
    let nest = need(
        genl_attrs(genl_payload)?,
        CMD_ATTR_SERVICE,
        "IPVS_CMD_ATTR_SERVICE",
    )?;
    let family = family_attr(nest, SVC_ATTR_AF, "IPVS_SVC_ATTR_AF")?;
    let key = match find(nest, SVC_ATTR_FWMARK)? {
        Some(p) => ServiceKey::Fwmark {
            family,
            mark: u32::from_ne_bytes(fixed(p, "IPVS_SVC_ATTR_FWMARK")?),
        },
        None => {
            let number = u16_attr(nest, SVC_ATTR_PROTOCOL, "IPVS_SVC_ATTR_PROTOCOL")?;
            let protocol =
                Protocol::from_number(number).ok_or(DecodeError::UnknownProtocol(number))?;
            let ip = ip_attr(nest, SVC_ATTR_ADDR, family, "IPVS_SVC_ATTR_ADDR")?;
            let port = port_attr(nest, SVC_ATTR_PORT, "IPVS_SVC_ATTR_PORT")?;
            ServiceKey::Socket {
                protocol,
                addr: SocketAddr::new(ip, port),
            }
        }
    };
    let sched = need(nest, SVC_ATTR_SCHED_NAME, "IPVS_SVC_ATTR_SCHED_NAME")?;
    let sched = sched.split(|&b| b == 0).next().unwrap_or_default();
    let scheduler = std::str::from_utf8(sched)
        .ok()
        .and_then(|s| Scheduler::new(s).ok())
        .ok_or(DecodeError::BadSchedulerName)?;
    let flags_raw = fixed::<8>(
        need(nest, SVC_ATTR_FLAGS, "IPVS_SVC_ATTR_FLAGS")?,
        "IPVS_SVC_ATTR_FLAGS",
    )?;
    let flag_bits = u32::from_ne_bytes([flags_raw[0], flags_raw[1], flags_raw[2], flags_raw[3]]);
    let persistence = if flag_bits & ServiceFlags::PERSISTENT_BIT != 0 {
        let timeout = u32_attr(nest, SVC_ATTR_TIMEOUT, "IPVS_SVC_ATTR_TIMEOUT")?;
        let mask = fixed::<4>(
            need(nest, SVC_ATTR_NETMASK, "IPVS_SVC_ATTR_NETMASK")?,
            "IPVS_SVC_ATTR_NETMASK",
        )?;
        let len = match family {
            AddressFamily::Ipv4 => {
                let m = u32::from_be_bytes(mask);
                if m.leading_ones() + m.trailing_zeros() != 32 {
                    return Err(DecodeError::NonContiguousNetmask(m));
                }
                m.leading_ones()
            }
            AddressFamily::Ipv6 => {
                let l = u32::from_ne_bytes(mask);
                if l > 128 {
                    return Err(DecodeError::BadPrefixLength(l));
                }
                l
            }
        };
        let len = u8::try_from(len).map_err(|_| DecodeError::BadPrefixLength(len))?;
        let prefix_len = (len != family.max_prefix_len()).then_some(len);
        Some(Persistence {
            timeout: Duration::from_secs(u64::from(timeout)),
            prefix_len,
        })
    } else {
        None
    };
    Ok(Service {
        key,
        scheduler,
        persistence,
        flags: ServiceFlags::from_bits(flag_bits),
    })
}

/// A destination from one `IPVS_CMD_GET_DEST` dump message payload. The
/// destination's address family comes from its own attribute when present
/// (Linux 4.13+), else from the service's `family`.
pub fn decode_destination(
    genl_payload: &[u8],
    family: AddressFamily,
) -> Result<DestinationStatus, DecodeError> {
    let nest = need(
        genl_attrs(genl_payload)?,
        CMD_ATTR_DEST,
        "IPVS_CMD_ATTR_DEST",
    )?;
    let family = match find(nest, DEST_ATTR_ADDR_FAMILY)? {
        Some(_) => family_attr(nest, DEST_ATTR_ADDR_FAMILY, "IPVS_DEST_ATTR_ADDR_FAMILY")?,
        None => family,
    };
    let ip = ip_attr(nest, DEST_ATTR_ADDR, family, "IPVS_DEST_ATTR_ADDR")?;
    let port = port_attr(nest, DEST_ATTR_PORT, "IPVS_DEST_ATTR_PORT")?;
    let fwd = u32_attr(nest, DEST_ATTR_FWD_METHOD, "IPVS_DEST_ATTR_FWD_METHOD")?;
    let forward = ForwardMethod::from_bits(fwd).ok_or(DecodeError::UnknownForwardMethod(fwd))?;
    let destination = Destination {
        addr: SocketAddr::new(ip, port),
        forward,
        weight: u32_attr(nest, DEST_ATTR_WEIGHT, "IPVS_DEST_ATTR_WEIGHT")?,
        upper_threshold: optional_u32(nest, DEST_ATTR_U_THRESH, "IPVS_DEST_ATTR_U_THRESH")?,
        lower_threshold: optional_u32(nest, DEST_ATTR_L_THRESH, "IPVS_DEST_ATTR_L_THRESH")?,
    };
    Ok(DestinationStatus {
        destination,
        active_connections: optional_u32(
            nest,
            DEST_ATTR_ACTIVE_CONNS,
            "IPVS_DEST_ATTR_ACTIVE_CONNS",
        )?,
        inactive_connections: optional_u32(
            nest,
            DEST_ATTR_INACT_CONNS,
            "IPVS_DEST_ATTR_INACT_CONNS",
        )?,
        persistent_connections: optional_u32(
            nest,
            DEST_ATTR_PERSIST_CONNS,
            "IPVS_DEST_ATTR_PERSIST_CONNS",
        )?,
    })
}

/// `IPVS_STATS_ATTR_*`: inside `IPVS_{SVC,DEST}_ATTR_STATS` the connection
/// and packet counts are u32 and the byte counts u64; inside `_STATS64`
/// (Linux 4.1+) all are u64.
const STATS_ATTR_CONNS: u16 = 1;
const STATS_ATTR_INPKTS: u16 = 2;
const STATS_ATTR_OUTPKTS: u16 = 3;
const STATS_ATTR_INBYTES: u16 = 4;
const STATS_ATTR_OUTBYTES: u16 = 5;

/// The counters of a stats nest; `wide`: every count is a u64 (`_STATS64`).
/// Rates and counters the kernel does not send are left out (0).
fn decode_counters(nest: &[u8], wide: bool) -> Result<Counters, DecodeError> {
    let count = |kind: u16, name: &'static str, always_wide: bool| -> Result<u64, DecodeError> {
        match find(nest, kind)? {
            None => Ok(0),
            Some(p) if wide || always_wide => Ok(u64::from_ne_bytes(fixed(p, name)?)),
            Some(p) => Ok(u64::from(u32::from_ne_bytes(fixed(p, name)?))),
        }
    };
    Ok(Counters {
        connections: count(STATS_ATTR_CONNS, "IPVS_STATS_ATTR_CONNS", false)?,
        packets_in: count(STATS_ATTR_INPKTS, "IPVS_STATS_ATTR_INPKTS", false)?,
        packets_out: count(STATS_ATTR_OUTPKTS, "IPVS_STATS_ATTR_OUTPKTS", false)?,
        bytes_in: count(STATS_ATTR_INBYTES, "IPVS_STATS_ATTR_INBYTES", true)?,
        bytes_out: count(STATS_ATTR_OUTBYTES, "IPVS_STATS_ATTR_OUTBYTES", true)?,
    })
}

/// The counters in a service or destination nest: `_STATS64` when the
/// kernel sends it (the 32-bit counts wrap), else `_STATS`; `None` when
/// neither is there (requests carry none).
fn nest_counters(nest: &[u8], stats: u16, stats64: u16) -> Result<Option<Counters>, DecodeError> {
    if let Some(p) = find(nest, stats64)? {
        return decode_counters(p, true).map(Some);
    }
    find(nest, stats)?
        .map(|p| decode_counters(p, false))
        .transpose()
}

/// The traffic counters of one `IPVS_CMD_GET_SERVICE` dump message payload
/// (the message [`decode_service`] reads the service from).
pub fn decode_service_counters(genl_payload: &[u8]) -> Result<Option<Counters>, DecodeError> {
    let nest = need(
        genl_attrs(genl_payload)?,
        CMD_ATTR_SERVICE,
        "IPVS_CMD_ATTR_SERVICE",
    )?;
    nest_counters(nest, SVC_ATTR_STATS, SVC_ATTR_STATS64)
}

/// The traffic counters of one `IPVS_CMD_GET_DEST` dump message payload
/// (the message [`decode_destination`] reads the destination from).
pub fn decode_destination_counters(genl_payload: &[u8]) -> Result<Option<Counters>, DecodeError> {
    let nest = need(
        genl_attrs(genl_payload)?,
        CMD_ATTR_DEST,
        "IPVS_CMD_ATTR_DEST",
    )?;
    nest_counters(nest, DEST_ATTR_STATS, DEST_ATTR_STATS64)
}

#[cfg(test)]
mod tests;
