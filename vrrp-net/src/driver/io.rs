//! The shell's I/O: the raw sockets, and the helper tasks that do every
//! slow kernel request (netlink address changes and dumps, link events,
//! gratuitous ARPs, the state file) away from the VRRP loop, reporting
//! back over a channel.

use std::collections::{BTreeMap, HashMap};
use std::future::poll_fn;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use vrrp_core::Timestamp;

use super::api::DriverError;
use super::core::{
    AddressOp, Announcement, OwnedAddress, RouteOp, SocketKey, SocketReport, SocketSpec, VmacOp,
    VmacRemoval,
};
use crate::NetlinkError;
use crate::addr::{AddOptions, AddressManager, IfAddr};
use crate::garp::AnnounceSocket;
use crate::link::{LinkEvent, LinkInfo, LinkWatcher};
use crate::route::{KernelRoute, RouteEvent, RouteManager};
use crate::rule::{Rule, RuleEvent, RuleManager};
use crate::socket::{SocketConfig, VrrpSocket};

/// Receive buffer of each raw socket: room for thousands of queued
/// advertisements, so that a burst from 255 instances, or a few
/// milliseconds without CPU, loses none (the default holds about 190).
const RECV_BUFFER_BYTES: usize = 4 << 20;
/// Longest wait for the kernel's answer to an address change.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);
/// Period of the full re-read of links and addresses (and rules) that
/// catches any notification the kernel failed to deliver.
pub(crate) const RECONCILE_INTERVAL: Duration = Duration::from_secs(5);

/// What the helper tasks report to the loop.
#[derive(Debug)]
pub(crate) enum Msg {
    /// An accept-mode firewall change finished.
    FirewallDone(Result<(), String>),
    /// The accept-mode firewall was found changed from outside and put
    /// back.
    FirewallRepaired,
    /// Link / address notifications.
    Links(Vec<LinkEvent>),
    /// Notifications were lost (ENOBUFS); a dump follows.
    Overrun,
    /// A full read, started at `taken_at`.
    Dump {
        taken_at: Timestamp,
        links: Vec<LinkInfo>,
        addrs: Vec<IfAddr>,
    },
    /// An address change finished.
    AddressDone {
        op: AddressOp,
        add: bool,
        result: Result<bool, String>,
    },
    /// Announcements that failed.
    AnnounceFailures(u64),
    /// Announcements sent for an instance: gratuitous ARPs and
    /// unsolicited neighbour advertisements.
    Announced {
        instance: String,
        garps: u64,
        nas: u64,
    },
    /// Writing the state file failed.
    StateFileError,
    /// A virtual MAC interface was made (`ensure`, with its index) or
    /// deleted.
    VmacDone {
        name: String,
        ensure: bool,
        result: Result<u32, String>,
    },
    /// Route notifications.
    Routes(Vec<RouteEvent>),
    /// A full read of the routes, started at `taken_at`.
    RouteDump {
        taken_at: Timestamp,
        routes: Vec<KernelRoute>,
    },
    /// A route change finished.
    RouteDone {
        op: RouteOp,
        add: bool,
        result: Result<bool, String>,
    },
    /// Rule notifications.
    Rules(Vec<RuleEvent>),
    /// A full read of the rules, started at `taken_at`.
    RuleDump {
        taken_at: Timestamp,
        rules: Vec<Rule>,
    },
    /// A rule change finished.
    RuleDone {
        rule: Rule,
        add: bool,
        result: Result<bool, String>,
    },
    /// The kernel worker thread ended (it panicked: while the driver runs
    /// it holds the only receiver of its work), with why.
    KernelWorkerEnded(String),
}

/// Slow work for the kernel worker, done in order.
#[derive(Debug)]
pub(crate) enum Work {
    Add(AddressOp),
    Remove(AddressOp),
    Announce(Announcement),
    EnsureVmac(VmacOp),
    RemoveVmac(VmacRemoval),
    AddRoute(RouteOp),
    RemoveRoute(RouteOp),
    AddRule(Rule),
    RemoveRule(Rule),
    /// Make the accept-mode firewall block exactly these addresses.
    Firewall(
        Arc<tokio::sync::Mutex<crate::firewall::Firewall>>,
        std::collections::BTreeSet<crate::firewall::BlockedAddress>,
    ),
}

