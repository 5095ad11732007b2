//! The auditory stimulus of closed-loop sleep stimulation: a short burst of
//! pink noise (Ngo et al. 2013: 50 ms) with raised-cosine on/off ramps,
//! rendered sample-exactly into a caller's buffer so an audio sink can start
//! it at a given output frame. Pure code: same spec and seed, same samples.

use crate::rng::Rng;

/// What to render. `level_dbfs` is the RMS of the plateau relative to digital
/// full scale (0 dBFS = RMS 1.0, a full-scale square wave).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClickSpec {
    pub duration_ms: f64,
    pub ramp_ms: f64,
    pub level_dbfs: f64,
    pub seed: u64,
}

impl Default for ClickSpec {
    fn default() -> Self {
        Self {
            duration_ms: 50.0,
            ramp_ms: 5.0,
            level_dbfs: -20.0,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClickError {
    #[error("click {field} = {value} is out of range; allowed: {allowed}")]
    OutOfRange {
        field: &'static str,
        value: f64,
        allowed: &'static str,
    },
}

impl ClickSpec {
    /// Samples the click spans at `rate_hz`.
    fn len_at(&self, rate_hz: f64) -> usize {
        (self.duration_ms / 1000.0 * rate_hz).round() as usize
    }

    fn validate(&self, rate_hz: f64) -> Result<(), ClickError> {
        let check = |field, value: f64, ok: bool, allowed| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(ClickError::OutOfRange {
                    field,
                    value,
                    allowed,
                })
            }
        };
        check("rate_hz", rate_hz, rate_hz >= 1000.0, "at least 1000 Hz")?;
        check(
            "duration_ms",
            self.duration_ms,
            self.duration_ms > 0.0 && self.duration_ms <= 10_000.0,
            "0 < duration_ms <= 10000",
        )?;
        check(
            "ramp_ms",
            self.ramp_ms,
            self.ramp_ms >= 0.0 && 2.0 * self.ramp_ms <= self.duration_ms,
            "0 <= ramp_ms <= duration_ms / 2",
        )?;
        check(
            "level_dbfs",
            self.level_dbfs,
            self.level_dbfs <= -3.0,
            "at most -3 dBFS (leaves headroom for the noise peaks)",
        )
    }

    /// Render into `out` (its length is the click length; see [`Self::len_at`])
    /// without allocating. Peaks are clipped to ±1.
    fn render_into(&self, rate_hz: f64, out: &mut [f32]) -> Result<(), ClickError> {
        self.validate(rate_hz)?;
        let mut rng = Rng::new(self.seed);
        let mut pink = PinkFilter::default();
        // Let the pink filter settle so the burst has its spectrum from the first sample.
        for _ in 0..(rate_hz * 0.05) as usize {
            pink.process(2.0 * rng.uniform() - 1.0);
        }
        for o in out.iter_mut() {
            *o = pink.process(2.0 * rng.uniform() - 1.0) as f32;
        }
        let n = out.len();
        let mean = out.iter().map(|&v| f64::from(v)).sum::<f64>() / n.max(1) as f64;
        let rms = (out
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n.max(1) as f64)
            .sqrt();
        let gain = if rms > 0.0 {
            10f64.powf(self.level_dbfs / 20.0) / rms
        } else {
            0.0
        };
        let ramp = (self.ramp_ms / 1000.0 * rate_hz).round() as usize;
        for (i, o) in out.iter_mut().enumerate() {
            let edge = i.min(n - 1 - i);
            let envelope = if edge < ramp {
                0.5 - 0.5 * (std::f64::consts::PI * (edge as f64 + 0.5) / ramp as f64).cos()
            } else {
                1.0
            };
            *o = ((f64::from(*o) - mean) * gain * envelope).clamp(-1.0, 1.0) as f32;
        }
        Ok(())
    }

    /// Render a new buffer of [`Self::len_at`] samples.
    pub fn render(&self, rate_hz: f64) -> Result<Vec<f32>, ClickError> {
        let mut out = vec![0.0; self.len_at(rate_hz)];
        self.render_into(rate_hz, &mut out)?;
        Ok(out)
    }
}

/// Paul Kellet's economy pink-noise filter (−3 dB/octave within ±0.5 dB
/// above ~10 Hz at 44.1–48 kHz) applied to white noise.
#[derive(Debug, Clone, Default)]
struct PinkFilter {
    b: [f64; 3],
}

impl PinkFilter {
    fn process(&mut self, white: f64) -> f64 {
        self.b[0] = 0.99765 * self.b[0] + white * 0.0990460;
        self.b[1] = 0.96300 * self.b[1] + white * 0.2965164;
        self.b[2] = 0.57000 * self.b[2] + white * 1.0526913;
        self.b[0] + self.b[1] + self.b[2] + white * 0.1848
    }
}
