//! File formats and session output (devices are in `device/`).
//!
//! [`open_reader`] picks a streaming reader ([`reader::SignalReader`]) from the
//! file extension; [`read_recording`] reads a whole file into a [`Recording`]
//! (physical units, f64), which is also what the EDF writer takes.

pub mod continuous;
pub mod edf;
pub mod intan;
pub mod neuroscope;
pub mod openbci_text;
pub mod openephys;
pub mod raw;
pub mod reader;
pub mod recorder;
pub mod session;
pub mod wav;
pub mod xdf;

use std::path::{Path, PathBuf};

use crate::eval::hypnogram::Hypnogram;
use crate::recording::Recording;
pub use raw::RawLayout;
pub use reader::{BlockMeta, SignalInfo, SignalReader, SourceInfo, StreamInfo};

/// Why a recording file could not be read or written. Every message is one
/// line that names the file and the problem (and the field, signal or byte
/// offset where one applies).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: cannot {action}: {source}", .path.display())]
    Io {
        path: PathBuf,
        /// What was being done: "read", "create", "write", "rename to the final name".
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{}: the file is empty", .path.display())]
    Empty { path: PathBuf },
    #[error("{}: is {kind}, not a regular file; recordings are read from files", .path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: not an EDF/BDF file: version field is {found:?} (expected \"0\" for EDF or \"\\xffBIOSEMI\" for BDF)", .path.display())]
    NotEdf { path: PathBuf, found: String },
    #[error("{}: header is cut short: the file has {file_bytes} bytes but the header needs {needed_bytes}", .path.display())]
    TruncatedHeader {
        path: PathBuf,
        file_bytes: u64,
        needed_bytes: u64,
    },
    #[error("{}: header size field says {header_bytes} bytes but {signal_count} signal(s) need 256 * ({signal_count} + 1) = {expected_bytes}", .path.display())]
    HeaderSizeMismatch {
        path: PathBuf,
        header_bytes: i64,
        signal_count: usize,
        expected_bytes: u64,
    },
    #[error("{}: header field {field:?}{signal} (byte offset {offset}) is {value:?}: {problem}", .path.display())]
    BadField {
        path: PathBuf,
        field: &'static str,
        /// Empty for a file-level field, else " of signal N (\"label\")".
        signal: String,
        offset: u64,
        value: String,
        problem: &'static str,
    },
    #[error("{}: data is cut short: the header promises {records_promised} record(s) ({expected_bytes} bytes) but the file has {file_bytes} bytes, so only {records_complete} record(s) are complete", .path.display())]
    TruncatedData {
        path: PathBuf,
        records_promised: u64,
        records_complete: u64,
        expected_bytes: u64,
        file_bytes: u64,
    },
    #[error("{}: signal {signal} ({label:?}) has digital minimum == digital maximum ({digital}), so its physical scaling is undefined", .path.display())]
    DegenerateDigitalRange {
        path: PathBuf,
        signal: usize,
        label: String,
        digital: i64,
    },
    #[error("{}: signal {signal} ({label:?}) has {samples_per_record} sample(s) per record over a record duration of {record_duration_s} s: its sample rate would not be a positive finite number", .path.display())]
    BadSampleRate {
        path: PathBuf,
        signal: usize,
        label: String,
        samples_per_record: u64,
        record_duration_s: f64,
    },
    #[error("{}: signal {signal} ({label:?}) sample rate {rate_hz} Hz (from {origin}) is above the {max_hz} Hz any recording is read at; the header is likely corrupt", .path.display(), max_hz = reader::MAX_RATE_HZ)]
    RateTooHigh {
        path: PathBuf,
        signal: usize,
        label: String,
        rate_hz: f64,
        origin: String,
    },
    #[error("{}: header field \"number of data records\" (byte offset 236) says {declared} but the file holds {complete} complete record(s) of {record_bytes} bytes; if the recording went on after the header was written, set the field to -1 to read to the end of the file", .path.display())]
    RecordCountMismatch {
        path: PathBuf,
        declared: u64,
        complete: u64,
        record_bytes: u64,
    },
    #[error("{}: annotation in data record {record} (byte offset {offset}): {problem}", .path.display())]
    BadAnnotation {
        path: PathBuf,
        record: u64,
        offset: u64,
        problem: String,
    },
    #[error("{}: EDF+D record {record} starts at {onset_s} s, before the records before it end ({expected_s} s); records must not overlap or go back in time", .path.display())]
    Discontinuous {
        path: PathBuf,
        record: u64,
        onset_s: f64,
        expected_s: f64,
    },
    #[error("{}: has a gap: samples resume at index {resumes} after {expected}; read it block by block (replay does) to keep the gap", .path.display())]
    Gap {
        path: PathBuf,
        expected: u64,
        resumes: u64,
    },
    #[error("{}: channel {channel} at frame {frame} is not a finite number (NaN or infinity)", .path.display())]
    NonFinite {
        path: PathBuf,
        channel: usize,
        frame: u64,
    },
    #[error("{}: WAV: {source}", .path.display())]
    Wav { path: PathBuf, source: hound::Error },
    #[error("{}: WAV: {problem}", .path.display())]
    BadWav { path: PathBuf, problem: String },
    #[error("{}: WAV: unsupported sample format {bits}-bit {format} (supported: 8/16/24/32-bit integer, 32-bit float)", .path.display())]
    UnsupportedWav {
        path: PathBuf,
        bits: u16,
        format: &'static str,
    },
    #[error("{}: {length} bytes is not a whole number of {frame_bytes}-byte frames ({channels} channel(s) of int16, as {described_by} says): the channel count is wrong or the file was cut", .path.display())]
    PartialFrame {
        path: PathBuf,
        length: u64,
        frame_bytes: u64,
        channels: usize,
        /// Where the channel count comes from (an option, a sidecar's field).
        described_by: String,
    },
    #[error("{}: {problem}", .path.display())]
    BadOption { path: PathBuf, problem: String },
    #[error("{}: {format}: {problem}", .path.display())]
    Malformed {
        path: PathBuf,
        /// "NeuroScope", "Intan RHD", "Open Ephys .continuous", "OpenBCI GUI text", "XDF".
        format: &'static str,
        /// What is wrong, naming the field (and the sidecar or record) where one applies.
        problem: String,
    },
    #[error("{}: Open Ephys metadata: {problem}", .path.display())]
    OpenEphysMetadata { path: PathBuf, problem: String },
    #[error("{}: unknown file extension; expected .edf, .bdf, .wav, .dat/.lfp/.eeg with a NeuroScope .xml, amplifier.dat or info.rhd (Intan), .continuous or a folder of them (Open Ephys), .oebin, .txt/.csv (OpenBCI GUI), .xdf, or a headerless .dat/.bin/.raw with its layout", .path.display())]
    UnknownExtension { path: PathBuf },
    #[error("{}: cannot write EDF: {problem}", .path.display())]
    CannotWrite { path: PathBuf, problem: String },
}

