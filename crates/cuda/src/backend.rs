//! The CUDA backend: a factory per device (context, compiled kernel) and a backend per worker
//! thread (its own stream, device buffers and page-locked staging), so that the batches of
//! several threads overlap: the upload of one, the kernel of another, the download of a third.

use crate::batch::pack_batch;
use crate::compile::compile;
use crate::error::{driver_message, GpuUnavailable};
use crate::plan::{KernelKind, KernelPlan, SparseMel, Tables};
use crate::probe::{device_caps, guard, open, DeviceInfo};
use cudarc::driver::{
    result, sys, CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DevicePtr,
    DriverError, LaunchConfig, PushKernelArg,
};
use melpipe_core::backend::{AudioBatch, Backend, BackendFactory, FeatureBuf};
use melpipe_core::config::{Dtype, Params};
use melpipe_core::geometry::Geometry;
use melpipe_core::mel::MelFilterbank;
use melpipe_core::samples::SampleKind;
use melpipe_core::trace;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of one host→device staging chunk. Two chunks alternate: the CPU fills one while the
/// copy engine drains the other.
const CHUNK: usize = 8 << 20;

/// Builds per-thread [`CudaBackend`]s for one GPU and one configuration.
pub struct CudaBackendFactory {
    ctx: Arc<CudaContext>,
    info: DeviceInfo,
    cfg: Params,
    plan: KernelPlan,
    func: CudaFunction,
    /// `logmel_clamp`, when the plan clamps (pool none with top_db in the tiled kernel).
    clamp_func: Option<CudaFunction>,
    /// Multiprocessors of the device.
    sms: usize,
    arch: String,
    /// Mel filters, then (generic kernel) window and twiddles, as 32-bit words.
    consts: Vec<u32>,
    mel: SparseMel,
}

/// Resources the compiled kernel uses, as the driver reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelResources {
    /// Registers per thread.
    pub registers: i32,
    /// Local memory per thread (spills), bytes.
    pub local_bytes: i32,
    /// Static shared memory, bytes.
    pub static_shared_bytes: i32,
}

impl CudaBackendFactory {
    /// Opens `cuda:ordinal` and compiles the kernel for `cfg`, with the mel filterbank of
    /// [`MelFilterbank::new`].
    pub fn new(ordinal: usize, cfg: &Params) -> Result<Self, GpuUnavailable> {
        cfg.validate()
            .map_err(|e| GpuUnavailable::Unsupported(e.to_string()))?;
        let fb = MelFilterbank::new(cfg);
        Self::with_filterbank(ordinal, cfg, &fb.weights)
    }

