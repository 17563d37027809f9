//! Reconciliation: the difference between a desired table and the kernel's, as
//! a list of [`Change`]s, and who owns which entry.
//!
//! Rules (pure; see [`plan`]):
//! - A service in the desired table is *managed*: it is added if absent and
//!   edited in place if its settings differ (never deleted and re-added, so
//!   live connections survive a restart). An existing one is adopted.
//! - Inside a managed service, a destination is added or edited in place when
//!   desired; deleted when it is one of the service's configured servers that
//!   should not be there now (down, or replaced by the sorry server), or when
//!   the [`Ownership`] record says we created it. Anything else (say, a server
//!   an operator added by hand) is left alone.
//! - A service that is not desired is deleted only if the [`Ownership`] record
//!   says we created or adopted it (it left the configuration); otherwise it
//!   is not ours and is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

use crate::error::Error;
use crate::model::{Destination, Service, ServiceKey};
use crate::table::{Ipvs, Table, TableEntry};

/// What one managed service should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    /// Settings.
    pub service: Service,
    /// Destinations that should be present, by address.
    pub destinations: BTreeMap<SocketAddr, Destination>,
    /// Every destination address the configuration manages for this service
    /// (real servers and the sorry server), present or not: one of these found
    /// in the kernel but absent from `destinations` is deleted even when the
    /// ownership record does not know it (e.g. after a restart without the record).
    pub managed: BTreeSet<SocketAddr>,
}

/// The desired table: managed services by key.
pub type DesiredTable = BTreeMap<ServiceKey, DesiredService>;

/// One step of a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Create a service.
    AddService(Service),
    /// Edit a service in place.
    UpdateService(Service),
    /// Delete a service (with its destinations).
    DeleteService(ServiceKey),
    /// Create a destination.
    AddDestination(ServiceKey, Destination),
    /// Edit a destination in place.
    UpdateDestination(ServiceKey, Destination),
    /// Delete a destination.
    DeleteDestination(ServiceKey, SocketAddr),
    /// Take ownership of a service that already matches (no kernel write).
    AdoptService(ServiceKey),
    /// Take ownership of a destination that already matches (no kernel write).
    AdoptDestination(ServiceKey, SocketAddr),
}

impl Change {
    /// Whether applying this change writes to the kernel.
    pub fn writes(&self) -> bool {
        !matches!(self, Change::AdoptService(_) | Change::AdoptDestination(..))
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddService(s) => write!(f, "add service {} ({})", s.key, s.scheduler),
            Change::UpdateService(s) => write!(f, "edit service {} ({})", s.key, s.scheduler),
            Change::DeleteService(k) => write!(f, "delete service {k}"),
            Change::AddDestination(k, d) => write!(f, "add {} weight {} to {k}", d.addr, d.weight),
            Change::UpdateDestination(k, d) => {
                write!(f, "edit {} weight {} in {k}", d.addr, d.weight)
            }
            Change::DeleteDestination(k, a) => write!(f, "delete {a} from {k}"),
            Change::AdoptService(k) => write!(f, "adopt service {k}"),
            Change::AdoptDestination(k, a) => write!(f, "adopt {a} in {k}"),
        }
    }
}

/// Which kernel entries this program created or adopted, so it can remove
/// them later and leave everything else alone.
///
/// Persist it across restarts with [`Ownership::to_text`] and
/// [`Ownership::parse`] to also clean up entries that left the configuration
/// while the daemon was down; without it, services no longer configured are
/// left in place (never someone else's).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ownership {
    services: BTreeMap<ServiceKey, BTreeSet<SocketAddr>>,
}

/// A line of an ownership record that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ownership record line {line}: {reason}")]
pub struct ParseOwnershipError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl Ownership {
    /// Whether we own the service.
    pub fn owns_service(&self, service: &ServiceKey) -> bool {
        self.services.contains_key(service)
    }

    /// Whether we own the destination.
    pub fn owns_destination(&self, service: &ServiceKey, destination: SocketAddr) -> bool {
        self.services
            .get(service)
            .is_some_and(|d| d.contains(&destination))
    }

