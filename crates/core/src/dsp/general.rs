//! The general path: every STFT frame of every distinct segment through `realfft`, in f32.
//!
//! Used for configurations the frame-sharing path does not cover (a hop that does not divide the
//! segment step or `n_fft / 2`, FFT sizes without a SIMD kernel, short segments with no
//! interior frames) and as the simple baseline the fast path was measured against.

use super::{MelWeights, RowPlan, SegmentGeometry};
use crate::config::Pool;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Plans and scratch of the general path.
pub(super) struct GeneralPath {
    seg: SegmentGeometry,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Power of the current segment: `[frame][bin]`, or one summed frame with mean pooling.
    power: Vec<f32>,
    /// Mel power of one frame.
    mel: Vec<f32>,
}

impl GeneralPath {
    pub(super) fn new(seg: SegmentGeometry, window: Vec<f32>) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(seg.n_fft);
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        GeneralPath {
            frame: vec![0.0; seg.n_fft],
            power: vec![0.0; seg.n_bins * seg.frames],
            mel: vec![0.0; seg.n_mels],
            seg,
            window,
            fft,
            spectrum,
            scratch,
        }
    }

    /// Features of the distinct segments of `plan` (rows are written at their first row).
    pub(super) fn extract(
        &mut self,
        samples: &[f32],
        plan: &RowPlan,
        mel: &MelWeights,
        out: &mut [f32],
    ) {
        let seg = self.seg;
        let vpr = seg.values_per_row();
        for &(start, row) in &plan.unique {
            let x = &samples[start..start + seg.len];
            let pooled = seg.pool == Pool::Mean;
            self.power.fill(0.0);
            for t in 0..seg.frames {
                for (n, v) in self.frame.iter_mut().enumerate() {
                    *v = x[seg.reflect(t, n)] * self.window[n];
                }
                // Lengths match the plan by construction, so this cannot fail.
                let done = self.fft.process_with_scratch(
                    &mut self.frame,
                    &mut self.spectrum,
                    &mut self.scratch,
                );
                debug_assert!(done.is_ok());
                let p = if pooled {
                    &mut self.power[..seg.n_bins]
                } else {
                    &mut self.power[t * seg.n_bins..(t + 1) * seg.n_bins]
                };
                for (p, c) in p.iter_mut().zip(&self.spectrum) {
                    *p += c.re * c.re + c.im * c.im;
                }
            }
            let row_out = &mut out[row * vpr..(row + 1) * vpr];
            if pooled {
                mel.project(&self.power[..seg.n_bins], &mut self.mel);
                for (o, &m) in row_out.iter_mut().zip(&self.mel) {
                    *o = power_to_db(m);
                }
            } else {
                for t in 0..seg.frames {
                    mel.project(
                        &self.power[t * seg.n_bins..(t + 1) * seg.n_bins],
                        &mut self.mel,
                    );
                    for (j, &m) in self.mel.iter().enumerate() {
                        row_out[j * seg.frames + t] = power_to_db(m);
                    }
                }
            }
            if let Some(top_db) = seg.top_db {
                super::clip_top_db(row_out, top_db);
            }
        }
    }
}

/// `10·log10(max(p, 1e-10))`, in f64 for the last bit of accuracy on this slow path.
fn power_to_db(p: f32) -> f32 {
    (10.0 * (p as f64).max(1e-10).log10()) as f32
}
