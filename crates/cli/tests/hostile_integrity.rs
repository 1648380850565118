//! Hostile use of an output folder: manifests, `.npy` headers, partial arrays and journals
//! changed by hand or by a flipped bit. Every command must refuse what it cannot trust, with a
//! clear message and a bounded amount of work, and never panic.

mod common;

use common::{check_ok, dataset, melpipe, run_ok, s, same_output};
use melpipe_core::manifest::Manifest;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs `melpipe args` (with `env`), killing it and failing the test if it takes `limit`.
fn run_within(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut c = melpipe();
    c.args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn melpipe");
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "melpipe {args:?} still ran after {limit:?}:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `melpipe args` must fail with `code` (a clear error, not a panic: 101) within 20 s, and say
/// each of `words` on stdout or stderr.
fn refused(args: &[&str], code: i32, words: &[&str]) -> String {
    let o = run_within(args, &[], Duration::from_secs(20));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(code), "melpipe {args:?}:\n{text}");
    assert!(!text.contains("panicked"), "melpipe {args:?}:\n{text}");
    for w in words {
        assert!(
            text.contains(w),
            "melpipe {args:?}: expected `{w}` in:\n{text}"
        );
    }
    text
}

fn read_manifest(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// Writes `v` as the manifest of `out` with a valid checksum of its own, as someone who edits a
/// manifest on purpose would: only the structural checks stand between it and the readers.
fn write_resealed(out: &Path, v: &Value) {
    let mut m: Manifest = serde_json::from_value(v.clone()).expect("still a manifest");
    std::fs::write(out.join("manifest.json"), m.to_json().unwrap()).unwrap();
}

/// One flipped bit turned a file name into the next file's name; `verify` said intact.
#[test]
fn a_bit_flip_that_renames_a_file_in_the_manifest_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 3, 0);
    let out = t.path().join("out");
    run_ok(&["run", s(&data), "-o", s(&out), "-q"]);
    run_ok(&["verify", s(&out)]);
    let text = std::fs::read(out.join("manifest.json")).unwrap();
    // clip_000001.wav → clip_000000.wav: '1' (0x31) → '0' (0x30), one bit.
    let at = text
        .windows(15)
        .position(|w| w == b"clip_000001.wav")
        .unwrap()
        + 10;
    let mut flipped = text.clone();
    flipped[at] ^= 1;
    std::fs::write(out.join("manifest.json"), &flipped).unwrap();
    refused(
        &["verify", s(&out)],
        2,
        &["changed after melpipe wrote it", "not intact"],
    );
    // The same change with a checksum made to fit: two entries for one name.
    let v: Value = serde_json::from_slice(&flipped).unwrap();
    write_resealed(&out, &v);
    refused(
        &["verify", s(&out)],
        2,
        &[
            "file 1 (machine_00/id_00/clip_000000.wav)",
            "unique and sorted",
        ],
    );
    for cmd in ["inspect", "plot"] {
        let png = t.path().join("x.png");
        let mut args = vec![cmd, s(&out)];
        if cmd == "plot" {
            args.extend(["--file", "clip_000000.wav", "-o", s(&png)]);
        }
        refused(&args, 1, &["unique and sorted"]);
    }
    std::fs::write(out.join("manifest.json"), &text).unwrap();
    run_ok(&["verify", s(&out)]);
}

/// `verify` accepted `.npy` headers that numpy refuses (a changed padding byte, version
/// or newline). The header must be the one melpipe writes, byte for byte.
#[test]
fn npy_headers_that_numpy_refuses_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 2, 0);
    let out = t.path().join("out");
    run_ok(&["run", s(&data), "-o", s(&out), "-q"]);
    for name in ["features.npy", "mapping.npy"] {
        let p = out.join(name);
        let bytes = std::fs::read(&p).unwrap();
        // The version byte, a byte of the length, a padding space, the final newline, a byte
        // of `False`, a space after the last comma.
        let dict_end = bytes.iter().position(|&b| b == b'}').unwrap();
        let f = bytes.windows(5).position(|w| w == b"False").unwrap();
        for (at, bit) in [
            (6, 1),
            (9, 0),
            (dict_end + 3, 0),
            (127, 0),
            (f + 4, 1),
            (dict_end - 1, 3),
        ] {
            let mut b = bytes.clone();
            b[at] ^= 1 << bit;
            std::fs::write(&p, &b).unwrap();
            refused(&["verify", s(&out)], 2, &[name, "not intact"]);
        }
        std::fs::write(&p, &bytes).unwrap();
    }
    run_ok(&["verify", s(&out)]);
}

