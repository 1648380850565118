//! Times the GPU path's readers alone: every WAV file under DIR read into PCM16 batches by
//! THREADS threads, tasks of FILES files, as `melpipe run --device cuda` reads them (without
//! page-locking the batches). Page cache warm after the first round.
//!
//! ```text
//! cargo run --release -p melpipe-core --example read_rate -- DIR [THREADS] [FILES] [ROUNDS] [f32|whole|f32-whole]
//! read_rate DIR 16 128 5 whole                # the whole-file way, for comparison
//! read_rate DIR 16 16 5 f32                  # f32 batches, as the CPU path reads them
//! ```

use melpipe_core::backend::AudioBatch;
use melpipe_core::discover::discover;
use melpipe_core::read::Reader;
use melpipe_core::Params;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .ok_or("usage: read_rate DIR [THREADS] [FILES] [ROUNDS] [f32|whole|f32-whole]")?,
    );
    let threads: usize = args.next().map_or(Ok(16), |s| s.parse())?;
    let per_task: usize = args.next().map_or(Ok(128), |s| s.parse())?;
    let rounds: usize = args.next().map_or(Ok(5), |s| s.parse())?;
    let way = args.next().unwrap_or_default();
    let (f32_batches, whole_file) = (way.contains("f32"), way.contains("whole"));
    let files = discover(&[dir], threads, &Default::default())?;
    let tasks: Vec<_> = files.chunks(per_task).collect();
    let cfg = Params::default();
    for round in 0..rounds {
        let next = AtomicUsize::new(0);
        let bytes = AtomicUsize::new(0);
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut reader = if f32_batches {
                        Reader::new(&cfg)
                    } else {
                        Reader::with_pcm16(&cfg)
                    };
                    if whole_file {
                        reader = reader.whole_file();
                    }
                    let mut batch = AudioBatch::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(task) = tasks.get(i) else { break };
                        let out = reader.read_task(task, &mut batch);
                        let b: u64 = out.iter().map(|o| o.bytes).sum();
                        bytes.fetch_add(b as usize, Ordering::Relaxed);
                    }
                });
            }
        });
        let secs = t.elapsed().as_secs_f64();
        let gb = bytes.load(Ordering::Relaxed) as f64 / 1e9;
        println!(
            "round {round}: {} files, {gb:.2} GB in {secs:.3} s ({:.2} GB/s, {threads} threads, {per_task} files/task)",
            files.len(),
            gb / secs
        );
    }
    Ok(())
}
