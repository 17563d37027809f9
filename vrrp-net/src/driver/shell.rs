//! The thin tokio shell around [`DriverCore`]: one loop on the driver's
//! own thread that reads the clock and the sockets, feeds the core and
//! carries out its effects without ever waiting on the kernel — sends
//! that would block are dropped and counted, netlink requests and
//! announcements go to the kernel worker on a thread of its own, file
//! writes to helper tasks; both answer over a channel. The kernel's routes
//! are read on another thread (a full routing table may be there), which
//! hands over only the few the driver follows.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use vrrp_core::{Priority, RxMeta, Timestamp, TrackId};

use super::api::{DriverConfig, DriverError, ReloadSummary, Snapshot, StateEvent, TrackKey};
use super::core::{DriverCore, Effect, OwnedAddress, SendBatch, SendReport, SocketKey};
use super::io::{
    FollowedLinks, Msg, SocketPool, Work, follow, kernel_worker, watch_firewall, write_state,
};
use super::route_io::{
    FollowedRoutes, FollowedRules, read_followed, routes_path, rules_path, write_records,
};
use super::state_file::StateFile;
use crate::addr::AddressManager;
use crate::link::{LinkWatcher, list_links};
use crate::route::{Route, RouteManager, RouteWatcher};
use crate::rule::{Rule, RuleManager, RuleWatcher};
use crate::socket::{RECV_BATCH, RecvBatch};
use crate::timer::PreciseTimer;

/// How early the timer wakes for a takeover deadline, to be spun away.
/// Covers the wake-up latency of an idle vCPU (p99 3 ms measured on the
/// development VM, see `examples/wake_latency.rs`). The spin runs on the
/// driver's own thread, never on a shared tokio worker.
const TAKEOVER_LEAD: Duration = Duration::from_millis(3);
/// Packets read from one socket per turn of the loop before timers and
/// other sockets get their turn.
const READ_BUDGET: usize = 512;
/// Packets read from each socket before a timer is handled: every one
/// queued in all but a flood (a 4 MiB buffer holds about 60,000).
const DRAIN_BUDGET: usize = 65_536;
/// How long a graceful stop waits for the kernel to confirm the removal
/// of the addresses.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A request from the handle.
pub(crate) enum Command {
    SetPriority(String, Priority, oneshot::Sender<Result<(), DriverError>>),
    Reconfigure(
        Box<DriverConfig>,
        oneshot::Sender<Result<ReloadSummary, DriverError>>,
    ),
    SetTrack(TrackId, bool, oneshot::Sender<Result<(), DriverError>>),
    /// Puts instances in maintenance or takes them out.
    SetMaintenance(Vec<String>, bool, oneshot::Sender<Result<(), DriverError>>),
    /// Replaces the gated routes (see `DriverCore::set_gated_routes`).
    SetGatedRoutes(Vec<Route>, oneshot::Sender<()>),
    /// The flight recorder's contents.
    FlightRecord(oneshot::Sender<super::core::record::FlightRecord>),
}

/// What the handle keeps of a started shell.
pub(crate) struct Parts {
    pub(crate) snapshot: watch::Receiver<Snapshot>,
    pub(crate) events: broadcast::Receiver<StateEvent>,
    pub(crate) commands: mpsc::Sender<Command>,
}

