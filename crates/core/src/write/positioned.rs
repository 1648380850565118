//! Positioned writes: rows written at their place in an array from any thread.

use super::array::start_writeback;
use super::fault;
use crate::error::{Error, Result};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

/// Writes a run's feature rows at their place in the array from any thread (`pwrite`), so
/// that the copy into the page cache is spread over the compute threads instead of queueing
/// behind one writer. The rows' place is known before they are computed: every task's first
/// row follows from the rows of the tasks before it. The checksum, the journal and the array's
/// length still follow row order ([`super::OutputWriter::append_written`]): bytes written here beyond
/// the last journal record are cut off by a resume.
#[derive(Clone)]
pub struct PositionedWriter {
    file: Arc<File>,
    path: PathBuf,
    /// File offset of data offset 0.
    base: u64,
    /// Writes at least this large start their own writeback.
    own_writeback_min: usize,
}

impl PositionedWriter {
    pub(super) fn new(file: File, path: PathBuf, base: u64, own_writeback_min: usize) -> Self {
        PositionedWriter {
            file: Arc::new(file),
            path,
            base,
            own_writeback_min,
        }
    }

    /// Writes `bytes` at data offset `offset` (bytes after the rows the array held when the
    /// run started).
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        fault::within_budget(bytes, |b| self.file.write_all_at(b, self.base + offset))
            .map_err(|e| Error::io("writing", &self.path, e))?;
        // Large writes start their own writeback at once: the rows of the last tasks of a run
        // then reach the disk while the others are still computed, rather than in the final
        // fsync (the in-order writeback every 32 MiB still covers small writes).
        if bytes.len() >= self.own_writeback_min {
            start_writeback(&self.file, self.base + offset, bytes.len() as u64);
        }
        Ok(())
    }
}
