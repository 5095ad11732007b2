//! A sound card's input channels as a source (`[source] kind = "audio"`):
//! an amplifier's analog outputs wired to the card. The cpal capture stream,
//! the [`AudioSource`] adapter and the config section.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
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

/// What an audio input is set up with.
#[derive(Debug, Clone)]
pub struct AudioInputSpec {
    pub device: Option<String>,
    /// Channels the stream is opened with (the device's interleaving).
    pub device_channels: u16,
    pub rate_hz: u32,
    pub period_frames: u32,
}

/// Counters of an input stream, written by the callbacks.
#[derive(Debug, Default)]
pub struct InputCounters {
    pub callbacks: AtomicU64,
    pub frames_captured: AtomicU64,
    /// Frames the callback could not queue because the consumer was behind
    /// (the sample index still advances over them, so the gap is visible).
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

/// A run of captured frames in the input ring: the device frame index of its
/// first frame and the host time the callback received it.
#[derive(Debug, Clone, Copy)]
pub struct InputChunk {
    pub start: u64,
    pub frames: usize,
    pub arrived: Instant,
}

/// A running capture stream. The callback copies the device's interleaved
/// samples (as f32 full-scale fractions) into a lock-free ring with a header
/// per period and wakes the consumer; [`AudioInput::pop`] takes them out.
pub struct AudioInput {
    // Dropping the stream stops it; kept for that.
    _stream: cpal::Stream,
    samples: HeapCons<f32>,
    chunks: HeapCons<InputChunk>,
    /// The thread the callback wakes, set by the consumer when it starts.
    waker: Arc<OnceLock<std::thread::Thread>>,
    pub counters: Arc<InputCounters>,
    /// The first message of each error kind, for the summary.
    pub errors: Arc<Mutex<Vec<String>>>,
    pub device: String,
    pub sample_format: String,
    channels: usize,
    period_frames: usize,
}

/// The callback's side of the input ring.
struct InputRing {
    samples: HeapProd<f32>,
    chunks: HeapProd<InputChunk>,
    channels: usize,
    period_frames: usize,
    next_frame: u64,
    waker: Arc<OnceLock<std::thread::Thread>>,
    counters: Arc<InputCounters>,
}

impl InputRing {
    /// Queue one callback's data; never blocks or allocates.
    fn push<T>(&mut self, data: &[T], arrived: Instant)
    where
        T: cpal::Sample,
        f32: cpal::FromSample<T>,
    {
        self.counters.callbacks.fetch_add(1, Ordering::Relaxed);
        // Periods of at most `period_frames`, so the consumer's buffer fits any chunk.
        for part in data.chunks(self.period_frames * self.channels) {
            let frames = part.len() / self.channels;
            let start = self.next_frame;
            self.next_frame += frames as u64;
            if self.samples.vacant_len() < part.len() || self.chunks.is_full() {
                self.counters
                    .ring_overrun_frames
                    .fetch_add(frames as u64, Ordering::Relaxed);
                continue;
            }
            self.samples
                .push_iter(part.iter().map(|s| s.to_sample::<f32>()));
            let _ = self.chunks.try_push(InputChunk {
                start,
                frames,
                arrived,
            });
        }
        self.counters
            .frames_captured
            .store(self.next_frame, Ordering::Relaxed);
        if let Some(t) = self.waker.get() {
            t.unpark();
        }
    }
}

impl AudioInput {
    /// Open and start capturing. The sample format is the device's default
    /// input format when it is 16-bit, 32-bit integer or float, else f32.
    pub fn open(spec: &AudioInputSpec) -> Result<Self, AudioError> {
        let device = find_device(spec.device.as_deref(), Direction::Input)?;
        let name = device_name(&device);
        let open_err = |message: String| AudioError {
            device: name.clone(),
            message,
        };
        let format = match device.default_input_config().map(|c| c.sample_format()) {
            Ok(f @ (cpal::SampleFormat::I16 | cpal::SampleFormat::I32)) => f,
            _ => cpal::SampleFormat::F32,
        };
        let channels = usize::from(spec.device_channels);
        let period_frames = spec.period_frames as usize;
        // Two seconds of signal, so a consumer delayed by scheduling loses nothing.
        let ring_frames = (spec.rate_hz as usize * 2).max(4 * period_frames);
        let (samples_tx, samples) = HeapRb::<f32>::new(ring_frames * channels).split();
        let (chunks_tx, chunks) =
            HeapRb::<InputChunk>::new(ring_frames / period_frames + 1).split();
        let waker = Arc::new(OnceLock::new());
        let counters = Arc::new(InputCounters::default());
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut ring = InputRing {
            samples: samples_tx,
            chunks: chunks_tx,
            channels,
            period_frames,
            next_frame: 0,
            waker: waker.clone(),
            counters: counters.clone(),
        };
        let config = cpal::StreamConfig {
            channels: spec.device_channels,
            sample_rate: spec.rate_hz,
            buffer_size: cpal::BufferSize::Fixed(spec.period_frames),
        };
        let on_error = {
            let (counters, errors) = (counters.clone(), errors.clone());
            let label = format!("input {name}");
            move |e: cpal::StreamError| {
                record_stream_error(
                    &label,
                    &counters.xruns,
                    &counters.stream_errors,
                    &counters.fatal,
                    &errors,
                    e,
                )
            }
        };
        let stream = match format {
            cpal::SampleFormat::I16 => device.build_input_stream(
                &config,
                move |data: &[i16], _: &cpal::InputCallbackInfo| ring.push(data, Instant::now()),
                on_error,
                None,
            ),
            cpal::SampleFormat::I32 => device.build_input_stream(
                &config,
                move |data: &[i32], _: &cpal::InputCallbackInfo| ring.push(data, Instant::now()),
                on_error,
                None,
            ),
            _ => device.build_input_stream(
                &config,
                move |data: &[f32], _: &cpal::InputCallbackInfo| ring.push(data, Instant::now()),
                on_error,
                None,
            ),
        }
        .map_err(|e| open_err(e.to_string()))?;
        stream.play().map_err(|e| open_err(e.to_string()))?;
        Ok(Self {
            _stream: stream,
            samples,
            chunks,
            waker,
            counters,
            errors,
            device: name,
            sample_format: format.to_string(),
            channels,
            period_frames,
        })
    }

