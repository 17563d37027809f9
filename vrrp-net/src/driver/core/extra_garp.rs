//! keepalived's `garp_extra_if` (`vmac_garp_intvl` before 2.2.3): while
//! an instance is master, one gratuitous ARP (or unsolicited neighbour
//! advertisement) every interval on each interface other than its own
//! that holds one of its virtual addresses, so that switches keep those
//! interfaces' MAC addresses in their caches: the instance's adverts only
//! refresh its own interface's, and an interface that only answers ARP
//! requests may age out.
//!
//! As keepalived 2.2.7 decides it (`vrrp_send_vmac_update`, and the
//! check of the configuration): by default only virtual MAC interfaces of
//! the driver's count, `all` adds every other interface; the instance's
//! own interface only with `vmac_xmit_base` (its VMAC sends no adverts
//! then); one packet per interface, for the first of the instance's
//! addresses on it (virtual ones before excluded ones); and the feature is
//! off for an instance with no such interface. The first packet goes one
//! interval after becoming master, then one every interval (keepalived
//! checks at its next advertisement, so it is up to one advertisement
//! interval later).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use vrrp_core::{InstanceId, State, Timestamp};

use super::{Announcement, DriverCore, Effect};
use crate::driver::InstanceSpec;

/// keepalived's `garp_extra_if DELAY [all]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GarpExtraIf {
    /// Between two packets on each interface (keepalived: 1 s to a day).
    pub interval: Duration,
    /// Every other interface, not only virtual MAC ones.
    pub all: bool,
}

/// The instance's addresses with their interfaces: virtual ones first,
/// then excluded ones, each in configuration order.
fn addresses(spec: &InstanceSpec) -> Vec<(String, IpAddr)> {
    let vips = spec.all_vips();
    let own = spec.vip_interface();
    let device = |d: &Option<String>| d.clone().unwrap_or_else(|| own.to_owned());
    vips.iter()
        .filter(|v| !v.excluded)
        .chain(vips.iter().filter(|v| v.excluded))
        .map(|v| (device(&v.device), v.address.addr))
        .collect()
}

/// Whether the feature runs for an instance whose own interface is `own`
/// (keepalived turns it off when no interface qualifies).
pub(super) fn enabled(
    own: &str,
    all: bool,
    ours: &dyn Fn(&str) -> bool,
    addrs: &[(String, IpAddr)],
) -> bool {
    let extra = addrs.iter().filter(|(d, _)| d != own);
    let (mut vmac, mut other) = (false, false);
    for (d, _) in extra {
        if ours(d) {
            vmac = true;
        } else {
            other = true;
        }
    }
    vmac || (other && all)
}

/// One address per interface to announce on.
pub(super) fn targets(
    own: &str,
    xmit_base: bool,
    all: bool,
    ours: &dyn Fn(&str) -> bool,
    addrs: &[(String, IpAddr)],
) -> Vec<(String, IpAddr)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (d, a) in addrs {
        if !ours(d) && !all {
            continue;
        }
        if d == own && !xmit_base {
            continue;
        }
        if seen.insert(d.clone()) {
            out.push((d.clone(), *a));
        }
    }
    out
}

impl DriverCore {
    fn is_vmac(&self, name: &str) -> bool {
        self.entries
            .values()
            .any(|e| e.spec.vmac.as_ref().is_some_and(|v| v.name == name))
    }

    /// The instance's `garp_extra_if`, if it runs.
    fn extra_garp_config(&self, id: InstanceId) -> Option<GarpExtraIf> {
        let e = self.entries.get(&id)?;
        let g = e.spec.garp_extra_if.filter(|g| !g.interval.is_zero())?;
        let addrs = addresses(&e.spec);
        enabled(e.spec.vip_interface(), g.all, &|d| self.is_vmac(d), &addrs).then_some(g)
    }

    /// A transition: the schedule starts on becoming master, stops on
    /// leaving it.
    pub(super) fn extra_garp_transition(&mut self, now: Timestamp, id: InstanceId, to: State) {
        match self.extra_garp_config(id) {
            Some(g) if to == State::Master => {
                self.extra_garp.insert(id, now + g.interval);
            }
            _ => {
                self.extra_garp.remove(&id);
            }
        }
    }

