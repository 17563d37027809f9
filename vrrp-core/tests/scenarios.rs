//! Golden scenarios: every directory under `testdata/scenarios/` holds a
//! `scenario.toml` (topology, configuration, timed operations) and, per
//! variant (VRRPv2/IPv4, VRRPv3/IPv4, VRRPv3/IPv6), the log the simulator
//! must print for it, compared line for line through `Log`'s `Display`.
//! The `unh-*` scenarios are the UNH-IOL VRRP Operations Test Suite's
//! groups 2 (state machine), 3 (parameters) and 4 (transmission and
//! reception, bad packets), each citing its test number.
//!
//! `VRRP_SIM_BLESS=1 cargo test -p vrrp-core --test scenarios` rewrites
//! the expected logs deliberately; without it any difference fails.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vrrp_core::sim::{
    Crafted, Edit, InstanceKey, LinkProfile, NodeId, NodeSpec, SimOp, Simulation,
};
use vrrp_core::{
    Auth, Centisecs, Family, InitialState, InstanceConfig, Priority, Timestamp, TrackConfig,
    TrackId, Version, VirtualAddress, Vrid,
};

const BLESS: &str = "VRRP_SIM_BLESS";

// --- the file format ---

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    /// One line, with the test number for conformance tests.
    title: String,
    /// Where the test comes from.
    reference: Option<String>,
    /// What the scenario shows and which RFC rule it checks.
    purpose: String,
    /// `v2-ipv4`, `v3-ipv4`, `v3-ipv6`; absent: one run, `expected.log`,
    /// with each instance's own `version` and `family` (default v3/IPv4).
    variants: Option<Vec<String>>,
    #[serde(default = "one")]
    seed: u64,
    /// When the run stops.
    end: String,
    #[serde(default = "yes")]
    log_sends: bool,
    #[serde(default = "yes")]
    log_receives: bool,
    /// Log the bytes of every advertisement sent.
    #[serde(default)]
    capture: bool,
    /// The default link profile.
    link: Option<LinkToml>,
    #[serde(rename = "node")]
    nodes: Vec<NodeToml>,
    #[serde(rename = "op", default)]
    ops: Vec<OpToml>,
}

fn one() -> u64 {
    1
}

fn yes() -> bool {
    true
}

fn default_vrid() -> u8 {
    1
}