/// Options that some formats need because the file itself does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOptions {
    /// Layout of a headerless int16 file (.dat/.bin/.raw); required for those.
    pub raw: Option<RawLayout>,
    /// Volts that a full-scale WAV sample (±1.0) stands for.
    pub wav_volts_per_full_scale: f64,
}

impl Default for FileOptions {
    /// No raw layout; a full-scale WAV sample is 1 V.
    fn default() -> Self {
        Self {
            raw: None,
            wav_volts_per_full_scale: 1.0,
        }
    }
}

/// Open a streaming reader, choosing the format from the extension (any case):
/// .edf/.bdf → [`edf::EdfReader`], .wav → [`wav::open_wav`],
/// .dat/.bin/.raw with `options.raw` → [`raw::open_raw`] (headerless int16);
/// without it, an `amplifier.dat` beside an `info.rhd` → [`intan::open_intan`]
/// and a `.dat` beside a NeuroScope `.xml` → [`neuroscope::open_neuroscope`];
/// .lfp/.eeg/.xml → NeuroScope, .rhd → Intan, .continuous or a folder of them
/// → [`continuous::open_continuous`] (legacy Open Ephys), .oebin →
/// [`openephys::open_open_ephys`], .txt/.csv → [`openbci_text::open_openbci_text`],
/// .xdf → [`xdf::open_xdf`].
pub fn open_reader(path: &Path, options: &FileOptions) -> Result<Box<dyn SignalReader>, FileError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    Ok(match extension.as_deref() {
        Some("edf" | "bdf") => Box::new(edf::EdfReader::open(path)?),
        Some("wav") => Box::new(wav::open_wav(path, options.wav_volts_per_full_scale)?),
        Some("dat" | "bin" | "raw") => match &options.raw {
            Some(layout) => Box::new(raw::open_raw(path, layout)?),
            None if intan::header_beside(path).is_some() => Box::new(intan::open_intan(path)?),
            None if neuroscope::sidecar_of(path).is_file() => {
                Box::new(neuroscope::open_neuroscope(path)?)
            }
            None => {
                return Err(FileError::BadOption {
                    path: path.to_path_buf(),
                    problem: format!(
                        "no sidecar describes it (neither {} nor an info.rhd beside an amplifier.dat): a headerless raw file needs its layout (channel count, rate, µV per bit)",
                        neuroscope::sidecar_of(path).display()
                    ),
                })
            }
        },
        Some("lfp" | "eeg" | "xml") => Box::new(neuroscope::open_neuroscope(path)?),
        Some("rhd") => Box::new(intan::open_intan(path)?),
        Some("continuous") => Box::new(continuous::open_continuous(path)?),
        Some("oebin") => Box::new(openephys::open_open_ephys(path)?),
        Some("txt" | "csv") => Box::new(openbci_text::open_openbci_text(path)?),
        Some("xdf") => Box::new(xdf::open_xdf(path)?),
        _ if path.is_dir() => Box::new(continuous::open_continuous(path)?),
        _ => {
            return Err(FileError::UnknownExtension {
                path: path.to_path_buf(),
            })
        }
    })
}

