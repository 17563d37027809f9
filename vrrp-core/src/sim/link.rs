//! The simulated LAN's links: one profile per direction (latency, jitter,
//! loss, duplication, reordering), partitions and cuts, and the seeded
//! generator every random choice is drawn from.

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::NodeId;

/// How one direction of a link treats packets. Every random choice is
/// drawn from the simulation's seeded generator, so a seed replays the
/// same losses, delays and copies.
///
/// Build one from [`LinkProfile::default`] (100 µs latency, a perfect
/// link) with the `with_*` methods.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct LinkProfile {
    /// The one-way delay of every packet.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter`, per packet and per
    /// copy. A jitter larger than the gap between two packets reorders
    /// them.
    pub jitter: Duration,
    /// Probability (0..=1) that a packet is lost; logged as
    /// [`LogKind::Lost`](super::LogKind::Lost).
    pub loss: f64,
    /// Probability (0..=1) that a packet arrives twice; logged as
    /// [`LogKind::Duplicated`](super::LogKind::Duplicated).
    pub duplicate: f64,
    /// Probability (0..=1) that a packet is held back by
    /// [`LinkProfile::reorder_delay`], so that packets sent after it
    /// arrive first.
    pub reorder: f64,
    /// How long a packet picked for reordering is held back.
    pub reorder_delay: Duration,
}

impl Default for LinkProfile {
    fn default() -> Self {
        LinkProfile {
            latency: Duration::from_micros(100),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
        }
    }
}

impl LinkProfile {
    /// Sets the one-way latency.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Sets the jitter: each packet is delayed by up to this much more.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the loss probability (clamped to 0..=1).
    pub fn with_loss(mut self, probability: f64) -> Self {
        self.loss = clamp_probability(probability);
        self
    }

    /// Sets the duplication probability (clamped to 0..=1).
    pub fn with_duplicate(mut self, probability: f64) -> Self {
        self.duplicate = clamp_probability(probability);
        self
    }

    /// Holds back a share of the packets (`probability`, clamped to 0..=1)
    /// by `delay`, so that later packets overtake them.
    pub fn with_reorder(mut self, probability: f64, delay: Duration) -> Self {
        self.reorder = clamp_probability(probability);
        self.reorder_delay = delay;
        self
    }
}

fn clamp_probability(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

impl fmt::Display for LinkProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "latency {}", DisplayDuration(self.latency))?;
        if !self.jitter.is_zero() {
            write!(f, " jitter {}", DisplayDuration(self.jitter))?;
        }
        if self.loss > 0.0 {
            write!(f, " loss {}", self.loss)?;
        }
        if self.duplicate > 0.0 {
            write!(f, " duplicate {}", self.duplicate)?;
        }
        if self.reorder > 0.0 {
            write!(
                f,
                " reorder {} by {}",
                self.reorder,
                DisplayDuration(self.reorder_delay)
            )?;
        }
        Ok(())
    }
}

/// A duration in the largest whole unit that shows it exactly (`1s`,
/// `250ms`, `100us`, `7ns`): ASCII, so golden logs stay plain text.
pub(crate) struct DisplayDuration(pub(crate) Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns == 0 {
            f.write_str("0s")
        } else if ns.is_multiple_of(1_000_000_000) {
            write!(f, "{}s", ns / 1_000_000_000)
        } else if ns.is_multiple_of(1_000_000) {
            write!(f, "{}ms", ns / 1_000_000)
        } else if ns.is_multiple_of(1_000) {
            write!(f, "{}us", ns / 1_000)
        } else {
            write!(f, "{ns}ns")
        }
    }
}

/// What a link does to one packet.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// The link cannot carry it (partition or cut): nothing is logged.
    Unreachable,
    /// Lost on the way.
    Lost,
    /// Delivered after each of these delays (two for a duplicate).
    Delivered(Vec<Duration>),
}

/// Connectivity and link profiles of the LAN.
#[derive(Debug)]
pub(super) struct Network {
    default: LinkProfile,
    links: BTreeMap<(NodeId, NodeId), LinkProfile>,
    /// Each node's partition group.
    group: Vec<usize>,
    /// The group of every node no partition named (including nodes added
    /// later).
    rest: usize,
    /// Directions cut by `cut` or `cut_one_way`.
    cut: BTreeSet<(NodeId, NodeId)>,
    rng: ChaCha8Rng,
}

