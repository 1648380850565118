//! Writes the stress datasets of docs/RELIABILITY.md (driven by scripts/stress.sh).
//!
//! ```text
//! stress_data tiny DIR FILES SAMPLES   FILES clips of SAMPLES samples (generator's signals)
//! stress_data long DIR FILES SAMPLES   the same, for long files (one hour at 4096 Hz: 14745600)
//! stress_data deep DIR DEPTH           a chain of DEPTH nested folders, a clip in each
//! stress_data names DIR                clips whose names are not UTF-8 (two of them look alike
//!                                      once made lossy), plus UTF-8 and odd-but-valid names
//! ```

use melpipe_core::wav::encode_pcm16;
use melpipe_gen::{generate, GenerateOptions};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn clip(seed: i32) -> Vec<u8> {
    let samples: Vec<i16> = (0..4096)
        .map(|i| ((i * (seed + 3)) % 4000 - 2000) as i16)
        .collect();
    encode_pcm16(1, 4096, &samples)
}

fn many(dir: &Path, files: usize, samples: usize) -> Res<()> {
    let opts = GenerateOptions {
        files,
        samples,
        ..GenerateOptions::default()
    };
    let r = generate(dir, &opts)?;
    println!("{} files, {} bytes", r.files.len(), r.bytes);
    Ok(())
}

fn deep(dir: &Path, depth: usize) -> Res<()> {
    let mut d = dir.to_path_buf();
    for level in 0..depth {
        d.push(format!("level_{level:02}"));
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(format!("clip_{level:02}.wav")), clip(level as i32))?;
    }
    println!("{depth} levels, deepest file {}", d.display());
    Ok(())
}

fn names(dir: &Path) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let names: [&[u8]; 7] = [
        b"plain.wav",
        b"latin1_caf\xe9.wav",
        b"bad_\xff.wav",
        b"bad_\xfe.wav", // the same as the one above once lossy: both "bad_\u{FFFD}.wav"
        b"sub_\xff\xfe/inner.wav",
        "utf8_è_日本.wav".as_bytes(),
        b"spaces and\nnewline.wav",
    ];
    for (i, n) in names.iter().enumerate() {
        let p: PathBuf = dir.join(OsStr::from_bytes(n));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, clip(i as i32))?;
    }
    println!("{} files with odd names", names.len());
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> Res<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| "usage: see the comment at the top of stress_data.rs".into())
    };
    let dir = PathBuf::from(arg(2)?);
    match arg(1)? {
        "tiny" | "long" => many(&dir, arg(3)?.parse()?, arg(4)?.parse()?),
        "deep" => deep(&dir, arg(3)?.parse()?),
        "names" => names(&dir),
        other => Err(format!("unknown dataset {other}").into()),
    }
}
