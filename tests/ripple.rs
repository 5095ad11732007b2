//! The ripple detector through the controller: accuracy floors on a simulated
//! recording, a false-positive ceiling on the real theta recording,
//! sample-exact post-stimulus blanking, and every baseline and combine mode.

use neuroloop::config::{ChannelCombine, Config, DetectorConfig, Preset, RippleStart};
use neuroloop::controller::Controller;
use neuroloop::eval::{score_ripples, EventRow, RippleScore, TruthRow};
use neuroloop::event::Event;
use neuroloop::io::{read_recording, FileOptions};
use neuroloop::sim::{simulate, Preset as SimPreset, SimSpec, Simulation};
use neuroloop::time::SampleRate;

mod files;
mod offline;

use files::shared_data;

/// All events of one session over interleaved `data`, in blocks of `block`.
fn run(
    config: &Config,
    rate: SampleRate,
    channels: usize,
    data: &[f64],
    block: usize,
) -> Vec<Event> {
    let controller = Controller::new(config, rate, channels).unwrap();
    offline::run_blocks(controller, channels, data, || block)
}

/// The rodent simulator: (channels, interleaved frames, the simulation).
fn rodent(seconds: f64, seed: u64, rate: SampleRate) -> (usize, Vec<f64>, Simulation) {
    let sim = simulate(&SimSpec::new(SimPreset::RodentRipple, seconds, seed, rate)).unwrap();
    (
        sim.recording.signals.len(),
        sim.recording.interleaved(),
        sim,
    )
}

fn score(seconds: f64, seed: u64, rate_hz: f64) -> RippleScore {
    let rate = SampleRate::new(rate_hz).unwrap();
    let (channels, data, sim) = rodent(seconds, seed, rate);
    let events = run(&Preset::RodentRipple.config(), rate, channels, &data, 64);
    let s = |n: u64| rate.seconds(n);
    let mut detections = Vec::new();
    let mut stims = Vec::new();
    for event in events {
        match event {
            Event::Detection(d) => detections.push(EventRow {
                onset_s: s(d.onset),
                duration_s: s(d.end - d.onset),
                trial_type: "ripple".into(),
                detected_at_s: Some(s(d.detected_at)),
                decided_at_s: None,
            }),
            Event::Trigger(t) if t.delivered => stims.push(EventRow {
                onset_s: s(t.onset),
                duration_s: s(t.duration),
                trial_type: "stim".into(),
                detected_at_s: None,
                decided_at_s: Some(s(t.decided_at)),
            }),
            Event::Trigger(_) => {}
        }
    }
    let truth: Vec<TruthRow> = sim
        .truth
        .iter()
        .filter(|t| t.trial_type == "ripple")
        .map(|t| TruthRow {
            onset_s: t.onset_s,
            duration_s: t.duration_s,
            peak_s: t.peak_s,
            trial_type: t.trial_type.clone(),
        })
        .collect();
    score_ripples(&truth, &detections, &stims, seconds / 60.0)
}

/// Floors just under what the preset reaches on this recording (see docs/ripple.md).
#[test]
fn simulated_accuracy_floors() {
    let s = score(180.0, 2, 1250.0);
    eprintln!("{s:?}");
    assert!(s.detection.truth > 30, "{s:?}");
    assert!(s.detection.f1 >= 0.86, "F1 {}", s.detection.f1);
    assert!(
        s.detection.precision >= 0.95,
        "precision {}",
        s.detection.precision
    );
    let latency = s.latency_ms.unwrap();
    assert!(
        latency.median <= 27.0,
        "median latency {} ms",
        latency.median
    );
    assert!(
        s.share_stims_within_50ms >= 0.95,
        "{}",
        s.share_stims_within_50ms
    );
    assert!(
        s.false_positives_per_min <= 1.0,
        "{}",
        s.false_positives_per_min
    );
}

#[test]
fn theta_recording_false_positive_ceiling() {
    let path = shared_data("rodent/hc2_theta_1000hz.edf");
    let recording = read_recording(&path, &FileOptions::default()).unwrap();
    let signal = &recording.signals[0];
    let events = run(
        &Preset::RodentRipple.config(),
        signal.rate,
        1,
        &signal.samples,
        64,
    );
    let detections = events
        .iter()
        .filter(|e| matches!(e, Event::Detection(_)))
        .count();
    let minutes = signal.samples.len() as f64 / signal.rate.hz() / 60.0;
    assert!(
        detections as f64 / minutes <= 1.0,
        "{detections} detections in {minutes} min"
    );
}

/// An artifact confined to [onset + 1, onset + blanking) of every delivered
/// pulse leaves every decision unchanged, at any block size; without blanking
/// the same artifacts change them.
#[test]
fn blanking_hides_stimulus_artifacts_sample_exactly() {
    let rate = SampleRate::new(1250.0).unwrap();
    let (channels, clean, _) = rodent(120.0, 4, rate);
    let mut config = Preset::RodentRipple.config();
    config.trigger.blanking_ms = 8.0;
    let blank = rate.samples_in_ms(8.0) as usize;
    let reference = run(&config, rate, channels, &clean, 64);
    let onsets: Vec<usize> = reference
        .iter()
        .filter_map(|e| match e {
            Event::Trigger(t) if t.delivered => Some(t.onset as usize),
            _ => None,
        })
        .collect();
    assert!(onsets.len() > 5, "too few stims to test blanking");
    let mut with_artifacts = clean.clone();
    for &onset in &onsets {
        for n in onset + 1..(onset + blank).min(clean.len() / channels) {
            for c in 0..channels {
                // A biphasic pulse of ±4 mV, far above any ripple.
                with_artifacts[n * channels + c] += if n % 2 == 0 { 4000.0 } else { -4000.0 };
            }
        }
    }
    for block in [1, 64, 1000] {
        assert_eq!(
            run(&config, rate, channels, &with_artifacts, block),
            reference,
            "block {block}"
        );
    }
    config.trigger.blanking_ms = 0.0;
    assert_ne!(run(&config, rate, channels, &with_artifacts, 64), reference);
}

