//! `manifest.json`: what a run produced and how, enough to trace every row to its source and to
//! verify the arrays.

use super::files::is_zero;
use super::npy;
use super::shard::{ShardInfo, ShardSpec};
use crate::config::{Layout, LengthMode, Params};
use crate::error::{Error, Result};
use crate::geometry::Geometry;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use super::files::{
    entry_path, failure_groups, FailureGroup, FileEntry, FileStatus, StatusCounts,
};

/// Identifies the manifest format: `/2` carries its own checksum ([`Manifest::manifest_xxh3_64`]).
pub const FORMAT: &str = "melpipe-manifest/2";
/// The format before manifests carried their own checksum: still read, and `verify` says that
/// its content could not be checked for changes.
pub const FORMAT_V1: &str = "melpipe-manifest/1";
/// Name of the manifest file in an output folder.
pub const FILE_NAME: &str = "manifest.json";

/// Every file name melpipe may write into an output folder.
pub const OUTPUT_NAMES: &[&str] = &[
    FILE_NAME,
    "features.npy",
    "mapping.npy",
    "PIPELINE_FEATURES.DAT",
    "PIPELINE_MEMMAP.npy",
];

/// File names of the feature and mapping arrays for a layout.
pub fn array_names(layout: Layout) -> (&'static str, &'static str) {
    match layout {
        Layout::Default => ("features.npy", "mapping.npy"),
        Layout::Seed => ("PIPELINE_FEATURES.DAT", "PIPELINE_MEMMAP.npy"),
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

impl GeometryInfo {
    /// The geometry of a validated configuration.
    pub fn of(cfg: &Params) -> Self {
        let g = Geometry::new(cfg);
        let fixed = cfg.length == LengthMode::Fixed;
        GeometryInfo {
            n_short: g.n_short as u64,
            n_long: fixed.then(|| g.n_long(cfg.clip_samples) as u64),
            rows_per_file: fixed.then(|| g.rows(None) as u64),
            stft_frames: cfg.stft_frames() as u64,
            out_frames: cfg.out_frames() as u64,
            n_mels: cfg.n_mels as u64,
        }
    }
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
    /// The parameters (what shapes the output). Manifests of earlier versions also hold the
    /// run options here; they are ignored when read.
    #[serde(deserialize_with = "crate::config::deserialize_params_lenient")]
    pub config: Params,
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
    /// The failed files grouped by reason, the largest group first ([`failure_groups`] of
    /// `files`; absent when none failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureGroup>,
    /// The device that computed the features.
    pub device: String,
    /// With `device = "auto"`: which backend the cost model of the parameters chose and why
    /// (docs/PERFORMANCE.md, "Design: `auto`"). Absent when the device was named.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device_choice: String,
    /// In a GPU run, how many of the first files the CPU computed while the GPU started (their
    /// rows agree with the GPU's to rounding; the `cpu_head` run option; a resume keeps the interrupted
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
    pub shard: Option<ShardInfo>,
    /// XXH3-64 (hex) of the manifest file itself, with these 16 digits read as zeros (set by
    /// [`Manifest::to_json`] when the output is committed). Absent in [`FORMAT_V1`] manifests.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manifest_xxh3_64: String,
}

/// How `manifest_xxh3_64` appears in the manifest melpipe writes (the last field).
const SEAL_KEY: &[u8] = b"\"manifest_xxh3_64\": \"";
/// Its value while the checksum is computed.
const UNSEALED: &str = "0000000000000000";

/// Where the value of `manifest_xxh3_64` starts in a manifest's bytes: after its last key.
/// (Inside a JSON string every `"` is escaped, so the key cannot occur in a value.)
fn seal_position(text: &[u8]) -> Option<usize> {
    let at = text.windows(SEAL_KEY.len()).rposition(|w| w == SEAL_KEY)? + SEAL_KEY.len();
    (at + UNSEALED.len() <= text.len()).then_some(at)
}

/// XXH3-64 (hex) of a manifest's bytes with the 16 digits at `at` read as [`UNSEALED`].
fn seal_checksum(text: &[u8], at: usize) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&text[..at]);
    h.update(UNSEALED.as_bytes());
    h.update(&text[at + UNSEALED.len()..]);
    format!("{:016x}", h.digest())
}

