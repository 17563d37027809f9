//! The flight recorder: every input the driver core gives its
//! [`vrrp_core::Router`] (received advertisements with their arrival
//! time, timer firings, tracked objects and links going up and down,
//! operators' commands, configuration) and every transition it got back,
//! kept in memory, bounded. [`replay`] feeds the inputs to a new `Router`
//! in simulated time and gives the transitions it produces: the same ones,
//! since the engine is deterministic, so an incident recorded in
//! production becomes a regression test.
//!
//! What shapes the router (instances, sync groups, tracked objects,
//! reconfigurations, start and stop) is kept apart from the busy inputs
//! (packets, timers, tracked states, transitions), so a full ring never
//! loses the instances' configuration; when the ring is full its oldest
//! busy records go, and [`FlightRecord::dropped`] says how many (a replay
//! of a cut recording starts from a state the recording no longer holds,
//! and may then differ).

use std::collections::VecDeque;

use vrrp_core::{
    InstanceConfig, InstanceId, Priority, Reason, Router, RxMeta, State, Timestamp, TrackConfig,
    TrackId,
};

/// Busy records kept (advertisements, timer firings, tracked states,
/// transitions): at 1 s advertisements, hours of a few instances.
pub const RING_CAPACITY: usize = 65_536;
/// Records that shape the router kept (configuration, start, stop).
pub const SETUP_CAPACITY: usize = 16_384;

/// One input to the router, or one transition it made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// [`Router::add_instance`]; `id` is what the router returned.
    AddInstance {
        /// The id the router gave it.
        id: InstanceId,
        /// The interface index.
        interface: u32,
        /// The instance's name (for reading, not replayed).
        name: String,
        /// Its engine configuration.
        config: Box<InstanceConfig>,
    },
    /// [`Router::add_sync_group`].
    AddSyncGroup {
        /// Its members.
        members: Vec<InstanceId>,
    },
    /// [`Router::handle_startup`].
    Startup,
    /// [`Router::start`].
    Start {
        /// The instance.
        id: InstanceId,
    },
    /// [`Router::handle_shutdown`].
    Shutdown,
    /// [`Router::remove_instance`].
    Remove {
        /// The instance.
        id: InstanceId,
    },
    /// [`Router::reconfigure`].
    Reconfigure {
        /// The instance.
        id: InstanceId,
        /// Its new configuration.
        config: Box<InstanceConfig>,
    },
    /// [`Router::track`].
    Track {
        /// The instance.
        id: InstanceId,
        /// The object.
        track: TrackId,
        /// Weight and reverse.
        config: TrackConfig,
        /// Its state then.
        up: bool,
    },
    /// [`Router::untrack`].
    Untrack {
        /// The instance.
        id: InstanceId,
        /// The object.
        track: TrackId,
    },
    /// [`Router::set_base_priority`].
    BasePriority {
        /// The instance.
        id: InstanceId,
        /// The priority.
        priority: Priority,
    },
    /// [`Router::set_maintenance`].
    Maintenance {
        /// The instances.
        ids: Vec<InstanceId>,
        /// On or off.
        on: bool,
    },
    /// [`Router::handle_packet`] (the record's time is the arrival time
    /// given to the router).
    Packet {
        /// The interface index.
        interface: u32,
        /// Source, destination, TTL.
        meta: RxMeta,
        /// The VRRP packet.
        bytes: Vec<u8>,
    },
    /// [`Router::handle_timeout`], when a deadline was due.
    Timeout {
        /// The deadline that was due ([`Router::poll_timeout`]): a replay
        /// checks that its router has the same one, so a recording whose
        /// inputs do not explain its timers shows.
        due: Timestamp,
    },
    /// [`Router::set_track_state`] (a script, a file, a link).
    TrackState {
        /// The object.
        track: TrackId,
        /// Its state.
        up: bool,
    },
    /// An output: the instance changed state.
    Transition {
        /// The instance.
        id: InstanceId,
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
}

impl Input {
    /// Whether it shapes the router (kept apart from the busy ring).
    fn is_setup(&self) -> bool {
        !matches!(
            self,
            Input::Packet { .. }
                | Input::Timeout { .. }
                | Input::TrackState { .. }
                | Input::Transition { .. }
        )
    }
}

/// One record: when (the driver's clock) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Order among all records.
    pub seq: u64,
    /// The `now` (for a packet: the arrival time) given to the router.
    pub at: Timestamp,
    /// What.
    pub input: Input,
}

