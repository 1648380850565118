//! `melpipe.Extractor`: features of samples in memory, with the pipeline's own numbers.
//!
//! A clip is what the pipeline makes of a file with the same samples: in fixed length it is
//! zero-padded or truncated to `clip_samples`, in natural length it keeps its own; its rows are
//! the segments of that ([`Geometry`]). On the CPU each clip goes through the backend's
//! [`FeatureExtractor`] (PCM16 scaled by 1/32768 as the decoder does), so the values are those
//! of a run with `--device cpu`; on the GPU the batch goes to a `CudaBackend`, so they are those
//! of a GPU run. Extractors and GPU streams are pooled, one per concurrent call: the object is
//! shared between threads, and each call releases the GIL.

use crate::settings::{from_table, keywords_table};
use crate::{config_error, error_to_py, DeviceError};
use half::f16;
use melpipe_core::backend::{AudioBatch, Backend, BackendFactory, BatchFile, FeatureBuf};
use melpipe_core::config::{parse_device, DeviceChoice, Dtype, Params, MAX_THREADS};
use melpipe_core::dsp::FeatureExtractor;
use melpipe_core::geometry::Geometry;
use melpipe_core::samples::SampleKind;
use melpipe_cuda::CudaBackendFactory;
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Mutex;

/// Parameters that concern files, not samples: refused by `Extractor` with the reason.
const FILE_ONLY: &[(&str, &str)] = &[
    ("ext", "it selects files in a folder"),
    ("resample", "samples are taken at the `sample_rate` given"),
    ("channel", "a 2-D array is a batch of mono clips"),
    ("mapping", "it is a table of the output folder"),
    ("layout", "it names the output folder's files"),
];

/// Bytes of samples a GPU call uploads per part. Parts go through two streams in turn, so that
/// copying one part into page-locked memory (on every core) overlaps the upload and computation
/// of the other.
const GPU_PART_BYTES: usize = 32 << 20;

/// GPU streams (with their page-locked batches) kept for the next calls; more concurrent calls
/// make their own and drop them after.
const GPU_SLOTS_KEPT: usize = 4;

/// A 2-D array with at most this many samples per row and more rows than that is taken for
/// `(frames, channels)` (what `soundfile.read` returns for a multi-channel file), not a batch.
const MAX_CHANNELS_GUESS: usize = 8;

/// How an [`Extractor`] computes.
enum Engine {
    /// The CPU backend's extractors, one per thread of a call.
    Cpu(Mutex<Vec<FeatureExtractor>>),
    /// One GPU: its compiled kernel, and a backend (a stream and its buffers) per concurrent
    /// call.
    Cuda {
        factory: Box<CudaBackendFactory>,
        pool: Mutex<Vec<GpuSlot>>,
    },
}

/// A GPU backend and the batch it uploads from: the batch's memory stays allocated and
/// page-locked across calls, so a call copies the clips into it (on every core) and the GPU reads
/// them from there, with no staging copy and no page faults.
struct GpuSlot {
    backend: Box<dyn Backend>,
    batch: AudioBatch,
    /// The features of the part in `batch`.
    out: FeatureBuf,
}

