//! The `sleep` preset: two central EEG derivations over a hypnogram of 30-s
//! epochs (wake → N1 → N2 → N3 → N2 → REM cycles) with spindles, K-complexes,
//! slow oscillations, REM sawtooth waves and eye movements, plus eye and
//! movement artifacts. Every steady tone is dropped when it is not comfortably
//! below Nyquist, so nothing aliases at 50 Hz.

use std::f64::consts::TAU;

use super::layers::Layers;
use super::noise::{representable, BackgroundNoise, BackgroundSpec};
use super::waves::{
    add_burst, add_noise_burst, channel_gains, epoch_weight, BurstEnvelope, Occupied, SmoothPlateau,
};
use super::{event_on_all, Plan, SimSpec, TruthEvent, STREAM_NOISE, STREAM_SCHEDULE};
use crate::rng::Rng;

/// Length of a scoring epoch (s).
pub const EPOCH_S: f64 = 30.0;
/// Gap kept between spindles/K-complexes and artifacts or each other (s).
const EVENT_CLEARANCE_S: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Wake,
    N1,
    N2,
    N3,
    Rem,
}

impl Stage {
    /// R&K code used in the truth table: 5 wake, 4 REM, 3 N1, 2 N2, 1 N3.
    fn code(self) -> f64 {
        match self {
            Stage::Wake => 5.0,
            Stage::Rem => 4.0,
            Stage::N1 => 3.0,
            Stage::N2 => 2.0,
            Stage::N3 => 1.0,
        }
    }

    /// Background level relative to wake: deep sleep is higher-voltage, REM lower.
    fn background_gain(self) -> f64 {
        match self {
            Stage::Wake => 1.0,
            Stage::N1 => 0.9,
            Stage::N2 => 1.2,
            Stage::N3 => 1.6,
            Stage::Rem => 0.7,
        }
    }
}

/// Consecutive epochs of one stage.
#[derive(Clone, Copy)]
struct StageRun {
    stage: Stage,
    start_s: f64,
    end_s: f64,
}

/// Schedule the background, the layers and the truth of `samples` samples per channel.
pub(super) fn plan(spec: &SimSpec, samples: usize) -> Plan {
    let rate = spec.rate;
    let duration_s = samples as f64 / rate.hz();
    let mut schedule = Rng::stream(spec.seed, STREAM_SCHEDULE);
    let mut noise_rng = Rng::stream(spec.seed, STREAM_NOISE);
    let mut truth = Vec::new();

    let epochs = hypnogram(&mut schedule, duration_s);
    for (k, stage) in epochs.iter().enumerate() {
        let onset_s = k as f64 * EPOCH_S;
        let length_s = EPOCH_S.min(duration_s - onset_s);
        truth.push(event_on_all(
            "sleep_stage",
            onset_s,
            length_s,
            onset_s + 0.5 * length_s,
            &[("stage", stage.code())],
        ));
    }
    let runs = stage_runs(&epochs, duration_s);

    let background_spec = BackgroundSpec {
        // Sleep EEG falls about as 1/f^2, steeper than waking LFP.
        alpha_per_channel: (0..spec.channels)
            .map(|_| schedule.range(1.8, 2.0))
            .collect(),
        corner_low_hz: 0.3,
        corner_high_hz: 100.0,
        shared_fraction: 0.7,
        // A band every allowed rate can represent, so the level is rate-independent.
        reference_band_hz: (0.5, 20.0),
        reference_rms_uv_per_channel: (0..spec.channels)
            .map(|_| schedule.range(12.0, 18.0))
            .collect(),
    };
    let background = BackgroundNoise::new(&background_spec, rate, samples, &mut noise_rng);
    let mut layers = Layers::new(rate, samples, spec.channels);
    scale_by_stage(&mut layers, duration_s, epochs);

    let mut taken = Occupied::default();
    if spec.artifacts {
        for run in &runs {
            add_artifacts(
                &mut layers,
                run,
                &mut schedule,
                &mut noise_rng,
                &mut taken,
                &mut truth,
            );
        }
    }
    for run in &runs {
        match run.stage {
            Stage::Wake => add_wake_rhythms(&mut layers, run, &mut schedule, &mut noise_rng),
            Stage::N1 => add_n1_rhythms(&mut layers, run, &mut schedule),
            Stage::N2 => add_n2_events(
                &mut layers,
                run,
                spec.event_snr,
                &mut schedule,
                &mut taken,
                &mut truth,
            ),
            Stage::N3 => add_slow_oscillations(
                &mut layers,
                run,
                spec.event_snr,
                &mut schedule,
                &mut taken,
                &mut truth,
            ),
            Stage::Rem => add_rem_events(&mut layers, run, &mut schedule, &mut truth),
        }
    }
    Plan {
        background,
        layers,
        truth,
    }
}

