//! The decoders of inputs that are not WAV (FLAC, MP3, Ogg Vorbis, AIFF) against an independent
//! decoder: libsndfile, through the `soundfile` package (scripts/sndfile_decode.py), on files
//! that libsndfile wrote (scripts/make_decoder_inputs.py) and on files of `melpipe generate`.
//!
//! Lossless formats must give libsndfile's samples bit for bit (after the one rounding to f32
//! that melpipe's samples take); lossy ones the same number of frames and samples within a
//! small tolerance (two float decoders of one stream differ in their last bits). Then damaged
//! files: each is `failed` with a reason or `padded` with what decoded before the damage,
//! never a panic or a hang.
//!
//! Needs python3 with numpy and soundfile (`pip install numpy soundfile`), and for the generated
//! MP3 and Ogg files the `lame` and `oggenc` programs (Debian: `apt-get install lame
//! vorbis-tools`); `.ci/run` installs them. Without them the tests fail and say what is missing.

use melpipe_core::config::{Channel, LengthMode, Params};
use melpipe_core::decode;
use melpipe_core::discover::InputFile;
use melpipe_core::manifest::FileStatus;
use melpipe_core::read::Reader;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

fn python(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("python3")
        .args(args)
        .output()
        .expect("python3 is needed for the decoder tests");
    assert!(
        out.status.success(),
        "{:?} failed: {}\n(the decoder tests need python3 with numpy and soundfile: pip install numpy soundfile)",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// libsndfile's decoding of `file`: (rate, channels, interleaved f64 samples).
fn reference(file: &Path) -> (u32, usize, Vec<f64>) {
    python(&[
        scripts().join("sndfile_decode.py").as_os_str(),
        file.as_os_str(),
    ]);
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", file.display()));
    let b = std::fs::read(with("f64"))
        .unwrap_or_else(|_| panic!("libsndfile: {:?}", std::fs::read_to_string(with("err"))));
    let rate: u32 = std::fs::read_to_string(with("rate"))
        .unwrap()
        .parse()
        .unwrap();
    let ch = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let v: Vec<f64> = b[8..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(v.len() % ch, 0);
    (rate, ch, v)
}

/// melpipe's decoding of `file` for `channel`.
fn ours(file: &Path, channel: Channel) -> (decode::Decoded, Vec<f32>) {
    let bytes = std::fs::read(file).unwrap();
    let ext = file.extension().and_then(|e| e.to_str());
    let mut out = Vec::new();
    let d = decode::decode(&bytes, ext, channel, usize::MAX, &mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(out.len(), d.frames);
    (d, out)
}

/// Checks every channel choice of `file` against libsndfile; `tol` is the largest difference
/// allowed (0: bit for bit). Returns the largest difference found.
fn check(file: &Path, tol: f64, codec: &str) -> f64 {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let (rate, ch, want) = reference(file);
    let frames = want.len() / ch;
    let mut worst = 0f64;
    let choices: Vec<Channel> = std::iter::once(Channel::Mix)
        .chain((0..ch as u16).map(Channel::Index))
        .collect();
    for channel in choices {
        let (d, got) = ours(file, channel);
        assert_eq!(d.codec, codec, "{name}");
        assert_eq!(d.sample_rate, rate, "{name}");
        assert_eq!(usize::from(d.channels), ch, "{name}");
        assert_eq!(d.damage, None, "{name}");
        assert_eq!(d.frames, frames, "{name}: frames");
        assert_eq!(got.len(), frames, "{name}");
        for (i, (g, w)) in got.iter().zip(want.chunks_exact(ch)).enumerate() {
            let w = match channel {
                Channel::Index(c) => w[usize::from(c)],
                Channel::Mix => w.iter().sum::<f64>() / ch as f64,
            };
            let diff = (f64::from(*g) - w).abs();
            worst = worst.max(diff);
            if tol == 0.0 {
                assert_eq!(
                    g.to_bits(),
                    (w as f32).to_bits(),
                    "{name} {channel:?} sample {i}: {g} vs {w}"
                );
            } else {
                assert!(diff <= tol, "{name} {channel:?} sample {i}: {g} vs {w}");
            }
        }
    }
    // Beyond `max_frames` nothing is decoded, and the count is still the stream's.
    let bytes = std::fs::read(file).unwrap();
    let mut out = Vec::new();
    let d = decode::decode(&bytes, None, Channel::Mix, 100, &mut out).unwrap();
    assert_eq!((d.frames, out.len()), (frames, frames.min(100)), "{name}");
    worst
}

#[test]
fn flac_aiff_mp3_and_vorbis_match_libsndfile() {
    let d = tempfile::tempdir().unwrap();
    let listing = python(&[
        scripts().join("make_decoder_inputs.py").as_os_str(),
        d.path().as_os_str(),
    ]);
    let names: Vec<&str> = listing.lines().collect();
    assert!(names.len() >= 16, "{listing}");
    let mut report = Vec::new();
    for name in names {
        let file = d.path().join(name);
        let (tol, codec) = match name.split('_').next().unwrap() {
            "flac16" | "flac24" | "flac8" => (0.0, "flac"),
            "aiff16" => (0.0, "pcm_s16be"),
            "aiff24" => (0.0, "pcm_s24be"),
            "aiff32" => (0.0, "pcm_s32be"),
            "aiff8" => (0.0, "pcm_s8"),
            "mp3" => (1e-5, "mp3"),
            "vorbis" => (2e-6, "vorbis"),
            other => panic!("no expectation for {other}"),
        };
        let worst = check(&file, tol, codec);
        report.push(format!("{name}: largest difference {worst:.2e}"));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn generated_flac_mp3_and_ogg_match_libsndfile_and_the_wav_clips() {
    use melpipe_gen::{generate, AudioFormat, GenerateOptions};
    let d = tempfile::tempdir().unwrap();
    let opts = |format| GenerateOptions {
        files: 3,
        sample_rate: 16000,
        samples: 20000,
        format,
        ..GenerateOptions::default()
    };
    for format in AudioFormat::ALL {
        let r = generate(&d.path().join(format.ext()), &opts(format))
            .unwrap_or_else(|e| panic!("generate --format {}: {e}", format.ext()));
        assert_eq!(r.files.len(), 3);
    }
    let wavs = generate(&d.path().join("again"), &opts(AudioFormat::Wav)).unwrap();
    for (i, w) in wavs.files.iter().enumerate() {
        let wav = std::fs::read(d.path().join("again").join(&w.path)).unwrap();
        let info = melpipe_core::wav::parse(&wav).unwrap();
        let mut clip = vec![0f32; info.frames];
        melpipe_core::wav::decode(&info, &wav, Channel::Mix, &mut clip).unwrap();
        for (format, tol, codec) in [
            (AudioFormat::Flac, 0.0, "flac"),
            (AudioFormat::Mp3, 1e-5, "mp3"),
            (AudioFormat::Ogg, 2e-6, "vorbis"),
        ] {
            let file = d
                .path()
                .join(format.ext())
                .join(w.path.with_extension(format.ext()));
            check(&file, tol, codec);
            if format == AudioFormat::Flac {
                // Lossless: the very samples of the WAV clip.
                let (_, got) = ours(&file, Channel::Mix);
                assert_eq!(got, clip, "clip {i}");
            }
        }
    }
}

fn input(dir: &Path, name: &str, bytes: &[u8]) -> InputFile {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    InputFile {
        rel: name.into(),
        size: bytes.len() as u64,
        path,
        mtime_ns: 0,
    }
}

/// Damaged files through the reader: a status and a reason for each, no panic, no hang.
#[test]
fn damaged_compressed_files_fail_or_keep_what_decoded() {
    let d = tempfile::tempdir().unwrap();
    python(&[
        scripts().join("make_decoder_inputs.py").as_os_str(),
        d.path().as_os_str(),
    ]);
    let read = |name: &str| std::fs::read(d.path().join(name)).unwrap();
    let flac = read("flac16_mono.flac");
    let mp3 = read("mp3_mono_16000.mp3");
    let ogg = read("vorbis_mono_4096.ogg");
    let mut garbled = flac.clone();
    let mid = garbled.len() / 2;
    garbled[mid..mid + 2000].iter_mut().for_each(|b| *b ^= 0x5a);
    let mut lying = flac.clone();
    // STREAMINFO's total samples (36 bits at byte 21.5): twice the truth.
    lying[22..26].copy_from_slice(&(2 * 40960u32).to_be_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("cut_half.flac", flac[..flac.len() / 2].to_vec()),
        ("cut_header.flac", flac[..30].to_vec()),
        ("garbled.flac", garbled),
        ("lying_length.flac", lying),
        ("only_magic.flac", b"fLaC".to_vec()),
        ("cut.mp3", mp3[..mp3.len() / 3].to_vec()),
        ("cut.ogg", ogg[..ogg.len() / 2].to_vec()),
        ("headers_only.ogg", ogg[..200.min(ogg.len())].to_vec()),
        ("flac_named.mp3", flac.clone()),
        (
            "text.flac",
            b"this is not audio at all, just some text\n".repeat(50),
        ),
        ("zeros.ogg", vec![0u8; 5000]),
        ("empty.mp3", Vec::new()),
    ];
    let files: Vec<InputFile> = cases.iter().map(|(n, b)| input(d.path(), n, b)).collect();
    // The resampler makes the MP3 at 16 kHz a usable file too.
    let cfg = Params {
        resample: true,
        ..Params::default()
    };
    let mut batch = melpipe_core::backend::AudioBatch::default();
    let out = Reader::new(&cfg).read_task(&files, &mut batch);
    for ((name, _), o) in cases.iter().zip(&out) {
        eprintln!("{name}: {:?} {:?}", o.status, o.source);
        assert_eq!(o.rows, 237, "{name}");
        let damage = o.source.as_ref().and_then(|s| s.damage.clone());
        match (*name, &o.status) {
            // Cut in the middle: what decoded before the cut, padded, with the damage said.
            (
                "cut_half.flac" | "cut.mp3" | "cut.ogg" | "garbled.flac",
                FileStatus::Padded { .. },
            ) => {
                assert!(damage.is_some(), "{name}");
            }
            // A header that claims more samples than there are: the samples there are.
            ("lying_length.flac", FileStatus::Ok | FileStatus::Padded { .. }) => {
                assert!(damage.is_some(), "{name}");
            }
            // A FLAC named .mp3 is a FLAC file.
            ("flac_named.mp3", FileStatus::Ok) => {
                assert_eq!(o.source.as_ref().unwrap().codec, "flac");
            }
            (
                "cut_header.flac" | "only_magic.flac" | "headers_only.ogg" | "text.flac"
                | "zeros.ogg" | "empty.mp3",
                FileStatus::Failed { reason },
            ) => assert!(!reason.is_empty(), "{name}"),
            (name, status) => panic!("{name}: unexpected {status:?} ({damage:?})"),
        }
    }
    // Natural length: the cut file gives rows for what decoded.
    let natural = Params {
        length: LengthMode::Natural,
        ..Params::default()
    };
    let mut batch = melpipe_core::backend::AudioBatch::default();
    let out = Reader::new(&natural).read_task(&files[..1], &mut batch);
    assert_eq!(out[0].status, FileStatus::Ok);
    assert!(out[0].samples > 0 && out[0].samples < 40960);
}
