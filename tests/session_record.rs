//! A live session is a complete, trustworthy record: no stimulus is ever
//! delivered that is not in its event log (tested on a disk that fills up
//! mid-session), and losing an output is noticed even when no stim is due.

mod replay;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use neuroloop::config::{Config, Preset, TriggerMode};
use neuroloop::device::pulsepal::emulator::PulsePalEmulator;
use neuroloop::device::pulsepal::PulsePalConfig;
use neuroloop::device::{self, DeviceError, OutputConfig};
use neuroloop::runtime::{self, Ending, LiveReport, LiveSpec};
use neuroloop::sim::{simulate, Preset as SimPreset, SimSpec};
use neuroloop::time::SampleRate;
use summary::read_summary;

/// A tmpfs of `bytes` mounted on a fresh folder, unmounted on drop. Needs
/// root (CI runs as root); a machine that refuses the mount fails the test
/// with the reason, since a full disk cannot be faked otherwise.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("cannot run mount");
        assert!(
            status.success(),
            "mounting a {bytes}-byte tmpfs failed ({status}): this test needs root to fill a disk"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

fn rig(pulse_pal: &Path, check_period_ms: f64) -> Config {
    let mut config = Preset::RodentRipple.config();
    config.trigger.mode = TriggerMode::Stim;
    config.outputs = vec![OutputConfig::PulsePal(PulsePalConfig {
        port: pulse_pal.display().to_string(),
        channel: 1,
        volts: 5.0,
        write_timeout_ms: 50.0,
        check_period_ms,
    })];
    config.validate().unwrap();
    config
}

/// The rodent simulator served as a live source at `speed` × real time.
fn run_simulated(config: &Config, seconds: f64, speed: f64, out: &Path) -> LiveReport {
    let rate = SampleRate::new(config.simulator.rate_hz).unwrap();
    let spec = SimSpec::new(
        SimPreset::RodentRipple,
        seconds,
        config.simulator.seed,
        rate,
    );
    let sim = simulate(&spec).unwrap();
    let opened = device::file::recording_source(
        &sim.recording,
        config.input.block_size,
        speed,
        "sim".into(),
    )
    .unwrap();
    let outputs =
        device::open_outputs(&config.outputs, config.trigger.pulse_ms, opened.rate).unwrap();
    runtime::run_live(
        LiveSpec {
            command: "test",
            config,
            opened,
            outputs,
            out,
            duration_s: Some(seconds),
            monitor: None,
        },
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap()
}

fn rows(path: &PathBuf) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "the log ends mid-row");
    text.lines().skip(1).map(str::to_string).collect()
}

/// The disk fills up mid-session, by the recording or (recording off) by
/// the event log itself: the session ends as a storage fault, outputs
/// disarmed, no trigger delivered that is not in the log, the summary kept.
#[test]
fn a_disk_that_fills_up_stops_stimulation_before_an_unlogged_stim() {
    for recording in [true, false] {
        // 256 pages hold the session's 1-MiB reserve, one the config, the
        // rest the event log (about 200 rows) and the recording (a second).
        let disk = SmallDisk::mount((1 << 20) + 5 * 4096);
        let out = disk.path().join("s");
        let pulse_pal = PulsePalEmulator::start().unwrap();
        let mut config = rig(&pulse_pal.path, 1000.0);
        config.recording.enabled = recording;
        let started = Instant::now();
        let report = run_simulated(&config, 900.0, 20.0, &out);
        let received = pulse_pal.finish().unwrap();
        let Ending::Storage(error) = &report.ending else {
            panic!(
                "recording {recording}: the session should end on the full disk: {:?}",
                report.ending
            )
        };
        assert!(error.contains("No space left"), "{error}");
        assert!(
            error.contains(if recording {
                "recording.bdf"
            } else {
                "events.partial.tsv"
            }),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the session ran on after the disk filled"
        );
        // Every delivered stimulus is in the log; the log's rows are whole.
        let rows = rows(&out.join("events.partial.tsv"));
        assert!(rows.iter().all(|r| r.split('\t').count() == 10));
        let logged_stims = rows
            .iter()
            .filter(|r| r.split('\t').nth(2) == Some("stim"))
            .count();
        if !recording {
            assert!(
                logged_stims > 10,
                "only {logged_stims} stims before the disk filled"
            );
        }
        assert!(
            received.triggers.len() <= logged_stims,
            "{} triggers delivered, {logged_stims} logged",
            received.triggers.len()
        );
        assert!(received.aborts >= 1, "the Pulse Pal was not disarmed");
        assert_eq!(report.events_logged, rows.len());
        // The reserve made room for the summary, which says what happened.
        let summary = read_summary(&out);
        assert_eq!(summary["status"], "error");
        assert!(summary["error"]
            .as_str()
            .unwrap()
            .contains("could not be recorded"));
        assert!(!out.join("events.tsv").exists());
        assert!(!out.join(".reserve").exists());
    }
}

