//! One function per subcommand.

use crate::cli::{
    Cli, Command, DemoArgs, GenerateArgs, InspectArgs, MergeArgs, PlotArgs, RunArgs, SettingsFlags,
    VerifyArgs,
};
use crate::output::{errln, outln};
use crate::status;
use crate::Exit;
use anyhow::{Context, Result};
use melpipe_core::config::{DeviceChoice, Settings};
use melpipe_core::manifest::{FileStatus, Manifest};
use melpipe_core::pipeline::{self, RunRequest, RunSummary};
use melpipe_core::progress::Progress;
use melpipe_core::shard::{self, ShardEnv, ShardSpec};
use melpipe_core::verify;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> Result<Exit> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Run(a) => run(a, quiet),
        Command::Inspect(a) => inspect(a),
        Command::Verify(a) => verify_cmd(a),
        Command::Merge(a) => merge(a, quiet),
        Command::Plot(a) => plot(a),
        Command::Generate(a) => generate(a),
        Command::Demo(a) => demo(a, quiet),
    }
}

/// The effective settings: defaults, then the TOML file, then flags.
fn effective_config(
    config: Option<&Path>,
    flags: &SettingsFlags,
    strict: bool,
) -> Result<Settings> {
    let mut cfg = match config {
        Some(p) => {
            let text = read_config(p)?;
            Settings::from_toml(&text).with_context(|| format!("in {}", p.display()))?
        }
        None => Settings::default(),
    };
    flags.apply(&mut cfg)?;
    cfg.run.strict |= strict;
    Ok(cfg)
}

/// The most bytes a `--config` file may have: every key with a long comment is a few KiB.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The text of a `--config` file. Whatever is wrong with it is a configuration error (exit 1):
/// a folder, a file that is not UTF-8, or one larger than [`MAX_CONFIG_BYTES`] (`/dev/zero`
/// used to be read until memory ran out). Pipes are read (`--config <(…)`).
pub fn read_config(p: &Path) -> Result<String> {
    use std::io::Read;
    let bad = |why: String| -> anyhow::Error {
        melpipe_core::Error::Config(format!("--config {}: {why}", p.display())).into()
    };
    let meta = std::fs::metadata(p).map_err(|e| bad(e.to_string()))?;
    if meta.is_dir() {
        return Err(bad("is a folder, not a TOML file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(p)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(bad(format!(
            "is larger than {} KiB, which no melpipe configuration is",
            MAX_CONFIG_BYTES >> 10
        )));
    }
    String::from_utf8(bytes).map_err(|_| bad("is not UTF-8 text (a TOML file is)".into()))
}

/// Gives each GPU context one hardware work queue, unless the user chose
/// (`CUDA_DEVICE_MAX_CONNECTIONS`, 1–32, the driver's default 8). Creating a context sets up
/// every queue, and both the context's creation and its release are on the GPU path's critical
/// path; one queue serialises the streams' copies and kernels, which cost nothing measurable
/// with the pipeline's tasks ahead (docs/PERFORMANCE.md, 'Design: one hardware queue per
/// context'). Set here, in the binary, because the driver reads it from the process
/// environment when the context is created.
fn limit_gpu_connections() {
    const VAR: &str = "CUDA_DEVICE_MAX_CONNECTIONS";
    if std::env::var_os(VAR).is_none() {
        // Called before the CUDA driver starts and before the run's threads exist (only the
        // signal thread, waiting in sigwait, runs now): nothing reads the environment meanwhile.
        std::env::set_var(VAR, "1");
    }
}

