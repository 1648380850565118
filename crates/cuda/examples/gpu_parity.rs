//! GPU parity and timing run of the CUDA backend (needs a GPU; not a test CI can run).
//!
//! `gpu_parity OUT_DIR [--no-time]` builds seeded test signals of varied amplitude, runs the
//! CUDA backend on them under several configurations and writes, per configuration, a folder
//! `OUT_DIR/<name>/` with `samples.npy` (f32), `files.npy` (i64 rows of offset, len, rows,
//! failed), `fb.npy` (melpipe-core's f64 filterbank), `features.npy` (the CUDA backend's
//! output), `cpu.npy` (the CPU backend's output on the same batch) and `config.toml`. `scripts/gpu_parity.py OUT_DIR` then computes the torchaudio
//! float64 reference and checks the accuracy contract (docs/FORMAT.md, Accuracy).
//!
//! It then times the seed configuration: kernel time (CUDA events) and wall time of whole
//! `compute` calls for several batch sizes, the full seed dataset's kernel time, and the
//! throughput of 1–4 backends on their own threads (the pipeline's `streams`).

use half::f16;
use melpipe_core::backend::{AudioBatch, Backend, BackendFactory, BatchFile, FeatureBuf};
use melpipe_core::config::{Dtype, LengthMode, MelNorm, MelScale, Params, Pool};
use melpipe_core::dsp::CpuBackendFactory;
use melpipe_core::geometry::Geometry;
use melpipe_core::mel::MelFilterbank;
use melpipe_core::samples::SampleKind;
use melpipe_cuda::{probe, CudaBackend, CudaBackendFactory, GpuMonitor, MultiGpuFactory};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// splitmix64: small, seeded, good enough for test signals.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u = self.f64().max(1e-300);
        let v = self.f64();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// One clip: tones, a chirp and noise at a log-uniform level from −80 to 0 dBFS, with a DC
/// offset, silent stretches, loud bursts, and int16 quantisation on half of the clips (as
/// decoded PCM is).
fn clip(rng: &mut Rng, len: usize, sr: f64) -> Vec<f32> {
    let level = 10f64.powf(-4.0 * rng.f64());
    let tones: Vec<(f64, f64, f64)> = (0..1 + (rng.next_u64() % 4) as usize)
        .map(|_| (rng.f64() * sr / 2.0, rng.f64(), rng.f64() * 6.3))
        .collect();
    let (c0, c1) = (rng.f64() * sr / 2.0, rng.f64() * sr / 2.0);
    let noise = rng.f64() * 0.5;
    let dc = (rng.f64() - 0.5) * 0.1;
    let quantise = rng.next_u64().is_multiple_of(2);
    let silence_at = (rng.next_u64() as usize) % len.max(1);
    let dur = len as f64 / sr;
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        let t = i as f64 / sr;
        let mut v = dc;
        for &(f, a, ph) in &tones {
            v += a * (2.0 * std::f64::consts::PI * f * t + ph).sin();
        }
        let f = c0 + (c1 - c0) * t / (2.0 * dur.max(1e-9));
        v += 0.5 * (2.0 * std::f64::consts::PI * f * t).sin();
        v += noise * rng.normal();
        v *= level;
        // A silent stretch of 3000 samples, then a loud burst of 200.
        if i >= silence_at && i < silence_at + 3000 {
            v = 0.0;
        } else if i >= silence_at + 3000 && i < silence_at + 3200 {
            v *= 50.0;
        }
        let mut s = v.clamp(-1.0, 1.0 - 1.0 / 32768.0) as f32;
        if quantise {
            s = ((s * 32768.0).round() / 32768.0).clamp(-1.0, 32767.0 / 32768.0);
        }
        out.push(s);
    }
    out
}

