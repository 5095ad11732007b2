//! `neuroloop report`: figures (PNG and SVG) and one self-contained HTML page
//! of what a session did, from its folder (or an `events.tsv` and a
//! recording). Numbers come from the scorer (`eval`), signals from the readers
//! (`io`, streamed: only windows around events and a min/max overview are
//! kept), band-passes from `dsp`'s Butterworth design, run zero-phase because
//! this is display, not the loop. Whatever cannot be drawn is skipped and said
//! so, on stderr and in the page.

mod figures;
mod html;
mod inputs;
mod signal;

use std::path::{Path, PathBuf};

use plotters::style::RGBColor;

use crate::dsp::{butterworth, filter_zero_phase, Band};
use crate::eval::hypnogram::{Hypnogram, Stage};
use crate::eval::{self, phase, EventRow, TruthRow};
use figures::{EventAverage, Figure, Histogram, Lane, MeanSd, Overview, PhaseRose, Timeline};
use inputs::Session;
use signal::{SignalPass, WindowRequest};

pub use inputs::KNOWN_TRIAL_TYPES;

/// What to report on and where.
pub struct Request {
    /// A session folder, or an `events.tsv` file.
    pub session: PathBuf,
    /// Default: `SESSION/report`.
    pub out: Option<PathBuf>,
    pub truth: Option<PathBuf>,
    /// Default: the session's `recording.bdf` or the input its summary names.
    pub recording: Option<PathBuf>,
    /// Sleep stages for the timeline (DREAMS `.txt` or EDF+).
    pub hypnogram: Option<PathBuf>,
}

pub struct Outcome {
    pub page: PathBuf,
    /// The SVG of every figure (a PNG of the same name sits beside each).
    pub figures: Vec<PathBuf>,
    /// What was skipped, and why.
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    NoEvents(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was skipped; each note also goes to the log as a warning.
#[derive(Default)]
pub struct Notes(Vec<String>);

impl Notes {
    pub fn skip(&mut self, note: String) {
        tracing::warn!("report: {note}");
        self.0.push(note);
    }
}

/// Where figures go and what the page and the notes collect.
struct Report {
    out: PathBuf,
    notes: Notes,
    page: html::Page,
    figures: Vec<PathBuf>,
    /// The numbers shown, for `report.json`.
    numbers: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// Save a figure under a page section; a failure is a note, not the end of the report.
    fn emit(&mut self, section: &str, figure: &impl Figure) {
        match figures::save(figure, &self.out) {
            Ok(svg) => {
                self.page.figure(section, &svg);
                self.figures.push(svg);
            }
            Err(e) => self.notes.skip(e),
        }
    }

    /// A table of numbers on the page, also kept under `key` in `report.json`.
    fn table(&mut self, key: &str, heading: &str, value: serde_json::Value) {
        self.page.table(heading, &value);
        self.numbers.insert(key.into(), value);
    }
}

/// The paradigm decides the band, the window and the sleep figures.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Paradigm {
    Ripple,
    Spindle,
    SlowOscillation,
}

impl Paradigm {
    fn of(session: &Session) -> Self {
        let kind = session
            .summary
            .as_ref()
            .and_then(|s| s.pointer("/settings/detector/kind"))
            .and_then(|k| k.as_str());
        let has = |t: &str| session.rows(t).next().is_some();
        match kind {
            Some("slow-oscillation") => Paradigm::SlowOscillation,
            Some("spindle") => Paradigm::Spindle,
            Some("ripple") => Paradigm::Ripple,
            _ if has("slow_oscillation") => Paradigm::SlowOscillation,
            _ if has("spindle") => Paradigm::Spindle,
            _ => Paradigm::Ripple,
        }
    }

    /// Display band (Hz) when the session's settings do not give one.
    fn default_band_hz(self) -> (f64, f64) {
        match self {
            Paradigm::Ripple => (150.0, 250.0),
            Paradigm::Spindle => (11.0, 16.0),
            Paradigm::SlowOscillation => (0.5, 2.0),
        }
    }

