//! One array streamed to disk: a `.npy` header placeholder (or none, for the seed layout's raw
//! features), data appended or accounted in order and hashed as it goes, writeback started
//! every 32 MiB so that the final fsync has little left, and at the end the real header.
//!
//! Invariant: `data_bytes` and the checksum always describe the same prefix of the data, in
//! order; bytes beyond it (a positioned write ahead of the accounting, a write cut short) are
//! in no checksum and no journal record, and a resume cuts them off.

use super::fault;
use super::positioned::PositionedWriter;
use crate::error::{Error, Result};
use crate::format::manifest::ArrayInfo;
use crate::format::npy;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::Xxh3;

/// Appends at least this large hash on a second thread while they are written.
const PARALLEL_HASH_MIN: usize = 1 << 20;

/// Start writeback after this many unsynced bytes, so the final fsync has little left to do.
const WRITEBACK_CHUNK: u64 = 32 << 20;

/// One array being streamed to disk, hashed as it goes.
pub(crate) struct ArrayFile {
    pub(super) file: File,
    pub(super) path: PathBuf,
    name: &'static str,
    descr: &'static str,
    header: bool,
    /// Checksum of the data accounted so far (`data_bytes` bytes, in order).
    pub(super) hasher: Xxh3,
    /// Data bytes accounted: written, hashed, and in the array's length.
    pub(super) data_bytes: u64,
    /// File offset up to which writeback has been started.
    flushed_to: u64,
}

impl ArrayFile {
    pub(crate) fn create(
        dir: &Path,
        name: &'static str,
        descr: &'static str,
        header: bool,
    ) -> Result<Self> {
        let path = dir.join(name);
        let mut file = File::create(&path).map_err(|e| Error::io("creating", &path, e))?;
        if header {
            // Placeholder; the real header (same size) is written at commit when N is known.
            file.write_all(&[b' '; npy::HEADER_LEN])
                .map_err(|e| Error::io("writing", &path, e))?;
        }
        Ok(ArrayFile {
            file,
            path,
            name,
            descr,
            header,
            hasher: Xxh3::new(),
            data_bytes: 0,
            flushed_to: 0,
        })
    }

