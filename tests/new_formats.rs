//! The formats of rodent, sleep and BCI labs (issue 13) against their
//! reference readers, and hand-made bad input.
//!
//! Golden summaries: tests/data/golden/gen_stream_summaries.py (pyxdf and
//! numpy on the real XDF and OpenBCI GUI files in ../shared/data/formats/)
//! and tests/data/golden/gen_rodent_formats.py (small NeuroScope, Intan and
//! legacy Open Ephys recordings in tests/data/formats/, read back by neo).

use std::path::{Path, PathBuf};

use neuroloop::io::{open_reader, FileOptions, SignalReader};
use neuroloop::recording::ChannelSelector;
use serde_json::Value;

mod files;
use files::shared_data;

fn golden(name: &str) -> Value {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/golden/format_summaries"
    ))
    .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no golden summary {}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden JSON")
}

/// A file of tests/data/formats/.
fn test_data(relative: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/formats")).join(relative)
}

fn open(path: &Path) -> Box<dyn SignalReader> {
    open_reader(path, &FileOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every value of `signals` (one vector per signal), read `frames_per_block` frames at a time.
fn read_signals(
    reader: &mut dyn SignalReader,
    signals: &[usize],
    frames_per_block: usize,
) -> Vec<Vec<f64>> {
    reader.select(signals).expect("select");
    let mut buf = vec![0.0; frames_per_block * signals.len()];
    let mut out = vec![Vec::new(); signals.len()];
    while let Some(block) = reader.read_block(&mut buf).expect("read") {
        for frame in buf[..block.frames * signals.len()].chunks_exact(signals.len()) {
            for (column, value) in out.iter_mut().zip(frame) {
                column.push(*value);
            }
        }
    }
    out
}

fn as_f64(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// The values equal the reference reader's summary within 1e-6 of the signal's range.
fn assert_matches(what: &str, values: &[f64], golden: &Value) {
    assert_eq!(
        values.len() as u64,
        golden["sample_count"].as_u64().unwrap(),
        "{what}: sample count"
    );
    if values.is_empty() {
        return;
    }
    let scale = as_f64(&golden["min"])
        .abs()
        .max(as_f64(&golden["max"]).abs());
    let close = |name: &str, actual: f64, expected: f64| {
        assert!(
            (actual - expected).abs() <= 1e-6 * scale,
            "{what}: {name} is {actual}, the reference reader says {expected}"
        );
    };
    let edge = golden["first"].as_array().unwrap();
    for (i, expected) in edge.iter().enumerate() {
        close(&format!("sample {i}"), values[i], as_f64(expected));
    }
    let last = golden["last"].as_array().unwrap();
    for (i, expected) in last.iter().enumerate() {
        let at = values.len() - last.len() + i;
        close(&format!("sample {at}"), values[at], as_f64(expected));
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    close(
        "min",
        values.iter().copied().fold(f64::INFINITY, f64::min),
        as_f64(&golden["min"]),
    );
    close(
        "max",
        values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        as_f64(&golden["max"]),
    );
    close("mean", mean, as_f64(&golden["mean"]));
    close("std", std, as_f64(&golden["std"]));
}

/// A file, the streams read as signals, and the streams refused and why.
type StreamsOf = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

#[test]
fn xdf_streams_match_pyxdf() {
    let expected: [StreamsOf; 3] = [
        (
            "xdf_minimal.xdf",
            &["SendDataC"],
            &[("SendDataString", "markers")],
        ),
        (
            "xdf_empty_streams.xdf",
            &[
                "Empty data stream: test stream 0 counter",
                "Data stream: test stream 0 counter",
            ],
            &[
                ("ctrl", "markers"),
                ("Empty marker stream: test stream 0 counter", "markers"),
            ],
        ),
        (
            "xdf_clock_resets.xdf",
            &[],
            &[
                ("MyMarkerStream", "markers"),
                ("BioSemi", "clock was reset"),
            ],
        ),
    ];
    for (file, read, refused) in expected {
        let path = shared_data(&format!("formats/{file}"));
        let golden = golden(file);
        let mut reader = open(&path);
        let info = reader.info().clone();
        assert_eq!(info.format, "XDF");
        let golden_streams = golden["streams"].as_array().unwrap();
        assert_eq!(info.streams.len(), golden_streams.len(), "{file}: streams");
        for stream in golden_streams {
            let name = stream["name"].as_str().unwrap();
            let ours = info
                .streams
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{file}: no stream {name:?}"));
            if let Some((_, why)) = refused.iter().find(|(n, _)| *n == name) {
                assert!(ours.id.is_none(), "{file}: {name} read");
                assert!(
                    ours.description.contains(why),
                    "{file}: {}",
                    ours.description
                );
                continue;
            }
            assert!(read.contains(&name), "{file}: {name} unexpected");
            let members = info.select_in_stream(name, &[]).expect("select the stream");
            let golden_signals = stream["signals"].as_array().unwrap();
            assert_eq!(
                members.len(),
                golden_signals.len(),
                "{file} {name}: channels"
            );
            let values = read_signals(reader.as_mut(), &members, 4);
            for ((&signal, values), golden) in members.iter().zip(&values).zip(golden_signals) {
                let what = format!("{file} {name} {}", info.signals[signal].label);
                assert_eq!(
                    info.signals[signal].label,
                    golden["label"].as_str().unwrap()
                );
                assert_eq!(info.signals[signal].rate.hz(), as_f64(&golden["rate_hz"]));
                assert_matches(&what, values, golden);
            }
        }
        // Markers: on the clock of the first signal stream, as pyxdf synchronises
        // them; with no signal stream read they have no clock to go on, and are reported.
        if read.is_empty() {
            assert!(info.annotations.is_empty());
            assert!(
                info.notices
                    .iter()
                    .any(|n| n.contains("marker(s) but no signal stream")),
                "{file}: {:?}",
                info.notices
            );
        } else if let Some(markers) = golden["markers"].as_array() {
            assert_eq!(
                info.annotations.len() as u64,
                golden["marker_count"].as_u64().unwrap(),
                "{file}: markers"
            );
            for (ours, theirs) in info.annotations.iter().zip(markers) {
                assert_eq!(ours.text, theirs["text"].as_str().unwrap(), "{file}");
                let onset = as_f64(&theirs["onset_s"]);
                assert!(
                    (ours.onset_s - onset).abs() < 1e-9,
                    "{file}: marker {:?} at {} s, pyxdf says {onset} s",
                    ours.text,
                    ours.onset_s
                );
            }
        }
    }
}

#[test]
fn openbci_gui_text_matches_numpy() {
    let file = "openbci_gui_v6_blinks_jawclench_alpha.txt";
    let golden = golden(file);
    let mut reader = open(&shared_data(&format!("formats/{file}")));
    let info = reader.info().clone();
    assert!(info.notices.is_empty(), "{:?}", info.notices);
    let golden_signals = golden["signals"].as_array().unwrap();
    assert_eq!(info.signals.len(), golden_signals.len());
    for (index, golden) in golden_signals.iter().enumerate() {
        let signal = &info.signals[index];
        assert_eq!(signal.label, golden["label"].as_str().unwrap());
        assert_eq!(signal.unit, golden["unit"].as_str().unwrap());
        assert_eq!(signal.rate.hz(), as_f64(&golden["rate_hz"]));
        let members: Vec<usize> = (0..info.signals.len())
            .filter(|&i| info.signals[i].stream == signal.stream)
            .collect();
        let column = members.iter().position(|&i| i == index).unwrap();
        let values = read_signals(reader.as_mut(), &members, 1000);
        assert_matches(&format!("{file} {}", signal.label), &values[column], golden);
    }
}

/// Our signals against neo's: `ours[i]` is neo's signal `theirs[i]`, labelled `labels[i]`.
fn assert_matches_neo(path: &Path, golden_name: &str, labels: &[&str], theirs: &[usize]) {
    let golden = golden(golden_name);
    let golden_signals = golden["signals"].as_array().unwrap();
    let mut reader = open(path);
    let info = reader.info().clone();
    let ours: Vec<&str> = info.signals.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(ours, labels, "{}", path.display());
    for block in [3, 1024, 5000] {
        let all: Vec<usize> = (0..info.signals.len()).collect();
        let values = read_signals(reader.as_mut(), &all, block);
        for (signal, &neo_index) in theirs.iter().enumerate() {
            let golden = &golden_signals[neo_index];
            assert_eq!(info.signals[signal].unit, golden["unit"].as_str().unwrap());
            assert_eq!(info.signals[signal].rate.hz(), as_f64(&golden["rate_hz"]));
            let what = format!(
                "{} {} ({block}-frame blocks)",
                path.display(),
                labels[signal]
            );
            assert_matches(&what, &values[signal], golden);
        }
    }
}

#[test]
fn neuroscope_intan_and_legacy_open_ephys_match_neo() {
    // NeuroScope: channel 4 is marked skip="1": left out, and said so.
    let dat = test_data("neuroscope/session.dat");
    assert_matches_neo(
        &dat,
        "neuroscope",
        &[
            "shank1-ch0",
            "shank1-ch1",
            "shank1-ch2",
            "shank2-ch3",
            "shank2-ch5",
        ],
        &[0, 1, 2, 3, 5],
    );
    let notices = open(&dat).info().notices.clone();
    assert!(
        notices
            .iter()
            .any(|n| n.contains("shank2-ch4") && n.contains("skip")),
        "{notices:?}"
    );
    // The .xml opens its .dat.
    assert_matches_neo(
        &test_data("neuroscope/session.xml"),
        "neuroscope",
        &[
            "shank1-ch0",
            "shank1-ch1",
            "shank1-ch2",
            "shank2-ch3",
            "shank2-ch5",
        ],
        &[0, 1, 2, 3, 5],
    );
    // Intan: the custom name labels a channel; the disabled A-031 is not in amplifier.dat.
    for path in [
        test_data("intan/amplifier.dat"),
        test_data("intan/info.rhd"),
    ] {
        assert_matches_neo(
            &path,
            "intan",
            &["A-000", "CA1-pyr", "A-002", "A-003"],
            &[0, 1, 2, 3],
        );
    }
    // Legacy Open Ephys: a folder, CH before AUX.
    assert_matches_neo(
        &test_data("openephys_legacy"),
        "openephys_legacy",
        &["CH1", "CH2", "AUX1"],
        &[0, 1, 2],
    );
}

fn temp_copy(dir: &tempfile::TempDir, from: &Path, name: &str) -> PathBuf {
    let to = dir.path().join(name);
    std::fs::copy(from, &to).expect("copy");
    to
}

fn open_error(path: &Path) -> String {
    match open_reader(path, &FileOptions::default()) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(error) => {
            let message = error.to_string();
            assert!(!message.contains('\n'), "{message}");
            message
        }
    }
}

fn assert_says(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} does not say {part:?}");
    }
}

#[test]
fn neuroscope_sidecars_that_disagree_with_the_data_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let xml = std::fs::read_to_string(test_data("neuroscope/session.xml")).unwrap();
    // An .xml with no data file beside it.
    let alone = dir.path().join("alone.xml");
    std::fs::write(&alone, &xml).unwrap();
    assert_says(
        &open_error(&alone),
        &["alone.xml", "no data file", "alone.dat"],
    );
    // A channel count that does not divide the data.
    std::fs::write(
        dir.path().join("seven.xml"),
        xml.replace("<nChannels>6<", "<nChannels>7<"),
    )
    .unwrap();
    temp_copy(&dir, &test_data("neuroscope/session.dat"), "seven.dat");
    let message = open_error(&dir.path().join("seven.dat"));
    assert_says(&message, &["seven.dat", "7 channel", "nChannels"]);
    // A data file cut inside a frame.
    std::fs::write(dir.path().join("cut.xml"), &xml).unwrap();
    let bytes = std::fs::read(test_data("neuroscope/session.dat")).unwrap();
    std::fs::write(dir.path().join("cut.dat"), &bytes[..bytes.len() - 3]).unwrap();
    assert_says(
        &open_error(&dir.path().join("cut.dat")),
        &["cut.dat", "not a whole number"],
    );
    // A scale no amplifier has (voltageRange 1e300): refused at open.
    let range = xml
        .split("<voltageRange>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap();
    std::fs::write(
        dir.path().join("huge.xml"),
        xml.replace(&format!("<voltageRange>{range}<"), "<voltageRange>1e300<"),
    )
    .unwrap();
    temp_copy(&dir, &test_data("neuroscope/session.dat"), "huge.dat");
    assert_says(
        &open_error(&dir.path().join("huge.dat")),
        &["huge.xml", "voltageRange", "µV per bit"],
    );
    // A channel group naming a channel the recording does not have.
    std::fs::write(
        dir.path().join("group.xml"),
        xml.replace("<channel skip=\"0\">5<", "<channel skip=\"0\">9<"),
    )
    .unwrap();
    temp_copy(&dir, &test_data("neuroscope/session.dat"), "group.dat");
    assert_says(
        &open_error(&dir.path().join("group.dat")),
        &["group.xml", "9"],
    );
}

#[test]
fn intan_headers_of_unknown_versions_or_other_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let header = std::fs::read(test_data("intan/info.rhd")).unwrap();
    let data = std::fs::read(test_data("intan/amplifier.dat")).unwrap();
    let time = std::fs::read(test_data("intan/time.dat")).unwrap();
    let case = |name: &str, header: &[u8], data: &[u8], time: &[u8]| {
        let folder = dir.path().join(name);
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("info.rhd"), header).unwrap();
        std::fs::write(folder.join("amplifier.dat"), data).unwrap();
        std::fs::write(folder.join("time.dat"), time).unwrap();
        open_error(&folder.join("amplifier.dat"))
    };
    let mut version = header.clone();
    version[4..6].copy_from_slice(&9i16.to_le_bytes());
    assert_says(
        &case("version", &version, &data, &time),
        &["info.rhd", "version 9.0", "unknown"],
    );
    let mut magic = header.clone();
    magic[0] ^= 0xff;
    assert_says(
        &case("magic", &magic, &data, &time),
        &["info.rhd", "magic number"],
    );
    assert_says(
        &case("cut-header", &header[..header.len() - 10], &data, &time),
        &["info.rhd", "header ends"],
    );
    // time.dat one frame short: amplifier.dat has more frames than timestamps.
    assert_says(
        &case("short-time", &header, &data, &time[..time.len() - 4]),
        &["amplifier.dat", "time.dat", "disagree"],
    );
    // amplifier.dat cut inside a frame of the header's 4 channels.
    assert_says(
        &case("cut-data", &header, &data[..data.len() - 2], &time),
        &["amplifier.dat", "not a whole number", "info.rhd"],
    );
    // An .rhd alone.
    let folder = dir.path().join("alone");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("info.rhd"), &header).unwrap();
    assert_says(
        &open_error(&folder.join("info.rhd")),
        &["info.rhd", "amplifier.dat", "missing"],
    );
}

