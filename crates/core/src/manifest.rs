//! `manifest.json`: what a run produced and how, enough to trace every row to its source and to
//! verify the arrays.

use crate::config::Config;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Identifies the manifest format.
pub const FORMAT: &str = "melpipe-manifest/1";
/// Name of the manifest file in an output folder.
pub const FILE_NAME: &str = "manifest.json";

/// What happened to one input file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum FileStatus {
    /// Decoded, exactly the expected length (or natural mode).
    Ok,
    /// Shorter than `clip_samples`: zero-padded at the end.
    Padded {
        /// Samples added.
        missing_samples: u64,
    },
    /// Longer than `clip_samples`: the rest was not used.
    Truncated {
        /// Samples not used.
        dropped_samples: u64,
    },
    /// Could not be used; its rows are NaN (fixed mode) or absent (natural mode).
    Failed {
        /// Why, in words.
        reason: String,
    },
}

impl FileStatus {
    /// `ok`, `padded`, `truncated` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            FileStatus::Ok => "ok",
            FileStatus::Padded { .. } => "padded",
            FileStatus::Truncated { .. } => "truncated",
            FileStatus::Failed { .. } => "failed",
        }
    }

    /// True for a failed file.
    pub fn is_failed(&self) -> bool {
        matches!(self, FileStatus::Failed { .. })
    }
}

/// One input file in row order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to its INPUT (lossy UTF-8 for non-UTF-8 names: see `path_bytes_hex`).
    pub path: String,
    /// The path's exact bytes in hex, only when they are not UTF-8: `path` then shows each bad
    /// byte as U+FFFD, and two names can look the same there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes_hex: Option<String>,
    /// Size in bytes.
    pub bytes: u64,
    /// Sample frames found in the file (0 when it failed).
    pub samples: u64,
    /// Status and its detail.
    #[serde(flatten)]
    pub status: FileStatus,
    /// First row of this file in the arrays.
    pub first_row: u64,
    /// Rows of this file.
    pub rows: u64,
}

/// `path` and `path_bytes_hex` of a [`FileEntry`] for a relative path.
pub fn entry_path(rel: &Path) -> (String, Option<String>) {
    let bytes = rel.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        ),
    }
}

/// Counts of files by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// `ok` files.
    pub ok: u64,
    /// `padded` files.
    pub padded: u64,
    /// `truncated` files.
    pub truncated: u64,
    /// `failed` files.
    pub failed: u64,
}

impl StatusCounts {
    /// Adds one file.
    pub fn add(&mut self, s: &FileStatus) {
        match s {
            FileStatus::Ok => self.ok += 1,
            FileStatus::Padded { .. } => self.padded += 1,
            FileStatus::Truncated { .. } => self.truncated += 1,
            FileStatus::Failed { .. } => self.failed += 1,
        }
    }
    /// All files.
    pub fn total(&self) -> u64 {
        self.ok + self.padded + self.truncated + self.failed
    }
}

/// An array file of the output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayInfo {
    /// File name inside the output folder.
    pub file: String,
    /// NumPy dtype string.
    pub descr: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Bytes before the data (the .npy header; 0 for a raw file).
    pub header_bytes: u64,
    /// Bytes of data.
    pub data_bytes: u64,
    /// XXH3-64 of the data bytes, hex.
    pub xxh3_64: String,
}

/// Geometry of the rows, for readers of the output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeometryInfo {
    /// Segments per long window.
    pub n_short: u64,
    /// Long windows per clip in fixed mode (null in natural mode).
    pub n_long: Option<u64>,
    /// Rows per file in fixed mode (null in natural mode).
    pub rows_per_file: Option<u64>,
    /// STFT frames per segment.
    pub stft_frames: u64,
    /// Frames stored per row (1 with mean pooling).
    pub out_frames: u64,
    /// Mel bands.
    pub n_mels: u64,
}

