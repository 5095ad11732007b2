//! The commands that talk to devices: run, latency-test, emulate, devices, trigger-box test.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};

use neuroloop::config::{Config, Preset};
use neuroloop::device::cyton::emulator as cyton_emulator;
use neuroloop::device::pulsepal::emulator::PulsePalEmulator;
use neuroloop::device::{self, trigger_box};
use neuroloop::runtime::{self, latency::LatencySummary, Ending};
use neuroloop::sim::{self, Preset as SimPreset, SimSpec};
use neuroloop::time::SampleRate;

use super::args::{EmulateArgs, EmulatedDevice, LatencyTestArgs, RunArgs, TriggerBoxTestArgs};
use super::{counts_line, load_config, print_summary, stop_flag, warn_adjustments};

pub(crate) fn run(args: RunArgs) -> Result<()> {
    let mut config = load_config(&args.pipeline, Preset::RodentRipple)?;
    if !(args.duration_s.is_finite() && args.duration_s > 0.0) {
        bail!(
            "--duration-s must be a positive number, got {}",
            args.duration_s
        );
    }
    if !args.pipeline.channels.is_empty() {
        config.input.channels = args
            .pipeline
            .channels
            .iter()
            .map(|c| c.to_string())
            .collect();
    }
    let monitor = args.monitor.map(|addr| runtime::MonitorSpec {
        addr,
        token: args.monitor_token.clone(),
    });
    if let Some(spec) = &monitor {
        spec.check()?;
    }
    let out = args
        .pipeline
        .out
        .clone()
        .unwrap_or_else(|| stamped_session("run"));
    let mut truth = None;
    let opened = match config.source.open()? {
        Some(opened) => opened,
        None => {
            let sim_config = &config.simulator;
            let rate = SampleRate::new(sim_config.rate_hz).context("simulator.rate_hz")?;
            let mut spec = SimSpec::new(sim_config.preset, args.duration_s, sim_config.seed, rate);
            spec.artifacts = sim_config.artifacts;
            spec.event_snr = sim_config.event_snr;
            if let Some(channels) = sim_config.channels {
                spec.channels = channels;
            }
            let simulation = sim::simulate(&spec)?;
            truth = Some(simulation.truth);
            device::file::recording_source(
                &simulation.recording,
                config.input.block_size,
                1.0,
                format!("simulator {} seed {}", sim_config.preset, sim_config.seed),
            )?
        }
    };
    let outputs = device::open_outputs(&config.outputs, config.trigger.pulse_ms, opened.rate)?;
    let output_devices = outputs.len();
    println!(
        "neuroloop run: {} at {} Hz, {} output device(s), up to {} s; Ctrl-C stops, disarms and writes the session",
        opened.description,
        opened.rate.hz(),
        output_devices,
        args.duration_s
    );
    let stop = stop_flag()?;
    let report = runtime::run_live(
        runtime::LiveSpec {
            command: "run",
            config: &config,
            opened,
            outputs,
            out: &out,
            duration_s: Some(args.duration_s),
            monitor,
        },
        &stop,
        |p| println!("t={:6.1} s  {}", p.seconds_done, counts_line(p)),
    )?;
    if let Some(truth) = truth {
        std::fs::write(out.join("truth.tsv"), sim::truth::truth_to_tsv(&truth))
            .with_context(|| format!("cannot write {}", out.join("truth.tsv").display()))?;
    }
    println!(
        "block processing: {}",
        format_latency(&report.latency.block_processing)
    );
    if output_devices == 0 {
        println!("no output device configured: stims were logged in events.tsv, not delivered");
    } else {
        println!(
            "sample arrival → trigger command written: {} ({} triggers written)",
            format_latency(&report.latency.arrival_to_command),
            report.triggers_written
        );
    }
    warn_adjustments(&report.adjustments);
    session_failed(&report)?;
    print_summary(
        &report.dir,
        &report.progress,
        report.ending == Ending::Interrupted,
        report.wall_s,
    );
    Ok(())
}

