//! Sleep stages over time: DREAMS hypnograms (a `[...]` header line, then one
//! R&K value per 5-s epoch: 5 wake, 4 REM, 3 S1, 2 S2, 1 S3, 0 S4) and EDF+
//! hypnogram annotations (`Sleep stage W/1/2/3/4/R/?` with durations).
//! Used to gate stimulation in replay and to score stims per minute of N3.

use super::tables::TableError;
use crate::recording::Annotation;
use crate::time::{SampleIndex, SampleRate};

/// Seconds per epoch in DREAMS hypnograms.
pub const DREAMS_EPOCH_S: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Wake,
    Rem,
    N1,
    N2,
    /// R&K S3 and S4.
    N3,
    Unknown,
}

impl Stage {
    /// NREM stages 2 and 3: where slow-oscillation stimulation is allowed.
    pub fn is_deep_nrem(self) -> bool {
        matches!(self, Stage::N2 | Stage::N3)
    }
}

/// One scored epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epoch {
    pub onset_s: f64,
    pub duration_s: f64,
    pub stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hypnogram {
    pub epochs: Vec<Epoch>,
}

impl Hypnogram {
    /// Parse a DREAMS `Hypnogram_excerptN.txt`.
    pub fn parse_dreams(text: &str, origin: &str) -> Result<Self, TableError> {
        let mut epochs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let value = line.trim();
            if value.is_empty() || (i == 0 && value.starts_with('[')) {
                continue;
            }
            let stage = match value {
                "5" => Stage::Wake,
                "4" => Stage::Rem,
                "3" => Stage::N1,
                "2" => Stage::N2,
                "1" | "0" => Stage::N3,
                _ => Stage::Unknown,
            };
            if stage == Stage::Unknown && value.parse::<f64>().is_err() {
                return Err(TableError {
                    origin: origin.into(),
                    line: i + 1,
                    message: format!("expected an R&K stage 0–5, got {value:?}"),
                });
            }
            epochs.push(Epoch {
                onset_s: epochs.len() as f64 * DREAMS_EPOCH_S,
                duration_s: DREAMS_EPOCH_S,
                stage,
            });
        }
        Ok(Self { epochs })
    }

    /// From EDF+ annotations `Sleep stage ...`; other annotations are ignored.
    pub fn from_annotations(annotations: &[Annotation]) -> Self {
        let epochs = annotations
            .iter()
            .filter_map(|a| {
                let code = a.text.trim().strip_prefix("Sleep stage ")?;
                let stage = match code {
                    "W" => Stage::Wake,
                    "R" => Stage::Rem,
                    "1" => Stage::N1,
                    "2" => Stage::N2,
                    "3" | "4" => Stage::N3,
                    _ => Stage::Unknown,
                };
                Some(Epoch {
                    onset_s: a.onset_s,
                    duration_s: a.duration_s.unwrap_or(0.0),
                    stage,
                })
            })
            .collect();
        Self { epochs }
    }

    /// The stage at time `t_s` (`Unknown` outside the scored epochs).
    pub fn stage_at(&self, t_s: f64) -> Stage {
        self.epochs
            .iter()
            .find(|e| e.onset_s <= t_s && t_s < e.onset_s + e.duration_s)
            .map_or(Stage::Unknown, |e| e.stage)
    }

    /// Minutes scored as `stage`.
    pub fn minutes_in(&self, stage: Stage) -> f64 {
        self.epochs
            .iter()
            .filter(|e| e.stage == stage)
            .map(|e| e.duration_s)
            .sum::<f64>()
            / 60.0
    }

    /// `[start, end)` sample intervals of the epochs whose stage passes `keep`.
    pub fn sample_intervals(
        &self,
        rate: SampleRate,
        keep: impl Fn(Stage) -> bool,
    ) -> Vec<(SampleIndex, SampleIndex)> {
        self.epochs
            .iter()
            .filter(|e| keep(e.stage))
            .map(|e| {
                (
                    rate.index_at(e.onset_s),
                    rate.index_at(e.onset_s + e.duration_s),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dreams_epochs_are_five_seconds_and_rk_mapped() {
        let h = Hypnogram::parse_dreams("[Hypnogram]\n5\n2\n1\n0\n4\n", "h.txt").unwrap();
        let stages: Vec<Stage> = h.epochs.iter().map(|e| e.stage).collect();
        use Stage::*;
        assert_eq!(stages, vec![Wake, N2, N3, N3, Rem]);
        assert_eq!(h.stage_at(12.0), N3);
        assert_eq!(h.minutes_in(N3), 10.0 / 60.0);
        let rate = SampleRate::new(100.0).unwrap();
        assert_eq!(
            h.sample_intervals(rate, Stage::is_deep_nrem),
            vec![(500, 1000), (1000, 1500), (1500, 2000)]
        );
        let err = Hypnogram::parse_dreams("[H]\n2\nx\n", "h.txt").unwrap_err();
        assert!(err.to_string().contains("h.txt, line 3"), "{err}");
    }
}
