//! NeuroScope / Buzsaki-lab recordings: interleaved little-endian int16
//! `.dat` (wide band) and `.lfp`/`.eeg` (down-sampled) files described by
//! the session's `.xml` (same name beside them): channel count, rates, bits,
//! voltage range and amplification, and the channel groups (shanks).
//!
//! Channels are labelled `shank<g>-ch<c>`: `g` counts the `.xml`'s channel
//! groups from 1, `c` is the channel's place in the file from 0, as
//! NeuroScope numbers it (`ch<c>` for a channel in no group). A channel the
//! `.xml` marks `skip="1"` (a bad channel) is left out of the signals, and a
//! notice names it. µV per bit = voltageRange / 2^nBits / amplification × 10⁶.

use std::path::{Path, PathBuf};

/// One volt per bit: more is no recording system's scale.
const MAX_UV_PER_BIT: f64 = 1e6;

use super::raw::{open_int16_stream, Int16Channel, Int16Stream, MAX_CHANNELS};
use super::reader::{open_regular, read_exact_at, InterleavedReader, SourceInfo, MAX_RATE_HZ};
use super::FileError;
use crate::time::SampleRate;

const FORMAT: &str = "NeuroScope";

/// Largest `.xml` read: real ones are tens of kB.
const MAX_XML_BYTES: u64 = 16 << 20;

/// Extensions of the data files an `.xml` describes, in the order an `.xml`
/// given alone looks for them (NeuroScope's and neo's order).
const DATA_EXTENSIONS: [&str; 3] = ["dat", "lfp", "eeg"];

/// What a NeuroScope `.xml` says about the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuroScopeLayout {
    pub channels: usize,
    pub rate_hz: f64,
    /// `fieldPotentials/lfpSamplingRate`, the rate of the `.lfp`/`.eeg`.
    pub lfp_rate_hz: Option<f64>,
    pub uv_per_bit: f64,
    /// Per file channel: its 0-based group (shank), if any.
    pub groups: Vec<Option<usize>>,
    /// Per file channel: marked `skip="1"`.
    pub skipped: Vec<bool>,
}

/// The `.xml` beside `path` (same stem).
pub fn sidecar_of(path: &Path) -> PathBuf {
    path.with_extension("xml")
}

