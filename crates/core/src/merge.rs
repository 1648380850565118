//! `merge`: joins the outputs of `run --shard K/N` into one dataset whose arrays are
//! byte-identical to a single run over every file (docs/SCALING.md).
//!
//! Before a byte is written, merge checks that the shards belong together: each one verifies
//! (manifest, headers, sizes, row accounting), they saw the same file list (fingerprint),
//! were made with the same output-shaping parameters, and their slices tile the list exactly.
//! Then it streams each shard's arrays in file order into `OUT/.melpipe-partial/` (features
//! copied, mapping renumbered: `idx` and `file_idx` become global), hashing what it reads to
//! check it against the shard's manifest and what it writes for the new manifest, and commits
//! the way a run does. Memory stays at one copy buffer whatever the size of the shards.

use crate::config::{Layout, MappingKind, Params};
use crate::error::{Error, Result};
use crate::format::manifest::{self, ArrayInfo, FileEntry, Manifest, StatusCounts, Timings};
use crate::format::shard::ShardInfo;
use crate::verify;
use crate::write::{self, folder, ArrayFile};
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Instant;
use xxhash_rust::xxh3::Xxh3;

/// Bytes read and written per step: large enough for sequential throughput, small enough not to
/// matter for memory.
const CHUNK: usize = 8 << 20;

/// One shard output, checked and ready to be copied.
struct Shard {
    dir: PathBuf,
    manifest: Manifest,
    info: ShardInfo,
}

impl Shard {
    /// "shard K/N (DIR)", as messages name it.
    fn label(&self) -> String {
        format!(
            "shard {}/{} ({})",
            self.info.index,
            self.info.count,
            self.dir.display()
        )
    }
    fn files(&self) -> std::ops::Range<u64> {
        self.info.first_file..self.info.first_file + self.info.files
    }
}

/// What a merge did.
#[derive(Debug)]
pub struct MergeSummary {
    /// The manifest that was committed.
    pub manifest: Manifest,
    /// Number of shards joined.
    pub shards: usize,
    /// Array bytes read from the shards (and written).
    pub bytes: u64,
}

/// Removes the partial folder of a merge that failed before its manifest was in place, so
/// that the same merge can simply run again; kept if it still holds a previous output that
/// could not be put back.
fn drop_partial(partial: &Path) {
    if !partial.join(folder::REPLACED_DIR).exists() {
        let _ = std::fs::remove_dir_all(partial);
    }
}

