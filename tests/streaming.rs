//! Streaming replay: the same events as the whole-file path it replaced, blocks
//! that do not depend on how the caller sizes its buffer, and memory that does
//! not grow with the recording's length.
//!
//! The reference path decodes each file whole with its own code here (the
//! formulas the whole-file readers used: EDF `pmin + (d - dmin) * gain`, raw
//! `count * µV per bit`, WAV through hound) and hands it to the same session
//! driver from memory; its events.tsv must equal the streaming replay's byte
//! for byte.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use neuroloop::config::{Config, DetectorConfig, LatencyProbeConfig, Preset};
use neuroloop::io::{
    self, open_reader, BlockMeta, FileError, FileOptions, RawLayout, SignalInfo, SignalReader,
    SourceInfo,
};
use neuroloop::rng::Rng;
use neuroloop::session::{run_session, Pacing, SessionInput, SessionRunError};
use neuroloop::sim::{simulate, Preset as SimPreset, SimSpec};
use neuroloop::time::SampleRate;
use proptest::prelude::*;

mod files;
mod peak;
use files::shared_data;
use peak::peak_bytes;

/// A recording held in memory, handed out in blocks of `block` frames: the
/// whole-file path of old.
struct MemoryReader {
    info: SourceInfo,
    selection: Vec<usize>,
    frames: Vec<f64>,
    block: usize,
    next: usize,
}

impl MemoryReader {
    fn new(rate: SampleRate, labels: &[String], frames: Vec<f64>, block: usize) -> Self {
        let signals = labels
            .iter()
            .map(|label| SignalInfo {
                label: label.clone(),
                unit: "uV".into(),
                rate,
                rate_origin: "memory".into(),
                scale: 1.0,
                samples: (frames.len() / labels.len()) as u64,
                stream: 0,
            })
            .collect();
        Self {
            info: SourceInfo {
                path: PathBuf::from("memory"),
                format: "memory",
                signals,
                streams: Vec::new(),
                annotations: Vec::new(),
                notices: Vec::new(),
            },
            selection: (0..labels.len()).collect(),
            frames,
            block,
            next: 0,
        }
    }
}

impl SignalReader for MemoryReader {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    fn select(&mut self, _: &[usize]) -> Result<(), FileError> {
        unreachable!("the reference reads every channel it holds")
    }
    fn selection(&self) -> &[usize] {
        &self.selection
    }
    fn read_block(&mut self, buf: &mut [f64]) -> Result<Option<BlockMeta>, FileError> {
        let channels = self.selection.len();
        let total = self.frames.len() / channels;
        let frames = (total - self.next)
            .min(self.block)
            .min(buf.len() / channels);
        if frames == 0 {
            return Ok(None);
        }
        let start = self.next * channels;
        buf[..frames * channels].copy_from_slice(&self.frames[start..start + frames * channels]);
        self.next += frames;
        Ok(Some(BlockMeta {
            start: (self.next - frames) as u64,
            frames,
        }))
    }
}

