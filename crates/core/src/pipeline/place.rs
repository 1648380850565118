//! Row placement: where each task's rows go in the feature array, and writing them there.

use super::halt::wait_or_halt;
use super::Finished;
use crate::error::{Error, Result};
use crate::trace;
use crate::write::{self, PositionedWriter};
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};

/// Where each task's rows go: task `t` starts after the rows of tasks `0..t`, known as soon as
/// those tasks are read (a file's rows follow from its header; in fixed length mode they are the
/// same for every file). Readers publish each task's row count; the thread that writes a task's
/// rows at their place (a CPU worker, a compute or CPU-head thread, or an ahead writer) asks for
/// its first row first.
///
/// Invariants: each task's count is published once, by the thread that claimed and read it,
/// and each task's start is taken once, by the thread that places it. A start is known only
/// once every earlier task was read. Tasks are claimed in order, and no thread waits for a
/// placement between its claim and its read (a device reader waits only for a batch, which
/// compute threads give back before they place), so a placer waiting here waits only for reads
/// under way (or the halt, looked at every 50 ms).
pub(super) struct RowStarts {
    state: Mutex<RowState>,
    cv: Condvar,
}

struct RowState {
    /// Tasks `0..next` have known first rows.
    next: usize,
    /// The first row of task `next`.
    next_row: u64,
    /// First rows of tasks `< next` still to be asked for, and row counts of tasks `> next`
    /// published out of order.
    starts: BTreeMap<usize, u64>,
    counts: BTreeMap<usize, u64>,
}

impl RowStarts {
    pub(super) fn new() -> Self {
        RowStarts {
            state: Mutex::new(RowState {
                next: 0,
                next_row: 0,
                starts: BTreeMap::new(),
                counts: BTreeMap::new(),
            }),
            cv: Condvar::new(),
        }
    }

    /// Task `task` holds `rows` rows.
    pub(super) fn publish(&self, task: usize, rows: u64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.counts.insert(task, rows);
        let mut advanced = false;
        loop {
            let next = st.next;
            let Some(n) = st.counts.remove(&next) else {
                break;
            };
            let row = st.next_row;
            st.starts.insert(next, row);
            st.next_row += n;
            st.next += 1;
            advanced = true;
        }
        if advanced {
            self.cv.notify_all();
        }
    }

    /// The first row of `task`, once every task before it has been read; None if the run
    /// stops first. Each task's start is handed out once.
    pub(super) fn take(&self, task: usize, halt: impl Fn() -> bool) -> Option<u64> {
        wait_or_halt(&self.state, &self.cv, halt, |st| st.starts.remove(&task))
    }
}

/// Writes computed tasks' rows at their place in the feature array, in any order: the rows of a
/// task go to the file at its first row ([`RowStarts`]) times the row's bytes. The accountant
/// later takes the tasks in order; the array's length and checksum follow it, so bytes placed
/// past the last journal record are cut off by a resume.
pub(super) struct Placement {
    pub(super) starts: RowStarts,
    sink: PositionedWriter,
    row_bytes: u64,
}

impl Placement {
    pub(super) fn new(sink: PositionedWriter, row_bytes: u64) -> Self {
        Placement {
            starts: RowStarts::new(),
            sink,
            row_bytes,
        }
    }

    /// Writes a computed task's rows at their place and hands the task back for the
    /// accountant; a task whose computation failed passes its error on instead. `backend`
    /// names who computed it (asked only for an error).
    pub(super) fn place(
        &self,
        computed: Result<Finished>,
        halt: impl Fn() -> bool,
        backend: impl FnOnce() -> String,
    ) -> Result<Finished> {
        let f = computed?;
        let Some(row) = self.starts.take(f.task, halt) else {
            return Err(Error::Interrupted);
        };
        write::check_batch_bytes(&f.outcomes, f.features.as_bytes(), self.row_bytes, backend)?;
        trace::span("write-at", f.task as u64, || {
            self.sink
                .write_at(row * self.row_bytes, f.features.as_bytes())
        })?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn row_starts_follow_the_task_order_whatever_the_publishing_order() {
        let starts = RowStarts::new();
        let never = || false;
        starts.publish(2, 5);
        starts.publish(0, 3);
        assert_eq!(starts.take(0, never), Some(0));
        // Task 2's start waits for task 1, which another thread publishes a little later.
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                starts.publish(1, 0);
            });
            assert_eq!(starts.take(2, never), Some(3));
        });
        assert_eq!(starts.take(1, never), Some(3));
        starts.publish(3, 7);
        assert_eq!(starts.take(3, never), Some(8));
        // A stopped run does not wait for a task that will never be read.
        let stopped = AtomicBool::new(true);
        assert_eq!(starts.take(9, || stopped.load(Ordering::Relaxed)), None);
    }
}
