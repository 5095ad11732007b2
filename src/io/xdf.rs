//! XDF (Lab Streaming Layer recordings, LabRecorder): `XDF:` and then
//! chunks (`[length bytes: 1|4|8][length][tag u16][content]`): a file
//! header, one header per stream (XML: name, type, channel count, nominal
//! rate, value format, channel labels and units), samples chunks of any
//! stream in any order, clock offsets, boundaries and footers.
//!
//! Each stream is a stream of the reader, picked by name (`--stream`). A
//! stream is read as signals when its values are numeric and its nominal
//! rate is positive: its samples, in order, are the frames (sample index =
//! the sample's place in the stream, as `pyxdf` returns them). Its time
//! stamps (written, or deduced as the previous one plus one period) are
//! checked when the file is opened: a stream whose first sample has no time
//! stamp, whose stamps jump back or ahead by more than [`jitter_allowance_s`]
//! (samples lost, a clock reset), or whose stamps advance at a rate more than
//! 1 % from the nominal one, is refused when selected, with the mismatch. A
//! stream of strings (markers) becomes annotations, its time stamps
//! corrected by its clock offsets and put on the clock of the first signal
//! stream (corrected by its own), as `pyxdf`'s clock synchronisation does.
//! An irregular numeric stream (nominal rate 0) is listed, not read.
//!
//! Memory: fixed buffers, the stream headers, the markers and the clock
//! offsets (16 bytes per offset, LabRecorder writes one per stream every 5 s).
//! A chunk cut short at the end of the file (a recording that was killed) is
//! reported as a notice, and what precedes it is read.

use std::path::Path;

use super::raw::MAX_CHANNELS;
use super::reader::{
    check_selection, frames_that_fit, open_regular, BlockMeta, SequentialReader, SignalInfo,
    SignalReader, SourceInfo, StreamInfo, CHUNK_BYTES, MAX_RATE_HZ,
};
use super::FileError;
use crate::recording::Annotation;
use crate::time::{SampleIndex, SampleRate};

const FORMAT: &str = "XDF";
const MAGIC: &[u8; 4] = b"XDF:";

const TAG_FILE_HEADER: u16 = 1;
const TAG_STREAM_HEADER: u16 = 2;
const TAG_SAMPLES: u16 = 3;
const TAG_CLOCK_OFFSET: u16 = 4;

/// Largest XML (file or stream header) read.
const MAX_XML_BYTES: u64 = 1 << 20;
/// Largest marker text kept.
const MAX_MARKER_BYTES: u64 = 4096;

/// An effective rate further than this from the nominal one is refused.
const RATE_TOLERANCE: f64 = 0.01;

/// How far a time stamp may step back, or beyond one period ahead, before
/// the stream counts as irregular: 0.1 s or two periods, whichever is more
/// (LSL stamps carry transport jitter).
pub fn jitter_allowance_s(rate_hz: f64) -> f64 {
    (0.1f64).max(2.0 / rate_hz)
}

/// How a stream's values are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ValueFormat {
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    Text,
}

impl ValueFormat {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "int8" => Self::I8,
            "int16" => Self::I16,
            "int32" => Self::I32,
            "int64" => Self::I64,
            "float32" => Self::F32,
            "double64" => Self::F64,
            "string" => Self::Text,
            _ => return None,
        })
    }

    fn bytes(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 => 2,
            Self::I32 | Self::F32 => 4,
            Self::I64 | Self::F64 => 8,
            Self::Text => 0,
        }
    }

    #[inline]
    fn decode(self, b: &[u8]) -> f64 {
        match self {
            Self::I8 => f64::from(b[0] as i8),
            Self::I16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
            Self::I32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Self::I64 => i64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as f64,
            Self::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Self::F64 => f64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            Self::Text => f64::NAN,
        }
    }
}

/// One stream as its header describes it and the open pass found it.
struct XdfStream {
    id: u32,
    name: String,
    kind: String,
    channels: usize,
    nominal_hz: f64,
    format: ValueFormat,
    labels: Vec<String>,
    units: Vec<String>,
    samples: u64,
    first_stamp: Option<f64>,
    last_stamp: f64,
    /// The first timing problem found, refusing the stream as signals.
    timing_problem: Option<String>,
    clock_offsets: Vec<(f64, f64)>,
    /// Markers (time stamp, text) of a string stream.
    markers: Vec<(f64, String)>,
    /// Its `SignalInfo::stream`, when read as signals.
    signal_stream: Option<usize>,
}

