//! The compute stage, and the device path's compute threads.

use super::ahead::Handoff;
use super::device::Device;
use super::{Finished, Flow, ReadTask};
use crate::backend::{AudioBatch, Backend};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::read::FileOutcome;
use crate::trace;
use crossbeam_channel::Receiver;
use std::cell::Cell;

/// Computes task `t`'s rows from its `batch` into a pooled feature buffer (traced as `span`).
/// Shared by the CPU workers, the CPU-head threads and the compute threads.
pub(super) fn compute_task(
    flow: &Flow<'_>,
    backend: &mut dyn Backend,
    span: &'static str,
    t: usize,
    batch: &AudioBatch,
    outcomes: Vec<FileOutcome>,
) -> Result<Finished> {
    let mut features = flow.features.take(batch.rows());
    let computed = Progress::timed(&flow.progress().compute_ns, || {
        trace::span(span, t as u64, || backend.compute(batch, &mut features))
    });
    computed.map(|()| Finished {
        task: t,
        outcomes,
        features,
    })
}

/// A compute thread of the device path (one per stream and device): takes read tasks, has the
/// backend prepare and compute each, gives the batch back to the pool at once, and hands the
/// task on ([`Handoff`]).
///
/// A factory that falls back to the CPU gets as many compute threads as a CPU run has; the
/// spare ones (`index >= device_threads`) end at once if the device started.
///
/// Holds the device (see [`Device`]) until it lets go: as soon as no task is left for any
/// thread (every reader ended and the queue is empty), after dropping its backend and before
/// writing its last rows, or else in its `Drop` (also on an early end, a failure or a panic,
/// which also stops the run).
pub(super) struct ComputeThread<'a> {
    flow: &'a Flow<'a>,
    device: &'a Device<'a>,
    index: usize,
    tasks: Receiver<ReadTask>,
    hand: Handoff<'a>,
    holding: Cell<bool>,
}

impl<'a> ComputeThread<'a> {
    pub(super) fn new(
        flow: &'a Flow<'a>,
        device: &'a Device<'a>,
        index: usize,
        tasks: Receiver<ReadTask>,
        hand: Handoff<'a>,
    ) -> Self {
        ComputeThread {
            flow,
            device,
            index,
            tasks,
            hand,
            holding: Cell::new(true),
        }
    }

    pub(super) fn run(self) {
        let (flow, device) = (self.flow, self.device);
        if self.index >= device.device_threads && !flow.factory.fell_back_to_cpu() {
            return;
        }
        let mut backend = match trace::span("create-backend", 0, || flow.factory.create(flow.cfg)) {
            Ok(b) => Some(b),
            Err(e) => return flow.halt.fail(e),
        };
        for ReadTask {
            task: t,
            outcomes,
            mut batch,
        } in self.tasks.iter()
        {
            if flow.halt.is_set() {
                break;
            }
            let Some(backend_ref) = backend.as_mut() else {
                // Let go below only when no task was left: none can come.
                flow.halt.fail(Error::Output {
                    path: flow.req.out.clone(),
                    msg: "internal error: a task arrived after the device was given back".into(),
                });
                break;
            };
            trace::span("prepare", t as u64, || backend_ref.prepare(&mut batch));
            let computed = compute_task(flow, backend_ref.as_mut(), "compute", t, &batch, outcomes);
            device.pool.give_back(&flow.claims, batch);
            if device.readers_ended() && self.tasks.is_empty() {
                // No task is left for any thread: done with the device before this task's rows
                // are written.
                drop(backend.take());
                self.let_go();
            }
            if !self.hand.pass(computed) {
                break;
            }
        }
    }

    /// Lets go of the device, once.
    fn let_go(&self) {
        if self.holding.replace(false) {
            self.device.let_go(|| self.flow.halt.is_set());
        }
    }
}

impl Drop for ComputeThread<'_> {
    fn drop(&mut self) {
        self.flow.halt.thread_ends();
        self.let_go();
    }
}