struct OpenSocket {
    socket: Arc<VrrpSocket>,
    join: bool,
}

/// The driver's raw sockets, by key.
#[derive(Default)]
pub(crate) struct SocketPool {
    open: BTreeMap<SocketKey, OpenSocket>,
}

/// Sockets opened for a reload, not yet in use.
pub(crate) struct Staged(Vec<(SocketKey, OpenSocket)>);

fn open_socket(spec: &SocketSpec) -> Result<OpenSocket, DriverError> {
    let config = SocketConfig::new(spec.interface.clone(), spec.key.family)
        .with_multicast(spec.join_multicast)
        .with_recv_buffer(RECV_BUFFER_BYTES);
    let socket = VrrpSocket::open(&config).map_err(|error| DriverError::Socket {
        interface: spec.interface.clone(),
        error,
    })?;
    Ok(OpenSocket {
        socket: Arc::new(socket),
        join: spec.join_multicast,
    })
}

impl SocketPool {
    fn is_as_wanted(&self, spec: &SocketSpec) -> bool {
        self.open
            .get(&spec.key)
            .is_some_and(|s| s.socket.ifindex() == spec.ifindex && s.join == spec.join_multicast)
    }

    /// Opens, re-opens and closes sockets so the pool is `wanted`.
    pub(crate) fn reconcile(&mut self, wanted: &[SocketSpec]) -> Vec<(SocketKey, SocketReport)> {
        let mut reports = Vec::new();
        for spec in wanted {
            if !self.is_as_wanted(spec) {
                match open_socket(spec) {
                    Ok(s) => {
                        tracing::debug!(interface = %spec.interface, ifindex = s.socket.ifindex(), join = s.join, "socket opened");
                        self.open.insert(spec.key, s);
                    }
                    Err(e) => {
                        // A socket on a vanished interface index is useless.
                        if self
                            .open
                            .get(&spec.key)
                            .is_some_and(|s| s.socket.ifindex() != spec.ifindex)
                        {
                            self.open.remove(&spec.key);
                        }
                        reports.push((spec.key, SocketReport::Failed(e.to_string())));
                        continue;
                    }
                }
            }
            if let Some(s) = self.open.get(&spec.key) {
                reports.push((
                    spec.key,
                    SocketReport::Opened {
                        ifindex: s.socket.ifindex(),
                        join_multicast: s.join,
                    },
                ));
            }
        }
        self.open.retain(|k, _| wanted.iter().any(|s| s.key == *k));
        reports
    }

    /// Whether every wanted socket is open as wanted.
    pub(crate) fn all_open(&self, wanted: &[SocketSpec]) -> bool {
        wanted.iter().all(|s| self.is_as_wanted(s))
    }

    /// Opens every socket of `wanted` not open that way yet, touching
    /// nothing in use: all or nothing.
    pub(crate) fn stage(&self, wanted: &[SocketSpec]) -> Result<Staged, DriverError> {
        let mut staged = Vec::new();
        for spec in wanted.iter().filter(|s| !self.is_as_wanted(s)) {
            // On error the sockets opened so far close as `staged` drops.
            staged.push((spec.key, open_socket(spec)?));
        }
        Ok(Staged(staged))
    }

    /// Puts staged sockets in use (replacing those of the same key) and
    /// reports them; sockets no longer wanted stay until the next
    /// [`SocketPool::reconcile`], so stopping instances can still say
    /// goodbye on them.
    pub(crate) fn install(&mut self, staged: Staged) -> Vec<(SocketKey, SocketReport)> {
        staged
            .0
            .into_iter()
            .map(|(key, s)| {
                let report = SocketReport::Opened {
                    ifindex: s.socket.ifindex(),
                    join_multicast: s.join,
                };
                self.open.insert(key, s);
                (key, report)
            })
            .collect()
    }