/// Small tasks on one thread, natural mode (each batch's mapping rows and features written in
/// order), a checkpoint after every batch.
fn run_args<'a>(data: &'a Path, out: &'a Path, resume: bool) -> Vec<&'a str> {
    let mut a = vec![
        "run",
        s(data),
        "-o",
        s(out),
        "-q",
        "--files-per-task",
        "3",
        "--threads",
        "1",
        "--length",
        "natural",
    ];
    if resume {
        a.push("--resume");
    }
    a
}

/// A run stopped by an injected full disk after a few committed batches: `OUT/.melpipe-partial`
/// holds its arrays and journal.
fn interrupted(data: &Path, out: &Path) -> PathBuf {
    let o = run_within(
        &run_args(data, out, false),
        &[
            ("MELPIPE_FAULT_WRITE_AFTER_BYTES", "400000"),
            ("MELPIPE_CHECKPOINT_SECS", "0"),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let partial = out.join(".melpipe-partial");
    let journal = std::fs::read_to_string(partial.join("journal.jsonl")).unwrap();
    assert!(journal.lines().count() >= 3, "too few records:\n{journal}");
    partial
}

/// Bytes of the committed partial arrays changed before `--resume` were kept, and the
/// output differed from an uninterrupted run yet verified. The resume now refuses (exit 1: the
/// partial output cannot be used as it is, like other refused resumes) and says `--force`.
#[test]
fn altered_committed_bytes_are_not_resumed() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 30, 0);
    let full = t.path().join("full");
    run_ok(&run_args(&data, &full, false));
    let out = t.path().join("out");
    let partial = interrupted(&data, &out);
    for name in ["features.npy", "mapping.npy"] {
        let p = partial.join(name);
        let bytes = std::fs::read(&p).unwrap();
        let mut b = bytes.clone();
        b[128 + 200] ^= 0x10;
        std::fs::write(&p, &b).unwrap();
        refused(
            &run_args(&data, &out, true),
            1,
            &[name, "damaged", "--force"],
        );
        std::fs::write(&p, &bytes).unwrap();
    }
    run_ok(&run_args(&data, &out, true));
    run_ok(&["verify", s(&out)]);
    same_output(&out, &full);
}

