//! `neuroloop report` end to end: on a simulated ripple session and a
//! simulated sleep (slow-oscillation) session its figures exist and are not
//! empty, its page inlines them and loads nothing from the network, and its
//! numbers (n, medians, R) are those `neuroloop eval` prints; bad input
//! (missing or cut recording, unknown trial types, broken rows, truth that
//! does not fit the recording) still gives a page that says what it skipped.

mod files;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use files::shared_data;

fn neuroloop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_neuroloop"))
        .args(args)
        .output()
        .expect("neuroloop runs")
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `neuroloop eval --events SESSION/events.tsv ARGS --json`: the score it wrote.
fn eval_score(dir: &Path, session: &Path, args: &[&str]) -> serde_json::Value {
    let out = dir.join("eval.json");
    let events = session.join("events.tsv");
    let mut args = [&["eval", "--events", p(&events)], args].concat();
    args.extend(["--json", p(&out)]);
    ok(neuroloop(&args));
    json(&out)["score"].clone()
}

/// Simulate `minutes` of `preset` and replay it with `config`; returns the
/// simulation folder and the session folder.
fn session(
    dir: &Path,
    preset: &str,
    config: &str,
    minutes: &str,
    seed: &str,
) -> (PathBuf, PathBuf) {
    let sim = dir.join("sim");
    let out = dir.join("session");
    ok(neuroloop(&[
        "simulate",
        "--preset",
        preset,
        "--minutes",
        minutes,
        "--seed",
        seed,
        "--out",
        p(&sim),
    ]));
    ok(neuroloop(&[
        "replay",
        p(&sim.join("recording.edf")),
        "--preset",
        config,
        "--out",
        p(&out),
    ]));
    (sim, out)
}

/// Figures named `names` exist as non-trivial PNG and SVG, inlined in the page.
fn assert_figures(report: &Path, names: &[&str]) {
    let page = std::fs::read_to_string(report.join("report.html")).unwrap();
    for name in names {
        let png = std::fs::read(report.join(format!("{name}.png"))).unwrap();
        assert!(
            png.len() > 5_000 && png.starts_with(b"\x89PNG"),
            "{name}.png"
        );
        let svg = std::fs::read_to_string(report.join(format!("{name}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.len() > 5_000, "{name}.svg");
        assert!(
            page.contains(&format!("{name}.png")),
            "{name} not in the page"
        );
    }
    assert_eq!(
        page.matches("<svg").count(),
        names.len(),
        "every figure inlined once"
    );
    for remote in ["src=\"http", "href=\"http", "@import", "<script"] {
        assert!(
            !page.contains(remote),
            "the page must be self-contained: {remote}"
        );
    }
}

#[test]
fn ripple_report_matches_eval() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, session) = session(dir.path(), "rodent-ripple", "rodent-ripple", "3", "11");
    let truth = sim.join("truth.tsv");
    let report = dir.path().join("report");
    ok(neuroloop(&[
        "report",
        p(&session),
        "--truth",
        p(&truth),
        "--out",
        p(&report),
    ]));
    assert_figures(
        &report,
        &[
            "average_ripple",
            "average_stim",
            "stim_offset",
            "detection_latency_ripple",
            "decision_lead",
            "timeline",
        ],
    );
    let eval = eval_score(dir.path(), &session, &["--truth", p(&truth)]);
    let numbers = json(&report.join("report.json"));
    assert!(eval["detection"]["hits"].as_u64().unwrap() > 10, "{eval}");
    assert_eq!(numbers["evaluation"], eval, "the table is eval's");
    assert_eq!(
        numbers["stim_offset_ms"]["spread"], eval["stim_offset_ms"],
        "the stim-offset figure's n and median are eval's"
    );
    assert_eq!(
        numbers["stim_offset_ms"]["within_50ms"],
        eval["stims_within_50ms"]
    );
    assert_eq!(numbers["averages"]["stim"]["n"], eval["stims"]);
    assert_eq!(
        numbers["averages"]["ripple"]["n"],
        eval["detection"]["detected"]
    );
    assert_eq!(numbers["skipped"], serde_json::json!([]));
}

#[test]
fn sleep_report_matches_eval_phase() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, session) = session(dir.path(), "sleep", "sleep-clas", "12", "5");
    let report = dir.path().join("report");
    ok(neuroloop(&["report", p(&session), "--out", p(&report)]));
    assert_figures(
        &report,
        &[
            "average_slow_oscillation",
            "average_stim",
            "phase_rose",
            "detection_latency_slow_oscillation",
            "decision_lead",
            "timeline",
        ],
    );
    let eval = eval_score(
        dir.path(),
        &session,
        &[
            "--type",
            "so-phase",
            "--recording",
            p(&sim.join("recording.edf")),
        ],
    );
    let numbers = json(&report.join("report.json"));
    assert!(eval["stims"].as_u64().unwrap() > 20, "{eval}");
    assert_eq!(
        numbers["so_phase"], eval,
        "n, circular mean and R are eval's"
    );
    // The average holds every stim whose ±2 s window (plus the band-pass's
    // settling margin) lies inside the recording; the others are counted.
    let average = &numbers["averages"]["stim"];
    assert_eq!(
        average["n"].as_u64().unwrap() + average["incomplete"].as_u64().unwrap(),
        eval["stims"].as_u64().unwrap()
    );
}

