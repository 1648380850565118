//! melpipe: log-mel-spectrogram features of many short WAV clips, written to NumPy arrays.
//!
//! The modules follow the pipeline's stages: [`discover`] → [`read`] (with [`wav`]) →
//! compute ([`backend`], [`dsp`], [`mel`]) → [`write`] → commit, orchestrated by [`pipeline`].
#![warn(missing_docs)]

#[cfg(not(target_endian = "little"))]
compile_error!(
    "melpipe writes little-endian arrays straight from memory: big-endian hosts are not supported"
);

pub mod backend;
pub mod config;
pub mod discover;
pub mod dsp;
pub mod error;
pub mod geometry;
pub mod journal;
pub mod manifest;
pub mod mel;
pub mod merge;
pub mod npy;
pub mod outdir;
pub mod pipeline;
pub mod progress;
pub mod read;
pub mod samples;
pub mod shard;
pub mod trace;
pub mod verify;
pub mod wav;
pub mod write;

pub use config::{Config, Params, RunOptions, Settings};
pub use error::{Error, Result};
