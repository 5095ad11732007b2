//! Emulated hardware on pseudo-terminals, for tests and demos without a rig:
//! an OpenBCI Cyton that streams a recording (e.g. the simulator's) as real
//! packets paced at 250 Hz, and a Pulse Pal v2 that answers the handshake,
//! acknowledges parameters and records every trigger it receives with the
//! time it arrived. Both can inject the faults a real device shows (garbage
//! bytes, dropped packets, a stall, an unplug), and a [`LoopbackWire`] can
//! join them as a latency-test rig is wired: each trigger the Pulse Pal
//! receives adds a pulse to one channel of the Cyton's next packets.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::termios;

use crate::io::openbci::{self, CHANNELS_PER_BOARD, PACKET_RATE_HZ};
use crate::io::pulsepal;

/// A pseudo-terminal pair in raw mode: the emulator owns the master side,
/// the client opens `path` (the slave) as it would a serial port.
struct Pty {
    master: File,
    /// Kept open so the master never reads a hang-up before the client opens.
    _slave: File,
    path: PathBuf,
}

fn open_pty() -> std::io::Result<Pty> {
    let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
    // SAFETY: openpty returned two fresh descriptors that nothing else owns.
    let (master, slave) = unsafe { (File::from_raw_fd(pty.master), File::from_raw_fd(pty.slave)) };
    let mut attrs = termios::tcgetattr(slave.as_raw_fd()).map_err(std::io::Error::from)?;
    termios::cfmakeraw(&mut attrs);
    termios::tcsetattr(slave.as_raw_fd(), termios::SetArg::TCSANOW, &attrs)
        .map_err(std::io::Error::from)?;
    let path = nix::unistd::ttyname(slave.as_raw_fd()).map_err(std::io::Error::from)?;
    // Non-blocking master: a client that stops reading must not block the
    // emulator (its writes are then lost, as a real device's would be).
    let flags = nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(Pty {
        master,
        _slave: slave,
        path,
    })
}

/// Write everything to the non-blocking master, waiting while the client's
/// buffer is full (so a slow reader delays packets rather than losing them;
/// losses are injected explicitly by the faults). Gives up when `stop` is set.
fn send(master: &mut File, mut bytes: &[u8], stop: &AtomicBool) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match master.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let mut fds = [PollFd::new(master.as_raw_fd(), PollFlags::POLLOUT)];
                poll(&mut fds, 50).map_err(std::io::Error::from)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Wait up to `timeout` for the master to be readable; read what is there.
fn read_ready(master: &mut File, buf: &mut [u8], timeout: Duration) -> std::io::Result<usize> {
    let mut fds = [PollFd::new(master.as_raw_fd(), PollFlags::POLLIN)];
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    if poll(&mut fds, ms).map_err(std::io::Error::from)? == 0 {
        return Ok(0);
    }
    match master.read(buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
        other => other,
    }
}

/// Faults a Cyton emulator injects, counted in packets sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct CytonFaults {
    /// Write 7 garbage bytes (with a false header) before every Nth packet.
    pub garbage_every: Option<u64>,
    /// Skip (never send) every Nth packet, as a lossy radio link does.
    pub drop_every: Option<u64>,
    /// Stop sending after this many packets, keeping the port open.
    pub stall_after: Option<u64>,
    /// Close the port (unplug) after this many packets.
    pub close_after: Option<u64>,
}

/// The emulated Pulse Pal's output wired into an emulated Cyton's input: it
/// counts the triggers received, the Cyton polls the count before each packet.
#[derive(Debug, Clone, Default)]
pub struct LoopbackWire(Arc<AtomicU64>);

impl LoopbackWire {
    pub fn new() -> Self {
        Self::default()
    }
}