#[test]
fn an_output_lost_while_idle_ends_the_session() {
    let pulse_pal = PulsePalEmulator::start().unwrap();
    let mut config = rig(&pulse_pal.path, 200.0);
    // Sham: decisions are logged, nothing is ever sent, so only the
    // presence check can notice the device is gone.
    config.trigger.mode = TriggerMode::Sham;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        pulse_pal.finish().unwrap()
    });
    let started = Instant::now();
    let report = run_simulated(&config, 60.0, 1.0, &out);
    let log = killer.join().unwrap();
    assert!(log.triggers.is_empty());
    assert!(log.handshakes >= 3, "{} handshakes", log.handshakes);
    assert!(
        matches!(
            &report.ending,
            Ending::Device(DeviceError::Disconnected {
                device: "pulse-pal",
                ..
            })
        ),
        "{:?}",
        report.ending
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the lost output was noticed only after {:?}",
        started.elapsed()
    );
    let summary = read_summary(&out);
    assert_eq!(summary["status"], "error");
    assert!(summary["error"].as_str().unwrap().contains("pulse-pal"));
}

/// Every source channel is recorded at the session's sample index, with the
/// session's events as annotations, in a BDF+ file other readers open.
#[test]
fn a_live_session_records_its_input_and_events() {
    let mut config = Preset::RodentRipple.config();
    config.trigger.mode = TriggerMode::Stim;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let report = run_simulated(&config, 60.0, 20.0, &out);
    assert_eq!(report.ending, Ending::Complete);
    let summary = read_summary(&out);
    let samples = summary["samples"].as_u64().unwrap();
    assert_eq!(summary["recording"]["counters"]["frames"], samples);
    assert_eq!(summary["recording"]["clipped_samples"], 0);
    let recording = neuroloop::io::edf::read_edf(&out.join("recording.bdf")).unwrap();
    let labels: Vec<&str> = recording.signals.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["CA1-0", "CA1-1", "CA1-2", "CA1-3"]);
    for signal in &recording.signals {
        assert!(signal.samples.len() as u64 >= samples);
        assert!(signal.samples[..samples as usize]
            .iter()
            .all(|x| x.abs() < 2000.0));
    }
    // Each stim of events.tsv is an annotation at its onset.
    let events = std::fs::read_to_string(out.join("events.tsv")).unwrap();
    let stims: Vec<f64> = events
        .lines()
        .filter(|l| l.split('\t').nth(2) == Some("stim"))
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    let annotated: Vec<f64> = recording
        .annotations
        .iter()
        .filter(|a| a.text == "stim")
        .map(|a| a.onset_s)
        .collect();
    assert!(stims.len() >= 10, "{} stims", stims.len());
    assert_eq!(annotated, stims);
    let end = recording
        .annotations
        .iter()
        .find(|a| a.text == "end")
        .unwrap();
    assert_eq!(end.onset_s, samples as f64 / 1250.0);
    replay::assert_replay_reproduces(&out);
}