/// Stages of consecutive 30-s epochs covering `duration_s`: a first cycle
/// reaching N3 within 8 epochs (so a 10-min run holds N2 and N3), then cycles
/// of N2 → N3 → N2 → REM with brief awakenings.
fn hypnogram(schedule: &mut Rng, duration_s: f64) -> Vec<Stage> {
    let epoch_count = (duration_s / EPOCH_S).ceil() as usize;
    let mut stages = Vec::with_capacity(epoch_count + 16);
    let push = |stages: &mut Vec<Stage>, stage: Stage, count: u32| {
        stages.extend(std::iter::repeat(stage).take(count as usize));
    };
    push(&mut stages, Stage::Wake, schedule.int_in(1, 2));
    push(&mut stages, Stage::N1, 1);
    push(&mut stages, Stage::N2, schedule.int_in(2, 4));
    push(&mut stages, Stage::N3, schedule.int_in(3, 6));
    while stages.len() < epoch_count {
        push(&mut stages, Stage::N2, schedule.int_in(1, 3));
        push(&mut stages, Stage::Rem, schedule.int_in(2, 4));
        push(&mut stages, Stage::Wake, schedule.int_in(0, 1));
        push(&mut stages, Stage::N1, schedule.int_in(0, 1));
        push(&mut stages, Stage::N2, schedule.int_in(2, 4));
        push(&mut stages, Stage::N3, schedule.int_in(2, 5));
    }
    stages.truncate(epoch_count);
    stages
}

fn stage_runs(epochs: &[Stage], duration_s: f64) -> Vec<StageRun> {
    let mut runs: Vec<StageRun> = Vec::new();
    for (k, &stage) in epochs.iter().enumerate() {
        let start_s = k as f64 * EPOCH_S;
        let end_s = (start_s + EPOCH_S).min(duration_s);
        match runs.last_mut() {
            Some(run) if run.stage == stage => run.end_s = end_s,
            _ => runs.push(StageRun {
                stage,
                start_s,
                end_s,
            }),
        }
    }
    runs
}

/// Scale the background by each epoch's stage gain, cross-fading over 2 s at
/// stage changes so the level does not jump.
fn scale_by_stage(layers: &mut Layers, duration_s: f64, epochs: Vec<Stage>) {
    const CROSSFADE_S: f64 = 2.0;
    layers.scale(0.0, duration_s, move |t| {
        let gain_of = |k: usize| epochs[k.min(epochs.len() - 1)].background_gain();
        let k = ((t / EPOCH_S) as usize).min(epochs.len() - 1);
        let into_epoch_s = t - k as f64 * EPOCH_S;
        if k > 0 && into_epoch_s < 0.5 * CROSSFADE_S {
            let w = 0.5 + into_epoch_s / CROSSFADE_S;
            w * gain_of(k) + (1.0 - w) * gain_of(k - 1)
        } else if into_epoch_s > EPOCH_S - 0.5 * CROSSFADE_S && k + 1 < epochs.len() {
            let w = 0.5 + (EPOCH_S - into_epoch_s) / CROSSFADE_S;
            w * gain_of(k) + (1.0 - w) * gain_of(k + 1)
        } else {
            gain_of(k)
        }
    });
}