fn run(a: RunArgs, quiet: bool) -> Result<Exit> {
    let cfg = effective_config(a.config.as_deref(), &a.params, a.strict)?;
    // Validated first: printing a configuration that no run accepts, with exit 0, would
    // only move the error to the next command.
    cfg.validate()?;
    if a.print_config {
        crate::output::out_text(&cfg.to_toml());
        return Ok(Exit::Success);
    }
    let out = a.out.clone().context("--out is required")?;
    let shard = shard_of(&a, &ShardEnv::from_lookup(|k| std::env::var_os(k)))?;
    let summary = execute(
        &cfg,
        Execution::command(a.inputs.clone(), out, a.force, a.resume, shard, quiet),
    )?;
    print_summary(&summary, quiet);
    // A shard's slice may hold only failed files while the others do not: only a whole run
    // can tell that the dataset has no usable file.
    let counts = &summary.manifest.counts;
    if shard.is_none() && counts.total() > 0 && counts.failed == counts.total() {
        errln!(
            "melpipe: error: no input file could be used ({} failed; the reasons are above and in the manifest)",
            counts.failed
        );
        return Ok(Exit::NoUsableFile);
    }
    Ok(Exit::Success)
}

/// The shard this run processes: `--shard`, else the scheduler's variables (docs/SCALING.md).
fn shard_of(a: &RunArgs, env: &ShardEnv) -> Result<Option<ShardSpec>> {
    let flag = a
        .shard
        .as_deref()
        .map(str::parse::<ShardSpec>)
        .transpose()?;
    let shards = a
        .shards
        .as_deref()
        .map(|n| {
            n.trim().parse::<u64>().map_err(|_| {
                melpipe_core::Error::Config(format!("--shards `{n}` is not a whole number ≥ 1"))
            })
        })
        .transpose()?;
    Ok(match shard::detect(flag, shards, env)? {
        Some((spec, source)) => {
            if source != shard::ShardSource::Flag {
                tracing::info!("shard {spec} from the {source}");
            }
            Some(spec)
        }
        None => None,
    })
}

/// How a run is driven, besides its settings: what the CLI's flags say, or what
/// `melpipe.run` was given.
pub struct Execution {
    /// INPUT arguments (folders, files, `@list.txt`).
    pub inputs: Vec<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Replace an existing output.
    pub force: bool,
    /// Continue an interrupted run.
    pub resume: bool,
    /// This process's slice of the file list.
    pub shard: Option<ShardSpec>,
    /// Show the status line on stderr (a bar on a terminal, a line every 10 s otherwise).
    pub status_line: bool,
    /// Set to stop the run cleanly, keeping what it committed (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// The run's live counters (for a progress display of the caller's own).
    pub progress: Arc<Progress>,
    /// The process makes no CUDA call after the run (the `melpipe` binary): the driver's session
    /// may end once the GPU is given back ([`fast_exit`](crate::fast_exit)).
    pub process_ends: bool,
    /// Told of the GPU's start and release (`melpipe_cuda::SelectOptions::on_event`), after the
    /// `-v` timeline.
    pub on_gpu_event: Option<melpipe_cuda::select::OnEvent>,
}

impl Execution {
    /// A run of the command line: its stop flag set by SIGINT, SIGTERM or SIGHUP.
    fn command(
        inputs: Vec<PathBuf>,
        out: PathBuf,
        force: bool,
        resume: bool,
        shard: Option<ShardSpec>,
        quiet: bool,
    ) -> Execution {
        let stop = Arc::new(AtomicBool::new(false));
        // Ctrl-C, SIGTERM or SIGHUP stops the run cleanly; a second one exits at once with 130.
        crate::signals::on_stop(&stop);
        Execution {
            inputs,
            out,
            force,
            resume,
            shard,
            status_line: !quiet,
            stop,
            progress: Arc::new(Progress::default()),
            process_ends: crate::fast_exit(),
            on_gpu_event: None,
        }
    }
}

