//! Wall time of the largest routine simulation (run explicitly, in release):
//! `cargo test --release --test sim_speed -- --ignored --nocapture`

use std::time::Instant;

use neuroloop::sim::{simulate, Preset, SimSpec};
use neuroloop::time::SampleRate;

#[test]
#[ignore = "timing: run in release on demand"]
fn ten_minutes_of_rodent_at_30_khz_on_4_channels_take_well_under_a_minute() {
    let rate = SampleRate::new(30_000.0).unwrap();
    let spec = SimSpec::new(Preset::RodentRipple, 600.0, 1, rate);
    let started = Instant::now();
    let sim = simulate(&spec).unwrap();
    let elapsed_s = started.elapsed().as_secs_f64();
    let samples: usize = sim.recording.signals.iter().map(|s| s.samples.len()).sum();
    println!(
        "rodent-ripple 600 s x 4 ch @ 30 kHz: {elapsed_s:.2} s ({:.1} M samples/s, {} truth rows)",
        samples as f64 / elapsed_s / 1e6,
        sim.truth.len()
    );
    assert!(elapsed_s < 30.0, "took {elapsed_s:.1} s");
}
