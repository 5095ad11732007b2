//! The 16-bit EDF writer (plain EDF, no annotations): whole recordings, or
//! streamed record by record.

use std::path::Path;

use super::HEADER_BLOCK_BYTES;
use crate::io::{write_atomically_with, FileError};
use crate::recording::Recording;
use crate::time::SampleRate;

const WRITE_DIGITAL_MIN: i32 = -32768;
const WRITE_DIGITAL_MAX: i32 = 32767;

/// Record durations the writer tries, most preferred first: 1 s, then shorter
/// ones (which fit more signal lengths), then longer ones for sub-Hz rates.
const RECORD_DURATIONS_S: [&str; 21] = [
    "1", "0.5", "0.25", "0.2", "0.1", "0.05", "0.04", "0.025", "0.02", "0.01", "0.005", "0.004",
    "0.002", "0.001", "2", "4", "5", "10", "20", "30", "60",
];

/// Largest value of an 8-character count field (records, samples per record).
const MAX_COUNT_FIELD: usize = 99_999_999;

/// How the samples are cut into data records.
struct RecordLayout {
    duration_text: &'static str,
    samples_per_record: Vec<usize>,
    record_count: usize,
}

/// One signal's physical range as written (the 8-character texts and the values they parse to).
struct PhysicalRange {
    min_text: String,
    max_text: String,
    min: f64,
    max: f64,
}

/// A signal to write, described before its samples are produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalToWrite {
    pub label: String,
    pub unit: String,
    pub rate: SampleRate,
    /// Samples the signal will have.
    pub samples: usize,
}

/// The extremes of a signal's samples (the EDF header states its physical range
/// before any sample), accumulated block by block.
#[derive(Debug, Clone, PartialEq)]
pub struct DataRange {
    min: f64,
    max: f64,
    samples: usize,
    first_non_finite: Option<usize>,
}

impl Default for DataRange {
    fn default() -> Self {
        Self {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            samples: 0,
            first_non_finite: None,
        }
    }
}

impl DataRange {
    /// The range of `samples`.
    pub fn of(samples: &[f64]) -> Self {
        let mut range = Self::default();
        range.extend(samples);
        range
    }

    /// Take in the signal's next samples.
    pub fn extend(&mut self, samples: &[f64]) {
        if self.first_non_finite.is_none() {
            self.first_non_finite = samples
                .iter()
                .position(|x| !x.is_finite())
                .map(|index| self.samples + index);
        }
        self.min = samples.iter().copied().fold(self.min, f64::min);
        self.max = samples.iter().copied().fold(self.max, f64::max);
        self.samples += samples.len();
    }
}

/// Write `recording` as plain 16-bit EDF (annotations are not written).
///
/// Each signal's physical range is its data range, widened outward to what the
/// 8-character header fields can hold (and by ±1 for a constant signal), so no
/// sample is clipped and samples at the data extremes stay at one digital code.
/// The record duration is the first of 1 s, 0.5 s, ... 0.001 s, 2 s ... 60 s at
/// which every signal has a whole number of samples per record and all signals
/// the same whole number of records. Labels are cut to 16 characters and units
/// to 8 (non-ASCII characters become '?', µ becomes u).
///
/// The file is written under a temporary name in the same folder and renamed
/// at the end, so a failure never leaves a complete-looking partial file.
pub fn write_edf(path: &Path, recording: &Recording) -> Result<(), FileError> {
    let signals: Vec<SignalToWrite> = recording
        .signals
        .iter()
        .map(|signal| SignalToWrite {
            label: signal.label.clone(),
            unit: signal.unit.clone(),
            rate: signal.rate,
            samples: signal.samples.len(),
        })
        .collect();
    let ranges: Vec<DataRange> = recording
        .signals
        .iter()
        .map(|signal| DataRange::of(&signal.samples))
        .collect();
    let mut written = vec![0; signals.len()];
    write_edf_streamed(path, &signals, &ranges, |samples_per_record, record| {
        for (((signal, buffer), &count), done) in recording
            .signals
            .iter()
            .zip(record.iter_mut())
            .zip(samples_per_record)
            .zip(written.iter_mut())
        {
            buffer.clear();
            buffer.extend_from_slice(&signal.samples[*done..*done + count]);
            *done += count;
        }
    })
}

