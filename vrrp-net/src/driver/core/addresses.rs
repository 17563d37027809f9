//! Addresses reconciled level-triggered: what should be on each
//! interface (every virtual address of every master, bound instance)
//! against what the kernel has and what the driver added. Adds what is
//! missing, again with back-off if it fails; removes only what the driver
//! added (or, on request, foreign copies of a virtual address, never an
//! owner's or a source address); reports the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use vrrp_core::{InstanceId, State, Timestamp, VirtualAddress};

use super::{
    AddressOp, Announcement, DriverCore, Echo, Echoes, Effect, FIRST_RETRY, MAX_RETRY, OwnedAddress,
};
use crate::addr::{AddrAttrs, IfAddr};
use crate::driver::api::{ForeignAddressPolicy, Vip};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct VipKey {
    pub(super) device: String,
    pub(super) addr: IpAddr,
    pub(super) prefix_len: u8,
}

impl From<&OwnedAddress> for VipKey {
    fn from(o: &OwnedAddress) -> Self {
        VipKey {
            device: o.device.clone(),
            addr: o.addr,
            prefix_len: o.prefix_len,
        }
    }
}

impl VipKey {
    pub(super) fn owned(&self) -> OwnedAddress {
        OwnedAddress {
            device: self.device.clone(),
            addr: self.addr,
            prefix_len: self.prefix_len,
        }
    }

    pub(super) fn address(&self) -> VirtualAddress {
        VirtualAddress {
            addr: self.addr,
            prefix_len: self.prefix_len,
        }
    }
}

/// How an address is wanted: its label and attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct VipWant {
    pub(super) label: Option<String>,
    pub(super) attrs: AddrAttrs,
}

