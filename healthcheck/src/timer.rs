//! The scheduler's timer table: a calendar wheel of 1 ms buckets for the
//! next few seconds plus a heap for anything further out.
//!
//! Thousands of checks each re-arm a timer on every attempt. A binary heap
//! of that many entries costs a cache miss per level on every pop; the wheel
//! costs a push on insert and a bucket walk on expiry, whatever the count.
//! Deadlines are kept exact: the bucket only says which millisecond a timer
//! falls in, [`TimerWheel::take_due`] still compares the exact instant.
//!
//! Cancelled timers are not searched for: each entry carries the generation
//! of the check's phase when it was armed, and the owner drops entries whose
//! generation is stale when it meets them (`is_live`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Buckets in the wheel: 4096 × 1 ms ≈ 4 s ahead, which covers the usual
/// 1-3 s `delay_loop` and timeouts; longer ones wait in the heap.
const WHEEL_SIZE: usize = 4096;
const WORDS: usize = WHEEL_SIZE / 64;
const TICK: Duration = Duration::from_millis(1);

/// One armed timer: `slot` and `generation` identify the check and its phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer {
    pub(crate) when: Instant,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

#[derive(Debug)]
pub(crate) struct TimerWheel {
    /// Instant of tick 0; set by the first timer.
    epoch: Option<Instant>,
    /// Every tick before this one has been drained.
    cursor: u64,
    buckets: Vec<Vec<Timer>>,
    /// Bit `i` set when `buckets[i]` is not empty.
    occupied: [u64; WORDS],
    /// Timers at or beyond `cursor + WHEEL_SIZE` ticks.
    far: BinaryHeap<Reverse<(u64, Timer)>>,
}

impl TimerWheel {
    pub(crate) fn new() -> Self {
        Self {
            epoch: None,
            cursor: 0,
            buckets: vec![Vec::new(); WHEEL_SIZE],
            occupied: [0; WORDS],
            far: BinaryHeap::new(),
        }
    }