    /// Level-triggered catch-up after a reload: a master whose
    /// `garp_extra_if` appeared gets a schedule, one that lost it (or is
    /// no longer master) none.
    pub(super) fn extra_garp_sync(&mut self, now: Timestamp) {
        let ids: Vec<InstanceId> = self.entries.keys().copied().collect();
        for id in ids {
            let master = self
                .router
                .instance(id)
                .is_some_and(|i| i.state() == State::Master);
            match (master, self.extra_garp_config(id)) {
                (true, Some(g)) => {
                    self.extra_garp.entry(id).or_insert(now + g.interval);
                }
                _ => {
                    self.extra_garp.remove(&id);
                }
            }
        }
    }

    /// When the next periodic packet is due.
    pub(super) fn extra_garp_deadline(&self) -> Option<Timestamp> {
        self.extra_garp.values().min().copied()
    }

    /// Sends what is due and schedules the next.
    pub(super) fn extra_garp_due(&mut self, now: Timestamp) {
        let due: Vec<InstanceId> = self
            .extra_garp
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let master = self
                .router
                .instance(id)
                .is_some_and(|i| i.state() == State::Master);
            let Some(g) = self.extra_garp_config(id).filter(|_| master) else {
                self.extra_garp.remove(&id);
                continue;
            };
            self.extra_garp.insert(id, now + g.interval);
            let Some(e) = self.entries.get(&id) else {
                continue;
            };
            let xmit_base = e.spec.vmac.as_ref().is_some_and(|v| v.xmit_base);
            let addrs = addresses(&e.spec);
            let list = targets(
                e.spec.vip_interface(),
                xmit_base,
                g.all,
                &|d| self.is_vmac(d),
                &addrs,
            );
            let name = e.name.clone();
            for (device, addr) in list {
                let Some((ifindex, Some(mac))) = self
                    .kernel
                    .link_by_name(&device)
                    .map(|l| (l.ifindex, l.mac))
                else {
                    continue;
                };
                self.effects.push_back(Effect::Announce(Announcement {
                    instance: name.clone(),
                    ifindex,
                    mac,
                    addresses: vec![addr],
                    count: 1,
                    interval: Duration::ZERO,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(d: &str, ip: &str) -> (String, IpAddr) {
        (
            d.to_owned(),
            ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
        )
    }

    fn vmac(d: &str) -> bool {
        d.starts_with("vrrp.")
    }

    #[test]
    fn off_without_an_interface_that_qualifies() {
        let own_only = [a("eth0", "192.0.2.1"), a("eth0", "192.0.2.2")];
        assert!(!enabled("eth0", true, &vmac, &own_only));
        let other = [a("eth0", "192.0.2.1"), a("eth1", "192.0.2.2")];
        assert!(!enabled("eth0", false, &vmac, &other), "eth1 needs `all`");
        assert!(enabled("eth0", true, &vmac, &other));
        let extra_vmac = [a("eth0", "192.0.2.1"), a("vrrp.9", "192.0.2.2")];
        assert!(enabled("eth0", false, &vmac, &extra_vmac));
    }

    #[test]
    fn one_address_per_interface_never_the_own_one_but_with_xmit_base() {
        let addrs = [
            a("vrrp.7", "192.0.2.1"),
            a("eth1", "192.0.2.2"),
            a("eth1", "192.0.2.3"),
            a("vrrp.9", "192.0.2.4"),
            a("eth2", "2001:db8::5"),
        ];
        let t = targets("vrrp.7", false, true, &vmac, &addrs);
        assert_eq!(
            t,
            vec![
                a("eth1", "192.0.2.2"),
                a("vrrp.9", "192.0.2.4"),
                a("eth2", "2001:db8::5")
            ]
        );
        let t = targets("vrrp.7", false, false, &vmac, &addrs);
        assert_eq!(
            t,
            vec![a("vrrp.9", "192.0.2.4")],
            "VMACs only without `all`"
        );
        let t = targets("vrrp.7", true, false, &vmac, &addrs);
        assert_eq!(t, vec![a("vrrp.7", "192.0.2.1"), a("vrrp.9", "192.0.2.4")]);
    }
}
