//! OpenBCI GUI recordings (GUI v5 and v6 "OpenBCI Raw EXG/EEG Data" text):
//! `%` header lines (channel count, sample rate, board), one line of column
//! names, then one comma-separated line per sample. The EXG channels are
//! signals in µV (stream `EXG`), the accelerometer channels signals in g
//! (stream `Accel`); the other columns are not read.
//!
//! The board line is checked against the channel count, the EXG columns and,
//! for the serial and Bluetooth boards whose rate is fixed, the sample rate:
//! a file whose header belongs to another board is refused. On a Cyton (not
//! Daisy) the `Sample Index` column is the board's packet counter (mod 256):
//! a jump means packets were lost, and the next block starts after the
//! missing samples (the controller counts them as dropped). A last line cut
//! short is reported as a notice and not read.

use std::path::Path;

use super::reader::{
    check_selection, default_selection, frames_that_fit, open_regular, BlockMeta, SequentialReader,
    SignalInfo, SignalReader, SourceInfo, StreamInfo, CHUNK_BYTES, MAX_RATE_HZ, MIN_WINDOW_BYTES,
};
use super::FileError;
use crate::time::{SampleIndex, SampleRate};

const FORMAT: &str = "OpenBCI GUI text";

/// First lines of the versions read.
const SIGNATURES: [&str; 2] = ["%OpenBCI Raw EXG Data", "%OpenBCI Raw EEG Data"];

