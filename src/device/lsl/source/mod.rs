//! `[source] kind = "lsl"`: an LSL stream as the session's source.

use std::ffi::c_ulong;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::pipeline::{check_range, invalid, ConfigError};
use crate::device::{DeviceError, FrameSink, OpenError, Opened, Source};
use crate::time::SampleRate;

use super::{
    c_string, lib, lost, resolve, resolve_all, Handle, LslError, StreamInfo, ERROR_LOST,
    ERROR_TIMEOUT, FORMAT_STRING,
};

// ---------------------------------------------------------------- source

/// `[source] kind = "lsl"`: a numeric LSL stream, resolved by name, type and/or source id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LslSourceConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub stream_type: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
    /// How long to look for the stream at start.
    #[serde(default = "default_resolve_timeout_ms")]
    pub resolve_timeout_ms: f64,
    /// Expected channel count and rate: a stream that differs is refused (unchecked when absent).
    #[serde(default)]
    pub channel_count: Option<u32>,
    #[serde(default)]
    pub rate_hz: Option<f64>,
    /// Unit of the channels whose description gives none ("uV", "mV" or "V").
    #[serde(default)]
    pub unit: Option<String>,
    /// Each channel's range (±µV) in the session recording; beyond it samples clip (counted).
    #[serde(default = "default_range_uv")]
    pub range_uv: f64,
    /// A timestamp more than this many sample periods after the previous one starts a gap.
    #[serde(default = "default_gap_periods")]
    pub gap_periods: f64,
    /// No sample for this long = the stream is lost.
    #[serde(default = "default_stall_ms")]
    pub stall_ms: f64,
}

fn default_resolve_timeout_ms() -> f64 {
    5000.0
}
fn default_range_uv() -> f64 {
    100_000.0
}
fn default_gap_periods() -> f64 {
    1.5
}
fn default_stall_ms() -> f64 {
    500.0
}

