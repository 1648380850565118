//! The glue around symphonia ([`melpipe_core::decode`]) under a property test: valid FLAC, MP3,
//! Ogg Vorbis and AIFF files (scripts/make_decoder_inputs.py, and flacenc's FLAC from the
//! generator), then byte flips, zeroed and random runs, insertions, removals, truncations and
//! spliced copies of their own bytes.
//!
//! For every input: `decode` returns (a panic inside the decoder becomes a failed file and is
//! counted here, never unwinds out), no case runs for more than 20 s (a watchdog aborts the
//! process, printing the case), the samples kept are `min(frames, max_frames)`, all finite,
//! and no single allocation exceeds 64 MiB whatever a header claims (this binary watches the
//! allocator).
//!
//! `MELPIPE_FUZZ_CASES` sets the number of cases (default 4,000: a few seconds in CI);
//! `MELPIPE_FUZZ_SEED` changes the otherwise fixed random seed. Needs python3 with numpy and
//! soundfile, as crates/core/tests/decoders.rs does.

use melpipe_core::config::Channel;
use melpipe_core::decode;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest single allocation seen, in bytes.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Watching;

// SAFETY: every call is forwarded unchanged to `System`; the watching is one atomic update.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

const MAX_ALLOC: usize = 64 << 20;

/// SplitMix64: a fixed, seeded stream of choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (`lo` when the range is empty).
    fn below(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            return lo;
        }
        lo + (self.next() % (hi - lo) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

fn seeds(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make_decoder_inputs.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir)
        .output()
        .expect("python3 is needed (pip install numpy soundfile)");
    assert!(
        out.status.success(),
        "make_decoder_inputs.py: {} (pip install numpy soundfile)",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seeds: Vec<(String, Vec<u8>)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|n| (n.to_string(), std::fs::read(dir.join(n)).unwrap()))
        .collect();
    let gen = melpipe_gen::GenerateOptions {
        files: 1,
        samples: 20000,
        format: melpipe_gen::AudioFormat::Flac,
        ..Default::default()
    };
    let r = melpipe_gen::generate(&dir.join("gen"), &gen).unwrap();
    seeds.push((
        "flacenc.flac".into(),
        std::fs::read(dir.join("gen").join(&r.files[0].path)).unwrap(),
    ));
    seeds
}

fn mutate(rng: &mut Rng, seeds: &[(String, Vec<u8>)]) -> (String, Vec<u8>) {
    let (name, base) = &seeds[rng.below(0, seeds.len())];
    let mut b = base.clone();
    let mut what = Vec::new();
    for _ in 0..rng.below(1, 5) {
        let len = b.len().max(1);
        match rng.below(0, 7) {
            0 => {
                for _ in 0..rng.below(1, 16) {
                    let i = rng.below(0, len);
                    if let Some(x) = b.get_mut(i) {
                        *x ^= 1 << rng.below(0, 8);
                    }
                }
                what.push("flips");
            }
            1 => {
                let at = rng.below(0, len).min(b.len());
                let n = rng.below(1, 2048).min(b.len() - at);
                b[at..at + n].fill(0);
                what.push("zeros");
            }
            2 => {
                let at = rng.below(0, len).min(b.len());
                let n = rng.below(1, 2048).min(b.len() - at);
                for x in &mut b[at..at + n] {
                    *x = rng.byte();
                }
                what.push("random run");
            }
            3 => {
                let at = rng.below(0, b.len() + 1);
                let ins: Vec<u8> = (0..rng.below(1, 512)).map(|_| rng.byte()).collect();
                b.splice(at..at, ins);
                what.push("insert");
            }
            4 => {
                let at = rng.below(0, len).min(b.len());
                let n = rng.below(1, 4096).min(b.len() - at);
                b.drain(at..at + n);
                what.push("remove");
            }
            5 => {
                // Headers hold their fields near the start: cut there more often.
                let cut = if rng.coin() {
                    rng.below(0, len.min(256))
                } else {
                    rng.below(0, len)
                };
                b.truncate(cut);
                what.push("truncate");
            }
            _ => {
                let from = rng.below(0, len).min(b.len());
                let n = rng.below(1, 4096).min(b.len() - from);
                let piece = b[from..from + n].to_vec();
                let at = rng.below(0, b.len() + 1);
                b.splice(at..at, piece);
                what.push("splice");
            }
        }
    }
    (format!("{name} [{}]", what.join(", ")), b)
}

#[test]
fn mutated_files_decode_or_fail_within_bounds() {
    let cases: u64 = std::env::var("MELPIPE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let seed: u64 = std::env::var("MELPIPE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(19);
    let d = tempfile::tempdir().unwrap();
    let seeds = seeds(d.path());
    let mut rng = Rng(seed);

    // The watchdog: a case that runs for more than 20 s is a hang.
    let current: Arc<Mutex<(Instant, String)>> =
        Arc::new(Mutex::new((Instant::now(), String::new())));
    let done = Arc::new(AtomicU64::new(0));
    {
        let (current, done) = (current.clone(), done.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            if done.load(Ordering::Relaxed) == u64::MAX {
                return;
            }
            let c = current.lock().unwrap();
            if c.0.elapsed() > Duration::from_secs(20) {
                eprintln!("decode_fuzz: a case runs for over 20 s: {}", c.1);
                std::process::abort();
            }
        });
    }
    // Panics inside the decoder are caught by `decode` and counted here, quietly.
    let panics = Arc::new(AtomicU64::new(0));
    let hook_panics = panics.clone();
    std::panic::set_hook(Box::new(move |_| {
        hook_panics.fetch_add(1, Ordering::Relaxed);
    }));

    let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
    let mut slowest = (Duration::ZERO, String::new());
    for _ in 0..cases {
        let (what, bytes) = mutate(&mut rng, &seeds);
        *current.lock().unwrap() = (Instant::now(), what.clone());
        let ext = what.split(['.', ' ']).nth(1);
        for (channel, max_frames) in [(Channel::Mix, 50_000), (Channel::Index(1), 777)] {
            let t = Instant::now();
            let mut out = Vec::new();
            let r = decode::decode(&bytes, ext, channel, max_frames, &mut out);
            if t.elapsed() > slowest.0 {
                slowest = (t.elapsed(), what.clone());
            }
            match r {
                Ok(d) => {
                    assert_eq!(out.len(), d.frames.min(max_frames), "{what}");
                    assert!(out.iter().all(|x| x.is_finite()), "{what}");
                    assert!(d.sample_rate > 0 && d.channels > 0, "{what}");
                    let key = if d.damage.is_some() { "damaged" } else { "ok" };
                    *outcomes.entry(key.into()).or_default() += 1;
                }
                Err(e) => {
                    assert!(out.is_empty(), "{what}: {e}");
                    let kind = e.split(':').next().unwrap_or("").to_string();
                    *outcomes.entry(format!("failed: {kind}")).or_default() += 1;
                }
            }
        }
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            largest <= MAX_ALLOC,
            "{what}: an allocation of {largest} bytes"
        );
    }
    done.store(u64::MAX, Ordering::Relaxed);
    let _ = std::panic::take_hook();
    eprintln!(
        "decode_fuzz: {cases} cases, outcomes {outcomes:?}; {} panics caught inside the decoder; slowest {:.1} ms ({}); largest allocation {} KiB",
        panics.load(Ordering::Relaxed),
        slowest.0.as_secs_f64() * 1e3,
        slowest.1,
        LARGEST.load(Ordering::Relaxed) >> 10
    );
}
