//! Segmentation geometry (docs/FORMAT.md, Geometry): long windows over a clip, short windows
//! (segments) inside each.

use crate::config::{LengthMode, Params};

/// Where the rows of a file come from: long windows, short windows inside them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Long window length.
    pub long_win: usize,
    /// Hop between long windows.
    pub long_hop: usize,
    /// Segment length.
    pub short_win: usize,
    /// Hop between segments inside a long window.
    pub short_hop: usize,
    /// Segments per long window: `(long_win − short_win)/short_hop + 1`.
    pub n_short: usize,
    /// `fixed` or `natural`.
    pub length: LengthMode,
    /// Samples of a clip in fixed mode.
    pub clip_samples: usize,
}

/// One row's place in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index of the long window.
    pub long_idx: usize,
    /// Index of the short window inside the long window.
    pub short_idx: usize,
    /// First sample of the segment in the file.
    pub start_sample: usize,
    /// One past the last sample.
    pub end_sample: usize,
}

impl Geometry {
    /// The geometry of a (validated) configuration.
    pub fn new(cfg: &Params) -> Self {
        Geometry {
            long_win: cfg.long_win,
            long_hop: cfg.long_hop,
            short_win: cfg.short_win,
            short_hop: cfg.short_hop,
            n_short: (cfg.long_win - cfg.short_win) / cfg.short_hop + 1,
            length: cfg.length,
            clip_samples: cfg.clip_samples,
        }
    }

    /// Long windows over `samples` samples: `⌊(samples − long_win)/long_hop⌋ + 1`, 0 when too short.
    pub fn n_long(&self, samples: usize) -> usize {
        if samples < self.long_win {
            0
        } else {
            (samples - self.long_win) / self.long_hop + 1
        }
    }

    /// Samples a file is computed over: `clip_samples` in fixed mode, its own length otherwise.
    pub fn effective_samples(&self, samples_found: usize) -> usize {
        match self.length {
            LengthMode::Fixed => self.clip_samples,
            LengthMode::Natural => samples_found,
        }
    }

    /// Rows of a file with `samples_found` samples. A failed file gives the fixed rows (NaN) in
    /// fixed mode and none in natural mode: pass `None` for it.
    pub fn rows(&self, samples_found: Option<usize>) -> usize {
        match (self.length, samples_found) {
            (LengthMode::Fixed, _) => self.n_long(self.clip_samples) * self.n_short,
            (LengthMode::Natural, Some(n)) => self.n_long(n) * self.n_short,
            (LengthMode::Natural, None) => 0,
        }
    }

    /// The segment of row `s` of a file.
    pub fn segment(&self, s: usize) -> Segment {
        let long_idx = s / self.n_short;
        let short_idx = s % self.n_short;
        let start_sample = long_idx * self.long_hop + short_idx * self.short_hop;
        Segment {
            long_idx,
            short_idx,
            start_sample,
            end_sample: start_sample + self.short_win,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seed_geometry() {
        let g = Geometry::new(&Params::default());
        assert_eq!(g.n_short, 3);
        assert_eq!(g.n_long(40960), 79);
        assert_eq!(g.rows(Some(100)), 237);
        assert_eq!(39_563 * g.rows(Some(40960)), 9_376_431);
        let last = g.segment(236);
        assert_eq!((last.long_idx, last.short_idx), (78, 2));
        assert_eq!(last.end_sample, 40960);
        let s = g.segment(4);
        assert_eq!(
            (s.long_idx, s.short_idx, s.start_sample, s.end_sample),
            (1, 1, 768, 1280)
        );
    }

    #[test]
    fn natural_mode_counts_on_the_file() {
        let cfg = Params {
            length: LengthMode::Natural,
            ..Params::default()
        };
        let g = Geometry::new(&cfg);
        assert_eq!(g.rows(Some(1023)), 0);
        assert_eq!(g.rows(Some(1024)), 3);
        assert_eq!(g.rows(Some(1535)), 3);
        assert_eq!(g.rows(Some(1536)), 6);
        assert_eq!(g.rows(None), 0);
    }

    proptest! {
        #[test]
        fn every_segment_lies_inside_the_samples(
            long_win in 2usize..600, sw_frac in 1usize..100, sh in 1usize..50, lh in 1usize..300,
            samples in 0usize..5000,
        ) {
            let short_win = (long_win * sw_frac / 100).max(1);
            let cfg = Params { long_win, long_hop: lh, short_win, short_hop: sh,
                length: LengthMode::Natural, ..Params::default() };
            let g = Geometry::new(&cfg);
            let rows = g.rows(Some(samples));
            for s in 0..rows {
                let seg = g.segment(s);
                prop_assert!(seg.end_sample <= samples);
                prop_assert!(seg.short_idx < g.n_short);
            }
            // One more long window would not fit.
            prop_assert!(g.n_long(samples) * lh + long_win > samples || samples < long_win);
        }
    }
}