    /// Owned services.
    pub fn services(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.keys()
    }

    /// Record the effect of an applied change.
    pub fn record(&mut self, change: &Change) {
        match change {
            Change::AddService(s) | Change::UpdateService(s) => {
                self.services.entry(s.key).or_default();
            }
            Change::AdoptService(k) => {
                self.services.entry(*k).or_default();
            }
            Change::DeleteService(k) => {
                self.services.remove(k);
            }
            Change::AddDestination(k, d) | Change::UpdateDestination(k, d) => {
                self.services.entry(*k).or_default().insert(d.addr);
            }
            Change::AdoptDestination(k, a) => {
                self.services.entry(*k).or_default().insert(*a);
            }
            Change::DeleteDestination(k, a) => {
                if let Some(d) = self.services.get_mut(k) {
                    d.remove(a);
                }
            }
        }
    }

    /// Forget entries that are no longer in the kernel (someone else removed them).
    pub fn retain_present(&mut self, current: &Table) {
        self.services
            .retain(|k, dests| match current.services.get(k) {
                Some(entry) => {
                    dests.retain(|a| entry.destinations.contains_key(a));
                    true
                }
                None => false,
            });
    }

    /// Like [`retain_present`](Self::retain_present), for one service:
    /// `entry` is what the kernel has for it (`None`: it is gone).
    pub fn retain_present_service(&mut self, key: &ServiceKey, entry: Option<&TableEntry>) {
        match entry {
            Some(entry) => {
                if let Some(dests) = self.services.get_mut(key) {
                    dests.retain(|a| entry.destinations.contains_key(a));
                }
            }
            None => {
                self.services.remove(key);
            }
        }
    }

    /// The record as text: a header line, then `service KEY` and
    /// `destination KEY ADDR` lines.
    pub fn to_text(&self) -> String {
        let mut s = String::from("# lvs ownership v1\n");
        for (k, dests) in &self.services {
            s.push_str(&format!("service {k}\n"));
            for a in dests {
                s.push_str(&format!("destination {k} {a}\n"));
            }
        }
        s
    }

    /// Read a record written by [`Ownership::to_text`].
    pub fn parse(text: &str) -> Result<Self, ParseOwnershipError> {
        let mut o = Ownership::default();
        for (i, line) in text.lines().enumerate() {
            let err = |reason: String| ParseOwnershipError {
                line: i + 1,
                reason,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("service"), Some(k), None, None) => {
                    let k: ServiceKey = k
                        .parse()
                        .map_err(|e: crate::model::ParseServiceKeyError| err(e.to_string()))?;
                    o.services.entry(k).or_default();
                }
                (Some("destination"), Some(k), Some(a), None) => {
                    let k: ServiceKey = k
                        .parse()
                        .map_err(|e: crate::model::ParseServiceKeyError| err(e.to_string()))?;
                    let a: SocketAddr = a.parse().map_err(|_| err(format!("bad address {a:?}")))?;
                    o.services.entry(k).or_default().insert(a);
                }
                _ => return Err(err(format!("unrecognised line {line:?}"))),
            }
        }
        Ok(o)
    }
}

/// The changes that turn `current` into `desired`, under the rules in the module doc.
///
/// Order: service additions and edits, then per service destination deletions,
/// edits and additions, then deletions of services that left the configuration.
pub fn plan(desired: &DesiredTable, current: &Table, ownership: &Ownership) -> Vec<Change> {
    let mut changes = Vec::new();
    for (key, want) in desired {
        plan_service(
            key,
            want,
            current.services.get(key),
            ownership,
            &mut changes,
        );
    }
    for key in ownership.services() {
        if !desired.contains_key(key) && current.services.contains_key(key) {
            changes.push(Change::DeleteService(*key));
        }
    }
    changes
}

