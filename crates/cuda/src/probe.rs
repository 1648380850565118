//! Is there a usable GPU, and what is it? Never panics, also where the CUDA libraries are
//! missing: cudarc loads them lazily and panics inside a call when one is absent, so every
//! entry point here checks that the library loads before the first call into it, and runs the
//! calls under `catch_unwind` as a last guard (a driver too old for a symbol, say).

use crate::error::{driver_message, GpuUnavailable};
use cudarc::driver::{result, sys, CudaContext};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Every context [`open`] made, to know when the last one is gone ([`end_driver_session`]).
static OPENED: Mutex<Vec<Weak<CudaContext>>> = Mutex::new(Vec::new());

/// What the pipeline and the user need to know about one GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// CUDA ordinal (`cuda:N`).
    pub ordinal: usize,
    /// Marketing name ("NVIDIA H100 80GB HBM3").
    pub name: String,
    /// Compute capability (9, 0 for an H100).
    pub compute_capability: (u32, u32),
    /// Device memory, bytes.
    pub total_memory: u64,
    /// Streaming multiprocessors.
    pub multiprocessors: u32,
    /// Shared memory a block may use with the opt-in attribute, bytes.
    pub max_shared_per_block: usize,
    /// "GPU-xxxxxxxx-…", as NVML and nvidia-smi print it.
    pub uuid: String,
    /// CUDA version the driver supports (13, 0).
    pub driver_version: (u32, u32),
    /// Version of the NVRTC library that compiles the kernels.
    pub nvrtc_version: (u32, u32),
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cuda:{} {} (sm_{}{}, {:.1} GiB, {} SMs, driver CUDA {}.{}, NVRTC {}.{})",
            self.ordinal,
            self.name,
            self.compute_capability.0,
            self.compute_capability.1,
            self.total_memory as f64 / (1u64 << 30) as f64,
            self.multiprocessors,
            self.driver_version.0,
            self.driver_version.1,
            self.nvrtc_version.0,
            self.nvrtc_version.1,
        )
    }
}

/// True when libcuda can be loaded (checked once per process).
pub fn driver_library_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        // SAFETY: dlopen of the driver library by its usual names; loading it runs only the
        // library's own initialisers, and a failure is reported as false.
        catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false)
    })
}

/// True when libnvrtc can be loaded (checked once per process).
pub fn nvrtc_library_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        // SAFETY: as for the driver library above.
        catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false)
    })
}

/// Runs `f`, turning a panic inside cudarc (a missing symbol) into an error.
pub(crate) fn guard<T>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, GpuUnavailable>,
) -> Result<T, GpuUnavailable> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a CUDA library call panicked".to_string());
            Err(GpuUnavailable::Driver { op, msg })
        }
    }
}

/// Loads and initialises the driver.
fn init_driver() -> Result<(), GpuUnavailable> {
    if !driver_library_present() {
        return Err(GpuUnavailable::NoDriver);
    }
    result::init().map_err(|e| match e.0 {
        sys::CUresult::CUDA_ERROR_NO_DEVICE => GpuUnavailable::NoDevice,
        _ => GpuUnavailable::DriverInit(driver_message(e)),
    })
}

/// Number of GPUs the driver sees.
pub fn device_count() -> Result<usize, GpuUnavailable> {
    guard("counting GPUs", || {
        init_driver()?;
        let n = result::device::get_count()
            .map_err(|e| GpuUnavailable::from_driver("counting GPUs", e))?;
        Ok(n.max(0) as usize)
    })
}

/// Checks that `cuda:ordinal` is usable (driver, device, NVRTC) and describes it.
pub fn probe(ordinal: usize) -> Result<DeviceInfo, GpuUnavailable> {
    open(ordinal).map(|(_, info)| info)
}

