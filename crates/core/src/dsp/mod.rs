//! Log-mel features of one file's segments on the CPU (docs/FORMAT.md, Mathematics), and the CPU
//! backend.
//!
//! [`FeatureExtractor`] picks one of two paths when it is planned:
//!
//! - the frame-sharing path (`shared.rs`): STFT frames computed once per file and shared by
//!   the segments that cover them, several frames per SIMD pass, when the hop divides the
//!   segment step and `n_fft / 2` and `n_fft` is a power of two (the seed's parameters);
//! - the general path (`general.rs`): every STFT frame of every distinct segment through
//!   `realfft`.
//!
//! [`reference`] is the plain float64 implementation the tests hold both to. [`resample`]
//! converts sample rates as torchaudio does, before the features.

mod fft;
mod general;
mod lanes;
pub mod reference;
pub mod resample;
mod shared;

use crate::backend::{AudioBatch, Backend, BackendFactory, FeatureBuf};
use crate::config::{Params, Pool};
use crate::error::Result;
use crate::geometry::Geometry;
use crate::mel::MelFilterbank;
use crate::samples::SampleView;
use general::GeneralPath;
use shared::{SharedParams, SharedPath};

/// Instruction set of the SIMD kernels, chosen at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// x86-64 AVX-512F (16 lanes).
    Avx512,
    /// x86-64 AVX2 + FMA (8 lanes).
    Avx2,
    /// Whatever the compile target has (8 lanes, no FMA).
    Portable,
}

impl Isa {
    /// The best instruction set this CPU has.
    pub fn detect() -> Isa {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|i| i.available())
            .unwrap_or(Isa::Portable)
    }

    /// True when this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

/// What every path needs to know about one segment's STFT.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentGeometry {
    /// Samples per segment (`short_win`).
    pub len: usize,
    pub n_fft: usize,
    pub hop: usize,
    /// Reflect padding on each side, `n_fft / 2`.
    pub pad: usize,
    /// STFT frames per segment.
    pub frames: usize,
    /// One-sided bins, `n_fft / 2 + 1`.
    pub n_bins: usize,
    pub n_mels: usize,
    pub pool: Pool,
    pub top_db: Option<f32>,
}

impl SegmentGeometry {
    fn new(cfg: &Params) -> Self {
        SegmentGeometry {
            len: cfg.short_win,
            n_fft: cfg.n_fft,
            hop: cfg.hop_length,
            pad: cfg.n_fft / 2,
            frames: reference::stft_frames(cfg.short_win, cfg.n_fft, cfg.hop_length),
            n_bins: cfg.n_fft / 2 + 1,
            n_mels: cfg.n_mels,
            pool: cfg.pool,
            top_db: cfg.top_db.map(|t| t as f32),
        }
    }

    /// Frames stored per row.
    pub fn out_frames(&self) -> usize {
        match self.pool {
            Pool::Mean => 1,
            Pool::None => self.frames,
        }
    }

    /// Values stored per row.
    pub fn values_per_row(&self) -> usize {
        self.n_mels * self.out_frames()
    }

    /// Index into the segment of sample `n` of STFT frame `t` (reflect padding applied).
    #[inline]
    pub fn reflect(&self, t: usize, n: usize) -> usize {
        reference::reflect((t * self.hop + n) as isize - self.pad as isize, self.len)
    }
}

/// The mel filterbank as f32 weights over each filter's nonzero bins, scaled by a constant
/// (1/frames for mean pooling, FFT scale corrections) so that the projection is all that is left.
#[derive(Clone, Debug)]
pub(crate) struct MelWeights {
    /// First bin of each filter.
    pub lo: Vec<usize>,
    /// Offset of each filter's weights in `w` (one more entry than filters).
    pub offset: Vec<usize>,
    pub w: Vec<f32>,
}

impl MelWeights {
    fn new(fb: &MelFilterbank, scale: f64) -> Self {
        let mut lo = Vec::with_capacity(fb.n_mels);
        let mut offset = vec![0];
        let mut w = Vec::new();
        for j in 0..fb.n_mels {
            let r = fb.support(j);
            lo.push(r.start);
            w.extend(r.map(|k| (fb.weight(k, j) * scale) as f32));
            offset.push(w.len());
        }
        MelWeights { lo, offset, w }
    }

