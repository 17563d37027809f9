//! Adding, removing and listing interface addresses through rtnetlink.
//!
//! Adding an address that is already there and removing one that is not
//! are successes (reported as `false`), so a driver can repeat them, e.g.
//! when removing a virtual address left over by a crashed earlier run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Ifa, RtAddrFamily, RtScope, Rtm};
use neli::rtnl::{Ifaddrmsg, IfaddrmsgBuilder, Rtattr, RtattrBuilder};
use neli::types::{Buffer, RtBuffer};

pub use crate::netlink::NetlinkError;
use crate::netlink::{RtSocket, attributes, read_string, read_u32};

const IFA_F_NODAD: u32 = 0x02;
const IFA_F_TENTATIVE: u32 = 0x40;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_SECONDARY: u32 = 0x01;
const IFA_F_DEPRECATED: u32 = 0x20;
/// The kernel's "forever" lifetime (`INFINITY_LIFE_TIME`).
const FOREVER: u32 = u32::MAX;
/// Longest label the kernel stores (IFNAMSIZ - 1).
const MAX_LABEL_LEN: usize = 15;

/// Scope of an address (`ifa_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddrScope {
    /// Global (`RT_SCOPE_UNIVERSE`).
    Universe,
    /// Site-local (`RT_SCOPE_SITE`).
    Site,
    /// Link-local (`RT_SCOPE_LINK`).
    Link,
    /// Host (`RT_SCOPE_HOST`), e.g. loopback.
    Host,
    /// Any other value.
    Other(u8),
}

impl AddrScope {
    /// The scope of a raw `ifa_scope` value.
    #[must_use]
    pub fn from_raw(raw: u8) -> Self {
        match raw {
            0 => Self::Universe,
            200 => Self::Site,
            253 => Self::Link,
            254 => Self::Host,
            other => Self::Other(other),
        }
    }

    /// The raw `ifa_scope` value.
    #[must_use]
    pub fn raw(self) -> u8 {
        match self {
            Self::Universe => 0,
            Self::Site => 200,
            Self::Link => 253,
            Self::Host => 254,
            Self::Other(other) => other,
        }
    }
}

/// One address of an interface, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IfAddr {
    /// Interface index.
    pub ifindex: u32,
    /// The address (`IFA_LOCAL` for IPv4, `IFA_ADDRESS` for IPv6).
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// IPv4 label (e.g. `eth0:vip`), if any.
    pub label: Option<String>,
    /// Scope.
    pub scope: AddrScope,
    /// `IFA_F_*` flags (from `IFA_FLAGS` when present).
    pub flags: u32,
    /// IPv4 broadcast address (`IFA_BROADCAST`), if any.
    pub broadcast: Option<Ipv4Addr>,
}

impl IfAddr {
    /// Whether this is an IPv6 link-local address (fe80::/10).
    #[must_use]
    pub fn is_ipv6_link_local(&self) -> bool {
        matches!(self.addr, IpAddr::V6(a) if is_link_local_v6(a))
    }

    /// Whether IPv6 duplicate address detection is still running (the
    /// address cannot be used as a source yet) or has failed.
    #[must_use]
    pub fn is_tentative(&self) -> bool {
        self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0
    }

    /// Whether the kernel marks this IPv4 address as secondary.
    #[must_use]
    pub fn is_secondary(&self) -> bool {
        self.flags & IFA_F_SECONDARY != 0
    }

    /// Whether the address is deprecated (preferred lifetime over).
    #[must_use]
    pub fn is_deprecated(&self) -> bool {
        self.flags & IFA_F_DEPRECATED != 0
    }

    /// Parses an `RTM_NEWADDR` / `RTM_DELADDR` payload; `None` if malformed
    /// or of an unknown family.
    pub(crate) fn parse(payload: &[u8]) -> Option<Self> {
        // struct ifaddrmsg { u8 family, prefixlen, flags, scope; u32 index }
        let family = *payload.first()?;
        let prefix_len = *payload.get(1)?;
        let mut flags = u32::from(*payload.get(2)?);
        let scope = AddrScope::from_raw(*payload.get(3)?);
        let ifindex = read_u32(payload.get(4..8)?)?;
        let mut address = None;
        let mut local = None;
        let mut label = None;
        let mut broadcast = None;
        for (ty, value) in attributes(payload.get(8..)?) {
            match ty {
                libc::IFA_BROADCAST => {
                    broadcast = match parse_ip(family, value) {
                        Some(IpAddr::V4(b)) => Some(b),
                        _ => None,
                    }
                }
                libc::IFA_ADDRESS => address = parse_ip(family, value),
                libc::IFA_LOCAL => local = parse_ip(family, value),
                libc::IFA_LABEL => label = Some(read_string(value)),
                libc::IFA_FLAGS => flags = read_u32(value).unwrap_or(flags),
                _ => {}
            }
        }
        // For IPv4, IFA_LOCAL is the address and IFA_ADDRESS the peer on
        // point-to-point links; IPv6 sends IFA_ADDRESS only (RFC-less
        // kernel convention, see rtnetlink(7)).
        let addr = local.or(address)?;
        Some(Self {
            ifindex,
            addr,
            prefix_len,
            label,
            scope,
            flags,
            broadcast,
        })
    }
}

