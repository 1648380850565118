//! Host side of the kernels: which kernel a configuration uses, its launch geometry and shared
//! memory layout, the tables it needs (window, twiddles, sparse mel filters) and the NVRTC
//! source with its generated prelude. Pure host logic, tested without a GPU.

use crate::error::GpuUnavailable;
use melpipe_core::config::{Dtype, Params, Pool};
use std::fmt::Write as _;

/// The kernel source, compiled at run time by NVRTC.
pub(crate) const KERNEL_SOURCE: &str = include_str!("../kernels/logmel.cu");

/// Largest FFT size of the register kernel: beyond it the per-thread arrays spill.
pub const REG_MAX_N_FFT: usize = 64;

/// Threads per block, at most.
const MAX_BLOCK: usize = 256;

/// Shared memory a block may use without the opt-in attribute.
const DEFAULT_SMEM: usize = 48 * 1024;

/// Bytes of static shared memory the kernels declare beside the dynamic part (per-segment base
/// and state), rounded up generously.
const STATIC_SMEM_PER_SEG: usize = 16;

/// Which kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// `logmel_reg`: one thread per frame, FFT in registers (`n_fft` a power of two ≤ 64),
    /// several whole segments per block.
    Register,
    /// `logmel_tiled`: one segment per block at a time, its frames in tiles through a
    /// mixed-radix FFT (or a direct DFT), so any segment length and any `n_fft` fit.
    Tiled,
}

impl KernelKind {
    /// The kernel's entry point.
    pub fn entry(self) -> &'static str {
        match self {
            KernelKind::Register => "logmel_reg",
            KernelKind::Tiled => "logmel_tiled",
        }
    }
}

/// How the tiled kernel transforms a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FftPlan {
    /// Complex FFT size: `n_fft / 2` for an even `n_fft` (two real samples per complex value,
    /// split afterwards), `n_fft` for an odd one.
    pub m: usize,
    /// Whether the real input is packed two samples per complex value (even `n_fft`).
    pub packed: bool,
    /// Radix of each stage, first stage first (empty: a direct DFT of `n_fft` reals).
    pub radices: Vec<usize>,
}

/// Largest radix a stage computes in registers; an FFT size with a larger prime factor is a
/// direct DFT instead.
pub const MAX_RADIX: usize = 32;

impl FftPlan {
    /// The plan for `n_fft`.
    pub fn new(n_fft: usize) -> Self {
        let packed = n_fft.is_multiple_of(2);
        let m = if packed { n_fft / 2 } else { n_fft };
        let radices = factor_radices(m).unwrap_or_default();
        FftPlan { m, packed, radices }
    }

    /// A direct DFT (a prime factor above [`MAX_RADIX`]).
    pub fn direct(&self) -> bool {
        self.radices.is_empty() && self.m > 1
    }

    /// Where the kernel loads input value `m` from: the complex transform's input index whose
    /// value belongs at position `m` for in-place decimation-in-time stages.
    pub fn permutation(&self) -> Vec<u32> {
        if self.direct() {
            return (0..self.m as u32).collect();
        }
        let mut out = Vec::with_capacity(self.m);
        digit_reverse(
            &(0..self.m as u32).collect::<Vec<_>>(),
            &self.radices,
            &mut out,
        );
        out
    }
}

/// The stage radices of an `m`-point FFT: fours first, then a two, then odd primes ascending.
/// `None` when a prime factor exceeds [`MAX_RADIX`]. `m == 1` has no stage.
pub fn factor_radices(m: usize) -> Option<Vec<usize>> {
    let mut r = Vec::new();
    let mut n = m;
    while n.is_multiple_of(4) {
        r.push(4);
        n /= 4;
    }
    if n.is_multiple_of(2) {
        r.push(2);
        n /= 2;
    }
    let mut p = 3;
    while n > 1 {
        if p > MAX_RADIX {
            return None;
        }
        while n.is_multiple_of(p) {
            r.push(p);
            n /= p;
        }
        p += 2;
    }
    Some(r)
}

/// Input order of an in-place mixed-radix DIT FFT whose stages have `radices` (first stage
/// first): the last stage combines `r` sub-transforms, sub-transform `q` being that of
/// `indices[q], indices[q + r], …`, each laid out by the earlier stages the same way.
fn digit_reverse(indices: &[u32], radices: &[usize], out: &mut Vec<u32>) {
    match radices.split_last() {
        None => out.extend_from_slice(indices),
        Some((&r, earlier)) => {
            for q in 0..r {
                let sub: Vec<u32> = indices.iter().skip(q).step_by(r).copied().collect();
                digit_reverse(&sub, earlier, out);
            }
        }
    }
}

