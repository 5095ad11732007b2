//! The command line end to end: simulate → replay → eval on both presets and on
//! a real DREAMS recording, and every kind of bad input refused with a one-line
//! error, a non-zero exit and no complete-looking output.

mod common;
mod files;
mod summary;

use std::path::Path;
use std::process::{Command, Output};

use common::LiveRun;
use files::shared_data;
use neuroloop::config::Preset;
use neuroloop::controller::Controller;
use neuroloop::time::SampleRate;
use summary::read_summary;

fn neuroloop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_neuroloop"))
        .args(args)
        .output()
        .expect("neuroloop runs")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Bad input: non-zero exit, exactly one line on stderr containing every `needle`.
fn refused(output: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "accepted; stderr: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "not one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

fn score(eval_stdout: &str) -> serde_json::Value {
    serde_json::from_str(eval_stdout).expect("eval prints JSON")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `simulate` with `sim_args`, `replay` its recording with `replay_args`,
/// `eval` against its truth; returns the session summary and the scores.
fn simulate_replay_eval(
    sim_args: &[&str],
    replay_args: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let session = dir.path().join("session");
    ok(&neuroloop(
        &[&["simulate", "--out", p(&sim)], sim_args].concat(),
    ));
    let edf = sim.join("recording.edf");
    ok(&neuroloop(
        &[&["replay", p(&edf), "--out", p(&session)], replay_args].concat(),
    ));
    for file in ["events.tsv", "summary.json", "config.toml"] {
        assert!(session.join(file).exists(), "{file} missing");
    }
    let truth = sim.join("truth.tsv");
    let events = session.join("events.tsv");
    let out = ok(&neuroloop(&[
        "eval",
        "--truth",
        p(&truth),
        "--events",
        p(&events),
    ]));
    (read_summary(&session), score(&out))
}

#[test]
fn rodent_simulate_replay_eval() {
    let (summary, s) = simulate_replay_eval(
        &["--preset", "rodent-ripple", "--minutes", "3", "--seed", "3"],
        &["--preset", "rodent-ripple"],
    );
    assert_eq!(summary["status"], "complete");
    assert!((summary["duration_s"].as_f64().unwrap() - 180.0).abs() < 1e-6);
    assert_eq!(s["scored"], "ripple");
    assert!(
        s["score"]["detection"]["truth"].as_u64().unwrap() > 20,
        "{s}"
    );
    // Measured 0.927 (P 0.981, R 0.879, 58 ripples) on 2026-12-01.
    assert!(
        s["score"]["detection"]["f1"].as_f64().unwrap() > 0.88,
        "{s}"
    );
}

#[test]
fn sleep_simulate_replay_eval() {
    let (summary, s) = simulate_replay_eval(
        &["--preset", "sleep", "--minutes", "10", "--rate", "200"],
        &["--preset", "sleep-spindle", "--channel", "C3-A2"],
    );
    assert_eq!(summary["status"], "complete");
    assert_eq!(summary["channels"], serde_json::json!(["C3-A2"]));
    assert_eq!(s["scored"], "spindle");
    assert!(
        s["score"]["detection"]["truth"].as_u64().unwrap() > 10,
        "{s}"
    );
    // Measured 0.707 (final labels) and 0.630 (every commit, P 1.0 R 0.46)
    // on 2026-12-01; the closed-loop figure is what a stimulating rig gets.
    assert!(
        s["score"]["detection"]["f1"].as_f64().unwrap() > 0.65,
        "{s}"
    );
    let commits = &s["score"]["closed_loop"]["commits"];
    assert!(commits["f1"].as_f64().unwrap() > 0.58, "{s}");
}

/// A band edge past this recording's Nyquist frequency is lowered where the
/// user sees it: a warning and the summary, never silently.
#[test]
fn a_lowered_band_edge_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ex3");
    let output = neuroloop(&[
        "replay",
        p(&shared_data("dreams/excerpt3.edf")),
        "--preset",
        "sleep-spindle",
        "--out",
        p(&out),
    ]);
    ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: detector.broad_high_hz = 30 Hz"),
        "{stderr}"
    );
    let adjustments = read_summary(&out)["adjustments"].clone();
    assert_eq!(adjustments.as_array().unwrap().len(), 1, "{adjustments}");
    assert!(adjustments[0].as_str().unwrap().contains("22.5 Hz is used"));
}

