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
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use vrrp_core::Timestamp;

use super::io::{Msg, RECONCILE_INTERVAL};
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

async fn dump(
    routes: &RouteManager,
    tables: &watch::Receiver<BTreeSet<u32>>,
    epoch: Instant,
) -> Result<Msg, NetlinkError> {
    let taken_at = Timestamp::from(epoch.elapsed());
    let tables = tables.borrow().clone();
    Ok(Msg::RouteDump {
        taken_at,
        routes: routes.list_tables(&tables).await?,
    })
}

/// Follows route notifications; re-reads the routes of `tables` (the ones
/// the driver uses) after an overrun and every [`RECONCILE_INTERVAL`] (the
/// kernel flushes IPv4 routes of an interface that goes down without a
/// notification).
pub(crate) async fn watch_routes(
    watcher: RouteWatcher,
    routes: RouteManager,
    tables: watch::Receiver<BTreeSet<u32>>,
    epoch: Instant,
    out: mpsc::UnboundedSender<Msg>,
) {
    let mut tick = tokio::time::interval(RECONCILE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let need_dump = tokio::select! {
            events = watcher.next() => match events {
                Ok(events) => {
                    if !events.is_empty() && out.send(Msg::Routes(events)).is_err() {
                        return;
                    }
                    false
                }
                Err(NetlinkError::Overrun) => {
                    let _ = out.send(Msg::Overrun);
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "route watcher failed; re-reading routes");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    true
                }
            },
            _ = tick.tick() => true,
        };
        if need_dump {
            match dump(&routes, &tables, epoch).await {
                Ok(msg) => {
                    if out.send(msg).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot re-read routes"),
            }
        }
    }
}

async fn dump_rules(rules: &RuleManager, epoch: Instant) -> Result<Msg, NetlinkError> {
    let taken_at = Timestamp::from(epoch.elapsed());
    Ok(Msg::RuleDump {
        taken_at,
        rules: rules.list().await?,
    })
}

/// Follows rule notifications; re-reads every rule after an overrun and
/// every [`RECONCILE_INTERVAL`].
pub(crate) async fn watch_rules(
    watcher: RuleWatcher,
    rules: RuleManager,
    epoch: Instant,
    out: mpsc::UnboundedSender<Msg>,
) {
    let mut tick = tokio::time::interval(RECONCILE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let need_dump = tokio::select! {
            events = watcher.next() => match events {
                Ok(events) => {
                    if !events.is_empty() && out.send(Msg::Rules(events)).is_err() {
                        return;
                    }
                    false
                }
                Err(NetlinkError::Overrun) => {
                    let _ = out.send(Msg::Overrun);
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rule watcher failed; re-reading rules");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    true
                }
            },
            _ = tick.tick() => true,
        };
        if need_dump {
            match dump_rules(&rules, epoch).await {
                Ok(msg) => {
                    if out.send(msg).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot re-read rules"),
            }
        }
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