    /// Half width of the averaging window, in s.
    fn half_window_s(self) -> f64 {
        match self {
            Paradigm::Ripple => 0.1,
            Paradigm::Spindle => 1.5,
            Paradigm::SlowOscillation => 2.0,
        }
    }
}

/// Detection kinds averaged around their commit, then triggers around their onset.
const DETECTION_TYPES: [&str; 4] = ["ripple", "spindle", "spindle_commit", "slow_oscillation"];
const TRIGGER_TYPES: [&str; 2] = ["stim", "sham"];

pub fn write_report(request: &Request) -> Result<Outcome, ReportError> {
    let mut notes = Notes::default();
    let session = inputs::load_session(&request.session, request.recording.as_deref(), &mut notes)
        .map_err(ReportError::NoEvents)?;
    let out = request
        .out
        .clone()
        .unwrap_or_else(|| session.dir.join("report"));
    std::fs::create_dir_all(&out).map_err(|source| ReportError::Write {
        path: out.clone(),
        source,
    })?;
    let paradigm = Paradigm::of(&session);
    let mut report = Report {
        page: html::Page::new(&session, paradigm_name(paradigm)),
        out,
        notes,
        figures: Vec::new(),
        numbers: serde_json::Map::new(),
    };
    let truth = request
        .truth
        .as_ref()
        .and_then(|path| Some((path.clone(), inputs::load_truth(path, &mut report.notes)?)));
    let pass = averages(&session, paradigm, &mut report);
    if let Some(pass) = &pass {
        if paradigm == Paradigm::SlowOscillation {
            phase_rose(&session, pass, &mut report);
        }
    }
    if paradigm == Paradigm::Ripple {
        stim_offsets(
            &session,
            truth.as_ref().map(|t| t.1.as_slice()),
            &mut report,
        );
    }
    latencies(&session, &mut report);
    let hypnogram =
        request
            .hypnogram
            .as_ref()
            .and_then(|path| match crate::io::read_hypnogram(path) {
                Ok(h) => Some(h),
                Err(e) => {
                    report
                        .notes
                        .skip(format!("{e}: hypnogram left out of the timeline"));
                    None
                }
            });
    timeline(&session, pass.as_ref(), hypnogram.as_ref(), &mut report);
    match truth {
        Some(_) if paradigm == Paradigm::SlowOscillation => report.notes.skip(
            "--truth: a slow-oscillation session is scored by the phase of its stims (above), not by event matching".into(),
        ),
        Some((path, truth)) => evaluation(&session, &path, truth, pass.as_ref(), &mut report),
        None => {}
    }
    report.numbers.insert(
        "skipped".into(),
        serde_json::to_value(&report.notes.0).unwrap_or_default(),
    );
    let json_path = report.out.join("report.json");
    let json = serde_json::to_string_pretty(&report.numbers).unwrap_or_default();
    std::fs::write(&json_path, json).map_err(|source| ReportError::Write {
        path: json_path.clone(),
        source,
    })?;

    let page_path = report.out.join("report.html");
    let text = report.page.finish(&report.notes.0);
    std::fs::write(&page_path, text).map_err(|source| ReportError::Write {
        path: page_path.clone(),
        source,
    })?;
    Ok(Outcome {
        page: page_path,
        figures: report.figures,
        skipped: report.notes.0,
    })
}

/// Event-triggered averages, from one streaming pass over the recording
/// (returned for the other figures): committed detections around their
/// `detected_at`, stims and shams around their onset.
fn averages(session: &Session, paradigm: Paradigm, report: &mut Report) -> Option<SignalPass> {
    // Averages: committed detections around detected_at, triggers around onset.
    let (low_hz, high_hz) = session
        .detector_band_hz()
        .unwrap_or_else(|| paradigm.default_band_hz());
    let display_band = if paradigm == Paradigm::SlowOscillation {
        (0.5, 2.0)
    } else {
        (low_hz, high_hz)
    };
    // Enough signal beyond the window for the zero-phase filter to settle.
    let settle_s = 3.0 / display_band.0;
    let half = paradigm.half_window_s();
    // (kind, whether aligned on the commit, centres): a detection logged
    // without a commit (e.g. `sleep-spindle`'s spindles) is aligned on its onset.
    let mut groups: Vec<(&str, bool, Vec<f64>)> = Vec::new();
    for t in DETECTION_TYPES.iter().chain(&TRIGGER_TYPES) {
        let commits: Vec<f64> = session.rows(t).filter_map(|e| e.detected_at_s).collect();
        let onsets: Vec<f64> = session.rows(t).map(|e| e.onset_s).collect();
        if !commits.is_empty() {
            groups.push((t, true, commits));
        } else if !onsets.is_empty() {
            groups.push((t, false, onsets));
        }
    }
    let requests: Vec<WindowRequest> = groups
        .iter()
        .map(|(_, _, centres)| WindowRequest {
            centres_s: centres.clone(),
            before_s: half + settle_s,
            after_s: half + settle_s,
        })
        .collect();
    let path = session.recording.as_ref()?;
    let source = match signal::SignalSource::open(path) {
        Ok(source) => source,
        Err(e) => {
            report.notes.skip(format!(
                "cannot read the recording ({e}): averages, phases and the signal overview skipped"
            ));
            return None;
        }
    };
    let rate = source.rate();
    let sos = match butterworth(
        4,
        Band::Bandpass {
            low_hz: display_band.0,
            high_hz: display_band.1,
        },
        rate,
    ) {
        Ok(sos) => Some(sos),
        Err(e) => {
            report.notes.skip(format!(
                "band-pass {}–{} Hz at {} Hz: {e}: band-passed averages skipped",
                display_band.0,
                display_band.1,
                rate.hz()
            ));
            None
        }
    };
    let before = rate.samples_in_s(half);
    let settle = (rate.samples_in_s(half + settle_s) - before) as usize;
    let len = 2 * before as usize;
    let mut raw: Vec<MeanSd> = groups.iter().map(|_| MeanSd::new(len)).collect();
    let mut band: Vec<MeanSd> = groups.iter().map(|_| MeanSd::new(len)).collect();
    let mut scratch = Vec::new();
    let pass = source.read(
        &requests,
        paradigm == Paradigm::SlowOscillation,
        |i, window| {
            let cropped = &window[settle..settle + len];
            raw[i].add(cropped);
            if let Some(sos) = &sos {
                scratch.clear();
                scratch.extend_from_slice(window);
                filter_zero_phase(sos, &mut scratch);
                band[i].add(&scratch[settle..settle + len]);
            }
        },
    );
    let pass = match pass {
        Ok(pass) => pass,
        Err(e) => {
            report.notes.skip(format!(
                "cannot read the recording ({e}): averages, phases and the signal overview skipped"
            ));
            return None;
        }
    };
    for notice in &pass.notices {
        report.notes.skip(format!("recording: {notice}"));
    }
    let band_label = format!(
        "{}–{} Hz band-pass (Butterworth order 4, zero-phase: for display only)",
        display_band.0, display_band.1
    );
    for (i, ((kind, on_commit, _), (raw, band))) in
        groups.iter().zip(raw.into_iter().zip(band)).enumerate()
    {
        if pass.incomplete[i] > 0 {
            report.notes.skip(format!(
                "{} {kind} window(s) cut by the recording's ends or a gap left out of its average",
                pass.incomplete[i]
            ));
        }
        if raw.n == 0 {
            continue;
        }
        let band = (sos.is_some()).then(|| (band_label.clone(), band));
        let (scale, unit) = if half < 1.0 {
            (1000.0, "ms")
        } else {
            (1.0, "s")
        };
        let times = (0..len)
            .map(|k| (k as f64 - before as f64) / rate.hz() * scale)
            .collect();
        let title = if paradigm == Paradigm::SlowOscillation && *kind == "stim" {
            format!(
                "Average slow oscillation around stims (n = {}), {}",
                raw.n, pass.label
            )
        } else if DETECTION_TYPES.contains(kind) {
            format!(
                "Average around {kind} detections (n = {}), {}",
                raw.n, pass.label
            )
        } else {
            format!(
                "Average around {kind} onsets (n = {}), {}",
                raw.n, pass.label
            )
        };
        let figure = EventAverage {
            name: format!("average_{kind}"),
            title,
            times,
            time_label: if *on_commit {
                format!("time from the detector's commit, detected_at ({unit})")
            } else {
                format!("time from the {kind} onset ({unit})")
            },
            unit: pass.unit.clone(),
            raw,
            band,
        };
        report
            .numbers
            .entry("averages")
            .or_insert_with(|| serde_json::json!({}))[*kind] =
            serde_json::json!({ "n": figure.raw.n, "incomplete": pass.incomplete[i] });
        report.emit("Event-triggered averages", &figure);
    }
    Some(pass)
}

fn paradigm_name(paradigm: Paradigm) -> &'static str {
    match paradigm {
        Paradigm::Ripple => "ripple",
        Paradigm::Spindle => "spindle",
        Paradigm::SlowOscillation => "slow-oscillation",
    }
}

