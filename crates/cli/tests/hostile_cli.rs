//! Hostile use of the command line, the settings and the signals: closed or full output
//! streams, usage errors, absurd sizes, hostile environment variables, overlapping inputs,
//! lists naming missing files, `plot` aimed at a file it must not replace, SIGHUP.

mod common;

use common::{dataset, manifest, melpipe, run_ok, s, verifies};
use std::fs::File;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// The process did not panic or abort, whatever its exit code.
fn no_crash(what: &str, o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("panicked") && !matches!(o.status.code(), Some(101) | None),
        "{what}: {:?}\n{err}",
        o.status
    );
}

fn dev_full() -> File {
    File::options().write(true).open("/dev/full").unwrap()
}

/// A closed or full stderr or stdout never panics, and never costs a run its output.
#[test]
fn closed_or_full_output_streams_never_lose_the_run() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 20, 2);
    // stderr full, with and without -q (the default parameters warn about empty mel filters,
    // so even -q writes to stderr, before any output exists).
    for quiet in [false, true] {
        let out = t.path().join(format!("full-{quiet}"));
        let mut args = vec!["run", s(&data), "-o", s(&out), "--device", "cpu"];
        if quiet {
            args.push("-q");
        }
        let o = melpipe().args(&args).stderr(dev_full()).output().unwrap();
        no_crash("run 2>/dev/full", &o);
        assert_eq!(o.status.code(), Some(0), "-q {quiet}");
        assert!(verifies(&out));
    }
    // stderr a pipe whose reader is gone before the run writes anything (`2>&1 | head -c 10`).
    let out = t.path().join("closed");
    let mut child = melpipe()
        .args(["run", s(&data), "-o", s(&out), "--device", "cpu"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(verifies(&out));
    // inspect and verify into a closed pipe (`inspect OUT | true`): their own exit code, quietly.
    for (cmd, code) in [("inspect", 0), ("verify", 0)] {
        let mut child = melpipe()
            .args([cmd, s(&out)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        no_crash(cmd, &o);
        assert_eq!(o.status.code(), Some(code), "{cmd}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("error") && !err.contains("Broken pipe"),
            "{err}"
        );
    }
    // A full stdout (not a closed pipe) loses data: say so, exit 2, never a panic.
    let o = melpipe()
        .args(["run", "--print-config"])
        .stdout(dev_full())
        .output()
        .unwrap();
    no_crash("--print-config >/dev/full", &o);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("writing to stdout"));
}

/// Usage errors exit 1 as the README's table says; 2 is for I/O errors.
#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let o_flag = s(&out);
    for args in [
        vec!["run", "DATA", "-o", o_flag, "--no-such-flag"],
        vec!["run", "DATA", "-o", o_flag, "--n-mels", "many"],
        vec!["run", "DATA", "-o", o_flag, "--clip-samples", "-5"],
        vec!["run", "-o", o_flag],
        vec!["run", "DATA"],
        vec!["run", "DATA", "-o", o_flag, "--resume", "--force"],
        vec!["no-such-command"],
        vec![],
        vec!["plot", o_flag],
        vec![
            "run", "DATA", "-o", o_flag, "--n-mels", "40", "--n-mels", "64",
        ],
        // A mistyped INPUT or list (neither exists here) is a usage error too.
        vec!["run", "DATA", "-o", o_flag, "--device", "cpu"],
        vec!["run", "@no-such-list.txt", "-o", o_flag, "--device", "cpu"],
    ] {
        let o = melpipe()
            .args(&args)
            .current_dir(t.path())
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
    for args in [
        vec!["--help"],
        vec!["--version"],
        vec!["run", "--help"],
        vec!["help", "run"],
    ] {
        let o = melpipe().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
    // --help into a closed pipe.
    let mut child = melpipe()
        .args(["run", "--help"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    no_crash("--help | true", &child.wait_with_output().unwrap());
}

/// Sizes no run can hold are refused before any work, naming the limit; the queue
/// depth follows the tasks that exist.
#[test]
fn absurd_sizes_are_refused_before_any_work_and_memory_follows_the_work() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 20, 0);
    let out = t.path().join("out");
    for (flag, value, limit) in [
        ("--clip-samples", "1000000000000", "268435456"),
        ("--clip-samples", "268435456", "1024 MiB"),
        ("--long-win", "1000000000000", "268435456"),
        ("--queue-depth", "1000000000", "65536"),
        ("--threads", "1000000", "1024"),
        ("--readers", "1000000", "1024"),
        ("--streams", "1000000", "64"),
    ] {
        let o = melpipe()
            .args([
                "run",
                s(&data),
                "-o",
                s(&out),
                "--device",
                "cpu",
                flag,
                value,
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        no_crash(flag, &o);
        assert_eq!(o.status.code(), Some(1), "{flag} {value}: {err}");
        assert!(err.contains(limit), "{flag} {value}: {err}");
        assert!(!out.exists(), "{flag} {value}: OUT was created");
    }
    // A deep queue over 20 files: no more slots than tasks (the summary shows the depth used).
    let o = run_ok(&[
        "run",
        s(&data),
        "-o",
        s(&out),
        "--device",
        "cpu",
        "--queue-depth",
        "65536",
        "--files-per-task",
        "1000000000000",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    let depth: usize = err
        .split("queue ")
        .last()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no queue depth in the summary: {err}"));
    assert!(depth <= 20, "queue depth {depth} for 20 files: {err}");
    assert!(verifies(&out));
    // generate: a count typed with too many digits is refused, not an abort.
    let o = melpipe()
        .args([
            "generate",
            s(&t.path().join("gen")),
            "--files",
            "1000000000000",
        ])
        .output()
        .unwrap();
    no_crash("generate --files 1e12", &o);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("10000000"));
}

/// Every numeric flag with hostile values: a usage error (1) or a run (0), never a crash.
#[test]
fn every_numeric_flag_takes_hostile_values_without_crashing() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 0);
    let flags = [
        "--sample-rate",
        "--clip-samples",
        "--channel",
        "--long-win",
        "--long-hop",
        "--short-win",
        "--short-hop",
        "--n-fft",
        "--win-length",
        "--hop-length",
        "--n-mels",
        "--f-min",
        "--f-max",
        "--top-db",
        "--readers",
        "--threads",
        "--files-per-task",
        "--queue-depth",
        "--streams",
        "--cpu-head",
        "--shard",
        "--shards",
    ];
    let values = [
        "0",
        "-1",
        "1000000000000",
        "1e12",
        "18446744073709551616",
        "18446744073709551615",
        "NaN",
        "inf",
        "-inf",
        "",
        "0/0",
        "5/3",
    ];
    for (i, flag) in flags.iter().enumerate() {
        for (j, v) in values.iter().enumerate() {
            let out = t.path().join(format!("o{i}-{j}"));
            let o = melpipe()
                .args(["run", s(&data), "-o", s(&out), "--device", "cpu", "-q"])
                .arg(format!("{flag}={v}"))
                .output()
                .unwrap();
            no_crash(&format!("{flag}={v}"), &o);
            let code = o.status.code();
            assert!(
                matches!(code, Some(0 | 1)),
                "{flag}={v}: {code:?}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            if code == Some(0) {
                assert!(verifies(&out));
            }
        }
    }
}

/// No value of any variable melpipe reads panics.
#[test]
fn hostile_environment_values_never_panic() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 0);
    let vars = [
        "MELPIPE_CHECKPOINT_SECS",
        "MELPIPE_TRACE",
        "MELPIPE_CLEAN_EXIT",
        "MELPIPE_TILED_SMEM_KIB",
        "MELPIPE_TILED_BLOCK",
        "PIPELINE_LOG_LEVEL",
        "MELPIPE_LOG",
        "CUDA_DEVICE_MAX_CONNECTIONS",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MAX",
        "JOB_COMPLETION_INDEX",
    ];
    let values: [&[u8]; 12] = [
        b"1e300",
        b"1e20",
        b"inf",
        b"-1",
        b"NaN",
        b"18446744073709551616",
        b"18446744073709551615",
        b"",
        b"x",
        b"warn,[{",
        b"\xff\xfe",
        b"0",
    ];
    for (i, var) in vars.iter().enumerate() {
        for (j, v) in values.iter().enumerate() {
            let out = t.path().join(format!("o{i}-{j}"));
            let mut c = melpipe();
            c.args(["run", s(&data), "-o", s(&out), "--device", "cpu"])
                .current_dir(t.path())
                .env(var, std::ffi::OsStr::from_bytes(v));
            if var.starts_with("SLURM") {
                // With the others of the array set, so that the value is used.
                c.env("SLURM_ARRAY_TASK_COUNT", "2")
                    .env("SLURM_ARRAY_TASK_MIN", "0");
                if *var == "SLURM_ARRAY_TASK_MAX" {
                    c.env("SLURM_ARRAY_TASK_ID", "0");
                }
            }
            let o = c.output().unwrap();
            let what = format!("{var}={}", String::from_utf8_lossy(v));
            no_crash(&what, &o);
            let code = o.status.code();
            // The scheduler's variables may be refused (1); nothing else may stop the run.
            let allowed: &[i32] = if var.starts_with("SLURM") || var.starts_with("JOB") {
                &[0, 1]
            } else {
                &[0]
            };
            assert!(
                code.is_some_and(|c| allowed.contains(&c)),
                "{what}: {code:?}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            if code == Some(0) {
                assert!(verifies(&out));
            }
        }
    }
    // MELPIPE_TRACE names a file, which need not be UTF-8.
    assert!(t
        .path()
        .join(std::ffi::OsStr::from_bytes(b"\xff\xfe"))
        .is_file());
}

/// No value of a hidden tuning flag panics: a value out of range is a usage error (exit 1), any
/// other runs to a verified output.
#[test]
fn hostile_tuning_flag_values_never_panic() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 0);
    let flags = ["--ahead-mib", "--checkpoint-secs", "--own-writeback-min"];
    let values = [
        "1e300",
        "inf",
        "-1",
        "NaN",
        "18446744073709551616",
        "0",
        "x",
        "",
    ];
    for (i, flag) in flags.iter().enumerate() {
        for (j, v) in values.iter().enumerate() {
            let out = t.path().join(format!("f{i}-{j}"));
            let o = melpipe()
                .args(["run", s(&data), "-o", s(&out), "--device", "cpu", flag, v])
                .output()
                .unwrap();
            let what = format!("{flag} {v:?}");
            no_crash(&what, &o);
            let code = o.status.code();
            assert!(
                matches!(code, Some(0 | 1)),
                "{what}: {code:?}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            if code == Some(0) {
                assert!(verifies(&out), "{what}");
            }
        }
    }
}