pub(crate) struct Shell {
    core: DriverCore,
    epoch: Instant,
    timer: PreciseTimer,
    sockets: SocketPool,
    msgs: mpsc::UnboundedReceiver<Msg>,
    work: mpsc::UnboundedSender<Work>,
    persist: Option<watch::Sender<Option<Vec<OwnedAddress>>>>,
    writer: Option<tokio::task::JoinHandle<()>>,
    persist_routes: Option<watch::Sender<Option<Vec<Route>>>>,
    route_writer: Option<tokio::task::JoinHandle<()>>,
    /// The tables the route watcher reads.
    /// The routes the follower keeps ([`DriverCore::followed_routes`]).
    followed_routes: watch::Sender<std::collections::BTreeSet<crate::route::RouteKey>>,
    persist_rules: Option<watch::Sender<Option<Vec<Rule>>>>,
    rule_writer: Option<tokio::task::JoinHandle<()>>,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<StateEvent>,
    snapshot: watch::Sender<Snapshot>,
    cancel: CancellationToken,
    abort: CancellationToken,
    rx: RecvBatch,
    state: Option<StateFile>,
    promote: super::promote::PromoteSecondaries,
    /// The accept-mode firewall, shared with the kernel worker (which
    /// applies changes in order with the address changes) and the task
    /// that repairs it.
    firewall: std::sync::Arc<tokio::sync::Mutex<crate::firewall::Firewall>>,
    /// A firewall change was asked for: the table is deleted at stop.
    firewall_used: bool,
    /// Effects held back while a chain of takeovers sends its
    /// advertisements (see [`Shell::send_adverts_now`]).
    later: VecDeque<Effect>,
    /// `later` holds a change of sockets: advertisements wait behind it.
    later_sockets: bool,
    /// `later` holds a [`Effect::PersistOwned`].
    later_persist: bool,
    /// The kernel worker's and the route follower's threads, joined once
    /// the driver's runtime is gone (see [`Shell::take_threads`]).
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Shell {
    /// Sets everything up on the current (driver) thread: the record of
    /// added addresses, netlink, a first read of the kernel, the sockets;
    /// then starts the instances.
    pub(crate) async fn start(
        config: DriverConfig,
        cancel: CancellationToken,
        abort: CancellationToken,
    ) -> Result<(Shell, Parts), DriverError> {
        let (state, owned) = StateFile::open(config.state_file.as_deref())?;
        let mut core = DriverCore::new(&config, owned)?;
        let mut promote = super::promote::PromoteSecondaries::default();
        promote.apply(&config.instances);
        core.adopt_owned_links(super::state_file::read_links(
            &super::state_file::links_path(state.path()),
        ));
        let routes_file = routes_path(state.path());
        let owned_routes =
            super::route_io::read(&routes_file).map_err(|error| DriverError::StateFile {
                path: routes_file.clone(),
                error,
            })?;
        core.restore_owned_routes(owned_routes);
        let rules_file = rules_path(state.path());
        let owned_rules =
            super::route_io::read(&rules_file).map_err(|error| DriverError::StateFile {
                path: rules_file.clone(),
                error,
            })?;
        core.restore_owned_rules(owned_rules);
        let rule_watcher = RuleWatcher::new()?;
        let rule_queries = RuleManager::new()?;
        let route_queries = RouteManager::new()?;
        let watcher = LinkWatcher::new().await?;
        let queries = AddressManager::new()?;
        let timer = PreciseTimer::new().map_err(DriverError::Timer)?;
        // The timer's epoch must be ours: take both together.
        let epoch = Instant::now();
        let (msgs_tx, msgs) = mpsc::unbounded_channel();
        let (followed_routes, followed_routes_rx) = watch::channel(core.followed_routes());
        // Subscribed before the first read, as the other watchers are.
        let route_follower =
            start_route_follower(followed_routes_rx, epoch, msgs_tx.clone()).await?;
        let links = list_links().await?;
        let addrs = queries.list(None).await?;
        core.handle_dump(Timestamp::ZERO, links, addrs);
        let followed = followed_routes.borrow().clone();
        let kernel_routes = read_followed(&route_queries, &followed).await?;
        drop(route_queries);
        core.handle_route_dump(Timestamp::ZERO, Timestamp::ZERO, kernel_routes);
        let kernel_rules = rule_queries.list().await?;
        core.handle_rule_dump(Timestamp::ZERO, Timestamp::ZERO, kernel_rules);
        let (work, work_rx) = mpsc::unbounded_channel();
        let (persist, persist_rx) = watch::channel(None);
        let (commands_tx, commands) = mpsc::channel(64);
        let (events, events_rx) = broadcast::channel(1024);
        let (snapshot, snapshot_rx) = watch::channel(Snapshot::default());
        let (persist_routes, persist_routes_rx) = watch::channel(None);
        let (persist_rules, persist_rules_rx) = watch::channel(None);
        let kernel = start_kernel_worker(work_rx, msgs_tx.clone()).await?;
        tokio::spawn(follow(
            FollowedLinks {
                watcher,
                addresses: queries,
                epoch,
            },
            msgs_tx.clone(),
        ));
        let firewall = std::sync::Arc::new(tokio::sync::Mutex::new(
            crate::firewall::Firewall::new(config.firewall.clone()),
        ));
        tokio::spawn(watch_firewall(firewall.clone(), msgs_tx.clone()));
        tokio::spawn(follow(
            FollowedRules {
                watcher: rule_watcher,
                rules: rule_queries,
                epoch,
            },
            msgs_tx.clone(),
        ));
        let rule_writer =
            tokio::spawn(write_records(rules_file, persist_rules_rx, msgs_tx.clone()));
        let route_writer = tokio::spawn(write_records(
            routes_file,
            persist_routes_rx,
            msgs_tx.clone(),
        ));
        let writer = tokio::spawn(write_state(state.path().to_owned(), persist_rx, msgs_tx));
        let mut shell = Shell {
            core,
            epoch,
            timer,
            sockets: SocketPool::default(),
            msgs,
            work,
            persist: Some(persist),
            writer: Some(writer),
            persist_routes: Some(persist_routes),
            route_writer: Some(route_writer),
            followed_routes,
            persist_rules: Some(persist_rules),
            rule_writer: Some(rule_writer),
            commands,
            events,
            snapshot,
            cancel,
            abort,
            rx: RecvBatch::new(),
            state: Some(state),
            promote,
            firewall,
            firewall_used: false,
            later: VecDeque::new(),
            later_sockets: false,
            later_persist: false,
            threads: vec![kernel, route_follower],
        };
        // Open the sockets before starting, so that instances start bound:
        // first the virtual MAC interfaces they are on (a little while at
        // most; an instance whose interface is not made starts in Fault).
        shell.apply_effects();
        let give_up = tokio::time::Instant::now() + STOP_GRACE;
        while shell.core.pending_link_changes() > 0 {
            match tokio::time::timeout_at(give_up, shell.msgs.recv()).await {
                Ok(Some(msg)) => {
                    shell.message(msg);
                    shell.apply_effects();
                }
                _ => break,
            }
        }
        let now = shell.now();
        shell.core.start(now);
        shell.apply_effects();
        shell.publish();
        Ok((
            shell,
            Parts {
                snapshot: snapshot_rx,
                events: events_rx,
                commands: commands_tx,
            },
        ))
    }

    fn now(&self) -> Timestamp {
        Timestamp::from(self.epoch.elapsed())
    }

    /// The loop. Returns when cancelled (after a graceful stop) or aborted
    /// (at once, as a crash would).
    pub(crate) async fn run(mut self) -> Result<(), DriverError> {
        let mut armed: Option<Timestamp> = None;
        let mut failure = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.core.poll_timeout().map(|d| {
                if d.takeover {
                    d.at - TAKEOVER_LEAD
                } else {
                    d.at
                }
            });
            // Re-armed only when the wake must come sooner (or the timer
            // is idle): a deadline that moved later, as a backup's does
            // with every advertisement it hears, lets the armed timer fire
            // early once and re-arms then, instead of costing a
            // timerfd_settime per advertisement.
            let rearm = match (deadline, armed) {
                (Some(d), Some(a)) => d < a,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if rearm {
                armed = deadline;
                if let Err(e) = self.timer.reset(deadline.map(Timestamp::since_epoch)) {
                    failure = Some(DriverError::Timer(e));
                    break;
                }
            }
            tokio::select! {
                biased;
                () = self.abort.cancelled() => return Ok(()),
                () = self.cancel.cancelled() => break,
                fired = self.timer.expired() => {
                    if let Err(e) = fired {
                        failure = Some(DriverError::Timer(e));
                        break;
                    }
                    armed = None;
                    // Early for a deadline that has since moved later:
                    // only re-arm (at the top of the loop).
                    if deadline.is_some_and(|d| d > self.now()) {
                        continue;
                    }
                    // A master that dies leaves a chain of takeovers, one
                    // per instance it ran, as close together as its
                    // advertisements were: each is spun out and sent here
                    // in turn, without a round trip through the timer and
                    // the reactor (bounded: a takeover does not recur, and
                    // a live master's advertisement pushes it away). Only
                    // the advertisements go out during the chain, those
                    // of every takeover a wake finds due in one
                    // `sendmmsg`; address changes, announcements, events
                    // and the status (a snapshot of every instance) follow
                    // once the chain is done, at the end of this turn; the
                    // core does not even work them out until then (its
                    // hurry), as that took a takeover with an address
                    // longer than the kernel takes to send an
                    // advertisement, and the chain fell behind.
                    self.core.set_hurry(self.now(), true);
                    loop {
                        self.wait_out_takeover();
                        let now = self.now();
                        // Advertisements that arrived before the deadline
                        // but were not read yet (a busy CPU) count before
                        // the timer does, or a live master looks dead.
                        for key in self.sockets.keys() {
                            self.read_socket(key, DRAIN_BUDGET);
                        }
                        self.core.handle_timeout(now);
                        self.send_adverts_now();
                        let next = self.core.poll_timeout();
                        if !next.is_some_and(|d| d.takeover && d.at <= self.now() + TAKEOVER_LEAD) {
                            break;
                        }
                    }
                    // What the chain's takeovers put off is made now, in
                    // order (carried out at the end of this turn).
                    self.core.set_hurry(self.now(), false);
                }
                Some(cmd) = self.commands.recv() => self.command(cmd),
                Some(msg) = self.msgs.recv() => {
                    if let Msg::KernelWorkerEnded(why) = msg {
                        tracing::error!(reason = %why, "the kernel worker thread ended: stopping");
                        failure = Some(DriverError::KernelWorker(why));
                        break;
                    }
                    self.message(msg);
                }
                _ = tick.tick() => {
                    #[cfg(debug_assertions)]
                    injected_panic(self.epoch);
                    // Sockets that could not be opened are tried again.
                    let wanted = self.core.wanted_sockets();
                    if !self.sockets.all_open(&wanted) {
                        let now = self.now();
                        for (key, report) in self.sockets.reconcile(&wanted) {
                            self.core.handle_socket_report(now, key, report);
                        }
                    }
                    self.publish();
                }
                // Last: a flood of packets must not starve the rest, and
                // each turn reads at most READ_BUDGET of them.
                key = self.sockets.readable() => self.read_socket(key, READ_BUDGET),
            }
            // Timers due by now fire after every batch of input, once
            // what is queued has been read: after a stall longer than
            // Master_Down_Interval - Advertisement_Interval, more than one
            // READ_BUDGET of advertisements that arrived in time can be
            // waiting, and the masters that sent them are alive.
            let now = self.now();
            if self.core.poll_timeout().is_some_and(|d| d.at <= now) {
                for key in self.sockets.keys() {
                    self.read_socket(key, DRAIN_BUDGET);
                }
                self.core.handle_timeout(now);
            }
            self.apply_effects();
        }
        // A failed timer stops the driver too, gracefully: the addresses
        // go and the peers hear priority 0 rather than silence.
        self.stop().await;
        failure.map_or(Ok(()), Err)
    }

    /// Graceful stop: priority 0 from masters, every address the driver
    /// added removed (waiting a little for the kernel to confirm), and the
    /// record written.
    async fn stop(&mut self) {
        let now = self.now();
        self.core.shutdown(now);
        self.apply_effects();
        let give_up = tokio::time::Instant::now() + STOP_GRACE;
        while self.core.pending_address_changes() + self.core.pending_link_changes() > 0 {
            match tokio::time::timeout_at(give_up, self.msgs.recv()).await {
                Ok(Some(msg)) => {
                    self.message(msg);
                    self.apply_effects();
                }
                _ => break,
            }
        }
        // The accept-mode firewall goes last, after the addresses (the
        // lock waits for a change the worker is making).
        if self.firewall_used {
            let mut fw = self.firewall.lock().await;
            if let Err(e) = fw.remove().await {
                tracing::error!(error = %e, "cannot delete the accept-mode firewall table");
            }
        }
        // The writer finishes what it was writing, then the record is
        // written (or removed, when empty) one last time.
        self.persist = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
        self.persist_routes = None;
        if let Some(writer) = self.route_writer.take() {
            let _ = writer.await;
        }
        self.persist_rules = None;
        if let Some(writer) = self.rule_writer.take() {
            let _ = writer.await;
        }
        let owned = self.core.owned();
        if let Some(state) = &self.state {
            let path = super::state_file::links_path(state.path());
            if let Err(e) = super::state_file::write_links(&path, &self.core.owned_links()) {
                tracing::error!(path = %path.display(), error = %e, "cannot write the record of virtual MAC interfaces");
            }
        }
        if let Some(state) = self.state.take() {
            let routes_file = routes_path(state.path());
            if let Err(e) = super::route_io::write(&routes_file, &self.core.owned_routes()) {
                tracing::error!(path = %routes_file.display(), error = %e, "cannot write the route state file");
            }
            let rules_file = rules_path(state.path());
            if let Err(e) = super::route_io::write(&rules_file, &self.core.owned_rules()) {
                tracing::error!(path = %rules_file.display(), error = %e, "cannot write the rule state file");
            }
            let path = state.path().to_owned();
            if let Err(e) = state.close(&owned) {
                tracing::error!(path = %path.display(), error = %e, "cannot write the state file");
            }
        }
        self.promote.restore();
        self.publish();
    }

    /// Called when the timer fires: if the next deadline is a takeover
    /// armed [`TAKEOVER_LEAD`] early, spins until it is due. Spinning (a
    /// few milliseconds, only when a master has gone quiet) keeps a
    /// takeover within a fraction of a millisecond of
    /// Master_Down_Interval on a virtual machine whose idle vCPU wakes up
    /// late; a live master's advertisement keeps pushing the deadline
    /// away before the early wake-up is reached.
    fn wait_out_takeover(&self) {
        let Some(d) = self.core.poll_timeout().filter(|d| d.takeover) else {
            return;
        };
        let give_up = Instant::now() + TAKEOVER_LEAD;
        while self.now() < d.at && Instant::now() < give_up {
            std::hint::spin_loop();
        }
    }

    /// The one receive path: reads what is queued on a socket (at most
    /// `budget` datagrams, a `recvmmsg` batch at a time) and hands each
    /// packet to the core with its arrival time.
    fn read_socket(&mut self, key: SocketKey, budget: usize) {
        let Some(socket) = self.sockets.get(&key).cloned() else {
            return;
        };
        let mut left = budget;
        while left > 0 {
            // A packet's age is measured from a wall-clock reading (its
            // kernel stamp is wall-clock too) and taken from a reading of
            // our clock made with it, for every batch: a `now` read once
            // before a long drain (a burst read while it still arrives)
            // would date the later packets too early by the time the drain
            // took, and their Master_Down_Timers would fire that much
            // early. The wall clock is read first: any error is late.
            let wall = std::time::SystemTime::now();
            let now = self.now();
            let core = &mut self.core;
            let read = socket.read_batch(&mut self.rx, left, |p| {
                let age = packet_age(wall, p.received).min(now.since_epoch());
                let meta = RxMeta {
                    src: p.src,
                    dst: p.dst,
                    ttl: p.ttl,
                };
                core.handle_packet(now, key, now - age, &meta, p.payload);
            });
            match read {
                // A full batch: there may be more.
                Ok(n) if n >= left.min(RECV_BATCH) => left -= n,
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(interface = socket.interface(), error = %e, "receive failed");
                    break;
                }
            }
        }
    }