/// The phases of the stims, exactly as `neuroloop eval --type so-phase` scores them.
fn phase_rose(session: &Session, pass: &SignalPass, report: &mut Report) {
    let Some(whole) = &pass.whole else {
        return;
    };
    let stims: Vec<f64> = session.rows("stim").map(|e| e.onset_s).collect();
    let phases = match phase::phases_at(whole, pass.rate, &stims) {
        Ok(p) => p,
        Err(e) => {
            report.notes.skip(format!(
                "slow-oscillation band-pass: {e}: phase rose skipped"
            ));
            return;
        }
    };
    let Some(score) = phase::score_phases(&phases, 0.0) else {
        report.notes.skip("no stims: phase rose skipped".into());
        return;
    };
    report.table(
        "so_phase",
        "Slow-oscillation phase of the stims (as neuroloop eval --type so-phase)",
        serde_json::to_value(score).unwrap_or_default(),
    );
    let figure = PhaseRose {
        title: format!("Slow-oscillation phase at stim onset, {}", pass.label),
        phases,
        score,
    };
    report.emit("Slow-oscillation phase", &figure);
}

/// Stim onset against the nearest ripple peak: the truth's peaks when given
/// (as `eval` scores them), else the detector's own peaks (`peak` column).
fn stim_offsets(session: &Session, truth: Option<&[TruthRow]>, report: &mut Report) {
    let stims: Vec<EventRow> = session.rows("stim").cloned().collect();
    if stims.is_empty() {
        report
            .notes
            .skip("no delivered stims: stim offset from the ripple peak skipped".into());
        return;
    }
    let (peaks, source): (Vec<f64>, &str) = match truth {
        Some(truth) => (
            truth
                .iter()
                .filter(|t| t.trial_type == "ripple")
                .map(|t| t.peak_s)
                .collect(),
            "the truth",
        ),
        None => (
            session.rows("ripple").filter_map(|e| e.peak_s).collect(),
            "the detector's peak (events.tsv `peak`)",
        ),
    };
    if peaks.is_empty() {
        report
            .notes
            .skip(format!("no ripple peaks in {source}: stim offset skipped"));
        return;
    }
    let offsets = eval::stim_offsets_ms(&stims, &peaks);
    let within = offsets.iter().filter(|o| o.abs() <= 50.0).count();
    let mut markers = vec![
        (
            format!(
                "±50 ms ({:.1} % inside)",
                100.0 * within as f64 / offsets.len() as f64
            ),
            -50.0,
        ),
        (String::new(), 50.0),
    ];
    if let Some(s) = eval::spread(&offsets) {
        markers.push((format!("median {:.1} ms", s.median), s.median));
    }
    report.numbers.insert(
        "stim_offset_ms".into(),
        serde_json::json!({ "peaks_from": source, "spread": eval::spread(&offsets), "within_50ms": within }),
    );
    let figure = Histogram {
        name: "stim_offset".into(),
        title: format!("Stim onset − nearest ripple peak, peak from {source}"),
        x_label: "stim onset − ripple peak (ms; negative: before the peak)".into(),
        values: offsets,
        bins: 40,
        markers,
    };
    report.emit("Stim timing", &figure);
}

