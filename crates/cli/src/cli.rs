//! Command-line surface: clap derive structures and the merge of flags over TOML.

use clap::{Args, Parser, Subcommand};
use melpipe_core::config::{Definition, FromFlag, Settings};
use std::path::PathBuf;

/// The exit codes, shown after `melpipe --help` and `melpipe run --help` (README's table).
const EXIT_CODES: &str = "Exit codes: 0 success (failed input files possible without --strict); \
1 usage or configuration error (bad option or value, no INPUT, OUT holds another run); 2 I/O or \
device error, or `verify`: not intact; 3 --strict: an input file failed; 4 every input file \
failed (the manifest is written; not for --shard); 130 interrupted by \
Ctrl-C, SIGTERM or SIGHUP (progress kept for --resume; a second signal exits at once).";

/// melpipe: log-mel-spectrogram features of large collections of audio clips, on an NVIDIA
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
    pub params: SettingsFlags,
}

/// Builds [`SettingsFlags`] from the one definition of every parameter and run option
/// ([`melpipe_core::settings_table!`]): flag, help, heading and default come from there.
macro_rules! define_flags {
    ($($place:ident [$h:ident] $n:ident : $t:ty => $f:ty = $d:expr, $dt:literal, $help:literal;)*) => {
        /// Every parameter and run option, as optional overrides of the `--config` file.
        #[derive(Args, Debug, Default, Clone)]
        // A switch: `--resample` alone is `true`; a value needs `=`, so that `--resample DATA/`
        // leaves DATA/ an INPUT.
        #[command(mut_arg("resample", |a| a
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_name("BOOL")))]
        pub struct SettingsFlags {
            $(
                #[arg(long, help_heading = stringify!($h), help = Definition::flag_help($help, $dt))]
                pub $n: Option<$f>,
            )*
            /// MiB of computed features a device run may hold past the queue depth while their
            /// rows wait for the disk (192; 0: each compute thread writes its own rows).
            #[arg(long, hide = true, value_name = "MIB")]
            pub ahead_mib: Option<f64>,
            /// Seconds between journal checkpoints (1; 1e9: only the final commit).
            #[arg(long, hide = true, value_name = "SECS")]
            pub checkpoint_secs: Option<f64>,
            /// Positioned writes from this many bytes start their own writeback (1 MiB).
            #[arg(long, hide = true, value_name = "BYTES")]
            pub own_writeback_min: Option<u64>,
        }

        impl SettingsFlags {
            /// Applies every given flag over `s`.
            pub fn apply(&self, s: &mut Settings) -> melpipe_core::Result<()> {
                $(
                    if let Some(v) = self.$n.clone() {
                        s.$place.$n = FromFlag::from_flag(v)?;
                    }
                )*
                let t = &mut s.run.tuning;
                t.ahead_mib = self.ahead_mib.or(t.ahead_mib);
                t.checkpoint_secs = self.checkpoint_secs.or(t.checkpoint_secs);
                t.own_writeback_min = self.own_writeback_min.or(t.own_writeback_min);
                Ok(())
            }
        }
    };
}

melpipe_core::settings_table!(define_flags);

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
    pub params: SettingsFlags,
}

/// `melpipe generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Folder to write into (created).
    pub out: PathBuf,
    /// Number of valid seed-shaped clips (mono 16-bit, 4096 Hz and 40,960 samples unless
    /// --sample-rate and --samples say otherwise).
    #[arg(long, default_value_t = 2000)]
    pub files: usize,
    /// Extra malformed or unusual files of varied kinds.
    #[arg(long, default_value_t = 0)]
    pub corrupt: usize,
    /// Random seed (the same seed gives the same files).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Format of the valid clips: wav, flac (written by melpipe), mp3 (needs the `lame`
    /// program) or ogg (Ogg Vorbis; needs `oggenc`, Debian's vorbis-tools). The unusual files
    /// of --corrupt are always WAV.
    #[arg(long, default_value = "wav", value_name = "FORMAT")]
    pub format: String,
    /// Sample rate of the clips, Hz (MP3 takes 8000, 11025, 12000, 16000, 22050, 24000,
    /// 32000, 44100 or 48000).
    #[arg(long, default_value_t = 4096)]
    pub sample_rate: u32,
    /// Samples per clip.
    #[arg(long, default_value_t = 40960)]
    pub samples: usize,
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
