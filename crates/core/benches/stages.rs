//! Criterion benches of the pipeline's stages on seed-shaped clips (docs/PERFORMANCE.md): 40,960
//! int16 samples at 4,096 Hz, 237 rows of 32 mels per file with the default configuration.
//!
//! `cargo bench -p melpipe-core` (add `-- --warm-up-time 1 --measurement-time 3` for a quick
//! pass, or a filter such as `-- extract`). Figures and the machine they came from are in
//! docs/PERFORMANCE.md; end-to-end figures come from bench/bench.py, not from here.
//!
//! Stages, in pipeline order:
//! - `read`: [`Reader::read_task`] on 16 clip files in the page cache (open, read, parse,
//!   decode into an [`AudioBatch`]); `wav/parse_decode`: the same parse and decode of one clip
//!   already in memory.
//! - `extract`: the CPU backend ([`CpuBackendFactory`], the SIMD frame-sharing path) on a batch
//!   of 16 decoded files, f16 out, as the pipeline calls it; and [`FeatureExtractor::extract`]
//!   on one file, f32 out, for `pool = "mean"` and `pool = "none"`. The mel projection and the
//!   logarithm are fused into the extractor's SIMD loop and are not a separate public stage:
//!   `pool = "none"` runs them for each of the 33 frames of a segment instead of once, so the
//!   difference of the two extractor figures bounds their cost (see docs/PERFORMANCE.md).
//! - `f16`: [`FeatureBuf::store`] of a batch's f32 values into the stored half precision.
//! - `write`: xxh3 of a batch's feature bytes, and xxh3 + `write_all` to a temp file, as the
//!   features writer does for each batch (page cache only: the disk's bandwidth is the write
//!   floor of bench/bench.py, not a CPU cost).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use melpipe_core::backend::{AudioBatch, BackendFactory, FeatureBuf};
use melpipe_core::config::{Dtype, Pool};
use melpipe_core::discover::InputFile;
use melpipe_core::dsp::{CpuBackendFactory, FeatureExtractor};
use melpipe_core::geometry::Geometry;
use melpipe_core::read::Reader;
use melpipe_core::wav;
use melpipe_core::Params;
use std::hint::black_box;
use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};
use xxhash_rust::xxh3::Xxh3;

/// Files per batch: the order of magnitude of a CPU task.
const BATCH: usize = 16;

/// Samples of a seed-shaped clip: one to three tones plus noise, on the int16 grid, a pure
/// function of `index` (an LCG, so the benches need no RNG crate).
fn clip_samples(cfg: &Params, index: usize) -> Vec<i16> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ index as u64;
    (0..cfg.clip_samples)
        .map(|i| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.1;
            let t = i as f64 / f64::from(cfg.sample_rate);
            let f = 100.0 + 7.0 * index as f64;
            let tone = 0.4 * (2.0 * std::f64::consts::PI * f * t).sin()
                + 0.2 * (2.0 * std::f64::consts::PI * 3.1 * f * t).sin();
            ((tone + noise) * 32767.0).round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// A seed-shaped clip as the bytes of a 16-bit mono WAV file (81,964 bytes).
fn clip_wav(cfg: &Params, index: usize) -> Vec<u8> {
    wav::encode_pcm16(1, cfg.sample_rate, &clip_samples(cfg, index))
}

/// A batch of `BATCH` decoded clips, as the reader leaves it for the backend.
fn decoded_batch(cfg: &Params, dir: &std::path::Path) -> AudioBatch {
    let files = write_clips(cfg, dir);
    let mut batch = AudioBatch::default();
    let outcomes = Reader::new(cfg).read_task(&files, &mut batch);
    assert!(batch.files.iter().all(|f| !f.failed), "{outcomes:?}");
    batch
}

fn write_clips(cfg: &Params, dir: &std::path::Path) -> Vec<InputFile> {
    (0..BATCH)
        .map(|i| {
            let rel = format!("clip_{i:03}.wav");
            let path = dir.join(&rel);
            let bytes = clip_wav(cfg, i);
            std::fs::write(&path, &bytes).expect("writing a bench clip");
            InputFile {
                path,
                rel: rel.into(),
                size: bytes.len() as u64,
                mtime_ns: 0,
            }
        })
        .collect()
}

fn read_stage(c: &mut Criterion) {
    let cfg = Params::default();
    let bytes = clip_wav(&cfg, 0);
    let mut g = c.benchmark_group("wav");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut out = vec![0.0f32; cfg.clip_samples];
    g.bench_function("parse_decode", |b| {
        b.iter(|| {
            let info = wav::parse(black_box(&bytes)).expect("a valid clip");
            wav::decode(&info, &bytes, cfg.channel, &mut out).expect("a valid clip")
        })
    });
    g.finish();

    let dir = tempfile::tempdir().expect("temp dir");
    let files = write_clips(&cfg, dir.path());
    let mut reader = Reader::new(&cfg);
    let mut batch = AudioBatch::default();
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("read_task_16_files_cached", |b| {
        b.iter(|| reader.read_task(black_box(&files), &mut batch))
    });
    g.finish();
}

fn extract_stage(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = Params::default();
    let batch = decoded_batch(&cfg, dir.path());
    let mut g = c.benchmark_group("extract");

    g.throughput(Throughput::Elements(BATCH as u64));
    let mut backend = CpuBackendFactory.create(&cfg).expect("cpu backend");
    let mut out = FeatureBuf::new(cfg.dtype);
    out.resize(batch.rows() * cfg.values_per_row());
    g.bench_function("cpu_backend_16_files_f16", |b| {
        b.iter(|| {
            backend
                .compute(black_box(&batch), &mut out)
                .expect("compute")
        })
    });

    g.throughput(Throughput::Elements(1));
    let file = batch.files[0];
    let samples = &batch.samples.f32s().expect("an f32 batch")[file.offset..file.offset + file.len];
    for pool in [Pool::Mean, Pool::None] {
        let cfg = Params {
            pool,
            ..Params::default()
        };
        let mut fx = FeatureExtractor::new(&cfg).expect("extractor");
        let mut out = vec![0.0f32; file.rows * cfg.values_per_row()];
        let name = format!("extractor_1_file_f32_pool_{}", pool_name(pool));
        g.bench_function(&name, |b| {
            b.iter(|| fx.extract(black_box(samples), file.rows, &mut out))
        });
    }
    g.finish();
}

fn pool_name(pool: Pool) -> &'static str {
    match pool {
        Pool::Mean => "mean",
        Pool::None => "none",
    }
}

