//! The routers an instance has heard: one row per source address of an
//! accepted advertisement, bounded in number and in age, so that a status
//! can say who else is on the virtual router, at what priority and how
//! often it speaks (RFC 5798 5.2: priority and Max Advertise Interval are
//! what an advertisement carries).
//!
//! Bounds: at most [`MAX_PEERS`] rows per instance (a newcomer replaces
//! the row heard from longest ago), and a row is forgotten
//! [`PEER_EXPIRY`] after its last advertisement, so a peer that left is
//! still shown for a while (with its age) and then goes.

use std::net::IpAddr;
use std::time::Duration;

use vrrp_core::{Centisecs, Priority, Timestamp};

use super::super::api::PeerStatus;

/// Rows kept per instance: a virtual router has a handful of routers; a
/// LAN full of forged sources must not grow memory.
pub const MAX_PEERS: usize = 16;

/// How long a silent peer is still listed after its last advertisement.
pub const PEER_EXPIRY: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    address: IpAddr,
    priority: Priority,
    advert_interval: Centisecs,
    first: Timestamp,
    last: Timestamp,
    adverts: u64,
}

/// The peers of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerTable {
    peers: Vec<Peer>,
    /// Rows replaced because the table was full.
    evicted: u64,
}

impl PeerTable {
    /// An accepted advertisement from `address` at `now`.
    pub(crate) fn heard(
        &mut self,
        now: Timestamp,
        address: IpAddr,
        priority: Priority,
        advert_interval: Centisecs,
    ) {
        self.expire(now);
        if let Some(p) = self.peers.iter_mut().find(|p| p.address == address) {
            p.priority = priority;
            p.advert_interval = advert_interval;
            p.last = p.last.max(now);
            p.adverts = p.adverts.saturating_add(1);
            return;
        }
        if self.peers.len() >= MAX_PEERS
            && let Some(oldest) = self
                .peers
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.last)
                .map(|(i, _)| i)
        {
            self.peers.swap_remove(oldest);
            self.evicted = self.evicted.saturating_add(1);
        }
        self.peers.push(Peer {
            address,
            priority,
            advert_interval,
            first: now,
            last: now,
            adverts: 1,
        });
    }

    /// Forgets the peers silent for longer than [`PEER_EXPIRY`] at `now`.
    pub(crate) fn expire(&mut self, now: Timestamp) {
        self.peers
            .retain(|p| now.saturating_since(p.last) <= PEER_EXPIRY);
    }

    /// The last priority heard from `address`.
    pub(crate) fn priority_of(&self, address: IpAddr) -> Option<Priority> {
        self.peers
            .iter()
            .find(|p| p.address == address)
            .map(|p| p.priority)
    }

    /// Rows replaced because the table was full.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The rows, by address, as seen at `now`.
    pub(crate) fn status(&self, now: Timestamp) -> Vec<PeerStatus> {
        let mut out: Vec<PeerStatus> = self
            .peers
            .iter()
            .filter(|p| now.saturating_since(p.last) <= PEER_EXPIRY)
            .map(|p| PeerStatus {
                address: p.address,
                priority: p.priority,
                advert_interval: p.advert_interval.as_duration(),
                first_advert: p.first.since_epoch(),
                last_advert: p.last.since_epoch(),
                age: now.saturating_since(p.last),
                adverts: p.adverts,
            })
            .collect();
        out.sort_by_key(|p| p.address);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn prio(p: u8) -> Priority {
        Priority::new(p)
    }

    #[test]
    fn rows_follow_the_last_advertisement_of_each_source() {
        let mut t = PeerTable::default();
        let cs = Centisecs::new(100);
        t.heard(at(0), ip(2), prio(200), cs);
        t.heard(at(1000), ip(2), prio(190), cs);
        t.heard(at(1500), ip(3), prio(100), Centisecs::new(50));
        let rows = t.status(at(2000));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].address, ip(2));
        assert_eq!(rows[0].priority, prio(190), "the last priority heard");
        assert_eq!(rows[0].adverts, 2);
        assert_eq!(rows[0].first_advert, Duration::ZERO);
        assert_eq!(rows[0].last_advert, Duration::from_secs(1));
        assert_eq!(rows[0].age, Duration::from_secs(1));
        assert_eq!(rows[0].advert_interval, Duration::from_secs(1));
        assert_eq!(rows[1].advert_interval, Duration::from_millis(500));
        assert_eq!(rows[1].age, Duration::from_millis(500));
        assert_eq!(t.priority_of(ip(3)), Some(prio(100)));
        assert_eq!(t.priority_of(ip(4)), None);
    }

    #[test]
    fn silent_peers_age_out() {
        let mut t = PeerTable::default();
        let cs = Centisecs::new(100);
        t.heard(at(0), ip(2), prio(200), cs);
        t.heard(at(10_000), ip(3), prio(100), cs);
        let limit = u64::try_from(PEER_EXPIRY.as_millis()).unwrap_or(u64::MAX);
        // Still listed at the limit, with its age; gone just after.
        assert_eq!(t.status(at(limit)).len(), 2);
        assert_eq!(t.status(at(limit))[0].age, PEER_EXPIRY);
        assert_eq!(t.status(at(limit + 1)).len(), 1);
        t.expire(at(limit + 1));
        assert_eq!(t.priority_of(ip(2)), None, "forgotten");
        assert_eq!(t.priority_of(ip(3)), Some(prio(100)));
    }

    #[test]
    fn a_full_table_replaces_the_longest_silent() {
        let mut t = PeerTable::default();
        let cs = Centisecs::new(100);
        for i in 0..MAX_PEERS {
            let n = u8::try_from(i).unwrap_or(0);
            t.heard(at(u64::from(n)), ip(10 + n), prio(100), cs);
        }
        // ip(10) speaks again: ip(11) is now the longest silent.
        t.heard(at(100), ip(10), prio(100), cs);
        t.heard(at(101), ip(200), prio(50), cs);
        let rows = t.status(at(102));
        assert_eq!(rows.len(), MAX_PEERS);
        assert!(rows.iter().any(|p| p.address == ip(10)));
        assert!(rows.iter().all(|p| p.address != ip(11)));
        assert!(rows.iter().any(|p| p.address == ip(200)));
        assert_eq!(t.evicted(), 1);
    }
}