    /// Have the callback wake the calling thread whenever it queues data.
    pub fn wake_current_thread(&self) {
        let _ = self.waker.set(std::thread::current());
    }

    /// Samples one chunk can hold at most (`pop` needs a buffer this long).
    pub fn max_chunk_samples(&self) -> usize {
        self.period_frames * self.channels
    }

    /// Channels the stream delivers per frame.
    pub fn device_channels(&self) -> usize {
        self.channels
    }

    /// The next queued chunk and its interleaved samples, copied into `out`.
    pub fn pop<'a>(&mut self, out: &'a mut [f32]) -> Option<(InputChunk, &'a [f32])> {
        let chunk = self.chunks.try_pop()?;
        let got = self
            .samples
            .pop_slice(&mut out[..chunk.frames * self.channels]);
        Some((chunk, &out[..got]))
    }

    /// Why the stream cannot continue, if it cannot.
    pub fn fatal_error(&self) -> Option<String> {
        self.counters.fatal.load(Ordering::Acquire).then(|| {
            self.errors
                .lock()
                .map(|e| e.last().cloned().unwrap_or_default())
                .unwrap_or_default()
        })
    }
}

/// A sound card's input stream: the cpal callback fills a ring (see
/// [`AudioInput`]); the acquisition thread scales the chosen channels to µV.
pub struct AudioSource {
    pub input: AudioInput,
    /// Device channel of each source channel.
    channels: Vec<usize>,
    uv_per_full_scale: f64,
    stall: Duration,
}

impl AudioSource {
    /// Move captured frames, scaled to µV, into `out` until `stop` is set,
    /// the stream fails, or no data arrives for the stall time.
    pub fn run(&mut self, out: &mut dyn FrameSink, stop: &AtomicBool) -> Result<(), DeviceError> {
        self.input.wake_current_thread();
        let mut raw = vec![0.0f32; self.input.max_chunk_samples()];
        let stride = self.input.device_channels();
        let mut chunk = vec![0.0; raw.len() / stride * self.channels.len()];
        let mut last_data = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let mut got_any = false;
            while let Some((head, samples)) = self.input.pop(&mut raw) {
                let mut frames = 0;
                for (src, dst) in samples
                    .chunks_exact(stride)
                    .zip(chunk.chunks_exact_mut(self.channels.len()))
                {
                    for (d, &c) in dst.iter_mut().zip(&self.channels) {
                        *d = f64::from(src[c]) * self.uv_per_full_scale;
                    }
                    frames += 1;
                }
                out.push(
                    head.start,
                    &chunk[..frames * self.channels.len()],
                    head.arrived,
                );
                got_any = true;
            }
            if let Some(message) = self.input.fatal_error() {
                return Err(DeviceError::Disconnected {
                    device: "audio",
                    message,
                });
            }
            let now = Instant::now();
            if got_any {
                last_data = now;
            } else if now.duration_since(last_data) > self.stall {
                return Err(DeviceError::Stalled {
                    device: "audio",
                    ms: self.stall.as_millis() as u64,
                });
            }
            // The callback unparks this thread when it queues data.
            std::thread::park_timeout(self.stall / 4);
        }
        Ok(())
    }
}

/// Open a sound card's input and start capturing into its ring.
pub fn open(c: &AudioSourceConfig) -> Result<Opened, OpenError> {
    let input = AudioInput::open(&AudioInputSpec {
        device: c.device.clone(),
        device_channels: c.stream_channels(),
        rate_hz: c.rate_hz,
        period_frames: c.period_frames,
    })?;
    let rate = SampleRate::new(f64::from(c.rate_hz)).map_err(|e| ConfigError::Invalid {
        field: "source.rate_hz",
        message: e.to_string(),
    })?;
    let description = format!(
        "audio input {} ({}, channels {:?} of {}, {} V full scale)",
        input.device,
        input.sample_format,
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
            input,
            channels: c.channels.iter().map(|&k| usize::from(k)).collect(),
            uv_per_full_scale: c.volts_per_full_scale * 1e6,
            stall: Duration::from_secs_f64(c.stall_ms / 1000.0),
        }),
    })
}