    /// As [`new`](Self::new), with the filterbank given (`n_freqs × n_mels`, row-major, f64,
    /// torchaudio's `fb`).
    pub fn with_filterbank(
        ordinal: usize,
        cfg: &Params,
        fb: &[f64],
    ) -> Result<Self, GpuUnavailable> {
        cfg.validate()
            .map_err(|e| GpuUnavailable::Unsupported(e.to_string()))?;
        if fb.len() != cfg.n_freqs() * cfg.n_mels {
            return Err(GpuUnavailable::Unsupported(format!(
                "the mel filterbank has {} weights, not n_freqs × n_mels = {}",
                fb.len(),
                cfg.n_freqs() * cfg.n_mels
            )));
        }
        // NVRTC compiles on another thread while the context is created: each takes a good
        // part of the GPU's start, and the compile needs only the device's attributes.
        let (cc, max_shared) = trace::span("gpu-driver-init-caps", ordinal as u64, || {
            device_caps(ordinal)
        })?;
        let plan = KernelPlan::with_shape(cfg, max_shared, crate::plan::TiledShape::from_env())?;
        let tables = Tables::new(cfg);
        let src = plan.source(cfg, &tables);
        let t0 = Instant::now();
        let compiling = std::thread::Builder::new()
            .name(format!("melpipe-nvrtc-{ordinal}"))
            .spawn(move || {
                let r = trace::span("gpu-nvrtc-compile", ordinal as u64, || compile(&src, cc));
                (r, t0.elapsed())
            })
            .map_err(|e| GpuUnavailable::Driver {
                op: "starting the compiler thread",
                msg: e.to_string(),
            })?;
        let opened = trace::span("gpu-context", ordinal as u64, || open(ordinal));
        let ctx_time = t0.elapsed();
        let (compiled, compile_time) = compiling.join().map_err(|_| GpuUnavailable::Driver {
            op: "compiling the kernels",
            msg: "the compiler thread panicked".into(),
        })?;
        let (ctx, info) = opened?;
        let compiled = compiled?;
        tracing::debug!(
            "cuda:{ordinal}: context {:.3} s, NVRTC compile {:.3} s (in parallel)",
            ctx_time.as_secs_f64(),
            compile_time.as_secs_f64()
        );
        trace::span("gpu-load-module", ordinal as u64, || {
            guard("loading the kernels", || {
                let drv = |op: &'static str| move |e| GpuUnavailable::from_driver(op, e);
                // Worker threads wait for their batches in a blocking wait rather than a spin, so
                // the cores stay free for the readers. Best effort: older drivers refuse it.
                let _ = ctx.set_blocking_synchronize();
                let module = ctx
                    .load_module(compiled.image)
                    .map_err(drv("loading the compiled kernels"))?;
                let func = module
                    .load_function(plan.kind.entry())
                    .map_err(drv("finding the kernel"))?;
                let clamp_func = if plan.clamps() {
                    Some(
                        module
                            .load_function("logmel_clamp")
                            .map_err(drv("finding the kernel"))?,
                    )
                } else {
                    None
                };
                let sms = ctx
                    .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
                    .map_err(drv("reading the device's multiprocessor count"))?
                    .max(1) as usize;
                if plan.smem_bytes > 48 * 1024 {
                    func.set_attribute(
                        sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        plan.smem_bytes as i32,
                    )
                    .map_err(drv("raising the kernel's shared memory limit"))?;
                }
                let mel = SparseMel::from_dense(fb, cfg.n_freqs(), cfg.n_mels);
                let mut consts = mel.packed_words();
                if plan.kind == KernelKind::Tiled {
                    for t in [&tables.window, &tables.twiddle_re, &tables.twiddle_im] {
                        consts.extend(t.iter().map(|v| v.to_bits()));
                    }
                    consts.extend(plan.fft.permutation());
                }
                Ok(CudaBackendFactory {
                    ctx: ctx.clone(),
                    info: info.clone(),
                    cfg: cfg.clone(),
                    plan: plan.clone(),
                    func,
                    clamp_func,
                    sms,
                    arch: compiled.arch.clone(),
                    consts,
                    mel,
                })
            })
        })
    }

    /// The device.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The kernel's plan (kind, segments per block, shared memory).
    pub fn plan(&self) -> &KernelPlan {
        &self.plan
    }

    /// The `--gpu-architecture` the kernel was compiled for.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Registers, spills and static shared memory of the compiled kernel.
    pub fn kernel_resources(&self) -> Result<KernelResources, GpuUnavailable> {
        let drv = |e| GpuUnavailable::from_driver("reading kernel attributes", e);
        Ok(KernelResources {
            registers: self.func.num_regs().map_err(drv)?,
            local_bytes: self.func.local_size_bytes().map_err(drv)?,
            static_shared_bytes: self.func.shared_size_bytes().map_err(drv)?,
        })
    }

