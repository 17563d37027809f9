//! The shell's route I/O: the record of the routes the driver added
//! (`STATE_FILE.routes`, one route a line in [`Route`]'s words, written
//! whole and renamed like the address record), and the task that follows
//! the kernel's route notifications and re-reads every route after an
//! overrun and every [`RECONCILE_INTERVAL`].

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use vrrp_core::Timestamp;

use super::io::{Msg, RECONCILE_INTERVAL};
use crate::NetlinkError;
use crate::route::{Route, RouteManager, RouteWatcher};

/// The route record next to the address record `state`.
pub(crate) fn routes_path(state: &Path) -> PathBuf {
    let mut p = state.to_owned().into_os_string();
    p.push(".routes");
    PathBuf::from(p)
}

/// Reads a route record; lines that do not parse are skipped with a
/// warning (a route the record does not list is simply not removed).
pub(crate) fn parse(text: &str) -> Vec<Route> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .filter_map(|line| match line.parse::<Route>() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(line, error = %e, "ignoring a line of the route state file");
                None
            }
        })
        .collect()
}

/// The text of a route record.
pub(crate) fn render(routes: &[Route]) -> String {
    let mut text = String::from("# vrrp-net: routes this driver added\n");
    for r in routes {
        text.push_str(&format!("{r}\n"));
    }
    text
}

/// Reads the record at `path` (none yet: nothing owned).
pub(crate) fn read(path: &Path) -> io::Result<Vec<Route>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Writes the record atomically, or removes it when nothing is owned
/// (blocking: call it off the VRRP loop).
pub(crate) fn write(path: &Path, routes: &[Route]) -> io::Result<()> {
    if routes.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut tmp = path.to_owned().into_os_string();
    tmp.push(".tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(render(routes).as_bytes())?;
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Writes the latest route record, off the loop.
pub(crate) async fn write_routes(
    path: PathBuf,
    mut latest: watch::Receiver<Option<Vec<Route>>>,
    out: mpsc::UnboundedSender<Msg>,
) {
    while latest.changed().await.is_ok() {
        let Some(routes) = latest.borrow_and_update().clone() else {
            continue;
        };
        let p = path.clone();
        let result = tokio::task::spawn_blocking(move || write(&p, &routes)).await;
        if !matches!(result, Ok(Ok(()))) {
            tracing::error!(path = %path.display(), "cannot write the route state file");
            let _ = out.send(Msg::StateFileError);
        }
    }
}

async fn dump(routes: &RouteManager, epoch: Instant) -> Result<Msg, NetlinkError> {
    let taken_at = Timestamp::from(epoch.elapsed());
    Ok(Msg::RouteDump {
        taken_at,
        routes: routes.list().await?,
    })
}

/// Follows route notifications; re-reads every route after an overrun
/// and every [`RECONCILE_INTERVAL`] (the kernel flushes IPv4 routes of an
/// interface that goes down without a notification).
pub(crate) async fn watch_routes(
    watcher: RouteWatcher,
    routes: RouteManager,
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
            match dump(&routes, epoch).await {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse(&render(&routes)), routes);
        let text = "nonsense\n192.0.2.0/24 dev eth0 # note\n\n192.0.2.1/24 dev eth0\n";
        assert_eq!(parse(text).len(), 1);
    }
}