/// The samples of a call, borrowed from the NumPy array.
#[derive(Clone, Copy)]
enum Samples<'a> {
    F32(&'a [f32]),
    I16(&'a [i16]),
}

/// Features of clips in memory; see `melpipe.Extractor` (python/melpipe/__init__.py).
#[pyclass(frozen, module = "melpipe._native")]
pub struct Extractor {
    params: Params,
    geom: Geometry,
    engine: Engine,
    device: String,
    threads: usize,
}

impl Extractor {
    /// The settings: every key of `params` a parameter that concerns samples, `dtype` f32 unless
    /// given.
    fn params(py: Python<'_>, params: Option<&Bound<'_, PyDict>>) -> PyResult<Params> {
        let allowed: Vec<&str> = Params::KEYS
            .iter()
            .copied()
            .filter(|k| !FILE_ONLY.iter().any(|(f, _)| f == k))
            .collect();
        let mut table = match params {
            Some(d) => {
                for (k, why) in FILE_ONLY {
                    if d.contains(*k)? {
                        return Err(PyTypeError::new_err(format!(
                            "Extractor does not take `{k}`: {why}"
                        )));
                    }
                }
                keywords_table(d, &allowed, "Extractor()")?
            }
            None => toml::Table::new(),
        };
        table
            .entry("dtype")
            .or_insert_with(|| toml::Value::String("f32".into()));
        let settings = from_table(py, &table)?;
        settings
            .params
            .validate()
            .map_err(|e| error_to_py(py, &e.into(), false))?;
        Ok(settings.params)
    }

    /// The GPU engine on `ordinal`, or why not.
    fn cuda(params: &Params, ordinal: usize) -> Result<Engine, String> {
        if !melpipe_cuda::driver_library_present() {
            return Err(melpipe_cuda::GpuUnavailable::NoDriver.to_string());
        }
        if !melpipe_cuda::nvrtc_library_present() {
            return Err("the NVRTC library (libnvrtc) could not be loaded: set LD_LIBRARY_PATH to the CUDA lib64 folder (e.g. /usr/local/cuda/lib64)".into());
        }
        let factory =
            Box::new(CudaBackendFactory::new(ordinal, params).map_err(|e| e.to_string())?);
        Ok(Engine::Cuda {
            factory,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// [`Self::cuda`] on a thread that signals do not reach (the kernel is compiled there:
    /// see [`crate::spawn_shielded`]), without the GIL.
    fn cuda_shielded(py: Python<'_>, params: &Params, ordinal: usize) -> Result<Engine, String> {
        let p = params.clone();
        let actions = crate::SignalActions::save();
        let held = crate::HeldSignals::hold();
        let r = py.detach(move || {
            crate::spawn_shielded("melpipe-gpu-start", move || Self::cuda(&p, ordinal))
                .map_err(|e| format!("starting a thread: {e}"))?
                .join()
                .map_err(|_| "the GPU start panicked".to_string())?
        });
        actions.restore();
        drop(held);
        r
    }

    /// Threads a CPU call uses for `clips` clips.
    fn cpu_threads(&self, clips: usize) -> usize {
        let n = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads.min(MAX_THREADS)
        };
        n.clamp(1, clips.max(1))
    }

    /// Features of `clips` clips of `n` samples each into `out` (f32, `clips × rows × vpr`).
    fn cpu(
        &self,
        pool: &Mutex<Vec<FeatureExtractor>>,
        samples: Samples<'_>,
        clips: usize,
        n: usize,
        out: &mut [f32],
    ) -> melpipe_core::Result<()> {
        let rows = self.geom.rows(Some(n));
        let per_clip = rows * self.params.values_per_row();
        if per_clip == 0 || clips == 0 {
            return Ok(());
        }
        let threads = self.cpu_threads(clips);
        let clips_per_thread = clips.div_ceil(threads);
        let len = self.geom.effective_samples(n);
        let take = |pool: &Mutex<Vec<FeatureExtractor>>| -> melpipe_core::Result<FeatureExtractor> {
            let pooled = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match pooled {
                Some(e) => Ok(e),
                None => FeatureExtractor::new(&self.params),
            }
        };
        std::thread::scope(|s| {
            let mut handles = Vec::new();
            for (t, part) in out.chunks_mut(clips_per_thread * per_clip).enumerate() {
                let first = t * clips_per_thread;
                handles.push(s.spawn(move || -> melpipe_core::Result<()> {
                    let mut ext = take(pool)?;
                    let mut buf: Vec<f32> = Vec::new();
                    for (i, o) in part.chunks_mut(per_clip).enumerate() {
                        let c = first + i;
                        let clip: &[f32] = match samples {
                            Samples::F32(s) => {
                                let clip = &s[c * n..(c + 1) * n];
                                // As the reader: only the samples the clip keeps.
                                check_finite(&clip[..n.min(len)], c)?;
                                if n >= len {
                                    &clip[..len]
                                } else {
                                    buf.clear();
                                    buf.extend_from_slice(clip);
                                    buf.resize(len, 0.0);
                                    &buf
                                }
                            }
                            Samples::I16(s) => {
                                // As the decoder scales PCM16 (and the CPU backend a PCM16 batch).
                                let clip = &s[c * n..c * n + n.min(len)];
                                buf.clear();
                                buf.extend(clip.iter().map(|&v| f32::from(v) * (1.0 / 32768.0)));
                                buf.resize(len, 0.0);
                                &buf
                            }
                        };
                        ext.extract(clip, rows, o);
                    }
                    pool.lock().unwrap_or_else(|p| p.into_inner()).push(ext);
                    Ok(())
                }));
            }
            handles
                .into_iter()
                .try_for_each(|h| h.join().unwrap_or_else(|_| Err(panicked())))
        })
    }

    /// Features of `clips` clips of `n` samples each on the GPU, in the stored dtype.
    fn gpu(
        &self,
        factory: &CudaBackendFactory,
        pool: &Mutex<Vec<GpuSlot>>,
        samples: Samples<'_>,
        clips: usize,
        n: usize,
        mut all: FeatureBuf,
    ) -> melpipe_core::Result<FeatureBuf> {
        let rows = self.geom.rows(Some(n));
        let vpr = self.params.values_per_row();
        let len = self.geom.effective_samples(n);
        if all.is_empty() {
            return Ok(all);
        }
        // The CUDA backend takes PCM16 as it is (and scales it as the decoder does).
        let kind = match samples {
            Samples::I16(_) => SampleKind::I16,
            Samples::F32(_) => SampleKind::F32,
        };
        let per_part = (GPU_PART_BYTES / (len.max(1) * kind.size())).max(1);
        let parts: Vec<std::ops::Range<usize>> = (0..clips)
            .step_by(per_part)
            .map(|f| f..(f + per_part).min(clips))
            .collect();
        let take = || -> melpipe_core::Result<GpuSlot> {
            let pooled = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            Ok(match pooled {
                Some(s) => s,
                None => GpuSlot {
                    backend: factory.create(&self.params)?,
                    batch: AudioBatch::default(),
                    out: FeatureBuf::new(self.params.dtype),
                },
            })
        };
        let mut slots = vec![take()?];
        if parts.len() > 1 {
            slots.push(take()?);
        }
        let threads = self.cpu_threads(clips);
        // Copies a part's clips into a slot's batch (page-locked once, while it does not grow).
        let load = |slot: &mut GpuSlot, part: std::ops::Range<usize>| -> melpipe_core::Result<()> {
            let count = part.len();
            let batch = &mut slot.batch;
            batch.clear(kind);
            batch.samples.reserve(count * len);
            slot.backend.prepare(batch);
            match samples {
                Samples::I16(s) => {
                    // SAFETY: fill_raw writes every sample of the room it gets (the clip's
                    // samples, then zeros), and only there.
                    unsafe {
                        batch.samples.extend_by(count * len, |p, _| {
                            fill_raw(p.cast::<i16>(), s, part, n, len, threads, |_, _| Ok(()))
                        })?
                    }
                }
                Samples::F32(s) => {
                    // SAFETY: as above.
                    unsafe {
                        batch.samples.extend_by(count * len, |p, _| {
                            fill_raw(p.cast::<f32>(), s, part, n, len, threads, check_finite)
                        })?
                    }
                }
            }
            batch.files.clear();
            batch.files.extend((0..count).map(|i| BatchFile {
                offset: i * len,
                len,
                rows,
                failed: false,
            }));
            slot.out.resize(count * rows * vpr);
            Ok(())
        };
        let compute = |slot: &mut GpuSlot| -> melpipe_core::Result<()> {
            slot.backend.compute(&slot.batch, &mut slot.out)
        };
        std::thread::scope(|s| -> melpipe_core::Result<()> {
            let mut free = slots.iter_mut();
            let first = free.next().expect("one slot");
            let mut spare = free.next();
            load(first, parts[0].clone())?;
            let mut pending = Some(s.spawn(move || compute(first).map(|()| first)));
            if let (Some(slot), Some(part)) = (spare.as_deref_mut(), parts.get(1)) {
                load(slot, part.clone())?;
            }
            for (i, part) in parts.iter().enumerate() {
                let done = pending
                    .take()
                    .expect("a part in flight")
                    .join()
                    .unwrap_or_else(|_| Err(panicked()))?;
                if i + 1 < parts.len() {
                    let next = spare.take().expect("the next part loaded");
                    pending = Some(s.spawn(move || compute(next).map(|()| next)));
                }
                copy_into(&mut all, part.start * rows * vpr, &done.out);
                if let Some(later) = parts.get(i + 2) {
                    load(done, later.clone())?;
                }
                spare = Some(done);
            }
            Ok(())
        })?;
        let mut kept = pool.lock().unwrap_or_else(|p| p.into_inner());
        for slot in slots {
            if kept.len() < GPU_SLOTS_KEPT {
                kept.push(slot);
            }
        }
        Ok(all)
    }
}

/// Writes clips `range` of `src` (`n` samples each) at `dst`, `len` each (truncated, or
/// zero-padded), on up to `threads` threads, after `check` of each clip's kept samples.
///
/// # Safety
/// `dst` must be valid for writes of `range.len() × len` values of `T`, and nothing else may
/// access that memory during the call.
unsafe fn fill_raw<T: Copy + Send + Sync + Zeroed>(
    dst: *mut T,
    src: &[T],
    range: std::ops::Range<usize>,
    n: usize,
    len: usize,
    threads: usize,
    check: fn(&[T], usize) -> melpipe_core::Result<()>,
) -> melpipe_core::Result<()> {
    /// The destination, sent to the threads (each writes its own clips only).
    #[derive(Clone, Copy)]
    struct Dst<T>(*mut T);
    // SAFETY: the threads write disjoint clips of the memory behind the pointer, which outlives
    // the scope they run in.
    unsafe impl<T> Send for Dst<T> {}
    let keep = n.min(len);
    let count = range.len();
    let per_thread = count.div_ceil(threads.max(1)).max(1);
    let dst = Dst(dst);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..count)
            .step_by(per_thread)
            .map(|first| {
                let last = (first + per_thread).min(count);
                let base = range.start;
                s.spawn(move || -> melpipe_core::Result<()> {
                    let dst = dst;
                    for i in first..last {
                        let c = base + i;
                        let clip = &src[c * n..c * n + keep];
                        check(clip, c)?;
                        // SAFETY: clip i's `len` values lie inside the room (the caller's
                        // promise) and no other thread writes them; `clip` is outside it.
                        unsafe {
                            let d = dst.0.add(i * len);
                            std::ptr::copy_nonoverlapping(clip.as_ptr(), d, keep);
                            std::ptr::write_bytes(d.add(keep), 0, len - keep);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| Err(panicked())))
    })
}

/// Copies `part` into `all` from value `at` (same dtype).
fn copy_into(all: &mut FeatureBuf, at: usize, part: &FeatureBuf) {
    match (all, part) {
        (FeatureBuf::F16(a), FeatureBuf::F16(p)) => a[at..at + p.len()].copy_from_slice(p),
        (FeatureBuf::F32(a), FeatureBuf::F32(p)) => a[at..at + p.len()].copy_from_slice(p),
        _ => unreachable!("one extractor, one dtype"),
    }
}

/// Values of the output, or why it cannot be made.
fn output_values(clips: usize, rows: usize, vpr: usize) -> melpipe_core::Result<usize> {
    clips
        .checked_mul(rows)
        .and_then(|r| r.checked_mul(vpr))
        .filter(|&v| v.checked_mul(4).is_some_and(|b| b <= isize::MAX as usize))
        .ok_or_else(|| {
            melpipe_core::Error::Input(format!(
                "{clips} clips of {rows} rows of {vpr} values are more than memory can hold"
            ))
        })
}

/// Zeroed memory for `n` values (calloc: the pages are written only where the computation
/// writes), or an error instead of the abort of a failed `vec!`.
fn zeroed_vec<T: Zeroed>(n: usize) -> melpipe_core::Result<Vec<T>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let too_large = || {
        melpipe_core::Error::Input(format!(
            "the output ({:.1} GiB) cannot be allocated",
            (n as f64) * std::mem::size_of::<T>() as f64 / (1u64 << 30) as f64
        ))
    };
    let layout = std::alloc::Layout::array::<T>(n).map_err(|_| too_large())?;
    // Beyond the machine's memory an allocation may still succeed (overcommit) and the process
    // be killed while writing it.
    if layout.size() as u64 > physical_memory() {
        return Err(too_large());
    }
    // SAFETY: the layout has a non-zero size (n > 0, T is not zero-sized).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        return Err(too_large());
    }
    // SAFETY: ptr was allocated by the global allocator with the layout of [T; n] (the layout
    // Vec uses for capacity n), and all-zero bytes are a valid T (the `Zeroed` promise), so all
    // n values are initialised.
    Ok(unsafe { Vec::from_raw_parts(ptr, n, n) })
}

/// Bytes of memory of the machine (u64::MAX when unknown).
fn physical_memory() -> u64 {
    // SAFETY: sysconf reads a system value and has no other effect.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (u64::try_from(pages), u64::try_from(page)) {
        (Ok(p), Ok(s)) if p > 0 && s > 0 => p.saturating_mul(s),
        _ => u64::MAX,
    }
}

/// Number types whose all-zero bytes are the value zero.
///
/// # Safety
/// Implement only for such types.
unsafe trait Zeroed {}
// SAFETY: IEEE 754: all-zero bits are +0.0.
unsafe impl Zeroed for f32 {}
// SAFETY: as for f32 (f16 is a u16 of IEEE binary16 bits).
unsafe impl Zeroed for f16 {}
// SAFETY: an integer.
unsafe impl Zeroed for i16 {}

/// A run fails a file whose float samples are not all finite; an extraction refuses them so.
fn check_finite(clip: &[f32], c: usize) -> melpipe_core::Result<()> {
    if clip.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(melpipe_core::Error::Input(format!(
            "samples of clip {c} include NaN or infinity (a run fails such a file)"
        )))
    }
}

