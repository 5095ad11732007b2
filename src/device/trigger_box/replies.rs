//! What the box sends back: each reply read from the reader thread and the
//! bookkeeping it gets (clock-sync round trips, RESULTs of schedules, FIRED
//! reports, errors, a box that disarmed itself), whoever waits for it.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;

use super::{disconnected, protocol_err, TriggerBox};
use crate::device::clock_sync::RoundTrip;
use crate::device::DeviceError;
use crate::protocol::{self, Code, Reply};

/// What the reader thread passes on.
pub(super) enum Received {
    Frame(Instant, Result<protocol::Frame, protocol::FrameError>),
    Closed(String),
}

impl TriggerBox {
    /// The next decoded reply from the box, handling sync and reports on
    /// the way; `None` at `until`.
    pub(super) fn next_reply(
        &mut self,
        until: Instant,
    ) -> Result<Option<(Instant, Reply)>, DeviceError> {
        loop {
            let wait = until.saturating_duration_since(Instant::now());
            let received = match self.received.recv_timeout(wait) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(disconnected("the reader thread ended".into()))
                }
            };
            let (at, frame) = match received {
                Received::Closed(message) => return Err(disconnected(message)),
                Received::Frame(at, Err(_)) => {
                    // Counted by the reader; the box's counters say what it saw.
                    self.last_heard = at;
                    continue;
                }
                Received::Frame(at, Ok(f)) => (at, f),
            };
            self.last_heard = at;
            let reply = match Reply::decode(&frame) {
                Ok(r) => r,
                Err(_) => {
                    self.counts.undecodable_replies += 1;
                    continue;
                }
            };
            self.absorb(at, &reply)?;
            return Ok(Some((at, reply)));
        }
    }

    /// Bookkeeping every reply gets, whoever waits for it.
    fn absorb(&mut self, at: Instant, reply: &Reply) -> Result<(), DeviceError> {
        match *reply {
            Reply::Sync {
                re,
                rx_us,
                prev_re,
                prev_tx_us,
            } => {
                let t1 = self.host_us(at);
                if let Some(t0) = self.sync_sent.remove(&re) {
                    let rx = self.unwrap_device(rx_us) as f64;
                    self.sync_replied.insert(re, (t0, rx, t1));
                }
                if prev_re != re {
                    if let Some((t0, rx, t1)) = self.sync_replied.remove(&prev_re) {
                        let tx = self.unwrap_device(prev_tx_us) as f64;
                        let trip = RoundTrip { t0, rx, tx, t1 };
                        if self.armed {
                            self.sync.add(trip);
                        } else {
                            self.sync.add_back_to_back(trip);
                        }
                    }
                }
                // Forget exchanges that can no longer complete.
                if self.sync_replied.len() > 4 {
                    let newest = re;
                    self.sync_replied.retain(|&k, _| k == newest);
                }
            }
            Reply::Result { re, code, detail } => {
                if code == Code::NOT_ARMED && self.armed {
                    return Err(protocol_err(format!(
                        "{}: the box refused a command: not armed (it reset or disarmed itself; \
                         `neuroloop devices` shows its last reset cause)",
                        self.port_name
                    )));
                }
                if let Some(Some(tag)) = self.awaiting.remove(&re) {
                    let start = (code == Code::OK).then(|| self.unwrap_device(detail));
                    if code != Code::OK {
                        *self
                            .counts
                            .refused
                            .entry(code.name().to_string())
                            .or_default() += 1;
                    }
                    if let Some(d) = self.deliveries.iter_mut().rev().find(|d| d.tag == tag) {
                        d.start_us = start;
                        d.refused = (code != Code::OK).then_some(code);
                    }
                }
            }
            Reply::Fired {
                tag,
                index,
                planned_us,
                fired_us,
                ..
            } => {
                let planned = self.unwrap_device(planned_us);
                let fired = self.unwrap_device(fired_us);
                self.counts.fired += 1;
                if fired > planned + 100 {
                    self.counts.late_over_100us += 1;
                }
                match self.deliveries.iter_mut().rev().find(|d| d.tag == tag) {
                    Some(d) => {
                        if index == 0 {
                            d.time.planned_us = planned;
                            d.time.fired_us = Some(fired);
                        }
                        d.pulses_fired += 1;
                        d.late_max_us = d.late_max_us.max(fired as i64 - planned as i64);
                    }
                    None => self.counts.unmatched_reports += 1,
                }
            }
            Reply::Error { code, output, .. } => {
                if output == 0 {
                    self.counts.box_frame_errors += 1;
                } else if code.0 >= 30 {
                    self.counts.skipped += 1;
                }
            }
            Reply::Disarmed { reason, .. } => {
                return Err(protocol_err(format!(
                    "the box disarmed itself ({}): no frame from the host for {} ms",
                    if reason == 2 {
                        "heartbeat lost"
                    } else {
                        "host"
                    },
                    self.silence.as_millis()
                )));
            }
            Reply::Status { .. } => self.box_status = Some(*reply),
            Reply::Hello(_) => {}
        }
        Ok(())
    }
}
