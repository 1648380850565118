//! The on-disk formats: the `.npy` header, `manifest.json`, the run journal, the shard record
//! and what they all say about the input files. Reading, writing and checking them lives here;
//! the write stage ([`crate::write`]) decides when. docs/FORMAT.md is the contract users code
//! against.
//!
//! Imports go one way, from the top to the bottom, with no circle:
//!
//! ```text
//! manifest ──► shard ──► files
//!    │  └────────────────►  ▲
//!    └──► npy               │
//! journal ──► shard, files ─┘
//! ```
//!
//! [`files`] (file statuses and entries, the inputs' fingerprint) and [`npy`] import none of
//! the others; [`shard`] imports only [`files`]; [`manifest`] and [`journal`] import those
//! below them and never each other.

pub mod files;
pub mod journal;
pub mod manifest;
pub mod npy;
pub mod shard;
