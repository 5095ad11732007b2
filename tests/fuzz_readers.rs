//! Fuzzing every file reader and the OpenBCI serial parser with mutated real
//! files: truncations, byte flips, numeric header fields set to 0, negative,
//! huge, tiny and non-numeric values, appended bytes. Every mutated file goes
//! through the real entry point (`open_reader` on a file on disk) and is read
//! to its end. Nothing may panic; an error is one line naming the file; the
//! bytes held at once stay under a fixed cap plus a multiple of the file's
//! size (a header field cannot raise it); every block makes progress (so
//! reading ends); every value is finite.
//!
//! `NEUROLOOP_FUZZ_CASES` sets the mutated files per reader (default 300, what
//! CI runs); the full run is
//! `NEUROLOOP_FUZZ_CASES=10000 cargo test --release --test fuzz_readers -- --nocapture`
//! and prints per reader how many files it ran and how they ended.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use neuroloop::device::cyton::{self as openbci, Framer, Parser};
use neuroloop::io::{open_reader, FileError, FileOptions, RawLayout};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

mod files;
mod peak;
use files::shared_data;
use peak::peak_bytes;

fn cases() -> u32 {
    std::env::var("NEUROLOOP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Bytes a reader (and this harness) may hold at once: fixed buffers, the
/// descriptions of at most 65 535 signals (the most a WAV, raw or Open Ephys
/// header may declare: about 12 MB, twice here with the harness's copy),
/// and a multiple of what the file holds (annotations, a sidecar). Nothing
/// grows further with a header field's value.
fn allowed_bytes(file_bytes: u64) -> i64 {
    (32 << 20) + 16 * file_bytes as i64
}

/// How the mutated files of one reader ended, printed after the last one.
#[derive(Default)]
struct Tally {
    files: u64,
    read: u64,
    refused: BTreeMap<String, u64>,
    largest_peak: i64,
}

static TALLIES: Mutex<BTreeMap<&'static str, Tally>> = Mutex::new(BTreeMap::new());
static FILE_NUMBER: AtomicU64 = AtomicU64::new(0);

fn record(reader: &'static str, outcome: &Result<u64, FileError>, peak: i64) {
    let mut tallies = TALLIES.lock().unwrap();
    let tally = tallies.entry(reader).or_default();
    tally.files += 1;
    tally.largest_peak = tally.largest_peak.max(peak);
    match outcome {
        Ok(_) => tally.read += 1,
        Err(error) => {
            let kind = format!("{error:?}");
            let kind = kind.split([' ', '{', '(']).next().unwrap_or("").to_string();
            *tally.refused.entry(kind).or_default() += 1;
        }
    }
    if tally.files == u64::from(cases()) {
        eprintln!(
            "fuzz {reader}: {} mutated files, {} read to the end, refused {:?}, most bytes held at once {}",
            tally.files, tally.read, tally.refused, tally.largest_peak
        );
    }
}

/// A fresh path for a mutated file named like `name`.
fn scratch(dir: &Path, name: &str) -> PathBuf {
    let n = FILE_NUMBER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{n}-{name}"))
}

/// Open `path` and read every stream of it to the end; check what the module
/// documentation promises.
fn exercise(
    reader_name: &'static str,
    path: &Path,
    options: &FileOptions,
    file_bytes: u64,
) -> Result<(), TestCaseError> {
    let (outcome, peak) = peak_bytes(|| -> Result<u64, FileError> {
        let mut reader = open_reader(path, options)?;
        let info = reader.info().clone();
        let mut streams: Vec<usize> = info.signals.iter().map(|s| s.stream).collect();
        streams.sort_unstable();
        streams.dedup();
        let mut frames = 0u64;
        for stream in streams {
            let members: Vec<usize> = (0..info.signals.len())
                .filter(|&i| info.signals[i].stream == stream)
                .collect();
            reader.select(&members)?;
            // Up to 64 Ki values, so that a header's channel count does not size it.
            let capacity = (1 << 16) / members.len() + 1;
            let mut buf = vec![0.0; capacity * members.len()];
            let mut blocks = 0u64;
            while let Some(block) = reader.read_block(&mut buf)? {
                blocks += 1;
                assert!(
                    block.frames >= 1 && blocks <= file_bytes,
                    "{}: no progress",
                    path.display()
                );
                let values = &buf[..block.frames * members.len()];
                assert!(
                    values.iter().all(|v| v.is_finite()),
                    "{}: a non-finite value",
                    path.display()
                );
                frames += block.frames as u64;
            }
        }
        Ok(frames)
    });
    record(reader_name, &outcome, peak);
    prop_assert!(
        peak <= allowed_bytes(file_bytes),
        "{}: held {peak} bytes for a {file_bytes}-byte file",
        path.display()
    );
    if let Err(error) = outcome {
        let message = error.to_string();
        let folder = path.parent().unwrap().display().to_string();
        prop_assert!(
            message.contains(&folder) && !message.contains('\n'),
            "{message}"
        );
    }
    Ok(())
}

/// ASCII values a numeric header field is set to.
const TEXT_VALUES: [&str; 24] = [
    "0", "-1", "-2", "1", "99999999", "-9999999", "1e-300", "1e300", "1e-9", "0.000001", "1e308",
    "-1e308", "NaN", "inf", "-inf", "abc", "", "0x10", "1,5", " 7 ", "+3", "-0", "9999", "65535",
];

/// Binary values a WAV header field is set to.
const BINARY_VALUES: [u32; 12] = [
    0,
    1,
    2,
    3,
    8,
    0xFF,
    0xFFFF,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
    44,
    1000,
    4_000_000_000,
];

/// One change to a file.
#[derive(Debug, Clone)]
enum Mutation {
    /// Keep this fraction of the file.
    Truncate(f64),
    /// Set one byte, in the first 4 KiB (`near_start`) or anywhere.
    Flip {
        near_start: bool,
        at: f64,
        byte: u8,
    },
    /// Set header field `field` (of signal `signal` where that applies) to value `value`.
    Field {
        field: usize,
        signal: usize,
        value: usize,
    },
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (0.0..1.0f64).prop_map(Mutation::Truncate),
        1 => (any::<bool>(), 0.0..1.0f64, any::<u8>()).prop_map(|(near_start, at, byte)| {
            Mutation::Flip {
                near_start,
                at,
                byte,
            }
        }),
        3 => (0..64usize, 0..64usize, 0..64usize).prop_map(|(field, signal, value)| Mutation::Field {
            field,
            signal,
            value
        }),
        1 => prop::collection::vec(any::<u8>(), 1..600).prop_map(Mutation::Append),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..5)
}

/// Fewer changes, for files whose format breaks at the first wrong byte (JSON).
fn few_mutations(least: usize) -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), least..3)
}

