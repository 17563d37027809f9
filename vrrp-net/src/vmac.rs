//! Virtual MAC interfaces (keepalived's `use_vmac`): a macvlan on the
//! instance's interface carrying the VRRP virtual router MAC address
//! (RFC 5798 7.3: `00-00-5E-00-01-{VRID}` for IPv4,
//! `00-00-5E-00-02-{VRID}` for IPv6), created, configured and deleted
//! over rtnetlink.
//!
//! Set up as keepalived 2.2.7 sets it up, so that a keepalived peer and an
//! operator see the same thing:
//! - a macvlan in private mode (it hears only frames for its own address
//!   and the link's multicast and broadcast, never a sibling macvlan);
//! - no address generated from its MAC (`addr_gen_mode none`): a
//!   link-local address derived from the shared virtual MAC would be the
//!   same on every router of the VRID (RFC 9568 7.4 wants advertisements
//!   from the router's own link-local address);
//! - IPv4: `arp_ignore=1`, `accept_local=1`, `rp_filter=0`,
//!   `promote_secondaries=1` on the macvlan (it answers ARP only for its
//!   own addresses, and hears adverts from the base interface's subnet
//!   while it has no address of that subnet); IPv6 disabled on it; on the
//!   base interface `arp_ignore=1` and `arp_filter=1` (the base must not
//!   answer ARP for the virtual addresses with its own MAC), restored
//!   when its last macvlan goes;
//! - IPv6: the router's own link-local address (the base interface's)
//!   added to the macvlan, so advertisements leave it from that address.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use neli::consts::nl::NlmF;
use neli::consts::rtnl::Rtm;
use neli::types::Buffer;
use vrrp_core::{Family, Vrid};

use crate::NetlinkError;
use crate::addr::{AddOptions, AddressManager};
use crate::netlink::RtSocket;

/// `IFLA_MACVLAN_MODE` inside `IFLA_INFO_DATA` (linux/if_link.h).
const IFLA_MACVLAN_MODE: u16 = 1;
/// `MACVLAN_MODE_PRIVATE`.
const MACVLAN_MODE_PRIVATE: u32 = 1;
/// `IFLA_INET6_ADDR_GEN_MODE` inside `IFLA_AF_SPEC` / `AF_INET6`.
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
/// `IN6_ADDR_GEN_MODE_NONE`.
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
/// `NLA_F_NESTED`.
const NESTED: u16 = 0x8000;

/// The virtual router MAC address of a VRID (RFC 5798 7.3).
pub fn virtual_mac(family: Family, vrid: Vrid) -> [u8; 6] {
    let kind = if family == Family::Ipv6 { 0x02 } else { 0x01 };
    [0x00, 0x00, 0x5e, 0x00, kind, vrid.get()]
}

/// A link-local address from a MAC address (modified EUI-64, RFC 4291
/// appendix A), as keepalived makes one for a macvlan whose base
/// interface has no link-local address.
pub fn eui64_link_local(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

/// A virtual MAC interface to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacLink {
    /// Its name (keepalived's default: `vrrp.{VRID}`).
    pub name: String,
    /// The base interface's name.
    pub base: String,
    /// The base interface's index.
    pub base_ifindex: u32,
    /// Its MAC address (see [`virtual_mac`]).
    pub mac: [u8; 6],
    /// The family of the instance it serves.
    pub family: Family,
    /// The link-local address to put on it (IPv6 instances that send
    /// from it).
    pub link_local: Option<Ipv6Addr>,
}

/// A base interface's `arp_ignore` and `arp_filter` before its first
/// macvlan of ours, and those macvlans.
type SavedArp = (Option<u32>, Option<u32>, BTreeSet<String>);

/// Creates, configures and deletes virtual MAC interfaces. Remembers the
/// base interfaces' ARP settings it changed, to put them back.
#[derive(Debug)]
pub struct VmacManager {
    socket: RtSocket,
    addresses: AddressManager,
    /// Per base interface: its `arp_ignore` and `arp_filter` before the
    /// first macvlan, and the macvlans of ours on it.
    saved_arp: HashMap<String, SavedArp>,
}

impl VmacManager {
    /// Opens the rtnetlink sockets. Must be called inside a tokio runtime.
    pub fn new() -> Result<Self, NetlinkError> {
        Ok(Self {
            socket: RtSocket::connect(&[])?,
            addresses: AddressManager::new()?,
            saved_arp: HashMap::new(),
        })
    }