/// Add a steady tone with a slowly waxing-waning amplitude over a stage run,
/// if it is representable at this rate.
#[allow(clippy::too_many_arguments)]
fn add_steady_rhythm(
    layers: &mut Layers,
    run: &StageRun,
    freq_hz: f64,
    amplitude_uv: f64,
    gains: &[f64],
    schedule: &mut Rng,
) {
    let modulation_hz = schedule.range(0.05, 0.2);
    let modulation_phase = schedule.range(0.0, TAU);
    let phase = schedule.range(0.0, TAU);
    if !representable(freq_hz, layers.rate()) {
        return;
    }
    let run = *run;
    layers.add(gains, run.start_s, run.end_s, move |t| {
        let waxing = 0.6 + 0.4 * (TAU * modulation_hz * t + modulation_phase).sin();
        amplitude_uv
            * epoch_weight(t, run.start_s, run.end_s, 1.0)
            * waxing
            * (TAU * freq_hz * t + phase).sin()
    });
}

/// Wake: alpha 8–12 Hz, low beta, and muscle tone above 20 Hz.
fn add_wake_rhythms(layers: &mut Layers, run: &StageRun, schedule: &mut Rng, noise_rng: &mut Rng) {
    let alpha_gains = channel_gains(schedule, layers.channels(), 0.7);
    let alpha_hz = schedule.range(8.5, 11.5);
    let alpha_uv = schedule.range(10.0, 25.0);
    add_steady_rhythm(layers, run, alpha_hz, alpha_uv, &alpha_gains, schedule);
    let beta_gains = channel_gains(schedule, layers.channels(), 0.7);
    let beta_hz = schedule.range(16.0, 28.0);
    add_steady_rhythm(layers, run, beta_hz, 3.0, &beta_gains, schedule);
    let muscle_uv = schedule.range(2.0, 5.0);
    // Muscle tone is common to all channels (gain 1).
    let (start_s, end_s) = (run.start_s, run.end_s);
    add_noise_burst(
        layers,
        &vec![1.0; layers.channels()],
        start_s,
        end_s,
        noise_rng,
        (20.0, 100.0),
        move |t| muscle_uv * epoch_weight(t, start_s, end_s, 1.0),
    );
}

/// N1: fading alpha and low-amplitude 4–7 Hz theta.
fn add_n1_rhythms(layers: &mut Layers, run: &StageRun, schedule: &mut Rng) {
    let gains = channel_gains(schedule, layers.channels(), 0.8);
    let alpha_hz = schedule.range(8.0, 10.0);
    add_steady_rhythm(layers, run, alpha_hz, 5.0, &gains, schedule);
    let theta_hz = schedule.range(4.0, 7.0);
    let theta_uv = schedule.range(5.0, 10.0);
    add_steady_rhythm(layers, run, theta_hz, theta_uv, &gains, schedule);
}

/// One spindle: 11–16 Hz, waxing-waning, 20–60 µV peak-to-peak × `event_snr`.
/// Skipped if it would touch an occupied interval.
#[allow(clippy::too_many_arguments)]
fn add_spindle(
    layers: &mut Layers,
    onset_s: f64,
    duration_s: f64,
    peak_fraction: f64,
    event_snr: f64,
    schedule: &mut Rng,
    taken: &mut Occupied,
    truth: &mut Vec<TruthEvent>,
) {
    let freq_hz = schedule.range(11.0, 16.0);
    let amplitude_uv = 0.5 * schedule.range(20.0, 60.0) * event_snr;
    let phase = schedule.range(0.0, TAU);
    let gains = channel_gains(schedule, layers.channels(), 0.7);
    let end_s = onset_s + duration_s;
    if taken.overlaps(onset_s, end_s, EVENT_CLEARANCE_S) {
        return;
    }
    let peak_s = onset_s + peak_fraction * duration_s;
    let envelope = BurstEnvelope {
        onset_s,
        peak_s,
        end_s,
    };
    add_burst(layers, &gains, envelope, freq_hz, phase, amplitude_uv);
    taken.add(onset_s, end_s);
    truth.push(event_on_all(
        "spindle",
        onset_s,
        duration_s,
        peak_s,
        &[("freq_hz", freq_hz), ("amplitude_uv", amplitude_uv)],
    ));
}