/// The recorder: two bounded queues.
#[derive(Debug, Clone)]
pub struct Recorder {
    setup: VecDeque<Record>,
    ring: VecDeque<Record>,
    ring_capacity: usize,
    setup_capacity: usize,
    next: u64,
    dropped: u64,
    last_input: Timestamp,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::with_capacity(RING_CAPACITY, SETUP_CAPACITY)
    }
}

/// A copy of the recorder's contents, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlightRecord {
    /// The records, by `seq`.
    pub records: Vec<Record>,
    /// Records lost to the bounds (oldest first).
    pub dropped: u64,
}

impl Recorder {
    /// A recorder keeping `ring` busy records and `setup` shaping ones.
    pub fn with_capacity(ring: usize, setup: usize) -> Self {
        Recorder {
            setup: VecDeque::new(),
            ring: VecDeque::new(),
            ring_capacity: ring.max(1),
            setup_capacity: setup.max(1),
            next: 0,
            dropped: 0,
            last_input: Timestamp::ZERO,
        }
    }

    /// Records `input` at `at`. A transition is recorded at the time of
    /// the input that caused it (a packet's arrival time, not when it was
    /// read), which is the time a replay gives it.
    pub fn record(&mut self, at: Timestamp, input: Input) {
        let at = match input {
            Input::Transition { .. } => self.last_input,
            Input::AddSyncGroup { .. } => at,
            _ => {
                self.last_input = at;
                at
            }
        };
        let (queue, cap) = if input.is_setup() {
            (&mut self.setup, self.setup_capacity)
        } else {
            (&mut self.ring, self.ring_capacity)
        };
        if queue.len() >= cap {
            queue.pop_front();
            self.dropped += 1;
        }
        queue.push_back(Record {
            seq: self.next,
            at,
            input,
        });
        self.next += 1;
    }

    /// Everything kept, in order.
    pub fn dump(&self) -> FlightRecord {
        let mut records: Vec<Record> = self.setup.iter().chain(&self.ring).cloned().collect();
        records.sort_by_key(|r| r.seq);
        FlightRecord {
            records,
            dropped: self.dropped,
        }
    }
}

/// A transition with when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// When.
    pub at: Timestamp,
    /// The instance.
    pub id: InstanceId,
    /// Old state.
    pub from: State,
    /// New state.
    pub to: State,
    /// Why.
    pub reason: Reason,
}

/// What a replay gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// The transitions the recording holds.
    pub recorded: Vec<Transition>,
    /// The transitions the new router made from the recorded inputs.
    pub replayed: Vec<Transition>,
    /// Inputs the new router refused (an instance id it does not know,
    /// after a cut recording): their sequence numbers.
    pub refused: Vec<u64>,
    /// Timer firings whose deadline the new router did not have (the
    /// inputs before them do not explain them): their sequence numbers.
    pub timer_mismatches: Vec<u64>,
}

impl Replay {
    /// Whether the replay made exactly the recorded transitions, with
    /// the recorded timers.
    pub fn matches(&self) -> bool {
        self.recorded == self.replayed && self.timer_mismatches.is_empty()
    }
}