/// Apply the mutations that do not depend on the format.
fn mutate_bytes(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Truncate(keep) => bytes.truncate((bytes.len() as f64 * keep) as usize),
        Mutation::Flip {
            near_start,
            at,
            byte,
        } => {
            let span = if *near_start {
                bytes.len().min(4096)
            } else {
                bytes.len()
            };
            if span > 0 {
                let index = ((span as f64 * at) as usize).min(span - 1);
                bytes[index] = *byte;
            }
        }
        Mutation::Append(extra) => bytes.extend_from_slice(extra),
        Mutation::Field { .. } => {}
    }
}

/// An EDF header field: (offset, width) in the fixed part, or a per-signal
/// field (block offset, width) whose offset depends on the signal count.
const EDF_FILE_FIELDS: [(usize, usize); 5] = [(184, 8), (192, 44), (236, 8), (244, 8), (252, 4)];
const EDF_SIGNAL_FIELDS: [(usize, usize); 6] =
    [(0, 16), (104, 8), (112, 8), (120, 8), (128, 8), (216, 8)];

fn set_ascii(bytes: &mut [u8], offset: usize, width: usize, text: &str) {
    if offset + width <= bytes.len() {
        let field = format!("{text:<width$}");
        bytes[offset..offset + width].copy_from_slice(&field.as_bytes()[..width]);
    }
}