/// Run a replay session from `source` into `dir`.
fn replay(source: &mut dyn SignalReader, config: &Config, dir: &Path) {
    let input = SessionInput {
        source,
        description: "test".into(),
        stim_allowed: None,
    };
    let stop = AtomicBool::new(false);
    run_session(
        "replay",
        input,
        config,
        dir,
        Pacing::AsFastAsPossible,
        &stop,
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
}

/// Run a replay session from `source` into `dir` and return its events.tsv.
fn events_tsv(source: &mut dyn SignalReader, config: &Config, dir: &Path) -> String {
    replay(source, config, dir);
    std::fs::read_to_string(dir.join("events.tsv")).unwrap()
}

/// Whole-file decode of an EDF whose signals share one rate, as the old reader did.
fn reference_edf(path: &Path) -> (SampleRate, Vec<String>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap();
    let text = |at: usize, width: usize| {
        String::from_utf8_lossy(&bytes[at..at + width])
            .trim()
            .to_string()
    };
    let ns: usize = text(252, 4).parse().unwrap();
    let records: usize = text(236, 8).parse().unwrap();
    let duration: f64 = text(244, 8).parse().unwrap();
    let field =
        |block: usize, width: usize, signal: usize| text(256 + block * ns + signal * width, width);
    let number = |block: usize, signal: usize| -> f64 { field(block, 8, signal).parse().unwrap() };
    let labels: Vec<String> = (0..ns).map(|i| field(0, 16, i)).collect();
    let per_record: Vec<usize> = (0..ns).map(|i| field(216, 8, i).parse().unwrap()).collect();
    assert!(per_record.iter().all(|&n| n == per_record[0]), "one rate");
    let mut channels = vec![Vec::new(); ns];
    let mut offset = 256 * (ns + 1);
    for _ in 0..records {
        for (signal, samples) in channels.iter_mut().enumerate() {
            let (pmin, pmax) = (number(104, signal), number(112, signal));
            let (dmin, dmax) = (number(120, signal), number(128, signal));
            let gain = (pmax - pmin) / (dmax - dmin);
            for pair in bytes[offset..offset + 2 * per_record[signal]].chunks_exact(2) {
                let digital = f64::from(i16::from_le_bytes([pair[0], pair[1]]));
                samples.push(pmin + (digital - dmin) * gain);
            }
            offset += 2 * per_record[signal];
        }
    }
    let rate = SampleRate::new(per_record[0] as f64 / duration).unwrap();
    (rate, labels, interleave(&channels))
}

fn interleave(channels: &[Vec<f64>]) -> Vec<f64> {
    (0..channels[0].len())
        .flat_map(|i| channels.iter().map(move |c| c[i]))
        .collect()
}

/// The rodent theta recording's int16 counts.
fn rodent_counts() -> Vec<i16> {
    std::fs::read(shared_data("rodent/hc2_theta_1000hz_int16.dat"))
        .unwrap()
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]))
        .collect()
}

/// The ripple preset made sensitive (low CUSUM drift, no theta gate, random
/// stim/sham) so that the real theta recording yields hundreds of events.
fn sensitive_ripple() -> Config {
    let text = include_str!("../src/presets/rodent-ripple.toml")
        .replace("cusum_drift = 14.0", "cusum_drift = 3.0")
        .replace(
            "[detector.state]\nenabled = true",
            "[detector.state]\nenabled = false",
        )
        .replace("mode = \"stim\"", "mode = \"random\"");
    Config::from_toml(&text, "sensitive ripple").unwrap()
}

/// One replay case: the file, its reference frames, the config.
struct Case {
    name: String,
    path: PathBuf,
    options: FileOptions,
    rate: SampleRate,
    labels: Vec<String>,
    frames: Vec<f64>,
    config: Config,
}

