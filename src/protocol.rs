//! The host ⇄ trigger-box wire format (`docs/protocol.md`). This file defines
//! it; the firmware (`firmware/src/tb_proto.c`) implements the same layout and
//! its host tests read the vectors [`test_vectors`] writes to
//! `firmware/test/vectors/frames.tsv`, so both sides agree byte for byte.
//!
//! A frame on the wire is `COBS(payload) 0x00`, payload = `seq u8, type u8,
//! body, CRC-16/CCITT-FALSE of seq..body (little-endian)`. Every multi-byte
//! field is little-endian; times are microseconds of the box's 32-bit clock.

use std::fmt::Write as _;

pub const PROTOCOL_VERSION: u8 = 1;
/// Largest decoded payload (seq, type, body, CRC).
pub const MAX_PAYLOAD: usize = 32;
/// Largest COBS encoding of a payload (without the delimiter).
pub const MAX_ENCODED: usize = MAX_PAYLOAD + 1;
/// Body of a SYNC request: as long as the reply's, so that both directions
/// spend the same time on the wire.
pub const SYNC_PAD: usize = 10;

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// COBS-encode `data` (shorter than 254 bytes) and append it to `out`.
pub fn cobs_encode(data: &[u8], out: &mut Vec<u8>) {
    let mut code_at = out.len();
    out.push(0);
    let mut code = 1u8;
    for &b in data {
        if b == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(b);
            code += 1;
        }
    }
    out[code_at] = code;
}

/// Decode a COBS block (no delimiter) into `out`; `None` if it is malformed.
pub fn cobs_decode(data: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let mut i = 0;
    while i < data.len() {
        let code = data[i] as usize;
        if code == 0 || i + code > data.len() {
            return None;
        }
        out.extend_from_slice(&data[i + 1..i + code]);
        i += code;
        if code < 0xFF && i < data.len() {
            out.push(0);
        }
    }
    Some(())
}

/// Wire bytes of one frame, delimiter included.
pub fn encode_frame(seq: u8, msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(body.len() + 4);
    payload.push(seq);
    payload.push(msg_type);
    payload.extend_from_slice(body);
    payload.extend_from_slice(&crc16(&payload).to_le_bytes());
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let mut wire = Vec::with_capacity(payload.len() + 2);
    cobs_encode(&payload, &mut wire);
    wire.push(0);
    wire
}

/// Why a frame was rejected (counted on both sides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameError {
    /// The CRC does not match.
    Crc,
    /// Not valid COBS.
    Framing,
    /// Shorter than seq, type and CRC.
    Truncated,
    /// More than [`MAX_ENCODED`] bytes before the delimiter.
    Oversized,
}

impl FrameError {
    /// The firmware's error code for it (reported in ERROR frames).
    pub fn code(self) -> u8 {
        match self {
            FrameError::Crc => 20,
            FrameError::Framing => 21,
            FrameError::Truncated => 22,
            FrameError::Oversized => 23,
        }
    }
}

/// A checked frame: its sequence number, type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub seq: u8,
    pub msg_type: u8,
    pub body: Vec<u8>,
}

/// Bytes in, frames out: the host side of the framing, with counters.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    decoded: Vec<u8>,
    overflow: bool,
    pub counts: FrameCounts,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FrameCounts {
    pub frames: u64,
    pub crc: u64,
    pub framing: u64,
    pub truncated: u64,
    pub oversized: u64,
}

