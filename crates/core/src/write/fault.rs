//! Fault injection for tests, compiled only with the cargo feature `test-hooks` (the `melpipe`
//! package's tests turn it on; release builds have no trace of it).
//!
//! With `MELPIPE_FAULT_WRITE_AFTER_BYTES=N` in the environment, array data writes fail with
//! ENOSPC ("No space left on device") once N bytes have been written in this process, as on a
//! full disk: the write that crosses the limit stores what fits, then fails. Tests use it where
//! a size-limited file system cannot be mounted. Without the feature, [`within_budget`] is the
//! write itself.

use std::io;

#[cfg(feature = "test-hooks")]
mod budget {
    use std::io;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// The bytes left before writes fail; `None` when the variable is unset or not a number.
    /// Read once per process.
    fn left() -> Option<&'static AtomicU64> {
        static LEFT: OnceLock<Option<AtomicU64>> = OnceLock::new();
        LEFT.get_or_init(|| {
            std::env::var("MELPIPE_FAULT_WRITE_AFTER_BYTES")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .map(AtomicU64::new)
        })
        .as_ref()
    }

    pub(in crate::write) fn within_budget(
        bytes: &[u8],
        write: impl FnOnce(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(left) = left() else {
            return write(bytes);
        };
        // Every writer of the process shares the budget: take atomically.
        let want = bytes.len() as u64;
        let avail = left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| {
                Some(a - a.min(want))
            })
            .unwrap_or(0);
        let n = avail.min(want);
        write(&bytes[..n as usize])?;
        if (n as usize) < bytes.len() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }
}

/// Runs `write` on as much of `bytes` as the injected budget allows (all of it when no budget
/// is set, or without the `test-hooks` feature), then fails with ENOSPC if that was not
/// everything.
#[inline(always)]
pub(super) fn within_budget(
    bytes: &[u8],
    write: impl FnOnce(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    #[cfg(feature = "test-hooks")]
    return budget::within_budget(bytes, write);
    #[cfg(not(feature = "test-hooks"))]
    write(bytes)
}
