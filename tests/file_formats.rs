//! File formats against reference readers and hand-made bad input.
//!
//! Golden summaries come from tests/data/golden/gen_format_summaries.py
//! (pyedflib, cross-checked with edfio).

use std::path::{Path, PathBuf};

use neuroloop::io::edf::{read_edf, write_edf};
use neuroloop::io::openephys::read_oebin;
use neuroloop::io::raw::{read_raw_int16, RawLayout};
use neuroloop::io::wav::read_wav;
use neuroloop::io::{open_reader, read_recording, BlockMeta, FileError, FileOptions};
use neuroloop::recording::{Recording, SelectError, Signal};
use neuroloop::time::SampleRate;
use serde_json::Value;

mod files;
use files::shared_data;

fn golden_dir() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/golden/format_summaries"
    ))
    .into()
}

fn as_f64(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number in golden: {value}"))
}

/// Physical values from different (equivalent) forms of the EDF scaling
/// formula differ by a few ulps of the signal's range, not of each value, so
/// the tolerance is 1e-9 of the signal's largest magnitude.
fn assert_close(what: &str, actual: f64, expected: f64, scale: f64) {
    let tolerance = 1e-9 * scale.max(f64::MIN_POSITIVE);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, reference {expected} (tolerance {tolerance})"
    );
}

fn mean_and_std(samples: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let variance = samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, variance.sqrt())
}

fn compare_with_golden(golden: &Value, recording: &Recording) {
    let file = golden["file"].as_str().unwrap_or_default();
    let signals = golden["signals"].as_array().expect("signals array");
    assert_eq!(
        recording.signals.len(),
        signals.len(),
        "{file}: signal count"
    );
    for (signal, expected) in recording.signals.iter().zip(signals) {
        let what = format!("{file} {}", signal.label);
        assert_eq!(
            signal.label,
            expected["label"].as_str().unwrap_or_default(),
            "{what}: label"
        );
        assert_eq!(
            signal.unit,
            expected["unit"].as_str().unwrap_or_default(),
            "{what}: unit"
        );
        let rate_hz = as_f64(&expected["rate_hz"]);
        assert!(
            (signal.rate.hz() - rate_hz).abs() <= 1e-12 * rate_hz,
            "{what}: rate {}",
            signal.rate
        );
        assert_eq!(
            signal.samples.len() as u64,
            expected["sample_count"].as_u64().unwrap_or_default(),
            "{what}: count"
        );
        let (min, max) = (as_f64(&expected["min"]), as_f64(&expected["max"]));
        let scale = min.abs().max(max.abs());
        let first = expected["first"].as_array().expect("first");
        let last = expected["last"].as_array().expect("last");
        let tail = &signal.samples[signal.samples.len() - last.len()..];
        for (i, (&actual, reference)) in signal.samples.iter().zip(first).enumerate() {
            assert_close(
                &format!("{what}: sample {i}"),
                actual,
                as_f64(reference),
                scale,
            );
        }
        for (i, (&actual, reference)) in tail.iter().zip(last).enumerate() {
            assert_close(
                &format!("{what}: last sample {i}"),
                actual,
                as_f64(reference),
                scale,
            );
        }
        let actual_min = signal.samples.iter().copied().fold(f64::INFINITY, f64::min);
        let actual_max = signal
            .samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        assert_close(&format!("{what}: min"), actual_min, min, scale);
        assert_close(&format!("{what}: max"), actual_max, max, scale);
        let (mean, std) = mean_and_std(&signal.samples);
        assert_close(
            &format!("{what}: mean"),
            mean,
            as_f64(&expected["mean"]),
            scale,
        );
        assert_close(
            &format!("{what}: std"),
            std,
            as_f64(&expected["std"]),
            scale,
        );
    }
    assert_eq!(
        recording.annotations.len() as u64,
        golden["annotation_count"].as_u64().unwrap_or_default(),
        "{file}: annotation count"
    );
    for (annotation, expected) in recording
        .annotations
        .iter()
        .zip(golden["annotations"].as_array().expect("annotations"))
    {
        assert_eq!(
            annotation.text,
            expected["text"].as_str().unwrap_or_default(),
            "{file}: text"
        );
        assert!(
            (annotation.onset_s - as_f64(&expected["onset_s"])).abs() < 1e-9,
            "{file}: onset of {annotation:?}"
        );
        assert_eq!(
            annotation.duration_s,
            expected["duration_s"].as_f64(),
            "{file}: duration of {annotation:?}"
        );
    }
}

#[test]
fn every_real_edf_and_bdf_matches_the_reference_reader() {
    let mut expected_files: Vec<String> = std::fs::read_dir(shared_data("formats"))
        .expect("shared/data/formats")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let lower = name.to_ascii_lowercase();
            lower.ends_with(".edf") || lower.ends_with(".bdf")
        })
        .map(|name| format!("formats/{name}"))
        .collect();
    expected_files.extend((1..=6).map(|n| format!("dreams/excerpt{n}.edf")));
    expected_files.push("rodent/hc2_theta_1000hz.edf".into());
    for file in &expected_files {
        let name = Path::new(file)
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let golden_text = std::fs::read_to_string(golden_dir().join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("no golden summary for {file}: {e}"));
        let golden: Value = serde_json::from_str(&golden_text).expect("golden JSON");
        assert_eq!(golden["file"].as_str(), Some(file.as_str()));
        let recording = read_edf(&shared_data(file)).unwrap_or_else(|e| panic!("{e}"));
        compare_with_golden(&golden, &recording);
    }
    assert_eq!(
        expected_files.len(),
        13,
        "six format samples, six DREAMS excerpts, one rodent file"
    );
}

/// The physical minimum and maximum of signal `index` from an EDF header.
fn header_physical_range(bytes: &[u8], index: usize) -> (f64, f64) {
    let field = |offset: usize| -> f64 {
        String::from_utf8_lossy(&bytes[offset..offset + 8])
            .trim()
            .parse()
            .expect("number")
    };
    let signal_count: usize = String::from_utf8_lossy(&bytes[252..256])
        .trim()
        .parse()
        .expect("ns");
    let block = |block_offset: usize| 256 + block_offset * signal_count + index * 8;
    (field(block(104)), field(block(112)))
}

/// The EDF quantisation step of signal `index` (physical units per digital step).
fn header_step(bytes: &[u8], index: usize) -> f64 {
    let (min, max) = header_physical_range(bytes, index);
    (max - min).abs() / 65535.0
}