/// The preset's TOML `text` with a 10-s baseline window, parsed.
fn with_window_10_s(text: &str) -> Config {
    let edited = text.replace("window_s = 30.0", "window_s = 10.0");
    assert_ne!(edited, text, "window not applied");
    Config::from_toml(&edited, "window_s = 10.0").unwrap()
}

/// Runs of different configurations must decide differently, so a setting
/// the detector silently ignored fails.
fn assert_all_differ(runs: &[(String, Vec<Event>)]) {
    for (i, (a, events_a)) in runs.iter().enumerate() {
        for (b, events_b) in &runs[i + 1..] {
            assert_ne!(events_a, events_b, "{a} and {b} decide the same");
        }
    }
}

#[test]
fn every_baseline_and_combine_mode_runs() {
    let rate = SampleRate::new(1250.0).unwrap();
    let (channels, data, _) = rodent(60.0, 5, rate);
    let base = Preset::RodentRipple.config();
    // Every baseline variant against the preset's baseline on the same window.
    let mut runs = vec![(
        "adaptive median-mad".to_string(),
        run(
            &with_window_10_s(Preset::RodentRipple.toml()),
            rate,
            channels,
            &data,
            64,
        ),
    )];
    let variants = [
        "mode = \"adaptive\"\nstatistic = \"mean-sd\"",
        "mode = \"calibrate\"\nstatistic = \"median-mad\"",
        "mode = \"calibrate\"\nstatistic = \"mean-sd\"",
        "mode = \"frozen\"\nstatistic = \"mean-sd\"\nfrozen_center = [8.0, 6.0, 5.0]\nfrozen_sd = [2.0, 1.8, 1.5]",
    ];
    for variant in variants {
        let text = Preset::RodentRipple
            .toml()
            .replace("mode = \"adaptive\"           # or \"calibrate\" (first window_s, then held) or \"frozen\"\nstatistic = \"median-mad\"    # or \"mean-sd\"", variant);
        assert_ne!(text, Preset::RodentRipple.toml(), "variant not applied");
        let events = run(&with_window_10_s(&text), rate, channels, &data, 64);
        assert!(
            events.iter().any(|e| matches!(e, Event::Detection(_))),
            "{variant}"
        );
        runs.push((variant.replace('\n', " "), events));
    }
    assert_all_differ(&runs);
    let combine = |combine: ChannelCombine, sub_bands: usize, k: usize, start: RippleStart| {
        let mut config = base.clone();
        let DetectorConfig::Ripple(r) = &mut config.detector else {
            panic!("the rodent preset runs the ripple detector")
        };
        r.channels.combine = combine;
        r.sub_bands = sub_bands;
        r.channels.vote_k = k;
        if start != r.start {
            // Switch rules with the other rule's defaults.
            (r.start, r.cusum_drift, r.cusum_limit_ms) = (start, None, None);
        }
        config
    };
    let mut runs = vec![("preset".to_string(), run(&base, rate, channels, &data, 64))];
    for start in [RippleStart::Threshold, RippleStart::Cusum] {
        for (mode, sub_bands) in [
            (ChannelCombine::Vote, 1),
            (ChannelCombine::Consensus, 1),
            (ChannelCombine::Consensus, 3),
            (ChannelCombine::Coherent, 1),
            (ChannelCombine::Coherent, 2),
        ] {
            let config = combine(mode, sub_bands, 2, start);
            let events = run(&config, rate, channels, &data, 64);
            assert!(
                events.iter().any(|e| matches!(e, Event::Detection(_))),
                "{start:?} {mode:?} {sub_bands}"
            );
            runs.push((format!("{start:?} {mode:?} {sub_bands}"), events));
        }
    }
    assert_all_differ(&runs);
    let err = Controller::new(
        &combine(ChannelCombine::Vote, 1, 5, RippleStart::Cusum),
        rate,
        4,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("detector.channels.vote_k"), "{err}");
    // The preset's TOML with one edit must be refused, naming `field`.
    let refused = |from: &str, to: &str, field: &str| {
        let text = Preset::RodentRipple.toml().replace(from, to);
        assert_ne!(
            text,
            Preset::RodentRipple.toml(),
            "edit not applied: {from}"
        );
        let err = Config::from_toml(&text, to).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
        err
    };
    refused(
        "combine = \"coherent\"",
        "combine = \"vote\"",
        "detector.sub_bands",
    );
    refused(
        "cusum_limit_ms = 20.0",
        "cusum_limit_ms = -1.0",
        "detector.cusum_limit_ms",
    );
    // A parameter of the rule not in use would be ignored silently: refused.
    let err = refused(
        "cusum_limit_ms = 20.0",
        "cusum_limit_ms = 20.0\nthreshold_sd = 4.0",
        "detector.threshold_sd",
    );
    assert!(err.contains("start = \"threshold\""), "{err}");
}
