//! The effective configuration of a run (SPEC §2), its TOML form and its checks.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $variant),+ }
        impl $name {
            /// The spelling used on the command line and in TOML.
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $s),+ } }
            /// Every accepted spelling.
            pub const NAMES: &'static [&'static str] = &[$($s),+];
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok($name::$variant),)+
                    _ => Err(format!("`{s}` is not one of: {}", Self::NAMES.join(", "))),
                }
            }
        }
    };
}

string_enum!(
    /// How many segments a file gives.
    LengthMode {
        /// Every file gives the rows of `clip_samples` samples (padded or truncated).
        Fixed => "fixed",
        /// Segments only where the file has samples.
        Natural => "natural",
    }
);
string_enum!(
    /// Mel scale, as torchaudio's `mel_scale`.
    MelScale {
        /// HTK formula.
        Htk => "htk",
        /// Slaney (Auditory Toolbox) formula.
        Slaney => "slaney",
    }
);
string_enum!(
    /// Mel filter normalisation, as torchaudio's `norm`.
    MelNorm {
        /// No normalisation.
        None => "none",
        /// Area normalisation (each filter divided by its width in Hz).
        Slaney => "slaney",
    }
);
string_enum!(
    /// Pooling of STFT frames within a segment.
    Pool {
        /// One frame per segment: mean of the mel power over frames.
        Mean => "mean",
        /// Every STFT frame.
        None => "none",
    }
);
string_enum!(
    /// Element type of the stored features.
    Dtype {
        /// IEEE half.
        F16 => "f16",
        /// IEEE single.
        F32 => "f32",
    }
);
string_enum!(
    /// Mapping table stored beside the features.
    MappingKind {
        /// The seed's int64 table.
        I64 => "i64",
        /// Same columns, int32.
        I32 => "i32",
        /// No mapping file.
        None => "none",
    }
);
string_enum!(
    /// File names of the output folder.
    Layout {
        /// `features.npy`, `mapping.npy`, `manifest.json`.
        Default => "default",
        /// The seed's `PIPELINE_FEATURES.DAT` (raw) and `PIPELINE_MEMMAP.npy`.
        Seed => "seed",
    }
);

impl Dtype {
    /// Bytes per stored value.
    pub fn size(self) -> usize {
        match self {
            Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }
    /// NumPy `descr` string.
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::F16 => "<f2",
            Dtype::F32 => "<f4",
        }
    }
}

impl MappingKind {
    /// Bytes per stored value, `None` when no mapping file is written.
    pub fn size(self) -> Option<usize> {
        match self {
            MappingKind::I64 => Some(8),
            MappingKind::I32 => Some(4),
            MappingKind::None => None,
        }
    }
    /// NumPy `descr` string, `None` when no mapping file is written.
    pub fn descr(self) -> Option<&'static str> {
        match self {
            MappingKind::I64 => Some("<i8"),
            MappingKind::I32 => Some("<i4"),
            MappingKind::None => None,
        }
    }
}

/// Which channel of a multi-channel file is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Mean of all channels.
    Mix,
    /// One channel, by index from 0.
    Index(u16),
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Mix => f.write_str("mix"),
            Channel::Index(i) => write!(f, "{i}"),
        }
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.eq_ignore_ascii_case("mix") {
            return Ok(Channel::Mix);
        }
        s.parse::<u16>()
            .map(Channel::Index)
            .map_err(|_| format!("`{s}` is neither `mix` nor a channel index (0, 1, ...)"))
    }
}

impl Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            I(u16),
        }
        match Raw::deserialize(d)? {
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
            Raw::I(i) => Ok(Channel::Index(i)),
        }
    }
}

