//! An emulated OpenBCI Cyton on a pseudo-terminal: it streams a recording
//! (e.g. the simulator's) as real packets paced at 250 Hz, answers the board
//! commands, and injects the faults a real board shows (garbage bytes,
//! dropped packets, a stall, an unplug). A [`Loopback`] adds the pulses an
//! emulated Pulse Pal sends down its [`LoopbackWire`] to one channel.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::device::cyton::{self as openbci, CHANNELS_PER_BOARD, PACKET_RATE_HZ};
pub use crate::device::pty::LoopbackWire;
use crate::device::pty::{open_pty, read_ready, send, Pty};

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
                let triggers = l.wire.pulses();
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

#[cfg(test)]
mod tests {
    use std::io::Write;

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
