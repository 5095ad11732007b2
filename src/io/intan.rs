//! Intan RHD recordings saved "one file per signal type": an `info.rhd`
//! header (the RHD format's header, no data blocks) beside `amplifier.dat`
//! (the enabled amplifier channels as interleaved little-endian int16,
//! 0.195 µV per bit) and `time.dat` (one int32 timestamp per frame).
//!
//! The header is parsed as Intan's own reader (`read_Intan_RHD2000_file.py`)
//! does, as far as the amplifier channels need: version, sample rate, and
//! every signal group's channels (native and custom names, signal type,
//! enabled). Channels are labelled by their custom name (`A-000` unless the
//! user renamed them). `time.dat`, when present, must hold as many frames as
//! `amplifier.dat`.

use std::path::{Path, PathBuf};

use super::raw::{open_int16_stream, Int16Channel, Int16Stream, MAX_CHANNELS};
use super::reader::{open_regular, read_exact_at, InterleavedReader, SourceInfo, MAX_RATE_HZ};
use super::FileError;
use crate::time::SampleRate;

const FORMAT: &str = "Intan RHD";

/// First four bytes of an RHD header (little-endian 0xC6912702).
const MAGIC: u32 = 0xC691_2702;

/// µV per bit of an RHD2000 amplifier sample.
pub const AMPLIFIER_UV_PER_BIT: f64 = 0.195;

/// `signal_type` of an amplifier channel.
const AMPLIFIER: i16 = 0;

/// Largest header read: a 512-channel system's is a few tens of kB.
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// One channel of an RHD header.
#[derive(Debug, Clone, PartialEq)]
pub struct RhdChannel {
    pub native_name: String,
    pub custom_name: String,
    pub signal_type: i16,
    pub enabled: bool,
}

/// What an RHD header says.
#[derive(Debug, Clone, PartialEq)]
pub struct RhdHeader {
    pub version: (i16, i16),
    pub rate_hz: f64,
    pub channels: Vec<RhdChannel>,
    /// Bytes the header takes (data blocks follow in a one-file `.rhd`).
    pub header_bytes: u64,
}

impl RhdHeader {
    /// The enabled amplifier channels, in `amplifier.dat`'s order.
    pub fn amplifier_channels(&self) -> impl Iterator<Item = &RhdChannel> {
        self.channels
            .iter()
            .filter(|c| c.enabled && c.signal_type == AMPLIFIER)
    }
}

/// Open `amplifier.dat` (given it or the `info.rhd` beside it).
pub fn open_intan(path: &Path) -> Result<InterleavedReader, FileError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let is_header = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("rhd"));
    let (header_path, data) = if is_header {
        (path.to_path_buf(), folder.join("amplifier.dat"))
    } else {
        (folder.join("info.rhd"), path.to_path_buf())
    };
    let header = read_rhd_header(&header_path)?;
    let (_, header_file_bytes) = open_regular(&header_path)?;
    if header_file_bytes > header.header_bytes {
        return Err(FileError::Malformed {
            path: header_path,
            format: FORMAT,
            problem: format!(
                "data blocks follow the {}-byte header: a traditional one-file .rhd, which is not read (save as \"one file per signal type\": info.rhd + amplifier.dat)",
                header.header_bytes
            ),
        });
    }
    if !data.is_file() {
        return Err(FileError::Malformed {
            path: header_path,
            format: FORMAT,
            problem: format!(
                "{} is missing: a one-file-per-signal-type recording keeps its amplifier channels there",
                data.display()
            ),
        });
    }
    let channels: Vec<Int16Channel> = header
        .amplifier_channels()
        .map(|channel| Int16Channel {
            label: channel.custom_name.clone(),
            unit: "uV".into(),
            per_count: AMPLIFIER_UV_PER_BIT,
        })
        .collect();
    if channels.is_empty() || channels.len() > MAX_CHANNELS {
        return Err(FileError::Malformed {
            path: header_path,
            format: FORMAT,
            problem: format!(
                "the header enables {} amplifier channel(s); 1 to {MAX_CHANNELS} are read",
                channels.len()
            ),
        });
    }
    let count = channels.len();
    let stream = Int16Stream {
        rate: SampleRate::new(header.rate_hz).expect("checked with the header"),
        rate_origin: format!("{} field \"sample rate\"", header_path.display()),
        described_by: format!("{} (its enabled amplifier channels)", header_path.display()),
        channels,
    };
    let (frames, signals) = open_int16_stream(&data, stream, 0)?;
    check_time_file(&folder.join("time.dat"), &data, signals[0].samples, count)?;
    let places = (0..signals.len()).map(|column| (0, column)).collect();
    let info = SourceInfo {
        path: data,
        format: "Intan RHD amplifier.dat",
        signals,
        streams: Vec::new(),
        annotations: Vec::new(),
        notices: Vec::new(),
    };
    InterleavedReader::new(info, vec![frames], places)
}

/// `time.dat` holds one int32 per frame: its length must agree with `amplifier.dat`'s.
fn check_time_file(
    time: &Path,
    data: &Path,
    frames: u64,
    channels: usize,
) -> Result<(), FileError> {
    if !time.exists() {
        return Ok(());
    }
    let (_, length) = open_regular(time)?;
    if length != frames * 4 {
        return Err(FileError::Malformed {
            path: data.to_path_buf(),
            format: FORMAT,
            problem: format!(
                "holds {frames} frame(s) of {channels} channel(s) but {} holds {} timestamp(s) ({length} bytes): the two disagree (a cut file, or a header with the wrong channels)",
                time.display(),
                length as f64 / 4.0
            ),
        });
    }
    Ok(())
}