fn latencies(session: &Session, report: &mut Report) {
    let median_marker = |values: &[f64]| {
        eval::spread(values)
            .map(|s| vec![(format!("median {:.1} ms", s.median), s.median)])
            .unwrap_or_default()
    };
    for kind in DETECTION_TYPES {
        let values: Vec<f64> = session
            .rows(kind)
            .filter_map(|e| e.detected_at_s.map(|d| (d - e.onset_s) * 1000.0))
            .collect();
        if values.is_empty() {
            continue;
        }
        let figure = Histogram {
            name: format!("detection_latency_{kind}"),
            title: format!("Detection latency of {kind} events: detected_at − onset (the detector's own onset)"),
            x_label: "detected_at − onset (ms)".into(),
            markers: median_marker(&values),
            values,
            bins: 40,
        };
        report.emit("Latencies", &figure);
    }
    let lead: Vec<f64> = TRIGGER_TYPES
        .iter()
        .flat_map(|t| session.rows(t))
        .filter_map(|e| e.decided_at_s.map(|d| (e.onset_s - d) * 1000.0))
        .collect();
    if !lead.is_empty() {
        let figure = Histogram {
            name: "decision_lead".into(),
            title: "Decision to stimulus: onset − decided_at of stims and shams".into(),
            x_label: "onset − decided_at (ms)".into(),
            markers: median_marker(&lead),
            values: lead,
            bins: 40,
        };
        report.emit("Latencies", &figure);
    }
    let live = session
        .summary_number("/latency/block_processing/count")
        .is_some();
    if session.trigger_latency_us.is_empty() {
        if live {
            report.notes.skip(
                "latency.tsv holds no trigger (no output wrote one): trigger latency skipped"
                    .into(),
            );
        }
        return;
    }
    let mut sorted = session.trigger_latency_us.clone();
    sorted.sort_by(f64::total_cmp);
    let from_summary =
        |key: &str| session.summary_number(&format!("/latency/arrival_to_command/{key}"));
    let markers = vec![
        (
            "p50".to_string(),
            from_summary("p50_us").unwrap_or_else(|| eval::nearest_rank(&sorted, 0.5)),
        ),
        (
            "p99".to_string(),
            from_summary("p99_us").unwrap_or_else(|| eval::nearest_rank(&sorted, 0.99)),
        ),
        (
            "max".to_string(),
            from_summary("max_us").unwrap_or(sorted[sorted.len() - 1]),
        ),
    ]
    .into_iter()
    .map(|(label, v)| (format!("{label} {v:.0} µs"), v))
    .collect();
    let figure = Histogram {
        name: "trigger_latency".into(),
        title: "Trigger latency of the live session: sample arrival → command written".into(),
        x_label: "arrival_to_command (µs)".into(),
        values: session.trigger_latency_us.clone(),
        bins: 50,
        markers,
    };
    report.emit("Latencies", &figure);
}

