//! Sleep paradigm floors on real data (DREAMS) and the click renderer.
//! Floors sit just under what the presets reach (docs/sleep.md).

use neuroloop::click::ClickSpec;
use neuroloop::config::{Preset, StimSequence};
use neuroloop::controller::Controller;
use neuroloop::eval::hypnogram::{Hypnogram, Stage};
use neuroloop::eval::phase::{offline_phase, score_phases};
use neuroloop::eval::{score_intervals, tables, union_of, EventRow};
use neuroloop::eval::{Interval, IntervalScore};
use neuroloop::event::{Event, EventKind};
use neuroloop::io::{read_recording, FileOptions};
use neuroloop::time::SampleRate;

mod files;
mod offline;

use files::shared_data;

/// Replay excerpt `i` through `config`; returns the rate, samples and events.
fn replay(
    i: usize,
    config: &neuroloop::config::Config,
    gate: Option<&Hypnogram>,
) -> (SampleRate, Vec<f64>, Vec<Event>) {
    let path = shared_data(&format!("dreams/excerpt{i}.edf"));
    let rec = read_recording(&path, &FileOptions::default()).unwrap();
    let signal = &rec.signals[0];
    let mut controller = Controller::new(config, signal.rate, 1).unwrap();
    if let Some(h) = gate {
        controller.restrict_stimulation_to(h.sample_intervals(signal.rate, Stage::is_deep_nrem));
    }
    let events = offline::run_blocks(controller, 1, &signal.samples, || 37);
    (signal.rate, signal.samples.clone(), events)
}

fn hypnogram(i: usize) -> Hypnogram {
    let path = shared_data(&format!("dreams/Hypnogram_excerpt{i}.txt"));
    let text = std::fs::read_to_string(&path).unwrap();
    Hypnogram::parse_dreams(&text, &path.display().to_string()).unwrap()
}

/// The preset on excerpt `i`, first 1000 s: spindles and the union of both
/// experts, all shifted by `offset_s` so that excerpts can be pooled, and the
/// number of commits (spindles and dropped ones: what a spindle-locked stim fires on).
fn spindles_and_truth(i: usize, offset_s: f64) -> (Vec<EventRow>, Vec<Interval>, usize) {
    let (rate, _, events) = replay(i, &Preset::SleepSpindle.config(), None);
    let commits = events
        .iter()
        .filter(|e| {
            matches!(e, Event::Detection(d)
                if matches!(d.kind, EventKind::Spindle | EventKind::SpindleDropped)
                    && rate.seconds(d.onset) < 1000.0)
        })
        .count();
    let detections: Vec<EventRow> = events
        .iter()
        .filter_map(|e| match e {
            Event::Detection(d)
                if d.kind == EventKind::Spindle && rate.seconds(d.onset) < 1000.0 =>
            {
                Some(EventRow {
                    onset_s: offset_s + rate.seconds(d.onset),
                    duration_s: rate.seconds(d.end - d.onset),
                    trial_type: "spindle".into(),
                    detected_at_s: Some(offset_s + rate.seconds(d.detected_at)),
                    decided_at_s: None,
                })
            }
            _ => None,
        })
        .collect();
    let mut truth = Vec::new();
    for expert in [1, 2] {
        let path = shared_data(&format!("dreams/Visual_scoring{expert}_excerpt{i}.txt"));
        let text = std::fs::read_to_string(&path).unwrap();
        truth.extend(
            tables::parse_truth(&text, &path.display().to_string())
                .unwrap()
                .into_iter()
                .filter(|t| t.onset_s < 1000.0)
                .map(|t| Interval {
                    onset_s: offset_s + t.onset_s,
                    end_s: offset_s + t.onset_s + t.duration_s,
                }),
        );
    }
    (detections, union_of(truth), commits)
}

/// By-event score of pooled [`spindles_and_truth`] runs, and their commits.
fn spindle_score(runs: &[(Vec<EventRow>, Vec<Interval>, usize)]) -> (IntervalScore, usize) {
    let (mut detections, mut truth, mut commits) = (Vec::new(), Vec::new(), 0);
    for (d, t, c) in runs {
        detections.extend_from_slice(d);
        truth.extend_from_slice(t);
        commits += c;
    }
    (score_intervals(&truth, &detections, 0.2), commits)
}

#[test]
fn spindle_f1_latency_and_precision_floors_on_dreams() {
    // Each excerpt replayed once (runs[i - 1] is excerpt i), scored alone and pooled.
    let runs: Vec<_> = (1..=6)
        .map(|i| spindles_and_truth(i, 10_000.0 * i as f64))
        .collect();
    // Measured 0.697 (excerpt 1, tuning set) and 0.750 (excerpt 6, held out).
    let f1 = spindle_score(&runs[..1]).0.detection.f1;
    assert!(f1 >= 0.68, "excerpt 1 F1 {f1:.3}");
    let f1 = spindle_score(&runs[5..]).0.detection.f1;
    assert!(f1 >= 0.72, "excerpt 6 F1 {f1:.3}");
    // Measured (round 4): held out 4–6 F1 0.653, median latency 345 ms, 737 commits;
    // 1–3: 0.655, 300 ms, 725 commits (issue 4: ≤ 350 ms; round 3: 370 ms held out, 1467 commits).
    let (held_out, held_out_commits) = spindle_score(&runs[3..]);
    let (tuning, tuning_commits) = spindle_score(&runs[..3]);
    for (name, score, commits, max_latency_ms) in [
        ("held out", &held_out, held_out_commits, 350.0),
        ("tuning", &tuning, tuning_commits, 310.0),
    ] {
        assert!(score.detection.f1 >= 0.64, "{name} {score:?}");
        let latency = score.latency_ms.expect("matched spindles");
        assert!(latency.median <= max_latency_ms, "{name} {latency:?}");
        // Commit precision: matched spindles per commit, measured 0.152 and 0.156.
        let precision = score.detection.hits as f64 / commits as f64;
        assert!(
            precision >= 0.15,
            "{name} {} of {commits}",
            score.detection.hits
        );
    }
}