fn mutate_edf(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let Mutation::Field {
        field,
        signal,
        value,
    } = *mutation
    else {
        return mutate_bytes(bytes, mutation);
    };
    let signals = std::str::from_utf8(bytes.get(252..256).unwrap_or_default())
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let fields = EDF_FILE_FIELDS.len() + EDF_SIGNAL_FIELDS.len();
    let field = field % fields;
    let text = match (field, value % 4) {
        // The reserved field: EDF+C or EDF+D or junk; a label: an annotation signal now and then.
        (1, 0) => "EDF+D",
        (1, 1) => "BDF+C",
        (5, 0) => "EDF Annotations",
        (5, 1) => "BDF Annotations",
        _ => TEXT_VALUES[value % TEXT_VALUES.len()],
    };
    if let Some(&(offset, width)) = EDF_FILE_FIELDS.get(field) {
        set_ascii(bytes, offset, width, text);
    } else {
        let (block, width) = EDF_SIGNAL_FIELDS[field - EDF_FILE_FIELDS.len()];
        let offset = 256 + block * signals + (signal % signals) * width;
        set_ascii(bytes, offset, width, text);
    }
}

/// Real EDF and BDF files: one small annotation-only hypnogram, the rest whole.
const EDF_SEEDS: [&str; 6] = [
    "formats/edfio_SC4001EC-Hypnogram.edf",
    "formats/edfio_test_subsecond.edf",
    "formats/edfio_short_psg.bdf",
    "formats/pyedflib_test_generator.bdf",
    "dreams/excerpt3.edf",
    "rodent/hc2_theta_1000hz.edf",
];

fn seed_bytes(relative: &str) -> Vec<u8> {
    std::fs::read(shared_data(relative)).unwrap()
}

fn write(path: &Path, bytes: &[u8]) -> u64 {
    std::fs::write(path, bytes).unwrap();
    bytes.len() as u64
}