impl LslSourceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let properties = self.properties();
        if properties.is_empty() {
            return Err(invalid(
                "source.name",
                "an LSL source needs name, type or source_id to find its stream".into(),
            ));
        }
        if let Some((key, _)) = properties
            .iter()
            .find(|(_, v)| v.trim().is_empty() || v.contains('\''))
        {
            return Err(invalid(
                key_field(key),
                "must be non-empty text without a single quote".into(),
            ));
        }
        check_range(
            "source.resolve_timeout_ms",
            self.resolve_timeout_ms,
            10.0,
            600_000.0,
        )?;
        if let Some(n) = self.channel_count {
            check_range("source.channel_count", f64::from(n), 1.0, 1024.0)?;
        }
        if let Some(hz) = self.rate_hz {
            check_range("source.rate_hz", hz, 1.0, crate::time::MAX_RATE_HZ)?;
        }
        if let Some(unit) = &self.unit {
            uv_per_unit(unit).ok_or_else(|| {
                invalid(
                    "source.unit",
                    format!("must be uV, mV or V (or nV), got {unit:?}"),
                )
            })?;
        }
        check_range("source.range_uv", self.range_uv, 1.0, 1e9)?;
        check_range("source.gap_periods", self.gap_periods, 1.01, 1e6)?;
        check_range("source.stall_ms", self.stall_ms, 20.0, 60_000.0)
    }

    fn properties(&self) -> Vec<(&'static str, &str)> {
        [
            ("name", &self.name),
            ("type", &self.stream_type),
            ("source_id", &self.source_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    /// `name 'x' and type 'EEG'`, for messages.
    fn query(&self) -> String {
        let parts: Vec<String> = self
            .properties()
            .iter()
            .map(|(k, v)| format!("{k} '{v}'"))
            .collect();
        parts.join(" and ")
    }
}

fn key_field(key: &str) -> &'static str {
    match key {
        "name" => "source.name",
        "type" => "source.type",
        _ => "source.source_id",
    }
}

/// µV per unit of a channel unit as LSL streams write it.
fn uv_per_unit(unit: &str) -> Option<f64> {
    match unit.trim().to_ascii_lowercase().as_str() {
        "uv" | "µv" | "μv" | "microvolt" | "microvolts" => Some(1.0),
        "mv" | "millivolt" | "millivolts" => Some(1e3),
        "v" | "volt" | "volts" => Some(1e6),
        "nv" | "nanovolt" | "nanovolts" => Some(1e-3),
        _ => None,
    }
}

/// Frames pulled from the inlet at most at once.
const MAX_CHUNK_FRAMES: usize = 256;
/// Seconds of data liblsl buffers for the inlet; beyond that it drops the
/// oldest, which the timestamps then show as a gap.
const INLET_BUFFER_S: i32 = 30;
/// How long opening the stream and its first time correction may take.
const OPEN_TIMEOUT_S: f64 = 5.0;
/// How often the time correction is read while streaming.
const CORRECTION_PERIOD: Duration = Duration::from_secs(1);

/// Resolve the configured stream, check it, and subscribe to it; the
/// acquisition thread pulls from it.
pub fn open_source(c: &LslSourceConfig) -> Result<Opened, OpenError> {
    let query = c.query();
    let predicate: Vec<String> = c
        .properties()
        .iter()
        .map(|(k, v)| format!("{k}='{v}'"))
        .collect();
    let predicate = c_string(&predicate.join(" and "));
    let timeout_s = c.resolve_timeout_ms / 1000.0;
    // SAFETY: the buffer holds `len` handles; the predicate is NUL-terminated.
    let found = resolve(|api, buf, len| unsafe {
        (api.resolve_bypred)(buf, len, predicate.as_ptr(), 1, timeout_s)
    })?;
    let info = match found.len() {
        0 => {
            let seen: Vec<String> = resolve_all(1.0)?.iter().map(StreamInfo::describe).collect();
            return Err(LslError::NotFound {
                query,
                timeout_ms: c.resolve_timeout_ms,
                seen: if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join(", ")
                },
            }
            .into());
        }
        1 => found.into_iter().next().expect("one"),
        count => {
            let list: Vec<String> = found.iter().map(StreamInfo::describe).collect();
            return Err(LslError::Ambiguous {
                query,
                count,
                list: list.join(", "),
            }
            .into());
        }
    };
    let stream = info.describe();
    let refuse = |problem: String| LslError::Stream {
        stream: stream.clone(),
        problem,
    };
    let format = info.format();
    if format == FORMAT_STRING || !(1..=7).contains(&format) {
        return Err(refuse(
            "carries text (a marker stream), not samples; a source needs a numeric stream".into(),
        )
        .into());
    }
    let hz = info.rate_hz();
    if hz <= 0.0 {
        return Err(refuse(
            "has an irregular rate; a source needs a stream with a nominal rate".into(),
        )
        .into());
    }
    let rate = SampleRate::new(hz).map_err(|e| refuse(e.to_string()))?;
    if let Some(want) = c.rate_hz.filter(|&w| (w - hz).abs() > 1e-9 * w) {
        return Err(refuse(format!(
            "runs at {hz} Hz, the config expects {want} Hz (source.rate_hz)"
        ))
        .into());
    }
    let channels = info.channel_count();
    if let Some(want) = c.channel_count.filter(|&w| w as usize != channels) {
        return Err(refuse(format!(
            "has {channels} channels, the config expects {want} (source.channel_count)"
        ))
        .into());
    }

    let lib = lib()?;
    // SAFETY: a live streaminfo; the inlet copies it.
    let inlet = Inlet(unsafe { (lib.api.create_inlet)(info.0, INLET_BUFFER_S, 0, 0) });
    if inlet.0.is_null() {
        return Err(LslError::Call {
            what: "creating an inlet",
        }
        .into());
    }
    let mut ec = 0;
    // SAFETY: a live inlet; the returned info is owned by us.
    let full = StreamInfo(unsafe { (lib.api.get_fullinfo)(inlet.0, OPEN_TIMEOUT_S, &mut ec) });
    if ec != 0 || full.0.is_null() {
        return Err(refuse("did not send its full description".into()).into());
    }
    let (labels, uv_per_unit) =
        channel_map(&full.channel_descriptions(), channels, c).map_err(&refuse)?;
    // Subscribe now: samples queue from here until the acquisition thread pulls.
    // SAFETY: a live inlet.
    unsafe { (lib.api.open_stream)(inlet.0, OPEN_TIMEOUT_S, &mut ec) };
    if ec != 0 {
        return Err(refuse("could not be opened".into()).into());
    }
    let counters = Arc::new(LslCounters::default());
    let correction = inlet.time_correction(OPEN_TIMEOUT_S).ok().flatten();
    counters.store_correction(correction);
    Ok(Opened {
        rate,
        labels,
        description: format!("LSL stream {stream}"),
        max_chunk_frames: MAX_CHUNK_FRAMES,
        full_scale_uv: vec![c.range_uv; channels],
        source: Source::Lsl(LslSource {
            inlet,
            channels,
            uv_per_unit,
            clock: SampleClock::new(rate, c.gap_periods, c.stall_ms),
            stall: Duration::from_secs_f64(c.stall_ms / 1000.0),
            correction,
            correction_jump_s: (1.0 / hz).max(1e-3),
            counters,
        }),
    })
}

