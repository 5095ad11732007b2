//! Lab Streaming Layer in and out, on loopback: a pylsl outlet
//! (`tests/lsl/peer.py`) stands in for an amplifier, `neuroloop run` reads it
//! as `[source] kind = "lsl"` and sends its events back as markers, which the
//! same script receives. Every process gets `LSLAPICFG` = `tests/lsl/lsl_api.cfg`
//! (machine scope, IPv4 on 127.0.0.1 only), so no packet leaves the machine.
//! Needs python3 with pylsl 1.18.6 (tests/run-all.sh installs it).

mod replay;
mod summary;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

use neuroloop::config::{Config, Preset, TriggerMode};
use neuroloop::device::lsl::{LslMarkersConfig, LslSourceConfig};
use neuroloop::device::pulsepal::emulator::PulsePalEmulator;
use neuroloop::device::pulsepal::PulsePalConfig;
use neuroloop::device::{OutputConfig, SourceConfig};
use summary::read_summary;

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `command` with the loopback-only LSL settings.
fn on_loopback(mut command: Command) -> Command {
    command.env("LSLAPICFG", manifest("tests/lsl/lsl_api.cfg"));
    command
}

/// A stream name no other test (or run) uses.
fn unique(what: &str) -> String {
    format!("nl-{what}-{}", std::process::id())
}

/// Held by each test while it runs: the sessions stream faster than real
/// time, and side by side on a small shared machine they fell behind liblsl's
/// inlet buffer (the oldest samples dropped: a gap the test then reports).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether python3 has pylsl. Without it the tests skip, loudly, unless
/// `NEUROLOOP_REQUIRE_LSL` is set (tests/run-all.sh sets it: in CI they run).
fn lsl_available() -> bool {
    let has_pylsl = Command::new("python3")
        .args(["-c", "import pylsl"])
        .status()
        .is_ok_and(|s| s.success());
    let message = "python3 with pylsl (which ships liblsl) is missing: \
                   pip install pylsl==1.18.6 (tests/run-all.sh does)";
    if !has_pylsl && std::env::var_os("NEUROLOOP_REQUIRE_LSL").is_some() {
        panic!("{message}");
    }
    if !has_pylsl {
        eprintln!("\n!!!!!!!!!! SKIPPED: LSL TEST NOT RUN: {message} !!!!!!!!!!\n");
    }
    has_pylsl
}

/// A running `peer.py`; killed if the test ends first.
struct Peer {
    child: Child,
    report: PathBuf,
}

impl Peer {
    fn start(dir: &Path, args: &[&str]) -> Peer {
        let report = dir.join(format!("peer-{}.json", args.join("-").len()));
        let mut command = on_loopback(Command::new("python3"));
        let child = command
            .arg(manifest("tests/lsl/peer.py"))
            .args(args)
            .arg("--report")
            .arg(&report)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Peer { child, report }
    }

    /// Wait for the script to end and read its report.
    fn finish(mut self) -> serde_json::Value {
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(status.success(), "peer.py failed: {stderr}");
        serde_json::from_str(&std::fs::read_to_string(&self.report).unwrap()).unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn neuroloop(args: &[&str]) -> Output {
    let mut command = on_loopback(Command::new(env!("CARGO_BIN_EXE_neuroloop")));
    command.args(args).output().unwrap()
}

/// `neuroloop run` of `config` for `seconds` into `out`.
fn run_session(config: &Path, seconds: &str, out: &Path) -> Output {
    neuroloop(&[
        "run",
        "--config",
        p(config),
        "--duration-s",
        seconds,
        "--out",
        p(out),
    ])
}

/// `sleep-spindle` stimulating on the emulated Pulse Pal, reading `source`.
fn stim_config(source: LslSourceConfig, pulse_pal: &PulsePalEmulator) -> Config {
    let mut config = Preset::SleepSpindle.config();
    config.trigger.mode = TriggerMode::Stim;
    config.source = SourceConfig::Lsl(source);
    config.outputs = vec![OutputConfig::PulsePal(PulsePalConfig {
        port: p(&pulse_pal.path).into(),
        channel: 1,
        volts: 5.0,
        write_timeout_ms: 50.0,
        check_period_ms: 1000.0,
    })];
    config
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn lsl_source(name: &str) -> LslSourceConfig {
    let mut c: LslSourceConfig = toml::from_str(&format!("name = \"{name}\"")).unwrap();
    // The peer starts streaming only once it has found the marker stream.
    c.stall_ms = 5000.0;
    c
}

fn write_config(dir: &Path, config: &Config) -> PathBuf {
    config.validate().unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    path
}

/// `(trial_type, sample)` of every row of an events table, sorted.
fn event_keys(events: &str) -> Vec<(String, u64)> {
    let mut keys: Vec<(String, u64)> = events
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[2].to_string(), cols[3].parse().unwrap())
        })
        .collect();
    keys.sort();
    keys
}