/// N2: spindles (~6/min) and K-complexes (~1.5/min).
#[allow(clippy::too_many_arguments)]
fn add_n2_events(
    layers: &mut Layers,
    run: &StageRun,
    event_snr: f64,
    schedule: &mut Rng,
    taken: &mut Occupied,
    truth: &mut Vec<TruthEvent>,
) {
    let mut t = run.start_s + schedule.exponential(60.0 / 1.5);
    loop {
        let down_s = schedule.range(0.16, 0.24);
        let up_s = schedule.range(0.25, 0.35);
        let trough_s = t + down_s;
        let end_s = trough_s + 0.35 + up_s;
        if end_s > run.end_s {
            break;
        }
        let amplitude_uv = schedule.range(70.0, 140.0);
        let gains = channel_gains(schedule, layers.channels(), 0.7);
        if !taken.overlaps(t, end_s, EVENT_CLEARANCE_S) {
            // A sharp negative wave then a slower positive one (compact supports
            // so the trough is exactly -amplitude at `trough_s`).
            let negative = SmoothPlateau {
                onset_s: t,
                rise_s: down_s,
                hold_s: 0.0,
                fall_s: down_s,
            };
            let positive = SmoothPlateau {
                onset_s: trough_s + 0.35 - up_s,
                rise_s: up_s,
                hold_s: 0.0,
                fall_s: up_s,
            };
            layers.add(&gains, t, end_s, move |x| {
                amplitude_uv * (0.4 * positive.at(x) - negative.at(x))
            });
            taken.add(t, end_s);
            truth.push(event_on_all(
                "k_complex",
                t,
                end_s - t,
                trough_s,
                &[("amplitude_uv", amplitude_uv)],
            ));
        }
        t = end_s + schedule.exponential(60.0 / 1.5);
    }
    let mut t = run.start_s + schedule.exponential(60.0 / 6.0);
    loop {
        let duration_s = schedule.log_range(0.5, 2.0);
        if t + duration_s > run.end_s {
            break;
        }
        let peak_fraction = schedule.range(0.35, 0.65);
        add_spindle(
            layers,
            t,
            duration_s,
            peak_fraction,
            event_snr,
            schedule,
            taken,
            truth,
        );
        t += duration_s + schedule.exponential(60.0 / 6.0);
    }
}