impl FrameReader {
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(MAX_ENCODED),
            decoded: Vec::with_capacity(MAX_ENCODED),
            ..Self::default()
        }
    }

    /// Feed one byte; a delimiter completes a frame (or a counted error).
    pub fn push(&mut self, byte: u8) -> Option<Result<Frame, FrameError>> {
        if byte != 0 {
            if self.buf.len() < MAX_ENCODED {
                self.buf.push(byte);
            } else {
                self.overflow = true;
            }
            return None;
        }
        let overflow = std::mem::take(&mut self.overflow);
        if self.buf.is_empty() && !overflow {
            return None;
        }
        let result = self.check(overflow);
        self.buf.clear();
        match &result {
            Ok(_) => self.counts.frames += 1,
            Err(FrameError::Crc) => self.counts.crc += 1,
            Err(FrameError::Framing) => self.counts.framing += 1,
            Err(FrameError::Truncated) => self.counts.truncated += 1,
            Err(FrameError::Oversized) => self.counts.oversized += 1,
        }
        Some(result)
    }

    fn check(&mut self, overflow: bool) -> Result<Frame, FrameError> {
        if overflow {
            return Err(FrameError::Oversized);
        }
        cobs_decode(&self.buf, &mut self.decoded).ok_or(FrameError::Framing)?;
        let d = &self.decoded;
        if d.len() < 4 {
            return Err(FrameError::Truncated);
        }
        let (payload, crc) = d.split_at(d.len() - 2);
        if crc16(payload) != u16::from_le_bytes([crc[0], crc[1]]) {
            return Err(FrameError::Crc);
        }
        Ok(Frame {
            seq: payload[0],
            msg_type: payload[1],
            body: payload[2..].to_vec(),
        })
    }
}

/// Message types.
pub mod msg {
    pub const HELLO: u8 = 0x01;
    pub const SYNC: u8 = 0x02;
    pub const CONFIGURE: u8 = 0x03;
    pub const ARM: u8 = 0x04;
    pub const DISARM: u8 = 0x05;
    pub const SCHEDULE: u8 = 0x06;
    pub const CANCEL: u8 = 0x07;
    pub const STATUS: u8 = 0x08;
    pub const HEARTBEAT: u8 = 0x09;
    pub const RESULT: u8 = 0x80;
    pub const HELLO_REPLY: u8 = 0x81;
    pub const SYNC_REPLY: u8 = 0x82;
    pub const STATUS_REPLY: u8 = 0x88;
    pub const FIRED: u8 = 0x90;
    pub const DISARMED: u8 = 0x91;
    pub const ERROR: u8 = 0x92;
}

/// Result and error codes of the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(pub u8);

impl Code {
    pub const OK: Code = Code(0);
    pub const NOT_ARMED: Code = Code(3);

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "ok",
            1 => "unknown message type",
            2 => "bad body length",
            3 => "not armed",
            4 => "no such output",
            5 => "pulse width outside the box's limits",
            6 => "interval below the box's minimum",
            7 => "pulse count outside the box's limits",
            8 => "start too late",
            9 => "start too far ahead",
            10 => "queue full",
            11 => "overlaps the previous train on this output",
            12 => "value out of range",
            20 => "frame CRC error",
            21 => "frame encoding error",
            22 => "truncated frame",
            23 => "oversized frame",
            30 => "pulse skipped: minimum interval",
            31 => "pulse skipped: rate limit",
            _ => "unknown code",
        }
    }
}

/// A pulse train: `count` pulses of `width_us`, starting `interval_us` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Output 1–4.
    pub output: u8,
    /// Fire as soon as possible (`start_us` ignored).
    pub immediate: bool,
    /// The host's id for the train, echoed in FIRED reports.
    pub tag: u16,
    pub start_us: u32,
    pub width_us: u32,
    pub interval_us: u32,
    pub count: u16,
}

/// Host → box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Hello,
    Sync,
    Configure {
        heartbeat_ms: u16,
    },
    Arm,
    Disarm,
    Schedule(Schedule),
    /// Drop the trains of these outputs (bit k = output k+1).
    Cancel {
        outputs: u8,
    },
    Status,
    Heartbeat,
}

impl Command {
    pub fn msg_type(&self) -> u8 {
        match self {
            Command::Hello => msg::HELLO,
            Command::Sync => msg::SYNC,
            Command::Configure { .. } => msg::CONFIGURE,
            Command::Arm => msg::ARM,
            Command::Disarm => msg::DISARM,
            Command::Schedule(_) => msg::SCHEDULE,
            Command::Cancel { .. } => msg::CANCEL,
            Command::Status => msg::STATUS,
            Command::Heartbeat => msg::HEARTBEAT,
        }
    }

