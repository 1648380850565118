//! What a run is given: [`Params`] (what shapes the output bytes) and [`RunOptions`] (how the run
//! goes), both defined once in [`crate::settings_table!`]; their TOML form ([`Settings`]) and their checks.

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

/// The audio formats melpipe decodes, each with the file-name extensions that name it: WAV by
/// its own parser, the others through symphonia ([`crate::decode`]). What a file holds is told
/// from its bytes, never from its name: the extension only selects files in a folder walk.
pub const AUDIO_EXTENSIONS: &[(&str, &str)] = &[
    ("wav", "WAV (RIFF, RF64, BW64, RIFX)"),
    ("wave", "WAV"),
    ("flac", "FLAC"),
    ("mp3", "MP3"),
    ("ogg", "Ogg Vorbis"),
    ("oga", "Ogg Vorbis"),
    ("aiff", "AIFF / AIFF-C"),
    ("aif", "AIFF / AIFF-C"),
    ("aifc", "AIFF / AIFF-C"),
];

/// The file-name extensions a folder walk takes (`ext`), lower-case, sorted, without repeats;
/// matched in any case. Files named one by one or in an `@list` are taken whatever their names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Extensions(Vec<String>);

impl Extensions {
    /// Every extension in [`AUDIO_EXTENSIONS`].
    pub fn all() -> Self {
        Self::new(AUDIO_EXTENSIONS.iter().map(|(e, _)| e.to_string()))
            .expect("the table's extensions are valid")
    }

    /// The set of `names` (a leading dot and the case are ignored); an error names an
    /// extension melpipe does not decode, or an empty set.
    pub fn new(names: impl IntoIterator<Item = String>) -> std::result::Result<Self, String> {
        let mut v = Vec::new();
        for n in names {
            let n = n.trim().trim_start_matches('.').to_ascii_lowercase();
            if n.is_empty() {
                continue;
            }
            if !AUDIO_EXTENSIONS.iter().any(|(e, _)| *e == n) {
                let known: Vec<&str> = AUDIO_EXTENSIONS.iter().map(|(e, _)| *e).collect();
                return Err(format!(
                    "`{n}` is not an audio extension melpipe reads (it reads {})",
                    known.join(", ")
                ));
            }
            v.push(n);
        }
        v.sort();
        v.dedup();
        if v.is_empty() {
            return Err("ext names no extension (give e.g. `wav,flac`)".into());
        }
        Ok(Extensions(v))
    }

    /// The extensions, sorted.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether a file name ends in `.` and one of the extensions, any case.
    pub fn matches(&self, name: &std::ffi::OsStr) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let b = name.as_bytes();
        self.0.iter().any(|e| {
            let e = e.as_bytes();
            b.len() > e.len() + 1
                && b[b.len() - e.len() - 1] == b'.'
                && b[b.len() - e.len()..].eq_ignore_ascii_case(e)
        })
    }
}

impl Default for Extensions {
    fn default() -> Self {
        Self::all()
    }
}

impl fmt::Display for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

impl FromStr for Extensions {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Extensions::new(s.split(',').map(str::to_owned))
    }
}

impl Serialize for Extensions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Extensions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::List(v) => Extensions::new(v),
            Raw::Text(t) => t.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl FromFlag<String> for Extensions {
    fn from_flag(v: String) -> Result<Self> {
        v.parse()
            .map_err(|e: String| Error::Config(format!("--ext: {e}")))
    }
}

