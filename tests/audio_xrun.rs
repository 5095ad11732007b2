//! An audio output xrun, produced for real: `neuroloop run` plays into a
//! PulseAudio null sink (a sink timed by the server's clock, no sound card)
//! through ALSA's `pulse` plugin, and the test freezes the whole process
//! (SIGSTOP) for longer than the output buffer, as a stalled machine would.
//! The card runs out of samples; the session must count the underrun, warn
//! once, keep running and write a complete session folder.
//!
//! Needs `pulseaudio` and the ALSA pulse plugin (`libasound2-plugins`), which
//! `tests/run-all.sh` installs.

mod common;
mod summary;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::LiveRun;
use summary::read_summary;

/// A PulseAudio server with one null sink, private to the test, killed on drop.
struct PulseServer {
    child: Child,
    socket: PathBuf,
}

impl PulseServer {
    fn start(dir: &Path) -> PulseServer {
        let runtime_dir = dir.join("run");
        std::fs::create_dir_all(&runtime_dir).unwrap();
        let socket = dir.join("native");
        let script = dir.join("server.pa");
        std::fs::write(
            &script,
            format!(
                "load-module module-null-sink sink_name=neuroloop_null rate=48000\n\
                 load-module module-native-protocol-unix socket={} auth-anonymous=1\n\
                 set-default-sink neuroloop_null\n",
                socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("pulseaudio")
            .args(["-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no"])
            .args(["--log-target=stderr", "--log-level=error", "-F"])
            .arg(&script)
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .env("HOME", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio not found: install pulseaudio libasound2-plugins (tests/run-all.sh does)");
        let t0 = Instant::now();
        while !socket.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "pulseaudio did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PulseServer { child, socket }
    }
}

impl Drop for PulseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_frozen_process_underruns_the_card_and_the_session_counts_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let pulse = PulseServer::start(dir.path());
    let alsa_conf = dir.path().join("asound.conf");
    std::fs::write(
        &alsa_conf,
        format!(
            "pcm.neuroloop_pulse {{\n type pulse\n server \"unix:{}\"\n handle_underrun true\n \
             hint {{ show on description \"test: PulseAudio null sink\" }}\n}}\n",
            pulse.socket.display()
        ),
    )
    .unwrap();
    let config = dir.path().join("rig.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[outputs]]\nkind = \"audio-click\"\ndevice = \"neuroloop_pulse\"\nperiod_frames = 480\n",
            neuroloop::config::Preset::SleepClas.toml()
        ),
    )
    .unwrap();
    let out = dir.path().join("session");
    let run = LiveRun::start(
        Command::new(env!("CARGO_BIN_EXE_neuroloop"))
            .args(["run", "--duration-s", "8", "--out"])
            .arg(&out)
            .arg("--config")
            .arg(&config)
            .env(
                "ALSA_CONFIG_PATH",
                format!("/usr/share/alsa/alsa.conf:{}", alsa_conf.display()),
            ),
    );
    // Freeze the process well past the output buffer, twice (the plugin
    // reports an underrun that is still pending when the writer resumes).
    for _ in 0..2 {
        run.signal(libc::SIGSTOP);
        std::thread::sleep(Duration::from_millis(1200));
        run.signal(libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(800));
    }
    let ended = run.wait();
    let stderr = &ended.stderr;
    assert!(ended.status.success(), "{stderr}\n{}", ended.stdout);

    let summary = read_summary(&out);
    assert_eq!(summary["status"], "complete");
    let card = &summary["outputs"][0];
    assert_eq!(card["kind"], "audio-click");
    assert!(card["underruns"].as_u64().unwrap() >= 1, "{card}");
    assert_eq!(
        stderr.matches("underrun").count(),
        1,
        "one warning per kind: {stderr}"
    );
    assert!(out.join("events.tsv").exists() && out.join("latency.tsv").exists());
}
