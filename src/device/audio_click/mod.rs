//! A sound card playing the click at each stim's onset (`[[outputs]] kind =
//! "audio-click"`): the cpal output stream, the [`AudioClick`] trigger output
//! and its config section.
//!
//! The data callback only moves data: it pops click commands from a
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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use ringbuf::traits::{Consumer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use serde::{Deserialize, Serialize};

use super::audio::{device_name, find_device, record_stream_error, AudioError, Direction};
use super::{DeviceError, TriggerCommand, TriggerOutput};
use crate::click::ClickSpec;
use crate::config::pipeline::{check_range, invalid, ConfigError};
use crate::time::{SampleIndex, SampleRate};

/// Clicks that can be scheduled or playing at once.
const CLICK_SLOTS: usize = 16;
/// Click commands buffered between the sink thread and the callback.
const COMMAND_RING: usize = 256;

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioClickConfig {
    /// ALSA PCM name as `neuroloop devices` lists it; the default device if absent.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default = "super::audio::default_rate_hz")]
    pub rate_hz: u32,
    /// Output channels; the click plays on all of them.
    #[serde(default = "default_channels")]
    pub channels: u16,
    /// Frames per callback requested from the device (its period).
    #[serde(default = "super::audio::default_period_frames")]
    pub period_frames: u32,
    /// RMS of the click's plateau relative to full scale.
    #[serde(default = "default_level_dbfs")]
    pub level_dbfs: f64,
    #[serde(default = "default_click_ms")]
    pub click_ms: f64,
    #[serde(default = "default_ramp_ms")]
    pub ramp_ms: f64,
    /// From a frame written to it being heard; measured from the backend's
    /// stream timestamps when absent.
    #[serde(default)]
    pub device_latency_ms: Option<f64>,
    /// Largest disagreement between the sample→frame map and the host clock
    /// before the map is re-anchored (see the module documentation).
    #[serde(default = "default_max_clock_error_ms")]
    pub max_clock_error_ms: f64,
}

fn default_channels() -> u16 {
    2
}
fn default_level_dbfs() -> f64 {
    -20.0
}
fn default_click_ms() -> f64 {
    50.0
}
fn default_ramp_ms() -> f64 {
    5.0
}
fn default_max_clock_error_ms() -> f64 {
    5.0
}

impl AudioClickConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.device.as_deref().is_some_and(|d| d.trim().is_empty()) {
            return Err(invalid("outputs.device", "must name a device".into()));
        }
        check_range(
            "outputs.rate_hz",
            f64::from(self.rate_hz),
            8000.0,
            384_000.0,
        )?;
        check_range("outputs.channels", f64::from(self.channels), 1.0, 32.0)?;
        check_range(
            "outputs.period_frames",
            f64::from(self.period_frames),
            16.0,
            16384.0,
        )?;
        check_range("outputs.level_dbfs", self.level_dbfs, -120.0, -3.0)?;
        check_range("outputs.click_ms", self.click_ms, 1.0, 1000.0)?;
        check_range("outputs.ramp_ms", self.ramp_ms, 0.0, self.click_ms / 2.0)?;
        if let Some(l) = self.device_latency_ms {
            check_range("outputs.device_latency_ms", l, 0.0, 1000.0)?;
        }
        check_range(
            "outputs.max_clock_error_ms",
            self.max_clock_error_ms,
            0.1,
            1e6,
        )
    }
}

/// A sound card playing the click at the output frame of each stim's onset.
pub struct AudioClick {
    output: ClickOutput,
    latency_configured: bool,
}

impl AudioClick {
    pub fn open(c: &AudioClickConfig, session_rate: SampleRate) -> Result<Self, AudioError> {
        let spec = ClickOutputSpec {
            device: c.device.clone(),
            rate_hz: c.rate_hz,
            channels: c.channels,
            period_frames: c.period_frames,
            click: ClickSpec {
                duration_ms: c.click_ms,
                ramp_ms: c.ramp_ms,
                level_dbfs: c.level_dbfs,
                ..ClickSpec::default()
            },
            device_latency: c
                .device_latency_ms
                .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
            max_clock_error_ms: c.max_clock_error_ms,
            session_rate_hz: session_rate.hz(),
        };
        Ok(Self {
            output: ClickOutput::open(&spec)?,
            latency_configured: c.device_latency_ms.is_some(),
        })
    }
}

impl TriggerOutput for AudioClick {
    fn name(&self) -> &'static str {
        "audio-click"
    }
    fn fire(&mut self, command: &TriggerCommand) -> Result<(), DeviceError> {
        self.output
            .schedule(ClickCommand {
                onset: command.decision.onset,
                due: command.due,
            })
            .map_err(|e| DeviceError::Disconnected {
                device: "audio-click",
                message: e.to_string(),
            })
    }
    fn disarm(&mut self) -> Result<(), DeviceError> {
        self.output.disarm();
        Ok(())
    }
    fn schedules_ahead(&self) -> bool {
        true
    }
    fn report(&self) -> Option<serde_json::Value> {
        let c = &self.output.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let errors = self
            .output
            .errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        Some(serde_json::json!({
            "kind": "audio-click",
            "device": self.output.device,
            "click_frames": self.output.click_frames,
            "device_latency_source": if self.latency_configured { "configured" } else { "measured" },
            "backend_delay_ms_last": get(&c.backend_delay_ns_last) as f64 / 1e6,
            "backend_delay_ms_max": get(&c.backend_delay_ns_max) as f64 / 1e6,
            "frames_written": get(&c.frames_written),
            "clicks_started": get(&c.clicks_started),
            "late_clicks": get(&c.late_clicks),
            "late_frames_max": get(&c.late_frames_max),
            "clicks_dropped": get(&c.clicks_dropped),
            "reanchors": get(&c.reanchors),
            "underruns": get(&c.underruns),
            "stream_errors": get(&c.stream_errors),
            "errors": errors,
        }))
    }
}

#[cfg(test)]
mod tests;
