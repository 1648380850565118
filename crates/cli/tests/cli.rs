//! Integration tests: the real `melpipe` binary on WAV files written into temporary folders.

mod common;

use common::{dataset, manifest, melpipe, run_ok, s};
use std::path::{Path, PathBuf};

fn f16_values(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap();
    b[128..]
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

#[test]
fn run_records_every_file_and_output_verifies() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 12, 14);
    let out = t.path().join("out");
    let o = run_ok(&["run", s(&data), "-o", s(&out), "--device", "cpu"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("failed files"),
        "summary lists failures:\n{err}"
    );
    assert!(
        err.contains("mel filters are all zero"),
        "empty-filter warning:\n{err}"
    );

    let m = manifest(&out);
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 26);
    let failed: Vec<_> = files.iter().filter(|f| f["status"] == "failed").collect();
    assert!(!failed.is_empty());
    for f in &failed {
        assert!(!f["reason"].as_str().unwrap().is_empty());
        assert_eq!(f["rows"], 237);
    }
    assert!(files.iter().any(|f| f["status"] == "padded"));
    assert!(files.iter().any(|f| f["status"] == "truncated"));
    // Rows in byte-wise sorted path order, contiguous.
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(m["rows"], 26 * 237);

    // Failed rows are NaN, every other value finite and in the dB range.
    let v = f16_values(&out.join("features.npy"));
    assert_eq!(v.len(), 26 * 237 * 32);
    for f in files {
        let r0 = f["first_row"].as_u64().unwrap() as usize * 32;
        let r1 = r0 + 237 * 32;
        if f["status"] == "failed" {
            assert!(v[r0..r1].iter().all(|x| x.is_nan()), "{}", f["path"]);
        } else {
            assert!(v[r0..r1]
                .iter()
                .all(|x| x.is_finite() && *x >= -100.5 && *x < 60.0));
        }
    }
    let o = run_ok(&["verify", s(&out)]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("intact"));
    let o = run_ok(&["inspect", s(&out)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("failed"), "{text}");
    assert!(
        text.contains("(6162, 32, 1)") || text.contains("[6162, 32, 1]"),
        "{text}"
    );
}

