//! The sharp-wave ripple detector.
//!
//! Per detection channel a causal Butterworth band-pass (default 150–250 Hz)
//! and an RMS envelope, z-scored against a baseline (adaptive, calibrated then
//! held, or frozen from the config; mean/SD or median/MAD). In `vote` mode each
//! channel is a stream and an event starts when `vote_k` streams have each been
//! above `threshold_sd` for `min_duration_ms` within `vote_window_ms`; in
//! `consensus` mode the band-passed channels are combined root-sum-square into
//! one envelope (Kay et al. 2016), in `coherent` mode their mean is band-passed.
//! Those two can split the band into `sub_bands` streams, any of which starts an
//! event. A stream qualifies by the `threshold` rule (z above `threshold_sd` for
//! `min_duration_ms`) or the `cusum` rule (Page's CUSUM of its band power over
//! the background's reaches `cusum_limit_ms`). The event ends when fewer than
//! `vote_k` streams stay above `end_threshold_sd` (hysteresis) for `end_hold_ms`.
//!
//! Two things block new events: a noise veto (the envelope of a band above the
//! ripple band, on the mean of the detection channels or a dedicated channel,
//! above its own baseline; held for `hold_ms`) and a brain-state gate (theta/delta
//! power ratio with hysteresis, and optionally a speed input). Streams whose runs
//! overlap a block start counting again once it lifts.
//!
//! Baselines and the state gate run on a slow clock of about 250 Hz (every
//! `slow_every` samples), which keeps the median/MAD recompute cheap and the
//! delta filter well conditioned at 30 kHz.

use crate::config::pipeline::{
    invalid, BaselineMode, BaselineStatistic, ChannelCombine, ConfigError, RippleConfig,
    RippleStartParams, RippleStateConfig, RippleVetoConfig,
};
use crate::detect::{
    bandpass, bandpass_design, robust_baseline, DetectorOutput, Probe, POWER_FLOOR,
};
use crate::dsp::{Envelope, Ewma, Moments, RobustBaseline, SosFilter, SosFrameBank};
use crate::event::{Detection, EventKind};
use crate::time::{SampleIndex, SampleRate};

/// Lowest sample rate accepted: ripples reach 250 Hz and need a few samples per cycle.
pub const MIN_RATE_HZ: f64 = 1000.0;
/// Target rate of the slow clock that drives baselines and the state gate.
const SLOW_CLOCK_HZ: f64 = 250.0;
/// Points per second entering the median/MAD window (one recompute each).
const BASELINE_UPDATES_PER_S: f64 = 10.0;
/// The veto's baseline window over the detector's: after a step change of gain
/// the veto holds (its median still the old level) until the detector's
/// medians have turned over, which they do in half their window.
const VETO_WINDOW_FACTOR: f64 = 2.0;
/// Order of the veto band-pass and of the theta/delta band-passes.
const AUX_FILTER_ORDER: usize = 2;

/// Centre and spread of one envelope.
#[derive(Debug, Clone)]
enum Baseline {
    AdaptiveRobust(RobustBaseline),
    AdaptiveEwma(Ewma),
    CalibrateRobust { window: RobustBaseline, done: bool },
    CalibrateMoments { moments: Moments, len: u64 },
    Frozen { center: f64, sd: f64 },
}

impl Baseline {
    /// Feed one slow-clock sample of the envelope.
    fn update(&mut self, x: f64) {
        match self {
            Baseline::AdaptiveRobust(b) => b.update(x),
            Baseline::AdaptiveEwma(e) => e.update(x),
            Baseline::CalibrateRobust { window, done } => {
                if !*done {
                    window.update(x);
                    *done = window.is_warm();
                }
            }
            Baseline::CalibrateMoments { moments, len } => {
                if moments.count() < *len {
                    moments.update(x);
                }
            }
            Baseline::Frozen { .. } => {}
        }
    }

    /// (centre, SD); SD 0 until there is something to compare against.
    fn center_sd(&self) -> (f64, f64) {
        match self {
            Baseline::AdaptiveRobust(b) => (b.median(), b.robust_sd()),
            Baseline::AdaptiveEwma(e) => (e.mean(), e.std_dev()),
            Baseline::CalibrateRobust { window, done } => {
                if *done {
                    (window.median(), window.robust_sd())
                } else {
                    (0.0, 0.0)
                }
            }
            Baseline::CalibrateMoments { moments, len } => {
                if moments.count() >= *len {
                    (moments.mean(), moments.std_dev())
                } else {
                    (0.0, 0.0)
                }
            }
            Baseline::Frozen { center, sd } => (*center, *sd),
        }
    }
}