impl XdfStream {
    fn is_signal(&self) -> bool {
        self.format != ValueFormat::Text && self.nominal_hz > 0.0
    }

    /// Check one more time stamp (`None`: not written, deduced).
    fn stamp(&mut self, written: Option<f64>) {
        let index = self.samples;
        self.samples += 1;
        let stamp = match (written, self.first_stamp) {
            (Some(t), _) => t,
            (None, Some(_)) if self.nominal_hz > 0.0 => self.last_stamp + 1.0 / self.nominal_hz,
            (None, Some(_)) => self.last_stamp,
            (None, None) => {
                self.timing_problem
                    .get_or_insert_with(|| "its first sample has no time stamp".into());
                return;
            }
        };
        if self.first_stamp.is_none() {
            self.first_stamp = Some(stamp);
        } else if self.is_signal() && self.timing_problem.is_none() {
            let period = 1.0 / self.nominal_hz;
            let allowance = jitter_allowance_s(self.nominal_hz);
            let step = stamp - self.last_stamp;
            if !(-allowance..=period + allowance).contains(&step) {
                self.timing_problem = Some(format!(
                    "its time stamps jump by {step:.6} s between samples {} and {index} (at {:.6} s; one period is {period:.6} s, jitter of {allowance} s is allowed): samples were lost or the clock was reset, so its samples are not at the nominal rate",
                    index - 1,
                    self.last_stamp
                ));
            }
        }
        self.last_stamp = stamp;
    }

    /// Why the stream is not read as signals, or `None`.
    fn refusal(&self) -> Option<String> {
        if self.format == ValueFormat::Text {
            return Some("its values are strings (markers: read as annotations)".into());
        }
        if self.nominal_hz <= 0.0 {
            return Some(format!(
                "its nominal_srate is {} (irregular sampling): its samples have no rate to be replayed at",
                self.nominal_hz
            ));
        }
        if let Some(problem) = &self.timing_problem {
            return Some(problem.clone());
        }
        if self.samples >= 2 {
            let first = self.first_stamp.unwrap_or_default();
            let effective = (self.samples - 1) as f64 / (self.last_stamp - first);
            if !(effective.is_finite()
                && (effective / self.nominal_hz - 1.0).abs() <= RATE_TOLERANCE)
            {
                return Some(format!(
                    "its time stamps advance at {effective:.4} Hz ({} samples from {first:.6} s to {:.6} s) but its nominal_srate is {} Hz: the rate is in doubt",
                    self.samples, self.last_stamp, self.nominal_hz
                ));
            }
        }
        None
    }

    fn describe(&self) -> String {
        let format = format!("{:?}", self.format).to_lowercase();
        let rate = if self.nominal_hz > 0.0 {
            format!("{} Hz", self.nominal_hz)
        } else {
            "irregular".into()
        };
        let what = format!(
            "type {:?}, {} channel(s) of {format}, {rate}, {} sample(s)",
            self.kind, self.channels, self.samples
        );
        match self.refusal() {
            Some(why) => format!("{what}; not read as signals: {why}"),
            None => what,
        }
    }

    /// The clock offset (s) to add to a time stamp `t` of this stream, as
    /// pyxdf synchronises clocks: a straight line fitted to the offsets of
    /// the segment (offsets between two clock resets) nearest to `t`.
    fn offset_at(&self, t: f64) -> f64 {
        let mut best: Option<(f64, &[(f64, f64)])> = None;
        let mut start = 0;
        for end in 1..=self.clock_offsets.len() {
            let reset = end == self.clock_offsets.len()
                || self.clock_offsets[end].0 < self.clock_offsets[end - 1].0;
            if reset {
                let segment = &self.clock_offsets[start..end];
                let (low, high) = (segment[0].0, segment[segment.len() - 1].0);
                let distance = (low - t).max(t - high).max(0.0);
                if best.map_or(true, |(d, _)| distance < d) {
                    best = Some((distance, segment));
                }
                start = end;
            }
        }
        let Some((_, segment)) = best else {
            return 0.0;
        };
        let n = segment.len() as f64;
        let mean_t = segment.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_v = segment.iter().map(|p| p.1).sum::<f64>() / n;
        let spread: f64 = segment.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
        let slope = if spread > 0.0 {
            segment
                .iter()
                .map(|p| (p.0 - mean_t) * (p.1 - mean_v))
                .sum::<f64>()
                / spread
        } else {
            0.0
        };
        mean_v + slope * (t - mean_t)
    }
}

