//! The shell's route and rule I/O: the records of the routes and rules the
//! driver added (`STATE_FILE.routes`, `STATE_FILE.rules`, one a line in
//! [`crate::route::Route`]'s or [`crate::rule::Rule`]'s words, written whole and renamed like the
//! address record), and the tasks that follow the kernel's route and rule
//! notifications and re-read what they follow after an overrun, when
//! their notices call for it, and every [`RECONCILE_INTERVAL`] (rules)
//! or [`ROUTE_REREAD_INTERVAL`] (routes).

use std::collections::BTreeSet;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use vrrp_core::Timestamp;

#[cfg(doc)]
use super::io::RECONCILE_INTERVAL;
use super::io::{Followed, Msg, Next};
use crate::NetlinkError;
use crate::link::{LinkEvent, LinkWatcher};
use crate::route::{KernelRoute, RouteEvent, RouteKey, RouteManager, RouteWatcher};
use crate::rule::{RuleManager, RuleWatcher};

/// The route record next to the address record `state`.
pub(crate) fn routes_path(state: &Path) -> PathBuf {
    sibling(state, ".routes")
}

/// The rule record next to the address record `state`.
pub(crate) fn rules_path(state: &Path) -> PathBuf {
    sibling(state, ".rules")
}

fn sibling(state: &Path, suffix: &str) -> PathBuf {
    let mut p = state.to_owned().into_os_string();
    p.push(suffix);
    PathBuf::from(p)
}

/// Reads a record; lines that do not parse are skipped with a warning
/// (an entry the record does not list is simply not removed).
pub(crate) fn parse<T: FromStr>(text: &str) -> Vec<T>
where
    T::Err: std::fmt::Display,
{
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .filter_map(|line| match line.parse::<T>() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(line, error = %e, "ignoring a line of a state file");
                None
            }
        })
        .collect()
}

/// The text of a record.
pub(crate) fn render<T: std::fmt::Display>(entries: &[T]) -> String {
    let mut text = String::from("# vrrp-net: what this driver added\n");
    for r in entries {
        text.push_str(&format!("{r}\n"));
    }
    text
}

