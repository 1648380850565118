//! Sharding: which contiguous slice of the sorted file list one host processes.
//!
//! Shard K of N gets files `[K·F/N, (K+1)·F/N)` of the F files (integer arithmetic), so the
//! slices of 0..N tile the list exactly, differ in size by at most one file, and depend only on
//! F: every host that discovers the same inputs computes the same slices. K/N comes from
//! `--shard K/N`, from a Slurm job array or from a Kubernetes Indexed Job (with `--shards N`).

use crate::discover::InputFile;
use crate::error::{Error, Result};
use crate::format::files::InputsFingerprint;
use std::fmt;

pub use crate::format::shard::{ShardInfo, ShardSpec};

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
