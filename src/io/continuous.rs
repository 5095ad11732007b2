//! Legacy Open Ephys format (GUI up to 0.5): one `.continuous` file per
//! channel, a 1024-byte text header (`header.sampleRate = 30000;` ...) and
//! then records of 1024 samples: sample number of the first (int64 LE),
//! sample count (uint16 LE, 1024), recording number (uint16 LE), the samples
//! (int16 **big-endian**) and a 10-byte marker (0 1 2 ... 8 255).
//!
//! A folder opens every `.continuous` file in it, one stream per processor
//! (and experiment): files `100_CH1.continuous`, `100_CH2.continuous`, ...
//! (`100_CH1_2.continuous` for experiment 2) make stream `100` (`100_2`).
//! Channels are ordered CH, AUX, ADC, each by number; CH are in µV, AUX and
//! ADC in V (their `bitVolts` are volts). A record whose sample number jumps
//! ahead (recording stopped and started again) starts a later block, as an
//! EDF+D gap does; one that goes back is an error. A final record cut short
//! is reported as a notice and not read.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::raw::MAX_CHANNELS;
use super::reader::{
    check_selection, default_selection, frames_that_fit, open_regular, read_exact_at, BlockMeta,
    SignalInfo, SignalReader, SourceInfo, StreamInfo, CHUNK_BYTES, MAX_RATE_HZ,
};
use super::FileError;
use crate::time::{SampleIndex, SampleRate};

const FORMAT: &str = "Open Ephys .continuous";
const HEADER_BYTES: u64 = 1024;
const SAMPLES_PER_RECORD: usize = 1024;
/// Sample number, count, recording number, samples, marker.
const RECORD_BYTES: usize = 8 + 2 + 2 + 2 * SAMPLES_PER_RECORD + 10;
const MARKER: [u8; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 255];
/// Format versions whose records are laid out as above.
const VERSIONS: [&str; 3] = ["0.2", "0.3", "0.4"];

/// One channel's file, its header checked.
struct ChannelFile {
    path: PathBuf,
    file: File,
    label: String,
    unit: &'static str,
    bit_volts: f64,
    rate: SampleRate,
    records: u64,
}

/// The channel files of one processor (and experiment), read together.
struct Stream {
    name: String,
    channels: Vec<ChannelFile>,
}

/// A legacy Open Ephys recording (see the module documentation).
pub struct ContinuousReader {
    info: SourceInfo,
    streams: Vec<Stream>,
    /// Stream and channel of each signal of `info`.
    places: Vec<(usize, usize)>,
    selection: Vec<usize>,
    /// Records held per selected channel in `window`, and where they start.
    window: Vec<u8>,
    window_records: usize,
    window_first: u64,
    window_held: usize,
    /// Next frame: record and sample in it.
    record: u64,
    sample: usize,
    /// Sample number of the first record of the selected stream (index 0).
    origin: i64,
    /// Sample index where the previous record ended (to refuse going back).
    reached: SampleIndex,
}

/// Open one `.continuous` file, or every one in a folder.
pub fn open_continuous(path: &Path) -> Result<ContinuousReader, FileError> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| FileError::Io {
                path: path.to_path_buf(),
                action: "list",
                source,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("continuous"))
            })
            .collect();
        if files.is_empty() {
            return Err(FileError::Malformed {
                path: path.to_path_buf(),
                format: FORMAT,
                problem: "the folder holds no .continuous file (and no recording.bdf of a session)"
                    .into(),
            });
        }
        files.sort();
        open_files(path, &files)
    } else {
        open_files(path, &[path.to_path_buf()])
    }
}

