//! EDF, EDF+, BDF (24-bit) and BDF+ reader, and a 16-bit EDF writer.
//!
//! The reader takes the whole file in one read and decodes it with plain
//! loops. "EDF Annotations"/"BDF Annotations" signals are parsed as TALs into
//! [`Recording::annotations`] and not returned as signals. Onsets are seconds
//! from the first sample, so the subsecond start offset that EDF+ keeps in the
//! first record's time-keeping TAL is subtracted (as pyedflib and edfio do).
//!
//! EDF+D (discontinuous) files are read when their records are in fact
//! contiguous (each record's time-keeping onset equals the end of the record
//! before it); a real gap is refused with [`FileError::Discontinuous`], since a
//! [`Recording`] holds gap-free sample streams.
//!
//! The writer produces plain 16-bit EDF (not EDF+): annotations are not written.

use std::path::Path;

use super::{read_whole_file, write_atomically, FileError};
use crate::recording::{Annotation, Recording, Signal};
use crate::time::SampleRate;

/// Bytes of the fixed part of the header, and of each signal's header part.
const HEADER_BLOCK_BYTES: usize = 256;

/// Per-signal header fields: name, width in bytes, offset of the field's block
/// (all signals' values of one field are stored together) within the
/// per-signal part, in units of "signals" (block start = 256 + offset * ns).
struct SignalField {
    name: &'static str,
    width: usize,
    block_offset: usize,
}

const LABEL: SignalField = SignalField {
    name: "label",
    width: 16,
    block_offset: 0,
};
const UNIT: SignalField = SignalField {
    name: "physical dimension",
    width: 8,
    block_offset: 96,
};
const PHYSICAL_MIN: SignalField = SignalField {
    name: "physical minimum",
    width: 8,
    block_offset: 104,
};
const PHYSICAL_MAX: SignalField = SignalField {
    name: "physical maximum",
    width: 8,
    block_offset: 112,
};
const DIGITAL_MIN: SignalField = SignalField {
    name: "digital minimum",
    width: 8,
    block_offset: 120,
};
const DIGITAL_MAX: SignalField = SignalField {
    name: "digital maximum",
    width: 8,
    block_offset: 128,
};
const SAMPLES_PER_RECORD: SignalField = SignalField {
    name: "number of samples in each data record",
    width: 8,
    block_offset: 216,
};

/// TAL separators (EDF+ spec section 2.2.2).
const TAL_ONSET_DURATION: u8 = 0x15;
const TAL_TEXT: u8 = 0x14;

/// Largest gap or overlap (s) between EDF+D records still taken as contiguous:
/// TAL onsets carry at most 100 ns resolution in practice.
const CONTIGUITY_TOLERANCE_S: f64 = 1e-6;

/// Sample width of the file's data records.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SampleWidth {
    /// EDF: 16-bit little-endian two's complement.
    Bits16,
    /// BDF: 24-bit little-endian two's complement.
    Bits24,
}

impl SampleWidth {
    fn bytes(self) -> usize {
        match self {
            SampleWidth::Bits16 => 2,
            SampleWidth::Bits24 => 3,
        }
    }
}

/// One signal's header, validated.
struct SignalHeader {
    label: String,
    unit: String,
    physical_min: f64,
    physical_max: f64,
    digital_min: i64,
    digital_max: i64,
    samples_per_record: usize,
    is_annotation: bool,
    /// `None` for an annotation signal.
    rate: Option<SampleRate>,
}

/// The whole header, validated against the file length.
struct Header {
    width: SampleWidth,
    discontinuous: bool,
    header_bytes: usize,
    record_count: u64,
    record_duration_s: f64,
    signals: Vec<SignalHeader>,
}

