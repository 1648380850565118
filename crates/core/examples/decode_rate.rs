//! Times the decoders alone on one thread: every audio file under DIR (any extension melpipe
//! reads) read into memory once, then decoded ROUNDS times with `decode::decode` (mono mix,
//! every frame kept), as a reader thread decodes a file that is not WAV. Prints frames per
//! second and the input bytes per second; `bench/flac_rate.sh` compares it with `flac -d`.
//!
//! ```text
//! cargo run --release -p melpipe-core --example decode_rate -- DIR [ROUNDS]
//! ```

use melpipe_core::config::Channel;
use melpipe_core::decode;
use melpipe_core::discover::discover;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: decode_rate DIR [ROUNDS]")?);
    let rounds: usize = args.next().map_or(Ok(3), |s| s.parse())?;
    let files = discover(&[dir], 4, &Default::default())?;
    let inputs: Vec<(Vec<u8>, Option<String>)> = files
        .iter()
        .map(|f| {
            let ext = f
                .path
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase());
            std::fs::read(&f.path).map(|b| (b, ext))
        })
        .collect::<Result<_, _>>()?;
    let bytes: usize = inputs.iter().map(|(b, _)| b.len()).sum();
    let mut out = Vec::new();
    for round in 0..rounds {
        let t = Instant::now();
        let mut frames = 0usize;
        for (b, ext) in &inputs {
            out.clear();
            let d = decode::decode(b, ext.as_deref(), Channel::Mix, usize::MAX, &mut out)?;
            frames += d.frames;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "round {round}: {} files, {frames} frames in {secs:.3} s: {:.1} M frames/s, {:.1} MB/s of input (1 thread)",
            inputs.len(),
            frames as f64 / secs / 1e6,
            bytes as f64 / secs / 1e6
        );
    }
    Ok(())
}
