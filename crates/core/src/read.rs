//! The read stage: a task's files from disk into an [`AudioBatch`] of decoded mono samples.
//!
//! A mono 16-bit file, the common case, has its first 4 KiB read for the header and its samples
//! `pread` straight into the batch; every other file is read whole with `read(2)` into a
//! reusable buffer and decoded from there. Files are never memory-mapped: a file truncated
//! while mapped raises SIGBUS and kills the process, a read just returns fewer bytes.

use crate::backend::{AudioBatch, BatchFile};
use crate::config::{Channel, LengthMode, Params};
use crate::decode;
use crate::discover::InputFile;
use crate::dsp::resample::Resampler;
use crate::format::files::Source;
use crate::geometry::Geometry;
use crate::manifest::FileStatus;
use crate::samples::SampleKind;
use crate::wav;
use std::io::Read;
use std::sync::Arc;

/// What reading one file gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOutcome {
    /// Bytes of the file: those read, or its size when its samples were read in place (the
    /// header and the samples a clip takes are read then, not the rest).
    pub bytes: u64,
    /// Sample frames found in the file.
    pub samples: u64,
    /// Its status.
    pub status: FileStatus,
    /// Rows it contributes.
    pub rows: u64,
    /// The OS error that kept the file from being read when it says nothing about the file
    /// but about the machine ([`ErrorSource::Machine`]: no descriptors or memory left, a lost
    /// mount, a failing disk). The run must then stop, resumable, rather than record a good
    /// file as failed; `status` is `failed` with the error's text meanwhile.
    pub machine_error: Option<i32>,
    /// What the file holds (codec, rate, channels), when its header could be read.
    pub source: Option<Source>,
}

/// Raises the process's soft limit on open files to its hard limit: readers, prefetching and
/// the output hold many descriptors at once, and the usual soft limit of 1024 is far below
/// what the system allows. Nothing happens where the limit cannot be read or raised.
pub fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit value that lives on the stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Whose fault an error that kept an input from being read is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorSource {
    /// This file: it is missing, not permitted, not a regular file, too large. Another run
    /// over the same inputs meets the same error: the file is recorded as `failed`.
    File,
    /// The machine or its storage: the same file may read fine once the cause is gone (open
    /// files or memory ran out, a network mount went away, the disk reports an I/O error).
    /// Recording the file as failed would commit wrong output, so the run stops, resumable.
    Machine,
}

impl ErrorSource {
    /// Classifies an error met while opening or reading an input. Errors without an OS code
    /// come from melpipe's own checks on the file (not a regular file). Every OS error not
    /// known to be about the file counts as the machine's: an unknown cause stops the run
    /// rather than commit a good file as failed.
    pub fn of(e: &std::io::Error) -> ErrorSource {
        match e.raw_os_error() {
            None => ErrorSource::File,
            Some(code) => Self::of_errno(code),
        }
    }

    /// [`Self::of`] for an OS error number.
    pub fn of_errno(code: i32) -> ErrorSource {
        match code {
            libc::ENOENT
            | libc::ENOTDIR
            | libc::EISDIR
            | libc::EACCES
            | libc::EPERM
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::ENXIO
            | libc::ENODEV
            | libc::EINVAL
            | libc::EFBIG
            | libc::EOVERFLOW
            | libc::ETXTBSY
            | libc::EILSEQ => ErrorSource::File,
            _ => ErrorSource::Machine,
        }
    }
}

/// Reads and decodes files; one per reader thread (owns its I/O buffer).
pub struct Reader {
    geometry: Geometry,
    sample_rate: u32,
    channel: Channel,
    buf: Vec<u8>,
    /// Samples of a file decoded before they are placed (a file that is not WAV, or one that
    /// is resampled), mono, at the file's rate.
    decoded: Vec<f32>,
    /// Whether files at another rate are resampled (`resample`).
    resample: bool,
    /// The resamplers built so far, by input rate (or why none can be).
    resamplers: std::cell::RefCell<Vec<(u32, Built)>>,
    kind: SampleKind,
    /// Whether mono PCM16 files are read in place (see [`Reader::whole_file`]).
    in_place: bool,
}

impl Reader {
    /// A reader for a (validated) configuration.
    pub fn new(cfg: &Params) -> Self {
        Reader {
            geometry: Geometry::new(cfg),
            sample_rate: cfg.sample_rate,
            channel: cfg.channel,
            buf: Vec::new(),
            decoded: Vec::new(),
            resample: cfg.resample,
            resamplers: Default::default(),
            kind: SampleKind::F32,
            in_place: true,
        }
    }

    /// The same reader, but reading every file the whole-file way (read, zero-fill, decode),
    /// for timing the in-place way against it (`examples/read_rate.rs`; docs/PERFORMANCE.md,
    /// 'Design: readers read PCM16 in place'). Both ways give the same batches.
    pub fn whole_file(self) -> Self {
        Reader {
            in_place: false,
            ..self
        }
    }

    /// A reader that keeps 16-bit PCM samples as raw values (batches of [`SampleKind::I16`]),
    /// for a backend that scales them itself. A batch with any other file is f32 throughout.
    pub fn with_pcm16(cfg: &Params) -> Self {
        Reader {
            kind: SampleKind::I16,
            ..Reader::new(cfg)
        }
    }

    /// Reads `files` into `batch` (cleared first), one [`FileOutcome`] per file, in order.
    /// Never fails as a whole: a file that cannot be used is a `failed` outcome.
    pub fn read_task(&mut self, files: &[InputFile], batch: &mut AudioBatch) -> Vec<FileOutcome> {
        batch.clear(self.kind);
        if self.geometry.length == LengthMode::Fixed {
            // Every file gives exactly one clip (failed ones none): one allocation per batch.
            batch
                .samples
                .reserve(files.len().saturating_mul(self.geometry.clip_samples));
        }
        if files.len() > 1 && !first_page_cached(&files[0].path) {
            prefetch(files);
        }
        files.iter().map(|f| self.read_file(f, batch)).collect()
    }