impl Network {
    pub(super) fn new(seed: u64) -> Self {
        Network {
            default: LinkProfile::default(),
            links: BTreeMap::new(),
            group: Vec::new(),
            rest: 0,
            cut: BTreeSet::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub(super) fn add_node(&mut self) {
        self.group.push(self.rest);
    }

    pub(super) fn default_profile(&self) -> LinkProfile {
        self.default
    }

    pub(super) fn set_default(&mut self, profile: LinkProfile) {
        self.default = profile;
    }

    pub(super) fn profile(&self, from: NodeId, to: NodeId) -> LinkProfile {
        self.links.get(&(from, to)).copied().unwrap_or(self.default)
    }

    pub(super) fn set_link(&mut self, from: NodeId, to: NodeId, profile: Option<LinkProfile>) {
        match profile {
            Some(p) => self.links.insert((from, to), p),
            None => self.links.remove(&(from, to)),
        };
    }

    /// Named groups hear only each other; the nodes no group names form
    /// one more group together. A node named twice belongs to the last
    /// group naming it.
    pub(super) fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.rest = groups.len();
        for g in &mut self.group {
            *g = self.rest;
        }
        for (index, members) in groups.iter().enumerate() {
            for n in members {
                if let Some(g) = self.group.get_mut(n.0) {
                    *g = index;
                }
            }
        }
    }

    /// Ends any partition and repairs every cut; link profiles stay.
    pub(super) fn heal(&mut self) {
        self.rest = 0;
        for g in &mut self.group {
            *g = 0;
        }
        self.cut.clear();
    }

    pub(super) fn cut(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    pub(super) fn repair(&mut self, from: NodeId, to: NodeId) {
        self.cut.remove(&(from, to));
    }

    pub(super) fn can_hear(&self, from: NodeId, to: NodeId) -> bool {
        if from == to {
            return true;
        }
        let same_group = match (self.group.get(from.0), self.group.get(to.0)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
        same_group && !self.cut.contains(&(from, to))
    }

    /// Decides, with seeded draws, what the link from `from` to `to` does
    /// to one packet. Draws are made only for the impairments the link
    /// has, in a fixed order (loss, then per copy jitter and reordering,
    /// then duplication), so a run replays exactly from its seed.
    pub(super) fn fate(&mut self, from: NodeId, to: NodeId) -> Fate {
        if !self.can_hear(from, to) {
            return Fate::Unreachable;
        }
        let p = self.profile(from, to);
        if p.loss > 0.0 && self.chance(p.loss) {
            return Fate::Lost;
        }
        let mut delays = vec![self.delay(&p)];
        if p.duplicate > 0.0 && self.chance(p.duplicate) {
            let second = self.delay(&p);
            delays.push(second);
        }
        Fate::Delivered(delays)
    }

    fn delay(&mut self, p: &LinkProfile) -> Duration {
        let mut d = p.latency;
        if !p.jitter.is_zero() {
            let span = u64::try_from(p.jitter.as_nanos()).unwrap_or(u64::MAX);
            let extra = self.rng.next_u64() % span.saturating_add(1);
            d += Duration::from_nanos(extra);
        }
        if p.reorder > 0.0 && self.chance(p.reorder) {
            d += p.reorder_delay;
        }
        d
    }

    /// True with probability `p`: a uniform draw in [0, 1) below `p`.
    fn chance(&mut self, p: f64) -> bool {
        let draw = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        draw < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: usize) -> NodeId {
        NodeId(i)
    }

    fn net(nodes: usize) -> Network {
        let mut net = Network::new(1);
        for _ in 0..nodes {
            net.add_node();
        }
        net
    }

    #[test]
    fn unnamed_nodes_form_one_group() {
        let mut net = net(3);
        net.partition(&[vec![n(0)]]);
        assert!(!net.can_hear(n(0), n(1)));
        assert!(!net.can_hear(n(2), n(0)));
        assert!(
            net.can_hear(n(1), n(2)),
            "the unnamed nodes hear each other"
        );
        assert!(net.can_hear(n(2), n(1)));
        net.add_node();
        assert!(
            net.can_hear(n(3), n(1)),
            "a node added later joins the rest"
        );
        assert!(!net.can_hear(n(3), n(0)));
    }

    #[test]
    fn a_one_way_cut_keeps_the_other_direction() {
        let mut net = net(2);
        net.cut(n(0), n(1));
        assert!(!net.can_hear(n(0), n(1)));
        assert!(net.can_hear(n(1), n(0)));
        assert_eq!(net.fate(n(0), n(1)), Fate::Unreachable);
        net.repair(n(0), n(1));
        assert!(net.can_hear(n(0), n(1)));
    }

    #[test]
    fn heal_ends_partitions_and_cuts_but_keeps_profiles() {
        let mut net = net(2);
        let lossy = LinkProfile::default().with_loss(0.5);
        net.set_link(n(0), n(1), Some(lossy));
        net.partition(&[vec![n(0)], vec![n(1)]]);
        net.cut(n(1), n(0));
        net.heal();
        assert!(net.can_hear(n(0), n(1)) && net.can_hear(n(1), n(0)));
        assert_eq!(net.profile(n(0), n(1)), lossy);
        assert_eq!(net.profile(n(1), n(0)), LinkProfile::default());
    }

    #[test]
    fn jitter_stays_within_its_bound_and_duplicates_draw_their_own_delay() {
        let mut net = net(2);
        let p = LinkProfile::default()
            .with_latency(Duration::from_millis(1))
            .with_jitter(Duration::from_millis(2))
            .with_duplicate(1.0);
        net.set_link(n(0), n(1), Some(p));
        let mut distinct = BTreeSet::new();
        for _ in 0..200 {
            let Fate::Delivered(d) = net.fate(n(0), n(1)) else {
                panic!("a lossless link delivers");
            };
            assert_eq!(d.len(), 2, "duplicate probability 1 always copies");
            for x in d {
                assert!(x >= Duration::from_millis(1) && x <= Duration::from_millis(3));
                distinct.insert(x);
            }
        }
        assert!(distinct.len() > 100, "delays vary: {}", distinct.len());
    }

    #[test]
    fn probabilities_are_clamped() {
        let p = LinkProfile::default()
            .with_loss(2.0)
            .with_duplicate(-1.0)
            .with_reorder(f64::NAN, Duration::ZERO);
        assert_eq!((p.loss, p.duplicate, p.reorder), (1.0, 0.0, 0.0));
    }

    #[test]
    fn durations_print_in_their_exact_unit() {
        let s = |d| DisplayDuration(d).to_string();
        assert_eq!(s(Duration::from_secs(3)), "3s");
        assert_eq!(s(Duration::from_millis(1500)), "1500ms");
        assert_eq!(s(Duration::from_micros(100)), "100us");
        assert_eq!(s(Duration::from_nanos(7)), "7ns");
        assert_eq!(s(Duration::ZERO), "0s");
    }
}
