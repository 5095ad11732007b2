//! Lab Streaming Layer in and out: an LSL stream as a session's source
//! (`[source] kind = "lsl"`) and the session's events as an LSL marker stream
//! (`[lsl_markers]`), so LabRecorder keeps them beside the EEG.
//!
//! liblsl is loaded at run time (`dlopen`), so neuroloop builds and runs
//! without it: from `LIBLSL_PATH` if set (nothing else is tried then), else
//! the system's `liblsl.so`, else the copy inside pylsl's wheel (found by
//! asking `python3` where pylsl is). Only the C functions used here are bound.
//! liblsl reads its own network settings (`LSLAPICFG`, `lsl_api.cfg`).
//!
//! Time: a sample's index comes from the stream's timestamps at its nominal
//! rate ([`SampleClock`]): a timestamp more than `gap_periods` sample periods
//! after the previous one starts a gap (dropped frames the controller and the
//! recording see), an earlier one is counted as going backwards, and none is
//! ever resampled. Markers carry their event's time on this machine's LSL
//! clock (`lsl_local_clock`, the same monotonic clock as `Instant`).

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{check_range, invalid, ConfigError};
use crate::event::Event;
use crate::io::openbci::{DeviceError, FrameSink};
use crate::runtime::{Opened, RuntimeError, Source};
use crate::time::SampleRate;

// ---------------------------------------------------------------- the library

type Handle = *mut c_void;

/// liblsl's channel formats (`lsl_channel_format_t`).
const FORMAT_NAMES: [&str; 8] = [
    "undefined",
    "float32",
    "double64",
    "string",
    "int32",
    "int16",
    "int8",
    "int64",
];
const FORMAT_STRING: c_int = 3;
const ERROR_TIMEOUT: i32 = -1;
const ERROR_LOST: i32 = -2;

macro_rules! lsl_api {
    ($($name:ident: fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// The liblsl C functions neuroloop calls.
        struct Api { $($name: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)* }

        impl Api {
            fn bind(lib: Handle) -> Result<Self, String> {
                Ok(Self {$($name: {
                    let name = concat!("lsl_", stringify!($name), "\0");
                    // SAFETY: `lib` is a live dlopen handle and `name` is NUL-terminated.
                    let symbol = unsafe { libc::dlsym(lib, name.as_ptr().cast()) };
                    if symbol.is_null() {
                        return Err(format!("it has no {}", name.trim_end_matches('\0')));
                    }
                    // SAFETY: the symbol is liblsl's function of this C signature
                    // (lsl/*.h, stable since liblsl 1.13).
                    unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) $(-> $ret)?>(symbol) }
                },)*})
            }
        }
    };
}

lsl_api! {
    library_version: fn() -> i32;
    local_clock: fn() -> f64;
    resolve_all: fn(*mut Handle, u32, f64) -> i32;
    resolve_bypred: fn(*mut Handle, u32, *const c_char, i32, f64) -> i32;
    destroy_streaminfo: fn(Handle);
    create_streaminfo: fn(*const c_char, *const c_char, i32, f64, c_int, *const c_char) -> Handle;
    get_name: fn(Handle) -> *const c_char;
    get_type: fn(Handle) -> *const c_char;
    get_source_id: fn(Handle) -> *const c_char;
    get_hostname: fn(Handle) -> *const c_char;
    get_channel_count: fn(Handle) -> i32;
    get_nominal_srate: fn(Handle) -> f64;
    get_channel_format: fn(Handle) -> c_int;
    get_desc: fn(Handle) -> Handle;
    child: fn(Handle, *const c_char) -> Handle;
    next_sibling_n: fn(Handle, *const c_char) -> Handle;
    empty: fn(Handle) -> i32;
    child_value_n: fn(Handle, *const c_char) -> *const c_char;
    create_inlet: fn(Handle, i32, i32, i32) -> Handle;
    destroy_inlet: fn(Handle);
    get_fullinfo: fn(Handle, f64, *mut i32) -> Handle;
    open_stream: fn(Handle, f64, *mut i32);
    time_correction: fn(Handle, f64, *mut i32) -> f64;
    pull_sample_d: fn(Handle, *mut f64, i32, f64, *mut i32) -> f64;
    pull_chunk_d: fn(Handle, *mut f64, *mut f64, c_ulong, c_ulong, f64, *mut i32) -> c_ulong;
    create_outlet: fn(Handle, i32, i32) -> Handle;
    destroy_outlet: fn(Handle);
    push_sample_strtp: fn(Handle, *const *const c_char, f64, i32) -> i32;
    have_consumers: fn(Handle) -> i32;
}

struct Lib {
    api: Api,
    path: String,
    version: i32,
}

static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();

/// liblsl, loaded on first use; the error says what was tried and how to install it.
fn lib() -> Result<&'static Lib, LslError> {
    LIB.get_or_init(load)
        .as_ref()
        .map_err(|tried| LslError::Missing {
            tried: tried.clone(),
        })
}

/// Which liblsl was loaded (`neuroloop devices` prints it).
pub fn library_description() -> Result<String, LslError> {
    let lib = lib()?;
    Ok(format!(
        "liblsl {}.{:02} from {}",
        lib.version / 100,
        lib.version % 100,
        lib.path
    ))
}

