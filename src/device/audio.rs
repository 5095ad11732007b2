//! What the sound-card devices (`audio_in.rs`, `audio_click/`) share
//! through cpal (ALSA on Linux): finding a device, listing them, and the
//! stream error callback.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use cpal::traits::{DeviceTrait, HostTrait};

/// What went wrong with an audio device: no such device, a refused
/// configuration or a failed stream, as the message says.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("audio {device}: {message}")]
pub struct AudioError {
    pub device: String,
    pub message: String,
}

/// Audio devices of the default host (ALSA on Linux), for `neuroloop devices`:
/// each device's name, whether it has input and output, and its default output
/// and input configuration as text.
pub fn list_devices() -> Result<Vec<String>, AudioError> {
    let host = cpal::default_host();
    let devices = host.devices().map_err(|e| AudioError {
        device: host.id().name().to_string(),
        message: e.to_string(),
    })?;
    let describe = |c: Result<cpal::SupportedStreamConfig, cpal::DefaultStreamConfigError>| match c
    {
        Ok(c) => format!(
            "{} ch {} Hz {}",
            c.channels(),
            c.sample_rate(),
            c.sample_format()
        ),
        Err(_) => "-".into(),
    };
    Ok(devices
        .map(|d| {
            let name = device_name(&d);
            let output = if d.supports_output() {
                describe(d.default_output_config())
            } else {
                "-".into()
            };
            let input = if d.supports_input() {
                describe(d.default_input_config())
            } else {
                "-".into()
            };
            format!("{name}  output: {output}  input: {input}")
        })
        .collect())
}

pub(crate) fn device_name(d: &cpal::Device) -> String {
    d.id()
        .map(|id| id.1)
        .or_else(|_| d.description().map(|x| x.name().to_string()))
        .unwrap_or_else(|_| "?".into())
}

/// Which side of a device a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Input,
    Output,
}

/// The device called `name` (its ALSA PCM name, e.g. `default`,
/// `plughw:CARD=PCH,DEV=0`), or the default device for `direction`.
pub(crate) fn find_device(
    name: Option<&str>,
    direction: Direction,
) -> Result<cpal::Device, AudioError> {
    let host = cpal::default_host();
    let wanted = name.unwrap_or("default");
    let no_device = |message: String| AudioError {
        device: wanted.to_string(),
        message,
    };
    match (name, direction) {
        (None, Direction::Output) => host
            .default_output_device()
            .ok_or_else(|| no_device("no default output device".into())),
        (None, Direction::Input) => host
            .default_input_device()
            .ok_or_else(|| no_device("no default input device".into())),
        (Some(n), _) => host
            .devices()
            .map_err(|e| no_device(e.to_string()))?
            .find(|d| device_name(d) == n)
            .ok_or_else(|| no_device("no such device (`neuroloop devices` lists them)".into())),
    }
}

/// cpal's error callback, for either direction: count the error, mark the
/// stream dead if the device is gone, and keep (and print once) the first
/// message of each kind for `summary.json`. `stream` names the direction and
/// the device.
pub(crate) fn record_stream_error(
    stream: &str,
    xruns: &AtomicU64,
    stream_errors: &AtomicU64,
    fatal: &AtomicBool,
    errors: &Mutex<Vec<String>>,
    e: cpal::StreamError,
) {
    let kind = match &e {
        cpal::StreamError::BufferUnderrun => {
            xruns.fetch_add(1, Ordering::Relaxed);
            "xrun"
        }
        cpal::StreamError::DeviceNotAvailable | cpal::StreamError::StreamInvalidated => {
            stream_errors.fetch_add(1, Ordering::Relaxed);
            fatal.store(true, Ordering::Release);
            "device lost"
        }
        _ => {
            stream_errors.fetch_add(1, Ordering::Relaxed);
            "stream error"
        }
    };
    if let Ok(mut list) = errors.lock() {
        if !list.iter().any(|m| m.starts_with(kind)) {
            let message = format!("{kind}: {e}");
            tracing::warn!("audio {stream}: {message} (counted in summary.json)");
            list.push(message);
        }
    }
}

pub(crate) fn default_rate_hz() -> u32 {
    48_000
}
pub(crate) fn default_period_frames() -> u32 {
    256
}
