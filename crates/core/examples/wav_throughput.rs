//! Times `generate` and the WAV decoder on a seed-shaped dataset.
//!
//! ```text
//! cargo run --release -p melpipe-core --example wav_throughput -- DIR [FILES]
//! ```
//! Writes FILES clips (default 39,563, the seed's 3.24 GB) into DIR, then reads every file
//! back (page cache warm) and times `wav::parse` + `wav::decode` alone, on one thread.
//! DIR is left in place: delete it yourself.

use melpipe_core::config::Channel;
use melpipe_core::wav;
use melpipe_gen::{generate, GenerateOptions};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: wav_throughput DIR [FILES]")?);
    let files: usize = args.next().map_or(Ok(39_563), |s| s.parse())?;
    let opts = GenerateOptions {
        files,
        ..GenerateOptions::default()
    };

    let t = Instant::now();
    let report = generate(&dir, &opts)?;
    let gen = t.elapsed();
    println!(
        "generate: {} files, {:.2} GB in {:.2} s ({:.2} GB/s, {} threads)",
        report.files.len(),
        report.bytes as f64 / 1e9,
        gen.as_secs_f64(),
        report.bytes as f64 / 1e9 / gen.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );

    let mut buf = Vec::new();
    let mut out = vec![0.0f32; opts.samples];
    let (mut decode, mut samples, mut checksum) = (Duration::ZERO, 0usize, 0.0f64);
    let t = Instant::now();
    for f in &report.files {
        buf.clear();
        let path = dir.join(&f.path);
        buf = std::fs::read(&path)?;
        let t = Instant::now();
        let info = wav::parse(&buf)?;
        let n = wav::decode(&info, &buf, Channel::Mix, &mut out)?;
        decode += t.elapsed();
        samples += n;
        checksum += f64::from(out[n / 2]);
    }
    let all = t.elapsed();
    println!(
        "parse+decode: {samples} samples in {:.3} s on one thread ({:.2} G samples/s); \
         with reading: {:.2} s (checksum {checksum:.3})",
        decode.as_secs_f64(),
        samples as f64 / 1e9 / decode.as_secs_f64(),
        all.as_secs_f64(),
    );
    Ok(())
}
