//! A sound card's input channels as a source (`[source] kind = "audio"`):
//! an amplifier's analog outputs wired to the card. The [`AudioSource`]
//! adapter, whose cpal capture callback writes straight into the acquisition
//! ring, and the config section.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use serde::{Deserialize, Serialize};

use super::audio::{device_name, find_device, record_stream_error, AudioError, Direction};
use super::{check_stall_ms, DeviceError, FrameSink, OpenError, Opened, Source};
use crate::config::pipeline::{check_range, invalid, ConfigError};
use crate::time::SampleRate;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSourceConfig {
    /// ALSA PCM name as `neuroloop devices` lists it; the default device if absent.
    #[serde(default)]
    pub device: Option<String>,
    /// Device channels to use, 0-based; they become the source's channels `in0`, `in1`, ….
    #[serde(default = "default_input_channels")]
    pub channels: Vec<u16>,
    /// Channels the stream is opened with; the highest used index + 1 if absent.
    #[serde(default)]
    pub device_channels: Option<u16>,
    #[serde(default = "super::audio::default_rate_hz")]
    pub rate_hz: u32,
    /// Frames per callback requested from the device (its period).
    #[serde(default = "super::audio::default_period_frames")]
    pub period_frames: u32,
    /// The voltage at the sound card input that reads as digital full scale
    /// (±1.0); samples become µV as `sample × volts_per_full_scale × 1e6`.
    /// Include the amplifier's gain: an amplifier of gain 1000 feeding a card
    /// whose full scale is 1 V gives 0.001.
    pub volts_per_full_scale: f64,
    /// Longest silence tolerated before the device counts as lost.
    #[serde(default = "super::default_stall_ms")]
    pub stall_ms: f64,
}

impl AudioSourceConfig {
    /// Channels the stream is opened with.
    pub fn stream_channels(&self) -> u16 {
        self.device_channels
            .unwrap_or_else(|| self.channels.iter().max().map_or(1, |&c| c + 1))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.device.as_deref().is_some_and(|d| d.trim().is_empty()) {
            return Err(invalid("source.device", "must name a device".into()));
        }
        if self.channels.is_empty() {
            return Err(invalid(
                "source.channels",
                "must list at least one channel".into(),
            ));
        }
        let stream = self.stream_channels();
        check_range("source.device_channels", f64::from(stream), 1.0, 64.0)?;
        if let Some(&bad) = self.channels.iter().find(|&&ch| ch >= stream) {
            return Err(invalid(
                "source.channels",
                format!("channel {bad} is beyond the {stream} device channels"),
            ));
        }
        check_range("source.rate_hz", f64::from(self.rate_hz), 8000.0, 384_000.0)?;
        check_range(
            "source.period_frames",
            f64::from(self.period_frames),
            16.0,
            16384.0,
        )?;
        if !(self.volts_per_full_scale.is_finite() && self.volts_per_full_scale > 0.0) {
            return Err(invalid(
                "source.volts_per_full_scale",
                format!(
                    "must be a positive number of volts, got {}",
                    self.volts_per_full_scale
                ),
            ));
        }
        check_stall_ms(self.stall_ms)
    }
}

fn default_input_channels() -> Vec<u16> {
    vec![0]
}

/// Counters of an input stream, written by the callbacks.
#[derive(Debug, Default)]
pub struct InputCounters {
    pub callbacks: AtomicU64,
    pub frames_captured: AtomicU64,
    /// Frames the callback could not push because the acquisition ring was
    /// full (the processing thread was behind; `runtime.acquisition_overrun_frames`
    /// counts the same frames). The sample index still advances over them,
    /// so the gap is visible.
    pub ring_overrun_frames: AtomicU64,
    /// Overruns reported by the backend (ALSA xruns): frames lost in the device.
    pub xruns: AtomicU64,
    pub stream_errors: AtomicU64,
    /// The stream cannot continue (device gone or stream invalidated).
    pub fatal: AtomicBool,
}

impl InputCounters {
    pub fn snapshot(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "callbacks": get(&self.callbacks),
            "frames_captured": get(&self.frames_captured),
            "ring_overrun_frames": get(&self.ring_overrun_frames),
            "xruns": get(&self.xruns),
            "stream_errors": get(&self.stream_errors),
        })
    }
}

