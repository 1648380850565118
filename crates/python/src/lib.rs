//! `melpipe._native`: the Rust half of the Python package (`python/melpipe`).
//!
//! - [`cli_main`]: the `melpipe` command of the wheel, the same `melpipe_cli::main` as the
//!   cargo-built binary, signals included.
//! - [`run`]: `melpipe.run`, the pipeline in this process, on a thread of its own while the
//!   calling thread waits without the GIL, looking for Ctrl-C every 50 ms.
//! - [`verify()`](fn@verify): `Output.verify()`.
//! - [`extract::Extractor`]: `melpipe.extract` and `melpipe.Extractor`, features of samples in
//!   memory.
//!
//! Errors become the exception classes below, with the CLI's message and hint
//! ([`error_to_py`]). The Python side (`python/melpipe/__init__.py`) holds everything that is
//! plain Python: the summary, `open()`, the torch dataset, tqdm.

mod extract;
mod settings;

use melpipe_cli::{execute, Execution, Exit};
use melpipe_core::config::{Params, RunOptions, DEFINITIONS};
use melpipe_core::progress::Progress;
use melpipe_core::shard::ShardSpec;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

create_exception!(
    melpipe,
    MelpipeError,
    PyException,
    "Base class of melpipe's errors. `hint` says what to do, where there is something to say; `exit_code` is the `melpipe` command's exit code for the same error."
);
create_exception!(
    melpipe,
    ConfigError,
    MelpipeError,
    "A setting is out of range or inconsistent, or the output folder cannot be used (exit code 1)."
);
create_exception!(
    melpipe,
    InputError,
    MelpipeError,
    "An input argument cannot be used: a missing path, an empty list, an unreadable folder (exit code 1)."
);
create_exception!(
    melpipe,
    NoUsableFileError,
    InputError,
    "The run finished and wrote its manifest, but every input file failed (exit code 4); `summary` is the run's summary."
);
create_exception!(
    melpipe,
    IoError,
    MelpipeError,
    "Reading, writing or the machine failed (a full disk, a lost mount); the run can be resumed (exit code 2)."
);
create_exception!(
    melpipe,
    DeviceError,
    MelpipeError,
    "The GPU asked for cannot be used, or failed (exit code 2)."
);
create_exception!(
    melpipe,
    StrictFailureError,
    MelpipeError,
    "`strict=True` stopped the run at the first failed input file (exit code 3)."
);

/// The Python exception for a library or CLI error: its class by kind, its text the CLI's
/// message and hint. `resumable`: the operation keeps its progress for `resume=True`.
pub(crate) fn error_to_py(py: Python<'_>, e: &anyhow::Error, resumable: bool) -> PyErr {
    use melpipe_core::Error as E;
    let message = melpipe_cli::message(e);
    let hint = melpipe_cli::hint(e, resumable).map(python_hint);
    let code = melpipe_cli::Exit::of(e) as u8;
    let text = match &hint {
        Some(h) => format!("{message}\n  hint: {h}"),
        None => message,
    };
    let err = match e.downcast_ref::<E>() {
        Some(E::Interrupted) => return PyKeyboardInterrupt::new_err(text),
        Some(E::Config(_) | E::Output { .. } | E::NoJournalHeader { .. }) => {
            ConfigError::new_err(text)
        }
        Some(E::Input(_)) => InputError::new_err(text),
        Some(E::Io { .. } | E::Machine { .. }) => IoError::new_err(text),
        Some(E::Backend { .. }) => DeviceError::new_err(text),
        Some(E::StrictFailure { .. }) => StrictFailureError::new_err(text),
        None if e.downcast_ref::<melpipe_cli::UsageError>().is_some() => ConfigError::new_err(text),
        None => MelpipeError::new_err(text),
    };
    annotate(py, &err, hint, code);
    err
}

/// A hint of the command in the words of the Python API.
fn python_hint(hint: &str) -> String {
    [
        (
            "`melpipe run --print-config` shows every option; `melpipe run --help` explains them",
            "help(melpipe.run) lists every setting; `melpipe run --help` explains them",
        ),
        (
            "run the same command with --resume (without --force)",
            "run the same call with resume=True (without force=True)",
        ),
        (
            "then run the same command again",
            "then run the same call again",
        ),
        ("without --strict,", "without strict=True,"),
        ("pass fewer --readers", "pass a smaller readers"),
        (
            "lower --queue-depth and --readers",
            "lower queue_depth and readers",
        ),
    ]
    .iter()
    .fold(hint.to_string(), |h, (cli, py)| h.replace(cli, py))
}

