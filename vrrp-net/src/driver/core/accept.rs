//! Accept mode (RFC 5798 6.1 `Accept_Mode`, 6.4.3 "MUST NOT accept
//! packets addressed to the IPvX address(es) associated with the virtual
//! router if it is not the IPvX address owner", unless Accept_Mode is
//! True): which virtual addresses the firewall blocks, and when.
//!
//! The addresses (excluded ones too) of every instance that runs without
//! accept mode and is not the address owner (priority 255) are blocked
//! from start to stop, in every state. keepalived 2.2.7 fills its sets
//! when the instance becomes master (before adding the addresses) and
//! empties them when it leaves (after removing them); the effect on
//! traffic is the same, because packets to an address the host does not
//! hold never reach its input hook and the host sends none from it. What
//! differs: a copy of the address that someone else put on a backup is
//! blocked here, not by keepalived, and no takeover waits for the
//! firewall (keepalived talks netlink in-process; running `nft` takes a
//! few milliseconds, tens on a loaded host, which would delay every
//! takeover's addresses). The set changes only at start, on a reload and
//! when an interface an IPv6 link-local address is matched by appears or
//! goes. The table exists from start to stop when some instance needs it,
//! so an operator sees it; the shell deletes it at stop.

use std::collections::BTreeSet;
use std::time::Duration;

use vrrp_core::Timestamp;

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

/// Whether an instance's addresses are blocked: it runs without accept
/// mode and is not the address owner (whose addresses are its own: RFC
/// 5798 6.4.3 lets it accept them).
pub(super) fn guards(accept: bool, owner: bool) -> bool {
    !accept && !owner
}

impl DriverCore {
    /// Whether some instance's addresses are blocked: the table is
    /// needed.
    fn firewall_needed(&self) -> bool {
        self.entries.keys().any(|id| self.guarded(*id))
    }

    fn guarded(&self, id: vrrp_core::InstanceId) -> bool {
        self.entries.get(&id).is_some_and(|e| {
            guards(
                e.spec.accept,
                self.router
                    .config_of(id)
                    .is_some_and(|c| c.priority.is_owner()),
            )
        })
    }

    /// The addresses to block now: those of every guarded instance (on
    /// an interface that exists, for the link-local ones matched by
    /// interface index).
    pub(super) fn blocked_now(&self) -> BTreeSet<BlockedAddress> {
        self.vip_index
            .iter()
            .filter(|(_, ids)| ids.iter().any(|id| self.guarded(*id)))
            .filter_map(|(key, _)| {
                let ifindex = self.kernel.link_by_name(&key.device).map(|l| l.ifindex);
                let link_local =
                    matches!(key.addr, std::net::IpAddr::V6(a) if a.is_unicast_link_local());
                if link_local && ifindex.is_none() {
                    return None;
                }
                Some(BlockedAddress {
                    addr: key.addr,
                    device: key.device.clone(),
                    ifindex: ifindex.unwrap_or(0),
                })
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
    fn only_a_non_owner_without_accept_mode_is_guarded() {
        assert!(guards(false, false));
        assert!(!guards(true, false));
        assert!(!guards(false, true), "the owner accepts its own addresses");
        assert!(!guards(true, true));
    }

    #[test]
    fn retries_back_off() {
        assert_eq!(retry_wait(1), FIRST_RETRY);
        assert_eq!(retry_wait(2), FIRST_RETRY * 2);
        assert_eq!(retry_wait(40), MAX_RETRY);
    }
}
