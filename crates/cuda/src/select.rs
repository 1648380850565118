//! Backend selection for a run: the `device` run option turned into a [`BackendFactory`], the
//! same way for every front end (the `melpipe` binary, a Python package).
//!
//! `auto` takes the first GPU when the kernel driver shows one and libcuda and libnvrtc load,
//! else the CPU. A GPU starts on a thread of its own (driver initialisation, context, the NVRTC
//! compile of the kernels: a few hundred milliseconds) while the pipeline already discovers and
//! reads files; its first user waits for it. If it fails to start, `auto` computes on the CPU
//! with a warning, and `cuda`, `cuda:N` or `cuda:all` stop the run with the reason. The pipeline
//! gives the GPU back as soon as its last backend is gone ([`BackendFactory::release`]), on a
//! thread of its own, while the run commits.
//!
//! The caller sets `CUDA_DEVICE_MAX_CONNECTIONS` (the `melpipe` binary sets 1 unless the user
//! chose; docs/PERFORMANCE.md, 'Design: one hardware queue per context') before calling
//! [`select`]: the driver reads it when the context is created.

use crate::{CudaBackendFactory, GpuMonitor, MultiGpuFactory};
use melpipe_core::backend::{Backend, BackendFactory};
use melpipe_core::config::{DeviceChoice, Params};
use melpipe_core::dsp::CpuBackendFactory;
use melpipe_core::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;

