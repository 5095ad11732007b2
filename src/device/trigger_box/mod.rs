//! The trigger box (`firmware/`, `hardware/`): an Arduino Uno/Nano that fires
//! TTL pulses at times of its own clock. This file holds the serial driver
//! and the clock sync; `output.rs` the [`TriggerOutput`] adapter, `config.rs`
//! its config section (`[[outputs]] kind = "trigger-box"`), `replies.rs` the
//! bookkeeping of what the box sends back, `bench.rs` what
//! `neuroloop devices` and `neuroloop trigger-box test` ask of it.
//!
//! Time: a stim's onset becomes a host `Instant` in the runtime
//! ([`TriggerCommand::due`]); the clock sync maps that to the box's clock
//! (offset and drift fitted to two-step round trips, `docs/protocol.md`) and
//! the box fires at that device time, so host jitter drops out of the
//! stimulus timing. A stim already due when it reaches the box fires as soon
//! as possible; its FIRED report says how late. Per stim, the planned and
//! fired device times come back through [`TriggerOutput::device_times`].
//!
//! A reader thread owns the receiving side of the port and stamps each chunk
//! with its arrival `Instant` (the sync's receive time); everything else runs
//! on the caller's thread (the runtime's sink thread).

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

mod bench;
mod config;
mod output;
mod replies;

use replies::Received;

pub use bench::{board, hello, pulse_outputs, OutputCheck, USB_IDS};
pub use config::TriggerBoxConfig;

use super::clock_sync::{ClockSync, SyncSummary};
use super::{DeviceError, DeviceTime, TriggerCommand, TriggerOutput};
use crate::protocol::{self, Code, Command, FrameCounts, FrameReader, Hello, Reply, Schedule};

const DEVICE: &str = "trigger-box";

/// Round trips before arming (the first completes none: two-step).
const INITIAL_SYNCS: usize = 12;

/// A train handed to the box, as far as the box has answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delivery {
    pub tag: u16,
    /// Planned as asked; fired as the box reported its first pulse.
    pub time: DeviceTime,
    /// When the box said the first pulse would start: as planned, or later
    /// when the request reached it too late for that.
    pub start_us: Option<u64>,
    pub refused: Option<Code>,
    /// Pulses the box reported fired, and the latest of them against its
    /// planned time (µs).
    pub pulses_fired: u16,
    pub late_max_us: i64,
}

/// A trigger box on a serial port, handshaken, clock-synced and armed.
pub struct TriggerBox {
    port: Box<dyn serialport::SerialPort>,
    received: Receiver<Received>,
    stop_reader: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    /// Frames the reader thread accepted and rejected.
    host_frames: Arc<Mutex<FrameCounts>>,
    pub hello: Hello,
    epoch: Instant,
    seq: u8,
    /// Device clock unwrapped from 32 bits.
    last_device_us: u64,
    sync: ClockSync,
    /// Armed by `arm` (the box may have disarmed itself since).
    armed: bool,
    /// SYNC requests sent (seq → t0) and replies awaiting their follow-up.
    sync_sent: HashMap<u8, f64>,
    sync_replied: HashMap<u8, (f64, f64, f64)>,
    /// RESULTs awaited: seq → the tag of the schedule it answers (None: another command).
    awaiting: HashMap<u8, Option<u16>>,
    deliveries: Vec<Delivery>,
    next_tag: u16,
    schedule: Schedule,
    heartbeat: Duration,
    sync_interval: Duration,
    silence: Duration,
    last_sent: Instant,
    last_sync: Instant,
    last_heard: Instant,
    counts: Counts,
    box_status: Option<Reply>,
    port_name: String,
}

#[derive(Debug, Default, Clone, Serialize)]
struct Counts {
    scheduled: u64,
    fired: u64,
    refused: HashMap<String, u64>,
    skipped: u64,
    late_over_100us: u64,
    unmatched_reports: u64,
    box_frame_errors: u64,
    undecodable_replies: u64,
}

fn open_err(port: &str, message: String) -> DeviceError {
    DeviceError::Open {
        device: DEVICE,
        port: port.into(),
        message,
    }
}

fn protocol_err(message: String) -> DeviceError {
    DeviceError::Protocol {
        device: DEVICE,
        message,
    }
}