    pub fn body(&self) -> Vec<u8> {
        match *self {
            Command::Hello
            | Command::Arm
            | Command::Disarm
            | Command::Status
            | Command::Heartbeat => Vec::new(),
            Command::Sync => vec![0; SYNC_PAD],
            Command::Configure { heartbeat_ms } => heartbeat_ms.to_le_bytes().to_vec(),
            Command::Cancel { outputs } => vec![outputs],
            Command::Schedule(s) => {
                let mut b = vec![s.output, u8::from(s.immediate)];
                b.extend_from_slice(&s.tag.to_le_bytes());
                b.extend_from_slice(&s.start_us.to_le_bytes());
                b.extend_from_slice(&s.width_us.to_le_bytes());
                b.extend_from_slice(&s.interval_us.to_le_bytes());
                b.extend_from_slice(&s.count.to_le_bytes());
                b
            }
        }
    }

    pub fn encode(&self, seq: u8) -> Vec<u8> {
        encode_frame(seq, self.msg_type(), &self.body())
    }
}

/// What the box says in its HELLO reply: versions and compile-time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Hello {
    pub re: u8,
    pub protocol: u8,
    pub firmware: (u8, u8),
    pub outputs: u8,
    /// The AVR's MCUSR at boot: 1 power-on, 2 external, 4 brown-out, 8 watchdog.
    pub reset_cause: u8,
    pub min_width_us: u16,
    pub max_width_us: u32,
    pub min_interval_us: u32,
    pub min_gap_us: u16,
    pub max_rate_hz: u16,
    pub rate_burst: u16,
    pub heartbeat_ms: u16,
}

/// Counters of the box (STATUS reply), in this order on the wire.
pub const STATUS_COUNTERS: [&str; 10] = [
    "crc",
    "framing",
    "truncated",
    "oversized",
    "unknown",
    "bad_length",
    "seq_gaps",
    "refused",
    "skipped",
    "reports_dropped",
];

/// Box → host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Result {
        re: u8,
        code: Code,
        detail: u32,
    },
    Hello(Hello),
    /// `rx_us`: when the request's delimiter arrived; `prev_tx_us`: when the
    /// first byte of the reply to SYNC `prev_re` left (two-step sync; no
    /// earlier reply when `prev_re == re`).
    Sync {
        re: u8,
        rx_us: u32,
        prev_re: u8,
        prev_tx_us: u32,
    },
    Status {
        re: u8,
        armed: bool,
        now_us: u32,
        pending: u8,
        counters: [u16; 10],
    },
    Fired {
        output: u8,
        tag: u16,
        index: u16,
        planned_us: u32,
        fired_us: u32,
    },
    /// The box disarmed itself (reason 2: no heartbeat).
    Disarmed {
        reason: u8,
        at_us: u32,
        last_rx_us: u32,
    },
    /// A pulse skipped by a limit (output, tag, detail = pulse index) or a
    /// burst of bad frames (output 0, tag = how many).
    Error {
        code: Code,
        output: u8,
        tag: u16,
        detail: u32,
    },
}

