//! keepalived's largest published IPVS case, generated: 2,277 virtual
//! servers with 37,205 real servers (TCP, UDP and firewall-mark services,
//! IPv4 and IPv6, 10 to 20 real servers each), programmed at start-up, then
//! reloaded without change, then reloaded with 1 % of the real servers
//! changed (a third re-weighted, a third removed, a third added). Reloads
//! are synced incrementally (`sync_changed`, what a daemon does on SIGHUP);
//! the full read-and-repair `sync` (the periodic reconciliation) is timed
//! after each of them too.
//!
//! ```text
//! ipvs_scale [--services 2277] [--reals 37205] [--kernel] [--rounds 3]
//! ipvs_scale --calibrate
//! ```
//!
//! Without `--kernel` the table is a `MemoryIpvs` (the planning and the
//! diff alone); with it, the kernel's IPVS table through `IpvsClient` (run
//! it in the VM: `lvs/vm/run-vm-tests.sh --scale`). Each step prints the
//! CPU time this thread spent (`CLOCK_THREAD_CPUTIME_ID`: user and kernel
//! time, to the nanosecond), the writes it issued
//! and the writes it needed. The control is measured in the same run: the
//! CPU time of merely cloning the model and walking every real server.
//! Memory: RSS growth from building the model, then the balancer, then the
//! start-up sync (the ownership record, the compact copy of what was
//! applied, the report of 39,482 changes, and in memory mode the table).
//!
//! `--calibrate` times a fixed integer loop and a fixed number of system
//! calls; run on the host and in the VM, the ratios are the emulation's
//! slowdown to quote next to the VM's figures.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use lvs::{
    AddressFamily, Destination, ForwardMethod, Ipvs, IpvsClient, LoadBalancer, MemoryIpvs,
    Persistence, RealServer, Scheduler, Service, ServiceKey, VirtualServer,
};

type AnyError = Box<dyn std::error::Error>;

struct Args(Vec<String>);

impl Args {
    fn value<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, AnyError> {
        match self.0.iter().position(|a| a == name) {
            Some(i) => self
                .0
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("bad value for {name}").into()),
            None => Ok(default),
        }
    }

    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
}

/// A small deterministic generator, so every run programs the same table.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

/// Real servers per service: 10 to 20 each, `reals` in all.
fn counts(services: usize, reals: usize, rng: &mut Lcg) -> Result<Vec<usize>, AnyError> {
    if reals < services * 10 || reals > services * 20 {
        return Err(format!("{reals} real servers cannot be 10-20 each over {services}").into());
    }
    let mut counts: Vec<usize> = (0..services).map(|_| 10 + rng.next(11) as usize).collect();
    let mut total: usize = counts.iter().sum();
    while total != reals {
        let i = rng.next(services as u64) as usize;
        let Some(c) = counts.get_mut(i) else { continue };
        if total < reals && *c < 20 {
            *c += 1;
            total += 1;
        } else if total > reals && *c > 10 {
            *c -= 1;
            total -= 1;
        }
    }
    Ok(counts)
}

fn real_addr(service: usize, index: usize, v6: bool, port: u16) -> SocketAddr {
    // Documentation ranges only; the VM never sends to them.
    let host = (service * 37 + index) as u32;
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            1,
            0,
            0,
            (host >> 16) as u16,
            host as u16,
        ))
    } else {
        let net = if host & 0x100 == 0 {
            [198, 51, 100]
        } else {
            [203, 0, 113]
        };
        // 2 × 254 hosts, and the port tells servers of one service apart.
        IpAddr::V4(Ipv4Addr::new(
            net[0],
            net[1],
            net[2],
            (host % 254 + 1) as u8,
        ))
    };
    let port = if port == 0 {
        0
    } else {
        10_000 + (host / 508 % 50_000) as u16 + index as u16
    };
    SocketAddr::new(ip, port)
}

fn model(services: usize, reals: usize) -> Result<Vec<VirtualServer>, AnyError> {
    let mut rng = Lcg(2277);
    let counts = counts(services, reals, &mut rng)?;
    let mut out = Vec::with_capacity(services);
    for (i, count) in counts.iter().enumerate() {
        let v6 = i % 10 == 9;
        let vip = if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, (i + 1) as u16))
        } else {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i % 250 + 1) as u8))
        };
        let port = 1000 + (i / 250) as u16;
        let family = if v6 {
            AddressFamily::Ipv6
        } else {
            AddressFamily::Ipv4
        };
        let key = match i % 3 {
            0 => ServiceKey::tcp(SocketAddr::new(vip, port)),
            1 => ServiceKey::udp(SocketAddr::new(vip, port)),
            _ => ServiceKey::fwmark(family, (i + 1) as u32),
        };
        let scheduler = [Scheduler::WLC, Scheduler::WRR, Scheduler::RR][i % 3].clone();
        let mut service = Service::new(key, scheduler);
        if i % 4 == 0 {
            service = service.with_persistence(Persistence::new(Duration::from_secs(300)));
        }
        let forward = [
            ForwardMethod::Route,
            ForwardMethod::Masquerade,
            ForwardMethod::Tunnel,
        ][i % 3];
        let rs_port = if matches!(key, ServiceKey::Fwmark { .. }) {
            0
        } else {
            80
        };
        let mut vs = VirtualServer::new(service);
        for j in 0..*count {
            let dest = Destination::new(real_addr(i, j, v6, rs_port), forward)
                .with_weight(1 + (j % 5) as u32);
            let mut rs = RealServer::new(dest);
            if j % 7 == 3 {
                rs = rs.inhibit_on_failure();
            }
            vs = vs.with_real_server(rs);
        }
        out.push(vs);
    }
    Ok(out)
}