/// Every parameter and run option that has a flag and a TOML key, defined once: its heading in
/// `melpipe run --help`, its field (the TOML key; the flag is the key with `-`), the type stored
/// in [`Params`] or [`RunOptions`], the type the flag takes, the default, the default as the
/// help and the README show it (empty: the help says it), and the help text.
///
/// Each entry starts with `params` (it shapes the output: a field of [`Params`]) or `run` (a field
/// of [`RunOptions`]), the name of its place in [`Settings`]. `$callback` receives the list in
/// the order of `--help`; this crate builds [`Params`], [`RunOptions`] and [`DEFINITIONS`] from
/// it, and the command line builds its flags from the same list, so that a parameter added here
/// appears everywhere at once.
#[macro_export]
macro_rules! settings_table {
    ($callback:path) => {
        $callback! {
            run [Device] device: $crate::config::DeviceChoice => String = $crate::config::DeviceChoice::Auto, "auto",
                "auto (cuda:0 when an NVIDIA GPU, libcuda and libnvrtc are present and a cost model of the parameters expects it to be at least as fast as every CPU core, else CPU; the choice and its reason are in -v and the manifest; a GPU that then fails to start falls back to the CPU with a warning), cpu, cuda (exit 2 if the GPU cannot start, with the reason), cuda:N, cuda:all (every visible GPU).";
            params [Signal] sample_rate: u32 => u32 = 4096, "4096",
                "Sample rate of the features, Hz. A file at another rate fails, unless `resample` converts it.";
            params [Signal] resample: bool => bool = false, "off",
                "Convert every file at another sample rate to `sample_rate` first (torchaudio.functional.resample: sinc, Hann window, 6 zero crossings, rolloff 0.99). `--resample` alone turns it on; `--resample=false` off.";
            params [Signal] ext: $crate::config::Extensions => String = $crate::config::Extensions::all(), "every audio extension",
                "Extensions a folder walk takes, comma-separated: wav, wave, flac, mp3, ogg, oga, aiff, aif, aifc (any case). Files named one by one or in an @list are read whatever their names; a file's format is told from its bytes.";
            params [Signal] clip_samples: usize => usize = 40960, "40960",
                "Samples per clip in fixed mode (shorter files zero-padded, longer truncated; at most 2^28, and one clip's samples and features within 1 GiB).";
            params [Signal] length: $crate::config::LengthMode => $crate::config::LengthMode = $crate::config::LengthMode::Fixed, "fixed",
                "fixed: every file gives the same rows; natural: rows only where the file has samples.";
            params [Signal] channel: $crate::config::Channel => $crate::config::Channel = $crate::config::Channel::Mix, "mix",
                "Channel of multi-channel files: mix (mean of channels) or an index from 0.";
            params [Segments] long_win: usize => usize = 1024, "1024",
                "Long window, samples.";
            params [Segments] long_hop: usize => usize = 512, "512",
                "Hop between long windows.";
            params [Segments] short_win: usize => usize = 512, "512",
                "Short window (one row), samples.";
            params [Segments] short_hop: usize => usize = 256, "256",
                "Hop between short windows inside a long one.";
            params [Spectrogram] n_fft: usize => usize = 64, "64",
                "FFT size.";
            params [Spectrogram] win_length: usize => usize = 64, "64",
                "Hann window length (≤ n_fft).";
            params [Spectrogram] hop_length: usize => usize = 16, "16",
                "Hop between STFT frames.";
            params [Spectrogram] n_mels: usize => usize = 32, "32",
                "Mel bands.";
            params [Spectrogram] f_min: f64 => f64 = 0.0, "0",
                "Lowest mel frequency, Hz.";
            params [Spectrogram] f_max: Option<f64> => f64 = None, "sample_rate/2",
                "Highest mel frequency, Hz.";
            params [Spectrogram] mel_scale: $crate::config::MelScale => $crate::config::MelScale = $crate::config::MelScale::Htk, "htk",
                "htk or slaney.";
            params [Spectrogram] norm: $crate::config::MelNorm => $crate::config::MelNorm = $crate::config::MelNorm::None, "none",
                "Mel filter normalisation: none or slaney.";
            params [Spectrogram] pool: $crate::config::Pool => $crate::config::Pool = $crate::config::Pool::Mean, "mean",
                "mean: one frame per row (mean mel power before the log); none: every STFT frame.";
            params [Spectrogram] top_db: Option<f64> => f64 = None, "none",
                "Clip each row to its maximum minus this many dB.";
            params [Output] dtype: $crate::config::Dtype => $crate::config::Dtype = $crate::config::Dtype::F16, "f16",
                "Stored feature dtype: f16 or f32.";
            params [Output] mapping: $crate::config::MappingKind => $crate::config::MappingKind = $crate::config::MappingKind::I64, "i64",
                "Mapping table: i64 (the seed's), i32 (half the bytes) or none.";
            params [Output] layout: $crate::config::Layout => $crate::config::Layout = $crate::config::Layout::Default, "default",
                "seed: write PIPELINE_FEATURES.DAT (raw) and PIPELINE_MEMMAP.npy instead.";
            run [Pipeline] readers: usize => usize = 0, "0",
                "Reader threads (0: automatic; at most 1024).";
            run [Pipeline] threads: usize => usize = 0, "0",
                "CPU compute threads, also when `--device auto` falls back to the CPU (0: one per core; at most 1024).";
            run [Pipeline] files_per_task: usize => usize = 0, "0",
                "Files per task, the unit read, computed and written together (0: automatic).";
            run [Pipeline] queue_depth: usize => usize = 0, "0",
                "Tasks in flight between reading and writing; bounds memory (0: automatic; at most 65536, and never more than the run has tasks). A GPU run may also hold computed tasks, up to about 192 MiB of features, waiting for the disk.";
            run [Pipeline] streams: usize => usize = 0, "0",
                "Compute streams per GPU (0: automatic; at most 64).";
            run [Pipeline] cpu_head: Option<usize> => usize = None, "",
                "GPU runs: how many of the first files CPU threads compute while the GPU starts, so that rows reach the disk from the first moment (0: none). Automatic: what half the CPU threads compute in about 0.15 s, from the parameters and the thread count, never from timing, so the same machine always splits the same way. The two backends agree to rounding; the manifest records the number, and a resume keeps it";
        }
    };
}

