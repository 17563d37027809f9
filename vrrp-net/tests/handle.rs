//! The driver's handle, on a namespace LAN: clones control one driver (a
//! tracked object reported from a clone in another task moves the
//! priority every clone sees); commands that cannot apply (priority 0, an
//! unknown instance, an object no instance tracks) are refused and change
//! nothing; the first `subscribe_from_start` on any clone gets the
//! start-up transitions; `spawn_until` stops gracefully when its future
//! completes: the stop's transitions arrive before the stream closes,
//! every clone's `wait` returns `Ok`, and later commands say the driver
//! has stopped.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::state_file;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use vrrp_core::{
    Centisecs, ConfigError, InstanceConfig, Priority, RouterError, State, TrackConfig, TrackId,
};
use vrrp_net::driver::{
    DriverConfig, DriverError, InstanceSpec, StateEvent, TrackKey, spawn_until,
};
use vrrp_net::testnet::Lan;

const T: Duration = Duration::from_secs(10);
const CHECK: TrackId = TrackId(7);

/// The next event matching `want`, within [`T`].
async fn next_event(
    events: &mut broadcast::Receiver<StateEvent>,
    want: impl Fn(&StateEvent) -> bool,
) -> Result<StateEvent> {
    tokio::time::timeout(T, async {
        loop {
            match events.recv().await {
                Ok(e) if want(&e) => return Ok(e),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => bail!("the driver stopped"),
            }
        }
    })
    .await
    .context("no such event in time")?
}

async fn scenario() -> Result<()> {
    let config = InstanceConfig::v3("51".parse()?)
        .priority("150".parse()?)
        .advert_interval(Centisecs::new(10))
        .virtual_address("192.0.2.151/32".parse()?)
        .build()?;
    let spec =
        InstanceSpec::new("VI_1", "eth0", config).track(CHECK, TrackConfig::weight(-60), true);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = spawn_until(
        DriverConfig {
            instances: vec![spec],
            state_file: Some(state_file("handle")),
            ..DriverConfig::default()
        },
        async move {
            let _ = stopped.await;
        },
    )
    .await?;
    let controller = handle.clone();
    let mut from_start = controller.subscribe_from_start();
    let first = next_event(&mut from_start, |_| true).await?;
    ensure!(first.to == State::Backup, "start-up first: {first:?}");
    next_event(&mut from_start, |e| e.to == State::Master).await?;
    // The start-up events went to the first caller, whichever clone.
    let mut later = handle.subscribe_from_start();
    ensure!(matches!(later.try_recv(), Err(TryRecvError::Empty)));

    let before = handle.snapshot();
    match handle.set_priority("VI_1", Priority::STOP).await {
        Err(DriverError::Config {
            instance,
            error: RouterError::Config(ConfigError::ZeroPriority),
        }) if instance == "VI_1" => {}
        other => bail!("priority 0: {other:?}"),
    }
    match handle.set_priority("VI_typo", Priority::new(120)).await {
        Err(DriverError::NoSuchInstance(name)) if name == "VI_typo" => {}
        other => bail!("unknown instance: {other:?}"),
    }
    match handle.set_track(TrackId(999), false).await {
        Err(DriverError::UnknownTrack(TrackKey::User(TrackId(999)))) => {}
        other => bail!("unknown tracked object: {other:?}"),
    }
    let status = handle.snapshot().instances;
    ensure!(
        status[0].priority == before.instances[0].priority && status[0].state == State::Master,
        "refused commands changed nothing: {status:?}"
    );

    // A clone in another task reports the object down: the priority
    // drops by the weight, for every clone to see.
    let reporter = handle.clone();
    tokio::spawn(async move { reporter.set_track(CHECK, false).await }).await??;
    let mut watch = handle.watch();
    tokio::time::timeout(
        T,
        watch.wait_for(|s| s.instances[0].priority == Priority::new(90)),
    )
    .await
    .context("priority 90")??;
    ensure!(controller.snapshot().instances[0].priority == Priority::new(90));

    // The stop future completes: a graceful stop.
    let _ = stop.send(());
    let last = next_event(&mut later, |e| e.to == State::Initialize).await?;
    ensure!(last.from == State::Master, "{last:?}");
    let closed = tokio::time::timeout(T, later.recv()).await?;
    ensure!(matches!(closed, Err(RecvError::Closed)), "{closed:?}");
    tokio::time::timeout(T, controller.wait()).await??;
    handle.wait().await?;
    ensure!(handle.is_stopped() && controller.is_stopped());
    match controller.set_priority("VI_1", Priority::new(100)).await {
        Err(DriverError::Stopped) => {}
        other => bail!("after the stop: {other:?}"),
    }
    Ok(())
}

#[test]
fn clones_control_one_driver_that_stops_with_its_future() -> Result<()> {
    let lan = Lan::new(1)?;
    lan.router(1)?.ns().run(scenario)?
}
