//! Writes the seed corpus of the WAV fuzz target (fuzz/corpus/wav/): small valid files of
//! every encoding and layout, and broken ones of every kind the generator makes.
//!
//! `cargo run -p melpipe-core --example fuzz_corpus -- fuzz/corpus/wav`

use melpipe_core::wav::{ByteOrder, Chunk, Samples, WavBuilder};
use melpipe_gen::{generate, GenerateOptions};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: fuzz_corpus OUT_DIR")?,
    );
    std::fs::create_dir_all(&dir)?;
    let tmp = tempfile::tempdir()?;
    // One clip of each signal kind is not needed: two clips and every odd kind, 96 samples.
    let opts = GenerateOptions {
        files: 2,
        corrupt: 17,
        samples: 96,
        ..GenerateOptions::default()
    };
    let report = generate(tmp.path(), &opts)?;
    for f in &report.files {
        let name = f.path.file_name().ok_or("no name")?.to_string_lossy();
        let name = format!("gen_{}", name.to_lowercase());
        std::fs::copy(tmp.path().join(&f.path), dir.join(name))?;
    }
    let i16s: Vec<i16> = (0..24).map(|i| (i * 2731 - 30000) as i16).collect();
    let u8s: Vec<u8> = (0..24).map(|i| (i * 11) as u8).collect();
    let i32s: Vec<i32> = (0..24).map(|i| (i - 12) << 26).collect();
    let f64s: Vec<f64> = (0..24).map(|i| (i as f64 - 12.0) / 16.0).collect();
    let i64s: Vec<i64> = (0..24).map(|i| (i - 12) << 59).collect();
    let codes: Vec<u8> = (0..24).map(|i| (i * 11) as u8).collect();
    let i24s: Vec<i32> = (0..24).map(|i| (i - 12) << 19).collect();
    let f32s: Vec<f32> = f64s.iter().map(|&x| x as f32).collect();
    let list = Chunk::other(b"LIST", b"INFOISFT\x05\x00\x00\x00melp\x00".to_vec());
    let mut ds64 = Vec::new();
    for v in [0u64, 48, 24] {
        ds64.extend_from_slice(&v.to_le_bytes());
    }
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "u8_mono",
            WavBuilder::new(1, 4096, Samples::U8(&u8s)).build(),
        ),
        (
            "i16_stereo_list_after",
            WavBuilder::new(2, 4096, Samples::I16(&i16s))
                .chunk(list.clone())
                .build(),
        ),
        (
            "i32_extensible",
            WavBuilder::new(1, 4096, Samples::I32(&i32s))
                .extensible(true)
                .build(),
        ),
        (
            "f64_three_channels",
            WavBuilder::new(3, 4096, Samples::F64(&f64s)).build(),
        ),
        (
            "odd_chunk_without_pad",
            WavBuilder::new(1, 4096, Samples::I16(&i16s))
                .layout(vec![
                    Chunk::Fmt,
                    Chunk::Raw(b"JUNK\x03\x00\x00\x00abc".to_vec()),
                    Chunk::Data,
                ])
                .build(),
        ),
        (
            "rf64_ds64",
            WavBuilder::new(1, 4096, Samples::I16(&i16s))
                .riff_id(b"RF64")
                .layout(vec![Chunk::other(b"ds64", ds64), Chunk::Fmt, Chunk::Data])
                .declared_data_size(u32::MAX)
                .riff_size(u32::MAX)
                .build(),
        ),
        (
            "data_size_past_end",
            WavBuilder::new(1, 4096, Samples::I16(&i16s))
                .declared_data_size(4000)
                .build(),
        ),
        (
            "block_align_wrong",
            WavBuilder::new(2, 4096, Samples::I16(&i16s))
                .block_align(3)
                .build(),
        ),
        (
            "bits_12",
            WavBuilder::new(1, 4096, Samples::I16(&i16s))
                .bits_per_sample(12)
                .build(),
        ),
        (
            "zero_channels",
            WavBuilder::new(1, 4096, Samples::I16(&i16s))
                .channels(0)
                .build(),
        ),
        (
            "rifx",
            WavBuilder::new(1, 4096, Samples::I16(&i16s))
                .byte_order(ByteOrder::Big)
                .build(),
        ),
        (
            "rifx_i24_stereo_extensible",
            WavBuilder::new(2, 4096, Samples::I24(&i24s))
                .byte_order(ByteOrder::Big)
                .extensible(true)
                .build(),
        ),
        (
            "rifx_f32_fact",
            WavBuilder::new(1, 4096, Samples::F32(&f32s))
                .byte_order(ByteOrder::Big)
                .chunk(Chunk::other(b"fact", 24u32.to_be_bytes()))
                .build(),
        ),
        (
            "riff_id_rifx_with_little_endian_fields",
            WavBuilder::new(1, 4096, Samples::I16(&i16s))
                .riff_id(b"RIFX")
                .build(),
        ),
        (
            "ulaw_stereo",
            WavBuilder::new(2, 4096, Samples::MuLaw(&codes)).build(),
        ),
        (
            "alaw_extensible",
            WavBuilder::new(1, 4096, Samples::ALaw(&codes))
                .extensible(true)
                .build(),
        ),
        (
            "rifx_ulaw",
            WavBuilder::new(1, 4096, Samples::MuLaw(&codes))
                .byte_order(ByteOrder::Big)
                .build(),
        ),
        (
            "i64_stereo",
            WavBuilder::new(2, 4096, Samples::I64(&i64s)).build(),
        ),
        (
            "valid_bits_20_in_24",
            WavBuilder::new(1, 4096, Samples::I24(&i24s))
                .extensible(true)
                .valid_bits(20)
                .build(),
        ),
        (
            "valid_bits_exceed_container",
            WavBuilder::new(1, 4096, Samples::I16(&i16s))
                .extensible(true)
                .valid_bits(20)
                .build(),
        ),
        (
            "mulaw_16_bits",
            WavBuilder::new(1, 4096, Samples::MuLaw(&codes))
                .bits_per_sample(16)
                .build(),
        ),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(format!("{name}.wav")), bytes)?;
    }
    println!("wrote the seed corpus to {}", dir.display());
    Ok(())
}
