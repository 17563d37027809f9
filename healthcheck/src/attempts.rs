//! The probe attempts in flight, polled inside the runner's own task.
//!
//! Spawning a tokio task per attempt costs an allocation, a trip through the
//! run queue and a second wake-up of the runner when the task ends. Here the
//! attempts are futures in a table indexed by the check's position in the
//! scheduler (a check has at most one attempt at a time), each with a waker
//! that queues its index; the runner polls only the woken ones, and a
//! cancelled attempt (timeout, check removed) is dropped on the spot,
//! closing its socket at once.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use crate::error::DownReason;
use crate::schedule::{ProbeResult, ProbeToken};

/// A boxed attempt.
pub(crate) type AttemptFuture = Pin<Box<dyn Future<Output = ProbeResult> + Send>>;

#[derive(Default)]
struct Ready {
    indices: Vec<usize>,
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
    future: Option<AttemptFuture>,
    signal: Arc<SlotWaker>,
    waker: Waker,
}

/// The attempts in flight, by the position of their check.
pub(crate) struct Attempts {
    slots: Vec<Slot>,
    running: usize,
    queue: Arc<ReadyQueue>,
    /// Scratch for the indices taken from the queue.
    woken: Vec<usize>,
}

impl Attempts {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            running: 0,
            queue: Arc::default(),
            woken: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.running == 0
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
                signal,
                waker,
            });
        }
        if let Some(slot) = self.slots.get_mut(index) {
            if slot.future.is_none() {
                self.running += 1;
            }
            slot.token = Some(token);
            slot.future = Some(future);
            slot.signal.wake_by_ref();
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

    /// Drops every attempt.
    pub(crate) fn clear(&mut self) {
        for index in 0..self.slots.len() {
            self.release(index);
        }
    }

    fn release(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index) {
            slot.token = None;
            if slot.future.take().is_some() {
                self.running -= 1;
            }
        }
    }

    /// Polls the attempts woken since the last call, once each; appends the
    /// finished ones to `done`. Returns `Ready` if any finished; otherwise
    /// `Pending` with `cx`'s waker registered. A panicking probe counts as an
    /// internal failure.
    ///
    /// One pass per call: attempts woken while this pass runs are left for
    /// the next call (and `cx` is woken for it), so the runner returns to
    /// its other work in between.
    pub(crate) fn poll_done(
        &mut self,
        cx: &mut Context<'_>,
        done: &mut Vec<(ProbeToken, ProbeResult)>,
    ) -> Poll<()> {
        {
            let mut ready = self.queue.lock();
            std::mem::swap(&mut ready.indices, &mut self.woken);
            let stale = ready
                .parent
                .as_ref()
                .is_none_or(|w| !w.will_wake(cx.waker()));
            if stale {
                ready.parent = Some(cx.waker().clone());
            }
        }
        let mut woken = std::mem::take(&mut self.woken);
        for index in woken.drain(..) {
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            slot.signal.queued.store(false, Ordering::Release);
            let (Some(token), Some(future)) = (slot.token, slot.future.as_mut()) else {
                continue; // cancelled after it was woken
            };
            let mut attempt_cx = Context::from_waker(&slot.waker);
            let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
                future.as_mut().poll(&mut attempt_cx)
            }));
            let result = match polled {
                Ok(Poll::Pending) => continue,
                Ok(Poll::Ready(result)) => result,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".to_owned());
                    Err(DownReason::Internal(format!("probe panicked: {what}")))
                }
            };
            self.release(index);
            done.push((token, result));
        }
        self.woken = woken;
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