/// Everything about a configuration's kernel that is decided on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelPlan {
    /// Which kernel.
    pub kind: KernelKind,
    /// Segments (output rows) per block.
    pub segs_per_block: usize,
    /// Threads per block.
    pub block_threads: usize,
    /// Dynamic shared memory per block, bytes (0 when the work area is in device memory).
    pub smem_bytes: usize,
    /// Shared-memory layout, in floats from the start of the dynamic part.
    pub layout: SmemLayout,
    /// `n_fft`.
    pub n_fft: usize,
    /// Hop between STFT frames.
    pub hop: usize,
    /// Segment length (`short_win`).
    pub seg_len: usize,
    /// STFT frames per segment.
    pub n_frames: usize,
    /// `n_fft / 2 + 1`.
    pub n_freqs: usize,
    /// Mel bands.
    pub n_mels: usize,
    /// Frames stored per row (1 with mean pooling).
    pub out_frames: usize,
    /// Values stored per row.
    pub values_per_row: usize,
    /// Stored dtype.
    pub dtype: Dtype,
    /// Whether top_db applies.
    pub top_db: bool,
    /// Whether every frame is stored (pool none).
    pub pool_none: bool,
    /// Tiled kernel: frames transformed together.
    pub tile: usize,
    /// Tiled kernel: the FFT.
    pub fft: FftPlan,
    /// Tiled kernel: floats between two frames of the FFT buffers.
    pub frame_stride: usize,
    /// Tiled kernel: the work area does not fit in shared memory and lives in device memory,
    /// `layout.total` floats per block; the grid is then at most this many blocks.
    pub global_blocks: Option<usize>,
}

/// Offsets (in floats) of the kernel's shared-memory regions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmemLayout {
    /// Staged samples: the register kernel's padded, skewed segments, or the tiled kernel's
    /// padded samples of one tile.
    pub stage: usize,
    /// Register kernel: floats between two staged segments; tiled kernel: staged floats.
    pub stage_stride: usize,
    /// Tiled kernel: FFT buffer, real parts (or the windowed frames of a direct DFT).
    pub frame: usize,
    /// Tiled kernel: FFT buffer, imaginary parts.
    pub frame_im: usize,
    /// Power spectra.
    pub pw: usize,
    /// Mean power (pool mean).
    pub psum: usize,
    /// Per-segment peak.
    pub max: usize,
    /// Total floats.
    pub total: usize,
}

/// `j + j/32`: the kernel's bank-conflict skew of staged samples.
fn skew(j: usize) -> usize {
    j + (j >> 5)
}

/// STFT frames of a segment as torch.stft counts them with `center=True`.
pub fn torch_frames(seg_len: usize, n_fft: usize, hop: usize) -> usize {
    1 + (seg_len + 2 * (n_fft / 2) - n_fft) / hop
}

/// Shared memory the tiled kernel aims at per block: a few blocks per SM keep the SM busy
/// through each block's barriers.
const TILED_SMEM_TARGET: usize = 64 * 1024;

/// The tiled kernel's shape: its shared-memory target and threads per block. The defaults are
/// measured (docs/PERFORMANCE.md, "Design: the general GPU path"); `MELPIPE_TILED_SMEM_KIB`
/// and `MELPIPE_TILED_BLOCK` override them for measurements (hidden tuning variables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TiledShape {
    /// Bytes of shared memory a block aims at.
    pub smem_target: usize,
    /// Threads per block, a multiple of 32 from 64 to 1024.
    pub block: usize,
}

impl Default for TiledShape {
    fn default() -> Self {
        TiledShape {
            smem_target: TILED_SMEM_TARGET,
            block: MAX_BLOCK,
        }
    }
}

impl TiledShape {
    /// The defaults with the tuning variables' valid values applied; an invalid value is
    /// ignored with a debug message.
    pub fn from_env() -> Self {
        let mut shape = TiledShape::default();
        let read = |name: &str, ok: &dyn Fn(usize) -> bool| -> Option<usize> {
            let raw = std::env::var_os(name)?;
            match raw.to_str().and_then(|v| v.trim().parse::<usize>().ok()) {
                Some(v) if ok(v) => Some(v),
                _ => {
                    tracing::debug!("{name}={raw:?} ignored: out of range or not a number");
                    None
                }
            }
        };
        if let Some(kib) = read("MELPIPE_TILED_SMEM_KIB", &|v| (4..=1024).contains(&v)) {
            shape.smem_target = kib * 1024;
        }
        if let Some(b) = read("MELPIPE_TILED_BLOCK", &|v| {
            (64..=1024).contains(&v) && v % 32 == 0
        }) {
            shape.block = b;
        }
        shape
    }
}

/// Largest tile of frames.
const MAX_TILE: usize = 64;

/// Device memory one backend (one compute stream) may use for work areas that do not fit in
/// shared memory.
const GLOBAL_WORK_BYTES: usize = 64 << 20;

impl KernelPlan {
    /// Plans the kernel of a validated configuration for a device allowing `max_smem` bytes of
    /// shared memory per block (with opt-in).
    pub fn new(cfg: &Params, max_smem: usize) -> Result<Self, GpuUnavailable> {
        Self::with_shape(cfg, max_smem, TiledShape::default())
    }

