//! The simulation's event log: one [`LogEntry`] per thing that happened,
//! printed one per line with node names by [`Log`]'s `Display` (the form
//! golden scenario files are compared in).

use core::fmt;
use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::Deref;

use crate::instance::{Reason, State};
use crate::stats::DropReason;
use crate::time::Timestamp;
use crate::types::{Family, Priority};

use super::{InstanceKey, NodeId, SimOp};

/// What happened, for the log.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LogKind {
    /// An instance changed state.
    StateChanged {
        /// The instance.
        instance: InstanceKey,
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// An advertisement left the node.
    Sent {
        /// The instance.
        instance: InstanceKey,
        /// Where to: the multicast group or a unicast peer.
        to: IpAddr,
        /// Advertised priority.
        priority: Priority,
    },
    /// The bytes of an advertisement the node sent, as they left it
    /// (logged after its [`LogKind::Sent`] when
    /// [`Simulation::capture_packets`](super::Simulation::capture_packets)
    /// is on).
    Captured {
        /// The instance.
        instance: InstanceKey,
        /// The IP destination.
        to: IpAddr,
        /// The IP TTL / hop limit.
        ttl: u8,
        /// The VRRP packet (the IP payload).
        bytes: Vec<u8>,
    },
    /// An instance accepted an advertisement: it passed the receive
    /// checks (RFC 5798 7.1) and reached the state machine, which may
    /// still ignore it (a lower priority while preempting, RFC 5798
    /// 6.4.2).
    Received {
        /// The instance.
        instance: InstanceKey,
        /// The sending node.
        from: NodeId,
        /// The priority it carried.
        priority: Priority,
        /// When it was sent: the delivery time minus this is the
        /// packet's delay on the link.
        sent_at: Timestamp,
    },
    /// The receiving node dropped a packet. Packets for a VRID the node
    /// does not run are logged only when crafted (see
    /// [`Simulation::inject`](super::Simulation::inject)): on a LAN
    /// shared by several VRIDs they are routine.
    Dropped {
        /// The sender.
        from: NodeId,
        /// The instance the packet was routed to, if any.
        instance: Option<InstanceKey>,
        /// Why.
        reason: DropReason,
    },
    /// A link's loss ate a packet on its way to this node (logged when
    /// the packet is sent).
    Lost {
        /// The sender.
        from: NodeId,
    },
    /// A link duplicated a packet on its way to this node: it is
    /// delivered twice (logged when the packet is sent).
    Duplicated {
        /// The sender.
        from: NodeId,
    },
    /// The node added the virtual addresses.
    AddressesAdded {
        /// The instance.
        instance: InstanceKey,
        /// The addresses.
        addresses: Vec<IpAddr>,
    },
    /// The node removed the virtual addresses (also at start-up into
    /// Backup, as a clean-up after a crashed run).
    AddressesRemoved {
        /// The instance.
        instance: InstanceKey,
        /// The addresses.
        addresses: Vec<IpAddr>,
    },
    /// Gratuitous ARPs / unsolicited neighbour advertisements.
    Announced {
        /// The instance.
        instance: InstanceKey,
        /// How many per address.
        count: u32,
    },
    /// The effective priority changed.
    PriorityChanged {
        /// The instance.
        instance: InstanceKey,
        /// New priority.
        to: Priority,
    },
    /// An operation was applied: to the entry's node, or to the LAN when
    /// the entry has no node.
    Op(SimOp),
}

impl LogKind {
    /// The instance this is about, if it is about one.
    pub fn instance(&self) -> Option<InstanceKey> {
        match self {
            LogKind::StateChanged { instance, .. }
            | LogKind::Sent { instance, .. }
            | LogKind::Captured { instance, .. }
            | LogKind::Received { instance, .. }
            | LogKind::AddressesAdded { instance, .. }
            | LogKind::AddressesRemoved { instance, .. }
            | LogKind::Announced { instance, .. }
            | LogKind::PriorityChanged { instance, .. } => Some(*instance),
            LogKind::Dropped { instance, .. } => *instance,
            LogKind::Op(SimOp::SetPriority(_, instance, _)) => Some(*instance),
            LogKind::Lost { .. } | LogKind::Duplicated { .. } | LogKind::Op(_) => None,
        }
    }
}

/// One line of the event log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// When.
    pub at: Timestamp,
    /// Where: a node, or `None` for what happened to the whole LAN
    /// (partitions, cuts, link changes).
    pub node: Option<NodeId>,
    /// What.
    pub kind: LogKind,
}

impl LogEntry {
    /// Whether this is a state change.
    pub fn is_transition(&self) -> bool {
        matches!(self.kind, LogKind::StateChanged { .. })
    }

    /// Whether this happened on `node` and is about instance `key`.
    pub fn concerns(&self, node: NodeId, key: InstanceKey) -> bool {
        self.node == Some(node) && self.kind.instance() == Some(key)
    }
}

impl fmt::Display for LogEntry {
    /// Like a line of [`Log`]'s `Display`, with nodes as `node0`,
    /// `node1`, ... since an entry does not know the names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_entry(f, self, &Names(&[]), 0)
    }
}

