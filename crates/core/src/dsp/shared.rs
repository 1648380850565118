//! The frame-sharing path: STFT frames computed once per file, `W` frames per SIMD pass.
//!
//! When every segment start is a multiple of a grid step `g`, the hop `h` divides `g` and
//! `n_fft / 2`, a segment's interior STFT frames (those clear of its reflect padding) are the
//! file's own frames at hop `h`, shared by every segment that covers them. Only the few frames
//! per segment that touch the padding (`edge` frames) are segment-specific. With the seed's
//! parameters that is 2,557 + 4·159 frames per file instead of 237·33.
//!
//! Layout. Frames are indexed `k = R·m + r` with `R = g/h`: `m` is the grid block, `r` the frame
//! within it. One SIMD pass computes the frames of one `r` for `W` consecutive blocks (lanes over
//! `m`). The file's samples are first transposed once, `T[s][m] = x[g·m + s]` (`s < g`), so that
//! sample `n` of frame `r` for blocks `m0..m0+W` — `x[g·m + h·r + n]` — is one contiguous load,
//! `T[(h·r + n) mod g][m0 + (h·r + n) div g ..]`; the edge frames of the segments starting at
//! those blocks read their reflected offsets the same way. Per-block results are kept in tables
//! laid out `[bin][m]`, so the per-segment sums over consecutive blocks are contiguous vector
//! loads with lanes over segments.
//!
//! Mean pooling sums power over frames before the mel projection and the logarithm, which then
//! run once per segment. The sums are direct sums of positive terms (block sums, then a few
//! blocks per segment): no prefix sums and subtraction, which would cancel catastrophically for
//! a quiet segment in a loud file.

use super::fft::{FrameIndex, RealFftPlan};
use super::lanes::Vector;
use super::{MelWeights, RowPlan, SegmentGeometry};
use crate::config::{Params, Pool};
use crate::geometry::Geometry;

/// Where a configuration's frames can be shared, and how.
#[derive(Clone, Debug)]
pub(super) struct SharedParams {
    /// Grid step of segment starts.
    g: usize,
    /// Frames per grid block, `g / hop`.
    r_blocks: usize,
    /// Full blocks and leftover frames of a segment's interior frames.
    nb: usize,
    rem: usize,
    /// Frame indices `t` of the edge frames.
    edges: Vec<usize>,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl SharedParams {
    /// The sharing of a configuration, or `None` when it does not apply or would not pay off
    /// (then the general path is used).
    pub(super) fn new(cfg: &Params, seg: &SegmentGeometry) -> Option<Self> {
        let (n, h) = (seg.n_fft, seg.hop);
        if !n.is_power_of_two() || !(8..=4096).contains(&n) || !seg.pad.is_multiple_of(h) {
            return None;
        }
        let geom = Geometry::new(cfg);
        let g = if geom.n_short > 1 {
            gcd(cfg.long_hop, cfg.short_hop)
        } else {
            cfg.long_hop
        };
        if !g.is_multiple_of(h) {
            return None;
        }
        // Interior frames t·h ≥ pad and t·h + pad ≤ len.
        let t_lo = seg.pad / h;
        if seg.len < 2 * seg.pad {
            return None;
        }
        let t_hi = (seg.len - seg.pad) / h;
        let n_int = t_hi + 1 - t_lo;
        let r_blocks = g / h;
        let edges: Vec<usize> = (0..seg.frames).filter(|&t| t < t_lo || t > t_hi).collect();
        // Pays off when the file's frames plus the edge frames are fewer than the segments'
        // frames: not so when segments are sparse on the grid (long_hop ≫ long_win).
        let samples = cfg.clip_samples.max(cfg.long_win);
        let rows = geom.rows(Some(samples));
        let blocks = geom.segment(rows.saturating_sub(1)).start_sample / g + 1;
        let unique = RowPlan::new(&geom, rows).unique.len().max(1);
        let shared = blocks * (r_blocks + edges.len());
        if shared > unique * seg.frames {
            return None;
        }
        Some(SharedParams {
            g,
            r_blocks,
            nb: n_int / r_blocks,
            rem: n_int % r_blocks,
            edges,
        })
    }
}

/// Plans, tables and scratch of the frame-sharing path.
pub(super) struct SharedPath {
    seg: SegmentGeometry,
    p: SharedParams,
    fft: RealFftPlan,
    window: Vec<f32>,
    /// Sample offset of frame sample `n` from its block start: interior frame `r` at
    /// `[r·N + n]`, edge frame `e` at `[(R + e)·N + n]`.
    offsets: Vec<usize>,
    /// The same as positions in `tr` relative to the batch's first block, for row stride `tr_stride`.
    idx: Vec<FrameIndex>,
    /// Largest `offset div g`.
    max_shift: usize,
    /// Transposed samples of the file: `tr[s·tr_stride + m] = x[g·m + s]`.
    tr: Vec<f32>,
    tr_stride: usize,
    /// Mean pooling: power summed over each block's `R` frames (`full`), its first `rem`
    /// frames (`part`), and a segment's edge frames (`edge`); each `[bin][m]`.
    full: Vec<f32>,
    part: Vec<f32>,
    edge: Vec<f32>,
    /// No pooling: power of every interior frame `[r][bin][m]` and edge frame `[e][bin][m]`.
    frames: Vec<f32>,
    /// Row stride (in blocks) of the tables.
    mcap: usize,
    /// First row of the segment starting at block `i`, or `u32::MAX`.
    row_of_block: Vec<u32>,
}

const NO_ROW: u32 = u32::MAX;

impl SharedPath {
    pub(super) fn new(seg: SegmentGeometry, p: SharedParams, window: Vec<f32>) -> Self {
        let n = seg.n_fft;
        let h = seg.hop;
        let mut offsets = Vec::with_capacity((p.r_blocks + p.edges.len()) * n);
        for r in 0..p.r_blocks {
            offsets.extend((0..n).map(|k| h * r + k));
        }
        for &t in &p.edges {
            offsets.extend((0..n).map(|k| seg.reflect(t, k)));
        }
        let max_shift = offsets.iter().map(|o| o / p.g).max().unwrap_or(0);
        SharedPath {
            fft: RealFftPlan::new(n),
            tr: Vec::new(),
            tr_stride: 0,
            offsets,
            idx: Vec::new(),
            max_shift,
            seg,
            p,
            window,
            full: Vec::new(),
            part: Vec::new(),
            edge: Vec::new(),
            frames: Vec::new(),
            mcap: 0,
            row_of_block: Vec::new(),
        }
    }

