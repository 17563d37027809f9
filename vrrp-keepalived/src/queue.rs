//! Ordered script queues: the scripts of one key (an instance, a sync
//! group, a real server) run one batch at a time, in the order they were
//! queued; different keys never wait for each other.
//!
//! # Bounds and the coalescing rule
//!
//! Each key holds at most [`ScriptQueues::capacity`] batches waiting to
//! run. When a batch is queued on a full key, the **oldest waiting** batch
//! of that key is dropped (counted in [`ScriptStats::coalesced`]): the
//! most recent changes always run, in order, and the last one queued is
//! never dropped. A run is bounded by the queues' timeout, after which the
//! script's whole process group is killed, so a hung script delays only its
//! own key, and only by that timeout.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::command::Command;

/// Batches waiting per key when none is given.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Commands queued together, run one after the other (a notify script and
/// the generic `notify` of one state change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Each command with the arguments appended to it.
    pub jobs: Vec<(Command, Vec<String>)>,
}

/// Counters of [`ScriptQueues`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ScriptStats {
    /// Batches queued.
    pub queued: u64,
    /// Commands started.
    pub started: u64,
    /// Commands that did not exit 0 (timeouts included).
    pub failed: u64,
    /// Commands killed at the timeout.
    pub timed_out: u64,
    /// Waiting batches dropped to make room for newer ones.
    pub coalesced: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    started: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    coalesced: AtomicU64,
}

struct Queue {
    pending: Mutex<VecDeque<Batch>>,
    wake: Notify,
}

struct Inner {
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    timeout: Duration,
    capacity: usize,
    closing: AtomicBool,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before it could
    // panic (pushes and pops only).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-key ordered script queues (see the module docs). Cheap to clone;
/// clones share the queues.
#[derive(Clone)]
pub struct ScriptQueues {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ScriptQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptQueues")
            .field("timeout", &self.inner.timeout)
            .field("capacity", &self.inner.capacity)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ScriptQueues {
    /// Queues whose commands may each run for `timeout`, with
    /// [`DEFAULT_CAPACITY`] waiting batches per key. Call inside a tokio
    /// runtime (workers are spawned as keys appear).
    pub fn new(timeout: Duration) -> Self {
        Self::with_capacity(timeout, DEFAULT_CAPACITY)
    }

    /// Like [`ScriptQueues::new`] with `capacity` waiting batches per key
    /// (at least 1).
    pub fn with_capacity(timeout: Duration, capacity: usize) -> Self {
        ScriptQueues {
            inner: Arc::new(Inner {
                queues: Mutex::new(HashMap::new()),
                workers: Mutex::new(Vec::new()),
                timeout,
                capacity: capacity.max(1),
                closing: AtomicBool::new(false),
                counters: Counters::default(),
            }),
        }
    }

    /// Batches that may wait per key.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Longest a command may run.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Queues `batch` on `key` (ignored once [`ScriptQueues::finish`] has
    /// been called, and when it holds no command).
    pub fn push(&self, key: &str, batch: Batch) {
        if batch.jobs.is_empty() || self.inner.closing.load(Ordering::Acquire) {
            return;
        }
        let queue = {
            let mut queues = lock(&self.inner.queues);
            match queues.get(key) {
                Some(q) => Arc::clone(q),
                None => {
                    let q = Arc::new(Queue {
                        pending: Mutex::new(VecDeque::new()),
                        wake: Notify::new(),
                    });
                    queues.insert(key.to_owned(), Arc::clone(&q));
                    let worker = tokio::spawn(work(
                        key.to_owned(),
                        Arc::clone(&q),
                        Arc::clone(&self.inner),
                    ));
                    lock(&self.inner.workers).push(worker);
                    q
                }
            }
        };
        {
            let mut pending = lock(&queue.pending);
            if pending.len() >= self.inner.capacity {
                pending.pop_front();
                self.inner
                    .counters
                    .coalesced
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    key,
                    capacity = self.inner.capacity,
                    "script queue full: the oldest waiting batch is dropped"
                );
            }
            pending.push_back(batch);
        }
        self.inner.counters.queued.fetch_add(1, Ordering::Relaxed);
        queue.wake.notify_one();
    }

    /// Batches waiting (not running) on `key`.
    pub fn waiting(&self, key: &str) -> usize {
        lock(&self.inner.queues)
            .get(key)
            .map_or(0, |q| lock(&q.pending).len())
    }

    /// The counters.
    pub fn stats(&self) -> ScriptStats {
        let c = &self.inner.counters;
        ScriptStats {
            queued: c.queued.load(Ordering::Relaxed),
            started: c.started.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
        }
    }

