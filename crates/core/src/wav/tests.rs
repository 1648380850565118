use super::*;
use proptest::prelude::*;

/// Parses and decodes every frame of `bytes` with `channel`.
fn load(bytes: &[u8], channel: Channel) -> Result<(WavInfo, Vec<f32>), WavError> {
    let info = parse(bytes)?;
    let mut out = vec![f32::NAN; info.frames];
    let n = decode(&info, bytes, channel, &mut out)?;
    assert_eq!(n, info.frames);
    Ok((info, out))
}

fn load_mono(bytes: &[u8]) -> Vec<f32> {
    match load(bytes, Channel::Mix) {
        Ok((_, samples)) => samples,
        Err(e) => panic!("expected a valid file, got: {e}"),
    }
}

fn pcm16(samples: &[i16]) -> WavBuilder {
    WavBuilder::new(1, 4096, Samples::I16(samples))
}

const I16_VALUES: [i16; 6] = [-32768, -1, 0, 1, 16384, 32767];
const I16_EXPECTED: [f32; 6] = [
    -1.0,
    -1.0 / 32768.0,
    0.0,
    1.0 / 32768.0,
    0.5,
    32767.0 / 32768.0,
];

// ---- one test per encoding: exact values, plain and extensible headers ----

fn check_encoding(samples: Samples<'_>, expected: &[f32]) {
    for (extensible, order) in [
        (false, ByteOrder::Little),
        (true, ByteOrder::Little),
        (false, ByteOrder::Big),
        (true, ByteOrder::Big),
    ] {
        let bytes = WavBuilder::new(1, 4096, samples)
            .extensible(extensible)
            .byte_order(order)
            .build();
        let (info, got) = load(&bytes, Channel::Mix).expect("valid file");
        assert_eq!(info.format, samples.format());
        assert_eq!(info.byte_order, order);
        assert_eq!(info.channels, 1);
        assert_eq!(info.sample_rate, 4096);
        assert_eq!(info.frames, expected.len());
        // Bitwise: -0.0 vs 0.0 and exact rounding both matter.
        let got_bits: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
        let want_bits: Vec<u32> = expected.iter().map(|x| x.to_bits()).collect();
        assert_eq!(
            got_bits, want_bits,
            "{samples:?} extensible={extensible} {order:?}"
        );
    }
}

#[test]
fn decodes_u8_as_offset_binary() {
    check_encoding(
        Samples::U8(&[0, 1, 127, 128, 129, 255]),
        &[
            -1.0,
            -127.0 / 128.0,
            -1.0 / 128.0,
            0.0,
            1.0 / 128.0,
            127.0 / 128.0,
        ],
    );
}

#[test]
fn decodes_i16_over_32768() {
    check_encoding(Samples::I16(&I16_VALUES), &I16_EXPECTED);
}

#[test]
fn decodes_i24_over_2_pow_23() {
    check_encoding(
        Samples::I24(&[-8_388_608, -1, 0, 1, 4_194_304, 8_388_607]),
        &[
            -1.0,
            -1.0 / 8_388_608.0,
            0.0,
            1.0 / 8_388_608.0,
            0.5,
            8_388_607.0 / 8_388_608.0,
        ],
    );
}

#[test]
fn decodes_i32_over_2_pow_31() {
    // i32::MAX rounds to 2^31 in f32 first, as torch's int32 → float32 does.
    check_encoding(
        Samples::I32(&[i32::MIN, -1, 0, 1, 1 << 30, i32::MAX, 16_777_217]),
        &[
            -1.0,
            -1.0 / 2_147_483_648.0,
            0.0,
            1.0 / 2_147_483_648.0,
            0.5,
            1.0,
            16_777_216.0 / 2_147_483_648.0,
        ],
    );
}

#[test]
fn decodes_f32_as_is() {
    let values = [-1.5f32, -0.25, 0.0, -0.0, 1e-30, 0.75, f32::MAX];
    check_encoding(Samples::F32(&values), &values);
}

#[test]
fn decodes_f64_cast_to_f32() {
    let values = [0.1f64, -0.3, 0.0, 1.0 + 1e-12, 1e300, -1e-300];
    let expected: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    assert_eq!(expected[4], f32::INFINITY);
    check_encoding(Samples::F64(&values), &expected);
}

#[test]
fn extensible_24_in_32_bit_container_reads_as_i32() {
    // 24 valid bits in a 32-bit container: the low byte is zero, value / 2^31.
    let bytes = WavBuilder::new(1, 4096, Samples::I32(&[0x4000_0000, -256]))
        .extensible(true)
        .build();
    assert_eq!(load_mono(&bytes), vec![0.5, -256.0 / 2_147_483_648.0]);
}

#[test]
fn decodes_i64_over_2_pow_63_rounded_once() {
    let values = [i64::MIN, -1, 0, 1, 1 << 62, i64::MAX, (1 << 40) + 1];
    // i64::MAX rounds up to 2^63, and 2^40 + 1 to 2^40 (24 bits of mantissa).
    let expected = [
        -1.0,
        -1.0 / 9_223_372_036_854_775_808.0,
        0.0,
        1.0 / 9_223_372_036_854_775_808.0,
        0.5,
        1.0,
        1.0 / 8_388_608.0,
    ];
    check_encoding(Samples::I64(&values), &expected);
}