/// Wall time by phase, seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Discovery, configuration checks, output preparation, backend start.
    pub init_s: f64,
    /// Reading, computing and writing.
    pub run_s: f64,
    /// Final fsync, manifest, renames.
    pub commit_s: f64,
    /// Everything, up to writing the manifest.
    pub total_s: f64,
    /// Thread-seconds reading and decoding inputs (summed over reader threads).
    #[serde(default)]
    pub read_busy_s: f64,
    /// Thread-seconds in the compute backend.
    #[serde(default)]
    pub compute_busy_s: f64,
    /// Seconds the writer spent appending rows.
    #[serde(default)]
    pub write_busy_s: f64,
    /// Seconds the writer spent in checkpoints (fsync of the arrays, journal line).
    #[serde(default)]
    pub checkpoint_s: f64,
}

/// The manifest of an output folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// Version of melpipe that wrote it.
    pub melpipe_version: String,
    /// Seconds since the Unix epoch when the run committed.
    pub created_unix: u64,
    /// The full effective configuration.
    pub config: Config,
    /// Row geometry.
    pub geometry: GeometryInfo,
    /// Total rows N.
    pub rows: u64,
    /// The features array.
    pub features: ArrayInfo,
    /// The mapping array (absent with `mapping = "none"`).
    pub mapping: Option<ArrayInfo>,
    /// Files by status.
    pub counts: StatusCounts,
    /// The device that computed the features.
    pub device: String,
    /// In a GPU run, how many of the first files the CPU computed while the GPU started (their
    /// rows agree with the GPU's to rounding; `config.cpu_head`; a resume keeps the interrupted
    /// run's). In a merged output, the sum over its shards, each of which had its own head.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cpu_head_files: u64,
    /// Mel filters that are all zero (torchaudio warns about them too).
    pub empty_mel_filters: Vec<usize>,
    /// Wall time by phase.
    pub timings: Timings,
    /// Every input file in row order.
    pub files: Vec<FileEntry>,
    /// The slice of the sorted file list this output holds, for outputs of `run --shard`
    /// (absent for a whole run and for the result of `merge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::ShardInfo>,
}

impl Manifest {
    /// Reads `OUT/manifest.json`.
    pub fn read(out: &Path) -> Result<Manifest> {
        let p = out.join(FILE_NAME);
        let text = std::fs::read(&p).map_err(|e| Error::io("reading", &p, e))?;
        let m: Manifest = serde_json::from_slice(&text).map_err(|e| Error::Output {
            path: p.clone(),
            msg: format!("not a melpipe manifest: {e}"),
        })?;
        if m.format != FORMAT {
            return Err(Error::Output {
                path: p,
                msg: format!("manifest format `{}` is not {FORMAT}", m.format),
            });
        }
        Ok(m)
    }
}

/// For `skip_serializing_if`: a count that is zero is left out (the manifest and the journal).
pub(crate) fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_serialises_flat() {
        let e = FileEntry {
            path: "a/b.wav".into(),
            path_bytes_hex: None,
            bytes: 10,
            samples: 5,
            status: FileStatus::Padded { missing_samples: 3 },
            first_row: 0,
            rows: 237,
        };
        let j = serde_json::to_string(&e).unwrap();
        assert!(j.contains("\"status\":\"padded\""), "{j}");
        assert!(j.contains("\"missing_samples\":3"), "{j}");
        assert!(!j.contains("path_bytes_hex"), "{j}");
        let back: FileEntry = serde_json::from_str(&j).unwrap();
        assert_eq!(back, e);
        let f = FileStatus::Failed {
            reason: "no data chunk".into(),
        };
        let j = serde_json::to_string(&f).unwrap();
        assert_eq!(j, r#"{"status":"failed","reason":"no data chunk"}"#);
    }

    #[test]
    fn non_utf8_paths_keep_their_bytes() {
        use std::ffi::OsStr;
        let a = entry_path(Path::new(OsStr::from_bytes(b"d/bad_\xff.wav")));
        let b = entry_path(Path::new(OsStr::from_bytes(b"d/bad_\xfe.wav")));
        assert_eq!(a.0, b.0, "lossy names collide");
        assert_eq!(a.1.as_deref(), Some("642f6261645fff2e776176"));
        assert_eq!(b.1.as_deref(), Some("642f6261645ffe2e776176"));
        assert_eq!(entry_path(Path::new("d/é.wav")), ("d/é.wav".into(), None));
    }
}