#[test]
fn dreams_excerpt1_replay_eval() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session");
    ok(&neuroloop(&[
        "replay",
        p(&shared_data("dreams/excerpt1.edf")),
        "--preset",
        "sleep-spindle",
        "--out",
        p(&session),
    ]));
    let out = ok(&neuroloop(&[
        "eval",
        "--truth",
        p(&shared_data("dreams/Visual_scoring1_excerpt1.txt")),
        "--truth",
        p(&shared_data("dreams/Visual_scoring2_excerpt1.txt")),
        "--events",
        p(&session.join("events.tsv")),
        "--until-s",
        "1000",
    ]));
    let s = score(&out);
    assert!(
        s["score"]["detection"]["truth"].as_u64().unwrap() > 40,
        "{out}"
    );
    assert!(
        s["score"]["detection"]["detected"].as_u64().unwrap() > 10,
        "{out}"
    );
}

/// The reader's errors themselves are pinned in tests/file_formats.rs; here
/// one of them reaches the user as one line, with no session written.
#[test]
fn a_bad_file_is_refused_with_one_line_and_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(shared_data("dreams/excerpt1.edf")).unwrap();
    let path = dir.path().join("truncated.edf");
    std::fs::write(&path, &original[..original.len() / 2]).unwrap();
    let out = dir.path().join("out");
    refused(
        &neuroloop(&[
            "replay",
            p(&path),
            "--preset",
            "sleep-spindle",
            "--out",
            p(&out),
        ]),
        &["truncated.edf", "truncated"],
    );
    assert!(!out.join("events.tsv").exists(), "complete-looking output");
}

/// excerpt1.edf with the ASCII header field at `offset` set to `value`.
fn excerpt1_with(offset: usize, width: usize, value: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(shared_data("dreams/excerpt1.edf")).unwrap();
    bytes[offset..offset + width].copy_from_slice(format!("{value:<width$}").as_bytes());
    bytes
}

/// Untrusted headers: a 1e-300 s record panicked in detector setup, 1e-9 s
/// aborted on a 480 GB allocation, 99999999 samples a record gave an error
/// about `detector.sigma_high_hz` naming neither the file nor the field; two
/// declared records of 1800 were processed as a complete 2-s session.
#[test]
fn corrupt_headers_are_refused_naming_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (name, bytes, needles) in [
        (
            "tiny_record.edf",
            excerpt1_with(244, 8, "1e-300"),
            [
                "tiny_record.edf",
                "\"duration of a data record\" (1e-300 s)",
            ],
        ),
        (
            "nano_record.edf",
            excerpt1_with(244, 8, "1e-9"),
            ["nano_record.edf", "\"duration of a data record\" (1e-9 s)"],
        ),
        (
            "fast.edf",
            excerpt1_with(256 + 216, 8, "99999999"),
            [
                "fast.edf",
                "\"number of samples in each data record\" (99999999)",
            ],
        ),
        (
            "two_records.edf",
            excerpt1_with(236, 8, "2"),
            ["two_records.edf", "holds 1800 complete record(s)"],
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        refused(
            &neuroloop(&[
                "replay",
                p(&path),
                "--preset",
                "sleep-spindle",
                "--out",
                p(&out),
            ]),
            &needles,
        );
        assert!(
            !out.exists(),
            "{name}: a refused file must leave no session"
        );
    }
}

