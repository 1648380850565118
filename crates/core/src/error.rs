//! The library's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the library, with the path in context where there is one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent with another one.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An input argument could not be used (missing path, empty list, unreadable folder).
    #[error("input: {0}")]
    Input(String),
    /// An I/O operation on a path failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("reading", "creating", "fsyncing", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An input could not be read for a reason of the machine, not of the file (open files or
    /// memory ran out, a lost mount, a disk I/O error: [`crate::read::ErrorSource::Machine`]).
    /// The run stops, resumable, instead of recording a good file as failed.
    #[error("reading {}: {error} (an error of the machine or its storage, not of this file)", path.display())]
    Machine {
        /// The input that could not be read.
        path: PathBuf,
        /// The operating system's error (in the message, not a cause of its own).
        error: std::io::Error,
    },
    /// The output folder is not usable (holds another run, is not a folder, ...).
    #[error("output folder {}: {msg}", path.display())]
    Output {
        /// The output folder.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// The journal of an interrupted run has no header line: the run was killed before it
    /// started, and committed nothing (a resume starts over).
    #[error("output folder {}: the journal has no header: the run was killed before it started", path.display())]
    NoJournalHeader {
        /// The journal.
        path: PathBuf,
    },
    /// A compute backend failed (device lost, out of memory, kernel error).
    #[error("backend {backend}: {msg}")]
    Backend {
        /// Which backend ("cpu", "cuda:0").
        backend: String,
        /// What failed.
        msg: String,
    },
    /// A run was interrupted (Ctrl-C); the partial output can be resumed.
    #[error("interrupted")]
    Interrupted,
    /// `--strict` stopped the run at the first failed input file.
    #[error("strict mode: {} failed: {reason}", path.display())]
    StrictFailure {
        /// The file that failed.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Builds an [`Error::Io`] from an operation, a path and the OS error.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
