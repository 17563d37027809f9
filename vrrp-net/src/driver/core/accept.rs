//! Accept mode (RFC 5798 6.1 `Accept_Mode`, 6.4.3 "MUST NOT accept
//! packets addressed to the IPvX address(es) associated with the virtual
//! router if it is not the IPvX address owner", unless Accept_Mode is
//! True): which virtual addresses the firewall blocks, and when.
//!
//! As keepalived does: an instance with `accept` off that is not the
//! address owner (priority 255) blocks its virtual addresses (excluded
//! ones too) while it is master; the block goes in before the addresses
//! are added (the effect is queued before their additions) and, unlike
//! keepalived (which lifts it right after asking for the removals), stays
//! until the address is confirmed gone, so no packet reaches an address
//! of ours that is still there. The table exists from start to stop when
//! some instance needs it (created at start, empty), so an operator sees
//! it; the shell deletes it at stop.

use std::collections::BTreeSet;
use std::time::Duration;

use vrrp_core::{State, Timestamp};

use super::addresses::VipKey;
use super::{DriverCore, Effect, FIRST_RETRY, MAX_RETRY};
use crate::firewall::BlockedAddress;

/// What the core knows of the firewall.
#[derive(Debug, Default)]
pub(super) struct FirewallTrack {
    /// The set last asked for (`None`: nothing asked yet, or the last
    /// change failed and the state is unknown).
    pub(super) sent: Option<BTreeSet<BlockedAddress>>,
    /// When to try again after a failure.
    pub(super) retry_at: Option<Timestamp>,
    pub(super) failures: u32,
    /// Failed changes, for the snapshot.
    pub(super) errors: u64,
    /// Repairs of a table changed from outside, for the snapshot.
    pub(super) repairs: u64,
}

/// One virtual address as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidate {
    /// Some instance listing it is master, bound, not the owner and runs
    /// without accept mode.
    pub(super) guarded_master: bool,
    /// Blocked in the set last asked for.
    pub(super) blocked: bool,
    /// On the interface, added by us.
    pub(super) ours_present: bool,
    /// Some master instance wants it (one in accept mode, when not
    /// `guarded_master`).
    pub(super) wanted: bool,
}

/// Whether an address is blocked: while a no-accept master holds it, and
/// after it left, until the address we added is gone (unless a master in
/// accept mode now holds it: a reload turned accept mode on).
pub(super) fn blocks(c: Candidate) -> bool {
    c.guarded_master || (c.blocked && c.ours_present && !c.wanted)
}

impl DriverCore {
    /// Whether some instance runs without accept mode and is not the
    /// address owner: the firewall table is needed.
    fn firewall_needed(&self) -> bool {
        self.entries.iter().any(|(id, e)| {
            !e.spec.accept
                && !self
                    .router
                    .config_of(*id)
                    .is_some_and(|c| c.priority.is_owner())
        })
    }

    fn guarded_master(&self, key: &VipKey) -> bool {
        self.vip_index.get(key).is_some_and(|ids| {
            ids.iter().any(|id| {
                self.entries
                    .get(id)
                    .is_some_and(|e| !e.spec.accept && e.binding.is_ok())
                    && self.router.instance(*id).is_some_and(|i| {
                        i.state() == State::Master && !i.config().priority.is_owner()
                    })
            })
        })
    }

    /// The addresses to block now.
    pub(super) fn blocked_now(&self) -> BTreeSet<BlockedAddress> {
        let sent = self.firewall.sent.as_ref();
        let mut keys: BTreeSet<&VipKey> = self.vip_index.keys().collect();
        keys.extend(self.owned.iter());
        keys.into_iter()
            .filter_map(|key| {
                let link = self.kernel.link_by_name(&key.device)?;
                let b = BlockedAddress {
                    addr: key.addr,
                    device: key.device.clone(),
                    ifindex: link.ifindex,
                };
                let c = Candidate {
                    guarded_master: self.guarded_master(key),
                    blocked: sent.is_some_and(|s| s.iter().any(|x| x.addr == key.addr)),
                    ours_present: self.owned.contains(key) && self.observed(key),
                    wanted: self.wanted(key),
                };
                blocks(c).then_some(b)
            })
            .collect()
    }

    /// Asks for the firewall as it should be now, if that changed.
    pub(super) fn reconcile_firewall(&mut self, now: Timestamp) {
        if !self.started {
            return;
        }
        if self.firewall.retry_at.is_some_and(|at| at > now) {
            return;
        }
        let wanted = self.blocked_now();
        let needed = self.firewall_needed() || !wanted.is_empty();
        if !needed && self.firewall.sent.as_ref().is_none_or(BTreeSet::is_empty) {
            return;
        }
        if self.firewall.sent.as_ref() == Some(&wanted) {
            return;
        }
        self.firewall.retry_at = None;
        self.firewall.sent = Some(wanted.clone());
        // Advertisements queued so far leave first, as for addresses.
        self.flush_outbox();
        self.effects.push_back(Effect::Firewall(wanted));
    }

    /// The outcome of an [`Effect::Firewall`].
    pub fn handle_firewall_result(&mut self, now: Timestamp, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.firewall.failures = 0;
            }
            Err(e) => {
                self.firewall.failures += 1;
                self.firewall.errors += 1;
                let wait = retry_wait(self.firewall.failures);
                self.firewall.retry_at = Some(now + wait);
                self.firewall.sent = None;
                tracing::error!(error = %e, retry_in = ?wait, "cannot update the accept-mode firewall");
            }
        }
        self.changed = true;
    }

    /// The firewall's retry, if one is due later.
    pub(super) fn firewall_deadline(&self) -> Option<Timestamp> {
        self.firewall.retry_at
    }

    /// Called at each timeout: a due retry clears its wait.
    pub(super) fn firewall_timeout(&mut self, now: Timestamp) {
        if self.firewall.retry_at.is_some_and(|at| at <= now) {
            self.firewall.retry_at = None;
        }
    }

    /// The shell found the table changed from outside and put it back.
    pub fn handle_firewall_repaired(&mut self) {
        self.firewall.repairs += 1;
        self.changed = true;
        tracing::warn!(
            "the accept-mode firewall table was changed or deleted from outside; put back"
        );
    }
}

fn retry_wait(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << shift).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_master_blocks() {
        for blocked in [false, true] {
            for ours_present in [false, true] {
                assert!(blocks(Candidate {
                    guarded_master: true,
                    blocked,
                    ours_present,
                    wanted: true,
                }));
            }
        }
    }

    #[test]
    fn a_block_outlives_the_master_until_the_address_is_gone() {
        let after = Candidate {
            guarded_master: false,
            blocked: true,
            ours_present: true,
            wanted: false,
        };
        assert!(blocks(after));
        assert!(!blocks(Candidate {
            ours_present: false,
            ..after
        }));
        // Never blocked: an address left over from elsewhere is not.
        assert!(!blocks(Candidate {
            blocked: false,
            ..after
        }));
        // Held by a master in accept mode now (a reload turned it on).
        assert!(!blocks(Candidate {
            wanted: true,
            ..after
        }));
    }

    #[test]
    fn retries_back_off() {
        assert_eq!(retry_wait(1), FIRST_RETRY);
        assert_eq!(retry_wait(2), FIRST_RETRY * 2);
        assert_eq!(retry_wait(40), MAX_RETRY);
    }
}
