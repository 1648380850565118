//! The CPU head of a device run: CPU threads compute its first tasks while the device starts.

use super::ahead::Handoff;
use super::compute::compute_task;
use super::device::Device;
use super::{Flow, ReadTask};
use crate::backend::BackendFactory;
use crossbeam_channel::Receiver;

/// A CPU-head thread: takes the head's read tasks (the first `head_tasks`, see
/// `plan::cpu_head_files`), computes them with a CPU backend, gives each batch back to the pool
/// and hands the task on ([`Handoff`]), like a compute thread.
///
/// Holds the device like a compute thread (a batch the device page-locked may come back to it)
/// and lets go in its `Drop`, once its backend is dropped; a panic also stops the run.
pub(super) struct HeadThread<'a> {
    flow: &'a Flow<'a>,
    device: &'a Device<'a>,
    tasks: Receiver<ReadTask>,
    hand: Handoff<'a>,
}

impl<'a> HeadThread<'a> {
    pub(super) fn new(
        flow: &'a Flow<'a>,
        device: &'a Device<'a>,
        tasks: Receiver<ReadTask>,
        hand: Handoff<'a>,
    ) -> Self {
        HeadThread {
            flow,
            device,
            tasks,
            hand,
        }
    }

    pub(super) fn run(self) {
        let flow = self.flow;
        let mut backend = match crate::dsp::CpuBackendFactory.create(flow.cfg) {
            Ok(b) => b,
            Err(e) => return flow.halt.fail(e),
        };
        for ReadTask {
            task: t,
            outcomes,
            batch,
        } in self.tasks.iter()
        {
            if flow.halt.is_set() {
                break;
            }
            let computed =
                compute_task(flow, backend.as_mut(), "compute-head", t, &batch, outcomes);
            self.device.pool.give_back(&flow.claims, batch);
            if !self.hand.pass(computed) {
                break;
            }
        }
    }
}

impl Drop for HeadThread<'_> {
    fn drop(&mut self) {
        self.flow.halt.thread_ends();
        self.device.let_go(|| self.flow.halt.is_set());
    }
}