#[test]
fn existing_output_is_refused_without_force_and_strict_exits_3() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 1);
    let out = t.path().join("out");
    run_ok(&["run", s(&data), "-o", s(&out), "-q"]);
    let o = melpipe()
        .args(["run", s(&data), "-o", s(&out), "-q"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    run_ok(&["run", s(&data), "-o", s(&out), "-q", "--force"]);
    let out2 = t.path().join("out2");
    let o = melpipe()
        .args(["run", s(&data), "-o", s(&out2), "-q", "--strict"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out2.join("manifest.json").exists());
}

#[test]
fn configuration_errors_exit_1_before_any_work() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 1, 0);
    let out = t.path().join("out");
    for (args, word) in [
        (vec!["--short-win", "16"], "short_win"),
        (vec!["--f-max", "9000"], "f_max"),
        (vec!["--hop-length", "0"], "hop_length"),
        (vec!["--device", "tpu"], "device"),
    ] {
        let o = melpipe()
            .args(["run", s(&data), "-o", s(&out)])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(word),
            "{args:?}"
        );
        assert!(!out.join("manifest.json").exists());
    }
    let o = melpipe()
        .args(["run", s(&t.path().join("nothing")), "-o", s(&out)])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = melpipe()
        .args(["run", s(&empty), "-o", s(&out)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no audio files"));
}

#[test]
fn print_config_round_trips_through_config_file() {
    let t = tempfile::tempdir().unwrap();
    let o = run_ok(&["run", "--print-config", "--n-mels", "20", "--pool", "none"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("n_mels = 20"), "{text}");
    let cfg = t.path().join("c.toml");
    std::fs::write(&cfg, &text).unwrap();
    let o = run_ok(&[
        "run",
        "--print-config",
        "--config",
        s(&cfg),
        "--dtype",
        "f32",
    ]);
    let text2 = String::from_utf8(o.stdout).unwrap();
    assert!(text2.contains("n_mels = 20") && text2.contains("pool = \"none\""));
    assert!(text2.contains("dtype = \"f32\""));
    std::fs::write(&cfg, "n_melz = 3\n").unwrap();
    let o = melpipe()
        .args(["run", "--print-config", "--config", s(&cfg)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("n_melz"));
    // Parameters and run options side by side in one file; flags still win.
    std::fs::write(
        &cfg,
        "n_mels = 40\nthreads = 2\ndevice = \"cpu\"\nstrict = true\ncpu_head = 3\n",
    )
    .unwrap();
    let o = run_ok(&[
        "run",
        "--print-config",
        "--config",
        s(&cfg),
        "--threads",
        "5",
    ]);
    let text3 = String::from_utf8(o.stdout).unwrap();
    for line in [
        "n_mels = 40",
        "threads = 5",
        "device = \"cpu\"",
        "strict = true",
        "cpu_head = 3",
    ] {
        assert!(text3.contains(line), "{line}: {text3}");
    }
}

#[test]
fn run_options_are_not_recorded_and_hidden_tuning_flags_work() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 0);
    let out = t.path().join("out");
    run_ok(&[
        "run",
        s(&data),
        "-o",
        s(&out),
        "-q",
        "--device",
        "cpu",
        "--threads",
        "2",
        "--ahead-mib",
        "0",
        "--checkpoint-secs",
        "0.5",
    ]);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let config = m["config"].as_object().unwrap();
    assert_eq!(config["n_mels"], 32);
    for key in ["device", "threads", "strict", "queue_depth", "cpu_head"] {
        assert!(!config.contains_key(key), "{key} in the manifest's config");
    }
    let o = melpipe()
        .args(["run", s(&data), "-o", s(&out), "--force", "--ahead-mib=-1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn variants_natural_pool_none_seed_layout_and_mappings() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 4, 10);
    // natural mode: failed files have no rows, rows follow each file's own length.
    let out = t.path().join("nat");
    run_ok(&[
        "run",
        s(&data),
        "-o",
        s(&out),
        "-q",
        "--length",
        "natural",
        "--mapping",
        "i32",
    ]);
    let m = manifest(&out);
    let mut total = 0;
    for f in m["files"].as_array().unwrap() {
        if f["status"] == "failed" {
            assert_eq!(f["rows"], 0);
        } else {
            let n = f["samples"].as_u64().unwrap();
            let expect = if n < 1024 {
                0
            } else {
                ((n - 1024) / 512 + 1) * 3
            };
            assert_eq!(f["rows"].as_u64().unwrap(), expect, "{}", f["path"]);
        }
        total += f["rows"].as_u64().unwrap();
    }
    assert_eq!(m["rows"].as_u64().unwrap(), total);
    assert_eq!(m["mapping"]["descr"], "<i4");
    run_ok(&["verify", s(&out)]);

    let out = t.path().join("none");
    run_ok(&[
        "run",
        s(&data),
        "-o",
        s(&out),
        "-q",
        "--pool",
        "none",
        "--dtype",
        "f32",
        "--mapping",
        "none",
    ]);
    let m = manifest(&out);
    assert_eq!(m["features"]["shape"][2], 33);
    assert_eq!(m["features"]["descr"], "<f4");
    assert!(m["mapping"].is_null());
    assert!(!out.join("mapping.npy").exists());
    run_ok(&["verify", s(&out)]);

    let out = t.path().join("seed");
    run_ok(&["run", s(&data), "-o", s(&out), "-q", "--layout", "seed"]);
    let raw = std::fs::metadata(out.join("PIPELINE_FEATURES.DAT"))
        .unwrap()
        .len();
    let m = manifest(&out);
    assert_eq!(raw, m["rows"].as_u64().unwrap() * 32 * 2);
    assert!(out.join("PIPELINE_MEMMAP.npy").exists());
    run_ok(&["verify", s(&out)]);
}

#[test]
fn verify_detects_damage() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 0);
    let out = t.path().join("out");
    run_ok(&["run", s(&data), "-o", s(&out), "-q"]);
    run_ok(&["verify", s(&out)]);
    let p = out.join("features.npy");
    let mut b = std::fs::read(&p).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x40;
    std::fs::write(&p, &b).unwrap();
    let o = melpipe().args(["verify", s(&out)]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stdout).contains("checksum"));
    b[i] ^= 0x40;
    b.truncate(b.len() - 2);
    std::fs::write(&p, &b).unwrap();
    assert_eq!(
        melpipe()
            .args(["verify", s(&out)])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    assert_eq!(
        melpipe()
            .args(["verify", s(&out)])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

/// SIGKILL at several moments of a run: OUT never holds output that verifies but is incomplete.
#[test]
fn killed_run_leaves_nothing_that_verifies() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 400, 0);
    let out = t.path().join("out");
    let full = t.path().join("full");
    run_ok(&[
        "run",
        s(&data),
        "-o",
        s(&full),
        "-q",
        "--files-per-task",
        "4",
        "--threads",
        "1",
    ]);
    let full_m = manifest(&full);
    let full_hash = full_m["features"]["xxh3_64"].clone();
    let start = std::time::Instant::now();
    run_ok(&[
        "run",
        s(&data),
        "-o",
        s(&out),
        "-q",
        "--force",
        "--files-per-task",
        "4",
        "--threads",
        "1",
    ]);
    let dur = start.elapsed();
    let mut verified_complete = 0;
    for i in 0..8u32 {
        let _ = std::fs::remove_dir_all(&out);
        let mut child = melpipe()
            .args([
                "run",
                s(&data),
                "-o",
                s(&out),
                "-q",
                "--force",
                "--files-per-task",
                "4",
                "--threads",
                "1",
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(dur.mul_f64(0.1 + 0.13 * i as f64));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let o = melpipe().args(["verify", s(&out)]).output().unwrap();
        if o.status.success() {
            // Only a run that committed entirely may verify, and then it equals the full run.
            let m = manifest(&out);
            assert_eq!(m["features"]["xxh3_64"], full_hash);
            assert_eq!(m["rows"], full_m["rows"]);
            verified_complete += 1;
        }
    }
    assert!(
        verified_complete < 8,
        "every kill came too late to test anything"
    );
}

#[test]
fn format_doc_numpy_snippet_runs_on_real_output() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 2);
    run_ok(&["run", s(&data), "-o", s(&t.path().join("feats")), "-q"]);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md"))
            .unwrap();
    let start = readme
        .find("<!-- snippet: numpy")
        .expect("numpy snippet marker");
    let code = &readme[start..];
    let code = &code[code.find("```python\n").unwrap() + 10..];
    let code = &code[..code.find("```").unwrap()];
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(code)
        .current_dir(t.path())
        .output()
        .expect("python3 is needed for this test");
    assert!(
        py.status.success(),
        "docs/FORMAT.md numpy snippet failed (is numpy installed? scripts/test.sh installs it):\n{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert!(String::from_utf8_lossy(&py.stdout).contains("(1185, 32, 1) float16 3 usable files"));
}

#[test]
fn demo_runs_and_cleans_up() {
    let o = run_ok(&["demo", "--files", "40", "--device", "cpu"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("40 files") || err.contains("done:"), "{err}");
}

#[test]
fn plot_writes_a_png() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 2, 0);
    let out = t.path().join("out");
    run_ok(&["run", s(&data), "-o", s(&out), "-q"]);
    let m = manifest(&out);
    let file = m["files"][1]["path"].as_str().unwrap().to_string();
    let png = t.path().join("fig.png");
    run_ok(&["plot", s(&out), "--file", &file, "-o", s(&png)]);
    let b = std::fs::read(&png).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    let o = melpipe()
        .args(["plot", s(&out), "--file", "no/such.wav", "-o", s(&png)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

fn run_args<'a>(data: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "run",
        s(data),
        "-o",
        s(out),
        "-q",
        "--files-per-task",
        "3",
        "--threads",
        "1",
    ]
}

fn journal_lines(out: &Path) -> usize {
    std::fs::read(out.join(".melpipe-partial/journal.jsonl"))
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

/// Kills a run with SIGKILL at 20 pseudo-random moments (after a random number of further
/// committed batches plus a random delay), resuming each time; at no moment does OUT hold output
/// that verifies but is incomplete, and the final output is byte-identical to an uninterrupted
/// run.
#[test]
fn resume_after_repeated_sigkill_is_byte_identical() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 400, 6);
    let full = t.path().join("full");
    run_ok(&run_args(&data, &full));
    let out = t.path().join("out");
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut kills = 0;
    for i in 0..20 {
        let mut args = run_args(&data, &out);
        if i > 0 {
            args.push("--resume");
        }
        let before = journal_lines(&out);
        let target = before + 1 + (next() % 4) as usize;
        let mut child = melpipe()
            .args(&args)
            .env("MELPIPE_CHECKPOINT_SECS", "0")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while journal_lines(&out) < target && child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "run {i} made no progress"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_micros(next() % 20_000));
        let _ = child.kill();
        let status = child.wait().unwrap();
        kills += usize::from(!status.success());
        let o = melpipe().args(["verify", s(&out)]).output().unwrap();
        if o.status.success() {
            // It finished before the kill: then it must be the whole output.
            assert_eq!(
                std::fs::read(out.join("features.npy")).unwrap(),
                std::fs::read(full.join("features.npy")).unwrap()
            );
            break;
        }
    }
    assert!(
        kills >= 15,
        "only {kills} runs were killed before finishing"
    );
    if !out.join("manifest.json").exists() {
        let mut args = run_args(&data, &out);
        args.push("--resume");
        run_ok(&args);
    }
    run_ok(&["verify", s(&out)]);
    for f in ["features.npy", "mapping.npy"] {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(full.join(f)).unwrap(),
            "{f} differs from the uninterrupted run"
        );
    }
    let (a, b) = (manifest(&out), manifest(&full));
    assert_eq!(a["files"], b["files"]);
    assert_eq!(a["counts"], b["counts"]);
}