#[test]
fn legacy_open_ephys_versions_lengths_and_cut_records() {
    let dir = tempfile::tempdir().unwrap();
    let source = test_data("openephys_legacy");
    let copy = |name: &str| {
        let folder = dir.path().join(name);
        std::fs::create_dir(&folder).unwrap();
        for entry in std::fs::read_dir(&source).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, folder.join(path.file_name().unwrap())).unwrap();
        }
        folder
    };
    let version = copy("version");
    let ch1 = version.join("100_CH1.continuous");
    let text = std::fs::read(&ch1).unwrap();
    let patched = String::from_utf8_lossy(&text[..1024]).replace("version = 0.4", "version = 0.9");
    let mut bytes = patched.into_bytes();
    bytes.extend_from_slice(&text[1024..]);
    std::fs::write(&ch1, bytes).unwrap();
    assert_says(
        &open_error(&version),
        &["100_CH1.continuous", "version", "0.9", "unknown"],
    );
    // One channel a whole record shorter than the others.
    let short = copy("short");
    let ch2 = short.join("100_CH2.continuous");
    let bytes = std::fs::read(&ch2).unwrap();
    std::fs::write(&ch2, &bytes[..bytes.len() - 2070]).unwrap();
    assert_says(&open_error(&short), &["100_CH2.continuous", "record"]);
    // Every channel's last record cut short: reported, and the whole records read.
    let cut = copy("cut");
    for entry in std::fs::read_dir(&cut).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    }
    let mut reader = open(&cut);
    let info = reader.info().clone();
    assert!(
        info.notices.iter().any(|n| n.contains("cut")),
        "{:?}",
        info.notices
    );
    let values = read_signals(reader.as_mut(), &[0, 1, 2], 1000);
    assert_eq!(values[0].len(), 2 * 1024);
}

