//! The processing thread: pops chunks from the acquisition ring, picks the
//! session's channels, runs `Controller::process_block` and queues every event
//! for the journal (which logs it, then releases its triggers). It allocates
//! nothing after start and never blocks on another thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd};
use tokio::sync::mpsc::UnboundedSender;

use super::control::Notice;
use super::journal::Entry;
use super::latency::LatencyHistogram;
use super::live_view::Tap;
use super::realtime::{self, RealtimeReport};
use super::ring::ChunkHeader;
use super::Shared;
use crate::config::RealtimeConfig;
use crate::controller::{Block, Controller};
use crate::display::DisplayBin;
use crate::event::Outbox;
use crate::session::OUTBOX_CAPACITY;
use crate::time::SampleIndex;

pub(super) struct ProcessingReport {
    pub controller: Controller,
    pub block_processing: LatencyHistogram,
    /// What `[realtime]` got from the system.
    pub realtime: RealtimeReport,
    /// One past the last frame the controller looked at: after a fault, the
    /// faulty frame is included (a replay must meet it too).
    pub end: SampleIndex,
}

pub(super) struct Processing {
    pub controller: Controller,
    pub samples: HeapCons<f64>,
    pub headers: HeapCons<ChunkHeader>,
    /// Source channel of each session channel.
    pub selected: Vec<usize>,
    pub source_channels: usize,
    /// Largest chunk (frames) the source pushes.
    pub max_chunk: usize,
    /// Stop after this sample (the requested duration).
    pub limit: Option<SampleIndex>,
    pub journal: HeapProd<Entry>,
    pub journal_thread: Thread,
    pub shared: Arc<Shared>,
    pub notices: UnboundedSender<Notice>,
    pub stop: Arc<AtomicBool>,
    pub source_done: Arc<AtomicBool>,
    pub realtime: RealtimeConfig,
    /// The controller's display bins, to the live monitor.
    pub display: Option<Tap<DisplayBin>>,
}

impl Processing {
    pub fn run(mut self) -> ProcessingReport {
        let channels = self.selected.len();
        let mut raw = vec![0.0; self.max_chunk * self.source_channels];
        let mut block = vec![0.0; self.max_chunk * channels];
        let mut outbox = Outbox::with_capacity(OUTBOX_CAPACITY);
        // After the buffers exist: `lock_memory` locks them too.
        let realtime = realtime::apply(&self.realtime);
        for refused in &realtime.report.refused {
            let _ = self.notices.send(Notice::Warning(format!(
                "processing thread: {refused} (running without it)"
            )));
        }
        let mut hist = LatencyHistogram::new();
        let mut faulted = false;
        // The last block's arrival and newest sample (for events at the end).
        let mut last_block = (Instant::now(), 0);
        loop {
            let Some(h) = self.headers.try_pop() else {
                if self.stop.load(Ordering::Acquire) {
                    break;
                }
                if self.source_done.load(Ordering::Acquire) && self.headers.is_empty() {
                    let _ = self.notices.send(Notice::SourceEnded);
                    break;
                }
                std::thread::park_timeout(Duration::from_millis(10));
                continue;
            };
            let raw = &mut raw[..h.frames * self.source_channels];
            self.samples.pop_slice(raw);
            if self.limit.is_some_and(|l| h.start >= l) {
                let _ = self.notices.send(Notice::Limit);
                break;
            }
            let mut frames = h.frames;
            if let Some(limit) = self.limit {
                frames = frames.min(limit.saturating_sub(h.start) as usize);
            }
            for (dst, src) in block
                .chunks_exact_mut(channels)
                .zip(raw.chunks_exact(self.source_channels))
                .take(frames)
            {
                for (d, &i) in dst.iter_mut().zip(&self.selected) {
                    *d = src[i];
                }
            }
            outbox.clear();
            let data = Block {
                start: h.start,
                channels,
                samples: &block[..frames * channels],
            };
            let t0 = Instant::now();
            let result = self.controller.process_block(&data, &mut outbox);
            hist.record(t0.elapsed());
            last_block = (h.arrived, h.start + frames.max(1) as u64 - 1);
            self.queue(&outbox, last_block);
            self.show();
            self.shared
                .frames_done
                .store(self.controller.next_sample(), Ordering::Relaxed);
            if let Err(fault) = result {
                let _ = self.notices.send(Notice::Fault(fault));
                faulted = true;
                break;
            }
            if self
                .limit
                .is_some_and(|l| self.controller.next_sample() >= l)
            {
                let _ = self.notices.send(Notice::Limit);
                break;
            }
        }
        if !faulted {
            outbox.clear();
            self.controller.finish(&mut outbox);
            self.queue(&outbox, last_block);
        }
        let end = self.controller.next_sample() + u64::from(faulted);
        ProcessingReport {
            controller: self.controller,
            block_processing: hist,
            realtime: realtime.report.clone(),
            end,
        }
    }

    /// Hand the display bins the block finished to the monitor.
    fn show(&mut self) {
        if let (Some(tap), Some(display)) = (&mut self.display, self.controller.display()) {
            for bin in display.take() {
                tap.push(bin);
            }
            if display.overflow > 0 {
                tap.dropped
                    .fetch_add(std::mem::take(&mut display.overflow), Ordering::Relaxed);
            }
        }
    }

    /// Queue a block's events for the journal and wake it; `block` is when
    /// the block arrived and its newest sample.
    fn queue(&mut self, outbox: &Outbox, (arrived, newest): (Instant, SampleIndex)) {
        if outbox.events().is_empty() {
            return;
        }
        for &event in outbox.events() {
            let entry = Entry {
                event,
                arrived,
                newest,
            };
            if self.journal.try_push(entry).is_err() {
                self.shared.event_ring_full.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.journal_thread.unpark();
    }
}
