//! The mel filterbank, exactly as `torchaudio.functional.melscale_fbanks` computes it.
//!
//! torchaudio builds the filterbank in the default tensor dtype; we follow its code step by step
//! in f64 (including `torch.linspace`'s two-sided formula and the integer `sample_rate // 2` of
//! its frequency axis), so the weights agree with a float64 torchaudio to the last bits or so.

use crate::config::{MelNorm, MelScale, Params};
use std::ops::Range;

/// Triangular mel filters over the one-sided FFT bins.
#[derive(Clone, Debug)]
pub struct MelFilterbank {
    /// `n_fft/2 + 1`.
    pub n_freqs: usize,
    /// Number of mel bands.
    pub n_mels: usize,
    /// `n_freqs × n_mels`, row-major (torchaudio's `fb[freq, mel]`).
    pub weights: Vec<f64>,
}

/// `torch.linspace(start, end, steps)` on the CPU: the first half counts up from `start`, the
/// second half down from `end`, so both ends are exact.
fn torch_linspace(start: f64, end: f64, steps: usize) -> Vec<f64> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f64;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                start + step * i as f64
            } else {
                end - step * (steps - i - 1) as f64
            }
        })
        .collect()
}

const SLANEY_F_SP: f64 = 200.0 / 3.0;
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
const SLANEY_MIN_LOG_MEL: f64 = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;

fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// torchaudio's `_hz_to_mel`.
pub fn hz_to_mel(freq: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + freq / 700.0).log10(),
        MelScale::Slaney => {
            if freq >= SLANEY_MIN_LOG_HZ {
                SLANEY_MIN_LOG_MEL + (freq / SLANEY_MIN_LOG_HZ).ln() / slaney_logstep()
            } else {
                freq / SLANEY_F_SP
            }
        }
    }
}

/// torchaudio's `_mel_to_hz`.
pub fn mel_to_hz(mel: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
        MelScale::Slaney => {
            if mel >= SLANEY_MIN_LOG_MEL {
                SLANEY_MIN_LOG_HZ * (slaney_logstep() * (mel - SLANEY_MIN_LOG_MEL)).exp()
            } else {
                SLANEY_F_SP * mel
            }
        }
    }
}

impl MelFilterbank {
    /// The filterbank of a configuration.
    pub fn new(cfg: &Params) -> Self {
        Self::from_params(
            cfg.n_freqs(),
            cfg.f_min,
            cfg.f_max(),
            cfg.n_mels,
            cfg.sample_rate,
            cfg.norm,
            cfg.mel_scale,
        )
    }

    /// `melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm, mel_scale)`.
    pub fn from_params(
        n_freqs: usize,
        f_min: f64,
        f_max: f64,
        n_mels: usize,
        sample_rate: u32,
        norm: MelNorm,
        mel_scale: MelScale,
    ) -> Self {
        let all_freqs = torch_linspace(0.0, (sample_rate / 2) as f64, n_freqs);
        let m_min = hz_to_mel(f_min, mel_scale);
        let m_max = hz_to_mel(f_max, mel_scale);
        let f_pts: Vec<f64> = torch_linspace(m_min, m_max, n_mels + 2)
            .into_iter()
            .map(|m| mel_to_hz(m, mel_scale))
            .collect();
        let f_diff: Vec<f64> = f_pts.windows(2).map(|w| w[1] - w[0]).collect();
        let mut weights = vec![0.0; n_freqs * n_mels];
        for (i, &f) in all_freqs.iter().enumerate() {
            for j in 0..n_mels {
                // slopes[i, j] = f_pts[j] - all_freqs[i]; down = (-1.0 * slopes) / f_diff
                let down = -(f_pts[j] - f) / f_diff[j];
                let up = (f_pts[j + 2] - f) / f_diff[j + 1];
                // torch.max(zero, torch.min(down, up)); NaN cannot occur (f_pts strictly rise).
                let mut w = down.min(up).max(0.0);
                if norm == MelNorm::Slaney {
                    w *= 2.0 / (f_pts[j + 2] - f_pts[j]);
                }
                weights[i * n_mels + j] = w;
            }
        }
        MelFilterbank {
            n_freqs,
            n_mels,
            weights,
        }
    }

    /// Weight of frequency bin `freq` in mel band `mel`.
    pub fn weight(&self, freq: usize, mel: usize) -> f64 {
        self.weights[freq * self.n_mels + mel]
    }

    /// Indices of mel filters whose weights are all zero (torchaudio warns about them).
    pub fn empty_filters(&self) -> Vec<usize> {
        (0..self.n_mels)
            .filter(|&j| (0..self.n_freqs).all(|i| self.weight(i, j) == 0.0))
            .collect()
    }