    fn read_file(&mut self, file: &InputFile, batch: &mut AudioBatch) -> FileOutcome {
        // Opened and checked once, whichever way reads it.
        let input = open_input(&file.path);
        if let Ok((f, len)) = &input {
            if self.in_place {
                if let Some(outcome) = self.read_pcm16_in_place(f, *len, batch) {
                    return outcome;
                }
            }
        }
        let outcome = self.read_whole_file(input, extension(&file.path), batch);
        if self.decoded.capacity() > DECODED_KEPT {
            self.decoded = Vec::new();
        }
        outcome
    }

    /// Reads a whole file into the reader's buffer, then parses and decodes it from there:
    /// the way for every file [`Self::read_pcm16_in_place`] leaves, and the one that says
    /// why a file fails.
    fn read_whole_file(
        &mut self,
        input: std::io::Result<(std::fs::File, u64)>,
        ext: Option<String>,
        batch: &mut AudioBatch,
    ) -> FileOutcome {
        let offset = batch.samples.len();
        if let Err(e) = input.and_then(|(f, len)| read_whole(&f, len, &mut self.buf)) {
            let mut outcome = failed(batch, offset, 0, format!("unreadable: {e}"), &self.geometry);
            if ErrorSource::of(&e) == ErrorSource::Machine {
                outcome.machine_error = e.raw_os_error();
            }
            return outcome;
        }
        let bytes = self.buf.len() as u64;
        if !decode::is_wav(&self.buf) {
            return self.read_decoded(bytes, ext.as_deref(), batch);
        }
        let failed = |batch: &mut AudioBatch, bytes: u64, reason: String, g: &Geometry| {
            failed(batch, offset, bytes, reason, g)
        };
        let info = match wav::parse(&self.buf) {
            Ok(i) => i,
            Err(e) => return failed(batch, bytes, e.to_string(), &self.geometry),
        };
        let source = Source {
            codec: wav_codec(&info),
            sample_rate: info.sample_rate,
            channels: info.channels,
            resampled: false,
            damage: None,
        };
        // From here on the header is known: a file that fails still says what it holds.
        let failed = |batch: &mut AudioBatch, bytes: u64, reason: String, g: &Geometry| {
            let mut outcome = failed(batch, bytes, reason, g);
            outcome.source = Some(source.clone());
            outcome
        };
        if info.sample_rate != self.sample_rate {
            if !self.resample {
                let reason = rate_mismatch(info.sample_rate, self.sample_rate);
                return failed(batch, bytes, reason, &self.geometry);
            }
            // Decoded first, as much as the clip needs at the file's rate, then resampled.
            let n = self.keep(info.sample_rate).unwrap_or(0).min(info.frames);
            self.decoded.clear();
            self.decoded.resize(n, 0.0);
            let decoded = wav::decode(&info, &self.buf, self.channel, &mut self.decoded);
            let reason = match decoded {
                Err(e) => Some(e.to_string()),
                Ok(_) if !self.decoded.iter().all(|x| x.is_finite()) => {
                    Some("float samples include NaN or infinity".to_string())
                }
                Ok(_) => None,
            };
            if let Some(reason) = reason {
                return failed(batch, bytes, reason, &self.geometry);
            }
            return self.place_decoded(info.frames, source.clone(), bytes, batch);
        }
        let frames = info.frames;
        let (len, status) = self.fit(frames);
        if batch.samples.kind() == SampleKind::I16 {
            let out = batch.samples.extend_i16(len);
            match wav::decode_i16(&info, &self.buf, self.channel, out) {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    batch.samples.truncate(offset);
                    return failed(batch, bytes, e.to_string(), &self.geometry);
                }
                None => {
                    // Not 16-bit PCM (or a mix): the whole batch becomes f32.
                    batch.samples.truncate(offset);
                    batch.samples.convert_to_f32();
                }
            }
        }
        if batch.samples.kind() == SampleKind::F32 {
            let out = batch.samples.extend_f32(len);
            match wav::decode(&info, &self.buf, self.channel, out) {
                Ok(n)
                    if is_float(info.format)
                        && !out[..n.min(len)].iter().all(|x| x.is_finite()) =>
                {
                    batch.samples.truncate(offset);
                    return failed(
                        batch,
                        bytes,
                        "float samples include NaN or infinity".into(),
                        &self.geometry,
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    batch.samples.truncate(offset);
                    return failed(batch, bytes, e.to_string(), &self.geometry);
                }
            }
        }
        let rows = self.geometry.rows(Some(len));
        batch.files.push(BatchFile {
            offset,
            len,
            rows,
            failed: false,
        });
        FileOutcome {
            bytes,
            samples: frames as u64,
            status,
            rows: rows as u64,
            machine_error: None,
            source: Some(source),
        }
    }

    /// A file that is not WAV, held in the reader's buffer: decoded by [`decode::decode`] into
    /// the batch (which becomes f32).
    fn read_decoded(
        &mut self,
        bytes: u64,
        ext: Option<&str>,
        batch: &mut AudioBatch,
    ) -> FileOutcome {
        let offset = batch.samples.len();
        self.decoded.clear();
        let mut decoded = std::mem::take(&mut self.decoded);
        let got = decode::decode_keeping(
            &self.buf,
            ext,
            self.channel,
            &|rate| self.keep(rate),
            &mut decoded,
        );
        self.decoded = decoded;
        let got = match got {
            Ok(d) => d,
            Err(f) => {
                let mut outcome = failed(batch, offset, bytes, f.reason, &self.geometry);
                outcome.source = f.header.map(|(codec, sample_rate, channels)| Source {
                    codec,
                    sample_rate,
                    channels,
                    resampled: false,
                    damage: None,
                });
                return outcome;
            }
        };
        let source = Source {
            codec: got.codec,
            sample_rate: got.sample_rate,
            channels: got.channels,
            resampled: false,
            damage: got.damage.clone(),
        };
        self.place_decoded(got.frames, source, bytes, batch)
    }

    /// How many frames of a file at `rate` the batch needs: one clip in fixed length (at the
    /// file's rate, what the resampler reads for it), every frame up to
    /// [`decode::MAX_FRAMES`] in natural length; `None` for a file that will fail for its
    /// rate (nothing past its header is decoded then).
    fn keep(&self, rate: u32) -> Option<usize> {
        if rate != self.sample_rate && !self.resample {
            return None;
        }
        Some(match self.geometry.length {
            LengthMode::Natural => decode::MAX_FRAMES,
            LengthMode::Fixed if rate == self.sample_rate => self.geometry.clip_samples,
            LengthMode::Fixed => match self.resampler(rate) {
                Ok(r) => r.input_needed(self.geometry.clip_samples),
                Err(_) => 0,
            },
        })
    }