/// The effective configuration of a run: every parameter of SPEC §2 plus the pipeline's knobs.
///
/// Read from TOML (every field optional, unknown keys rejected), overridden by command-line flags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Hz; every input must have it.
    pub sample_rate: u32,
    /// Samples per clip in `fixed` length mode.
    pub clip_samples: usize,
    /// `fixed` or `natural`.
    pub length: LengthMode,
    /// Long window, in samples.
    pub long_win: usize,
    /// Hop between long windows.
    pub long_hop: usize,
    /// Short window (the segment), in samples.
    pub short_win: usize,
    /// Hop between short windows inside a long window.
    pub short_hop: usize,
    /// FFT size of the STFT of each segment.
    pub n_fft: usize,
    /// Hann window length (≤ n_fft, centred in the FFT frame as torchaudio does).
    pub win_length: usize,
    /// Hop between STFT frames.
    pub hop_length: usize,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest mel frequency, Hz.
    pub f_min: f64,
    /// Highest mel frequency, Hz; `sample_rate / 2` when absent.
    pub f_max: Option<f64>,
    /// `htk` or `slaney`.
    pub mel_scale: MelScale,
    /// `none` or `slaney`.
    pub norm: MelNorm,
    /// `mean` or `none`.
    pub pool: Pool,
    /// Clip each segment's values to `max − top_db`.
    pub top_db: Option<f64>,
    /// Stored dtype.
    pub dtype: Dtype,
    /// `auto`, `cpu`, `cuda`, `cuda:N`, `cuda:all`.
    pub device: String,
    /// `mix` or a channel index.
    pub channel: Channel,
    /// Mapping table kind.
    pub mapping: MappingKind,
    /// Output file names.
    pub layout: Layout,
    /// Stop at the first failed file (exit 3).
    pub strict: bool,
    /// Reader threads (0: chosen from the machine).
    pub readers: usize,
    /// CPU compute threads (0: one per core).
    pub threads: usize,
    /// Files per task (the unit read, computed and written together).
    pub files_per_task: usize,
    /// Tasks in flight between reading and writing (bounds memory).
    pub queue_depth: usize,
    /// CUDA streams per GPU.
    pub streams: usize,
    /// A GPU run's first files computed by CPU threads while the GPU starts (none: sized from
    /// the machine and the parameters; 0: none). The output records the number used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_head: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sample_rate: 4096,
            clip_samples: 40960,
            length: LengthMode::Fixed,
            long_win: 1024,
            long_hop: 512,
            short_win: 512,
            short_hop: 256,
            n_fft: 64,
            win_length: 64,
            hop_length: 16,
            n_mels: 32,
            f_min: 0.0,
            f_max: None,
            mel_scale: MelScale::Htk,
            norm: MelNorm::None,
            pool: Pool::Mean,
            top_db: None,
            dtype: Dtype::F16,
            device: "auto".to_string(),
            channel: Channel::Mix,
            mapping: MappingKind::I64,
            layout: Layout::Default,
            strict: false,
            readers: 0,
            threads: 0,
            files_per_task: 0,
            queue_depth: 0,
            streams: 0,
            cpu_head: None,
        }
    }
}