    pub(crate) fn get(&self, key: &SocketKey) -> Option<&Arc<VrrpSocket>> {
        self.open.get(key).map(|s| &s.socket)
    }

    pub(crate) fn keys(&self) -> Vec<SocketKey> {
        self.open.keys().copied().collect()
    }

    /// Waits until some socket has something to read.
    pub(crate) async fn readable(&self) -> SocketKey {
        poll_fn(|cx| {
            for (key, s) in &self.open {
                if let Poll::Ready(r) = s.socket.poll_recv_ready(cx) {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "socket readiness");
                    }
                    return Poll::Ready(*key);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Kernel drops and malformed packets over every socket.
    pub(crate) fn counters(&self) -> (u64, u64) {
        self.open.values().fold((0, 0), |(k, m), s| {
            let st = s.socket.stats();
            (k + st.kernel_drops, m + st.malformed + st.truncated)
        })
    }
}

/// Carries out address changes one at a time, in order, and starts
/// announcements after the changes queued before them.
pub(crate) async fn kernel_worker(
    addresses: AddressManager,
    routes: RouteManager,
    rules: RuleManager,
    mut work: mpsc::UnboundedReceiver<Work>,
    out: mpsc::UnboundedSender<Msg>,
) {
    let mut announcers: HashMap<u32, Arc<AnnounceSocket>> = HashMap::new();
    let mut vmacs: Option<crate::vmac::VmacManager> = None;
    while let Some(job) = work.recv().await {
        match job {
            Work::EnsureVmac(op) => {
                let result = match vmac_manager(&mut vmacs) {
                    Ok(m) => timed(m.ensure(&op.link)).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = &result {
                    tracing::warn!(instance = %op.instance, interface = %op.link.name, error = %e, "cannot make the virtual MAC interface");
                }
                let _ = out.send(Msg::VmacDone {
                    name: op.link.name,
                    ensure: true,
                    result,
                });
            }
            Work::RemoveVmac(r) => {
                let result = match vmac_manager(&mut vmacs) {
                    Ok(m) => timed(m.delete(r.ifindex, &r.name, r.base.as_deref()))
                        .await
                        .map(|_| r.ifindex),
                    Err(e) => Err(e),
                };
                let _ = out.send(Msg::VmacDone {
                    name: r.name,
                    ensure: false,
                    result,
                });
            }
            Work::Add(op) => {
                let options = AddOptions {
                    label: op.label.clone(),
                    no_dad: true,
                    attrs: op.attrs,
                };
                let r = tokio::time::timeout(
                    NETLINK_TIMEOUT,
                    addresses.add(op.ifindex, op.address.addr, op.address.prefix_len, &options),
                )
                .await;
                let result = flatten(r);
                let _ = out.send(Msg::AddressDone {
                    op,
                    add: true,
                    result,
                });
            }
            Work::Remove(op) => {
                let r = tokio::time::timeout(
                    NETLINK_TIMEOUT,
                    addresses.remove_peer(
                        op.ifindex,
                        op.address.addr,
                        op.address.prefix_len,
                        op.attrs.peer,
                    ),
                )
                .await;
                let result = flatten(r);
                let _ = out.send(Msg::AddressDone {
                    op,
                    add: false,
                    result,
                });
            }
            Work::AddRoute(op) => {
                let r =
                    tokio::time::timeout(NETLINK_TIMEOUT, routes.add(&op.route, op.ifindex)).await;
                let result = flatten(r);
                let _ = out.send(Msg::RouteDone {
                    op,
                    add: true,
                    result,
                });
            }
            Work::RemoveRoute(op) => {
                let r = tokio::time::timeout(NETLINK_TIMEOUT, routes.remove(&op.route, op.ifindex))
                    .await;
                let result = flatten(r);
                let _ = out.send(Msg::RouteDone {
                    op,
                    add: false,
                    result,
                });
            }
            Work::AddRule(rule) => {
                let r = tokio::time::timeout(NETLINK_TIMEOUT, rules.add(&rule)).await;
                let result = flatten(r);
                let _ = out.send(Msg::RuleDone {
                    rule,
                    add: true,
                    result,
                });
            }
            Work::RemoveRule(rule) => {
                let r = tokio::time::timeout(NETLINK_TIMEOUT, rules.remove(&rule)).await;
                let result = flatten(r);
                let _ = out.send(Msg::RuleDone {
                    rule,
                    add: false,
                    result,
                });
            }
            Work::Firewall(firewall, blocked) => {
                let result = firewall
                    .lock()
                    .await
                    .apply(&blocked)
                    .await
                    .map_err(|e| e.to_string());
                let _ = out.send(Msg::FirewallDone(result));
            }
            Work::Announce(a) => {
                let socket = match announcers.get(&a.ifindex) {
                    Some(s) if s.mac() == a.mac => s.clone(),
                    _ => match AnnounceSocket::open(a.ifindex, a.mac) {
                        Ok(s) => {
                            let s = Arc::new(s);
                            announcers.insert(a.ifindex, s.clone());
                            s
                        }
                        Err(e) => {
                            tracing::warn!(instance = %a.instance, error = %e, "cannot open the announcement socket");
                            let _ = out.send(Msg::AnnounceFailures(u64::from(a.count)));
                            continue;
                        }
                    },
                };
                let out = out.clone();
                tokio::spawn(async move {
                    let mut failed = 0u64;
                    for i in 0..a.count {
                        if i > 0 && !a.interval.is_zero() {
                            tokio::time::sleep(a.interval).await;
                        }
                        // Counted here, as each packet leaves.
                        let (mut garps, mut nas) = (0u64, 0u64);
                        for addr in &a.addresses {
                            match socket.announce(*addr).await {
                                Ok(()) if addr.is_ipv4() => garps += 1,
                                Ok(()) => nas += 1,
                                Err(e) => {
                                    tracing::warn!(instance = %a.instance, error = %e, "gratuitous ARP / NA failed");
                                    failed += 1;
                                    break;
                                }
                            }
                        }
                        if garps + nas > 0 {
                            let _ = out.send(Msg::Announced {
                                instance: a.instance.clone(),
                                garps,
                                nas,
                            });
                        }
                    }
                    if failed > 0 {
                        let _ = out.send(Msg::AnnounceFailures(failed));
                    }
                });
            }
        }
    }
}

/// The worker's [`crate::vmac::VmacManager`], opened on first use.
fn vmac_manager(
    slot: &mut Option<crate::vmac::VmacManager>,
) -> Result<&mut crate::vmac::VmacManager, String> {
    if slot.is_none() {
        *slot = Some(crate::vmac::VmacManager::new().map_err(|e| e.to_string())?);
    }
    slot.as_mut().ok_or_else(|| "no netlink socket".to_owned())
}

/// A virtual MAC request (a few netlink round trips), bounded in time.
async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, NetlinkError>>,
) -> Result<T, String> {
    let limit = NETLINK_TIMEOUT * 4;
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer from the kernel in {limit:?}")),
    }
}

fn flatten(
    r: Result<Result<bool, NetlinkError>, tokio::time::error::Elapsed>,
) -> Result<bool, String> {
    match r {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer from the kernel in {NETLINK_TIMEOUT:?}")),
    }
}

/// What a followed table's notifications call for.
pub(crate) enum Next {
    /// A message for the loop.
    Tell(Msg),
    /// Nothing to tell it.
    Nothing,
    /// A change the kernel makes to the table without notifying it
    /// happened: re-read it now.
    Reread,
}

/// A kernel table a watcher task follows (links and addresses, routes,
/// rules): its notifications as they come, and everything re-read after
/// an overrun, after an error, when its notifications say so, and every
/// [`Followed::PERIOD`].
pub(crate) trait Followed {
    /// What the table holds, for logs.
    const WHAT: &'static str;
    /// Period of the full re-read that catches any notification the kernel
    /// failed to deliver.
    const PERIOD: Duration = RECONCILE_INTERVAL;
    /// The next notifications.
    async fn next(&mut self) -> Result<Next, NetlinkError>;
    /// Everything the kernel has, as a message for the loop.
    async fn dump(&mut self) -> Result<Msg, NetlinkError>;
}

/// Follows `table` until the loop is gone.
pub(crate) async fn follow<T: Followed>(mut table: T, out: mpsc::UnboundedSender<Msg>) {
    let mut tick = tokio::time::interval(T::PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let need_dump = tokio::select! {
            // On a thread of its own, it ends with the loop, not at its
            // next message.
            () = out.closed() => return,
            next = table.next() => match next {
                Ok(Next::Tell(msg)) => {
                    if out.send(msg).is_err() {
                        return;
                    }
                    false
                }
                Ok(Next::Nothing) => false,
                Ok(Next::Reread) => true,
                Err(NetlinkError::Overrun) => {
                    let _ = out.send(Msg::Overrun);
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, table = T::WHAT, "watcher failed; re-reading the table");
                    // This task's own pause: the VRRP loop goes on.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    true
                }
            },
            _ = tick.tick() => true,
        };
        if need_dump {
            match table.dump().await {
                Ok(msg) => {
                    if out.send(msg).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, table = T::WHAT, "cannot re-read the table"),
            }
        }
    }
}

/// The kernel's links and addresses, followed.
pub(crate) struct FollowedLinks {
    /// Link and address notifications (and the link table they keep).
    pub watcher: LinkWatcher,
    /// Queries for the re-reads.
    pub addresses: AddressManager,
    /// The driver's clock origin, for the dump's time stamp.
    pub epoch: Instant,
}

impl Followed for FollowedLinks {
    const WHAT: &'static str = "links and addresses";

