//! The output folder under hostile use: files melpipe did not write, replacing an output, two
//! runs at once, a machine that runs out of descriptors, kills during start-up and commit.

mod common;

use common::{check_ok, dataset, manifest, melpipe, run_ok, s, same_output, verifies};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `o` failed with `code` and a message containing `needle`.
fn fails_with(o: &Output, code: i32, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{e}");
    assert!(e.contains(needle), "expected {needle:?} in:\n{e}");
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn args<'a>(data: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run", s(data), "-o", s(out), "-q", "--threads", "1"];
    a.extend_from_slice(extra);
    a
}

/// Copies a folder tree (files and folders only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn force_never_deletes_files_that_melpipe_did_not_write() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 5, 0);
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let labels = br#"{"clip_000000.wav": "pump"}"#;
    std::fs::write(out.join("manifest.json"), labels).unwrap();
    std::fs::write(out.join("features.npy"), b"another tool's array").unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let o = melpipe().args(args(&data, &out, extra)).output().unwrap();
        fails_with(&o, 1, "holds files that melpipe did not write");
        fails_with(&o, 1, "manifest.json (not a melpipe manifest");
        fails_with(
            &o,
            1,
            "features.npy (no melpipe manifest in the folder names it)",
        );
        assert_eq!(read(&out.join("manifest.json")), labels);
        assert_eq!(read(&out.join("features.npy")), b"another tool's array");
    }
    // merge refuses the same folder the same way.
    let shard = t.path().join("shard");
    run_ok(&args(&data, &shard, &["--shard", "0/1"]));
    let o = melpipe()
        .args(["merge", s(&shard), "-o", s(&out), "--force"])
        .output()
        .unwrap();
    fails_with(&o, 1, "holds files that melpipe did not write");
    assert_eq!(read(&out.join("manifest.json")), labels);
}

#[test]
fn force_keeps_the_old_output_until_the_new_one_commits() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 6, 3);
    let out = t.path().join("out");
    run_ok(&args(&data, &out, &[]));
    let old = t.path().join("old");
    copy_tree(&out, &old);
    // The new run fails (--strict and a corrupt input): the old output is untouched.
    let o = melpipe()
        .args(args(
            &data,
            &out,
            &["--force", "--strict", "--n-mels", "32"],
        ))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(verifies(&out));
    same_output(&out, &old);
    // A run that succeeds replaces it, and nothing of the old output is left behind.
    run_ok(&args(&data, &out, &["--force", "--n-mels", "32"]));
    assert!(verifies(&out));
    assert_eq!(manifest(&out)["config"]["n_mels"], 32);
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["features.npy", "manifest.json", "mapping.npy"]);
}

#[test]
fn generate_refuses_a_folder_that_holds_files() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("DATA");
    std::fs::create_dir_all(dir.join("machine_00/id_00")).unwrap();
    let mine = dir.join("machine_00/id_00/clip_000000.wav");
    std::fs::write(&mine, b"my recording").unwrap();
    let o = melpipe()
        .args(["generate", s(&dir), "--files", "3"])
        .output()
        .unwrap();
    fails_with(&o, 1, "already holds files");
    fails_with(&o, 1, "--force");
    assert_eq!(read(&mine), b"my recording");
    // An empty folder is fine; so is --force, which keeps files of other names.
    std::fs::write(dir.join("labels.csv"), b"x").unwrap();
    std::fs::remove_file(&mine).unwrap();
    run_ok(&["generate", s(&dir), "--files", "3", "--force"]);
    assert_eq!(read(&dir.join("labels.csv")), b"x");
    let empty = t.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    run_ok(&["generate", s(&empty), "--files", "2"]);
}