/// What a looped-back trigger looks like on the Cyton's side.
#[derive(Debug, Clone)]
pub struct Loopback {
    pub wire: LoopbackWire,
    /// Channel (0-based, of the 8 or 16) the pulse is added to.
    pub channel: usize,
    pub amplitude_uv: f64,
    /// The pulse lasts this many packets, starting with the first packet
    /// written after the trigger arrived.
    pub packets: u64,
}

pub struct CytonSpec {
    /// Interleaved frames in µV, 8 channels (16 with `daisy`).
    pub frames_uv: Vec<f64>,
    pub daisy: bool,
    /// Pacing relative to real time (1 = 250 packets/s).
    pub speed: f64,
    pub faults: CytonFaults,
}

/// What a Cyton emulator did, for scoring.
#[derive(Debug, Clone, Default)]
pub struct CytonLog {
    pub packets_sent: u64,
    /// When each packet of the signal was about to be written (index = signal packet;
    /// packets skipped by a fault get no entry, so only fault-free logs index cleanly).
    pub sent_at: Vec<Instant>,
    /// Gain per channel as last set by the client.
    pub gains: Vec<u8>,
}

pub struct CytonEmulator {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<CytonLog>>>,
}

impl CytonEmulator {
    pub fn start(spec: CytonSpec) -> std::io::Result<Self> {
        Self::start_looped(spec, None)
    }

    /// A Cyton whose input `loopback` wires to an emulated Pulse Pal's output.
    pub fn start_looped(spec: CytonSpec, loopback: Option<Loopback>) -> std::io::Result<Self> {
        let pty = open_pty()?;
        let path = pty.path.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("emulated-cyton".into())
            .spawn(move || serve_cyton(pty, spec, loopback, &s))?;
        Ok(Self {
            path,
            stop,
            thread: Some(thread),
        })
    }

    /// Stop serving and return the log.
    pub fn finish(mut self) -> std::io::Result<CytonLog> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("joined once");
        thread
            .join()
            .map_err(|_| std::io::Error::other("emulated Cyton thread panicked"))?
    }
}

impl Drop for CytonEmulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reply(master: &mut File, text: &str, stop: &AtomicBool) -> std::io::Result<()> {
    send(master, text.as_bytes(), stop)?;
    send(master, openbci::REPLY_END, stop)
}

