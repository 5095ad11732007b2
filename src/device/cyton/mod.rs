//! OpenBCI Cyton (and Cyton + Daisy) over its serial dongle: the 33-byte
//! packet format, a streaming parser that resynchronises after garbage and
//! counts dropped packets from the sample counter, the board commands, and
//! the acquisition loop the runtime runs on its own thread, the source
//! adapter ([`CytonSource`], [`open`]) and the `[source] kind = "openbci"`
//! config section; the emulator is in `emulator.rs`.
//!
//! Packet (OpenBCI "Cyton Data Format"): `0xA0`, sample counter (0–255),
//! 8 channels × 24-bit big-endian two's complement, 6 aux bytes, a stop byte
//! `0xC0`–`0xC6`. One count is `4.5 V / gain / (2^23 − 1)`. With a Daisy the
//! board alternates packets at 250 Hz: even counters carry the Daisy's
//! channels 9–16, odd counters the Cyton's channels 1–8 (BrainFlow's reading);
//! a 16-channel frame is complete on each odd packet, so frames arrive at 125 Hz.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod emulator;

use serde::{Deserialize, Serialize};

use super::{check_stall_ms, DeviceError, FrameSink, OpenError, Opened, Source};
use crate::config::pipeline::{invalid, ConfigError};
use crate::time::{SampleIndex, SampleRate};

pub const PACKET_LEN: usize = 33;
pub const HEADER: u8 = 0xA0;
pub const CHANNELS_PER_BOARD: usize = 8;
/// Sample rate of the board's packets over the serial dongle.
pub const PACKET_RATE_HZ: f64 = 250.0;
/// Bytes [`acquire`] asks for per read.
pub const READ_BYTES: usize = 4096;
/// Frames one read can complete: its bytes plus up to `PACKET_LEN - 1` held
/// over from the read before make at most ⌊(4096 + 32) / 33⌋ = ⌈4096 / 33⌉ =
/// 125 packets (frames ≤ packets).
pub const MAX_FRAMES_PER_READ: usize = READ_BYTES.div_ceil(PACKET_LEN);

/// Channels the board streams: 8, or 16 with a Daisy.
pub fn channels(daisy: bool) -> usize {
    if daisy {
        2 * CHANNELS_PER_BOARD
    } else {
        CHANNELS_PER_BOARD
    }
}

/// Frames per second: every packet, or every pair of packets with a Daisy.
pub fn rate_hz(daisy: bool) -> f64 {
    if daisy {
        PACKET_RATE_HZ / 2.0
    } else {
        PACKET_RATE_HZ
    }
}
/// ADS1299 reference voltage.
const VREF_V: f64 = 4.5;
/// Gains the ADS1299 supports, with the code the `x…X` channel command takes.
pub const GAINS: [(u8, u8); 7] = [(1, 0), (2, 1), (4, 2), (6, 3), (8, 4), (12, 5), (24, 6)];

/// Microvolts per count at `gain`.
pub fn uv_per_count(gain: u8) -> f64 {
    VREF_V / gain as f64 / ((1u32 << 23) - 1) as f64 * 1e6
}

/// Whether `byte` is one of the stop bytes the firmware sends.
pub fn is_stop_byte(byte: u8) -> bool {
    (0xC0..=0xC6).contains(&byte)
}

/// A 24-bit big-endian two's complement value.
pub fn decode_i24(b: [u8; 3]) -> i32 {
    // Place the 24 bits in the top of an i32, then shift back to sign-extend.
    i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8
}

pub fn encode_i24(value: i32) -> [u8; 3] {
    let clamped = value.clamp(-(1 << 23), (1 << 23) - 1);
    let b = clamped.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// One packet as the firmware sends it, for the emulator and the tests.
pub fn encode_packet(counter: u8, counts: &[i32; CHANNELS_PER_BOARD]) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0] = HEADER;
    p[1] = counter;
    for (ch, &c) in counts.iter().enumerate() {
        p[2 + 3 * ch..5 + 3 * ch].copy_from_slice(&encode_i24(c));
    }
    p[32] = 0xC0;
    p
}

/// A decoded packet: its counter and 8 channels in counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub counter: u8,
    pub counts: [i32; CHANNELS_PER_BOARD],
}

/// What the parser has seen, all cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserCounters {
    pub packets: u64,
    /// Bytes discarded while looking for a packet boundary.
    pub garbage_bytes: u64,
    /// Times the stream lost and regained packet alignment.
    pub resyncs: u64,
    /// Packets missing according to the sample counter.
    pub dropped_packets: u64,
}

