//! The tokio driver: runs a [`vrrp_core::Router`] on real sockets.
//!
//! The driver holds no protocol logic. One task owns the router; it feeds
//! it received packets, timer expiries, link events and commands, and
//! carries out what the router asks for: advertisements on raw sockets,
//! virtual addresses through rtnetlink, gratuitous ARPs / unsolicited
//! neighbour advertisements on `AF_PACKET` sockets.
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
//! let handle = spawn(DriverConfig { instances: vec![spec], sync_groups: vec![] }).await?;
//! let mut events = handle.subscribe();
//! while let Ok(event) = events.recv().await {
//!     println!("{} {} -> {}", event.instance, event.from, event.to);
//! }
//! handle.shutdown().await?; // priority 0 sent, addresses removed
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vrrp_core::{
    Family as CoreFamily, InstanceConfig, InstanceId, Output, Priority, Reason, Router,
    RouterError, RxMeta, State, Statistics, Timestamp, TrackConfig, TrackId, VirtualAddress, Vrid,
};

use crate::NetlinkError;
use crate::addr::{AddOptions, AddressManager};
use crate::garp::{AnnounceSocket, GarpError};
use crate::link::{LinkEvent, LinkWatcher};
use crate::socket::{Family, RECV_BUFFER_LEN, SocketConfig, SocketError, VrrpSocket};
use crate::timer::PreciseTimer;

/// Receive buffer of each raw socket: room for thousands of queued
/// advertisements, so that a burst from 255 instances, or a few
/// milliseconds without CPU, loses none (the default holds about 190).
const RECV_BUFFER_BYTES: usize = 4 << 20;

/// Tracked-object ids at or above this are the driver's own (interfaces);
/// callers use ids below it.
pub const INTERFACE_TRACK_BASE: u32 = 0x8000_0000;

/// One virtual address with where and how to add it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// Address and prefix length.
    pub address: VirtualAddress,
    /// Interface to add it to (keepalived's `dev`); the instance's
    /// interface when `None`.
    pub device: Option<String>,
    /// IPv4 label (keepalived's `label`).
    pub label: Option<String>,
}

impl Vip {
    /// An address on the instance's interface, without a label.
    pub fn new(address: VirtualAddress) -> Self {
        Vip {
            address,
            device: None,
            label: None,
        }
    }
}

/// One instance to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// A name for logs, events and commands (keepalived's instance name).
    pub name: String,
    /// The interface it runs on.
    pub interface: String,
    /// The engine configuration. An unspecified primary address
    /// (`0.0.0.0` / `::`) is replaced by the interface's primary IPv4 or
    /// link-local IPv6 address. Its virtual addresses are replaced by
    /// [`InstanceSpec::vips`] when that is not empty.
    pub config: InstanceConfig,
    /// The virtual addresses with device and label.
    pub vips: Vec<Vip>,
    /// Other interfaces to track, with their weights (keepalived's
    /// `track_interface`). The instance's own interface is always tracked
    /// with weight 0: link down means Fault.
    pub track_interfaces: Vec<(String, TrackConfig)>,
    /// Objects whose state the caller reports with
    /// [`VrrpHandle::set_track`] (scripts, files...): id below
    /// [`INTERFACE_TRACK_BASE`], weight, and initial state.
    pub tracks: Vec<(TrackId, TrackConfig, bool)>,
}

impl InstanceSpec {
    /// An instance with no tracked objects; add virtual addresses to
    /// `vips` or to the config.
    pub fn new(
        name: impl Into<String>,
        interface: impl Into<String>,
        config: InstanceConfig,
    ) -> Self {
        InstanceSpec {
            name: name.into(),
            interface: interface.into(),
            config,
            vips: Vec::new(),
            track_interfaces: Vec::new(),
            tracks: Vec::new(),
        }
    }
}

/// Everything the driver runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverConfig {
    /// The instances.
    pub instances: Vec<InstanceSpec>,
    /// Sync groups, each a list of instance names.
    pub sync_groups: Vec<Vec<String>>,
}