fn disconnected(message: String) -> DeviceError {
    DeviceError::Disconnected {
        device: DEVICE,
        message,
    }
}

fn us(d: f64) -> u32 {
    (d * 1000.0).round().clamp(0.0, f64::from(u32::MAX)) as u32
}

impl TriggerBox {
    /// Open, handshake (refusing a missing, silent or wrong-version box),
    /// check the pulses against the box's limits, set the heartbeat, sync
    /// the clocks and arm. `pulse_ms` is `trigger.pulse_ms`.
    pub fn open(c: &TriggerBoxConfig, pulse_ms: f64) -> Result<Self, DeviceError> {
        let mut tb = Self::connect(c, pulse_ms)?;
        tb.arm(c.timeout_ms)?;
        Ok(tb)
    }

    /// Open and handshake only: the box stays disarmed.
    pub fn connect(c: &TriggerBoxConfig, pulse_ms: f64) -> Result<Self, DeviceError> {
        let port = serialport::new(&c.port, 115_200)
            .timeout(Duration::from_millis(50))
            .open()
            .map_err(|e| open_err(&c.port, e.to_string()))?;
        let mut read_port = port
            .try_clone()
            .map_err(|e| open_err(&c.port, e.to_string()))?;
        let (tx, received) = mpsc::channel();
        let stop_reader = Arc::new(AtomicBool::new(false));
        let stop = stop_reader.clone();
        let host_frames = Arc::new(Mutex::new(FrameCounts::default()));
        let counts = host_frames.clone();
        let reader = std::thread::Builder::new()
            .name("neuroloop-trigger-box-rx".into())
            .spawn(move || {
                let mut frames = FrameReader::new();
                let mut buf = [0u8; 256];
                while !stop.load(Ordering::Relaxed) {
                    match read_port.read(&mut buf) {
                        Ok(0) => {}
                        Ok(n) => {
                            let at = Instant::now();
                            for &b in &buf[..n] {
                                if let Some(f) = frames.push(b) {
                                    let _ = tx.send(Received::Frame(at, f));
                                }
                            }
                            if let Ok(mut c) = counts.lock() {
                                *c = frames.counts;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(e) => {
                            let _ = tx.send(Received::Closed(e.to_string()));
                            break;
                        }
                    }
                }
            })
            .map_err(|e| open_err(&c.port, e.to_string()))?;
        let now = Instant::now();
        let width_ms = c.width_ms.unwrap_or(pulse_ms);
        let mut tb = TriggerBox {
            port,
            received,
            stop_reader,
            reader: Some(reader),
            host_frames,
            hello: Hello {
                re: 0,
                protocol: 0,
                firmware: (0, 0),
                outputs: 0,
                reset_cause: 0,
                min_width_us: 0,
                max_width_us: 0,
                min_interval_us: 0,
                min_gap_us: 0,
                max_rate_hz: 0,
                rate_burst: 0,
                heartbeat_ms: 0,
            },
            epoch: now,
            seq: 0,
            last_device_us: 0,
            sync: ClockSync::default(),
            armed: false,
            sync_sent: HashMap::new(),
            sync_replied: HashMap::new(),
            awaiting: HashMap::new(),
            deliveries: Vec::new(),
            next_tag: 0,
            schedule: Schedule {
                output: c.output,
                immediate: false,
                tag: 0,
                start_us: 0,
                width_us: us(width_ms),
                interval_us: if c.count > 1 { us(c.interval_ms) } else { 0 },
                count: c.count,
            },
            heartbeat: Duration::from_secs_f64(c.heartbeat_ms / 1000.0),
            sync_interval: Duration::from_secs_f64(c.sync_interval_ms / 1000.0),
            silence: Duration::from_millis(u64::from(c.timeout_ms)),
            last_sent: now,
            last_sync: now,
            last_heard: now,
            counts: Counts::default(),
            box_status: None,
            port_name: c.port.clone(),
        };
        tb.hello = tb.handshake(Duration::from_secs_f64(c.hello_timeout_ms / 1000.0))?;
        tb.check_limits()?;
        Ok(tb)
    }

    /// Set the box's heartbeat timeout, sync the clocks, arm.
    pub fn arm(&mut self, timeout_ms: u16) -> Result<(), DeviceError> {
        self.command_ok(Command::Configure {
            heartbeat_ms: timeout_ms,
        })?;
        for _ in 0..INITIAL_SYNCS {
            self.sync_round_trip()?;
        }
        self.command_ok(Command::Arm)?;
        self.armed = true;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn host_us(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.epoch).as_secs_f64() * 1e6
    }

    fn unwrap_device(&mut self, us: u32) -> u64 {
        let delta = i64::from(us.wrapping_sub(self.last_device_us as u32) as i32);
        let v = (self.last_device_us as i64 + delta).max(0) as u64;
        self.last_device_us = self.last_device_us.max(v);
        v
    }

    fn send(&mut self, cmd: Command) -> Result<u8, DeviceError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let wire = cmd.encode(seq);
        std::io::Write::write_all(&mut self.port, &wire)
            .and_then(|()| std::io::Write::flush(&mut self.port))
            .map_err(|e| {
                disconnected(if e.kind() == std::io::ErrorKind::TimedOut {
                    "stopped accepting data (write timed out)".into()
                } else {
                    e.to_string()
                })
            })?;
        self.last_sent = Instant::now();
        Ok(seq)
    }

    /// Send HELLO until the box answers (it may be booting).
    fn handshake(&mut self, timeout: Duration) -> Result<Hello, DeviceError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let seq = self.send(Command::Hello)?;
            let until = (Instant::now() + Duration::from_millis(250)).min(deadline);
            while let Some((_, reply)) = self.next_reply(until)? {
                if let Reply::Hello(h) = reply {
                    if h.re == seq {
                        if h.protocol != protocol::PROTOCOL_VERSION {
                            return Err(protocol_err(format!(
                                "{}: the box speaks protocol {}, this neuroloop speaks {}; flash firmware/ from this version (hardware/README.md)",
                                self.port_name, h.protocol, protocol::PROTOCOL_VERSION
                            )));
                        }
                        return Ok(h);
                    }
                }
            }
        }
        Err(protocol_err(format!(
            "{}: no trigger box answered within {} ms (is it the box's port, and is firmware/ flashed? hardware/README.md)",
            self.port_name,
            timeout.as_millis()
        )))
    }

    fn check_limits(&self) -> Result<(), DeviceError> {
        let h = &self.hello;
        let s = &self.schedule;
        let refuse = |what: String| {
            Err(protocol_err(format!(
                "{}: {what}; the box's firmware limits it (firmware/src/tb_config.h)",
                self.port_name
            )))
        };
        if s.output > h.outputs {
            return refuse(format!(
                "output {} asked, the box has {}",
                s.output, h.outputs
            ));
        }
        if s.width_us < u32::from(h.min_width_us) || s.width_us > h.max_width_us {
            return refuse(format!(
                "pulse width {} µs is outside {}..{} µs",
                s.width_us, h.min_width_us, h.max_width_us
            ));
        }
        if s.count > h.rate_burst {
            return refuse(format!(
                "{} pulses per train, at most {}",
                s.count, h.rate_burst
            ));
        }
        let min_interval = h.min_interval_us.max(s.width_us + u32::from(h.min_gap_us));
        if s.count > 1 && s.interval_us < min_interval {
            return refuse(format!(
                "interval {} µs, at least {min_interval} µs",
                s.interval_us
            ));
        }
        Ok(())
    }

    /// Send `cmd` and wait for its RESULT: the code and its detail.
    pub fn command(&mut self, cmd: Command) -> Result<(Code, u32), DeviceError> {
        let seq = self.send(cmd)?;
        let deadline = Instant::now() + Duration::from_millis(500);
        while let Some((_, reply)) = self.next_reply(deadline)? {
            if let Reply::Result { re, code, detail } = reply {
                if re == seq {
                    return Ok((code, detail));
                }
            }
        }
        Err(protocol_err(format!(
            "{}: no answer to {cmd:?} within 500 ms (silent box)",
            self.port_name
        )))
    }

    /// [`Self::command`], a refusal being an error.
    fn command_ok(&mut self, cmd: Command) -> Result<(), DeviceError> {
        match self.command(cmd)? {
            (Code::OK, _) => Ok(()),
            (code, detail) => Err(protocol_err(format!(
                "{}: {cmd:?} refused: {} (detail {detail})",
                self.port_name,
                code.name()
            ))),
        }
    }

    /// One SYNC, waiting for its reply.
    fn sync_round_trip(&mut self) -> Result<(), DeviceError> {
        self.send_sync()?;
        let re = self.seq.wrapping_sub(1);
        let deadline = Instant::now() + Duration::from_millis(500);
        while let Some((_, reply)) = self.next_reply(deadline)? {
            if matches!(reply, Reply::Sync { re: r, .. } if r == re) {
                return Ok(());
            }
        }
        Err(protocol_err(format!(
            "{}: no answer to a clock-sync request within 500 ms (silent box)",
            self.port_name
        )))
    }

    fn send_sync(&mut self) -> Result<(), DeviceError> {
        let t0 = self.host_us(Instant::now());
        let seq = self.send(Command::Sync)?;
        self.sync_sent.retain(|_, &mut t| t0 - t < 5e6);
        self.sync_sent.insert(seq, t0);
        self.last_sync = self.last_sent;
        Ok(())
    }

    /// Handle whatever the box sent, without waiting.
    fn drain(&mut self) -> Result<(), DeviceError> {
        while self.next_reply(Instant::now())?.is_some() {}
        Ok(())
    }

    /// The train each stim fires, as configured.
    pub fn train(&self) -> Schedule {
        self.schedule
    }

    /// Every train scheduled, in order.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// Device µs (unwrapped) at host time `t`, by the clock sync.
    pub fn device_us_at(&self, t: Instant) -> u64 {
        let host = self.host_us(t);
        self.sync.device_us(host).unwrap_or(host).max(0.0).round() as u64
    }

    pub fn sync_summary(&self) -> SyncSummary {
        self.sync.summary()
    }

    /// Schedule a train (its `tag` is assigned here) starting at device time
    /// `start_us`, without waiting for the box's answer. Returns the tag.
    pub fn schedule(
        &mut self,
        train: Schedule,
        start_us: u64,
        onset: crate::time::SampleIndex,
    ) -> Result<u16, DeviceError> {
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        let s = Schedule {
            tag,
            start_us: start_us as u32,
            ..train
        };
        let seq = self.send(Command::Schedule(s))?;
        self.awaiting.insert(seq, Some(tag));
        self.counts.scheduled += 1;
        self.deliveries.push(Delivery {
            time: DeviceTime {
                onset,
                planned_us: start_us,
                fired_us: None,
            },
            tag,
            start_us: None,
            refused: None,
            pulses_fired: 0,
            late_max_us: i64::MIN,
        });
        Ok(tag)
    }

    /// Keep-alives and clock sync; call at least every heartbeat period.
    pub fn service(&mut self) -> Result<(), DeviceError> {
        self.drain()?;
        let now = Instant::now();
        if now.duration_since(self.last_heard) > self.silence {
            return Err(DeviceError::Stalled {
                device: DEVICE,
                ms: self.silence.as_millis() as u64,
            });
        }
        if now.duration_since(self.last_sync) >= self.sync_interval {
            self.send_sync()?;
        } else if now.duration_since(self.last_sent) >= self.heartbeat {
            let seq = self.send(Command::Heartbeat)?;
            self.awaiting.insert(seq, None);
        }
        self.awaiting.retain(|&k, _| k.wrapping_sub(self.seq) > 128);
        Ok(())
    }

    /// Wait up to `d`, handling what arrives (reports of pulses in flight).
    pub fn settle(&mut self, d: Duration) -> Result<(), DeviceError> {
        let until = Instant::now() + d;
        while self.next_reply(until)?.is_some() {}
        Ok(())
    }

    /// The box's counters (a STATUS round trip).
    pub fn status(&mut self) -> Result<Option<Reply>, DeviceError> {
        let seq = self.send(Command::Status)?;
        let deadline = Instant::now() + Duration::from_millis(500);
        while let Some((_, reply)) = self.next_reply(deadline)? {
            if matches!(reply, Reply::Status { re, .. } if re == seq) {
                return Ok(Some(reply));
            }
        }
        Ok(None)
    }
}

impl Drop for TriggerBox {
    fn drop(&mut self) {
        self.stop_reader.store(true, Ordering::Relaxed);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}