#[test]
fn resume_refuses_changed_inputs_or_parameters() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 200, 0);
    let out = t.path().join("out");
    // Leave a partial run: a kill after the first checkpoints.
    let mut child = melpipe()
        .args(run_args(&data, &out))
        .env("MELPIPE_CHECKPOINT_SECS", "0")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let journal = out.join(".melpipe-partial/journal.jsonl");
    while std::fs::read(&journal).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint written"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    if out.join("manifest.json").exists() {
        return; // finished before the kill on a fast machine: nothing to test here
    }
    // Without --resume the partial run is not silently discarded.
    let o = melpipe().args(run_args(&data, &out)).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    // Other parameters.
    let mut args = run_args(&data, &out);
    args.extend(["--resume", "--n-mels", "20"]);
    let o = melpipe().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("n_mels"));
    // A file added.
    let extra = data.join("zz_extra.wav");
    std::fs::copy(data.join(first_wav(&data)), &extra).unwrap();
    let mut args = run_args(&data, &out);
    args.push("--resume");
    let o = melpipe().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("inputs changed"));
    std::fs::remove_file(&extra).unwrap();
    // Back as it was: resume works.
    run_ok(&args);
    run_ok(&["verify", s(&out)]);
}

fn first_wav(dir: &Path) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav")) {
                return p.strip_prefix(dir).unwrap().to_path_buf();
            }
        }
    }
    panic!("no wav in {}", dir.display());
}

