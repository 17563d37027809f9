//! One virtual router instance: the RFC 5798 state machine (section 6),
//! sans IO.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, InitialState, InstanceConfig, VirtualAddress};
use crate::receive;
use crate::stats::{DropReason, Statistics};
use crate::time::{Centisecs, Timestamp};
use crate::types::{Priority, Version, Vrid, address_greater};
use crate::wire::{self, AdvertRepr, EncodeError, IpPair};

/// The states of RFC 5798 6.4 plus keepalived's Fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Not running: before start-up or after shutdown (RFC 5798 6.4.1).
    Initialize,
    /// Watching the master (RFC 5798 6.4.2).
    Backup,
    /// Forwarding for the virtual addresses (RFC 5798 6.4.3).
    Master,
    /// A tracked object with weight 0 failed (or a sync-group member
    /// did): silent, holds no addresses, until it recovers.
    Fault,
}

impl State {
    /// Lower-case name, as keepalived's notify scripts get it (in upper
    /// case there).
    pub const fn name(self) -> &'static str {
        match self {
            State::Initialize => "init",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        }
    }
}

impl core::fmt::Display for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Identifies a tracked object (a script, an interface, a file, ...) to
/// the engine; the caller picks the numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u32);

/// How a tracked object moves the priority (keepalived's `weight`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrackConfig {
    /// 0: failure puts the instance in Fault. Negative: added while the
    /// object fails. Positive: added while it succeeds.
    pub weight: i32,
    /// keepalived's `reverse`: the object counts as failing while up.
    pub reverse: bool,
}

impl TrackConfig {
    /// A plain weight.
    pub const fn weight(weight: i32) -> Self {
        TrackConfig {
            weight,
            reverse: false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Tracked {
    id: TrackId,
    config: TrackConfig,
    up: bool,
}

impl Tracked {
    fn failing(&self) -> bool {
        self.up == self.config.reverse
    }
}

/// Why a state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Start-up into Backup (RFC 5798 6.4.1).
    Startup,
    /// Start-up into Master as the address owner (priority 255).
    AddressOwner,
    /// Start-up into Master because the configuration says so.
    ConfiguredMaster,
    /// Master_Down_Timer fired: no advertisement from a master in time
    /// (MIB `masterNoResponse`).
    MasterDown,
    /// A master received an advertisement that wins over it (higher
    /// priority, or equal priority from a higher address).
    Preempted {
        /// The winner's address.
        by: IpAddr,
        /// The winner's priority.
        priority: Priority,
    },
    /// A tracked object with weight 0 failed.
    TrackFailed(TrackId),
    /// Every fault cleared.
    FaultCleared,
    /// The sync group moved this member with another.
    SyncGroup,
    /// The caller shut the instance down.
    Shutdown,
    /// An operator put the instance in maintenance: a master leaves with a
    /// priority-0 advertisement and the instance stays Backup until the
    /// maintenance is cleared ([`Instance::set_maintenance`]).
    Maintenance,
}

/// An advertisement to send: encode it with [`Instance::encode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to: the multicast group, or one unicast peer.
    pub destination: IpAddr,
    /// The priority to advertise (0 when stopping).
    pub priority: Priority,
}

/// What the caller must carry out or may want to know, in the order it is
/// to be carried out. Each output carries what carrying it out needs (the
/// addresses, the VRID), so a driver needs no lookup, also for an instance
/// that was removed and is saying its last words.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send an advertisement.
    Transmit(Transmit),
    /// Add these virtual addresses to the interface.
    AddAddresses {
        /// The virtual router.
        vrid: Vrid,
        /// The addresses.
        addresses: Arc<[VirtualAddress]>,
    },
    /// Remove these virtual addresses (idempotent: also sent at start-up
    /// into Backup or Fault to clean up after a crashed run; a driver that
    /// records what it added removes only those).
    RemoveAddresses {
        /// The virtual router.
        vrid: Vrid,
        /// The addresses.
        addresses: Arc<[VirtualAddress]>,
    },
    /// Send `count` gratuitous ARPs (IPv4) or unsolicited neighbour
    /// advertisements (IPv6) for each of these addresses, `interval`
    /// apart.
    Announce {
        /// The virtual router.
        vrid: Vrid,
        /// The addresses to announce.
        addresses: Arc<[VirtualAddress]>,
        /// Packets per address.
        count: u32,
        /// Spacing between them.
        interval: Duration,
    },
    /// The state changed.
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// The effective priority changed.
    PriorityChanged {
        /// Old priority.
        from: Priority,
        /// New priority.
        to: Priority,
    },
}

