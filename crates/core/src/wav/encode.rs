//! Writing WAV files: the plain 16-bit writer `melpipe generate` uses for every clip, and
//! [`WavBuilder`] for any supported encoding and for files that are odd on purpose (tests,
//! `generate --corrupt`).

use super::{ByteOrder, SampleFormat, FORMAT_EXTENSIBLE, FORMAT_PCM, SUBFORMAT_GUID_TAIL};

/// Interleaved samples of one encoding: the payload of a `data` chunk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Samples<'a> {
    /// 8-bit unsigned PCM (128 is zero).
    U8(&'a [u8]),
    /// 16-bit signed PCM.
    I16(&'a [i16]),
    /// 24-bit signed PCM, one sample in the low 24 bits of each value.
    I24(&'a [i32]),
    /// 32-bit signed PCM.
    I32(&'a [i32]),
    /// 64-bit signed PCM.
    I64(&'a [i64]),
    /// IEEE float, 32-bit.
    F32(&'a [f32]),
    /// IEEE float, 64-bit.
    F64(&'a [f64]),
    /// G.711 µ-law codes.
    MuLaw(&'a [u8]),
    /// G.711 A-law codes.
    ALaw(&'a [u8]),
}

impl Samples<'_> {
    /// The encoding these samples are written in.
    pub fn format(&self) -> SampleFormat {
        match self {
            Samples::U8(_) => SampleFormat::U8,
            Samples::I16(_) => SampleFormat::I16,
            Samples::I24(_) => SampleFormat::I24,
            Samples::I32(_) => SampleFormat::I32,
            Samples::I64(_) => SampleFormat::I64,
            Samples::F32(_) => SampleFormat::F32,
            Samples::F64(_) => SampleFormat::F64,
            Samples::MuLaw(_) => SampleFormat::MuLaw,
            Samples::ALaw(_) => SampleFormat::ALaw,
        }
    }

    /// Number of samples (all channels together).
    pub fn len(&self) -> usize {
        match self {
            Samples::U8(s) | Samples::MuLaw(s) | Samples::ALaw(s) => s.len(),
            Samples::I16(s) => s.len(),
            Samples::I64(s) => s.len(),
            Samples::I24(s) | Samples::I32(s) => s.len(),
            Samples::F32(s) => s.len(),
            Samples::F64(s) => s.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples as the little-endian bytes of a `data` chunk.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * self.format().bytes());
        match self {
            Samples::U8(s) | Samples::MuLaw(s) | Samples::ALaw(s) => out.extend_from_slice(s),
            Samples::I16(s) => s
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Samples::I24(s) => s
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()[..3])),
            Samples::I32(s) => s
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Samples::I64(s) => s
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Samples::F32(s) => s
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Samples::F64(s) => s
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
        out
    }
}

/// One chunk of a file built by [`WavBuilder`], in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// The `fmt ` chunk made from the builder's header fields.
    Fmt,
    /// The `data` chunk holding the samples.
    Data,
    /// Any other chunk (`LIST`, `fact`, `bext`, `JUNK`, ...); an odd size gets its pad byte.
    Other {
        /// Chunk id, e.g. `*b"LIST"`.
        id: [u8; 4],
        /// Chunk body, without the pad byte.
        body: Vec<u8>,
    },
    /// Bytes written verbatim: a broken chunk, a chunk without its pad byte, garbage.
    Raw(Vec<u8>),
}

impl Chunk {
    /// A chunk with this id and body (padded when odd).
    pub fn other(id: &[u8; 4], body: impl Into<Vec<u8>>) -> Self {
        Chunk::Other {
            id: *id,
            body: body.into(),
        }
    }
}

/// Writes a WAV file byte by byte as told: any supported encoding, plain or
/// WAVE_FORMAT_EXTENSIBLE headers, little-endian RIFF or big-endian RIFX, extra chunks in any
/// order, and wrong header fields on purpose (format tag, block align, valid bits, declared
/// sizes).
#[derive(Clone, Debug, PartialEq)]
pub struct WavBuilder {
    riff_id: [u8; 4],
    format_tag: u16,
    channels: u16,
    sample_rate: u32,
    bits_per_sample: u16,
    block_align: u16,
    extensible: bool,
    valid_bits: Option<u16>,
    order: ByteOrder,
    /// Bytes of one sample of `data`, reversed one by one for a big-endian file; 1 once the
    /// data was given as bytes.
    sample_bytes: usize,
    data: Vec<u8>,
    layout: Vec<Chunk>,
    data_size: Option<u32>,
    riff_size: Option<u32>,
}

impl WavBuilder {
    /// A plain, correct file of `samples` (interleaved, `channels` per frame): the
    /// format tag, bit depth and block align follow the samples' encoding, and the
    /// chunks are `fmt ` then `data`.
    pub fn new(channels: u16, sample_rate: u32, samples: Samples<'_>) -> Self {
        let format = samples.format();
        let bytes = format.bytes();
        WavBuilder {
            riff_id: *b"RIFF",
            format_tag: format.format_tag(),
            channels,
            sample_rate,
            bits_per_sample: (bytes * 8) as u16,
            block_align: u16::try_from(bytes * usize::from(channels)).unwrap_or(u16::MAX),
            extensible: false,
            valid_bits: None,
            order: ByteOrder::Little,
            sample_bytes: bytes,
            data: samples.to_le_bytes(),
            layout: vec![Chunk::Fmt, Chunk::Data],
            data_size: None,
            riff_size: None,
        }
    }

    /// Writes `id` instead of `RIFF` (e.g. `RF64`); the byte order does not change.
    pub fn riff_id(mut self, id: &[u8; 4]) -> Self {
        self.riff_id = *id;
        self
    }

    /// A big-endian RIFX file (`ByteOrder::Big`: the id `RIFX`, every header field and every
    /// sample big-endian, an extensible GUID as libsndfile writes it) or a little-endian
    /// RIFF file.
    pub fn byte_order(mut self, order: ByteOrder) -> Self {
        self.order = order;
        self.riff_id = match order {
            ByteOrder::Little => *b"RIFF",
            ByteOrder::Big => *b"RIFX",
        };
        self
    }

    /// `wValidBitsPerSample` of an extensible header (default: the bits per sample).
    pub fn valid_bits(mut self, bits: u16) -> Self {
        self.valid_bits = Some(bits);
        self
    }

    /// The `wFormatTag` (or, when extensible, the sub-format's tag), e.g. 6 for A-law.
    pub fn format_tag(mut self, tag: u16) -> Self {
        self.format_tag = tag;
        self
    }

    /// `wBitsPerSample` (block align is not changed).
    pub fn bits_per_sample(mut self, bits: u16) -> Self {
        self.bits_per_sample = bits;
        self
    }

    /// `nBlockAlign`.
    pub fn block_align(mut self, align: u16) -> Self {
        self.block_align = align;
        self
    }

    /// `nChannels` (block align is not changed).
    pub fn channels(mut self, channels: u16) -> Self {
        self.channels = channels;
        self
    }

    /// Writes a 40-byte WAVE_FORMAT_EXTENSIBLE `fmt ` chunk whose sub-format GUID carries
    /// the format tag.
    pub fn extensible(mut self, extensible: bool) -> Self {
        self.extensible = extensible;
        self
    }

    /// Replaces the `data` payload with these bytes (e.g. a partial frame), written as they
    /// are in either byte order.
    pub fn data_bytes(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self.sample_bytes = 1;
        self
    }

    /// The chunks in file order (default: `[Fmt, Data]`).
    pub fn layout(mut self, layout: Vec<Chunk>) -> Self {
        self.layout = layout;
        self
    }

    /// Appends a chunk after the current layout.
    pub fn chunk(mut self, chunk: Chunk) -> Self {
        self.layout.push(chunk);
        self
    }

    /// Declares this `data` size instead of the real one (a streaming writer's
    /// 0xFFFFFFFF, or a file cut short after writing).
    pub fn declared_data_size(mut self, size: u32) -> Self {
        self.data_size = Some(size);
        self
    }

    /// Declares this RIFF size instead of the real one.
    pub fn riff_size(mut self, size: u32) -> Self {
        self.riff_size = Some(size);
        self
    }

    fn fmt_body(&self) -> Vec<u8> {
        let tag = if self.extensible {
            FORMAT_EXTENSIBLE
        } else {
            self.format_tag
        };
        let byte_rate = self.sample_rate.saturating_mul(u32::from(self.block_align));
        let big = self.order == ByteOrder::Big;
        let u16b = |x: u16| {
            if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        };
        let u32b = |x: u32| {
            if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        };
        let mut body = Vec::with_capacity(40);
        body.extend_from_slice(&u16b(tag));
        body.extend_from_slice(&u16b(self.channels));
        body.extend_from_slice(&u32b(self.sample_rate));
        body.extend_from_slice(&u32b(byte_rate));
        body.extend_from_slice(&u16b(self.block_align));
        body.extend_from_slice(&u16b(self.bits_per_sample));
        if self.extensible {
            let mask: u32 = match self.channels {
                0 => 0,
                c if c >= 32 => u32::MAX,
                c => (1u32 << c) - 1,
            };
            body.extend_from_slice(&u16b(22));
            body.extend_from_slice(&u16b(self.valid_bits.unwrap_or(self.bits_per_sample)));
            body.extend_from_slice(&u32b(mask));
            if big {
                // The GUID's u32, u16, u16 fields big-endian, then its 8 bytes as they are.
                body.extend_from_slice(&u32::from(self.format_tag).to_be_bytes());
                body.extend_from_slice(&[0x00, 0x00, 0x00, 0x10]);
                body.extend_from_slice(&SUBFORMAT_GUID_TAIL[6..]);
            } else {
                body.extend_from_slice(&self.format_tag.to_le_bytes());
                body.extend_from_slice(&SUBFORMAT_GUID_TAIL);
            }
        } else if self.format_tag != FORMAT_PCM {
            // Non-PCM formats carry cbSize (0 here): an 18-byte fmt chunk.
            body.extend_from_slice(&0u16.to_le_bytes());
        }
        body
    }

    /// The bytes of the file.
    pub fn build(&self) -> Vec<u8> {
        let big = self.order == ByteOrder::Big;
        let u32b = |x: u32| {
            if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        };
        let mut out = Vec::with_capacity(self.data.len() + 128);
        out.extend_from_slice(&self.riff_id);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(b"WAVE");
        let put = |out: &mut Vec<u8>, id: &[u8; 4], size: u32, body: &[u8]| {
            out.extend_from_slice(id);
            out.extend_from_slice(&u32b(size));
            out.extend_from_slice(body);
            if body.len() % 2 == 1 {
                out.push(0);
            }
        };
        for chunk in &self.layout {
            match chunk {
                Chunk::Fmt => {
                    let body = self.fmt_body();
                    put(&mut out, b"fmt ", body.len() as u32, &body);
                }
                Chunk::Data => {
                    let size = self.data_size.unwrap_or(self.data.len() as u32);
                    if big && self.sample_bytes > 1 {
                        let mut data = self.data.clone();
                        data.chunks_exact_mut(self.sample_bytes)
                            .for_each(|s| s.reverse());
                        put(&mut out, b"data", size, &data);
                    } else {
                        put(&mut out, b"data", size, &self.data);
                    }
                }
                Chunk::Other { id, body } => put(&mut out, id, body.len() as u32, body),
                Chunk::Raw(bytes) => out.extend_from_slice(bytes),
            }
        }
        let riff_size = self
            .riff_size
            .unwrap_or(u32::try_from(out.len() - 8).unwrap_or(u32::MAX));
        out[4..8].copy_from_slice(&u32b(riff_size));
        out
    }
}

/// A plain WAV file of `samples` (interleaved, `channels` per frame) in their encoding.
pub fn encode_wav(channels: u16, sample_rate: u32, samples: Samples<'_>) -> Vec<u8> {
    WavBuilder::new(channels, sample_rate, samples).build()
}

/// A plain 16-bit PCM WAV file (44-byte header) of interleaved `samples`.
pub fn encode_pcm16(channels: u16, sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_pcm16_into(&mut out, channels, sample_rate, samples);
    out
}

/// [`encode_pcm16`] into a reused buffer (cleared first): the generator's hot path.
pub fn encode_pcm16_into(out: &mut Vec<u8>, channels: u16, sample_rate: u32, samples: &[i16]) {
    const HEADER: usize = 44;
    let data_len = samples.len() * 2;
    let block_align = channels.saturating_mul(2);
    let byte_rate = sample_rate.saturating_mul(u32::from(block_align));
    let sat = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    out.clear();
    out.reserve(HEADER + data_len);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&sat(HEADER - 8 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&FORMAT_PCM.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&byte_rate.to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&sat(data_len).to_le_bytes());
    out.resize(HEADER + data_len, 0);
    for (b, s) in out[HEADER..].chunks_exact_mut(2).zip(samples) {
        b.copy_from_slice(&s.to_le_bytes());
    }
}