/// A batch of `n` files; every `fail_every`-th file failed. Fixed mode pads/truncates to
/// `clip_samples`; natural mode keeps each file's own length.
fn make_batch(cfg: &Params, n: usize, seed: u64, fail_every: usize) -> AudioBatch {
    let g = Geometry::new(cfg);
    let mut rng = Rng(seed);
    let mut b = AudioBatch::default();
    for i in 0..n {
        let failed = fail_every > 0 && i % fail_every == fail_every - 1;
        let found = match cfg.length {
            LengthMode::Fixed => cfg.clip_samples,
            // Natural: from shorter than one long window to longer than a clip.
            LengthMode::Natural => (rng.next_u64() % (cfg.clip_samples as u64 + 2000)) as usize,
        };
        let len = if failed {
            0
        } else {
            g.effective_samples(found)
        };
        let offset = b.samples.len();
        if !failed {
            b.samples
                .extend_from_slice(&clip(&mut rng, len, cfg.sample_rate as f64));
        }
        b.files.push(BatchFile {
            offset,
            len,
            rows: g.rows(if failed { None } else { Some(found) }),
            failed,
        });
    }
    b
}

/// Writes a C-order .npy (version 1.0).
fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) -> std::io::Result<()> {
    let shape_s = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    f.write_all(data)?;
    f.flush()
}

