//! WAV (RIFF/WAVE) parsing by walking chunks (docs/FORMAT.md, Inputs), and decoding to mono f32
//! samples.
//!
//! [`parse`] reads only the header chunks of a whole file held in memory and checks them
//! against the bytes that are really there; [`decode`] turns the sample bytes into f32 with
//! torchaudio.load's scaling. Neither allocates from header-declared sizes, and neither
//! panics on any input: a file is untrusted data. [`encode`] writes WAV files, including
//! deliberately odd ones, for tests and for `melpipe generate`.
//!
//! # What is decoded, and how
//!
//! Every value equals libsndfile's float read of the same file (`sf_readf_double`, which python
//! `soundfile` calls) rounded to f32; crates/core/tests/wav_sndfile.rs checks this bit for bit.
//!
//! | header | [`SampleFormat`] | sample |
//! | --- | --- | --- |
//! | PCM (tag 1), 1 to 8 bits | `U8` | (v − 128) / 128 |
//! | PCM, 9 to 16 bits | `I16` | v / 2^15 |
//! | PCM, 17 to 24 bits | `I24` | v / 2^23 |
//! | PCM, 25 to 32 bits | `I32` | v / 2^31 |
//! | PCM, 57 to 64 bits | `I64` | v / 2^63 |
//! | IEEE float (tag 3), 32 or 64 bits | `F32`, `F64` | as is, rounded to f32 |
//! | µ-law (tag 7), 8 bits | `MuLaw` | G.711 expansion to 16 bits, / 2^15 |
//! | A-law (tag 6), 8 bits | `ALaw` | G.711 expansion to 16 bits, / 2^15 |
//!
//! - **Containers.** Integer PCM occupies ⌈bits / 8⌉ bytes and is scaled by that container,
//!   as libsndfile reads it: 12 bits in 16, 20 in 24 (plain headers stating them), or an
//!   extensible header's `wValidBitsPerSample` below `wBitsPerSample` (24 in 32, ...) give
//!   the container's value; the unused low bits are read as they are.
//! - **WAVE_FORMAT_EXTENSIBLE** headers take their format from the sub-format GUID
//!   (`KSDATAFORMAT_SUBTYPE_PCM`, `_IEEE_FLOAT`, `_MULAW`, `_ALAW`).
//! - **Byte order.** RIFF, RF64 and BW64 are little-endian; RIFX is big-endian throughout:
//!   every header field, chunk size and sample, and the first three fields of the extensible
//!   GUID (as libsndfile writes and reads it). [`WavInfo::byte_order`] says which: only a
//!   little-endian `I16` file's samples are raw `i16` values ([`decode_i16`]).
//! - **µ-law and A-law** go through the tables of libsndfile's `ulaw.c` and `alaw.c` (the
//!   ITU-T G.711 expansion): the largest magnitudes are 32124 and 32256.
//! - **64-bit PCM** libsndfile does not read at all. melpipe scales it as every other width,
//!   v / 2^63, converting v to f32 with one rounding (to nearest, ties to even) and then
//!   scaling exactly; i64::MAX gives 1.0.
//! - **Several channels**: `Channel::Mix` sums a frame's channels (exactly for integer
//!   PCM, in f64 for floats and for the 64-bit sum, which is exact before its conversion to
//!   f64), divides by their number in f64, scales, and rounds once to f32.
//!
//! # Headers that contradict themselves
//!
//! libsndfile reads some contradictory headers by trusting one field over another; melpipe
//! refuses them with [`WavError::Malformed`], naming the contradiction:
//!
//! - `block align 3, expected 4 for 2 channel(s) of 16 bits`: the block align is not the
//!   container times the channels (a plain 24-bit header with a 4-byte block align is one);
//! - `valid bits 20 exceed the 16-bit container`: extensible valid bits above the bits per
//!   sample (0 means all of them, as in libsndfile);
//! - `mu-law with 16 bits per sample, expected 8` (and `A-law with ...`);
//! - `0 channels`, `sample rate 0`, `fmt chunk is N bytes, needs at least 16`, `extensible
//!   fmt chunk is N bytes, needs 40`.
//!
//! Encodings melpipe does not decode are [`WavError::Unsupported`]: other format tags and
//! sub-format GUIDs (ADPCM, MP3, ...), PCM of 0 or of 33 to 56 bits or over 64, float other
//! than 32 and 64 bits.

mod encode;
#[cfg(test)]
mod tests;

pub use encode::{encode_pcm16, encode_pcm16_into, encode_wav, Chunk, Samples, WavBuilder};

use crate::config::Channel;