#[test]
fn dreams_excerpt1_edf_holds_the_samples_of_its_text_export() {
    let edf_path = shared_data("dreams/excerpt1.edf");
    let recording = read_edf(&edf_path).expect("excerpt1.edf");
    let text = std::fs::read_to_string(shared_data("dreams/excerpt1.txt")).expect("excerpt1.txt");
    let mut lines = text.lines();
    assert_eq!(lines.next().map(str::trim), Some("[C3-A1]"));
    let reference: Vec<f64> = lines.map(|l| l.trim().parse().expect("µV value")).collect();
    let signal = &recording.signals[0];
    assert_eq!(signal.label, "C3-A1");
    assert_eq!(signal.rate.hz(), 100.0);
    assert_eq!(signal.samples.len(), reference.len());
    let step = header_step(&std::fs::read(&edf_path).expect("bytes"), 0);
    assert!(step <= 0.011, "EDF resolution {step} µV");
    // Half a quantisation step, plus the text's 4-decimal rounding.
    let tolerance = step / 2.0 + 0.5e-4;
    let worst = signal
        .samples
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= tolerance,
        "worst difference {worst} µV > {tolerance}"
    );
}

/// `bytes` with the ASCII field at `offset` replaced by `value`, space-padded to `width`.
fn patched(bytes: &[u8], offset: usize, width: usize, value: &str) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let field = format!("{value:<width$}");
    out[offset..offset + width].copy_from_slice(field.as_bytes());
    out
}

fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

/// Read `bytes` as an EDF and return the error and its message, which must be
/// one line naming the file.
fn read_error(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> (FileError, String) {
    let path = write_temp(dir, name, bytes);
    let error = read_edf(&path).expect_err("bad input must be rejected");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(!message.contains('\n'), "{message}");
    (error, message)
}

/// excerpt1.edf: one signal "C3-A1", 100 samples per 1-s record, 1800 records.
fn excerpt1_bytes() -> Vec<u8> {
    std::fs::read(shared_data("dreams/excerpt1.edf")).expect("excerpt1.edf")
}
const EXCERPT1_HEADER_BYTES: usize = 512;
const EXCERPT1_RECORD_BYTES: usize = 200;

#[test]
fn empty_and_non_edf_files_are_rejected_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (error, _) = read_error(&dir, "empty.edf", b"");
    assert!(matches!(error, FileError::Empty { .. }));
    let (error, message) = read_error(&dir, "text.edf", b"time,value\n0,1\n");
    assert!(matches!(error, FileError::NotEdf { .. }), "{message}");
    assert!(message.contains("version field"), "{message}");
    // A valid version but a header cut short of its 256 fixed bytes.
    let (error, message) = read_error(&dir, "short.edf", &excerpt1_bytes()[..100]);
    assert!(
        matches!(
            error,
            FileError::TruncatedHeader {
                file_bytes: 100,
                needed_bytes: 256,
                ..
            }
        ),
        "{message}"
    );
}

#[test]
fn truncated_data_says_how_many_records_are_complete() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cut = EXCERPT1_HEADER_BYTES + 10 * EXCERPT1_RECORD_BYTES + EXCERPT1_RECORD_BYTES / 2;
    let (error, message) = read_error(&dir, "cut.edf", &excerpt1_bytes()[..cut]);
    assert!(
        matches!(
            error,
            FileError::TruncatedData {
                records_promised: 1800,
                records_complete: 10,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains("only 10 record(s) are complete"),
        "{message}"
    );
}

#[test]
fn header_size_that_disagrees_with_the_signal_count_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = patched(&excerpt1_bytes(), 184, 8, "768");
    let (error, message) = read_error(&dir, "size.edf", &bytes);
    assert!(
        matches!(
            error,
            FileError::HeaderSizeMismatch {
                header_bytes: 768,
                signal_count: 1,
                expected_bytes: 512,
                ..
            }
        ),
        "{message}"
    );
}

#[test]
fn non_numeric_fields_are_named_with_their_signal() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Physical minimum of signal 0 sits at 256 + 104 * ns.
    let bytes = patched(&excerpt1_bytes(), 256 + 104, 8, "-3x6");
    let (error, message) = read_error(&dir, "pmin.edf", &bytes);
    assert!(
        matches!(
            error,
            FileError::BadField {
                field: "physical minimum",
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains("signal 0 (\"C3-A1\")") && message.contains("\"-3x6\""),
        "{message}"
    );
    let bytes = patched(&excerpt1_bytes(), 236, 8, "many");
    let (error, message) = read_error(&dir, "records.edf", &bytes);
    assert!(
        matches!(
            error,
            FileError::BadField {
                field: "number of data records",
                ..
            }
        ),
        "{message}"
    );
}

#[test]
fn degenerate_digital_range_and_impossible_rates_are_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Digital maximum (256 + 128) set equal to the digital minimum.
    let bytes = patched(&excerpt1_bytes(), 256 + 128, 8, "-32768");
    let (error, message) = read_error(&dir, "digital.edf", &bytes);
    assert!(
        matches!(
            error,
            FileError::DegenerateDigitalRange {
                signal: 0,
                digital: -32768,
                ..
            }
        ),
        "{message}"
    );

    let bytes = patched(&excerpt1_bytes(), 256 + 216, 8, "0");
    let (error, message) = read_error(&dir, "zero_samples.edf", &bytes);
    assert!(
        matches!(
            error,
            FileError::BadSampleRate {
                samples_per_record: 0,
                ..
            }
        ),
        "{message}"
    );

    let bytes = patched(&excerpt1_bytes(), 244, 8, "0");
    let (error, message) = read_error(&dir, "zero_duration.edf", &bytes);
    assert!(
        matches!(
            error,
            FileError::BadSampleRate {
                samples_per_record: 100,
                ..
            }
        ),
        "{message}"
    );

    let bytes = patched(&excerpt1_bytes(), 244, 8, "-1");
    let (error, message) = read_error(&dir, "negative_duration.edf", &bytes);
    assert!(
        matches!(
            error,
            FileError::BadField {
                field: "duration of a data record",
                ..
            }
        ),
        "{message}"
    );
}