#[test]
fn ctrl_c_stops_cleanly_and_resumes() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 300, 0);
    let out = t.path().join("out");
    let full = t.path().join("full");
    run_ok(&run_args(&data, &full));
    let child = melpipe()
        .args(run_args(&data, &out))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let journal = out.join(".melpipe-partial/journal.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !journal.exists() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    if o.status.success() {
        return; // finished before the signal arrived
    }
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    assert!(!out.join("manifest.json").exists());
    let mut args = run_args(&data, &out);
    args.push("--resume");
    run_ok(&args);
    assert!(
        std::fs::read(out.join("features.npy")).unwrap()
            == std::fs::read(full.join("features.npy")).unwrap()
    );
}

/// The manifest without what may differ between a merge and a single run.
fn comparable(out: &Path) -> serde_json::Value {
    let mut m = manifest(out);
    let o = m.as_object_mut().unwrap();
    // The manifest's own checksum covers the fields above too.
    for k in ["timings", "device", "created_unix", "manifest_xxh3_64"] {
        o.remove(k);
    }
    m
}

/// Runs shard K/N for every K into `prefix-K` and returns the folders, last shard first.
fn run_shards(data: &Path, prefix: &Path, n: usize, extra: &[&str]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = (0..n)
        .map(|k| {
            let out = PathBuf::from(format!("{}-{k}", prefix.display()));
            let shard = format!("{k}/{n}");
            let mut args = vec!["run", s(data), "-o", s(&out), "-q", "--shard", &shard];
            args.extend(extra);
            run_ok(&args);
            out
        })
        .collect();
    dirs.reverse();
    dirs
}