impl Config {
    /// Parses a TOML document; unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(format!("{e}")))
    }

    /// The configuration as TOML, every key present (absent options are commented).
    pub fn to_toml(&self) -> String {
        let mut s = toml::to_string(self).unwrap_or_default();
        if self.f_max.is_none() {
            s.push_str("# f_max = sample_rate / 2 when absent\n");
        }
        if self.top_db.is_none() {
            s.push_str("# top_db = 80.0  (absent: no clipping)\n");
        }
        s
    }

    /// Names of the keys whose values differ between `self` and `other`, sorted.
    pub fn differing_keys(&self, other: &Config) -> Vec<String> {
        let a = toml::Table::try_from(self).unwrap_or_default();
        let b = toml::Table::try_from(other).unwrap_or_default();
        a.keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// `f_max`, defaulted to the Nyquist frequency.
    pub fn f_max(&self) -> f64 {
        self.f_max.unwrap_or(self.sample_rate as f64 / 2.0)
    }

    /// Number of one-sided frequency bins, `n_fft / 2 + 1`.
    pub fn n_freqs(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// STFT frames of one segment (`center = true`): the segment is padded by `n_fft / 2` on
    /// both sides, so `1 + (short_win + 2·(n_fft/2) − n_fft) / hop_length` as torch.stft counts
    /// (`1 + short_win / hop_length` for even `n_fft`).
    pub fn stft_frames(&self) -> usize {
        1 + (self.short_win + 2 * (self.n_fft / 2) - self.n_fft) / self.hop_length
    }

    /// Frames stored per row: 1 with mean pooling, every STFT frame otherwise.
    pub fn out_frames(&self) -> usize {
        match self.pool {
            Pool::Mean => 1,
            Pool::None => self.stft_frames(),
        }
    }

    /// Values stored per row: `n_mels × out_frames`.
    pub fn values_per_row(&self) -> usize {
        self.n_mels * self.out_frames()
    }

    /// Checks every parameter and their relations; the message says what to change.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(Error::Config(m));
        if self.sample_rate == 0 {
            return err("sample_rate must be > 0".into());
        }
        for (name, v) in [
            ("long_win", self.long_win),
            ("long_hop", self.long_hop),
            ("short_win", self.short_win),
            ("short_hop", self.short_hop),
            ("n_fft", self.n_fft),
            ("win_length", self.win_length),
            ("hop_length", self.hop_length),
            ("n_mels", self.n_mels),
        ] {
            if v == 0 {
                return err(format!("{name} must be > 0"));
            }
        }
        for (name, v) in [
            ("clip_samples", self.clip_samples),
            ("long_win", self.long_win),
            ("long_hop", self.long_hop),
            ("short_win", self.short_win),
            ("short_hop", self.short_hop),
            ("hop_length", self.hop_length),
        ] {
            if v > MAX_SAMPLES {
                return err(format!(
                    "{name} ({v}) is above the limit of {MAX_SAMPLES} samples (2^28: {:.1} hours at {} Hz)",
                    MAX_SAMPLES as f64 / f64::from(self.sample_rate) / 3600.0,
                    self.sample_rate
                ));
            }
        }
        for (name, v, max) in [
            ("readers", self.readers, MAX_THREADS),
            ("threads", self.threads, MAX_THREADS),
            ("streams", self.streams, MAX_STREAMS),
            ("queue_depth", self.queue_depth, MAX_QUEUE_DEPTH),
        ] {
            if v > max {
                return err(format!(
                    "{name} ({v}) is above the limit of {max} (0 chooses it from the machine)"
                ));
            }
        }
        if self.short_win > self.long_win {
            return err(format!(
                "short_win ({}) must not exceed long_win ({})",
                self.short_win, self.long_win
            ));
        }
        if self.length == LengthMode::Fixed && self.clip_samples < self.long_win {
            return err(format!(
                "clip_samples ({}) must be at least long_win ({}) in fixed length mode",
                self.clip_samples, self.long_win
            ));
        }
        if self.n_fft < 2 {
            return err("n_fft must be at least 2".into());
        }
        if self.win_length > self.n_fft {
            return err(format!(
                "win_length ({}) must not exceed n_fft ({})",
                self.win_length, self.n_fft
            ));
        }
        if self.short_win <= self.n_fft / 2 {
            return err(format!(
                "short_win ({}) must exceed n_fft/2 ({}): reflect padding of a segment needs more samples than the padding",
                self.short_win,
                self.n_fft / 2
            ));
        }
        let nyquist = self.sample_rate as f64 / 2.0;
        if !(self.f_min.is_finite() && self.f_min >= 0.0) {
            return err(format!("f_min ({}) must be ≥ 0", self.f_min));
        }
        let f_max = self.f_max();
        if !f_max.is_finite() || f_max > nyquist + 1e-9 {
            return err(format!(
                "f_max ({f_max}) must not exceed sample_rate/2 ({nyquist})"
            ));
        }
        if self.f_min >= f_max {
            return err(format!(
                "f_min ({}) must be below f_max ({f_max})",
                self.f_min
            ));
        }
        if let Some(t) = self.top_db {
            if !(t.is_finite() && t >= 0.0) {
                return err(format!("top_db ({t}) must be a number ≥ 0"));
            }
        }
        if self.n_mels > 4096 || self.n_fft > 1 << 16 {
            return err("n_mels ≤ 4096 and n_fft ≤ 65536 are supported".into());
        }
        // Every size is bounded now: n_mels × frames × 4 fits in u64; rows × row_bytes may not.
        let row_bytes = (self.values_per_row() * 4) as u64;
        if row_bytes > MAX_CLIP_MEMORY {
            return err(format!(
                "one row of features would take {} MiB as f32 (n_mels {} × {} STFT frames with pool none), above the limit of {} MiB: raise hop_length or use pool mean",
                row_bytes >> 20,
                self.n_mels,
                self.stft_frames(),
                MAX_CLIP_MEMORY >> 20
            ));
        }
        if self.length == LengthMode::Fixed {
            let geometry = crate::geometry::Geometry::new(self);
            let rows = geometry.rows(None) as u64;
            let clip =
                (self.clip_samples as u64 * 4).saturating_add(rows.saturating_mul(row_bytes));
            if clip > MAX_CLIP_MEMORY {
                return err(format!(
                    "one clip of clip_samples {} would take {} MiB in memory (its samples as f32 and {rows} rows of features), above the limit of {} MiB: lower clip_samples, or use length natural",
                    self.clip_samples,
                    clip >> 20,
                    MAX_CLIP_MEMORY >> 20
                ));
            }
        }
        parse_device(&self.device)?;
        Ok(())
    }
}

/// The most samples of a clip, window or hop: 2^28 (18 hours at 4096 Hz, 93 minutes at
/// 48 kHz). Larger values are typing mistakes; they used to pass validation and abort the
/// process on an allocation of hundreds of gigabytes.
pub const MAX_SAMPLES: usize = 1 << 28;

