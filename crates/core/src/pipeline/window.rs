//! The in-order window: tasks are handed out in order, and only so far ahead of the accountant.

use super::halt::wait_or_halt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// Hands out task indices in row order, each once, and lets a claimed task start only when it
/// is within `depth` tasks of the accountant (the window), so that results waiting to be
/// accounted in order stay bounded even if one task is slow.
///
/// Invariants:
/// - `next` only grows; a task index below the task count is handed out exactly once. The claim
///   that finds no task left leaves `next` at or past the count, which is how
///   [`Claims::over`] knows (SeqCst: a device run's readers count themselves as waiting for a
///   batch before they claim, and whoever sees the claims run out must see that count; see
///   `BatchPool`).
/// - `written` (tasks accounted) only grows, and only the accountant moves it. A task
///   `t < written + depth` may start. `depth` is the queue depth plus the tasks allowed ahead,
///   so at most that many tasks hold samples or features at once: the memory bound.
/// - A waiting claim looks at the halt at least every 50 ms, and the accountant opens the
///   window all the way when it ends ([`Claims::open_all`]), so no claim outlives the run.
pub(super) struct Claims {
    next: AtomicUsize,
    tasks: usize,
    written: Mutex<usize>,
    cv: Condvar,
    depth: usize,
}

impl Claims {
    /// `tasks` tasks, at most `depth` of them past the last one accounted.
    pub(super) fn new(tasks: usize, depth: usize) -> Self {
        Claims {
            next: AtomicUsize::new(0),
            tasks,
            written: Mutex::new(0),
            cv: Condvar::new(),
            depth,
        }
    }

    /// Takes a task index, or None when there is no more work (or the run stops).
    pub(super) fn claim(&self, halt: impl Fn() -> bool) -> Option<usize> {
        if halt() {
            return None;
        }
        let t = self.next.fetch_add(1, Ordering::SeqCst);
        if t >= self.tasks {
            return None;
        }
        if !self.wait_for(t, &halt) || halt() {
            return None;
        }
        Some(t)
    }

    /// Whether the claims ran out: set by the claim that found no task (SeqCst, after every
    /// successful claimer counted itself as waiting for a batch), not by a halt.
    pub(super) fn over(&self) -> bool {
        self.next.load(Ordering::SeqCst) >= self.tasks
    }

    /// Waits until `task` may start; false if the run stops first.
    fn wait_for(&self, task: usize, halt: impl Fn() -> bool) -> bool {
        wait_or_halt(&self.written, &self.cv, halt, |w| {
            (task < *w + self.depth).then_some(())
        })
        .is_some()
    }

    /// Tasks `0..to` are accounted: the window moves on.
    pub(super) fn advance(&self, to: usize) {
        *self.written.lock().unwrap_or_else(|p| p.into_inner()) = to;
        self.cv.notify_all();
    }

    /// Opens the window for good: nothing waits for the accountant any more (it has ended).
    pub(super) fn open_all(&self) {
        self.advance(usize::MAX / 2);
    }
}
