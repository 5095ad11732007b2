//! The whole loop through emulated hardware on pseudo-terminals: an emulated
//! Cyton streams the sleep simulator as real packets, `runtime::run_live`
//! processes it, an emulated Pulse Pal records the triggers it receives; and
//! every device fault (unplug, garbage, dropped packets, stall, a sink that
//! stops accepting, Ctrl-C) is detected, counted, disarms the outputs and
//! leaves a complete, readable session folder.

mod replay;
mod summary;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use neuroloop::config::{Config, DetectorConfig, LatencyProbeConfig, Preset, TriggerMode};
use neuroloop::device::cyton::emulator::{
    CytonEmulator, CytonFaults, CytonSpec, Loopback, LoopbackWire,
};
use neuroloop::device::cyton::{self, OpenBciConfig};
use neuroloop::device::pulsepal::emulator::PulsePalEmulator;
use neuroloop::device::pulsepal::PulsePalConfig;
use neuroloop::device::{
    self, DeviceError, OutputConfig, SourceConfig, TriggerCommand, TriggerOutput,
};
use neuroloop::runtime::{self, Ending, LiveReport, LiveSpec};
use neuroloop::sim::{simulate, truth::TruthEvent, Preset as SimPreset, SimSpec};
use neuroloop::time::SampleRate;
use summary::read_summary;

const RATE_HZ: f64 = 250.0;

/// `seconds` of the 8-channel sleep simulator at 250 Hz, interleaved, with truth.
fn sleep_signal(seconds: f64, seed: u64) -> (Vec<f64>, Vec<TruthEvent>) {
    let rate = SampleRate::new(RATE_HZ).unwrap();
    let mut spec = SimSpec::new(SimPreset::Sleep, seconds, seed, rate);
    spec.channels = 8;
    let sim = simulate(&spec).unwrap();
    (sim.recording.interleaved(), sim.truth)
}

fn rig_config(cyton: &Path, pulse_pal: Option<&Path>, stall_ms: f64) -> Config {
    let mut config = Preset::SleepSpindle.config();
    config.trigger.mode = TriggerMode::Stim;
    if let DetectorConfig::Spindle(d) = &mut config.detector {
        d.commit_after_ms = COMMIT_AFTER_MS;
        // Commit at each event once it has held COMMIT_AFTER_MS (not the preset's rule).
        d.commit = None;
    }
    config.trigger.refractory_ms = 1000.0;
    config.trigger.pulse_ms = 1.0;
    config.source = SourceConfig::Openbci(OpenBciConfig {
        port: cyton.display().to_string(),
        daisy: false,
        gain: 12,
        stall_ms,
    });
    config.outputs = pulse_pal
        .map(|p| {
            OutputConfig::PulsePal(PulsePalConfig {
                port: p.display().to_string(),
                channel: 2,
                volts: 5.0,
                write_timeout_ms: 50.0,
                check_period_ms: 200.0,
            })
        })
        .into_iter()
        .collect();
    config.validate().unwrap();
    config
}

fn run(
    config: &Config,
    extra_outputs: Vec<Box<dyn TriggerOutput>>,
    out: &Path,
    duration_s: f64,
    stop: &AtomicBool,
) -> LiveReport {
    let SourceConfig::Openbci(c) = &config.source else {
        unreachable!()
    };
    let opened = cyton::open(c).unwrap();
    let mut outputs =
        device::open_outputs(&config.outputs, config.trigger.pulse_ms, opened.rate).unwrap();
    outputs.extend(extra_outputs);
    runtime::run_live(
        LiveSpec {
            command: "test",
            config,
            opened,
            outputs,
            out,
            duration_s: Some(duration_s),
            monitor: None,
        },
        stop,
        |_| {},
    )
    .unwrap()
}

/// Sample indices of the `stim` rows of events.tsv (their deciding sample).
fn stims(events: &str) -> Vec<u64> {
    events
        .lines()
        .skip(1)
        .filter(|l| l.split('\t').nth(2) == Some("stim"))
        .map(|l| {
            let decided_s: f64 = l.split('\t').nth(7).unwrap().parse().unwrap();
            (decided_s * RATE_HZ).round() as u64
        })
        .collect()
}

