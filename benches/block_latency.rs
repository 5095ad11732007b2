//! Per-block processing latency of the whole controller (the `rodent-ripple`
//! preset: band-pass, envelope, baselines, veto, state gate, trigger policy)
//! on 64 channels at 30 kHz in 1-ms blocks (30 frames), the design point of
//! EVALUATION.md (target p99 ≤ 100 µs). Prints p50/p99/max per block and the
//! throughput in channel-samples per second; docs/performance.md quotes it.
//! Two runs: the preset as shipped (`combine = "coherent"`: one band-pass
//! bank on the channel mean) and with `combine = "consensus"` and 2 sub-bands
//! (a bank of 8 poles per channel), the per-channel filtering load that
//! EVALUATION.md's throughput comparison against scipy is about.
//!
//! Then the preset with and without `[realtime] flush_denormals` (FTZ/DAZ),
//! on the simulation and on 2 s of it followed by 38 s of exact zeros (a
//! headstage unplugged into digital zeros), where the filters' states decay
//! through subnormal numbers.
//!
//! `cargo bench --bench block_latency` runs it; under `cargo test` (no
//! `--bench` argument) it only processes a few blocks as a smoke test.

use neuroloop::config::{ChannelCombine, Config, DetectorConfig, Preset};
use neuroloop::controller::Controller;
use neuroloop::dsp::FlushDenormals;
use neuroloop::time::SampleRate;

mod common;

use common::{quantile, rig_signal, timed_blocks, BLOCK_FRAMES, CHANNELS, RATE_HZ};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds = if full { 40.0 } else { 1.0 };
    let (sim, rate) = rig_signal(seconds);
    let data = sim.recording.interleaved();
    let frames = data.len() / CHANNELS;
    let preset = Preset::RodentRipple.config();
    let mut consensus = preset.clone();
    if let DetectorConfig::Ripple(ripple) = &mut consensus.detector {
        ripple.channels.combine = ChannelCombine::Consensus;
        // 2 sub-bands of order 2: 8 poles per channel, as scipy's 8th-order band-pass.
        ripple.sub_bands = 2;
    }
    for (label, config) in [
        ("preset (coherent)", &preset),
        ("consensus, 2 sub-bands", &consensus),
    ] {
        measure(label, config, rate, &data, frames, seconds, full);
    }
    let mut flat = data.clone();
    flat[(rate.samples_in_s(f64::min(2.0, seconds / 2.0)) as usize) * CHANNELS..].fill(0.0);
    for (input, samples) in [("simulation", &data), ("input flat after 2 s", &flat)] {
        for flush in [false, true] {
            let _mode = flush.then(FlushDenormals::new);
            let label = format!("preset, {input}, flush_denormals = {flush}");
            measure(&label, &preset, rate, samples, frames, seconds, full);
        }
    }
}

fn measure(
    label: &str,
    config: &Config,
    rate: SampleRate,
    data: &[f64],
    frames: usize,
    seconds: f64,
    full: bool,
) {
    let mut controller = Controller::new(config, rate, CHANNELS).expect("controller");
    let (mut durations_ns, events) = timed_blocks(&mut controller, data, |_| {});
    let events = events.len();
    if !full {
        return;
    }
    let total_s = durations_ns.iter().sum::<u64>() as f64 * 1e-9;
    durations_ns.sort_unstable();
    let at = |q: f64| quantile(&durations_ns, q);
    println!(
        "block_latency, {label}: {CHANNELS} ch x {RATE_HZ} Hz, {BLOCK_FRAMES}-frame blocks, {} blocks ({seconds} s), {events} events",
        durations_ns.len()
    );
    println!(
        "  per block: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        at(0.5) as f64 / 1e3,
        at(0.99) as f64 / 1e3,
        at(0.999) as f64 / 1e3,
        *durations_ns.last().expect("blocks") as f64 / 1e3
    );
    println!(
        "  throughput: {:.1} M channel-samples/s ({:.1}x real time)",
        (frames * CHANNELS) as f64 / total_s / 1e6,
        seconds / total_s
    );
}