    /// As [`new`](Self::new), with the tiled kernel's shape given.
    pub fn with_shape(
        cfg: &Params,
        max_smem: usize,
        shape: TiledShape,
    ) -> Result<Self, GpuUnavailable> {
        let n_fft = cfg.n_fft;
        let seg_len = cfg.short_win;
        let hop = cfg.hop_length;
        let n_frames = cfg.stft_frames();
        debug_assert_eq!(n_frames, torch_frames(seg_len, n_fft, hop));
        if seg_len <= n_fft / 2 {
            return Err(GpuUnavailable::Unsupported(format!(
                "short_win ({seg_len}) must exceed n_fft/2 ({})",
                n_fft / 2
            )));
        }
        let n_freqs = cfg.n_freqs();
        let pool_mean = cfg.pool == Pool::Mean;
        let base = KernelPlan {
            kind: KernelKind::Tiled,
            segs_per_block: 1,
            block_threads: MAX_BLOCK,
            smem_bytes: 0,
            layout: SmemLayout::default(),
            n_fft,
            hop,
            seg_len,
            n_frames,
            n_freqs,
            n_mels: cfg.n_mels,
            out_frames: cfg.out_frames(),
            values_per_row: cfg.values_per_row(),
            dtype: cfg.dtype,
            top_db: cfg.top_db.is_some(),
            pool_none: cfg.pool == Pool::None,
            tile: 1,
            fft: FftPlan::new(n_fft),
            frame_stride: 0,
            global_blocks: None,
        };
        let fits = |bytes: usize, segs: usize| bytes + segs * STATIC_SMEM_PER_SEG <= max_smem;
        if n_fft.is_power_of_two() && n_fft <= REG_MAX_N_FFT {
            // Pick the segments per block that waste the fewest threads in the FFT phase
            // (one thread per frame), preferring layouts that need no shared-memory opt-in.
            let mut best: Option<(f64, bool, KernelPlan)> = None;
            for segs in 1..=32usize {
                let slots = segs * n_frames;
                let block = slots.div_ceil(32).min(MAX_BLOCK / 32) * 32;
                let efficiency = slots as f64 / (slots.div_ceil(block) * block) as f64;
                let layout = Self::reg_layout(segs, seg_len, n_fft, n_frames, n_freqs, pool_mean);
                let bytes = layout.total * 4;
                if !fits(bytes, segs) {
                    break;
                }
                let small = bytes + segs * STATIC_SMEM_PER_SEG <= DEFAULT_SMEM;
                let better = match &best {
                    None => true,
                    Some((e, s, _)) => (small && !s) || (small == *s && efficiency > e + 0.01),
                };
                if better {
                    let plan = KernelPlan {
                        kind: KernelKind::Register,
                        segs_per_block: segs,
                        block_threads: block,
                        smem_bytes: bytes,
                        layout,
                        ..base.clone()
                    };
                    best = Some((efficiency, small, plan));
                }
            }
            if let Some((_, _, plan)) = best {
                return Ok(plan);
            }
        }
        Ok(Self::tiled(base, hop, max_smem, pool_mean, shape))
    }

    /// The tiled kernel's plan: the largest tile of frames whose work area stays within
    /// [`TILED_SMEM_TARGET`] (or, for one frame, within the device's limit), balanced so the
    /// segment's tiles are about equal; else a work area in device memory.
    fn tiled(
        base: KernelPlan,
        hop: usize,
        max_smem: usize,
        pool_mean: bool,
        shape: TiledShape,
    ) -> KernelPlan {
        let fft = base.fft.clone();
        let frame_floats = if fft.direct() { base.n_fft } else { fft.m };
        // Odd, so that the same position in consecutive frames falls in different banks.
        let frame_stride = frame_floats | 1;
        let layout = |tile: usize| {
            Self::tiled_layout(
                tile,
                hop,
                base.n_fft,
                frame_stride,
                !fft.direct(),
                base.n_freqs,
                pool_mean,
            )
        };
        let room =
            |tile: usize, limit: usize| layout(tile).total * 4 + STATIC_SMEM_PER_SEG <= limit;
        let most = base.n_frames.clamp(1, MAX_TILE);
        let target = shape.smem_target.min(max_smem);
        let mut tile = (1..=most).rev().find(|&t| room(t, target)).unwrap_or(1);
        // Equal tiles: 257 frames in tiles of ≤ 32 are 9 tiles of 29, not 8 of 32 and 1 of 1.
        tile = base.n_frames.div_ceil(base.n_frames.div_ceil(tile));
        let l = layout(tile);
        let in_smem = room(tile, max_smem);
        let global_blocks = (!in_smem).then(|| (GLOBAL_WORK_BYTES / (l.total * 4)).max(1));
        KernelPlan {
            kind: KernelKind::Tiled,
            block_threads: shape.block,
            smem_bytes: if in_smem { l.total * 4 } else { 0 },
            layout: l,
            tile,
            fft,
            frame_stride,
            global_blocks,
            ..base
        }
    }

    fn tiled_layout(
        tile: usize,
        hop: usize,
        n_fft: usize,
        frame_stride: usize,
        complex: bool,
        n_freqs: usize,
        pool_mean: bool,
    ) -> SmemLayout {
        let stage_len = (tile - 1) * hop + n_fft;
        let stage = 0;
        let frame = stage + stage_len;
        let frame_im = frame + tile * frame_stride;
        let pw = frame_im + if complex { tile * frame_stride } else { 0 };
        let psum = pw + tile * n_freqs;
        let max = psum + if pool_mean { n_freqs } else { 0 };
        SmemLayout {
            stage,
            stage_stride: stage_len,
            frame,
            frame_im,
            pw,
            psum,
            max,
            total: max + 1,
        }
    }

    fn reg_layout(
        segs: usize,
        seg_len: usize,
        n_fft: usize,
        n_frames: usize,
        n_freqs: usize,
        pool_mean: bool,
    ) -> SmemLayout {
        let padded = seg_len + 2 * (n_fft / 2);
        // Odd, so that consecutive segments start on different banks.
        let stage_stride = (skew(padded - 1) + 1) | 1;
        let stage = 0;
        let pw = stage + segs * stage_stride;
        let psum = pw + segs * n_frames * n_freqs;
        let max = psum + if pool_mean { segs * n_freqs } else { 0 };
        SmemLayout {
            stage,
            stage_stride,
            frame: 0,
            frame_im: 0,
            pw,
            psum,
            max,
            total: max + segs,
        }
    }