/// Reads the record at `path` (none yet: nothing owned).
pub(crate) fn read<T: FromStr>(path: &Path) -> io::Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Writes the record atomically, or removes it when nothing is owned
/// (blocking: call it off the VRRP loop).
pub(crate) fn write<T: std::fmt::Display>(path: &Path, entries: &[T]) -> io::Result<()> {
    if entries.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut tmp = path.to_owned().into_os_string();
    tmp.push(".tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(render(entries).as_bytes())?;
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Writes the latest record, off the loop.
pub(crate) async fn write_records<T: std::fmt::Display + Clone + Send + Sync + 'static>(
    path: PathBuf,
    mut latest: watch::Receiver<Option<Vec<T>>>,
    out: mpsc::UnboundedSender<Msg>,
) {
    while latest.changed().await.is_ok() {
        let Some(entries) = latest.borrow_and_update().clone() else {
            continue;
        };
        let p = path.clone();
        let result = tokio::task::spawn_blocking(move || write(&p, &entries)).await;
        if !matches!(result, Ok(Ok(()))) {
            tracing::error!(path = %path.display(), "cannot write a state file");
            let _ = out.send(Msg::StateFileError);
        }
    }
}

/// Period of the full re-read of the routes followed, under the re-reads
/// the link notices call for.
pub(crate) const ROUTE_REREAD_INTERVAL: Duration = Duration::from_secs(60);

/// The kernel's routes with the identity of one the driver may want or
/// owns ([`DriverCore::followed_routes`](super::core::DriverCore::followed_routes)),
/// followed: route notifications as they come, the tables of those routes
/// re-read after an overrun, when a link goes down or away or an address
/// is removed (the kernel then flushes IPv4 routes without a notice), and
/// every [`ROUTE_REREAD_INTERVAL`]. Runs on a thread of its own: a full
/// routing table in the table of a virtual route is read and sifted
/// there, and only the few routes the driver follows reach its loop.
pub(crate) struct FollowedRoutes {
    /// Route notifications.
    pub watcher: RouteWatcher,
    /// Link and address notifications, for the silent flushes.
    pub links: LinkWatcher,
    /// Queries for the re-reads.
    pub routes: RouteManager,
    /// The identities followed, as the loop last published them.
    pub followed: watch::Receiver<BTreeSet<RouteKey>>,
    /// The driver's clock origin, for the dump's time stamp.
    pub epoch: Instant,
}

impl Followed for FollowedRoutes {
    const WHAT: &'static str = "routes";
    /// A full table is slow to read (0.7 s of CPU for 500,000 routes),
    /// and what the kernel changes silently is caught by the link
    /// notices: this re-read is only a net under them.
    const PERIOD: Duration = ROUTE_REREAD_INTERVAL;

    async fn next(&mut self) -> Result<Next, NetlinkError> {
        let mut events = tokio::select! {
            events = self.watcher.next() => events?,
            event = self.links.next() => {
                return match event {
                    // The kernel drops IPv4 routes through an interface
                    // that goes down or away, and routes from a removed
                    // address, without a notice.
                    Ok(LinkEvent::Down(_) | LinkEvent::Removed { .. } | LinkEvent::AddressRemoved(_)) => {
                        Ok(Next::Reread)
                    }
                    Ok(_) => Ok(Next::Nothing),
                    // Link notices lost: whatever they said, re-read.
                    Err(NetlinkError::Overrun) => {
                        self.links.resync().await?;
                        Ok(Next::Reread)
                    }
                    Err(e) => Err(e),
                };
            }
        };
        let followed = self.followed.borrow();
        events.retain(|e| match e {
            RouteEvent::Added(r) | RouteEvent::Removed(r) => followed.contains(&r.key),
        });
        Ok(if events.is_empty() {
            Next::Nothing
        } else {
            Next::Tell(Msg::Routes(events))
        })
    }

    async fn dump(&mut self) -> Result<Msg, NetlinkError> {
        let taken_at = Timestamp::from(self.epoch.elapsed());
        let followed = self.followed.borrow().clone();
        let routes = read_followed(&self.routes, &followed).await?;
        Ok(Msg::RouteDump { taken_at, routes })
    }
}

/// The kernel's routes with one of the `followed` identities: their
/// tables read, the rest dropped as it is parsed.
pub(crate) async fn read_followed(
    routes: &RouteManager,
    followed: &BTreeSet<RouteKey>,
) -> Result<Vec<KernelRoute>, NetlinkError> {
    let tables = followed.iter().map(|k| k.table).collect();
    routes
        .list_tables_where(&tables, |r| followed.contains(&r.key))
        .await
}

/// The kernel's rules, followed: rule notifications as they come, every
/// rule re-read after an overrun and every [`RECONCILE_INTERVAL`].
pub(crate) struct FollowedRules {
    /// Rule notifications.
    pub watcher: RuleWatcher,
    /// Queries for the re-reads.
    pub rules: RuleManager,
    /// The driver's clock origin, for the dump's time stamp.
    pub epoch: Instant,
}

impl Followed for FollowedRules {
    const WHAT: &'static str = "rules";

    async fn next(&mut self) -> Result<Next, NetlinkError> {
        let events = self.watcher.next().await?;
        Ok(if events.is_empty() {
            Next::Nothing
        } else {
            Next::Tell(Msg::Rules(events))
        })
    }

    async fn dump(&mut self) -> Result<Msg, NetlinkError> {
        let taken_at = Timestamp::from(self.epoch.elapsed());
        Ok(Msg::RuleDump {
            taken_at,
            rules: self.rules.list().await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Route;
    use crate::rule::Rule;

    #[test]
    fn route_records_round_trip_and_garbage_is_skipped() {
        let routes: Vec<Route> = [
            "192.0.2.0/24 via 198.51.100.1 dev eth0 table 100 metric 5",
            "2001:db8::100/128 dev eth0 table 198 proto 248",
        ]
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect();
        assert_eq!(routes.len(), 2);
        assert_eq!(parse::<Route>(&render(&routes)), routes);
        let text = "nonsense\n192.0.2.0/24 dev eth0 # note\n\n192.0.2.1/24 dev eth0\n";
        assert_eq!(parse::<Route>(text).len(), 1);
        let rules: Vec<Rule> = ["from 192.0.2.0/24 table 100", "fwmark 7 priority 9 table 7"]
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect();
        assert_eq!(parse::<Rule>(&render(&rules)), rules);
    }
}
