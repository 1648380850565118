//! The write and commit stages: rows appended in order to files in `OUT/.melpipe-partial/`,
//! hashed as they go, written back early, then fsynced and renamed into place.
//!
//! Crash safety: nothing is in `OUT` until commit; at commit the arrays are renamed first and
//! `manifest.json` last, and `verify` needs the manifest and matching checksums, so a run killed
//! at any moment leaves either no output that verifies or a complete one.

use crate::config::{Config, Dtype, Layout, LengthMode, MappingKind};
use crate::discover::InputFile;
use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::journal::{self, Journal, JournalHeader, JournalRecord};
use crate::manifest::{self, ArrayInfo, FileEntry, StatusCounts};
use crate::npy;
use crate::read::FileOutcome;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use xxhash_rust::xxh3::Xxh3;

/// Name of the folder a run writes into before it commits.
pub const PARTIAL_DIR: &str = ".melpipe-partial";

/// Every file name melpipe may write into an output folder.
pub const OUTPUT_NAMES: &[&str] = &[
    manifest::FILE_NAME,
    "features.npy",
    "mapping.npy",
    "PIPELINE_FEATURES.DAT",
    "PIPELINE_MEMMAP.npy",
];

/// Appends at least this large hash on a second thread while they are written.
const PARALLEL_HASH_MIN: usize = 1 << 20;

/// Positioned writes at least this large start their own writeback ([`PositionedWriter`]).
const OWN_WRITEBACK_MIN: usize = 1 << 20;

/// [`OWN_WRITEBACK_MIN`], or the variable `MELPIPE_OWN_WRITEBACK_MIN` (bytes; for benchmarks:
/// a size larger than any write leaves all writeback to the in-order [`WRITEBACK_CHUNK`]).
fn own_writeback_min() -> usize {
    static MIN: OnceLock<usize> = OnceLock::new();
    *MIN.get_or_init(|| env_number("MELPIPE_OWN_WRITEBACK_MIN").unwrap_or(OWN_WRITEBACK_MIN))
}

/// The number in the environment variable `name` (surrounding blanks ignored), if it is set and
/// parses.
fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// Start writeback after this many unsynced bytes, so the final fsync has little left to do.
const WRITEBACK_CHUNK: u64 = 32 << 20;

/// File names of the feature and mapping arrays for a layout.
pub fn array_names(layout: Layout) -> (&'static str, &'static str) {
    match layout {
        Layout::Default => ("features.npy", "mapping.npy"),
        Layout::Seed => ("PIPELINE_FEATURES.DAT", "PIPELINE_MEMMAP.npy"),
    }
}

/// One array being streamed to disk, hashed as it goes.
pub(crate) struct ArrayFile {
    file: File,
    path: PathBuf,
    name: &'static str,
    descr: &'static str,
    header: bool,
    hasher: Xxh3,
    data_bytes: u64,
    flushed_to: u64,
}

impl ArrayFile {
    pub(crate) fn create(
        dir: &Path,
        name: &'static str,
        descr: &'static str,
        header: bool,
    ) -> Result<Self> {
        let path = dir.join(name);
        let mut file = File::create(&path).map_err(|e| Error::io("creating", &path, e))?;
        if header {
            // Placeholder; the real header (same size) is written at commit when N is known.
            file.write_all(&[b' '; npy::HEADER_LEN])
                .map_err(|e| Error::io("writing", &path, e))?;
        }
        Ok(ArrayFile {
            file,
            path,
            name,
            descr,
            header,
            hasher: Xxh3::new(),
            data_bytes: 0,
            flushed_to: 0,
        })
    }