/// A known board: what its name contains, its EXG channels and, where its
/// link fixes it, its sample rate.
struct Board {
    contains: &'static str,
    channels: usize,
    fixed_rate_hz: Option<(f64, &'static str)>,
}

/// Checked most specific first.
const BOARDS: [Board; 3] = [
    Board {
        contains: "Daisy",
        channels: 16,
        fixed_rate_hz: Some((125.0, "Serial")),
    },
    Board {
        contains: "Cyton",
        channels: 8,
        fixed_rate_hz: Some((250.0, "Serial")),
    },
    Board {
        contains: "Ganglion",
        channels: 4,
        fixed_rate_hz: Some((200.0, "BLE")),
    },
];

/// The Cyton's packet counter wraps here.
const COUNTER_MODULUS: i64 = 256;

/// A streaming OpenBCI GUI text reader.
pub struct OpenBciTextReader {
    info: SourceInfo,
    text: SequentialReader,
    /// Byte offset of the first data line, and the data lines that are whole.
    data_offset: u64,
    lines: u64,
    /// Columns per line, and the file column of each signal.
    columns: usize,
    signal_columns: Vec<usize>,
    /// Counting packets (a Cyton without Daisy).
    counts_packets: bool,
    selection: Vec<usize>,
    selected_columns: Vec<usize>,
    next_offset: u64,
    next_line: u64,
    next_index: SampleIndex,
    last_counter: Option<i64>,
}

/// Open an OpenBCI GUI text file.
pub fn open_openbci_text(path: &Path) -> Result<OpenBciTextReader, FileError> {
    let problem = |problem: String| FileError::Malformed {
        path: path.to_path_buf(),
        format: FORMAT,
        problem,
    };
    let (file, length) = open_regular(path)?;
    let mut text = SequentialReader::new(path, file, length);
    let head = text.window_at(0)?.to_vec();
    let mut offset = 0u64;
    let mut header_lines = Vec::new();
    let mut column_names = None;
    for line in head.split_inclusive(|&b| b == b'\n') {
        if line.last() != Some(&b'\n') {
            break;
        }
        offset += line.len() as u64;
        let line = String::from_utf8_lossy(line).trim_end().to_string();
        if line.starts_with('%') {
            header_lines.push(line);
        } else {
            column_names = Some(line);
            break;
        }
    }
    let first = header_lines.first().map(String::as_str).unwrap_or_default();
    if !SIGNATURES.contains(&first) {
        let shown: String = String::from_utf8_lossy(&head)
            .chars()
            .take_while(|&c| c != '\n')
            .take(60)
            .collect();
        return Err(problem(format!(
            "the first line is {shown:?}; an OpenBCI GUI v5/v6 file starts with {:?} or {:?}",
            SIGNATURES[0], SIGNATURES[1]
        )));
    }
    let header = |name: &str| -> Result<String, FileError> {
        header_lines
            .iter()
            .find_map(|l| {
                let (key, value) = l.trim_start_matches('%').split_once('=')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
            .ok_or_else(|| problem(format!("the header has no \"%{name} = ...\" line")))
    };
    let declared = header("Number of channels")?;
    let declared_channels: usize = declared.parse().map_err(|_| {
        problem(format!(
            "\"%Number of channels\" is {declared:?}, not a count"
        ))
    })?;
    let rate_text = header("Sample Rate")?;
    let rate_hz: f64 = rate_text
        .trim_end_matches("Hz")
        .trim()
        .parse()
        .map_err(|_| {
            problem(format!(
                "\"%Sample Rate\" is {rate_text:?}, not a rate in Hz"
            ))
        })?;
    let rate = SampleRate::new(rate_hz)
        .ok()
        .filter(|r| r.hz() <= MAX_RATE_HZ)
        .ok_or_else(|| {
            problem(format!(
                "\"%Sample Rate\" is {rate_hz} Hz; it must be above 0 and at most {MAX_RATE_HZ}"
            ))
        })?;
    let board = header("Board")?;
    let column_names =
        column_names.ok_or_else(|| problem("no line of column names after the header".into()))?;
    let names: Vec<&str> = column_names.split(',').map(str::trim).collect();
    let exg: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].starts_with("EXG Channel"))
        .collect();
    let accel: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].starts_with("Accel Channel"))
        .collect();
    if names.first() != Some(&"Sample Index") || exg.is_empty() {
        return Err(problem(format!(
            "the column names {:?} do not start with \"Sample Index\" and EXG channels",
            column_names.chars().take(80).collect::<String>()
        )));
    }
    if exg.len() != declared_channels {
        return Err(problem(format!(
            "\"%Number of channels = {declared_channels}\" but the file has {} EXG Channel columns",
            exg.len()
        )));
    }
    if let Some(known) = BOARDS.iter().find(|b| board.contains(b.contains)) {
        if known.channels != declared_channels {
            return Err(problem(format!(
                "\"%Board = {board}\" is a {}-channel board but \"%Number of channels\" says {declared_channels}: the header belongs to a different board",
                known.channels
            )));
        }
        if let Some((fixed, link)) = known.fixed_rate_hz {
            if board.contains(link) && rate_hz != fixed {
                return Err(problem(format!(
                    "\"%Board = {board}\" samples at {fixed} Hz but \"%Sample Rate\" says {rate_hz} Hz: the header belongs to a different board"
                )));
            }
        }
    }
    let counts_packets = board.contains("Cyton") && !board.contains("Daisy");

    // Whole data lines: every newline after the header; a last line without
    // one is whole only if it has every column.
    let mut lines = 0u64;
    let mut at = offset;
    let mut last_start = offset;
    while at < length {
        let window = text.window_at(at)?;
        for (i, _) in window.iter().enumerate().filter(|(_, &b)| b == b'\n') {
            lines += 1;
            last_start = at + i as u64 + 1;
        }
        at += window.len() as u64;
    }
    let mut notices = Vec::new();
    if last_start < length {
        let tail_length = (length - last_start).min(CHUNK_BYTES as u64) as usize;
        let tail = text.bytes_at(last_start, tail_length)?;
        let fields = tail.split(|&b| b == b',').count();
        if fields == names.len() && length - last_start <= CHUNK_BYTES as u64 {
            lines += 1;
        } else {
            notices.push(format!(
                "{}: the last line (line {}) is cut short ({fields} of {} columns) and is not read",
                path.display(),
                header_lines.len() as u64 + 2 + lines,
                names.len()
            ));
        }
    }
    let mut signals = Vec::new();
    let mut signal_columns = Vec::new();
    for (stream, (columns, unit)) in [(&exg, "uV"), (&accel, "g")].into_iter().enumerate() {
        for &column in columns {
            signals.push(SignalInfo {
                label: names[column].to_string(),
                unit: unit.into(),
                rate,
                rate_origin: format!("{} \"%Sample Rate = {rate_text}\"", path.display()),
                scale: 1.0,
                samples: lines,
                stream,
            });
            signal_columns.push(column);
        }
    }
    let mut streams = vec![StreamInfo {
        id: Some(0),
        name: "EXG".into(),
        description: format!("{} EXG channel(s) in µV at {rate} ({board})", exg.len()),
    }];
    if !accel.is_empty() {
        streams.push(StreamInfo {
            id: Some(1),
            name: "Accel".into(),
            description: format!("{} accelerometer channel(s) in g", accel.len()),
        });
    }
    let info = SourceInfo {
        path: path.to_path_buf(),
        format: FORMAT,
        signals,
        streams,
        annotations: Vec::new(),
        notices,
    };
    let mut reader = OpenBciTextReader {
        info,
        text,
        data_offset: offset,
        lines,
        columns: names.len(),
        signal_columns,
        counts_packets,
        selection: Vec::new(),
        selected_columns: Vec::new(),
        next_offset: offset,
        next_line: 0,
        next_index: 0,
        last_counter: None,
    };
    reader.select(&default_selection(&reader.info))?;
    Ok(reader)
}