    /// Tiled kernel: the work items a row is split into for a batch of `rows` rows on a GPU
    /// with `sms` multiprocessors. With pool none a row's frames are independent, so a batch
    /// of few long rows (whole clips) is split into chunks of whole tiles until there are
    /// about four blocks per multiprocessor; pool mean sums a row's frames in order in one
    /// block. The bytes do not depend on the split.
    pub fn chunks(&self, rows: usize, sms: usize) -> usize {
        if self.kind != KernelKind::Tiled || !self.pool_none || rows == 0 {
            return 1;
        }
        let tiles = self.n_frames.div_ceil(self.tile);
        (4 * sms.max(1)).div_ceil(rows).clamp(1, tiles)
    }

    /// Whether `logmel_clamp` runs after the tiled kernel (pool none with top_db).
    pub fn clamps(&self) -> bool {
        self.kind == KernelKind::Tiled && self.pool_none && self.top_db
    }

    /// Blocks launched for `items` work items (rows × chunks).
    pub fn launch_blocks(&self, items: usize) -> usize {
        let blocks = self.grid_blocks(items);
        self.global_blocks.map_or(blocks, |cap| blocks.min(cap))
    }

    /// Floats of device memory the kernel needs beside its inputs and outputs.
    pub fn global_work_floats(&self, items: usize) -> usize {
        if self.global_blocks.is_some() {
            self.launch_blocks(items) * self.layout.total
        } else {
            0
        }
    }

    /// Blocks for a batch of `rows` rows.
    pub fn grid_blocks(&self, rows: usize) -> usize {
        rows.div_ceil(self.segs_per_block)
    }

    /// Bytes of one stored value.
    pub fn value_size(&self) -> usize {
        self.dtype.size()
    }

    /// The NVRTC source: generated prelude, then the kernel file.
    pub fn source(&self, cfg: &Params, tables: &Tables) -> String {
        let mut p = String::new();
        let half = self.n_fft / 2;
        let log2_half = if half.is_power_of_two() {
            half.trailing_zeros()
        } else {
            0
        };
        let n_short = (cfg.long_win - cfg.short_win) / cfg.short_hop + 1;
        let tiled = self.kind == KernelKind::Tiled;
        let defs: [(&str, String); 38] = [
            (
                "KERNEL_REG",
                u8::from(self.kind == KernelKind::Register).to_string(),
            ),
            ("KERNEL_TILED", u8::from(tiled).to_string()),
            ("N_FFT", self.n_fft.to_string()),
            ("HALF_FFT", half.to_string()),
            ("LOG2_HALF", log2_half.to_string()),
            ("PAD", (self.n_fft / 2).to_string()),
            ("HOP", self.hop.to_string()),
            ("SEG_LEN", self.seg_len.to_string()),
            (
                "PADDED_LEN",
                (self.seg_len + 2 * (self.n_fft / 2)).to_string(),
            ),
            ("N_FRAMES", self.n_frames.to_string()),
            ("N_FREQS", self.n_freqs.to_string()),
            ("N_MELS", self.n_mels.to_string()),
            ("OUT_FRAMES", self.out_frames.to_string()),
            ("POOL_MEAN", u8::from(cfg.pool == Pool::Mean).to_string()),
            ("HAS_TOP_DB", u8::from(cfg.top_db.is_some()).to_string()),
            ("TOP_DB", f32_literal(cfg.top_db.unwrap_or(0.0) as f32)),
            ("OUT_F16", u8::from(self.dtype == Dtype::F16).to_string()),
            ("N_SHORT", n_short.to_string()),
            ("LONG_HOP", cfg.long_hop.to_string()),
            ("SHORT_HOP", cfg.short_hop.to_string()),
            ("SEGS", self.segs_per_block.to_string()),
            ("BLOCK", self.block_threads.to_string()),
            ("STAGE_STRIDE", self.layout.stage_stride.to_string()),
            ("SMEM_STAGE_OFF", self.layout.stage.to_string()),
            ("SMEM_PW_OFF", self.layout.pw.to_string()),
            ("SMEM_PSUM_OFF", self.layout.psum.to_string()),
            ("SMEM_MAX_OFF", self.layout.max.to_string()),
            ("SMEM_FRAME_OFF", self.layout.frame.to_string()),
            ("SMEM_FRAME_IM_OFF", self.layout.frame_im.to_string()),
            ("TILE", self.tile.to_string()),
            ("FFT_M", self.fft.m.to_string()),
            ("FFT_PACKED", u8::from(self.fft.packed).to_string()),
            ("FFT_DIRECT", u8::from(self.fft.direct()).to_string()),
            (
                "TW_SCALE",
                if self.fft.packed { "2" } else { "1" }.to_string(),
            ),
            ("FRAME_STRIDE", self.frame_stride.max(1).to_string()),
            (
                "WORK_GLOBAL",
                u8::from(self.global_blocks.is_some()).to_string(),
            ),
            ("WORK_FLOATS", self.layout.total.to_string()),
            ("FFT_STAGES", self.stage_calls()),
        ];
        p.push_str("// Generated by melpipe-cuda (src/plan.rs) for one configuration.\n");
        for (name, value) in defs {
            let _ = writeln!(p, "#define {name} {value}");
        }
        if self.kind == KernelKind::Register {
            push_constant_array(&mut p, "c_window", &tables.window);
            push_constant_array(&mut p, "c_tw_re", &tables.twiddle_re[..half.max(1)]);
            push_constant_array(&mut p, "c_tw_im", &tables.twiddle_im[..half.max(1)]);
        }
        p.push_str("#line 1 \"logmel.cu\"\n");
        p.push_str(KERNEL_SOURCE);
        p
    }
}