/// Waits until `out`'s lock file names `pid`.
fn wait_for_lock(out: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let want = format!("{}\n", child.id());
    while std::fs::read_to_string(out.join(".melpipe-lock"))
        .ok()
        .as_deref()
        != Some(&want)
    {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "no lock");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn a_second_run_or_merge_into_a_busy_output_is_refused_naming_the_holder() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 300, 0);
    let out = t.path().join("out");
    let mut a = melpipe()
        .args(args(&data, &out, &["--files-per-task", "1"]))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lock(&out, &mut a);
    // Stopped while it holds the lock, so that the others surely meet it; never left stopped.
    signal(a.id(), "-STOP");
    struct Resume(u32);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-CONT", &self.0.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _resume = Resume(a.id());
    let shard = t.path().join("shard");
    run_ok(&args(&data, &shard, &["--shard", "0/1"]));
    let busy = format!("is in use by process {}", a.id());
    for extra in [&["--force"][..], &["--resume"][..], &[][..]] {
        let o = melpipe().args(args(&data, &out, extra)).output().unwrap();
        fails_with(&o, 1, &busy);
    }
    let o = melpipe()
        .args(["merge", s(&shard), "-o", s(&out), "--force"])
        .output()
        .unwrap();
    fails_with(&o, 1, &busy);
    signal(a.id(), "-CONT");
    assert!(a.wait().unwrap().success());
    assert!(verifies(&out));
    assert!(!out.join(".melpipe-lock").exists());
    let full = t.path().join("full");
    run_ok(&args(&data, &full, &[]));
    same_output(&out, &full);
}

/// `melpipe args` with the open-files limit (soft and hard) at `n`.
fn with_open_files_limit(n: usize, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_melpipe"))
        .args(args)
        .env_remove("MELPIPE_CHECKPOINT_SECS")
        .output()
        .unwrap()
}

#[test]
fn running_out_of_open_files_stops_the_run_instead_of_failing_good_clips() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 40, 0);
    let full = t.path().join("full");
    run_ok(&args(&data, &full, &[]));
    let mut stopped = 0;
    for n in (8..=40).step_by(2) {
        let out = t.path().join(format!("out-{n}"));
        let extra = ["--readers", "16", "--files-per-task", "4"];
        let o = with_open_files_limit(n, &args(&data, &out, &extra));
        let e = stderr(&o);
        match o.status.code() {
            Some(0) => {
                // Whatever limit it ran under, no good clip was recorded as failed.
                assert_eq!(manifest(&out)["counts"]["failed"], 0, "limit {n}: {e}");
                same_output(&out, &full);
            }
            Some(2) => {
                assert!(!out.join("manifest.json").exists(), "limit {n}");
                assert!(e.contains("Too many open files"), "limit {n}: {e}");
                if out.join(".melpipe-partial").exists() {
                    stopped += 1;
                    assert!(e.contains("ran out of open files"), "limit {n}: {e}");
                    assert!(e.contains("--resume"), "limit {n}: {e}");
                    let mut resume = args(&data, &out, &extra);
                    resume.push("--resume");
                    run_ok(&resume);
                    same_output(&out, &full);
                }
            }
            c => panic!("limit {n}: exit {c:?}: {e}"),
        }
    }
    assert!(
        stopped > 0,
        "no limit stopped a run while it read its inputs"
    );
}

