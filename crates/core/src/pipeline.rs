//! The pipeline: discover → read → compute → write → commit (SPEC §6).
//!
//! Tasks (groups of `files_per_task` files) are numbered in row order. With a CPU backend each
//! worker thread reads a task and computes it while its samples are still in cache; with a GPU
//! backend reader threads fill a bounded pool of batches that compute threads (one per stream)
//! take. Either way the thread that computed a task writes its rows at their place in the
//! feature array (a task's first row is known once the tasks before it are read: `RowStarts`),
//! and a single writer takes the results back in task order to checksum them, record the files
//! and journal. Memory is bounded by the number of tasks allowed in flight (`queue_depth`),
//! whatever the dataset size. A GPU run's first files (the CPU head, `cpu_head`) form tasks of
//! their own that CPU threads compute while the GPU starts.

use crate::backend::{AudioBatch, BackendFactory, FeatureBuf};
use crate::config::{BackendKind, LengthMode, MappingKind, Params, RunOptions};
use crate::discover::{self, InputFile};
use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::journal::{self, InputsFingerprint, JournalHeader, JournalRecord};
use crate::manifest::{GeometryInfo, Manifest, Timings};
use crate::mel::MelFilterbank;
use crate::outdir;
use crate::progress::{Phase, Progress};
use crate::read::{FileOutcome, Reader};
use crate::shard::{self, ShardInfo, ShardSpec};
use crate::trace;
use crate::write::{self, OutputWriter};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// What a run needs besides its configuration.
pub struct RunRequest {
    /// INPUT arguments (folders, files, `@list.txt`).
    pub inputs: Vec<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Replace an existing output.
    pub force: bool,
    /// Continue an interrupted run from its journal.
    pub resume: bool,
    /// Live counters for the status line.
    pub progress: Arc<Progress>,
    /// Set to stop the run early (Ctrl-C); the run then returns [`Error::Interrupted`].
    pub stop: Arc<AtomicBool>,
    /// Process only this slice of the sorted file list (`--shard K/N`, SPEC §9).
    pub shard: Option<ShardSpec>,
}

/// The chosen values of the pipeline's knobs (after defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knobs {
    /// Reader threads (GPU mode) or worker threads (CPU mode).
    pub readers: usize,
    /// CPU compute threads.
    pub threads: usize,
    /// Files per task.
    pub files_per_task: usize,
    /// Tasks in flight.
    pub queue_depth: usize,
    /// Compute threads per GPU.
    pub streams: usize,
    /// Stop at the first failed file (`--strict`).
    pub strict: bool,
}