    /// The scale the mel weights need: 1/4 for the FFT's doubled split (and 1/frames for mean
    /// pooling, applied by the caller).
    pub(super) const POWER_SCALE: f64 = 0.25;

    /// Features of the distinct segments of `plan`, `W` lanes, on the current target features.
    #[inline(always)]
    pub(super) fn extract<V: Vector>(
        &mut self,
        x: &[f32],
        plan: &RowPlan,
        mel: &MelWeights,
        out: &mut [f32],
    ) {
        let seg = self.seg;
        let (g, rb, nb, rem) = (self.p.g, self.p.r_blocks, self.p.nb, self.p.rem);
        let n_edges = self.p.edges.len();
        let nbins = seg.n_bins;
        let n = seg.n_fft;
        let w_lanes = V::W;
        let Some(i_max) = plan.unique.iter().map(|&(s, _)| s / g).max() else {
            return;
        };
        self.row_of_block.clear();
        self.row_of_block.resize(i_max + 1, NO_ROW);
        for &(s, row) in &plan.unique {
            debug_assert_eq!(s % g, 0);
            self.row_of_block[s / g] = row as u32;
        }
        // Blocks whose frames are needed: the segments' own and the nb (+1) after them.
        let m_hi = i_max + nb + usize::from(rem > 0);
        let batches = m_hi.div_ceil(w_lanes);
        let mcap = batches * w_lanes + w_lanes + nb + 1;
        if mcap > self.mcap {
            self.mcap = mcap;
            let pooled = seg.pool == Pool::Mean;
            let grow = |v: &mut Vec<f32>, len: usize| {
                v.clear();
                v.resize(len, 0.0);
            };
            if pooled {
                grow(&mut self.full, nbins * mcap);
                grow(&mut self.part, nbins * mcap);
                grow(&mut self.edge, nbins * mcap);
            } else {
                grow(&mut self.frames, (rb + n_edges) * nbins * mcap);
            }
        }
        let mcap = self.mcap;
        // Transposed samples: every block that a batch reads, in whole tiles of 8.
        let stride = (batches * w_lanes + self.max_shift + 1).next_multiple_of(8);
        let rows = g.next_multiple_of(8);
        if stride != self.tr_stride {
            self.tr_stride = stride;
            self.tr.clear();
            self.tr.resize(rows * stride, 0.0);
            self.idx = self
                .offsets
                .chunks(n)
                .map(|f| {
                    FrameIndex::new(
                        f.iter()
                            .map(|&o| ((o % g) * stride + o / g) as u32)
                            .collect(),
                    )
                })
                .collect();
        }
        transpose::<V>(x, g, rows, stride, &mut self.tr);
        let mut work = vec![V::default(); self.fft.work_len()];
        let mut acc = vec![V::default(); nbins];
        let pooled = seg.pool == Pool::Mean;
        for b in 0..batches {
            let m0 = b * w_lanes;
            // Interior frames r = 0..R of the batch's blocks, then (for blocks that start a
            // segment) the edge frames of those segments. With mean pooling the FFT adds each
            // frame's power to `acc`, which restarts at the first interior and first edge frame.
            let nf = if m0 <= i_max { rb + n_edges } else { rb };
            for f in 0..nf {
                self.fft.power(
                    &self.tr,
                    &self.idx[f],
                    m0,
                    &self.window,
                    &mut work,
                    &mut acc,
                    pooled && f != 0 && f != rb,
                );
                if !pooled {
                    let table = &mut self.frames[f * nbins * mcap..(f + 1) * nbins * mcap];
                    store_col(&acc, table, mcap, m0);
                    continue;
                }
                if f + 1 == rem {
                    store_col(&acc, &mut self.part, mcap, m0);
                }
                if f + 1 == rb {
                    store_col(&acc, &mut self.full, mcap, m0);
                }
                if f + 1 == rb + n_edges {
                    store_col(&acc, &mut self.edge, mcap, m0);
                }
            }
        }
        // Per segment: lanes over segments starting at blocks i0..i0+W.
        let n_mels = seg.n_mels;
        let t_lo = self
            .p
            .edges
            .iter()
            .take_while(|&&t| t < seg.pad / seg.hop)
            .count();
        let out_frames = seg.out_frames();
        let mut db = vec![V::default(); n_mels * out_frames];
        let mut flat = vec![0.0f32; n_mels * out_frames * w_lanes];
        for i0 in (0..=i_max).step_by(w_lanes) {
            let lanes = (i_max + 1 - i0).min(w_lanes);
            let rows = &self.row_of_block[i0..i0 + lanes];
            if rows.iter().all(|&r| r == NO_ROW) {
                continue;
            }
            match seg.pool {
                Pool::Mean => {
                    for (k, a) in acc.iter_mut().enumerate() {
                        let col = |t: &[f32], m: usize| V::load(&t[k * mcap + m..]);
                        let mut s = col(&self.edge, i0);
                        for q in 0..nb {
                            s = s + col(&self.full, i0 + q);
                        }
                        if rem > 0 {
                            s = s + col(&self.part, i0 + nb);
                        }
                        *a = s;
                    }
                    mel_db(mel, &acc, &mut db);
                }
                Pool::None => {
                    for t in 0..seg.frames {
                        // Edge frames first in the table (after the R interior ones), by t.
                        let (f, m) = if t < t_lo {
                            (rb + t, i0)
                        } else if t >= t_lo + nb * rb + rem {
                            (rb + t - nb * rb - rem, i0)
                        } else {
                            let u = t - t_lo;
                            (u % rb, i0 + u / rb)
                        };
                        let table = &self.frames[f * nbins * mcap..(f + 1) * nbins * mcap];
                        for (k, a) in acc.iter_mut().enumerate() {
                            *a = V::load(&table[k * mcap + m..]);
                        }
                        mel_db(mel, &acc, &mut db[t * n_mels..(t + 1) * n_mels]);
                    }
                }
            }
            if let Some(top_db) = seg.top_db {
                let peak = db
                    .iter()
                    .fold(V::splat(f32::NEG_INFINITY), |a, &b| a.max(b));
                let floor = peak - V::splat(top_db);
                db.iter_mut().for_each(|v| *v = v.max(floor));
            }
            // Lanes to rows: value v of lane w at flat[v·W + w].
            for (v, d) in db.iter().enumerate() {
                d.store(&mut flat[v * w_lanes..]);
            }
            let vpr = n_mels * out_frames;
            for (w, &row) in rows.iter().enumerate() {
                if row == NO_ROW {
                    continue;
                }
                let o = &mut out[row as usize * vpr..(row as usize + 1) * vpr];
                for t in 0..out_frames {
                    for j in 0..n_mels {
                        o[j * out_frames + t] = flat[(t * n_mels + j) * w_lanes + w];
                    }
                }
            }
        }
    }
}

/// Mel projection and dB of one frame's (or one pooled segment's) power, lanes over segments.
#[inline(always)]
fn mel_db<V: Vector>(mel: &MelWeights, power: &[V], db: &mut [V]) {
    for (j, d) in db.iter_mut().enumerate() {
        let (lo, w) = mel.filter(j);
        let mut m = V::default();
        for (&w, &p) in w.iter().zip(&power[lo..]) {
            m = V::splat(w).fma(p, m);
        }
        *d = m.power_to_db();
    }
}

/// Stores lane vectors `v[k]` at column `m0` of a `[k][m]` table with row stride `mcap`.
#[inline(always)]
fn store_col<V: Vector>(v: &[V], table: &mut [f32], mcap: usize, m0: usize) {
    for (k, v) in v.iter().enumerate() {
        v.store(&mut table[k * mcap + m0..]);
    }
}

/// `tr[s·stride + m] = x[g·m + s]` for `s < rows`, `m < stride`; zero past the end of `x`.
/// With `V::AVX` the caller runs with AVX enabled, so whole 8×8 tiles go through registers.
#[inline(always)]
fn transpose<V: Vector>(x: &[f32], g: usize, rows: usize, stride: usize, tr: &mut [f32]) {
    debug_assert!(rows.is_multiple_of(8) && stride.is_multiple_of(8) && tr.len() >= rows * stride);
    for m0 in (0..stride).step_by(8) {
        for s0 in (0..rows).step_by(8) {
            let last = g * (m0 + 7) + s0 + 8;
            if last <= x.len() {
                #[cfg(target_arch = "x86_64")]
                if V::AVX {
                    // SAFETY: V::AVX vectors exist only in kernels compiled with AVX enabled
                    // (dsp::shared_avx2 / shared_avx512), which run only after detection.
                    unsafe { x86::tile8x8(x, g * m0 + s0, g, tr, s0 * stride + m0, stride) };
                    continue;
                }
                for w in 0..8 {
                    let src = &x[g * (m0 + w) + s0..g * (m0 + w) + s0 + 8];
                    for (q, &v) in src.iter().enumerate() {
                        tr[(s0 + q) * stride + m0 + w] = v;
                    }
                }
            } else {
                for w in 0..8 {
                    for q in 0..8 {
                        let v = x.get(g * (m0 + w) + s0 + q).copied().unwrap_or(0.0);
                        tr[(s0 + q) * stride + m0 + w] = v;
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `dst[dst_at + q·dst_stride + w] = src[src_at + w·src_stride + q]` for `q, w < 8`.
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) fn tile8x8(
        src: &[f32],
        src_at: usize,
        src_stride: usize,
        dst: &mut [f32],
        dst_at: usize,
        dst_stride: usize,
    ) {
        assert!(src_at + 7 * src_stride + 8 <= src.len());
        assert!(dst_at + 7 * dst_stride + 8 <= dst.len());
        // SAFETY: the asserts above keep every 8-float load and store inside the slices.
        unsafe {
            let s = src.as_ptr().add(src_at);
            let r = |w: usize| _mm256_loadu_ps(s.add(w * src_stride));
            let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
            let (r4, r5, r6, r7) = (r(4), r(5), r(6), r(7));
            let t0 = _mm256_unpacklo_ps(r0, r1);
            let t1 = _mm256_unpackhi_ps(r0, r1);
            let t2 = _mm256_unpacklo_ps(r2, r3);
            let t3 = _mm256_unpackhi_ps(r2, r3);
            let t4 = _mm256_unpacklo_ps(r4, r5);
            let t5 = _mm256_unpackhi_ps(r4, r5);
            let t6 = _mm256_unpacklo_ps(r6, r7);
            let t7 = _mm256_unpackhi_ps(r6, r7);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let d = dst.as_mut_ptr().add(dst_at);
            let w = |q: usize, v: __m256| _mm256_storeu_ps(d.add(q * dst_stride), v);
            w(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
            w(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
            w(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
            w(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
            w(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
            w(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
            w(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
            w(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
        }
    }
}