/// A streaming packet parser: feed it bytes in any chunking.
#[derive(Debug, Clone)]
pub struct Parser {
    buf: [u8; PACKET_LEN],
    len: usize,
    last_counter: Option<u8>,
    in_garbage: bool,
    pub counters: ParserCounters,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    pub fn new() -> Self {
        Self {
            buf: [0; PACKET_LEN],
            len: 0,
            last_counter: None,
            in_garbage: false,
            counters: ParserCounters::default(),
        }
    }

    fn discard(&mut self, n: usize) {
        self.counters.garbage_bytes += n as u64;
        if !self.in_garbage {
            self.in_garbage = true;
            self.counters.resyncs += 1;
        }
    }

    /// Parse `bytes`; each complete packet goes to `emit` with the number of
    /// packets missing just before it (from the counter, modulo 256).
    pub fn feed(&mut self, bytes: &[u8], mut emit: impl FnMut(Packet, u64)) {
        for &byte in bytes {
            if self.len == 0 && byte != HEADER {
                self.discard(1);
                continue;
            }
            self.buf[self.len] = byte;
            self.len += 1;
            if self.len < PACKET_LEN {
                continue;
            }
            if !is_stop_byte(self.buf[PACKET_LEN - 1]) {
                // Misaligned: drop the false header and rescan the rest.
                self.discard(1);
                let rest = self.buf;
                self.len = 0;
                for (i, &b) in rest[1..].iter().enumerate() {
                    if b == HEADER {
                        self.buf[..PACKET_LEN - 1 - i].copy_from_slice(&rest[1 + i..]);
                        self.len = PACKET_LEN - 1 - i;
                        break;
                    }
                    self.discard(1);
                }
                continue;
            }
            self.len = 0;
            self.in_garbage = false;
            let mut counts = [0; CHANNELS_PER_BOARD];
            for (ch, c) in counts.iter_mut().enumerate() {
                let at = 2 + 3 * ch;
                *c = decode_i24([self.buf[at], self.buf[at + 1], self.buf[at + 2]]);
            }
            let counter = self.buf[1];
            let missing = match self.last_counter {
                Some(last) => counter.wrapping_sub(last).wrapping_sub(1) as u64,
                None => 0,
            };
            self.last_counter = Some(counter);
            self.counters.packets += 1;
            self.counters.dropped_packets += missing;
            emit(Packet { counter, counts }, missing);
        }
    }
}

/// Packets to frames in µV, with their sample index. A Cyton frame is one
/// packet; a Daisy frame pairs an even (Daisy) packet with the next odd
/// (Cyton) one, and a pair broken by a drop is counted and skipped.
#[derive(Debug, Clone)]
pub struct Framer {
    daisy: bool,
    /// Every channel runs at the one gain `configure` set.
    uv_per_count: f64,
    pending_daisy: Option<[i32; CHANNELS_PER_BOARD]>,
    /// Sample index of the next frame.
    next: SampleIndex,
    started: bool,
    /// Frames lost to dropped packets (the controller sees them as a gap).
    pub dropped_frames: u64,
}

impl Framer {
    /// `gain`: the gain of every channel.
    pub fn new(daisy: bool, gain: u8) -> Self {
        Self {
            daisy,
            uv_per_count: uv_per_count(gain),
            pending_daisy: None,
            next: 0,
            started: false,
            dropped_frames: 0,
        }
    }

    pub fn channels(&self) -> usize {
        channels(self.daisy)
    }

    /// Frames per second this framer produces.
    pub fn rate_hz(&self) -> f64 {
        rate_hz(self.daisy)
    }

    /// Take a packet (and the packets missing before it); a completed frame is
    /// written into `frame` (µV) and its sample index returned.
    pub fn push(
        &mut self,
        packet: &Packet,
        missing: u64,
        frame: &mut [f64],
    ) -> Option<SampleIndex> {
        if !self.daisy {
            if self.started {
                self.next += missing;
                self.dropped_frames += missing;
            }
            self.started = true;
            for (out, &c) in frame.iter_mut().zip(&packet.counts) {
                *out = c as f64 * self.uv_per_count;
            }
            let n = self.next;
            self.next += 1;
            return Some(n);
        }
        if missing > 0 && self.started {
            // Each missing packet pair is one frame; a half pair loses its frame too.
            let lost = (missing + u64::from(self.pending_daisy.is_some())).div_ceil(2);
            self.next += lost;
            self.dropped_frames += lost;
            self.pending_daisy = None;
        }
        if packet.counter % 2 == 0 {
            self.pending_daisy = Some(packet.counts);
            return None;
        }
        let daisy = self.pending_daisy.take()?;
        self.started = true;
        for (out, &c) in frame.iter_mut().zip(packet.counts.iter().chain(&daisy)) {
            *out = c as f64 * self.uv_per_count;
        }
        let n = self.next;
        self.next += 1;
        Some(n)
    }
}