/// A moment of the GPU's life a front end may want to log ("GPU backend started", "GPU given
/// back", "GPU given back, driver session ended"), or "no GPU to start" when [`select`] chose
/// the CPU: after one of "GPU backend started" and "no GPU to start", no kernel is compiled.
pub type OnEvent = Arc<dyn Fn(&'static str) + Send + Sync>;

/// What [`select`] may do besides choosing.
#[derive(Clone, Default)]
pub struct SelectOptions {
    /// Told of the GPU's start and release, from the threads that do them.
    pub on_event: Option<OnEvent>,
    /// End the CUDA driver's session once the GPU is given back, skipping its exit handlers
    /// later: only for a process that makes no CUDA call after the run (the `melpipe` binary,
    /// unless `MELPIPE_CLEAN_EXIT=1`).
    pub end_driver_after_release: bool,
}

/// A utilisation line of the run's GPUs for a status line (None until they started, or when
/// nothing can be read).
pub type GpuProbe = Box<dyn Fn() -> Option<String> + Send>;

/// A chosen backend.
pub struct Selection {
    /// Makes the run's backends; give it to [`melpipe_core::pipeline::run`].
    pub factory: Box<dyn BackendFactory>,
    /// For GPUs: their utilisation, for a status line.
    pub gpu_probe: Option<GpuProbe>,
}

/// Why a GPU cannot be used, as the messages of `--device` say it.
type Why = String;

/// Picks the backend for `device`; `auto` falls back to the CPU and says why (info log now, a
/// warning if a started GPU fails later). `cuda`, `cuda:N` and `cuda:all` that cannot be used
/// are [`Error::Backend`].
pub fn select(device: DeviceChoice, params: &Params, opts: &SelectOptions) -> Result<Selection> {
    let cpu = || Selection {
        factory: Box::new(CpuBackendFactory),
        gpu_probe: None,
    };
    let unusable = |dev: String, why: Why| Error::Backend {
        backend: dev,
        msg: why,
    };
    let no_gpu = || {
        if let Some(f) = &opts.on_event {
            f("no GPU to start");
        }
    };
    match device {
        DeviceChoice::Cpu => {
            no_gpu();
            Ok(cpu())
        }
        DeviceChoice::Auto => {
            // The cores this process may use (cgroup limits and affinity included): the CPU
            // backend computes on as many threads by default.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let estimate = gpu_present().then(|| crate::cost::Estimate::new(params, cores));
            if let Some(e) = estimate.as_ref().filter(|e| !e.gpu_wins()) {
                let why = e.reason();
                tracing::info!("device: cpu (auto, {why})");
                no_gpu();
                return Ok(Selection {
                    factory: Box::new(Chosen {
                        inner: Box::new(CpuBackendFactory),
                        why: format!("auto: cpu, {why}"),
                    }),
                    gpu_probe: None,
                });
            }
            let why = estimate.map_or_else(
                || "an NVIDIA GPU and driver are present".to_string(),
                |e| e.reason(),
            );
            match gpu_backend(params, Some(0), true, opts) {
                Ok(sel) => {
                    tracing::info!("device: cuda:0 (auto, {why})");
                    Ok(Selection {
                        factory: Box::new(Chosen {
                            inner: sel.factory,
                            why: format!("auto: cuda:0, {why}"),
                        }),
                        gpu_probe: sel.gpu_probe,
                    })
                }
                Err(no) => {
                    tracing::info!("device: cpu (auto: no usable GPU: {no})");
                    no_gpu();
                    Ok(Selection {
                        factory: Box::new(Chosen {
                            inner: Box::new(CpuBackendFactory),
                            why: format!("auto: no usable GPU: {no}"),
                        }),
                        gpu_probe: None,
                    })
                }
            }
        }
        DeviceChoice::Cuda(n) => {
            gpu_backend(params, Some(n), false, opts).map_err(|w| unusable(format!("cuda:{n}"), w))
        }
        DeviceChoice::CudaAll => {
            gpu_backend(params, None, false, opts).map_err(|w| unusable("cuda:all".into(), w))
        }
    }
}

/// Whether a GPU could be started at all (its libraries load and the kernel driver shows one):
/// only then is choosing the CPU for the parameters worth saying.
fn gpu_present() -> bool {
    crate::driver_library_present() && crate::nvrtc_library_present() && nvidia_gpu_visible()
}

/// A factory chosen by `auto`, with the reason the manifest records.
struct Chosen {
    inner: Box<dyn BackendFactory>,
    why: String,
}

impl BackendFactory for Chosen {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn create(&self, cfg: &Params) -> Result<Box<dyn Backend>> {
        self.inner.create(cfg)
    }

    fn is_cpu(&self) -> bool {
        self.inner.is_cpu()
    }

    fn devices(&self) -> usize {
        self.inner.devices()
    }

    fn accepts_i16(&self) -> bool {
        self.inner.accepts_i16()
    }

    fn fell_back_to_cpu(&self) -> bool {
        self.inner.fell_back_to_cpu()
    }

    fn choice(&self) -> Option<String> {
        if self.inner.fell_back_to_cpu() {
            return Some("auto: cpu, the GPU could not be started (see device)".to_string());
        }
        Some(self.why.clone())
    }

    fn release(&self) {
        self.inner.release()
    }
}

/// Whether the kernel driver shows an NVIDIA GPU, without initialising CUDA (which takes about
/// 0.1 s): `/proc/driver/nvidia/gpus` has an entry, or `/dev/nvidia0` exists.
fn nvidia_gpu_visible() -> bool {
    std::fs::read_dir("/proc/driver/nvidia/gpus").is_ok_and(|mut d| d.next().is_some())
        || std::path::Path::new("/dev/nvidia0").exists()
}

/// The CUDA backend on one GPU (`Some(ordinal)`) or all of them (`None`).
///
/// Only the libraries are checked here (and, for `auto`, that the kernel driver shows a GPU).
/// The rest happens on the build thread (see the module doc). `cuda:all` counts the devices
/// first: the pipeline starts compute threads per device.
fn gpu_backend(
    params: &Params,
    ordinal: Option<usize>,
    fallback: bool,
    opts: &SelectOptions,
) -> Result<Selection, Why> {
    if !crate::driver_library_present() {
        return Err(crate::GpuUnavailable::NoDriver.to_string());
    }
    if !crate::nvrtc_library_present() {
        return Err("the NVRTC library (libnvrtc) could not be loaded: set LD_LIBRARY_PATH to the CUDA lib64 folder (e.g. /usr/local/cuda/lib64)".into());
    }
    if fallback && !nvidia_gpu_visible() {
        return Err("the NVIDIA kernel driver shows no GPU".into());
    }
    let count = match ordinal {
        Some(_) => None,
        None => {
            let n = crate::device_count().map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("no CUDA device is visible".into());
            }
            Some(n)
        }
    };
    let owned = params.clone();
    let on_event = opts.on_event.clone();
    let build = std::thread::spawn(move || -> Building {
        let r = build_gpu(&owned, ordinal);
        if let Some(f) = &on_event {
            f("GPU backend started");
        }
        r
    });
    let lazy = Arc::new(LazyFactory {
        build: Mutex::new(Some(build)),
        built: OnceLock::new(),
        releasing: Mutex::new(None),
        devices: count.unwrap_or(1),
        label: ordinal.map_or("cuda:all".to_string(), |n| format!("cuda:{n}")),
        fallback,
        warned: AtomicBool::new(false),
        opts: opts.clone(),
    });
    let watch = Arc::clone(&lazy);
    let monitors: OnceLock<Vec<GpuMonitor>> = OnceLock::new();
    let gpu_probe: GpuProbe = Box::new(move || {
        let Ok(started) = watch.built.get()? else {
            return None;
        };
        let ms = monitors.get_or_init(|| {
            started
                .uuids
                .iter()
                .filter_map(|u| GpuMonitor::new(u))
                .collect()
        });
        let parts: Vec<String> = ms
            .iter()
            .filter_map(|m| m.sample().map(|s| s.to_string()))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" | "))
    });
    Ok(Selection {
        factory: Box::new(SharedLazy(lazy)),
        gpu_probe: Some(gpu_probe),
    })
}

