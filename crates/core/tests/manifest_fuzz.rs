//! Property test of the readers of an output folder (`Manifest::read`, `verify`, the readers
//! behind `inspect` and `plot`) against hostile manifests and `.npy` headers: a real small
//! output, then its `manifest.json` changed one byte at a time, and rewritten with fields set to
//! boundary values, entries duplicated, swapped or removed (sealed again with a valid checksum,
//! so that the structural checks are reached), and its arrays' headers changed one bit at a
//! time. For every input: no panic, each case done in bounded time (a watchdog aborts, naming
//! the case, after 20 s; each must take under 2 s), no change of the manifest file accepted, and
//! an edited manifest that `verify` accepts still puts every row where the arrays hold it.
//!
//! Fixed seed; `MELPIPE_FUZZ_CASES=N` adds N random byte changes on top of the exhaustive ones.

mod common;

use common::*;
use melpipe_core::config::LengthMode;
use melpipe_core::dsp::CpuBackendFactory;
use melpipe_core::manifest::Manifest;
use melpipe_core::verify;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs every reader on `out`; returns whether `verify` found it intact, and the manifest then.
fn read_all(out: &Path) -> (bool, Option<Manifest>) {
    let report = verify::verify(out);
    let quick = verify::verify_without_data(out);
    assert_eq!(
        quick.problems.is_empty() && quick.manifest.is_some(),
        report.manifest.is_some() && report.problems.iter().all(|p| p.contains("checksum")),
        "verify and verify_without_data disagree: {:?} / {:?}",
        report.problems,
        quick.problems
    );
    if let Ok(m) = Manifest::read(out) {
        // inspect's and plot's readers, on what read accepted.
        let _ = verify::feature_stats(out, &m);
        for i in 0..m.files.len() {
            let _ = verify::file_features(out, &m, i);
        }
    }
    (report.intact(), report.manifest)
}

/// Where a manifest puts the data: the arrays, their geometry, and each file's rows. Someone who
/// recomputes the checksum can still make a manifest lie about what does not shape the arrays (a
/// parameter such as `top_db`, a file's name in its place in the order, a failure's reason); an
/// edit `verify` accepts must leave this alone, so that no reader looks for rows elsewhere.
fn data_description(m: &Manifest) -> Value {
    let rows: Vec<(u64, u64)> = m.files.iter().map(|f| (f.first_row, f.rows)).collect();
    serde_json::json!({
        "geometry": m.geometry,
        "rows": m.rows,
        "features": m.features,
        "mapping": m.mapping,
        "files": rows,
    })
}

/// Runs `case` with a watchdog: the process aborts, printing `what`, if it takes 20 s.
struct Watchdog {
    current: Arc<Mutex<String>>,
    started: Arc<AtomicU64>,
    t0: Instant,
}

impl Watchdog {
    fn new() -> Self {
        let w = Watchdog {
            current: Arc::default(),
            started: Arc::default(),
            t0: Instant::now(),
        };
        let (current, started, t0) = (Arc::clone(&w.current), Arc::clone(&w.started), w.t0);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let s = started.load(Ordering::Relaxed);
            if s > 0 && (t0.elapsed().as_millis() as u64).saturating_sub(s) > 20_000 {
                eprintln!("case hangs: {}", current.lock().unwrap());
                std::process::abort();
            }
        });
        w
    }

    fn run<T>(&self, what: impl Fn() -> String, case: impl FnOnce() -> T) -> T {
        *self.current.lock().unwrap() = what();
        self.started
            .store(self.t0.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
        let t = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case))
            .unwrap_or_else(|_| panic!("panicked on {}", what()));
        self.started.store(0, Ordering::Relaxed);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}: {}",
            t.elapsed(),
            what()
        );
        r
    }
}

/// A small real output: 6 clips and 3 malformed files.
fn output(dir: &Path, length: LengthMode) -> std::path::PathBuf {
    let data = dataset(&dir.join(format!("in-{length}")), 6, 3);
    let out = dir.join(format!("out-{length}"));
    let mut cfg = small_config();
    cfg.params.length = length;
    run_into(&cfg, &data, &out, &CpuBackendFactory);
    out
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn no_single_byte_change_of_the_manifest_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = output(tmp.path(), LengthMode::Fixed);
    assert!(read_all(&out).0);
    let path = out.join("manifest.json");
    let text = std::fs::read(&path).unwrap();
    let dog = Watchdog::new();
    let mut rng = Rng(0x5eed_0f4a_1100);
    let extra: usize = std::env::var("MELPIPE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut cases: Vec<(usize, u8)> = Vec::new();
    for (i, &b) in text.iter().enumerate() {
        cases.push((i, b ^ (1 << (i % 8))));
        cases.push((i, rng.next() as u8));
    }
    for _ in 0..extra {
        let i = rng.next() as usize % text.len();
        cases.push((i, rng.next() as u8));
    }
    let mut refused = 0;
    for (i, b) in cases {
        if b == text[i] {
            continue;
        }
        let mut t = text.clone();
        t[i] = b;
        std::fs::write(&path, &t).unwrap();
        let what = || format!("byte {i} {:?} -> {:?}", text[i] as char, b as char);
        let (ok, _) = dog.run(what, || read_all(&out));
        // The checksum covers the file's bytes: no change is accepted, not even whitespace.
        assert!(!ok, "accepted a changed manifest: {}", what());
        refused += 1;
    }
    eprintln!("{} bytes: {refused} changes refused", text.len());
    assert!(refused > text.len());
}

/// Every numeric and string leaf of a JSON value, by path.
fn leaves(v: &Value, at: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            at.push(Value::from(k.clone()));
            leaves(x, at, out);
            at.pop();
        }),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| {
            at.push(Value::from(i));
            leaves(x, at, out);
            at.pop();
        }),
        Value::Number(_) | Value::String(_) | Value::Null | Value::Bool(_) => out.push(at.clone()),
    }
}