/// Labels (`ch<k>` where the stream names none) and µV per stream unit of every channel.
fn channel_map(
    described: &[(Option<String>, Option<String>)],
    channels: usize,
    c: &LslSourceConfig,
) -> Result<(Vec<String>, Vec<f64>), String> {
    let mut labels = Vec::with_capacity(channels);
    let mut scales = Vec::with_capacity(channels);
    for k in 0..channels {
        let (label, unit) = described.get(k).cloned().unwrap_or((None, None));
        let label = label.unwrap_or_else(|| format!("ch{}", k + 1));
        let scale = match (unit, &c.unit) {
            (Some(unit), _) => uv_per_unit(&unit).ok_or_else(|| {
                format!("channel {label} is in {unit:?}, which cannot be converted to µV")
            })?,
            (None, Some(unit)) => uv_per_unit(unit).expect("validated"),
            (None, None) => {
                return Err(format!(
                "does not give channel {label}'s unit; set source.unit (\"uV\", \"mV\" or \"V\")"
            ))
            }
        };
        labels.push(label);
        scales.push(scale);
    }
    Ok((labels, scales))
}

/// A subscribed inlet (destroyed on drop, which disconnects).
struct Inlet(Handle);

// SAFETY: liblsl inlets may be used from any one thread at a time.
unsafe impl Send for Inlet {}

impl Drop for Inlet {
    fn drop(&mut self) {
        if let Ok(lib) = lib() {
            // SAFETY: owned handle, destroyed once.
            unsafe { (lib.api.destroy_inlet)(self.0) }
        }
    }
}

impl Inlet {
    /// Wait up to `wait_s` for a sample, then take whatever else is queued
    /// (as much as the buffers hold); returns the frames read.
    fn pull(
        &self,
        values: &mut [f64],
        stamps: &mut [f64],
        wait_s: f64,
    ) -> Result<usize, DeviceError> {
        let api = &lib()
            .expect("an inlet exists only once liblsl is loaded")
            .api;
        let channels = values.len() / stamps.len();
        let mut ec = 0;
        // SAFETY: `values` holds at least one frame.
        let first = unsafe {
            (api.pull_sample_d)(
                self.0,
                values.as_mut_ptr(),
                channels as i32,
                wait_s,
                &mut ec,
            )
        };
        if ec == ERROR_LOST {
            return Err(lost(
                "the stream was lost (its outlet closed or its host is gone)",
            ));
        }
        if first == 0.0 {
            return Ok(0);
        }
        stamps[0] = first;
        let (rest, rest_stamps) = (&mut values[channels..], &mut stamps[1..]);
        // SAFETY: both buffers hold `rest_stamps.len()` frames.
        let more = unsafe {
            (api.pull_chunk_d)(
                self.0,
                rest.as_mut_ptr(),
                rest_stamps.as_mut_ptr(),
                rest.len() as c_ulong,
                rest_stamps.len() as c_ulong,
                0.0,
                &mut ec,
            )
        };
        if ec == ERROR_LOST {
            return Err(lost(
                "the stream was lost (its outlet closed or its host is gone)",
            ));
        }
        Ok(1 + more as usize / channels)
    }

    /// The offset that maps the sender's timestamps onto this machine's
    /// clock; `None` while liblsl has no estimate yet.
    fn time_correction(&self, timeout_s: f64) -> Result<Option<f64>, DeviceError> {
        let api = &lib()
            .expect("an inlet exists only once liblsl is loaded")
            .api;
        let mut ec = 0;
        // SAFETY: a live inlet.
        let offset = unsafe { (api.time_correction)(self.0, timeout_s, &mut ec) };
        match ec {
            0 => Ok(Some(offset)),
            ERROR_TIMEOUT => Ok(None),
            ERROR_LOST => Err(lost("the stream was lost during a time correction")),
            _ => Ok(None),
        }
    }
}

