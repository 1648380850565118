//! Command-line surface (SPEC §1): clap derive structures and the merge of flags over TOML.

use clap::{Args, Parser, Subcommand};
use melpipe_core::config::{
    Channel, Dtype, Layout, LengthMode, MappingKind, MelNorm, MelScale, Pool,
};
use melpipe_core::Config;
use std::path::PathBuf;

/// The exit codes, shown after `melpipe --help` and `melpipe run --help` (README's table).
const EXIT_CODES: &str = "Exit codes: 0 success (failed input files possible without --strict); \
1 usage or configuration error (bad option or value, no INPUT, OUT holds another run); 2 I/O or \
device error, or `verify`: not intact; 3 --strict: an input file failed; 130 interrupted by \
Ctrl-C, SIGTERM or SIGHUP (progress kept for --resume; a second signal exits at once).";

/// melpipe: log-mel-spectrogram features of large collections of short WAV clips, on an NVIDIA
/// GPU when there is one and on the CPU otherwise, written as NumPy arrays with a manifest.
#[derive(Parser, Debug)]
#[command(
    name = "melpipe",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). Also PIPELINE_LOG_LEVEL or MELPIPE_LOG
    /// (error|warn|info|debug|trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less output: warnings and errors only, no status line.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Extract features: INPUT folders (walked for *.wav), files, or @list.txt → OUT.
    Run(RunArgs),
    /// Generate a synthetic dataset in a temporary folder, run on it, print the summary.
    Demo(DemoArgs),
    /// Write a synthetic seed-shaped dataset (tones, chirps, noise) for tests and benchmarks.
    Generate(GenerateArgs),
    /// Describe an output folder: shapes, parameters, statuses, value statistics, failures.
    Inspect(InspectArgs),
    /// Check an output folder's integrity; exit 0 only if it is intact.
    Verify(VerifyArgs),
    /// Join the outputs of `run --shard K/N` into one dataset, identical to a single run.
    Merge(MergeArgs),
    /// Draw the features of one source file as a PNG heat map.
    Plot(PlotArgs),
}

/// `melpipe run`.
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct RunArgs {
    /// Input folders (walked recursively for *.wav, any case), files, or @list.txt (one path per
    /// line; a listed path that cannot be read is recorded as a failed file). An INPUT inside
    /// another INPUT folder is refused: its files would be processed twice.
    #[arg(required_unless_present = "print_config")]
    pub inputs: Vec<PathBuf>,
    /// Output folder (features.npy, mapping.npy, manifest.json).
    #[arg(short, long, required_unless_present = "print_config")]
    pub out: Option<PathBuf>,
    /// Read options from a TOML file (keys as in --print-config); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Replace the output of another melpipe run in OUT (it stays in place until the new output
    /// commits, then is deleted) or discard an interrupted run's partial output. Files that
    /// melpipe did not write are never replaced or deleted.
    #[arg(long)]
    pub force: bool,
    /// Continue an interrupted run in OUT from its last committed batch (same parameters and
    /// inputs required); the result is byte-identical to an uninterrupted run.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Stop at the first file that fails (exit 3) instead of recording it and going on.
    #[arg(long)]
    pub strict: bool,
    /// Process only slice K of N (K from 0) of the sorted file list: files [K·F/N, (K+1)·F/N).
    /// Without it, a Slurm job array (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN of
    /// SLURM_ARRAY_TASK_COUNT) or, with --shards N, a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX) chooses the slice; --shard 0/1 processes every file whatever the
    /// environment says. Join the shards with `melpipe merge`.
    #[arg(long, value_name = "K/N", help_heading = "Sharding")]
    pub shard: Option<String>,
    /// Number of shards N when the scheduler gives only the index (JOB_COMPLETION_INDEX of a
    /// Kubernetes Indexed Job: set N to the Job's completions).
    #[arg(long, value_name = "N", help_heading = "Sharding")]
    pub shards: Option<String>,
    #[command(flatten)]
    pub params: Params,
}

