//! Sanworks Pulse Pal v2 as a trigger sink, from its documented serial
//! protocol (the `PulsePal.py` client Sanworks publishes): every op is the
//! byte 213 then an op code; multi-byte values are little-endian.
//! - handshake `213 72` → `75` and the firmware version (u32; ≥ 20 is a v2);
//! - program a channel parameter `213 74 code channel value` → one ack byte
//!   (times as u32 counts of the 20 kHz cycle, voltages as u16 codes of ±10 V);
//! - software trigger `213 77 mask` (bit k = output channel k+1), no reply;
//! - abort all pulse trains `213 80`; end the session `213 81`.
//!
//! Also the [`PulsePal`] trigger output and its `[[outputs]] kind =
//! "pulse-pal"` config section; the emulator is in `emulator.rs`.

pub mod emulator;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{DeviceError, TriggerCommand, TriggerOutput};
use crate::config::pipeline::{check_range, invalid, ConfigError};

pub const OP_MENU: u8 = 213;
pub const OP_HANDSHAKE: u8 = 72;
pub const HANDSHAKE_REPLY: u8 = 75;
pub const OP_PROGRAM_PARAM: u8 = 74;
pub const OP_TRIGGER: u8 = 77;
pub const OP_ABORT: u8 = 80;
/// The timer of Pulse Pal v2: time parameters are counts of 50 µs.
pub const CYCLE_HZ: f64 = 20_000.0;
/// The first firmware version of the v2 hardware (16-bit DAC).
pub const FIRST_V2_FIRMWARE: u32 = 20;

/// Output-channel parameter codes (op 74).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Param {
    IsBiphasic = 1,
    Phase1Voltage = 2,
    Phase1Duration = 4,
    InterPulseInterval = 7,
    PulseTrainDuration = 10,
    PulseTrainDelay = 11,
    RestingVoltage = 17,
}

impl Param {
    /// Bytes of the value on the wire (v2 firmware).
    pub fn value_len(code: u8) -> Option<usize> {
        match code {
            2 | 3 | 17 => Some(2),
            4..=11 => Some(4),
            1 | 12..=16 | 128 => Some(1),
            _ => None,
        }
    }
}

/// A voltage in [−10, 10] V as the v2's 16-bit DAC code.
pub fn volts_to_code(volts: f64) -> u16 {
    (((volts.clamp(-10.0, 10.0) + 10.0) / 20.0) * 65535.0).ceil() as u16
}

/// A duration as counts of the 20 kHz cycle (at least one).
pub fn seconds_to_cycles(seconds: f64) -> u32 {
    (seconds * CYCLE_HZ).round().clamp(1.0, u32::MAX as f64) as u32
}

