//! The acquisition ring between a source (on the acquisition thread, or in the
//! audio input's capture callback) and the processing thread, with the
//! recorder's tee.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Instant;

use ringbuf::traits::{Observer, Producer};
use ringbuf::HeapProd;

use super::recorder::RecordedChunk;
use crate::device::FrameSink;
use crate::io::recorder::DigitalScale;
use crate::time::SampleIndex;

/// Header of a chunk of frames in the sample ring.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChunkHeader {
    pub start: SampleIndex,
    pub frames: usize,
    pub arrived: Instant,
}

/// The producer side of the acquisition ring: what the source pushes goes to
/// the processing thread and, when the session is recorded, to the recorder,
/// both or neither (a full ring drops the chunk for both, so the recording
/// always holds what was processed).
pub(super) struct RingWriter {
    pub samples: HeapProd<f64>,
    pub headers: HeapProd<ChunkHeader>,
    pub channels: usize,
    pub consumer: Thread,
    pub overrun_frames: Arc<AtomicU64>,
    pub tee: Option<RecordTee>,
}

/// The recorder's side of the acquisition ring. Samples pass through each
/// channel's [`DigitalScale`]: the detectors get `decode(encode(x))` and the
/// recorder the codes, so the file holds exactly what was processed.
pub(super) struct RecordTee {
    pub scales: Vec<DigitalScale>,
    pub codes: HeapProd<i32>,
    pub chunks: HeapProd<RecordedChunk>,
    pub coded: Vec<i32>,
    pub quantized: Vec<f64>,
    pub clipped: Arc<AtomicU64>,
}

impl RingWriter {
    fn has_room(&self, len: usize) -> bool {
        self.samples.vacant_len() >= len
            && !self.headers.is_full()
            && self
                .tee
                .as_ref()
                .map_or(true, |t| t.codes.vacant_len() >= len && !t.chunks.is_full())
    }

    /// Queue one piece; returns the frames dropped (all or none).
    fn push_piece(&mut self, start: SampleIndex, samples: &[f64], arrived: Instant) -> usize {
        let frames = samples.len() / self.channels;
        if !self.has_room(samples.len()) {
            // Processing (or the disk) is behind: drop the chunk; the
            // controller sees the gap and the recording marks it.
            self.overrun_frames
                .fetch_add(frames as u64, Ordering::Relaxed);
            return frames;
        }
        let samples = match &mut self.tee {
            None => samples,
            Some(tee) => {
                let coded = &mut tee.coded[..samples.len()];
                let quantized = &mut tee.quantized[..samples.len()];
                let clipped = DigitalScale::quantize_frames(&tee.scales, samples, coded, quantized);
                if clipped > 0 {
                    tee.clipped.fetch_add(clipped, Ordering::Relaxed);
                }
                tee.codes.push_slice(coded);
                let _ = tee.chunks.try_push(RecordedChunk { start, frames });
                quantized
            }
        };
        self.samples.push_slice(samples);
        let _ = self.headers.try_push(ChunkHeader {
            start,
            frames,
            arrived,
        });
        self.consumer.unpark();
        0
    }
}

impl FrameSink for RingWriter {
    fn push(&mut self, start: SampleIndex, samples: &[f64], arrived: Instant) -> usize {
        // In pieces the tee's buffers hold (a source's chunks fit in one).
        let piece = self
            .tee
            .as_ref()
            .map_or(samples.len(), |t| t.coded.len())
            .max(self.channels);
        let piece = piece - piece % self.channels;
        let mut dropped = 0;
        for (k, part) in samples.chunks(piece).enumerate() {
            let offset = (k * piece / self.channels) as u64;
            dropped += self.push_piece(start + offset, part, arrived);
        }
        dropped
    }
}
