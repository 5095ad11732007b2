//! Streaming detectors: state machines over `dsp` stages that turn samples
//! into [`Detection`]s. A detector reports twice per event: `Commit` at the
//! causal sample where it decides (this is what triggers act on), and `Finish`
//! once the event's end is known (this is what gets logged).

pub mod latency_probe;
pub mod ripple;
pub mod sleep_gate;
pub mod slow_oscillation;
pub mod spindle;

use crate::config::pipeline::{invalid, ConfigError};
use crate::dsp::{butterworth, Band, DesignError, RobustBaseline, Sos, SosFilter};
use crate::event::Detection;
use crate::time::SampleRate;

/// Power floor (µV²) that keeps log10 and power ratios finite on flat signals.
pub(crate) const POWER_FLOOR: f64 = 1e-12;

/// An upper band edge kept under 0.9 × Nyquist, so that a band reaching past
/// a low-rate recording's Nyquist frequency (e.g. 50-Hz EEG) still fits. A
/// lowered edge is said in `notes` (the session's summary and the CLI show
/// them), never applied silently.
pub(crate) fn below_nyquist(
    field: &'static str,
    high_hz: f64,
    rate: SampleRate,
    notes: &mut Vec<String>,
) -> f64 {
    let limit = 0.9 * rate.nyquist_hz();
    if high_hz > limit {
        notes.push(format!(
            "{field} = {high_hz} Hz is above 0.9 × Nyquist at {rate}: {limit} Hz is used"
        ));
        limit
    } else {
        high_hz
    }
}

/// A median/MAD baseline over `window_s` seconds of a signal at `rate` that
/// takes `points_per_s` points a second (one recompute each); a bad window
/// names the config `field`.
pub(crate) fn robust_baseline(
    window_s: f64,
    points_per_s: f64,
    rate: SampleRate,
    field: &'static str,
) -> Result<RobustBaseline, ConfigError> {
    let update_every = ((rate.hz() / points_per_s).round() as usize).max(1);
    RobustBaseline::new(window_s, update_every, rate).map_err(|e| invalid(field, e.to_string()))
}

/// A Butterworth band-pass for a detector stage; a design error (e.g. a band
/// above this recording's Nyquist frequency) names the config field of the
/// edge at fault (`fields`: the low edge's, the high edge's).
pub(crate) fn bandpass(
    order: usize,
    low_hz: f64,
    high_hz: f64,
    rate: SampleRate,
    fields: [&'static str; 2],
) -> Result<SosFilter, ConfigError> {
    bandpass_design(order, low_hz, high_hz, rate, fields).map(|sos| SosFilter::new(&sos))
}

/// The coefficients [`bandpass`] filters with, for filter banks.
pub(crate) fn bandpass_design(
    order: usize,
    low_hz: f64,
    high_hz: f64,
    rate: SampleRate,
    [low_field, high_field]: [&'static str; 2],
) -> Result<Sos, ConfigError> {
    butterworth(order, Band::Bandpass { low_hz, high_hz }, rate).map_err(|e| {
        let field = match &e {
            DesignError::NonFinite { name, .. } | DesignError::FrequencyOutOfRange { name, .. }
                if *name == "low_hz" =>
            {
                low_field
            }
            DesignError::InvertedBand { .. } => low_field,
            _ => high_field,
        };
        ConfigError::Invalid {
            field,
            message: format!("{e} (at {rate})"),
        }
    })
}

/// What a detector shows of its latest sample, for the live monitor only:
/// read after `process_frame`, it reads state and never changes a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Probe {
    /// The filtered signal the detector looks at, µV.
    pub band: f64,
    /// What the detector compares with `threshold`, in its `units`.
    pub envelope: f64,
    pub threshold: f64,
    /// The state gate blocks detections (or stimulation).
    pub gated: bool,
    /// The noise veto blocks detections.
    pub vetoed: bool,
}

/// What a detector says about one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DetectorOutput {
    /// An event is accepted at `detection.detected_at`; `end` is provisional.
    Commit(Detection),
    /// The event is over; all boundaries are final.
    Finish(Detection),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A band that cannot be designed names the edge at fault.
    #[test]
    fn a_bad_band_names_its_own_edge() {
        let rate = SampleRate::new(50.0).unwrap();
        let fields = ["detector.sigma_low_hz", "detector.sigma_high_hz"];
        let field = |low, high| match bandpass_design(2, low, high, rate, fields) {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(26.0, 28.0), "detector.sigma_low_hz");
        assert_eq!(field(11.0, 30.0), "detector.sigma_high_hz");
        assert_eq!(field(16.0, 11.0), "detector.sigma_low_hz");
        assert_eq!(field(f64::NAN, 16.0), "detector.sigma_low_hz");
    }
}
