//! What the formats record about the input files: each file's status and place in the arrays
//! ([`FileEntry`], kept by the manifest and the journal), the counts by status, and the
//! fingerprint of the input list (kept by the journal and the shard record).
//!
//! The bottom of the format module: it imports none of the others.

use crate::discover::InputFile;
use serde::{Deserialize, Serialize};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
    /// Sample frames found in the file, at its own rate (0 when it failed).
    pub samples: u64,
    /// The file's codec (`pcm_s16le`, `flac`, `mp3`, `vorbis`, ...: [`Source::codec`]), when its
    /// header could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// The file's own sample rate, Hz, when its header could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// The file's channels, when its header could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u16>,
    /// Whether its samples were converted to the run's sample rate (`resample`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resampled: bool,
    /// Why decoding stopped before the end of a damaged stream; the samples before the damage
    /// were used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
    /// Status and its detail.
    #[serde(flatten)]
    pub status: FileStatus,
    /// First row of this file in the arrays.
    pub first_row: u64,
    /// Rows of this file.
    pub rows: u64,
}

/// What a file holds, as its decoder found it: the source of [`FileEntry`]'s `codec`,
/// `sample_rate`, `channels`, `resampled` and `damage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `pcm_u8`, `pcm_s16le`, `pcm_s24le`, `pcm_s32le`, `pcm_f32le`, `pcm_f64le` (and the
    /// other WAV encodings, docs/FORMAT.md, Inputs) for WAV; symphonia's name for the others:
    /// `flac`, `mp3`, `vorbis`, `pcm_s16be`, ...
    pub codec: &'static str,
    /// The file's own sample rate, Hz.
    pub sample_rate: u32,
    /// The file's channels.
    pub channels: u16,
    /// Whether its samples were resampled to the run's rate.
    pub resampled: bool,
    /// Why decoding stopped early, for a damaged stream.
    pub damage: Option<String>,
}

impl FileEntry {
    /// Sets the fields that [`Source`] gives (all absent for `None`).
    pub fn set_source(&mut self, s: Option<&Source>) {
        self.codec = s.map(|s| s.codec.to_owned());
        self.sample_rate = s.map(|s| s.sample_rate);
        self.channels = s.map(|s| s.channels);
        self.resampled = s.is_some_and(|s| s.resampled);
        self.damage = s.and_then(|s| s.damage.clone());
    }
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

/// A digest of the input list: paths, sizes and modification times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputsFingerprint {
    /// Number of files.
    pub files: u64,
    /// XXH3-64 over every (relative path, size, mtime), hex.
    pub xxh3_64: String,
}

impl InputsFingerprint {
    /// The fingerprint of a sorted file list.
    pub fn of(files: &[InputFile]) -> Self {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for f in files {
            h.update(f.rel.as_os_str().as_bytes());
            h.update(&[0]);
            h.update(&f.size.to_le_bytes());
            h.update(&f.mtime_ns.to_le_bytes());
        }
        InputsFingerprint {
            files: files.len() as u64,
            xxh3_64: format!("{:016x}", h.digest()),
        }
    }
}

impl FileEntry {
    /// The path's bytes, which order the files: `path_bytes_hex` decoded when present (it must
    /// be valid hex of a name that is not UTF-8, and `path` its lossy form), else `path`.
    pub(crate) fn path_key(&self) -> std::result::Result<std::borrow::Cow<'_, [u8]>, String> {
        let Some(hex) = &self.path_bytes_hex else {
            return Ok(self.path.as_bytes().into());
        };
        let digit = |b: u8| (b as char).to_digit(16).filter(|_| !b.is_ascii_uppercase());
        let bytes = (hex.len() % 2 == 0)
            .then(|| {
                hex.as_bytes()
                    .chunks_exact(2)
                    .map(|p| Some((digit(p[0])? * 16 + digit(p[1])?) as u8))
                    .collect::<Option<Vec<u8>>>()
            })
            .flatten()
            .ok_or("path_bytes_hex is not hex")?;
        if std::str::from_utf8(&bytes).is_ok() || String::from_utf8_lossy(&bytes) != self.path {
            return Err("path_bytes_hex does not match path".into());
        }
        Ok(bytes.into())
    }
}