/// Open a set of `.continuous` files (`source` names them in messages).
pub fn open_files(source: &Path, files: &[PathBuf]) -> Result<ContinuousReader, FileError> {
    if files.len() > MAX_CHANNELS {
        return Err(FileError::Malformed {
            path: source.to_path_buf(),
            format: FORMAT,
            problem: format!("{} files; at most {MAX_CHANNELS} are read", files.len()),
        });
    }
    let mut streams: Vec<Stream> = Vec::new();
    let mut notices = Vec::new();
    let mut keyed: Vec<(String, (u8, u64), ChannelFile)> = Vec::new();
    for path in files {
        let (channel, notice) = open_channel(path)?;
        notices.extend(notice);
        let (stream, order) = stream_and_order(path);
        keyed.push((stream, order, channel));
    }
    keyed.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (name, _, channel) in keyed {
        match streams.last_mut() {
            Some(stream) if stream.name == name => stream.channels.push(channel),
            _ => streams.push(Stream {
                name,
                channels: vec![channel],
            }),
        }
    }
    let mut signals = Vec::new();
    let mut places = Vec::new();
    let mut names = Vec::new();
    for (index, stream) in streams.iter().enumerate() {
        let first = &stream.channels[0];
        for channel in &stream.channels {
            let problem = if channel.rate != first.rate {
                Some(format!(
                    "sample rate {} but {} says {}",
                    channel.rate,
                    first.path.display(),
                    first.rate
                ))
            } else if channel.records != first.records {
                Some(format!(
                    "{} whole record(s) but {} has {}: the channels of one stream must be equally long",
                    channel.records,
                    first.path.display(),
                    first.records
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(FileError::Malformed {
                    path: channel.path.clone(),
                    format: FORMAT,
                    problem,
                });
            }
        }
        for (column, channel) in stream.channels.iter().enumerate() {
            signals.push(SignalInfo {
                label: channel.label.clone(),
                unit: channel.unit.into(),
                rate: channel.rate,
                rate_origin: format!("{} header.sampleRate", channel.path.display()),
                scale: channel.bit_volts,
                samples: channel.records * SAMPLES_PER_RECORD as u64,
                stream: index,
            });
            places.push((index, column));
        }
        names.push(StreamInfo {
            id: Some(index),
            name: stream.name.clone(),
            description: format!(
                "{} channel file(s) at {}, {} record(s) of {SAMPLES_PER_RECORD} samples",
                stream.channels.len(),
                first.rate,
                first.records
            ),
        });
    }
    let info = SourceInfo {
        path: source.to_path_buf(),
        format: FORMAT,
        signals,
        streams: names,
        annotations: Vec::new(),
        notices,
    };
    let mut reader = ContinuousReader {
        info,
        streams,
        places,
        selection: Vec::new(),
        window: Vec::new(),
        window_records: 0,
        window_first: 0,
        window_held: 0,
        record: 0,
        sample: 0,
        origin: 0,
        reached: 0,
    };
    let selection = default_selection(&reader.info);
    if !selection.is_empty() {
        reader.select(&selection)?;
    }
    Ok(reader)
}

/// The stream a file belongs to (processor id, and experiment when not the
/// first) and its place in it (CH, AUX, ADC, then others; by number).
fn stream_and_order(path: &Path) -> (String, (u8, u64)) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parts: Vec<&str> = stem.split('_').collect();
    let (processor, channel, experiment) = match parts[..] {
        [processor, channel] => (processor, channel, None),
        [processor, channel, experiment] => (processor, channel, Some(experiment)),
        _ => (stem.as_str(), "", None),
    };
    let kind = ["CH", "AUX", "ADC"]
        .iter()
        .position(|k| channel.starts_with(k))
        .unwrap_or(3) as u8;
    let number = channel
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(u64::MAX);
    let stream = match experiment {
        Some(experiment) => format!("{processor}_{experiment}"),
        None => processor.to_string(),
    };
    (stream, (kind, number))
}

/// Open one channel file and check its header against its size.
fn open_channel(path: &Path) -> Result<(ChannelFile, Option<String>), FileError> {
    let problem = |problem: String| FileError::Malformed {
        path: path.to_path_buf(),
        format: FORMAT,
        problem,
    };
    let (file, length) = open_regular(path)?;
    if length < HEADER_BYTES {
        return Err(problem(format!(
            "{length} bytes, shorter than the {HEADER_BYTES}-byte header"
        )));
    }
    let mut header = vec![0; HEADER_BYTES as usize];
    read_exact_at(&file, path, &mut header, 0)?;
    let text = String::from_utf8_lossy(&header);
    let field = |name: &str| -> Option<String> {
        text.split(';').find_map(|item| {
            let (key, value) = item.split_once('=')?;
            (key.trim() == format!("header.{name}"))
                .then(|| value.trim().trim_matches('\'').trim().to_string())
        })
    };
    let required =
        |name: &str| field(name).ok_or_else(|| problem(format!("the header has no header.{name}")));
    let format = required("format")?;
    if format != "Open Ephys Data Format" {
        return Err(problem(format!(
            "header.format is {format:?}, not 'Open Ephys Data Format'"
        )));
    }
    let version = required("version")?;
    if !VERSIONS.contains(&version.as_str()) {
        return Err(problem(format!(
            "header.version {version:?} is an unknown format version (read: {})",
            VERSIONS.join(", ")
        )));
    }
    for (name, expected) in [("header_bytes", HEADER_BYTES), ("blockLength", 1024)] {
        if let Some(value) = field(name) {
            if value.parse::<u64>().ok() != Some(expected) {
                return Err(problem(format!(
                    "header.{name} is {value:?}; this format has {expected}"
                )));
            }
        }
    }
    let number = |name: &str| -> Result<f64, FileError> {
        let value = required(name)?;
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| problem(format!("header.{name} is {value:?}, not a number")))
    };
    let rate_hz = number("sampleRate")?;
    let rate = SampleRate::new(rate_hz)
        .ok()
        .filter(|r| r.hz() <= MAX_RATE_HZ)
        .ok_or_else(|| {
            problem(format!(
                "header.sampleRate is {rate_hz} Hz; it must be above 0 and at most {MAX_RATE_HZ}"
            ))
        })?;
    let bit_volts = number("bitVolts")?;
    if bit_volts == 0.0 {
        return Err(problem("header.bitVolts is 0".into()));
    }
    let label = required("channel")?;
    let unit = if label.starts_with("AUX") || label.starts_with("ADC") {
        "V"
    } else {
        "uV"
    };
    let data = length - HEADER_BYTES;
    let records = data / RECORD_BYTES as u64;
    let leftover = data % RECORD_BYTES as u64;
    let notice = (leftover > 0).then(|| {
        format!(
            "{}: the last record is incomplete ({leftover} of {RECORD_BYTES} bytes) and is not read",
            path.display()
        )
    });
    Ok((
        ChannelFile {
            path: path.to_path_buf(),
            file,
            label,
            unit,
            bit_volts,
            rate,
            records,
        },
        notice,
    ))
}

