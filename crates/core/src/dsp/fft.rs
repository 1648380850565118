//! Power spectra of `W` real frames at once: one frame per SIMD lane.
//!
//! A real FFT of `N` points as a complex FFT of `H = N/2` points (even samples as real parts,
//! odd ones as imaginary parts) followed by the usual split into even and odd spectra. Lanes are
//! independent frames, so every operation is a vertical vector operation: no shuffles.
//! The outputs are `4·|X[k]|²` (the split is left unhalved); callers fold the 1/4 into the mel
//! weights.

use super::lanes::Vector;

/// Twiddles and permutation of one FFT size (a power of two, `N ≥ 8`).
#[derive(Clone, Debug)]
pub(crate) struct RealFftPlan {
    /// Real FFT size `N`.
    #[allow(dead_code)]
    pub n: usize,
    /// Complex FFT size `N / 2`.
    pub h: usize,
    /// Bit-reversed index of each complex input.
    bitrev: Vec<usize>,
    /// `e^{-2πi j / 2m}` for the butterflies of half-size `m` at `[m + j]` (cos, sin parts).
    tw_re: Vec<f32>,
    tw_im: Vec<f32>,
    /// `e^{-2πi k / N}` for the real split, `k = 0..=H/2`.
    split_re: Vec<f32>,
    split_im: Vec<f32>,
    /// `e^{-2πi j / H}`, `j < H`, for the unrolled radix-4 kernels.
    ctw_re: Vec<f32>,
    ctw_im: Vec<f32>,
}

impl RealFftPlan {
    /// A plan for `n`-point real FFTs; `n` must be a power of two ≥ 8.
    pub fn new(n: usize) -> Self {
        assert!(n.is_power_of_two() && n >= 8);
        let h = n / 2;
        let bits = h.trailing_zeros();
        let bitrev = (0..h)
            .map(|j| j.reverse_bits() >> (usize::BITS - bits))
            .collect();
        let mut tw_re = vec![0.0; h];
        let mut tw_im = vec![0.0; h];
        let mut m = 1;
        while m < h {
            for j in 0..m {
                let a = -std::f64::consts::PI * j as f64 / m as f64;
                tw_re[m + j] = a.cos() as f32;
                tw_im[m + j] = a.sin() as f32;
            }
            m *= 2;
        }
        let (ctw_re, ctw_im) = (0..h)
            .map(|j| {
                let a = -2.0 * std::f64::consts::PI * j as f64 / h as f64;
                (a.cos() as f32, a.sin() as f32)
            })
            .unzip();
        let (split_re, split_im) = (0..=h / 2)
            .map(|k| {
                let a = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
                (a.cos() as f32, a.sin() as f32)
            })
            .unzip();
        RealFftPlan {
            n,
            h,
            bitrev,
            tw_re,
            tw_im,
            split_re,
            split_im,
            ctw_re,
            ctw_im,
        }
    }

    /// Scratch lanes one call of [`Self::power`] needs.
    pub fn work_len(&self) -> usize {
        2 * self.h
    }