/// A folder given with a file or folder inside it is refused, as duplicates are.
#[test]
fn an_input_inside_another_input_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 6, 0);
    let sub = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let wav = std::fs::read_dir(&sub)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file() || p.is_dir())
        .unwrap();
    let wav = if wav.is_dir() {
        std::fs::read_dir(&wav)
            .unwrap()
            .map(|e| e.unwrap().path())
            .next()
            .unwrap()
    } else {
        wav
    };
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let list = t.path().join("list.txt");
    std::fs::write(&list, format!("{}\n", wav.display())).unwrap();
    let at_list = format!("@{}", list.display());
    let out = t.path().join("out");
    for inputs in [
        vec![s(&data), s(&sub)],
        vec![s(&sub), s(&data)],
        vec![s(&data), s(&wav)],
        vec![s(&data), s(&link)],
        vec![s(&data), at_list.as_str()],
    ] {
        let o = melpipe()
            .arg("run")
            .args(&inputs)
            .args(["-o", s(&out), "--device", "cpu"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{inputs:?}: {err}");
        assert!(err.contains("twice"), "{inputs:?}: {err}");
        assert!(!out.exists());
    }
}

/// A missing path inside an @list is a failed file, like any unreadable input.
#[test]
fn a_missing_path_in_a_list_is_a_failed_file() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 2, 0);
    let mut wavs: Vec<_> = walk(&data);
    wavs.sort();
    let missing = t.path().join("gone.wav");
    let list = t.path().join("list.txt");
    std::fs::write(
        &list,
        format!(
            "{}\n{}\n{}\n",
            wavs[0].display(),
            missing.display(),
            wavs[1].display()
        ),
    )
    .unwrap();
    let out = t.path().join("out");
    let o = run_ok(&[
        "run",
        &format!("@{}", list.display()),
        "-o",
        s(&out),
        "--device",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("gone.wav"), "{err}");
    let m = manifest(&out);
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    let gone = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("gone.wav"))
        .unwrap();
    assert_eq!(gone["status"], "failed", "{gone}");
    assert!(
        gone["reason"].as_str().unwrap().contains("No such file"),
        "{gone}"
    );
    assert!(verifies(&out));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `--print-config` validates before printing.