impl KernelPlan {
    /// The tiled kernel's FFT stages as one statement list: `fft_stage<R, LP>(…)` per stage
    /// (`LP`: length of the transforms it combines), each followed by a barrier.
    fn stage_calls(&self) -> String {
        let mut s = String::new();
        let mut lp = 1;
        for &r in &self.fft.radices {
            let _ = write!(
                s,
                "fft_stage<{r}, {lp}>(fre, fim, tw_re, tw_im, nt); __syncthreads(); "
            );
            lp *= r;
        }
        if s.is_empty() {
            s.push_str("/* no stage */");
        }
        s
    }
}

/// A C float literal that parses back to exactly `v` (Rust prints the shortest round-trip form).
fn f32_literal(v: f32) -> String {
    format!("{v:?}f")
}

fn push_constant_array(p: &mut String, name: &str, values: &[f32]) {
    let _ = write!(p, "__constant__ float {name}[{}] = {{", values.len());
    for (i, v) in values.iter().enumerate() {
        if i % 8 == 0 {
            p.push_str("\n   ");
        }
        let _ = write!(p, " {},", f32_literal(*v));
    }
    p.push_str("\n};\n");
}

/// Window and twiddle tables, computed in f64 and rounded once to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Tables {
    /// Periodic Hann window of `win_length`, zero-padded and centred in `n_fft` (torch.stft).
    pub window: Vec<f32>,
    /// cos(2πk/n_fft), k < n_fft.
    pub twiddle_re: Vec<f32>,
    /// −sin(2πk/n_fft), k < n_fft.
    pub twiddle_im: Vec<f32>,
}

impl Tables {
    /// The tables of a configuration.
    pub fn new(cfg: &Params) -> Self {
        let n = cfg.n_fft;
        let wl = cfg.win_length;
        let left = (n - wl) / 2;
        let mut window = vec![0.0f32; n];
        for i in 0..wl {
            // torch.hann_window(wl, periodic=True); a window of one sample is [1].
            let w = if wl == 1 {
                1.0
            } else {
                0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / wl as f64).cos()
            };
            window[left + i] = w as f32;
        }
        let angle = |k: usize| 2.0 * std::f64::consts::PI * k as f64 / n as f64;
        Tables {
            window,
            twiddle_re: (0..n).map(|k| angle(k).cos() as f32).collect(),
            twiddle_im: (0..n).map(|k| (-angle(k).sin()) as f32).collect(),
        }
    }
}

/// Mel filters as the kernel reads them: for each mel, its non-zero range of FFT bins and the
/// weights there. Dropping the exact zeros outside a triangle changes no sum.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseMel {
    /// First bin of each filter.
    pub lo: Vec<i32>,
    /// Bins of each filter (0 for an all-zero filter).
    pub len: Vec<i32>,
    /// Offset of each filter's weights in `weights`.
    pub off: Vec<i32>,
    /// The weights, filter after filter.
    pub weights: Vec<f32>,
}

impl SparseMel {
    /// Packs torchaudio's `fb` (`n_freqs × n_mels`, row-major, f64).
    pub fn from_dense(fb: &[f64], n_freqs: usize, n_mels: usize) -> Self {
        assert_eq!(fb.len(), n_freqs * n_mels, "filterbank shape");
        let mut s = SparseMel::default();
        for m in 0..n_mels {
            let col = |k: usize| fb[k * n_mels + m];
            let first = (0..n_freqs).find(|&k| col(k) != 0.0);
            let last = (0..n_freqs).rev().find(|&k| col(k) != 0.0);
            s.off.push(s.weights.len() as i32);
            match (first, last) {
                (Some(a), Some(b)) => {
                    s.lo.push(a as i32);
                    s.len.push((b - a + 1) as i32);
                    s.weights.extend((a..=b).map(|k| col(k) as f32));
                }
                _ => {
                    s.lo.push(0);
                    s.len.push(0);
                }
            }
        }
        s
    }