/// Runs the pipeline, with the status line if asked; the GPU (if any) is given back before it
/// returns.
pub fn execute(cfg: &Settings, ex: Execution) -> Result<RunSummary> {
    if cfg.run.device != DeviceChoice::Cpu && ex.process_ends {
        limit_gpu_connections();
    }
    let also = ex.on_gpu_event.clone();
    let select = melpipe_cuda::SelectOptions {
        on_event: Some(Arc::new(move |what| {
            crate::timeline(what);
            if let Some(f) = &also {
                f(what);
            }
        })),
        end_driver_after_release: ex.process_ends,
    };
    let melpipe_cuda::Selection {
        factory,
        gpu_probe: gpu_status,
    } = melpipe_cuda::select(cfg.run.device, &cfg.params, &select)?;
    crate::timeline("backend selected");
    let done = Arc::new(AtomicBool::new(false));
    let reporter = status::spawn(
        Arc::clone(&ex.progress),
        Arc::clone(&done),
        gpu_status,
        !ex.status_line,
    );
    let req = RunRequest {
        inputs: ex.inputs,
        out: ex.out,
        force: ex.force,
        resume: ex.resume,
        progress: ex.progress,
        stop: ex.stop,
        shard: ex.shard,
    };
    let r = pipeline::run(&cfg.params, &cfg.run, &req, factory.as_ref());
    crate::timeline("pipeline returned");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reporter.thread().unpark();
    let _ = reporter.join();
    // A finished run has started giving the GPU back during its commit (BackendFactory::
    // release); this waits for that. Otherwise (an error, Ctrl-C) the teardown happens here:
    // it costs about what the kernel's would at exit (docs/PERFORMANCE.md, 'Design: the GPU given
    // back before the exit').
    drop(factory);
    crate::timeline("status line stopped, backend released");
    status::sample_memory();
    Ok(r?)
}

/// The end-of-run summary on stderr (warnings only when `quiet`), failed files grouped.
pub fn print_summary(s: &RunSummary, quiet: bool) {
    let m = &s.manifest;
    let t = &m.timings;
    let mem = status::sample_memory();
    let peak_anon = status::PEAK_ANON.load(std::sync::atomic::Ordering::Relaxed);
    let read: u64 = m.files.iter().map(|f| f.bytes).sum();
    let written = m.features.header_bytes
        + m.features.data_bytes
        + m.mapping
            .as_ref()
            .map_or(0, |a| a.header_bytes + a.data_bytes);
    let c = &m.counts;
    // Natural mode: a file shorter than one long window has no segment, so it gives no row.
    let rowless = m
        .files
        .iter()
        .filter(|f| f.rows == 0 && !f.status.is_failed())
        .count();
    if rowless > 0 {
        tracing::warn!(
            "{rowless} of {} files are shorter than long_win ({} samples) and gave no rows{}",
            c.total(),
            m.config.long_win,
            if m.rows == 0 {
                ": the output has 0 rows (lower --long-win, or use --length fixed to pad them)"
            } else {
                ""
            }
        );
    }
    tracing::debug!(
        "busy: read {:.2} thread-s, compute {:.2} thread-s, write {:.2}s, checkpoints {:.2}s",
        t.read_busy_s,
        t.compute_busy_s,
        t.write_busy_s,
        t.checkpoint_s
    );
    if !quiet {
        let head = if m.cpu_head_files > 0 {
            format!(
                " (the first {} files on the CPU while it started)",
                m.cpu_head_files
            )
        } else {
            String::new()
        };
        errln!(
            "done: {} files → {} rows × {} × {} ({}) on {}{head} in {:.2}s",
            c.total(),
            m.rows,
            m.geometry.n_mels,
            m.geometry.out_frames,
            m.features.descr,
            m.device,
            t.total_s
        );
        errln!(
            "  time: init {:.2}s, run {:.2}s, commit {:.2}s | {:.2} M rows/s, read {:.2} GB/s, wrote {:.2} GB",
            t.init_s,
            t.run_s,
            t.commit_s,
            m.rows as f64 / t.total_s.max(1e-9) / 1e6,
            read as f64 / t.total_s.max(1e-9) / 1e9,
            written as f64 / 1e9
        );
        errln!(
            "  memory: peak anonymous {:.0} MB (sampled), peak resident {:.0} MB | knobs: threads {}, readers {}, files/task {}, queue {}",
            peak_anon as f64 / 1e6,
            mem.hwm as f64 / 1e6,
            s.knobs.threads,
            s.knobs.readers,
            s.knobs.files_per_task,
            s.knobs.queue_depth
        );
        errln!(
            "  files: {} ok, {} padded, {} truncated, {} failed{}",
            c.ok,
            c.padded,
            c.truncated,
            c.failed,
            if rowless > 0 {
                format!(" ({rowless} too short for one long window: no rows)")
            } else {
                String::new()
            }
        );
    }
    print_failures(m, 10, false, crate::output::err_line);
}

