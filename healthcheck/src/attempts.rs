//! The probe attempts in flight, by the position of their check in the
//! scheduler (a check has at most one attempt at a time).
//!
//! An attempt runs one of two ways:
//!
//! - **Inline**, by default: the attempts are futures in a table, each with
//!   a waker that queues its index; the owner polls only the woken ones,
//!   inside its own task, in passes bounded in time. Spawning a tokio task
//!   per attempt would cost an allocation, a trip through a run queue and a
//!   second wake-up of the owner when the task ends.
//! - **Overflowed**, when given a runtime to overflow to: while inline
//!   passes take more than a quarter of the owner's time, a proportional
//!   share of new attempts (all of them while a pass stopped at its
//!   deadline with attempts left) become tasks on that runtime, spread over
//!   its workers; a finished task queues its result and wakes the owner.
//!   Measured with 10,000 checks a second on two cores: one thread
//!   polling everything saturates and its attempts wait hundreds of
//!   milliseconds in its queue; spawning every attempt costs 70 % more CPU
//!   per check at 1,000 a second than polling them inline.
//!
//! Either way a cancelled attempt (timeout, check removed) is dropped at
//! once (inline) or aborted (a task), closing its socket, and a panicking
//! probe counts as an internal failure.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use tokio::task::JoinHandle;
use tokio::time::Instant as Clock;

use crate::error::DownReason;
use crate::schedule::{ProbeResult, ProbeToken};

/// A boxed attempt.
pub(crate) type AttemptFuture = Pin<Box<dyn Future<Output = ProbeResult> + Send>>;

#[derive(Default)]
struct Ready {
    /// Inline: the slots woken since the last pass.
    indices: Vec<usize>,
    /// Overflowed: the attempts that finished since the last pass.
    finished: Vec<(ProbeToken, ProbeResult)>,
    parent: Option<Waker>,
}

#[derive(Default)]
struct ReadyQueue(Mutex<Ready>);

impl ReadyQueue {
    fn lock(&self) -> MutexGuard<'_, Ready> {
        // Every critical section is a push or a swap: nothing is left
        // half-done by a panic elsewhere.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes one slot: queues its index (once) and wakes the runner.
struct SlotWaker {
    index: usize,
    queued: AtomicBool,
    queue: Arc<ReadyQueue>,
}

impl SlotWaker {
    /// Queues the slot (once) without waking the runner: for an attempt the
    /// runner itself just added, which its next pass polls anyway. Waking
    /// the runner from its own turn would make the runtime run it again
    /// before its I/O driver, starving the other attempts' readiness.
    fn queue(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.queue.lock().indices.push(self.index);
        }
    }
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let parent = {
            let mut ready = self.queue.lock();
            ready.indices.push(self.index);
            ready.parent.take()
        };
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

struct Slot {
    token: Option<ProbeToken>,
    /// Inline: the attempt's future.
    future: Option<AttemptFuture>,
    /// Overflowed: the attempt's task.
    task: Option<JoinHandle<()>>,
    signal: Arc<SlotWaker>,
    waker: Waker,
}

/// The attempts in flight, by the position of their check.
pub(crate) struct Attempts {
    /// Where attempts overflow to as tasks (see the module docs); `None`:
    /// every attempt inline.
    spawn_on: Option<tokio::runtime::Handle>,
    /// The last inline pass stopped at its deadline: new attempts go to
    /// `spawn_on` until a pass gets through everything again.
    overflow: bool,
    /// How much of the owner's time inline passes take, and the share of
    /// new attempts kept inline because of it.
    load: InlineLoad,
    slots: Vec<Slot>,
    running: usize,
    queue: Arc<ReadyQueue>,
    /// The indices taken from the queue and not polled yet, in wake order.
    woken: Vec<usize>,
    /// How many of `woken` the last pass polled.
    polled: usize,
}

/// Attempts polled between two readings of the clock in a pass.
const CLOCK_EVERY: usize = 16;

/// The share of the owner's time inline passes may take, once it has a
/// runtime to overflow to: above it, a proportional share of new attempts
/// become tasks, so that the owner stays free for its timers.
const INLINE_SHARE: f64 = 0.25;

/// How long inline passes are added up before their share is judged.
const LOAD_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// The time inline passes take, per [`LOAD_WINDOW`], and from it the share
/// of new attempts kept inline: multiplied each window by
/// [`INLINE_SHARE`] / the share measured (so that the inline work settles at
/// that share), between 1 % and all.
#[derive(Debug)]
struct InlineLoad {
    window_start: Option<Instant>,
    busy: std::time::Duration,
    keep: f64,
    /// Dither: a new attempt stays inline each time this passes 1.
    credit: f64,
}

impl Default for InlineLoad {
    fn default() -> Self {
        Self {
            window_start: None,
            busy: std::time::Duration::ZERO,
            keep: 1.0,
            credit: 0.0,
        }
    }
}

impl InlineLoad {
    /// Counts a pass from `start` to `end`; closes the window when due.
    fn pass(&mut self, start: Instant, end: Instant) {
        self.busy += end.saturating_duration_since(start);
        let window_start = *self.window_start.get_or_insert(start);
        let window = end.saturating_duration_since(window_start);
        if window >= LOAD_WINDOW {
            let share = self.busy.as_secs_f64() / window.as_secs_f64();
            self.keep = (self.keep * INLINE_SHARE / share.max(1e-3)).clamp(0.01, 1.0);
            self.busy = std::time::Duration::ZERO;
            self.window_start = Some(end);
        }
    }

