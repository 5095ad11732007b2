//! `[detector] kind = "ripple"`: the sharp-wave ripple detector's section.

use serde::{Deserialize, Serialize};

use super::{check_band, check_order, check_range, invalid, ConfigError};

/// The dedicated ripple detector (`detect::ripple`). Every parameter is in Hz,
/// ms, s or SD, so one config works at any sample rate from 1000 Hz up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RippleConfig {
    pub band_low_hz: f64,
    pub band_high_hz: f64,
    /// Butterworth order (a band-pass of order N has 2N poles; lower = less delay).
    pub filter_order: usize,
    /// Split the band into this many equal sub-bands, each with its own filter,
    /// envelope and baseline; an event starts on any of them (consensus and
    /// coherent only). A ripple is nearly one frequency, so the sub-band holding
    /// it sees it over less noise than the full band.
    #[serde(default = "one")]
    pub sub_bands: usize,
    /// RMS envelope window.
    pub envelope_window_ms: f64,
    /// How an event starts (see [`RippleStart`]).
    #[serde(default)]
    pub start: RippleStart,
    /// threshold rule only: envelope z-score above threshold_sd (default 5.5)
    /// for at least min_duration_ms (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_sd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_duration_ms: Option<f64>,
    /// cusum rule only: band power above cusum_drift (default 14) × the
    /// background's power accumulates (the excess, in multiples of that power,
    /// times ms; it drains by the drift below it) and an event starts when it
    /// reaches cusum_limit_ms (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cusum_drift: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cusum_limit_ms: Option<f64>,
    /// End: back under end_threshold_sd (hysteresis) ...
    pub end_threshold_sd: f64,
    /// ... for this long (0 = the first sample under it). Bridges short dips,
    /// such as post-stimulus blanking, that would split one ripple in two.
    #[serde(default)]
    pub end_hold_ms: f64,
    /// The end threshold rises to this fraction of the event's peak z-score
    /// when that is higher than end_threshold_sd (0 = fixed threshold): a
    /// strong ripple ends where it has clearly faded, so the next ripple of a
    /// burst, tens of ms later, is an event of its own.
    #[serde(default)]
    pub end_fraction_of_peak: f64,
    /// Events longer than this are closed.
    pub max_duration_ms: f64,
    /// No detection before this much signal has been seen.
    pub warmup_s: f64,
    pub baseline: RippleBaselineConfig,
    pub channels: RippleChannelsConfig,
    pub veto: RippleVetoConfig,
    pub state: RippleStateConfig,
}

/// How each envelope's centre and spread are estimated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RippleBaselineConfig {
    pub mode: BaselineMode,
    pub statistic: BaselineStatistic,
    /// adaptive: sliding window (median/MAD) or EWMA time constant (mean/SD);
    /// calibrate: the calibration window at the start of the session.
    pub window_s: f64,
    /// frozen: centre and SD of each detection stream's envelope, in input units
    /// (one value per detection channel, or one for the consensus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frozen_center: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frozen_sd: Vec<f64>,
    /// Keep learning while the state gate is closed (baselines always learn
    /// through vetoes). Without it a session that starts running has no
    /// baseline until seconds into the first immobility.
    #[serde(default)]
    pub learn_while_gated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineMode {
    /// Keep following the signal.
    Adaptive,
    /// Estimate over the first `window_s`, then hold (no detection before).
    Calibrate,
    /// Use `frozen_center` / `frozen_sd` from the config (e.g. a previous session).
    Frozen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineStatistic {
    MeanSd,
    MedianMad,
}

/// How several channels make one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RippleChannelsConfig {
    pub combine: ChannelCombine,
    /// vote: at least vote_k channels must each pass threshold and minimum
    /// duration within vote_window_ms of one another.
    pub vote_k: usize,
    pub vote_window_ms: f64,
}

/// A ripple start rule with its parameters, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RippleStartParams {
    Threshold {
        threshold_sd: f64,
        min_duration_ms: f64,
    },
    Cusum {
        drift: f64,
        limit_ms: f64,
    },
}

/// Start rule of the ripple detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RippleStart {
    /// The envelope's z-score stays above `threshold_sd` for `min_duration_ms`.
    #[default]
    Threshold,
    /// Page's CUSUM of the instantaneous band power over the background's
    /// (the envelope baseline's centre, squared): the quickest detector of a
    /// change for a given false-alarm rate, with no envelope window to wait for.
    Cusum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelCombine {
    /// Per-channel envelopes, k-of-n voting.
    Vote,
    /// One envelope of the root-sum-square of the band-passed channels (Kay 2016's consensus).
    Consensus,
    /// One envelope of the band-passed channel mean: for sites within ~100 µm of
    /// the pyramidal layer, which see a ripple in phase, it averages out the
    /// noise the channels do not share and keeps the ripple.
    Coherent,
}

