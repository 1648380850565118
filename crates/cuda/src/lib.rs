//! The CUDA backend of melpipe: log-mel features of a batch of files in one fused kernel.
//!
//! CUDA is loaded at run time (driver, NVRTC and NVML alike), so the binary that links this
//! crate runs where there is no GPU: [`probe`] then says why, and the pipeline falls back to
//! the CPU.
//!
//! Use:
//! 1. [`probe`]`(ordinal)` / [`device_count`]: is `cuda:N` usable, and what is it.
//! 2. [`CudaBackendFactory::new`]`(ordinal, &cfg)`: opens the device and compiles the kernel
//!    for the configuration (once per device).
//! 3. `factory.create(&cfg)` ([`BackendFactory`](melpipe_core::backend::BackendFactory)) once
//!    per worker thread: each backend has its own stream and buffers, so the threads' batches
//!    overlap on the device.
//! 4. [`GpuMonitor::new`]`(&info.uuid)` for the status line.
//!
//! `--device cuda:all`: [`MultiGpuFactory::all`] hands out backends on each GPU in turn.
#![warn(missing_docs)]

mod backend;
mod batch;
mod compile;
pub mod cost;
mod error;
mod monitor;
pub mod plan;
mod probe;
pub mod select;

pub use backend::{
    ComputeTiming, CudaBackend, CudaBackendFactory, KernelResources, MultiGpuFactory,
};
pub use error::GpuUnavailable;
pub use monitor::{GpuMonitor, GpuStats};
pub use probe::{
    device_count, driver_library_present, end_driver_session, nvrtc_library_present, probe,
    DeviceInfo,
};
pub use select::{select, SelectOptions, Selection};

/// Compiles the kernel of `cfg` with NVRTC for a device of compute capability `cc` allowing
/// `max_smem` bytes of shared memory per block, without a GPU (NVRTC needs none); returns the
/// `--gpu-architecture` used. For tests and tools that check every kernel variant compiles.
pub fn compile_kernel(
    cfg: &melpipe_core::config::Params,
    cc: (u32, u32),
    max_smem: usize,
) -> Result<String, GpuUnavailable> {
    let plan = plan::KernelPlan::new(cfg, max_smem)?;
    let src = plan.source(cfg, &plan::Tables::new(cfg));
    compile::compile(&src, cc).map(|c| c.arch)
}
