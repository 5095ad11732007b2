//! Replaying a recorded live session (`neuroloop replay SESSION_DIR`) must
//! reproduce its decisions exactly.

use std::path::Path;
use std::process::Command;

/// Replay `dir` with its own config through the CLI and check that it says
/// it reproduced the live session, and that the counters agree: frames
/// processed, frames dropped (gaps), trigger decisions.
pub fn assert_replay_reproduces(dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_neuroloop"))
        .arg("replay")
        .arg(dir)
        .output()
        .expect("neuroloop runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n{stdout}");
    assert!(
        stdout.contains("replay reproduces the live session"),
        "{stdout}\n{stderr}"
    );
    let summary = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
    };
    let (live, replay) = (summary(dir), summary(&dir.join("replay")));
    for key in ["frames", "dropped_frames"] {
        assert_eq!(live["controller"][key], replay["controller"][key], "{key}");
    }
    assert_eq!(live["trigger"], replay["trigger"]);
    assert_eq!(live["samples"], replay["samples"]);
}