fn load() -> Result<Lib, String> {
    let candidates = match std::env::var_os("LIBLSL_PATH") {
        Some(path) => vec![path.to_string_lossy().into_owned()],
        None => {
            let mut c = vec!["liblsl.so".to_string(), "liblsl.so.2".to_string()];
            c.extend(pylsl_library());
            c
        }
    };
    let mut tried = Vec::new();
    for path in &candidates {
        match open_library(path) {
            Ok(lib) => return Ok(lib),
            Err(e) => tried.push(format!("{path}: {e}")),
        }
    }
    if std::env::var_os("LIBLSL_PATH").is_none() && candidates.len() == 2 {
        tried.push("pylsl: not found by python3".into());
    }
    Err(tried.join("; "))
}

fn open_library(path: &str) -> Result<Lib, String> {
    let c_path = CString::new(path).map_err(|_| "a path with a NUL byte".to_string())?;
    // SAFETY: a NUL-terminated path; the handle is never closed (liblsl
    // keeps threads running for the life of the process).
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a NUL-terminated message (or null) after a failed dlopen.
        let message = unsafe { libc::dlerror() };
        return Err(if message.is_null() {
            "cannot be loaded".into()
        } else {
            // SAFETY: checked non-null above.
            unsafe { CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned()
        });
    }
    let api = Api::bind(handle)?;
    // SAFETY: bound above; takes no arguments.
    let version = unsafe { (api.library_version)() };
    Ok(Lib {
        api,
        path: path.to_string(),
        version,
    })
}

/// liblsl inside pylsl's wheel, if `python3` has pylsl (without importing it).
fn pylsl_library() -> Option<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('pylsl'); print(s.submodule_search_locations[0] if s else '')",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let lib = dir.join("lib").join("liblsl.so");
    (dir.is_dir() && lib.exists()).then(|| lib.display().to_string())
}

fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: liblsl returns NUL-terminated strings owned by the object asked.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).expect("NUL bytes replaced")
}

fn lost(message: &str) -> DeviceError {
    DeviceError::Disconnected {
        device: "lsl",
        message: message.into(),
    }
}

// ---------------------------------------------------------------- errors

#[derive(Debug, thiserror::Error)]
pub enum LslError {
    #[error("LSL needs liblsl, which was not found ({tried}). Install it with `pip install pylsl` (its wheel ships liblsl.so, found through python3), or install liblsl and set LIBLSL_PATH=/path/to/liblsl.so")]
    Missing { tried: String },
    #[error("LSL: no stream with {query} within {timeout_ms} ms; streams seen: {seen}")]
    NotFound {
        query: String,
        timeout_ms: f64,
        seen: String,
    },
    #[error("LSL: {count} streams have {query} ({list}); set source.source_id to choose one")]
    Ambiguous {
        query: String,
        count: usize,
        list: String,
    },
    #[error("LSL stream {stream}: {problem}")]
    Stream { stream: String, problem: String },
    #[error("LSL: {what} failed")]
    Call { what: &'static str },
}

// ---------------------------------------------------------------- stream info

/// A resolved stream's description (owned; destroyed on drop).
struct StreamInfo(Handle);

// SAFETY: a streaminfo handle is a heap object liblsl lets any thread use.
unsafe impl Send for StreamInfo {}

impl Drop for StreamInfo {
    fn drop(&mut self) {
        if let Ok(lib) = lib() {
            // SAFETY: owned handle, destroyed once.
            unsafe { (lib.api.destroy_streaminfo)(self.0) }
        }
    }
}

impl StreamInfo {
    fn get<T>(&self, f: impl FnOnce(&Api, Handle) -> T) -> T {
        let lib = lib().expect("a StreamInfo exists only once liblsl is loaded");
        f(&lib.api, self.0)
    }
    fn name(&self) -> String {
        // SAFETY (here and below): a live streaminfo handle.
        self.get(|api, h| text(unsafe { (api.get_name)(h) }))
    }
    fn kind(&self) -> String {
        self.get(|api, h| text(unsafe { (api.get_type)(h) }))
    }
    fn source_id(&self) -> String {
        self.get(|api, h| text(unsafe { (api.get_source_id)(h) }))
    }
    fn channel_count(&self) -> usize {
        self.get(|api, h| unsafe { (api.get_channel_count)(h) })
            .max(0) as usize
    }
    fn rate_hz(&self) -> f64 {
        self.get(|api, h| unsafe { (api.get_nominal_srate)(h) })
    }
    fn format(&self) -> c_int {
        self.get(|api, h| unsafe { (api.get_channel_format)(h) })
    }

    /// `'name' (EEG, 32 × float32 at 500 Hz, source_id 'x', host h)`.
    fn describe(&self) -> String {
        let format = usize::try_from(self.format())
            .ok()
            .and_then(|f| FORMAT_NAMES.get(f))
            .unwrap_or(&"unknown format");
        let host = self.get(|api, h| text(unsafe { (api.get_hostname)(h) }));
        format!(
            "'{}' ({}, {} × {format} at {} Hz, source_id '{}', host {host})",
            self.name(),
            self.kind(),
            self.channel_count(),
            self.rate_hz(),
            self.source_id(),
        )
    }

