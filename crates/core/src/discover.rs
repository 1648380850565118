//! Discovery: turns the INPUT arguments into the sorted list of audio files to process.
//!
//! Directories are walked in parallel (a shared stack of folders, one visitor per thread);
//! the result is sorted byte-wise by relative path so that row order never depends on the
//! walk, the file system or the thread count.

use crate::config::Extensions;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// One input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputFile {
    /// Path used to open the file.
    pub path: PathBuf,
    /// Path relative to its INPUT (the name recorded in the manifest; defines row order).
    pub rel: PathBuf,
    /// Size in bytes when discovered.
    pub size: u64,
    /// Modification time when discovered, nanoseconds since the epoch (0 if unknown).
    pub mtime_ns: i64,
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    m.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec())
}

/// Expands INPUT arguments (folders, files, `@list.txt`) into the sorted file list.
///
/// Folders are walked recursively for names with one of the extensions `ext` (any case);
/// symbolic links to files are followed, links to folders are not (they could form cycles).
/// Files named one by one or in an `@list` are taken whatever their names. With several INPUTs,
/// relative paths are prefixed with the INPUT's own name so that they stay distinct. Errors: a
/// missing INPUT, an unreadable folder, two inputs giving the same relative path, or no file at
/// all.
pub fn discover(inputs: &[PathBuf], threads: usize, ext: &Extensions) -> Result<Vec<InputFile>> {
    if inputs.is_empty() {
        return Err(Error::Input("no INPUT given".into()));
    }
    let folders = nested_inputs(inputs)?;
    let mut files = Vec::new();
    let prefix_needed = inputs.len() > 1;
    for input in inputs {
        let s = input.as_os_str().as_bytes();
        if let Some(list) = s.strip_prefix(b"@") {
            let list = Path::new(OsStr::from_bytes(list));
            let listed = read_list(list)?;
            // Only when folders are given too: a list alone costs no extra system call.
            if !folders.is_empty() {
                for f in &listed {
                    let Ok(real) = std::fs::canonicalize(&f.path) else {
                        continue;
                    };
                    if let Some(folder) = folder_holding(&folders, &real) {
                        return Err(Error::Input(format!(
                            "{} names {}, which is inside the INPUT folder {} too: its files would be processed twice; give the folder or the list, not both",
                            list.display(),
                            f.path.display(),
                            folder.display()
                        )));
                    }
                }
            }
            files.extend(listed);
            continue;
        }
        let meta = std::fs::metadata(input).map_err(|e| missing_or_io("INPUT", input, e))?;
        let prefix = if prefix_needed {
            input
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| input.clone())
        } else {
            PathBuf::new()
        };
        if meta.is_dir() {
            for (path, rel, size, mtime_ns) in walk(input, threads, ext)? {
                files.push(InputFile {
                    path,
                    rel: prefix.join(rel),
                    size,
                    mtime_ns,
                });
            }
        } else {
            let name = input.file_name().map(PathBuf::from).unwrap_or_default();
            files.push(InputFile {
                path: input.clone(),
                rel: name,
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
            });
        }
    }
    files.sort_by(|a, b| {
        a.rel
            .as_os_str()
            .as_bytes()
            .cmp(b.rel.as_os_str().as_bytes())
    });
    if let Some(w) = files.windows(2).find(|w| w[0].rel == w[1].rel) {
        return Err(Error::Input(format!(
            "two inputs give the same relative path {} ({} and {}); pass them as one folder or rename one",
            w[0].rel.display(),
            w[0].path.display(),
            w[1].path.display()
        )));
    }
    if files.is_empty() {
        let names: Vec<_> = inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::Input(format!(
            "no audio files (*.{}) found in {}",
            ext.names().join(", *."),
            names.join(", ")
        )));
    }
    Ok(files)
}