/// The rodent recording's counts as the WAV seeds' samples (three channels).
fn rodent_wav(dir: &Path, bits: u16, float: bool) -> Vec<u8> {
    let counts: Vec<i16> = seed_bytes("rodent/hc2_theta_1000hz_int16.dat")
        .chunks_exact(2)
        .take(20_000)
        .map(|p| i16::from_le_bytes([p[0], p[1]]))
        .collect();
    let path = dir.join(format!("seed-{bits}-{float}.wav"));
    let spec = hound::WavSpec {
        channels: 3,
        sample_rate: 1000,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for &c in &counts {
        for value in [c, c / 2, c.saturating_neg()] {
            match (float, bits) {
                (true, _) => writer.write_sample(f32::from(value) / 32768.0).unwrap(),
                (false, 8) => writer.write_sample((value >> 8) as i8).unwrap(),
                (false, 16) => writer.write_sample(value).unwrap(),
                (false, _) => writer
                    .write_sample(i32::from(value) << (bits - 16))
                    .unwrap(),
            }
        }
    }
    writer.finalize().unwrap();
    std::fs::read(&path).unwrap()
}

fn mutate_wav(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let Mutation::Field { field, value, .. } = *mutation else {
        return mutate_bytes(bytes, mutation);
    };
    // RIFF size, fmt size, format tag, channels, rate, byte rate, block align,
    // bits, extensible sub-format, and the data chunk's size.
    let data_size = bytes
        .windows(4)
        .position(|w| w == b"data")
        .map_or(40, |at| at + 4);
    let fields: [(usize, usize); 10] = [
        (4, 4),
        (16, 4),
        (20, 2),
        (22, 2),
        (24, 4),
        (28, 4),
        (32, 2),
        (34, 2),
        (44, 2),
        (data_size, 4),
    ];
    let (offset, width) = fields[field % fields.len()];
    let value = BINARY_VALUES[value % BINARY_VALUES.len()].to_le_bytes();
    if offset + width <= bytes.len() {
        bytes[offset..offset + width].copy_from_slice(&value[..width]);
    }
}

fn mutate_oebin(text: &str, mutation: &Mutation) -> Vec<u8> {
    let Mutation::Field {
        field,
        signal,
        value,
    } = *mutation
    else {
        let mut bytes = text.as_bytes().to_vec();
        mutate_bytes(&mut bytes, mutation);
        return bytes;
    };
    // An earlier change may have broken the JSON; that file is fuzzed as it is.
    let Ok(mut root) = serde_json::from_str::<serde_json::Value>(text) else {
        return text.as_bytes().to_vec();
    };
    let values = [
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(1e300),
        serde_json::json!(1e-300),
        serde_json::json!("x"),
        serde_json::Value::Null,
        serde_json::json!(3.5),
        serde_json::json!("30000"),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!("../.."),
        serde_json::json!(99_999_999),
        serde_json::json!("float32"),
    ];
    let value = values[value % values.len()].clone();
    let channel = signal % 3;
    let (parent, key) = match field % 8 {
        0 => ("/continuous/0".to_string(), "sample_rate"),
        1 => ("/continuous/0".to_string(), "num_channels"),
        2 => (format!("/continuous/0/channels/{channel}"), "bit_volts"),
        3 => (format!("/continuous/0/channels/{channel}"), "channel_name"),
        4 => ("/continuous/0".to_string(), "folder_name"),
        5 => ("/continuous/0".to_string(), "dtype"),
        6 => ("/continuous/0".to_string(), "channels"),
        _ => {
            // One channel more or fewer than continuous.dat holds.
            if let Some(channels) = root
                .pointer_mut("/continuous/0/channels")
                .and_then(|c| c.as_array_mut())
            {
                match channels.first().cloned() {
                    Some(first) if signal % 2 == 1 => channels.push(first),
                    _ => {
                        channels.pop();
                    }
                }
            }
            return root.to_string().into_bytes();
        }
    };
    // Earlier changes may have removed the parent: then nothing is set.
    if let Some(object) = root.pointer_mut(&parent).and_then(|p| p.as_object_mut()) {
        object.insert(key.to_string(), value);
    }
    root.to_string().into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn edf_and_bdf(seed in 0..EDF_SEEDS.len(), changes in mutations()) {
        let dir = tempfile::tempdir().unwrap();
        let seed = EDF_SEEDS[seed];
        let mut bytes = seed_bytes(seed);
        for change in &changes {
            mutate_edf(&mut bytes, change);
        }
        let extension = if seed.ends_with(".bdf") { "x.bdf" } else { "x.edf" };
        let path = scratch(dir.path(), extension);
        let length = write(&path, &bytes);
        exercise("EDF/BDF", &path, &FileOptions::default(), length)?;
    }

    #[test]
    fn wav(seed in 0..5usize, changes in mutations()) {
        let dir = tempfile::tempdir().unwrap();
        let (bits, float) = [(8, false), (16, false), (24, false), (32, false), (32, true)][seed];
        let mut bytes = rodent_wav(dir.path(), bits, float);
        for change in &changes {
            mutate_wav(&mut bytes, change);
        }
        let path = scratch(dir.path(), "x.wav");
        let length = write(&path, &bytes);
        exercise("WAV", &path, &FileOptions::default(), length)?;
    }

    #[test]
    fn raw_int16(
        channels in prop_oneof![8 => 1..4usize, 1 => Just(0), 1 => Just(1 << 20), 1 => Just(usize::MAX)],
        rate_hz in prop_oneof![
            8 => Just(1000.0),
            1 => Just(0.0),
            1 => Just(-5.0),
            1 => Just(f64::NAN),
            1 => Just(1e12),
            1 => Just(1e-300),
        ],
        uv_per_bit in prop_oneof![
            8 => Just(0.195),
            1 => Just(0.0),
            1 => Just(f64::INFINITY),
            1 => Just(-1.0),
            1 => Just(1e300),
        ],
        changes in mutations(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = seed_bytes("rodent/hc2_theta_1000hz_int16.dat");
        for change in &changes {
            mutate_bytes(&mut bytes, change);
        }
        let path = scratch(dir.path(), "x.dat");
        let length = write(&path, &bytes);
        let options = FileOptions {
            raw: Some(RawLayout { channels, rate_hz, uv_per_bit }),
            ..FileOptions::default()
        };
        exercise("raw int16", &path, &options, length)?;
    }

    #[test]
    fn open_ephys(changes in few_mutations(0), data_changes in few_mutations(1)) {
        let dir = tempfile::tempdir().unwrap();
        let folder = scratch(dir.path(), "recording");
        let stream = folder.join("continuous/openephys-100.0");
        std::fs::create_dir_all(&stream).unwrap();
        let mut oebin = std::fs::read_to_string(shared_data("formats/openephys_fileio_structure_v0.4.5.oebin")).unwrap();
        for change in &changes {
            oebin = String::from_utf8_lossy(&mutate_oebin(&oebin, change)).into_owned();
        }
        // Three channels of the rodent counts, then mutated.
        let counts = seed_bytes("rodent/hc2_theta_1000hz_int16.dat");
        let mut data: Vec<u8> = counts
            .chunks_exact(2)
            .take(30_000)
            .flat_map(|c| [c[0], c[1], c[0], c[1], c[1], c[0]])
            .collect();
        for change in &data_changes {
            mutate_bytes(&mut data, change);
        }
        let data_bytes = write(&stream.join("continuous.dat"), &data);
        let path = folder.join("structure.oebin");
        let length = write(&path, oebin.as_bytes());
        exercise("Open Ephys", &path, &FileOptions::default(), length + data_bytes)?;
    }

    #[test]
    fn neuroscope(changes in mutations(), xml_changes in few_mutations(0), lfp in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let folder = scratch(dir.path(), "neuroscope");
        std::fs::create_dir(&folder).unwrap();
        let mut xml = test_data("neuroscope/session.xml");
        for change in &xml_changes {
            mutate_numbers(&mut xml, usize::MAX, change);
        }
        let mut data = test_data("neuroscope/session.dat");
        for change in &changes {
            mutate_bytes(&mut data, change);
        }
        let name = if lfp { "session.lfp" } else { "session.dat" };
        let length = write(&folder.join("session.xml"), &xml) + write(&folder.join(name), &data);
        exercise("NeuroScope", &folder.join(name), &FileOptions::default(), length)?;
    }

    #[test]
    fn intan(header_changes in mutations(), data_changes in few_mutations(0)) {
        let dir = tempfile::tempdir().unwrap();
        let folder = scratch(dir.path(), "intan");
        std::fs::create_dir(&folder).unwrap();
        let mut header = test_data("intan/info.rhd");
        for change in &header_changes {
            mutate_binary(&mut header, change);
        }
        let mut data = test_data("intan/amplifier.dat");
        for change in &data_changes {
            mutate_bytes(&mut data, change);
        }
        let length = write(&folder.join("info.rhd"), &header)
            + write(&folder.join("amplifier.dat"), &data)
            + write(&folder.join("time.dat"), &test_data("intan/time.dat"));
        exercise("Intan", &folder.join("amplifier.dat"), &FileOptions::default(), length)?;
    }

    #[test]
    fn open_ephys_continuous(changes in mutations(), channel in 0..3usize) {
        let dir = tempfile::tempdir().unwrap();
        let folder = scratch(dir.path(), "continuous");
        std::fs::create_dir(&folder).unwrap();
        let mut length = 0;
        for (index, name) in ["100_CH1.continuous", "100_CH2.continuous", "100_AUX1.continuous"].into_iter().enumerate() {
            let mut bytes = test_data(&format!("openephys_legacy/{name}"));
            if index == channel {
                for change in &changes {
                    mutate_numbers(&mut bytes, 1024, change);
                }
            }
            length += write(&folder.join(name), &bytes);
        }
        exercise("Open Ephys .continuous", &folder, &FileOptions::default(), length)?;
    }

    #[test]
    fn openbci_gui_text(changes in mutations()) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = openbci_text_seed().to_vec();
        for change in &changes {
            mutate_numbers(&mut bytes, 1000, change);
        }
        let path = scratch(dir.path(), "x.txt");
        let length = write(&path, &bytes);
        exercise("OpenBCI GUI text", &path, &FileOptions::default(), length)?;
    }

    #[test]
    fn xdf(seed in 0..XDF_SEEDS.len(), changes in mutations()) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = seed_bytes(XDF_SEEDS[seed]);
        for change in &changes {
            mutate_numbers(&mut bytes, 4096, change);
        }
        let path = scratch(dir.path(), "x.xdf");
        let length = write(&path, &bytes);
        exercise("XDF", &path, &FileOptions::default(), length)?;
    }

    /// The Cyton's packets of the real OpenBCI GUI recording (its µV at gain
    /// 24, its own sample counter), mutated, fed in chunks of any size to the
    /// parser and framer of both board layouts.
    #[test]
    fn openbci_serial_parser(changes in mutations(), chunk in 1..200usize, daisy in any::<bool>()) {
        let mut bytes = cyton_stream().to_vec();
        for change in &changes {
            mutate_bytes(&mut bytes, change);
        }
        let mut parser = Parser::new();
        let mut framer = Framer::new(daisy, 24);
        let mut frame = vec![0.0; framer.channels()];
        let mut frames = 0u64;
        let mut ok = true;
        for piece in bytes.chunks(chunk) {
            parser.feed(piece, |packet, missing| {
                if let Some(index) = framer.push(&packet, missing, &mut frame) {
                    // Each frame sits after every frame emitted and every frame lost before it.
                    ok &= frame.iter().all(|v| v.is_finite())
                        && index == frames + framer.dropped_frames;
                    frames += 1;
                }
            });
        }
        prop_assert!(ok, "a non-finite value, or a sample index that skips or repeats");
        let counters = parser.counters;
        prop_assert!(counters.packets <= bytes.len() as u64 / openbci::PACKET_LEN as u64);
        prop_assert!(frames <= counters.packets);
        let mut tallies = TALLIES.lock().unwrap();
        let tally = tallies.entry("OpenBCI serial").or_default();
        tally.files += 1;
        if tally.files == u64::from(cases()) {
            eprintln!("fuzz OpenBCI serial: {} mutated streams parsed", tally.files);
        }
    }
}