/// Sets `hint` and `exit_code` on an exception of ours.
pub(crate) fn annotate(py: Python<'_>, err: &PyErr, hint: Option<String>, code: u8) {
    let value = err.value(py);
    let _ = value.setattr("hint", hint);
    let _ = value.setattr("exit_code", code);
}

/// A configuration error (exit code 1) with `text`.
pub(crate) fn config_error(py: Python<'_>, text: impl Into<String>) -> PyErr {
    let e = anyhow::Error::from(melpipe_core::Error::Config(text.into()));
    error_to_py(py, &e, false)
}

/// The `melpipe` command with `argv` (program name first), as the binary runs it: it takes
/// SIGINT, SIGTERM and SIGHUP for the process (blocked in this thread and every thread started
/// after, and waited for by a thread of its own), so the wheel's command stops as the binary's
/// does. `_cli.py` imports nothing that starts threads before this call (numpy's BLAS threads
/// would receive the signals otherwise). A successful command ends the process itself;
/// otherwise the exit code is returned for `sys.exit`.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> u8 {
    py.detach(|| melpipe_cli::main(argv))
}

/// The process's actions for SIGINT, SIGTERM and SIGHUP (the interpreter's), to put back after
/// NVRTC compiled a kernel: it installs LLVM's handlers for them, which stay, and a Ctrl-C that
/// reached one ended the process with exit code 4 instead of raising `KeyboardInterrupt`.
#[derive(Clone, Copy)]
pub(crate) struct SignalActions([(i32, libc::sigaction); 3]);

impl SignalActions {
    /// The actions now.
    pub(crate) fn save() -> Self {
        SignalActions([libc::SIGINT, libc::SIGTERM, libc::SIGHUP].map(|sig| {
            // SAFETY: sigaction is plain data (all-zero is a valid value); a null new action
            // only reads the current one into it.
            unsafe {
                let mut now: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut now);
                (sig, now)
            }
        }))
    }

    /// Puts back the saved action of each signal whose handler is now one in libnvrtc, and only
    /// those: a handler someone else installed meanwhile stays. When the saved one is NVRTC's
    /// too (saved while another start compiled), the interpreter's from the module's import.
    pub(crate) fn restore(&self) {
        for (i, (sig, saved)) in self.0.iter().enumerate() {
            // SAFETY: as in `save`; the action installed is one this process had.
            unsafe {
                let mut now: libc::sigaction = std::mem::zeroed();
                libc::sigaction(*sig, std::ptr::null(), &mut now);
                if !in_nvrtc(now.sa_sigaction) {
                    continue;
                }
                let target = if in_nvrtc(saved.sa_sigaction) {
                    match AT_IMPORT.get() {
                        Some(first) if !in_nvrtc(first.0[i].1.sa_sigaction) => &first.0[i].1,
                        _ => continue,
                    }
                } else {
                    saved
                };
                libc::sigaction(*sig, target, std::ptr::null_mut());
            }
        }
    }
}

/// The signal actions when the module was imported (the interpreter's).
static AT_IMPORT: std::sync::OnceLock<SignalActions> = std::sync::OnceLock::new();

/// Whether a signal handler's address lies in NVRTC's library.
fn in_nvrtc(handler: libc::sighandler_t) -> bool {
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        return false;
    }
    // SAFETY: dladdr only looks the address up in the loaded objects; dli_fname, when set,
    // points at a NUL-terminated name owned by the loader.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(handler as *const libc::c_void, &mut info) == 0 || info.dli_fname.is_null()
        {
            return false;
        }
        std::ffi::CStr::from_ptr(info.dli_fname)
            .to_bytes()
            .windows(5)
            .any(|w| w == b"nvrtc")
    }
}

/// SIGINT, SIGTERM and SIGHUP.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// The stop signals blocked in the calling thread until dropped, which puts its mask back: a
/// signal that came meanwhile is then delivered. Held while NVRTC may compile, so that a
/// Ctrl-C does not reach LLVM's handlers through this thread (they ended the process with exit
/// code 4); another thread of the process that does not block them (numpy's BLAS threads) may
/// still take one.
pub(crate) struct HeldSignals(libc::sigset_t);

