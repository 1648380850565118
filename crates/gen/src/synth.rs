//! The content of the regular clips: signals drawn from a seeded generator, quantized to
//! 16-bit PCM.

/// The content of a regular clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// One to three steady sines, sometimes with tremolo.
    Tone,
    /// A sine sweeping linearly in frequency.
    LinearChirp,
    /// A sine sweeping exponentially in frequency.
    ExpChirp,
    /// White noise.
    WhiteNoise,
    /// Pink (1/f) noise.
    PinkNoise,
    /// Tones, noise and a DC offset together.
    Mixture,
    /// Periodic decaying impacts over background noise (a machine ticking).
    Impacts,
    /// Noise of a few LSB, or digital silence.
    NearSilence,
    /// A loud tone that clips at full scale.
    Clipping,
}

impl Signal {
    /// Every signal with its share of the clips, in percent.
    pub(crate) const WEIGHTS: [(Signal, u32); 9] = [
        (Signal::Tone, 22),
        (Signal::LinearChirp, 10),
        (Signal::ExpChirp, 8),
        (Signal::WhiteNoise, 12),
        (Signal::PinkNoise, 12),
        (Signal::Mixture, 20),
        (Signal::Impacts, 10),
        (Signal::NearSilence, 4),
        (Signal::Clipping, 2),
    ];
}

// ---- synthesis ----

/// splitmix64: tiny and fast, good enough for test signals; written here because a
/// dependency would buy nothing and its streams could change under us between versions.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Log-uniform in [lo, hi): frequencies and amplitudes spread evenly in octaves/dB.
    pub(crate) fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo * (hi / lo).powf(self.unit())
    }

    /// Uniform in 0..n (0 when n is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Lanes of the vectorized oscillators and noise. A single recurrence is one long chain of
/// dependent operations; eight independent ones fill the SIMD registers, and LLVM's
/// vectorizer turns each loop over a `[_; LANES]` into a few vector instructions.
const LANES: usize = 8;

/// Eight xorshift32 streams: white noise at a fraction of a nanosecond a sample.
struct Noise {
    state: [u32; LANES],
}

impl Noise {
    fn new(rng: &mut Rng) -> Self {
        // xorshift32 must not start at 0.
        Noise {
            state: std::array::from_fn(|_| (rng.next_u64() as u32) | 1),
        }
    }

    /// Eight triangular-distributed samples in (-1, 1): the difference of the two 16-bit
    /// halves of each draw, close enough to Gaussian for test noise.
    #[inline(always)]
    fn next(&mut self) -> [f32; LANES] {
        let mut out = [0.0; LANES];
        for (x, o) in self.state.iter_mut().zip(&mut out) {
            *x ^= *x << 13;
            *x ^= *x >> 17;
            *x ^= *x << 5;
            *o = ((*x & 0xFFFF) as i32 - (*x >> 16) as i32) as f32 * (1.0 / 65536.0);
        }
        out
    }
}

/// Sine by table lookup with linear interpolation over a 32-bit phase (error below 1e-6,
/// a thirtieth of an int16 step), for sweeps whose frequency changes every sample.
pub(crate) struct SineTable {
    table: Vec<f32>,
}

impl SineTable {
    const BITS: u32 = 12;

    pub(crate) fn new() -> Self {
        let n = 1usize << Self::BITS;
        let table = (0..=n)
            .map(|i| (std::f64::consts::TAU * i as f64 / n as f64).sin() as f32)
            .collect();
        SineTable { table }
    }

    #[inline(always)]
    fn sin(&self, phase: u32) -> f32 {
        const FRAC_BITS: u32 = 32 - SineTable::BITS;
        let i = (phase >> FRAC_BITS) as usize;
        let frac = (phase & ((1 << FRAC_BITS) - 1)) as f32 * (1.0 / (1u32 << FRAC_BITS) as f32);
        let (a, b) = (self.table[i], self.table[i + 1]);
        a + (b - a) * frac
    }
}

/// Phase increment per sample of frequency `f` at rate `fs`, in 2^-32 turns.
fn phase_step(f: f64, fs: f64) -> f64 {
    f / fs * 4_294_967_296.0
}

/// Adds a sine sweep: the phase step starts at `step`, grows by `slope` a sample
/// (linear chirp) and is multiplied by `ratio` a sample (exponential chirp).
#[allow(clippy::too_many_arguments)]
fn add_sweep(
    out: &mut [f32],
    table: &SineTable,
    amp: f32,
    phase: u32,
    step: f64,
    slope: f64,
    ratio: f64,
) {
    let (mut phase, mut step) = (phase, step);
    for o in out.iter_mut() {
        *o += amp * table.sin(phase);
        phase = phase.wrapping_add(step as u32);
        step = step * ratio + slope;
    }
}