impl ContinuousReader {
    fn stream(&self) -> &Stream {
        &self.streams[self.places[self.selection[0]].0]
    }

    /// Make the window hold the current record of every selected channel.
    fn fill_window(&mut self) -> Result<(), FileError> {
        let held = self.window_first..self.window_first + self.window_held as u64;
        if held.contains(&self.record) {
            return Ok(());
        }
        let stream = &self.streams[self.places[self.selection[0]].0];
        let records =
            (stream.channels[0].records - self.record).min(self.window_records as u64) as usize;
        let span = records * RECORD_BYTES;
        let offset = HEADER_BYTES + self.record * RECORD_BYTES as u64;
        for (slot, &signal) in self.selection.iter().enumerate() {
            let channel = &stream.channels[self.places[signal].1];
            let start = slot * self.window_records * RECORD_BYTES;
            read_exact_at(
                &channel.file,
                &channel.path,
                &mut self.window[start..start + span],
                offset,
            )?;
        }
        (self.window_first, self.window_held) = (self.record, records);
        Ok(())
    }

    /// The current record of selected channel `slot`, checked.
    fn record_of(&self, slot: usize) -> Result<(i64, &[u8]), FileError> {
        let within = (self.record - self.window_first) as usize;
        let start = (slot * self.window_records + within) * RECORD_BYTES;
        let bytes = &self.window[start..start + RECORD_BYTES];
        let stream = self.stream();
        let channel = &stream.channels[self.places[self.selection[slot]].1];
        let offset = HEADER_BYTES + self.record * RECORD_BYTES as u64;
        let problem = |problem: String| FileError::Malformed {
            path: channel.path.clone(),
            format: FORMAT,
            problem: format!("record {} (byte offset {offset}): {problem}", self.record),
        };
        let count = u16::from_le_bytes([bytes[8], bytes[9]]);
        if usize::from(count) != SAMPLES_PER_RECORD {
            return Err(problem(format!(
                "sample count field is {count}; records hold {SAMPLES_PER_RECORD}"
            )));
        }
        if bytes[RECORD_BYTES - 10..] != MARKER {
            return Err(problem(
                "does not end with the record marker 0 1 2 ... 8 255 (the file is corrupt or not record-aligned)".into(),
            ));
        }
        let number = i64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        Ok((number, &bytes[12..12 + 2 * SAMPLES_PER_RECORD]))
    }
}