impl Manifest {
    /// The manifest as written to disk: pretty-printed JSON, `format` set to [`FORMAT`] and
    /// sealed: `manifest_xxh3_64` is the XXH3-64 of these very bytes with its own 16 digits
    /// read as zeros. Any change to the file but those digits shows, whitespace included.
    pub fn to_json(&mut self) -> Result<Vec<u8>> {
        self.format = FORMAT.into();
        self.failures = failure_groups(&self.files);
        self.manifest_xxh3_64 = UNSEALED.into();
        let failed = |msg: String| Error::Output {
            path: FILE_NAME.into(),
            msg,
        };
        let mut text = serde_json::to_vec_pretty(self)
            .map_err(|e| failed(format!("serialising the manifest: {e}")))?;
        let at = seal_position(&text)
            .ok_or_else(|| failed("the manifest's checksum field is missing".into()))?;
        self.manifest_xxh3_64 = seal_checksum(&text, at);
        text[at..at + UNSEALED.len()].copy_from_slice(self.manifest_xxh3_64.as_bytes());
        Ok(text)
    }

    /// True when the manifest carries its own checksum (and [`Manifest::read`] checked it).
    pub fn is_sealed(&self) -> bool {
        !self.manifest_xxh3_64.is_empty()
    }

    /// Reads `OUT/manifest.json` as untrusted input and checks it before anyone sizes work by
    /// it: its own checksum, then [`Manifest::check`] (its structure, and the size and header of
    /// each array beside it). Work sized by the fields of a manifest this returns is bounded by
    /// the sizes of the files of the output.
    pub fn read(out: &Path) -> Result<Manifest> {
        let p = out.join(FILE_NAME);
        let bad = |msg: String| Error::Output {
            path: p.clone(),
            msg,
        };
        let text = crate::read::read_regular(&p).map_err(|e| Error::io("reading", &p, e))?;
        let m: Manifest = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("not a melpipe manifest: {e}")))?;
        match m.format.as_str() {
            FORMAT if !m.is_sealed() => {
                return Err(bad(format!(
                    "a {FORMAT} manifest must carry manifest_xxh3_64"
                )))
            }
            FORMAT | FORMAT_V1 => {}
            other => {
                return Err(bad(format!(
                    "manifest format `{other}` is not {FORMAT} (nor {FORMAT_V1})"
                )))
            }
        }
        if m.is_sealed() {
            let at = seal_position(&text)
                .filter(|&at| text[at..at + UNSEALED.len()] == *m.manifest_xxh3_64.as_bytes())
                .ok_or_else(|| bad("manifest_xxh3_64 is not where melpipe writes it".into()))?;
            let got = seal_checksum(&text, at);
            if got != m.manifest_xxh3_64 {
                return Err(bad(format!(
                    "its checksum {} does not match its content ({got}): the manifest was changed after melpipe wrote it",
                    m.manifest_xxh3_64
                )));
            }
        }
        m.check(out).map_err(bad)?;
        Ok(m)
    }

    /// Checks that the manifest describes an output melpipe could have written, before any
    /// work sized by its fields: a valid configuration and the geometry it gives, the file list
    /// ([`check_files`]), rows and counts that add up, a consistent shard record, and arrays
    /// whose names, dtypes, shapes and sizes follow from all that, with files of exactly that
    /// size on disk and the `.npy` headers melpipe writes for them, byte for byte.
    fn check(&self, out: &Path) -> std::result::Result<(), String> {
        let cfg = &self.config;
        cfg.validate()
            .map_err(|e| format!("its configuration: {e}"))?;
        if self.geometry != GeometryInfo::of(cfg) {
            return Err("its geometry does not follow from its configuration".into());
        }
        let rows = check_files(cfg, &self.files)?;
        if rows != self.rows {
            return Err(format!(
                "its files account for {rows} rows, it says {}",
                self.rows
            ));
        }
        let mut counts = StatusCounts::default();
        self.files.iter().for_each(|f| counts.add(&f.status));
        if counts != self.counts {
            return Err("its status counts differ from its file list".into());
        }
        // Manifests of earlier versions have no groups; any given must be the file list's.
        if !self.failures.is_empty() && self.failures != failure_groups(&self.files) {
            return Err("its failure groups differ from its file list".into());
        }
        if self.cpu_head_files > self.files.len() as u64 {
            return Err(format!(
                "cpu_head_files ({}) exceeds its {} files",
                self.cpu_head_files,
                self.files.len()
            ));
        }
        if let Some(&f) = self.empty_mel_filters.iter().find(|&&f| f >= cfg.n_mels) {
            return Err(format!(
                "empty mel filter {f} does not exist ({} mels)",
                cfg.n_mels
            ));
        }
        if let Some(sh) = &self.shard {
            let expect = ShardSpec::new(sh.index, sh.count)
                .map(|spec| spec.range(sh.files_total))
                .ok();
            if expect != Some(sh.first_file..sh.first_file.saturating_add(sh.files))
                || self.files.len() as u64 != sh.files
            {
                return Err(format!(
                    "its shard record ({}/{}, files {}..+{} of {}) does not match its file list ({} files)",
                    sh.index,
                    sh.count,
                    sh.first_file,
                    sh.files,
                    sh.files_total,
                    self.files.len()
                ));
            }
        }
        let (fname, mname) = array_names(cfg.layout);
        let npy_features = cfg.layout == Layout::Default;
        let vpr = [rows, cfg.n_mels as u64, cfg.out_frames() as u64];
        self.features.check(
            out,
            fname,
            cfg.dtype.descr(),
            npy_features,
            &vpr,
            cfg.dtype.size() as u64,
        )?;
        match (cfg.mapping.descr(), &self.mapping) {
            (None, None) => Ok(()),
            (Some(descr), Some(a)) => a.check(
                out,
                mname,
                descr,
                true,
                &[rows, 6],
                cfg.mapping.size().unwrap_or(8) as u64,
            ),
            _ => Err(format!(
                "its mapping array does not match its configuration (mapping {})",
                cfg.mapping
            )),
        }
    }
}