fn cases(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let edf_case = |name: &str, path: PathBuf, config: Config| {
        let (rate, labels, frames) = reference_edf(&path);
        Case {
            name: name.into(),
            path,
            options: FileOptions::default(),
            rate,
            labels,
            frames,
            config,
        }
    };
    for excerpt in 1..=6 {
        let path = shared_data(&format!("dreams/excerpt{excerpt}.edf"));
        for preset in [Preset::SleepSpindle, Preset::SleepClas] {
            let name = format!("DREAMS excerpt {excerpt} {preset:?}");
            cases.push(edf_case(&name, path.clone(), preset.config()));
        }
    }
    let rodent = shared_data("rodent/hc2_theta_1000hz.edf");
    cases.push(edf_case("rodent EDF", rodent.clone(), sensitive_ripple()));
    cases.push(edf_case(
        "rodent EDF spindle",
        rodent,
        Preset::SleepSpindle.config(),
    ));

    let counts = rodent_counts();
    let rate = SampleRate::new(1000.0).unwrap();
    cases.push(Case {
        name: "rodent raw .dat".into(),
        path: shared_data("rodent/hc2_theta_1000hz_int16.dat"),
        options: FileOptions {
            raw: Some(RawLayout {
                channels: 1,
                rate_hz: 1000.0,
                uv_per_bit: 0.5,
            }),
            ..FileOptions::default()
        },
        rate,
        labels: vec!["ch0".into()],
        frames: counts.iter().map(|&c| f64::from(c) * 0.5).collect(),
        config: sensitive_ripple(),
    });

    // Three channels of the rodent counts as a 16-bit WAV, read back by hound.
    let wav = dir.join("rodent.wav");
    let spec = hound::WavSpec {
        channels: 3,
        sample_rate: 1000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&wav, spec).unwrap();
    for &c in &counts {
        for sample in [c, c / 2, c.saturating_neg()] {
            writer.write_sample(sample).unwrap();
        }
    }
    writer.finalize().unwrap();
    let volts = 0.004;
    let frames = hound::WavReader::open(&wav)
        .unwrap()
        .samples::<i32>()
        .map(|s| f64::from(s.unwrap()) / 32768.0 * volts * 1e6)
        .collect();
    cases.push(Case {
        name: "rodent WAV".into(),
        path: wav,
        options: FileOptions {
            wav_volts_per_full_scale: volts,
            ..FileOptions::default()
        },
        rate,
        labels: (0..3).map(|c| format!("ch{c}")).collect(),
        frames,
        config: sensitive_ripple(),
    });

    // The shared structure.oebin at 1 kHz over the same three channels.
    let oebin_text = std::fs::read_to_string(shared_data(
        "formats/openephys_fileio_structure_v0.4.5.oebin",
    ))
    .unwrap()
    .replace("\"sample_rate\": \"30000\"", "\"sample_rate\": 1000");
    let oebin = dir.join("oe/structure.oebin");
    let stream = dir.join("oe/continuous/openephys-100.0");
    std::fs::create_dir_all(&stream).unwrap();
    std::fs::write(&oebin, oebin_text).unwrap();
    let bit_volts = [0.195, 3.74e-05, 0.000152588];
    let triples: Vec<[i16; 3]> = counts
        .iter()
        .map(|&c| [c, c / 2, c.saturating_neg()])
        .collect();
    let bytes: Vec<u8> = triples
        .iter()
        .flatten()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    std::fs::write(stream.join("continuous.dat"), bytes).unwrap();
    cases.push(Case {
        name: "rodent Open Ephys".into(),
        path: oebin,
        options: FileOptions::default(),
        rate,
        labels: vec!["CH1".into(), "AUX1".into(), "ADC1".into()],
        frames: triples
            .iter()
            .flat_map(|t| t.iter().zip(bit_volts).map(|(&c, v)| f64::from(c) * v))
            .collect(),
        config: sensitive_ripple(),
    });

    // The simulator's EDF output, both presets.
    for (preset, minutes, config) in [
        (SimPreset::RodentRipple, 2.0, Preset::RodentRipple.config()),
        (SimPreset::Sleep, 6.0, Preset::SleepSpindle.config()),
    ] {
        let rate = SampleRate::new(preset.default_rate_hz()).unwrap();
        let simulation = simulate(&SimSpec::new(preset, minutes * 60.0, 3, rate)).unwrap();
        let path = dir.join(format!("{preset}.edf"));
        io::edf::write_edf(&path, &simulation.recording).unwrap();
        cases.push(edf_case(&format!("simulated {preset}"), path, config));
    }
    cases
}

#[test]
fn streaming_replay_writes_the_events_of_the_whole_file_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = 0;
    for (index, case) in cases(dir.path()).into_iter().enumerate() {
        let mut streaming = open_reader(&case.path, &case.options).unwrap();
        assert_eq!(streaming.info().signals[0].rate, case.rate, "{}", case.name);
        let selection = streaming.info().select(&[]).unwrap();
        assert_eq!(selection.len(), case.labels.len(), "{}", case.name);
        let streamed = events_tsv(
            streaming.as_mut(),
            &case.config,
            &dir.path().join(format!("streamed-{index}")),
        );
        // Odd blocks, unlike any reader's, so that the driver's block handling is exercised too.
        let mut memory = MemoryReader::new(case.rate, &case.labels, case.frames, 997);
        let reference = events_tsv(
            &mut memory,
            &case.config,
            &dir.path().join(format!("reference-{index}")),
        );
        assert_eq!(streamed, reference, "{}", case.name);
        rows += streamed.lines().count() - 1;
    }
    assert!(
        rows > 5000,
        "only {rows} events: the comparison means little"
    );
}