    /// Reopens a partial array, keeping its first `data_bytes` data bytes (the committed
    /// prefix) and hashing them again.
    fn reopen(
        dir: &Path,
        name: &'static str,
        descr: &'static str,
        header: bool,
        data_bytes: u64,
    ) -> Result<Self> {
        use std::io::{Read, Seek, SeekFrom};
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        let hlen = if header { npy::HEADER_LEN as u64 } else { 0 };
        let have = file
            .metadata()
            .map_err(|e| Error::io("reading", &path, e))?
            .len();
        if have < hlen + data_bytes {
            return Err(Error::Output {
                path,
                msg: format!(
                    "holds {have} bytes but the journal committed {}: the partial output is damaged; start over with --force",
                    hlen + data_bytes
                ),
            });
        }
        file.set_len(hlen + data_bytes)
            .map_err(|e| Error::io("truncating", &path, e))?;
        file.seek(SeekFrom::Start(hlen))
            .map_err(|e| Error::io("seeking", &path, e))?;
        let mut hasher = Xxh3::new();
        let mut buf = vec![0u8; 8 << 20];
        let mut left = data_bytes;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            file.read_exact(&mut buf[..want])
                .map_err(|e| Error::io("reading", &path, e))?;
            hasher.update(&buf[..want]);
            left -= want as u64;
        }
        Ok(ArrayFile {
            file,
            path,
            name,
            descr,
            header,
            hasher,
            data_bytes,
            flushed_to: hlen + data_bytes,
        })
    }

    fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsyncing", &self.path, e))
    }

    fn header_len(&self) -> u64 {
        if self.header {
            npy::HEADER_LEN as u64
        } else {
            0
        }
    }

    /// A handle that writes data at given offsets from any thread (see [`PositionedWriter`]):
    /// offset 0 is the first data byte after what the array holds now.
    pub(crate) fn positioned(&self) -> Result<PositionedWriter> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::io("opening", &self.path, e))?;
        Ok(PositionedWriter {
            file: std::sync::Arc::new(file),
            path: self.path.clone(),
            base: self.header_len() + self.data_bytes,
        })
    }

    /// Takes the next `bytes` of the array, already written at their place by a
    /// [`PositionedWriter`], into the checksum and the length, and starts their writeback.
    pub(crate) fn account(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.data_bytes += bytes.len() as u64;
        self.writeback_written();
    }

    /// Starts the disk's writeback once 32 MiB have been appended since the last start.
    fn writeback_written(&mut self) {
        let end = self.header_len() + self.data_bytes;
        if end - self.flushed_to >= WRITEBACK_CHUNK {
            start_writeback(&self.file, self.flushed_to, end - self.flushed_to);
            self.flushed_to = end;
        }
    }

    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() < PARALLEL_HASH_MIN {
            write_data(&mut self.file, bytes).map_err(|e| Error::io("writing", &self.path, e))?;
            self.hasher.update(bytes);
        } else {
            // Hash on another thread while this one copies the bytes into the page cache
            // (merge's copies). The hash state is kept only if
            // the write succeeded, as in the sequential path.
            let mut hasher = self.hasher.clone();
            let file = &mut self.file;
            let (written, hashed) = std::thread::scope(|s| {
                let t = s.spawn(move || {
                    hasher.update(bytes);
                    hasher
                });
                let w = write_data(file, bytes);
                (w, t.join())
            });
            written.map_err(|e| Error::io("writing", &self.path, e))?;
            self.hasher = hashed.map_err(|_| Error::Output {
                path: self.path.clone(),
                msg: "the checksum thread panicked".into(),
            })?;
        }
        self.data_bytes += bytes.len() as u64;
        self.writeback_written();
        Ok(())
    }

    /// Sets the file to its final size (`data_bytes` of data in all) before the data is
    /// written, when that size is known (fixed length mode). Writes inside the file's size do
    /// not change it: on ext4 an extending write must also log the new size in the file system
    /// journal, and waits whenever the journal is committing (measured: 30–75 ms stalls of the
    /// writer, several per run, on the H100 machine). The file stays sparse until written;
    /// [`Self::finish`] cuts it to what was written, and a resume cuts it to the committed rows.
    pub(crate) fn presize(&self, data_bytes: u64) -> Result<()> {
        self.file
            .set_len(self.header_len() + data_bytes)
            .map_err(|e| Error::io("sizing", &self.path, e))
    }

    /// [`Self::presize`] for `files_left` more files of `rows_per_file` rows of `row_bytes`.
    fn presize_rows(&self, files_left: usize, rows_per_file: u64, row_bytes: u64) -> Result<()> {
        self.presize(self.data_bytes + files_left as u64 * rows_per_file * row_bytes)
    }

    /// Writes the header, fsyncs, and describes the array.
    pub(crate) fn finish(self, shape: Vec<u64>) -> Result<ArrayInfo> {
        self.seal(shape)?.sync()
    }

    /// Cuts the file to its data and writes the header; [`Sealed::sync`] then fsyncs it (on
    /// a thread of its own while the commit writes the manifest).
    pub(crate) fn seal(self, shape: Vec<u64>) -> Result<Sealed> {
        let len = self.header_len() + self.data_bytes;
        let have = self
            .file
            .metadata()
            .map_err(|e| Error::io("reading", &self.path, e))?
            .len();
        if have != len {
            self.file
                .set_len(len)
                .map_err(|e| Error::io("truncating", &self.path, e))?;
        }
        if self.header {
            use std::os::unix::fs::FileExt;
            let h = npy::header(self.descr, &shape);
            self.file
                .write_all_at(&h, 0)
                .map_err(|e| Error::io("writing", &self.path, e))?;
        }
        Ok(Sealed {
            info: ArrayInfo {
                file: self.name.to_string(),
                descr: self.descr.to_string(),
                shape,
                header_bytes: self.header_len(),
                data_bytes: self.data_bytes,
                xxh3_64: format!("{:016x}", self.hasher.digest()),
            },
            file: self.file,
            path: self.path,
        })
    }
}