    /// Power spectra (times 4) of `W` windowed frames into `out[k]`, `k = 0..=N/2` (added to
    /// it when `accumulate`). Sample `n` of the frames is the lane vector at
    /// `src[idx[n] + base..]`; `window[n]` scales it.
    ///
    /// Panics unless every such vector lies inside `src`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn power<V: Vector>(
        &self,
        src: &[f32],
        idx: &FrameIndex,
        base: usize,
        window: &[f32],
        work: &mut [V],
        out: &mut [V],
        accumulate: bool,
    ) {
        // One instance per unrolled size, so that every length below is a constant there.
        match self.h {
            4 => self.power_h::<V, 4>(src, idx, base, window, work, out, accumulate),
            8 => self.power_h::<V, 8>(src, idx, base, window, work, out, accumulate),
            16 => self.power_h::<V, 16>(src, idx, base, window, work, out, accumulate),
            32 => self.power_h::<V, 32>(src, idx, base, window, work, out, accumulate),
            64 => self.power_h::<V, 64>(src, idx, base, window, work, out, accumulate),
            _ => self.power_h::<V, 0>(src, idx, base, window, work, out, accumulate),
        }
    }

    /// [`Self::power`] for complex size `H` (0: any size, with loops).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn power_h<V: Vector, const H: usize>(
        &self,
        src: &[f32],
        idx: &FrameIndex,
        base: usize,
        window: &[f32],
        work: &mut [V],
        out: &mut [V],
        accumulate: bool,
    ) {
        let h = if H == 0 { self.h } else { H };
        let (re, im) = work[..2 * h].split_at_mut(h);
        assert!(
            idx.max + base + V::W <= src.len(),
            "frame outside the samples"
        );
        let load = Loader {
            src,
            idx: &idx.idx[..2 * h],
            base,
            window: &window[..2 * h],
        };
        let tw = (&self.ctw_re[..h], &self.ctw_im[..h]);
        match H {
            4 => fft4(&load, 0, 1, tw, 1, re, im),
            8 => fft8(&load, 0, 1, tw, 1, re, im),
            16 => fft16(&load, 0, 1, tw, 1, re, im),
            32 => fft32(&load, 0, 1, tw, 1, re, im),
            64 => fft64(&load, 0, 1, tw, 1, re, im),
            _ => self.fft_loops(&load, re, im),
        }
        // Two instances, so that the choice is not a branch inside the split's loop.
        if accumulate {
            self.split::<V, true>(h, re, im, out)
        } else {
            self.split::<V, false>(h, re, im, out)
        }
    }

    /// The complex FFT of any power-of-two size: radix-2 stages in loops (sizes above those with
    /// an unrolled kernel).
    #[inline(always)]
    fn fft_loops<V: Vector>(&self, load: &Loader<'_>, re: &mut [V], im: &mut [V]) {
        let h = self.h;
        // Bit-reversed load fused with the first two radix-2 stages (twiddles 1 and -i).
        for q in (0..h).step_by(4) {
            let (ar, ai) = load.get::<V>(self.bitrev[q]);
            let (br, bi) = load.get::<V>(self.bitrev[q + 1]);
            let (cr, ci) = load.get::<V>(self.bitrev[q + 2]);
            let (dr, di) = load.get::<V>(self.bitrev[q + 3]);
            // stage m = 1: (a, b) → (a + b, a − b), (c, d) likewise
            let (s0r, s0i, s1r, s1i) = (ar + br, ai + bi, ar - br, ai - bi);
            let (s2r, s2i, s3r, s3i) = (cr + dr, ci + di, cr - dr, ci - di);
            // stage m = 2: twiddle 1 on (s0, s2), −i on (s1, s3): −i·(x + iy) = y − ix
            re[q] = s0r + s2r;
            im[q] = s0i + s2i;
            re[q + 2] = s0r - s2r;
            im[q + 2] = s0i - s2i;
            re[q + 1] = s1r + s3i;
            im[q + 1] = s1i - s3r;
            re[q + 3] = s1r - s3i;
            im[q + 3] = s1i + s3r;
        }
        let mut m = 4;
        while m < h {
            for g in (0..h).step_by(2 * m) {
                for j in 0..m {
                    let (a, b) = (g + j, g + j + m);
                    let (br, bi) = if j == 0 {
                        (re[b], im[b])
                    } else {
                        let (c, s) = (V::splat(self.tw_re[m + j]), V::splat(self.tw_im[m + j]));
                        (im[b].fnma(s, re[b] * c), re[b].fma(s, im[b] * c))
                    };
                    let (ar, ai) = (re[a], im[a]);
                    re[a] = ar + br;
                    im[a] = ai + bi;
                    re[b] = ar - br;
                    im[b] = ai - bi;
                }
            }
            m *= 2;
        }
    }

    /// Real split: X[k] = E[k] + W^k O[k], X[H−k] = conj(E[k] − W^k O[k]), all doubled; out
    /// gets |2X[k]|², or has it added when `ACC`.
    #[inline(always)]
    fn split<V: Vector, const ACC: bool>(&self, h: usize, re: &[V], im: &[V], out: &mut [V]) {
        let (re, im, out) = (&re[..h], &im[..h], &mut out[..h + 1]);
        let (tw_re, tw_im) = (&self.split_re[..h / 2 + 1], &self.split_im[..h / 2 + 1]);
        let emit = |o: &mut V, p: V| *o = if ACC { *o + p } else { p };
        let four = V::splat(4.0);
        let (zr, zi) = (re[0], im[0]);
        let (x0, xh) = (zr + zi, zr - zi);
        emit(&mut out[0], four * (x0 * x0));
        emit(&mut out[h], four * (xh * xh));
        for k in 1..h / 2 {
            let (ar, ai, br, bi) = (re[k], im[k], re[h - k], im[h - k]);
            let (er, ei) = (ar + br, ai - bi);
            let (or, oi) = (ai + bi, br - ar);
            let (c, s) = (V::splat(tw_re[k]), V::splat(tw_im[k]));
            let tr = s.fnma(oi, c * or);
            let ti = c.fma(oi, s * or);
            let (pr, pi) = (er + tr, ei + ti);
            let (mr, mi) = (er - tr, ei - ti);
            emit(&mut out[k], pr.fma(pr, pi * pi));
            emit(&mut out[h - k], mr.fma(mr, mi * mi));
        }
        let (ar, ai) = (re[h / 2], im[h / 2]);
        emit(&mut out[h / 2], four * ar.fma(ar, ai * ai));
    }
}