/// Noise / EMG veto: power in a band above the ripple band (or on a dedicated
/// reference channel) above its own baseline blocks detections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RippleVetoConfig {
    pub enabled: bool,
    /// Position (0-based) of a dedicated reference among the processed channels;
    /// unset = the mean of the detection channels. Not used for detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<usize>,
    pub band_low_hz: f64,
    pub band_high_hz: f64,
    pub threshold_sd: f64,
    /// The veto holds this long after the reference last exceeded its threshold.
    pub hold_ms: f64,
}

/// Brain-state gating: no detection while the theta/delta power ratio says
/// running or REM (or an external speed input says moving).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RippleStateConfig {
    pub enabled: bool,
    pub theta_low_hz: f64,
    pub theta_high_hz: f64,
    pub delta_low_hz: f64,
    pub delta_high_hz: f64,
    /// EWMA time constant of the band powers.
    pub power_window_s: f64,
    /// The ratio compares the medians of the two band powers over this window
    /// (unset: the powers themselves). A sharp wave, or a burst of them, fills
    /// well under half of a window of a second or two and cannot move its
    /// median; theta, which lasts for seconds, does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_window_s: Option<f64>,
    /// The gate closes when theta/delta rises above ratio_close and reopens
    /// when it falls below ratio_open (hysteresis).
    pub ratio_close: f64,
    pub ratio_open: f64,
    /// Position (0-based) of a speed input among the processed channels; not used for detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_channel: Option<usize>,
    /// Gate closed while the speed input exceeds this (in its own units, usually cm/s).
    pub max_speed: f64,
}

fn one() -> usize {
    1
}

impl RippleConfig {
    /// The start rule's parameters; those the config leaves out take their defaults.
    pub fn start_params(&self) -> RippleStartParams {
        match self.start {
            RippleStart::Threshold => RippleStartParams::Threshold {
                threshold_sd: self.threshold_sd.unwrap_or(5.5),
                min_duration_ms: self.min_duration_ms.unwrap_or(2.0),
            },
            RippleStart::Cusum => RippleStartParams::Cusum {
                drift: self.cusum_drift.unwrap_or(14.0),
                limit_ms: self.cusum_limit_ms.unwrap_or(20.0),
            },
        }
    }

    /// Parameters of the other start rule are refused: they would be silently ignored.
    fn check_start_fields(&self) -> Result<(), ConfigError> {
        let (other_rule, other_fields) = match self.start {
            RippleStart::Threshold => (
                "cusum",
                [
                    ("detector.cusum_drift", self.cusum_drift),
                    ("detector.cusum_limit_ms", self.cusum_limit_ms),
                ],
            ),
            RippleStart::Cusum => (
                "threshold",
                [
                    ("detector.threshold_sd", self.threshold_sd),
                    ("detector.min_duration_ms", self.min_duration_ms),
                ],
            ),
        };
        match other_fields.iter().find(|(_, value)| value.is_some()) {
            Some((field, _)) => Err(invalid(
                field,
                format!("applies only to start = \"{other_rule}\"; set start or remove it"),
            )),
            None => Ok(()),
        }
    }

