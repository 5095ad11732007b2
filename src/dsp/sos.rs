//! Second-order-section cascades in transposed direct form II, computing
//! exactly what `scipy.signal.sosfilt` computes (same operation order), for
//! one channel ([`SosFilter`]) or many channels sharing coefficients ([`SosBank`]).

use super::DspError;

/// One section in scipy layout `[b0, b1, b2, a0, a1, a2]` with `a0 == 1`.
pub type Section = [f64; 6];

/// Filter coefficients: a cascade of second-order sections (no state).
#[derive(Debug, Clone, PartialEq)]
pub struct Sos {
    sections: Vec<Section>,
}

impl Sos {
    /// Coefficients from sections in scipy layout; every value finite, `a0 == 1`.
    pub fn new(sections: Vec<Section>) -> Result<Self, DspError> {
        if sections.is_empty() {
            return Err(DspError::InvalidSos {
                section: 0,
                problem: "there are no sections",
            });
        }
        for (section, coefficients) in sections.iter().enumerate() {
            if coefficients.iter().any(|c| !c.is_finite()) {
                return Err(DspError::InvalidSos {
                    section,
                    problem: "a coefficient is not finite",
                });
            }
            if coefficients[3] != 1.0 {
                return Err(DspError::InvalidSos {
                    section,
                    problem: "a0 must be 1",
                });
            }
        }
        Ok(Self { sections })
    }

    /// For designs whose construction guarantees `new`'s conditions.
    pub(crate) fn from_checked_sections(sections: Vec<Section>) -> Self {
        Self { sections }
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// True when every section's poles lie strictly inside the unit circle.
    ///
    /// For z² + a1 z + a2 this is the stability triangle |a2| < 1, |a1| < 1 + a2.
    pub fn is_stable(&self) -> bool {
        self.sections
            .iter()
            .all(|&[_, _, _, _, a1, a2]| a2.abs() < 1.0 && a1.abs() < 1.0 + a2)
    }
}

/// State of one section: the two delay registers of transposed direct form II.
type SectionState = [f64; 2];

/// One sample through one section, in `sosfilt`'s operation order.
#[inline(always)]
fn section_step(c: &Section, state: &mut SectionState, x: f64) -> f64 {
    let y = c[0] * x + state[0];
    state[0] = c[1] * x - c[4] * y + state[1];
    state[1] = c[2] * x - c[5] * y;
    y
}

/// A causal SOS filter for one channel: coefficients plus their state.
#[derive(Debug, Clone)]
pub struct SosFilter {
    sections: Vec<Section>,
    state: Vec<SectionState>,
}

impl SosFilter {
    /// A filter at rest (zero state).
    pub fn new(sos: &Sos) -> Self {
        Self {
            sections: sos.sections.clone(),
            state: vec![[0.0; 2]; sos.sections.len()],
        }
    }

    /// Filter one sample.
    #[inline]
    pub fn process(&mut self, x: f64) -> f64 {
        self.sections
            .iter()
            .zip(&mut self.state)
            .fold(x, |value, (c, state)| section_step(c, state, value))
    }

    /// Filter a block in place; identical to calling [`Self::process`] per sample.
    pub fn process_in_place(&mut self, xs: &mut [f64]) {
        filter_channel_group::<1>(&self.sections, &mut self.state, xs, xs.len());
    }

    /// Back to rest (zero state), as just after `new`.
    pub fn reset(&mut self) {
        self.state.fill([0.0; 2]);
    }
}

/// One coefficient set driving the state of `n_channels` channels: the
/// throughput path for multi-channel blocks.
///
/// Blocks are **channel-major**: a block of `frames` frames is
/// `[ch0[0..frames], ch1[0..frames], ...]`, length `n_channels * frames`.
/// Channels are filtered in groups of [`SosBank::LANES`] whose independent
/// recursions the CPU overlaps (and the compiler vectorises), one section at a
/// time over a cache-sized run of frames, with the group's state held in locals.
#[derive(Debug, Clone)]
pub struct SosBank {
    sections: Vec<Section>,
    /// `state[channel * n_sections + section]`.
    state: Vec<SectionState>,
    n_channels: usize,
}

impl SosBank {
    /// Channels filtered together in the hot loop.
    pub const LANES: usize = 8;

    /// A bank at rest for `n_channels` (at least 1) channels.
    pub fn new(sos: &Sos, n_channels: usize) -> Result<Self, DspError> {
        if n_channels == 0 {
            return Err(DspError::NoChannels);
        }
        Ok(Self {
            sections: sos.sections.clone(),
            state: vec![[0.0; 2]; n_channels * sos.sections.len()],
            n_channels,
        })
    }