/// One detection stream: an envelope, its baseline and its threshold runs.
#[derive(Debug, Clone)]
struct Stream {
    envelope: Envelope,
    baseline: Baseline,
    /// Input channel reported for this stream.
    channel: usize,
    z: f64,
    /// This sample of the band-passed signal.
    band_passed: f64,
    /// The baseline's centre once it has a spread (else 0): the background's
    /// band RMS, which the cusum rule compares the band power with.
    background: f64,
    /// CUSUM of `(band_passed / background)² − drift` in ms (cusum rule).
    cusum: f64,
    /// Start of the current run above `threshold_sd` (threshold rule).
    above_since: Option<SampleIndex>,
    /// Last sample at which the start rule held.
    qualified_at: Option<SampleIndex>,
    /// Start of the current run above `end_threshold_sd` (the event onset).
    rise_start: Option<SampleIndex>,
}

#[derive(Debug, Clone)]
struct Veto {
    /// Dedicated reference channel; `None` = mean of the detection channels.
    channel: Option<usize>,
    filter: SosFilter,
    envelope: Envelope,
    baseline: RobustBaseline,
    threshold_sd: f64,
    hold: u64,
    /// Vetoed up to (excluding) this sample.
    until: SampleIndex,
}

#[derive(Debug, Clone)]
struct StateGate {
    speed_channel: Option<usize>,
    max_speed: f64,
    /// Boxcar sum of the reference over one slow-clock period (anti-aliasing).
    sum: f64,
    theta: SosFilter,
    delta: SosFilter,
    theta_power: Ewma,
    delta_power: Ewma,
    /// Running medians of the two powers (`median_window_s`), if set.
    medians: Option<(RobustBaseline, RobustBaseline)>,
    close_above: f64,
    open_below: f64,
    closed: bool,
}

/// An interval in which the veto or the gate blocked detections, reported
/// (as a detection of its kind) when it ends, so a user sees why a ripple got
/// no stimulus.
#[derive(Debug, Clone, Copy)]
struct BlockedInterval {
    kind: EventKind,
    channel: usize,
    since: Option<SampleIndex>,
}

impl BlockedInterval {
    fn new(kind: EventKind, channel: usize) -> Self {
        Self {
            kind,
            channel,
            since: None,
        }
    }

    /// Follow whether sample `n` is blocked; when the block lifts, report it.
    #[inline]
    fn track(&mut self, n: SampleIndex, blocked: bool, emit: &mut impl FnMut(DetectorOutput)) {
        match (self.since, blocked) {
            (None, true) => self.since = Some(n),
            (Some(_), false) => self.close(n, emit),
            _ => {}
        }
    }

    /// Report an interval still open at `end` (exclusive).
    fn close(&mut self, end: SampleIndex, emit: &mut impl FnMut(DetectorOutput)) {
        if let Some(since) = self.since.take() {
            let mut interval = Detection::committed(self.kind, self.channel, since, since);
            interval.end = end;
            emit(DetectorOutput::Finish(interval));
        }
    }
}

/// When a stream qualifies to start an event.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StartRule {
    Threshold {
        threshold_sd: f64,
        min_duration: u64,
    },
    Cusum {
        drift: f64,
        limit_ms: f64,
        /// Duration of one sample in ms.
        sample_ms: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Quiet,
    InEvent {
        detection: Detection,
        peak_z: f64,
        /// Start of the current run with fewer than `vote_k` streams above the end threshold.
        below_since: Option<SampleIndex>,
    },
}

