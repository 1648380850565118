//! The device pipeline with different budgets of computed tasks ahead of the disk
//! (the `ahead_mib` tuning option): none (each compute thread writes its own task's rows), one
//! or two tasks (the window of tasks in flight still blocks the readers, as with the seed's
//! 103 tasks ahead of thousands), and the default (every test task fits). Each must give the
//! CPU pipeline's bytes, give the device back with every batch gone, and stop cleanly, with and
//! without a CPU head (the first files computed by CPU threads while the device starts). A test
//! binary of its own, for its running time.

mod common;

use melpipe_core::geometry::Geometry;

#[test]
fn every_budget_of_tasks_ahead_gives_the_same_bytes_and_stops_cleanly() {
    // One task's features in the shared checks' configurations: at most 4 files of the test
    // clips' rows, 32 mels, f16.
    let cfg = common::small_config();
    let task = (4 * Geometry::new(&cfg.params).rows(None) * 32 * 2) as f64 / f64::from(1u32 << 20);
    // Each also with a CPU head (`cpu_head`): a one-task head and one of five and a half tasks,
    // whose threads hand their rows on as the device's compute threads do. The stopped runs need
    // 8 device batches of their 60 files: heads of at most 28 files.
    for budget in [0.0, 1.5 * task, 2.5 * task] {
        for head in [0, 4, 22] {
            let ahead = Some(budget);
            common::check_device_pipeline_writes_the_same_bytes_as_the_cpu_pipeline(head, ahead);
            common::check_every_pooled_batch_is_gone_when_the_device_is_released(head, ahead);
            common::check_a_stopped_run_ends_with_fewer_batches_than_compute_threads(head, ahead);
        }
    }
    for head in [0, 22] {
        common::check_a_stopped_run_ends_with_fewer_batches_than_compute_threads(head, None);
    }
}