#[test]
fn decodes_mulaw_and_alaw_through_libsndfile_tables() {
    // libsndfile's ulaw_decode / alaw_decode at a few codes (its tables are G.711's).
    let ulaw = [
        (0x00u8, -32124i16),
        (0x7F, 0),
        (0x80, 32124),
        (0xFF, 0),
        (0x0F, -16764),
    ];
    let alaw = [
        (0x00u8, -5504i16),
        (0x55, -8),
        (0xD5, 8),
        (0xFF, 848),
        (0x2A, -32256),
    ];
    for (table, pairs, law) in [(&ULAW_TO_I16, ulaw, true), (&ALAW_TO_I16, alaw, false)] {
        let codes: Vec<u8> = pairs.iter().map(|p| p.0).collect();
        for (code, value) in pairs {
            assert_eq!(table[usize::from(code)], value, "code {code:#04X}");
        }
        let expected: Vec<f32> = pairs.iter().map(|p| f32::from(p.1) / 32768.0).collect();
        let samples = if law {
            Samples::MuLaw(&codes)
        } else {
            Samples::ALaw(&codes)
        };
        check_encoding(samples, &expected);
    }
    // Both tables are odd-symmetric around the sign bit and never reach -32768.
    for code in 0..128 {
        assert_eq!(ULAW_TO_I16[code], -ULAW_TO_I16[code + 128]);
        assert_eq!(ALAW_TO_I16[code], -ALAW_TO_I16[code + 128]);
    }
}

#[test]
fn fewer_valid_bits_read_as_their_container() {
    // libsndfile ignores wValidBitsPerSample and reads ⌈bits / 8⌉ bytes: so does melpipe.
    let i16s = I16_VALUES;
    let i24s = [-8_388_608, -16, 0, 16, 4_194_304, 8_388_592];
    let i32s = [i32::MIN, -256, 0, 256, 1 << 30, i32::MAX - 255];
    let cases: [(Samples<'_>, u16); 6] = [
        (Samples::I16(&i16s), 12),
        (Samples::I16(&i16s), 0),
        (Samples::I24(&i24s), 20),
        (Samples::I32(&i32s), 24),
        (Samples::U8(&[0, 128, 255]), 4),
        (Samples::F32(&[0.5, -0.25]), 24),
    ];
    for (samples, valid) in cases {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let full = WavBuilder::new(2, 4096, samples).byte_order(order);
            let fewer = full.clone().extensible(true).valid_bits(valid);
            for channel in [Channel::Mix, Channel::Index(1)] {
                let (info, want) = load(&full.build(), channel).expect("valid");
                let (got_info, got) = load(&fewer.build(), channel).expect("valid");
                assert_eq!(got_info.format, info.format);
                assert_eq!(got, want, "{samples:?} {valid} valid bits {order:?}");
            }
        }
    }
    // Plain headers stating 12 or 20 bits with a 16 or 24-bit block align.
    for (samples, bits) in [(Samples::I16(&i16s), 12), (Samples::I24(&i24s), 20)] {
        let full = WavBuilder::new(1, 4096, samples);
        let (_, want) = load(&full.build(), Channel::Mix).expect("valid");
        let (info, got) = load(&full.bits_per_sample(bits).build(), Channel::Mix).expect("valid");
        assert_eq!(info.format, samples.format());
        assert_eq!(got, want);
    }
}

#[test]
fn rifx_is_big_endian_throughout_and_never_raw_pcm16() {
    let bytes = pcm16(&I16_VALUES).byte_order(ByteOrder::Big).build();
    assert_eq!(&bytes[..4], b"RIFX");
    assert_eq!(
        u32_at(&bytes, 4, ByteOrder::Big),
        Some(bytes.len() as u32 - 8)
    );
    // fmt size 16, tag 1, 1 channel, 4096 Hz, then data of 12 bytes, samples high byte first.
    assert_eq!(&bytes[12..24], b"fmt \0\0\0\x10\0\x01\0\x01");
    assert_eq!(&bytes[24..28], &4096u32.to_be_bytes());
    assert_eq!(&bytes[36..44], b"data\0\0\0\x0c");
    assert_eq!(&bytes[44..48], &[0x80, 0x00, 0xFF, 0xFF]);
    let info = parse(&bytes).expect("valid");
    assert_eq!(
        (info.format, info.byte_order),
        (SampleFormat::I16, ByteOrder::Big)
    );
    let mut raw = [0i16; 6];
    assert!(decode_i16(&info, &bytes, Channel::Mix, &mut raw).is_none());
    assert!(decode_i16(&info, &bytes, Channel::Index(0), &mut raw).is_none());
    let little = parse(&pcm16(&I16_VALUES).build()).expect("valid");
    assert_eq!(little.byte_order, ByteOrder::Little);
    // The extensible GUID's first three fields are big-endian too; a RIFX file with a
    // little-endian GUID names a sub-format that is not PCM.
    let ext = pcm16(&I16_VALUES)
        .byte_order(ByteOrder::Big)
        .extensible(true)
        .build();
    assert_eq!(&ext[44..52], &[0, 0, 0, 1, 0, 0, 0, 0x10]);
    assert_eq!(load_mono(&ext), I16_EXPECTED);
    let mut swapped = ext.clone();
    swapped[44..60].copy_from_slice(&[
        1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71,
    ]);
    assert_eq!(
        unsupported(&swapped),
        "extensible sub-format 01000000-0000-1000-8000-00AA00389B71"
    );
}