/// Feature values of a batch of `BATCH` files with `cfg`, f32, plausible dB magnitudes.
fn batch_values(cfg: &Params) -> Vec<f32> {
    let rows = BATCH * Geometry::new(cfg).rows(Some(cfg.clip_samples));
    (0..rows * cfg.values_per_row())
        .map(|i| -80.0 + (i % 997) as f32 * 0.09)
        .collect()
}

fn f16_stage(c: &mut Criterion) {
    let mut g = c.benchmark_group("f16");
    for pool in [Pool::Mean, Pool::None] {
        let cfg = Params {
            pool,
            ..Params::default()
        };
        let vals = batch_values(&cfg);
        let mut buf = FeatureBuf::new(Dtype::F16);
        buf.resize(vals.len());
        g.throughput(Throughput::Elements(vals.len() as u64));
        let name = format!("store_16_files_pool_{}", pool_name(pool));
        g.bench_function(&name, |b| b.iter(|| buf.store(0, black_box(&vals))));
    }
    g.finish();
}

fn write_stage(c: &mut Criterion) {
    let cfg = Params::default();
    let mut buf = FeatureBuf::new(Dtype::F16);
    let vals = batch_values(&cfg);
    buf.resize(vals.len());
    buf.store(0, &vals);
    let bytes = buf.as_bytes();
    let mut g = c.benchmark_group("write");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("xxh3_16_files", |b| {
        b.iter_batched_ref(
            Xxh3::new,
            |h| h.update(black_box(bytes)),
            BatchSize::SmallInput,
        )
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let mut file = std::fs::File::create(dir.path().join("features.bin")).expect("temp file");
    let mut hasher = Xxh3::new();
    // The file is cut back to empty (untimed) every 256 MiB, so the bench measures appending
    // to the page cache without filling the disk.
    const CAP: u64 = 256 << 20;
    let mut len = 0u64;
    g.bench_function("xxh3_write_16_files", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                if len + bytes.len() as u64 > CAP {
                    file.set_len(0).expect("truncating");
                    file.seek(SeekFrom::Start(0)).expect("seeking");
                    len = 0;
                }
                let n = left.min((CAP - len) / bytes.len() as u64).max(1);
                let t = Instant::now();
                for _ in 0..n {
                    hasher.update(bytes);
                    file.write_all(bytes).expect("writing");
                }
                spent += t.elapsed();
                len += n * bytes.len() as u64;
                left -= n;
            }
            black_box(hasher.digest());
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, read_stage, extract_stage, f16_stage, write_stage);
criterion_main!(benches);