    /// Makes `link` exist as described and up: creates it (or, when an
    /// interface of that name exists, sets its MAC and mode), turns off
    /// address generation, sets the sysctls, brings it up and adds the
    /// link-local address. Returns its interface index.
    pub async fn ensure(&mut self, link: &VmacLink) -> Result<u32, NetlinkError> {
        let created = self.create(link).await?;
        let ifindex = match crate::link::ifindex_of(&link.name) {
            Ok(i) => i,
            Err(e) => {
                return Err(NetlinkError::InvalidArgument(format!(
                    "{} vanished after its creation: {e}",
                    link.name
                )));
            }
        };
        if !created {
            // Someone's interface of that name, or ours from an earlier
            // run: make it what we want (keepalived does the same).
            self.update(ifindex, link).await?;
        }
        self.no_addr_gen(ifindex).await?;
        if link.family == Family::Ipv4 {
            for (key, value) in [
                ("arp_ignore", 1),
                ("accept_local", 1),
                ("rp_filter", 0),
                ("promote_secondaries", 1),
            ] {
                set_sysctl("ipv4", &link.name, key, value);
            }
            set_sysctl("ipv6", &link.name, "disable_ipv6", 1);
            self.claim_base_arp(&link.base, &link.name);
            if read_sysctl("ipv4", "all", "rp_filter").is_some_and(|v| v != 0) {
                tracing::warn!(
                    interface = %link.name,
                    "net.ipv4.conf.all.rp_filter is not 0: advertisements to the virtual MAC interface may be dropped"
                );
            }
        } else {
            set_sysctl("ipv6", &link.name, "disable_ipv6", 0);
        }
        self.set_up(ifindex).await?;
        if let Some(ll) = link.link_local {
            // No duplicate address detection: it is the router's own
            // address, already checked on the base interface, and a
            // tentative address cannot send.
            let options = AddOptions {
                no_dad: true,
                ..AddOptions::default()
            };
            self.addresses
                .add(ifindex, IpAddr::V6(ll), 64, &options)
                .await?;
        }
        Ok(ifindex)
    }

    /// Deletes interface `ifindex` (a macvlan of ours on `base`); `false`
    /// when it was already gone. Puts the base's ARP settings back after
    /// its last macvlan.
    pub async fn delete(
        &mut self,
        ifindex: u32,
        name: &str,
        base: Option<&str>,
    ) -> Result<bool, NetlinkError> {
        let msg = Buffer::from(ifinfomsg(ifindex, 0, 0));
        let result = match self
            .socket
            .request_ack("delete link", Rtm::Dellink, NlmF::empty(), msg)
            .await
        {
            Ok(()) => Ok(true),
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::ENODEV => Ok(false),
            Err(e) => Err(e),
        };
        if result.is_ok()
            && let Some(base) = base
        {
            self.release_base_arp(base, name);
        }
        result
    }