/// The capture callback's state: it converts each period of the device's
/// interleaved samples to µV on the chosen channels and pushes it straight
/// into the acquisition ring (the sink), with the device frame index of its
/// first frame and the host time the callback received it. Never blocks,
/// allocates, locks or logs.
struct Capture {
    sink: Box<dyn FrameSink + Send>,
    /// Device channel of each source channel.
    channels: Vec<usize>,
    /// Channels the stream delivers per frame.
    stride: usize,
    /// Largest chunk pushed (frames): `Opened::max_chunk_frames`.
    period_frames: usize,
    uv_per_full_scale: f64,
    /// One chunk in µV, source channels interleaved (preallocated).
    scaled: Vec<f64>,
    next_frame: u64,
    counters: Arc<InputCounters>,
    /// When data last arrived, as ns after `started` (0: none yet, which
    /// counts the silence from the start).
    last_arrival_ns: Arc<AtomicU64>,
    started: Instant,
    /// Set once the source has stopped: a callback still running while the
    /// stream is torn down pushes nothing more.
    closed: Arc<AtomicBool>,
}

impl Capture {
    fn push<T>(&mut self, data: &[T], arrived: Instant)
    where
        T: cpal::Sample,
        f32: cpal::FromSample<T>,
    {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.counters.callbacks.fetch_add(1, Ordering::Relaxed);
        let width = self.channels.len();
        // Chunks of at most `period_frames`, so the ring's buffers fit any chunk.
        for part in data.chunks(self.period_frames * self.stride) {
            let frames = part.len() / self.stride;
            let scaled = &mut self.scaled[..frames * width];
            for (src, dst) in part
                .chunks_exact(self.stride)
                .zip(scaled.chunks_exact_mut(width))
            {
                for (d, &c) in dst.iter_mut().zip(&self.channels) {
                    *d = f64::from(src[c].to_sample::<f32>()) * self.uv_per_full_scale;
                }
            }
            let dropped = self.sink.push(self.next_frame, scaled, arrived);
            if dropped > 0 {
                self.counters
                    .ring_overrun_frames
                    .fetch_add(dropped as u64, Ordering::Relaxed);
            }
            self.next_frame += frames as u64;
        }
        self.counters
            .frames_captured
            .store(self.next_frame, Ordering::Relaxed);
        let since = arrived.saturating_duration_since(self.started);
        self.last_arrival_ns
            .store(since.as_nanos() as u64, Ordering::Release);
    }
}

/// A sound card's input, checked when the session opens it; the capture
/// stream is built when the acquisition thread runs it, with the
/// acquisition ring moved into its callback (see [`Capture`]), so no thread
/// and no second ring sit between the device and the processing thread.
pub struct AudioSource {
    handle: cpal::Device,
    stream_config: cpal::StreamConfig,
    /// Frames per period: the largest chunk pushed.
    period_frames: usize,
    format: cpal::SampleFormat,
    pub counters: Arc<InputCounters>,
    /// The first message of each error kind, for the summary.
    pub errors: Arc<Mutex<Vec<String>>>,
    pub device: String,
    /// Device channel of each source channel.
    channels: Vec<usize>,
    uv_per_full_scale: f64,
    stall: Duration,
}

