//! Sharding (SPEC §9): which contiguous slice of the sorted file list one host processes.
//!
//! Shard K of N gets files `[K·F/N, (K+1)·F/N)` of the F files (integer arithmetic), so the
//! slices of 0..N tile the list exactly, differ in size by at most one file, and depend only on
//! F: every host that discovers the same inputs computes the same slices. K/N comes from
//! `--shard K/N`, from a Slurm job array or from a Kubernetes Indexed Job (with `--shards N`).

use crate::discover::InputFile;
use crate::error::{Error, Result};
use crate::journal::InputsFingerprint;
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

/// The scheduler variables shard detection looks at, given by the caller (the `melpipe` binary
/// passes its environment; tests build them by hand).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardEnv {
    /// `SLURM_ARRAY_TASK_ID`.
    pub slurm_task_id: Option<String>,
    /// `SLURM_ARRAY_TASK_COUNT`.
    pub slurm_task_count: Option<String>,
    /// `SLURM_ARRAY_TASK_MIN`.
    pub slurm_task_min: Option<String>,
    /// `SLURM_ARRAY_TASK_MAX`.
    pub slurm_task_max: Option<String>,
    /// `JOB_COMPLETION_INDEX` (Kubernetes Indexed Job).
    pub job_completion_index: Option<String>,
}

impl ShardEnv {
    /// Reads the variables through `lookup` (for a process: `std::env::var_os`). A value that is
    /// not UTF-8 is kept (lossily), so that it is refused as a bad number rather than taken as
    /// unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> Self {
        let get = |k: &str| lookup(k).map(|v| v.to_string_lossy().into_owned());
        ShardEnv {
            slurm_task_id: get("SLURM_ARRAY_TASK_ID"),
            slurm_task_count: get("SLURM_ARRAY_TASK_COUNT"),
            slurm_task_min: get("SLURM_ARRAY_TASK_MIN"),
            slurm_task_max: get("SLURM_ARRAY_TASK_MAX"),
            job_completion_index: get("JOB_COMPLETION_INDEX"),
        }
    }
}

/// Where a run's shard came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardSource {
    /// `--shard K/N`.
    Flag,
    /// A Slurm job array; the text shows the variables used.
    Slurm(String),
    /// A Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`) with `--shards N`.
    Kubernetes(String),
}

impl fmt::Display for ShardSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardSource::Flag => f.write_str("--shard"),
            ShardSource::Slurm(v) => write!(f, "Slurm job array: {v}"),
            ShardSource::Kubernetes(v) => write!(f, "Kubernetes Indexed Job: {v}"),
        }
    }
}

fn env_number(name: &str, value: &str) -> Result<u64> {
    value.trim().parse::<u64>().map_err(|_| {
        Error::Config(format!(
            "{name}=`{value}` is not a whole number ≥ 0; fix the job definition, or pass --shard K/N to choose the slice by hand"
        ))
    })
}