/// A file of tests/data/formats/ (written by tests/data/golden/gen_rodent_formats.py).
fn test_data(relative: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/formats")).join(relative),
    )
    .unwrap()
}

const XDF_SEEDS: [&str; 3] = [
    "formats/xdf_minimal.xdf",
    "formats/xdf_empty_streams.xdf",
    "formats/xdf_clock_resets.xdf",
];

/// The real OpenBCI GUI file's header and first 2000 lines.
fn openbci_text_seed() -> &'static [u8] {
    static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SEED.get_or_init(|| {
        let text = std::fs::read_to_string(shared_data(
            "formats/openbci_gui_v6_blinks_jawclench_alpha.txt",
        ))
        .unwrap();
        text.split_inclusive('\n')
            .take(2005)
            .collect::<String>()
            .into_bytes()
    })
}

/// For text fields (an `.xml`, a text header, XDF's XML stream headers):
/// `Field` sets the `field`-th number in the first `within` bytes to one of
/// [`TEXT_VALUES`]; other mutations as [`mutate_bytes`].
fn mutate_numbers(bytes: &mut Vec<u8>, within: usize, mutation: &Mutation) {
    let Mutation::Field { field, value, .. } = *mutation else {
        return mutate_bytes(bytes, mutation);
    };
    let span = &bytes[..bytes.len().min(within)];
    let mut numbers = Vec::new();
    let mut at = 0;
    while at < span.len() {
        if span[at].is_ascii_digit() {
            let start = at;
            while at < span.len() && (span[at].is_ascii_digit() || span[at] == b'.') {
                at += 1;
            }
            numbers.push(start..at);
        } else {
            at += 1;
        }
    }
    if numbers.is_empty() {
        return;
    }
    let range = numbers[field % numbers.len()].clone();
    bytes.splice(range, TEXT_VALUES[value % TEXT_VALUES.len()].bytes());
}