/// The folder of a failed session: summary with status error, the partial
/// log, no events.tsv.
fn assert_failed_folder(dir: &Path, needle: &str) {
    let s = read_summary(dir);
    assert_eq!(s["status"], "error");
    let error = s["error"].as_str().unwrap();
    assert!(error.contains(needle), "{error}");
    assert!(dir.join("events.partial.tsv").exists());
    assert!(!dir.join("events.tsv").exists());
    assert!(dir.join("latency.tsv").exists() && dir.join("config.toml").exists());
    assert_eq!(s["runtime"]["outputs_disarmed_before_flush"], true);
}

#[test]
fn emulated_cyton_to_emulated_pulse_pal_scores_against_truth() {
    let speed = 10.0;
    let seconds = 150.0;
    let (frames_uv, truth) = sleep_signal(seconds + 10.0, 4);
    let cyton = CytonEmulator::start(CytonSpec {
        frames_uv,
        daisy: false,
        speed,
        faults: CytonFaults::default(),
    })
    .unwrap();
    let pulse_pal = PulsePalEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("session");
    // A generous stall limit: this machine is shared and heavily loaded.
    let config = rig_config(&cyton.path, Some(&pulse_pal.path), 2000.0);
    let report = run(&config, vec![], &out, seconds, &AtomicBool::new(false));
    assert_eq!(report.ending, Ending::Complete);
    let cyton_log = cyton.finish().unwrap();
    let pp = pulse_pal.finish().unwrap();

    // The board was configured as asked: gain 12 on all 8 channels.
    assert_eq!(&cyton_log.gains[..8], &[12; 8]);
    // The Pulse Pal was set up: handshake, 1-ms pulse (20 cycles) on channel 2;
    // then asked for its handshake about every 200 ms while idle.
    assert!(pp.handshakes > 10, "{} handshakes", pp.handshakes);
    assert!(pp.params.contains(&(4, 2, 20)), "{:?}", pp.params);
    assert!(pp.aborts >= 1, "outputs are disarmed at the end");

    let s = read_summary(&out);
    assert_eq!(s["status"], "complete");
    assert_eq!(s["samples"], (seconds * RATE_HZ) as u64, "{s}");
    // Nothing on the line but packets. (An early version once counted 14
    // garbage bytes under heavy load at 20x pacing; not seen since in 6 runs
    // at 10x under load, and no path that loses or adds bytes was found: the
    // emulator waits while the pty is full, the slave is raw before the host
    // opens it. If it recurs, sent vs parsed + dropped says which it was.)
    assert_eq!(
        s["source"]["garbage_bytes"], 0,
        "{}; the emulator sent {} packets",
        s["source"], cyton_log.packets_sent
    );
    assert_eq!(
        s["source"]["dropped_packets"], s["controller"]["dropped_frames"],
        "every lost packet is a counted gap: {} {} {}",
        s["source"], s["controller"], s["runtime"]
    );

    // Every stim logged was received, once, on channel 2, close to its
    // deciding sample on the emulator's clock.
    let events = std::fs::read_to_string(out.join("events.tsv")).unwrap();
    let logged = stims(&events);
    assert!(
        logged.len() >= 5,
        "too few stims to score: {}",
        logged.len()
    );
    assert_eq!(pp.triggers.len(), logged.len());
    assert!(pp.triggers.iter().all(|t| t.mask == 0b10));
    // Each trigger maps to the last packet written before it arrived (the
    // emulator's clock): the deciding sample plus the loop's latency.
    let received: Vec<f64> = pp
        .triggers
        .iter()
        .map(|t| cyton_log.sent_at.partition_point(|&s| s <= t.at) as f64 - 1.0)
        .collect();
    for (r, &d) in received.iter().zip(&logged) {
        // Causality only: how soon is measured in latency.tsv, not asserted here.
        assert!(
            *r >= d as f64,
            "received at sample {r:.0}, before its decision at {d}"
        );
    }

    // Score the received triggers against the simulator's spindles: a hit lies
    // inside a true spindle or within 0.5 s after its end (the detector commits
    // after 500 ms of evidence).
    let spindles: Vec<&TruthEvent> = truth.iter().filter(|t| t.trial_type == "spindle").collect();
    let hits = received
        .iter()
        .filter(|&&r| {
            let t = r / RATE_HZ;
            spindles
                .iter()
                .any(|s| t >= s.onset_s && t <= s.onset_s + s.duration_s + 0.5)
        })
        .count();
    let precision = hits as f64 / received.len() as f64;
    eprintln!(
        "{} triggers received, {hits} on a true spindle (precision {precision:.2}); {} spindles in truth",
        received.len(),
        spindles.len()
    );
    assert!(precision >= PRECISION_FLOOR, "precision {precision:.2}");

    // Latency is measured per trigger and summarised.
    let latency = std::fs::read_to_string(out.join("latency.tsv")).unwrap();
    assert_eq!(latency.lines().count(), logged.len() + 1);
    assert!(s["latency"]["arrival_to_command"]["count"].as_u64() == Some(logged.len() as u64));
    // One measurement per block the processing thread ran (each of one
    // frame or more), percentiles in order.
    let blocks = &s["latency"]["block_processing"];
    let count = blocks["count"].as_u64().unwrap();
    assert!(
        count > 0 && count <= s["samples"].as_u64().unwrap(),
        "{blocks}"
    );
    let at = |k: &str| blocks[k].as_f64().unwrap();
    assert!(
        0.0 < at("p50_us") && at("p50_us") <= at("p99_us") && at("p99_us") <= at("max_us"),
        "{blocks}"
    );
    // The Cyton's 24-bit samples were recorded as received: the replay decides the same.
    replay::assert_replay_reproduces(&out);
}