/// The changes that bring one service, as the kernel has it (`have`), to
/// `want`; appended to `changes` in [`plan`]'s order.
pub(crate) fn plan_service(
    key: &ServiceKey,
    want: &DesiredService,
    have: Option<&TableEntry>,
    ownership: &Ownership,
    changes: &mut Vec<Change>,
) {
    let want_service = want.service.normalized();
    match have {
        None => changes.push(Change::AddService(want_service)),
        Some(entry) if entry.service.normalized() != want_service => {
            changes.push(Change::UpdateService(want_service))
        }
        Some(_) => changes.push(Change::AdoptService(*key)),
    }
    let have_dests = have.map(|e| &e.destinations);
    if let Some(have_dests) = have_dests {
        for addr in have_dests.keys() {
            let unwanted = !want.destinations.contains_key(addr);
            if unwanted && (want.managed.contains(addr) || ownership.owns_destination(key, *addr)) {
                changes.push(Change::DeleteDestination(*key, *addr));
            }
        }
    }
    for (addr, d) in &want.destinations {
        match have_dests.and_then(|h| h.get(addr)) {
            None => changes.push(Change::AddDestination(*key, *d)),
            Some(listed) if !d.matches(listed) => changes.push(Change::UpdateDestination(*key, *d)),
            Some(_) => changes.push(Change::AdoptDestination(*key, *addr)),
        }
    }
}

/// Apply one change to `ipvs`.
pub fn apply_change<I: Ipvs + ?Sized>(ipvs: &mut I, change: &Change) -> Result<(), Error> {
    match change {
        Change::AddService(s) => ipvs.add_service(s),
        Change::UpdateService(s) => ipvs.update_service(s),
        Change::DeleteService(k) => ipvs.delete_service(k),
        Change::AddDestination(k, d) => ipvs.add_destination(k, d),
        Change::UpdateDestination(k, d) => ipvs.update_destination(k, d),
        Change::DeleteDestination(k, a) => ipvs.delete_destination(k, *a),
        Change::AdoptService(_) | Change::AdoptDestination(..) => Ok(()),
    }
}

