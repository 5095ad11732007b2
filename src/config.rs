//! The session configuration: a TOML file (or a built-in preset) with units in
//! every field name, unknown fields refused, and every value checked up front
//! by [`Config::validate`] with a message that names the field and the allowed
//! range. Checks that need the sample rate (a band under Nyquist) happen when
//! the controller is built, with the same kind of message.

use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::recording::ChannelSelector;
use crate::sim::Preset as SimPreset;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub input: InputConfig,
    pub detector: DetectorConfig,
    #[serde(default)]
    pub trigger: TriggerConfig,
    /// The built-in simulator `run` uses when no hardware is configured.
    #[serde(default)]
    pub simulator: SimulatorConfig,
    /// Where `run` reads samples (default: the simulator).
    #[serde(default)]
    pub source: crate::runtime::config::SourceConfig,
    /// Devices driven by trigger decisions (none: decisions are only logged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::runtime::config::OutputConfig>,
    /// What a live session records besides its events.
    #[serde(default)]
    pub recording: crate::runtime::config::RecordingConfig,
    /// Send every logged event as a marker on a Lab Streaming Layer stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsl_markers: Option<crate::device::lsl::LslMarkersConfig>,
    /// Scheduling and memory of the processing thread.
    #[serde(default)]
    pub realtime: RealtimeConfig,
}

/// The `[realtime]` section: how the processing thread of a live session is
/// scheduled. Each setting the system refuses (no permission, no such CPU)
/// is a warning and an entry in `summary.json`, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealtimeConfig {
    /// SCHED_FIFO priority (1-99) of the processing thread; 0 leaves it to
    /// the normal scheduler. Needs root, CAP_SYS_NICE or an rtprio limit.
    pub priority: u8,
    /// Pin the processing thread to this CPU (0-based); none: the OS places it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<usize>,
    /// Lock the process's pages in RAM (`mlockall`) once the processing
    /// thread has allocated its buffers, so none is paged out mid-session.
    pub lock_memory: bool,
    /// Flush subnormal floats to zero (FTZ/DAZ) on the processing thread;
    /// a replay of the session does the same, so events stay bit-identical.
    pub flush_denormals: bool,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            priority: 10,
            cpu: None,
            lock_memory: false,
            flush_denormals: true,
        }
    }
}