    /// Weights of filter `j` and its first bin.
    #[inline]
    pub fn filter(&self, j: usize) -> (usize, &[f32]) {
        (self.lo[j], &self.w[self.offset[j]..self.offset[j + 1]])
    }

    /// `out[j] = Σ_k w[j][k] · power[k]`.
    pub fn project(&self, power: &[f32], out: &mut [f32]) {
        for (j, o) in out.iter_mut().enumerate() {
            let (lo, w) = self.filter(j);
            *o = w.iter().zip(&power[lo..]).map(|(a, b)| a * b).sum();
        }
    }
}

/// Clips the values of one segment to `max − top_db` (AmplitudeToDB's `top_db`, per segment).
pub(crate) fn clip_top_db(row: &mut [f32], top_db: f32) {
    let floor = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) - top_db;
    row.iter_mut().for_each(|v| *v = v.max(floor));
}

/// The rows of a file grouped by segment start: rows with the same start (with the seed's
/// geometry, short window 2 of long window l and short window 0 of l+1) are computed once.
#[derive(Clone, Debug, Default)]
pub(crate) struct RowPlan {
    /// Rows of the plan.
    pub rows: usize,
    /// `(start_sample, row)` of the first row of each distinct start, by start.
    pub unique: Vec<(usize, usize)>,
    /// `(row, source_row)`: rows that are copies of an earlier-computed one.
    pub copies: Vec<(usize, usize)>,
}

impl RowPlan {
    fn new(geom: &Geometry, rows: usize) -> Self {
        let mut by_start: Vec<(usize, usize)> = (0..rows)
            .map(|s| (geom.segment(s).start_sample, s))
            .collect();
        by_start.sort_unstable();
        let mut unique: Vec<(usize, usize)> = Vec::new();
        let mut copies = Vec::new();
        for (start, row) in by_start {
            match unique.last() {
                Some(&(s, src)) if s == start => copies.push((row, src)),
                _ => unique.push((start, row)),
            }
        }
        RowPlan {
            rows,
            unique,
            copies,
        }
    }

    /// Copies the computed rows onto their duplicates.
    fn fill_copies(&self, out: &mut [f32], vpr: usize) {
        for &(row, src) in &self.copies {
            out.copy_within(src * vpr..(src + 1) * vpr, row * vpr);
        }
    }
}

enum Path {
    General(Box<GeneralPath>),
    Shared(Box<SharedPath>),
}

