//! The read stage: a task's files from disk into an [`AudioBatch`] of decoded mono samples.
//!
//! Files are read with `read(2)` into a reusable buffer, never memory-mapped: a file truncated
//! while mapped raises SIGBUS and kills the process, a read just returns fewer bytes.

use crate::backend::{AudioBatch, BatchFile};
use crate::config::{Channel, Config, LengthMode};
use crate::discover::InputFile;
use crate::geometry::Geometry;
use crate::manifest::FileStatus;
use crate::wav;
use std::io::Read;

/// What reading one file gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOutcome {
    /// Bytes read.
    pub bytes: u64,
    /// Sample frames found in the file.
    pub samples: u64,
    /// Its status.
    pub status: FileStatus,
    /// Rows it contributes.
    pub rows: u64,
}

/// Reads and decodes files; one per reader thread (owns its I/O buffer).
pub struct Reader {
    geometry: Geometry,
    sample_rate: u32,
    channel: Channel,
    buf: Vec<u8>,
}

impl Reader {
    /// A reader for a (validated) configuration.
    pub fn new(cfg: &Config) -> Self {
        Reader {
            geometry: Geometry::new(cfg),
            sample_rate: cfg.sample_rate,
            channel: cfg.channel,
            buf: Vec::new(),
        }
    }

    /// Reads `files` into `batch` (cleared first), one [`FileOutcome`] per file, in order.
    /// Never fails as a whole: a file that cannot be used is a `failed` outcome.
    pub fn read_task(&mut self, files: &[InputFile], batch: &mut AudioBatch) -> Vec<FileOutcome> {
        batch.clear();
        files.iter().map(|f| self.read_file(f, batch)).collect()
    }

    fn read_file(&mut self, file: &InputFile, batch: &mut AudioBatch) -> FileOutcome {
        let offset = batch.samples.len();
        let failed = |batch: &mut AudioBatch, bytes: u64, reason: String, g: &Geometry| {
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
            }
        };
        if let Err(e) = read_whole(&file.path, &mut self.buf) {
            return failed(batch, 0, format!("unreadable: {e}"), &self.geometry);
        }
        let bytes = self.buf.len() as u64;
        let info = match wav::parse(&self.buf) {
            Ok(i) => i,
            Err(e) => return failed(batch, bytes, e.to_string(), &self.geometry),
        };
        if info.sample_rate != self.sample_rate {
            return failed(
                batch,
                bytes,
                format!(
                    "sample rate {} Hz, expected {} Hz",
                    info.sample_rate, self.sample_rate
                ),
                &self.geometry,
            );
        }
        let frames = info.frames;
        let (len, status) = match self.geometry.length {
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
        };
        batch.samples.resize(offset + len, 0.0);
        let out = &mut batch.samples[offset..offset + len];
        match wav::decode(&info, &self.buf, self.channel, out) {
            Ok(n) => out[n.min(len)..].fill(0.0),
            Err(e) => {
                batch.samples.truncate(offset);
                return failed(batch, bytes, e.to_string(), &self.geometry);
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
        }
    }
}

/// Reads a whole file into `buf` (cleared first).
fn read_whole(path: &std::path::Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    let mut f = std::fs::File::open(path)?;
    let hint = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
    buf.reserve(hint.saturating_add(1));
    f.read_to_end(buf)?;
    Ok(())
}
