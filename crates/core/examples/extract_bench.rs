//! Micro benchmark of the CPU feature extraction alone (no I/O): µs per file on one core.
//!
//! `cargo run --release -p melpipe-core --example extract_bench -- [files] [reps] [key=value...]`
//! where the key/values are `--config` TOML keys (`pool="none"`, `n_fft=128`, ...), plus
//! `isa=avx512|avx2|portable` to force an instruction set. Files are synthetic seed-shaped clips
//! (tones, chirp and noise on the int16 grid); the best of `reps` passes over them is reported.
//! Each clip is first copied into a buffer (untimed), as a reader decoding it would leave it in
//! cache; `cold=1` skips that, so the extractor reads samples from memory.

use melpipe_core::dsp::{FeatureExtractor, Isa};
use melpipe_core::geometry::Geometry;
use melpipe_core::Settings;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut nums = args.iter().filter_map(|a| a.parse::<usize>().ok());
    let files = nums.next().unwrap_or(200);
    let reps = nums.next().unwrap_or(5);
    let mut isa = None;
    let mut cold = false;
    let mut toml = String::new();
    for a in args.iter().filter(|a| a.contains('=')) {
        if a == "cold=1" {
            cold = true;
        } else if let Some(v) = a.strip_prefix("isa=") {
            isa = Some(match v {
                "avx512" => Isa::Avx512,
                "avx2" => Isa::Avx2,
                _ => Isa::Portable,
            });
        } else {
            toml.push_str(a);
            toml.push('\n');
        }
    }
    let cfg = Settings::from_toml(&toml).expect("config").params;
    let geom = Geometry::new(&cfg);
    let len = cfg.clip_samples;
    let rows = geom.rows(Some(len));
    let mut seed = 0x1234_5678u64;
    let clips: Vec<Vec<f32>> = (0..files)
        .map(|f| {
            (0..len)
                .map(|i| {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let noise = ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.1;
                    let t = i as f64 / cfg.sample_rate as f64;
                    let tone = 0.5 * (2.0 * std::f64::consts::PI * (100.0 + f as f64) * t).sin();
                    ((tone + noise) * 32767.0).round() as f32 / 32768.0
                })
                .collect()
        })
        .collect();
    let mut fx = match isa {
        Some(isa) => FeatureExtractor::with_isa(&cfg, isa),
        None => FeatureExtractor::new(&cfg),
    }
    .expect("config");
    let mut out = vec![0.0f32; rows * cfg.values_per_row()];
    let mut best = f64::INFINITY;
    let mut check = 0.0f64;
    let mut buf = vec![0.0f32; len];
    for _ in 0..reps {
        let mut spent = 0.0;
        for clip in &clips {
            let x = if cold {
                clip
            } else {
                buf.copy_from_slice(clip);
                &buf
            };
            let t0 = Instant::now();
            fx.extract(x, rows, &mut out);
            spent += t0.elapsed().as_secs_f64();
            check += out[out.len() / 2] as f64;
        }
        best = best.min(spent);
    }
    println!(
        "{}{}: {:.2} µs/file ({files} files × {rows} rows, best of {reps}; checksum {check:.3})",
        fx.describe(),
        if cold { ", cold samples" } else { "" },
        best * 1e6 / files as f64,
    );
}