/// A chunk's place in the file.
#[derive(Clone, Copy)]
struct Chunk {
    tag: u16,
    /// Offset of the content (after the tag), and its length.
    content: u64,
    length: u64,
}

/// A streaming XDF reader (see the module documentation).
pub struct XdfReader {
    info: SourceInfo,
    data: SequentialReader,
    streams: Vec<XdfStream>,
    /// Where the whole chunks end.
    end: u64,
    /// Offset of the first chunk after the magic.
    first_chunk: u64,
    /// XDF stream (index into `streams`) and channels of the selection.
    stream: usize,
    columns: Vec<usize>,
    selection: Vec<usize>,
    /// Next chunk to look at, and within a samples chunk of the selected
    /// stream: the next sample's offset, the samples left and the chunk's end.
    next_chunk: u64,
    in_chunk: Option<(u64, u64, u64)>,
    next_index: SampleIndex,
}

/// Open an XDF file: one pass over every chunk checks the structure, the
/// stream headers and every sample's time stamp.
pub fn open_xdf(path: &Path) -> Result<XdfReader, FileError> {
    let (file, length) = open_regular(path)?;
    let mut data = SequentialReader::new(path, file, length);
    if length < 4 || data.bytes_at(0, 4)? != MAGIC {
        return Err(malformed(path, "does not start with \"XDF:\"".into()));
    }
    let mut streams: Vec<XdfStream> = Vec::new();
    let mut notices = Vec::new();
    let mut offset = 4u64;
    let mut seen_header = false;
    while offset < length {
        let chunk = match read_chunk_header(&mut data, offset)? {
            Ok(chunk) => chunk,
            Err(cut) => {
                notices.push(format!(
                    "{}: the last chunk (byte offset {offset}) is cut short ({cut}) and is not read",
                    path.display()
                ));
                break;
            }
        };
        let at = |problem: String| {
            malformed(
                path,
                format!(
                    "chunk at byte offset {offset} (tag {}): {problem}",
                    chunk.tag
                ),
            )
        };
        match chunk.tag {
            TAG_FILE_HEADER => {
                let xml = read_xml(&mut data, chunk.content, chunk.length).map_err(at)?;
                let version = xml_field(&xml, &["version"]).unwrap_or_default();
                if version.trim() != "1.0" {
                    return Err(at(format!(
                        "the file header's version is {version:?}; XDF 1.0 is read"
                    )));
                }
                seen_header = true;
            }
            TAG_STREAM_HEADER => {
                let id = stream_id(&mut data, chunk).map_err(at)?;
                if streams.iter().any(|s| s.id == id) {
                    return Err(at(format!("a second header for stream {id}")));
                }
                let xml = read_xml(&mut data, chunk.content + 4, chunk.length - 4).map_err(at)?;
                streams.push(parse_stream_header(id, &xml).map_err(at)?);
            }
            TAG_SAMPLES => {
                let id = stream_id(&mut data, chunk).map_err(at)?;
                let stream = streams.iter_mut().find(|s| s.id == id).ok_or_else(|| {
                    at(format!("samples of stream {id}, whose header has not come"))
                })?;
                scan_samples(&mut data, chunk, stream).map_err(at)?;
            }
            TAG_CLOCK_OFFSET => {
                if chunk.length != 20 {
                    return Err(at(format!(
                        "a clock offset chunk of {} bytes (20 expected)",
                        chunk.length
                    )));
                }
                let bytes = data.bytes_at(chunk.content, 20)?;
                let id = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
                let time = f64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
                let value = f64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
                if let Some(stream) = streams.iter_mut().find(|s| s.id == id) {
                    if time.is_finite() && value.is_finite() {
                        stream.clock_offsets.push((time, value));
                    }
                }
            }
            _ => {} // boundaries, footers and unknown chunks are skipped, as the spec says
        }
        if !seen_header {
            return Err(at("the first chunk is not the file header".into()));
        }
        offset = chunk.content + chunk.length;
    }
    if !seen_header {
        return Err(malformed(path, "no file header chunk".into()));
    }
    let mut signals = Vec::new();
    let mut stream_infos = Vec::new();
    let mut next_signal_stream = 0;
    for stream in &mut streams {
        if stream.refusal().is_none() {
            stream.signal_stream = Some(next_signal_stream);
            let rate = SampleRate::new(stream.nominal_hz).expect("checked with the header");
            for channel in 0..stream.channels {
                signals.push(SignalInfo {
                    label: stream.labels[channel].clone(),
                    unit: stream.units[channel].clone(),
                    rate,
                    rate_origin: format!(
                        "{} stream {:?} nominal_srate",
                        path.display(),
                        stream.name
                    ),
                    scale: 1.0,
                    samples: stream.samples,
                    stream: next_signal_stream,
                });
            }
            next_signal_stream += 1;
        }
        stream_infos.push(StreamInfo {
            id: stream.signal_stream,
            name: stream.name.clone(),
            description: stream.describe(),
        });
    }
    let annotations = markers_as_annotations(&streams, &mut notices, path);
    let info = SourceInfo {
        path: path.to_path_buf(),
        format: FORMAT,
        signals,
        streams: stream_infos,
        annotations,
        notices,
    };
    let mut reader = XdfReader {
        info,
        data,
        streams,
        end: offset.min(length),
        first_chunk: 4,
        stream: 0,
        columns: Vec::new(),
        selection: Vec::new(),
        next_chunk: 4,
        in_chunk: None,
        next_index: 0,
    };
    let selection = super::reader::default_selection(&reader.info);
    if !selection.is_empty() {
        reader.select(&selection)?;
    }
    Ok(reader)
}

