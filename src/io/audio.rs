//! Sound-card output and input through cpal (ALSA on Linux), kept behind this module.
//!
//! Both data callbacks only move data. Output pops click commands from a
//! lock-free SPSC ring and writes pre-rendered click samples into the output
//! buffer; it never allocates, locks or logs. Stream errors arrive on cpal's
//! error callback (another thread), where they are counted and the first
//! message of each kind is kept for the session summary.
//!
//! # Sample clock → output frame clock
//! A click is scheduled at session sample `N` (rate `R_in`); the output stream
//! counts frames `F` (rate `R_out`) from its first callback. The two clocks
//! are joined by one linear map, `F(N) = F_a + round((N − n_a) · R_out / R_in)`,
//! anchored at the first click: there the runtime's host-time estimate of
//! sample `N` (`TriggerCommand::due`) is converted to a frame through the
//! callback's own timestamps: the first frame of the buffer being filled,
//! `F0`, is heard at `now + latency`, where `latency` is the configured
//! `device_latency_ms` or, if unset, the backend's `playback − callback`
//! timestamp difference (ALSA's `snd_pcm_status` delay). Later clicks use the
//! map, so the spacing between clicks is exact to the frame whatever the
//! callback jitter; the host-time estimate is still computed for each click and
//! when it disagrees with the map by more than `max_clock_error_ms` (the two
//! crystals drift apart, or the stream restarted after an xrun) the map is
//! re-anchored there and the re-anchoring is counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::click::ClickSpec;
use crate::time::SampleIndex;

/// Clicks that can be scheduled or playing at once.
const CLICK_SLOTS: usize = 16;
/// Click commands buffered between the sink thread and the callback.
const COMMAND_RING: usize = 256;

/// What went wrong with an audio device: no such device, a refused
/// configuration or a failed stream, as the message says.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("audio {device}: {message}")]
pub struct AudioError {
    pub device: String,
    pub message: String,
}

/// Audio devices of the default host (ALSA on Linux), for `neuroloop devices`:
/// each device's name, whether it has input and output, and its default output
/// and input configuration as text.
pub fn list_devices() -> Result<Vec<String>, AudioError> {
    let host = cpal::default_host();
    let devices = host.devices().map_err(|e| AudioError {
        device: host.id().name().to_string(),
        message: e.to_string(),
    })?;
    let describe = |c: Result<cpal::SupportedStreamConfig, cpal::DefaultStreamConfigError>| match c
    {
        Ok(c) => format!(
            "{} ch {} Hz {}",
            c.channels(),
            c.sample_rate(),
            c.sample_format()
        ),
        Err(_) => "-".into(),
    };
    Ok(devices
        .map(|d| {
            let name = device_name(&d);
            let output = if d.supports_output() {
                describe(d.default_output_config())
            } else {
                "-".into()
            };
            let input = if d.supports_input() {
                describe(d.default_input_config())
            } else {
                "-".into()
            };
            format!("{name}  output: {output}  input: {input}")
        })
        .collect())
}

fn device_name(d: &cpal::Device) -> String {
    d.id()
        .map(|id| id.1)
        .or_else(|_| d.description().map(|x| x.name().to_string()))
        .unwrap_or_else(|_| "?".into())
}

/// Which side of a device a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Input,
    Output,
}

/// The device called `name` (its ALSA PCM name, e.g. `default`,
/// `plughw:CARD=PCH,DEV=0`), or the default device for `direction`.
fn find_device(name: Option<&str>, direction: Direction) -> Result<cpal::Device, AudioError> {
    let host = cpal::default_host();
    let wanted = name.unwrap_or("default");
    let no_device = |message: String| AudioError {
        device: wanted.to_string(),
        message,
    };
    match (name, direction) {
        (None, Direction::Output) => host
            .default_output_device()
            .ok_or_else(|| no_device("no default output device".into())),
        (None, Direction::Input) => host
            .default_input_device()
            .ok_or_else(|| no_device("no default input device".into())),
        (Some(n), _) => host
            .devices()
            .map_err(|e| no_device(e.to_string()))?
            .find(|d| device_name(d) == n)
            .ok_or_else(|| no_device("no such device (`neuroloop devices` lists them)".into())),
    }
}