/// What a received packet travelled with, as the driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxMeta {
    /// IP source address.
    pub src: IpAddr,
    /// IP destination address.
    pub dst: IpAddr,
    /// TTL / hop limit, when the driver could read it.
    pub ttl: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// Master: next advertisement (RFC 5798 Adver_Timer).
    Advert = 0,
    /// Backup: Master_Down_Timer.
    MasterDown = 1,
    /// Master: the delayed gratuitous ARP burst.
    Garp = 2,
    /// Master: periodic gratuitous ARP refresh.
    GarpRefresh = 3,
    /// Master: the delayed burst after a lower-priority advertisement.
    LowerPrioGarp = 4,
}

const TIMERS: [Timer; 5] = [
    Timer::Advert,
    Timer::MasterDown,
    Timer::Garp,
    Timer::GarpRefresh,
    Timer::LowerPrioGarp,
];

/// The least time between two immediate announcement bursts answering
/// lower-priority advertisements: a lower-priority router that keeps
/// advertising (it does not hear us) gets one burst a second, not one per
/// advertisement.
const LOWER_PRIO_BURST_SPACING: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, Default)]
struct TimerTable([Option<Timestamp>; 5]);

impl TimerTable {
    fn set(&mut self, t: Timer, at: Timestamp) {
        self.0[t as usize] = Some(at);
    }
    fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    fn get(&self, t: Timer) -> Option<Timestamp> {
        self.0[t as usize]
    }
    fn next(&self) -> Option<Timestamp> {
        self.0.iter().flatten().min().copied()
    }
    fn expired(&mut self, t: Timer, now: Timestamp) -> bool {
        match self.0[t as usize] {
            Some(at) if at <= now => {
                self.0[t as usize] = None;
                true
            }
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct SyncFlags {
    /// Member of a sync group: the group decides when to become master.
    member: bool,
    /// Master_Down_Timer fired while the group held us back.
    wants_master: bool,
    /// Another member is in Fault.
    group_fault: bool,
}

/// One VRRP virtual router on one interface and address family.
///
/// # Driving it
/// The methods come in four classes (as quinn-proto's `Connection`):
/// - getters (`state`, `config`, `statistics`, ...) change nothing;
/// - inputs are the `handle_*` methods; each takes `now`;
/// - mutators ([`Instance::set_base_priority`], [`Instance::track`],
///   [`Instance::untrack`], [`Instance::set_track_state`],
///   [`Instance::reconfigure`]) also take `now` and may queue outputs and
///   move timers exactly like an input;
/// - `poll_*` methods return what to do.
///
/// After any input or mutator, drain [`Instance::poll_output`] until it
/// returns `None` and carry out each [`Output`] in order (encode a
/// [`Transmit`] with [`Instance::encode`]); then ask
/// [`Instance::poll_timeout`] for the next deadline and call
/// [`Instance::handle_timeout`] when it is reached. Calling
/// `handle_timeout` early or twice does nothing.
///
/// # Example
/// ```
/// use vrrp_core::{Instance, InstanceConfig, Output, State, Timestamp, Version, VirtualAddress, Vrid};
/// let vrid = Vrid::new(42).unwrap();
/// let config = InstanceConfig::new(vrid, Version::V3, "192.0.2.1".parse().unwrap())
///     .with_address(VirtualAddress::host("192.0.2.100".parse().unwrap()));
/// let mut vr = Instance::new(config).unwrap();
/// vr.handle_startup(Timestamp::ZERO);
/// while let Some(_) = vr.poll_output() {}
/// // Nobody else advertises: after Master_Down_Interval we are master.
/// let deadline = vr.poll_timeout().unwrap();
/// vr.handle_timeout(deadline);
/// assert_eq!(vr.state(), State::Master);
/// assert!(matches!(vr.poll_output(), Some(Output::StateChanged { .. })));
/// ```
#[derive(Debug, Clone)]
pub struct Instance {
    config: InstanceConfig,
    state: State,
    effective_priority: Priority,
    tracks: Vec<Tracked>,
    /// The interval the master advertises (RFC 5798 Master_Adver_Interval).
    master_adver_interval: Centisecs,
    timers: TimerTable,
    outputs: VecDeque<Output>,
    stats: Statistics,
    /// When a lower-priority master may be preempted (keepalived's
    /// preempt_time): set at the first such advertisement.
    preempt_deadline: Option<Timestamp>,
    sync: SyncFlags,
    /// The sender of the last accepted advertisement.
    master_address: Option<IpAddr>,
    last_transition: Option<Timestamp>,
    /// The virtual addresses, shared with the outputs that carry them.
    vips: Arc<[VirtualAddress]>,
    /// When the last immediate burst answering a lower-priority
    /// advertisement went out.
    last_lower_prio_burst: Option<Timestamp>,
    /// In maintenance: never master (see [`Instance::set_maintenance`]).
    maintenance: bool,
}

impl Instance {
    /// A new instance in Initialize; call [`Instance::handle_startup`].
    pub fn new(config: InstanceConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Instance {
            state: State::Initialize,
            effective_priority: config.priority,
            tracks: Vec::new(),
            master_adver_interval: config.advert_interval,
            timers: TimerTable::default(),
            outputs: VecDeque::new(),
            stats: Statistics::default(),
            preempt_deadline: None,
            sync: SyncFlags::default(),
            master_address: None,
            last_transition: None,
            vips: Arc::from(config.virtual_addresses.as_slice()),
            last_lower_prio_burst: None,
            maintenance: false,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Base priority adjusted by the tracked objects' weights.
    pub fn effective_priority(&self) -> Priority {
        self.effective_priority
    }

    /// The counters.
    pub fn statistics(&self) -> &Statistics {
        &self.stats
    }

    /// When the state last changed.
    pub fn last_transition(&self) -> Option<Timestamp> {
        self.last_transition
    }

    /// The current master's address: ours when master, the sender of the
    /// last accepted advertisement when backup.
    pub fn master_address(&self) -> Option<IpAddr> {
        match self.state {
            State::Master => Some(self.config.primary_address),
            State::Backup => self.master_address,
            _ => None,
        }
    }

    /// The interval in force: ours as master, the master's (VRRPv3) as
    /// backup.
    pub fn master_adver_interval(&self) -> Centisecs {
        self.master_adver_interval
    }

    /// Skew_Time at the current effective priority and interval (RFC 3768
    /// 6.1: (256 - Priority) / 256 s; RFC 5798 6.1: ((256 - Priority) *
    /// Master_Adver_Interval) / 256), in nanoseconds, not rounded to
    /// centiseconds or milliseconds.
    pub fn skew_time(&self) -> Duration {
        let weight = 256 - u64::from(self.effective_priority.get());
        let unit = match self.config.version {
            Version::V2 => 1_000_000_000,
            _ => self.master_adver_interval.as_nanos(),
        };
        Duration::from_nanos(weight * unit / 256)
    }

    /// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time (RFC
    /// 5798 6.1), the 3 being keepalived's `down_timer_adverts`
    /// ([`InstanceConfig::down_timer_adverts`]).
    pub fn master_down_interval(&self) -> Duration {
        let interval = match self.config.version {
            Version::V2 => self.config.advert_interval,
            _ => self.master_adver_interval,
        };
        let adverts = u64::from(self.config.down_timer_adverts.max(1));
        Duration::from_nanos(adverts * interval.as_nanos()) + self.skew_time()
    }

    /// The next output to carry out, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next deadline at which [`Instance::handle_timeout`] must be
    /// called, if any timer runs.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    /// Writes the advertisement `t` asks for into `buf`; returns its length.
    pub fn encode(&self, t: &Transmit, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let repr = AdvertRepr {
            version: self.config.version,
            vrid: self.config.vrid,
            priority: t.priority,
            interval: self.config.advert_interval,
            auth: self.config.auth,
            addresses: self.config.virtual_addresses.iter().map(|v| v.addr),
        };
        let ip = IpPair {
            src: self.config.primary_address,
            dst: t.destination,
        };
        repr.emit(buf, &ip, self.config.checksum_mode)
    }

    /// Starts the instance (RFC 5798 6.4.1). Does nothing unless in
    /// Initialize.
    pub fn handle_startup(&mut self, now: Timestamp) {
        if self.state != State::Initialize {
            return;
        }
        if self.in_fault() {
            let reason = self.fault_reason();
            self.transition(now, State::Fault, reason);
        } else {
            self.enter_running(now, true);
        }
    }

    /// Stops the instance: a master sends a priority-0 advertisement and
    /// gives up its addresses (RFC 5798 6.4.3 Shutdown). Does nothing in
    /// Initialize.
    pub fn handle_shutdown(&mut self, now: Timestamp) {
        if self.state != State::Initialize {
            self.transition(now, State::Initialize, Reason::Shutdown);
        }
    }

    /// Fires every timer whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        for timer in TIMERS {
            let scheduled = self.timers.get(timer);
            if !self.timers.expired(timer, now) {
                continue;
            }
            match (timer, self.state) {
                (Timer::Advert, State::Master) => {
                    self.send_advert(self.effective_priority);
                    // Keep the cadence of the schedule, not of our wake-ups,
                    // unless we are so late that it would burst.
                    let interval = self.config.advert_interval.as_duration();
                    let next = scheduled.map_or(now + interval, |s| s + interval);
                    self.timers.set(
                        Timer::Advert,
                        if next > now { next } else { now + interval },
                    );
                }
                (Timer::MasterDown, State::Backup) => {
                    if self.maintenance {
                        // Stays Backup; the timer is armed again when the
                        // maintenance is cleared.
                    } else if self.sync.member {
                        // The sync group decides (see Router).
                        self.sync.wants_master = true;
                    } else {
                        self.transition(now, State::Master, Reason::MasterDown);
                    }
                }
                (Timer::Garp, State::Master) => {
                    self.announce(self.config.garp.master_repeat);
                }
                (Timer::GarpRefresh, State::Master) => {
                    self.announce(self.config.garp.refresh_repeat);
                    if let Some(period) = self.config.garp.master_refresh {
                        self.timers.set(Timer::GarpRefresh, now + period);
                    }
                }
                (Timer::LowerPrioGarp, State::Master) => {
                    self.announce(self.config.garp.lower_prio_repeat);
                }
                _ => {}
            }
        }
    }

    /// Processes a received VRRP packet (the IP payload). Returns why it
    /// was dropped, if it was; drops are also counted in
    /// [`Instance::statistics`].
    pub fn handle_advert(
        &mut self,
        now: Timestamp,
        rx: &RxMeta,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        let result = self.process_advert(now, rx, bytes);
        if let Err(reason) = result {
            self.stats.count_drop(reason);
        }
        result
    }

    fn process_advert(
        &mut self,
        now: Timestamp,
        rx: &RxMeta,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        let advert = receive::check(&self.config, rx, bytes)?;
        match self.state {
            State::Initialize | State::Fault => return Err(DropReason::NotRunning),
            _ => {}
        }
        // RFC 5798 6.4.2 lets any priority-0 advertisement cut the wait
        // to Skew_Time; only the master we follow may: from anyone else it
        // is a stray or a spoof, and honouring it would hand the virtual
        // router to the best backup for nothing.
        if advert.priority == Priority::STOP
            && self.state == State::Backup
            && self.master_address != Some(advert.src)
        {
            return Err(DropReason::PriorityZeroNotFromMaster);
        }
        self.stats.rcvd_advertisements += 1;
        if advert.priority == Priority::STOP {
            self.stats.rcvd_pri_zero_packets += 1;
        }
        let (priority, interval, src) = (advert.priority, advert.interval, advert.src);
        match self.state {
            State::Backup => self.backup_receives(now, src, priority, interval),
            State::Master => self.master_receives(now, src, priority, interval),
            _ => {}
        }
        Ok(())
    }

    /// RFC 5798 6.4.2, with keepalived's preempt_delay.
    fn backup_receives(
        &mut self,
        now: Timestamp,
        src: IpAddr,
        priority: Priority,
        interval: Centisecs,
    ) {
        if priority == Priority::STOP {
            // RFC 5798 6.4.2: "If the Priority in the ADVERTISEMENT is
            // zero, then: Set the Master_Down_Timer to Skew_Time" (the
            // sender is our master, see `process_advert`).
            self.timers.set(Timer::MasterDown, now + self.skew_time());
            return;
        }
        let lower = priority < self.effective_priority;
        let accept = if !self.config.preempt || !lower {
            true
        } else if self.config.preempt_delay.is_zero() {
            false
        } else {
            let deadline = *self
                .preempt_deadline
                .get_or_insert(now + self.config.preempt_delay);
            now < deadline
        };
        if !lower {
            self.preempt_deadline = None;
        }
        if accept {
            if self.config.version == Version::V3 {
                self.master_adver_interval = interval;
            }
            self.master_address = Some(src);
            self.sync.wants_master = false;
            self.timers
                .set(Timer::MasterDown, now + self.master_down_interval());
        }
    }

    /// RFC 5798 6.4.3.
    fn master_receives(
        &mut self,
        now: Timestamp,
        src: IpAddr,
        priority: Priority,
        interval: Centisecs,
    ) {
        let ours = self.effective_priority;
        if priority == Priority::STOP {
            // RFC 5798 6.4.3: "If the Priority in the ADVERTISEMENT is zero,
            // then: Send an ADVERTISEMENT; Reset the Adver_Timer".
            self.send_advert(ours);
            self.timers.set(
                Timer::Advert,
                now + self.config.advert_interval.as_duration(),
            );
        } else if priority > ours
            || (priority == ours && address_greater(&src, &self.config.primary_address))
        {
            // RFC 5798 6.4.3: "If the Priority in the ADVERTISEMENT is
            // greater than the local Priority or the Priority in the
            // ADVERTISEMENT is equal to the local Priority and the primary
            // IPvX Address of the sender is greater than the local primary
            // IPvX Address, then: ... Transition to the Backup state".
            if self.config.version == Version::V3 {
                self.master_adver_interval = interval;
            }
            // Not in the RFCs: one last advertisement of ours before
            // stepping down. After a partition heals, the winner may never
            // hear us otherwise (its advertisement reached us first, and a
            // backup is silent); hearing this lower priority, it announces
            // the addresses again (garp_lower_prio_repeat), so that the
            // neighbours that followed us during the partition follow it.
            self.send_advert(ours);
            self.master_address = Some(src);
            self.transition(now, State::Backup, Reason::Preempted { by: src, priority });
        } else {
            // RFC 5798 6.4.3: "Otherwise (the Priority is less ...),
            // discard the ADVERTISEMENT". keepalived goes further: it
            // asserts mastership at once so the other side steps down now
            // rather than at our next advertisement, and announces the
            // addresses again: a lower-priority master means a partition
            // has just healed (or a priority 0 was spoofed), and the
            // neighbours' caches point at the other side.
            if !self.config.lower_prio_no_advert {
                self.send_advert(ours);
            }
            self.answer_lower_priority(now);
        }
    }

    /// keepalived's `garp_lower_prio_repeat` and `garp_lower_prio_delay`:
    /// a burst now (at most one per [`LOWER_PRIO_BURST_SPACING`]) and
    /// another one after the delay.
    fn answer_lower_priority(&mut self, now: Timestamp) {
        let garp = self.config.garp;
        if garp.lower_prio_repeat == 0 {
            return;
        }
        let due = self
            .last_lower_prio_burst
            .is_none_or(|last| now >= last + LOWER_PRIO_BURST_SPACING);
        if due {
            self.announce(garp.lower_prio_repeat);
            self.last_lower_prio_burst = Some(now);
        }
        if !garp.lower_prio_delay.is_zero() && self.timers.get(Timer::LowerPrioGarp).is_none() {
            self.timers
                .set(Timer::LowerPrioGarp, now + garp.lower_prio_delay);
        }
    }

    /// Applies a new configuration of the same virtual router (same VRID,
    /// version and family, see [`InstanceConfig::same_identity`]) without
    /// leaving the current state: no priority-0 advertisement, no
    /// transition. A master adds and announces new virtual addresses and
    /// removes dropped ones; a changed priority takes effect at once (a
    /// master now below a backup is preempted by it at its next
    /// advertisement, as RFC 5798 6.4.2 has it); a changed interval is
    /// used from the next advertisement on.
    pub fn reconfigure(
        &mut self,
        now: Timestamp,
        config: InstanceConfig,
    ) -> Result<(), ConfigError> {
        config.validate()?;
        if !self.config.same_identity(&config) {
            return Err(ConfigError::IdentityChanged);
        }
        let old = core::mem::replace(&mut self.config, config);
        let old_vips = core::mem::replace(
            &mut self.vips,
            Arc::from(self.config.virtual_addresses.as_slice()),
        );
        if self.state == State::Master {
            let removed: Vec<VirtualAddress> = old_vips
                .iter()
                .filter(|v| !self.vips.contains(v))
                .copied()
                .collect();
            let added: Vec<VirtualAddress> = self
                .vips
                .iter()
                .filter(|v| !old_vips.contains(v))
                .copied()
                .collect();
            let vrid = self.config.vrid;
            if !removed.is_empty() {
                self.outputs.push_back(Output::RemoveAddresses {
                    vrid,
                    addresses: Arc::from(removed),
                });
            }
            if !added.is_empty() {
                let added: Arc<[VirtualAddress]> = Arc::from(added);
                self.outputs.push_back(Output::AddAddresses {
                    vrid,
                    addresses: added.clone(),
                });
                if self.config.garp.master_repeat > 0 {
                    self.outputs.push_back(Output::Announce {
                        vrid,
                        addresses: added,
                        count: self.config.garp.master_repeat,
                        interval: self.config.garp.interval,
                    });
                }
            }
            self.master_adver_interval = self.config.advert_interval;
            if old.garp.master_refresh != self.config.garp.master_refresh {
                match self.config.garp.master_refresh.filter(|p| !p.is_zero()) {
                    Some(period) => self.timers.set(Timer::GarpRefresh, now + period),
                    None => self.timers.stop(Timer::GarpRefresh),
                }
            }
        }
        self.recompute(now);
        // An instance that became the address owner takes over at once
        // (RFC 5798 6.4.2: an owner is always master).
        if self.config.priority.is_owner() && self.state == State::Backup && !self.maintenance {
            self.transition(now, State::Master, Reason::AddressOwner);
        }
        Ok(())
    }

    /// Sets the base priority (1..=255) at run time.
    pub fn set_base_priority(&mut self, now: Timestamp, priority: Priority) {
        if priority == Priority::STOP {
            return;
        }
        self.config.priority = priority;
        self.recompute(now);
    }

    /// Puts the instance in maintenance or takes it out. In maintenance a
    /// master leaves at once, gracefully: a priority-0 advertisement so the
    /// best backup takes over after Skew_Time (as at shutdown, RFC 5798
    /// 6.4.3), then its addresses are removed; it then stays Backup, never
    /// taking over (not at Master_Down_Timer, not as the address owner,
    /// not for its sync group), until the maintenance is cleared. Cleared,
    /// a backup waits Master_Down_Interval for a master, as at start-up.
    pub fn set_maintenance(&mut self, now: Timestamp, on: bool) {
        if self.maintenance == on {
            return;
        }
        self.maintenance = on;
        match (on, self.state) {
            (true, State::Master) => self.transition(now, State::Backup, Reason::Maintenance),
            (true, State::Backup) => {
                self.sync.wants_master = false;
                self.timers.stop(Timer::MasterDown);
            }
            (false, State::Backup) => {
                if self.config.priority.is_owner() {
                    self.transition(now, State::Master, Reason::AddressOwner);
                } else {
                    self.timers
                        .set(Timer::MasterDown, now + self.master_down_interval());
                }
            }
            _ => {}
        }
    }

    /// Whether the instance is in maintenance ([`Instance::set_maintenance`]).
    pub fn in_maintenance(&self) -> bool {
        self.maintenance
    }

    /// Starts tracking an object whose current state is `up`.
    pub fn track(&mut self, now: Timestamp, id: TrackId, config: TrackConfig, up: bool) {
        match self.tracks.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                t.config = config;
                t.up = up;
            }
            None => self.tracks.push(Tracked { id, config, up }),
        }
        self.recompute(now);
    }

    /// Stops tracking an object.
    pub fn untrack(&mut self, now: Timestamp, id: TrackId) {
        self.tracks.retain(|t| t.id != id);
        self.recompute(now);
    }

    /// Reports a tracked object's new state; unknown ids are ignored.
    pub fn set_track_state(&mut self, now: Timestamp, id: TrackId, up: bool) {
        let mut changed = false;
        for t in self.tracks.iter_mut().filter(|t| t.id == id) {
            changed |= t.up != up;
            t.up = up;
        }
        if changed {
            self.recompute(now);
        }
    }

    /// Whether a tracked object with weight 0 fails, or the sync group is
    /// in fault.
    pub fn in_fault(&self) -> bool {
        self.sync.group_fault || self.own_fault()
    }

    pub(crate) fn own_fault(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| t.config.weight == 0 && t.failing())
    }