    /// Reopens a partial array, keeping its first `data_bytes` data bytes (the committed
    /// prefix) and hashing them again.
    pub(super) fn reopen(
        dir: &Path,
        name: &'static str,
        descr: &'static str,
        header: bool,
        data_bytes: u64,
    ) -> Result<Self> {
        use std::io::{Read, Seek, SeekFrom};
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        let hlen = if header { npy::HEADER_LEN as u64 } else { 0 };
        let have = file
            .metadata()
            .map_err(|e| Error::io("reading", &path, e))?
            .len();
        if have < hlen + data_bytes {
            return Err(Error::Output {
                path,
                msg: format!(
                    "holds {have} bytes but the journal committed {}: the partial output is damaged; start over with --force",
                    hlen + data_bytes
                ),
            });
        }
        file.set_len(hlen + data_bytes)
            .map_err(|e| Error::io("truncating", &path, e))?;
        file.seek(SeekFrom::Start(hlen))
            .map_err(|e| Error::io("seeking", &path, e))?;
        let mut hasher = Xxh3::new();
        let mut buf = vec![0u8; 8 << 20];
        let mut left = data_bytes;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            file.read_exact(&mut buf[..want])
                .map_err(|e| Error::io("reading", &path, e))?;
            hasher.update(&buf[..want]);
            left -= want as u64;
        }
        Ok(ArrayFile {
            file,
            path,
            name,
            descr,
            header,
            hasher,
            data_bytes,
            flushed_to: hlen + data_bytes,
        })
    }

    pub(super) fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsyncing", &self.path, e))
    }

    fn header_len(&self) -> u64 {
        if self.header {
            npy::HEADER_LEN as u64
        } else {
            0
        }
    }

    /// A handle that writes data at given offsets from any thread (see [`PositionedWriter`]):
    /// offset 0 is the first data byte after what the array holds now. Writes of at least
    /// `own_writeback_min` bytes start their own writeback.
    pub(crate) fn positioned(&self, own_writeback_min: usize) -> Result<PositionedWriter> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::io("opening", &self.path, e))?;
        Ok(PositionedWriter::new(
            file,
            self.path.clone(),
            self.header_len() + self.data_bytes,
            own_writeback_min,
        ))
    }

    /// Takes the next `bytes` of the array, already written at their place by a
    /// [`PositionedWriter`], into the checksum and the length, and starts their writeback.
    pub(crate) fn account(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.data_bytes += bytes.len() as u64;
        self.writeback_written();
    }

    /// Starts the disk's writeback once 32 MiB have been appended since the last start.
    fn writeback_written(&mut self) {
        let end = self.header_len() + self.data_bytes;
        if end - self.flushed_to >= WRITEBACK_CHUNK {
            start_writeback(&self.file, self.flushed_to, end - self.flushed_to);
            self.flushed_to = end;
        }
    }

    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() < PARALLEL_HASH_MIN {
            write_all(&mut self.file, bytes).map_err(|e| Error::io("writing", &self.path, e))?;
            self.hasher.update(bytes);
        } else {
            // Hash on another thread while this one copies the bytes into the page cache
            // (merge's copies). The hash state is kept only if
            // the write succeeded, as in the sequential path.
            let mut hasher = self.hasher.clone();
            let file = &mut self.file;
            let (written, hashed) = std::thread::scope(|s| {
                let t = s.spawn(move || {
                    hasher.update(bytes);
                    hasher
                });
                let w = write_all(file, bytes);
                (w, t.join())
            });
            written.map_err(|e| Error::io("writing", &self.path, e))?;
            self.hasher = hashed.map_err(|_| Error::Output {
                path: self.path.clone(),
                msg: "the checksum thread panicked".into(),
            })?;
        }
        self.data_bytes += bytes.len() as u64;
        self.writeback_written();
        Ok(())
    }

    /// Sets the file to its final size (`data_bytes` of data in all) before the data is
    /// written, when that size is known (fixed length mode). Writes inside the file's size do
    /// not change it: on ext4 an extending write must also log the new size in the file system
    /// journal, and waits whenever the journal is committing (measured: 30–75 ms stalls of the
    /// writer, several per run, on the H100 machine). The file stays sparse until written;
    /// [`Self::finish`] cuts it to what was written, and a resume cuts it to the committed rows.
    pub(crate) fn presize(&self, data_bytes: u64) -> Result<()> {
        self.file
            .set_len(self.header_len() + data_bytes)
            .map_err(|e| Error::io("sizing", &self.path, e))
    }

    /// [`Self::presize`] for `files_left` more files of `rows_per_file` rows of `row_bytes`.
    pub(super) fn presize_rows(
        &self,
        files_left: usize,
        rows_per_file: u64,
        row_bytes: u64,
    ) -> Result<()> {
        self.presize(self.data_bytes + files_left as u64 * rows_per_file * row_bytes)
    }

    /// Writes the header, fsyncs, and describes the array.
    pub(crate) fn finish(self, shape: Vec<u64>) -> Result<ArrayInfo> {
        self.seal(shape)?.sync()
    }

    /// Cuts the file to its data and writes the header; [`Sealed::sync`] then fsyncs it (on
    /// a thread of its own while the commit writes the manifest).
    pub(crate) fn seal(self, shape: Vec<u64>) -> Result<Sealed> {
        let len = self.header_len() + self.data_bytes;
        let have = self
            .file
            .metadata()
            .map_err(|e| Error::io("reading", &self.path, e))?
            .len();
        if have != len {
            self.file
                .set_len(len)
                .map_err(|e| Error::io("truncating", &self.path, e))?;
        }
        if self.header {
            use std::os::unix::fs::FileExt;
            let h = npy::header(self.descr, &shape);
            self.file
                .write_all_at(&h, 0)
                .map_err(|e| Error::io("writing", &self.path, e))?;
        }
        Ok(Sealed {
            info: ArrayInfo {
                file: self.name.to_string(),
                descr: self.descr.to_string(),
                shape,
                header_bytes: self.header_len(),
                data_bytes: self.data_bytes,
                xxh3_64: format!("{:016x}", self.hasher.digest()),
            },
            file: self.file,
            path: self.path,
        })
    }
}

/// An array whose content and description are final, not yet durable.
pub(crate) struct Sealed {
    pub(crate) info: ArrayInfo,
    file: File,
    path: PathBuf,
}

impl Sealed {
    /// Fsyncs the array; returns its description.
    pub(crate) fn sync(self) -> Result<ArrayInfo> {
        crate::trace::span("fsync-array", 0, || self.file.sync_all())
            .map_err(|e| Error::io("fsyncing", &self.path, e))?;
        Ok(self.info)
    }
}

/// `write_all`, subject to the injected faults of tests ([`fault`]).
fn write_all(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    fault::within_budget(bytes, |b| file.write_all(b))
}

/// Asks the kernel to start writing a range back now, without waiting for it.
pub(super) fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: sync_file_range only reads the descriptor and integers; an error (e.g. on a
        // file system without support) is harmless because the final fsync covers everything.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_appends_hash_in_parallel_to_the_same_checksum() {
        let t = tempfile::tempdir().unwrap();
        let mut a = ArrayFile::create(t.path(), "features.npy", "<f2", true).unwrap();
        let data: Vec<u8> = (0..(3usize << 20) + 777)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        // Small (sequential) and large (parallel) appends mixed.
        for chunk in [
            &data[..1000],
            &data[1000..(2 << 20) + 1000],
            &data[(2 << 20) + 1000..],
        ] {
            a.append(chunk).unwrap();
        }
        let info = a.finish(vec![data.len() as u64 / 2]).unwrap();
        assert_eq!(
            info.xxh3_64,
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&data))
        );
        assert_eq!(info.data_bytes, data.len() as u64);
        let on_disk = std::fs::read(t.path().join("features.npy")).unwrap();
        assert_eq!(&on_disk[info.header_bytes as usize..], &data[..]);
    }
}