/// Sample encoding of a WAV file: the container of one sample and how its value is scaled.
/// The byte order of multi-byte samples is [`WavInfo::byte_order`].
///
/// Integer PCM is named by its container; a header that states fewer valid bits (12 in 16,
/// 20 in 24, ...) gives the container's encoding and its scaling, as libsndfile reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// 8-bit unsigned PCM: (v − 128) / 128.
    U8,
    /// 16-bit signed PCM: v / 32768. With [`ByteOrder::Little`], the layout the reader reads
    /// straight into place.
    I16,
    /// 24-bit signed PCM: v / 2^23.
    I24,
    /// 32-bit signed PCM: v / 2^31.
    I32,
    /// 64-bit signed PCM: v / 2^63, rounded once to f32.
    I64,
    /// IEEE float, 32-bit, as is.
    F32,
    /// IEEE float, 64-bit, rounded to f32.
    F64,
    /// G.711 µ-law, one byte: expanded to 16 bits by libsndfile's table, then / 32768.
    MuLaw,
    /// G.711 A-law, one byte: expanded to 16 bits by libsndfile's table, then / 32768.
    ALaw,
}

impl SampleFormat {
    /// Bytes of one sample of one channel.
    pub fn bytes(self) -> usize {
        match self {
            SampleFormat::U8 | SampleFormat::MuLaw | SampleFormat::ALaw => 1,
            SampleFormat::I16 => 2,
            SampleFormat::I24 => 3,
            SampleFormat::I32 | SampleFormat::F32 => 4,
            SampleFormat::I64 | SampleFormat::F64 => 8,
        }
    }

    /// `wFormatTag` of a plain (non-extensible) header: 1 for PCM, 3 for IEEE float, 6 for
    /// A-law, 7 for µ-law.
    pub fn format_tag(self) -> u16 {
        match self {
            SampleFormat::F32 | SampleFormat::F64 => FORMAT_FLOAT,
            SampleFormat::MuLaw => FORMAT_MULAW,
            SampleFormat::ALaw => FORMAT_ALAW,
            _ => FORMAT_PCM,
        }
    }
}

/// Byte order of a file's header fields and multi-byte samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    /// RIFF, RF64 and BW64 files.
    Little,
    /// RIFX files.
    Big,
}

/// What the header of a WAV file says, checked against the bytes actually present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavInfo {
    /// Sample encoding.
    pub format: SampleFormat,
    /// Byte order of the samples (and of the header): [`ByteOrder::Big`] for RIFX.
    /// Only `I16` samples in [`ByteOrder::Little`] may be copied as they are into an `i16`
    /// buffer.
    pub byte_order: ByteOrder,
    /// Interleaved channels.
    pub channels: u16,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Byte offset of the first sample in the file.
    pub data_offset: usize,
    /// Bytes of sample data present in the file (the declared size, clipped to the file).
    pub data_len: usize,
    /// Complete frames (one sample of every channel) present.
    pub frames: usize,
}

impl WavInfo {
    /// Bytes of one frame (one sample of every channel).
    pub fn block_align(&self) -> usize {
        self.format.bytes() * usize::from(self.channels)
    }
}

/// Why a file could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// The file has no bytes at all.
    #[error("empty file")]
    Empty,
    /// Not a RIFF/WAVE file.
    #[error("not a RIFF/WAVE file")]
    NotRiffWave,
    /// The file ends inside the RIFF header or a chunk header before `data`.
    #[error("truncated header")]
    TruncatedHeader,
    /// No `fmt ` chunk.
    #[error("no fmt chunk")]
    NoFmtChunk,
    /// No `data` chunk.
    #[error("no data chunk")]
    NoDataChunk,
    /// An encoding melpipe does not decode.
    #[error("unsupported encoding: {0}")]
    Unsupported(String),
    /// A header field that cannot be right (0 channels, block align mismatch, ...).
    #[error("malformed header: {0}")]
    Malformed(String),
    /// `channel = N` names a channel the file does not have.
    #[error("channel {requested} requested but the file has {channels}")]
    NoSuchChannel {
        /// The channel asked for.
        requested: u16,
        /// The channels the file has.
        channels: u16,
    },
}