/// Where each sample goes in the session's sample index, from its timestamp.
///
/// Timestamps are compared with a prediction, the previous predicted time
/// plus one period nudged by a fraction of each error, rather than with the
/// previous timestamp: jitter then cannot add up to a false gap, and a sender
/// whose true rate differs slightly from the nominal one is still followed.
#[derive(Debug, Clone)]
pub struct SampleClock {
    period_s: f64,
    gap_periods: f64,
    /// A longer gap than this cannot be lost samples (the stream would have
    /// stalled first): the sender's clock jumped.
    max_gap_frames: u64,
    next: u64,
    last_stamp: Option<f64>,
    /// When the next sample is expected (meaningful once `last_stamp` is set).
    predicted: f64,
}

/// How much of each timestamp's error moves the prediction.
const PREDICTION_GAIN: f64 = 1.0 / 16.0;

/// How a timestamp relates to the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Within `gap_periods` periods of the previous sample: the next sample.
    Next,
    /// Later than that: this many frames were lost before it.
    Gap(u64),
    /// Earlier than the previous timestamp; the sample follows the previous one.
    Backwards,
    /// Not a number, or so far ahead that the stream would have stalled;
    /// the sample follows the previous one.
    Jump,
}

impl SampleClock {
    pub fn new(rate: SampleRate, gap_periods: f64, stall_ms: f64) -> Self {
        Self {
            period_s: 1.0 / rate.hz(),
            gap_periods,
            max_gap_frames: rate.samples_in_ms(stall_ms),
            next: 0,
            last_stamp: None,
            predicted: 0.0,
        }
    }

    /// The sample index of a sample stamped `stamp`, and how it was placed.
    pub fn place(&mut self, stamp: f64) -> (u64, Step) {
        let step = match self.last_stamp {
            _ if !stamp.is_finite() => Step::Jump,
            None => Step::Next,
            Some(last) if stamp < last => Step::Backwards,
            Some(last) => {
                // Periods since the previous sample's (predicted) time.
                let late = (stamp - self.predicted) / self.period_s + 1.0;
                if late <= self.gap_periods {
                    Step::Next
                } else {
                    let lost = (((stamp - last) / self.period_s).round() as u64)
                        .saturating_sub(1)
                        .max(1);
                    if lost > self.max_gap_frames {
                        Step::Jump
                    } else {
                        Step::Gap(lost)
                    }
                }
            }
        };
        if stamp.is_finite() {
            self.predicted = match (step, self.last_stamp) {
                (Step::Next, Some(_)) => {
                    self.predicted + PREDICTION_GAIN * (stamp - self.predicted) + self.period_s
                }
                // The first sample, or after a discontinuity: start afresh.
                _ => stamp + self.period_s,
            };
            self.last_stamp = Some(stamp);
        }
        let index = self.next + if let Step::Gap(n) = step { n } else { 0 };
        self.next = index + 1;
        (index, step)
    }
}

/// What the LSL source counted, readable while the session runs.
#[derive(Debug, Default)]
pub struct LslCounters {
    frames: AtomicU64,
    gaps: AtomicU64,
    gap_frames: AtomicU64,
    timestamps_backwards: AtomicU64,
    timestamp_jumps: AtomicU64,
    time_correction_jumps: AtomicU64,
    /// The last time correction (f64 bits); NaN while there is none.
    time_correction_s: AtomicU64,
}

impl LslCounters {
    fn store_correction(&self, correction: Option<f64>) {
        self.time_correction_s
            .store(correction.unwrap_or(f64::NAN).to_bits(), Ordering::Relaxed);
    }

    /// One warning per kind of trouble (the supervisor shows each once).
    pub fn warn(&self, at: u64, warn: &mut dyn FnMut(String, String)) {
        for (key, counter, what) in [
            (
                "lsl-gap",
                &self.gaps,
                "timestamps skipped ahead: frames lost, counted as a gap",
            ),
            (
                "lsl-backwards",
                &self.timestamps_backwards,
                "timestamps went backwards",
            ),
            (
                "lsl-jump",
                &self.timestamp_jumps,
                "the sender's clock jumped",
            ),
            (
                "lsl-correction",
                &self.time_correction_jumps,
                "the time correction jumped",
            ),
        ] {
            if counter.load(Ordering::Relaxed) > 0 {
                warn(
                    key.into(),
                    format!("lsl: {what} (first seen by sample {at}; totals in summary.json)"),
                );
            }
        }
    }