/// Just under what the spindle detector reaches on this seed with a 150-ms
/// commit (7 of 8 received triggers on a true spindle); it guards the plumbing
/// end to end. Spindle-locked stimulation needs that much evidence: committing
/// at the first sample above threshold (the preset's setting, which logs only)
/// also fires on sigma bursts that never become 0.5-s spindles (6 of 26 here).
const PRECISION_FLOOR: f64 = 0.75;
const COMMIT_AFTER_MS: f64 = 150.0;

fn short_session(
    faults: CytonFaults,
    stall_ms: f64,
    seconds: f64,
) -> (LiveReport, tempfile::TempDir, PulsePalEmulator) {
    let (frames_uv, _) = sleep_signal(seconds + 5.0, 7);
    let cyton = CytonEmulator::start(CytonSpec {
        frames_uv,
        daisy: false,
        speed: 10.0,
        faults,
    })
    .unwrap();
    let pulse_pal = PulsePalEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = rig_config(&cyton.path, Some(&pulse_pal.path), stall_ms);
    let report = run(
        &config,
        vec![],
        &dir.path().join("s"),
        seconds,
        &AtomicBool::new(false),
    );
    drop(cyton);
    (report, dir, pulse_pal)
}

#[test]
fn unplugged_source_disarms_and_keeps_a_readable_folder() {
    let (report, dir, pp) = short_session(
        CytonFaults {
            close_after: Some(2000),
            ..CytonFaults::default()
        },
        500.0,
        30.0,
    );
    assert!(
        matches!(
            report.ending,
            Ending::Device(DeviceError::Disconnected { .. })
        ),
        "{:?}",
        report.ending
    );
    assert_failed_folder(&dir.path().join("s"), "openbci: disconnected");
    // The hang-up may discard the last bytes in flight.
    let samples = read_summary(&dir.path().join("s"))["samples"]
        .as_u64()
        .unwrap();
    assert!((1..=2000).contains(&samples), "{samples}");
    assert!(
        pp.finish().unwrap().aborts >= 1,
        "Pulse Pal aborted on disarm"
    );
}

#[test]
fn stalled_source_is_detected_after_stall_ms() {
    let (report, dir, pp) = short_session(
        CytonFaults {
            stall_after: Some(1000),
            ..CytonFaults::default()
        },
        150.0,
        30.0,
    );
    assert_eq!(
        report.ending,
        Ending::Device(DeviceError::Stalled {
            device: "openbci",
            ms: 150
        })
    );
    assert_failed_folder(&dir.path().join("s"), "no data for 150 ms");
    assert!(pp.finish().unwrap().aborts >= 1);
}

