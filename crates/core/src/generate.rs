//! `melpipe generate`: a synthetic dataset shaped like the seed's (SPEC §1, §7).
//!
//! Clips are 16-bit mono PCM at `sample_rate` with `samples` samples each: tones, chirps,
//! noise, mixtures, impacts, near-silence and a few clipping ones, in a nested folder
//! layout (`machine_07/id_03/clip_000123.wav`, 300 files a folder). `corrupt: K` adds K
//! files under `unusual/` that fail or that decode only thanks to the parser's tolerance.
//! Everything is a pure function of the seed: the same options give the same bytes,
//! whatever the number of threads. The [`GenerateReport`] says what each file is and the
//! status the pipeline must give it.

use crate::error::{Error, Result};
use crate::manifest::FileStatus;
use crate::wav::{self, Chunk, Samples, WavBuilder, WavError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Regular clips.
    pub files: usize,
    /// Extra unusual or malformed files, cycling through [`OddKind::ALL`].
    pub corrupt: usize,
    /// Sample rate of the clips, Hz.
    pub sample_rate: u32,
    /// Samples per clip.
    pub samples: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Write into a folder that already holds files (files of the generated names are
    /// overwritten); without it such a folder is refused, so a user's clips are never lost.
    pub overwrite: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            files: 2000,
            corrupt: 0,
            sample_rate: 4096,
            samples: 40960,
            seed: 0x006d_656c_7069_7065, // "melpipe"
            overwrite: false,
        }
    }
}

/// An error unless `dir` is missing or an empty folder.
fn refuse_nonempty(dir: &Path) -> Result<()> {
    let err = |msg: String| Error::Output {
        path: dir.to_path_buf(),
        msg,
    };
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(err("exists and is not a folder".into()));
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io("reading", dir, e))?;
    match entries.next() {
        None => Ok(()),
        Some(first) => {
            let name = first.map_or_else(|_| "?".into(), |e| e.file_name());
            Err(err(format!(
                "already holds files ({} among them): generate writes into a new or empty folder; pass --force to write into this one anyway (files with the generated names are overwritten, others are kept)",
                Path::new(&name).display()
            )))
        }
    }
}

/// The content of a regular clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// One to three steady sines, sometimes with tremolo.
    Tone,
    /// A sine sweeping linearly in frequency.
    LinearChirp,
    /// A sine sweeping exponentially in frequency.
    ExpChirp,
    /// White noise.
    WhiteNoise,
    /// Pink (1/f) noise.
    PinkNoise,
    /// Tones, noise and a DC offset together.
    Mixture,
    /// Periodic decaying impacts over background noise (a machine ticking).
    Impacts,
    /// Noise of a few LSB, or digital silence.
    NearSilence,
    /// A loud tone that clips at full scale.
    Clipping,
}

impl Signal {
    /// Every signal with its share of the clips, in percent.
    const WEIGHTS: [(Signal, u32); 9] = [
        (Signal::Tone, 22),
        (Signal::LinearChirp, 10),
        (Signal::ExpChirp, 8),
        (Signal::WhiteNoise, 12),
        (Signal::PinkNoise, 12),
        (Signal::Mixture, 20),
        (Signal::Impacts, 10),
        (Signal::NearSilence, 4),
        (Signal::Clipping, 2),
    ];
}

/// An unusual file added by `corrupt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OddKind {
    /// An MP3 (ID3 header) named `.wav`: fails.
    NotRiff,
    /// The first few bytes of a WAV file: fails.
    TruncatedHeader,
    /// `fmt ` and `LIST` but no `data`: fails.
    NoDataChunk,
    /// `LIST` and `data` but no `fmt `: fails.
    NoFmtChunk,
    /// A valid file at another sample rate: fails.
    WrongSampleRate,
    /// A-law encoding: fails as unsupported.
    ALaw,
    /// Zero bytes: fails.
    ZeroBytes,
    /// Fewer samples than a clip: padded.
    Short,
    /// More samples than a clip: truncated.
    Long,
    /// Two channels: ok (mixed or picked).
    Stereo,
    /// 24-bit PCM: ok.
    Pcm24,
    /// 32-bit float: ok.
    Float32,
    /// A `LIST` chunk before `fmt `, and an upper-case `.WAV` name: ok.
    ListBeforeFmt,
    /// An odd-sized chunk (with its pad byte) before `data`: ok.
    OddChunk,
    /// WAVE_FORMAT_EXTENSIBLE header: ok.
    Extensible,
    /// `data` before `fmt `: ok.
    DataBeforeFmt,
    /// A streaming writer's sizes (0xFFFFFFFF for RIFF and `data`): ok.
    StreamingSizes,
}

