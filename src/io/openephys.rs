//! Open Ephys binary format: a `structure.oebin` (JSON metadata) beside
//! `continuous/<stream folder>/continuous.dat` (interleaved little-endian
//! int16, one file per stream).

use std::path::Path;

use serde_json::Value;

use super::raw::{decode_interleaved_int16, Int16Channel};
use super::{read_whole_file, FileError};
use crate::recording::Recording;
use crate::time::SampleRate;

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
    let bytes = read_whole_file(path)?;
    let problem = |problem: String| FileError::OpenEphysMetadata {
        path: path.to_path_buf(),
        problem,
    };
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

/// Read every continuous stream of an Open Ephys binary recording, given its
/// `structure.oebin`; each channel becomes a signal in its stated units.
pub fn read_open_ephys(path: &Path) -> Result<Recording, FileError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut recording = Recording::default();
    for stream in read_oebin(path)? {
        let data_path = folder
            .join("continuous")
            .join(stream.folder_name.trim_end_matches('/'))
            .join("continuous.dat");
        let bytes = read_whole_file(&data_path)?;
        let channels = stream
            .channels
            .into_iter()
            .map(|channel| Int16Channel {
                label: channel.name,
                unit: channel.units,
                per_count: channel.bit_volts,
            })
            .collect();
        recording.signals.extend(decode_interleaved_int16(
            &data_path,
            &bytes,
            channels,
            stream.rate,
        )?);
    }
    Ok(recording)
}

fn parse_stream(stream: &Value) -> Result<ContinuousStream, String> {
    let folder_name = stream["folder_name"]
        .as_str()
        .ok_or("no \"folder_name\" string")?
        .to_string();
    // GUI 0.4.x writes the rate as a string, later versions as a number.
    let rate_hz = match &stream["sample_rate"] {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or("no numeric \"sample_rate\"")?;
    let rate = SampleRate::new(rate_hz).map_err(|e| format!("\"sample_rate\": {e}"))?;
    let channels = stream["channels"]
        .as_array()
        .ok_or("no \"channels\" array")?
        .iter()
        .enumerate()
        .map(|(index, channel)| {
            parse_channel(channel).map_err(|e| format!("channels[{index}]: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if channels.is_empty() {
        return Err("the stream has no channels".into());
    }
    if let Some(declared) = stream["num_channels"].as_u64() {
        if declared != channels.len() as u64 {
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