    /// The three index arrays and the weights as one i32/f32 word array: lo, len, off (n_mels
    /// each), then the weights' bits. One upload, one allocation.
    pub fn packed_words(&self) -> Vec<u32> {
        let mut w = Vec::with_capacity(3 * self.lo.len() + self.weights.len());
        w.extend(self.lo.iter().map(|&v| v as u32));
        w.extend(self.len.iter().map(|&v| v as u32));
        w.extend(self.off.iter().map(|&v| v as u32));
        w.extend(self.weights.iter().map(|v| v.to_bits()));
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use melpipe_core::config::MelNorm;

    const H100_SMEM: usize = 227 * 1024;

    #[test]
    fn seed_config_uses_the_register_kernel_with_seven_segments() {
        let cfg = Params::default();
        let p = KernelPlan::new(&cfg, H100_SMEM).unwrap();
        assert_eq!(p.kind, KernelKind::Register);
        assert_eq!(p.n_frames, 33);
        assert_eq!(p.n_freqs, 33);
        assert_eq!(p.segs_per_block, 7);
        assert_eq!(p.block_threads, 256);
        // 576 padded samples, skewed to 593 floats per segment.
        assert_eq!(p.layout.stage_stride, 593);
        assert_eq!(p.layout.pw, 7 * 593);
        assert_eq!(p.layout.psum, 7 * 593 + 7 * 33 * 33);
        assert_eq!(p.layout.total, p.layout.max + 7);
        assert!(p.smem_bytes + 7 * STATIC_SMEM_PER_SEG <= DEFAULT_SMEM);
        assert_eq!(p.grid_blocks(237), 34);
        assert_eq!(p.grid_blocks(39_563 * 237), 1_339_491);
    }

    #[test]
    fn skewed_stage_holds_every_padded_sample() {
        for (seg_len, n_fft) in [(512, 64), (100, 8), (33, 64), (4096, 2)] {
            let l = KernelPlan::reg_layout(3, seg_len, n_fft, 10, n_fft / 2 + 1, true);
            let padded = seg_len + 2 * (n_fft / 2);
            assert!(skew(padded - 1) < l.stage_stride, "{seg_len} {n_fft}");
            assert_eq!(l.stage_stride % 2, 1);
        }
    }

    #[test]
    fn other_ffts_use_the_tiled_kernel() {
        for n_fft in [128, 256, 48, 100, 63, 400] {
            let cfg = Params {
                n_fft,
                win_length: n_fft.min(64),
                ..Params::default()
            };
            cfg.validate().unwrap();
            let p = KernelPlan::new(&cfg, H100_SMEM).unwrap();
            assert_eq!(p.kind, KernelKind::Tiled, "{n_fft}");
            assert_eq!(p.segs_per_block, 1);
            assert!(p.global_blocks.is_none());
            assert_eq!(p.smem_bytes, p.layout.total * 4);
            assert!(p.smem_bytes <= TILED_SMEM_TARGET, "{n_fft}");
            assert_eq!(p.layout.stage_stride, (p.tile - 1) * 16 + n_fft);
        }
    }

    /// The kernel's FFT (digit-reversed load, in-place stages of `fft_stage`, the real split of
    /// the power phase, or the direct DFT) emulated in f64 with the same index arithmetic.
    fn emulate_power(plan: &FftPlan, n_fft: usize, x: &[f64]) -> Vec<f64> {
        let n_freqs = n_fft / 2 + 1;
        let tw = |i: usize| {
            // The kernel's tables hold n_fft twiddles.
            assert!(i < n_fft, "twiddle index {i} of n_fft {n_fft}");
            let a = -2.0 * std::f64::consts::PI * i as f64 / n_fft as f64;
            (a.cos(), a.sin())
        };
        if plan.direct() {
            return (0..n_freqs)
                .map(|k| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (n, v) in x.iter().enumerate() {
                        let (c, s) = tw(k * n % n_fft);
                        re += v * c;
                        im += v * s;
                    }
                    re * re + im * im
                })
                .collect();
        }
        let m = plan.m;
        let tw_scale = if plan.packed { 2 } else { 1 };
        let perm = plan.permutation();
        let mut re = vec![0.0; m];
        let mut im = vec![0.0; m];
        for i in 0..m {
            let n = perm[i] as usize;
            if plan.packed {
                re[i] = x[2 * n];
                im[i] = x[2 * n + 1];
            } else {
                re[i] = x[n];
            }
        }
        let mut lp = 1;
        for &r in &plan.radices {
            let l = r * lp;
            let step = (m / l) * tw_scale;
            for bf in 0..m / r {
                let (b, k) = (bf / lp, bf % lp);
                let base = b * l + k;
                let mut xr: Vec<f64> = (0..r).map(|q| re[base + q * lp]).collect();
                let mut xi: Vec<f64> = (0..r).map(|q| im[base + q * lp]).collect();
                for q in 1..r {
                    let (wr, wi) = tw(k * q * step);
                    let t = xr[q] * wr - xi[q] * wi;
                    xi[q] = xr[q] * wi + xi[q] * wr;
                    xr[q] = t;
                }
                for p in 0..r {
                    let (mut yr, mut yi) = (0.0, 0.0);
                    for q in 0..r {
                        let (wr, wi) = tw((p * q % r) * (n_fft / r));
                        yr += xr[q] * wr - xi[q] * wi;
                        yi += xr[q] * wi + xi[q] * wr;
                    }
                    re[base + p * lp] = yr;
                    im[base + p * lp] = yi;
                }
            }
            lp = l;
        }
        (0..n_freqs)
            .map(|k| {
                if !plan.packed {
                    return re[k] * re[k] + im[k] * im[k];
                }
                if k == 0 || k == m {
                    let v = if k == 0 { re[0] + im[0] } else { re[0] - im[0] };
                    return v * v;
                }
                let (ar, ai) = (re[k], im[k]);
                let (br, bi) = (re[m - k], -im[m - k]);
                let (er, ei) = (0.5 * (ar + br), 0.5 * (ai + bi));
                let (odr, odi) = (0.5 * (ai - bi), -0.5 * (ar - br));
                let (wr, wi) = tw(k);
                let xr = er + wr * odr - wi * odi;
                let xi = ei + wr * odi + wi * odr;
                xr * xr + xi * xi
            })
            .collect()
    }

