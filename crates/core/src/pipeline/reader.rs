//! The read stage, and the device path's reader threads.

use super::device::Device;
use super::{Flow, ReadTask};
use crate::backend::AudioBatch;
use crate::progress::Progress;
use crate::read::{FileOutcome, Reader};
use crate::trace;
use crossbeam_channel::Sender;

/// Reads task `t` into `batch` and publishes its row count (so that its rows and the next
/// tasks' get their place). Shared by the CPU workers and the device path's readers.
pub(super) fn read_task(
    flow: &Flow<'_>,
    reader: &mut Reader,
    t: usize,
    batch: &mut AudioBatch,
) -> Vec<FileOutcome> {
    let progress = flow.progress();
    let outcomes = Progress::timed(&progress.read_ns, || {
        trace::span("read", t as u64, || {
            reader.read_task(flow.plan.tasks[t], batch)
        })
    });
    Progress::add(&progress.bytes_read, outcomes.iter().map(|o| o.bytes).sum());
    flow.rows
        .starts
        .publish(t, outcomes.iter().map(|o| o.rows).sum());
    outcomes
}

/// A reader thread of the device path: claims tasks in order, reads each into a batch of the
/// pool, and sends it to the CPU-head threads (the head's tasks) or the compute threads.
///
/// Ends when the claims run out, the run stops, or no thread takes tasks any more. Its `Drop`
/// (also on a panic) retires the pool's surplus once the claims are over, counts itself out of
/// the readers, and only then drops its senders: idle compute threads end once every reader has
/// dropped them, and the last to end releases the device, which must find the surplus already
/// gone and no reader left (to take what is left).
pub(super) struct ReaderThread<'a> {
    flow: &'a Flow<'a>,
    device: &'a Device<'a>,
    to_compute: Sender<ReadTask>,
    to_head: Sender<ReadTask>,
}

impl<'a> ReaderThread<'a> {
    pub(super) fn new(
        flow: &'a Flow<'a>,
        device: &'a Device<'a>,
        to_compute: Sender<ReadTask>,
        to_head: Sender<ReadTask>,
    ) -> Self {
        ReaderThread {
            flow,
            device,
            to_compute,
            to_head,
        }
    }

    pub(super) fn run(self) {
        let (flow, device) = (self.flow, self.device);
        let cfg = flow.cfg;
        let mut reader = if device.pcm16 {
            Reader::with_pcm16(cfg)
        } else {
            Reader::new(cfg)
        };
        while let Some((t, mut batch)) = device.pool.claim(&flow.claims, || flow.halt.is_set()) {
            let outcomes = read_task(flow, &mut reader, t, &mut batch);
            Progress::add(&flow.progress().queued, 1);
            let to = if t < flow.plan.head_tasks {
                &self.to_head
            } else {
                &self.to_compute
            };
            let task = ReadTask {
                task: t,
                outcomes,
                batch,
            };
            if to.send(task).is_err() {
                break;
            }
        }
    }
}

impl Drop for ReaderThread<'_> {
    fn drop(&mut self) {
        self.flow.halt.thread_ends();
        // Only when the claims ran out (a halted run's readers stop with tasks left, and leave
        // the batches to the end of the run).
        if self.flow.claims.over() {
            self.device.pool.drain_surplus();
        }
        self.device.reader_ended();
        // The senders go last, with the fields.
    }
}
