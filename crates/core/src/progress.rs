//! Counters the pipeline updates as it goes, read by the status line.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Instant;

/// Phase of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Discovery, checks, output preparation, backend start.
    Init = 0,
    /// Reading, computing, writing.
    Run = 1,
    /// No more tasks to start; the last ones finish.
    Drain = 2,
    /// fsync, manifest, rename.
    Commit = 3,
    /// Finished.
    Done = 4,
}

impl Phase {
    /// Upper-case name, as the status line shows it.
    pub fn name(self) -> &'static str {
        ["INIT", "RUN", "DRAIN", "COMMIT", "DONE"][self as usize]
    }
}

/// Live counters of a run, shared between the pipeline's threads and the status reporter.
#[derive(Debug)]
pub struct Progress {
    phase: AtomicU8,
    /// Input files in the run.
    pub files_total: AtomicU64,
    /// Files written.
    pub files_done: AtomicU64,
    /// Files that failed so far.
    pub files_failed: AtomicU64,
    /// Rows written.
    pub rows_done: AtomicU64,
    /// Input bytes read.
    pub bytes_read: AtomicU64,
    /// Output bytes written.
    pub bytes_written: AtomicU64,
    /// Tasks read or computed but not yet written (queue fill).
    pub queued: AtomicU64,
    /// Capacity of that queue.
    pub queue_capacity: AtomicU64,
    /// Thread-seconds spent reading and decoding (nanoseconds, summed over threads).
    pub read_ns: AtomicU64,
    /// Thread-seconds spent in the backend.
    pub compute_ns: AtomicU64,
    /// Time the writer spent appending rows.
    pub write_ns: AtomicU64,
    /// Time the writer spent in checkpoints (fsync + journal).
    pub checkpoint_ns: AtomicU64,
    /// When the run started.
    pub started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            phase: AtomicU8::new(0),
            files_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            files_failed: AtomicU64::new(0),
            rows_done: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            queue_capacity: AtomicU64::new(0),
            read_ns: AtomicU64::new(0),
            compute_ns: AtomicU64::new(0),
            write_ns: AtomicU64::new(0),
            checkpoint_ns: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl Progress {
    /// Current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Init,
            1 => Phase::Run,
            2 => Phase::Drain,
            3 => Phase::Commit,
            _ => Phase::Done,
        }
    }

    /// Moves to `p`.
    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Adds to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Runs `f`, adding its wall time to the nanosecond counter `c`.
    pub fn timed<T>(c: &AtomicU64, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        c.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    /// A nanosecond counter in seconds.
    pub fn secs(c: &AtomicU64) -> f64 {
        c.load(Ordering::Relaxed) as f64 / 1e9
    }
}