/// A marker's `key=value` field.
fn field(marker: &str, key: &str) -> Option<u64> {
    marker
        .split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.parse().unwrap())
}

/// The first `seconds` of a DREAMS EDF: its header (record count patched)
/// and its first records, byte for byte.
fn cut_edf(from: &Path, seconds: usize, to: &Path) {
    let bytes = std::fs::read(from).unwrap();
    let header = |at: usize, len: usize| -> usize {
        std::str::from_utf8(&bytes[at..at + len])
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let header_bytes = header(184, 8);
    let signals = header(252, 4);
    assert_eq!(signals, 1, "a one-signal excerpt");
    let record_s: f64 = std::str::from_utf8(&bytes[244..252])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(record_s, 1.0);
    let samples_per_record = header(256 + signals * 216, 8);
    let end = header_bytes + seconds * samples_per_record * 2;
    let mut cut = bytes[..end].to_vec();
    cut[236..244].copy_from_slice(format!("{seconds:<8}").as_bytes());
    std::fs::write(to, cut).unwrap();
}

/// DREAMS excerpt 1 (first 600 s) streamed over LSL at 30× real time, with
/// timestamps at its nominal 100 Hz: the live session decides exactly as the
/// offline replay of the same samples does and as the replay of its own
/// recording does; every event reaches a pylsl inlet as a marker, and each
/// stim's marker carries the time the outputs scheduled it for.
#[test]
fn dreams_over_lsl_decides_like_the_file_and_sends_every_event_as_a_marker() {
    if !lsl_available() {
        return;
    }
    let _serial = one_at_a_time();
    const SECONDS: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let excerpt = dir.path().join("excerpt1-600s.edf");
    cut_edf(
        &manifest("../shared/data/dreams/excerpt1.edf"),
        SECONDS,
        &excerpt,
    );
    // The samples as neuroloop decodes them, exactly, for the outlet.
    let recording = neuroloop::io::read_recording(&excerpt, &Default::default()).unwrap();
    let samples = &recording.signals[0].samples;
    let label = recording.signals[0].label.clone();
    assert_eq!(samples.len(), SECONDS * 100);
    let f64_path = dir.path().join("samples.f64");
    // Five seconds more than the session takes, so the stream outlives it.
    let tail = &samples[..5 * 100];
    let bytes: Vec<u8> = samples
        .iter()
        .chain(tail)
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::write(&f64_path, bytes).unwrap();

    let (stream, markers) = (unique("dreams"), unique("dreams-markers"));
    let pulse_pal = PulsePalEmulator::start().unwrap();
    let mut source = lsl_source(&stream);
    source.rate_hz = Some(100.0);
    source.channel_count = Some(1);
    source.range_uv = 1000.0;
    let mut config = stim_config(source, &pulse_pal);
    config.lsl_markers = Some(LslMarkersConfig {
        name: markers.clone(),
        source_id: markers.clone(),
    });
    let config_path = write_config(dir.path(), &config);

    let peer = Peer::start(
        dir.path(),
        &[
            "--name",
            &stream,
            "--rate",
            "100",
            "--channels",
            "1",
            "--format",
            "double64",
            "--samples",
            p(&f64_path),
            "--labels",
            &label,
            "--speed",
            "30",
            "--chunk",
            "10",
            "--markers",
            &markers,
        ],
    );
    let live = dir.path().join("live");
    let run = run_session(&config_path, &SECONDS.to_string(), &live);
    assert!(run.status.success(), "{}", text(&run));
    let report = peer.finish();
    let pp = pulse_pal.finish().unwrap();

    let s = read_summary(&live);
    assert_eq!(s["status"], "complete");
    assert_eq!(s["samples"], SECONDS * 100);
    assert_eq!(s["source"]["gaps"], 0, "{}", s["source"]);
    assert_eq!(s["source"]["timestamps_backwards"], 0);
    assert_eq!(s["controller"]["dropped_frames"], 0);

    // The same samples offline: the same events, row for row.
    let offline = dir.path().join("offline");
    let replayed = neuroloop(&[
        "replay",
        p(&excerpt),
        "--config",
        p(&config_path),
        "--out",
        p(&offline),
    ]);
    assert!(replayed.status.success(), "{}", text(&replayed));
    let live_events = std::fs::read_to_string(live.join("events.tsv")).unwrap();
    let offline_events = std::fs::read_to_string(offline.join("events.tsv")).unwrap();
    assert_eq!(live_events, offline_events);
    // And the live session's own recording replays to the same decisions.
    replay::assert_replay_reproduces(&live);

    // Every event is a marker; every stim reached the Pulse Pal.
    let keys = event_keys(&live_events);
    let stims = keys.iter().filter(|(t, _)| t == "stim").count();
    assert!(stims >= 10, "too few stims to check: {keys:?}");
    assert_eq!(pp.triggers.len(), stims);
    assert_eq!(report["marker_stream_ended"], true);
    let received = report["markers"].as_array().unwrap();
    let mut marker_keys: Vec<(String, u64)> = received
        .iter()
        .map(|m| {
            let text = m[2].as_str().unwrap();
            let trial_type = text.split(' ').next().unwrap().to_string();
            (trial_type, field(text, "sample").unwrap())
        })
        .collect();
    marker_keys.sort();
    assert_eq!(marker_keys, keys);
    assert_eq!(s["lsl_markers"]["markers_sent"], keys.len());

    // A stim's marker is stamped with its scheduled time on the LSL clock:
    // latency.tsv's arrival of the deciding sample plus the delay to its onset.
    let start = s["lsl_markers"]["session_start_lsl_s"].as_f64().unwrap();
    let correction = report["time_correction"].as_f64().unwrap();
    let latency = std::fs::read_to_string(live.join("latency.tsv")).unwrap();
    let mut worst_us: f64 = 0.0;
    for row in latency.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (decided, onset): (u64, u64) = (cols[0].parse().unwrap(), cols[1].parse().unwrap());
        let arrived_s: f64 = cols[3].parse().unwrap();
        let scheduled = start + arrived_s + (onset - decided) as f64 / 100.0;
        let marker = received
            .iter()
            .find(|m| {
                let text = m[2].as_str().unwrap();
                text.starts_with("stim ") && field(text, "decided") == Some(decided)
            })
            .unwrap_or_else(|| panic!("no marker for the stim decided at {decided}"));
        let stamped = marker[1].as_f64().unwrap() + correction;
        worst_us = worst_us.max((stamped - scheduled).abs() * 1e6);
    }
    eprintln!("{stims} stims: marker timestamp vs scheduled time, worst {worst_us:.1} µs");
    assert!(worst_us < 1000.0, "{worst_us} µs");
}