    /// A speed or veto input is never LFP: refused where it would be read as
    /// one (its stage switched off) or claimed by both stages.
    fn check_input_channels(&self) -> Result<(), ConfigError> {
        let (speed, veto) = (self.state.speed_channel, self.veto.channel);
        let unused = |field, section| {
            invalid(
                field,
                format!(
                    "is set but {section}.enabled = false: that input would be read as LFP \
                     for detection; remove it or enable the stage"
                ),
            )
        };
        if speed.is_some() && !self.state.enabled {
            return Err(unused("detector.state.speed_channel", "detector.state"));
        }
        if veto.is_some() && !self.veto.enabled {
            return Err(unused("detector.veto.channel", "detector.veto"));
        }
        if let Some(channel) = speed.filter(|&c| Some(c) == veto) {
            return Err(invalid(
                "detector.state.speed_channel",
                format!(
                    "is also detector.veto.channel ({channel}): a speed input is no noise reference"
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_band(
            ("detector.band_low_hz", self.band_low_hz),
            ("detector.band_high_hz", self.band_high_hz),
        )?;
        check_order("detector.filter_order", self.filter_order)?;
        if self.sub_bands == 0 || self.sub_bands > 16 {
            return Err(invalid(
                "detector.sub_bands",
                format!("must be between 1 and 16, got {}", self.sub_bands),
            ));
        }
        if self.sub_bands > 1 && self.channels.combine == ChannelCombine::Vote {
            return Err(invalid(
                "detector.sub_bands",
                "sub-bands need channels.combine = \"consensus\" or \"coherent\", not \"vote\""
                    .into(),
            ));
        }
        check_range(
            "detector.envelope_window_ms",
            self.envelope_window_ms,
            1.0,
            100.0,
        )?;
        self.check_start_fields()?;
        let (highest_end, shortest_event_ms) = match self.start_params() {
            RippleStartParams::Threshold {
                threshold_sd,
                min_duration_ms,
            } => {
                check_range("detector.threshold_sd", threshold_sd, 0.0, 100.0)?;
                check_range("detector.min_duration_ms", min_duration_ms, 0.0, 1000.0)?;
                (threshold_sd, min_duration_ms.max(1.0))
            }
            RippleStartParams::Cusum { drift, limit_ms } => {
                check_range("detector.cusum_drift", drift, 1.0, 10_000.0)?;
                check_range("detector.cusum_limit_ms", limit_ms, 0.01, 10_000.0)?;
                (100.0, 1.0)
            }
        };
        check_range(
            "detector.end_threshold_sd",
            self.end_threshold_sd,
            -10.0,
            highest_end,
        )?;
        check_range(
            "detector.max_duration_ms",
            self.max_duration_ms,
            shortest_event_ms,
            60_000.0,
        )?;
        check_range("detector.end_hold_ms", self.end_hold_ms, 0.0, 1000.0)?;
        check_range(
            "detector.end_fraction_of_peak",
            self.end_fraction_of_peak,
            0.0,
            0.99,
        )?;
        check_range("detector.warmup_s", self.warmup_s, 0.0, 3600.0)?;
        let b = &self.baseline;
        check_range("detector.baseline.window_s", b.window_s, 0.5, 3600.0)?;
        if b.mode == BaselineMode::Frozen {
            if b.frozen_center.is_empty() || b.frozen_center.len() != b.frozen_sd.len() {
                return Err(invalid(
                    "detector.baseline.frozen_sd",
                    format!(
                        "mode = \"frozen\" needs frozen_center and frozen_sd of equal, non-zero length, got {} and {}",
                        b.frozen_center.len(),
                        b.frozen_sd.len()
                    ),
                ));
            }
            for &sd in &b.frozen_sd {
                check_range("detector.baseline.frozen_sd", sd, 1e-12, f64::MAX)?;
            }
            for &center in &b.frozen_center {
                check_range("detector.baseline.frozen_center", center, 0.0, f64::MAX)?;
            }
        }
        let c = &self.channels;
        if c.vote_k == 0 || c.vote_k > 256 {
            return Err(invalid(
                "detector.channels.vote_k",
                format!("must be between 1 and 256, got {}", c.vote_k),
            ));
        }
        check_range(
            "detector.channels.vote_window_ms",
            c.vote_window_ms,
            0.0,
            1000.0,
        )?;
        let v = &self.veto;
        check_band(
            ("detector.veto.band_low_hz", v.band_low_hz),
            ("detector.veto.band_high_hz", v.band_high_hz),
        )?;
        check_range("detector.veto.threshold_sd", v.threshold_sd, 0.0, 100.0)?;
        check_range("detector.veto.hold_ms", v.hold_ms, 0.0, 10_000.0)?;
        let s = &self.state;
        check_band(
            ("detector.state.theta_low_hz", s.theta_low_hz),
            ("detector.state.theta_high_hz", s.theta_high_hz),
        )?;
        check_band(
            ("detector.state.delta_low_hz", s.delta_low_hz),
            ("detector.state.delta_high_hz", s.delta_high_hz),
        )?;
        if s.delta_high_hz > s.theta_low_hz {
            return Err(invalid(
                "detector.state.delta_high_hz",
                format!(
                    "reaches into the theta band (theta_low_hz = {}): the gate would weigh \
                     the same power on both sides of its ratio",
                    s.theta_low_hz
                ),
            ));
        }
        self.check_input_channels()?;
        check_range("detector.state.power_window_s", s.power_window_s, 0.1, 60.0)?;
        if let Some(window_s) = s.median_window_s {
            check_range("detector.state.median_window_s", window_s, 0.2, 60.0)?;
        }
        check_range("detector.state.ratio_close", s.ratio_close, 0.0, 1e6)?;
        check_range(
            "detector.state.ratio_open",
            s.ratio_open,
            0.0,
            s.ratio_close,
        )?;
        if !s.max_speed.is_finite() {
            return Err(invalid(
                "detector.state.max_speed",
                format!("must be a finite number, got {}", s.max_speed),
            ));
        }
        Ok(())
    }
}
