//! Virtual MAC interfaces (keepalived's `use_vmac`) owned like addresses,
//! level-triggered: the macvlans wanted (one per instance with a
//! [`crate::driver::VmacSpec`] whose interface exists) against what the
//! kernel has and what the driver created (a record that outlives the
//! process). Missing or different: made (again, with back-off, if that
//! fails; again when deleted by hand). Recorded and no longer wanted
//! (an instance removed by a reload, a crashed run's leftover the new
//! configuration does not want, a stop): deleted, once no address change
//! on it is pending.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use vrrp_core::{Family, Timestamp};

use super::{DriverCore, Effect};
use crate::driver::api::Unbound;
use crate::link::{LinkInfo, OperState};
use crate::vmac::{VmacLink, eui64_link_local, virtual_mac};

/// The first retry of a failed creation waits this long, doubling up to
/// [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A virtual MAC interface to make (or fix) for an instance; report with
/// [`DriverCore::handle_vmac_result`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacOp {
    /// The instance it is for (for logs).
    pub instance: String,
    /// What to make.
    pub link: VmacLink,
}

/// A virtual MAC interface of ours to delete; report with
/// [`DriverCore::handle_vmac_result`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacRemoval {
    /// Its name.
    pub name: String,
    /// Its index.
    pub ifindex: u32,
    /// Its base interface, when known (its ARP settings are put back).
    pub base: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct VmacTable {
    /// Names of the macvlans this driver made (or adopted), recorded.
    owned: BTreeSet<String>,
    dirty: bool,
    /// Made and configured as wanted, at this interface index.
    ready: BTreeMap<String, u32>,
    /// A request is out.
    in_flight: BTreeSet<String>,
    /// Failures: count, when to try again, the last error.
    failed: BTreeMap<String, (u64, Timestamp, String)>,
    /// The base interface of each one made, for its removal.
    base_of: BTreeMap<String, String>,
    /// Stopping: nothing is wanted any more.
    stopping: bool,
}

struct Wanted {
    instance: String,
    base: String,
    mac: [u8; 6],
    family: Family,
    /// IPv6 sent from the macvlan: the router's own link-local address
    /// goes on it.
    needs_link_local: bool,
}

impl DriverCore {
    /// Names of virtual MAC interfaces an earlier run recorded as made by
    /// it (see [`Effect::PersistOwnedLinks`]): the ones the configuration
    /// still wants are reused, the others deleted.
    pub fn adopt_owned_links(&mut self, names: Vec<String>) {
        self.vmacs.owned.extend(names);
    }

    /// The virtual MAC interfaces the driver made and has not deleted.
    pub fn owned_links(&self) -> Vec<String> {
        self.vmacs.owned.iter().cloned().collect()
    }

    /// Requests about virtual MAC interfaces still out, and, while
    /// stopping, interfaces still to delete.
    pub fn pending_link_changes(&self) -> usize {
        let to_delete = if self.vmacs.stopping {
            self.vmacs.owned.len()
        } else {
            0
        };
        self.vmacs.in_flight.len().max(to_delete)
    }

    /// The outcome of an [`Effect::EnsureVmac`] (`ensure`, with the
    /// interface's index) or [`Effect::RemoveVmac`].
    pub fn handle_vmac_result(
        &mut self,
        now: Timestamp,
        name: &str,
        ensure: bool,
        result: Result<u32, String>,
    ) {
        let t = &mut self.vmacs;
        t.in_flight.remove(name);
        match (ensure, result) {
            (true, Ok(ifindex)) => {
                t.failed.remove(name);
                t.ready.insert(name.to_owned(), ifindex);
                if t.owned.insert(name.to_owned()) {
                    t.dirty = true;
                }
                // Until its notification arrives: the interface as made.
                let mac = self.wanted_vmacs().get(name).map(|w| w.mac);
                if self.kernel.link_by_name(name).map(|l| l.ifindex) != Some(ifindex) {
                    self.kernel.upsert_link(LinkInfo {
                        ifindex,
                        name: name.to_owned(),
                        mac,
                        flags: (libc::IFF_UP | libc::IFF_RUNNING) as u32,
                        operstate: OperState::Up,
                        mtu: None,
                    });
                }
                tracing::info!(interface = name, ifindex, "virtual MAC interface ready");
            }
            (false, Ok(_)) => {
                t.failed.remove(name);
                t.ready.remove(name);
                t.base_of.remove(name);
                if t.owned.remove(name) {
                    t.dirty = true;
                }
                if let Some(ifindex) = self.kernel.link_by_name(name).map(|l| l.ifindex) {
                    self.kernel.remove_link(ifindex);
                }
                tracing::info!(interface = name, "virtual MAC interface deleted");
            }
            (ensure, Err(e)) => {
                let failures = t.failed.get(name).map_or(0, |f| f.0) + 1;
                let shift = failures.saturating_sub(1).min(16) as u32;
                let wait = FIRST_RETRY
                    .checked_mul(1u32 << shift)
                    .map_or(MAX_RETRY, |d| d.min(MAX_RETRY));
                tracing::error!(interface = name, ensure, error = %e, retry_in = ?wait, "virtual MAC interface change failed");
                t.failed.insert(name.to_owned(), (failures, now + wait, e));
            }
        }
        self.changed = true;
        self.refresh(now);
    }