/// Kernel writes that turn `old` into `new` (all real servers up), counted
/// from the two models alone: destinations added, removed or edited.
fn needed_writes(old: &[VirtualServer], new: &[VirtualServer]) -> usize {
    let mut needed = 0;
    for (a, b) in old.iter().zip(new) {
        let before: std::collections::BTreeMap<SocketAddr, Destination> = a
            .real_servers
            .iter()
            .map(|rs| (rs.destination.addr, rs.destination))
            .collect();
        let after: std::collections::BTreeMap<SocketAddr, Destination> = b
            .real_servers
            .iter()
            .map(|rs| (rs.destination.addr, rs.destination))
            .collect();
        needed += before.keys().filter(|k| !after.contains_key(k)).count();
        needed += after
            .iter()
            .filter(|(k, d)| before.get(k) != Some(d))
            .count();
    }
    needed
}

/// 1 % of the real servers changed: a third re-weighted, a third removed, a
/// third added. Returns the new model and the writes it needs.
fn change_one_percent(model: &[VirtualServer], reals: usize) -> (Vec<VirtualServer>, usize) {
    let mut out = model.to_vec();
    let target = reals / 100;
    let (mut reweighted, mut removed, mut added) = (0, 0, 0);
    let mut rng = Lcg(37205);
    let services = out.len() as u64;
    while reweighted + removed + added < target {
        let i = rng.next(services) as usize;
        let Some(vs) = out.get_mut(i) else { continue };
        match (reweighted + removed + added) % 3 {
            0 => {
                if let Some(rs) = vs
                    .real_servers
                    .iter_mut()
                    .find(|rs| rs.destination.weight < 100)
                {
                    rs.destination.weight += 100;
                    reweighted += 1;
                }
            }
            1 => {
                if vs.real_servers.len() > 10 {
                    vs.real_servers.pop();
                    removed += 1;
                }
            }
            _ => {
                let v6 = matches!(vs.service.key.family(), AddressFamily::Ipv6);
                let port = vs
                    .real_servers
                    .first()
                    .map_or(0, |rs| rs.destination.addr.port());
                let forward = vs
                    .real_servers
                    .first()
                    .map_or(ForwardMethod::Route, |rs| rs.destination.forward);
                let fresh = real_addr(i + 500_000, added, v6, port);
                if vs
                    .real_servers
                    .iter()
                    .all(|rs| rs.destination.addr != fresh)
                {
                    vs.real_servers
                        .push(RealServer::new(Destination::new(fresh, forward)));
                    added += 1;
                }
            }
        }
    }
    let needed = needed_writes(model, &out);
    (out, needed)
}

/// CPU time of this thread (user + system), nanosecond resolution.
fn cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Counts the calls that write, whatever the table.
struct Counting<I> {
    inner: I,
    writes: usize,
    reads: usize,
}

impl<I: Ipvs> Ipvs for Counting<I> {
    fn services(&mut self) -> Result<Vec<Service>, lvs::Error> {
        self.reads += 1;
        self.inner.services()
    }
    fn destinations(&mut self, s: &ServiceKey) -> Result<Vec<lvs::DestinationStatus>, lvs::Error> {
        self.reads += 1;
        self.inner.destinations(s)
    }
    fn add_service(&mut self, s: &Service) -> Result<(), lvs::Error> {
        self.writes += 1;
        self.inner.add_service(s)
    }
    fn update_service(&mut self, s: &Service) -> Result<(), lvs::Error> {
        self.writes += 1;
        self.inner.update_service(s)
    }
    fn delete_service(&mut self, s: &ServiceKey) -> Result<(), lvs::Error> {
        self.writes += 1;
        self.inner.delete_service(s)
    }
    fn add_destination(&mut self, s: &ServiceKey, d: &Destination) -> Result<(), lvs::Error> {
        self.writes += 1;
        self.inner.add_destination(s, d)
    }
    fn update_destination(&mut self, s: &ServiceKey, d: &Destination) -> Result<(), lvs::Error> {
        self.writes += 1;
        self.inner.update_destination(s, d)
    }
    fn delete_destination(&mut self, s: &ServiceKey, a: SocketAddr) -> Result<(), lvs::Error> {
        self.writes += 1;
        self.inner.delete_destination(s, a)
    }
}

