//! The device pipeline with no computed tasks ahead of the disk (`MELPIPE_AHEAD_MIB=0`: compute
//! threads write their own rows, as before run AE) still gives the CPU pipeline's bytes and
//! gives the device back with every batch gone. A test binary of its own, because the variable
//! is read from the process's environment.

mod common;

#[test]
fn without_tasks_ahead_the_device_pipeline_is_unchanged() {
    // The only test of this process: nothing else reads the environment meanwhile.
    std::env::set_var("MELPIPE_AHEAD_MIB", "0");
    common::check_device_pipeline_writes_the_same_bytes_as_the_cpu_pipeline();
    common::check_every_pooled_batch_is_gone_when_the_device_is_released();
}
