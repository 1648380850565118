//! `device = "auto"` with a GPU present: which backend computes a configuration faster, from
//! a cost model of its parameters and the machine, never from a timing race (the bytes of an
//! output must not depend on timing).
//!
//! Per clip of `clip_samples` samples the model counts
//! * the arithmetic: per STFT frame a real FFT of `n_fft` (2.5·N·log2 N), the power spectrum
//!   (3 per bin) and the mel projection (2 per filter weight; once per row with mean pooling,
//!   once per frame without), plus 10·log10 per stored value;
//! * the bytes across PCIe: the samples up (16-bit PCM, the common case) and the stored values
//!   down.
//!
//! The CPU computes on every core at [`CPU_FLOPS_PER_CORE`] plus [`CPU_S_PER_VALUE`] per
//! stored value; the GPU at [`GPU_FLOPS`] or at the PCIe rate [`PCIE_BYTES_PER_S`], whichever
//! is slower. The GPU wins wherever it computes an FFT; the CPU where the GPU would fall back
//! to a direct DFT (a prime factor of n_fft/2 above 32) that costs it more than the cores. The rates are what melpipe's
//! kernels and CPU path reach on the benchmark configurations of docs/PERFORMANCE.md on an
//! H100 machine with 16 cores. Both backends also read, decode and write the same bytes; the
//! model leaves those out, so a tie means both are faster than that part of the run. On a
//! tie the GPU is chosen: it leaves the cores to the readers and the writer.

use crate::plan::FftPlan;
use melpipe_core::config::{LengthMode, Params, Pool};
use melpipe_core::geometry::Geometry;

/// FFT and mel arithmetic one CPU core does per second in melpipe's CPU path.
pub const CPU_FLOPS_PER_CORE: f64 = 56e9;
/// What one stored value costs a CPU core besides the arithmetic counted (log, rounding,
/// copying out; measured on the speech and music configurations).
pub const CPU_S_PER_VALUE: f64 = 50e-9;
/// The same for melpipe's kernels on one GPU.
pub const GPU_FLOPS: f64 = 4e12;
/// Host↔device copy rate of one GPU.
pub const PCIE_BYTES_PER_S: f64 = 20e9;

/// A configuration's costs per clip and the estimated compute time of each backend.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// FFT, power, mel and log arithmetic per clip.
    pub flop_per_clip: f64,
    /// The same as the GPU computes it (a direct DFT where the FFT has a large prime factor).
    pub gpu_flop_per_clip: f64,
    /// Bytes across PCIe per clip (samples up, values down).
    pub pcie_bytes_per_clip: f64,
    /// Cores the CPU backend computes on.
    pub cores: usize,
    /// Estimated CPU compute time per 1,000 clips, seconds.
    pub cpu_s: f64,
    /// Estimated GPU time per 1,000 clips, seconds.
    pub gpu_s: f64,
}

impl Estimate {
    /// The estimate for `cfg` on a machine with `cores` cores and one GPU. In natural length
    /// mode a clip is taken to be `max(clip_samples, long_win)` samples.
    pub fn new(cfg: &Params, cores: usize) -> Self {
        let cores = cores.max(1);
        let n = cfg.n_fft as f64;
        let frames = cfg.stft_frames() as f64;
        let n_freqs = cfg.n_freqs() as f64;
        // Each FFT bin lies in at most two triangular filters.
        let weights = (2.0 * n_freqs).min(n_freqs * cfg.n_mels as f64);
        let mel_per_row = match cfg.pool {
            Pool::Mean => 2.0 * weights + frames * n_freqs,
            Pool::None => 2.0 * weights * frames,
        };
        let rest = frames * 3.0 * n_freqs + mel_per_row + 10.0 * cfg.values_per_row() as f64;
        let fft = frames * 2.5 * n * n.log2().max(1.0);
        // The GPU transforms an n_fft whose half has a prime factor above its largest radix by
        // a direct DFT: N multiply-adds of complex twiddles per bin.
        let gpu_fft = if FftPlan::new(cfg.n_fft).direct() {
            frames * 4.0 * n * n_freqs
        } else {
            fft
        };
        let samples = match cfg.length {
            LengthMode::Fixed => cfg.clip_samples,
            LengthMode::Natural => cfg.clip_samples.max(cfg.long_win),
        };
        let rows = Geometry::new(cfg).rows(Some(samples)).max(1) as f64;
        let flop_per_clip = rows * (fft + rest);
        let gpu_flop_per_clip = rows * (gpu_fft + rest);
        let pcie_bytes_per_clip =
            2.0 * samples as f64 + rows * (cfg.values_per_row() * cfg.dtype.size()) as f64;
        let per_1000 = 1000.0;
        let values = rows * cfg.values_per_row() as f64;
        Estimate {
            flop_per_clip,
            gpu_flop_per_clip,
            pcie_bytes_per_clip,
            cores,
            cpu_s: per_1000 * (flop_per_clip / CPU_FLOPS_PER_CORE + values * CPU_S_PER_VALUE)
                / cores as f64,
            gpu_s: per_1000
                * (gpu_flop_per_clip / GPU_FLOPS).max(pcie_bytes_per_clip / PCIE_BYTES_PER_S),
        }
    }

