//! The session folder every `run` and `replay` writes:
//! - `events.tsv`: detections and trigger decisions, BIDS-events style, sorted
//!   by onset (the format `EVALUATION.md` specifies);
//! - `summary.json`: status, counts, rates, counters, settings and versions;
//! - `config.toml`: the exact configuration used.
//!
//! While a session runs, events are appended (and flushed per block) to
//! `events.partial.tsv`, so nothing is lost if the process dies. Only a session
//! that ends cleanly gets `events.tsv`; a failed one keeps the partial file and
//! a summary whose status is `error`, so it never looks complete.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{write_atomically, FileError};
use crate::event::Event;
use crate::time::SampleRate;

pub const EVENTS_HEADER: &str =
    "onset\tduration\ttrial_type\tsample\tchannel\tpeak\tdetected_at\tdecided_at\ttarget_phase_deg\tdevice_time";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("output folder {path} already holds a session ({found}); choose another --out")]
    Exists { path: PathBuf, found: &'static str },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] FileError),
}

/// One row of `events.tsv`, kept so the final file can be sorted by onset.
struct Row {
    onset: u64,
    line: String,
}

pub struct SessionWriter {
    dir: PathBuf,
    rate: SampleRate,
    labels: Vec<String>,
    partial: BufWriter<File>,
    rows: Vec<Row>,
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> SessionError + '_ {
    move |source| SessionError::Write {
        path: path.to_path_buf(),
        source,
    }
}

impl SessionWriter {
    /// Create (or reuse an empty) folder and write the config. Refuses a folder
    /// that already holds a session, so no earlier record is overwritten.
    pub fn create(
        dir: &Path,
        rate: SampleRate,
        labels: Vec<String>,
        config_toml: &str,
    ) -> Result<Self, SessionError> {
        for found in ["events.tsv", "events.partial.tsv", "summary.json"] {
            if dir.join(found).exists() {
                return Err(SessionError::Exists {
                    path: dir.to_path_buf(),
                    found,
                });
            }
        }
        fs::create_dir_all(dir).map_err(write_err(dir))?;
        write_atomically(&dir.join("config.toml"), config_toml.as_bytes())?;
        let partial_path = dir.join("events.partial.tsv");
        let file = File::create(&partial_path).map_err(write_err(&partial_path))?;
        let mut partial = BufWriter::new(file);
        writeln!(partial, "{EVENTS_HEADER}").map_err(write_err(&partial_path))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            rate,
            labels,
            partial,
            rows: Vec::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn seconds(&self, sample: u64) -> String {
        format!("{:.6}", self.rate.seconds(sample))
    }

    fn label(&self, channel: usize) -> &str {
        self.labels.get(channel).map_or("n/a", String::as_str)
    }

    fn format(&self, event: &Event) -> Row {
        let na = || "n/a".to_string();
        let phase = |p: Option<f64>| p.map_or_else(na, |p| format!("{p:.1}"));
        let line = match event {
            Event::Detection(d) => format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\tn/a\t{}\tn/a",
                self.seconds(d.onset),
                self.seconds(d.end - d.onset),
                d.kind.trial_type(),
                d.onset,
                self.label(d.channel),
                self.seconds(d.peak),
                if d.committed {
                    self.seconds(d.detected_at)
                } else {
                    na()
                },
                phase(d.target_phase_deg),
            ),
            Event::Trigger(t) => format!(
                "{}\t{}\t{}\t{}\t{}\tn/a\tn/a\t{}\t{}\tn/a",
                self.seconds(t.onset),
                self.seconds(t.duration),
                t.trial_type(),
                t.onset,
                self.label(t.channel),
                self.seconds(t.decided_at),
                phase(t.target_phase_deg),
            ),
        };
        let onset = match event {
            Event::Detection(d) => d.onset,
            Event::Trigger(t) => t.onset,
        };
        Row { onset, line }
    }

    /// Append events (in decision order) to the partial log.
    pub fn write_events(&mut self, events: &[Event]) -> Result<(), SessionError> {
        for event in events {
            let row = self.format(event);
            writeln!(self.partial, "{}", row.line)
                .map_err(write_err(&self.dir.join("events.partial.tsv")))?;
            self.rows.push(row);
        }
        Ok(())
    }

