//! The mapping array: six values per row (idx, file_idx, long_idx, short_idx, start_sample,
//! end_sample) that trace every feature row to its file and segment.
//!
//! In fixed length mode every file has the same rows, so the whole table is known before any
//! file is read: threads of their own write it ahead ([`AheadPlan`]) at its place, and account
//! it in order; the journal records only the mapping rows of files whose features are
//! accounted. In natural mode rows follow each file's length and are appended as files come.
//! Either way the table follows from the file list and the geometry alone
//! ([`mapping_digest`]), which is how `verify` and `--resume` check it.

use super::array::{ArrayFile, Sealed};
use super::tuning::WriteTuning;
use crate::config::{LengthMode, MappingKind, Params};
use crate::error::{Error, Result};
use crate::format::manifest::FileEntry;
use crate::geometry::Geometry;
use crate::read::FileOutcome;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xxhash_rust::xxh3::Xxh3;

/// The i64 mapping rows of one file in fixed length mode, but for the two columns that change
/// from file to file (idx, file_idx): the mapping thread copies it for each file instead of
/// deriving every segment again (a division and a remainder per row, 9.4 M rows in the seed
/// workload), so that more of the mapping reaches the disk while the GPU starts.
struct FileRowsTemplate(Vec<[i64; 6]>);

impl FileRowsTemplate {
    fn new(g: &Geometry, rows: u64) -> Self {
        FileRowsTemplate(
            (0..rows as usize)
                .map(|s| mapping_values(g, 0, 0, s as u64))
                .collect(),
        )
    }

