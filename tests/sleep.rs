//! Sleep paradigm floors on real data (DREAMS) and the click renderer.
//! Floors sit just under what the presets reach (docs/sleep.md).

use neuroloop::click::ClickSpec;
use neuroloop::config::{Preset, StimSequence};
use neuroloop::controller::Controller;
use neuroloop::eval::hypnogram::{Hypnogram, Stage};
use neuroloop::eval::phase::{offline_phase, score_phases};
use neuroloop::eval::{score_commits, score_intervals, tables, union_of, EventRow};
use neuroloop::eval::{CommitScore, Interval, IntervalScore};
use neuroloop::event::{Detection, Event, EventKind};
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

/// The preset on excerpt `i`, first 1000 s: spindles, spindle-locked commit
/// times and the union of both experts, all shifted by `offset_s` so that
/// excerpts can be pooled.
fn spindles_and_truth(i: usize, offset_s: f64) -> (Vec<EventRow>, Vec<f64>, Vec<Interval>) {
    let (rate, _, events) = replay(i, &Preset::SleepSpindle.config(), None);
    let seconds = |n| offset_s + rate.seconds(n);
    let first_1000_s = |d: &&Detection| rate.seconds(d.onset) < 1000.0;
    let detections: Vec<&Detection> = events
        .iter()
        .filter_map(|e| match e {
            Event::Detection(d) => Some(d),
            Event::Trigger(_) => None,
        })
        .filter(first_1000_s)
        .collect();
    let spindles = detections
        .iter()
        .filter(|d| d.kind == EventKind::Spindle)
        .map(|d| EventRow {
            onset_s: seconds(d.onset),
            duration_s: rate.seconds(d.end - d.onset),
            trial_type: "spindle".into(),
            detected_at_s: d.committed.then(|| seconds(d.detected_at)),
            decided_at_s: None,
            peak_s: None,
        })
        .collect();
    let commits = detections
        .iter()
        .filter(|d| d.committed)
        .map(|d| seconds(d.detected_at))
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
    (spindles, commits, union_of(truth))
}

