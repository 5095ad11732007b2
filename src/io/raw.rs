//! Headerless interleaved little-endian int16 files: Open Ephys `continuous.dat`,
//! the rodent `.dat`, and most acquisition systems' "raw binary" export.

use std::path::Path;

use super::reader::{
    collect_recording, open_regular, InterleavedFrames, InterleavedReader, SampleCoding,
    SignalInfo, SourceInfo, MAX_RATE_HZ,
};
use super::FileError;
use crate::recording::Recording;
use crate::time::SampleRate;

/// Most interleaved channels a headerless or sidecar-described file may have
/// (WAV's limit; far above any acquisition system's).
pub const MAX_CHANNELS: usize = 65_535;

/// What a headerless int16 file does not say about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RawLayout {
    /// Interleaved channels per frame.
    pub channels: usize,
    pub rate_hz: f64,
    /// Physical value of one ADC step (Open Ephys `bit_volts` is already in µV).
    pub uv_per_bit: f64,
}

/// Read a headerless file whole into memory (see [`open_raw`]).
pub fn read_raw_int16(path: &Path, layout: &RawLayout) -> Result<Recording, FileError> {
    collect_recording(Box::new(open_raw(path, layout)?))
}

/// Open a headerless interleaved little-endian int16 file; signals are labelled
/// `ch0`, `ch1`, ... in µV (`count * uv_per_bit`).
pub fn open_raw(path: &Path, layout: &RawLayout) -> Result<InterleavedReader, FileError> {
    let bad_option = |problem: String| FileError::BadOption {
        path: path.to_path_buf(),
        problem,
    };
    if layout.channels == 0 || layout.channels > MAX_CHANNELS {
        return Err(bad_option(format!(
            "raw layout has {} channels; 1 to {MAX_CHANNELS} are allowed",
            layout.channels
        )));
    }
    let rate =
        SampleRate::new(layout.rate_hz).map_err(|e| bad_option(format!("raw layout: {e}")))?;
    if rate.hz() > MAX_RATE_HZ {
        return Err(bad_option(format!(
            "raw layout: sample rate {rate} is above the {MAX_RATE_HZ} Hz any recording is read at"
        )));
    }
    if !(layout.uv_per_bit.is_finite() && layout.uv_per_bit != 0.0) {
        return Err(bad_option(format!(
            "raw layout: µV per bit must be finite and non-zero, got {}",
            layout.uv_per_bit
        )));
    }
    let channels = (0..layout.channels)
        .map(|channel| Int16Channel {
            label: format!("ch{channel}"),
            unit: "uV".into(),
            per_count: layout.uv_per_bit,
        })
        .collect();
    let stream = Int16Stream {
        rate,
        rate_origin: "the raw layout's sample rate (--raw-rate-hz)".into(),
        described_by: "the raw layout (--raw-channels)".into(),
        channels,
    };
    let (frames, signals) = open_int16_stream(path, stream, 0)?;
    let places = (0..signals.len()).map(|column| (0, column)).collect();
    let info = SourceInfo {
        path: path.to_path_buf(),
        format: "raw int16",
        signals,
        streams: Vec::new(),
        annotations: Vec::new(),
        notices: Vec::new(),
    };
    InterleavedReader::new(info, vec![frames], places)
}

/// One channel of an interleaved int16 stream: its label, unit and the
/// physical value of one ADC count.
pub(crate) struct Int16Channel {
    pub label: String,
    pub unit: String,
    pub per_count: f64,
}

/// An interleaved int16 stream as its sidecar (or the options) describe it.
pub(crate) struct Int16Stream {
    pub rate: SampleRate,
    pub rate_origin: String,
    /// Where the channel count comes from, for errors.
    pub described_by: String,
    /// At least one.
    pub channels: Vec<Int16Channel>,
}

/// Open the data file of an interleaved little-endian int16 stream, checking
/// that it holds whole frames; returns its frames and its signals (as stream
/// number `stream`).
pub(crate) fn open_int16_stream(
    path: &Path,
    description: Int16Stream,
    stream: usize,
) -> Result<(InterleavedFrames, Vec<SignalInfo>), FileError> {
    let (file, length) = open_regular(path)?;
    let channels = description.channels.len();
    let frame_bytes = 2 * channels as u64;
    if length % frame_bytes != 0 {
        return Err(FileError::PartialFrame {
            path: path.to_path_buf(),
            length,
            frame_bytes,
            channels,
            described_by: description.described_by,
        });
    }
    let frames = length / frame_bytes;
    let scales = description.channels.iter().map(|c| c.per_count).collect();
    let signals = description
        .channels
        .into_iter()
        .map(|channel| SignalInfo {
            label: channel.label,
            unit: channel.unit,
            rate: description.rate,
            rate_origin: description.rate_origin.clone(),
            scale: channel.per_count,
            samples: frames,
            stream,
        })
        .collect();
    let frames = InterleavedFrames::new(
        path.to_path_buf(),
        file,
        0,
        frames,
        SampleCoding::I16,
        scales,
    );
    Ok((frames, signals))
}