impl HeldSignals {
    pub(crate) fn hold() -> Self {
        let set = stop_signals();
        // SAFETY: as in stop_signals; the old mask is written into `old`.
        unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            HeldSignals(old)
        }
    }
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        // SAFETY: puts back this thread's mask as it was before `hold`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// Starts `f` on a thread in which SIGINT, SIGTERM and SIGHUP are blocked, as in every thread
/// it starts: the signals then reach the interpreter's threads, whose handlers turn them into
/// `KeyboardInterrupt`, never a thread of the run (NVRTC installs LLVM's handlers while it
/// compiles, and a signal taken inside the compile crashed the process).
pub(crate) fn spawn_shielded<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // SAFETY: the mask changed is this thread's own.
            unsafe {
                libc::pthread_sigmask(libc::SIG_BLOCK, &stop_signals(), std::ptr::null_mut())
            };
            f()
        })
}

/// Runs the pipeline; see `melpipe.run` (python/melpipe/_run.py) for the arguments. `report`:
/// the summary on stderr at the end, after `before_report` is called (it closes a progress bar).
/// Returns the summary as JSON text: `rows`, `counts`, `device`, `seconds` (the run's wall time)
/// and `failures` (the committed manifest, in `out`, can be megabytes: it is read only if asked
/// for).
#[pyfunction]
#[pyo3(signature = (inputs, out, *, params, config=None, device=None, resume=false, force=false, strict=false, shard=None, status_line=true, report=true, on_progress=None, before_report=None))]
#[allow(clippy::too_many_arguments)]
fn run(
    py: Python<'_>,
    inputs: Vec<PathBuf>,
    out: PathBuf,
    params: &Bound<'_, PyDict>,
    config: Option<PathBuf>,
    device: Option<String>,
    resume: bool,
    force: bool,
    strict: bool,
    shard: Option<String>,
    status_line: bool,
    report: bool,
    on_progress: Option<Py<PyAny>>,
    before_report: Option<Py<PyAny>>,
) -> PyResult<String> {
    melpipe_cli::init_logging(0, false);
    melpipe_cli::set_log_quiet(!report);
    let cfg = settings::settings(py, config.as_deref(), params, device.as_deref(), strict)?;
    let shard = shard
        .map(|s| s.parse::<ShardSpec>())
        .transpose()
        .map_err(|e| error_to_py(py, &e.into(), false))?;
    if inputs.is_empty() {
        let e = melpipe_core::Error::Input("no input given (a folder, files, or @list.txt)".into());
        return Err(error_to_py(py, &e.into(), false));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let actions = SignalActions::save();
    // Until the GPU has started (its kernel compiled) or is known not to start, this thread
    // holds the signals too (a Ctrl-C then waits for it; see HeldSignals).
    let mut held =
        (cfg.run.device != melpipe_core::config::DeviceChoice::Cpu).then(HeldSignals::hold);
    let gpu_settled = Arc::new(AtomicBool::new(held.is_none()));
    let settled = Arc::clone(&gpu_settled);
    let ex = Execution {
        inputs,
        out,
        force,
        resume,
        shard,
        status_line,
        stop: Arc::clone(&stop),
        progress: Arc::clone(&progress),
        process_ends: false,
        // The kernel is compiled when the GPU has started: the interpreter's handlers back.
        on_gpu_event: Some(Arc::new(move |what| {
            if what == "GPU backend started" || what == "no GPU to start" {
                actions.restore();
                settled.store(true, Ordering::SeqCst);
            }
        })),
    };
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    let worker = spawn_shielded("melpipe-run", move || {
        let r = execute(&cfg, ex);
        let _ = done_tx.send(());
        r
    })
    .map_err(|e| MelpipeError::new_err(format!("starting the run's thread: {e}")))?;
    let mut interrupted = false;
    let mut callback_error: Option<PyErr> = None;
    loop {
        let finished = py.detach(|| {
            !matches!(
                done_rx.recv_timeout(Duration::from_millis(50)),
                Err(crossbeam_channel::RecvTimeoutError::Timeout)
            )
        });
        if finished || gpu_settled.load(Ordering::SeqCst) {
            // A signal held meanwhile is delivered now, to the interpreter's handler.
            drop(held.take());
        }
        if let Err(e) = py.check_signals() {
            // Ctrl-C (or another signal handler's exception): stop as the CLI does, keeping
            // what was committed, then raise it once the run has ended.
            stop.store(true, Ordering::SeqCst);
            if e.is_instance_of::<PyKeyboardInterrupt>(py) {
                if interrupted {
                    // A second Ctrl-C: return at once; the run ends its stop in the background
                    // (it holds OUT's lock until then).
                    return Err(PyKeyboardInterrupt::new_err(
                        "interrupted again: the run is still stopping in the background; once it has, resume it with resume=True",
                    ));
                }
                interrupted = true;
            } else if callback_error.is_none() {
                callback_error = Some(e);
            }
        }
        if let (Some(cb), None) = (&on_progress, &callback_error) {
            let p = &progress;
            let args = (
                p.files_done.load(Ordering::Relaxed),
                p.files_total.load(Ordering::Relaxed),
                p.files_failed.load(Ordering::Relaxed),
                p.rows_done.load(Ordering::Relaxed),
                p.phase().name(),
            );
            if let Err(e) = cb.call1(py, args) {
                stop.store(true, Ordering::SeqCst);
                callback_error = Some(e);
            }
        }
        if finished {
            break;
        }
    }
    let result = py
        .detach(|| worker.join())
        .map_err(|_| MelpipeError::new_err("the run's thread panicked"))?;
    actions.restore();
    if let Some(e) = callback_error {
        return Err(e);
    }
    let summary = match result {
        Err(e) if interrupted && Exit::of(&e) == Exit::Interrupted => {
            return Err(PyKeyboardInterrupt::new_err(
                "interrupted; progress is kept in OUT/.melpipe-partial: run the same call with resume=True to continue",
            ))
        }
        // Another error is the news, even when Ctrl-C came too.
        Err(e) => return Err(error_to_py(py, &e, true)),
        Ok(_) if interrupted => {
            return Err(PyKeyboardInterrupt::new_err(
                "interrupted after the run had committed: its output is complete",
            ))
        }
        Ok(s) => s,
    };
    if let Some(f) = before_report {
        f.call0(py)?;
    }
    // Warnings (a rowless output) even when quiet, as the command's `-q`.
    py.detach(|| melpipe_cli::report_summary(&summary, !report));
    let m = &summary.manifest;
    let brief = Brief {
        rows: m.rows,
        counts: &m.counts,
        device: &m.device,
        seconds: m.timings.total_s,
        failures: melpipe_core::manifest::failure_groups(&m.files),
    };
    serde_json::to_string(&brief).map_err(|e| MelpipeError::new_err(e.to_string()))
}

/// What `melpipe.run` returns of a run (its fields in the manifest's order).
#[derive(serde::Serialize)]
struct Brief<'a> {
    rows: u64,
    counts: &'a melpipe_core::manifest::StatusCounts,
    device: &'a str,
    seconds: f64,
    failures: Vec<melpipe_core::manifest::FailureGroup>,
}

