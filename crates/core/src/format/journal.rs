//! The run journal: durable progress in `OUT/.melpipe-partial/journal.jsonl`, so that a killed
//! run can be resumed from its last committed batch (`--resume`).
//!
//! The first line describes the run (parameters that shape the output, the backend kind, a
//! fingerprint of the inputs). Each later line commits a prefix of the output: it is written only
//! after the array files were fsynced up to that prefix, and is itself fsynced. A line torn by a
//! crash fails to parse and is ignored, so the last complete line is always a consistent state.

use super::files::FileEntry;
use super::shard::ShardInfo;
use crate::config::{BackendKind, Params};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use super::files::InputsFingerprint;

/// Name of the journal inside the partial folder.
pub const FILE_NAME: &str = "journal.jsonl";
/// Identifies the journal format (`/2`: records carry the features' checksum).
pub const FORMAT: &str = "melpipe-journal/2";

/// The first line: what the run is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalHeader {
    /// Format tag.
    pub format: String,
    /// The parameters (what shapes the output; journals of earlier versions also hold run
    /// options here, which are ignored).
    #[serde(deserialize_with = "crate::config::deserialize_params_lenient")]
    pub config: Params,
    /// `cpu` or `cuda`: backends agree only to rounding, so a resume keeps the kind.
    pub backend_kind: BackendKind,
    /// The inputs when the run started (the shard's files for a shard).
    pub inputs: InputsFingerprint,
    /// The shard, for `run --shard` (absent in journals of whole runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// How many of the run's first files the CPU computes in a GPU run (`cpu_head`): a resume
    /// keeps the split, so that its rows are those of an uninterrupted run whatever the machine.
    #[serde(default, skip_serializing_if = "crate::format::files::is_zero")]
    pub cpu_head_files: u64,
}

/// One committed prefix of the output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// Input files whose rows are all in the committed prefix.
    pub files_done: u64,
    /// Rows in the committed prefix.
    pub rows: u64,
    /// Bytes of feature data (after the header) committed.
    pub features_bytes: u64,
    /// Bytes of mapping data committed.
    pub mapping_bytes: u64,
    /// XXH3-64 (hex) of the committed feature data (`features_bytes` bytes): a resume checks
    /// the bytes it keeps against it. (The mapping needs none: its rows follow from the files.)
    pub features_xxh3_64: String,
    /// Manifest entries of the files committed by this record (not the earlier ones).
    pub files: Vec<FileEntry>,
}

/// An open journal being appended to.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// Bytes of complete lines.
    len: u64,
}

impl Journal {
    /// Creates the journal with its header line, fsynced.
    pub fn create(dir: &Path, header: &JournalHeader) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let file = File::create(&path).map_err(|e| Error::io("creating", &path, e))?;
        let mut j = Journal { file, path, len: 0 };
        j.write_line(&serde_json::to_vec(header).map_err(|e| Error::Config(e.to_string()))?)?;
        Ok(j)
    }

    /// Replaces the header line of a journal that holds no record yet.
    pub fn rewrite_header(&mut self, header: &JournalHeader) -> Result<()> {
        use std::io::Seek;
        self.file
            .set_len(0)
            .and_then(|_| self.file.seek(std::io::SeekFrom::Start(0)))
            .map_err(|e| Error::io("rewriting", &self.path, e))?;
        self.len = 0;
        self.write_line(&serde_json::to_vec(header).map_err(|e| Error::Config(e.to_string()))?)
    }

    /// Reopens an existing journal for appending after a resume.
    pub fn reopen(dir: &Path, keep_bytes: u64) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        // Drop a torn last line so new records start on a fresh line.
        file.set_len(keep_bytes)
            .map_err(|e| Error::io("truncating", &path, e))?;
        let mut j = Journal {
            file,
            path,
            len: keep_bytes,
        };
        use std::io::Seek;
        j.file
            .seek(std::io::SeekFrom::End(0))
            .map_err(|e| Error::io("seeking", &j.path, e))?;
        Ok(j)
    }

    /// Appends a record and fsyncs it. The arrays must already be fsynced up to it.
    pub fn commit(&mut self, rec: &JournalRecord) -> Result<()> {
        let line = serde_json::to_vec(rec).map_err(|e| Error::Config(e.to_string()))?;
        self.write_line(&line)
    }

    fn write_line(&mut self, line: &[u8]) -> Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        let r = self
            .file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data());
        if let Err(e) = r {
            // A line cut short by a full disk must not glue itself to the next record: cut the
            // journal back to its complete lines (best effort: a torn line is ignored on load).
            use std::io::Seek;
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(std::io::SeekFrom::Start(self.len));
            return Err(Error::io("writing", &self.path, e));
        }
        self.len += buf.len() as u64;
        Ok(())
    }
}

/// A journal read back: its header, its complete records, and the bytes they span.
#[derive(Debug)]
pub struct Loaded {
    /// The header line.
    pub header: JournalHeader,
    /// Complete records, in order.
    pub records: Vec<JournalRecord>,
    /// Bytes of the file up to the end of the last complete line.
    pub valid_bytes: u64,
}

/// Bytes a journal may hold per input file of its run: a record's entry for a file, with its
/// path (up to 4 KiB, escaped or in hex when not UTF-8) and its reason, stays far below this.
const MAX_BYTES_PER_FILE: u64 = 64 << 10;

/// Reads the journal in `dir` of a run over `inputs` files. The journal is untrusted input: a
/// file that is not a regular file, or larger than such a run's journal can be (see
/// [`MAX_BYTES_PER_FILE`]), is refused before it is read. The first line that does not parse
/// ends the journal (a line torn by a kill is the last one; one damaged further up only costs
/// the progress after it, which the resume redoes).
pub fn load(dir: &Path, inputs: usize) -> Result<Loaded> {
    let path = dir.join(FILE_NAME);
    let bad = |m: String| Error::Output {
        path: path.clone(),
        msg: format!("{m}; start over with --force"),
    };
    let max = (1 << 20) + inputs as u64 * MAX_BYTES_PER_FILE;
    let len = crate::read::open_input(&path)
        .map_err(|e| Error::io("reading", &path, e))?
        .1;
    if len > max {
        return Err(bad(format!(
            "the journal holds {len} bytes, more than a run over {inputs} files writes"
        )));
    }
    let text = crate::read::read_regular(&path).map_err(|e| Error::io("reading", &path, e))?;
    let mut lines = Vec::new();
    let mut pos = 0usize;
    while let Some(n) = text[pos..].iter().position(|&b| b == b'\n') {
        lines.push((&text[pos..pos + n], pos + n + 1));
        pos += n + 1;
    }
    let Some(((first, mut valid), rest)) = lines.split_first() else {
        return Err(Error::NoJournalHeader { path: path.clone() });
    };
    let header: JournalHeader = serde_json::from_slice(first)
        .map_err(|e| bad(format!("unreadable journal header: {e}")))?;
    if header.format != FORMAT {
        return Err(bad(format!(
            "journal format `{}` is not {FORMAT}",
            header.format
        )));
    }
    let mut records = Vec::new();
    for (line, end) in rest {
        match serde_json::from_slice::<JournalRecord>(line) {
            Ok(r) => {
                records.push(r);
                valid = *end;
            }
            Err(_) => break,
        }
    }
    Ok(Loaded {
        header,
        records,
        valid_bytes: valid as u64,
    })
}