impl ArrayInfo {
    /// Checks the description of an array against what the configuration and the rows give
    /// (file `name`, `descr`, `shape` of `elem`-byte values, a `.npy` header when `npy`), then
    /// the file on disk: a regular file of exactly that size whose header is the one melpipe
    /// writes, byte for byte (numpy refuses headers that a looser parser would accept).
    fn check(
        &self,
        out: &Path,
        name: &str,
        descr: &str,
        npy: bool,
        shape: &[u64],
        elem: u64,
    ) -> std::result::Result<(), String> {
        let header_bytes = if npy { npy::HEADER_LEN as u64 } else { 0 };
        let data_bytes = shape
            .iter()
            .try_fold(elem, |a, &d| a.checked_mul(d))
            .filter(|&d| d.checked_add(header_bytes).is_some())
            .ok_or_else(|| format!("{name}: shape {shape:?} is too large"))?;
        if self.file != name || self.descr != descr || self.shape != shape {
            return Err(format!(
                "it describes {} as {} {:?}, its configuration and rows give {name} as {descr} {shape:?}",
                self.file, self.descr, self.shape
            ));
        }
        if self.header_bytes != header_bytes || self.data_bytes != data_bytes {
            return Err(format!(
                "it gives {name} {} header and {} data bytes, its shape needs {header_bytes} and {data_bytes}",
                self.header_bytes, self.data_bytes
            ));
        }
        if !is_xxh3_hex(&self.xxh3_64) {
            return Err(format!(
                "{name}: checksum `{}` is not 16 hex digits",
                self.xxh3_64
            ));
        }
        let path = out.join(name);
        let (file, len) = crate::read::open_input(&path).map_err(|e| format!("{name}: {e}"))?;
        if len != header_bytes + data_bytes {
            return Err(format!(
                "{name}: {len} bytes on disk, the manifest describes {}",
                header_bytes + data_bytes
            ));
        }
        if npy {
            use std::io::Read;
            let mut h = vec![0u8; npy::HEADER_LEN];
            (&file)
                .read_exact(&mut h)
                .map_err(|e| format!("{name}: reading its header: {e}"))?;
            if h != npy::header(descr, shape) {
                return Err(format!(
                    "{name}: its .npy header is not the one melpipe writes for {descr} {shape:?}"
                ));
            }
        }
        Ok(())
    }
}

