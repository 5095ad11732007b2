//! An in-memory multi-signal recording: what file readers return, what the
//! simulator produces and what the EDF writer takes. Samples are physical
//! values (µV for EEG/LFP) as `f64`.

use crate::time::SampleRate;

/// One signal (channel) of a recording, at its own sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub label: String,
    /// Physical unit as written in the file ("uV", "mV", ...).
    pub unit: String,
    pub rate: SampleRate,
    pub samples: Vec<f64>,
}

/// A time-stamped annotation (EDF+ TAL, hypnogram stage, marker).
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Seconds from the recording start.
    pub onset_s: f64,
    pub duration_s: Option<f64>,
    pub text: String,
}

/// Signals plus annotations. Signals may have different rates (EDF allows it);
/// the pipeline runs on a selection of signals that share one rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recording {
    pub signals: Vec<Signal>,
    pub annotations: Vec<Annotation>,
}

/// A channel selector on the command line or in a config: a label or a 0-based index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSelector {
    Label(String),
    Index(usize),
}

impl std::str::FromStr for ChannelSelector {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse::<usize>() {
            Ok(i) => ChannelSelector::Index(i),
            Err(_) => ChannelSelector::Label(s.to_string()),
        })
    }
}

impl std::fmt::Display for ChannelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelSelector::Label(l) => write!(f, "{l}"),
            ChannelSelector::Index(i) => write!(f, "{i}"),
        }
    }
}

/// Why a channel selection failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectError {
    #[error("no channel named {name:?}; the recording has: {available}")]
    UnknownLabel { name: String, available: String },
    #[error("channel index {index} is out of range; the recording has {count} signal(s)")]
    IndexOutOfRange { index: usize, count: usize },
    #[error("selected channels have different sample rates ({first} and {other}); select channels that share one rate")]
    MixedRates {
        first: SampleRate,
        other: SampleRate,
    },
    #[error("the recording has no signals")]
    Empty,
    #[error("channel {label:?} has a non-finite sample (NaN or infinity) at index {index}")]
    NonFinite { label: String, index: usize },
}

impl Recording {
    /// All signals as interleaved frames (`[s0[0], s1[0], …, s0[1], …]`), as
    /// many frames as the shortest signal has samples.
    pub fn interleaved(&self) -> Vec<f64> {
        let frames = self
            .signals
            .iter()
            .map(|s| s.samples.len())
            .min()
            .unwrap_or(0);
        let mut data = Vec::with_capacity(frames * self.signals.len());
        for i in 0..frames {
            data.extend(self.signals.iter().map(|s| s.samples[i]));
        }
        data
    }

    /// Index of the signal a selector names.
    pub fn find(&self, selector: &ChannelSelector) -> Result<usize, SelectError> {
        match selector {
            ChannelSelector::Index(i) if *i < self.signals.len() => Ok(*i),
            ChannelSelector::Index(i) => Err(SelectError::IndexOutOfRange {
                index: *i,
                count: self.signals.len(),
            }),
            ChannelSelector::Label(name) => self
                .signals
                .iter()
                .position(|s| s.label.trim().eq_ignore_ascii_case(name.trim()))
                .ok_or_else(|| SelectError::UnknownLabel {
                    name: name.clone(),
                    available: self.labels().join(", "),
                }),
        }
    }

    pub fn labels(&self) -> Vec<String> {
        self.signals.iter().map(|s| s.label.clone()).collect()
    }

    /// Resolve selectors (all signals of the first signal's rate if empty) to
    /// signal indices that share one rate, and check every sample is finite.
    pub fn select(&self, selectors: &[ChannelSelector]) -> Result<Vec<usize>, SelectError> {
        let first = self.signals.first().ok_or(SelectError::Empty)?;
        let indices: Vec<usize> = if selectors.is_empty() {
            (0..self.signals.len())
                .filter(|&i| self.signals[i].rate == first.rate)
                .collect()
        } else {
            selectors
                .iter()
                .map(|s| self.find(s))
                .collect::<Result<_, _>>()?
        };
        let rate = self.signals[indices[0]].rate;
        for &i in &indices {
            let signal = &self.signals[i];
            if signal.rate != rate {
                return Err(SelectError::MixedRates {
                    first: rate,
                    other: signal.rate,
                });
            }
            if let Some(index) = signal.samples.iter().position(|x| !x.is_finite()) {
                return Err(SelectError::NonFinite {
                    label: signal.label.clone(),
                    index,
                });
            }
        }
        Ok(indices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(label: &str, hz: f64, samples: Vec<f64>) -> Signal {
        Signal {
            label: label.into(),
            unit: "uV".into(),
            rate: SampleRate::new(hz).unwrap(),
            samples,
        }
    }

    #[test]
    fn interleaves_frames_up_to_the_shortest_signal() {
        let rec = Recording {
            signals: vec![
                signal("a", 10.0, vec![1.0, 2.0, 3.0]),
                signal("b", 10.0, vec![10.0, 20.0]),
            ],
            annotations: vec![],
        };
        assert_eq!(rec.interleaved(), vec![1.0, 10.0, 2.0, 20.0]);
        assert!(Recording::default().interleaved().is_empty());
    }

    #[test]
    fn selects_by_label_and_index_and_rejects_bad_selections() {
        let rec = Recording {
            signals: vec![
                signal("C3-A1", 100.0, vec![0.0; 4]),
                signal("EMG", 1.0, vec![0.0; 1]),
                signal("Cz", 100.0, vec![0.0, f64::NAN]),
            ],
            annotations: vec![],
        };
        assert_eq!(
            rec.select(&[]).unwrap_err(),
            SelectError::NonFinite {
                label: "Cz".into(),
                index: 1
            }
        );
        assert_eq!(rec.select(&["c3-a1".parse().unwrap()]).unwrap(), vec![0]);
        assert!(matches!(
            rec.select(&["Fz".parse().unwrap()]),
            Err(SelectError::UnknownLabel { .. })
        ));
        assert!(matches!(
            rec.select(&["7".parse().unwrap()]),
            Err(SelectError::IndexOutOfRange { index: 7, count: 3 })
        ));
        assert!(matches!(
            rec.select(&["0".parse().unwrap(), "1".parse().unwrap()]),
            Err(SelectError::MixedRates { .. })
        ));
    }
}