    fn message(&mut self, msg: Msg) {
        let now = self.now();
        match msg {
            Msg::Links(events) => self.core.handle_link_events(now, events),
            Msg::Overrun => self.core.handle_overrun(),
            Msg::Dump {
                taken_at,
                links,
                addrs,
            } => self.core.handle_dump_taken_at(now, taken_at, links, addrs),
            Msg::AddressDone { op, add, result } => {
                self.core.handle_address_result(now, &op, add, result);
            }
            Msg::AnnounceFailures(n) => self.core.handle_announce_failures(n),
            Msg::Announced {
                instance,
                garps,
                nas,
            } => self.core.handle_announced(&instance, garps, nas),
            Msg::StateFileError => self.core.handle_state_file_error(),
            Msg::VmacDone {
                name,
                ensure,
                result,
            } => self.core.handle_vmac_result(now, &name, ensure, result),
            Msg::Routes(events) => self.core.handle_route_events(now, events),
            Msg::RouteDump { taken_at, routes } => {
                self.core.handle_route_dump(now, taken_at, routes);
            }
            Msg::RouteDone { op, add, result } => {
                self.core.handle_route_result(now, &op, add, result);
            }
            Msg::Rules(events) => self.core.handle_rule_events(now, events),
            Msg::RuleDump { taken_at, rules } => self.core.handle_rule_dump(now, taken_at, rules),
            Msg::RuleDone { rule, add, result } => {
                self.core.handle_rule_result(now, &rule, add, result);
            }
            Msg::FirewallDone(result) => self.core.handle_firewall_result(now, result),
            Msg::FirewallRepaired => self.core.handle_firewall_repaired(),
            // While stopping (the loop acts on it before): nothing more
            // will be confirmed, the wait for confirmations runs out.
            Msg::KernelWorkerEnded(why) => {
                tracing::error!(reason = %why, "the kernel worker thread ended while stopping");
            }
        }
    }