/// Read the kernel's table, plan against it, apply the plan in order and keep
/// `ownership` in step. Stops at the first failing change (the changes before
/// it stay applied and recorded); running it again retries from a fresh
/// read, so it converges once the cause is gone.
pub fn reconcile<I: Ipvs + ?Sized>(
    ipvs: &mut I,
    desired: &DesiredTable,
    ownership: &mut Ownership,
) -> Result<Vec<Change>, Error> {
    let current = ipvs.table()?;
    ownership.retain_present(&current);
    let changes = plan(desired, &current, ownership);
    for change in &changes {
        apply_change(ipvs, change)?;
        ownership.record(change);
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ForwardMethod, Scheduler};
    use crate::table::MemoryIpvs;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn key() -> ServiceKey {
        ServiceKey::tcp(sa("192.0.2.1:80"))
    }

    fn desired(dests: &[(&str, u32)], managed: &[&str]) -> DesiredTable {
        let mut d = DesiredTable::new();
        d.insert(
            key(),
            DesiredService {
                service: Service::new(key(), Scheduler::WRR),
                destinations: dests
                    .iter()
                    .map(|(a, w)| {
                        (
                            sa(a),
                            Destination::new(sa(a), ForwardMethod::Route).with_weight(*w),
                        )
                    })
                    .collect(),
                managed: managed.iter().map(|a| sa(a)).collect(),
            },
        );
        d
    }

    #[test]
    fn first_run_adds_then_second_run_writes_nothing() {
        let mut ipvs = MemoryIpvs::new();
        let mut own = Ownership::default();
        let want = desired(
            &[("10.0.0.1:80", 1), ("10.0.0.2:80", 2)],
            &["10.0.0.1:80", "10.0.0.2:80"],
        );
        let changes = reconcile(&mut ipvs, &want, &mut own).expect("apply");
        assert_eq!(changes.iter().filter(|c| c.writes()).count(), 3);
        let before = ipvs.writes;
        let again = reconcile(&mut ipvs, &want, &mut own).expect("apply");
        assert!(again.iter().all(|c| !c.writes()), "{again:?}");
        assert_eq!(ipvs.writes, before);
        assert!(own.owns_destination(&key(), sa("10.0.0.2:80")));
    }

    #[test]
    fn weight_change_edits_in_place() {
        let mut ipvs = MemoryIpvs::new();
        let mut own = Ownership::default();
        reconcile(
            &mut ipvs,
            &desired(&[("10.0.0.1:80", 1)], &["10.0.0.1:80"]),
            &mut own,
        )
        .expect("apply");
        let changes = reconcile(
            &mut ipvs,
            &desired(&[("10.0.0.1:80", 5)], &["10.0.0.1:80"]),
            &mut own,
        )
        .expect("apply");
        let writes: Vec<_> = changes.into_iter().filter(Change::writes).collect();
        assert_eq!(
            writes,
            vec![Change::UpdateDestination(
                key(),
                Destination::new(sa("10.0.0.1:80"), ForwardMethod::Route).with_weight(5)
            )]
        );
    }

    #[test]
    fn foreign_entries_are_left_alone() {
        let mut ipvs = MemoryIpvs::new();
        let foreign = ServiceKey::udp(sa("192.0.2.99:53"));
        ipvs.add_service(&Service::new(foreign, Scheduler::RR))
            .expect("add");
        ipvs.add_service(&Service::new(key(), Scheduler::WRR))
            .expect("add");
        let by_hand = Destination::new(sa("10.0.0.9:80"), ForwardMethod::Route);
        ipvs.add_destination(&key(), &by_hand).expect("add");
        let mut own = Ownership::default();
        reconcile(
            &mut ipvs,
            &desired(&[("10.0.0.1:80", 1)], &["10.0.0.1:80"]),
            &mut own,
        )
        .expect("apply");
        assert!(ipvs.table.services.contains_key(&foreign));
        assert!(
            ipvs.table.services[&key()]
                .destinations
                .contains_key(&by_hand.addr)
        );
        assert!(!own.owns_service(&foreign));
        assert!(!own.owns_destination(&key(), by_hand.addr));
    }

    #[test]
    fn managed_down_server_is_removed_even_without_record() {
        let mut ipvs = MemoryIpvs::new();
        ipvs.add_service(&Service::new(key(), Scheduler::WRR))
            .expect("add");
        ipvs.add_destination(
            &key(),
            &Destination::new(sa("10.0.0.1:80"), ForwardMethod::Route),
        )
        .expect("add");
        let mut own = Ownership::default();
        let changes =
            reconcile(&mut ipvs, &desired(&[], &["10.0.0.1:80"]), &mut own).expect("apply");
        assert!(changes.contains(&Change::DeleteDestination(key(), sa("10.0.0.1:80"))));
        assert!(ipvs.table.services[&key()].destinations.is_empty());
    }

    #[test]
    fn owned_service_leaving_config_is_deleted_unowned_is_not() {
        let mut ipvs = MemoryIpvs::new();
        let mut own = Ownership::default();
        reconcile(
            &mut ipvs,
            &desired(&[("10.0.0.1:80", 1)], &["10.0.0.1:80"]),
            &mut own,
        )
        .expect("apply");
        let other = ServiceKey::tcp(sa("192.0.2.50:80"));
        ipvs.add_service(&Service::new(other, Scheduler::RR))
            .expect("add");
        let changes = reconcile(&mut ipvs, &DesiredTable::new(), &mut own).expect("apply");
        assert_eq!(changes, vec![Change::DeleteService(key())]);
        assert!(ipvs.table.services.contains_key(&other));
        assert!(!own.owns_service(&key()));
    }

    #[test]
    fn ownership_text_round_trips() {
        let mut own = Ownership::default();
        own.record(&Change::AdoptService(key()));
        own.record(&Change::AdoptDestination(key(), sa("[2001:db8::1]:80")));
        own.record(&Change::AdoptService(ServiceKey::fwmark(
            crate::model::AddressFamily::Ipv6,
            3,
        )));
        let text = own.to_text();
        assert_eq!(Ownership::parse(&text), Ok(own));
        assert_eq!(Ownership::parse("service nope").map_err(|e| e.line), Err(1));
        assert_eq!(
            Ownership::parse("# x\nfrob tcp/1.2.3.4:5").map_err(|e| e.line),
            Err(2)
        );
    }
}
