//! Resuming an interrupted run: what its journal allows, and what it refuses.

use super::RunRequest;
use crate::config::Params;
use crate::discover::InputFile;
use crate::error::{Error, Result};
use crate::journal::{self, JournalHeader, JournalRecord, Loaded};
use crate::outdir;
use crate::shard::ShardInfo;
use crate::write;
use std::path::Path;

/// What a resume finds in the output folder.
pub(super) struct Found {
    /// The journal of an interrupted run that committed something.
    pub(super) loaded: Option<Loaded>,
    /// The CPU head's split of a journal that committed nothing (it starts again with it).
    pub(super) kept_head: Option<usize>,
}

/// Reads the journal of an interrupted run (`--resume`), and refuses an output that is
/// complete. A journal without its header line, or without a record, means the killed run
/// committed nothing (it may have stopped before its arrays existed): it starts again, keeping
/// the split of a header it has.
pub(super) fn find(
    req: &RunRequest,
    cfg: &Params,
    files: &[InputFile],
    partial: &Path,
) -> Result<Found> {
    let mut kept_head = None;
    let loaded = if req.resume && partial.join(journal::FILE_NAME).exists() {
        match journal::load(partial, files.len()) {
            Ok(l) if l.records.is_empty() => {
                kept_head = Some(l.header.cpu_head_files as usize);
                None
            }
            Ok(l) => Some(l),
            Err(Error::NoJournalHeader { .. }) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    if req.resume && req.out.join(crate::manifest::FILE_NAME).exists() {
        let (features, _) = write::array_names(cfg.layout);
        let complete = || Error::Output {
            path: req.out.clone(),
            msg: "holds a complete run: nothing to resume (`melpipe verify` checks it)".into(),
        };
        if !partial.exists() {
            return Err(complete());
        }
        if outdir::commit_finished(&req.out, features) {
            // A commit killed after its manifest was in place leaves its partial folder
            // behind (the journal, and the output it replaced): the output is complete.
            outdir::prepare(
                &req.out,
                outdir::Allow {
                    replace: true,
                    discard_partial: true,
                },
            )?
            .wait();
            return Err(complete());
        }
        // Otherwise the partial folder is a --force run's that has yet to replace the output
        // in OUT at its commit: it resumes.
    }
    Ok(Found { loaded, kept_head })
}

/// Refuses to resume when the parameters, the backend kind or the inputs changed.
pub(super) fn check_resumable(
    then: &JournalHeader,
    now: &JournalHeader,
    files: &[InputFile],
    records: &[JournalRecord],
) -> Result<()> {
    if then.config != now.config {
        return Err(Error::Config(format!(
            "the interrupted run used other parameters ({}); resume with the same ones, or start over with --force",
            then.config.differing_keys(&now.config).join(", ")
        )));
    }
    let slice = |s: &Option<ShardInfo>| s.as_ref().map(|s| (s.index, s.count));
    if slice(&then.shard) != slice(&now.shard) {
        return Err(Error::Config(format!(
            "the interrupted run was {}, this one is {}; resume with the same shard, or start over with --force",
            shard_label(&then.shard),
            shard_label(&now.shard)
        )));
    }
    if then.backend_kind != now.backend_kind {
        return Err(Error::Config(format!(
            "the interrupted run computed on {}, this one would use {}: pass --device {} to resume (backends agree only to rounding), or start over with --force",
            then.backend_kind, now.backend_kind, then.backend_kind
        )));
    }
    if then.inputs != now.inputs {
        let committed = records.iter().flat_map(|r| r.files.iter());
        let mut detail = format!("{} files then, {} now", then.inputs.files, now.inputs.files);
        for (i, e) in committed.enumerate() {
            match files.get(i) {
                Some(f) if f.rel.to_string_lossy() == e.path && f.size == e.bytes => {}
                Some(f) => {
                    detail = format!(
                        "{detail}; file {i} was {} ({} bytes), is now {} ({} bytes)",
                        e.path,
                        e.bytes,
                        f.rel.display(),
                        f.size
                    );
                    break;
                }
                None => break,
            }
        }
        return Err(Error::Input(format!(
            "the inputs changed since the interrupted run ({detail}): files were added, removed, resized or modified; start over with --force"
        )));
    }
    Ok(())
}

/// "shard K/N" or "a whole run", for messages.
fn shard_label(s: &Option<ShardInfo>) -> String {
    s.as_ref().map_or("a whole run".into(), |s| {
        format!("shard {}/{}", s.index, s.count)
    })
}