fn bytes_of<T>(v: &[T]) -> &[u8] {
    // SAFETY: only used with f32, f64, i64 and f16 slices: plain old data without padding.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// Whole clips of `clip` samples, one segment each (the speech and music settings).
#[allow(clippy::too_many_arguments)]
fn whole(
    sample_rate: u32,
    clip: usize,
    n_fft: usize,
    win_length: usize,
    hop_length: usize,
    n_mels: usize,
    pool: Pool,
    top_db: Option<f64>,
    dtype: Dtype,
) -> Params {
    Params {
        sample_rate,
        n_fft,
        win_length,
        hop_length,
        n_mels,
        pool,
        top_db,
        dtype,
        ..Params::whole_clips(clip)
    }
}

/// Output buffer poisoned with a value no feature can take, so unwritten values show.
fn poisoned(cfg: &Params, n: usize) -> FeatureBuf {
    match cfg.dtype {
        Dtype::F16 => FeatureBuf::F16(vec![f16::from_f32(30000.0); n]),
        Dtype::F32 => FeatureBuf::F32(vec![1e30; n]),
    }
}

fn parity_case(
    out: &Path,
    name: &str,
    cfg: &Params,
    n_files: usize,
    seed: u64,
) -> Result<(), String> {
    cfg.validate().map_err(|e| e.to_string())?;
    let fb = MelFilterbank::new(cfg).weights;
    let factory = CudaBackendFactory::new(0, cfg).map_err(|e| e.to_string())?;
    let mut be = factory.create_backend().map_err(|e| e.to_string())?;
    let batch = make_batch(cfg, n_files, seed, 7);
    let rows = batch.rows();
    let mut feats = poisoned(cfg, rows * cfg.values_per_row());
    be.compute(&batch, &mut feats).map_err(|e| e.to_string())?;
    let res = factory.kernel_resources().map_err(|e| e.to_string())?;
    let plan = factory.plan();
    println!(
        "{name:<14} {:?} kernel, {} segs/block, {} threads, {} B smem, {} regs, {} B local, arch {}, {rows} rows, {:.3} ms kernel",
        plan.kind,
        plan.segs_per_block,
        plan.block_threads,
        plan.smem_bytes,
        res.registers,
        res.local_bytes,
        factory.arch(),
        be.last_timing().map(|t| t.kernel_ms).unwrap_or(f32::NAN)
    );
    let dir = out.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();
    write_npy(
        &dir.join("samples.npy"),
        "<f4",
        &[batch.samples.len()],
        batch.samples.as_bytes(),
    )
    .map_err(io)?;
    let files: Vec<i64> = batch
        .files
        .iter()
        .flat_map(|f| {
            [
                f.offset as i64,
                f.len as i64,
                f.rows as i64,
                i64::from(f.failed),
            ]
        })
        .collect();
    write_npy(
        &dir.join("files.npy"),
        "<i8",
        &[batch.files.len(), 4],
        bytes_of(&files),
    )
    .map_err(io)?;
    write_npy(
        &dir.join("fb.npy"),
        "<f8",
        &[cfg.n_freqs(), cfg.n_mels],
        bytes_of(&fb),
    )
    .map_err(io)?;
    write_npy(
        &dir.join("features.npy"),
        cfg.dtype.descr(),
        &[rows, cfg.n_mels, cfg.out_frames()],
        feats.as_bytes(),
    )
    .map_err(io)?;
    let settings = melpipe_core::Settings {
        params: cfg.clone(),
        ..Default::default()
    };
    std::fs::write(dir.join("config.toml"), settings.to_toml()).map_err(io)?;

    // The CPU backend on the same batch, for the CPU/GPU agreement clause.
    let mut cpu = CpuBackendFactory.create(cfg).map_err(|e| e.to_string())?;
    let mut cpu_feats = poisoned(cfg, rows * cfg.values_per_row());
    cpu.compute(&batch, &mut cpu_feats)
        .map_err(|e| e.to_string())?;
    write_npy(
        &dir.join("cpu.npy"),
        cfg.dtype.descr(),
        &[rows, cfg.n_mels, cfg.out_frames()],
        cpu_feats.as_bytes(),
    )
    .map_err(io)?;

    // Same input twice: identical bytes (resume must give byte-identical output).
    let mut again = poisoned(cfg, rows * cfg.values_per_row());
    be.compute(&batch, &mut again).map_err(|e| e.to_string())?;
    if again.as_bytes() != feats.as_bytes() {
        return Err(format!("{name}: two runs on the same batch differ"));
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A big batch of `n` seed clips, tiled from 256 distinct ones (generating is slow).
fn tiled_batch(cfg: &Params, base: &AudioBatch, n: usize) -> AudioBatch {
    let mut b = AudioBatch::default();
    let per = cfg.clip_samples;
    let src = base.samples.f32s().expect("an f32 batch");
    let _ = per;
    for i in 0..n {
        let f = base.files[i % base.files.len()];
        let offset = b.samples.len();
        b.samples
            .extend_from_slice(&src[f.offset..f.offset + f.len]);
        b.files.push(BatchFile { offset, ..f });
    }
    b
}

fn timing(cfg: &Params, sizes: &[usize], full: bool) -> Result<(), String> {
    let factory = CudaBackendFactory::new(0, cfg).map_err(|e| e.to_string())?;
    let base = make_batch(cfg, 256, 99, 0);
    println!(
        "\ntiming, pool {} dtype {}: median of 7 after 2 warm-ups",
        cfg.pool, cfg.dtype
    );
    println!(
        "{:>6} {:>9} {:>10} {:>10} {:>10} {:>11} {:>12}",
        "files", "rows", "kernel ms", "wall ms", "ns/row", "upload GB/s", "kernel GB/s"
    );
    let mut be: CudaBackend = factory.create_backend().map_err(|e| e.to_string())?;
    let mut per_file_kernel_ms = 0.0;
    for &n in sizes {
        let batch = tiled_batch(cfg, &base, n);
        let rows = batch.rows();
        let mut out = poisoned(cfg, rows * cfg.values_per_row());
        let (mut k, mut w) = (Vec::new(), Vec::new());
        for i in 0..9 {
            be.compute(&batch, &mut out).map_err(|e| e.to_string())?;
            let t = be.last_timing().ok_or("no timing")?;
            if i >= 2 {
                k.push(t.kernel_ms as f64);
                w.push(t.wall.as_secs_f64() * 1e3);
            }
        }
        let (k, w) = (median(&mut k), median(&mut w));
        let up = batch.samples.as_bytes().len() as f64;
        println!(
            "{n:>6} {rows:>9} {k:>10.3} {w:>10.2} {:>10.2} {:>11.2} {:>12.1}",
            k * 1e6 / rows as f64,
            up / (w * 1e-3) / 1e9,
            up / (k * 1e-3) / 1e9
        );
        per_file_kernel_ms = k / n as f64;
    }
    if !full {
        return Ok(());
    }
    // The whole seed dataset through the kernel: 10 batches of 4096 files (40,960 ≥ 39,563).
    let batch = tiled_batch(cfg, &base, 4096);
    let mut out = poisoned(cfg, batch.rows() * cfg.values_per_row());
    let mut total = 0.0;
    for _ in 0..10 {
        be.compute(&batch, &mut out).map_err(|e| e.to_string())?;
        total += be.last_timing().ok_or("no timing")?.kernel_ms as f64;
    }
    println!(
        "seed dataset kernel time: {:.1} ms for 40,960 files (10 × 4096); {:.1} ms scaled to 39,563 files",
        total,
        per_file_kernel_ms * 39_563.0
    );
    drop(be);

    // Backends on their own threads, as the pipeline's `streams` knob runs them.
    for (files, batches) in [(256usize, 32usize), (1024, 8)] {
        println!(
            "\nstreams: backends on their own threads, {batches} batches of {files} files each"
        );
        println!(
            "{:>7} {:>10} {:>10} {:>12}",
            "streams", "wall s", "files/s", "upload GB/s"
        );
        let batch = tiled_batch(cfg, &base, files);
        for streams in 1..=4usize {
            let mut backends: Vec<CudaBackend> = (0..streams)
                .map(|_| factory.create_backend())
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            // Warm-up (buffers grow on the first batch).
            for be in &mut backends {
                let mut out = poisoned(cfg, batch.rows() * cfg.values_per_row());
                be.compute(&batch, &mut out).map_err(|e| e.to_string())?;
            }
            let t0 = Instant::now();
            std::thread::scope(|s| {
                for be in backends.iter_mut() {
                    let batch = &batch;
                    s.spawn(move || {
                        let mut out = poisoned(cfg, batch.rows() * cfg.values_per_row());
                        for _ in 0..batches {
                            be.compute(batch, &mut out).expect("compute");
                        }
                    });
                }
            });
            let wall = t0.elapsed().as_secs_f64();
            let n = (streams * batches * files) as f64;
            println!(
                "{streams:>7} {wall:>10.3} {:>10.0} {:>12.2}",
                n / wall,
                n * (cfg.clip_samples * 4) as f64 / wall / 1e9
            );
        }
    }
    Ok(())
}

/// Host→device copy rates on one stream, for 1024 seed files (168 MB of f32): from ordinary
/// (pageable) memory through the driver's own staging, from page-locked memory already filled
/// (the PCIe ceiling: what readers decoding straight into pinned buffers would get), and through
/// the backend's path (memcpy into two pinned chunks overlapping their DMA).
fn transfer_bench(cfg: &Params) -> Result<(), String> {
    use cudarc::driver::CudaContext;
    let e = |e: cudarc::driver::DriverError| e.to_string();
    let ctx = CudaContext::new(0).map_err(e)?;
    let stream = ctx.new_stream().map_err(e)?;
    let base = make_batch(cfg, 64, 7, 0);
    let batch = tiled_batch(cfg, &base, 1024);
    let n = batch.samples.len();
    // SAFETY: the device buffer is only written by the copies below.
    let mut dev = unsafe { stream.alloc::<f32>(n) }.map_err(e)?;
    let bytes = (n * 4) as f64;
    let time = |f: &mut dyn FnMut() -> Result<(), String>| -> Result<f64, String> {
        let mut v = Vec::new();
        for _ in 0..6 {
            let t0 = Instant::now();
            f()?;
            stream.synchronize().map_err(e)?;
            v.push(t0.elapsed().as_secs_f64());
        }
        Ok(bytes / median(&mut v[1..]) / 1e9)
    };
    let samples = batch.samples.f32s().ok_or("an f32 batch")?;
    let pageable = time(&mut || stream.memcpy_htod(samples, &mut dev).map_err(e))?;
    // SAFETY: filled right below, before any copy reads it.
    let mut pinned = unsafe { ctx.alloc_pinned::<f32>(n) }.map_err(e)?;
    pinned.as_mut_slice().map_err(e)?.copy_from_slice(samples);
    let from_pinned = time(&mut || stream.memcpy_htod(&pinned, &mut dev).map_err(e))?;
    println!(
        "\nupload of 1024 files ({:.0} MB): pageable {pageable:.1} GB/s, pinned (already filled) {from_pinned:.1} GB/s",
        bytes / 1e6
    );
    Ok(())
}

/// PCM16 batches (raw values scaled on the GPU), uploaded from pageable memory and from memory
/// page-locked in place, give the same bytes as the f32 batch of the same values, on the GPU
/// and on the CPU backend.
fn pcm16_case(name: &str, cfg: &Params, n: usize, seed: u64) -> Result<(), String> {
    let base = make_batch(cfg, n, seed, 5);
    let src = base.samples.f32s().ok_or("an f32 batch")?;
    let raw: Vec<i16> = src
        .iter()
        .map(|&v| (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    let mut as_f32 = AudioBatch::default();
    let scaled: Vec<f32> = raw.iter().map(|&v| f32::from(v) / 32768.0).collect();
    as_f32.samples.extend_from_slice(&scaled);
    as_f32.files = base.files.clone();
    let mut as_i16 = AudioBatch::default();
    as_i16.clear(SampleKind::I16);
    as_i16.samples.extend_i16(raw.len()).copy_from_slice(&raw);
    as_i16.files = base.files.clone();
    let rows = base.rows();
    let factory = CudaBackendFactory::new(0, cfg).map_err(|e| e.to_string())?;
    let mut be = factory.create(cfg).map_err(|e| e.to_string())?;
    let run = |be: &mut Box<dyn Backend>, b: &AudioBatch| -> Result<Vec<u8>, String> {
        let mut out = poisoned(cfg, rows * cfg.values_per_row());
        be.compute(b, &mut out).map_err(|e| e.to_string())?;
        Ok(out.as_bytes().to_vec())
    };
    let want = run(&mut be, &as_f32)?;
    let pageable = run(&mut be, &as_i16)?;
    be.prepare(&mut as_i16);
    if !as_i16.samples.is_pinned() {
        return Err(format!("{name}: the batch was not page-locked"));
    }
    let pinned = run(&mut be, &as_i16)?;
    let cpu_factory = CpuBackendFactory;
    let mut cpu = cpu_factory.create(cfg).map_err(|e| e.to_string())?;
    let cpu_f32 = run(&mut cpu, &as_f32)?;
    let cpu_i16 = run(&mut cpu, &as_i16)?;
    let same = |a: &[u8], b: &[u8]| a == b;
    println!(
        "pcm16 {name:>12}: {rows} rows; GPU i16 pageable == f32: {}, i16 page-locked == f32: {}; CPU i16 == f32: {}",
        same(&pageable, &want),
        same(&pinned, &want),
        same(&cpu_i16, &cpu_f32)
    );
    if same(&pageable, &want) && same(&pinned, &want) && same(&cpu_i16, &cpu_f32) {
        Ok(())
    } else {
        Err(format!("{name}: PCM16 and f32 batches differ"))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1).map(PathBuf::from) else {
        eprintln!("usage: gpu_parity OUT_DIR [--no-time | --kernel-times]");
        std::process::exit(1);
    };
    let info = match probe(0) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("no GPU: {e}");
            std::process::exit(2);
        }
    };
    println!("{info}");
    match GpuMonitor::new(&info.uuid) {
        Some(m) => println!(
            "NVML: {}",
            m.sample().map(|s| s.to_string()).unwrap_or_default()
        ),
        None => println!("NVML: unavailable"),
    }
    let seed = Params::default();
    let cases: Vec<(&str, Params, usize)> = vec![
        ("seed_f16", seed.clone(), 16),
        (
            "seed_f32",
            Params {
                dtype: Dtype::F32,
                ..seed.clone()
            },
            16,
        ),
        (
            "none_f16",
            Params {
                pool: Pool::None,
                ..seed.clone()
            },
            12,
        ),
        (
            "slaney_norm",
            Params {
                mel_scale: MelScale::Slaney,
                norm: MelNorm::Slaney,
                dtype: Dtype::F32,
                ..seed.clone()
            },
            16,
        ),
        (
            "topdb_none",
            Params {
                pool: Pool::None,
                top_db: Some(40.0),
                dtype: Dtype::F32,
                ..seed.clone()
            },
            12,
        ),
        (
            "topdb_mean",
            Params {
                top_db: Some(30.0),
                ..seed.clone()
            },
            16,
        ),
        (
            "mels64_band",
            Params {
                n_mels: 64,
                f_min: 50.0,
                f_max: Some(1500.0),
                dtype: Dtype::F32,
                ..seed.clone()
            },
            16,
        ),
        (
            "win48_hop8",
            Params {
                win_length: 48,
                hop_length: 8,
                dtype: Dtype::F32,
                ..seed.clone()
            },
            16,
        ),
        (
            "fft32",
            Params {
                n_fft: 32,
                win_length: 32,
                n_mels: 16,
                dtype: Dtype::F32,
                ..seed.clone()
            },
            16,
        ),
        (
            "gen_fft128",
            Params {
                n_fft: 128,
                win_length: 128,
                hop_length: 32,
                n_mels: 40,
                dtype: Dtype::F32,
                ..seed.clone()
            },
            16,
        ),
        (
            "gen_fft100",
            Params {
                n_fft: 100,
                win_length: 90,
                hop_length: 20,
                pool: Pool::None,
                dtype: Dtype::F32,
                ..seed.clone()
            },
            12,
        ),
        (
            "gen_fft63",
            Params {
                n_fft: 63,
                win_length: 63,
                n_mels: 24,
                dtype: Dtype::F32,
                ..seed.clone()
            },
            12,
        ),
        (
            "heavy_fft256",
            Params {
                n_fft: 256,
                win_length: 256,
                hop_length: 2,
                n_mels: 64,
                ..seed.clone()
            },
            6,
        ),
        (
            "speech_whole",
            whole(
                16_000,
                160_000,
                512,
                400,
                160,
                80,
                Pool::None,
                None,
                Dtype::F16,
            ),
            6,
        ),
        (
            "whisper_400",
            whole(
                16_000,
                48_000,
                400,
                400,
                160,
                80,
                Pool::None,
                Some(80.0),
                Dtype::F32,
            ),
            6,
        ),
        (
            "music_2048",
            whole(
                44_100,
                132_300,
                2048,
                2048,
                512,
                128,
                Pool::None,
                None,
                Dtype::F32,
            ),
            4,
        ),
        (
            "topdb_none_f16",
            whole(
                16_000,
                32_000,
                512,
                512,
                128,
                64,
                Pool::None,
                Some(50.0),
                Dtype::F16,
            ),
            8,
        ),
        (
            "mean_topdb_400",
            whole(
                16_000,
                32_000,
                400,
                300,
                100,
                40,
                Pool::Mean,
                Some(20.0),
                Dtype::F32,
            ),
            8,
        ),
        (
            "direct_fft74",
            whole(16_000, 8_000, 74, 74, 37, 20, Pool::None, None, Dtype::F32),
            8,
        ),
        (
            "global_32768",
            whole(
                16_000,
                65_536,
                32_768,
                30_000,
                8_192,
                128,
                Pool::None,
                Some(60.0),
                Dtype::F32,
            ),
            3,
        ),
        (
            "natural_f32",
            Params {
                length: LengthMode::Natural,
                dtype: Dtype::F32,
                ..seed.clone()
            },
            24,
        ),
    ];
    if args.iter().any(|a| a == "--kernel-times") {
        // The tiled kernel's time alone on batches of 64 clips (16 for music), for comparing
        // shapes (MELPIPE_TILED_SMEM_KIB, MELPIPE_TILED_BLOCK) in one run.
        for (name, cfg, _) in &cases {
            let files = match *name {
                "heavy_fft256" | "speech_whole" | "whisper_400" | "mean_topdb_400" => 64,
                "music_2048" => 16,
                _ => continue,
            };
            let r = (|| -> Result<(f64, usize, usize), String> {
                let factory = CudaBackendFactory::new(0, cfg).map_err(|e| e.to_string())?;
                let mut be = factory.create_backend().map_err(|e| e.to_string())?;
                let batch = make_batch(cfg, files, 77, 0);
                let mut out = poisoned(cfg, batch.rows() * cfg.values_per_row());
                let mut k = Vec::new();
                for i in 0..7 {
                    be.compute(&batch, &mut out).map_err(|e| e.to_string())?;
                    if i >= 2 {
                        k.push(be.last_timing().ok_or("no timing")?.kernel_ms as f64);
                    }
                }
                Ok((
                    median(&mut k),
                    factory.plan().tile,
                    factory.plan().block_threads,
                ))
            })();
            match r {
                Ok((ms, tile, block)) => {
                    println!("kernel {name:<14} {files:>3} clips: {ms:.3} ms (tile {tile}, block {block})")
                }
                Err(e) => println!("kernel {name:<14} failed: {e}"),
            }
        }
        return;
    }
    let mut failed = false;
    for (i, (name, cfg, n)) in cases.iter().enumerate() {
        if matches!(
            *name,
            "seed_f16" | "gen_fft128" | "natural_f32" | "topdb_none"
        ) {
            if let Err(e) = pcm16_case(name, cfg, *n, 2000 + i as u64) {
                eprintln!("{e}: FAILED");
                failed = true;
            }
        }
    }
    for (i, (name, cfg, n)) in cases.iter().enumerate() {
        if let Err(e) = parity_case(&out, name, cfg, *n, 1000 + i as u64) {
            eprintln!("{name}: FAILED: {e}");
            failed = true;
        }
    }
    // A malformed batch is an error, not a crash.
    {
        if let Ok(factory) = CudaBackendFactory::new(0, &seed) {
            if let Ok(mut be) = factory.create_backend() {
                let mut b = make_batch(&seed, 2, 5, 0);
                b.files[1].rows = 500;
                let mut out = poisoned(&seed, b.rows() * seed.values_per_row());
                match be.compute(&b, &mut out) {
                    Err(e) => println!("malformed batch rejected: {e}"),
                    Ok(()) => {
                        eprintln!("malformed batch accepted");
                        failed = true;
                    }
                }
            }
        }
    }
    // cuda:all over however many GPUs there are: same bytes as one device's backend.
    match MultiGpuFactory::all(&seed) {
        Ok(multi) => {
            let batch = make_batch(&seed, 8, 3, 5);
            let n = batch.rows() * seed.values_per_row();
            let mut outs = Vec::new();
            for _ in 0..multi.devices().len() + 1 {
                let mut out = poisoned(&seed, n);
                let r = multi
                    .create(&seed)
                    .and_then(|mut b| b.compute(&batch, &mut out));
                if let Err(e) = r {
                    eprintln!("cuda:all backend failed: {e}");
                    failed = true;
                }
                outs.push(out);
            }
            let same = outs.windows(2).all(|w| w[0].as_bytes() == w[1].as_bytes());
            println!(
                "cuda:all over {} GPU(s): {}",
                multi.devices().len(),
                multi.name()
            );
            if !same {
                eprintln!("cuda:all backends disagree");
                failed = true;
            }
        }
        Err(e) => {
            eprintln!("cuda:all: {e}");
            failed = true;
        }
    }
    if !args.iter().any(|a| a == "--no-time") {
        if let Err(e) = transfer_bench(&seed) {
            eprintln!("transfer bench failed: {e}");
            failed = true;
        }
        let runs = [
            (seed.clone(), &[64usize, 256, 1024, 4096][..], true),
            (
                Params {
                    pool: Pool::None,
                    ..seed.clone()
                },
                &[64usize, 256, 1024][..],
                false,
            ),
        ];
        for (cfg, sizes, full) in runs {
            if let Err(e) = timing(&cfg, sizes, full) {
                eprintln!("timing failed: {e}");
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