/// Feeds the recorded inputs to a new [`Router`] in simulated time (each
/// at its recorded time) and collects the transitions it makes.
pub fn replay(records: &[Record]) -> Replay {
    let mut router = Router::new();
    let mut out = Replay::default();
    for r in records {
        let at = r.at;
        let ok = match &r.input {
            Input::AddInstance {
                id,
                interface,
                config,
                ..
            } => router
                .add_instance(*interface, (**config).clone())
                .is_ok_and(|got| got == *id),
            Input::AddSyncGroup { members } => router.add_sync_group(members).is_ok(),
            Input::Startup => {
                router.handle_startup(at);
                true
            }
            Input::Start { id } => router.start(at, *id).is_ok(),
            Input::Shutdown => {
                router.handle_shutdown(at);
                true
            }
            Input::Remove { id } => router.remove_instance(at, *id).is_ok(),
            Input::Reconfigure { id, config } => {
                router.reconfigure(at, *id, (**config).clone()).is_ok()
            }
            Input::Track {
                id,
                track,
                config,
                up,
            } => router.track(at, *id, *track, *config, *up).is_ok(),
            Input::Untrack { id, track } => router.untrack(at, *id, *track).is_ok(),
            Input::BasePriority { id, priority } => {
                router.set_base_priority(at, *id, *priority).is_ok()
            }
            Input::Maintenance { ids, on } => router.set_maintenance(at, ids, *on).is_ok(),
            Input::Packet {
                interface,
                meta,
                bytes,
            } => {
                // A dropped packet is an outcome, not a refusal.
                let _ = router.handle_packet(at, *interface, meta, bytes);
                true
            }
            Input::Timeout { due } => {
                if router.poll_timeout() != Some(*due) {
                    out.timer_mismatches.push(r.seq);
                }
                router.handle_timeout(at);
                true
            }
            Input::TrackState { track, up } => {
                router.set_track_state(at, *track, *up);
                true
            }
            Input::Transition {
                id,
                from,
                to,
                reason,
            } => {
                out.recorded.push(Transition {
                    at,
                    id: *id,
                    from: *from,
                    to: *to,
                    reason: *reason,
                });
                true
            }
        };
        if !ok {
            out.refused.push(r.seq);
        }
        while let Some((id, output)) = router.poll_output() {
            if let vrrp_core::Output::StateChanged { from, to, reason } = output {
                out.replayed.push(Transition {
                    at,
                    id,
                    from,
                    to,
                    reason,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrrp_core::{Version, VirtualAddress, Vrid};

    fn config(prio: u8) -> Box<InstanceConfig> {
        Box::new(
            InstanceConfig::new(
                Vrid::new(7).expect("vrid"),
                Version::V3,
                "192.0.2.1".parse().expect("ip"),
            )
            .with_priority(Priority::new(prio))
            .with_address(VirtualAddress::host("192.0.2.7".parse().expect("ip"))),
        )
    }

    #[test]
    fn the_ring_is_bounded_and_keeps_the_setup() {
        let mut r = Recorder::with_capacity(3, 8);
        r.record(
            Timestamp::ZERO,
            Input::AddInstance {
                id: InstanceId(0),
                interface: 1,
                name: "VI".into(),
                config: config(100),
            },
        );
        for i in 0..10 {
            r.record(
                Timestamp::from_millis(i),
                Input::Timeout {
                    due: Timestamp::from_millis(i),
                },
            );
        }
        let d = r.dump();
        assert_eq!(d.dropped, 7);
        assert_eq!(d.records.len(), 4);
        assert!(matches!(d.records[0].input, Input::AddInstance { .. }));
        assert_eq!(d.records[1].at, Timestamp::from_millis(7));
    }

    #[test]
    fn a_replay_reproduces_the_transitions_and_a_forged_one_shows() {
        // A lone instance: start-up into Backup, master after
        // Master_Down_Interval; recorded the way the core records.
        let mut router = Router::new();
        let mut rec = Recorder::default();
        let id = router.add_instance(1, (*config(100)).clone()).expect("add");
        rec.record(
            Timestamp::ZERO,
            Input::AddInstance {
                id,
                interface: 1,
                name: "VI".into(),
                config: config(100),
            },
        );
        let feed = |router: &mut Router, rec: &mut Recorder, at: Timestamp| {
            while let Some((id, o)) = router.poll_output() {
                if let vrrp_core::Output::StateChanged { from, to, reason } = o {
                    rec.record(
                        at,
                        Input::Transition {
                            id,
                            from,
                            to,
                            reason,
                        },
                    );
                }
            }
        };
        router.handle_startup(Timestamp::ZERO);
        rec.record(Timestamp::ZERO, Input::Startup);
        feed(&mut router, &mut rec, Timestamp::ZERO);
        let t = router.poll_timeout().expect("timer");
        router.handle_timeout(t);
        rec.record(t, Input::Timeout { due: t });
        feed(&mut router, &mut rec, t);
        rec.record(
            t + std::time::Duration::from_secs(1),
            Input::Maintenance {
                ids: vec![id],
                on: true,
            },
        );
        router
            .set_maintenance(t + std::time::Duration::from_secs(1), &[id], true)
            .expect("maintenance");
        feed(&mut router, &mut rec, t + std::time::Duration::from_secs(1));

        let records = rec.dump().records;
        let replay = replay(&records);
        assert!(replay.matches(), "{replay:?}");
        assert_eq!(replay.replayed.len(), 3);
        assert_eq!(replay.replayed[1].to, State::Master);
        assert_eq!(replay.replayed[2].reason, Reason::Maintenance);
        assert!(replay.refused.is_empty());

        // Without the timer firing, the recording no longer explains
        // itself.
        let cut: Vec<Record> = records
            .iter()
            .filter(|r| !matches!(r.input, Input::Timeout { .. }))
            .cloned()
            .collect();
        assert!(!super::replay(&cut).matches());
        // A timer the inputs do not explain shows too.
        let mut late = records.clone();
        for r in &mut late {
            if let Input::Timeout { due } = &mut r.input {
                *due = *due + std::time::Duration::from_millis(1);
            }
        }
        let replay = super::replay(&late);
        assert_eq!(replay.recorded, replay.replayed);
        assert!(!replay.matches());
    }
}
