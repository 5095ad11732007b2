//! Reading the tables the scorer compares: a session's `events.tsv`, the
//! simulator's `truth.tsv` (any TSV with `onset`, `duration`, `trial_type`
//! columns, `peak` optional) and DREAMS expert scorings (a `[...]` header line,
//! then `onset duration` per line).

use super::Interval;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}, line {line}: {message}")]
pub struct TableError {
    pub origin: String,
    pub line: usize,
    pub message: String,
}

/// One row of a session's `events.tsv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub onset_s: f64,
    pub duration_s: f64,
    pub trial_type: String,
    pub detected_at_s: Option<f64>,
    pub decided_at_s: Option<f64>,
    /// The detector's own peak (`peak` column), if the table has one.
    pub peak_s: Option<f64>,
}

impl EventRow {
    /// When the system committed: `detected_at` for detections, `decided_at`
    /// for triggers, the onset if neither is known.
    pub fn decision_time_s(&self) -> f64 {
        self.detected_at_s
            .or(self.decided_at_s)
            .unwrap_or(self.onset_s)
    }

    pub fn interval(&self) -> Interval {
        Interval {
            onset_s: self.onset_s,
            end_s: self.onset_s + self.duration_s,
        }
    }
}

/// One ground-truth event.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthRow {
    pub onset_s: f64,
    pub duration_s: f64,
    pub peak_s: f64,
    pub trial_type: String,
}

impl TruthRow {
    pub fn interval(&self) -> Interval {
        Interval {
            onset_s: self.onset_s,
            end_s: self.onset_s + self.duration_s,
        }
    }
}

/// A header-addressed TSV: finds columns by name, parses numbers with the
/// line and column named in errors.
struct Tsv<'a> {
    origin: &'a str,
    columns: Vec<&'a str>,
    rows: Vec<(usize, Vec<&'a str>)>,
}

impl<'a> Tsv<'a> {
    fn parse(text: &'a str, origin: &'a str) -> Result<Self, TableError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or_else(|| TableError {
            origin: origin.into(),
            line: 1,
            message: "empty file: expected a header row".into(),
        })?;
        let columns: Vec<&str> = header.split('\t').map(str::trim).collect();
        let mut rows = Vec::new();
        for (i, line) in lines {
            let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
            if fields.len() != columns.len() {
                return Err(TableError {
                    origin: origin.into(),
                    line: i + 1,
                    message: format!("{} fields, the header has {}", fields.len(), columns.len()),
                });
            }
            rows.push((i + 1, fields));
        }
        Ok(Self {
            origin,
            columns,
            rows,
        })
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| *c == name)
    }

    fn required(&self, name: &str) -> Result<usize, TableError> {
        self.column(name).ok_or_else(|| TableError {
            origin: self.origin.into(),
            line: 1,
            message: format!("no `{name}` column in the header"),
        })
    }

    /// A number, or `None` for `n/a` (BIDS' missing value) or an absent column.
    fn number(
        &self,
        line: usize,
        fields: &[&str],
        col: Option<usize>,
    ) -> Result<Option<f64>, TableError> {
        let Some(col) = col else {
            return Ok(None);
        };
        let text = fields[col];
        if text == "n/a" {
            return Ok(None);
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(TableError {
                origin: self.origin.into(),
                line,
                message: format!("column `{}`: {text:?} is not a number", self.columns[col]),
            }),
        }
    }

    fn required_number(&self, line: usize, fields: &[&str], col: usize) -> Result<f64, TableError> {
        self.number(line, fields, Some(col))?
            .ok_or_else(|| TableError {
                origin: self.origin.into(),
                line,
                message: format!("column `{}` must not be n/a", self.columns[col]),
            })
    }
}

/// Parse a session's `events.tsv`.
pub fn parse_events(text: &str, origin: &str) -> Result<Vec<EventRow>, TableError> {
    let tsv = Tsv::parse(text, origin)?;
    let (onset, duration, kind) = (
        tsv.required("onset")?,
        tsv.required("duration")?,
        tsv.required("trial_type")?,
    );
    let (detected_at, decided_at, peak) = (
        tsv.column("detected_at"),
        tsv.column("decided_at"),
        tsv.column("peak"),
    );
    tsv.rows
        .iter()
        .map(|(line, f)| {
            Ok(EventRow {
                onset_s: tsv.required_number(*line, f, onset)?,
                duration_s: tsv.required_number(*line, f, duration)?,
                trial_type: f[kind].to_string(),
                detected_at_s: tsv.number(*line, f, detected_at)?,
                decided_at_s: tsv.number(*line, f, decided_at)?,
                peak_s: tsv.number(*line, f, peak)?,
            })
        })
        .collect()
}

