//! The test device of the pipeline tests (a factory that computes with the CPU backend but says
//! it is not a CPU) and helpers shared by the test files that use it.
#![allow(dead_code)]

use melpipe_core::backend::{AudioBatch, Backend, BackendFactory, FeatureBuf};
use melpipe_core::config::{LengthMode, Params, RunOptions, Settings};
use melpipe_core::dsp::CpuBackendFactory;
use melpipe_core::geometry::Geometry;
use melpipe_core::manifest::Manifest;
use melpipe_core::pipeline::RunRequest;
use melpipe_core::Result;
use melpipe_gen::{generate, GenerateOptions};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A device factory computing with the CPU backend. With `shuffled`, a pseudo-random pause
/// before each batch makes tasks finish out of order; with `fell_back`, its device "could not
/// be started" and it computes on the CPU as `--device auto` does then; with `stopping`, it
/// stops the run after that many batches. It counts the backends it made, those still alive,
/// and the backends alive at each `release`; it "page-locks" each batch (a counted pin, as the
/// GPU backend registers them) and counts the pins alive at each `release` too.
pub struct Device {
    pub fell_back: bool,
    pub seed: Option<AtomicU64>,
    pub stop: Arc<AtomicBool>,
    pub stop_after: Option<u64>,
    pub computed: Arc<AtomicU64>,
    pub created: AtomicU64,
    pub live: Arc<AtomicI64>,
    pub released_with_live: Mutex<Vec<i64>>,
    pub pins: Arc<AtomicI64>,
    pub released_with_pins: Mutex<Vec<i64>>,
}

/// A batch's page-locking in the test device: counted while alive.
pub struct TestPin(Arc<AtomicI64>);

impl Drop for TestPin {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Device {
    pub fn new(fell_back: bool) -> Self {
        Device {
            fell_back,
            seed: None,
            stop: Arc::default(),
            stop_after: None,
            computed: Arc::default(),
            created: AtomicU64::new(0),
            live: Arc::default(),
            released_with_live: Mutex::default(),
            pins: Arc::default(),
            released_with_pins: Mutex::default(),
        }
    }
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.seed = Some(AtomicU64::new(seed));
        self
    }
    pub fn stopping(mut self, stop: &Arc<AtomicBool>, after: u64) -> Self {
        self.stop = Arc::clone(stop);
        self.stop_after = Some(after);
        self
    }
}

pub struct DeviceBackend {
    inner: Box<dyn Backend>,
    /// xorshift state of the pauses (none without `shuffled`).
    state: Option<u64>,
    stop: Arc<AtomicBool>,
    stop_after: Option<u64>,
    computed: Arc<AtomicU64>,
    live: Arc<AtomicI64>,
    pins: Arc<AtomicI64>,
}

impl Drop for DeviceBackend {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Backend for DeviceBackend {
    fn name(&self) -> String {
        "test device".into()
    }
    fn prepare(&mut self, batch: &mut AudioBatch) {
        if !batch.samples.is_pinned() && batch.samples.region().is_some() {
            self.pins.fetch_add(1, Ordering::SeqCst);
            batch
                .samples
                .set_pin(Box::new(TestPin(Arc::clone(&self.pins))));
        }
    }
    fn compute(&mut self, batch: &AudioBatch, out: &mut FeatureBuf) -> Result<()> {
        if let Some(s) = &mut self.state {
            // 0–3 ms, enough to reorder tasks between threads.
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            std::thread::sleep(std::time::Duration::from_micros(*s % 3000));
        }
        let n = self.computed.fetch_add(1, Ordering::Relaxed) + 1;
        if self.stop_after.is_some_and(|k| n >= k) {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.inner.compute(batch, out)
    }
}

impl BackendFactory for Device {
    fn name(&self) -> String {
        if self.fell_back {
            "cpu (auto: the GPU could not be started: test)".into()
        } else {
            "test device".into()
        }
    }
    fn create(&self, cfg: &Params) -> Result<Box<dyn Backend>> {
        let state = self
            .seed
            .as_ref()
            .map(|s| s.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) | 1);
        self.created.fetch_add(1, Ordering::SeqCst);
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(DeviceBackend {
            inner: CpuBackendFactory.create(cfg)?,
            state,
            stop: Arc::clone(&self.stop),
            stop_after: self.stop_after,
            computed: Arc::clone(&self.computed),
            live: Arc::clone(&self.live),
            pins: Arc::clone(&self.pins),
        }))
    }
    fn is_cpu(&self) -> bool {
        false
    }
    fn accepts_i16(&self) -> bool {
        true
    }
    fn fell_back_to_cpu(&self) -> bool {
        self.fell_back
    }
    fn release(&self) {
        let live = self.live.load(Ordering::SeqCst);
        self.released_with_live.lock().unwrap().push(live);
        let pins = self.pins.load(Ordering::SeqCst);
        self.released_with_pins.lock().unwrap().push(pins);
    }
}

pub fn request(data: &Path, out: &Path, resume: bool, stop: Arc<AtomicBool>) -> RunRequest {
    RunRequest {
        inputs: vec![data.to_path_buf()],
        out: out.to_path_buf(),
        force: false,
        resume,
        progress: Arc::default(),
        stop,
        shard: None,
    }
}

/// The pipeline with the parameters and run options of `s`.
pub fn run(
    s: &Settings,
    req: &RunRequest,
    factory: &dyn BackendFactory,
) -> melpipe_core::Result<melpipe_core::pipeline::RunSummary> {
    melpipe_core::pipeline::run(&s.params, &s.run, req, factory)
}