#[test]
fn print_config_refuses_an_invalid_configuration() {
    let o = melpipe()
        .args(["run", "--print-config", "--n-fft", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("n_fft"));
    let o = run_ok(&["run", "--print-config", "--n-mels", "64"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("n_mels = 64"));
}

/// `plot -o` never writes over a file that is not a PNG (the run's own arrays, a WAV
/// input); an earlier plot is replaced.
#[test]
fn plot_never_writes_over_a_file_that_is_not_a_png() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 0);
    let out = t.path().join("out");
    run_ok(&["run", s(&data), "-o", s(&out), "--device", "cpu", "-q"]);
    let m = manifest(&out);
    let file = m["files"][0]["path"].as_str().unwrap().to_string();
    let wav = walk(&data)[0].clone();
    for target in [
        out.join("features.npy"),
        out.join("manifest.json"),
        wav.clone(),
        out.clone(),
    ] {
        let before = std::fs::read(&target).ok();
        let o = melpipe()
            .args(["plot", s(&out), "--file", &file, "-o", s(&target)])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", target.display());
        assert!(err.contains("choose another -o"), "{err}");
        assert_eq!(std::fs::read(&target).ok(), before);
    }
    assert!(verifies(&out));
    let png = t.path().join("clip.png");
    run_ok(&["plot", s(&out), "--file", &file, "-o", s(&png)]);
    run_ok(&["plot", s(&out), "--file", &file, "-o", s(&png)]);
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    let names: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().starts_with(".melpipe-plot")),
        "{names:?}"
    );
}