    fn fault_reason(&self) -> Reason {
        self.tracks
            .iter()
            .find(|t| t.config.weight == 0 && t.failing())
            .map_or(Reason::SyncGroup, |t| Reason::TrackFailed(t.id))
    }

    fn recompute(&mut self, now: Timestamp) {
        let delta: i32 = self
            .tracks
            .iter()
            .map(|t| match (t.failing(), t.config.weight) {
                (true, w) if w < 0 => w,
                (false, w) if w > 0 => w,
                _ => 0,
            })
            .fold(0i32, |a, w| a.saturating_add(w));
        let new = Priority::with_weight(self.config.priority, delta);
        if new != self.effective_priority {
            let from = self.effective_priority;
            self.effective_priority = new;
            self.outputs
                .push_back(Output::PriorityChanged { from, to: new });
        }
        match (self.in_fault(), self.state) {
            (true, State::Backup | State::Master) => {
                let reason = self.fault_reason();
                self.transition(now, State::Fault, reason);
            }
            (false, State::Fault) => self.enter_running(now, false),
            _ => {}
        }
    }

    /// Init or Fault into Backup, or into Master for an owner.
    fn enter_running(&mut self, now: Timestamp, startup: bool) {
        if self.maintenance {
            let reason = if startup {
                Reason::Startup
            } else {
                Reason::FaultCleared
            };
            self.transition(now, State::Backup, reason);
        } else if self.config.priority.is_owner() {
            self.transition(now, State::Master, Reason::AddressOwner);
        } else if startup && self.config.initial_state == InitialState::Master {
            self.transition(now, State::Master, Reason::ConfiguredMaster);
        } else {
            let reason = if startup {
                Reason::Startup
            } else {
                Reason::FaultCleared
            };
            self.transition(now, State::Backup, reason);
        }
    }

