//! Fault tests: the real `melpipe` binary when the disk fills up and when its inputs change
//! while it reads them. (Kills, Ctrl-C and changed inputs before a resume are in `cli.rs`.)

mod common;

use common::{check_ok, dataset, manifest, melpipe, run_ok, s, same_output, verifies};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Small tasks on one thread: many batches, so a fault lands in the middle of the run.
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

/// Asserts that a run stopped on a full disk the way a user should see it: exit 2, the path and
/// "No space left on device" on stderr, a hint to resume, and nothing in OUT that verifies.
fn assert_disk_full(o: &Output, out: &Path, path_part: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(path_part), "names {path_part}:\n{err}");
    assert!(err.contains("--resume"), "says how to continue:\n{err}");
    assert!(!out.join("manifest.json").exists());
    assert!(!verifies(out));
    assert!(out.join(".melpipe-partial/journal.jsonl").exists());
}

/// The resumed output equals the uninterrupted one, byte for byte.
fn assert_same_output(out: &Path, full: &Path) {
    assert!(verifies(out));
    same_output(out, full);
}

/// Bytes one 3-file batch appends with the default parameters: 237 rows a file (40,960-sample
/// clips), 32 f16 values a row, 6 i64 mapping values a row.
const FEATURE_BATCH: u64 = 3 * 237 * 32 * 2;
const MAPPING_BATCH: u64 = 3 * 237 * 6 * 8;

/// Runs with `MELPIPE_FAULT_WRITE_AFTER_BYTES` set to each budget in turn (the first run fresh,
/// the next ones resuming), each stopping on a full disk in the named array (or any array),
/// then resumes without the fault and compares with an uninterrupted run.
fn disk_full_then_resume(data: &Path, dir: &Path, extra: &[&str], cases: &[(u64, &str)]) {
    let full = dir.join("full");
    let mut args = run_args(data, &full);
    args.extend(extra);
    run_ok(&args);
    let out = dir.join("out");
    for (i, (budget, name)) in cases.iter().enumerate() {
        let mut args = run_args(data, &out);
        args.extend(extra);
        if i > 0 {
            args.push("--resume");
        }
        let o = melpipe()
            .args(&args)
            .env("MELPIPE_FAULT_WRITE_AFTER_BYTES", budget.to_string())
            .output()
            .unwrap();
        // The fixed-length mapping is written ahead by its own thread, so the byte budget may
        // run out in either array; the message must name the partial folder's file either way.
        let _ = name;
        assert_disk_full(&o, &out, ".melpipe-partial/");
    }
    let mut args = run_args(data, &out);
    args.extend(extra);
    args.push("--resume");
    run_ok(&args);
    assert_same_output(&out, &full);
}

/// A full disk, injected (`MELPIPE_FAULT_WRITE_AFTER_BYTES`, works without privileges), in
/// natural mode where each batch writes its mapping rows then its features on one thread: once
/// inside a batch's features after its mapping rows went through, once inside the mapping rows;
/// then a resume with space completes. The one-second checkpoint interval leaves batches
/// unjournaled when the fault comes, so the final checkpoint after the failure is exercised.
#[test]
fn injected_disk_full_exits_2_and_resume_is_byte_identical() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 120, 0);
    let batch = FEATURE_BATCH + MAPPING_BATCH;
    let cases = [
        // Inside batch 17's features, after its mapping rows.
        (17 * batch + MAPPING_BATCH + 1000, "features.npy"),
        // Inside batch 9's mapping rows (the resumed run counts bytes from zero again).
        (9 * batch + 1000, "mapping.npy"),
    ];
    disk_full_then_resume(&data, t.path(), &["--length", "natural"], &cases);
}

/// The same in fixed mode, where a thread of its own writes the whole mapping ahead while the
/// features follow: whichever array meets the full disk first, the run stops with exit 2 and
/// the resume is byte-identical.
#[test]
fn injected_disk_full_with_mapping_written_ahead() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 120, 4);
    let cases = [(600_000, ""), (300_000, "")];
    disk_full_then_resume(&data, t.path(), &[], &cases);
}

/// Unmounts on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`; None where that is not allowed (no CAP_SYS_ADMIN).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                s(dir),
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,size={size}"), s(&self.0)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A real full disk: OUT on a 2 MiB tmpfs (the run needs about 3.5 MB). Skipped, saying so,
/// where mounting is not permitted; the injected test above always runs.
#[test]
fn real_disk_full_on_small_tmpfs_then_resume_after_growing_it() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 130, 0);
    let full = t.path().join("full");
    run_ok(&run_args(&data, &full));
    let Some(fs) = Tmpfs::mount(&t.path().join("small"), "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    };
    let out = fs.0.join("out");
    let o = melpipe().args(run_args(&data, &out)).output().unwrap();
    assert_disk_full(&o, &out, s(&out));
    // Space is freed: resume completes and equals the uninterrupted run.
    fs.resize("16m");
    let mut args = run_args(&data, &out);
    args.push("--resume");
    run_ok(&args);
    assert_same_output(&out, &full);
}

/// Every `.wav` under `dir`, relative, sorted byte-wise (the manifest's order).
fn wav_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")) {
                found.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    found
}