/// `wFormatTag` of integer PCM.
pub const FORMAT_PCM: u16 = 0x0001;
/// `wFormatTag` of IEEE float.
pub const FORMAT_FLOAT: u16 = 0x0003;
/// `wFormatTag` of G.711 A-law.
pub const FORMAT_ALAW: u16 = 0x0006;
/// `wFormatTag` of G.711 µ-law.
pub const FORMAT_MULAW: u16 = 0x0007;
/// `wFormatTag` of WAVE_FORMAT_EXTENSIBLE: the real format is in the sub-format GUID.
pub const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Bytes 2..16 of every `KSDATAFORMAT_SUBTYPE_*` GUID whose first two bytes are a
/// plain `wFormatTag` (PCM, IEEE float, A-law, ...), as stored in a little-endian file. A RIFX
/// file stores the GUID's first three fields big-endian, as libsndfile reads and writes it:
/// `00 00 TT TT 00 00 00 10` then the last 8 of these bytes.
pub const SUBFORMAT_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// A `data` chunk whose size a streaming writer never filled in.
const UNKNOWN_SIZE: u32 = 0xFFFF_FFFF;

fn u16_at(bytes: &[u8], at: usize, order: ByteOrder) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    let b = [b[0], b[1]];
    Some(match order {
        ByteOrder::Little => u16::from_le_bytes(b),
        ByteOrder::Big => u16::from_be_bytes(b),
    })
}

fn u32_at(bytes: &[u8], at: usize, order: ByteOrder) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    let b = [b[0], b[1], b[2], b[3]];
    Some(match order {
        ByteOrder::Little => u32::from_le_bytes(b),
        ByteOrder::Big => u32::from_be_bytes(b),
    })
}

/// The `ds64` chunk's 64-bit sizes (RF64/BW64 only, so always little-endian).
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let lo = u32_at(bytes, at, ByteOrder::Little)?;
    let hi = u32_at(bytes, at.checked_add(4)?, ByteOrder::Little)?;
    Some(u64::from(lo) | (u64::from(hi) << 32))
}

fn fourcc_at(bytes: &[u8], at: usize) -> Option<[u8; 4]> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some([b[0], b[1], b[2], b[3]])
}

/// Chunk ids are four printable ASCII characters; used to recover from writers that
/// leave out the pad byte after an odd-sized chunk.
fn looks_like_fourcc(bytes: &[u8], at: usize) -> bool {
    fourcc_at(bytes, at).is_some_and(|id| id.iter().all(|&c| (0x20..=0x7E).contains(&c)))
}

/// A short name for a `wFormatTag` melpipe does not decode.
fn format_tag_name(tag: u16) -> String {
    let name = match tag {
        0x0000 => "unknown format",
        0x0002 => "MS ADPCM",
        0x0006 => "A-law",
        0x0007 => "mu-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG",
        0x0055 => "MP3",
        0x0092 => "AC-3",
        0x1610 => "AAC",
        0xF1AC => "FLAC",
        _ => return format!("format tag 0x{tag:04X}"),
    };
    format!("{name} (format tag 0x{tag:04X})")
}

