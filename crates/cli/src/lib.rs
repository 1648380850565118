//! The `melpipe` command: argument parsing, logging, exit codes, status output. The work lives in
//! `melpipe-core` (and `melpipe-cuda` for the GPU).
//!
//! A library so that two front ends share it: the `melpipe` binary (`src/main.rs`, which calls
//! [`main`]) and the Python package (`crates/python`), whose `melpipe` command calls [`main`]
//! with its own arguments and whose `melpipe.run` calls [`execute`] in its own process.

mod cli;
mod commands;
mod output;
mod plot;
mod signals;
mod status;

pub use commands::{execute, print_summary as report_summary, read_config, Execution};

use clap::Parser;
use output::errln;

/// Exit codes (the README's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success (warnings possible).
    Success = 0,
    /// Usage or configuration error.
    Usage = 1,
    /// I/O or device error that stopped the run.
    Io = 2,
    /// The run finished but some input files failed (`--strict`).
    FilesFailed = 3,
    /// The run finished, its manifest written, but every input file failed.
    NoUsableFile = 4,
    /// Interrupted by Ctrl-C.
    Interrupted = 130,
}

/// A usage error found by the CLI itself, outside the library (exit 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl Exit {
    /// The exit code a library error maps to.
    pub fn of(e: &anyhow::Error) -> Exit {
        use melpipe_core::Error as E;
        if e.downcast_ref::<UsageError>().is_some() {
            return Exit::Usage;
        }
        match e.downcast_ref::<E>() {
            Some(E::Config(_) | E::Input(_) | E::Output { .. } | E::NoJournalHeader { .. }) => {
                Exit::Usage
            }
            Some(E::Io { .. } | E::Machine { .. } | E::Backend { .. }) => Exit::Io,
            Some(E::StrictFailure { .. }) => Exit::FilesFailed,
            Some(E::Interrupted) => Exit::Interrupted,
            None => Exit::Io,
        }
    }
}

/// Warnings only while set, whatever [`init_logging`] chose: for a front end whose calls choose
/// one by one (`melpipe.run(progress=False)`).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Shows warnings only (`true`) or what [`init_logging`] chose (`false`) from now on.
pub fn set_log_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Starts the log on stderr: `quiet` shows warnings only, `verbose` 1 debug and 2 trace, else
/// `PIPELINE_LOG_LEVEL` or `MELPIPE_LOG` (default info). Only the first call in a process takes
/// effect.
pub fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let from_env = std::env::var("PIPELINE_LOG_LEVEL")
        .or_else(|_| std::env::var("MELPIPE_LOG"))
        .ok();
    let level = match (quiet, verbose) {
        (true, _) => "warn".to_string(),
        (false, 0) => from_env.unwrap_or_else(|| "info".into()).to_lowercase(),
        (false, 1) => "debug".into(),
        _ => "trace".into(),
    };
    // The decoders' own log (symphonia's crates) is off: what it would say of a damaged file
    // is that file's reason or `damage` in the manifest and the summary.
    let filter = EnvFilter::try_new(format!(
        "warn,symphonia=off,melpipe={level},melpipe_core={level},melpipe_cuda={level}"
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // Asked at every event above WARN (`sometimes`), not once per call site, since
    // `set_log_quiet` may change between two runs of one process.
    let quiet_now = tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
        !QUIET.load(std::sync::atomic::Ordering::Relaxed) || *meta.level() <= tracing::Level::WARN
    })
    .with_callsite_filter(|meta| {
        if *meta.level() <= tracing::Level::WARN {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::sometimes()
        }
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(BarWriter)
        .finish()
        .with(quiet_now)
        .try_init();
}

/// Writes log lines to stderr without tearing the progress bar.
struct BarWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BarWriter {
    type Writer = BarLine;
    fn make_writer(&'a self) -> BarLine {
        BarLine(Vec::new())
    }
}

/// One log line, printed when dropped.
struct BarLine(Vec<u8>);

impl std::io::Write for BarLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for BarLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let text = text.trim_end();
        match status::BAR.get() {
            Some(b) if !b.is_finished() => b.suspend(|| errln!("{text}")),
            _ => errln!("{text}"),
        }
    }
}

/// When the process started, for the `-v` timeline of where a run's wall time goes.
static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Logs (at debug level, `-v`) the seconds since the process started.
pub(crate) fn timeline(what: &'static str) {
    melpipe_core::trace::mark(what, 0);
    if let Some(t0) = START.get() {
        tracing::debug!("timeline: {what} at {:.3} s", t0.elapsed().as_secs_f64());
    }
}

/// Whether to end a successful process with `_exit`, skipping the CUDA driver's exit handlers
/// (the run has given its GPU back already; the OS reclaims the driver's own state): on unless
/// `MELPIPE_CLEAN_EXIT=1` (for tools such as compute-sanitizer, and for comparing).
pub(crate) fn fast_exit() -> bool {
    std::env::var_os("MELPIPE_CLEAN_EXIT").is_none_or(|v| v != "1")
}