const OPENBCI: &str = "formats/openbci_gui_v6_blinks_jawclench_alpha.txt";

#[test]
fn openbci_headers_of_another_board_and_cut_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(shared_data(OPENBCI)).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ganglion = write(
        "ganglion.txt",
        &text.replace("BoardCytonSerial", "BoardGanglionBLE"),
    );
    assert_says(
        &open_error(&ganglion),
        &["ganglion.txt", "Ganglion", "different board"],
    );
    let rate = write(
        "rate.txt",
        &text.replace("Sample Rate = 250 Hz", "Sample Rate = 1000 Hz"),
    );
    assert_says(&open_error(&rate), &["rate.txt", "1000", "different board"]);
    let count = write(
        "count.txt",
        &text.replace("Number of channels = 8", "Number of channels = 16"),
    );
    assert_says(&open_error(&count), &["count.txt", "16", "EXG"]);
    let other = write("other.txt", "time,value\n0,1\n");
    assert_says(&open_error(&other), &["other.txt", "OpenBCI"]);
    // The last line cut in the middle: reported, the whole lines read.
    let cut = write("cut.txt", &text[..text.len() - 40]);
    let mut reader = open(&cut);
    let info = reader.info().clone();
    assert!(
        info.notices.iter().any(|n| n.contains("cut.txt")),
        "{:?}",
        info.notices
    );
    let whole_lines = text.lines().filter(|l| !l.starts_with('%')).count() as u64 - 2;
    assert_eq!(info.signals[0].samples, whole_lines);
    let values = read_signals(reader.as_mut(), &[0], 4096);
    assert_eq!(values[0].len() as u64, whole_lines);
}

