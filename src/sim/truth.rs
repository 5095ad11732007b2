//! Ground-truth events of a simulation and their TSV form.
//!
//! One row per event, tab-separated, with the header
//! `onset duration peak trial_type channel parameters`; times in seconds from
//! the recording start, `parameters` as `key=value;key=value` (`n/a` if none).
//! Numbers are written in Rust's shortest round-trip form, so a table read
//! back gives bit-identical events.

/// One true event.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthEvent {
    /// Start of the event (s).
    pub onset_s: f64,
    /// Length of the event (s).
    pub duration_s: f64,
    /// Time of the maximum of the event's envelope (s); for slow oscillations
    /// the positive up-state peak (the trough is in `parameters` as `trough_s`).
    pub peak_s: f64,
    /// One of the fixed vocabulary, e.g. `ripple`, `spindle`, `sleep_stage`.
    pub trial_type: String,
    /// Channel label, or `all` when the event is on every channel.
    pub channel: String,
    /// Numeric parameters such as `freq_hz`, `amplitude_uv`, `stage`.
    pub parameters: Vec<(String, f64)>,
}

impl TruthEvent {
    /// End of the event (s).
    pub fn end_s(&self) -> f64 {
        self.onset_s + self.duration_s
    }

    /// Value of parameter `key`, if present.
    pub fn parameter(&self, key: &str) -> Option<f64> {
        self.parameters
            .iter()
            .find(|(k, _)| k == key)
            .map(|&(_, value)| value)
    }
}

/// Column names of the truth table, in order.
pub const TRUTH_COLUMNS: [&str; 6] = [
    "onset",
    "duration",
    "peak",
    "trial_type",
    "channel",
    "parameters",
];

/// Text written for an empty parameter list.
const NO_PARAMETERS: &str = "n/a";

/// A truth table that could not be read; line numbers are 1-based and count the header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TruthParseError {
    #[error("truth table is empty: expected the header `{}`", TRUTH_COLUMNS.join("\t"))]
    Empty,
    #[error("line 1: header must be `{}` (tab-separated), got {found:?}", TRUTH_COLUMNS.join("\t"))]
    BadHeader { found: String },
    #[error("line {line}: expected {} tab-separated columns, found {found}", TRUTH_COLUMNS.len())]
    ColumnCount { line: usize, found: usize },
    #[error("line {line}, column `{column}`: {problem}, got {value:?}")]
    BadField {
        line: usize,
        column: &'static str,
        problem: &'static str,
        value: String,
    },
}

/// The truth table as TSV text (header plus one line per event).
/// Tabs, newlines, `;` and `=` inside text fields are replaced by spaces so the
/// table always parses back.
pub fn truth_to_tsv(events: &[TruthEvent]) -> String {
    let mut out = TRUTH_COLUMNS.join("\t");
    out.push('\n');
    for event in events {
        let parameters = if event.parameters.is_empty() {
            NO_PARAMETERS.to_string()
        } else {
            event
                .parameters
                .iter()
                .map(|(key, value)| format!("{}={}", clean_text(key), value))
                .collect::<Vec<_>>()
                .join(";")
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            event.onset_s,
            event.duration_s,
            event.peak_s,
            clean_text(&event.trial_type),
            clean_text(&event.channel),
            parameters
        ));
    }
    out
}

fn clean_text(text: &str) -> String {
    text.replace(['\t', '\n', '\r', ';', '='], " ")
}

/// Read a table written by [`truth_to_tsv`]. Blank lines are ignored.
pub fn truth_from_tsv(text: &str) -> Result<Vec<TruthEvent>, TruthParseError> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().ok_or(TruthParseError::Empty)?;
    if header.trim_end_matches('\r') != TRUTH_COLUMNS.join("\t") {
        return Err(TruthParseError::BadHeader {
            found: header.to_string(),
        });
    }
    let mut events = Vec::new();
    for (index, raw) in lines {
        let line = index + 1;
        let row = raw.trim_end_matches('\r');
        if row.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = row.split('\t').collect();
        if fields.len() != TRUTH_COLUMNS.len() {
            return Err(TruthParseError::ColumnCount {
                line,
                found: fields.len(),
            });
        }
        let onset_s = parse_time(line, "onset", fields[0])?;
        let duration_s = parse_time(line, "duration", fields[1])?;
        let peak_s = parse_time(line, "peak", fields[2])?;
        let trial_type = parse_text(line, "trial_type", fields[3])?;
        let channel = parse_text(line, "channel", fields[4])?;
        let parameters = parse_parameters(line, fields[5])?;
        events.push(TruthEvent {
            onset_s,
            duration_s,
            peak_s,
            trial_type,
            channel,
            parameters,
        });
    }
    Ok(events)
}

