//! A plain float64 implementation of docs/FORMAT.md's mathematics for one file: naive DFT, dense
//! mel projection, one segment at a time. Slow on purpose, so that it is easy to check line by line against
//! torchaudio's code; the tests hold the fast [`FeatureExtractor`](super::FeatureExtractor)
//! to it.

use crate::config::{Params, Pool};
use crate::geometry::Geometry;
use crate::mel::MelFilterbank;

/// Periodic Hann window of `win_length` samples zero-padded, centred, to `n_fft` samples, as
/// `torch.stft` pads it (`left = (n_fft - win_length) / 2`).
pub fn padded_hann(n_fft: usize, win_length: usize) -> Vec<f64> {
    let mut w = vec![0.0; n_fft];
    let left = (n_fft - win_length) / 2;
    for n in 0..win_length {
        let phase = 2.0 * std::f64::consts::PI * n as f64 / win_length as f64;
        w[left + n] = 0.5 - 0.5 * phase.cos();
    }
    // torch.hann_window(1, periodic=True) is [1], not the formula's [0].
    if win_length == 1 {
        w[left] = 1.0;
    }
    w
}

/// STFT frames of a segment of `len` samples with `center = true`: the signal is padded by
/// `n_fft / 2` on both sides, then framed with `hop` (torch.stft's count, also for odd `n_fft`).
pub fn stft_frames(len: usize, n_fft: usize, hop: usize) -> usize {
    1 + (len + 2 * (n_fft / 2) - n_fft) / hop
}

/// Index into a segment of `len` samples of position `j` of its reflect-padded form
/// (`j` counted from the segment's first sample; negative or ≥ len reflect without repeating
/// the edge sample, as `torch.nn.functional.pad(mode="reflect")`).
pub fn reflect(j: isize, len: usize) -> usize {
    let len = len as isize;
    let r = if j < 0 {
        -j
    } else if j >= len {
        2 * (len - 1) - j
    } else {
        j
    };
    debug_assert!((0..len).contains(&r), "padding wider than the segment");
    r as usize
}

/// The dB features of the first `rows` segments of `samples`, computed in f64:
/// `rows × n_mels × out_frames` values, C order.
pub fn features(cfg: &Params, samples: &[f32], rows: usize) -> Vec<f64> {
    let geom = Geometry::new(cfg);
    let n_fft = cfg.n_fft;
    let n_freqs = n_fft / 2 + 1;
    let pad = n_fft / 2;
    let len = cfg.short_win;
    let frames = stft_frames(len, n_fft, cfg.hop_length);
    let window = padded_hann(n_fft, cfg.win_length);
    let fb = MelFilterbank::new(cfg);
    // cos/sin of 2πj/n_fft; the DFT indexes it with (k·n) mod n_fft so no large angles occur.
    let (cos, sin): (Vec<f64>, Vec<f64>) = (0..n_fft)
        .map(|j| {
            let a = 2.0 * std::f64::consts::PI * j as f64 / n_fft as f64;
            (a.cos(), a.sin())
        })
        .unzip();
    let out_frames = match cfg.pool {
        Pool::Mean => 1,
        Pool::None => frames,
    };
    let mut out = Vec::with_capacity(rows * cfg.n_mels * out_frames);
    let mut frame = vec![0.0; n_fft];
    let mut power = vec![0.0; n_freqs * frames]; // [freq][frame]
    for s in 0..rows {
        let seg = geom.segment(s);
        let x = &samples[seg.start_sample..seg.end_sample];
        for t in 0..frames {
            for (n, v) in frame.iter_mut().enumerate() {
                let j = (t * cfg.hop_length + n) as isize - pad as isize;
                *v = x[reflect(j, len)] as f64 * window[n];
            }
            for k in 0..n_freqs {
                let (mut re, mut im) = (0.0, 0.0);
                for (n, &v) in frame.iter().enumerate() {
                    let j = (k * n) % n_fft;
                    re += v * cos[j];
                    im -= v * sin[j];
                }
                power[k * frames + t] = re * re + im * im;
            }
        }
        // mel[m][t] = Σ_k fb[k][m] · power[k][t]
        let mut mel = vec![0.0; cfg.n_mels * frames];
        for m in 0..cfg.n_mels {
            for k in 0..n_freqs {
                let w = fb.weight(k, m);
                for t in 0..frames {
                    mel[m * frames + t] += w * power[k * frames + t];
                }
            }
        }
        let pooled: Vec<f64> = match cfg.pool {
            Pool::None => mel,
            Pool::Mean => (0..cfg.n_mels)
                .map(|m| mel[m * frames..(m + 1) * frames].iter().sum::<f64>() / frames as f64)
                .collect(),
        };
        let mut db: Vec<f64> = pooled
            .iter()
            .map(|&v| 10.0 * v.max(1e-10).log10())
            .collect();
        if let Some(top_db) = cfg.top_db {
            let floor = db.iter().copied().fold(f64::NEG_INFINITY, f64::max) - top_db;
            db.iter_mut().for_each(|v| *v = v.max(floor));
        }
        out.extend_from_slice(&db);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_torch_pad() {
        // torch.nn.functional.pad(tensor([0,1,2,3,4]), (3,3), mode="reflect")
        // = [3,2,1,0,1,2,3,4,3,2,1]
        let got: Vec<usize> = (-3..8).map(|j| reflect(j, 5)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
    }

    #[test]
    fn hann_is_periodic_and_centred() {
        assert_eq!(
            padded_hann(4, 1),
            vec![0.0, 1.0, 0.0, 0.0],
            "torch's window of one sample"
        );
        let w = padded_hann(8, 4);
        // hann_window(4, periodic=True) = [0, .5, 1, .5], padded by 2 on both sides.
        let want = [0.0, 0.0, 0.0, 0.5, 1.0, 0.5, 0.0, 0.0];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-15);
        }
        assert_eq!(stft_frames(512, 64, 16), 33);
        assert_eq!(stft_frames(512, 63, 16), 32);
    }

    #[test]
    fn sine_power_lands_in_its_bin() {
        // A full-scale sine exactly on bin 8 (512 Hz at 4096 Hz, n_fft 64): an interior frame's
        // DFT of the Hann-windowed sine has |X[8]| = N/4 = 16, so power 256, split by the mel
        // filters that cover bin 8. Check the pooled total against that by hand.
        let cfg = Params {
            n_mels: 4,
            ..Params::default()
        };
        let x: Vec<f32> = (0..4096)
            .map(|n| (2.0 * std::f64::consts::PI * 512.0 * n as f64 / 4096.0).sin() as f32)
            .collect();
        let cfg1 = Params {
            pool: Pool::None,
            ..cfg.clone()
        };
        let db = features(&cfg1, &x, 1);
        let fb = MelFilterbank::new(&cfg1);
        // Frame 10 is interior; its mel power is Σ_k fb[k][m] P[k] with P = 256 at k = 8 and
        // 64 at k = 7, 9 (Hann leakage: |X| = N/8 = 8 there).
        for m in 0..4 {
            let want = 256.0 * fb.weight(8, m) + 64.0 * (fb.weight(7, m) + fb.weight(9, m));
            let got = 10f64.powf(db[m * 33 + 10] / 10.0);
            if want > 1e-10 {
                assert!((got / want - 1.0).abs() < 1e-6, "mel {m}: {got} vs {want}");
            }
        }
    }
}