    /// The bins where mel band `mel` is nonzero, as one range (triangular filters have no holes);
    /// empty for an empty filter.
    pub fn support(&self, mel: usize) -> Range<usize> {
        let nz = |i: &usize| self.weight(*i, mel) != 0.0;
        match (0..self.n_freqs).find(nz) {
            None => 0..0,
            Some(lo) => {
                let hi = (0..self.n_freqs).rev().find(nz).map_or(lo, |h| h);
                lo..hi + 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-14 * b.abs().max(1e-300)
    }

    // Expected values come from an independent scalar transcription of torchaudio's Python
    // (`math` module, f64) run by hand; they are not computed by this module.

    #[test]
    fn seed_htk_filterbank() {
        let fb = MelFilterbank::new(&Params::default());
        assert_eq!((fb.n_freqs, fb.n_mels), (33, 32));
        assert_eq!(fb.weight(1, 0), 0.0);
        assert!(close(fb.weight(1, 1), 0.890_895_882_818_492_2));
        assert!(close(fb.weight(16, 20), 0.254_301_838_443_413_7));
        assert!(close(fb.weight(31, 31), 0.573_722_916_857_952_2));
        assert_eq!(fb.weight(32, 31), 0.0);
        // 32 HTK mels over 33 bins of 64 Hz: the first filter (0..60 Hz) catches no bin.
        assert_eq!(fb.empty_filters(), vec![0]);
        assert_eq!(fb.support(0), 0..0);
        assert_eq!(fb.support(1), 1..2);
    }

    #[test]
    fn htk_with_slaney_norm() {
        let cfg = Params {
            norm: MelNorm::Slaney,
            ..Params::default()
        };
        let fb = MelFilterbank::new(&cfg);
        assert!(close(fb.weight(1, 1), 0.028_260_562_478_888_425));
        assert!(close(fb.weight(20, 25), 0.001_041_931_430_336_232_4));
    }

    #[test]
    fn slaney_scale_and_norm() {
        let cfg = Params {
            norm: MelNorm::Slaney,
            mel_scale: MelScale::Slaney,
            ..Params::default()
        };
        let fb = MelFilterbank::new(&cfg);
        assert!(close(fb.weight(1, 0), 0.014_679_994_103_364_149));
        assert!(close(fb.weight(2, 1), 0.009_892_369_680_913_494));
        assert!(close(fb.weight(31, 31), 0.005_883_705_199_082_614_5));
        assert_eq!(fb.weight(16, 20), 0.0);
        assert!(fb.empty_filters().is_empty());
    }

    #[test]
    fn slaney_scale_band_limited() {
        let fb = MelFilterbank::from_params(
            65,
            100.0,
            1500.0,
            20,
            4000,
            MelNorm::None,
            MelScale::Slaney,
        );
        assert!(close(fb.weight(4, 0), 0.405_979_695_216_108_05));
        assert!(close(fb.weight(5, 0), 0.913_454_314_236_243_1));
        assert!(close(fb.weight(47, 19), 0.338_582_830_560_558_3));
        assert_eq!(fb.support(0), 4..8);
        assert_eq!(fb.support(19), 43..48);
        let total: f64 = fb.weights.iter().sum();
        assert!((total - 42.335_182_501_134_03).abs() < 1e-12);
    }

    #[test]
    fn odd_sample_rate_uses_integer_nyquist() {
        // torchaudio's frequency axis is linspace(0, sample_rate // 2): 2000 Hz here, not 2000.5.
        let fb = MelFilterbank::from_params(5, 0.0, 2000.0, 2, 4001, MelNorm::None, MelScale::Htk);
        let want = [
            [0.0, 0.0],
            [0.836_164_326_762_064_6, 0.163_835_673_237_935_38],
            [0.034_684_925_933_333_16, 0.965_315_074_066_666_8],
            [0.0, 0.511_058_312_731_670_5],
            [0.0, 0.0],
        ];
        for (i, row) in want.iter().enumerate() {
            for (j, &w) in row.iter().enumerate() {
                assert!(close(fb.weight(i, j), w) || fb.weight(i, j) == w, "{i} {j}");
            }
        }
    }

    #[test]
    fn mel_scales_round_trip() {
        for scale in [MelScale::Htk, MelScale::Slaney] {
            for f in [0.0, 10.0, 700.0, 999.0, 1000.0, 1001.0, 8000.0] {
                let back = mel_to_hz(hz_to_mel(f, scale), scale);
                assert!((back - f).abs() < 1e-9, "{scale} {f} {back}");
            }
        }
        assert!((hz_to_mel(1000.0, MelScale::Slaney) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(700.0, MelScale::Htk) - 2595.0 * 2f64.log10()).abs() < 1e-12);
    }

    #[test]
    fn linspace_matches_torch_both_ends_exact() {
        let v = torch_linspace(0.1, 0.7, 7);
        assert_eq!(v[0], 0.1);
        assert_eq!(v[6], 0.7);
        assert_eq!(torch_linspace(3.0, 5.0, 1), vec![3.0]);
    }
}