    /// Whether the next new attempt stays inline.
    fn keep_inline(&mut self) -> bool {
        self.credit += self.keep;
        if self.credit >= 1.0 {
            self.credit -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Attempts {
    /// Attempts polled by their owner ([`poll_done`](Self::poll_done)).
    pub(crate) fn inline() -> Self {
        Self::new(None)
    }

    /// Attempts polled by their owner while it keeps up, and spawned as
    /// tasks on `runtime` while it does not.
    pub(crate) fn overflowing_to(runtime: tokio::runtime::Handle) -> Self {
        Self::new(Some(runtime))
    }

    fn new(spawn_on: Option<tokio::runtime::Handle>) -> Self {
        Self {
            spawn_on,
            overflow: false,
            load: InlineLoad::default(),
            slots: Vec::new(),
            running: 0,
            queue: Arc::default(),
            woken: Vec::new(),
            polled: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.running == 0
    }

    /// Whether the last pass stopped at its deadline with woken attempts
    /// left unpolled.
    pub(crate) fn has_backlog(&self) -> bool {
        self.polled < self.woken.len()
    }

    /// Adds an attempt (replacing any other of the same check); it is first
    /// polled by the next [`poll_done`](Self::poll_done).
    pub(crate) fn push(&mut self, token: ProbeToken, future: AttemptFuture) {
        let index = token.position();
        while self.slots.len() <= index {
            let signal = Arc::new(SlotWaker {
                index: self.slots.len(),
                queued: AtomicBool::new(false),
                queue: Arc::clone(&self.queue),
            });
            let waker = Waker::from(Arc::clone(&signal));
            self.slots.push(Slot {
                token: None,
                future: None,
                task: None,
                signal,
                waker,
            });
        }
        self.release(index);
        let queue = Arc::clone(&self.queue);
        if let Some(slot) = self.slots.get_mut(index) {
            self.running += 1;
            slot.token = Some(token);
            match &self.spawn_on {
                Some(runtime) if self.overflow || !self.load.keep_inline() => {
                    slot.task = Some(runtime.spawn(run_spawned(token, future, queue)));
                }
                _ => {
                    slot.future = Some(future);
                    slot.signal.queue();
                }
            }
        }
    }

    /// Drops the attempt `token` if it is still running.
    pub(crate) fn cancel(&mut self, token: ProbeToken) {
        let index = token.position();
        if self
            .slots
            .get(index)
            .is_some_and(|slot| slot.token == Some(token))
        {
            self.release(index);
        }
    }

    /// Drops every attempt: inline ones at once; tasks are aborted,
    /// and their tasks returned so that the caller can wait until they are
    /// gone (and their sockets closed).
    pub(crate) fn clear(&mut self) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        for index in 0..self.slots.len() {
            tasks.extend(self.release(index));
        }
        tasks
    }

    /// Empties the slot; an attempt still running is dropped (inline) or
    /// aborted (a task: returned).
    fn release(&mut self, index: usize) -> Option<JoinHandle<()>> {
        let slot = self.slots.get_mut(index)?;
        slot.token = None;
        let task = slot.task.take();
        if slot.future.take().is_some() || task.is_some() {
            self.running -= 1;
        }
        // A no-op for a task that already finished: its result, queued, is
        // told apart by its token.
        task.inspect(JoinHandle::abort)
    }

    /// Polls the attempts woken since the last call, once each, in the
    /// order they were woken; appends the finished ones to `done`. Returns
    /// `Ready` if any finished or the pass stopped at `until`; otherwise
    /// `Pending` with `cx`'s waker registered. A panicking probe counts as
    /// an internal failure.
    ///
    /// A pass stops once the clock (read every few attempts) is past
    /// `until`: the rest stay queued ([`has_backlog`](Self::has_backlog)),
    /// first in line for the next call, so that a burst of thousands of
    /// replies cannot hold the runner's timers for longer than that.
    /// Attempts woken while a pass runs are left for the next call (and `cx`
    /// is woken for it).
    pub(crate) fn poll_done(
        &mut self,
        cx: &mut Context<'_>,
        done: &mut Vec<(ProbeToken, ProbeResult)>,
        until: Instant,
    ) -> Poll<()> {
        let finished = {
            let mut ready = self.queue.lock();
            self.woken.drain(..self.polled);
            self.polled = 0;
            self.woken.append(&mut ready.indices);
            let stale = ready
                .parent
                .as_ref()
                .is_none_or(|w| !w.will_wake(cx.waker()));
            if stale {
                ready.parent = Some(cx.waker().clone());
            }
            std::mem::take(&mut ready.finished)
        };
        self.take_finished(finished, done);
        let started = Clock::now().into_std();
        let mut stopped = false;
        let mut polled = 0;
        while let Some(&index) = self.woken.get(polled) {
            if polled % CLOCK_EVERY == CLOCK_EVERY - 1 && Clock::now().into_std() >= until {
                stopped = true;
                break;
            }
            polled += 1;
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            slot.signal.queued.store(false, Ordering::Release);
            let (Some(token), Some(future)) = (slot.token, slot.future.as_mut()) else {
                continue; // cancelled after it was woken
            };
            let mut attempt_cx = Context::from_waker(&slot.waker);
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                future.as_mut().poll(&mut attempt_cx)
            }));
            let result = match outcome {
                Ok(Poll::Pending) => continue,
                Ok(Poll::Ready(result)) => result,
                Err(panic) => panicked(&*panic),
            };
            self.release(index);
            done.push((token, result));
        }
        self.polled = polled;
        self.overflow = stopped;
        if self.spawn_on.is_some() && polled > 0 {
            self.load.pass(started, Clock::now().into_std());
        }
        if stopped {
            return Poll::Ready(());
        }
        if !self.queue.lock().indices.is_empty() {
            // Woken during this pass: come back after the other branches.
            cx.waker().wake_by_ref();
        }
        if done.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

impl Attempts {
    /// The results spawned attempts queued, for the attempts still current
    /// (not cancelled or replaced since).
    fn take_finished(
        &mut self,
        finished: Vec<(ProbeToken, ProbeResult)>,
        done: &mut Vec<(ProbeToken, ProbeResult)>,
    ) {
        for (token, result) in finished {
            let index = token.position();
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            if slot.token == Some(token) && slot.task.is_some() {
                // Finished: nothing to abort.
                slot.task = None;
                slot.token = None;
                self.running -= 1;
                done.push((token, result));
            }
        }
    }
}

/// One overflowed attempt, as a task: runs it (a panic is its failure), queues the result
/// and wakes the runner.
async fn run_spawned(token: ProbeToken, mut future: AttemptFuture, queue: Arc<ReadyQueue>) {
    let result = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(panicked(&*panic)),
        }
    })
    .await;
    let parent = {
        let mut ready = queue.lock();
        ready.finished.push((token, result));
        ready.parent.take()
    };
    if let Some(parent) = parent {
        parent.wake();
    }
}

