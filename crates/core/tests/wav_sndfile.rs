//! melpipe's WAV decoder against libsndfile (python `soundfile`, scripts/sndfile_decode.py), an
//! independent decoder: every encoding (8, 16, 24, 32-bit PCM, 32 and 64-bit float, µ-law,
//! A-law), little-endian RIFF and big-endian RIFX, plain and extensible headers, valid bits
//! fewer than the container, mono and stereo, odd lengths, each channel picked and the mix.
//!
//! Exact comparison: every sample melpipe decodes equals libsndfile's float64 value rounded to
//! f32, bit for bit; the mix equals the mean of libsndfile's values computed in f64, then
//! rounded to f32. libsndfile does not read 64-bit integer PCM: the test checks that it
//! refuses it, and compares melpipe with the script's numpy computation of int64 / 2^63.
//!
//! Needs python3 with numpy and soundfile (`pip install soundfile`); without them the test
//! fails, saying so.

use melpipe_core::config::Channel;
use melpipe_core::wav::{self, ByteOrder, Samples, WavBuilder};
use std::path::{Path, PathBuf};
use std::process::Command;

const RATE: u32 = 8000;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sndfile_decode.py")
}

/// Runs the script; a missing python3, numpy or soundfile fails the test with the fix.
fn run_script(args: &[&Path]) {
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 not runnable ({e}): install python3, then pip install soundfile")
        });
    assert!(
        out.status.success(),
        "scripts/sndfile_decode.py failed (pip install soundfile): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A deterministic sequence of raw values covering the range, extremes and zero first.
fn values(n: usize, min: i64, max: i64) -> Vec<i64> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let fixed = [min, max, 0, -1, 1, min + 1, max - 1];
    (0..n)
        .map(|i| {
            if let Some(&v) = fixed.get(i) {
                return v;
            }
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let span = (max as i128 - min as i128 + 1) as u128;
            (min as i128 + ((state as u128 * 0x1_0000_0001) % span) as i128) as i64
        })
        .collect()
}

/// One file to decode both ways.
struct Case {
    name: String,
    bytes: Vec<u8>,
}

/// Every variant: `frames` per channel count chosen odd so no length is a multiple of anything.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for channels in [1u16, 2] {
        let frames = if channels == 1 { 257 } else { 131 };
        let n = frames * usize::from(channels);
        let u8s: Vec<u8> = values(n, 0, 255).iter().map(|&v| v as u8).collect();
        let i16s: Vec<i16> = values(n, -32768, 32767).iter().map(|&v| v as i16).collect();
        let i24s: Vec<i32> = values(n, -(1 << 23), (1 << 23) - 1)
            .iter()
            .map(|&v| v as i32)
            .collect();
        let i32s: Vec<i32> = values(n, i32::MIN.into(), i32::MAX.into())
            .iter()
            .map(|&v| v as i32)
            .collect();
        // Floats beyond ±1 and tiny ones too: libsndfile reads float as is.
        let f64s: Vec<f64> = values(n, -(1 << 40), 1 << 40)
            .iter()
            .enumerate()
            .map(|(i, &v)| v as f64 / (1u64 << (30 + i % 20)) as f64)
            .collect();
        let f32s: Vec<f32> = f64s.iter().map(|&v| v as f32).collect();
        // Every code, then more.
        let codes: Vec<u8> = (0..n).map(|i| (i * 7 % 256) as u8).collect();
        let codes: Vec<u8> = if channels == 1 {
            (0..=255u8).chain(codes).take(n).collect()
        } else {
            codes
        };
        let encodings: [(&str, Samples<'_>, &[u16]); 8] = [
            ("u8", Samples::U8(&u8s), &[4]),
            ("i16", Samples::I16(&i16s), &[12]),
            ("i24", Samples::I24(&i24s), &[20]),
            ("i32", Samples::I32(&i32s), &[24]),
            ("f32", Samples::F32(&f32s), &[]),
            ("f64", Samples::F64(&f64s), &[]),
            ("ulaw", Samples::MuLaw(&codes), &[]),
            ("alaw", Samples::ALaw(&codes), &[]),
        ];
        for (name, samples, fewer_bits) in encodings {
            for order in [ByteOrder::Little, ByteOrder::Big] {
                let o = if order == ByteOrder::Big {
                    "rifx"
                } else {
                    "riff"
                };
                let base = WavBuilder::new(channels, RATE, samples).byte_order(order);
                cases.push(Case {
                    name: format!("{name}_{o}_{channels}ch"),
                    bytes: base.build(),
                });
                cases.push(Case {
                    name: format!("{name}_{o}_{channels}ch_ext"),
                    bytes: base.clone().extensible(true).build(),
                });
                for &bits in fewer_bits {
                    cases.push(Case {
                        name: format!("{name}_{o}_{channels}ch_ext_valid{bits}"),
                        bytes: base.clone().extensible(true).valid_bits(bits).build(),
                    });
                    // Plain headers stating the valid bits with the container's block align.
                    if usize::from(bits).div_ceil(8) == samples.format().bytes() {
                        cases.push(Case {
                            name: format!("{name}_{o}_{channels}ch_plain{bits}"),
                            bytes: base.clone().bits_per_sample(bits).build(),
                        });
                    }
                }
            }
        }
    }
    cases
}

