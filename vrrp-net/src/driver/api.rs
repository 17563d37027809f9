//! What a caller of the driver gives and gets: configuration, status,
//! events and errors.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use vrrp_core::{
    InstanceConfig, Priority, Reason, RouterError, RouterStatistics, State, Statistics,
    TrackConfig, TrackId, VirtualAddress, Vrid,
};

use crate::NetlinkError;
use crate::addr::AddrAttrs;
use crate::route::Route;
use crate::rule::Rule;
use crate::socket::SocketError;
use crate::socket::copy_io;

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
    /// Added, removed and announced with the others, but not carried in
    /// the advertisements (keepalived's `virtual_ipaddress_excluded`): may
    /// be of the other family, and keeps large address sets out of the
    /// packets.
    pub excluded: bool,
    /// Scope, broadcast, peer and IPv6 preferred lifetime (keepalived's
    /// `scope`, `brd`, `peer`, `preferred_lft`). An address found with
    /// another scope or broadcast than these, while the driver owns it,
    /// is replaced.
    pub attrs: AddrAttrs,
    /// keepalived's `no_track`: the address's own interface (a `device`
    /// other than the instance's) is not tracked. Without it, that
    /// interface going down puts the instance in Fault, as in keepalived.
    /// (Unlike keepalived, which leaves Master when a tracked virtual
    /// address is deleted, the driver puts a deleted address back either
    /// way.)
    pub no_track: bool,
}

impl Vip {
    /// An address on the instance's interface, without a label.
    pub fn new(address: VirtualAddress) -> Self {
        Vip {
            address,
            device: None,
            label: None,
            excluded: false,
            attrs: AddrAttrs::default(),
            no_track: false,
        }
    }
}

/// A tracked object, as the driver names it: an interface (followed by
/// name) or an object whose state the caller reports (a script, a file),
/// with the caller's own id. The two never collide, whatever ids the
/// caller picks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TrackKey {
    /// A network interface, by name: up when it exists, is
    /// administratively up and running.
    Interface(String),
    /// An object of the caller's, reported with
    /// [`crate::driver::VrrpHandle::set_track`].
    User(TrackId),
}

impl fmt::Display for TrackKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrackKey::Interface(name) => write!(f, "interface {name}"),
            TrackKey::User(id) => write!(f, "tracked object {}", id.0),
        }
    }
}

/// One instance to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// A name for logs, events and commands (keepalived's instance name).
    pub name: String,
    /// The interface it runs on, followed by name: when it is missing
    /// (at start-up, or deleted later), the instance waits in Fault; when
    /// an interface of that name appears, the instance uses it.
    pub interface: String,
    /// The engine configuration. An unspecified primary address
    /// (`0.0.0.0` / `::`) means the interface's primary IPv4 or
    /// link-local IPv6 address, followed when it changes. Its virtual
    /// addresses are replaced by [`InstanceSpec::vips`] when that is not
    /// empty.
    pub config: InstanceConfig,
    /// The virtual addresses with device and label.
    pub vips: Vec<Vip>,
    /// Other interfaces to track, with their weights (keepalived's
    /// `track_interface`). The instance's own interface is always tracked
    /// with weight 0: link down means Fault.
    pub track_interfaces: Vec<(String, TrackConfig)>,
    /// Objects whose state the caller reports with
    /// [`crate::driver::VrrpHandle::set_track`] (scripts, files...): the
    /// caller's id (any value), weight, and the state to assume until the
    /// first report. An id the driver already knows keeps its reported
    /// state across reloads.
    pub tracks: Vec<(TrackId, TrackConfig, bool)>,
    /// A virtual MAC interface for the instance (keepalived's `use_vmac`):
    /// see [`VmacSpec`].
    pub vmac: Option<VmacSpec>,
    /// keepalived's `dont_track_primary`: the instance's own interface
    /// going down is not a fault (it is still needed to run: a missing
    /// interface still holds the instance in Fault).
    pub dont_track_primary: bool,
    /// Routes installed while the instance is Master and removed
    /// otherwise (keepalived's `virtual_routes`), owned and healed like
    /// the virtual addresses.
    pub routes: Vec<Route>,
    /// Policy rules installed while the instance is Master and removed
    /// otherwise (keepalived's `virtual_rules`), owned and healed the same
    /// way.
    pub rules: Vec<Rule>,
    /// keepalived's `promote_secondaries`: the driver turns on
    /// `net.ipv4.conf.INTERFACE.promote_secondaries` when it is off, so
    /// that removing a virtual address that is the primary address of its
    /// subnet does not take the subnet's other addresses with it, and
    /// turns it off again when the driver stops. Not for an instance with
    /// a virtual MAC interface (keepalived ignores it there too).
    pub promote_secondaries: bool,
    /// RFC 5798 6.1 `Accept_Mode` (keepalived's `accept` / `no_accept`):
    /// when false and the instance is not the address owner, the driver
    /// has the firewall drop packets to and from its virtual addresses
    /// (in every state: they only reach the host while it is master; see
    /// [`crate::firewall`]). True by default.
    pub accept: bool,
    /// keepalived's `garp_extra_if`: periodic gratuitous ARPs / NAs on
    /// the other interfaces of its addresses while master (see
    /// [`crate::driver::core::GarpExtraIf`]).
    pub garp_extra_if: Option<crate::driver::core::GarpExtraIf>,
}