    /// The helper threads, for [`super::run_driver`] to join once the
    /// shell (and with it their queue and the loop's) is gone.
    pub(crate) fn take_threads(&mut self) -> Vec<std::thread::JoinHandle<()>> {
        std::mem::take(&mut self.threads)
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::SetPriority(name, priority, reply) => {
                let _ = reply.send(self.core.set_priority(now, &name, priority));
            }
            Command::SetTrack(id, up, reply) => {
                let _ = reply.send(self.core.set_track(now, &TrackKey::User(id), up));
            }
            Command::SetMaintenance(names, on, reply) => {
                let _ = reply.send(self.core.set_maintenance(now, &names, on));
            }
            Command::FlightRecord(reply) => {
                let _ = reply.send(self.core.flight_record());
            }
            Command::SetGatedRoutes(routes, reply) => {
                self.core.set_gated_routes(now, routes);
                self.publish_followed_routes();
                let _ = reply.send(());
            }
            Command::Reconfigure(config, reply) => {
                let result = self.reconfigure(*config);
                if let Err(e) = &result {
                    tracing::error!(error = %e, "reload refused; nothing changed");
                }
                let _ = reply.send(result);
            }
        }
    }

    /// Reload as a transaction: check and plan, open the sockets the plan
    /// needs, and only then apply it.
    fn reconfigure(&mut self, config: DriverConfig) -> Result<ReloadSummary, DriverError> {
        let plan = self.core.plan_reload(config.clone())?;
        let staged = self.sockets.stage(plan.sockets())?;
        self.promote.apply(&config.instances);
        let opened = self.sockets.install(staged);
        let now = self.now();
        let summary = self.core.commit_reload(now, plan, opened);
        self.publish_followed_routes();
        tracing::info!(
            unchanged = ?summary.unchanged,
            updated = ?summary.updated,
            restarted = ?summary.restarted,
            added = ?summary.added,
            removed = ?summary.removed,
            "configuration reloaded"
        );
        Ok(summary)
    }

    /// Carries out the core's effects, in order, without waiting, and
    /// publishes the status if it changed.
    fn apply_effects(&mut self) {
        self.carry_out_effects();
        // While the kernel's answers queue up (hundreds of addresses added
        // after a takeover), the status waits for the last of them: each
        // snapshot covers every instance.
        if self.msgs.is_empty() && self.core.take_changed() {
            self.publish();
        }
    }

    /// Carries out the effects held back by [`Shell::send_adverts_now`],
    /// then the core's, in order, without waiting.
    fn carry_out_effects(&mut self) {
        while let Some(effect) = self.later.pop_front().or_else(|| self.core.poll_effect()) {
            self.carry_out(effect);
        }
    }

    /// During a chain of takeovers: puts the core's advertisements on the
    /// wire now and holds every other effect back, in order, for
    /// [`Shell::carry_out_effects`]. An advertisement overtakes address
    /// changes, announcements and events (the core already orders each
    /// instance's advertisement before its addresses), never a change of
    /// sockets it may need.
    fn send_adverts_now(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Send(batch) if !self.later_sockets => self.send(&batch),
                // One write of the record after the chain is enough.
                Effect::PersistOwned if self.later_persist => {}
                other => {
                    self.later_persist |= matches!(other, Effect::PersistOwned);
                    self.later_sockets |= matches!(other, Effect::Sockets(_));
                    self.later.push_back(other);
                }
            }
        }
    }

    /// One batch of advertisements, in one `sendmmsg` (a few when the
    /// batch is longer than one call takes).
    fn send(&mut self, batch: &SendBatch) {
        let report = match self.sockets.get(&batch.socket) {
            Some(socket) => {
                let datagrams: Vec<(&[u8], std::net::IpAddr)> = batch.iter().collect();
                let outcome = socket.send_batch_now(Some(batch.source), &datagrams);
                for e in &outcome.errors {
                    tracing::debug!(error = %e, "send failed");
                }
                SendReport {
                    sent: outcome.sent,
                    dropped: outcome.dropped,
                    failed: outcome.errors.len(),
                }
            }
            None => SendReport {
                failed: batch.datagrams.len(),
                ..SendReport::default()
            },
        };
        self.core.handle_send_report(report);
    }

    /// Carries out one effect without waiting.
    fn carry_out(&mut self, effect: Effect) {
        if self.later.is_empty() {
            self.later_sockets = false;
            self.later_persist = false;
        }
        match effect {
            Effect::Send(batch) => self.send(&batch),
            Effect::AddAddress(op) => {
                let _ = self.work.send(Work::Add(op));
            }
            Effect::RemoveAddress(op) => {
                let _ = self.work.send(Work::Remove(op));
            }
            Effect::Announce(a) => {
                let _ = self.work.send(Work::Announce(a));
            }
            Effect::Sockets(wanted) => {
                let now = self.now();
                for (key, report) in self.sockets.reconcile(&wanted) {
                    self.core.handle_socket_report(now, key, report);
                }
            }
            Effect::PersistOwned => {
                if let Some(p) = &self.persist {
                    p.send_replace(Some(self.core.owned()));
                }
            }
            Effect::Event(e) => {
                // Logged here, not where the core decides, so that a
                // chain of takeovers writes its log lines after its
                // advertisements have left.
                tracing::info!(instance = %e.instance, from = %e.from, to = %e.to, reason = %self.core.describe(&e.reason), "state change");
                let _ = self.events.send(e);
            }
            Effect::EnsureVmac(op) => {
                let _ = self.work.send(Work::EnsureVmac(op));
            }
            Effect::RemoveVmac(r) => {
                let _ = self.work.send(Work::RemoveVmac(r));
            }
            Effect::PersistOwnedLinks(names) => {
                if let Some(state) = &self.state {
                    let path = super::state_file::links_path(state.path());
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = super::state_file::write_links(&path, &names) {
                            tracing::error!(path = %path.display(), error = %e, "cannot write the record of virtual MAC interfaces");
                        }
                    });
                }
            }
            // The follower keeps the route's notices before it changes.
            Effect::AddRoute(op) => {
                self.publish_followed_routes();
                let _ = self.work.send(Work::AddRoute(op));
            }
            Effect::RemoveRoute(op) => {
                self.publish_followed_routes();
                let _ = self.work.send(Work::RemoveRoute(op));
            }
            Effect::AddRule(rule) => {
                let _ = self.work.send(Work::AddRule(rule));
            }
            Effect::RemoveRule(rule) => {
                let _ = self.work.send(Work::RemoveRule(rule));
            }
            Effect::PersistRules(rules) => {
                if let Some(p) = &self.persist_rules {
                    p.send_replace(Some(rules));
                }
            }
            Effect::Firewall(blocked) => {
                self.firewall_used = true;
                let _ = self
                    .work
                    .send(Work::Firewall(self.firewall.clone(), blocked));
            }
            Effect::PersistRoutes(routes) => {
                if let Some(p) = &self.persist_routes {
                    p.send_replace(Some(routes));
                }
            }
        }
    }

    /// Tells the route follower which routes to keep, when that changed.
    fn publish_followed_routes(&mut self) {
        let followed = self.core.followed_routes();
        self.followed_routes.send_if_modified(|old| {
            let changed = *old != followed;
            if changed {
                *old = followed;
            }
            changed
        });
    }

    fn publish(&mut self) {
        let mut snapshot = self.core.snapshot();
        let (kernel_drops, malformed) = self.sockets.counters();
        snapshot.kernel_drops = kernel_drops;
        snapshot.malformed_packets = malformed;
        snapshot.published = Some(std::time::Instant::now());
        self.snapshot.send_replace(snapshot);
    }
}

