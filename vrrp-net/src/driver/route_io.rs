//! The shell's route and rule I/O: the records of the routes and rules the
//! driver added (`STATE_FILE.routes`, `STATE_FILE.rules`, one a line in
//! [`crate::route::Route`]'s or [`crate::rule::Rule`]'s words, written whole and renamed like the
//! address record), and the tasks that follow the kernel's route and rule
//! notifications and re-read everything after an overrun and every
//! [`RECONCILE_INTERVAL`].

use std::collections::BTreeSet;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use vrrp_core::Timestamp;

#[cfg(doc)]
use super::io::RECONCILE_INTERVAL;
use super::io::{Followed, Msg};
use crate::NetlinkError;
use crate::route::{RouteManager, RouteWatcher};
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

/// The kernel's routes in the tables the driver uses, followed: route
/// notifications as they come, everything re-read after an overrun and
/// every [`RECONCILE_INTERVAL`] (the kernel flushes IPv4 routes of an
/// interface that goes down without a notification).
pub(crate) struct FollowedRoutes {
    /// Route notifications.
    pub watcher: RouteWatcher,
    /// Queries for the re-reads.
    pub routes: RouteManager,
    /// The tables the driver uses, as the loop last set them.
    pub tables: watch::Receiver<BTreeSet<u32>>,
    /// The driver's clock origin, for the dump's time stamp.
    pub epoch: Instant,
}

impl Followed for FollowedRoutes {
    const WHAT: &'static str = "routes";

    async fn next(&mut self) -> Result<Option<Msg>, NetlinkError> {
        let events = self.watcher.next().await?;
        Ok((!events.is_empty()).then_some(Msg::Routes(events)))
    }

    async fn dump(&mut self) -> Result<Msg, NetlinkError> {
        let taken_at = Timestamp::from(self.epoch.elapsed());
        let tables = self.tables.borrow().clone();
        Ok(Msg::RouteDump {
            taken_at,
            routes: self.routes.list_tables(&tables).await?,
        })
    }
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

    async fn next(&mut self) -> Result<Option<Msg>, NetlinkError> {
        let events = self.watcher.next().await?;
        Ok((!events.is_empty()).then_some(Msg::Rules(events)))
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