    /// A backend for one worker thread: its own stream and buffers.
    pub fn create_backend(&self) -> Result<CudaBackend, GpuUnavailable> {
        guard("creating a GPU backend", || {
            let drv = |op: &'static str| move |e| GpuUnavailable::from_driver(op, e);
            let stream = self.ctx.new_stream().map_err(drv("creating a stream"))?;
            let consts = stream
                .clone_htod(&self.consts)
                .map_err(drv("uploading the mel filters"))?;
            let event = |timing: bool| {
                let flags = if timing {
                    sys::CUevent_flags::CU_EVENT_DEFAULT
                } else {
                    sys::CUevent_flags::CU_EVENT_DISABLE_TIMING
                };
                self.ctx
                    .new_event(Some(flags))
                    .map_err(drv("creating an event"))
            };
            Ok(CudaBackend {
                name: format!("cuda:{} {}", self.info.ordinal, self.info.name),
                ctx: self.ctx.clone(),
                geom: Geometry::new(&self.cfg),
                plan: self.plan.clone(),
                func: self.func.clone(),
                clamp_func: self.clamp_func.clone(),
                sms: self.sms,
                mel_words: self.mel.lo.len(),
                mel_weights: self.mel.weights.len(),
                consts,
                dev_in: None,
                dev_out: None,
                dev_work: None,
                dev_rowmax: None,
                staging: PinnedBuf::alloc(&self.ctx, 2 * CHUNK, true)
                    .map_err(drv("allocating page-locked staging memory"))?,
                table_staging: None,
                results: None,
                chunk_done: [event(false)?, event(false)?],
                kernel_start: event(true)?,
                kernel_end: event(true)?,
                table: Vec::new(),
                last: None,
                pin_failed: false,
                stream,
            })
        })
    }

    /// True when `cfg` computes the same features as the configuration this factory compiled.
    fn same_features(&self, cfg: &Params) -> bool {
        let a = &self.cfg;
        a.sample_rate == cfg.sample_rate
            && a.long_win == cfg.long_win
            && a.long_hop == cfg.long_hop
            && a.short_win == cfg.short_win
            && a.short_hop == cfg.short_hop
            && a.n_fft == cfg.n_fft
            && a.win_length == cfg.win_length
            && a.hop_length == cfg.hop_length
            && a.n_mels == cfg.n_mels
            && a.f_min == cfg.f_min
            && a.f_max() == cfg.f_max()
            && a.mel_scale == cfg.mel_scale
            && a.norm == cfg.norm
            && a.pool == cfg.pool
            && a.top_db == cfg.top_db
            && a.dtype == cfg.dtype
    }
}

impl BackendFactory for CudaBackendFactory {
    fn name(&self) -> String {
        format!("cuda:{} {}", self.info.ordinal, self.info.name)
    }

    fn create(&self, cfg: &Params) -> melpipe_core::Result<Box<dyn Backend>> {
        if !self.same_features(cfg) {
            return Err(melpipe_core::Error::Backend {
                backend: self.name(),
                msg: "the configuration differs from the one the kernels were compiled for: \
                      make a new CudaBackendFactory"
                    .to_string(),
            });
        }
        Ok(Box::new(self.create_backend()?))
    }

    fn is_cpu(&self) -> bool {
        false
    }

    fn accepts_i16(&self) -> bool {
        true
    }
}

/// Backends spread over several GPUs (`--device cuda:all`): each [`BackendFactory::create`]
/// call takes the next device in turn, so `streams × devices` worker threads give every GPU
/// `streams` backends.
pub struct MultiGpuFactory {
    devices: Vec<CudaBackendFactory>,
    next: std::sync::atomic::AtomicUsize,
}

impl MultiGpuFactory {
    /// One factory per visible GPU (the kernel is compiled for each).
    pub fn all(cfg: &Params) -> Result<Self, GpuUnavailable> {
        let n = crate::probe::device_count()?;
        if n == 0 {
            return Err(GpuUnavailable::NoDevice);
        }
        Self::new(
            (0..n)
                .map(|i| CudaBackendFactory::new(i, cfg))
                .collect::<Result<_, _>>()?,
        )
    }

