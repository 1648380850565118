//! How the writer runs: none of these settings changes the bytes written.

use std::time::Duration;

/// The writer's tuning, given by its caller ([`super::OutputWriter::create`] and
/// [`super::OutputWriter::resume`]). [`Default`] is what a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteTuning {
    /// How often progress is committed to the journal (fsync of the arrays, then a journal
    /// line). [`Duration::MAX`]: no checkpoint before the commit.
    pub checkpoint_interval: Duration,
    /// Positioned writes at least this large (bytes) start their own writeback. A size larger
    /// than any write leaves all writeback to the in-order starts every 32 MiB.
    pub own_writeback_min: usize,
}

/// Checkpoint interval of [`WriteTuning::default`].
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

impl Default for WriteTuning {
    /// One checkpoint a second, own writeback from 1 MiB. With the
    /// `test-hooks` feature, `MELPIPE_CHECKPOINT_SECS` sets the checkpoint interval (tests that
    /// run the binary use small values); a build without it reads no environment.
    fn default() -> Self {
        WriteTuning {
            #[cfg(feature = "test-hooks")]
            checkpoint_interval: checkpoint_interval_of(
                std::env::var("MELPIPE_CHECKPOINT_SECS").ok().as_deref(),
            ),
            #[cfg(not(feature = "test-hooks"))]
            checkpoint_interval: CHECKPOINT_INTERVAL,
            own_writeback_min: 1 << 20,
        }
    }
}

impl WriteTuning {
    /// The writer's part of a run's tuning options (`--checkpoint-secs`, `--own-writeback-min`,
    /// hidden flags for benchmarks); what they leave unset is [`WriteTuning::default`].
    /// `RunOptions::validate` has refused negative and NaN seconds; a value too large for a
    /// `Duration` means no checkpoint before the commit.
    pub fn of(t: &crate::config::Tuning) -> WriteTuning {
        let d = WriteTuning::default();
        WriteTuning {
            checkpoint_interval: t.checkpoint_secs.map_or(d.checkpoint_interval, |s| {
                Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
            }),
            own_writeback_min: t.own_writeback_min.map_or(d.own_writeback_min, |b| {
                usize::try_from(b).unwrap_or(usize::MAX)
            }),
        }
    }
}

/// The checkpoint interval for a number of seconds given as text: a value too large for a
/// `Duration` (`1e300`, `inf`) means no checkpoint before the commit, anything that is not a
/// number ≥ 0 the default.
#[cfg(any(test, feature = "test-hooks"))]
fn checkpoint_interval_of(value: Option<&str>) -> Duration {
    match value.and_then(|v| v.trim().parse::<f64>().ok()) {
        Some(v) if v >= 0.0 => Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX),
        _ => CHECKPOINT_INTERVAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_checkpoint_setting_gives_an_interval() {
        let one = Duration::from_secs(1);
        assert_eq!(checkpoint_interval_of(None), one);
        assert_eq!(
            checkpoint_interval_of(Some("0.25")),
            Duration::from_millis(250)
        );
        assert_eq!(checkpoint_interval_of(Some(" 2 ")), Duration::from_secs(2));
        for huge in ["1e20", "1e300", "inf", "18446744073709551616"] {
            assert_eq!(checkpoint_interval_of(Some(huge)), Duration::MAX, "{huge}");
        }
        for bad in ["-1", "NaN", "-inf", "", "x", "1s"] {
            assert_eq!(checkpoint_interval_of(Some(bad)), one, "{bad}");
        }
    }
}