/// One entry of [`crate::settings_table!`], for documentation and checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Definition {
    /// TOML key and field name; the flag is `--` and the key with `-` for `_`.
    pub key: &'static str,
    /// Heading of the flag in `melpipe run --help`.
    pub heading: &'static str,
    /// The default as the help and the README show it (empty: the help says it).
    pub default: &'static str,
    /// The help text.
    pub help: &'static str,
    /// Whether it shapes the output ([`Params`]) or only how the run goes ([`RunOptions`]).
    pub shapes_output: bool,
}

impl Definition {
    /// The flag's help: the text and, where there is one, `[default: …]`.
    pub fn flag_help(help: &str, default: &str) -> String {
        if default.is_empty() {
            help.to_string()
        } else {
            format!("{help} [default: {default}]")
        }
    }
}

/// Converts a flag's value into the stored value of its setting.
pub trait FromFlag<T>: Sized {
    /// The stored value, or why the flag's value is refused.
    fn from_flag(v: T) -> Result<Self>;
}

impl<T> FromFlag<T> for T {
    fn from_flag(v: T) -> Result<Self> {
        Ok(v)
    }
}

impl<T> FromFlag<T> for Option<T> {
    fn from_flag(v: T) -> Result<Self> {
        Ok(Some(v))
    }
}

impl FromFlag<String> for DeviceChoice {
    fn from_flag(v: String) -> Result<Self> {
        parse_device(&v)
    }
}