fn malformed(path: &Path, problem: String) -> FileError {
    FileError::Malformed {
        path: path.to_path_buf(),
        format: FORMAT,
        problem,
    }
}

/// The markers of every string stream as annotations, on the clock of the
/// first signal stream (seconds from its first sample).
fn markers_as_annotations(
    streams: &[XdfStream],
    notices: &mut Vec<String>,
    path: &Path,
) -> Vec<Annotation> {
    let marker_count: usize = streams.iter().map(|s| s.markers.len()).sum();
    if marker_count == 0 {
        return Vec::new();
    }
    let Some(reference) = streams
        .iter()
        .find(|s| s.signal_stream.is_some() && s.first_stamp.is_some())
    else {
        notices.push(format!(
            "{}: {marker_count} marker(s) but no signal stream to place them on: not read",
            path.display()
        ));
        return Vec::new();
    };
    let first = reference.first_stamp.unwrap_or_default();
    let origin = first + reference.offset_at(first);
    let mut annotations: Vec<Annotation> = streams
        .iter()
        .flat_map(|stream| {
            stream.markers.iter().map(move |(t, text)| Annotation {
                onset_s: t + stream.offset_at(*t) - origin,
                duration_s: None,
                text: text.clone(),
            })
        })
        .collect();
    annotations.sort_by(|a, b| a.onset_s.total_cmp(&b.onset_s));
    annotations
}