#[test]
fn i64_mix_sums_exactly_before_the_mean() {
    // An f64 sum would lose the 1s next to 2^62; the exact sum keeps them until the mean.
    let samples = [1i64 << 62, 1, 1 << 62, 1, -(1 << 62), -(1 << 62)];
    let bytes = WavBuilder::new(2, 4096, Samples::I64(&samples)).build();
    let (_, got) = load(&bytes, Channel::Mix).expect("valid");
    let exact = |sum: i128| (sum as f64 / 2.0 / 9_223_372_036_854_775_808.0) as f32;
    assert_eq!(
        got,
        vec![
            exact((1 << 62) + 1),
            exact((1 << 62) + 1),
            exact(-(1 << 63))
        ]
    );
    let (_, right) = load(&bytes, Channel::Index(1)).expect("valid");
    assert_eq!(
        right,
        vec![
            1.0 / 9_223_372_036_854_775_808.0,
            1.0 / 9_223_372_036_854_775_808.0,
            -0.5
        ]
    );
}

#[test]
fn encode_pcm16_writes_the_classic_44_byte_layout() {
    let bytes = encode_pcm16(1, 4096, &I16_VALUES);
    assert_eq!(bytes.len(), 44 + 12);
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(
        u32_at(&bytes, 4, ByteOrder::Little),
        Some(bytes.len() as u32 - 8)
    );
    assert_eq!(bytes, pcm16(&I16_VALUES).build());
    let info = parse(&bytes).expect("valid");
    assert_eq!((info.data_offset, info.data_len, info.frames), (44, 12, 6));
    assert_eq!(load_mono(&bytes), I16_EXPECTED);
}

// ---- chunk layouts ----

fn check_layout(bytes: &[u8]) -> WavInfo {
    let (info, got) = load(bytes, Channel::Mix).expect("valid file");
    assert_eq!(got, I16_EXPECTED);
    assert_eq!(&bytes[info.data_offset..info.data_offset + 2], &[0, 0x80]);
    info
}

fn list_chunk() -> Chunk {
    Chunk::other(b"LIST", b"INFOISFT\x0e\0\0\0Lavf58.76.100\0".to_vec())
}

#[test]
fn reads_list_chunk_before_fmt() {
    let info = check_layout(
        &pcm16(&I16_VALUES)
            .layout(vec![list_chunk(), Chunk::Fmt, Chunk::Data])
            .build(),
    );
    assert!(info.data_offset > 44, "not at the classic offset");
}

#[test]
fn reads_fact_and_bext_between_fmt_and_data() {
    check_layout(
        &pcm16(&I16_VALUES)
            .layout(vec![
                Chunk::Fmt,
                Chunk::other(b"fact", 6u32.to_le_bytes()),
                Chunk::other(b"bext", vec![b' '; 602]),
                Chunk::Data,
            ])
            .build(),
    );
}

#[test]
fn reads_chunks_after_data() {
    check_layout(
        &pcm16(&I16_VALUES)
            .layout(vec![
                Chunk::Fmt,
                Chunk::Data,
                list_chunk(),
                Chunk::other(b"JUNK", [0; 28]),
            ])
            .build(),
    );
}

#[test]
fn reads_data_before_fmt() {
    let info = check_layout(
        &pcm16(&I16_VALUES)
            .layout(vec![Chunk::other(b"JUNK", [0; 4]), Chunk::Data, Chunk::Fmt])
            .build(),
    );
    assert_eq!(info.data_offset, 12 + 12 + 8);
}

#[test]
fn reads_18_byte_fmt_chunk() {
    let bytes = WavBuilder::new(1, 4096, Samples::F32(&[0.5]))
        .layout(vec![Chunk::Fmt, Chunk::Data])
        .build();
    let info = parse(&bytes).expect("valid");
    assert_eq!(info.data_offset, 12 + 8 + 18 + 8);
}

#[test]
fn skips_pad_byte_of_odd_chunk() {
    let bytes = pcm16(&I16_VALUES)
        .layout(vec![
            Chunk::other(b"note", *b"odd"),
            Chunk::Fmt,
            Chunk::Data,
        ])
        .build();
    // "note" + size 3 + "odd" + pad byte.
    assert_eq!(&bytes[12..24], b"note\x03\0\0\0odd\0");
    check_layout(&bytes);
}

#[test]
fn pad_byte_may_be_nonzero() {
    let mut raw = b"note\x03\0\0\0odd?".to_vec();
    raw.truncate(12);
    let bytes = pcm16(&I16_VALUES)
        .layout(vec![Chunk::Raw(raw), Chunk::Fmt, Chunk::Data])
        .build();
    check_layout(&bytes);
}

#[test]
fn tolerates_missing_pad_byte() {
    let bytes = pcm16(&I16_VALUES)
        .layout(vec![
            Chunk::Raw(b"note\x03\0\0\0odd".to_vec()),
            Chunk::Fmt,
            Chunk::Data,
        ])
        .build();
    check_layout(&bytes);
}

#[test]
fn odd_data_chunk_is_padded_and_read() {
    let bytes = WavBuilder::new(1, 4096, Samples::U8(&[0, 128, 255]))
        .chunk(list_chunk())
        .build();
    assert_eq!(&bytes[44..48], &[0, 128, 255, 0]);
    let (info, got) = load(&bytes, Channel::Mix).expect("valid");
    assert_eq!((info.data_len, info.frames), (3, 3));
    assert_eq!(got, vec![-1.0, 0.0, 127.0 / 128.0]);
}

