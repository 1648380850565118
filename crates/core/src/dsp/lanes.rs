//! A small SIMD vocabulary: [`Vector`], `W` f32 lanes processed together, with three
//! implementations chosen at run time:
//!
//! - [`Lanes`]: plain lane loops (`r[i] = a[i] + b[i]`) that LLVM vectorizes for whatever the
//!   compile target has: the portable fallback;
//! - `x86::Avx2` (`__m256`, FMA) and `x86::Avx512` (`__m512`): the same operations as
//!   intrinsics.
//!
//! Why intrinsics on x86 when lane loops vectorize: inside the unrolled FFT the lane loops sit
//! in loops over constant small counts, and LLVM's loop vectorizer (which runs before the SLP
//! vectorizer that would fuse each lane loop into one instruction) vectorized *across* those
//! loops with gathers and scatters instead — 2.5× slower. Vector-typed intrinsics leave it
//! nothing to do. Written by hand rather than with a SIMD crate because it is small and on the
//! hot path.

// Lane loops index on purpose: `r[i] = f(a[i], b[i])` is the shape LLVM vectorizes best.
#![allow(clippy::needless_range_loop)]

use std::ops::{Add, Mul, Sub};

/// `W` f32 lanes. Kernels are generic over it and `#[inline(always)]` down to these
/// operations, so that all of them are compiled inside one `#[target_feature]` function.
pub(crate) trait Vector:
    Copy + Default + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    /// Lanes.
    const W: usize;
    /// True when the kernel runs with AVX enabled (x86 helpers such as the 8×8 transpose may
    /// then be used).
    const AVX: bool;
    /// Every lane `x`.
    fn splat(x: f32) -> Self;
    /// The first `W` values of `s`.
    fn load(s: &[f32]) -> Self;
    /// Writes the lanes to the first `W` values of `s`.
    fn store(self, s: &mut [f32]);
    /// `self · b + c`, fused where the target has FMA.
    fn fma(self, b: Self, c: Self) -> Self;
    /// `c − self · b`, fused where the target has FMA.
    fn fnma(self, b: Self, c: Self) -> Self;
    /// Lane-wise maximum (inputs are never NaN here).
    fn max(self, b: Self) -> Self;
    /// `10 · log10(max(self, 1e-10))` with a Cephes-style `logf` (relative error ≈ 1e-7).
    fn power_to_db(self) -> Self;
}

/// Cephes `logf` polynomial coefficients, highest degree first, as published.
#[allow(clippy::excessive_precision)]
const LOG_POLY: [f32; 9] = [
    7.037_683_629_2e-2,
    -1.151_461_031_0e-1,
    1.167_699_874_0e-1,
    -1.242_014_084_6e-1,
    1.424_932_278_7e-1,
    -1.666_805_766_5e-1,
    2.000_071_476_5e-1,
    -2.499_999_399_3e-1,
    3.333_333_117_4e-1,
];
/// ln 2 split in two so that `e · ln 2` adds no rounding error for small integer `e`.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const DB_PER_NEPER: f32 = 10.0 / std::f32::consts::LN_10;

/// The dB conversion written once over [`Vector`] operations plus the three bit-level steps
/// each implementation supplies: `(mantissa in [0.5, 1), exponent as float)`, and a select.
#[inline(always)]
fn power_to_db_with<V: Vector>(
    x: V,
    frexp: impl Fn(V) -> (V, V),
    select_lt: impl Fn(V, V, V, V) -> V,
) -> V {
    let x = x.max(V::splat(1e-10));
    let (m, e) = frexp(x);
    // Centre the mantissa on 1: f in [sqrt(0.5) − 1, sqrt(2) − 1).
    let half = V::splat(std::f32::consts::FRAC_1_SQRT_2);
    let one = V::splat(1.0);
    let f = select_lt(m, half, m + m - one, m - one);
    let e = select_lt(m, half, e - one, e);
    let z = f * f;
    let mut p = V::splat(LOG_POLY[0]);
    for &c in &LOG_POLY[1..] {
        p = p.fma(f, V::splat(c));
    }
    // ln x = f − z/2 + f·z·p + e·ln2
    let y = (p * f).fma(z, e * V::splat(LN2_LO));
    let y = V::splat(-0.5).fma(z, y);
    let ln = e.fma(V::splat(LN2_HI), f + y);
    ln * V::splat(DB_PER_NEPER)
}