/// The chunk at `offset`, or why it is cut short by the end of the file.
fn read_chunk_header(
    data: &mut SequentialReader,
    offset: u64,
) -> Result<Result<Chunk, String>, FileError> {
    let length = data.length();
    let width = usize::from(data.bytes_at(offset, 1)?[0]);
    if ![1, 4, 8].contains(&width) {
        return Err(malformed(
            data.path(),
            format!("chunk at byte offset {offset}: its length field is {width} bytes long (1, 4 or 8 are defined)"),
        ));
    }
    if offset + 1 + width as u64 + 2 > length {
        return Ok(Err("its header runs past the end of the file".into()));
    }
    let bytes = data.bytes_at(offset + 1, width + 2)?;
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(&bytes[..width]);
    let chunk_length = u64::from_le_bytes(le);
    let tag = u16::from_le_bytes([bytes[width], bytes[width + 1]]);
    if chunk_length < 2 {
        return Err(malformed(
            data.path(),
            format!("chunk at byte offset {offset}: its length is {chunk_length}, less than its 2-byte tag"),
        ));
    }
    let content = offset + 1 + width as u64 + 2;
    let content_length = chunk_length - 2;
    if content_length > length - content {
        return Ok(Err(format!(
            "it says {content_length} bytes after its tag but {} follow",
            length - content
        )));
    }
    Ok(Ok(Chunk {
        tag,
        content,
        length: content_length,
    }))
}

fn stream_id(data: &mut SequentialReader, chunk: Chunk) -> Result<u32, String> {
    if chunk.length < 4 {
        return Err("too short to hold a stream id".into());
    }
    let bytes = data.bytes_at(chunk.content, 4).map_err(|e| e.to_string())?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
}

fn read_xml(data: &mut SequentialReader, offset: u64, length: u64) -> Result<String, String> {
    if length > MAX_XML_BYTES {
        return Err(format!(
            "an XML header of {length} bytes (at most {MAX_XML_BYTES} are read)"
        ));
    }
    let bytes = data
        .bytes_at(offset, length as usize)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// The text at a path of elements under the root (`info`).
fn xml_field(xml: &str, path: &[&str]) -> Option<String> {
    let document = roxmltree::Document::parse(xml).ok()?;
    let mut node = document.root_element();
    for name in path {
        node = node.children().find(|n| n.has_tag_name(*name))?;
    }
    Some(node.text().unwrap_or_default().trim().to_string())
}

fn parse_stream_header(id: u32, xml: &str) -> Result<XdfStream, String> {
    let document = roxmltree::Document::parse(xml)
        .map_err(|e| format!("stream {id}'s header is not valid XML: {e}"))?;
    let info = document.root_element();
    let text = |name: &str| {
        info.children()
            .find(|n| n.has_tag_name(name))
            .map(|n| n.text().unwrap_or_default().trim().to_string())
    };
    let name = text("name").unwrap_or_default();
    let field = |field: &str| -> Result<String, String> {
        text(field).ok_or_else(|| format!("stream {id} ({name:?}) has no <{field}>"))
    };
    let channels_text = field("channel_count")?;
    let channels = channels_text
        .parse::<usize>()
        .ok()
        .filter(|&c| (1..=MAX_CHANNELS).contains(&c))
        .ok_or_else(|| {
            format!("stream {id} ({name:?}): channel_count is {channels_text:?}; 1 to {MAX_CHANNELS} are read")
        })?;
    let rate_text = field("nominal_srate")?;
    let nominal_hz = rate_text
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r >= 0.0 && *r <= MAX_RATE_HZ)
        .ok_or_else(|| {
            format!("stream {id} ({name:?}): nominal_srate is {rate_text:?}; 0 (irregular) to {MAX_RATE_HZ} Hz are read")
        })?;
    let format_text = field("channel_format")?;
    let format = ValueFormat::parse(&format_text).ok_or_else(|| {
        format!("stream {id} ({name:?}): channel_format {format_text:?} is unknown")
    })?;
    let mut labels: Vec<String> = (0..channels).map(|c| format!("ch{c}")).collect();
    let mut units: Vec<String> = vec![String::new(); channels];
    let listed = info
        .children()
        .find(|n| n.has_tag_name("desc"))
        .and_then(|d| d.children().find(|n| n.has_tag_name("channels")));
    for (index, channel) in listed
        .into_iter()
        .flat_map(|c| c.children().filter(|n| n.has_tag_name("channel")))
        .take(channels)
        .enumerate()
    {
        let child = |tag: &str| {
            channel
                .children()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        };
        if let Some(label) = child("label") {
            labels[index] = label;
        }
        if let Some(unit) = child("unit") {
            units[index] = unit;
        }
    }
    Ok(XdfStream {
        id,
        name,
        kind: text("type").unwrap_or_default(),
        channels,
        nominal_hz,
        format,
        labels,
        units,
        samples: 0,
        first_stamp: None,
        last_stamp: 0.0,
        timing_problem: None,
        clock_offsets: Vec::new(),
        markers: Vec::new(),
        signal_stream: None,
    })
}