/// The amplifier's stream vanishes mid-session (its process exits without a
/// goodbye): a device fault; the outputs are disarmed before anything is
/// flushed and the session folder is written, marked as an error.
#[test]
fn a_vanishing_stream_is_a_device_fault_that_disarms_first() {
    if !lsl_available() {
        return;
    }
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let stream = unique("vanish");
    let pulse_pal = PulsePalEmulator::start().unwrap();
    let mut source = lsl_source(&stream);
    source.stall_ms = 300.0;
    let config = stim_config(source, &pulse_pal);
    let config_path = write_config(dir.path(), &config);
    let peer = Peer::start(
        dir.path(),
        &[
            "--name",
            &stream,
            "--rate",
            "250",
            "--channels",
            "2",
            "--seconds",
            "60",
            "--chunk",
            "5",
            "--vanish-at",
            "500",
        ],
    );
    let out = dir.path().join("s");
    let run = run_session(&config_path, "30", &out);
    drop(peer);
    assert!(!run.status.success(), "{}", text(&run));
    let s = read_summary(&out);
    assert_eq!(s["status"], "error", "{s}");
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("lsl"), "{error}");
    assert_eq!(s["runtime"]["outputs_disarmed_before_flush"], true);
    let samples = s["samples"].as_u64().unwrap();
    assert!((1..=505).contains(&samples), "{samples}");
    assert_eq!(s["source"]["frames"], samples, "{}", s["source"]);
    assert!(out.join("events.partial.tsv").exists() && out.join("config.toml").exists());
    assert!(
        pulse_pal.finish().unwrap().aborts >= 1,
        "Pulse Pal disarmed"
    );
}

