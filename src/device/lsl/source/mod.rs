//! `[source] kind = "lsl"`: an LSL stream as the session's source.

use std::ffi::c_ulong;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::device::{DeviceError, FrameSink, OpenError, Opened, Source};
use crate::time::SampleRate;

use super::{
    c_string, lib, lost, resolve, resolve_all, Handle, LslError, StreamInfo, ERROR_LOST,
    ERROR_TIMEOUT, FORMAT_STRING,
};

mod clock;
mod config;

pub use clock::{SampleClock, Step};
use config::uv_per_unit;
pub use config::LslSourceConfig;

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