/// The channel letters of the `x…X` channel-settings command (1–8 Cyton,
/// Q–I Daisy).
const CHANNEL_KEYS: &[u8; 16] = b"12345678QWERTYUI";

/// The command setting `channel` (0-based) on, at `gain`, normal input, in
/// the bias, SRB2 connected, SRB1 open (the firmware's defaults apart from gain).
pub fn channel_command(channel: usize, gain: u8) -> Option<[u8; 9]> {
    let code = GAINS.iter().find(|(g, _)| *g == gain)?.1;
    let key = *CHANNEL_KEYS.get(channel)?;
    Some([b'x', key, b'0', b'0' + code, b'0', b'1', b'1', b'0', b'X'])
}

/// The gain a channel-settings command sets, and its channel (0-based).
pub fn parse_channel_command(cmd: &[u8]) -> Option<(usize, u8)> {
    if cmd.len() != 9 || cmd[0] != b'x' || cmd[8] != b'X' {
        return None;
    }
    let channel = CHANNEL_KEYS.iter().position(|&k| k == cmd[1])?;
    let code = cmd[3].checked_sub(b'0')?;
    let gain = GAINS.iter().find(|(_, c)| *c == code)?.0;
    Some((channel, gain))
}

pub const CMD_START: u8 = b'b';
pub const CMD_STOP: u8 = b's';
pub const CMD_DAISY_ON: u8 = b'C';
pub const CMD_DAISY_OFF: u8 = b'c';
/// Text replies from the board end with this.
pub const REPLY_END: &[u8] = b"$$$";

/// Live counters of a Cyton source, readable from other threads.
#[derive(Debug, Default)]
pub struct CytonCounters {
    pub packets: AtomicU64,
    pub garbage_bytes: AtomicU64,
    pub resyncs: AtomicU64,
    pub dropped_packets: AtomicU64,
    pub dropped_frames: AtomicU64,
}

impl CytonCounters {
    fn store(&self, p: &ParserCounters, dropped_frames: u64) {
        self.packets.store(p.packets, Ordering::Relaxed);
        self.garbage_bytes.store(p.garbage_bytes, Ordering::Relaxed);
        self.resyncs.store(p.resyncs, Ordering::Relaxed);
        self.dropped_packets
            .store(p.dropped_packets, Ordering::Relaxed);
        self.dropped_frames.store(dropped_frames, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "packets": self.packets.load(Ordering::Relaxed),
            "garbage_bytes": self.garbage_bytes.load(Ordering::Relaxed),
            "resyncs": self.resyncs.load(Ordering::Relaxed),
            "dropped_packets": self.dropped_packets.load(Ordering::Relaxed),
            "dropped_frames": self.dropped_frames.load(Ordering::Relaxed),
        })
    }
}

fn disconnected(e: std::io::Error) -> DeviceError {
    DeviceError::Disconnected {
        device: "openbci",
        message: e.to_string(),
    }
}

