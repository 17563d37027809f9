//! The driver: runs a [`vrrp_core::Router`] on real sockets and keeps the
//! kernel's addresses as the instances need them.
//!
//! It comes in two parts, the way quinn-proto and quinn do:
//! - [`core::DriverCore`], sans IO: the policy (sockets wanted, bindings
//!   of instances to interfaces followed by name, addresses reconciled
//!   against what the kernel has and what the driver added, reloads as
//!   transactions, output ordering), unit-tested in simulated time;
//! - a thin tokio shell on a thread of its own (so no other work of the
//!   process, health checks or HTTP, shares its runtime, and its
//!   takeover spin occupies nobody else's worker): one loop that reads
//!   the sockets and the clock and carries out the core's effects without
//!   blocking, plus helper tasks for netlink and the state file.
//!
//! The crate docs show a service embedding it: see
//! [embedding failover in a service](crate#embedding-failover-in-a-service).
//! The smallest run:
//!
//! ```no_run
//! use vrrp_core::InstanceConfig;
//! use vrrp_net::driver::{DriverConfig, InstanceSpec, spawn};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // No primary address: the driver advertises from the interface's.
//! let config = InstanceConfig::v3("51".parse()?).virtual_address("192.0.2.100/24".parse()?).build()?;
//! let spec = InstanceSpec::new("VI_1", "eth0", config);
//! let handle = spawn(DriverConfig { instances: vec![spec], ..DriverConfig::default() }).await?;
//! let mut events = handle.subscribe();
//! if let Ok(event) = events.recv().await {
//!     println!("{} {} -> {}", event.instance, event.from, event.to);
//! }
//! handle.shutdown().await?; // priority 0 sent, addresses removed
//! # Ok(())
//! # }
//! ```

mod api;
pub mod core;
mod io;
mod promote;
mod route_io;
mod shell;
mod state_file;

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use vrrp_core::{Priority, TrackId};

pub use self::api::{
    AdvertWatch, DriverConfig, DriverError, DurationHistogram, ForeignAddressPolicy,
    HISTOGRAM_BOUNDS_MS, InstanceSpec, InstanceStatus, PeerStatus, ReloadSummary, Snapshot,
    StateEvent, TrackKey, Unbound, Vip, VipStatus, VmacSpec,
};
pub use self::core::GarpExtraIf;
use self::shell::{Command, Shell};

/// How the driver ended: `None` while it runs.
type Outcome = Option<Result<(), DriverError>>;

/// A running driver: a cheap, cloneable handle, like tokio's
/// `mpsc::Sender`. Every clone controls the same driver, so a health
/// check, a notifier, an HTTP endpoint and the main task can each hold
/// one: [`VrrpHandle::set_priority`], [`VrrpHandle::set_track`],
/// [`VrrpHandle::subscribe`], [`VrrpHandle::snapshot`] and
/// [`VrrpHandle::reconfigure`] take `&self`.
///
/// Stopping: [`VrrpHandle::shutdown`] from any clone, the token of
/// [`spawn_with_token`] or [`VrrpHandle::cancellation_token`], or the
/// future of [`spawn_until`]; [`VrrpHandle::wait`] then gives every
/// waiter the driver's own word on how it ended. Dropping every clone
/// does not stop the driver: it runs on its own thread until stopped or
/// until the process exits.
///
/// Commands that cannot apply are refused with an error and change
/// nothing: an instance name that does not exist, priority 0, a tracked
/// object no instance tracks. Once the driver has stopped, every command
/// returns [`DriverError::Stopped`].
#[derive(Debug, Clone)]
pub struct VrrpHandle {
    events: Arc<Events>,
    snapshot: watch::Receiver<Snapshot>,
    commands: mpsc::Sender<Command>,
    cancel: CancellationToken,
    abort: CancellationToken,
    outcome: watch::Receiver<Outcome>,
}

#[derive(Debug)]
struct Events {
    /// The receiver that has every event since the start, for the first
    /// [`VrrpHandle::subscribe_from_start`].
    first: Mutex<Option<broadcast::Receiver<StateEvent>>>,
    /// Kept to subscribe more receivers; the driver holds the only
    /// sender, so receivers see `Closed` when it stops.
    any: broadcast::Receiver<StateEvent>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::SetPriority(..) => "SetPriority",
            Command::Reconfigure(..) => "Reconfigure",
            Command::SetTrack(..) => "SetTrack",
            Command::SetMaintenance(..) => "SetMaintenance",
            Command::FlightRecord(..) => "FlightRecord",
            Command::SetGatedRoutes(..) => "SetGatedRoutes",
        })
    }
}