pub fn program_param(param: Param, channel: u8, value: ParamValue) -> Vec<u8> {
    let mut bytes = vec![OP_MENU, OP_PROGRAM_PARAM, param as u8, channel];
    match value {
        ParamValue::U8(v) => bytes.push(v),
        ParamValue::U16(v) => bytes.extend_from_slice(&v.to_le_bytes()),
        ParamValue::U32(v) => bytes.extend_from_slice(&v.to_le_bytes()),
    }
    bytes
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamValue {
    U8(u8),
    U16(u16),
    U32(u32),
}

/// The trigger message for one output channel (1–4).
pub fn trigger_message(channel: u8) -> [u8; 3] {
    [OP_MENU, OP_TRIGGER, 1 << (channel - 1)]
}

fn io_err(e: std::io::Error) -> DeviceError {
    DeviceError::Disconnected {
        device: "pulse-pal",
        message: e.to_string(),
    }
}

fn read_exact_within<P: Read + ?Sized>(
    port: &mut P,
    buf: &mut [u8],
    timeout: Duration,
    what: &str,
) -> Result<(), DeviceError> {
    let deadline = Instant::now() + timeout;
    let mut got = 0;
    while got < buf.len() {
        if Instant::now() > deadline {
            return Err(DeviceError::Protocol {
                device: "pulse-pal",
                message: format!("no {what} within {} ms", timeout.as_millis()),
            });
        }
        match port.read(&mut buf[got..]) {
            Ok(0) => return Err(io_err(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(())
}

/// Ask for the handshake; returns the firmware version. Also how a running
/// session checks that the device is still there.
pub fn handshake<P: Read + Write + ?Sized>(
    port: &mut P,
    timeout: Duration,
) -> Result<u32, DeviceError> {
    port.write_all(&[OP_MENU, OP_HANDSHAKE]).map_err(io_err)?;
    let mut reply = [0u8; 5];
    read_exact_within(port, &mut reply, timeout, "handshake reply")?;
    if reply[0] != HANDSHAKE_REPLY {
        return Err(DeviceError::Protocol {
            device: "pulse-pal",
            message: format!(
                "handshake returned {}, expected {HANDSHAKE_REPLY}",
                reply[0]
            ),
        });
    }
    Ok(u32::from_le_bytes([reply[1], reply[2], reply[3], reply[4]]))
}

/// Handshake and set `channel` up for one monophasic pulse of `pulse_s` at
/// `volts` per trigger. Returns the firmware version.
pub fn connect<P: Read + Write + ?Sized>(
    port: &mut P,
    channel: u8,
    volts: f64,
    pulse_s: f64,
) -> Result<u32, DeviceError> {
    let timeout = Duration::from_millis(1000);
    let firmware = handshake(port, timeout)?;
    if firmware < FIRST_V2_FIRMWARE {
        return Err(DeviceError::Protocol {
            device: "pulse-pal",
            message: format!(
                "firmware {firmware} is a Pulse Pal v1; only v2 (firmware ≥ 20) is supported"
            ),
        });
    }
    let pulse = seconds_to_cycles(pulse_s);
    let setup = [
        (Param::IsBiphasic, ParamValue::U8(0)),
        (Param::Phase1Voltage, ParamValue::U16(volts_to_code(volts))),
        (Param::RestingVoltage, ParamValue::U16(volts_to_code(0.0))),
        (Param::Phase1Duration, ParamValue::U32(pulse)),
        // One pulse per trigger: the train lasts exactly one pulse.
        (Param::InterPulseInterval, ParamValue::U32(pulse)),
        (Param::PulseTrainDuration, ParamValue::U32(pulse)),
        (Param::PulseTrainDelay, ParamValue::U32(1)),
    ];
    for (param, value) in setup {
        port.write_all(&program_param(param, channel, value))
            .map_err(io_err)?;
        let mut ack = [0u8; 1];
        read_exact_within(port, &mut ack, timeout, "parameter acknowledgement")?;
    }
    Ok(firmware)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PulsePalConfig {
    pub port: String,
    /// Output channel 1–4.
    #[serde(default = "default_channel")]
    pub channel: u8,
    /// Pulse amplitude, −10 to 10 V.
    #[serde(default = "default_volts")]
    pub volts: f64,
    /// A trigger write that does not complete within this is a sink fault.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: f64,
    /// How often an idle Pulse Pal is asked for its handshake, so a lost or
    /// hung device ends the session before the next stim is due (0: never; a
    /// closed port is then noticed at the next trigger). A stim decided during
    /// a check waits for its round trip (about 1 ms over USB).
    #[serde(default = "default_check_period_ms")]
    pub check_period_ms: f64,
}

fn default_channel() -> u8 {
    1
}
fn default_volts() -> f64 {
    5.0
}
fn default_write_timeout_ms() -> f64 {
    50.0
}
fn default_check_period_ms() -> f64 {
    1000.0
}

impl PulsePalConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.port.trim().is_empty() {
            return Err(invalid("outputs.port", "must name a serial port".into()));
        }
        check_range("outputs.channel", f64::from(self.channel), 1.0, 4.0)?;
        check_range("outputs.volts", self.volts, -10.0, 10.0)?;
        check_range(
            "outputs.write_timeout_ms",
            self.write_timeout_ms,
            1.0,
            10_000.0,
        )?;
        if self.check_period_ms != 0.0 {
            check_range(
                "outputs.check_period_ms",
                self.check_period_ms,
                100.0,
                60_000.0,
            )?;
        }
        Ok(())
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
    pub fn open(c: &PulsePalConfig, pulse_s: f64) -> Result<Self, DeviceError> {
        let mut port = serialport::new(&c.port, 115_200)
            .timeout(Duration::from_secs_f64(c.write_timeout_ms / 1000.0))
            .open()
            .map_err(|e| DeviceError::Open {
                device: "pulse-pal",
                port: c.port.clone(),
                message: e.to_string(),
            })?;
        connect(&mut port, c.channel, c.volts, pulse_s)?;
        Ok(Self {
            port,
            message: trigger_message(c.channel),
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
        self.port.write_all(&[OP_MENU, OP_ABORT]).map_err(sink_err)
    }
    fn check(&mut self) -> Result<(), DeviceError> {
        let Some(period) = self.check_period else {
            return Ok(());
        };
        if self.last_check.elapsed() < period {
            return Ok(());
        }
        self.last_check = Instant::now();
        handshake(&mut self.port, HANDSHAKE_TIMEOUT)
            .map(|_| ())
            .map_err(|e| DeviceError::Disconnected {
                device: "pulse-pal",
                message: format!("no longer answers its handshake ({e})"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_vectors_match_the_published_client() {
        // PulsePal.py: triggerOutputChannels(1,0,1,0) writes 213 77 5.
        assert_eq!(trigger_message(1), [213, 77, 1]);
        assert_eq!(trigger_message(3), [213, 77, 4]);
        // ceil(((5 + 10) / 20) * 65535) = 49152; 0 V = 32768 (ceil of 32767.5).
        assert_eq!(volts_to_code(5.0), 49152);
        assert_eq!(volts_to_code(0.0), 32768);
        assert_eq!(volts_to_code(-10.0), 0);
        assert_eq!(volts_to_code(10.0), 65535);
        // 1 ms = 20 cycles, little-endian u32 after code and channel.
        assert_eq!(
            program_param(
                Param::Phase1Duration,
                2,
                ParamValue::U32(seconds_to_cycles(0.001))
            ),
            vec![213, 74, 4, 2, 20, 0, 0, 0]
        );
        assert_eq!(
            program_param(Param::Phase1Voltage, 1, ParamValue::U16(49152)),
            vec![213, 74, 2, 1, 0x00, 0xC0]
        );
        assert_eq!(Param::value_len(4), Some(4));
        assert_eq!(Param::value_len(17), Some(2));
        assert_eq!(Param::value_len(99), None);
    }
}