fn leaf<'a>(v: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match k {
        Value::String(s) => &mut v[s.as_str()],
        Value::Number(n) => &mut v[n.as_u64().unwrap() as usize],
        _ => unreachable!(),
    })
}

/// Writes `v` as the manifest: sealed with a valid checksum when it still parses as one (so the
/// structural checks are what must refuse it), as it is otherwise.
fn write_sealed(out: &Path, v: &Value) {
    let text = match serde_json::from_value::<Manifest>(v.clone()) {
        Ok(mut m) => m.to_json().unwrap(),
        Err(_) => serde_json::to_vec_pretty(v).unwrap(),
    };
    std::fs::write(out.join("manifest.json"), text).unwrap();
}

#[test]
fn edited_manifests_with_valid_checksums_are_refused_or_harmless() {
    let tmp = tempfile::tempdir().unwrap();
    let dog = Watchdog::new();
    for length in [LengthMode::Fixed, LengthMode::Natural] {
        let out = output(tmp.path(), length);
        let (intact, orig) = read_all(&out);
        assert!(intact);
        let want = data_description(&orig.unwrap());
        let base: Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        let mut edits: Vec<(String, Value)> = Vec::new();
        let mut paths = Vec::new();
        leaves(&base, &mut Vec::new(), &mut paths);
        let numbers = [
            serde_json::json!(0),
            serde_json::json!(1),
            serde_json::json!(3),
            serde_json::json!(1u64 << 32),
            serde_json::json!(1_000_000_000_000u64),
            serde_json::json!(u64::MAX),
            serde_json::json!(-1),
            serde_json::json!(0.5),
            serde_json::json!(1e300),
            serde_json::json!("x"),
            serde_json::json!("../../../dev/zero"),
            serde_json::json!("/dev/zero"),
            serde_json::json!(""),
            Value::Null,
        ];
        for p in &paths {
            for n in &numbers {
                let mut v = base.clone();
                *leaf(&mut v, p) = n.clone();
                edits.push((format!("{length}: {p:?} = {n}"), v));
            }
        }
        let files = base["files"].as_array().unwrap().len();
        for (name, edit) in [
            ("duplicate", 0),
            ("swap", 1),
            ("remove", 2),
            ("reverse", 3),
            ("rename onto the next", 4),
        ] {
            for k in 0..files.saturating_sub(1) {
                let mut v = base.clone();
                let f = v["files"].as_array_mut().unwrap();
                match edit {
                    0 => f.insert(k, f[k].clone()),
                    1 => f.swap(k, k + 1),
                    2 => drop(f.remove(k)),
                    3 => f.reverse(),
                    _ => f[k]["path"] = f[k + 1]["path"].clone(),
                }
                edits.push((format!("{length}: {name} file {k}"), v));
            }
        }
        let mut accepted = 0;
        for (what, v) in &edits {
            write_sealed(&out, v);
            let (ok, m) = dog.run(|| what.clone(), || read_all(&out));
            if ok {
                accepted += 1;
                assert_eq!(
                    data_description(&m.unwrap()),
                    want,
                    "accepted a manifest that puts rows elsewhere: {what}"
                );
            }
        }
        eprintln!(
            "{length}: {} edits, {accepted} accepted (none that moves rows)",
            edits.len()
        );
        write_sealed(&out, &base);
        assert!(read_all(&out).0);
    }
}

#[test]
fn no_bit_flip_of_an_npy_header_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = output(tmp.path(), LengthMode::Fixed);
    let dog = Watchdog::new();
    for name in ["features.npy", "mapping.npy"] {
        let path = out.join(name);
        let bytes = std::fs::read(&path).unwrap();
        for bit in 0..melpipe_core::npy::HEADER_LEN * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&path, &b).unwrap();
            let what = || format!("{name}: header bit {bit}");
            let (ok, _) = dog.run(what, || read_all(&out));
            assert!(!ok, "accepted {}", what());
        }
        std::fs::write(&path, &bytes).unwrap();
    }
    assert!(read_all(&out).0);
}