/// Parse ground truth: a TSV with `onset`, `duration`, `trial_type` (and
/// optionally `peak`) columns, or a DREAMS scoring file.
pub fn parse_truth(text: &str, origin: &str) -> Result<Vec<TruthRow>, TableError> {
    if text.trim_start().starts_with('[') {
        return parse_dreams_scoring(text, origin);
    }
    let tsv = Tsv::parse(text, origin)?;
    let (onset, duration, kind) = (
        tsv.required("onset")?,
        tsv.required("duration")?,
        tsv.required("trial_type")?,
    );
    let peak = tsv.column("peak");
    tsv.rows
        .iter()
        .map(|(line, f)| {
            let onset_s = tsv.required_number(*line, f, onset)?;
            let duration_s = tsv.required_number(*line, f, duration)?;
            let peak_s = tsv.number(*line, f, peak)?;
            Ok(TruthRow {
                onset_s,
                duration_s,
                peak_s: peak_s.unwrap_or(onset_s + duration_s / 2.0),
                trial_type: f[kind].to_string(),
            })
        })
        .collect()
}

/// DREAMS expert/automatic scorings: `[vis1_Spindles/C3-A1]`, then `onset duration`.
fn parse_dreams_scoring(text: &str, origin: &str) -> Result<Vec<TruthRow>, TableError> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l.to_ascii_lowercase())
        .unwrap_or_default();
    let trial_type = if header.contains("spindle") {
        "spindle"
    } else {
        return Err(TableError {
            origin: origin.into(),
            line: 1,
            message: format!(
                "DREAMS header {header:?} names no event type neuroloop scores (spindles)"
            ),
        });
    };
    let mut rows = Vec::new();
    for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<f64> = line
            .split_whitespace()
            .map(|f| f.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect::<Option<_>>()
            .filter(|f: &Vec<f64>| f.len() == 2)
            .ok_or_else(|| TableError {
                origin: origin.into(),
                line: i + 1,
                message: format!("expected `onset duration` in seconds, got {line:?}"),
            })?;
        rows.push(TruthRow {
            onset_s: fields[0],
            duration_s: fields[1],
            peak_s: fields[0] + fields[1] / 2.0,
            trial_type: trial_type.into(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_events_tsv_with_missing_values() {
        let text = "onset\tduration\ttrial_type\tsample\tdetected_at\tdecided_at\n\
                    1.0\t0.05\tripple\t1000\t1.012\tn/a\n\
                    1.012\t0.001\tstim\t1012\tn/a\t1.012\n";
        let rows = parse_events(text, "e.tsv").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].decision_time_s(), 1.012);
        assert_eq!(rows[1].detected_at_s, None);
        assert_eq!(rows[1].trial_type, "stim");
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let err =
            parse_events("onset\tduration\ttrial_type\n1.0\tx\tripple\n", "e.tsv").unwrap_err();
        assert_eq!(
            err.to_string(),
            "e.tsv, line 2: column `duration`: \"x\" is not a number"
        );
        let err = parse_events("onset\ttrial_type\n", "e.tsv").unwrap_err();
        assert!(err.to_string().contains("no `duration` column"));
        assert!(parse_events("", "e.tsv").is_err());
    }

    #[test]
    fn reads_dreams_scorings() {
        let text = "[vis1_Spindles/C3-A1]\n  282.2400\t    0.7200\n  311.7200\t    1.5400\n";
        let rows = parse_truth(text, "v.txt").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].onset_s, rows[1].duration_s), (311.72, 1.54));
        assert_eq!(rows[0].trial_type, "spindle");
        let err = parse_truth("[vis1_Spindles]\n1.0 x\n", "v.txt").unwrap_err();
        assert!(err.to_string().starts_with("v.txt, line 2"));
    }

    #[test]
    fn reads_simulator_truth() {
        let text = "onset\tduration\tpeak\ttrial_type\tchannel\tparameters\n\
                    1.5\t0.05\t1.52\tripple\tall\tfreq_hz=180\n";
        let rows = parse_truth(text, "truth.tsv").unwrap();
        assert_eq!(rows[0].peak_s, 1.52);
    }
}
