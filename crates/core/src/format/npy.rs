//! NumPy `.npy` (format version 1.0) headers: written with a fixed size so the array can be
//! streamed before its final shape is known, and parsed back for `verify` and `inspect`.

use crate::error::{Error, Result};
use std::path::Path;

/// Bytes of every header melpipe writes (magic, version, length, dict, padding, newline).
/// 128 holds any shape of three 20-digit dimensions and keeps the data 64-byte aligned.
pub const HEADER_LEN: usize = 128;

const MAGIC: &[u8] = b"\x93NUMPY";

/// A parsed `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// NumPy dtype string, e.g. `<f2`.
    pub descr: String,
    /// Fortran order flag (melpipe always writes C order).
    pub fortran_order: bool,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Offset of the first data byte.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// The [`HEADER_LEN`]-byte header of a C-order array.
pub fn header(descr: &str, shape: &[u64]) -> Vec<u8> {
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&[1, 0]);
    h.extend_from_slice(&((HEADER_LEN - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    assert!(h.len() < HEADER_LEN, "npy header overflow: {dict}");
    h.resize(HEADER_LEN - 1, b' ');
    h.push(b'\n');
    h
}

/// Parses the header at the start of `bytes` (at least the header's bytes).
pub fn parse_header(bytes: &[u8]) -> std::result::Result<NpyHeader, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated .npy header")?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
    let field = |key: &str| -> std::result::Result<&str, String> {
        let k = format!("'{key}':");
        let i = text.find(&k).ok_or(format!("header lacks {key}"))? + k.len();
        Ok(text[i..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("bad descr")?
        .to_string();
    let fortran_order = field("fortran_order")?.starts_with("True");
    let shape_s = field("shape")?;
    let shape_s = shape_s
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("bad shape")?;
    let shape = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().map_err(|_| format!("bad dimension `{s}`")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        data_offset: end,
    })
}

/// Reads and parses the header of the file at `path`.
pub fn read_header(path: &Path) -> Result<NpyHeader> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading", path, e)),
        }
    }
    parse_header(&buf[..n]).map_err(|m| Error::Output {
        path: path.to_path_buf(),
        msg: m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_fixed_size_and_round_trips() {
        for shape in [
            vec![9_376_431u64, 32, 1],
            vec![0, 6],
            vec![7],
            vec![u64::MAX / 4, 4096, 4096],
        ] {
            let h = header("<f2", &shape);
            assert_eq!(h.len(), HEADER_LEN);
            assert_eq!(h[HEADER_LEN - 1], b'\n');
            let p = parse_header(&h).unwrap();
            assert_eq!(p.shape, shape);
            assert_eq!(p.descr, "<f2");
            assert!(!p.fortran_order);
            assert_eq!(p.data_offset, HEADER_LEN);
        }
        assert!(String::from_utf8_lossy(&header("<i8", &[5])).contains("(5,)"));
    }

    #[test]
    fn bad_headers_are_errors() {
        assert!(parse_header(b"hello world").is_err());
        let mut h = header("<f4", &[1, 2]);
        h.truncate(40);
        assert!(parse_header(&h).is_err());
    }
}