/// Counters of an output stream, written by the callbacks.
#[derive(Debug, Default)]
pub struct OutputCounters {
    pub frames_written: AtomicU64,
    pub clicks_started: AtomicU64,
    /// Clicks whose frame had already been written when they reached the
    /// callback; they start at the first free frame instead.
    pub late_clicks: AtomicU64,
    pub late_frames_max: AtomicU64,
    /// Clicks lost because every slot was taken.
    pub clicks_dropped: AtomicU64,
    pub reanchors: AtomicU64,
    /// The backend's `playback − callback` delay, last and largest seen (ns).
    pub backend_delay_ns_last: AtomicU64,
    pub backend_delay_ns_max: AtomicU64,
    pub underruns: AtomicU64,
    pub stream_errors: AtomicU64,
    /// The stream cannot continue (device gone).
    pub fatal: AtomicBool,
}

/// A click for the callback: session sample and the host-time estimate of it.
#[derive(Debug, Clone, Copy)]
pub struct ClickCommand {
    pub onset: SampleIndex,
    pub due: Instant,
}

/// The linear map from session samples to output frames (see the module doc).
#[derive(Debug, Clone, Copy)]
struct Anchor {
    sample: SampleIndex,
    frame: i64,
}

/// The part of the data callback that decides what to play: pure apart from
/// the counters, so it is tested without a device.
pub struct ClickScheduler {
    click: Vec<f32>,
    channels: usize,
    frames_per_sample: f64,
    rate_out_hz: f64,
    max_error_frames: f64,
    latency: Option<Duration>,
    anchor: Option<Anchor>,
    /// Start frames of scheduled or playing clicks.
    slots: [Option<i64>; CLICK_SLOTS],
    frame: i64,
    armed: Arc<AtomicBool>,
    counters: Arc<OutputCounters>,
}

impl ClickScheduler {
    /// `click`: the rendered click at `spec.rate_hz`.
    pub fn new(
        click: Vec<f32>,
        spec: &ClickOutputSpec,
        armed: Arc<AtomicBool>,
        counters: Arc<OutputCounters>,
    ) -> Self {
        let rate_out_hz = f64::from(spec.rate_hz);
        Self {
            click,
            channels: usize::from(spec.channels),
            frames_per_sample: rate_out_hz / spec.session_rate_hz,
            rate_out_hz,
            max_error_frames: spec.max_clock_error_ms / 1000.0 * rate_out_hz,
            latency: spec.device_latency,
            anchor: None,
            slots: [None; CLICK_SLOTS],
            frame: 0,
            armed,
            counters,
        }
    }

    /// The output frame of session sample `onset`, given that frame
    /// `self.frame` is heard at `heard_at`.
    fn place(&mut self, cmd: &ClickCommand, heard_at: Instant) -> i64 {
        let ahead_s = if cmd.due >= heard_at {
            cmd.due.duration_since(heard_at).as_secs_f64()
        } else {
            -heard_at.duration_since(cmd.due).as_secs_f64()
        };
        let by_host = self.frame + (ahead_s * self.rate_out_hz).round() as i64;
        let by_map = self.anchor.map(|a| {
            a.frame + ((cmd.onset as f64 - a.sample as f64) * self.frames_per_sample).round() as i64
        });
        match by_map {
            Some(f) if ((f - by_host) as f64).abs() <= self.max_error_frames => f,
            _ => {
                if self.anchor.is_some() {
                    self.counters.reanchors.fetch_add(1, Ordering::Relaxed);
                }
                self.anchor = Some(Anchor {
                    sample: cmd.onset,
                    frame: by_host,
                });
                by_host
            }
        }
    }

