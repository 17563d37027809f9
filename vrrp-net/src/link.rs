//! Interface lookups and link / address change events through rtnetlink.
//!
//! [`LinkWatcher`] subscribes to `RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR` and
//! `RTNLGRP_IPV6_IFADDR` and turns the kernel's notifications into
//! [`LinkEvent`]s: a link counts as up when it is administratively up and
//! running (`IFF_UP` and `IFF_RUNNING`, which follows the operational
//! state), as keepalived judges it. Up/down events are emitted on change
//! only (and a renamed link or a new hardware address as
//! [`LinkEvent::Changed`]); address events are emitted for every
//! notification (the kernel
//! repeats `RTM_NEWADDR` e.g. when IPv6 DAD completes), so handling them
//! must be idempotent.

use std::collections::HashMap;

use neli::consts::rtnl::{Arphrd, RtAddrFamily, Rtm};
use neli::rtnl::IfinfomsgBuilder;

pub use crate::addr::IfAddr;
pub use crate::netlink::NetlinkError;
use crate::netlink::{RtSocket, attributes, read_string, read_u32};

const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;
const IFF_LOWER_UP: u32 = 0x1_0000;

/// RFC 2863 operational state (`IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperState {
    /// Unknown (e.g. loopback, some virtual devices).
    Unknown,
    /// Not present.
    NotPresent,
    /// Down.
    Down,
    /// Down because a lower layer is down.
    LowerLayerDown,
    /// Testing.
    Testing,
    /// Dormant.
    Dormant,
    /// Up.
    Up,
    /// A value this crate does not know.
    Other(u8),
}

impl OperState {
    fn from_raw(raw: u8) -> Self {
        match raw {
            0 => Self::Unknown,
            1 => Self::NotPresent,
            2 => Self::Down,
            3 => Self::LowerLayerDown,
            4 => Self::Testing,
            5 => Self::Dormant,
            6 => Self::Up,
            other => Self::Other(other),
        }
    }
}

/// An interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkInfo {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, when it is a 6-byte (Ethernet) address.
    pub mac: Option<[u8; 6]>,
    /// `IFF_*` flags.
    pub flags: u32,
    /// Operational state.
    pub operstate: OperState,
    /// MTU, if reported.
    pub mtu: Option<u32>,
}

impl LinkInfo {
    /// Whether the link is administratively up and running (carrier and
    /// operational state allow traffic): what VRRP tracks.
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0 && self.flags & IFF_RUNNING != 0
    }

    /// Whether the link is administratively up (`IFF_UP`).
    #[must_use]
    pub fn is_admin_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    /// Whether the lower layer (carrier) is up (`IFF_LOWER_UP`).
    #[must_use]
    pub fn has_carrier(&self) -> bool {
        self.flags & IFF_LOWER_UP != 0
    }

    /// Parses an `RTM_NEWLINK` / `RTM_DELLINK` payload; `None` if malformed.
    pub(crate) fn parse(payload: &[u8]) -> Option<Self> {
        // struct ifinfomsg { u8 family, pad; u16 type; i32 index;
        //                    u32 flags, change }
        let ifindex = read_u32(payload.get(4..8)?)?;
        let flags = read_u32(payload.get(8..12)?)?;
        let mut info = Self {
            ifindex,
            name: String::new(),
            mac: None,
            flags,
            operstate: OperState::Unknown,
            mtu: None,
        };
        for (ty, value) in attributes(payload.get(16..)?) {
            match ty {
                libc::IFLA_IFNAME => info.name = read_string(value),
                libc::IFLA_ADDRESS => info.mac = value.try_into().ok(),
                libc::IFLA_OPERSTATE => {
                    info.operstate = OperState::from_raw(*value.first()?);
                }
                libc::IFLA_MTU => info.mtu = read_u32(value),
                _ => {}
            }
        }
        Some(info)
    }
}

/// A change reported by [`LinkWatcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// The link became up and running (or appeared up).
    Up(LinkInfo),
    /// The link went down or stopped running (or appeared down).
    Down(LinkInfo),
    /// The link's name or hardware address changed (its up state did
    /// not).
    Changed(LinkInfo),
    /// The interface was deleted.
    Removed {
        /// Index of the deleted interface.
        ifindex: u32,
        /// Its last known name.
        name: String,
    },
    /// An address was added or updated.
    AddressAdded(IfAddr),
    /// An address was removed.
    AddressRemoved(IfAddr),
}

