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
//!
//! Here the reader; `header.rs` reads and checks the header, `annotations.rs`
//! the TALs, `write.rs` the writer.

use std::fs::File;
use std::path::Path;

use crate::io::reader::{
    check_selection, collect_recording, default_selection, frames_that_fit, open_regular,
    read_exact_at, BlockMeta, SignalInfo, SignalReader, SourceInfo,
};
use crate::io::FileError;
use crate::recording::Recording;
use crate::time::{SampleIndex, SampleRate};
mod annotations;
mod header;
mod write;

pub(crate) use write::{format_bound, push_ascii_field, Rounding};
pub use write::{write_edf, write_edf_streamed, DataRange, SignalToWrite};

use annotations::{parse_tal_block, record_start, scan_annotations};
use header::{rate_origin, read_header};

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

fn parse_finite(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}
