//! The sleep detectors' sections: slow-oscillation targeting (with its
//! phase estimators and sleep gate) and spindles (with their commits).

use serde::{Deserialize, Serialize};

use super::{check_band, check_order, check_range, invalid, ConfigError};

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

impl SpindleConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