    /// Each channel's label and unit from `desc/channels/channel`, where given.
    fn channel_descriptions(&self) -> Vec<(Option<String>, Option<String>)> {
        let (label, unit, channels, channel) = (
            c_string("label"),
            c_string("unit"),
            c_string("channels"),
            c_string("channel"),
        );
        let mut out = Vec::new();
        self.get(|api, h| {
            let non_empty = |s: String| (!s.trim().is_empty()).then(|| s.trim().to_string());
            // SAFETY: XML handles of a live streaminfo; liblsl returns an empty
            // element (never null) for a missing child.
            unsafe {
                let list = (api.child)((api.get_desc)(h), channels.as_ptr());
                let mut node = (api.child)(list, channel.as_ptr());
                while (api.empty)(node) == 0 {
                    out.push((
                        non_empty(text((api.child_value_n)(node, label.as_ptr()))),
                        non_empty(text((api.child_value_n)(node, unit.as_ptr()))),
                    ));
                    node = (api.next_sibling_n)(node, channel.as_ptr());
                }
            }
        });
        out
    }
}

/// Call a resolver that fills a buffer of streaminfo handles.
fn resolve(fill: impl FnOnce(&Api, *mut Handle, u32) -> i32) -> Result<Vec<StreamInfo>, LslError> {
    let lib = lib()?;
    let mut buffer: Vec<Handle> = vec![std::ptr::null_mut(); 256];
    let n = fill(&lib.api, buffer.as_mut_ptr(), buffer.len() as u32);
    if n < 0 {
        return Err(LslError::Call {
            what: "resolving streams",
        });
    }
    Ok(buffer
        .into_iter()
        .take(n as usize)
        .filter(|h| !h.is_null())
        .map(StreamInfo)
        .collect())
}

fn resolve_all(wait_s: f64) -> Result<Vec<StreamInfo>, LslError> {
    // SAFETY: the buffer holds `len` handles.
    resolve(|api, buf, len| unsafe { (api.resolve_all)(buf, len, wait_s) })
}

/// Every stream visible within `wait_s`, described; `neuroloop devices` prints them.
pub fn list_streams(wait_s: f64) -> Result<Vec<String>, LslError> {
    Ok(resolve_all(wait_s)?
        .iter()
        .map(StreamInfo::describe)
        .collect())
}

// ---------------------------------------------------------------- source

/// `[source] kind = "lsl"`: a numeric LSL stream, resolved by name, type and/or source id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LslSourceConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub stream_type: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
    /// How long to look for the stream at start.
    #[serde(default = "default_resolve_timeout_ms")]
    pub resolve_timeout_ms: f64,
    /// Expected channel count and rate: a stream that differs is refused (unchecked when absent).
    #[serde(default)]
    pub channel_count: Option<u32>,
    #[serde(default)]
    pub rate_hz: Option<f64>,
    /// Unit of the channels whose description gives none ("uV", "mV" or "V").
    #[serde(default)]
    pub unit: Option<String>,
    /// Each channel's range (±µV) in the session recording; beyond it samples clip (counted).
    #[serde(default = "default_range_uv")]
    pub range_uv: f64,
    /// A timestamp more than this many sample periods after the previous one starts a gap.
    #[serde(default = "default_gap_periods")]
    pub gap_periods: f64,
    /// No sample for this long = the stream is lost.
    #[serde(default = "default_stall_ms")]
    pub stall_ms: f64,
}

fn default_resolve_timeout_ms() -> f64 {
    5000.0
}
fn default_range_uv() -> f64 {
    100_000.0
}
fn default_gap_periods() -> f64 {
    1.5
}
fn default_stall_ms() -> f64 {
    500.0
}

