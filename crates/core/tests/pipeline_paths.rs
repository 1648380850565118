//! The device pipeline (reader threads fill a pool of batches, compute threads take them and
//! write their rows at their place) against the CPU pipeline (each thread reads, computes and
//! writes its own tasks): both must give the same bytes, whatever order tasks finish in.
//! CI has no GPU, so the device path runs here with the CPU backend behind a factory that
//! says it is not a CPU, and with random delays that make tasks finish out of order.

use melpipe_core::backend::{AudioBatch, Backend, BackendFactory, FeatureBuf};
use melpipe_core::config::{Config, LengthMode};
use melpipe_core::dsp::CpuBackendFactory;
use melpipe_core::generate::{generate, GenerateOptions};
use melpipe_core::manifest::Manifest;
use melpipe_core::pipeline::{run, RunRequest};
use melpipe_core::Result;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The CPU backend, presented as a device, with a pseudo-random pause before each batch.
struct Shuffled {
    seed: AtomicU64,
}

struct ShuffledBackend {
    inner: Box<dyn Backend>,
    state: u64,
}

impl Backend for ShuffledBackend {
    fn name(&self) -> String {
        "shuffled cpu".into()
    }
    fn compute(&mut self, batch: &AudioBatch, out: &mut FeatureBuf) -> Result<()> {
        // xorshift: 0–3 ms, enough to reorder tasks between threads.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        std::thread::sleep(std::time::Duration::from_micros(self.state % 3000));
        self.inner.compute(batch, out)
    }
}

impl BackendFactory for Shuffled {
    fn name(&self) -> String {
        "shuffled cpu".into()
    }
    fn create(&self, cfg: &Config) -> Result<Box<dyn Backend>> {
        let state = self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            | 1;
        Ok(Box::new(ShuffledBackend {
            inner: CpuBackendFactory.create(cfg)?,
            state,
        }))
    }
    fn is_cpu(&self) -> bool {
        false
    }
    fn accepts_i16(&self) -> bool {
        true
    }
}

fn run_into(cfg: &Config, data: &Path, out: &Path, factory: &dyn BackendFactory) -> Manifest {
    let req = RunRequest {
        inputs: vec![data.to_path_buf()],
        out: out.to_path_buf(),
        force: false,
        resume: false,
        progress: Arc::default(),
        stop: Arc::default(),
        shard: None,
    };
    run(cfg, &req, factory).unwrap().manifest
}

#[test]
fn device_pipeline_writes_the_same_bytes_as_the_cpu_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Short clips, a few unusual and malformed files among them (failed files keep their rows
    // in fixed mode; in natural mode rows follow each file's length).
    let opts = GenerateOptions {
        files: 150,
        corrupt: 12,
        samples: 6000,
        ..GenerateOptions::default()
    };
    generate(&data, &opts).unwrap();
    for length in [LengthMode::Fixed, LengthMode::Natural] {
        let cfg = Config {
            length,
            clip_samples: 6000,
            files_per_task: 4,
            readers: 3,
            threads: 3,
            streams: 3,
            queue_depth: 5,
            ..Config::default()
        };
        let cpu = tmp.path().join(format!("cpu_{length:?}"));
        let dev = tmp.path().join(format!("dev_{length:?}"));
        let a = run_into(&cfg, &data, &cpu, &CpuBackendFactory);
        let b = run_into(
            &cfg,
            &data,
            &dev,
            &Shuffled {
                seed: AtomicU64::new(7),
            },
        );
        assert!(a.rows > 0, "{length:?}: no rows");
        assert_eq!(a.rows, b.rows, "{length:?}");
        assert_eq!(a.features.xxh3_64, b.features.xxh3_64, "{length:?}");
        for name in ["features.npy", "mapping.npy"] {
            let (x, y) = (
                std::fs::read(cpu.join(name)).unwrap(),
                std::fs::read(dev.join(name)).unwrap(),
            );
            assert!(
                x == y,
                "{length:?}: {name} differs between the two pipelines"
            );
        }
        // The checksum in the manifest is that of the bytes on disk.
        let v = melpipe_core::verify::verify(&dev);
        assert!(v.intact(), "{length:?}: {:?}", v.problems);
    }
}
