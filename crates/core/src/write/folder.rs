//! The output folder as a whole: who may write into it (a lock held for a run's or a merge's
//! whole life), which of its files are melpipe's (a previous output, the pieces of an
//! interrupted commit) and which are the user's, and how a new output replaces an old one
//! without losing it before the new one is committed.
//!
//! What melpipe treats as its own: a `manifest.json` that identifies itself as melpipe's
//! (its `format`) and the arrays it names, and `OUT/.melpipe-*`. Any other file in `OUT` with
//! one of melpipe's names ([`manifest::OUTPUT_NAMES`]) is the user's: a run refuses the
//! folder, `--force` or not, and deletes nothing.
//!
//! Replacing (`--force`): the previous output stays in place, usable, while the new run works.
//! At commit its files move into `.melpipe-partial/replaced/` (the manifest first, so what is
//! left in `OUT` never verifies), the new arrays and then the new manifest are renamed in, and
//! only then is the old output deleted. A commit that fails puts the old output back; one that
//! is killed is finished by `--resume`, or undone by `--force` (the old output is put back
//! before the partial folder is discarded).

use crate::error::{Error, Result};
use crate::format::manifest::{self, OUTPUT_NAMES};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Name of the folder a run writes into before it commits.
pub const PARTIAL_DIR: &str = ".melpipe-partial";

/// Name of the lock file in `OUT`, held while a run or merge writes there.
pub const LOCK_NAME: &str = ".melpipe-lock";

/// Folder inside [`PARTIAL_DIR`] that holds the previous output while a commit replaces it.
pub const REPLACED_DIR: &str = "replaced";

/// Hidden folder of `OUT` that receives what is discarded; emptied on a background thread.
pub const DISCARD_DIR: &str = ".melpipe-discarded";

/// fsyncs a folder so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsyncing folder", dir, e))
}

/// Creates `out` (with its parents) unless it is a folder already. A path that exists and is
/// not a folder, or a symbolic link to nothing, is an error that says so.
pub fn create(out: &Path) -> Result<()> {
    let err = |msg: String| Error::Output {
        path: out.to_path_buf(),
        msg,
    };
    match std::fs::symlink_metadata(out) {
        Ok(m) if m.file_type().is_symlink() && !out.exists() => {
            let to = std::fs::read_link(out).unwrap_or_default();
            return Err(err(format!(
                "is a symbolic link to {}, which does not exist: create that folder, or choose another output",
                to.display()
            )));
        }
        Ok(_) if !out.is_dir() => return Err(err("exists and is not a folder".into())),
        _ => {}
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io("creating output folder", out, e))
}

/// An exclusive lock on an output folder: `OUT/.melpipe-lock`, locked with `flock` and holding
/// the owner's process id, removed when the lock is dropped. The kernel releases the lock of a
/// process that dies, so a killed run never leaves the folder locked.
///
/// On NFS the lock is as good as the server's lock manager (`flock` is then a POSIX lock over
/// the network); on a file system that has no locks at all melpipe warns and goes on unlocked.
#[derive(Debug)]
pub struct OutLock {
    file: Option<File>,
    path: PathBuf,
}

impl OutLock {
    /// Locks `out` (which must exist: [`create`]), or says which process holds it.
    pub fn acquire(out: &Path) -> Result<OutLock> {
        use std::io::{Read, Seek, Write};
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let path = out.join(LOCK_NAME);
        // A holder that ends removes the file; a process that locked the removed file tries again.
        for _ in 0..16 {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| Error::io("creating the lock file", &path, e))?;
            // SAFETY: flock on a descriptor that is open for the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EWOULDBLOCK) => {
                        // A holder that has just locked writes its id a moment later.
                        let holder = (0..20)
                            .find_map(|i| {
                                if i > 0 {
                                    std::thread::sleep(std::time::Duration::from_millis(5));
                                }
                                let mut text = String::new();
                                file.rewind().ok()?;
                                file.read_to_string(&mut text).ok()?;
                                text.lines().next()?.trim().parse::<u32>().ok()
                            })
                            .map_or("another process".to_string(), |p| format!("process {p}"));
                        return Err(Error::Output {
                            path: out.to_path_buf(),
                            msg: format!(
                                "is in use by {holder} (a melpipe run or merge writing there): wait for it to end, or choose another folder"
                            ),
                        });
                    }
                    Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::ENOSYS) => {
                        tracing::warn!(
                            "cannot lock {} on this file system ({e}): make sure no other run writes into it",
                            out.display()
                        );
                        return Ok(OutLock { file: None, path });
                    }
                    _ => return Err(Error::io("locking", &path, e)),
                }
            }
            let same = match (file.metadata(), std::fs::symlink_metadata(&path)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if !same {
                continue;
            }
            let pid = format!("{}\n", std::process::id());
            file.set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| file.write_all(pid.as_bytes()))
                .map_err(|e| Error::io("writing", &path, e))?;
            return Ok(OutLock {
                file: Some(file),
                path,
            });
        }
        Err(Error::Output {
            path: out.to_path_buf(),
            msg: format!("could not lock {LOCK_NAME}: other processes keep replacing it"),
        })
    }
}