/// An output that cannot be allocated, as Python says it.
fn no_memory(e: melpipe_core::Error) -> PyErr {
    PyMemoryError::new_err(match e {
        melpipe_core::Error::Input(m) => m,
        other => other.to_string(),
    })
}

fn panicked() -> melpipe_core::Error {
    melpipe_core::Error::Backend {
        backend: "extract".into(),
        msg: "a thread of the extraction panicked".into(),
    }
}

#[pymethods]
impl Extractor {
    /// Plans the extraction; `device` is `cpu`, `cuda`, `cuda:N` or `auto` (the first GPU if
    /// one can be started, else the CPU).
    #[new]
    #[pyo3(signature = (device="cpu", threads=0, params=None))]
    fn new(
        py: Python<'_>,
        device: &str,
        threads: usize,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let params = Self::params(py, params)?;
        if threads > MAX_THREADS {
            return Err(config_error(
                py,
                format!("threads = {threads}: at most {MAX_THREADS}"),
            ));
        }
        let choice = parse_device(device).map_err(|e| error_to_py(py, &e.into(), false))?;
        let cpu = || Engine::Cpu(Mutex::new(Vec::new()));
        let (engine, name) =
            match choice {
                DeviceChoice::Cpu => (cpu(), "cpu".to_string()),
                DeviceChoice::Cuda(n) => {
                    let engine = Self::cuda_shielded(py, &params, n)
                        .map_err(|why| DeviceError::new_err(format!("backend cuda:{n}: {why}")))?;
                    (engine, format!("cuda:{n}"))
                }
                DeviceChoice::Auto => match Self::cuda_shielded(py, &params, 0) {
                    Ok(engine) => (engine, "cuda:0".to_string()),
                    Err(why) => {
                        tracing::info!("device: cpu (auto: no usable GPU: {why})");
                        (cpu(), "cpu".to_string())
                    }
                },
                DeviceChoice::CudaAll => return Err(config_error(
                    py,
                    "an Extractor computes on one device: give `cuda` or `cuda:N`, not `cuda:all`",
                )),
            };
        if let Engine::Cpu(pool) = &engine {
            // Planned once here, so that a bad combination fails now, not at the first call.
            let first =
                FeatureExtractor::new(&params).map_err(|e| error_to_py(py, &e.into(), false))?;
            pool.lock().unwrap_or_else(|p| p.into_inner()).push(first);
        }
        Ok(Extractor {
            geom: Geometry::new(&params),
            params,
            engine,
            device: name,
            threads,
        })
    }