#[test]
fn a_fifo_is_refused_instead_of_blocking_forever() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("live.edf");
    let name = std::ffi::CString::new(p(&fifo)).unwrap();
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_neuroloop"))
        .args(["replay", p(&fifo), "--out", p(&dir.path().join("out"))])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A hang guard, not a timing requirement: the old reader never returned.
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() > 60 {
            let _ = child.kill();
            panic!("replay of a FIFO hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    refused(&child.wait_with_output().unwrap(), &["live.edf", "a FIFO"]);
}

#[test]
fn a_cut_final_record_is_reported_and_recorded_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    // Record count left open (-1) by a recorder that died mid-record.
    let bytes = excerpt1_with(236, 8, "-1");
    let path = dir.path().join("crashed.edf");
    std::fs::write(&path, &bytes[..bytes.len() - 50]).unwrap();
    let out = dir.path().join("out");
    let output = neuroloop(&[
        "replay",
        p(&path),
        "--preset",
        "sleep-spindle",
        "--out",
        p(&out),
    ]);
    ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("crashed.edf")
            && stderr.contains("incomplete (150 of 200 bytes)"),
        "{stderr}"
    );
    let summary = read_summary(&out);
    assert_eq!(summary["status"], "complete");
    assert_eq!(summary["samples"], 1799 * 100);
    let notices = summary["input_notices"].as_array().unwrap();
    assert!(
        notices.len() == 1 && notices[0].as_str().unwrap().contains("incomplete"),
        "{notices:?}"
    );
}

#[test]
fn a_label_two_signals_share_is_refused_at_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    // edfio_short_psg.edf: signal 1's label (at 256 + 16) made equal to signal 0's.
    let mut bytes = std::fs::read(shared_data("formats/edfio_short_psg.edf")).unwrap();
    bytes[256 + 16..256 + 32].copy_from_slice(b"EEG Fpz-Cz      ");
    let path = dir.path().join("twins.edf");
    std::fs::write(&path, bytes).unwrap();
    let out = dir.path().join("out");
    refused(
        &neuroloop(&[
            "replay",
            p(&path),
            "--preset",
            "sleep-spindle",
            "--channel",
            "EEG Fpz-Cz",
            "--out",
            p(&out),
        ]),
        &["twins.edf", "ambiguous", "0, 1"],
    );
    assert!(!out.exists());
}

/// A folder holding the user's own files is refused, not overwritten; an OS
/// error is reported once, not repeated by each layer that passed it on.
#[test]
fn an_output_folder_with_files_or_no_access_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("config.toml"), "# my own notes\n").unwrap();
    let input = shared_data("rodent/hc2_theta_1000hz.edf");
    refused(
        &neuroloop(&["replay", p(&input), "--out", p(&out)]),
        &["mine", "config.toml", "nothing is overwritten"],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("config.toml")).unwrap(),
        "# my own notes\n"
    );
    let output = neuroloop(&["replay", p(&input), "--out", "/proc/neuroloop/out"]);
    refused(&output, &["/proc/neuroloop/out"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}

#[test]
fn unknown_channel_and_bad_rates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    refused(
        &neuroloop(&[
            "replay",
            p(&shared_data("dreams/excerpt1.edf")),
            "--channel",
            "Fz",
            "--out",
            p(&out),
        ]),
        &["Fz", "C3-A1"],
    );
    refused(
        &neuroloop(&[
            "simulate",
            "--preset",
            "sleep",
            "--rate",
            "0",
            "--out",
            p(&out),
        ]),
        &["rate", "0"],
    );
    refused(
        &neuroloop(&[
            "replay",
            p(&shared_data("rodent/hc2_theta_1000hz_int16.dat")),
            "--raw-channels",
            "1",
            "--raw-rate-hz=-1000",
            "--out",
            p(&out),
        ]),
        &["-1000"],
    );
    assert!(!out.join("events.tsv").exists());
}

