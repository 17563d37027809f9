//! [`HealthAggregator`]: a real server's health from the results of its
//! checks, kept across reloads.
//!
//! keepalived's rule (`check_daemon`): a real server is alive when none of
//! its checkers is failing, and one without checkers is always alive. Before
//! its first result a checker counts as failed with the virtual server's
//! `alpha`, and as good without it.
//!
//! The aggregator knows checks by a key the caller chooses (`C`): the check
//! runner's id, or better something that survives a reload, such as the
//! check's position or its specification. A reload ([`configure`]) keeps the
//! state of every (service, server, check key) that is still there, so a
//! real server that is down stays out of the table and one that is up stays
//! in, even with `alpha`; only checks new to the configuration start from
//! their initial health.
//!
//! For that to be true the check itself must keep running across the
//! reload: feed the aggregator the *transitions* of a check that is still
//! running (the `healthcheck` runner shares a check re-added with the same
//! probe and timing with the running one, so add the new checks before
//! removing the old ones), not the initial state of a check started afresh.
//!
//! ```
//! use lvs::{
//!     Destination, ForwardMethod, Health, HealthAggregator, LoadBalancer, MemoryIpvs,
//!     RealServer, Scheduler, ServerChecks, Service, ServiceKey, VirtualServer,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = ServiceKey::tcp("192.0.2.10:80".parse()?);
//! let web = "198.51.100.1:80".parse()?;
//! let config = vec![VirtualServer::new(Service::new(key, Scheduler::WRR))
//!     .with_real_server(RealServer::new(Destination::new(web, ForwardMethod::Route)))];
//! // Two checks on web: an HTTP GET and a TCP connect.
//! let checks = || vec![ServerChecks::new(key, web, [("http", Health::Up), ("tcp", Health::Up)])];
//!
//! let mut lb = LoadBalancer::new(config.clone())?;
//! let mut health = HealthAggregator::new();
//! health.configure(checks());
//! let mut ipvs = MemoryIpvs::new();
//! lb.sync(&mut ipvs)?;
//!
//! // One check fails: the server goes down.
//! assert_eq!(health.set(&key, web, &"http", Health::Down)?, Some(Health::Down));
//! health.apply(&mut lb);
//! lb.sync_changed(&mut ipvs)?;
//! assert!(ipvs.table.services[&key].destinations.is_empty());
//!
//! // A reload with the same checks keeps it down: nothing is written.
//! lb.reload(config)?;
//! health.configure(checks());
//! health.apply(&mut lb);
//! assert_eq!(lb.sync_changed(&mut ipvs)?.writes(), 0);
//! assert!(ipvs.table.services[&key].destinations.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! [`configure`]: HealthAggregator::configure

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::balancer::{Health, LoadBalancer};
use crate::model::ServiceKey;

/// The checks of one real server in one virtual server, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerChecks<C> {
    /// The virtual service.
    pub service: ServiceKey,
    /// The real server.
    pub server: SocketAddr,
    /// Each check's key and its health before its first result (keepalived:
    /// [`Health::Down`] with the virtual server's `alpha`, [`Health::Up`]
    /// without).
    pub checks: Vec<(C, Health)>,
}

impl<C> ServerChecks<C> {
    /// The checks of `server` in `service`.
    pub fn new(
        service: ServiceKey,
        server: SocketAddr,
        checks: impl IntoIterator<Item = (C, Health)>,
    ) -> Self {
        Self {
            service,
            server,
            checks: checks.into_iter().collect(),
        }
    }
}

/// What [`HealthAggregator::configure`] did with the checks it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConfigureReport {
    /// Checks that were there before and kept their state.
    pub kept: usize,
    /// Checks new to the configuration, starting from their initial health.
    pub added: usize,
    /// Checks that left the configuration.
    pub removed: usize,
}

/// A result for a check the aggregator does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no such check on real server {server} of virtual server {service}")]
pub struct UnknownCheck {
    /// The virtual service asked for.
    pub service: ServiceKey,
    /// The real server asked for.
    pub server: SocketAddr,
}

