//! Sample-rate conversion that gives `torchaudio.functional.resample`'s numbers (torchaudio 2.11,
//! its defaults: `resampling_method="sinc_interp_hann"`, `lowpass_filter_width=6`,
//! `rolloff=0.99`), as a polyphase filter.
//!
//! torchaudio reduces the rates by their gcd to `orig` → `new`, builds `new` filters ("phases")
//! of `2·width + orig` taps each (`_get_sinc_resample_kernel`), pads the signal with `width`
//! zeros in front and `width + orig` behind, runs `conv1d` with stride `orig`, interleaves the
//! phases and keeps the first `ceil(new · len / orig)` samples (`_apply_sinc_resample_kernel`).
//! So output `m·new + j` is `Σ_k K[j][k] · x[m·orig + k − width]`, with `x` zero outside the
//! signal. Equal rates return the input unchanged. [`Resampler`] computes exactly this sum,
//! with the kernel computed in f64 by torchaudio's expressions in torchaudio's order and rounded
//! to f32, and the accumulation in f32.
//!
//! **What is dropped, and why nothing is lost.** In torchaudio the filter argument
//! `t = base · ((k − width)/orig − j/new)` (`base = min(orig, new) · rolloff`) is clamped to
//! ±6 (`lowpass_filter_width`); every tap where it is clamped has the same value,
//! `sin(6π)/(6π) · cos²(π/2) · scale`, which is about 1.5e-49 in f64 (`cos(π/2)` rounds to
//! 6.1e-17, `sin(6π)` to 7.3e-16). Only the taps with `|t| < 6` are stored: about
//! `2·width + 1` of the `2·width + orig` per phase (16000 → 4096 Hz: 47 or 48 of 173;
//! 44100 → 4096 Hz: 130 or 131 of 11157). The dropped taps round to exactly 0.0 in f32 (the
//! smallest positive f32 is 1.4e-45), so the stored f32 filter is the whole f32 filter; against
//! torchaudio's float64 filter they add at most `(2·width + orig) · 1.5e-49 · scale · max|x|`
//! to a sample (`scale = base/orig`), which is at most `(14 + base) · 1.5e-49 · max|x|`: below
//! 1e-42 · max|x| for every filter within the memory bound (which keeps `base` under 2e6),
//! far below the f32 rounding of the sample itself (6e-8 relative).
//!
//! Each phase keeps its kept taps, zero-padded to a common multiple of 8, and the input offset
//! of its first tap, so a sample costs one fixed-width dot product of about `2·width + 1`
//! multiply-adds, and the filter takes `new · (2·width + 2)` floats or so instead of
//! `new · (2·width + orig)`.
//!
//! **torchaudio's dtype handling.** The kernel is computed in the waveform's dtype
//! (`_get_sinc_resample_kernel(..., waveform.dtype)`); for a float32 waveform the phase
//! positions `t` themselves are float32. Here the kernel is computed in f64 and only the taps
//! are rounded to f32, so the error against torchaudio's float64 output is the rounding of the
//! taps, the input and the f32 sum, not that of float32 phase positions; the tests hold it to
//! torchaudio's float64 output within 1e-5 (measured: below 4e-7).
//!
//! **Untrusted rates.** The rates come from file headers: [`Resampler::new`] refuses 0 Hz and
//! any filter above [`MAX_FILTER_BYTES`], and computes the filter's size before allocating
//! anything sized by the rates.

use super::lanes::{Lanes, Vector};
use super::Isa;
use std::f64::consts::PI;

/// torchaudio's `lowpass_filter_width` default: zero crossings of the sinc on each side.
const LOWPASS_FILTER_WIDTH: f64 = 6.0;
/// torchaudio's `rolloff` default: the cutoff as a fraction of the lower Nyquist frequency.
const ROLLOFF: f64 = 0.99;
/// Taps per phase are padded to a multiple of this: the lanes of one dot-product step.
const TAP_ALIGN: usize = 16;