/// Open `bytes` saved as `name` through the reader the extension picks and
/// return the error and its message, which must be one line naming the file.
fn open_error(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> (FileError, String) {
    let path = write_temp(dir, name, bytes);
    let error = match open_reader(&path, &FileOptions::default()) {
        Ok(_) => panic!("{name}: bad input must be rejected"),
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(!message.contains('\n'), "{message}");
    (error, message)
}

/// The notices a reader gives for `bytes` saved as `name`.
fn notices(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> Vec<String> {
    let path = write_temp(dir, name, bytes);
    let reader = open_reader(&path, &FileOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    reader.info().notices.clone()
}

#[test]
fn absurd_record_durations_and_rates_are_refused_naming_the_fields() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 100 samples per record over 1e-300 s panicked (capacity overflow) in the
    // spindle detector's setup; over 1e-9 s it aborted on a 480 GB allocation.
    for duration in ["1e-300", "1e-9"] {
        let bytes = patched(&excerpt1_bytes(), 244, 8, duration);
        let (error, message) = open_error(&dir, "tiny_record.edf", &bytes);
        assert!(
            matches!(error, FileError::RateTooHigh { signal: 0, .. }),
            "{message}"
        );
        assert!(
            message.contains("\"C3-A1\"")
                && message.contains(&format!("\"duration of a data record\" ({duration} s)"))
                && message.contains("1000000 Hz"),
            "{message}"
        );
    }
    let bytes = patched(&excerpt1_bytes(), 256 + 216, 8, "99999999");
    let (error, message) = open_error(&dir, "many_samples.edf", &bytes);
    assert!(matches!(error, FileError::RateTooHigh { .. }), "{message}");
    assert!(
        message.contains("sample rate 99999999 Hz")
            && message.contains("\"number of samples in each data record\" (99999999)"),
        "{message}"
    );
}

#[test]
fn a_record_count_that_disagrees_with_the_file_size_is_refused_or_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Two records declared, 1800 held: processing 2 s and calling it complete is wrong.
    let bytes = patched(&excerpt1_bytes(), 236, 8, "2");
    let (error, message) = open_error(&dir, "two_records.edf", &bytes);
    assert!(
        matches!(
            error,
            FileError::RecordCountMismatch {
                declared: 2,
                complete: 1800,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains("\"number of data records\"") && message.contains("-1"),
        "{message}"
    );

    // Bytes after the last declared record are reported, the records read as they are.
    let mut trailing = excerpt1_bytes();
    trailing.extend_from_slice(&[0; 37]);
    let found = notices(&dir, "trailing.edf", &trailing);
    assert!(
        found.len() == 1 && found[0].contains("37 byte(s) after the last of the 1800"),
        "{found:?}"
    );
    let path = dir.path().join("trailing.edf");
    assert_eq!(
        read_edf(&path).expect("trailing bytes"),
        read_edf(&shared_data("dreams/excerpt1.edf")).expect("excerpt1")
    );

    // A recording cut mid-record with the count left open (-1): the cut record is reported.
    let cut = patched(&excerpt1_bytes(), 236, 8, "-1");
    let cut = &cut[..cut.len() - 50];
    let found = notices(&dir, "cut.edf", cut);
    assert!(
        found.len() == 1
            && found[0].contains("cut.edf")
            && found[0].contains("incomplete (150 of 200 bytes)"),
        "{found:?}"
    );
    let recording = read_edf(&dir.path().join("cut.edf")).expect("cut");
    assert_eq!(recording.signals[0].samples.len(), 1799 * 100);
}

#[test]
fn digital_ranges_beyond_the_sample_width_and_empty_scalings_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = patched(&excerpt1_bytes(), 256 + 120, 8, "-40000");
    let (error, message) = open_error(&dir, "wide.edf", &bytes);
    assert!(
        matches!(
            error,
            FileError::BadField {
                field: "digital minimum",
                ..
            }
        ) && message.contains("16-bit"),
        "{message}"
    );
    // pyedflib_test_generator.bdf has 6 signals: signal 0's digital maximum is at 256 + 128 * 6.
    let bdf = std::fs::read(shared_data("formats/pyedflib_test_generator.bdf")).expect("bdf");
    let (error, message) = open_error(
        &dir,
        "wide.bdf",
        &patched(&bdf, 256 + 128 * 6, 8, "8388608"),
    );
    assert!(
        matches!(
            error,
            FileError::BadField {
                field: "digital maximum",
                ..
            }
        ) && message.contains("24-bit")
            && message.contains("signal 0"),
        "{message}"
    );
    // Physical maximum equal to the physical minimum: every sample would read the same.
    let original = excerpt1_bytes();
    let minimum = String::from_utf8_lossy(&original[256 + 104..256 + 112]).into_owned();
    let (error, message) = open_error(
        &dir,
        "flat.edf",
        &patched(&original, 256 + 112, 8, minimum.trim()),
    );
    assert!(
        matches!(
            error,
            FileError::BadField {
                field: "physical maximum",
                ..
            }
        ),
        "{message}"
    );
    let (error, message) = open_error(&dir, "no_signals.edf", &patched(&original, 252, 4, "0"));
    assert!(
        matches!(
            error,
            FileError::BadField {
                field: "number of signals",
                ..
            }
        ),
        "{message}"
    );
}

/// Found by the fuzzer: reading a second stream of a one-record file reused
/// the first stream's buffered record span and read past it.
#[test]
fn every_stream_of_a_one_record_file_is_read_right() {
    let dir = tempfile::tempdir().expect("temp dir");
    // edfio_short_psg.edf: 7 signals (3 at 100 Hz, 4 at 1 Hz) in 30-s records of 18240 bytes.
    let bytes = std::fs::read(shared_data("formats/edfio_short_psg.edf")).expect("psg");
    let header_bytes = 256 * 8;
    let one = patched(&bytes[..header_bytes + 18_240], 236, 8, "1");
    let path = write_temp(&dir, "one_record.edf", &one);
    let first = read_edf(&path).expect("one record");
    let whole = read_edf(&shared_data("formats/edfio_short_psg.edf")).expect("psg");
    for (short, long) in first.signals.iter().zip(&whole.signals) {
        let n = short.samples.len();
        assert_eq!(n as f64, 30.0 * long.rate.hz(), "{}", short.label);
        assert_eq!(short.samples, long.samples[..n], "{}", short.label);
    }
}

#[test]
fn a_label_two_signals_share_is_refused_naming_both() {
    let dir = tempfile::tempdir().expect("temp dir");
    // edfio_short_psg.edf: 7 signals; signal 1's label sits at 256 + 16.
    let bytes = std::fs::read(shared_data("formats/edfio_short_psg.edf")).expect("psg");
    let path = write_temp(
        &dir,
        "twins.edf",
        &patched(&bytes, 256 + 16, 16, "EEG Fpz-Cz"),
    );
    let reader = open_reader(&path, &FileOptions::default()).expect("twins");
    let error = reader
        .info()
        .select(&["eeg fpz-cz".parse().unwrap()])
        .expect_err("ambiguous");
    assert!(
        matches!(&error, SelectError::AmbiguousLabel { indices, .. } if indices == "0, 1"),
        "{error}"
    );
    assert_eq!(reader.info().select(&["1".parse().unwrap()]).unwrap(), [1]);
}

/// Runs `open` on a thread and fails the test if it has not returned after a
/// minute: the old readers blocked forever on a FIFO (a hang guard, not a
/// timing requirement).
fn without_hanging<T: Send + 'static>(open: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(open()));
    receiver
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the reader hung")
}

#[test]
fn pipes_devices_and_folders_are_refused_before_reading() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("stream.edf");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
    let folder = dir.path().join("folder.wav");
    std::fs::create_dir(&folder).unwrap();
    // Read as raw int16, /dev/zero never ends: the old reader read until memory ran out.
    let zero = dir.path().join("zero.dat");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let raw = FileOptions {
        raw: Some(RawLayout {
            channels: 1,
            rate_hz: 1000.0,
            uv_per_bit: 1.0,
        }),
        ..FileOptions::default()
    };
    for (path, kind) in [
        (fifo, "a FIFO"),
        (zero, "a character device"),
        (folder, "a directory"),
    ] {
        let options = raw.clone();
        let error = without_hanging(move || match open_reader(&path, &options) {
            Ok(_) => panic!("{} accepted", path.display()),
            Err(error) => error,
        });
        let message = error.to_string();
        assert!(
            matches!(error, FileError::NotRegular { .. }) && message.contains(kind),
            "{message}"
        );
    }
}

#[test]
fn unknown_record_count_is_taken_from_the_file_length() {
    let dir = tempfile::tempdir().expect("temp dir");
    for file in [
        "formats/edfio_short_psg.edf",
        "formats/pyedflib_test_generator.bdf",
    ] {
        let original = std::fs::read(shared_data(file)).expect("sample file");
        let expected = read_edf(&shared_data(file)).expect("sample file");
        let path = write_temp(&dir, "unknown_count.edf", &patched(&original, 236, 8, "-1"));
        assert_eq!(read_edf(&path).expect("-1 records"), expected, "{file}");
    }
}

/// edfio_test_subsecond.edf: Fp1 (128 samples) then EDF Annotations (20
/// samples = 40 bytes) per 1-s record; the time-keeping TAL of record r is
/// "+{r}.3945312".
fn subsecond_record_tal_offset(bytes: &[u8], record: usize) -> usize {
    let header_bytes = 768;
    let record_bytes = (128 + 20) * 2;
    let offset = header_bytes + record * record_bytes + 128 * 2;
    let prefix = format!("+{record}.");
    assert_eq!(&bytes[offset..offset + prefix.len()], prefix.as_bytes());
    offset
}

/// Every block of a reader's default selection, as (start, frames) and values.
fn read_blocks(path: &Path, frames_per_block: usize) -> (Vec<BlockMeta>, Vec<f64>) {
    let mut reader = open_reader(path, &FileOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let channels = reader.selection().len();
    let mut buf = vec![0.0; frames_per_block * channels];
    let (mut blocks, mut values) = (Vec::new(), Vec::new());
    while let Some(block) = reader
        .read_block(&mut buf)
        .unwrap_or_else(|e| panic!("{e}"))
    {
        blocks.push(block);
        values.extend_from_slice(&buf[..block.frames * channels]);
    }
    (blocks, values)
}

#[test]
fn edf_plus_d_gaps_become_blocks_that_start_after_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let original = std::fs::read(shared_data("formats/edfio_test_subsecond.edf")).expect("sample");
    let expected = read_edf(&shared_data("formats/edfio_test_subsecond.edf")).expect("sample");
    let discontinuous = patched(&original, 192, 44, "EDF+D");
    let path = write_temp(&dir, "contiguous_d.edf", &discontinuous);
    assert_eq!(read_edf(&path).expect("contiguous EDF+D"), expected);

    // The last of 698 one-second records of 128 samples moves 2 s later: a gap.
    let mut gap = discontinuous.clone();
    let offset = subsecond_record_tal_offset(&gap, 697);
    gap[offset..offset + 12].copy_from_slice(b"+699.3945312");
    let path = write_temp(&dir, "gap_d.edf", &gap);
    let (blocks, values) = read_blocks(&path, 1000);
    let last = blocks.last().expect("blocks");
    assert_eq!((last.start, last.frames), (699 * 128, 128));
    let before = &blocks[blocks.len() - 2];
    assert_eq!(before.start + before.frames as u64, 697 * 128, "{blocks:?}");
    assert_eq!(
        values, expected.signals[0].samples,
        "same samples, later start"
    );
    let reader = open_reader(&path, &FileOptions::default()).expect("gap");
    assert!(
        reader.info().notices[0].contains("1 gap(s)") && reader.info().notices[0].contains("2 s"),
        "{:?}",
        reader.info().notices
    );
    // A whole-file Recording cannot hold the gap.
    let (error, message) = read_error(&dir, "gap_d.edf", &gap);
    assert!(
        matches!(
            error,
            FileError::Gap {
                expected: 89_216,
                resumes: 89_472,
                ..
            }
        ),
        "{message}"
    );

    // Record 2 starting inside record 1, and a record between two samples, are refused.
    let mut overlap = discontinuous.clone();
    let offset = subsecond_record_tal_offset(&overlap, 2);
    overlap[offset + 1] = b'1';
    let (error, message) = read_error(&dir, "overlap_d.edf", &overlap);
    assert!(
        matches!(error, FileError::Discontinuous { record: 2, .. }),
        "{message}"
    );
    let mut off_grid = discontinuous;
    let offset = subsecond_record_tal_offset(&off_grid, 697);
    off_grid[offset..offset + 12].copy_from_slice(b"+699.4000000");
    let (error, message) = read_error(&dir, "off_grid_d.edf", &off_grid);
    assert!(
        matches!(error, FileError::BadAnnotation { record: 697, .. })
            && message.contains("sample grid"),
        "{message}"
    );
}

#[test]
fn malformed_annotations_are_reported_with_record_and_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut bytes = std::fs::read(shared_data("formats/edfio_test_subsecond.edf")).expect("sample");
    let offset = subsecond_record_tal_offset(&bytes, 1);
    bytes[offset] = b'x'; // onset must start with '+' or '-'
    let (error, message) = read_error(&dir, "tal.edf", &bytes);
    assert!(
        matches!(error, FileError::BadAnnotation { record: 1, .. }),
        "{message}"
    );
    assert!(
        message.contains(&format!("byte offset {offset}")),
        "{message}"
    );
}