    fn send_advert(&mut self, priority: Priority) {
        if self.config.unicast_peers.is_empty() {
            let destination = wire::multicast_group(self.config.family());
            self.outputs.push_back(Output::Transmit(Transmit {
                destination,
                priority,
            }));
        } else {
            for &destination in &self.config.unicast_peers {
                self.outputs.push_back(Output::Transmit(Transmit {
                    destination,
                    priority,
                }));
            }
        }
        let n = self.config.unicast_peers.len().max(1) as u64;
        self.stats.sent_advertisements += n;
        if priority == Priority::STOP {
            self.stats.sent_pri_zero_packets += n;
        }
    }

    fn announce(&mut self, count: u32) {
        if count > 0 && !self.vips.is_empty() {
            self.outputs.push_back(Output::Announce {
                vrid: self.config.vrid,
                addresses: self.vips.clone(),
                count,
                interval: self.config.garp.interval,
            });
        }
    }

    fn addresses_output(&self, add: bool) -> Output {
        let (vrid, addresses) = (self.config.vrid, self.vips.clone());
        if add {
            Output::AddAddresses { vrid, addresses }
        } else {
            Output::RemoveAddresses { vrid, addresses }
        }
    }

    fn transition(&mut self, now: Timestamp, to: State, reason: Reason) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.stats.transitions += 1;
        self.last_transition = Some(now);
        self.outputs
            .push_back(Output::StateChanged { from, to, reason });
        // Leaving.
        if from == State::Master {
            self.timers.stop(Timer::Advert);
            self.timers.stop(Timer::Garp);
            self.timers.stop(Timer::GarpRefresh);
            self.timers.stop(Timer::LowerPrioGarp);
            self.last_lower_prio_burst = None;
            if matches!(to, State::Initialize | State::Fault) || reason == Reason::Maintenance {
                // RFC 5798 6.4.3: tell the backups so they take over after
                // Skew_Time instead of Master_Down_Interval.
                self.send_advert(Priority::STOP);
            }
            self.outputs.push_back(self.addresses_output(false));
        } else if from == State::Initialize && matches!(to, State::Backup | State::Fault) {
            // A crashed earlier run may have left the addresses behind.
            self.outputs.push_back(self.addresses_output(false));
        }
        self.timers.stop(Timer::MasterDown);
        self.preempt_deadline = None;
        self.sync.wants_master = false;
        // Entering.
        match to {
            State::Master => {
                self.stats.master_transitions += 1;
                self.master_adver_interval = self.config.advert_interval;
                // RFC 5798 6.4.1/6.4.2: advertise, then announce. The
                // advertisement goes before the addresses: adding them
                // takes a netlink round trip, and every backup should hear
                // of the new master as early as possible.
                self.send_advert(self.effective_priority);
                self.outputs.push_back(self.addresses_output(true));
                self.announce(self.config.garp.master_repeat);
                // Instances that take over together (a host's VRIDs at
                // start-up, a sync group) keep one shared cadence, so a
                // driver wakes once per interval for all of them and can
                // send them in one batch.
                self.timers.set(
                    Timer::Advert,
                    now + self.config.advert_interval.as_duration(),
                );
                let garp = self.config.garp;
                if !garp.master_delay.is_zero() && garp.master_repeat > 0 {
                    self.timers.set(Timer::Garp, now + garp.master_delay);
                }
                if let Some(period) = garp.master_refresh.filter(|p| !p.is_zero()) {
                    self.timers.set(Timer::GarpRefresh, now + period);
                }
            }
            State::Backup => {
                if from != State::Master {
                    self.master_adver_interval = self.config.advert_interval;
                    self.master_address = None;
                }
                if !self.maintenance {
                    self.timers
                        .set(Timer::MasterDown, now + self.master_down_interval());
                }
            }
            State::Initialize | State::Fault => {
                self.master_address = None;
            }
        }
    }

    // --- sync group hooks, driven by the Router ---

    pub(crate) fn set_sync_member(&mut self, member: bool) {
        self.sync.member = member;
    }

    pub(crate) fn wants_master(&self) -> bool {
        self.state == State::Backup && self.sync.wants_master
    }

    pub(crate) fn sync_force(&mut self, now: Timestamp, to: State) {
        if to == State::Master && self.maintenance {
            return;
        }
        if self.state != to && matches!(self.state, State::Backup | State::Master) {
            self.transition(now, to, Reason::SyncGroup);
        }
    }

    pub(crate) fn set_group_fault(&mut self, now: Timestamp, fault: bool) {
        if self.sync.group_fault != fault {
            self.sync.group_fault = fault;
            self.recompute(now);
        }
    }
}

impl Instance {
    pub(crate) fn has_output(&self) -> bool {
        !self.outputs.is_empty()
    }
}