pub(crate) fn latency_test(args: LatencyTestArgs) -> Result<()> {
    let rig = Config::load(&args.config)?;
    let test = runtime::latency_test::prepare(&rig, args.probes)?;
    let config = &test.config;
    let out = args.out.unwrap_or_else(|| stamped_session("latency-test"));
    let opened = config
        .source
        .open()?
        .context("latency-test needs a device source (prepare refuses the simulator)")?;
    let rate = opened.rate;
    let outputs = device::open_outputs(&config.outputs, config.trigger.pulse_ms, rate)?;
    println!(
        "neuroloop latency-test: {} probes from {} output device(s) back into {} at {} Hz (about {:.0} s); Ctrl-C stops",
        args.probes,
        outputs.len(),
        opened.description,
        rate.hz(),
        test.duration_s
    );
    let stop = stop_flag()?;
    let report = runtime::run_live(
        runtime::LiveSpec {
            command: "latency-test",
            config,
            opened,
            outputs,
            out: &out,
            duration_s: Some(test.duration_s),
            monitor: None,
        },
        &stop,
        |p| println!("t={:6.1} s  {}", p.seconds_done, counts_line(p)),
    )?;
    session_failed(&report)?;
    let rt = runtime::latency_test::record_round_trip(&report.dir, rate)?;
    println!(
        "probes sent {}, returned {}, lost {}{}",
        rt.probes_sent,
        rt.returned,
        rt.lost,
        if rt.not_delivered > 0 {
            format!(
                " ({} not delivered by the trigger policy)",
                rt.not_delivered
            )
        } else {
            String::new()
        }
    );
    match (rt.samples, rt.ms) {
        (Some(s), Some(ms)) => println!(
            "round trip in samples (ms): p50 {} ({:.1}), p99 {} ({:.1}), max {} ({:.1}); resolution 1 sample = {:.2} ms",
            s.p50,
            ms.p50,
            s.p99,
            ms.p99,
            s.max,
            ms.max,
            1000.0 / rate.hz()
        ),
        _ => println!("round trip: no probe came back (check the wiring, detector.channel and detector.threshold_uv)"),
    }
    println!(
        "sample arrival → trigger command written: {}",
        format_latency(&report.latency.arrival_to_command)
    );
    println!("session: {}", report.dir.display());
    if rt.lost > 0 {
        bail!("{} of {} probes did not come back", rt.lost, rt.probes_sent);
    }
    Ok(())
}

pub(crate) fn emulate(args: EmulateArgs) -> Result<()> {
    let stop = stop_flag()?;
    let link = |path: &Path, link: &Option<PathBuf>| -> Result<()> {
        if let Some(link) = link {
            let _ = std::fs::remove_file(link);
            std::os::unix::fs::symlink(path, link)
                .with_context(|| format!("cannot create the link {}", link.display()))?;
            println!("linked {} -> {}", link.display(), path.display());
        }
        Ok(())
    };
    match args.device {
        EmulatedDevice::Openbci(a) => {
            let (frames_uv, simulation) = cyton_signal(a.minutes, a.seed, a.daisy)?;
            if let Some(path) = &a.truth {
                std::fs::write(path, sim::truth::truth_to_tsv(&simulation.truth))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let emulator = cyton_emulator::CytonEmulator::start(cyton_emulator::CytonSpec {
                frames_uv,
                daisy: a.daisy,
                speed: a.speed,
                faults: cyton_emulator::CytonFaults::default(),
            })
            .context("cannot open a pseudo-terminal")?;
            println!(
                "emulated OpenBCI Cyton{} on {} ({} min of the sleep simulator, seed {}, {}x real time); Ctrl-C stops",
                if a.daisy { " + Daisy" } else { "" },
                emulator.path.display(),
                a.minutes,
                a.seed,
                a.speed
            );
            link(&emulator.path, &a.link)?;
            wait_for_stop(&stop);
            let log = emulator.finish()?;
            println!("sent {} packets", log.packets_sent);
        }
        EmulatedDevice::Loopback(a) => {
            if a.channel >= 8 {
                bail!(
                    "--channel must be 0..=7 (the Cyton's 8 channels), got {}",
                    a.channel
                );
            }
            let (frames_uv, _) = cyton_signal(a.minutes, a.seed, false)?;
            let wire = cyton_emulator::LoopbackWire::new();
            let pulse_pal = PulsePalEmulator::start_wired(Some(wire.clone()))
                .context("cannot open a pseudo-terminal")?;
            let cyton = cyton_emulator::CytonEmulator::start_looped(
                cyton_emulator::CytonSpec {
                    frames_uv,
                    daisy: false,
                    speed: 1.0,
                    faults: cyton_emulator::CytonFaults::default(),
                },
                Some(cyton_emulator::Loopback {
                    wire,
                    channel: a.channel,
                    amplitude_uv: a.amplitude_uv,
                    packets: a.pulse_packets,
                }),
            )
            .context("cannot open a pseudo-terminal")?;
            println!(
                "emulated loop-back rig: Cyton on {}, Pulse Pal on {}, output wired into channel {} ({} µV for {} packets); Ctrl-C stops",
                cyton.path.display(),
                pulse_pal.path.display(),
                a.channel,
                a.amplitude_uv,
                a.pulse_packets
            );
            link(&cyton.path, &a.cyton_link)?;
            link(&pulse_pal.path, &a.pulse_pal_link)?;
            wait_for_stop(&stop);
            let triggers = pulse_pal.finish()?.triggers.len();
            let log = cyton.finish()?;
            println!(
                "sent {} packets, looped back {triggers} trigger(s)",
                log.packets_sent
            );
        }
        EmulatedDevice::PulsePal(a) => {
            let emulator = PulsePalEmulator::start().context("cannot open a pseudo-terminal")?;
            println!(
                "emulated Pulse Pal v2 on {}; Ctrl-C stops",
                emulator.path.display()
            );
            link(&emulator.path, &a.link)?;
            let started = std::time::Instant::now();
            let mut shown = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let log = emulator
                    .log
                    .lock()
                    .map_err(|_| anyhow::anyhow!("log poisoned"))?;
                for t in &log.triggers[shown..] {
                    println!(
                        "t={:.4} s  trigger mask {:#06b}",
                        t.at.duration_since(started).as_secs_f64(),
                        t.mask
                    );
                }
                shown = log.triggers.len();
            }
            let log = emulator.finish()?;
            println!(
                "{} handshake(s), {} parameter(s), {} trigger(s), {} abort(s)",
                log.handshakes,
                log.params.len(),
                log.triggers.len(),
                log.aborts
            );
        }
    }
    Ok(())
}