// The frame-sharing kernels compiled for each instruction set: the generic code is
// `#[inline(always)]` down to the lane loops, so it is all compiled with these features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn shared_avx512(p: &mut SharedPath, x: &[f32], plan: &RowPlan, mel: &MelWeights, out: &mut [f32]) {
    p.extract::<lanes::x86::Avx512>(x, plan, mel, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn shared_avx2(p: &mut SharedPath, x: &[f32], plan: &RowPlan, mel: &MelWeights, out: &mut [f32]) {
    p.extract::<lanes::x86::Avx2>(x, plan, mel, out)
}

fn shared_portable(
    p: &mut SharedPath,
    x: &[f32],
    plan: &RowPlan,
    mel: &MelWeights,
    out: &mut [f32],
) {
    p.extract::<lanes::Lanes<8, false>>(x, plan, mel, out)
}

/// Per-thread feature extractor for one configuration: plans, window, filterbank and scratch.
pub struct FeatureExtractor {
    geom: Geometry,
    seg: SegmentGeometry,
    mel: MelWeights,
    plan: RowPlan,
    path: Path,
    isa: Isa,
}

impl FeatureExtractor {
    /// Plans the extractor; the configuration must be valid.
    pub fn new(cfg: &Params) -> Result<Self> {
        Self::with_isa(cfg, Isa::detect())
    }

    /// Plans the extractor for a given instruction set (an error when this CPU lacks it).
    pub fn with_isa(cfg: &Params, isa: Isa) -> Result<Self> {
        cfg.validate()?;
        if !isa.available() {
            return Err(crate::Error::Config(format!(
                "this CPU cannot run the {} kernels",
                isa.name()
            )));
        }
        let seg = SegmentGeometry::new(cfg);
        let fb = MelFilterbank::new(cfg);
        let window: Vec<f32> = reference::padded_hann(cfg.n_fft, cfg.win_length)
            .into_iter()
            .map(|w| w as f32)
            .collect();
        let pool_scale = match cfg.pool {
            Pool::Mean => 1.0 / seg.frames as f64,
            Pool::None => 1.0,
        };
        let (path, scale) = match SharedParams::new(cfg, &seg) {
            Some(p) => (
                Path::Shared(Box::new(SharedPath::new(seg, p, window))),
                pool_scale * SharedPath::POWER_SCALE,
            ),
            None => (
                Path::General(Box::new(GeneralPath::new(seg, window))),
                pool_scale,
            ),
        };
        Ok(FeatureExtractor {
            geom: Geometry::new(cfg),
            seg,
            mel: MelWeights::new(&fb, scale),
            plan: RowPlan::default(),
            path,
            isa,
        })
    }

    /// Which path and instruction set the extractor uses, for logs and benchmarks.
    pub fn describe(&self) -> String {
        match self.path {
            Path::General(_) => "general path (realfft per frame)".to_string(),
            Path::Shared(_) => format!("frame-sharing path, {}", self.isa.name()),
        }
    }

    /// Writes the dB features of the first `rows` segments of `samples` into `out`
    /// (`rows × n_mels × out_frames` values, C order). Every segment lies inside `samples`.
    pub fn extract(&mut self, samples: &[f32], rows: usize, out: &mut [f32]) {
        let vpr = self.seg.values_per_row();
        assert!(out.len() >= rows * vpr, "output buffer too small");
        if self.plan.rows != rows || (rows > 0 && self.plan.unique.is_empty()) {
            self.plan = RowPlan::new(&self.geom, rows);
        }
        let (plan, mel) = (&self.plan, &self.mel);
        match &mut self.path {
            Path::General(p) => p.extract(samples, plan, mel, out),
            Path::Shared(p) => match self.isa {
                // SAFETY: `with_isa` checked that this CPU has the instruction set's features.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { shared_avx512(p, samples, plan, mel, out) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { shared_avx2(p, samples, plan, mel, out) },
                _ => shared_portable(p, samples, plan, mel, out),
            },
        }
        self.plan.fill_copies(out, vpr);
    }
}

/// The CPU backend: a [`FeatureExtractor`] per thread.
pub struct CpuBackend {
    extractor: FeatureExtractor,
    values_per_row: usize,
    scratch: Vec<f32>,
    /// A PCM16 file's samples scaled to f32.
    pcm: Vec<f32>,
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn compute(&mut self, batch: &AudioBatch, out: &mut FeatureBuf) -> Result<()> {
        let vpr = self.values_per_row;
        let mut row = 0;
        for f in &batch.files {
            let range = row * vpr..(row + f.rows) * vpr;
            if f.failed {
                out.fill_nan(range);
            } else {
                self.scratch.resize(f.rows * vpr, 0.0);
                let samples = match batch.samples.view() {
                    SampleView::F32(s) => &s[f.offset..f.offset + f.len],
                    SampleView::I16(raw) => {
                        // PCM16 batches are for GPU backends; scale exactly as the decoder.
                        self.pcm.clear();
                        self.pcm.extend(
                            raw[f.offset..f.offset + f.len]
                                .iter()
                                .map(|&v| f32::from(v) * (1.0 / 32768.0)),
                        );
                        &self.pcm[..]
                    }
                };
                self.extractor.extract(samples, f.rows, &mut self.scratch);
                out.store(range.start, &self.scratch);
            }
            row += f.rows;
        }
        Ok(())
    }
}

/// Makes [`CpuBackend`]s.
pub struct CpuBackendFactory;

impl BackendFactory for CpuBackendFactory {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn create(&self, cfg: &Params) -> Result<Box<dyn Backend>> {
        Ok(Box::new(CpuBackend {
            extractor: FeatureExtractor::new(cfg)?,
            values_per_row: cfg.values_per_row(),
            scratch: Vec::new(),
            pcm: Vec::new(),
        }))
    }

    fn is_cpu(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