pub fn run_into(cfg: &Settings, data: &Path, out: &Path, factory: &dyn BackendFactory) -> Manifest {
    run(cfg, &request(data, out, false, Arc::default()), factory)
        .unwrap()
        .manifest
}

/// `files` clips of 6,000 samples plus `corrupt` unusual or malformed files, in `dir/data`.
pub fn dataset(dir: &Path, files: usize, corrupt: usize) -> std::path::PathBuf {
    let data = dir.join("data");
    let opts = GenerateOptions {
        files,
        corrupt,
        samples: 6000,
        ..GenerateOptions::default()
    };
    generate(&data, &opts).unwrap();
    data
}

/// A run into `out` on a device (`fell_back` as in [`Device::new`]) that stops it after `after`
/// batches; the run must say it was interrupted. Returns the device, for its counts.
pub fn interrupted_run(
    cfg: &Settings,
    data: &Path,
    out: &Path,
    fell_back: bool,
    after: u64,
) -> Device {
    let stop = Arc::new(AtomicBool::new(false));
    let device = Device::new(fell_back).stopping(&stop, after);
    let r = run(cfg, &request(data, out, false, Arc::clone(&stop)), &device);
    assert!(matches!(r, Err(melpipe_core::Error::Interrupted)), "{r:?}");
    device
}

pub fn small_config() -> Settings {
    Settings {
        params: Params {
            clip_samples: 6000,
            ..Params::default()
        },
        run: RunOptions {
            files_per_task: 4,
            readers: 3,
            streams: 2,
            queue_depth: 4,
            // The device computes every task unless a test asks for a head.
            cpu_head: Some(0),
            ..RunOptions::default()
        },
    }
}

/// `small_config()` with its run options changed by `f`.
pub fn small_with(f: impl FnOnce(&mut RunOptions)) -> Settings {
    let mut s = small_config();
    f(&mut s.run);
    s
}

/// The device pipeline gives the CPU pipeline's bytes (fixed and natural length, failed
/// files among the inputs, tasks finishing out of order).
pub fn check_device_pipeline_writes_the_same_bytes_as_the_cpu_pipeline(
    cpu_head: usize,
    ahead_mib: Option<f64>,
) {
    let tmp = tempfile::tempdir().unwrap();
    // Short clips, a few unusual and malformed files among them (failed files keep their rows
    // in fixed mode; in natural mode rows follow each file's length).
    let data = dataset(tmp.path(), 150, 12);
    for length in [LengthMode::Fixed, LengthMode::Natural] {
        let mut cfg = small_with(|r| {
            r.threads = 3;
            r.streams = 3;
            r.queue_depth = 5;
            r.cpu_head = Some(cpu_head);
            r.tuning.ahead_mib = ahead_mib;
        });
        cfg.params.length = length;
        let cpu = tmp.path().join(format!("cpu_{length:?}"));
        let dev = tmp.path().join(format!("dev_{length:?}"));
        let a = run_into(&cfg, &data, &cpu, &CpuBackendFactory);
        let b = run_into(&cfg, &data, &dev, &Device::new(false).shuffled(7));
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

/// Every pooled batch is unpinned by the time the device is given back.
pub fn check_every_pooled_batch_is_gone_when_the_device_is_released(
    cpu_head: usize,
    ahead_mib: Option<f64>,
) {
    // The device's context is held by the batches' page-locked registrations: it is given back
    // only once all are dropped, whatever order tasks finish in (readers that end early drop
    // the pool's surplus while others still wait for a batch).
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 90, 3);
    for (seed, readers, depth) in [(1, 4, 3), (2, 6, 2), (3, 3, 8), (4, 8, 12), (5, 1, 1)] {
        let cfg = small_with(|r| {
            r.readers = readers;
            r.queue_depth = depth;
            r.cpu_head = Some(cpu_head);
            r.tuning.ahead_mib = ahead_mib;
        });
        let device = Device::new(false).shuffled(seed);
        let out = tmp.path().join(format!("o{seed}"));
        let m = run_into(&cfg, &data, &out, &device);
        // 90 clips and 3 malformed files (which keep their rows in fixed mode).
        assert_eq!(m.rows, 93 * Geometry::new(&cfg.params).rows(None) as u64);
        assert!(
            device.pins.load(Ordering::SeqCst) == 0,
            "seed {seed}: pins left"
        );
        assert_eq!(
            *device.released_with_pins.lock().unwrap(),
            vec![0],
            "seed {seed}: released with batches alive"
        );
        assert!(melpipe_core::verify::verify(&out).intact());
    }
}

/// A run stopped (Ctrl-C) while it has fewer batches than compute threads ends, whatever moment
/// the stop comes: a compute thread that stops drops the batch it took, and a reader waiting for
/// that batch must notice the stop rather than wait for ever.
pub fn check_a_stopped_run_ends_with_fewer_batches_than_compute_threads(
    cpu_head: usize,
    ahead_mib: Option<f64>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 60, 0);
    for (i, after) in [1, 2, 3, 5, 8].into_iter().enumerate() {
        let cfg = small_with(|r| {
            r.queue_depth = 1;
            r.streams = 3;
            r.readers = 3;
            r.cpu_head = Some(cpu_head);
            r.tuning.ahead_mib = ahead_mib;
        });
        let device = interrupted_run(&cfg, &data, &tmp.path().join(format!("o{i}")), false, after);
        assert!(device.released_with_live.lock().unwrap().is_empty());
    }
}