/// A GUID as text; `order` is the byte order of its first three fields in the file.
fn guid_string(g: &[u8], order: ByteOrder) -> String {
    let hex = |r: std::ops::Range<usize>| -> String {
        g.get(r)
            .unwrap_or(&[])
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    };
    let rev = |r: std::ops::Range<usize>| -> String {
        if order == ByteOrder::Big {
            return hex(r);
        }
        g.get(r)
            .unwrap_or(&[])
            .iter()
            .rev()
            .map(|b| format!("{b:02X}"))
            .collect()
    };
    format!(
        "{}-{}-{}-{}-{}",
        rev(0..4),
        rev(4..6),
        rev(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// The sub-format tag of an extensible header's GUID, or `None` for a GUID that is not a
/// `KSDATAFORMAT_SUBTYPE_*` of a plain format tag.
fn subformat_tag(guid: &[u8], order: ByteOrder) -> Option<u16> {
    match order {
        ByteOrder::Little if guid.get(2..) == Some(&SUBFORMAT_GUID_TAIL[..]) => {
            Some(u16::from_le_bytes([*guid.first()?, *guid.get(1)?]))
        }
        ByteOrder::Big
            if guid.get(..2) == Some(&[0, 0])
                && guid.get(4..8) == Some(&[0, 0, 0, 0x10])
                && guid.get(8..) == Some(&SUBFORMAT_GUID_TAIL[6..]) =>
        {
            Some(u16::from_be_bytes([*guid.get(2)?, *guid.get(3)?]))
        }
        _ => None,
    }
}

/// Reads a complete `fmt ` chunk body whose fields are in `order`.
///
/// The encoding follows libsndfile: integer PCM takes a container of ⌈bits / 8⌉ bytes
/// (1 to 8 bits read as 8-bit unsigned, 9 to 16 as 16-bit, ...), and an extensible header's
/// valid bits do not change the scaling. A header that contradicts itself is refused where
/// libsndfile would guess: a block align other than the container times the channels,
/// valid bits wider than the container, a µ-law or A-law sample that is not 8 bits.
fn parse_fmt(body: &[u8], order: ByteOrder) -> Result<(SampleFormat, u16, u32), WavError> {
    let too_short = || {
        WavError::Malformed(format!(
            "fmt chunk is {} bytes, needs at least 16",
            body.len()
        ))
    };
    let mut tag = u16_at(body, 0, order).ok_or_else(too_short)?;
    let channels = u16_at(body, 2, order).ok_or_else(too_short)?;
    let sample_rate = u32_at(body, 4, order).ok_or_else(too_short)?;
    let block_align = u16_at(body, 12, order).ok_or_else(too_short)?;
    let bits = u16_at(body, 14, order).ok_or_else(too_short)?;

    // Valid bits of an extensible header; 0 means "all of them", as in libsndfile.
    let mut valid_bits = 0u16;
    if tag == FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) then the 16-byte sub-format GUID.
        let guid = body.get(24..40).ok_or_else(|| {
            WavError::Malformed(format!(
                "extensible fmt chunk is {} bytes, needs 40",
                body.len()
            ))
        })?;
        tag = subformat_tag(guid, order).ok_or_else(|| {
            WavError::Unsupported(format!(
                "extensible sub-format {}",
                guid_string(guid, order)
            ))
        })?;
        valid_bits = u16_at(body, 18, order).unwrap_or(0);
    }
    if !matches!(tag, FORMAT_PCM | FORMAT_FLOAT | FORMAT_MULAW | FORMAT_ALAW) {
        return Err(WavError::Unsupported(format_tag_name(tag)));
    }
    if channels == 0 {
        return Err(WavError::Malformed("0 channels".into()));
    }
    if sample_rate == 0 {
        return Err(WavError::Malformed("sample rate 0".into()));
    }
    let format = match (tag, bits) {
        (FORMAT_PCM, 1..=8) => SampleFormat::U8,
        (FORMAT_PCM, 9..=16) => SampleFormat::I16,
        (FORMAT_PCM, 17..=24) => SampleFormat::I24,
        (FORMAT_PCM, 25..=32) => SampleFormat::I32,
        (FORMAT_PCM, 57..=64) => SampleFormat::I64,
        (FORMAT_PCM, _) => return Err(WavError::Unsupported(format!("{bits}-bit PCM"))),
        (FORMAT_FLOAT, 32) => SampleFormat::F32,
        (FORMAT_FLOAT, 64) => SampleFormat::F64,
        (FORMAT_FLOAT, _) => return Err(WavError::Unsupported(format!("{bits}-bit float"))),
        (FORMAT_MULAW, 8) => SampleFormat::MuLaw,
        (FORMAT_ALAW, 8) => SampleFormat::ALaw,
        (_, _) => {
            let name = if tag == FORMAT_MULAW {
                "mu-law"
            } else {
                "A-law"
            };
            return Err(WavError::Malformed(format!(
                "{name} with {bits} bits per sample, expected 8"
            )));
        }
    };
    if valid_bits > bits {
        return Err(WavError::Malformed(format!(
            "valid bits {valid_bits} exceed the {bits}-bit container"
        )));
    }
    // At most 8 bytes times 65535 channels: no overflow.
    let expected = format.bytes() * usize::from(channels);
    if usize::from(block_align) != expected {
        return Err(WavError::Malformed(format!(
            "block align {block_align}, expected {expected} for {channels} channel(s) of {bits} bits"
        )));
    }
    Ok((format, channels, sample_rate))
}

/// Parses the header of a whole WAV file held in `bytes`.
///
/// Chunks are walked in any order until both `fmt ` and `data` are found; the RIFF size
/// is ignored (writers get it wrong) and a `data` chunk that claims more bytes than the
/// file holds gives the whole frames that are there. RF64/BW64 files are read the same
/// way, with the `ds64` data size when the `data` chunk's own size is 0xFFFFFFFF; RIFX files
/// the same way with every header field big-endian.
pub fn parse(bytes: &[u8]) -> Result<WavInfo, WavError> {
    match walk(bytes, bytes.len()) {
        Ok(Some(info)) => Ok(info),
        // Never happens: with the whole file at hand, no header lies past `bytes`.
        Ok(None) => Err(WavError::TruncatedHeader),
        Err(e) => Err(e),
    }
}

/// Parses the header of a WAV file of `file_len` bytes from its first bytes, `head`: what
/// [`parse`] of the whole file would give, or `None` when a header it needs lies past `head`
/// (the caller then reads the whole file). The samples themselves are never looked at, so a
/// reader can take this header's word on where they are and read them straight into place.
/// An error is the one `parse` gives too, but a caller may just as well read the whole file.
pub fn parse_head(head: &[u8], file_len: usize) -> Result<Option<WavInfo>, WavError> {
    if head.len() > file_len {
        return walk(&head[..file_len], file_len);
    }
    walk(head, file_len)
}

/// [`parse`] over the first `bytes.len()` of a file of `file_len` bytes (`bytes.len() <=
/// file_len`): every size and limit is the file's, and a header that lies past `bytes` gives
/// `Ok(None)`. With the whole file at hand it never does.
fn walk(bytes: &[u8], file_len: usize) -> Result<Option<WavInfo>, WavError> {
    if file_len == 0 {
        return Err(WavError::Empty);
    }
    // The bytes of the file from `at` to `end` (clipped to the file) are all in `bytes`.
    let have = |at: usize, end: usize| end.min(file_len) <= bytes.len() || at >= file_len;
    if !have(0, 12) {
        return Ok(None);
    }
    let head = &bytes[..bytes.len().min(12)];
    let magic = &head[..head.len().min(4)];
    let is_prefix = |of: &[u8]| of.starts_with(magic);
    if !(is_prefix(b"RIFF") || is_prefix(b"RF64") || is_prefix(b"BW64") || is_prefix(b"RIFX")) {
        return Err(WavError::NotRiffWave);
    }
    if head.len() > 8 && !b"WAVE".starts_with(&head[8..]) {
        return Err(WavError::NotRiffWave);
    }
    if head.len() < 12 {
        return Err(WavError::TruncatedHeader);
    }
    let order = if magic == b"RIFX" {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };

    let riff_size = u32_at(bytes, 4, order).unwrap_or(0);
    let mut fmt: Option<(SampleFormat, u16, u32)> = None;
    let mut data: Option<(usize, usize)> = None;
    let mut ds64_data_size: Option<u64> = None;
    let mut truncated = false;
    let mut pos = 12usize;
    // Every turn moves `pos` forward by at least 8, so the walk is O(chunks).
    while fmt.is_none() || data.is_none() {
        let remaining = file_len - pos;
        if remaining == 0 {
            break;
        }
        if remaining < 8 {
            truncated = true;
            break;
        }
        if !have(pos, pos + 8) {
            return Ok(None);
        }
        let (Some(id), Some(size)) = (fourcc_at(bytes, pos), u32_at(bytes, pos + 4, order)) else {
            truncated = true;
            break;
        };
        let body = pos + 8;
        let available = file_len - body;
        let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
        match &id {
            b"data" => {
                let declared = match (size, ds64_data_size) {
                    (UNKNOWN_SIZE, Some(real)) => usize::try_from(real).unwrap_or(usize::MAX),
                    _ => size_usize,
                };
                if data.is_none() {
                    data = Some((body, declared.min(available)));
                }
                if declared >= available {
                    // The samples run to the end of the file: nothing follows them.
                    break;
                }
            }
            b"fmt " => {
                if size_usize > available {
                    truncated = true;
                    break;
                }
                if fmt.is_none() {
                    if !have(body, body + size_usize) {
                        return Ok(None);
                    }
                    fmt = Some(parse_fmt(&bytes[body..body + size_usize], order)?);
                }
            }
            // riffSize(8) dataSize(8) sampleCount(8) ...
            b"ds64" if size >= 16 => {
                if !have(body + 8, body + 16) {
                    return Ok(None);
                }
                ds64_data_size = u64_at(bytes, body + 8);
            }
            _ => {}
        }
        if size_usize > available {
            truncated = true;
            break;
        }
        let mut next = body + size_usize;
        if size % 2 == 1 && next < file_len {
            if !have(next, next + 5) {
                return Ok(None);
            }
            // The pad byte; some writers leave it out, then the next chunk id starts
            // right here instead of one byte later.
            if looks_like_fourcc(bytes, next + 1) || !looks_like_fourcc(bytes, next) {
                next += 1;
            }
        }
        pos = next;
    }

    match (fmt, data) {
        (Some((format, channels, sample_rate)), Some((data_offset, data_len))) => {
            let block_align = format.bytes() * usize::from(channels);
            Ok(Some(WavInfo {
                format,
                byte_order: order,
                channels,
                sample_rate,
                data_offset,
                data_len,
                frames: data_len / block_align,
            }))
        }
        // A walk that ran out of bytes before the RIFF size says the file ends is a cut
        // file, not one that lacks a chunk.
        _ if truncated || u64::from(riff_size) + 8 > file_len as u64 => {
            Err(WavError::TruncatedHeader)
        }
        (None, _) => Err(WavError::NoFmtChunk),
        (Some(_), None) => Err(WavError::NoDataChunk),
    }
}

/// Decodes up to `out.len()` mono frames into `out`, scaled as torchaudio.load and libsndfile
/// do (int / 2^(bits−1) of the container, u8 as (x − 128)/128, float as is, µ-law and A-law
/// expanded to 16 bits then / 32768); returns the number written.
///
/// `Channel::Mix` is the mean of all channels (computed in f64), `Channel::Index(i)`
/// channel `i` alone. `info` must come from [`parse`] of the same `bytes`; an `info` that
/// does not fit `bytes` is an error, never a panic.
pub fn decode(
    info: &WavInfo,
    bytes: &[u8],
    channel: Channel,
    out: &mut [f32],
) -> Result<usize, WavError> {
    let channels = usize::from(info.channels);
    let pick = picked_channel(info, channel)?;
    let n = info.frames.min(out.len());
    let data = frame_bytes(info, bytes, n)?;
    let out = &mut out[..n];

    if info.byte_order == ByteOrder::Big {
        decode_any_order(info.format, ByteOrder::Big, data, out, channels, pick);
        return Ok(n);
    }
    match (info.format, pick) {
        (SampleFormat::U8, Some(c)) => convert::<1>(data, out, channels, c, u8_to_f32),
        (SampleFormat::I16, Some(c)) => convert::<2>(data, out, channels, c, i16_to_f32),
        (SampleFormat::I24, Some(c)) => convert::<3>(data, out, channels, c, i24_to_f32),
        (SampleFormat::I32, Some(c)) => convert::<4>(data, out, channels, c, i32_to_f32),
        (SampleFormat::F32, Some(c)) => convert::<4>(data, out, channels, c, f32_le),
        (SampleFormat::F64, Some(c)) => convert::<8>(data, out, channels, c, f64_to_f32),
        (SampleFormat::U8, None) => mix::<1>(data, out, channels, 1.0 / 128.0, |b| {
            f64::from(b[0]) - 128.0
        }),
        (SampleFormat::I16, None) => mix::<2>(data, out, channels, 1.0 / 32768.0, |b| {
            f64::from(i16::from_le_bytes([b[0], b[1]]))
        }),
        (SampleFormat::I24, None) => {
            mix::<3>(data, out, channels, 1.0 / 8388608.0, |b| f64::from(i24(b)))
        }
        (SampleFormat::I32, None) => mix::<4>(data, out, channels, 1.0 / 2147483648.0, |b| {
            f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }),
        (SampleFormat::F32, None) => mix::<4>(data, out, channels, 1.0, |b| {
            f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }),
        (SampleFormat::F64, None) => mix::<8>(data, out, channels, 1.0, |b| {
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        }),
        (SampleFormat::I64 | SampleFormat::MuLaw | SampleFormat::ALaw, _) => {
            decode_any_order(info.format, ByteOrder::Little, data, out, channels, pick)
        }
    }
    Ok(n)
}

/// Every encoding in either byte order, with the same values as [`decode`]'s little-endian
/// converters. RIFX files, 64-bit PCM, µ-law and A-law are rare, so one generic loop per
/// container serves them all rather than a tuned one each, kept out of line so that
/// [`decode`]'s common path stays as small as it was. `data` holds whole frames only, `out`
/// as many values.
#[inline(never)]
fn decode_any_order(
    format: SampleFormat,
    order: ByteOrder,
    data: &[u8],
    out: &mut [f32],
    channels: usize,
    pick: Option<usize>,
) {
    let big = order == ByteOrder::Big;
    // Sample bytes in little-endian order, whatever the file's.
    let le = |b: &[u8]| -> [u8; 8] {
        let mut v = [0u8; 8];
        for (i, &x) in b.iter().take(8).enumerate() {
            let at = if big { b.len() - 1 - i } else { i };
            v[at] = x;
        }
        v
    };
    match format {
        SampleFormat::U8 => generic::<1>(data, out, channels, pick, 1.0 / 128.0, |b| {
            i64::from(b[0]) - 128
        }),
        SampleFormat::MuLaw => generic::<1>(data, out, channels, pick, 1.0 / 32768.0, |b| {
            i64::from(ULAW_TO_I16[usize::from(b[0])])
        }),
        SampleFormat::ALaw => generic::<1>(data, out, channels, pick, 1.0 / 32768.0, |b| {
            i64::from(ALAW_TO_I16[usize::from(b[0])])
        }),
        SampleFormat::I16 => generic::<2>(data, out, channels, pick, 1.0 / 32768.0, |b| {
            let v = le(b);
            i64::from(i16::from_le_bytes([v[0], v[1]]))
        }),
        SampleFormat::I24 => generic::<3>(data, out, channels, pick, 1.0 / 8388608.0, |b| {
            let v = le(b);
            i64::from(i24(&v[..3]))
        }),
        SampleFormat::I32 => generic::<4>(data, out, channels, pick, 1.0 / 2147483648.0, |b| {
            let v = le(b);
            i64::from(i32::from_le_bytes([v[0], v[1], v[2], v[3]]))
        }),
        SampleFormat::I64 => generic::<8>(data, out, channels, pick, I64_SCALE, |b| {
            i64::from_le_bytes(le(b))
        }),
        SampleFormat::F32 => float::<4>(data, out, channels, pick, |b| {
            let v = le(b);
            f64::from(f32::from_le_bytes([v[0], v[1], v[2], v[3]]))
        }),
        SampleFormat::F64 => float::<8>(data, out, channels, pick, |b| f64::from_le_bytes(le(b))),
    }
}

/// Copies up to `out.len()` frames of a little-endian 16-bit PCM file's channel as raw values
/// (the sample is value / 32768, exactly what [`decode`] gives); returns the number written.
/// `None` when the file is not 16-bit PCM, is big-endian (RIFX), or `channel` needs a mix of
/// several channels: use [`decode`] then.
pub fn decode_i16(
    info: &WavInfo,
    bytes: &[u8],
    channel: Channel,
    out: &mut [i16],
) -> Option<Result<usize, WavError>> {
    let channels = usize::from(info.channels);
    if info.format != SampleFormat::I16 || info.byte_order != ByteOrder::Little || channels == 0 {
        return None;
    }
    let c = match picked_channel(info, channel) {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    let n = info.frames.min(out.len());
    let data = match frame_bytes(info, bytes, n) {
        Ok(d) => d,
        Err(e) => return Some(Err(e)),
    };
    let stride = 2 * channels;
    for (o, frame) in out[..n].iter_mut().zip(data.chunks_exact(stride)) {
        *o = i16::from_le_bytes([frame[2 * c], frame[2 * c + 1]]);
    }
    Some(Ok(n))
}

/// The channel `channel` takes from `info`'s frames: `Some(i)` for one channel (a mono file's
/// only one), `None` for a mix of several.
fn picked_channel(info: &WavInfo, channel: Channel) -> Result<Option<usize>, WavError> {
    if info.channels == 0 {
        return Err(WavError::Malformed("0 channels".into()));
    }
    match channel {
        Channel::Index(i) if i >= info.channels => Err(WavError::NoSuchChannel {
            requested: i,
            channels: info.channels,
        }),
        Channel::Index(i) => Ok(Some(usize::from(i))),
        Channel::Mix if info.channels == 1 => Ok(Some(0)),
        Channel::Mix => Ok(None),
    }
}

/// The bytes of the first `n` frames of the data chunk; an error if the header does not fit.
fn frame_bytes<'a>(info: &WavInfo, bytes: &'a [u8], n: usize) -> Result<&'a [u8], WavError> {
    n.checked_mul(info.block_align())
        .and_then(|len| bytes.get(info.data_offset..info.data_offset.checked_add(len)?))
        .ok_or_else(|| WavError::Malformed("header does not match the file's bytes".into()))
}

