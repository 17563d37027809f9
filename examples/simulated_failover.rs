//! A three-router VRRPv3 failover on the simulated LAN, printed as a
//! timeline: election, master crash, failover, recovery with preemption,
//! graceful shutdown. No network, no root: `cargo run --example
//! simulated_failover`.

use std::time::Duration;

use anyhow::{Context, Result};
use vrrp_core::sim::{LogKind, NodeId, NodeSpec, Simulation};
use vrrp_core::{InstanceConfig, Priority, Timestamp, Version, VirtualAddress, Vrid};

fn main() -> Result<()> {
    let vrid = Vrid::new(51).context("vrid")?;
    let vip = VirtualAddress::host("192.0.2.100".parse()?);
    let config = |prio| -> Result<InstanceConfig> {
        Ok(InstanceConfig::new(vrid, Version::V3, "0.0.0.0".parse()?)
            .with_priority(Priority::new(prio))
            .with_address(vip))
    };
    let mut sim = Simulation::new(2026);
    sim.log_sends(false);
    let names = ["r1 (prio 200)", "r2 (prio 150)", "r3 (prio 100)"];
    let r1 = sim.add_node(NodeSpec::new(names[0]).instance(config(200)?));
    let r2 = sim.add_node(NodeSpec::new(names[1]).instance(config(150)?));
    let r3 = sim.add_node(NodeSpec::new(names[2]).instance(config(100)?));
    let name = |n: NodeId| names.get(n.0).copied().unwrap_or("LAN");

    let mut shown = 0;
    let mut show = |sim: &Simulation, title: &str| {
        println!("\n== {title}");
        for e in &sim.log()[shown..] {
            let what = match &e.kind {
                LogKind::StateChanged {
                    from, to, reason, ..
                } => format!("{from} -> {to}  ({reason:?})"),
                LogKind::AddressesAdded { .. } => format!("adds {}", vip.addr),
                LogKind::AddressesRemoved { .. } => format!("removes {}", vip.addr),
                LogKind::Announced { count, .. } => format!("{count} gratuitous ARPs"),
                LogKind::Op(op) => format!("*** {op:?}"),
                _ => continue,
            };
            println!("{:>12}  {:<14} {what}", e.at.to_string(), name(e.node));
        }
        shown = sim.log().len();
        let masters: Vec<&str> = sim.masters(vrid).into_iter().map(name).collect();
        println!(
            "   master now: {masters:?}, {} held by {:?}",
            vip.addr,
            sim.holders(vip.addr)
                .into_iter()
                .map(name)
                .collect::<Vec<_>>()
        );
    };

    sim.run_for(Duration::from_secs(5));
    show(
        &sim,
        "start-up: all three start as backup, the highest priority wins",
    );

    sim.run_until(Timestamp::from_millis(10_250));
    let crashed_at = sim.now();
    sim.crash(r1);
    sim.run_for(Duration::from_secs(5));
    show(&sim, "r1 crashes: r2 takes over after Master_Down_Interval");
    let mdi = sim
        .router(r2)
        .and_then(|r| r.instances().next().map(|(_, i)| i.master_down_interval()));
    if let Some(mdi) = mdi {
        println!("   Master_Down_Interval of r2 = {mdi:?}");
    }
    let took_over = sim
        .log()
        .iter()
        .find(|e| {
            e.node == r2 && e.at > crashed_at && matches!(e.kind, LogKind::StateChanged { .. })
        })
        .map(|e| e.at - crashed_at);
    println!("   failover took {took_over:?} after the crash");

    sim.restart(r1);
    sim.run_for(Duration::from_secs(5));
    show(&sim, "r1 comes back and preempts");

    let stop = sim.now();
    sim.shutdown(r1);
    sim.run_for(Duration::from_secs(2));
    show(
        &sim,
        "r1 shuts down gracefully: priority 0, r2 takes over after Skew_Time",
    );
    let handover = sim
        .log()
        .iter()
        .find(|e| e.node == r2 && e.at > stop && matches!(e.kind, LogKind::StateChanged { .. }))
        .map(|e| e.at - stop);
    println!("   handover took {handover:?}");
    let _ = r3;
    Ok(())
}
