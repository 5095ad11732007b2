//! The cpal → ALSA paths without a sound card: a test-local ALSA
//! configuration (`ALSA_CONFIG_PATH`) defines `file` PCMs over a `null`
//! slave. Output: the plugin writes the raw stream into a FIFO that the test
//! reads at 48 kHz, which paces the stream like a sound card (a `null` PCM
//! alone accepts frames as fast as they are written). Input: the plugin's
//! `infile` replaces each captured period with bytes read from a FIFO that
//! the test writes one period at a time at the stream's rate, which paces
//! the capture the same way.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use neuroloop::click::ClickSpec;
use std::io::Write;

use neuroloop::device::audio_click::{ClickCommand, ClickOutput, ClickOutputSpec};
use neuroloop::device::audio_in::{self, AudioSourceConfig};
use neuroloop::device::{DeviceError, FrameSink, Source, SourceConfig};
use std::path::Path;

use neuroloop::config::{Config, Preset, TriggerMode};
use neuroloop::controller::{Block, Controller};
use neuroloop::event::Outbox;
use neuroloop::runtime::{self, Ending, LiveSpec};
use neuroloop::sim::{simulate, Preset as SimPreset, SimSpec};
use neuroloop::time::SampleRate;

const RATE_OUT: u32 = 48_000;
const RATE_IN: f64 = 250.0;
/// Capture PCMs, one per test so tests can run in parallel.
const INPUTS: [&str; 3] = [
    "neuroloop_in_scale",
    "neuroloop_in_run",
    "neuroloop_in_stall",
];
/// Frames per capture period, and per write into the input FIFO.
const PERIOD: usize = 256;

/// Write the ALSA configuration once for this test process and point ALSA at it.
///
/// `set_var` in a multi-threaded test binary is sound here only because every
/// test calls this first, before anything touches ALSA: `get_or_init` holds
/// the other tests back until `set_var` has returned, so alsa-lib (the one
/// C reader of the environment in this binary) never runs `getenv` while it
/// changes, and std's own readers take std's environment lock. A test that
/// touches ALSA without calling this first breaks that.
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
        let mut conf = conf;
        for name in INPUTS {
            let fifo = dir.join(format!("{name}.fifo"));
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
            conf.push_str(&format!(
                "pcm.{name} {{\n type file\n slave.pcm \"neuroloop_null\"\n file \"/dev/null\"\n infile \"{}\"\n format \"raw\"\n hint {{ show on description \"test: frames from a FIFO\" }}\n}}\n",
                fifo.display()
            ));
        }
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
    let message = err.to_string();
    assert!(message.contains("no_such_pcm"), "{message}");
    assert!(message.contains("no such device"), "{message}");
}

/// Bytes waiting in a pipe.
fn queued(f: &std::fs::File) -> usize {
    let mut n: libc::c_int = 0;
    unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    n as usize
}