#[test]
fn data_size_past_end_of_file_uses_whole_frames_present() {
    let full = pcm16(&I16_VALUES).declared_data_size(1_000_000).build();
    let info = check_layout(&full);
    assert_eq!(info.data_len, 12);
    // Cut in the middle of a sample: only whole frames count.
    let cut = &full[..full.len() - 1];
    let (info, got) = load(cut, Channel::Mix).expect("valid");
    assert_eq!((info.data_len, info.frames), (11, 5));
    assert_eq!(got, I16_EXPECTED[..5]);
}

#[test]
fn streaming_data_size_ffffffff_reads_to_end() {
    let bytes = pcm16(&I16_VALUES)
        .declared_data_size(0xFFFF_FFFF)
        .riff_size(0xFFFF_FFFF)
        .build();
    assert_eq!(check_layout(&bytes).frames, 6);
}

#[test]
fn streaming_data_before_fmt_loses_fmt() {
    // The data claims the rest of the file, so the fmt chunk after it is unreachable.
    let bytes = pcm16(&I16_VALUES)
        .declared_data_size(0xFFFF_FFFF)
        .layout(vec![Chunk::Data, Chunk::Fmt])
        .build();
    assert_eq!(parse(&bytes), Err(WavError::NoFmtChunk));
}

#[test]
fn riff_size_disagreeing_with_file_is_tolerated() {
    for size in [0, 4, 36, 1 << 30] {
        check_layout(&pcm16(&I16_VALUES).riff_size(size).build());
    }
}

#[test]
fn trailing_garbage_after_data_is_ignored() {
    check_layout(
        &pcm16(&I16_VALUES)
            .chunk(Chunk::Raw(b"\xff\xfe garbage that is no chunk".to_vec()))
            .build(),
    );
}

#[test]
fn first_data_chunk_wins() {
    let bytes = pcm16(&I16_VALUES)
        .layout(vec![Chunk::Data, Chunk::other(b"data", [1, 2]), Chunk::Fmt])
        .build();
    check_layout(&bytes);
}

#[test]
fn zero_length_data_has_no_frames() {
    let bytes = pcm16(&[]).build();
    let (info, got) = load(&bytes, Channel::Mix).expect("valid");
    assert_eq!((info.data_len, info.frames), (0, 0));
    assert!(got.is_empty());
}

#[test]
fn rf64_uses_ds64_data_size() {
    let mut ds64 = Vec::new();
    ds64.extend_from_slice(&0xFFFF_FFFFu64.to_le_bytes()); // RIFF size
    ds64.extend_from_slice(&8u64.to_le_bytes()); // data size: 4 of the 6 samples
    ds64.extend_from_slice(&4u64.to_le_bytes()); // sample count
    ds64.extend_from_slice(&0u32.to_le_bytes()); // table length
    let bytes = pcm16(&I16_VALUES)
        .riff_id(b"RF64")
        .riff_size(0xFFFF_FFFF)
        .declared_data_size(0xFFFF_FFFF)
        .layout(vec![
            Chunk::other(b"ds64", ds64),
            Chunk::Fmt,
            Chunk::Data,
            list_chunk(),
        ])
        .build();
    let (info, got) = load(&bytes, Channel::Mix).expect("valid");
    assert_eq!(info.frames, 4);
    assert_eq!(got, I16_EXPECTED[..4]);
}

#[test]
fn many_empty_chunks_walk_in_linear_time() {
    let mut layout = vec![Chunk::Raw(b"JUNK\0\0\0\0".repeat(200_000))];
    layout.extend([Chunk::Fmt, Chunk::Data]);
    let bytes = pcm16(&I16_VALUES).layout(layout).build();
    assert_eq!(check_layout(&bytes).data_offset, 12 + 1_600_000 + 24 + 8);
}

#[test]
fn parse_head_agrees_with_parse_on_every_layout() {
    let long: Vec<i16> = (0..5000).map(|i| (i * 13) as i16).collect();
    let files = [
        encode_pcm16(1, 4096, &long),
        pcm16(&long)
            .layout(vec![list_chunk(), Chunk::Fmt, Chunk::Data])
            .build(),
        pcm16(&long)
            .layout(vec![
                Chunk::Fmt,
                Chunk::other(b"bext", vec![b' '; 5000]),
                Chunk::Data,
            ])
            .build(),
        pcm16(&long).layout(vec![Chunk::Data, Chunk::Fmt]).build(),
        pcm16(&long)
            .layout(vec![
                Chunk::Raw(b"note\x03\0\0\0odd".to_vec()),
                Chunk::Fmt,
                Chunk::Data,
            ])
            .build(),
        pcm16(&long).declared_data_size(0xFFFF_FFFF).build(),
        pcm16(&long).declared_data_size(1_000_000).build(),
        pcm16(&long)
            .declared_data_size(301)
            .chunk(list_chunk())
            .build(),
        b"RIFF\0\0\0\0WAVEfmt ".to_vec(),
    ];
    for bytes in &files {
        check_heads(bytes);
    }
    // The seed's layout: 44 bytes are enough, 43 are not.
    let seed = &files[0];
    assert_eq!(parse_head(&seed[..43], seed.len()), Ok(None));
    assert_eq!(
        parse_head(&seed[..44], seed.len()),
        Ok(Some(parse(seed).unwrap()))
    );
    // A header past the head: more is needed, however much the head holds.
    let far = &files[2];
    assert_eq!(parse_head(&far[..4096], far.len()), Ok(None));
}

