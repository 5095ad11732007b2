//! The `rodent-ripple` preset: CA1 LFP with theta/immobility epochs, sharp-wave
//! ripples during immobility, and distractors (EMG bursts, fast-gamma bursts,
//! mains, clipping).

use std::f64::consts::{PI, TAU};

use super::layers::Layers;
use super::noise::{representable, BackgroundNoise, BackgroundSpec};
use super::waves::{
    add_burst, add_noise_burst, channel_gains, epoch_weight, BurstEnvelope, Occupied, SmoothPlateau,
};
use super::{event_on_all, Plan, SimSpec, TruthEvent, STREAM_NOISE, STREAM_SCHEDULE};
use crate::rng::Rng;

/// Band in which ripple amplitude is stated relative to the background.
pub const RIPPLE_BAND_HZ: (f64, f64) = (150.0, 250.0);
/// Band of the fast-gamma distractor bursts.
const FAST_GAMMA_BAND_HZ: (f64, f64) = (90.0, 140.0);
/// Gap kept between a ripple and any distractor (s).
const RIPPLE_CLEARANCE_S: f64 = 0.1;

#[derive(Clone, Copy)]
struct Epoch {
    start_s: f64,
    end_s: f64,
    running: bool,
}

/// Schedule the background, the layers and the truth of `samples` samples per channel.
pub(super) fn plan(spec: &SimSpec, samples: usize) -> Plan {
    let rate = spec.rate;
    let duration_s = samples as f64 / rate.hz();
    let mut schedule = Rng::stream(spec.seed, STREAM_SCHEDULE);
    let mut noise_rng = Rng::stream(spec.seed, STREAM_NOISE);
    let mut truth = Vec::new();

    let background_spec = BackgroundSpec {
        alpha_per_channel: (0..spec.channels)
            .map(|_| schedule.range(1.4, 1.8))
            .collect(),
        corner_low_hz: 0.5,
        corner_high_hz: 5000.0,
        shared_fraction: 0.6,
        reference_band_hz: (1.0, 100.0),
        reference_rms_uv_per_channel: (0..spec.channels)
            .map(|_| schedule.range(80.0, 130.0))
            .collect(),
    };
    let background = BackgroundNoise::new(&background_spec, rate, samples, &mut noise_rng);
    let ripple_band_rms: Vec<f64> = (0..spec.channels)
        .map(|c| background.band_rms_uv(c, RIPPLE_BAND_HZ.0, RIPPLE_BAND_HZ.1))
        .collect();
    let mean_ripple_band_rms = ripple_band_rms.iter().sum::<f64>() / spec.channels as f64;
    let mean_gamma_band_rms = (0..spec.channels)
        .map(|c| background.band_rms_uv(c, FAST_GAMMA_BAND_HZ.0, FAST_GAMMA_BAND_HZ.1))
        .sum::<f64>()
        / spec.channels as f64;
    let mut layers = Layers::new(rate, samples, spec.channels);

    let ripple_style = RippleStyle {
        sharp_wave_sign: if schedule.chance(0.7) { -1.0 } else { 1.0 },
        event_snr: spec.event_snr,
    };
    let epochs = schedule_epochs(&mut schedule, duration_s);
    for epoch in &epochs {
        if epoch.running {
            add_theta_epoch(&mut layers, epoch, &mut schedule, &mut truth);
        } else {
            truth.push(event_on_all(
                "immobility_epoch",
                epoch.start_s,
                epoch.end_s - epoch.start_s,
                0.5 * (epoch.start_s + epoch.end_s),
                &[],
            ));
        }
    }

    let mut distractors = Occupied::default();
    let mut clippings = Vec::new();
    if spec.artifacts {
        add_mains(&mut layers, duration_s, &mut schedule, &mut truth);
        for epoch in &epochs {
            let (emg_per_min, gamma_per_min, clip_per_min) = if epoch.running {
                (1.0, 12.0, 0.3)
            } else {
                (3.0, 2.0, 0.5)
            };
            add_emg_bursts(
                &mut layers,
                epoch,
                emg_per_min,
                mean_ripple_band_rms,
                &mut schedule,
                &mut noise_rng,
                &mut distractors,
                &mut truth,
            );
            add_gamma_bursts(
                &mut layers,
                epoch,
                gamma_per_min,
                mean_gamma_band_rms,
                &mut schedule,
                &mut distractors,
                &mut truth,
            );
            clippings.extend(schedule_clipping(
                epoch,
                clip_per_min,
                &mut schedule,
                &mut distractors,
                &mut truth,
            ));
        }
    }
    for epoch in epochs.iter().filter(|e| !e.running) {
        add_ripples(
            &mut layers,
            epoch,
            &ripple_style,
            &ripple_band_rms,
            &mut schedule,
            &distractors,
            &mut truth,
        );
    }
    // Clipping is last: the rail replaces whatever the signal was.
    for (start_s, end_s, rail_uv) in clippings {
        layers.set(start_s, end_s, rail_uv);
    }
    Plan {
        background,
        layers,
        truth,
    }
}

