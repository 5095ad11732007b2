//! Display records for the live monitor. The controller folds each frame's
//! raw sample and its detector's [`Probe`] into fixed-size bins (min and max
//! per bin), so the processing thread hands a few hundred small records a
//! second to the monitor instead of every sample, without allocating.

use crate::detect::Probe;
use crate::time::SampleIndex;

/// One display bin: `frames` consecutive frames from `start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct DisplayBin {
    pub start: SampleIndex,
    pub frames: u32,
    /// [min, max] of the raw signal of `DisplayProbe::channel`, µV.
    pub raw: [f32; 2],
    /// [min, max] of the detector's filtered signal, µV.
    pub band: [f32; 2],
    /// [min, max] of the detector's envelope, in its units.
    pub envelope: [f32; 2],
    /// The threshold at the bin's last frame.
    pub threshold: f32,
    /// The gate or the veto blocked detections at some frame of the bin.
    pub gated: bool,
    pub vetoed: bool,
}

/// Folds frames into bins and keeps the finished bins until they are taken.
#[derive(Debug, Clone)]
pub struct DisplayProbe {
    bin_frames: u32,
    /// The session channel drawn as the raw signal.
    pub channel: usize,
    current: DisplayBin,
    /// Finished bins; never grows past the capacity it was made with.
    done: Vec<DisplayBin>,
    /// Bins lost because `done` was full (nobody took them in time).
    pub overflow: u64,
}

impl DisplayProbe {
    /// Bins of `bin_frames` frames; room for `capacity` finished bins between takes.
    pub fn new(bin_frames: usize, capacity: usize) -> Self {
        Self {
            bin_frames: bin_frames.clamp(1, u32::MAX as usize) as u32,
            channel: 0,
            current: DisplayBin::default(),
            done: Vec::with_capacity(capacity.max(1)),
            overflow: 0,
        }
    }

    pub fn bin_frames(&self) -> usize {
        self.bin_frames as usize
    }

    /// Add frame `n`: its raw sample and what the detector shows after it.
    #[inline]
    pub fn add(&mut self, n: SampleIndex, raw: f64, probe: Probe) {
        let (raw, band, envelope) = (raw as f32, probe.band as f32, probe.envelope as f32);
        let bin = &mut self.current;
        if bin.frames == 0 {
            *bin = DisplayBin {
                start: n,
                frames: 0,
                raw: [raw; 2],
                band: [band; 2],
                envelope: [envelope; 2],
                threshold: 0.0,
                gated: false,
                vetoed: false,
            };
        }
        for (range, x) in [
            (&mut bin.raw, raw),
            (&mut bin.band, band),
            (&mut bin.envelope, envelope),
        ] {
            range[0] = range[0].min(x);
            range[1] = range[1].max(x);
        }
        bin.threshold = probe.threshold as f32;
        bin.gated |= probe.gated;
        bin.vetoed |= probe.vetoed;
        bin.frames += 1;
        if bin.frames == self.bin_frames {
            if self.done.len() < self.done.capacity() {
                self.done.push(*bin);
            } else {
                self.overflow += 1;
            }
            bin.frames = 0;
        }
    }

    /// Take the finished bins, oldest first.
    pub fn take(&mut self) -> std::vec::Drain<'_, DisplayBin> {
        self.done.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bins hold min and max of each trace and any gate or veto; a full
    /// queue counts what it cannot keep instead of growing.
    #[test]
    fn bins_fold_min_max_and_never_grow() {
        let mut display = DisplayProbe::new(2, 1);
        let probe = |x: f64, gated| Probe {
            band: -x,
            envelope: x * 2.0,
            threshold: 3.0,
            gated,
            vetoed: false,
        };
        display.add(10, 1.0, probe(1.0, false));
        display.add(11, -4.0, probe(-4.0, true));
        display.add(12, 5.0, probe(5.0, false));
        display.add(13, 6.0, probe(6.0, false));
        assert_eq!(display.overflow, 1);
        let bins: Vec<_> = display.take().collect();
        assert_eq!(
            bins,
            [DisplayBin {
                start: 10,
                frames: 2,
                raw: [-4.0, 1.0],
                band: [-1.0, 4.0],
                envelope: [-8.0, 2.0],
                threshold: 3.0,
                gated: true,
                vetoed: false,
            }]
        );
        assert_eq!(display.done.capacity(), 1);
    }
}