    /// The resampler from `rate` to the run's rate, built once per reader; the last
    /// [`RESAMPLERS_KEPT`] rates are kept (a filter may take up to 64 MiB).
    fn resampler(&self, rate: u32) -> Result<Arc<Resampler>, String> {
        let mut cache = self.resamplers.borrow_mut();
        if let Some(i) = cache.iter().position(|(from, _)| *from == rate) {
            let hit = cache.remove(i);
            let r = hit.1.clone();
            cache.push(hit);
            return r;
        }
        // A header's rate can be anything: a few bytes at 1 Hz would become megabytes.
        let r = if u64::from(self.sample_rate) > MAX_UPSAMPLING * u64::from(rate) {
            Err(format!(
                "resampling {rate} Hz to {} Hz multiplies the samples by more than {MAX_UPSAMPLING}",
                self.sample_rate
            ))
        } else {
            Resampler::new(rate, self.sample_rate)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        };
        if cache.len() >= RESAMPLERS_KEPT {
            drop(cache.remove(0));
        }
        cache.push((rate, r.clone()));
        r
    }

    /// Places the samples in `self.decoded` (mono, at `source.sample_rate`, the first of the
    /// file's `frames`) into the batch, which becomes f32: as they are at the run's rate,
    /// resampled to it at another rate when `resample` is on, else the file fails.
    fn place_decoded(
        &mut self,
        frames: usize,
        mut source: Source,
        bytes: u64,
        batch: &mut AudioBatch,
    ) -> FileOutcome {
        let offset = batch.samples.len();
        let rate = source.sample_rate;
        let fail = |batch: &mut AudioBatch, reason: String, source: Source, g: &Geometry| {
            let mut outcome = failed(batch, offset, bytes, reason, g);
            outcome.source = Some(source);
            outcome
        };
        let resampler = if rate == self.sample_rate {
            None
        } else if !self.resample {
            let reason = rate_mismatch(rate, self.sample_rate);
            return fail(batch, reason, source, &self.geometry);
        } else {
            match self.resampler(rate) {
                Ok(r) => Some(r),
                Err(reason) => return fail(batch, reason, source, &self.geometry),
            }
        };
        // Frames at the run's rate; bounded like a decoded file's, whatever the ratio.
        let frames_out = resampler.as_ref().map_or(frames, |r| r.output_len(frames));
        if frames_out > decode::MAX_FRAMES {
            let reason = format!(
                "resampled to {} Hz it would have {frames_out} frames, more than the {} one file may give",
                self.sample_rate,
                decode::MAX_FRAMES
            );
            return fail(batch, reason, source, &self.geometry);
        }
        let (len, status) = self.fit(frames_out);
        if batch.samples.kind() == SampleKind::I16 {
            batch.samples.convert_to_f32();
        }
        let out = batch.samples.extend_f32(len);
        let n = len.min(frames_out);
        match &resampler {
            None => {
                let n = n.min(self.decoded.len());
                out[..n].copy_from_slice(&self.decoded[..n]);
            }
            Some(r) => {
                // `keep` decoded what these outputs need (input_needed), or the whole file.
                let n = n.min(r.output_len(self.decoded.len()));
                r.process(&self.decoded, &mut out[..n]);
                source.resampled = true;
            }
        }
        let rows = self.geometry.rows(Some(len));
        batch.files.push(BatchFile {
            offset,
            len,
            rows,
            failed: false,
        });
        FileOutcome {
            bytes,
            samples: frames as u64,
            status,
            rows: rows as u64,
            machine_error: None,
            source: Some(source),
        }
    }
}

/// The largest ratio of the run's rate to a file's that `resample` takes (8 kHz to 2 MHz).
const MAX_UPSAMPLING: u64 = 256;

/// A resampler built for one input rate, or why none can be.
type Built = Result<Arc<Resampler>, String>;

/// Resamplers a reader keeps, for as many input rates.
const RESAMPLERS_KEPT: usize = 4;

/// A decoding buffer above this many samples (64 MiB) is given back after its file: one long
/// file does not hold a reader's memory for the rest of the run.
const DECODED_KEPT: usize = 16 << 20;

/// The outcome of a file that cannot be used: no samples, NaN rows in fixed mode.
fn failed(
    batch: &mut AudioBatch,
    offset: usize,
    bytes: u64,
    reason: String,
    g: &Geometry,
) -> FileOutcome {
    let rows = g.rows(None);
    batch.files.push(BatchFile {
        offset,
        len: 0,
        rows,
        failed: true,
    });
    FileOutcome {
        bytes,
        samples: 0,
        status: FileStatus::Failed { reason },
        rows: rows as u64,
        machine_error: None,
        source: None,
    }
}

/// The reason of a file at another sample rate (also what groups them in the summary).
pub fn rate_mismatch(file: u32, expected: u32) -> String {
    format!("sample rate {file} Hz, expected {expected} Hz")
}

/// The lower-case extension of a file name, as a hint to the decoder.
fn extension(path: &std::path::Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// The codec name of a WAV file's encoding (ffmpeg's names; `…be` for RIFX).
fn wav_codec(info: &wav::WavInfo) -> &'static str {
    use wav::{ByteOrder::*, SampleFormat as F};
    match (info.format, info.byte_order) {
        (F::U8, _) => "pcm_u8",
        (F::MuLaw, _) => "pcm_mulaw",
        (F::ALaw, _) => "pcm_alaw",
        (F::I16, Little) => "pcm_s16le",
        (F::I16, Big) => "pcm_s16be",
        (F::I24, Little) => "pcm_s24le",
        (F::I24, Big) => "pcm_s24be",
        (F::I32, Little) => "pcm_s32le",
        (F::I32, Big) => "pcm_s32be",
        (F::I64, Little) => "pcm_s64le",
        (F::I64, Big) => "pcm_s64be",
        (F::F32, Little) => "pcm_f32le",
        (F::F32, Big) => "pcm_f32be",
        (F::F64, Little) => "pcm_f64le",
        (F::F64, Big) => "pcm_f64be",
    }
}