/// Read an EDF, EDF+, BDF or BDF+ file into physical values.
pub fn read_edf(path: &Path) -> Result<Recording, FileError> {
    let bytes = read_whole_file(path)?;
    let header = parse_header(path, &bytes)?;
    let record_bytes = record_bytes(&header);
    let mut recording = Recording::default();
    for signal in &header.signals {
        if let Some(rate) = signal.rate {
            recording.signals.push(Signal {
                label: signal.label.clone(),
                unit: signal.unit.clone(),
                rate,
                samples: Vec::with_capacity(
                    signal.samples_per_record * header.record_count as usize,
                ),
            });
        }
    }
    let mut first_record_onset_s = None;
    for record in 0..header.record_count as usize {
        let mut offset = header.header_bytes + record * record_bytes;
        let mut output = recording.signals.iter_mut();
        let mut record_onset_s = None;
        for signal in &header.signals {
            let length = signal.samples_per_record * header.width.bytes();
            let data = &bytes[offset..offset + length];
            if signal.is_annotation {
                let onset = parse_tal_block(
                    path,
                    record as u64,
                    offset as u64,
                    data,
                    &mut recording.annotations,
                )?;
                record_onset_s = record_onset_s.or(onset);
            } else if let Some(out) = output.next() {
                decode_samples(signal, header.width, data, &mut out.samples);
            }
            offset += length;
        }
        let first_onset_s = *first_record_onset_s.get_or_insert(record_onset_s.unwrap_or(0.0));
        if header.discontinuous {
            check_contiguous(path, &header, record, first_onset_s, record_onset_s)?;
        }
    }
    // Onsets are relative to the header start time; shift them to the first sample.
    let start_offset_s = first_record_onset_s.unwrap_or(0.0);
    for annotation in &mut recording.annotations {
        annotation.onset_s -= start_offset_s;
    }
    Ok(recording)
}

fn record_bytes(header: &Header) -> usize {
    header
        .signals
        .iter()
        .map(|s| s.samples_per_record)
        .sum::<usize>()
        * header.width.bytes()
}

/// Physical value of each digital sample:
/// `phys = pmin + (dig - dmin) * (pmax - pmin) / (dmax - dmin)`.
fn decode_samples(signal: &SignalHeader, width: SampleWidth, data: &[u8], out: &mut Vec<f64>) {
    let gain = (signal.physical_max - signal.physical_min)
        / (signal.digital_max - signal.digital_min) as f64;
    let digital_min = signal.digital_min as f64;
    let physical_min = signal.physical_min;
    let scale = |digital: f64| physical_min + (digital - digital_min) * gain;
    match width {
        SampleWidth::Bits16 => out.extend(
            data.chunks_exact(2)
                .map(|pair| scale(f64::from(i16::from_le_bytes([pair[0], pair[1]])))),
        ),
        // Place the 24 bits in the top of an i32 and shift back to sign-extend.
        SampleWidth::Bits24 => out.extend(data.chunks_exact(3).map(|triple| {
            scale(f64::from(
                i32::from_le_bytes([0, triple[0], triple[1], triple[2]]) >> 8,
            ))
        })),
    }
}

fn check_contiguous(
    path: &Path,
    header: &Header,
    record: usize,
    first_onset_s: f64,
    record_onset_s: Option<f64>,
) -> Result<(), FileError> {
    let expected_s = first_onset_s + record as f64 * header.record_duration_s;
    let onset_s = record_onset_s.ok_or_else(|| FileError::BadAnnotation {
        path: path.to_path_buf(),
        record: record as u64,
        offset: (header.header_bytes + record * record_bytes(header)) as u64,
        problem: "EDF+D data record has no time-keeping TAL".into(),
    })?;
    if (onset_s - expected_s).abs() > CONTIGUITY_TOLERANCE_S {
        return Err(FileError::Discontinuous {
            path: path.to_path_buf(),
            record: record as u64,
            onset_s,
            expected_s,
        });
    }
    Ok(())
}