    /// The source's section of `summary.json`.
    pub fn report(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let correction = f64::from_bits(get(&self.time_correction_s));
        serde_json::json!({
            "kind": "lsl",
            "frames": get(&self.frames),
            "gaps": get(&self.gaps),
            "gap_frames": get(&self.gap_frames),
            "timestamps_backwards": get(&self.timestamps_backwards),
            "timestamp_jumps": get(&self.timestamp_jumps),
            "time_correction_jumps": get(&self.time_correction_jumps),
            "time_correction_s": correction.is_finite().then_some(correction),
        })
    }
}

/// A subscribed LSL stream feeding the acquisition ring.
pub struct LslSource {
    inlet: Inlet,
    channels: usize,
    uv_per_unit: Vec<f64>,
    clock: SampleClock,
    stall: Duration,
    correction: Option<f64>,
    /// A change of the time correction larger than this is counted as a jump.
    correction_jump_s: f64,
    pub counters: Arc<LslCounters>,
}

impl LslSource {
    /// Pull samples, scaled to µV and placed by their timestamps, into `out`
    /// until `stop` is set, the stream is lost, or it stalls.
    pub fn run(&mut self, out: &mut dyn FrameSink, stop: &AtomicBool) -> Result<(), DeviceError> {
        let mut values = vec![0.0; MAX_CHUNK_FRAMES * self.channels];
        let mut scaled = vec![0.0; MAX_CHUNK_FRAMES * self.channels];
        let mut stamps = vec![0.0; MAX_CHUNK_FRAMES];
        let wait_s = (self.stall / 4)
            .min(Duration::from_millis(100))
            .as_secs_f64();
        let mut last_data = Instant::now();
        let mut last_correction = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let frames = self.inlet.pull(&mut values, &mut stamps, wait_s)?;
            let now = Instant::now();
            if frames > 0 {
                last_data = now;
                self.push(&values, &stamps[..frames], now, &mut scaled, out);
            } else if now.duration_since(last_data) > self.stall {
                return Err(DeviceError::Stalled {
                    device: "lsl",
                    ms: self.stall.as_millis() as u64,
                });
            }
            if now.duration_since(last_correction) >= CORRECTION_PERIOD {
                last_correction = now;
                self.update_correction()?;
            }
        }
        Ok(())
    }

    /// Scale and place `stamps.len()` frames of `values`, and push them in
    /// runs of consecutive sample indices (a gap starts a new run).
    fn push(
        &mut self,
        values: &[f64],
        stamps: &[f64],
        arrived: Instant,
        scaled: &mut [f64],
        out: &mut dyn FrameSink,
    ) {
        let ch = self.channels;
        let mut run_start = 0;
        let mut run_index = 0;
        for (k, &stamp) in stamps.iter().enumerate() {
            let (index, step) = self.clock.place(stamp);
            match step {
                Step::Next => {}
                Step::Gap(lost) => {
                    self.counters.gaps.fetch_add(1, Ordering::Relaxed);
                    self.counters.gap_frames.fetch_add(lost, Ordering::Relaxed);
                }
                Step::Backwards => {
                    self.counters
                        .timestamps_backwards
                        .fetch_add(1, Ordering::Relaxed);
                }
                Step::Jump => {
                    self.counters
                        .timestamp_jumps
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            if k == 0 {
                run_index = index;
            } else if index != run_index + (k - run_start) as u64 {
                out.push(run_index, &scaled[run_start * ch..k * ch], arrived);
                (run_start, run_index) = (k, index);
            }
            for ((s, &v), &uv) in scaled[k * ch..(k + 1) * ch]
                .iter_mut()
                .zip(&values[k * ch..(k + 1) * ch])
                .zip(&self.uv_per_unit)
            {
                *s = v * uv;
            }
        }
        out.push(
            run_index,
            &scaled[run_start * ch..stamps.len() * ch],
            arrived,
        );
        self.counters
            .frames
            .fetch_add(stamps.len() as u64, Ordering::Relaxed);
    }

    fn update_correction(&mut self) -> Result<(), DeviceError> {
        let Some(now) = self.inlet.time_correction(0.0)? else {
            return Ok(());
        };
        if self
            .correction
            .is_some_and(|before| (now - before).abs() > self.correction_jump_s)
        {
            self.counters
                .time_correction_jumps
                .fetch_add(1, Ordering::Relaxed);
        }
        self.correction = Some(now);
        self.counters.store_correction(Some(now));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
