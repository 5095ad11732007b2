//! WAV files (via hound): integer 8/16/24/32-bit and 32-bit float, each channel
//! a signal labelled `ch0`, `ch1`, ... in µV.

use std::path::Path;

use hound::{SampleFormat, WavReader};

use super::FileError;
use crate::recording::{Recording, Signal};
use crate::time::SampleRate;

/// Read a WAV file. A full-scale sample (±1.0 for float, ±2^(bits-1) for
/// integers) stands for `volts_per_full_scale` volts:
/// `µV = sample / full_scale * volts_per_full_scale * 1e6`.
pub fn read_wav(path: &Path, volts_per_full_scale: f64) -> Result<Recording, FileError> {
    if !(volts_per_full_scale.is_finite() && volts_per_full_scale > 0.0) {
        return Err(FileError::BadOption {
            path: path.to_path_buf(),
            problem: format!(
                "WAV volts per full scale must be finite and positive, got {volts_per_full_scale}"
            ),
        });
    }
    let wav_error = |source| FileError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = WavReader::open(path).map_err(wav_error)?;
    let spec = reader.spec();
    let rate = SampleRate::new(f64::from(spec.sample_rate)).map_err(|e| FileError::BadOption {
        path: path.to_path_buf(),
        problem: format!("WAV header: {e}"),
    })?;
    let channels = usize::from(spec.channels);
    let frames = reader.duration() as usize;
    let mut signals: Vec<Signal> = (0..channels)
        .map(|channel| Signal {
            label: format!("ch{channel}"),
            unit: "uV".into(),
            rate,
            samples: Vec::with_capacity(frames),
        })
        .collect();
    let uv_per_full_scale = volts_per_full_scale * 1e6;
    let interleaved: Vec<f64> = match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let full_scale = 2f64.powi(i32::from(bits) - 1);
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| f64::from(v) / full_scale * uv_per_full_scale))
                .collect::<Result<_, _>>()
                .map_err(wav_error)?
        }
        (SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .map(|s| s.map(|v| f64::from(v) * uv_per_full_scale))
            .collect::<Result<_, _>>()
            .map_err(wav_error)?,
        (format, bits) => {
            return Err(FileError::UnsupportedWav {
                path: path.to_path_buf(),
                bits,
                format: match format {
                    SampleFormat::Int => "integer",
                    SampleFormat::Float => "float",
                },
            })
        }
    };
    for frame in interleaved.chunks_exact(channels) {
        for (signal, &value) in signals.iter_mut().zip(frame) {
            signal.samples.push(value);
        }
    }
    Ok(Recording {
        signals,
        annotations: Vec::new(),
    })
}

/// Write mono 32-bit float samples (a rendered stimulus) as a WAV file.
pub fn write_wav_f32(path: &Path, rate_hz: u32, samples: &[f32]) -> Result<(), FileError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate_hz,
        bits_per_sample: 32,
        sample_format: SampleFormat::Float,
    };
    let wav_error = |source| FileError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(wav_error)?;
    for &s in samples {
        writer.write_sample(s).map_err(wav_error)?;
    }
    writer.finalize().map_err(wav_error)
}