/// `W` f32 values processed together.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
pub struct Lanes<const W: usize, const FMA: bool>(pub [f32; W]);

impl<const W: usize, const FMA: bool> Default for Lanes<W, FMA> {
    #[inline(always)]
    fn default() -> Self {
        Lanes([0.0; W])
    }
}

impl<const W: usize, const FMA: bool> Vector for Lanes<W, FMA> {
    const W: usize = W;
    const AVX: bool = false;

    #[inline(always)]
    fn splat(x: f32) -> Self {
        Lanes([x; W])
    }

    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        let mut v = [0.0; W];
        v.copy_from_slice(&s[..W]);
        Lanes(v)
    }

    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        s[..W].copy_from_slice(&self.0);
    }

    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        let mut r = [0.0; W];
        for i in 0..W {
            r[i] = if FMA {
                self.0[i].mul_add(b.0[i], c.0[i])
            } else {
                self.0[i] * b.0[i] + c.0[i]
            };
        }
        Lanes(r)
    }

    #[inline(always)]
    fn fnma(self, b: Self, c: Self) -> Self {
        let mut r = [0.0; W];
        for i in 0..W {
            r[i] = if FMA {
                (-self.0[i]).mul_add(b.0[i], c.0[i])
            } else {
                c.0[i] - self.0[i] * b.0[i]
            };
        }
        Lanes(r)
    }

    #[inline(always)]
    fn max(self, b: Self) -> Self {
        let mut r = [0.0; W];
        for i in 0..W {
            r[i] = if self.0[i] > b.0[i] {
                self.0[i]
            } else {
                b.0[i]
            };
        }
        Lanes(r)
    }

    #[inline(always)]
    fn power_to_db(self) -> Self {
        power_to_db_with(
            self,
            |x: Self| {
                let (mut m, mut e) = ([0.0; W], [0.0; W]);
                for i in 0..W {
                    // x is normal here (≥ 1e-10), so the exponent field is exact.
                    let bits = x.0[i].to_bits();
                    e[i] = ((bits >> 23) as i32 - 126) as f32;
                    m[i] = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
                }
                (Lanes(m), Lanes(e))
            },
            |a: Self, b: Self, t: Self, f: Self| {
                let mut r = [0.0; W];
                for i in 0..W {
                    r[i] = if a.0[i] < b.0[i] { t.0[i] } else { f.0[i] };
                }
                Lanes(r)
            },
        )
    }
}

impl<const W: usize, const FMA: bool> Add for Lanes<W, FMA> {
    type Output = Self;
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        let mut r = [0.0; W];
        for i in 0..W {
            r[i] = self.0[i] + b.0[i];
        }
        Lanes(r)
    }
}

impl<const W: usize, const FMA: bool> Sub for Lanes<W, FMA> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        let mut r = [0.0; W];
        for i in 0..W {
            r[i] = self.0[i] - b.0[i];
        }
        Lanes(r)
    }
}

impl<const W: usize, const FMA: bool> Mul for Lanes<W, FMA> {
    type Output = Self;
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        let mut r = [0.0; W];
        for i in 0..W {
            r[i] = self.0[i] * b.0[i];
        }
        Lanes(r)
    }
}