fn is_link_local_v6(addr: Ipv6Addr) -> bool {
    (addr.segments()[0] & 0xffc0) == 0xfe80
}

fn parse_ip(family: u8, bytes: &[u8]) -> Option<IpAddr> {
    match i32::from(family) {
        libc::AF_INET => {
            let octets: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
            Some(IpAddr::from(octets))
        }
        libc::AF_INET6 => {
            let octets: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
            Some(IpAddr::from(octets))
        }
        _ => None,
    }
}

/// What keepalived lets a virtual or static address carry besides its
/// device and label (its `scope`, `brd`, `peer` and `preferred_lft`
/// words), as they go into the `RTM_NEWADDR` message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrAttrs {
    /// `ifa_scope` (IPv4 only; the kernel works out an IPv6 address's
    /// scope itself). `None`: global, or link for an IPv6 link-local one.
    pub scope: Option<u8>,
    /// IPv4 broadcast address (`IFA_BROADCAST`); none when `None`, as
    /// keepalived adds none unless told.
    pub broadcast: Option<Ipv4Addr>,
    /// The other end of a point-to-point address (`IFA_ADDRESS`): the
    /// prefix length then applies to the peer, as with `ip addr add A
    /// peer P/LEN`.
    pub peer: Option<IpAddr>,
    /// IPv6 preferred lifetime in seconds (`IFA_CACHEINFO`, the valid one
    /// forever); `Some(0)` makes the address deprecated, so it is not
    /// chosen as a source address. `None` (or `u32::MAX`): forever.
    /// Ignored for IPv4, as keepalived ignores it.
    pub preferred_lft: Option<u32>,
}

impl AddrAttrs {
    /// Whether `found`, an address the kernel reports with the same
    /// address, was added with these attributes as far as the kernel
    /// tells: the scope and broadcast of an IPv4 address. (The kernel
    /// changes neither in place, so a difference means someone replaced
    /// the address.)
    #[must_use]
    pub fn matches(&self, found: &IfAddr) -> bool {
        if !found.addr.is_ipv4() {
            return true;
        }
        found.scope.raw() == self.scope.unwrap_or(0) && found.broadcast == self.broadcast
    }
}

/// Options of [`AddressManager::add`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddOptions {
    /// IPv4 label (`IFA_LABEL`), at most 15 bytes; by convention it starts
    /// with the interface name (`eth0:vip`). Not allowed for IPv6.
    pub label: Option<String>,
    /// Skip IPv6 duplicate address detection (`IFA_F_NODAD`), as keepalived
    /// does for virtual IPv6 addresses so they are usable at once. Ignored
    /// for IPv4.
    pub no_dad: bool,
    /// Scope, broadcast, peer and preferred lifetime.
    pub attrs: AddrAttrs,
}

/// A handle for address changes, holding one rtnetlink socket opened in the
/// calling thread's network namespace. Cheap to create; requests on one
/// handle are serialised.
#[derive(Debug)]
pub struct AddressManager {
    socket: RtSocket,
}

impl AddressManager {
    /// Opens the rtnetlink socket. Must be called inside a tokio runtime.
    pub fn new() -> Result<Self, NetlinkError> {
        Ok(Self {
            socket: RtSocket::connect(&[])?,
        })
    }

