//! The commit: how a finished output becomes visible, for runs and merges alike.
//!
//! Crash safety: nothing of the new output is in `OUT` until the commit. The arrays are sealed
//! (cut to their data, real header written) and fsynced, the manifest (sealed with its own
//! checksum) is written and fsynced beside them in the partial folder, and only then are they
//! renamed into `OUT`: the arrays first, the manifest last. `verify` needs the manifest and
//! matching checksums, so a run killed at any moment leaves either no output that verifies or
//! a complete one. A previous output is set aside into the partial folder before the renames
//! (its manifest first, so that what is left in `OUT` never verifies) and deleted only once the
//! new one is in place; a failed rename puts it back ([`folder::put_back`]), and a killed
//! commit is finished by `--resume` or undone by `--force` ([`folder`]).

use super::folder::{self, sync_dir};
use super::writer::OutputWriter;
use crate::error::{Error, Result};
use crate::format::{journal, manifest};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

impl OutputWriter {
    /// Finishes the arrays, fills in `manifest` (arrays, files, counts, rows), writes it, and
    /// moves everything into the output folder.
    /// `started` and `commit_started` time the run and this commit for the manifest.
    pub fn commit(
        self,
        mut m: manifest::Manifest,
        started: Instant,
        commit_started: Instant,
    ) -> Result<manifest::Manifest> {
        let shape = vec![self.rows, self.n_mels, self.out_frames];
        let features = self.features.seal(shape)?;
        let mapping = match self.mapping {
            Some(map) => Some(map.seal(self.rows)?),
            None => None,
        };
        m.features = features.info.clone();
        m.mapping = mapping.as_ref().map(|a| a.info.clone());
        m.rows = self.rows;
        m.counts = self.counts;
        m.files = self.files;
        m.timings.commit_s = commit_started.elapsed().as_secs_f64();
        m.timings.total_s = started.elapsed().as_secs_f64();
        // The arrays' fsyncs (the last rows' writeback) and the manifest's serialisation and
        // fsync overlap; nothing is renamed into place before all of them are durable.
        let partial = &self.partial;
        let (features, mapping, manifest) = std::thread::scope(|s| {
            let f = s.spawn(move || features.sync());
            let map = mapping.map(|a| s.spawn(move || a.sync()));
            let w = crate::trace::span("manifest-write", 0, || write_manifest(partial, &mut m));
            let panicked = |what: &str| Error::Output {
                path: partial.clone(),
                msg: format!("the thread that fsyncs the {what} panicked"),
            };
            (
                f.join().unwrap_or_else(|_| Err(panicked("features"))),
                map.map(|h| h.join().unwrap_or_else(|_| Err(panicked("mapping")))),
                w,
            )
        });
        features?;
        mapping.transpose()?;
        manifest?;
        crate::trace::span("renames", 0, || publish(&self.partial, &self.out, &m))?;
        drop(self.journal);
        let jpath = self.partial.join(journal::FILE_NAME);
        std::fs::remove_file(&jpath).map_err(|e| Error::io("removing", &jpath, e))?;
        std::fs::remove_dir(&self.partial).map_err(|e| Error::io("removing", &self.partial, e))?;
        sync_dir(&self.out)?;
        Ok(m)
    }
}

/// The commit sequence shared by runs and merges: writes `m` as the manifest in `partial` and
/// fsyncs it and the folder, renames the arrays (already fsynced) and then the manifest into
/// `out`, and fsyncs `out`. Until the manifest's rename, `out` holds nothing that verifies.
pub(crate) fn commit_into(partial: &Path, out: &Path, m: &mut manifest::Manifest) -> Result<()> {
    write_manifest(partial, m)?;
    publish(partial, out, m)
}

/// Writes `m`, sealed with its own checksum ([`manifest::Manifest::to_json`]), into `partial`
/// and fsyncs it.
fn write_manifest(partial: &Path, m: &mut manifest::Manifest) -> Result<()> {
    let mpath = partial.join(manifest::FILE_NAME);
    let text = m.to_json()?;
    let mut f = File::create(&mpath).map_err(|e| Error::io("creating", &mpath, e))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("writing", &mpath, e))
}

/// Renames the durable arrays and manifest of `partial` into `out` and fsyncs both folders.
/// A previous output in `out` is set aside first and deleted once the new one is in place;
/// if a rename fails, it is put back ([`folder`]). A file in `out` with one of
/// melpipe's names that no melpipe manifest names is never replaced: that is an error, and
/// the partial output stays for `--resume` once the file is moved away.
fn publish(partial: &Path, out: &Path, m: &manifest::Manifest) -> Result<()> {
    sync_dir(partial)?;
    let previous = folder::Previous::find(out);
    previous.refuse_foreign(out)?;
    folder::set_aside(out, partial, &previous)?;
    let mut names = vec![m.features.file.clone()];
    names.extend(m.mapping.as_ref().map(|a| a.file.clone()));
    names.push(manifest::FILE_NAME.to_string());
    let renamed = names.iter().try_for_each(|n| {
        let (from, to) = (partial.join(n), out.join(n));
        std::fs::rename(&from, &to).map_err(|e| Error::io("renaming into place", &to, e))
    });
    if let Err(e) = renamed.and_then(|_| sync_dir(out)) {
        if let Err(back) = folder::put_back(out, partial) {
            tracing::warn!("could not put the previous output back: {back}");
        }
        return Err(e);
    }
    let aside = partial.join(folder::REPLACED_DIR);
    if std::fs::symlink_metadata(&aside).is_ok() {
        std::fs::remove_dir_all(&aside).map_err(|e| Error::io("removing", &aside, e))?;
    }
    Ok(())
}
