//! The streaming reader interface every recording format implements.
//!
//! [`super::open_reader`] opens a file, checks its header against the file's
//! size and returns a [`SignalReader`]: [`SignalReader::info`] says what the
//! file holds (before any sample is read), [`SignalReader::select`] picks the
//! signals to read (one stream), and [`SignalReader::read_block`] fills a
//! caller-owned buffer with interleaved frames of them, in physical units,
//! and says at which sample index the block starts. Blocks need not be
//! contiguous: a reader hands the block after a gap (EDF+D) with its own
//! start, and the controller counts the skipped frames. Readers keep only
//! fixed-size buffers, so memory does not grow with the file's length.

use std::fs::{File, FileType};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::FileError;
use crate::recording::{
    select_signals, Annotation, ChannelSelector, Recording, SelectError, Selectable, Signal,
};
use crate::time::{SampleIndex, SampleRate};

pub use crate::time::MAX_RATE_HZ;

/// Bytes an interleaved reader reads at once (at least one frame).
pub(crate) const CHUNK_BYTES: usize = 1 << 20;
/// The shortest window [`SequentialReader::window_at`] gives before the end of the file.
pub(crate) const MIN_WINDOW_BYTES: usize = CHUNK_BYTES / 2;

/// One signal as the file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalInfo {
    pub label: String,
    /// Physical unit as written in the file ("uV", "mV", ...).
    pub unit: String,
    pub rate: SampleRate,
    /// Where the rate comes from (header fields and their values, a sidecar,
    /// an option), so that an error about the rate can name it.
    pub rate_origin: String,
    /// Physical units per digital step.
    pub scale: f64,
    /// Samples of this signal in the file (gaps between records not counted).
    pub samples: u64,
    /// Signals of one stream are read together as frames: one rate of an EDF,
    /// one `continuous.dat` of an Open Ephys recording.
    pub stream: usize,
}

/// What a file holds, known once it is opened.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    pub path: PathBuf,
    /// "EDF", "EDF+", "BDF+", "WAV", "raw int16", "Open Ephys binary", "XDF", ...
    pub format: &'static str,
    pub signals: Vec<SignalInfo>,
    /// The named streams of a file that has several (XDF streams, Open Ephys
    /// binary streams): what `--stream` picks. Empty for other formats.
    pub streams: Vec<StreamInfo>,
    /// EDF+/BDF+ annotations, onsets in seconds from the first sample.
    pub annotations: Vec<Annotation>,
    /// What the reader tolerated but the user must know (a truncated final
    /// record, trailing bytes, gaps): one line each, naming the file.
    pub notices: Vec<String>,
}

/// A named stream of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// The `SignalInfo::stream` of its signals; `None` for a stream that is
    /// not read as signals (markers, text, irregular samples).
    pub id: Option<usize>,
    pub name: String,
    /// One line for `neuroloop info`: what the stream holds, and why it is not
    /// read as signals where it is not.
    pub description: String,
}

