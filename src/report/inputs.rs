//! What a report reads: a session folder (`events.tsv` or, for a session
//! that died, `events.partial.tsv`; `summary.json`; `latency.tsv`) or an
//! `events.tsv` given alone, the recording the session saw, and truth. Bad
//! rows and missing files are noted and skipped, never fatal.

use std::path::{Path, PathBuf};

use crate::eval::tables::{self, EventRow, TruthRow};

use super::Notes;

/// Trial types a session writes (`event::EventKind` names plus trigger kinds).
pub const KNOWN_TRIAL_TYPES: [&str; 11] = [
    "ripple",
    "spindle",
    "spindle_dropped",
    "spindle_commit",
    "slow_oscillation",
    "latency_probe",
    "latency_probe_lost",
    "gate_closed",
    "vetoed",
    "stim",
    "sham",
];

pub struct Session {
    pub dir: PathBuf,
    pub events_path: PathBuf,
    pub events: Vec<EventRow>,
    pub summary: Option<serde_json::Value>,
    /// The recording the session processed, if one could be found.
    pub recording: Option<PathBuf>,
    /// `arrival_to_command_us` of every trigger of a live session.
    pub trigger_latency_us: Vec<f64>,
}

impl Session {
    /// A number from `summary.json` at a `/`-separated JSON pointer.
    pub fn summary_number(&self, pointer: &str) -> Option<f64> {
        self.summary.as_ref()?.pointer(pointer)?.as_f64()
    }

    /// The detector's band from the session's settings, if it has one.
    pub fn detector_band_hz(&self) -> Option<(f64, f64)> {
        Some((
            self.summary_number("/settings/detector/band_low_hz")?,
            self.summary_number("/settings/detector/band_high_hz")?,
        ))
    }

    pub fn rows(&self, trial_type: &str) -> impl Iterator<Item = &EventRow> + '_ {
        let trial_type = trial_type.to_string();
        self.events
            .iter()
            .filter(move |e| e.trial_type == trial_type)
    }
}

/// Read what there is of the session at `path` (a folder or an events file).
pub fn load_session(
    path: &Path,
    recording: Option<&Path>,
    notes: &mut Notes,
) -> Result<Session, String> {
    let (dir, events_path) = if path.is_dir() {
        let complete = path.join("events.tsv");
        let partial = path.join("events.partial.tsv");
        if complete.is_file() {
            (path.to_path_buf(), complete)
        } else if partial.is_file() {
            notes.skip(format!(
                "{}: no events.tsv (the session did not end cleanly): reading events.partial.tsv",
                path.display()
            ));
            (path.to_path_buf(), partial)
        } else {
            return Err(format!(
                "{}: neither events.tsv nor events.partial.tsv in this folder",
                path.display()
            ));
        }
    } else if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir, path.to_path_buf())
    } else {
        return Err(format!(
            "{}: no such session folder or events file",
            path.display()
        ));
    };
    let text = std::fs::read_to_string(&events_path)
        .map_err(|e| format!("cannot read {}: {e}", events_path.display()))?;
    let events = parse_rows(&text, &events_path.display().to_string(), notes)?;
    let summary = read_summary(&dir.join("summary.json"), notes);
    let recording = match recording {
        Some(path) => Some(path.to_path_buf()),
        None => find_recording(&dir, summary.as_ref(), notes),
    };
    let trigger_latency_us = read_trigger_latency(&dir.join("latency.tsv"), notes);
    Ok(Session {
        dir,
        events_path,
        events,
        summary,
        recording,
        trigger_latency_us,
    })
}

/// Parse `events.tsv` row by row with the scorer's own parser, so a broken
/// row or an unknown trial type costs that row only.
fn parse_rows(text: &str, origin: &str, notes: &mut Notes) -> Result<Vec<EventRow>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(format!("{origin}: empty file, no header row"));
    };
    tables::parse_events(header, origin).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let mut unknown: std::collections::BTreeMap<String, usize> = Default::default();
    for (index, line) in lines {
        match tables::parse_events(&format!("{header}\n{line}"), origin) {
            Ok(parsed) => {
                let Some(row) = parsed.into_iter().next() else {
                    continue;
                };
                if KNOWN_TRIAL_TYPES.contains(&row.trial_type.as_str()) {
                    rows.push(row);
                } else {
                    *unknown.entry(row.trial_type).or_default() += 1;
                }
            }
            Err(e) => notes.skip(format!(
                "{origin}, line {}: {} (row skipped)",
                index + 1,
                e.message
            )),
        }
    }
    for (trial_type, count) in unknown {
        notes.skip(format!(
            "{origin}: {count} row(s) of unknown trial_type {trial_type:?} skipped"
        ));
    }
    Ok(rows)
}

fn read_summary(path: &Path, notes: &mut Notes) -> Option<serde_json::Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            notes.skip(format!(
                "cannot read {}: {e} (no settings, counters or session length)",
                path.display()
            ));
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(value) => Some(value),
        Err(e) => {
            notes.skip(format!("{} is not valid JSON: {e}", path.display()));
            None
        }
    }
}

/// A live session's own `recording.bdf`, else the replayed input named in
/// `summary.json` (relative to where replay ran, or to the session folder).
fn find_recording(
    dir: &Path,
    summary: Option<&serde_json::Value>,
    notes: &mut Notes,
) -> Option<PathBuf> {
    let own = dir.join("recording.bdf");
    if own.is_file() {
        return Some(own);
    }
    let input = summary.and_then(|s| s["input"].as_str());
    let candidates: Vec<PathBuf> = input
        .map(|i| vec![PathBuf::from(i), dir.join(i)])
        .unwrap_or_default();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Some(found.clone());
    }
    notes.skip(format!(
        "no recording found for {} (neither recording.bdf nor the input {} named in summary.json): figures of the signal skipped; pass --recording FILE",
        dir.display(),
        input.map_or("(none)".to_string(), |i| format!("{i:?}")),
    ));
    None
}

/// The `arrival_to_command_us` column of `latency.tsv` (`n/a` rows left out).
fn read_trigger_latency(path: &Path, notes: &mut Notes) -> Vec<f64> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    let column = lines
        .next()
        .and_then(|h| h.split('\t').position(|c| c == "arrival_to_command_us"));
    let Some(column) = column else {
        notes.skip(format!(
            "{}: no arrival_to_command_us column: trigger latency skipped",
            path.display()
        ));
        return Vec::new();
    };
    let mut values = Vec::new();
    let mut broken = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        match line.split('\t').nth(column).map(str::parse::<f64>) {
            Some(Ok(v)) if v.is_finite() => values.push(v),
            Some(_) if line.split('\t').nth(column) == Some("n/a") => {}
            _ => broken += 1,
        }
    }
    if broken > 0 {
        notes.skip(format!(
            "{}: {broken} row(s) without a readable arrival_to_command_us skipped",
            path.display()
        ));
    }
    values
}

/// Truth rows (simulator `truth.tsv` or DREAMS scoring), or `None` with a note.
pub fn load_truth(path: &Path, notes: &mut Notes) -> Option<Vec<TruthRow>> {
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|text| {
            tables::parse_truth(&text, &path.display().to_string()).map_err(|e| e.to_string())
        });
    match parsed {
        Ok(rows) => Some(rows),
        Err(e) => {
            notes.skip(format!("{e}: evaluation table skipped"));
            None
        }
    }
}