/// An array whose content and description are final, not yet durable.
pub(crate) struct Sealed {
    pub(crate) info: ArrayInfo,
    file: File,
    path: PathBuf,
}

impl Sealed {
    /// Fsyncs the array; returns its description.
    pub(crate) fn sync(self) -> Result<ArrayInfo> {
        crate::trace::span("fsync-array", 0, || self.file.sync_all())
            .map_err(|e| Error::io("fsyncing", &self.path, e))?;
        Ok(self.info)
    }
}

/// Test hook (fault injection), not a feature: with `MELPIPE_FAULT_WRITE_AFTER_BYTES=N` in the
/// environment, array data writes fail with ENOSPC ("No space left on device") once N bytes
/// have been appended in this process, as on a full disk: the write that crosses the limit
/// stores what fits, then fails. The variable is read once; unset, each append pays one load of
/// an initialised `OnceLock`. Tests use it where a size-limited file system cannot be mounted.
fn fault_budget() -> Option<&'static AtomicU64> {
    static LEFT: OnceLock<Option<AtomicU64>> = OnceLock::new();
    LEFT.get_or_init(|| env_number("MELPIPE_FAULT_WRITE_AFTER_BYTES").map(AtomicU64::new))
        .as_ref()
}

/// `write_all`, subject to [`fault_budget`].
fn write_data(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    within_fault_budget(bytes, |b| file.write_all(b))
}

/// Runs `write` on as much of `bytes` as [`fault_budget`] allows (all of it when no budget is
/// set), then fails with ENOSPC if that was not everything.
fn within_fault_budget(
    bytes: &[u8],
    write: impl FnOnce(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let Some(left) = fault_budget() else {
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
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
    }
    Ok(())
}

/// Writes a run's feature rows at their place in the array from any thread (`pwrite`), so
/// that the copy into the page cache is spread over the compute threads instead of queueing
/// behind one writer. The rows' place is known before they are computed: every task's first
/// row follows from the rows of the tasks before it. The checksum, the journal and the array's
/// length still follow row order ([`OutputWriter::append_written`]): bytes written here beyond
/// the last journal record are cut off by a resume.
#[derive(Clone)]
pub struct PositionedWriter {
    file: std::sync::Arc<File>,
    path: PathBuf,
    /// File offset of data offset 0.
    base: u64,
}

impl PositionedWriter {
    /// Writes `bytes` at data offset `offset` (bytes after the rows the array held when the
    /// run started).
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        within_fault_budget(bytes, |b| self.file.write_all_at(b, self.base + offset))
            .map_err(|e| Error::io("writing", &self.path, e))?;
        // Large writes start their own writeback at once: the rows of the last tasks of a run
        // then reach the disk while the others are still computed, rather than in the final
        // fsync (the in-order writeback every 32 MiB still covers small writes).
        if bytes.len() >= own_writeback_min() {
            start_writeback(&self.file, self.base + offset, bytes.len() as u64);
        }
        Ok(())
    }
}

/// Asks the kernel to start writing a range back now, without waiting for it.
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: sync_file_range only reads the descriptor and integers; an error (e.g. on a
        // file system without support) is harmless because the final fsync covers everything.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Refuses a batch whose feature bytes do not match its files' rows (`row_bytes` each): written
/// at its place, it would spill into the next task's rows. `backend` names who made it (asked
/// only for the error).
pub fn check_batch_bytes(
    outcomes: &[FileOutcome],
    features: &[u8],
    row_bytes: u64,
    backend: impl FnOnce() -> String,
) -> Result<()> {
    let rows: u64 = outcomes.iter().map(|o| o.rows).sum();
    let expect = rows * row_bytes;
    if features.len() as u64 != expect {
        return Err(Error::Backend {
            backend: backend(),
            msg: format!(
                "a batch of {rows} rows came with {} feature bytes, expected {expect}",
                features.len()
            ),
        });
    }
    Ok(())
}

/// fsyncs a folder so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsyncing folder", dir, e))
}

