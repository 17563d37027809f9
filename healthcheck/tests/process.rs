//! keepalived's track_process with real processes started and killed: a
//! quorum of processes by name gained and lost, too many processes, a
//! terminate delay, command lines and arguments; through the kernel's
//! process connector (in the initial network namespace, and from another
//! one) and by polling /proc. Each prints how long after the kill the
//! change was reported.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use healthcheck::process::{
    ParamMatch, ProcessSpec, ProcessWatcher, QuorumChange, WatchMode, WatchOptions,
};
use tokio_util::sync::CancellationToken;

/// A copy of `sleep` under a name no other process on the machine has
/// (the kernel keeps 15 characters of it), in its own directory.
struct Program {
    dir: PathBuf,
    path: PathBuf,
    name: String,
}

impl Program {
    fn new(tag: &str) -> Program {
        let name = format!("hc{tag}{}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("healthcheck-process-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(&name);
        std::fs::copy("/bin/sleep", &path).expect("copy sleep");
        Program { dir, path, name }
    }

    fn start(&self, args: &[&str]) -> Child {
        Command::new(&self.path)
            .args(if args.is_empty() { &["600"][..] } else { args })
            .spawn()
            .expect("start")
    }
}

impl Drop for Program {
    /// Kills what is left of its processes (a failed test leaves them).
    fn drop(&mut self) {
        for p in healthcheck::process::scan(false).unwrap_or_default() {
            if p.comm == self.name {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(i32::try_from(p.pid).unwrap_or(0)),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kill(child: &mut Child) -> Instant {
    let at = Instant::now();
    let _ = child.kill();
    let _ = child.wait();
    at
}

/// The next change, within `limit`.
async fn next(w: &mut ProcessWatcher, limit: Duration) -> QuorumChange {
    tokio::time::timeout(limit, w.next())
        .await
        .expect("a change in time")
        .expect("watcher running")
}

/// No change for `quiet`.
async fn none(w: &mut ProcessWatcher, quiet: Duration) {
    if let Ok(c) = tokio::time::timeout(quiet, w.next()).await {
        panic!("unexpected change {c:?}");
    }
}

async fn quorum_gained_and_lost(tag: &str, options: WatchOptions, want: fn(WatchMode) -> bool) {
    let prog = Program::new(tag);
    let mut first = prog.start(&[]);
    let mut spec = ProcessSpec::new("sleepers", prog.name.clone());
    spec.quorum = 2;
    spec.quorum_max = 3;
    let cancel = CancellationToken::new();
    let mut w = ProcessWatcher::start(vec![spec], &options, cancel.clone()).expect("start");
    assert!(want(w.mode()), "{:?} ({:?})", w.mode(), w.why_polling());
    assert_eq!((w.initial()[0].up, w.initial()[0].count), (false, 1));
    let mut second = prog.start(&[]);
    let c = next(&mut w, Duration::from_secs(2)).await;
    assert_eq!((c.up, c.count), (true, 2));
    let mut third = prog.start(&[]);
    let mut fourth = prog.start(&[]);
    let c = next(&mut w, Duration::from_secs(2)).await;
    assert_eq!((c.up, c.count), (false, 4), "more than quorum_max");
    let _ = kill(&mut fourth);
    let c = next(&mut w, Duration::from_secs(2)).await;
    assert_eq!((c.up, c.count), (true, 3));
    let _ = kill(&mut third);
    none(&mut w, Duration::from_millis(300)).await;
    let killed = kill(&mut second);
    let c = next(&mut w, Duration::from_secs(2)).await;
    let latency = killed.elapsed();
    assert_eq!((c.up, c.count), (false, 1));
    println!("{:?}: quorum lost {latency:?} after the kill", w.mode());
    let _ = kill(&mut first);
    cancel.cancel();
}

#[tokio::test]
async fn quorum_through_the_process_connector() {
    quorum_gained_and_lost("c", WatchOptions::default(), |m| {
        matches!(
            m,
            WatchMode::Connector | WatchMode::ConnectorFromInitialNamespace
        )
    })
    .await;
}

#[tokio::test]
async fn quorum_by_polling_proc() {
    let options = WatchOptions {
        use_connector: false,
        poll_interval: Duration::from_millis(100),
        ..WatchOptions::default()
    };
    quorum_gained_and_lost("p", options, |m| {
        m == WatchMode::Polling(Duration::from_millis(100))
    })
    .await;
}

#[tokio::test]
async fn terminate_delay_and_command_lines() {
    let prog = Program::new("d");
    // keepalived's full_command with exact arguments: only `NAME 600 1`.
    let mut other = prog.start(&["600", "2"]);
    let mut spec = ProcessSpec::new("exact", prog.path.display().to_string());
    spec.full_command = true;
    spec.params = vec!["600".into(), "1".into()];
    spec.param_match = ParamMatch::Exact;
    spec.terminate_delay = Duration::from_millis(400);
    let cancel = CancellationToken::new();
    let mut w =
        ProcessWatcher::start(vec![spec], &WatchOptions::default(), cancel.clone()).expect("start");
    assert_eq!((w.initial()[0].up, w.initial()[0].count), (false, 0));
    let mut tracked = prog.start(&["600", "1"]);
    let c = next(&mut w, Duration::from_secs(2)).await;
    assert_eq!((c.up, c.count), (true, 1));
    // Killed: the change waits for the terminate delay...
    let killed = kill(&mut tracked);
    let c = next(&mut w, Duration::from_secs(3)).await;
    let after = killed.elapsed();
    assert!(!c.up);
    assert!(after >= Duration::from_millis(400), "{after:?}");
    println!("terminate_delay 400ms: quorum lost {after:?} after the kill");
    // ... and a return within it cancels the change.
    let mut again = prog.start(&["600", "1"]);
    let _ = next(&mut w, Duration::from_secs(2)).await;
    let _ = kill(&mut again);
    let mut back = prog.start(&["600", "1"]);
    none(&mut w, Duration::from_millis(800)).await;
    let _ = kill(&mut back);
    let _ = kill(&mut other);
    cancel.cancel();
}

#[test]
fn from_another_network_namespace() {
    // A thread in a network namespace of its own, like a daemon started
    // with `ip netns exec`: the connector is opened from the initial one,
    // here the test process's main thread's (this sandbox does not let
    // anyone read /proc/1/ns/net).
    let handle = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare (root)");
        let options = WatchOptions {
            initial_namespace: "/proc/self/ns/net".into(),
            ..WatchOptions::default()
        };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(quorum_gained_and_lost("n", options, |m| {
                m == WatchMode::ConnectorFromInitialNamespace
            }));
    });
    handle.join().expect("namespace thread");
}