/// Decides which shard this run is, if any.
///
/// Precedence: `--shard K/N` (`shard_flag`); then a Slurm job array (`K = SLURM_ARRAY_TASK_ID −
/// SLURM_ARRAY_TASK_MIN`, `N = SLURM_ARRAY_TASK_COUNT`; `--shards N`, when given, must agree);
/// then `JOB_COMPLETION_INDEX` with `--shards N` (`shards_flag`). `--shards N` without either
/// scheduler is an error, and so is an array whose indices are not contiguous (`--array=0-9:2`),
/// since its task ids cannot number the slices 0..N. `None`: the run processes every file.
pub fn detect(
    shard_flag: Option<ShardSpec>,
    shards_flag: Option<u64>,
    env: &ShardEnv,
) -> Result<Option<(ShardSpec, ShardSource)>> {
    if let Some(s) = shard_flag {
        if let Some(n) = shards_flag.filter(|&n| n != s.count) {
            return Err(Error::Config(format!(
                "--shard {s} and --shards {n} disagree on the number of shards"
            )));
        }
        return Ok(Some((s, ShardSource::Flag)));
    }
    if let Some(id) = &env.slurm_task_id {
        let id_n = env_number("SLURM_ARRAY_TASK_ID", id)?;
        let count = env.slurm_task_count.as_deref().ok_or_else(|| {
            Error::Config(
                "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --shard K/N"
                    .into(),
            )
        })?;
        let count_n = env_number("SLURM_ARRAY_TASK_COUNT", count)?;
        let min_n = match &env.slurm_task_min {
            Some(m) => env_number("SLURM_ARRAY_TASK_MIN", m)?,
            None => 0,
        };
        let vars = format!(
            "SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_MIN={min_n}, SLURM_ARRAY_TASK_COUNT={count}"
        );
        if let Some(max) = &env.slurm_task_max {
            let max_n = env_number("SLURM_ARRAY_TASK_MAX", max)?;
            if max_n.checked_sub(min_n).and_then(|d| d.checked_add(1)) != Some(count_n) {
                return Err(Error::Config(format!(
                    "the Slurm array's indices are not contiguous ({vars}, SLURM_ARRAY_TASK_MAX={max}): submit with --array=0-{} (N tasks, no step or list), or pass --shard K/N",
                    count_n.saturating_sub(1)
                )));
            }
        }
        let k = id_n.checked_sub(min_n).ok_or_else(|| {
            Error::Config(format!(
                "SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN ({vars})"
            ))
        })?;
        if let Some(n) = shards_flag.filter(|&n| n != count_n) {
            return Err(Error::Config(format!(
                "--shards {n} disagrees with the Slurm array's {count_n} tasks ({vars})"
            )));
        }
        let spec = ShardSpec::new(k, count_n).map_err(|e| {
            Error::Config(format!(
                "{e} ({vars}): submit with --array=0-{} (N tasks, no step or list), or pass --shard K/N",
                count_n.saturating_sub(1)
            ))
        })?;
        return Ok(Some((spec, ShardSource::Slurm(vars))));
    }
    match (shards_flag, &env.job_completion_index) {
        (Some(n), Some(idx)) => {
            let k = env_number("JOB_COMPLETION_INDEX", idx)?;
            let vars = format!("JOB_COMPLETION_INDEX={idx}, --shards {n}");
            let spec = ShardSpec::new(k, n).map_err(|e| {
                Error::Config(format!(
                    "{e} ({vars}): --shards must equal the Job's `completions`"
                ))
            })?;
            Ok(Some((spec, ShardSource::Kubernetes(vars))))
        }
        (Some(n), None) => Err(Error::Config(format!(
            "--shards {n} takes the shard index from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or a Slurm job array, and neither is set; pass --shard K/N to choose a slice by hand"
        ))),
        (None, Some(idx)) => {
            tracing::warn!(
                "JOB_COMPLETION_INDEX={idx} is set but --shards is not: processing every file; pass --shards N (the Job's completions) to process this pod's slice"
            );
            Ok(None)
        }
        (None, None) => Ok(None),
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

/// Cuts the whole sorted list down to the shard's slice and describes it.
pub fn select(spec: ShardSpec, all: Vec<InputFile>) -> (Vec<InputFile>, ShardInfo) {
    let total = all.len() as u64;
    let r = spec.range(total);
    let info = ShardInfo {
        index: spec.index,
        count: spec.count,
        first_file: r.start,
        files: r.end - r.start,
        files_total: total,
        inputs: InputsFingerprint::of(&all),
    };
    let files = all
        .into_iter()
        .skip(r.start as usize)
        .take((r.end - r.start) as usize)
        .collect();
    (files, info)
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

    fn slurm(id: &str, count: &str, min: &str, max: Option<&str>) -> ShardEnv {
        ShardEnv {
            slurm_task_id: Some(id.into()),
            slurm_task_count: Some(count.into()),
            slurm_task_min: Some(min.into()),
            slurm_task_max: max.map(Into::into),
            job_completion_index: None,
        }
    }

    #[test]
    fn slurm_arrays() {
        let (s, src) = detect(None, None, &slurm("2", "4", "0", Some("3")))
            .unwrap()
            .unwrap();
        assert_eq!(s, ShardSpec { index: 2, count: 4 });
        assert!(matches!(src, ShardSource::Slurm(ref v) if v.contains("SLURM_ARRAY_TASK_ID=2")));
        // An array numbered from 10: K = ID − MIN.
        let (s, _) = detect(None, None, &slurm("13", "4", "10", Some("13")))
            .unwrap()
            .unwrap();
        assert_eq!(s, ShardSpec { index: 3, count: 4 });
        // --shards may restate N, not contradict it.
        assert!(detect(None, Some(4), &slurm("1", "4", "0", None)).is_ok());
        let e = detect(None, Some(5), &slurm("1", "4", "0", None)).unwrap_err();
        assert!(e.to_string().contains("disagrees"), "{e}");
        // A stepped array (--array=0-6:2: ids 0,2,4,6) cannot number slices.
        let e = detect(None, None, &slurm("2", "4", "0", Some("6"))).unwrap_err();
        assert!(e.to_string().contains("not contiguous"), "{e}");
        // Without MAX the step shows up as K ≥ N for the last task.
        let e = detect(None, None, &slurm("6", "4", "0", None)).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        for (id, count, min) in [("x", "4", "0"), ("1", "", "0"), ("1", "4", "-2")] {
            let e = detect(None, None, &slurm(id, count, min, None)).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{e}");
            assert!(e.to_string().contains("SLURM_ARRAY_TASK_"), "{e}");
        }
        let e = detect(None, None, &slurm("1", "0", "0", None)).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
        let e = detect(None, None, &slurm("1", "4", "2", None)).unwrap_err();
        assert!(e.to_string().contains("below"), "{e}");
        let no_count = ShardEnv {
            slurm_task_count: None,
            ..slurm("1", "4", "0", None)
        };
        assert!(detect(None, None, &no_count).is_err());
    }

    #[test]
    fn kubernetes_and_precedence() {
        let k8s = ShardEnv {
            job_completion_index: Some("3".into()),
            ..ShardEnv::default()
        };
        let (s, src) = detect(None, Some(8), &k8s).unwrap().unwrap();
        assert_eq!(s, ShardSpec { index: 3, count: 8 });
        assert!(matches!(src, ShardSource::Kubernetes(_)));
        let e = detect(None, Some(3), &k8s).unwrap_err().to_string();
        assert!(e.contains("completions"), "{e}");
        let garbage = ShardEnv {
            job_completion_index: Some("three".into()),
            ..ShardEnv::default()
        };
        let e = detect(None, Some(8), &garbage).unwrap_err().to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX=`three`"), "{e}");
        // The index alone does not shard (N is unknown): every file is processed.
        assert_eq!(detect(None, None, &k8s).unwrap(), None);
        // --shards without a scheduler is a configuration error.
        let e = detect(None, Some(4), &ShardEnv::default()).unwrap_err();
        assert!(matches!(e, Error::Config(_)));
        assert_eq!(detect(None, None, &ShardEnv::default()).unwrap(), None);
        // The flag wins over every variable; `--shard 0/1` opts out of detection.
        let flag = ShardSpec::new(0, 1).unwrap();
        let (s, src) = detect(Some(flag), None, &slurm("2", "4", "0", None))
            .unwrap()
            .unwrap();
        assert_eq!((s, src), (flag, ShardSource::Flag));
        assert!(detect(Some(flag), Some(2), &k8s).is_err());
        // Slurm wins over Kubernetes.
        let both = ShardEnv {
            job_completion_index: Some("0".into()),
            ..slurm("1", "2", "0", None)
        };
        let (s, _) = detect(None, None, &both).unwrap().unwrap();
        assert_eq!(s, ShardSpec { index: 1, count: 2 });
    }

    #[test]
    fn select_cuts_the_slice_and_fingerprints_the_whole_list() {
        let all: Vec<InputFile> = (0..10)
            .map(|i| InputFile {
                path: format!("/d/{i:02}.wav").into(),
                rel: format!("{i:02}.wav").into(),
                size: 100 + i,
                mtime_ns: 7,
            })
            .collect();
        let whole = InputsFingerprint::of(&all);
        let (files, info) = select(ShardSpec::new(1, 3).unwrap(), all.clone());
        assert_eq!(files, all[3..6].to_vec());
        assert_eq!((info.first_file, info.files, info.files_total), (3, 3, 10));
        assert_eq!(info.inputs, whole);
        let (files, info) = select(ShardSpec::new(0, 20).unwrap(), all);
        assert!(files.is_empty());
        assert_eq!((info.first_file, info.files), (0, 0));
    }
}