macro_rules! define_settings {
    // Sorts the entries into the two structs' lists, keeping their order.
    (@split [$($p:tt)*] [$($r:tt)*]) => {
        define_settings! { @emit params: $($p)* run: $($r)* }
    };
    (@split [$($p:tt)*] [$($r:tt)*]
        params [$h:ident] $n:ident : $t:ty => $f:ty = $d:expr, $dt:literal, $help:literal; $($rest:tt)*) => {
        define_settings! { @split [$($p)* [$h] $n: $t => $f = $d, $dt, $help;] [$($r)*] $($rest)* }
    };
    (@split [$($p:tt)*] [$($r:tt)*]
        run [$h:ident] $n:ident : $t:ty => $f:ty = $d:expr, $dt:literal, $help:literal; $($rest:tt)*) => {
        define_settings! { @split [$($p)*] [$($r)* [$h] $n: $t => $f = $d, $dt, $help;] $($rest)* }
    };
    (@emit
        params: $([$ph:ident] $p:ident : $pt:ty => $pf:ty = $pd:expr, $pdt:literal, $phelp:literal;)*
        run: $([$rh:ident] $r:ident : $rt:ty => $rf:ty = $rd:expr, $rdt:literal, $rhelp:literal;)*
    ) => {
        /// The parameters: everything that shapes the output bytes. They are journaled, written
        /// to the manifest's `config`, and compared on resume and merge. How a run goes (threads,
        /// device, queue) is [`RunOptions`], never persisted.
        ///
        /// Read from TOML (every key optional, unknown keys rejected), overridden by flags; each
        /// field is defined once, in [`crate::settings_table!`].
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Params {
            $(#[doc = $phelp] pub $p: $pt,)*
        }

        impl Default for Params {
            fn default() -> Self {
                Params { $($p: $pd,)* }
            }
        }

        /// How a run goes: device choice, threads, queue depth, the CPU head, `--strict` and the
        /// tuning for benchmarks. Nothing here changes the output bytes, so nothing here is
        /// journaled or compared on resume; a resume may use other values.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct RunOptions {
            $(#[doc = $rhelp] pub $r: $rt,)*
            /// Stop at the first failed file (exit 3); also `--strict`.
            pub strict: bool,
            /// Tuning for benchmarks and tests (hidden flags; not a TOML key).
            #[serde(skip)]
            pub tuning: Tuning,
        }

        impl Default for RunOptions {
            fn default() -> Self {
                RunOptions { $($r: $rd,)* strict: false, tuning: Tuning::default() }
            }
        }

        /// Every setting with a flag and a TOML key: the parameters, then the run options.
        pub const DEFINITIONS: &[Definition] = &[
            $(Definition { key: stringify!($p), heading: stringify!($ph), default: $pdt, help: $phelp, shapes_output: true },)*
            $(Definition { key: stringify!($r), heading: stringify!($rh), default: $rdt, help: $rhelp, shapes_output: false },)*
        ];

        impl Params {
            /// The TOML keys of the parameters.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($p)),*];
        }

        impl RunOptions {
            /// The TOML keys of the run options.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($r),)* "strict"];
        }
    };
    ($($entries:tt)*) => {
        define_settings! { @split [] [] $($entries)* }
    };
}

settings_table!(define_settings);

/// Knobs for benchmarks and tests, reachable from hidden flags of `melpipe run`. The defaults
/// are the measured choices (docs/PERFORMANCE.md).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tuning {
    /// MiB of computed features a device run may hold past the queue depth while their rows wait
    /// for the disk (none: 192; 0 turns it off: each compute thread writes its own rows).
    pub ahead_mib: Option<f64>,
    /// Seconds between journal checkpoints (none: 1).
    pub checkpoint_secs: Option<f64>,
    /// Positioned writes from this many bytes start their own writeback (none: 1 MiB).
    pub own_writeback_min: Option<u64>,
}

/// Legacy keys of a manifest's or a journal's `config` written before the run options had a type
/// of their own: ignored when reading them.
const LEGACY_RUN_KEYS: &[&str] = &[
    "device",
    "strict",
    "readers",
    "threads",
    "files_per_task",
    "queue_depth",
    "streams",
    "cpu_head",
];

/// Reads [`Params`] from a manifest or journal: the run options that earlier versions wrote
/// beside them are dropped, every other unknown key is still refused.
pub fn deserialize_params_lenient<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Params, D::Error> {
    use serde::de::Error as _;
    let mut map = d.deserialize_map(UniqueKeys)?;
    for k in LEGACY_RUN_KEYS {
        map.remove(*k);
    }
    Params::deserialize(serde_json::Value::Object(map)).map_err(D::Error::custom)
}

/// A JSON object read into a map, refusing a key given twice (as the derived `Params` reader
/// does: a plain map would keep the last value).
struct UniqueKeys;

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = serde_json::Map<String, serde_json::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of parameters")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut access: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let mut map = serde_json::Map::new();
        while let Some((k, v)) = access.next_entry::<String, serde_json::Value>()? {
            if map.contains_key(&k) {
                return Err(A::Error::custom(format!("duplicate field `{k}`")));
            }
            map.insert(k, v);
        }
        Ok(map)
    }
}

/// What a `--config` file holds: parameters and run options side by side, with the keys of
/// `--print-config`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// What shapes the output.
    pub params: Params,
    /// How the run goes.
    pub run: RunOptions,
}

