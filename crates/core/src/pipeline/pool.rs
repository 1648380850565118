//! Reused buffers: the device path's pool of sample batches, and feature buffers.

use super::window::Claims;
use crate::backend::{AudioBatch, FeatureBuf};
use crate::config::{Dtype, Params};
use crate::trace;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Feature buffers the accountant is done with, for the next tasks' computations (no
/// allocation per task once the run is under way).
///
/// Invariant: a bounded channel (queue depth + tasks ahead + 4): the accountant gives back
/// without blocking (a full pool drops the buffer), a compute stage takes without blocking (an
/// empty pool allocates).
pub(super) struct FeaturePool {
    tx: Sender<FeatureBuf>,
    rx: Receiver<FeatureBuf>,
    dtype: Dtype,
    values_per_row: usize,
}

impl FeaturePool {
    pub(super) fn new(cfg: &Params, capacity: usize) -> Self {
        let (tx, rx) = bounded(capacity);
        FeaturePool {
            tx,
            rx,
            dtype: cfg.dtype,
            values_per_row: cfg.values_per_row(),
        }
    }

    /// A buffer sized for `rows` rows.
    pub(super) fn take(&self, rows: usize) -> FeatureBuf {
        let mut b = self
            .rx
            .try_recv()
            .unwrap_or_else(|_| FeatureBuf::new(self.dtype));
        b.resize(rows * self.values_per_row);
        b
    }

    /// Keeps `buf` for a later task, if there is room.
    pub(super) fn give(&self, buf: FeatureBuf) {
        let _ = self.tx.try_send(buf);
    }
}

/// The device path's sample batches: `queue_depth` of them, made up front, go round from the
/// readers (who fill one per task) to the compute and CPU-head threads (who give it back as soon
/// as it is computed, before the task's rows are written: a reader may be waiting for one to
/// read the task whose rows come before these). A GPU backend page-locks each batch once, so
/// batches are reused, never reallocated.
///
/// Invariants:
/// - At most `queue_depth` batches exist: the channel holds the free ones and never blocks a
///   sender.
/// - `needy` counts readers that have claimed, or are about to claim, a task and still wait
///   for a batch. A reader counts itself before it claims (SeqCst, like the claim), so once
///   [`Claims::over`] is seen, `needy` covers every reader that will ever take a batch again.
/// - Once the claims are over, batches beyond `needy` are retired at once (their page-locked
///   registrations go on the retiring thread, their memory on a thread of its own) rather than
///   in the chain that gives the device back after the last task. One drain at a time
///   (`drain_lock`), so that two drains do not both take the same margin.
/// - A reader waiting for a batch looks at the halt every 50 ms: a compute thread that stops
///   drops the batch it took.
pub(super) struct BatchPool {
    free_tx: Sender<AudioBatch>,
    free_rx: Receiver<AudioBatch>,
    needy: AtomicUsize,
    drain_lock: Mutex<()>,
}

impl BatchPool {
    /// `n` empty batches.
    pub(super) fn new(n: usize) -> Self {
        let (free_tx, free_rx) = bounded::<AudioBatch>(n);
        for _ in 0..n {
            let _ = free_tx.send(AudioBatch::default());
        }
        BatchPool {
            free_tx,
            free_rx,
            needy: AtomicUsize::new(0),
            drain_lock: Mutex::new(()),
        }
    }

    /// Claims a task and waits for a free batch to read it into; None when there is no more
    /// work or the run stops.
    pub(super) fn claim(
        &self,
        claims: &Claims,
        halt: impl Fn() -> bool,
    ) -> Option<(usize, AudioBatch)> {
        self.needy.fetch_add(1, Ordering::SeqCst);
        let Some(t) = claims.claim(&halt) else {
            self.needy.fetch_sub(1, Ordering::SeqCst);
            return None;
        };
        let batch = trace::span("wait-free-batch", t as u64, || loop {
            match self.free_rx.recv_timeout(Duration::from_millis(50)) {
                Err(RecvTimeoutError::Timeout) if !halt() => continue,
                r => break r.map_err(|_| ()),
            }
        });
        self.needy.fetch_sub(1, Ordering::SeqCst);
        batch.ok().map(|b| (t, b))
    }

    /// A computed task's batch comes back: to the readers, or retired once no reader needs one
    /// again.
    pub(super) fn give_back(&self, claims: &Claims, batch: AudioBatch) {
        if claims.over() && self.needy.load(Ordering::SeqCst) == 0 {
            retire(vec![batch]);
        } else {
            let _ = self.free_tx.send(batch);
        }
    }

    /// Retires the free batches beyond those the waiting readers need (the claims are over).
    pub(super) fn drain_surplus(&self) {
        let surplus: Vec<AudioBatch> = {
            let _one_at_a_time = self.drain_lock.lock().unwrap_or_else(|p| p.into_inner());
            std::iter::from_fn(|| {
                (self.free_rx.len() > self.needy.load(Ordering::SeqCst))
                    .then(|| self.free_rx.try_recv().ok())
                    .flatten()
            })
            .collect()
        };
        if !surplus.is_empty() {
            retire(surplus);
        }
    }

    /// Retires every free batch (every reader has ended).
    pub(super) fn retire_rest(&self) {
        retire(self.free_rx.try_iter().collect());
    }
}

/// Lets go of batches no reader needs again: their page-locked registrations go now, on this
/// thread (they hold the device's context, which is given back next), and their memory is freed
/// by a thread of its own. On the H100 machine the registrations took about 0.3 ms a batch and
/// the frees 1.5–2 ms (unmapping 10.5 MB while 16 threads run), all of it between the last task
/// and the device's release (docs/PERFORMANCE.md, 'Design: the GPU given back before the
/// exit').
fn retire(mut batches: Vec<AudioBatch>) {
    if batches.is_empty() {
        return;
    }
    trace::span("unpin-batches", batches.len() as u64, || {
        batches.iter_mut().for_each(|b| b.samples.unpin())
    });
    let freed = std::thread::Builder::new()
        .name("free-batches".into())
        .spawn(move || trace::span("free-batches", 0, || drop(batches)));
    // Without a thread the memory is freed here, as before.
    drop(freed);
}
