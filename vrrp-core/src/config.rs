//! What one virtual router instance is configured with, and its checks.

use std::net::IpAddr;
use std::time::Duration;

use thiserror::Error;

use crate::time::Centisecs;
use crate::types::{Family, Priority, Version, Vrid};
use crate::wire::{Auth, ChecksumMode};

/// One virtual address with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VirtualAddress {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length (keepalived's default is /32 and /128).
    pub prefix_len: u8,
}

impl VirtualAddress {
    /// A host address (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        let prefix_len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        VirtualAddress { addr, prefix_len }
    }
}

/// The state an instance starts in (keepalived's `state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InitialState {
    /// Start as backup and wait Master_Down_Interval (the default).
    #[default]
    Backup,
    /// Take over at once; a master with a higher priority on the link
    /// takes it back at its next advertisement. (keepalived 2.2.7 does
    /// this only for the address owner, which is master at start-up
    /// anyway: its `state MASTER` below 255 starts as backup.)
    Master,
}

/// Gratuitous ARP / unsolicited neighbour advertisement timing, with
/// keepalived's option names and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GarpConfig {
    /// How many to send at once on becoming master (`garp_master_repeat`
    /// is used for the initial burst too, like keepalived).
    pub master_repeat: u32,
    /// Delay of the second burst after becoming master
    /// (`garp_master_delay`, default 5 s; zero disables it).
    pub master_delay: Duration,
    /// Period of refreshes while master (`garp_master_refresh`; `None`
    /// disables them, the default).
    pub master_refresh: Option<Duration>,
    /// How many to send at each refresh (`garp_master_refresh_repeat`).
    pub refresh_repeat: u32,
    /// Spacing between the packets of one burst (`garp_interval`).
    pub interval: Duration,
    /// How many to send when a master hears a lower-priority
    /// advertisement (`garp_lower_prio_repeat`; keepalived's default is
    /// `garp_master_repeat`, 5; zero disables them). After a partition
    /// heals, the other side was master too and its announcements moved
    /// the neighbours' caches: these move them back.
    pub lower_prio_repeat: u32,
    /// Delay of a second burst after the first lower-priority one
    /// (`garp_lower_prio_delay`, keepalived's default is
    /// `garp_master_delay`, 5 s; zero disables it).
    pub lower_prio_delay: Duration,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            master_repeat: 5,
            master_delay: Duration::from_secs(5),
            master_refresh: None,
            refresh_repeat: 1,
            interval: Duration::ZERO,
            lower_prio_repeat: 5,
            lower_prio_delay: Duration::from_secs(5),
        }
    }
}

/// The configuration of one virtual router instance. Build it with
/// [`InstanceConfig::new`] and adjust fields; [`InstanceConfig::validate`]
/// is called by [`crate::Instance::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceConfig {
    /// The virtual router id.
    pub vrid: Vrid,
    /// VRRPv2 or VRRPv3.
    pub version: Version,
    /// The base priority: 1..=254, or 255 for the address owner.
    pub priority: Priority,
    /// The advertisement interval (`advert_int`).
    pub advert_interval: Centisecs,
    /// Whether a higher-priority backup takes over from a lower-priority
    /// master (`nopreempt` sets this false).
    pub preempt: bool,
    /// How long after first seeing a lower-priority master a backup waits
    /// before preempting it (`preempt_delay`).
    pub preempt_delay: Duration,
    /// This router's primary address on the link: the source of its
    /// advertisements and the tie-break between equal priorities. For
    /// IPv6 it is the link-local address.
    pub primary_address: IpAddr,
    /// The virtual addresses, all of the instance's family.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// VRRPv2 authentication.
    pub auth: Auth,
    /// Unicast peers; empty means multicast.
    pub unicast_peers: Vec<IpAddr>,
    /// The start-up state.
    pub initial_state: InitialState,
    /// Gratuitous ARP / NA timing.
    pub garp: GarpConfig,
    /// VRRPv3/IPv4 checksum variant.
    pub checksum_mode: ChecksumMode,
    /// Whether to drop multicast advertisements whose TTL/hop limit is
    /// not 255 when the driver reports it (RFC 5798 7.1); unicast
    /// advertisements may cross routers and are never checked.
    pub check_ttl: bool,
    /// keepalived's `vrrp_lower_prio_no_advert`: when false (the default),
    /// a master answers a lower-priority advertisement at once with one of
    /// its own, which ends a split brain within one round trip.
    pub lower_prio_no_advert: bool,
    /// Whether an address owner (priority 255) discards every received
    /// advertisement, as RFC 5798 7.1 and RFC 3768 7.1 require (the
    /// default). `false` keeps keepalived 2.2.7's behaviour: an owner
    /// processes advertisements, so an advertisement of priority 255 from
    /// a higher address (another owner, or a spoofed one) demotes it.
    /// keepalived 2.2.8 and later call this `owner_ignore_adverts`.
    pub owner_ignore_adverts: bool,
}

