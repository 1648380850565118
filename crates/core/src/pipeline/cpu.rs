//! The CPU path's worker threads.

use super::compute::compute_task;
use super::reader::read_task;
use super::{Finished, Flow};
use crate::backend::AudioBatch;
use crate::error::Result;
use crate::progress::Progress;
use crate::read::Reader;
use crossbeam_channel::Sender;

/// A worker of the CPU path: claims tasks in order, and reads, computes and places each on this
/// thread (the samples are still in cache when they are computed), then hands it to the
/// accountant.
///
/// Ends when the claims run out, the run stops, or the accountant no longer takes results. A
/// backend that cannot be made fails the run. Its `Drop` stops the run if it unwinds; its
/// sender goes with it, and the accountant ends once every worker's has.
pub(super) struct CpuWorker<'a> {
    flow: &'a Flow<'a>,
    done: Sender<Result<Finished>>,
}

impl<'a> CpuWorker<'a> {
    pub(super) fn new(flow: &'a Flow<'a>, done: Sender<Result<Finished>>) -> Self {
        CpuWorker { flow, done }
    }

    pub(super) fn run(self) {
        let flow = self.flow;
        let cfg = flow.cfg;
        let mut backend = match flow.factory.create(cfg) {
            Ok(b) => b,
            Err(e) => return flow.halt.fail(e),
        };
        let mut reader = Reader::new(cfg);
        let mut batch = AudioBatch::default();
        while let Some(t) = flow.claims.claim(|| flow.halt.is_set()) {
            let outcomes = read_task(flow, &mut reader, t, &mut batch);
            let computed = compute_task(flow, backend.as_mut(), "compute", t, &batch, outcomes);
            let r = flow.place(computed);
            Progress::add(&flow.progress().queued, 1);
            if self.done.send(r).is_err() {
                break;
            }
        }
    }
}

impl Drop for CpuWorker<'_> {
    fn drop(&mut self) {
        self.flow.halt.thread_ends();
    }
}
