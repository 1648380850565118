//! Task planning: files into tasks, the memory each task and the tasks in flight may hold, the
//! tasks a device run may hold ahead of the disk, and the CPU head's size.

use super::Knobs;
use crate::config::{LengthMode, Params};
use crate::discover::InputFile;
use crate::error::{Error, Result};
use crate::geometry::Geometry;

/// The work of a run once planned: its tasks in row order (the CPU head's first), and how many
/// may be in flight.
///
/// Invariants: every file still to compute is in exactly one task, in order; no task mixes the
/// head's files (computed on the CPU) with the device's; `knobs.queue_depth` is at least one and
/// at most the number of tasks; `ahead` is zero on the CPU path.
pub(super) struct Plan<'a> {
    /// The knobs, with the queue depth cut to the work that exists.
    pub(super) knobs: Knobs,
    /// Files of each task, in row order.
    pub(super) tasks: Vec<&'a [InputFile]>,
    /// Tasks `0..head_tasks` are the CPU head's.
    pub(super) head_tasks: usize,
    /// Computed tasks a device run may hold past the queue depth (see [`AHEAD_MEMORY`]).
    pub(super) ahead: usize,
}

impl<'a> Plan<'a> {
    /// Plans `files[done..]` (the first `done` are committed already), the first `head_files`
    /// of `files` being the CPU head's (see [`cpu_head_files`]).
    pub(super) fn new(
        files: &'a [InputFile],
        done: usize,
        head_files: usize,
        cfg: &Params,
        mut knobs: Knobs,
        cpu: bool,
        ahead_mib: Option<f64>,
    ) -> Self {
        // A device run's first files go to the CPU while the device starts (see `cpu_head_files`):
        // they form tasks of their own, so that no task mixes the two backends.
        let split = head_files.clamp(done, files.len());
        let mut tasks = plan_tasks(
            &files[done..split],
            cfg,
            knobs.files_per_task,
            task_memory(knobs.queue_depth),
        );
        let head_tasks = tasks.len();
        tasks.extend(plan_tasks(
            &files[split..],
            cfg,
            knobs.files_per_task,
            task_memory(knobs.queue_depth),
        ));
        knobs.queue_depth = knobs.queue_depth.min(tasks.len()).max(1);
        // A device run's computed tasks may wait for the disk past the queue depth (writer threads
        // then write their rows), so that the device is done before the disk.
        let ahead = if cpu {
            0
        } else {
            ahead_tasks(&tasks, cfg, ahead_mib)
        };
        Plan {
            knobs,
            tasks,
            head_tasks,
            ahead,
        }
    }
}

/// The most estimated memory (decoded samples and features) one task may hold, unless a single
/// file needs more. Without it, `files_per_task` long files make tasks of gigabytes: 16 one-hour
/// clips at 4096 Hz decode to 0.9 GB per reader. Clips of the seed's shape (≈ 180 KB each)
/// never reach it, so their tasks are unchanged.
const TASK_MEMORY: u64 = 64 << 20;

/// The most estimated memory all tasks in flight (`queue_depth` of them) may hold together: a
/// task's cap is the smaller of [`TASK_MEMORY`] and this divided by the queue depth. Without it,
/// `pool none` on the GPU path (128 files of 0.66 MB of samples and features each, 26 tasks in
/// flight) peaked at 2.1 GB resident on the H100 machine, over the 1.5 GB bound
/// (docs/ARCHITECTURE.md, Memory bounds).
const IN_FLIGHT_MEMORY: u64 = 768 << 20;

/// The memory cap of one task for a queue depth (see [`IN_FLIGHT_MEMORY`]).
fn task_memory(queue_depth: usize) -> u64 {
    TASK_MEMORY.min(IN_FLIGHT_MEMORY / queue_depth.max(1) as u64)
}

