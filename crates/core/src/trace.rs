//! An event trace of a run, for finding the stage that holds the pipeline back.
//!
//! Once [`start`] is given a FILE (the `melpipe` binary passes `MELPIPE_TRACE`), every stage of every task (read, upload and
//! compute, write) and the GPU's start-up steps are recorded as spans with their thread, and
//! [`dump`] writes them to FILE as tab-separated lines `begin_s end_s thread what id`, in
//! seconds since [`start`] (the process start). `bench/trace_summary.py` turns the file into a
//! table per stage and a time line of tasks read, computed and written.
//!
//! Unset, a span costs one load of an initialised `OnceLock` and a branch.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

struct Span {
    begin: f64,
    end: f64,
    thread: String,
    what: &'static str,
    id: u64,
}

static ORIGIN: OnceLock<Instant> = OnceLock::new();
static SPANS: OnceLock<Option<(std::path::PathBuf, Mutex<Vec<Span>>)>> = OnceLock::new();

/// Sets the trace's time origin and, with `file`, records spans to be written there by [`dump`]
/// (call first thing in `main`, before any span; otherwise the first span sets the origin and
/// nothing is recorded).
pub fn start(file: Option<std::path::PathBuf>) {
    let _ = ORIGIN.get_or_init(Instant::now);
    let _ = SPANS.set(
        file.filter(|p| !p.as_os_str().is_empty())
            .map(|p| (p, Mutex::new(Vec::with_capacity(1 << 16)))),
    );
}

fn sink() -> Option<&'static (std::path::PathBuf, Mutex<Vec<Span>>)> {
    SPANS.get_or_init(|| None).as_ref()
}

fn seconds(t: Instant) -> f64 {
    t.duration_since(*ORIGIN.get_or_init(Instant::now))
        .as_secs_f64()
}

/// Whether spans are recorded.
pub fn enabled() -> bool {
    sink().is_some()
}

/// Runs `f` and records it as a span `what` of item `id` (a task index, or 0).
pub fn span<T>(what: &'static str, id: u64, f: impl FnOnce() -> T) -> T {
    let Some((_, spans)) = sink() else {
        return f();
    };
    let t0 = Instant::now();
    let r = f();
    let t1 = Instant::now();
    let s = Span {
        begin: seconds(t0),
        end: seconds(t1),
        thread: {
            let t = std::thread::current();
            t.name()
                .map_or_else(|| format!("{:?}", t.id()), str::to_string)
        },
        what,
        id,
    };
    spans.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    r
}

/// Records a moment (a span of no length).
pub fn mark(what: &'static str, id: u64) {
    span(what, id, || ());
}

/// Writes the recorded spans to the `MELPIPE_TRACE` file (nothing when tracing is off).
pub fn dump() -> std::io::Result<()> {
    let Some((path, spans)) = sink() else {
        return Ok(());
    };
    use std::fmt::Write as _;
    let spans = spans.lock().unwrap_or_else(|p| p.into_inner());
    let mut text = String::from("begin_s\tend_s\tthread\twhat\tid\n");
    for s in spans.iter() {
        let _ = writeln!(
            text,
            "{:.6}\t{:.6}\t{}\t{}\t{}",
            s.begin, s.end, s.thread, s.what, s.id
        );
    }
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_return_their_value_whether_or_not_tracing_is_on() {
        // Off (no file given): `span` is `f`.
        start(None);
        assert!(!enabled());
        assert_eq!(span("test", 1, || 41 + 1), 42);
        mark("test-mark", 2);
        assert!(dump().is_ok());
    }
}
