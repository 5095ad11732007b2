//! EDF+/BDF+ annotation signals (TALs): one streaming pass over every record
//! for the annotations and, in EDF+D, where each record starts.

use std::fs::File;
use std::path::Path;

use super::{
    parse_finite, Header, SignalHeader, GRID_TOLERANCE_SAMPLES, TAL_ONSET_DURATION, TAL_TEXT,
};
use crate::io::reader::read_exact_at;
use crate::io::FileError;
use crate::recording::Annotation;
use crate::time::{SampleIndex, SampleRate};

/// What the annotation pass found.
pub(super) struct Timing {
    /// Onset (s, from the header's start time) of the first record.
    pub(super) first_onset_s: f64,
    /// Every annotation, onsets from the first sample.
    pub(super) annotations: Vec<Annotation>,
    /// EDF+D gaps between records, and their total length (s, at the first rate).
    pub(super) gaps: u64,
    pub(super) gap_s: f64,
}

/// Read the annotation signals of every record (one read per signal and
/// record), and for EDF+D check that every record starts on the sample grid
/// of every rate without overlapping the one before.
pub(super) fn scan_annotations(
    path: &Path,
    file: &File,
    header: &Header,
) -> Result<Timing, FileError> {
    let mut timing = Timing {
        first_onset_s: 0.0,
        annotations: Vec::new(),
        gaps: 0,
        gap_s: 0.0,
    };
    let annotation_signals: Vec<&SignalHeader> =
        header.signals.iter().filter(|s| s.is_annotation).collect();
    let Some(largest) = annotation_signals
        .iter()
        .map(|s| header.annotation_bytes(s))
        .max()
    else {
        return Ok(timing);
    };
    // Each data rate, its samples per record, and the sample its records reached.
    let mut rates: Vec<(SampleRate, u64, u64)> = Vec::new();
    for signal in &header.signals {
        if let Some(rate) = signal.rate {
            if !rates.iter().any(|(r, _, _)| *r == rate) {
                rates.push((rate, signal.samples_per_record as u64, 0));
            }
        }
    }
    let mut block = vec![0; largest];
    for record in 0..header.record_count {
        let mut record_onset_s = None;
        for signal in &annotation_signals {
            let offset = header.record_offset(record) + signal.offset_in_record;
            let bytes = &mut block[..header.annotation_bytes(signal)];
            read_exact_at(file, path, bytes, offset)?;
            let onset_s =
                parse_tal_block(path, record, offset, bytes, Some(&mut timing.annotations))?;
            record_onset_s = record_onset_s.or(onset_s);
        }
        if record == 0 {
            timing.first_onset_s = record_onset_s.unwrap_or(0.0);
        }
        if !header.discontinuous {
            continue;
        }
        let offset = header.record_offset(record);
        for (index, (rate, per_record, reached)) in rates.iter_mut().enumerate() {
            let start = record_start(
                path,
                record,
                offset,
                record_onset_s,
                timing.first_onset_s,
                *rate,
            )?;
            if start < *reached {
                return Err(FileError::Discontinuous {
                    path: path.to_path_buf(),
                    record,
                    onset_s: record_onset_s.unwrap_or_default(),
                    expected_s: timing.first_onset_s + rate.seconds(*reached),
                });
            }
            if index == 0 && start > *reached {
                timing.gaps += 1;
                timing.gap_s += rate.seconds(start - *reached);
            }
            *reached = start + *per_record;
        }
    }
    // Onsets are relative to the header start time; shift them to the first sample.
    for annotation in &mut timing.annotations {
        annotation.onset_s -= timing.first_onset_s;
    }
    Ok(timing)
}

/// Sample index at `rate` of an EDF+D record that starts at `onset_s` (s from
/// the header start time), the first record starting at `first_onset_s`.
pub(super) fn record_start(
    path: &Path,
    record: u64,
    offset: u64,
    onset_s: Option<f64>,
    first_onset_s: f64,
    rate: SampleRate,
) -> Result<SampleIndex, FileError> {
    let onset_s = onset_s.ok_or_else(|| FileError::BadAnnotation {
        path: path.to_path_buf(),
        record,
        offset,
        problem: "EDF+D data record has no time-keeping TAL".into(),
    })?;
    let position = (onset_s - first_onset_s) * rate.hz();
    let start = position.round();
    if start < 0.0 {
        return Err(FileError::Discontinuous {
            path: path.to_path_buf(),
            record,
            onset_s,
            expected_s: first_onset_s,
        });
    }
    if (position - start).abs() > GRID_TOLERANCE_SAMPLES {
        return Err(FileError::BadAnnotation {
            path: path.to_path_buf(),
            record,
            offset,
            problem: format!(
                "EDF+D record starts at {onset_s} s, between two samples of the {rate} signal(s); records must start on the sample grid"
            ),
        });
    }
    Ok(start as SampleIndex)
}

/// Parse the TALs of one annotation signal in one data record, appending every
/// non-empty text to `annotations` (onsets relative to the header start time;
/// with `None`, only the first TAL is parsed). Returns the onset of the first
/// TAL: the record's time-keeping onset.
pub(super) fn parse_tal_block(
    path: &Path,
    record: u64,
    block_offset: u64,
    block: &[u8],
    mut annotations: Option<&mut Vec<Annotation>>,
) -> Result<Option<f64>, FileError> {
    let mut first_onset = None;
    let mut position = 0;
    while position < block.len() {
        if block[position] == 0 {
            position += 1; // padding after the last TAL
            continue;
        }
        let error = |problem: String| FileError::BadAnnotation {
            path: path.to_path_buf(),
            record,
            offset: block_offset + position as u64,
            problem,
        };
        let end = block[position..]
            .iter()
            .position(|&b| b == 0)
            .map(|length| position + length)
            .ok_or_else(|| error("TAL is not terminated by a 0 byte".into()))?;
        let mut parts = block[position..end].split(|&b| b == TAL_TEXT);
        let timing = parts.next().unwrap_or_default();
        let (onset_s, duration_s) = parse_tal_timing(timing).map_err(error)?;
        first_onset.get_or_insert(onset_s);
        let Some(list) = annotations.as_deref_mut() else {
            break;
        };
        for text in parts.filter(|t| !t.is_empty()) {
            list.push(Annotation {
                onset_s,
                duration_s,
                text: String::from_utf8_lossy(text).into_owned(),
            });
        }
        position = end + 1;
    }
    Ok(first_onset)
}

/// `+onset[0x15 duration]` → seconds.
fn parse_tal_timing(timing: &[u8]) -> Result<(f64, Option<f64>), String> {
    let mut fields = timing.split(|&b| b == TAL_ONSET_DURATION);
    let onset_text = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    if !(onset_text.starts_with('+') || onset_text.starts_with('-')) {
        return Err(format!(
            "TAL onset {onset_text:?} does not start with '+' or '-'"
        ));
    }
    let onset_s = parse_finite(&onset_text)
        .ok_or_else(|| format!("TAL onset {onset_text:?} is not a number"))?;
    let duration_s = match fields.next() {
        None => None,
        Some(bytes) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            match parse_finite(&text) {
                Some(d) if d >= 0.0 => Some(d),
                _ => {
                    return Err(format!(
                        "TAL duration {text:?} is not a non-negative number"
                    ))
                }
            }
        }
    };
    Ok((onset_s, duration_s))
}