#[test]
fn garbage_is_skipped_and_counted_without_losing_samples() {
    let (report, dir, _pp) = short_session(
        CytonFaults {
            garbage_every: Some(100),
            ..CytonFaults::default()
        },
        500.0,
        20.0,
    );
    assert_eq!(report.ending, Ending::Complete);
    let s = read_summary(&dir.path().join("s"));
    let packets = s["source"]["packets"].as_u64().unwrap();
    // 7 garbage bytes before every 100th packet sent up to the last one parsed.
    let bursts = s["source"]["resyncs"].as_u64().unwrap();
    assert!(
        bursts >= packets / 100 - 1 && bursts <= packets / 100 + 1,
        "{s}"
    );
    assert_eq!(s["source"]["garbage_bytes"].as_u64().unwrap(), 7 * bursts);
    assert_eq!(s["source"]["dropped_packets"], 0, "{}", s["source"]);
    assert_eq!(s["controller"]["dropped_frames"], 0);
    assert_eq!(s["samples"], 5000);
    assert_eq!(s["status"], "complete");
}

#[test]
fn dropped_packets_are_counted_and_left_as_gaps() {
    let (report, dir, _pp) = short_session(
        CytonFaults {
            drop_every: Some(240),
            ..CytonFaults::default()
        },
        500.0,
        20.0,
    );
    assert_eq!(report.ending, Ending::Complete);
    let s = read_summary(&dir.path().join("s"));
    // Packets 239, 479, …, 4799 never sent: 20 gaps in the first 5000 samples.
    assert_eq!(s["controller"]["dropped_frames"], 20, "{s}");
    // The source keeps reading (and counting) until it is stopped after the limit.
    let counted = s["source"]["dropped_packets"].as_u64().unwrap();
    assert!(counted >= 20, "{counted}");
    assert_eq!(s["samples"], 5000);
    // The recording marks the 20 gaps; its replay skips them as the live session did.
    assert_eq!(s["recording"]["counters"]["gaps"], 20, "{s}");
    replay::assert_replay_reproduces(&dir.path().join("s"));
}

/// A sink whose device stops accepting data after `ok` triggers, the way a
/// serial write that times out is reported.
struct Refusing {
    ok: usize,
    fired: Arc<std::sync::atomic::AtomicUsize>,
}

impl TriggerOutput for Refusing {
    fn name(&self) -> &'static str {
        "refusing"
    }
    fn fire(&mut self, _: &TriggerCommand) -> Result<(), DeviceError> {
        if self.fired.fetch_add(1, Ordering::SeqCst) >= self.ok {
            return Err(DeviceError::Disconnected {
                device: "refusing",
                message: "stopped accepting data (write timed out)".into(),
            });
        }
        Ok(())
    }
    fn disarm(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
}

#[test]
fn a_sink_that_stops_accepting_disarms_every_output() {
    let speed = 20.0;
    let (frames_uv, _) = sleep_signal(160.0, 4);
    let cyton = CytonEmulator::start(CytonSpec {
        frames_uv,
        daisy: false,
        speed,
        faults: CytonFaults::default(),
    })
    .unwrap();
    let pulse_pal = PulsePalEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let config = rig_config(&cyton.path, Some(&pulse_pal.path), 500.0);
    let fired = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let refusing = Box::new(Refusing {
        ok: 1,
        fired: fired.clone(),
    });
    let report = run(
        &config,
        vec![refusing],
        &out,
        150.0,
        &AtomicBool::new(false),
    );
    assert!(
        matches!(
            &report.ending,
            Ending::Device(DeviceError::Disconnected {
                device: "refusing",
                ..
            })
        ),
        "{:?}",
        report.ending
    );
    assert_failed_folder(&out, "stopped accepting");
    let pp = pulse_pal.finish().unwrap();
    assert!(pp.aborts >= 1, "the healthy output was disarmed too");
    // The failing sink was given its one good command and the one it failed
    // on, nothing after: no command is released once a sink has failed.
    let given = fired.load(Ordering::SeqCst);
    assert_eq!(given, 2, "commands handed to the failing sink");
    // The Pulse Pal got no command the failing sink was not also given: the
    // failing command reached both at once (released before the failure was
    // known), and no trigger reached it after.
    assert!(
        pp.triggers.len() <= given,
        "{} triggers on the Pulse Pal, {given} commands released before the fault",
        pp.triggers.len()
    );
}

