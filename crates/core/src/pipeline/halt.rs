//! Stopping a run: the user's stop, the first failure, a thread that unwinds.

use crate::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Whether the run must stop, and the first error that stopped it.
///
/// Invariants:
/// - Two flags stop a run: the user's (`RunRequest::stop`, Ctrl-C) and the run's own
///   (`failed`), set by the first failure, by the accountant when it ends for any reason, and by
///   a thread role that unwinds (its `Drop`). Neither is ever cleared.
/// - Only the first error is kept; later ones are consequences of the stop.
/// - Every wait in the pipeline either ends by a channel disconnecting or looks at
///   [`Halt::is_set`] at least every 50 ms ([`wait_or_halt`], the readers' wait for a batch), so
///   once a flag is set every thread ends within about 50 ms of the one it waits for, and the
///   thread scope ends.
pub(super) struct Halt<'a> {
    user: &'a AtomicBool,
    failed: AtomicBool,
    first_error: Mutex<Option<Error>>,
}

impl<'a> Halt<'a> {
    pub(super) fn new(user: &'a AtomicBool) -> Self {
        Halt {
            user,
            failed: AtomicBool::new(false),
            first_error: Mutex::new(None),
        }
    }

    /// A failure or the user's stop: every thread winds down.
    pub(super) fn is_set(&self) -> bool {
        self.user.load(Ordering::Relaxed) || self.failed.load(Ordering::Relaxed)
    }

    /// The user asked the run to stop.
    pub(super) fn user_stopped(&self) -> bool {
        self.user.load(Ordering::Relaxed)
    }

    /// A failure stopped the run (or the accountant ended).
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Keeps `e` if it is the first error, and stops the run.
    pub(super) fn fail(&self, e: Error) {
        let mut slot = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Stops the run without an error of its own (the accountant's end).
    pub(super) fn stop_all(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// For a thread role's `Drop`: a thread that unwinds stops the run, so that no other thread
    /// waits for what it would have done (the scope then passes the panic on).
    pub(super) fn thread_ends(&self) {
        if std::thread::panicking() {
            self.stop_all();
        }
    }

    /// The first error, once every thread has ended.
    pub(super) fn take_error(&self) -> Option<Error> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// Waits on `cv` until `ready` returns a value from the state behind `m`; None if `halt`
/// (a failure or the user's stop) becomes true first. Checked at least every 50 ms, so that no
/// thread waits for another that has stopped.
pub(super) fn wait_or_halt<S, R>(
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
            .wait_timeout(st, Duration::from_millis(50))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}