/// The first value of `params` or `run` (in the order of the file) that does not convert to its
/// type, as an error naming its line and column in `text` like the TOML parser's own errors.
fn value_error(text: &str, params: &toml::Table, run: &toml::Table) -> Option<Error> {
    let spans: std::collections::BTreeMap<String, toml::Spanned<toml::Value>> =
        toml::from_str(text).ok()?;
    let mut keys: Vec<(&String, &toml::Spanned<toml::Value>)> = spans.iter().collect();
    keys.sort_by_key(|(_, v)| v.span().start);
    for (k, v) in keys {
        let one = |t: &toml::Table| {
            t.get(k).map(|value| {
                let mut single = toml::Table::new();
                single.insert(k.clone(), value.clone());
                toml::Value::Table(single)
            })
        };
        let err = if let Some(t) = one(params) {
            t.try_into::<Params>().err()
        } else if let Some(t) = one(run) {
            t.try_into::<RunOptions>().err()
        } else {
            None
        };
        let Some(err) = err else { continue };
        let span = v.span();
        let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[span.start..]
            .find('\n')
            .map_or(text.len(), |i| span.start + i);
        let line_no = text[..span.start].matches('\n').count() + 1;
        let column = text[line_start..span.start].chars().count() + 1;
        let width = text[span.start..span.end.min(line_end)]
            .chars()
            .count()
            .max(1);
        let gutter = " ".repeat(line_no.to_string().len());
        return Some(Error::Config(format!(
            "TOML parse error at line {line_no}, column {column}\n{gutter} |\n{line_no} | {}\n{gutter} | {}{}\n{}\n",
            &text[line_start..line_end],
            " ".repeat(column - 1),
            "^".repeat(width),
            err.message()
        )));
    }
    None
}

impl Settings {
    /// Parses a TOML document; unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<Self> {
        let table: toml::Table = toml::from_str(text).map_err(|e| Error::Config(format!("{e}")))?;
        let (mut params, mut run) = (toml::Table::new(), toml::Table::new());
        for (k, v) in table {
            if Params::KEYS.contains(&k.as_str()) {
                params.insert(k, v);
            } else if RunOptions::KEYS.contains(&k.as_str()) {
                run.insert(k, v);
            } else {
                let expected: Vec<String> = Params::KEYS
                    .iter()
                    .chain(RunOptions::KEYS)
                    .map(|k| format!("`{k}`"))
                    .collect();
                return Err(Error::Config(format!(
                    "unknown field `{k}`, expected one of {}",
                    expected.join(", ")
                )));
            }
        }
        let bad = |e: toml::de::Error| Error::Config(format!("{e}"));
        match (
            toml::Value::Table(params.clone()).try_into(),
            toml::Value::Table(run.clone()).try_into(),
        ) {
            (Ok(params), Ok(run)) => Ok(Settings { params, run }),
            // Converting a table loses the place of the value in the file: find the first key
            // whose value does not convert and point at it as the TOML parser does.
            (p, r) => Err(value_error(text, &params, &run)
                .unwrap_or_else(|| bad(p.err().or(r.err()).expect("one side failed")))),
        }
    }

    /// The settings as TOML, every key present (absent options are commented).
    pub fn to_toml(&self) -> String {
        let mut s = toml::to_string(&self.params).unwrap_or_default();
        s.push_str(&toml::to_string(&self.run).unwrap_or_default());
        if self.params.f_max.is_none() {
            s.push_str("# f_max = sample_rate / 2 when absent\n");
        }
        if self.params.top_db.is_none() {
            s.push_str("# top_db = 80.0  (absent: no clipping)\n");
        }
        s
    }

    /// Checks the parameters, then the run options.
    pub fn validate(&self) -> Result<()> {
        self.params.validate()?;
        self.run.validate()
    }
}

impl RunOptions {
    /// Checks the limits of the pipeline's knobs; the message says what to change.
    pub fn validate(&self) -> Result<()> {
        for (name, v, max) in [
            ("readers", self.readers, MAX_THREADS),
            ("threads", self.threads, MAX_THREADS),
            ("streams", self.streams, MAX_STREAMS),
            ("queue_depth", self.queue_depth, MAX_QUEUE_DEPTH),
        ] {
            if v > max {
                return Err(Error::Config(format!(
                    "{name} ({v}) is above the limit of {max} (0 chooses it from the machine)"
                )));
            }
        }
        if let Some(secs) = self.tuning.checkpoint_secs {
            if secs.is_nan() || secs < 0.0 {
                return Err(Error::Config(format!(
                    "checkpoint_secs ({secs}) must be a number of seconds ≥ 0"
                )));
            }
        }
        if let Some(mib) = self.tuning.ahead_mib {
            if !(mib.is_finite() && mib >= 0.0) {
                return Err(Error::Config(format!(
                    "ahead_mib ({mib}) must be a number of MiB ≥ 0"
                )));
            }
        }
        Ok(())
    }
}