/// Waits until the run in `out` has journaled a checkpoint, then sends `sig`.
fn signal_mid_run(child: &std::process::Child, out: &Path, sig: i32) {
    let journal = out.join(".melpipe-partial/journal.jsonl");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !journal.exists() {
        assert!(Instant::now() < deadline, "no journal");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// SIGHUP stops a run as SIGTERM does (progress kept, resumable), unless the run was
/// started with SIGHUP ignored (`nohup`), which it then finishes.
#[test]
fn sighup_stops_a_run_gracefully_unless_ignored() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 300, 0);
    let full = t.path().join("full");
    let args = |out: &Path| {
        vec![
            "run".to_string(),
            s(&data).into(),
            "-o".into(),
            s(out).into(),
            "--device".into(),
            "cpu".into(),
            "--threads".into(),
            "1".into(),
            "--files-per-task".into(),
            "4".into(),
        ]
    };
    run_ok(&args(&full).iter().map(String::as_str).collect::<Vec<_>>());
    let out = t.path().join("out");
    let child = melpipe()
        .args(args(&out))
        .env("MELPIPE_CHECKPOINT_SECS", "0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    signal_mid_run(&child, &out, libc::SIGHUP);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        return; // finished before the signal arrived
    }
    assert_eq!(o.status.code(), Some(130), "{:?}: {err}", o.status);
    assert!(err.contains("--resume"), "{err}");
    let mut resume = args(&out);
    resume.push("--resume".into());
    run_ok(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        std::fs::read(out.join("features.npy")).unwrap()
            == std::fs::read(full.join("features.npy")).unwrap()
    );
    // nohup: SIGHUP ignored by the parent stays ignored; the run finishes.
    let out = t.path().join("nohup");
    let script = format!(
        "trap '' HUP; exec \"$0\" {}",
        args(&out)
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let child = std::process::Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_melpipe")])
        .env("MELPIPE_CHECKPOINT_SECS", "0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    signal_mid_run(&child, &out, libc::SIGHUP);
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(verifies(&out));
}

/// Natural mode where no file reaches one long window says so.
#[test]
fn natural_mode_with_every_file_too_short_warns() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 0);
    let out = t.path().join("out");
    let o = run_ok(&[
        "run",
        s(&data),
        "-o",
        s(&out),
        "--device",
        "cpu",
        "--length",
        "natural",
        "--long-win",
        "65536",
        "--long-hop",
        "65536",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("3 of 3 files are shorter than long_win (65536 samples)"),
        "{err}"
    );
    assert!(err.contains("0 rows"), "{err}");
    assert!(err.contains("3 too short for one long window"), "{err}");
    assert_eq!(manifest(&out)["rows"], 0);
    assert!(verifies(&out));
}

/// A `--config` that is a folder, endless, binary or huge is a configuration error (exit 1),
/// read at most 1 MiB; a pipe (`--config <(…)`) works.
#[test]
fn hostile_config_files_are_configuration_errors() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 2, 0);
    let binary = t.path().join("binary.toml");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00, 0x80]).unwrap();
    let huge = t.path().join("huge.toml");
    std::fs::write(&huge, "# padding\n".repeat(200_000)).unwrap();
    let out = t.path().join("out");
    for (config, says) in [
        (t.path().to_path_buf(), "is a folder"),
        (Path::new("/dev/zero").to_path_buf(), "larger than 1024 KiB"),
        (binary, "not UTF-8"),
        (huge, "larger than 1024 KiB"),
        (t.path().join("missing.toml"), "No such file"),
    ] {
        let o = melpipe()
            .args(["run", s(&data), "-o", s(&out), "--config", s(&config)])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", config.display());
        assert!(err.contains(says), "{}: {err}", config.display());
    }
    let o = std::process::Command::new("sh")
        .args([
            "-c",
            "exec \"$0\" run --print-config --config /dev/stdin <<'EOF'\nn_mels = 40\nEOF",
            env!("CARGO_BIN_EXE_melpipe"),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("n_mels = 40"));
}

/// Stopped and continued mid-run (SIGTSTP, SIGCONT), or started with stdin, stdout and stderr
/// closed: the run finishes and its output verifies (a closed descriptor is reopened on
/// /dev/null before `main`, so no output file can take its number and receive log lines).
#[test]
fn stopped_runs_and_closed_standard_descriptors_still_finish() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 200, 0);
    let out = t.path().join("stopped");
    let child = melpipe()
        .args([
            "run",
            s(&data),
            "-o",
            s(&out),
            "--device",
            "cpu",
            "--threads",
            "1",
        ])
        .env("MELPIPE_CHECKPOINT_SECS", "0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    signal_mid_run(&child, &out, libc::SIGTSTP);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(verifies(&out));
    let out = t.path().join("closed");
    let o = std::process::Command::new("sh")
        .args([
            "-c",
            "exec \"$0\" run \"$1\" -o \"$2\" --device cpu <&- >&- 2>&-",
            env!("CARGO_BIN_EXE_melpipe"),
            s(&data),
            s(&out),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(verifies(&out));
}