impl LslSourceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let properties = self.properties();
        if properties.is_empty() {
            return Err(invalid(
                "source.name",
                "an LSL source needs name, type or source_id to find its stream".into(),
            ));
        }
        if let Some((key, _)) = properties
            .iter()
            .find(|(_, v)| v.trim().is_empty() || v.contains('\''))
        {
            return Err(invalid(
                key_field(key),
                "must be non-empty text without a single quote".into(),
            ));
        }
        check_range(
            "source.resolve_timeout_ms",
            self.resolve_timeout_ms,
            10.0,
            600_000.0,
        )?;
        if let Some(n) = self.channel_count {
            check_range("source.channel_count", f64::from(n), 1.0, 1024.0)?;
        }
        if let Some(hz) = self.rate_hz {
            check_range("source.rate_hz", hz, 1.0, crate::time::MAX_RATE_HZ)?;
        }
        if let Some(unit) = &self.unit {
            uv_per_unit(unit).ok_or_else(|| {
                invalid(
                    "source.unit",
                    format!("must be uV, mV or V (or nV), got {unit:?}"),
                )
            })?;
        }
        check_range("source.range_uv", self.range_uv, 1.0, 1e9)?;
        check_range("source.gap_periods", self.gap_periods, 1.01, 1e6)?;
        check_range("source.stall_ms", self.stall_ms, 20.0, 60_000.0)
    }

    fn properties(&self) -> Vec<(&'static str, &str)> {
        [
            ("name", &self.name),
            ("type", &self.stream_type),
            ("source_id", &self.source_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    /// `name 'x' and type 'EEG'`, for messages.
    fn query(&self) -> String {
        let parts: Vec<String> = self
            .properties()
            .iter()
            .map(|(k, v)| format!("{k} '{v}'"))
            .collect();
        parts.join(" and ")
    }
}

fn key_field(key: &str) -> &'static str {
    match key {
        "name" => "source.name",
        "type" => "source.type",
        _ => "source.source_id",
    }
}

/// µV per unit of a channel unit as LSL streams write it.
fn uv_per_unit(unit: &str) -> Option<f64> {
    match unit.trim().to_ascii_lowercase().as_str() {
        "uv" | "µv" | "μv" | "microvolt" | "microvolts" => Some(1.0),
        "mv" | "millivolt" | "millivolts" => Some(1e3),
        "v" | "volt" | "volts" => Some(1e6),
        "nv" | "nanovolt" | "nanovolts" => Some(1e-3),
        _ => None,
    }
}

/// Frames pulled from the inlet at most at once.
const MAX_CHUNK_FRAMES: usize = 256;
/// Seconds of data liblsl buffers for the inlet; beyond that it drops the
/// oldest, which the timestamps then show as a gap.
const INLET_BUFFER_S: i32 = 30;
/// How long opening the stream and its first time correction may take.
const OPEN_TIMEOUT_S: f64 = 5.0;
/// How often the time correction is read while streaming.
const CORRECTION_PERIOD: Duration = Duration::from_secs(1);

/// Resolve the configured stream, check it, and subscribe to it; the
/// acquisition thread pulls from it.
pub fn open_source(c: &LslSourceConfig) -> Result<Opened, RuntimeError> {
    let query = c.query();
    let predicate: Vec<String> = c
        .properties()
        .iter()
        .map(|(k, v)| format!("{k}='{v}'"))
        .collect();
    let predicate = c_string(&predicate.join(" and "));
    let timeout_s = c.resolve_timeout_ms / 1000.0;
    // SAFETY: the buffer holds `len` handles; the predicate is NUL-terminated.
    let found = resolve(|api, buf, len| unsafe {
        (api.resolve_bypred)(buf, len, predicate.as_ptr(), 1, timeout_s)
    })?;
    let info = match found.len() {
        0 => {
            let seen: Vec<String> = resolve_all(1.0)?.iter().map(StreamInfo::describe).collect();
            return Err(LslError::NotFound {
                query,
                timeout_ms: c.resolve_timeout_ms,
                seen: if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join(", ")
                },
            }
            .into());
        }
        1 => found.into_iter().next().expect("one"),
        count => {
            let list: Vec<String> = found.iter().map(StreamInfo::describe).collect();
            return Err(LslError::Ambiguous {
                query,
                count,
                list: list.join(", "),
            }
            .into());
        }
    };
    let stream = info.describe();
    let refuse = |problem: String| LslError::Stream {
        stream: stream.clone(),
        problem,
    };
    let format = info.format();
    if format == FORMAT_STRING || !(1..=7).contains(&format) {
        return Err(refuse(
            "carries text (a marker stream), not samples; a source needs a numeric stream".into(),
        )
        .into());
    }
    let hz = info.rate_hz();
    if hz <= 0.0 {
        return Err(refuse(
            "has an irregular rate; a source needs a stream with a nominal rate".into(),
        )
        .into());
    }
    let rate = SampleRate::new(hz).map_err(|e| refuse(e.to_string()))?;
    if let Some(want) = c.rate_hz.filter(|&w| (w - hz).abs() > 1e-9 * w) {
        return Err(refuse(format!(
            "runs at {hz} Hz, the config expects {want} Hz (source.rate_hz)"
        ))
        .into());
    }
    let channels = info.channel_count();
    if let Some(want) = c.channel_count.filter(|&w| w as usize != channels) {
        return Err(refuse(format!(
            "has {channels} channels, the config expects {want} (source.channel_count)"
        ))
        .into());
    }

    let lib = lib()?;
    // SAFETY: a live streaminfo; the inlet copies it.
    let inlet = Inlet(unsafe { (lib.api.create_inlet)(info.0, INLET_BUFFER_S, 0, 0) });
    if inlet.0.is_null() {
        return Err(LslError::Call {
            what: "creating an inlet",
        }
        .into());
    }
    let mut ec = 0;
    // SAFETY: a live inlet; the returned info is owned by us.
    let full = StreamInfo(unsafe { (lib.api.get_fullinfo)(inlet.0, OPEN_TIMEOUT_S, &mut ec) });
    if ec != 0 || full.0.is_null() {
        return Err(refuse("did not send its full description".into()).into());
    }
    let (labels, uv_per_unit) =
        channel_map(&full.channel_descriptions(), channels, c).map_err(&refuse)?;
    // Subscribe now: samples queue from here until the acquisition thread pulls.
    // SAFETY: a live inlet.
    unsafe { (lib.api.open_stream)(inlet.0, OPEN_TIMEOUT_S, &mut ec) };
    if ec != 0 {
        return Err(refuse("could not be opened".into()).into());
    }
    let counters = Arc::new(LslCounters::default());
    let correction = inlet.time_correction(OPEN_TIMEOUT_S).ok().flatten();
    counters.store_correction(correction);
    Ok(Opened {
        rate,
        labels,
        description: format!("LSL stream {stream}"),
        max_chunk_frames: MAX_CHUNK_FRAMES,
        full_scale_uv: vec![c.range_uv; channels],
        source: Source::Lsl(LslSource {
            inlet,
            channels,
            uv_per_unit,
            clock: SampleClock::new(rate, c.gap_periods, c.stall_ms),
            stall: Duration::from_secs_f64(c.stall_ms / 1000.0),
            correction,
            correction_jump_s: (1.0 / hz).max(1e-3),
            counters,
        }),
    })
}

/// Labels (`ch<k>` where the stream names none) and µV per stream unit of every channel.
fn channel_map(
    described: &[(Option<String>, Option<String>)],
    channels: usize,
    c: &LslSourceConfig,
) -> Result<(Vec<String>, Vec<f64>), String> {
    let mut labels = Vec::with_capacity(channels);
    let mut scales = Vec::with_capacity(channels);
    for k in 0..channels {
        let (label, unit) = described.get(k).cloned().unwrap_or((None, None));
        let label = label.unwrap_or_else(|| format!("ch{}", k + 1));
        let scale = match (unit, &c.unit) {
            (Some(unit), _) => uv_per_unit(&unit).ok_or_else(|| {
                format!("channel {label} is in {unit:?}, which cannot be converted to µV")
            })?,
            (None, Some(unit)) => uv_per_unit(unit).expect("validated"),
            (None, None) => {
                return Err(format!(
                "does not give channel {label}'s unit; set source.unit (\"uV\", \"mV\" or \"V\")"
            ))
            }
        };
        labels.push(label);
        scales.push(scale);
    }
    Ok((labels, scales))
}