/// Why the driver could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// A socket could not be opened or used.
    #[error("socket on {interface}: {source}")]
    Socket {
        /// The interface.
        interface: String,
        /// What went wrong.
        #[source]
        source: SocketError,
    },
    /// An rtnetlink request failed.
    #[error("netlink: {0}")]
    Netlink(#[from] NetlinkError),
    /// The engine refused the configuration.
    #[error("instance {instance}: {source}")]
    Config {
        /// The instance.
        instance: String,
        /// What the engine said.
        #[source]
        source: RouterError,
    },
    /// The interface has no address to send from.
    #[error("instance {instance}: interface {interface} has no {family} address to advertise from")]
    NoSourceAddress {
        /// The instance.
        instance: String,
        /// The interface.
        interface: String,
        /// The family.
        family: &'static str,
    },
    /// The interface does not exist.
    #[error("interface {0} not found")]
    NoSuchInterface(String),
    /// Two instances share an interface and family but not a source.
    #[error(
        "instances on {interface} use different source addresses ({a} and {b}); one source per interface and family is supported"
    )]
    SourceConflict {
        /// The interface.
        interface: String,
        /// One source.
        a: IpAddr,
        /// The other.
        b: IpAddr,
    },
    /// A sync group names an instance that does not exist.
    #[error("sync group names unknown instance {0}")]
    UnknownInstance(String),
    /// The timer could not be created or armed.
    #[error("timer: {0}")]
    Timer(#[source] std::io::Error),
    /// The driver task is gone.
    #[error("the driver has stopped")]
    Stopped,
    /// The driver task panicked or was aborted.
    #[error("the driver task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A state change, as broadcast to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEvent {
    /// The instance name.
    pub instance: String,
    /// Its VRID.
    pub vrid: Vrid,
    /// Old state.
    pub from: State,
    /// New state.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// Effective priority at the time.
    pub priority: Priority,
    /// Time since the driver started.
    pub at: Duration,
}

/// What one instance looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// The instance name.
    pub name: String,
    /// The interface.
    pub interface: String,
    /// Its VRID.
    pub vrid: Vrid,
    /// Current state.
    pub state: State,
    /// Effective priority.
    pub priority: Priority,
    /// The master's address, when known.
    pub master: Option<IpAddr>,
    /// Counters (refreshed at least every second).
    pub stats: Statistics,
}

/// The status of every instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Per instance, in configuration order.
    pub instances: Vec<InstanceStatus>,
    /// Sends that failed.
    pub send_errors: u64,
    /// Address changes that failed.
    pub address_errors: u64,
    /// Gratuitous ARPs / NAs that failed.
    pub announce_errors: u64,
    /// Advertisements the kernel dropped because a socket's receive
    /// buffer was full.
    pub kernel_drops: u64,
}

enum Command {
    SetPriority(String, Priority, oneshot::Sender<Result<(), DriverError>>),
    Reconfigure(
        Box<DriverConfig>,
        oneshot::Sender<Result<ReloadSummary, DriverError>>,
    ),
    SetTrack(TrackId, bool),
}

/// A running driver.
#[derive(Debug)]
pub struct VrrpHandle {
    first_events: std::sync::Mutex<Option<broadcast::Receiver<StateEvent>>>,
    snapshot: watch::Receiver<Snapshot>,
    events: broadcast::Sender<StateEvent>,
    commands: mpsc::Sender<Command>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), DriverError>>,
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

    /// A stream of state changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StateEvent> {
        self.events.subscribe()
    }

    /// The stream of state changes from the very start (the start-up
    /// transitions included) the first time it is called; later calls are
    /// [`VrrpHandle::subscribe`].
    pub fn subscribe_from_start(&self) -> broadcast::Receiver<StateEvent> {
        let first = match self.first_events.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        first.unwrap_or_else(|| self.events.subscribe())
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

    /// Applies a new configuration without disturbing what did not change:
    /// an instance whose spec (and sync group) is the same keeps its state
    /// and addresses; changed instances restart, new ones start, removed
    /// ones stop gracefully. Nothing changes if the new configuration
    /// cannot be resolved (unknown interface, no source address).
    pub async fn reconfigure(&self, config: DriverConfig) -> Result<ReloadSummary, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reconfigure(Box::new(config), tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)?
    }

    /// Reports a tracked object's state to every instance tracking it.
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

    /// Stops gracefully: masters send priority 0 and every virtual address
    /// is removed; waits until that is done.
    pub async fn shutdown(self) -> Result<(), DriverError> {
        self.cancel.cancel();
        self.task.await?
    }

    /// Stops at once, as a crash would: no priority-0 advertisement, and
    /// the virtual addresses stay where they are (the next start removes
    /// them unless it becomes master). Meant for failure tests.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Waits until the driver stops (by cancellation or error).
    pub async fn wait(self) -> Result<(), DriverError> {
        self.task.await?
    }
}

/// Starts the driver on the current tokio runtime, in the network
/// namespace of the calling thread.
pub async fn spawn(config: DriverConfig) -> Result<VrrpHandle, DriverError> {
    spawn_with_token(config, CancellationToken::new()).await
}

/// Like [`spawn`], stopping gracefully when `cancel` is cancelled.
pub async fn spawn_with_token(
    config: DriverConfig,
    cancel: CancellationToken,
) -> Result<VrrpHandle, DriverError> {
    let driver = Driver::build(config, cancel.clone()).await?;
    let snapshot = driver.snapshot_tx.subscribe();
    let events = driver.events.clone();
    let first_events = std::sync::Mutex::new(Some(events.subscribe()));
    let commands = driver.commands_tx.clone();
    let task = tokio::spawn(driver.run());
    Ok(VrrpHandle {
        first_events,
        snapshot,
        events,
        commands,
        cancel,
        task,
    })
}

