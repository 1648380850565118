//! The write and commit stages: rows written at their place in files in
//! `OUT/.melpipe-partial/`, accounted and hashed in row order, written back early, checkpointed
//! into the journal, then fsynced and renamed into place.
//!
//! - [`array`]: one array streamed to disk, hashed as it goes, with early writeback.
//! - [`positioned`]: rows written at their place from any thread.
//! - [`mapping`]: the mapping array, written ahead by its own threads when it is known in
//!   advance.
//! - [`writer`]: the run's writer: accounting in row order, checkpoints, resume.
//! - [`commit`]: sealing, fsyncs and the renames that make an output visible.
//! - [`folder`]: the output folder as a whole: its lock, what in it is melpipe's, the previous
//!   output set aside and put back, and `--force`'s discard on a background thread.
//! - [`tuning`]: the writer's settings that do not change the bytes.
//! - `fault`: fault injection for tests (cargo feature `test-hooks`).
//!
//! Crash safety: nothing is in `OUT` until commit; at commit the arrays are renamed first and
//! `manifest.json` last, and `verify` needs the manifest and matching checksums, so a run killed
//! at any moment leaves either no output that verifies or a complete one ([`commit`]).

mod array;
mod commit;
mod fault;
pub mod folder;
mod mapping;
mod positioned;
mod tuning;
mod writer;

pub(crate) use array::ArrayFile;
pub(crate) use commit::commit_into;
pub use folder::{sync_dir, PARTIAL_DIR};
pub(crate) use mapping::mapping_digest;
pub use positioned::PositionedWriter;
pub use tuning::WriteTuning;
pub use writer::{check_batch_bytes, OutputWriter};

pub use crate::format::manifest::{array_names, OUTPUT_NAMES};