/// Every state that a kill during start-up or commit leaves resumes to the uninterrupted
/// output, and `--force` from it gives the same; a run that replaces an output and is killed
/// leaves either the old output, intact, or what `--resume` finishes.
#[test]
fn a_kill_at_any_moment_of_start_up_or_commit_leads_to_a_working_resume() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 40, 2);
    let new_args = ["--n-mels", "32", "--files-per-task", "2"];
    let full = t.path().join("full");
    run_ok(&args(&data, &full, &new_args));
    let old = t.path().join("old");
    run_ok(&args(&data, &old, &[]));
    // How long an uninterrupted replacing run takes here.
    let probe = t.path().join("probe");
    copy_tree(&old, &probe);
    let t0 = Instant::now();
    run_ok(&args(
        &data,
        &probe,
        &[&new_args[..], &["--force"]].concat(),
    ));
    let span = t0.elapsed().as_micros() as u64 * 12 / 10;
    let kills = 24;
    let mut killed = 0;
    for i in 0..kills {
        let out = t.path().join(format!("out-{i}"));
        copy_tree(&old, &out);
        let mut child = melpipe()
            .args(args(&data, &out, &[&new_args[..], &["--force"]].concat()))
            .env("MELPIPE_CHECKPOINT_SECS", "0")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(span * i / kills));
        let _ = child.kill();
        killed += usize::from(!child.wait().unwrap().success());
        // The folder verifies as the old output or the new one; it may verify as neither only
        // in the middle of the commit, once the new manifest is written in the partial folder.
        if verifies(&out) {
            let n_mels = manifest(&out)["config"]["n_mels"].clone();
            if n_mels == 64 {
                same_output(&out, &old);
            } else {
                same_output(&out, &full);
            }
        } else {
            assert!(
                out.join(".melpipe-partial/manifest.json").exists(),
                "kill {i}: the old output was lost before the new one was committing"
            );
        }
        let forced = t.path().join(format!("forced-{i}"));
        copy_tree(&out, &forced);
        let mut resume = args(&data, &out, &new_args);
        resume.push("--resume");
        let o = melpipe().args(&resume).output().unwrap();
        match o.status.code() {
            Some(0) => {}
            // Finished before the kill (or its commit was): nothing to resume.
            Some(1) if stderr(&o).contains("holds a complete run") => {}
            // Killed before it made its partial folder: the old output is as it was.
            Some(1) if stderr(&o).contains("already holds the output") => {
                same_output(&out, &old);
                run_ok(&args(&data, &out, &[&new_args[..], &["--force"]].concat()));
            }
            c => panic!("kill {i}: resume exit {c:?}: {}", stderr(&o)),
        }
        assert!(verifies(&out), "kill {i}");
        same_output(&out, &full);
        assert!(!out.join(".melpipe-partial").exists(), "kill {i}");
        // --force from the same state gives the same output.
        run_ok(&args(
            &data,
            &forced,
            &[&new_args[..], &["--force"]].concat(),
        ));
        same_output(&forced, &full);
    }
    assert!(
        killed >= kills as usize / 2,
        "only {killed} runs were killed"
    );
}

/// A `--force` run over an output, stopped or killed after it committed batches, leaves the old
/// output in place and verifying; `--resume` then finishes the new output and replaces it.
#[test]
fn a_force_run_stopped_or_killed_mid_run_resumes_and_replaces_the_old_output() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 300, 2);
    let new_args = ["--n-mels", "32", "--files-per-task", "1"];
    let full = t.path().join("full");
    run_ok(&args(&data, &full, &new_args));
    let old = t.path().join("old");
    run_ok(&args(&data, &old, &[]));
    for sig in ["-KILL", "-INT"] {
        let out = t.path().join(format!("out{sig}"));
        copy_tree(&old, &out);
        let mut child = melpipe()
            .args(args(&data, &out, &[&new_args[..], &["--force"]].concat()))
            .env("MELPIPE_CHECKPOINT_SECS", "0")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Two journal records: batches are committed.
        let journal = out.join(".melpipe-partial/journal.jsonl");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read(&journal).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) < 3 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "{sig}: the run ended early"
            );
            assert!(Instant::now() < deadline, "{sig}: no progress");
            std::thread::sleep(Duration::from_micros(200));
        }
        signal(child.id(), sig);
        let status = child.wait().unwrap();
        assert!(!status.success(), "{sig}");
        assert!(verifies(&out), "{sig}: the old output must stay usable");
        same_output(&out, &old);
        let mut resume = args(&data, &out, &new_args);
        resume.push("--resume");
        run_ok(&resume);
        assert!(verifies(&out));
        same_output(&out, &full);
        assert!(!out.join(".melpipe-partial").exists());
    }
}