impl AudioSource {
    /// Capture into `out` until `stop` is set, the stream fails, or no data
    /// arrives for the stall time. The callback pushes into `out`; this
    /// thread only watches, and stops the stream before it returns, so
    /// nothing is pushed after.
    pub fn run(self, out: Box<dyn FrameSink + Send>, stop: &AtomicBool) -> Result<(), DeviceError> {
        let started = Instant::now();
        let last_arrival_ns = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let stream = self.start(out, started, last_arrival_ns.clone(), closed.clone())?;
        let result = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            if let Some(message) = self.fatal_error() {
                break Err(DeviceError::Disconnected {
                    device: "audio",
                    message,
                });
            }
            let last = started + Duration::from_nanos(last_arrival_ns.load(Ordering::Acquire));
            if Instant::now().saturating_duration_since(last) > self.stall {
                break Err(DeviceError::Stalled {
                    device: "audio",
                    ms: self.stall.as_millis() as u64,
                });
            }
            // Unparked by the error callback when the stream fails, and at shutdown.
            std::thread::park_timeout(self.stall / 4);
        };
        // Nothing is pushed from here on; dropping the stream stops it and
        // joins its callback thread (which may deliver one more period, e.g.
        // when a quiet device wakes up, and drops it).
        closed.store(true, Ordering::Release);
        drop(stream);
        result
    }

    /// Build and start the capture stream with `out` in its callback.
    fn start(
        &self,
        out: Box<dyn FrameSink + Send>,
        started: Instant,
        last_arrival_ns: Arc<AtomicU64>,
        closed: Arc<AtomicBool>,
    ) -> Result<cpal::Stream, DeviceError> {
        let mut capture = Capture {
            sink: out,
            channels: self.channels.clone(),
            stride: usize::from(self.stream_config.channels),
            period_frames: self.period_frames,
            uv_per_full_scale: self.uv_per_full_scale,
            scaled: vec![0.0; self.period_frames * self.channels.len()],
            next_frame: 0,
            counters: self.counters.clone(),
            last_arrival_ns,
            started,
            closed,
        };
        let on_error = {
            let (counters, errors) = (self.counters.clone(), self.errors.clone());
            let label = format!("input {}", self.device);
            let watcher = std::thread::current();
            move |e: cpal::StreamError| {
                record_stream_error(
                    &label,
                    &counters.xruns,
                    &counters.stream_errors,
                    &counters.fatal,
                    &errors,
                    e,
                );
                if counters.fatal.load(Ordering::Acquire) {
                    watcher.unpark();
                }
            }
        };
        let config = &self.stream_config;
        let stream = match self.format {
            cpal::SampleFormat::I16 => self.handle.build_input_stream(
                config,
                move |data: &[i16], _: &cpal::InputCallbackInfo| capture.push(data, Instant::now()),
                on_error,
                None,
            ),
            cpal::SampleFormat::I32 => self.handle.build_input_stream(
                config,
                move |data: &[i32], _: &cpal::InputCallbackInfo| capture.push(data, Instant::now()),
                on_error,
                None,
            ),
            _ => self.handle.build_input_stream(
                config,
                move |data: &[f32], _: &cpal::InputCallbackInfo| capture.push(data, Instant::now()),
                on_error,
                None,
            ),
        };
        let cannot_open = |message: String| DeviceError::Open {
            device: "audio",
            port: self.device.clone(),
            message,
        };
        let stream = stream.map_err(|e| cannot_open(e.to_string()))?;
        stream.play().map_err(|e| cannot_open(e.to_string()))?;
        Ok(stream)
    }

    /// Why the stream cannot continue, if it cannot.
    fn fatal_error(&self) -> Option<String> {
        self.counters.fatal.load(Ordering::Acquire).then(|| {
            self.errors
                .lock()
                .map(|e| e.last().cloned().unwrap_or_default())
                .unwrap_or_default()
        })
    }
}

/// What building the capture stream would refuse, checked when the source
/// is opened (a capture stream starts as soon as it is built, so it is built
/// only when the session starts): the period against the device's buffer
/// size range (cpal's own check), and a configuration the device lists with
/// the sample format, the channel count and the rate.
fn check_input_config(
    device: &cpal::Device,
    default: Option<&cpal::SupportedStreamConfig>,
    config: &cpal::StreamConfig,
    format: cpal::SampleFormat,
) -> Result<(), String> {
    if let (Some(d), cpal::BufferSize::Fixed(period)) = (default, config.buffer_size) {
        if let cpal::SupportedBufferSize::Range { min, max } = *d.buffer_size() {
            if !(min..=max).contains(&period) {
                return Err(format!(
                    "a period of {period} frames is outside the device's buffer sizes {min}..={max}"
                ));
            }
        }
    }
    let ranges: Vec<_> = device
        .supported_input_configs()
        .map_err(|e| e.to_string())?
        .collect();
    offered(&ranges, config, format)
}