    /// Adds `addr/prefix_len` to interface `ifindex`. Returns `true` if the
    /// address was added, `false` if it was already there (EEXIST).
    pub async fn add(
        &self,
        ifindex: u32,
        addr: IpAddr,
        prefix_len: u8,
        options: &AddOptions,
    ) -> Result<bool, NetlinkError> {
        let msg = build_ifaddrmsg(ifindex, addr, prefix_len, options)?;
        match self
            .socket
            .request_ack("add address", Rtm::Newaddr, NlmF::CREATE | NlmF::EXCL, msg)
            .await
        {
            Ok(()) => Ok(true),
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::EEXIST => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Removes `addr/prefix_len` from interface `ifindex`. Returns `true` if
    /// it was removed, `false` if it was not there (EADDRNOTAVAIL).
    pub async fn remove(
        &self,
        ifindex: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<bool, NetlinkError> {
        self.remove_peer(ifindex, addr, prefix_len, None).await
    }

    /// Like [`AddressManager::remove`] for a point-to-point address
    /// added with `peer` (the kernel matches the peer too).
    pub async fn remove_peer(
        &self,
        ifindex: u32,
        addr: IpAddr,
        prefix_len: u8,
        peer: Option<IpAddr>,
    ) -> Result<bool, NetlinkError> {
        let options = AddOptions {
            attrs: AddrAttrs {
                peer,
                ..AddrAttrs::default()
            },
            ..AddOptions::default()
        };
        let msg = build_ifaddrmsg(ifindex, addr, prefix_len, &options)?;
        match self
            .socket
            .request_ack("remove address", Rtm::Deladdr, NlmF::empty(), msg)
            .await
        {
            Ok(()) => Ok(true),
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::EADDRNOTAVAIL => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Lists the addresses of interface `ifindex`, or of every interface
    /// when `None`, in kernel order (for IPv4 the primary address of a
    /// subnet comes before its secondaries).
    pub async fn list(&self, ifindex: Option<u32>) -> Result<Vec<IfAddr>, NetlinkError> {
        let request = IfaddrmsgBuilder::default()
            .ifa_family(RtAddrFamily::Unspecified)
            .ifa_prefixlen(0)
            .ifa_scope(RtScope::Universe)
            .ifa_index(0)
            .build()
            .map_err(|e| NetlinkError::InvalidArgument(e.to_string()))?;
        let messages = self
            .socket
            .dump("list addresses", Rtm::Getaddr, request)
            .await?;
        Ok(messages
            .iter()
            .filter(|m| m.ty == u16::from(Rtm::Newaddr))
            .filter_map(|m| IfAddr::parse(&m.payload))
            .filter(|a| ifindex.is_none_or(|i| a.ifindex == i))
            .collect())
    }

    /// The primary IPv4 address of `ifindex`: the first non-secondary
    /// IPv4 address the kernel lists (RFC 5798 5.1.1.1 source address).
    pub async fn primary_ipv4(&self, ifindex: u32) -> Result<Option<IfAddr>, NetlinkError> {
        let addrs = self.list(Some(ifindex)).await?;
        let mut v4 = addrs.into_iter().filter(|a| a.addr.is_ipv4());
        let mut first = None;
        for a in v4.by_ref() {
            if !a.is_secondary() {
                return Ok(Some(a));
            }
            first.get_or_insert(a);
        }
        Ok(first)
    }

    /// The usable (not tentative) IPv6 link-local address of `ifindex`
    /// (RFC 5798 5.1.2.1 source address).
    pub async fn ipv6_link_local(&self, ifindex: u32) -> Result<Option<IfAddr>, NetlinkError> {
        let addrs = self.list(Some(ifindex)).await?;
        Ok(addrs
            .into_iter()
            .find(|a| a.is_ipv6_link_local() && !a.is_tentative()))
    }
}

fn build_ifaddrmsg(
    ifindex: u32,
    addr: IpAddr,
    prefix_len: u8,
    options: &AddOptions,
) -> Result<Ifaddrmsg, NetlinkError> {
    let (family, max_prefix, octets, scope) = match addr {
        IpAddr::V4(a) => (
            RtAddrFamily::Inet,
            32,
            a.octets().to_vec(),
            options.attrs.scope.map_or(RtScope::Universe, RtScope::from),
        ),
        IpAddr::V6(a) => {
            let scope = if is_link_local_v6(a) {
                RtScope::Link
            } else {
                RtScope::Universe
            };
            (RtAddrFamily::Inet6, 128, a.octets().to_vec(), scope)
        }
    };
    if prefix_len > max_prefix {
        return Err(NetlinkError::InvalidArgument(format!(
            "prefix length {prefix_len} for {addr}"
        )));
    }
    let mut attrs = RtBuffer::new();
    attrs.push(rtattr(Ifa::Local, &octets)?);
    // IFA_ADDRESS is the peer of a point-to-point address, else the
    // address itself.
    let peer = match (addr, options.attrs.peer) {
        (_, None) => octets.clone(),
        (IpAddr::V4(_), Some(IpAddr::V4(p))) => p.octets().to_vec(),
        (IpAddr::V6(_), Some(IpAddr::V6(p))) => p.octets().to_vec(),
        (_, Some(p)) => {
            return Err(NetlinkError::InvalidArgument(format!(
                "peer {p} is not of the family of {addr}"
            )));
        }
    };
    attrs.push(rtattr(Ifa::Address, &peer)?);
    if let Some(brd) = options.attrs.broadcast {
        if addr.is_ipv6() {
            return Err(NetlinkError::InvalidArgument(
                "IPv6 addresses have no broadcast address".into(),
            ));
        }
        attrs.push(rtattr(Ifa::Broadcast, &brd.octets())?);
    }
    if let Some(lft) = options.attrs.preferred_lft.filter(|l| *l != FOREVER)
        && addr.is_ipv6()
    {
        // struct ifa_cacheinfo { u32 ifa_prefered, ifa_valid, cstamp, tstamp }
        let mut info = Vec::with_capacity(16);
        info.extend_from_slice(&lft.to_ne_bytes());
        info.extend_from_slice(&FOREVER.to_ne_bytes());
        info.extend_from_slice(&[0; 8]);
        attrs.push(rtattr(Ifa::Cacheinfo, &info)?);
    }
    if let Some(label) = &options.label {
        if addr.is_ipv6() {
            return Err(NetlinkError::InvalidArgument(
                "IPv6 addresses have no label".into(),
            ));
        }
        if label.is_empty() || label.len() > MAX_LABEL_LEN || label.contains('\0') {
            return Err(NetlinkError::InvalidArgument(format!("label {label:?}")));
        }
        let mut bytes = label.as_bytes().to_vec();
        bytes.push(0);
        attrs.push(rtattr(Ifa::Label, &bytes)?);
    }
    if options.no_dad && addr.is_ipv6() {
        attrs.push(rtattr(Ifa::Flags, &IFA_F_NODAD.to_ne_bytes())?);
    }
    IfaddrmsgBuilder::default()
        .ifa_family(family)
        .ifa_prefixlen(prefix_len)
        .ifa_scope(scope)
        .ifa_index(ifindex)
        .rtattrs(attrs)
        .build()
        .map_err(|e| NetlinkError::InvalidArgument(e.to_string()))
}

fn rtattr(ty: Ifa, payload: &[u8]) -> Result<Rtattr<Ifa, Buffer>, NetlinkError> {
    RtattrBuilder::default()
        .rta_type(ty)
        .rta_payload(Buffer::from(payload))
        .build()
        .map_err(|e| NetlinkError::InvalidArgument(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ipv4_with_label() {
        let mut p = vec![libc::AF_INET as u8, 24, 0x80, 0];
        p.extend_from_slice(&3u32.to_ne_bytes());
        p.extend_from_slice(&[8, 0, 2, 0, 192, 0, 2, 100]); // IFA_LOCAL
        p.extend_from_slice(&[8, 0, 1, 0, 192, 0, 2, 100]); // IFA_ADDRESS
        p.extend_from_slice(&[9, 0, 3, 0, b'e', b'0', b':', b'1', 0, 0, 0, 0]);
        let a = IfAddr::parse(&p);
        let a = a.as_ref();
        assert_eq!(a.map(|a| a.ifindex), Some(3));
        assert_eq!(a.map(|a| a.addr), Some(IpAddr::from([192, 0, 2, 100])));
        assert_eq!(a.and_then(|a| a.label.clone()).as_deref(), Some("e0:1"));
        for cut in 0..p.len() {
            let _ = IfAddr::parse(&p[..cut]);
        }
    }

    #[test]
    fn bad_arguments_are_refused_before_sending() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        let labelled = AddOptions {
            label: Some("eth0:1".into()),
            ..AddOptions::default()
        };
        assert!(build_ifaddrmsg(1, v6, 129, &AddOptions::default()).is_err());
        assert!(build_ifaddrmsg(1, v6, 64, &labelled).is_err());
        let v4 = IpAddr::from([192, 0, 2, 1]);
        assert!(build_ifaddrmsg(1, v4, 33, &AddOptions::default()).is_err());
        let long = AddOptions {
            label: Some("a-label-that-is-too-long".into()),
            ..AddOptions::default()
        };
        assert!(build_ifaddrmsg(1, v4, 24, &long).is_err());
        assert!(build_ifaddrmsg(1, v4, 24, &labelled).is_ok());
    }
}
