//! Mapping an LSL stream's timestamps to the session's sample index.

use crate::time::SampleRate;

/// Where each sample goes in the session's sample index, from its timestamp.
///
/// Timestamps are compared with a prediction, the previous predicted time
/// plus one period nudged by a fraction of each error, rather than with the
/// previous timestamp: jitter then cannot add up to a false gap, and a sender
/// whose true rate differs slightly from the nominal one is still followed.
#[derive(Debug, Clone)]
pub struct SampleClock {
    period_s: f64,
    gap_periods: f64,
    /// A longer gap than this cannot be lost samples (the stream would have
    /// stalled first): the sender's clock jumped.
    max_gap_frames: u64,
    next: u64,
    last_stamp: Option<f64>,
    /// When the next sample is expected (meaningful once `last_stamp` is set).
    predicted: f64,
}

/// How much of each timestamp's error moves the prediction.
const PREDICTION_GAIN: f64 = 1.0 / 16.0;

/// How a timestamp relates to the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Within `gap_periods` periods of the previous sample: the next sample.
    Next,
    /// Later than that: this many frames were lost before it.
    Gap(u64),
    /// Earlier than the previous timestamp; the sample follows the previous one.
    Backwards,
    /// Not a number, or so far ahead that the stream would have stalled;
    /// the sample follows the previous one.
    Jump,
}

impl SampleClock {
    pub fn new(rate: SampleRate, gap_periods: f64, stall_ms: f64) -> Self {
        Self {
            period_s: 1.0 / rate.hz(),
            gap_periods,
            max_gap_frames: rate.samples_in_ms(stall_ms),
            next: 0,
            last_stamp: None,
            predicted: 0.0,
        }
    }

    /// The sample index of a sample stamped `stamp`, and how it was placed.
    pub fn place(&mut self, stamp: f64) -> (u64, Step) {
        let step = match self.last_stamp {
            _ if !stamp.is_finite() => Step::Jump,
            None => Step::Next,
            Some(last) if stamp < last => Step::Backwards,
            Some(last) => {
                // Periods since the previous sample's (predicted) time.
                let late = (stamp - self.predicted) / self.period_s + 1.0;
                if late <= self.gap_periods {
                    Step::Next
                } else {
                    let lost = (((stamp - last) / self.period_s).round() as u64)
                        .saturating_sub(1)
                        .max(1);
                    if lost > self.max_gap_frames {
                        Step::Jump
                    } else {
                        Step::Gap(lost)
                    }
                }
            }
        };
        if stamp.is_finite() {
            self.predicted = match (step, self.last_stamp) {
                (Step::Next, Some(_)) => {
                    self.predicted + PREDICTION_GAIN * (stamp - self.predicted) + self.period_s
                }
                // The first sample, or after a discontinuity: start afresh.
                _ => stamp + self.period_s,
            };
            self.last_stamp = Some(stamp);
        }
        let index = self.next + if let Step::Gap(n) = step { n } else { 0 };
        self.next = index + 1;
        (index, step)
    }
}