/// Read a whole recording into memory (see [`reader::collect_recording`]).
pub fn read_recording(path: &Path, options: &FileOptions) -> Result<Recording, FileError> {
    reader::collect_recording(open_reader(path, options)?)
}

/// Write `bytes` to `path` through a hidden temporary file beside it, synced
/// before the rename: `path` holds either its old contents or all of `bytes`,
/// and a failed write leaves no temporary behind.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomically_with(path, |out| out.write_all(bytes))
}

/// [`write_atomically`] with the contents produced by `write` into a buffered
/// writer, so that they need not be in memory at once.
pub(crate) fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), FileError> {
    let io_error = |action: &'static str| {
        move |source| FileError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let file_name = path.file_name().ok_or_else(|| {
        io_error("name a temporary file")(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ))
    })?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Dropped on any error before `persist`: the temporary is removed.
    let temporary = tempfile::Builder::new()
        .prefix(&{
            let mut prefix = std::ffi::OsString::from(".");
            prefix.push(file_name);
            prefix
        })
        .suffix(".partial")
        .tempfile_in(folder)
        .map_err(io_error("create a temporary file"))?;
    let mut out = std::io::BufWriter::new(temporary);
    write(&mut out).map_err(io_error("write"))?;
    let temporary = out
        .into_inner()
        .map_err(|e| io_error("write")(e.into_error()))?;
    temporary.as_file().sync_all().map_err(io_error("write"))?;
    temporary
        .persist(path)
        .map(|_| ())
        .map_err(|e| io_error("rename the temporary file to the final name")(e.error))
}

/// Why a hypnogram could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HypnogramError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Table(#[from] crate::eval::tables::TableError),
    #[error("{0}: no sleep stages found")]
    Empty(PathBuf),
}

/// A hypnogram: the annotations of an EDF+ file, or a DREAMS `.txt` scoring.
pub fn read_hypnogram(path: &Path) -> Result<Hypnogram, HypnogramError> {
    let is_edf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("edf"));
    let hypnogram = if is_edf {
        let reader = open_reader(path, &FileOptions::default())?;
        Hypnogram::from_annotations(&reader.info().annotations)
    } else {
        let text = std::fs::read_to_string(path).map_err(|source| HypnogramError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Hypnogram::parse_dreams(&text, &path.display().to_string())?
    };
    if hypnogram.epochs.is_empty() {
        return Err(HypnogramError::Empty(path.to_path_buf()));
    }
    Ok(hypnogram)
}