impl LinkEvent {
    /// The interface the event is about.
    #[must_use]
    pub fn ifindex(&self) -> u32 {
        match self {
            Self::Up(l) | Self::Down(l) | Self::Changed(l) => l.ifindex,
            Self::Removed { ifindex, .. } => *ifindex,
            Self::AddressAdded(a) | Self::AddressRemoved(a) => a.ifindex,
        }
    }
}

/// Lists the interfaces of the calling thread's network namespace.
pub async fn list_links() -> Result<Vec<LinkInfo>, NetlinkError> {
    list_links_on(&RtSocket::connect(&[])?).await
}

/// Looks up an interface by name.
pub async fn link_by_name(name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
    Ok(list_links().await?.into_iter().find(|l| l.name == name))
}

/// Looks up an interface by index.
pub async fn link_by_index(ifindex: u32) -> Result<Option<LinkInfo>, NetlinkError> {
    Ok(list_links()
        .await?
        .into_iter()
        .find(|l| l.ifindex == ifindex))
}

/// Looks up an interface index by name without netlink (`if_nametoindex`).
pub fn ifindex_of(name: &str) -> Result<u32, crate::socket::SocketError> {
    crate::socket::interface_index(name)
}

async fn list_links_on(socket: &RtSocket) -> Result<Vec<LinkInfo>, NetlinkError> {
    let request = IfinfomsgBuilder::default()
        .ifi_family(RtAddrFamily::Unspecified)
        .ifi_type(Arphrd::from(0))
        .build()
        .map_err(|e| NetlinkError::InvalidArgument(e.to_string()))?;
    let messages = socket.dump("list links", Rtm::Getlink, request).await?;
    Ok(messages
        .iter()
        .filter(|m| m.ty == u16::from(Rtm::Newlink))
        .filter_map(|m| LinkInfo::parse(&m.payload))
        .collect())
}

/// Watches links and addresses of the calling thread's network namespace.
#[derive(Debug)]
pub struct LinkWatcher {
    events: RtSocket,
    queries: RtSocket,
    links: HashMap<u32, LinkInfo>,
    pending: std::collections::VecDeque<LinkEvent>,
}

impl LinkWatcher {
    /// Subscribes to link and address notifications, then reads the current
    /// links (subscribing first, so no change falls between the two). Must
    /// be called inside a tokio runtime.
    pub async fn new() -> Result<Self, NetlinkError> {
        let groups = [
            libc::RTNLGRP_LINK,
            libc::RTNLGRP_IPV4_IFADDR,
            libc::RTNLGRP_IPV6_IFADDR,
        ];
        let events = RtSocket::connect(&groups)?;
        let queries = RtSocket::connect(&[])?;
        let mut watcher = Self {
            events,
            queries,
            links: HashMap::new(),
            pending: std::collections::VecDeque::new(),
        };
        watcher.resync().await?;
        watcher.pending.clear();
        Ok(watcher)
    }

    /// The last known state of every link.
    pub fn links(&self) -> impl Iterator<Item = &LinkInfo> {
        self.links.values()
    }

    /// The last known state of link `ifindex`.
    #[must_use]
    pub fn link(&self, ifindex: u32) -> Option<&LinkInfo> {
        self.links.get(&ifindex)
    }

    /// Re-reads every link after notifications were lost
    /// ([`NetlinkError::Overrun`]); the changes found are queued as events
    /// returned by the next calls of [`Self::next`].
    pub async fn resync(&mut self) -> Result<(), NetlinkError> {
        let current = list_links_on(&self.queries).await?;
        let mut seen = HashMap::new();
        for link in current {
            seen.insert(link.ifindex, ());
            self.apply_link(link);
        }
        let gone: Vec<u32> = self
            .links
            .keys()
            .filter(|i| !seen.contains_key(*i))
            .copied()
            .collect();
        for ifindex in gone {
            if let Some(old) = self.links.remove(&ifindex) {
                self.pending.push_back(LinkEvent::Removed {
                    ifindex,
                    name: old.name,
                });
            }
        }
        Ok(())
    }