/// A deterministic byte generator for the corruption test (xorshift64).
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncated_or_corrupted_files_give_errors_not_panics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let original = std::fs::read(shared_data("formats/edfio_test_subsecond.edf")).expect("sample");
    let path = dir.path().join("fuzz.edf");
    // Every cut through the header and the first records.
    for length in 0..2000 {
        std::fs::write(&path, &original[..length]).expect("write");
        assert!(
            read_edf(&path).is_err(),
            "a file cut at {length} bytes was accepted"
        );
    }
    // Random bytes written into the header and the first annotation blocks.
    let mut state = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..500 {
        let mut bytes = original.clone();
        for _ in 0..4 {
            let position = (next_random(&mut state) % 1400) as usize;
            bytes[position] = (next_random(&mut state) % 256) as u8;
        }
        std::fs::write(&path, &bytes).expect("write");
        let _ = read_edf(&path); // Ok or Err; a panic fails the test
    }
}

fn signal(label: &str, unit: &str, rate_hz: f64, samples: Vec<f64>) -> Signal {
    Signal {
        label: label.into(),
        unit: unit.into(),
        rate: SampleRate::new(rate_hz).expect("rate"),
        samples,
    }
}

/// Write, read back, and check every sample is within half a quantisation
/// step (read from the written header) of the original.
fn assert_round_trip(recording: &Recording, path: &Path) -> Recording {
    write_edf(path, recording).unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(path).expect("written file");
    let back = read_edf(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.signals.len(), recording.signals.len());
    for (index, (original, read)) in recording.signals.iter().zip(&back.signals).enumerate() {
        assert_eq!(read.rate, original.rate, "{}", original.label);
        assert_eq!(
            read.samples.len(),
            original.samples.len(),
            "{}",
            original.label
        );
        let (min, max) = header_physical_range(&bytes, index);
        let data_min = original
            .samples
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let data_max = original
            .samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            min <= data_min && max >= data_max,
            "range [{min}, {max}] clips the data"
        );
        // Half a step, plus a few ulps of the range for the scaling arithmetic.
        let tolerance = header_step(&bytes, index) / 2.0 + 1e-12 * (max - min);
        for (i, (a, b)) in original.samples.iter().zip(&read.samples).enumerate() {
            assert!(
                (a - b).abs() <= tolerance,
                "{} sample {i}: wrote {a}, read {b}",
                original.label
            );
        }
    }
    back
}