/// A run's output arrays: rows are accounted (checksummed, recorded, journaled) in row order,
/// after [`PositionedWriter`]s have written them at their place.
pub struct OutputWriter {
    out: PathBuf,
    partial: PathBuf,
    features: ArrayFile,
    mapping: Option<MappingWriter>,
    values_per_row: u64,
    n_mels: u64,
    out_frames: u64,
    dtype: Dtype,
    files: Vec<FileEntry>,
    counts: StatusCounts,
    rows: u64,
    journal: Journal,
    journaled_files: usize,
    /// Data bytes of (features, mapping) at the end of the last complete [`Self::append`]: the
    /// most a checkpoint may commit. A failed append (disk full) can leave part of a batch in
    /// one array or both, beyond these lengths; no record covers it and a resume cuts it off.
    complete_bytes: (u64, u64),
    last_checkpoint: Instant,
    checkpoint_every: Duration,
    /// Reopened from an interrupted run.
    resumed: bool,
}

/// What a journal says was committed: the files' records, their status counts, their rows and
/// the data bytes of (features, mapping) they fill. Nothing for a new run.
#[derive(Default)]
struct Committed {
    files: Vec<FileEntry>,
    counts: StatusCounts,
    rows: u64,
    bytes: (u64, u64),
}

/// What the journal of an interrupted run committed, and the checksum its last record gives
/// the committed features. The journal is untrusted: every record must follow from the ones
/// before it (files done, rows, array bytes), the files must be the first of `inputs`, and
/// their entries a file list melpipe could write ([`manifest::check_files`]).
fn committed(
    cfg: &Config,
    loaded: &journal::Loaded,
    inputs: &[InputFile],
) -> std::result::Result<(Committed, Option<String>), String> {
    let row_bytes = (cfg.values_per_row() * cfg.dtype.size()) as u64;
    let mapping_row_bytes = 6 * cfg.mapping.size().unwrap_or(0) as u64;
    let mut files: Vec<FileEntry> = Vec::new();
    let mut rows = 0u64;
    for (n, r) in loaded.records.iter().enumerate() {
        files.extend(r.files.iter().cloned());
        rows = r
            .files
            .iter()
            .try_fold(rows, |a, f| a.checked_add(f.rows))
            .ok_or("the journal's rows overflow")?;
        let bytes = |per_row: u64| {
            rows.checked_mul(per_row)
                .ok_or("the journal's rows overflow")
        };
        let expect = (
            files.len() as u64,
            rows,
            bytes(row_bytes)?,
            bytes(mapping_row_bytes)?,
        );
        let said = (r.files_done, r.rows, r.features_bytes, r.mapping_bytes);
        if said != expect || files.len() > inputs.len() {
            return Err(format!(
                "journal record {} (files done, rows, feature and mapping bytes: {said:?}) does not follow from the records before it ({expect:?}, of {} input files)",
                n + 1,
                inputs.len()
            ));
        }
    }
    for (i, (e, f)) in files.iter().zip(inputs).enumerate() {
        if ((e.path.clone(), e.path_bytes_hex.clone()), e.bytes)
            != (manifest::entry_path(&f.rel), f.size)
        {
            return Err(format!(
                "the journal's file {i} is {} ({} bytes), the input is {} ({} bytes)",
                e.path,
                e.bytes,
                f.rel.display(),
                f.size
            ));
        }
    }
    manifest::check_files(cfg, &files).map_err(|e| format!("the journal's {e}"))?;
    let last = loaded.records.last();
    let checksum = last.map(|r| r.features_xxh3_64.clone());
    let mut counts = StatusCounts::default();
    files.iter().for_each(|f| counts.add(&f.status));
    let bytes = last.map_or((0, 0), |r| (r.features_bytes, r.mapping_bytes));
    Ok((
        Committed {
            files,
            counts,
            rows,
            bytes,
        },
        checksum,
    ))
}

/// How often progress is committed to the journal (fsync of the arrays, then a journal line).
/// `MELPIPE_CHECKPOINT_SECS` overrides it (tests use small values); a value too large for a
/// `Duration` (`1e300`, `inf`) means no checkpoint before the commit, anything that is not a
/// number ≥ 0 the default.
fn checkpoint_interval() -> Duration {
    checkpoint_interval_of(std::env::var("MELPIPE_CHECKPOINT_SECS").ok().as_deref())
}

/// [`checkpoint_interval`] for the variable's value.
fn checkpoint_interval_of(value: Option<&str>) -> Duration {
    match value.and_then(|v| v.trim().parse::<f64>().ok()) {
        Some(v) if v >= 0.0 => Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX),
        _ => Duration::from_secs(1),
    }
}