fn bad_field(
    line: usize,
    column: &'static str,
    problem: &'static str,
    value: &str,
) -> TruthParseError {
    TruthParseError::BadField {
        line,
        column,
        problem,
        value: value.to_string(),
    }
}

fn parse_time(line: usize, column: &'static str, field: &str) -> Result<f64, TruthParseError> {
    let value: f64 = field
        .trim()
        .parse()
        .map_err(|_| bad_field(line, column, "expected a number of seconds", field))?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad_field(
            line,
            column,
            "expected a finite, non-negative number of seconds",
            field,
        ));
    }
    Ok(value)
}

fn parse_text(line: usize, column: &'static str, field: &str) -> Result<String, TruthParseError> {
    let text = field.trim();
    if text.is_empty() {
        return Err(bad_field(line, column, "must not be empty", field));
    }
    Ok(text.to_string())
}

fn parse_parameters(line: usize, field: &str) -> Result<Vec<(String, f64)>, TruthParseError> {
    let field = field.trim();
    if field.is_empty() || field == NO_PARAMETERS {
        return Ok(Vec::new());
    }
    field
        .split(';')
        .map(|pair| {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                bad_field(
                    line,
                    "parameters",
                    "expected key=value pairs separated by ';'",
                    pair,
                )
            })?;
            let key = key.trim();
            if key.is_empty() {
                return Err(bad_field(
                    line,
                    "parameters",
                    "parameter name must not be empty",
                    pair,
                ));
            }
            let value: f64 = value.trim().parse().map_err(|_| {
                bad_field(line, "parameters", "parameter value must be a number", pair)
            })?;
            Ok((key.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_events() -> Vec<TruthEvent> {
        vec![
            TruthEvent {
                onset_s: 1.0 / 3.0,
                duration_s: 0.0625,
                peak_s: 0.36,
                trial_type: "ripple".into(),
                channel: "all".into(),
                parameters: vec![
                    ("freq_hz".into(), 187.25),
                    ("amplitude_uv".into(), 61.0 / 7.0),
                ],
            },
            TruthEvent {
                onset_s: 30.0,
                duration_s: 30.0,
                peak_s: 30.0,
                trial_type: "sleep_stage".into(),
                channel: "all".into(),
                parameters: vec![],
            },
        ]
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let events = sample_events();
        let text = truth_to_tsv(&events);
        assert!(text.starts_with("onset\tduration\tpeak\ttrial_type\tchannel\tparameters\n"));
        assert!(text.contains("freq_hz=187.25;amplitude_uv="));
        assert_eq!(truth_from_tsv(&text).unwrap(), events);
    }

    #[test]
    fn errors_name_line_and_column() {
        let header = TRUTH_COLUMNS.join("\t");
        assert_eq!(truth_from_tsv(""), Err(TruthParseError::Empty));
        assert!(matches!(
            truth_from_tsv("onset,duration\n"),
            Err(TruthParseError::BadHeader { .. })
        ));
        let short = format!("{header}\n1\t2\tripple\n");
        assert_eq!(
            truth_from_tsv(&short),
            Err(TruthParseError::ColumnCount { line: 2, found: 3 })
        );
        let bad_onset =
            format!("{header}\n1\t0.1\t1.05\tripple\tall\tn/a\nx\t0.1\t1\tripple\tall\tn/a\n");
        let error = truth_from_tsv(&bad_onset).unwrap_err();
        assert!(matches!(
            error,
            TruthParseError::BadField {
                line: 3,
                column: "onset",
                ..
            }
        ));
        assert!(
            error.to_string().contains("line 3, column `onset`"),
            "{error}"
        );
        let bad_parameter = format!("{header}\n1\t0.1\t1.05\tripple\tall\tfreq_hz=fast\n");
        assert!(matches!(
            truth_from_tsv(&bad_parameter),
            Err(TruthParseError::BadField {
                line: 2,
                column: "parameters",
                ..
            })
        ));
        let negative = format!("{header}\n1\t-0.1\t1.05\tripple\tall\tn/a\n");
        assert!(matches!(
            truth_from_tsv(&negative),
            Err(TruthParseError::BadField {
                line: 2,
                column: "duration",
                ..
            })
        ));
    }

    #[test]
    fn text_fields_cannot_break_the_table() {
        let mut events = sample_events();
        events[0].channel = "CA1\t0".into();
        events[0].parameters[0].0 = "a=b;c".into();
        let back = truth_from_tsv(&truth_to_tsv(&events)).unwrap();
        assert_eq!(back[0].channel, "CA1 0");
        assert_eq!(back[0].parameters[0].0, "a b c");
    }
}
