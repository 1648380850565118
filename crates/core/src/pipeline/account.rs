//! The accountant: takes placed tasks back in task order to checksum, record and journal them.

use super::{Finished, Flow};
use crate::backend::BackendFactory;
use crate::config::BackendKind;
use crate::error::{Error, Result};
use crate::journal::JournalHeader;
use crate::progress::{Phase, Progress};
use crate::trace;
use crate::write::OutputWriter;
use crossbeam_channel::Receiver;
use std::collections::BTreeMap;

/// Runs on the thread that called the pipeline, inside the thread scope: takes tasks whose rows
/// are already in place, in any order, and accounts them in task order (the array's length and
/// checksum, the file records, the mapping, the journal's checkpoints), then moves the in-order
/// window on.
///
/// Invariants:
/// - Only the accountant touches the [`OutputWriter`], and it accounts task `n` only after tasks
///   `0..n`: what the journal records is always a prefix of the rows, whatever order they were
///   placed in. Tasks that arrive early wait in `pending`, at most the window's depth of them.
/// - The journal names the backend that computed: a device factory may fall back to the CPU
///   (`--device auto`), which it knows once its first backend is made. The head's tasks come
///   first and are computed on the CPU either way, so the question is settled ([`settle`]) at the
///   first device task or the first checkpoint, whichever comes first (a checkpoint then waits
///   until the device has started or failed).
/// - A machine error in a file (no descriptors left, a lost mount) stops the run before its
///   task, resumable, instead of committing a good file as failed; so does a failed file with
///   `strict`.
/// - It ends when every sender of results has ended, or at the first error. Its `Drop` (also
///   on a panic) stops the run and opens the window for good, so that no thread waits for it,
///   and then drops its receiver, so that no thread blocks sending to it: the scope can end.
pub(super) struct Accountant<'a, 'w> {
    flow: &'a Flow<'a>,
    writer: &'w mut OutputWriter,
    header: &'a JournalHeader,
    settled: &'w mut bool,
    results: Receiver<Result<Finished>>,
}

impl<'a, 'w> Accountant<'a, 'w> {
    pub(super) fn new(
        flow: &'a Flow<'a>,
        writer: &'w mut OutputWriter,
        header: &'a JournalHeader,
        settled: &'w mut bool,
        results: Receiver<Result<Finished>>,
    ) -> Self {
        Accountant {
            flow,
            writer,
            header,
            settled,
            results,
        }
    }

    pub(super) fn run(mut self) {
        let flow = self.flow;
        let mut pending: BTreeMap<usize, Finished> = BTreeMap::new();
        let mut next_write = 0usize;
        while let Ok(r) = self.results.recv() {
            let d = match r {
                Ok(d) => d,
                Err(e) => {
                    flow.halt.fail(e);
                    break;
                }
            };
            // The first device task: a backend has been made, so a device factory has decided
            // whether it fell back.
            if d.task >= flow.plan.head_tasks {
                if let Err(e) = self.settle() {
                    flow.halt.fail(e);
                    break;
                }
            }
            pending.insert(d.task, d);
            while let Some(d) = pending.remove(&next_write) {
                if let Err(e) = self.account(d) {
                    flow.halt.fail(e);
                    break;
                }
                next_write += 1;
                flow.claims.advance(next_write);
                let depth = flow.plan.knobs.queue_depth + flow.plan.ahead;
                if next_write + depth >= flow.plan.tasks.len() {
                    flow.progress().set_phase(Phase::Drain);
                }
            }
            if flow.halt.failed() {
                break;
            }
        }
    }

    /// Accounts the next task in order.
    fn account(&mut self, d: Finished) -> Result<()> {
        let flow = self.flow;
        let progress = flow.progress();
        let files = flow.plan.tasks[d.task];
        Progress::add(&progress.queued, 0u64.wrapping_sub(1));
        // An error of the machine (no descriptors left, a lost mount) says nothing about the
        // file: stop before its task, resumable, instead of committing a good file as failed.
        if let Some((f, code)) = files
            .iter()
            .zip(&d.outcomes)
            .find_map(|(f, o)| Some((f, o.machine_error?)))
        {
            return Err(Error::Machine {
                path: f.path.clone(),
                error: std::io::Error::from_raw_os_error(code),
            });
        }
        if flow.plan.knobs.strict {
            if let Some((f, o)) = files
                .iter()
                .zip(&d.outcomes)
                .find(|(_, o)| o.status.is_failed())
            {
                let reason = match &o.status {
                    crate::manifest::FileStatus::Failed { reason } => reason.clone(),
                    _ => String::new(),
                };
                return Err(Error::StrictFailure {
                    path: f.path.clone(),
                    reason,
                });
            }
        }
        Progress::timed(&progress.write_ns, || {
            trace::span("write", d.task as u64, || {
                self.writer
                    .append_written(files, &d.outcomes, d.features.as_bytes())
            })
        })?;
        // Decided once: a checkpoint that fell due between two looks at the clock must not
        // journal before the backend is settled.
        if self.writer.checkpoint_due() {
            self.settle()?;
            Progress::timed(&progress.checkpoint_ns, || self.writer.checkpoint())?;
        }
        Progress::add(&progress.files_done, d.outcomes.len() as u64);
        Progress::add(
            &progress.files_failed,
            d.outcomes.iter().filter(|o| o.status.is_failed()).count() as u64,
        );
        Progress::add(&progress.rows_done, d.outcomes.iter().map(|o| o.rows).sum());
        Progress::add(&progress.bytes_written, d.features.as_bytes().len() as u64);
        flow.features.give(d.features);
        Ok(())
    }

    fn settle(&mut self) -> Result<()> {
        settle(self.flow.factory, self.header, self.writer, self.settled)
    }
}

impl Drop for Accountant<'_, '_> {
    fn drop(&mut self) {
        // Unblock anyone still waiting so the scope can end; the receiver goes with the fields.
        self.flow.halt.stop_all();
        self.flow.claims.open_all();
    }
}

/// Journals the backend that computes, once (`settled`): a factory that fell back to the CPU
/// changes the journal's backend kind to "cpu".
pub(super) fn settle(
    factory: &dyn BackendFactory,
    header: &JournalHeader,
    writer: &mut OutputWriter,
    settled: &mut bool,
) -> Result<()> {
    if !std::mem::replace(settled, true) && factory.fell_back_to_cpu() {
        let mut h = header.clone();
        h.backend_kind = BackendKind::Cpu;
        writer.change_backend(&h, &factory.name())?;
    }
    Ok(())
}