#[test]
fn written_edf_reads_back_within_the_quantisation_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let eeg: Vec<f64> = (0..2000)
        .map(|i| {
            let t = i as f64 / 200.0;
            // A 10 Hz sine clipped at ±80 µV, like a saturating amplifier.
            (120.0 * (2.0 * std::f64::consts::PI * 10.0 * t).sin() + 3.7).clamp(-80.0, 80.0)
        })
        .collect();
    let slow: Vec<f64> = (0..50).map(|i| 0.25 * i as f64 - 3.0).collect();
    let recording = Recording {
        signals: vec![
            signal("C3-A1", "µV", 200.0, eeg),
            signal("Temperature rectal probe", "degC", 5.0, slow),
            signal("Flat", "uV", 200.0, vec![12.5; 2000]),
        ],
        annotations: vec![],
    };
    let back = assert_round_trip(&recording, &dir.path().join("round_trip.edf"));
    assert_eq!(back.signals[0].unit, "uV");
    assert_eq!(
        back.signals[1].label, "Temperature rect",
        "cut to 16 characters"
    );
    // Clipped samples stay on one rail value that is the maximum read back.
    let clipped = &back.signals[0];
    let rail = clipped.samples[recording.signals[0]
        .samples
        .iter()
        .position(|&x| x == 80.0)
        .expect("clipped")];
    let at_rail = recording.signals[0]
        .samples
        .iter()
        .zip(&clipped.samples)
        .filter(|(&x, _)| x == 80.0);
    assert!(at_rail.clone().count() > 100);
    assert!(at_rail.into_iter().all(|(_, &y)| y == rail));
    assert_eq!(
        clipped
            .samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max),
        rail
    );
}

#[test]
fn real_recordings_survive_a_write_read_round_trip() {
    let dir = tempfile::tempdir().expect("temp dir");
    for file in [
        "dreams/excerpt6.edf",
        "formats/edfio_short_psg.edf",
        "formats/pyedflib_test_generator.bdf",
    ] {
        let recording = read_edf(&shared_data(file)).expect("sample");
        assert_round_trip(&recording, &dir.path().join("copy.edf"));
    }
}

#[test]
fn writer_errors_leave_no_file_behind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("out.edf");
    let ntsc = Recording {
        signals: vec![signal("video", "uV", 30000.0 / 1001.0, vec![0.0; 300])],
        annotations: vec![],
    };
    let ragged = Recording {
        signals: vec![
            signal("a", "uV", 100.0, vec![0.0; 150]),
            signal("b", "uV", 10.0, vec![0.0; 10]),
        ],
        annotations: vec![],
    };
    let huge = Recording {
        signals: vec![signal("a", "uV", 100.0, vec![0.0, 1e12])],
        annotations: vec![],
    };
    let not_finite = Recording {
        signals: vec![signal("a", "uV", 100.0, vec![0.0, f64::NAN])],
        annotations: vec![],
    };
    for (recording, expected) in [
        (&ntsc, "no record duration"),
        (&ragged, "do not fill whole records"),
        (&huge, "does not fit"),
        (&not_finite, "non-finite sample at index 1"),
        (&Recording::default(), "no signals"),
    ] {
        let message = write_edf(&path, recording)
            .expect_err("must fail")
            .to_string();
        assert!(
            message.contains(expected) && message.contains("out.edf"),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert!(left.is_empty(), "{expected}: left {left:?}");
    }
    let missing_folder = dir.path().join("no/such/folder/out.edf");
    let error = write_edf(&missing_folder, &one_second_recording()).expect_err("no folder");
    assert!(matches!(error, FileError::Io { .. }), "{error}");
}

