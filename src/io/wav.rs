//! WAV files: integer 8/16/24/32-bit and 32-bit float PCM (plain or
//! WAVE_FORMAT_EXTENSIBLE), each channel a signal labelled `ch0`, `ch1`, ...
//! in µV. The RIFF chunks are walked here, so the header is checked against
//! the file's size before any sample is read; hound writes WAV files.

use std::fs::File;
use std::path::Path;

use hound::SampleFormat;

use super::reader::{
    collect_recording, open_regular, read_exact_at, InterleavedFrames, InterleavedReader,
    SampleCoding, SignalInfo, SourceInfo, MAX_RATE_HZ,
};
use super::FileError;
use crate::recording::Recording;
use crate::time::SampleRate;

/// `format tag` values of the fmt chunk.
const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// A data chunk size a writer left unset (it could not seek back to fill it in).
const UNSET_SIZES: [u32; 2] = [0, u32::MAX];

/// Read a WAV file whole into memory (see [`open_wav`]).
pub fn read_wav(path: &Path, volts_per_full_scale: f64) -> Result<Recording, FileError> {
    collect_recording(Box::new(open_wav(path, volts_per_full_scale)?))
}

/// Open a WAV file. A full-scale sample (±1.0 for float, ±2^(bits-1) for
/// integers) stands for `volts_per_full_scale` volts:
/// `µV = sample / full_scale * volts_per_full_scale * 1e6`.
pub fn open_wav(path: &Path, volts_per_full_scale: f64) -> Result<InterleavedReader, FileError> {
    if !(volts_per_full_scale.is_finite() && volts_per_full_scale > 0.0) {
        return Err(FileError::BadOption {
            path: path.to_path_buf(),
            problem: format!(
                "WAV volts per full scale must be finite and positive, got {volts_per_full_scale}"
            ),
        });
    }
    let bad = |problem: String| FileError::BadWav {
        path: path.to_path_buf(),
        problem,
    };
    let (file, length) = open_regular(path)?;
    if length < 12 {
        return Err(bad(format!(
            "the file is {length} bytes, shorter than a RIFF header (12)"
        )));
    }
    let riff = read_bytes::<12>(&file, path, 0)?;
    if &riff[..4] != b"RIFF" || &riff[8..] != b"WAVE" {
        return Err(bad(format!(
            "not a RIFF/WAVE file: it starts with {:?}",
            String::from_utf8_lossy(&riff)
        )));
    }
    let mut format = None;
    let mut offset = 12u64;
    let (data_offset, declared_bytes) = loop {
        if offset + 8 > length {
            return Err(bad("no data chunk".into()));
        }
        let chunk = read_bytes::<8>(&file, path, offset)?;
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        match &chunk[..4] {
            b"fmt " if offset + 8 + u64::from(size) > length => {
                return Err(bad(format!(
                    "the fmt chunk says {size} bytes but the file ends before them"
                )))
            }
            b"fmt " => format = Some(read_format(&file, path, offset + 8, size)?),
            b"data" => break (offset + 8, size),
            _ => {}
        }
        // Chunks are padded to an even size.
        offset += 8 + u64::from(size) + u64::from(size & 1);
    };
    let format = format.ok_or_else(|| bad("the data chunk comes before any fmt chunk".into()))?;
    let mut notices = Vec::new();
    let available = length - data_offset;
    let frame_bytes = u64::from(format.block_align);
    let data_bytes = if UNSET_SIZES.contains(&declared_bytes) && available >= frame_bytes {
        notices.push(format!(
            "{}: the data chunk's size field is {declared_bytes} (left unset by its writer); the file's length gives its size",
            path.display()
        ));
        available
    } else if u64::from(declared_bytes) <= available {
        u64::from(declared_bytes)
    } else {
        return Err(bad(format!(
            "the data chunk says {declared_bytes} bytes but only {available} follow it: the file is cut short ({} whole frames)",
            available / frame_bytes
        )));
    };
    if data_bytes % frame_bytes != 0 {
        notices.push(format!(
            "{}: the last frame is incomplete ({} of {frame_bytes} bytes) and is not read",
            path.display(),
            data_bytes % frame_bytes
        ));
    }
    let frames = data_bytes / frame_bytes;
    let full_scale = match format.coding {
        SampleCoding::F32 => 1.0,
        coding => 2f64.powi(8 * coding.bytes() as i32 - 1),
    };
    let scale = volts_per_full_scale * 1e6 / full_scale;
    let signals = (0..format.channels)
        .map(|channel| SignalInfo {
            label: format!("ch{channel}"),
            unit: "uV".into(),
            rate: format.rate,
            rate_origin: "the WAV fmt chunk field \"sample rate\"".into(),
            scale,
            samples: frames,
            stream: 0,
        })
        .collect();
    let places = (0..format.channels).map(|column| (0, column)).collect();
    let data = InterleavedFrames::new(
        path.to_path_buf(),
        file,
        data_offset,
        frames,
        format.coding,
        vec![scale; format.channels],
    );
    let info = SourceInfo {
        path: path.to_path_buf(),
        format: "WAV",
        signals,
        streams: Vec::new(),
        annotations: Vec::new(),
        notices,
    };
    InterleavedReader::new(info, vec![data], places)
}