/// The x86 vectors. Their operations call intrinsics that need AVX2+FMA (`Avx2`) or AVX-512F
/// (`Avx512`): values of these types are only made and used inside the kernels compiled with
/// those features (`dsp::shared_avx2`, `dsp::shared_avx512`, `dsp::resample`'s `process_avx2`), which run only after
/// `is_x86_feature_detected!` said yes. That is the one invariant every `unsafe` block below
/// relies on.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::{power_to_db_with, Vector};
    use std::arch::x86_64::*;
    use std::ops::{Add, Mul, Sub};

    macro_rules! binop {
        ($t:ident, $tr:ident, $f:ident, $intr:ident) => {
            impl $tr for $t {
                type Output = Self;
                #[inline(always)]
                fn $f(self, b: Self) -> Self {
                    // SAFETY: see the module doc: only called inside kernels with the feature.
                    $t(unsafe { $intr(self.0, b.0) })
                }
            }
        };
    }

    /// 8 lanes in a `__m256` (AVX2 + FMA).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx2(__m256);

    impl Default for Avx2 {
        #[inline(always)]
        fn default() -> Self {
            // SAFETY: see the module doc.
            Avx2(unsafe { _mm256_setzero_ps() })
        }
    }

    binop!(Avx2, Add, add, _mm256_add_ps);
    binop!(Avx2, Sub, sub, _mm256_sub_ps);
    binop!(Avx2, Mul, mul, _mm256_mul_ps);

    impl Vector for Avx2 {
        const W: usize = 8;
        const AVX: bool = true;

        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: see the module doc.
            Avx2(unsafe { _mm256_set1_ps(x) })
        }
        #[inline(always)]
        fn load(s: &[f32]) -> Self {
            let s = &s[..8];
            // SAFETY: `s` holds 8 floats; the feature as in the module doc.
            Avx2(unsafe { _mm256_loadu_ps(s.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, s: &mut [f32]) {
            let s = &mut s[..8];
            // SAFETY: `s` holds 8 floats; the feature as in the module doc.
            unsafe { _mm256_storeu_ps(s.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn fma(self, b: Self, c: Self) -> Self {
            // SAFETY: see the module doc.
            Avx2(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn fnma(self, b: Self, c: Self) -> Self {
            // SAFETY: see the module doc.
            Avx2(unsafe { _mm256_fnmadd_ps(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn max(self, b: Self) -> Self {
            // SAFETY: see the module doc.
            Avx2(unsafe { _mm256_max_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn power_to_db(self) -> Self {
            power_to_db_with(
                self,
                |x: Self| {
                    // SAFETY: see the module doc.
                    unsafe {
                        let bits = _mm256_castps_si256(x.0);
                        let e =
                            _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(126));
                        let m = _mm256_or_si256(
                            _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
                            _mm256_set1_epi32(0x3f00_0000),
                        );
                        (Avx2(_mm256_castsi256_ps(m)), Avx2(_mm256_cvtepi32_ps(e)))
                    }
                },
                |a: Self, b: Self, t: Self, f: Self| {
                    // SAFETY: see the module doc.
                    unsafe {
                        let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(a.0, b.0);
                        Avx2(_mm256_blendv_ps(f.0, t.0, lt))
                    }
                },
            )
        }
    }

    /// 16 lanes in a `__m512` (AVX-512F).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx512(__m512);

    impl Default for Avx512 {
        #[inline(always)]
        fn default() -> Self {
            // SAFETY: see the module doc.
            Avx512(unsafe { _mm512_setzero_ps() })
        }
    }

    binop!(Avx512, Add, add, _mm512_add_ps);
    binop!(Avx512, Sub, sub, _mm512_sub_ps);
    binop!(Avx512, Mul, mul, _mm512_mul_ps);

    impl Vector for Avx512 {
        const W: usize = 16;
        const AVX: bool = true;

        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: see the module doc.
            Avx512(unsafe { _mm512_set1_ps(x) })
        }
        #[inline(always)]
        fn load(s: &[f32]) -> Self {
            let s = &s[..16];
            // SAFETY: `s` holds 16 floats; the feature as in the module doc.
            Avx512(unsafe { _mm512_loadu_ps(s.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, s: &mut [f32]) {
            let s = &mut s[..16];
            // SAFETY: `s` holds 16 floats; the feature as in the module doc.
            unsafe { _mm512_storeu_ps(s.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn fma(self, b: Self, c: Self) -> Self {
            // SAFETY: see the module doc.
            Avx512(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn fnma(self, b: Self, c: Self) -> Self {
            // SAFETY: see the module doc.
            Avx512(unsafe { _mm512_fnmadd_ps(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn max(self, b: Self) -> Self {
            // SAFETY: see the module doc.
            Avx512(unsafe { _mm512_max_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn power_to_db(self) -> Self {
            power_to_db_with(
                self,
                |x: Self| {
                    // SAFETY: see the module doc.
                    unsafe {
                        let bits = _mm512_castps_si512(x.0);
                        let e =
                            _mm512_sub_epi32(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(126));
                        let m = _mm512_or_si512(
                            _mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)),
                            _mm512_set1_epi32(0x3f00_0000),
                        );
                        (
                            Avx512(_mm512_castsi512_ps(m)),
                            Avx512(_mm512_cvtepi32_ps(e)),
                        )
                    }
                },
                |a: Self, b: Self, t: Self, f: Self| {
                    // SAFETY: see the module doc.
                    unsafe {
                        let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a.0, b.0);
                        Avx512(_mm512_mask_blend_ps(lt, f.0, t.0))
                    }
                },
            )
        }
    }

    /// Lane `i` of a vector, for tests.
    #[cfg(test)]
    pub(crate) fn lane<V: Vector>(v: V, i: usize) -> f32 {
        let mut a = [0.0f32; 16];
        v.store(&mut a);
        a[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn check_db<V: Vector>(lane0: impl Fn(V) -> f32) {
        let mut worst = 0.0f64;
        let mut x = 1e-12f32;
        while x < 1e6 {
            let v = lane0(V::splat(x).power_to_db()) as f64;
            let want = 10.0 * (x as f64).max(1e-10).log10();
            worst = worst.max((v - want).abs());
            x *= 1.000_37;
        }
        // 1e-7 relative in ln over ±100 dB: a few 1e-6 dB at most.
        assert!(worst < 2e-5, "worst |Δ| = {worst} dB");
        let floor = lane0(V::splat(0.0).power_to_db());
        assert!((floor + 100.0).abs() < 1e-5, "{floor}");
    }

    #[test]
    fn db_is_accurate() {
        check_db::<Lanes<4, false>>(|v| v.0[0]);
        check_db::<Lanes<4, true>>(|v| v.0[0]);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn db_avx2() {
        check_db::<x86::Avx2>(|v| x86::lane(v, 0));
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn db_avx512() {
        check_db::<x86::Avx512>(|v| x86::lane(v, 0));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn db_is_accurate_on_x86() {
        if crate::dsp::Isa::Avx2.available() {
            // SAFETY: the CPU has the features (checked just above).
            unsafe { db_avx2() }
        }
        if crate::dsp::Isa::Avx512.available() {
            // SAFETY: as above.
            unsafe { db_avx512() }
        }
    }

    #[test]
    fn arithmetic() {
        let a = Lanes::<4, true>([1.0, 2.0, 3.0, 4.0]);
        let b = Lanes::<4, true>::splat(2.0);
        assert_eq!((a + b).0, [3.0, 4.0, 5.0, 6.0]);
        assert_eq!((a - b).0, [-1.0, 0.0, 1.0, 2.0]);
        assert_eq!((a * b).0, [2.0, 4.0, 6.0, 8.0]);
        assert_eq!(a.fma(b, b).0, [4.0, 6.0, 8.0, 10.0]);
        assert_eq!(a.fnma(b, b).0, [0.0, -2.0, -4.0, -6.0]);
        assert_eq!(a.max(b).0, [2.0, 2.0, 3.0, 4.0]);
    }
}
