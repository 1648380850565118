//! libFuzzer target: `wav::parse` then `wav::decode` on arbitrary bytes. Checks what the
//! property test in crates/core/tests/wav_fuzz.rs checks, guided by coverage: no panic, sizes
//! that fit the bytes, a decoder that writes exactly `min(frames, out.len())` values, and raw
//! 16-bit copies for little-endian 16-bit PCM only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use melpipe_core::config::Channel;
use melpipe_core::wav;

const OUT: usize = 512;
const SENTINEL: u32 = 0x7fc0_1234;

fuzz_target!(|bytes: &[u8]| {
    let Ok(info) = wav::parse(bytes) else {
        return;
    };
    assert!(info.channels > 0 && info.sample_rate > 0);
    assert!(info.frames * info.block_align() <= info.data_len);
    assert!(info.data_offset + info.data_len <= bytes.len());
    let mut buf = [f32::from_bits(SENTINEL); OUT + 8];
    for channel in [
        Channel::Mix,
        Channel::Index(0),
        Channel::Index(info.channels - 1),
    ] {
        for len in [0, info.frames.saturating_sub(1).min(OUT), OUT] {
            buf.fill(f32::from_bits(SENTINEL));
            let n = wav::decode(&info, bytes, channel, &mut buf[..len]).expect("valid channel");
            assert_eq!(n, info.frames.min(len));
            assert!(buf[n..].iter().all(|x| x.to_bits() == SENTINEL));
        }
    }
    assert!(wav::decode(&info, bytes, Channel::Index(info.channels), &mut buf).is_err());
    // Only little-endian 16-bit PCM may be copied as raw i16 values.
    let mut raw = [0i16; OUT];
    let as_i16 = wav::decode_i16(&info, bytes, Channel::Index(0), &mut raw);
    let raw_pcm16 =
        info.format == wav::SampleFormat::I16 && info.byte_order == wav::ByteOrder::Little;
    assert_eq!(as_i16.is_some(), raw_pcm16);
});
