//! Ctrl-C, SIGTERM and SIGHUP, taken by one thread with `sigwait`.
//!
//! [`block`] runs first in `main`, before any thread exists, so every thread melpipe or a
//! library starts inherits a mask that blocks these signals: no handler ever runs in the middle
//! of someone else's code. That matters for NVRTC, which installs LLVM's signal handlers while
//! it compiles: a Ctrl-C that landed in the compile (about 0.15 s into a GPU run on the H100
//! machine) crashed the process (SIGSEGV in libnvrtc, or exit code 4) instead of stopping it.
//! The watcher thread then sets the run's stop flag on the first signal and exits with 130 on a
//! second; with no run registered, the signal ends the process as it would by default.
//!
//! SIGHUP (the terminal went away, or a supervisor's stop) gets the same graceful stop as
//! SIGTERM: the run keeps what it committed for `--resume`, instead of dying mid-batch. A signal
//! that the parent set to be ignored stays ignored (`nohup melpipe run …`, or SIGINT of a
//! background job in a script): a blocked signal is delivered even when ignored, so it is left
//! out of the set. SIGPIPE is ignored from the start (Rust does this for every program), so a
//! closed stdout or stderr shows up as a failed write, which the CLI drops (`output.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The stop flag of the run in progress, if any.
static STOP: Mutex<Option<Arc<AtomicBool>>> = Mutex::new(None);

/// SIGINT, SIGTERM and SIGHUP, less those this process inherited as ignored.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t and sigaction are plain data, initialised by sigemptyset and sigaction
    // before use; a null new action makes sigaction only read the current one.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let mut old: libc::sigaction = std::mem::zeroed();
            let ignored = libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN;
            if !ignored {
                libc::sigaddset(&mut set, sig);
            }
        }
        set
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and so in every thread started after) and starts
/// the thread that waits for them.
pub fn block() {
    let set = stop_signals();
    // SAFETY: changes only this thread's signal mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig = 0;
            // SAFETY: set is a valid signal set; sig receives the signal number.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            received(sig);
        });
}

/// What a stop signal does: the first during a run stops it cleanly, keeping what it committed;
/// a second one leaves at once with 130 (the journal stays consistent); with no run, the signal
/// ends the process as it would by default.
fn received(sig: i32) {
    let stop = STOP.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match stop {
        Some(flag) if !flag.swap(true, Ordering::SeqCst) => {}
        // SAFETY: _exit ends the process without running any Rust code afterwards.
        Some(_) => unsafe { libc::_exit(130) },
        // SAFETY: restores the default action, unblocks it in this thread and raises it; the
        // process ends there.
        None => unsafe {
            libc::signal(sig, libc::SIG_DFL);
            let mut one: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut one);
            libc::sigaddset(&mut one, sig);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
            libc::raise(sig);
            libc::_exit(128 + sig);
        },
    }
}

/// Makes the next SIGINT, SIGTERM or SIGHUP set `stop` (a second one exits with 130).
pub fn on_stop(stop: &Arc<AtomicBool>) {
    *STOP.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(stop));
}
