//! Proves the tracked-file probe on real files: keepalived's value rules
//! (missing or empty is 0, strtol parsing, out-of-range numbers ignored),
//! changes seen through inotify long before the poll interval, files behind
//! symlinks, and hostile files (a FIFO, /dev/zero, a directory, a huge file)
//! read as 0 without blocking or reading more than a few bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use healthcheck::{CheckSpec, FileCheck, Health, Probe, Runner, RunnerConfig, Timing, Transition};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hc-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls every minute: anything faster than that came through inotify.
fn slow_poll() -> Timing {
    let mut t = Timing::every(Duration::from_secs(60));
    t.timeout = Duration::from_secs(2);
    t.retry = 0;
    t.warmup = Duration::ZERO;
    t.jitter = Duration::ZERO;
    t
}

async fn next_value(events: &mut broadcast::Receiver<Transition>) -> Option<i64> {
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("a change within 5 s, not at the next 60 s poll")
        .expect("no lag");
    assert_eq!(event.health, Health::Up, "a file check never goes down");
    event.value
}

fn write_atomically(dir: &TempDir, path: &Path, text: &str) {
    let tmp = dir.path(".tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn values_follow_the_file_through_inotify() {
    let dir = TempDir::new("follow");
    let path = dir.path("maint");
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let mut events = runner.subscribe();
    let id = runner
        .add(CheckSpec {
            name: "maint".into(),
            probe: Probe::File(FileCheck::new(&path)),
            timing: slow_poll(),
        })
        .expect("valid");
    assert_eq!(
        next_value(&mut events).await,
        Some(0),
        "missing file reads 0"
    );

    std::fs::write(&path, "5\n").expect("write");
    assert_eq!(next_value(&mut events).await, Some(5), "write then close");

    write_atomically(&dir, &path, "  -7 with a comment");
    assert_eq!(next_value(&mut events).await, Some(-7), "renamed over");

    // Out of range for keepalived: ignored, the value stays -7 (no event);
    // then a good value comes through.
    std::fs::write(&path, "99999999999").expect("write");
    std::fs::write(&path, "0x10").expect("write");
    assert_eq!(
        next_value(&mut events).await,
        Some(16),
        "hex, and nothing in between"
    );

    std::fs::write(&path, "").expect("write");
    assert_eq!(next_value(&mut events).await, Some(0), "empty reads 0");
    std::fs::write(&path, "3").expect("write");
    assert_eq!(next_value(&mut events).await, Some(3));
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(next_value(&mut events).await, Some(0), "deleted reads 0");

    let status = runner.watch(id).expect("watch").borrow().clone();
    assert_eq!(status.value, Some(0));
    assert!(
        status.stats.attempts <= 12,
        "event-driven, not polled: {} reads",
        status.stats.attempts
    );
    let stats = runner.stats().await.expect("running");
    assert_eq!(stats.watched_files, 1);
    assert!(runner.remove(id));
    assert_eq!(runner.stats().await.map(|s| s.watched_files), Some(0));
    runner.shutdown().await;
}

#[tokio::test]
async fn a_symlinked_file_is_watched_where_it_lives() {
    let dir = TempDir::new("link");
    std::fs::create_dir_all(dir.path("real")).expect("mkdir");
    let target = dir.path("real/state");
    std::fs::write(&target, "1").expect("write");
    let link = dir.path("state-link");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let mut events = runner.subscribe();
    runner
        .add(CheckSpec {
            name: "link".into(),
            probe: Probe::File(FileCheck::new(&link)),
            timing: slow_poll(),
        })
        .expect("valid");
    assert_eq!(next_value(&mut events).await, Some(1));
    std::fs::write(&target, "2").expect("write through the real path");
    assert_eq!(next_value(&mut events).await, Some(2));
    runner.shutdown().await;
}

async fn read_once(path: &Path) -> (Option<i64>, Duration) {
    let prober = Probe::File(FileCheck::new(path)).prepare().expect("valid");
    let started = Instant::now();
    let report = prober.run(0, Duration::from_secs(2)).await;
    let success = report.result.expect("a file check does not fail");
    (success.value, started.elapsed())
}

#[tokio::test]
async fn hostile_files_read_as_zero_without_blocking() {
    let dir = TempDir::new("hostile");
    let fifo = dir.path("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let zero = dir.path("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
    let directory = dir.path("a-directory");
    std::fs::create_dir(&directory).expect("mkdir");
    // 4 GiB of NULs (sparse) and 1 MiB of digits: only 127 bytes are read.
    let huge = dir.path("huge");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(4 << 30))
        .expect("sparse file");
    let digits = dir.path("digits");
    std::fs::write(&digits, "1".repeat(1 << 20)).expect("write");
    for (path, want) in [
        (&fifo, Some(0)),
        (&zero, Some(0)),
        (&directory, Some(0)),
        (&huge, Some(0)),
        // Out of range: ignored, so the prober's previous value (0) stays.
        (&digits, Some(0)),
    ] {
        let (value, took) = read_once(path).await;
        assert_eq!(value, want, "{}", path.display());
        assert!(
            took < Duration::from_secs(1),
            "{} took {took:?}",
            path.display()
        );
    }
    // A FIFO with a writer holding it open still does not block the read.
    let writer = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 3>{} ; sleep 5", fifo.display()))
        .spawn()
        .expect("writer");
    let (value, took) = read_once(&fifo).await;
    assert_eq!(value, Some(0));
    assert!(took < Duration::from_secs(1));
    let mut writer = writer;
    let _ = writer.kill();
    let _ = writer.wait();
}