/// The sample count at the front of a samples chunk: its offset after it.
fn sample_count(data: &mut SequentialReader, chunk: Chunk) -> Result<(u64, u64), String> {
    let at = chunk.content + 4;
    let end = chunk.content + chunk.length;
    if at + 1 > end {
        return Err("a samples chunk without a sample count".into());
    }
    let width = usize::from(data.bytes_at(at, 1).map_err(|e| e.to_string())?[0]);
    if ![1, 4, 8].contains(&width) || at + 1 + width as u64 > end {
        return Err(format!("a sample count field of {width} bytes"));
    }
    let bytes = data.bytes_at(at + 1, width).map_err(|e| e.to_string())?;
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(bytes);
    Ok((u64::from_le_bytes(le), at + 1 + width as u64))
}

/// The time stamp at `at` (flag byte 0 or 8, then the stamp) and the offset after it.
fn time_stamp(
    data: &mut SequentialReader,
    at: u64,
    end: u64,
) -> Result<(Option<f64>, u64), String> {
    if at >= end {
        return Err(format!("a sample at byte offset {at} runs past its chunk"));
    }
    match data.bytes_at(at, 1).map_err(|e| e.to_string())?[0] {
        0 => Ok((None, at + 1)),
        8 if at + 9 <= end => {
            let bytes = data.bytes_at(at + 1, 8).map_err(|e| e.to_string())?;
            let t = f64::from_le_bytes(bytes.try_into().expect("8 bytes"));
            if !t.is_finite() {
                return Err(format!("the time stamp at byte offset {} is {t}", at + 1));
            }
            Ok((Some(t), at + 9))
        }
        8 => Err(format!("a sample at byte offset {at} runs past its chunk")),
        flag => Err(format!(
            "the time stamp flag at byte offset {at} is {flag} (0 or 8 are defined)"
        )),
    }
}

/// Walk a samples chunk in the open pass: count and check time stamps, keep markers.
fn scan_samples(
    data: &mut SequentialReader,
    chunk: Chunk,
    stream: &mut XdfStream,
) -> Result<(), String> {
    let (count, mut at) = sample_count(data, chunk)?;
    let end = chunk.content + chunk.length;
    let value_bytes = (stream.channels * stream.format.bytes()) as u64;
    for _ in 0..count {
        let (stamp, after) = time_stamp(data, at, end)?;
        at = after;
        if stream.format == ValueFormat::Text {
            let mut text = String::new();
            for channel in 0..stream.channels {
                let (length, after) = string_length(data, at, end)?;
                if channel == 0 {
                    let kept = length.min(MAX_MARKER_BYTES) as usize;
                    let bytes = data.bytes_at(after, kept).map_err(|e| e.to_string())?;
                    text = String::from_utf8_lossy(bytes).into_owned();
                }
                at = after + length;
            }
            stream.stamp(stamp);
            if stream.first_stamp.is_some() {
                stream.markers.push((stream.last_stamp, text));
            }
        } else {
            if at + value_bytes > end {
                return Err(format!(
                    "sample {} of stream {} ({:?}) runs past its chunk",
                    stream.samples, stream.id, stream.name
                ));
            }
            at += value_bytes;
            stream.stamp(stamp);
        }
    }
    if at != end {
        return Err(format!(
            "{count} sample(s) of stream {} ({:?}) end at byte offset {at}, not at the chunk's end ({end})",
            stream.id, stream.name
        ));
    }
    Ok(())
}

