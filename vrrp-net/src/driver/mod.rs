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
//! ```no_run
//! use vrrp_core::{InstanceConfig, Version, VirtualAddress, Vrid};
//! use vrrp_net::driver::{DriverConfig, InstanceSpec, Vip, spawn};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let vrid = Vrid::new(51).ok_or("vrid")?;
//! // An unspecified primary address is read from the interface.
//! let config = InstanceConfig::new(vrid, Version::V3, "0.0.0.0".parse()?);
//! let mut spec = InstanceSpec::new("VI_1", "eth0", config);
//! spec.vips.push(Vip::new(VirtualAddress { addr: "192.0.2.100".parse()?, prefix_len: 24 }));
//! let handle = spawn(DriverConfig { instances: vec![spec], ..DriverConfig::default() }).await?;
//! let mut events = handle.subscribe();
//! while let Ok(event) = events.recv().await {
//!     println!("{} {} -> {}", event.instance, event.from, event.to);
//! }
//! handle.shutdown().await?; // priority 0 sent, addresses removed
//! # Ok(())
//! # }
//! ```

mod api;
pub mod core;
mod io;
mod shell;
mod state_file;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use vrrp_core::{Priority, TrackId};

pub use self::api::{
    AdvertWatch, DriverConfig, DriverError, DurationHistogram, ForeignAddressPolicy,
    HISTOGRAM_BOUNDS_MS, InstanceSpec, InstanceStatus, ReloadSummary, Snapshot, StateEvent,
    TrackKey, Unbound, Vip, VipStatus,
};
use self::shell::{Command, Shell};

/// A running driver.
#[derive(Debug)]
pub struct VrrpHandle {
    first_events: std::sync::Mutex<Option<broadcast::Receiver<StateEvent>>>,
    /// Kept to subscribe more receivers; the driver holds the only
    /// sender, so receivers see `Closed` when it stops.
    events: broadcast::Receiver<StateEvent>,
    snapshot: watch::Receiver<Snapshot>,
    commands: mpsc::Sender<Command>,
    cancel: CancellationToken,
    abort: CancellationToken,
    done: oneshot::Receiver<Result<(), DriverError>>,
    thread: std::thread::JoinHandle<()>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::SetPriority(..) => "SetPriority",
            Command::Reconfigure(..) => "Reconfigure",
            Command::SetTrack(..) => "SetTrack",
            Command::SetMaintenance(..) => "SetMaintenance",
            Command::FlightRecord(..) => "FlightRecord",
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
    /// driver stops, whatever the reason.
    pub fn subscribe(&self) -> broadcast::Receiver<StateEvent> {
        self.events.resubscribe()
    }

    /// The stream of state changes from the very start (the start-up
    /// transitions included) the first time it is called; later calls are
    /// [`VrrpHandle::subscribe`].
    pub fn subscribe_from_start(&self) -> broadcast::Receiver<StateEvent> {
        let first = match self.first_events.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        first.unwrap_or_else(|| self.events.resubscribe())
    }

    /// Sets an instance's base priority.
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

    /// Reports a tracked object's state (an id of
    /// [`InstanceSpec::tracks`]) to every instance tracking it.
    pub async fn set_track(&self, track: TrackId, up: bool) -> Result<(), DriverError> {
        self.commands
            .send(Command::SetTrack(track, up))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// The token that stops the driver (gracefully) when cancelled.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops gracefully: masters send priority 0 and every address the
    /// driver added is removed; waits until that is done.
    pub async fn shutdown(self) -> Result<(), DriverError> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Stops at once, as a crash would: no priority-0 advertisement, and
    /// the addresses stay where they are (the next start, reading the
    /// state file, removes them unless it becomes master). Meant for
    /// failure tests.
    pub async fn abort(self) {
        self.abort.cancel();
        let _ = self.wait().await;
    }

    /// Waits until the driver stops (by cancellation or error).
    pub async fn wait(self) -> Result<(), DriverError> {
        match self.done.await {
            Ok(result) => {
                let _ = self.thread.join();
                result
            }
            // The thread ended without a word: it panicked.
            Err(_) => Err(join_error(self.thread)),
        }
    }
}

fn join_error(thread: std::thread::JoinHandle<()>) -> DriverError {
    match thread.join() {
        Ok(()) => DriverError::Stopped,
        Err(panic) => DriverError::Panicked(
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned()),
        ),
    }
}

/// Starts the driver on a thread of its own (in the network namespace of
/// the calling thread) and waits until its instances have started.
pub async fn spawn(config: DriverConfig) -> Result<VrrpHandle, DriverError> {
    spawn_with_token(config, CancellationToken::new()).await
}

/// Like [`spawn`], stopping gracefully when `cancel` is cancelled.
pub async fn spawn_with_token(
    config: DriverConfig,
    cancel: CancellationToken,
) -> Result<VrrpHandle, DriverError> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let abort = CancellationToken::new();
    let (c, a) = (cancel.clone(), abort.clone());
    let thread = std::thread::Builder::new()
        .name("vrrp-driver".into())
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
            runtime.block_on(async move {
                match Shell::start(config, c, a).await {
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                    Ok((shell, parts)) => {
                        let _ = ready_tx.send(Ok(parts));
                        let _ = done_tx.send(shell.run().await);
                    }
                }
            });
        })
        .map_err(DriverError::Thread)?;
    let parts = match ready_rx.await {
        Ok(result) => result?,
        Err(_) => return Err(join_error(thread)),
    };
    Ok(VrrpHandle {
        events: parts.events.resubscribe(),
        first_events: std::sync::Mutex::new(Some(parts.events)),
        snapshot: parts.snapshot,
        commands: parts.commands,
        cancel,
        abort,
        done,
        thread,
    })
}