impl SignalReader for ContinuousReader {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn select(&mut self, signals: &[usize]) -> Result<(), FileError> {
        check_selection(&self.info, signals)?;
        self.selection = signals.to_vec();
        self.window_records = (CHUNK_BYTES / (signals.len() * RECORD_BYTES)).max(1);
        self.window = vec![0; self.window_records * signals.len() * RECORD_BYTES];
        (self.window_first, self.window_held) = (0, 0);
        (self.record, self.sample, self.reached) = (0, 0, 0);
        self.origin = 0;
        if self.stream().channels[0].records > 0 {
            self.fill_window()?;
            self.origin = self.record_of(0)?.0;
        }
        Ok(())
    }

    fn selection(&self) -> &[usize] {
        &self.selection
    }

    fn read_block(&mut self, buf: &mut [f64]) -> Result<Option<BlockMeta>, FileError> {
        let channels = self.selection.len();
        let capacity = frames_that_fit(&self.info, buf, channels)?;
        let records = self.stream().channels[0].records;
        let mut filled = 0;
        let mut block_start = None;
        while filled < capacity && self.record < records {
            self.fill_window()?;
            let (number, _) = self.record_of(0)?;
            let record_start = number - self.origin;
            if self.sample == 0 && record_start < self.reached as i64 {
                return Err(FileError::Malformed {
                    path: self.stream().channels[0].path.clone(),
                    format: FORMAT,
                    problem: format!(
                        "record {} starts at sample number {number}, before the record before it ends ({}): records must not overlap or go back",
                        self.record,
                        self.reached as i64 + self.origin
                    ),
                });
            }
            let here = record_start as u64 + self.sample as u64;
            match block_start {
                None => block_start = Some(here),
                Some(start) if start + filled as u64 != here => break, // a gap ends the block
                Some(_) => {}
            }
            let frames = (capacity - filled).min(SAMPLES_PER_RECORD - self.sample);
            for slot in 0..channels {
                let (slot_number, samples) = self.record_of(slot)?;
                let channel = &self.stream().channels[self.places[self.selection[slot]].1];
                if slot_number != number {
                    return Err(FileError::Malformed {
                        path: channel.path.clone(),
                        format: FORMAT,
                        problem: format!(
                            "record {} starts at sample number {slot_number} but the same record of {} starts at {number}: the channels are not aligned",
                            self.record,
                            self.stream().channels[self.places[self.selection[0]].1].path.display()
                        ),
                    });
                }
                let scale = channel.bit_volts;
                let samples = &samples[2 * self.sample..2 * (self.sample + frames)];
                let slots = buf[filled * channels + slot..].iter_mut().step_by(channels);
                for (pair, out) in samples.chunks_exact(2).zip(slots) {
                    *out = f64::from(i16::from_be_bytes([pair[0], pair[1]])) * scale;
                }
            }
            filled += frames;
            self.sample += frames;
            if self.sample == SAMPLES_PER_RECORD {
                self.reached = record_start as u64 + SAMPLES_PER_RECORD as u64;
                self.record += 1;
                self.sample = 0;
            }
        }
        Ok(block_start.map(|start| BlockMeta {
            start,
            frames: filled,
        }))
    }
}