/// A subscribed inlet (destroyed on drop, which disconnects).
struct Inlet(Handle);

// SAFETY: liblsl inlets may be used from any one thread at a time.
unsafe impl Send for Inlet {}

impl Drop for Inlet {
    fn drop(&mut self) {
        if let Ok(lib) = lib() {
            // SAFETY: owned handle, destroyed once.
            unsafe { (lib.api.destroy_inlet)(self.0) }
        }
    }
}

impl Inlet {
    /// Wait up to `wait_s` for a sample, then take whatever else is queued
    /// (as much as the buffers hold); returns the frames read.
    fn pull(
        &self,
        values: &mut [f64],
        stamps: &mut [f64],
        wait_s: f64,
    ) -> Result<usize, DeviceError> {
        let api = &lib()
            .expect("an inlet exists only once liblsl is loaded")
            .api;
        let channels = values.len() / stamps.len();
        let mut ec = 0;
        // SAFETY: `values` holds at least one frame.
        let first = unsafe {
            (api.pull_sample_d)(
                self.0,
                values.as_mut_ptr(),
                channels as i32,
                wait_s,
                &mut ec,
            )
        };
        if ec == ERROR_LOST {
            return Err(lost(
                "the stream was lost (its outlet closed or its host is gone)",
            ));
        }
        if first == 0.0 {
            return Ok(0);
        }
        stamps[0] = first;
        let (rest, rest_stamps) = (&mut values[channels..], &mut stamps[1..]);
        // SAFETY: both buffers hold `rest_stamps.len()` frames.
        let more = unsafe {
            (api.pull_chunk_d)(
                self.0,
                rest.as_mut_ptr(),
                rest_stamps.as_mut_ptr(),
                rest.len() as c_ulong,
                rest_stamps.len() as c_ulong,
                0.0,
                &mut ec,
            )
        };
        if ec == ERROR_LOST {
            return Err(lost(
                "the stream was lost (its outlet closed or its host is gone)",
            ));
        }
        Ok(1 + more as usize / channels)
    }

    /// The offset that maps the sender's timestamps onto this machine's
    /// clock; `None` while liblsl has no estimate yet.
    fn time_correction(&self, timeout_s: f64) -> Result<Option<f64>, DeviceError> {
        let api = &lib()
            .expect("an inlet exists only once liblsl is loaded")
            .api;
        let mut ec = 0;
        // SAFETY: a live inlet.
        let offset = unsafe { (api.time_correction)(self.0, timeout_s, &mut ec) };
        match ec {
            0 => Ok(Some(offset)),
            ERROR_TIMEOUT => Ok(None),
            ERROR_LOST => Err(lost("the stream was lost during a time correction")),
            _ => Ok(None),
        }
    }
}

/// Where each sample goes in the session's sample index, from its timestamp.
///
/// Timestamps are compared with a prediction, the previous predicted time
/// plus one period nudged by a fraction of each error, rather than with the
/// previous timestamp: jitter then cannot add up to a false gap, and a sender
/// whose true rate differs slightly from the nominal one is still followed.
#[derive(Debug, Clone)]
pub struct SampleClock {
    period_s: f64,
    gap_periods: f64,
    /// A longer gap than this cannot be lost samples (the stream would have
    /// stalled first): the sender's clock jumped.
    max_gap_frames: u64,
    next: u64,
    last_stamp: Option<f64>,
    /// When the next sample is expected (meaningful once `last_stamp` is set).
    predicted: f64,
}

/// How much of each timestamp's error moves the prediction.
const PREDICTION_GAIN: f64 = 1.0 / 16.0;

/// How a timestamp relates to the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Within `gap_periods` periods of the previous sample: the next sample.
    Next,
    /// Later than that: this many frames were lost before it.
    Gap(u64),
    /// Earlier than the previous timestamp; the sample follows the previous one.
    Backwards,
    /// Not a number, or so far ahead that the stream would have stalled;
    /// the sample follows the previous one.
    Jump,
}

impl SampleClock {
    pub fn new(rate: SampleRate, gap_periods: f64, stall_ms: f64) -> Self {
        Self {
            period_s: 1.0 / rate.hz(),
            gap_periods,
            max_gap_frames: rate.samples_in_ms(stall_ms),
            next: 0,
            last_stamp: None,
            predicted: 0.0,
        }
    }

    /// The sample index of a sample stamped `stamp`, and how it was placed.
    pub fn place(&mut self, stamp: f64) -> (u64, Step) {
        let step = match self.last_stamp {
            _ if !stamp.is_finite() => Step::Jump,
            None => Step::Next,
            Some(last) if stamp < last => Step::Backwards,
            Some(last) => {
                // Periods since the previous sample's (predicted) time.
                let late = (stamp - self.predicted) / self.period_s + 1.0;
                if late <= self.gap_periods {
                    Step::Next
                } else {
                    let lost = (((stamp - last) / self.period_s).round() as u64)
                        .saturating_sub(1)
                        .max(1);
                    if lost > self.max_gap_frames {
                        Step::Jump
                    } else {
                        Step::Gap(lost)
                    }
                }
            }
        };
        if stamp.is_finite() {
            self.predicted = match (step, self.last_stamp) {
                (Step::Next, Some(_)) => {
                    self.predicted + PREDICTION_GAIN * (stamp - self.predicted) + self.period_s
                }
                // The first sample, or after a discontinuity: start afresh.
                _ => stamp + self.period_s,
            };
            self.last_stamp = Some(stamp);
        }
        let index = self.next + if let Step::Gap(n) = step { n } else { 0 };
        self.next = index + 1;
        (index, step)
    }
}