/// Alternating running (theta) and immobility epochs of tens of seconds.
fn schedule_epochs(schedule: &mut Rng, duration_s: f64) -> Vec<Epoch> {
    let mut epochs = Vec::new();
    let mut running = schedule.chance(0.5);
    let mut start_s = 0.0;
    while start_s < duration_s {
        let length_s = if running {
            schedule.range(10.0, 30.0)
        } else {
            schedule.range(15.0, 45.0)
        };
        let end_s = (start_s + length_s).min(duration_s);
        epochs.push(Epoch {
            start_s,
            end_s,
            running,
        });
        start_s = end_s;
        running = !running;
    }
    epochs
}

/// Theta (6–10 Hz, slightly asymmetric, drifting frequency) with theta-nested
/// slow (30–50 Hz) and fast (60–100 Hz) gamma at opposite theta phases.
fn add_theta_epoch(
    layers: &mut Layers,
    epoch: &Epoch,
    schedule: &mut Rng,
    truth: &mut Vec<TruthEvent>,
) {
    let theta_hz = schedule.range(6.5, 9.0);
    let theta_uv = schedule.range(150.0, 300.0);
    let drift_hz = schedule.range(0.05, 0.2);
    let drift_phase = schedule.range(0.0, TAU);
    let slow_gamma_hz = schedule.range(30.0, 50.0);
    let fast_gamma_hz = schedule.range(60.0, 100.0);
    let mut theta_phase = schedule.range(0.0, TAU);
    let gains: Vec<f64> = (0..layers.channels())
        .map(|_| schedule.range(0.8, 1.2))
        .collect();
    truth.push(event_on_all(
        "theta_epoch",
        epoch.start_s,
        epoch.end_s - epoch.start_s,
        0.5 * (epoch.start_s + epoch.end_s),
        &[("freq_hz", theta_hz), ("amplitude_uv", theta_uv)],
    ));
    let (rate, epoch) = (layers.rate(), *epoch);
    layers.add(&gains, epoch.start_s, epoch.end_s, move |t| {
        let weight = epoch_weight(t, epoch.start_s, epoch.end_s, 1.0);
        let instantaneous_hz = theta_hz + 0.5 * (TAU * drift_hz * t + drift_phase).sin();
        theta_phase = (theta_phase + TAU * instantaneous_hz / rate.hz()) % TAU;
        let theta = theta_phase.sin() + 0.2 * (2.0 * theta_phase).sin();
        let slow_gamma = 0.12 * 0.5 * (1.0 - theta_phase.cos()) * (TAU * slow_gamma_hz * t).sin();
        let fast_gamma = 0.06 * 0.5 * (1.0 + theta_phase.cos()) * (TAU * fast_gamma_hz * t).sin();
        weight * theta_uv * (theta + slow_gamma + fast_gamma)
    });
}

/// How sharp-wave ripples come: bursts of 1–3 ripples, each on its own sharp wave.
struct RippleStyle {
    /// Sign of every sharp wave in this recording: negative in and below the
    /// pyramidal layer, positive above it (the electrode's depth decides).
    sharp_wave_sign: f64,
    event_snr: f64,
}