/// Checks an output folder as `melpipe verify` does: `(intact, problems, notes)`.
#[pyfunction]
fn verify(py: Python<'_>, out: PathBuf) -> (bool, Vec<String>, Vec<String>) {
    let r = py.detach(|| melpipe_core::verify::verify(&out));
    (r.intact(), r.problems, r.notes)
}

/// The manifest of an output folder, read as `melpipe verify` reads it before trusting any of it
/// (its own checksum; array names, shapes, sizes and headers that follow from its
/// configuration), as JSON text. Errors: `IoError` when it cannot be read, else `InputError`.
#[pyfunction]
fn read_manifest(py: Python<'_>, out: PathBuf) -> PyResult<String> {
    use melpipe_core::manifest::Manifest;
    let m = py.detach(|| Manifest::read(&out)).map_err(|e| match e {
        melpipe_core::Error::Io { .. } => error_to_py(py, &e.into(), false),
        other => {
            let err = InputError::new_err(other.to_string());
            annotate(py, &err, None, 1);
            err
        }
    })?;
    serde_json::to_string(&m).map_err(|e| MelpipeError::new_err(e.to_string()))
}

/// Every setting: `(key, default as the help shows it, help, shapes_output)`, in `--help` order.
#[pyfunction]
fn definitions() -> Vec<(&'static str, &'static str, &'static str, bool)> {
    DEFINITIONS
        .iter()
        .map(|d| (d.key, d.default, d.help, d.shapes_output))
        .collect()
}

/// The default settings as TOML (what `melpipe run --print-config` prints).
#[pyfunction]
fn default_config() -> String {
    melpipe_core::Settings::default().to_toml()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let _ = AT_IMPORT.set(SignalActions::save());
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("PARAM_KEYS", Params::KEYS.to_vec())?;
    m.add("RUN_KEYS", RunOptions::KEYS.to_vec())?;
    m.add("MelpipeError", py.get_type::<MelpipeError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("NoUsableFileError", py.get_type::<NoUsableFileError>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    m.add("DeviceError", py.get_type::<DeviceError>())?;
    m.add("StrictFailureError", py.get_type::<StrictFailureError>())?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(read_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(definitions, m)?)?;
    m.add_function(wrap_pyfunction!(default_config, m)?)?;
    m.add_class::<extract::Extractor>()?;
    Ok(())
}
