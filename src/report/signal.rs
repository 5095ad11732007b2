//! One streaming pass over a recording's first signal: a min/max overview for
//! the timeline, the windows around events for the averages, the gaps (frames
//! the recording lost), and, only when asked (slow-oscillation phase, at EEG
//! rates), the whole signal. An hour at 30 kHz is never held in memory.

use std::path::Path;

use crate::io::{self, FileError, FileOptions, SignalInfo, SignalReader};
use crate::time::SampleRate;

/// Overview bins across the whole recording.
const OVERVIEW_BINS: usize = 2000;
/// Frames read per block.
const BLOCK_FRAMES: usize = 1 << 16;

/// Windows wanted around a set of times: `[t - before_s, t + after_s]`.
pub struct WindowRequest {
    pub centres_s: Vec<f64>,
    pub before_s: f64,
    pub after_s: f64,
}

pub struct SignalPass {
    pub rate: SampleRate,
    pub label: String,
    pub unit: String,
    pub duration_s: f64,
    /// (bin start s, min, max) of every overview bin that holds samples.
    pub overview: Vec<(f64, f64, f64)>,
    /// Per request, the windows cut by the recording's ends or a gap (left out).
    pub incomplete: Vec<usize>,
    /// Gaps as (start s, end s).
    pub gaps: Vec<(f64, f64)>,
    /// The whole signal, if asked for.
    pub whole: Option<Vec<f64>>,
    /// What the reader tolerated (a cut final record, trailing bytes).
    pub notices: Vec<String>,
}

/// A window being filled, its samples allocated only once reading reaches it.
struct Pending {
    request: usize,
    start: u64,
    len: usize,
    samples: Vec<f64>,
    filled: usize,
}

/// The first signal of a recording, opened and not yet read.
pub struct SignalSource {
    reader: Box<dyn SignalReader>,
    signal: SignalInfo,
}

impl SignalSource {
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let mut reader = io::open_reader(path, &FileOptions::default())?;
        let first = *reader
            .selection()
            .first()
            .ok_or_else(|| FileError::BadOption {
                path: path.to_path_buf(),
                problem: "the recording has no signals".into(),
            })?;
        reader.select(&[first])?;
        let signal = reader.info().signals[first].clone();
        Ok(Self { reader, signal })
    }

    pub fn rate(&self) -> SampleRate {
        self.signal.rate
    }

    /// Read the signal once, handing each whole window of `requests` to
    /// `on_window(request index, samples)`; memory holds only the windows
    /// being filled.
    pub fn read(
        mut self,
        requests: &[WindowRequest],
        keep_whole: bool,
        mut on_window: impl FnMut(usize, &[f64]),
    ) -> Result<SignalPass, FileError> {
        let rate = self.signal.rate;
        let bin = (self.signal.samples as usize)
            .div_ceil(OVERVIEW_BINS)
            .max(1) as u64;
        let mut queue: Vec<Pending> = Vec::new();
        let mut incomplete = vec![0usize; requests.len()];
        for (request, r) in requests.iter().enumerate() {
            let (before, after) = (rate.samples_in_s(r.before_s), rate.samples_in_s(r.after_s));
            for &t in &r.centres_s {
                let centre = rate.index_at(t);
                if centre < before {
                    incomplete[request] += 1;
                    continue;
                }
                queue.push(Pending {
                    request,
                    start: centre - before,
                    len: (before + after) as usize,
                    samples: Vec::new(),
                    filled: 0,
                });
            }
        }
        // Popped from the back: earliest first.
        queue.sort_by_key(|p| std::cmp::Reverse(p.start));
        let mut active: Vec<Pending> = Vec::new();
        let mut overview: Vec<(f64, f64, f64)> = Vec::new();
        let mut current_bin: Option<(u64, f64, f64)> = None;
        let mut gaps = Vec::new();
        let mut whole = keep_whole.then(Vec::new);
        let mut expected_start = 0u64;
        let mut buf = vec![0.0; BLOCK_FRAMES];
        while let Some(meta) = self.reader.read_block(&mut buf)? {
            let block = &buf[..meta.frames];
            if meta.start > expected_start {
                gaps.push((rate.seconds(expected_start), rate.seconds(meta.start)));
            }
            let end = meta.start + meta.frames as u64;
            expected_start = end;
            if let Some(whole) = whole.as_mut() {
                whole.extend_from_slice(block);
            }
            let mut i = 0;
            while i < block.len() {
                let index = (meta.start + i as u64) / bin;
                let until = (((index + 1) * bin - meta.start) as usize).min(block.len());
                let (lo, hi) = block[i..until]
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    });
                match current_bin.as_mut() {
                    Some((b, l, h)) if *b == index => {
                        *l = l.min(lo);
                        *h = h.max(hi);
                    }
                    _ => {
                        if let Some((b, l, h)) = current_bin.take() {
                            overview.push((rate.seconds(b * bin), l, h));
                        }
                        current_bin = Some((index, lo, hi));
                    }
                }
                i = until;
            }
            while queue.last().is_some_and(|p| p.start < end) {
                active.extend(queue.pop().map(|mut p| {
                    p.samples = vec![f64::NAN; p.len];
                    p
                }));
            }
            for p in active.iter_mut() {
                let from = p.start.max(meta.start);
                let to = (p.start + p.len as u64).min(end);
                if from < to {
                    let src = &block[(from - meta.start) as usize..(to - meta.start) as usize];
                    p.samples[(from - p.start) as usize..(to - p.start) as usize]
                        .copy_from_slice(src);
                    p.filled += src.len();
                }
            }
            active.retain(|p| {
                if p.start + (p.len as u64) > end {
                    return true;
                }
                if p.filled == p.len {
                    on_window(p.request, &p.samples);
                } else {
                    incomplete[p.request] += 1;
                }
                false
            });
        }
        if let Some((b, lo, hi)) = current_bin {
            overview.push((rate.seconds(b * bin), lo, hi));
        }
        // Windows the recording ended in, or never reached.
        for p in active.iter().chain(&queue) {
            incomplete[p.request] += 1;
        }
        Ok(SignalPass {
            rate,
            label: self.signal.label,
            unit: self.signal.unit,
            duration_s: rate.seconds(expected_start),
            overview,
            incomplete,
            gaps,
            whole,
            notices: self.reader.info().notices.clone(),
        })
    }
}
