//! The trigger box end to end: the committed test vectors match the wire
//! format; the firmware's host tests pass; the real firmware runs in simavr
//! (`firmware/sim/tb_sim`) behind a pseudo-terminal, driven by the real
//! serial driver, and every timing claim is checked from the VCD trace in
//! simulated time.

use std::path::{Path, PathBuf};

fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware")
}

/// `firmware/test/vectors/frames.tsv` is what `protocol::test_vectors` writes
/// (set NEUROLOOP_UPDATE_VECTORS=1 to rewrite it after a protocol change).
#[test]
fn vectors_are_up_to_date() {
    let path = firmware_dir().join("test/vectors/frames.tsv");
    let expected = neuroloop::protocol::test_vectors();
    if std::env::var_os("NEUROLOOP_UPDATE_VECTORS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is stale: run NEUROLOOP_UPDATE_VECTORS=1 cargo test --release --test trigger_box vectors",
        path.display()
    );
}

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use neuroloop::device::trigger_box::{TriggerBox, TriggerBoxConfig};
use neuroloop::protocol::{Code, Command, Schedule};

/// `make -C firmware test`: the portable core's host tests against the
/// vectors above, and the parser fuzz.
#[test]
fn firmware_host_tests_pass() {
    build();
    let out = make(&["test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make(args: &[&str]) -> std::process::Output {
    Process::new("make")
        .arg("-C")
        .arg(firmware_dir())
        .args(args)
        .output()
        .expect("make runs")
}

/// Build the firmware and the simavr harness once. A missing toolchain is a
/// failure that says what to install: CI (tests/run-all.sh) installs it.
fn build() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = make(&["all", "sim"]);
        assert!(
            out.status.success(),
            "building the trigger-box firmware and its simavr harness failed; it needs \
             `apt-get install gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev make gcc` \
             (tests/run-all.sh installs them):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{}", String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or(""));
    });
}

/// The firmware running in simavr behind a pty.
struct Sim {
    child: Child,
    pty: String,
    /// CLOCK_MONOTONIC ns of simulated cycle 0, and the device clock's drift.
    w0_ns: i64,
    ppm: f64,
    vcd: PathBuf,
    _dir: tempfile::TempDir,
    /// One simulation at a time: simavr paced to the wall clock needs a
    /// core, and the machine may have few.
    _turn: MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn monotonic_ns() -> i64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

impl Sim {
    fn start(ppm: f64) -> Sim {
        build();
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let vcd = dir.path().join("pins.vcd");
        let fw = firmware_dir().join("build");
        let mut child = Process::new(fw.join("tb_sim"))
            .arg(fw.join("trigger_box.elf"))
            .arg("--vcd")
            .arg(&vcd)
            .arg("--ppm")
            .arg(ppm.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tb_sim starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut pty = None;
        let mut w0_ns = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first() {
                Some(&"pty") => pty = Some(words[1].to_string()),
                Some(&"clock") => {
                    w0_ns = Some(words[2].parse().unwrap());
                    break;
                }
                _ => {}
            }
        }
        Sim {
            child,
            pty: pty.expect("tb_sim printed its pty"),
            w0_ns: w0_ns.expect("tb_sim printed its clock"),
            ppm,
            vcd,
            _dir: dir,
            _turn: turn,
        }
    }

    fn config(&self) -> TriggerBoxConfig {
        let mut c = TriggerBoxConfig::new(&self.pty);
        c.sync_interval_ms = 100.0;
        c
    }