/// The largest filter [`Resampler::new`] builds, in bytes (taps plus per-phase offsets).
/// Every pair of common rates needs far less (96000 → 4096 Hz: 18 KiB; 44100 → 4096 Hz:
/// 0.6 MiB; 44100 → 48000 Hz: 11 KiB); the bound stops a header that claims an absurd rate
/// from taking the machine's memory.
pub const MAX_FILTER_BYTES: u64 = 64 << 20;

/// Why a [`Resampler`] cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResampleError {
    /// A rate is 0 Hz.
    #[error("cannot resample {from_hz} Hz to {to_hz} Hz: a sample rate must be above 0 Hz")]
    ZeroRate {
        /// The input rate.
        from_hz: u32,
        /// The output rate.
        to_hz: u32,
    },
    /// The filter for this pair of rates is larger than [`MAX_FILTER_BYTES`].
    #[error(
        "resampling {from_hz} Hz to {to_hz} Hz needs a {} filter (the limit is {})",
        human_bytes(*.needed),
        human_bytes(*.limit)
    )]
    FilterTooLarge {
        /// The input rate.
        from_hz: u32,
        /// The output rate.
        to_hz: u32,
        /// Bytes the filter would take.
        needed: u64,
        /// [`MAX_FILTER_BYTES`].
        limit: u64,
    },
}

/// `1.5 GiB`, `64 MiB`, `18.2 KiB`, `100 bytes`.
fn human_bytes(b: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if b >= size {
            let s = format!("{:.1}", b as f64 / size as f64);
            return format!("{} {name}", s.strip_suffix(".0").unwrap_or(&s));
        }
    }
    format!("{b} bytes")
}

/// torchaudio's output length for `input_len` samples from `from_hz` to `to_hz`:
/// `ceil(new · input_len / orig)` with the gcd-reduced rates, the input length for equal
/// rates (and, having no meaning, for a 0 Hz rate), saturated at `u64::MAX`. What
/// [`Resampler::output_len`] gives, without building a filter: a manifest's file entries are
/// checked with it.
pub fn output_len(from_hz: u32, to_hz: u32, input_len: u64) -> u64 {
    if from_hz == to_hz || from_hz == 0 || to_hz == 0 {
        return input_len;
    }
    let g = gcd(u64::from(from_hz), u64::from(to_hz));
    let (o, n) = (
        u128::from(from_hz) / u128::from(g),
        u128::from(to_hz) / u128::from(g),
    );
    u64::try_from((n * u128::from(input_len)).div_ceil(o)).unwrap_or(u64::MAX)
}

/// Converts signals from one sample rate to another as `torchaudio.functional.resample` does
/// (module doc). Built once per pair of rates and shared by threads (`Send + Sync`, no
/// interior state): [`Resampler::process`] takes `&self`.
#[derive(Clone, Debug)]
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    /// The gcd-reduced input rate: the input advances by `orig` every `new` outputs.
    orig: u64,
    /// The gcd-reduced output rate: the number of phases.
    new: u64,
    /// Stored taps per phase (a multiple of [`TAP_ALIGN`]); 0 for equal rates.
    stride: usize,
    /// Phase `j`'s taps are `taps[j·stride .. (j+1)·stride]`, zero-padded after its last.
    taps: Vec<f32>,
    /// Phase `j`'s first tap applies to input `m·orig + start[j]` for output `m·new + j`
    /// (negative: inside torchaudio's zero padding).
    start: Vec<i64>,
    isa: Isa,
}

/// torchaudio's kernel parameters for the reduced rates: `(base_freq, width)`.
fn kernel_params(orig: u64, new: u64) -> (f64, u64) {
    // base_freq = min(orig_freq, new_freq); base_freq *= rolloff
    let base = orig.min(new) as f64 * ROLLOFF;
    // width = math.ceil(lowpass_filter_width * orig_freq / base_freq): the product is an exact
    // integer in Python before the division.
    let width = ((LOWPASS_FILTER_WIDTH * orig as f64) / base).ceil() as u64;
    (base, width)
}

/// torchaudio's `t` for phase `j` and tap offset `kk = k − width`, before the clamp:
/// `(arange(0, -new, -1) / new + arange(-width, width + orig) / orig) * base_freq`.
#[inline]
fn phase_position(j: u64, kk: i64, orig: u64, new: u64, base: f64) -> f64 {
    (-(j as f64) / new as f64 + kk as f64 / orig as f64) * base
}