impl OddKind {
    /// The kinds `corrupt` cycles through, in order.
    pub const ALL: [OddKind; 17] = [
        OddKind::NotRiff,
        OddKind::TruncatedHeader,
        OddKind::NoDataChunk,
        OddKind::NoFmtChunk,
        OddKind::WrongSampleRate,
        OddKind::ALaw,
        OddKind::ZeroBytes,
        OddKind::Short,
        OddKind::Long,
        OddKind::Stereo,
        OddKind::Pcm24,
        OddKind::Float32,
        OddKind::ListBeforeFmt,
        OddKind::OddChunk,
        OddKind::Extensible,
        OddKind::DataBeforeFmt,
        OddKind::StreamingSizes,
    ];

    /// Its name in file names and reports.
    pub fn name(self) -> &'static str {
        match self {
            OddKind::NotRiff => "not_riff",
            OddKind::TruncatedHeader => "truncated_header",
            OddKind::NoDataChunk => "no_data_chunk",
            OddKind::NoFmtChunk => "no_fmt_chunk",
            OddKind::WrongSampleRate => "wrong_sample_rate",
            OddKind::ALaw => "alaw",
            OddKind::ZeroBytes => "zero_bytes",
            OddKind::Short => "short",
            OddKind::Long => "long",
            OddKind::Stereo => "stereo",
            OddKind::Pcm24 => "pcm24",
            OddKind::Float32 => "float32",
            OddKind::ListBeforeFmt => "list_before_fmt",
            OddKind::OddChunk => "odd_chunk",
            OddKind::Extensible => "extensible",
            OddKind::DataBeforeFmt => "data_before_fmt",
            OddKind::StreamingSizes => "streaming_sizes",
        }
    }
}

/// What a generated file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular clip.
    Clip(Signal),
    /// A file added by `corrupt`.
    Odd(OddKind),
}

/// One file written by [`generate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Path relative to the output folder.
    pub path: PathBuf,
    /// What it is.
    pub kind: FileKind,
    /// The status the pipeline records for it in `fixed` mode with `clip_samples` equal to
    /// the options' `samples` (reason included, word for word).
    pub expected: FileStatus,
    /// Size in bytes.
    pub bytes: u64,
    /// Sample frames the manifest records for it (0 for a failed file).
    pub frames: usize,
}

/// Every file [`generate`] wrote, sorted byte-wise by path (the pipeline's row order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerateReport {
    /// The files.
    pub files: Vec<GeneratedFile>,
    /// Their total size in bytes.
    pub bytes: u64,
}

impl GenerateReport {
    /// Files expected to fail.
    pub fn failed(&self) -> usize {
        self.files
            .iter()
            .filter(|f| matches!(f.expected, FileStatus::Failed { .. }))
            .count()
    }
}

/// Files a folder of regular clips holds (the seed's folders hold a few hundred).
const FILES_PER_FOLDER: usize = 300;
/// Folders `id_NN` per `machine_NN`.
const IDS_PER_MACHINE: usize = 4;

/// One file to write: what it is and the parameters its content is drawn from.
struct Plan {
    path: PathBuf,
    kind: FileKind,
    seed: u64,
    /// Frames of sample data to write (for odd kinds: their own length).
    frames: usize,
    /// Frames the manifest records: 0 for a failed file.
    frames_found: usize,
    expected: FileStatus,
}

/// The most files [`generate`] writes (valid and malformed together): 10 million seed clips
/// are 0.8 TB. A count typed with too many digits used to abort on its plan's allocation.
pub const MAX_FILES: usize = 10_000_000;