impl OutputWriter {
    /// Creates the partial folder and the array files. Call [`crate::outdir::prepare`] first.
    /// `total_files` is the number of input files of the run (the mapping of a fixed-length
    /// run is known from it alone and is written ahead by its own thread).
    pub fn create(
        out: &Path,
        cfg: &Config,
        header: &JournalHeader,
        total_files: usize,
    ) -> Result<Self> {
        let partial = out.join(PARTIAL_DIR);
        std::fs::create_dir_all(&partial).map_err(|e| Error::io("creating", &partial, e))?;
        let journal = Journal::create(&partial, header)?;
        let (fname, mname) = array_names(cfg.layout);
        let features = ArrayFile::create(
            &partial,
            fname,
            cfg.dtype.descr(),
            cfg.layout == Layout::Default,
        )?;
        presize(&features, cfg, total_files, 0)?;
        let mapping = match cfg.mapping.descr() {
            None => None,
            Some(d) => Some(MappingWriter::start(
                ArrayFile::create(&partial, mname, d, true)?,
                cfg,
                total_files,
                0,
            )?),
        };
        sync_dir(out)?;
        Ok(Self::assemble(
            out,
            partial,
            cfg,
            (features, mapping, journal),
            Committed::default(),
            false,
        ))
    }

    /// A writer over opened arrays and journal, holding what the journal says was committed.
    fn assemble(
        out: &Path,
        partial: PathBuf,
        cfg: &Config,
        (features, mapping, journal): (ArrayFile, Option<MappingWriter>, Journal),
        committed: Committed,
        resumed: bool,
    ) -> Self {
        OutputWriter {
            out: out.to_path_buf(),
            partial,
            features,
            mapping,
            values_per_row: cfg.values_per_row() as u64,
            n_mels: cfg.n_mels as u64,
            out_frames: cfg.out_frames() as u64,
            dtype: cfg.dtype,
            journaled_files: committed.files.len(),
            files: committed.files,
            counts: committed.counts,
            rows: committed.rows,
            journal,
            complete_bytes: committed.bytes,
            last_checkpoint: Instant::now(),
            checkpoint_every: checkpoint_interval(),
            resumed,
        }
    }

    /// Reopens the partial output of an interrupted run at its last committed state, after
    /// checking that the journal ([`committed`]) and the bytes it committed are what the run
    /// wrote: the features against the checksum of the last record, the mapping against the
    /// rows its files give. Returns the writer and the number of input files already done.
    pub fn resume(
        out: &Path,
        cfg: &Config,
        loaded: journal::Loaded,
        inputs: &[InputFile],
    ) -> Result<(Self, usize)> {
        let partial = out.join(PARTIAL_DIR);
        let damaged = |msg: String| Error::Output {
            path: partial.clone(),
            msg: format!("{msg}: the partial output is damaged; start over with --force"),
        };
        let (committed, features_xxh3) = committed(cfg, &loaded, inputs).map_err(damaged)?;
        let (fname, mname) = array_names(cfg.layout);
        // A run killed in the middle of its commit renamed some arrays already: take them back
        // (only those its own manifest names; the manifest, renamed last, is not in OUT, or
        // there would be nothing to resume).
        crate::outdir::take_back(out, &partial)?;
        let (fbytes, mbytes) = committed.bytes;
        let features = ArrayFile::reopen(
            &partial,
            fname,
            cfg.dtype.descr(),
            cfg.layout == Layout::Default,
            fbytes,
        )?;
        if let Some(want) = features_xxh3 {
            let got = format!("{:016x}", features.hasher.digest());
            if got != want {
                return Err(damaged(format!(
                    "{fname}: the {fbytes} bytes committed have checksum {got}, the journal recorded {want}"
                )));
            }
        }
        let done = committed.files.len();
        presize(&features, cfg, inputs.len(), done)?;
        let mapping = match cfg.mapping.descr() {
            None => None,
            Some(d) => {
                let file = ArrayFile::reopen(&partial, mname, d, true, mbytes)?;
                let want = mapping_digest(cfg, &committed.files)?;
                if file.hasher.digest() != want {
                    return Err(damaged(format!(
                        "{mname}: the {mbytes} bytes committed are not the rows of the files the journal committed"
                    )));
                }
                Some(MappingWriter::start(file, cfg, inputs.len(), done)?)
            }
        };
        let journal = Journal::reopen(&partial, loaded.valid_bytes)?;
        Ok((
            Self::assemble(
                out,
                partial,
                cfg,
                (features, mapping, journal),
                committed,
                true,
            ),
            done,
        ))
    }