/// What libsndfile decoded: channels and interleaved float64 samples.
fn read_f64(path: &Path) -> (usize, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let word = |c: &[u8]| <[u8; 8]>::try_from(c).expect("8 bytes");
    let channels = u64::from_le_bytes(word(&bytes[..8])) as usize;
    let samples = bytes[8..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(word(c)))
        .collect();
    (channels, samples)
}

fn decode_all(bytes: &[u8], channel: Channel) -> Vec<f32> {
    let info = wav::parse(bytes).expect("melpipe parses it");
    let mut out = vec![f32::NAN; info.frames];
    let n = wav::decode(&info, bytes, channel, &mut out).expect("melpipe decodes it");
    assert_eq!(n, info.frames);
    out
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn decodes_as_libsndfile_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = cases();
    let paths: Vec<PathBuf> = cases
        .iter()
        .map(|c| {
            let p = dir.path().join(format!("{}.wav", c.name));
            std::fs::write(&p, &c.bytes).expect("write");
            p
        })
        .collect();
    let args: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    run_script(&args);

    let mut compared = 0;
    for (case, path) in cases.iter().zip(&paths) {
        let err = path.with_extension("wav.err");
        assert!(
            !err.exists(),
            "{}: libsndfile refused it: {}",
            case.name,
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        let (channels, theirs) = read_f64(&path.with_extension("wav.f64"));
        let info = wav::parse(&case.bytes).expect("melpipe parses it");
        assert_eq!(channels, usize::from(info.channels), "{}", case.name);
        assert_eq!(
            theirs.len(),
            info.frames * channels,
            "{}: frames",
            case.name
        );
        for c in 0..channels {
            let want: Vec<f32> = theirs
                .iter()
                .skip(c)
                .step_by(channels)
                .map(|&v| v as f32)
                .collect();
            let got = decode_all(&case.bytes, Channel::Index(c as u16));
            assert_eq!(bits(&got), bits(&want), "{}: channel {c}", case.name);
        }
        let mean: Vec<f32> = theirs
            .chunks_exact(channels)
            .map(|f| (f.iter().sum::<f64>() / channels as f64) as f32)
            .collect();
        let got = decode_all(&case.bytes, Channel::Mix);
        assert_eq!(bits(&got), bits(&mean), "{}: mix", case.name);
        compared += 1;
    }
    // 8 encodings × 2 byte orders × 2 channel counts × (plain, extensible), plus the
    // valid-bits variants of the 4 integer PCM ones (3 of them also with plain headers).
    assert_eq!(compared, 8 * 2 * 2 * 2 + 2 * 2 * (4 + 3));
}

#[test]
fn mulaw_and_alaw_tables_are_libsndfiles() {
    // All 256 codes of each law, plain and extensible: libsndfile's ulaw_decode and
    // alaw_decode tables / 32768, bit for bit.
    let codes: Vec<u8> = (0..=255).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for (name, samples) in [
        ("ulaw", Samples::MuLaw(&codes)),
        ("alaw", Samples::ALaw(&codes)),
    ] {
        for ext in [false, true] {
            let bytes = WavBuilder::new(1, RATE, samples).extensible(ext).build();
            let p = dir.path().join(format!("{name}{ext}.wav"));
            std::fs::write(&p, &bytes).expect("write");
            files.push((p, bytes));
        }
    }
    let args: Vec<&Path> = files.iter().map(|f| f.0.as_path()).collect();
    run_script(&args);
    for (path, bytes) in &files {
        let (_, theirs) = read_f64(&path.with_extension("wav.f64"));
        assert_eq!(theirs.len(), 256);
        // libsndfile's values are 16-bit integers over 32768.
        assert!(theirs.iter().all(|v| (v * 32768.0).fract() == 0.0));
        let want: Vec<f32> = theirs.iter().map(|&v| v as f32).collect();
        assert_eq!(
            bits(&decode_all(bytes, Channel::Mix)),
            bits(&want),
            "{}",
            path.display()
        );
    }
}

#[test]
fn pcm64_is_refused_by_libsndfile_and_matches_numpy() {
    let dir = tempfile::tempdir().expect("temp dir");
    for channels in [1u16, 2, 3] {
        let frames = 101;
        let mut v = values(frames * usize::from(channels), i64::MIN, i64::MAX);
        // Values whose rounding to f32 is a tie or near one, and sums that overflow i64.
        v.extend([
            (1i64 << 40) + (1 << 16),
            (1 << 40) + (1 << 16) + 1,
            i64::MAX,
            i64::MAX,
            i64::MIN,
            i64::MIN,
        ]);
        v.truncate(v.len() - v.len() % usize::from(channels));
        let frames = v.len() / usize::from(channels);
        for order in [ByteOrder::Little, ByteOrder::Big] {
            for ext in [false, true] {
                let bytes = WavBuilder::new(channels, RATE, Samples::I64(&v))
                    .byte_order(order)
                    .extensible(ext)
                    .build();
                let wav_path = dir
                    .path()
                    .join(format!("pcm64_{channels}_{order:?}_{ext}.wav"));
                std::fs::write(&wav_path, &bytes).expect("write");
                run_script(&[&wav_path]);
                assert!(
                    wav_path.with_extension("wav.err").exists(),
                    "libsndfile now reads 64-bit PCM: compare with it instead"
                );
                let raw = dir.path().join(format!("pcm64_{channels}.raw"));
                let le: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                std::fs::write(&raw, le).expect("write");
                let out = Command::new("python3")
                    .arg(script())
                    .args(["--pcm64", &channels.to_string()])
                    .arg(&raw)
                    .output()
                    .expect("python3 (pip install soundfile)");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let reference: Vec<f32> = std::fs::read(raw.with_extension("raw.f32"))
                    .expect("reference")
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let row = usize::from(channels) + 1;
                assert_eq!(reference.len(), frames * row);
                for c in 0..=usize::from(channels) {
                    let channel = if c == usize::from(channels) {
                        Channel::Mix
                    } else {
                        Channel::Index(c as u16)
                    };
                    let want: Vec<f32> = reference.iter().skip(c).step_by(row).copied().collect();
                    let got = decode_all(&bytes, channel);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{channels} ch {order:?} ext={ext} {channel:?}"
                    );
                }
            }
        }
    }
}

