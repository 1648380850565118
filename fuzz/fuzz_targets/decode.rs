//! libFuzzer target: `decode::decode` (FLAC, MP3, Ogg Vorbis and AIFF through symphonia) on
//! arbitrary bytes, with each extension as the hint. Checks what crates/core/tests/decode_fuzz.rs
//! checks, guided by coverage: a result for every input (a panic inside the decoder is caught
//! and the file fails), kept samples `min(frames, max_frames)`, all finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use melpipe_core::config::Channel;
use melpipe_core::decode;

fuzz_target!(|bytes: &[u8]| {
    for ext in [None, Some("mp3"), Some("flac"), Some("ogg")] {
        let mut out = Vec::new();
        match decode::decode(bytes, ext, Channel::Mix, 4096, &mut out) {
            Ok(d) => {
                assert_eq!(out.len(), d.frames.min(4096));
                assert!(out.iter().all(|x| x.is_finite()));
            }
            Err(_) => assert!(out.is_empty()),
        }
    }
});
