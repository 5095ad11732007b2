//! EDF, EDF+, BDF (24-bit) and BDF+ reader, and a 16-bit EDF writer.
//!
//! [`EdfReader::open`] reads the header, checks every field and the file size
//! against it, and reads the annotation signals ("EDF Annotations"/"BDF
//! Annotations", TALs) of every record in one streaming pass into
//! [`SourceInfo::annotations`]; the data are then read record by record as
//! the pipeline asks for blocks. Onsets are seconds from the first sample, so
//! the subsecond start offset that EDF+ keeps in the first record's
//! time-keeping TAL is subtracted (as pyedflib and edfio do).
//!
//! EDF+D (discontinuous) records start where their time-keeping TAL says:
//! a gap between records becomes a block that starts after it (the controller
//! counts the skipped frames). A record that overlaps the one before, or
//! starts between two samples, is refused.
//!
//! The writer produces plain 16-bit EDF (not EDF+): annotations are not written.

use std::fs::File;
use std::path::Path;

use super::reader::{
    check_selection, collect_recording, default_selection, frames_that_fit, open_regular,
    read_exact_at, BlockMeta, SignalInfo, SignalReader, SourceInfo, MAX_RATE_HZ,
};
use super::{write_atomically_with, FileError};
use crate::recording::{Annotation, Recording};
use crate::time::{SampleIndex, SampleRate};

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

/// File-level header fields: name, byte offset, width.
const RECORD_COUNT: (&str, usize, usize) = ("number of data records", 236, 8);
const RECORD_DURATION: (&str, usize, usize) = ("duration of a data record", 244, 8);

/// TAL separators (EDF+ spec section 2.2.2).
const TAL_ONSET_DURATION: u8 = 0x15;
const TAL_TEXT: u8 = 0x14;

/// An EDF+D record must start within this many samples of a sample instant
/// (TAL onsets carry at most 100 ns resolution in practice).
const GRID_TOLERANCE_SAMPLES: f64 = 0.1;

/// Largest annotation signal (bytes per record) read: far above what EDF+
/// writers use (tens to hundreds of bytes), and what a corrupt header can make
/// the reader allocate.
const MAX_ANNOTATION_BYTES: u64 = 1 << 20;

/// Records up to this size are read whole; of larger ones, each selected
/// signal is read in chunks of this many bytes in all, so a header cannot
/// size the reader's buffers.
const WINDOW_BYTES: u64 = 1 << 20;

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

    /// The digital values a sample can hold.
    fn digital_range(self) -> std::ops::RangeInclusive<i64> {
        match self {
            SampleWidth::Bits16 => -32_768..=32_767,
            SampleWidth::Bits24 => -8_388_608..=8_388_607,
        }
    }

    fn range_problem(self) -> &'static str {
        match self {
            SampleWidth::Bits16 => {
                "outside the range of a 16-bit EDF sample (-32768 to 32767): no sample can reach it"
            }
            SampleWidth::Bits24 => {
                "outside the range of a 24-bit BDF sample (-8388608 to 8388607): no sample can reach it"
            }
        }
    }

    #[inline]
    fn decode(self, bytes: &[u8]) -> f64 {
        match self {
            SampleWidth::Bits16 => f64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
            // Place the 24 bits in the top of an i32 and shift back to sign-extend.
            SampleWidth::Bits24 => {
                f64::from(i32::from_le_bytes([0, bytes[0], bytes[1], bytes[2]]) >> 8)
            }
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
    /// Byte offset of the signal's samples within a data record.
    offset_in_record: u64,
    is_annotation: bool,
    /// `None` for an annotation signal.
    rate: Option<SampleRate>,
}

impl SignalHeader {
    /// Physical units per digital step.
    fn gain(&self) -> f64 {
        (self.physical_max - self.physical_min) / (self.digital_max - self.digital_min) as f64
    }
}

/// The whole header, validated against the file length.
struct Header {
    width: SampleWidth,
    /// EDF+ or BDF+ (the reserved field says so).
    plus: bool,
    discontinuous: bool,
    header_bytes: u64,
    record_count: u64,
    record_bytes: u64,
    /// The record duration field as written (for messages).
    duration_text: String,
    signals: Vec<SignalHeader>,
}

impl Header {
    fn record_offset(&self, record: u64) -> u64 {
        self.header_bytes + record * self.record_bytes
    }

    fn format(&self) -> &'static str {
        match (self.width, self.plus) {
            (SampleWidth::Bits16, false) => "EDF",
            (SampleWidth::Bits16, true) => "EDF+",
            (SampleWidth::Bits24, false) => "BDF",
            (SampleWidth::Bits24, true) => "BDF+",
        }
    }

    /// The first annotation signal: its first TAL in each record keeps the record's time.
    fn time_keeping(&self) -> Option<&SignalHeader> {
        self.signals.iter().find(|s| s.is_annotation)
    }

    fn annotation_bytes(&self, signal: &SignalHeader) -> usize {
        signal.samples_per_record * self.width.bytes()
    }
}

