//! The probe attempts in flight, by the position of their check in the
//! scheduler (a check has at most one attempt at a time).
//!
//! Two ways to run them, chosen by the runner from the runtime it starts on
//! (see its module docs):
//!
//! - **Inline** (a current-thread runtime): the attempts are futures in a
//!   table, each with a waker that queues its index; the runner polls only
//!   the woken ones, inside its own task. Spawning a tokio task per attempt
//!   would cost an allocation, a trip through the run queue and a second
//!   wake-up of the runner when the task ends, and buy nothing on one
//!   thread.
//! - **Spawned** (a multi-thread runtime): each attempt is a task of its
//!   own on that runtime, so that thousands of connects, exchanges and
//!   digests a second spread over its workers instead of queueing on the
//!   thread that runs the scheduler; a finished task queues its result and
//!   wakes the runner. Measured with 10,000 checks a second on two cores: one thread
//!   saturates and its attempts wait hundreds of milliseconds in its queue.
//!
//! Either way a cancelled attempt (timeout, check removed) is dropped at
//! once (inline) or aborted (spawned), closing its socket, and a panicking
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
    /// Spawned: the attempts that finished since the last pass.
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
    /// Spawned: the attempt's task.
    task: Option<JoinHandle<()>>,
    signal: Arc<SlotWaker>,
    waker: Waker,
}

/// The attempts in flight, by the position of their check.
pub(crate) struct Attempts {
    /// Spawned mode: the runtime each attempt becomes a task on (see the
    /// module docs); `None` inline.
    spawn_on: Option<tokio::runtime::Handle>,
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

impl Attempts {
    /// Attempts polled by their owner ([`poll_done`](Self::poll_done)).
    pub(crate) fn inline() -> Self {
        Self::new(None)
    }

    /// Attempts spawned as tasks on `runtime`.
    pub(crate) fn spawned_on(runtime: tokio::runtime::Handle) -> Self {
        Self::new(Some(runtime))
    }

    fn new(spawn_on: Option<tokio::runtime::Handle>) -> Self {
        Self {
            spawn_on,
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
            if let Some(runtime) = &self.spawn_on {
                slot.task = Some(runtime.spawn(run_spawned(token, future, queue)));
            } else {
                slot.future = Some(future);
                slot.signal.queue();
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

    /// Drops every attempt: inline ones at once; spawned ones are aborted,
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
    /// aborted (spawned: its task is returned).
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
        if self.spawn_on.is_some() {
            return self.take_finished(cx, done);
        }
        {
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
        }
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
    /// Spawned mode's pass: the results the tasks queued, for the attempts
    /// still current (not cancelled or replaced since).
    fn take_finished(
        &mut self,
        cx: &mut Context<'_>,
        done: &mut Vec<(ProbeToken, ProbeResult)>,
    ) -> Poll<()> {
        let finished = {
            let mut ready = self.queue.lock();
            let stale = ready
                .parent
                .as_ref()
                .is_none_or(|w| !w.will_wake(cx.waker()));
            if stale {
                ready.parent = Some(cx.waker().clone());
            }
            std::mem::take(&mut ready.finished)
        };
        for (token, result) in finished {
            let index = token.position();
            let current = self
                .slots
                .get(index)
                .is_some_and(|slot| slot.token == Some(token));
            if current {
                if let Some(slot) = self.slots.get_mut(index) {
                    // Finished: nothing to abort.
                    slot.task = None;
                    slot.token = None;
                    self.running -= 1;
                }
                done.push((token, result));
            }
        }
        if done.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

/// One spawned attempt: runs it (a panic is its failure), queues the result
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
}