fn one_second_recording() -> Recording {
    Recording {
        signals: vec![signal("a", "uV", 100.0, vec![1.0; 100])],
        annotations: vec![],
    }
}

fn write_wav<S: hound::Sample + Copy>(path: &Path, spec: hound::WavSpec, frames: &[[S; 2]]) {
    let mut writer = hound::WavWriter::create(path, spec).expect("wav writer");
    for frame in frames {
        for &sample in frame {
            writer.write_sample(sample).expect("sample");
        }
    }
    writer.finalize().expect("finalize");
}

fn wav_spec(bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
    hound::WavSpec {
        channels: 2,
        sample_rate: 1000,
        bits_per_sample: bits,
        sample_format: format,
    }
}

#[test]
fn wav_integer_and_float_samples_scale_to_microvolts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let volts_per_full_scale = 0.4;
    let uv = |fraction: f64| fraction * volts_per_full_scale * 1e6;
    let int = hound::SampleFormat::Int;
    let cases: Vec<(PathBuf, [f64; 4])> = {
        let path8 = dir.path().join("i8.wav");
        write_wav::<i8>(&path8, wav_spec(8, int), &[[-128, 64], [127, 0]]);
        let path16 = dir.path().join("i16.wav");
        write_wav::<i16>(&path16, wav_spec(16, int), &[[-32768, 16384], [32767, 0]]);
        let path24 = dir.path().join("i24.wav");
        write_wav::<i32>(
            &path24,
            wav_spec(24, int),
            &[[-8_388_608, 4_194_304], [8_388_607, 0]],
        );
        let path32 = dir.path().join("i32.wav");
        write_wav::<i32>(
            &path32,
            wav_spec(32, int),
            &[[i32::MIN, 1 << 30], [i32::MAX, 0]],
        );
        let pathf = dir.path().join("f32.WAV");
        write_wav::<f32>(
            &pathf,
            wav_spec(32, hound::SampleFormat::Float),
            &[[-1.0, 0.5], [0.25, 0.0]],
        );
        vec![
            (path8, [-1.0, 127.0 / 128.0, 0.5, 0.0]),
            (path16, [-1.0, 32767.0 / 32768.0, 0.5, 0.0]),
            (path24, [-1.0, 8_388_607.0 / 8_388_608.0, 0.5, 0.0]),
            (
                path32,
                [-1.0, f64::from(i32::MAX) / 2f64.powi(31), 0.5, 0.0],
            ),
            (pathf, [-1.0, 0.25, 0.5, 0.0]),
        ]
    };
    for (path, [ch0_first, ch0_second, ch1_first, ch1_second]) in cases {
        let options = FileOptions {
            raw: None,
            wav_volts_per_full_scale: volts_per_full_scale,
        };
        let recording = read_recording(&path, &options).unwrap_or_else(|e| panic!("{e}"));
        let what = path.display();
        assert_eq!(recording.labels(), ["ch0", "ch1"], "{what}");
        assert_eq!(recording.signals[0].rate.hz(), 1000.0, "{what}");
        assert_eq!(recording.signals[0].unit, "uV", "{what}");
        let expected = [
            [uv(ch0_first), uv(ch0_second)],
            [uv(ch1_first), uv(ch1_second)],
        ];
        for (signal, expected) in recording.signals.iter().zip(expected) {
            for (&actual, expected) in signal.samples.iter().zip(expected) {
                // The scaling order differs from the expression above by an ulp or so.
                assert_close(
                    &format!("{what} {}", signal.label),
                    actual,
                    expected,
                    uv(1.0),
                );
            }
            assert_eq!(signal.samples.len(), 2, "{what}");
        }
    }
}

#[test]
fn bad_wav_files_and_scales_are_rejected_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_wav = write_temp(&dir, "noise.wav", b"RIFF....WAVEnot really");
    let message = read_wav(&not_wav, 1.0).expect_err("not a WAV").to_string();
    assert!(
        message.contains("noise.wav") && message.contains("WAV"),
        "{message}"
    );
    let path = dir.path().join("ok.wav");
    write_wav::<i16>(&path, wav_spec(16, hound::SampleFormat::Int), &[[1, 2]]);
    for bad_scale in [0.0, -1.0, f64::NAN] {
        let error = read_wav(&path, bad_scale).expect_err("bad scale");
        assert!(matches!(error, FileError::BadOption { .. }), "{error}");
    }
}

/// A 2-channel 16-bit 1 kHz WAV of 1000 frames as hound writes it: a 44-byte
/// header (fmt fields from byte 20, data size at 40) then the samples.
fn canonical_wav(dir: &tempfile::TempDir) -> Vec<u8> {
    let path = dir.path().join("canonical.wav");
    let frames: Vec<[i16; 2]> = (0..1000).map(|i| [i as i16, -(i as i16)]).collect();
    write_wav::<i16>(&path, wav_spec(16, hound::SampleFormat::Int), &frames);
    let bytes = std::fs::read(&path).expect("wav");
    assert_eq!((&bytes[36..40], bytes.len()), (&b"data"[..], 44 + 4000));
    bytes
}

fn with_u32(bytes: &[u8], offset: usize, value: u32) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    out
}

fn with_u16(bytes: &[u8], offset: usize, value: u16) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
    out
}

