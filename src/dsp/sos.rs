//! Second-order-section cascades in transposed direct form II, computing
//! exactly what `scipy.signal.sosfilt` computes (same operation order), for
//! one channel ([`SosFilter`]) or for many channels sharing coefficients, a
//! frame at a time ([`SosFrameBank`]).

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

/// One sample through one section (delay registers `s0`, `s1`), in
/// `sosfilt`'s operation order.
#[inline(always)]
fn section_step(c: &Section, s0: &mut f64, s1: &mut f64, x: f64) -> f64 {
    let y = c[0] * x + *s0;
    *s0 = c[1] * x - c[4] * y + *s1;
    *s1 = c[2] * x - c[5] * y;
    y
}

/// One sample of each of `L` channels through one section, in place: lane-wise
/// [`section_step`], written so the compiler vectorises it.
#[inline(always)]
fn section_step_lanes<const L: usize>(
    c: &Section,
    s0: &mut [f64; L],
    s1: &mut [f64; L],
    xs: &mut [f64; L],
) {
    for ((x, s0), s1) in xs.iter_mut().zip(s0).zip(s1) {
        *x = section_step(c, s0, s1, *x);
    }
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
            .fold(x, |value, (c, [s0, s1])| section_step(c, s0, s1, value))
    }

    /// Filter a block in place; identical to calling [`Self::process`] per sample.
    pub fn process_in_place(&mut self, xs: &mut [f64]) {
        filter_one_channel(&self.sections, &mut self.state, xs);
    }

    /// Back to rest (zero state), as just after `new`.
    pub fn reset(&mut self) {
        self.state.fill([0.0; 2]);
    }
}

/// Zero-phase filtering, offline only (scoring, display): forward, then
/// backward over the reversed signal, each pass from rest.
pub fn filter_zero_phase(sos: &Sos, xs: &mut [f64]) {
    let mut filter = SosFilter::new(sos);
    filter.process_in_place(xs);
    xs.reverse();
    filter.reset();
    filter.process_in_place(xs);
    xs.reverse();
}

/// Sections whose state a single-channel pass keeps in registers.
const SECTIONS_PER_PASS: usize = 4;

/// Filter one channel, sample by sample through up to [`SECTIONS_PER_PASS`]
/// sections at a time: the sections' recursions are independent chains the
/// CPU overlaps, with their state in registers.
fn filter_one_channel(sections: &[Section], state: &mut [SectionState], xs: &mut [f64]) {
    for (coefficients, pass_state) in sections
        .chunks(SECTIONS_PER_PASS)
        .zip(state.chunks_mut(SECTIONS_PER_PASS))
    {
        match coefficients.len() {
            4 => filter_pass::<4>(coefficients, pass_state, xs),
            3 => filter_pass::<3>(coefficients, pass_state, xs),
            2 => filter_pass::<2>(coefficients, pass_state, xs),
            _ => filter_pass::<1>(coefficients, pass_state, xs),
        }
    }
}

#[inline(always)]
fn filter_pass<const K: usize>(
    coefficients: &[Section],
    state: &mut [SectionState],
    xs: &mut [f64],
) {
    let coefficients: [Section; K] = std::array::from_fn(|k| coefficients[k]);
    let mut registers: [SectionState; K] = std::array::from_fn(|k| state[k]);
    for x in xs.iter_mut() {
        for (c, [s0, s1]) in coefficients.iter().zip(&mut registers) {
            *x = section_step(c, s0, s1, *x);
        }
    }
    state.copy_from_slice(&registers);
}

/// Channels filtered together in the multi-channel hot loop (one AVX2 vector
/// holds 4; 16 lanes give enough independent recursions to hide latency).
const LANES: usize = 16;

/// One coefficient set driving `n_channels` channels **one frame at a time**:
/// for callers that must filter sample by sample (the input can change
/// mid-block, e.g. post-stimulus blanking) yet have many channels.
///
/// The state is section-major, `[section][register][channel]`, so each
/// section's update is a contiguous sweep over channels: channels go through in
/// vectors of [`LANES`], then 4, then one at a time (AVX2 when the CPU has it),
/// each vector through every section while it sits in registers. Every path
/// performs `sosfilt`'s exact operations, so each channel's output is
/// bit-identical to its own [`SosFilter`].
#[derive(Debug, Clone)]
pub struct SosFrameBank {
    sections: Vec<Section>,
    /// Section `s`: first registers at `state[2 s n..(2 s + 1) n]`, second
    /// registers right after (`n` channels).
    state: Vec<f64>,
    n_channels: usize,
    use_avx2: bool,
}

impl SosFrameBank {
    /// A bank at rest for `n_channels` (at least 1) channels.
    pub fn new(sos: &Sos, n_channels: usize) -> Result<Self, DspError> {
        if n_channels == 0 {
            return Err(DspError::NoChannels);
        }
        Ok(Self {
            sections: sos.sections.clone(),
            state: vec![0.0; 2 * n_channels * sos.sections.len()],
            n_channels,
            use_avx2: avx2_available(),
        })
    }

    /// Filter one frame (one sample per channel) in place. Does not allocate.
    ///
    /// # Panics
    /// If `frame.len()` is not the bank's channel count (a caller's bug: the
    /// frame's shape is fixed when the bank is built).
    pub fn process_frame(&mut self, frame: &mut [f64]) {
        self.process_frame_with(frame, |_| {});
    }

