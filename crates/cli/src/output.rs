//! Lines on stdout and stderr that never stop the process.
//!
//! `println!` and `eprintln!` panic when the stream is closed (`melpipe inspect OUT | head -1`,
//! a terminal that went away) or full (`2>/dev/full`); a panic in a pipeline thread would lose
//! the run's output for the sake of its log. These write what they can and drop the rest: a run
//! finishes and commits whatever happens to its log, and `inspect`/`verify` end quietly, with
//! their own exit code, when the reader stops reading. A stdout that fails otherwise (a full
//! disk under `> file`) turns a success into exit 2 at the end ([`stdout_failure`]). Rust starts every program with SIGPIPE
//! ignored, so a closed pipe shows up here as EPIPE, never as a signal.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;

/// The first error writing to stdout other than a closed pipe.
static STDOUT_FAILED: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Keeps `e` for [`stdout_failure`] unless it only says that the reader went away.
fn note(r: std::io::Result<()>) {
    if let Err(e) = r {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            STDOUT_FAILED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        }
    }
}

/// Writes `args` and a newline to stdout; a closed or full stdout does not stop the command.
pub fn out_line(args: fmt::Arguments) {
    let mut o = std::io::stdout().lock();
    note(o.write_fmt(args).and_then(|()| o.write_all(b"\n")));
}

/// Writes `text` to stdout as it is; a closed or full stdout does not stop the command.
pub fn out_text(text: &str) {
    let mut o = std::io::stdout().lock();
    note(o.write_all(text.as_bytes()).and_then(|()| o.flush()));
}

/// Flushes stdout and says whether anything written to it was lost for another reason than a
/// reader that stopped reading: `--print-config > melpipe.toml` on a full disk must not end
/// with exit 0 and half a file, while `inspect OUT | head -1` is a success.
pub fn stdout_failure() -> Option<std::io::Error> {
    note(std::io::stdout().lock().flush());
    STDOUT_FAILED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

/// Writes `args` and a newline to stderr; a closed or full stderr is ignored.
pub fn err_line(args: fmt::Arguments) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_fmt(args).and_then(|()| e.write_all(b"\n"));
}

/// `println!` that ignores a closed or full stdout.
macro_rules! outln {
    ($($t:tt)*) => { $crate::output::out_line(format_args!($($t)*)) };
}

/// `eprintln!` that ignores a closed or full stderr.
macro_rules! errln {
    ($($t:tt)*) => { $crate::output::err_line(format_args!($($t)*)) };
}

pub(crate) use {errln, outln};