// ---- failures ----

#[test]
fn empty_file() {
    assert_eq!(parse(&[]), Err(WavError::Empty));
}

#[test]
fn not_riff_wave() {
    let mut avi = pcm16(&I16_VALUES).build();
    avi[8..12].copy_from_slice(b"AVI ");
    for bytes in [
        &b"ID3\x04\0\0\0\0\0\x21 an mp3 renamed to .wav"[..],
        b"hello",
        b"RIFF\x10\0\0\0AVI ",
        b"RIFF\x10\0\0\0WA_",
        b"OggS",
        &avi,
    ] {
        assert_eq!(parse(bytes), Err(WavError::NotRiffWave), "{bytes:?}");
    }
    assert_eq!(parse(b"RIFF\x10\0\0\0WAVx"), Err(WavError::NotRiffWave));
}

#[test]
fn truncated_header() {
    let full = pcm16(&I16_VALUES).build();
    // Every cut before the data chunk's header is complete.
    for len in 1..44 {
        assert_eq!(
            parse(&full[..len]),
            Err(WavError::TruncatedHeader),
            "cut at {len}"
        );
    }
    // A data header with no samples after it is a valid empty file.
    assert_eq!(parse(&full[..44]).map(|i| i.frames), Ok(0));
}

#[test]
fn truncated_inside_chunk_before_fmt() {
    let bytes = pcm16(&I16_VALUES)
        .layout(vec![
            Chunk::other(b"LIST", vec![0; 100]),
            Chunk::Fmt,
            Chunk::Data,
        ])
        .build();
    assert_eq!(parse(&bytes[..60]), Err(WavError::TruncatedHeader));
}

#[test]
fn no_fmt_chunk() {
    let bytes = pcm16(&I16_VALUES)
        .layout(vec![list_chunk(), Chunk::Data])
        .build();
    assert_eq!(parse(&bytes), Err(WavError::NoFmtChunk));
    assert_eq!(parse(b"RIFF\x04\0\0\0WAVE"), Err(WavError::NoFmtChunk));
}

#[test]
fn no_data_chunk() {
    let bytes = pcm16(&I16_VALUES)
        .layout(vec![Chunk::Fmt, list_chunk()])
        .build();
    assert_eq!(parse(&bytes), Err(WavError::NoDataChunk));
}

fn unsupported(bytes: &[u8]) -> String {
    match parse(bytes) {
        Err(WavError::Unsupported(what)) => what,
        other => panic!("expected unsupported, got {other:?}"),
    }
}

#[test]
fn unsupported_encodings() {
    let codes = [0x55u8, 0xd5, 0x2a];
    let other = WavBuilder::new(1, 4096, Samples::U8(&codes));
    assert_eq!(
        unsupported(&other.clone().format_tag(2).bits_per_sample(4).build()),
        "MS ADPCM (format tag 0x0002)"
    );
    assert_eq!(
        unsupported(&other.clone().format_tag(0x1234).build()),
        "format tag 0x1234"
    );
    // An unsupported format in an extensible header is named the same way.
    assert_eq!(
        unsupported(&other.format_tag(0x0011).extensible(true).build()),
        "IMA ADPCM (format tag 0x0011)"
    );
    for (bits, align) in [(0u16, 2u16), (40, 5), (48, 6), (56, 7), (65, 9)] {
        let odd = pcm16(&I16_VALUES).bits_per_sample(bits).block_align(align);
        assert_eq!(unsupported(&odd.build()), format!("{bits}-bit PCM"));
    }
    let half = pcm16(&I16_VALUES).format_tag(FORMAT_FLOAT);
    assert_eq!(unsupported(&half.build()), "16-bit float");
    let half_big = pcm16(&I16_VALUES)
        .format_tag(FORMAT_FLOAT)
        .byte_order(ByteOrder::Big);
    assert_eq!(unsupported(&half_big.build()), "16-bit float");
}

#[test]
fn unsupported_extensible_guid() {
    let mut bytes = pcm16(&I16_VALUES).extensible(true).build();
    // The GUID is the last 16 bytes of the 40-byte fmt body at 20..60.
    bytes[44..60].copy_from_slice(&[
        0x2b, 0x14, 0x1d, 0x6c, 0x2e, 0x1b, 0x5d, 0x4f, 0x85, 0x36, 0x4d, 0x5b, 0x0f, 0x4a, 0xc4,
        0x3e,
    ]);
    assert_eq!(
        unsupported(&bytes),
        "extensible sub-format 6C1D142B-1B2E-4F5D-8536-4D5B0F4AC43E"
    );
}

fn malformed(bytes: &[u8]) -> String {
    match parse(bytes) {
        Err(WavError::Malformed(what)) => what,
        other => panic!("expected malformed, got {other:?}"),
    }
}