fn serve_cyton(
    pty: Pty,
    spec: CytonSpec,
    loopback: Option<Loopback>,
    stop: &AtomicBool,
) -> std::io::Result<CytonLog> {
    let Pty {
        mut master, _slave, ..
    } = pty;
    let channels = openbci::channels(spec.daisy);
    let frames = spec.frames_uv.len() / channels;
    let mut log = CytonLog {
        gains: vec![24; 16],
        ..CytonLog::default()
    };
    let mut daisy = spec.daisy;
    let mut streaming: Option<Instant> = None;
    let mut packet: u64 = 0; // next packet of the signal
    let mut cmd = Vec::with_capacity(9);
    let period = Duration::from_secs_f64(1.0 / (PACKET_RATE_HZ * spec.speed.max(1e-3)));
    let mut buf = [0u8; 256];
    let (mut triggers_seen, mut pulse_packets_left) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let wait = match streaming {
            Some(t0) => (t0 + period * packet as u32).saturating_duration_since(Instant::now()),
            None => Duration::from_millis(20),
        };
        let n = read_ready(&mut master, &mut buf, wait.min(Duration::from_millis(20)))?;
        for &b in &buf[..n] {
            if !cmd.is_empty() || b == b'x' {
                cmd.push(b);
                if cmd.len() == 9 {
                    if let Some((channel, gain)) = openbci::parse_channel_command(&cmd) {
                        log.gains[channel] = gain;
                        reply(
                            &mut master,
                            &format!("Success: Channel set for {}", channel + 1),
                            stop,
                        )?;
                    } else {
                        reply(&mut master, "Failure: too few chars", stop)?;
                    }
                    cmd.clear();
                }
                continue;
            }
            match b {
                openbci::CMD_START => streaming = Some(Instant::now()),
                openbci::CMD_STOP => streaming = None,
                openbci::CMD_DAISY_ON => {
                    daisy = spec.daisy;
                    reply(
                        &mut master,
                        if daisy {
                            "daisy attached16"
                        } else {
                            "no daisy to attach!8"
                        },
                        stop,
                    )?;
                }
                openbci::CMD_DAISY_OFF => {
                    daisy = false;
                    reply(&mut master, "daisy removed8", stop)?;
                }
                b'v' => reply(
                    &mut master,
                    "OpenBCI V3 8-16 channel\nFirmware: v3.1.2 (neuroloop emulator)\n",
                    stop,
                )?,
                _ => {}
            }
        }
        let Some(t0) = streaming else { continue };
        // A client may remove the Daisy (`c`): the board then streams the
        // Cyton's 8 channels, one packet per frame.
        let packets_total = if daisy { 2 * frames } else { frames } as u64;
        // Send every packet now due (several if this thread was late).
        while packet < packets_total && Instant::now() >= t0 + period * packet as u32 {
            let f = spec.faults;
            let k = packet;
            packet += 1;
            if f.close_after.is_some_and(|c| k >= c) {
                return Ok(log); // drops master and slave: the client sees a hang-up
            }
            if f.stall_after.is_some_and(|s| k >= s) {
                continue;
            }
            if f.drop_every.is_some_and(|d| k % d == d - 1) {
                continue;
            }
            if f.garbage_every.is_some_and(|g| k % g == g - 1) {
                send(
                    &mut master,
                    &[0x13, 0xA0, 0x55, 0xC0, 0x00, 0xA0, 0x42],
                    stop,
                )?;
            }
            let (frame, board) = if daisy {
                // Even counter: the Daisy's channels 9–16; odd: the Cyton's 1–8.
                ((k / 2) as usize, if k % 2 == 0 { 1 } else { 0 })
            } else {
                (k as usize, 0)
            };
            let mut pulse = None;
            if let Some(l) = &loopback {
                let triggers = l.wire.0.load(Ordering::Acquire);
                if triggers > triggers_seen {
                    triggers_seen = triggers;
                    pulse_packets_left = l.packets;
                }
                if pulse_packets_left > 0 {
                    pulse_packets_left -= 1;
                    pulse = Some((l.channel, l.amplitude_uv));
                }
            }
            let mut counts = [0i32; CHANNELS_PER_BOARD];
            for (ch, c) in counts.iter_mut().enumerate() {
                let channel = board * CHANNELS_PER_BOARD + ch;
                let mut uv = spec.frames_uv[frame * channels + channel];
                if let Some((_, amplitude_uv)) = pulse.filter(|&(p, _)| p == channel) {
                    uv += amplitude_uv;
                }
                *c = (uv / openbci::uv_per_count(log.gains[channel])).round() as i32;
            }
            // Stamped before the write: no reader can have the packet earlier.
            log.sent_at.push(Instant::now());
            send(&mut master, &openbci::encode_packet(k as u8, &counts), stop)?;
            log.packets_sent += 1;
        }
    }
    Ok(log)
}

/// A trigger the emulated Pulse Pal received.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceivedTrigger {
    pub at: Instant,
    pub mask: u8,
}

#[derive(Debug, Clone, Default)]
pub struct PulsePalLog {
    pub handshakes: u32,
    /// (parameter code, channel, value) in the order programmed.
    pub params: Vec<(u8, u8, u32)>,
    pub triggers: Vec<ReceivedTrigger>,
    pub aborts: u32,
}