#[test]
fn nan_samples_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("nan.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 1000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(&wav, spec).unwrap();
    for i in 0..5000 {
        writer
            .write_sample(if i == 1234 { f32::NAN } else { 0.0 })
            .unwrap();
    }
    writer.finalize().unwrap();
    let out = dir.path().join("out");
    refused(
        &neuroloop(&["replay", p(&wav), "--out", p(&out)]),
        &["NaN", "1234"],
    );
    assert!(!out.join("events.tsv").exists());
}

#[test]
fn config_typo_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rig.toml");
    let text =
        include_str!("../src/presets/rodent-ripple.toml").replace("refractory_ms", "refactory_ms");
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("out");
    refused(
        &neuroloop(&[
            "replay",
            p(&shared_data("rodent/hc2_theta_1000hz.edf")),
            "--config",
            p(&config),
            "--out",
            p(&out),
        ]),
        &["rig.toml", "refactory_ms"],
    );
    // A misspelt section is named as such, with the section it resembles.
    let text =
        include_str!("../src/presets/rodent-ripple.toml").replace("[detector]", "[detektor]");
    std::fs::write(&config, text).unwrap();
    refused(
        &neuroloop(&[
            "replay",
            p(&shared_data("rodent/hc2_theta_1000hz.edf")),
            "--config",
            p(&config),
            "--out",
            p(&out),
        ]),
        &[
            "rig.toml",
            "unknown section [detektor]",
            "did you mean [detector]",
        ],
    );
    assert!(!out.exists());
}

#[test]
fn ripple_preset_refuses_rates_below_1000_hz() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // DREAMS excerpt 3 is sampled at 50 Hz: a ripple band cannot exist there.
    refused(
        &neuroloop(&[
            "replay",
            p(&shared_data("dreams/excerpt3.edf")),
            "--preset",
            "rodent-ripple",
            "--out",
            p(&out),
        ]),
        &[
            "detector.kind",
            "at least 1000 Hz",
            "50 Hz",
            "excerpt3.edf: signal 0 (\"C3-A1\")",
            "\"duration of a data record\" (1 s)",
        ],
    );
    assert!(
        !out.exists(),
        "a refused config must not leave a session folder"
    );
    // The boundary itself.
    let config = Preset::RodentRipple.config();
    let rate = |hz| SampleRate::new(hz).unwrap();
    assert!(Controller::new(&config, rate(999.0), 4).is_err());
    assert!(Controller::new(&config, rate(1000.0), 4).is_ok());
}

/// Detector setup sizes its windows by the rate: an absurd rate (any source,
/// live ones too) is refused before anything is allocated.
#[test]
fn detectors_refuse_rates_above_one_megahertz_and_absurd_channel_counts() {
    let rate = |hz| SampleRate::new(hz).unwrap();
    for (preset, kind) in [
        (Preset::RodentRipple, "ripple"),
        (Preset::SleepSpindle, "spindle"),
        (Preset::SleepClas, "slow-oscillation"),
    ] {
        let config = preset.config();
        assert!(Controller::new(&config, rate(1e6), 2).is_ok(), "{kind}");
        // Channels × rate is capped too: a header's channel count cannot size the detector.
        assert!(
            Controller::new(&config, rate(30_000.0), 3333).is_ok(),
            "{kind}"
        );
        let message = Controller::new(&config, rate(30_000.0), 3334)
            .expect_err("too many channel-samples")
            .to_string();
        assert!(
            message.contains("input.channels") && message.contains("3334 channels"),
            "{message}"
        );
        for hz in [1.000001e6, 1e11, 1e302] {
            let message = Controller::new(&config, rate(hz), 2)
                .expect_err("refused")
                .to_string();
            assert!(
                message.contains(&format!(
                    "the {kind} detector supports sample rates up to 1000000 Hz"
                )),
                "{message}"
            );
        }
    }
}