#[test]
fn malformed_headers() {
    assert_eq!(
        malformed(&pcm16(&I16_VALUES).channels(0).build()),
        "0 channels"
    );
    assert_eq!(
        malformed(&WavBuilder::new(1, 0, Samples::I16(&I16_VALUES)).build()),
        "sample rate 0"
    );
    assert_eq!(
        malformed(&pcm16(&I16_VALUES).block_align(4).build()),
        "block align 4, expected 2 for 1 channel(s) of 16 bits"
    );
    assert_eq!(
        malformed(&pcm16(&I16_VALUES).channels(2).build()),
        "block align 2, expected 4 for 2 channel(s) of 16 bits"
    );
    let short_fmt = pcm16(&I16_VALUES)
        .layout(vec![
            Chunk::other(b"fmt ", [1, 0, 1, 0, 0, 16, 0, 0, 0, 32, 0, 0, 2, 0]),
            Chunk::Data,
        ])
        .build();
    assert_eq!(
        malformed(&short_fmt),
        "fmt chunk is 14 bytes, needs at least 16"
    );
    let mut ext = pcm16(&I16_VALUES).extensible(true).build();
    // Declare the extensible fmt as 16 bytes: the GUID is missing.
    ext[16..20].copy_from_slice(&16u32.to_le_bytes());
    ext.drain(36..60);
    assert_eq!(
        malformed(&ext),
        "extensible fmt chunk is 16 bytes, needs 40"
    );
}

#[test]
fn contradicting_headers_name_the_contradiction() {
    let cases: [(WavBuilder, &str); 9] = [
        (
            pcm16(&I16_VALUES).extensible(true).valid_bits(20),
            "valid bits 20 exceed the 16-bit container",
        ),
        (
            WavBuilder::new(1, 4096, Samples::I24(&[1]))
                .extensible(true)
                .valid_bits(32),
            "valid bits 32 exceed the 24-bit container",
        ),
        (
            WavBuilder::new(2, 4096, Samples::I16(&[1, 2])).block_align(3),
            "block align 3, expected 4 for 2 channel(s) of 16 bits",
        ),
        (
            WavBuilder::new(1, 4096, Samples::MuLaw(&[1]))
                .bits_per_sample(16)
                .block_align(2),
            "mu-law with 16 bits per sample, expected 8",
        ),
        (
            WavBuilder::new(1, 4096, Samples::ALaw(&[1])).bits_per_sample(0),
            "A-law with 0 bits per sample, expected 8",
        ),
        (
            WavBuilder::new(1, 4096, Samples::MuLaw(&[1, 2])).block_align(2),
            "block align 2, expected 1 for 1 channel(s) of 8 bits",
        ),
        (
            // 12 bits need a 2-byte container: a 4-byte block align is not one sample.
            pcm16(&I16_VALUES).bits_per_sample(12).block_align(4),
            "block align 4, expected 2 for 1 channel(s) of 12 bits",
        ),
        (
            WavBuilder::new(1, 4096, Samples::I32(&[1])).bits_per_sample(24),
            "block align 4, expected 3 for 1 channel(s) of 24 bits",
        ),
        (
            WavBuilder::new(1, 4096, Samples::I64(&[1])).block_align(4),
            "block align 4, expected 8 for 1 channel(s) of 64 bits",
        ),
    ];
    for (builder, reason) in cases {
        assert_eq!(malformed(&builder.clone().build()), reason);
        assert_eq!(
            malformed(&builder.byte_order(ByteOrder::Big).build()),
            reason
        );
    }
}