/// Adds `amp · sin(phase + 2π f n / fs)` (phase in 2^-32 turns).
///
/// Runs `s[n + L] = 2 cos(L ω) s[n] − s[n − L]` in [`LANES`] interleaved lanes, so it
/// vectorizes; in f64 the recurrence drifts by less than 1e-9 over a clip.
fn add_tone(out: &mut [f32], amp: f32, phase: u32, f: f64, fs: f64) {
    use std::f64::consts::TAU;
    let omega = TAU * f / fs;
    let phi = TAU * f64::from(phase) / 4_294_967_296.0;
    let k = 2.0 * (LANES as f64 * omega).cos();
    let mut prev: [f64; LANES] =
        std::array::from_fn(|j| (phi + omega * (j as f64 - LANES as f64)).sin());
    let mut cur: [f64; LANES] = std::array::from_fn(|j| (phi + omega * j as f64).sin());
    let amp = f64::from(amp);
    let mut blocks = out.chunks_exact_mut(LANES);
    for block in &mut blocks {
        for j in 0..LANES {
            block[j] += (amp * cur[j]) as f32;
            let next = k * cur[j] - prev[j];
            prev[j] = cur[j];
            cur[j] = next;
        }
    }
    for (o, s) in blocks.into_remainder().iter_mut().zip(cur) {
        *o += (amp * s) as f32;
    }
}

/// Adds white noise of RMS about `0.7 · amp`.
fn add_white(out: &mut [f32], noise: &mut Noise, amp: f32) {
    // Triangular noise has RMS 1/√6 ≈ 0.41.
    let amp = amp * 1.7;
    let mut blocks = out.chunks_exact_mut(LANES);
    for block in &mut blocks {
        let w = noise.next();
        for j in 0..LANES {
            block[j] += amp * w[j];
        }
    }
    for (o, w) in blocks.into_remainder().iter_mut().zip(noise.next()) {
        *o += amp * w;
    }
}

/// Adds pink noise: Paul Kellet's economy filter over white noise.
fn add_pink(out: &mut [f32], noise: &mut Noise, amp: f32) {
    let (mut b0, mut b1, mut b2) = (0.0f32, 0.0f32, 0.0f32);
    let amp = amp * 0.35;
    for block in out.chunks_mut(LANES) {
        for (o, w) in block.iter_mut().zip(noise.next()) {
            b0 = 0.99765 * b0 + w * 0.099_046;
            b1 = 0.963 * b1 + w * 0.296_516_4;
            b2 = 0.57 * b2 + w * 1.052_691_3;
            *o += amp * (b0 + b1 + b2 + w * 0.1848);
        }
    }
}