fn timeline(
    session: &Session,
    pass: Option<&SignalPass>,
    hypnogram: Option<&Hypnogram>,
    report: &mut Report,
) {
    let spans = |t: &str| -> Vec<(f64, f64)> {
        session
            .rows(t)
            .map(|e| (e.onset_s, e.onset_s + e.duration_s))
            .collect()
    };
    let colours: [(&str, &str, RGBColor); 8] = [
        ("gate_closed", "gate closed", RGBColor(150, 150, 150)),
        ("vetoed", "vetoed", RGBColor(200, 120, 0)),
        ("ripple", "ripples", RGBColor(0, 90, 200)),
        ("spindle", "spindles", RGBColor(0, 90, 200)),
        (
            "spindle_dropped",
            "dropped spindles",
            RGBColor(120, 160, 220),
        ),
        (
            "slow_oscillation",
            "slow oscillations",
            RGBColor(0, 90, 200),
        ),
        ("stim", "stims", RGBColor(200, 0, 0)),
        ("sham", "shams", RGBColor(120, 0, 160)),
    ];
    // The hypnogram first, one lane per stage (deepest at the bottom).
    let stages = [
        (Stage::Wake, "wake"),
        (Stage::Rem, "REM"),
        (Stage::N1, "N1"),
        (Stage::N2, "N2"),
        (Stage::N3, "N3"),
    ];
    let mut lanes: Vec<Lane> = stages
        .iter()
        .filter_map(|&(stage, label)| {
            let spans: Vec<(f64, f64)> = hypnogram?
                .epochs
                .iter()
                .filter(|e| e.stage == stage)
                .map(|e| (e.onset_s, e.onset_s + e.duration_s))
                .collect();
            Some(Lane {
                label: format!("hypnogram: {label}"),
                spans,
                colour: RGBColor(60, 140, 60),
            })
        })
        .collect();
    lanes.extend(colours.iter().filter_map(|&(t, label, colour)| {
        let spans = spans(t);
        (!spans.is_empty()).then(|| Lane {
            label: format!("{label} ({})", spans.len()),
            spans,
            colour,
        })
    }));
    if let Some(pass) = pass {
        if !pass.gaps.is_empty() {
            lanes.push(Lane {
                label: format!("recording gaps ({})", pass.gaps.len()),
                spans: pass.gaps.clone(),
                colour: RGBColor(0, 0, 0),
            });
        }
    }
    // Only what the session recorded: replay has no acquisition, refusal times are not logged.
    let counted = |items: &[(&str, &str)]| -> Vec<String> {
        items
            .iter()
            .filter_map(|(label, pointer)| {
                session
                    .summary_number(pointer)
                    .map(|v| format!("{label} {v:.0}"))
            })
            .collect()
    };
    let refused = counted(&[
        ("refractory", "/trigger/refused_refractory"),
        ("rate limit", "/trigger/refused_rate_limit"),
        ("gate", "/trigger/refused_gate"),
        ("session cap", "/trigger/refused_session_cap"),
    ]);
    let dropped = counted(&[
        ("acquisition overrun", "/runtime/acquisition_overrun_frames"),
        ("recording gap frames", "/recording/counters/gap_frames"),
    ]);
    let mut footnote = String::new();
    if !refused.is_empty() {
        footnote += &format!(
            "Refused stims (their times are not logged): {}. ",
            refused.join(", ")
        );
    }
    if !dropped.is_empty() {
        footnote += &format!("Dropped frames: {}. ", dropped.join(", "));
    }
    if hypnogram.is_none() {
        footnote += "Hypnogram: none given (--hypnogram).";
    }
    let duration_s = session
        .summary_number("/duration_s")
        .or(pass.map(|p| p.duration_s))
        .unwrap_or_else(|| {
            session
                .events
                .iter()
                .map(|e| e.onset_s + e.duration_s)
                .fold(0.0, f64::max)
        });
    let figure = Timeline {
        title: format!("Session timeline ({:.1} min)", duration_s / 60.0),
        duration_s,
        overview: pass.map(|p| Overview {
            bins: p.overview.clone(),
            label: p.label.clone(),
            unit: p.unit.clone(),
        }),
        lanes,
        footnote,
    };
    report.emit("Timeline", &figure);
}