/// The failed files that share one reason: what the summary, `inspect` and the manifest's
/// `failures` show instead of one line per file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureGroup {
    /// The reason, word for word as each file's.
    pub reason: String,
    /// How many files failed for it.
    pub files: u64,
    /// The first of them in row order.
    pub first: String,
    /// What would take them, when a setting would: `--sample-rate`, `--resample`, `--channel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The failed files of `files` grouped by reason, the largest group first (ties in row order
/// of their first file), each with its [`FailureGroup::hint`]. A pure function of the file
/// list: a resumed run and a merge give the same groups as one uninterrupted run.
pub fn failure_groups(files: &[FileEntry]) -> Vec<FailureGroup> {
    let mut groups: Vec<FailureGroup> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for f in files {
        let FileStatus::Failed { reason } = &f.status else {
            continue;
        };
        match at.get(reason.as_str()) {
            Some(&i) => groups[i].files += 1,
            None => {
                at.insert(reason, groups.len());
                groups.push(FailureGroup {
                    reason: reason.clone(),
                    files: 1,
                    first: f.path.clone(),
                    hint: hint(reason),
                });
            }
        }
    }
    // Stable: equal counts keep the order of their first files.
    groups.sort_by_key(|g| std::cmp::Reverse(g.files));
    groups
}

/// The setting that would take files failed for `reason`, if one would.
fn hint(reason: &str) -> Option<String> {
    if let Some(rest) = reason.strip_prefix("sample rate ") {
        let (file, expected) = rest.split_once(" Hz, expected ")?;
        let expected = expected.strip_suffix(" Hz")?;
        return Some(format!(
            "`--sample-rate {file}` uses them as they are (features at {file} Hz); `--resample` converts them to {expected} Hz"
        ));
    }
    if reason.starts_with("channel ") && reason.contains(" requested but the file has ") {
        return Some("`--channel mix` takes the mean of their channels".into());
    }
    None
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
            codec: None,
            sample_rate: None,
            channels: None,
            resampled: false,
            damage: None,
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
    fn failures_group_by_reason_with_a_hint() {
        let entry = |path: &str, status: FileStatus| FileEntry {
            path: path.into(),
            path_bytes_hex: None,
            bytes: 1,
            samples: 0,
            codec: None,
            sample_rate: None,
            channels: None,
            resampled: false,
            damage: None,
            status,
            first_row: 0,
            rows: 0,
        };
        let fail = |r: &str| FileStatus::Failed { reason: r.into() };
        let rate = "sample rate 16000 Hz, expected 4096 Hz";
        let files = vec![
            entry("a.wav", fail("empty file")),
            entry("b.wav", fail(rate)),
            entry("c.wav", FileStatus::Ok),
            entry("d.wav", fail(rate)),
            entry("e.wav", fail("channel 2 requested but the file has 2")),
        ];
        let g = failure_groups(&files);
        assert_eq!(g.len(), 3);
        assert_eq!(
            (g[0].reason.as_str(), g[0].files, g[0].first.as_str()),
            (rate, 2, "b.wav")
        );
        assert_eq!(
            g[0].hint.as_deref(),
            Some("`--sample-rate 16000` uses them as they are (features at 16000 Hz); `--resample` converts them to 4096 Hz")
        );
        // Ties keep row order.
        assert_eq!(
            (g[1].reason.as_str(), g[1].hint.as_deref()),
            ("empty file", None)
        );
        assert_eq!(
            g[2].hint.as_deref(),
            Some("`--channel mix` takes the mean of their channels")
        );
        assert!(failure_groups(&files[2..3]).is_empty());
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