impl Knobs {
    /// Fills in zeros (automatic) from the machine and the backend kind.
    pub fn resolve(opts: &RunOptions, cpu_backend: bool) -> Knobs {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = if opts.threads > 0 {
            opts.threads
        } else {
            cores
        };
        let readers = if opts.readers > 0 {
            opts.readers
        } else if cpu_backend {
            threads
        } else {
            cores.clamp(1, 16)
        };
        let files_per_task = if opts.files_per_task > 0 {
            opts.files_per_task
        } else if cpu_backend {
            16
        } else {
            // 128 clips of 40,960 f32 samples = 21 MB a batch: large enough for the GPU,
            // small enough that `queue_depth` batches stay far under the 1.5 GB memory bound.
            128
        };
        let streams = if opts.streams > 0 { opts.streams } else { 4 };
        let workers = if cpu_backend {
            threads
        } else {
            readers / 2 + streams
        };
        let queue_depth = if opts.queue_depth > 0 {
            opts.queue_depth
        } else {
            2 * workers + 2
        };
        Knobs {
            readers,
            threads,
            files_per_task,
            queue_depth: queue_depth.max(1),
            streams: streams.max(1),
            strict: opts.strict,
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
/// flight) peaked at 2.1 GB resident on the H100 machine, over SPEC §7's 1.5 GB.
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
/// ones are a few per core); this catches a
/// `--queue-depth` typed with too many digits before any work, instead of the kernel's OOM
/// killer in the middle of the run.
fn check_in_flight_memory(
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
fn head_threads(knobs: &Knobs) -> usize {
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
fn cpu_head_files(files: &[InputFile], cfg: &Params, knobs: &Knobs) -> usize {
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

/// A run's result.
#[derive(Debug)]
pub struct RunSummary {
    /// The manifest that was committed.
    pub manifest: Manifest,
    /// The knobs used.
    pub knobs: Knobs,
}

/// A computed task on its way to the writer.
struct Done {
    task: usize,
    outcomes: Vec<FileOutcome>,
    features: FeatureBuf,
}

/// A computed task on its way to a writer thread that puts its rows at their place.
type Computed = (usize, Vec<FileOutcome>, FeatureBuf, Result<()>);

/// Runs a closure once: at [`OnDrop::run`], or when dropped (a thread that ends early).
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    fn run(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        self.run();
    }
}

/// Lets a task start only when it is within `depth` tasks of the writer, so results waiting to
/// be written in order stay bounded even if one task is slow.
struct Window {
    written: Mutex<usize>,
    cv: Condvar,
    depth: usize,
}

/// Waits on `cv` until `ready` returns a value from the state behind `m`; None if `halt`
/// (a failure or the user's stop) becomes true first. Checked at least every 50 ms, so that no
/// thread waits for another that has stopped.
fn wait_or_halt<S, R>(
    m: &Mutex<S>,
    cv: &Condvar,
    halt: impl Fn() -> bool,
    mut ready: impl FnMut(&mut S) -> Option<R>,
) -> Option<R> {
    let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some(r) = ready(&mut st) {
            return Some(r);
        }
        if halt() {
            return None;
        }
        st = cv
            .wait_timeout(st, std::time::Duration::from_millis(50))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

impl Window {
    /// Waits until `task` may start; false if the run stops first.
    fn wait_for(&self, task: usize, halt: impl Fn() -> bool) -> bool {
        wait_or_halt(&self.written, &self.cv, halt, |w| {
            (task < *w + self.depth).then_some(())
        })
        .is_some()
    }
    fn advance(&self, to: usize) {
        *self.written.lock().unwrap_or_else(|p| p.into_inner()) = to;
        self.cv.notify_all();
    }
}

/// Where each task's rows go: task `t` starts after the rows of tasks `0..t`, known as soon as
/// those tasks are read (a file's rows follow from its header; in fixed length mode they are the
/// same for every file). Readers publish each task's row count; the thread that writes a task's
/// rows at their place (a compute or writer thread) asks for its first row first.
struct RowStarts {
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
    fn new() -> Self {
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
    fn publish(&self, task: usize, rows: u64) {
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
    fn take(&self, task: usize, halt: impl Fn() -> bool) -> Option<u64> {
        wait_or_halt(&self.state, &self.cv, halt, |st| st.starts.remove(&task))
    }
}

/// Runs the whole job.
pub fn run(
    cfg: &Params,
    opts: &RunOptions,
    req: &RunRequest,
    factory: &dyn BackendFactory,
) -> Result<RunSummary> {
    let t0 = Instant::now();
    let progress = &req.progress;
    progress.set_phase(Phase::Init);
    cfg.validate()?;
    opts.validate()?;
    let fb = MelFilterbank::new(cfg);
    let empty = fb.empty_filters();
    if !empty.is_empty() {
        tracing::warn!(
            "{} of {} mel filters are all zero ({:?}): n_mels ({}) is high for n_fft/2+1 = {} frequency bins; their features are the 1e-10 floor (-100 dB). Parameters are kept as given.",
            empty.len(),
            cfg.n_mels,
            empty,
            cfg.n_mels,
            cfg.n_freqs()
        );
    }
    let cpu = factory.is_cpu();
    let knobs = Knobs::resolve(opts, cpu);
    let all = trace::span("discover", 0, || {
        discover::discover(&req.inputs, knobs.readers.max(4))
    })?;
    let files_total = all.len() as u64;
    let (files, shard) = match req.shard {
        Some(spec) => {
            let (files, info) = shard::select(spec, all);
            tracing::info!(
                "shard {spec}: files {}..{} of {files_total}",
                info.first_file,
                info.first_file + info.files
            );
            (files, Some(info))
        }
        None => (all, None),
    };
    let geometry = Geometry::new(cfg);
    // The whole list's rows: a shard's output must also fit once merged.
    if cfg.mapping == MappingKind::I32 && cfg.length == LengthMode::Fixed {
        let rows = files_total * geometry.rows(None) as u64;
        if rows > i32::MAX as u64 {
            return Err(Error::Config(format!(
                "{rows} rows do not fit the i32 mapping; use --mapping i64"
            )));
        }
    }
    // Memory follows the work that exists: a queue slot is allocated up front, so there are
    // never more tasks in flight than files (and, once planned, than tasks).
    let mut knobs = knobs;
    knobs.queue_depth = knobs.queue_depth.min(files.len()).max(1);
    check_in_flight_memory(&files, cfg, knobs.queue_depth, opts.queue_depth > 0)?;
    Progress::add(&progress.files_total, files.len() as u64);
    let head_files = if cpu {
        0
    } else {
        match opts.cpu_head {
            Some(n) => n.min(files.len()),
            None => cpu_head_files(&files, cfg, &knobs),
        }
    };
    let mut header = JournalHeader {
        format: journal::FORMAT.into(),
        config: cfg.clone(),
        backend_kind: if cpu {
            BackendKind::Cpu
        } else {
            BackendKind::Cuda
        },
        inputs: InputsFingerprint::of(&files),
        shard: shard.clone(),
        cpu_head_files: head_files as u64,
    };
    let partial = req.out.join(write::PARTIAL_DIR);
    outdir::create(&req.out)?;
    // Held until the run returns: no other run or merge writes into OUT meanwhile.
    let _lock = outdir::OutLock::acquire(&req.out)?;
    // A journal without its header line, or without a record, means the killed run committed
    // nothing (it may have stopped before its arrays existed): it starts again, keeping the
    // split of a header it has.
    let mut kept_head = None;
    let loaded = if req.resume && partial.join(journal::FILE_NAME).exists() {
        match journal::load(&partial, files.len()) {
            Ok(l) if l.records.is_empty() => {
                kept_head = Some(l.header.cpu_head_files as usize);
                None
            }
            Ok(l) => Some(l),
            Err(Error::NoJournalHeader { .. }) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    if req.resume && req.out.join(crate::manifest::FILE_NAME).exists() {
        let (features, _) = write::array_names(cfg.layout);
        let complete = || Error::Output {
            path: req.out.clone(),
            msg: "holds a complete run: nothing to resume (`melpipe verify` checks it)".into(),
        };
        if !partial.exists() {
            return Err(complete());
        }
        if outdir::commit_finished(&req.out, features) {
            // A commit killed after its manifest was in place leaves its partial folder
            // behind (the journal, and the output it replaced): the output is complete.
            outdir::prepare(
                &req.out,
                outdir::Allow {
                    replace: true,
                    discard_partial: true,
                },
            )?
            .wait();
            return Err(complete());
        }
        // Otherwise the partial folder is a --force run's that has yet to replace the output
        // in OUT at its commit: it resumes.
    }
    // A resume splits the files as the interrupted run did (a CPU run has no head: a journal
    // of a run that fell back may name one, whose rows were the CPU's either way).
    let head_files = match (&loaded, kept_head) {
        (Some(l), _) if !cpu => l.header.cpu_head_files as usize,
        (None, Some(kept)) if !cpu => kept.min(files.len()),
        _ => head_files,
    };
    header.cpu_head_files = head_files as u64;
    // What --force discards is deleted in the background while the run works.
    let mut discard = outdir::Discard::default();
    let (mut writer, done) = if let Some(loaded) = loaded {
        check_resumable(&loaded.header, &header, &files, &loaded.records)?;
        let (w, done) = OutputWriter::resume(&req.out, cfg, loaded, &files)?;
        tracing::info!(
            "resuming: {done} of {} files were committed ({} rows)",
            files.len(),
            w.rows()
        );
        (w, done)
    } else {
        if req.resume {
            tracing::info!(
                "nothing to resume in {}: starting a new run",
                req.out.display()
            );
        }
        // A previous output is replaced at commit (--force). A partial folder without a
        // usable journal holds nothing committed and goes with --resume too; it exists only
        // if the interrupted run was allowed to replace what OUT holds, and so is its resume.
        let resumed_partial = req.resume && partial.exists();
        discard = outdir::prepare(
            &req.out,
            outdir::Allow {
                replace: req.force || resumed_partial,
                discard_partial: req.force || req.resume,
            },
        )?;
        (
            OutputWriter::create(&req.out, cfg, &header, files.len())?,
            0,
        )
    };
    Progress::add(&progress.files_done, done as u64);
    Progress::add(&progress.rows_done, writer.rows());
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
        ahead_tasks(&tasks, cfg, opts.tuning.ahead_mib)
    };
    progress
        .queue_capacity
        .store((knobs.queue_depth + ahead) as u64, Ordering::Relaxed);
    let init_s = t0.elapsed().as_secs_f64();

    let t_run = Instant::now();
    progress.set_phase(Phase::Run);
    // The device is given back once: by the compute thread that lets go last (see execute),
    // or here, for a factory whose threads did not.
    let released = std::sync::Once::new();
    let release = || released.call_once(|| factory.release());
    let device = trace::span("execute", 0, || {
        execute(
            cfg,
            req,
            factory,
            &release,
            &knobs,
            ahead,
            head_tasks,
            &tasks,
            &header,
            &mut writer,
        )
    })?;
    let run_s = t_run.elapsed().as_secs_f64();
    // Every backend is gone: the device can be given back while the commit waits for the disk.
    release();

    progress.set_phase(Phase::Commit);
    let t_commit = Instant::now();
    let manifest = Manifest {
        format: crate::manifest::FORMAT.into(),
        melpipe_version: env!("CARGO_PKG_VERSION").into(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        config: cfg.clone(),
        geometry: GeometryInfo::of(cfg),
        rows: 0,
        features: Default::default(),
        mapping: None,
        counts: Default::default(),
        device,
        // A run that fell back computed every file on the CPU: no head to speak of.
        cpu_head_files: if factory.fell_back_to_cpu() {
            0
        } else {
            head_files as u64
        },
        empty_mel_filters: empty,
        timings: Timings {
            init_s,
            run_s,
            commit_s: 0.0,
            total_s: 0.0,
            read_busy_s: Progress::secs(&progress.read_ns),
            compute_busy_s: Progress::secs(&progress.compute_ns),
            write_busy_s: Progress::secs(&progress.write_ns),
            checkpoint_s: Progress::secs(&progress.checkpoint_ns),
        },
        files: Vec::new(),
        shard,
        manifest_xxh3_64: String::new(),
    };
    let mut manifest = trace::span("commit", 0, || writer.commit(manifest, t0, t_commit))?;
    trace::span("wait-discard", 0, || discard.wait());
    // The manifest on disk has the times up to its own writing; the summary gets the rest.
    manifest.timings.commit_s = t_commit.elapsed().as_secs_f64();
    manifest.timings.total_s = t0.elapsed().as_secs_f64();
    progress.set_phase(Phase::Done);
    Ok(RunSummary { manifest, knobs })
}

/// Refuses to resume when the parameters, the backend kind or the inputs changed.
fn check_resumable(
    then: &JournalHeader,
    now: &JournalHeader,
    files: &[InputFile],
    records: &[JournalRecord],
) -> Result<()> {
    if then.config != now.config {
        return Err(Error::Config(format!(
            "the interrupted run used other parameters ({}); resume with the same ones, or start over with --force",
            then.config.differing_keys(&now.config).join(", ")
        )));
    }
    let slice = |s: &Option<ShardInfo>| s.as_ref().map(|s| (s.index, s.count));
    if slice(&then.shard) != slice(&now.shard) {
        return Err(Error::Config(format!(
            "the interrupted run was {}, this one is {}; resume with the same shard, or start over with --force",
            shard_label(&then.shard),
            shard_label(&now.shard)
        )));
    }
    if then.backend_kind != now.backend_kind {
        return Err(Error::Config(format!(
            "the interrupted run computed on {}, this one would use {}: pass --device {} to resume (backends agree only to rounding), or start over with --force",
            then.backend_kind, now.backend_kind, then.backend_kind
        )));
    }
    if then.inputs != now.inputs {
        let committed = records.iter().flat_map(|r| r.files.iter());
        let mut detail = format!("{} files then, {} now", then.inputs.files, now.inputs.files);
        for (i, e) in committed.enumerate() {
            match files.get(i) {
                Some(f) if f.rel.to_string_lossy() == e.path && f.size == e.bytes => {}
                Some(f) => {
                    detail = format!(
                        "{detail}; file {i} was {} ({} bytes), is now {} ({} bytes)",
                        e.path,
                        e.bytes,
                        f.rel.display(),
                        f.size
                    );
                    break;
                }
                None => break,
            }
        }
        return Err(Error::Input(format!(
            "the inputs changed since the interrupted run ({detail}): files were added, removed, resized or modified; start over with --force"
        )));
    }
    Ok(())
}

/// "shard K/N" or "a whole run", for messages.
fn shard_label(s: &Option<ShardInfo>) -> String {
    s.as_ref().map_or("a whole run".into(), |s| {
        format!("shard {}/{}", s.index, s.count)
    })
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

/// Reads, computes and writes every task, with up to `ahead` computed tasks past the queue
/// depth waiting on writer threads (a device run; see [`AHEAD_MEMORY`]); returns the device
/// description.
#[allow(clippy::too_many_arguments)]
fn execute(
    cfg: &Params,
    req: &RunRequest,
    factory: &dyn BackendFactory,
    release: &(dyn Fn() + Sync),
    knobs: &Knobs,
    ahead: usize,
    head_tasks: usize,
    tasks: &[&[InputFile]],
    header: &JournalHeader,
    writer: &mut OutputWriter,
) -> Result<String> {
    let stop = &*req.stop;
    let failed_stop = AtomicBool::new(false);
    let halt = || stop.load(Ordering::Relaxed) || failed_stop.load(Ordering::Relaxed);
    let next = AtomicUsize::new(0);
    let window = Window {
        written: Mutex::new(0),
        cv: Condvar::new(),
        depth: knobs.queue_depth + ahead,
    };
    let (done_tx, done_rx) = bounded::<Result<Done>>(knobs.queue_depth);
    let (recycle_tx, recycle_rx) = bounded::<FeatureBuf>(knobs.queue_depth + ahead + 4);
    let vpr = cfg.values_per_row();
    let progress = &*req.progress;
    let row_starts = &RowStarts::new();
    let readers_left = AtomicUsize::new(knobs.readers);
    let needy = AtomicUsize::new(0);
    let drain_lock = Mutex::new(());
    let holders = AtomicUsize::new(0);
    let sink = writer.features_at()?;
    let row_bytes = (vpr * cfg.dtype.size()) as u64;
    // Writes a computed task's rows at their place (on the thread that computed them, or on a
    // writer thread when tasks may be ahead) and hands the task on to the in-order writer; a
    // task whose computation failed passes its error on instead.
    let place = |t: usize,
                 outcomes: Vec<FileOutcome>,
                 features: FeatureBuf,
                 computed: Result<()>|
     -> Result<Done> {
        computed?;
        let Some(row) = row_starts.take(t, halt) else {
            return Err(Error::Interrupted);
        };
        write::check_batch_bytes(&outcomes, features.as_bytes(), row_bytes, || factory.name())?;
        trace::span("write-at", t as u64, || {
            sink.write_at(row * row_bytes, features.as_bytes())
        })?;
        Ok(Done {
            task: t,
            outcomes,
            features,
        })
    };
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let record_error = |e: Error| {
        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        failed_stop.store(true, Ordering::Relaxed);
    };
    // Takes a task index, or None when there is no more work (or the run stops).
    let claim = || -> Option<usize> {
        if halt() {
            return None;
        }
        // SeqCst: a device run's readers count themselves as waiting for a batch before they
        // claim (see `needy` below), and whoever sees the claims run out must see that count.
        let t = next.fetch_add(1, Ordering::SeqCst);
        if t >= tasks.len() {
            return None;
        }
        if !window.wait_for(t, halt) || halt() {
            return None;
        }
        Some(t)
    };
    let feature_buf = |rows: usize| {
        let mut b = recycle_rx
            .try_recv()
            .unwrap_or_else(|_| FeatureBuf::new(cfg.dtype));
        b.resize(rows * vpr);
        b
    };

    // Whether the journal names the backend that computes: a device factory may fall back to
    // the CPU (`--device auto`), which it knows once its first backend is made. The head's
    // tasks come first and are computed on the CPU either way, so the question waits for the
    // first device task or the first checkpoint, whichever comes first (a checkpoint then waits
    // until the device has started or failed).
    let mut settled = factory.is_cpu();
    let settle = |writer: &mut OutputWriter, settled: &mut bool| -> Result<()> {
        if !std::mem::replace(settled, true) && factory.fell_back_to_cpu() {
            let mut h = header.clone();
            h.backend_kind = BackendKind::Cpu;
            writer.change_backend(&h, &factory.name())?;
        }
        Ok(())
    };
    std::thread::scope(|s| -> Result<()> {
        if factory.is_cpu() {
            for _ in 0..knobs.threads {
                let done_tx = done_tx.clone();
                s.spawn(|| {
                    let done_tx = done_tx;
                    let mut backend = match factory.create(cfg) {
                        Ok(b) => b,
                        Err(e) => return record_error(e),
                    };
                    let mut reader = Reader::new(cfg);
                    let mut batch = AudioBatch::default();
                    while let Some(t) = claim() {
                        let outcomes = Progress::timed(&progress.read_ns, || {
                            trace::span("read", t as u64, || reader.read_task(tasks[t], &mut batch))
                        });
                        Progress::add(&progress.bytes_read, outcomes.iter().map(|o| o.bytes).sum());
                        row_starts.publish(t, outcomes.iter().map(|o| o.rows).sum());
                        let mut features = feature_buf(batch.rows());
                        let computed = Progress::timed(&progress.compute_ns, || {
                            trace::span("compute", t as u64, || {
                                backend.compute(&batch, &mut features)
                            })
                        });
                        let r = place(t, outcomes, features, computed);
                        Progress::add(&progress.queued, 1);
                        if done_tx.send(r).is_err() {
                            break;
                        }
                    }
                });
            }
        } else {
            // Readers fill batches from a bounded pool; compute threads take them.
            let (full_tx, full_rx) =
                bounded::<(usize, Vec<FileOutcome>, AudioBatch)>(knobs.queue_depth);
            let (free_tx, free_rx) = bounded::<AudioBatch>(knobs.queue_depth);
            for _ in 0..knobs.queue_depth {
                let _ = free_tx.send(AudioBatch::default());
            }
            // The head's tasks go to CPU threads instead.
            let (head_tx, head_rx) =
                bounded::<(usize, Vec<FileOutcome>, AudioBatch)>(knobs.queue_depth);
            let pcm16 = factory.accepts_i16();
            // Readers still able to send a task: once none is and the queue is empty, no
            // compute thread will get another task.
            let readers_left = &readers_left;
            // Once one reader finds no task left, no batch will be read again but by the
            // readers that hold a claimed task and wait for a batch (`needy`, counted before
            // they claim): every pooled batch beyond those goes at once, with its page-locked
            // registration (about 1 ms each), rather than in the chain that gives the device
            // back after the last task.
            let needy = &needy;
            // Whether the claims ran out: set by the claim that found no task (SeqCst, after
            // every successful claimer counted itself in `needy`), not by a halt.
            let claims_over = || next.load(Ordering::SeqCst) >= tasks.len();
            let drain_lock = &drain_lock;
            let drain_surplus = {
                let free_rx = free_rx.clone();
                move || {
                    let surplus: Vec<AudioBatch> = {
                        let _one_at_a_time = drain_lock.lock().unwrap_or_else(|p| p.into_inner());
                        std::iter::from_fn(|| {
                            (free_rx.len() > needy.load(Ordering::SeqCst))
                                .then(|| free_rx.try_recv().ok())
                                .flatten()
                        })
                        .collect()
                    };
                    if !surplus.is_empty() {
                        retire(surplus);
                    }
                }
            };
            for _ in 0..knobs.readers {
                let full_tx = full_tx.clone();
                let head_tx = head_tx.clone();
                let free_rx = free_rx.clone();
                let drain_surplus = drain_surplus.clone();
                s.spawn(move || {
                    let mut reader = if pcm16 {
                        Reader::with_pcm16(cfg)
                    } else {
                        Reader::new(cfg)
                    };
                    loop {
                        needy.fetch_add(1, Ordering::SeqCst);
                        let Some(t) = claim() else {
                            needy.fetch_sub(1, Ordering::SeqCst);
                            break;
                        };
                        // Checked against a stop every 50 ms: a compute thread that stops drops the
                        // batch it took, which a reader may be waiting for.
                        let batch = trace::span("wait-free-batch", t as u64, || loop {
                            match free_rx.recv_timeout(std::time::Duration::from_millis(50)) {
                                Err(RecvTimeoutError::Timeout) if !halt() => continue,
                                r => break r.map_err(|_| ()),
                            }
                        });
                        needy.fetch_sub(1, Ordering::SeqCst);
                        let Ok(mut batch) = batch else {
                            break;
                        };
                        let outcomes = Progress::timed(&progress.read_ns, || {
                            trace::span("read", t as u64, || reader.read_task(tasks[t], &mut batch))
                        });
                        Progress::add(&progress.bytes_read, outcomes.iter().map(|o| o.bytes).sum());
                        row_starts.publish(t, outcomes.iter().map(|o| o.rows).sum());
                        Progress::add(&progress.queued, 1);
                        let to = if t < head_tasks { &head_tx } else { &full_tx };
                        if to.send((t, outcomes, batch)).is_err() {
                            break;
                        }
                    }
                    // Only when the claims ran out (a halted run's readers stop with tasks
                    // left, and leave the batches to the scope's end).
                    if claims_over() {
                        drain_surplus();
                    }
                    readers_left.fetch_sub(1, Ordering::AcqRel);
                    // Last: idle compute threads end once every reader has dropped its sender,
                    // and the last to end releases the device, which must find the surplus
                    // already gone and `readers_left` at zero (to take what is left).
                    drop(full_tx);
                    drop(head_tx);
                });
            }
            drop(full_tx);
            drop(head_tx);
            // One compute thread per stream; a factory that falls back to the CPU (`--device
            // auto` when the GPU does not start) gets as many as a CPU run has: the spare
            // threads wait until the factory knows and end at once if the device started.
            let device_threads = knobs.streams * factory.devices().max(1);
            let compute_threads = device_threads.max(knobs.threads);
            // With tasks ahead, computed tasks go to as many writer threads as the device has
            // compute threads: they write the rows at their place and pass the task on in
            // place of the compute thread, which takes the next batch at once.
            let (placing_tx, placing_rx) = crossbeam_channel::unbounded::<Computed>();
            let placing_tx = (ahead > 0).then_some(placing_tx);
            if ahead > 0 {
                for _ in 0..device_threads {
                    let done_tx = done_tx.clone();
                    let placing_rx = placing_rx.clone();
                    s.spawn(move || {
                        for (t, outcomes, features, computed) in placing_rx.iter() {
                            if done_tx
                                .send(place(t, outcomes, features, computed))
                                .is_err()
                            {
                                break;
                            }
                        }
                    });
                }
            }
            drop(placing_rx);
            // The device is given back as soon as no compute thread needs it, while the last
            // rows are still on their way to the disk: the thread that lets go last drops the
            // pooled batches (their page-locked registrations hold the context) and releases.
            let head_threads = if head_tasks > 0 {
                head_threads(knobs)
            } else {
                0
            };
            // The head's threads hold the device too: a batch that the device pinned may come
            // back to them, and its registration must go before the context does.
            holders.store(compute_threads + head_threads, Ordering::Relaxed);
            let holders = &holders;
            let let_go = {
                let free_pool = free_rx.clone();
                move || {
                    // A run that stops is not released: its process tears the device down.
                    if holders.fetch_sub(1, Ordering::AcqRel) == 1 && !halt() {
                        // What the last reader left (a batch sent back as it ended); only
                        // once every reader has ended: a stopped run's reader may still wait
                        // for a batch.
                        if readers_left.load(Ordering::Acquire) == 0 {
                            retire(free_pool.try_iter().collect());
                        }
                        release();
                    }
                }
            };
            // A computed task's batch goes back to the readers before the task's rows are
            // written: a reader may be waiting for one to read the task whose rows come before
            // these. Once no reader needs one again, it is dropped instead.
            let give_back = move |free_tx: &Sender<AudioBatch>, batch: AudioBatch| {
                if claims_over() && needy.load(Ordering::SeqCst) == 0 {
                    retire(vec![batch]);
                } else {
                    let _ = free_tx.send(batch);
                }
            };
            // Then the task goes on: with tasks ahead to the writer threads (a thread that
            // waited for the rows before these would keep from the tasks that hold the
            // batches), else its rows are written here. False once results are no longer taken.
            let hand_on = |placing_tx: &Option<Sender<Computed>>,
                           done_tx: &Sender<Result<Done>>,
                           computed: Computed|
             -> bool {
                match placing_tx {
                    Some(placing) => placing.send(computed).is_ok(),
                    None => {
                        let (t, outcomes, features, r) = computed;
                        done_tx.send(place(t, outcomes, features, r)).is_ok()
                    }
                }
            };
            for _ in 0..head_threads {
                let done_tx = done_tx.clone();
                let head_rx = head_rx.clone();
                let free_tx: Sender<_> = free_tx.clone();
                let let_go = let_go.clone();
                let placing_tx = placing_tx.clone();
                s.spawn(move || {
                    let _hold = OnDrop(Some(let_go));
                    let mut backend = match crate::dsp::CpuBackendFactory.create(cfg) {
                        Ok(b) => b,
                        Err(e) => return record_error(e),
                    };
                    for (t, outcomes, batch) in head_rx.iter() {
                        if halt() {
                            break;
                        }
                        let mut features = feature_buf(batch.rows());
                        let r = Progress::timed(&progress.compute_ns, || {
                            trace::span("compute-head", t as u64, || {
                                backend.compute(&batch, &mut features)
                            })
                        });
                        give_back(&free_tx, batch);
                        if !hand_on(&placing_tx, &done_tx, (t, outcomes, features, r)) {
                            break;
                        }
                    }
                });
            }
            drop(head_rx);
            for i in 0..compute_threads {
                let done_tx = done_tx.clone();
                let full_rx: Receiver<_> = full_rx.clone();
                let free_tx: Sender<_> = free_tx.clone();
                let let_go = let_go.clone();
                let placing_tx = placing_tx.clone();
                s.spawn(move || {
                    let mut hold = OnDrop(Some(let_go));
                    if i >= device_threads && !factory.fell_back_to_cpu() {
                        return;
                    }
                    let mut backend = match trace::span("create-backend", 0, || factory.create(cfg))
                    {
                        Ok(b) => Some(b),
                        Err(e) => return record_error(e),
                    };
                    for (t, outcomes, mut batch) in full_rx.iter() {
                        if halt() {
                            break;
                        }
                        let Some(backend_ref) = backend.as_mut() else {
                            // Let go below only when no task was left: none can come.
                            record_error(Error::Output {
                                path: req.out.clone(),
                                msg:
                                    "internal error: a task arrived after the device was given back"
                                        .into(),
                            });
                            break;
                        };
                        trace::span("prepare", t as u64, || backend_ref.prepare(&mut batch));
                        let mut features = feature_buf(batch.rows());
                        let r = Progress::timed(&progress.compute_ns, || {
                            trace::span("compute", t as u64, || {
                                backend_ref.compute(&batch, &mut features)
                            })
                        });
                        give_back(&free_tx, batch);
                        if readers_left.load(Ordering::Acquire) == 0 && full_rx.is_empty() {
                            // No task is left for any thread: done with the device before
                            // this task's rows are written.
                            drop(backend.take());
                            hold.run();
                        }
                        if !hand_on(&placing_tx, &done_tx, (t, outcomes, features, r)) {
                            break;
                        }
                    }
                });
            }
            // The writer threads end once every compute thread has ended.
            drop(placing_tx);
        }
        drop(done_tx);

        // The writer: this thread, in task order (checksum, file records, journal; the rows are
        // already in place).
        let mut pending: BTreeMap<usize, Done> = BTreeMap::new();
        let mut next_write = 0usize;
        for r in done_rx.iter() {
            let d = match r {
                Ok(d) => d,
                Err(e) => {
                    record_error(e);
                    break;
                }
            };
            // The first device task: a backend has been made, so a device factory has decided
            // whether it fell back.
            if d.task >= head_tasks {
                if let Err(e) = settle(writer, &mut settled) {
                    record_error(e);
                    break;
                }
            }
            pending.insert(d.task, d);
            while let Some(d) = pending.remove(&next_write) {
                Progress::add(&progress.queued, 0u64.wrapping_sub(1));
                // An error of the machine (no descriptors left, a lost mount) says nothing
                // about the file: stop before its task, resumable, instead of committing a
                // good file as failed.
                if let Some((f, code)) = tasks[d.task]
                    .iter()
                    .zip(&d.outcomes)
                    .find_map(|(f, o)| Some((f, o.machine_error?)))
                {
                    record_error(Error::Machine {
                        path: f.path.clone(),
                        error: std::io::Error::from_raw_os_error(code),
                    });
                    break;
                }
                if knobs.strict {
                    if let Some((f, o)) = tasks[d.task]
                        .iter()
                        .zip(&d.outcomes)
                        .find(|(_, o)| o.status.is_failed())
                    {
                        let reason = match &o.status {
                            crate::manifest::FileStatus::Failed { reason } => reason.clone(),
                            _ => String::new(),
                        };
                        record_error(Error::StrictFailure {
                            path: f.path.clone(),
                            reason,
                        });
                        break;
                    }
                }
                let appended = Progress::timed(&progress.write_ns, || {
                    trace::span("write", d.task as u64, || {
                        writer.append_written(tasks[d.task], &d.outcomes, d.features.as_bytes())
                    })
                });
                // Decided once: a checkpoint that fell due between two looks at the clock must
                // not journal before the backend is settled.
                if let Err(e) = appended.and_then(|_| {
                    if !writer.checkpoint_due() {
                        return Ok(());
                    }
                    settle(writer, &mut settled)?;
                    Progress::timed(&progress.checkpoint_ns, || writer.checkpoint())
                }) {
                    record_error(e);
                    break;
                }
                Progress::add(&progress.files_done, d.outcomes.len() as u64);
                Progress::add(
                    &progress.files_failed,
                    d.outcomes.iter().filter(|o| o.status.is_failed()).count() as u64,
                );
                Progress::add(&progress.rows_done, d.outcomes.iter().map(|o| o.rows).sum());
                Progress::add(&progress.bytes_written, d.features.as_bytes().len() as u64);
                let _ = recycle_tx.try_send(d.features);
                next_write += 1;
                window.advance(next_write);
                if next_write + knobs.queue_depth + ahead >= tasks.len() {
                    progress.set_phase(Phase::Drain);
                }
            }
            if failed_stop.load(Ordering::Relaxed) {
                break;
            }
        }
        // Unblock anyone still waiting so the scope can end.
        failed_stop.store(true, Ordering::Relaxed);
        window.advance(usize::MAX / 2);
        drop(done_rx);
        Ok(())
    })?;

    let first_error = first_error.into_inner().unwrap_or_else(|p| p.into_inner());
    if first_error.is_some() || stop.load(Ordering::Relaxed) {
        // Keep what was written resumable; a failure here (disk full) changes nothing.
        if let Err(e) = settle(writer, &mut settled).and_then(|_| writer.checkpoint()) {
            tracing::debug!("final checkpoint failed: {e}");
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    let device = factory.name();
    Ok(device)
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
