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
//!
//! This file binds the library and resolves streams; [`source`] is the
//! inlet side, [`markers`] the outlet.

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr, CString};
use std::sync::OnceLock;

use super::DeviceError;

mod markers;
mod source;

pub use markers::{marker_text, LslMarkersConfig, MarkerOutlet, MarkerStats};
pub use source::{open_source, LslCounters, LslSource, LslSourceConfig, SampleClock, Step};

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