    fn tick_of(&mut self, when: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(when);
        let nanos = when.saturating_duration_since(epoch).as_nanos() / TICK.as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    pub(crate) fn insert(&mut self, timer: Timer) {
        let tick = self.tick_of(timer.when).max(self.cursor);
        if tick - self.cursor < WHEEL_SIZE as u64 {
            self.put(tick, timer);
        } else {
            self.far.push(Reverse((tick, timer)));
        }
    }

    fn put(&mut self, tick: u64, timer: Timer) {
        let index = (tick % WHEEL_SIZE as u64) as usize;
        if let Some(bucket) = self.buckets.get_mut(index) {
            bucket.push(timer);
        }
        if let Some(word) = self.occupied.get_mut(index / 64) {
            *word |= 1 << (index % 64);
        }
    }

    fn clear_bit(&mut self, index: usize) {
        if let Some(word) = self.occupied.get_mut(index / 64) {
            *word &= !(1 << (index % 64));
        }
    }

    /// Index of the first occupied bucket at or after `from` (circularly),
    /// as a distance in ticks from `from`.
    fn next_occupied(&self, from: usize) -> Option<usize> {
        for step in 0..=WORDS {
            let word_index = (from / 64 + step) % WORDS;
            let mut word = self.occupied.get(word_index).copied().unwrap_or(0);
            if step == 0 {
                word &= u64::MAX << (from % 64);
            } else if step == WORDS {
                // Wrapped around to the starting word: only bits before `from`.
                word &= (1_u64 << (from % 64)).wrapping_sub(1);
            }
            if word != 0 {
                let index = word_index * 64 + word.trailing_zeros() as usize;
                return Some((index + WHEEL_SIZE - from) % WHEEL_SIZE);
            }
        }
        None
    }

    /// Moves timers from the heap into the wheel once they are within reach.
    fn pull_far(&mut self) {
        while let Some(Reverse((tick, timer))) = self.far.peek().copied() {
            if tick >= self.cursor.saturating_add(WHEEL_SIZE as u64) {
                break;
            }
            self.far.pop();
            self.put(tick.max(self.cursor), timer);
        }
    }

    /// The earliest live deadline; stale entries met on the way are dropped.
    pub(crate) fn next_deadline(&mut self, is_live: impl Fn(&Timer) -> bool) -> Option<Instant> {
        let start = (self.cursor % WHEEL_SIZE as u64) as usize;
        while let Some(distance) = self.next_occupied(start) {
            let index = (start + distance) % WHEEL_SIZE;
            let Some(bucket) = self.buckets.get_mut(index) else {
                break;
            };
            bucket.retain(|timer| is_live(timer));
            if let Some(earliest) = bucket.iter().map(|timer| timer.when).min() {
                return Some(earliest);
            }
            self.clear_bit(index);
        }
        while let Some(Reverse((_, timer))) = self.far.peek() {
            if is_live(timer) {
                return Some(timer.when);
            }
            self.far.pop();
        }
        None
    }

    /// Moves every timer due at `now` (live or not) into `due`, earliest
    /// first.
    pub(crate) fn take_due(&mut self, now: Instant, due: &mut Vec<Timer>) {
        if self.epoch.is_none() {
            return;
        }
        let target = self.tick_of(now);
        if target < self.cursor {
            return; // `now` went backwards: nothing new can be due
        }
        loop {
            let start = (self.cursor % WHEEL_SIZE as u64) as usize;
            let Some(distance) = self.next_occupied(start) else {
                break;
            };
            let tick = self.cursor + distance as u64;
            if tick > target {
                break;
            }
            let index = (start + distance) % WHEEL_SIZE;
            let Some(bucket) = self.buckets.get_mut(index) else {
                break;
            };
            if tick < target {
                due.append(bucket);
            } else {
                // The current millisecond: only what is really due.
                take_until(bucket, now, due);
            }
            if bucket.is_empty() {
                self.clear_bit(index);
            }
            if tick == target {
                break;
            }
            self.cursor = tick + 1;
            self.pull_far();
        }
        self.cursor = self.cursor.max(target);
        self.pull_far();
        // Far timers that `now` jumped past were just put in the current
        // bucket; take the due ones too.
        let index = (self.cursor % WHEEL_SIZE as u64) as usize;
        if let Some(bucket) = self.buckets.get_mut(index) {
            take_until(bucket, now, due);
            if bucket.is_empty() {
                self.clear_bit(index);
            }
        }
        // Earliest first; equal deadlines in the order they were armed.
        due.sort_by_key(|timer| timer.when);
    }
}

/// Moves the timers of `bucket` due at `now` to `due`, keeping their order.
fn take_until(bucket: &mut Vec<Timer>, now: Instant, due: &mut Vec<Timer>) {
    bucket.retain(|timer| {
        if timer.when <= now {
            due.push(*timer);
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(base: Instant, ms: u64, slot: u32) -> Timer {
        Timer {
            when: base + Duration::from_millis(ms),
            slot,
            generation: 0,
        }
    }

    #[test]
    fn due_timers_come_out_in_any_order_but_never_early() {
        let base = Instant::now();
        let mut wheel = TimerWheel::new();
        for (slot, ms) in [(0, 0), (1, 5), (2, 5), (3, 4095), (4, 4096), (5, 60_000)] {
            wheel.insert(timer(base, ms, slot));
        }
        let mut due = Vec::new();
        assert_eq!(wheel.next_deadline(|_| true), Some(base));
        wheel.take_due(base + Duration::from_millis(4), &mut due);
        assert_eq!(due.iter().map(|t| t.slot).collect::<Vec<_>>(), [0]);
        due.clear();
        assert_eq!(
            wheel.next_deadline(|_| true),
            Some(base + Duration::from_millis(5))
        );
        wheel.take_due(base + Duration::from_millis(4096), &mut due);
        let mut slots: Vec<u32> = due.iter().map(|t| t.slot).collect();
        slots.sort_unstable();
        assert_eq!(slots, [1, 2, 3, 4]);
        due.clear();
        assert_eq!(
            wheel.next_deadline(|_| true),
            Some(base + Duration::from_millis(60_000))
        );
        // A jump far past everything drains the heap too.
        wheel.take_due(base + Duration::from_secs(3600), &mut due);
        assert_eq!(due.iter().map(|t| t.slot).collect::<Vec<_>>(), [5]);
        assert_eq!(wheel.next_deadline(|_| true), None);
    }

    #[test]
    fn sub_millisecond_deadlines_are_exact() {
        let base = Instant::now();
        let mut wheel = TimerWheel::new();
        wheel.insert(timer(base, 0, 9));
        let half = base + Duration::from_micros(1500);
        wheel.insert(Timer {
            when: half,
            slot: 1,
            generation: 0,
        });
        let mut due = Vec::new();
        wheel.take_due(base, &mut due);
        due.clear();
        wheel.take_due(base + Duration::from_micros(1499), &mut due);
        assert!(due.is_empty(), "not due 1 µs early");
        assert_eq!(wheel.next_deadline(|_| true), Some(half));
        wheel.take_due(half, &mut due);
        assert_eq!(due.len(), 1);
    }

    #[test]
    fn stale_entries_are_skipped_by_next_deadline() {
        let base = Instant::now();
        let mut wheel = TimerWheel::new();
        wheel.insert(timer(base, 10, 1));
        wheel.insert(timer(base, 20, 2));
        wheel.insert(timer(base, 9000, 3));
        wheel.insert(timer(base, 9500, 4));
        assert_eq!(
            wheel.next_deadline(|t| t.slot == 2 || t.slot == 4),
            Some(base + Duration::from_millis(20))
        );
        assert_eq!(
            wheel.next_deadline(|t| t.slot == 4),
            Some(base + Duration::from_millis(9500))
        );
    }

    #[test]
    fn overdue_insert_lands_in_the_current_bucket() {
        let base = Instant::now();
        let mut wheel = TimerWheel::new();
        wheel.insert(timer(base, 0, 0));
        let mut due = Vec::new();
        wheel.take_due(base + Duration::from_millis(100), &mut due);
        wheel.insert(timer(base, 50, 1)); // already in the past
        assert_eq!(
            wheel.next_deadline(|_| true),
            Some(base + Duration::from_millis(50))
        );
        due.clear();
        wheel.take_due(base + Duration::from_millis(100), &mut due);
        assert_eq!(due.len(), 1);
    }
}
