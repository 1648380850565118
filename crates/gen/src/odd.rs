//! The unusual and malformed files of `corrupt`: each kind, the status the pipeline must
//! give it, and its bytes.

use crate::synth::{quantize_i16, synthesize, Rng, Signal, SineTable};
use melpipe_core::manifest::FileStatus;
use melpipe_core::wav::{self, Chunk, Samples, WavBuilder, WavError};

/// An unusual file added by `corrupt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OddKind {
    /// An ID3 header and no audio after it, named `.wav`: fails as not audio.
    NotRiff,
    /// The first few bytes of a WAV file: fails.
    TruncatedHeader,
    /// `fmt ` and `LIST` but no `data`: fails.
    NoDataChunk,
    /// `LIST` and `data` but no `fmt `: fails.
    NoFmtChunk,
    /// A valid file at another sample rate: fails.
    WrongSampleRate,
    /// G.711 A-law encoding: ok (expanded to 16 bits as libsndfile does).
    ALaw,
    /// Zero bytes: fails.
    ZeroBytes,
    /// Fewer samples than a clip: padded.
    Short,
    /// More samples than a clip: truncated.
    Long,
    /// Two channels: ok (mixed or picked).
    Stereo,
    /// 24-bit PCM: ok.
    Pcm24,
    /// 32-bit float: ok.
    Float32,
    /// A `LIST` chunk before `fmt `, and an upper-case `.WAV` name: ok.
    ListBeforeFmt,
    /// An odd-sized chunk (with its pad byte) before `data`: ok.
    OddChunk,
    /// WAVE_FORMAT_EXTENSIBLE header: ok.
    Extensible,
    /// `data` before `fmt `: ok.
    DataBeforeFmt,
    /// A streaming writer's sizes (0xFFFFFFFF for RIFF and `data`): ok.
    StreamingSizes,
}

impl OddKind {
    /// The kinds `corrupt` cycles through, in order.
    pub const ALL: [OddKind; 17] = [
        OddKind::NotRiff,
        OddKind::TruncatedHeader,
        OddKind::NoDataChunk,
        OddKind::NoFmtChunk,
        OddKind::WrongSampleRate,
        OddKind::ALaw,
        OddKind::ZeroBytes,
        OddKind::Short,
        OddKind::Long,
        OddKind::Stereo,
        OddKind::Pcm24,
        OddKind::Float32,
        OddKind::ListBeforeFmt,
        OddKind::OddChunk,
        OddKind::Extensible,
        OddKind::DataBeforeFmt,
        OddKind::StreamingSizes,
    ];

    /// Its name in file names and reports.
    pub fn name(self) -> &'static str {
        match self {
            OddKind::NotRiff => "not_riff",
            OddKind::TruncatedHeader => "truncated_header",
            OddKind::NoDataChunk => "no_data_chunk",
            OddKind::NoFmtChunk => "no_fmt_chunk",
            OddKind::WrongSampleRate => "wrong_sample_rate",
            OddKind::ALaw => "alaw",
            OddKind::ZeroBytes => "zero_bytes",
            OddKind::Short => "short",
            OddKind::Long => "long",
            OddKind::Stereo => "stereo",
            OddKind::Pcm24 => "pcm24",
            OddKind::Float32 => "float32",
            OddKind::ListBeforeFmt => "list_before_fmt",
            OddKind::OddChunk => "odd_chunk",
            OddKind::Extensible => "extensible",
            OddKind::DataBeforeFmt => "data_before_fmt",
            OddKind::StreamingSizes => "streaming_sizes",
        }
    }

    /// Sample frames to write and the status the pipeline must record, for clips of `n`
    /// samples at `sample_rate`; `rng` draws the length of a short or long file.
    pub(crate) fn planned(self, rng: &mut Rng, n: usize, sample_rate: u32) -> (usize, FileStatus) {
        let fail = |e: WavError| FileStatus::Failed {
            reason: e.to_string(),
        };
        match self {
            OddKind::NotRiff => (
                0,
                FileStatus::Failed {
                    reason: melpipe_core::decode::NOT_AUDIO.into(),
                },
            ),
            OddKind::TruncatedHeader => (0, fail(WavError::TruncatedHeader)),
            OddKind::NoDataChunk => (0, fail(WavError::NoDataChunk)),
            OddKind::NoFmtChunk => (n, fail(WavError::NoFmtChunk)),
            OddKind::ZeroBytes => (0, fail(WavError::Empty)),
            OddKind::WrongSampleRate => (
                n,
                FileStatus::Failed {
                    // Worded as the read stage words it; the read-stage test in lib.rs holds them together.
                    reason: format!(
                        "sample rate {} Hz, expected {} Hz",
                        other_rate(sample_rate),
                        sample_rate
                    ),
                },
            ),
            OddKind::Short => {
                let len = n / 4 + rng.below(n - n / 4);
                let missing_samples = (n - len) as u64;
                (len, FileStatus::Padded { missing_samples })
            }
            OddKind::Long => {
                let len = n + 1 + rng.below(n / 2);
                let dropped_samples = (len - n) as u64;
                (len, FileStatus::Truncated { dropped_samples })
            }
            _ => (n, FileStatus::Ok),
        }
    }
}