    #[test]
    fn mixed_radix_fft_matches_a_direct_dft() {
        let sizes: Vec<usize> = (2..=130)
            .chain([
                192,
                200,
                256,
                400,
                480,
                512,
                882,
                1000,
                1024,
                2048,
                2 * 37,
                3 * 41,
            ])
            .collect();
        for n_fft in sizes {
            let plan = FftPlan::new(n_fft);
            let x: Vec<f64> = (0..n_fft)
                .map(|i| ((i * 7919 + 13) % 101) as f64 / 50.0 - 1.0)
                .collect();
            let got = emulate_power(&plan, n_fft, &x);
            let want = emulate_power(
                &FftPlan {
                    m: n_fft,
                    packed: false,
                    radices: vec![],
                },
                n_fft,
                &x,
            );
            let scale = want.iter().cloned().fold(1.0, f64::max);
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-9 * scale,
                    "n_fft {n_fft} bin {k}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn radices_cover_the_size_and_large_primes_are_direct() {
        assert_eq!(FftPlan::new(400).radices, vec![4, 2, 5, 5]);
        assert_eq!(FftPlan::new(512).radices, vec![4, 4, 4, 4]);
        assert_eq!(FftPlan::new(256).radices, vec![4, 4, 4, 2]);
        assert_eq!(FftPlan::new(63).radices, vec![3, 3, 7]);
        assert!(!FftPlan::new(63).packed);
        assert!(FftPlan::new(2 * 37).direct());
        assert!(!FftPlan::new(2).direct());
        for n in [2usize, 3, 64, 400, 882, 1000, 4096, 65536] {
            let p = FftPlan::new(n);
            assert_eq!(p.radices.iter().product::<usize>(), p.m, "{n}");
            let mut perm = p.permutation();
            perm.sort_unstable();
            assert_eq!(perm, (0..p.m as u32).collect::<Vec<_>>(), "{n}");
        }
    }

    #[test]
    fn the_tiled_shape_sets_the_block_and_the_tile() {
        let heavy = Params {
            n_fft: 256,
            win_length: 256,
            hop_length: 2,
            n_mels: 64,
            ..Params::default()
        };
        let base = KernelPlan::new(&heavy, H100_SMEM).unwrap();
        let shape = TiledShape {
            smem_target: 24 * 1024,
            block: 512,
        };
        let small = KernelPlan::with_shape(&heavy, H100_SMEM, shape).unwrap();
        assert_eq!((base.block_threads, small.block_threads), (256, 512));
        assert!(small.tile < base.tile && small.smem_bytes <= 24 * 1024);
        // The register kernel keeps its own shape.
        let seed = KernelPlan::with_shape(&Params::default(), H100_SMEM, shape).unwrap();
        assert_eq!(
            seed,
            KernelPlan::new(&Params::default(), H100_SMEM).unwrap()
        );
    }

    #[test]
    fn few_long_rows_are_split_into_chunks_of_tiles_and_pool_mean_never() {
        let speech = Params {
            sample_rate: 16_000,
            n_fft: 512,
            win_length: 400,
            hop_length: 160,
            n_mels: 80,
            pool: Pool::None,
            ..Params::whole_clips(160_000)
        };
        let p = KernelPlan::new(&speech, H100_SMEM).unwrap();
        let tiles = p.n_frames.div_ceil(p.tile);
        assert_eq!(p.chunks(8, 132), (4 * 132usize).div_ceil(8).min(tiles));
        assert_eq!(p.chunks(64, 132), 9);
        assert_eq!(p.chunks(1, 132), tiles.min(528));
        assert_eq!(p.chunks(10_000, 132), 1);
        assert_eq!(p.chunks(0, 132), 1);
        assert!(!p.clamps());
        let topdb = KernelPlan::new(
            &Params {
                top_db: Some(80.0),
                ..speech.clone()
            },
            H100_SMEM,
        )
        .unwrap();
        assert!(topdb.clamps());
        let mean = KernelPlan::new(
            &Params {
                pool: Pool::Mean,
                top_db: Some(80.0),
                ..speech
            },
            H100_SMEM,
        )
        .unwrap();
        assert_eq!(mean.chunks(1, 132), 1);
        assert!(!mean.clamps());
        // The register kernel has no chunks.
        assert_eq!(
            KernelPlan::new(&Params::default(), H100_SMEM)
                .unwrap()
                .chunks(1, 132),
            1
        );
    }

    #[test]
    fn whole_clips_and_large_ffts_are_planned_not_refused() {
        // 10 s at 16 kHz, every frame; 30 s music at n_fft 2048; n_fft 65536.
        for (short_win, n_fft, win, hop, n_mels) in [
            (160_000, 512, 400, 160, 80),
            (1_323_000, 2048, 2048, 512, 128),
            (160_000, 400, 400, 160, 80),
            (200_000, 65_536, 65_536, 50_000, 128),
        ] {
            let cfg = Params {
                sample_rate: 44_100,
                n_fft,
                win_length: win,
                hop_length: hop,
                n_mels,
                pool: Pool::None,
                ..Params::whole_clips(short_win)
            };
            cfg.validate().unwrap();
            let p = KernelPlan::new(&cfg, H100_SMEM).unwrap();
            assert_eq!(p.kind, KernelKind::Tiled);
            assert!(p.tile >= 1 && p.tile <= p.n_frames);
            match p.global_blocks {
                None => assert!(p.smem_bytes + STATIC_SMEM_PER_SEG <= H100_SMEM),
                Some(b) => {
                    assert_eq!(p.smem_bytes, 0);
                    assert!(b * p.layout.total * 4 <= GLOBAL_WORK_BYTES.max(p.layout.total * 4));
                    assert!(p.global_work_floats(1_000_000) <= b * p.layout.total);
                }
            }
            assert_eq!(p.out_frames, p.n_frames);
        }
    }

    #[test]
    fn pool_none_rows_hold_every_frame() {
        let cfg = Params {
            pool: Pool::None,
            ..Params::default()
        };
        let p = KernelPlan::new(&cfg, H100_SMEM).unwrap();
        assert_eq!(p.out_frames, 33);
        assert_eq!(p.values_per_row, 32 * 33);
        assert_eq!(p.layout.max, p.layout.psum, "no mean-power region");
    }

    #[test]
    fn odd_fft_counts_frames_as_torch_stft() {
        // n_fft 63 pads by 31 on each side: one frame fewer than 1 + short_win/hop.
        let cfg = Params {
            n_fft: 63,
            win_length: 63,
            ..Params::default()
        };
        cfg.validate().unwrap();
        assert_eq!(torch_frames(512, 63, 16), 32);
        let p = KernelPlan::new(&cfg, H100_SMEM).unwrap();
        assert_eq!((p.kind, p.n_frames, p.n_freqs), (KernelKind::Tiled, 32, 32));
    }

    #[test]
    fn window_is_a_centred_periodic_hann() {
        let cfg = Params {
            n_fft: 8,
            win_length: 4,
            short_win: 16,
            long_win: 32,
            short_hop: 8,
            long_hop: 16,
            hop_length: 2,
            ..Params::default()
        };
        let t = Tables::new(&cfg);
        assert_eq!(t.window, vec![0.0, 0.0, 0.0, 0.5, 1.0, 0.5, 0.0, 0.0]);
        assert_eq!(t.twiddle_re[0], 1.0);
        assert_eq!(t.twiddle_im[2], -1.0);
        assert!((t.twiddle_re[1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-7);
        assert!((t.twiddle_im[1] + std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-7);
    }

    #[test]
    fn sparse_mel_keeps_exactly_the_nonzero_range() {
        // 4 bins × 3 mels: mel 0 on bins 0..=1, mel 1 all zero, mel 2 on bins 1..=3 with an
        // inner zero that stays (ranges are contiguous).
        let fb = [
            0.5, 0.0, 0.0, //
            1.0, 0.0, 0.2, //
            0.0, 0.0, 0.0, //
            0.0, 0.0, 0.7,
        ];
        let s = SparseMel::from_dense(&fb, 4, 3);
        assert_eq!(s.lo, vec![0, 0, 1]);
        assert_eq!(s.len, vec![2, 0, 3]);
        assert_eq!(s.off, vec![0, 2, 2]);
        assert_eq!(s.weights, vec![0.5, 1.0, 0.2, 0.0, 0.7]);
        let w = s.packed_words();
        assert_eq!(w.len(), 9 + 5);
        assert_eq!(f32::from_bits(w[13]), 0.7);
    }

    #[test]
    fn source_defines_every_macro_the_kernel_uses() {
        for cfg in [
            Params::default(),
            Params {
                n_fft: 128,
                win_length: 100,
                pool: Pool::None,
                top_db: Some(80.0),
                dtype: Dtype::F32,
                norm: MelNorm::Slaney,
                ..Params::default()
            },
        ] {
            let p = KernelPlan::new(&cfg, H100_SMEM).unwrap();
            let src = p.source(&cfg, &Tables::new(&cfg));
            let kernel_part = KERNEL_SOURCE;
            // Every upper-case identifier used in an #if or as a size must be #defined.
            for name in [
                "N_FFT",
                "HALF_FFT",
                "LOG2_HALF",
                "PAD",
                "HOP",
                "SEG_LEN",
                "PADDED_LEN",
                "N_FRAMES",
                "N_FREQS",
                "N_MELS",
                "OUT_FRAMES",
                "POOL_MEAN",
                "HAS_TOP_DB",
                "TOP_DB",
                "OUT_F16",
                "N_SHORT",
                "LONG_HOP",
                "SHORT_HOP",
                "SEGS",
                "BLOCK",
                "STAGE_STRIDE",
                "SMEM_STAGE_OFF",
                "SMEM_PW_OFF",
                "SMEM_PSUM_OFF",
                "SMEM_MAX_OFF",
                "SMEM_FRAME_OFF",
                "KERNEL_REG",
                "KERNEL_TILED",
                "TILE",
                "FFT_M",
                "FFT_PACKED",
                "FFT_DIRECT",
                "TW_SCALE",
                "FRAME_STRIDE",
                "WORK_GLOBAL",
                "WORK_FLOATS",
                "FFT_STAGES",
                "SMEM_FRAME_IM_OFF",
            ] {
                assert!(kernel_part.contains(name), "{name} unused by the kernel");
                assert!(
                    src.contains(&format!("#define {name} ")),
                    "{name} undefined"
                );
            }
            assert_eq!(
                src.contains("__constant__ float c_window"),
                p.kind == KernelKind::Register
            );
        }
    }

    #[test]
    fn float_literals_round_trip() {
        for v in [
            0.1f32,
            1.0,
            -0.0,
            1e-10,
            80.0,
            0.707_106_77,
            f32::MIN_POSITIVE,
        ] {
            let lit = f32_literal(v);
            let back: f32 = lit.trim_end_matches('f').parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{lit}");
        }
    }
}