/// Feed interleaved f32 `samples` into the FIFO of capture PCM `name`, one
/// period per write at `speed` × `rate_hz`, then hold the FIFO open (no
/// data: the device stalls) for `hold` and close it.
///
/// cpal opens the PCM, and so the FIFO, to probe it before it opens the
/// stream that reads; the first period is therefore written once and the
/// pacing starts only when a reader has consumed it, so the stream sees the
/// samples from the first.
fn feed(
    name: &'static str,
    samples: Vec<f32>,
    channels: usize,
    rate_hz: f64,
    speed: f64,
    hold: Duration,
) -> std::thread::JoinHandle<()> {
    let path = alsa_dir().join(format!("{name}.fifo"));
    assert_eq!(samples.len() % (PERIOD * channels), 0);
    std::thread::spawn(move || {
        let bytes = |c: &[f32]| -> Vec<u8> { c.iter().flat_map(|v| v.to_le_bytes()).collect() };
        let mut periods = samples.chunks(PERIOD * channels);
        let first = bytes(periods.next().unwrap());
        let mut f = loop {
            // A probe may close the FIFO between our open and write: reopen.
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            if f.write_all(&first).is_ok() {
                break f;
            }
        };
        while queued(&f) > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let started = Instant::now();
        for (k, period) in periods.enumerate() {
            let due = Duration::from_secs_f64(((k + 1) * PERIOD) as f64 / rate_hz / speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            if f.write_all(&bytes(period)).is_err() {
                return;
            }
        }
        std::thread::sleep(hold);
    })
}

fn audio_source(name: &str, channels: Vec<u16>, stall_ms: f64) -> AudioSourceConfig {
    AudioSourceConfig {
        device: Some(name.into()),
        channels,
        device_channels: Some(2),
        rate_hz: 48_000,
        period_frames: PERIOD as u32,
        volts_per_full_scale: 0.002,
        stall_ms,
    }
}

/// A test ramp that tells every sample apart: frame `i` of channel `c`.
fn ramp(i: usize, c: usize) -> f32 {
    ((i % 4096) as f32 - 2048.0) / 4096.0 * if c == 0 { 1.0 } else { -0.5 }
}

/// What the capture callback pushed; the source moves its sink into the
/// callback, so the test keeps a handle on the same list.
#[derive(Default)]
struct Collected {
    chunks: Vec<(u64, Vec<f64>, Instant)>,
    frames: usize,
}

struct Collect(Arc<Mutex<Collected>>);

impl FrameSink for Collect {
    fn push(&mut self, start: u64, samples: &[f64], arrived: Instant) -> usize {
        let mut c = self.0.lock().unwrap();
        c.frames += samples.len();
        c.chunks.push((start, samples.to_vec(), arrived));
        0
    }
}

#[test]
fn captured_samples_arrive_in_order_scaled_to_microvolts_with_chunk_headers() {
    alsa_dir();
    let frames = 48 * PERIOD; // 0.256 s at 48 kHz
    let samples: Vec<f32> = (0..frames).flat_map(|i| [ramp(i, 0), ramp(i, 1)]).collect();
    let writer = feed(
        INPUTS[0],
        samples,
        2,
        48_000.0,
        1.0,
        Duration::from_millis(300),
    );
    let config = audio_source(INPUTS[0], vec![1], 200.0);
    SourceConfig::Audio(config.clone()).validate().unwrap();
    // Arrivals are compared with a time before the source is even opened.
    let t0 = Instant::now();
    let opened = audio_in::open(&config).unwrap();
    assert_eq!(opened.labels, vec!["in1"]);
    assert_eq!(opened.rate.hz(), 48_000.0);
    let Source::Audio(source) = opened.source else {
        unreachable!()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let collected = Arc::new(Mutex::new(Collected::default()));
    // Runs until the FIFO goes quiet: the stall ends it.
    let result = source.run(Box::new(Collect(collected.clone())), &stop);
    assert!(
        matches!(
            result,
            Err(DeviceError::Stalled {
                device: "audio",
                ms: 200
            })
        ),
        "{result:?}"
    );
    writer.join().unwrap();
    // The stream, and with it the sink, is gone once `run` returns.
    assert_eq!(Arc::strong_count(&collected), 1);
    let sink = collected.lock().unwrap();
    assert_eq!(sink.frames, frames, "every fed frame arrived once");
    let mut expected_start = 0;
    let mut last_arrival = t0;
    for (start, chunk, arrived) in &sink.chunks {
        assert_eq!(*start, expected_start, "contiguous chunk headers");
        assert!(chunk.len() <= PERIOD);
        assert!(*arrived >= last_arrival);
        last_arrival = *arrived;
        for (k, &uv) in chunk.iter().enumerate() {
            let i = *start as usize + k;
            let want = f64::from(ramp(i, 1)) * 0.002 * 1e6;
            assert!((uv - want).abs() < 1e-9, "frame {i}: {uv} µV, want {want}");
        }
        expected_start += chunk.len() as u64;
    }
    // Paced at 48 kHz: the last chunk arrives about 0.256 s after the first.
    let span = last_arrival.duration_since(sink.chunks[0].2).as_secs_f64();
    assert!((0.2..0.5).contains(&span), "capture spanned {span:.3} s");
}

/// 8 s of the rodent simulator at 48 kHz as a sound card's channel 0, the
/// config that detects ripples on it, and what the controller makes of the
/// same samples offline.
fn sleep_through_audio(name: &str) -> (Vec<f32>, Config, serde_json::Value) {
    let rate = SampleRate::new(48_000.0).unwrap();
    let mut spec = SimSpec::new(SimPreset::RodentRipple, 8.0, 1, rate);
    spec.channels = 1;
    let sim = simulate(&spec).unwrap();
    let uv = &sim.recording.signals[0].samples;
    let frames = uv.len() / PERIOD * PERIOD;
    // 2 mV full scale; the second device channel carries nothing.
    let samples: Vec<f32> = uv[..frames]
        .iter()
        .flat_map(|&v| [(v / 2000.0) as f32, 0.0])
        .collect();
    let mut config = Preset::RodentRipple.config();
    config.trigger.mode = TriggerMode::Stim;
    config.source = SourceConfig::Audio(audio_source(name, vec![0], 300.0));
    config.validate().unwrap();
    // Offline: the values the live path must produce, in any block size.
    let mut controller = Controller::new(&config, rate, 1).unwrap();
    let mut outbox = Outbox::with_capacity(4096);
    let scaled: Vec<f64> = samples
        .iter()
        .step_by(2)
        .map(|&s| f64::from(s) * 0.002 * 1e6)
        .collect();
    controller
        .process_block(
            &Block {
                start: 0,
                channels: 1,
                samples: &scaled,
            },
            &mut outbox,
        )
        .unwrap();
    controller.finish(&mut outbox);
    let offline = serde_json::json!({
        "trigger": controller.trigger_counters(),
        "frames": controller.counters().frames,
    });
    (samples, config, offline)
}

fn run_audio(config: &Config, out: &Path, duration_s: f64) -> runtime::LiveReport {
    let SourceConfig::Audio(c) = &config.source else {
        unreachable!()
    };
    let opened = audio_in::open(c).unwrap();
    runtime::run_live(
        LiveSpec {
            command: "test",
            config,
            opened,
            outputs: Vec::new(),
            out,
            duration_s: Some(duration_s),
            monitor: None,
        },
        &std::sync::atomic::AtomicBool::new(false),
        |_| {},
    )
    .unwrap()
}

mod replay;
mod summary;
use summary::read_summary;

#[test]
fn a_live_session_from_the_audio_source_decides_exactly_as_offline() {
    alsa_dir();
    let (samples, config, offline) = sleep_through_audio(INPUTS[1]);
    let frames = samples.len() / 2;
    assert!(
        offline["trigger"]["delivered"].as_u64().unwrap() > 0,
        "{offline}"
    );
    // 4 × real time keeps the test short; the session's clock is the sample index.
    let writer = feed(
        INPUTS[1],
        samples,
        2,
        48_000.0,
        4.0,
        Duration::from_millis(200),
    );
    let dir = tempfile::tempdir().unwrap();
    let report = run_audio(&config, &dir.path().join("s"), frames as f64 / 48_000.0);
    writer.join().unwrap();
    assert_eq!(report.ending, Ending::Complete);
    let s = read_summary(&dir.path().join("s"));
    assert_eq!(s["status"], "complete");
    assert_eq!(s["samples"].as_u64().unwrap(), frames as u64);
    assert_eq!(s["trigger"], offline["trigger"]);
    assert_eq!(s["controller"]["frames"], offline["frames"]);
    assert_eq!(s["controller"]["dropped_frames"], 0);
    assert_eq!(s["source"]["device"], INPUTS[1]);
    assert_eq!(s["source"]["xruns"], 0);
    assert_eq!(s["source"]["ring_overrun_frames"], 0);
    assert_eq!(s["runtime"]["acquisition_overrun_frames"], 0);
    assert!(
        s["latency"]["block_processing"]["count"].as_u64().unwrap() >= (frames / PERIOD) as u64
    );
    replay::assert_replay_reproduces(&dir.path().join("s"));
}

#[test]
fn an_audio_input_that_goes_quiet_ends_the_session_as_a_device_fault() {
    alsa_dir();
    let (samples, config, _) = sleep_through_audio(INPUTS[2]);
    // Two seconds of signal, then the FIFO stays open without data.
    let samples = samples[..2 * 48_000 / PERIOD * PERIOD * 2].to_vec();
    let writer = feed(
        INPUTS[2],
        samples,
        2,
        48_000.0,
        4.0,
        Duration::from_millis(1500),
    );
    let dir = tempfile::tempdir().unwrap();
    let report = run_audio(&config, &dir.path().join("s"), 60.0);
    writer.join().unwrap();
    assert_eq!(
        report.ending,
        Ending::Device(DeviceError::Stalled {
            device: "audio",
            ms: 300
        })
    );
    let s = read_summary(&dir.path().join("s"));
    assert_eq!(s["status"], "error");
    assert!(s["error"]
        .as_str()
        .unwrap()
        .contains("audio: no data for 300 ms"));
    assert_eq!(s["runtime"]["outputs_disarmed_before_flush"], true);
    assert!(dir.path().join("s/events.partial.tsv").exists());
}