/// Read an EDF, EDF+, BDF or BDF+ file whole into memory.
pub fn read_edf(path: &Path) -> Result<Recording, FileError> {
    collect_recording(Box::new(EdfReader::open(path)?))
}

/// A streaming EDF/BDF reader (see the module documentation).
pub struct EdfReader {
    info: SourceInfo,
    file: File,
    header: Header,
    /// Header index of each entry of `info.signals` (the data signals).
    data_signals: Vec<usize>,
    selection: Vec<usize>,
    /// Header indices of the selection.
    columns: Vec<usize>,
    samples_per_record: usize,
    /// Onset (s, from the header's start time) of the first record.
    first_onset_s: f64,
    /// Next frame to read: record and frame within it.
    record: u64,
    frame_in_record: usize,
    /// Sample index of `record`'s first frame, once computed.
    record_start: Option<SampleIndex>,
    /// Records of at most [`WINDOW_BYTES`] are read whole into `window`;
    /// otherwise `window` holds a chunk of each selected signal, one after
    /// the other, `chunk_samples` each.
    whole_records: bool,
    chunk_samples: usize,
    window: Vec<u8>,
    /// What `window` holds: record, first frame, frames.
    window_at: Option<(u64, usize, usize)>,
    /// One record's time-keeping TAL block (EDF+D).
    tal: Vec<u8>,
}

impl EdfReader {
    /// The lowest value a sample of data signal `signal` (an index into
    /// `info().signals`) can decode to: the physical minimum. A code below the
    /// digital minimum decodes lower still (the session recording's "no value").
    pub fn physical_min(&self, signal: usize) -> f64 {
        self.header.signals[self.data_signals[signal]].physical_min
    }

    /// Open a file, check its header and read its annotations.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let (file, file_bytes) = open_regular(path)?;
        let (header, mut notices) = read_header(path, &file, file_bytes)?;
        let timing = scan_annotations(path, &file, &header)?;
        if timing.gaps > 0 {
            notices.push(format!(
                "{}: EDF+D with {} gap(s) between records ({} s in all); blocks resume after each gap and the pipeline counts the skipped frames as dropped",
                path.display(),
                timing.gaps,
                timing.gap_s
            ));
        }
        let data_signals: Vec<usize> = (0..header.signals.len())
            .filter(|&i| !header.signals[i].is_annotation)
            .collect();
        let signals = data_signals
            .iter()
            .map(|&i| {
                let signal = &header.signals[i];
                let rate = signal.rate.expect("data signals have a rate");
                SignalInfo {
                    label: signal.label.clone(),
                    unit: signal.unit.clone(),
                    rate,
                    rate_origin: rate_origin(signal.samples_per_record, &header.duration_text),
                    scale: signal.gain(),
                    samples: signal.samples_per_record as u64 * header.record_count,
                    // One stream per rate, numbered by its first signal.
                    stream: data_signals
                        .iter()
                        .position(|&j| header.signals[j].rate == Some(rate))
                        .unwrap_or(0),
                }
            })
            .collect();
        let info = SourceInfo {
            path: path.to_path_buf(),
            format: header.format(),
            signals,
            streams: Vec::new(),
            annotations: timing.annotations,
            notices,
        };
        let whole_records = header.record_bytes <= WINDOW_BYTES;
        let tal_bytes = header
            .time_keeping()
            .map_or(0, |s| header.annotation_bytes(s));
        let mut reader = Self {
            info,
            file,
            data_signals,
            selection: Vec::new(),
            columns: Vec::new(),
            samples_per_record: 0,
            first_onset_s: timing.first_onset_s,
            record: 0,
            frame_in_record: 0,
            record_start: None,
            whole_records,
            chunk_samples: 0,
            window: vec![
                0;
                if whole_records {
                    header.record_bytes as usize
                } else {
                    0
                }
            ],
            window_at: None,
            tal: vec![0; tal_bytes],
            header,
        };
        let selection = default_selection(&reader.info);
        if !selection.is_empty() {
            reader.select(&selection)?;
        }
        Ok(reader)
    }

    /// Sample index (at the selection's rate) of `record`'s first frame.
    fn start_of(&mut self, record: u64) -> Result<SampleIndex, FileError> {
        let per_record = self.samples_per_record as u64;
        if !self.header.discontinuous {
            return Ok(record * per_record);
        }
        let signal = self
            .header
            .time_keeping()
            .expect("EDF+D has a time-keeping signal");
        let offset = self.header.record_offset(record) + signal.offset_in_record;
        read_exact_at(&self.file, &self.info.path, &mut self.tal, offset)?;
        let onset_s = parse_tal_block(&self.info.path, record, offset, &self.tal, None)?;
        let rate = self.info.signals[self.selection[0]].rate;
        record_start(
            &self.info.path,
            record,
            offset,
            onset_s,
            self.first_onset_s,
            rate,
        )
    }

    /// Make `window` hold the current frame; returns how many frames from it on it holds.
    fn fill_window(&mut self) -> Result<usize, FileError> {
        let (record, frame) = (self.record, self.frame_in_record);
        if let Some((at, first, frames)) = self.window_at {
            if at == record && (first..first + frames).contains(&frame) {
                return Ok(first + frames - frame);
            }
        }
        let record_offset = self.header.record_offset(record);
        let (first, frames) = if self.whole_records {
            read_exact_at(&self.file, &self.info.path, &mut self.window, record_offset)?;
            (0, self.samples_per_record)
        } else {
            let width = self.header.width.bytes();
            let frames = self.chunk_samples.min(self.samples_per_record - frame);
            let chunks = self.window.chunks_exact_mut(self.chunk_samples * width);
            for (chunk, &index) in chunks.zip(&self.columns) {
                let signal = &self.header.signals[index];
                let offset = record_offset + signal.offset_in_record + (frame * width) as u64;
                read_exact_at(
                    &self.file,
                    &self.info.path,
                    &mut chunk[..frames * width],
                    offset,
                )?;
            }
            (frame, frames)
        };
        self.window_at = Some((record, first, frames));
        Ok(first + frames - frame)
    }

    /// Decode `frames` frames of the selection, held by `window` from the
    /// current position on, into `out`.
    fn decode(&self, frames: usize, out: &mut [f64]) {
        let width = self.header.width;
        let bytes = width.bytes();
        let channels = self.columns.len();
        let (_, first, _) = self.window_at.expect("the window was filled");
        for (column, &index) in self.columns.iter().enumerate() {
            let signal = &self.header.signals[index];
            let start = if self.whole_records {
                signal.offset_in_record as usize + self.frame_in_record * bytes
            } else {
                (column * self.chunk_samples + self.frame_in_record - first) * bytes
            };
            let data = &self.window[start..start + frames * bytes];
            // phys = pmin + (dig - dmin) * (pmax - pmin) / (dmax - dmin)
            let gain = signal.gain();
            let digital_min = signal.digital_min as f64;
            let slots = out[column..].iter_mut().step_by(channels);
            for (sample, slot) in data.chunks_exact(bytes).zip(slots) {
                *slot = signal.physical_min + (width.decode(sample) - digital_min) * gain;
            }
        }
    }
}