/// Cuts `files` into tasks of at most `per_task` files and at most `max_bytes` of estimated
/// memory (a file that needs more is a task of its own). The estimate uses only the discovered
/// sizes, so the plan is deterministic; tasks never change the output bytes anyway.
fn plan_tasks<'a>(
    files: &'a [InputFile],
    cfg: &Params,
    per_task: usize,
    max_bytes: u64,
) -> Vec<&'a [InputFile]> {
    let geometry = Geometry::new(cfg);
    let row_bytes = (cfg.values_per_row() * cfg.dtype.size()) as u64;
    let estimate = |f: &InputFile| -> u64 {
        let (samples, rows) = file_estimate(f, cfg, &geometry);
        samples.saturating_mul(4) + rows.saturating_mul(row_bytes)
    };
    let per_task = per_task.max(1);
    let mut tasks = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, f) in files.iter().enumerate() {
        let e = estimate(f);
        if i > start && (i - start >= per_task || bytes.saturating_add(e) > max_bytes) {
            tasks.push(&files[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(e);
    }
    if start < files.len() {
        tasks.push(&files[start..]);
    }
    tasks
}

/// Refuses a queue depth whose tasks in flight could not fit in the machine's memory: each
/// task holds at least one file, so `queue_depth` times the largest file's estimate (decoded
/// samples and features) is needed at worst. Only a depth the user chose is checked (automatic
/// ones are a few per core); this catches a `--queue-depth` typed with too many digits before
/// any work, instead of the kernel's OOM killer in the middle of the run.
pub(super) fn check_in_flight_memory(
    files: &[InputFile],
    cfg: &Params,
    queue_depth: usize,
    chosen: bool,
) -> Result<()> {
    let geometry = Geometry::new(cfg);
    let row_bytes = (cfg.values_per_row() * cfg.dtype.size()) as u64;
    let largest = files
        .iter()
        .map(|f| {
            let (samples, rows) = file_estimate(f, cfg, &geometry);
            samples
                .saturating_mul(4)
                .saturating_add(rows.saturating_mul(row_bytes))
        })
        .max()
        .unwrap_or(0);
    let need = largest.saturating_mul(queue_depth as u64);
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let physical = u64::try_from(pages)
        .ok()
        .zip(u64::try_from(page).ok())
        .map_or(u64::MAX, |(n, p)| n.saturating_mul(p));
    if chosen && need > physical && queue_depth > 1 {
        return Err(Error::Config(format!(
            "queue_depth {queue_depth} would hold up to {:.1} GB of samples and features in flight ({queue_depth} tasks of at least one file of up to {:.1} MB), more than this machine's {:.1} GB of memory: lower --queue-depth (0 chooses it from the machine)",
            need as f64 / 1e9,
            largest as f64 / 1e6,
            physical as f64 / 1e9
        )));
    }
    Ok(())
}

/// A file's estimated samples and rows: fixed mode decodes one clip; natural mode the whole
/// file, at most one sample per byte (8-bit mono).
fn file_estimate(f: &InputFile, cfg: &Params, geometry: &Geometry) -> (u64, u64) {
    let samples = match cfg.length {
        LengthMode::Fixed => cfg.clip_samples as u64,
        LengthMode::Natural => f.size,
    };
    let rows = geometry.rows(Some(usize::try_from(samples).unwrap_or(usize::MAX))) as u64;
    (samples, rows)
}

/// The most estimated feature bytes that computed tasks of a device run may hold past the queue
/// depth while their rows wait for the disk. With them the device computes its last task while
/// the disk still has about this much to take, and giving the device back (about 0.1 s of
/// driver work: the context, then the unified-memory driver's teardown) overlaps those writes
/// instead of following the last of them (docs/PERFORMANCE.md, 'Design: tasks ahead of the disk').
const AHEAD_MEMORY: u64 = 192 << 20;

/// The most tasks ahead whatever their size: each costs a little beyond its features (its
/// outcomes, a channel slot), which the budget does not count.
const AHEAD_TASKS_MAX: usize = 4096;

/// How many computed tasks a device run may hold past the queue depth: [`AHEAD_MEMORY`] (or
/// `ahead_mib`, MiB, fractions allowed, from [`crate::config::Tuning`]; 0 turns it off) over
/// the largest task's estimated features.
fn ahead_tasks(tasks: &[&[InputFile]], cfg: &Params, ahead_mib: Option<f64>) -> usize {
    let budget = ahead_mib.map_or(AHEAD_MEMORY, |mib| (mib * f64::from(1u32 << 20)) as u64);
    ahead_tasks_within(tasks, cfg, budget)
}

/// How many of the largest of `tasks` fit `budget` bytes of estimated features (at most as many
/// as there are tasks, and [`AHEAD_TASKS_MAX`]).
fn ahead_tasks_within(tasks: &[&[InputFile]], cfg: &Params, budget: u64) -> usize {
    let geometry = Geometry::new(cfg);
    let row_bytes = (cfg.values_per_row() * cfg.dtype.size()) as u64;
    let largest = tasks
        .iter()
        .map(|t| {
            t.iter()
                .map(|f| file_estimate(f, cfg, &geometry).1.saturating_mul(row_bytes))
                .fold(0u64, u64::saturating_add)
        })
        .max()
        .unwrap_or(0)
        .max(1);
    // Never more than there are tasks: the count also sizes a channel.
    usize::try_from(budget / largest)
        .unwrap_or(usize::MAX)
        .min(tasks.len())
        .min(AHEAD_TASKS_MAX)
}

/// Seconds of CPU work a GPU run's head is sized for: its GPU computes nothing for the first
/// 0.17 s (back to back) to 0.27 s (after a pause) while the driver and the context start
/// (docs/PERFORMANCE.md, 'Design: CPU head while the GPU starts'), and the head's rows reach the
/// disk meanwhile.
const HEAD_SECONDS: f64 = 0.15;

/// CPU nanoseconds per sample of the head's threads at the reference STFT work
/// ([`stft_work`] = 24: n_fft 64, hop 16), with the readers running beside them: 140 µs per
/// 40,960-sample seed clip on the H100 machine's cores, traced (docs/PERFORMANCE.md, 'Design: CPU
/// head while the GPU starts').
const HEAD_NS_PER_SAMPLE: f64 = 3.4;

/// CPU threads of a GPU run's head: half the compute threads (at least one), so that the
/// readers and the driver's start keep cores (all 16 slowed the GPU's start by 0.08 s).
pub(super) fn head_threads(knobs: &Knobs) -> usize {
    (knobs.threads / 2).max(1)
}

/// Relative CPU work per sample of the STFT and what follows it: n_fft log2(n_fft) per hop,
/// four times that without pooling (the mel projection and the logarithm run per frame).
fn stft_work(cfg: &Params) -> f64 {
    let n = cfg.n_fft.max(2) as f64;
    let per_sample = n * n.log2() / cfg.hop_length.max(1) as f64;
    if cfg.pool == crate::config::Pool::None {
        4.0 * per_sample
    } else {
        per_sample
    }
}

/// How many of a GPU run's first files its head computes on the CPU while the GPU starts: as
/// many as [`head_threads`] compute in [`HEAD_SECONDS`] by the estimate above. A function of the
/// files, the parameters and the thread count only, never of timing, so that a run on the same
/// machine always splits the same way (the two backends agree only to rounding); the journal
/// keeps the split for a resume.
pub(super) fn cpu_head_files(files: &[InputFile], cfg: &Params, knobs: &Knobs) -> usize {
    let geometry = Geometry::new(cfg);
    let ns_per_sample = HEAD_NS_PER_SAMPLE * stft_work(cfg) / 24.0;
    let mut budget = HEAD_SECONDS * 1e9 * head_threads(knobs) as f64;
    files
        .iter()
        .take_while(|f| {
            budget -= file_estimate(f, cfg, &geometry).0 as f64 * ns_per_sample;
            budget >= 0.0
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(sizes: &[u64]) -> Vec<InputFile> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| InputFile {
                path: format!("{i}.wav").into(),
                rel: format!("{i}.wav").into(),
                size,
                mtime_ns: 0,
            })
            .collect()
    }

    fn lens(tasks: &[&[InputFile]]) -> Vec<usize> {
        tasks.iter().map(|t| t.len()).collect()
    }

    #[test]
    fn a_cpu_head_is_what_half_the_threads_compute_in_its_seconds() {
        let cfg = Params::default();
        let knobs = |threads| Knobs {
            readers: 16,
            threads,
            files_per_task: 128,
            queue_depth: 26,
            streams: 4,
            strict: false,
        };
        let seed = files(&vec![81_964; 40_000]);
        // 8 of 16 threads, 0.15 s, 3.4 ns per sample of 40,960-sample clips: 8,617 clips.
        let n = cpu_head_files(&seed, &cfg, &knobs(16));
        assert_eq!(n, (0.15e9 * 8.0 / (40_960.0 * 3.4)) as usize);
        // One thread of two; never more files than there are.
        assert_eq!(cpu_head_files(&seed, &cfg, &knobs(2)), n / 8);
        assert_eq!(cpu_head_files(&seed[..100], &cfg, &knobs(16)), 100);
        // Costlier parameters get a smaller head: no pooling, a larger FFT, a shorter hop.
        for heavier in [
            Params {
                pool: crate::config::Pool::None,
                ..Params::default()
            },
            Params {
                n_fft: 256,
                win_length: 256,
                ..Params::default()
            },
            Params {
                hop_length: 4,
                ..Params::default()
            },
        ] {
            assert!(cpu_head_files(&seed, &heavier, &knobs(16)) <= n / 4);
        }
        // A file that alone exceeds the budget ends the head at once (natural length: its
        // samples follow its size).
        let natural = Params {
            length: LengthMode::Natural,
            ..Params::default()
        };
        assert_eq!(
            cpu_head_files(&files(&[1 << 40, 100]), &natural, &knobs(16)),
            0
        );
    }

    #[test]
    fn tasks_ahead_fit_their_budget_of_feature_bytes() {
        // The seed's shape: 237 rows of 32 f16 values a clip, 128 clips a task (1,941,504
        // bytes of features): 103 such tasks fit 192 MiB.
        let cfg = Params::default();
        let all = files(&[81_964; 128 * 120]);
        let tasks: Vec<&[InputFile]> = all.chunks(128).collect();
        let task_bytes = 128 * Geometry::new(&cfg).rows(None) as u64 * 32 * 2;
        assert_eq!(task_bytes, 1_941_504);
        assert_eq!(ahead_tasks_within(&tasks, &cfg, AHEAD_MEMORY), 103);
        assert_eq!(ahead_tasks_within(&tasks, &cfg, task_bytes - 1), 0);
        assert_eq!(ahead_tasks_within(&tasks, &cfg, 0), 0);
        assert_eq!(ahead_tasks_within(&tasks, &cfg, 3 * task_bytes), 3);
        // Never more than there are tasks; the largest task sets the count (here the first,
        // of 128 clips; the last has 44).
        let few: Vec<&[InputFile]> = all[..300].chunks(128).collect();
        assert_eq!(ahead_tasks_within(&few, &cfg, AHEAD_MEMORY), 3);
        assert_eq!(ahead_tasks_within(&few, &cfg, 2 * task_bytes + 1), 2);
        // Natural length: the estimate takes one sample per byte of each file, an upper bound.
        let natural = Params {
            length: LengthMode::Natural,
            ..Params::default()
        };
        let big = files(&[81_964 * 8; 4 * 100]);
        let long: Vec<&[InputFile]> = big.chunks(4).collect();
        let rows = Geometry::new(&natural).rows(Some(81_964 * 8)) as u64;
        assert_eq!(
            ahead_tasks_within(&long, &natural, 16 << 20),
            ((16 << 20) / (4 * rows * 64)) as usize
        );
        // No tasks: none ahead.
        assert_eq!(ahead_tasks_within(&[], &cfg, AHEAD_MEMORY), 0);
    }

    #[test]
    fn tasks_are_cut_by_count_and_by_memory() {
        let mut cfg = Params::default();
        // Seed-shaped clips: only the count cuts (fixed mode ignores file sizes).
        let seed = files(&[81_964; 40]);
        assert_eq!(lens(&plan_tasks(&seed, &cfg, 16, TASK_MEMORY)), [16, 16, 8]);
        let huge = files(&[30 << 20; 3]);
        assert_eq!(lens(&plan_tasks(&huge, &cfg, 16, TASK_MEMORY)), [3]);
        // Natural mode: one-hour files (29.5 MB) are a task each, small ones still group, and
        // every file is in exactly one task, in order.
        cfg.length = LengthMode::Natural;
        assert_eq!(lens(&plan_tasks(&huge, &cfg, 16, TASK_MEMORY)), [1, 1, 1]);
        let mixed = files(&[
            81_964,
            81_964,
            30 << 20,
            81_964,
            5 << 20,
            5 << 20,
            5 << 20,
            1,
        ]);
        let tasks = plan_tasks(&mixed, &cfg, 16, TASK_MEMORY);
        assert_eq!(lens(&tasks), [2, 1, 3, 2]);
        let flat: Vec<_> = tasks.iter().flat_map(|t| t.iter()).collect();
        assert!(flat.iter().zip(&mixed).all(|(a, b)| *a == b));
        assert!(plan_tasks(&[], &cfg, 16, TASK_MEMORY).is_empty());
        assert_eq!(
            lens(&plan_tasks(&seed[..3], &cfg, 0, TASK_MEMORY)),
            [1, 1, 1]
        );
    }

    #[test]
    fn tasks_in_flight_stay_under_the_memory_bound() {
        // pool none, f16: 237 rows × 32 mels × 33 frames × 2 B + 40,960 f32 samples ≈ 0.66 MB
        // a clip. The GPU defaults (128 files, queue 26) would hold 2.2 GB in flight.
        let cfg = Params {
            pool: crate::config::Pool::None,
            ..Params::default()
        };
        let clips = files(&[81_964; 300]);
        let tasks = plan_tasks(&clips, &cfg, 128, task_memory(26));
        let per_clip = 40_960 * 4 + 237 * 32 * 33 * 2;
        let biggest = tasks.iter().map(|t| t.len()).max().unwrap() as u64;
        assert!(
            biggest * per_clip * 26 <= IN_FLIGHT_MEMORY,
            "{biggest} files a task"
        );
        assert!(biggest >= 40, "{biggest}");
        // The seed's mean pooling keeps its 128 files a task.
        let seed = plan_tasks(&clips, &Params::default(), 128, task_memory(26));
        assert_eq!(seed[0].len(), 128);
    }
}