pub struct PulsePalEmulator {
    pub path: PathBuf,
    pub log: Arc<Mutex<PulsePalLog>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl PulsePalEmulator {
    pub fn start() -> std::io::Result<Self> {
        Self::start_wired(None)
    }

    /// A Pulse Pal whose output is `wire`d back into an emulated Cyton.
    pub fn start_wired(wire: Option<LoopbackWire>) -> std::io::Result<Self> {
        let pty = open_pty()?;
        let path = pty.path.clone();
        let log = Arc::new(Mutex::new(PulsePalLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("emulated-pulse-pal".into())
            .spawn(move || serve_pulse_pal(pty, wire, &l, &s))?;
        Ok(Self {
            path,
            log,
            stop,
            thread: Some(thread),
        })
    }

    pub fn finish(mut self) -> std::io::Result<PulsePalLog> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("joined once");
        thread
            .join()
            .map_err(|_| std::io::Error::other("emulated Pulse Pal thread panicked"))??;
        let log = self
            .log
            .lock()
            .map_err(|_| std::io::Error::other("log poisoned"))?;
        Ok(log.clone())
    }
}

impl Drop for PulsePalEmulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_pulse_pal(
    pty: Pty,
    wire: Option<LoopbackWire>,
    log: &Mutex<PulsePalLog>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let Pty {
        mut master, _slave, ..
    } = pty;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) {
        let n = read_ready(&mut master, &mut buf, Duration::from_millis(5))?;
        let at = Instant::now();
        pending.extend_from_slice(&buf[..n]);
        // Consume every complete message at the front.
        loop {
            let Some(start) = pending.iter().position(|&b| b == pulsepal::OP_MENU) else {
                pending.clear();
                break;
            };
            pending.drain(..start);
            let Some(&op) = pending.get(1) else { break };
            let used = match op {
                pulsepal::OP_HANDSHAKE => {
                    let mut reply = [pulsepal::HANDSHAKE_REPLY, 0, 0, 0, 0];
                    reply[1..].copy_from_slice(&21u32.to_le_bytes());
                    send(&mut master, &reply, stop)?;
                    lock(log).handshakes += 1;
                    2
                }
                pulsepal::OP_PROGRAM_PARAM => {
                    let Some(&code) = pending.get(2) else { break };
                    match pulsepal::Param::value_len(code) {
                        // Unknown parameter: skip the op bytes and resynchronise on 213.
                        None => 2,
                        Some(len) => {
                            if pending.len() < 4 + len {
                                break;
                            }
                            let mut value = [0u8; 4];
                            value[..len].copy_from_slice(&pending[4..4 + len]);
                            lock(log)
                                .params
                                .push((code, pending[3], u32::from_le_bytes(value)));
                            send(&mut master, &[1], stop)?;
                            4 + len
                        }
                    }
                }
                pulsepal::OP_TRIGGER => {
                    let Some(&mask) = pending.get(2) else { break };
                    lock(log).triggers.push(ReceivedTrigger { at, mask });
                    if let Some(w) = &wire {
                        w.0.fetch_add(1, Ordering::Release);
                    }
                    3
                }
                pulsepal::OP_ABORT => {
                    lock(log).aborts += 1;
                    2
                }
                _ => 2,
            };
            pending.drain(..used);
        }
    }
    Ok(())
}

fn lock(log: &Mutex<PulsePalLog>) -> std::sync::MutexGuard<'_, PulsePalLog> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daisy_emulator_told_to_remove_the_daisy_streams_8_channels() {
        let frames = 10;
        let emulator = CytonEmulator::start(CytonSpec {
            frames_uv: vec![1.0; frames * 16],
            daisy: true,
            speed: 100.0,
            faults: CytonFaults::default(),
        })
        .unwrap();
        let mut client = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&emulator.path)
            .unwrap();
        client
            .write_all(&[openbci::CMD_DAISY_OFF, openbci::CMD_START])
            .unwrap();
        // 10 packets at 25 000 packets/s; the pty buffers them unread.
        std::thread::sleep(Duration::from_millis(300));
        let log = emulator.finish().unwrap();
        assert_eq!(log.packets_sent, frames as u64, "one packet per frame");
    }
}