impl RealtimeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.priority > 99 {
            return Err(invalid(
                "realtime.priority",
                format!(
                    "must be a SCHED_FIFO priority 1-99, or 0 for none, got {}",
                    self.priority
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Channels to process, by label or 0-based index; empty = all channels
    /// that share the first channel's rate.
    pub channels: Vec<String>,
    /// Samples per block when replaying a file (a live source sets its own).
    pub block_size: usize,
}

impl InputConfig {
    /// `channels` as selectors: an index when the text is a number, else a label.
    pub fn selectors(&self) -> Vec<ChannelSelector> {
        let parse = |c: &String| c.parse().unwrap_or_else(|never| match never {});
        self.channels.iter().map(parse).collect()
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            block_size: 64,
        }
    }
}

/// Which detector runs, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DetectorConfig {
    /// Sharp-wave ripples (rodent CA1): band-pass envelopes per channel or as
    /// a root-sum-square consensus, k-of-n voting, noise veto and brain-state gating.
    Ripple(Box<RippleConfig>),
    /// Sleep spindles (A7-like): sigma-band power against a running baseline,
    /// relative sigma power and sigma/broadband correlation.
    Spindle(SpindleConfig),
    /// Slow-oscillation up-state targeting: a stimulus scheduled at a target phase.
    SlowOscillation(SlowOscillationConfig),
    /// `latency-test`: a probe stimulus every `interval_ms`, timed until it
    /// comes back on a looped-back input channel.
    LatencyProbe(LatencyProbeConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyProbeConfig {
    /// Position (0-based) among the processed channels of the looped-back input.
    pub channel: usize,
    /// Time from one probe to the next (and never while the line is still high).
    pub interval_ms: f64,
    /// |x| above this on `channel` means the pulse came back.
    pub threshold_uv: f64,
    /// A probe not back within this is counted as lost.
    pub timeout_ms: f64,
}

/// How the slow-oscillation detector predicts the target phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseEstimator {
    /// Ngo 2013: the trough plus the subject's trough→peak delay, learned online.
    HalfWaveDelay,
    /// A phase-locked loop (Santostasi 2016) extrapolated to the target phase.
    Pll,
    /// Commit at the upward zero crossing after a deep trough; the target
    /// follows after `zero_crossing_delay_scale` × the learned crossing→peak delay.
    ZeroCrossingDelay,
    /// Commit at the same crossing; the target follows from the phase and
    /// frequency of the endpoint-corrected Hilbert transform (Schreglmann 2021).
    Echt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowOscillationConfig {
    pub band_low_hz: f64,
    pub band_high_hz: f64,
    pub filter_order: usize,
    pub estimator: PhaseEstimator,
    /// 0 = up-state peak, ±180 = trough.
    pub target_phase_deg: f64,
    /// A trough (negative half-wave peak of the band-passed signal) must be below this ...
    pub negative_threshold_uv: f64,
    /// ... and, if above 0, below this percentile of the troughs of the last
    /// `trough_waves` slow-oscillation half-waves seen while the sleep gate was
    /// open (30: the deepest 30 % pass), so the threshold follows the subject
    /// and `negative_threshold_uv` is its floor.
    #[serde(default)]
    pub trough_percentile: f64,
    #[serde(default = "hundred")]
    pub trough_waves: usize,
    /// Trough→peak delay used until waves have been seen (Ngo: ~500 ms).
    pub initial_delay_ms: f64,
    /// Trough→peak delays outside this range are not slow-oscillation half-waves.
    pub min_delay_ms: f64,
    pub max_delay_ms: f64,
    /// The delay estimate is the median of this many recent waves.
    pub learn_waves: usize,
    /// PLL natural frequency (only for estimator = "pll").
    pub pll_loop_hz: f64,
    /// Only for estimator = "zero-crossing-delay": the band-passed signal's
    /// crossing→peak delay is scaled by this to reach the target (the causal
    /// peak lags the up-state; see docs/sleep.md).
    #[serde(default = "unit_scale")]
    pub zero_crossing_delay_scale: f64,
    /// Only for estimator = "echt": its order-2 band-pass and window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echt: Option<EchtConfig>,
    pub warmup_s: f64,
    #[serde(default)]
    pub gate: SleepGateConfig,
}

/// The endpoint-corrected Hilbert transform (`[detector.echt]`): the
/// frequency response of an order-2 Butterworth band-pass corrects the end of
/// each `window_s` window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchtConfig {
    pub low_hz: f64,
    pub high_hz: f64,
    pub window_s: f64,
}

/// The online sleep-depth gate: no detection in wake/REM-like or artifacted signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SleepGateConfig {
    pub enabled: bool,
    pub delta_low_hz: f64,
    pub delta_high_hz: f64,
    /// Upper edge lowered to 90 % of Nyquist on low-rate recordings.
    pub beta_low_hz: f64,
    pub beta_high_hz: f64,
    /// Window of the delta and beta power.
    pub window_s: f64,
    /// The gate opens when 10·log10(delta / beta power) rises above open_db ...
    pub open_db: f64,
    /// ... and closes when it falls under close_db (hysteresis).
    pub close_db: f64,
    /// Artifact: |raw sample| above this ...
    pub artifact_uv: f64,
    /// ... or beta RMS over 1 s above this ...
    pub artifact_beta_uv: f64,
    /// ... closes the gate for this long.
    pub artifact_hold_s: f64,
}

impl Default for SleepGateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            delta_low_hz: 0.5,
            delta_high_hz: 4.0,
            beta_low_hz: 16.0,
            beta_high_hz: 30.0,
            window_s: 10.0,
            open_db: 20.0,
            close_db: 17.0,
            artifact_uv: 400.0,
            artifact_beta_uv: 15.0,
            artifact_hold_s: 5.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpindleConfig {
    pub sigma_low_hz: f64,
    pub sigma_high_hz: f64,
    /// Broadband reference for relative power and correlation; the upper edge
    /// is lowered to 90 % of Nyquist on low-rate recordings.
    pub broad_low_hz: f64,
    pub broad_high_hz: f64,
    /// Butterworth order of both band-passes.
    pub filter_order: usize,
    /// Window of the sigma/broadband power and correlation features.
    pub window_ms: f64,
    /// Sliding window of the median/MAD baselines of the power features.
    pub baseline_window_s: f64,
    /// No detection before the baselines have seen this much signal.
    pub warmup_s: f64,
    /// Start: log sigma power above its baseline by this many robust SDs ...
    pub abs_threshold_sd: f64,
    /// ... and log(sigma / broadband power) above its baseline by this many robust SDs ...
    pub rel_threshold_sd: f64,
    /// ... and sigma/broadband correlation above this.
    pub corr_threshold: f64,
    /// End: the relative power falls under this many robust SDs (hysteresis).
    pub end_rel_threshold_sd: f64,
    /// Commit (and trigger) once the start conditions have held this long.
    pub commit_after_ms: f64,
    /// Events shorter than this are dropped when they end.
    pub min_duration_ms: f64,
    /// Events are closed at this length.
    pub max_duration_ms: f64,
    /// Spindle-locked commits from their own rule (each could fire a
    /// stimulus); absent: every event commits at its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<SpindleCommit>,
}

/// Spindle-locked commits (`[detector.commit]`), decided apart from the
/// event boundaries: commit when a fast sigma envelope (own Butterworth
/// order and window, z-scored like the power features), the relative power
/// and the correlation have passed their thresholds for `hold_ms` (the
/// stimulus then lands inside the spindle); the next commit needs the rule
/// to have failed for `rearm_ms`. Each commit is logged as `spindle_commit`;
/// the events keep their boundaries and are logged without a commit time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpindleCommit {
    /// Butterworth order of the fast sigma band-pass (same band; 1 = least delay).
    pub filter_order: usize,
    /// Window of the fast sigma power.
    pub window_ms: f64,
    /// Log fast sigma power above its baseline by this many robust SDs ...
    pub z_threshold_sd: f64,
    /// ... and the relative power above this many robust SDs ...
    pub rel_threshold_sd: f64,
    /// ... and the sigma/broadband correlation above this ...
    pub corr_threshold: f64,
    /// ... all held this long.
    pub hold_ms: f64,
    /// After a commit, the rule must fail this long before the next one.
    pub rearm_ms: f64,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerMode {
    /// Log detections only; no trigger decisions.
    Off,
    /// Deliver a stimulus on every accepted detection.
    Stim,
    /// Decide as for `stim`, but log as `sham` and deliver nothing.
    Sham,
    /// Per accepted detection, stim with `stim_probability`, else sham (seeded).
    Random,
}

/// What one accepted detection schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StimSequence {
    /// One stimulus.
    Single,
    /// Ngo et al. 2013: a second click `second_click_after_ms` after the first;
    /// the refractory period then counts from the second.
    TwoClick,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerConfig {
    pub mode: TriggerMode,
    pub stim_probability: f64,
    /// Stimulus onset after the deciding sample: uniform in [delay_min_ms, delay_max_ms]
    /// (equal values give a fixed delay; 100–300 ms is the classic delayed control).
    pub delay_min_ms: f64,
    pub delay_max_ms: f64,
    pub pulse_ms: f64,
    /// Minimum time between two decisions (stim or sham).
    pub refractory_ms: f64,
    /// At most this many decisions in any 60-s window.
    pub max_per_minute: u32,
    /// At most this many decisions per session.
    pub max_per_session: u32,
    /// Seed of the stim/sham draw and the random delay.
    pub seed: u64,
    /// After each delivered pulse's onset the detector sees the last clean
    /// frame held for this long, so the stimulus artifact cannot re-trigger.
    pub blanking_ms: f64,
    pub sequence: StimSequence,
    /// Second click of a two-click sequence, after the first (Ngo: 1075 ms).
    pub second_click_after_ms: f64,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self {
            mode: TriggerMode::Stim,
            stim_probability: 0.5,
            delay_min_ms: 0.0,
            delay_max_ms: 0.0,
            pulse_ms: 1.0,
            refractory_ms: 250.0,
            max_per_minute: 60,
            max_per_session: 2000,
            seed: 1,
            blanking_ms: 0.0,
            sequence: StimSequence::Single,
            second_click_after_ms: 1075.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    pub preset: SimPreset,
    pub rate_hz: f64,
    pub seed: u64,
    pub artifacts: bool,
    /// Scales the simulated events' amplitude; 1.0 = realistic.
    pub event_snr: f64,
    /// Channels to simulate; the preset's own number if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            preset: SimPreset::RodentRipple,
            rate_hz: 1250.0,
            seed: 1,
            artifacts: true,
            event_snr: 1.0,
            channels: None,
        }
    }
}