impl SourceInfo {
    /// Resolve channel selectors among the signals of the stream named
    /// `stream` (ignoring case and surrounding spaces); indices count within
    /// that stream. Errors name the file, the stream and what it has.
    pub fn select_in_stream(
        &self,
        stream: &str,
        selectors: &[ChannelSelector],
    ) -> Result<Vec<usize>, FileError> {
        let problem = |problem: String| FileError::BadOption {
            path: self.path.clone(),
            problem,
        };
        let names = || {
            self.streams
                .iter()
                .map(|s| format!("{:?}", s.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let found = self
            .streams
            .iter()
            .find(|s| s.name.trim().eq_ignore_ascii_case(stream.trim()))
            .ok_or_else(|| {
                problem(if self.streams.is_empty() {
                    format!(
                        "a {} file has no named streams to pick {stream:?} from",
                        self.format
                    )
                } else {
                    format!("no stream is named {stream:?}; the file has {}", names())
                })
            })?;
        let id = found.id.ok_or_else(|| {
            problem(format!(
                "stream {:?} is not read as signals: {}",
                found.name, found.description
            ))
        })?;
        let members: Vec<usize> = (0..self.signals.len())
            .filter(|&i| self.signals[i].stream == id)
            .collect();
        let selectable: Vec<Selectable> = members
            .iter()
            .map(|&i| Selectable {
                label: &self.signals[i].label,
                rate: self.signals[i].rate,
                stream: id,
            })
            .collect();
        let chosen = select_signals(&selectable, selectors)
            .map_err(|e| problem(format!("stream {:?}: {e}", found.name)))?;
        Ok(chosen.into_iter().map(|i| members[i]).collect())
    }

    /// Resolve channel selectors (see [`select_signals`]).
    pub fn select(&self, selectors: &[ChannelSelector]) -> Result<Vec<usize>, SelectError> {
        let selectable: Vec<Selectable> = self
            .signals
            .iter()
            .map(|s| Selectable {
                label: &s.label,
                rate: s.rate,
                stream: s.stream,
            })
            .collect();
        select_signals(&selectable, selectors)
    }

    /// A one-line description of where signal `index`'s rate comes from, for errors.
    pub fn describe_rate(&self, index: usize) -> String {
        let signal = &self.signals[index];
        format!(
            "{}: signal {index} ({:?}) sample rate {} (from {})",
            self.path.display(),
            signal.label.trim(),
            signal.rate,
            signal.rate_origin
        )
    }
}

/// Where a block read by [`SignalReader::read_block`] sits in the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    /// Sample index of the block's first frame (sample 0 = the file's first).
    pub start: SampleIndex,
    /// Frames written to the front of the buffer.
    pub frames: usize,
}

/// A recording read block by block.
pub trait SignalReader {
    fn info(&self) -> &SourceInfo;

    /// Read these signals (indices into `info().signals`, all of one stream,
    /// in this order) from the start of the file. Until called, a reader
    /// reads the signals `info().select(&[])` picks.
    fn select(&mut self, signals: &[usize]) -> Result<(), FileError>;

    /// The signals [`SignalReader::read_block`] returns, in frame order.
    fn selection(&self) -> &[usize];

    /// Fill the front of `buf` with interleaved frames of the selected
    /// signals. Returns `None` at the end; otherwise the block's start and
    /// length, at least one frame and at most `buf.len() / selection().len()`.
    /// A block never spans a gap. `buf` must hold at least one frame.
    fn read_block(&mut self, buf: &mut [f64]) -> Result<Option<BlockMeta>, FileError>;
}

/// The signal indices [`SignalReader::select`] may take, or why not.
pub(crate) fn check_selection(info: &SourceInfo, signals: &[usize]) -> Result<(), FileError> {
    let problem = |problem: String| FileError::BadOption {
        path: info.path.clone(),
        problem,
    };
    let first = *signals
        .first()
        .ok_or_else(|| problem("no signal selected".into()))?;
    for &index in signals {
        let signal = info.signals.get(index).ok_or_else(|| {
            problem(format!(
                "signal index {index} is out of range; the file has {} signal(s)",
                info.signals.len()
            ))
        })?;
        if signal.stream != info.signals[first].stream {
            return Err(problem(format!(
                "signals {first} and {index} belong to different streams"
            )));
        }
    }
    Ok(())
}

/// The default selection: every signal of the first signal's stream (none
/// for a file without signals).
pub(crate) fn default_selection(info: &SourceInfo) -> Vec<usize> {
    info.select(&[]).unwrap_or_default()
}

/// Frames of `channels` samples that fit `buf`, or an error if not even one.
pub(crate) fn frames_that_fit(
    info: &SourceInfo,
    buf: &[f64],
    channels: usize,
) -> Result<usize, FileError> {
    match buf.len().checked_div(channels) {
        Some(frames) if frames > 0 => Ok(frames),
        _ => Err(FileError::BadOption {
            path: info.path.clone(),
            problem: format!(
                "a read buffer of {} value(s) cannot hold one frame of {channels} selected signal(s)",
                buf.len()
            ),
        }),
    }
}

/// Open `path` for reading if it is a regular file. Checked on the path
/// before opening (opening a device can have effects, a FIFO blocks until
/// written) and again on the opened file, which is opened non-blocking so
/// that a FIFO swapped in between cannot hang the open.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64), FileError> {
    let io_error = |action| {
        move |source| FileError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let not_regular = |kind: FileType| FileError::NotRegular {
        path: path.to_path_buf(),
        kind: describe_file_type(kind),
    };
    let metadata = std::fs::metadata(path).map_err(io_error("read"))?;
    if !metadata.is_file() {
        return Err(not_regular(metadata.file_type()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io_error("open"))?;
    let metadata = file.metadata().map_err(io_error("read"))?;
    if !metadata.is_file() {
        return Err(not_regular(metadata.file_type()));
    }
    Ok((file, metadata.len()))
}

fn describe_file_type(kind: FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Fill `buf` from `offset` of `file`; a file that ends early (cut while
/// being read) is an error naming the offset.
pub(crate) fn read_exact_at(
    file: &File,
    path: &Path,
    buf: &mut [u8],
    offset: u64,
) -> Result<(), FileError> {
    file.read_exact_at(buf, offset).map_err(|source| {
        let source = if source.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(
                source.kind(),
                format!(
                    "the file ends before byte {} (was it cut while being read?)",
                    offset + buf.len() as u64
                ),
            )
        } else {
            source
        };
        FileError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        }
    })
}

/// Read every signal of a file into memory (for tests, scoring and small
/// files; replay streams instead). A gap between blocks is an error, since a
/// [`Recording`] holds gap-free signals.
pub fn collect_recording(mut reader: Box<dyn SignalReader>) -> Result<Recording, FileError> {
    let info = reader.info().clone();
    let mut signals: Vec<Signal> = info
        .signals
        .iter()
        .map(|s| Signal {
            label: s.label.clone(),
            unit: s.unit.clone(),
            rate: s.rate,
            samples: Vec::new(),
        })
        .collect();
    let mut streams: Vec<usize> = info.signals.iter().map(|s| s.stream).collect();
    streams.sort_unstable();
    streams.dedup();
    for stream in streams {
        let members: Vec<usize> = (0..info.signals.len())
            .filter(|&i| info.signals[i].stream == stream)
            .collect();
        reader.select(&members)?;
        let mut buf = vec![0.0; 4096 * members.len()];
        let mut next = 0;
        while let Some(block) = reader.read_block(&mut buf)? {
            if block.start != next {
                return Err(FileError::Gap {
                    path: info.path.clone(),
                    expected: next,
                    resumes: block.start,
                });
            }
            for frame in buf[..block.frames * members.len()].chunks_exact(members.len()) {
                for (&value, &signal) in frame.iter().zip(&members) {
                    signals[signal].samples.push(value);
                }
            }
            next = block.start + block.frames as u64;
        }
    }
    Ok(Recording {
        signals,
        annotations: info.annotations,
    })
}

/// How interleaved samples are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SampleCoding {
    /// Unsigned 8-bit, 128 = zero (8-bit WAV).
    U8,
    I16,
    I24,
    I32,
    F32,
}

impl SampleCoding {
    pub(crate) fn bytes(self) -> usize {
        match self {
            SampleCoding::U8 => 1,
            SampleCoding::I16 => 2,
            SampleCoding::I24 => 3,
            SampleCoding::I32 | SampleCoding::F32 => 4,
        }
    }

    /// The value of one little-endian sample (`bytes` holds at least `self.bytes()`).
    #[inline]
    fn decode(self, bytes: &[u8]) -> f64 {
        match self {
            SampleCoding::U8 => f64::from(i16::from(bytes[0]) - 128),
            SampleCoding::I16 => f64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
            // The 24 bits in the top of an i32, shifted back to sign-extend.
            SampleCoding::I24 => {
                f64::from(i32::from_le_bytes([0, bytes[0], bytes[1], bytes[2]]) >> 8)
            }
            SampleCoding::I32 => {
                f64::from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            }
            SampleCoding::F32 => {
                f64::from(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            }
        }
    }
}

/// Interleaved fixed-width frames at a known offset of one file (WAV data,
/// headerless int16, an Open Ephys `continuous.dat`), read [`CHUNK_BYTES`]
/// at a time into a fixed buffer and scaled per channel (`value = sample × scale`).
pub(crate) struct InterleavedFrames {
    path: PathBuf,
    file: File,
    data_offset: u64,
    frames: u64,
    channels: usize,
    coding: SampleCoding,
    scales: Vec<f64>,
    /// Channels (columns of a frame) returned, in order.
    columns: Vec<usize>,
    next_frame: u64,
    /// Whole frames of the file from `chunk_first` on, `chunk_frames` of them.
    chunk: Vec<u8>,
    chunk_first: u64,
    chunk_frames: usize,
}

impl InterleavedFrames {
    /// `scales` has one entry per channel (at least one).
    pub(crate) fn new(
        path: PathBuf,
        file: File,
        data_offset: u64,
        frames: u64,
        coding: SampleCoding,
        scales: Vec<f64>,
    ) -> Self {
        let frame_bytes = coding.bytes() * scales.len();
        let chunk_frames = (CHUNK_BYTES / frame_bytes).max(1);
        Self {
            path,
            file,
            data_offset,
            frames,
            channels: scales.len(),
            coding,
            columns: (0..scales.len()).collect(),
            scales,
            next_frame: 0,
            chunk: vec![0; chunk_frames * frame_bytes],
            chunk_first: 0,
            chunk_frames: 0,
        }
    }

    /// Return these channels from the first frame on.
    pub(crate) fn set_columns(&mut self, columns: &[usize]) {
        self.columns = columns.to_vec();
        self.next_frame = 0;
    }

    pub(crate) fn read_block(
        &mut self,
        info: &SourceInfo,
        buf: &mut [f64],
    ) -> Result<Option<BlockMeta>, FileError> {
        let width = self.coding.bytes();
        let frame_bytes = width * self.channels;
        let capacity = frames_that_fit(info, buf, self.columns.len())?;
        let start = self.next_frame;
        if start >= self.frames {
            return Ok(None);
        }
        let chunk_end = self.chunk_first + self.chunk_frames as u64;
        if !(self.chunk_first..chunk_end).contains(&start) {
            let frames =
                (self.frames - start).min((self.chunk.len() / frame_bytes) as u64) as usize;
            let bytes = &mut self.chunk[..frames * frame_bytes];
            let offset = self.data_offset + start * frame_bytes as u64;
            read_exact_at(&self.file, &self.path, bytes, offset)?;
            (self.chunk_first, self.chunk_frames) = (start, frames);
        }
        let held = (self.chunk_first + self.chunk_frames as u64 - start) as usize;
        let frames = held.min(capacity);
        let from = (start - self.chunk_first) as usize * frame_bytes;
        let bytes = &self.chunk[from..from + frames * frame_bytes];
        let outputs = buf.chunks_exact_mut(self.columns.len());
        for (index, (frame, out)) in bytes.chunks_exact(frame_bytes).zip(outputs).enumerate() {
            for (slot, &column) in out.iter_mut().zip(&self.columns) {
                let value = self.coding.decode(&frame[column * width..]) * self.scales[column];
                if !value.is_finite() {
                    return Err(FileError::NonFinite {
                        path: self.path.clone(),
                        channel: column,
                        frame: start + index as u64,
                    });
                }
                *slot = value;
            }
        }
        self.next_frame += frames as u64;
        Ok(Some(BlockMeta { start, frames }))
    }
}

/// A reader over one or more [`InterleavedFrames`] streams (WAV and
/// headerless files have one, an Open Ephys recording one per `continuous.dat`).
pub struct InterleavedReader {
    info: SourceInfo,
    streams: Vec<InterleavedFrames>,
    /// Stream and column of each signal of `info`.
    places: Vec<(usize, usize)>,
    selection: Vec<usize>,
}

impl InterleavedReader {
    /// `info.signals[i]` is column `places[i].1` of `streams[places[i].0]`,
    /// and its `stream` is `places[i].0`.
    pub(crate) fn new(
        info: SourceInfo,
        streams: Vec<InterleavedFrames>,
        places: Vec<(usize, usize)>,
    ) -> Result<Self, FileError> {
        let mut reader = Self {
            info,
            streams,
            places,
            selection: Vec::new(),
        };
        let selection = default_selection(&reader.info);
        if !selection.is_empty() {
            reader.select(&selection)?;
        }
        Ok(reader)
    }
}

impl SignalReader for InterleavedReader {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn select(&mut self, signals: &[usize]) -> Result<(), FileError> {
        check_selection(&self.info, signals)?;
        let columns: Vec<usize> = signals.iter().map(|&i| self.places[i].1).collect();
        self.streams[self.places[signals[0]].0].set_columns(&columns);
        self.selection = signals.to_vec();
        Ok(())
    }

    fn selection(&self) -> &[usize] {
        &self.selection
    }

    fn read_block(&mut self, buf: &mut [f64]) -> Result<Option<BlockMeta>, FileError> {
        let Some(&first) = self.selection.first() else {
            return Ok(None);
        };
        self.streams[self.places[first].0].read_block(&self.info, buf)
    }
}

/// A file read front to back through one fixed buffer of [`CHUNK_BYTES`]
/// (text lines, XDF chunks, Open Ephys records): a request inside the buffer
/// is served from it, any other refills the buffer from the requested offset.
pub(crate) struct SequentialReader {
    path: PathBuf,
    file: File,
    length: u64,
    buf: Vec<u8>,
    buf_start: u64,
    buf_len: usize,
}

impl SequentialReader {
    pub(crate) fn new(path: &Path, file: File, length: u64) -> Self {
        Self {
            path: path.to_path_buf(),
            file,
            length,
            buf: vec![0; CHUNK_BYTES],
            buf_start: 0,
            buf_len: 0,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length when it was opened.
    pub(crate) fn length(&self) -> u64 {
        self.length
    }

    /// `count` bytes (at most [`CHUNK_BYTES`]) from `offset`; the caller
    /// checks that they lie inside [`Self::length`] (a file cut while it is
    /// read is an error naming the offset).
    pub(crate) fn bytes_at(&mut self, offset: u64, count: usize) -> Result<&[u8], FileError> {
        debug_assert!(count <= CHUNK_BYTES);
        let end = self.buf_start + self.buf_len as u64;
        if offset < self.buf_start || offset + count as u64 > end {
            let available = (self.length.saturating_sub(offset)).min(CHUNK_BYTES as u64) as usize;
            let wanted = available.max(count);
            read_exact_at(&self.file, &self.path, &mut self.buf[..wanted], offset)?;
            (self.buf_start, self.buf_len) = (offset, wanted);
        }
        let from = (offset - self.buf_start) as usize;
        Ok(&self.buf[from..from + count])
    }

    /// At least [`MIN_WINDOW_BYTES`] (or up to the end of the file) and at
    /// most [`CHUNK_BYTES`] bytes from `offset`, for scanning text: served
    /// from the buffer while it holds that much, so that scanning line by line
    /// reads each byte once.
    pub(crate) fn window_at(&mut self, offset: u64) -> Result<&[u8], FileError> {
        let end = self.buf_start + self.buf_len as u64;
        let held = offset >= self.buf_start && offset <= end;
        if held && (end - offset >= MIN_WINDOW_BYTES as u64 || end >= self.length) {
            return Ok(&self.buf[(offset - self.buf_start) as usize..self.buf_len]);
        }
        let count = (self.length.saturating_sub(offset)).min(CHUNK_BYTES as u64) as usize;
        self.bytes_at(offset, count)
    }
}