// Per-sample converters. Every scale is a power of two, so `x * 2^-k` is exactly torchaudio's
// `x / 2^k` (int32 first rounds to f32, as torch's `.to(float32)` does).
#[inline(always)]
fn u8_to_f32(b: &[u8]) -> f32 {
    (f32::from(b[0]) - 128.0) * (1.0 / 128.0)
}
#[inline(always)]
fn i16_to_f32(b: &[u8]) -> f32 {
    f32::from(i16::from_le_bytes([b[0], b[1]])) * (1.0 / 32768.0)
}
#[inline(always)]
fn i24(b: &[u8]) -> i32 {
    // Assemble in the top three bytes, then shift back to sign-extend.
    i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8
}
#[inline(always)]
fn i24_to_f32(b: &[u8]) -> f32 {
    i24(b) as f32 * (1.0 / 8388608.0)
}
#[inline(always)]
fn i32_to_f32(b: &[u8]) -> f32 {
    i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 * (1.0 / 2147483648.0)
}
#[inline(always)]
fn f32_le(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
#[inline(always)]
fn f64_to_f32(b: &[u8]) -> f32 {
    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
}

/// 2^-63: the scale of 64-bit PCM.
const I64_SCALE: f64 = 1.0 / 9_223_372_036_854_775_808.0;

/// Integer samples of `N` bytes whose value `raw` gives, times `scale` (a power of two). One
/// channel: the value rounds once to f32 and the scaling is exact, as in the little-endian
/// converters. A mix: the sum is exact (i128), then as [`mix`] does, the mean in f64 and one
/// more rounding to f32; the sum's conversion to f64 is exact for every container but 64-bit.
fn generic<const N: usize>(
    data: &[u8],
    out: &mut [f32],
    channels: usize,
    pick: Option<usize>,
    scale: f64,
    raw: impl Fn(&[u8]) -> i64,
) {
    match pick {
        Some(c) => {
            // Powers of two from 2^-7 to 2^-63: exact in f32.
            let scale = scale as f32;
            convert::<N>(data, out, channels, c, |b| raw(b) as f32 * scale);
        }
        None => {
            let count = channels as f64;
            for (o, frame) in out.iter_mut().zip(data.chunks_exact(channels * N)) {
                let sum: i128 = frame.chunks_exact(N).map(|b| i128::from(raw(b))).sum();
                *o = (sum as f64 / count * scale) as f32;
            }
        }
    }
}

/// Float samples of `N` bytes whose value `raw` gives: one channel rounded to f32, or the mean
/// as [`mix`] computes it.
fn float<const N: usize>(
    data: &[u8],
    out: &mut [f32],
    channels: usize,
    pick: Option<usize>,
    raw: impl Fn(&[u8]) -> f64,
) {
    match pick {
        Some(c) => convert::<N>(data, out, channels, c, |b| raw(b) as f32),
        None => mix::<N>(data, out, channels, 1.0, raw),
    }
}

/// G.711 µ-law code → 16-bit value, as libsndfile's `ulaw_decode` table holds it (the
/// ITU-T G.711 expansion: a 14-bit value shifted up by 2).
static ULAW_TO_I16: [i16; 256] = ulaw_table();

/// G.711 A-law code → 16-bit value, as libsndfile's `alaw_decode` table holds it (the
/// ITU-T G.711 expansion: a 13-bit value shifted up by 3).
static ALAW_TO_I16: [i16; 256] = alaw_table();

const fn ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        let x = !(code as u8);
        let magnitude = ((((x & 0x0F) as i32) << 3) + 0x84) << ((x & 0x70) >> 4);
        table[code] = if x & 0x80 != 0 {
            (0x84 - magnitude) as i16
        } else {
            (magnitude - 0x84) as i16
        };
        code += 1;
    }
    table
}

