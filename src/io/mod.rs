//! Everything that touches the operating system: file formats, session output,
//! serial devices (OpenBCI Cyton, Pulse Pal) and their emulators.
//!
//! File readers return a [`Recording`] in physical units (f64); the EDF writer
//! takes one. [`read_recording`] picks the reader from the file extension.

pub mod audio;
pub mod edf;
pub mod emulate;
pub mod openbci;
pub mod openephys;
pub mod pulsepal;
pub mod raw;
pub mod recorder;
pub mod session;
pub mod wav;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::recording::Recording;
pub use raw::RawLayout;

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
    #[error("{}: annotation in data record {record} (byte offset {offset}): {problem}", .path.display())]
    BadAnnotation {
        path: PathBuf,
        record: u64,
        offset: u64,
        problem: String,
    },
    #[error("{}: EDF+D record {record} starts at {onset_s} s but the records before it end at {expected_s} s; discontinuous recordings with gaps are not supported", .path.display())]
    Discontinuous {
        path: PathBuf,
        record: u64,
        onset_s: f64,
        expected_s: f64,
    },
    #[error("{}: WAV: {source}", .path.display())]
    Wav { path: PathBuf, source: hound::Error },
    #[error("{}: WAV: unsupported sample format {bits}-bit {format} (supported: 8/16/24/32-bit integer, 32-bit float)", .path.display())]
    UnsupportedWav {
        path: PathBuf,
        bits: u16,
        format: &'static str,
    },
    #[error("{}: {length} bytes is not a whole number of {frame_bytes}-byte frames ({channels} channel(s) of int16)", .path.display())]
    PartialFrame {
        path: PathBuf,
        length: u64,
        frame_bytes: u64,
        channels: usize,
    },
    #[error("{}: {problem}", .path.display())]
    BadOption { path: PathBuf, problem: String },
    #[error("{}: Open Ephys metadata: {problem}", .path.display())]
    OpenEphysMetadata { path: PathBuf, problem: String },
    #[error("{}: unknown file extension; expected .edf, .bdf, .wav, .dat, .bin, .raw or .oebin", .path.display())]
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

/// Read a recording, choosing the format from the extension (any case):
/// .edf/.bdf → [`edf::read_edf`], .wav → [`wav::read_wav`],
/// .dat/.bin/.raw → [`raw::read_raw_int16`] (needs `options.raw`),
/// .oebin → [`openephys::read_open_ephys`] (an Open Ephys binary `structure.oebin`).
pub fn read_recording(path: &Path, options: &FileOptions) -> Result<Recording, FileError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("edf" | "bdf") => edf::read_edf(path),
        Some("wav") => wav::read_wav(path, options.wav_volts_per_full_scale),
        Some("dat" | "bin" | "raw") => match &options.raw {
            Some(layout) => raw::read_raw_int16(path, layout),
            None => Err(FileError::BadOption {
                path: path.to_path_buf(),
                problem: "a headerless raw file needs its layout (channel count, rate, µV per bit)"
                    .into(),
            }),
        },
        Some("oebin") => openephys::read_open_ephys(path),
        _ => Err(FileError::UnknownExtension {
            path: path.to_path_buf(),
        }),
    }
}

/// Read a whole file into memory, mapping the error to [`FileError::Io`].
fn read_whole_file(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|source| FileError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })
}

/// Write `bytes` to `path` through a hidden temporary file beside it, synced
/// before the rename: `path` holds either its old contents or all of `bytes`,
/// and a failed write leaves no temporary behind.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
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
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".partial-{}", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    let result = (|| {
        let mut file =
            std::fs::File::create(&temporary).map_err(io_error("create a temporary file"))?;
        file.write_all(bytes).map_err(io_error("write"))?;
        file.sync_all().map_err(io_error("write"))?;
        std::fs::rename(&temporary, path)
            .map_err(io_error("rename the temporary file to the final name"))
    })();
    if result.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