/// The `p`-th percentile (0–100) of `values`, nearest rank.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Source → decision latency over the LSL transport on loopback, 500 Hz ×
/// 32 channels pushed one sample at a time: for every stim, from the peer's
/// push of the deciding sample (its LSL clock) to the command written to the
/// Pulse Pal (neuroloop's clock mapped onto the LSL clock). Figures are
/// printed for docs/performance.md, not asserted (no wall-clock thresholds).
#[test]
fn lsl_source_to_decision_latency_at_500_hz_by_32_channels() {
    if !lsl_available() {
        return;
    }
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let stream = unique("latency");
    let pulse_pal = PulsePalEmulator::start().unwrap();
    let mut source = lsl_source(&stream);
    source.rate_hz = Some(500.0);
    source.channel_count = Some(32);
    let mut config = stim_config(source, &pulse_pal);
    config.lsl_markers = Some(LslMarkersConfig {
        name: unique("latency-markers"),
        source_id: unique("latency-markers"),
    });
    let config_path = write_config(dir.path(), &config);
    // DREAMS excerpt 1's first 400 s, linearly interpolated from 100 to
    // 500 Hz, on all 32 channels: pushed at 20× real time up to 340 s (the
    // detector's history), then at real time, where spindles abound.
    const SECONDS: usize = 400;
    const REALTIME_FROM: usize = 340 * 500;
    let recording = neuroloop::io::read_recording(
        &manifest("../shared/data/dreams/excerpt1.edf"),
        &Default::default(),
    )
    .unwrap();
    let samples = &recording.signals[0].samples[..(SECONDS + 2) * 100];
    let mut bytes = Vec::with_capacity((SECONDS + 1) * 500 * 32 * 8);
    for pair in samples.windows(2) {
        for k in 0..5 {
            let x = pair[0] + (pair[1] - pair[0]) * k as f64 / 5.0;
            for _ in 0..32 {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    let f64_path = dir.path().join("samples.f64");
    std::fs::write(&f64_path, bytes).unwrap();
    let peer = Peer::start(
        dir.path(),
        &[
            "--name",
            &stream,
            "--rate",
            "500",
            "--channels",
            "32",
            "--samples",
            p(&f64_path),
            "--chunk",
            "1",
            "--speed",
            "20",
            "--realtime-from",
            &REALTIME_FROM.to_string(),
        ],
    );
    let out = dir.path().join("s");
    let run = run_session(&config_path, &SECONDS.to_string(), &out);
    assert!(run.status.success(), "{}", text(&run));
    let report = peer.finish();
    let pp = pulse_pal.finish().unwrap();
    let s = read_summary(&out);
    assert_eq!(s["status"], "complete");
    assert_eq!(s["source"]["gaps"], 0, "{}", s["source"]);
    assert_eq!(s["controller"]["dropped_frames"], 0);

    let pushes = report["pushes"].as_array().unwrap();
    // The marker outlet reports where the session's clock sits on the LSL clock.
    let start = s["lsl_markers"]["session_start_lsl_s"].as_f64().unwrap();
    let latency = std::fs::read_to_string(out.join("latency.tsv")).unwrap();
    assert_eq!(pp.triggers.len(), latency.lines().count() - 1);
    let (mut total_ms, mut transport_ms) = (Vec::new(), Vec::new());
    for row in latency.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let decided: usize = cols[0].parse().unwrap();
        // Only stims decided once the backlog of the fast part has drained.
        if decided < REALTIME_FROM + 500 {
            continue;
        }
        let (arrived_s, written_s): (f64, f64) =
            (cols[3].parse().unwrap(), cols[4].parse().unwrap());
        assert_eq!(
            pushes[decided][0].as_u64(),
            Some(decided as u64),
            "one push per sample"
        );
        let pushed = pushes[decided][1].as_f64().unwrap();
        total_ms.push((start + written_s - pushed) * 1e3);
        transport_ms.push((start + arrived_s - pushed) * 1e3);
    }
    let stims = total_ms.len();
    assert!(
        stims >= 4,
        "too few stims to measure: {stims}\n{}\n{s}",
        std::fs::read_to_string(out.join("events.tsv")).unwrap()
    );
    assert!(
        total_ms.iter().all(|&ms| ms > 0.0),
        "causality: {total_ms:?}"
    );
    eprintln!(
        "LSL 500 Hz x 32 ch, {stims} stims: push->command p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; \
         push->arrival p99 {:.3} ms; summary latency {}",
        percentile(&mut total_ms, 50.0),
        percentile(&mut total_ms, 99.0),
        percentile(&mut total_ms, 100.0),
        percentile(&mut transport_ms, 99.0),
        s["latency"],
    );
}

/// Bad input from the stream: text offered as EEG is refused at start;
/// timestamps that go backwards or skip ahead are counted (a gap becomes
/// dropped frames), never resampled; a NaN sample is a clear fault.
#[test]
fn bad_streams_are_refused_counted_or_faulted() {
    if !lsl_available() {
        return;
    }
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let session = |what: &str, peer_args: &[&str], seconds: &str| {
        let stream = unique(what);
        let mut config = Preset::SleepSpindle.config();
        let mut source = lsl_source(&stream);
        source.stall_ms = 1000.0;
        config.source = SourceConfig::Lsl(source);
        let sub = dir.path().join(what);
        std::fs::create_dir(&sub).unwrap();
        let config_path = write_config(&sub, &config);
        let mut args = vec!["--name", &stream, "--rate", "250", "--channels", "4"];
        args.extend_from_slice(peer_args);
        let peer = Peer::start(&sub, &args);
        let out = sub.join("s");
        let run = run_session(&config_path, seconds, &out);
        drop(peer);
        (run, out)
    };

    let (run, _) = session("text", &["--seconds", "5", "--format", "string"], "2");
    assert!(!run.status.success());
    assert!(text(&run).contains("carries text"), "{}", text(&run));

    let (run, out) = session(
        "clock",
        &[
            "--seconds",
            "10",
            "--reset-at",
            "300",
            "--gap-at",
            "500",
            "--gap-frames",
            "3",
        ],
        "4",
    );
    assert!(run.status.success(), "{}", text(&run));
    let s = read_summary(&out);
    assert_eq!(s["source"]["timestamps_backwards"], 1, "{}", s["source"]);
    assert_eq!(s["source"]["gaps"], 1);
    assert_eq!(s["source"]["gap_frames"], 3);
    assert_eq!(s["controller"]["dropped_frames"], 3);
    assert_eq!(s["samples"], 1000);

    let (run, out) = session("nan", &["--seconds", "10", "--nan-at", "400"], "4");
    assert!(!run.status.success());
    let s = read_summary(&out);
    assert_eq!(s["status"], "error");
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("non-finite") && error.contains("sample 400"),
        "{error}"
    );
    assert_eq!(s["runtime"]["outputs_disarmed_before_flush"], true);
}