/// keepalived's `use_vmac`: the driver creates a macvlan named `name` on
/// the instance's interface with the VRRP virtual MAC address
/// ([`crate::vmac::virtual_mac`]), owns it like the addresses it adds
/// (recorded, removed at stop, a leftover of a crashed run reused or
/// removed, one deleted by hand re-created), puts the virtual addresses
/// without a device of their own on it, and advertises from it, or, with
/// `xmit_base`, from the base interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VmacSpec {
    /// The macvlan's name (keepalived's default: `vrrp.{VRID}`).
    pub name: String,
    /// Advertise and listen on the base interface rather than on the
    /// macvlan (keepalived's `vmac_xmit_base`).
    pub xmit_base: bool,
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
            vmac: None,
            dont_track_primary: false,
            routes: Vec::new(),
            rules: Vec::new(),
            promote_secondaries: false,
            accept: true,
            garp_extra_if: None,
        }
    }

    /// Gives the instance a virtual MAC interface (builder style; see
    /// [`InstanceSpec::vmac`]).
    #[must_use]
    pub fn with_vmac(mut self, vmac: VmacSpec) -> Self {
        self.vmac = Some(vmac);
        self
    }

    /// The interface its socket is bound to: the macvlan, or the
    /// configured interface (no VMAC, or `xmit_base`).
    pub(crate) fn socket_interface(&self) -> &str {
        match &self.vmac {
            Some(v) if !v.xmit_base => &v.name,
            _ => &self.interface,
        }
    }

    /// Where its virtual addresses go when they name no device: the
    /// macvlan, or the configured interface.
    pub(crate) fn vip_interface(&self) -> &str {
        self.vmac.as_ref().map_or(&self.interface, |v| &v.name)
    }

    /// Adds a virtual address with its device and label (builder style).
    #[must_use]
    pub fn vip(mut self, vip: Vip) -> Self {
        self.vips.push(vip);
        self
    }

    /// Tracks an object whose state the caller reports with
    /// [`crate::driver::VrrpHandle::set_track`] (builder style; see
    /// [`InstanceSpec::tracks`]): `initially_up` is its state until the
    /// first report.
    #[must_use]
    pub fn track(mut self, id: TrackId, config: TrackConfig, initially_up: bool) -> Self {
        self.tracks.push((id, config, initially_up));
        self
    }

    /// Tracks another interface (builder style; keepalived's
    /// `track_interface`).
    #[must_use]
    pub fn track_interface(mut self, name: impl Into<String>, config: TrackConfig) -> Self {
        self.track_interfaces.push((name.into(), config));
        self
    }

    /// The engine configuration with the virtual addresses of
    /// [`InstanceSpec::vips`] (but the excluded ones) when there are any.
    pub(crate) fn engine_config(&self) -> InstanceConfig {
        let mut config = self.config.clone();
        if !self.vips.is_empty() {
            config.virtual_addresses = self
                .vips
                .iter()
                .filter(|v| !v.excluded)
                .map(|v| v.address)
                .collect();
        }
        config
    }

    /// The virtual addresses with device and label, from `vips` or, when
    /// empty, from the config.
    pub(crate) fn all_vips(&self) -> Vec<Vip> {
        if self.vips.is_empty() {
            self.config
                .virtual_addresses
                .iter()
                .map(|a| Vip::new(*a))
                .collect()
        } else {
            self.vips.clone()
        }
    }
}