/// Write `signals` as [`write_edf`] does, without holding them: `ranges` are
/// the signals' data ranges (from a first pass over the samples), and
/// `next_record` fills one `Vec` per signal with that signal's next
/// `samples_per_record[s]` samples, once per data record, in order.
/// Samples outside `ranges` are clipped to the digital range.
pub fn write_edf_streamed(
    path: &Path,
    signals: &[SignalToWrite],
    ranges: &[DataRange],
    mut next_record: impl FnMut(&[usize], &mut Vec<Vec<f64>>),
) -> Result<(), FileError> {
    let cannot_write = |problem: String| FileError::CannotWrite {
        path: path.to_path_buf(),
        problem,
    };
    if signals.is_empty() {
        return Err(cannot_write("the recording has no signals".into()));
    }
    for (signal, range) in signals.iter().zip(ranges) {
        if let Some(index) = range.first_non_finite {
            return Err(cannot_write(format!(
                "signal {:?} has a non-finite sample at index {index}",
                signal.label
            )));
        }
    }
    let layout = choose_record_layout(signals).map_err(cannot_write)?;
    let ranges = signals
        .iter()
        .zip(ranges)
        .map(|(signal, range)| {
            physical_range(range).ok_or_else(|| {
                cannot_write(format!(
                    "the physical range of signal {:?} does not fit the 8-character header field",
                    signal.label
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let header = encode_header(signals, &layout, &ranges);
    let record_samples: usize = layout.samples_per_record.iter().sum();
    // Record by record: memory is one record's samples and bytes.
    let mut record = Vec::with_capacity(2 * record_samples);
    let mut samples = vec![Vec::new(); signals.len()];
    write_atomically_with(path, |out| {
        out.write_all(&header)?;
        for index in 0..layout.record_count {
            next_record(&layout.samples_per_record, &mut samples);
            let short = samples
                .iter()
                .zip(&layout.samples_per_record)
                .position(|(signal, &per_record)| signal.len() != per_record);
            if let Some(signal) = short {
                return Err(std::io::Error::other(format!(
                    "record {index} got {} samples of signal {:?} instead of {}",
                    samples[signal].len(),
                    signals[signal].label,
                    layout.samples_per_record[signal]
                )));
            }
            record.clear();
            encode_record(&samples, &ranges, &mut record);
            out.write_all(&record)?;
        }
        Ok(())
    })
}

fn choose_record_layout(signals: &[SignalToWrite]) -> Result<RecordLayout, String> {
    let mut length_problem = None;
    for duration_text in RECORD_DURATIONS_S {
        let duration_s: f64 = duration_text
            .parse()
            .expect("RECORD_DURATIONS_S holds decimal numbers");
        let samples_per_record: Option<Vec<usize>> = signals
            .iter()
            .map(|signal| {
                let exact = signal.rate.hz() * duration_s;
                let whole = exact.round();
                let is_whole = (exact - whole).abs() <= 1e-9 * exact && whole >= 1.0;
                (is_whole && whole <= MAX_COUNT_FIELD as f64).then_some(whole as usize)
            })
            .collect();
        let Some(samples_per_record) = samples_per_record else {
            continue;
        };
        let first = &signals[0];
        let record_count = first.samples / samples_per_record[0];
        let mismatch = signals
            .iter()
            .zip(&samples_per_record)
            .find(|(signal, &per_record)| signal.samples != record_count * per_record);
        match mismatch {
            None if record_count <= MAX_COUNT_FIELD => {
                return Ok(RecordLayout {
                    duration_text,
                    samples_per_record,
                    record_count,
                })
            }
            None => {}
            Some((signal, per_record)) => {
                length_problem.get_or_insert(format!(
                    "signal lengths do not fill whole records at any record duration (at {duration_text} s, signal {:?} has {} samples for {per_record} per record, signal {:?} {} samples)",
                    signal.label, signal.samples, first.label, first.samples
                ));
            }
        }
    }
    Err(length_problem.unwrap_or_else(|| {
        let rates: Vec<String> = signals.iter().map(|s| s.rate.to_string()).collect();
        format!(
            "no record duration from 0.001 s to 60 s holds a whole number of samples of every signal (rates {})",
            rates.join(", ")
        )
    }))
}

/// The data range, widened outward to values that 8 characters can hold.
fn physical_range(data: &DataRange) -> Option<PhysicalRange> {
    let (low, high) = if data.samples == 0 {
        (-1.0, 1.0)
    } else if data.min == data.max {
        // A constant signal still needs a non-degenerate range to scale by.
        (data.min - 1.0, data.max + 1.0)
    } else {
        (data.min, data.max)
    };
    let (min_text, min) = format_bound(low, Rounding::Down, 8)?;
    let (max_text, max) = format_bound(high, Rounding::Up, 8)?;
    Some(PhysicalRange {
        min_text,
        max_text,
        min,
        max,
    })
}

/// Which way [`format_bound`] may move a value.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Rounding {
    Down,
    Up,
}

/// The most precise decimal text of at most `width` characters not above
/// (`Down`) or not below (`Up`) `value`, and the value it parses to.
pub(crate) fn format_bound(value: f64, rounding: Rounding, width: usize) -> Option<(String, f64)> {
    let (round, step): (fn(f64) -> f64, f64) = match rounding {
        Rounding::Down => (f64::floor, -1.0),
        Rounding::Up => (f64::ceil, 1.0),
    };
    for decimals in (0..=7).rev() {
        let scale = 10f64.powi(decimals);
        let mut scaled = round(value * scale);
        // The division by `scale` can land on the wrong side of `value`: step once more.
        for _ in 0..2 {
            let text = format!("{:.*}", decimals as usize, scaled / scale);
            let parsed: f64 = text.parse().ok()?;
            let on_correct_side = match rounding {
                Rounding::Down => parsed <= value,
                Rounding::Up => parsed >= value,
            };
            if on_correct_side {
                if text.len() <= width {
                    return Some((text, parsed));
                }
                break;
            }
            scaled += step;
        }
    }
    None
}

fn encode_header(
    signals: &[SignalToWrite],
    layout: &RecordLayout,
    ranges: &[PhysicalRange],
) -> Vec<u8> {
    let signal_count = signals.len();
    let header_bytes = HEADER_BLOCK_BYTES * (signal_count + 1);
    let mut bytes = Vec::with_capacity(header_bytes);
    let mut field = |text: &str, width: usize| push_ascii_field(&mut bytes, text, width);
    field("0", 8);
    field("X", 80); // patient: the recording does not say
    field("neuroloop", 80);
    field("01.01.85", 8); // start date and time are unknown to a Recording
    field("00.00.00", 8);
    field(&header_bytes.to_string(), 8);
    field("", 44); // plain EDF, not EDF+
    field(&layout.record_count.to_string(), 8);
    field(layout.duration_text, 8);
    field(&signal_count.to_string(), 4);
    signals.iter().for_each(|s| field(&s.label, 16));
    signals.iter().for_each(|_| field("", 80)); // transducer type
    signals.iter().for_each(|s| field(&s.unit, 8));
    ranges.iter().for_each(|r| field(&r.min_text, 8));
    ranges.iter().for_each(|r| field(&r.max_text, 8));
    signals
        .iter()
        .for_each(|_| field(&WRITE_DIGITAL_MIN.to_string(), 8));
    signals
        .iter()
        .for_each(|_| field(&WRITE_DIGITAL_MAX.to_string(), 8));
    signals.iter().for_each(|_| field("", 80)); // prefiltering
    layout
        .samples_per_record
        .iter()
        .for_each(|n| field(&n.to_string(), 8));
    signals.iter().for_each(|_| field("", 32));
    bytes
}

/// Append one data record (one slice of samples per signal) as 16-bit digital values.
fn encode_record(samples: &[Vec<f64>], ranges: &[PhysicalRange], bytes: &mut Vec<u8>) {
    let digital_span = f64::from(WRITE_DIGITAL_MAX - WRITE_DIGITAL_MIN);
    for (signal, range) in samples.iter().zip(ranges) {
        let steps_per_unit = digital_span / (range.max - range.min);
        for &value in signal {
            let digital = (f64::from(WRITE_DIGITAL_MIN) + (value - range.min) * steps_per_unit)
                .round()
                .clamp(f64::from(WRITE_DIGITAL_MIN), f64::from(WRITE_DIGITAL_MAX));
            bytes.extend_from_slice(&(digital as i16).to_le_bytes());
        }
    }
}

/// Append `text` as a header field: printable ASCII, cut to `width`, space-padded.
pub(crate) fn push_ascii_field(bytes: &mut Vec<u8>, text: &str, width: usize) {
    let ascii = text.chars().map(|c| match c {
        'µ' | 'μ' => b'u',
        ' '..='~' => c as u8,
        _ => b'?',
    });
    let start = bytes.len();
    bytes.extend(ascii.take(width));
    bytes.resize(start + width, b' ');
}
