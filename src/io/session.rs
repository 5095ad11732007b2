//! The session folder every `run` and `replay` writes:
//! - `events.tsv`: detections and trigger decisions, BIDS-events style, sorted
//!   by onset (the format `EVALUATION.md` specifies);
//! - `summary.json`: status, counts, rates, counters, settings and versions;
//! - `config.toml`: the exact configuration used.
//!
//! While a session runs, events are appended to `events.partial.tsv` (its
//! header is on disk before the first sample is processed), so nothing is lost
//! if the process dies. Only a session that ends cleanly gets `events.tsv`; a
//! failed one keeps the partial file and a summary whose status is `error`, so
//! it never looks complete.
//!
//! A full disk must not cost the summary: the folder holds a 1-MiB reserve
//! file (`.reserve`) from the start, released just before the session's last
//! files are written.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{write_atomically, FileError};
use crate::event::Event;
use crate::time::SampleRate;

pub const EVENTS_HEADER: &str =
    "onset\tduration\ttrial_type\tsample\tchannel\tpeak\tdetected_at\tdecided_at\ttarget_phase_deg\tdevice_time";

/// Files a session writes; a folder holding any of them is refused, so nothing
/// (a session's record, or the user's own `config.toml`) is ever overwritten.
pub const SESSION_FILES: [&str; 7] = [
    "config.toml",
    "events.tsv",
    "events.partial.tsv",
    "summary.json",
    "latency.tsv",
    "recording.bdf",
    crate::logging::LOG_FILE,
];

/// Space kept free for the last files of a session (`summary.json`,
/// `latency.tsv`, `events.tsv`) in case the disk fills up while it runs.
const RESERVE_BYTES: usize = 1 << 20;
const RESERVE_FILE: &str = ".reserve";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "output folder {path} already holds {found}; choose another --out (nothing is overwritten)"
    )]
    Exists { path: PathBuf, found: &'static str },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not enough free space to start a session (the 1-MiB reserve for its summary cannot be written: {error})")]
    NoRoom {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] FileError),
}

/// One row of `events.tsv`, kept so the final file can be sorted by onset.
struct Row {
    onset: u64,
    line: String,
}

/// Rows are handed to the OS once this much text is pending, at the latest.
const PENDING_BYTES: usize = 1 << 16;

pub struct SessionWriter {
    dir: PathBuf,
    rate: SampleRate,
    labels: Vec<String>,
    partial: File,
    /// Rows formatted but not yet written, and their text.
    pending: Vec<Row>,
    pending_text: String,
    /// Bytes of `events.partial.tsv` known to be written whole.
    committed_bytes: u64,
    /// Rows written whole.
    rows: Vec<Row>,
    /// The first write error; the log takes no more rows after one.
    failed: Option<String>,
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> SessionError + '_ {
    move |error| SessionError::Write {
        path: path.to_path_buf(),
        error,
    }
}