fn default_priority() -> u8 {
    100
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeToml {
    name: String,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    /// When the node is added (default at once).
    start: Option<String>,
    #[serde(rename = "instance", default)]
    instances: Vec<InstanceToml>,
    /// Sync groups by VRID (in the instance's family).
    #[serde(default)]
    sync_groups: Vec<Vec<u8>>,
    #[serde(rename = "track", default)]
    tracks: Vec<TrackToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceToml {
    #[serde(default = "default_vrid")]
    vrid: u8,
    #[serde(default = "default_priority")]
    priority: u8,
    interval: Option<String>,
    #[serde(default = "yes")]
    preempt: bool,
    preempt_delay: Option<String>,
    /// Those of the instance's family are used; default 192.0.2.100 and
    /// 2001:db8::100.
    vips: Option<Vec<IpAddr>>,
    /// `backup` (default) or `master`.
    initial: Option<String>,
    /// A VRRPv2 password.
    auth: Option<String>,
    /// Unicast peers, by node name.
    #[serde(default)]
    unicast: Vec<String>,
    #[serde(default)]
    lower_prio_no_advert: bool,
    /// Overrides the variant's version: 2 or 3.
    version: Option<u8>,
    /// Overrides the variant's family: `ipv4` or `ipv6`.
    family: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackToml {
    id: u32,
    weight: i32,
    #[serde(default = "yes")]
    up: bool,
    #[serde(default)]
    reverse: bool,
    /// The tracking instance; absent: every instance of the node.
    vrid: Option<u8>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LinkToml {
    latency: Option<String>,
    jitter: Option<String>,
    #[serde(default)]
    loss: f64,
    #[serde(default)]
    duplicate: f64,
    #[serde(default)]
    reorder: f64,
    reorder_delay: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkOpToml {
    from: String,
    to: String,
    /// Back to the default profile (and no other key).
    #[serde(default)]
    reset: bool,
    latency: Option<String>,
    jitter: Option<String>,
    #[serde(default)]
    loss: f64,
    #[serde(default)]
    duplicate: f64,
    #[serde(default)]
    reorder: f64,
    reorder_delay: Option<String>,
}

impl LinkOpToml {
    fn profile(&self) -> Result<Option<LinkProfile>, String> {
        if self.reset {
            return Ok(None);
        }
        link(&LinkToml {
            latency: self.latency.clone(),
            jitter: self.jitter.clone(),
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
            reorder_delay: self.reorder_delay.clone(),
        })
        .map(Some)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorityToml {
    node: String,
    #[serde(default = "default_vrid")]
    vrid: u8,
    family: Option<String>,
    to: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackOpToml {
    node: String,
    id: u32,
    up: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectToml {
    from: String,
    /// One receiver, addressed to its own address unless `destination`
    /// says otherwise; absent: everyone, at the multicast group.
    to: Option<String>,
    #[serde(default = "default_vrid")]
    vrid: u8,
    priority: u8,
    /// Default 1s.
    interval: Option<String>,
    /// Default: the instance defaults of the packet's family.
    vips: Option<Vec<IpAddr>>,
    /// `v2`, `v3`, or `other` (the version the variant does not run;
    /// over IPv6, a VRRPv3 packet relabelled 2).
    version: Option<String>,
    family: Option<String>,
    ttl: Option<u8>,
    auth: Option<String>,
    source: Option<IpAddr>,
    destination: Option<IpAddr>,
    version_nibble: Option<u8>,
    type_nibble: Option<u8>,
    vrid_byte: Option<u8>,
    auth_type: Option<u8>,
    count: Option<u8>,
    interval_field: Option<u16>,
    truncate: Option<usize>,
    #[serde(default)]
    bad_checksum: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpToml {
    at: String,
    /// Repeat every this long...
    every: Option<String>,
    /// ...up to and including this time.
    until: Option<String>,
    crash: Option<String>,
    shutdown: Option<String>,
    restart: Option<String>,
    partition: Option<Vec<Vec<String>>>,
    heal: Option<bool>,
    cut: Option<[String; 2]>,
    cut_one_way: Option<[String; 2]>,
    repair: Option<[String; 2]>,
    repair_one_way: Option<[String; 2]>,
    link: Option<LinkOpToml>,
    default_link: Option<LinkToml>,
    set_priority: Option<PriorityToml>,
    set_track: Option<TrackOpToml>,
    inject: Option<InjectToml>,
}

// --- building a run ---

#[derive(Clone, Copy, Debug)]
struct Variant {
    name: &'static str,
    version: Version,
    family: Family,
}

const VARIANTS: [Variant; 3] = [
    Variant {
        name: "v2-ipv4",
        version: Version::V2,
        family: Family::Ipv4,
    },
    Variant {
        name: "v3-ipv4",
        version: Version::V3,
        family: Family::Ipv4,
    },
    Variant {
        name: "v3-ipv6",
        version: Version::V3,
        family: Family::Ipv6,
    },
];

/// A run without variants.
const SINGLE: Variant = Variant {
    name: "expected",
    version: Version::V3,
    family: Family::Ipv4,
};

fn default_vips() -> Vec<IpAddr> {
    vec![
        "192.0.2.100".parse().unwrap(),
        "2001:db8::100".parse().unwrap(),
    ]
}

/// `1s`, `250ms`, `3.5s`, `100us`.
fn duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("duration {s:?} has no unit (s, ms, us)"))?;
    let scale = match unit {
        "s" => 1e9,
        "ms" => 1e6,
        "us" => 1e3,
        _ => return Err(format!("duration {s:?}: unknown unit {unit:?}")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("duration {s:?}: {num:?} is not a number"))?;
    if n.is_nan() || n < 0.0 {
        return Err(format!("duration {s:?} is negative"));
    }
    Ok(Duration::from_nanos((n * scale).round() as u64))
}

fn timestamp(s: &str) -> Result<Timestamp, String> {
    duration(s).map(Timestamp::from)
}

fn centisecs(s: &str) -> Result<Centisecs, String> {
    let d = duration(s)?;
    Centisecs::from_duration(d)
        .filter(|c| c.as_duration() == d)
        .ok_or_else(|| format!("interval {s:?} is not a whole number of centiseconds"))
}

fn family(s: &str) -> Result<Family, String> {
    match s {
        "ipv4" => Ok(Family::Ipv4),
        "ipv6" => Ok(Family::Ipv6),
        _ => Err(format!("family {s:?}: ipv4 or ipv6")),
    }
}

fn vrid(v: u8) -> Result<Vrid, String> {
    Vrid::new(v).ok_or_else(|| "vrid 0 is not a VRID".to_owned())
}

fn password(s: &str) -> Result<Auth, String> {
    Auth::password(s.as_bytes()).ok_or_else(|| format!("password {s:?} is over 8 bytes"))
}

fn link(t: &LinkToml) -> Result<LinkProfile, String> {
    let mut p = LinkProfile::default();
    if let Some(l) = &t.latency {
        p = p.with_latency(duration(l)?);
    }
    if let Some(j) = &t.jitter {
        p = p.with_jitter(duration(j)?);
    }
    let delay = t
        .reorder_delay
        .as_deref()
        .map(duration)
        .transpose()?
        .unwrap_or_default();
    Ok(p.with_loss(t.loss)
        .with_duplicate(t.duplicate)
        .with_reorder(t.reorder, delay))
}

/// Node names to ids, in the order nodes are added (by start time,
/// stably).
struct Topology {
    order: Vec<usize>,
    ids: BTreeMap<String, NodeId>,
    addresses: BTreeMap<String, (Ipv4Addr, Ipv6Addr)>,
}

impl Topology {
    fn new(s: &Scenario) -> Result<Self, String> {
        let mut starts = Vec::new();
        for (i, n) in s.nodes.iter().enumerate() {
            let start = n.start.as_deref().map(timestamp).transpose()?;
            starts.push((start.unwrap_or(Timestamp::ZERO), i));
        }
        starts.sort();
        let order: Vec<usize> = starts.iter().map(|(_, i)| *i).collect();
        let mut ids = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        for (pos, &i) in order.iter().enumerate() {
            let n = &s.nodes[i];
            if ids.insert(n.name.clone(), NodeId(pos)).is_some() {
                return Err(format!("two nodes are called {:?}", n.name));
            }
            // The simulator's defaults for the node added pos-th.
            let host = u8::try_from(pos + 1).unwrap_or(u8::MAX);
            let v4 = n.ipv4.unwrap_or(Ipv4Addr::new(192, 0, 2, host));
            let v6 = n
                .ipv6
                .unwrap_or(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, pos as u16 + 1));
            addresses.insert(n.name.clone(), (v4, v6));
        }
        Ok(Topology {
            order,
            ids,
            addresses,
        })
    }

    fn id(&self, name: &str) -> Result<NodeId, String> {
        self.ids
            .get(name)
            .copied()
            .ok_or_else(|| format!("no node called {name:?}"))
    }

    fn address(&self, name: &str, family: Family) -> Result<IpAddr, String> {
        let (v4, v6) = self
            .addresses
            .get(name)
            .ok_or_else(|| format!("no node called {name:?}"))?;
        Ok(match family {
            Family::Ipv4 => IpAddr::V4(*v4),
            _ => IpAddr::V6(*v6),
        })
    }
}

fn instance(t: &InstanceToml, v: Variant, topo: &Topology) -> Result<InstanceConfig, String> {
    let version = match t.version {
        None => v.version,
        Some(2) => Version::V2,
        Some(3) => Version::V3,
        Some(n) => return Err(format!("version {n}: 2 or 3")),
    };
    let fam = t
        .family
        .as_deref()
        .map(family)
        .transpose()?
        .unwrap_or(v.family);
    let any: IpAddr = match fam {
        Family::Ipv4 => Ipv4Addr::UNSPECIFIED.into(),
        _ => Ipv6Addr::UNSPECIFIED.into(),
    };
    let mut c =
        InstanceConfig::new(vrid(t.vrid)?, version, any).with_priority(Priority::new(t.priority));
    if let Some(i) = &t.interval {
        c = c.with_interval(centisecs(i)?);
    }
    for a in t.vips.clone().unwrap_or_else(default_vips) {
        if Family::of(&a) == fam {
            c = c.with_address(VirtualAddress::host(a));
        }
    }
    c.preempt = t.preempt;
    if let Some(d) = &t.preempt_delay {
        c.preempt_delay = duration(d)?;
    }
    c.initial_state = match t.initial.as_deref() {
        None | Some("backup") => InitialState::Backup,
        Some("master") => InitialState::Master,
        Some(other) => return Err(format!("initial {other:?}: backup or master")),
    };
    if let Some(p) = &t.auth {
        c.auth = password(p)?;
    }
    for peer in &t.unicast {
        c.unicast_peers.push(topo.address(peer, fam)?);
    }
    c.lower_prio_no_advert = t.lower_prio_no_advert;
    c.validate().map_err(|e| format!("vrid {}: {e}", t.vrid))?;
    Ok(c)
}

fn node(t: &NodeToml, v: Variant, topo: &Topology) -> Result<NodeSpec, String> {
    let mut spec = NodeSpec::new(&t.name);
    if let Some(a) = t.ipv4 {
        spec = spec.ipv4(a);
    }
    if let Some(a) = t.ipv6 {
        spec = spec.ipv6(a);
    }
    let mut keys = Vec::new();
    for i in &t.instances {
        let c = instance(i, v, topo).map_err(|e| format!("node {}: {e}", t.name))?;
        keys.push(InstanceKey::of(&c));
        spec = spec.instance(c);
    }
    // A VRID names the node's instance with that VRID.
    let key = |id: u8| {
        keys.iter()
            .copied()
            .find(|k| k.vrid.get() == id)
            .ok_or_else(|| format!("node {}: no instance with vrid {id}", t.name))
    };
    for g in &t.sync_groups {
        let members = g.iter().map(|id| key(*id)).collect::<Result<Vec<_>, _>>()?;
        spec = spec.sync_group(members);
    }
    for tr in &t.tracks {
        let config = TrackConfig {
            weight: tr.weight,
            reverse: tr.reverse,
        };
        spec = match tr.vrid {
            Some(id) => spec.track(key(id)?, TrackId(tr.id), config, tr.up),
            None => spec.track_all(TrackId(tr.id), config, tr.up),
        };
    }
    Ok(spec)
}

fn crafted(t: &InjectToml, v: Variant) -> Result<Crafted, String> {
    let fam = t
        .family
        .as_deref()
        .map(family)
        .transpose()?
        .unwrap_or(v.family);
    let (version, relabel) = match t.version.as_deref() {
        None => (v.version, None),
        Some("v2") => (Version::V2, None),
        Some("v3") => (Version::V3, None),
        Some("other") => match (v.version, fam) {
            (Version::V2, _) => (Version::V3, None),
            (_, Family::Ipv4) => (Version::V2, None),
            // No VRRPv2 packet exists over IPv6: relabel a VRRPv3 one.
            _ => (Version::V3, Some(2)),
        },
        Some(other) => return Err(format!("version {other:?}: v2, v3 or other")),
    };
    let addresses: Vec<IpAddr> = t
        .vips
        .clone()
        .unwrap_or_else(default_vips)
        .into_iter()
        .filter(|a| Family::of(a) == fam)
        .collect();
    let interval = centisecs(t.interval.as_deref().unwrap_or("1s"))?;
    let mut c = Crafted::advert(version, vrid(t.vrid)?, Priority::new(t.priority))
        .family(fam)
        .interval(interval)
        .addresses(addresses);
    if let Some(ttl) = t.ttl {
        c = c.ttl(ttl);
    }
    if let Some(p) = &t.auth {
        c = c.auth(password(p)?);
    }
    if let Some(s) = t.source {
        c = c.source(s);
    }
    if let Some(d) = t.destination {
        c = c.destination(d);
    }
    let edits = [
        relabel.or(t.version_nibble).map(Edit::Version),
        t.type_nibble.map(Edit::Type),
        t.vrid_byte.map(Edit::Vrid),
        t.auth_type.map(Edit::AuthType),
        t.count.map(Edit::Count),
        t.interval_field.map(Edit::Interval),
        t.truncate.map(Edit::Truncate),
        t.bad_checksum.then_some(Edit::BadChecksum),
    ];
    for e in edits.into_iter().flatten() {
        c = c.edit(e);
    }
    Ok(c)
}

fn op(t: &OpToml, v: Variant, topo: &Topology) -> Result<SimOp, String> {
    let pair = |p: &[String; 2]| -> Result<(NodeId, NodeId), String> {
        Ok((topo.id(&p[0])?, topo.id(&p[1])?))
    };
    let mut ops = Vec::new();
    if let Some(n) = &t.crash {
        ops.push(SimOp::Crash(topo.id(n)?));
    }
    if let Some(n) = &t.shutdown {
        ops.push(SimOp::Shutdown(topo.id(n)?));
    }
    if let Some(n) = &t.restart {
        ops.push(SimOp::Restart(topo.id(n)?));
    }
    if let Some(groups) = &t.partition {
        let groups = groups
            .iter()
            .map(|g| g.iter().map(|n| topo.id(n)).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?;
        ops.push(SimOp::Partition(groups));
    }
    if t.heal == Some(true) {
        ops.push(SimOp::Heal);
    }
    if let Some(p) = &t.cut {
        let (a, b) = pair(p)?;
        ops.push(SimOp::Cut(a, b));
    }
    if let Some(p) = &t.cut_one_way {
        let (from, to) = pair(p)?;
        ops.push(SimOp::CutOneWay { from, to });
    }
    if let Some(p) = &t.repair {
        let (a, b) = pair(p)?;
        ops.push(SimOp::Repair(a, b));
    }
    if let Some(p) = &t.repair_one_way {
        let (from, to) = pair(p)?;
        ops.push(SimOp::RepairOneWay { from, to });
    }
    if let Some(l) = &t.link {
        ops.push(SimOp::SetLink {
            from: topo.id(&l.from)?,
            to: topo.id(&l.to)?,
            profile: l.profile()?,
        });
    }
    if let Some(l) = &t.default_link {
        ops.push(SimOp::SetDefaultLink(link(l)?));
    }
    if let Some(p) = &t.set_priority {
        let fam = p
            .family
            .as_deref()
            .map(family)
            .transpose()?
            .unwrap_or(v.family);
        ops.push(SimOp::SetPriority(
            topo.id(&p.node)?,
            InstanceKey::new(vrid(p.vrid)?, fam),
            Priority::new(p.to),
        ));
    }
    if let Some(tr) = &t.set_track {
        ops.push(SimOp::SetTrack(topo.id(&tr.node)?, TrackId(tr.id), tr.up));
    }
    if let Some(i) = &t.inject {
        let from = topo.id(&i.from)?;
        let to = i.to.as_deref().map(|n| topo.id(n)).transpose()?;
        let packet = crafted(i, v)?;
        ops.push(SimOp::Inject { from, to, packet });
    }
    match ops.len() {
        1 => Ok(ops.remove(0)),
        0 => Err("no operation".to_owned()),
        n => Err(format!("{n} operations in one [[op]]: split them")),
    }
}

/// Runs one variant of a scenario and prints its log.
fn run(s: &Scenario, v: Variant) -> Result<String, String> {
    let topo = Topology::new(s)?;
    let mut sim = Simulation::new(s.seed);
    sim.log_sends(s.log_sends);
    sim.log_receives(s.log_receives);
    sim.capture_packets(s.capture);
    if let Some(l) = &s.link {
        sim.set_default_link(link(l)?);
    }
    for (i, o) in s.ops.iter().enumerate() {
        let ctx = |e: String| format!("op {} (at {}): {e}", i + 1, o.at);
        let simop = op(o, v, &topo).map_err(ctx)?;
        let first = timestamp(&o.at).map_err(ctx)?;
        let times = match (&o.every, &o.until) {
            (None, None) => vec![first],
            (Some(every), Some(until)) => {
                let every = duration(every).map_err(ctx)?;
                let until = timestamp(until).map_err(ctx)?;
                if every.is_zero() {
                    return Err(ctx("every = 0".to_owned()));
                }
                let mut t = first;
                let mut times = Vec::new();
                while t <= until {
                    times.push(t);
                    t = t + every;
                }
                times
            }
            _ => return Err(ctx("every and until go together".to_owned())),
        };
        for t in times {
            sim.schedule(t, simop.clone());
        }
    }
    for &i in &topo.order {
        let n = &s.nodes[i];
        let spec = node(n, v, &topo)?;
        if let Some(start) = &n.start {
            sim.run_until(timestamp(start)?);
        }
        sim.add_node(spec);
    }
    sim.run_until(timestamp(&s.end)?);
    let mut out = String::new();
    let _ = writeln!(out, "# {} [{}]", s.title, v.name);
    let _ = write!(out, "{}", sim.log());
    Ok(out)
}

// --- comparing ---

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scenarios")
}

fn load(dir: &Path) -> Result<Scenario, String> {
    let path = dir.join("scenario.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn variants(s: &Scenario) -> Result<Vec<Variant>, String> {
    match &s.variants {
        None => Ok(vec![SINGLE]),
        Some(names) => names
            .iter()
            .map(|n| {
                VARIANTS
                    .iter()
                    .copied()
                    .find(|v| v.name == n)
                    .ok_or_else(|| format!("unknown variant {n:?}"))
            })
            .collect(),
    }
}

/// The first difference between two logs, shown with a line of context.
fn difference(expected: &str, actual: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let at = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let mut msg = format!(
        "first difference at line {} ({} lines expected, {} printed)\n",
        at + 1,
        e.len(),
        a.len()
    );
    if at > 0 {
        let _ = writeln!(msg, "    {}", e[at - 1]);
    }
    let _ = writeln!(msg, "  - {}", e.get(at).unwrap_or(&"<end of file>"));
    let _ = writeln!(msg, "  + {}", a.get(at).unwrap_or(&"<end of log>"));
    Some(msg)
}

/// Runs every scenario whose directory name starts with `prefix`, and
/// compares (or, with VRRP_SIM_BLESS set, rewrites) its logs. Returns how
/// many logs were checked.
fn check(prefix: &str) -> usize {
    let bless = std::env::var_os(BLESS).is_some();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    dirs.sort();
    let mut failures = Vec::new();
    let mut checked = 0;
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let scenario = match load(dir) {
            Ok(s) => s,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        if let Some(test) = name.strip_prefix("unh-")
            && let Some(number) = test.split('-').next()
        {
            let number = number.trim_end_matches(char::is_alphabetic);
            let cited = format!("Test VRRP.{number}:");
            let reference = scenario.reference.as_deref().unwrap_or("");
            if !reference.contains(&cited) {
                failures.push(format!("{name}: the reference must cite {cited:?}"));
            }
        }
        assert!(!scenario.purpose.trim().is_empty(), "{name}: no purpose");
        let vs = match variants(&scenario) {
            Ok(vs) => vs,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        // Every expected log belongs to a variant that runs.
        for f in std::fs::read_dir(dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|x| x == "log")
                && !vs
                    .iter()
                    .any(|v| f.file_stem().is_some_and(|s| s == v.name))
            {
                failures.push(format!("{}: no variant runs it", f.display()));
            }
        }
        for v in vs {
            let path = dir.join(format!("{}.log", v.name));
            let actual = match run(&scenario, v) {
                Ok(a) => a,
                Err(e) => {
                    failures.push(format!("{name} [{}]: {e}", v.name));
                    continue;
                }
            };
            checked += 1;
            if bless {
                std::fs::write(&path, &actual).unwrap();
                continue;
            }
            match std::fs::read_to_string(&path) {
                Err(_) => failures.push(format!(
                    "{}: missing (run with {BLESS}=1 to write it, then review it)",
                    path.display()
                )),
                Ok(expected) => {
                    if let Some(d) = difference(&expected, &actual) {
                        failures.push(format!("{}: {d}", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the {prefix}* scenarios differ or fail \
         (if the change is deliberate: {BLESS}=1 rewrites them):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 0, "no scenario starts with {prefix}");
    checked
}

#[test]
fn unh_group_2_state_transition_diagram() {
    check("unh-2.");
}

#[test]
fn unh_group_3_parameters_per_virtual_router() {
    check("unh-3.");
}

#[test]
fn unh_group_4_transmission_and_reception() {
    check("unh-4.");
}

#[test]
fn simulator_scenarios() {
    check("sim-");
}

#[test]
fn every_scenario_directory_is_run_by_a_test() {
    for e in std::fs::read_dir(scenarios_dir()).unwrap() {
        let e = e.unwrap();
        if !e.file_type().unwrap().is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            ["unh-2.", "unh-3.", "unh-4.", "sim-"]
                .iter()
                .any(|p| name.starts_with(p)),
            "{name} is not run by any test"
        );
    }
}

#[test]
fn a_changed_line_fails_the_comparison() {
    let dir = scenarios_dir().join("unh-2.3-master-down");
    let s = load(&dir).unwrap();
    let log = run(&s, VARIANTS[1]).unwrap();
    assert_eq!(difference(&log, &log), None);
    let changed = log.replacen("master down", "master gone", 1);
    let d = difference(&log, &changed).unwrap();
    assert!(d.contains("- ") && d.contains("master gone"), "{d}");
    let shorter: String = log.lines().take(3).map(|l| format!("{l}\n")).collect();
    assert!(difference(&log, &shorter).unwrap().contains("<end of log>"));
    // The same scenario prints the same log every time.
    assert_eq!(run(&s, VARIANTS[1]).unwrap(), log);
}

#[test]
fn durations_parse_in_their_units() {
    assert_eq!(duration("1s"), Ok(Duration::from_secs(1)));
    assert_eq!(duration("3.5s"), Ok(Duration::from_millis(3500)));
    assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(duration("100us"), Ok(Duration::from_micros(100)));
    assert!(duration("5").is_err());
    assert!(duration("5h").is_err());
    assert!(duration("-1s").is_err());
    assert!(centisecs("15ms").is_err(), "not whole centiseconds");
}