#[test]
fn latency_test_refuses_a_rig_it_cannot_measure() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rig.toml");
    let out = dir.path().join("out");
    let latency_test = || neuroloop(&["latency-test", "--config", p(&config), "--out", p(&out)]);
    // Not a probe detector.
    std::fs::write(&config, include_str!("../src/presets/sleep-spindle.toml")).unwrap();
    refused(&latency_test(), &["detector.kind", "latency-probe"]);
    // A probe, but nothing can loop back from the simulator.
    let probe = "[detector]\nkind = \"latency-probe\"\nchannel = 0\ninterval_ms = 200.0\nthreshold_uv = 1000.0\ntimeout_ms = 100.0\n";
    std::fs::write(&config, probe).unwrap();
    refused(&latency_test(), &["source.kind"]);
    // A timeout longer than the interval would overlap probes.
    std::fs::write(
        &config,
        probe.replace("timeout_ms = 100.0", "timeout_ms = 300.0"),
    )
    .unwrap();
    refused(&latency_test(), &["detector.timeout_ms"]);
    assert!(!out.exists());
}

/// `emulate loopback` serves a wired Cyton + Pulse Pal; `latency-test` sends
/// its probes through them and reports every one back, in summary.json too.
#[test]
fn latency_test_through_the_emulated_loopback_rig() {
    let dir = tempfile::tempdir().unwrap();
    let (cyton, pulse_pal) = (dir.path().join("cyton"), dir.path().join("pp"));
    let mut emulator = Command::new(env!("CARGO_BIN_EXE_neuroloop"))
        .args(["emulate", "loopback", "--minutes", "0.5"])
        .args(["--cyton-link", p(&cyton), "--pulse-pal-link", p(&pulse_pal)])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !(cyton.exists() && pulse_pal.exists()) && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let config = dir.path().join("rig.toml");
    std::fs::write(
        &config,
        format!(
            "[detector]\nkind = \"latency-probe\"\nchannel = 7\ninterval_ms = 100.0\n\
             threshold_uv = 10000.0\ntimeout_ms = 80.0\n\n\
             [source]\nkind = \"openbci\"\nport = \"{}\"\n\n\
             [[outputs]]\nkind = \"pulse-pal\"\nport = \"{}\"\n",
            p(&cyton),
            p(&pulse_pal)
        ),
    )
    .unwrap();
    let out = dir.path().join("session");
    let result = neuroloop(&[
        "latency-test",
        "--config",
        p(&config),
        "--probes",
        "10",
        "--out",
        p(&out),
    ]);
    emulator.kill().unwrap();
    emulator.wait().unwrap();
    let stdout = ok(&result);
    assert!(
        stdout.contains("probes sent 10, returned 10, lost 0"),
        "{stdout}"
    );
    let summary = read_summary(&out);
    assert_eq!(summary["command"], "latency-test");
    assert_eq!(summary["round_trip"]["returned"], 10);
    // At least the packet after the deciding one.
    assert!(summary["round_trip"]["samples"]["p50"].as_f64().unwrap() >= 1.0);
}

/// `run` stopped by a signal (Ctrl-C, `kill`, a closed terminal): disarm,
/// then a complete session marked interrupted, and a zero exit.
#[test]
fn stop_signals_end_a_live_run_with_a_complete_interrupted_session() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("session");
        let run = LiveRun::start(Command::new(env!("CARGO_BIN_EXE_neuroloop")).args([
            "run",
            "--duration-s",
            "60",
            "--out",
            p(&out),
        ]));
        run.signal(signal);
        let ended = run.wait();
        assert!(ended.status.success(), "signal {signal}: {}", ended.stderr);
        assert!(
            ended.stdout.contains("stopped after"),
            "signal {signal}: {}",
            ended.stdout
        );
        let summary = read_summary(&out);
        assert_eq!(summary["status"], "interrupted", "signal {signal}");
        assert_eq!(summary["runtime"]["outputs_disarmed_before_flush"], true);
        let seconds = summary["duration_s"].as_f64().unwrap();
        assert!(
            (0.5..30.0).contains(&seconds),
            "signal {signal}: ran {seconds} s"
        );
        assert!(out.join("events.tsv").exists());
    }
}