    /// Push buffered rows to the OS (once per block in live sessions).
    pub fn flush(&mut self) -> Result<(), SessionError> {
        self.partial
            .flush()
            .map_err(write_err(&self.dir.join("events.partial.tsv")))
    }

    /// A clean end: `events.tsv` sorted by onset, then `summary.json`, then the
    /// partial log is removed.
    pub fn finish(mut self, summary: &serde_json::Value) -> Result<PathBuf, SessionError> {
        self.flush()?;
        self.rows.sort_by_key(|r| r.onset);
        let mut text = String::with_capacity(EVENTS_HEADER.len() + 100 * self.rows.len());
        text.push_str(EVENTS_HEADER);
        text.push('\n');
        for row in &self.rows {
            text.push_str(&row.line);
            text.push('\n');
        }
        write_atomically(&self.dir.join("events.tsv"), text.as_bytes())?;
        self.write_summary(summary)?;
        let partial = self.dir.join("events.partial.tsv");
        fs::remove_file(&partial).map_err(write_err(&partial))?;
        Ok(self.dir)
    }

    /// A failed session: keep `events.partial.tsv`, write the summary (whose
    /// status says `error`), write no `events.tsv`.
    pub fn abandon(mut self, summary: &serde_json::Value) -> Result<PathBuf, SessionError> {
        self.flush()?;
        self.write_summary(summary)?;
        Ok(self.dir)
    }

    fn write_summary(&self, summary: &serde_json::Value) -> Result<(), SessionError> {
        let text = serde_json::to_string_pretty(summary).expect("JSON value serialises");
        Ok(write_atomically(
            &self.dir.join("summary.json"),
            text.as_bytes(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detection, EventKind, TriggerDecision};

    fn events() -> Vec<Event> {
        let detection = Detection {
            kind: EventKind::Ripple,
            channel: 1,
            onset: 1000,
            end: 1050,
            peak: 1020,
            detected_at: 1012,
            committed: true,
            stim_target: None,
            target_phase_deg: None,
        };
        let stim = TriggerDecision {
            delivered: true,
            channel: 1,
            onset: 1012,
            duration: 1,
            decided_at: 1012,
            target_phase_deg: Some(0.0),
        };
        vec![Event::Trigger(stim), Event::Detection(detection)]
    }

    #[test]
    fn clean_session_writes_sorted_events_summary_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s");
        let rate = SampleRate::new(1000.0).unwrap();
        let mut w =
            SessionWriter::create(&out, rate, vec!["a".into(), "b".into()], "x = 1\n").unwrap();
        w.write_events(&events()).unwrap();
        w.finish(&serde_json::json!({"status": "complete"}))
            .unwrap();
        let tsv = fs::read_to_string(out.join("events.tsv")).unwrap();
        let lines: Vec<&str> = tsv.lines().collect();
        assert_eq!(lines[0], EVENTS_HEADER);
        assert_eq!(
            lines[1],
            "1.000000\t0.050000\tripple\t1000\tb\t1.020000\t1.012000\tn/a\tn/a\tn/a"
        );
        assert_eq!(
            lines[2],
            "1.012000\t0.001000\tstim\t1012\tb\tn/a\tn/a\t1.012000\t0.0\tn/a"
        );
        assert!(out.join("summary.json").exists() && out.join("config.toml").exists());
        assert!(!out.join("events.partial.tsv").exists());
        // A second session into the same folder is refused: nothing is overwritten.
        let again = SessionWriter::create(&out, rate, vec![], "");
        assert!(matches!(again, Err(SessionError::Exists { .. })));
    }

    #[test]
    fn abandoned_session_keeps_partial_log_and_no_events_tsv() {
        let dir = tempfile::tempdir().unwrap();
        let rate = SampleRate::new(1000.0).unwrap();
        let mut w = SessionWriter::create(dir.path(), rate, vec!["a".into()], "").unwrap();
        w.write_events(&events()).unwrap();
        w.abandon(&serde_json::json!({"status": "error"})).unwrap();
        assert!(!dir.path().join("events.tsv").exists());
        let partial = fs::read_to_string(dir.path().join("events.partial.tsv")).unwrap();
        assert_eq!(partial.lines().count(), 3);
    }
}
