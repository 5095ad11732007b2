//! File formats against reference readers and hand-made bad input.
//!
//! Golden summaries come from tests/data/golden/gen_format_summaries.py
//! (pyedflib, cross-checked with edfio).

use std::path::{Path, PathBuf};

use neuroloop::io::edf::read_edf;
use neuroloop::io::FileError;
use neuroloop::recording::Recording;
use serde_json::Value;

fn shared_data(relative: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")).join(relative)
}

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
