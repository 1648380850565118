//! The fast extractor against the float64 reference on seeded signals of varied amplitude.

use super::*;
use crate::config::{LengthMode, MelNorm, MelScale};

/// SplitMix64: a seeded generator so the tests need no RNG crate and never change.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Rounds to the int16 grid, as decoded 16-bit PCM is.
fn pcm16(x: f64) -> f32 {
    ((x * 32768.0).round().clamp(-32768.0, 32767.0) / 32768.0) as f32
}

/// Test signals: name and samples.
pub(crate) fn signals(n: usize, seed: u64) -> Vec<(&'static str, Vec<f32>)> {
    let mut rng = Rng(seed);
    let tau = 2.0 * std::f64::consts::PI;
    let mut out: Vec<(&'static str, Vec<f32>)> = Vec::new();
    out.push((
        "noise 0.3",
        (0..n).map(|_| pcm16(0.3 * rng.uniform())).collect(),
    ));
    out.push((
        "full scale",
        (0..n)
            .map(|_| {
                if rng.next() & 1 == 0 {
                    -1.0
                } else {
                    32767.0 / 32768.0
                }
            })
            .collect(),
    ));
    out.push((
        "tones + chirp",
        (0..n)
            .map(|i| {
                let t = i as f64 / 4096.0;
                let chirp = (tau * (20.0 * t + 150.0 * t * t)).sin();
                pcm16(0.4 * (tau * 440.0 * t).sin() + 0.2 * (tau * 1234.5 * t).cos() + 0.3 * chirp)
            })
            .collect(),
    ));
    // Loud for the first third, then about 80 dB quieter (a few LSBs of noise plus a faint
    // tone): quiet segments inside a loud file must keep their own dynamic range.
    out.push((
        "loud then quiet",
        (0..n)
            .map(|i| {
                let t = i as f64 / 4096.0;
                if i < n / 3 {
                    pcm16(0.9 * (tau * 300.0 * t).sin() + 0.05 * rng.uniform())
                } else {
                    pcm16(1e-4 * (tau * 700.0 * t).sin() + 6e-5 * rng.uniform())
                }
            })
            .collect(),
    ));
    // Near silence: a sparse ±1 LSB dither, zeros elsewhere.
    out.push((
        "near silence",
        (0..n)
            .map(|_| match rng.next() % 16 {
                0 => 1.0 / 32768.0,
                1 => -1.0 / 32768.0,
                _ => 0.0,
            })
            .collect(),
    ));
    out.push(("silence", vec![0.0; n]));
    // Float input, not on the int16 grid, with a large amplitude sweep.
    out.push((
        "float sweep",
        (0..n)
            .map(|i| {
                let a = 10f64.powf(-5.0 * i as f64 / n as f64);
                (a * rng.uniform()) as f32
            })
            .collect(),
    ));
    out
}

/// Worst |fast − reference| (dB) over values within 60 dB of their segment's peak; panics on a
/// non-finite value or one that is off by more than `tol` there (and by more than a wide margin
/// elsewhere, where float32 spectra may differ but must stay sane).
pub(crate) fn compare(got: &[f32], want: &[f64], vpr: usize, tol: f64, what: &str) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0.0f64;
    for (r, (g, w)) in got.chunks(vpr).zip(want.chunks(vpr)).enumerate() {
        let peak = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (i, (&g, &w)) in g.iter().zip(w).enumerate() {
            assert!(g.is_finite(), "{what}: row {r} value {i} is {g}");
            let d = (g as f64 - w).abs();
            if w >= peak - 60.0 {
                assert!(
                    d <= tol,
                    "{what}: row {r} value {i}: {g} vs {w} (peak {peak})"
                );
                worst = worst.max(d);
            } else {
                assert!(
                    (-100.001..=peak + 1e-3).contains(&(g as f64)),
                    "{what}: row {r} {i}: {g}"
                );
            }
        }
    }
    worst
}

/// Runs every signal through the extractor and the reference; returns the worst difference.
fn check(cfg: &Params, samples: usize, tol: f64) -> f64 {
    let geom = Geometry::new(cfg);
    let len = geom.effective_samples(samples);
    let rows = geom.rows(Some(len));
    assert!(rows > 0);
    let vpr = cfg.values_per_row();
    let mut worst = 0.0f64;
    let signals = signals(len, 7);
    let want: Vec<Vec<f64>> = signals
        .iter()
        .map(|(_, x)| reference::features(cfg, x, rows))
        .collect();
    for isa in isas() {
        let mut fx = FeatureExtractor::with_isa(cfg, isa).unwrap();
        let mut worst_here = 0.0f64;
        for ((name, x), want) in signals.iter().zip(&want) {
            let mut out = vec![f32::NAN; rows * vpr];
            fx.extract(x, rows, &mut out);
            let what = format!("{name} ({})", fx.describe());
            worst_here = worst_here.max(compare(&out, want, vpr, tol, &what));
        }
        eprintln!("{}: worst {worst_here:.2e} dB", fx.describe());
        worst = worst.max(worst_here);
    }
    worst
}