    /// Over the given per-device factories (at least one).
    pub fn new(devices: Vec<CudaBackendFactory>) -> Result<Self, GpuUnavailable> {
        if devices.is_empty() {
            return Err(GpuUnavailable::NoDevice);
        }
        Ok(MultiGpuFactory {
            devices,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The per-device factories, in ordinal order.
    pub fn devices(&self) -> &[CudaBackendFactory] {
        &self.devices
    }
}

impl BackendFactory for MultiGpuFactory {
    fn name(&self) -> String {
        let names: Vec<String> = self.devices.iter().map(|d| d.name()).collect();
        names.join(", ")
    }

    fn create(&self, cfg: &Params) -> melpipe_core::Result<Box<dyn Backend>> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.devices.len();
        self.devices[i].create(cfg)
    }

    fn is_cpu(&self) -> bool {
        false
    }

    fn devices(&self) -> usize {
        self.devices.len()
    }

    fn accepts_i16(&self) -> bool {
        true
    }
}

/// Times of the last [`Backend::compute`] call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComputeTiming {
    /// Kernel time on the device (CUDA events), milliseconds.
    pub kernel_ms: f32,
    /// Wall time of the whole call: staging, upload, kernel, download, copy out.
    pub wall: Duration,
    /// Bytes uploaded.
    pub upload_bytes: usize,
    /// Bytes downloaded.
    pub download_bytes: usize,
}

/// Page-locked host memory from `cuMemHostAlloc`.
struct PinnedBuf {
    ptr: *mut u8,
    len: usize,
    ctx: Arc<CudaContext>,
}

// SAFETY: the buffer is plain memory owned by this value; the pointer is not shared with other
// threads except the copy engine, whose accesses the owner orders with stream events.
unsafe impl Send for PinnedBuf {}

impl PinnedBuf {
    /// `write_combined`: fast for the CPU to write and the GPU to read, very slow for the CPU
    /// to read, so only for host→device staging.
    fn alloc(
        ctx: &Arc<CudaContext>,
        len: usize,
        write_combined: bool,
    ) -> Result<Self, DriverError> {
        ctx.bind_to_thread()?;
        let flags = if write_combined {
            sys::CU_MEMHOSTALLOC_WRITECOMBINED
        } else {
            0
        };
        // SAFETY: cuMemHostAlloc returns `len` bytes of page-locked memory or an error; the
        // bytes are uninitialised but only ever handled as u8 after being written.
        let ptr = unsafe { result::malloc_host(len.max(1), flags) }?.cast::<u8>();
        Ok(PinnedBuf {
            ptr,
            len,
            ctx: ctx.clone(),
        })
    }