#[derive(Debug, Clone)]
pub struct Ripple {
    /// Input channels used for detection (not the veto or speed channels).
    detection_channels: Vec<usize>,
    /// coherent: one filter per sub-band on the channel mean (else empty).
    filters: Vec<SosFilter>,
    /// vote: one bank over the detection channels; consensus: one per sub-band
    /// (else empty).
    banks: Vec<SosFrameBank>,
    /// This frame's detection channels (vote: filtered in place).
    input: Vec<f64>,
    /// consensus: a sub-band's output for this frame.
    filtered: Vec<f64>,
    combine: ChannelCombine,
    streams: Vec<Stream>,
    vote_k: usize,
    vote_window: u64,
    start: StartRule,
    end_threshold_sd: f64,
    /// The end threshold rises to this fraction of the event's peak z.
    end_fraction_of_peak: f64,
    /// Samples the end condition must hold before the event ends (at least 1).
    end_hold: u64,
    max_duration: u64,
    warmup: u64,
    slow_every: u64,
    veto: Option<Veto>,
    gate: Option<StateGate>,
    /// Qualifications before this sample are spent (by an event or a block).
    counts_from: SampleIndex,
    vetoed: BlockedInterval,
    gate_closed: BlockedInterval,
    /// Baselines hold while this is set (the gate is closed, unless
    /// `learn_while_gated`), so they describe the state detections are made in.
    /// They learn through vetoes: a median over 30 s shrugs off EMG bursts, and
    /// a veto that held them would hold them through a step change of gain too
    /// (the veto's own baseline adapts, the detector's would not yet).
    hold_baselines: bool,
    learn_while_gated: bool,
    state: State,
}

