//! The EDF/BDF header: every field read by name and checked, scaling and
//! sample rates derived from it.

use std::fs::File;
use std::path::Path;

use super::{
    parse_finite, Header, SampleWidth, SignalField, SignalHeader, DIGITAL_MAX, DIGITAL_MIN,
    HEADER_BLOCK_BYTES, LABEL, MAX_ANNOTATION_BYTES, PHYSICAL_MAX, PHYSICAL_MIN, RECORD_COUNT,
    RECORD_DURATION, SAMPLES_PER_RECORD, UNIT,
};
use crate::io::reader::{read_exact_at, MAX_RATE_HZ};
use crate::io::FileError;
use crate::time::SampleRate;

/// Where a signal's rate comes from: `samples per record / record duration`.
pub(super) fn rate_origin(samples_per_record: usize, duration_text: &str) -> String {
    format!(
        "header fields \"{}\" ({samples_per_record}) and \"{}\" ({duration_text} s)",
        SAMPLES_PER_RECORD.name, RECORD_DURATION.0
    )
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

    fn bad_signal_field(
        &self,
        field: &SignalField,
        signal: usize,
        label: &str,
        problem: &'static str,
    ) -> FileError {
        let offset = self.signal_offset(field, signal);
        self.bad_field(
            field.name,
            Some((signal, label)),
            offset,
            self.text(offset, field.width),
            problem,
        )
    }

    fn integer(
        &self,
        (field, offset, width): (&'static str, usize, usize),
    ) -> Result<i64, FileError> {
        let value = self.text(offset, width);
        value
            .parse::<i64>()
            .map_err(|_| self.bad_field(field, None, offset, value, "not an integer"))
    }

    fn number(
        &self,
        (field, offset, width): (&'static str, usize, usize),
    ) -> Result<f64, FileError> {
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
        let value = self.signal_text(field, signal);
        value
            .parse::<i64>()
            .map_err(|_| self.bad_signal_field(field, signal, label, "not an integer"))
    }

    fn signal_number(
        &self,
        field: &SignalField,
        signal: usize,
        label: &str,
    ) -> Result<f64, FileError> {
        parse_finite(&self.signal_text(field, signal))
            .ok_or_else(|| self.bad_signal_field(field, signal, label, "not a number"))
    }
}

const SIGNAL_COUNT: (&str, usize, usize) = ("number of signals", 252, 4);
const HEADER_SIZE: (&str, usize, usize) = ("number of bytes in header record", 184, 8);

/// Read and check the header (reading only the header's bytes), and say
/// what the file size tells about its data records.
pub(super) fn read_header(
    path: &Path,
    file: &File,
    file_bytes: u64,
) -> Result<(Header, Vec<String>), FileError> {
    if file_bytes == 0 {
        return Err(FileError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = vec![0; file_bytes.min(HEADER_BLOCK_BYTES as u64) as usize];
    read_exact_at(file, path, &mut bytes, 0)?;
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
    if bytes.len() < HEADER_BLOCK_BYTES {
        return Err(FileError::TruncatedHeader {
            path: path.to_path_buf(),
            file_bytes,
            needed_bytes: HEADER_BLOCK_BYTES as u64,
        });
    }
    let fields = HeaderFields {
        path,
        bytes: &bytes,
        signal_count: 0,
    };
    let signal_count = fields.integer(SIGNAL_COUNT)?;
    let signal_count = usize::try_from(signal_count).map_err(|_| {
        fields.bad_field(
            SIGNAL_COUNT.0,
            None,
            SIGNAL_COUNT.1,
            signal_count.to_string(),
            "negative",
        )
    })?;
    if signal_count == 0 {
        return Err(fields.bad_field(
            SIGNAL_COUNT.0,
            None,
            SIGNAL_COUNT.1,
            "0".into(),
            "the file has no signals",
        ));
    }
    let header_bytes = fields.integer(HEADER_SIZE)?;
    let expected_header_bytes = (HEADER_BLOCK_BYTES * (signal_count + 1)) as u64;
    if header_bytes != expected_header_bytes as i64 {
        return Err(FileError::HeaderSizeMismatch {
            path: path.to_path_buf(),
            header_bytes,
            signal_count,
            expected_bytes: expected_header_bytes,
        });
    }
    if file_bytes < expected_header_bytes {
        return Err(FileError::TruncatedHeader {
            path: path.to_path_buf(),
            file_bytes,
            needed_bytes: expected_header_bytes,
        });
    }
    bytes.resize(expected_header_bytes as usize, 0);
    read_exact_at(
        file,
        path,
        &mut bytes[HEADER_BLOCK_BYTES..],
        HEADER_BLOCK_BYTES as u64,
    )?;
    let fields = HeaderFields {
        path,
        bytes: &bytes,
        signal_count,
    };
    let reserved = fields.text(192, 44);
    let plus = ["EDF+C", "EDF+D", "BDF+C", "BDF+D"]
        .iter()
        .any(|p| reserved.starts_with(p));
    let discontinuous = reserved.starts_with("EDF+D") || reserved.starts_with("BDF+D");
    let record_duration_s = fields.number(RECORD_DURATION)?;
    let duration_text = fields.text(RECORD_DURATION.1, RECORD_DURATION.2);
    if record_duration_s < 0.0 {
        return Err(fields.bad_field(
            RECORD_DURATION.0,
            None,
            RECORD_DURATION.1,
            duration_text,
            "a record duration cannot be negative",
        ));
    }

    let mut signals = Vec::with_capacity(signal_count);
    let mut record_bytes = 0u64;
    for index in 0..signal_count {
        let label = fields.signal_text(&LABEL, index);
        let is_annotation = label == "EDF Annotations" || label == "BDF Annotations";
        let samples_per_record = fields.signal_integer(&SAMPLES_PER_RECORD, index, &label)?;
        let samples_per_record = usize::try_from(samples_per_record)
            .map_err(|_| fields.bad_signal_field(&SAMPLES_PER_RECORD, index, &label, "negative"))?;
        let mut signal = SignalHeader {
            unit: fields.signal_text(&UNIT, index),
            physical_min: fields.signal_number(&PHYSICAL_MIN, index, &label)?,
            physical_max: fields.signal_number(&PHYSICAL_MAX, index, &label)?,
            digital_min: fields.signal_integer(&DIGITAL_MIN, index, &label)?,
            digital_max: fields.signal_integer(&DIGITAL_MAX, index, &label)?,
            samples_per_record,
            offset_in_record: record_bytes,
            is_annotation,
            rate: None,
            label,
        };
        record_bytes += (samples_per_record * width.bytes()) as u64;
        if signal.is_annotation {
            if (samples_per_record * width.bytes()) as u64 > MAX_ANNOTATION_BYTES {
                return Err(fields.bad_signal_field(
                    &SAMPLES_PER_RECORD,
                    index,
                    &signal.label,
                    "an annotation signal of more than 1 MiB per record is not read",
                ));
            }
        } else {
            check_scaling(&fields, index, &signal, width)?;
            signal.rate = Some(signal_rate(
                &fields,
                index,
                &signal,
                record_duration_s,
                &duration_text,
            )?);
        }
        signals.push(signal);
    }
    if record_bytes == 0 {
        return Err(fields.bad_signal_field(
            &SAMPLES_PER_RECORD,
            0,
            &signals[0].label,
            "no signal has samples in a data record",
        ));
    }

    let data_bytes = file_bytes - expected_header_bytes;
    let records_complete = data_bytes / record_bytes;
    let leftover = data_bytes % record_bytes;
    let mut notices = Vec::new();
    let record_count = match fields.integer(RECORD_COUNT)? {
        // -1: the recorder did not finish the header; the file length tells.
        -1 => {
            if leftover > 0 {
                notices.push(format!(
                    "{}: the header leaves the number of data records open (-1) and the last record is incomplete ({leftover} of {record_bytes} bytes): its samples are not read",
                    path.display()
                ));
            }
            records_complete
        }
        n if n >= 0 => {
            let declared = n as u64;
            if declared > records_complete {
                return Err(FileError::TruncatedData {
                    path: path.to_path_buf(),
                    records_promised: declared,
                    records_complete,
                    expected_bytes: expected_header_bytes
                        .saturating_add(declared.saturating_mul(record_bytes)),
                    file_bytes,
                });
            }
            if declared < records_complete {
                return Err(FileError::RecordCountMismatch {
                    path: path.to_path_buf(),
                    declared,
                    complete: records_complete,
                    record_bytes,
                });
            }
            if leftover > 0 {
                notices.push(format!(
                    "{}: {leftover} byte(s) after the last of the {declared} data record(s) belong to no record and are not read",
                    path.display()
                ));
            }
            declared
        }
        n => {
            return Err(fields.bad_field(
                RECORD_COUNT.0,
                None,
                RECORD_COUNT.1,
                n.to_string(),
                "negative (only -1, unknown, is allowed)",
            ))
        }
    };
    let header = Header {
        width,
        plus,
        discontinuous,
        header_bytes: expected_header_bytes,
        record_count,
        record_bytes,
        duration_text,
        signals,
    };
    if header.discontinuous && header.time_keeping().is_none() {
        return Err(fields.bad_field(
            "reserved",
            None,
            192,
            reserved,
            "EDF+D/BDF+D needs an annotation signal to say when each record starts",
        ));
    }
    Ok((header, notices))
}

/// The digital range must fit the sample width and not be empty, and the
/// physical range must be a finite, non-empty span.
fn check_scaling(
    fields: &HeaderFields,
    index: usize,
    signal: &SignalHeader,
    width: SampleWidth,
) -> Result<(), FileError> {
    for (field, value) in [
        (&DIGITAL_MIN, signal.digital_min),
        (&DIGITAL_MAX, signal.digital_max),
    ] {
        if !width.digital_range().contains(&value) {
            return Err(fields.bad_signal_field(
                field,
                index,
                &signal.label,
                width.range_problem(),
            ));
        }
    }
    if signal.digital_min == signal.digital_max {
        return Err(FileError::DegenerateDigitalRange {
            path: fields.path.to_path_buf(),
            signal: index,
            label: signal.label.clone(),
            digital: signal.digital_min,
        });
    }
    if signal.physical_min == signal.physical_max {
        return Err(fields.bad_signal_field(
            &PHYSICAL_MAX,
            index,
            &signal.label,
            "equals the physical minimum, so every sample would read the same value",
        ));
    }
    // Linear: finite at both ends of the sample width means finite for every sample.
    let digital_min = signal.digital_min as f64;
    let finite_everywhere = [*width.digital_range().start(), *width.digital_range().end()]
        .iter()
        .all(|&d| (signal.physical_min + (d as f64 - digital_min) * signal.gain()).is_finite());
    if !finite_everywhere {
        return Err(fields.bad_signal_field(
            &PHYSICAL_MAX,
            index,
            &signal.label,
            "is so far from the physical minimum that the scaling overflows",
        ));
    }
    Ok(())
}

/// `samples per record / record duration`, finite, positive and at most [`MAX_RATE_HZ`].
fn signal_rate(
    fields: &HeaderFields,
    index: usize,
    signal: &SignalHeader,
    record_duration_s: f64,
    duration_text: &str,
) -> Result<SampleRate, FileError> {
    let rate_hz = signal.samples_per_record as f64 / record_duration_s;
    let rate = SampleRate::new(rate_hz).map_err(|_| FileError::BadSampleRate {
        path: fields.path.to_path_buf(),
        signal: index,
        label: signal.label.clone(),
        samples_per_record: signal.samples_per_record as u64,
        record_duration_s,
    })?;
    if rate_hz > MAX_RATE_HZ {
        return Err(FileError::RateTooHigh {
            path: fields.path.to_path_buf(),
            signal: index,
            label: signal.label.clone(),
            rate_hz,
            origin: rate_origin(signal.samples_per_record, duration_text),
        });
    }
    Ok(rate)
}
