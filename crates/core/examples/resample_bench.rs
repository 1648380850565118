//! Speed of `dsp::resample::Resampler` per rate pair: ns per output sample and output samples
//! per second on one core, for the detected instruction set and for the portable lane loops
//! (the baseline, in the same run).
//!
//! usage: cargo run --release -p melpipe-core --example resample_bench [SECONDS_OF_AUDIO]

use melpipe_core::dsp::resample::Resampler;
use melpipe_core::dsp::Isa;
use std::hint::black_box;
use std::time::{Duration, Instant};

const PAIRS: [(u32, u32); 6] = [
    (16000, 4096),
    (44100, 4096),
    (48000, 16000),
    (22050, 16000),
    (8000, 16000),
    (44100, 48000),
];

/// Median ns per output sample over repeated runs of about 0.3 s each.
fn time(r: &Resampler, x: &[f32], out: &mut [f32]) -> f64 {
    r.process(x, out); // warm
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0usize;
        while t.elapsed() < Duration::from_millis(300) {
            r.process(black_box(x), out);
            black_box(&out);
            n += out.len();
        }
        runs.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("SECONDS_OF_AUDIO is a number"))
        .unwrap_or(10.0);
    let isa = Isa::detect();
    let kernel = match isa {
        Isa::Portable => "portable",
        _ => "avx2+fma",
    };
    println!(
        "{secs} s of noise per pair; detected {}; median of 5 runs of 0.3 s",
        isa.name()
    );
    println!(
        "pair            taps/out  filter    {kernel:>9} ns/out  Msamples/s   portable ns/out  Msamples/s"
    );
    for (from, to) in PAIRS {
        let n = (secs * from as f64) as usize;
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let x: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let fast = Resampler::with_isa(from, to, isa).expect("valid rates");
        let base = Resampler::with_isa(from, to, Isa::Portable).expect("valid rates");
        let mut out = vec![0.0f32; fast.output_len(n)];
        let t_fast = time(&fast, &x, &mut out);
        let t_base = time(&base, &x, &mut out);
        println!(
            "{from:>6} -> {to:>6}  {:>7}  {:>7.1} KiB  {t_fast:>12.1}  {:>10.1}   {t_base:>14.1}  {:>10.1}",
            fast.taps_per_output(),
            fast.filter_bytes() as f64 / 1024.0,
            1e3 / t_fast,
            1e3 / t_base,
        );
    }
}
