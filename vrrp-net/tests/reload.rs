//! Reconfiguring a running driver: an unchanged instance keeps its state
//! and addresses without a single transition, a changed one restarts, a
//! new one starts, a removed one stops and releases its address; a
//! configuration naming a missing interface changes nothing.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{has_address, join};
use vrrp_core::{Centisecs, InstanceConfig, Priority, State, Version, VirtualAddress, Vrid};
use vrrp_net::driver::{DriverConfig, InstanceSpec, Vip, spawn};
use vrrp_net::testnet::Lan;

fn spec(name: &str, vrid: u8, prio: u8, vip: &str) -> Result<InstanceSpec> {
    let any: IpAddr = "0.0.0.0".parse()?;
    let config = InstanceConfig::new(Vrid::new(vrid).context("vrid")?, Version::V3, any)
        .with_priority(Priority::new(prio))
        .with_interval(Centisecs::new(5));
    let mut s = InstanceSpec::new(name, "eth0", config);
    s.vips.push(Vip::new(VirtualAddress {
        addr: vip.parse()?,
        prefix_len: 32,
    }));
    Ok(s)
}

async fn wait_master(handle: &vrrp_net::driver::VrrpHandle, name: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if handle
            .snapshot()
            .instances
            .iter()
            .any(|i| i.name == name && i.state == State::Master)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("{name} never became master: {:?}", handle.snapshot())
}

#[test]
fn reload_keeps_unchanged_instances_and_applies_the_rest() -> Result<()> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    let before = DriverConfig {
        instances: vec![
            spec("keep", 1, 200, "192.0.2.201")?,
            spec("change", 2, 200, "192.0.2.202")?,
            spec("drop", 3, 200, "192.0.2.203")?,
        ],
        sync_groups: vec![],
        ..DriverConfig::default()
    };
    let after = DriverConfig {
        instances: vec![
            spec("keep", 1, 200, "192.0.2.201")?,
            spec("change", 2, 150, "192.0.2.202")?,
            spec("new", 4, 200, "192.0.2.204")?,
        ],
        sync_groups: vec![],
        ..DriverConfig::default()
    };
    let mut broken = after.clone();
    broken.instances.push(InstanceSpec {
        interface: "nosuch0".into(),
        ..spec("bad", 5, 100, "192.0.2.205")?
    });

    let events = join(r1.spawn(move || async move {
        let handle = spawn(before).await?;
        let mut events = handle.subscribe();
        for name in ["keep", "change", "drop"] {
            wait_master(&handle, name).await?;
        }
        while events.try_recv().is_ok() {}

        ensure!(
            handle.reconfigure(broken).await.is_err(),
            "a broken configuration is refused"
        );
        let summary = handle.reconfigure(after).await?;
        ensure!(summary.unchanged == vec!["keep".to_string()], "{summary:?}");
        ensure!(
            summary.restarted == vec!["change".to_string()],
            "{summary:?}"
        );
        ensure!(
            summary.added == vec!["new".to_string()] && summary.removed == vec!["drop".to_string()],
            "{summary:?}"
        );
        wait_master(&handle, "change").await?;
        wait_master(&handle, "new").await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            seen.push((e.instance, e.to));
        }
        handle.shutdown().await?;
        Ok(seen)
    }))?;
    ensure!(
        events.iter().all(|(name, _)| name != "keep"),
        "the unchanged instance never moved: {events:?}"
    );
    ensure!(
        events.contains(&("drop".to_string(), State::Initialize)),
        "{events:?}"
    );
    ensure!(
        events.contains(&("new".to_string(), State::Master)),
        "{events:?}"
    );
    ensure!(
        !has_address(r1, "192.0.2.203")?,
        "the removed instance released its VIP"
    );
    Ok(())
}

#[test]
fn unchanged_instance_keeps_its_address_through_a_reload() -> Result<()> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    let cfg = DriverConfig {
        instances: vec![spec("keep", 9, 200, "192.0.2.209")?],
        sync_groups: vec![],
        ..DriverConfig::default()
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let task = r1.spawn(move || async move {
        let handle = spawn(cfg.clone()).await?;
        wait_master(&handle, "keep").await?;
        let _ = ready_tx.send(());
        let _ = go_rx.await;
        let summary = handle.reconfigure(cfg).await?;
        let _ = ready_tx.send(());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let snap = handle.snapshot();
        handle.shutdown().await?;
        Ok((summary, snap))
    });
    ready_rx.recv_timeout(Duration::from_secs(10))?;
    ensure!(has_address(r1, "192.0.2.209")?);
    let _ = go_tx.send(());
    ready_rx.recv_timeout(Duration::from_secs(10))?;
    ensure!(
        has_address(r1, "192.0.2.209")?,
        "still there right after the reload"
    );
    let (summary, snap) = join(task)?;
    ensure!(summary.unchanged == vec!["keep".to_string()], "{summary:?}");
    ensure!(
        snap.instances[0].stats.transitions == 2,
        "init->backup->master only: {:?}",
        snap.instances[0].stats
    );
    Ok(())
}