/// Is `config` in `format` among the configurations a device lists?
fn offered(
    ranges: &[cpal::SupportedStreamConfigRange],
    config: &cpal::StreamConfig,
    format: cpal::SampleFormat,
) -> Result<(), String> {
    let wanted = config.channels;
    // cpal lists at most 32 channels per configuration.
    let fits = |r: &cpal::SupportedStreamConfigRange| {
        r.sample_format() == format
            && (r.channels() == wanted || (wanted > 32 && r.channels() == 32))
            && (r.min_sample_rate()..=r.max_sample_rate()).contains(&config.sample_rate)
    };
    if ranges.iter().any(fits) {
        return Ok(());
    }
    let listed: Vec<String> = ranges
        .iter()
        .filter(|r| r.sample_format() == format)
        .take(8)
        .map(|r| {
            format!(
                "{} ch {}..={} Hz",
                r.channels(),
                r.min_sample_rate(),
                r.max_sample_rate()
            )
        })
        .collect();
    Err(format!(
        "cannot capture {wanted} channels of {format} at {} Hz (the device offers for {format}: {})",
        config.sample_rate,
        if listed.is_empty() {
            "nothing".into()
        } else {
            listed.join(", ")
        }
    ))
}

/// Find a sound card's input and check it can capture as configured; the
/// capture starts when the source runs.
pub fn open(c: &AudioSourceConfig) -> Result<Opened, OpenError> {
    let handle = find_device(c.device.as_deref(), Direction::Input)?;
    let name = device_name(&handle);
    let default = handle.default_input_config().ok();
    // The device's default input format when it is 16-bit, 32-bit integer or float, else f32.
    let format = match default.as_ref().map(|d| d.sample_format()) {
        Some(f @ (cpal::SampleFormat::I16 | cpal::SampleFormat::I32)) => f,
        _ => cpal::SampleFormat::F32,
    };
    let stream_config = cpal::StreamConfig {
        channels: c.stream_channels(),
        sample_rate: c.rate_hz,
        buffer_size: cpal::BufferSize::Fixed(c.period_frames),
    };
    check_input_config(&handle, default.as_ref(), &stream_config, format).map_err(|message| {
        AudioError {
            device: name.clone(),
            message,
        }
    })?;
    let rate = SampleRate::new(f64::from(c.rate_hz)).map_err(|e| ConfigError::Invalid {
        field: "source.rate_hz",
        message: e.to_string(),
    })?;
    let description = format!(
        "audio input {} ({}, channels {:?} of {}, {} V full scale)",
        name,
        format,
        c.channels,
        c.stream_channels(),
        c.volts_per_full_scale
    );
    Ok(Opened {
        rate,
        labels: c.channels.iter().map(|k| format!("in{k}")).collect(),
        description,
        max_chunk_frames: c.period_frames as usize,
        full_scale_uv: vec![c.volts_per_full_scale * 1e6; c.channels.len()],
        source: Source::Audio(AudioSource {
            handle,
            stream_config,
            period_frames: c.period_frames as usize,
            format,
            counters: Arc::new(InputCounters::default()),
            errors: Arc::new(Mutex::new(Vec::new())),
            device: name,
            channels: c.channels.iter().map(|&k| usize::from(k)).collect(),
            uv_per_full_scale: c.volts_per_full_scale * 1e6,
            stall: Duration::from_secs_f64(c.stall_ms / 1000.0),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::{SampleFormat, SupportedBufferSize, SupportedStreamConfigRange};

    fn range(channels: u16, rates: (u32, u32), format: SampleFormat) -> SupportedStreamConfigRange {
        let buffer = SupportedBufferSize::Range { min: 64, max: 8192 };
        SupportedStreamConfigRange::new(channels, rates.0, rates.1, buffer, format)
    }

    fn wanted(channels: u16, rate: u32) -> cpal::StreamConfig {
        cpal::StreamConfig {
            channels,
            sample_rate: rate,
            buffer_size: cpal::BufferSize::Fixed(256),
        }
    }

    /// Chunks a sink took: start and samples.
    type Taken = Arc<Mutex<Vec<(u64, Vec<f64>)>>>;

    /// A sink with room for `room` frames in all, which keeps what it takes.
    struct Bounded {
        room: usize,
        got: Taken,
    }

    impl FrameSink for Bounded {
        fn push(&mut self, start: u64, samples: &[f64], _: Instant) -> usize {
            let frames = samples.len();
            if frames > self.room {
                return frames;
            }
            self.room -= frames;
            self.got.lock().unwrap().push((start, samples.to_vec()));
            0
        }
    }

    #[test]
    fn the_callback_scales_the_chosen_channel_in_periods_and_counts_what_the_ring_drops() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let counters = Arc::new(InputCounters::default());
        let closed = Arc::new(AtomicBool::new(false));
        let last = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut capture = Capture {
            sink: Box::new(Bounded {
                room: 10,
                got: got.clone(),
            }),
            channels: vec![2],
            stride: 3,
            period_frames: 4,
            uv_per_full_scale: 2000.0,
            scaled: vec![0.0; 4],
            next_frame: 0,
            counters: counters.clone(),
            last_arrival_ns: last.clone(),
            started,
            closed: closed.clone(),
        };
        // Frame i, device channel c holds i·100 + c (as i16 of full scale).
        let frame = |i: i16| [i * 100, i * 100 + 1, i * 100 + 2];
        let data: Vec<i16> = (0..10).flat_map(frame).collect();
        capture.push(&data, Instant::now());
        // 10 frames in periods of 4, 4, 2, which fill the sink; then 6 more
        // (periods of 4 and 2) that it drops.
        let data: Vec<i16> = (10..16).flat_map(frame).collect();
        capture.push(&data, Instant::now());
        let got = got.lock().unwrap();
        let starts: Vec<u64> = got.iter().map(|c| c.0).collect();
        assert_eq!(starts, [0, 4, 8]);
        for (start, chunk) in got.iter() {
            for (k, &uv) in chunk.iter().enumerate() {
                let raw = (*start as i16 + k as i16) * 100 + 2;
                assert_eq!(uv, f64::from(cpal::Sample::to_sample::<f32>(raw)) * 2000.0);
            }
        }
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(get(&counters.callbacks), 2);
        assert_eq!(get(&counters.frames_captured), 16);
        assert_eq!(get(&counters.ring_overrun_frames), 6);
        assert!(get(&last) > 0);
        // Once closed, a late callback pushes and counts nothing.
        closed.store(true, Ordering::Release);
        drop(got);
        capture.push(&data, Instant::now());
        assert_eq!(get(&counters.callbacks), 2);
        assert_eq!(get(&counters.frames_captured), 16);
    }

    #[test]
    fn a_configuration_is_offered_only_with_its_format_channels_and_rate() {
        let card = [
            range(2, (44_100, 44_100), SampleFormat::I16),
            range(2, (48_000, 48_000), SampleFormat::I16),
            range(4, (8_000, 96_000), SampleFormat::I32),
            range(32, (48_000, 48_000), SampleFormat::F32),
        ];
        assert!(offered(&card, &wanted(2, 48_000), SampleFormat::I16).is_ok());
        assert!(offered(&card, &wanted(4, 22_050), SampleFormat::I32).is_ok());
        // cpal lists 32 channels at most, so more are taken as offered there.
        assert!(offered(&card, &wanted(48, 48_000), SampleFormat::F32).is_ok());
        let err = offered(&card, &wanted(2, 96_000), SampleFormat::I16).unwrap_err();
        assert!(
            err.contains("cannot capture 2 channels of i16 at 96000 Hz"),
            "{err}"
        );
        assert!(err.contains("2 ch 48000..=48000 Hz"), "{err}");
        assert!(offered(&card, &wanted(3, 48_000), SampleFormat::I32).is_err());
        let err = offered(&card, &wanted(2, 48_000), SampleFormat::F32).unwrap_err();
        assert!(err.contains("32 ch"), "{err}");
        let err = offered(&[], &wanted(1, 48_000), SampleFormat::F32).unwrap_err();
        assert!(err.contains("offers for f32: nothing"), "{err}");
    }
}