/// States a kill leaves that the random kills above may miss, made by hand from a real
/// partial folder.
#[test]
fn a_partial_folder_without_arrays_or_records_resumes() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 20, 2);
    let full = t.path().join("full");
    run_ok(&args(&data, &full, &[]));
    let header = {
        // A run stopped before its first checkpoint leaves the journal's header line.
        let out = t.path().join("header");
        let mut child = melpipe()
            .args(args(&data, &out, &[]))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_lock(&out, &mut child);
        let journal = out.join(".melpipe-partial/journal.jsonl");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read(&journal).is_ok_and(|b| b.contains(&b'\n')) {
            assert!(Instant::now() < deadline, "no journal");
            std::thread::sleep(Duration::from_micros(100));
        }
        signal(child.id(), "-STOP");
        let text = read(&journal);
        let _ = child.kill();
        let _ = child.wait();
        let end = text.iter().position(|&c| c == b'\n').unwrap() + 1;
        text[..end].to_vec()
    };
    type Files<'a> = Vec<(&'a str, Vec<u8>)>;
    let states: Vec<(&str, Files)> = vec![
        ("an empty partial folder", vec![]),
        (
            "a torn journal header",
            vec![("journal.jsonl", header[..header.len() / 2].to_vec())],
        ),
        (
            "a journal header and no arrays",
            vec![("journal.jsonl", header.clone())],
        ),
        (
            "a journal header and an empty features array",
            vec![("journal.jsonl", header.clone()), ("features.npy", vec![])],
        ),
    ];
    for (what, files) in states {
        let out = t.path().join(what.replace(' ', "-"));
        let partial = out.join(".melpipe-partial");
        std::fs::create_dir_all(&partial).unwrap();
        for (name, bytes) in files {
            std::fs::write(partial.join(name), bytes).unwrap();
        }
        let o = melpipe()
            .args(args(&data, &out, &["--resume"]))
            .output()
            .unwrap();
        check_ok(&[what], o);
        same_output(&out, &full);
        // A plain rerun of the same state is told what to do.
        std::fs::remove_dir_all(&out).unwrap();
        std::fs::create_dir_all(&partial).unwrap();
        let o = melpipe().args(args(&data, &out, &[])).output().unwrap();
        fails_with(
            &o,
            1,
            "pass --resume to continue it, or --force to discard it",
        );
    }
    // A commit killed after its manifest was in place: complete, and the leftover goes.
    let out = t.path().join("committed");
    copy_tree(&full, &out);
    std::fs::create_dir_all(out.join(".melpipe-partial")).unwrap();
    std::fs::write(out.join(".melpipe-partial/journal.jsonl"), &header).unwrap();
    let o = melpipe()
        .args(args(&data, &out, &["--resume"]))
        .output()
        .unwrap();
    fails_with(&o, 1, "holds a complete run: nothing to resume");
    assert!(!out.join(".melpipe-partial").exists());
    assert!(verifies(&out));
}

#[test]
fn merge_on_a_full_disk_says_to_merge_again_and_can() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 12, 0);
    let shards: Vec<PathBuf> = (0..2)
        .map(|k| {
            let d = t.path().join(format!("shard-{k}"));
            run_ok(&args(&data, &d, &["--shard", &format!("{k}/2")]));
            d
        })
        .collect();
    let out = t.path().join("merged");
    let merge = ["merge", s(&shards[0]), s(&shards[1]), "-o", s(&out)];
    let o = melpipe()
        .args(merge)
        .env("MELPIPE_FAULT_WRITE_AFTER_BYTES", "5000")
        .output()
        .unwrap();
    fails_with(&o, 2, "No space left on device");
    fails_with(&o, 2, "run the same command again");
    assert!(!stderr(&o).contains("--resume"), "{}", stderr(&o));
    run_ok(&merge);
    assert!(verifies(&out));
}

#[test]
fn an_output_that_is_a_dangling_link_is_refused_with_its_target() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 2, 0);
    let out = t.path().join("out");
    std::os::unix::fs::symlink(t.path().join("feats"), &out).unwrap();
    let o = melpipe().args(args(&data, &out, &[])).output().unwrap();
    fails_with(&o, 1, "is a symbolic link to");
    fails_with(&o, 1, "which does not exist");
}