/// A string value's length field at `at`: the length, and the offset of the text.
fn string_length(data: &mut SequentialReader, at: u64, end: u64) -> Result<(u64, u64), String> {
    if at >= end {
        return Err(format!("a string at byte offset {at} runs past its chunk"));
    }
    let width = usize::from(data.bytes_at(at, 1).map_err(|e| e.to_string())?[0]);
    if ![1, 4, 8].contains(&width) || at + 1 + width as u64 > end {
        return Err(format!(
            "a string length field of {width} bytes at byte offset {at}"
        ));
    }
    let bytes = data.bytes_at(at + 1, width).map_err(|e| e.to_string())?;
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(bytes);
    let length = u64::from_le_bytes(le);
    let text = at + 1 + width as u64;
    if length > end - text {
        return Err(format!(
            "a string of {length} bytes at byte offset {at} runs past its chunk"
        ));
    }
    Ok((length, text))
}

impl SignalReader for XdfReader {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn select(&mut self, signals: &[usize]) -> Result<(), FileError> {
        check_selection(&self.info, signals)?;
        let signal_stream = self.info.signals[signals[0]].stream;
        self.stream = self
            .streams
            .iter()
            .position(|s| s.signal_stream == Some(signal_stream))
            .expect("every signal stream is an XDF stream");
        let first = self
            .info
            .signals
            .iter()
            .position(|s| s.stream == signal_stream)
            .expect("the stream has signals");
        self.columns = signals.iter().map(|&i| i - first).collect();
        self.selection = signals.to_vec();
        (self.next_chunk, self.in_chunk, self.next_index) = (self.first_chunk, None, 0);
        Ok(())
    }

    fn selection(&self) -> &[usize] {
        &self.selection
    }

    fn read_block(&mut self, buf: &mut [f64]) -> Result<Option<BlockMeta>, FileError> {
        let channels = self.columns.len();
        let capacity = frames_that_fit(&self.info, buf, channels)?;
        let stream = &self.streams[self.stream];
        let (id, format) = (stream.id, stream.format);
        let width = format.bytes();
        let sample_bytes = stream.channels * width;
        let start = self.next_index;
        let mut filled = 0;
        let path = self.info.path.clone();
        let at_chunk = |offset: u64, problem: String| {
            malformed(
                &path,
                format!("samples chunk ending at byte offset {offset}: {problem}"),
            )
        };
        while filled < capacity {
            let Some((mut at, left, end)) = self.in_chunk else {
                // Find the next samples chunk of the selected stream.
                if self.next_chunk >= self.end {
                    break;
                }
                let chunk = read_chunk_header(&mut self.data, self.next_chunk)?.map_err(|cut| {
                    malformed(
                        &path,
                        format!(
                            "the chunk at byte offset {} changed since the file was opened: {cut}",
                            self.next_chunk
                        ),
                    )
                })?;
                self.next_chunk = chunk.content + chunk.length;
                if chunk.tag == TAG_SAMPLES
                    && stream_id(&mut self.data, chunk).map_err(|e| at_chunk(self.next_chunk, e))?
                        == id
                {
                    let (count, at) = sample_count(&mut self.data, chunk)
                        .map_err(|e| at_chunk(self.next_chunk, e))?;
                    self.in_chunk = Some((at, count, self.next_chunk));
                }
                continue;
            };
            if left == 0 {
                self.in_chunk = None;
                continue;
            }
            let frames = (left as usize).min(capacity - filled);
            for frame in 0..frames {
                let (_, after) =
                    time_stamp(&mut self.data, at, end).map_err(|e| at_chunk(end, e))?;
                let values = self.data.bytes_at(after, sample_bytes)?;
                let out = &mut buf[(filled + frame) * channels..(filled + frame + 1) * channels];
                for (index, (slot, &column)) in out.iter_mut().zip(&self.columns).enumerate() {
                    *slot = format.decode(&values[column * width..]);
                    if !slot.is_finite() {
                        return Err(FileError::NonFinite {
                            path: path.clone(),
                            channel: self.selection[index],
                            frame: start + (filled + frame) as u64,
                        });
                    }
                }
                at = after + sample_bytes as u64;
            }
            filled += frames;
            self.in_chunk = Some((at, left - frames as u64, end));
        }
        self.next_index += filled as u64;
        Ok((filled > 0).then_some(BlockMeta {
            start,
            frames: filled,
        }))
    }
}

/// Bytes a sample of `channels` values of the widest format takes, at most: a check
/// that one sample fits the reader's buffer.
const _: () = assert!(9 + MAX_CHANNELS * 8 <= CHUNK_BYTES);
