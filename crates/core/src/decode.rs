//! Inputs that are not WAV: FLAC, MP3, Ogg Vorbis and AIFF, decoded with symphonia (pure Rust)
//! into mono f32 samples (docs/FORMAT.md, Inputs).
//!
//! What a file holds is told from its bytes ([`is_wav`]): WAV goes to the chunk-walking parser
//! of [`crate::wav`], everything else here, whatever its name says. Integer samples are scaled
//! as the WAV parser scales them (`value / 2^(bits−1)`), float samples are kept; a mix of
//! channels is their mean, summed in f64.
//!
//! A file is untrusted data. Decoding never panics (a panic inside the decoder is caught and
//! the file fails), never allocates from a size a header states (what is kept is bounded by
//! `max_frames`, what is decoded by [`MAX_FRAMES`], the number of packets by the file's
//! bytes), and stops at the first damage:
//! a stream cut in the middle or a frame that does not decode keeps what decoded before it,
//! and says why it stopped ([`Decoded::damage`]).

use crate::config::Channel;
use std::io::Cursor;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

/// The reason of a file that is neither WAV nor a format symphonia recognises.
pub const NOT_AUDIO: &str = "not an audio file melpipe reads (WAV, FLAC, MP3, Ogg Vorbis, AIFF)";

/// The most frames a file may decode to (2^28: 1 GiB of f32 samples, 93 minutes at 48 kHz, the
/// longest segment a run takes): a few bytes of FLAC can claim hours of silence, and decoding
/// them just to count them would take as long.
pub const MAX_FRAMES: usize = 1 << 28;

/// What decoding a file gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The codec, as symphonia names it: `flac`, `mp3`, `vorbis`, `pcm_s16be`, ...
    pub codec: &'static str,
    /// The file's own sample rate, Hz.
    pub sample_rate: u32,
    /// The file's channels.
    pub channels: u16,
    /// Frames the stream decoded to, at the file's rate (up to the damage, if any); the first
    /// `max_frames` of them were appended to the output.
    pub frames: usize,
    /// Why decoding stopped before the end of the stream, when it did: the frames before the
    /// damage are the file's samples.
    pub damage: Option<String>,
}

/// Whether `bytes` start like a WAV file (RIFF, RF64, BW64 or RIFX, then WAVE): those go to
/// [`crate::wav`]. A file too short to tell counts as WAV, whose parser then says what is
/// wrong with it.
pub fn is_wav(bytes: &[u8]) -> bool {
    let magic = &bytes[..bytes.len().min(4)];
    let riff = [&b"RIFF"[..], b"RF64", b"BW64", b"RIFX"]
        .iter()
        .any(|m| m.starts_with(magic));
    riff && (bytes.len() <= 8 || b"WAVE".starts_with(&bytes[8..bytes.len().min(12)]))
}

/// Decodes a whole file held in `bytes` into mono samples appended to `out`: channel `channel`
/// alone, or the mean of all of them. The first `max_frames` frames are kept, the rest decoded
/// only to be counted. `ext` (the file
/// name's extension) only helps to find the format of a stream without a header (MP3).
///
/// An error is a reason a user reads: the file is not audio melpipe knows, its codec is not one
/// melpipe decodes, its header is unusable, it holds no channel `channel`, or it is damaged
/// before its first sample.
pub fn decode(
    bytes: &[u8],
    ext: Option<&str>,
    channel: Channel,
    max_frames: usize,
    out: &mut Vec<f32>,
) -> Result<Decoded, String> {
    decode_keeping(bytes, ext, channel, &|_| Some(max_frames), out).map_err(|f| f.reason)
}

/// Why a file could not be decoded, with what its header said when it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The reason, in words.
    pub reason: String,
    /// Codec, sample rate and channels, when the header gave them.
    pub header: Option<(&'static str, u32, u16)>,
}

/// [`decode`], keeping the first `keep(rate)` frames, `rate` being the file's sample rate (a
/// reader that resamples a fixed clip keeps what the clip needs at that rate). `None` stops
/// at the first decoded packet, for a file that will not be used: its header is what counts
/// then (`frames` is only what that packet held).
pub fn decode_keeping(
    bytes: &[u8],
    ext: Option<&str>,
    channel: Channel,
    keep: &dyn Fn(u32) -> Option<usize>,
    out: &mut Vec<f32>,
) -> Result<Decoded, Failure> {
    let start = out.len();
    let mut header = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_inner(bytes, ext, channel, keep, out, &mut header)
    }));
    let reason = match result {
        Ok(Ok(d)) => return Ok(d),
        Ok(Err(e)) => e,
        Err(_) => "the decoder failed on this file (malformed stream)".into(),
    };
    out.truncate(start);
    Err(Failure { reason, header })
}