/// Everything a reader returns for its default selection, read with buffers
/// of `next_frames()` frames.
fn read_all(
    path: &Path,
    options: &FileOptions,
    mut next_frames: impl FnMut() -> usize,
) -> (Vec<(u64, f64)>, u64) {
    let mut reader = open_reader(path, options).unwrap();
    let channels = reader.selection().len();
    let mut values = Vec::new();
    let mut blocks = 0;
    loop {
        let mut buf = vec![0.0; next_frames() * channels];
        let Some(block) = reader.read_block(&mut buf).unwrap() else {
            break;
        };
        assert!(block.frames >= 1 && block.frames * channels <= buf.len());
        blocks += 1;
        for (frame, chunk) in buf[..block.frames * channels]
            .chunks_exact(channels)
            .enumerate()
        {
            values.extend(chunk.iter().map(|&v| (block.start + frame as u64, v)));
        }
    }
    (values, blocks)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Whatever buffer sizes the caller passes, every reader returns the same
    /// samples at the same sample indices.
    #[test]
    fn blocks_do_not_depend_on_the_buffer_size(seed in any::<u64>(), largest in 1usize..5000) {
        let raw = FileOptions {
            raw: Some(RawLayout { channels: 2, rate_hz: 500.0, uv_per_bit: 0.1 }),
            ..FileOptions::default()
        };
        for (file, options) in [
            ("formats/pyedflib_test_generator.edf", FileOptions::default()),
            ("formats/pyedflib_test_generator.bdf", FileOptions::default()),
            ("formats/edfio_test_subsecond.edf", FileOptions::default()),
            ("dreams/excerpt6.edf", FileOptions::default()),
            ("rodent/hc2_theta_1000hz_int16.dat", raw),
        ] {
            let path = shared_data(file);
            let (reference, _) = read_all(&path, &options, || 4096);
            let mut rng = Rng::new(seed);
            let (values, _) = read_all(&path, &options, || 1 + (rng.uniform() * largest as f64) as usize);
            prop_assert!(values == reference, "{}", file);
        }
    }
}

/// An EDF header for `channels` signals of `rate_hz` in 1-s records, `records`
/// of them, each signal ±1000 µV over the full 16-bit range.
fn edf_header(channels: usize, rate_hz: usize, records: usize) -> Vec<u8> {
    let mut header = Vec::new();
    let mut field = |text: &str, width: usize| {
        header.extend(format!("{text:<width$}").bytes().take(width));
    };
    field("0", 8);
    field("X", 80);
    field("sparse", 80);
    field("01.01.85", 8);
    field("00.00.00", 8);
    field(&(256 * (channels + 1)).to_string(), 8);
    field("", 44);
    field(&records.to_string(), 8);
    field("1", 8);
    field(&channels.to_string(), 4);
    for channel in 0..channels {
        field(&format!("CA1-{channel}"), 16);
    }
    for (text, width) in [
        ("", 80),
        ("uV", 8),
        ("-1000", 8),
        ("1000", 8),
        ("-32768", 8),
        ("32767", 8),
        ("", 80),
        (&rate_hz.to_string(), 8),
        ("", 32),
    ] {
        for _ in 0..channels {
            field(text, width);
        }
    }
    header
}

/// A sparse EDF (a real header, then zeros the file system does not store).
fn sparse_edf(path: &Path, channels: usize, rate_hz: usize, seconds: usize) {
    let header = edf_header(channels, rate_hz, seconds);
    std::fs::write(path, &header).unwrap();
    let length = header.len() + seconds * channels * rate_hz * 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(length as u64))
        .unwrap();
}

