//! A batch as the kernel reads it: the samples, then a table of the files (sample offset, first
//! row, failed flag) in one device buffer, filled by one upload. Checked on the host first, so
//! a malformed batch is an error and never an out-of-bounds read on the device.

use melpipe_core::backend::AudioBatch;
use melpipe_core::geometry::Geometry;

/// Alignment of the file table after the samples.
const TABLE_ALIGN: usize = 256;

/// Where each part of a batch lies in the device input buffer, in bytes from its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UploadLayout {
    /// Files of the batch.
    pub num_files: usize,
    /// Rows of the batch.
    pub rows: usize,
    /// Bytes of samples (f32, or i16 for a PCM16 batch).
    pub samples_bytes: usize,
    /// `u64` sample offset of each file.
    pub offsets_at: usize,
    /// `u32` first row of each file, plus the batch's row count.
    pub row0_at: usize,
    /// `u32` failed flag of each file.
    pub failed_at: usize,
    /// Start of the table (= `offsets_at`).
    pub table_at: usize,
    /// Bytes of the whole upload.
    pub total_bytes: usize,
}

/// Checks `batch` against the geometry and writes its file table into `table` (cleared first).
///
/// Errors say which file is inconsistent; the kernel then never reads outside the samples.
pub(crate) fn pack_batch(
    batch: &AudioBatch,
    geom: &Geometry,
    max_rows: usize,
    table: &mut Vec<u8>,
) -> Result<UploadLayout, String> {
    let n = batch.files.len();
    let samples = batch.samples.len();
    let mut rows = 0usize;
    for (i, f) in batch.files.iter().enumerate() {
        if !f.failed {
            let end = f.offset.checked_add(f.len).filter(|&e| e <= samples);
            if end.is_none() {
                return Err(format!(
                    "file {i} of the batch: samples {}..{}+{} lie outside the batch's {samples} samples",
                    f.offset, f.offset, f.len
                ));
            }
            if f.rows > 0 {
                let last = geom.segment(f.rows - 1);
                if last.end_sample > f.len {
                    return Err(format!(
                        "file {i} of the batch: {} rows need {} samples but it has {}",
                        f.rows, last.end_sample, f.len
                    ));
                }
            }
        }
        rows += f.rows;
    }
    if rows > max_rows {
        return Err(format!(
            "a batch of {rows} rows is larger than the kernel's row index allows ({max_rows}): use fewer files per task"
        ));
    }
    let samples_bytes = batch.samples.as_bytes().len();
    let table_at = samples_bytes.next_multiple_of(TABLE_ALIGN);
    let offsets_at = table_at;
    let row0_at = offsets_at + 8 * n;
    let failed_at = row0_at + 4 * (n + 1);
    let total_bytes = failed_at + 4 * n;

    table.clear();
    table.reserve(total_bytes - table_at);
    for f in &batch.files {
        let off = if f.failed { 0 } else { f.offset as u64 };
        table.extend_from_slice(&off.to_le_bytes());
    }
    let mut row0 = 0u32;
    for f in &batch.files {
        table.extend_from_slice(&row0.to_le_bytes());
        row0 += f.rows as u32;
    }
    table.extend_from_slice(&row0.to_le_bytes());
    for f in &batch.files {
        table.extend_from_slice(&u32::from(f.failed).to_le_bytes());
    }
    debug_assert_eq!(table.len(), total_bytes - table_at);
    Ok(UploadLayout {
        num_files: n,
        rows,
        samples_bytes,
        offsets_at,
        row0_at,
        failed_at,
        table_at,
        total_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use melpipe_core::backend::BatchFile;
    use melpipe_core::config::{LengthMode, Params};

    fn batch(files: &[(usize, bool)], rows_of: impl Fn(usize) -> usize) -> AudioBatch {
        let mut b = AudioBatch::default();
        for &(len, failed) in files {
            let offset = b.samples.len();
            let len = if failed { 0 } else { len };
            let v: Vec<f32> = (0..len).map(|i| i as f32).collect();
            b.samples.extend_from_slice(&v);
            b.files.push(BatchFile {
                offset,
                len,
                rows: rows_of(len),
                failed,
            });
        }
        b
    }

    #[test]
    fn table_holds_offsets_first_rows_and_failed_flags() {
        let cfg = Params {
            length: LengthMode::Natural,
            ..Params::default()
        };
        let g = Geometry::new(&cfg);
        // 2000 samples: 2 long windows, 6 rows; 1024: 3 rows; a failed file: no rows.
        let b = batch(&[(2000, false), (0, true), (1024, false)], |l| {
            g.rows(Some(l))
        });
        let mut t = Vec::new();
        let l = pack_batch(&b, &g, u32::MAX as usize, &mut t).unwrap();
        assert_eq!(l.rows, 9);
        assert_eq!(l.samples_bytes, 3024 * 4);
        assert_eq!(l.table_at % 256, 0);
        assert!(l.table_at >= l.samples_bytes);
        assert_eq!(l.total_bytes - l.table_at, t.len());
        let u64_at = |i: usize| u64::from_le_bytes(t[i..i + 8].try_into().unwrap());
        let u32_at = |i: usize| u32::from_le_bytes(t[i..i + 4].try_into().unwrap());
        let rel = |a: usize| a - l.table_at;
        assert_eq!(
            [0, 1, 2].map(|f| u64_at(rel(l.offsets_at) + 8 * f)),
            [0, 0, 2000]
        );
        assert_eq!(
            [0, 1, 2, 3].map(|f| u32_at(rel(l.row0_at) + 4 * f)),
            [0, 6, 6, 9]
        );
        assert_eq!(
            [0, 1, 2].map(|f| u32_at(rel(l.failed_at) + 4 * f)),
            [0, 1, 0]
        );
    }

    #[test]
    fn fixed_mode_failed_files_keep_their_rows() {
        let cfg = Params::default();
        let g = Geometry::new(&cfg);
        let b = batch(&[(40960, false), (0, true)], |_| 237);
        let mut t = Vec::new();
        let l = pack_batch(&b, &g, u32::MAX as usize, &mut t).unwrap();
        assert_eq!(l.rows, 474);
    }

    #[test]
    fn inconsistent_batches_are_errors() {
        let g = Geometry::new(&Params::default());
        let mut t = Vec::new();
        // Too many rows for the samples.
        let b = batch(&[(1500, false)], |_| 6);
        let e = pack_batch(&b, &g, usize::MAX, &mut t).unwrap_err();
        assert!(e.contains("6 rows need 1536 samples"), "{e}");
        // A file outside the samples.
        let mut b = batch(&[(1024, false)], |_| 3);
        b.files[0].offset = 10;
        let e = pack_batch(&b, &g, usize::MAX, &mut t).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        // Too many rows for the kernel's index.
        let b = batch(&[(1024, false)], |_| 3);
        let e = pack_batch(&b, &g, 2, &mut t).unwrap_err();
        assert!(e.contains("fewer files per task"), "{e}");
    }
}
