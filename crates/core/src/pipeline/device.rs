//! What the device path's threads share: the batch pool, their counts, and the device's early
//! release.

use super::plan::{head_threads, Plan};
use super::pool::BatchPool;
use crate::backend::BackendFactory;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The device path's shared state.
///
/// The device is given back as soon as no thread needs it, while the last rows are still on
/// their way to the disk: the thread that lets go last retires the pooled batches (their
/// page-locked registrations hold the device's context) and releases.
///
/// Invariants:
/// - `holders` starts at the number of compute and CPU-head threads (the head's threads hold
///   the device too: a batch the device page-locked may come back to them, and its
///   registration must go before the context does). Each lets go exactly once (at the latest
///   in its `Drop`), so the count reaches zero exactly once, after every backend is dropped.
/// - `readers_left` counts readers that may still send a task. A reader counts itself out
///   after its last send and before it drops its senders; compute threads end only once every
///   reader has dropped them, so the last holder at the end of a run sees zero and may take
///   the pool's last batches. A compute thread that sees zero and an empty queue knows no task
///   is left for any thread and lets go before writing its last rows.
/// - A run that stops is never released here: its process tears the device down (a stopped
///   run's reader may still wait for a batch).
pub(super) struct Device<'a> {
    pub(super) pool: BatchPool,
    /// Whether readers decode 16-bit PCM as it is for the device.
    pub(super) pcm16: bool,
    /// Compute threads that drive the device: one per stream and device.
    pub(super) device_threads: usize,
    /// Compute threads in all: a factory that falls back to the CPU gets as many as a CPU run
    /// has (the spare ones end at once if the device started).
    pub(super) compute_threads: usize,
    /// CPU threads of the head (none without head tasks).
    pub(super) head_threads: usize,
    holders: AtomicUsize,
    readers_left: AtomicUsize,
    release: &'a (dyn Fn() + Sync),
}

impl<'a> Device<'a> {
    pub(super) fn new(
        plan: &Plan<'_>,
        factory: &dyn BackendFactory,
        release: &'a (dyn Fn() + Sync),
    ) -> Self {
        let knobs = &plan.knobs;
        let device_threads = knobs.streams * factory.devices().max(1);
        let compute_threads = device_threads.max(knobs.threads);
        let head_threads = if plan.head_tasks > 0 {
            head_threads(knobs)
        } else {
            0
        };
        Device {
            pool: BatchPool::new(knobs.queue_depth),
            pcm16: factory.accepts_i16(),
            device_threads,
            compute_threads,
            head_threads,
            holders: AtomicUsize::new(compute_threads + head_threads),
            readers_left: AtomicUsize::new(knobs.readers),
            release,
        }
    }

    /// A reader will send no more tasks.
    pub(super) fn reader_ended(&self) {
        self.readers_left.fetch_sub(1, Ordering::AcqRel);
    }

    /// Every reader has ended.
    pub(super) fn readers_ended(&self) -> bool {
        self.readers_left.load(Ordering::Acquire) == 0
    }

    /// A compute or CPU-head thread no longer needs the device (called once per thread); the
    /// last one retires what the last reader left and gives the device back, unless the run
    /// stops.
    pub(super) fn let_go(&self, halt: impl Fn() -> bool) {
        if self.holders.fetch_sub(1, Ordering::AcqRel) == 1 && !halt() {
            // What the last reader left (a batch sent back as it ended); only once every
            // reader has ended: a stopped run's reader may still wait for a batch.
            if self.readers_ended() {
                self.pool.retire_rest();
            }
            (self.release)();
        }
    }
}