/// The static addresses of a configuration by key (the first of several
/// with one key wins); those without a device are left out, logged.
pub(super) fn static_vips(list: &[Vip]) -> BTreeMap<VipKey, VipWant> {
    let mut out = BTreeMap::new();
    for v in list {
        let Some(device) = v.device.clone() else {
            tracing::error!(address = %v.address.addr, "static address without a device; ignored");
            continue;
        };
        let key = VipKey {
            device,
            addr: v.address.addr,
            prefix_len: v.address.prefix_len,
        };
        out.entry(key).or_insert_with(|| VipWant {
            label: v.label.clone(),
            attrs: v.attrs,
        });
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpKind {
    Add,
    Remove,
}

/// What the core keeps per virtual address key.
#[derive(Debug, Default)]
pub(super) struct VipTrack {
    pub(super) in_flight: Option<OpKind>,
    pub(super) retry_at: Option<Timestamp>,
    pub(super) failures: u64,
    pub(super) last_error: Option<String>,
    /// Seen present while wanted: a later absence is a removal from
    /// outside.
    pub(super) present: bool,
    /// Being put back after a removal from outside: announce it once added.
    pub(super) restore: bool,
    /// Reported as foreign (until it goes or becomes wanted).
    pub(super) conflict: bool,
    /// Times put back: removed from outside, or found changed, while
    /// wanted.
    pub(super) restored: u64,
    /// Removal scheduled at start-up: a leftover of an earlier run.
    pub(super) leftover: bool,
    /// When the last change of ours finished.
    pub(super) changed_at: Option<Timestamp>,
    /// While our add of it is in flight: the kernel reported the address
    /// added (our add, done; its acknowledgement still to be read).
    pub(super) added_in_flight: bool,
    /// ... and then removed: the acknowledgement, coming after, must not
    /// make it look present again (it went, and is put back). A removal
    /// reported before the kernel reported it added is an earlier one's
    /// (our own removal of a drifted address, say) and does not count.
    pub(super) removed_in_flight: bool,
    /// While our removal is in flight: the kernel reported the address
    /// removed (our removal's own notification, read before its answer).
    pub(super) gone_in_flight: bool,
    /// Our changes answered before the kernel's notification of them was
    /// read, oldest first, with when they were answered. The answers come
    /// from the kernel worker's socket and the notifications on another,
    /// so a notification can be read after the answer to a later change:
    /// our removal's, read after our add that followed it, would say the
    /// address is gone when it is there. A notice of the kind of one of
    /// these is its echo; it is not applied while a later change of ours
    /// is still to be echoed (the table already holds that one). A notice
    /// of another kind is someone else's.
    pub(super) echoes: Echoes,
}

impl DriverCore {
    /// The outcome of an [`Effect::AddAddress`] (`add`) or
    /// [`Effect::RemoveAddress`]: `Ok(true)` done, `Ok(false)` it already
    /// was so (EEXIST / EADDRNOTAVAIL), or the error.
    pub fn handle_address_result(
        &mut self,
        now: Timestamp,
        op: &AddressOp,
        add: bool,
        result: Result<bool, String>,
    ) {
        let key = VipKey {
            device: op.device.clone(),
            addr: op.address.addr,
            prefix_len: op.address.prefix_len,
        };
        let track = self.vips.entry(key.clone()).or_default();
        track.in_flight = None;
        track.changed_at = Some(now);
        if let Some(at) = track.retry_at.take() {
            self.retries.remove(&(at, key.clone()));
        }
        let added_seen = std::mem::take(&mut track.added_in_flight);
        let removed_in_flight = std::mem::take(&mut track.removed_in_flight);
        let gone_seen = std::mem::take(&mut track.gone_in_flight);
        match (add, result) {
            (true, Ok(added)) => {
                if added && !added_seen {
                    track.echoes.push(true, now);
                }
                track.failures = 0;
                track.last_error = None;
                track.present = true;
                let restore = std::mem::take(&mut track.restore);
                if removed_in_flight {
                    // Added, then removed by someone before this answer
                    // was read: the kernel's notifications already told
                    // the table; the reconciliation below puts it back.
                    tracing::warn!(address = %op.address.addr, device = %op.device, "virtual address removed from outside while being added");
                } else {
                    self.kernel.add_address(synthetic_address(op));
                }
                if added {
                    self.owned.insert(key.clone());
                    self.owned_dirty = true;
                } else {
                    tracing::info!(address = %op.address.addr, device = %op.device, "virtual address was already there; not recording it as ours");
                }
                if restore {
                    self.announce_restored(&key);
                }
            }
            (false, Ok(removed)) => {
                if removed && !gone_seen {
                    track.echoes.push(false, now);
                }
                track.failures = 0;
                track.last_error = None;
                if std::mem::take(&mut track.leftover) {
                    self.counters.leftovers_removed += 1;
                    tracing::info!(address = %op.address.addr, device = %op.device, "removed an address an earlier run left behind");
                }
                self.kernel.remove_address(op.ifindex, op.address.addr);
                if self.owned.remove(&key) {
                    self.owned_dirty = true;
                }
            }
            (add, Err(e)) => {
                track.failures += 1;
                let wait = retry_delay(track.failures);
                track.retry_at = Some(now + wait);
                self.retries.insert((now + wait, key.clone()));
                self.counters.address_errors += 1;
                tracing::error!(address = %op.address.addr, device = %op.device, add, error = %e, retry_in = ?wait, failures = track.failures, "address change failed");
                track.last_error = Some(e);
            }
        }
        self.changed = true;
        self.reconcile_key(now, &key);
        self.drain(now);
    }

    /// Notes an address the kernel reported added (`added`) or removed
    /// while our add of it is in flight (see [`VipTrack::removed_in_flight`]).
    pub(super) fn note_in_flight(&mut self, address: &IfAddr, added: bool) {
        let Some(device) = self.kernel.link_name(address.ifindex) else {
            return;
        };
        let key = VipKey {
            device: device.to_owned(),
            addr: address.addr,
            prefix_len: address.prefix_len,
        };
        let Some(track) = self.vips.get_mut(&key) else {
            return;
        };
        match track.in_flight {
            Some(OpKind::Add) => {
                if added {
                    track.added_in_flight = true;
                } else if track.added_in_flight {
                    track.removed_in_flight = true;
                }
            }
            Some(OpKind::Remove) if !added => track.gone_in_flight = true,
            _ => {}
        }
    }

    /// Whether an address notification is the echo of one of our changes
    /// already answered (see [`VipTrack::echoes`]; consumed, with those
    /// before it), and whether a later change of ours, also answered, has
    /// made it outdated.
    pub(super) fn echo_of_ours(&mut self, now: Timestamp, address: &IfAddr, added: bool) -> Echo {
        let Some(device) = self.kernel.link_name(address.ifindex) else {
            return Echo::None;
        };
        let key = VipKey {
            device: device.to_owned(),
            addr: address.addr,
            prefix_len: address.prefix_len,
        };
        let Some(track) = self.vips.get_mut(&key) else {
            return Echo::None;
        };
        if track.echoes.expire(now) > 0 {
            tracing::debug!(address = %key.addr, device = %key.device, "the notification of an address change of ours never came");
        }
        track.echoes.take(added)
    }

    /// Notifications were lost: no echo is to be waited for.
    pub(super) fn forget_echoes(&mut self) {
        for track in self.vips.values_mut() {
            track.echoes.clear();
        }
    }

    pub(super) fn reconcile_all(&mut self, now: Timestamp) {
        let mut keys: BTreeSet<VipKey> = self.vip_index.keys().cloned().collect();
        keys.extend(self.owned.iter().cloned());
        keys.extend(self.static_vips.keys().cloned());
        for key in keys {
            self.reconcile_key(now, &key);
        }
    }

    pub(super) fn observed(&self, key: &VipKey) -> bool {
        self.kernel
            .link_by_name(&key.device)
            .is_some_and(|l| self.kernel.address(l.ifindex, key.addr).is_some())
    }

    /// Whether the address found for `key` differs from how it is wanted
    /// (another scope or broadcast: someone replaced it).
    fn drifted(&self, key: &VipKey) -> bool {
        let Some(want) = self.vip_want(key) else {
            return false;
        };
        self.kernel
            .link_by_name(&key.device)
            .and_then(|l| self.kernel.address(l.ifindex, key.addr))
            .is_some_and(|found| !want.attrs.matches(found))
    }

    /// How `key` is wanted: as a static address, else as the first
    /// instance listing it says.
    pub(super) fn vip_want(&self, key: &VipKey) -> Option<VipWant> {
        if let Some(w) = self.static_vips.get(key) {
            return Some(w.clone());
        }
        self.vip_index
            .get(key)
            .and_then(|ids| ids.first())
            .and_then(|id| self.entries.get(id))
            .and_then(|e| e.vips.iter().find(|(k, _)| k == key))
            .map(|(_, w)| w.clone())
    }

    /// Whether `key` is wanted now: a static address while the driver
    /// runs, or an address some master, bound instance wants on its
    /// interface.
    pub(super) fn wanted(&self, key: &VipKey) -> bool {
        if self.static_vips.contains_key(key) && self.started && !self.stopping {
            return true;
        }
        self.vip_index.get(key).is_some_and(|ids| {
            ids.iter().any(|id| {
                self.entries.get(id).is_some_and(|e| e.binding.is_ok())
                    && self
                        .router
                        .instance(*id)
                        .is_some_and(|i| i.state() == State::Master)
            })
        })
    }

    /// Never removed when found on the interface without our having added
    /// it: an address owner's own addresses (priority 255: the virtual
    /// address is the interface's real one) and any instance's source
    /// address. An owner's virtual address that this driver added (a
    /// priority-255 instance whose address is not the interface's, as
    /// keepalived makes of `state MASTER` without a priority) is removed
    /// like any other, as keepalived removes the addresses it set.
    pub(super) fn protected(&self, key: &VipKey) -> bool {
        let owner = self.vip_index.get(key).is_some_and(|ids| {
            ids.iter().any(|id| {
                self.router
                    .instance(*id)
                    .is_some_and(|i| i.config().priority.is_owner())
            })
        });
        owner || self.is_source(key)
    }

    /// Whether `key` is the source address an instance sends from.
    pub(super) fn is_source(&self, key: &VipKey) -> bool {
        self.entries.values().any(|e| {
            e.spec.interface == key.device
                && e.binding.as_ref().is_ok_and(|(_, src)| *src == key.addr)
        })
    }

    pub(super) fn reconcile_key(&mut self, now: Timestamp, key: &VipKey) {
        let wanted = self.wanted(key);
        let present = self.observed(key);
        // An address of ours that is gone is no longer ours: whatever
        // appears there later (an operator's, or our add racing theirs and
        // answered EEXIST) is someone else's until we create it again.
        if !present && self.owned.remove(key) {
            self.owned_dirty = true;
        }
        let owned = self.owned.contains(key);
        let drifted = wanted && present && owned && self.drifted(key);
        let ours_to_know = self.vip_index.contains_key(key) || self.static_vips.contains_key(key);
        // Only a key not wanted needs it: a pass over every instance, which
        // a chain of takeovers would otherwise pay once per takeover.
        let protected = !wanted
            && if owned {
                self.is_source(key)
            } else {
                self.protected(key)
            };
        let track = self.vips.entry(key.clone()).or_default();
        if wanted {
            track.conflict = false;
            track.leftover = false;
            if drifted && track.in_flight.is_none() {
                // Ours, but with another scope or broadcast (replaced by
                // hand, or the configuration changed them): the kernel
                // changes neither in place, so it goes and comes back.
                track.present = false;
                tracing::warn!(address = %key.addr, device = %key.device, "virtual address found with another scope or broadcast than configured; replacing it");
                self.counters.vips_restored += 1;
                track.restored += 1;
                self.changed = true;
                self.start_op(now, key, OpKind::Remove);
                return;
            }
            if present {
                // Being replaced: its removal is ours, not someone else's.
                if !drifted {
                    track.present = true;
                }
                return;
            }
            if track.present && track.in_flight.is_none() {
                // It was there while we were master, and is gone.
                track.present = false;
                track.restore = true;
                self.counters.vips_restored += 1;
                track.restored += 1;
                self.changed = true;
                tracing::warn!(address = %key.addr, device = %key.device, "virtual address removed from outside while master; putting it back");
            }
            self.start_op(now, key, OpKind::Add);
            return;
        }
        track.present = false;
        track.restore = false;
        if !present {
            track.conflict = false;
            return;
        }
        if owned {
            if protected {
                return;
            }
            if self.first_reconcile && self.started {
                track.leftover = true;
            }
            self.start_op(now, key, OpKind::Remove);
            return;
        }
        // Present, not ours, not wanted: someone else's address equal to a
        // virtual address of ours.
        if !ours_to_know {
            return;
        }
        if !track.conflict {
            track.conflict = true;
            self.counters.foreign_addresses += 1;
            self.changed = true;
            let remove = self.foreign_policy == ForeignAddressPolicy::Remove && !protected;
            tracing::warn!(address = %key.addr, device = %key.device, remove, "an address equal to a virtual address, not added by this driver, is on the interface while the instance is not master");
            if remove {
                self.counters.foreign_removed += 1;
            }
        }
        if self.foreign_policy == ForeignAddressPolicy::Remove && !protected {
            self.start_op(now, key, OpKind::Remove);
        }
    }

    pub(super) fn start_op(&mut self, now: Timestamp, key: &VipKey, kind: OpKind) {
        let want = self.vip_want(key).unwrap_or_default();
        let Some(track) = self.vips.get_mut(key) else {
            return;
        };
        if track.in_flight.is_some() || track.retry_at.is_some_and(|at| at > now) {
            return;
        }
        let Some(link) = self.kernel.link_by_name(&key.device) else {
            if kind == OpKind::Add {
                track.last_error = Some(format!("interface {} missing", key.device));
            }
            return;
        };
        let op = AddressOp {
            ifindex: link.ifindex,
            device: key.device.clone(),
            address: key.address(),
            label: want.label,
            attrs: want.attrs,
        };
        track.in_flight = Some(kind);
        // Advertisements queued so far leave before the address changes.
        self.flush_outbox();
        self.effects.push_back(match kind {
            OpKind::Add => Effect::AddAddress(op),
            OpKind::Remove => Effect::RemoveAddress(op),
        });
    }

    pub(super) fn announce_restored(&mut self, key: &VipKey) {
        let Some(id) = self.vip_index.get(key).and_then(|ids| ids.first()).copied() else {
            return;
        };
        let Some(inst) = self.router.instance(id) else {
            return;
        };
        let garp = inst.config().garp;
        let count = garp.master_repeat.max(1);
        self.push_announce(id, &[key.address()], count, garp.interval);
    }

    pub(super) fn push_announce(
        &mut self,
        id: InstanceId,
        addresses: &[VirtualAddress],
        count: u32,
        interval: Duration,
    ) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        let mut per_device: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
        for a in addresses {
            let device = entry
                .vips
                .iter()
                .find(|(k, _)| k.addr == a.addr)
                .map_or(entry.spec.vip_interface(), |(k, _)| k.device.as_str());
            per_device.entry(device).or_default().push(a.addr);
        }
        for (device, addrs) in per_device {
            // An interface without an Ethernet address (a tunnel) has no
            // ARP to announce on.
            let Some((ifindex, Some(mac))) =
                self.kernel.link_by_name(device).map(|l| (l.ifindex, l.mac))
            else {
                continue;
            };
            self.effects.push_back(Effect::Announce(Announcement {
                instance: entry.name.clone(),
                ifindex,
                mac,
                addresses: addrs,
                count,
                interval,
            }));
        }
    }
}

/// The address as the kernel would report it after our add (the event
/// confirms it later).
pub(super) fn synthetic_address(op: &AddressOp) -> IfAddr {
    IfAddr {
        ifindex: op.ifindex,
        addr: op.address.addr,
        prefix_len: op.address.prefix_len,
        label: op.label.clone(),
        scope: crate::addr::AddrScope::from_raw(op.attrs.scope.unwrap_or(0)),
        // Secondary: a virtual address must never be taken for the
        // interface's primary address (the advertisement source).
        flags: 0x01,
        broadcast: op.attrs.broadcast.filter(|_| op.address.addr.is_ipv4()),
    }
}

fn retry_delay(failures: u64) -> Duration {
    let shift = failures.saturating_sub(1).min(16) as u32;
    FIRST_RETRY
        .checked_mul(1u32 << shift)
        .map_or(MAX_RETRY, |d| d.min(MAX_RETRY))
}