/// The `melpipe` command with `args` (the program's name first, as `std::env::args_os` gives
/// them), in a process of its own: it takes SIGINT, SIGTERM and SIGHUP for the whole process
/// (see `signals.rs`), and a successful command ends the process itself (`_exit`, see
/// [`fast_exit`]). Returns the exit code otherwise.
pub fn main<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let _ = START.set(std::time::Instant::now());
    signals::block();
    // MELPIPE_TRACE=FILE records every stage's spans (bench/trace_summary.py reads them). A
    // path, not text: a name that is not UTF-8 is still a file name.
    melpipe_core::trace::start(std::env::var_os("MELPIPE_TRACE").map(Into::into));
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    init_logging(cli.verbose, cli.quiet);
    melpipe_core::read::raise_open_files_limit();
    let resumable = matches!(cli.command, cli::Command::Run(_));
    let mut r = commands::dispatch(cli);
    timeline("command finished, resources released");
    if let Some(e) = output::stdout_failure() {
        if matches!(r, Ok(Exit::Success)) {
            r = Err(anyhow::anyhow!("writing to stdout: {e}"));
        }
    }
    if let Err(e) = melpipe_core::trace::dump() {
        errln!("melpipe: warning: could not write the MELPIPE_TRACE file: {e}");
    }
    match r {
        Ok(code) if fast_exit() => {
            // Everything is written, fsynced and renamed; skip the CUDA driver's exit handlers.
            use std::io::Write;
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            // SAFETY: _exit ends the process at once; no Rust state is used afterwards.
            unsafe { libc::_exit(code as i32) }
        }
        Ok(code) => code as u8,
        Err(e) => {
            let code = Exit::of(&e);
            if code == Exit::Interrupted {
                errln!("melpipe: interrupted; progress is kept in OUT/.melpipe-partial: run the same command with --resume (without --force) to continue");
            } else {
                errln!("melpipe: error: {}", message(&e));
                if let Some(hint) = hint(&e, resumable) {
                    errln!("  hint: {hint}");
                }
            }
            code as u8
        }
    }
}

/// Prints what clap has to say: `--help` and `--version` exit 0, a usage error (unknown flag,
/// bad value, missing argument) exits 1 as the exit-code table says, not clap's 2, which
/// melpipe keeps for I/O errors.
fn usage_error(e: &clap::Error) -> u8 {
    // A closed or full stream must not turn `--help | head -1` into a panic.
    let _ = e.print();
    if e.exit_code() == 0 {
        Exit::Success as u8
    } else {
        Exit::Usage as u8
    }
}

/// The error and its causes, as `{:#}` prints them but without repeating a cause that the
/// message before it already ends with (the library's I/O errors include their OS error).
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// What to do about an error, where there is something to say. `resumable`: the command keeps
/// its progress for `--resume` (`run`); others (`merge`) are run again.
pub fn hint(e: &anyhow::Error, resumable: bool) -> Option<&'static str> {
    use melpipe_core::Error as E;
    let again =
        |resume: &'static str, rerun: &'static str| Some(if resumable { resume } else { rerun });
    match e.downcast_ref::<E>()? {
        E::Config(_) => Some(
            "`melpipe run --print-config` shows every option; `melpipe run --help` explains them",
        ),
        E::StrictFailure { .. } => {
            Some("without --strict, failed files are recorded in the manifest and the run goes on")
        }
        E::Io { source, .. } => match source.raw_os_error()? {
            libc::ENOSPC | libc::EDQUOT => again(
                "the disk holding OUT is full: free space (or give OUT more room), then run the same command with --resume (without --force) to continue from the last committed batch",
                "the disk holding OUT is full: free space (or give OUT more room), then run the same command again",
            ),
            code => exhausted(code, resumable),
        },
        E::Machine { error, .. } => exhausted(error.raw_os_error()?, true).or(Some(
            "the error says nothing about the file itself, so it was not recorded as a failed input: fix the cause (the machine or its storage), then run the same command with --resume (without --force)",
        )),
        _ => None,
    }
}

/// The hint for a resource of the machine that ran out (open files, memory), if `code` is one.
fn exhausted(code: i32, resumable: bool) -> Option<&'static str> {
    Some(match (code, resumable) {
        (libc::EMFILE | libc::ENFILE, true) => "the process or the system ran out of open files (melpipe raised its soft limit to the hard one, `ulimit -Hn`): raise the limit or pass fewer --readers, then run the same command with --resume (without --force); no input was recorded as failed for it",
        (libc::EMFILE | libc::ENFILE, false) => "the process or the system ran out of open files (melpipe raised its soft limit to the hard one, `ulimit -Hn`): raise the limit, then run the same command again",
        (libc::ENOMEM | libc::ENOBUFS, true) => "the system ran out of memory: free some (or lower --queue-depth and --readers), then run the same command with --resume (without --force); no input was recorded as failed for it",
        (libc::ENOMEM | libc::ENOBUFS, false) => "the system ran out of memory: free some, then run the same command again",
        _ => return None,
    })
}