#[derive(Debug, Clone)]
struct Server<C> {
    checks: BTreeMap<C, Health>,
    /// How many of `checks` are down.
    down: usize,
}

impl<C> Server<C> {
    fn health(&self) -> Health {
        if self.down == 0 {
            Health::Up
        } else {
            Health::Down
        }
    }
}

/// Real-server health from check results (see the module docs).
#[derive(Debug, Clone)]
pub struct HealthAggregator<C> {
    servers: BTreeMap<(ServiceKey, SocketAddr), Server<C>>,
}

impl<C: Ord + Clone> Default for HealthAggregator<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Ord + Clone> HealthAggregator<C> {
    /// An aggregator with no servers.
    pub fn new() -> Self {
        Self {
            servers: BTreeMap::new(),
        }
    }

    /// Sets the servers and their checks, at start-up or on reload: a check
    /// already known under the same (service, server, key) keeps its health,
    /// a new one starts from the health given with it, and servers or checks
    /// not given are forgotten. A key given twice for one server counts once.
    pub fn configure(
        &mut self,
        servers: impl IntoIterator<Item = ServerChecks<C>>,
    ) -> ConfigureReport {
        let mut previous = std::mem::take(&mut self.servers);
        let mut report = ConfigureReport::default();
        for config in servers {
            let id = (config.service, config.server);
            let mut old = previous.remove(&id);
            let server = self.servers.entry(id).or_insert_with(|| Server {
                checks: BTreeMap::new(),
                down: 0,
            });
            for (key, initial) in config.checks {
                if server.checks.contains_key(&key) {
                    continue;
                }
                let kept = old.as_mut().and_then(|o| o.checks.remove(&key));
                match kept {
                    Some(_) => report.kept += 1,
                    None => report.added += 1,
                }
                let health = kept.unwrap_or(initial);
                if health == Health::Down {
                    server.down += 1;
                }
                server.checks.insert(key, health);
            }
            if let Some(old) = old {
                report.removed += old.checks.len();
            }
        }
        report.removed += previous.values().map(|s| s.checks.len()).sum::<usize>();
        report
    }

    /// A check's new health. Returns the server's new health when it changed
    /// (`None` when it did not).
    ///
    /// # Errors
    /// [`UnknownCheck`] for a service, server or check not configured.
    pub fn set(
        &mut self,
        service: &ServiceKey,
        server: SocketAddr,
        check: &C,
        health: Health,
    ) -> Result<Option<Health>, UnknownCheck> {
        let unknown = || UnknownCheck {
            service: *service,
            server,
        };
        let entry = self
            .servers
            .get_mut(&(*service, server))
            .ok_or_else(unknown)?;
        let before = entry.health();
        let slot = entry.checks.get_mut(check).ok_or_else(unknown)?;
        if *slot == health {
            return Ok(None);
        }
        *slot = health;
        match health {
            Health::Down => entry.down += 1,
            Health::Up => entry.down = entry.down.saturating_sub(1),
        }
        let after = entry.health();
        Ok((after != before).then_some(after))
    }

    /// A real server's health: up when every check is up (or it has none);
    /// `None` when it is not configured.
    pub fn health(&self, service: &ServiceKey, server: SocketAddr) -> Option<Health> {
        self.servers.get(&(*service, server)).map(Server::health)
    }

    /// One check's health.
    pub fn check_health(
        &self,
        service: &ServiceKey,
        server: SocketAddr,
        check: &C,
    ) -> Option<Health> {
        self.servers
            .get(&(*service, server))?
            .checks
            .get(check)
            .copied()
    }