/// Every instruction set this CPU can run.
fn isas() -> Vec<Isa> {
    [Isa::Avx512, Isa::Avx2, Isa::Portable]
        .into_iter()
        .filter(|i| i.available())
        .collect()
}

fn small(cfg: Params) -> Params {
    Params {
        clip_samples: 4096,
        ..cfg
    }
}

const TOL: f64 = 2e-3;

#[test]
fn seed_config() {
    let w = check(&small(Params::default()), 4096, TOL);
    eprintln!("seed config: worst {w:.2e} dB");
}

#[test]
fn seed_config_pool_none() {
    let cfg = small(Params {
        pool: Pool::None,
        ..Params::default()
    });
    check(&cfg, 4096, TOL);
}

#[test]
fn slaney_scale_and_norm_with_top_db() {
    let cfg = small(Params {
        mel_scale: MelScale::Slaney,
        norm: MelNorm::Slaney,
        top_db: Some(40.0),
        ..Params::default()
    });
    check(&cfg, 4096, TOL);
    let cfg = Params {
        pool: Pool::None,
        top_db: Some(25.0),
        ..cfg
    };
    check(&cfg, 4096, TOL);
}

#[test]
fn other_fft_sizes_and_bands() {
    let cfg = Params {
        sample_rate: 8000,
        clip_samples: 6000,
        long_win: 2048,
        long_hop: 1024,
        short_win: 1024,
        short_hop: 512,
        n_fft: 128,
        win_length: 100,
        hop_length: 32,
        n_mels: 40,
        f_min: 50.0,
        f_max: Some(3000.0),
        ..Params::default()
    };
    check(&cfg, 6000, TOL);
    let cfg = Params {
        n_fft: 32,
        win_length: 32,
        hop_length: 8,
        n_mels: 12,
        long_win: 768,
        long_hop: 384,
        short_win: 256,
        short_hop: 128,
        ..small(Params::default())
    };
    check(&cfg, 4096, TOL);
}

#[test]
fn general_path_configs() {
    // Hop 24 divides neither the segment step nor n_fft/2.
    let cfg = small(Params {
        hop_length: 24,
        ..Params::default()
    });
    check(&cfg, 4096, TOL);
    // Non-power-of-two and odd FFT sizes.
    let cfg = small(Params {
        n_fft: 48,
        win_length: 40,
        hop_length: 12,
        pool: Pool::None,
        ..Params::default()
    });
    check(&cfg, 4096, TOL);
    let cfg = small(Params {
        n_fft: 63,
        win_length: 63,
        hop_length: 16,
        ..Params::default()
    });
    check(&cfg, 4096, TOL);
}

#[test]
fn natural_length_and_partial_rows() {
    let cfg = Params {
        length: LengthMode::Natural,
        ..Params::default()
    };
    check(&cfg, 5000, TOL);
    // Only the first rows of a file.
    let cfg = small(Params::default());
    let x = &signals(4096, 3)[2].1;
    for isa in isas() {
        let mut fx = FeatureExtractor::with_isa(&cfg, isa).unwrap();
        let mut out = vec![f32::NAN; 4 * 32];
        fx.extract(x, 4, &mut out);
        compare(&out, &reference::features(&cfg, x, 4), 32, TOL, "partial");
    }
}

#[test]
fn duplicate_rows_are_identical() {
    let cfg = small(Params::default());
    let x = &signals(4096, 5)[0].1;
    let mut fx = FeatureExtractor::new(&cfg).unwrap();
    let mut out = vec![f32::NAN; 21 * 32];
    fx.extract(x, 21, &mut out);
    // Row (l, 2) starts where row (l + 1, 0) does.
    assert_eq!(out[2 * 32..3 * 32], out[3 * 32..4 * 32]);
}

#[test]
fn paths_are_chosen_as_documented() {
    let shared = |cfg: &Params| {
        FeatureExtractor::new(cfg)
            .unwrap()
            .describe()
            .starts_with("frame-sharing")
    };
    assert!(shared(&Params::default()));
    assert!(shared(&Params {
        pool: Pool::None,
        n_fft: 128,
        hop_length: 32,
        ..Params::default()
    }));
    // Hop not dividing n_fft/2, non-power-of-two FFT, segments sparse on the grid.
    assert!(!shared(&Params {
        hop_length: 24,
        ..Params::default()
    }));
    assert!(!shared(&Params {
        n_fft: 48,
        win_length: 48,
        ..Params::default()
    }));
    assert!(!shared(&Params {
        long_hop: 8192,
        ..Params::default()
    }));
}