    /// Makes everything appended so far durable and records it in the journal.
    pub fn checkpoint(&mut self) -> Result<()> {
        if self.journaled_files == self.files.len() {
            return Ok(());
        }
        self.features.sync_data()?;
        let mapping_bytes = match &mut self.mapping {
            Some(m) => m.sync_rows(self.rows)?,
            None => 0,
        };
        // The features' checksum covers what `append_written` accounted, which is the complete
        // batches (the mapping may be written ahead of them, the features never are).
        debug_assert_eq!(self.features.data_bytes, self.complete_bytes.0);
        let rec = JournalRecord {
            files_done: self.files.len() as u64,
            rows: self.rows,
            features_bytes: self.complete_bytes.0,
            mapping_bytes,
            features_xxh3_64: format!("{:016x}", self.features.hasher.digest()),
            files: self.files[self.journaled_files..].to_vec(),
        };
        self.journal.commit(&rec)?;
        self.journaled_files = self.files.len();
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Whether a [`Self::checkpoint`] is due: files appended since the last one, and its
    /// interval passed. The caller decides once and checkpoints on that answer.
    pub fn checkpoint_due(&self) -> bool {
        self.journaled_files < self.files.len()
            && self.last_checkpoint.elapsed() >= self.checkpoint_every
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Records that the run computes on another backend than its journal header says (see
    /// [`crate::backend::BackendFactory::fell_back_to_cpu`]): the header is rewritten while no
    /// record follows it. An output with committed rows keeps its backend: that is an error.
    pub fn change_backend(&mut self, header: &JournalHeader, why: &str) -> Result<()> {
        if self.resumed || self.journaled_files > 0 {
            return Err(Error::Backend {
                backend: "auto".into(),
                msg: format!(
                    "{why}; the rows committed so far were computed on another backend, and the \
                     two agree only to rounding: resume where that backend works, or start over \
                     with --force"
                ),
            });
        }
        self.journal.rewrite_header(header)
    }

    /// A writer for feature rows at their place: data offset 0 is the first byte after the
    /// rows written so far (all of them, on a resume).
    pub fn features_at(&self) -> Result<PositionedWriter> {
        self.features.positioned()
    }

    /// Takes the next files' rows in row order: `features` holds their rows in the stored
    /// dtype, already written at their place by a [`PositionedWriter`] from
    /// [`Self::features_at`]. They are checksummed, recorded and made ready for the journal.
    pub fn append_written(
        &mut self,
        inputs: &[InputFile],
        outcomes: &[FileOutcome],
        features: &[u8],
    ) -> Result<()> {
        let row_bytes = self.values_per_row * self.dtype.size() as u64;
        check_batch_bytes(outcomes, features, row_bytes, || "writer".into())?;
        // Mapping rows first (an i32 overflow is found before anything is written); the journal
        // only ever records `complete_bytes`, so a batch cut short by a failed write is redone.
        if let Some(m) = &mut self.mapping {
            m.append(self.files.len(), self.rows, outcomes)?;
        }
        self.features.account(features);
        for (f, o) in inputs.iter().zip(outcomes) {
            self.counts.add(&o.status);
            let (path, path_bytes_hex) = manifest::entry_path(&f.rel);
            self.files.push(FileEntry {
                path,
                path_bytes_hex,
                bytes: o.bytes,
                samples: o.samples,
                status: o.status.clone(),
                first_row: self.rows,
                rows: o.rows,
            });
            self.rows += o.rows;
        }
        self.complete_bytes = (
            self.features.data_bytes,
            self.mapping
                .as_ref()
                .map_or(0, |m| m.row_bytes() * self.rows),
        );
        Ok(())
    }

    /// Finishes the arrays, fills in `manifest` (arrays, files, counts, rows), writes it, and
    /// moves everything into the output folder.
    /// `started` and `commit_started` time the run and this commit for the manifest.
    pub fn commit(
        self,
        mut m: manifest::Manifest,
        started: Instant,
        commit_started: Instant,
    ) -> Result<manifest::Manifest> {
        let shape = vec![self.rows, self.n_mels, self.out_frames];
        let features = self.features.seal(shape)?;
        let mapping = match self.mapping {
            Some(map) => Some(map.seal(self.rows)?),
            None => None,
        };
        m.features = features.info.clone();
        m.mapping = mapping.as_ref().map(|a| a.info.clone());
        m.rows = self.rows;
        m.counts = self.counts;
        m.files = self.files;
        m.timings.commit_s = commit_started.elapsed().as_secs_f64();
        m.timings.total_s = started.elapsed().as_secs_f64();
        // The arrays' fsyncs (the last rows' writeback) and the manifest's serialisation and
        // fsync overlap; nothing is renamed into place before all of them are durable.
        let partial = &self.partial;
        let (features, mapping, manifest) = std::thread::scope(|s| {
            let f = s.spawn(move || features.sync());
            let map = mapping.map(|a| s.spawn(move || a.sync()));
            let w = crate::trace::span("manifest-write", 0, || write_manifest(partial, &mut m));
            let panicked = |what: &str| Error::Output {
                path: partial.clone(),
                msg: format!("the thread that fsyncs the {what} panicked"),
            };
            (
                f.join().unwrap_or_else(|_| Err(panicked("features"))),
                map.map(|h| h.join().unwrap_or_else(|_| Err(panicked("mapping")))),
                w,
            )
        });
        features?;
        mapping.transpose()?;
        manifest?;
        crate::trace::span("renames", 0, || publish(&self.partial, &self.out, &m))?;
        drop(self.journal);
        let jpath = self.partial.join(journal::FILE_NAME);
        std::fs::remove_file(&jpath).map_err(|e| Error::io("removing", &jpath, e))?;
        std::fs::remove_dir(&self.partial).map_err(|e| Error::io("removing", &self.partial, e))?;
        sync_dir(&self.out)?;
        Ok(m)
    }
}

/// Sizes the feature array for all `total_files` files when every file has the same rows (fixed
/// length mode); `features` holds the rows of the first `files_done` files.
fn presize(
    features: &ArrayFile,
    cfg: &Config,
    total_files: usize,
    files_done: usize,
) -> Result<()> {
    if cfg.length != LengthMode::Fixed {
        return Ok(());
    }
    features.presize_rows(
        total_files - files_done.min(total_files),
        Geometry::new(cfg).rows(None) as u64,
        (cfg.values_per_row() * cfg.dtype.size()) as u64,
    )
}

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
pub(crate) fn mapping_digest(cfg: &Config, files: &[FileEntry]) -> Result<u64> {
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

/// The mapping array. In fixed length mode every file has the same rows, so the whole table is
/// known before any file is read: threads of their own write it ahead ([`AheadPlan`]), and the
/// disk starts on those bytes while the inputs are still being read. In natural mode rows follow each file's
/// length, so they are written as the files come.
#[allow(clippy::large_enum_variant)] // one per run; boxing buys nothing
enum MappingWriter {
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
    fn start(file: ArrayFile, cfg: &Config, total_files: usize, files_done: usize) -> Result<Self> {
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
            threads: AheadPlan::threads(),
            chunk_bytes: AHEAD_CHUNK_BYTES,
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
    fn append(
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
    fn row_bytes(&self) -> u64 {
        match self {
            MappingWriter::Inline { kind, .. } => 6 * kind.size().unwrap_or(8) as u64,
            MappingWriter::Ahead { row_bytes, .. } => *row_bytes,
        }
    }

    /// Makes the mapping durable through `rows` rows; returns the bytes that covers.
    fn sync_rows(&mut self, rows: u64) -> Result<u64> {
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
    fn seal(mut self, rows: u64) -> Result<Sealed> {
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

/// What the mapping thread writes in fixed length mode: the rows of `files`, all known before
/// any file is read.
struct AheadPlan {
    kind: MappingKind,
    geometry: Geometry,
    per_file: u64,
    row_bytes: u64,
    files: std::ops::Range<usize>,
    /// Threads that encode and write ([`AheadPlan::threads`]).
    threads: usize,
    /// About how many bytes one thread encodes and writes at a time.
    chunk_bytes: u64,
    /// Data bytes of the file written and hashed so far, in order.
    written: std::sync::Arc<AtomicU64>,
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
    /// Threads that encode and write the mapping: one. One alone copied 1.3–1.55 GB/s into
    /// the page cache while the GPU started, below the disk's rate, and four had the whole
    /// mapping out 0.1–0.3 s sooner, but end to end four were no faster on the GPU path and
    /// slower on the CPU path (docs/PERFORMANCE.md, 'Design: one mapping thread'): the features,
    /// which wait for the GPU, are the bound. The variable `MELPIPE_MAPPING_THREADS` sets another
    /// number (for benchmarks).
    fn threads() -> usize {
        env_number::<usize>("MELPIPE_MAPPING_THREADS").map_or(1, |n| n.clamp(1, 64))
    }

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
        let sink = file.positioned()?;
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

/// The commit sequence shared by runs and merges: writes `m` as the manifest in `partial` and
/// fsyncs it and the folder, renames the arrays (already fsynced) and then the manifest into
/// `out`, and fsyncs `out`. Until the manifest's rename, `out` holds nothing that verifies.
pub(crate) fn commit_into(partial: &Path, out: &Path, m: &mut manifest::Manifest) -> Result<()> {
    write_manifest(partial, m)?;
    publish(partial, out, m)
}

/// Writes `m`, sealed with its own checksum ([`manifest::Manifest::to_json`]), into `partial`
/// and fsyncs it.
fn write_manifest(partial: &Path, m: &mut manifest::Manifest) -> Result<()> {
    let mpath = partial.join(manifest::FILE_NAME);
    let text = m.to_json()?;
    let mut f = File::create(&mpath).map_err(|e| Error::io("creating", &mpath, e))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("writing", &mpath, e))
}

/// Renames the durable arrays and manifest of `partial` into `out` and fsyncs both folders.
/// A previous output in `out` is set aside first and deleted once the new one is in place;
/// if a rename fails, it is put back ([`crate::outdir`]). A file in `out` with one of
/// melpipe's names that no melpipe manifest names is never replaced: that is an error, and
/// the partial output stays for `--resume` once the file is moved away.
fn publish(partial: &Path, out: &Path, m: &manifest::Manifest) -> Result<()> {
    use crate::outdir;
    sync_dir(partial)?;
    let previous = outdir::Previous::find(out);
    previous.refuse_foreign(out)?;
    outdir::set_aside(out, partial, &previous)?;
    let mut names = vec![m.features.file.clone()];
    names.extend(m.mapping.as_ref().map(|a| a.file.clone()));
    names.push(manifest::FILE_NAME.to_string());
    let renamed = names.iter().try_for_each(|n| {
        let (from, to) = (partial.join(n), out.join(n));
        std::fs::rename(&from, &to).map_err(|e| Error::io("renaming into place", &to, e))
    });
    if let Err(e) = renamed.and_then(|_| sync_dir(out)) {
        if let Err(back) = outdir::put_back(out, partial) {
            tracing::warn!("could not put the previous output back: {back}");
        }
        return Err(e);
    }
    let aside = partial.join(outdir::REPLACED_DIR);
    if std::fs::symlink_metadata(&aside).is_ok() {
        std::fs::remove_dir_all(&aside).map_err(|e| Error::io("removing", &aside, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_checkpoint_setting_gives_an_interval() {
        let one = Duration::from_secs(1);
        assert_eq!(checkpoint_interval_of(None), one);
        assert_eq!(
            checkpoint_interval_of(Some("0.25")),
            Duration::from_millis(250)
        );
        assert_eq!(checkpoint_interval_of(Some(" 2 ")), Duration::from_secs(2));
        for huge in ["1e20", "1e300", "inf", "18446744073709551616"] {
            assert_eq!(checkpoint_interval_of(Some(huge)), Duration::MAX, "{huge}");
        }
        for bad in ["-1", "NaN", "-inf", "", "x", "1s"] {
            assert_eq!(checkpoint_interval_of(Some(bad)), one, "{bad}");
        }
    }

    #[test]
    fn the_mapping_template_encodes_the_same_bytes_as_each_segment_derived() {
        let cfg = Config::default();
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
        let cfg = Config::default();
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
            written: Default::default(),
            cancel: Default::default(),
        };
        let written = std::sync::Arc::clone(&plan.written);
        let r = plan.write(file);
        if let Ok(f) = &r {
            assert_eq!(written.load(Ordering::Acquire), f.data_bytes);
        }
        (r, t)
    }

    fn encoded(kind: MappingKind, files: std::ops::Range<usize>) -> Vec<u8> {
        let g = Geometry::new(&Config::default());
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

    #[test]
    fn a_batch_whose_bytes_do_not_match_its_rows_is_refused() {
        let outcome = |rows| FileOutcome {
            bytes: 0,
            samples: 0,
            status: crate::manifest::FileStatus::Ok,
            rows,
            machine_error: None,
        };
        let outcomes = [outcome(3), outcome(2)];
        // 5 rows of 64 bytes.
        assert!(check_batch_bytes(&outcomes, &[0; 320], 64, || unreachable!()).is_ok());
        let e = check_batch_bytes(&outcomes, &[0; 318], 64, || "gpu".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            Error::Backend {
                backend: "gpu".into(),
                msg: "a batch of 5 rows came with 318 feature bytes, expected 320".into()
            }
            .to_string()
        );
    }

    #[test]
    fn large_appends_hash_in_parallel_to_the_same_checksum() {
        let t = tempfile::tempdir().unwrap();
        let mut a = ArrayFile::create(t.path(), "features.npy", "<f2", true).unwrap();
        let data: Vec<u8> = (0..(3usize << 20) + 777)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        // Small (sequential) and large (parallel) appends mixed.
        for chunk in [
            &data[..1000],
            &data[1000..(2 << 20) + 1000],
            &data[(2 << 20) + 1000..],
        ] {
            a.append(chunk).unwrap();
        }
        let info = a.finish(vec![data.len() as u64 / 2]).unwrap();
        assert_eq!(
            info.xxh3_64,
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&data))
        );
        assert_eq!(info.data_bytes, data.len() as u64);
        let on_disk = std::fs::read(t.path().join("features.npy")).unwrap();
        assert_eq!(&on_disk[info.header_bytes as usize..], &data[..]);
    }
}