    async fn next(&mut self) -> Result<Next, NetlinkError> {
        let first = self.watcher.next().await?;
        let mut batch = vec![first];
        while let Some(e) = self.watcher.try_next() {
            batch.push(e);
        }
        Ok(Next::Tell(Msg::Links(batch)))
    }

    /// Links, then addresses.
    async fn dump(&mut self) -> Result<Msg, NetlinkError> {
        let taken_at = Timestamp::from(self.epoch.elapsed());
        self.watcher.resync().await?;
        // The dump says it all; the differences resync queued are redundant.
        while self.watcher.try_next().is_some() {}
        let addrs = self.addresses.list(None).await?;
        Ok(Msg::Dump {
            taken_at,
            links: self.watcher.links().cloned().collect(),
            addrs,
        })
    }
}

/// Writes the latest record of added addresses, off the loop; a burst of
/// changes is one write.
pub(crate) async fn write_state(
    path: PathBuf,
    mut latest: watch::Receiver<Option<Vec<OwnedAddress>>>,
    out: mpsc::UnboundedSender<Msg>,
) {
    while latest.changed().await.is_ok() {
        let Some(owned) = latest.borrow_and_update().clone() else {
            continue;
        };
        let p = path.clone();
        let result =
            tokio::task::spawn_blocking(move || super::state_file::write(&p, &owned)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(path = %path.display(), error = %e, "cannot write the state file");
                let _ = out.send(Msg::StateFileError);
            }
            Err(e) => {
                tracing::error!(error = %e, "state file writer failed");
                let _ = out.send(Msg::StateFileError);
            }
        }
    }
}

/// How often the accept-mode firewall table is checked against what was
/// installed.
const FIREWALL_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks the accept-mode firewall table now and then and puts it back
/// when an operator deleted or changed it. Does nothing (spawns no
/// process) while no table is installed.
pub(crate) async fn watch_firewall(
    firewall: Arc<tokio::sync::Mutex<crate::firewall::Firewall>>,
    out: mpsc::UnboundedSender<Msg>,
) {
    let mut tick = tokio::time::interval(FIREWALL_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if out.is_closed() {
            return;
        }
        let mut fw = firewall.lock().await;
        if fw.installed().is_none() {
            continue;
        }
        let msg = match fw.repair().await {
            Ok(false) => continue,
            Ok(true) => Msg::FirewallRepaired,
            Err(e) => Msg::FirewallDone(Err(e.to_string())),
        };
        if out.send(msg).is_err() {
            return;
        }
    }
}