/// The journal is melpipe's, but what `--resume` reads back from disk is untrusted all the same:
/// duplicated or reordered records, a record naming another file, a huge line, a journal that
/// is a FIFO or a folder, arrays shorter than the journal says. Each is refused with exit 1 and
/// a pointer to `--force`, without a hang; the untouched journal still resumes byte-identically.
#[test]
fn hostile_journals_are_refused_with_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 30, 0);
    let full = t.path().join("full");
    run_ok(&run_args(&data, &full, false));
    let out = t.path().join("out");
    let partial = interrupted(&data, &out);
    let jpath = partial.join("journal.jsonl");
    let journal = std::fs::read_to_string(&jpath).unwrap();
    let lines: Vec<&str> = journal.lines().collect();
    let (header, first, last) = (lines[0], lines[1], lines[lines.len() - 1]);
    let mut renamed: Value = serde_json::from_str(first).unwrap();
    renamed["files"][1]["path"] = renamed["files"][0]["path"].clone();
    let mut past_end: Value = serde_json::from_str(last).unwrap();
    past_end["features_bytes"] = Value::from(1u64 << 40);
    let with = |extra: &[&str]| {
        let mut j = journal.clone();
        for l in extra {
            j.push_str(l);
            j.push('\n');
        }
        j
    };
    let huge = "7".repeat(8 << 20);
    let cases: Vec<(&str, String, &str)> = vec![
        ("a duplicated record", with(&[last]), "does not follow"),
        (
            "a record going backwards",
            with(&[first]),
            "does not follow",
        ),
        (
            "a record naming another file",
            format!("{header}\n{}\n", renamed),
            "the journal's file 1",
        ),
        (
            "a record pointing past the end of the arrays",
            with(&[&past_end.to_string()]),
            "does not follow",
        ),
        (
            "a huge line",
            with(&[&huge]),
            "more than a run over 30 files writes",
        ),
        (
            "a damaged header",
            format!("{{\"format\":1}}\n{first}\n"),
            "journal header",
        ),
    ];
    for (what, text, words) in &cases {
        std::fs::write(&jpath, text).unwrap();
        let o = refused(&run_args(&data, &out, true), 1, &[words, "--force"]);
        eprintln!("{what}: {}", o.lines().last().unwrap_or(""));
    }
    // A journal that is not a regular file.
    std::fs::remove_file(&jpath).unwrap();
    std::fs::create_dir(&jpath).unwrap();
    refused(
        &run_args(&data, &out, true),
        2,
        &["journal.jsonl", "not a regular file"],
    );
    std::fs::remove_dir(&jpath).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(&jpath)
        .status()
        .unwrap();
    assert!(fifo.success());
    refused(
        &run_args(&data, &out, true),
        2,
        &["journal.jsonl", "not a regular file"],
    );
    std::fs::remove_file(&jpath).unwrap();
    // Arrays shorter than the journal committed.
    std::fs::write(&jpath, &journal).unwrap();
    let fp = partial.join("features.npy");
    let features = std::fs::read(&fp).unwrap();
    std::fs::write(&fp, &features[..200]).unwrap();
    refused(
        &run_args(&data, &out, true),
        1,
        &["features.npy", "--force"],
    );
    std::fs::write(&fp, &features).unwrap();
    // Untouched, it resumes.
    run_ok(&run_args(&data, &out, true));
    same_output(&out, &full);
}

/// Gives the first usable file of a natural-mode manifest 999,999,999,999 rows and its samples,
/// and everything else the rows, shapes and sizes that follow: only the arrays' sizes on disk
/// tell that the manifest is not theirs.
fn huge_but_consistent(v: &mut Value) {
    let n = 999_999_999_999u64;
    let files = v["files"].as_array_mut().unwrap();
    let f = files.iter_mut().find(|f| f["status"] == "ok").unwrap();
    f["samples"] = Value::from((n / 3 - 1) * 512 + 1024);
    f["rows"] = Value::from(n);
    let mut row = 0;
    for f in files.iter_mut() {
        f["first_row"] = Value::from(row);
        row += f["rows"].as_u64().unwrap();
    }
    v["rows"] = Value::from(row);
    v["features"]["shape"][0] = Value::from(row);
    v["features"]["data_bytes"] = Value::from(row * 64);
    v["mapping"]["shape"][0] = Value::from(row);
    v["mapping"]["data_bytes"] = Value::from(row * 48);
}

