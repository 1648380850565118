//! `verify` (is an output folder intact?) and `inspect` (what is in it?).

use crate::config::Dtype;
use crate::error::{Error, Result};
use crate::format::manifest::{self, ArrayInfo, Manifest};
use std::io::Read;
use std::path::Path;
use xxhash_rust::xxh3::Xxh3;

/// Outcome of [`verify`].
#[derive(Debug)]
pub struct VerifyReport {
    /// The manifest, when it could be read.
    pub manifest: Option<Manifest>,
    /// Everything found wrong; empty means intact.
    pub problems: Vec<String>,
    /// Things worth knowing that do not make the output wrong.
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn intact(&self) -> bool {
        self.problems.is_empty() && self.manifest.is_some()
    }
}

/// Streams a file's bytes in `[offset, offset + len)` through `f`.
fn stream(path: &Path, offset: u64, len: u64, mut f: impl FnMut(&[u8])) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("reading", path, e))?;
    let mut left = len;
    let mut buf = vec![0u8; 8 << 20];
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = file
            .read(&mut buf[..want])
            .map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            return Err(Error::io(
                "reading",
                path,
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file ends early"),
            ));
        }
        f(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// XXH3-64 (hex) of an array's data bytes on disk.
fn data_checksum(out: &Path, a: &ArrayInfo) -> Result<String> {
    let mut h = Xxh3::new();
    stream(&out.join(&a.file), a.header_bytes, a.data_bytes, |b| {
        h.update(b)
    })?;
    Ok(format!("{:016x}", h.digest()))
}

/// Checks an output folder: the manifest ([`Manifest::read`]: its own checksum, its structure,
/// each array's size and header), the checksum of each array's data, and that the mapping's
/// checksum is that of the rows the file list implies.
pub fn verify(out: &Path) -> VerifyReport {
    verify_impl(out, true)
}

/// [`verify`] without reading the array data: everything but the checksums of the bytes on
/// disk (the manifest's mapping checksum is still checked against the file list). For readers
/// that hash the data themselves as they stream it (`merge`), so it is read only once.
pub fn verify_without_data(out: &Path) -> VerifyReport {
    verify_impl(out, false)
}

fn verify_impl(out: &Path, hash_data: bool) -> VerifyReport {
    let mut r = VerifyReport {
        manifest: None,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    if out.join(crate::write::PARTIAL_DIR).exists() {
        r.notes.push(format!(
            "{} holds an interrupted run's partial output",
            crate::write::PARTIAL_DIR
        ));
    }
    let m = match Manifest::read(out) {
        Ok(m) => m,
        Err(e) => {
            r.problems.push(format!("{e}"));
            return r;
        }
    };
    if !m.is_sealed() {
        r.notes.push(format!(
            "{} is a {} manifest, without a checksum of its own: its consistency was checked, changes to it cannot be seen",
            manifest::FILE_NAME,
            manifest::FORMAT_V1
        ));
    }
    let arrays = std::iter::once(&m.features).chain(&m.mapping);
    if hash_data {
        for a in arrays {
            match data_checksum(out, a) {
                Ok(got) if got == a.xxh3_64 => {}
                Ok(got) => r.problems.push(format!(
                    "{}: checksum {got} does not match the manifest's {}",
                    a.file, a.xxh3_64
                )),
                Err(e) => r.problems.push(e.to_string()),
            }
        }
    }
    if let Some(a) = &m.mapping {
        match crate::write::mapping_digest(&m.config, &m.files) {
            Ok(d) if format!("{d:016x}") == a.xxh3_64 => {}
            Ok(_) => r.problems.push(format!(
                "{}: rows do not match the file list of the manifest",
                a.file
            )),
            Err(e) => r.problems.push(format!("{}: {e}", a.file)),
        }
    }
    r.manifest = Some(m);
    r
}

/// Value statistics of a features array.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueStats {
    /// Finite values.
    pub finite: u64,
    /// NaN values (rows of failed files).
    pub nan: u64,
    /// Infinite values.
    pub inf: u64,
    /// Smallest finite value.
    pub min: f64,
    /// Largest finite value.
    pub max: f64,
    /// Mean of finite values.
    pub mean: f64,
    /// Standard deviation of finite values.
    pub std: f64,
    /// Values at the −100 dB floor (silence or empty mel filters).
    pub at_floor: u64,
}

/// Reads the features of an output folder and computes [`ValueStats`].
pub fn feature_stats(out: &Path, m: &Manifest) -> Result<ValueStats> {
    let path = out.join(&m.features.file);
    let mut st = ValueStats {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        ..Default::default()
    };
    let (mut sum, mut sumsq) = (0f64, 0f64);
    let mut add = |v: f32| {
        if v.is_nan() {
            st.nan += 1;
        } else if v.is_infinite() {
            st.inf += 1;
        } else {
            let v = v as f64;
            st.finite += 1;
            st.min = st.min.min(v);
            st.max = st.max.max(v);
            sum += v;
            sumsq += v * v;
            if v <= -99.99 {
                st.at_floor += 1;
            }
        }
    };
    let f16 = m.config.dtype == Dtype::F16;
    let mut carry: Vec<u8> = Vec::new();
    let esz = m.config.dtype.size();
    stream(&path, m.features.header_bytes, m.features.data_bytes, |b| {
        carry.extend_from_slice(b);
        let whole = carry.len() / esz * esz;
        for c in carry[..whole].chunks_exact(esz) {
            let v = if f16 {
                half::f16::from_le_bytes([c[0], c[1]]).to_f32()
            } else {
                f32::from_le_bytes([c[0], c[1], c[2], c[3]])
            };
            add(v);
        }
        carry.drain(..whole);
    })?;
    if st.finite > 0 {
        st.mean = sum / st.finite as f64;
        st.std = (sumsq / st.finite as f64 - st.mean * st.mean)
            .max(0.0)
            .sqrt();
    } else {
        st.min = f64::NAN;
        st.max = f64::NAN;
    }
    Ok(st)
}

/// Reads the feature rows of one manifest file entry (by index) as f32: `rows × n_mels × T`.
pub fn file_features(out: &Path, m: &Manifest, file_idx: usize) -> Result<Vec<f32>> {
    use std::io::{Seek, SeekFrom};
    let f = &m.files[file_idx];
    let vpr = (m.config.n_mels * m.config.out_frames()) as u64;
    let esz = m.config.dtype.size() as u64;
    let path = out.join(&m.features.file);
    let mut file = std::fs::File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
    file.seek(SeekFrom::Start(
        m.features.header_bytes + f.first_row * vpr * esz,
    ))
    .map_err(|e| Error::io("reading", &path, e))?;
    let mut bytes = vec![0u8; (f.rows * vpr * esz) as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| Error::io("reading", &path, e))?;
    Ok(match m.config.dtype {
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    })
}
