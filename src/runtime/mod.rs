//! Live sessions. Threads and what joins them:
//!
//! ```text
//!  acquisition ──SPSC ring (samples + chunk headers)──▶ processing ──SPSC ring──▶ sink thread (Pulse Pal …)
//!  (serial port / paced recording)                      (Controller::process_block) ──SPSC ring──▶ log thread (session folder)
//! ```
//!
//! Every ring is a lock-free `ringbuf` SPSC queue sized at start; producers
//! never block (a full ring is counted, never waited on) and wake their
//! consumer with `Thread::unpark`. The processing thread asks for real-time
//! priority (SCHED_FIFO) and warns when it is not permitted. The calling
//! thread runs the control plane on tokio (`control.rs`): it supervises, and
//! a stop signal, a device error or a controller fault **disarms
//! every output first** (no further trigger is written and each sink thread
//! is joined after sending its device's abort), then stops acquisition and
//! processing, then flushes the session folder, then returns the reason.
//!
//! Time: chunks carry the host `Instant` at which their bytes arrived; a
//! trigger command carries the arrival time of the chunk holding its deciding
//! sample, and the sink records when its bytes were written. Those two, not
//! the sample clock, are what `latency.tsv` and `summary.json` report.

pub mod config;
mod control;
mod journal;
pub mod latency;
pub mod latency_test;
mod processing;
mod realtime;
mod recorder;
mod sinks;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use ringbuf::traits::{Observer, Producer, Split};
use ringbuf::{HeapProd, HeapRb};

use crate::click::ClickSpec;
use crate::config::{Config, ConfigError};
use crate::controller::{Controller, Fault};
use crate::event::TriggerDecision;
use crate::io::audio;
use crate::io::openbci::{self, CytonCounters, DeviceError, FrameSink, Framer};
use crate::io::pulsepal;
use crate::io::recorder::{DigitalScale, RecordingCounters, RecordingSpec, RecordingWriter};
use crate::io::session::{SessionError, SessionWriter};
use crate::recording::{Recording, SelectError, Signal};
use crate::session::{Progress, Summary, SummaryParts};
use crate::time::{SampleIndex, SampleRate};
pub use control::stop_on_signals;
use control::Notice;
use latency::{LatencyHistogram, LatencySummary};

