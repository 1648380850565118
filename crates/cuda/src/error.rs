//! Why the GPU cannot be used, in words a user can act on.

use cudarc::driver::{sys::CUresult, DriverError};

/// Why a GPU is unavailable or a GPU backend could not be built. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuUnavailable {
    /// libcuda could not be loaded.
    #[error(
        "no CUDA driver: libcuda.so could not be loaded (no NVIDIA driver on this machine, or it \
         is not visible in this container); use --device cpu"
    )]
    NoDriver,
    /// libcuda loaded but refused to initialise.
    #[error(
        "the CUDA driver did not initialise ({0}): check that the NVIDIA kernel module is loaded \
         (nvidia-smi) and the driver supports CUDA 13; or use --device cpu"
    )]
    DriverInit(String),
    /// The driver sees no GPU.
    #[error(
        "the CUDA driver found no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES); use --device cpu"
    )]
    NoDevice,
    /// `cuda:N` with N past the last GPU.
    #[error("cuda:{ordinal} does not exist: {count} GPU(s) visible, cuda:0 to cuda:{}", count.saturating_sub(1))]
    OrdinalOutOfRange {
        /// The ordinal asked for.
        ordinal: usize,
        /// GPUs visible.
        count: usize,
    },
    /// libnvrtc (the run-time compiler of the kernels) could not be loaded.
    #[error(
        "NVRTC (libnvrtc.so, CUDA's run-time compiler, needed to build the kernels) could not be \
         loaded: set LD_LIBRARY_PATH to the CUDA libraries, e.g. \
         `export LD_LIBRARY_PATH=/usr/local/cuda/lib64`, or use --device cpu"
    )]
    NoNvrtc,
    /// NVRTC rejected the kernel source (a melpipe bug).
    #[error("compiling the GPU kernels failed (a melpipe bug, please report it): {0}")]
    Compile(String),
    /// The device ran out of memory.
    #[error(
        "out of GPU memory {0}: lower files_per_task or streams, or free the GPU (nvidia-smi)"
    )]
    OutOfMemory(String),
    /// The configuration is outside what the GPU kernels handle.
    #[error("this configuration is not supported on the GPU: {0}")]
    Unsupported(String),
    /// Any other driver failure.
    #[error("CUDA driver error while {op}: {msg}")]
    Driver {
        /// What was being done.
        op: &'static str,
        /// The driver's message.
        msg: String,
    },
}

impl GpuUnavailable {
    /// Maps a driver error met while doing `op` to the most helpful variant.
    pub(crate) fn from_driver(op: &'static str, e: DriverError) -> Self {
        match e.0 {
            CUresult::CUDA_ERROR_NO_DEVICE => GpuUnavailable::NoDevice,
            CUresult::CUDA_ERROR_OUT_OF_MEMORY => GpuUnavailable::OutOfMemory(op.to_string()),
            CUresult::CUDA_ERROR_NOT_INITIALIZED
            | CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
            | CUresult::CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE
            | CUresult::CUDA_ERROR_OPERATING_SYSTEM => {
                GpuUnavailable::DriverInit(driver_message(e))
            }
            _ => GpuUnavailable::Driver {
                op,
                msg: driver_message(e),
            },
        }
    }
}

/// "CUDA_ERROR_X: description" for a driver error.
pub(crate) fn driver_message(e: DriverError) -> String {
    let name = e
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0));
    match e.error_string() {
        Ok(s) => format!("{name}: {}", s.to_string_lossy()),
        Err(_) => name,
    }
}

impl From<GpuUnavailable> for melpipe_core::Error {
    fn from(e: GpuUnavailable) -> Self {
        melpipe_core::Error::Backend {
            backend: "cuda".to_string(),
            msg: e.to_string(),
        }
    }
}