#[test]
fn error_messages_are_what_users_read() {
    let cases = [
        (WavError::Empty, "empty file"),
        (WavError::NotRiffWave, "not a RIFF/WAVE file"),
        (WavError::TruncatedHeader, "truncated header"),
        (WavError::NoFmtChunk, "no fmt chunk"),
        (WavError::NoDataChunk, "no data chunk"),
        (
            WavError::Unsupported("A-law (format tag 0x0006)".into()),
            "unsupported encoding: A-law (format tag 0x0006)",
        ),
        (
            WavError::Malformed("0 channels".into()),
            "malformed header: 0 channels",
        ),
        (
            WavError::NoSuchChannel {
                requested: 2,
                channels: 2,
            },
            "channel 2 requested but the file has 2",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}

// ---- channels ----

#[test]
fn stereo_mix_is_mean_and_index_picks_channel() {
    let interleaved = [100i16, -100, 32767, 32767, -32768, 0, 1, 2];
    let bytes = WavBuilder::new(2, 4096, Samples::I16(&interleaved)).build();
    let (info, mix) = load(&bytes, Channel::Mix).expect("valid");
    assert_eq!((info.channels, info.frames), (2, 4));
    assert_eq!(mix, vec![0.0, 32767.0 / 32768.0, -0.5, 1.5 / 32768.0]);
    let (_, left) = load(&bytes, Channel::Index(0)).expect("valid");
    assert_eq!(
        left,
        vec![100.0 / 32768.0, 32767.0 / 32768.0, -1.0, 1.0 / 32768.0]
    );
    let (_, right) = load(&bytes, Channel::Index(1)).expect("valid");
    assert_eq!(
        right,
        vec![-100.0 / 32768.0, 32767.0 / 32768.0, 0.0, 2.0 / 32768.0]
    );
    assert_eq!(
        load(&bytes, Channel::Index(2)).map(|_| ()),
        Err(WavError::NoSuchChannel {
            requested: 2,
            channels: 2
        })
    );
}

#[test]
fn three_channel_mix_rounds_once() {
    let interleaved = [1i16, 1, 2, -32768, 32767, 32767];
    let bytes = WavBuilder::new(3, 4096, Samples::I16(&interleaved)).build();
    let mix = load_mono(&bytes);
    assert_eq!(
        mix,
        vec![
            (4.0f64 / 3.0 / 32768.0) as f32,
            (32766.0f64 / 3.0 / 32768.0) as f32
        ]
    );
}

#[test]
fn multichannel_every_encoding() {
    let u8s = [0u8, 255, 128, 130];
    let (_, mix) = load(
        &WavBuilder::new(2, 8000, Samples::U8(&u8s)).build(),
        Channel::Mix,
    )
    .expect("valid");
    assert_eq!(mix, vec![-0.5 / 128.0, 1.0 / 128.0]);
    let f = [0.25f32, -0.75, 1.0, 0.0];
    let bytes = WavBuilder::new(2, 8000, Samples::F32(&f))
        .extensible(true)
        .build();
    assert_eq!(load_mono(&bytes), vec![-0.25, 0.5]);
    assert_eq!(
        load(&bytes, Channel::Index(1)).expect("valid").1,
        vec![-0.75, 0.0]
    );
    let i24 = [8_388_607, -8_388_608, 2, 4, 6, 8];
    let bytes = WavBuilder::new(3, 8000, Samples::I24(&i24)).build();
    assert_eq!(
        load(&bytes, Channel::Index(2)).expect("valid").1,
        vec![2.0 / 8_388_608.0, 8.0 / 8_388_608.0]
    );
    assert_eq!(load_mono(&bytes)[1], (18.0f64 / 3.0 / 8_388_608.0) as f32);
    let i32s = [1 << 30, -(1 << 30)];
    assert_eq!(
        load_mono(&WavBuilder::new(2, 8000, Samples::I32(&i32s)).build()),
        vec![0.0]
    );
    let f64s = [0.5f64, 0.25];
    let bytes = WavBuilder::new(2, 8000, Samples::F64(&f64s)).build();
    assert_eq!(load_mono(&bytes), vec![0.375]);
    assert_eq!(load(&bytes, Channel::Index(0)).expect("valid").1, vec![0.5]);
}

#[test]
fn partial_last_frame_is_dropped() {
    let bytes = WavBuilder::new(2, 4096, Samples::I16(&[1, 2, 3]))
        .chunk(list_chunk())
        .build();
    let info = parse(&bytes).expect("valid");
    assert_eq!((info.data_len, info.frames), (6, 1));
}

// ---- decode's contract with its buffer ----

#[test]
fn decode_stops_at_out_len_and_leaves_the_rest() {
    let bytes = pcm16(&I16_VALUES).build();
    let info = parse(&bytes).expect("valid");
    let mut out = [7.0f32; 4];
    assert_eq!(decode(&info, &bytes, Channel::Mix, &mut out), Ok(4));
    assert_eq!(out, I16_EXPECTED[..4]);
    let mut out = [7.0f32; 9];
    assert_eq!(decode(&info, &bytes, Channel::Mix, &mut out), Ok(6));
    assert_eq!(out[..6], I16_EXPECTED);
    assert_eq!(out[6..], [7.0; 3]);
}

#[test]
fn decode_rejects_info_that_does_not_fit_bytes() {
    let bytes = pcm16(&I16_VALUES).build();
    let info = parse(&bytes).expect("valid");
    let mut out = [0.0f32; 16];
    for bad in [
        WavInfo { frames: 7, ..info },
        WavInfo {
            data_offset: usize::MAX,
            ..info
        },
        WavInfo {
            frames: usize::MAX,
            ..info
        },
        WavInfo {
            channels: 0,
            ..info
        },
    ] {
        assert!(
            decode(&bad, &bytes, Channel::Mix, &mut out).is_err(),
            "{bad:?}"
        );
    }
}

// ---- properties ----

/// [`parse_head`] of any first bytes of a file says what [`parse`] of the whole file says, or
/// that it needs more; given the whole file (or more than it) it always answers. Prefixes of
/// every length up to 600 bytes, then every 97th.
fn check_heads(bytes: &[u8]) {
    let whole = parse(bytes);
    let lens = (0..=bytes.len().min(600)).chain((600..=bytes.len()).step_by(97));
    for k in lens.chain([bytes.len()]) {
        match parse_head(&bytes[..k], bytes.len()) {
            Ok(None) => assert!(k < bytes.len(), "the whole file must be enough"),
            Ok(Some(info)) => assert_eq!(Ok(info), whole, "head of {k} bytes"),
            Err(e) => assert_eq!(Err(e), whole, "head of {k} bytes"),
        }
    }
    // A head longer than the file is cut to it.
    let mut longer = bytes.to_vec();
    longer.extend_from_slice(b"data\xff\xff\xff\xff");
    let got = parse_head(&longer, bytes.len());
    assert_eq!(got.map(|i| i.expect("the whole file is there")), whole);
}

/// The invariants that hold for any input: no panic, a parsed file's sizes fit the
/// bytes, decode writes exactly min(frames, out.len()) values and nothing else, and
/// [`parse_head`] agrees with [`parse`] ([`check_heads`]).
fn check_any(bytes: &[u8]) {
    check_heads(bytes);
    let Ok(info) = parse(bytes) else { return };
    assert!(info.frames * info.block_align() <= info.data_len);
    assert!(info.data_offset + info.data_len <= bytes.len());
    assert!(info.channels > 0 && info.sample_rate > 0);
    for channel in [
        Channel::Mix,
        Channel::Index(0),
        Channel::Index(info.channels - 1),
    ] {
        let mut buf = [f32::from_bits(0x7fc0_1234); 48];
        let (out, tail) = buf.split_at_mut(40);
        let n = decode(&info, bytes, channel, out).expect("valid channel");
        assert_eq!(n, info.frames.min(40));
        assert!(tail.iter().all(|x| x.to_bits() == 0x7fc0_1234));
        if info.format != SampleFormat::F32 && info.format != SampleFormat::F64 {
            assert!(out[..n].iter().all(|x| (-1.0..=1.0).contains(x)));
        }
    }
    let beyond = Channel::Index(info.channels);
    assert!(matches!(
        decode(&info, bytes, beyond, &mut [0.0; 4]),
        Err(WavError::NoSuchChannel { .. })
    ));
}

fn sample_format() -> impl Strategy<Value = SampleFormat> {
    prop_oneof![
        Just(SampleFormat::U8),
        Just(SampleFormat::I16),
        Just(SampleFormat::I24),
        Just(SampleFormat::I32),
        Just(SampleFormat::F32),
        Just(SampleFormat::F64),
        Just(SampleFormat::I64),
        Just(SampleFormat::MuLaw),
        Just(SampleFormat::ALaw),
    ]
}

/// A valid file: any encoding, 1–4 channels, 0–40 frames, plain or extensible, RIFF or
/// RIFX, with extra chunks (some odd-sized) before, between and after, and data before fmt
/// or not.
fn valid_file() -> impl Strategy<Value = (Vec<u8>, usize, u16)> {
    (
        sample_format(),
        1u16..=4,
        0usize..40,
        (any::<bool>(), any::<bool>()),
        any::<bool>(),
        proptest::collection::vec((0usize..3, 0usize..9), 0..4),
        any::<u64>(),
    )
        .prop_map(
            |(format, channels, frames, (extensible, big), data_first, extras, seed)| {
                let n = frames * usize::from(channels);
                let bytes: Vec<u8> = (0..n * format.bytes())
                    .map(|i| (seed.wrapping_mul(i as u64 + 1) >> 17) as u8)
                    .collect();
                let mut layout = if data_first {
                    vec![Chunk::Data, Chunk::Fmt]
                } else {
                    vec![Chunk::Fmt, Chunk::Data]
                };
                for (at, len) in extras {
                    layout.insert(at, Chunk::other(b"LIST", vec![b'x'; len]));
                }
                // The sample bytes go in raw; the header fields come from an empty slice
                // of the right encoding.
                let header = match format {
                    SampleFormat::U8 => Samples::U8(&[]),
                    SampleFormat::I16 => Samples::I16(&[]),
                    SampleFormat::I24 => Samples::I24(&[]),
                    SampleFormat::I32 => Samples::I32(&[]),
                    SampleFormat::F32 => Samples::F32(&[]),
                    SampleFormat::F64 => Samples::F64(&[]),
                    SampleFormat::I64 => Samples::I64(&[]),
                    SampleFormat::MuLaw => Samples::MuLaw(&[]),
                    SampleFormat::ALaw => Samples::ALaw(&[]),
                };
                let order = if big {
                    ByteOrder::Big
                } else {
                    ByteOrder::Little
                };
                let file = WavBuilder::new(channels, 4096, header)
                    .byte_order(order)
                    .data_bytes(bytes)
                    .extensible(extensible)
                    .layout(layout)
                    .build();
                (file, frames, channels)
            },
        )
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, x)| Mutation::Flip(at, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, x)| Mutation::Insert(at, x)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match *m {
        Mutation::Flip(at, x) if len > 0 => bytes[at % len] ^= x,
        Mutation::Insert(at, x) => bytes.insert(at % (len + 1), x),
        Mutation::Remove(at) if len > 0 => {
            bytes.remove(at % len);
        }
        Mutation::Truncate(at) => bytes.truncate(at % (len + 1)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_any(&bytes);
    }

    #[test]
    fn arbitrary_chunks_after_riff_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        ids in proptest::collection::vec(
            prop_oneof![Just(*b"fmt "), Just(*b"data"), Just(*b"ds64"), Just(*b"LIST")], 0..4),
    ) {
        // Plant real chunk ids so the walk gets past the first chunk.
        let mut bytes = b"RIFF\0\0\0\0WAVE".to_vec();
        bytes.extend_from_slice(&body);
        for (k, id) in ids.iter().enumerate() {
            let at = 12 + k * 24;
            if at + 4 <= bytes.len() {
                bytes[at..at + 4].copy_from_slice(id);
            }
        }
        check_any(&bytes);
    }

    #[test]
    fn valid_files_round_trip((bytes, frames, channels) in valid_file()) {
        let info = parse(&bytes).expect("valid file");
        prop_assert_eq!(info.frames, frames);
        prop_assert_eq!(info.channels, channels);
        prop_assert_eq!(info.data_len, frames * info.block_align());
        prop_assert!(info.data_offset + info.data_len <= bytes.len());
        check_any(&bytes);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        (bytes, _, _) in valid_file(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = bytes;
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        check_any(&bytes);
    }

    #[test]
    fn huge_declared_sizes_are_clipped(size in any::<u32>(), riff in any::<u32>()) {
        let bytes = pcm16(&I16_VALUES).declared_data_size(size).riff_size(riff).build();
        let info = parse(&bytes).expect("valid");
        prop_assert_eq!(info.frames, (size as usize).min(12) / 2);
        check_any(&bytes);
    }
}