impl InstanceConfig {
    /// A configuration with keepalived's defaults: priority 100, advert
    /// interval 1 s, preempt, no delay, backup at start-up.
    pub fn new(vrid: Vrid, version: Version, primary_address: IpAddr) -> Self {
        InstanceConfig {
            vrid,
            version,
            priority: Priority::DEFAULT,
            advert_interval: Centisecs::ONE_SECOND,
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_address,
            virtual_addresses: Vec::new(),
            auth: Auth::None,
            unicast_peers: Vec::new(),
            initial_state: InitialState::Backup,
            garp: GarpConfig::default(),
            checksum_mode: ChecksumMode::Rfc,
            check_ttl: true,
            lower_prio_no_advert: false,
            owner_ignore_adverts: true,
        }
    }

    /// The address family, that of the primary address.
    pub fn family(&self) -> Family {
        Family::of(&self.primary_address)
    }

    /// Sets the priority (builder style).
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Adds a virtual address (builder style).
    pub fn with_address(mut self, addr: VirtualAddress) -> Self {
        self.virtual_addresses.push(addr);
        self
    }

    /// Sets the advertisement interval (builder style).
    pub fn with_interval(mut self, interval: Centisecs) -> Self {
        self.advert_interval = interval;
        self
    }

    /// Whether `other` is the same virtual router on the wire (VRID,
    /// version and address family): what can change in place, without
    /// leaving and re-entering the protocol.
    pub fn same_identity(&self, other: &InstanceConfig) -> bool {
        self.vrid == other.vrid && self.version == other.version && self.family() == other.family()
    }

    /// Checks the combination of fields: the first error of
    /// [`InstanceConfig::validate_all`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.validate_all().into_iter().next() {
            Some(e) => Err(e.error),
            None => Ok(()),
        }
    }
}

/// A configuration the engine cannot run.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Priority 0 is reserved for a stopping master.
    #[error("priority 0 is reserved; use 1..=255")]
    ZeroPriority,
    /// VRRPv2 is IPv4 only.
    #[error("VRRPv2 cannot run over IPv6; use version 3")]
    V2OverIpv6,
    /// The interval cannot be carried by the version.
    #[error(
        "advertisement interval {interval} cannot be carried by VRRPv{version} (v2: whole seconds 1..=255, v3: 10ms..=40.95s in steps of 10ms)"
    )]
    Interval {
        /// The configured interval.
        interval: Centisecs,
        /// The configured version.
        version: Version,
    },
    /// Authentication exists in VRRPv2 only.
    #[error("authentication exists only in VRRPv2")]
    AuthNeedsV2,
    /// More than 255 virtual addresses.
    #[error("{0} virtual addresses; at most 255 fit an advertisement")]
    TooManyAddresses(usize),
    /// An address of the other family than the primary address.
    #[error("address {0} is not of the instance's address family")]
    MixedFamily(IpAddr),
    /// A prefix length longer than the address.
    #[error("prefix length /{1} is too long for {0}")]
    PrefixLength(IpAddr, u8),
    /// An in-place change asked for another VRID, version or address
    /// family: that is another virtual router, to be removed and added.
    #[error("the VRID, version or address family changed; that is a new virtual router")]
    IdentityChanged,
}