const fn alaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        let x = (code as u8) ^ 0x55;
        let segment = (x & 0x70) >> 4;
        let mut magnitude = ((x & 0x0F) as i32) << 4;
        magnitude = match segment {
            0 => magnitude + 8,
            1 => magnitude + 0x108,
            _ => (magnitude + 0x108) << (segment - 1),
        };
        table[code] = if x & 0x80 != 0 {
            magnitude as i16
        } else {
            -magnitude as i16
        };
        code += 1;
    }
    table
}

/// One channel (`c`) of `channels`, `N` bytes a sample. The mono case is the hot path
/// (every seed file): a straight zip over fixed-size chunks that LLVM vectorizes.
#[inline(always)]
fn convert<const N: usize>(
    data: &[u8],
    out: &mut [f32],
    channels: usize,
    c: usize,
    f: impl Fn(&[u8]) -> f32,
) {
    if channels == 1 {
        for (o, s) in out.iter_mut().zip(data.chunks_exact(N)) {
            *o = f(s);
        }
    } else {
        let at = c * N;
        for (o, frame) in out.iter_mut().zip(data.chunks_exact(channels * N)) {
            *o = f(&frame[at..at + N]);
        }
    }
}

/// The mean of all channels: summed in f64 (exactly, for integer PCM), scaled, then rounded
/// to f32.
#[inline(always)]
fn mix<const N: usize>(
    data: &[u8],
    out: &mut [f32],
    channels: usize,
    scale: f64,
    raw: impl Fn(&[u8]) -> f64,
) {
    let count = channels as f64;
    for (o, frame) in out.iter_mut().zip(data.chunks_exact(channels * N)) {
        let sum: f64 = frame.chunks_exact(N).map(&raw).sum();
        *o = (sum / count * scale) as f32;
    }
}
