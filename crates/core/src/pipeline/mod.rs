//! The pipeline: discover → read → compute → place/write → account/journal → commit.
//!
//! ```text
//!   discover (discover.rs)       the sorted file list; a shard's slice
//!      │
//!   plan (plan.rs)               tasks of `files_per_task` files in row order, capped by memory;
//!      │                         a device run's first tasks are its CPU head
//!   claims (window.rs)           task indices handed out in order, within the in-order window
//!      │
//!   read (reader.rs)             a task's files decoded into a batch; its row count published
//!      │
//!   compute (compute.rs)         the batch into feature rows, by a `Backend`
//!      │
//!   place (place.rs)             the rows written at their place in the feature array
//!      │                         (`RowStarts`: a task starts after the rows of those before it)
//!   account (account.rs)         in task order: checksum, file records, mapping, journal
//!      │
//!   commit (write/commit.rs)     fsync, manifest, rename into OUT
//! ```
//!
//! The threads of each path (each role is a type with its own file, a `run(self)` and its
//! teardown in `Drop`):
//!
//! - CPU backend: `threads` `cpu::CpuWorker`s each claim a task and read, compute and place it
//!   on the same thread (its samples are still in cache), then send it to the accountant.
//! - Device backend: `readers` `reader::ReaderThread`s claim tasks and read them into batches
//!   of a bounded `pool::BatchPool`; one `compute::ComputeThread` per stream and device
//!   computes them; while the device starts, `head::HeadThread`s compute the CPU head's tasks
//!   on the CPU. Computed tasks are placed on the computing thread, or, when the plan allows
//!   tasks ahead of the disk, by `ahead::AheadWriter`s so that the computing thread takes its
//!   next batch at once. The last thread to let go of the device gives it back
//!   (`device::Device`) while the last rows are still on their way to the disk.
//! - Either way the calling thread is the `account::Accountant`, and the stages the paths have
//!   in common are the same functions: `reader::read_task`, `compute::compute_task`,
//!   `place::Placement::place` and the accountant.
//!
//! Memory is bounded by the tasks in flight, whatever the dataset size: a task may start only
//! within `queue_depth` (plus, on a device, the tasks ahead) of the last accounted task
//! (`window::Claims`); each task's estimated samples and features are capped
//! (`plan::task_memory`); the tasks ahead are capped by a byte budget (`plan::AHEAD_MEMORY`);
//! the device path has exactly `queue_depth` sample batches.
//!
//! A stop (Ctrl-C), an error or a panic in any thread sets the run's `halt::Halt`; every wait
//! looks at it at least every 50 ms or ends with a channel, and the accountant's end opens the
//! window and drops its receiver, so the scope always ends. A stopped or failed run checkpoints
//! what it accounted, for `--resume` (see `resume.rs`).
//!
//! A new decoder goes into the read stage (`read.rs`, behind `Reader::read_task`); a new
//! backend implements `backend::BackendFactory` and `backend::Backend`; neither changes this
//! module. See docs/ARCHITECTURE.md.

mod account;
mod ahead;
mod compute;
mod cpu;
mod device;
mod halt;
mod head;
mod place;
mod plan;
mod pool;
mod reader;
mod resume;
mod window;

use crate::backend::{AudioBatch, BackendFactory, FeatureBuf};
use crate::config::{BackendKind, LengthMode, MappingKind, Params, RunOptions};
use crate::discover;
use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::journal::{self, InputsFingerprint, JournalHeader};
use crate::manifest::{GeometryInfo, Manifest, Timings};
use crate::mel::MelFilterbank;
use crate::outdir;
use crate::progress::{Phase, Progress};
use crate::read::FileOutcome;
use crate::shard::{self, ShardSpec};
use crate::trace;
use crate::write::{self, OutputWriter, WriteTuning};
use account::Accountant;
use ahead::{AheadWriter, Handoff};
use compute::ComputeThread;
use cpu::CpuWorker;
use crossbeam_channel::{bounded, Sender};
use device::Device;
use halt::Halt;
use head::HeadThread;
use place::Placement;
use plan::{check_in_flight_memory, cpu_head_files, Plan};
use pool::FeaturePool;
use reader::ReaderThread;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Scope;
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
    /// Process only this slice of the sorted file list (`--shard K/N`, docs/SCALING.md).
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