    /// Appends the rows of file `file_idx`, the first of them row `first_row`, as
    /// [`encode_mapping`] does for an i64 mapping.
    fn encode(&self, buf: &mut Vec<u8>, first_row: u64, file_idx: usize) {
        buf.reserve(self.0.len() * 48);
        for (s, row) in self.0.iter().enumerate() {
            let mut v = *row;
            v[0] = (first_row + s as u64) as i64;
            v[1] = file_idx as i64;
            for x in v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

/// The mapping row of segment `s` of file `file_idx` whose first row is `first_row`: idx,
/// file_idx, long_idx, short_idx, start_sample, end_sample.
fn mapping_values(g: &Geometry, first_row: u64, file_idx: usize, s: u64) -> [i64; 6] {
    let seg = g.segment(s as usize);
    [
        (first_row + s) as i64,
        file_idx as i64,
        seg.long_idx as i64,
        seg.short_idx as i64,
        seg.start_sample as i64,
        seg.end_sample as i64,
    ]
}

/// Appends mapping rows of one file whose first row is `first_row` to `buf`: `rows` segments
/// from segment `from`.
fn encode_mapping(
    buf: &mut Vec<u8>,
    kind: MappingKind,
    g: &Geometry,
    first_row: u64,
    file_idx: usize,
    from: u64,
    rows: u64,
) -> Result<()> {
    for s in from..from + rows {
        let vals = mapping_values(g, first_row, file_idx, s);
        if kind == MappingKind::I32 {
            for v in vals {
                let v = i32::try_from(v).map_err(|_| {
                    Error::Config(format!(
                        "value {v} does not fit the i32 mapping; use --mapping i64"
                    ))
                })?;
                buf.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            for v in vals {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// XXH3-64 of the mapping a run writes for `files` (in row order, from row 0): the table is
/// fully determined by the file list and the geometry, so `verify` and `--resume` compare the
/// bytes on disk with it.
pub(crate) fn mapping_digest(cfg: &Params, files: &[FileEntry]) -> Result<u64> {
    let g = Geometry::new(cfg);
    let mut hasher = Xxh3::new();
    let mut buf = Vec::with_capacity(1 << 16);
    for (i, f) in files.iter().enumerate() {
        // A file at a time, in pieces: one file may have many rows (natural mode).
        let mut s = 0;
        while s < f.rows {
            let n = (f.rows - s).min(1024);
            buf.clear();
            encode_mapping(&mut buf, cfg.mapping, &g, f.first_row, i, s, n)?;
            hasher.update(&buf);
            s += n;
        }
    }
    Ok(hasher.digest())
}

/// The mapping array being written: appended as files come (natural mode) or written ahead by
/// threads of its own (fixed length mode, [`AheadPlan`]).
#[allow(clippy::large_enum_variant)] // one per run; boxing buys nothing
pub(super) enum MappingWriter {
    Inline {
        file: Option<ArrayFile>,
        kind: MappingKind,
        geometry: Geometry,
        buf: Vec<u8>,
    },
    Ahead {
        thread: Option<std::thread::JoinHandle<Result<ArrayFile>>>,
        /// Data bytes the thread has written so far.
        written: std::sync::Arc<std::sync::atomic::AtomicU64>,
        cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
        /// A second handle on the file, to fsync it while the thread writes.
        sync: File,
        path: PathBuf,
        row_bytes: u64,
    },
}

impl MappingWriter {
    /// Takes over `file` (holding the rows of the first `files_done` files).
    pub(super) fn start(
        file: ArrayFile,
        cfg: &Params,
        total_files: usize,
        files_done: usize,
        tuning: &WriteTuning,
    ) -> Result<Self> {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        use std::sync::Arc;
        let kind = cfg.mapping;
        let geometry = Geometry::new(cfg);
        let sync = match (cfg.length, file.file.try_clone()) {
            (LengthMode::Fixed, Ok(f)) => f,
            _ => {
                return Ok(MappingWriter::Inline {
                    file: Some(file),
                    kind,
                    geometry,
                    buf: Vec::new(),
                })
            }
        };
        let per_file = geometry.rows(None) as u64;
        let row_bytes = 6 * kind.size().unwrap_or(8) as u64;
        file.presize_rows(total_files - files_done, per_file, row_bytes)?;
        let written = Arc::new(AtomicU64::new(file.data_bytes));
        let cancel = Arc::new(AtomicBool::new(false));
        let path = file.path.clone();
        let ahead = AheadPlan {
            kind,
            geometry,
            per_file,
            row_bytes,
            files: files_done..total_files,
            threads: MAPPING_THREADS,
            chunk_bytes: AHEAD_CHUNK_BYTES,
            own_writeback_min: tuning.own_writeback_min,
            written: Arc::clone(&written),
            cancel: Arc::clone(&cancel),
        };
        let thread = std::thread::Builder::new()
            .name("mapping".into())
            .spawn(move || ahead.write(file));
        let thread = thread.map_err(|e| Error::io("starting the mapping writer", &path, e))?;
        Ok(MappingWriter::Ahead {
            thread: Some(thread),
            written,
            cancel,
            sync,
            path,
            row_bytes,
        })
    }

    /// The rows of the next files, in the inline mode (the ahead thread needs nothing).
    pub(super) fn append(
        &mut self,
        first_file: usize,
        first_row: u64,
        outcomes: &[FileOutcome],
    ) -> Result<()> {
        if let MappingWriter::Inline {
            file,
            kind,
            geometry,
            buf,
        } = self
        {
            buf.clear();
            let mut row = first_row;
            for (i, o) in outcomes.iter().enumerate() {
                encode_mapping(buf, *kind, geometry, row, first_file + i, 0, o.rows)?;
                row += o.rows;
            }
            if let Some(file) = file {
                file.append(buf)?;
            }
        }
        Ok(())
    }

    /// Bytes of one mapping row.
    pub(super) fn row_bytes(&self) -> u64 {
        match self {
            MappingWriter::Inline { kind, .. } => 6 * kind.size().unwrap_or(8) as u64,
            MappingWriter::Ahead { row_bytes, .. } => *row_bytes,
        }
    }

    /// Makes the mapping durable through `rows` rows; returns the bytes that covers.
    pub(super) fn sync_rows(&mut self, rows: u64) -> Result<u64> {
        use std::sync::atomic::Ordering;
        match self {
            MappingWriter::Inline { file, kind, .. } => {
                if let Some(f) = file {
                    f.sync_data()?;
                }
                Ok(rows * 6 * kind.size().unwrap_or(8) as u64)
            }
            MappingWriter::Ahead {
                thread,
                written,
                sync,
                path,
                row_bytes,
                ..
            } => {
                let need = rows * *row_bytes;
                while written.load(Ordering::Acquire) < need {
                    if thread.as_ref().is_none_or(|t| t.is_finished()) {
                        // The thread stopped early: its error says why.
                        if let Some(t) = thread.take() {
                            t.join().map_err(|_| Error::Output {
                                path: path.clone(),
                                msg: "the mapping writer panicked".into(),
                            })??;
                        }
                        if written.load(Ordering::Acquire) < need {
                            return Err(Error::Output {
                                path: path.clone(),
                                msg: "the mapping writer stopped early".into(),
                            });
                        }
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                sync.sync_data()
                    .map_err(|e| Error::io("fsyncing", path.clone(), e))?;
                Ok(need)
            }
        }
    }

    /// Waits for the rows and writes the header; the caller fsyncs.
    pub(super) fn seal(mut self, rows: u64) -> Result<Sealed> {
        let early = |path: &Path, what: &str| Error::Output {
            path: path.to_path_buf(),
            msg: format!("the mapping writer {what}"),
        };
        let (file, row_bytes) = match &mut self {
            MappingWriter::Inline { file, kind, .. } => {
                let f = file
                    .take()
                    .ok_or_else(|| early(Path::new("mapping"), "is gone"))?;
                (f, 6 * kind.size().unwrap_or(8) as u64)
            }
            MappingWriter::Ahead {
                thread,
                path,
                row_bytes,
                ..
            } => {
                let t = thread.take().ok_or_else(|| early(path, "stopped early"))?;
                let f = t.join().map_err(|_| early(path, "panicked"))??;
                (f, *row_bytes)
            }
        };
        if file.data_bytes != rows * row_bytes {
            return Err(Error::Output {
                path: file.path.clone(),
                msg: format!(
                    "the mapping holds {} bytes, not {rows} rows",
                    file.data_bytes
                ),
            });
        }
        file.seal(vec![rows, 6])
    }
}

impl Drop for MappingWriter {
    fn drop(&mut self) {
        if let MappingWriter::Ahead { thread, cancel, .. } = self {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Threads that encode and write the mapping ahead in fixed length mode. One: more had the
/// mapping out sooner but were no faster end to end, since the features, which wait for the
/// compute, are the bound (docs/PERFORMANCE.md, 'Design: one mapping thread').
const MAPPING_THREADS: usize = 1;

/// What the mapping thread writes in fixed length mode: the rows of `files`, all known before
/// any file is read.
struct AheadPlan {
    kind: MappingKind,
    geometry: Geometry,
    per_file: u64,
    row_bytes: u64,
    files: std::ops::Range<usize>,
    /// Threads that encode and write ([`MAPPING_THREADS`] in a run).
    threads: usize,
    /// About how many bytes one thread encodes and writes at a time.
    chunk_bytes: u64,
    /// Writes at least this large start their own writeback ([`WriteTuning::own_writeback_min`]).
    own_writeback_min: usize,
    /// Data bytes of the file written and hashed so far, in order.
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Sends an error to the mapping thread if the worker holding it panics.
struct PanicReport(crossbeam_channel::Sender<Result<(usize, Vec<u8>)>>);

impl Drop for PanicReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.send(Err(Error::Output {
                path: PathBuf::from("mapping"),
                msg: "a mapping writer thread panicked".into(),
            }));
        }
    }
}

/// About how many bytes of the mapping one thread encodes and writes at a time.
const AHEAD_CHUNK_BYTES: u64 = 4 << 20;

impl AheadPlan {
    /// Writes the rows: worker threads encode chunks of files and write them at their place
    /// (`pwrite`, writeback started at once), in any order; this thread takes them into the
    /// array's checksum and length in order and publishes the bytes done in `written`. Stops
    /// early, with what is written so far, when `cancel` is set.
    fn write(self, mut file: ArrayFile) -> Result<ArrayFile> {
        use crossbeam_channel::{bounded, unbounded};
        use std::sync::atomic::{AtomicUsize, Ordering::*};
        let file_bytes = (self.per_file * self.row_bytes).max(1);
        let per_chunk = (self.chunk_bytes / file_bytes).max(1) as usize;
        let chunks = self.files.len().div_ceil(per_chunk);
        let threads = self.threads.clamp(1, chunks.max(1));
        let sink = file.positioned(self.own_writeback_min)?;
        let template = (self.kind == MappingKind::I64)
            .then(|| FileRowsTemplate::new(&self.geometry, self.per_file));
        let next = AtomicUsize::new(0);
        // Two buffers per thread, recycled: memory stays at 8 MiB a thread whatever the size.
        let (pool_tx, pool_rx) = bounded::<Vec<u8>>(2 * threads);
        for _ in 0..2 * threads {
            let _ = pool_tx.send(Vec::with_capacity(per_chunk * file_bytes as usize));
        }
        let (done_tx, done_rx) = unbounded::<Result<(usize, Vec<u8>)>>();
        let plan = &self;
        std::thread::scope(|s| -> Result<()> {
            // Dropped when this closure returns, before the scope joins: a worker waiting for
            // a buffer after an error then ends.
            let pool_tx = pool_tx;
            for _ in 0..threads {
                let (pool_rx, done_tx) = (pool_rx.clone(), done_tx.clone());
                let (next, sink, template) = (&next, &sink, &template);
                s.spawn(move || {
                    // A worker that panics says so: the chunk it held would never come, and
                    // the others would wait for buffers held back for it.
                    let _report = PanicReport(done_tx.clone());
                    // A buffer first, then a chunk: every chunk taken belongs to a thread that
                    // can finish it, so the chunk the checksum waits for always comes.
                    while let Ok(mut buf) = pool_rx.recv() {
                        if plan.cancel.load(Relaxed) {
                            break;
                        }
                        let c = next.fetch_add(1, Relaxed);
                        if c >= chunks {
                            break;
                        }
                        let first = plan.files.start + c * per_chunk;
                        let end = (first + per_chunk).min(plan.files.end);
                        let r = plan
                            .encode(&mut buf, first..end, template.as_ref())
                            .and_then(|_| {
                                let offset = (c * per_chunk) as u64 * file_bytes;
                                crate::trace::span("mapping-append", first as u64, || {
                                    sink.write_at(offset, &buf)
                                })
                            });
                        let failed = r.is_err();
                        if done_tx.send(r.map(|_| (c, buf))).is_err() || failed {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            let mut pending = BTreeMap::new();
            let mut next_hash = 0usize;
            for r in done_rx.iter() {
                let (c, buf) = match r {
                    Ok(done) => done,
                    Err(e) => {
                        plan.cancel.store(true, Relaxed);
                        return Err(e);
                    }
                };
                pending.insert(c, buf);
                while let Some(buf) = pending.remove(&next_hash) {
                    file.account(&buf);
                    plan.written.store(file.data_bytes, Release);
                    next_hash += 1;
                    let _ = pool_tx.send(buf);
                }
            }
            Ok(())
        })?;
        Ok(file)
    }

    /// The rows of `files` into `buf` (emptied first).
    fn encode(
        &self,
        buf: &mut Vec<u8>,
        files: std::ops::Range<usize>,
        template: Option<&FileRowsTemplate>,
    ) -> Result<()> {
        buf.clear();
        for f in files {
            let first_row = f as u64 * self.per_file;
            match template {
                Some(t) => t.encode(buf, first_row, f),
                None => encode_mapping(
                    buf,
                    self.kind,
                    &self.geometry,
                    first_row,
                    f,
                    0,
                    self.per_file,
                )?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_template_encodes_the_same_bytes_as_each_segment_derived() {
        let cfg = Params::default();
        let g = Geometry::new(&cfg);
        let rows = g.rows(None) as u64;
        let t = FileRowsTemplate::new(&g, rows);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for f in [0usize, 1, 7, 39_562] {
            t.encode(&mut a, f as u64 * rows, f);
            encode_mapping(&mut b, MappingKind::I64, &g, f as u64 * rows, f, 0, rows).unwrap();
        }
        assert_eq!(a.len() as u64, 4 * rows * 48);
        assert_eq!(a, b);
    }

    /// Writes the mapping rows of `files` with `threads` threads, `per_chunk` files at a time,
    /// into an array that already holds `before` (the rows of the files before).
    fn write_ahead(
        kind: MappingKind,
        files: std::ops::Range<usize>,
        threads: usize,
        per_chunk: u64,
        before: &[u8],
    ) -> (Result<ArrayFile>, tempfile::TempDir) {
        let cfg = Params::default();
        let geometry = Geometry::new(&cfg);
        let per_file = geometry.rows(None) as u64;
        let row_bytes = 6 * kind.size().unwrap() as u64;
        let t = tempfile::tempdir().unwrap();
        let mut file = ArrayFile::create(t.path(), "mapping.npy", "<i8", false).unwrap();
        file.append(before).unwrap();
        let plan = AheadPlan {
            kind,
            geometry,
            per_file,
            row_bytes,
            files,
            threads,
            chunk_bytes: per_chunk * per_file * row_bytes,
            own_writeback_min: WriteTuning::default().own_writeback_min,
            written: Default::default(),
            cancel: Default::default(),
        };
        let written = std::sync::Arc::clone(&plan.written);
        let r = plan.write(file);
        if let Ok(f) = &r {
            assert_eq!(
                written.load(std::sync::atomic::Ordering::Acquire),
                f.data_bytes
            );
        }
        (r, t)
    }

    fn encoded(kind: MappingKind, files: std::ops::Range<usize>) -> Vec<u8> {
        let g = Geometry::new(&Params::default());
        let rows = g.rows(None) as u64;
        let mut b = Vec::new();
        for f in files {
            encode_mapping(&mut b, kind, &g, f as u64 * rows, f, 0, rows).unwrap();
        }
        b
    }

    #[test]
    fn the_mapping_written_ahead_by_several_threads_is_the_sequential_table() {
        for (kind, threads, per_chunk, done) in [
            (MappingKind::I64, 4, 7, 0),
            (MappingKind::I64, 3, 1, 250),
            (MappingKind::I32, 4, 13, 999),
            (MappingKind::I64, 1, 1000, 0),
        ] {
            let all = encoded(kind, 0..1000);
            let before = encoded(kind, 0..done);
            let (r, t) = write_ahead(kind, done..1000, threads, per_chunk, &before);
            let f = r.unwrap();
            assert_eq!(f.data_bytes, all.len() as u64);
            assert_eq!(f.hasher.digest(), xxhash_rust::xxh3::xxh3_64(&all));
            assert_eq!(std::fs::read(t.path().join("mapping.npy")).unwrap(), all);
        }
    }

    #[test]
    fn a_mapping_thread_that_fails_stops_the_others_and_says_why() {
        // Row indices past 2^31 do not fit the i32 mapping: a chunk in the middle fails.
        let first = (1usize << 31) / 237 - 50;
        let (r, _t) = write_ahead(MappingKind::I32, first..first + 100, 4, 3, &[]);
        let e = r.err().expect("an i32 overflow is an error");
        assert!(
            e.to_string().contains("does not fit the i32 mapping"),
            "{e}"
        );
    }
}