    /// Stop the simulation and read its trace.
    fn finish(self) -> Vcd {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let out = self.child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        eprintln!("{}", said.trim());
        assert!(out.status.success(), "tb_sim failed: {:?}", out.status);
        let lag_ms = said
            .split("max lag behind the wall clock ")
            .nth(1)
            .and_then(|rest| rest.split(" ms").next())
            .and_then(|v| v.parse().ok())
            .expect("tb_sim printed its lag");
        Vcd {
            lag_ms,
            ..Vcd::read(&std::fs::read_to_string(&self.vcd).unwrap())
        }
    }
}

/// The pins and markers of a simavr VCD trace, times in ns of simulated time.
struct Vcd {
    /// Per signal name: (time, value) at each change.
    changes: HashMap<String, Vec<(f64, u8)>>,
    /// How far the simulation fell behind the wall clock it is paced to
    /// (a loaded machine), as tb_sim reported it.
    lag_ms: f64,
}

impl Vcd {
    fn read(text: &str) -> Vcd {
        let mut scale_ns = 1.0;
        let mut names = HashMap::new();
        let mut changes: HashMap<String, Vec<(f64, u8)>> = HashMap::new();
        let mut t = 0.0;
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.first() {
                Some(&"$timescale") => {
                    let unit = w[1];
                    let digits: String = unit.chars().take_while(char::is_ascii_digit).collect();
                    let factor = match &unit[digits.len()..] {
                        "ns" => 1.0,
                        "us" => 1e3,
                        "ps" => 1e-3,
                        other => panic!("timescale {other}"),
                    };
                    scale_ns = digits.parse::<f64>().unwrap() * factor;
                }
                Some(&"$var") => {
                    names.insert(w[3].to_string(), w[4].to_string());
                }
                Some(s) if s.starts_with('#') => t = s[1..].parse::<f64>().unwrap() * scale_ns,
                Some(s) if s.starts_with('0') || s.starts_with('1') => {
                    if let Some(name) = names.get(&s[1..]) {
                        changes
                            .entry(name.clone())
                            .or_default()
                            .push((t, s.as_bytes()[0] - b'0'));
                    }
                }
                _ => {}
            }
        }
        Vcd {
            changes,
            lag_ms: 0.0,
        }
    }

    /// Times (ns) at which `signal` went to `value`.
    fn edges(&self, signal: &str, value: u8) -> Vec<f64> {
        let mut last = None;
        let mut out = Vec::new();
        for &(t, v) in self.changes.get(signal).map(Vec::as_slice).unwrap_or(&[]) {
            if v == value && last != Some(value) {
                out.push(t);
            }
            last = Some(v);
        }
        out
    }

    /// Simulated ns at device time 0: Timer1 overflows at every multiple of
    /// 32768 µs of the device clock. simavr raises the overflow flag after
    /// the instruction during which it happened, up to 5 cycles (312.5 ns)
    /// late, never early: the earliest overflow on the grid dates it. Checks
    /// that every overflow is on that grid.
    fn device_origin_ns(&self) -> f64 {
        const PERIOD_NS: f64 = 32_768_000.0;
        const INSTRUCTION_NS: f64 = 5.0 * 62.5;
        let tov = self.edges("tov1", 1);
        assert!(tov.len() >= 2, "no Timer1 overflows traced");
        let late: Vec<f64> = tov
            .iter()
            .map(|&t| {
                let k = ((t - tov[0]) / PERIOD_NS).round();
                t - k * PERIOD_NS
            })
            .collect();
        let earliest = late.iter().cloned().fold(f64::INFINITY, f64::min);
        for (&t, &l) in tov.iter().zip(&late) {
            assert!(
                l - earliest <= INSTRUCTION_NS,
                "an overflow at {t} ns is {} ns off the grid",
                l - earliest
            );
        }
        earliest - PERIOD_NS
    }
}

/// Connected and armed, with a fast sync for the tests.
fn open_box(sim: &Sim, timeout_ms: u16) -> TriggerBox {
    let mut c = sim.config();
    c.timeout_ms = timeout_ms;
    c.heartbeat_ms = f64::from(timeout_ms) / 5.0;
    TriggerBox::open(&c, 1.0).expect("the simulated box answers and arms")
}