impl Params {
    /// Names of the keys whose values differ between `self` and `other`, sorted.
    pub fn differing_keys(&self, other: &Params) -> Vec<String> {
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

    /// The defaults with one segment per clip of `samples` samples: the clip is the long and
    /// the short window (whole utterances; with `pool = None` every frame is kept).
    pub fn whole_clips(samples: usize) -> Params {
        Params {
            clip_samples: samples,
            long_win: samples,
            long_hop: samples,
            short_win: samples,
            short_hop: samples,
            ..Params::default()
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// GPU when usable, else CPU.
    #[default]
    Auto,
    /// CPU backend.
    Cpu,
    /// One GPU by ordinal.
    Cuda(usize),
    /// Every GPU of the host.
    CudaAll,
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceChoice::CudaAll => f.write_str("cuda:all"),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        parse_device(s)
    }
}

impl Serialize for DeviceChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // `cuda` as written, so that --print-config shows the setting as the user gives it.
        match self {
            DeviceChoice::Cuda(0) => s.serialize_str("cuda:0"),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for DeviceChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_device(&s).map_err(|e| match e {
            Error::Config(m) => serde::de::Error::custom(m),
            other => serde::de::Error::custom(other),
        })
    }
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

/// Which kind of backend computed a run's rows. The backends agree only to rounding, so a
/// resume keeps the kind (the journal records it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The CPU backend.
    Cpu,
    /// A CUDA GPU.
    Cuda,
}

impl BackendKind {
    /// `cpu` or `cuda`, as in the journal and in `--device`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_given_twice_in_a_manifest_or_journal_is_refused() {
        #[derive(serde::Deserialize)]
        struct Holder {
            #[serde(deserialize_with = "deserialize_params_lenient")]
            config: Params,
        }
        let ok: Holder =
            serde_json::from_str(r#"{"config": {"n_mels": 40, "threads": 3}}"#).unwrap();
        assert_eq!(ok.config.n_mels, 40);
        let twice = serde_json::from_str::<Holder>(r#"{"config": {"n_mels": 40, "n_mels": 64}}"#);
        let e = twice.err().expect("a repeated key is refused").to_string();
        assert!(e.contains("duplicate field `n_mels`"), "{e}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_shown_where_it_stands() {
        for (text, at) in [
            ("# first\nn_mels = \"x\"\n", "line 2, column 10"),
            ("threads = 2\nstreams = -1\n", "line 2, column 11"),
        ] {
            let e = Settings::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(at), "{e}");
            assert!(e.contains(" | "), "{e}");
            assert!(e.contains('^'), "{e}");
        }
    }

    #[test]
    fn defaults_are_the_seed_values_and_valid() {
        let c = Params::default();
        c.validate().unwrap();
        assert_eq!(c.n_freqs(), 33);
        assert_eq!(c.stft_frames(), 33);
        assert_eq!(c.values_per_row(), 32);
        assert_eq!(c.f_max(), 2048.0);
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = Settings {
            params: Params {
                top_db: Some(80.0),
                channel: Channel::Index(1),
                pool: Pool::None,
                ..Params::default()
            },
            run: RunOptions {
                device: DeviceChoice::Cuda(2),
                cpu_head: Some(7),
                strict: true,
                threads: 3,
                ..RunOptions::default()
            },
        };
        let back = Settings::from_toml(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        let e = Settings::from_toml("n_melz = 3").unwrap_err().to_string();
        assert!(e.contains("n_melz"), "{e}");
        let c =
            Settings::from_toml("channel = \"mix\"\nmel_scale = \"slaney\"\nthreads = 2").unwrap();
        assert_eq!(c.params.mel_scale, MelScale::Slaney);
        assert_eq!(c.run.threads, 2);
        let e = Settings::from_toml("device = \"tpu\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("device `tpu`"), "{e}");
    }

    #[test]
    fn absurd_sizes_are_refused_with_the_limit() {
        let check = |c: Params, name: &str, limit: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(limit), "{e}");
        };
        let huge = 1_000_000_000_000;
        check(
            Params {
                clip_samples: huge,
                ..Params::default()
            },
            "clip_samples",
            "268435456",
        );
        check(
            Params {
                length: LengthMode::Natural,
                long_win: huge,
                ..Params::default()
            },
            "long_win",
            "268435456",
        );
        let run = |r: RunOptions, name: &str, limit: &str| {
            let e = r.validate().unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(limit), "{e}");
        };
        run(
            RunOptions {
                queue_depth: 1_000_000_000,
                ..RunOptions::default()
            },
            "queue_depth",
            "65536",
        );
        run(
            RunOptions {
                threads: 1_000_000,
                ..RunOptions::default()
            },
            "threads",
            "1024",
        );
        // Within the sample limit but over the memory of one clip: 2^28 samples of f32 is 1 GiB.
        check(
            Params {
                clip_samples: MAX_SAMPLES,
                ..Params::default()
            },
            "clip_samples",
            "1024 MiB",
        );
        check(
            Params {
                pool: Pool::None,
                length: LengthMode::Natural,
                long_win: MAX_SAMPLES,
                short_win: MAX_SAMPLES,
                hop_length: 1,
                n_mels: 4096,
                ..Params::default()
            },
            "one row",
            "1024 MiB",
        );
        let ok = Params {
            clip_samples: 10_000_000,
            ..Params::default()
        };
        ok.validate().unwrap();
    }