/// The body length of a reply type, or `None` if the type is not a reply.
fn reply_len(msg_type: u8) -> Option<usize> {
    Some(match msg_type {
        msg::RESULT => 6,
        msg::HELLO_REPLY => 24,
        msg::SYNC_REPLY => 10,
        msg::STATUS_REPLY => 27,
        msg::FIRED => 13,
        msg::DISARMED => 9,
        msg::ERROR => 8,
        _ => return None,
    })
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

impl Reply {
    pub fn decode(frame: &Frame) -> Result<Reply, String> {
        let b = &frame.body;
        let expected = reply_len(frame.msg_type)
            .ok_or_else(|| format!("unknown reply type {:#04x}", frame.msg_type))?;
        if b.len() != expected {
            return Err(format!(
                "reply type {:#04x} has {} body bytes, expected {expected}",
                frame.msg_type,
                b.len()
            ));
        }
        Ok(match frame.msg_type {
            msg::RESULT => Reply::Result {
                re: b[0],
                code: Code(b[1]),
                detail: u32_at(b, 2),
            },
            msg::HELLO_REPLY => Reply::Hello(Hello {
                re: b[0],
                protocol: b[1],
                firmware: (b[2], b[3]),
                outputs: b[4],
                reset_cause: b[5],
                min_width_us: u16_at(b, 6),
                max_width_us: u32_at(b, 8),
                min_interval_us: u32_at(b, 12),
                min_gap_us: u16_at(b, 16),
                max_rate_hz: u16_at(b, 18),
                rate_burst: u16_at(b, 20),
                heartbeat_ms: u16_at(b, 22),
            }),
            msg::SYNC_REPLY => Reply::Sync {
                re: b[0],
                rx_us: u32_at(b, 1),
                prev_re: b[5],
                prev_tx_us: u32_at(b, 6),
            },
            msg::STATUS_REPLY => {
                let mut counters = [0u16; 10];
                for (k, c) in counters.iter_mut().enumerate() {
                    *c = u16_at(b, 7 + 2 * k);
                }
                Reply::Status {
                    re: b[0],
                    armed: b[1] != 0,
                    now_us: u32_at(b, 2),
                    pending: b[6],
                    counters,
                }
            }
            msg::FIRED => Reply::Fired {
                output: b[0],
                tag: u16_at(b, 1),
                index: u16_at(b, 3),
                planned_us: u32_at(b, 5),
                fired_us: u32_at(b, 9),
            },
            msg::DISARMED => Reply::Disarmed {
                reason: b[0],
                at_us: u32_at(b, 1),
                last_rx_us: u32_at(b, 5),
            },
            _ => Reply::Error {
                code: Code(b[0]),
                output: b[1],
                tag: u16_at(b, 2),
                detail: u32_at(b, 4),
            },
        })
    }

    /// The reply's type and body (the box's side; for the test vectors).
    pub fn encode_body(&self) -> (u8, Vec<u8>) {
        let mut b = Vec::new();
        let t = match *self {
            Reply::Result { re, code, detail } => {
                b.extend_from_slice(&[re, code.0]);
                b.extend_from_slice(&detail.to_le_bytes());
                msg::RESULT
            }
            Reply::Hello(h) => {
                b.extend_from_slice(&[
                    h.re,
                    h.protocol,
                    h.firmware.0,
                    h.firmware.1,
                    h.outputs,
                    h.reset_cause,
                ]);
                b.extend_from_slice(&h.min_width_us.to_le_bytes());
                b.extend_from_slice(&h.max_width_us.to_le_bytes());
                b.extend_from_slice(&h.min_interval_us.to_le_bytes());
                b.extend_from_slice(&h.min_gap_us.to_le_bytes());
                b.extend_from_slice(&h.max_rate_hz.to_le_bytes());
                b.extend_from_slice(&h.rate_burst.to_le_bytes());
                b.extend_from_slice(&h.heartbeat_ms.to_le_bytes());
                msg::HELLO_REPLY
            }
            Reply::Sync {
                re,
                rx_us,
                prev_re,
                prev_tx_us,
            } => {
                b.push(re);
                b.extend_from_slice(&rx_us.to_le_bytes());
                b.push(prev_re);
                b.extend_from_slice(&prev_tx_us.to_le_bytes());
                msg::SYNC_REPLY
            }
            Reply::Status {
                re,
                armed,
                now_us,
                pending,
                counters,
            } => {
                b.extend_from_slice(&[re, u8::from(armed)]);
                b.extend_from_slice(&now_us.to_le_bytes());
                b.push(pending);
                for c in counters {
                    b.extend_from_slice(&c.to_le_bytes());
                }
                msg::STATUS_REPLY
            }
            Reply::Fired {
                output,
                tag,
                index,
                planned_us,
                fired_us,
            } => {
                b.push(output);
                b.extend_from_slice(&tag.to_le_bytes());
                b.extend_from_slice(&index.to_le_bytes());
                b.extend_from_slice(&planned_us.to_le_bytes());
                b.extend_from_slice(&fired_us.to_le_bytes());
                msg::FIRED
            }
            Reply::Disarmed {
                reason,
                at_us,
                last_rx_us,
            } => {
                b.push(reason);
                b.extend_from_slice(&at_us.to_le_bytes());
                b.extend_from_slice(&last_rx_us.to_le_bytes());
                msg::DISARMED
            }
            Reply::Error {
                code,
                output,
                tag,
                detail,
            } => {
                b.extend_from_slice(&[code.0, output]);
                b.extend_from_slice(&tag.to_le_bytes());
                b.extend_from_slice(&detail.to_le_bytes());
                msg::ERROR
            }
        };
        (t, b)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The vectors of `firmware/test/vectors/frames.tsv`, one per line:
/// `kind <TAB> wire bytes in hex <TAB> fields`. Kinds: `command` (the
/// firmware decodes the frame and compares the fields), `reply` (it encodes
/// the fields and compares the bytes), `reject` (it must refuse the bytes
/// with the given error code). The firmware's test (`make test`) reads them;
/// `tests/trigger_box.rs` checks the committed file is this.
pub fn test_vectors() -> String {
    let mut out = String::from(
        "# Written by neuroloop::protocol::test_vectors (src/protocol.rs); do not edit.\n\
         # Regenerate: NEUROLOOP_UPDATE_VECTORS=1 cargo test --release --test trigger_box vectors\n",
    );
    let schedule = Schedule {
        output: 2,
        immediate: false,
        tag: 0x0201,
        start_us: 0x8765_4321,
        width_us: 1000,
        interval_us: 0,
        count: 1,
    };
    let commands: Vec<(u8, Command, String)> = vec![
        (0, Command::Hello, String::new()),
        (1, Command::Sync, String::new()),
        (
            2,
            Command::Configure { heartbeat_ms: 250 },
            "heartbeat_ms=250".into(),
        ),
        (3, Command::Arm, String::new()),
        (4, Command::Disarm, String::new()),
        (5, Command::Schedule(schedule), sched_fields(&schedule)),
        (
            6,
            Command::Schedule(Schedule {
                output: 4,
                immediate: true,
                tag: 0,
                start_us: 0,
                width_us: 50,
                interval_us: 25_000,
                count: 40,
            }),
            String::new(),
        ),
        (
            0xFF,
            Command::Schedule(Schedule {
                output: 1,
                immediate: false,
                tag: 0xFFFF,
                start_us: 0x0000_0100,
                width_us: 0x0001_0000,
                interval_us: 0x00FF_0000,
                count: 0x0100,
            }),
            String::new(),
        ),
        (7, Command::Cancel { outputs: 0b1010 }, "outputs=10".into()),
        (8, Command::Status, String::new()),
        (9, Command::Heartbeat, String::new()),
    ];
    for (seq, cmd, fields) in commands {
        let fields = match cmd {
            Command::Schedule(s) => sched_fields(&s),
            _ => fields,
        };
        let _ = writeln!(
            out,
            "command\t{}\tseq={seq} type={}{}{fields}",
            hex(&cmd.encode(seq)),
            cmd.msg_type(),
            if fields.is_empty() { "" } else { " " },
        );
    }
    let replies = [
        (
            0,
            Reply::Result {
                re: 5,
                code: Code(11),
                detail: 0x0102_0304,
            },
        ),
        (
            1,
            Reply::Hello(Hello {
                re: 0,
                protocol: PROTOCOL_VERSION,
                firmware: (1, 2),
                outputs: 4,
                reset_cause: 8,
                min_width_us: 50,
                max_width_us: 100_000,
                min_interval_us: 1000,
                min_gap_us: 50,
                max_rate_hz: 200,
                rate_burst: 50,
                heartbeat_ms: 500,
            }),
        ),
        (
            2,
            Reply::Sync {
                re: 1,
                rx_us: 0xDEAD_BEEF,
                prev_re: 0,
                prev_tx_us: 0x0000_0001,
            },
        ),
        (
            3,
            Reply::Status {
                re: 8,
                armed: true,
                now_us: 123_456_789,
                pending: 3,
                counters: [1, 2, 3, 4, 5, 6, 7, 8, 9, 0xFFFF],
            },
        ),
        (
            4,
            Reply::Fired {
                output: 3,
                tag: 0x1234,
                index: 7,
                planned_us: 0xFFFF_FFF0,
                fired_us: 0x0000_0010,
            },
        ),
        (
            0xFE,
            Reply::Disarmed {
                reason: 2,
                at_us: 2_000_000,
                last_rx_us: 1_500_000,
            },
        ),
        (
            0xFF,
            Reply::Error {
                code: Code(31),
                output: 1,
                tag: 0x00FF,
                detail: 3,
            },
        ),
    ];
    for (seq, reply) in replies {
        let (t, body) = reply.encode_body();
        let _ = writeln!(
            out,
            "reply\t{}\tseq={seq} type={t} {}",
            hex(&encode_frame(seq, t, &body)),
            reply_fields(&reply)
        );
    }
    // Frames the box must refuse, and the error each must count.
    let good = Command::Heartbeat.encode(9);
    let mut bad_crc = Command::Arm.encode(3);
    bad_crc[2] ^= 0x40;
    let mut truncated = Vec::new();
    cobs_encode(&[3, msg::ARM, 0], &mut truncated);
    truncated.push(0);
    let oversized = vec![0x01; MAX_ENCODED + 1]
        .into_iter()
        .chain([0])
        .collect::<Vec<_>>();
    let rejects = [
        (bad_crc, FrameError::Crc),
        (vec![0x05, 0x01, 0x02, 0x00], FrameError::Framing),
        (truncated, FrameError::Truncated),
        (
            good[..good.len() - 2].iter().copied().chain([0]).collect(),
            FrameError::Framing,
        ),
        (oversized, FrameError::Oversized),
    ];
    for (bytes, error) in rejects {
        let _ = writeln!(out, "reject\t{}\terror={}", hex(&bytes), error.code());
    }
    out
}

fn sched_fields(s: &Schedule) -> String {
    format!(
        "output={} flags={} tag={} start_us={} width_us={} interval_us={} count={}",
        s.output,
        u8::from(s.immediate),
        s.tag,
        s.start_us,
        s.width_us,
        s.interval_us,
        s.count
    )
}

fn reply_fields(r: &Reply) -> String {
    match *r {
        Reply::Result { re, code, detail } => format!("re={re} code={} detail={detail}", code.0),
        Reply::Hello(h) => format!(
            "re={} proto={} fw_major={} fw_minor={} outputs={} reset_cause={} min_width_us={} \
             max_width_us={} min_interval_us={} min_gap_us={} max_rate_hz={} rate_burst={} heartbeat_ms={}",
            h.re,
            h.protocol,
            h.firmware.0,
            h.firmware.1,
            h.outputs,
            h.reset_cause,
            h.min_width_us,
            h.max_width_us,
            h.min_interval_us,
            h.min_gap_us,
            h.max_rate_hz,
            h.rate_burst,
            h.heartbeat_ms
        ),
        Reply::Sync {
            re,
            rx_us,
            prev_re,
            prev_tx_us,
        } => format!("re={re} rx_us={rx_us} prev_re={prev_re} prev_tx_us={prev_tx_us}"),
        Reply::Status {
            re,
            armed,
            now_us,
            pending,
            counters,
        } => {
            let mut s = format!(
                "re={re} armed={} now_us={now_us} pending={pending}",
                u8::from(armed)
            );
            for (k, c) in counters.iter().enumerate() {
                let _ = write!(s, " c{k}={c}");
            }
            s
        }
        Reply::Fired {
            output,
            tag,
            index,
            planned_us,
            fired_us,
        } => format!(
            "output={output} tag={tag} index={index} planned_us={planned_us} fired_us={fired_us}"
        ),
        Reply::Disarmed {
            reason,
            at_us,
            last_rx_us,
        } => format!("reason={reason} at_us={at_us} last_rx_us={last_rx_us}"),
        Reply::Error {
            code,
            output,
            tag,
            detail,
        } => format!("code={} output={output} tag={tag} detail={detail}", code.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_ccitt_false_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn cobs_round_trips_zeros_and_runs() {
        for data in [
            vec![],
            vec![0],
            vec![0, 0],
            vec![1, 2, 0, 3],
            (1..=31u8).collect(),
            vec![0x11, 0x00, 0x00, 0x22, 0x00],
        ] {
            let mut enc = Vec::new();
            cobs_encode(&data, &mut enc);
            assert!(!enc.contains(&0), "{enc:?}");
            assert_eq!(enc.len(), data.len() + 1);
            let mut dec = Vec::new();
            cobs_decode(&enc, &mut dec).unwrap();
            assert_eq!(dec, data);
        }
        // Hand-checked vectors from the COBS paper's examples.
        let mut enc = Vec::new();
        cobs_encode(&[0x11, 0x22, 0x00, 0x33], &mut enc);
        assert_eq!(enc, [0x03, 0x11, 0x22, 0x02, 0x33]);
    }

    #[test]
    fn every_reply_decodes_to_itself() {
        let mut reader = FrameReader::new();
        for line in test_vectors().lines().filter(|l| l.starts_with("reply")) {
            let hexbytes = line.split('\t').nth(1).unwrap();
            let bytes: Vec<u8> = (0..hexbytes.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hexbytes[i..i + 2], 16).unwrap())
                .collect();
            let frames: Vec<_> = bytes.iter().filter_map(|&b| reader.push(b)).collect();
            assert_eq!(frames.len(), 1);
            let frame = frames[0].clone().unwrap();
            let reply = Reply::decode(&frame).unwrap();
            let (t, body) = reply.encode_body();
            assert_eq!((t, &body), (frame.msg_type, &frame.body));
        }
    }

    #[test]
    fn bad_frames_are_rejected_and_counted() {
        let mut reader = FrameReader::new();
        let mut results = Vec::new();
        for line in test_vectors().lines().filter(|l| l.starts_with("reject")) {
            let hexbytes = line.split('\t').nth(1).unwrap();
            for i in (0..hexbytes.len()).step_by(2) {
                if let Some(r) = reader.push(u8::from_str_radix(&hexbytes[i..i + 2], 16).unwrap()) {
                    results.push(r);
                }
            }
        }
        assert_eq!(
            results,
            [
                Err(FrameError::Crc),
                Err(FrameError::Framing),
                Err(FrameError::Truncated),
                Err(FrameError::Framing),
                Err(FrameError::Oversized)
            ]
        );
        assert_eq!(
            reader.counts,
            FrameCounts {
                frames: 0,
                crc: 1,
                framing: 2,
                truncated: 1,
                oversized: 1
            }
        );
        // A good frame right after the garbage still reads.
        for b in Command::Status.encode(1) {
            if let Some(r) = reader.push(b) {
                assert_eq!(r.unwrap().msg_type, msg::STATUS);
            }
        }
        assert_eq!(reader.counts.frames, 1);
    }

    #[test]
    fn sync_request_and_reply_are_equally_long_on_the_wire() {
        let (t, body) = Reply::Sync {
            re: 0,
            rx_us: 0,
            prev_re: 0,
            prev_tx_us: 0,
        }
        .encode_body();
        assert_eq!(
            encode_frame(0, t, &body).len(),
            Command::Sync.encode(0).len()
        );
    }
}
