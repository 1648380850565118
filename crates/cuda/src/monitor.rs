//! GPU utilisation and memory for the status line, through NVML (libnvidia-ml, loaded at run
//! time). Every failure is `None`: the status line then leaves the GPU fields out.

use nvml_wrapper::Nvml;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// One reading of a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuStats {
    /// Percent of the last sample period in which a kernel ran.
    pub utilization_percent: u32,
    /// Device memory in use (all processes), bytes.
    pub memory_used: u64,
    /// Device memory, bytes.
    pub memory_total: u64,
}

impl std::fmt::Display for GpuStats {
    /// "GPU 85% VRAM 3.1/79.6 GB", for the status line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GPU {}% VRAM {:.1}/{:.1} GB",
            self.utilization_percent,
            self.memory_used as f64 / 1e9,
            self.memory_total as f64 / 1e9
        )
    }
}

/// Reads a GPU's utilisation and memory. Cheap to call once a second.
pub struct GpuMonitor {
    nvml: Nvml,
    uuid: String,
}

impl GpuMonitor {
    /// A monitor of the GPU with this UUID ([`crate::DeviceInfo::uuid`]: NVML's order of
    /// devices can differ from CUDA's, the UUID cannot). `None` when NVML is unavailable or
    /// does not know the device.
    pub fn new(uuid: &str) -> Option<Self> {
        let nvml = catch_unwind(Nvml::init).ok()?.ok()?;
        let m = GpuMonitor {
            nvml,
            uuid: uuid.to_string(),
        };
        m.sample()?;
        Some(m)
    }

    /// The current reading, `None` if NVML fails.
    pub fn sample(&self) -> Option<GpuStats> {
        catch_unwind(AssertUnwindSafe(|| {
            let dev = self.nvml.device_by_uuid(self.uuid.as_str()).ok()?;
            let util = dev.utilization_rates().ok()?;
            let mem = dev.memory_info().ok()?;
            Some(GpuStats {
                utilization_percent: util.gpu,
                memory_used: mem.used,
                memory_total: mem.total,
            })
        }))
        .ok()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_device_or_missing_nvml_is_none() {
        assert!(GpuMonitor::new("GPU-00000000-0000-0000-0000-000000000000").is_none());
    }

    #[test]
    fn stats_read_as_the_status_line_shows_them() {
        let s = GpuStats {
            utilization_percent: 85,
            memory_used: 3_100_000_000,
            memory_total: 79_600_000_000,
        };
        assert_eq!(s.to_string(), "GPU 85% VRAM 3.1/79.6 GB");
    }

    #[test]
    fn monitor_can_move_to_the_status_thread() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<GpuMonitor>();
    }
}