/// N3: trains of 2–6 slow oscillations (0.5–1.5 Hz, 75–250 µV peak-to-peak),
/// each a truth row; about half carry a spindle nested in the up-state.
#[allow(clippy::too_many_arguments)]
fn add_slow_oscillations(
    layers: &mut Layers,
    run: &StageRun,
    event_snr: f64,
    schedule: &mut Rng,
    taken: &mut Occupied,
    truth: &mut Vec<TruthEvent>,
) {
    let mut t = run.start_s + schedule.range(0.2, 1.0);
    'trains: loop {
        let waves = schedule.int_in(2, 6);
        let train_hz = schedule.range(0.6, 1.3);
        for _ in 0..waves {
            let freq_hz = (train_hz * schedule.range(0.9, 1.1)).clamp(0.5, 1.5);
            let period_s = 1.0 / freq_hz;
            let ptp_uv = schedule.range(75.0, 250.0);
            let up_share = schedule.range(0.3, 0.42);
            let gains = channel_gains(schedule, layers.channels(), 0.75);
            let nested_spindle = schedule.chance(0.5);
            let spindle_s = schedule.log_range(0.5, 1.2);
            let spindle_offset_s = schedule.range(-0.1, 0.1);
            if t + period_s > run.end_s {
                break 'trains;
            }
            let (trough_uv, peak_uv) = ((1.0 - up_share) * ptp_uv, up_share * ptp_uv);
            let onset_s = t;
            // Down-state lobe (trough at T/4), then up-state lobe (peak at 3T/4):
            // sin² lobes join with zero slope, so unequal lobes leave no kink
            // (a kink would leak power into the spindle band).
            layers.add(&gains, onset_s, onset_s + period_s, move |x| {
                let lobe = (TAU * (x - onset_s) / period_s).sin();
                if lobe < 0.0 {
                    peak_uv * lobe * lobe
                } else {
                    -trough_uv * lobe * lobe
                }
            });
            let trough_s = onset_s + 0.25 * period_s;
            let peak_s = onset_s + 0.75 * period_s;
            truth.push(event_on_all(
                "slow_oscillation",
                onset_s,
                period_s,
                peak_s,
                &[
                    ("trough_s", trough_s),
                    ("freq_hz", freq_hz),
                    ("ptp_uv", ptp_uv),
                    ("trough_uv", -trough_uv),
                    ("peak_uv", peak_uv),
                ],
            ));
            if nested_spindle {
                let spindle_peak_s = peak_s + spindle_offset_s;
                let spindle_onset_s = spindle_peak_s - 0.5 * spindle_s;
                if spindle_onset_s + spindle_s < run.end_s {
                    add_spindle(
                        layers,
                        spindle_onset_s,
                        spindle_s,
                        0.5,
                        event_snr,
                        schedule,
                        taken,
                        truth,
                    );
                }
            }
            t += period_s;
        }
        t += schedule.range(0.5, 3.0);
    }
}

/// REM: sawtooth-wave bursts (2–5 Hz, band-limited) and rapid eye movements.
fn add_rem_events(
    layers: &mut Layers,
    run: &StageRun,
    schedule: &mut Rng,
    truth: &mut Vec<TruthEvent>,
) {
    let mut t = run.start_s + schedule.exponential(20.0);
    loop {
        let duration_s = schedule.range(1.0, 3.0);
        if t + duration_s > run.end_s {
            break;
        }
        let freq_hz = schedule.range(2.0, 5.0);
        let amplitude_uv = schedule.range(15.0, 30.0);
        let gains = channel_gains(schedule, layers.channels(), 0.7);
        let envelope = BurstEnvelope {
            onset_s: t,
            peak_s: t + 0.5 * duration_s,
            end_s: t + duration_s,
        };
        // Sawtooth as a Fourier series, truncated below Nyquist so it cannot alias.
        let harmonics = (1..=8)
            .filter(|&k| representable(k as f64 * freq_hz, layers.rate()))
            .count();
        layers.add(&gains, t, t + duration_s, move |x| {
            let phase = TAU * freq_hz * (x - envelope.onset_s);
            let saw: f64 = (1..=harmonics)
                .map(|k| (k as f64 * phase).sin() / k as f64)
                .sum();
            amplitude_uv * envelope.at(x) * saw
        });
        t += duration_s + schedule.exponential(20.0);
    }
    let mut t = run.start_s + schedule.exponential(10.0);
    while t + 1.0 < run.end_s {
        add_eye_movement(layers, t, true, schedule, truth);
        t += 1.0 + schedule.exponential(10.0);
    }
}

