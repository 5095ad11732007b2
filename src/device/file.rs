//! A recording served as a live source: blocks of `block` frames paced at
//! `speed` × real time (the simulator's `run`, or a file).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{FrameSink, Opened, Source};
use crate::recording::{Recording, SelectError};
use crate::time::SampleRate;

pub struct RecordingSource {
    frames: Vec<f64>,
    channels: usize,
    rate: SampleRate,
    block: usize,
    speed: f64,
}

impl RecordingSource {
    pub fn run(&self, out: &mut dyn FrameSink, stop: &AtomicBool) {
        let started = Instant::now();
        let total = self.frames.len() / self.channels;
        let mut start = 0;
        while start < total && !stop.load(Ordering::Relaxed) {
            let n = self.block.min(total - start);
            let due = Duration::from_secs_f64(self.rate.seconds((start + n) as u64) / self.speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let samples = &self.frames[start * self.channels..(start + n) * self.channels];
            out.push(start as u64, samples, Instant::now());
            start += n;
        }
    }
}

/// The simulator (or any recording) as a paced source over its signals.
pub fn recording_source(
    recording: &Recording,
    block: usize,
    speed: f64,
    description: String,
) -> Result<Opened, SelectError> {
    let signals = &recording.signals;
    let first = signals.first().ok_or(SelectError::Empty)?;
    let full_scale_uv = signals
        .iter()
        .map(|s| headroom(s.samples.iter().fold(0.0, |m: f64, x| m.max(x.abs()))))
        .collect();
    Ok(Opened {
        full_scale_uv,
        rate: first.rate,
        labels: signals.iter().map(|s| s.label.trim().to_string()).collect(),
        description,
        max_chunk_frames: block,
        source: Source::Recording(RecordingSource {
            frames: recording.interleaved(),
            channels: signals.len(),
            rate: first.rate,
            block,
            speed,
        }),
    })
}

/// A recording range for a signal whose largest magnitude is `peak`: the next
/// 1, 2, 5 × 10^k above it with 25 % to spare.
fn headroom(peak: f64) -> f64 {
    let wanted = (1.25 * peak).max(1.0);
    let decade = 10f64.powf(wanted.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|&r| r >= wanted)
        .unwrap_or(10.0 * decade)
}