    /// Every configured real server and its health.
    pub fn servers(&self) -> impl Iterator<Item = (ServiceKey, SocketAddr, Health)> + '_ {
        self.servers
            .iter()
            .map(|((service, server), s)| (*service, *server, s.health()))
    }

    /// Sets every configured real server's health in `lb` (after
    /// [`configure`](Self::configure) and [`LoadBalancer::reload`], or to
    /// catch up after missed transitions); servers `lb` does not know are
    /// skipped. Returns how many changed there (each queued its
    /// [`Event`](crate::Event)s).
    pub fn apply(&self, lb: &mut LoadBalancer) -> usize {
        self.servers()
            .filter(|(service, server, health)| {
                lb.set_health(service, *server, *health).unwrap_or(false)
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ServiceKey {
        ServiceKey::tcp("192.0.2.1:80".parse().expect("addr"))
    }

    fn rs(n: u8) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, n], 80))
    }

    #[test]
    fn a_server_is_up_when_every_check_is() {
        let mut agg = HealthAggregator::new();
        let report = agg.configure([
            ServerChecks::new(key(), rs(1), [(1, Health::Up), (2, Health::Up)]),
            ServerChecks::new(key(), rs(2), []),
        ]);
        assert_eq!((report.added, report.kept, report.removed), (2, 0, 0));
        assert_eq!(agg.health(&key(), rs(1)), Some(Health::Up));
        assert_eq!(agg.health(&key(), rs(2)), Some(Health::Up), "no checks: up");
        assert_eq!(
            agg.set(&key(), rs(1), &1, Health::Down),
            Ok(Some(Health::Down))
        );
        assert_eq!(
            agg.set(&key(), rs(1), &1, Health::Down),
            Ok(None),
            "no change"
        );
        assert_eq!(
            agg.set(&key(), rs(1), &2, Health::Down),
            Ok(None),
            "still down"
        );
        assert_eq!(
            agg.set(&key(), rs(1), &1, Health::Up),
            Ok(None),
            "2 is down"
        );
        assert_eq!(agg.set(&key(), rs(1), &2, Health::Up), Ok(Some(Health::Up)));
        assert_eq!(agg.check_health(&key(), rs(1), &2), Some(Health::Up));
        assert!(agg.set(&key(), rs(1), &3, Health::Up).is_err());
        assert!(agg.set(&key(), rs(3), &1, Health::Up).is_err());
        assert_eq!(agg.health(&key(), rs(3)), None);
    }

    #[test]
    fn configure_keeps_state_by_service_server_and_check() {
        let mut agg = HealthAggregator::new();
        agg.configure([
            ServerChecks::new(key(), rs(1), [("tcp", Health::Up)]),
            ServerChecks::new(key(), rs(2), [("tcp", Health::Down)]), // alpha
        ]);
        agg.set(&key(), rs(1), &"tcp", Health::Down).expect("known");
        agg.set(&key(), rs(2), &"tcp", Health::Up).expect("known");
        // Same checks again, with their initial states: nothing moves.
        let report = agg.configure([
            ServerChecks::new(key(), rs(1), [("tcp", Health::Up)]),
            ServerChecks::new(key(), rs(2), [("tcp", Health::Down)]),
        ]);
        assert_eq!((report.kept, report.added, report.removed), (2, 0, 0));
        assert_eq!(
            agg.health(&key(), rs(1)),
            Some(Health::Down),
            "dead stays dead"
        );
        assert_eq!(
            agg.health(&key(), rs(2)),
            Some(Health::Up),
            "alpha stays up"
        );
        // A new check on rs2 starts down (alpha); the old one is dropped.
        let report = agg.configure([
            ServerChecks::new(key(), rs(1), [("tcp", Health::Up)]),
            ServerChecks::new(key(), rs(2), [("http", Health::Down)]),
        ]);
        assert_eq!((report.kept, report.added, report.removed), (1, 1, 1));
        assert_eq!(agg.health(&key(), rs(2)), Some(Health::Down));
        // The same address in another service is another server.
        let other = ServiceKey::udp("192.0.2.1:53".parse().expect("addr"));
        let report = agg.configure([ServerChecks::new(other, rs(1), [("tcp", Health::Up)])]);
        assert_eq!((report.kept, report.added, report.removed), (0, 1, 2));
        assert_eq!(agg.health(&other, rs(1)), Some(Health::Up));
        assert_eq!(agg.health(&key(), rs(1)), None);
    }
}