/// Joins the shard outputs in `dirs` (any order) into `out`. `force` replaces an existing
/// output or an interrupted run's partial output in `out`.
pub fn merge(dirs: &[PathBuf], out: &Path, force: bool) -> Result<MergeSummary> {
    let t0 = Instant::now();
    if dirs.is_empty() {
        return Err(Error::Input("merge needs at least one shard output".into()));
    }
    let mut shards = dirs
        .iter()
        .map(|d| load(d, out))
        .collect::<Result<Vec<_>>>()?;
    shards.sort_by_key(|s| (s.info.first_file, s.info.index, s.info.count));
    check_compatible(&shards)?;
    check_tiling(&shards)?;
    let cfg = shards[0].manifest.config.clone();
    let rows: u64 = shards.iter().map(|s| s.manifest.rows).sum();
    let files_total = shards[0].info.files_total;
    if cfg.mapping == MappingKind::I32 && (rows > i32::MAX as u64 || files_total > i32::MAX as u64)
    {
        return Err(Error::Config(format!(
            "the merged dataset has {rows} rows of {files_total} files, too many for the i32 mapping of these shards; run them again with --mapping i64"
        )));
    }
    let devices: BTreeSet<String> = shards.iter().map(|s| s.manifest.device.clone()).collect();
    if devices.len() > 1 {
        tracing::warn!(
            "the shards were computed on different devices ({}): CPU and GPU backends agree only to rounding, so the merged features are not byte-identical to a single run on either",
            devices.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let versions: BTreeSet<String> = shards
        .iter()
        .map(|s| s.manifest.melpipe_version.clone())
        .collect();
    if versions.len() > 1 {
        tracing::warn!(
            "the shards were made by different melpipe versions ({})",
            versions.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }

    folder::create(out)?;
    // Held until the merge returns: no run or other merge writes into OUT meanwhile.
    let _lock = folder::OutLock::acquire(out)?;
    if out.join(write::PARTIAL_DIR).exists() && !force {
        return Err(Error::Output {
            path: out.to_path_buf(),
            msg: format!(
                "holds the partial output of an interrupted run or merge ({}); pass --force to discard it",
                write::PARTIAL_DIR
            ),
        });
    }
    let discard = folder::prepare(
        out,
        folder::Allow {
            replace: force,
            discard_partial: force,
        },
    )?;
    let partial = out.join(write::PARTIAL_DIR);
    std::fs::create_dir_all(&partial).map_err(|e| Error::io("creating", &partial, e))?;
    let init_s = t0.elapsed().as_secs_f64();
    let t_run = Instant::now();
    let copied = copy_all(&shards, &cfg, &partial);
    let (features, mapping, bytes) = match copied {
        Ok(c) => c,
        Err(e) => {
            drop_partial(&partial);
            return Err(e);
        }
    };
    let run_s = t_run.elapsed().as_secs_f64();

    let t_commit = Instant::now();
    let mut files: Vec<FileEntry> = Vec::with_capacity(files_total as usize);
    let mut counts = StatusCounts::default();
    let mut row0 = 0u64;
    // Moved, not cloned: the file list is the one part of a merge that grows with the dataset.
    for s in &mut shards {
        for mut f in std::mem::take(&mut s.manifest.files) {
            counts.add(&f.status);
            f.first_row += row0;
            files.push(f);
        }
        row0 += s.manifest.rows;
    }
    let first = &shards[0].manifest;
    let mut manifest = Manifest {
        format: manifest::FORMAT.into(),
        melpipe_version: if versions.len() == 1 {
            first.melpipe_version.clone()
        } else {
            env!("CARGO_PKG_VERSION").into()
        },
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        config: cfg,
        geometry: first.geometry.clone(),
        rows,
        features,
        mapping,
        counts,
        failures: Vec::new(),
        device: format!(
            "{} (merged from {} shards)",
            devices.iter().cloned().collect::<Vec<_>>().join(" + "),
            shards.len()
        ),
        device_choice: {
            let mut choices: Vec<&str> = Vec::new();
            for c in shards.iter().map(|s| s.manifest.device_choice.as_str()) {
                if !c.is_empty() && !choices.contains(&c) {
                    choices.push(c);
                }
            }
            choices.join(" | ")
        },
        cpu_head_files: shards.iter().map(|s| s.manifest.cpu_head_files).sum(),
        empty_mel_filters: first.empty_mel_filters.clone(),
        timings: Timings {
            init_s,
            run_s,
            ..Timings::default()
        },
        files,
        shard: None,
        manifest_xxh3_64: String::new(),
    };
    // As for runs, the stored times run up to the manifest's own write.
    manifest.timings.commit_s = t_commit.elapsed().as_secs_f64();
    manifest.timings.total_s = t0.elapsed().as_secs_f64();
    if let Err(e) = write::commit_into(&partial, out, &mut manifest) {
        drop_partial(&partial);
        return Err(e);
    }
    std::fs::remove_dir(&partial).map_err(|e| Error::io("removing", &partial, e))?;
    write::sync_dir(out)?;
    discard.wait();
    Ok(MergeSummary {
        manifest,
        shards: shards.len(),
        bytes,
    })
}

/// Reads and structurally verifies one shard output.
fn load(dir: &Path, out: &Path) -> Result<Shard> {
    if same_folder(dir, out) {
        return Err(Error::Input(format!(
            "the merge output {} is one of the shards; choose another folder",
            out.display()
        )));
    }
    let report = verify::verify_without_data(dir);
    let manifest = match report.manifest {
        Some(m) if report.problems.is_empty() => m,
        _ => {
            return Err(Error::Input(format!(
                "shard output {} does not verify: {}; run `melpipe verify {}`, and run that shard again",
                dir.display(),
                report.problems.join("; "),
                dir.display()
            )))
        }
    };
    let Some(info) = manifest.shard.clone() else {
        return Err(Error::Input(format!(
            "{} is not a shard: its manifest has no shard record (merge joins the outputs of `melpipe run --shard K/N`)",
            dir.display()
        )));
    };
    // The shard record agrees with the file list: `Manifest::read` checked it.
    let s = Shard {
        dir: dir.to_path_buf(),
        manifest,
        info,
    };
    Ok(s)
}

/// True when `a` and `b` name the same existing folder.
fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Same file list, same output-shaping parameters, same layout of the arrays.
fn check_compatible(shards: &[Shard]) -> Result<()> {
    let a = &shards[0];
    let a_cfg = &a.manifest.config;
    for b in &shards[1..] {
        if (b.info.files_total, &b.info.inputs) != (a.info.files_total, &a.info.inputs) {
            return Err(Error::Input(format!(
                "shards of different datasets: {} saw {} files (inputs fingerprint {}), {} saw {} files (fingerprint {}); files were added, removed or modified between the runs, or other INPUTs were given: run every shard on the same unchanged inputs",
                a.label(),
                a.info.files_total,
                a.info.inputs.xxh3_64,
                b.label(),
                b.info.files_total,
                b.info.inputs.xxh3_64
            )));
        }
        let b_cfg = &b.manifest.config;
        if a_cfg != b_cfg {
            return Err(Error::Input(format!(
                "shards made with different parameters: {} and {} differ in {}; run them again with the same parameters",
                a.label(),
                b.label(),
                a_cfg.differing_keys(b_cfg).join(", ")
            )));
        }
        let descr = |m: &Manifest| {
            (
                m.features.descr.clone(),
                m.features.file.clone(),
                m.mapping
                    .as_ref()
                    .map(|x| (x.descr.clone(), x.file.clone())),
                m.geometry.clone(),
            )
        };
        if descr(&a.manifest) != descr(&b.manifest) {
            return Err(Error::Input(format!(
                "{} and {} hold arrays of different layouts, dtypes or mapping kinds ({} {} vs {} {})",
                a.label(),
                b.label(),
                a.manifest.features.file,
                a.manifest.features.descr,
                b.manifest.features.file,
                b.manifest.features.descr
            )));
        }
    }
    Ok(())
}

/// The slices (sorted by first file) must cover the list once: no overlap, no gap; with one
/// shard count N, every K of 0..N exactly once (empty slices included).
fn check_tiling(shards: &[Shard]) -> Result<()> {
    let total = shards[0].info.files_total;
    let mut seen: BTreeSet<(u64, u64)> = BTreeSet::new();
    for (i, s) in shards.iter().enumerate() {
        if !seen.insert((s.info.index, s.info.count)) {
            let key = (s.info.index, s.info.count);
            let Some(other) = shards[..i]
                .iter()
                .find(|o| (o.info.index, o.info.count) == key)
            else {
                continue;
            };
            let what = if same_folder(&other.dir, &s.dir) {
                "is given twice".to_string()
            } else {
                format!("and {} are the same slice", s.label())
            };
            return Err(Error::Input(format!(
                "overlapping shards: {} {what}; give each shard once",
                other.label()
            )));
        }
    }
    let mut pos = 0u64;
    let mut prev: Option<&Shard> = None;
    let mut gaps: Vec<(u64, u64)> = Vec::new();
    for s in shards {
        let r = s.files();
        if r.start < pos {
            let p = prev.map_or(String::new(), |p| {
                format!("{} (files {}..{})", p.label(), p.info.first_file, pos)
            });
            return Err(Error::Input(format!(
                "overlapping shards: {p} and {} (files {}..{}) both hold files {}..{}; give each slice once",
                s.label(),
                r.start,
                r.end,
                r.start,
                pos.min(r.end)
            )));
        }
        if r.start > pos {
            gaps.push((pos, r.start));
        }
        if r.end > pos || prev.is_none() {
            pos = r.end;
            prev = Some(s);
        }
    }
    if pos < total {
        gaps.push((pos, total));
    }
    let counts: BTreeSet<u64> = shards.iter().map(|s| s.info.count).collect();
    // The first slices missing (N comes from a manifest: never count up to it), and how many.
    let (missing, missing_count): (Vec<String>, u64) = match counts.iter().next() {
        Some(&n) if counts.len() == 1 => (
            (0..n)
                .filter(|k| !seen.contains(&(*k, n)))
                .take(20)
                .map(|k| format!("{k}/{n}"))
                .collect(),
            n - seen.len() as u64,
        ),
        _ => (Vec::new(), 0),
    };
    if gaps.is_empty() && missing.is_empty() {
        return Ok(());
    }
    let mut msg = String::from("missing shards:");
    if !missing.is_empty() {
        msg.push_str(&format!(
            " {}{}",
            missing.join(", "),
            if missing_count > missing.len() as u64 {
                format!(" and {} more", missing_count - missing.len() as u64)
            } else {
                String::new()
            }
        ));
    }
    if !gaps.is_empty() {
        let g: Vec<String> = gaps
            .iter()
            .take(20)
            .map(|(a, b)| format!("{a}..{b}"))
            .collect();
        msg.push_str(&format!(
            " (no shard holds files {} of {total})",
            g.join(", ")
        ));
    }
    let given: Vec<String> = shards
        .iter()
        .map(|s| format!("{}/{}", s.info.index, s.info.count))
        .collect();
    msg.push_str(&format!(
        "; given: {}. Merge needs every slice: run the missing shards, then merge them all",
        given.join(", ")
    ));
    Err(Error::Input(msg))
}

/// Streams every shard's arrays into the partial folder, in file order.
fn copy_all(
    shards: &[Shard],
    cfg: &Params,
    partial: &Path,
) -> Result<(ArrayInfo, Option<ArrayInfo>, u64)> {
    let (fname, mname) = write::array_names(cfg.layout);
    let mut features = ArrayFile::create(
        partial,
        fname,
        cfg.dtype.descr(),
        cfg.layout == Layout::Default,
    )?;
    let mut mapping = match cfg.mapping {
        MappingKind::None => None,
        MappingKind::I64 => Some((ArrayFile::create(partial, mname, "<i8", true)?, 8usize)),
        MappingKind::I32 => Some((ArrayFile::create(partial, mname, "<i4", true)?, 4usize)),
    };
    write::sync_dir(partial)?;
    let mut buf = vec![0u8; CHUNK];
    let (mut row0, mut file0, mut bytes) = (0u64, 0u64, 0u64);
    for s in shards {
        tracing::info!(
            "merging {}: files {}..{}, {} rows",
            s.label(),
            s.info.first_file,
            s.info.first_file + s.info.files,
            s.manifest.rows
        );
        let a = &s.manifest.features;
        let got = copy_array(s, a, &mut buf, usize::MAX, |chunk| features.append(chunk))?;
        check_hash(s, a, got)?;
        bytes += a.data_bytes;
        if let (Some((out, elem)), Some(a)) = (&mut mapping, &s.manifest.mapping) {
            let elem = *elem;
            let row_bytes = 6 * elem;
            let got = copy_array(s, a, &mut buf, row_bytes, |chunk| {
                renumber(chunk, elem, row0, file0)?;
                out.append(chunk)
            })
            .map_err(|e| match e {
                Error::Config(m) => Error::Config(format!("{}: {m}", s.label())),
                e => e,
            })?;
            check_hash(s, a, got)?;
            bytes += a.data_bytes;
        }
        row0 += s.manifest.rows;
        file0 += s.info.files;
    }
    let geometry = &shards[0].manifest.geometry;
    let features = features.finish(vec![row0, geometry.n_mels, geometry.out_frames])?;
    let mapping = match mapping {
        Some((m, _)) => Some(m.finish(vec![row0, 6])?),
        None => None,
    };
    Ok((features, mapping, bytes))
}

/// Reads array `a` of shard `s` in chunks of a multiple of `unit` bytes, hands each chunk to
/// `sink` (which may change it in place), and returns the XXH3 of the bytes as read.
fn copy_array(
    s: &Shard,
    a: &ArrayInfo,
    buf: &mut [u8],
    unit: usize,
    mut sink: impl FnMut(&mut [u8]) -> Result<()>,
) -> Result<u64> {
    let path = s.dir.join(&a.file);
    let mut file = std::fs::File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
    file.seek(SeekFrom::Start(a.header_bytes))
        .map_err(|e| Error::io("reading", &path, e))?;
    let step = if unit == usize::MAX || unit == 0 {
        buf.len()
    } else {
        (buf.len() / unit).max(1) * unit
    };
    let mut hasher = Xxh3::new();
    let mut left = a.data_bytes;
    while left > 0 {
        let n = left.min(step as u64) as usize;
        let chunk = &mut buf[..n];
        file.read_exact(chunk)
            .map_err(|e| Error::io("reading", &path, e))?;
        hasher.update(chunk);
        sink(chunk)?;
        left -= n as u64;
    }
    Ok(hasher.digest())
}

fn check_hash(s: &Shard, a: &ArrayInfo, got: u64) -> Result<()> {
    let got = format!("{got:016x}");
    if got != a.xxh3_64 {
        return Err(Error::Input(format!(
            "{}: {} does not match its manifest (checksum {got}, manifest {}): the shard is damaged; run `melpipe verify {}`, and run that shard again",
            s.label(),
            a.file,
            a.xxh3_64,
            s.dir.display()
        )));
    }
    Ok(())
}

/// Makes a shard's mapping rows global: `idx += row0`, `file_idx += file0`.
fn renumber(rows: &mut [u8], elem: usize, row0: u64, file0: u64) -> Result<()> {
    for row in rows.chunks_exact_mut(6 * elem) {
        for (col, add) in [(0usize, row0), (1, file0)] {
            let cell = &mut row[col * elem..(col + 1) * elem];
            if elem == 4 {
                let v =
                    i32::from_le_bytes([cell[0], cell[1], cell[2], cell[3]]) as i64 + add as i64;
                let v = i32::try_from(v).map_err(|_| {
                    Error::Config(format!(
                        "value {v} does not fit the i32 mapping; run the shards again with --mapping i64"
                    ))
                })?;
                cell.copy_from_slice(&v.to_le_bytes());
            } else {
                let mut b = [0u8; 8];
                b.copy_from_slice(cell);
                // Wrapping: bytes of a damaged shard are refused by their checksum once read.
                let v = i64::from_le_bytes(b).wrapping_add(add as i64);
                cell.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumber_shifts_idx_and_file_idx_only() {
        let rows: Vec<i64> = vec![0, 0, 0, 1, 256, 768, 1, 0, 0, 2, 512, 1024];
        let mut b: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        renumber(&mut b, 8, 100, 7).unwrap();
        let back: Vec<i64> = b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, [100, 7, 0, 1, 256, 768, 101, 7, 0, 2, 512, 1024]);
        let mut b: Vec<u8> = rows
            .iter()
            .flat_map(|v| (*v as i32).to_le_bytes())
            .collect();
        renumber(&mut b, 4, 5, 2).unwrap();
        let back: Vec<i32> = b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, [5, 2, 0, 1, 256, 768, 6, 2, 0, 2, 512, 1024]);
        let mut b: Vec<u8> = rows
            .iter()
            .flat_map(|v| (*v as i32).to_le_bytes())
            .collect();
        let e = renumber(&mut b, 4, i32::MAX as u64, 0).unwrap_err();
        assert!(e.to_string().contains("i32"), "{e}");
    }
}