impl Ripple {
    pub fn new(
        config: &RippleConfig,
        rate: SampleRate,
        channels: usize,
    ) -> Result<Self, ConfigError> {
        if rate.hz() < MIN_RATE_HZ {
            return Err(invalid(
                "detector.kind",
                format!(
                    "the ripple detector needs a sample rate of at least {MIN_RATE_HZ} Hz \
                     (ripples reach 250 Hz), this recording is {rate}"
                ),
            ));
        }
        let check_channel = |field: &'static str, index: Option<usize>| match index {
            Some(i) if i >= channels => Err(invalid(
                field,
                format!(
                    "channel position {i} is out of range: {channels} channel(s) are processed"
                ),
            )),
            _ => Ok(()),
        };
        let veto_channel = config.veto.channel.filter(|_| config.veto.enabled);
        let speed_channel = config.state.speed_channel.filter(|_| config.state.enabled);
        check_channel("detector.veto.channel", veto_channel)?;
        check_channel("detector.state.speed_channel", speed_channel)?;
        let detection_channels: Vec<usize> = (0..channels)
            .filter(|&c| Some(c) != veto_channel && Some(c) != speed_channel)
            .collect();
        if detection_channels.is_empty() {
            return Err(invalid(
                "input.channels",
                "leaves no channel for detection after the veto and speed channels".into(),
            ));
        }
        let combine = config.channels.combine;
        let vote = combine == ChannelCombine::Vote;
        let stream_count = if vote {
            detection_channels.len()
        } else {
            config.sub_bands
        };
        let vote_k = if vote { config.channels.vote_k } else { 1 };
        if vote_k > stream_count {
            return Err(invalid(
                "detector.channels.vote_k",
                format!("asks for {vote_k} channels, only {stream_count} detection channel(s)"),
            ));
        }
        let slow_every = ((rate.hz() / SLOW_CLOCK_HZ).round() as u64).max(1);
        let slow_rate = SampleRate::new(rate.hz() / slow_every as f64).expect("positive rate");
        let bands = if vote { 1 } else { config.sub_bands };
        let width_hz = (config.band_high_hz - config.band_low_hz) / bands as f64;
        let band_designs = (0..bands)
            .map(|b| {
                let low_hz = config.band_low_hz + width_hz * b as f64;
                bandpass_design(
                    config.filter_order,
                    low_hz,
                    low_hz + width_hz,
                    rate,
                    ["detector.band_low_hz", "detector.band_high_hz"],
                )
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let (filters, banks) = match combine {
            ChannelCombine::Coherent => (
                band_designs.iter().map(SosFilter::new).collect(),
                Vec::new(),
            ),
            ChannelCombine::Vote | ChannelCombine::Consensus => (
                Vec::new(),
                band_designs
                    .iter()
                    .map(|sos| {
                        SosFrameBank::new(sos, detection_channels.len())
                            .expect("at least one detection channel (checked above)")
                    })
                    .collect(),
            ),
        };
        let envelope = Envelope::new(config.envelope_window_ms, rate)
            .map_err(|e| invalid("detector.envelope_window_ms", e.to_string()))?;
        let streams = (0..stream_count)
            .map(|i| {
                Ok(Stream {
                    envelope: envelope.clone(),
                    baseline: baseline(config, slow_rate, i, stream_count)?,
                    channel: detection_channels[if vote { i } else { 0 }],
                    z: 0.0,
                    band_passed: 0.0,
                    background: 0.0,
                    cusum: 0.0,
                    above_since: None,
                    qualified_at: None,
                    rise_start: None,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let veto = if config.veto.enabled {
            Some(build_veto(
                &config.veto,
                veto_channel,
                rate,
                slow_rate,
                config,
            )?)
        } else {
            None
        };
        let gate = if config.state.enabled {
            Some(build_gate(&config.state, speed_channel, slow_rate)?)
        } else {
            None
        };
        let first_channel = detection_channels[0];
        Ok(Self {
            filters,
            input: vec![0.0; detection_channels.len()],
            filtered: vec![0.0; detection_channels.len()],
            banks,
            detection_channels,
            combine,
            streams,
            vote_k,
            vote_window: rate.samples_in_ms(config.channels.vote_window_ms),
            start: match config.start_params() {
                RippleStartParams::Threshold {
                    threshold_sd,
                    min_duration_ms,
                } => StartRule::Threshold {
                    threshold_sd,
                    min_duration: rate.samples_in_ms(min_duration_ms).max(1),
                },
                RippleStartParams::Cusum { drift, limit_ms } => StartRule::Cusum {
                    drift,
                    limit_ms,
                    sample_ms: 1000.0 / rate.hz(),
                },
            },
            end_threshold_sd: config.end_threshold_sd,
            end_fraction_of_peak: config.end_fraction_of_peak,
            end_hold: rate.samples_in_ms(config.end_hold_ms).max(1),
            max_duration: rate.samples_in_ms(config.max_duration_ms).max(1),
            warmup: rate.samples_in_s(config.warmup_s),
            slow_every,
            veto,
            gate,
            counts_from: 0,
            vetoed: BlockedInterval::new(EventKind::Vetoed, veto_channel.unwrap_or(first_channel)),
            gate_closed: BlockedInterval::new(EventKind::GateClosed, first_channel),
            hold_baselines: false,
            learn_while_gated: config.baseline.learn_while_gated,
            state: State::Quiet,
        })
    }

    /// Process one frame (one sample per input channel) at sample index `n`.
    pub fn process_frame(
        &mut self,
        n: SampleIndex,
        frame: &[f64],
        mut emit: impl FnMut(DetectorOutput),
    ) {
        let slow_tick = n % self.slow_every == self.slow_every - 1;
        let learn = slow_tick && !self.hold_baselines;
        let count = self.detection_channels.len();
        // Summed while gathering (in channel order from -0.0, as `Iterator::sum`),
        // so this chain of dependent additions overlaps the filtering below.
        let mut sum = -0.0;
        for (x, &c) in self.input.iter_mut().zip(&self.detection_channels) {
            *x = frame[c];
            sum += *x;
        }
        let reference = sum / count as f64;
        match self.combine {
            ChannelCombine::Vote => {
                self.banks[0].process_frame(&mut self.input);
                for (&y, stream) in self.input.iter().zip(&mut self.streams) {
                    stream.update(y, learn);
                }
            }
            ChannelCombine::Consensus => {
                for (bank, stream) in self.banks.iter_mut().zip(&mut self.streams) {
                    self.filtered.copy_from_slice(&self.input);
                    // In channel order as each run of channels is filtered, so
                    // the additions overlap the rest of the filtering.
                    let mut sum_squares = -0.0;
                    bank.process_frame_with(&mut self.filtered, |ys| {
                        ys.iter().for_each(|y| sum_squares += y.powi(2))
                    });
                    stream.update((sum_squares / count as f64).sqrt(), learn);
                }
            }
            ChannelCombine::Coherent => {
                for (filter, stream) in self.filters.iter_mut().zip(&mut self.streams) {
                    stream.update(filter.process(reference), learn);
                }
            }
        }
        let vetoed = self
            .veto
            .as_mut()
            .is_some_and(|v| v.process(n, frame, reference, slow_tick));
        let gated = self
            .gate
            .as_mut()
            .is_some_and(|g| g.process(frame, reference, slow_tick));
        let (start, end_threshold) = (self.start, self.end_threshold_sd);
        for s in &mut self.streams {
            s.track_runs(n, start, end_threshold);
        }
        self.vetoed.track(n, vetoed, &mut emit);
        self.gate_closed.track(n, gated, &mut emit);
        let blocked = vetoed || gated;
        self.hold_baselines = gated && !self.learn_while_gated;
        if n < self.warmup || blocked {
            // Runs seen while blocked are void; they count again from the next sample.
            self.restart_counts(n + 1);
        }
        if n < self.warmup {
            return;
        }
        self.step(n, blocked, &mut emit);
    }

    fn step(&mut self, n: SampleIndex, blocked: bool, emit: &mut impl FnMut(DetectorOutput)) {
        let (best, best_z) = self
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.z))
            .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
        self.state = match self.state {
            State::Quiet => {
                let window_start = n.saturating_sub(self.vote_window).max(self.counts_from);
                let votes = self
                    .streams
                    .iter()
                    .filter(|s| s.qualified_at.is_some_and(|q| q >= window_start))
                    .count();
                if blocked || votes < self.vote_k {
                    State::Quiet
                } else {
                    let onset = self
                        .streams
                        .iter()
                        .filter_map(|s| s.rise_start)
                        .min()
                        .unwrap_or(n);
                    let detection = Detection::committed(
                        EventKind::Ripple,
                        self.streams[best].channel,
                        onset,
                        n,
                    );
                    emit(DetectorOutput::Commit(detection));
                    State::InEvent {
                        detection,
                        peak_z: best_z,
                        below_since: None,
                    }
                }
            }
            State::InEvent {
                mut detection,
                mut peak_z,
                mut below_since,
            } => {
                if best_z > peak_z {
                    peak_z = best_z;
                    detection.peak = n;
                }
                let end_z = self
                    .end_threshold_sd
                    .max(self.end_fraction_of_peak * peak_z);
                let up = self.streams.iter().filter(|s| s.z > end_z).count();
                below_since = if up < self.vote_k {
                    below_since.or(Some(n))
                } else {
                    None
                };
                let ended = below_since.is_some_and(|b| n + 1 - b >= self.end_hold);
                if ended || n + 1 - detection.onset >= self.max_duration {
                    // The event ends where the streams first fell (not after the hold).
                    detection.end = below_since.map_or(n + 1, |b| b + 1);
                    emit(DetectorOutput::Finish(detection));
                    self.restart_counts(n + 1);
                    State::Quiet
                } else {
                    State::InEvent {
                        detection,
                        peak_z,
                        below_since,
                    }
                }
            }
        };
    }

    /// Qualifications before `from` are spent; CUSUMs start again from zero.
    fn restart_counts(&mut self, from: SampleIndex) {
        self.counts_from = from;
        for s in &mut self.streams {
            s.cusum = 0.0;
        }
    }

    /// The first channel detected on (not a veto reference or speed input).
    pub fn first_detection_channel(&self) -> usize {
        self.detection_channels[0]
    }

    /// The stream with the highest z: its band and z, against the start
    /// threshold (the CUSUM rule has none on z: its end threshold, above
    /// which an event lasts).
    pub fn probe(&self) -> Probe {
        let best = self.streams.iter().max_by(|a, b| a.z.total_cmp(&b.z));
        Probe {
            band: best.map_or(0.0, |s| s.band_passed),
            envelope: best.map_or(0.0, |s| s.z),
            threshold: match self.start {
                StartRule::Threshold { threshold_sd, .. } => threshold_sd,
                StartRule::Cusum { .. } => self.end_threshold_sd,
            },
            gated: self.gate_closed.since.is_some(),
            vetoed: self.vetoed.since.is_some(),
        }
    }

    /// Close an event, a veto or a gate closure still open at the end of the input.
    pub fn finish(&mut self, end: SampleIndex, mut emit: impl FnMut(DetectorOutput)) {
        if let State::InEvent { mut detection, .. } = self.state {
            detection.end = end;
            emit(DetectorOutput::Finish(detection));
        }
        self.state = State::Quiet;
        self.vetoed.close(end, &mut emit);
        self.gate_closed.close(end, &mut emit);
    }
}

impl Stream {
    #[inline]
    fn update(&mut self, band_passed: f64, learn: bool) {
        let envelope = self.envelope.process(band_passed);
        if learn && is_signal(envelope) {
            self.baseline.update(envelope);
        }
        let (center, sd) = self.baseline.center_sd();
        self.z = if sd > 0.0 {
            (envelope - center) / sd
        } else {
            0.0
        };
        self.band_passed = band_passed;
        self.background = if sd > 0.0 { center } else { 0.0 };
    }

    #[inline]
    fn track_runs(&mut self, n: SampleIndex, start: StartRule, end_threshold: f64) {
        match start {
            StartRule::Threshold {
                threshold_sd,
                min_duration,
            } => {
                if self.z > threshold_sd {
                    let since = *self.above_since.get_or_insert(n);
                    if n + 1 - since >= min_duration {
                        self.qualified_at = Some(n);
                    }
                } else {
                    self.above_since = None;
                }
            }
            StartRule::Cusum {
                drift,
                limit_ms,
                sample_ms,
            } => {
                let power_ratio = if self.background > 0.0 {
                    (self.band_passed / self.background).powi(2)
                } else {
                    0.0
                };
                self.cusum = (self.cusum + (power_ratio - drift) * sample_ms).max(0.0);
                if self.cusum >= limit_ms {
                    self.qualified_at = Some(n);
                }
            }
        }
        if self.z > end_threshold {
            self.rise_start.get_or_insert(n);
        } else {
            self.rise_start = None;
        }
    }
}

impl Veto {
    /// True while detections are vetoed.
    #[inline]
    fn process(&mut self, n: SampleIndex, frame: &[f64], mean: f64, slow_tick: bool) -> bool {
        let x = self.channel.map_or(mean, |c| frame[c]);
        let envelope = self.envelope.process(self.filter.process(x));
        if slow_tick && is_signal(envelope) {
            self.baseline.update(envelope);
        }
        let sd = self.baseline.robust_sd();
        if sd > 0.0 && (envelope - self.baseline.median()) / sd > self.threshold_sd {
            self.until = n + self.hold + 1;
        }
        n < self.until
    }
}

impl StateGate {
    /// True while the gate is closed (running, REM, or moving).
    #[inline]
    fn process(&mut self, frame: &[f64], mean: f64, slow_tick: bool) -> bool {
        let moving = self
            .speed_channel
            .is_some_and(|c| frame[c] > self.max_speed);
        let r = self;
        r.sum += mean;
        if slow_tick {
            let x = std::mem::take(&mut r.sum);
            let theta = r.theta.process(x);
            let delta = r.delta.process(x);
            r.theta_power.update(theta * theta);
            r.delta_power.update(delta * delta);
            let ratio = |theta: f64, delta: f64| theta / delta.max(POWER_FLOOR);
            let now = ratio(r.theta_power.mean(), r.delta_power.mean());
            let ratio = match &mut r.medians {
                // The medians ignore brief rises (sharp waves); the lower of the
                // two follows theta's end at once.
                Some((theta_median, delta_median)) => {
                    theta_median.update(r.theta_power.mean());
                    delta_median.update(r.delta_power.mean());
                    now.min(ratio(theta_median.median(), delta_median.median()))
                }
                None => now,
            };
            if ratio > r.close_above {
                r.closed = true;
            } else if ratio < r.open_below {
                r.closed = false;
            }
        }
        moving || r.closed
    }
}

/// Whether an envelope shows any signal at all. A flat input (a disconnected,
/// lost or clipped channel) says nothing about the background: baselines skip
/// it and keep what they knew, so detection resumes as soon as the signal does.
#[inline]
fn is_signal(envelope: f64) -> bool {
    envelope * envelope > POWER_FLOOR
}

fn baseline(
    config: &RippleConfig,
    slow_rate: SampleRate,
    stream: usize,
    streams: usize,
) -> Result<Baseline, ConfigError> {
    let b = &config.baseline;
    let window_field = "detector.baseline.window_s";
    let robust = || robust_baseline(b.window_s, BASELINE_UPDATES_PER_S, slow_rate, window_field);
    Ok(match (b.mode, b.statistic) {
        (BaselineMode::Adaptive, BaselineStatistic::MedianMad) => {
            Baseline::AdaptiveRobust(robust()?)
        }
        (BaselineMode::Adaptive, BaselineStatistic::MeanSd) => Baseline::AdaptiveEwma(
            Ewma::new(b.window_s, slow_rate).map_err(|e| invalid(window_field, e.to_string()))?,
        ),
        (BaselineMode::Calibrate, BaselineStatistic::MedianMad) => Baseline::CalibrateRobust {
            window: robust()?,
            done: false,
        },
        (BaselineMode::Calibrate, BaselineStatistic::MeanSd) => Baseline::CalibrateMoments {
            moments: Moments::default(),
            len: slow_rate.samples_in_s(b.window_s).max(1),
        },
        (BaselineMode::Frozen, _) => {
            if b.frozen_center.len() != streams {
                return Err(invalid(
                    "detector.baseline.frozen_center",
                    format!(
                        "needs one value per detection stream ({streams}), got {}",
                        b.frozen_center.len()
                    ),
                ));
            }
            Baseline::Frozen {
                center: b.frozen_center[stream],
                sd: b.frozen_sd[stream],
            }
        }
    })
}

fn build_veto(
    v: &RippleVetoConfig,
    channel: Option<usize>,
    rate: SampleRate,
    slow_rate: SampleRate,
    config: &RippleConfig,
) -> Result<Veto, ConfigError> {
    Ok(Veto {
        channel,
        filter: bandpass(
            AUX_FILTER_ORDER,
            v.band_low_hz,
            v.band_high_hz,
            rate,
            ["detector.veto.band_low_hz", "detector.veto.band_high_hz"],
        )?,
        envelope: Envelope::new(config.envelope_window_ms, rate)
            .map_err(|e| invalid("detector.envelope_window_ms", e.to_string()))?,
        baseline: robust_baseline(
            VETO_WINDOW_FACTOR * config.baseline.window_s,
            BASELINE_UPDATES_PER_S,
            slow_rate,
            "detector.baseline.window_s",
        )?,
        threshold_sd: v.threshold_sd,
        hold: rate.samples_in_ms(v.hold_ms),
        until: 0,
    })
}

fn build_gate(
    s: &RippleStateConfig,
    speed_channel: Option<usize>,
    slow_rate: SampleRate,
) -> Result<StateGate, ConfigError> {
    let power = || {
        Ewma::new(s.power_window_s, slow_rate)
            .map_err(|e| invalid("detector.state.power_window_s", e.to_string()))
    };
    Ok(StateGate {
        speed_channel,
        max_speed: s.max_speed,
        sum: 0.0,
        theta: bandpass(
            AUX_FILTER_ORDER,
            s.theta_low_hz,
            s.theta_high_hz,
            slow_rate,
            [
                "detector.state.theta_low_hz",
                "detector.state.theta_high_hz",
            ],
        )?,
        delta: bandpass(
            AUX_FILTER_ORDER,
            s.delta_low_hz,
            s.delta_high_hz,
            slow_rate,
            [
                "detector.state.delta_low_hz",
                "detector.state.delta_high_hz",
            ],
        )?,
        theta_power: power()?,
        delta_power: power()?,
        medians: match s.median_window_s {
            Some(window_s) => {
                let median = || {
                    robust_baseline(
                        window_s,
                        BASELINE_UPDATES_PER_S,
                        slow_rate,
                        "detector.state.median_window_s",
                    )
                };
                Some((median()?, median()?))
            }
            None => None,
        },
        close_above: s.ratio_close,
        open_below: s.ratio_open,
        closed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DetectorConfig, Preset};
    use crate::rng::Rng;

    fn preset() -> RippleConfig {
        match Preset::RodentRipple.config().detector {
            DetectorConfig::Ripple(r) => *r,
            _ => panic!("the rodent preset runs the ripple detector"),
        }
    }

    /// Ten seconds of strong theta close the state gate; only with
    /// `learn_while_gated` do the baselines fill meanwhile.
    #[test]
    fn baselines_learn_while_gated_only_when_asked() {
        let rate = SampleRate::new(1250.0).unwrap();
        for learn in [false, true] {
            let mut config = preset();
            config.baseline.window_s = 2.0;
            config.baseline.learn_while_gated = learn;
            let mut detector = Ripple::new(&config, rate, 4).unwrap();
            let mut rng = Rng::new(7);
            let mut gated = 0;
            for n in 0..rate.samples_in_s(10.0) {
                let theta = 300.0 * (std::f64::consts::TAU * 8.0 * rate.seconds(n)).sin();
                let frame: Vec<f64> = (0..4).map(|_| theta + 10.0 * rng.gaussian()).collect();
                detector.process_frame(n, &frame, |_| {});
                gated += usize::from(detector.gate.as_ref().unwrap().closed);
            }
            assert!(gated as u64 > rate.samples_in_s(9.0), "gate closed {gated}");
            let warm = detector.streams.iter().all(|s| match &s.baseline {
                Baseline::AdaptiveRobust(b) => b.is_warm(),
                other => panic!("the preset's baseline is median/MAD, got {other:?}"),
            });
            assert_eq!(warm, learn, "learn_while_gated = {learn}");
        }
    }

    /// The cusum rule: a steady power ratio r above the drift k qualifies after
    /// limit / ((r − k) × sample length); under the drift it never does, and a
    /// restart (after an event or a block) zeroes the sum.
    #[test]
    fn cusum_rule_accumulates_excess_power() {
        let rate = SampleRate::new(1000.0).unwrap();
        let mut config = preset();
        config.start = crate::config::RippleStart::Cusum;
        config.cusum_drift = Some(14.0);
        config.cusum_limit_ms = Some(20.0);
        let mut detector = Ripple::new(&config, rate, 1).unwrap();
        let start = detector.start;
        assert_eq!(
            start,
            StartRule::Cusum {
                drift: 14.0,
                limit_ms: 20.0,
                sample_ms: 1.0
            }
        );
        let stream = &mut detector.streams[0];
        // Power ratio 9 (amplitude 3 over a background of 1): under the drift.
        stream.background = 1.0;
        stream.band_passed = 3.0;
        for n in 0..1000 {
            stream.track_runs(n, start, 1.0);
        }
        assert_eq!((stream.qualified_at, stream.cusum), (None, 0.0));
        // Ratio 20.25, 6.25 ms of excess per sample: 18.75 after three, the fourth reaches 20.
        stream.band_passed = 4.5;
        for n in 1000..1003 {
            stream.track_runs(n, start, 1.0);
        }
        assert_eq!((stream.qualified_at, stream.cusum), (None, 18.75));
        stream.track_runs(1003, start, 1.0);
        assert_eq!(stream.qualified_at, Some(1003));
        detector.restart_counts(1004);
        assert_eq!(detector.streams[0].cusum, 0.0);
        assert_eq!(detector.counts_from, 1004);
    }

    /// A dip under the end threshold shorter than `end_hold_ms` does not end
    /// the event; a longer one does.
    #[test]
    fn end_hold_bridges_short_dips() {
        let rate = SampleRate::new(1250.0).unwrap();
        let burst = |t: f64| -> f64 {
            // Ripple-band bursts over [6.0, 6.1) and [6.17, 6.25) s (a 70-ms gap), then [7.0, 7.1).
            let on =
                (6.0..6.1).contains(&t) || (6.17..6.25).contains(&t) || (7.0..7.1).contains(&t);
            if on {
                40.0 * (std::f64::consts::TAU * 180.0 * t).sin()
            } else {
                0.0
            }
        };
        let run = |end_hold_ms: f64| {
            let mut config = preset();
            config.end_hold_ms = end_hold_ms;
            config.state.enabled = false;
            config.veto.enabled = false;
            let mut detector = Ripple::new(&config, rate, 1).unwrap();
            let mut rng = Rng::new(3);
            let mut finished = Vec::new();
            for n in 0..rate.samples_in_s(8.0) {
                let x = burst(rate.seconds(n)) + 10.0 * rng.gaussian();
                detector.process_frame(n, &[x], |o| {
                    if let DetectorOutput::Finish(d) = o {
                        finished.push(d);
                    }
                });
            }
            finished
        };
        let split = run(0.0);
        let bridged = run(100.0);
        assert_eq!(split.len(), 3, "{split:?}");
        assert_eq!(bridged.len(), 2, "{bridged:?}");
        // The bridged event spans both bursts and ends where its last dip began
        // (noise crossing the end threshold can restart the hold), not later.
        assert_eq!(bridged[0].detected_at, split[0].detected_at);
        assert!(bridged[0].end >= split[1].end && bridged[0].end < split[2].onset);
        assert_eq!(bridged[1].detected_at, split[2].detected_at);
    }
}
