//! The device pipeline (reader threads fill a pool of batches, compute threads take them and
//! write their rows at their place) against the CPU pipeline (each thread reads, computes and
//! writes its own tasks): both must give the same bytes, whatever order tasks finish in.
//! CI has no GPU, so the device path runs here with the CPU backend behind a factory that
//! says it is not a CPU, and with random delays that make tasks finish out of order.

mod common;

use common::*;
use melpipe_core::config::BackendKind;
use melpipe_core::dsp::CpuBackendFactory;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[test]
fn a_run_that_fell_back_to_the_cpu_journals_cpu_and_resumes_only_on_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 120, 0);
    let cfg = small_config();
    let out = tmp.path().join("out");
    let loaded = interrupted_with_records(&cfg, &data, &out, true);
    assert_eq!(loaded.header.backend_kind, BackendKind::Cpu);
    assert!(
        !loaded.records.is_empty(),
        "the interrupted run committed nothing"
    );

    // `auto` with a GPU that starts now would compute the rest on it: refused, with the way out.
    let gpu = Device::new(false).shuffled(1);
    let e = run(&cfg, &request(&data, &out, true, Arc::default()), &gpu).unwrap_err();
    assert!(e.to_string().contains("--device cpu"), "{e}");

    // On the CPU the resume completes, byte-identical to an uninterrupted CPU run.
    run(
        &cfg,
        &request(&data, &out, true, Arc::default()),
        &CpuBackendFactory,
    )
    .unwrap();
    let whole = tmp.path().join("whole");
    run_into(&cfg, &data, &whole, &CpuBackendFactory);
    for name in ["features.npy", "mapping.npy"] {
        assert!(
            std::fs::read(out.join(name)).unwrap() == std::fs::read(whole.join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_resume_that_falls_back_to_the_cpu_does_not_mix_backends() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 120, 0);
    let cfg = small_config();
    let out = tmp.path().join("out");
    // A device run, interrupted after a few batches.
    interrupted_run(&cfg, &data, &out, false, 5);
    let partial = out.join(melpipe_core::write::PARTIAL_DIR);
    assert_eq!(
        melpipe_core::journal::load(&partial, 1000)
            .unwrap()
            .header
            .backend_kind,
        BackendKind::Cuda
    );
    // The resume's device does not start: it must not finish the output on the CPU.
    let fell_back = Device::new(true);
    let e = run(
        &cfg,
        &request(&data, &out, true, Arc::default()),
        &fell_back,
    )
    .unwrap_err();
    assert!(e.to_string().contains("start over with --force"), "{e}");
    // The partial output is still resumable where the device works.
    let device = Device::new(false);
    run(&cfg, &request(&data, &out, true, Arc::default()), &device).unwrap();
    assert!(melpipe_core::verify::verify(&out).intact());
}

#[test]
fn device_pipeline_writes_the_same_bytes_as_the_cpu_pipeline() {
    check_device_pipeline_writes_the_same_bytes_as_the_cpu_pipeline(0, None);
}

#[test]
fn a_device_that_fell_back_computes_with_a_cpu_runs_threads_and_is_released_after_its_backends() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 60, 0);
    let cfg = small_with(|r| r.threads = 5);
    // A device that started: one compute thread per stream (2); released once, after every
    // backend is gone and before the run returns.
    let device = Device::new(false);
    run_into(&cfg, &data, &tmp.path().join("dev"), &device);
    assert_eq!(device.created.load(Ordering::SeqCst), 2);
    assert_eq!(*device.released_with_live.lock().unwrap(), vec![0]);
    // One that fell back computes on as many threads as a CPU run (5).
    let fell_back = Device::new(true);
    run_into(&cfg, &data, &tmp.path().join("fell_back"), &fell_back);
    assert_eq!(fell_back.created.load(Ordering::SeqCst), 5);
    assert_eq!(*fell_back.released_with_live.lock().unwrap(), vec![0]);
    // A run that stops is not released (its process tears the device down as it ends).
    let stopping = interrupted_run(&cfg, &data, &tmp.path().join("stopped"), false, 3);
    assert!(stopping.released_with_live.lock().unwrap().is_empty());
}