    #[test]
    fn validation_rejects_short_segments_and_bad_f_max() {
        let c = Params {
            short_win: 32,
            ..Params::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("short_win"), "{e}");
        let c = Params {
            f_max: Some(3000.0),
            ..Params::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("f_max"));
        let c = Params {
            hop_length: 0,
            ..Params::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("hop_length"));
        assert!(parse_device("tpu").is_err());
    }

    #[test]
    fn differing_keys_names_every_changed_key() {
        let a = Params::default();
        assert!(a.differing_keys(&a).is_empty());
        let b = Params {
            n_mels: 64,
            top_db: Some(80.0),
            ..Params::default()
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
        for d in ["auto", "cpu", "cuda:0", "cuda:5", "cuda:all"] {
            assert_eq!(parse_device(d).unwrap().to_string(), d);
        }
    }

    #[test]
    fn manifests_of_earlier_versions_with_run_options_in_config_still_load() {
        #[derive(Deserialize)]
        struct M {
            #[serde(deserialize_with = "deserialize_params_lenient")]
            config: Params,
        }
        let old = r#"{"config": {"n_mels": 40, "device": "cuda", "strict": true, "readers": 3,
            "threads": 0, "files_per_task": 0, "queue_depth": 0, "streams": 0, "cpu_head": 12}}"#;
        let m: M = serde_json::from_str(old).unwrap();
        assert_eq!(
            m.config,
            Params {
                n_mels: 40,
                ..Params::default()
            }
        );
        let odd = r#"{"config": {"n_mels": 40, "n_melz": 3}}"#;
        assert!(serde_json::from_str::<M>(odd).is_err());
    }

    #[test]
    fn the_readme_parameter_table_matches_the_definitions() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("## Parameters")
            .nth(1)
            .and_then(|s| s.split("\n\n").find(|p| p.starts_with("| key / flag |")))
            .expect("README: the table under ## Parameters");
        let rows: Vec<(String, String)> = table
            .lines()
            .skip(2)
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').into(), cells[2].replace('`', ""))
            })
            .collect();
        let defined: Vec<(String, String)> = DEFINITIONS
            .iter()
            .map(|d| {
                let default = if d.default.is_empty() {
                    "automatic"
                } else {
                    d.default
                };
                (d.key.to_string(), default.to_string())
            })
            .collect();
        assert_eq!(
            rows, defined,
            "README rows (key, default) against DEFINITIONS"
        );
    }

    #[test]
    fn every_definition_is_a_field_of_its_type() {
        let p = toml::Table::try_from(Params::default()).unwrap();
        let r = toml::Table::try_from(RunOptions::default()).unwrap();
        for d in DEFINITIONS {
            let t = if d.shapes_output { &p } else { &r };
            let optional = ["f_max", "top_db", "cpu_head"].contains(&d.key);
            assert!(t.contains_key(d.key) || optional, "{}", d.key);
        }
        assert_eq!(
            DEFINITIONS.len() + 1,
            Params::KEYS.len() + RunOptions::KEYS.len(),
            "every key but strict has a definition with a flag"
        );
    }
}