/// Every parameter of SPEC §2 and the pipeline's knobs, as optional overrides.
#[derive(Args, Debug, Default, Clone)]
pub struct Params {
    /// auto (cuda:0 when an NVIDIA GPU, libcuda and libnvrtc are present, else CPU; a GPU that
    /// then fails to start falls back to the CPU with a warning), cpu, cuda (exit 2 if the GPU
    /// cannot start, with the reason), cuda:N, cuda:all (every visible GPU). [default: auto]
    #[arg(long, help_heading = "Device")]
    pub device: Option<String>,
    /// Sample rate every input must have, Hz. [default: 4096]
    #[arg(long, help_heading = "Signal")]
    pub sample_rate: Option<u32>,
    /// Samples per clip in fixed mode (shorter files zero-padded, longer truncated; at most
    /// 2^28, and one clip's samples and features within 1 GiB). [default: 40960]
    #[arg(long, help_heading = "Signal")]
    pub clip_samples: Option<usize>,
    /// fixed: every file gives the same rows; natural: rows only where the file has samples. [default: fixed]
    #[arg(long, help_heading = "Signal")]
    pub length: Option<LengthMode>,
    /// Channel of multi-channel files: mix (mean of channels) or an index from 0. [default: mix]
    #[arg(long, help_heading = "Signal")]
    pub channel: Option<Channel>,
    /// Long window, samples. [default: 1024]
    #[arg(long, help_heading = "Segments")]
    pub long_win: Option<usize>,
    /// Hop between long windows. [default: 512]
    #[arg(long, help_heading = "Segments")]
    pub long_hop: Option<usize>,
    /// Short window (one row), samples. [default: 512]
    #[arg(long, help_heading = "Segments")]
    pub short_win: Option<usize>,
    /// Hop between short windows inside a long one. [default: 256]
    #[arg(long, help_heading = "Segments")]
    pub short_hop: Option<usize>,
    /// FFT size. [default: 64]
    #[arg(long, help_heading = "Spectrogram")]
    pub n_fft: Option<usize>,
    /// Hann window length (≤ n_fft). [default: 64]
    #[arg(long, help_heading = "Spectrogram")]
    pub win_length: Option<usize>,
    /// Hop between STFT frames. [default: 16]
    #[arg(long, help_heading = "Spectrogram")]
    pub hop_length: Option<usize>,
    /// Mel bands. [default: 32]
    #[arg(long, help_heading = "Spectrogram")]
    pub n_mels: Option<usize>,
    /// Lowest mel frequency, Hz. [default: 0]
    #[arg(long, help_heading = "Spectrogram")]
    pub f_min: Option<f64>,
    /// Highest mel frequency, Hz. [default: sample_rate/2]
    #[arg(long, help_heading = "Spectrogram")]
    pub f_max: Option<f64>,
    /// htk or slaney. [default: htk]
    #[arg(long, help_heading = "Spectrogram")]
    pub mel_scale: Option<MelScale>,
    /// Mel filter normalisation: none or slaney. [default: none]
    #[arg(long, help_heading = "Spectrogram")]
    pub norm: Option<MelNorm>,
    /// mean: one frame per row (mean mel power before the log); none: every STFT frame. [default: mean]
    #[arg(long, help_heading = "Spectrogram")]
    pub pool: Option<Pool>,
    /// Clip each row to its maximum minus this many dB. [default: none]
    #[arg(long, help_heading = "Spectrogram")]
    pub top_db: Option<f64>,
    /// Stored feature dtype: f16 or f32. [default: f16]
    #[arg(long, help_heading = "Output")]
    pub dtype: Option<Dtype>,
    /// Mapping table: i64 (the seed's), i32 (half the bytes) or none. [default: i64]
    #[arg(long, help_heading = "Output")]
    pub mapping: Option<MappingKind>,
    /// seed: write PIPELINE_FEATURES.DAT (raw) and PIPELINE_MEMMAP.npy instead. [default: default]
    #[arg(long, help_heading = "Output")]
    pub layout: Option<Layout>,
    /// Reader threads (0: automatic; at most 1024). [default: 0]
    #[arg(long, help_heading = "Pipeline")]
    pub readers: Option<usize>,
    /// CPU compute threads, also when `--device auto` falls back to the CPU (0: one per core;
    /// at most 1024). [default: 0]
    #[arg(long, help_heading = "Pipeline")]
    pub threads: Option<usize>,
    /// Files per task, the unit read, computed and written together (0: automatic). [default: 0]
    #[arg(long, help_heading = "Pipeline")]
    pub files_per_task: Option<usize>,
    /// Tasks in flight between reading and writing; bounds memory (0: automatic; at most
    /// 65536, and never more than the run has tasks). A GPU run may also hold computed tasks,
    /// up to about 192 MiB of features, waiting for the disk. [default: 0]
    #[arg(long, help_heading = "Pipeline")]
    pub queue_depth: Option<usize>,
    /// Compute streams per GPU (0: automatic; at most 64). [default: 0]
    #[arg(long, help_heading = "Pipeline")]
    pub streams: Option<usize>,
    /// GPU runs: how many of the first files CPU threads compute while the GPU starts, so that
    /// rows reach the disk from the first moment (0: none). Automatic: what half the CPU
    /// threads compute in about 0.15 s, from the parameters and the thread count, never from
    /// timing, so the same machine always splits the same way. The two backends agree to
    /// rounding; the manifest records the number, and a resume keeps it.
    #[arg(long, help_heading = "Pipeline")]
    pub cpu_head: Option<usize>,
}

