//! A burst of 200 state changes through the event stream and the notifier
//! runs 200 state scripts and 200 generic `notify` calls, in order, with
//! keepalived's arguments; a sync group's scripts get `GROUP name STATE 0`.

use std::time::Duration;

use tokio::sync::{broadcast, watch};
use vrrp_core::{Priority, Reason, State, Vrid};
use vrrp_keepalived::{
    Command, EventStream, Notifier, NotifyScripts, ScriptQueues, SyncGroup, Translator,
};
use vrrp_net::driver::{Snapshot, StateEvent};

fn change(instance: &str, from: State, to: State, priority: u8) -> StateEvent {
    StateEvent {
        instance: instance.into(),
        vrid: Vrid::new(51).expect("vrid"),
        from,
        to,
        reason: Reason::Startup,
        priority: Priority::new(priority),
        at: Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_changes_make_two_hundred_calls_in_order() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vk-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("log");
    // Each key's scripts write lines that start with the key.
    let scripts = |who: &str| {
        let line =
            |what: &str| Command::shell(format!("echo {who} {what} \"$*\" >> {}", log.display()));
        NotifyScripts {
            master: Some(line("master")),
            backup: Some(line("backup")),
            fault: Some(line("fault")),
            stop: Some(line("stop")),
            deleted: None,
            generic: Some(line("notify")),
        }
    };
    let queues = ScriptQueues::new(Duration::from_secs(5));
    let mut notifier = Notifier::new(queues.clone());
    notifier.configure(
        [
            ("a".to_owned(), scripts("a")),
            ("b".to_owned(), scripts("b")),
        ],
        [("G".to_owned(), scripts("G"))],
    );
    let (tx, rx) = broadcast::channel(1024);
    let (_snap, snap_rx) = watch::channel(Snapshot::default());
    let mut stream = EventStream::new(
        rx,
        snap_rx,
        Translator::new(vec![SyncGroup {
            name: "G".into(),
            members: vec!["a".into(), "b".into()],
        }]),
    );
    // b starts in Backup (its group first, as keepalived), then a goes
    // through 200 changes in a burst, faster than the scripts run.
    tx.send(change("b", State::Initialize, State::Backup, 90))?;
    let mut want_a = Vec::new();
    let mut state = State::Initialize;
    for i in 0..200 {
        let to = if i % 2 == 0 {
            State::Backup
        } else {
            State::Master
        };
        tx.send(change("a", state, to, 100))?;
        let word = if to == State::Master {
            "MASTER"
        } else {
            "BACKUP"
        };
        want_a.push(format!("a {} ", word.to_lowercase()));
        want_a.push(format!("a notify INSTANCE a {word} 100"));
        state = to;
    }
    drop(tx);
    let mut events = 0;
    while let Some(e) = stream.next().await {
        notifier.handle(&e);
        events += 1;
    }
    assert_eq!(events, 202, "200 changes of a, one of b, one of the group");
    assert_eq!(stream.lagged(), 0);
    assert!(
        queues.finish(Duration::from_secs(60)).await,
        "every script ran"
    );
    let got: Vec<String> = std::fs::read_to_string(&log)?
        .lines()
        .map(str::to_owned)
        .collect();
    // Queues of different keys interleave; each key's order is exact.
    let of = |who: &str| -> Vec<String> {
        got.iter()
            .filter(|l| l.starts_with(&format!("{who} ")))
            .cloned()
            .collect()
    };
    assert_eq!(of("a"), want_a, "400 calls for a's 200 changes, in order");
    assert_eq!(
        of("b"),
        vec![
            "b backup ".to_owned(),
            "b notify INSTANCE b BACKUP 90".to_owned()
        ]
    );
    assert_eq!(
        of("G"),
        vec![
            "G backup ".to_owned(),
            "G notify GROUP G BACKUP 0".to_owned()
        ]
    );
    let stats = queues.stats();
    assert_eq!(
        (stats.queued, stats.started, stats.failed, stats.coalesced),
        (202, 404, 0, 0)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