    /// The bytes. Callers make sure no copy into or out of them is in flight.
    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr/len describe memory this value owns; &mut self excludes other borrows.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for PinnedBuf {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: ptr came from cuMemHostAlloc and is freed once; the owning backend
        // synchronised its stream before dropping, so no copy uses it.
        let _ = unsafe { result::free_host(self.ptr.cast()) };
    }
}

/// One worker thread's GPU backend.
pub struct CudaBackend {
    name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    geom: Geometry,
    plan: KernelPlan,
    func: CudaFunction,
    clamp_func: Option<CudaFunction>,
    sms: usize,
    /// Mels in `consts`.
    mel_words: usize,
    /// Mel weights in `consts`.
    mel_weights: usize,
    consts: CudaSlice<u32>,
    dev_in: Option<CudaSlice<u8>>,
    dev_out: Option<CudaSlice<u8>>,
    /// The tiled kernel's work areas when they do not fit in shared memory.
    dev_work: Option<CudaSlice<u8>>,
    /// Per-row peak power bits for `logmel_clamp`.
    dev_rowmax: Option<CudaSlice<u8>>,
    /// Two write-combined chunks for the samples.
    staging: PinnedBuf,
    /// Write-combined memory for the file table.
    table_staging: Option<PinnedBuf>,
    /// Ordinary page-locked memory the results are downloaded into.
    results: Option<PinnedBuf>,
    chunk_done: [CudaEvent; 2],
    kernel_start: CudaEvent,
    kernel_end: CudaEvent,
    table: Vec<u8>,
    last: Option<ComputeTiming>,
    /// Page-locking a batch failed once (reported once; uploads then use the staging chunks).
    pin_failed: bool,
}

/// Grows a device buffer to at least `bytes` (with headroom, so slowly growing batches do not
/// reallocate every time).
fn ensure_device(
    stream: &Arc<CudaStream>,
    slot: &mut Option<CudaSlice<u8>>,
    bytes: usize,
) -> Result<(), DriverError> {
    if slot.as_ref().is_none_or(|s| s.len() < bytes) {
        *slot = None;
        let n = (bytes + bytes / 8).next_multiple_of(1 << 20);
        // SAFETY: the memory is uninitialised; every byte the kernel reads is uploaded first
        // and every byte downloaded is written by the kernel.
        *slot = Some(unsafe { stream.alloc::<u8>(n) }?);
    }
    Ok(())
}

/// Grows a pinned host buffer to at least `bytes`.
/// Keeps a batch's sample memory registered as page-locked (`cuMemHostRegister`, portable to
/// every context, so any GPU's stream may copy from it) until dropped.
struct HostPin {
    ptr: *mut u8,
    ctx: Arc<CudaContext>,
}

// SAFETY: the registration is process-wide; unregistering from another thread is allowed once
// a context is bound there, which drop does.
unsafe impl Send for HostPin {}
// SAFETY: HostPin has no interior state that shared access could change.
unsafe impl Sync for HostPin {}

impl HostPin {
    /// Page-locks `len` bytes at `ptr` (page-aligned, owned by the batch's sample buffer).
    fn register(ctx: &Arc<CudaContext>, ptr: *mut u8, len: usize) -> Result<Self, DriverError> {
        ctx.bind_to_thread()?;
        // SAFETY: ptr..ptr+len is one live allocation of the sample buffer, which drops this
        // pin (unregistering) before it frees or moves that memory.
        unsafe { sys::cuMemHostRegister_v2(ptr.cast(), len, sys::CU_MEMHOSTREGISTER_PORTABLE) }
            .result()?;
        Ok(HostPin {
            ptr,
            ctx: ctx.clone(),
        })
    }
}

impl Drop for HostPin {
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_ok() {
            // SAFETY: ptr was registered by HostPin::register and not unregistered since; no
            // copy from it is in flight (the backend synchronises its stream before a batch
            // goes back to the readers).
            let _ = unsafe { sys::cuMemHostUnregister(self.ptr.cast()) };
        }
    }
}

fn ensure_pinned(
    ctx: &Arc<CudaContext>,
    slot: &mut Option<PinnedBuf>,
    bytes: usize,
    write_combined: bool,
) -> Result<(), DriverError> {
    if slot.as_ref().is_none_or(|b| b.len < bytes) {
        *slot = None;
        let n = (bytes + bytes / 8).next_multiple_of(1 << 16);
        *slot = Some(PinnedBuf::alloc(ctx, n, write_combined)?);
    }
    Ok(())
}

fn feature_bytes_mut(out: &mut FeatureBuf) -> &mut [u8] {
    // SAFETY: f16 (a u16 newtype) and f32 are plain old data: any byte pattern is a valid
    // value, and the length covers exactly the vector's initialised elements.
    unsafe {
        match out {
            FeatureBuf::F16(v) => {
                std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 2)
            }
            FeatureBuf::F32(v) => {
                std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 4)
            }
        }
    }
}

impl CudaBackend {
    /// Times of the last successful [`Backend::compute`].
    pub fn last_timing(&self) -> Option<ComputeTiming> {
        self.last
    }