#[test]
fn wav_headers_are_checked_against_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = canonical_wav(&dir);
    for (name, bytes, needle) in [
        (
            "cut.wav",
            wav[..wav.len() - 10].to_vec(),
            "cut short (997 whole frames)",
        ),
        ("align.wav", with_u16(&wav, 32, 3), "\"block align\" is 3"),
        ("mono0.wav", with_u16(&wav, 22, 0), "\"channels\" is 0"),
        (
            "rate0.wav",
            with_u32(&wav, 24, 0),
            "\"sample rate\" is 0 Hz",
        ),
        (
            "fast.wav",
            with_u32(&wav, 24, 2_000_000),
            "\"sample rate\" is 2000000 Hz",
        ),
        (
            "nofmt.wav",
            patched(&wav, 12, 4, "junk"),
            "before any fmt chunk",
        ),
        ("tiny.wav", wav[..30].to_vec(), "file ends before them"),
        ("nodata.wav", wav[..36].to_vec(), "no data chunk"),
        ("short.wav", wav[..8].to_vec(), "shorter than a RIFF header"),
    ] {
        let (error, message) = open_error(&dir, name, &bytes);
        assert!(
            matches!(error, FileError::BadWav { .. }) && message.contains(needle),
            "{name}: {message}"
        );
    }
    // A data size its writer never filled in: the file's length gives it, and that is said.
    let found = notices(&dir, "unset.wav", &with_u32(&wav, 40, u32::MAX));
    assert!(
        found.len() == 1 && found[0].contains("left unset"),
        "{found:?}"
    );
    let unset = read_wav(&dir.path().join("unset.wav"), 1.0).expect("unset size");
    assert_eq!(unset.signals[1].samples.len(), 1000);
    // A partial last frame is reported and not read.
    let mut partial = with_u32(&wav, 40, 4002);
    partial.extend_from_slice(&[7, 7]);
    let found = notices(&dir, "partial.wav", &partial);
    assert!(
        found.len() == 1 && found[0].contains("incomplete (2 of 4 bytes)"),
        "{found:?}"
    );
    let read = read_wav(&dir.path().join("partial.wav"), 1.0).expect("partial");
    assert_eq!(
        read,
        read_wav(&dir.path().join("canonical.wav"), 1.0).unwrap()
    );
}

#[test]
fn raw_layouts_beyond_the_limits_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_temp(&dir, "data.dat", &[0; 64]);
    let layout = RawLayout {
        channels: 2,
        rate_hz: 1000.0,
        uv_per_bit: 1.0,
    };
    for (bad, needle) in [
        (
            RawLayout {
                channels: 1 << 40,
                ..layout.clone()
            },
            "channels",
        ),
        (
            RawLayout {
                rate_hz: 2e6,
                ..layout.clone()
            },
            "1000000 Hz",
        ),
    ] {
        let message = read_raw_int16(&path, &bad)
            .expect_err("refused")
            .to_string();
        assert!(
            message.contains("data.dat") && message.contains(needle),
            "{message}"
        );
    }
}

#[test]
fn raw_int16_interleaved_frames_scale_to_microvolts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let counts: [i16; 6] = [-32768, 0, 5, 32767, -2, 7];
    let bytes: Vec<u8> = counts.iter().flat_map(|c| c.to_le_bytes()).collect();
    let path = write_temp(&dir, "continuous.dat", &bytes);
    let layout = RawLayout {
        channels: 3,
        rate_hz: 30000.0,
        uv_per_bit: 0.195,
    };
    let options = FileOptions {
        raw: Some(layout.clone()),
        ..FileOptions::default()
    };
    let recording = read_recording(&path, &options).expect("raw");
    assert_eq!(recording.labels(), ["ch0", "ch1", "ch2"]);
    assert_eq!(
        recording.signals[0].samples,
        [-32768.0 * 0.195, 32767.0 * 0.195]
    );
    assert_eq!(recording.signals[1].samples, [0.0, -2.0 * 0.195]);
    assert_eq!(recording.signals[2].samples, [5.0 * 0.195, 7.0 * 0.195]);
    assert_eq!(recording.signals[2].rate.hz(), 30000.0);

    let odd = write_temp(&dir, "odd.dat", &bytes[..10]);
    let message = read_raw_int16(&odd, &layout)
        .expect_err("partial frame")
        .to_string();
    assert!(
        message.contains("odd.dat")
            && message.contains("10 bytes")
            && message.contains("6-byte frames"),
        "{message}"
    );
    for bad in [
        RawLayout {
            channels: 0,
            ..layout.clone()
        },
        RawLayout {
            rate_hz: 0.0,
            ..layout.clone()
        },
        RawLayout {
            rate_hz: -1.0,
            ..layout.clone()
        },
        RawLayout {
            uv_per_bit: f64::INFINITY,
            ..layout.clone()
        },
    ] {
        let error = read_raw_int16(&path, &bad).expect_err("bad layout");
        assert!(
            matches!(error, FileError::BadOption { .. })
                && error.to_string().contains("continuous.dat"),
            "{error}"
        );
    }
    let error = read_recording(&path, &FileOptions::default()).expect_err("no layout");
    assert!(matches!(error, FileError::BadOption { .. }), "{error}");
}

#[test]
fn rodent_raw_counts_match_the_edf_of_the_same_recording() {
    let layout = RawLayout {
        channels: 1,
        rate_hz: 1000.0,
        uv_per_bit: 1.0,
    };
    let raw =
        read_raw_int16(&shared_data("rodent/hc2_theta_1000hz_int16.dat"), &layout).expect("raw");
    let edf_path = shared_data("rodent/hc2_theta_1000hz.edf");
    let edf = read_edf(&edf_path).expect("edf");
    let (raw, edf_signal) = (&raw.signals[0].samples, &edf.signals[0]);
    assert_eq!(raw.len(), 150_000);
    assert_eq!(raw.len(), edf_signal.samples.len());
    assert_eq!(edf_signal.rate.hz(), 1000.0);
    // The EDF stores the counts rescaled to 16 bits over ±4065: half a step apart at most.
    let tolerance = header_step(&std::fs::read(&edf_path).expect("bytes"), 0) / 2.0 + 1e-9;
    for (i, (r, e)) in raw.iter().zip(&edf_signal.samples).enumerate() {
        assert!((r - e).abs() <= tolerance, "sample {i}: raw {r}, EDF {e}");
    }
}

#[test]
fn read_recording_dispatches_on_the_extension_in_any_case() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = std::fs::read(shared_data("formats/edfio_short_psg.bdf")).expect("sample");
    let upper = write_temp(&dir, "PSG.BDF", &bytes);
    let recording = read_recording(&upper, &FileOptions::default()).expect("upper-case .BDF");
    assert_eq!(recording.signals.len(), 7);
    let unknown = write_temp(&dir, "psg.xyz", &bytes);
    let error = read_recording(&unknown, &FileOptions::default()).expect_err("unknown extension");
    assert!(
        matches!(error, FileError::UnknownExtension { .. })
            && error.to_string().contains("psg.xyz"),
        "{error}"
    );
    let missing = read_recording(&dir.path().join("missing.edf"), &FileOptions::default())
        .expect_err("missing");
    assert!(
        matches!(missing, FileError::Io { .. }) && missing.to_string().contains("missing.edf"),
        "{missing}"
    );
}

const OEBIN: &str = "formats/openephys_fileio_structure_v0.4.5.oebin";

