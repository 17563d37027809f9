//! Kernel entries (routes, policy rules) owned and healed like virtual
//! addresses, level-triggered: a desired set against what the kernel has
//! (dumps and notifications) and the record of what the driver added
//! (which outlives the process). The driver adds what is missing (again,
//! with back-off, when it fails), puts back what someone removed while it
//! is wanted (counted), removes only what it added, and leaves an entry of
//! someone else's with the same identity where it is, reported.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use vrrp_core::Timestamp;

use super::{Echo, Echoes, FIRST_RETRY, MAX_RETRY};

/// A kind of kernel entry the driver installs.
pub(crate) trait Installable: Clone + fmt::Display {
    /// Its identity in the kernel.
    type Key: Ord + Clone + fmt::Debug;
    /// Its name in logs.
    const WHAT: &'static str;
    /// Whether a wanted key may match other keys (see
    /// [`Installable::covers`]); when false, only equal keys match.
    const FUZZY: bool = false;
    /// Its identity.
    fn key(&self) -> Self::Key;
    /// The interface it needs the index of, if any.
    fn device(&self) -> Option<&str>;
    /// Whether the kernel's entry `seen` is the `wanted` one (a rule
    /// written without a priority gets one from the kernel).
    fn covers(wanted: &Self::Key, seen: &Self::Key) -> bool {
        wanted == seen
    }
}

/// A change to carry out.
pub(crate) struct Op<E> {
    pub(crate) add: bool,
    pub(crate) entry: E,
    pub(crate) ifindex: Option<u32>,
}

#[derive(Debug, Default)]
struct Track {
    /// `Some(true)`: an add is out; `Some(false)`: a removal.
    in_flight: Option<bool>,
    retry_at: Option<Timestamp>,
    failures: u64,
    last_error: Option<String>,
    /// Ours and seen present while wanted: a later absence is a removal
    /// from outside.
    present: bool,
    /// Reported as someone else's (until it goes or is ours).
    conflict: bool,
    /// Removal scheduled at start-up: a leftover of an earlier run.
    leftover: bool,
    /// When the last change of ours finished.
    changed_at: Option<Timestamp>,
    /// While a change of ours is out: the kernel notified one of its kind
    /// (its echo, read before its answer).
    seen_in_flight: bool,
    /// Our changes answered before the kernel's notification of them was
    /// read (`true` an add), oldest first, with when: answers and
    /// notifications come on two sockets, and our removal's notice read
    /// after the answer to our add that followed it would say the entry
    /// is gone when it is there (as for virtual addresses, see
    /// `VipTrack::echoes`). A notice of the kind of one of these is its
    /// echo, not applied while a later one of ours is awaited.
    echoes: Echoes,
}

/// Counters, for the snapshot.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub(crate) restored: u64,
    pub(crate) errors: u64,
    pub(crate) foreign: u64,
    pub(crate) leftovers_removed: u64,
}

/// The owned entries of one kind.
pub(crate) struct Owned<E: Installable> {
    /// The kernel's entries the driver follows.
    kernel: BTreeSet<E::Key>,
    /// What the driver added and has not removed.
    owned: BTreeMap<E::Key, E>,
    dirty: bool,
    tracks: BTreeMap<E::Key, Track>,
    retries: BTreeSet<(Timestamp, E::Key)>,
    /// Installed while the driver runs.
    pub(crate) statics: Vec<E>,
    /// Installed while the driver runs and its owner says so (routes of
    /// virtual servers whose quorum is up), set by
    /// [`super::DriverCore::set_gated_routes`].
    pub(crate) gated: Vec<E>,
    first_reconcile: bool,
    pub(crate) counters: Counters,
}

impl<E: Installable> Default for Owned<E> {
    fn default() -> Self {
        Owned {
            kernel: BTreeSet::new(),
            owned: BTreeMap::new(),
            dirty: false,
            tracks: BTreeMap::new(),
            retries: BTreeSet::new(),
            statics: Vec::new(),
            gated: Vec::new(),
            first_reconcile: true,
            counters: Counters::default(),
        }
    }
}

impl<E: Installable> Owned<E> {
    /// What an earlier run recorded as added.
    pub(crate) fn restore(&mut self, owned: Vec<E>) {
        self.owned = owned.into_iter().map(|e| (e.key(), e)).collect();
    }

    /// What the driver added and has not removed.
    pub(crate) fn owned(&self) -> Vec<E> {
        self.owned.values().cloned().collect()
    }

