//! The mel filterbank, exactly as torchaudio.functional.melscale_fbanks computes it.
//!
//! TODO(dsp helper): implement.

use crate::config::Config;

/// Triangular mel filters over the one-sided FFT bins.
#[derive(Clone, Debug)]
pub struct MelFilterbank {
    /// `n_fft/2 + 1`.
    pub n_freqs: usize,
    /// Number of mel bands.
    pub n_mels: usize,
    /// `n_freqs × n_mels`, row-major (torchaudio's `fb[freq, mel]`).
    pub weights: Vec<f64>,
}

impl MelFilterbank {
    /// The filterbank of a configuration.
    pub fn new(cfg: &Config) -> Self {
        let _ = cfg;
        todo!("MelFilterbank::new")
    }

    /// Indices of mel filters whose weights are all zero (torchaudio warns about them).
    pub fn empty_filters(&self) -> Vec<usize> {
        todo!("empty_filters")
    }
}
