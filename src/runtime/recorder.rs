//! The recorder thread: writes the session's input to `recording.bdf` (see
//! `io::recorder`), never ahead of the processing thread, so the file holds
//! exactly the frames the detectors processed; annotates it with the events
//! the journal logged; pushes it to the disk about once a second. A write
//! that fails is a storage fault, like a failing event log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringbuf::traits::{Consumer, Observer};
use ringbuf::HeapCons;
use tokio::sync::mpsc::UnboundedSender;

use super::control::Notice;
use super::Shared;
use crate::event::Event;
use crate::io::recorder::{RecordingCounters, RecordingWriter};
use crate::time::SampleIndex;

/// Frames of the source, as codes, starting at session sample `start`.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordedChunk {
    pub start: SampleIndex,
    pub frames: usize,
}

/// How often the file is pushed from the OS to the disk.
const SYNC_PERIOD: Duration = Duration::from_secs(1);
/// How long the recorder sleeps when there is nothing to write.
const IDLE: Duration = Duration::from_millis(50);

pub(super) struct Recorder {
    pub writer: RecordingWriter,
    pub chunks: HeapCons<RecordedChunk>,
    pub codes: HeapCons<i32>,
    /// Events the journal logged, for the annotations.
    pub events: HeapCons<Event>,
    pub channels: usize,
    /// Where the processing thread has got to (`frames_done`).
    pub shared: Arc<Shared>,
    /// Set at shutdown: where the recording ends.
    pub end: Arc<AtomicU64>,
    pub stop: Arc<AtomicBool>,
    pub notices: UnboundedSender<Notice>,
}

impl Recorder {
    /// Run until stopped (then finish the file at `end`) or a write fails.
    pub fn run(mut self) -> Result<RecordingCounters, String> {
        let mut scratch = vec![0i32; self.codes.capacity().get()];
        // The chunk being written: its header and the frames written so far.
        let mut current: Option<(RecordedChunk, usize)> = None;
        let mut synced = Instant::now();
        loop {
            let finished = self.stop.load(Ordering::Acquire);
            let limit = if finished {
                self.end.load(Ordering::Acquire)
            } else {
                self.shared.frames_done.load(Ordering::Acquire)
            };
            let result = self.write_up_to(limit, &mut current, &mut scratch);
            if let Err(e) = result.and_then(|()| {
                if synced.elapsed() >= SYNC_PERIOD {
                    synced = Instant::now();
                    self.writer.sync()
                } else {
                    Ok(())
                }
            }) {
                let message = e.to_string();
                let _ = self.notices.send(Notice::Storage(message.clone()));
                return Err(message);
            }
            if finished {
                let end = self.end.load(Ordering::Acquire);
                return self.writer.finish(end).map_err(|e| e.to_string());
            }
            std::thread::park_timeout(IDLE);
        }
    }

    /// Write queued frames before sample `limit`, and queued annotations.
    fn write_up_to(
        &mut self,
        limit: SampleIndex,
        current: &mut Option<(RecordedChunk, usize)>,
        scratch: &mut [i32],
    ) -> Result<(), crate::io::FileError> {
        while let Some(event) = self.events.try_pop() {
            let (onset, duration, text) = match event {
                Event::Detection(d) => (d.onset, d.end - d.onset, d.kind.trial_type()),
                Event::Trigger(t) => (t.onset, t.duration, t.trial_type()),
            };
            self.writer.annotate(onset, Some(duration), text);
        }
        loop {
            if current.is_none() {
                *current = self.chunks.try_pop().map(|c| (c, 0));
            }
            let Some((chunk, done)) = current else {
                return Ok(());
            };
            let next = chunk.start + *done as u64;
            let frames = (chunk.frames - *done).min(limit.saturating_sub(next) as usize);
            if frames == 0 {
                return Ok(());
            }
            let codes = &mut scratch[..frames * self.channels];
            self.codes.pop_slice(codes);
            self.writer.write_frames(next, codes)?;
            *done += frames;
            if *done == chunk.frames {
                *current = None;
            }
        }
    }
}