/// Initialises the driver and checks that `cuda:ordinal` exists.
fn check_ordinal(ordinal: usize) -> Result<(), GpuUnavailable> {
    let count = device_count()?;
    if count == 0 {
        return Err(GpuUnavailable::NoDevice);
    }
    if ordinal >= count {
        return Err(GpuUnavailable::OrdinalOutOfRange { ordinal, count });
    }
    Ok(())
}

/// Opens the primary context of `cuda:ordinal` after the checks of [`probe`].
pub(crate) fn open(ordinal: usize) -> Result<(Arc<CudaContext>, DeviceInfo), GpuUnavailable> {
    check_ordinal(ordinal)?;
    guard("opening the GPU", || {
        let drv = |op: &'static str| move |e| GpuUnavailable::from_driver(op, e);
        let ctx = CudaContext::new(ordinal).map_err(drv("creating a CUDA context"))?;
        OPENED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&ctx));
        let name = ctx.name().map_err(drv("reading the device name"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(drv("reading the compute capability"))?;
        let total_memory = ctx.total_mem().map_err(drv("reading the memory size"))? as u64;
        let attr = |a| ctx.attribute(a).map_err(drv("reading a device attribute"));
        let multiprocessors =
            attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        let max_shared_per_block =
            attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?
                as usize;
        let uuid = format_uuid(&ctx.uuid().map_err(drv("reading the device UUID"))?.bytes);
        let mut v = 0i32;
        // SAFETY: cuDriverGetVersion writes one int through a valid pointer; the driver is
        // initialised (open() ran init_driver first).
        unsafe { sys::cuDriverGetVersion(&mut v) }
            .result()
            .map_err(drv("reading the driver version"))?;
        let driver_version = ((v / 1000) as u32, ((v % 1000) / 10) as u32);
        let nvrtc_version = nvrtc_version()?;
        Ok((
            ctx,
            DeviceInfo {
                ordinal,
                name,
                compute_capability: (major as u32, minor as u32),
                total_memory,
                multiprocessors,
                max_shared_per_block,
                uuid,
                driver_version,
                nvrtc_version,
            },
        ))
    })
}

/// Compute capability and opt-in shared memory per block of `cuda:ordinal`, read without a
/// context (so the kernels can compile while the context is created).
pub(crate) fn device_caps(ordinal: usize) -> Result<((u32, u32), usize), GpuUnavailable> {
    check_ordinal(ordinal)?;
    guard("reading the device's attributes", || {
        let drv = |op: &'static str| move |e| GpuUnavailable::from_driver(op, e);
        let dev = result::device::get(ordinal as i32).map_err(drv("opening the device"))?;
        let attr = |a| {
            // SAFETY: dev is a valid device handle of an initialised driver.
            unsafe { result::device::get_attribute(dev, a) }
                .map_err(drv("reading a device attribute"))
        };
        use sys::CUdevice_attribute as A;
        let major = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let smem = attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?;
        Ok(((major as u32, minor as u32), smem.max(0) as usize))
    })
}

/// NVRTC's version, or why it cannot be loaded.
pub(crate) fn nvrtc_version() -> Result<(u32, u32), GpuUnavailable> {
    if !nvrtc_library_present() {
        return Err(GpuUnavailable::NoNvrtc);
    }
    let (mut major, mut minor) = (0i32, 0i32);
    // SAFETY: nvrtcVersion writes two ints through valid pointers; the library is loaded.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| GpuUnavailable::Driver {
            op: "reading the NVRTC version",
            msg: e.to_string(),
        })?;
    Ok((major as u32, minor as u32))
}

