//! An in-memory multi-signal recording: what the simulator produces, what
//! `io::read_recording` collects from a streaming reader and what the EDF
//! writer takes; and channel selection, shared by files and live sources.
//! Samples are physical values (µV for EEG/LFP) as `f64`.

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
    #[error("channel name {name:?} is ambiguous: signals {indices} all have it; select one by its 0-based index")]
    AmbiguousLabel { name: String, indices: String },
    #[error("channel index {index} is out of range; the recording has {count} signal(s)")]
    IndexOutOfRange { index: usize, count: usize },
    #[error("selected channels have different sample rates ({first} and {other}); select channels that share one rate")]
    MixedRates {
        first: SampleRate,
        other: SampleRate,
    },
    #[error("selected channels {first:?} and {other:?} come from different streams, whose samples are not aligned; select channels of one stream")]
    MixedStreams { first: String, other: String },
    #[error("the recording has no signals")]
    Empty,
    #[error("channel {label:?} has a non-finite sample (NaN or infinity) at index {index}")]
    NonFinite { label: String, index: usize },
}

/// What channel selection needs to know of each signal.
#[derive(Debug, Clone, Copy)]
pub struct Selectable<'a> {
    pub label: &'a str,
    pub rate: SampleRate,
    /// Signals of one stream are sampled together (one EDF rate, one Open Ephys
    /// `continuous.dat`); a selection never mixes streams.
    pub stream: usize,
}

/// Resolve selectors to signal indices of one stream and rate; no selectors
/// select every signal of the first signal's stream. A label matches when it
/// equals a signal's label ignoring case and surrounding spaces; a label that
/// several signals share is refused (naming them) rather than resolved to one.
pub fn select_signals(
    signals: &[Selectable],
    selectors: &[ChannelSelector],
) -> Result<Vec<usize>, SelectError> {
    let first = signals.first().ok_or(SelectError::Empty)?;
    let indices: Vec<usize> = if selectors.is_empty() {
        (0..signals.len())
            .filter(|&i| signals[i].stream == first.stream)
            .collect()
    } else {
        selectors
            .iter()
            .map(|selector| find_signal(signals, selector))
            .collect::<Result<_, _>>()?
    };
    let chosen = &signals[indices[0]];
    for &i in &indices {
        let signal = &signals[i];
        if signal.rate != chosen.rate {
            return Err(SelectError::MixedRates {
                first: chosen.rate,
                other: signal.rate,
            });
        }
        if signal.stream != chosen.stream {
            return Err(SelectError::MixedStreams {
                first: chosen.label.trim().to_string(),
                other: signal.label.trim().to_string(),
            });
        }
    }
    Ok(indices)
}

/// Index of the one signal a selector names.
fn find_signal(signals: &[Selectable], selector: &ChannelSelector) -> Result<usize, SelectError> {
    match selector {
        ChannelSelector::Index(i) if *i < signals.len() => Ok(*i),
        ChannelSelector::Index(i) => Err(SelectError::IndexOutOfRange {
            index: *i,
            count: signals.len(),
        }),
        ChannelSelector::Label(name) => {
            let matches: Vec<usize> = (0..signals.len())
                .filter(|&i| signals[i].label.trim().eq_ignore_ascii_case(name.trim()))
                .collect();
            match matches[..] {
                [index] => Ok(index),
                [] => Err(SelectError::UnknownLabel {
                    name: name.clone(),
                    available: signals
                        .iter()
                        .map(|s| s.label)
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
                _ => Err(SelectError::AmbiguousLabel {
                    name: name.clone(),
                    indices: matches
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        }
    }
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

    pub fn labels(&self) -> Vec<String> {
        self.signals.iter().map(|s| s.label.clone()).collect()
    }

    /// Resolve selectors as [`select_signals`] does (signals of one rate form
    /// one stream), and check every selected sample is finite.
    pub fn select(&self, selectors: &[ChannelSelector]) -> Result<Vec<usize>, SelectError> {
        let selectable: Vec<Selectable> = self
            .signals
            .iter()
            .map(|s| Selectable {
                label: &s.label,
                rate: s.rate,
                // One stream per rate: the first signal at that rate numbers it.
                stream: self
                    .signals
                    .iter()
                    .position(|other| other.rate == s.rate)
                    .unwrap_or(0),
            })
            .collect();
        let indices = select_signals(&selectable, selectors)?;
        for &i in &indices {
            let signal = &self.signals[i];
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

    #[test]
    fn a_label_shared_by_several_signals_is_refused_naming_them() {
        let rate = SampleRate::new(100.0).unwrap();
        let signals = [
            Selectable {
                label: "C3",
                rate,
                stream: 0,
            },
            Selectable {
                label: "Cz",
                rate,
                stream: 0,
            },
            Selectable {
                label: " c3 ",
                rate,
                stream: 0,
            },
        ];
        let error = select_signals(&signals, &["C3".parse().unwrap()]).unwrap_err();
        assert_eq!(
            error,
            SelectError::AmbiguousLabel {
                name: "C3".into(),
                indices: "0, 2".into()
            }
        );
        assert!(error.to_string().contains("index"), "{error}");
        assert_eq!(
            select_signals(&signals, &["2".parse().unwrap()]).unwrap(),
            [2]
        );
    }

    #[test]
    fn a_selection_stays_in_one_stream() {
        let rate = SampleRate::new(30_000.0).unwrap();
        let signals = [
            Selectable {
                label: "A1",
                rate,
                stream: 0,
            },
            Selectable {
                label: "B1",
                rate,
                stream: 1,
            },
            Selectable {
                label: "A2",
                rate,
                stream: 0,
            },
        ];
        assert_eq!(select_signals(&signals, &[]).unwrap(), [0, 2]);
        assert!(matches!(
            select_signals(&signals, &["A1".parse().unwrap(), "B1".parse().unwrap()]),
            Err(SelectError::MixedStreams { .. })
        ));
    }
}