    async fn create(&self, link: &VmacLink) -> Result<bool, NetlinkError> {
        let mut msg = ifinfomsg(0, 0, 0);
        push_attr(&mut msg, libc::IFLA_IFNAME, &name_bytes(&link.name)?);
        push_attr(&mut msg, libc::IFLA_LINK, &link.base_ifindex.to_ne_bytes());
        push_attr(&mut msg, libc::IFLA_ADDRESS, &link.mac);
        push_attr(&mut msg, libc::IFLA_LINKINFO | NESTED, &macvlan_info());
        match self
            .socket
            .request_ack(
                "create macvlan",
                Rtm::Newlink,
                NlmF::CREATE | NlmF::EXCL,
                Buffer::from(msg),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::EEXIST => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn update(&self, ifindex: u32, link: &VmacLink) -> Result<(), NetlinkError> {
        let mut msg = ifinfomsg(ifindex, 0, 0);
        push_attr(&mut msg, libc::IFLA_ADDRESS, &link.mac);
        push_attr(&mut msg, libc::IFLA_LINKINFO | NESTED, &macvlan_info());
        self.socket
            .request_ack(
                "update macvlan",
                Rtm::Newlink,
                NlmF::empty(),
                Buffer::from(msg),
            )
            .await
    }

    async fn no_addr_gen(&self, ifindex: u32) -> Result<(), NetlinkError> {
        let mut inet6 = Vec::new();
        push_attr(
            &mut inet6,
            IFLA_INET6_ADDR_GEN_MODE,
            &[IN6_ADDR_GEN_MODE_NONE],
        );
        let mut spec = Vec::new();
        push_attr(&mut spec, libc::AF_INET6 as u16 | NESTED, &inet6);
        let mut msg = ifinfomsg(ifindex, 0, 0);
        push_attr(&mut msg, libc::IFLA_AF_SPEC | NESTED, &spec);
        self.socket
            .request_ack(
                "set addr_gen_mode",
                Rtm::Newlink,
                NlmF::empty(),
                Buffer::from(msg),
            )
            .await
    }

    async fn set_up(&self, ifindex: u32) -> Result<(), NetlinkError> {
        let up = libc::IFF_UP as u32;
        let msg = Buffer::from(ifinfomsg(ifindex, up, up));
        self.socket
            .request_ack("set link up", Rtm::Newlink, NlmF::empty(), msg)
            .await
    }

    fn claim_base_arp(&mut self, base: &str, vmac: &str) {
        let entry = self.saved_arp.entry(base.to_owned()).or_insert_with(|| {
            (
                read_sysctl("ipv4", base, "arp_ignore"),
                read_sysctl("ipv4", base, "arp_filter"),
                BTreeSet::new(),
            )
        });
        entry.2.insert(vmac.to_owned());
        set_sysctl("ipv4", base, "arp_ignore", 1);
        set_sysctl("ipv4", base, "arp_filter", 1);
    }

    fn release_base_arp(&mut self, base: &str, vmac: &str) {
        let Some(entry) = self.saved_arp.get_mut(base) else {
            return;
        };
        entry.2.remove(vmac);
        if !entry.2.is_empty() {
            return;
        }
        let (ignore, filter) = (entry.0, entry.1);
        self.saved_arp.remove(base);
        if let Some(v) = ignore {
            set_sysctl("ipv4", base, "arp_ignore", v);
        }
        if let Some(v) = filter {
            set_sysctl("ipv4", base, "arp_filter", v);
        }
    }
}

/// `IFLA_INFO_KIND "macvlan"`, `IFLA_INFO_DATA { IFLA_MACVLAN_MODE private }`.
fn macvlan_info() -> Vec<u8> {
    let mut data = Vec::new();
    push_attr(
        &mut data,
        IFLA_MACVLAN_MODE,
        &MACVLAN_MODE_PRIVATE.to_ne_bytes(),
    );
    let mut info = Vec::new();
    push_attr(&mut info, libc::IFLA_INFO_KIND, b"macvlan");
    push_attr(&mut info, libc::IFLA_INFO_DATA | NESTED, &data);
    info
}

fn name_bytes(name: &str) -> Result<Vec<u8>, NetlinkError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '\0']) {
        return Err(NetlinkError::InvalidArgument(format!(
            "{name:?} is not a valid interface name"
        )));
    }
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    Ok(bytes)
}

/// `struct ifinfomsg` (family `AF_UNSPEC`).
fn ifinfomsg(ifindex: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut msg = vec![0u8; 4];
    msg.extend_from_slice(&ifindex.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&change.to_ne_bytes());
    msg
}

/// Appends a route attribute, padded to 4 bytes.
fn push_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn sysctl_path(family: &str, interface: &str, key: &str) -> String {
    format!("/proc/sys/net/{family}/conf/{interface}/{key}")
}

fn read_sysctl(family: &str, interface: &str, key: &str) -> Option<u32> {
    std::fs::read_to_string(sysctl_path(family, interface, key))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Best effort, as keepalived: a sysctl that cannot be set is logged.
fn set_sysctl(family: &str, interface: &str, key: &str, value: u32) {
    let path = sysctl_path(family, interface, key);
    if let Err(e) = std::fs::write(&path, format!("{value}\n")) {
        tracing::warn!(path, error = %e, "cannot set a sysctl of a virtual MAC interface");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::attributes;

    #[test]
    fn virtual_macs_follow_rfc_5798_7_3() {
        let Some(vrid) = Vrid::new(51) else { return };
        assert_eq!(virtual_mac(Family::Ipv4, vrid), [0, 0, 0x5e, 0, 1, 51]);
        assert_eq!(virtual_mac(Family::Ipv6, vrid), [0, 0, 0x5e, 0, 2, 51]);
        assert_eq!(
            eui64_link_local([0x02, 0, 0x5e, 0x10, 0x20, 0x30]),
            "fe80::5eff:fe10:2030"
                .parse::<Ipv6Addr>()
                .unwrap_or(Ipv6Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn the_create_request_nests_a_private_macvlan() {
        let info = macvlan_info();
        let attrs: Vec<_> = attributes(&info).collect();
        assert_eq!(attrs[0], (libc::IFLA_INFO_KIND, &b"macvlan"[..]));
        assert_eq!(attrs[1].0, libc::IFLA_INFO_DATA);
        let data: Vec<_> = attributes(attrs[1].1).collect();
        assert_eq!(data, vec![(IFLA_MACVLAN_MODE, &1u32.to_ne_bytes()[..])]);
        assert!(name_bytes("vrrp.51").is_ok());
        assert!(name_bytes("a-name-far-too-long").is_err());
        assert!(name_bytes("").is_err());
    }
}