/// Through the whole pipeline (reader, CPU backend): a RIFX file, a µ-law file and a 64-bit
/// file give the features of their little-endian 16-bit twins bit for bit, so none of them
/// is read as raw little-endian 16-bit samples; a RIFX float file holding NaN fails as a
/// little-endian one does.
#[test]
fn pipeline_reads_new_encodings_like_their_pcm16_twins() {
    use melpipe_core::config::{DeviceChoice, Dtype, Settings};
    use melpipe_core::dsp::CpuBackendFactory;
    use melpipe_core::manifest::FileStatus;
    use melpipe_core::pipeline::{run, RunRequest};
    use std::sync::Arc;

    let mut cfg = Settings::default();
    cfg.params.clip_samples = 6000;
    cfg.params.dtype = Dtype::F32;
    cfg.run.device = DeviceChoice::Cpu;
    let rate = cfg.params.sample_rate;
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let pcm: Vec<i16> = (0..6000)
        .map(|i| ((i as f64 * 0.07).sin() * 12000.0 + (i as f64 * 0.31).cos() * 3000.0) as i16)
        .collect();
    let stereo: Vec<i16> = pcm
        .iter()
        .zip(pcm.iter().rev())
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    let codes: Vec<u8> = (0..6000).map(|i| (i * 37 % 256) as u8).collect();
    let ulaw = WavBuilder::new(1, rate, Samples::MuLaw(&codes)).build();
    let expanded: Vec<i16> = decode_all(&ulaw, Channel::Mix)
        .iter()
        .map(|&x| (x * 32768.0) as i16)
        .collect();
    let wide: Vec<i64> = pcm.iter().map(|&x| i64::from(x) << 48).collect();
    let mut nan: Vec<f32> = pcm.iter().map(|&x| f32::from(x) / 32768.0).collect();
    nan[100] = f32::NAN;
    let big = |s: Samples<'_>, ch: u16| {
        WavBuilder::new(ch, rate, s)
            .byte_order(ByteOrder::Big)
            .build()
    };
    let files: [(&str, Vec<u8>); 9] = [
        (
            "a_riff16",
            WavBuilder::new(1, rate, Samples::I16(&pcm)).build(),
        ),
        ("b_rifx16", big(Samples::I16(&pcm), 1)),
        (
            "c_pcm64",
            WavBuilder::new(1, rate, Samples::I64(&wide)).build(),
        ),
        ("d_rifx_pcm64", big(Samples::I64(&wide), 1)),
        ("e_ulaw", ulaw),
        (
            "f_ulaw_twin",
            WavBuilder::new(1, rate, Samples::I16(&expanded)).build(),
        ),
        (
            "g_riff16_stereo",
            WavBuilder::new(2, rate, Samples::I16(&stereo)).build(),
        ),
        ("h_rifx16_stereo", big(Samples::I16(&stereo), 2)),
        ("i_rifx_f32_nan", big(Samples::F32(&nan), 1)),
    ];
    for (name, bytes) in &files {
        std::fs::write(data.join(format!("{name}.wav")), bytes).expect("write");
    }
    let out = tmp.path().join("out");
    let req = RunRequest {
        inputs: vec![data],
        out: out.clone(),
        force: false,
        resume: false,
        progress: Arc::default(),
        stop: Arc::default(),
        shard: None,
    };
    let manifest = run(&cfg.params, &cfg.run, &req, &CpuBackendFactory)
        .expect("run")
        .manifest;
    assert_eq!(manifest.files.len(), files.len());
    let features = std::fs::read(out.join("features.npy")).expect("features");
    let values: Vec<u32> = features[128..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let per_row = values.len() / manifest.rows as usize;
    let rows = |i: usize| {
        let f = &manifest.files[i];
        assert!(
            f.path.starts_with(files[i].0),
            "{} is not {}",
            f.path,
            files[i].0
        );
        let at = f.first_row as usize * per_row;
        &values[at..at + f.rows as usize * per_row]
    };
    for (twin, of) in [(1, 0), (2, 0), (3, 0), (5, 4), (7, 6)] {
        assert_eq!(
            manifest.files[twin].status,
            FileStatus::Ok,
            "{}",
            files[twin].0
        );
        assert!(
            rows(twin) == rows(of),
            "{} differs from {}",
            files[twin].0,
            files[of].0
        );
    }
    assert!(rows(0) != rows(4), "the comparison can fail");
    assert_eq!(
        manifest.files[8].status,
        FileStatus::Failed {
            reason: "float samples include NaN or infinity".into()
        }
    );
}
