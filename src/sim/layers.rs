//! The simulated signal as a stack of layers over the background, rendered
//! block by block.
//!
//! A preset schedules its whole recording first (every random draw of the
//! schedule in a fixed order) and records each rhythm, event and artifact as a
//! [`Layer`]: a span of samples and what it does to them. [`LayerRenderer`]
//! then renders any block by applying, in the order they were scheduled, the
//! layers that overlap it. Every sample thus goes through the same
//! floating-point operations in the same order whatever the block size, so the
//! output is bit-identical to rendering the whole recording at once; a layer
//! with state (a phase, phasors, a noise filter) keeps it between blocks.

use std::ops::Range;

use crate::time::SampleRate;

/// A function of time (s), called once per sample of its span in time order
/// (so it may carry state).
pub type Shape = Box<dyn FnMut(f64) -> f64 + Send>;

/// What a layer does to the samples of its span.
enum Operation {
    /// `channel[c] += gains[c] × shape(t)`.
    Add { gains: Vec<f64>, shape: Shape },
    /// Every channel `×= factor(t)`.
    Scale(Shape),
    /// Every channel `= value` (a rail).
    Set(f64),
}

struct Layer {
    span: Range<usize>,
    operation: Operation,
}

/// The layers of one recording in scheduling order (the order they apply in).
pub struct Layers {
    rate: SampleRate,
    samples: usize,
    channels: usize,
    layers: Vec<Layer>,
}

/// Indices of the samples whose time lies in [`start_s`, `end_s`), clamped to `len`.
pub fn sample_span(rate: SampleRate, start_s: f64, end_s: f64, len: usize) -> Range<usize> {
    let first = (rate.index_at(start_s) as usize).min(len);
    let last = (rate.index_at(end_s) as usize).min(len);
    first..last.max(first)
}

impl Layers {
    /// No layers yet, for a recording of `samples` frames of `channels` channels.
    pub fn new(rate: SampleRate, samples: usize, channels: usize) -> Self {
        Self {
            rate,
            samples,
            channels,
            layers: Vec::new(),
        }
    }

    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The samples of [`start_s`, `end_s`) in this recording.
    pub fn span(&self, start_s: f64, end_s: f64) -> Range<usize> {
        sample_span(self.rate, start_s, end_s, self.samples)
    }

    /// Add `gains[c] × shape(t)` to each channel over [`start_s`, `end_s`).
    pub fn add(
        &mut self,
        gains: &[f64],
        start_s: f64,
        end_s: f64,
        shape: impl FnMut(f64) -> f64 + Send + 'static,
    ) {
        self.push(
            start_s,
            end_s,
            Operation::Add {
                gains: gains.to_vec(),
                shape: Box::new(shape),
            },
        );
    }

    /// Multiply every channel by `factor(t)` over [`start_s`, `end_s`).
    pub fn scale(
        &mut self,
        start_s: f64,
        end_s: f64,
        factor: impl FnMut(f64) -> f64 + Send + 'static,
    ) {
        self.push(start_s, end_s, Operation::Scale(Box::new(factor)));
    }

    /// Replace every channel by `value` over [`start_s`, `end_s`).
    pub fn set(&mut self, start_s: f64, end_s: f64, value: f64) {
        self.push(start_s, end_s, Operation::Set(value));
    }

    fn push(&mut self, start_s: f64, end_s: f64, operation: Operation) {
        let span = self.span(start_s, end_s);
        if !span.is_empty() {
            self.layers.push(Layer { span, operation });
        }
    }
}

/// Applies a recording's layers to consecutive blocks.
pub struct LayerRenderer {
    rate: SampleRate,
    layers: Vec<Layer>,
    /// Layer indices by the first sample of their span.
    by_start: Vec<usize>,
    /// Layers in `by_start` before this one have begun.
    next_to_begin: usize,
    /// Layers that overlap the current block, in scheduling order.
    active: Vec<usize>,
}

impl LayerRenderer {
    pub fn new(layers: Layers) -> Self {
        let Layers { rate, layers, .. } = layers;
        let mut by_start: Vec<usize> = (0..layers.len()).collect();
        by_start.sort_by_key(|&index| layers[index].span.start);
        Self {
            rate,
            layers,
            by_start,
            next_to_begin: 0,
            active: Vec::new(),
        }
    }

    /// Apply the layers to the first `frames` samples of each channel of
    /// `block`, which start at sample `start`. Blocks must come in order, each
    /// starting where the previous one ended.
    pub fn render(&mut self, block: &mut [Vec<f64>], start: usize, frames: usize) {
        let end = start + frames;
        while let Some(&index) = self.by_start.get(self.next_to_begin) {
            if self.layers[index].span.start >= end {
                break;
            }
            self.active.push(index);
            self.next_to_begin += 1;
        }
        self.active.sort_unstable();
        for &index in &self.active {
            let layer = &mut self.layers[index];
            let first = layer.span.start.max(start);
            let last = layer.span.end.min(end);
            apply(&mut layer.operation, self.rate, block, start, first..last);
        }
        let layers = &self.layers;
        self.active.retain(|&index| layers[index].span.end > end);
    }
}

/// Apply `operation` to the samples `span` (recording indices) of `block`, whose
/// first sample is recording sample `block_start`.
fn apply(
    operation: &mut Operation,
    rate: SampleRate,
    block: &mut [Vec<f64>],
    block_start: usize,
    span: Range<usize>,
) {
    match operation {
        Operation::Add { gains, shape } => {
            for i in span {
                let value = shape(rate.seconds(i as u64));
                for (channel, gain) in block.iter_mut().zip(gains.iter()) {
                    channel[i - block_start] += gain * value;
                }
            }
        }
        Operation::Scale(factor) => {
            for i in span {
                let factor = factor(rate.seconds(i as u64));
                for channel in block.iter_mut() {
                    channel[i - block_start] *= factor;
                }
            }
        }
        Operation::Set(value) => {
            for channel in block.iter_mut() {
                channel[span.start - block_start..span.end - block_start].fill(*value);
            }
        }
    }
}
