//! What the live-loop benchmarks share: the design point of EVALUATION.md
//! (64 channels at 30 kHz in 1-ms blocks) simulated by the rodent preset, and
//! quantiles of measured durations.

use neuroloop::sim::{simulate, Preset as SimPreset, SimSpec, Simulation};
use neuroloop::time::SampleRate;

pub const CHANNELS: usize = 64;
pub const RATE_HZ: f64 = 30_000.0;
pub const BLOCK_FRAMES: usize = 30;

/// `seconds` of simulated rodent LFP on [`CHANNELS`] channels at [`RATE_HZ`].
pub fn rig_signal(seconds: f64) -> (Simulation, SampleRate) {
    let rate = SampleRate::new(RATE_HZ).expect("valid rate");
    let mut spec = SimSpec::new(SimPreset::RodentRipple, seconds, 1, rate);
    spec.channels = CHANNELS;
    (simulate(&spec).expect("simulation"), rate)
}

/// The `q` quantile of sorted durations (nearest rank).
// Each bench is its own crate; `recording_cost` reports no quantile.
#[allow(dead_code)]
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