/// Where the samples of a frame are: `idx[n]` is the position of sample `n` in the source,
/// relative to the batch's base.
#[derive(Clone, Debug, Default)]
pub(crate) struct FrameIndex {
    idx: Vec<u32>,
    /// Largest entry of `idx` (checked against the source once per FFT, not per load).
    max: usize,
}

impl FrameIndex {
    /// The index of one frame.
    pub fn new(idx: Vec<u32>) -> Self {
        let max = idx.iter().copied().max().unwrap_or(0) as usize;
        FrameIndex { idx, max }
    }
}

/// The complex inputs of the half-size FFT, read from transposed samples. (A struct with an
/// inlined method rather than a closure: a closure that LLVM declines to inline would be compiled
/// without the caller's target features.)
///
/// Invariant (checked by [`RealFftPlan::power`] before making one): `idx[n] + base + W ≤
/// src.len()` for every `n`, and `window.len() == idx.len()`.
pub(crate) struct Loader<'a> {
    src: &'a [f32],
    idx: &'a [u32],
    base: usize,
    window: &'a [f32],
}

impl Loader<'_> {
    /// Complex input `i`: sample `2i` as the real part, `2i + 1` as the imaginary part, windowed.
    #[inline(always)]
    fn get<V: Vector>(&self, i: usize) -> (V, V) {
        let (a, b) = (
            self.idx[2 * i] as usize + self.base,
            self.idx[2 * i + 1] as usize + self.base,
        );
        // SAFETY: `a + W` and `b + W` are at most `src.len()` by the struct's invariant. These
        // loads are the inner loop of the whole extractor: a bounds check here doubled their
        // cost.
        let (xa, xb) = unsafe {
            (
                self.src.get_unchecked(a..a + V::W),
                self.src.get_unchecked(b..b + V::W),
            )
        };
        (
            V::load(xa) * V::splat(self.window[2 * i]),
            V::load(xb) * V::splat(self.window[2 * i + 1]),
        )
    }
}

/// `x · W_H^j` for twiddle index `j` (`j` is a constant once the kernels are unrolled, so the
/// trivial cases cost nothing).
#[inline(always)]
fn twiddle<V: Vector>((xr, xi): (V, V), j: usize, (tr, ti): (&[f32], &[f32])) -> (V, V) {
    let h = tr.len();
    if j == 0 {
        (xr, xi)
    } else if 4 * j == h {
        // −i·(x + iy) = y − ix
        (xi, V::default() - xr)
    } else {
        let (c, s) = (V::splat(tr[j]), V::splat(ti[j]));
        (xi.fnma(s, xr * c), xr.fma(s, xi * c))
    }
}

/// Unrolled complex FFTs by recursive radix-4 decimation in time. `fftN(load, off, stride, ..)`
/// transforms inputs `load(off + stride·j)`, `j < N`, into `re/im[..N]` in natural order;
/// `tstep = H / N` converts this size's twiddle exponents to the table's (`W_H`).
macro_rules! radix4 {
    ($name:ident, $n:literal, $sub:ident, [$($k:literal),+]) => {
        #[inline(always)]
        fn $name<V: Vector>(
            load: &Loader<'_>,
            off: usize,
            stride: usize,
            tw: (&[f32], &[f32]),
            tstep: usize,
            re: &mut [V],
            im: &mut [V],
        ) {
            const Q: usize = $n / 4;
            let (re, im) = (&mut re[..$n], &mut im[..$n]);
            let sub = |q: usize, re: &mut [V], im: &mut [V]| {
                $sub(load, off + stride * q, 4 * stride, tw, 4 * tstep, re, im)
            };
            sub(0, &mut re[..Q], &mut im[..Q]);
            sub(1, &mut re[Q..2 * Q], &mut im[Q..2 * Q]);
            sub(2, &mut re[2 * Q..3 * Q], &mut im[2 * Q..3 * Q]);
            sub(3, &mut re[3 * Q..], &mut im[3 * Q..]);
            // Written out for every k (no loop): LLVM's loop vectorizer would otherwise try to
            // vectorize across k, and the trivial twiddles (k = 0, −i) fold away.
            $(radix4_butterfly(re, im, Q, $k, tstep, tw);)+
        }
    };
}