/// What the LSL source counted, readable while the session runs.
#[derive(Debug, Default)]
pub struct LslCounters {
    frames: AtomicU64,
    gaps: AtomicU64,
    gap_frames: AtomicU64,
    timestamps_backwards: AtomicU64,
    timestamp_jumps: AtomicU64,
    time_correction_jumps: AtomicU64,
    /// The last time correction (f64 bits); NaN while there is none.
    time_correction_s: AtomicU64,
}

impl LslCounters {
    fn store_correction(&self, correction: Option<f64>) {
        self.time_correction_s
            .store(correction.unwrap_or(f64::NAN).to_bits(), Ordering::Relaxed);
    }

    /// One warning per kind of trouble (the supervisor shows each once).
    pub fn warn(&self, at: u64, warn: &mut dyn FnMut(String, String)) {
        for (key, counter, what) in [
            (
                "lsl-gap",
                &self.gaps,
                "timestamps skipped ahead: frames lost, counted as a gap",
            ),
            (
                "lsl-backwards",
                &self.timestamps_backwards,
                "timestamps went backwards",
            ),
            (
                "lsl-jump",
                &self.timestamp_jumps,
                "the sender's clock jumped",
            ),
            (
                "lsl-correction",
                &self.time_correction_jumps,
                "the time correction jumped",
            ),
        ] {
            if counter.load(Ordering::Relaxed) > 0 {
                warn(
                    key.into(),
                    format!("lsl: {what} (first seen by sample {at}; totals in summary.json)"),
                );
            }
        }
    }

    /// The source's section of `summary.json`.
    pub fn report(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let correction = f64::from_bits(get(&self.time_correction_s));
        serde_json::json!({
            "kind": "lsl",
            "frames": get(&self.frames),
            "gaps": get(&self.gaps),
            "gap_frames": get(&self.gap_frames),
            "timestamps_backwards": get(&self.timestamps_backwards),
            "timestamp_jumps": get(&self.timestamp_jumps),
            "time_correction_jumps": get(&self.time_correction_jumps),
            "time_correction_s": correction.is_finite().then_some(correction),
        })
    }
}

/// A subscribed LSL stream feeding the acquisition ring.
pub struct LslSource {
    inlet: Inlet,
    channels: usize,
    uv_per_unit: Vec<f64>,
    clock: SampleClock,
    stall: Duration,
    correction: Option<f64>,
    /// A change of the time correction larger than this is counted as a jump.
    correction_jump_s: f64,
    pub counters: Arc<LslCounters>,
}

impl LslSource {
    /// Pull samples, scaled to µV and placed by their timestamps, into `out`
    /// until `stop` is set, the stream is lost, or it stalls.
    pub fn run(&mut self, out: &mut dyn FrameSink, stop: &AtomicBool) -> Result<(), DeviceError> {
        let mut values = vec![0.0; MAX_CHUNK_FRAMES * self.channels];
        let mut scaled = vec![0.0; MAX_CHUNK_FRAMES * self.channels];
        let mut stamps = vec![0.0; MAX_CHUNK_FRAMES];
        let wait_s = (self.stall / 4)
            .min(Duration::from_millis(100))
            .as_secs_f64();
        let mut last_data = Instant::now();
        let mut last_correction = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let frames = self.inlet.pull(&mut values, &mut stamps, wait_s)?;
            let now = Instant::now();
            if frames > 0 {
                last_data = now;
                self.push(&values, &stamps[..frames], now, &mut scaled, out);
            } else if now.duration_since(last_data) > self.stall {
                return Err(DeviceError::Stalled {
                    device: "lsl",
                    ms: self.stall.as_millis() as u64,
                });
            }
            if now.duration_since(last_correction) >= CORRECTION_PERIOD {
                last_correction = now;
                self.update_correction()?;
            }
        }
        Ok(())
    }

    /// Scale and place `stamps.len()` frames of `values`, and push them in
    /// runs of consecutive sample indices (a gap starts a new run).
    fn push(
        &mut self,
        values: &[f64],
        stamps: &[f64],
        arrived: Instant,
        scaled: &mut [f64],
        out: &mut dyn FrameSink,
    ) {
        let ch = self.channels;
        let mut run_start = 0;
        let mut run_index = 0;
        for (k, &stamp) in stamps.iter().enumerate() {
            let (index, step) = self.clock.place(stamp);
            match step {
                Step::Next => {}
                Step::Gap(lost) => {
                    self.counters.gaps.fetch_add(1, Ordering::Relaxed);
                    self.counters.gap_frames.fetch_add(lost, Ordering::Relaxed);
                }
                Step::Backwards => {
                    self.counters
                        .timestamps_backwards
                        .fetch_add(1, Ordering::Relaxed);
                }
                Step::Jump => {
                    self.counters
                        .timestamp_jumps
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            if k == 0 {
                run_index = index;
            } else if index != run_index + (k - run_start) as u64 {
                out.push(run_index, &scaled[run_start * ch..k * ch], arrived);
                (run_start, run_index) = (k, index);
            }
            for ((s, &v), &uv) in scaled[k * ch..(k + 1) * ch]
                .iter_mut()
                .zip(&values[k * ch..(k + 1) * ch])
                .zip(&self.uv_per_unit)
            {
                *s = v * uv;
            }
        }
        out.push(
            run_index,
            &scaled[run_start * ch..stamps.len() * ch],
            arrived,
        );
        self.counters
            .frames
            .fetch_add(stamps.len() as u64, Ordering::Relaxed);
    }

    fn update_correction(&mut self) -> Result<(), DeviceError> {
        let Some(now) = self.inlet.time_correction(0.0)? else {
            return Ok(());
        };
        if self
            .correction
            .is_some_and(|before| (now - before).abs() > self.correction_jump_s)
        {
            self.counters
                .time_correction_jumps
                .fetch_add(1, Ordering::Relaxed);
        }
        self.correction = Some(now);
        self.counters.store_correction(Some(now));
        Ok(())
    }
}

// ---------------------------------------------------------------- markers

/// `[lsl_markers]`: every logged event as a string marker on an LSL stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LslMarkersConfig {
    #[serde(default = "default_marker_name")]
    pub name: String,
    /// Identifies the stream across restarts (LabRecorder reconnects by it).
    #[serde(default = "default_marker_name")]
    pub source_id: String,
}