struct Received {
    interface: u32,
    meta: RxMeta,
    bytes: Vec<u8>,
    /// How long before it was read the kernel received it.
    age: Duration,
}

impl Received {
    /// An owned copy of a packet read from the socket on `interface`.
    fn from_packet(interface: u32, p: &crate::socket::RxPacket<'_>) -> Self {
        Received {
            interface,
            meta: RxMeta {
                src: p.src,
                dst: p.dst,
                ttl: p.ttl,
            },
            bytes: p.payload.to_vec(),
            age: packet_age(p.received),
        }
    }
}

struct InstanceInfo {
    name: String,
    interface: String,
    ifindex: u32,
    vips: Vec<(u32, VirtualAddress, AddOptions)>,
}

struct Driver {
    router: Router,
    epoch: Instant,
    info: HashMap<InstanceId, InstanceInfo>,
    order: Vec<InstanceId>,
    sockets: HashMap<(u32, Family), Arc<VrrpSocket>>,
    announcers: HashMap<u32, Arc<AnnounceSocket>>,
    addresses: AddressManager,
    links: LinkWatcher,
    cancel: CancellationToken,
    snapshot_tx: watch::Sender<Snapshot>,
    events: broadcast::Sender<StateEvent>,
    commands_tx: mpsc::Sender<Command>,
    commands_rx: mpsc::Receiver<Command>,
    counters: Snapshot,
    tasks: JoinSet<()>,
    buf: Vec<u8>,
    /// Advertisements of this round, sent together.
    outbox: Outbox,
    /// The latest time handed to the router with a packet or a timeout: a
    /// packet's arrival time is never allowed before it.
    last_packet: Timestamp,
    /// The specs as given, by name, to tell what a reload changes.
    specs: HashMap<String, InstanceSpec>,
    /// The sync groups as given.
    groups: Vec<Vec<String>>,
    readers: JoinSet<()>,
    rx_tx: mpsc::Sender<Received>,
    rx: Option<mpsc::Receiver<Received>>,
    /// Removed instances whose last outputs may still be pending.
    retired: Vec<InstanceId>,
}

fn family_of(f: CoreFamily) -> Family {
    match f {
        CoreFamily::Ipv4 => Family::V4,
        _ => Family::V6,
    }
}

fn interface_track(ifindex: u32) -> TrackId {
    TrackId(INTERFACE_TRACK_BASE | ifindex)
}

/// What a reload changed, by instance name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Instances kept as they were: same state, same addresses, no flap.
    pub unchanged: Vec<String>,
    /// Instances whose configuration changed: stopped and started again.
    pub restarted: Vec<String>,
    /// New instances.
    pub added: Vec<String>,
    /// Instances no longer configured: stopped gracefully.
    pub removed: Vec<String>,
}

/// An instance resolved against the system, ready for the router.
struct Prepared {
    spec: InstanceSpec,
    config: InstanceConfig,
    ifindex: u32,
    vips: Vec<(u32, VirtualAddress, AddOptions)>,
    interface_tracks: Vec<(u32, TrackConfig)>,
}

impl Driver {
    async fn build(config: DriverConfig, cancel: CancellationToken) -> Result<Self, DriverError> {
        let addresses = AddressManager::new()?;
        let links = LinkWatcher::new().await?;
        let (snapshot_tx, _) = watch::channel(Snapshot::default());
        let (events, _) = broadcast::channel(1024);
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let (rx_tx, rx) = mpsc::channel(4096);
        let mut driver = Driver {
            router: Router::new(),
            epoch: Instant::now(),
            info: HashMap::new(),
            order: Vec::new(),
            sockets: HashMap::new(),
            announcers: HashMap::new(),
            addresses,
            links,
            cancel,
            snapshot_tx,
            events,
            commands_tx,
            commands_rx,
            counters: Snapshot::default(),
            tasks: JoinSet::new(),
            buf: vec![0; vrrp_core::wire::MAX_PACKET_LEN],
            outbox: Outbox::default(),
            last_packet: Timestamp::ZERO,
            specs: HashMap::new(),
            groups: Vec::new(),
            readers: JoinSet::new(),
            rx_tx,
            rx: Some(rx),
            retired: Vec::new(),
        };
        driver
            .add(
                config.instances,
                &config.sync_groups,
                Timestamp::ZERO,
                false,
            )
            .await?;
        driver.groups = config.sync_groups;
        Ok(driver)
    }

    fn ifindex_of(&self, name: &str) -> Result<u32, DriverError> {
        self.links
            .links()
            .find(|l| l.name == name)
            .map(|l| l.ifindex)
            .ok_or_else(|| DriverError::NoSuchInterface(name.to_owned()))
    }