    /// When a failed virtual MAC change is to be tried again.
    pub(super) fn vmac_deadline(&self) -> Option<Timestamp> {
        self.vmacs.failed.values().map(|f| f.1).min()
    }

    /// Nothing is wanted any more: every interface of ours goes.
    pub(super) fn stop_vmacs(&mut self, now: Timestamp) {
        self.vmacs.stopping = true;
        self.reconcile_vmacs(now);
    }

    /// Whether the instance's macvlan (if it has one) is made and seen.
    pub(super) fn vmac_binding(&self, spec: &crate::driver::InstanceSpec) -> Result<(), Unbound> {
        let Some(v) = &spec.vmac else {
            return Ok(());
        };
        let seen = self.kernel.link_by_name(&v.name).map(|l| l.ifindex);
        if seen.is_some() && seen == self.vmacs.ready.get(&v.name).copied() {
            return Ok(());
        }
        Err(Unbound::Vmac(self.vmacs.failed.get(&v.name).map_or_else(
            || "being created".to_owned(),
            |f| f.2.clone(),
        )))
    }

    fn wanted_vmacs(&self) -> BTreeMap<String, Wanted> {
        let mut out = BTreeMap::new();
        if self.vmacs.stopping {
            return out;
        }
        for e in self.entries.values() {
            let Some(v) = &e.spec.vmac else {
                continue;
            };
            let vrid = e.spec.config.vrid;
            out.entry(v.name.clone()).or_insert(Wanted {
                instance: e.name.clone(),
                base: e.spec.interface.clone(),
                mac: virtual_mac(e.family, vrid),
                family: e.family,
                needs_link_local: e.family == Family::Ipv6 && !v.xmit_base,
            });
        }
        out
    }

    /// Compares the macvlans wanted with the kernel's and the record, and
    /// asks for what differs.
    pub(super) fn reconcile_vmacs(&mut self, now: Timestamp) {
        let wanted = self.wanted_vmacs();
        for (name, w) in &wanted {
            if self.vmacs.in_flight.contains(name)
                || self.vmacs.failed.get(name).is_some_and(|f| f.1 > now)
            {
                continue;
            }
            let Some(base) = self.kernel.link_by_name(&w.base) else {
                continue;
            };
            let link = self.kernel.link_by_name(name);
            let as_wanted = link.is_some_and(|l| {
                l.mac == Some(w.mac) && self.vmacs.ready.get(name) == Some(&l.ifindex)
            });
            if as_wanted {
                continue;
            }
            let link_local = if w.needs_link_local {
                // RFC 9568 7.4 / keepalived: the router's own link-local
                // address (the base interface's), else one from the base
                // interface's MAC address.
                match self.kernel.source(base.ifindex, Family::Ipv6, |_| false) {
                    Some(std::net::IpAddr::V6(a)) => Some(a),
                    _ => match base.mac {
                        Some(mac) => Some(eui64_link_local(mac)),
                        None => continue,
                    },
                }
            } else {
                None
            };
            if link.is_some() && !self.vmacs.owned.contains(name) {
                tracing::warn!(interface = %name, instance = %w.instance, "an interface of that name exists: making it the virtual MAC interface, as keepalived does");
            }
            let op = VmacOp {
                instance: w.instance.clone(),
                link: VmacLink {
                    name: name.clone(),
                    base: w.base.clone(),
                    base_ifindex: base.ifindex,
                    mac: w.mac,
                    family: w.family,
                    link_local,
                },
            };
            self.vmacs.ready.remove(name);
            self.vmacs.in_flight.insert(name.clone());
            self.vmacs.base_of.insert(name.clone(), w.base.clone());
            self.effects.push_back(Effect::EnsureVmac(op));
        }
        // Ours and not wanted: deleted once no address change on it is
        // pending (its addresses go with it).
        let busy = self.pending_address_changes() > 0;
        let unwanted: Vec<String> = self
            .vmacs
            .owned
            .iter()
            .filter(|n| !wanted.contains_key(*n) && !self.vmacs.in_flight.contains(*n))
            .cloned()
            .collect();
        for name in unwanted {
            if self.vmacs.failed.get(&name).is_some_and(|f| f.1 > now) {
                continue;
            }
            match self.kernel.link_by_name(&name).map(|l| l.ifindex) {
                Some(ifindex) => {
                    if busy {
                        continue;
                    }
                    self.vmacs.in_flight.insert(name.clone());
                    self.effects.push_back(Effect::RemoveVmac(VmacRemoval {
                        name: name.clone(),
                        ifindex,
                        base: self.vmacs.base_of.get(&name).cloned(),
                    }));
                }
                None => {
                    self.vmacs.owned.remove(&name);
                    self.vmacs.ready.remove(&name);
                    self.vmacs.dirty = true;
                }
            }
        }
        if std::mem::take(&mut self.vmacs.dirty) {
            self.effects
                .push_back(Effect::PersistOwnedLinks(self.owned_links()));
            self.changed = true;
        }
    }
}
