//! On a multi-thread runtime the runner's scheduler runs on a thread of its
//! own (named `healthcheck`), which ends with the runner. Alone in its test
//! binary: other tests' runners would add threads of the same name.

use std::time::Duration;

use healthcheck::{Runner, RunnerConfig};
use tokio_util::sync::CancellationToken;

/// Threads of this process named `name` (from /proc/self/task/*/comm).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_thread_lives_as_long_as_the_runner() {
    let before = threads_named("healthcheck");
    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while threads_named("healthcheck") == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduler thread"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!runner.is_finished());
    runner.shutdown().await;
    // The thread has sent its last word before it exits: allow it that.
    while threads_named("healthcheck") != before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "scheduler thread left behind"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
