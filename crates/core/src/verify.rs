//! `verify` (is an output folder intact?) and `inspect` (what is in it?).

use crate::config::{Dtype, LengthMode, MappingKind};
use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::manifest::{ArrayInfo, Manifest, StatusCounts};
use crate::npy;
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

fn check_array(
    out: &Path,
    a: &ArrayInfo,
    shape: &[u64],
    elem: u64,
    hash_data: bool,
    problems: &mut Vec<String>,
) {
    let path = out.join(&a.file);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => return problems.push(format!("{}: {e}", a.file)),
    };
    if a.shape != shape {
        problems.push(format!(
            "{}: manifest shape {:?}, expected {:?}",
            a.file, a.shape, shape
        ));
    }
    let want = shape.iter().product::<u64>() * elem;
    if a.data_bytes != want {
        problems.push(format!(
            "{}: manifest says {} data bytes, the shape needs {want}",
            a.file, a.data_bytes
        ));
    }
    if meta.len() != a.header_bytes + a.data_bytes {
        problems.push(format!(
            "{}: {} bytes on disk, expected {}",
            a.file,
            meta.len(),
            a.header_bytes + a.data_bytes
        ));
        return;
    }
    if a.header_bytes > 0 {
        match npy::read_header(&path) {
            Ok(h) => {
                if h.descr != a.descr || h.shape != a.shape || h.fortran_order {
                    problems.push(format!(
                        "{}: header says {} {:?}, manifest says {} {:?}",
                        a.file, h.descr, h.shape, a.descr, a.shape
                    ));
                }
                if h.data_offset as u64 != a.header_bytes {
                    problems.push(format!(
                        "{}: header length differs from the manifest",
                        a.file
                    ));
                }
            }
            Err(e) => problems.push(format!("{}: {e}", a.file)),
        }
    }
    if !hash_data {
        return;
    }
    let mut h = Xxh3::new();
    match stream(&path, a.header_bytes, a.data_bytes, |b| h.update(b)) {
        Ok(()) => {
            let got = format!("{:016x}", h.digest());
            if got != a.xxh3_64 {
                problems.push(format!(
                    "{}: checksum {got} does not match the manifest's {}",
                    a.file, a.xxh3_64
                ));
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
}

/// Checks an output folder: the manifest, each array's size, header and checksum, the file
/// list's row accounting, and that the mapping holds exactly the rows the manifest implies.
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
    let cfg = &m.config;
    let g = Geometry::new(cfg);
    let vpr = [m.rows, cfg.n_mels as u64, cfg.out_frames() as u64];
    check_array(
        out,
        &m.features,
        &vpr,
        cfg.dtype.size() as u64,
        hash_data,
        &mut r.problems,
    );
    let expect_descr = match cfg.dtype {
        Dtype::F16 => "<f2",
        Dtype::F32 => "<f4",
    };
    if m.features.descr != expect_descr {
        r.problems.push(format!(
            "features dtype {} but config says {}",
            m.features.descr, cfg.dtype
        ));
    }
    // Row accounting.
    let mut counts = StatusCounts::default();
    let mut row = 0u64;
    for (i, f) in m.files.iter().enumerate() {
        counts.add(&f.status);
        if f.first_row != row {
            r.problems.push(format!(
                "file {i} ({}) starts at row {}, expected {row}",
                f.path, f.first_row
            ));
            break;
        }
        let expect = match (cfg.length, f.status.is_failed()) {
            (LengthMode::Fixed, _) => g.rows(None) as u64,
            (LengthMode::Natural, true) => 0,
            (LengthMode::Natural, false) => g.rows(Some(f.samples as usize)) as u64,
        };
        if f.rows != expect {
            r.problems.push(format!(
                "file {i} ({}) has {} rows, its samples give {expect}",
                f.path, f.rows
            ));
        }
        row += f.rows;
    }
    if row != m.rows {
        r.problems.push(format!(
            "files account for {row} rows, the manifest says {}",
            m.rows
        ));
    }
    if let Some(sh) = &m.shard {
        let expect = crate::shard::ShardSpec::new(sh.index, sh.count)
            .map(|spec| spec.range(sh.files_total))
            .ok();
        if expect != Some(sh.first_file..sh.first_file + sh.files)
            || m.files.len() as u64 != sh.files
        {
            r.problems.push(format!(
                "the shard record ({}/{}, files {}..{} of {}) does not match the file list ({} files)",
                sh.index,
                sh.count,
                sh.first_file,
                sh.first_file + sh.files,
                sh.files_total,
                m.files.len()
            ));
        }
    }
    if counts != m.counts {
        r.problems
            .push("status counts differ from the file list".into());
    }
    // Mapping: checksum, then content against the rows the file list implies.
    match (&m.mapping, cfg.mapping) {
        (None, MappingKind::None) => {}
        (Some(a), MappingKind::I64 | MappingKind::I32) => {
            let elem = cfg.mapping.size().unwrap_or(8) as u64;
            let before = r.problems.len();
            check_array(out, a, &[m.rows, 6], elem, hash_data, &mut r.problems);
            if r.problems.len() == before {
                let mut expected = Xxh3::new();
                let mut buf = Vec::with_capacity(1 << 16);
                for (fi, f) in m.files.iter().enumerate() {
                    for s in 0..f.rows {
                        let seg = g.segment(s as usize);
                        let vals = [
                            (f.first_row + s) as i64,
                            fi as i64,
                            seg.long_idx as i64,
                            seg.short_idx as i64,
                            seg.start_sample as i64,
                            seg.end_sample as i64,
                        ];
                        for v in vals {
                            if elem == 4 {
                                buf.extend_from_slice(&(v as i32).to_le_bytes());
                            } else {
                                buf.extend_from_slice(&v.to_le_bytes());
                            }
                        }
                        if buf.len() >= 1 << 16 {
                            expected.update(&buf);
                            buf.clear();
                        }
                    }
                }
                expected.update(&buf);
                if format!("{:016x}", expected.digest()) != a.xxh3_64 {
                    r.problems.push(format!(
                        "{}: rows do not match the file list of the manifest",
                        a.file
                    ));
                }
            }
        }
        _ => r
            .problems
            .push("mapping file presence does not match the configuration".into()),
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
