//! Emulated serial devices on pseudo-terminals (tests and demos without a
//! rig): the pty plumbing the Cyton and Pulse Pal emulators share, and the
//! [`LoopbackWire`] that joins them as a latency-test rig is wired: each
//! trigger the Pulse Pal receives adds a pulse to one channel of the
//! Cyton's next packets.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::termios;

/// A pseudo-terminal pair in raw mode: the emulator owns the master side,
/// the client opens `path` (the slave) as it would a serial port.
pub(crate) struct Pty {
    pub master: File,
    /// Kept open so the master never reads a hang-up before the client opens.
    pub _slave: File,
    pub path: PathBuf,
}

pub(crate) fn open_pty() -> std::io::Result<Pty> {
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
pub(crate) fn send(master: &mut File, mut bytes: &[u8], stop: &AtomicBool) -> std::io::Result<()> {
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
pub(crate) fn read_ready(
    master: &mut File,
    buf: &mut [u8],
    timeout: Duration,
) -> std::io::Result<usize> {
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

/// The emulated Pulse Pal's output wired into an emulated Cyton's input: it
/// counts the triggers received, the Cyton polls the count before each packet.
#[derive(Debug, Clone, Default)]
pub struct LoopbackWire(Arc<AtomicU64>);

impl LoopbackWire {
    pub fn new() -> Self {
        Self::default()
    }

    /// The Pulse Pal side: one more trigger went out.
    pub(crate) fn pulse(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// The Cyton side: triggers sent so far.
    pub(crate) fn pulses(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}