impl VrrpHandle {
    /// A watch of the status; changes on every transition and every second.
    pub fn watch(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// The current status.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// A stream of state changes from now on. It ends (`Closed`) when the
    /// driver stops, whatever the reason, after the last transitions of a
    /// graceful stop.
    pub fn subscribe(&self) -> broadcast::Receiver<StateEvent> {
        self.events.any.resubscribe()
    }

    /// The stream of state changes from the very start (the start-up
    /// transitions included) the first time it is called on any clone;
    /// later calls are [`VrrpHandle::subscribe`].
    pub fn subscribe_from_start(&self) -> broadcast::Receiver<StateEvent> {
        let first = match self.events.first.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        first.unwrap_or_else(|| self.events.any.resubscribe())
    }

    /// Sets an instance's base priority (1..=255), and returns once the
    /// driver has applied it. Refused: a name no instance has
    /// ([`DriverError::NoSuchInstance`]), and priority 0, which only a
    /// stopping master sends ([`DriverError::Config`]). Like keepalived's
    /// configured priority it does not outlive the driver: a new
    /// [`spawn`] starts from [`InstanceSpec::config`].
    pub async fn set_priority(
        &self,
        instance: &str,
        priority: Priority,
    ) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::SetPriority(instance.to_owned(), priority, tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)?
    }

    /// Puts instances in maintenance (`on`) or takes them out, all at
    /// once (the members of a sync group together): a master leaves with
    /// a priority-0 advertisement and its addresses, and each stays Backup
    /// until cleared. An unknown name changes nothing and is an error.
    pub async fn set_maintenance(&self, instances: &[String], on: bool) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::SetMaintenance(instances.to_vec(), on, tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)?
    }

    /// The flight recorder's contents: the inputs the driver gave its
    /// engine and the transitions it made, bounded (see
    /// [`core::record`]); [`core::record::replay`] reproduces the
    /// transitions from the inputs.
    pub async fn flight_record(&self) -> Result<core::record::FlightRecord, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::FlightRecord(tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)
    }

    /// Replaces the gated routes: routes installed, owned and healed like
    /// the instances' routes (and recorded in the same state file) while
    /// the caller keeps giving them, whatever the instances' states;
    /// removed when left out of a later call or when the driver stops.
    /// vrrpd gives the host routes of the virtual servers whose quorum is
    /// up (`export_routes` of a virtual server). Returns once the driver
    /// has taken them (the kernel changes follow).
    pub async fn set_gated_routes(
        &self,
        routes: Vec<crate::route::Route>,
    ) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::SetGatedRoutes(routes, tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)
    }

    /// Applies a new configuration as a transaction: the whole of it is
    /// checked and the sockets it needs are opened before anything running
    /// changes; if any of that fails, nothing changes and the error says
    /// why. Then unchanged instances are not touched, instances whose
    /// identity on the wire is the same (interface, VRID, version, family)
    /// change in place without a priority-0 advertisement or a state
    /// change, others restart, new ones start, removed ones stop
    /// gracefully. An instance whose interface does not exist waits for
    /// it in Fault.
    pub async fn reconfigure(&self, config: DriverConfig) -> Result<ReloadSummary, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reconfigure(Box::new(config), tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)?
    }

    /// Reports the state of a tracked object (an id of
    /// [`InstanceSpec::tracks`]) to every instance tracking it, and
    /// returns once the driver has applied it. Refused, with nothing
    /// changed or remembered, when no instance of the running
    /// configuration tracks `track` ([`DriverError::UnknownTrack`]).
    /// Reported states outlive a [`VrrpHandle::reconfigure`], not the
    /// driver.
    pub async fn set_track(&self, track: TrackId, up: bool) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::SetTrack(track, up, tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)?
    }

    /// The token that stops the driver (gracefully) when cancelled: the
    /// one given to [`spawn_with_token`], or a fresh one. Cancel it, or
    /// take a child token to stop helpers (a health-check runner) with
    /// the driver.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops gracefully: masters send priority 0 and every address the
    /// driver added is removed; waits until that is done, and returns
    /// what [`VrrpHandle::wait`] returns. Any clone may call it; calling
    /// it again, or on a stopped driver, only waits.
    pub async fn shutdown(&self) -> Result<(), DriverError> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Stops at once, as a crash would: no priority-0 advertisement, and
    /// the addresses stay where they are (the next start, reading the
    /// state file, removes them unless it becomes master). Meant for
    /// failure tests.
    pub async fn abort(&self) {
        self.abort.cancel();
        let _ = self.wait().await;
    }

    /// Waits until the driver stops (by any clone's shutdown, the token,
    /// the [`spawn_until`] future, or a failure) and its thread has
    /// released its sockets. Every waiter gets the outcome: `Ok` for a
    /// requested stop, else the error that stopped the driver.
    pub async fn wait(&self) -> Result<(), DriverError> {
        let mut outcome = self.outcome.clone();
        let ended = outcome.wait_for(Option::is_some).await;
        match ended.as_deref() {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(e.duplicate()),
            // The thread publishes its outcome even when it panics: this
            // is not expected.
            Ok(None) | Err(_) => Err(DriverError::Stopped),
        }
    }

    /// Whether the driver has stopped.
    pub fn is_stopped(&self) -> bool {
        self.outcome.borrow().is_some()
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned())
}