/// The table `neuroloop eval` prints, from the same scorer.
fn evaluation(
    session: &Session,
    truth_path: &Path,
    mut truth: Vec<TruthRow>,
    pass: Option<&SignalPass>,
    report: &mut Report,
) {
    let Some(duration_s) = session
        .summary_number("/duration_s")
        .or(pass.map(|p| p.duration_s))
    else {
        report.notes.skip(
            "no summary.json and no recording: the session's length is unknown, evaluation table skipped"
                .into(),
        );
        return;
    };
    let before = truth.len();
    truth.retain(|t| t.onset_s < duration_s);
    if truth.len() < before {
        report.notes.skip(format!(
            "{}: {} truth row(s) start after the session's end ({duration_s:.1} s): left out of the evaluation (does the truth belong to this recording?)",
            truth_path.display(),
            before - truth.len()
        ));
    }
    let rules = eval::Rules::for_events(&session.events);
    match eval::score_session(rules, &session.events, &truth, duration_s / 60.0) {
        Ok(score) => report.table(
            "evaluation",
            &format!(
                "Evaluation against {} ({} rules, as neuroloop eval)",
                truth_path.display(),
                rules.name()
            ),
            score,
        ),
        Err(e) => report.notes.skip(format!("evaluation table: {e}")),
    }
}
