//! The simulator's truth is true: measured on the rendered signals with
//! zero-phase FFT filters, independent of how the simulator builds them.

use neuroloop::eval::tables::parse_truth;
use neuroloop::sim::{simulate, truth_to_tsv, Preset, SimSpec, Simulation, TruthEvent};
use neuroloop::time::SampleRate;
use rustfft::{num_complex::Complex, FftPlanner};

fn rate(hz: f64) -> SampleRate {
    SampleRate::new(hz).unwrap()
}

fn end_s(event: &TruthEvent) -> f64 {
    event.onset_s + event.duration_s
}

/// Value of the event's parameter `key`, if present.
fn parameter(event: &TruthEvent, key: &str) -> Option<f64> {
    event
        .parameters
        .iter()
        .find(|(k, _)| k == key)
        .map(|&(_, value)| value)
}

fn spectrum(x: &[f64]) -> Vec<Complex<f64>> {
    let mut buf: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(v, 0.0)).collect();
    FftPlanner::new()
        .plan_fft_forward(buf.len())
        .process(&mut buf);
    buf
}

/// Zero-phase band-pass with raised-cosine edges (each 10 % of the band wide, so
/// the ringing after a step such as clipping dies out quickly); with `analytic`
/// the magnitude of the analytic signal (the envelope) instead of the real signal.
fn band(x: &[f64], rate_hz: f64, low_hz: f64, high_hz: f64, analytic: bool) -> Vec<f64> {
    let n = x.len();
    let edge_hz = 0.1 * (high_hz - low_hz);
    let ramp = |distance_hz: f64| {
        let s = (std::f64::consts::FRAC_PI_2 * (0.5 + distance_hz / edge_hz).clamp(0.0, 1.0)).sin();
        s * s
    };
    let mut buf = spectrum(x);
    for (k, bin) in buf.iter_mut().enumerate() {
        let freq_hz = k.min(n - k) as f64 * rate_hz / n as f64;
        let gain = ramp(freq_hz - low_hz).min(ramp(high_hz - freq_hz));
        let positive = k <= n / 2;
        *bin *= if analytic {
            if positive {
                2.0 * gain
            } else {
                0.0
            }
        } else {
            gain
        };
    }
    FftPlanner::new().plan_fft_inverse(n).process(&mut buf);
    buf.iter()
        .map(|c| if analytic { c.norm() } else { c.re } / n as f64)
        .collect()
}

fn of_type<'a>(
    truth: &'a [TruthEvent],
    trial_type: &'a str,
) -> impl Iterator<Item = &'a TruthEvent> + 'a {
    truth.iter().filter(move |e| e.trial_type == trial_type)
}

/// Mask of samples inside any event of the given types (widened by `margin_s`).
fn mask(
    truth: &[TruthEvent],
    types: &[&str],
    margin_s: f64,
    rate_hz: f64,
    len: usize,
) -> Vec<bool> {
    let mut inside = vec![false; len];
    for event in truth
        .iter()
        .filter(|e| types.contains(&e.trial_type.as_str()))
    {
        let first = (((event.onset_s - margin_s) * rate_hz).max(0.0) as usize).min(len);
        let last = (((end_s(event) + margin_s) * rate_hz).ceil() as usize).min(len);
        inside[first..last].iter_mut().for_each(|m| *m = true);
    }
    inside
}