fn merge_args<'a>(dirs: &'a [PathBuf], out: &'a Path) -> Vec<&'a str> {
    let mut args = vec!["merge", "-q"];
    args.extend(dirs.iter().map(|d| s(d)));
    args.extend(["-o", s(out)]);
    args
}

#[test]
fn merged_shards_are_byte_identical_to_a_single_run() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 10, 5);
    for (name, n, extra) in [
        ("fixed", 3, vec![]),
        (
            "natural",
            4,
            vec!["--length", "natural", "--mapping", "i32"],
        ),
        ("seed-layout", 4, vec!["--layout", "seed", "--dtype", "f32"]),
    ] {
        let full = t.path().join(format!("{name}-full"));
        let mut args = vec!["run", s(&data), "-o", s(&full), "-q"];
        args.extend(&extra);
        run_ok(&args);
        let dirs = run_shards(&data, &t.path().join(name), n, &extra);
        let m0 = manifest(&dirs[n - 1]);
        assert_eq!(m0["shard"]["index"], 0, "{name}");
        assert_eq!(m0["shard"]["count"], n, "{name}");
        assert_eq!(m0["shard"]["files_total"], 15, "{name}");
        let sizes: Vec<u64> = dirs
            .iter()
            .map(|d| manifest(d)["files"].as_array().unwrap().len() as u64)
            .collect();
        assert_eq!(sizes.iter().sum::<u64>(), 15, "{name}: {sizes:?}");
        for d in &dirs {
            run_ok(&["verify", s(d)]);
        }
        let merged = t.path().join(format!("{name}-merged"));
        run_ok(&merge_args(&dirs, &merged));
        let (feat, map) = if name == "seed-layout" {
            ("PIPELINE_FEATURES.DAT", "PIPELINE_MEMMAP.npy")
        } else {
            ("features.npy", "mapping.npy")
        };
        for f in [feat, map] {
            assert!(
                std::fs::read(merged.join(f)).unwrap() == std::fs::read(full.join(f)).unwrap(),
                "{name}: {f} differs from the single run"
            );
        }
        assert_eq!(comparable(&merged), comparable(&full), "{name}");
        assert!(manifest(&merged).get("shard").is_none());
        run_ok(&["verify", s(&merged)]);
        assert!(!merged.join(".melpipe-partial").exists());
    }
}

#[test]
fn more_shards_than_files_gives_empty_shards_that_merge() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 2, 0);
    let full = t.path().join("full");
    run_ok(&["run", s(&data), "-o", s(&full), "-q"]);
    let dirs = run_shards(&data, &t.path().join("s"), 5, &[]);
    let empty: Vec<&PathBuf> = dirs.iter().filter(|d| manifest(d)["rows"] == 0).collect();
    assert_eq!(empty.len(), 3);
    for d in &empty {
        run_ok(&["verify", s(d)]);
    }
    let merged = t.path().join("merged");
    run_ok(&merge_args(&dirs, &merged));
    for f in ["features.npy", "mapping.npy"] {
        assert!(std::fs::read(merged.join(f)).unwrap() == std::fs::read(full.join(f)).unwrap());
    }
    // An empty shard is still a slice: leaving it out is refused.
    let without: Vec<PathBuf> = dirs.iter().filter(|d| *d != empty[0]).cloned().collect();
    let o = melpipe()
        .args(merge_args(&without, &t.path().join("m2")))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing shards"));
}