/// torchaudio's tap value at an unclamped position `t` (`|t| < 6`).
fn tap(t: f64, scale: f64) -> f64 {
    // window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    let c = (t * PI / LOWPASS_FILTER_WIDTH / 2.0).cos();
    let window = c * c;
    // t *= math.pi; kernels = torch.where(t == 0, 1.0, t.sin() / t); kernels *= window * scale
    let t = t * PI;
    let sinc = if t == 0.0 { 1.0 } else { t.sin() / t };
    sinc * (window * scale)
}

impl Resampler {
    /// The resampler from `from_hz` to `to_hz`: refuses 0 Hz and filters above
    /// [`MAX_FILTER_BYTES`] (checked before anything sized by the rates is allocated).
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Resampler, ResampleError> {
        Self::with_isa(from_hz, to_hz, Isa::detect())
    }

    /// As [`Resampler::new`], with the dot products compiled for `isa` (which this CPU must
    /// have; [`Isa::Portable`] always runs). The results of the instruction sets differ by f32
    /// rounding only.
    pub fn with_isa(from_hz: u32, to_hz: u32, isa: Isa) -> Result<Resampler, ResampleError> {
        if from_hz == 0 || to_hz == 0 {
            return Err(ResampleError::ZeroRate { from_hz, to_hz });
        }
        let isa = if isa.available() { isa } else { Isa::Portable };
        let g = gcd(from_hz as u64, to_hz as u64);
        let (orig, new) = (from_hz as u64 / g, to_hz as u64 / g);
        let mut r = Resampler {
            from_hz,
            to_hz,
            orig,
            new,
            stride: 0,
            taps: Vec::new(),
            start: Vec::new(),
            isa,
        };
        if from_hz == to_hz {
            return Ok(r);
        }
        let (base, width) = kernel_params(orig, new);
        // Kept taps of a phase: those with |t| < 6, an open interval of length
        // 12·orig/base ≤ 2·width in k, so at most 2·width + 1 of them.
        let needed =
            (new as u128) * ((round_up_u128(2 * width as u128 + 1, TAP_ALIGN as u128)) * 4 + 8);
        if needed > MAX_FILTER_BYTES as u128 {
            return Err(ResampleError::FilterTooLarge {
                from_hz,
                to_hz,
                needed: u64::try_from(needed).unwrap_or(u64::MAX),
                limit: MAX_FILTER_BYTES,
            });
        }
        // Below the bound, new and width fit in usize and i64 comfortably.
        let lw = LOWPASS_FILTER_WIDTH;
        let (lo_k, hi_k) = (-(width as i64), (width + orig) as i64 - 1);
        let t = |j: u64, kk: i64| phase_position(j, kk, orig, new, base);
        let mut ranges = Vec::with_capacity(new as usize);
        for j in 0..new {
            // An estimate of the first kk with t > −6, then corrected with torchaudio's own
            // arithmetic so that the kept set is exactly the unclamped one.
            let centre = orig as f64 * j as f64 / new as f64;
            let half = lw * orig as f64 / base;
            let mut lo = ((centre - half).floor() as i64).clamp(lo_k, hi_k);
            while lo > lo_k && t(j, lo - 1) > -lw {
                lo -= 1;
            }
            while lo <= hi_k && t(j, lo) <= -lw {
                lo += 1;
            }
            let mut hi = ((centre + half).ceil() as i64).clamp(lo_k, hi_k);
            while hi < hi_k && t(j, hi + 1) < lw {
                hi += 1;
            }
            while hi >= lo && t(j, hi) >= lw {
                hi -= 1;
            }
            ranges.push((lo, hi));
        }
        let longest = ranges
            .iter()
            .map(|&(lo, hi)| (hi - lo + 1).max(0) as usize)
            .max()
            .unwrap_or(0);
        let stride = round_up(longest.max(1), TAP_ALIGN);
        let scale = base / orig as f64;
        let mut taps = vec![0.0f32; new as usize * stride];
        for (j, (&(lo, hi), row)) in ranges.iter().zip(taps.chunks_exact_mut(stride)).enumerate() {
            for (kk, w) in (lo..=hi).zip(row.iter_mut()) {
                *w = tap(t(j as u64, kk), scale) as f32;
            }
        }
        r.stride = stride;
        r.taps = taps;
        r.start = ranges.into_iter().map(|(lo, _)| lo).collect();
        Ok(r)
    }