/// For binary headers (Intan's): `Field` sets a 2- or 4-byte field at an even
/// offset to one of [`BINARY_VALUES`]; other mutations as [`mutate_bytes`].
fn mutate_binary(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let Mutation::Field {
        field,
        signal,
        value,
    } = *mutation
    else {
        return mutate_bytes(bytes, mutation);
    };
    let width = if signal % 2 == 0 { 2 } else { 4 };
    let offset = (field * 7 + signal * 13) * 2 % bytes.len().max(1);
    let value = BINARY_VALUES[value % BINARY_VALUES.len()].to_le_bytes();
    if offset + width <= bytes.len() {
        bytes[offset..offset + width].copy_from_slice(&value[..width]);
    }
}

/// The serial bytes of the first 2000 samples of the real OpenBCI GUI file.
fn cyton_stream() -> &'static [u8] {
    static STREAM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    STREAM.get_or_init(|| {
        let text = std::fs::read_to_string(shared_data(
            "formats/openbci_gui_v6_blinks_jawclench_alpha.txt",
        ))
        .unwrap();
        let uv_per_count = openbci::uv_per_count(24);
        text.lines()
            .filter(|l| !l.starts_with('%') && !l.starts_with("Sample"))
            .take(2000)
            .flat_map(|line| {
                let fields: Vec<f64> = line
                    .split(',')
                    .take(9)
                    .map(|f| f.trim().parse().unwrap())
                    .collect();
                let mut counts = [0i32; 8];
                for (count, uv) in counts.iter_mut().zip(&fields[1..]) {
                    *count = (uv / uv_per_count).round() as i32;
                }
                openbci::encode_packet(fields[0] as u8, &counts)
            })
            .collect()
    })
}