#[test]
fn replay_memory_does_not_grow_with_the_recording_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Preset::RodentRipple.config();
    // The cheapest detector, probing every 20 s: the readers and the driver
    // are what is measured (the session writer keeps each event's row until
    // it sorts them at the end, a few bytes per event, not per sample).
    config.detector = DetectorConfig::LatencyProbe(LatencyProbeConfig {
        channel: 0,
        interval_ms: 20_000.0,
        threshold_uv: 100.0,
        timeout_ms: 200.0,
    });
    let mut peaks = Vec::new();
    for minutes in [1, 10] {
        let path = dir.path().join(format!("{minutes}min.edf"));
        sparse_edf(&path, 8, 30_000, minutes * 60);
        let session = dir.path().join(format!("session-{minutes}"));
        let ((), peak) = peak_bytes(|| {
            let mut reader = open_reader(&path, &FileOptions::default()).unwrap();
            replay(reader.as_mut(), &config, &session);
        });
        let rows = std::fs::read_to_string(session.join("events.tsv"))
            .unwrap()
            .lines()
            .count();
        assert!(rows > minutes, "{minutes} min: {rows} rows");
        peaks.push(peak);
    }
    // Ten times the length: the same buffers (a few bytes of text may differ).
    assert!(
        (peaks[1] - peaks[0]).abs() < 64 * 1024,
        "peak bytes held: {peaks:?}"
    );
    assert!(peaks[1] < 16 << 20, "peak bytes held: {peaks:?}");
}

#[test]
fn readers_hold_fixed_buffers_whatever_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    // 1 h of 32 channels at 30 kHz: 6.9 GB that the file system does not store.
    let edf = dir.path().join("hour.edf");
    sparse_edf(&edf, 32, 30_000, 3600);
    let dat = dir.path().join("hour.dat");
    std::fs::File::create(&dat)
        .and_then(|f| f.set_len(3600 * 30_000 * 32 * 2))
        .unwrap();
    let raw = FileOptions {
        raw: Some(RawLayout {
            channels: 32,
            rate_hz: 30_000.0,
            uv_per_bit: 0.195,
        }),
        ..FileOptions::default()
    };
    for (path, options) in [(edf, FileOptions::default()), (dat, raw)] {
        let (frames, peak) = peak_bytes(|| {
            let mut reader = open_reader(&path, &options).unwrap();
            let mut buf = vec![0.0; 4096 * 32];
            let mut frames = 0;
            for _ in 0..100 {
                frames += reader.read_block(&mut buf).unwrap().unwrap().frames;
            }
            frames
        });
        assert_eq!(frames, 409_600, "{}", path.display());
        // The caller's buffer (1 MiB) plus the reader's chunk (1 MiB) and header.
        assert!(peak < 4 << 20, "{}: {peak} bytes", path.display());
    }
}

/// A reader that fails after `good` blocks, as a file cut while it is read does.
struct FailingReader {
    inner: MemoryReader,
    good: usize,
}

impl SignalReader for FailingReader {
    fn info(&self) -> &SourceInfo {
        self.inner.info()
    }
    fn select(&mut self, signals: &[usize]) -> Result<(), FileError> {
        self.inner.select(signals)
    }
    fn selection(&self) -> &[usize] {
        self.inner.selection()
    }
    fn read_block(&mut self, buf: &mut [f64]) -> Result<Option<BlockMeta>, FileError> {
        if self.good == 0 {
            return Err(FileError::Io {
                path: PathBuf::from("cut.edf"),
                action: "read",
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "cut"),
            });
        }
        self.good -= 1;
        self.inner.read_block(buf)
    }
}

#[test]
fn a_read_error_part_way_ends_the_session_like_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (rate, labels, frames) = reference_edf(&shared_data("dreams/excerpt1.edf"));
    let mut source = FailingReader {
        inner: MemoryReader::new(rate, &labels, frames, 1000),
        good: 100,
    };
    let out = dir.path().join("session");
    let input = SessionInput {
        source: &mut source,
        description: "cut".into(),
        stim_allowed: None,
    };
    let stop = AtomicBool::new(false);
    let config = Preset::SleepSpindle.config();
    let error = run_session(
        "replay",
        input,
        &config,
        &out,
        Pacing::AsFastAsPossible,
        &stop,
        |_| {},
    )
    .expect_err("the read fails");
    assert!(
        matches!(error, SessionRunError::InputFailed { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("cut.edf"), "{error}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "error");
    // 100 blocks of the driver's size (smaller than the reader's 1000 frames) got through.
    assert_eq!(summary["samples"], 100 * config.input.block_size);
    assert!(out.join("events.partial.tsv").exists());
    assert!(
        !out.join("events.tsv").exists(),
        "a cut session must not look complete"
    );
}
