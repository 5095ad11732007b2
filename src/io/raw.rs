//! Headerless interleaved little-endian int16 files: Open Ephys `continuous.dat`,
//! the rodent `.dat`, and most acquisition systems' "raw binary" export.

use std::path::Path;

use super::{read_whole_file, FileError};
use crate::recording::{Recording, Signal};
use crate::time::SampleRate;

/// What a headerless int16 file does not say about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RawLayout {
    /// Interleaved channels per frame.
    pub channels: usize,
    pub rate_hz: f64,
    /// Physical value of one ADC step (Open Ephys `bit_volts` is already in µV).
    pub uv_per_bit: f64,
}

/// Read a headerless interleaved little-endian int16 file; signals are labelled
/// `ch0`, `ch1`, ... in µV (`count * uv_per_bit`).
pub fn read_raw_int16(path: &Path, layout: &RawLayout) -> Result<Recording, FileError> {
    let bad_option = |problem: String| FileError::BadOption {
        path: path.to_path_buf(),
        problem,
    };
    if layout.channels == 0 {
        return Err(bad_option("raw layout has zero channels".into()));
    }
    let rate =
        SampleRate::new(layout.rate_hz).map_err(|e| bad_option(format!("raw layout: {e}")))?;
    if !(layout.uv_per_bit.is_finite() && layout.uv_per_bit != 0.0) {
        return Err(bad_option(format!(
            "raw layout: µV per bit must be finite and non-zero, got {}",
            layout.uv_per_bit
        )));
    }
    let bytes = read_whole_file(path)?;
    let channels = (0..layout.channels)
        .map(|channel| Int16Channel {
            label: format!("ch{channel}"),
            unit: "uV".into(),
            per_count: layout.uv_per_bit,
        })
        .collect();
    Ok(Recording {
        signals: decode_interleaved_int16(path, &bytes, channels, rate)?,
        annotations: Vec::new(),
    })
}

/// One channel of an interleaved int16 stream: its label, unit and the
/// physical value of one ADC count.
pub(crate) struct Int16Channel {
    pub label: String,
    pub unit: String,
    pub per_count: f64,
}

/// Split interleaved little-endian int16 frames into one signal per channel.
/// `channels` must not be empty.
pub(crate) fn decode_interleaved_int16(
    path: &Path,
    bytes: &[u8],
    channels: Vec<Int16Channel>,
    rate: SampleRate,
) -> Result<Vec<Signal>, FileError> {
    let frame_bytes = 2 * channels.len();
    if bytes.len() % frame_bytes != 0 {
        return Err(FileError::PartialFrame {
            path: path.to_path_buf(),
            length: bytes.len() as u64,
            frame_bytes: frame_bytes as u64,
            channels: channels.len(),
        });
    }
    let frames = bytes.len() / frame_bytes;
    let scales: Vec<f64> = channels.iter().map(|c| c.per_count).collect();
    let mut signals: Vec<Signal> = channels
        .into_iter()
        .map(|channel| Signal {
            label: channel.label,
            unit: channel.unit,
            rate,
            samples: Vec::with_capacity(frames),
        })
        .collect();
    for frame in bytes.chunks_exact(frame_bytes) {
        for ((signal, sample), per_count) in
            signals.iter_mut().zip(frame.chunks_exact(2)).zip(&scales)
        {
            let count = i16::from_le_bytes([sample[0], sample[1]]);
            signal.samples.push(f64::from(count) * per_count);
        }
    }
    Ok(signals)
}
