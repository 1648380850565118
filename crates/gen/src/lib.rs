//! Synthetic datasets for melpipe: what `melpipe demo` and `melpipe generate` write, and what
//! the tests and benches run on. Test tooling, kept out of the library that users link.
//!
//! Clips are 16-bit mono PCM at `sample_rate` with `samples` samples each: tones, chirps,
//! noise, mixtures, impacts, near-silence and a few clipping ones ([`Signal`], drawn in
//! `synth`), in a nested folder layout (`machine_07/id_03/clip_000123.wav`, 300 files a
//! folder), shaped like the seed dataset. `corrupt: K` adds K files under `unusual/` that fail
//! or that decode only thanks to the parser's tolerance ([`OddKind`], the catalogue in `odd`).
//! Everything is a pure function of the seed: the same options give the same bytes, whatever
//! the number of threads. The [`GenerateReport`] says what each file is and the status the
//! pipeline must give it.
//!
//! The files are written with the WAV encoder of `melpipe_core::wav`, the writing half of the
//! parser's format code.

mod odd;
mod synth;

pub use odd::OddKind;
pub use synth::Signal;

use melpipe_core::error::{Error, Result};
use melpipe_core::manifest::FileStatus;
use melpipe_core::wav;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use synth::{quantize_i16, synthesize, Rng, SineTable};

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
    /// The format of the regular clips (the unusual files of `corrupt` are always WAV).
    pub format: AudioFormat,
}

/// The format `generate` writes its regular clips in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// 16-bit PCM WAV (melpipe's own encoder).
    #[default]
    Wav,
    /// FLAC, 16 bits (the `flacenc` crate).
    Flac,
    /// MP3, LAME's defaults (128 kbit/s CBR, with the LAME tag that gives the exact length),
    /// by the `lame` program.
    Mp3,
    /// Ogg Vorbis, oggenc's default quality, by the `oggenc` program (vorbis-tools).
    Ogg,
}

impl AudioFormat {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [AudioFormat; 4] = [
        AudioFormat::Wav,
        AudioFormat::Flac,
        AudioFormat::Mp3,
        AudioFormat::Ogg,
    ];

    /// Its file-name extension and name on the command line.
    pub fn ext(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Flac => "flac",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Ogg => "ogg",
        }
    }

    /// The program that encodes it, with the Debian package that has it.
    fn program(self) -> Option<(&'static str, &'static str)> {
        match self {
            AudioFormat::Mp3 => Some(("lame", "lame")),
            AudioFormat::Ogg => Some(("oggenc", "vorbis-tools")),
            _ => None,
        }
    }
}

impl std::str::FromStr for AudioFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        AudioFormat::ALL
            .into_iter()
            .find(|f| f.ext().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("`{s}` is not one of wav, flac, mp3, ogg"))
    }
}

/// The sample rates an MP3 stream can have (MPEG-1, 2 and 2.5 layer III).
const MP3_RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            files: 2000,
            corrupt: 0,
            sample_rate: 4096,
            samples: 40960,
            seed: 0x006d_656c_7069_7065, // "melpipe"
            overwrite: false,
            format: AudioFormat::Wav,
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
    if opts.format == AudioFormat::Mp3 && !MP3_RATES.contains(&opts.sample_rate) {
        return Err(Error::Config(format!(
            "MP3 cannot hold {} Hz; its rates are {}",
            opts.sample_rate,
            MP3_RATES.map(|r| r.to_string()).join(", ")
        )));
    }
    if let Some((program, package)) = opts.format.program() {
        let found = std::process::Command::new(program)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(Error::Config(format!(
                "--format {} needs the `{program}` program (Debian and Ubuntu: apt-get install {package})",
                opts.format.ext()
            )));
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
                "machine_{:02}/id_{:02}/clip_{i:06}.{}",
                folder / IDS_PER_MACHINE,
                folder % IDS_PER_MACHINE,
                opts.format.ext()
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
        let (frames, expected) = odd.planned(&mut rng, n, opts.sample_rate);
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
                if opts.format != AudioFormat::Wav {
                    file = encode(opts.format, &file, &pcm, opts.sample_rate, p.seed)
                        .map_err(|e| Error::io("encoding", dir.join(&p.path), e))?;
                }
            }
            FileKind::Odd(odd) => {
                file = odd.file(
                    &mut rng,
                    opts.sample_rate,
                    p.frames,
                    table,
                    &mut signal,
                    &mut pcm,
                );
            }
        }
        let path = dir.join(&p.path);
        std::fs::write(&path, &file).map_err(|e| Error::io("writing", &path, e))?;
        sizes.push(file.len() as u64);
    }
    Ok(sizes)
}