/// What to do with an address equal to a virtual address that the driver
/// did not add (an operator's, another program's) when the instance is
/// not master and the address should not be there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForeignAddressPolicy {
    /// Leave it, and report it: a warning in the log, the
    /// `foreign_addresses` counter and the instance's status. The default:
    /// the driver removes only what it added.
    #[default]
    Keep,
    /// Remove it, as keepalived does to avoid a duplicate address on the
    /// LAN, and report it the same way (`foreign_removed`). An address
    /// owner's addresses and any instance's source address are never
    /// removed.
    Remove,
}

/// Everything the driver runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverConfig {
    /// The instances.
    pub instances: Vec<InstanceSpec>,
    /// Sync groups, each a list of instance names.
    pub sync_groups: Vec<Vec<String>>,
    /// Where the driver records the addresses it added, so that a later
    /// run (after a crash or SIGKILL) removes its leftovers and nothing
    /// else. `None`: `/run/vrrp-net/owned.<cookie>` where `<cookie>` is
    /// the network namespace's cookie (`SO_NETNS_COOKIE`, never reused
    /// while the kernel runs), so drivers in different namespaces never
    /// share a record. A lock (`PATH.lock`) keeps two drivers from using
    /// one record at once: give each daemon of a namespace its own path.
    /// A graceful stop removes the file when nothing is left in it.
    pub state_file: Option<PathBuf>,
    /// What to do with addresses equal to a virtual address that the
    /// driver did not add.
    pub foreign_addresses: ForeignAddressPolicy,
    /// Routes installed from the start until the driver stops
    /// (keepalived's `static_routes`), kept and healed meanwhile. The
    /// driver records the routes it adds in `STATE_FILE.routes`.
    pub static_routes: Vec<Route>,
    /// Policy rules installed from the start until the driver stops
    /// (keepalived's `static_rules`), recorded in `STATE_FILE.rules`.
    pub static_rules: Vec<Rule>,
    /// Addresses added from the start until the driver stops, outside
    /// any instance (keepalived's `static_ipaddress`): owned, recorded
    /// and healed like virtual addresses. Each needs its `device`; one
    /// without is ignored (and logged). `excluded` and `no_track` mean
    /// nothing here.
    pub static_addresses: Vec<Vip>,
    /// The accept-mode firewall's settings (used when some instance has
    /// [`InstanceSpec::accept`] off); read at start.
    pub firewall: crate::firewall::FirewallConfig,
}

impl DriverConfig {
    /// These instances, with no sync group and the defaults of the rest.
    pub fn new(instances: impl IntoIterator<Item = InstanceSpec>) -> Self {
        DriverConfig {
            instances: instances.into_iter().collect(),
            ..DriverConfig::default()
        }
    }
}

