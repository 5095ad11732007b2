//! One thread per output device: it takes released trigger commands, waits
//! until they are due (unless the device schedules them itself), fires them
//! while the session is armed, and checks that the device is still there
//! while no command is pending.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringbuf::traits::Consumer;
use ringbuf::HeapCons;
use tokio::sync::mpsc::UnboundedSender;

use super::control::Notice;
use super::latency::LatencyHistogram;
use super::live_view::Tap;
use super::threads::spawn;
use super::{RuntimeError, Shared, TriggerRecord};
use crate::device::{TriggerCommand, TriggerOutput};

pub(super) struct SinkReport {
    pub records: Vec<TriggerRecord>,
    pub arrival_to_command: LatencyHistogram,
    pub device: Option<serde_json::Value>,
}

pub(super) struct Sink {
    pub output: Box<dyn TriggerOutput>,
    pub commands: HeapCons<TriggerCommand>,
    pub armed: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
    pub shared: Arc<Shared>,
    pub notices: UnboundedSender<Notice>,
    /// Most triggers one session can deliver (its cap), for the record list.
    pub capacity: usize,
    /// Each trigger's latency, to the live monitor.
    pub latencies: Option<Tap<Duration>>,
}

impl Sink {
    pub fn spawn(self) -> Result<JoinHandle<SinkReport>, RuntimeError> {
        let name = format!("neuroloop-{}", self.output.name());
        spawn(&name, move || self.run())
    }

    fn run(mut self) -> SinkReport {
        let name = self.output.name();
        let ahead = self.output.schedules_ahead();
        let mut report = SinkReport {
            records: Vec::with_capacity(self.capacity),
            arrival_to_command: LatencyHistogram::new(),
            device: None,
        };
        let check_period = self.output.check_period();
        let mut checked = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let Some(cmd) = self.commands.try_pop() else {
                if checked.elapsed() >= check_period {
                    if let Err(e) = self.output.check() {
                        let _ = self.notices.send(Notice::Device(e));
                        break;
                    }
                    checked = Instant::now();
                }
                std::thread::park_timeout(check_period);
                continue;
            };
            if let Some(wait) = cmd.due.checked_duration_since(Instant::now()) {
                if !ahead {
                    std::thread::sleep(wait);
                }
            }
            if !self.armed.load(Ordering::SeqCst) {
                self.shared
                    .suppressed_disarmed
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if let Err(e) = self.output.fire(&cmd) {
                let _ = self.notices.send(Notice::Device(e));
                break;
            }
            let written = Instant::now();
            let latency = written.duration_since(cmd.arrived);
            report.arrival_to_command.record(latency);
            if let Some(tap) = &mut self.latencies {
                tap.push(latency);
            }
            if report.records.len() < self.capacity {
                report.records.push(TriggerRecord {
                    sink: name,
                    decided_at: cmd.decision.decided_at,
                    onset: cmd.decision.onset,
                    arrived: cmd.arrived,
                    written,
                    device: None,
                });
            }
        }
        // Best effort: the device may be the thing that failed.
        let _ = self.output.disarm();
        report.device = self.output.report();
        for (r, t) in report.records.iter_mut().zip(self.output.device_times()) {
            debug_assert_eq!(r.onset, t.onset);
            r.device = Some(t);
        }
        report
    }
}