    fn run(&mut self, batch: &AudioBatch, out: &mut FeatureBuf) -> Result<(), String> {
        let t0 = Instant::now();
        let dtype_ok = matches!(
            (&*out, self.plan.dtype),
            (FeatureBuf::F16(_), Dtype::F16) | (FeatureBuf::F32(_), Dtype::F32)
        );
        if !dtype_ok {
            return Err(format!(
                "the output buffer's dtype is not the configured {}",
                self.plan.dtype
            ));
        }
        let max_rows = u32::MAX as usize - self.plan.segs_per_block;
        let layout = pack_batch(batch, &self.geom, max_rows, &mut self.table)?;
        let values = layout.rows * self.plan.values_per_row;
        if out.len() != values {
            return Err(format!(
                "the output buffer holds {} values, the batch's {} rows need {values}",
                out.len(),
                layout.rows
            ));
        }
        if layout.rows == 0 {
            return Ok(());
        }
        let out_bytes = values * self.plan.value_size();
        let d = |op: &str| {
            let op = op.to_string();
            move |e: DriverError| match e.0 {
                sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                    GpuUnavailable::OutOfMemory(op).to_string()
                }
                _ => format!("{op}: {}", driver_message(e)),
            }
        };
        self.ctx
            .bind_to_thread()
            .map_err(d("binding the context"))?;
        // A call that failed half-way may have left copies in flight from the staging buffers
        // about to be rewritten; when the stream is idle this returns at once.
        self.stream
            .synchronize()
            .map_err(d("finishing the previous batch"))?;
        let chunks = self.plan.chunks(layout.rows, self.sms);
        let alloc_what = format!(
            "allocating {:.0} MiB for a batch",
            (layout.total_bytes + out_bytes) as f64 / (1 << 20) as f64
        );
        trace::span("gpu-ensure-buffers", 0, || -> Result<(), String> {
            ensure_device(&self.stream, &mut self.dev_in, layout.total_bytes)
                .map_err(d(&alloc_what))?;
            ensure_device(&self.stream, &mut self.dev_out, out_bytes).map_err(d(&alloc_what))?;
            let work_bytes = 4 * self.plan.global_work_floats(layout.rows * chunks);
            if work_bytes > 0 {
                ensure_device(&self.stream, &mut self.dev_work, work_bytes)
                    .map_err(d("allocating the kernel's work area"))?;
            }
            if self.clamp_func.is_some() {
                ensure_device(&self.stream, &mut self.dev_rowmax, 4 * layout.rows)
                    .map_err(d("allocating the rows' peaks"))?;
            }
            ensure_pinned(&self.ctx, &mut self.results, out_bytes, false)
                .map_err(d("allocating page-locked memory for results"))?;
            ensure_pinned(&self.ctx, &mut self.table_staging, self.table.len(), true)
                .map_err(d("allocating page-locked memory for the file table"))
        })?;

        let stream = &self.stream;
        let cu_stream = stream.cu_stream();
        let (Some(dev_in), Some(dev_out), Some(results), Some(table_staging)) = (
            self.dev_in.as_ref(),
            self.dev_out.as_ref(),
            self.results.as_mut(),
            self.table_staging.as_mut(),
        ) else {
            return Err("device buffers missing after allocation".to_string());
        };
        let work_ptr = self.dev_work.as_ref().map_or(0, |w| w.device_ptr(stream).0);
        let rowmax_ptr = self
            .dev_rowmax
            .as_ref()
            .map_or(0, |w| w.device_ptr(stream).0);
        let in_ptr = dev_in.device_ptr(stream).0;
        let out_ptr = dev_out.device_ptr(stream).0;
        let consts_ptr = self.consts.device_ptr(stream).0;