/// Starts the driver on a thread of its own (in the network namespace of
/// the calling thread), with a second thread for its changes to the
/// kernel (addresses, routes, rules, interfaces, gratuitous ARPs and
/// neighbour advertisements, whose system calls can block for tens of
/// milliseconds), and waits until its instances have started. It
/// runs until stopped through the handle ([`VrrpHandle::shutdown`],
/// [`VrrpHandle::cancellation_token`]); see [`spawn_until`] to tie that
/// to a signal.
pub async fn spawn(config: DriverConfig) -> Result<VrrpHandle, DriverError> {
    spawn_with_token(config, CancellationToken::new()).await
}

/// Like [`spawn`], stopping gracefully when `signal` completes, as
/// axum's `with_graceful_shutdown` does: Ctrl-C, SIGTERM, or a service's
/// own shutdown future. The future is polled on the caller's runtime
/// (from a task spawned there, which ends when the driver does).
///
/// ```no_run
/// # async fn demo(config: vrrp_net::driver::DriverConfig) -> Result<(), vrrp_net::driver::DriverError> {
/// let handle = vrrp_net::driver::spawn_until(config, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await?;
/// // ... hand clones of `handle` to whatever adjusts priorities ...
/// handle.wait().await // after Ctrl-C: priority 0 sent, addresses removed
/// # }
/// ```
pub async fn spawn_until<F>(config: DriverConfig, signal: F) -> Result<VrrpHandle, DriverError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let handle = spawn(config).await?;
    let cancel = handle.cancel.clone();
    let mut outcome = handle.outcome.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = signal => cancel.cancel(),
            _ = outcome.wait_for(Option::is_some) => {}
        }
    });
    Ok(handle)
}

/// Like [`spawn`], stopping gracefully when `cancel` is cancelled.
pub async fn spawn_with_token(
    config: DriverConfig,
    cancel: CancellationToken,
) -> Result<VrrpHandle, DriverError> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (outcome_tx, outcome) = watch::channel(None);
    let abort = CancellationToken::new();
    let (c, a) = (cancel.clone(), abort.clone());
    std::thread::Builder::new()
        .name("vrrp-driver".into())
        .spawn(move || {
            // The outcome is published after the runtime, and with it
            // every socket, is gone; a panic is an outcome too.
            let run = std::panic::AssertUnwindSafe(|| run_driver(config, c, a, ready_tx));
            let result = std::panic::catch_unwind(run)
                .unwrap_or_else(|panic| Err(DriverError::Panicked(panic_message(&*panic))));
            outcome_tx.send_replace(Some(result));
        })
        .map_err(DriverError::Thread)?;
    let parts = match ready_rx.await {
        Ok(result) => result?,
        // The thread ended before it was ready (it panicked): its outcome
        // says why.
        Err(_) => {
            let mut outcome = outcome.clone();
            return Err(match outcome.wait_for(Option::is_some).await.as_deref() {
                Ok(Some(Err(e))) => e.duplicate(),
                _ => DriverError::Stopped,
            });
        }
    };
    Ok(VrrpHandle {
        events: Arc::new(Events {
            any: parts.events.resubscribe(),
            first: Mutex::new(Some(parts.events)),
        }),
        snapshot: parts.snapshot,
        commands: parts.commands,
        cancel,
        abort,
        outcome,
    })
}

/// The driver thread: its runtime, the start (reported on `ready`), and
/// the loop until stopped.
fn run_driver(
    config: DriverConfig,
    cancel: CancellationToken,
    abort: CancellationToken,
    ready: oneshot::Sender<Result<shell::Parts, DriverError>>,
) -> Result<(), DriverError> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(DriverError::Thread(e)));
            return Err(DriverError::Stopped);
        }
    };
    let (result, threads) = runtime.block_on(async move {
        match Shell::start(config, cancel, abort).await {
            Err(e) => {
                let _ = ready.send(Err(e));
                (Err(DriverError::Stopped), Vec::new())
            }
            Ok((mut shell, parts)) => {
                let threads = shell.take_threads();
                let _ = ready.send(Ok(parts));
                let result = shell.run().await;
                (result, threads)
            }
        }
    });
    // The shell is gone, and with it the kernel worker's queue and the
    // loop's: the worker ends once it is done with what was queued, the
    // route follower at once.
    drop(runtime);
    for thread in threads {
        let name = thread.thread().name().unwrap_or("?").to_owned();
        if let Err(panic) = thread.join() {
            tracing::error!(thread = %name, reason = %panic_message(&*panic), "a driver thread panicked");
        }
    }
    result
}