impl SignalReader for OpenBciTextReader {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn select(&mut self, signals: &[usize]) -> Result<(), FileError> {
        check_selection(&self.info, signals)?;
        self.selection = signals.to_vec();
        self.selected_columns = signals.iter().map(|&i| self.signal_columns[i]).collect();
        (self.next_offset, self.next_line, self.next_index) = (self.data_offset, 0, 0);
        self.last_counter = None;
        Ok(())
    }

    fn selection(&self) -> &[usize] {
        &self.selection
    }

    fn read_block(&mut self, buf: &mut [f64]) -> Result<Option<BlockMeta>, FileError> {
        let channels = self.selection.len();
        let capacity = frames_that_fit(&self.info, buf, channels)?;
        let mut filled = 0;
        let mut block_start = None;
        while filled < capacity && self.next_line < self.lines {
            let window = self.text.window_at(self.next_offset)?;
            let line_end = window
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(window.len());
            if line_end == window.len() && self.next_line + 1 < self.lines {
                return Err(FileError::Malformed {
                    path: self.info.path.clone(),
                    format: FORMAT,
                    problem: format!(
                        "data line {} is longer than {MIN_WINDOW_BYTES} bytes",
                        self.next_line + 1
                    ),
                });
            }
            let line = &window[..line_end];
            let problem = |problem: String| FileError::Malformed {
                path: self.info.path.clone(),
                format: FORMAT,
                problem: format!(
                    "data line {} (byte offset {}): {problem}",
                    self.next_line + 1,
                    self.next_offset
                ),
            };
            let mut fields = line.split(|&b| b == b',');
            let mut parsed = 0usize;
            let mut counter = None;
            let out = &mut buf[filled * channels..(filled + 1) * channels];
            for (column, field) in fields.by_ref().enumerate() {
                parsed += 1;
                if column == 0 && self.counts_packets {
                    counter = Some(parse_number(field).ok_or_else(|| {
                        problem(format!("Sample Index {:?} is not a number", lossy(field)))
                    })?);
                }
                for (slot, _) in self
                    .selected_columns
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c == column)
                {
                    out[slot] = parse_number(field).ok_or_else(|| {
                        problem(format!(
                            "column {} ({:?}) is {:?}, not a finite number",
                            column + 1,
                            self.info.signals[self.selection[slot]].label,
                            lossy(field)
                        ))
                    })?;
                }
            }
            if parsed != self.columns {
                return Err(problem(format!(
                    "{parsed} columns; the column names line has {}",
                    self.columns
                )));
            }
            let mut here = self.next_index;
            if let (Some(counter), Some(last)) = (counter, self.last_counter) {
                let step = (counter as i64 - last).rem_euclid(COUNTER_MODULUS);
                if step == 0 {
                    return Err(problem(format!(
                        "Sample Index {counter} repeats the line before's: a duplicated packet"
                    )));
                }
                here += step as u64 - 1; // lost packets
            }
            match block_start {
                None => block_start = Some(here),
                Some(start) if start + filled as u64 != here => break, // a gap ends the block
                Some(_) => {}
            }
            self.last_counter = counter.map(|c| c as i64);
            self.next_index = here + 1;
            self.next_offset += line_end as u64 + 1;
            self.next_line += 1;
            filled += 1;
        }
        Ok(block_start.map(|start| BlockMeta {
            start,
            frames: filled,
        }))
    }
}

/// A field as a finite number (surrounding spaces allowed).
fn parse_number(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(field)
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

fn lossy(field: &[u8]) -> String {
    String::from_utf8_lossy(field).chars().take(40).collect()
}
