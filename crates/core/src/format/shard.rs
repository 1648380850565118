//! Shards as the formats record them: shard K of N ([`ShardSpec`]), the slice of the sorted
//! file list it covers, and the record a shard's manifest and journal keep ([`ShardInfo`]).
//! Choosing the shard of a run (flags, Slurm, Kubernetes) is [`crate::shard`]'s.
//!
//! Shard K of N gets files `[K·F/N, (K+1)·F/N)` of the F files (integer arithmetic), so the
//! slices of 0..N tile the list exactly, differ in size by at most one file, and depend only on
//! F: every host that discovers the same inputs computes the same slices.

use super::files::InputsFingerprint;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// Shard K of N (0-based K).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShardSpec {
    /// K, from 0.
    pub index: u64,
    /// N, at least 1.
    pub count: u64,
}

impl ShardSpec {
    /// Checks `index < count` and `count > 0`.
    pub fn new(index: u64, count: u64) -> Result<Self> {
        if count == 0 {
            return Err(Error::Config(
                "the shard count must be at least 1 (shard K/N: K from 0 to N-1)".into(),
            ));
        }
        if index >= count {
            return Err(Error::Config(format!(
                "shard {index}/{count} does not exist: K counts from 0 to N-1 ({})",
                count - 1
            )));
        }
        Ok(ShardSpec { index, count })
    }

    /// The files of this shard among `files_total`: `[K·F/N, (K+1)·F/N)`.
    pub fn range(&self, files_total: u64) -> Range<u64> {
        // u128: K·F overflows u64 only for absurd F and N, but costs nothing to rule out.
        let at = |k: u64| (k as u128 * files_total as u128 / self.count as u128) as u64;
        at(self.index)..at(self.index + 1)
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = Error;
    /// Parses `K/N`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "shard `{s}` is not K/N with whole numbers 0 ≤ K < N (e.g. 0/4 … 3/4)"
            ))
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse::<u64>().map_err(|_| bad())?;
        let n = n.trim().parse::<u64>().map_err(|_| bad())?;
        ShardSpec::new(k, n)
    }
}

/// A shard's record in its manifest: enough for `merge` to check that shards tile one file list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// K.
    pub index: u64,
    /// N.
    pub count: u64,
    /// Position of this shard's first file in the whole sorted list.
    pub first_file: u64,
    /// Files of this shard.
    pub files: u64,
    /// Files in the whole list.
    pub files_total: u64,
    /// Fingerprint of the whole list (paths, sizes, modification times) as this shard saw it.
    pub inputs: InputsFingerprint,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_tile_the_list_exactly() {
        for total in [0u64, 1, 2, 3, 7, 10, 100, 101, 39_563] {
            for count in 1..=12u64 {
                let mut next = 0;
                for index in 0..count {
                    let r = ShardSpec::new(index, count).unwrap().range(total);
                    assert_eq!(r.start, next, "F={total} N={count} K={index}");
                    assert!(r.end >= r.start);
                    let len = r.end - r.start;
                    assert!(
                        len == total / count || len == total / count + 1,
                        "balanced: F={total} N={count} K={index} len={len}"
                    );
                    next = r.end;
                }
                assert_eq!(next, total, "F={total} N={count}");
            }
        }
        // The documented formula, on numbers one can check by hand.
        assert_eq!(ShardSpec::new(1, 3).unwrap().range(10), 3..6);
        assert_eq!(ShardSpec::new(2, 3).unwrap().range(10), 6..10);
        assert_eq!(ShardSpec::new(3, 4).unwrap().range(2), 1..2);
        assert_eq!(ShardSpec::new(0, 4).unwrap().range(2), 0..0);
        // No overflow with huge counts.
        let r = ShardSpec::new(u64::MAX - 1, u64::MAX)
            .unwrap()
            .range(u64::MAX);
        assert_eq!(r, u64::MAX - 1..u64::MAX);
    }

    #[test]
    fn parse_k_over_n() {
        assert_eq!(
            "2/4".parse::<ShardSpec>().unwrap(),
            ShardSpec { index: 2, count: 4 }
        );
        assert_eq!(
            " 0 / 1 ".parse::<ShardSpec>().unwrap(),
            ShardSpec { index: 0, count: 1 }
        );
        for bad in [
            "4/4", "5/4", "0/0", "1", "a/4", "1/b", "-1/4", "1/4/5", "", "/",
        ] {
            let e = bad.parse::<ShardSpec>().unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{bad}: {e}");
        }
        let e = "4/4".parse::<ShardSpec>().unwrap_err().to_string();
        assert!(e.contains("0 to N-1"), "{e}");
    }
}
