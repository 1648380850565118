//! The compute stage: one trait for "a batch of decoded files in, their feature rows out",
//! implemented by the CPU backend here and the CUDA backend in `melpipe-cuda`.

use crate::config::{Dtype, Params};
use crate::error::Result;
use crate::samples::{SampleBuf, SampleKind};
use half::f16;

/// One file of an [`AudioBatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchFile {
    /// Offset of the file's first sample in [`AudioBatch::samples`].
    pub offset: usize,
    /// Samples of the file (fixed mode: exactly `clip_samples`, zero-padded or truncated).
    pub len: usize,
    /// Rows this file gives (segments); their features are written contiguously in file order.
    pub rows: usize,
    /// The file failed to decode: its rows (fixed mode) are NaN, `len` is 0.
    pub failed: bool,
}

/// Decoded mono samples of a task's files, ready for a backend: f32 in [-1, 1), or raw PCM16
/// values for a backend that asked for them ([`BackendFactory::accepts_i16`]).
#[derive(Debug, Default)]
pub struct AudioBatch {
    /// Concatenated samples of every file.
    pub samples: SampleBuf,
    /// The files in row order.
    pub files: Vec<BatchFile>,
}

impl AudioBatch {
    /// Total rows of the batch.
    pub fn rows(&self) -> usize {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// Empties the batch, keeping its allocations; its samples will be of `kind`.
    pub fn clear(&mut self, kind: SampleKind) {
        self.samples.clear(kind);
        self.files.clear();
    }
}

/// Feature values of a batch in the stored dtype: `rows × n_mels × out_frames`, C order.
#[derive(Debug)]
pub enum FeatureBuf {
    /// Half precision.
    F16(Vec<f16>),
    /// Single precision.
    F32(Vec<f32>),
}

impl FeatureBuf {
    /// An empty buffer of the given dtype.
    pub fn new(dtype: Dtype) -> Self {
        match dtype {
            Dtype::F16 => FeatureBuf::F16(Vec::new()),
            Dtype::F32 => FeatureBuf::F32(Vec::new()),
        }
    }

    /// Resizes to `n` values (new values are NaN).
    pub fn resize(&mut self, n: usize) {
        match self {
            FeatureBuf::F16(v) => v.resize(n, f16::NAN),
            FeatureBuf::F32(v) => v.resize(n, f32::NAN),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            FeatureBuf::F16(v) => v.len(),
            FeatureBuf::F32(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as little-endian bytes, as stored on disk.
    pub fn as_bytes(&self) -> &[u8] {
        // The hosts we build for are little-endian (checked at compile time in lib.rs), so the
        // in-memory representation is the stored one.
        match self {
            FeatureBuf::F16(v) => bytemuck_f16(v),
            FeatureBuf::F32(v) => bytemuck_f32(v),
        }
    }

    /// Writes `vals` (f32) at value offset `at`, converting to the stored dtype.
    pub fn store(&mut self, at: usize, vals: &[f32]) {
        match self {
            FeatureBuf::F16(v) => {
                use half::slice::HalfFloatSliceExt;
                v[at..at + vals.len()].convert_from_f32_slice(vals);
            }
            FeatureBuf::F32(v) => v[at..at + vals.len()].copy_from_slice(vals),
        }
    }

    /// Sets values `range` to NaN (rows of a failed file).
    pub fn fill_nan(&mut self, range: std::ops::Range<usize>) {
        match self {
            FeatureBuf::F16(v) => v[range].fill(f16::NAN),
            FeatureBuf::F32(v) => v[range].fill(f32::NAN),
        }
    }
}

fn bytemuck_f16(v: &[f16]) -> &[u8] {
    // SAFETY: f16 is a 2-byte plain-old-data type (repr(transparent) over u16) with no padding;
    // any byte pattern is a valid u8, and the length covers exactly the slice's memory.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn bytemuck_f32(v: &[f32]) -> &[u8] {
    // SAFETY: as above, f32 has no padding and every byte is initialised.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// A compute backend: turns a batch of decoded files into feature rows.
///
/// One instance is used by one thread at a time; per-thread state (scratch buffers, streams)
/// lives inside it. The pipeline does not know which backend it drives.
pub trait Backend: Send {
    /// Human-readable name ("cpu", "cuda:0 NVIDIA H100 80GB HBM3").
    fn name(&self) -> String;

    /// Computes every row of `batch` into `out` (already sized to `batch.rows() × values_per_row`).
    /// Rows of failed files must be NaN.
    fn compute(&mut self, batch: &AudioBatch, out: &mut FeatureBuf) -> Result<()>;

    /// Called with each batch before [`Self::compute`], by the thread that computes it: a GPU
    /// backend page-locks the batch's sample memory here (once per pooled batch), so later
    /// uploads go straight from the memory readers decode into.
    fn prepare(&mut self, _batch: &mut AudioBatch) {}
}

/// Makes per-thread backends for a configuration.
pub trait BackendFactory: Send + Sync {
    /// Name of the device the backends run on.
    fn name(&self) -> String;
    /// A new backend instance for one thread.
    fn create(&self, cfg: &Params) -> Result<Box<dyn Backend>>;
    /// True for backends whose compute runs on the host's cores (the pipeline then reads and
    /// computes in the same threads, so decoded samples are still in cache).
    fn is_cpu(&self) -> bool;

    /// Devices the factory spreads backends over (the pipeline starts `streams` compute threads
    /// per device).
    fn devices(&self) -> usize {
        1
    }

    /// Whether backends take raw PCM16 samples ([`SampleKind::I16`]) and scale them
    /// themselves. Readers then copy 16-bit mono (or one picked channel) files as they are and
    /// fall back to f32 for a batch holding any other file.
    fn accepts_i16(&self) -> bool {
        false
    }

    /// True when a factory meant for a device computes on the CPU instead (`--device auto`
    /// when the GPU could not be started); may wait until the factory knows. The run then
    /// journals "cpu" as its backend, so that a resume cannot mix backends, and computes with
    /// as many threads as a CPU run (`threads`) instead of one per stream.
    fn fell_back_to_cpu(&self) -> bool {
        false
    }

    /// Why the run computes on this backend, when it was chosen for the parameters
    /// (`device = "auto"`); recorded in the manifest as `device_choice`.
    fn choice(&self) -> Option<String> {
        None
    }

    /// Called once a run has computed everything and dropped its backends, and again before it
    /// commits (a second call must do nothing): a device factory may start giving its device
    /// back (a GPU context takes tens of milliseconds to tear down) on a thread of its own while
    /// the last rows are written and the commit waits for the disk. The first call comes from
    /// the compute thread that dropped the last backend, once no task is left, and the run's
    /// page-locked batches are dropped before it. No backend is created afterwards.
    fn release(&self) {}
}