    /// Stops taking batches and lets every queued one run, for at most
    /// `grace`; what is still running then is killed with its process
    /// group, and what waits is dropped. Returns whether everything ran.
    pub async fn finish(&self, grace: Duration) -> bool {
        self.inner.closing.store(true, Ordering::Release);
        for q in lock(&self.inner.queues).values() {
            q.wake.notify_one();
        }
        let workers: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.inner.workers));
        let deadline = tokio::time::Instant::now() + grace;
        let mut all = true;
        for mut w in workers {
            if tokio::time::timeout_at(deadline, &mut w).await.is_err() {
                all = false;
                w.abort();
                let _ = w.await;
            }
        }
        all
    }
}

async fn work(key: String, queue: Arc<Queue>, inner: Arc<Inner>) {
    loop {
        let next = lock(&queue.pending).pop_front();
        let Some(batch) = next else {
            if inner.closing.load(Ordering::Acquire) {
                return;
            }
            queue.wake.notified().await;
            continue;
        };
        for (command, args) in batch.jobs {
            inner.counters.started.fetch_add(1, Ordering::Relaxed);
            match command.run(&args, inner.timeout).await {
                Ok(()) => {}
                Err(e) => {
                    inner.counters.failed.fetch_add(1, Ordering::Relaxed);
                    if matches!(e, crate::command::RunError::Timeout(_)) {
                        inner.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::warn!(key, script = %command, ?args, error = %e, "script failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(file: &std::path::Path, word: &str) -> Batch {
        Batch {
            jobs: vec![(
                Command::shell(format!("echo {word} >> {}", file.display())),
                Vec::new(),
            )],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_run_in_order_a_hung_script_delays_only_its_own_key() {
        let dir = std::env::temp_dir().join(format!("vk-queue-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (a, b) = (dir.join("a"), dir.join("b"));
        let q = ScriptQueues::new(Duration::from_millis(500));
        // Key "a" starts with a script that hangs past its timeout.
        q.push(
            "a",
            Batch {
                jobs: vec![(Command::new(["/bin/sleep", "30"]), Vec::new())],
            },
        );
        for i in 0..20 {
            q.push("a", append(&a, &i.to_string()));
            q.push("b", append(&b, &i.to_string()));
        }
        let started = std::time::Instant::now();
        // "b" is done long before "a"'s hung script times out.
        while std::fs::read_to_string(&b)
            .unwrap_or_default()
            .lines()
            .count()
            < 20
        {
            assert!(
                started.elapsed() < Duration::from_millis(450),
                "b waited for a"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(q.finish(Duration::from_secs(10)).await);
        let want: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        for f in [&a, &b] {
            let got: Vec<String> = std::fs::read_to_string(f)
                .expect("written")
                .lines()
                .map(str::to_owned)
                .collect();
            assert_eq!(got, want, "{}", f.display());
        }
        let s = q.stats();
        assert_eq!((s.queued, s.started, s.failed, s.timed_out), (41, 41, 1, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_key_drops_its_oldest_waiting_batch_never_the_newest() {
        let dir = std::env::temp_dir().join(format!("vk-queue-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("out");
        let gate = dir.join("gate");
        let q = ScriptQueues::with_capacity(Duration::from_secs(10), 3);
        // The first batch blocks until the gate file exists.
        q.push(
            "k",
            Batch {
                jobs: vec![(
                    Command::shell(format!(
                        "while [ ! -e {} ]; do sleep 0.01; done",
                        gate.display()
                    )),
                    Vec::new(),
                )],
            },
        );
        // Wait until it runs, so that exactly the next ones wait.
        while q.waiting("k") > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for i in 0..6 {
            q.push("k", append(&out, &i.to_string()));
        }
        assert_eq!(q.waiting("k"), 3);
        std::fs::write(&gate, b"").expect("gate");
        assert!(q.finish(Duration::from_secs(10)).await);
        assert_eq!(
            std::fs::read_to_string(&out).expect("out"),
            "3\n4\n5\n",
            "the newest three, in order"
        );
        assert_eq!(q.stats().coalesced, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn finish_kills_what_outlives_the_grace() {
        let q = ScriptQueues::new(Duration::from_secs(60));
        q.push(
            "k",
            Batch {
                jobs: vec![(Command::new(["/bin/sleep", "60"]), Vec::new())],
            },
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        assert!(!q.finish(Duration::from_millis(200)).await);
        assert!(started.elapsed() < Duration::from_secs(2));
        q.push(
            "k",
            Batch {
                jobs: vec![(Command::new(["/bin/true"]), Vec::new())],
            },
        );
        assert_eq!(q.stats().queued, 1, "nothing is taken after finish");
    }
}