/// Why the driver could not start, refused a request or stopped.
///
/// Like every error of this crate, its `Display` includes the cause (the
/// OS's, the kernel's or the engine's words), so `{}` and a tracing
/// `%error` say everything, and it does not offer the cause again as
/// [`std::error::Error::source`]: `anyhow` and friends print it once.
/// The cause is still there to match on, in the variant's fields.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// A socket could not be opened.
    #[error("socket on {interface}: {error}")]
    Socket {
        /// The interface.
        interface: String,
        /// What went wrong.
        error: SocketError,
    },
    /// An rtnetlink request failed.
    #[error("{0}")]
    Netlink(NetlinkError),
    /// The engine refused the configuration of an instance.
    #[error("instance {instance}: {error}")]
    Config {
        /// The instance.
        instance: String,
        /// What the engine said.
        error: RouterError,
    },
    /// Two instances share a name.
    #[error("two instances are named {0}")]
    DuplicateName(String),
    /// Two instances have the same VRID on one interface and family.
    #[error("instances {a} and {b} both use VRID {vrid} on {interface}")]
    DuplicateVrid {
        /// The interface.
        interface: String,
        /// The VRID.
        vrid: Vrid,
        /// One instance.
        a: String,
        /// The other.
        b: String,
    },
    /// An instance's virtual MAC interface cannot be: its name is another
    /// instance's macvlan or its own interface.
    #[error("instance {instance}: virtual MAC interface {reason}")]
    BadVmac {
        /// The instance.
        instance: String,
        /// Why.
        reason: String,
    },
    /// A sync group names an instance that does not exist.
    #[error("sync group names unknown instance {0}")]
    UnknownInstance(String),
    /// A command named an instance that does not exist.
    #[error("no instance is named {0}")]
    NoSuchInstance(String),
    /// A tracked object's state was reported, but no instance tracks it
    /// (not in any instance's [`InstanceSpec::tracks`] or interfaces).
    #[error("{0} is tracked by no instance")]
    UnknownTrack(TrackKey),
    /// An instance is in two sync groups.
    #[error("instance {0} is in two sync groups")]
    GroupedTwice(String),
    /// The record of added addresses could not be read or locked.
    #[error("state file {path}: {error}")]
    StateFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// Another driver uses the same record of added addresses.
    #[error(
        "state file {0} is in use by another driver: give each daemon of a network namespace its own state file"
    )]
    StateFileLocked(PathBuf),
    /// The driver thread or its runtime could not be created.
    #[error("driver thread: {0}")]
    Thread(std::io::Error),
    /// The timer could not be created or armed.
    #[error("timer: {0}")]
    Timer(std::io::Error),
    /// The driver has stopped.
    #[error("the driver has stopped")]
    Stopped,
    /// The driver thread panicked.
    #[error("the driver thread panicked: {0}")]
    Panicked(String),
    /// The thread that makes the driver's changes to the kernel
    /// (addresses, routes, rules, interfaces, announcements), or the one
    /// that follows its routes, ended while the driver ran: it panicked.
    /// The message names the thread (`vrrp-kernel`, `vrrp-routes`).
    #[error("the driver's kernel worker thread ended: {0}")]
    KernelWorker(String),
}

impl DriverError {
    /// A copy for each waiter of a stopped driver (I/O errors keep their
    /// OS error number, or their kind and message).
    pub(crate) fn duplicate(&self) -> DriverError {
        use DriverError as E;
        match self {
            E::Socket { interface, error } => E::Socket {
                interface: interface.clone(),
                error: error.duplicate(),
            },
            E::Netlink(e) => E::Netlink(e.clone()),
            E::Config { instance, error } => E::Config {
                instance: instance.clone(),
                error: error.clone(),
            },
            E::DuplicateName(n) => E::DuplicateName(n.clone()),
            E::DuplicateVrid {
                interface,
                vrid,
                a,
                b,
            } => E::DuplicateVrid {
                interface: interface.clone(),
                vrid: *vrid,
                a: a.clone(),
                b: b.clone(),
            },
            E::BadVmac { instance, reason } => E::BadVmac {
                instance: instance.clone(),
                reason: reason.clone(),
            },
            E::UnknownInstance(n) => E::UnknownInstance(n.clone()),
            E::NoSuchInstance(n) => E::NoSuchInstance(n.clone()),
            E::UnknownTrack(k) => E::UnknownTrack(k.clone()),
            E::GroupedTwice(n) => E::GroupedTwice(n.clone()),
            E::StateFile { path, error } => E::StateFile {
                path: path.clone(),
                error: copy_io(error),
            },
            E::StateFileLocked(p) => E::StateFileLocked(p.clone()),
            E::Thread(e) => E::Thread(copy_io(e)),
            E::Timer(e) => E::Timer(copy_io(e)),
            E::Stopped => E::Stopped,
            E::Panicked(m) => E::Panicked(m.clone()),
            E::KernelWorker(m) => E::KernelWorker(m.clone()),
        }
    }
}

impl From<NetlinkError> for DriverError {
    fn from(e: NetlinkError) -> Self {
        DriverError::Netlink(e)
    }
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

/// Why an instance cannot run and waits in Fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unbound {
    /// No interface of that name exists (yet).
    InterfaceMissing,
    /// The interface has no address to advertise from (no IPv4 address,
    /// or no usable IPv6 link-local address: duplicate address detection
    /// still running).
    NoSourceAddress,
    /// The interface's socket is being opened or could not be opened.
    Socket(String),
    /// The virtual MAC interface is being created or could not be.
    Vmac(String),
}