/// What the fmt chunk says, checked.
struct Format {
    coding: SampleCoding,
    channels: usize,
    rate: SampleRate,
    block_align: u16,
}

/// Read and check a fmt chunk of `size` bytes whose contents start at `offset`.
fn read_format(file: &File, path: &Path, offset: u64, size: u32) -> Result<Format, FileError> {
    let bad = |problem: String| FileError::BadWav {
        path: path.to_path_buf(),
        problem,
    };
    if size < 16 {
        return Err(bad(format!(
            "the fmt chunk is {size} bytes; it needs at least 16"
        )));
    }
    let fmt = read_bytes::<16>(file, path, offset)?;
    let u16_at = |at: usize| u16::from_le_bytes([fmt[at], fmt[at + 1]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let rate_hz = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let block_align = u16_at(12);
    let bits = u16_at(14);
    if tag == FORMAT_EXTENSIBLE {
        if size < 40 {
            return Err(bad(format!(
                "the fmt chunk of a WAVE_FORMAT_EXTENSIBLE file is {size} bytes; it needs 40"
            )));
        }
        // The sub-format GUID starts with the plain format tag.
        let extension = read_bytes::<2>(file, path, offset + 24)?;
        tag = u16::from_le_bytes(extension);
    }
    let coding = match (tag, bits) {
        (FORMAT_PCM, 8) => SampleCoding::U8,
        (FORMAT_PCM, 16) => SampleCoding::I16,
        (FORMAT_PCM, 24) => SampleCoding::I24,
        (FORMAT_PCM, 32) => SampleCoding::I32,
        (FORMAT_FLOAT, 32) => SampleCoding::F32,
        (FORMAT_PCM | FORMAT_FLOAT, _) => {
            return Err(FileError::UnsupportedWav {
                path: path.to_path_buf(),
                bits,
                format: match tag {
                    FORMAT_PCM => "integer",
                    _ => "float",
                },
            })
        }
        _ => {
            return Err(bad(format!(
                "fmt chunk field \"format\" is {tag}; only PCM (1) and IEEE float (3) are read"
            )))
        }
    };
    if channels == 0 {
        return Err(bad("fmt chunk field \"channels\" is 0".into()));
    }
    let frame_bytes = usize::from(channels) * coding.bytes();
    if usize::from(block_align) != frame_bytes {
        return Err(bad(format!(
            "fmt chunk field \"block align\" is {block_align} but {channels} channel(s) of {bits}-bit samples take {frame_bytes} bytes"
        )));
    }
    let rate = SampleRate::new(f64::from(rate_hz))
        .ok()
        .filter(|r| r.hz() <= MAX_RATE_HZ)
        .ok_or_else(|| {
            bad(format!(
                "fmt chunk field \"sample rate\" is {rate_hz} Hz; it must be above 0 and at most {MAX_RATE_HZ}"
            ))
        })?;
    Ok(Format {
        coding,
        channels: usize::from(channels),
        rate,
        block_align,
    })
}

fn read_bytes<const N: usize>(file: &File, path: &Path, offset: u64) -> Result<[u8; N], FileError> {
    let mut bytes = [0; N];
    read_exact_at(file, path, &mut bytes, offset)?;
    Ok(bytes)
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