/// A TSV field: tabs, line breaks and backslashes in a channel label are
/// written as `\t`, `\n`, `\r`, `\\` so a row always has its ten fields.
fn tsv_field(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

impl SessionWriter {
    /// Create (or reuse an empty) folder, write the config, the reserve and the
    /// header of the partial log. Refuses a folder that already holds any
    /// session file, so no earlier record is overwritten.
    pub fn create(
        dir: &Path,
        rate: SampleRate,
        labels: Vec<String>,
        config_toml: &str,
    ) -> Result<Self, SessionError> {
        for found in SESSION_FILES {
            if dir.join(found).exists() {
                return Err(SessionError::Exists {
                    path: dir.to_path_buf(),
                    found,
                });
            }
        }
        fs::create_dir_all(dir).map_err(write_err(dir))?;
        let reserve = dir.join(RESERVE_FILE);
        fs::write(&reserve, vec![0u8; RESERVE_BYTES])
            .and_then(|()| File::open(&reserve)?.sync_all())
            .map_err(|error| {
                let _ = fs::remove_file(&reserve);
                SessionError::NoRoom {
                    path: dir.to_path_buf(),
                    error,
                }
            })?;
        crate::logging::attach_session_log(dir).map_err(write_err(dir))?;
        write_atomically(&dir.join("config.toml"), config_toml.as_bytes())?;
        let partial_path = dir.join("events.partial.tsv");
        let mut partial = File::create(&partial_path).map_err(write_err(&partial_path))?;
        let header = format!("{EVENTS_HEADER}\n");
        partial
            .write_all(header.as_bytes())
            .map_err(write_err(&partial_path))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            rate,
            labels: labels.iter().map(|l| tsv_field(l)).collect(),
            partial,
            pending: Vec::new(),
            pending_text: String::new(),
            committed_bytes: header.len() as u64,
            rows: Vec::new(),
            failed: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rows written whole to the partial log so far.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    fn partial_path(&self) -> PathBuf {
        self.dir.join("events.partial.tsv")
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

    /// Append events (in decision order) to the partial log. Rows are handed
    /// to the OS by `flush`, or once enough are pending.
    pub fn write_events<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<(), SessionError> {
        for event in events {
            let row = self.format(event);
            self.pending_text.push_str(&row.line);
            self.pending_text.push('\n');
            self.pending.push(row);
        }
        if self.pending_text.len() >= PENDING_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Hand pending rows to the OS. Live sessions call it before a trigger is
    /// released to the outputs: a row that cannot be written stops the
    /// stimulus it describes. On failure the file is cut back to its last
    /// whole row (truncating needs no free space) and takes no more rows.
    pub fn flush(&mut self) -> Result<(), SessionError> {
        if let Some(error) = &self.failed {
            return Err(SessionError::Write {
                path: self.partial_path(),
                error: std::io::Error::other(error.clone()),
            });
        }
        if self.pending_text.is_empty() {
            return Ok(());
        }
        match self.partial.write_all(self.pending_text.as_bytes()) {
            Ok(()) => {
                self.committed_bytes += self.pending_text.len() as u64;
                self.pending_text.clear();
                self.rows.append(&mut self.pending);
                Ok(())
            }
            Err(error) => {
                let _ = self.partial.set_len(self.committed_bytes);
                self.pending_text.clear();
                self.pending.clear();
                self.failed = Some(error.to_string());
                Err(SessionError::Write {
                    path: self.partial_path(),
                    error,
                })
            }
        }
    }

    /// Give the reserved space back, for the session's last files.
    pub fn release_reserve(&self) {
        let _ = fs::remove_file(self.dir.join(RESERVE_FILE));
    }

    /// A clean end: `events.tsv` sorted by onset is written under a temporary
    /// name, then `summary.json`, and only then is `events.tsv` given its name
    /// and the partial log removed, so a folder with `events.tsv` always has
    /// the summary that says it is complete. If anything fails, the session
    /// is left as an abandoned one (partial log, no `events.tsv`).
    pub fn finish(mut self, summary: &impl serde::Serialize) -> Result<PathBuf, SessionError> {
        self.release_reserve();
        self.flush()?;
        self.rows.sort_by_key(|r| r.onset);
        let mut text = String::with_capacity(EVENTS_HEADER.len() + 100 * self.rows.len());
        text.push_str(EVENTS_HEADER);
        text.push('\n');
        for row in &self.rows {
            text.push_str(&row.line);
            text.push('\n');
        }
        let events = self.dir.join("events.tsv");
        let pending = self.dir.join(".events.tsv.pending");
        let written = write_atomically(&pending, text.as_bytes())
            .map_err(SessionError::from)
            .and_then(|()| self.write_summary(summary));
        if let Err(e) = written {
            let _ = fs::remove_file(&pending);
            return Err(e);
        }
        fs::rename(&pending, &events).map_err(write_err(&events))?;
        let partial = self.partial_path();
        fs::remove_file(&partial).map_err(write_err(&partial))?;
        Ok(self.dir)
    }

    /// A failed session: keep `events.partial.tsv`, write the summary (whose
    /// status says `error`), write no `events.tsv`.
    pub fn abandon(mut self, summary: &impl serde::Serialize) -> Result<PathBuf, SessionError> {
        self.release_reserve();
        // The log may be what failed; the summary is still worth writing.
        let flushed = if self.failed.is_some() {
            Ok(())
        } else {
            self.flush()
        };
        self.write_summary(summary)?;
        flushed.map(|()| self.dir)
    }

    fn write_summary(&self, summary: &impl serde::Serialize) -> Result<(), SessionError> {
        let text = serde_json::to_string_pretty(summary).expect("the summary serialises");
        Ok(write_atomically(
            &self.dir.join("summary.json"),
            text.as_bytes(),
        )?)
    }
}

/// How a replay's decisions compare with the session it replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionComparison {
    pub live_rows: usize,
    pub replay_rows: usize,
    /// Rows equal from the first, in onset order.
    pub identical: usize,
    /// The first rows that differ (live, replay), `None` if all agree.
    pub first_difference: Option<(String, String)>,
}

/// Compare two event logs (`events.tsv`, or `events.partial.tsv` of a
/// session that failed) on every column but `device_time`, which only the
/// live session knows. A partial log is in decision order: both logs are put
/// in onset order the way `finish` does (a stable sort on the sample column).
pub fn compare_decisions(live: &Path, replay: &Path) -> Result<DecisionComparison, SessionError> {
    let rows = |path: &Path| -> Result<Vec<String>, SessionError> {
        let text = fs::read_to_string(path).map_err(write_err(path))?;
        let mut rows: Vec<(u64, String)> = text
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                let sample = fields
                    .get(3)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                let decisions = fields.get(..9).unwrap_or(&fields).join("\t");
                (sample, decisions)
            })
            .collect();
        rows.sort_by_key(|(sample, _)| *sample);
        Ok(rows.into_iter().map(|(_, row)| row).collect())
    };
    let (live, replay) = (rows(live)?, rows(replay)?);
    let identical = live.iter().zip(&replay).take_while(|(a, b)| a == b).count();
    let first_difference = (identical < live.len().max(replay.len())).then(|| {
        let at = |rows: &[String]| {
            rows.get(identical)
                .cloned()
                .unwrap_or_else(|| "(none)".into())
        };
        (at(&live), at(&replay))
    });
    Ok(DecisionComparison {
        live_rows: live.len(),
        replay_rows: replay.len(),
        identical,
        first_difference,
    })
}

/// The event log a session folder holds: `events.tsv`, or the partial log of
/// a session that failed or was cut.
pub fn event_log(dir: &Path) -> Option<PathBuf> {
    ["events.tsv", "events.partial.tsv"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.exists())
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

    /// If `summary.json` cannot be written, the folder must not look complete.
    #[test]
    fn no_events_tsv_without_its_summary() {
        let dir = tempfile::tempdir().unwrap();
        let rate = SampleRate::new(1000.0).unwrap();
        let mut w = SessionWriter::create(dir.path(), rate, vec!["a".into()], "").unwrap();
        w.write_events(&events()).unwrap();
        // A directory where the summary goes: the rename over it fails.
        fs::create_dir(dir.path().join("summary.json")).unwrap();
        fs::write(dir.path().join("summary.json").join("x"), "").unwrap();
        assert!(w
            .finish(&serde_json::json!({"status": "complete"}))
            .is_err());
        assert!(!dir.path().join("events.tsv").exists());
        assert!(!dir.path().join(".events.tsv.pending").exists());
        let partial = fs::read_to_string(dir.path().join("events.partial.tsv")).unwrap();
        assert_eq!(partial.lines().count(), 3);
    }

    #[test]
    fn labels_cannot_break_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let rate = SampleRate::new(1000.0).unwrap();
        let labels = vec!["a".into(), "C3\tA1\nx\\".into()];
        let mut w = SessionWriter::create(dir.path(), rate, labels, "").unwrap();
        w.write_events(&events()).unwrap();
        w.flush().unwrap();
        let partial = fs::read_to_string(dir.path().join("events.partial.tsv")).unwrap();
        let rows: Vec<&str> = partial.lines().collect();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.split('\t').count() == 10));
        assert_eq!(rows[1].split('\t').nth(4), Some("C3\\tA1\\nx\\\\"));
    }

    /// The header is on disk as soon as the session starts: a process killed
    /// before its first event leaves a readable, empty log.
    #[test]
    fn the_header_is_written_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        let rate = SampleRate::new(1000.0).unwrap();
        let _w = SessionWriter::create(dir.path(), rate, vec![], "").unwrap();
        let partial = fs::read_to_string(dir.path().join("events.partial.tsv")).unwrap();
        assert_eq!(partial, format!("{EVENTS_HEADER}\n"));
        assert!(dir.path().join(".reserve").exists());
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