impl SignalReader for EdfReader {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn select(&mut self, signals: &[usize]) -> Result<(), FileError> {
        check_selection(&self.info, signals)?;
        self.selection = signals.to_vec();
        self.columns = signals.iter().map(|&i| self.data_signals[i]).collect();
        self.samples_per_record = self.header.signals[self.columns[0]].samples_per_record;
        if !self.whole_records {
            let width = self.header.width.bytes();
            self.chunk_samples =
                (WINDOW_BYTES as usize / (signals.len() * width)).clamp(1, self.samples_per_record);
            self.window = vec![0; self.chunk_samples * signals.len() * width];
        }
        // The window's span is counted in the old selection's frames.
        self.window_at = None;
        self.record = 0;
        self.frame_in_record = 0;
        self.record_start = None;
        Ok(())
    }

    fn selection(&self) -> &[usize] {
        &self.selection
    }

    fn read_block(&mut self, buf: &mut [f64]) -> Result<Option<BlockMeta>, FileError> {
        let channels = self.columns.len();
        let capacity = frames_that_fit(&self.info, buf, channels)?;
        let mut filled = 0;
        let mut block_start = None;
        while filled < capacity && self.record < self.header.record_count {
            let record_start = match self.record_start {
                Some(start) => start,
                None => {
                    let start = self.start_of(self.record)?;
                    self.record_start = Some(start);
                    start
                }
            };
            let here = record_start + self.frame_in_record as u64;
            match block_start {
                None => block_start = Some(here),
                Some(start) if start + filled as u64 != here => break, // a gap ends the block
                Some(_) => {}
            }
            let frames = (capacity - filled).min(self.fill_window()?);
            self.decode(frames, &mut buf[filled * channels..]);
            filled += frames;
            self.frame_in_record += frames;
            if self.frame_in_record == self.samples_per_record {
                self.record += 1;
                self.frame_in_record = 0;
                self.record_start = None;
            }
        }
        Ok(block_start.map(|start| BlockMeta {
            start,
            frames: filled,
        }))
    }
}

/// Where a signal's rate comes from: `samples per record / record duration`.
fn rate_origin(samples_per_record: usize, duration_text: &str) -> String {
    format!(
        "header fields \"{}\" ({samples_per_record}) and \"{}\" ({duration_text} s)",
        SAMPLES_PER_RECORD.name, RECORD_DURATION.0
    )
}

/// What the annotation pass found.
struct Timing {
    /// Onset (s, from the header's start time) of the first record.
    first_onset_s: f64,
    /// Every annotation, onsets from the first sample.
    annotations: Vec<Annotation>,
    /// EDF+D gaps between records, and their total length (s, at the first rate).
    gaps: u64,
    gap_s: f64,
}

/// Read the annotation signals of every record (one read per signal and
/// record), and for EDF+D check that every record starts on the sample grid
/// of every rate without overlapping the one before.
fn scan_annotations(path: &Path, file: &File, header: &Header) -> Result<Timing, FileError> {
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
fn record_start(
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
fn parse_tal_block(
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
fn read_header(
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