/// Whether `s` is an XXH3-64 as melpipe writes it: 16 lowercase hex digits.
pub(crate) fn is_xxh3_hex(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a file list in row order (a manifest's, or the files a journal committed) against
/// the geometry of `cfg`, which must be valid: paths unique and sorted byte-wise (as discovery
/// sorts them), each status consistent with the samples found, each file with the rows its
/// samples and status give, rows starting at 0 and following each other. Returns the rows.
pub(crate) fn check_files(cfg: &Params, files: &[FileEntry]) -> std::result::Result<u64, String> {
    let g = Geometry::new(cfg);
    let clip = cfg.clip_samples as u64;
    let mut row = 0u64;
    let mut prev: Option<std::borrow::Cow<'_, [u8]>> = None;
    for (i, f) in files.iter().enumerate() {
        let bad = |what: String| format!("file {i} ({}): {what}", f.path);
        let key = f.path_key().map_err(bad)?;
        if prev.as_ref().is_some_and(|p| *p >= key) {
            return Err(bad(
                "not after the file before it in byte order: paths must be unique and sorted"
                    .into(),
            ));
        }
        prev = Some(key);
        // Samples at the run's rate: a resampled file's own count converted.
        let samples = match (f.resampled, f.sample_rate) {
            (false, Some(rate)) if rate != cfg.sample_rate && !f.status.is_failed() => {
                return Err(bad(format!(
                    "used at {rate} Hz in a run at {} Hz without resampling",
                    cfg.sample_rate
                )));
            }
            (false, _) => f.samples,
            (true, Some(rate)) if cfg.resample && rate != cfg.sample_rate => {
                crate::dsp::resample::output_len(rate, cfg.sample_rate, f.samples)
            }
            (true, _) => {
                return Err(bad(
                    "marked resampled without another rate or `resample` in the configuration"
                        .into(),
                ))
            }
        };
        use FileStatus as S;
        let consistent = match (cfg.length, &f.status) {
            (_, S::Failed { .. }) => f.samples == 0,
            (LengthMode::Natural, S::Ok) => true,
            (LengthMode::Natural, _) => false,
            (LengthMode::Fixed, S::Ok) => samples == clip,
            (LengthMode::Fixed, S::Padded { missing_samples }) => {
                samples < clip && *missing_samples == clip - samples
            }
            (LengthMode::Fixed, S::Truncated { dropped_samples }) => {
                samples > clip && *dropped_samples == samples - clip
            }
        };
        if !consistent {
            return Err(bad(format!(
                "status {} does not fit {} samples",
                f.status.name(),
                f.samples
            )));
        }
        let expect = match (cfg.length, f.status.is_failed()) {
            (LengthMode::Fixed, _) => Some(g.rows(None) as u64),
            (LengthMode::Natural, true) => Some(0),
            (LengthMode::Natural, false) => usize::try_from(samples)
                .ok()
                .and_then(|n| g.n_long(n).checked_mul(g.n_short))
                .map(|r| r as u64),
        };
        if expect != Some(f.rows) {
            return Err(bad(format!(
                "{} rows, its samples give {}",
                f.rows,
                expect.map_or("more than can be counted".into(), |e| e.to_string())
            )));
        }
        if f.first_row != row {
            return Err(bad(format!(
                "starts at row {}, expected {row}",
                f.first_row
            )));
        }
        row = row
            .checked_add(f.rows)
            .ok_or_else(|| bad("rows overflow".into()))?;
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampled_files_are_checked_at_the_runs_rate() {
        let cfg = Params {
            resample: true,
            ..Params::default()
        };
        let entry = |samples: u64, rate: u32, resampled: bool, status: FileStatus| FileEntry {
            path: "a.flac".into(),
            path_bytes_hex: None,
            bytes: 1,
            samples,
            codec: Some("flac".into()),
            sample_rate: Some(rate),
            channels: Some(1),
            resampled,
            damage: None,
            status,
            first_row: 0,
            rows: 237,
        };
        // 160000 samples at 16 kHz are 40960 at 4096 Hz; 100000 are 25600.
        let ok = entry(160_000, 16000, true, FileStatus::Ok);
        assert_eq!(check_files(&cfg, std::slice::from_ref(&ok)), Ok(237));
        let padded = FileStatus::Padded {
            missing_samples: 40960 - 25600,
        };
        assert_eq!(
            check_files(&cfg, &[entry(100_000, 16000, true, padded)]),
            Ok(237)
        );
        let e = check_files(&cfg, &[entry(100_000, 16000, true, FileStatus::Ok)]).unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
        let e = check_files(&cfg, &[entry(160_000, 16000, false, FileStatus::Ok)]).unwrap_err();
        assert!(e.contains("without resampling"), "{e}");
        let e = check_files(&Params::default(), &[ok]).unwrap_err();
        assert!(e.contains("marked resampled"), "{e}");
        let e = check_files(&cfg, &[entry(40960, 4096, true, FileStatus::Ok)]).unwrap_err();
        assert!(e.contains("marked resampled"), "{e}");
    }

    #[test]
    fn file_lists_must_be_sorted_unique_and_add_up() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let cfg = Params::default();
        let entry = |rel: &[u8], first_row: u64| {
            let (path, path_bytes_hex) = entry_path(Path::new(OsStr::from_bytes(rel)));
            FileEntry {
                path,
                path_bytes_hex,
                bytes: 1,
                samples: 40960,
                codec: Some("pcm_s16le".into()),
                sample_rate: Some(4096),
                channels: Some(1),
                resampled: false,
                damage: None,
                status: FileStatus::Ok,
                first_row,
                rows: 237,
            }
        };
        // Byte order, non-UTF-8 names by their bytes: `bad_\xfe` before `bad_\xff`.
        let files = vec![
            entry(b"a/b.wav", 0),
            entry(b"a/bad_\xfe.wav", 237),
            entry(b"a/bad_\xff.wav", 474),
        ];
        assert_eq!(check_files(&cfg, &files), Ok(711));
        let refused = |files: &[FileEntry], words: &str| {
            let e = check_files(&cfg, files).unwrap_err();
            assert!(e.contains(words), "{e}");
        };
        let mut f = files.clone();
        f.swap(1, 2);
        (f[1].first_row, f[2].first_row) = (237, 474);
        refused(&f, "unique and sorted");
        let mut f = files.clone();
        f[2].path_bytes_hex = f[1].path_bytes_hex.clone();
        refused(&f, "unique and sorted");
        f[2].path_bytes_hex = Some("zz".into());
        refused(&f, "path_bytes_hex is not hex");
        f[2].path_bytes_hex = Some("612e776176".into());
        refused(&f, "path_bytes_hex does not match path");
        let mut f = files.clone();
        f[1].first_row = 238;
        refused(&f, "starts at row 238, expected 237");
        let mut f = files.clone();
        f[0].status = FileStatus::Padded { missing_samples: 1 };
        refused(&f, "status padded does not fit 40960 samples");
        let mut f = files;
        f[0].rows = u64::MAX;
        refused(&f, "rows, its samples give 237");
    }
}
