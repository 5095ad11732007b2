//! What recording a live session costs. The processing thread's per-block
//! time (p50/p99 over every 1-ms block of a 64-channel 30-kHz session against
//! the simulator, paced in real time) with `[recording] enabled` and without,
//! alternated so machine noise falls on both; and the work recording adds to
//! the acquisition thread: each chunk's encode/decode through the 24-bit
//! scales. docs/performance.md quotes it.
//!
//! `cargo bench --bench recording_cost` runs it (3 × 20 s each way); under
//! `cargo test` it runs one 1-s session each way as a smoke test.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use neuroloop::config::Preset;
use neuroloop::io::recorder::DigitalScale;
use neuroloop::runtime::{self, LiveSpec};

mod common;

use common::{rig_signal, BLOCK_FRAMES, CHANNELS, RATE_HZ};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (seconds, rounds) = if full { (20.0, 3) } else { (1.0, 1) };
    let (sim, _) = rig_signal(seconds);
    let dir = tempfile::tempdir().expect("temporary folder");
    println!("per-block processing, {CHANNELS} ch × {RATE_HZ} Hz, {BLOCK_FRAMES}-frame blocks, {seconds} s a run:");
    for round in 0..rounds {
        for recording in [true, false] {
            let mut config = Preset::RodentRipple.config();
            config.input.block_size = BLOCK_FRAMES;
            config.recording.enabled = recording;
            let opened = neuroloop::device::file::recording_source(
                &sim.recording,
                BLOCK_FRAMES,
                1.0,
                "simulator".into(),
            )
            .expect("source");
            let out = dir.path().join(format!("{round}-{recording}"));
            let report = runtime::run_live(
                LiveSpec {
                    command: "bench",
                    config: &config,
                    opened,
                    outputs: Vec::new(),
                    out: &out,
                    duration_s: None,
                    monitor: None,
                },
                &AtomicBool::new(false),
                |_| {},
            )
            .expect("session");
            let b = report.latency.block_processing.expect("blocks processed");
            println!(
                "  recording {:<5}  p50 {:5.1} µs  p99 {:5.1} µs  max {:6.1} µs  (n={})",
                recording, b.p50_us, b.p99_us, b.max_us, b.count
            );
        }
    }

    // The acquisition thread's share: one chunk through the scales.
    let scales: Vec<DigitalScale> = (0..CHANNELS)
        .map(|_| DigitalScale::symmetric(1000.0).expect("scale"))
        .collect();
    let chunk: Vec<f64> = sim.recording.interleaved()[..BLOCK_FRAMES * CHANNELS].to_vec();
    let mut codes = vec![0i32; chunk.len()];
    let mut quantized = vec![0.0f64; chunk.len()];
    let iterations = if full { 200_000 } else { 1000 };
    let started = Instant::now();
    for _ in 0..iterations {
        DigitalScale::quantize_frames(&scales, &chunk, &mut codes, &mut quantized);
        std::hint::black_box((&codes, &quantized));
    }
    let per_chunk_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    println!("acquisition side: encode + decode of one {BLOCK_FRAMES}×{CHANNELS} chunk {per_chunk_us:.2} µs");
}
