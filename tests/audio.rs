//! The cpal → ALSA output path without a sound card: a test-local ALSA
//! configuration (`ALSA_CONFIG_PATH`) defines a `file` PCM over a `null`
//! slave that writes the raw stream into a FIFO. The test reads the FIFO at
//! 48 kHz, which paces the stream like a sound card (a `null` PCM alone
//! accepts frames as fast as they are written).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use neuroloop::click::ClickSpec;
use neuroloop::io::audio::{AudioErrorKind, ClickCommand, ClickOutput, ClickOutputSpec};

const RATE_OUT: u32 = 48_000;
const RATE_IN: f64 = 250.0;

/// Write the ALSA configuration once for this test process and point ALSA at it.
fn alsa_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let fifo = dir.join("click.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let conf = format!(
            "pcm.neuroloop_fifo {{\n type file\n slave.pcm \"neuroloop_null\"\n file \"{}\"\n format \"raw\"\n hint {{ show on description \"test: raw frames into a FIFO\" }}\n}}\npcm.neuroloop_null {{ type null }}\n",
            fifo.display()
        );
        let path = dir.join("asound.conf");
        std::fs::write(&path, conf).unwrap();
        std::env::set_var("ALSA_CONFIG_PATH", &path);
        dir
    })
}

fn spec(device: &str) -> ClickOutputSpec {
    ClickOutputSpec {
        device: Some(device.into()),
        rate_hz: RATE_OUT,
        channels: 1,
        period_frames: 256,
        click: ClickSpec::default(),
        device_latency: None,
        max_clock_error_ms: 50.0,
        session_rate_hz: RATE_IN,
    }
}

/// Read the FIFO at `RATE_OUT` frames per second for `seconds`; returns the
/// samples and when the first byte arrived, then drains the FIFO until the
/// stream closes it (so the writer neither blocks nor sees a broken pipe).
type Paced = (Vec<f32>, Option<Instant>);
fn paced_reader(
    seconds: f64,
) -> (
    std::sync::mpsc::Receiver<Paced>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let fifo = alsa_dir().join("click.fifo");
    let handle = std::thread::spawn(move || {
        let mut f = std::fs::File::open(&fifo).unwrap();
        // The smallest pipe (one page) keeps the writer close to the reader.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        let total = (seconds * f64::from(RATE_OUT)) as usize;
        let mut bytes = Vec::with_capacity(total * 4);
        let mut buf = [0u8; 4096];
        let started = Instant::now();
        let mut first = None;
        while bytes.len() < total * 4 {
            let due = ((started.elapsed().as_secs_f64() * f64::from(RATE_OUT)) as usize).min(total);
            let want = (due * 4).saturating_sub(bytes.len()).min(buf.len());
            if want == 0 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let n = f.read(&mut buf[..want]).unwrap();
            if n == 0 {
                break;
            }
            first.get_or_insert_with(Instant::now);
            bytes.extend_from_slice(&buf[..n]);
        }
        let samples = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tx.send((samples, first)).unwrap();
        while f.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    (rx, handle)
}

/// Start frames of the clicks: the first non-zero sample after ≥ 100 zeros.
fn click_starts(samples: &[f32]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut zeros = usize::MAX;
    for (i, &v) in samples.iter().enumerate() {
        if v == 0.0 {
            zeros = zeros.saturating_add(1);
        } else {
            if zeros >= 100 {
                starts.push(i);
            }
            zeros = 0;
        }
    }
    starts
}

#[test]
fn clicks_through_alsa_land_at_exact_frame_spacing_with_the_rendered_samples() {
    alsa_dir();
    let reader = paced_reader(1.6);
    let mut out = ClickOutput::open(&spec("neuroloop_fifo")).unwrap();
    let t0 = Instant::now();
    let onsets = [0u64, 50, 137, 200];
    for &n in &onsets {
        out.schedule(ClickCommand {
            onset: n,
            due: t0 + Duration::from_millis(300) + Duration::from_secs_f64(n as f64 / RATE_IN),
        })
        .unwrap();
    }
    // A bound, so a stream that never writes fails the test instead of hanging CI.
    let (samples, first_byte) = reader
        .0
        .recv_timeout(Duration::from_secs(30))
        .expect("ALSA wrote 1.6 s of the click stream into the FIFO within 30 s");
    drop(out);
    reader.1.join().unwrap();
    let click = ClickSpec::default().render(f64::from(RATE_OUT)).unwrap();
    let starts = click_starts(&samples);
    assert_eq!(starts.len(), onsets.len(), "clicks found at {starts:?}");
    // 192 output frames per session sample, exactly.
    for (w, n) in starts.windows(2).zip(onsets.windows(2)) {
        assert_eq!(w[1] - w[0], (n[1] - n[0]) as usize * 192);
    }
    for &s in &starts {
        // The click's first non-zero sample is its first rendered non-zero one.
        let lead = click.iter().position(|&v| v != 0.0).unwrap();
        let begin = s - lead;
        assert_eq!(
            &samples[begin..begin + click.len()],
            &click[..],
            "click at {s}"
        );
        assert!(samples[begin + click.len()..begin + click.len() + 100]
            .iter()
            .all(|&v| v == 0.0));
    }
    // Where the first click should be: 300 ms after t0, counted from the
    // frame the reader received first (the FIFO and ALSA buffer let the
    // writer run up to ~30 ms ahead of the reader).
    let expected = (t0 + Duration::from_millis(300))
        .duration_since(first_byte.unwrap())
        .as_secs_f64()
        * f64::from(RATE_OUT);
    let error_ms = (starts[0] as f64 - expected) / f64::from(RATE_OUT) * 1000.0;
    eprintln!(
        "first click: frame {} (expected {expected:.0}, error {error_ms:.1} ms)",
        starts[0]
    );
    assert!(error_ms.abs() < 60.0, "first click {error_ms:.1} ms off");
}

#[test]
fn a_device_that_does_not_exist_is_a_clear_error() {
    alsa_dir();
    let err = ClickOutput::open(&spec("no_such_pcm")).err().unwrap();
    assert_eq!(err.kind, AudioErrorKind::NoDevice);
    assert!(err.to_string().contains("no_such_pcm"), "{err}");
}