    pub fn n_channels(&self) -> usize {
        self.n_channels
    }

    /// Filter a channel-major block in place. The block length must be a whole
    /// number of frames. Does not allocate.
    pub fn process_channel_major(&mut self, block: &mut [f64]) -> Result<(), DspError> {
        if block.len() % self.n_channels != 0 {
            return Err(DspError::BlockShape {
                len: block.len(),
                n_channels: self.n_channels,
            });
        }
        let frames = block.len() / self.n_channels;
        let n_sections = self.sections.len();
        let group_len = Self::LANES * frames;
        let mut channel_blocks = block.chunks_mut(group_len.max(1));
        let mut states = self.state.chunks_mut(Self::LANES * n_sections);
        for (group, state) in channel_blocks.by_ref().zip(states.by_ref()) {
            if group.len() == group_len {
                filter_channel_group::<{ Self::LANES }>(&self.sections, state, group, frames);
            } else {
                // Fewer than LANES channels left: one at a time.
                for (channel, channel_state) in
                    group.chunks_mut(frames).zip(state.chunks_mut(n_sections))
                {
                    filter_channel_group::<1>(&self.sections, channel_state, channel, frames);
                }
            }
        }
        Ok(())
    }

    /// Back to rest (zero state) on every channel.
    pub fn reset(&mut self) {
        self.state.fill([0.0; 2]);
    }
}

/// Frames per pass of one section: the group's data for a run stays in L1
/// while each section sweeps it (8 lanes × 256 frames × 8 B = 16 KiB).
const FRAMES_PER_RUN: usize = 256;

/// Filter `L` channels stored back to back (`frames` samples each) through all
/// sections. `state` is `[channel][section]` for these `L` channels.
#[inline(always)]
fn filter_channel_group<const L: usize>(
    sections: &[Section],
    state: &mut [SectionState],
    group: &mut [f64],
    frames: usize,
) {
    let n_sections = sections.len();
    let mut run_start = 0;
    while run_start < frames {
        let run_end = (run_start + FRAMES_PER_RUN).min(frames);
        for (s, c) in sections.iter().enumerate() {
            let mut lanes: [SectionState; L] =
                std::array::from_fn(|lane| state[lane * n_sections + s]);
            for t in run_start..run_end {
                for (lane, lane_state) in lanes.iter_mut().enumerate() {
                    let sample = &mut group[lane * frames + t];
                    *sample = section_step(c, lane_state, *sample);
                }
            }
            for (lane, lane_state) in lanes.iter().enumerate() {
                state[lane * n_sections + s] = *lane_state;
            }
        }
        run_start = run_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_sections() {
        assert!(Sos::new(vec![]).is_err());
        let err = Sos::new(vec![
            [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            [1.0, 0.0, 0.0, 2.0, 0.0, 0.0],
        ])
        .unwrap_err();
        assert!(err.to_string().contains("section 1"), "{err}");
        assert!(Sos::new(vec![[f64::NAN, 0.0, 0.0, 1.0, 0.0, 0.0]]).is_err());
    }

    #[test]
    fn stability_follows_pole_radius() {
        // Poles at radius r: z² - 2 r cos θ z + r².
        let section = |r: f64| [1.0, 0.0, 0.0, 1.0, -2.0 * r * 0.3f64.cos(), r * r];
        assert!(Sos::new(vec![section(0.999)]).unwrap().is_stable());
        assert!(!Sos::new(vec![section(1.0)]).unwrap().is_stable());
        assert!(!Sos::new(vec![section(0.5), section(1.001)])
            .unwrap()
            .is_stable());
    }

    #[test]
    fn single_section_matches_hand_computed_response() {
        // y[n] = 0.5 x[n] + 0.5 x[n-1] + 0.25 y[n-1]
        let sos = Sos::new(vec![[0.5, 0.5, 0.0, 1.0, -0.25, 0.0]]).unwrap();
        let mut filter = SosFilter::new(&sos);
        let out: Vec<f64> = [1.0, 0.0, 0.0].iter().map(|&x| filter.process(x)).collect();
        assert_eq!(out, vec![0.5, 0.625, 0.15625]);
    }

    #[test]
    fn bank_rejects_ragged_blocks() {
        let sos = Sos::new(vec![[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]]).unwrap();
        assert!(SosBank::new(&sos, 0).is_err());
        let mut bank = SosBank::new(&sos, 3).unwrap();
        assert!(bank.process_channel_major(&mut [0.0; 7]).is_err());
        assert!(bank.process_channel_major(&mut [0.0; 9]).is_ok());
    }
}