/// Event and commit scores of pooled [`spindles_and_truth`] runs.
fn spindle_score(
    runs: &[(Vec<EventRow>, Vec<f64>, Vec<Interval>)],
) -> (IntervalScore, CommitScore) {
    let (mut spindles, mut commits, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    for (s, c, t) in runs {
        spindles.extend_from_slice(s);
        commits.extend_from_slice(c);
        truth.extend_from_slice(t);
    }
    (
        score_intervals(&truth, &spindles, 0.2),
        score_commits(&truth, &commits),
    )
}

#[test]
fn spindle_event_and_commit_floors_on_dreams() {
    // Each excerpt replayed once (runs[i - 1] is excerpt i), scored alone and pooled.
    let runs: Vec<_> = (1..=6)
        .map(|i| spindles_and_truth(i, 10_000.0 * i as f64))
        .collect();
    // Event F1, measured 0.697 (excerpt 1), 0.750 (excerpt 6), 0.654 pooled 1–6.
    for (name, range, floor) in [
        ("excerpt 1", 0..1, 0.68),
        ("excerpt 6", 5..6, 0.72),
        ("1–6", 0..6, 0.65),
    ] {
        let f1 = spindle_score(&runs[range]).0.detection.f1;
        assert!(f1 >= floor, "{name} event F1 {f1:.3}");
    }
    // Spindle-locked commits (docs/sleep.md, issue 10), measured on 1–3 (tuning):
    // P 0.601, R 0.701, F1 0.647, median 500 ms after the expert onset; on 4–6
    // (held out): 0.692, 0.552, 0.614, 560 ms. The preset's events carry no commit.
    for (name, range, min_f1, max_latency_ms) in [
        ("tuning", 0..3, 0.64, 510.0),
        ("held out", 3..6, 0.60, 570.0),
    ] {
        let (events, commits) = spindle_score(&runs[range]);
        assert!(
            events.latency_ms.is_none(),
            "{name}: events are logged uncommitted"
        );
        assert!(commits.commits.f1 >= min_f1, "{name} {commits:?}");
        let latency = commits.latency_ms.expect("commits inside spindles");
        assert!(latency.median <= max_latency_ms, "{name} {latency:?}");
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

/// Excerpt 2's first 900 s through `config` after `change` is applied to the samples.
fn modified_excerpt_2(
    config: &neuroloop::config::Config,
    change: impl Fn(&mut [f64], SampleRate),
) -> (SampleRate, Vec<Event>) {
    let path = shared_data("dreams/excerpt2.edf");
    let rec = read_recording(&path, &FileOptions::default()).unwrap();
    let signal = &rec.signals[0];
    let rate = signal.rate;
    let mut samples = signal.samples[..rate.samples_in_s(900.0) as usize].to_vec();
    change(&mut samples, rate);
    let controller = Controller::new(config, rate, 1).unwrap();
    (rate, offline::run_blocks(controller, 1, &samples, || 37))
}

/// Commit times (s) of the detections of `kinds`.
fn commit_times(rate: SampleRate, events: &[Event], kinds: &[EventKind]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Detection(d) if d.committed && kinds.contains(&d.kind) => {
                Some(rate.seconds(d.detected_at))
            }
            _ => None,
        })
        .collect()
}

/// Bad input: a flat channel, a channel stuck at +800 µV for 10 s (300–310 s)
/// and a step change of gain (×0.5) at 300 s. The spindle and slow-oscillation
/// presets must stay silent on the flat channel and, after the clip or the
/// step, detect again once their baselines have moved on (docs/sleep.md).
#[test]
fn spindle_and_so_detectors_recover_from_flat_clipped_and_rescaled_input() {
    let spindle = Preset::SleepSpindle.config();
    let so = Preset::SleepClas.config();
    let mut adaptive_so = so.clone();
    let neuroloop::config::DetectorConfig::SlowOscillation(d) = &mut adaptive_so.detector else {
        panic!("sleep-clas runs the slow-oscillation detector");
    };
    d.negative_threshold_uv = -20.0;
    d.trough_percentile = 30.0;
    let spindle_kinds = [EventKind::Spindle, EventKind::SpindleCommit];
    let so_kinds = [EventKind::SlowOscillation];
    // Measured commits after 400 s, clean / clipped / at gain 0.5: spindle
    // 34 / 34 / 34, so 47 / 47 / 3, so adaptive 60 / 60 / 45.
    let from = |s: f64| {
        move |samples: &mut [f64], rate: SampleRate| {
            let start = rate.samples_in_s(s) as usize;
            samples[start..].iter_mut().for_each(|x| *x *= 0.5)
        }
    };
    let clip = |samples: &mut [f64], rate: SampleRate| {
        let (a, b) = (
            rate.samples_in_s(300.0) as usize,
            rate.samples_in_s(310.0) as usize,
        );
        samples[a..b].iter_mut().for_each(|x| *x = 800.0)
    };
    for (name, config, kinds) in [
        ("spindle", &spindle, &spindle_kinds[..]),
        ("so", &so, &so_kinds[..]),
        ("so adaptive", &adaptive_so, &so_kinds[..]),
    ] {
        let (rate, flat) = modified_excerpt_2(config, |s, _| s.iter_mut().for_each(|x| *x = 0.0));
        assert!(
            flat.is_empty(),
            "{name}: {} events on a flat channel",
            flat.len()
        );
        let count_after = |events: &[Event], t0: f64| {
            commit_times(rate, events, kinds)
                .iter()
                .filter(|&&t| t >= t0)
                .count()
        };
        let (_, clean) = modified_excerpt_2(config, |_, _| {});
        let clean_late = count_after(&clean, 400.0);
        assert!(
            clean_late >= 20,
            "{name}: {clean_late} commits, too few to compare"
        );
        let (_, clipped) = modified_excerpt_2(config, clip);
        let times = commit_times(rate, &clipped, kinds);
        assert!(
            !times.iter().any(|t| (300.0..310.0).contains(t)),
            "{name}: a commit on the clipped segment"
        );
        let late = count_after(&clipped, 400.0);
        assert!(
            late * 10 >= clean_late * 9,
            "{name} clipped: {late} vs {clean_late}"
        );
        let (_, quieter) = modified_excerpt_2(config, from(300.0));
        let late = count_after(&quieter, 400.0);
        if name == "so" {
            // A fixed µV threshold does not follow a gain change (measured 3 vs 47).
            assert!(
                late * 3 < clean_late,
                "{name} at gain 0.5: {late} vs {clean_late}"
            );
        } else {
            assert!(
                late * 10 >= clean_late * 7,
                "{name} at gain 0.5: {late} vs {clean_late}"
            );
        }
    }
}