/// One radix-4 butterfly of a size-`4q` transform whose quarter transforms sit at `q`-strided
/// positions of `re/im`, for output index `k < q`.
#[inline(always)]
fn radix4_butterfly<V: Vector>(
    re: &mut [V],
    im: &mut [V],
    q: usize,
    k: usize,
    tstep: usize,
    tw: (&[f32], &[f32]),
) {
    let a0 = (re[k], im[k]);
    let a1 = twiddle((re[q + k], im[q + k]), k * tstep, tw);
    let a2 = twiddle((re[2 * q + k], im[2 * q + k]), 2 * k * tstep, tw);
    let a3 = twiddle((re[3 * q + k], im[3 * q + k]), 3 * k * tstep, tw);
    let (s02r, s02i) = (a0.0 + a2.0, a0.1 + a2.1);
    let (d02r, d02i) = (a0.0 - a2.0, a0.1 - a2.1);
    let (s13r, s13i) = (a1.0 + a3.0, a1.1 + a3.1);
    let (d13r, d13i) = (a1.0 - a3.0, a1.1 - a3.1);
    re[k] = s02r + s13r;
    im[k] = s02i + s13i;
    re[2 * q + k] = s02r - s13r;
    im[2 * q + k] = s02i - s13i;
    // d02 ∓ i·d13
    re[q + k] = d02r + d13i;
    im[q + k] = d02i - d13r;
    re[3 * q + k] = d02r - d13i;
    im[3 * q + k] = d02i + d13r;
}

#[inline(always)]
fn fft1<V: Vector>(
    load: &Loader<'_>,
    off: usize,
    _stride: usize,
    _tw: (&[f32], &[f32]),
    _tstep: usize,
    re: &mut [V],
    im: &mut [V],
) {
    (re[0], im[0]) = load.get::<V>(off);
}

#[inline(always)]
fn fft2<V: Vector>(
    load: &Loader<'_>,
    off: usize,
    stride: usize,
    _tw: (&[f32], &[f32]),
    _tstep: usize,
    re: &mut [V],
    im: &mut [V],
) {
    let (ar, ai) = load.get::<V>(off);
    let (br, bi) = load.get::<V>(off + stride);
    (re[0], im[0]) = (ar + br, ai + bi);
    (re[1], im[1]) = (ar - br, ai - bi);
}

radix4!(fft4, 4, fft1, [0]);
radix4!(fft8, 8, fft2, [0, 1]);
radix4!(fft16, 16, fft4, [0, 1, 2, 3]);
radix4!(fft32, 32, fft8, [0, 1, 2, 3, 4, 5, 6, 7]);
radix4!(
    fft64,
    64,
    fft16,
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::lanes::Lanes;

    #[test]
    fn matches_a_naive_dft() {
        for n in [8usize, 16, 32, 64, 128, 256, 512] {
            let plan = RealFftPlan::new(n);
            const W: usize = 4;
            // Rows: frame sample n of lane w.
            let mut rows = vec![0.0f32; n * W];
            let mut s = 1u32;
            for v in rows.iter_mut() {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *v = (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            }
            let idx = FrameIndex::new((0..n as u32).map(|i| i * W as u32).collect());
            let window: Vec<f32> = (0..n).map(|i| 0.5 + i as f32 / n as f32).collect();
            let mut work = vec![Lanes::<W, false>::default(); plan.work_len()];
            let mut out = vec![Lanes::<W, false>::splat(f32::NAN); n / 2 + 1];
            plan.power(&rows, &idx, 0, &window, &mut work, &mut out, false);
            let got: Vec<[f32; W]> = out.iter().map(|v| v.0).collect();
            for w in 0..W {
                // Float32 FFT errors scale with the frame's energy, not with each bin's power:
                // compare against the mean power as well (by Parseval, the mean of |X[k]|² is Σx²).
                let energy: f64 = (0..n)
                    .map(|t| (rows[t * W + w] as f64 * window[t] as f64).powi(2))
                    .sum();
                let mean_power = 4.0 * energy;
                for (k, g) in got.iter().enumerate() {
                    let (mut re, mut im) = (0.0f64, 0.0f64);
                    for t in 0..n {
                        let x = rows[t * W + w] as f64 * window[t] as f64;
                        let a = -2.0 * std::f64::consts::PI * ((k * t) % n) as f64 / n as f64;
                        re += x * a.cos();
                        im += x * a.sin();
                    }
                    let want = 4.0 * (re * re + im * im);
                    let err = (g[w] as f64 - want).abs() / want.max(1e-3 * mean_power);
                    assert!(err < 2e-5, "n {n} lane {w} bin {k}: {} vs {want}", g[w]);
                }
            }
        }
    }
}