    /// The next event already received, without waiting.
    pub fn try_next(&mut self) -> Option<LinkEvent> {
        self.pending.pop_front()
    }

    /// Waits for the next event. An [`NetlinkError::Overrun`] means events
    /// were lost: call [`Self::resync`] and go on. Cancel-safe: dropping
    /// the future loses no already-received event.
    pub async fn next(&mut self) -> Result<LinkEvent, NetlinkError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let messages = self.events.recv_notifications().await?;
            for msg in messages {
                self.handle(&msg.ty, &msg.payload);
            }
        }
    }

    fn handle(&mut self, ty: &u16, payload: &[u8]) {
        let ty = *ty;
        if ty == u16::from(Rtm::Newlink) {
            if let Some(link) = LinkInfo::parse(payload) {
                self.apply_link(link);
            }
        } else if ty == u16::from(Rtm::Dellink) {
            if let Some(link) = LinkInfo::parse(payload) {
                // RTM_DELLINK is also sent when a bridge port leaves its
                // bridge (family AF_BRIDGE); only a removal from our table
                // of a real deletion matters, which is AF_UNSPEC.
                if payload.first().copied() == Some(libc::AF_UNSPEC as u8) {
                    self.links.remove(&link.ifindex);
                    self.pending.push_back(LinkEvent::Removed {
                        ifindex: link.ifindex,
                        name: link.name,
                    });
                }
            }
        } else if ty == u16::from(Rtm::Newaddr) {
            if let Some(addr) = IfAddr::parse(payload) {
                self.pending.push_back(LinkEvent::AddressAdded(addr));
            }
        } else if ty == u16::from(Rtm::Deladdr)
            && let Some(addr) = IfAddr::parse(payload)
        {
            self.pending.push_back(LinkEvent::AddressRemoved(addr));
        }
    }

    fn apply_link(&mut self, mut link: LinkInfo) {
        let previous = self.links.get(&link.ifindex);
        // Notifications may omit attributes; keep what we knew.
        if let Some(prev) = previous {
            if link.name.is_empty() {
                link.name.clone_from(&prev.name);
            }
            if link.mac.is_none() {
                link.mac = prev.mac;
            }
        }
        let was_up = previous.map(LinkInfo::is_up);
        let renamed = previous.is_some_and(|p| p.name != link.name || p.mac != link.mac);
        let now_up = link.is_up();
        if was_up != Some(now_up) {
            self.pending.push_back(if now_up {
                LinkEvent::Up(link.clone())
            } else {
                LinkEvent::Down(link.clone())
            });
        } else if renamed {
            self.pending.push_back(LinkEvent::Changed(link.clone()));
        }
        self.links.insert(link.ifindex, link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifinfomsg(index: u32, flags: u32, name: &str) -> Vec<u8> {
        let mut p = vec![0, 0, 1, 0];
        p.extend_from_slice(&index.to_ne_bytes());
        p.extend_from_slice(&flags.to_ne_bytes());
        p.extend_from_slice(&0u32.to_ne_bytes());
        let mut name_bytes = name.as_bytes().to_vec();
        name_bytes.push(0);
        let len = 4 + name_bytes.len();
        p.extend_from_slice(&u16::try_from(len).unwrap_or(0).to_ne_bytes());
        p.extend_from_slice(&libc::IFLA_IFNAME.to_ne_bytes());
        p.extend_from_slice(&name_bytes);
        while p.len() % 4 != 0 {
            p.push(0);
        }
        p.extend_from_slice(&[10, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 0]);
        p
    }

    #[test]
    fn parses_link_and_never_panics_on_truncation() {
        let p = ifinfomsg(7, IFF_UP | IFF_RUNNING, "eth0");
        let link = LinkInfo::parse(&p);
        assert_eq!(link.as_ref().map(|l| l.name.as_str()), Some("eth0"));
        assert_eq!(link.as_ref().and_then(|l| l.mac), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(link.as_ref().map(LinkInfo::is_up), Some(true));
        for cut in 0..p.len() {
            let _ = LinkInfo::parse(&p[..cut]);
        }
    }
}