/// Opens the GPU(s) and compiles the kernels (on the build thread).
fn build_gpu(params: &Params, ordinal: Option<usize>) -> Building {
    match ordinal {
        // The device count and ordinal are checked there, with messages that say what to do.
        Some(n) => {
            let f = CudaBackendFactory::new(n, params).map_err(|e| e.to_string())?;
            let uuid = f.info().uuid.clone();
            Ok((Box::new(f), vec![uuid]))
        }
        None => {
            let f = MultiGpuFactory::all(params).map_err(|e| e.to_string())?;
            let uuids = f.devices().iter().map(|d| d.info().uuid.clone()).collect();
            Ok((Box::new(f), uuids))
        }
    }
}

/// A started GPU backend factory.
struct Started {
    /// Taken out by [`BackendFactory::release`] to give the device back.
    factory: RwLock<Option<Box<dyn BackendFactory>>>,
    name: String,
    uuids: Vec<String>,
}

type Built = Result<Started, Why>;
/// What the build thread returns: the factory and the GPUs' UUIDs, or why the GPU did not start.
type Building = Result<(Box<dyn BackendFactory>, Vec<String>), Why>;

/// A GPU backend factory being built on another thread; its users wait for it.
struct LazyFactory {
    build: Mutex<Option<JoinHandle<Building>>>,
    built: OnceLock<Built>,
    /// The thread tearing the GPU state down while the run commits (joined on drop).
    releasing: Mutex<Option<JoinHandle<()>>>,
    devices: usize,
    label: String,
    /// `auto`: compute on the CPU if the GPU cannot be started.
    fallback: bool,
    /// The fallback was announced.
    warned: AtomicBool,
    opts: SelectOptions,
}

impl LazyFactory {
    fn get(&self) -> &Built {
        self.built.get_or_init(|| {
            let handle = self.build.lock().unwrap_or_else(|p| p.into_inner()).take();
            match handle.map(|h| h.join()) {
                Some(Ok(r)) => r.map(|(f, uuids)| Started {
                    name: f.name(),
                    factory: RwLock::new(Some(f)),
                    uuids,
                }),
                Some(Err(_)) => Err("starting the GPU backend panicked".into()),
                None => Err("the GPU backend was not started".into()),
            }
        })
    }
}

impl Drop for LazyFactory {
    fn drop(&mut self) {
        let releasing = self.releasing.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = releasing.take() {
            let _ = h.join();
        }
    }
}

/// [`LazyFactory`] shared with the status line's probe.
struct SharedLazy(Arc<LazyFactory>);

impl BackendFactory for SharedLazy {
    fn name(&self) -> String {
        match self.0.get() {
            Ok(started) => started.name.clone(),
            Err(why) if self.0.fallback => {
                format!("cpu (auto: the GPU could not be started: {why})")
            }
            Err(_) => self.0.label.clone(),
        }
    }

    fn create(&self, cfg: &Params) -> Result<Box<dyn Backend>> {
        match self.0.get() {
            Ok(started) => match &*started.factory.read().unwrap_or_else(|p| p.into_inner()) {
                Some(f) => f.create(cfg),
                None => Err(Error::Backend {
                    backend: started.name.clone(),
                    msg: "the GPU was already given back".into(),
                }),
            },
            Err(why) if self.0.fallback => {
                if !self.0.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "device auto: the GPU could not be started ({why}); computing on the CPU instead (pass --device cpu to skip the GPU, or --device cuda to make this an error)"
                    );
                }
                CpuBackendFactory.create(cfg)
            }
            Err(why) => Err(Error::Backend {
                backend: self.0.label.clone(),
                msg: why.clone(),
            }),
        }
    }

    fn is_cpu(&self) -> bool {
        false
    }

    fn devices(&self) -> usize {
        self.0.devices
    }

    fn accepts_i16(&self) -> bool {
        // Only GPU factories are built lazily; readers start before the build ends.
        true
    }

    fn fell_back_to_cpu(&self) -> bool {
        self.0.fallback && self.0.get().is_err()
    }

    fn release(&self) {
        // Only a GPU that was started (a run with nothing to compute may end before that).
        let Some(Ok(started)) = self.0.built.get() else {
            return;
        };
        let taken = started
            .factory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(f) = taken {
            let opts = self.0.opts.clone();
            let h = std::thread::spawn(move || {
                melpipe_core::trace::span("gpu-release", 0, || drop(f));
                // SAFETY: the caller promised (`end_driver_after_release`) that the process
                // makes no CUDA call once its GPUs are given back; what is left is its commit
                // and its exit. Otherwise the driver is left to end as it would by itself.
                let ended = opts.end_driver_after_release
                    && melpipe_core::trace::span("gpu-driver-end", 0, || unsafe {
                        crate::end_driver_session(std::time::Duration::from_millis(500))
                    });
                if let Some(f) = &opts.on_event {
                    f(if ended {
                        "GPU given back, driver session ended"
                    } else {
                        "GPU given back"
                    });
                }
            });
            *self.0.releasing.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
        }
    }
}
