//! A three-router VRRPv3 failover on the simulated LAN, printed as a
//! timeline: election, master crash, failover, recovery with preemption,
//! a one-way link failure (split brain) and its repair, graceful
//! shutdown. No network, no root: `cargo run --example
//! simulated_failover`.

use std::time::Duration;

use anyhow::{Context, Result};
use vrrp_core::sim::{LogKind, NodeSpec, Simulation};
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
    sim.log_receives(false);
    let r1 = sim.add_node(NodeSpec::new("r1").instance(config(200)?));
    let r2 = sim.add_node(NodeSpec::new("r2").instance(config(150)?));
    sim.add_node(NodeSpec::new("r3").instance(config(100)?));

    // Print the state changes, address moves and operations since the
    // last call, each as its line of the log.
    let mut shown = 0;
    let mut show = |sim: &Simulation, title: &str| {
        println!("\n== {title}");
        for e in &sim.log()[shown..] {
            if matches!(
                e.kind,
                LogKind::StateChanged { .. } | LogKind::AddressesAdded { .. } | LogKind::Op(_)
            ) {
                println!("{}", sim.log().line(e));
            }
        }
        shown = sim.log().len();
        let names = |nodes: Vec<_>| -> Vec<&str> {
            nodes.into_iter().filter_map(|n| sim.name(n)).collect()
        };
        println!(
            "   master now: {:?}, {} held by {:?}",
            names(sim.masters(vrid)),
            vip.addr,
            names(sim.holders(vip.addr))
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
    if let Some(mdi) = sim.master_down_interval(r2, vrid) {
        println!("   Master_Down_Interval of r2 = {mdi:?}");
    }
    let took_over = sim.log().became_master(r2, vrid).map(|t| t - crashed_at);
    println!("   failover took {took_over:?} after the crash");

    sim.restart(r1);
    sim.run_for(Duration::from_secs(5));
    show(&sim, "r1 comes back and preempts");

    sim.cut_one_way(r1, r2);
    sim.run_for(Duration::from_secs(5));
    show(
        &sim,
        "r2 stops hearing r1 (one direction only): two masters, a split brain",
    );
    sim.repair_one_way(r1, r2);
    sim.run_for(Duration::from_secs(2));
    show(
        &sim,
        "the link is repaired: r2 hears r1 again and steps down",
    );

    let stop = sim.now();
    sim.shutdown(r1);
    sim.run_for(Duration::from_secs(2));
    show(
        &sim,
        "r1 shuts down gracefully: priority 0, r2 takes over after Skew_Time",
    );
    let handover = sim.log().became_master(r2, vrid).map(|t| t - stop);
    println!(
        "   handover took {handover:?} (Skew_Time of r2 = {:?})",
        sim.skew_time(r2, vrid)
    );
    Ok(())
}