/// Another ripple follows the previous one of its burst with this probability...
const BURST_CONTINUE: f64 = 0.4;
/// ... up to this many ripples per burst.
const MAX_BURST: u32 = 3;

/// Bursts of sharp-wave ripples at 0.25–0.7 per s of immobility, clear of
/// distractors. Within a burst the next ripple's taper starts 10–150 ms after
/// the previous one is back under the background (peaks ~0.1–0.25 s apart).
#[allow(clippy::too_many_arguments)]
fn add_ripples(
    layers: &mut Layers,
    epoch: &Epoch,
    style: &RippleStyle,
    ripple_band_rms: &[f64],
    schedule: &mut Rng,
    distractors: &Occupied,
    truth: &mut Vec<TruthEvent>,
) {
    const EDGE_CLEARANCE_S: f64 = 0.5;
    let bursts_per_s = schedule.range(0.25, 0.7);
    let mut onset_s = epoch.start_s + EDGE_CLEARANCE_S + schedule.exponential(1.0 / bursts_per_s);
    let mut burst_position = 1;
    loop {
        // The drawn duration (20–150 ms) is the ripple as an expert marks it:
        // where its amplitude on the strongest channel exceeds that channel's
        // background RMS in the ripple band (the half-amplitude interval for
        // ripples weaker than 2x the RMS). The taper's support is wider; it is
        // kept in the truth parameters.
        let duration_s = (0.06 * (0.35 * schedule.gaussian()).exp()).clamp(0.02, 0.15);
        let peak_fraction = schedule.range(0.35, 0.65);
        let freq_hz = schedule.range(155.0, 245.0);
        let phase = schedule.range(0.0, TAU);
        let snr = schedule.log_range(3.0, 8.0) * style.event_snr;
        let gains = channel_gains(schedule, layers.channels(), 0.75);
        let sharp_wave_s = schedule.range(0.04, 0.1);
        let sharp_wave_jitter_s = schedule.range(-0.01, 0.01);
        let sharp_wave_uv = schedule.log_range(200.0, 700.0);
        let visible_fraction = BurstEnvelope::width_fraction_above((1.0 / snr).min(0.5));
        let support_s = duration_s / visible_fraction;
        let end_s = onset_s + support_s;
        if end_s > epoch.end_s - EDGE_CLEARANCE_S {
            break;
        }
        let peak_s = onset_s + support_s * peak_fraction;
        let visible_onset_s = peak_s - visible_fraction * (peak_s - onset_s);
        if !distractors.overlaps(onset_s, end_s, RIPPLE_CLEARANCE_S) {
            // Each channel's ripple is `snr` times its own ripple-band RMS, scaled by its gain.
            let amplitudes: Vec<f64> = gains
                .iter()
                .zip(ripple_band_rms)
                .map(|(gain, rms)| gain * snr * rms)
                .collect();
            let envelope = BurstEnvelope {
                onset_s,
                peak_s,
                end_s,
            };
            add_burst(layers, &amplitudes, envelope, freq_hz, phase, 1.0);
            let strongest = amplitudes.iter().cloned().fold(0.0, f64::max);
            truth.push(event_on_all(
                "ripple",
                visible_onset_s,
                duration_s,
                peak_s,
                &[
                    ("freq_hz", freq_hz),
                    ("amplitude_uv", strongest),
                    ("snr", snr),
                    ("support_onset_s", onset_s),
                    ("support_duration_s", support_s),
                    ("burst_position", f64::from(burst_position)),
                ],
            ));
            // Rises in 40 % of its length, decays in the rest.
            let sharp_wave = SmoothPlateau {
                onset_s: peak_s + sharp_wave_jitter_s - 0.4 * sharp_wave_s,
                rise_s: 0.4 * sharp_wave_s,
                hold_s: 0.0,
                fall_s: 0.6 * sharp_wave_s,
            };
            let signed_uv = style.sharp_wave_sign * sharp_wave_uv;
            layers.add(&gains, sharp_wave.onset_s, sharp_wave.end_s(), move |t| {
                signed_uv * sharp_wave.at(t)
            });
            truth.push(event_on_all(
                "sharp_wave",
                sharp_wave.onset_s,
                sharp_wave_s,
                sharp_wave.onset_s + sharp_wave.rise_s,
                &[
                    ("amplitude_uv", sharp_wave_uv),
                    ("polarity", style.sharp_wave_sign),
                ],
            ));
        }
        let visible_end_s = visible_onset_s + duration_s;
        onset_s = if burst_position < MAX_BURST && schedule.chance(BURST_CONTINUE) {
            burst_position += 1;
            visible_end_s + schedule.range(0.01, 0.15)
        } else {
            burst_position = 1;
            end_s + 0.05 + schedule.exponential(1.0 / bursts_per_s)
        };
    }
}