impl fmt::Display for Unbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unbound::InterfaceMissing => f.write_str("interface missing"),
            Unbound::NoSourceAddress => f.write_str("no source address"),
            Unbound::Socket(e) => write!(f, "socket: {e}"),
            Unbound::Vmac(e) => write!(f, "virtual MAC interface: {e}"),
        }
    }
}

/// One virtual address of an instance, as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipStatus {
    /// Address and prefix length.
    pub address: VirtualAddress,
    /// The interface it belongs on.
    pub device: String,
    /// Whether the interface has it now.
    pub present: bool,
    /// Whether this driver added it (and will remove it).
    pub ours: bool,
    /// Present, not added by this driver, and the instance is not master:
    /// an operator's or another program's address equal to the virtual
    /// address (a duplicate address on the LAN if a peer is master).
    pub foreign: bool,
    /// Failed attempts to add it since it last succeeded.
    pub add_failures: u64,
    /// Times the driver put it back, while it was wanted: removed from
    /// outside, or found with another scope or broadcast (the sum over
    /// every address is [`Snapshot::vips_restored`]).
    pub restored: u64,
    /// The last error adding or removing it, while it persists.
    pub last_error: Option<String>,
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
    /// Base (configured) priority, before tracked objects' weights.
    pub base_priority: Priority,
    /// In maintenance ([`crate::driver::VrrpHandle::set_maintenance`]):
    /// Backup until cleared.
    pub maintenance: bool,
    /// The master's address, when known.
    pub master: Option<IpAddr>,
    /// The address it advertises from, when bound.
    pub source: Option<IpAddr>,
    /// Why it waits in Fault, if it cannot run.
    pub unbound: Option<Unbound>,
    /// Its virtual addresses.
    pub vips: Vec<VipStatus>,
    /// Counters (refreshed at least every second).
    pub stats: Statistics,
    /// What the accepted advertisements looked like.
    pub adverts: AdvertWatch,
    /// The master's priority, when known: its last advertisement's
    /// (from [`InstanceStatus::peers`]), or the instance's own while it
    /// is master.
    pub master_priority: Option<Priority>,
    /// The routers heard on this virtual router (accepted advertisements,
    /// by source address; at most [`core::MAX_PEERS`](crate::driver::core::MAX_PEERS),
    /// forgotten [`core::PEER_EXPIRY`](crate::driver::core::PEER_EXPIRY)
    /// after their last one).
    pub peers: Vec<PeerStatus>,
    /// Gratuitous ARPs sent for its IPv4 addresses (one per address per
    /// round).
    pub garps_sent: u64,
    /// Unsolicited neighbour advertisements sent for its IPv6 addresses.
    pub nas_sent: u64,
}

/// A router heard on an instance's virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its source address.
    pub address: IpAddr,
    /// The priority of its last advertisement (0: it resigned).
    pub priority: Priority,
    /// The advertisement interval its last advertisement carried.
    pub advert_interval: Duration,
    /// When its first advertisement (since it was last forgotten)
    /// arrived, since the driver's epoch.
    pub first_advert: Duration,
    /// When its last advertisement arrived, since the driver's epoch.
    pub last_advert: Duration,
    /// How long ago that was, when the snapshot was taken.
    pub age: Duration,
    /// Advertisements accepted from it.
    pub adverts: u64,
}

/// Upper bounds of [`DurationHistogram`]'s buckets, in milliseconds (a
/// last bucket takes everything above).
pub const HISTOGRAM_BOUNDS_MS: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
];

/// Durations counted in fixed buckets ([`HISTOGRAM_BOUNDS_MS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurationHistogram {
    /// Per bucket (not cumulative); the last one is above every bound.
    pub counts: [u64; HISTOGRAM_BOUNDS_MS.len() + 1],
    /// Sum of the durations, in nanoseconds.
    pub sum_ns: u64,
}

