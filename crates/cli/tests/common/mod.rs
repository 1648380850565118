//! Helpers shared by the CLI test files (`cli.rs`, `faults.rs`): the real `melpipe` binary with
//! a clean environment, runs that must succeed, and small datasets.
// Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `melpipe` binary, without the variables that change its logging or inject faults.
pub fn melpipe() -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(env!("CARGO_BIN_EXE_melpipe"));
    c.env_remove("PIPELINE_LOG_LEVEL")
        .env_remove("MELPIPE_LOG")
        .env_remove("MELPIPE_FAULT_WRITE_AFTER_BYTES")
        .env_remove("MELPIPE_CHECKPOINT_SECS");
    // The stop signals at their default, as from a terminal: tests started in the background of
    // a script (`cmd &`, SIGINT ignored) or under nohup would otherwise pass that on, and
    // melpipe keeps an inherited ignored signal ignored.
    // SAFETY: signal(2) is async-signal-safe, as code between fork and exec must be.
    unsafe {
        c.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    c
}

/// `o`, after checking that `melpipe args` succeeded (its output is shown when it did not).
pub fn check_ok(args: &[&str], o: Output) -> Output {
    assert!(
        o.status.success(),
        "melpipe {args:?} failed ({:?}):\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Runs `melpipe args`, which must succeed.
pub fn run_ok(args: &[&str]) -> Output {
    check_ok(args, melpipe().args(args).output().expect("spawn melpipe"))
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The manifest of the output in `out`.
pub fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// Whether `melpipe verify out` accepts the output.
pub fn verifies(out: &Path) -> bool {
    melpipe()
        .args(["verify", s(out)])
        .output()
        .expect("spawn melpipe")
        .status
        .success()
}

/// Two outputs hold the same arrays, byte for byte, and their manifests the same files, counts
/// and rows.
pub fn same_output(a: &Path, b: &Path) {
    for f in ["features.npy", "mapping.npy"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} of {} differs from {}",
            a.display(),
            b.display()
        );
    }
    let (ma, mb) = (manifest(a), manifest(b));
    for key in ["files", "counts", "rows"] {
        assert_eq!(ma[key], mb[key], "{key}");
    }
}

/// A small dataset in `dir/data`: `files` valid clips plus `corrupt` malformed or unusual ones.
pub fn dataset(dir: &Path, files: usize, corrupt: usize) -> PathBuf {
    let data = dir.join("data");
    run_ok(&[
        "generate",
        s(&data),
        "--files",
        &files.to_string(),
        "--corrupt",
        &corrupt.to_string(),
    ]);
    data
}