    /// Fill one interleaved buffer. `now` is when the callback ran and
    /// `backend_delay` the backend's estimate of how long until the buffer's
    /// first frame is heard.
    pub fn fill(
        &mut self,
        out: &mut [f32],
        now: Instant,
        backend_delay: Duration,
        commands: &mut impl Consumer<Item = ClickCommand>,
    ) {
        let delay_ns = backend_delay.as_nanos() as u64;
        self.counters
            .backend_delay_ns_last
            .store(delay_ns, Ordering::Relaxed);
        self.counters
            .backend_delay_ns_max
            .fetch_max(delay_ns, Ordering::Relaxed);
        let heard_at = now + self.latency.unwrap_or(backend_delay);
        let frames = out.len() / self.channels.max(1);
        let armed = self.armed.load(Ordering::Acquire);
        while let Some(cmd) = commands.try_pop() {
            if !armed {
                continue;
            }
            let start = self.place(&cmd, heard_at);
            let start = if start < self.frame {
                self.counters.late_clicks.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .late_frames_max
                    .fetch_max((self.frame - start) as u64, Ordering::Relaxed);
                self.frame
            } else {
                start
            };
            match self.slots.iter_mut().find(|s| s.is_none()) {
                Some(slot) => *slot = Some(start),
                None => {
                    self.counters.clicks_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        out.fill(0.0);
        if !armed {
            self.slots = [None; CLICK_SLOTS];
        }
        let end = self.frame + frames as i64;
        let len = self.click.len() as i64;
        for slot in self.slots.iter_mut() {
            let Some(start) = *slot else { continue };
            if start >= end {
                continue;
            }
            if start >= self.frame {
                self.counters.clicks_started.fetch_add(1, Ordering::Relaxed);
            }
            let from = start.max(self.frame);
            let to = (start + len).min(end);
            for f in from..to {
                let v = self.click[(f - start) as usize];
                let at = (f - self.frame) as usize * self.channels;
                for s in &mut out[at..at + self.channels] {
                    *s += v;
                }
            }
            if start + len <= end {
                *slot = None;
            }
        }
        self.frame = end;
        self.counters
            .frames_written
            .store(end as u64, Ordering::Relaxed);
    }
}

/// What an audio click output is set up with.
#[derive(Debug, Clone)]
pub struct ClickOutputSpec {
    pub device: Option<String>,
    pub rate_hz: u32,
    pub channels: u16,
    pub period_frames: u32,
    pub click: ClickSpec,
    pub device_latency: Option<Duration>,
    pub max_clock_error_ms: f64,
    /// Rate of the session's sample clock.
    pub session_rate_hz: f64,
}

/// A running output stream that plays clicks at scheduled session samples.
pub struct ClickOutput {
    // Dropping the stream stops it; kept for that.
    _stream: cpal::Stream,
    commands: HeapProd<ClickCommand>,
    armed: Arc<AtomicBool>,
    pub counters: Arc<OutputCounters>,
    /// The first message of each error kind, for the summary.
    pub errors: Arc<Mutex<Vec<String>>>,
    pub device: String,
    pub click_frames: usize,
}

impl ClickOutput {
    pub fn open(spec: &ClickOutputSpec) -> Result<Self, AudioError> {
        let device = find_device(spec.device.as_deref(), Direction::Output)?;
        let name = device_name(&device);
        let open_err = |message: String| AudioError {
            device: name.clone(),
            message,
        };
        let click = spec
            .click
            .render(f64::from(spec.rate_hz))
            .map_err(|e| open_err(e.to_string()))?;
        let click_frames = click.len();
        let armed = Arc::new(AtomicBool::new(true));
        let counters = Arc::new(OutputCounters::default());
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (commands, mut rx): (HeapProd<ClickCommand>, HeapCons<ClickCommand>) =
            HeapRb::new(COMMAND_RING).split();
        let mut scheduler = ClickScheduler::new(click, spec, armed.clone(), counters.clone());
        let config = cpal::StreamConfig {
            channels: spec.channels,
            sample_rate: spec.rate_hz,
            buffer_size: cpal::BufferSize::Fixed(spec.period_frames),
        };
        let on_error = {
            let (counters, errors) = (counters.clone(), errors.clone());
            let label = format!("output {name}");
            move |e: cpal::StreamError| {
                record_stream_error(
                    &label,
                    &counters.underruns,
                    &counters.stream_errors,
                    &counters.fatal,
                    &errors,
                    e,
                )
            }
        };
        let stream = device
            .build_output_stream(
                &config,
                move |data: &mut [f32], info: &cpal::OutputCallbackInfo| {
                    let now = Instant::now();
                    let ts = info.timestamp();
                    let delay = ts.playback.duration_since(&ts.callback).unwrap_or_default();
                    scheduler.fill(data, now, delay, &mut rx);
                },
                on_error,
                None,
            )
            .map_err(|e| open_err(e.to_string()))?;
        stream.play().map_err(|e| open_err(e.to_string()))?;
        Ok(Self {
            _stream: stream,
            commands,
            armed,
            counters,
            errors,
            device: name,
            click_frames,
        })
    }

    /// Hand a click to the callback. Fails when the stream has died.
    pub fn schedule(&mut self, cmd: ClickCommand) -> Result<(), AudioError> {
        let stream_err = |message: String| AudioError {
            device: self.device.clone(),
            message,
        };
        if self.counters.fatal.load(Ordering::Acquire) {
            let first = self
                .errors
                .lock()
                .map(|e| e.first().cloned().unwrap_or_default())
                .unwrap_or_default();
            return Err(stream_err(format!("stream failed: {first}")));
        }
        if self.commands.try_push(cmd).is_err() {
            self.counters.clicks_dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Silence the output from the next callback on; nothing plays again.
    pub fn disarm(&mut self) {
        self.armed.store(false, Ordering::Release);
    }
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

/// cpal's error callback, for either direction: count the error, mark the
/// stream dead if the device is gone, and keep (and print once) the first
/// message of each kind for `summary.json`. `stream` names the direction and
/// the device.
fn record_stream_error(
    stream: &str,
    xruns: &AtomicU64,
    stream_errors: &AtomicU64,
    fatal: &AtomicBool,
    errors: &Mutex<Vec<String>>,
    e: cpal::StreamError,
) {
    let kind = match &e {
        cpal::StreamError::BufferUnderrun => {
            xruns.fetch_add(1, Ordering::Relaxed);
            "xrun"
        }
        cpal::StreamError::DeviceNotAvailable | cpal::StreamError::StreamInvalidated => {
            stream_errors.fetch_add(1, Ordering::Relaxed);
            fatal.store(true, Ordering::Release);
            "device lost"
        }
        _ => {
            stream_errors.fetch_add(1, Ordering::Relaxed);
            "stream error"
        }
    };
    if let Ok(mut list) = errors.lock() {
        if !list.iter().any(|m| m.starts_with(kind)) {
            let message = format!("{kind}: {e}");
            tracing::warn!("audio {stream}: {message} (counted in summary.json)");
            list.push(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduler(latency_ms: Option<u64>) -> (ClickScheduler, Arc<OutputCounters>) {
        let counters = Arc::new(OutputCounters::default());
        let spec = ClickOutputSpec {
            device: None,
            rate_hz: 48_000,
            channels: 2,
            period_frames: 64,
            click: ClickSpec::default(),
            device_latency: latency_ms.map(Duration::from_millis),
            max_clock_error_ms: 20.0,
            session_rate_hz: 250.0,
        };
        let s = ClickScheduler::new(
            vec![1.0, 2.0, 3.0, 4.0],
            &spec,
            Arc::new(AtomicBool::new(true)),
            counters.clone(),
        );
        (s, counters)
    }

    /// Run buffers of `period` frames, return the left channel.
    fn play(
        s: &mut ClickScheduler,
        cmds: &[ClickCommand],
        t0: Instant,
        periods: usize,
        period: usize,
        jitter_us: &[u64],
    ) -> Vec<f32> {
        let (mut tx, mut rx) = HeapRb::<ClickCommand>::new(16).split();
        let mut left = Vec::new();
        let mut buf = vec![0.0; period * 2];
        for p in 0..periods {
            // One command every 8 callbacks, so each is placed by a different one.
            if p % 8 == 0 {
                if let Some(c) = cmds.get(p / 8) {
                    tx.try_push(*c).unwrap();
                }
            }
            let ideal = Duration::from_secs_f64((p * period) as f64 / 48_000.0);
            let now = t0 + ideal + Duration::from_micros(jitter_us[p % jitter_us.len()]);
            s.fill(&mut buf, now, Duration::ZERO, &mut rx);
            left.extend(buf.iter().step_by(2));
        }
        left
    }

    fn starts(left: &[f32]) -> Vec<usize> {
        (0..left.len())
            .filter(|&i| left[i] == 1.0 && (i == 0 || left[i - 1] == 0.0))
            .collect()
    }

    #[test]
    fn clicks_land_on_the_mapped_frame_exactly_despite_callback_jitter() {
        let (mut s, counters) = scheduler(None);
        let t0 = Instant::now();
        // Sample n is due at t0 + 10 ms + n / 250 s; jittered callbacks.
        let due = |n: u64| t0 + Duration::from_millis(10) + Duration::from_micros(n * 4000);
        let cmds: Vec<_> = [0u64, 3, 10, 11]
            .iter()
            .map(|&n| ClickCommand {
                onset: n,
                due: due(n),
            })
            .collect();
        let left = play(&mut s, &cmds, t0, 50, 64, &[0, 150, 40, 300]);
        let got = starts(&left);
        assert_eq!(got.len(), 4);
        // 192 output frames per session sample, exactly.
        let spacing: Vec<usize> = got.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(spacing, vec![3 * 192, 7 * 192, 192]);
        // The anchor: 10 ms after t0 is frame 480 (±1 for the first callback's jitter).
        assert!((got[0] as i64 - 480).abs() <= 1, "{got:?}");
        assert_eq!(&left[got[0]..got[0] + 5], &[1.0, 2.0, 3.0, 4.0, 0.0]);
        assert_eq!(counters.clicks_started.load(Ordering::Relaxed), 4);
        assert_eq!(counters.reanchors.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn configured_latency_moves_the_click_earlier_in_the_stream() {
        let t0 = Instant::now();
        let cmd = [ClickCommand {
            onset: 0,
            due: t0 + Duration::from_millis(20),
        }];
        let (mut plain, _) = scheduler(None);
        let (mut delayed, _) = scheduler(Some(5));
        let a = starts(&play(&mut plain, &cmd, t0, 30, 64, &[0]));
        let b = starts(&play(&mut delayed, &cmd, t0, 30, 64, &[0]));
        // 5 ms of device latency = 240 frames written earlier.
        assert_eq!(a[0] - b[0], 240);
    }

    #[test]
    fn late_clicks_start_at_once_and_a_drifted_clock_reanchors() {
        let (mut s, counters) = scheduler(None);
        let t0 = Instant::now();
        let (mut tx, mut rx) = HeapRb::<ClickCommand>::new(16).split();
        let mut buf = vec![0.0; 128];
        s.fill(&mut buf, t0, Duration::ZERO, &mut rx);
        // Due before the frame being written: late.
        tx.try_push(ClickCommand {
            onset: 100,
            due: t0,
        })
        .unwrap();
        s.fill(
            &mut buf,
            t0 + Duration::from_millis(2),
            Duration::ZERO,
            &mut rx,
        );
        assert_eq!(buf[0], 1.0, "starts at the first free frame");
        assert_eq!(counters.late_clicks.load(Ordering::Relaxed), 1);
        // A click whose host time disagrees with the map by 1 s: re-anchored.
        tx.try_push(ClickCommand {
            onset: 101,
            due: t0 + Duration::from_secs(1),
        })
        .unwrap();
        s.fill(
            &mut buf,
            t0 + Duration::from_millis(4),
            Duration::ZERO,
            &mut rx,
        );
        assert_eq!(counters.reanchors.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn disarm_silences_scheduled_and_playing_clicks() {
        let (mut s, counters) = scheduler(None);
        let armed = s.armed.clone();
        let t0 = Instant::now();
        let (mut tx, mut rx) = HeapRb::<ClickCommand>::new(16).split();
        tx.try_push(ClickCommand {
            onset: 0,
            due: t0 + Duration::from_millis(5),
        })
        .unwrap();
        let mut buf = vec![0.0; 128];
        s.fill(&mut buf, t0, Duration::ZERO, &mut rx);
        armed.store(false, Ordering::Release);
        for k in 1..10 {
            s.fill(
                &mut buf,
                t0 + Duration::from_millis(k),
                Duration::ZERO,
                &mut rx,
            );
            assert!(buf.iter().all(|&v| v == 0.0));
        }
        assert_eq!(counters.clicks_started.load(Ordering::Relaxed), 0);
    }
}