/// Parse the TALs of one annotation signal in one data record, appending every
/// non-empty text as an annotation (onsets relative to the header start time).
/// Returns the onset of the first TAL: the record's time-keeping onset.
fn parse_tal_block(
    path: &Path,
    record: u64,
    block_offset: u64,
    block: &[u8],
    annotations: &mut Vec<Annotation>,
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
        for text in parts.filter(|t| !t.is_empty()) {
            annotations.push(Annotation {
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

fn parse_finite(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Reads the ASCII header fields of one file and reports bad ones by name.
struct HeaderFields<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    signal_count: usize,
}

impl HeaderFields<'_> {
    fn text(&self, offset: usize, width: usize) -> String {
        String::from_utf8_lossy(&self.bytes[offset..offset + width])
            .trim_matches(|c: char| c == ' ' || c == '\0')
            .to_string()
    }

    fn signal_offset(&self, field: &SignalField, signal: usize) -> usize {
        HEADER_BLOCK_BYTES + field.block_offset * self.signal_count + signal * field.width
    }

    fn signal_text(&self, field: &SignalField, signal: usize) -> String {
        self.text(self.signal_offset(field, signal), field.width)
    }

    fn bad_field(
        &self,
        field: &'static str,
        signal: Option<(usize, &str)>,
        offset: usize,
        value: String,
        problem: &'static str,
    ) -> FileError {
        FileError::BadField {
            path: self.path.to_path_buf(),
            field,
            signal: signal
                .map(|(index, label)| format!(" of signal {index} ({label:?})"))
                .unwrap_or_default(),
            offset: offset as u64,
            value,
            problem,
        }
    }

    fn integer(&self, field: &'static str, offset: usize, width: usize) -> Result<i64, FileError> {
        let value = self.text(offset, width);
        value
            .parse::<i64>()
            .map_err(|_| self.bad_field(field, None, offset, value, "not an integer"))
    }

    fn number(&self, field: &'static str, offset: usize, width: usize) -> Result<f64, FileError> {
        let value = self.text(offset, width);
        parse_finite(&value)
            .ok_or_else(|| self.bad_field(field, None, offset, value, "not a number"))
    }

    fn signal_integer(
        &self,
        field: &SignalField,
        signal: usize,
        label: &str,
    ) -> Result<i64, FileError> {
        let offset = self.signal_offset(field, signal);
        let value = self.text(offset, field.width);
        value.parse::<i64>().map_err(|_| {
            self.bad_field(
                field.name,
                Some((signal, label)),
                offset,
                value,
                "not an integer",
            )
        })
    }

    fn signal_number(
        &self,
        field: &SignalField,
        signal: usize,
        label: &str,
    ) -> Result<f64, FileError> {
        let offset = self.signal_offset(field, signal);
        let value = self.text(offset, field.width);
        parse_finite(&value).ok_or_else(|| {
            self.bad_field(
                field.name,
                Some((signal, label)),
                offset,
                value,
                "not a number",
            )
        })
    }
}

fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header, FileError> {
    if bytes.is_empty() {
        return Err(FileError::Empty {
            path: path.to_path_buf(),
        });
    }
    let version = &bytes[..bytes.len().min(8)];
    let width = match version {
        b"0       " => SampleWidth::Bits16,
        b"\xffBIOSEMI" => SampleWidth::Bits24,
        _ => {
            return Err(FileError::NotEdf {
                path: path.to_path_buf(),
                found: String::from_utf8_lossy(version).into_owned(),
            })
        }
    };
    let file_bytes = bytes.len() as u64;
    if bytes.len() < HEADER_BLOCK_BYTES {
        return Err(FileError::TruncatedHeader {
            path: path.to_path_buf(),
            file_bytes,
            needed_bytes: HEADER_BLOCK_BYTES as u64,
        });
    }
    let mut fields = HeaderFields {
        path,
        bytes,
        signal_count: 0,
    };
    let signal_count = fields.integer("number of signals", 252, 4)?;
    let signal_count = usize::try_from(signal_count).map_err(|_| {
        fields.bad_field(
            "number of signals",
            None,
            252,
            signal_count.to_string(),
            "negative",
        )
    })?;
    fields.signal_count = signal_count;
    let header_bytes = fields.integer("number of bytes in header record", 184, 8)?;
    let expected_header_bytes = (HEADER_BLOCK_BYTES * (signal_count + 1)) as u64;
    if header_bytes != expected_header_bytes as i64 {
        return Err(FileError::HeaderSizeMismatch {
            path: path.to_path_buf(),
            header_bytes,
            signal_count,
            expected_bytes: expected_header_bytes,
        });
    }
    let header_bytes = expected_header_bytes as usize;
    if bytes.len() < header_bytes {
        return Err(FileError::TruncatedHeader {
            path: path.to_path_buf(),
            file_bytes,
            needed_bytes: expected_header_bytes,
        });
    }
    let reserved = fields.text(192, 44);
    let discontinuous = reserved.starts_with("EDF+D") || reserved.starts_with("BDF+D");
    let record_duration_s = fields.number("duration of a data record", 244, 8)?;
    if record_duration_s < 0.0 {
        return Err(fields.bad_field(
            "duration of a data record",
            None,
            244,
            fields.text(244, 8),
            "a record duration cannot be negative",
        ));
    }

    let mut signals = Vec::with_capacity(signal_count);
    for index in 0..signal_count {
        let label = fields.signal_text(&LABEL, index);
        let is_annotation = label == "EDF Annotations" || label == "BDF Annotations";
        let samples_per_record = fields.signal_integer(&SAMPLES_PER_RECORD, index, &label)?;
        let samples_per_record = usize::try_from(samples_per_record).map_err(|_| {
            fields.bad_field(
                SAMPLES_PER_RECORD.name,
                Some((index, &label)),
                fields.signal_offset(&SAMPLES_PER_RECORD, index),
                samples_per_record.to_string(),
                "negative",
            )
        })?;
        let mut signal = SignalHeader {
            unit: fields.signal_text(&UNIT, index),
            physical_min: fields.signal_number(&PHYSICAL_MIN, index, &label)?,
            physical_max: fields.signal_number(&PHYSICAL_MAX, index, &label)?,
            digital_min: fields.signal_integer(&DIGITAL_MIN, index, &label)?,
            digital_max: fields.signal_integer(&DIGITAL_MAX, index, &label)?,
            samples_per_record,
            is_annotation,
            rate: None,
            label,
        };
        if !signal.is_annotation {
            if signal.digital_min == signal.digital_max {
                return Err(FileError::DegenerateDigitalRange {
                    path: path.to_path_buf(),
                    signal: index,
                    label: signal.label,
                    digital: signal.digital_min,
                });
            }
            let rate_hz = signal.samples_per_record as f64 / record_duration_s;
            match SampleRate::new(rate_hz) {
                Ok(rate) => signal.rate = Some(rate),
                Err(_) => {
                    return Err(FileError::BadSampleRate {
                        path: path.to_path_buf(),
                        signal: index,
                        label: signal.label,
                        samples_per_record: signal.samples_per_record as u64,
                        record_duration_s,
                    })
                }
            }
        }
        signals.push(signal);
    }

    let mut header = Header {
        width,
        discontinuous,
        header_bytes,
        record_count: 0,
        record_duration_s,
        signals,
    };
    let record_bytes = record_bytes(&header) as u64;
    let data_bytes = file_bytes - expected_header_bytes;
    let records_complete = data_bytes.checked_div(record_bytes).unwrap_or(0);
    let record_count = fields.integer("number of data records", 236, 8)?;
    header.record_count = match record_count {
        // -1: the recorder did not finish the header; the file length tells.
        -1 => records_complete,
        n if n >= 0 => {
            let records_promised = n as u64;
            let expected_bytes = records_promised.saturating_mul(record_bytes);
            if data_bytes < expected_bytes {
                return Err(FileError::TruncatedData {
                    path: path.to_path_buf(),
                    records_promised,
                    records_complete,
                    expected_bytes: expected_header_bytes.saturating_add(expected_bytes),
                    file_bytes,
                });
            }
            records_promised
        }
        n => {
            return Err(fields.bad_field(
                "number of data records",
                None,
                236,
                n.to_string(),
                "negative (only -1, unknown, is allowed)",
            ))
        }
    };
    Ok(header)
}

/// Digital range of the 16-bit EDF the writer produces.
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
    let cannot_write = |problem: String| FileError::CannotWrite {
        path: path.to_path_buf(),
        problem,
    };
    if recording.signals.is_empty() {
        return Err(cannot_write("the recording has no signals".into()));
    }
    for signal in &recording.signals {
        if let Some(index) = signal.samples.iter().position(|x| !x.is_finite()) {
            return Err(cannot_write(format!(
                "signal {:?} has a non-finite sample at index {index}",
                signal.label
            )));
        }
    }
    let layout = choose_record_layout(recording).map_err(cannot_write)?;
    let ranges = recording
        .signals
        .iter()
        .map(|signal| {
            physical_range(&signal.samples).ok_or_else(|| {
                cannot_write(format!(
                    "the physical range of signal {:?} does not fit the 8-character header field",
                    signal.label
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = encode_edf(recording, &layout, &ranges);
    write_atomically(path, &bytes)
}

fn choose_record_layout(recording: &Recording) -> Result<RecordLayout, String> {
    let mut length_problem = None;
    for duration_text in RECORD_DURATIONS_S {
        let duration_s: f64 = duration_text
            .parse()
            .expect("RECORD_DURATIONS_S holds decimal numbers");
        let samples_per_record: Option<Vec<usize>> = recording
            .signals
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
        let first = &recording.signals[0];
        let record_count = first.samples.len() / samples_per_record[0];
        let mismatch = recording
            .signals
            .iter()
            .zip(&samples_per_record)
            .find(|(signal, &per_record)| signal.samples.len() != record_count * per_record);
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
                    signal.label, signal.samples.len(), first.label, first.samples.len()
                ));
            }
        }
    }
    Err(length_problem.unwrap_or_else(|| {
        let rates: Vec<String> = recording.signals.iter().map(|s| s.rate.to_string()).collect();
        format!(
            "no record duration from 0.001 s to 60 s holds a whole number of samples of every signal (rates {})",
            rates.join(", ")
        )
    }))
}

/// The data range, widened outward to values that 8 characters can hold.
fn physical_range(samples: &[f64]) -> Option<PhysicalRange> {
    let data_min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let data_max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (low, high) = if samples.is_empty() {
        (-1.0, 1.0)
    } else if data_min == data_max {
        // A constant signal still needs a non-degenerate range to scale by.
        (data_min - 1.0, data_max + 1.0)
    } else {
        (data_min, data_max)
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

fn encode_edf(recording: &Recording, layout: &RecordLayout, ranges: &[PhysicalRange]) -> Vec<u8> {
    let signal_count = recording.signals.len();
    let header_bytes = HEADER_BLOCK_BYTES * (signal_count + 1);
    let total_samples: usize = recording.signals.iter().map(|s| s.samples.len()).sum();
    let mut bytes = Vec::with_capacity(header_bytes + 2 * total_samples);
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
    let signals = &recording.signals;
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

    let digital_span = f64::from(WRITE_DIGITAL_MAX - WRITE_DIGITAL_MIN);
    for record in 0..layout.record_count {
        for ((signal, range), &per_record) in
            signals.iter().zip(ranges).zip(&layout.samples_per_record)
        {
            let steps_per_unit = digital_span / (range.max - range.min);
            for &value in &signal.samples[record * per_record..(record + 1) * per_record] {
                let digital = (f64::from(WRITE_DIGITAL_MIN) + (value - range.min) * steps_per_unit)
                    .round()
                    .clamp(f64::from(WRITE_DIGITAL_MIN), f64::from(WRITE_DIGITAL_MAX));
                bytes.extend_from_slice(&(digital as i16).to_le_bytes());
            }
        }
    }
    bytes
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
