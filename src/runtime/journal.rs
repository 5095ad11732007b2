//! The journal thread: the gate between decisions and stimuli. Every event the
//! processing thread emits is written to the session's event log, and handed
//! to the OS, *before* a trigger it carries is released to the outputs; so no
//! stimulus is ever delivered that is not in `events.tsv`. A log that cannot
//! be written (a full disk, a folder gone) is a fault: the journal releases
//! nothing more and tells the supervisor, which disarms the outputs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use ringbuf::traits::{Consumer, Producer};
use ringbuf::{HeapCons, HeapProd};
use tokio::sync::mpsc::UnboundedSender;

use super::control::Notice;
use super::live_view::Tap;
use super::Shared;
use crate::device::lsl::MarkerOutlet;
use crate::device::TriggerCommand;
use crate::event::{Event, TriggerDecision};
use crate::io::session::SessionWriter;
use crate::session::{count, Progress};
use crate::time::{SampleIndex, SampleRate};

/// An event and the host time its deciding sample arrived.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub event: Event,
    pub arrived: Instant,
    /// The newest sample of the block whose arrival `arrived` stamps.
    pub newest: SampleIndex,
}

/// Entries written (and triggers released) per pass at most.
const BATCH: usize = 1024;
/// How long the journal sleeps when nothing is queued; the processing thread
/// wakes it as soon as it queues an event.
const IDLE: Duration = Duration::from_millis(20);

pub(super) struct Journal {
    pub writer: SessionWriter,
    pub entries: HeapCons<Entry>,
    /// One command ring per output, and the thread that drains it.
    pub outputs: Vec<(HeapProd<TriggerCommand>, Thread)>,
    pub rate: SampleRate,
    pub shared: Arc<Shared>,
    pub progress: Arc<Mutex<Progress>>,
    pub notices: UnboundedSender<Notice>,
    pub stop: Arc<AtomicBool>,
    /// Logged events go on to the recorder, as annotations of the recording.
    pub annotations: Option<(HeapProd<Event>, Thread)>,
    /// Logged events go out as LSL markers.
    pub markers: Option<MarkerOutlet>,
    /// Logged events go to the live monitor, with their deciding sample's arrival.
    pub monitor: Option<Tap<(Event, Instant)>>,
}

impl Journal {
    /// Run until `stop` is set and the queue is empty, or the log fails.
    /// Returns the writer, to finish or abandon the session folder.
    pub fn run(mut self) -> SessionWriter {
        let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
        loop {
            let finished = self.stop.load(Ordering::Acquire);
            while batch.len() < BATCH {
                match self.entries.try_pop() {
                    Some(entry) => batch.push(entry),
                    None => break,
                }
            }
            if batch.is_empty() {
                if finished {
                    return self.writer;
                }
                std::thread::park_timeout(IDLE);
                continue;
            }
            let logged = self
                .writer
                .write_events(batch.iter().map(|e| &e.event))
                .and_then(|()| self.writer.flush());
            if let Err(e) = logged {
                let withheld = batch.iter().filter(|e| is_delivered(&e.event)).count();
                self.shared
                    .triggers_withheld
                    .fetch_add(withheld as u64, Ordering::Relaxed);
                let _ = self.notices.send(Notice::Storage(e.to_string()));
                return self.writer;
            }
            for entry in &batch {
                self.release(entry);
            }
            if let Some((ring, recorder)) = &mut self.annotations {
                for entry in &batch {
                    if ring.try_push(entry.event).is_err() {
                        self.shared
                            .annotation_ring_full
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                recorder.unpark();
            }
            if let Some(markers) = &mut self.markers {
                for entry in &batch {
                    markers.send(&entry.event, host_time(entry, self.rate));
                }
            }
            if let Some(monitor) = &mut self.monitor {
                for entry in &batch {
                    monitor.push((entry.event, entry.arrived));
                }
            }
            let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            count(&mut progress, batch.iter().map(|e| &e.event));
            drop(progress);
            batch.clear();
        }
    }

    /// Hand a logged, delivered trigger to every output.
    fn release(&mut self, entry: &Entry) {
        let Event::Trigger(decision) = entry.event else {
            return;
        };
        if !decision.delivered {
            return;
        }
        let command = TriggerCommand {
            decision,
            arrived: entry.arrived,
            due: due(&decision, entry.arrived, self.rate),
        };
        for (ring, thread) in &mut self.outputs {
            if ring.try_push(command).is_err() {
                self.shared
                    .command_ring_full
                    .fetch_add(1, Ordering::Relaxed);
            }
            thread.unpark();
        }
    }
}

/// When a stimulus is due on the host clock: its onset after the arrival of
/// its deciding sample.
fn due(decision: &TriggerDecision, arrived: Instant, rate: SampleRate) -> Instant {
    arrived + Duration::from_secs_f64(rate.seconds(decision.onset - decision.decided_at))
}

/// When an event happened on the host clock: a trigger when it is due (as
/// the outputs schedule it), a detection at its onset, counted back from the
/// arrival of its block's newest sample.
fn host_time(entry: &Entry, rate: SampleRate) -> Instant {
    match &entry.event {
        Event::Trigger(decision) => due(decision, entry.arrived, rate),
        Event::Detection(d) => {
            let back = Duration::from_secs_f64(rate.seconds(entry.newest.saturating_sub(d.onset)));
            entry.arrived.checked_sub(back).unwrap_or(entry.arrived)
        }
    }
}

fn is_delivered(event: &Event) -> bool {
    matches!(event, Event::Trigger(t) if t.delivered)
}
