//! The CPU backend against torchaudio: golden files made by `scripts/make_golden.py` (torchaudio
//! 2.11, float64) in `tests/golden/`. docs/FORMAT.md (Accuracy): every value within 60 dB of its
//! segment's peak is within 0.05 dB (f32 output) or 0.1 dB (f16 output) of torchaudio; nothing is non-finite.

use melpipe_core::config::{DeviceChoice, Dtype, Settings};
use melpipe_core::dsp::CpuBackendFactory;
use melpipe_core::npy;
use melpipe_core::pipeline::{run, RunRequest};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

/// Reads a little-endian f32 `.npy` file: (shape, values).
fn read_f32(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let h = npy::parse_header(&bytes).unwrap();
    assert_eq!(h.descr, "<f4", "{}", path.display());
    let v = bytes[h.data_offset..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (h.shape, v)
}

fn read_f16(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let h = npy::parse_header(&bytes).unwrap();
    assert_eq!(h.descr, "<f2");
    let v = bytes[h.data_offset..]
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    (h.shape, v)
}

#[test]
fn cpu_backend_matches_torchaudio_goldens() {
    let dir = golden_dir();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert!(cases.len() >= 7, "golden cases missing");
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (ref_shape, reference) = read_f32(&dir.join(case["expected"].as_str().unwrap()));
        let inputs: Vec<PathBuf> = case["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| dir.join("inputs").join(n.as_str().unwrap()))
            .collect();
        for (dtype, tol) in [(Dtype::F32, 0.05f64), (Dtype::F16, 0.1)] {
            let mut cfg = Settings::from_toml(case["config_toml"].as_str().unwrap()).unwrap();
            cfg.params.dtype = dtype;
            cfg.run.device = DeviceChoice::Cpu;
            let out = tmp.path().join(format!("{name}_{dtype}"));
            let req = RunRequest {
                inputs: inputs.clone(),
                out: out.clone(),
                force: false,
                resume: false,
                progress: Arc::default(),
                stop: Arc::default(),
                shard: None,
            };
            run(&cfg.params, &cfg.run, &req, &CpuBackendFactory).unwrap();
            let (shape, got) = match dtype {
                Dtype::F32 => read_f32(&out.join("features.npy")),
                Dtype::F16 => read_f16(&out.join("features.npy")),
            };
            assert_eq!(shape, ref_shape, "{name} {dtype}");
            let per_row = (shape[1] * shape[2]) as usize;
            let mut worst = 0f64;
            for (r, (g, e)) in got
                .chunks_exact(per_row)
                .zip(reference.chunks_exact(per_row))
                .enumerate()
            {
                let peak = e.iter().copied().fold(f32::MIN, f32::max) as f64;
                for (i, (&g, &e)) in g.iter().zip(e).enumerate() {
                    assert!(g.is_finite(), "{name} {dtype}: row {r} value {i} is {g}");
                    let d = (g as f64 - e as f64).abs();
                    if e as f64 >= peak - 60.0 {
                        worst = worst.max(d);
                        assert!(
                            d <= tol,
                            "{name} {dtype}: row {r} value {i}: melpipe {g} torchaudio {e} (|Δ| {d:.4} dB > {tol})"
                        );
                    } else {
                        // Far below the peak: looser, but still the same number.
                        assert!(d <= 1.0, "{name} {dtype}: row {r} value {i}: {g} vs {e}");
                    }
                }
            }
            report.push(format!("{name} {dtype}: max |Δ| {worst:.5} dB"));
        }
    }
    eprintln!("{}", report.join("\n"));
}