/// Reads the header's little-endian fields in order, naming the field that
/// runs past the end.
struct Fields<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn problem(&self, problem: String) -> FileError {
        FileError::Malformed {
            path: self.path.to_path_buf(),
            format: FORMAT,
            problem,
        }
    }

    fn take(&mut self, count: usize, field: &str) -> Result<&[u8], FileError> {
        if self.bytes.len() - self.at < count {
            return Err(self.problem(format!(
                "the header ends (at {} bytes) inside field {field:?} at byte offset {}",
                self.bytes.len(),
                self.at
            )));
        }
        self.at += count;
        Ok(&self.bytes[self.at - count..self.at])
    }

    fn i16(&mut self, field: &str) -> Result<i16, FileError> {
        let b = self.take(2, field)?;
        Ok(i16::from_le_bytes([b[0], b[1]]))
    }

    fn f32(&mut self, field: &str) -> Result<f32, FileError> {
        let b = self.take(4, field)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, count: usize, field: &str) -> Result<(), FileError> {
        self.take(count, field).map(|_| ())
    }

    /// A Qt QString: a u32 byte length (0xFFFFFFFF = null), then UTF-16LE.
    fn qstring(&mut self, field: &str) -> Result<String, FileError> {
        let b = self.take(4, field)?;
        let length = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if length == u32::MAX {
            return Ok(String::new());
        }
        if length % 2 != 0 {
            return Err(self.problem(format!(
                "field {field:?} at byte offset {} says {length} bytes of UTF-16, an odd count",
                self.at - 4
            )));
        }
        let units: Vec<u16> = self
            .take(length as usize, field)?
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect();
        Ok(String::from_utf16_lossy(&units))
    }
}

/// Read and check an RHD header (`info.rhd`, or the front of a `.rhd`).
pub fn read_rhd_header(path: &Path) -> Result<RhdHeader, FileError> {
    let (file, length) = open_regular(path)?;
    let mut bytes = vec![0; length.min(MAX_HEADER_BYTES) as usize];
    read_exact_at(&file, path, &mut bytes, 0)?;
    let mut f = Fields {
        path,
        bytes: &bytes,
        at: 0,
    };
    let magic = f.take(4, "magic number")?;
    let magic = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
    if magic != MAGIC {
        return Err(f.problem(format!(
            "magic number is {magic:#010x}, not an RHD file's {MAGIC:#010x}"
        )));
    }
    let version = (f.i16("major version")?, f.i16("minor version")?);
    if !(1..=3).contains(&version.0) || version.1 < 0 {
        return Err(f.problem(format!(
            "format version {}.{} is unknown (RHD versions 1.0 to 3.x are read)",
            version.0, version.1
        )));
    }
    let rate_hz = f64::from(f.f32("sample rate")?);
    if SampleRate::new(rate_hz).is_err() || rate_hz > MAX_RATE_HZ {
        return Err(f.problem(format!(
            "field \"sample rate\" (byte offset 8) is {rate_hz} Hz; it must be above 0 and at most {MAX_RATE_HZ}"
        )));
    }
    // DSP enabled, 3 actual and 3 desired bandwidths, notch mode, 2 impedance test frequencies.
    f.skip(2 + 6 * 4 + 2 + 2 * 4, "filter settings")?;
    for note in ["note 1", "note 2", "note 3"] {
        f.qstring(note)?;
    }
    if version >= (1, 1) {
        f.skip(2, "number of temperature sensor channels")?;
    }
    if version >= (1, 3) {
        f.skip(2, "board mode")?;
    }
    if version >= (2, 0) {
        f.qstring("reference channel name")?;
    }
    let groups = f.i16("number of signal groups")?;
    if groups < 0 {
        return Err(f.problem(format!("field \"number of signal groups\" is {groups}")));
    }
    let mut channels = Vec::new();
    for group in 0..groups {
        f.qstring("signal group name")?;
        f.qstring("signal group prefix")?;
        let enabled = f.i16("signal group enabled")? != 0;
        let count = f.i16("number of channels in signal group")?;
        f.skip(2, "number of amplified channels")?;
        if count < 0 {
            return Err(f.problem(format!(
                "signal group {group}: field \"number of channels\" is {count}"
            )));
        }
        if !(enabled && count > 0) {
            continue; // Intan writes channel records only for enabled, non-empty groups.
        }
        for _ in 0..count {
            let native_name = f.qstring("native channel name")?;
            let custom_name = f.qstring("custom channel name")?;
            f.skip(4, "native and custom order")?;
            let signal_type = f.i16("signal type")?;
            let enabled = f.i16("channel enabled")? != 0;
            // Chip channel, board stream, 4 spike-scope settings, impedance magnitude and phase.
            f.skip(6 * 2 + 2 * 4, "channel settings")?;
            if !(0..=5).contains(&signal_type) {
                return Err(f.problem(format!(
                    "channel {native_name:?}: field \"signal type\" is {signal_type} (0 to 5 are defined)"
                )));
            }
            channels.push(RhdChannel {
                native_name,
                custom_name,
                signal_type,
                enabled,
            });
        }
    }
    Ok(RhdHeader {
        version,
        rate_hz,
        channels,
        header_bytes: f.at as u64,
    })
}

/// The `info.rhd` beside `path`, if it is an Intan `amplifier.dat`.
pub fn header_beside(path: &Path) -> Option<PathBuf> {
    let named = path
        .file_name()
        .is_some_and(|n| n.eq_ignore_ascii_case("amplifier.dat"));
    let header = path.with_file_name("info.rhd");
    (named && header.is_file()).then_some(header)
}