/// `kill -9` mid-session: the event log's rows are whole, the recording is
/// readable up to its last record (at most the last second of signal lost),
/// and `replay` of the folder works, says the session was cut, and
/// reproduces the live decisions made before the recording's end.
#[test]
fn a_killed_session_leaves_a_readable_record_that_replays() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let mut child = Command::new(env!("CARGO_BIN_EXE_neuroloop"))
        .args(["run", "--duration-s", "60", "--out", p(&out)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // Status lines: "t=  12.0 s  …", once a second of signal (past the 5-s warm-up).
    let processed_s = loop {
        let line = lines.next().expect("run ended early").unwrap();
        let Some(t) = line.strip_prefix("t=") else {
            continue;
        };
        let t: f64 = t.trim_start().split(' ').next().unwrap().parse().unwrap();
        if t >= 12.0 {
            break t;
        }
    };
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();

    let log = std::fs::read_to_string(out.join("events.partial.tsv")).unwrap();
    assert!(log.ends_with('\n'));
    assert!(log.lines().all(|l| l.split('\t').count() == 10), "{log}");
    assert!(!out.join("summary.json").exists() && !out.join("events.tsv").exists());
    let header = std::fs::read(out.join("recording.bdf")).unwrap();
    assert_eq!(
        &header[236..244],
        b"-1      ",
        "record count of a recording in progress"
    );
    let reader =
        neuroloop::io::recorder::RecordingReader::open(&out.join("recording.bdf")).unwrap();
    assert!(!reader.is_complete());
    let recorded_s = {
        use neuroloop::io::reader::SignalReader;
        let signal = &reader.info().signals[0];
        signal.samples as f64 / signal.rate.hz()
    };
    assert!(
        recorded_s >= processed_s - 1.0,
        "{recorded_s} s recorded, {processed_s} s processed before the kill"
    );

    let replayed = ok(&neuroloop(&["replay", p(&out)]));
    assert!(replayed.contains("the session was cut"), "{replayed}");
    let c = neuroloop::io::session::compare_decisions(
        &out.join("events.partial.tsv"),
        &out.join("replay/events.tsv"),
    )
    .unwrap();
    // Live rows settled before the last second of the recording are reproduced.
    let settled = log
        .lines()
        .skip(1)
        .filter(|l| {
            let onset: f64 = l.split('\t').next().unwrap().parse().unwrap();
            onset < recorded_s - 1.0
        })
        .count();
    assert!(
        settled >= 3 && c.identical >= settled,
        "{c:?}, {settled} settled rows"
    );
}

#[test]
fn verbosity_flags_steer_the_terminal_and_every_session_keeps_its_debug_log() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, debug_on_terminal) in [("-v", true), ("-qq", false)] {
        let out = dir.path().join(flag);
        let output = neuroloop(&[flag, "run", "--duration-s", "1", "--out", p(&out)]);
        ok(&output);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.contains("debug: session ending (complete): disarming outputs first"),
            debug_on_terminal,
            "{flag}: {stderr}"
        );
        if !debug_on_terminal {
            assert!(stderr.trim().is_empty(), "-qq: errors only: {stderr}");
        }
        // The file keeps neuroloop's debug lines whatever the terminal shows.
        let log = std::fs::read_to_string(out.join("log.txt")).unwrap();
        for line in [
            "DEBUG neuroloop::runtime: neuroloop",
            "session ending (complete): disarming outputs first",
            "outputs disarmed, threads joined",
        ] {
            assert!(
                log.contains(line),
                "{flag}: {line:?} not in log.txt:\n{log}"
            );
        }
    }
}