impl DurationHistogram {
    /// Counts `d`.
    pub fn observe(&mut self, d: Duration) {
        let ms = d.as_millis();
        let i = HISTOGRAM_BOUNDS_MS
            .iter()
            .position(|b| ms <= u128::from(*b))
            .unwrap_or(HISTOGRAM_BOUNDS_MS.len());
        self.counts[i] += 1;
        self.sum_ns = self
            .sum_ns
            .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// How many were counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The accepted advertisements of one instance, as the driver saw them
/// arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvertWatch {
    /// Time between two accepted advertisements (priority 0 excluded).
    pub intervals: DurationHistogram,
    /// In Backup: how long before Master_Down_Timer would have fired each
    /// accepted advertisement came (how close the backup came to taking
    /// over).
    pub down_timer_margins: DurationHistogram,
    /// The smallest such margin so far.
    pub min_down_timer_margin: Option<Duration>,
    /// Advertisements (priority above 0) accepted from another router
    /// while Master: two masters at once.
    pub dual_master: u64,
}

/// The status of every instance and the driver's own counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Per instance, in configuration order.
    pub instances: Vec<InstanceStatus>,
    /// Packets dropped before they reached an instance (RFC 6527 router
    /// statistics).
    pub router: RouterStatistics,
    /// Advertisements the kernel refused (other than a full buffer).
    pub send_errors: u64,
    /// Advertisements dropped because the socket's send buffer was full:
    /// the driver never waits for it.
    pub send_dropped: u64,
    /// Address changes that failed (each is retried).
    pub address_errors: u64,
    /// Gratuitous ARPs / NAs that failed.
    pub announce_errors: u64,
    /// Advertisements the kernel dropped because a socket's receive
    /// buffer was full.
    pub kernel_drops: u64,
    /// Received packets dropped by the sockets as malformed or truncated.
    pub malformed_packets: u64,
    /// Virtual addresses removed from outside while master, and put back.
    pub vips_restored: u64,
    /// Times an address equal to a virtual address, not added by this
    /// driver, was found where the instance is not master.
    pub foreign_addresses: u64,
    /// Such addresses removed ([`ForeignAddressPolicy::Remove`]).
    pub foreign_removed: u64,
    /// Addresses an earlier run added and left behind, removed at start.
    pub leftovers_removed: u64,
    /// Full re-reads of the kernel's links and addresses.
    pub reconciliations: u64,
    /// Times link / address notifications were lost (ENOBUFS) and
    /// re-read.
    pub netlink_overruns: u64,
    /// Failed writes of the state file.
    pub state_file_errors: u64,
    /// Routes removed from outside while wanted, and put back.
    pub routes_restored: u64,
    /// Route changes that failed (each is retried).
    pub route_errors: u64,
    /// Times a route of someone else's was found with the identity
    /// (table, destination, metric) of a wanted route: left in place.
    pub foreign_routes: u64,
    /// Routes an earlier run added and left behind, removed at start.
    pub route_leftovers_removed: u64,
    /// Policy rules removed from outside while wanted, and put back.
    pub rules_restored: u64,
    /// Rule changes that failed (each is retried).
    pub rule_errors: u64,
    /// Times a rule of someone else's was found equal to a wanted one.
    pub foreign_rules: u64,
    /// Rules an earlier run added and left behind, removed at start.
    pub rule_leftovers_removed: u64,
    /// Rows of the instances' peer tables replaced because a table was
    /// full ([`core::MAX_PEERS`](crate::driver::core::MAX_PEERS)).
    pub peers_evicted: u64,
    /// When the driver published this snapshot (`None` from the sans-IO
    /// core, which reads no clock): ages in it ([`PeerStatus::age`]) are
    /// as of then.
    pub published: Option<std::time::Instant>,
    /// Accept-mode firewall changes that failed (each is retried).
    pub firewall_errors: u64,
    /// Times the accept-mode firewall table was found changed or deleted
    /// from outside and put back.
    pub firewall_repairs: u64,
}

