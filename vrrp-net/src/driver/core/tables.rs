//! What the core knows of the kernel (links and addresses, as last
//! observed) and its name tables (interfaces, tracked objects).

use std::collections::HashMap;
use std::net::IpAddr;

use vrrp_core::{Family, TrackId};

use crate::addr::IfAddr;
use crate::driver::api::TrackKey;
use crate::link::LinkInfo;

/// An interface name as the router knows it: the router's "interface"
/// key is this, not the kernel's ifindex, so an interface deleted and
/// re-created under the same name is the same interface to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfaceId(pub u32);

/// Interface names, interned.
#[derive(Debug, Default)]
pub(crate) struct Interfaces {
    names: Vec<String>,
    ids: HashMap<String, IfaceId>,
}

impl Interfaces {
    pub(crate) fn intern(&mut self, name: &str) -> IfaceId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = IfaceId(u32::try_from(self.names.len()).unwrap_or(u32::MAX));
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }

    pub(crate) fn name(&self, id: IfaceId) -> &str {
        self.names
            .get(id.0 as usize)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// The links and addresses of the namespace as last observed (a dump,
/// then events; a later dump replaces everything).
#[derive(Debug, Default)]
pub(crate) struct Kernel {
    links: HashMap<u32, LinkInfo>,
    by_name: HashMap<String, u32>,
    /// Per ifindex, in the kernel's order (an IPv4 subnet's primary
    /// address before its secondaries).
    addrs: HashMap<u32, Vec<IfAddr>>,
}

impl Kernel {
    pub(crate) fn replace(&mut self, links: Vec<LinkInfo>, addrs: Vec<IfAddr>) {
        self.links.clear();
        self.by_name.clear();
        self.addrs.clear();
        for l in links {
            self.upsert_link(l);
        }
        for a in addrs {
            self.add_address(a);
        }
    }

    pub(crate) fn upsert_link(&mut self, mut link: LinkInfo) {
        if let Some(prev) = self.links.get(&link.ifindex) {
            if link.name.is_empty() {
                link.name.clone_from(&prev.name);
            }
            if link.mac.is_none() {
                link.mac = prev.mac;
            }
            if prev.name != link.name && self.by_name.get(&prev.name) == Some(&link.ifindex) {
                self.by_name.remove(&prev.name);
            }
        }
        if !link.name.is_empty() {
            self.by_name.insert(link.name.clone(), link.ifindex);
        }
        self.links.insert(link.ifindex, link);
    }

    pub(crate) fn remove_link(&mut self, ifindex: u32) {
        if let Some(old) = self.links.remove(&ifindex)
            && self.by_name.get(&old.name) == Some(&ifindex)
        {
            self.by_name.remove(&old.name);
        }
        self.addrs.remove(&ifindex);
    }

    pub(crate) fn add_address(&mut self, a: IfAddr) {
        let list = self.addrs.entry(a.ifindex).or_default();
        match list.iter_mut().find(|x| x.addr == a.addr) {
            Some(x) => *x = a,
            None => list.push(a),
        }
    }

    pub(crate) fn remove_address(&mut self, ifindex: u32, addr: IpAddr) {
        if let Some(list) = self.addrs.get_mut(&ifindex) {
            list.retain(|x| x.addr != addr);
        }
    }

    /// The name of the link `ifindex`, if known.
    pub(crate) fn link_name(&self, ifindex: u32) -> Option<&str> {
        self.links.get(&ifindex).map(|l| l.name.as_str())
    }

    pub(crate) fn link_by_name(&self, name: &str) -> Option<&LinkInfo> {
        self.by_name.get(name).and_then(|i| self.links.get(i))
    }

    /// The address `addr` on `ifindex`, if present (whatever its prefix).
    pub(crate) fn address(&self, ifindex: u32, addr: IpAddr) -> Option<&IfAddr> {
        self.addrs.get(&ifindex)?.iter().find(|a| a.addr == addr)
    }

    /// The address to advertise from (RFC 5798 5.1.1.1 / 5.1.2.1): the
    /// primary IPv4 address (the first one that is not secondary), or the
    /// IPv6 link-local address once duplicate address detection is done.
    /// Addresses for which `virtual_address` is true (the ones the driver
    /// added) are never chosen.
    pub(crate) fn source(
        &self,
        ifindex: u32,
        family: Family,
        virtual_address: impl Fn(IpAddr) -> bool,
    ) -> Option<IpAddr> {
        let list = self.addrs.get(&ifindex)?;
        match family {
            Family::Ipv4 => {
                let mut v4 = list
                    .iter()
                    .filter(|a| a.addr.is_ipv4() && !virtual_address(a.addr));
                let first = v4.clone().next();
                v4.find(|a| !a.is_secondary()).or(first).map(|a| a.addr)
            }
            _ => list
                .iter()
                .find(|a| a.is_ipv6_link_local() && !a.is_tentative())
                .map(|a| a.addr),
        }
    }
}

/// What a core track id stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TrackName {
    /// A public key.
    Key(TrackKey),
    /// An instance's binding (interface, source, socket): up when the
    /// instance can run.
    Binding(String),
}

/// Core [`TrackId`]s allocated for [`TrackName`]s, and the last reported
/// state of the caller's objects.
#[derive(Debug, Default)]
pub(crate) struct Tracks {
    ids: HashMap<TrackName, TrackId>,
    names: Vec<TrackName>,
    user_state: HashMap<TrackId, bool>,
}

impl Tracks {
    pub(crate) fn id(&mut self, name: TrackName) -> TrackId {
        if let Some(id) = self.ids.get(&name) {
            return *id;
        }
        let id = TrackId(u32::try_from(self.names.len()).unwrap_or(u32::MAX));
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    pub(crate) fn get(&self, name: &TrackName) -> Option<TrackId> {
        self.ids.get(name).copied()
    }

    pub(crate) fn name(&self, id: TrackId) -> Option<&TrackName> {
        self.names.get(id.0 as usize)
    }

    /// The caller's object's last reported state, if any.
    pub(crate) fn user_state(&self, user: TrackId) -> Option<bool> {
        self.user_state.get(&user).copied()
    }

    pub(crate) fn set_user_state(&mut self, user: TrackId, up: bool) {
        self.user_state.insert(user, up);
    }

    /// The interface tracks, with their names.
    pub(crate) fn interfaces(&self) -> impl Iterator<Item = (&str, TrackId)> {
        self.ids.iter().filter_map(|(n, id)| match n {
            TrackName::Key(TrackKey::Interface(name)) => Some((name.as_str(), *id)),
            _ => None,
        })
    }
}