impl Drop for OutLock {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        // Removed while still held, and only if it is still this lock's file.
        if let Some(f) = &self.file {
            if let (Ok(a), Ok(b)) = (f.metadata(), std::fs::symlink_metadata(&self.path)) {
                if a.dev() == b.dev() && a.ino() == b.ino() {
                    let _ = std::fs::remove_file(&self.path);
                }
            }
        }
    }
}

/// The file names a melpipe manifest at `path` owns (itself and the arrays it names), or why
/// the file is not one: not readable as JSON, another `format`, or array names melpipe never
/// writes. Only what identifies the manifest is read: its size does not matter.
fn owned_by(path: &Path) -> std::result::Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Named {
        file: String,
    }
    #[derive(serde::Deserialize)]
    struct Identity {
        format: String,
        features: Named,
        mapping: Option<Named>,
    }
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a FIFO named manifest.json must not wait for a writer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    if !f.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    let id: Identity = serde_json::from_reader(std::io::BufReader::new(f))
        .map_err(|e| format!("not a melpipe manifest: {e}"))?;
    if !id.format.starts_with("melpipe-manifest/") {
        return Err(format!("format `{}` is not melpipe's", id.format));
    }
    let mut names = vec![manifest::FILE_NAME.to_string(), id.features.file];
    names.extend(id.mapping.map(|m| m.file));
    if let Some(n) = names.iter().find(|n| !OUTPUT_NAMES.contains(&n.as_str())) {
        return Err(format!("names `{n}`, a file melpipe never writes"));
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// What an output folder holds of melpipe's: see [`Previous::find`].
#[derive(Debug, Default)]
pub struct Previous {
    /// The files of a complete output (its manifest and the arrays it names) in `OUT`.
    pub complete: Vec<String>,
    /// Files in `OUT` left by a commit that was interrupted while it set the previous output
    /// aside (no manifest in `OUT`): that output's arrays, named by its manifest, which had
    /// moved into the partial folder already.
    pub pieces: Vec<String>,
    /// Files with melpipe's names that are not melpipe's, each with why.
    pub foreign: Vec<(String, String)>,
}

impl Previous {
    /// Looks at `out`. Pieces are named by the manifest of an output that a commit had set
    /// aside in the partial folder; the partial folder's own manifest names no piece: its new
    /// arrays are taken back into it first ([`take_back`]), so a file in `out` it names is
    /// someone else's.
    pub fn find(out: &Path) -> Previous {
        let mut p = Previous::default();
        let present = |n: &str| std::fs::symlink_metadata(out.join(n)).is_ok();
        let top = out.join(manifest::FILE_NAME);
        if present(manifest::FILE_NAME) {
            match owned_by(&top) {
                Ok(names) => p.complete = names.into_iter().filter(|n| present(n)).collect(),
                Err(why) => p.foreign.push((manifest::FILE_NAME.into(), why)),
            }
        }
        if p.complete.is_empty() && p.foreign.is_empty() {
            let aside = out
                .join(PARTIAL_DIR)
                .join(REPLACED_DIR)
                .join(manifest::FILE_NAME);
            if let Ok(names) = owned_by(&aside) {
                p.pieces = names.into_iter().filter(|n| present(n)).collect();
            }
        }
        for n in OUTPUT_NAMES {
            let known = p.complete.iter().chain(&p.pieces).any(|k| k == n)
                || p.foreign.iter().any(|(k, _)| k == n);
            if present(n) && !known {
                p.foreign.push((
                    n.to_string(),
                    "no melpipe manifest in the folder names it".into(),
                ));
            }
        }
        p
    }

    /// The error for a folder with foreign files, if it has any.
    pub fn refuse_foreign(&self, out: &Path) -> Result<()> {
        if self.foreign.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = self
            .foreign
            .iter()
            .map(|(n, why)| format!("{n} ({why})"))
            .collect();
        Err(Error::Output {
            path: out.to_path_buf(),
            msg: format!(
                "holds files that melpipe did not write: {}; melpipe neither replaces nor deletes them: move them away, or choose another folder",
                list.join(", ")
            ),
        })
    }
}

/// Moves `name` from `from` to `to` (both folders), if it is there.
fn move_if_present(from: &Path, to: &Path, name: &str) -> Result<()> {
    let src = from.join(name);
    if std::fs::symlink_metadata(&src).is_err() {
        return Ok(());
    }
    std::fs::rename(&src, to.join(name)).map_err(|e| Error::io("moving", &src, e))
}

/// Moves the previous output in `out` into `partial/replaced`, its manifest first (so what is
/// left never verifies), and fsyncs both folders. Files a killed commit moved there already
/// stay there.
pub(crate) fn set_aside(out: &Path, partial: &Path, previous: &Previous) -> Result<()> {
    if previous.complete.is_empty() && previous.pieces.is_empty() {
        return Ok(());
    }
    let aside = partial.join(REPLACED_DIR);
    std::fs::create_dir_all(&aside).map_err(|e| Error::io("creating", &aside, e))?;
    let mut names: Vec<&String> = previous.complete.iter().chain(&previous.pieces).collect();
    // The manifest first.
    names.sort_by_key(|n| n.as_str() != manifest::FILE_NAME);
    for (i, n) in names.iter().enumerate() {
        move_if_present(out, &aside, n)?;
        if i == 0 {
            sync_dir(out)?;
        }
    }
    sync_dir(&aside)?;
    sync_dir(out)
}

/// Undoes a commit that did not finish (`OUT` has no manifest yet): the new arrays already
/// moved into `out` go back into `partial`, then the previous output that the commit set
/// aside in `partial/replaced` goes back into `out`, its manifest last. For a commit that
/// failed, and before a partial folder is discarded. Nothing happens once `out` has a
/// manifest: the commit was complete.
pub(crate) fn put_back(out: &Path, partial: &Path) -> Result<()> {
    if std::fs::symlink_metadata(out.join(manifest::FILE_NAME)).is_ok() {
        return Ok(());
    }
    take_back(out, partial)?;
    let aside = partial.join(REPLACED_DIR);
    let Ok(mut names) = owned_by(&aside.join(manifest::FILE_NAME)) else {
        return Ok(());
    };
    // The manifest last.
    names.sort_by_key(|n| n.as_str() == manifest::FILE_NAME);
    for n in &names {
        move_if_present(&aside, out, n)?;
    }
    let _ = std::fs::remove_dir(&aside);
    sync_dir(partial)?;
    sync_dir(out)?;
    tracing::warn!("put the previous output back into {}", out.display());
    Ok(())
}

/// Takes back into `partial` the new arrays that a commit which did not finish had moved into
/// `out`: those that the partial folder's own manifest names (written before any rename) and
/// that the partial folder lacks. Nothing else in `out` is touched, and nothing happens before
/// a commit started (no manifest in `partial`).
pub(crate) fn take_back(out: &Path, partial: &Path) -> Result<()> {
    let Ok(new) = owned_by(&partial.join(manifest::FILE_NAME)) else {
        return Ok(());
    };
    for n in new.iter().filter(|n| n.as_str() != manifest::FILE_NAME) {
        if std::fs::symlink_metadata(partial.join(n)).is_err() {
            move_if_present(out, partial, n)?;
        }
    }
    Ok(())
}

/// Whether the commit of the run in `out`'s partial folder finished: `out` has a manifest and
/// the partial folder holds neither a manifest nor the features array (both are renamed into
/// `out` by the commit, the manifest last). A partial folder that still holds them belongs to
/// a run that has yet to replace the output in `out` (`--force`).
pub fn commit_finished(out: &Path, features: &str) -> bool {
    let partial = out.join(PARTIAL_DIR);
    let here = |p: PathBuf| std::fs::symlink_metadata(p).is_ok();
    here(out.join(manifest::FILE_NAME))
        && !here(partial.join(manifest::FILE_NAME))
        && !here(partial.join(features))
}

/// The background removal of what [`prepare`] discarded. Dropping it (or [`Self::wait`])
/// waits for the removal, so a finished run leaves no discarded files behind.
#[derive(Debug, Default)]
#[must_use = "dropping it at once waits for the removal; keep it until the run ends"]
pub struct Discard(Option<std::thread::JoinHandle<()>>);

impl Discard {
    /// Waits until the discarded files are removed.
    pub fn wait(mut self) {
        self.join();
    }

    fn join(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        self.join();
    }
}

/// What a new run or merge may do to what `OUT` holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Allow {
    /// Replace a previous complete output (at commit: `--force`).
    pub replace: bool,
    /// Discard the partial folder of an interrupted run (`--force`, or `--resume` where the
    /// journal shows nothing committed).
    pub discard_partial: bool,
}