impl Reader {
    /// The samples a file of `frames` frames takes in the batch, and its status.
    fn fit(&self, frames: usize) -> (usize, FileStatus) {
        match self.geometry.length {
            LengthMode::Fixed => {
                let clip = self.geometry.clip_samples;
                let st = match frames.cmp(&clip) {
                    std::cmp::Ordering::Less => FileStatus::Padded {
                        missing_samples: (clip - frames) as u64,
                    },
                    std::cmp::Ordering::Greater => FileStatus::Truncated {
                        dropped_samples: (frames - clip) as u64,
                    },
                    std::cmp::Ordering::Equal => FileStatus::Ok,
                };
                (clip, st)
            }
            LengthMode::Natural => (frames, FileStatus::Ok),
        }
    }

    /// The way to read a mono 16-bit file: its first [`HEAD`] bytes give the header
    /// ([`wav::parse_head`]), then its samples are read with `pread` straight into the batch
    /// (a PCM16 batch, which a GPU backend has page-locked, keeps them as they are; an f32
    /// batch gets them in the upper half of their room and scales them in place). The
    /// whole-file way reads the file into the reader's buffer, zero-fills the batch's room
    /// and decodes the samples over one by one: three passes over the samples where this
    /// makes one (two for f32).
    ///
    /// `f` is the file, opened by [`open_input`], of `file_len` bytes. `None` when the file
    /// needs the whole-file way, which then gives its outcome: no larger than `HEAD`, a header past `HEAD`, not mono PCM16 at the
    /// expected rate, any error, or fewer bytes than its size said (it changed meanwhile).
    /// The batch then holds what it held (its room may have grown).
    fn read_pcm16_in_place(
        &mut self,
        f: &std::fs::File,
        file_len: u64,
        batch: &mut AudioBatch,
    ) -> Option<FileOutcome> {
        if !matches!(self.channel, Channel::Mix | Channel::Index(0)) {
            return None;
        }
        let file_len = usize::try_from(file_len).ok()?;
        if file_len <= HEAD {
            return None;
        }
        let mut head = [0u8; HEAD];
        // SAFETY: `head` holds HEAD writable bytes.
        if unsafe { read_at(f, head.as_mut_ptr(), HEAD, 0) } != HEAD {
            return None;
        }
        let info = wav::parse_head(&head, file_len).ok()??;
        if info.format != wav::SampleFormat::I16
            || info.byte_order != wav::ByteOrder::Little
            || info.channels != 1
            || info.sample_rate != self.sample_rate
        {
            return None;
        }
        let frames = info.frames;
        let (len, status) = self.fit(frames);
        let want = 2 * frames.min(len);
        let start = batch.samples.len();
        let fill = |dst: *mut u8, room: usize| {
            debug_assert!(want <= room);
            let from_head = HEAD.saturating_sub(info.data_offset).min(want);
            let at = (info.data_offset + from_head) as u64;
            // SAFETY: `dst` has `room` ≥ `want` writable bytes; the copy from the head fills
            // its first `from_head` ≤ `want` of them from inside `head` (data_offset < HEAD
            // when from_head > 0), the read at most the `want - from_head` after them.
            let read = unsafe {
                std::ptr::copy_nonoverlapping(
                    head.as_ptr().add(info.data_offset.min(HEAD)),
                    dst,
                    from_head,
                );
                read_at(f, dst.add(from_head), want - from_head, at)
            };
            Ok::<usize, ()>(from_head + read)
        };
        // SAFETY: `fill` writes only inside the bytes it gets and returns how many it wrote
        // from their start (the copy's, then the read's, contiguous).
        let wrote = unsafe {
            match batch.samples.kind() {
                SampleKind::I16 => batch.samples.extend_i16_by(len, fill),
                SampleKind::F32 => batch.samples.extend_f32_from_pcm16_by(len, fill),
            }
        };
        if wrote != Ok(want) {
            batch.samples.truncate(start);
            return None;
        }
        let rows = self.geometry.rows(Some(len));
        batch.files.push(BatchFile {
            offset: start,
            len,
            rows,
            failed: false,
        });
        Some(FileOutcome {
            bytes: file_len as u64,
            samples: frames as u64,
            status,
            rows: rows as u64,
            machine_error: None,
            source: Some(Source {
                codec: "pcm_s16le",
                sample_rate: info.sample_rate,
                channels: 1,
                resampled: false,
                damage: None,
            }),
        })
    }
}

/// Bytes a PCM16 reader reads first to find a file's samples: the seed's files have a
/// 44-byte header, files with metadata chunks before the samples a few hundred more.
const HEAD: usize = 4096;

/// Reads up to `len` bytes at `offset` of `f` into `dst` (retrying short reads and
/// interruptions); returns the bytes read, fewer at the end of the file or on an error.
///
/// # Safety
/// `dst` must be valid for writes of `len` bytes.
unsafe fn read_at(f: &std::fs::File, dst: *mut u8, len: usize, offset: u64) -> usize {
    use std::os::fd::AsRawFd;
    let mut done = 0;
    while done < len {
        let Ok(at) = libc::off_t::try_from(offset + done as u64) else {
            break;
        };
        // SAFETY: the caller gave `len` writable bytes at `dst`; `done < len`, so the range
        // [dst + done, dst + len) lies inside them. The descriptor is open for the call.
        let n = unsafe { libc::pread(f.as_raw_fd(), dst.add(done).cast(), len - done, at) };
        match n {
            0 => break,
            n if n > 0 => done += n as usize,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    done
}

/// Whether the first page of `path` is in the page cache: a one-byte read that may not wait
/// (`preadv2` with `RWF_NOWAIT`, Linux). True when that cannot be told (other systems, file
/// systems without non-blocking reads, a file that does not open), so a warm cache never pays
/// for [`prefetch`].
fn first_page_cached(path: &std::path::Path) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::fd::AsRawFd;
        let Ok(f) = open_nonblocking(path) else {
            return true;
        };
        let mut byte = 0u8;
        let iov = libc::iovec {
            iov_base: (&mut byte as *mut u8).cast(),
            iov_len: 1,
        };
        // SAFETY: one iovec over a live local byte; the descriptor is open for the call.
        let n = unsafe { libc::preadv2(f.as_raw_fd(), &iov, 1, 0, libc::RWF_NOWAIT) };
        n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = path;
        true
    }
}

