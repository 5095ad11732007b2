//! Open Ephys binary format: a `structure.oebin` (JSON metadata) beside
//! `continuous/<stream folder>/continuous.dat` (interleaved little-endian
//! int16, one file per stream). Each stream is a stream of the reader: a
//! selection takes channels of one `continuous.dat`.

use std::path::Path;

use serde_json::Value;

use super::raw::{open_int16_stream, Int16Channel, Int16Stream, MAX_CHANNELS};
use super::reader::{
    collect_recording, open_regular, read_exact_at, InterleavedReader, SourceInfo, StreamInfo,
    MAX_RATE_HZ,
};
use super::FileError;
use crate::recording::Recording;
use crate::time::SampleRate;

/// Largest `structure.oebin` read: real ones are a few kB per stream.
const MAX_OEBIN_BYTES: u64 = 16 << 20;

/// One continuous stream described by a `structure.oebin`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContinuousStream {
    /// Folder under `continuous/` that holds the stream's `continuous.dat`.
    pub folder_name: String,
    pub rate: SampleRate,
    pub channels: Vec<StreamChannel>,
}

/// One channel of a continuous stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamChannel {
    pub name: String,
    pub units: String,
    /// Value of one ADC count in `units` (named "bit_volts" even when units are µV).
    pub bit_volts: f64,
}

/// Parse the continuous streams of a `structure.oebin`.
pub fn read_oebin(path: &Path) -> Result<Vec<ContinuousStream>, FileError> {
    let problem = |problem: String| FileError::OpenEphysMetadata {
        path: path.to_path_buf(),
        problem,
    };
    let (file, length) = open_regular(path)?;
    if length > MAX_OEBIN_BYTES {
        return Err(problem(format!(
            "{length} bytes is far more than a structure.oebin holds (at most {MAX_OEBIN_BYTES} are read)"
        )));
    }
    let mut bytes = vec![0; length as usize];
    read_exact_at(&file, path, &mut bytes, 0)?;
    let root: Value =
        serde_json::from_slice(&bytes).map_err(|e| problem(format!("not valid JSON: {e}")))?;
    let streams = root["continuous"]
        .as_array()
        .ok_or_else(|| problem("no \"continuous\" array".into()))?;
    streams
        .iter()
        .enumerate()
        .map(|(index, stream)| {
            parse_stream(stream).map_err(|e| problem(format!("continuous[{index}]: {e}")))
        })
        .collect()
}

/// Read every continuous stream of an Open Ephys binary recording whole into memory.
pub fn read_open_ephys(path: &Path) -> Result<Recording, FileError> {
    collect_recording(Box::new(open_open_ephys(path)?))
}

/// Open an Open Ephys binary recording, given its `structure.oebin`: every
/// stream's `continuous.dat` must exist and hold whole frames of its channels.
/// Each channel becomes a signal in its stated units.
pub fn open_open_ephys(path: &Path) -> Result<InterleavedReader, FileError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut signals = Vec::new();
    let mut streams = Vec::new();
    let mut places = Vec::new();
    let mut names = Vec::new();
    for (index, stream) in read_oebin(path)?.into_iter().enumerate() {
        names.push(StreamInfo {
            id: Some(index),
            description: format!(
                "{} channel(s) of int16 at {}",
                stream.channels.len(),
                stream.rate
            ),
            name: stream.folder_name.trim_end_matches('/').to_string(),
        });
        let data_path = folder
            .join("continuous")
            .join(stream.folder_name.trim_end_matches('/'))
            .join("continuous.dat");
        let description = Int16Stream {
            rate: stream.rate,
            rate_origin: format!("{} continuous[{index}] \"sample_rate\"", path.display()),
            described_by: format!("{} continuous[{index}] \"channels\"", path.display()),
            channels: stream
                .channels
                .into_iter()
                .map(|channel| Int16Channel {
                    label: channel.name,
                    unit: channel.units,
                    per_count: channel.bit_volts,
                })
                .collect(),
        };
        let (frames, stream_signals) = open_int16_stream(&data_path, description, index)?;
        places.extend((0..stream_signals.len()).map(|column| (index, column)));
        signals.extend(stream_signals);
        streams.push(frames);
    }
    let info = SourceInfo {
        path: path.to_path_buf(),
        format: "Open Ephys binary",
        signals,
        streams: names,
        annotations: Vec::new(),
        notices: Vec::new(),
    };
    InterleavedReader::new(info, streams, places)
}

fn parse_stream(stream: &Value) -> Result<ContinuousStream, String> {
    let folder_name = stream["folder_name"]
        .as_str()
        .ok_or("no \"folder_name\" string")?
        .to_string();
    if folder_name.split('/').any(|part| part == "..") || folder_name.starts_with('/') {
        return Err(format!(
            "\"folder_name\" {folder_name:?} leaves the recording's continuous/ folder"
        ));
    }
    // GUI 0.4.x writes the rate as a string, later versions as a number.
    let rate_hz = match &stream["sample_rate"] {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or("no numeric \"sample_rate\"")?;
    let rate = SampleRate::new(rate_hz).map_err(|e| format!("\"sample_rate\": {e}"))?;
    if rate_hz > MAX_RATE_HZ {
        return Err(format!(
            "\"sample_rate\" {rate_hz} Hz is above the {MAX_RATE_HZ} Hz any recording is read at"
        ));
    }
    // continuous.dat is int16 in every Open Ephys version; a sidecar that says otherwise is not read.
    if let Some(dtype) = stream.get("dtype") {
        if dtype.as_str() != Some("int16") {
            return Err(format!(
                "\"dtype\" is {dtype}; only int16 continuous data is read"
            ));
        }
    }
    let channels = stream["channels"]
        .as_array()
        .ok_or("no \"channels\" array")?
        .iter()
        .enumerate()
        .map(|(index, channel)| {
            parse_channel(channel).map_err(|e| format!("channels[{index}]: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if channels.is_empty() || channels.len() > MAX_CHANNELS {
        return Err(format!(
            "the stream lists {} channels; 1 to {MAX_CHANNELS} are read",
            channels.len()
        ));
    }
    if let Some(declared) = stream.get("num_channels") {
        if declared.as_u64() != Some(channels.len() as u64) {
            return Err(format!(
                "\"num_channels\" is {declared} but {} channels are listed",
                channels.len()
            ));
        }
    }
    Ok(ContinuousStream {
        folder_name,
        rate,
        channels,
    })
}

fn parse_channel(channel: &Value) -> Result<StreamChannel, String> {
    let name = channel["channel_name"]
        .as_str()
        .ok_or("no \"channel_name\" string")?;
    let bit_volts = channel["bit_volts"]
        .as_f64()
        .filter(|v| v.is_finite() && *v != 0.0)
        .ok_or("\"bit_volts\" is not a finite non-zero number")?;
    Ok(StreamChannel {
        // GUI 0.4.x quotes names: "'CH1'".
        name: name.trim_matches('\'').to_string(),
        units: channel["units"].as_str().unwrap_or("uV").to_string(),
        bit_volts,
    })
}