#[test]
fn every_pooled_batch_is_gone_when_the_device_is_released() {
    check_every_pooled_batch_is_gone_when_the_device_is_released(0, None);
}

#[test]
fn a_cpu_head_computes_the_first_files_and_a_resume_keeps_its_split() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 120, 0);
    let cfg = small_with(|r| r.cpu_head = Some(30));
    // The CPU threads take the first 30 files (8 tasks of at most 4: the head's tasks end at
    // its last file), the device the other 90 (23 tasks).
    let device = Device::new(false);
    let whole = tmp.path().join("whole");
    let m = run_into(&cfg, &data, &whole, &device);
    assert_eq!(m.cpu_head_files, 30);
    assert_eq!(device.computed.load(Ordering::SeqCst), 23);
    assert!(melpipe_core::verify::verify(&whole).intact());
    // More files than there are: all on the CPU, and the device is still given back.
    let all = small_with(|r| r.cpu_head = Some(500));
    let device = Device::new(false);
    let m = run_into(&all, &data, &tmp.path().join("all"), &device);
    assert_eq!(m.cpu_head_files, 120);
    assert_eq!(device.computed.load(Ordering::SeqCst), 0);
    assert_eq!(*device.released_with_live.lock().unwrap(), vec![0]);

    // Interrupted after 5 device batches, then resumed with another head: the journal's split
    // holds, so the rows are those of the uninterrupted run.
    let out = tmp.path().join("out");
    interrupted_run(&cfg, &data, &out, false, 5);
    let partial = out.join(melpipe_core::write::PARTIAL_DIR);
    let header = melpipe_core::journal::load(&partial, 1000).unwrap().header;
    assert_eq!(
        (header.backend_kind, header.cpu_head_files),
        (BackendKind::Cuda, 30)
    );
    let other = small_with(|r| r.cpu_head = Some(70));
    let m = run(
        &other,
        &request(&data, &out, true, Arc::default()),
        &Device::new(false),
    )
    .unwrap()
    .manifest;
    assert_eq!(m.cpu_head_files, 30);
    for name in ["features.npy", "mapping.npy"] {
        assert!(
            std::fs::read(out.join(name)).unwrap() == std::fs::read(whole.join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_device_that_fell_back_behind_a_cpu_head_journals_cpu() {
    // The head's rows come first, before the device has said whether it started: the journal's
    // backend is settled at the first device task or the first checkpoint, whichever is first.
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 120, 0);
    let cfg = small_with(|r| r.cpu_head = Some(30));
    let out = tmp.path().join("out");
    let loaded = interrupted_with_records(&cfg, &data, &out, true);
    assert_eq!(loaded.header.backend_kind, BackendKind::Cpu);
    assert!(!loaded.records.is_empty());
    // Every file was the CPU's: the manifest names no head.
    let m = run(
        &cfg,
        &request(&data, &out, true, Arc::default()),
        &CpuBackendFactory,
    )
    .unwrap()
    .manifest;
    assert_eq!(m.cpu_head_files, 0);
    assert!(melpipe_core::verify::verify(&out).intact());
    let m = run_into(&cfg, &data, &tmp.path().join("whole"), &Device::new(true));
    assert_eq!(m.cpu_head_files, 0);
}

/// An interrupted run (stopped after its fifth computed task) that journaled at least one
/// record. The stop can land before the first task in order is accounted (its rows are then
/// not committed and the journal holds none: a legitimate outcome, resumed as a fresh start),
/// so a run that recorded nothing is tried again, up to five times, into a fresh folder.
fn interrupted_with_records(
    cfg: &melpipe_core::Settings,
    data: &std::path::Path,
    out: &std::path::Path,
    fell_back: bool,
) -> melpipe_core::journal::Loaded {
    let partial = out.join(melpipe_core::write::PARTIAL_DIR);
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(out);
        interrupted_run(cfg, data, out, fell_back, 5);
        let loaded = melpipe_core::journal::load(&partial, 1000).unwrap();
        if !loaded.records.is_empty() {
            return loaded;
        }
    }
    melpipe_core::journal::load(&partial, 1000).unwrap()
}