#[test]
fn scheduler_variables_choose_the_shard() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 6, 0);
    let shard_of = |out: &Path| {
        let m = manifest(out);
        (m["shard"]["index"].as_u64(), m["shard"]["count"].as_u64())
    };
    // Slurm: an array numbered 10-12, task 11 → shard 1/3.
    let out = t.path().join("slurm");
    let o = melpipe()
        .args(["run", s(&data), "-o", s(&out)])
        .env("SLURM_ARRAY_TASK_ID", "11")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .env("SLURM_ARRAY_TASK_MIN", "10")
        .env("SLURM_ARRAY_TASK_MAX", "12")
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("shard 1/3 from the Slurm job array"), "{err}");
    assert_eq!(shard_of(&out), (Some(1), Some(3)));
    let o = run_ok(&["inspect", s(&out)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("shard     1/3: files 2..4 of 6"), "{text}");
    assert_eq!(manifest(&out)["files"].as_array().unwrap().len(), 2);
    // Kubernetes: JOB_COMPLETION_INDEX with --shards.
    let out = t.path().join("k8s");
    let o = melpipe()
        .args(["run", s(&data), "-o", s(&out), "--shards", "4"])
        .env("JOB_COMPLETION_INDEX", "3")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Kubernetes Indexed Job"));
    assert_eq!(shard_of(&out), (Some(3), Some(4)));
    // --shard wins over the environment; 0/1 is every file.
    let out = t.path().join("flag");
    let o = melpipe()
        .args(["run", s(&data), "-o", s(&out), "-q", "--shard", "0/1"])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(shard_of(&out), (Some(0), Some(1)));
    assert_eq!(manifest(&out)["files"].as_array().unwrap().len(), 6);
    // Invalid values are configuration errors before any work.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let bad: &[Case] = &[
        (&["--shard", "3/3"], &[], "does not exist"),
        (&["--shard", "0/0"], &[], "at least 1"),
        (&["--shard", "one/two"], &[], "K/N"),
        (&["--shards", "2"], &[], "JOB_COMPLETION_INDEX"),
        (
            &["--shards", "x"],
            &[("JOB_COMPLETION_INDEX", "0")],
            "--shards",
        ),
        (
            &["--shards", "2"],
            &[("JOB_COMPLETION_INDEX", "2")],
            "completions",
        ),
        (
            &[],
            &[
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
            "does not exist",
        ),
        (
            &[],
            &[
                ("SLURM_ARRAY_TASK_ID", "x"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
            "SLURM_ARRAY_TASK_ID",
        ),
    ];
    let out = t.path().join("bad");
    for (args, env, word) in bad {
        let o = melpipe()
            .args(["run", s(&data), "-o", s(&out)])
            .args(*args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?} {env:?}: {err}");
        assert!(err.contains(word), "{args:?} {env:?}: {err}");
        assert!(!out.exists(), "{args:?} {env:?}");
    }
}

#[test]
fn merge_refuses_shards_that_do_not_belong_together() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 9, 0);
    let dirs = run_shards(&data, &t.path().join("s"), 3, &[]);
    let out = t.path().join("merged");
    let refused = |dirs: &[PathBuf], words: &[&str]| {
        let o = melpipe().args(merge_args(dirs, &out)).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{err}");
        for w in words {
            assert!(err.contains(w), "expected `{w}` in: {err}");
        }
        assert!(!out.join("manifest.json").exists());
        assert!(!out.join(".melpipe-partial").exists());
    };
    // A missing shard.
    refused(&dirs[..2], &["missing shards: 0/3", "files 0..3 of 9"]);
    // The same slice twice.
    let copy = t.path().join("copy-of-1");
    std::fs::create_dir(&copy).unwrap();
    for f in ["features.npy", "mapping.npy", "manifest.json"] {
        std::fs::copy(dirs[1].join(f), copy.join(f)).unwrap();
    }
    let mut twice = dirs.clone();
    twice.push(copy.clone());
    refused(&twice, &["overlapping shards", "shard 1/3", "copy-of-1"]);
    twice.pop();
    twice.push(dirs[1].clone());
    refused(&twice, &["given twice"]);
    // Overlapping slices of different counts: 0/2 holds files 0..4, 1/3 holds 3..6.
    let half = t.path().join("half-0");
    run_ok(&["run", s(&data), "-o", s(&half), "-q", "--shard", "0/2"]);
    refused(
        &[half.clone(), dirs[1].clone(), dirs[0].clone()],
        &["overlapping shards", "both hold files 3..4"],
    );
    // Other parameters: the message names the keys.
    let other = t.path().join("other-0");
    run_ok(&[
        "run",
        s(&data),
        "-o",
        s(&other),
        "-q",
        "--shard",
        "0/3",
        "--n-mels",
        "20",
        "--top-db",
        "80",
    ]);
    refused(
        &[other, dirs[1].clone(), dirs[0].clone()],
        &["different parameters", "n_mels, top_db", "shard 0/3"],
    );
    // Other inputs: a file added since the other shards ran.
    std::fs::copy(
        data.join(first_wav(&data)),
        data.join("zz_late_arrival.wav"),
    )
    .unwrap();
    let late = t.path().join("late-0");
    run_ok(&["run", s(&data), "-o", s(&late), "-q", "--shard", "0/3"]);
    refused(
        &[late, dirs[1].clone(), dirs[0].clone()],
        &["different datasets", "9 files", "10 files"],
    );
    // A whole run is not a shard.
    let whole = t.path().join("whole");
    run_ok(&["run", s(&data), "-o", s(&whole), "-q"]);
    refused(&[whole], &["not a shard"]);
    // A damaged shard: one flipped feature byte, caught while copying.
    let f = dirs[0].join("features.npy");
    let mut b = std::fs::read(&f).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    std::fs::write(&f, b).unwrap();
    refused(&dirs, &["shard 2/3", "damaged", "features.npy"]);
    // A truncated one, caught before.
    let b = std::fs::read(&f).unwrap();
    std::fs::write(&f, &b[..b.len() - 64]).unwrap();
    refused(&dirs, &["does not verify", "shard output"]);
    // The output may not be one of the shards.
    let o = melpipe()
        .args(merge_args(&dirs[1..], &dirs[1]))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    run_ok(&["verify", s(&dirs[1])]);
}