/// Debug builds only: `VRRP_NET_DEBUG_PANIC_AFTER_MS=N` in the
/// environment makes the loop panic about N ms after it started, so that a
/// supervisor (a daemon's, a test's) can be proven against a driver thread
/// that really dies. Release builds have no such trigger.
#[cfg(debug_assertions)]
fn injected_panic(epoch: Instant) {
    let after = std::env::var("VRRP_NET_DEBUG_PANIC_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(ms) = after
        && epoch.elapsed() >= Duration::from_millis(ms)
    {
        panic!("injected driver panic (VRRP_NET_DEBUG_PANIC_AFTER_MS={ms})");
    }
}

/// Debug builds only: `VRRP_NET_DEBUG_KERNEL_PANIC_AFTER_MS=N` makes the
/// kernel worker thread panic N ms after it started, to prove that a dead
/// worker stops the driver (a driver that cannot add or remove addresses
/// any more must not go on claiming them).
#[cfg(debug_assertions)]
async fn injected_kernel_panic() {
    let after = std::env::var("VRRP_NET_DEBUG_KERNEL_PANIC_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    match after {
        Some(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            panic!("injected kernel worker panic (VRRP_NET_DEBUG_KERNEL_PANIC_AFTER_MS={ms})");
        }
        None => std::future::pending().await,
    }
}

/// How long before `wall` (the wall clock now) the kernel received a
/// packet, from its wall-clock stamp. A clock step could make that absurd:
/// beyond 100 ms, or negative, the packet counts as received now.
fn packet_age(wall: std::time::SystemTime, received: Option<std::time::SystemTime>) -> Duration {
    received
        .and_then(|r| wall.duration_since(r).ok())
        .filter(|age| *age <= Duration::from_millis(100))
        .unwrap_or(Duration::ZERO)
}

/// Starts the kernel worker on a thread of its own, with its own netlink
/// sockets and runtime, in the driver thread's network namespace. Adding
/// an address or sending a gratuitous ARP is a system call that can block:
/// measured at 53-56 ms for an address and 1-2.5 ms for an announcement
/// during a takeover, which on the driver's thread stalled the next
/// advertisements.
async fn start_kernel_worker(
    work: mpsc::UnboundedReceiver<Work>,
    out: mpsc::UnboundedSender<Msg>,
) -> Result<std::thread::JoinHandle<()>, DriverError> {
    let to_loop = out.clone();
    start_thread(
        "vrrp-kernel",
        out,
        || async {
            Ok((
                AddressManager::new()?,
                RouteManager::new()?,
                RuleManager::new()?,
            ))
        },
        move |(addresses, routes, rules)| async move {
            let worker = kernel_worker(addresses, routes, rules, work, to_loop);
            #[cfg(debug_assertions)]
            let worker = async {
                tokio::select! {
                    () = worker => {}
                    () = injected_kernel_panic() => {}
                }
            };
            worker.await;
        },
    )
    .await
}

/// Starts the route follower on a thread of its own (see
/// [`FollowedRoutes`]), subscribed to the kernel's route notifications
/// once this returns: a read of the kernel's routes made after it misses
/// nothing.
async fn start_route_follower(
    followed: watch::Receiver<std::collections::BTreeSet<crate::route::RouteKey>>,
    epoch: Instant,
    out: mpsc::UnboundedSender<Msg>,
) -> Result<std::thread::JoinHandle<()>, DriverError> {
    let to_loop = out.clone();
    start_thread(
        "vrrp-routes",
        out,
        // The link watcher reads the links as it starts: after the route
        // watcher subscribed, so no silent flush falls in between.
        || async {
            Ok((
                RouteWatcher::new()?,
                LinkWatcher::new().await?,
                RouteManager::new()?,
            ))
        },
        move |(watcher, links, routes)| {
            follow(
                FollowedRoutes {
                    watcher,
                    links,
                    routes,
                    followed,
                    epoch,
                },
                to_loop,
            )
        },
    )
    .await
}

/// Starts a helper thread of the driver's, `name`, with a runtime of its
/// own, in the driver thread's network namespace (a new thread shares its
/// creator's): `open` makes what it needs there (netlink sockets belong
/// to the runtime that opened them), and its error is returned; then
/// `run` goes on until it returns (its queue closed, or the loop gone). A
/// panic while it runs is told to the loop ([`Msg::KernelWorkerEnded`]),
/// which stops the driver: a driver that cannot change or read the kernel
/// any more must not go on claiming addresses.
async fn start_thread<T, O, OF, R, F>(
    name: &str,
    out: mpsc::UnboundedSender<Msg>,
    open: O,
    run: R,
) -> Result<std::thread::JoinHandle<()>, DriverError>
where
    O: FnOnce() -> OF + Send + 'static,
    OF: Future<Output = Result<T, DriverError>>,
    R: FnOnce(T) -> F + Send + 'static,
    F: Future<Output = ()>,
{
    let (ready_tx, ready_rx) = oneshot::channel();
    let thread_name = name.to_owned();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(DriverError::Thread(e)));
                    return;
                }
            };
            // Tells the driver when the thread ends early, by a panic
            // included (the message is sent while unwinding).
            let ended = EndedGuard(out, thread_name);
            runtime.block_on(async move {
                match open().await {
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                    Ok(made) => {
                        let _ = ready_tx.send(Ok(()));
                        run(made).await;
                    }
                }
            });
            // It ended as it should: the driver is done with it.
            std::mem::forget(ended);
        })
        .map_err(DriverError::Thread)?;
    match ready_rx.await {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(match thread.join() {
            Err(panic) => {
                DriverError::KernelWorker(format!("{name}: {}", super::panic_message(&*panic)))
            }
            Ok(()) => DriverError::KernelWorker(format!("{name}: ended before it started")),
        }),
    }
}

/// Sends [`Msg::KernelWorkerEnded`] when dropped, naming the thread: only
/// while unwinding, as the thread forgets it when it ends normally.
struct EndedGuard(mpsc::UnboundedSender<Msg>, String);

impl Drop for EndedGuard {
    fn drop(&mut self) {
        let _ = self
            .0
            .send(Msg::KernelWorkerEnded(format!("{}: it panicked", self.1)));
    }
}