fn default_marker_name() -> String {
    "neuroloop".into()
}

impl LslMarkersConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("lsl_markers.name", &self.name),
            ("lsl_markers.source_id", &self.source_id),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(field, "must be non-empty".into()));
            }
        }
        Ok(())
    }
}

/// The marker stream: one string channel, irregular rate, type `Markers`.
pub struct MarkerOutlet {
    outlet: Handle,
    stats: Arc<MarkerStats>,
}

// SAFETY: liblsl outlets may be used from any one thread at a time.
unsafe impl Send for MarkerOutlet {}

/// What the marker outlet did, for `summary.json`.
#[derive(Debug)]
pub struct MarkerStats {
    name: String,
    source_id: String,
    /// The session's start on this machine's LSL clock: `latency.tsv`'s times
    /// (seconds from the start) plus this are LSL timestamps.
    session_start_lsl_s: f64,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl MarkerStats {
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "source_id": self.source_id,
            "session_start_lsl_s": self.session_start_lsl_s,
            "markers_sent": self.sent.load(Ordering::Relaxed),
            "markers_failed": self.failed.load(Ordering::Relaxed),
        })
    }
}

/// How long a closing marker outlet waits so that its last markers reach
/// the inlets already connected (liblsl sends them on its own thread).
const MARKER_LINGER: Duration = Duration::from_millis(200);