/// Files deleted, cut to a few bytes or cut inside their samples while a run reads them: the
/// run finishes, every discovered file has a status, and the changed ones that were read after
/// the change say what happened to them.
#[test]
fn inputs_deleted_or_truncated_while_running_each_get_a_status() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 300, 0);
    let files = wav_files(&data);
    let out = t.path().join("out");
    let child = melpipe()
        .args(run_args(&data, &out))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The journal appears once discovery is done; the last files are read last.
    let journal = out.join(".melpipe-partial/journal.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !journal.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let changed: Vec<(usize, &PathBuf)> = files.iter().enumerate().skip(240).collect();
    for (i, rel) in &changed {
        let p = data.join(rel);
        match i % 3 {
            0 => std::fs::remove_file(&p).unwrap(),
            1 => std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(20)
                .unwrap(),
            _ => std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(44 + 2 * 1000)
                .unwrap(),
        }
    }
    let o = child.wait_with_output().unwrap();
    check_ok(&["run"], o);
    assert!(verifies(&out));
    let m = manifest(&out);
    let entries = m["files"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        files.len(),
        "every discovered file has a status"
    );
    let mut affected = [0; 3];
    for (i, rel) in &changed {
        let e = &entries[*i];
        assert_eq!(e["path"], rel.to_str().unwrap());
        assert_eq!(e["rows"], 237);
        if e["status"] == "ok" {
            continue; // read before it changed
        }
        affected[i % 3] += 1;
        match i % 3 {
            0 => {
                assert_eq!(e["status"], "failed");
                let reason = e["reason"].as_str().unwrap();
                assert!(reason.starts_with("unreadable: "), "{reason}");
                assert!(reason.contains("No such file"), "{reason}");
            }
            1 => assert_eq!(e["reason"], "truncated header", "{e}"),
            _ => {
                assert_eq!(e["status"], "padded", "{e}");
                assert_eq!(e["missing_samples"], 40960 - 1000);
            }
        }
    }
    assert!(
        affected.iter().all(|&n| n > 0),
        "the changes came too late to test anything: {affected:?}"
    );
    let counts = &m["counts"];
    assert_eq!(
        ["ok", "padded", "truncated", "failed"]
            .iter()
            .map(|k| counts[k].as_u64().unwrap())
            .sum::<u64>(),
        300
    );
}

/// A 30-level folder tree and names that are not UTF-8 (two of them equal once made lossy):
/// every file gets a status, and the manifest gives the exact bytes of each non-UTF-8 name.
#[test]
fn deep_trees_and_non_utf8_names_are_traced_exactly() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 1, 0);
    let clip = std::fs::read(data.join(&wav_files(&data)[0])).unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    let mut d = data.clone();
    for level in 0..30 {
        d.push(format!("level_{level:02}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("clip.wav"), &clip).unwrap();
    }
    let odd: [&[u8]; 5] = [
        b"bad_\xff.wav",
        b"bad_\xfe.wav",
        b"caf\xe9/x.wav",
        "utf8_è.wav".as_bytes(),
        b"new\nline.wav",
    ];
    for n in odd {
        let p = data.join(OsStr::from_bytes(n));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &clip).unwrap();
    }
    let out = t.path().join("out");
    run_ok(&["run", s(&data), "-o", s(&out), "-q"]);
    assert!(verifies(&out));
    let m = manifest(&out);
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 35);
    assert!(files.iter().all(|f| f["status"] == "ok"));
    let deepest = files
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .max_by_key(|p| p.len());
    assert_eq!(deepest.unwrap().matches('/').count(), 30);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for n in odd {
        let utf8 = std::str::from_utf8(n).is_ok();
        let e: Vec<_> = files
            .iter()
            .filter(|f| {
                if utf8 {
                    f["path"].as_str() == std::str::from_utf8(n).ok()
                } else {
                    f["path_bytes_hex"].as_str() == Some(hex(n).as_str())
                }
            })
            .collect();
        assert_eq!(e.len(), 1, "{n:?} is in the manifest once");
        assert_eq!(e[0]["path"], String::from_utf8_lossy(n).as_ref());
        assert_eq!(e[0].get("path_bytes_hex").is_none(), utf8);
    }
}

/// Ctrl-C twice: the second one exits at once (130) without the orderly stop; what the
/// journal committed is still consistent, and a resume gives the uninterrupted output.
#[test]
fn ctrl_c_twice_exits_130_and_resume_is_byte_identical() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 300, 0);
    let full = t.path().join("full");
    run_ok(&run_args(&data, &full));
    let out = t.path().join("out");
    let child = melpipe()
        .args(run_args(&data, &out))
        .env("MELPIPE_CHECKPOINT_SECS", "0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let journal = out.join(".melpipe-partial/journal.jsonl");
    let lines = || std::fs::read(&journal).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while lines() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint written"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for _ in 0..2 {
        // SAFETY: kill(2) with the pid of our own child and a valid signal number.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let o = child.wait_with_output().unwrap();
    if o.status.success() {
        return; // finished before the signals arrived
    }
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.join("manifest.json").exists());
    assert!(!verifies(&out));
    let mut args = run_args(&data, &out);
    args.push("--resume");
    run_ok(&args);
    assert_same_output(&out, &full);
}
