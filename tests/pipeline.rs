//! The controller's contract: the same input gives bit-identical events
//! whatever the block size, and `process_block` never allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use neuroloop::config::{
    ChannelCombine, Config, DetectorConfig, EchtConfig, LatencyProbeConfig, PhaseEstimator, Preset,
    TriggerMode,
};
use neuroloop::controller::{Block, Controller};
use neuroloop::event::{Event, EventKind, Outbox};
use neuroloop::rng::Rng;
use neuroloop::sim::{simulate, Preset as SimPreset, SimSpec};
use neuroloop::time::SampleRate;

/// Counts allocations made by the current thread while armed; per thread, so
/// tests running in parallel neither reset nor add to each other's count.
struct CountingAllocator;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(|a| a.get()) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(|a| a.get()) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

mod offline;

/// Interleaved frames of a simulated recording.
fn frames(preset: SimPreset, seconds: f64) -> (SampleRate, usize, Vec<f64>) {
    let rate = SampleRate::new(preset.default_rate_hz()).unwrap();
    let sim = simulate(&SimSpec::new(preset, seconds, 11, rate)).unwrap();
    (
        rate,
        sim.recording.signals.len(),
        sim.recording.interleaved(),
    )
}

/// Run `config` over `data`, cutting blocks with `next_size`.
fn run(
    config: &Config,
    rate: SampleRate,
    channels: usize,
    data: &[f64],
    next_size: impl FnMut() -> usize,
) -> Vec<Event> {
    let controller = Controller::new(config, rate, channels).unwrap();
    offline::run_blocks(controller, channels, data, next_size)
}

/// Allocations made inside `process_block` over `data` in 32-frame blocks,
/// and the events emitted.
fn allocations(config: &Config, rate: SampleRate, channels: usize, data: &[f64]) -> (usize, usize) {
    let mut controller = Controller::new(config, rate, channels).unwrap();
    let mut outbox = Outbox::with_capacity(1024);
    let block_frames = 32;
    let mut emitted = 0;
    ALLOCATIONS.with(|n| n.set(0));
    for (i, chunk) in data.chunks_exact(block_frames * channels).enumerate() {
        let block = Block {
            start: (i * block_frames) as u64,
            channels,
            samples: chunk,
        };
        outbox.clear();
        ARMED.with(|a| a.set(true));
        controller.process_block(&block, &mut outbox).unwrap();
        ARMED.with(|a| a.set(false));
        emitted += outbox.events().len();
    }
    (ALLOCATIONS.with(Cell::get), emitted)
}

/// Each preset with the simulation it is meant for, long enough to trigger,
/// plus the ripple detector's per-channel modes (filter banks per frame).
fn cases() -> Vec<(String, Config, SimPreset, f64)> {
    let mut cases: Vec<_> = [
        (Preset::RodentRipple, SimPreset::RodentRipple, 90.0),
        (Preset::SleepSpindle, SimPreset::Sleep, 600.0),
        (Preset::SleepClas, SimPreset::Sleep, 600.0),
    ]
    .into_iter()
    .map(|(preset, sim, seconds)| (format!("{preset:?}"), preset.config(), sim, seconds))
    .collect();
    for (combine, sub_bands) in [(ChannelCombine::Consensus, 2), (ChannelCombine::Vote, 1)] {
        let mut config = Preset::RodentRipple.config();
        let DetectorConfig::Ripple(ripple) = &mut config.detector else {
            panic!("the rodent preset runs the ripple detector")
        };
        ripple.channels.combine = combine;
        ripple.sub_bands = sub_bands;
        let label = format!("RodentRipple {combine:?}");
        cases.push((label, config, SimPreset::RodentRipple, 90.0));
    }
    // The spindle preset's stimulating mode: a stim at each spindle-locked commit.
    let mut config = Preset::SleepSpindle.config();
    config.trigger.mode = TriggerMode::Stim;
    cases.push(("SleepSpindle stim".into(), config, SimPreset::Sleep, 600.0));
    // Slow oscillations with the adaptive trough threshold and the ECHT estimator.
    let mut config = Preset::SleepClas.config();
    let DetectorConfig::SlowOscillation(so) = &mut config.detector else {
        panic!("sleep-clas runs the slow-oscillation detector")
    };
    so.negative_threshold_uv = -30.0;
    so.trough_percentile = 30.0;
    so.estimator = PhaseEstimator::Echt;
    so.echt = Some(EchtConfig {
        low_hz: 0.5,
        high_hz: 2.0,
        window_s: 2.0,
    });
    cases.push((
        "SleepClas echt adaptive".into(),
        config,
        SimPreset::Sleep,
        600.0,
    ));
    cases
}

#[test]
fn events_are_identical_for_any_block_size() {
    for (label, config, sim, seconds) in cases() {
        let (rate, channels, data) = frames(sim, seconds);
        let reference = run(&config, rate, channels, &data, || 64);
        assert!(
            reference.len() > 10,
            "{label}: too few events for the comparison to mean anything"
        );
        for size in [1, 7, 1000] {
            let events = run(&config, rate, channels, &data, || size);
            assert_eq!(events, reference, "{label}, block size {size}");
        }
        let mut rng = Rng::new(5);
        let random = run(&config, rate, channels, &data, || {
            1 + (rng.uniform() * 300.0) as usize
        });
        assert_eq!(random, reference, "{label}, random block sizes");
    }
}

#[test]
fn process_block_does_not_allocate() {
    for (label, config, sim, seconds) in cases() {
        let (rate, channels, data) = frames(sim, seconds);
        let (allocated, emitted) = allocations(&config, rate, channels, &data);
        assert!(emitted > 0, "{label}: the run must exercise detection");
        assert_eq!(allocated, 0, "{label}: process_block allocated");
    }
}

/// The latency-test probe on a sleep recording, with a threshold the EEG
/// crosses now and then: both returned and lost probes occur.
fn latency_probe_config() -> Config {
    let mut config = Preset::SleepSpindle.config();
    config.detector = DetectorConfig::LatencyProbe(LatencyProbeConfig {
        channel: 1,
        interval_ms: 500.0,
        threshold_uv: 60.0,
        timeout_ms: 200.0,
    });
    config
}

#[test]
fn latency_probe_is_block_size_invariant_and_allocation_free() {
    let (rate, channels, data) = frames(SimPreset::Sleep, 300.0);
    let config = latency_probe_config();
    let reference = run(&config, rate, channels, &data, || 64);
    let kinds = |k| {
        reference
            .iter()
            .filter(|e| matches!(e, Event::Detection(d) if d.kind == k))
            .count()
    };
    assert!(
        kinds(EventKind::LatencyProbe) > 10 && kinds(EventKind::LatencyProbeLost) > 10,
        "the run must exercise returned and lost probes"
    );
    for size in [1, 7, 1000] {
        assert_eq!(run(&config, rate, channels, &data, || size), reference);
    }
    assert_eq!(allocations(&config, rate, channels, &data).0, 0);
}