/// The event log of a [`Simulation`](super::Simulation), in time order.
///
/// It dereferences to `[LogEntry]` for filtering. Its `Display` prints one
/// line per entry with the nodes' names: the text that golden scenario
/// files hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Log {
    entries: Vec<LogEntry>,
    names: Vec<String>,
}

impl Deref for Log {
    type Target = [LogEntry];
    fn deref(&self) -> &[LogEntry] {
        &self.entries
    }
}

impl<'a> IntoIterator for &'a Log {
    type Item = &'a LogEntry;
    type IntoIter = std::slice::Iter<'a, LogEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl Log {
    pub(super) fn push(&mut self, entry: LogEntry) {
        self.entries.push(entry);
    }

    pub(super) fn add_name(&mut self, name: &str) {
        self.names.push(name.to_owned());
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The entries at or after `at`.
    pub fn since(&self, at: Timestamp) -> &[LogEntry] {
        let start = self.entries.partition_point(|e| e.at < at);
        &self.entries[start..]
    }

    /// One entry as its line of the log, with node names.
    pub fn line<'a>(&'a self, entry: &'a LogEntry) -> impl fmt::Display + 'a {
        struct Line<'a>(&'a Log, &'a LogEntry);
        impl fmt::Display for Line<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_entry(f, self.1, &Names(&self.0.names), 0)
            }
        }
        Line(self, entry)
    }

    /// State changes of one instance: `(when, from, to, why)`.
    pub fn transitions(
        &self,
        node: NodeId,
        key: impl Into<InstanceKey>,
    ) -> impl Iterator<Item = (Timestamp, State, State, Reason)> + '_ {
        let key = key.into();
        self.entries
            .iter()
            .filter(move |e| e.concerns(node, key))
            .filter_map(|e| match e.kind {
                LogKind::StateChanged {
                    from, to, reason, ..
                } => Some((e.at, from, to, reason)),
                _ => None,
            })
    }

    /// When an instance last became master.
    pub fn became_master(&self, node: NodeId, key: impl Into<InstanceKey>) -> Option<Timestamp> {
        self.transitions(node, key)
            .filter(|t| t.2 == State::Master)
            .last()
            .map(|t| t.0)
    }

    /// Advertisements an instance sent: `(when, priority)`, one per
    /// destination.
    pub fn sent(
        &self,
        node: NodeId,
        key: impl Into<InstanceKey>,
    ) -> impl Iterator<Item = (Timestamp, Priority)> + '_ {
        let key = key.into();
        self.entries
            .iter()
            .filter(move |e| e.concerns(node, key))
            .filter_map(|e| match e.kind {
                LogKind::Sent { priority, .. } => Some((e.at, priority)),
                _ => None,
            })
    }

    /// Advertisements an instance accepted: `(when, sender, priority,
    /// sent at)`.
    pub fn received(
        &self,
        node: NodeId,
        key: impl Into<InstanceKey>,
    ) -> impl Iterator<Item = (Timestamp, NodeId, Priority, Timestamp)> + '_ {
        let key = key.into();
        self.entries
            .iter()
            .filter(move |e| e.concerns(node, key))
            .filter_map(|e| match e.kind {
                LogKind::Received {
                    from,
                    priority,
                    sent_at,
                    ..
                } => Some((e.at, from, priority, sent_at)),
                _ => None,
            })
    }
}

impl fmt::Display for Log {
    /// One line per entry: time, node name (or `LAN`), what happened.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = Names(&self.names);
        let width = self
            .names
            .iter()
            .map(String::len)
            .chain([LAN.len()])
            .max()
            .unwrap_or(0);
        for e in &self.entries {
            write_entry(f, e, &names, width)?;
            writeln!(f)?;
        }
        Ok(())
    }
}

const LAN: &str = "LAN";

/// Resolves node ids to names; unnamed ids print as `node<N>`.
pub(super) struct Names<'a>(pub(super) &'a [String]);

impl Names<'_> {
    fn get(&self, n: NodeId) -> Cow<'_, str> {
        match self.0.get(n.0) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(format!("node{}", n.0)),
        }
    }
}