/// The failed files grouped by reason ([`Manifest::failures`]), with the setting that would
/// take them; `list_files` also names every failed file (`inspect`).
fn print_failures(
    m: &Manifest,
    groups: usize,
    list_files: bool,
    print: fn(std::fmt::Arguments<'_>),
) {
    if m.counts.failed == 0 {
        return;
    }
    // Manifests of earlier versions have no groups: made from the file list then.
    let made;
    let failures = if m.failures.is_empty() {
        made = melpipe_core::manifest::failure_groups(&m.files);
        &made
    } else {
        &m.failures
    };
    print(format_args!(
        "  failed files by reason (their rows are NaN in fixed mode, absent in natural mode):"
    ));
    for g in failures.iter().take(groups) {
        let files = if g.files == 1 { "file" } else { "files" };
        print(format_args!(
            "    {} {files}: {} (first: {})",
            g.files, g.reason, g.first
        ));
        if let Some(h) = &g.hint {
            print(format_args!("      to use them: {h}"));
        }
    }
    if failures.len() > groups {
        print(format_args!(
            "    ... and {} more reasons: see manifest.json or `melpipe inspect`",
            failures.len() - groups
        ));
    }
    if list_files {
        print(format_args!("  failed files:"));
        for f in &m.files {
            if let FileStatus::Failed { reason } = &f.status {
                print(format_args!("    {}: {reason}", f.path));
            }
        }
    }
}

/// The kinds of input files of an output, the most common first: "39563 files pcm_s16le 16000 Hz
/// mono, resampled to 4096 Hz". Files whose header could not be read are not counted.
fn input_kinds(m: &Manifest) -> Vec<String> {
    let mut count: std::collections::HashMap<(&str, u32, u16, bool), u64> = Default::default();
    for f in &m.files {
        let (Some(codec), Some(rate), Some(ch)) = (&f.codec, f.sample_rate, f.channels) else {
            continue;
        };
        *count
            .entry((codec.as_str(), rate, ch, f.resampled))
            .or_default() += 1;
    }
    let mut kinds: Vec<_> = count.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    kinds
        .into_iter()
        .map(|((codec, rate, ch, resampled), n)| {
            let channels = match ch {
                1 => "mono".to_string(),
                2 => "stereo".to_string(),
                c => format!("{c} channels"),
            };
            let to = if resampled {
                format!(", resampled to {} Hz", m.config.sample_rate)
            } else {
                String::new()
            };
            let files = if n == 1 { "file" } else { "files" };
            format!("{n} {files} {codec} {rate} Hz {channels}{to}")
        })
        .collect()
}

fn inspect(a: InspectArgs) -> Result<Exit> {
    let m = Manifest::read(&a.out)?;
    let stats = verify::feature_stats(&a.out, &m)?;
    if a.json {
        let failed: Vec<_> = m.files.iter().filter(|f| f.status.is_failed()).collect();
        let j = serde_json::json!({
            "rows": m.rows,
            "features": m.features,
            "mapping": m.mapping,
            "config": m.config,
            "geometry": m.geometry,
            "counts": m.counts,
            "failures": m.failures,
            "inputs": input_kinds(&m),
            "device": m.device,
            "device_choice": (!m.device_choice.is_empty()).then_some(&m.device_choice),
            "cpu_head_files": m.cpu_head_files,
            "timings": m.timings,
            "shard": m.shard,
            "values": {
                "finite": stats.finite, "nan": stats.nan, "inf": stats.inf,
                "min": stats.min, "max": stats.max, "mean": stats.mean, "std": stats.std,
                "at_floor": stats.at_floor,
            },
            "failed": failed,
        });
        outln!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(Exit::Success);
    }
    let c = &m.config;
    outln!("{}", a.out.display());
    outln!(
        "  features  {}  {:?} {}  ({:.1} MB)",
        m.features.file,
        m.features.shape,
        m.features.descr,
        m.features.data_bytes as f64 / 1e6
    );
    match &m.mapping {
        Some(a) => outln!(
            "  mapping   {}  {:?} {}  (idx, file_idx, long_idx, short_idx, start_sample, end_sample)",
            a.file, a.shape, a.descr
        ),
        None => outln!("  mapping   none (rows follow from each file's first_row and rows)"),
    }
    outln!(
        "  made by   melpipe {} on {} in {:.2}s",
        m.melpipe_version,
        m.device,
        m.timings.total_s
    );
    if !m.device_choice.is_empty() {
        outln!("  device    {}", m.device_choice);
    }
    if let Some(sh) = &m.shard {
        outln!(
            "  shard     {}/{}: files {}..{} of {} (join the shards with `melpipe merge`)",
            sh.index,
            sh.count,
            sh.first_file,
            sh.first_file + sh.files,
            sh.files_total
        );
    }
    outln!(
        "  signal    {} Hz, length {} ({} samples), channel {}",
        c.sample_rate,
        c.length,
        c.clip_samples,
        c.channel
    );
    outln!(
        "  segments  long {}/{} short {}/{} → {} per long window{}",
        c.long_win,
        c.long_hop,
        c.short_win,
        c.short_hop,
        m.geometry.n_short,
        m.geometry
            .rows_per_file
            .map(|r| format!(", {r} rows per file"))
            .unwrap_or_default()
    );
    outln!(
        "  mel       n_fft {} win {} hop {}, {} mels {}–{} Hz ({}, norm {}), pool {}, top_db {}",
        c.n_fft,
        c.win_length,
        c.hop_length,
        c.n_mels,
        c.f_min,
        c.f_max(),
        c.mel_scale,
        c.norm,
        c.pool,
        c.top_db.map_or("none".into(), |t| t.to_string())
    );
    if !m.empty_mel_filters.is_empty() {
        outln!(
            "  note      mel filters {:?} are all zero",
            m.empty_mel_filters
        );
    }
    let k = &m.counts;
    outln!(
        "  files     {} ok, {} padded, {} truncated, {} failed ({} total)",
        k.ok,
        k.padded,
        k.truncated,
        k.failed,
        k.total()
    );
    for (i, kind) in input_kinds(&m).iter().enumerate() {
        let head = if i == 0 { "  inputs   " } else { "           " };
        outln!("{head} {kind}");
    }
    let damaged: Vec<_> = m.files.iter().filter(|f| f.damage.is_some()).collect();
    if !damaged.is_empty() {
        outln!(
            "  damaged   {} files kept what decoded before the damage (`damage` in the manifest); first: {}: {}",
            damaged.len(),
            damaged[0].path,
            damaged[0].damage.as_deref().unwrap_or("")
        );
    }
    outln!(
        "  values    min {:.2} dB, max {:.2} dB, mean {:.2}, std {:.2}; {} NaN, {} inf, {} at the -100 dB floor",
        stats.min, stats.max, stats.mean, stats.std, stats.nan, stats.inf, stats.at_floor
    );
    print_failures(&m, usize::MAX, true, crate::output::out_line);
    Ok(Exit::Success)
}

fn verify_cmd(a: VerifyArgs) -> Result<Exit> {
    let r = verify::verify(&a.out);
    for n in &r.notes {
        errln!("note: {n}");
    }
    if r.intact() {
        let m = r.manifest.as_ref().map_or(0, |m| m.rows);
        outln!("{}: intact ({m} rows, checksums match)", a.out.display());
        Ok(Exit::Success)
    } else {
        for p in &r.problems {
            outln!("{}: {p}", a.out.display());
        }
        errln!(
            "melpipe: {} is not intact ({} problem(s))",
            a.out.display(),
            r.problems.len()
        );
        Ok(Exit::Io)
    }
}

fn merge(a: MergeArgs, quiet: bool) -> Result<Exit> {
    let s = melpipe_core::merge::merge(&a.shards, &a.out, a.force)?;
    let m = &s.manifest;
    if !quiet {
        let c = &m.counts;
        errln!(
            "merged {} shards → {}: {} files, {} rows × {} × {} ({}) in {:.2}s ({:.2} GB copied)",
            s.shards,
            a.out.display(),
            c.total(),
            m.rows,
            m.geometry.n_mels,
            m.geometry.out_frames,
            m.features.descr,
            m.timings.total_s,
            s.bytes as f64 / 1e9
        );
        errln!(
            "  files: {} ok, {} padded, {} truncated, {} failed",
            c.ok,
            c.padded,
            c.truncated,
            c.failed
        );
    }
    Ok(Exit::Success)
}

fn plot(a: PlotArgs) -> Result<Exit> {
    let m = Manifest::read(&a.out)?;
    let want = a.file.trim_start_matches("./");
    let idx = match m.files.iter().position(|f| f.path == want) {
        Some(i) => i,
        None => {
            let hits: Vec<usize> = (0..m.files.len())
                .filter(|&i| {
                    let p = &m.files[i].path;
                    p.ends_with(want)
                        && (p.len() == want.len() || p[..p.len() - want.len()].ends_with('/'))
                })
                .collect();
            match hits.as_slice() {
                [i] => *i,
                [] => {
                    return Err(melpipe_core::Error::Input(format!(
                        "{want} is not a file of this output (see `melpipe inspect {}` or manifest.json)",
                        a.out.display()
                    ))
                    .into())
                }
                _ => {
                    return Err(melpipe_core::Error::Input(format!(
                        "{want} matches {} files; give more of the path",
                        hits.len()
                    ))
                    .into())
                }
            }
        }
    };
    let f = &m.files[idx];
    if f.rows == 0 {
        return Err(melpipe_core::Error::Input(format!(
            "{} has no rows ({}): nothing to draw",
            f.path,
            f.status.name()
        ))
        .into());
    }
    let v = verify::file_features(&a.out, &m, idx)?;
    let (rows, mels, t) = (f.rows as usize, m.config.n_mels, m.config.out_frames());
    let n_x = rows * t;
    let mut grid = vec![0f32; mels * n_x];
    for r in 0..rows {
        for mel in 0..mels {
            for k in 0..t {
                grid[mel * n_x + r * t + k] = v[(r * mels + mel) * t + k];
            }
        }
    }
    let title = format!("{} - log-mel (dB), {}", f.path, f.status.name());
    let x_label = if t == 1 {
        "segment".to_string()
    } else {
        format!("segment x {t} frames")
    };
    let png = crate::plot::render_png(&crate::plot::HeatMap {
        values: &grid,
        n_x,
        n_y: mels,
        title: &title,
        x_label: &x_label,
        y_label: "mel band",
        colorbar_label: "dB",
    })
    .map_err(|e| anyhow::anyhow!("drawing {}: {e}", f.path))?;
    write_png(&a.png, &png)?;
    outln!(
        "{}: {} rows of {} drawn to {}",
        a.out.display(),
        rows,
        f.path,
        a.png.display()
    );
    Ok(Exit::Success)
}

/// Writes a plot to `path`, never over a file that is not a PNG: `-o OUT/features.npy`, a WAV
/// input or a manifest typed by mistake is refused, while a PNG (an earlier plot) is replaced.
/// The picture goes to a temporary file beside `path`, then is renamed over it, so a failure
/// leaves the earlier file as it was.
fn write_png(path: &Path, png: &[u8]) -> Result<()> {
    use std::io::{Read, Write};
    const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
    let refuse = |why: &str| -> anyhow::Error {
        crate::UsageError(format!(
            "-o {}: {why}; plot writes only new files or over earlier PNG files: choose another -o",
            path.display()
        ))
        .into()
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(refuse("is a folder")),
        Ok(m) if !m.is_file() => return Err(refuse("exists and is not a regular file")),
        Ok(_) => {
            let mut head = [0u8; 8];
            let is_png = std::fs::File::open(path)
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok()
                && &head == SIGNATURE;
            if !is_png {
                return Err(refuse("exists and is not a PNG file"));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(melpipe_core::Error::io("checking", path, e).into()),
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".melpipe-plot-")
        .suffix(".png")
        // As a plain create would make it (the umask applies), not tempfile's 0600.
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| melpipe_core::Error::io("creating a temporary file in", dir, e))?;
    tmp.write_all(png)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| melpipe_core::Error::io("writing", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| melpipe_core::Error::io("writing", path, e.error))?;
    Ok(())
}

fn generate(a: GenerateArgs) -> Result<Exit> {
    use melpipe_gen::{generate, GenerateOptions};
    let t = std::time::Instant::now();
    let format = a
        .format
        .parse()
        .map_err(|e: String| melpipe_core::Error::Config(format!("--format: {e}")))?;
    let opts = GenerateOptions {
        files: a.files,
        corrupt: a.corrupt,
        seed: a.seed,
        overwrite: a.force,
        format,
        sample_rate: a.sample_rate,
        samples: a.samples,
    };
    let r = generate(&a.out, &opts)?;
    errln!(
        "wrote {} files ({:.2} GB) to {} in {:.1}s ({} valid clips of {} samples at {} Hz as {}, {} unusual or malformed)",
        r.files.len(),
        r.bytes as f64 / 1e9,
        a.out.display(),
        t.elapsed().as_secs_f64(),
        a.files,
        a.samples,
        a.sample_rate,
        a.format.to_ascii_lowercase(),
        a.corrupt
    );
    Ok(Exit::Success)
}

fn demo(a: DemoArgs, quiet: bool) -> Result<Exit> {
    use melpipe_gen::{generate, GenerateOptions};
    let mut cfg = Settings::default();
    a.params.apply(&mut cfg)?;
    cfg.validate()?;
    let dir = tempfile::Builder::new()
        .prefix("melpipe-demo-")
        .tempdir()
        .map_err(|e| {
            melpipe_core::Error::io("creating a temporary folder", std::env::temp_dir(), e)
        })?;
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    let t = std::time::Instant::now();
    let opts = GenerateOptions {
        files: a.files,
        corrupt: a.corrupt,
        ..GenerateOptions::default()
    };
    let r = generate(&data, &opts)?;
    if !quiet {
        errln!(
            "demo: generated {} synthetic clips ({:.0} MB) in {:.1}s under {}",
            r.files.len(),
            r.bytes as f64 / 1e6,
            t.elapsed().as_secs_f64(),
            data.display()
        );
    }
    let summary = execute(
        &cfg,
        Execution::command(vec![data.clone()], out.clone(), false, false, None, quiet),
    )?;
    print_summary(&summary, quiet);
    let check = verify::verify(&out);
    if !check.intact() {
        anyhow::bail!(
            "the demo output did not verify: {}",
            check.problems.join("; ")
        );
    }
    if a.keep {
        let kept = dir.keep();
        errln!(
            "kept: dataset {} and output {} (try `melpipe inspect {}`)",
            kept.join("data").display(),
            kept.join("out").display(),
            kept.join("out").display()
        );
    } else if !quiet {
        errln!("demo: output verified; temporary files removed (--keep keeps them)");
    }
    Ok(Exit::Success)
}