/// The INPUT folders, resolved, each to the INPUT that first named it; after checking that no
/// INPUT is one of them or lies inside one: each file would otherwise be processed twice under
/// two names (`DATA` and `DATA/sub` give `DATA/sub/x.wav` and `sub/x.wav`). An INPUT that
/// cannot be resolved is left to the error that reading it gives. Each INPUT's ancestors are
/// looked up, so thousands of INPUTs cost thousands of look-ups, not their square.
fn nested_inputs(inputs: &[PathBuf]) -> Result<HashMap<PathBuf, &PathBuf>> {
    let resolved: Vec<(&PathBuf, PathBuf)> = inputs
        .iter()
        .filter(|p| !p.as_os_str().as_bytes().starts_with(b"@"))
        .filter_map(|p| Some((p, std::fs::canonicalize(p).ok()?)))
        .collect();
    let mut folders: HashMap<PathBuf, &PathBuf> = HashMap::new();
    for (input, real) in &resolved {
        if real.is_dir() {
            folders.entry(real.clone()).or_insert(input);
        }
    }
    for (input, real) in &resolved {
        for (depth, ancestor) in real.ancestors().enumerate() {
            let Some(&folder) = folders.get(ancestor) else {
                continue;
            };
            if std::ptr::eq(folder, *input) {
                continue;
            }
            let how = if depth == 0 {
                "is the same folder as"
            } else {
                "is inside"
            };
            return Err(Error::Input(format!(
                "INPUT {} {how} INPUT {}: its files would be processed twice; give only {}",
                input.display(),
                folder.display(),
                folder.display()
            )));
        }
    }
    Ok(folders)
}

/// The INPUT folder that holds `real` (a resolved path), if any.
fn folder_holding<'a>(folders: &HashMap<PathBuf, &'a PathBuf>, real: &Path) -> Option<&'a PathBuf> {
    real.ancestors().find_map(|a| folders.get(a).copied())
}

/// An INPUT or list that does not exist is a usage error (a mistyped path, exit 1); any other
/// failure to read it is an I/O error.
fn missing_or_io(what: &'static str, path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Input(format!("{what} {} does not exist", path.display()))
    } else {
        Error::io(
            if what == "INPUT" {
                "reading input"
            } else {
                "reading file list"
            },
            path,
            e,
        )
    }
}

/// The files a list names, one path per line. A path that cannot be read is kept, so that it
/// becomes a failed file with its reason, like any other unreadable input, rather than
/// stopping the run.
fn read_list(list: &Path) -> Result<Vec<InputFile>> {
    let text = std::fs::read(list).map_err(|e| missing_or_io("file list", list, e))?;
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let path = PathBuf::from(OsStr::from_bytes(line));
        let (size, mtime) = std::fs::metadata(&path).map_or((0, 0), |m| (m.len(), mtime_ns(&m)));
        out.push(InputFile {
            rel: path.clone(),
            path,
            size,
            mtime_ns: mtime,
        });
    }
    Ok(out)
}

struct WalkState {
    stack: Mutex<Vec<PathBuf>>,
    wake: Condvar,
    busy: AtomicUsize,
}

/// (path, path relative to the walk's root, size, mtime_ns).
type Found = (PathBuf, PathBuf, u64, i64);

/// Walks `root` with `threads` visitors; returns (path, path relative to root, size).
fn walk(root: &Path, threads: usize, ext: &Extensions) -> Result<Vec<Found>> {
    let state = WalkState {
        stack: Mutex::new(vec![root.to_path_buf()]),
        wake: Condvar::new(),
        busy: AtomicUsize::new(0),
    };
    let threads = threads.clamp(1, 64);
    let results: Vec<Result<Vec<_>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| visit(&state, root, ext)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Input("walker panicked".into())))
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