impl MarkerOutlet {
    /// Create the stream; `session_start` anchors the session's host times on the LSL clock.
    pub fn open(c: &LslMarkersConfig, session_start: Instant) -> Result<Self, LslError> {
        let lib = lib()?;
        let (name, kind, id) = (
            c_string(&c.name),
            c_string("Markers"),
            c_string(&c.source_id),
        );
        // SAFETY: NUL-terminated strings; rate 0 = irregular; format string.
        let info = StreamInfo(unsafe {
            (lib.api.create_streaminfo)(
                name.as_ptr(),
                kind.as_ptr(),
                1,
                0.0,
                FORMAT_STRING,
                id.as_ptr(),
            )
        });
        // SAFETY: a live streaminfo (the outlet copies it); chunk size 0 and
        // buffer 360 are liblsl's defaults.
        let outlet = unsafe { (lib.api.create_outlet)(info.0, 0, 360) };
        if info.0.is_null() || outlet.is_null() {
            return Err(LslError::Call {
                what: "creating the marker outlet",
            });
        }
        Ok(Self {
            outlet,
            stats: Arc::new(MarkerStats {
                name: c.name.clone(),
                source_id: c.source_id.clone(),
                session_start_lsl_s: lsl_time(&lib.api, session_start),
                sent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        })
    }

    pub fn stats(&self) -> Arc<MarkerStats> {
        self.stats.clone()
    }

    /// Send `event`, which happened (or is scheduled) at host time `at`.
    pub fn send(&mut self, event: &Event, at: Instant) {
        let api = &lib()
            .expect("an outlet exists only once liblsl is loaded")
            .api;
        let text = c_string(&marker_text(event));
        let data = [text.as_ptr()];
        // SAFETY: a live outlet and one NUL-terminated string for its one channel.
        let rc =
            unsafe { (api.push_sample_strtp)(self.outlet, data.as_ptr(), lsl_time(api, at), 1) };
        let counter = if rc == 0 {
            &self.stats.sent
        } else {
            &self.stats.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for MarkerOutlet {
    fn drop(&mut self) {
        let api = &lib()
            .expect("an outlet exists only once liblsl is loaded")
            .api;
        // SAFETY: owned handle, destroyed once after the linger.
        unsafe {
            if (api.have_consumers)(self.outlet) != 0 {
                std::thread::sleep(MARKER_LINGER);
            }
            (api.destroy_outlet)(self.outlet);
        }
    }
}

/// A host time on this machine's LSL clock.
fn lsl_time(api: &Api, at: Instant) -> f64 {
    let now = Instant::now();
    // SAFETY: takes no arguments.
    let lsl_now = unsafe { (api.local_clock)() };
    match at.checked_duration_since(now) {
        Some(ahead) => lsl_now + ahead.as_secs_f64(),
        None => lsl_now - now.duration_since(at).as_secs_f64(),
    }
}

/// `stim sample=1234 decided=1230 channel=0`, `spindle sample=1000 end=1090
/// detected=1050 channel=0`: the events.tsv row's trial type and sample indices.
pub fn marker_text(event: &Event) -> String {
    match event {
        Event::Trigger(t) => format!(
            "{} sample={} decided={} channel={}",
            t.trial_type(),
            t.onset,
            t.decided_at,
            t.channel
        ),
        Event::Detection(d) => {
            let detected = if d.committed {
                format!(" detected={}", d.detected_at)
            } else {
                String::new()
            };
            format!(
                "{} sample={} end={}{detected} channel={}",
                d.kind.trial_type(),
                d.onset,
                d.end,
                d.channel
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(gap_periods: f64) -> SampleClock {
        SampleClock::new(SampleRate::new(100.0).unwrap(), gap_periods, 500.0)
    }

    #[test]
    fn timestamps_at_the_nominal_rate_are_consecutive_samples() {
        let mut c = clock(1.5);
        for k in 0..1000u64 {
            // Jitter below half a period does not matter.
            let jitter = if k % 3 == 0 { 0.004 } else { -0.003 };
            assert_eq!(c.place(50.0 + k as f64 * 0.01 + jitter), (k, Step::Next));
        }
        // A sender 1 % slower than its nominal rate is followed, not cut into gaps.
        let mut slow = clock(1.5);
        for k in 0..10_000u64 {
            assert_eq!(slow.place(k as f64 * 0.0101), (k, Step::Next));
        }
    }

    #[test]
    fn a_gap_in_the_timestamps_is_a_gap_in_the_sample_index() {
        let mut c = clock(1.5);
        assert_eq!(c.place(1.00), (0, Step::Next));
        assert_eq!(c.place(1.01), (1, Step::Next));
        // 1.4 periods: still the next sample.
        assert_eq!(c.place(1.024), (2, Step::Next));
        // Five periods later: four frames were lost.
        assert_eq!(c.place(1.074), (7, Step::Gap(4)));
        assert_eq!(c.place(1.084), (8, Step::Next));
        // Two periods: one lost.
        assert_eq!(c.place(1.104), (10, Step::Gap(1)));
    }

    #[test]
    fn backwards_and_jumping_timestamps_are_reported_never_resampled() {
        let mut c = clock(1.5);
        c.place(10.0);
        assert_eq!(c.place(9.5), (1, Step::Backwards));
        assert_eq!(c.place(9.51), (2, Step::Next));
        // Ten minutes ahead: longer than the stall time, so not lost samples.
        assert_eq!(c.place(609.51), (3, Step::Jump));
        assert_eq!(c.place(f64::NAN), (4, Step::Jump));
        assert_eq!(c.place(609.52), (5, Step::Next));
        // The gap threshold is the config's.
        let mut wide = clock(3.0);
        wide.place(0.0);
        assert_eq!(wide.place(0.029), (1, Step::Next));
        assert_eq!(wide.place(0.069), (5, Step::Gap(3)));
    }

    #[test]
    fn units_convert_to_microvolts_and_unknown_units_are_refused() {
        let config: LslSourceConfig = toml::from_str("name = \"x\"").unwrap();
        let described = [
            (Some("Fz".to_string()), Some("microvolts".to_string())),
            (None, Some("mV".to_string())),
        ];
        let (labels, scales) = channel_map(&described, 2, &config).unwrap();
        assert_eq!(labels, ["Fz", "ch2"]);
        assert_eq!(scales, [1.0, 1000.0]);
        let counts = [(Some("A1".to_string()), Some("counts".to_string()))];
        let e = channel_map(&counts, 1, &config).unwrap_err();
        assert!(e.contains("A1") && e.contains("counts"), "{e}");
        // No unit anywhere: refused unless the config states it.
        let e = channel_map(&[], 1, &config).unwrap_err();
        assert!(e.contains("source.unit"), "{e}");
        let with_unit = LslSourceConfig {
            unit: Some("V".into()),
            ..config
        };
        assert_eq!(channel_map(&[], 1, &with_unit).unwrap().1, [1e6]);
    }

    #[test]
    fn a_source_needs_a_query_without_quotes() {
        let bad = |text: &str| {
            let c: LslSourceConfig = toml::from_str(text).unwrap();
            c.validate().unwrap_err().to_string()
        };
        assert!(bad("rate_hz = 500.0").contains("source.name"));
        assert!(bad("name = \"it's\"").contains("source.name"));
        assert!(bad("type = \"\"").contains("source.type"));
        assert!(bad("name = \"a\"\nunit = \"counts\"").contains("source.unit"));
        let ok: LslSourceConfig = toml::from_str("type = \"EEG\"\nsource_id = \"amp-1\"").unwrap();
        ok.validate().unwrap();
        assert_eq!(ok.query(), "type 'EEG' and source_id 'amp-1'");
    }

    #[test]
    fn markers_name_the_trial_type_and_samples() {
        use crate::event::{Detection, EventKind, TriggerDecision};
        let stim = Event::Trigger(TriggerDecision {
            delivered: true,
            channel: 0,
            onset: 1234,
            duration: 5,
            decided_at: 1230,
            target_phase_deg: None,
        });
        assert_eq!(
            marker_text(&stim),
            "stim sample=1234 decided=1230 channel=0"
        );
        let mut spindle = Detection::committed(EventKind::Spindle, 1, 1000, 1050);
        spindle.end = 1090;
        assert_eq!(
            marker_text(&Event::Detection(spindle)),
            "spindle sample=1000 end=1090 detected=1050 channel=1"
        );
        let logged = Detection::uncommitted(EventKind::Spindle, 0, 10, 20);
        assert_eq!(
            marker_text(&Event::Detection(logged)),
            "spindle sample=10 end=21 channel=0"
        );
    }
}
