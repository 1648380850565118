//! Log-mel features of one file's segments on the CPU (SPEC §3), and the CPU backend.
//!
//! TODO(dsp helper): implement `FeatureExtractor` (fast) and `reference` (float64, naive).

use crate::backend::{AudioBatch, Backend, BackendFactory, FeatureBuf};
use crate::config::Config;
use crate::error::Result;

/// Per-thread feature extractor for one configuration: plans, window, filterbank and scratch.
pub struct FeatureExtractor {
    _cfg: Config,
}

impl FeatureExtractor {
    /// Plans the extractor; the configuration must be valid.
    pub fn new(cfg: &Config) -> Result<Self> {
        Ok(FeatureExtractor { _cfg: cfg.clone() })
    }

    /// Writes the dB features of the first `rows` segments of `samples` into `out`
    /// (`rows × n_mels × out_frames` values, C order). Every segment lies inside `samples`.
    pub fn extract(&mut self, samples: &[f32], rows: usize, out: &mut [f32]) {
        let _ = (samples, rows, out);
        todo!("FeatureExtractor::extract")
    }
}

/// The CPU backend: a [`FeatureExtractor`] per thread.
pub struct CpuBackend {
    extractor: FeatureExtractor,
    values_per_row: usize,
    scratch: Vec<f32>,
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn compute(&mut self, batch: &AudioBatch, out: &mut FeatureBuf) -> Result<()> {
        let vpr = self.values_per_row;
        let mut row = 0;
        for f in &batch.files {
            let range = row * vpr..(row + f.rows) * vpr;
            if f.failed {
                out.fill_nan(range);
            } else {
                self.scratch.resize(f.rows * vpr, 0.0);
                let samples = &batch.samples[f.offset..f.offset + f.len];
                self.extractor.extract(samples, f.rows, &mut self.scratch);
                out.store(range.start, &self.scratch);
            }
            row += f.rows;
        }
        Ok(())
    }
}

/// Makes [`CpuBackend`]s.
pub struct CpuBackendFactory;

impl BackendFactory for CpuBackendFactory {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn create(&self, cfg: &Config) -> Result<Box<dyn Backend>> {
        Ok(Box::new(CpuBackend {
            extractor: FeatureExtractor::new(cfg)?,
            values_per_row: cfg.values_per_row(),
            scratch: Vec::new(),
        }))
    }

    fn is_cpu(&self) -> bool {
        true
    }
}