impl Params {
    /// Applies every given flag over `cfg`.
    pub fn apply(&self, cfg: &mut Config) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { cfg.$f = v; } )* };
        }
        set!(
            device,
            sample_rate,
            clip_samples,
            length,
            channel,
            long_win,
            long_hop,
            short_win,
            short_hop,
            n_fft,
            win_length,
            hop_length,
            n_mels,
            f_min,
            mel_scale,
            norm,
            pool,
            dtype,
            mapping,
            layout,
            readers,
            threads,
            files_per_task,
            queue_depth,
            streams
        );
        if let Some(v) = self.f_max {
            cfg.f_max = Some(v);
        }
        if let Some(v) = self.top_db {
            cfg.top_db = Some(v);
        }
        if let Some(v) = self.cpu_head {
            cfg.cpu_head = Some(v);
        }
    }
}

/// `melpipe demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Files to generate.
    #[arg(long, default_value_t = 2000)]
    pub files: usize,
    /// Keep the generated dataset and the output (their paths are printed).
    #[arg(long)]
    pub keep: bool,
    /// Malformed files to add (they show up as failed in the summary).
    #[arg(long, default_value_t = 0)]
    pub corrupt: usize,
    #[command(flatten)]
    pub params: Params,
}

/// `melpipe generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Folder to write into (created).
    pub out: PathBuf,
    /// Number of valid seed-shaped files (4096 Hz, 40,960 int16 samples).
    #[arg(long, default_value_t = 2000)]
    pub files: usize,
    /// Extra malformed or unusual files of varied kinds.
    #[arg(long, default_value_t = 0)]
    pub corrupt: usize,
    /// Random seed (the same seed gives the same files).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write into a folder that already holds files. Without it, such a folder is refused
    /// (it may hold your own clips); with it, files of the generated names are overwritten
    /// and every other file is kept.
    #[arg(long)]
    pub force: bool,
}

/// `melpipe inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Output folder of a run.
    pub out: PathBuf,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `melpipe verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Output folder of a run.
    pub out: PathBuf,
}

/// `melpipe merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Output folders of `melpipe run --shard K/N`, in any order; together they must hold every
    /// slice of one file list, made with the same parameters.
    #[arg(required = true, value_name = "SHARD_OUT")]
    pub shards: Vec<PathBuf>,
    /// Output folder of the merged dataset.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Replace an existing melpipe output in OUT (kept until the merge commits) or discard an
    /// interrupted run's or merge's partial output.
    #[arg(long)]
    pub force: bool,
}

/// `melpipe plot`.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Output folder of a run.
    pub out: PathBuf,
    /// Source file, as recorded in the manifest (relative path; a unique suffix is enough).
    #[arg(long)]
    pub file: String,
    /// PNG to write. An existing file is replaced only if it is a PNG (an earlier plot).
    #[arg(short = 'o', long = "output")]
    pub png: PathBuf,
}