fn visit(state: &WalkState, root: &Path, ext: &Extensions) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut failure = None;
    loop {
        let dir = {
            let mut stack = state.stack.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(d) = stack.pop() {
                    state.busy.fetch_add(1, Ordering::SeqCst);
                    break Some(d);
                }
                if state.busy.load(Ordering::SeqCst) == 0 {
                    break None;
                }
                stack = state.wake.wait(stack).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Some(dir) = dir else {
            state.wake.notify_all();
            break;
        };
        let mut subdirs = Vec::new();
        if failure.is_none() {
            if let Err(e) = read_dir_into(&dir, root, ext, &mut found, &mut subdirs) {
                failure = Some(e);
            }
        }
        {
            let mut stack = state.stack.lock().unwrap_or_else(|p| p.into_inner());
            stack.extend(subdirs);
            state.busy.fetch_sub(1, Ordering::SeqCst);
        }
        state.wake.notify_all();
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

fn read_dir_into(
    dir: &Path,
    root: &Path,
    ext: &Extensions,
    found: &mut Vec<Found>,
    subdirs: &mut Vec<PathBuf>,
) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("reading folder", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("reading folder", dir, e))?;
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("reading folder entry", entry.path(), e))?;
        let path = entry.path();
        if ft.is_dir() {
            subdirs.push(path);
        } else if ext.matches(&entry.file_name()) {
            // Links to files are followed; a dangling link is kept so that it is reported
            // as a failed file rather than silently dropped.
            let meta = std::fs::metadata(&path).ok();
            if meta.as_ref().is_some_and(|m| m.is_dir()) {
                continue;
            }
            let (size, mtime) = meta.as_ref().map_or((0, 0), |m| (m.len(), mtime_ns(m)));
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            found.push((path, rel, size, mtime));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn walks_sorts_and_filters() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for p in [
            "b/2.wav",
            "b/10.WAV",
            "a/z/deep.Wav",
            "a/notes.txt",
            "c.wav",
            "x.wav.bak",
            "d/e.flac",
            "d/f.Mp3",
            "d/g.ogg",
            "d/h.aiff",
            "d/flac",
            "d/.flac",
            "d/i.opus",
        ] {
            touch(&r.join(p));
        }
        let rels = |ext: &Extensions, threads| -> Vec<String> {
            discover(&[r.to_path_buf()], threads, ext)
                .unwrap()
                .iter()
                .map(|f| f.rel.to_str().unwrap().to_string())
                .collect()
        };
        for threads in [1, 4] {
            assert_eq!(
                rels(&Extensions::all(), threads),
                [
                    "a/z/deep.Wav",
                    "b/10.WAV",
                    "b/2.wav",
                    "c.wav",
                    "d/e.flac",
                    "d/f.Mp3",
                    "d/g.ogg",
                    "d/h.aiff"
                ]
            );
            let wav: Extensions = "WAV".parse().unwrap();
            assert_eq!(
                rels(&wav, threads),
                ["a/z/deep.Wav", "b/10.WAV", "b/2.wav", "c.wav"]
            );
            let some: Extensions = ".flac, mp3".parse().unwrap();
            assert_eq!(rels(&some, threads), ["d/e.flac", "d/f.Mp3"]);
        }
        assert!("opus".parse::<Extensions>().unwrap_err().contains("`opus`"));
        assert!(",".parse::<Extensions>().is_err());
    }

    #[test]
    fn lists_single_files_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(&r.join("one.wav"));
        touch(&r.join("two.wav"));
        let list = r.join("list.txt");
        std::fs::write(
            &list,
            format!(
                "# comment\n{}\n\n{}\n",
                r.join("two.wav").display(),
                r.join("one.wav").display()
            ),
        )
        .unwrap();
        let mut arg = std::ffi::OsString::from("@");
        arg.push(&list);
        let f = discover(&[PathBuf::from(arg)], 2, &Extensions::all()).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f[0].rel.ends_with("one.wav"));

        let f = discover(&[r.join("one.wav")], 1, &Extensions::all()).unwrap();
        assert_eq!(f[0].rel, PathBuf::from("one.wav"));

        let e = discover(&[r.join("missing")], 1, &Extensions::all())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
        let empty = r.join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = discover(&[empty], 1, &Extensions::all())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no audio files"), "{e}");
        let e = discover(
            &[r.join("one.wav"), r.join("one.wav")],
            1,
            &Extensions::all(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("same relative path"), "{e}");
    }
}