fn other_rate(rate: u32) -> u32 {
    if rate == 8000 {
        16000
    } else {
        8000
    }
}

impl OddKind {
    /// The bytes of a file of this kind with `frames` sample frames, for a dataset at
    /// `rate`; `signal` and `pcm` are scratch.
    pub(crate) fn file(
        self,
        rng: &mut Rng,
        rate: u32,
        frames: usize,
        table: &SineTable,
        signal: &mut Vec<f32>,
        pcm: &mut Vec<i16>,
    ) -> Vec<u8> {
        let fs = f64::from(rate);
        let mut clip = |rng: &mut Rng, frames: usize| -> Vec<i16> {
            synthesize(Signal::Mixture, rng, fs, table, frames, signal);
            quantize_i16(signal, pcm);
            pcm.clone()
        };
        let list = Chunk::other(b"LIST", b"INFOISFT\x0e\0\0\0Lavf58.76.100\0".to_vec());
        match self {
            OddKind::NotRiff => {
                let mut bytes = b"ID3\x04\0\0\0\0\0\0\xff\xfb\x90\x64".to_vec();
                bytes.extend((0..4096).map(|_| rng.next_u64() as u8));
                bytes
            }
            OddKind::TruncatedHeader => {
                let full = wav::encode_pcm16(1, rate, &clip(rng, 64));
                full[..4 + rng.below(40)].to_vec()
            }
            OddKind::NoDataChunk => WavBuilder::new(1, rate, Samples::I16(&[]))
                .layout(vec![Chunk::Fmt, list])
                .build(),
            OddKind::NoFmtChunk => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
                .layout(vec![list, Chunk::Data])
                .build(),
            OddKind::WrongSampleRate => wav::encode_pcm16(1, other_rate(rate), &clip(rng, frames)),
            OddKind::ALaw => {
                let codes: Vec<u8> = clip(rng, frames).iter().map(|&s| alaw(s)).collect();
                WavBuilder::new(1, rate, Samples::ALaw(&codes))
                    .chunk(Chunk::other(b"fact", (frames as u32).to_le_bytes()))
                    .build()
            }
            OddKind::ZeroBytes => Vec::new(),
            OddKind::Short | OddKind::Long => wav::encode_pcm16(1, rate, &clip(rng, frames)),
            OddKind::Stereo => {
                let left = clip(rng, frames);
                let right = clip(rng, frames);
                let both: Vec<i16> = left
                    .iter()
                    .zip(&right)
                    .flat_map(|(&l, &r)| [l, r])
                    .collect();
                wav::encode_pcm16(2, rate, &both)
            }
            OddKind::Pcm24 => {
                synthesize(Signal::Mixture, rng, fs, table, frames, signal);
                let s: Vec<i32> = signal
                    .iter()
                    .map(|&x| {
                        (f64::from(x) * 8_388_607.0)
                            .round()
                            .clamp(-8_388_608.0, 8_388_607.0) as i32
                    })
                    .collect();
                wav::encode_wav(1, rate, Samples::I24(&s))
            }
            OddKind::Float32 => {
                synthesize(Signal::Mixture, rng, fs, table, frames, signal);
                signal.iter_mut().for_each(|x| *x = x.clamp(-1.0, 1.0));
                WavBuilder::new(1, rate, Samples::F32(signal))
                    .chunk(Chunk::other(b"fact", (frames as u32).to_le_bytes()))
                    .build()
            }
            OddKind::ListBeforeFmt => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
                .layout(vec![list, Chunk::Fmt, Chunk::Data])
                .build(),
            OddKind::OddChunk => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
                .layout(vec![
                    Chunk::Fmt,
                    Chunk::other(b"note", *b"odd-sized"),
                    Chunk::Data,
                ])
                .build(),
            OddKind::Extensible => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
                .extensible(true)
                .build(),
            OddKind::DataBeforeFmt => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
                .layout(vec![Chunk::Data, Chunk::Fmt])
                .build(),
            OddKind::StreamingSizes => WavBuilder::new(1, rate, Samples::I16(&clip(rng, frames)))
                .riff_size(u32::MAX)
                .declared_data_size(u32::MAX)
                .build(),
        }
    }
}

/// G.711 A-law code of a 16-bit sample.
fn alaw(sample: i16) -> u8 {
    let (sign, mut x) = if sample >= 0 {
        (0x80u8, i32::from(sample) >> 3)
    } else {
        (0u8, (-i32::from(sample) - 1) >> 3)
    };
    let mut exponent = 0u8;
    while x > 0x1F && exponent < 7 {
        x >>= 1;
        exponent += 1;
    }
    let mantissa = (if exponent == 0 { x >> 1 } else { x & 0x0F }) as u8;
    (sign | (exponent << 4) | (mantissa & 0x0F)) ^ 0x55
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alaw_encodes_known_codes() {
        // G.711 reference points: 0 → 0xD5, -1 → 0x55 (with the 0x55 inversion).
        assert_eq!(alaw(0), 0xD5);
        assert_eq!(alaw(-8), 0x55);
        assert_eq!(alaw(i16::MAX), 0xAA);
        assert_eq!(alaw(i16::MIN), 0x2A);
    }
}
