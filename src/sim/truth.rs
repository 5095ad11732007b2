//! Ground-truth events of a simulation and their TSV form.
//!
//! One row per event, tab-separated, with the header
//! `onset duration peak trial_type channel parameters`; times in seconds from
//! the recording start, `parameters` as `key=value;key=value` (`n/a` if none).
//! Numbers are written in Rust's shortest round-trip form, so the times read
//! back (by `eval::tables::parse_truth`) are bit-identical.

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

    /// `text` read back by the scorer's reader gives `events`' times and types exactly.
    fn assert_reads_back(text: &str, events: &[TruthEvent]) {
        let rows = crate::eval::tables::parse_truth(text, "truth.tsv").unwrap();
        assert_eq!(rows.len(), events.len());
        for (row, event) in rows.iter().zip(events) {
            assert_eq!(row.onset_s.to_bits(), event.onset_s.to_bits());
            assert_eq!(row.duration_s.to_bits(), event.duration_s.to_bits());
            assert_eq!(row.peak_s.to_bits(), event.peak_s.to_bits());
            assert_eq!(row.trial_type, event.trial_type);
        }
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let events = sample_events();
        let text = truth_to_tsv(&events);
        assert!(text.starts_with("onset\tduration\tpeak\ttrial_type\tchannel\tparameters\n"));
        assert!(text.contains("\tall\tfreq_hz=187.25;amplitude_uv="));
        assert!(text.ends_with("\tsleep_stage\tall\tn/a\n"));
        assert_reads_back(&text, &events);
    }

    #[test]
    fn text_fields_cannot_break_the_table() {
        let mut events = sample_events();
        events[0].channel = "CA1\t0".into();
        events[0].parameters[0].0 = "a=b;c".into();
        let text = truth_to_tsv(&events);
        assert!(
            text.contains("\tCA1 0\ta b c=187.25;amplitude_uv="),
            "{text}"
        );
        assert_reads_back(&text, &events);
    }
}