    /// The input rate.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// The output rate.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Stored taps per output sample (the multiply-adds a sample costs); 0 for equal rates.
    pub fn taps_per_output(&self) -> usize {
        self.stride
    }

    /// Bytes of the stored filter.
    pub fn filter_bytes(&self) -> usize {
        self.taps.len() * 4 + self.start.len() * 8
    }

    /// torchaudio's output length for `input_len` samples: `ceil(new · input_len / orig)` with
    /// the gcd-reduced rates (`input_len` for equal rates). torchaudio takes the ceiling of a
    /// float64 quotient; it is computed exactly here, which is the same for any length below
    /// 2^53 / orig.
    pub fn output_len(&self, input_len: usize) -> usize {
        let len = output_len(self.from_hz, self.to_hz, input_len as u64);
        usize::try_from(len).unwrap_or(usize::MAX)
    }

    /// Input samples that decide the first `outputs` output samples: a longer input changes
    /// none of them, so a caller that keeps a fixed clip decodes no more of a file than this.
    /// [`Resampler::output_len`] of it is at least `outputs`.
    pub fn input_needed(&self, outputs: usize) -> usize {
        if outputs == 0 {
            return 0;
        }
        if self.from_hz == self.to_hz {
            return outputs;
        }
        let (n, o) = (self.new as u128, self.orig as u128);
        // Output m·new + j reads inputs m·orig + start[j] .. + stride.
        let reach =
            self.start.iter().copied().max().unwrap_or(0).max(0) as u128 + self.stride as u128;
        let by_taps = (outputs as u128 - 1) / n * o + reach;
        let by_len = (outputs as u128 * o).div_ceil(n);
        usize::try_from(by_taps.max(by_len)).unwrap_or(usize::MAX)
    }

    /// Writes the first `out.len()` output samples of `input` resampled into `out`: a caller
    /// that keeps only a fixed clip asks for fewer and pays for fewer. Allocates nothing.
    ///
    /// # Panics
    /// When `out` is longer than [`Resampler::output_len`]`(input.len())`.
    pub fn process(&self, input: &[f32], out: &mut [f32]) {
        let total = self.output_len(input.len());
        assert!(
            out.len() <= total,
            "{} output samples asked of {} input samples, which make {}",
            out.len(),
            input.len(),
            total
        );
        if self.from_hz == self.to_hz {
            out.copy_from_slice(&input[..out.len()]);
            return;
        }
        match self.isa {
            // SAFETY: `with_isa` keeps an instruction set only when this CPU has it, and
            // both x86 sets include AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { process_avx512(self, input, out) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { process_avx2(self, input, out) },
            _ => self.process_with::<Lanes<8, false>>(input, out),
        }
    }

