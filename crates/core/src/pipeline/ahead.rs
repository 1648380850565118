//! Tasks ahead of the disk: where a computed task goes next, and the threads that write the
//! rows of a device run's tasks at their place.

use super::{Finished, Flow};
use crate::error::Result;
use crossbeam_channel::{Receiver, Sender};

/// Where a compute or CPU-head thread hands a computed task: with tasks ahead (a device run
/// with [`Plan::ahead`](super::plan::Plan) above zero), to the [`AheadWriter`]s, so that the
/// thread takes its next batch at once (a thread that waited for the rows before these would
/// keep from the tasks that hold the batches); else its rows are placed on this thread and the
/// task goes to the accountant.
#[derive(Clone)]
pub(super) struct Handoff<'a> {
    flow: &'a Flow<'a>,
    to_place: Option<Sender<Result<Finished>>>,
    done: Sender<Result<Finished>>,
}

impl<'a> Handoff<'a> {
    pub(super) fn new(
        flow: &'a Flow<'a>,
        to_place: Option<Sender<Result<Finished>>>,
        done: Sender<Result<Finished>>,
    ) -> Self {
        Handoff {
            flow,
            to_place,
            done,
        }
    }

    /// Hands `computed` on; false once results are no longer taken.
    pub(super) fn pass(&self, computed: Result<Finished>) -> bool {
        match &self.to_place {
            Some(to_place) => to_place.send(computed).is_ok(),
            None => self.done.send(self.flow.place(computed)).is_ok(),
        }
    }
}

/// A writer thread of a device run with tasks ahead (as many as the device has compute
/// threads): writes computed tasks' rows at their place and passes them to the accountant.
///
/// Its queue is unbounded, but the in-order window bounds what is in it (queue depth plus the
/// tasks ahead). Ends once every compute and CPU-head thread has dropped its [`Handoff`], or
/// when the accountant no longer takes results; its `Drop` stops the run if it unwinds.
pub(super) struct AheadWriter<'a> {
    flow: &'a Flow<'a>,
    computed: Receiver<Result<Finished>>,
    done: Sender<Result<Finished>>,
}

impl<'a> AheadWriter<'a> {
    pub(super) fn new(
        flow: &'a Flow<'a>,
        computed: Receiver<Result<Finished>>,
        done: Sender<Result<Finished>>,
    ) -> Self {
        AheadWriter {
            flow,
            computed,
            done,
        }
    }

    pub(super) fn run(self) {
        for computed in self.computed.iter() {
            if self.done.send(self.flow.place(computed)).is_err() {
                break;
            }
        }
    }
}

impl Drop for AheadWriter<'_> {
    fn drop(&mut self) {
        self.flow.halt.thread_ends();
    }
}