    /// Resolves interfaces and the source address of a spec.
    async fn prepare(&self, spec: InstanceSpec) -> Result<Prepared, DriverError> {
        let ifindex = self.ifindex_of(&spec.interface)?;
        let mut config = spec.config.clone();
        if !spec.vips.is_empty() {
            config.virtual_addresses = spec.vips.iter().map(|v| v.address).collect();
        }
        let family = family_of(config.family());
        if config.primary_address.is_unspecified() {
            config.primary_address = source_address(&self.addresses, ifindex, family)
                .await?
                .ok_or_else(|| DriverError::NoSourceAddress {
                    instance: spec.name.clone(),
                    interface: spec.interface.clone(),
                    family: if family == Family::V4 {
                        "IPv4"
                    } else {
                        "IPv6 link-local"
                    },
                })?;
        }
        let vip_specs: Vec<Vip> = if spec.vips.is_empty() {
            config
                .virtual_addresses
                .iter()
                .map(|a| Vip::new(*a))
                .collect()
        } else {
            spec.vips.clone()
        };
        let mut vips = Vec::new();
        for v in vip_specs {
            let dev = match &v.device {
                Some(d) => self.ifindex_of(d)?,
                None => ifindex,
            };
            vips.push((
                dev,
                v.address,
                AddOptions {
                    label: v.label.clone(),
                    no_dad: true,
                },
            ));
        }
        // The instance's own interface: link down means Fault.
        let mut interface_tracks = vec![(ifindex, TrackConfig::weight(0))];
        for (name, track) in &spec.track_interfaces {
            interface_tracks.push((self.ifindex_of(name)?, *track));
        }
        Ok(Prepared {
            spec,
            config,
            ifindex,
            vips,
            interface_tracks,
        })
    }