#[test]
fn so_stims_hit_the_up_phase_and_never_wake_or_rem() {
    // Excerpt 2 (200 Hz, the most N3): measured 143 stims, mean error −16.8°, R 0.88, 97 % up-phase.
    let h = hypnogram(2);
    let (rate, samples, events) = replay(2, &Preset::SleepClas.config(), Some(&h));
    let onsets: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Trigger(t) if t.delivered => Some(t.onset),
            _ => None,
        })
        .collect();
    assert!(onsets.len() >= 130, "{} stims", onsets.len());
    for &o in &onsets {
        let stage = h.stage_at(rate.seconds(o));
        assert!(
            stage.is_deep_nrem(),
            "stim at {} s in {stage:?}",
            rate.seconds(o)
        );
    }
    let phase = offline_phase(&samples, rate).unwrap();
    let phases: Vec<f64> = onsets.iter().map(|&o| phase[o as usize]).collect();
    let score = score_phases(&phases, 0.0).unwrap();
    assert!(score.mean_error_deg.abs() <= 18.0, "{score:?}");
    assert!(score.r >= 0.85, "{score:?}");
    assert!(score.share_in_half_cycle >= 0.95, "{score:?}");
}

#[test]
fn hypnogram_gate_refuses_wake_and_rem_even_without_the_online_gate() {
    let mut config = Preset::SleepClas.config();
    let neuroloop::config::DetectorConfig::SlowOscillation(so) = &mut config.detector else {
        panic!("sleep-clas runs the slow-oscillation detector");
    };
    so.gate.enabled = false;
    config.trigger.sequence = StimSequence::TwoClick;
    let h = hypnogram(4);
    let (rate, _, events) = replay(4, &config, Some(&h));
    let (_, _, ungated) = replay(4, &config, None);
    let in_wake_rem = |events: &[Event]| {
        events
            .iter()
            .filter(|e| match e {
                Event::Trigger(t) => {
                    matches!(h.stage_at(rate.seconds(t.onset)), Stage::Wake | Stage::Rem)
                }
                _ => false,
            })
            .count()
    };
    assert!(in_wake_rem(&ungated) > 0, "the test must be able to fail");
    assert_eq!(in_wake_rem(&events), 0);
}

#[test]
fn click_has_its_length_ramps_level_and_a_pink_spectrum() {
    let rate_hz = 48_000.0;
    let spec = ClickSpec::default();
    let click = spec.render(rate_hz).unwrap();
    assert_eq!(click.len(), 2400, "50 ms at 48 kHz");
    assert_eq!(click, spec.render(rate_hz).unwrap(), "deterministic");
    // Ramps: the first and last samples are near silent, the plateau is not.
    let ramp = 240;
    let peak = |s: &[f32]| s.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(peak(&click[..4]) < 0.01 && peak(&click[click.len() - 4..]) < 0.01);
    assert!(peak(&click[..ramp / 4]) < peak(&click[ramp..2 * ramp]));
    // Level: the plateau RMS is the requested dBFS.
    let plateau = &click[ramp..click.len() - ramp];
    let rms =
        (plateau.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / plateau.len() as f64).sqrt();
    let db = 20.0 * rms.log10();
    assert!((db - spec.level_dbfs).abs() < 1.0, "{db:.2} dBFS");
    // Spectrum roughly 1/f: power per octave about constant, so the band
    // 200–400 Hz has about 10 dB more power per Hz than 2–4 kHz.
    let long = ClickSpec {
        duration_ms: 2000.0,
        ramp_ms: 5.0,
        ..spec
    }
    .render(rate_hz)
    .unwrap();
    let band_power = |lo: f64, hi: f64| {
        let n = long.len();
        let bins = ((lo * n as f64 / rate_hz) as usize)..((hi * n as f64 / rate_hz) as usize);
        let count = bins.len() as f64;
        bins.map(|k| {
            let w = std::f64::consts::TAU * k as f64 / n as f64;
            let (re, im) = long
                .iter()
                .enumerate()
                .fold((0.0, 0.0), |(re, im), (i, &v)| {
                    (
                        re + f64::from(v) * (w * i as f64).cos(),
                        im - f64::from(v) * (w * i as f64).sin(),
                    )
                });
            re * re + im * im
        })
        .sum::<f64>()
            / count
    };
    let ratio_db = 10.0 * (band_power(200.0, 400.0) / band_power(2000.0, 4000.0)).log10();
    assert!(
        (7.0..13.0).contains(&ratio_db),
        "{ratio_db:.1} dB per decade"
    );
    assert!(ClickSpec {
        level_dbfs: 0.0,
        ..spec
    }
    .render(rate_hz)
    .is_err());
}