fn mean_power(x: &[f64], select: impl Fn(usize) -> bool) -> f64 {
    let (sum, count) = x
        .iter()
        .enumerate()
        .filter(|&(i, _)| select(i))
        .fold((0.0, 0usize), |(s, c), (_, v)| (s + v * v, c + 1));
    sum / count.max(1) as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn rodent(seconds: f64, seed: u64, hz: f64, artifacts: bool) -> Simulation {
    let spec = SimSpec {
        artifacts,
        ..SimSpec::new(Preset::RodentRipple, seconds, seed, rate(hz))
    };
    simulate(&spec).unwrap()
}

fn sleep(seconds: f64, seed: u64, hz: f64) -> Simulation {
    simulate(&SimSpec::new(Preset::Sleep, seconds, seed, rate(hz))).unwrap()
}

#[test]
fn same_spec_is_bit_identical_and_seeds_differ() {
    for preset in [Preset::RodentRipple, Preset::Sleep] {
        let spec = SimSpec::new(preset, 40.0, 11, rate(1250.0));
        let first = simulate(&spec).unwrap();
        assert_eq!(
            first,
            simulate(&spec).unwrap(),
            "{preset} not deterministic"
        );
        let other = simulate(&SimSpec { seed: 12, ..spec }).unwrap();
        assert_ne!(
            first.recording.signals[0].samples,
            other.recording.signals[0].samples
        );
        let onsets = |s: &Simulation| s.truth.iter().map(|e| e.onset_s).collect::<Vec<_>>();
        assert_ne!(
            onsets(&first),
            onsets(&other),
            "{preset}: truth ignores the seed"
        );
    }
}

#[test]
fn event_schedule_does_not_depend_on_the_sample_rate() {
    let times = |s: &Simulation| {
        s.truth
            .iter()
            .map(|e| (e.trial_type.clone(), e.onset_s, e.duration_s, e.peak_s))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        times(&rodent(120.0, 5, 1250.0, true)),
        times(&rodent(120.0, 5, 30_000.0, true))
    );
    assert_eq!(
        times(&sleep(300.0, 5, 50.0)),
        times(&sleep(300.0, 5, 250.0))
    );
}

#[test]
fn every_supported_rate_renders_finite_samples() {
    for hz in [1000.0, 1250.0, 2000.0, 30_000.0] {
        let sim = rodent(5.0, 1, hz, true);
        for signal in &sim.recording.signals {
            assert_eq!(signal.samples.len(), (5.0 * hz) as usize);
            assert!(
                signal.samples.iter().all(|v| v.is_finite()),
                "NaN at {hz} Hz"
            );
        }
    }
    for hz in [50.0, 100.0, 200.0, 250.0] {
        let sim = sleep(120.0, 1, hz);
        for signal in &sim.recording.signals {
            assert_eq!(signal.samples.len(), (120.0 * hz) as usize);
            assert!(
                signal.samples.iter().all(|v| v.is_finite()),
                "NaN at {hz} Hz"
            );
        }
    }
}

#[test]
fn truth_round_trips_through_tsv() {
    let sim = sleep(600.0, 2, 100.0);
    let rows = parse_truth(&truth_to_tsv(&sim.truth), "truth.tsv").unwrap();
    assert_eq!(rows.len(), sim.truth.len());
    for (row, event) in rows.iter().zip(&sim.truth) {
        assert_eq!(
            (row.onset_s, row.duration_s, row.peak_s, &row.trial_type),
            (
                event.onset_s,
                event.duration_s,
                event.peak_s,
                &event.trial_type
            )
        );
    }
}

#[test]
fn ripples_carry_ripple_band_power_and_sit_only_in_immobility() {
    let hz = 2000.0;
    // Artifacts off: mains harmonics at 150/200 or 180/240 Hz would otherwise be
    // part of the "background" (they are scored as distractors instead).
    let sim = rodent(300.0, 21, hz, false);
    let truth = &sim.truth;
    let ripples: Vec<&TruthEvent> = of_type(truth, "ripple").collect();
    let immobility: Vec<&TruthEvent> = of_type(truth, "immobility_epoch").collect();
    let immobility_s: f64 = immobility.iter().map(|e| e.duration_s).sum();
    let rate_per_s = ripples.len() as f64 / immobility_s;
    assert!(
        (0.2..=1.5).contains(&rate_per_s),
        "{} ripples in {immobility_s} s",
        ripples.len()
    );
    for ripple in &ripples {
        assert!(
            immobility
                .iter()
                .any(|e| e.onset_s <= ripple.onset_s && end_s(ripple) <= end_s(e)),
            "ripple at {} s outside immobility",
            ripple.onset_s
        );
        assert!((0.02..=0.15).contains(&ripple.duration_s));
        assert!(ripple.onset_s < ripple.peak_s && ripple.peak_s < end_s(ripple));
        let freq_hz = parameter(ripple, "freq_hz").unwrap();
        assert!((150.0..=250.0).contains(&freq_hz));
    }
    let n = sim.recording.signals[0].samples.len();
    let in_ripple = mask(truth, &["ripple"], 0.0, hz, n);
    let near_event = mask(
        truth,
        &["ripple", "emg_burst", "gamma_burst", "clipping"],
        0.2,
        hz,
        n,
    );
    for signal in &sim.recording.signals {
        let ripple_band = band(&signal.samples, hz, 150.0, 250.0, false);
        let inside = mean_power(&ripple_band, |i| in_ripple[i]);
        let outside = mean_power(&ripple_band, |i| !near_event[i]);
        assert!(
            inside > 4.0 * outside,
            "{}: ripple-band power inside {inside:.1} vs outside {outside:.1}",
            signal.label
        );
    }
    // Ripple peak amplitude against the measured background RMS in the band, and
    // the envelope maximum at the stated peak time (strongest channel).
    let envelope = band(&sim.recording.signals[0].samples, hz, 150.0, 250.0, true);
    let background_rms = mean_power(&envelope, |i| !near_event[i]).sqrt() / 2f64.sqrt();
    let mut ratios = Vec::new();
    let mut peak_errors_ms = Vec::new();
    for ripple in &ripples {
        let span = (ripple.onset_s * hz) as usize..(end_s(ripple) * hz) as usize;
        let (argmax, max) =
            span.map(|i| (i, envelope[i]))
                .fold((0, 0.0), |best, x| if x.1 > best.1 { x } else { best });
        ratios.push(max / background_rms);
        peak_errors_ms.push((argmax as f64 / hz - ripple.peak_s).abs() * 1000.0);
    }
    let median_ratio = median(ratios.clone());
    assert!(
        (3.0..=8.0).contains(&median_ratio),
        "median ripple peak / band RMS {median_ratio:.2}"
    );
    let within = ratios.iter().filter(|r| (2.0..=10.0).contains(*r)).count();
    assert!(
        within as f64 >= 0.85 * ratios.len() as f64,
        "ratios {ratios:?}"
    );
    assert!(
        median(peak_errors_ms.clone()) < 10.0,
        "peak errors (ms) {peak_errors_ms:?}"
    );
}

/// Every ripple rides on a sharp wave of a few hundred µV and 40–100 ms, of
/// one polarity per recording, and is visible in the signal as such; a third
/// or so of the ripples follow another within a burst, tens to hundreds of ms
/// later, and truth intervals never overlap.
#[test]
fn ripples_ride_on_sharp_waves_and_come_in_bursts() {
    let hz = 1250.0;
    let mut polarities = Vec::new();
    for seed in [3, 8] {
        let sim = rodent(600.0, seed, hz, false);
        let truth = &sim.truth;
        let ripples: Vec<&TruthEvent> = of_type(truth, "ripple").collect();
        let sharp_waves: Vec<&TruthEvent> = of_type(truth, "sharp_wave").collect();
        assert_eq!(ripples.len(), sharp_waves.len());
        let polarity = parameter(sharp_waves[0], "polarity").unwrap();
        polarities.push(polarity);
        // The channel mean, low-passed: each sharp wave's deflection from the
        // 100 ms before it, against its stated amplitude (gains 0.75–1).
        let n = sim.recording.signals[0].samples.len();
        let mean: Vec<f64> = (0..n)
            .map(|i| {
                sim.recording
                    .signals
                    .iter()
                    .map(|s| s.samples[i])
                    .sum::<f64>()
                    / 4.0
            })
            .collect();
        let slow = band(&mean, hz, 0.5, 40.0, false);
        let mut ratios = Vec::new();
        for (ripple, wave) in ripples.iter().zip(&sharp_waves) {
            assert!((wave.peak_s - ripple.peak_s).abs() <= 0.0101);
            assert!((0.04..=0.1).contains(&wave.duration_s));
            let amplitude_uv = parameter(wave, "amplitude_uv").unwrap();
            assert!((200.0..=700.0).contains(&amplitude_uv));
            assert_eq!(parameter(wave, "polarity"), Some(polarity));
            let at = |t: f64| (t * hz) as usize;
            let before = &slow[at(wave.onset_s - 0.1)..at(wave.onset_s)];
            let baseline = before.iter().sum::<f64>() / before.len() as f64;
            ratios.push(polarity * (slow[at(wave.peak_s)] - baseline) / amplitude_uv);
        }
        let median_ratio = median(ratios.clone());
        assert!(
            (0.6..=1.1).contains(&median_ratio),
            "seed {seed}: median deflection / amplitude {median_ratio:.2}"
        );
        let right_sign = ratios.iter().filter(|&&r| r > 0.0).count();
        assert!(right_sign as f64 >= 0.9 * ratios.len() as f64, "{ratios:?}");
        // Bursts: later members follow the previous ripple's peak by 50–350 ms.
        let mut followers = 0;
        for (previous, ripple) in ripples.iter().zip(ripples.iter().skip(1)) {
            assert!(
                end_s(previous) <= ripple.onset_s,
                "overlap at {}",
                ripple.onset_s
            );
            let position = parameter(ripple, "burst_position").unwrap();
            let interval_s = ripple.peak_s - previous.peak_s;
            if position > 1.0 && interval_s < 1.0 {
                followers += 1;
                assert!((0.05..=0.35).contains(&interval_s), "{interval_s} s");
            }
        }
        let share = followers as f64 / ripples.len() as f64;
        assert!(
            (0.2..=0.45).contains(&share),
            "seed {seed}: {share:.2} in bursts"
        );
    }
    assert_ne!(polarities[0], polarities[1], "seeds give both polarities");
}

#[test]
fn distractors_are_in_the_truth_and_in_the_signal() {
    let hz = 2000.0;
    let sim = rodent(600.0, 4, hz, true);
    let truth = &sim.truth;
    for trial_type in [
        "theta_epoch",
        "immobility_epoch",
        "emg_burst",
        "gamma_burst",
        "mains",
        "clipping",
        "sharp_wave",
    ] {
        assert!(
            of_type(truth, trial_type).count() > 0,
            "no {trial_type} in 10 min"
        );
    }
    let signal = &sim.recording.signals[1].samples;
    for clip in of_type(truth, "clipping") {
        let rail = parameter(clip, "rail_uv").unwrap();
        let first = (clip.onset_s * hz).ceil() as usize;
        let last = (end_s(clip) * hz) as usize;
        assert!(
            signal[first..last].iter().all(|&v| v == rail),
            "clipping at {}",
            clip.onset_s
        );
    }
    // EMG bursts are strong in the ripple band; gamma bursts in 90–140 Hz.
    let n = signal.len();
    let near_event = mask(truth, &["ripple", "emg_burst", "gamma_burst"], 0.2, hz, n);
    let clipped = mask(truth, &["clipping"], 1.0, hz, n);
    let quiet: Vec<bool> = near_event
        .iter()
        .zip(&clipped)
        .map(|(e, c)| *e || *c)
        .collect();
    let ripple_band = band(signal, hz, 150.0, 250.0, false);
    let emg = mask(truth, &["emg_burst"], 0.0, hz, n);
    let emg_power = mean_power(&ripple_band, |i| emg[i] && !clipped[i]);
    assert!(emg_power > 3.0 * mean_power(&ripple_band, |i| !quiet[i]));
    let gamma_band = band(signal, hz, 90.0, 140.0, false);
    let gamma = mask(truth, &["gamma_burst"], 0.0, hz, n);
    let (gamma_inside, gamma_outside) = (
        mean_power(&gamma_band, |i| gamma[i] && !clipped[i]),
        mean_power(&gamma_band, |i| !quiet[i]),
    );
    // Bursts peak at 3–8x the background's band RMS under a waxing-waning
    // envelope: on average about 3x the quiet band power, counting the noise.
    assert!(
        gamma_inside > 2.0 * gamma_outside,
        "gamma-band power {gamma_inside} vs {gamma_outside}"
    );
    let mains = of_type(truth, "mains").next().unwrap();
    let mains_hz = parameter(mains, "freq_hz").unwrap();
    assert!(mains_hz == 50.0 || mains_hz == 60.0);
}

#[test]
fn rodent_background_is_roughly_one_over_f() {
    let hz = 2000.0;
    let sim = rodent(120.0, 8, hz, false);
    let x = &sim.recording.signals[2].samples;
    // Averaged periodogram over 1-s segments, log-log slope fitted over 260–600 Hz
    // (above theta, gamma and ripples, below the white floor near Nyquist).
    let segment = 2000;
    let mut psd = vec![0.0; segment / 2];
    for chunk in x.chunks_exact(segment) {
        for (p, c) in psd.iter_mut().zip(spectrum(chunk)) {
            *p += c.norm_sqr();
        }
    }
    let points: Vec<(f64, f64)> = (260..=600)
        .map(|f| ((f as f64).ln(), psd[f].ln()))
        .collect();
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / points.len() as f64;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let slope = points
        .iter()
        .map(|p| (p.0 - mean_x) * (p.1 - mean_y))
        .sum::<f64>()
        / points.iter().map(|p| (p.0 - mean_x).powi(2)).sum::<f64>();
    assert!((-2.1..=-1.1).contains(&slope), "slope {slope}");
    let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt();
    assert!((50.0..=500.0).contains(&rms), "LFP RMS {rms} µV");
}

#[test]
fn ten_minutes_of_sleep_always_hold_n2_n3_and_their_events() {
    for seed in 0..6 {
        let sim = sleep(600.0, seed, 100.0);
        let stages: Vec<f64> = of_type(&sim.truth, "sleep_stage")
            .map(|e| parameter(e, "stage").unwrap())
            .collect();
        assert_eq!(stages.len(), 20);
        assert!(
            stages.contains(&2.0) && stages.contains(&1.0),
            "seed {seed}: stages {stages:?}"
        );
        for trial_type in ["spindle", "slow_oscillation", "k_complex"] {
            assert!(
                of_type(&sim.truth, trial_type).count() > 0,
                "seed {seed}: no {trial_type}"
            );
        }
    }
}

#[test]
fn spindles_carry_sigma_power() {
    let hz = 200.0;
    let sim = sleep(1800.0, 3, hz);
    let truth = &sim.truth;
    let n = sim.recording.signals[0].samples.len();
    let in_spindle = mask(truth, &["spindle"], 0.0, hz, n);
    let excluded = mask(
        truth,
        &["spindle", "eye_artifact", "movement_artifact"],
        0.5,
        hz,
        n,
    );
    // Outside: the rest of N2 and N3 epochs.
    let mut in_nrem = vec![false; n];
    for epoch in of_type(truth, "sleep_stage")
        .filter(|e| matches!(parameter(e, "stage"), Some(s) if s <= 2.0))
    {
        let first = (epoch.onset_s * hz) as usize;
        let last = ((end_s(epoch) * hz) as usize).min(n);
        in_nrem[first..last].iter_mut().for_each(|m| *m = true);
    }
    for signal in &sim.recording.signals {
        let sigma = band(&signal.samples, hz, 11.0, 16.0, false);
        let inside = mean_power(&sigma, |i| in_spindle[i]);
        let outside = mean_power(&sigma, |i| in_nrem[i] && !excluded[i]);
        assert!(
            inside > 4.0 * outside,
            "{}: sigma power inside {inside:.1} vs outside {outside:.1}",
            signal.label
        );
    }
    for spindle in of_type(truth, "spindle") {
        assert!((0.5..=2.0).contains(&spindle.duration_s));
        assert!((11.0..=16.0).contains(&parameter(spindle, "freq_hz").unwrap()));
        let ptp = 2.0 * parameter(spindle, "amplitude_uv").unwrap();
        assert!((20.0..=60.0).contains(&ptp));
    }
}

#[test]
fn slow_oscillation_troughs_and_peaks_are_at_the_truth_times() {
    let hz = 100.0;
    let sim = sleep(1800.0, 6, hz);
    let slow = band(&sim.recording.signals[0].samples, hz, 0.2, 4.0, false);
    let mut trough_errors_ms = Vec::new();
    let mut peak_errors_ms = Vec::new();
    let extreme_near = |time_s: f64, window_s: f64, sign: f64| {
        let first = ((time_s - window_s) * hz) as usize;
        let last = ((time_s + window_s) * hz) as usize;
        let best = (first..=last)
            .max_by(|&a, &b| (sign * slow[a]).total_cmp(&(sign * slow[b])))
            .unwrap_or(first);
        (best as f64 / hz - time_s).abs() * 1000.0
    };
    for so in of_type(&sim.truth, "slow_oscillation") {
        let trough_s = parameter(so, "trough_s").unwrap();
        let ptp = parameter(so, "ptp_uv").unwrap();
        assert!((75.0..=250.0).contains(&ptp) && (0.5..=1.5).contains(&(1.0 / so.duration_s)));
        assert!(trough_s < so.peak_s);
        trough_errors_ms.push(extreme_near(trough_s, 0.2 * so.duration_s, -1.0));
        peak_errors_ms.push(extreme_near(so.peak_s, 0.2 * so.duration_s, 1.0));
    }
    assert!(
        trough_errors_ms.len() > 50,
        "only {} slow oscillations",
        trough_errors_ms.len()
    );
    let (trough_median, peak_median) = (
        median(trough_errors_ms.clone()),
        median(peak_errors_ms.clone()),
    );
    // A uniformly random extreme in the ±0.2 T window would be ~100 ms off on average.
    assert!(
        trough_median < 40.0,
        "median trough error {trough_median} ms"
    );
    assert!(peak_median < 40.0, "median peak error {peak_median} ms");
}
