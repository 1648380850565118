//! The status line (README, Usage): every second on stderr, a progress bar on a terminal, plain
//! lines otherwise; and the process's own CPU and memory figures, read from /proc.

use crate::output::errln;
use indicatif::{ProgressBar, ProgressStyle};
use melpipe_core::progress::{Phase, Progress};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The progress bar while one is shown, so log lines can be printed around it.
pub static BAR: OnceLock<ProgressBar> = OnceLock::new();

/// Highest anonymous resident memory seen by [`sample_memory`], bytes.
pub static PEAK_ANON: AtomicU64 = AtomicU64::new(0);

/// A function giving the GPU part of the status line (utilisation, VRAM), if any.
pub type GpuProbe = Box<dyn Fn() -> Option<String> + Send>;

/// Process memory figures from /proc/self/status, bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident anonymous memory now.
    pub anon: u64,
    /// Peak resident set (all kinds) so far.
    pub hwm: u64,
}

/// Reads /proc/self/status and updates [`PEAK_ANON`].
pub fn sample_memory() -> Memory {
    let mut m = Memory::default();
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        for line in s.lines() {
            let kb = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024
            };
            if line.starts_with("RssAnon:") {
                m.anon = kb(line);
            } else if line.starts_with("VmHWM:") {
                m.hwm = kb(line);
            }
        }
    }
    PEAK_ANON.fetch_max(m.anon, Ordering::Relaxed);
    m
}

/// CPU seconds (user + system) the process has used.
pub fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

fn gb(b: u64) -> f64 {
    b as f64 / 1e9
}

/// Formats one status line.
fn line(p: &Progress, cpu_pct: f64, mem: Memory, gpu: Option<String>, rate: (f64, f64)) -> String {
    let total = Progress::get(&p.files_total);
    let done = Progress::get(&p.files_done);
    let elapsed = p.started.elapsed().as_secs_f64();
    let eta = if done > 0 && done < total {
        let left = (total - done) as f64 * elapsed / done as f64;
        format!("ETA {left:.0}s")
    } else {
        "ETA -".to_string()
    };
    let gpu = gpu.map(|g| format!(" | {g}")).unwrap_or_default();
    format!(
        "[{elapsed:6.1}s] {:<6} | CPU {cpu_pct:5.0}% | RAM {:.2} GB{gpu} | queue {}/{} | files {done}/{total} ({} failed) | {:.2} M rows/s | read {:.2} GB/s | {eta}",
        p.phase().name(),
        gb(mem.anon),
        Progress::get(&p.queued),
        Progress::get(&p.queue_capacity),
        Progress::get(&p.files_failed),
        rate.0 / 1e6,
        rate.1 / 1e9,
    )
}

/// Runs the reporter until `done` is set; on a terminal it draws a bar, else prints lines.
/// Set `done`, then unpark the returned thread, so that it ends at once.
pub fn spawn(
    progress: Arc<Progress>,
    done: Arc<AtomicBool>,
    gpu: Option<GpuProbe>,
    quiet: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tty = std::io::stderr().is_terminal() && !quiet;
        let bar = tty.then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} files  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let _ = BAR.set(b.clone());
            b
        });
        let mut last = (Instant::now(), cpu_seconds(), 0u64, 0u64);
        let mut tick = 0u32;
        while !done.load(Ordering::Relaxed) {
            // Parked, not slept: the caller unparks this thread when the run ends, so joining
            // it does not wait for the rest of a 100 ms tick (on average 50 ms a run).
            std::thread::park_timeout(Duration::from_millis(100));
            if done.load(Ordering::Relaxed) {
                break;
            }
            tick += 1;
            let mem = sample_memory();
            if !tick.is_multiple_of(10) {
                continue;
            }
            let now = Instant::now();
            let cpu = cpu_seconds();
            let rows = Progress::get(&progress.rows_done);
            let read = Progress::get(&progress.bytes_read);
            let dt = now.duration_since(last.0).as_secs_f64().max(1e-3);
            let cpu_pct = 100.0 * (cpu - last.1) / dt;
            let rate = ((rows - last.2) as f64 / dt, (read - last.3) as f64 / dt);
            last = (now, cpu, rows, read);
            let g = gpu.as_ref().and_then(|f| f());
            let l = line(&progress, cpu_pct, mem, g, rate);
            match &bar {
                Some(b) => {
                    b.set_length(Progress::get(&progress.files_total));
                    b.set_position(Progress::get(&progress.files_done));
                    b.set_message(l);
                }
                None if !quiet => errln!("{l}"),
                None => {}
            }
            if progress.phase() == Phase::Done {
                break;
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
    })
}