fn decode_inner(
    bytes: &[u8],
    ext: Option<&str>,
    channel: Channel,
    keep: &dyn Fn(u32) -> Option<usize>,
    out: &mut Vec<f32>,
    header: &mut Option<(&'static str, u32, u16)>,
) -> Result<Decoded, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let mss = MediaSourceStream::new(
        Box::new(Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    let mut hint = Hint::new();
    if let Some(e) = ext {
        hint.with_extension(e);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymError::Unsupported(_) => NOT_AUDIO.to_string(),
            e => format!("unreadable stream: {}", describe(&e)),
        })?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or("no audio track")?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or("no audio track")?
        .clone();
    let mut decoder: Box<dyn AudioDecoder> = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => "unsupported codec".to_string(),
            e => format!("unusable codec header: {}", describe(&e)),
        })?;
    let codec = decoder.codec_info().short_name;
    let header_frames = track.num_frames;
    let header_rate = params.sample_rate.unwrap_or(0);
    let header_channels = params.channels.as_ref().map_or(0, |c| c.count());
    if header_rate > 0 && (1..=usize::from(u16::MAX)).contains(&header_channels) {
        *header = Some((codec, header_rate, header_channels as u16));
    }

    let mut got = Decoded {
        codec,
        sample_rate: header_rate,
        channels: u16::try_from(header_channels).unwrap_or(0),
        frames: 0,
        damage: None,
    };
    let mut scratch: Vec<f64> = Vec::new();
    let mut kept = 0usize;
    let mut max_frames = 0usize;
    let mut next_pts: Option<i64> = None;
    // Every packet takes at least one byte of the file, or the stream is looping.
    let mut packets_left = bytes.len().saturating_add(64);
    loop {
        if packets_left == 0 {
            got.damage = Some("the stream does not advance".into());
            break;
        }
        packets_left -= 1;
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                got.damage = Some(stopped(&e));
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        // Packets follow each other without a gap; a demuxer that skipped damaged frames to
        // find the next good one would shift every later sample to an earlier time.
        let pts = packet.pts.get();
        if let Some(want) = next_pts {
            if pts != want {
                got.damage = Some(format!(
                    "damaged frames: the stream skips from frame {want} to {pts}"
                ));
                break;
            }
        }
        let trimmed = packet.trim_start.saturating_add(packet.trim_end).get();
        let buf = match decoder.decode(&packet) {
            Ok(b) => b,
            Err(e) => {
                got.damage = Some(stopped(&e));
                break;
            }
        };
        let frames = buf.frames();
        // A packet's time is that of its first decoded frame, encoder delay and padding
        // included; the next one starts after all of them. A packet trimmed away whole says
        // nothing of how many frames it had: the next one is not checked.
        next_pts = (frames > 0).then(|| {
            let decoded = (frames as u64).saturating_add(trimmed);
            pts.saturating_add(i64::try_from(decoded).unwrap_or(i64::MAX))
        });
        if frames == 0 {
            continue;
        }
        let spec = buf.spec();
        let (rate, chans) = (spec.rate(), spec.channels().count());
        if got.frames == 0 {
            if rate == 0 || chans == 0 || chans > usize::from(u16::MAX) {
                return Err(format!("malformed header: {rate} Hz, {chans} channel(s)"));
            }
            got.sample_rate = rate;
            got.channels = chans as u16;
            *header = Some((codec, rate, got.channels));
            let Some(keep) = keep(rate) else {
                got.frames = frames;
                return Ok(got);
            };
            max_frames = keep;
            if let Channel::Index(i) = channel {
                if usize::from(i) >= chans {
                    return Err(format!("channel {i} requested but the file has {chans}"));
                }
            }
        } else if rate != got.sample_rate || chans != usize::from(got.channels) {
            got.damage = Some(format!(
                "the stream changes from {} Hz, {} channel(s) to {rate} Hz, {chans} mid-way",
                got.sample_rate, got.channels
            ));
            break;
        }
        // Frames past `max_frames` are decoded only to be counted.
        let take = frames.min(max_frames.saturating_sub(got.frames));
        got.frames = got.frames.saturating_add(frames);
        if got.frames > MAX_FRAMES {
            return Err(format!(
                "decodes to more than {MAX_FRAMES} frames, the most one file may give"
            ));
        }
        if take == 0 {
            continue;
        }
        scratch.clear();
        scratch.resize(frames * chans, 0.0);
        buf.copy_to_slice_interleaved(&mut scratch[..]);
        let frames_in = scratch[..take * chans].chunks_exact(chans);
        match channel {
            Channel::Index(i) => out.extend(frames_in.map(|f| f[usize::from(i)] as f32)),
            Channel::Mix if chans == 1 => out.extend(frames_in.map(|f| f[0] as f32)),
            Channel::Mix => {
                let n = chans as f64;
                out.extend(frames_in.map(|f| (f.iter().sum::<f64>() / n) as f32));
            }
        }
        kept += take;
    }
    if let (None, Some(said)) = (&got.damage, header_frames) {
        if (got.frames as u64) < said {
            got.damage = Some(format!(
                "the stream ends after {} of the {said} frames its header says (a cut file)",
                got.frames
            ));
        }
    }
    if got.frames == 0 {
        if let Some(d) = got.damage.take() {
            return Err(d);
        }
        if got.sample_rate == 0 || got.channels == 0 {
            return Err(format!(
                "malformed header: {} Hz, {} channel(s)",
                got.sample_rate, got.channels
            ));
        }
        if let Channel::Index(i) = channel {
            if i >= got.channels {
                return Err(format!(
                    "channel {i} requested but the file has {}",
                    got.channels
                ));
            }
        }
    }
    if !out[out.len() - kept..].iter().all(|x| x.is_finite()) {
        return Err("samples include NaN or infinity".into());
    }
    Ok(got)
}

/// Why decoding stopped at an error, in words.
fn stopped(e: &SymError) -> String {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the stream ends before its header says it does (a cut file)".into()
        }
        e => describe(e),
    }
}

fn describe(e: &SymError) -> String {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file ends early".into()
        }
        SymError::IoError(io) => format!("read error: {io}"),
        SymError::DecodeError(m) => format!("malformed stream: {m}"),
        SymError::Unsupported(m) => format!("unsupported: {m}"),
        SymError::LimitError(m) => format!("over a decoder limit: {m}"),
        e => e.to_string(),
    }
}