/// The failure a panicking probe gets.
fn panicked(panic: &(dyn std::any::Any + Send)) -> ProbeResult {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned());
    Err(DownReason::Internal(format!("probe panicked: {what}")))
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Waker};
    use std::time::{Duration, Instant};

    use super::{Attempts, CLOCK_EVERY};
    use crate::check::CheckId;
    use crate::schedule::{ProbeSuccess, ProbeToken};

    fn token(n: u32) -> ProbeToken {
        ProbeToken::for_test(CheckId::new(n), 0, n)
    }

    /// A pass whose deadline has passed stops after one stretch between two
    /// clock readings; what it left goes first, in wake order, next time.
    #[test]
    fn a_pass_past_its_deadline_stops_and_its_backlog_goes_first() {
        let mut attempts = Attempts::inline();
        for n in 0..40 {
            attempts.push(token(n), Box::pin(async { Ok(ProbeSuccess::default()) }));
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut done = Vec::new();
        assert!(
            attempts
                .poll_done(&mut cx, &mut done, Instant::now())
                .is_ready()
        );
        let first: Vec<usize> = done.iter().map(|(t, _)| t.position()).collect();
        assert_eq!(first, (0..CLOCK_EVERY - 1).collect::<Vec<_>>());
        assert!(attempts.has_backlog());

        done.clear();
        let later = Instant::now() + Duration::from_secs(60);
        assert!(attempts.poll_done(&mut cx, &mut done, later).is_ready());
        let rest: Vec<usize> = done.iter().map(|(t, _)| t.position()).collect();
        assert_eq!(rest, (CLOCK_EVERY - 1..40).collect::<Vec<_>>());
        assert!(!attempts.has_backlog());
        assert!(attempts.is_empty());
    }

    /// An attempt cancelled while it waited in the backlog is not polled,
    /// and one pushed again in its place is.
    #[test]
    fn a_cancelled_attempt_in_the_backlog_is_skipped() {
        let mut attempts = Attempts::inline();
        for n in 0..20 {
            attempts.push(token(n), Box::pin(async { Ok(ProbeSuccess::default()) }));
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut done = Vec::new();
        let _ = attempts.poll_done(&mut cx, &mut done, Instant::now());
        assert_eq!(done.len(), CLOCK_EVERY - 1);
        attempts.cancel(token(16));
        let replaced = ProbeToken::for_test(CheckId::new(17), 1, 17);
        attempts.push(replaced, Box::pin(async { Ok(ProbeSuccess::default()) }));
        done.clear();
        let later = Instant::now() + Duration::from_secs(60);
        let _ = attempts.poll_done(&mut cx, &mut done, later);
        let rest: Vec<ProbeToken> = done.iter().map(|(t, _)| *t).collect();
        assert_eq!(rest, vec![token(15), replaced, token(18), token(19)]);
        assert!(attempts.is_empty());
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// Counts its drops.
    struct DropFlag(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Overflowed attempts run as tasks: results come back through the
    /// queue, a panic is a failure, a cancelled task is aborted and one
    /// replaced by a newer attempt does not report; `clear` hands back the
    /// tasks still running, gone once awaited.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overflowed_attempts_run_as_tasks() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let mut attempts = Attempts::overflowing_to(tokio::runtime::Handle::current());
        attempts.overflow = true;
        let dropped = Arc::new(AtomicUsize::new(0));
        let hang = |dropped: &Arc<AtomicUsize>| -> super::AttemptFuture {
            let flag = DropFlag(Arc::clone(dropped));
            Box::pin(async move {
                let _flag = flag;
                std::future::pending().await
            })
        };
        attempts.push(token(0), Box::pin(async { panic!("probe bug") }));
        attempts.push(token(1), Box::pin(async { Ok(ProbeSuccess::default()) }));
        attempts.push(token(2), hang(&dropped));
        attempts.cancel(token(2));
        attempts.push(token(3), hang(&dropped));
        attempts.push(token(4), Box::pin(async { Ok(ProbeSuccess::default()) }));
        let newer = ProbeToken::for_test(CheckId::new(4), 1, 4);
        attempts.push(newer, hang(&dropped));

        let mut done = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while done.len() < 2 {
            tokio::time::timeout_at(
                deadline,
                std::future::poll_fn(|cx| attempts.poll_done(cx, &mut done, far())),
            )
            .await
            .expect("results within 5 s");
        }
        done.sort_by_key(|(t, _)| t.position());
        assert_eq!(done.len(), 2, "the replaced attempt does not report");
        assert_eq!(done[0].0, token(0));
        assert!(
            matches!(&done[0].1, Err(crate::DownReason::Internal(m)) if m.contains("probe bug")),
            "{:?}",
            done[0].1
        );
        assert_eq!(done[1], (token(1), Ok(ProbeSuccess::default())));

        let tasks = attempts.clear();
        assert_eq!(tasks.len(), 2, "the two hanging ones still run");
        for task in tasks {
            let _ = task.await;
        }
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            3,
            "every hanging attempt dropped"
        );
        assert!(attempts.is_empty());
    }
}