/// An eye movement: a smooth step (40 ms) held then returning over 0.3–0.8 s.
/// `kind` in the truth: 1 = blink, 2 = saccade; `rem` = 1 for REM eye movements.
fn add_eye_movement(
    layers: &mut Layers,
    onset_s: f64,
    during_rem: bool,
    schedule: &mut Rng,
    truth: &mut Vec<TruthEvent>,
) {
    let amplitude_uv = schedule.range(30.0, 100.0) * if schedule.chance(0.5) { 1.0 } else { -1.0 };
    let shape = SmoothPlateau {
        onset_s,
        rise_s: 0.04,
        hold_s: schedule.range(0.0, 0.3),
        fall_s: schedule.range(0.3, 0.8),
    };
    let gains = channel_gains(schedule, layers.channels(), 0.6);
    layers.add(&gains, onset_s, shape.end_s(), move |t| {
        amplitude_uv * shape.at(t)
    });
    truth.push(event_on_all(
        "eye_artifact",
        onset_s,
        shape.end_s() - onset_s,
        onset_s + shape.rise_s,
        &[
            ("kind", 2.0),
            ("amplitude_uv", amplitude_uv.abs()),
            ("rem", if during_rem { 1.0 } else { 0.0 }),
        ],
    ));
}

/// Blinks (~10/min), saccades (~5/min) and movements (~1.5/min) in wake; rare
/// movements in other stages.
#[allow(clippy::too_many_arguments)]
fn add_artifacts(
    layers: &mut Layers,
    run: &StageRun,
    schedule: &mut Rng,
    noise_rng: &mut Rng,
    taken: &mut Occupied,
    truth: &mut Vec<TruthEvent>,
) {
    let (blinks_per_min, saccades_per_min, movements_per_min) = match run.stage {
        Stage::Wake => (10.0, 5.0, 1.5),
        Stage::N1 => (1.0, 0.0, 0.3),
        _ => (0.0, 0.0, 0.2),
    };
    if blinks_per_min > 0.0 {
        let mut t = run.start_s + schedule.exponential(60.0 / blinks_per_min);
        loop {
            let half_s = schedule.range(0.1, 0.2);
            if t + 2.0 * half_s > run.end_s {
                break;
            }
            let amplitude_uv = schedule.range(80.0, 200.0);
            let gains = channel_gains(schedule, layers.channels(), 0.6);
            let shape = SmoothPlateau {
                onset_s: t,
                rise_s: half_s,
                hold_s: 0.0,
                fall_s: half_s,
            };
            layers.add(&gains, t, shape.end_s(), move |x| {
                amplitude_uv * shape.at(x)
            });
            taken.add(t, shape.end_s());
            truth.push(event_on_all(
                "eye_artifact",
                t,
                2.0 * half_s,
                t + half_s,
                &[("kind", 1.0), ("amplitude_uv", amplitude_uv), ("rem", 0.0)],
            ));
            t += 2.0 * half_s + schedule.exponential(60.0 / blinks_per_min);
        }
    }
    if saccades_per_min > 0.0 {
        let mut t = run.start_s + schedule.exponential(60.0 / saccades_per_min);
        while t + 1.2 < run.end_s {
            add_eye_movement(layers, t, false, schedule, truth);
            taken.add(t, t + 1.2);
            t += 1.2 + schedule.exponential(60.0 / saccades_per_min);
        }
    }
    let mut t = run.start_s + schedule.exponential(60.0 / movements_per_min);
    loop {
        let duration_s = schedule.range(0.5, 3.0);
        if t + duration_s > run.end_s {
            break;
        }
        let rms_uv = schedule.range(50.0, 200.0);
        let gains = channel_gains(schedule, layers.channels(), 0.7);
        let shape = SmoothPlateau {
            onset_s: t,
            rise_s: 0.1,
            hold_s: duration_s - 0.2,
            fall_s: 0.1,
        };
        add_noise_burst(
            layers,
            &gains,
            t,
            t + duration_s,
            noise_rng,
            (0.5, 100.0),
            move |x| rms_uv * shape.at(x),
        );
        taken.add(t, t + duration_s);
        truth.push(event_on_all(
            "movement_artifact",
            t,
            duration_s,
            t + 0.5 * duration_s,
            &[("rms_uv", rms_uv)],
        ));
        t += duration_s + schedule.exponential(60.0 / movements_per_min);
    }
}
