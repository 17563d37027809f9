//! What one virtual router instance is configured with, and its checks.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use thiserror::Error;

use crate::field::{Field, FieldError};
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

/// The configuration of one virtual router instance.
///
/// Build it with [`InstanceConfig::v3`] or [`InstanceConfig::v2`], which
/// take the address family from the first virtual address and check every
/// field at [`InstanceConfigBuilder::build`]:
///
/// ```
/// use std::time::Duration;
/// use vrrp_core::InstanceConfig;
///
/// let config = InstanceConfig::v3("51".parse()?)
///     .priority("150".parse()?)
///     .virtual_address("2001:db8::100/64".parse()?)
///     .preempt_delay(Duration::from_secs(5))
///     .build()?;
/// // No primary address given: the driver advertises from the
/// // interface's link-local address.
/// assert!(config.primary_address.is_unspecified());
/// assert_eq!(config.family(), vrrp_core::Family::Ipv6);
///
/// let refused = InstanceConfig::v2("51".parse()?)
///     .virtual_address("2001:db8::100".parse()?)
///     .build()
///     .unwrap_err();
/// assert_eq!(refused.to_string(), "version: VRRPv2 cannot run over IPv6; use version 3");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`InstanceConfig::new`] and the public fields remain for code that
/// has all the values at hand (a configuration loader);
/// [`InstanceConfig::validate`] is called by [`crate::Instance::new`].
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
    /// How many advertisement intervals a backup waits for the master
    /// before Skew_Time runs out: the `3` of RFC 5798 6.1's
    /// Master_Down_Interval, keepalived's `down_timer_adverts` (1..=100,
    /// default 3). 0 counts as 1.
    pub down_timer_adverts: u8,
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
            down_timer_adverts: 3,
        }
    }

    /// The address family, that of the primary address.
    pub fn family(&self) -> Family {
        Family::of(&self.primary_address)
    }

    /// A VRRPv3 configuration (RFC 5798) to build, with keepalived's
    /// defaults: priority 100, advert interval 1 s, preempt, no delay,
    /// backup at start-up. The address family is that of the first
    /// virtual address, unless [`InstanceConfigBuilder::primary_address`]
    /// says otherwise.
    pub fn v3(vrid: Vrid) -> InstanceConfigBuilder {
        InstanceConfigBuilder::new(vrid, Version::V3)
    }

    /// A VRRPv2 configuration (RFC 3768, IPv4 only) to build, with the
    /// defaults of [`InstanceConfig::v3`].
    pub fn v2(vrid: Vrid) -> InstanceConfigBuilder {
        InstanceConfigBuilder::new(vrid, Version::V2)
    }

    /// A configuration of either version to build (for a version read
    /// from a setting): [`InstanceConfig::v3`] or [`InstanceConfig::v2`].
    pub fn builder(vrid: Vrid, version: Version) -> InstanceConfigBuilder {
        InstanceConfigBuilder::new(vrid, version)
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

/// Builds an [`InstanceConfig`] (see there for an example). Every setter
/// takes a value of the field's own type; nothing is checked until
/// [`InstanceConfigBuilder::build`], which reports every problem at once,
/// each naming its field.
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct InstanceConfigBuilder {
    config: InstanceConfig,
    primary_address: Option<IpAddr>,
}

impl InstanceConfigBuilder {
    fn new(vrid: Vrid, version: Version) -> Self {
        InstanceConfigBuilder {
            config: InstanceConfig::new(vrid, version, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            primary_address: None,
        }
    }

    /// The base priority: 1..=254, or 255 for the address owner (default
    /// 100).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.config.priority = priority;
        self
    }

    /// The advertisement interval (`advert_int`, default 1 s): whole
    /// seconds for VRRPv2, 10 ms..=40.95 s for VRRPv3.
    pub fn advert_interval(mut self, interval: Centisecs) -> Self {
        self.config.advert_interval = interval;
        self
    }

    /// Whether a higher-priority backup takes over from a lower-priority
    /// master (default true; keepalived's `nopreempt` is `false`).
    pub fn preempt(mut self, preempt: bool) -> Self {
        self.config.preempt = preempt;
        self
    }

    /// keepalived's `preempt_delay` (default none): see
    /// [`InstanceConfig::preempt_delay`] and, for the exact takeover time,
    /// the simulator's notes on it (`vrrp_core::sim`, feature `sim`).
    pub fn preempt_delay(mut self, delay: Duration) -> Self {
        self.config.preempt_delay = delay;
        self
    }

    /// This router's address on the link: the source of its
    /// advertisements and the tie-break between equal priorities (for
    /// IPv6, a link-local address). Not given, or unspecified (`0.0.0.0`,
    /// `::`): a driver learns it from the interface (`vrrp-net` follows
    /// the interface's primary IPv4 or link-local IPv6 address). When
    /// given, it decides the address family.
    pub fn primary_address(mut self, address: IpAddr) -> Self {
        self.primary_address = Some(address);
        self
    }

    /// Adds a virtual address; the first one decides the address family
    /// unless a primary address is given.
    pub fn virtual_address(mut self, address: VirtualAddress) -> Self {
        self.config.virtual_addresses.push(address);
        self
    }

    /// Adds virtual addresses, in order.
    pub fn virtual_addresses(
        mut self,
        addresses: impl IntoIterator<Item = VirtualAddress>,
    ) -> Self {
        self.config.virtual_addresses.extend(addresses);
        self
    }

    /// VRRPv2 authentication (default none).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.config.auth = auth;
        self
    }

    /// Adds a unicast peer: advertisements go to the peers instead of the
    /// multicast group.
    pub fn unicast_peer(mut self, peer: IpAddr) -> Self {
        self.config.unicast_peers.push(peer);
        self
    }

    /// Adds unicast peers, in order.
    pub fn unicast_peers(mut self, peers: impl IntoIterator<Item = IpAddr>) -> Self {
        self.config.unicast_peers.extend(peers);
        self
    }

    /// The start-up state (keepalived's `state`, default backup).
    pub fn initial_state(mut self, state: InitialState) -> Self {
        self.config.initial_state = state;
        self
    }

    /// Gratuitous ARP / NA timing (default keepalived's).
    pub fn garp(mut self, garp: GarpConfig) -> Self {
        self.config.garp = garp;
        self
    }

    /// The VRRPv3/IPv4 checksum variant (default RFC 5798's).
    pub fn checksum_mode(mut self, mode: ChecksumMode) -> Self {
        self.config.checksum_mode = mode;
        self
    }

    /// See [`InstanceConfig::check_ttl`] (default true).
    pub fn check_ttl(mut self, check: bool) -> Self {
        self.config.check_ttl = check;
        self
    }

    /// See [`InstanceConfig::lower_prio_no_advert`] (default false).
    pub fn lower_prio_no_advert(mut self, no_advert: bool) -> Self {
        self.config.lower_prio_no_advert = no_advert;
        self
    }

    /// See [`InstanceConfig::down_timer_adverts`] (default 3).
    pub fn down_timer_adverts(mut self, adverts: u8) -> Self {
        self.config.down_timer_adverts = adverts;
        self
    }

    /// See [`InstanceConfig::owner_ignore_adverts`] (default true).
    pub fn owner_ignore_adverts(mut self, ignore: bool) -> Self {
        self.config.owner_ignore_adverts = ignore;
        self
    }

    /// The configuration, or every rule it breaks
    /// ([`InstanceConfig::validate_all`]), each naming its field. The
    /// address family is that of the primary address when given, else of
    /// the first virtual address, else of the first unicast peer; with
    /// none of them it is unknown, and that is an error about
    /// [`Field::PrimaryAddress`].
    pub fn build(self) -> Result<InstanceConfig, InvalidConfig> {
        let mut config = self.config;
        let family_from = self
            .primary_address
            .or_else(|| config.virtual_addresses.first().map(|v| v.addr))
            .or_else(|| config.unicast_peers.first().copied());
        let Some(from) = family_from else {
            let mut errors = vec![FieldError {
                field: Field::PrimaryAddress,
                error: ConfigError::NoAddressFamily,
            }];
            // The rest can still be checked (as IPv4, which VRRPv2 needs).
            errors.extend(config.validate_all());
            return Err(InvalidConfig { errors });
        };
        config.primary_address = self.primary_address.unwrap_or(match from {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        let errors = config.validate_all();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(InvalidConfig { errors })
        }
    }
}

/// What [`InstanceConfigBuilder::build`] refused: every rule the
/// configuration breaks, in field order, each naming its field. Its
/// `Display` lists them as `field: problem`, separated by `; `.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub struct InvalidConfig {
    /// The problems, at least one.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.error)?;
        }
        Ok(())
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
    /// Neither a primary address nor a virtual address nor a unicast peer
    /// says which address family the instance is of.
    #[error("no primary address, virtual address or unicast peer to take the address family from")]
    NoAddressFamily,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vrid() -> Vrid {
        Vrid::new(51).expect("vrid")
    }

    fn vip(s: &str) -> VirtualAddress {
        s.parse().expect("virtual address")
    }

    #[test]
    fn the_family_comes_from_the_first_virtual_address() {
        let v4 = InstanceConfig::v3(vrid())
            .virtual_address(vip("192.0.2.100/24"))
            .build()
            .expect("valid");
        assert_eq!(v4.family(), Family::Ipv4);
        assert_eq!(v4.primary_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let v6 = InstanceConfig::v3(vrid())
            .virtual_address(vip("2001:db8::100/64"))
            .build()
            .expect("valid");
        assert_eq!(v6.family(), Family::Ipv6);
        assert_eq!(v6.primary_address, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        // Without virtual addresses, a unicast peer says it.
        let peer = InstanceConfig::v3(vrid())
            .unicast_peer("2001:db8::2".parse().expect("address"))
            .build()
            .expect("valid");
        assert_eq!(peer.family(), Family::Ipv6);
    }

    #[test]
    fn a_given_primary_address_decides_the_family() {
        let err = InstanceConfig::v3(vrid())
            .primary_address("192.0.2.1".parse().expect("address"))
            .virtual_address(vip("2001:db8::100"))
            .build()
            .expect_err("mixed families");
        assert_eq!(
            err.errors,
            [FieldError {
                field: Field::VirtualAddress(0),
                error: ConfigError::MixedFamily("2001:db8::100".parse().expect("address")),
            }]
        );
        assert_eq!(
            err.to_string(),
            "virtual_addresses[0]: address 2001:db8::100 is not of the instance's address family"
        );
        let ok = InstanceConfig::v3(vrid())
            .primary_address("fe80::1".parse().expect("address"))
            .virtual_address(vip("2001:db8::100"))
            .build()
            .expect("valid");
        assert_eq!(
            ok.primary_address,
            "fe80::1".parse::<IpAddr>().expect("address")
        );
    }

    #[test]
    fn nothing_to_take_the_family_from_is_an_error_about_the_primary_address() {
        let err = InstanceConfig::v3(vrid())
            .priority(Priority::STOP)
            .build()
            .expect_err("no family");
        let fields: Vec<Field> = err.errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, [Field::PrimaryAddress, Field::Priority]);
        assert_eq!(
            err.to_string(),
            "primary_address: no primary address, virtual address or unicast peer to take the \
             address family from; priority: priority 0 is reserved; use 1..=255"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let err = InstanceConfig::v2(vrid())
            .priority(Priority::STOP)
            .advert_interval(Centisecs::new(50))
            .virtual_address(vip("2001:db8::100"))
            .unicast_peer("192.0.2.2".parse().expect("address"))
            .build()
            .expect_err("invalid");
        let fields: Vec<String> = err.errors.iter().map(|e| e.field.to_string()).collect();
        assert_eq!(
            fields,
            ["priority", "version", "advert_interval", "unicast_peers[0]"]
        );
    }

    #[test]
    fn every_setter_reaches_its_field() {
        let garp = GarpConfig {
            master_repeat: 2,
            ..GarpConfig::default()
        };
        let auth = Auth::password(b"secret").expect("password");
        let built = InstanceConfig::v2(vrid())
            .priority(Priority::new(150))
            .advert_interval(Centisecs::new(200))
            .preempt(false)
            .preempt_delay(Duration::from_secs(5))
            .primary_address("192.0.2.1".parse().expect("address"))
            .virtual_addresses([vip("192.0.2.100/24"), vip("192.0.2.101")])
            .virtual_address(vip("192.0.2.102"))
            .auth(auth)
            .unicast_peers(["192.0.2.2".parse().expect("address")])
            .unicast_peer("192.0.2.3".parse().expect("address"))
            .initial_state(InitialState::Master)
            .garp(garp)
            .checksum_mode(ChecksumMode::Rfc)
            .check_ttl(false)
            .lower_prio_no_advert(true)
            .owner_ignore_adverts(false)
            .build()
            .expect("valid");
        let mut by_hand = InstanceConfig::new(vrid(), Version::V2, "192.0.2.1".parse().expect("a"))
            .with_priority(Priority::new(150))
            .with_interval(Centisecs::new(200))
            .with_address(vip("192.0.2.100/24"))
            .with_address(vip("192.0.2.101"))
            .with_address(vip("192.0.2.102"));
        by_hand.preempt = false;
        by_hand.preempt_delay = Duration::from_secs(5);
        by_hand.auth = auth;
        by_hand.unicast_peers = vec![
            "192.0.2.2".parse().expect("address"),
            "192.0.2.3".parse().expect("address"),
        ];
        by_hand.initial_state = InitialState::Master;
        by_hand.garp = garp;
        by_hand.check_ttl = false;
        by_hand.lower_prio_no_advert = true;
        by_hand.owner_ignore_adverts = false;
        assert_eq!(built, by_hand);
        // The defaults are those of `new`.
        let default = InstanceConfig::builder(vrid(), Version::V3)
            .virtual_address(vip("192.0.2.100"))
            .build()
            .expect("valid");
        assert_eq!(
            default,
            InstanceConfig::new(vrid(), Version::V3, "0.0.0.0".parse().expect("a"))
                .with_address(vip("192.0.2.100"))
        );
    }
}