/// A small XDF writer: a file header, then the chunks given.
struct Xdf(Vec<u8>);

impl Xdf {
    fn new() -> Self {
        let mut xdf = Xdf(b"XDF:".to_vec());
        xdf.chunk(
            1,
            b"<?xml version=\"1.0\"?><info><version>1.0</version></info>",
        );
        xdf
    }

    fn chunk(&mut self, tag: u16, content: &[u8]) {
        self.0.push(4);
        self.0
            .extend_from_slice(&(content.len() as u32 + 2).to_le_bytes());
        self.0.extend_from_slice(&tag.to_le_bytes());
        self.0.extend_from_slice(content);
    }

    fn stream(&mut self, id: u32, name: &str, channels: usize, rate_hz: f64) {
        let xml = format!(
            "<?xml version=\"1.0\"?><info><name>{name}</name><type>EEG</type><channel_count>{channels}</channel_count><nominal_srate>{rate_hz}</nominal_srate><channel_format>float32</channel_format></info>"
        );
        let mut content = id.to_le_bytes().to_vec();
        content.extend_from_slice(xml.as_bytes());
        self.chunk(2, &content);
    }

    /// Samples of stream `id`: (time stamp or none, values).
    fn samples(&mut self, id: u32, samples: &[(Option<f64>, Vec<f32>)]) {
        let mut content = id.to_le_bytes().to_vec();
        content.push(4);
        content.extend_from_slice(&(samples.len() as u32).to_le_bytes());
        for (stamp, values) in samples {
            match stamp {
                Some(t) => {
                    content.push(8);
                    content.extend_from_slice(&t.to_le_bytes());
                }
                None => content.push(0),
            }
            for v in values {
                content.extend_from_slice(&v.to_le_bytes());
            }
        }
        self.chunk(3, &content);
    }
}