/// Real EEG with its hypnogram: stages drawn on the timeline, the phase table
/// is eval's; a hypnogram that cannot be read is a note.
#[test]
fn dreams_report_with_hypnogram() {
    let dir = tempfile::tempdir().unwrap();
    let edf = shared_data("dreams/excerpt2.edf");
    let hypnogram = shared_data("dreams/Hypnogram_excerpt2.txt");
    let session = dir.path().join("session");
    ok(neuroloop(&[
        "replay",
        p(&edf),
        "--preset",
        "sleep-clas",
        "--hypnogram",
        p(&hypnogram),
        "--out",
        p(&session),
    ]));
    let report = dir.path().join("report");
    ok(neuroloop(&[
        "report",
        p(&session),
        "--hypnogram",
        p(&hypnogram),
        "--out",
        p(&report),
    ]));
    let svg = std::fs::read_to_string(report.join("timeline.svg")).unwrap();
    assert!(svg.contains("hypnogram: N3"), "stage lanes on the timeline");
    let eval = eval_score(
        dir.path(),
        &session,
        &["--type", "so-phase", "--recording", p(&edf)],
    );
    let numbers = json(&report.join("report.json"));
    assert_eq!(numbers["so_phase"], eval);
    assert!(numbers["so_phase"]["stims"].as_u64().unwrap() > 50);

    let missing = dir.path().join("no-such-hypnogram.txt");
    let again = dir.path().join("again");
    let out = neuroloop(&[
        "report",
        p(&session),
        "--hypnogram",
        p(&missing),
        "--out",
        p(&again),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert_skipped(&again, &stderr, &["hypnogram left out of the timeline"]);
}

/// Spindles (logged without a commit, averaged on their onset; commits on
/// their commit): the evaluation table is eval's spindle score.
#[test]
fn spindle_report_matches_eval() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session");
    let truth = shared_data("dreams/Visual_scoring1_excerpt1.txt");
    ok(neuroloop(&[
        "replay",
        p(&shared_data("dreams/excerpt1.edf")),
        "--preset",
        "sleep-spindle",
        "--out",
        p(&session),
    ]));
    let report = dir.path().join("report");
    ok(neuroloop(&[
        "report",
        p(&session),
        "--truth",
        p(&truth),
        "--out",
        p(&report),
    ]));
    assert_figures(
        &report,
        &[
            "average_spindle",
            "average_spindle_commit",
            "detection_latency_spindle_commit",
            "timeline",
        ],
    );
    let eval = eval_score(dir.path(), &session, &["--truth", p(&truth)]);
    let numbers = json(&report.join("report.json"));
    assert!(eval["detection"]["hits"].as_u64().unwrap() > 10, "{eval}");
    assert_eq!(numbers["evaluation"], eval);
    assert_eq!(
        numbers["averages"]["spindle"]["n"],
        eval["detection"]["detected"]
    );
}

/// A report that skipped things: it succeeds, and every note is on stderr and in the page.
fn assert_skipped(report: &Path, stderr: &str, expected: &[&str]) {
    let page = std::fs::read_to_string(report.join("report.html")).unwrap();
    let notes = json(&report.join("report.json"))["skipped"].clone();
    let notes: Vec<String> = serde_json::from_value(notes).unwrap();
    for text in expected {
        assert!(
            notes.iter().any(|n| n.contains(text)),
            "no note about {text:?} in {notes:?}"
        );
        assert!(stderr.contains(text), "stderr lacks {text:?}: {stderr}");
        let escaped = text.replace('"', "&quot;");
        assert!(page.contains(&escaped), "the page lacks {text:?}");
    }
}

#[test]
fn bad_input_renders_what_it_can_and_says_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, session) = session(dir.path(), "rodent-ripple", "rodent-ripple", "1", "3");
    let run = |args: &[&str]| {
        let out = neuroloop(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "report failed: {stderr}");
        stderr
    };

    // Broken rows and unknown trial types: the rest is drawn.
    let events = std::fs::read_to_string(session.join("events.tsv")).unwrap();
    let mut lines: Vec<&str> = events.lines().collect();
    let stim = lines.iter().position(|l| l.contains("\tstim\t")).unwrap();
    lines.insert(stim, "1.0\t0.1\tbanana\t1\tCA1-0\tn/a\tn/a\tn/a\tn/a\tn/a");
    lines.insert(
        stim,
        "not-a-number\t0.1\tripple\t1\tCA1-0\tn/a\tn/a\tn/a\tn/a\tn/a",
    );
    lines.insert(stim, "1.0\t0.1");
    let edited = dir.path().join("edited");
    std::fs::create_dir(&edited).unwrap();
    std::fs::write(edited.join("events.tsv"), lines.join("\n")).unwrap();
    std::fs::copy(session.join("summary.json"), edited.join("summary.json")).unwrap();
    let report = dir.path().join("r1");
    let stderr = run(&[
        "report",
        p(&edited.join("events.tsv")),
        "--recording",
        p(&sim.join("recording.edf")),
        "--out",
        p(&report),
    ]);
    assert_skipped(
        &report,
        &stderr,
        &[
            "unknown trial_type \"banana\"",
            "is not a number",
            "2 fields, the header has 10",
        ],
    );
    assert!(report.join("average_stim.png").is_file());

    // No recording: the timeline and latencies are still drawn.
    let moved = dir.path().join("moved.edf");
    std::fs::rename(sim.join("recording.edf"), &moved).unwrap();
    let report = dir.path().join("r2");
    let stderr = run(&["report", p(&session), "--out", p(&report)]);
    assert_skipped(&report, &stderr, &["no recording found"]);
    assert!(report.join("timeline.png").is_file());
    assert!(!report.join("average_stim.png").exists());

    // A cut recording (half its bytes): the EDF reader refuses a file whose
    // records stop early, so the signal figures are skipped with its reason
    // and the event figures are still drawn.
    let bytes = std::fs::read(&moved).unwrap();
    let cut = dir.path().join("cut.edf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let report = dir.path().join("r3");
    let stderr = run(&[
        "report",
        p(&session),
        "--recording",
        p(&cut),
        "--out",
        p(&report),
    ]);
    assert_skipped(&report, &stderr, &["data is cut short"]);
    assert!(report.join("timeline.png").is_file());
    assert!(report.join("stim_offset.png").is_file());

    // Truth that does not fit the session: rows past its end are left out, said so.
    let truth = std::fs::read_to_string(sim.join("truth.tsv")).unwrap();
    let long = dir.path().join("long-truth.tsv");
    std::fs::write(
        &long,
        format!("{truth}5000\t0.05\t5000.02\tripple\tall\tn/a\n"),
    )
    .unwrap();
    let report = dir.path().join("r4");
    let stderr = run(&[
        "report",
        p(&session),
        "--truth",
        p(&long),
        "--recording",
        p(&moved),
        "--out",
        p(&report),
    ]);
    assert_skipped(&report, &stderr, &["start after the session's end"]);
    assert!(json(&report.join("report.json"))["evaluation"].is_object());

    // Unreadable truth: no table, the rest is drawn.
    let broken = dir.path().join("broken-truth.tsv");
    std::fs::write(&broken, "onset\tduration\nx\ty\n").unwrap();
    let report = dir.path().join("r5");
    let stderr = run(&[
        "report",
        p(&session),
        "--truth",
        p(&broken),
        "--out",
        p(&report),
    ]);
    assert_skipped(&report, &stderr, &["evaluation table skipped"]);

    // No events at all is an error naming the folder.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = neuroloop(&["report", p(&empty)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither events.tsv"));
}