/// A config problem, naming where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {message}")]
    Read { path: String, message: String },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config field `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

pub(crate) fn invalid(field: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { field, message }
}

/// `value` must lie in `[min, max]` (and be finite).
pub(crate) fn check_range(
    field: &'static str,
    value: f64,
    min: f64,
    max: f64,
) -> Result<(), ConfigError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ))
    }
}

/// The built-in presets; their TOML lives in `src/presets/` and doubles as
/// the example configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    RodentRipple,
    SleepSpindle,
    SleepClas,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::RodentRipple => "rodent-ripple",
            Preset::SleepSpindle => "sleep-spindle",
            Preset::SleepClas => "sleep-clas",
        }
    }

    pub fn toml(self) -> &'static str {
        match self {
            Preset::RodentRipple => include_str!("presets/rodent-ripple.toml"),
            Preset::SleepSpindle => include_str!("presets/sleep-spindle.toml"),
            Preset::SleepClas => include_str!("presets/sleep-clas.toml"),
        }
    }

    pub fn config(self) -> Config {
        // The presets are tested to parse and validate, so this cannot fail at run time.
        Config::from_toml(self.toml(), self.name()).expect("built-in preset is valid")
    }
}

/// The top-level sections of a config (the fields of [`Config`]).
const SECTIONS: [&str; 9] = [
    "input",
    "detector",
    "trigger",
    "simulator",
    "source",
    "outputs",
    "recording",
    "lsl_markers",
    "realtime",
];

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

impl Config {
    /// Parse and validate TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: origin.to_string(),
            message: message.trim().replace('\n', " "),
        };
        // A misspelt section is named before serde meets its consequences
        // (`[detektor]` would otherwise read as a missing `kind`).
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| parse_error(e.to_string()))?;
        if let Some(unknown) = table.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            let hint = SECTIONS
                .iter()
                .find(|s| edit_distance(s, unknown) <= 2)
                .map(|s| format!(" (did you mean [{s}]?)"))
                .unwrap_or_default();
            return Err(parse_error(format!(
                "unknown section [{unknown}]{hint}; a config has {}",
                SECTIONS.map(|s| format!("[{s}]")).join(", ")
            )));
        }
        let config: Config = toml::from_str(text).map_err(|e| parse_error(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// Check every field that does not depend on the sample rate.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.input.block_size == 0 || self.input.block_size > 1 << 20 {
            return Err(invalid(
                "input.block_size",
                format!(
                    "must be between 1 and 1048576 samples, got {}",
                    self.input.block_size
                ),
            ));
        }
        match &self.detector {
            DetectorConfig::Ripple(d) => d.validate()?,
            DetectorConfig::Spindle(d) => d.validate()?,
            DetectorConfig::SlowOscillation(d) => d.validate()?,
            DetectorConfig::LatencyProbe(d) => d.validate()?,
        }
        self.trigger.validate()?;
        self.source.validate()?;
        for output in &self.outputs {
            output.validate()?;
        }
        if let Some(markers) = &self.lsl_markers {
            markers.validate()?;
        }
        self.realtime.validate()?;
        self.simulator.validate()
    }
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

    fn validate(&self) -> Result<(), ConfigError> {
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

/// A band `(low, high)` of positive frequencies with low < high.
fn check_band(low: (&'static str, f64), high: (&'static str, f64)) -> Result<(), ConfigError> {
    check_range(low.0, low.1, 0.01, 20_000.0)?;
    check_range(high.0, high.1, 0.01, 20_000.0)?;
    if high.1 <= low.1 {
        return Err(invalid(
            high.0,
            format!("must be greater than {} ({}), got {}", low.0, low.1, high.1),
        ));
    }
    Ok(())
}

fn check_order(field: &'static str, order: usize) -> Result<(), ConfigError> {
    if (1..=8).contains(&order) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be between 1 and 8, got {order}"),
        ))
    }
}

impl LatencyProbeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        // 10 ms: the trigger policy allows at most 6000 decisions a minute.
        check_range("detector.interval_ms", self.interval_ms, 10.0, 60_000.0)?;
        check_range("detector.threshold_uv", self.threshold_uv, 0.0, 1e9)?;
        check_range(
            "detector.timeout_ms",
            self.timeout_ms,
            1.0,
            self.interval_ms,
        )
    }
}

impl SpindleConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_band(
            ("detector.sigma_low_hz", self.sigma_low_hz),
            ("detector.sigma_high_hz", self.sigma_high_hz),
        )?;
        check_band(
            ("detector.broad_low_hz", self.broad_low_hz),
            ("detector.broad_high_hz", self.broad_high_hz),
        )?;
        check_order("detector.filter_order", self.filter_order)?;
        check_range("detector.window_ms", self.window_ms, 20.0, 5_000.0)?;
        check_range(
            "detector.baseline_window_s",
            self.baseline_window_s,
            1.0,
            3600.0,
        )?;
        check_range("detector.warmup_s", self.warmup_s, 0.0, 3600.0)?;
        check_range(
            "detector.abs_threshold_sd",
            self.abs_threshold_sd,
            -10.0,
            100.0,
        )?;
        check_range(
            "detector.rel_threshold_sd",
            self.rel_threshold_sd,
            -10.0,
            100.0,
        )?;
        check_range("detector.corr_threshold", self.corr_threshold, -1.0, 1.0)?;
        check_range(
            "detector.end_rel_threshold_sd",
            self.end_rel_threshold_sd,
            -10.0,
            self.rel_threshold_sd,
        )?;
        check_range(
            "detector.min_duration_ms",
            self.min_duration_ms,
            0.0,
            10_000.0,
        )?;
        check_range(
            "detector.commit_after_ms",
            self.commit_after_ms,
            0.0,
            self.min_duration_ms.max(0.0),
        )?;
        check_range(
            "detector.max_duration_ms",
            self.max_duration_ms,
            self.min_duration_ms.max(1.0),
            60_000.0,
        )?;
        if let Some(commit) = &self.commit {
            commit.validate()?;
            if self.commit_after_ms > 0.0 {
                return Err(invalid(
                    "detector.commit_after_ms",
                    "must be 0 with [detector.commit], which decides the commits; set its \
                     hold_ms instead, or remove [detector.commit] to commit at each event"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

impl SpindleCommit {
    fn validate(&self) -> Result<(), ConfigError> {
        check_order("detector.commit.filter_order", self.filter_order)?;
        check_range("detector.commit.window_ms", self.window_ms, 20.0, 5_000.0)?;
        check_range(
            "detector.commit.z_threshold_sd",
            self.z_threshold_sd,
            -10.0,
            100.0,
        )?;
        check_range(
            "detector.commit.rel_threshold_sd",
            self.rel_threshold_sd,
            -10.0,
            100.0,
        )?;
        check_range(
            "detector.commit.corr_threshold",
            self.corr_threshold,
            -1.0,
            1.0,
        )?;
        check_range("detector.commit.hold_ms", self.hold_ms, 0.0, 10_000.0)?;
        check_range("detector.commit.rearm_ms", self.rearm_ms, 0.0, 60_000.0)
    }
}

fn unit_scale() -> f64 {
    1.0
}

fn hundred() -> usize {
    100
}

impl SlowOscillationConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "detector.zero_crossing_delay_scale",
            self.zero_crossing_delay_scale,
            0.0,
            10.0,
        )?;
        check_band(
            ("detector.band_low_hz", self.band_low_hz),
            ("detector.band_high_hz", self.band_high_hz),
        )?;
        check_order("detector.filter_order", self.filter_order)?;
        check_range(
            "detector.target_phase_deg",
            self.target_phase_deg,
            -180.0,
            180.0,
        )?;
        check_range(
            "detector.negative_threshold_uv",
            self.negative_threshold_uv,
            -10_000.0,
            0.0,
        )?;
        check_range(
            "detector.trough_percentile",
            self.trough_percentile,
            0.0,
            100.0,
        )?;
        if !(1..=10_000).contains(&self.trough_waves) {
            return Err(invalid(
                "detector.trough_waves",
                format!("must be between 1 and 10000, got {}", self.trough_waves),
            ));
        }
        match (&self.echt, self.estimator) {
            (Some(echt), PhaseEstimator::Echt) => {
                check_band(
                    ("detector.echt.low_hz", echt.low_hz),
                    ("detector.echt.high_hz", echt.high_hz),
                )?;
                check_range("detector.echt.window_s", echt.window_s, 0.5, 60.0)?;
            }
            (None, PhaseEstimator::Echt) => {
                return Err(invalid(
                    "detector.echt",
                    "estimator = \"echt\" needs a [detector.echt] section".into(),
                ))
            }
            (Some(_), _) => {
                return Err(invalid(
                    "detector.echt",
                    "applies only to estimator = \"echt\"; set estimator or remove it".into(),
                ))
            }
            (None, _) => {}
        }
        check_range("detector.min_delay_ms", self.min_delay_ms, 1.0, 10_000.0)?;
        check_range(
            "detector.max_delay_ms",
            self.max_delay_ms,
            self.min_delay_ms,
            10_000.0,
        )?;
        check_range(
            "detector.initial_delay_ms",
            self.initial_delay_ms,
            self.min_delay_ms,
            self.max_delay_ms,
        )?;
        if !(1..=1000).contains(&self.learn_waves) {
            return Err(invalid(
                "detector.learn_waves",
                format!("must be between 1 and 1000, got {}", self.learn_waves),
            ));
        }
        check_range("detector.pll_loop_hz", self.pll_loop_hz, 0.01, 10.0)?;
        check_range("detector.warmup_s", self.warmup_s, 0.0, 3600.0)?;
        self.gate.validate()
    }
}

impl SleepGateConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_band(
            ("detector.gate.delta_low_hz", self.delta_low_hz),
            ("detector.gate.delta_high_hz", self.delta_high_hz),
        )?;
        check_band(
            ("detector.gate.beta_low_hz", self.beta_low_hz),
            ("detector.gate.beta_high_hz", self.beta_high_hz),
        )?;
        check_range("detector.gate.window_s", self.window_s, 0.5, 600.0)?;
        check_range("detector.gate.open_db", self.open_db, -100.0, 100.0)?;
        check_range(
            "detector.gate.close_db",
            self.close_db,
            -100.0,
            self.open_db,
        )?;
        check_range("detector.gate.artifact_uv", self.artifact_uv, 0.0, 1e6)?;
        check_range(
            "detector.gate.artifact_beta_uv",
            self.artifact_beta_uv,
            0.0,
            1e6,
        )?;
        check_range(
            "detector.gate.artifact_hold_s",
            self.artifact_hold_s,
            0.0,
            600.0,
        )
    }
}

impl TriggerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("trigger.stim_probability", self.stim_probability, 0.0, 1.0)?;
        check_range("trigger.delay_min_ms", self.delay_min_ms, 0.0, 10_000.0)?;
        check_range(
            "trigger.delay_max_ms",
            self.delay_max_ms,
            self.delay_min_ms,
            10_000.0,
        )?;
        check_range("trigger.pulse_ms", self.pulse_ms, 0.01, 10_000.0)?;
        check_range("trigger.blanking_ms", self.blanking_ms, 0.0, 10_000.0)?;
        check_range(
            "trigger.refractory_ms",
            self.refractory_ms,
            0.0,
            3_600_000.0,
        )?;
        check_range(
            "trigger.second_click_after_ms",
            self.second_click_after_ms,
            self.pulse_ms,
            60_000.0,
        )?;
        if self.max_per_minute == 0 {
            return Err(invalid(
                "trigger.max_per_minute",
                "must be at least 1 (use mode = \"off\" to disable triggers)".into(),
            ));
        }
        if self.max_per_minute > 6000 {
            return Err(invalid(
                "trigger.max_per_minute",
                format!("must be at most 6000, got {}", self.max_per_minute),
            ));
        }
        Ok(())
    }
}

impl SimulatorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("simulator.rate_hz", self.rate_hz, 1.0, 100_000.0)?;
        check_range("simulator.event_snr", self.event_snr, 0.0, 100.0)?;
        if let Some(channels) = self.channels {
            check_range("simulator.channels", channels as f64, 1.0, 256.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_validates_and_round_trips() {
        for &preset in <Preset as clap::ValueEnum>::value_variants() {
            let config = preset.config();
            let again = Config::from_toml(&config.to_toml(), "round trip").unwrap();
            assert_eq!(config, again, "{}", preset.name());
        }
    }

    #[test]
    fn realtime_settings_are_checked_and_typos_named() {
        let preset = Preset::RodentRipple.toml();
        let with = |section: &str| Config::from_toml(&format!("{preset}\n{section}"), "rig.toml");
        let c = with("[realtime]\npriority = 0\ncpu = 1\nlock_memory = true").unwrap();
        assert_eq!(
            (c.realtime.priority, c.realtime.cpu, c.realtime.lock_memory),
            (0, Some(1), true)
        );
        assert!(c.realtime.flush_denormals, "on unless turned off");
        let e = with("[realtime]\npriority = 100").unwrap_err().to_string();
        assert!(e.contains("realtime.priority") && e.contains("1-99"), "{e}");
        let e = with("[realtime]\nlock_memmory = true")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lock_memmory"), "{e}");
    }

    /// `SECTIONS` lists exactly the fields of `Config`, so the early check
    /// of section names can neither refuse a real section nor miss one.
    #[test]
    fn sections_are_the_config_fields() {
        let mut config = Preset::RodentRipple.config();
        config.outputs = vec![crate::runtime::config::OutputConfig::PulsePal(
            toml::from_str("port = \"/dev/null\"").unwrap(),
        )];
        config.lsl_markers = Some(toml::from_str("").unwrap());
        let table: toml::Table = config.to_toml().parse().unwrap();
        let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut sections = SECTIONS.to_vec();
        keys.sort_unstable();
        sections.sort_unstable();
        assert_eq!(keys, sections);
        assert_eq!(edit_distance("detektor", "detector"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn spindle_commit_rule_refuses_a_commit_delay() {
        let mut config = Preset::SleepSpindle.config();
        let DetectorConfig::Spindle(spindle) = &mut config.detector else {
            panic!("sleep-spindle runs the spindle detector");
        };
        spindle.commit_after_ms = 150.0;
        let err = Config::from_toml(&config.to_toml(), "rig.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("detector.commit_after_ms"), "{err}");
        let DetectorConfig::Spindle(spindle) = &mut config.detector else {
            unreachable!()
        };
        spindle.commit = None;
        Config::from_toml(&config.to_toml(), "rig.toml").unwrap();
    }

    /// Gate and veto options that contradict each other are refused, naming the field.
    #[test]
    fn contradicting_gate_options_name_the_field() {
        let refusal = |edit: &dyn Fn(&mut RippleConfig)| {
            let mut config = Preset::RodentRipple.config();
            let DetectorConfig::Ripple(ripple) = &mut config.detector else {
                panic!("rodent-ripple runs the ripple detector");
            };
            edit(ripple);
            config.validate().unwrap_err().to_string()
        };
        type Edit<'a> = &'a dyn Fn(&mut RippleConfig);
        let cases: [(Edit, &str); 5] = [
            (
                &|r| r.state.delta_high_hz = 6.0,
                "detector.state.delta_high_hz",
            ),
            (&|r| r.state.ratio_open = 2.0, "detector.state.ratio_open"),
            (
                &|r| {
                    r.state.enabled = false;
                    r.state.speed_channel = Some(3);
                },
                "detector.state.speed_channel",
            ),
            (
                &|r| {
                    r.veto.enabled = false;
                    r.veto.channel = Some(3);
                },
                "detector.veto.channel",
            ),
            (
                &|r| {
                    r.state.speed_channel = Some(3);
                    r.veto.channel = Some(3);
                },
                "detector.state.speed_channel",
            ),
        ];
        for (edit, field) in cases {
            let err = refusal(edit);
            assert!(err.contains(&format!("`{field}`")), "{err}");
        }
        // Each stage with its own input is fine.
        let mut config = Preset::RodentRipple.config();
        let DetectorConfig::Ripple(ripple) = &mut config.detector else {
            unreachable!()
        };
        ripple.state.speed_channel = Some(3);
        ripple.veto.channel = Some(2);
        config.validate().unwrap();
    }

    #[test]
    fn slow_oscillation_echt_section_and_estimator_must_agree() {
        let with_echt = |estimator: &str| {
            Preset::SleepClas
                .toml()
                .replace("estimator = \"zero-crossing-delay\"", estimator)
                .replace(
                    "\n[detector.gate]",
                    "\n[detector.echt]\nlow_hz = 0.5\nhigh_hz = 2.0\nwindow_s = 2.0\n\n[detector.gate]",
                )
        };
        for (text, field) in [
            (with_echt("estimator = \"pll\""), "detector.echt"),
            (
                Preset::SleepClas
                    .toml()
                    .replace("\"zero-crossing-delay\"", "\"echt\""),
                "detector.echt",
            ),
            (
                with_echt("estimator = \"echt\"").replace("high_hz = 2.0", "high_hz = 0.4"),
                "detector.echt.high_hz",
            ),
        ] {
            let err = Config::from_toml(&text, "so.toml").unwrap_err().to_string();
            assert!(err.contains(&format!("`{field}`")), "{err}");
        }
        Config::from_toml(&with_echt("estimator = \"echt\""), "so.toml").unwrap();
    }

    #[test]
    fn a_typo_names_the_field() {
        let text = Preset::RodentRipple
            .toml()
            .replace("threshold_sd", "treshold_sd");
        let err = Config::from_toml(&text, "rig.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rig.toml") && err.contains("treshold_sd"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_values_name_the_field_and_range() {
        let text = Preset::RodentRipple
            .toml()
            .replace("filter_order = 2", "filter_order = 12");
        let err = Config::from_toml(&text, "rig.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "config field `detector.filter_order`: must be between 1 and 8, got 12"
        );

        let mut config = Preset::RodentRipple.config();
        config.trigger.delay_max_ms = -1.0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("trigger.delay_max_ms"), "{err}");
        config.trigger.delay_max_ms = f64::NAN;
        assert!(config.validate().is_err());
    }
}
