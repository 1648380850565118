//! WAV (RIFF/WAVE) parsing by walking chunks (SPEC §4), and decoding to mono f32 samples.
//!
//! TODO(wav helper): implement. The interface below is what the pipeline uses.

use crate::config::Channel;

/// Sample encoding of a WAV file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// 8-bit unsigned PCM.
    U8,
    /// 16-bit signed PCM.
    I16,
    /// 24-bit signed PCM.
    I24,
    /// 32-bit signed PCM.
    I32,
    /// IEEE float, 32-bit.
    F32,
    /// IEEE float, 64-bit.
    F64,
}

/// What the header of a WAV file says, checked against the bytes actually present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavInfo {
    /// Sample encoding.
    pub format: SampleFormat,
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

/// Why a file could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
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

/// Parses the header of a whole WAV file held in `bytes`.
pub fn parse(bytes: &[u8]) -> Result<WavInfo, WavError> {
    let _ = bytes;
    todo!("wav::parse")
}

/// Decodes up to `out.len()` mono frames into `out`, scaled as torchaudio.load does
/// (int / 2^(bits−1), u8 as (x − 128)/128, float as is); returns the number written.
pub fn decode(
    info: &WavInfo,
    bytes: &[u8],
    channel: Channel,
    out: &mut [f32],
) -> Result<usize, WavError> {
    let _ = (info, bytes, channel, out);
    todo!("wav::decode")
}