        let src = batch.samples.as_bytes();
        if batch.samples.is_pinned() {
            // The readers decoded into page-locked memory (registered by `prepare`): one
            // copy straight from it.
            // SAFETY: src is page-locked (its pin lives as long as the batch, which the
            // caller holds until this call returns, after the stream is synchronised below);
            // the device range lies inside dev_in (total_bytes ≥ samples_bytes).
            unsafe { result::memcpy_htod_async(in_ptr, src, cu_stream) }
                .map_err(d("uploading samples"))?;
        } else {
            // Upload through the two staging chunks: the memcpy into one overlaps the DMA
            // out of the other.
            let staging = self.staging.as_mut_slice();
            for (i, chunk) in src.chunks(CHUNK).enumerate() {
                let half = i % 2;
                if i >= 2 {
                    self.chunk_done[half]
                        .synchronize()
                        .map_err(d("waiting for an upload"))?;
                }
                let dst = &mut staging[half * CHUNK..half * CHUNK + chunk.len()];
                dst.copy_from_slice(chunk);
                // SAFETY: dst is page-locked memory that nothing writes until chunk_done[half]
                // has completed (waited for above before the next reuse, and the stream is
                // synchronised before this call returns); the device range lies inside dev_in
                // (total_bytes ≥ samples_bytes).
                unsafe { result::memcpy_htod_async(in_ptr + (i * CHUNK) as u64, &*dst, cu_stream) }
                    .map_err(d("uploading samples"))?;
                self.chunk_done[half]
                    .record(stream)
                    .map_err(d("recording an upload"))?;
            }
        }
        let tdst = &mut table_staging.as_mut_slice()[..self.table.len()];
        tdst.copy_from_slice(&self.table);
        // SAFETY: as above; the table lies at table_at..total_bytes inside dev_in.
        unsafe { result::memcpy_htod_async(in_ptr + layout.table_at as u64, &*tdst, cu_stream) }
            .map_err(d("uploading the file table"))?;

        // The kernel.
        let p_samples = in_ptr;
        let p_offsets = in_ptr + layout.offsets_at as u64;
        let p_row0 = in_ptr + layout.row0_at as u64;
        let p_failed = in_ptr + layout.failed_at as u64;
        let num_files = layout.num_files as u32;
        let samples_i16 = u32::from(batch.samples.kind() == SampleKind::I16);
        let total_rows = layout.rows as u32;
        let n_mels = self.mel_words;
        let p_mel_lo = consts_ptr;
        let p_mel_len = consts_ptr + 4 * n_mels as u64;
        let p_mel_off = consts_ptr + 8 * n_mels as u64;
        let p_mel_w = consts_ptr + 12 * n_mels as u64;
        let tables_at = consts_ptr + 4 * (3 * n_mels + self.mel_weights) as u64;
        let n_fft = self.plan.n_fft as u64;
        let p_window = tables_at;
        let p_tw_re = tables_at + 4 * n_fft;
        let p_tw_im = tables_at + 8 * n_fft;
        let p_perm = tables_at + 12 * n_fft;
        let chunks_arg = chunks as u32;
        if self.clamp_func.is_some() {
            // SAFETY: the range lies inside dev_rowmax (4 bytes per row, allocated above).
            unsafe { result::memset_d8_async(rowmax_ptr, 0, 4 * layout.rows, cu_stream) }
                .map_err(d("clearing the rows' peaks"))?;
        }
        let cfg = LaunchConfig {
            grid_dim: (self.plan.launch_blocks(layout.rows * chunks) as u32, 1, 1),
            block_dim: (self.plan.block_threads as u32, 1, 1),
            shared_mem_bytes: self.plan.smem_bytes as u32,
        };
        self.kernel_start
            .record(stream)
            .map_err(d("recording the kernel start"))?;
        let mut launch = stream.launch_builder(&self.func);
        launch
            .arg(&p_samples)
            .arg(&p_offsets)
            .arg(&p_row0)
            .arg(&p_failed)
            .arg(&samples_i16)
            .arg(&num_files)
            .arg(&total_rows)
            .arg(&p_mel_lo)
            .arg(&p_mel_len)
            .arg(&p_mel_off)
            .arg(&p_mel_w);
        if self.plan.kind == KernelKind::Tiled {
            launch
                .arg(&p_window)
                .arg(&p_tw_re)
                .arg(&p_tw_im)
                .arg(&p_perm)
                .arg(&work_ptr)
                .arg(&chunks_arg)
                .arg(&rowmax_ptr);
        }
        launch.arg(&out_ptr);
        // SAFETY: the arguments match the kernel's signature in kernels/logmel.cu (pointers as
        // 64-bit device addresses, counts as u32); every pointer lies inside a live buffer of
        // this backend: samples and table were checked by pack_batch and uploaded above; the
        // tiled kernel's work area (when not in shared memory) holds launch_blocks × WORK_FLOATS
        // floats and its row peaks one word per row (cleared above); the output holds rows ×
        // values_per_row values of the stored dtype, and the kernel reads and writes nothing
        // past total_rows. Shared memory is the plan's, within the limit
        // set on the function.
        unsafe { launch.launch(cfg) }.map_err(d("launching the kernel"))?;
        if let Some(clamp) = &self.clamp_func {
            let values = layout.rows * self.plan.values_per_row;
            let blocks = values.div_ceil(self.plan.block_threads).clamp(1, 8 * 1024);
            let mut launch = stream.launch_builder(clamp);
            launch.arg(&rowmax_ptr).arg(&total_rows).arg(&out_ptr);
            // SAFETY: logmel_clamp(const unsigned*, unsigned, out_t*) in kernels/logmel.cu;
            // rowmax holds total_rows words written by the kernel before it on this stream,
            // and the output total_rows × values_per_row values.
            unsafe {
                launch.launch(LaunchConfig {
                    grid_dim: (blocks as u32, 1, 1),
                    block_dim: (self.plan.block_threads as u32, 1, 1),
                    shared_mem_bytes: 0,
                })
            }
            .map_err(d("launching the clamp kernel"))?;
        }
        self.kernel_end
            .record(stream)
            .map_err(d("recording the kernel end"))?;