/// A mono 16-bit clip in `format`: `wav_bytes` is it as WAV (what the programs read), `pcm`
/// its samples. `seed` makes the Ogg stream's serial number, which oggenc otherwise draws at
/// random, so the same options give the same bytes.
fn encode(
    format: AudioFormat,
    wav_bytes: &[u8],
    pcm: &[i16],
    sample_rate: u32,
    seed: u64,
) -> std::io::Result<Vec<u8>> {
    let serial = (seed as u32 & 0x7fff_ffff).to_string();
    let args: &[&str] = match format {
        AudioFormat::Wav => return Ok(wav_bytes.to_vec()),
        AudioFormat::Flac => return encode_flac(pcm, sample_rate),
        AudioFormat::Mp3 => &["--quiet", "--nohist", "-", "-"],
        AudioFormat::Ogg => &["--quiet", "--serial", &serial, "-o", "-", "-"],
    };
    let (program, _) = format.program().expect("an external encoder");
    pipe_through(program, args, wav_bytes)
}

/// FLAC of mono 16-bit samples with flacenc's default settings.
fn encode_flac(pcm: &[i16], sample_rate: u32) -> std::io::Result<Vec<u8>> {
    use flacenc::component::BitRepr;
    use flacenc::error::Verify;
    let bad = |e: String| std::io::Error::other(format!("FLAC encoder: {e}"));
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|e| bad(format!("{e:?}")))?;
    let samples: Vec<i32> = pcm.iter().map(|&x| i32::from(x)).collect();
    let source = flacenc::source::MemSource::from_samples(&samples, 1, 16, sample_rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| bad(format!("{e:?}")))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream.write(&mut sink).map_err(|e| bad(format!("{e:?}")))?;
    let mut bytes = sink.as_slice().to_vec();
    // STREAMINFO's minimum block size must leave out the last block (the FLAC format), but
    // flacenc counts it: a clip that is not a whole number of blocks would say it has blocks
    // of two sizes, and a strict decoder (symphonia) then refuses its fixed-size frames. The
    // stream has one block size, the maximum's.
    if bytes.len() >= 12 && &bytes[..4] == b"fLaC" && bytes[4] & 0x7f == 0 {
        let (min, max) = bytes[8..12].split_at_mut(2);
        min.copy_from_slice(max);
    }
    Ok(bytes)
}

/// What `program args` writes to its standard output when `input` is its standard input.
fn pipe_through(program: &str, args: &[&str], input: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let out = std::thread::scope(|s| {
        let feeder = s.spawn(move || stdin.write_all(input));
        let out = child.wait_with_output();
        let fed = feeder
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        out.and_then(|o| fed.map(|()| o))
    })?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(std::io::Error::other(format!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use melpipe_core::backend::AudioBatch;
    use melpipe_core::discover::discover;
    use melpipe_core::read::Reader;
    use melpipe_core::Params;

    fn small(files: usize, corrupt: usize) -> GenerateOptions {
        GenerateOptions {
            files,
            corrupt,
            sample_rate: 4096,
            samples: 4096,
            format: AudioFormat::Wav,
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
        assert_eq!(report.failed(), 2 * 6);
        assert_eq!(
            report.bytes,
            report.files.iter().map(|f| f.bytes).sum::<u64>()
        );

        // The real discover and read stages, as a run would use them.
        let cfg = Params {
            clip_samples: opts.samples,
            ..Params::default()
        };
        cfg.validate().expect("valid config");
        let found =
            discover(&[dir.path().to_path_buf()], 2, &Default::default()).expect("discover");
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