/// A run's result.
#[derive(Debug)]
pub struct RunSummary {
    /// The manifest that was committed.
    pub manifest: Manifest,
    /// The knobs used.
    pub knobs: Knobs,
}

/// A task's files and rows: read and computed (its rows not yet in place) on its way to be
/// placed, then placed on its way to the accountant.
struct Finished {
    /// The task's index (its place in row order).
    task: usize,
    /// What reading each file gave.
    outcomes: Vec<FileOutcome>,
    /// The task's feature rows, in the stored dtype.
    features: FeatureBuf,
}

/// A task read into a batch of the pool, on its way from a reader to a compute or CPU-head
/// thread.
struct ReadTask {
    task: usize,
    outcomes: Vec<FileOutcome>,
    batch: AudioBatch,
}

/// What every thread of a run shares: the plan and its parameters, the halt, the claims and
/// their window, row placement and the feature buffers. Each piece states its own invariants.
struct Flow<'a> {
    cfg: &'a Params,
    req: &'a RunRequest,
    factory: &'a dyn BackendFactory,
    plan: &'a Plan<'a>,
    halt: Halt<'a>,
    claims: window::Claims,
    rows: Placement,
    features: FeaturePool,
}

impl Flow<'_> {
    fn progress(&self) -> &Progress {
        &self.req.progress
    }

    /// Writes a computed task's rows at their place (see [`Placement::place`]).
    fn place(&self, computed: Result<Finished>) -> Result<Finished> {
        self.rows
            .place(computed, || self.halt.is_set(), || self.factory.name())
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
        discover::discover(&req.inputs, knobs.readers.max(4), &cfg.ext)
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
    let resume::Found { loaded, kept_head } = resume::find(req, cfg, &files, &partial)?;
    // A resume splits the files as the interrupted run did (a CPU run has no head: a journal
    // of a run that fell back may name one, whose rows were the CPU's either way).
    let head_files = match (&loaded, kept_head) {
        (Some(l), _) if !cpu => l.header.cpu_head_files as usize,
        (None, Some(kept)) if !cpu => kept.min(files.len()),
        _ => head_files,
    };
    header.cpu_head_files = head_files as u64;
    // What --force discards is deleted in the background while the run works.
    let tuning = WriteTuning::of(&opts.tuning);
    let mut discard = outdir::Discard::default();
    let (mut writer, done) = if let Some(loaded) = loaded {
        resume::check_resumable(&loaded.header, &header, &files, &loaded.records)?;
        let (w, done) = OutputWriter::resume(&req.out, cfg, loaded, &files, tuning)?;
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
            OutputWriter::create(&req.out, cfg, &header, files.len(), tuning)?,
            0,
        )
    };
    Progress::add(&progress.files_done, done as u64);
    Progress::add(&progress.rows_done, writer.rows());
    let plan = Plan::new(
        &files,
        done,
        head_files,
        cfg,
        knobs,
        cpu,
        opts.tuning.ahead_mib,
    );
    progress.queue_capacity.store(
        (plan.knobs.queue_depth + plan.ahead) as u64,
        Ordering::Relaxed,
    );
    let init_s = t0.elapsed().as_secs_f64();

    let t_run = Instant::now();
    progress.set_phase(Phase::Run);
    // The device is given back once: by the compute thread that lets go last (see `Device`),
    // or here, for a factory whose threads did not.
    let released = std::sync::Once::new();
    let release = || released.call_once(|| factory.release());
    let device = trace::span("execute", 0, || {
        execute(cfg, req, factory, &release, &plan, &header, &mut writer)
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
        failures: Vec::new(),
        device,
        device_choice: factory.choice().unwrap_or_default(),
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
    Ok(RunSummary {
        manifest,
        knobs: plan.knobs,
    })
}

/// Reads, computes, places and accounts every task of the plan (with up to `plan.ahead`
/// computed tasks past the queue depth on a device; see `plan::AHEAD_MEMORY`); returns the
/// device description.
fn execute(
    cfg: &Params,
    req: &RunRequest,
    factory: &dyn BackendFactory,
    release: &(dyn Fn() + Sync),
    plan: &Plan<'_>,
    header: &JournalHeader,
    writer: &mut OutputWriter,
) -> Result<String> {
    let knobs = &plan.knobs;
    let flow = Flow {
        cfg,
        req,
        factory,
        plan,
        halt: Halt::new(&req.stop),
        claims: window::Claims::new(plan.tasks.len(), knobs.queue_depth + plan.ahead),
        features: FeaturePool::new(cfg, knobs.queue_depth + plan.ahead + 4),
        rows: Placement::new(
            writer.features_at()?,
            (cfg.values_per_row() * cfg.dtype.size()) as u64,
        ),
    };
    let device = (!factory.is_cpu()).then(|| Device::new(plan, factory, release));
    let mut settled = factory.is_cpu();
    std::thread::scope(|s| {
        let (done_tx, done_rx) = bounded::<Result<Finished>>(knobs.queue_depth);
        match &device {
            None => {
                for _ in 0..knobs.threads {
                    let worker = CpuWorker::new(&flow, done_tx.clone());
                    s.spawn(move || worker.run());
                }
            }
            Some(device) => spawn_device(s, &flow, device, &done_tx),
        }
        drop(done_tx);
        Accountant::new(&flow, writer, header, &mut settled, done_rx).run();
    });

    let first_error = flow.halt.take_error();
    if first_error.is_some() || flow.halt.user_stopped() {
        // Keep what was written resumable; a failure here (disk full) changes nothing.
        if let Err(e) =
            account::settle(factory, header, writer, &mut settled).and_then(|_| writer.checkpoint())
        {
            tracing::debug!("final checkpoint failed: {e}");
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if flow.halt.user_stopped() {
        return Err(Error::Interrupted);
    }
    let device = factory.name();
    Ok(device)
}

/// Starts the device path's threads: readers, then the ahead writers (if tasks may be ahead),
/// the CPU head's threads and the compute threads; each ends as its inputs end (see the
/// types), the accountant last.
fn spawn_device<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    flow: &'env Flow<'env>,
    device: &'env Device<'env>,
    done_tx: &Sender<Result<Finished>>,
) {
    let knobs = &flow.plan.knobs;
    // Readers fill batches from the pool; compute threads take them, and the CPU head's
    // threads take the head's tasks.
    let (full_tx, full_rx) = bounded::<ReadTask>(knobs.queue_depth);
    let (head_tx, head_rx) = bounded::<ReadTask>(knobs.queue_depth);
    for _ in 0..knobs.readers {
        let reader = ReaderThread::new(flow, device, full_tx.clone(), head_tx.clone());
        s.spawn(move || reader.run());
    }
    drop(full_tx);
    drop(head_tx);
    // With tasks ahead, computed tasks go to as many writer threads as the device has compute
    // threads.
    let (placing_tx, placing_rx) = crossbeam_channel::unbounded::<Result<Finished>>();
    let placing_tx = (flow.plan.ahead > 0).then_some(placing_tx);
    if flow.plan.ahead > 0 {
        for _ in 0..device.device_threads {
            let writer = AheadWriter::new(flow, placing_rx.clone(), done_tx.clone());
            s.spawn(move || writer.run());
        }
    }
    drop(placing_rx);
    let hand = Handoff::new(flow, placing_tx, done_tx.clone());
    for _ in 0..device.head_threads {
        let head = HeadThread::new(flow, device, head_rx.clone(), hand.clone());
        s.spawn(move || head.run());
    }
    drop(head_rx);
    for i in 0..device.compute_threads {
        let compute = ComputeThread::new(flow, device, i, full_rx.clone(), hand.clone());
        s.spawn(move || compute.run());
    }
    // The ahead writers end once every compute and CPU-head thread has ended.
    drop(hand);
}
