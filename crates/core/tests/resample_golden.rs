//! The resampler against torchaudio: `tests/golden/resample/`, made by
//! `scripts/make_resample_golden.py` (torchaudio 2.11 `torchaudio.functional.resample`, float64,
//! its defaults). Every output sample is within 1e-5 of torchaudio's, also when fewer samples
//! than the whole output are asked for; and no allocation is sized by the rates beyond the
//! filter's memory bound.

use melpipe_core::dsp::resample::{ResampleError, Resampler, MAX_FILTER_BYTES};
use melpipe_core::dsp::Isa;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const TOLERANCE: f64 = 1e-5;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/resample")
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn read_f64(path: &Path) -> Vec<f64> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn max_abs_diff(got: &[f32], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max)
}

#[test]
fn resampler_matches_torchaudio_goldens() {
    let dir = golden_dir();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let inputs = read_f32(&dir.join("inputs.f32"));
    let outputs = read_f64(&dir.join("outputs.f64"));
    let cases = meta["cases"].as_array().unwrap();
    assert!(cases.len() >= 200, "golden cases missing");
    // The detected instruction set's kernels and the portable ones.
    let isas = [Isa::detect(), Isa::Portable];
    let mut resamplers: BTreeMap<(u32, u32, &str), Resampler> = BTreeMap::new();
    // Per rate pair: (cases × kernels, samples, max abs error).
    let mut worst: BTreeMap<(u32, u32), (usize, usize, f64)> = BTreeMap::new();
    for (case, isa) in cases.iter().flat_map(|c| isas.iter().map(move |&i| (c, i))) {
        let field = |k: &str| case[k].as_u64().unwrap() as usize;
        let (from, to) = (field("from_hz") as u32, field("to_hz") as u32);
        let r = resamplers
            .entry((from, to, isa.name()))
            .or_insert_with(|| Resampler::with_isa(from, to, isa).unwrap());
        let x = &inputs[field("input_offset")..][..field("input_len")];
        let want = &outputs[field("output_offset")..][..field("output_len")];
        let name = format!("{} ({})", case["name"].as_str().unwrap(), isa.name());
        assert_eq!(r.output_len(x.len()), want.len(), "{name}: output length");

        let mut got = vec![f32::NAN; want.len()];
        r.process(x, &mut got);
        let err = max_abs_diff(&got, want);
        assert!(err <= TOLERANCE, "{name}: max abs error {err:e}");
        let w = worst.entry((from, to)).or_default();
        *w = (w.0 + 1, w.1 + want.len(), w.2.max(err));

        // A caller keeping a clip asks for fewer: the same samples, to the same tolerance.
        for n in [1, want.len() / 2, want.len().saturating_sub(1)] {
            let n = n.min(want.len());
            let mut few = vec![f32::NAN; n];
            r.process(x, &mut few);
            let err = max_abs_diff(&few, &want[..n]);
            assert!(err <= TOLERANCE, "{name}: first {n}: max abs error {err:e}");
            assert_eq!(
                few,
                got[..n],
                "{name}: first {n} differ from the whole output"
            );
        }
    }
    println!(
        "rate pair          cases  samples  max abs error vs torchaudio float64 (both kernels)"
    );
    for ((from, to), (n, samples, err)) in &worst {
        println!("{from:>6} -> {to:>6}  {n:>5}  {samples:>7}  {err:.2e}");
    }
    assert_eq!(worst.len(), 11, "rate pairs missing");
}

// The largest single allocation made on this thread while tracking is on.
thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the allocator may be called while thread-locals are being torn down.
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
        }
    });
}

struct TrackingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; `note`
// only touches const-initialised thread-locals without destructors, so it never allocates.
unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

/// `f()` and the largest allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|m| m.set(0));
    TRACKING.with(|t| t.set(true));
    let v = f();
    TRACKING.with(|t| t.set(false));
    (v, LARGEST.with(|m| m.get()))
}

#[test]
fn no_allocation_is_sized_by_the_rates_beyond_the_bound() {
    // Rates a header may claim: each pair either is refused before anything sized by the rates
    // is allocated, or builds a filter within the bound.
    let rates = [
        1,
        2,
        4096,
        44100,
        1_000_003,
        2_147_483_647,
        3_000_000_000,
        u32::MAX - 1,
        u32::MAX,
    ];
    let mut refused = 0;
    for &from in &rates {
        for &to in &rates {
            let (r, largest) = largest_allocation(|| Resampler::new(from, to));
            match r {
                Ok(r) => {
                    assert!(
                        r.filter_bytes() as u64 <= MAX_FILTER_BYTES,
                        "{from} -> {to}"
                    );
                    assert!(
                        largest as u64 <= MAX_FILTER_BYTES,
                        "{from} -> {to}: {largest}"
                    );
                }
                Err(e) => {
                    assert!(matches!(e, ResampleError::FilterTooLarge { .. }), "{e}");
                    assert!(
                        largest < 4096,
                        "{from} -> {to}: refused after {largest} bytes"
                    );
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 20, "{refused}");
    let e = Resampler::new(u32::MAX, 4096).unwrap_err().to_string();
    assert!(e.contains("the limit is 64 MiB"), "{e}");

    // Processing allocates nothing.
    let r = Resampler::new(44100, 4096).unwrap();
    let x = vec![0.25f32; 44100];
    let mut out = vec![0.0f32; r.output_len(x.len())];
    let ((), largest) = largest_allocation(|| r.process(&x, &mut out));
    assert_eq!(largest, 0);
}