/// Asks the kernel to read every file of a task into the page cache in the background
/// (`posix_fadvise(WILLNEED)`), before the reader reads them one by one. On a cold cache the
/// disk then has the whole task's requests queued at once instead of one file's per reader:
/// on the H100 machine's virtual disk, reading with 64 threads instead of 16 took a cold GPU
/// run from 4.07 s to 3.72 s, and this prefetch from 3.94 s to 3.01 s (docs/PERFORMANCE.md,
/// 'Design: prefetch on a cold page cache'). Errors are ignored: the reads that follow report
/// them.
fn prefetch(files: &[InputFile]) {
    #[cfg(target_os = "linux")]
    for f in files {
        use std::os::fd::AsRawFd;
        if let Ok(file) = open_nonblocking(&f.path) {
            // SAFETY: plain integers and a descriptor that is open for the call.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = files;
}

fn is_float(f: wav::SampleFormat) -> bool {
    matches!(f, wav::SampleFormat::F32 | wav::SampleFormat::F64)
}

/// Opens an input for reading with O_NONBLOCK, so that a FIFO named `*.wav` does not wait
/// for a writer (regular files ignore the flag).
fn open_nonblocking(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Opens a regular file for reading and gives its size. Anything else named `*.wav`, or linked
/// to by such a name, is refused: a FIFO would block the reader forever and a device like
/// /dev/zero would never end.
pub(crate) fn open_input(path: &std::path::Path) -> std::io::Result<(std::fs::File, u64)> {
    let f = open_nonblocking(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((f, meta.len()))
}

/// The bytes of a regular file ([`open_input`]), as many as it held when opened: for the files
/// melpipe reads back from an output folder (manifest, journal), which may have been replaced.
pub(crate) fn read_regular(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let (f, len) = open_input(path)?;
    let mut buf = Vec::new();
    read_whole(&f, len, &mut buf)?;
    Ok(buf)
}

/// Reads the first `len` bytes of `f`, what the file held when opened ([`open_input`]), into
/// `buf` (cleared first): one that keeps growing cannot hold the reader.
fn read_whole(f: &std::fs::File, len: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    buf.reserve(usize::try_from(len).unwrap_or(0));
    f.take(len).read_to_end(buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wav::{encode_pcm16, encode_wav, Chunk, Samples, WavBuilder};

    fn input(dir: &std::path::Path, name: &str, bytes: &[u8]) -> InputFile {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        InputFile {
            rel: name.into(),
            size: bytes.len() as u64,
            path,
            mtime_ns: 0,
        }
    }

    #[test]
    fn statuses_padding_and_non_finite_floats() {
        let d = tempfile::tempdir().unwrap();
        let cfg = Params::default();
        let short: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.01).sin() * 0.5).collect();
        let mut bad = short.clone();
        bad[10] = f64::NAN;
        let files = [
            input(
                d.path(),
                "a.wav",
                &encode_wav(1, 4096, Samples::F64(&short)),
            ),
            input(d.path(), "b.wav", &encode_wav(1, 4096, Samples::F64(&bad))),
            input(d.path(), "c.wav", &encode_pcm16(1, 8000, &[0i16; 100])),
            input(d.path(), "d.wav", b"RIFF"),
        ];
        let mut batch = AudioBatch::default();
        let out = Reader::new(&cfg).read_task(&files, &mut batch);
        assert_eq!(
            out[0].status,
            FileStatus::Padded {
                missing_samples: 39960
            }
        );
        assert_eq!(out[0].samples, 1000);
        assert!(batch.samples.f32s().unwrap()[1000..40960]
            .iter()
            .all(|&x| x == 0.0));
        assert!((batch.samples.f32s().unwrap()[5] - (0.05f64.sin() * 0.5) as f32).abs() < 1e-6);
        assert!(matches!(&out[1].status, FileStatus::Failed { reason } if reason.contains("NaN")));
        assert!(
            matches!(&out[2].status, FileStatus::Failed { reason } if reason.contains("8000 Hz"))
        );
        assert!(out[3].status.is_failed());
        assert_eq!(batch.files.len(), 4);
        assert!(batch.files[1..]
            .iter()
            .all(|f| f.failed && f.len == 0 && f.rows == 237));
        assert_eq!(batch.samples.len(), 40960);
    }

    /// Inputs that change between discovery and reading, or are not files at all: each one
    /// ends with a status and a reason, none blocks or stops the task.
    #[test]
    fn every_reader_error_is_of_the_file_or_of_the_machine() {
        use std::io::Error as E;
        let file = [
            libc::ENOENT,
            libc::EACCES,
            libc::EPERM,
            libc::ENOTDIR,
            libc::EISDIR,
            libc::ELOOP,
            libc::ENAMETOOLONG,
            libc::ENXIO,
            libc::ENODEV,
            libc::EINVAL,
            libc::EFBIG,
            libc::EOVERFLOW,
            libc::ETXTBSY,
            libc::EILSEQ,
        ];
        for code in file {
            assert_eq!(
                ErrorSource::of(&E::from_raw_os_error(code)),
                ErrorSource::File,
                "{}",
                E::from_raw_os_error(code)
            );
        }
        let machine = [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOMEM,
            libc::ENOBUFS,
            libc::EIO,
            libc::EAGAIN,
            libc::ESTALE,
            libc::ENOTCONN,
            libc::ETIMEDOUT,
            libc::EHOSTDOWN,
            libc::ENOLINK,
            libc::EREMOTEIO,
            libc::EINTR,
        ];
        for code in machine {
            assert_eq!(
                ErrorSource::of(&E::from_raw_os_error(code)),
                ErrorSource::Machine,
                "{}",
                E::from_raw_os_error(code)
            );
        }
        // melpipe's own refusals (not a regular file) are about the file.
        let own = E::new(std::io::ErrorKind::InvalidInput, "not a regular file");
        assert_eq!(ErrorSource::of(&own), ErrorSource::File);
        // Every OS error number is one or the other, and what is not known to be the file's
        // is the machine's.
        let known: std::collections::BTreeSet<i32> = file.into_iter().collect();
        for code in 1..200 {
            let want = if known.contains(&code) {
                ErrorSource::File
            } else {
                ErrorSource::Machine
            };
            assert_eq!(ErrorSource::of_errno(code), want, "errno {code}");
        }
    }

    #[test]
    fn a_file_that_cannot_be_opened_for_a_reason_of_the_machine_says_so() {
        let t = tempfile::tempdir().unwrap();
        let cfg = Params::default();
        let files = [
            InputFile {
                path: t.path().join("missing.wav"),
                rel: "missing.wav".into(),
                size: 0,
                mtime_ns: 0,
            },
            InputFile {
                path: t.path().join("a/b.wav"),
                rel: "a/b.wav".into(),
                size: 0,
                mtime_ns: 0,
            },
        ];
        // Deleted or a path through a file: the file's fault, no machine error.
        std::fs::write(t.path().join("a"), b"x").unwrap();
        let mut batch = AudioBatch::default();
        let out = Reader::new(&cfg).read_task(&files, &mut batch);
        assert!(out
            .iter()
            .all(|o| o.status.is_failed() && o.machine_error.is_none()));
    }

    #[test]
    fn files_changed_or_special_after_discovery() {
        let d = tempfile::tempdir().unwrap();
        let cfg = Params::default();
        let clip: Vec<i16> = (0..40960)
            .map(|i| ((i * 37) % 2000) as i16 - 1000)
            .collect();
        let wav = encode_pcm16(1, 4096, &clip);
        let names = [
            "deleted", "cut", "cut_data", "dir", "fifo", "zero", "dangling", "ok",
        ];
        let files: Vec<InputFile> = names
            .iter()
            .map(|n| input(d.path(), &format!("{n}.wav"), &wav))
            .collect();
        let p = |n: &str| d.path().join(format!("{n}.wav"));
        // After discovery: removed; cut to a few bytes; cut inside the samples; replaced by a
        // folder, a FIFO, a link to an endless device and a dangling link.
        std::fs::remove_file(p("deleted")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(p("cut"))
            .unwrap()
            .set_len(10)
            .unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(p("cut_data"))
            .unwrap()
            .set_len(44 + 2 * 1000 + 1)
            .unwrap();
        std::fs::remove_file(p("dir")).unwrap();
        std::fs::create_dir(p("dir")).unwrap();
        std::fs::remove_file(p("fifo")).unwrap();
        let c = std::ffi::CString::new(p("fifo").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path that lives across the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::fs::remove_file(p("zero")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", p("zero")).unwrap();
        std::fs::remove_file(p("dangling")).unwrap();
        std::os::unix::fs::symlink(d.path().join("nowhere"), p("dangling")).unwrap();

        // The cold-cache prefetch and its probe neither block on nor trip over any of these
        // (each returns at once; the reads below report the files as before).
        for f in &files {
            let _ = first_page_cached(&f.path);
        }
        assert!(first_page_cached(&p("ok")), "a file just written is cached");
        prefetch(&files);

        let mut batch = AudioBatch::default();
        let out = Reader::new(&cfg).read_task(&files, &mut batch);
        let reason = |i: usize| match &out[i].status {
            FileStatus::Failed { reason } => reason.clone(),
            s => panic!("{} should have failed, is {s:?}", names[i]),
        };
        assert!(reason(0).starts_with("unreadable: "), "{}", reason(0));
        assert!(reason(0).contains("No such file"), "{}", reason(0));
        assert_eq!(reason(1), "truncated header");
        assert_eq!(
            out[2].status,
            FileStatus::Padded {
                missing_samples: 40960 - 1000
            }
        );
        assert_eq!(out[2].samples, 1000);
        for i in [3, 4, 5] {
            assert_eq!(reason(i), "unreadable: not a regular file", "{}", names[i]);
        }
        assert!(reason(6).contains("No such file"), "{}", reason(6));
        assert_eq!(out[7].status, FileStatus::Ok);
        // Every file has its place in the batch; failed ones have rows but no samples.
        assert_eq!(batch.files.len(), names.len());
        assert!(out.iter().all(|o| o.rows == 237));
        assert_eq!(batch.samples.len(), 2 * 40960);
        let last = &batch.samples.f32s().unwrap()[40960..];
        assert!((last[1] - f32::from(clip[1]) / 32768.0).abs() < 1e-9);
    }

    /// A PCM16 reader keeps raw values that scale to exactly what the f32 reader gives, and
    /// turns the whole batch into f32 when a file of another encoding (or a mix) joins it.
    #[test]
    fn pcm16_batches_match_f32_batches_and_fall_back_to_f32() {
        let d = tempfile::tempdir().unwrap();
        let cfg = Params::default();
        let clip: Vec<i16> = (0..30000)
            .map(|i| ((i * 7919) % 65536 - 32768) as i16)
            .collect();
        let stereo: Vec<i16> = clip.iter().flat_map(|&x| [x, x / 3]).collect();
        let floats: Vec<f64> = (0..40960)
            .map(|i| (i as f64 * 0.003).sin() * 0.25)
            .collect();
        let a = input(d.path(), "a.wav", &encode_pcm16(1, 4096, &clip));
        let bad = input(d.path(), "bad.wav", b"RIFF....WAVE");
        let st = input(d.path(), "st.wav", &encode_pcm16(2, 4096, &stereo));
        let f = input(
            d.path(),
            "f.wav",
            &encode_wav(1, 4096, Samples::F64(&floats)),
        );

        let read = |r: &mut Reader, files: &[InputFile]| {
            let mut b = AudioBatch::default();
            let o = r.read_task(files, &mut b);
            (b, o)
        };
        // PCM16 only: raw values, same outcomes, same values once scaled.
        let files = [a.clone(), bad.clone(), a.clone()];
        let (raw, o16) = read(&mut Reader::with_pcm16(&cfg), &files);
        let (flt, o32) = read(&mut Reader::new(&cfg), &files);
        assert_eq!(o16, o32);
        assert_eq!(raw.files, flt.files);
        let r = raw.samples.i16s().expect("a PCM16 batch");
        assert_eq!(&r[..30000], &clip[..]);
        let scaled: Vec<f32> = r.iter().map(|&v| f32::from(v) / 32768.0).collect();
        assert_eq!(&scaled[..], flt.samples.f32s().unwrap());
        // A picked channel of a stereo file stays raw; a mix does not.
        let pick = Params {
            channel: Channel::Index(1),
            ..Params::default()
        };
        let (raw, _) = read(&mut Reader::with_pcm16(&pick), std::slice::from_ref(&st));
        let want: Vec<i16> = clip.iter().map(|&x| x / 3).collect();
        assert_eq!(&raw.samples.i16s().unwrap()[..30000], &want[..]);
        let (mixed, _) = read(&mut Reader::with_pcm16(&cfg), std::slice::from_ref(&st));
        assert!(mixed.samples.f32s().is_some());
        // A float file in the middle: the batch is f32 throughout, equal to the f32 reader's.
        let files = [a.clone(), f, bad, a];
        let (m16, o16) = read(&mut Reader::with_pcm16(&cfg), &files);
        let (m32, o32) = read(&mut Reader::new(&cfg), &files);
        assert_eq!(o16, o32);
        assert_eq!(m16.files, m32.files);
        assert_eq!(m16.samples.f32s().unwrap(), m32.samples.f32s().unwrap());
    }

    /// Mono PCM16 files whose header lies in their first 4 KiB are read straight into a PCM16
    /// batch; every other file takes the whole-file way. Both ways give the same outcomes,
    /// places and values as the f32 reader, in fixed and natural length.
    #[test]
    fn pcm16_files_read_in_place_match_the_whole_file_way() {
        let d = tempfile::tempdir().unwrap();
        let clip = |n: usize| -> Vec<i16> {
            (0..n)
                .map(|i| ((i * 7919 + n) % 65536) as i32 - 32768)
                .map(|v| v as i16)
                .collect()
        };
        let b = |s: &[i16]| WavBuilder::new(1, 4096, Samples::I16(s));
        let stereo: Vec<i16> = clip(20000).iter().flat_map(|&x| [x, !x]).collect();
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("seed", encode_pcm16(1, 4096, &clip(40960)), true),
            ("short", encode_pcm16(1, 4096, &clip(30001)), true),
            ("long", encode_pcm16(1, 4096, &clip(50000)), true),
            (
                // An odd chunk without its pad byte: the samples start at an odd offset (55).
                "odd_offset",
                b(&clip(40960))
                    .layout(vec![
                        Chunk::Raw(b"note\x03\0\0\0odd".to_vec()),
                        Chunk::Fmt,
                        Chunk::Data,
                    ])
                    .build(),
                true,
            ),
            (
                "data_near_head_end",
                b(&clip(40960))
                    .layout(vec![
                        Chunk::Fmt,
                        Chunk::other(b"bext", vec![b' '; 4096 - 44 - 8]),
                        Chunk::Data,
                    ])
                    .build(),
                true,
            ),
            (
                "odd_data_length",
                {
                    let mut f = b(&clip(40000)).declared_data_size(1 << 30).build();
                    f.push(0x7f);
                    f
                },
                true,
            ),
            (
                "declared_past_end",
                b(&clip(40000)).declared_data_size(1 << 30).build(),
                true,
            ),
            (
                "header_past_head",
                b(&clip(40960))
                    .layout(vec![
                        Chunk::Fmt,
                        Chunk::other(b"bext", vec![b' '; 5000]),
                        Chunk::Data,
                    ])
                    .build(),
                false,
            ),
            ("tiny", encode_pcm16(1, 4096, &clip(1000)), false),
            ("stereo", encode_pcm16(2, 4096, &stereo), false),
            ("rate", encode_pcm16(1, 8000, &clip(40960)), false),
            (
                "float",
                encode_wav(1, 4096, Samples::F32(&[0.25; 40960])),
                false,
            ),
            ("garbage", vec![7u8; 9000], false),
        ];
        let files: Vec<InputFile> = cases
            .iter()
            .map(|(n, bytes, _)| input(d.path(), &format!("{n}.wav"), bytes))
            .collect();
        for length in [LengthMode::Fixed, LengthMode::Natural] {
            let cfg = Params {
                length,
                ..Params::default()
            };
            // Each file alone, after three samples already in the batch: in place exactly
            // when expected, with what the whole-file way gives; the batch untouched otherwise.
            for pcm16 in [true, false] {
                let reader = || {
                    if pcm16 {
                        Reader::with_pcm16(&cfg)
                    } else {
                        Reader::new(&cfg)
                    }
                };
                let start = |b: &mut AudioBatch| {
                    if pcm16 {
                        b.clear(SampleKind::I16);
                        b.samples.extend_i16(3).copy_from_slice(&[1, 2, 3]);
                    } else {
                        b.clear(SampleKind::F32);
                        b.samples.extend_from_slice(&[0.5, 0.25, 0.125]);
                    }
                };
                let bits = |b: &AudioBatch| -> Vec<u32> {
                    match b.samples.view() {
                        crate::samples::SampleView::I16(v) => {
                            v.iter().map(|&x| x as u16 as u32).collect()
                        }
                        crate::samples::SampleView::F32(v) => {
                            v.iter().map(|x| x.to_bits()).collect()
                        }
                    }
                };
                for ((name, _, in_place), f) in cases.iter().zip(&files) {
                    let (mut fast, mut whole) = (AudioBatch::default(), AudioBatch::default());
                    start(&mut fast);
                    start(&mut whole);
                    let (h, n) = open_input(&f.path).unwrap();
                    let got = reader().read_pcm16_in_place(&h, n, &mut fast);
                    assert_eq!(got.is_some(), *in_place, "{name} {length:?} {pcm16}");
                    let want = reader().read_whole_file(open_input(&f.path), None, &mut whole);
                    match got {
                        Some(got) => {
                            assert_eq!(got, want, "{name}");
                            assert_eq!(fast.files, whole.files, "{name}");
                            assert_eq!(bits(&fast), bits(&whole), "{name} {length:?} {pcm16}");
                        }
                        None => {
                            let mut before = AudioBatch::default();
                            start(&mut before);
                            assert_eq!(bits(&fast), bits(&before), "{name}");
                            assert!(fast.files.is_empty(), "{name}");
                        }
                    }
                }
            }
            // A task of them all, twice (the second read reuses the batch's memory): the
            // PCM16 reader turns the batch into f32 at the float file and at the stereo one (a
            // mix), so read the others alone too.
            let pcm: Vec<InputFile> = files
                .iter()
                .zip(&cases)
                .filter(|(_, (n, _, _))| !["float", "stereo"].contains(n))
                .map(|(f, _)| f.clone())
                .collect();
            for task in [&files[..], &pcm[..]] {
                let mut b16 = AudioBatch::default();
                let mut r16 = Reader::with_pcm16(&cfg);
                let mut b32 = AudioBatch::default();
                let o32 = Reader::new(&cfg).read_task(task, &mut b32);
                for _ in 0..2 {
                    let o16 = r16.read_task(task, &mut b16);
                    assert_eq!(o16, o32, "{length:?}");
                    assert_eq!(b16.files, b32.files, "{length:?}");
                    let got: Vec<f32> = match b16.samples.view() {
                        crate::samples::SampleView::I16(v) => {
                            v.iter().map(|&x| f32::from(x) / 32768.0).collect()
                        }
                        crate::samples::SampleView::F32(v) => v.to_vec(),
                    };
                    assert_eq!(&got[..], b32.samples.f32s().unwrap(), "{length:?}");
                }
                assert_eq!(
                    b16.samples.kind() == SampleKind::I16,
                    task.len() == pcm.len()
                );
            }
        }
    }

    /// A picked channel of a mono file: channel 0 is read in place, channel 1 takes the
    /// whole-file way and fails with its reason.
    #[test]
    fn picked_channels_of_a_mono_file() {
        let d = tempfile::tempdir().unwrap();
        let clip: Vec<i16> = (0..40960).map(|i| (i % 3000) as i16 - 1500).collect();
        let f = input(d.path(), "m.wav", &encode_pcm16(1, 4096, &clip));
        for (channel, in_place) in [(Channel::Index(0), true), (Channel::Index(1), false)] {
            let cfg = Params {
                channel,
                ..Params::default()
            };
            for mut r in [Reader::with_pcm16(&cfg), Reader::new(&cfg)] {
                let mut b = AudioBatch::default();
                b.clear(r.kind);
                let (h, n) = open_input(&f.path).unwrap();
                assert_eq!(r.read_pcm16_in_place(&h, n, &mut b).is_some(), in_place);
                let out = r.read_task(std::slice::from_ref(&f), &mut b);
                if in_place {
                    assert_eq!(out[0].status, FileStatus::Ok);
                } else {
                    assert_eq!(
                        out[0].status,
                        FileStatus::Failed {
                            reason: "channel 1 requested but the file has 1".into()
                        }
                    );
                }
            }
        }
    }

    /// `resample`: a file at another rate becomes, at the run's rate, exactly what the
    /// resampler makes of the whole file, whichever way and whatever part of it is read; its
    /// status counts samples at the run's rate; without `resample` it fails.
    #[test]
    fn files_at_another_rate_are_resampled_or_fail() {
        let d = tempfile::tempdir().unwrap();
        let clip = |n: usize| -> Vec<i16> {
            (0..n)
                .map(|i| (((i * 7919) % 20000) as i32 - 10000) as i16)
                .collect()
        };
        let r = Resampler::new(16000, 4096).unwrap();
        let whole = |x: &[i16]| {
            let f: Vec<f32> = x.iter().map(|&v| f32::from(v) / 32768.0).collect();
            let mut out = vec![0f32; r.output_len(f.len())];
            r.process(&f, &mut out);
            out
        };
        let long = clip(200_000);
        let short = clip(100_000);
        let stereo: Vec<i16> = long.iter().flat_map(|&x| [x, x / 2]).collect();
        let files = [
            input(d.path(), "long.wav", &encode_pcm16(1, 16000, &long)),
            input(d.path(), "short.wav", &encode_pcm16(1, 16000, &short)),
            input(d.path(), "stereo.wav", &encode_pcm16(2, 16000, &stereo)),
            input(d.path(), "native.wav", &encode_pcm16(1, 4096, &clip(40960))),
        ];
        let on = Params {
            resample: true,
            ..Params::default()
        };
        for reader in [Reader::new(&on), Reader::with_pcm16(&on)] {
            let mut reader = reader;
            let mut b = AudioBatch::default();
            let out = reader.read_task(&files, &mut b);
            let got = b.samples.f32s().expect("resampled files make an f32 batch");
            assert_eq!(
                out[0].status,
                FileStatus::Truncated {
                    dropped_samples: (51200 - 40960) as u64
                }
            );
            assert_eq!(out[0].samples, 200_000);
            assert_eq!(&got[..40960], &whole(&long)[..40960]);
            assert_eq!(
                out[1].status,
                FileStatus::Padded {
                    missing_samples: (40960 - 25600) as u64
                }
            );
            assert_eq!(&got[40960..40960 + 25600], &whole(&short)[..]);
            assert!(got[40960 + 25600..2 * 40960].iter().all(|&x| x == 0.0));
            let src = out[2].source.as_ref().unwrap();
            assert_eq!(
                (src.sample_rate, src.channels, src.resampled),
                (16000, 2, true)
            );
            assert!(!out[3].source.as_ref().unwrap().resampled);
            assert_eq!(out[3].status, FileStatus::Ok);
        }
        // Natural length: every sample of the file, resampled.
        let natural = Params {
            resample: true,
            length: LengthMode::Natural,
            ..Params::default()
        };
        let mut b = AudioBatch::default();
        let out = Reader::new(&natural).read_task(&files[..1], &mut b);
        assert_eq!(out[0].status, FileStatus::Ok);
        assert_eq!(b.samples.f32s().unwrap(), &whole(&long)[..]);
        // Off: the file fails, naming both rates.
        let mut b = AudioBatch::default();
        let out = Reader::new(&Params::default()).read_task(&files[..1], &mut b);
        assert_eq!(
            out[0].status,
            FileStatus::Failed {
                reason: "sample rate 16000 Hz, expected 4096 Hz".into()
            }
        );
        assert_eq!(out[0].source.as_ref().unwrap().sample_rate, 16000);
        // A rate no filter can be built for fails with the resampler's reason.
        let odd = input(
            d.path(),
            "odd.wav",
            &encode_pcm16(1, 4_294_967_295, &clip(100)),
        );
        let mut b = AudioBatch::default();
        let out = Reader::new(&on).read_task(std::slice::from_ref(&odd), &mut b);
        assert!(
            matches!(&out[0].status, FileStatus::Failed { reason } if reason.contains("filter")),
            "{:?}",
            out[0].status
        );
    }
}