/// Mains interference (50 or 60 Hz) with odd-dominant harmonics below Nyquist,
/// common to all channels, over the whole recording.
fn add_mains(
    layers: &mut Layers,
    duration_s: f64,
    schedule: &mut Rng,
    truth: &mut Vec<TruthEvent>,
) {
    const HARMONIC_WEIGHTS: [f64; 5] = [1.0, 0.15, 0.4, 0.1, 0.2];
    let rate = layers.rate();
    let freq_hz = if schedule.chance(0.5) { 50.0 } else { 60.0 };
    let amplitude_uv = schedule.range(5.0, 30.0);
    let phases: Vec<f64> = HARMONIC_WEIGHTS
        .iter()
        .map(|_| schedule.range(0.0, TAU))
        .collect();
    // Rotating phasors (cos, sin) per harmonic: one complex multiply per sample instead of a sin().
    let mut harmonics: Vec<(f64, f64, f64, f64, f64)> = HARMONIC_WEIGHTS
        .iter()
        .zip(&phases)
        .enumerate()
        .map(|(k, (&weight, &phase))| (freq_hz * (k + 1) as f64, weight, phase))
        .filter(|&(harmonic_hz, _, _)| representable(harmonic_hz, rate))
        .map(|(harmonic_hz, weight, phase)| {
            let step = TAU * harmonic_hz / rate.hz();
            (weight, phase.cos(), phase.sin(), step.cos(), step.sin())
        })
        .collect();
    let harmonic_count = harmonics.len();
    // Common to all channels: gain 1.
    let gains = vec![1.0; layers.channels()];
    let mut index = 0usize;
    layers.add(&gains, 0.0, duration_s, move |_| {
        let mut value = 0.0;
        for (weight, re, im, step_re, step_im) in harmonics.iter_mut() {
            value += *weight * *im;
            let next_re = *re * *step_re - *im * *step_im;
            *im = *re * *step_im + *im * *step_re;
            *re = next_re;
        }
        if index % 4096 == 4095 {
            // Renormalise so rounding cannot make the phasors grow or shrink.
            for (_, re, im, _, _) in harmonics.iter_mut() {
                let norm = (*re * *re + *im * *im).sqrt();
                *re /= norm;
                *im /= norm;
            }
        }
        index += 1;
        amplitude_uv * value
    });
    truth.push(event_on_all(
        "mains",
        0.0,
        duration_s,
        0.5 * duration_s,
        &[
            ("freq_hz", freq_hz),
            ("amplitude_uv", amplitude_uv),
            ("harmonics", harmonic_count as f64),
        ],
    ));
}