    /// The device computing: `cpu` or `cuda:N`.
    #[getter]
    fn device(&self) -> String {
        self.device.clone()
    }

    /// The parameters, as JSON (the manifest's `config`).
    #[getter]
    fn params_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.params).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Rows a clip of `samples` samples gives.
    fn rows(&self, samples: usize) -> usize {
        self.geom.rows(Some(samples))
    }

    /// `(n_mels, out_frames)`: the shape of one row.
    #[getter]
    fn row_shape(&self) -> (usize, usize) {
        (self.params.n_mels, self.params.out_frames())
    }

    /// Features of a 1-D clip or a 2-D batch of clips (C-contiguous int16 or float32):
    /// `(rows, n_mels, T)`, the clips' rows one after the other.
    fn extract<'py>(
        &self,
        py: Python<'py>,
        samples: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let arr = samples.cast::<PyUntypedArray>().map_err(|_| {
            PyTypeError::new_err("samples must be a NumPy array (int16 or float32)")
        })?;
        let shape = arr.shape().to_vec();
        let (clips, n) = match shape[..] {
            [n] => (1, n),
            [clips, n] => (clips, n),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "samples must be one clip (1-D) or a batch of clips (2-D), not {}-D",
                    shape.len()
                )))
            }
        };
        if shape.len() == 2 && (1..=MAX_CHANNELS_GUESS).contains(&n) && clips >= 256 * n {
            return Err(PyValueError::new_err(format!(
                "samples of shape {shape:?} look like (frames, channels), as soundfile.read gives a multi-channel file: pass one channel (x[:, 0]), their mean (x.mean(axis=1)), or x.T for a batch of clips"
            )));
        }
        let not_contiguous =
            |_| PyValueError::new_err("samples must be C-contiguous (numpy.ascontiguousarray)");
        let f32s = arr.cast::<PyArrayDyn<f32>>().ok().map(|a| a.readonly());
        let i16s = arr.cast::<PyArrayDyn<i16>>().ok().map(|a| a.readonly());
        let samples = match (&f32s, &i16s) {
            (Some(a), _) => Samples::F32(a.as_slice().map_err(not_contiguous)?),
            (_, Some(a)) => Samples::I16(a.as_slice().map_err(not_contiguous)?),
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "samples must be int16 or float32 (native byte order), not {}",
                    arr.dtype()
                )))
            }
        };
        let per_clip = self.geom.rows(Some(n));
        let rows = clips.saturating_mul(per_clip);
        let (n_mels, frames) = (self.params.n_mels, self.params.out_frames());
        let dims = [rows, n_mels, frames];
        let values = output_values(clips, per_clip, n_mels * frames);
        let shaped = |a: Bound<'py, PyAny>| a.call_method1("reshape", (dims,));
        match &self.engine {
            Engine::Cpu(pool) => {
                let mut out = values.and_then(zeroed_vec::<f32>).map_err(no_memory)?;
                py.detach(|| self.cpu(pool, samples, clips, n, &mut out))
                    .map_err(|e| error_to_py(py, &e.into(), false))?;
                match self.params.dtype {
                    Dtype::F32 => shaped(PyArray1::from_vec(py, out).into_any()),
                    Dtype::F16 => {
                        let mut half = zeroed_vec::<f16>(out.len()).map_err(no_memory)?;
                        py.detach(|| {
                            use half::slice::HalfFloatSliceExt;
                            half.convert_from_f32_slice(&out);
                        });
                        shaped(PyArray1::from_vec(py, half).into_any())
                    }
                }
            }
            Engine::Cuda { factory, pool } => {
                let all = values
                    .and_then(|v| {
                        Ok(match self.params.dtype {
                            Dtype::F32 => FeatureBuf::F32(zeroed_vec(v)?),
                            Dtype::F16 => FeatureBuf::F16(zeroed_vec(v)?),
                        })
                    })
                    .map_err(no_memory)?;
                let out = py
                    .detach(|| self.gpu(factory, pool, samples, clips, n, all))
                    .map_err(|e| error_to_py(py, &e.into(), false))?;
                match out {
                    FeatureBuf::F32(v) => shaped(PyArray1::from_vec(py, v).into_any()),
                    FeatureBuf::F16(v) => shaped(PyArray1::from_vec(py, v).into_any()),
                }
            }
        }
    }
}