    /// The resampling loop over `V`'s lanes (8 or 16: the taps are padded to 16).
    #[inline(always)]
    fn process_with<V: Vector>(&self, x: &[f32], out: &mut [f32]) {
        let (new, orig, s) = (self.new as usize, self.orig as usize, self.stride);
        for (m, frame) in out.chunks_mut(new).enumerate() {
            let at = (m * orig) as i64;
            for ((o, &start), taps) in frame
                .iter_mut()
                .zip(&self.start)
                .zip(self.taps.chunks_exact(s))
            {
                let first = at + start;
                *o = if first >= 0 && first as usize + s <= x.len() {
                    let first = first as usize;
                    dot::<V>(taps, &x[first..first + s])
                } else {
                    dot_edge(taps, x, first)
                };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn process_avx2(r: &Resampler, x: &[f32], out: &mut [f32]) {
    r.process_with::<super::lanes::x86::Avx2>(x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn process_avx512(r: &Resampler, x: &[f32], out: &mut [f32]) {
    r.process_with::<super::lanes::x86::Avx512>(x, out)
}

/// `Σ taps[i] · x[i]` over equal lengths, a multiple of `V::W`: four accumulators so that the
/// multiply-adds of consecutive chunks do not wait on each other.
#[inline(always)]
fn dot<V: Vector>(taps: &[f32], x: &[f32]) -> f32 {
    const {
        assert!(
            TAP_ALIGN.is_multiple_of(V::W),
            "the taps are padded for whole vectors"
        )
    };
    let w = V::W;
    let n = taps.len();
    let x = &x[..n];
    let (mut a0, mut a1, mut a2, mut a3) = (V::default(), V::default(), V::default(), V::default());
    let mut i = 0;
    while i + 4 * w <= n {
        a0 = V::load(&taps[i..]).fma(V::load(&x[i..]), a0);
        a1 = V::load(&taps[i + w..]).fma(V::load(&x[i + w..]), a1);
        a2 = V::load(&taps[i + 2 * w..]).fma(V::load(&x[i + 2 * w..]), a2);
        a3 = V::load(&taps[i + 3 * w..]).fma(V::load(&x[i + 3 * w..]), a3);
        i += 4 * w;
    }
    if i + 2 * w <= n {
        a0 = V::load(&taps[i..]).fma(V::load(&x[i..]), a0);
        a1 = V::load(&taps[i + w..]).fma(V::load(&x[i + w..]), a1);
        i += 2 * w;
    }
    if i < n {
        a2 = V::load(&taps[i..]).fma(V::load(&x[i..]), a2);
    }
    let mut l = [0.0f32; 16];
    ((a0 + a1) + (a2 + a3)).store(&mut l);
    if w == 16 {
        for i in 0..8 {
            l[i] += l[i + 8];
        }
    }
    // A tree rather than a running sum: three dependent adds instead of seven, which the
    // short filters (16 taps when upsampling) notice.
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// The dot product of a phase whose taps reach past either end of `x` (zero there): only the
/// first and last few outputs of a signal.
fn dot_edge(taps: &[f32], x: &[f32], first: i64) -> f32 {
    let lo = (-first).max(0) as usize;
    let hi = (x.len() as i64 - first).clamp(0, taps.len() as i64) as usize;
    if lo >= hi {
        return 0.0;
    }
    let x0 = (first + lo as i64) as usize;
    taps[lo..hi].iter().zip(&x[x0..]).map(|(t, v)| t * v).sum()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

fn round_up_u128(n: u128, m: u128) -> u128 {
    n.div_ceil(m) * m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain float64 sum of torchaudio's whole (dense) kernel, for comparison.
    fn dense_reference(from_hz: u32, to_hz: u32, x: &[f32]) -> Vec<f64> {
        let g = gcd(from_hz as u64, to_hz as u64);
        let (orig, new) = (from_hz as u64 / g, to_hz as u64 / g);
        let (base, width) = kernel_params(orig, new);
        let scale = base / orig as f64;
        let len = (new as u128 * x.len() as u128).div_ceil(orig as u128) as usize;
        (0..len)
            .map(|i| {
                let (m, j) = ((i as u64 / new) as i64, i as u64 % new);
                (-(width as i64)..(width + orig) as i64)
                    .map(|kk| {
                        let t = phase_position(j, kk, orig, new, base).clamp(-6.0, 6.0);
                        let k = if t.abs() < 6.0 {
                            tap(t, scale)
                        } else {
                            // torchaudio's clamped value, kept here.
                            let c = (t * PI / 6.0 / 2.0).cos();
                            let tp = t * PI;
                            tp.sin() / tp * (c * c * scale)
                        };
                        let p = m * orig as i64 + kk;
                        if p >= 0 && (p as usize) < x.len() {
                            k * x[p as usize] as f64
                        } else {
                            0.0
                        }
                    })
                    .sum()
            })
            .collect()
    }

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn equal_rates_return_the_input() {
        let r = Resampler::new(16000, 16000).unwrap();
        let x = noise(1001, 1);
        assert_eq!(r.output_len(1001), 1001);
        let mut out = vec![0.0; 1001];
        r.process(&x, &mut out);
        assert_eq!(out, x);
        let mut few = vec![0.0; 10];
        r.process(&x, &mut few);
        assert_eq!(few, x[..10]);
        assert_eq!(r.filter_bytes(), 0);
    }

    #[test]
    fn output_len_is_torchaudios_ceiling() {
        for (a, b) in [
            (16000, 4096),
            (44100, 4096),
            (8000, 16000),
            (44100, 48000),
            (96000, 4096),
        ] {
            let r = Resampler::new(a, b).unwrap();
            let g = gcd(a as u64, b as u64);
            let (o, n) = (a as u64 / g, b as u64 / g);
            for len in [0usize, 1, 2, 7, 100, 124, 125, 126, 40961, 1 << 20] {
                // Python: math.ceil(new * length / orig) in float64.
                let want = ((n as f64 * len as f64) / o as f64).ceil() as usize;
                assert_eq!(r.output_len(len), want, "{a} -> {b}, {len}");
            }
        }
        let r = Resampler::new(16000, 4096).unwrap();
        assert_eq!(r.output_len(40000), 10240);
        assert_eq!(r.output_len(40960), 10486);
    }

    #[test]
    fn dropped_taps_are_zero_in_f32() {
        // The value of every clamped tap, as torchaudio computes it, for the largest scale.
        let t: f64 = 6.0;
        let c = (t * PI / 6.0 / 2.0).cos();
        let v = (t * PI).sin() / (t * PI) * (c * c);
        assert!(v.abs() < 1e-48, "{v}");
        assert_eq!(v as f32, 0.0);
        assert_eq!(-v as f32, 0.0);
    }

    #[test]
    fn sparse_filter_matches_the_dense_kernel() {
        for (a, b) in [
            (16000, 4096),
            (8000, 16000),
            (44100, 48000),
            (22050, 16000),
            (96000, 4096),
        ] {
            let r = Resampler::new(a, b).unwrap();
            let x = noise(3001, a as u64);
            let want = dense_reference(a, b, &x);
            let mut got = vec![0.0; r.output_len(x.len())];
            r.process(&x, &mut got);
            let err = got
                .iter()
                .zip(&want)
                .map(|(&g, &w)| (g as f64 - w).abs())
                .fold(0.0, f64::max);
            assert!(err < 2e-6, "{a} -> {b}: {err}");
        }
    }

    #[test]
    fn stored_taps_are_about_two_widths() {
        let r = Resampler::new(16000, 4096).unwrap();
        // orig 125, new 32: width 24, 47 or 48 taps with |t| < 6, padded to 48.
        assert_eq!(r.taps_per_output(), 48);
        assert_eq!(r.filter_bytes(), 32 * 48 * 4 + 32 * 8);
        let r = Resampler::new(8000, 16000).unwrap();
        assert_eq!(r.taps_per_output(), 16);
    }

    #[test]
    fn instruction_sets_agree() {
        let x = noise(5000, 7);
        for (a, b) in [(16000, 4096), (44100, 4096), (8000, 16000)] {
            let p = Resampler::with_isa(a, b, Isa::Portable).unwrap();
            let d = Resampler::new(a, b).unwrap();
            let mut yp = vec![0.0; p.output_len(x.len())];
            let mut yd = yp.clone();
            p.process(&x, &mut yp);
            d.process(&x, &mut yd);
            for (u, v) in yp.iter().zip(&yd) {
                assert!((u - v).abs() < 1e-6, "{a} -> {b}: {u} {v}");
            }
        }
    }

    #[test]
    fn zero_rates_are_refused() {
        assert_eq!(
            Resampler::new(0, 4096).unwrap_err(),
            ResampleError::ZeroRate {
                from_hz: 0,
                to_hz: 4096
            }
        );
        assert!(Resampler::new(4096, 0).is_err());
        assert!(Resampler::new(0, 0).is_err());
    }

    #[test]
    fn absurd_rates_are_refused_with_a_reason() {
        let e = Resampler::new(u32::MAX, 4096).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("resampling 4294967295 Hz to 4096 Hz needs a "),
            "{msg}"
        );
        assert!(msg.ends_with(" GiB filter (the limit is 64 MiB)"), "{msg}");
        match e {
            ResampleError::FilterTooLarge { needed, limit, .. } => {
                assert!(needed > limit);
                assert_eq!(limit, MAX_FILTER_BYTES);
            }
            other => panic!("{other:?}"),
        }
        // Upsampling to an absurd rate: many phases.
        assert!(Resampler::new(4096, u32::MAX).is_err());
        assert!(Resampler::new(u32::MAX, u32::MAX - 1).is_err());
        assert!(Resampler::new(1, u32::MAX).is_err());
        // Equal absurd rates need no filter.
        assert!(Resampler::new(u32::MAX, u32::MAX).is_ok());
    }

    #[test]
    fn filters_near_the_bound_stay_below_it() {
        // 4096 → 16·4096·k+1 Hz-like pairs: the largest accepted filters are within the bound.
        for (a, b) in [
            (1_000_003, 4096),
            (4096, 700_001),
            (192000, 4096),
            (4096, 192000),
        ] {
            match Resampler::new(a, b) {
                Ok(r) => assert!(r.filter_bytes() as u64 <= MAX_FILTER_BYTES, "{a} -> {b}"),
                Err(ResampleError::FilterTooLarge { needed, .. }) => {
                    assert!(needed > MAX_FILTER_BYTES)
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn short_and_empty_inputs() {
        let r = Resampler::new(16000, 4096).unwrap();
        assert_eq!(r.output_len(0), 0);
        r.process(&[], &mut []);
        assert_eq!(r.output_len(1), 1);
        let mut out = [f32::NAN];
        r.process(&[1.0], &mut out);
        let want = dense_reference(16000, 4096, &[1.0]);
        assert!(
            (out[0] as f64 - want[0]).abs() < 1e-7,
            "{} {}",
            out[0],
            want[0]
        );
        assert!((out[0] - 0.25344).abs() < 1e-6); // the centre tap: base / orig = 31.68 / 125
        let up = Resampler::new(8000, 16000).unwrap();
        let mut out = [f32::NAN; 2];
        up.process(&[0.5], &mut out);
        let want = dense_reference(8000, 16000, &[0.5]);
        for (g, w) in out.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-7);
        }
    }

    #[test]
    fn fewer_outputs_are_a_prefix() {
        let r = Resampler::new(44100, 4096).unwrap();
        let x = noise(44100, 3);
        let mut all = vec![0.0; r.output_len(x.len())];
        r.process(&x, &mut all);
        for n in [0, 1, 100, 1023, 1024, 1025, all.len() - 1] {
            let mut few = vec![0.0; n];
            r.process(&x, &mut few);
            assert_eq!(few, all[..n]);
        }
    }

    #[test]
    #[should_panic(expected = "output samples asked")]
    fn too_many_outputs_panic() {
        let r = Resampler::new(16000, 4096).unwrap();
        r.process(&[0.0; 8], &mut [0.0; 4]); // 8 samples make ceil(32 · 8 / 125) = 3
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Resampler>();
    }

    #[test]
    fn the_input_needed_decides_the_outputs_bit_for_bit() {
        let x: Vec<f32> = (0..30011)
            .map(|i| ((i as f32 * 0.37).sin() + (i as f32 * 0.011).cos()) * 0.4)
            .collect();
        for (from, to) in [
            (16000, 4096),
            (44100, 4096),
            (8000, 16000),
            (44100, 48000),
            (4096, 4096),
        ] {
            let r = Resampler::new(from, to).unwrap();
            let mut full = vec![0f32; r.output_len(x.len())];
            r.process(&x, &mut full);
            for want in [1, 2, 63, 64, 65, 1000, full.len() / 2, full.len()] {
                let need = r.input_needed(want).min(x.len());
                assert!(
                    r.output_len(need) >= want || need == x.len(),
                    "{from}->{to} {want}"
                );
                let mut part = vec![0f32; want];
                r.process(&x[..need], &mut part);
                assert_eq!(
                    part.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    full[..want].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{from}->{to}: {want} outputs from {need} inputs"
                );
            }
        }
    }
}
