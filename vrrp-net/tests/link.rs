//! Proves `LinkWatcher` and the lookups: link down/up (administrative and
//! carrier loss) and address add/remove are reported by ifindex, and the
//! interface's MAC and index are found by name.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use common::{STEP_TIMEOUT, join};
use vrrp_net::link::{LinkEvent, LinkWatcher, ifindex_of, link_by_index, link_by_name};
use vrrp_net::testnet::Lan;

/// What the watcher thread reports to the test.
type Report = (String, u32);

fn describe(event: &LinkEvent) -> String {
    match event {
        LinkEvent::Up(_) => "up".into(),
        LinkEvent::Down(_) => "down".into(),
        LinkEvent::Removed { .. } => "removed".into(),
        LinkEvent::AddressAdded(a) => format!("add {}", a.addr),
        LinkEvent::AddressRemoved(a) => format!("del {}", a.addr),
        _ => "other".into(),
    }
}

#[test]
fn lookups_find_eth0() -> Result<()> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    let mac = r1.mac();
    join(r1.spawn(move || async move {
        let ifindex = ifindex_of("eth0")?;
        let link = link_by_name("eth0").await?.context("eth0")?;
        ensure!(
            link.ifindex == ifindex && link.mac == Some(mac) && link.is_up(),
            "{link:?}"
        );
        let same = link_by_index(ifindex).await?.context("by index")?;
        ensure!(same.name == "eth0", "{same:?}");
        ensure!(link_by_name("nosuch0").await?.is_none());
        Ok(())
    }))
}

#[test]
fn link_and_address_events_are_seen() -> Result<()> {
    let lan = Lan::new(2)?;
    let r1 = lan.router(1)?;
    let (tx, rx) = mpsc::channel::<Report>();
    let watcher = r1.spawn(move || async move {
        let mut watcher = LinkWatcher::new().await?;
        let ifindex = ifindex_of("eth0")?;
        ensure!(
            watcher.link(ifindex).is_some_and(|l| l.is_up()),
            "eth0 not up at start"
        );
        tx.send(("ready".into(), ifindex))
            .map_err(|_| anyhow!("test gone"))?;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), watcher.next())
                .await
                .context("watcher idle for 10 s")??;
            if event.ifindex() == ifindex && tx.send((describe(&event), event.ifindex())).is_err() {
                return Ok(());
            }
        }
    });
    let expect = |wanted: &str| -> Result<()> {
        let deadline = std::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let (what, _) = rx
                .recv_timeout(left)
                .map_err(|e| anyhow!("waiting for {wanted:?}: {e}"))?;
            if what == wanted {
                return Ok(());
            }
        }
    };
    expect("ready")?;
    r1.set_link(false)?;
    expect("down")?;
    r1.set_link(true)?;
    expect("up")?;
    r1.set_carrier(false)?;
    expect("down")?;
    r1.set_carrier(true)?;
    expect("up")?;
    r1.ns()
        .ip(&["addr", "add", "192.0.2.77/32", "dev", "eth0"])?;
    expect("add 192.0.2.77")?;
    r1.ns()
        .ip(&["addr", "del", "192.0.2.77/32", "dev", "eth0"])?;
    expect("del 192.0.2.77")?;
    r1.ns()
        .ip(&["addr", "add", "2001:db8::77/64", "dev", "eth0", "nodad"])?;
    expect("add 2001:db8::77")?;
    drop(rx);
    // Trigger one more event so the watcher notices the closed channel.
    r1.ns()
        .ip(&["addr", "del", "2001:db8::77/64", "dev", "eth0"])?;
    join(watcher)
}
