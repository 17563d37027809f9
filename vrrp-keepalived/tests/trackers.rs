//! Tracked files and scripts through the real health-check runner: a file
//! change is reported within milliseconds (inotify, no polling), scripts
//! follow keepalived's verdict rules, and re-applying a configuration (a
//! reload) keeps every state, so new instances start from it.

use std::path::Path;
use std::time::{Duration, Instant};

use healthcheck::{Runner, RunnerConfig};
use tokio_util::sync::CancellationToken;
use vrrp_core::{InstanceConfig, TrackConfig, TrackId, Version, Vrid};
use vrrp_keepalived::{Command, FileSpec, FileUse, ScriptSpec, TrackStatus, TrackUpdate, Trackers};
use vrrp_net::driver::{DriverConfig, InstanceSpec};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vk-trackers-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

fn file_spec(path: &Path, weight: i32, base: u32) -> FileSpec {
    let mut n = base;
    FileSpec {
        path: path.to_owned(),
        init: None,
        uses: vec![FileUse::new(weight, false, |_| {
            n += 1;
            TrackId(n)
        })],
    }
}

async fn next(t: &mut Trackers) -> TrackUpdate {
    tokio::time::timeout(Duration::from_secs(5), t.next())
        .await
        .expect("an update within 5 s")
}