fn run<I: Ipvs>(table: I, args: &Args, label: &str) -> Result<(), AnyError> {
    let services: usize = args.value("--services", 2277)?;
    let reals: usize = args.value("--reals", 37_205)?;
    let rounds: usize = args.value("--rounds", 3)?;
    let rss0 = rss_kib();
    let t = cpu();
    let config = model(services, reals)?;
    let build = cpu() - t;
    let rss_model = rss_kib();
    let objects = config.len() + config.iter().map(|vs| vs.real_servers.len()).sum::<usize>();

    // Control: what merely copying and walking the model costs.
    let t = cpu();
    let copy = config.clone();
    let walked: u64 = copy
        .iter()
        .flat_map(|vs| vs.real_servers.iter())
        .map(|rs| u64::from(rs.destination.weight))
        .sum();
    let control = cpu() - t;
    drop(copy);

    let mut ipvs = Counting {
        inner: table,
        writes: 0,
        reads: 0,
    };
    println!(
        "{label} model: services={} real_servers={} objects={objects} build_ms={} \
         control_clone_and_walk_ms={} (weights {walked})",
        config.len(),
        objects - config.len(),
        ms(build),
        ms(control)
    );
    let t = cpu();
    let mut lb = LoadBalancer::new(config.clone())?;
    let built = cpu() - t;
    let rss_balancer = rss_kib();
    let t = cpu();
    let report = lb.sync_report(&mut ipvs)?;
    let startup = cpu() - t;
    let rss_table = rss_kib();
    println!(
        "{label} startup: writes={} objects={objects} reads={} repairs={} cpu_ms={} \
         (balancer {} + sync {})",
        ipvs.writes,
        ipvs.reads,
        report.repairs,
        ms(built + startup),
        ms(built),
        ms(startup)
    );
    println!(
        "{label} rss_kib: start={rss0} model=+{} balancer=+{} startup_sync=+{} (ownership \
         record, what was applied, the start-up report; with --kernel absent, the in-memory table too)",
        rss_model.saturating_sub(rss0),
        rss_balancer.saturating_sub(rss_model),
        rss_table.saturating_sub(rss_balancer)
    );
    let mut current = config;
    for round in 0..rounds {
        let same = current.clone();
        let (w0, r0) = (ipvs.writes, ipvs.reads);
        let t = cpu();
        lb.reload(same)?;
        lb.sync_changed(&mut ipvs)?;
        let reload = cpu() - t;
        println!(
            "{label} reload_unchanged[{round}]: writes={} reads={} cpu_ms={} control_ms={}",
            ipvs.writes - w0,
            ipvs.reads - r0,
            ms(reload),
            ms(control)
        );
        let (w0, r0) = (ipvs.writes, ipvs.reads);
        let t = cpu();
        let report = lb.sync_report(&mut ipvs)?;
        let full = cpu() - t;
        println!(
            "{label} full_sync_unchanged[{round}]: writes={} repairs={} reads={} cpu_ms={}",
            ipvs.writes - w0,
            report.repairs,
            ipvs.reads - r0,
            ms(full)
        );
        let (changed, needed) = change_one_percent(&current, reals);
        let (w0, r0) = (ipvs.writes, ipvs.reads);
        let t = cpu();
        lb.reload(changed.clone())?;
        lb.sync_changed(&mut ipvs)?;
        let reload = cpu() - t;
        println!(
            "{label} reload_1_percent[{round}]: writes={} needed={needed} reads={} cpu_ms={}",
            ipvs.writes - w0,
            ipvs.reads - r0,
            ms(reload)
        );
        let w0 = ipvs.writes;
        let report = lb.sync_report(&mut ipvs)?;
        println!(
            "{label} full_sync_after_1_percent[{round}]: writes={} repairs={}",
            ipvs.writes - w0,
            report.repairs
        );
        while lb.poll_event().is_some() {}
        current = changed;
    }
    let stats = lb.stats();
    println!(
        "{label} totals: writes={} repairs={} full_syncs={} incremental_syncs={} failures={}",
        stats.writes, stats.repairs, stats.full_syncs, stats.incremental_syncs, stats.failures
    );
    Ok(())
}

/// A fixed amount of integer work and of system calls.
fn calibrate() {
    let t = cpu();
    let mut rng = Lcg(1);
    let mut acc = 0_u64;
    for _ in 0..100_000_000 {
        acc = acc.wrapping_add(rng.next(1 << 20));
    }
    let looped = cpu() - t;
    let t = cpu();
    let mut ok = 0;
    for _ in 0..100_000 {
        ok += usize::from(std::fs::metadata("/").is_ok());
    }
    let calls = cpu() - t;
    println!(
        "calibrate: loop_ms={} syscalls_ms={} (checksum {acc}, {ok} stats)",
        ms(looped),
        ms(calls)
    );
}

fn main() -> Result<(), AnyError> {
    let args = Args(std::env::args().skip(1).collect());
    if args.flag("--calibrate") {
        calibrate();
        return Ok(());
    }
    if args.flag("--kernel") {
        let mut client = IpvsClient::connect()?;
        client.flush()?;
        run(client, &args, "kernel")
    } else {
        run(MemoryIpvs::new(), &args, "memory")
    }
}