/// Fills `out` with `frames` samples of `kind`, nominally in [-1, 1] (clipping kinds
/// go beyond, for the quantizer to clip).
pub(crate) fn synthesize(
    kind: Signal,
    rng: &mut Rng,
    fs: f64,
    table: &SineTable,
    frames: usize,
    out: &mut Vec<f32>,
) {
    out.clear();
    out.resize(frames, 0.0);
    let mut noise = Noise::new(rng);
    let nyquist = fs / 2.0;
    let freq = |rng: &mut Rng| rng.log_uniform(10.0, 0.95 * nyquist);
    let phase = |rng: &mut Rng| rng.next_u64() as u32;
    let amp = |rng: &mut Rng, lo: f64, hi: f64| rng.log_uniform(lo, hi) as f32;
    // Most signals sit on a faint noise floor, as a real sensor's do.
    let mut floor = amp(rng, 1e-4, 1e-2);
    match kind {
        Signal::Tone => {
            for _ in 0..1 + rng.below(3) {
                // At most 3 × 0.3: tones never clip.
                let (a, p, f) = (amp(rng, 0.02, 0.3), phase(rng), freq(rng));
                add_tone(out, a, p, f, fs);
            }
            if rng.chance(0.3) {
                // Tremolo: a slow gain wobble, as from a rotating part.
                let depth = rng.uniform(0.2, 0.9) as f32;
                let step = phase_step(rng.uniform(0.3, 8.0), fs) as u32;
                let mut p = phase(rng);
                for o in out.iter_mut() {
                    *o *= 1.0 - depth * (0.5 + 0.5 * table.sin(p));
                    p = p.wrapping_add(step);
                }
            }
        }
        Signal::LinearChirp => {
            let (f0, f1) = (freq(rng), freq(rng));
            let step = phase_step(f0, fs);
            let slope = (phase_step(f1, fs) - step) / frames as f64;
            let (a, p) = (amp(rng, 0.05, 0.6), phase(rng));
            add_sweep(out, table, a, p, step, slope, 1.0);
        }
        Signal::ExpChirp => {
            let (f0, f1) = (freq(rng), freq(rng));
            let ratio = (f1 / f0).powf(1.0 / frames as f64);
            let (a, p) = (amp(rng, 0.05, 0.6), phase(rng));
            add_sweep(out, table, a, p, phase_step(f0, fs), 0.0, ratio);
        }
        Signal::WhiteNoise => floor = amp(rng, 0.005, 0.4),
        Signal::PinkNoise => {
            add_pink(out, &mut noise, amp(rng, 0.005, 0.4));
            floor = 0.0;
        }
        Signal::Mixture => {
            for _ in 0..1 + rng.below(4) {
                let (a, p, f) = (amp(rng, 0.01, 0.2), phase(rng), freq(rng));
                add_tone(out, a, p, f, fs);
            }
            if rng.chance(0.5) {
                add_pink(out, &mut noise, amp(rng, 0.005, 0.2));
            } else {
                floor = amp(rng, 0.005, 0.2);
            }
            let dc = rng.uniform(-0.02, 0.02) as f32;
            out.iter_mut().for_each(|o| *o += dc);
        }
        Signal::Impacts => {
            let period = ((fs * rng.uniform(0.05, 1.0)) as usize).max(1);
            let decay = (-1.0 / (fs * rng.uniform(0.003, 0.08))).exp() as f32;
            let (a, f) = (amp(rng, 0.1, 0.8), freq(rng));
            let (mut p, step) = (phase(rng), phase_step(f, fs) as u32);
            let mut env = 0.0f32;
            let mut until_next = rng.below(period);
            for block in out.chunks_mut(LANES) {
                for (o, w) in block.iter_mut().zip(noise.next()) {
                    if until_next == 0 {
                        env = a;
                        until_next = period;
                    }
                    until_next -= 1;
                    *o += env * (0.6 * w + 0.4 * table.sin(p));
                    env *= decay;
                    p = p.wrapping_add(step);
                }
            }
        }
        Signal::NearSilence => {
            // A quarter is digital silence (every feature at the -100 dB floor).
            floor = if rng.chance(0.25) {
                0.0
            } else {
                amp(rng, 2e-5, 3e-4)
            };
        }
        Signal::Clipping => {
            let (a, p, f) = (rng.uniform(1.05, 1.5) as f32, phase(rng), freq(rng));
            add_tone(out, a, p, f, fs);
        }
    }
    if floor > 0.0 {
        add_white(out, &mut noise, floor);
    }
}

/// Rounds to int16 steps of 1/32767, clipping at full scale.
pub(crate) fn quantize_i16(signal: &[f32], out: &mut Vec<i16>) {
    // Adding 1.5·2^23 rounds to nearest and leaves the integer in the low mantissa bits:
    // no float-to-int conversion, whose saturating semantics keep LLVM from vectorizing
    // (and `f32::round` is a libm call on baseline x86-64). Clamping first keeps the sum
    // in [2^23, 2^24), where that holds.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: i32 = 0x4B40_0000;
    out.clear();
    out.resize(signal.len(), 0);
    for (q, &x) in out.iter_mut().zip(signal) {
        let clipped = (x * 32767.0).clamp(-32768.0, 32767.0);
        *q = ((clipped + ROUND).to_bits() as i32 - ROUND_BITS) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_table_is_accurate() {
        let table = SineTable::new();
        for k in 0..10_000u32 {
            let phase = k.wrapping_mul(2_654_435_761);
            let exact = (phase as f64 / 4_294_967_296.0 * std::f64::consts::TAU).sin();
            assert!(
                (f64::from(table.sin(phase)) - exact).abs() < 1e-6,
                "{phase}"
            );
        }
    }

    #[test]
    fn tone_is_an_exact_sine_over_a_whole_clip() {
        // The lane recurrence must not drift: compare with f64 sin at the clip's end too.
        for f in [10.0, 512.0, 1000.3, 1945.0] {
            let mut out = vec![0.0f32; 40_963];
            let phase = 0x4000_0000; // a quarter turn
            add_tone(&mut out, 0.5, phase, f, 4096.0);
            let worst = out
                .iter()
                .enumerate()
                .map(|(n, &x)| {
                    let exact =
                        0.5 * (std::f64::consts::TAU * (0.25 + f * n as f64 / 4096.0)).sin();
                    (f64::from(x) - exact).abs()
                })
                .fold(0.0, f64::max);
            assert!(worst < 1e-6, "{f} Hz: off by {worst}");
        }
    }

    #[test]
    fn quantizer_rounds_and_clips() {
        let mut out = Vec::new();
        quantize_i16(
            &[
                0.0,
                0.5 / 32767.0 + 1e-6,
                -1.0,
                1.0,
                1.5,
                -1.5,
                2.4 / 32767.0,
            ],
            &mut out,
        );
        assert_eq!(out, vec![0, 1, -32767, 32767, 32767, -32768, 2]);
    }
}