/// Block until Ctrl-C (or SIGTERM/SIGHUP) sets `stop`.
fn wait_for_stop(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The 8-channel (16 with `daisy`) sleep simulator a Cyton emulator streams,
/// interleaved in µV, with the simulation (for its truth).
fn cyton_signal(minutes: f64, seed: u64, daisy: bool) -> Result<(Vec<f64>, sim::Simulation)> {
    let rate = SampleRate::new(device::cyton::rate_hz(daisy)).expect("constant");
    let mut spec = SimSpec::new(SimPreset::Sleep, minutes * 60.0, seed, rate);
    spec.channels = device::cyton::channels(daisy);
    let simulation = sim::simulate(&spec)?;
    Ok((simulation.recording.interleaved(), simulation))
}

pub(crate) fn devices(probe: &[String]) -> Result<()> {
    let ports = serialport::available_ports().context("cannot list serial ports")?;
    if ports.is_empty() {
        println!("no serial ports found");
    }
    let say_hello = |port: &str| match trigger_box::hello(port) {
        Ok(answer) => println!("{port}  {answer}"),
        Err(e) => println!("{port}  no trigger box: {e}"),
    };
    for p in ports {
        match p.port_type {
            serialport::SerialPortType::UsbPort(usb) => {
                println!(
                    "{}  usb {:04x}:{:04x}  {} {}{}",
                    p.port_name,
                    usb.vid,
                    usb.pid,
                    usb.manufacturer.unwrap_or_default(),
                    usb.product.unwrap_or_default(),
                    usb.serial_number
                        .map(|s| format!(" (serial {s})"))
                        .unwrap_or_default()
                );
                if let Some(board) = trigger_box::board(usb.vid, usb.pid) {
                    println!("  {board}: saying HELLO (the board resets when its port opens)");
                    say_hello(&p.port_name);
                }
            }
            serialport::SerialPortType::PciPort => println!("{}  pci", p.port_name),
            serialport::SerialPortType::BluetoothPort => println!("{}  bluetooth", p.port_name),
            serialport::SerialPortType::Unknown => println!("{}  unknown", p.port_name),
        }
    }
    match device::audio::list_devices() {
        Ok(list) if list.is_empty() => println!("no audio devices found"),
        Ok(list) => {
            for line in list {
                println!("audio {line}");
            }
        }
        Err(e) => println!("audio devices not listed: {e}"),
    }
    let lsl = neuroloop::device::lsl::library_description()
        .and_then(|lib| Ok((lib, neuroloop::device::lsl::list_streams(1.0)?)));
    match lsl {
        Ok((lib, streams)) => {
            if streams.is_empty() {
                println!("no LSL streams found ({lib})");
            }
            for stream in streams {
                println!("lsl {stream}");
            }
        }
        Err(e) => println!("LSL streams not listed: {e}"),
    }
    for port in probe {
        say_hello(port);
    }
    Ok(())
}

pub(crate) fn trigger_box_test(a: &TriggerBoxTestArgs) -> Result<()> {
    let mut c = trigger_box::TriggerBoxConfig::new(&a.port);
    c.width_ms = Some(a.width_ms);
    c.count = a.count;
    c.interval_ms = a.interval_ms;
    c.validate()?;
    for o in trigger_box::pulse_outputs(&c, &a.outputs)? {
        match o.refused {
            Some(code) => println!("output {}: refused: {}", o.output, code.name()),
            None => println!(
                "output {}: {} of {} pulses fired{}",
                o.output,
                o.fired,
                o.pulses,
                if o.fired > 0 {
                    format!(", at most {} µs after their planned time", o.late_max_us)
                } else {
                    String::new()
                }
            ),
        }
    }
    Ok(())
}

fn format_latency(s: &Option<LatencySummary>) -> String {
    match s {
        Some(s) => format!(
            "p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs (n={})",
            s.p50_us, s.p99_us, s.max_us, s.count
        ),
        None => "n/a".into(),
    }
}

/// A live session stopped by a device error or a fault is an error.
fn session_failed(report: &runtime::LiveReport) -> Result<()> {
    let Some(reason) = report.ending.error() else {
        return Ok(());
    };
    bail!(
        "{reason}; outputs disarmed, session stopped (partial events kept in {})",
        report.dir.display()
    )
}

/// `sessions/<name>-<unix seconds>`.
fn stamped_session(name: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    PathBuf::from("sessions").join(format!("{name}-{stamp}"))
}