fn instance(tracks: Vec<(TrackId, TrackConfig, bool)>) -> DriverConfig {
    let config = InstanceConfig::new(
        Vrid::new(1).expect("vrid"),
        Version::V3,
        "0.0.0.0".parse().expect("ip"),
    );
    let mut spec = InstanceSpec::new("VI_1", "eth0", config);
    spec.tracks = tracks;
    DriverConfig {
        instances: vec![spec],
        ..DriverConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_change_is_reported_at_once_and_a_reload_keeps_the_fault() {
    let d = dir("file");
    let path = d.join("maintenance");
    std::fs::write(&path, "0\n").expect("write");
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let mut trackers = Trackers::new(runner.handle());
    // Weight 0: any number but 0 puts the instance in FAULT.
    let spec = file_spec(&path, 0, 100);
    let fault = spec.uses[0].fault;
    trackers
        .apply(&[], std::slice::from_ref(&spec))
        .await
        .expect("apply");
    assert_eq!(
        trackers.statuses(),
        vec![TrackStatus::File {
            path: path.clone(),
            value: Some(0)
        }],
        "read before apply returns"
    );
    trackers.resend_all();
    // Drain the start-up reports: everything at rest, no fault.
    let mut at_rest = Vec::new();
    while let Ok(u) = tokio::time::timeout(Duration::from_millis(300), trackers.next()).await {
        at_rest.push(u);
    }
    assert!(
        at_rest.contains(&TrackUpdate {
            id: fault,
            up: true
        }),
        "{at_rest:?}"
    );

    let written = Instant::now();
    std::fs::write(&path, "1\n").expect("write");
    let u = next(&mut trackers).await;
    assert_eq!(
        u,
        TrackUpdate {
            id: fault,
            up: false
        }
    );
    let took = written.elapsed();
    assert!(
        took < vrrp_keepalived::track::FILE_RECHECK / 4,
        "inotify, not the {:?} safety net: {took:?}",
        vrrp_keepalived::track::FILE_RECHECK
    );

    // A reload with the same file (and a new instance using it) starts
    // from the fault, not from "up".
    let spec2 = {
        let mut s = spec.clone();
        let mut n = 200;
        s.uses.push(FileUse::new(0, false, |_| {
            n += 1;
            TrackId(n)
        }));
        s
    };
    trackers
        .apply(&[], std::slice::from_ref(&spec2))
        .await
        .expect("apply");
    trackers.retire();
    let mut config = instance(spec2.uses[1].tracks());
    trackers.initial_states(&mut config);
    let new_fault = spec2.uses[1].fault;
    let start = config.instances[0]
        .tracks
        .iter()
        .find(|t| t.0 == new_fault)
        .map(|t| t.2);
    assert_eq!(start, Some(false), "the new instance starts in FAULT");
    assert_eq!(
        trackers.statuses(),
        vec![TrackStatus::File {
            path: path.clone(),
            value: Some(1)
        }]
    );
    trackers.shutdown();
    runner.shutdown().await;
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_file_reports_its_contribution_in_binary() {
    let d = dir("weighted");
    let path = d.join("load");
    std::fs::write(&path, "3").expect("write");
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let mut trackers = Trackers::new(runner.handle());
    let spec = file_spec(&path, -10, 0);
    let u = spec.uses[0].clone();
    trackers
        .apply(&[], std::slice::from_ref(&spec))
        .await
        .expect("apply");
    let mut config = instance(u.tracks());
    trackers.initial_states(&mut config);
    // 3 x -10 = -30: down-bits 1, 2, 3 and 4 (2+4+8+16) are down.
    let delta: i32 = config.instances[0]
        .tracks
        .iter()
        .map(|(_, c, up)| match (c.weight, up) {
            (w, true) if w > 0 => w,
            (w, false) if w < 0 => w,
            _ => 0,
        })
        .sum();
    assert_eq!(delta, -30);
    trackers.shutdown();
    runner.shutdown().await;
    let _ = std::fs::remove_dir_all(&d);
}

fn script(name: &str, flag: &Path, rise: u32, fall: u32, init_fail: bool) -> ScriptSpec {
    ScriptSpec {
        id: TrackId(7),
        name: name.into(),
        command: Command::new(["/usr/bin/test", "-e", flag.to_str().expect("utf-8")]),
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
        rise,
        fall,
        init_fail,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_follow_keepalived_and_keep_their_verdict_across_a_reload() {
    let d = dir("script");
    let flag = d.join("ok");
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let mut trackers = Trackers::new(runner.handle());
    // No init_fail: undecided until the first run, which decides at once
    // even with fall 3.
    let s = script("chk", &flag, 2, 3, false);
    trackers
        .apply(std::slice::from_ref(&s), &[])
        .await
        .expect("apply");
    let mut config = instance(vec![(s.id, TrackConfig::weight(0), true)]);
    trackers.initial_states(&mut config);
    assert!(
        config.instances[0].tracks[0].2,
        "undecided: left as planned"
    );
    assert_eq!(
        next(&mut trackers).await,
        TrackUpdate {
            id: s.id,
            up: false
        }
    );
    // rise 2: two good runs in a row to come up.
    std::fs::write(&flag, b"").expect("flag");
    let up_at = Instant::now();
    assert_eq!(
        next(&mut trackers).await,
        TrackUpdate { id: s.id, up: true }
    );
    assert!(up_at.elapsed() >= Duration::from_millis(50), "two runs");
    // A reload with the same script: the same check, the verdict stays.
    trackers
        .apply(std::slice::from_ref(&s), &[])
        .await
        .expect("apply");
    trackers.retire();
    let mut config = instance(vec![(s.id, TrackConfig::weight(0), false)]);
    trackers.initial_states(&mut config);
    assert!(config.instances[0].tracks[0].2, "up, as it was");
    assert_eq!(
        trackers.statuses(),
        vec![TrackStatus::Script {
            name: "chk".into(),
            up: Some(true)
        }]
    );
    // init_fail: down from the start, before any run.
    let f = ScriptSpec {
        name: "slow".into(),
        id: TrackId(8),
        interval: Duration::from_secs(60),
        ..script("slow", &flag, 1, 1, true)
    };
    trackers
        .apply(&[s.clone(), f.clone()], &[])
        .await
        .expect("apply");
    let mut config = instance(vec![(f.id, TrackConfig::weight(0), true)]);
    trackers.initial_states(&mut config);
    assert!(!config.instances[0].tracks[0].2, "init_fail starts down");
    trackers.shutdown();
    runner.shutdown().await;
    let _ = std::fs::remove_dir_all(&d);
}