#[test]
fn xdf_streams_with_missing_or_irregular_time_stamps_are_refused_when_picked() {
    let dir = tempfile::tempdir().unwrap();
    let regular = |i: usize| (Some(10.0 + i as f64 / 100.0), vec![i as f32, -(i as f32)]);
    let mut xdf = Xdf::new();
    xdf.stream(1, "good", 2, 100.0);
    xdf.stream(2, "unstamped", 2, 100.0);
    xdf.stream(3, "gap", 2, 100.0);
    xdf.stream(4, "slow", 2, 100.0);
    // Only the first of each chunk stamped, as LabRecorder writes: deduced in between.
    let good: Vec<_> = (0..50)
        .map(|i| {
            if i % 10 == 0 {
                regular(i)
            } else {
                (None, regular(i).1)
            }
        })
        .collect();
    xdf.samples(1, &good[..25]);
    xdf.samples(2, &[(None, vec![0.0, 0.0]), regular(1)]);
    let mut gap: Vec<_> = (0..20).map(regular).collect();
    gap[10].0 = Some(20.0);
    xdf.samples(3, &gap);
    xdf.samples(1, &good[25..]);
    let slow: Vec<_> = (0..200)
        .map(|i| (Some(10.0 + i as f64 / 90.0), vec![0.0, 0.0]))
        .collect();
    xdf.samples(4, &slow);
    let path = dir.path().join("made.xdf");
    std::fs::write(&path, &xdf.0).unwrap();

    let mut reader = open(&path);
    let info = reader.info().clone();
    let members = info.select_in_stream("good", &[]).expect("good stream");
    let values = read_signals(reader.as_mut(), &members, 7);
    assert_eq!(values[0], (0..50).map(|i| i as f64).collect::<Vec<_>>());
    assert_eq!(values[1], (0..50).map(|i| -(i as f64)).collect::<Vec<_>>());
    for (name, says) in [
        ("unstamped", "no time stamp"),
        ("gap", "jump"),
        ("slow", "nominal_srate"),
    ] {
        let error = info
            .select_in_stream(name, &[])
            .expect_err("an irregular stream");
        assert_says(&error.to_string(), &["made.xdf", name, says]);
    }
    let error = info
        .select_in_stream("missing", &[])
        .expect_err("no such stream");
    assert_says(&error.to_string(), &["made.xdf", "\"good\""]);
    let error = info
        .select_in_stream("good", &[ChannelSelector::Index(5)])
        .expect_err("no channel 5");
    assert_says(&error.to_string(), &["made.xdf", "good"]);

    // Cut inside the last chunk: reported, the chunks before it read.
    let cut = dir.path().join("cut.xdf");
    std::fs::write(&cut, &xdf.0[..xdf.0.len() - 10]).unwrap();
    let info = open(&cut).info().clone();
    assert!(
        info.notices.iter().any(|n| n.contains("cut short")),
        "{:?}",
        info.notices
    );
    let good = info.streams.iter().find(|s| s.name == "good").unwrap();
    assert!(good.id.is_some());
    let slow = info.streams.iter().find(|s| s.name == "slow").unwrap();
    assert!(
        slow.description.contains("0 sample"),
        "{}",
        slow.description
    );

    // A file header of another version.
    let mut other = xdf.0.clone();
    let at = other
        .windows(12)
        .position(|w| w == b"<version>1.0")
        .unwrap()
        + 9;
    other[at..at + 3].copy_from_slice(b"2.0");
    let path = dir.path().join("v2.xdf");
    std::fs::write(&path, other).unwrap();
    assert_says(&open_error(&path), &["v2.xdf", "version", "2.0"]);
}

#[test]
fn info_lists_streams_channels_and_markers() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_neuroloop"))
        .arg("info")
        .arg(shared_data("formats/xdf_minimal.xdf"))
        .output()
        .expect("run neuroloop info");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for part in [
        "XDF",
        "\"SendDataC\"",
        "\"SendDataString\"",
        "not read as signals",
        "\"ch0\"",
        "10 Hz, 9 samples",
        "annotations (9)",
        "\"Hello\"",
    ] {
        assert!(text.contains(part), "{text}\ndoes not say {part:?}");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_neuroloop"))
        .arg("info")
        .arg(test_data("neuroscope/session.dat"))
        .output()
        .expect("run neuroloop info");
    let text = String::from_utf8_lossy(&output.stdout);
    for part in [
        "NeuroScope",
        "\"shank2-ch5\"",
        "uV",
        "20000 Hz, 2000 samples (0.100 s)",
        "skip",
    ] {
        assert!(text.contains(part), "{text}\ndoes not say {part:?}");
    }
}
