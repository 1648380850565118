//! The WAV parser and decoder under a long-running property test: valid files of every encoding
//! (µ-law, A-law and 64-bit PCM included), byte order (RIFF, RIFX), valid-bits field and chunk
//! layout, then byte flips, insertions, removals, truncations, size-field and
//! format-field rewrites and spliced copies of their own bytes.
//!
//! For every input: no panic, no hang (a watchdog aborts the process, printing the input, if one
//! case runs for more than 20 s, and the slowest case is reported), `parse` reports only frames
//! that the data bytes hold, `decode` writes exactly `min(frames, out.len())` values and nothing
//! past them, and neither allocates on success (this binary counts allocations) nor more than a
//! few error-message bytes on failure: nothing is sized from header fields.
//!
//! `MELPIPE_FUZZ_CASES` sets the number of cases (default 20,000: a few seconds in CI);
//! `MELPIPE_FUZZ_SEED` (a number) changes the otherwise fixed random seed. The long run:
//! `MELPIPE_FUZZ_CASES=1000000 cargo test --release -p melpipe-core --test wav_fuzz -- --nocapture`
//! (figures in docs/RELIABILITY.md). `fuzz/` has the coverage-guided cargo-fuzz target.

use melpipe_core::config::Channel;
use melpipe_core::wav::{
    self, ByteOrder, Chunk, SampleFormat, Samples, WavBuilder, WavError, WavInfo,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- allocation counting ----

/// The system allocator, counting what the current thread allocates while tracking is on.
struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static ALLOC_BYTES: Cell<u64> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    // try_with: the allocator may run while thread-locals are being torn down.
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            let _ = ALLOC_BYTES.try_with(|c| c.set(c.get() + size as u64));
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`; the counting touches only
// const-initialised thread-local `Cell`s, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, returning its result and the (allocations, bytes) it made on this thread.
fn counting<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    ALLOCS.with(|c| c.set(0));
    ALLOC_BYTES.with(|c| c.set(0));
    TRACKING.with(|t| t.set(true));
    let r = f();
    TRACKING.with(|t| t.set(false));
    (r, ALLOCS.with(Cell::get), ALLOC_BYTES.with(Cell::get))
}

/// An error message is the most a failed parse or decode may allocate.
const ERROR_ALLOC_BYTES: u64 = 1024;

// ---- the invariants ----

/// A bit pattern no decoder produces (a NaN with a payload), to see what was written.
const SENTINEL: u32 = 0x7fc0_1234;
const TAIL: usize = 8;

/// Checks every invariant on one input; `expect` holds the frames and the channel-0 samples
/// of a valid, unmutated file.
fn check(bytes: &[u8], expect: Option<&(usize, Vec<f32>)>) -> Result<(), TestCaseError> {
    let (parsed, allocs, abytes) = counting(|| wav::parse(bytes));
    let info = match parsed {
        Ok(info) => info,
        Err(e) => {
            prop_assert!(abytes <= ERROR_ALLOC_BYTES, "{e}: {abytes} bytes allocated");
            prop_assert!(expect.is_none(), "a valid file failed to parse: {e}");
            return Ok(());
        }
    };
    prop_assert_eq!(allocs, 0, "parse allocated on success");
    let align = info.block_align();
    prop_assert!(info.channels > 0 && info.sample_rate > 0);
    prop_assert!(info.data_offset >= 20, "data before the first chunk body");
    prop_assert!(info.frames * align <= info.data_len, "{:?}", info);
    prop_assert!(info.data_len < info.frames * align + align);
    prop_assert!(
        info.data_offset + info.data_len <= bytes.len(),
        "{:?}",
        info
    );
    if let Some((frames, _)) = expect {
        prop_assert_eq!(info.frames, *frames);
    }

    let mut buf = vec![0f32; 80 + TAIL];
    let lens = [
        0,
        1,
        info.frames.saturating_sub(1),
        info.frames,
        info.frames + 3,
    ];
    let last = info.channels - 1;
    for channel in [Channel::Mix, Channel::Index(0), Channel::Index(last)] {
        for &len in &lens {
            let len = len.min(80);
            buf.fill(f32::from_bits(SENTINEL));
            let (out, tail) = buf.split_at_mut(len);
            let (r, allocs, _) = counting(|| wav::decode(&info, bytes, channel, out));
            let n = r.map_err(|e| TestCaseError::fail(format!("decode failed: {e}")))?;
            prop_assert_eq!(allocs, 0, "decode allocated");
            prop_assert_eq!(n, info.frames.min(len));
            prop_assert!(out[..n].iter().all(|x| x.to_bits() != SENTINEL));
            prop_assert!(out[n..].iter().all(|x| x.to_bits() == SENTINEL));
            prop_assert!(tail[..TAIL].iter().all(|x| x.to_bits() == SENTINEL));
            if !matches!(info.format, SampleFormat::F32 | SampleFormat::F64) {
                prop_assert!(out[..n].iter().all(|x| (-1.0..=1.0).contains(x)));
            }
            if let (Some((_, want)), Channel::Index(0)) = (expect, channel) {
                prop_assert!(
                    out[..n]
                        .iter()
                        .zip(want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "channel 0 decodes to other values"
                );
            }
        }
    }
    let (r, _, abytes) =
        counting(|| wav::decode(&info, bytes, Channel::Index(info.channels), &mut buf[..4]));
    let no_such = matches!(r, Err(WavError::NoSuchChannel { .. }));
    prop_assert!(no_such, "{:?}", r);
    prop_assert!(abytes <= ERROR_ALLOC_BYTES);
    // An `info` that claims more than the bytes hold is an error, never a panic or a read
    // past the bytes.
    let lying = WavInfo {
        frames: info.frames + 1 + bytes.len(),
        ..info
    };
    let r = wav::decode(&lying, bytes, Channel::Mix, &mut buf[..80]);
    prop_assert!(r.is_err() || r == Ok(80), "{:?}", r);
    Ok(())
}

// ---- inputs ----

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

/// G.711 µ-law expansion to 16 bits (ITU-T G.711; libsndfile's table holds the same values).
fn ulaw(code: u8) -> f32 {
    let u = !code;
    let magnitude = ((i32::from(u & 0x0F) << 3) + 0x84) * (1 << ((u >> 4) & 7)) - 0x84;
    let v = if u & 0x80 != 0 { -magnitude } else { magnitude };
    v as f32 / 32768.0
}

/// G.711 A-law expansion to 16 bits.
fn alaw(code: u8) -> f32 {
    let a = code ^ 0x55;
    let exponent = i32::from((a >> 4) & 7);
    let mantissa = i32::from(a & 0x0F);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    let v = if a & 0x80 != 0 { magnitude } else { -magnitude };
    v as f32 / 32768.0
}

/// Channel 0 of sample bytes in `order` as torchaudio and libsndfile scale them (the
/// reference the decoder must match bit for bit).
fn reference_channel0(
    format: SampleFormat,
    order: ByteOrder,
    channels: usize,
    data: &[u8],
) -> Vec<f32> {
    let w = format.bytes();
    data.chunks_exact(w * channels)
        .map(|f| {
            let mut b = f[..w].to_vec();
            if order == ByteOrder::Big {
                b.reverse();
            }
            match format {
                SampleFormat::U8 => (f32::from(b[0]) - 128.0) / 128.0,
                SampleFormat::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0,
                SampleFormat::I24 => {
                    let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                    v as f32 / 8_388_608.0
                }
                SampleFormat::I32 => {
                    i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
                }
                SampleFormat::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                SampleFormat::F64 => {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                }
                SampleFormat::I64 => {
                    let v = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    // One rounding, then an exact power-of-two scaling.
                    v as f32 / 9_223_372_036_854_775_808.0
                }
                SampleFormat::MuLaw => ulaw(b[0]),
                SampleFormat::ALaw => alaw(b[0]),
            }
        })
        .collect()
}

/// Extra chunks melpipe must skip: ids seen in the wild, bodies of any (odd) size.
fn extra_chunk() -> impl Strategy<Value = Chunk> {
    (
        prop_oneof![
            Just(*b"LIST"),
            Just(*b"fact"),
            Just(*b"bext"),
            Just(*b"JUNK"),
            Just(*b"id3 "),
            Just(*b"cue "),
            Just(*b"PAD "),
        ],
        proptest::collection::vec(any::<u8>(), 0..13),
    )
        .prop_map(|(id, body)| Chunk::other(&id, body))
}

/// A valid file, its frame count and the reference channel 0.
#[derive(Clone, Debug)]
struct ValidFile {
    bytes: Vec<u8>,
    frames: usize,
    channel0: Vec<f32>,
}

fn valid_file() -> impl Strategy<Value = ValidFile> {
    (
        sample_format(),
        1u16..=8,
        0usize..48,
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec((0usize..4, extra_chunk()), 0..4),
        proptest::collection::vec(any::<u8>(), 0..48 * 8 * 8),
        0u8..4,
        (any::<bool>(), any::<u16>()),
    )
        .prop_map(
            |(
                format,
                channels,
                frames,
                extensible,
                data_first,
                extras,
                noise,
                variant,
                (big, valid),
            )| {
                let order = if big {
                    ByteOrder::Big
                } else {
                    ByteOrder::Little
                };
                let need = frames * usize::from(channels) * format.bytes();
                let mut data: Vec<u8> = noise.iter().copied().cycle().take(need).collect();
                data.resize(need, 0);
                if format == SampleFormat::F32 || format == SampleFormat::F64 {
                    // Keep floats finite and ordinary so values compare bit for bit.
                    let w = format.bytes();
                    for (i, s) in data.chunks_exact_mut(w).enumerate() {
                        let v = ((i * 37 % 201) as f64 - 100.0) / 128.0;
                        if w == 4 {
                            s.copy_from_slice(&(v as f32).to_le_bytes());
                        } else {
                            s.copy_from_slice(&v.to_le_bytes());
                        }
                        if big {
                            s.reverse();
                        }
                    }
                }
                let mut layout = if data_first {
                    vec![Chunk::Data, Chunk::Fmt]
                } else {
                    vec![Chunk::Fmt, Chunk::Data]
                };
                for (at, chunk) in extras {
                    let at = at.min(layout.len());
                    layout.insert(at, chunk);
                }
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
                // Any valid bits up to the container (0: all of them), which change nothing.
                let bits = 8 * format.bytes() as u16;
                let mut b = WavBuilder::new(channels, 4096, header)
                    .byte_order(order)
                    .data_bytes(data.clone())
                    .extensible(extensible)
                    .valid_bits(valid % (bits + 1))
                    .layout(layout.clone());
                // A plain header may state fewer bits than its integer container (12 in 16, 20
                // in 24, ...): the same values.
                let int_pcm = matches!(
                    format,
                    SampleFormat::U8
                        | SampleFormat::I16
                        | SampleFormat::I24
                        | SampleFormat::I32
                        | SampleFormat::I64
                );
                if int_pcm && !extensible && valid % 3 == 0 {
                    b = b.bits_per_sample(bits - (valid >> 2) % 8);
                }
                let data_last = layout.last() == Some(&Chunk::Data);
                match variant {
                    // A streaming writer's unknown data size, when the data runs to the end
                    // (and has no pad byte, which would read as one more sample).
                    1 if data_last && need % 2 == 0 => b = b.declared_data_size(u32::MAX),
                    // A wrong RIFF size, which readers ignore.
                    2 => b = b.riff_size(need as u32 ^ 0x5a5a),
                    // RF64 with its ds64 chunk first.
                    3 if data_last && need % 2 == 0 && !big => {
                        let mut ds64 = Vec::new();
                        ds64.extend_from_slice(&0u64.to_le_bytes());
                        ds64.extend_from_slice(&(need as u64).to_le_bytes());
                        ds64.extend_from_slice(&0u64.to_le_bytes());
                        let mut l = vec![Chunk::other(b"ds64", ds64)];
                        l.extend(layout);
                        b = b
                            .riff_id(b"RF64")
                            .layout(l)
                            .declared_data_size(u32::MAX)
                            .riff_size(u32::MAX);
                    }
                    _ => {}
                }
                ValidFile {
                    bytes: b.build(),
                    frames,
                    channel0: reference_channel0(format, order, usize::from(channels), &data),
                }
            },
        )
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
    /// Rewrite the size field of the k-th chunk header found.
    ChunkSize(usize, u32),
    /// Rewrite a 16-bit field of the `fmt ` body (tag, channels, block align, bits, ...).
    FmtField(usize, u16),
    /// Copy a range of the file's own bytes to another place (duplicated chunks, headers).
    Splice(usize, usize, usize),
}

fn interesting_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => prop::sample::select(vec![
            0u32, 1, 2, 3, 4, 7, 8, 15, 16, 17, 18, 22, 39, 40, 41, 0x7fff_ffff, 0x8000_0000,
            0xffff_fffe, 0xffff_ffff,
        ]),
        1 => any::<u32>(),
        1 => 0u32..600,
    ]
}

fn interesting_u16() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => prop::sample::select(vec![
            0u16, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 0x7fff, 0xfffe, 0xffff,
        ]),
        1 => any::<u16>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 1u8..=255).prop_map(|(at, x)| Mutation::Flip(at, x)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        1 => (any::<usize>(), 1usize..9).prop_map(|(at, n)| Mutation::Remove(at, n)),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        3 => (0usize..6, interesting_u32()).prop_map(|(k, v)| Mutation::ChunkSize(k, v)),
        2 => (0usize..20, interesting_u16()).prop_map(|(k, v)| Mutation::FmtField(k, v)),
        1 => (any::<usize>(), 1usize..48, any::<usize>())
            .prop_map(|(from, n, to)| Mutation::Splice(from, n, to)),
    ]
}

/// Offsets of the chunk headers a walk from byte 12 finds (ignoring pad bytes), then of any
/// known chunk id anywhere.
fn chunk_headers(bytes: &[u8]) -> Vec<usize> {
    let mut at = Vec::new();
    for i in 12..bytes.len().saturating_sub(7) {
        let id = &bytes[i..i + 4];
        if [
            b"fmt ", b"data", b"LIST", b"fact", b"ds64", b"JUNK", b"bext",
        ]
        .iter()
        .any(|k| id == *k)
        {
            at.push(i);
        }
    }
    at
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    let big = bytes.starts_with(b"RIFX");
    match m {
        Mutation::Flip(at, x) if len > 0 => bytes[at % len] ^= x,
        Mutation::Insert(at, b) => {
            let at = at % (len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Remove(at, n) if len > 0 => {
            let at = at % len;
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Truncate(at) => bytes.truncate(at % (len + 1)),
        // Size and fmt fields are rewritten in the file's byte order, so they are read as
        // written.
        Mutation::ChunkSize(k, v) => {
            let heads = chunk_headers(bytes);
            if let Some(&h) = heads.get(k % heads.len().max(1)) {
                let v = if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                bytes[h + 4..h + 8].copy_from_slice(&v);
            }
        }
        Mutation::FmtField(k, v) => {
            let heads = chunk_headers(bytes);
            if let Some(&h) = heads.iter().find(|&&h| &bytes[h..h + 4] == b"fmt ") {
                let at = h + 8 + 2 * k;
                if at + 2 <= len {
                    let v = if big {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    };
                    bytes[at..at + 2].copy_from_slice(&v);
                }
            }
        }
        Mutation::Splice(from, n, to) if len > 0 => {
            let from = from % len;
            let piece: Vec<u8> = bytes[from..(from + n).min(len)].to_vec();
            let to = to % (len + 1);
            bytes.splice(to..to, piece);
        }
        _ => {}
    }
}

/// What one case tests.
#[derive(Clone, Debug)]
enum Input {
    /// A valid file as built.
    Valid(ValidFile),
    /// A valid file after mutations.
    Mutated(Vec<u8>, Vec<Mutation>),
    /// Random bytes behind a RIFF/WAVE header, with real chunk ids planted.
    Chunks(Vec<u8>),
    /// Random bytes.
    Bytes(Vec<u8>),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        2 => valid_file().prop_map(Input::Valid),
        6 => (valid_file(), proptest::collection::vec(mutation(), 1..6))
            .prop_map(|(f, ms)| Input::Mutated(f.bytes, ms)),
        1 => (
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(
                prop_oneof![Just(*b"fmt "), Just(*b"data"), Just(*b"ds64"), Just(*b"LIST")],
                0..5,
            ),
            proptest::collection::vec(interesting_u32(), 5),
        )
            .prop_map(|(body, ids, sizes)| {
                let mut b = b"RIFF\0\0\0\0WAVE".to_vec();
                b.extend_from_slice(&body);
                let mut at = 12;
                for (id, size) in ids.iter().zip(sizes) {
                    if at + 8 > b.len() {
                        break;
                    }
                    b[at..at + 4].copy_from_slice(id);
                    b[at + 4..at + 8].copy_from_slice(&(size % 64).to_le_bytes());
                    at += 8 + (size % 64) as usize;
                }
                Input::Chunks(b)
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Input::Bytes),
    ]
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Aborts the process, printing the input, if one case runs for longer than `limit`.
struct Watchdog {
    started_ms: Arc<AtomicU64>,
    current: Arc<Mutex<Vec<u8>>>,
    epoch: Instant,
}

impl Watchdog {
    fn start(limit: Duration) -> Watchdog {
        let w = Watchdog {
            started_ms: Arc::new(AtomicU64::new(0)),
            current: Arc::new(Mutex::new(Vec::new())),
            epoch: Instant::now(),
        };
        let (started, current, epoch) =
            (Arc::clone(&w.started_ms), Arc::clone(&w.current), w.epoch);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let s = started.load(Ordering::Relaxed);
            let now = epoch.elapsed().as_millis() as u64;
            if s != 0 && now.saturating_sub(s) > limit.as_millis() as u64 {
                let input = current.lock().map(|b| b.clone()).unwrap_or_default();
                let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
                eprintln!("wav_fuzz: one input ran for more than {limit:?}: a hang. Input: {hex}");
                std::process::abort();
            }
        });
        w
    }

    fn begin(&self, bytes: &[u8]) {
        if let Ok(mut c) = self.current.lock() {
            c.clear();
            c.extend_from_slice(bytes);
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        self.started_ms.store(now.max(1), Ordering::Relaxed);
    }

    fn end(&self) {
        self.started_ms.store(0, Ordering::Relaxed);
    }
}

#[test]
fn parser_and_decoder_survive_generated_and_mutated_files() {
    let cases = env_u64("MELPIPE_FUZZ_CASES").unwrap_or(20_000);
    let seed = env_u64("MELPIPE_FUZZ_SEED").unwrap_or(0x006d_656c_7069_7065);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases: u32::try_from(cases).unwrap_or(u32::MAX),
        failure_persistence: None,
        max_shrink_iters: 20_000,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let watchdog = Watchdog::start(Duration::from_secs(20));
    let slowest = Cell::new(Duration::ZERO);
    let counts = Cell::new([0u64; 3]); // valid, mutated that parsed, failed to parse
    let t0 = Instant::now();
    let result = runner.run(&input(), |inp| {
        let mut mutated;
        let (bytes, expect) = match &inp {
            Input::Valid(f) => (f.bytes.as_slice(), Some((f.frames, f.channel0.clone()))),
            Input::Mutated(b, ms) => {
                mutated = b.clone();
                for m in ms {
                    mutate(&mut mutated, m);
                }
                (mutated.as_slice(), None)
            }
            Input::Chunks(b) | Input::Bytes(b) => (b.as_slice(), None),
        };
        watchdog.begin(bytes);
        let t = Instant::now();
        let r = check(bytes, expect.as_ref());
        let dt = t.elapsed();
        watchdog.end();
        slowest.set(slowest.get().max(dt));
        let mut c = counts.get();
        c[match (&inp, wav::parse(bytes).is_ok()) {
            (Input::Valid(_), _) => 0,
            (_, true) => 1,
            (_, false) => 2,
        }] += 1;
        counts.set(c);
        // Bounded time per input: every input here is under 4 KiB.
        prop_assert!(dt < Duration::from_secs(2), "one input took {dt:?}");
        r
    });
    let c = counts.get();
    eprintln!(
        "wav_fuzz: {cases} cases in {:.1} s ({} valid, {} mutated or random that parsed, {} rejected); slowest case {:?}",
        t0.elapsed().as_secs_f64(),
        c[0],
        c[1],
        c[2],
        slowest.get()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator must reach both sides of the parser.
    assert!(c[0] > 0 && c[1] > 0 && c[2] > 0, "{c:?}");
}

/// The counter is live: without this, "no allocation" above could be a broken counter.
#[test]
fn allocation_counter_counts() {
    let (v, allocs, bytes) = counting(|| vec![1u8; 100]);
    assert_eq!(v.len(), 100);
    assert!(allocs >= 1 && bytes >= 100, "{allocs} {bytes}");
    let bad = WavBuilder::new(1, 4096, Samples::I16(&[0; 4]))
        .bits_per_sample(12)
        .block_align(4)
        .build();
    let (r, allocs, _) = counting(|| wav::parse(&bad));
    assert!(r.is_err() && allocs >= 1, "an error message is allocated");
}
