//! Wall time of the largest routine simulation: 10 minutes of rodent-ripple
//! at 30 kHz on 4 channels. `cargo bench --bench sim_speed` prints it; under
//! `cargo test` (no `--bench` argument) it renders one second as a smoke test.

use std::time::Instant;

use neuroloop::sim::{simulate, Preset, SimSpec};
use neuroloop::time::SampleRate;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds = if full { 600.0 } else { 1.0 };
    let rate = SampleRate::new(30_000.0).expect("valid rate");
    let spec = SimSpec::new(Preset::RodentRipple, seconds, 1, rate);
    let started = Instant::now();
    let sim = simulate(&spec).expect("simulation");
    let elapsed_s = started.elapsed().as_secs_f64();
    let samples: usize = sim.recording.signals.iter().map(|s| s.samples.len()).sum();
    println!(
        "rodent-ripple {seconds} s x 4 ch @ 30 kHz: {elapsed_s:.2} s ({:.1} M samples/s, {} truth rows)",
        samples as f64 / elapsed_s / 1e6,
        sim.truth.len()
    );
}