/// Writes the dataset described by `opts` into `dir` (created if missing; a folder that
/// holds anything is refused unless `opts.overwrite`, and then files of the same names are
/// overwritten), in parallel, and reports every file.
pub fn generate(dir: &Path, opts: &GenerateOptions) -> Result<GenerateReport> {
    if opts.sample_rate < 64 || opts.samples < 64 {
        return Err(Error::Config(format!(
            "generate needs sample_rate ≥ 64 Hz and samples ≥ 64, got {} Hz and {}",
            opts.sample_rate, opts.samples
        )));
    }
    match opts.files.checked_add(opts.corrupt) {
        Some(n) if n <= MAX_FILES => {}
        _ => {
            return Err(Error::Config(format!(
                "generate writes at most {MAX_FILES} files ({} + {} asked for)",
                opts.files, opts.corrupt
            )))
        }
    }
    if !opts.overwrite {
        refuse_nonempty(dir)?;
    }
    let plans = plan(opts);

    let mut folders: Vec<&Path> = plans.iter().filter_map(|p| p.path.parent()).collect();
    folders.dedup();
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    for folder in folders {
        let path = dir.join(folder);
        std::fs::create_dir_all(&path).map_err(|e| Error::io("creating", &path, e))?;
    }

    let table = SineTable::new();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(plans.len().max(1));
    let per_thread = plans.len().div_ceil(threads).max(1);
    let stop = AtomicBool::new(false);
    let sizes: Vec<Result<Vec<u64>>> = std::thread::scope(|s| {
        let workers: Vec<_> = plans
            .chunks(per_thread)
            .map(|chunk| {
                let (table, stop) = (&table, &stop);
                s.spawn(move || {
                    let result = write_files(dir, chunk, opts, table, stop);
                    if result.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });

    let mut files = Vec::with_capacity(plans.len());
    let mut total = 0;
    for (chunk, sizes) in plans.chunks(per_thread).zip(sizes) {
        for (p, bytes) in chunk.iter().zip(sizes?) {
            total += bytes;
            files.push(GeneratedFile {
                path: p.path.clone(),
                kind: p.kind,
                expected: p.expected.clone(),
                bytes,
                frames: p.frames_found,
            });
        }
    }
    files.sort_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
    Ok(GenerateReport {
        files,
        bytes: total,
    })
}

/// Every file's path, kind, seed and expected status; cheap, so done on one thread.
fn plan(opts: &GenerateOptions) -> Vec<Plan> {
    let n = opts.samples;
    let mut plans = Vec::with_capacity(opts.files + opts.corrupt);
    for i in 0..opts.files {
        let seed = file_seed(opts.seed, i as u64);
        let folder = i / FILES_PER_FOLDER;
        let mut pick = Rng::new(seed).below(100) as u32;
        let signal = Signal::WEIGHTS
            .iter()
            .find(|&&(_, w)| {
                let hit = pick < w;
                pick = pick.saturating_sub(w);
                hit
            })
            .map_or(Signal::Tone, |&(s, _)| s);
        plans.push(Plan {
            path: PathBuf::from(format!(
                "machine_{:02}/id_{:02}/clip_{i:06}.wav",
                folder / IDS_PER_MACHINE,
                folder % IDS_PER_MACHINE
            )),
            kind: FileKind::Clip(signal),
            seed,
            frames: n,
            frames_found: n,
            expected: FileStatus::Ok,
        });
    }
    for j in 0..opts.corrupt {
        let odd = OddKind::ALL[j % OddKind::ALL.len()];
        let seed = file_seed(opts.seed ^ 0x0dd_f11e5, j as u64);
        let mut rng = Rng::new(seed);
        let fail = |e: WavError| FileStatus::Failed {
            reason: e.to_string(),
        };
        let (frames, expected) = match odd {
            OddKind::NotRiff => (0, fail(WavError::NotRiffWave)),
            OddKind::TruncatedHeader => (0, fail(WavError::TruncatedHeader)),
            OddKind::NoDataChunk => (0, fail(WavError::NoDataChunk)),
            OddKind::NoFmtChunk => (n, fail(WavError::NoFmtChunk)),
            OddKind::ALaw => (
                n,
                fail(WavError::Unsupported("A-law (format tag 0x0006)".into())),
            ),
            OddKind::ZeroBytes => (0, fail(WavError::Empty)),
            OddKind::WrongSampleRate => (
                n,
                FileStatus::Failed {
                    // Worded as the read stage words it; a test below holds them together.
                    reason: format!(
                        "sample rate {} Hz, expected {} Hz",
                        other_rate(opts.sample_rate),
                        opts.sample_rate
                    ),
                },
            ),
            OddKind::Short => {
                let len = n / 4 + rng.below(n - n / 4);
                let missing_samples = (n - len) as u64;
                (len, FileStatus::Padded { missing_samples })
            }
            OddKind::Long => {
                let len = n + 1 + rng.below(n / 2);
                let dropped_samples = (len - n) as u64;
                (len, FileStatus::Truncated { dropped_samples })
            }
            _ => (n, FileStatus::Ok),
        };
        let failed = matches!(expected, FileStatus::Failed { .. });
        let ext = if odd == OddKind::ListBeforeFmt {
            "WAV"
        } else {
            "wav"
        };
        plans.push(Plan {
            path: PathBuf::from(format!("unusual/{j:04}_{}.{ext}", odd.name())),
            kind: FileKind::Odd(odd),
            seed,
            frames,
            frames_found: if failed { 0 } else { frames },
            expected,
        });
    }
    plans
}

fn other_rate(rate: u32) -> u32 {
    if rate == 8000 {
        16000
    } else {
        8000
    }
}

fn file_seed(seed: u64, index: u64) -> u64 {
    Rng::new(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F)).next_u64()
}

/// Writes the files of one thread's share with reused buffers; returns their sizes.
fn write_files(
    dir: &Path,
    plans: &[Plan],
    opts: &GenerateOptions,
    table: &SineTable,
    stop: &AtomicBool,
) -> Result<Vec<u64>> {
    let mut signal = Vec::new();
    let mut pcm = Vec::new();
    let mut file = Vec::new();
    let mut sizes = Vec::with_capacity(plans.len());
    let fs = f64::from(opts.sample_rate);
    for p in plans {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut rng = Rng::new(p.seed);
        match p.kind {
            FileKind::Clip(kind) => {
                synthesize(kind, &mut rng, fs, table, p.frames, &mut signal);
                quantize_i16(&signal, &mut pcm);
                wav::encode_pcm16_into(&mut file, 1, opts.sample_rate, &pcm);
            }
            FileKind::Odd(odd) => {
                file = odd_file(odd, &mut rng, opts, p.frames, table, &mut signal, &mut pcm);
            }
        }
        let path = dir.join(&p.path);
        std::fs::write(&path, &file).map_err(|e| Error::io("writing", &path, e))?;
        sizes.push(file.len() as u64);
    }
    Ok(sizes)
}

/// The bytes of an unusual file; `signal` and `pcm` are scratch.
fn odd_file(
    odd: OddKind,
    rng: &mut Rng,
    opts: &GenerateOptions,
    frames: usize,
    table: &SineTable,
    signal: &mut Vec<f32>,
    pcm: &mut Vec<i16>,
) -> Vec<u8> {
    let fs = f64::from(opts.sample_rate);
    let rate = opts.sample_rate;
    let mut clip = |rng: &mut Rng, frames: usize| -> Vec<i16> {
        synthesize(Signal::Mixture, rng, fs, table, frames, signal);
        quantize_i16(signal, pcm);
        pcm.clone()
    };
    let list = Chunk::other(b"LIST", b"INFOISFT\x0e\0\0\0Lavf58.76.100\0".to_vec());
    match odd {
        OddKind::NotRiff => {
            let mut bytes = b"ID3\x04\0\0\0\0\0\0\xff\xfb\x90\x64".to_vec();
            bytes.extend((0..4096).map(|_| rng.next_u64() as u8));
            bytes
        }
        OddKind::TruncatedHeader => {
            let full = wav::encode_pcm16(1, rate, &clip(rng, 64));
            full[..4 + rng.below(40)].to_vec()
        }
        OddKind::NoDataChunk => WavBuilder::new(1, rate, Samples::I16(&[]))
            .layout(vec![Chunk::Fmt, list])
            .build(),
        OddKind::NoFmtChunk => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
            .layout(vec![list, Chunk::Data])
            .build(),
        OddKind::WrongSampleRate => wav::encode_pcm16(1, other_rate(rate), &clip(rng, frames)),
        OddKind::ALaw => {
            let codes: Vec<u8> = clip(rng, frames).iter().map(|&s| alaw(s)).collect();
            WavBuilder::new(1, rate, Samples::U8(&codes))
                .format_tag(wav::FORMAT_ALAW)
                .chunk(Chunk::other(b"fact", (frames as u32).to_le_bytes()))
                .build()
        }
        OddKind::ZeroBytes => Vec::new(),
        OddKind::Short | OddKind::Long => wav::encode_pcm16(1, rate, &clip(rng, frames)),
        OddKind::Stereo => {
            let left = clip(rng, frames);
            let right = clip(rng, frames);
            let both: Vec<i16> = left
                .iter()
                .zip(&right)
                .flat_map(|(&l, &r)| [l, r])
                .collect();
            wav::encode_pcm16(2, rate, &both)
        }
        OddKind::Pcm24 => {
            synthesize(Signal::Mixture, rng, fs, table, frames, signal);
            let s: Vec<i32> = signal
                .iter()
                .map(|&x| {
                    (f64::from(x) * 8_388_607.0)
                        .round()
                        .clamp(-8_388_608.0, 8_388_607.0) as i32
                })
                .collect();
            wav::encode_wav(1, rate, Samples::I24(&s))
        }
        OddKind::Float32 => {
            synthesize(Signal::Mixture, rng, fs, table, frames, signal);
            signal.iter_mut().for_each(|x| *x = x.clamp(-1.0, 1.0));
            WavBuilder::new(1, rate, Samples::F32(signal))
                .chunk(Chunk::other(b"fact", (frames as u32).to_le_bytes()))
                .build()
        }
        OddKind::ListBeforeFmt => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
            .layout(vec![list, Chunk::Fmt, Chunk::Data])
            .build(),
        OddKind::OddChunk => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
            .layout(vec![
                Chunk::Fmt,
                Chunk::other(b"note", *b"odd-sized"),
                Chunk::Data,
            ])
            .build(),
        OddKind::Extensible => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
            .extensible(true)
            .build(),
        OddKind::DataBeforeFmt => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
            .layout(vec![Chunk::Data, Chunk::Fmt])
            .build(),
        OddKind::StreamingSizes => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
            .riff_size(u32::MAX)
            .declared_data_size(u32::MAX)
            .build(),
    }
}

/// G.711 A-law code of a 16-bit sample (only so the A-law file holds plausible bytes).
fn alaw(sample: i16) -> u8 {
    let (sign, mut x) = if sample >= 0 {
        (0x80u8, i32::from(sample) >> 3)
    } else {
        (0u8, (-i32::from(sample) - 1) >> 3)
    };
    let mut exponent = 0u8;
    while x > 0x1F && exponent < 7 {
        x >>= 1;
        exponent += 1;
    }
    let mantissa = (if exponent == 0 { x >> 1 } else { x & 0x0F }) as u8;
    (sign | (exponent << 4) | (mantissa & 0x0F)) ^ 0x55
}

// ---- synthesis ----

/// splitmix64: tiny and fast, good enough for test signals; written here because a
/// dependency would buy nothing and its streams could change under us between versions.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Log-uniform in [lo, hi): frequencies and amplitudes spread evenly in octaves/dB.
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo * (hi / lo).powf(self.unit())
    }

    /// Uniform in 0..n (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Lanes of the vectorized oscillators and noise. A single recurrence is one long chain of
/// dependent operations; eight independent ones fill the SIMD registers, and LLVM's
/// vectorizer turns each loop over a `[_; LANES]` into a few vector instructions.
const LANES: usize = 8;

/// Eight xorshift32 streams: white noise at a fraction of a nanosecond a sample.
struct Noise {
    state: [u32; LANES],
}

impl Noise {
    fn new(rng: &mut Rng) -> Self {
        // xorshift32 must not start at 0.
        Noise {
            state: std::array::from_fn(|_| (rng.next_u64() as u32) | 1),
        }
    }

    /// Eight triangular-distributed samples in (-1, 1): the difference of the two 16-bit
    /// halves of each draw, close enough to Gaussian for test noise.
    #[inline(always)]
    fn next(&mut self) -> [f32; LANES] {
        let mut out = [0.0; LANES];
        for (x, o) in self.state.iter_mut().zip(&mut out) {
            *x ^= *x << 13;
            *x ^= *x >> 17;
            *x ^= *x << 5;
            *o = ((*x & 0xFFFF) as i32 - (*x >> 16) as i32) as f32 * (1.0 / 65536.0);
        }
        out
    }
}

/// Sine by table lookup with linear interpolation over a 32-bit phase (error below 1e-6,
/// a thirtieth of an int16 step), for sweeps whose frequency changes every sample.
struct SineTable {
    table: Vec<f32>,
}

impl SineTable {
    const BITS: u32 = 12;

    fn new() -> Self {
        let n = 1usize << Self::BITS;
        let table = (0..=n)
            .map(|i| (std::f64::consts::TAU * i as f64 / n as f64).sin() as f32)
            .collect();
        SineTable { table }
    }

    #[inline(always)]
    fn sin(&self, phase: u32) -> f32 {
        const FRAC_BITS: u32 = 32 - SineTable::BITS;
        let i = (phase >> FRAC_BITS) as usize;
        let frac = (phase & ((1 << FRAC_BITS) - 1)) as f32 * (1.0 / (1u32 << FRAC_BITS) as f32);
        let (a, b) = (self.table[i], self.table[i + 1]);
        a + (b - a) * frac
    }
}

/// Phase increment per sample of frequency `f` at rate `fs`, in 2^-32 turns.
fn phase_step(f: f64, fs: f64) -> f64 {
    f / fs * 4_294_967_296.0
}

/// Adds a sine sweep: the phase step starts at `step`, grows by `slope` a sample
/// (linear chirp) and is multiplied by `ratio` a sample (exponential chirp).
#[allow(clippy::too_many_arguments)]
fn add_sweep(
    out: &mut [f32],
    table: &SineTable,
    amp: f32,
    phase: u32,
    step: f64,
    slope: f64,
    ratio: f64,
) {
    let (mut phase, mut step) = (phase, step);
    for o in out.iter_mut() {
        *o += amp * table.sin(phase);
        phase = phase.wrapping_add(step as u32);
        step = step * ratio + slope;
    }
}

/// Adds `amp · sin(phase + 2π f n / fs)` (phase in 2^-32 turns).
///
/// Runs `s[n + L] = 2 cos(L ω) s[n] − s[n − L]` in [`LANES`] interleaved lanes, so it
/// vectorizes; in f64 the recurrence drifts by less than 1e-9 over a clip.
fn add_tone(out: &mut [f32], amp: f32, phase: u32, f: f64, fs: f64) {
    use std::f64::consts::TAU;
    let omega = TAU * f / fs;
    let phi = TAU * f64::from(phase) / 4_294_967_296.0;
    let k = 2.0 * (LANES as f64 * omega).cos();
    let mut prev: [f64; LANES] =
        std::array::from_fn(|j| (phi + omega * (j as f64 - LANES as f64)).sin());
    let mut cur: [f64; LANES] = std::array::from_fn(|j| (phi + omega * j as f64).sin());
    let amp = f64::from(amp);
    let mut blocks = out.chunks_exact_mut(LANES);
    for block in &mut blocks {
        for j in 0..LANES {
            block[j] += (amp * cur[j]) as f32;
            let next = k * cur[j] - prev[j];
            prev[j] = cur[j];
            cur[j] = next;
        }
    }
    for (o, s) in blocks.into_remainder().iter_mut().zip(cur) {
        *o += (amp * s) as f32;
    }
}

/// Adds white noise of RMS about `0.7 · amp`.
fn add_white(out: &mut [f32], noise: &mut Noise, amp: f32) {
    // Triangular noise has RMS 1/√6 ≈ 0.41.
    let amp = amp * 1.7;
    let mut blocks = out.chunks_exact_mut(LANES);
    for block in &mut blocks {
        let w = noise.next();
        for j in 0..LANES {
            block[j] += amp * w[j];
        }
    }
    for (o, w) in blocks.into_remainder().iter_mut().zip(noise.next()) {
        *o += amp * w;
    }
}

/// Adds pink noise: Paul Kellet's economy filter over white noise.
fn add_pink(out: &mut [f32], noise: &mut Noise, amp: f32) {
    let (mut b0, mut b1, mut b2) = (0.0f32, 0.0f32, 0.0f32);
    let amp = amp * 0.35;
    for block in out.chunks_mut(LANES) {
        for (o, w) in block.iter_mut().zip(noise.next()) {
            b0 = 0.99765 * b0 + w * 0.099_046;
            b1 = 0.963 * b1 + w * 0.296_516_4;
            b2 = 0.57 * b2 + w * 1.052_691_3;
            *o += amp * (b0 + b1 + b2 + w * 0.1848);
        }
    }
}

/// Fills `out` with `frames` samples of `kind`, nominally in [-1, 1] (clipping kinds
/// go beyond, for the quantizer to clip).
fn synthesize(
    kind: Signal,
    rng: &mut Rng,
    fs: f64,
    table: &SineTable,
    frames: usize,
    out: &mut Vec<f32>,
) {
    out.clear();
    out.resize(frames, 0.0);
    let mut noise = Noise::new(rng);
    let nyquist = fs / 2.0;
    let freq = |rng: &mut Rng| rng.log_uniform(10.0, 0.95 * nyquist);
    let phase = |rng: &mut Rng| rng.next_u64() as u32;
    let amp = |rng: &mut Rng, lo: f64, hi: f64| rng.log_uniform(lo, hi) as f32;
    // Most signals sit on a faint noise floor, as a real sensor's do.
    let mut floor = amp(rng, 1e-4, 1e-2);
    match kind {
        Signal::Tone => {
            for _ in 0..1 + rng.below(3) {
                // At most 3 × 0.3: tones never clip.
                let (a, p, f) = (amp(rng, 0.02, 0.3), phase(rng), freq(rng));
                add_tone(out, a, p, f, fs);
            }
            if rng.chance(0.3) {
                // Tremolo: a slow gain wobble, as from a rotating part.
                let depth = rng.uniform(0.2, 0.9) as f32;
                let step = phase_step(rng.uniform(0.3, 8.0), fs) as u32;
                let mut p = phase(rng);
                for o in out.iter_mut() {
                    *o *= 1.0 - depth * (0.5 + 0.5 * table.sin(p));
                    p = p.wrapping_add(step);
                }
            }
        }
        Signal::LinearChirp => {
            let (f0, f1) = (freq(rng), freq(rng));
            let step = phase_step(f0, fs);
            let slope = (phase_step(f1, fs) - step) / frames as f64;
            let (a, p) = (amp(rng, 0.05, 0.6), phase(rng));
            add_sweep(out, table, a, p, step, slope, 1.0);
        }
        Signal::ExpChirp => {
            let (f0, f1) = (freq(rng), freq(rng));
            let ratio = (f1 / f0).powf(1.0 / frames as f64);
            let (a, p) = (amp(rng, 0.05, 0.6), phase(rng));
            add_sweep(out, table, a, p, phase_step(f0, fs), 0.0, ratio);
        }
        Signal::WhiteNoise => floor = amp(rng, 0.005, 0.4),
        Signal::PinkNoise => {
            add_pink(out, &mut noise, amp(rng, 0.005, 0.4));
            floor = 0.0;
        }
        Signal::Mixture => {
            for _ in 0..1 + rng.below(4) {
                let (a, p, f) = (amp(rng, 0.01, 0.2), phase(rng), freq(rng));
                add_tone(out, a, p, f, fs);
            }
            if rng.chance(0.5) {
                add_pink(out, &mut noise, amp(rng, 0.005, 0.2));
            } else {
                floor = amp(rng, 0.005, 0.2);
            }
            let dc = rng.uniform(-0.02, 0.02) as f32;
            out.iter_mut().for_each(|o| *o += dc);
        }
        Signal::Impacts => {
            let period = ((fs * rng.uniform(0.05, 1.0)) as usize).max(1);
            let decay = (-1.0 / (fs * rng.uniform(0.003, 0.08))).exp() as f32;
            let (a, f) = (amp(rng, 0.1, 0.8), freq(rng));
            let (mut p, step) = (phase(rng), phase_step(f, fs) as u32);
            let mut env = 0.0f32;
            let mut until_next = rng.below(period);
            for block in out.chunks_mut(LANES) {
                for (o, w) in block.iter_mut().zip(noise.next()) {
                    if until_next == 0 {
                        env = a;
                        until_next = period;
                    }
                    until_next -= 1;
                    *o += env * (0.6 * w + 0.4 * table.sin(p));
                    env *= decay;
                    p = p.wrapping_add(step);
                }
            }
        }
        Signal::NearSilence => {
            // A quarter is digital silence (every feature at the -100 dB floor).
            floor = if rng.chance(0.25) {
                0.0
            } else {
                amp(rng, 2e-5, 3e-4)
            };
        }
        Signal::Clipping => {
            let (a, p, f) = (rng.uniform(1.05, 1.5) as f32, phase(rng), freq(rng));
            add_tone(out, a, p, f, fs);
        }
    }
    if floor > 0.0 {
        add_white(out, &mut noise, floor);
    }
}

/// Rounds to int16 steps of 1/32767, clipping at full scale.
fn quantize_i16(signal: &[f32], out: &mut Vec<i16>) {
    // Adding 1.5·2^23 rounds to nearest and leaves the integer in the low mantissa bits:
    // no float-to-int conversion, whose saturating semantics keep LLVM from vectorizing
    // (and `f32::round` is a libm call on baseline x86-64). Clamping first keeps the sum
    // in [2^23, 2^24), where that holds.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: i32 = 0x4B40_0000;
    out.clear();
    out.resize(signal.len(), 0);
    for (q, &x) in out.iter_mut().zip(signal) {
        let clipped = (x * 32767.0).clamp(-32768.0, 32767.0);
        *q = ((clipped + ROUND).to_bits() as i32 - ROUND_BITS) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::AudioBatch;
    use crate::discover::discover;
    use crate::read::Reader;
    use crate::Config;

    fn small(files: usize, corrupt: usize) -> GenerateOptions {
        GenerateOptions {
            files,
            corrupt,
            sample_rate: 4096,
            samples: 4096,
            seed: 7,
            overwrite: false,
        }
    }

    #[test]
    fn the_read_stage_gives_every_file_its_expected_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = small(40, 2 * OddKind::ALL.len());
        let report = generate(dir.path(), &opts).expect("generate");
        assert_eq!(report.files.len(), 40 + 34);
        assert_eq!(report.failed(), 2 * 7);
        assert_eq!(
            report.bytes,
            report.files.iter().map(|f| f.bytes).sum::<u64>()
        );

        // The real discover and read stages, as a run would use them.
        let cfg = Config {
            clip_samples: opts.samples,
            ..Config::default()
        };
        cfg.validate().expect("valid config");
        let found = discover(&[dir.path().to_path_buf()], 2).expect("discover");
        let rel: Vec<_> = found.iter().map(|f| f.rel.clone()).collect();
        let listed: Vec<_> = report.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(rel, listed, "same files, same (byte-wise sorted) order");
        let mut batch = AudioBatch::default();
        let outcomes = Reader::new(&cfg).read_task(&found, &mut batch);
        for (f, o) in report.files.iter().zip(&outcomes) {
            assert_eq!(o.status, f.expected, "{:?}", f.path);
            assert_eq!(o.bytes, f.bytes, "{:?}", f.path);
            assert_eq!(o.samples, f.frames as u64, "{:?}", f.path);
        }
        assert!(batch
            .samples
            .f32s()
            .unwrap()
            .iter()
            .all(|x| x.is_finite() && x.abs() <= 1.0));
        let kinds: std::collections::HashSet<_> = report.files.iter().map(|f| f.kind).collect();
        assert!(OddKind::ALL
            .iter()
            .all(|&k| kinds.contains(&FileKind::Odd(k))));
    }

    #[test]
    fn clips_are_seed_shaped_pcm16() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = GenerateOptions {
            files: 3,
            ..GenerateOptions::default()
        };
        let report = generate(dir.path(), &opts).expect("generate");
        for f in &report.files {
            assert_eq!(f.bytes, 44 + 2 * 40960);
            let bytes = std::fs::read(dir.path().join(&f.path)).expect("read");
            let info = wav::parse(&bytes).expect("parse");
            assert_eq!(
                (info.format, info.channels, info.sample_rate, info.frames),
                (wav::SampleFormat::I16, 1, 4096, 40960)
            );
        }
        assert_eq!(
            report.files[0].path,
            PathBuf::from("machine_00/id_00/clip_000000.wav")
        );
    }

    #[test]
    fn folders_hold_a_few_hundred_files() {
        let plans = plan(&small(39_563, 0));
        let last = &plans[39_562].path;
        assert_eq!(last, Path::new("machine_32/id_03/clip_039562.wav"));
        assert_eq!(plans[299].path.parent(), plans[0].path.parent());
        assert_ne!(plans[300].path.parent(), plans[0].path.parent());
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let opts = small(20, 17);
        let (a, b, c) = (
            tempfile::tempdir(),
            tempfile::tempdir(),
            tempfile::tempdir(),
        );
        let (a, b, c) = (
            a.expect("tempdir"),
            b.expect("tempdir"),
            c.expect("tempdir"),
        );
        let ra = generate(a.path(), &opts).expect("generate");
        let rb = generate(b.path(), &opts).expect("generate");
        let rc = generate(
            c.path(),
            &GenerateOptions {
                seed: 8,
                ..opts.clone()
            },
        )
        .expect("gen");
        assert_eq!(ra, rb);
        assert_ne!(ra, rc);
        let mut differ = 0;
        for f in &ra.files {
            let x = std::fs::read(a.path().join(&f.path)).expect("read");
            let y = std::fs::read(b.path().join(&f.path)).expect("read");
            assert_eq!(x, y, "{:?}", f.path);
            if let Ok(z) = std::fs::read(c.path().join(&f.path)) {
                differ += usize::from(x != z);
            }
        }
        // Zero-byte and fixed-header files are the same under any seed; clips are not.
        assert!(differ >= 20, "only {differ} files differ");
    }

    #[test]
    fn content_is_varied() {
        let table = SineTable::new();
        let mut buf = Vec::new();
        let mut pcm = Vec::new();
        let rms = |signal: Signal, seed: u64, buf: &mut Vec<f32>, pcm: &mut Vec<i16>| {
            synthesize(signal, &mut Rng::new(seed), 4096.0, &table, 40960, buf);
            quantize_i16(buf, pcm);
            let sum: f64 = pcm.iter().map(|&s| f64::from(s).powi(2)).sum();
            (
                (sum / pcm.len() as f64).sqrt(),
                pcm.iter()
                    .filter(|&&s| s == i16::MAX || s == i16::MIN)
                    .count(),
            )
        };
        for signal in Signal::WEIGHTS.map(|(s, _)| s) {
            let (a, _) = rms(signal, 1, &mut buf, &mut pcm);
            let (b, _) = rms(signal, 2, &mut buf, &mut pcm);
            assert_ne!(a, b, "{signal:?} does not depend on the seed");
        }
        let (quiet, _) = rms(Signal::NearSilence, 3, &mut buf, &mut pcm);
        assert!(quiet < 10.0, "near-silence rms {quiet}");
        let (_, clipped) = rms(Signal::Clipping, 3, &mut buf, &mut pcm);
        assert!(clipped > 0, "a clipping clip reaches full scale");
        let (tone, clipped) = rms(Signal::Tone, 3, &mut buf, &mut pcm);
        assert!(tone > 100.0 && clipped == 0, "tone rms {tone}");
        // Every kind turns up in a dataset of a few hundred files.
        let plans = plan(&small(400, 0));
        for signal in Signal::WEIGHTS.map(|(s, _)| s) {
            assert!(
                plans.iter().any(|p| p.kind == FileKind::Clip(signal)),
                "{signal:?}"
            );
        }
    }

    #[test]
    fn sine_table_is_accurate() {
        let table = SineTable::new();
        for k in 0..10_000u32 {
            let phase = k.wrapping_mul(2_654_435_761);
            let exact = (phase as f64 / 4_294_967_296.0 * std::f64::consts::TAU).sin();
            assert!(
                (f64::from(table.sin(phase)) - exact).abs() < 1e-6,
                "{phase}"
            );
        }
    }

    #[test]
    fn tone_is_an_exact_sine_over_a_whole_clip() {
        // The lane recurrence must not drift: compare with f64 sin at the clip's end too.
        for f in [10.0, 512.0, 1000.3, 1945.0] {
            let mut out = vec![0.0f32; 40_963];
            let phase = 0x4000_0000; // a quarter turn
            add_tone(&mut out, 0.5, phase, f, 4096.0);
            let worst = out
                .iter()
                .enumerate()
                .map(|(n, &x)| {
                    let exact =
                        0.5 * (std::f64::consts::TAU * (0.25 + f * n as f64 / 4096.0)).sin();
                    (f64::from(x) - exact).abs()
                })
                .fold(0.0, f64::max);
            assert!(worst < 1e-6, "{f} Hz: off by {worst}");
        }
    }

    #[test]
    fn quantizer_rounds_and_clips() {
        let mut out = Vec::new();
        quantize_i16(
            &[
                0.0,
                0.5 / 32767.0 + 1e-6,
                -1.0,
                1.0,
                1.5,
                -1.5,
                2.4 / 32767.0,
            ],
            &mut out,
        );
        assert_eq!(out, vec![0, 1, -32767, 32767, 32767, -32768, 2]);
    }

    #[test]
    fn alaw_encodes_known_codes() {
        // G.711 reference points: 0 → 0xD5, -1 → 0x55 (with the 0x55 inversion).
        assert_eq!(alaw(0), 0xD5);
        assert_eq!(alaw(-8), 0x55);
        assert_eq!(alaw(i16::MAX), 0xAA);
        assert_eq!(alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn rejects_tiny_options() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = GenerateOptions {
            samples: 10,
            ..small(1, 0)
        };
        assert!(matches!(generate(dir.path(), &opts), Err(Error::Config(_))));
    }

    #[test]
    fn unwritable_folder_is_an_io_error_with_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let err = generate(&blocker.join("out"), &small(2, 0)).expect_err("must fail");
        assert!(err.to_string().contains("file/out"), "{err}");
    }
}