/// Events buffered between the processing and the log thread.
const EVENT_RING: usize = 1 << 16;
/// Trigger commands buffered per sink.
const COMMAND_RING: usize = 1024;
/// The acquisition ring holds this much signal, or `MIN_RING_FRAMES`
/// frames (and chunks) if that is more, to ride out scheduling gaps.
const SAMPLE_RING_S: f64 = 2.0;
const MIN_RING_FRAMES: usize = 1 << 16;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Output(#[from] SessionError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Audio(#[from] crate::io::audio::AudioError),
    #[error(transparent)]
    Lsl(#[from] crate::device::lsl::LslError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// Header of a chunk of frames in the sample ring.
#[derive(Debug, Clone, Copy)]
struct ChunkHeader {
    start: SampleIndex,
    frames: usize,
    arrived: Instant,
}

/// The producer side of the acquisition ring: what the source pushes goes to
/// the processing thread and, when the session is recorded, to the recorder,
/// both or neither (a full ring drops the chunk for both, so the recording
/// always holds what was processed).
pub struct RingWriter {
    samples: HeapProd<f64>,
    headers: HeapProd<ChunkHeader>,
    channels: usize,
    consumer: Thread,
    overrun_frames: Arc<AtomicU64>,
    tee: Option<RecordTee>,
}

/// The recorder's side of the acquisition ring. Samples pass through each
/// channel's [`DigitalScale`]: the detectors get `decode(encode(x))` and the
/// recorder the codes, so the file holds exactly what was processed.
struct RecordTee {
    scales: Vec<DigitalScale>,
    codes: HeapProd<i32>,
    chunks: HeapProd<recorder::RecordedChunk>,
    coded: Vec<i32>,
    quantized: Vec<f64>,
    clipped: Arc<AtomicU64>,
}

impl RingWriter {
    fn has_room(&self, len: usize) -> bool {
        self.samples.vacant_len() >= len
            && !self.headers.is_full()
            && self
                .tee
                .as_ref()
                .map_or(true, |t| t.codes.vacant_len() >= len && !t.chunks.is_full())
    }

    fn push_piece(&mut self, start: SampleIndex, samples: &[f64], arrived: Instant) {
        let frames = samples.len() / self.channels;
        if !self.has_room(samples.len()) {
            // Processing (or the disk) is behind: drop the chunk; the
            // controller sees the gap and the recording marks it.
            self.overrun_frames
                .fetch_add(frames as u64, Ordering::Relaxed);
            return;
        }
        let samples = match &mut self.tee {
            None => samples,
            Some(tee) => {
                let coded = &mut tee.coded[..samples.len()];
                let quantized = &mut tee.quantized[..samples.len()];
                let clipped = DigitalScale::quantize_frames(&tee.scales, samples, coded, quantized);
                if clipped > 0 {
                    tee.clipped.fetch_add(clipped, Ordering::Relaxed);
                }
                tee.codes.push_slice(coded);
                let _ = tee
                    .chunks
                    .try_push(recorder::RecordedChunk { start, frames });
                quantized
            }
        };
        self.samples.push_slice(samples);
        let _ = self.headers.try_push(ChunkHeader {
            start,
            frames,
            arrived,
        });
        self.consumer.unpark();
    }
}

impl FrameSink for RingWriter {
    fn push(&mut self, start: SampleIndex, samples: &[f64], arrived: Instant) {
        // In pieces the tee's buffers hold (a source's chunks fit in one).
        let piece = self
            .tee
            .as_ref()
            .map_or(samples.len(), |t| t.coded.len())
            .max(self.channels);
        let piece = piece - piece % self.channels;
        for (k, part) in samples.chunks(piece).enumerate() {
            let offset = (k * piece / self.channels) as u64;
            self.push_piece(start + offset, part, arrived);
        }
    }
}

/// A recording served as a live source: blocks of `block` frames paced at
/// `speed` × real time (the simulator's `run`, or a file).
pub struct RecordingSource {
    frames: Vec<f64>,
    channels: usize,
    rate: SampleRate,
    block: usize,
    speed: f64,
}

impl RecordingSource {
    fn run(&self, out: &mut RingWriter, stop: &AtomicBool) {
        let started = Instant::now();
        let total = self.frames.len() / self.channels;
        let mut start = 0;
        while start < total && !stop.load(Ordering::Relaxed) {
            let n = self.block.min(total - start);
            let due = Duration::from_secs_f64(self.rate.seconds((start + n) as u64) / self.speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let samples = &self.frames[start * self.channels..(start + n) * self.channels];
            out.push(start as u64, samples, Instant::now());
            start += n;
        }
    }
}

/// An OpenBCI Cyton on a serial port, configured and streaming.
pub struct CytonSource {
    port: Box<dyn serialport::SerialPort>,
    framer: Framer,
    stall: Duration,
    pub counters: Arc<CytonCounters>,
}

impl CytonSource {
    /// Start the stream and frame packets into `out` until `stop` is set or
    /// the board fails; the stream is stopped on a clean end.
    fn run(&mut self, out: &mut dyn FrameSink, stop: &AtomicBool) -> Result<(), DeviceError> {
        self.port
            .write_all(&[openbci::CMD_START])
            .map_err(|e| DeviceError::Disconnected {
                device: "openbci",
                message: e.to_string(),
            })?;
        openbci::acquire(
            &mut self.port,
            &mut self.framer,
            out,
            self.stall,
            stop,
            &self.counters,
        )?;
        let _ = self.port.write_all(&[openbci::CMD_STOP]);
        Ok(())
    }
}

/// A sound card's input stream: the cpal callback fills a ring (see
/// `io/audio.rs`); the acquisition thread scales the chosen channels to µV.
pub struct AudioSource {
    input: audio::AudioInput,
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

/// Where a live session's samples come from.
pub enum Source {
    Recording(RecordingSource),
    Cyton(CytonSource),
    Audio(AudioSource),
    Lsl(crate::device::lsl::LslSource),
}

/// What the processing side needs to know about a source before it starts.
pub struct Opened {
    pub source: Source,
    pub rate: SampleRate,
    pub labels: Vec<String>,
    pub description: String,
    /// Largest chunk (frames) the source pushes at once.
    pub max_chunk_frames: usize,
    /// Each channel's range (±µV): the recording's scale.
    pub full_scale_uv: Vec<f64>,
}

/// The source's counters, watched while the session runs and reported in
/// `summary.json` after it.
enum SourceMonitor {
    None,
    Cyton(Arc<CytonCounters>),
    Audio {
        counters: Arc<audio::InputCounters>,
        errors: Arc<Mutex<Vec<String>>>,
        device: String,
    },
    Lsl(Arc<crate::device::lsl::LslCounters>),
}

impl SourceMonitor {
    fn of(source: &Source) -> Self {
        match source {
            Source::Recording(_) => SourceMonitor::None,
            Source::Cyton(c) => SourceMonitor::Cyton(c.counters.clone()),
            Source::Audio(a) => SourceMonitor::Audio {
                counters: a.input.counters.clone(),
                errors: a.input.errors.clone(),
                device: a.input.device.clone(),
            },
            Source::Lsl(l) => SourceMonitor::Lsl(l.counters.clone()),
        }
    }

    /// Warn (once per kind) about what the source and the rings lost so far.
    fn warn(&self, shared: &Shared, warn: &mut dyn FnMut(String, String)) {
        let at = shared.frames_done.load(Ordering::Relaxed);
        match self {
            SourceMonitor::None => {}
            SourceMonitor::Cyton(c) => {
                for (key, value, what) in [
                    (
                        "garbage",
                        c.garbage_bytes.load(Ordering::Relaxed),
                        "skipped garbage bytes and resynchronised",
                    ),
                    (
                        "dropped",
                        c.dropped_packets.load(Ordering::Relaxed),
                        "packets lost (sample counter skipped); the gap is counted, not filled",
                    ),
                ] {
                    if value > 0 {
                        warn(
                            key.into(),
                            format!(
                                "openbci: {what} (first seen by sample {at}; totals in summary.json)"
                            ),
                        );
                    }
                }
            }
            SourceMonitor::Audio {
                counters, device, ..
            } => {
                if counters.xruns.load(Ordering::Relaxed) > 0
                    || counters.ring_overrun_frames.load(Ordering::Relaxed) > 0
                {
                    warn(
                        "audio-xrun".into(),
                        format!("audio input {device}: overrun, frames lost (first seen by sample {at}; totals in summary.json)"),
                    );
                }
            }
            SourceMonitor::Lsl(c) => c.warn(at, warn),
        }
        if shared.overrun_frames.load(Ordering::Relaxed) > 0 {
            warn(
                "overrun".into(),
                format!(
                    "processing fell behind acquisition; frames dropped (first by sample {at})"
                ),
            );
        }
    }

    /// The source's section of `summary.json`.
    fn report(&self) -> Option<serde_json::Value> {
        match self {
            SourceMonitor::None => None,
            SourceMonitor::Cyton(c) => Some(c.snapshot()),
            SourceMonitor::Audio {
                counters,
                errors,
                device,
            } => {
                let mut source = counters.snapshot();
                source["device"] = device.clone().into();
                source["errors"] = errors.lock().map(|e| e.clone()).unwrap_or_default().into();
                Some(source)
            }
            SourceMonitor::Lsl(c) => Some(c.report()),
        }
    }
}

/// The simulator (or any recording) as a paced source over its signals.
pub fn recording_source(
    recording: &Recording,
    block: usize,
    speed: f64,
    description: String,
) -> Result<Opened, RuntimeError> {
    let signals = &recording.signals;
    let first = signals.first().ok_or(SelectError::Empty)?;
    let full_scale_uv = signals
        .iter()
        .map(|s| headroom(s.samples.iter().fold(0.0, |m: f64, x| m.max(x.abs()))))
        .collect();
    Ok(Opened {
        full_scale_uv,
        rate: first.rate,
        labels: signals.iter().map(|s| s.label.trim().to_string()).collect(),
        description,
        max_chunk_frames: block,
        source: Source::Recording(RecordingSource {
            frames: recording.interleaved(),
            channels: signals.len(),
            rate: first.rate,
            block,
            speed,
        }),
    })
}

/// A recording range for a signal whose largest magnitude is `peak`: the next
/// 1, 2, 5 × 10^k above it with 25 % to spare.
fn headroom(peak: f64) -> f64 {
    let wanted = (1.25 * peak).max(1.0);
    let decade = 10f64.powf(wanted.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|&r| r >= wanted)
        .unwrap_or(10.0 * decade)
}

/// Open a Cyton and set its mode and gains; the acquisition thread starts the stream.
pub fn open_cyton(c: &config::OpenBciConfig) -> Result<Opened, RuntimeError> {
    let open_err = |message: String| DeviceError::Open {
        device: "openbci",
        port: c.port.clone(),
        message,
    };
    let mut port = serialport::new(&c.port, 115_200)
        .timeout(Duration::from_millis(10))
        .open()
        .map_err(|e| open_err(e.to_string()))?;
    openbci::configure(&mut port, c.daisy, c.gain)?;
    let channels = openbci::channels(c.daisy);
    let framer = Framer::new(c.daisy, c.gain);
    let rate = SampleRate::new(framer.rate_hz()).expect("constant rate");
    Ok(Opened {
        rate,
        labels: (1..=channels).map(|k| format!("ch{k}")).collect(),
        description: format!(
            "OpenBCI Cyton{} on {} (gain {})",
            if c.daisy { " + Daisy" } else { "" },
            c.port,
            c.gain
        ),
        max_chunk_frames: openbci::MAX_FRAMES_PER_READ,
        // The ADS1299's input range: ±4.5 V / gain.
        full_scale_uv: vec![4.5e6 / f64::from(c.gain); channels],
        source: Source::Cyton(CytonSource {
            port,
            framer,
            stall: Duration::from_secs_f64(c.stall_ms / 1000.0),
            counters: Arc::new(CytonCounters::default()),
        }),
    })
}

/// Open a sound card's input and start capturing into its ring.
pub fn open_audio(c: &config::AudioSourceConfig) -> Result<Opened, RuntimeError> {
    let input = audio::AudioInput::open(&audio::AudioInputSpec {
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

/// A trigger for a sink: the decision, when its deciding sample arrived and
/// when (host time) the stimulus is due.
#[derive(Debug, Clone, Copy)]
pub struct TriggerCommand {
    pub decision: TriggerDecision,
    pub arrived: Instant,
    pub due: Instant,
}

/// A device that turns trigger commands into stimuli. Runs on its own thread.
pub trait TriggerOutput: Send {
    fn name(&self) -> &'static str;
    /// Deliver now. An error means the device can no longer be trusted.
    fn fire(&mut self, command: &TriggerCommand) -> Result<(), DeviceError>;
    /// Stop anything the device is playing (best effort, at shutdown).
    fn disarm(&mut self) -> Result<(), DeviceError>;
    /// True when the device times the stimulus itself from `due`, so the
    /// sink hands commands over at once instead of waiting until `due`.
    fn schedules_ahead(&self) -> bool {
        false
    }
    /// Is the device still there? Called by the output's thread about every
    /// `check_period` while no command is pending; an error ends the session
    /// like a failed `fire`, so losing an output is noticed before a stim is
    /// due. A device that needs keep-alives or clock sync does them here.
    fn check(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
    /// How often `check` should be called.
    fn check_period(&self) -> Duration {
        sinks::DEFAULT_CHECK_PERIOD
    }
    /// Device counters for `summary.json` (after `disarm`).
    fn report(&self) -> Option<serde_json::Value> {
        None
    }
    /// For a device with its own clock: per `fire`, in order, when the
    /// stimulus was planned and when the device fired it (after `disarm`).
    fn device_times(&self) -> Vec<DeviceTime> {
        Vec::new()
    }
}

/// A stimulus on a device's own clock (µs since the driver opened it, as
/// far as the device's clock runs): planned from the stim's onset through
/// the clock sync, fired as the device reported (`None`: never fired, e.g.
/// refused or cancelled by the disarm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTime {
    pub onset: SampleIndex,
    pub planned_us: u64,
    pub fired_us: Option<u64>,
}

/// A sound card playing the click at the output frame of each stim's onset.
pub struct AudioClick {
    output: audio::ClickOutput,
    latency_configured: bool,
}

impl AudioClick {
    pub fn open(
        c: &config::AudioClickConfig,
        session_rate: SampleRate,
    ) -> Result<Self, audio::AudioError> {
        let spec = audio::ClickOutputSpec {
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
            output: audio::ClickOutput::open(&spec)?,
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
            .schedule(audio::ClickCommand {
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

/// Pulse Pal v2 on a serial port.
pub struct PulsePal {
    port: Box<dyn serialport::SerialPort>,
    message: [u8; 3],
    /// How often `check` asks for the handshake (None: never).
    check_period: Option<Duration>,
    last_check: Instant,
}

impl PulsePal {
    pub fn open(c: &config::PulsePalConfig, pulse_s: f64) -> Result<Self, DeviceError> {
        let mut port = serialport::new(&c.port, 115_200)
            .timeout(Duration::from_secs_f64(c.write_timeout_ms / 1000.0))
            .open()
            .map_err(|e| DeviceError::Open {
                device: "pulse-pal",
                port: c.port.clone(),
                message: e.to_string(),
            })?;
        pulsepal::connect(&mut port, c.channel, c.volts, pulse_s)?;
        Ok(Self {
            port,
            message: pulsepal::trigger_message(c.channel),
            check_period: (c.check_period_ms > 0.0)
                .then(|| Duration::from_secs_f64(c.check_period_ms / 1000.0)),
            last_check: Instant::now(),
        })
    }
}

/// How long a running session waits for the Pulse Pal's handshake reply.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(200);

fn sink_err(e: std::io::Error) -> DeviceError {
    let message = if e.kind() == std::io::ErrorKind::TimedOut {
        "stopped accepting data (write timed out)".to_string()
    } else {
        e.to_string()
    };
    DeviceError::Disconnected {
        device: "pulse-pal",
        message,
    }
}

impl TriggerOutput for PulsePal {
    fn name(&self) -> &'static str {
        "pulse-pal"
    }
    fn fire(&mut self, _command: &TriggerCommand) -> Result<(), DeviceError> {
        self.port.write_all(&self.message).map_err(sink_err)?;
        self.port.flush().map_err(sink_err)
    }
    fn disarm(&mut self) -> Result<(), DeviceError> {
        self.port
            .write_all(&[pulsepal::OP_MENU, pulsepal::OP_ABORT])
            .map_err(sink_err)
    }
    fn check(&mut self) -> Result<(), DeviceError> {
        let Some(period) = self.check_period else {
            return Ok(());
        };
        if self.last_check.elapsed() < period {
            return Ok(());
        }
        self.last_check = Instant::now();
        pulsepal::handshake(&mut self.port, HANDSHAKE_TIMEOUT)
            .map(|_| ())
            .map_err(|e| DeviceError::Disconnected {
                device: "pulse-pal",
                message: format!("no longer answers its handshake ({e})"),
            })
    }
}

/// Open every configured output; `session_rate` is the source's sample rate.
pub fn open_outputs(
    config: &Config,
    session_rate: SampleRate,
) -> Result<Vec<Box<dyn TriggerOutput>>, RuntimeError> {
    let pulse_s = config.trigger.pulse_ms / 1000.0;
    config
        .outputs
        .iter()
        .map(|o| match o {
            config::OutputConfig::PulsePal(c) => {
                Ok(Box::new(PulsePal::open(c, pulse_s)?) as Box<dyn TriggerOutput>)
            }
            config::OutputConfig::AudioClick(c) => {
                Ok(Box::new(AudioClick::open(c, session_rate)?) as Box<dyn TriggerOutput>)
            }
            config::OutputConfig::TriggerBox(c) => Ok(Box::new(
                crate::device::trigger_box::TriggerBox::open(c, config.trigger.pulse_ms)?,
            ) as Box<dyn TriggerOutput>),
        })
        .collect()
}

/// One delivered trigger as a sink saw it.
#[derive(Debug, Clone, Copy)]
pub struct TriggerRecord {
    pub sink: &'static str,
    pub decided_at: SampleIndex,
    pub onset: SampleIndex,
    pub arrived: Instant,
    pub written: Instant,
    /// On the device's clock, for devices that report it.
    pub device: Option<DeviceTime>,
}

/// Why a live session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The source ended or the requested duration was reached.
    Complete,
    /// Ctrl-C.
    Interrupted,
    /// A device failed (source or sink).
    Device(DeviceError),
    /// The controller refused its input.
    Fault(Fault),
    /// The session could not be recorded (event log or signal): a full disk,
    /// a folder that became unwritable.
    Storage(String),
}

impl Ending {
    fn status(&self) -> &'static str {
        match self {
            Ending::Complete => "complete",
            Ending::Interrupted => "interrupted",
            Ending::Device(_) | Ending::Fault(_) | Ending::Storage(_) => "error",
        }
    }

    /// Why the session failed; `None` when it did not.
    pub fn error(&self) -> Option<String> {
        match self {
            Ending::Complete | Ending::Interrupted => None,
            Ending::Device(e) => Some(e.to_string()),
            Ending::Fault(f) => Some(f.to_string()),
            Ending::Storage(e) => Some(format!("the session could not be recorded: {e}")),
        }
    }
}

/// A live session's sections of `summary.json`.
#[derive(Debug, serde::Serialize)]
struct LiveSummary<'a> {
    latency: &'a LatencyReport,
    runtime: RuntimeCounters,
    #[serde(skip_serializing_if = "Option::is_none")]
    recording: Option<RecordingSummary>,
    /// The source's own counters (a Cyton's packets, a sound card's xruns).
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<serde_json::Value>,
    /// Each output device's own counters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    outputs: Vec<serde_json::Value>,
    /// The LSL marker outlet's stream and counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    lsl_markers: Option<serde_json::Value>,
    /// What `[realtime]` got for the processing thread.
    realtime: &'a realtime::RealtimeReport,
}

#[derive(Debug, serde::Serialize)]
struct RuntimeCounters {
    outputs_disarmed_before_flush: bool,
    triggers_written: usize,
    triggers_suppressed_after_disarm: u64,
    triggers_withheld_unlogged: u64,
    acquisition_overrun_frames: u64,
    event_ring_full: u64,
    command_ring_full: u64,
}

#[derive(Debug, serde::Serialize)]
struct RecordingSummary {
    file: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    counters: Option<RecordingCounters>,
    /// Samples beyond the recording's range, clipped for the detectors too.
    clipped_samples: u64,
    /// Events not annotated in the recording (its queue was full).
    annotation_ring_full: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyReport {
    pub block_processing: Option<LatencySummary>,
    pub arrival_to_command: Option<LatencySummary>,
}

pub struct LiveReport {
    pub ending: Ending,
    pub progress: Progress,
    pub wall_s: f64,
    pub latency: LatencyReport,
    pub triggers_written: usize,
    pub dir: std::path::PathBuf,
    /// Rows in the session's event log.
    pub events_logged: usize,
    /// Settings the detector adjusted to the source's rate.
    pub adjustments: Vec<String>,
    /// The session files that could not be written at the end, and why
    /// (the session itself was stopped and disarmed all the same).
    pub unwritten: Option<String>,
}

/// Counters shared by the threads, for the summary and the status line.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    frames_done: AtomicU64,
    overrun_frames: Arc<AtomicU64>,
    event_ring_full: AtomicU64,
    command_ring_full: AtomicU64,
    suppressed_disarmed: AtomicU64,
    /// Delivered triggers never released because their row could not be logged.
    triggers_withheld: AtomicU64,
    /// Samples beyond the recording's range (clipped for the detectors too).
    clipped_samples: Arc<AtomicU64>,
    /// Events not annotated in the recording (its queue was full).
    annotation_ring_full: AtomicU64,
}

pub struct LiveSpec<'a> {
    pub command: &'a str,
    pub config: &'a Config,
    pub opened: Opened,
    pub outputs: Vec<Box<dyn TriggerOutput>>,
    pub out: &'a Path,
    /// Stop after this much signal (None: until the source ends or Ctrl-C).
    pub duration_s: Option<f64>,
}

fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, RuntimeError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(RuntimeError::Thread)
}

/// The flags that stop each thread, set in the disarm-first order.
#[derive(Default)]
struct Flags {
    armed: Arc<AtomicBool>,
    stop_sinks: Arc<AtomicBool>,
    stop_acquisition: Arc<AtomicBool>,
    stop_processing: Arc<AtomicBool>,
    source_done: Arc<AtomicBool>,
    stop_journal: Arc<AtomicBool>,
    stop_recorder: Arc<AtomicBool>,
    /// Where the recording ends, set once processing has stopped.
    recording_end: Arc<AtomicU64>,
}

/// The running threads of a session.
struct Threads {
    sinks: Vec<JoinHandle<sinks::SinkReport>>,
    journal: JoinHandle<SessionWriter>,
    processing: JoinHandle<processing::ProcessingReport>,
    acquisition: JoinHandle<()>,
    recorder: Option<JoinHandle<Result<RecordingCounters, String>>>,
}

/// What the threads handed back at shutdown.
struct Joined {
    sinks: Vec<sinks::SinkReport>,
    writer: SessionWriter,
    processed: processing::ProcessingReport,
    recording: Option<Result<RecordingCounters, String>>,
}

/// Run a live session to its end and write its folder. `on_status` is called
/// about once a second with the counts so far.
pub fn run_live(
    spec: LiveSpec,
    stop: &AtomicBool,
    mut on_status: impl FnMut(&Progress),
) -> Result<LiveReport, RuntimeError> {
    let started = Instant::now();
    let command = spec.command;
    let config = spec.config;
    let rate = spec.opened.rate;
    let selected = select_channels(config, &spec.opened)?;
    let labels: Vec<String> = selected
        .iter()
        .map(|&i| spec.opened.labels[i].clone())
        .collect();
    let controller = Controller::new(config, rate, selected.len())?;
    let markers = config
        .lsl_markers
        .as_ref()
        .map(|c| crate::device::lsl::MarkerOutlet::open(c, started))
        .transpose()?;
    let marker_stats = markers.as_ref().map(|m| m.stats());
    let writer = SessionWriter::create(spec.out, rate, labels.clone(), &config.to_toml())?;
    let monitor = SourceMonitor::of(&spec.opened.source);
    let description = spec.opened.description.clone();
    tracing::debug!(
        "neuroloop {} {command}: {description}, {} Hz, channels {labels:?}, {} output(s), folder {}",
        env!("CARGO_PKG_VERSION"),
        rate.hz(),
        spec.outputs.len(),
        spec.out.display()
    );

    let flags = Flags::default();
    flags.armed.store(true, Ordering::SeqCst);
    let shared = Arc::new(Shared::default());
    let progress = Arc::new(Mutex::new(Progress::default()));
    let (notice_tx, notices) = control::notice_channel();
    let threads = start_threads(
        spec, controller, selected, writer, markers, &flags, &shared, &progress, notice_tx,
    )?;

    let ending = control::supervise(
        notices,
        stop,
        |warn| monitor.warn(&shared, warn),
        || {
            let mut p = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
            p.frames_done = shared.frames_done.load(Ordering::Relaxed);
            p.seconds_done = rate.seconds(p.frames_done);
            on_status(&p);
        },
    )?;
    tracing::debug!(
        "session ending ({}): disarming outputs first",
        ending.status()
    );
    let joined = shut_down(threads, &flags)?;
    tracing::debug!("outputs disarmed, threads joined");
    let wall_s = started.elapsed().as_secs_f64();
    let progress = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(write_session(
        joined,
        ending,
        progress,
        SessionFacts {
            command,
            config,
            description: &description,
            labels: &labels,
            rate,
            started,
            wall_s,
            shared: &shared,
            monitor: &monitor,
            markers: marker_stats.as_deref(),
        },
    ))
}

/// Resolve the configured channels against the source's labels.
fn select_channels(config: &Config, opened: &Opened) -> Result<Vec<usize>, RuntimeError> {
    let probe = Recording {
        signals: opened
            .labels
            .iter()
            .map(|l| Signal {
                label: l.clone(),
                unit: "uV".into(),
                rate: opened.rate,
                samples: Vec::new(),
            })
            .collect(),
        annotations: Vec::new(),
    };
    Ok(probe.select(&config.input.selectors())?)
}

#[allow(clippy::too_many_arguments)]
fn start_threads(
    spec: LiveSpec,
    controller: Controller,
    selected: Vec<usize>,
    writer: SessionWriter,
    markers: Option<crate::device::lsl::MarkerOutlet>,
    flags: &Flags,
    shared: &Arc<Shared>,
    progress: &Arc<Mutex<Progress>>,
    notice_tx: tokio::sync::mpsc::UnboundedSender<Notice>,
) -> Result<Threads, RuntimeError> {
    let rate = spec.opened.rate;
    let source_channels = spec.opened.labels.len();
    // Sinks first: the journal releases triggers to them.
    let mut outputs = Vec::new();
    let mut sink_threads = Vec::new();
    for output in spec.outputs {
        let (tx, rx) = HeapRb::<TriggerCommand>::new(COMMAND_RING).split();
        let handle = sinks::Sink {
            output,
            commands: rx,
            armed: flags.armed.clone(),
            stop: flags.stop_sinks.clone(),
            shared: shared.clone(),
            notices: notice_tx.clone(),
            capacity: spec.config.trigger.max_per_session as usize + 1,
        }
        .spawn()?;
        outputs.push((tx, handle.thread().clone()));
        sink_threads.push(handle);
    }
    let ring_frames = ((rate.hz() * SAMPLE_RING_S).ceil() as usize).max(MIN_RING_FRAMES);
    let max_chunk = spec.opened.max_chunk_frames;
    let ring_samples = (ring_frames + max_chunk) * source_channels;
    let (tee, recorder, annotations) = if spec.config.recording.enabled {
        let scales = spec
            .opened
            .full_scale_uv
            .iter()
            .zip(&spec.opened.labels)
            .map(|(&range, label)| {
                DigitalScale::symmetric(range).ok_or_else(|| {
                    SessionError::File(crate::io::FileError::CannotWrite {
                        path: spec.out.join("recording.bdf"),
                        problem: format!(
                            "channel {label}: no recording scale for a range of ±{range} µV"
                        ),
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let writer = RecordingWriter::create(
            &spec.out.join("recording.bdf"),
            &RecordingSpec {
                labels: spec.opened.labels.clone(),
                scales: scales.clone(),
                rate,
                source: spec.opened.description.clone(),
                start_unix_s: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            },
        )
        .map_err(SessionError::from)?;
        let (codes_tx, codes_rx) = HeapRb::<i32>::new(ring_samples).split();
        let (chunks_tx, chunks_rx) = HeapRb::<recorder::RecordedChunk>::new(ring_frames).split();
        let (events_tx, events_rx) = HeapRb::<crate::event::Event>::new(EVENT_RING).split();
        let recorder = recorder::Recorder {
            writer,
            chunks: chunks_rx,
            codes: codes_rx,
            events: events_rx,
            channels: source_channels,
            shared: shared.clone(),
            end: flags.recording_end.clone(),
            stop: flags.stop_recorder.clone(),
            notices: notice_tx.clone(),
        };
        let handle = spawn("neuroloop-recorder", move || recorder.run())?;
        let tee = RecordTee {
            scales,
            codes: codes_tx,
            chunks: chunks_tx,
            coded: vec![0; max_chunk * source_channels],
            quantized: vec![0.0; max_chunk * source_channels],
            clipped: shared.clipped_samples.clone(),
        };
        let annotations = (events_tx, handle.thread().clone());
        (Some(tee), Some(handle), Some(annotations))
    } else {
        (None, None, None)
    };
    let (entry_tx, entry_rx) = HeapRb::<journal::Entry>::new(EVENT_RING).split();
    let journal = {
        let journal = journal::Journal {
            writer,
            entries: entry_rx,
            outputs,
            rate,
            shared: shared.clone(),
            progress: progress.clone(),
            notices: notice_tx.clone(),
            stop: flags.stop_journal.clone(),
            annotations,
            markers,
        };
        spawn("neuroloop-journal", move || journal.run())?
    };
    let (sample_tx, sample_rx) = HeapRb::<f64>::new(ring_samples).split();
    let (header_tx, header_rx) = HeapRb::<ChunkHeader>::new(ring_frames).split();
    let processing = {
        let processing = processing::Processing {
            controller,
            samples: sample_rx,
            headers: header_rx,
            selected,
            source_channels,
            max_chunk,
            limit: spec.duration_s.map(|s| rate.samples_in_s(s)),
            journal: entry_tx,
            journal_thread: journal.thread().clone(),
            shared: shared.clone(),
            notices: notice_tx.clone(),
            stop: flags.stop_processing.clone(),
            source_done: flags.source_done.clone(),
            realtime: spec.config.realtime.clone(),
        };
        spawn("neuroloop-processing", move || processing.run())?
    };
    let ring = RingWriter {
        samples: sample_tx,
        headers: header_tx,
        channels: source_channels,
        consumer: processing.thread().clone(),
        overrun_frames: shared.overrun_frames.clone(),
        tee,
    };
    let acquisition = spawn_acquisition(
        spec.opened.source,
        ring,
        flags.stop_acquisition.clone(),
        flags.source_done.clone(),
        notice_tx,
    )?;
    Ok(Threads {
        sinks: sink_threads,
        journal,
        processing,
        acquisition,
        recorder,
    })
}

/// The acquisition thread: the source's loop into the ring until it ends,
/// fails or is stopped.
fn spawn_acquisition(
    source: Source,
    mut ring: RingWriter,
    stop: Arc<AtomicBool>,
    source_done: Arc<AtomicBool>,
    notices: tokio::sync::mpsc::UnboundedSender<Notice>,
) -> Result<JoinHandle<()>, RuntimeError> {
    spawn("neuroloop-acquisition", move || {
        let result = match source {
            Source::Recording(r) => {
                r.run(&mut ring, &stop);
                Ok(())
            }
            Source::Cyton(mut c) => c.run(&mut ring, &stop),
            Source::Audio(mut a) => a.run(&mut ring, &stop),
            Source::Lsl(mut l) => l.run(&mut ring, &stop),
        };
        if let Err(e) = result {
            let _ = notices.send(Notice::Device(e));
        }
        source_done.store(true, Ordering::Release);
        ring.consumer.unpark();
    })
}

/// Stop every thread in the disarm-first order: (1) disarm and join every
/// output, so none can fire again; (2) stop acquisition, then processing;
/// (3) let the journal log what is still queued; (4) let the recorder write
/// the frames processing processed, and end the recording there.
fn shut_down(threads: Threads, flags: &Flags) -> Result<Joined, RuntimeError> {
    flags.armed.store(false, Ordering::SeqCst);
    flags.stop_sinks.store(true, Ordering::Release);
    let mut sinks = Vec::new();
    for handle in threads.sinks {
        handle.thread().unpark();
        sinks.push(handle.join().map_err(|_| thread_panicked("sink"))?);
    }
    flags.stop_acquisition.store(true, Ordering::Release);
    threads
        .acquisition
        .join()
        .map_err(|_| thread_panicked("acquisition"))?;
    flags.stop_processing.store(true, Ordering::Release);
    threads.processing.thread().unpark();
    let processed = threads
        .processing
        .join()
        .map_err(|_| thread_panicked("processing"))?;
    flags.stop_journal.store(true, Ordering::Release);
    threads.journal.thread().unpark();
    let writer = threads
        .journal
        .join()
        .map_err(|_| thread_panicked("journal"))?;
    let recording = match threads.recorder {
        None => None,
        Some(handle) => {
            flags.recording_end.store(processed.end, Ordering::Release);
            flags.stop_recorder.store(true, Ordering::Release);
            handle.thread().unpark();
            Some(handle.join().map_err(|_| thread_panicked("recorder"))?)
        }
    };
    Ok(Joined {
        sinks,
        writer,
        processed,
        recording,
    })
}

/// What the session folder's summary needs besides the threads' reports.
struct SessionFacts<'a> {
    command: &'a str,
    config: &'a Config,
    description: &'a str,
    labels: &'a [String],
    rate: SampleRate,
    started: Instant,
    wall_s: f64,
    shared: &'a Shared,
    monitor: &'a SourceMonitor,
    markers: Option<&'a crate::device::lsl::MarkerStats>,
}

/// Write `latency.tsv` and `summary.json`, and finish (or abandon) the event
/// log. Outputs are disarmed by now: a file that cannot be written is
/// reported, not returned as an error that would hide how the session ended.
fn write_session(
    joined: Joined,
    ending: Ending,
    mut progress: Progress,
    facts: SessionFacts,
) -> LiveReport {
    let Joined {
        sinks,
        writer,
        processed,
        recording,
    } = joined;
    let shared = facts.shared;
    let mut arrival_to_command = LatencyHistogram::new();
    let mut records: Vec<TriggerRecord> = Vec::new();
    for r in &sinks {
        arrival_to_command.merge(&r.arrival_to_command);
        records.extend_from_slice(&r.records);
    }
    records.sort_by_key(|r| (r.decided_at, r.sink));
    let latency = LatencyReport {
        block_processing: processed.block_processing.summary(),
        arrival_to_command: arrival_to_command.summary(),
    };
    progress.frames_done = processed.controller.next_sample();
    progress.seconds_done = facts.rate.seconds(progress.frames_done);
    let mut unwritten = Vec::new();
    let recording = recording.map(|r| match r {
        Ok(counters) => RecordingSummary {
            file: "recording.bdf",
            counters: Some(counters),
            clipped_samples: shared.clipped_samples.load(Ordering::Relaxed),
            annotation_ring_full: shared.annotation_ring_full.load(Ordering::Relaxed),
            error: None,
        },
        Err(e) => {
            unwritten.push(format!("recording.bdf: {e}"));
            RecordingSummary {
                file: "recording.bdf",
                counters: None,
                clipped_samples: shared.clipped_samples.load(Ordering::Relaxed),
                annotation_ring_full: shared.annotation_ring_full.load(Ordering::Relaxed),
                error: Some(e),
            }
        }
    });
    let live = LiveSummary {
        latency: &latency,
        runtime: RuntimeCounters {
            outputs_disarmed_before_flush: true,
            triggers_written: records.len(),
            triggers_suppressed_after_disarm: shared.suppressed_disarmed.load(Ordering::Relaxed),
            triggers_withheld_unlogged: shared.triggers_withheld.load(Ordering::Relaxed),
            acquisition_overrun_frames: shared.overrun_frames.load(Ordering::Relaxed),
            event_ring_full: shared.event_ring_full.load(Ordering::Relaxed),
            command_ring_full: shared.command_ring_full.load(Ordering::Relaxed),
        },
        recording,
        source: facts.monitor.report(),
        outputs: sinks.iter().filter_map(|r| r.device.clone()).collect(),
        lsl_markers: facts.markers.map(|m| m.report()),
        realtime: &processed.realtime,
    };
    let summary = Summary::new(
        SummaryParts {
            command: facts.command,
            input: facts.description,
            config: facts.config,
            rate: facts.rate,
            labels: facts.labels,
            progress: &progress,
            status: ending.status(),
            error: ending.error(),
            controller: processed.controller.counters(),
            trigger: processed.controller.trigger_counters(),
            adjustments: processed.controller.adjustments(),
            wall_s: facts.wall_s,
        },
        &[],
        live,
    );
    let dir = writer.dir().to_path_buf();
    let events_logged = writer.rows();
    // The reserve goes first: on a full disk it is what makes room for these files.
    writer.release_reserve();
    if let Err(e) = write_latency_tsv(&dir, &records, facts.started) {
        unwritten.push(e.to_string());
    }
    let closed = match ending {
        Ending::Complete | Ending::Interrupted => writer.finish(&summary),
        Ending::Device(_) | Ending::Fault(_) | Ending::Storage(_) => writer.abandon(&summary),
    };
    if let Err(e) = closed {
        unwritten.push(e.to_string());
    }
    LiveReport {
        ending,
        progress,
        wall_s: facts.wall_s,
        latency,
        triggers_written: records.len(),
        dir,
        events_logged,
        adjustments: processed.controller.adjustments().to_vec(),
        unwritten: (!unwritten.is_empty()).then(|| unwritten.join("; ")),
    }
}

fn thread_panicked(which: &str) -> RuntimeError {
    RuntimeError::Thread(std::io::Error::other(format!(
        "the {which} thread panicked"
    )))
}

/// Per delivered trigger: the deciding sample, its scheduled onset, when the
/// deciding sample arrived and when the command was written (s from the
/// session start), the difference, and for a device with its own clock the
/// planned and fired device times (µs) and their difference.
fn write_latency_tsv(
    dir: &Path,
    records: &[TriggerRecord],
    started: Instant,
) -> Result<(), SessionError> {
    let path = dir.join("latency.tsv");
    let err = |error| SessionError::Write {
        path: path.clone(),
        error,
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(err)?);
    writeln!(
        f,
        "decided_at_sample\tonset_sample\tsink\tarrived_s\twritten_s\tarrival_to_command_us\tplanned_device_us\tfired_device_us\tfired_minus_planned_us"
    )
    .map_err(err)?;
    for r in records {
        let na = || "n/a".to_string();
        let (planned, fired, late) = match r.device {
            Some(DeviceTime {
                planned_us,
                fired_us,
                ..
            }) => (
                planned_us.to_string(),
                fired_us.map_or_else(na, |f| f.to_string()),
                fired_us.map_or_else(na, |f| (f as i64 - planned_us as i64).to_string()),
            ),
            None => (na(), na(), na()),
        };
        writeln!(
            f,
            "{}\t{}\t{}\t{:.6}\t{:.6}\t{:.1}\t{planned}\t{fired}\t{late}",
            r.decided_at,
            r.onset,
            r.sink,
            r.arrived.duration_since(started).as_secs_f64(),
            r.written.duration_since(started).as_secs_f64(),
            r.written.duration_since(r.arrived).as_secs_f64() * 1e6
        )
        .map_err(err)?;
    }
    f.flush().map_err(err)
}