    /// [`Self::process_frame`], handing each run of filtered channels to
    /// `filtered` as soon as it is done, in channel order: a reduction over
    /// the output (e.g. an ordered sum) then overlaps the remaining filtering
    /// instead of waiting for the whole frame.
    pub fn process_frame_with(&mut self, frame: &mut [f64], mut filtered: impl FnMut(&[f64])) {
        assert_eq!(
            frame.len(),
            self.n_channels,
            "frame length != bank channels"
        );
        #[cfg(target_arch = "x86_64")]
        if self.use_avx2 {
            // SAFETY: `use_avx2` comes from runtime detection of AVX2 on this CPU.
            unsafe { filter_frame_avx2(&self.sections, &mut self.state, frame, &mut filtered) };
            return;
        }
        filter_frame(&self.sections, &mut self.state, frame, &mut filtered);
    }
}

/// The portable frame kernel compiled with AVX2 enabled (plain mul/add, no
/// FMA, so the results are bit-identical to the portable build).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn filter_frame_avx2(
    sections: &[Section],
    state: &mut [f64],
    frame: &mut [f64],
    filtered: &mut impl FnMut(&[f64]),
) {
    filter_frame(sections, state, frame, filtered);
}

/// One frame of `frame.len()` channels through every section; `state` laid out
/// as in [`SosFrameBank`].
#[inline(always)]
fn filter_frame(
    sections: &[Section],
    state: &mut [f64],
    frame: &mut [f64],
    filtered: &mut impl FnMut(&[f64]),
) {
    let wide = frame.len() - frame.len() % LANES;
    let narrow = frame.len() - frame.len() % 4;
    filter_frame_lanes::<LANES>(sections, state, frame, 0..wide, filtered);
    filter_frame_lanes::<4>(sections, state, frame, wide..narrow, filtered);
    filter_frame_lanes::<1>(sections, state, frame, narrow..frame.len(), filtered);
}

/// Channels `channels` (a multiple of `L` long) of one frame, `L` at a time.
#[inline(always)]
fn filter_frame_lanes<const L: usize>(
    sections: &[Section],
    state: &mut [f64],
    frame: &mut [f64],
    channels: std::ops::Range<usize>,
    filtered: &mut impl FnMut(&[f64]),
) {
    let n = frame.len();
    for start in channels.step_by(L) {
        // Local copies (registers, provably unaliased, so the lane loop
        // vectorises without runtime overlap checks).
        let mut xs: [f64; L] = *lanes_at(frame, start);
        for (s, c) in sections.iter().enumerate() {
            let (s0, s1) = state[2 * s * n..2 * (s + 1) * n].split_at_mut(n);
            let (s0, s1) = (lanes_at::<L>(s0, start), lanes_at::<L>(s1, start));
            let (mut r0, mut r1) = (*s0, *s1);
            section_step_lanes(c, &mut r0, &mut r1, &mut xs);
            (*s0, *s1) = (r0, r1);
        }
        *lanes_at(frame, start) = xs;
        filtered(&xs);
    }
}

/// `values[start..start + L]` as an array (in bounds by the callers' ranges).
#[inline(always)]
fn lanes_at<const L: usize>(values: &mut [f64], start: usize) -> &mut [f64; L] {
    values[start..]
        .first_chunk_mut()
        .expect("the channel range lies within the frame")
}

fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{butterworth, Band};
    use crate::rng::Rng;
    use crate::time::SampleRate;

    /// A Butterworth design of `order` with a random kind, rate and edges.
    fn random_design(random: &mut Rng, order: usize) -> Sos {
        let rate_hz = 250.0 + random.uniform() * 30_000.0;
        let rate = SampleRate::new(rate_hz).unwrap();
        let kind = random.next_u64() % 3;
        // Edges in [1 %, 90 %] of Nyquist.
        let mut edge = || (0.01 + 0.89 * random.uniform()) * rate_hz / 2.0;
        let band = match kind {
            0 => Band::Lowpass { cutoff_hz: edge() },
            1 => Band::Highpass { cutoff_hz: edge() },
            _ => {
                let (a, b) = (edge(), edge());
                Band::Bandpass {
                    low_hz: a.min(b) / 1.05,
                    high_hz: a.max(b) * 1.05,
                }
            }
        };
        butterworth(order, band, rate).unwrap()
    }

    #[test]
    fn frame_bank_equals_independent_filters() {
        let mut random = Rng::new(7);
        for order in 1..=8 {
            for n_channels in [1, 3, 4, 16, 17, 64] {
                let sos = random_design(&mut random, order);
                let mut filters = vec![SosFilter::new(&sos); n_channels];
                let mut bank = SosFrameBank::new(&sos, n_channels).unwrap();
                // The portable path too, wherever the CPU has AVX2.
                let mut portable = bank.clone();
                portable.use_avx2 = false;
                for t in 0..300 {
                    let input: Vec<f64> = (0..n_channels)
                        .map(|_| (random.uniform() - 0.5) * 2e3)
                        .collect();
                    let expected: Vec<u64> = filters
                        .iter_mut()
                        .zip(&input)
                        .map(|(filter, &x)| filter.process(x).to_bits())
                        .collect();
                    for bank in [&mut bank, &mut portable] {
                        let mut frame = input.clone();
                        let mut handed = Vec::new();
                        bank.process_frame_with(&mut frame, |ys| handed.extend_from_slice(ys));
                        let got: Vec<u64> = frame.iter().map(|y| y.to_bits()).collect();
                        let context = format!(
                            "order {order}, {n_channels} channels, frame {t}, avx2 {}",
                            bank.use_avx2
                        );
                        assert_eq!(got, expected, "{context}");
                        // Every output handed over once, in channel order.
                        assert_eq!(handed, frame, "{context}");
                    }
                }
            }
        }
    }

    #[test]
    fn frame_bank_needs_a_channel() {
        let sos = random_design(&mut Rng::new(3), 4);
        assert!(SosFrameBank::new(&sos, 0).is_err());
    }

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
}