    /// Whether the GPU is expected to be at least as fast.
    pub fn gpu_wins(&self) -> bool {
        self.gpu_s <= self.cpu_s
    }

    /// The reason, as `-v` and the manifest say it (after the chosen device's name).
    pub fn reason(&self) -> String {
        let bound =
            if self.gpu_flop_per_clip / GPU_FLOPS >= self.pcie_bytes_per_clip / PCIE_BYTES_PER_S {
                "arithmetic"
            } else {
                "PCIe copies"
            };
        format!(
            "per 1,000 clips: {:.1} GFLOP of FFT and mel, {:.0} MB across PCIe; estimated {} s \
             on the GPU (bound by its {bound}) against {} s on {} CPU cores",
            self.flop_per_clip * 1e-6,
            self.pcie_bytes_per_clip * 1e-3,
            seconds(self.gpu_s),
            seconds(self.cpu_s),
            self.cores
        )
    }
}

fn seconds(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0}")
    } else if s >= 0.1 {
        format!("{s:.2}")
    } else {
        format!("{s:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use melpipe_core::config::Dtype;

    fn whole(clip: usize, n_fft: usize, hop: usize, n_mels: usize) -> Params {
        Params {
            sample_rate: 16_000,
            n_fft,
            win_length: n_fft,
            hop_length: hop,
            n_mels,
            pool: Pool::None,
            ..Params::whole_clips(clip)
        }
    }

    #[test]
    fn compute_heavy_settings_go_to_the_gpu_and_say_why() {
        let heavy = Params {
            n_fft: 256,
            win_length: 256,
            hop_length: 2,
            n_mels: 64,
            ..Params::default()
        };
        heavy.validate().unwrap();
        let e = Estimate::new(&heavy, 16);
        // 237 rows × 257 frames × (2.5·256·8 + 3·129) + mel: about 344 GFLOP per 1,000 clips.
        assert!(
            (e.flop_per_clip * 1e-6 - 343.6).abs() < 1.0,
            "{}",
            e.flop_per_clip
        );
        assert!(e.gpu_wins());
        let r = e.reason();
        assert!(r.starts_with("per 1,000 clips"), "{r}");
        assert!(
            r.contains("arithmetic") && r.contains("16 CPU cores"),
            "{r}"
        );
    }

    #[test]
    fn the_seed_and_speech_are_gpu_within_the_model() {
        for cfg in [Params::default(), whole(160_000, 512, 160, 80)] {
            cfg.validate().unwrap();
            assert!(Estimate::new(&cfg, 16).gpu_wins(), "{cfg:?}");
        }
    }

    #[test]
    fn a_large_prime_factor_stays_on_the_cores() {
        // n_fft 2·1009: the GPU would compute a direct DFT, ~150× the FFT's arithmetic.
        let cfg = whole(160_000, 2018, 1009, 40);
        cfg.validate().unwrap();
        let e = Estimate::new(&cfg, 16);
        assert!(!e.gpu_wins(), "{e:?}");
        assert!(e.reason().contains("arithmetic"), "{}", e.reason());
        // On one core the GPU's direct DFT is still the faster.
        assert!(Estimate::new(&cfg, 1).gpu_wins());
    }

    #[test]
    fn little_arithmetic_and_many_bytes_go_to_the_gpu_even_with_many_cores() {
        // Every frame of a 4-point FFT in f32: the CPU's cost is the stored values.
        let cfg = Params {
            n_fft: 4,
            win_length: 4,
            hop_length: 1,
            n_mels: 2,
            pool: Pool::None,
            dtype: Dtype::F32,
            ..Params::default()
        };
        cfg.validate().unwrap();
        let e = Estimate::new(&cfg, 64);
        assert!(e.gpu_wins(), "{e:?}");
        assert!(e.reason().contains("PCIe copies"));
    }

    #[test]
    fn natural_length_counts_at_least_one_long_window() {
        let cfg = Params {
            length: LengthMode::Natural,
            ..whole(160_000, 512, 160, 80)
        };
        cfg.validate().unwrap();
        let e = Estimate::new(&cfg, 16);
        assert!(e.flop_per_clip > 1e7, "{e:?}");
        assert!(e.gpu_wins(), "{e:?}");
    }

    #[test]
    fn a_direct_dft_on_the_gpu_is_charged_as_one() {
        // n_fft 2·1009: the GPU's direct DFT is ~70× the FFT's arithmetic.
        let cfg = whole(160_000, 2018, 1009, 40);
        cfg.validate().unwrap();
        let e = Estimate::new(&cfg, 16);
        assert!(e.gpu_flop_per_clip > 20.0 * e.flop_per_clip, "{e:?}");
        let fast = Estimate::new(&whole(160_000, 2048, 1024, 40), 16);
        assert!((fast.gpu_flop_per_clip - fast.flop_per_clip).abs() < 1.0);
    }
}