/// EMG / chewing bursts: broadband (100–600 Hz) noise common to all channels,
/// 0.2–2 s, some modulated at a 4–7 Hz chewing rhythm.
#[allow(clippy::too_many_arguments)]
fn add_emg_bursts(
    layers: &mut Layers,
    epoch: &Epoch,
    per_min: f64,
    ripple_band_rms: f64,
    schedule: &mut Rng,
    noise_rng: &mut Rng,
    distractors: &mut Occupied,
    truth: &mut Vec<TruthEvent>,
) {
    let mut onset_s = epoch.start_s + schedule.exponential(60.0 / per_min);
    loop {
        let duration_s = schedule.range(0.2, 2.0);
        if onset_s + duration_s > epoch.end_s {
            break;
        }
        // About 30 % of this noise's RMS lies in the ripple band, so a full-band
        // RMS of 10–30x the background's ripple-band RMS is ~3–9x it in band.
        let rms_uv = schedule.range(10.0, 30.0) * ripple_band_rms;
        let chew_hz = if schedule.chance(0.5) {
            schedule.range(4.0, 7.0)
        } else {
            0.0
        };
        let gains = channel_gains(schedule, layers.channels(), 0.8);
        let plateau = SmoothPlateau {
            onset_s,
            rise_s: 0.05,
            hold_s: duration_s - 0.1,
            fall_s: 0.05,
        };
        add_noise_burst(
            layers,
            &gains,
            onset_s,
            onset_s + duration_s,
            noise_rng,
            (100.0, 600.0),
            move |t| {
                let chewing = if chew_hz > 0.0 {
                    0.5 * (1.0 - (TAU * chew_hz * (t - onset_s)).cos())
                } else {
                    1.0
                };
                rms_uv * plateau.at(t) * chewing
            },
        );
        distractors.add(onset_s, onset_s + duration_s);
        truth.push(event_on_all(
            "emg_burst",
            onset_s,
            duration_s,
            onset_s + 0.5 * duration_s,
            &[("rms_uv", rms_uv), ("chew_hz", chew_hz)],
        ));
        onset_s += duration_s + schedule.exponential(60.0 / per_min);
    }
}

/// Fast-gamma bursts (90–140 Hz, 50–200 ms), as far above the background in
/// their band as ripples are in theirs.
#[allow(clippy::too_many_arguments)]
fn add_gamma_bursts(
    layers: &mut Layers,
    epoch: &Epoch,
    per_min: f64,
    gamma_band_rms: f64,
    schedule: &mut Rng,
    distractors: &mut Occupied,
    truth: &mut Vec<TruthEvent>,
) {
    let mut onset_s = epoch.start_s + schedule.exponential(60.0 / per_min);
    loop {
        let duration_s = schedule.range(0.05, 0.2);
        if onset_s + duration_s > epoch.end_s {
            break;
        }
        let peak_s = onset_s + duration_s * schedule.range(0.35, 0.65);
        let freq_hz = schedule.range(FAST_GAMMA_BAND_HZ.0, FAST_GAMMA_BAND_HZ.1);
        let amplitude_uv = schedule.log_range(3.0, 8.0) * gamma_band_rms;
        let phase = schedule.range(0.0, PI);
        let gains = channel_gains(schedule, layers.channels(), 0.7);
        let envelope = BurstEnvelope {
            onset_s,
            peak_s,
            end_s: onset_s + duration_s,
        };
        add_burst(layers, &gains, envelope, freq_hz, phase, amplitude_uv);
        distractors.add(onset_s, onset_s + duration_s);
        truth.push(event_on_all(
            "gamma_burst",
            onset_s,
            duration_s,
            peak_s,
            &[("freq_hz", freq_hz), ("amplitude_uv", amplitude_uv)],
        ));
        onset_s += duration_s + schedule.exponential(60.0 / per_min);
    }
}

/// Clipping intervals (50–500 ms at ±5 mV); applied after everything else.
fn schedule_clipping(
    epoch: &Epoch,
    per_min: f64,
    schedule: &mut Rng,
    distractors: &mut Occupied,
    truth: &mut Vec<TruthEvent>,
) -> Vec<(f64, f64, f64)> {
    const RAIL_UV: f64 = 5000.0;
    let mut clippings = Vec::new();
    let mut onset_s = epoch.start_s + schedule.exponential(60.0 / per_min);
    loop {
        let duration_s = schedule.range(0.05, 0.5);
        if onset_s + duration_s > epoch.end_s {
            break;
        }
        let rail_uv = if schedule.chance(0.5) {
            RAIL_UV
        } else {
            -RAIL_UV
        };
        clippings.push((onset_s, onset_s + duration_s, rail_uv));
        distractors.add(onset_s, onset_s + duration_s);
        truth.push(event_on_all(
            "clipping",
            onset_s,
            duration_s,
            onset_s + 0.5 * duration_s,
            &[("rail_uv", rail_uv)],
        ));
        onset_s += duration_s + schedule.exponential(60.0 / per_min);
    }
    clippings
}