/// Checks that `out` (created and locked) can receive a new output, and clears what `allow`
/// lets go. A previous complete output is only checked here: it stays in place until the new
/// output commits (`write::publish`). A discarded partial folder (with any pieces of its
/// interrupted commit, after putting back an output it had set aside) is moved into
/// `OUT/.melpipe-discarded` with one rename and the folder is fsynced; the bytes are deleted
/// on a background thread while the run works (a gigabyte of cached output took 0.3 s to
/// delete on the H100 machine). A discard folder left by a killed run is removed the same way.
pub fn prepare(out: &Path, allow: Allow) -> Result<Discard> {
    let partial = out.join(PARTIAL_DIR);
    let has_partial = std::fs::symlink_metadata(&partial).is_ok();
    if has_partial && !allow.discard_partial {
        return Err(Error::Output {
            path: out.to_path_buf(),
            msg: format!(
                "holds the partial output of an interrupted run ({PARTIAL_DIR}); pass --resume to continue it, or --force to discard it"
            ),
        });
    }
    if has_partial {
        // A commit killed while it replaced an output: the old one goes back first.
        put_back(out, &partial)?;
    }
    let previous = Previous::find(out);
    previous.refuse_foreign(out)?;
    if !previous.complete.is_empty() && !allow.replace {
        return Err(Error::Output {
            path: out.to_path_buf(),
            msg: format!(
                "already holds the output of another run ({}); pass --force to replace it (it stays in place until the new output is committed), or choose another folder",
                previous.complete.join(", ")
            ),
        });
    }
    let trash = out.join(DISCARD_DIR);
    if std::fs::symlink_metadata(&trash).is_ok_and(|m| !m.is_dir()) {
        // Not a folder melpipe made: a name of melpipe's own, so it goes.
        std::fs::remove_file(&trash).map_err(|e| Error::io("removing", &trash, e))?;
    }
    if has_partial {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dest = trash.join(format!("{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dest).map_err(|e| Error::io("creating", &dest, e))?;
        tracing::warn!(
            "discarding the partial output of an interrupted run in {}",
            partial.display()
        );
        std::fs::rename(&partial, dest.join(PARTIAL_DIR))
            .map_err(|e| Error::io("moving aside", &partial, e))?;
        sync_dir(out)?;
    }
    if std::fs::symlink_metadata(&trash).is_err() {
        return Ok(Discard::default());
    }
    let handle = std::thread::Builder::new()
        .name("melpipe-discard".into())
        .spawn(move || {
            if let Err(e) = std::fs::remove_dir_all(&trash) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("could not remove {}: {e}", trash.display());
                }
            }
        })
        .map_err(|e| Error::io("starting a thread for", out, e))?;
    Ok(Discard(Some(handle)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{"format":"melpipe-manifest/1","features":{"file":"features.npy"},"mapping":{"file":"mapping.npy"}}"#;

    fn write(p: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn prepare_err(out: &Path, allow: Allow) -> String {
        prepare(out, allow).unwrap_err().to_string()
    }

    const FORCE: Allow = Allow {
        replace: true,
        discard_partial: true,
    };

    #[test]
    fn files_with_melpipes_names_that_no_melpipe_manifest_names_are_never_touched() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        // The user's labels in a manifest.json, another tool's features.npy.
        write(&out.join("manifest.json"), br#"{"labels": [1, 2]}"#);
        write(&out.join("features.npy"), b"theirs");
        let e = prepare_err(&out, FORCE);
        assert!(e.contains("holds files that melpipe did not write"), "{e}");
        assert!(e.contains("manifest.json (not a melpipe manifest"), "{e}");
        assert!(e.contains("features.npy (no melpipe manifest"), "{e}");
        assert_eq!(read(&out.join("manifest.json")), r#"{"labels": [1, 2]}"#);
        assert_eq!(read(&out.join("features.npy")), "theirs");
        // A melpipe manifest naming a file melpipe never writes is not melpipe's either.
        write(
            &out.join("manifest.json"),
            br#"{"format":"melpipe-manifest/1","features":{"file":"../labels.csv"},"mapping":null}"#,
        );
        let e = prepare_err(&out, FORCE);
        assert!(e.contains("a file melpipe never writes"), "{e}");
        // An array beside a real output that its manifest does not name.
        write(&out.join("manifest.json"), MANIFEST.as_bytes());
        write(&out.join("PIPELINE_FEATURES.DAT"), b"theirs too");
        let e = prepare_err(&out, FORCE);
        assert!(
            e.contains("PIPELINE_FEATURES.DAT (no melpipe manifest"),
            "{e}"
        );
        assert!(out.join("PIPELINE_FEATURES.DAT").exists());
    }

    #[test]
    fn a_previous_output_stays_in_place_until_a_commit_replaces_it() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        write(&out.join("manifest.json"), MANIFEST.as_bytes());
        write(&out.join("features.npy"), b"old features");
        write(&out.join("mapping.npy"), b"old mapping");
        write(&out.join("notes.txt"), b"mine");
        let e = prepare_err(&out, Allow::default());
        assert!(e.contains("already holds the output of another run"), "{e}");
        prepare(&out, FORCE).unwrap().wait();
        // Checked, not moved: the old output is usable while the new run works.
        assert_eq!(read(&out.join("features.npy")), "old features");
        let partial = out.join(PARTIAL_DIR);
        write(&partial.join("features.npy"), b"new features");
        write(
            &partial.join("manifest.json"),
            br#"{"format":"melpipe-manifest/1","features":{"file":"features.npy"},"mapping":null}"#,
        );
        let previous = Previous::find(&out);
        assert_eq!(previous.complete.len(), 3);
        set_aside(&out, &partial, &previous).unwrap();
        assert!(!out.join("manifest.json").exists());
        assert_eq!(
            read(&partial.join(REPLACED_DIR).join("mapping.npy")),
            "old mapping"
        );
        // A commit that fails after moving the new features in puts everything back.
        std::fs::rename(partial.join("features.npy"), out.join("features.npy")).unwrap();
        put_back(&out, &partial).unwrap();
        assert_eq!(read(&out.join("features.npy")), "old features");
        assert_eq!(read(&out.join("mapping.npy")), "old mapping");
        assert_eq!(read(&out.join("manifest.json")), MANIFEST);
        assert_eq!(read(&partial.join("features.npy")), "new features");
        assert!(!partial.join(REPLACED_DIR).exists());
        assert_eq!(read(&out.join("notes.txt")), "mine");
    }

    #[test]
    fn force_after_a_killed_commit_puts_the_old_output_back_before_discarding() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let partial = out.join(PARTIAL_DIR);
        let aside = partial.join(REPLACED_DIR);
        // Killed after the old manifest and mapping moved aside and the new features moved in.
        write(&aside.join("manifest.json"), MANIFEST.as_bytes());
        write(&aside.join("mapping.npy"), b"old mapping");
        write(&out.join("features.npy"), b"old features");
        write(&partial.join("journal.jsonl"), b"{}\n");
        write(&partial.join("manifest.json"), br#"{"format":"melpipe-manifest/1","features":{"file":"PIPELINE_FEATURES.DAT"},"mapping":null}"#);
        write(&out.join("PIPELINE_FEATURES.DAT"), b"new");
        // Without --force (or --resume) nothing moves.
        let e = prepare_err(&out, Allow::default());
        assert!(e.contains("--resume to continue it"), "{e}");
        assert!(!out.join("manifest.json").exists());
        prepare(&out, FORCE).unwrap().wait();
        assert_eq!(read(&out.join("manifest.json")), MANIFEST);
        assert_eq!(read(&out.join("features.npy")), "old features");
        assert_eq!(read(&out.join("mapping.npy")), "old mapping");
        assert!(!out.join("PIPELINE_FEATURES.DAT").exists());
        assert!(!partial.exists());
        assert!(!out.join(DISCARD_DIR).exists());
    }

    #[test]
    fn a_file_that_appears_where_a_commit_would_go_is_never_taken() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let partial = out.join(PARTIAL_DIR);
        // A commit refused a user's features.npy that appeared during the run: the partial
        // folder holds its own manifest and arrays.
        write(
            &partial.join("manifest.json"),
            br#"{"format":"melpipe-manifest/2","features":{"file":"features.npy"},"mapping":null}"#,
        );
        write(&partial.join("features.npy"), b"new");
        write(&out.join("features.npy"), b"the user's");
        // Neither --force nor a resume takes it: it is foreign, and stays.
        let e = prepare_err(&out, FORCE);
        assert!(e.contains("features.npy (no melpipe manifest"), "{e}");
        take_back(&out, &partial).unwrap();
        assert_eq!(read(&out.join("features.npy")), "the user's");
        // A run without a mapping does not take a mapping.npy it never wrote.
        write(&out.join("mapping.npy"), b"the user's mapping");
        std::fs::remove_file(partial.join("features.npy")).unwrap();
        std::fs::remove_file(out.join("features.npy")).unwrap();
        write(&out.join("features.npy"), b"new");
        take_back(&out, &partial).unwrap();
        assert_eq!(read(&partial.join("features.npy")), "new");
        assert_eq!(read(&out.join("mapping.npy")), "the user's mapping");
        assert!(!partial.join("mapping.npy").exists());
    }

    #[test]
    fn a_fifo_named_like_a_manifest_is_refused_without_waiting() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let fifo = std::ffi::CString::new(out.join("manifest.json").to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let e = prepare_err(&out, FORCE);
        assert!(e.contains("manifest.json (not a regular file)"), "{e}");
    }

    #[test]
    fn a_commit_is_finished_once_the_partial_folder_holds_neither_manifest_nor_features() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let partial = out.join(PARTIAL_DIR);
        write(&out.join("manifest.json"), MANIFEST.as_bytes());
        write(&partial.join("journal.jsonl"), b"{}\n");
        assert!(commit_finished(&out, "features.npy"));
        // A --force run that has yet to commit: its arrays are still in the partial folder.
        write(&partial.join("features.npy"), b"new");
        assert!(!commit_finished(&out, "features.npy"));
        std::fs::remove_file(partial.join("features.npy")).unwrap();
        write(&partial.join("manifest.json"), MANIFEST.as_bytes());
        assert!(!commit_finished(&out, "features.npy"));
    }

    #[test]
    fn a_discard_folder_left_by_a_killed_run_is_removed_by_the_next() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        write(
            &out.join(DISCARD_DIR).join("1-2").join("features.npy"),
            b"x",
        );
        prepare(&out, Allow::default()).unwrap().wait();
        assert!(!out.join(DISCARD_DIR).exists());
    }

    #[test]
    fn the_lock_names_its_holder_and_is_gone_after_it() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        create(&out).unwrap();
        let held = OutLock::acquire(&out).unwrap();
        assert_eq!(
            read(&out.join(LOCK_NAME)),
            format!("{}\n", std::process::id())
        );
        // flock locks belong to open files: a second open in the same process is refused too.
        let e = OutLock::acquire(&out).unwrap_err().to_string();
        assert!(
            e.contains(&format!("is in use by process {}", std::process::id())),
            "{e}"
        );
        drop(held);
        assert!(!out.join(LOCK_NAME).exists());
        drop(OutLock::acquire(&out).unwrap());
        // A lock file left by a killed holder is not a lock.
        write(&out.join(LOCK_NAME), b"999999\n");
        drop(OutLock::acquire(&out).unwrap());
    }

    #[test]
    fn an_output_path_that_is_a_dangling_link_or_a_file_says_so() {
        let t = tempfile::tempdir().unwrap();
        let link = t.path().join("out");
        std::os::unix::fs::symlink(t.path().join("nowhere"), &link).unwrap();
        let e = create(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link to"), "{e}");
        assert!(e.contains("which does not exist"), "{e}");
        let file = t.path().join("file");
        write(&file, b"x");
        let e = create(&file).unwrap_err().to_string();
        assert!(e.contains("exists and is not a folder"), "{e}");
        // A link to a folder is a folder.
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink(t.path().join("real"), t.path().join("alias")).unwrap();
        create(&t.path().join("alias")).unwrap();
    }
}