#[test]
fn killed_shard_resumes_only_as_the_same_shard() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 200, 0);
    let clean = t.path().join("clean");
    let mut args = run_args(&data, &clean);
    args.extend(["--shard", "1/2"]);
    run_ok(&args);
    let out = t.path().join("out");
    let mut args = run_args(&data, &out);
    args.extend(["--shard", "1/2"]);
    let mut child = melpipe()
        .args(&args)
        .env("MELPIPE_CHECKPOINT_SECS", "0")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while journal_lines(&out) < 3 && child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint written"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    if out.join("manifest.json").exists() {
        eprintln!("the shard finished before the kill: nothing to resume");
        return;
    }
    let mut other = run_args(&data, &out);
    other.extend(["--resume", "--shard", "0/2"]);
    let o = melpipe().args(&other).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("was shard 1/2, this one is shard 0/2"),
        "{err}"
    );
    args.push("--resume");
    run_ok(&args);
    for f in ["features.npy", "mapping.npy"] {
        assert!(std::fs::read(out.join(f)).unwrap() == std::fs::read(clean.join(f)).unwrap());
    }
    assert_eq!(comparable(&out), comparable(&clean));
}

#[test]
fn trace_records_every_stage_of_every_task() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 40, 2);
    let out = t.path().join("out");
    let trace = t.path().join("trace.tsv");
    let o = melpipe()
        .env("MELPIPE_TRACE", &trace)
        .args(["run", s(&data), "-o", s(&out), "--device", "cpu", "-q"])
        .args(["--files-per-task", "4", "--threads", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("begin_s\tend_s\tthread\twhat\tid"));
    let mut tasks: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
    for l in lines {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 5, "{l}");
        let (b, e): (f64, f64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        assert!(0.0 <= b && b <= e, "{l}");
        tasks.entry(f[3]).or_default().push(f[4].parse().unwrap());
    }
    // 42 files in tasks of 4: tasks 0..=10, each read, computed, written in place and taken
    // in order by the writer exactly once.
    for stage in ["read", "compute", "write-at", "write"] {
        let mut ids = tasks.get(stage).cloned().unwrap_or_default();
        ids.sort();
        assert_eq!(ids, (0..11).collect::<Vec<u64>>(), "{stage}");
    }
    for once in ["discover", "execute", "commit"] {
        assert_eq!(tasks.get(once).map(Vec::len), Some(1), "{once}");
    }
    // Without the variable, nothing is written.
    let out2 = t.path().join("out2");
    run_ok(&["run", s(&data), "-o", s(&out2), "--device", "cpu", "-q"]);
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 4); // data, out, trace, out2
}