    /// Adds instances (and the sync groups among them), opening sockets
    /// and announcement sockets as needed; starts them when `start`.
    async fn add(
        &mut self,
        specs: Vec<InstanceSpec>,
        groups: &[Vec<String>],
        now: Timestamp,
        start: bool,
    ) -> Result<Vec<String>, DriverError> {
        let mut prepared = Vec::new();
        for spec in specs {
            prepared.push(self.prepare(spec).await?);
        }
        // Check everything before changing anything.
        let mut sources: HashMap<(u32, Family), (String, IpAddr, bool)> = HashMap::new();
        for ((ifindex, family), socket) in &self.sockets {
            if let Some(src) = socket.source() {
                sources.insert(
                    (*ifindex, *family),
                    (socket.interface().to_owned(), src, true),
                );
            }
        }
        for p in &prepared {
            let family = family_of(p.config.family());
            let multicast = p.config.unicast_peers.is_empty();
            match sources.get_mut(&(p.ifindex, family)) {
                Some((_, src, m)) => {
                    if *src != p.config.primary_address {
                        return Err(DriverError::SourceConflict {
                            interface: p.spec.interface.clone(),
                            a: *src,
                            b: p.config.primary_address,
                        });
                    }
                    *m |= multicast;
                }
                None => {
                    sources.insert(
                        (p.ifindex, family),
                        (
                            p.spec.interface.clone(),
                            p.config.primary_address,
                            multicast,
                        ),
                    );
                }
            }
        }
        for ((ifindex, family), (interface, source, multicast)) in sources {
            if self.sockets.contains_key(&(ifindex, family)) {
                continue;
            }
            let sc = SocketConfig::new(interface.clone(), family)
                .with_source(source)
                .with_multicast(multicast)
                .with_recv_buffer(RECV_BUFFER_BYTES);
            let socket = Arc::new(
                VrrpSocket::open(&sc)
                    .map_err(|source| DriverError::Socket { interface, source })?,
            );
            self.readers
                .spawn(read_loop(socket.clone(), self.rx_tx.clone()));
            self.sockets.insert((ifindex, family), socket);
        }
        let mut ids: HashMap<String, InstanceId> = self
            .info
            .iter()
            .map(|(id, i)| (i.name.clone(), *id))
            .collect();
        let mut added = Vec::new();
        for p in prepared {
            let name = p.spec.name.clone();
            let id = self
                .router
                .add_instance(p.ifindex, p.config)
                .map_err(|source| DriverError::Config {
                    instance: name.clone(),
                    source,
                })?;
            for (ifindex, track) in &p.interface_tracks {
                let up = self.links.link(*ifindex).is_some_and(|l| l.is_up());
                let _ = self
                    .router
                    .track(now, id, interface_track(*ifindex), *track, up);
            }
            for (track, tc, up) in &p.spec.tracks {
                let _ = self.router.track(now, id, *track, *tc, *up);
            }
            for (dev, _, _) in &p.vips {
                if self.announcers.contains_key(dev) {
                    continue;
                }
                // An interface without an Ethernet address (a tunnel, say)
                // has no ARP to announce on; addresses still move.
                if let Some(mac) = self.links.link(*dev).and_then(|l| l.mac) {
                    match AnnounceSocket::open(*dev, mac) {
                        Ok(s) => {
                            self.announcers.insert(*dev, Arc::new(s));
                        }
                        Err(e) => {
                            tracing::warn!(ifindex = dev, error = %e, "cannot open announcement socket")
                        }
                    }
                }
            }
            ids.insert(name.clone(), id);
            self.order.push(id);
            self.info.insert(
                id,
                InstanceInfo {
                    name: name.clone(),
                    interface: p.spec.interface.clone(),
                    ifindex: p.ifindex,
                    vips: p.vips,
                },
            );
            self.specs.insert(name.clone(), p.spec);
            added.push(name);
        }
        for group in groups {
            // Only groups made entirely of instances added now are new.
            if !group.iter().all(|n| added.contains(n)) {
                continue;
            }
            let members = group
                .iter()
                .map(|n| {
                    ids.get(n)
                        .copied()
                        .ok_or_else(|| DriverError::UnknownInstance(n.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.router
                .add_sync_group(&members)
                .map_err(|source| DriverError::Config {
                    instance: group.join(","),
                    source,
                })?;
        }
        for group in groups {
            for n in group {
                if !ids.contains_key(n) {
                    return Err(DriverError::UnknownInstance(n.clone()));
                }
            }
        }
        if start {
            for name in &added {
                if let Some(id) = ids.get(name) {
                    let _ = self.router.start(now, *id);
                }
            }
        }
        Ok(added)
    }

    /// Stops an instance gracefully and forgets it.
    fn remove(&mut self, now: Timestamp, name: &str) {
        let Some(id) = self
            .info
            .iter()
            .find(|(_, i)| i.name == name)
            .map(|(id, _)| *id)
        else {
            return;
        };
        let _ = self.router.remove_instance(now, id);
        self.specs.remove(name);
        self.order.retain(|o| *o != id);
        // The info stays until the removal's outputs are carried out.
        self.retired.push(id);
    }

    /// Applies a new configuration: unchanged instances keep running
    /// untouched; changed ones restart; new ones start; missing ones stop.
    async fn reconfigure(&mut self, config: DriverConfig) -> Result<ReloadSummary, DriverError> {
        let now = self.now();
        let mut summary = ReloadSummary::default();
        // Members of a sync group that changed restart with their group.
        let changed_group_members: Vec<String> = config
            .sync_groups
            .iter()
            .filter(|g| !self.groups.contains(g))
            .chain(
                self.groups
                    .iter()
                    .filter(|g| !config.sync_groups.contains(g)),
            )
            .flatten()
            .cloned()
            .collect();
        let new_names: Vec<String> = config.instances.iter().map(|s| s.name.clone()).collect();
        let old_names: Vec<String> = self.specs.keys().cloned().collect();
        let mut to_add = Vec::new();
        for spec in config.instances {
            match self.specs.get(&spec.name) {
                Some(old) if *old == spec && !changed_group_members.contains(&spec.name) => {
                    summary.unchanged.push(spec.name.clone());
                }
                Some(_) => {
                    summary.restarted.push(spec.name.clone());
                    to_add.push(spec);
                }
                None => {
                    summary.added.push(spec.name.clone());
                    to_add.push(spec);
                }
            }
        }
        for name in old_names.iter().filter(|n| !new_names.contains(n)) {
            summary.removed.push(name.clone());
        }
        // Resolve the new ones first, so a bad reload changes nothing.
        for spec in &to_add {
            self.prepare(spec.clone()).await?;
        }
        for name in summary.removed.iter().chain(&summary.restarted) {
            self.remove(now, name);
        }
        self.carry_out().await;
        self.add(to_add, &config.sync_groups, now, true).await?;
        self.groups = config.sync_groups;
        summary.unchanged.sort();
        Ok(summary)
    }

    fn now(&self) -> Timestamp {
        Timestamp::from(self.epoch.elapsed())
    }

    async fn run(mut self) -> Result<(), DriverError> {
        let Some(mut rx) = self.rx.take() else {
            return Err(DriverError::Stopped);
        };
        let mut timer = match PreciseTimer::new() {
            Ok(t) => t,
            Err(e) => return Err(DriverError::Timer(e)),
        };
        // The timer's epoch must be ours: take both together.
        self.epoch = Instant::now();
        let mut armed: Option<Timestamp> = None;
        let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let now = self.now();
        self.router.handle_startup(now);
        self.carry_out().await;
        self.publish();
        let result = loop {
            // A takeover deadline is armed early and waited out exactly
            // (see `wait_out`): an idle vCPU can wake milliseconds late.
            let deadline = self.router.poll_deadline().map(|d| {
                if d.kind == vrrp_core::DeadlineKind::Takeover {
                    d.at - TAKEOVER_LEAD
                } else {
                    d.at
                }
            });
            if deadline != armed {
                armed = deadline;
                if let Err(e) = timer.reset(deadline.map(Timestamp::since_epoch)) {
                    break Err(DriverError::Timer(e));
                }
            }
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break Ok(()),
                packet = rx.recv() => {
                    let Some(first) = packet else {
                        break Err(DriverError::Stopped);
                    };
                    let now = self.now();
                    self.deliver(now, first);
                    // Take what else is queued before doing the outputs.
                    while let Ok(more) = rx.try_recv() {
                        self.deliver(now, more);
                    }
                }
                fired = timer.expired() => {
                    if let Err(e) = fired {
                        break Err(DriverError::Timer(e));
                    }
                    armed = None;
                    self.wait_out_takeover();
                    let now = self.now();
                    // Advertisements that arrived before the deadline but were
                    // not read yet (a busy CPU) must count before the timer
                    // does, or a live master looks dead.
                    while let Ok(more) = rx.try_recv() {
                        self.deliver(now, more);
                    }
                    self.drain_sockets(now);
                    self.last_packet = self.last_packet.max(now);
                    self.router.handle_timeout(now);
                }
                event = self.links.next() => match event {
                    Ok(event) => self.link_event(event),
                    Err(e) => {
                        tracing::warn!(error = %e, "link watcher failed; resynchronising");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if let Err(e) = self.links.resync().await {
                            tracing::warn!(error = %e, "link resync failed");
                        }
                        let ups: Vec<(u32, bool)> = self.links.links().map(|l| (l.ifindex, l.is_up())).collect();
                        let now = self.now();
                        for (ifindex, up) in ups {
                            self.router.set_track_state(now, interface_track(ifindex), up);
                        }
                    }
                },
                Some(cmd) = self.commands_rx.recv() => self.command(cmd).await,
                _ = stats_tick.tick() => self.publish(),
            }
            self.carry_out().await;
        };
        let now = self.now();
        self.router.handle_shutdown(now);
        self.carry_out().await;
        self.readers.abort_all();
        // Let announcements in flight finish; they are short.
        while self.tasks.join_next().await.is_some() {}
        self.publish();
        result
    }

    /// Called when the timer fires: if the next deadline is a takeover
    /// armed [`TAKEOVER_LEAD`] early, spins until it is due. Spinning (a
    /// few milliseconds, only when a master has gone quiet) is what keeps
    /// a takeover within a fraction of a millisecond of
    /// Master_Down_Interval on a virtual machine whose idle vCPU wakes up
    /// late; a live master's advertisement keeps pushing the deadline
    /// away before the early wake-up is reached.
    fn wait_out_takeover(&self) {
        let Some(vrrp_core::Deadline {
            at: deadline,
            kind: vrrp_core::DeadlineKind::Takeover,
        }) = self.router.poll_deadline()
        else {
            return;
        };
        // Never longer than the lead, whatever the clocks say.
        let give_up = Instant::now() + TAKEOVER_LEAD;
        while self.now() < deadline && Instant::now() < give_up {
            std::hint::spin_loop();
        }
    }

    /// Reads every packet already queued on the sockets, without waiting.
    fn drain_sockets(&mut self, now: Timestamp) {
        let sockets: Vec<Arc<VrrpSocket>> = self.sockets.values().cloned().collect();
        let mut buf = vec![0u8; RECV_BUFFER_LEN];
        for socket in sockets {
            loop {
                match socket.try_recv(&mut buf) {
                    Ok(Some(p)) => {
                        let received = Received::from_packet(socket.ifindex(), &p);
                        self.deliver(now, received);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "draining a socket failed");
                        break;
                    }
                }
            }
        }
    }

    fn deliver(&mut self, now: Timestamp, packet: Received) {
        // Timers run from when the packet arrived, not from when we read it.
        let age = packet.age.min(now.since_epoch());
        let arrived = now - age;
        let now = arrived.max(self.last_packet);
        self.last_packet = now;
        if let Err(reason) =
            self.router
                .handle_packet(now, packet.interface, &packet.meta, &packet.bytes)
        {
            tracing::trace!(src = %packet.meta.src, ?reason, "advertisement dropped");
        }
    }

    fn link_event(&mut self, event: LinkEvent) {
        let now = self.now();
        match event {
            LinkEvent::Up(l) => {
                tracing::info!(interface = %l.name, "link up");
                self.router
                    .set_track_state(now, interface_track(l.ifindex), true);
            }
            LinkEvent::Down(l) => {
                tracing::warn!(interface = %l.name, "link down");
                self.router
                    .set_track_state(now, interface_track(l.ifindex), false);
            }
            LinkEvent::Removed { ifindex, name } => {
                tracing::warn!(interface = %name, "interface removed");
                self.router
                    .set_track_state(now, interface_track(ifindex), false);
            }
            LinkEvent::AddressRemoved(a) => {
                // Losing the address we advertise from is a fault too.
                let lost = self.info.iter().any(|(id, i)| {
                    i.ifindex == a.ifindex
                        && self
                            .router
                            .config_of(*id)
                            .is_some_and(|c| c.primary_address == a.addr)
                });
                if lost {
                    tracing::warn!(address = %a.addr, "source address removed");
                    self.router
                        .set_track_state(now, interface_track(a.ifindex), false);
                }
            }
            LinkEvent::AddressAdded(a) => {
                let ours = self.info.iter().any(|(id, i)| {
                    i.ifindex == a.ifindex
                        && self
                            .router
                            .config_of(*id)
                            .is_some_and(|c| c.primary_address == a.addr)
                });
                if ours && self.links.link(a.ifindex).is_some_and(|l| l.is_up()) {
                    self.router
                        .set_track_state(now, interface_track(a.ifindex), true);
                }
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Reconfigure(config, reply) => {
                let result = self.reconfigure(*config).await;
                self.publish();
                let _ = reply.send(result);
            }
            Command::SetPriority(name, priority, reply) => {
                let id = self
                    .info
                    .iter()
                    .find(|(_, i)| i.name == name)
                    .map(|(id, _)| *id);
                let result = match id {
                    Some(id) => {
                        self.router
                            .set_base_priority(now, id, priority)
                            .map_err(|source| DriverError::Config {
                                instance: name,
                                source,
                            })
                    }
                    None => Err(DriverError::UnknownInstance(name)),
                };
                let _ = reply.send(result);
            }
            Command::SetTrack(track, up) => self.router.set_track_state(now, track, up),
        }
    }

    /// Carries out every pending output of the router, in order.
    async fn carry_out(&mut self) {
        let mut changed = false;
        while let Some((id, output)) = self.router.poll_output() {
            match output {
                Output::Transmit(t) => {
                    let Some(ifindex) = self.router.interface_of(id) else {
                        continue;
                    };
                    let family = Family::of(t.destination);
                    let len = match self.router.encode(id, &t, &mut self.buf) {
                        Ok(len) => len,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode advertisement");
                            continue;
                        }
                    };
                    self.outbox
                        .push((ifindex, family), &self.buf[..len], t.destination);
                }
                // What goes on the wire keeps the router's order: queued
                // advertisements leave before addresses change or GARPs go.
                Output::AddAddresses { .. } => {
                    self.flush_outbox().await;
                    self.change_addresses(id, true).await;
                }
                Output::RemoveAddresses { .. } => {
                    self.flush_outbox().await;
                    self.change_addresses(id, false).await;
                }
                Output::Announce {
                    count, interval, ..
                } => {
                    self.flush_outbox().await;
                    self.announce(id, count, interval);
                }
                Output::StateChanged { from, to, reason } => {
                    changed = true;
                    let at = self.epoch.elapsed();
                    // A removed instance is gone from the router's live set
                    // but its configuration stays until its outputs drain.
                    let priority = self
                        .router
                        .instance(id)
                        .map(|inst| inst.effective_priority())
                        .or_else(|| self.router.config_of(id).map(|c| c.priority));
                    let vrid = self.router.config_of(id).map(|c| c.vrid);
                    if let (Some(i), Some(vrid), Some(priority)) =
                        (self.info.get(&id), vrid, priority)
                    {
                        let event = StateEvent {
                            instance: i.name.clone(),
                            vrid,
                            from,
                            to,
                            reason,
                            priority,
                            at,
                        };
                        tracing::info!(instance = %i.name, %from, %to, ?reason, "state change");
                        let _ = self.events.send(event);
                    }
                }
                Output::PriorityChanged { from, to } => {
                    changed = true;
                    if let Some(i) = self.info.get(&id) {
                        tracing::info!(instance = %i.name, %from, %to, "priority change");
                    }
                }
                _ => {}
            }
        }
        self.flush_outbox().await;
        // Forget removed instances once the router has let them go.
        if !self.retired.is_empty() {
            let router = &self.router;
            let info = &mut self.info;
            self.retired.retain(|id| {
                let pending = router.config_of(*id).is_some();
                if !pending {
                    info.remove(id);
                }
                pending
            });
        }
        if changed {
            self.publish();
        }
    }

    /// Sends the queued advertisements: one `sendmmsg` per socket for all
    /// the instances whose timers fired together.
    async fn flush_outbox(&mut self) {
        if self.outbox.items.is_empty() {
            return;
        }
        let mut outbox = std::mem::take(&mut self.outbox);
        let mut keys: Vec<(u32, Family)> = Vec::new();
        for (key, _, _) in &outbox.items {
            if !keys.contains(key) {
                keys.push(*key);
            }
        }
        for key in keys {
            let Some(socket) = self.sockets.get(&key).cloned() else {
                continue;
            };
            let batch: Vec<(&[u8], IpAddr)> = outbox
                .items
                .iter()
                .filter(|(k, _, _)| *k == key)
                .filter_map(|(_, range, dst)| Some((outbox.bytes.get(range.clone())?, *dst)))
                .collect();
            let outcome = socket.send_batch(&batch).await;
            for e in outcome.errors {
                self.counters.send_errors += 1;
                tracing::debug!(error = %e, "send failed");
            }
        }
        // Keep the allocations for the next round.
        outbox.bytes.clear();
        outbox.items.clear();
        self.outbox = outbox;
    }

    async fn change_addresses(&mut self, id: InstanceId, add: bool) {
        let Some(info) = self.info.get(&id) else {
            return;
        };
        for (ifindex, vip, options) in &info.vips {
            let result = if add {
                self.addresses
                    .add(*ifindex, vip.addr, vip.prefix_len, options)
                    .await
            } else {
                self.addresses
                    .remove(*ifindex, vip.addr, vip.prefix_len)
                    .await
            };
            if let Err(e) = result {
                self.counters.address_errors += 1;
                tracing::error!(instance = %info.name, address = %vip.addr, add, error = %e, "address change failed");
            }
        }
    }

    fn announce(&mut self, id: InstanceId, count: u32, interval: Duration) {
        let Some(info) = self.info.get(&id) else {
            return;
        };
        let mut per_device: BTreeMap<u32, Vec<IpAddr>> = BTreeMap::new();
        for (ifindex, vip, _) in &info.vips {
            per_device.entry(*ifindex).or_default().push(vip.addr);
        }
        for (ifindex, addrs) in per_device {
            let Some(socket) = self.announcers.get(&ifindex).cloned() else {
                continue;
            };
            let name = info.name.clone();
            self.tasks.spawn(async move {
                for i in 0..count {
                    if i > 0 && !interval.is_zero() {
                        tokio::time::sleep(interval).await;
                    }
                    if let Err(e) = socket.announce_all(&addrs).await {
                        log_announce_error(&name, &e);
                        return;
                    }
                }
            });
        }
        // Reap finished announcement tasks without waiting.
        while let Some(Some(_)) = self.tasks.try_join_next().map(Some) {}
    }

    fn publish(&mut self) {
        let instances = self
            .order
            .iter()
            .filter_map(|id| {
                let inst = self.router.instance(*id)?;
                let info = self.info.get(id)?;
                Some(InstanceStatus {
                    name: info.name.clone(),
                    interface: info.interface.clone(),
                    vrid: inst.config().vrid,
                    state: inst.state(),
                    priority: inst.effective_priority(),
                    master: inst.master_address(),
                    stats: *inst.statistics(),
                })
            })
            .collect();
        let kernel_drops = self.sockets.values().map(|s| s.stats().kernel_drops).sum();
        let snapshot = Snapshot {
            instances,
            kernel_drops,
            ..self.counters.clone()
        };
        self.snapshot_tx.send_replace(snapshot);
    }
}

fn log_announce_error(instance: &str, e: &GarpError) {
    tracing::warn!(instance, error = %e, "gratuitous ARP / NA failed");
}

/// The address to advertise from: the primary IPv4 address, or the
/// link-local IPv6 address once duplicate address detection is done.
async fn source_address(
    addresses: &AddressManager,
    ifindex: u32,
    family: Family,
) -> Result<Option<IpAddr>, DriverError> {
    for _ in 0..50 {
        let found = match family {
            Family::V4 => addresses.primary_ipv4(ifindex).await?,
            _ => addresses.ipv6_link_local(ifindex).await?,
        };
        if let Some(a) = found {
            return Ok(Some(a.addr));
        }
        if family == Family::V4 {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// How long ago the kernel received a packet, from its wall-clock stamp.
/// A clock step could make that absurd: beyond 100 ms, or negative, the
/// packet counts as received now.
fn packet_age(received: Option<std::time::SystemTime>) -> Duration {
    received
        .and_then(|r| std::time::SystemTime::now().duration_since(r).ok())
        .filter(|age| *age <= Duration::from_millis(100))
        .unwrap_or(Duration::ZERO)
}

/// How early the timer wakes for a takeover deadline, to be spun away.
/// Covers the wake-up latency of an idle vCPU (p99 3 ms measured on the
/// development VM, see `examples/wake_latency.rs`).
const TAKEOVER_LEAD: Duration = Duration::from_millis(3);

/// Encoded advertisements waiting to be sent, in the router's order.
#[derive(Default)]
struct Outbox {
    /// The encoded payloads, back to back.
    bytes: Vec<u8>,
    /// Socket (interface, family), payload range in `bytes`, destination.
    items: Vec<((u32, Family), std::ops::Range<usize>, IpAddr)>,
}

impl Outbox {
    fn push(&mut self, socket: (u32, Family), payload: &[u8], dst: IpAddr) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.items.push((socket, start..self.bytes.len(), dst));
    }
}

async fn read_loop(socket: Arc<VrrpSocket>, out: mpsc::Sender<Received>) {
    let mut buf = vec![0u8; RECV_BUFFER_LEN];
    let mut failures = 0u32;
    loop {
        match socket.recv(&mut buf).await {
            Ok(p) => {
                failures = 0;
                let received = Received::from_packet(socket.ifindex(), &p);
                if out.send(received).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // A transient error (ENOBUFS, a vanished interface) must not
                // end reception; back off and try again.
                failures = failures.saturating_add(1);
                tracing::warn!(interface = socket.interface(), error = %e, "receive failed");
                tokio::time::sleep(Duration::from_millis(10 * u64::from(failures.min(100)))).await;
            }
        }
    }
}