/// Open a NeuroScope recording given its `.dat`/`.lfp`/`.eeg` or its `.xml`
/// (which opens the `.dat`, or the `.lfp`/`.eeg` when there is no `.dat`).
pub fn open_neuroscope(path: &Path) -> Result<InterleavedReader, FileError> {
    let is_xml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"));
    let (xml, data) = if is_xml {
        let data = DATA_EXTENSIONS
            .iter()
            .map(|extension| path.with_extension(extension))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| FileError::Malformed {
                path: path.to_path_buf(),
                format: FORMAT,
                problem: format!(
                    "no data file beside it: none of {} exists",
                    DATA_EXTENSIONS
                        .iter()
                        .map(|e| path.with_extension(e).display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        (path.to_path_buf(), data)
    } else {
        (sidecar_of(path), path.to_path_buf())
    };
    let layout = read_layout(&xml)?;
    let is_lfp = !data
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dat"));
    let (rate_hz, field) = match (is_lfp, layout.lfp_rate_hz) {
        (false, _) => (layout.rate_hz, "acquisitionSystem/samplingRate"),
        (true, Some(rate)) => (rate, "fieldPotentials/lfpSamplingRate"),
        (true, None) => {
            return Err(FileError::Malformed {
                path: xml,
                format: FORMAT,
                problem: format!(
                    "{} is down-sampled LFP but the .xml has no fieldPotentials/lfpSamplingRate",
                    data.display()
                ),
            })
        }
    };
    let rate = SampleRate::new(rate_hz).expect("checked when the .xml was read");
    let mut skipped = Vec::new();
    let channels: Vec<Int16Channel> = (0..layout.channels)
        .map(|channel| Int16Channel {
            label: match layout.groups[channel] {
                Some(group) => format!("shank{}-ch{channel}", group + 1),
                None => format!("ch{channel}"),
            },
            unit: "uV".into(),
            per_count: layout.uv_per_bit,
        })
        .collect();
    let kept: Vec<usize> = (0..layout.channels)
        .filter(|&channel| {
            if layout.skipped[channel] {
                skipped.push(channels[channel].label.clone());
            }
            !layout.skipped[channel]
        })
        .collect();
    if kept.is_empty() {
        return Err(FileError::Malformed {
            path: xml,
            format: FORMAT,
            problem: "every channel is marked skip=\"1\": nothing to read".into(),
        });
    }
    let stream = Int16Stream {
        rate,
        rate_origin: format!("{} {field}", xml.display()),
        described_by: format!("{} acquisitionSystem/nChannels", xml.display()),
        channels,
    };
    let (frames, all_signals) = open_int16_stream(&data, stream, 0)?;
    let mut notices = Vec::new();
    if !skipped.is_empty() {
        notices.push(format!(
            "{}: channel(s) {} are marked skip=\"1\" in the .xml and are not read",
            data.display(),
            skipped.join(", ")
        ));
    }
    let signals = kept.iter().map(|&c| all_signals[c].clone()).collect();
    let places = kept.iter().map(|&c| (0, c)).collect();
    let info = SourceInfo {
        path: data,
        format: if is_lfp {
            "NeuroScope .lfp"
        } else {
            "NeuroScope .dat"
        },
        signals,
        streams: Vec::new(),
        annotations: Vec::new(),
        notices,
    };
    InterleavedReader::new(info, vec![frames], places)
}

/// Read and check a NeuroScope `.xml`.
pub fn read_layout(xml: &Path) -> Result<NeuroScopeLayout, FileError> {
    let problem = |problem: String| FileError::Malformed {
        path: xml.to_path_buf(),
        format: FORMAT,
        problem,
    };
    let (file, length) = open_regular(xml)?;
    if length > MAX_XML_BYTES {
        return Err(problem(format!(
            "{length} bytes is far more than a NeuroScope .xml holds (at most {MAX_XML_BYTES} are read)"
        )));
    }
    let mut bytes = vec![0; length as usize];
    read_exact_at(&file, xml, &mut bytes, 0)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| problem(format!("not UTF-8 text: {e}")))?;
    let document =
        roxmltree::Document::parse(text).map_err(|e| problem(format!("not valid XML: {e}")))?;
    let root = document.root_element();
    if root.tag_name().name() != "parameters" {
        return Err(problem(format!(
            "the root element is <{}>, not NeuroScope's <parameters>",
            root.tag_name().name()
        )));
    }
    let acquisition = child(root, "acquisitionSystem")
        .ok_or_else(|| problem("no <acquisitionSystem> element".into()))?;
    let number = |name: &str| -> Result<f64, FileError> {
        let text = child(acquisition, name)
            .and_then(|n| n.text())
            .ok_or_else(|| problem(format!("no acquisitionSystem/{name}")))?;
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| {
                problem(format!(
                    "acquisitionSystem/{name} is {text:?}, not a number"
                ))
            })
    };
    let bits = number("nBits")?;
    if bits != 16.0 {
        return Err(problem(format!(
            "acquisitionSystem/nBits is {bits}; NeuroScope .dat/.lfp files are 16-bit"
        )));
    }
    let channels = number("nChannels")?;
    if !(channels >= 1.0 && channels <= MAX_CHANNELS as f64 && channels.fract() == 0.0) {
        return Err(problem(format!(
            "acquisitionSystem/nChannels is {channels}; 1 to {MAX_CHANNELS} are read"
        )));
    }
    let channels = channels as usize;
    let check_rate = |rate_hz: f64, field: &str| -> Result<f64, FileError> {
        if SampleRate::new(rate_hz).is_err() || rate_hz > MAX_RATE_HZ {
            return Err(problem(format!(
                "{field} is {rate_hz} Hz; it must be above 0 and at most {MAX_RATE_HZ}"
            )));
        }
        Ok(rate_hz)
    };
    let rate_hz = check_rate(number("samplingRate")?, "acquisitionSystem/samplingRate")?;
    let lfp_rate_hz = match child(root, "fieldPotentials").and_then(|f| child(f, "lfpSamplingRate"))
    {
        None => None,
        Some(node) => {
            let text = node.text().unwrap_or_default();
            let rate = text.trim().parse::<f64>().map_err(|_| {
                problem(format!(
                    "fieldPotentials/lfpSamplingRate is {text:?}, not a number"
                ))
            })?;
            Some(check_rate(rate, "fieldPotentials/lfpSamplingRate")?)
        }
    };
    let range = number("voltageRange")?;
    let amplification = number("amplification")?;
    let uv_per_bit = range / 65536.0 / amplification * 1e6;
    // Over 1 V per bit is no amplifier's (and would overflow downstream):
    // refused here, at open, rather than at the first sample.
    if !(uv_per_bit > 0.0 && uv_per_bit <= MAX_UV_PER_BIT) {
        return Err(problem(format!(
            "acquisitionSystem/voltageRange ({range}) / 2^16 / amplification ({amplification}) gives {uv_per_bit} µV per bit; expected more than 0 and at most {MAX_UV_PER_BIT}"
        )));
    }
    let mut groups = vec![None; channels];
    let mut skipped = vec![false; channels];
    let channel_groups =
        child(root, "anatomicalDescription").and_then(|a| child(a, "channelGroups"));
    for (group, node) in channel_groups
        .into_iter()
        .flat_map(|g| g.children().filter(|n| n.has_tag_name("group")))
        .enumerate()
    {
        for channel in node.children().filter(|n| n.has_tag_name("channel")) {
            let text = channel.text().unwrap_or_default();
            let index = text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&i| i < channels)
                .ok_or_else(|| {
                    problem(format!(
                        "anatomicalDescription group {} lists channel {text:?}, not one of the {channels} channels (0 to {})",
                        group + 1,
                        channels - 1
                    ))
                })?;
            groups[index].get_or_insert(group);
            skipped[index] |= channel.attribute("skip").map(str::trim) == Some("1");
        }
    }
    Ok(NeuroScopeLayout {
        channels,
        rate_hz,
        lfp_rate_hz,
        uv_per_bit,
        groups,
        skipped,
    })
}

fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    node.children().find(|n| n.has_tag_name(name))
}
