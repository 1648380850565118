//! The writer: a run's rows accounted in row order (checksum, file entries, status counts),
//! checkpoints into the journal, and the reopening of an interrupted run's partial output.
//!
//! Invariant: a journal record is written only after the arrays were fsynced through the bytes
//! it names, and names only complete batches; on a resume every record must follow from the
//! ones before it and the bytes kept must match its checksum, else the partial output is
//! refused as damaged.

use super::array::ArrayFile;
use super::folder::{self, sync_dir, PARTIAL_DIR};
use super::mapping::{mapping_digest, MappingWriter};
use super::positioned::PositionedWriter;
use super::tuning::WriteTuning;
use crate::config::{Dtype, Layout, LengthMode, Params};
use crate::discover::InputFile;
use crate::error::{Error, Result};
use crate::format::journal::{self, Journal, JournalHeader, JournalRecord};
use crate::format::manifest::{self, array_names, FileEntry, StatusCounts};
use crate::geometry::Geometry;
use crate::read::FileOutcome;
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// A run's output arrays: rows are accounted (checksummed, recorded, journaled) in row order,
/// after [`PositionedWriter`]s have written them at their place.
pub struct OutputWriter {
    pub(super) out: PathBuf,
    pub(super) partial: PathBuf,
    pub(super) features: ArrayFile,
    pub(super) mapping: Option<MappingWriter>,
    values_per_row: u64,
    pub(super) n_mels: u64,
    pub(super) out_frames: u64,
    dtype: Dtype,
    pub(super) files: Vec<FileEntry>,
    pub(super) counts: StatusCounts,
    pub(super) rows: u64,
    pub(super) journal: Journal,
    journaled_files: usize,
    /// Data bytes of (features, mapping) at the end of the last complete [`Self::append_written`]: the
    /// most a checkpoint may commit. A failed append (disk full) can leave part of a batch in
    /// one array or both, beyond these lengths; no record covers it and a resume cuts it off.
    complete_bytes: (u64, u64),
    last_checkpoint: Instant,
    tuning: WriteTuning,
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
    cfg: &Params,
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

impl OutputWriter {
    /// Creates the partial folder and the array files. Call [`folder::prepare`] first.
    /// `total_files` is the number of input files of the run (the mapping of a fixed-length
    /// run is known from it alone and is written ahead by its own thread).
    pub fn create(
        out: &Path,
        cfg: &Params,
        header: &JournalHeader,
        total_files: usize,
        tuning: WriteTuning,
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
                &tuning,
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
            tuning,
        ))
    }

    /// A writer over opened arrays and journal, holding what the journal says was committed.
    fn assemble(
        out: &Path,
        partial: PathBuf,
        cfg: &Params,
        (features, mapping, journal): (ArrayFile, Option<MappingWriter>, Journal),
        committed: Committed,
        resumed: bool,
        tuning: WriteTuning,
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
            tuning,
            resumed,
        }
    }

    /// Reopens the partial output of an interrupted run at its last committed state, after
    /// checking that the journal ([`committed`]) and the bytes it committed are what the run
    /// wrote: the features against the checksum of the last record, the mapping against the
    /// rows its files give. Returns the writer and the number of input files already done.
    pub fn resume(
        out: &Path,
        cfg: &Params,
        loaded: journal::Loaded,
        inputs: &[InputFile],
        tuning: WriteTuning,
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
        folder::take_back(out, &partial)?;
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
                Some(MappingWriter::start(
                    file,
                    cfg,
                    inputs.len(),
                    done,
                    &tuning,
                )?)
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
                tuning,
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
            && self.last_checkpoint.elapsed() >= self.tuning.checkpoint_interval
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
        self.features.positioned(self.tuning.own_writeback_min)
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
            let mut entry = FileEntry {
                path,
                path_bytes_hex,
                bytes: o.bytes,
                samples: o.samples,
                codec: None,
                sample_rate: None,
                channels: None,
                resampled: false,
                damage: None,
                status: o.status.clone(),
                first_row: self.rows,
                rows: o.rows,
            };
            entry.set_source(o.source.as_ref());
            self.files.push(entry);
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
}

/// Sizes the feature array for all `total_files` files when every file has the same rows (fixed
/// length mode); `features` holds the rows of the first `files_done` files.
fn presize(
    features: &ArrayFile,
    cfg: &Params,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_whose_bytes_do_not_match_its_rows_is_refused() {
        let outcome = |rows| FileOutcome {
            bytes: 0,
            samples: 0,
            status: crate::format::files::FileStatus::Ok,
            rows,
            machine_error: None,
            source: None,
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
}