fn write_entry(
    f: &mut fmt::Formatter<'_>,
    e: &LogEntry,
    names: &Names<'_>,
    width: usize,
) -> fmt::Result {
    let who = match e.node {
        Some(n) => names.get(n),
        None => Cow::Borrowed(LAN),
    };
    write!(f, "{:>12}  {:<width$}  ", e.at.to_string(), who)?;
    let name = |n: NodeId| names.get(n);
    match &e.kind {
        LogKind::StateChanged {
            instance,
            from,
            to,
            reason,
        } => write!(f, "{instance}: {from} -> {to} ({})", DisplayReason(reason)),
        LogKind::Sent {
            instance,
            to,
            priority,
        } => write!(f, "{instance}: sent priority {priority} to {to}"),
        LogKind::Captured {
            instance,
            to,
            ttl,
            bytes,
        } => {
            write!(f, "{instance}: packet to {to} ttl {ttl}:")?;
            for b in bytes {
                write!(f, " {b:02x}")?;
            }
            Ok(())
        }
        LogKind::Received {
            instance,
            from,
            priority,
            sent_at,
        } => write!(
            f,
            "{instance}: received priority {priority} from {}, sent {sent_at}",
            name(*from)
        ),
        LogKind::Dropped {
            from,
            instance,
            reason,
        } => {
            if let Some(i) = instance {
                write!(f, "{i}: ")?;
            }
            write!(f, "dropped a packet from {}: {reason:?}", name(*from))
        }
        LogKind::Lost { from } => write!(f, "lost a packet from {}", name(*from)),
        LogKind::Duplicated { from } => {
            write!(f, "a packet from {} arrives twice", name(*from))
        }
        LogKind::AddressesAdded {
            instance,
            addresses,
        } => write!(f, "{instance}: added {}", DisplayList(addresses)),
        LogKind::AddressesRemoved {
            instance,
            addresses,
        } => write!(f, "{instance}: removed {}", DisplayList(addresses)),
        LogKind::Announced { instance, count } => {
            let what = match instance.family {
                Family::Ipv6 => "unsolicited NAs",
                _ => "gratuitous ARPs",
            };
            write!(f, "{instance}: {count} {what} per address")
        }
        LogKind::PriorityChanged { instance, to } => {
            write!(f, "{instance}: priority now {to}")
        }
        LogKind::Op(op) => write_op(f, op, names, e.node.is_some()),
    }
}

/// Writes an operation; `subject_shown` leaves out the node the entry's
/// name column already shows.
pub(super) fn write_op(
    f: &mut fmt::Formatter<'_>,
    op: &SimOp,
    names: &Names<'_>,
    subject_shown: bool,
) -> fmt::Result {
    let name = |n: NodeId| names.get(n);
    let subject = |f: &mut fmt::Formatter<'_>, n: NodeId| {
        if subject_shown {
            Ok(())
        } else {
            write!(f, "{}: ", name(n))
        }
    };
    match op {
        SimOp::Crash(n) => {
            subject(f, *n)?;
            f.write_str("crash")
        }
        SimOp::Shutdown(n) => {
            subject(f, *n)?;
            f.write_str("shutdown")
        }
        SimOp::Restart(n) => {
            subject(f, *n)?;
            f.write_str("restart")
        }
        SimOp::Partition(groups) => {
            f.write_str("partition")?;
            for g in groups {
                f.write_str(" [")?;
                for (i, n) in g.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    f.write_str(&name(*n))?;
                }
                f.write_str("]")?;
            }
            f.write_str(" [the rest]")
        }
        SimOp::Heal => f.write_str("heal every partition and cut"),
        SimOp::Cut(a, b) => write!(f, "cut {} <-> {}", name(*a), name(*b)),
        SimOp::CutOneWay { from, to } => write!(f, "cut {} -> {}", name(*from), name(*to)),
        SimOp::Repair(a, b) => write!(f, "repair {} <-> {}", name(*a), name(*b)),
        SimOp::RepairOneWay { from, to } => {
            write!(f, "repair {} -> {}", name(*from), name(*to))
        }
        SimOp::SetLink { from, to, profile } => {
            write!(f, "link {} -> {}: ", name(*from), name(*to))?;
            match profile {
                Some(p) => write!(f, "{p}"),
                None => f.write_str("back to the default"),
            }
        }
        SimOp::SetDefaultLink(p) => write!(f, "every link: {p}"),
        SimOp::SetPriority(n, key, p) => {
            subject(f, *n)?;
            write!(f, "{key}: set priority {p}")
        }
        SimOp::SetTrack(n, track, up) => {
            subject(f, *n)?;
            let state = if *up { "up" } else { "down" };
            write!(f, "track {} {state}", track.0)
        }
        SimOp::Inject { from, to, packet } => {
            subject(f, *from)?;
            write!(f, "inject {packet}")?;
            match to {
                Some(t) => write!(f, " to {} only", name(*t)),
                None => Ok(()),
            }
        }
    }
}

impl fmt::Display for SimOp {
    /// The operation with nodes as `node0`, `node1`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_op(f, self, &Names(&[]), false)
    }
}

struct DisplayList<'a>(&'a [IpAddr]);

impl fmt::Display for DisplayList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no addresses");
        }
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// A [`Reason`] in words.
struct DisplayReason<'a>(&'a Reason);

impl fmt::Display for DisplayReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Reason::Startup => f.write_str("startup"),
            Reason::AddressOwner => f.write_str("address owner"),
            Reason::ConfiguredMaster => f.write_str("configured master"),
            Reason::MasterDown => f.write_str("master down"),
            Reason::Preempted { by, priority } => {
                write!(f, "preempted by {by} priority {priority}")
            }
            Reason::TrackFailed(t) => write!(f, "track {} failed", t.0),
            Reason::FaultCleared => f.write_str("fault cleared"),
            Reason::SyncGroup => f.write_str("sync group"),
            Reason::Shutdown => f.write_str("shutdown"),
            Reason::Maintenance => f.write_str("maintenance"),
            // Reasons added to the engine later print as their Debug form.
            #[allow(unreachable_patterns)]
            other => write!(f, "{other:?}"),
        }
    }
}