/// A dataset at another rate, as a new user meets it: without `--resample` every file fails,
/// the summary groups them under one reason with both ways out, and the run exits 4 after
/// writing its manifest; with `--resample` they are converted, verified and shown as such.
#[test]
fn a_dataset_at_another_rate_fails_grouped_then_resamples() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("d16k");
    run_ok(&[
        "generate",
        s(&data),
        "--files",
        "5",
        "--sample-rate",
        "16000",
        "--samples",
        "160000",
    ]);
    let out = t.path().join("out");
    let o = melpipe()
        .args(["run", s(&data), "-o", s(&out), "--device", "cpu"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("5 files: sample rate 16000 Hz, expected 4096 Hz"),
        "{err}"
    );
    assert!(err.contains("`--sample-rate 16000`"), "{err}");
    assert!(err.contains("`--resample`"), "{err}");
    assert!(err.contains("no input file could be used"), "{err}");
    let m = manifest(&out);
    assert_eq!(m["failures"][0]["files"], 5);
    assert!(m["failures"][0]["hint"]
        .as_str()
        .unwrap()
        .contains("--resample"));
    let o = run_ok(&["inspect", s(&out)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("5 files: sample rate 16000 Hz"), "{text}");

    let out2 = t.path().join("out2");
    run_ok(&[
        "run",
        s(&data),
        "-o",
        s(&out2),
        "--device",
        "cpu",
        "--resample",
    ]);
    let m = manifest(&out2);
    for f in m["files"].as_array().unwrap() {
        assert_eq!(f["status"], "ok");
        assert_eq!(f["resampled"], true);
        assert_eq!(f["sample_rate"], 16000);
        assert_eq!(f["samples"], 160000);
    }
    run_ok(&["verify", s(&out2)]);
    let o = run_ok(&["inspect", s(&out2)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("5 files pcm_s16le 16000 Hz mono, resampled to 4096 Hz"),
        "{text}"
    );
    // The same features as at the file's own rate? No: at 4096 Hz, as the manifest says.
    assert_eq!(m["config"]["sample_rate"], 4096);
    assert_eq!(m["config"]["resample"], true);
}

/// `generate --format flac` writes FLAC clips that a run reads exactly as their WAV twins:
/// the same features, byte for byte; `--ext` restricts the walk and the manifest says so.
#[test]
fn flac_clips_give_the_features_of_their_wav_twins() {
    let t = tempfile::tempdir().unwrap();
    let (wav, flac) = (t.path().join("wav"), t.path().join("flac"));
    run_ok(&["generate", s(&wav), "--files", "4"]);
    run_ok(&["generate", s(&flac), "--files", "4", "--format", "flac"]);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    run_ok(&["run", s(&wav), "-o", s(&a), "--device", "cpu"]);
    run_ok(&["run", s(&flac), "-o", s(&b), "--device", "cpu"]);
    assert_eq!(
        std::fs::read(a.join("features.npy")).unwrap(),
        std::fs::read(b.join("features.npy")).unwrap()
    );
    let m = manifest(&b);
    assert!(m["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["codec"] == "flac" && f["status"] == "ok"));
    // Both folders as INPUTs, only the FLAC files taken.
    let c = t.path().join("c");
    run_ok(&[
        "run",
        s(&wav),
        s(&flac),
        "-o",
        s(&c),
        "--device",
        "cpu",
        "--ext",
        "flac",
    ]);
    let m = manifest(&c);
    assert_eq!(m["files"].as_array().unwrap().len(), 4);
    assert_eq!(m["config"]["ext"], serde_json::json!(["flac"]));
    let o = melpipe()
        .args(["generate", s(&t.path().join("m")), "--format", "mp3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("MP3 cannot hold 4096 Hz"));
}

#[test]
fn auto_records_its_choice_and_a_named_device_does_not() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 0);
    let auto = t.path().join("auto");
    let o = run_ok(&["run", s(&data), "-o", s(&auto), "-v"]);
    let why = manifest(&auto)["device_choice"]
        .as_str()
        .expect("device_choice in an auto run's manifest")
        .to_string();
    assert!(why.starts_with("auto: "), "{why}");
    // This machine's GPU (if any) decides which; either way the reason is said in -v.
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("device: ") && log.contains("(auto"), "{log}");
    let shown = run_ok(&["inspect", s(&auto)]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&format!("device    {why}")));
    let cpu = t.path().join("cpu");
    run_ok(&["run", s(&data), "-o", s(&cpu), "-q", "--device", "cpu"]);
    assert!(manifest(&cpu).get("device_choice").is_none());
    assert!(common::verifies(&auto) && common::verifies(&cpu));
}