#[test]
fn open_ephys_structure_metadata_is_parsed() {
    let streams = read_oebin(&shared_data(OEBIN)).expect("oebin");
    assert_eq!(streams.len(), 1);
    let stream = &streams[0];
    assert_eq!(stream.folder_name, "openephys-100.0/");
    assert_eq!(stream.rate.hz(), 30000.0);
    let names: Vec<&str> = stream.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["CH1", "AUX1", "ADC1"]);
    let bit_volts: Vec<f64> = stream.channels.iter().map(|c| c.bit_volts).collect();
    assert_eq!(bit_volts, [0.195, 3.74e-05, 0.000152588]);
}

#[test]
fn open_ephys_recording_reads_its_continuous_dat_with_per_channel_scales() {
    let dir = tempfile::tempdir().expect("temp dir");
    let oebin = write_temp(
        &dir,
        "structure.oebin",
        &std::fs::read(shared_data(OEBIN)).expect("oebin"),
    );
    let stream_folder = dir.path().join("continuous/openephys-100.0");
    let missing =
        read_recording(&oebin, &FileOptions::default()).expect_err("no continuous.dat yet");
    assert!(missing.to_string().contains("continuous.dat"), "{missing}");

    std::fs::create_dir_all(&stream_folder).expect("folder");
    let counts: [i16; 6] = [100, -200, 300, -1, 2, -3];
    let bytes: Vec<u8> = counts.iter().flat_map(|c| c.to_le_bytes()).collect();
    std::fs::write(stream_folder.join("continuous.dat"), &bytes).expect("dat");
    let recording = read_recording(&oebin, &FileOptions::default()).expect("open ephys");
    assert_eq!(recording.labels(), ["CH1", "AUX1", "ADC1"]);
    assert_eq!(recording.signals[0].samples, [100.0 * 0.195, -0.195]);
    assert_eq!(
        recording.signals[1].samples,
        [-200.0 * 3.74e-05, 2.0 * 3.74e-05]
    );
    assert_eq!(
        recording.signals[2].samples,
        [300.0 * 0.000152588, -3.0 * 0.000152588]
    );
    assert_eq!(recording.signals[2].rate.hz(), 30000.0);

    std::fs::write(stream_folder.join("continuous.dat"), &bytes[..8]).expect("dat");
    let error = read_recording(&oebin, &FileOptions::default()).expect_err("partial frame");
    assert!(
        matches!(
            error,
            FileError::PartialFrame {
                length: 8,
                channels: 3,
                ..
            }
        ),
        "{error}"
    );

    let text = std::fs::read_to_string(&oebin)
        .expect("text")
        .replace("\"num_channels\": 3", "\"num_channels\": 4");
    let bad = write_temp(&dir, "structure.oebin", text.as_bytes());
    let message = read_oebin(&bad).expect_err("count mismatch").to_string();
    assert!(
        message.contains("structure.oebin")
            && message.contains("continuous[0]")
            && message.contains("num_channels"),
        "{message}"
    );
    let garbage = write_temp(&dir, "broken.oebin", b"{\"continuous\": [");
    let message = read_oebin(&garbage).expect_err("bad JSON").to_string();
    assert!(
        message.contains("broken.oebin")
            && message.contains("not valid JSON")
            && !message.contains('\n'),
        "{message}"
    );
}

#[test]
fn open_ephys_streams_are_selected_one_at_a_time_and_sidecars_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(shared_data(OEBIN)).expect("oebin");
    let root: Value = serde_json::from_str(&text).expect("JSON");
    let mut probe = root["continuous"][0].clone();
    probe["folder_name"] = "probe-B/".into();
    probe["channels"][0]["channel_name"] = "'B1'".into();
    let mut two = root.clone();
    two["continuous"].as_array_mut().unwrap().push(probe);
    let oebin = write_temp(&dir, "structure.oebin", two.to_string().as_bytes());
    for folder in ["openephys-100.0", "probe-B"] {
        let stream = dir.path().join("continuous").join(folder);
        std::fs::create_dir_all(&stream).expect("folder");
        let counts: Vec<u8> = (0..30i16).flat_map(|c| c.to_le_bytes()).collect();
        std::fs::write(stream.join("continuous.dat"), counts).expect("dat");
    }
    let reader = open_reader(&oebin, &FileOptions::default()).expect("two streams");
    let info = reader.info();
    assert_eq!(info.signals.len(), 6);
    assert_eq!(info.select(&[]).unwrap(), [0, 1, 2], "the first stream");
    assert_eq!(reader.selection(), [0, 1, 2]);
    assert_eq!(info.select(&["B1".parse().unwrap()]).unwrap(), [3]);
    let error = info
        .select(&["CH1".parse().unwrap(), "B1".parse().unwrap()])
        .expect_err("two streams are not aligned");
    assert!(matches!(error, SelectError::MixedStreams { .. }), "{error}");
    let recording = read_recording(&oebin, &FileOptions::default()).expect("both streams");
    assert_eq!(
        recording.signals[3].samples,
        [
            0.0,
            3.0 * 0.195,
            6.0 * 0.195,
            9.0 * 0.195,
            12.0 * 0.195,
            15.0 * 0.195,
            18.0 * 0.195,
            21.0 * 0.195,
            24.0 * 0.195,
            27.0 * 0.195
        ]
    );

    let mut float = root.clone();
    float["continuous"][0]["dtype"] = "float32".into();
    let mut escape = root.clone();
    escape["continuous"][0]["folder_name"] = "../../elsewhere/".into();
    let mut fast = root;
    fast["continuous"][0]["sample_rate"] = 5e6.into();
    for (sidecar, needle) in [
        (float, "\"dtype\" is \"float32\""),
        (escape, "leaves the recording's continuous/ folder"),
        (fast, "1000000 Hz"),
    ] {
        let path = write_temp(&dir, "bad.oebin", sidecar.to_string().as_bytes());
        let message = read_oebin(&path).expect_err("refused").to_string();
        assert!(
            message.contains("bad.oebin") && message.contains(needle),
            "{message}"
        );
    }
    // A sidecar far larger than any real one is not read into memory.
    let huge = dir.path().join("huge.oebin");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(1 << 30))
        .expect("sparse file");
    let message = read_oebin(&huge).expect_err("too large").to_string();
    assert!(
        message.contains("huge.oebin") && message.contains("1073741824 bytes"),
        "{message}"
    );
}