        // Download into ordinary page-locked memory (fast for the CPU to read), then copy out.
        let rdst = &mut results.as_mut_slice()[..out_bytes];
        // SAFETY: rdst is page-locked memory owned by this backend, not touched until the
        // stream is synchronised below; the device range holds out_bytes bytes.
        unsafe { result::memcpy_dtoh_async(&mut *rdst, out_ptr, cu_stream) }
            .map_err(d("downloading features"))?;
        trace::span("gpu-wait", 0, || stream.synchronize()).map_err(d("running the kernel"))?;
        trace::span("copy-out", 0, || {
            feature_bytes_mut(out).copy_from_slice(rdst)
        });
        let kernel_ms = self
            .kernel_start
            .elapsed_ms(&self.kernel_end)
            .map_err(d("timing the kernel"))?;
        self.last = Some(ComputeTiming {
            kernel_ms,
            wall: t0.elapsed(),
            upload_bytes: layout.total_bytes,
            download_bytes: out_bytes,
        });
        Ok(())
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn prepare(&mut self, batch: &mut AudioBatch) {
        if batch.samples.is_pinned() {
            return;
        }
        let Some((ptr, len)) = batch.samples.region() else {
            return;
        };
        // Registration costs about as much as a copy of the buffer, once per pooled batch;
        // where it fails (locked-memory limits), uploads go through the staging chunks.
        match guard("page-locking a batch", || {
            HostPin::register(&self.ctx, ptr, len).map_err(|e| GpuUnavailable::Driver {
                op: "page-locking a batch",
                msg: driver_message(e),
            })
        }) {
            Ok(pin) => batch.samples.set_pin(Box::new(pin)),
            Err(e) => {
                if !self.pin_failed {
                    self.pin_failed = true;
                    tracing::debug!("{}: {e}; uploading through staging buffers", self.name);
                }
            }
        }
    }

    fn compute(&mut self, batch: &AudioBatch, out: &mut FeatureBuf) -> melpipe_core::Result<()> {
        let r = guard("computing a batch", || {
            self.run(batch, out).map_err(|msg| GpuUnavailable::Driver {
                op: "computing a batch",
                msg,
            })
        });
        if r.is_err() {
            // A copy from the batch may still be in flight: the pipeline may free the batch
            // (or hand it to a reader) as soon as this returns.
            let _ = self.stream.synchronize();
        }
        r.map_err(|e| melpipe_core::Error::Backend {
            backend: self.name.clone(),
            msg: match e {
                GpuUnavailable::Driver { msg, .. } => msg,
                other => other.to_string(),
            },
        })
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        // Copies may still use the pinned buffers after an error: wait before they are freed.
        let _ = self.stream.synchronize();
    }
}
