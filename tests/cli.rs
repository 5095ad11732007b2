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
    assert!(s["score"]["detection"]["f1"].as_f64().unwrap() > 0.5, "{s}");
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
    assert!(s["score"]["detection"]["f1"].as_f64().unwrap() > 0.3, "{s}");
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
        &["detector.kind", "at least 1000 Hz", "50 Hz"],
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