/// What a reload changed, by instance name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Instances kept as they were: same state, same addresses, no flap.
    pub unchanged: Vec<String>,
    /// Instances changed in place (priority, weights, tracked objects,
    /// virtual addresses, timers, peers...): same state, no priority 0.
    pub updated: Vec<String>,
    /// Instances whose identity on the wire changed (interface, VRID,
    /// version, family) or whose sync group changed: stopped and started
    /// again.
    pub restarted: Vec<String>,
    /// New instances.
    pub added: Vec<String>,
    /// Instances no longer configured: stopped gracefully.
    pub removed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use std::error::Error;
    use std::io;

    use vrrp_core::ConfigError;

    use super::*;
    use crate::garp::GarpError;
    use crate::testnet::TestnetError;

    /// The whole chain as `anyhow` prints it with `{:#}`, checking that no
    /// error repeats the text of its `source()`.
    fn chain(e: Box<dyn Error + Send + Sync>) -> String {
        let mut next = e.source();
        let mut outer = e.to_string();
        while let Some(cause) = next {
            let text = cause.to_string();
            assert!(
                !outer.contains(&text),
                "{outer:?} also says its cause {text:?}"
            );
            outer = text;
            next = cause.source();
        }
        format!("{:#}", anyhow::Error::from_boxed(e))
    }

    fn denied() -> io::Error {
        io::Error::from_raw_os_error(1) // EPERM
    }

    #[test]
    fn errors_print_their_cause_once() {
        let config = DriverError::Config {
            instance: "VI_1".into(),
            error: RouterError::Config(ConfigError::MixedFamily(
                "2001:db8::100".parse().expect("address"),
            )),
        };
        assert_eq!(
            format!(
                "{:#}",
                anyhow::Error::from(config).context("starting VRRP on v0")
            ),
            "starting VRRP on v0: instance VI_1: address 2001:db8::100 is not of the instance's \
             address family"
        );
        let cases: Vec<(Box<dyn Error + Send + Sync>, &str)> = vec![
            (
                Box::new(DriverError::Socket {
                    interface: "eth0".into(),
                    error: SocketError::Setup {
                        what: "SO_BINDTODEVICE",
                        error: denied(),
                    },
                }),
                "socket on eth0: SO_BINDTODEVICE: Operation not permitted (os error 1)",
            ),
            (
                Box::new(DriverError::StateFile {
                    path: "/run/x".into(),
                    error: denied(),
                }),
                "state file /run/x: Operation not permitted (os error 1)",
            ),
            (
                Box::new(DriverError::Netlink(NetlinkError::Kernel {
                    op: "add address",
                    errno: 17,
                })),
                "netlink add address: File exists (os error 17)",
            ),
            (
                Box::new(DriverError::Timer(denied())),
                "timer: Operation not permitted (os error 1)",
            ),
            (
                Box::new(DriverError::Thread(denied())),
                "driver thread: Operation not permitted (os error 1)",
            ),
            (
                Box::new(SocketError::NoSuchInterface {
                    name: "eth9".into(),
                    error: nix::Error::ENODEV,
                }),
                "interface \"eth9\" not found: ENODEV: No such device",
            ),
            (
                Box::new(SocketError::Send {
                    dst: "192.0.2.2".parse().expect("address"),
                    error: denied(),
                }),
                "send to 192.0.2.2: Operation not permitted (os error 1)",
            ),
            (
                Box::new(GarpError::Setup {
                    what: "socket(packet)",
                    error: denied(),
                }),
                "socket(packet): Operation not permitted (os error 1)",
            ),
            (
                Box::new(TestnetError::Io {
                    what: "read".into(),
                    error: denied(),
                }),
                "read: Operation not permitted (os error 1)",
            ),
        ];
        for (e, printed) in cases {
            assert_eq!(chain(e), printed);
        }
    }

    #[test]
    fn every_waiter_gets_the_same_error() {
        let e = DriverError::Timer(denied());
        let d = e.duplicate();
        assert_eq!(e.to_string(), d.to_string());
        assert!(matches!(d, DriverError::Timer(io) if io.raw_os_error() == Some(1)));
        let custom = DriverError::StateFile {
            path: "/run/x".into(),
            error: io::Error::other("disk on fire"),
        };
        assert_eq!(custom.to_string(), custom.duplicate().to_string());
        let socket = DriverError::Socket {
            interface: "eth0".into(),
            error: SocketError::NoSuchInterface {
                name: "eth0".into(),
                error: nix::Error::ENODEV,
            },
        };
        assert_eq!(socket.to_string(), socket.duplicate().to_string());
    }
}