/// The most memory one clip of fixed mode (its samples as f32 and its rows of features) or one
/// row of features may take: 1 GiB. Tasks hold at least one clip each, and several tasks are in
/// flight, so a larger clip could not keep the run within memory.
pub const MAX_CLIP_MEMORY: u64 = 1 << 30;

/// The most reader or compute threads.
pub const MAX_THREADS: usize = 1024;

/// The most compute streams per GPU.
pub const MAX_STREAMS: usize = 64;

/// The largest `queue_depth`. A run also caps it at the number of tasks it has.
pub const MAX_QUEUE_DEPTH: usize = 1 << 16;

/// A parsed `device` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// GPU when usable, else CPU.
    Auto,
    /// CPU backend.
    Cpu,
    /// One GPU by ordinal.
    Cuda(usize),
    /// Every GPU of the host.
    CudaAll,
}

/// Parses `auto`, `cpu`, `cuda`, `cuda:N`, `cuda:all`.
pub fn parse_device(s: &str) -> Result<DeviceChoice> {
    let l = s.to_ascii_lowercase();
    match l.as_str() {
        "auto" => Ok(DeviceChoice::Auto),
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
        "cuda:all" => Ok(DeviceChoice::CudaAll),
        _ => match l.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(DeviceChoice::Cuda(n)),
            _ => Err(Error::Config(format!(
                "device `{s}` is not one of auto, cpu, cuda, cuda:N, cuda:all"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_values_and_valid() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.n_freqs(), 33);
        assert_eq!(c.stft_frames(), 33);
        assert_eq!(c.values_per_row(), 32);
        assert_eq!(c.f_max(), 2048.0);
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = Config {
            top_db: Some(80.0),
            channel: Channel::Index(1),
            pool: Pool::None,
            ..Config::default()
        };
        let back = Config::from_toml(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        let e = Config::from_toml("n_melz = 3").unwrap_err().to_string();
        assert!(e.contains("n_melz"), "{e}");
        let c = Config::from_toml("channel = \"mix\"\nmel_scale = \"slaney\"").unwrap();
        assert_eq!(c.mel_scale, MelScale::Slaney);
    }

    #[test]
    fn absurd_sizes_are_refused_with_the_limit() {
        let check = |c: Config, name: &str, limit: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(limit), "{e}");
        };
        let huge = 1_000_000_000_000;
        check(
            Config {
                clip_samples: huge,
                ..Config::default()
            },
            "clip_samples",
            "268435456",
        );
        check(
            Config {
                length: LengthMode::Natural,
                long_win: huge,
                ..Config::default()
            },
            "long_win",
            "268435456",
        );
        check(
            Config {
                queue_depth: 1_000_000_000,
                ..Config::default()
            },
            "queue_depth",
            "65536",
        );
        check(
            Config {
                threads: 1_000_000,
                ..Config::default()
            },
            "threads",
            "1024",
        );
        // Within the sample limit but over the memory of one clip: 2^28 samples of f32 is 1 GiB.
        check(
            Config {
                clip_samples: MAX_SAMPLES,
                ..Config::default()
            },
            "clip_samples",
            "1024 MiB",
        );
        check(
            Config {
                pool: Pool::None,
                length: LengthMode::Natural,
                long_win: MAX_SAMPLES,
                short_win: MAX_SAMPLES,
                hop_length: 1,
                n_mels: 4096,
                ..Config::default()
            },
            "one row",
            "1024 MiB",
        );
        let ok = Config {
            clip_samples: 10_000_000,
            ..Config::default()
        };
        ok.validate().unwrap();
    }

    #[test]
    fn validation_rejects_short_segments_and_bad_f_max() {
        let c = Config {
            short_win: 32,
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("short_win"), "{e}");
        let c = Config {
            f_max: Some(3000.0),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("f_max"));
        let c = Config {
            hop_length: 0,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("hop_length"));
        let c = Config {
            device: "tpu".into(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn differing_keys_names_every_changed_key() {
        let a = Config::default();
        assert!(a.differing_keys(&a).is_empty());
        let b = Config {
            n_mels: 64,
            top_db: Some(80.0),
            ..Config::default()
        };
        assert_eq!(a.differing_keys(&b), ["n_mels", "top_db"]);
        assert_eq!(b.differing_keys(&a), ["n_mels", "top_db"]);
    }

    #[test]
    fn device_parsing() {
        assert_eq!(parse_device("cuda:3").unwrap(), DeviceChoice::Cuda(3));
        assert_eq!(parse_device("CUDA").unwrap(), DeviceChoice::Cuda(0));
        assert_eq!(parse_device("cuda:all").unwrap(), DeviceChoice::CudaAll);
        assert!(parse_device("cuda:x").is_err());
    }
}