/// Read until a `$$$`-terminated reply or `timeout`; the reply's text is returned.
fn read_reply<P: Read + ?Sized>(port: &mut P, timeout: Duration) -> Result<String, DeviceError> {
    let deadline = Instant::now() + timeout;
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        match port.read(&mut buf) {
            Ok(0) => return Err(disconnected(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if reply.ends_with(REPLY_END) {
                    return Ok(String::from_utf8_lossy(&reply).into_owned());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(disconnected(e)),
        }
    }
    Err(DeviceError::Protocol {
        device: "openbci",
        message: format!(
            "no reply ending in $$$ within {} ms (got {:?})",
            timeout.as_millis(),
            String::from_utf8_lossy(&reply)
        ),
    })
}

/// Put the board in the wanted mode (stop, Daisy on/off, every channel's
/// gain). Streaming starts with [`CMD_START`] once the reader is running, so
/// no packet waits in an OS buffer. The port must have a short read timeout.
pub fn configure<P: Read + Write + ?Sized>(
    port: &mut P,
    daisy: bool,
    gain: u8,
) -> Result<(), DeviceError> {
    let write = |port: &mut P, bytes: &[u8]| port.write_all(bytes).map_err(disconnected);
    write(port, &[CMD_STOP])?;
    // Drop whatever a board left streaming had queued.
    let quiet_until = Instant::now() + Duration::from_millis(50);
    let mut sink = [0u8; 1024];
    while Instant::now() < quiet_until {
        match port.read(&mut sink) {
            Ok(0) => return Err(disconnected(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(disconnected(e)),
        }
    }
    let reply_timeout = Duration::from_millis(1000);
    write(port, &[if daisy { CMD_DAISY_ON } else { CMD_DAISY_OFF }])?;
    read_reply(port, reply_timeout)?;
    for channel in 0..channels(daisy) {
        let cmd = channel_command(channel, gain).ok_or_else(|| DeviceError::Protocol {
            device: "openbci",
            message: format!("gain {gain} is not one of 1, 2, 4, 6, 8, 12, 24"),
        })?;
        write(port, &cmd)?;
        read_reply(port, reply_timeout)?;
    }
    Ok(())
}

/// The acquisition loop: read, parse, frame, push, until `stop` is set or
/// the device fails. `stall` is the longest silence tolerated.
pub fn acquire<P: Read + ?Sized>(
    port: &mut P,
    framer: &mut Framer,
    out: &mut dyn FrameSink,
    stall: Duration,
    stop: &AtomicBool,
    counters: &Arc<CytonCounters>,
) -> Result<(), DeviceError> {
    let mut parser = Parser::new();
    let channels = framer.channels();
    let mut bytes = [0u8; READ_BYTES];
    let mut chunk = vec![0.0; MAX_FRAMES_PER_READ * channels];
    let mut frame = [0.0; 2 * CHANNELS_PER_BOARD];
    let mut last_data = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let n = match port.read(&mut bytes) {
            Ok(0) => return Err(disconnected(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(e) => return Err(disconnected(e)),
        };
        let arrived = Instant::now();
        // Contiguous runs of frames go out as one chunk; a gap starts a new one.
        let mut run_start: Option<SampleIndex> = None;
        let mut run_frames = 0usize;
        let packets_before = parser.counters.packets;
        parser.feed(&bytes[..n], |packet, missing| {
            if let Some(index) = framer.push(&packet, missing, &mut frame) {
                if let Some(s) = run_start {
                    if s + run_frames as u64 != index {
                        out.push(s, &chunk[..run_frames * channels], arrived);
                        run_start = None;
                    }
                }
                if run_start.is_none() {
                    run_start = Some(index);
                    run_frames = 0;
                }
                chunk[run_frames * channels..(run_frames + 1) * channels]
                    .copy_from_slice(&frame[..channels]);
                run_frames += 1;
            }
        });
        if let Some(s) = run_start {
            out.push(s, &chunk[..run_frames * channels], arrived);
        }
        if parser.counters.packets > packets_before {
            last_data = arrived;
        } else if arrived.duration_since(last_data) > stall {
            // Silence, or garbage only: either way a stall of the data.
            return Err(DeviceError::Stalled {
                device: "openbci",
                ms: stall.as_millis() as u64,
            });
        }
        counters.store(&parser.counters, framer.dropped_frames);
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBciConfig {
    /// Serial port, e.g. `/dev/ttyUSB0`.
    pub port: String,
    #[serde(default)]
    pub daisy: bool,
    /// Gain set on every channel at start (1, 2, 4, 6, 8, 12 or 24).
    #[serde(default = "default_gain")]
    pub gain: u8,
    /// Longest silence tolerated before the device counts as stalled.
    #[serde(default = "super::default_stall_ms")]
    pub stall_ms: f64,
}

fn default_gain() -> u8 {
    24
}

impl OpenBciConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.port.trim().is_empty() {
            return Err(invalid("source.port", "must name a serial port".into()));
        }
        if !GAINS.iter().any(|(g, _)| *g == self.gain) {
            return Err(invalid(
                "source.gain",
                format!("must be one of 1, 2, 4, 6, 8, 12, 24, got {}", self.gain),
            ));
        }
        check_stall_ms(self.stall_ms)
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
    pub fn run(&mut self, out: &mut dyn FrameSink, stop: &AtomicBool) -> Result<(), DeviceError> {
        self.port
            .write_all(&[CMD_START])
            .map_err(|e| DeviceError::Disconnected {
                device: "openbci",
                message: e.to_string(),
            })?;
        acquire(
            &mut self.port,
            &mut self.framer,
            out,
            self.stall,
            stop,
            &self.counters,
        )?;
        let _ = self.port.write_all(&[CMD_STOP]);
        Ok(())
    }
}

/// Open a Cyton and set its mode and gains; the acquisition thread starts the stream.
pub fn open(c: &OpenBciConfig) -> Result<Opened, OpenError> {
    let open_err = |message: String| DeviceError::Open {
        device: "openbci",
        port: c.port.clone(),
        message,
    };
    let mut port = serialport::new(&c.port, 115_200)
        .timeout(Duration::from_millis(10))
        .open()
        .map_err(|e| open_err(e.to_string()))?;
    configure(&mut port, c.daisy, c.gain)?;
    let channels = channels(c.daisy);
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
        max_chunk_frames: MAX_FRAMES_PER_READ,
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

#[cfg(test)]
mod tests;
