//! What the live-loop benchmarks share: the design point of EVALUATION.md
//! (64 channels at 30 kHz in 1-ms blocks) simulated by the rodent preset, and
//! quantiles of measured durations, and the timed block loop.

use std::time::Instant;

use neuroloop::controller::{Block, Controller};
use neuroloop::event::{Event, Outbox};
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

/// `controller` over `data` ([`CHANNELS`] interleaved) in [`BLOCK_FRAMES`]
/// blocks: each block's time in ns, `after` included (what the processing
/// thread does with the controller once a block is done), and every event.
// `recording_cost` times whole sessions instead.
#[allow(dead_code)]
pub fn timed_blocks(
    controller: &mut Controller,
    data: &[f64],
    mut after: impl FnMut(&mut Controller),
) -> (Vec<u64>, Vec<Event>) {
    let mut outbox = Outbox::with_capacity(1024);
    let mut blocks_ns = Vec::with_capacity(data.len() / (BLOCK_FRAMES * CHANNELS));
    let mut events = Vec::new();
    for (i, chunk) in data.chunks_exact(BLOCK_FRAMES * CHANNELS).enumerate() {
        let block = Block {
            start: (i * BLOCK_FRAMES) as u64,
            channels: CHANNELS,
            samples: chunk,
        };
        outbox.clear();
        let started = Instant::now();
        controller
            .process_block(&block, &mut outbox)
            .expect("simulated input is valid");
        after(controller);
        blocks_ns.push(started.elapsed().as_nanos() as u64);
        events.extend_from_slice(outbox.events());
    }
    (blocks_ns, events)
}