/// "GPU-" + the 16 UUID bytes as 8-4-4-4-12 hex digits, as NVML names devices.
pub(crate) fn format_uuid(bytes: &[std::ffi::c_char; 16]) -> String {
    let b: Vec<u8> = bytes.iter().map(|&c| c as u8).collect();
    let hex =
        |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// Ends this process's use of the CUDA driver ahead of its exit, once every context opened here
/// is gone: the process's descriptors of `/dev/nvidia-uvm` are replaced by `/dev/null`. Closing
/// the last of them runs the unified-memory driver's per-process teardown (0.035–0.056 s on the
/// H100 machine, most of it an `rcu_barrier`) now, on the calling thread, rather than in the
/// process's exit, where nothing can overlap it (`bench/cuda_start.c teardown-dup2`: the exit
/// then costs 0.010–0.021 s instead of 0.057–0.077 s). `dup2` rather than `close` keeps the
/// descriptor numbers taken, so a stale use by the driver's exit handlers reaches `/dev/null`,
/// never a file opened since. Returns whether it did so: false while a context lives, when no
/// such descriptor is open, or when `/proc/self/fd` cannot be read. A context that another
/// thread is still tearing down (the last page-locked batch dropped there) is waited for, up to
/// `wait`.
///
/// # Safety
/// No CUDA call may follow in this process (the driver's unified-memory state is gone); meant
/// for a command-line run that has given its GPUs back and is about to exit.
pub unsafe fn end_driver_session(wait: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + wait;
    loop {
        let opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
        if opened.is_empty() {
            return false;
        }
        if opened.iter().all(|w| w.strong_count() == 0) {
            break;
        }
        drop(opened);
        if std::time::Instant::now() >= until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| {
                t.as_os_str()
                    .as_encoded_bytes()
                    .starts_with(b"/dev/nvidia-uvm")
            })
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    if fds.is_empty() {
        return false;
    }
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return false;
    };
    for fd in fds {
        use std::os::fd::AsRawFd;
        // SAFETY: replaces a descriptor this process holds (the driver's, unused from now on by
        // the caller's contract) with /dev/null; dup2 has no memory effects.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_driver_is_an_error_not_a_panic() {
        // On a machine without the driver (CI, the development machine) every entry point must
        // say so; on a GPU machine they must succeed or give one of the clear reasons.
        let r = probe(0);
        if !driver_library_present() {
            assert_eq!(r.clone().unwrap_err(), GpuUnavailable::NoDriver);
            let msg = r.unwrap_err().to_string();
            assert!(
                msg.contains("no CUDA driver") && msg.contains("--device cpu"),
                "{msg}"
            );
            assert_eq!(device_count().unwrap_err(), GpuUnavailable::NoDriver);
        } else {
            match r {
                Ok(info) => assert!(info.to_string().starts_with("cuda:0 ")),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn ordinal_out_of_range_names_the_valid_ones() {
        let e = GpuUnavailable::OrdinalOutOfRange {
            ordinal: 3,
            count: 2,
        };
        assert_eq!(
            e.to_string(),
            "cuda:3 does not exist: 2 GPU(s) visible, cuda:0 to cuda:1"
        );
        if driver_library_present() {
            if let Ok(n) = device_count() {
                assert!(matches!(
                    probe(n + 5),
                    Err(GpuUnavailable::OrdinalOutOfRange { .. })
                ));
            }
        }
    }

    #[test]
    fn nvrtc_message_says_how_to_fix_it() {
        let msg = GpuUnavailable::NoNvrtc.to_string();
        assert!(msg.contains("LD_LIBRARY_PATH") && msg.contains("/usr/local/cuda/lib64"));
    }

    #[test]
    fn guard_turns_a_panic_into_an_error() {
        // The default hook prints the panic message; the test only checks what guard returns.
        let r: Result<(), _> = guard("testing", || panic!("Missing symbol cuFoo"));
        match r {
            Err(GpuUnavailable::Driver { op, msg }) => {
                assert_eq!(op, "testing");
                assert!(msg.contains("cuFoo"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn uuid_is_formatted_as_nvml_expects() {
        let mut b = [0 as std::ffi::c_char; 16];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8 * 17) as std::ffi::c_char;
        }
        assert_eq!(format_uuid(&b), "GPU-00112233-4455-6677-8899-aabbccddeeff");
    }
}