    /// The keys of the entries owned.
    pub(crate) fn owned_keys(&self) -> impl Iterator<Item = &E::Key> {
        self.owned.keys()
    }

    /// The keys of the entries with a record of changes of ours (in
    /// flight, failed, retried, or awaiting their echo).
    pub(crate) fn tracked_keys(&self) -> impl Iterator<Item = &E::Key> {
        self.tracks.keys()
    }

    pub(crate) fn next_retry(&self) -> Option<Timestamp> {
        self.retries.first().map(|(at, _)| *at)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.tracks
            .values()
            .filter(|t| t.in_flight.is_some())
            .count()
    }

    /// The record changed since the last call.
    pub(crate) fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    fn present(&self, key: &E::Key) -> bool {
        self.kernel.contains(key) || (E::FUZZY && self.kernel.iter().any(|k| E::covers(key, k)))
    }

    /// A full read, started at `taken_at`: replaces what was known, except
    /// changes of ours that finished after `taken_at`.
    pub(crate) fn replace_kernel(&mut self, keys: BTreeSet<E::Key>, taken_at: Timestamp) {
        self.kernel = keys;
        for (key, t) in &self.tracks {
            if t.changed_at.is_some_and(|at| at > taken_at) {
                if self.owned.contains_key(key) {
                    self.kernel.insert(key.clone());
                } else {
                    self.kernel.remove(key);
                }
            }
        }
    }

    /// Forgets the kernel's entries `keep` says no to.
    pub(crate) fn retain_kernel(&mut self, keep: impl Fn(&E::Key) -> bool) {
        self.kernel.retain(|k| keep(k));
    }

    /// A notification, read at `now`: `key` added or removed.
    pub(crate) fn event(&mut self, now: Timestamp, key: E::Key, added: bool) {
        if self.echo(now, &key, added) {
            return;
        }
        if added {
            self.kernel.insert(key);
        } else {
            self.kernel.remove(&key);
            // What our add recorded without the priority the kernel chose.
            if E::FUZZY {
                self.kernel.retain(|k| !E::covers(k, &key));
            }
        }
    }

    /// Whether a notification is the echo of a change of ours (consumed,
    /// with the echoes before it) made outdated by a later change of ours
    /// already answered.
    fn echo(&mut self, now: Timestamp, key: &E::Key, added: bool) -> bool {
        let found = if self.tracks.contains_key(key) {
            Some(key.clone())
        } else if E::FUZZY {
            self.tracks.keys().find(|k| E::covers(k, key)).cloned()
        } else {
            None
        };
        let Some(track) = found.and_then(|k| self.tracks.get_mut(&k)) else {
            return false;
        };
        track.echoes.expire(now);
        // An answered change of ours is echoed before the one out now.
        match track.echoes.take(added) {
            Echo::None => {
                if track.in_flight == Some(added) {
                    track.seen_in_flight = true;
                }
                false
            }
            Echo::Latest => false,
            Echo::Outdated => true,
        }
    }

    /// The outcome of an add (`add`) or removal of `entry`: `Ok(true)`
    /// done, `Ok(false)` it already was so (EEXIST: someone else's entry
    /// has that identity; not there), or the error.
    pub(crate) fn result(
        &mut self,
        now: Timestamp,
        entry: &E,
        add: bool,
        result: Result<bool, String>,
    ) {
        let key = entry.key();
        let track = self.tracks.entry(key.clone()).or_default();
        track.in_flight = None;
        track.changed_at = Some(now);
        let seen = std::mem::take(&mut track.seen_in_flight);
        if result == Ok(true) && !seen {
            track.echoes.push(add, now);
        }
        if let Some(at) = track.retry_at.take() {
            self.retries.remove(&(at, key.clone()));
        }
        match (add, result) {
            (true, Ok(added)) => {
                track.failures = 0;
                track.last_error = None;
                // Present either way: ours, or someone else's with the
                // same identity (details at the next read).
                self.kernel.insert(key.clone());
                if added {
                    track.present = true;
                    self.owned.insert(key, entry.clone());
                    self.dirty = true;
                } else {
                    tracing::info!(what = E::WHAT, entry = %entry, "one with this identity was already there; not recording it as ours");
                }
            }
            (false, Ok(_)) => {
                track.failures = 0;
                track.last_error = None;
                if std::mem::take(&mut track.leftover) {
                    self.counters.leftovers_removed += 1;
                    tracing::info!(what = E::WHAT, entry = %entry, "removed what an earlier run left behind");
                }
                self.kernel.remove(&key);
                // And what a notice recorded with the priority the kernel
                // chose (its removal's notice may be outdated when read).
                if E::FUZZY {
                    self.kernel.retain(|k| !E::covers(&key, k));
                }
                if self.owned.remove(&key).is_some() {
                    self.dirty = true;
                }
            }
            (add, Err(e)) => {
                track.failures += 1;
                let shift = track.failures.saturating_sub(1).min(16) as u32;
                let wait = FIRST_RETRY
                    .checked_mul(1u32 << shift)
                    .map_or(MAX_RETRY, |d| d.min(MAX_RETRY));
                track.retry_at = Some(now + wait);
                self.retries.insert((now + wait, key));
                self.counters.errors += 1;
                tracing::error!(what = E::WHAT, entry = %entry, add, error = %e, retry_in = ?wait, failures = track.failures, "kernel change failed");
                track.last_error = Some(e);
            }
        }
    }