/// Commands hung for hours (a file claiming 10^12 rows) or panicked (a hop of 0) on an
/// edited manifest. Each edit is tried with its checksum made to fit, so that the structural
/// checks must refuse it; every command answers at once, with an error, without a panic.
#[test]
fn edited_manifests_are_refused_by_every_command_in_bounded_time() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 4, 1);
    let shards: Vec<PathBuf> = (0..2)
        .map(|k| {
            let o = t.path().join(format!("shard-{k}"));
            let spec = format!("{k}/2");
            run_ok(&[
                "run",
                s(&data),
                "-o",
                s(&o),
                "-q",
                "--shard",
                &spec,
                "--length",
                "natural",
            ]);
            o
        })
        .collect();
    let out = &shards[0];
    let base = read_manifest(out);
    let first = base["files"][0]["path"].as_str().unwrap().to_string();
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 9] = [
        ("a file claiming 10^12 rows", |v| {
            v["files"][0]["rows"] = Value::from(1_000_000_000_000u64);
            v["rows"] = Value::from(1_000_000_000_000u64);
        }),
        (
            "10^12 rows, consistent but for the arrays' size",
            huge_but_consistent,
        ),
        ("a short hop of 0", |v| {
            v["config"]["short_hop"] = Value::from(0)
        }),
        ("an STFT hop of 0", |v| {
            v["config"]["hop_length"] = Value::from(0)
        }),
        ("a long hop of 0", |v| {
            v["config"]["long_hop"] = Value::from(0)
        }),
        ("huge windows", |v| {
            v["config"]["short_win"] = Value::from(u64::MAX / 2);
            v["config"]["long_win"] = Value::from(u64::MAX / 2);
        }),
        ("the features file named /dev/zero", |v| {
            v["features"]["file"] = Value::from("/dev/zero")
        }),
        ("a shard of 10^15", |v| {
            v["shard"]["count"] = Value::from(1_000_000_000_000_000u64);
            v["shard"]["files_total"] = Value::from(1_000_000_000_000_000u64);
        }),
        ("a mel count of 0", |v| {
            v["config"]["n_mels"] = Value::from(0)
        }),
    ];
    let png = t.path().join("x.png");
    let merged = t.path().join("merged");
    for (what, edit) in edits {
        let mut v = base.clone();
        edit(&mut v);
        write_resealed(out, &v);
        eprintln!("{what}");
        refused(&["verify", s(out)], 2, &["not intact"]);
        refused(&["inspect", s(out)], 1, &["manifest.json"]);
        refused(
            &["plot", s(out), "--file", &first, "-o", s(&png)],
            1,
            &["manifest.json"],
        );
        refused(
            &[
                "merge",
                "-q",
                s(&shards[0]),
                s(&shards[1]),
                "-o",
                s(&merged),
            ],
            1,
            &["does not verify"],
        );
        // Without a fitting checksum, the checksum refuses it first.
        std::fs::write(
            out.join("manifest.json"),
            serde_json::to_vec_pretty(&v).unwrap(),
        )
        .unwrap();
        refused(&["verify", s(out)], 2, &["changed after melpipe wrote it"]);
    }
    write_resealed(out, &base);
    run_ok(&[
        "merge",
        "-q",
        s(&shards[0]),
        s(&shards[1]),
        "-o",
        s(&merged),
    ]);
    check_ok(
        &["verify"],
        melpipe().args(["verify", s(&merged)]).output().unwrap(),
    );
    // The merged manifest carries its own checksum too.
    assert!(read_manifest(&merged)["manifest_xxh3_64"].is_string());
}

/// A manifest of the first format (before manifests carried their own checksum) is still read:
/// `verify` checks its consistency, says that changes to it cannot be seen, and accepts it.
#[test]
fn a_manifest_without_its_own_checksum_verifies_with_a_note() {
    let t = tempfile::tempdir().unwrap();
    let data = dataset(t.path(), 2, 0);
    let out = t.path().join("out");
    run_ok(&["run", s(&data), "-o", s(&out), "-q"]);
    let mut v = read_manifest(&out);
    let o = v.as_object_mut().unwrap();
    o.remove("manifest_xxh3_64");
    o.insert("format".into(), Value::from("melpipe-manifest/1"));
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
    let o = check_ok(
        &["verify"],
        melpipe().args(["verify", s(&out)]).output().unwrap(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("without a checksum of its own"), "{err}");
    // Still checked for consistency: a row count that does not add up is refused.
    v["rows"] = Value::from(1);
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
    refused(&["verify", s(&out)], 2, &["account for"]);
    // A second-format manifest without its checksum is not.
    v["format"] = Value::from("melpipe-manifest/2");
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
    refused(&["verify", s(&out)], 2, &["must carry manifest_xxh3_64"]);
}