/// Keep the box alive for `d`, as the runtime's sink thread does.
fn serve(tb: &mut TriggerBox, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        tb.service().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Target: every pulse starts within 4 µs of its scheduled device time, with
/// its exact width, over ≥ 1000 pulses on four outputs at mixed rates.
///
/// Trains are sent 150 ms ahead. A train that still reached the box after
/// its start (a host or a harness too slow under load) starts when the box
/// said it would (its RESULT): its pulses are checked against that start
/// and counted apart, so load shows up as a count, never as a timing error.
#[test]
fn a_thousand_pulses_at_mixed_rates_land_on_time_with_exact_width() {
    let sim = Sim::start(0.0);
    let mut tb = open_box(&sim, 500);
    // (output, pulses per train, width µs, interval µs, trains every µs)
    let plans = [
        (1u8, 10u16, 100u32, 1000u32, 100_000u64),
        (2, 4, 1000, 7000, 50_000),
        (3, 3, 2500, 10_000, 60_000),
        (4, 1, 50, 0, 43_000),
    ];
    let first = tb.device_us_at(Instant::now()) + 300_000;
    let span_us = 4_600_000u64;
    let mut next: Vec<u64> = plans.iter().map(|_| first).collect();
    // (tag, the train)
    let mut sent: Vec<(u16, Schedule)> = Vec::new();
    while next.iter().any(|&n| n < first + span_us) {
        let horizon = tb.device_us_at(Instant::now()) + 150_000;
        for (k, &(output, count, width, interval, every)) in plans.iter().enumerate() {
            while next[k] < first + span_us && next[k] < horizon {
                let train = Schedule {
                    output,
                    immediate: false,
                    tag: 0,
                    start_us: next[k] as u32,
                    width_us: width,
                    interval_us: interval,
                    count,
                };
                sent.push((tb.schedule(train, next[k], 0).unwrap(), train));
                next[k] += every;
            }
        }
        if let Err(e) = tb.service() {
            drop(tb);
            let vcd = sim.finish();
            panic!("{e}; armed changes {:?}", vcd.changes.get("armed"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    serve(&mut tb, Duration::from_millis(300));
    let report = neuroloop::device::TriggerOutput::report(&tb).unwrap();
    let starts: HashMap<u16, u64> = tb
        .deliveries()
        .iter()
        .filter_map(|d| Some((d.tag, d.start_us?)))
        .collect();
    drop(tb);
    let vcd = sim.finish();
    let origin = vcd.device_origin_ns();
    assert_eq!(
        report["counts"]["refused"],
        serde_json::json!({}),
        "{report}"
    );
    // (output, start µs, width µs) of every pulse, from the box's start.
    let mut expected: Vec<(u8, u64, u32)> = Vec::new();
    let mut late_trains = 0;
    for (tag, t) in &sent {
        let start = *starts
            .get(tag)
            .unwrap_or_else(|| panic!("train {tag} was never answered: {report}"));
        late_trains += usize::from(start != u64::from(t.start_us));
        for i in 0..u64::from(t.count) {
            expected.push((t.output, start + i * u64::from(t.interval_us), t.width_us));
        }
    }
    assert!(expected.len() >= 1000, "{} pulses", expected.len());

    let mut start_err = Vec::new();
    let mut width_err = Vec::new();
    for output in 1..=4u8 {
        let name = format!("out{output}");
        let rises = vcd.edges(&name, 1);
        let falls = vcd.edges(&name, 0);
        let want: Vec<&(u8, u64, u32)> = expected.iter().filter(|e| e.0 == output).collect();
        assert_eq!(rises.len(), want.len(), "{name}: pulses seen vs scheduled");
        for (i, (&&(_, at, width), rise)) in want.iter().zip(&rises).enumerate() {
            let device_us = (rise - origin) / 1000.0;
            let fall = falls
                .iter()
                .find(|&&f| f > *rise)
                .unwrap_or_else(|| panic!("{name} pulse {i} never fell"));
            start_err.push(device_us - at as f64);
            width_err.push((fall - rise) / 1000.0 - f64::from(width));
        }
    }
    let max_abs = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let (lo, hi) = start_err
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    eprintln!(
        "{} pulses in {} trains ({late_trains} reached the box after their start): \
         start − scheduled {lo:.3} … {hi:.3} µs; width error max {:.3} µs",
        start_err.len(),
        sent.len(),
        max_abs(&width_err)
    );
    assert!(
        max_abs(&start_err) <= 4.0,
        "start errors up to {} µs",
        max_abs(&start_err)
    );
    // Exact to the device clock's tick (0.5 µs): both edges land within
    // the same few cycles after their tick.
    assert!(
        max_abs(&width_err) < 0.5,
        "width errors up to {} µs",
        max_abs(&width_err)
    );
}

/// Requests outside the firmware's limits are refused and fire nothing.
#[test]
fn out_of_limit_requests_are_refused() {
    let sim = Sim::start(0.0);
    let mut tb = open_box(&sim, 500);
    // Ahead by more than the round trips of the refusals take.
    let now = tb.device_us_at(Instant::now()) as u32;
    let start = now + 400_000;
    let ok = Schedule {
        output: 1,
        immediate: false,
        tag: 1,
        start_us: start,
        width_us: 1000,
        interval_us: 0,
        count: 1,
    };
    let cases = [
        (
            Schedule {
                width_us: 100_001,
                ..ok
            },
            5,
            100_000,
        ),
        (Schedule { width_us: 49, ..ok }, 5, 50),
        (Schedule { output: 5, ..ok }, 4, 4),
        (
            Schedule {
                count: 2,
                interval_us: 999,
                ..ok
            },
            6,
            1050,
        ),
        (
            Schedule {
                count: 51,
                interval_us: 2000,
                ..ok
            },
            7,
            50,
        ),
        (
            Schedule {
                start_us: start.wrapping_add(61_000_000),
                ..ok
            },
            9,
            60_000_000,
        ),
        (
            Schedule {
                start_us: now.wrapping_sub(300_000),
                ..ok
            },
            8,
            100_000,
        ),
    ];
    for (s, code, detail) in cases {
        assert_eq!(
            tb.command(Command::Schedule(s)).unwrap(),
            (Code(code), detail),
            "{s:?}"
        );
    }
    // The limit on trains the host did not space: the box refuses overlap.
    assert_eq!(
        tb.command(Command::Schedule(ok)).unwrap(),
        (Code::OK, start),
        "accepted, to start as asked"
    );
    assert_eq!(
        tb.command(Command::Schedule(Schedule {
            start_us: start + 500,
            ..ok
        }))
        .unwrap()
        .0,
        Code(11)
    );
    serve(&mut tb, Duration::from_millis(600));
    let status = tb.status().unwrap().unwrap();
    let neuroloop::protocol::Reply::Status { counters, .. } = status else {
        unreachable!()
    };
    assert_eq!(counters[7], 8, "refusals counted by the box: {counters:?}");
    drop(tb);
    let vcd = sim.finish();
    assert_eq!(vcd.edges("out1", 1).len(), 1, "only the valid pulse fired");
}

/// A box found disarmed behind the host's back (what a watchdog reset
/// leaves) ends the session at the next stim instead of losing stims
/// silently.
#[test]
fn a_box_found_disarmed_mid_session_is_an_error() {
    let sim = Sim::start(0.0);
    let mut tb = open_box(&sim, 500);
    assert_eq!(tb.command(Command::Disarm).unwrap().0, Code::OK);
    let start = tb.device_us_at(Instant::now()) + 50_000;
    tb.schedule(tb.train(), start, 0).unwrap();
    let err = tb
        .settle(Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not armed"), "{err}");
    drop(tb);
    let vcd = sim.finish();
    assert!(vcd.edges("out1", 1).is_empty(), "nothing fired");
}

/// Target: with no frame from the host, the box disarms within the
/// configured time ± 1 ms of simulated time (from the VCD: the last host
/// frame entering the UART, the armed LED going off).
#[test]
fn heartbeat_loss_disarms_within_a_millisecond_of_the_timeout() {
    let sim = Sim::start(0.0);
    let timeout_ms = 200u16;
    let mut tb = open_box(&sim, timeout_ms);
    serve(&mut tb, Duration::from_millis(400));
    // Go silent: a host that hung.
    std::thread::sleep(Duration::from_millis(600));
    let err = tb.service().unwrap_err();
    assert!(err.to_string().contains("heartbeat lost"), "{err}");
    drop(tb);
    let vcd = sim.finish();
    let frames = vcd.edges("host_frame", 1);
    let frames0 = vcd.edges("host_frame", 0);
    let armed_on = vcd.edges("armed", 1);
    let armed_off = vcd.edges("armed", 0);
    let off = *armed_off.last().unwrap();
    assert!(
        armed_on.len() == 1 && off > armed_on[0],
        "armed once, then disarmed"
    );
    let last_frame = frames
        .iter()
        .chain(&frames0)
        .filter(|&&t| t < off)
        .fold(0.0f64, |m, &t| m.max(t));
    // The delimiter finishes arriving one byte time after it enters the UART
    // (simavr: 11 bit times at the configured 117647 baud = 93.5 µs).
    let received = last_frame + 93_500.0;
    let silence_ms = (off - received) / 1e6;
    eprintln!("disarmed {silence_ms:.4} ms after the last host frame (timeout {timeout_ms} ms)");
    assert!(
        (silence_ms - f64::from(timeout_ms)).abs() <= 1.0,
        "{silence_ms} ms"
    );
}

/// Target: clock sync within 20 µs with the device clock running 100 ppm
/// fast or slow: the true error of the mapping from host time to device
/// time, against the harness's pacing and the VCD's device-time origin
/// (4 s of round trips every 50 ms; the mapping probed just after). The
/// residual (scatter of the faster round trips around the model) is
/// printed; on a loaded machine it follows the scheduler's wake-up jitter
/// (5-42 µs measured). See firmware/README.md for the figures.
#[test]
fn clock_sync_holds_20_us_at_plus_and_minus_100_ppm() {
    for ppm in [100.0, -100.0] {
        let sim = Sim::start(ppm);
        let mut c = sim.config();
        c.sync_interval_ms = 50.0;
        let mut tb = TriggerBox::open(&c, 1.0).expect("the simulated box answers and arms");
        serve(&mut tb, Duration::from_millis(4000));
        let s = tb.sync_summary();
        let probes: Vec<(i64, u64)> = (0..5)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(20));
                let now = Instant::now();
                (monotonic_ns(), tb.device_us_at(now))
            })
            .collect();
        drop(tb);
        let (w0, drift) = (sim.w0_ns, sim.ppm);
        let vcd = sim.finish();
        let origin_ns = vcd.device_origin_ns();
        let true_err: Vec<f64> = probes
            .iter()
            .map(|&(mono, est)| {
                let sim_ns = (mono - w0) as f64 * (1.0 + drift * 1e-6);
                est as f64 - (sim_ns - origin_ns) / 1000.0
            })
            .collect();
        eprintln!(
            "{ppm:+} ppm: {} round trips ({} used), residual rms {:.1} µs max {:.1} µs, drift {:.1} ppm, \
             min delay {:.0} µs; mapping error vs truth {:?} µs",
            s.round_trips,
            s.used,
            s.residual_rms_us,
            s.residual_max_us,
            s.drift_ppm,
            s.min_delay_us,
            true_err.iter().map(|e| e.round()).collect::<Vec<_>>()
        );
        // The link's timing is only as good as the harness's pacing: a
        // simulation behind the wall clock sends the box's frames late, which
        // lengthens round trips unevenly and biases the offset. The targets
        // (mapping within 20 µs of the truth, residual rms within 40 µs,
        // drift within 10 ppm) are checked when it kept within half a
        // millisecond; behind that, only gross failures (100 µs, 200 µs rms,
        // 25 ppm: 12.3 ppm off was seen with a build running beside it), and
        // no residual at all when it lagged 10 ms (807 µs rms with a 56-ms
        // lag, the mapping still within 11 µs).
        let worst = true_err.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        let (max_err_us, max_rms_us, max_drift_err_ppm) = if vcd.lag_ms <= 0.5 {
            (20.0, 40.0, 10.0)
        } else {
            eprintln!(
                "harness lagged {} ms behind the wall clock (machine load): gross checks only",
                vcd.lag_ms
            );
            (100.0, 200.0, 25.0)
        };
        if vcd.lag_ms <= 10.0 {
            assert!(s.residual_rms_us <= max_rms_us, "{s:?}");
        }
        assert!((s.drift_ppm - ppm).abs() < max_drift_err_ppm, "{s:?}");
        assert!(worst <= max_err_us, "mapping off by {worst:.1} µs: {s:?}");
    }
}

/// Target: a closed-loop `neuroloop run` (simulator source, ripple detector)
/// with the box in simavr delivers every accepted stim: each stim of
/// `events.tsv` has its planned and fired device times in `latency.tsv`,
/// fired as planned (the stims are scheduled 20 ms ahead, more than the
/// link takes), and a pulse of the configured width on the box's output 1
/// at that device time in the VCD.
#[test]
fn a_closed_loop_run_delivers_every_accepted_stim_on_the_box() {
    use neuroloop::config::{DetectorConfig, Preset};
    use neuroloop::device::OutputConfig;

    let sim = Sim::start(0.0);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Preset::RodentRipple.config();
    // Detections within seconds: the simulator's seed 4 has immobility with
    // ripples from 1.3 s on (seven stims in the first 15 s when replayed);
    // a short warm-up and baseline, no brain-state gate.
    config.simulator.seed = 4;
    let DetectorConfig::Ripple(ripple) = &mut config.detector else {
        unreachable!("the ripple preset")
    };
    ripple.warmup_s = 1.0;
    ripple.baseline.window_s = 3.0;
    ripple.state.enabled = false;
    config.trigger.delay_min_ms = 20.0;
    config.trigger.delay_max_ms = 20.0;
    config.outputs.push(OutputConfig::TriggerBox(sim.config()));
    let rig = dir.path().join("rig.toml");
    std::fs::write(&rig, config.to_toml()).unwrap();
    let session = dir.path().join("session");
    let out = Process::new(env!("CARGO_BIN_EXE_neuroloop"))
        .arg("run")
        .arg("--config")
        .arg(&rig)
        .args(["--duration-s", "15", "--out"])
        .arg(&session)
        .output()
        .unwrap();
    let vcd = sim.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = |name: &str| -> Vec<HashMap<String, String>> {
        let text = std::fs::read_to_string(session.join(name)).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
        lines
            .map(|l| {
                header
                    .iter()
                    .zip(l.split('\t'))
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    };
    let stims: Vec<u64> = table("events.tsv")
        .iter()
        .filter(|e| e["trial_type"] == "stim")
        .map(|e| e["sample"].parse().unwrap())
        .collect();
    let delivered = table("latency.tsv");
    assert!(stims.len() >= 3, "{} stims in 15 s", stims.len());
    assert_eq!(
        delivered
            .iter()
            .map(|r| r["onset_sample"].parse::<u64>().unwrap())
            .collect::<Vec<_>>(),
        stims,
        "every stim handed to the box"
    );
    let origin = vcd.device_origin_ns();
    let rises = vcd.edges("out1", 1);
    let falls = vcd.edges("out1", 0);
    assert_eq!(rises.len(), stims.len(), "one pulse per stim");
    for (r, rise) in delivered.iter().zip(&rises) {
        let planned: f64 = r["planned_device_us"].parse().unwrap();
        let fired: f64 = r["fired_device_us"].parse().unwrap();
        assert_eq!(fired, planned, "fired as planned: {r:?}");
        let at = (rise - origin) / 1000.0;
        assert!((at - fired).abs() <= 4.0, "pulse at {at} µs, fired {fired}");
        let fall = falls.iter().find(|&&f| f > *rise).unwrap();
        assert!(((fall - rise) / 1000.0 - 1000.0).abs() < 0.5, "1-ms pulse");
    }
    eprintln!(
        "{} stims, each fired at its planned device time (pulse within {:.2} µs of it)",
        stims.len(),
        delivered
            .iter()
            .zip(&rises)
            .map(|(r, rise)| ((rise - origin) / 1000.0
                - r["fired_device_us"].parse::<f64>().unwrap())
            .abs())
            .fold(0.0, f64::max)
    );
}

/// A pty whose far end answers HELLO with `hello` (its `re` filled in), or
/// stays silent (`None`). Returns the port's path; the fake lives as long as
/// the returned guard (the near end, and the far end of a silent box: the
/// port vanishes when the far end closes).
fn fake_box(
    hello: Option<neuroloop::protocol::Hello>,
) -> (String, (std::fs::File, Option<std::fs::File>)) {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: valid out-pointers; the name buffer is larger than any pty name.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            name.as_mut_ptr(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: the name is NUL-terminated by openpty.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: fresh descriptors from openpty, each owned by one File.
    let (mut far, near) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let Some(hello) = hello else {
        return (path, (near, Some(far)));
    };
    std::thread::spawn(move || {
        let mut frames = neuroloop::protocol::FrameReader::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = far.read(&mut buf) {
            for &b in &buf[..n] {
                if let Some(Ok(f)) = frames.push(b) {
                    if f.msg_type == neuroloop::protocol::msg::HELLO {
                        let reply = neuroloop::protocol::Reply::Hello(neuroloop::protocol::Hello {
                            re: f.seq,
                            ..hello
                        });
                        let (t, body) = reply.encode_body();
                        let _ = far.write_all(&neuroloop::protocol::encode_frame(0, t, &body));
                    }
                }
            }
        }
    });
    (path, (near, None))
}

/// Bad input: a missing, silent or wrong-version box, or one whose limits
/// the configured pulses exceed, is refused before anything is armed, with
/// an error that says which.
#[test]
fn a_missing_silent_wrong_version_or_too_limited_box_is_refused() {
    let hello = neuroloop::protocol::Hello {
        re: 0,
        protocol: neuroloop::protocol::PROTOCOL_VERSION,
        firmware: (1, 0),
        outputs: 4,
        reset_cause: 1,
        min_width_us: 50,
        max_width_us: 100_000,
        min_interval_us: 1000,
        min_gap_us: 50,
        max_rate_hz: 200,
        rate_burst: 50,
        heartbeat_ms: 500,
    };
    let open = |port: &str, width_ms: f64| {
        let mut c = TriggerBoxConfig::new(port);
        c.hello_timeout_ms = 300.0;
        TriggerBox::open(&c, width_ms)
            .err()
            .expect("refused")
            .to_string()
    };
    let missing = open("/dev/neuroloop-no-such-port", 1.0);
    assert!(missing.contains("cannot open"), "{missing}");
    let (port, _silent) = fake_box(None);
    let silent = open(&port, 1.0);
    assert!(
        silent.contains("no trigger box answered within 300 ms"),
        "{silent}"
    );
    let (port, _old) = fake_box(Some(neuroloop::protocol::Hello {
        protocol: 9,
        ..hello
    }));
    let old = open(&port, 1.0);
    assert!(old.contains("speaks protocol 9"), "{old}");
    let (port, _narrow) = fake_box(Some(neuroloop::protocol::Hello {
        max_width_us: 500,
        ..hello
    }));
    let narrow = open(&port, 1.0);
    assert!(
        narrow.contains("pulse width 1000 µs is outside 50..500"),
        "{narrow}"
    );
}

/// `neuroloop devices --probe PORT` says HELLO and describes the box;
/// `neuroloop trigger-box test` fires its train on each output (VCD).
#[test]
fn the_cli_finds_the_box_and_pulses_each_output() {
    let sim = Sim::start(0.0);
    let cli = |args: &[&str]| {
        let out = Process::new(env!("CARGO_BIN_EXE_neuroloop"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let devices = cli(&["devices", "--probe", &sim.pty]);
    assert!(
        devices.contains(&format!(
            "{}  trigger box, firmware 1.0, protocol 1, 4 outputs",
            sim.pty
        )),
        "{devices}"
    );
    let test = cli(&[
        "trigger-box",
        "test",
        "--port",
        &sim.pty,
        "--count",
        "3",
        "--width-ms",
        "2",
        "--interval-ms",
        "20",
    ]);
    let vcd = sim.finish();
    for output in 1..=4 {
        assert!(
            test.contains(&format!("output {output}: 3 of 3 pulses fired")),
            "{test}"
        );
        let name = format!("out{output}");
        let (rises, falls) = (vcd.edges(&name, 1), vcd.edges(&name, 0));
        assert_eq!(rises.len(), 3, "{name}");
        for (r, f) in rises.iter().zip(falls.iter().filter(|&&f| f > rises[0])) {
            assert!(((f - r) / 1e6 - 2.0).abs() < 1e-3, "{name}: 2-ms pulses");
        }
    }
}