#[test]
fn ctrl_c_disarms_then_writes_a_complete_interrupted_session() {
    let (frames_uv, _) = sleep_signal(60.0, 7);
    let cyton = CytonEmulator::start(CytonSpec {
        frames_uv,
        daisy: false,
        speed: 1.0,
        faults: CytonFaults::default(),
    })
    .unwrap();
    let pulse_pal = PulsePalEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let config = rig_config(&cyton.path, Some(&pulse_pal.path), 500.0);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let ctrl_c = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        s2.store(true, Ordering::Relaxed);
    });
    let report = run(&config, vec![], &out, 60.0, &stop);
    ctrl_c.join().unwrap();
    assert_eq!(report.ending, Ending::Interrupted);
    let s = read_summary(&out);
    assert_eq!(s["status"], "interrupted");
    assert!(out.join("events.tsv").exists() && !out.join("events.partial.tsv").exists());
    let samples = s["samples"].as_u64().unwrap();
    assert!((200..=600).contains(&samples), "{samples} samples in 1.5 s");
    assert!(pulse_pal.finish().unwrap().aborts >= 1);
}

/// `latency-test` through the emulated loop: Cyton → neuroloop → Pulse Pal,
/// whose output the wire feeds back into the Cyton's channel 8. Every probe
/// must go out and come back, never before the packet after its deciding one.
#[test]
fn latency_test_measures_the_emulated_round_trip() {
    const PROBES: u32 = 15;
    let (frames_uv, _) = sleep_signal(5.0, 9);
    let wire = LoopbackWire::new();
    let cyton = CytonEmulator::start_looped(
        CytonSpec {
            frames_uv,
            daisy: false,
            speed: 1.0,
            faults: CytonFaults::default(),
        },
        Some(Loopback {
            wire: wire.clone(),
            channel: 7,
            amplitude_uv: 50_000.0,
            packets: 3,
        }),
    )
    .unwrap();
    let pulse_pal = PulsePalEmulator::start_wired(Some(wire)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("session");
    let mut rig = rig_config(&cyton.path, Some(&pulse_pal.path), 2000.0);
    rig.input.channels.clear();
    rig.detector = DetectorConfig::LatencyProbe(LatencyProbeConfig {
        channel: 7,
        // Generous: the test asserts correctness, not speed; an emulator
        // thread delayed by a loaded machine must not count as a lost probe.
        interval_ms: 300.0,
        threshold_uv: 10_000.0,
        timeout_ms: 250.0,
    });
    let test = runtime::latency_test::prepare(&rig, PROBES).unwrap();
    let report = run(
        &test.config,
        vec![],
        &out,
        test.duration_s,
        &AtomicBool::new(false),
    );
    assert_eq!(report.ending, Ending::Complete);
    let rate = SampleRate::new(RATE_HZ).unwrap();
    let rt = runtime::latency_test::record_round_trip(&out, rate).unwrap();
    let pp = pulse_pal.finish().unwrap();
    cyton.finish().unwrap();
    // The figure docs/performance.md quotes (run with --nocapture).
    eprintln!(
        "emulated round trip (samples at 250 Hz): {:?}; ms: {:?}; all: {:?}",
        rt.samples, rt.ms, rt.round_trips_samples
    );

    assert_eq!(pp.triggers.len(), PROBES as usize);
    assert_eq!(
        (rt.probes_sent, rt.returned, rt.lost, rt.not_delivered),
        (PROBES as usize, PROBES as usize, 0, 0),
        "{rt:?}"
    );
    // Causal: the pulse rides on a packet written after the trigger, which
    // came after the deciding packet. Bounded by the 250-ms timeout.
    assert!(
        rt.round_trips_samples
            .iter()
            .all(|&s| (1..=62).contains(&s)),
        "{rt:?}"
    );
    let s = read_summary(&out);
    assert_eq!(s["round_trip"]["returned"], PROBES);
    assert_eq!(s["round_trip"]["samples"]["max"], rt.samples.unwrap().max);
}
