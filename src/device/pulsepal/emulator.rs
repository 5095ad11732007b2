//! An emulated Pulse Pal v2 on a pseudo-terminal: it answers the handshake,
//! acknowledges parameters and records every trigger it receives with the
//! time it arrived; wired (a [`LoopbackWire`]) into an emulated Cyton, each
//! trigger comes back as a pulse on the Cyton's input.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::device::pty::{open_pty, read_ready, send, LoopbackWire, Pty};
use crate::device::pulsepal;

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
                        w.pulse();
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
