//! melpipe: log-mel-spectrogram features of many short WAV clips, written to NumPy arrays.
//!
//! The modules follow the pipeline's stages: [`discover`] → [`read`] (with [`wav`]) →
//! compute ([`backend`], [`dsp`], [`mel`]) → [`write`] → commit, in the on-disk
//! [`format`]s, orchestrated by [`pipeline`].
#![warn(missing_docs)]

#[cfg(not(target_endian = "little"))]
compile_error!(
    "melpipe writes little-endian arrays straight from memory: big-endian hosts are not supported"
);

pub mod backend;
pub mod config;
pub mod decode;
pub mod discover;
pub mod dsp;
pub mod error;
pub mod format;
pub mod geometry;
pub mod mel;
pub mod merge;
pub mod pipeline;
pub mod progress;
pub mod read;
pub mod samples;
pub mod shard;
pub mod trace;
pub mod verify;
pub mod wav;
pub mod write;

// The formats and the output folder at short paths (`melpipe_core::manifest::Manifest`).
pub use format::{journal, manifest, npy};
pub use write::folder as outdir;

pub use config::{Params, RunOptions, Settings};
pub use error::{Error, Result};