    /// Retries that are due become possible again.
    pub(crate) fn retries_due(&mut self, now: Timestamp) {
        while let Some((at, key)) = self.retries.first().cloned() {
            if at > now {
                break;
            }
            self.retries.remove(&(at, key.clone()));
            if let Some(t) = self.tracks.get_mut(&key) {
                t.retry_at = None;
            }
        }
    }

    /// Brings every entry known to where `desired` says; the changes to
    /// carry out, in order. `ifindex` names the index of an interface.
    pub(crate) fn reconcile(
        &mut self,
        now: Timestamp,
        desired: &BTreeMap<E::Key, E>,
        ifindex: impl Fn(&str) -> Option<u32>,
    ) -> (Vec<Op<E>>, bool) {
        let mut keys: BTreeSet<E::Key> = desired.keys().cloned().collect();
        keys.extend(self.owned.keys().cloned());
        keys.extend(self.tracks.keys().cloned());
        let mut ops = Vec::new();
        let mut changed = false;
        for key in keys {
            if let Some((add, entry)) =
                self.reconcile_one(now, &key, desired.get(&key), &mut changed)
            {
                let index = match entry.device() {
                    Some(name) => match ifindex(name) {
                        Some(i) => Some(i),
                        None => {
                            if let Some(t) = self.tracks.get_mut(&key) {
                                t.last_error = Some(format!("interface {name} missing"));
                            }
                            continue;
                        }
                    },
                    None => None,
                };
                if let Some(t) = self.tracks.get_mut(&key) {
                    t.in_flight = Some(add);
                }
                ops.push(Op {
                    add,
                    entry,
                    ifindex: index,
                });
            }
        }
        self.first_reconcile = false;
        (ops, changed)
    }

    fn reconcile_one(
        &mut self,
        now: Timestamp,
        key: &E::Key,
        wanted: Option<&E>,
        changed: &mut bool,
    ) -> Option<(bool, E)> {
        let present = self.present(key);
        let track = self.tracks.entry(key.clone()).or_default();
        if track.in_flight.is_some() || track.retry_at.is_some_and(|at| at > now) {
            return None;
        }
        // An entry of ours that is gone is no longer ours: whatever
        // appears there later is someone else's until we create it again.
        if !present && self.owned.remove(key).is_some() {
            self.dirty = true;
        }
        let ours = self.owned.contains_key(key);
        match wanted {
            Some(entry) => {
                track.leftover = false;
                if present {
                    if ours {
                        track.present = true;
                        track.conflict = false;
                    } else if !track.conflict {
                        track.conflict = true;
                        self.counters.foreign += 1;
                        *changed = true;
                        tracing::warn!(what = E::WHAT, entry = %entry, "someone else's has this identity: left in place, ours not added");
                    }
                    return None;
                }
                track.conflict = false;
                if std::mem::take(&mut track.present) {
                    self.counters.restored += 1;
                    *changed = true;
                    tracing::warn!(what = E::WHAT, entry = %entry, "{} removed from outside while wanted; putting it back", E::WHAT);
                }
                Some((true, entry.clone()))
            }
            None => {
                track.present = false;
                if !present {
                    track.conflict = false;
                    // Kept while an echo of ours may still come.
                    track.echoes.expire(now);
                    if track.retry_at.is_none() && track.failures == 0 && track.echoes.is_empty() {
                        self.tracks.remove(key);
                    }
                    return None;
                }
                let entry = self.owned.get(key)?.clone();
                if self.first_reconcile {
                    track.leftover = true;
                }
                Some((false, entry))
            }
        }
    }
}
