//! The `neuroloop` command line. `anyhow` lives only here: library errors are
//! typed, and this layer adds the context a user needs and exits non-zero.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use neuroloop::click::ClickSpec;
use neuroloop::config::{Config, Preset};
use neuroloop::device::cyton::emulator as cyton_emulator;
use neuroloop::device::pulsepal::emulator::PulsePalEmulator;
use neuroloop::device::{self, trigger_box};
use neuroloop::eval::hypnogram::Stage;
use neuroloop::eval::{self, tables};
use neuroloop::io::{self, FileOptions, RawLayout};
use neuroloop::recording::ChannelSelector;
use neuroloop::runtime::{self, latency::LatencySummary, Ending};
use neuroloop::session::{run_session, Pacing, Progress, SessionInput};
use neuroloop::sim::{self, Preset as SimPreset, SimSpec};
use neuroloop::time::SampleRate;

#[derive(Parser)]
#[command(
    name = "neuroloop",
    version,
    about = "Closed-loop neurostimulation controller"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More diagnostics (-v debug, -vv trace); `RUST_LOG` overrides both flags.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Fewer diagnostics (-q warnings and errors only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    quiet: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic recording (EDF) with its ground truth (truth.tsv).
    Simulate(SimulateArgs),
    /// Run the closed loop over a recorded file and write a session folder.
    Replay(ReplayArgs),
    /// Score a session's events.tsv against ground truth.
    Eval(EvalArgs),
    /// Figures (PNG, SVG) and a self-contained HTML page of what a session did.
    Report(ReportArgs),
    /// A realtime session. With no config: a closed loop against the built-in
    /// simulator, paced in real time; `[source]`/`[[outputs]]` select devices.
    Run(RunArgs),
    /// Measure the true round trip on a rig whose output is wired back into an
    /// input: `[detector] kind = "latency-probe"` with the config's `[source]`
    /// and `[[outputs]]`.
    LatencyTest(LatencyTestArgs),
    /// Render the sleep-stimulation click (pink noise) to a WAV file for calibration.
    Click(ClickArgs),
    /// Serve an emulated device on a pseudo-terminal (for tests and demos).
    Emulate(EmulateArgs),
    /// List serial ports (with USB vendor/product ids), audio devices (ALSA
    /// PCM names) and LSL streams; say HELLO to the ports a trigger box may be on.
    Devices(DevicesArgs),
    /// The trigger box (`firmware/`, `hardware/`).
    TriggerBox(TriggerBoxArgs),
    /// Print what the reader sees in a recording: format, streams, channels
    /// (index, label, unit, rate, length), annotations and notices, to pick
    /// `--stream` and `--channel` for `replay`.
    Info(InfoArgs),
}

/// How to read a recording file (the formats that need to be told).
#[derive(Args)]
struct FileArgs {
    /// Channels in a headerless .dat file.
    #[arg(long)]
    raw_channels: Option<usize>,
    /// Sample rate of a headerless .dat file.
    #[arg(long)]
    raw_rate_hz: Option<f64>,
    /// Scale of a headerless .dat file.
    #[arg(long, default_value_t = 1.0)]
    raw_uv_per_bit: f64,
    /// Volts at digital full scale, for .wav input.
    #[arg(long, default_value_t = 1.0)]
    wav_volts_per_full_scale: f64,
}

impl FileArgs {
    fn options(&self) -> Result<FileOptions> {
        Ok(FileOptions {
            raw: match (self.raw_channels, self.raw_rate_hz) {
                (Some(channels), Some(rate_hz)) => Some(RawLayout {
                    channels,
                    rate_hz,
                    uv_per_bit: self.raw_uv_per_bit,
                }),
                (None, None) => None,
                _ => bail!("--raw-channels and --raw-rate-hz go together"),
            },
            wav_volts_per_full_scale: self.wav_volts_per_full_scale,
        })
    }
}

#[derive(Args)]
struct InfoArgs {
    /// A recording in any format `replay` reads.
    input: PathBuf,
    /// Also read every sample of every stream: checks the whole file and
    /// prints each signal's range and the read throughput.
    #[arg(long)]
    read: bool,
    #[command(flatten)]
    file: FileArgs,
}

#[derive(Args)]
struct DevicesArgs {
    /// Also say HELLO on this port (one without USB ids, e.g. `tb_sim`'s pty).
    #[arg(long)]
    probe: Vec<String>,
}

#[derive(Args)]
struct TriggerBoxArgs {
    #[command(subcommand)]
    command: TriggerBoxCommand,
}

#[derive(Subcommand)]
enum TriggerBoxCommand {
    /// Arm the box and fire a train on each output in turn (wire a scope or
    /// LEDs to the BNCs, not a stimulator); print what the box reports.
    Test(TriggerBoxTestArgs),
}

#[derive(Args)]
struct TriggerBoxTestArgs {
    /// The box's serial port (`neuroloop devices` lists it).
    #[arg(long)]
    port: String,
    /// Outputs to pulse, in this order.
    #[arg(long, value_delimiter = ',', default_values_t = [1u8, 2, 3, 4])]
    outputs: Vec<u8>,
    #[arg(long, default_value_t = 10.0)]
    width_ms: f64,
    /// Pulses per output.
    #[arg(long, default_value_t = 5)]
    count: u16,
    /// Start to start.
    #[arg(long, default_value_t = 100.0)]
    interval_ms: f64,
}

#[derive(Args)]
struct LatencyTestArgs {
    /// The rig's TOML config.
    #[arg(long)]
    config: PathBuf,
    /// How many probes to send.
    #[arg(long, default_value_t = 100)]
    probes: u32,
    /// Output folder for the session.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ClickArgs {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 48_000)]
    rate_hz: u32,
    #[arg(long, default_value_t = 50.0)]
    duration_ms: f64,
    #[arg(long, default_value_t = 5.0)]
    ramp_ms: f64,
    /// RMS level of the plateau in dB relative to full scale.
    #[arg(long, default_value_t = -20.0, allow_hyphen_values = true)]
    level_dbfs: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct EmulateArgs {
    #[command(subcommand)]
    device: EmulatedDevice,
}

#[derive(Subcommand)]
enum EmulatedDevice {
    /// An OpenBCI Cyton streaming the sleep simulator as 33-byte packets at 250 Hz.
    Openbci(EmulateOpenbciArgs),
    /// A Pulse Pal v2 that prints each trigger it receives.
    PulsePal(EmulatePulsePalArgs),
    /// A latency-test rig: a Cyton (sleep simulator) and a Pulse Pal whose
    /// output is wired back into the Cyton's channel `--channel`.
    Loopback(EmulateLoopbackArgs),
}

#[derive(Args)]
struct EmulateLoopbackArgs {
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Cyton channel (0-based, of 8) the Pulse Pal's output is wired into.
    #[arg(long, default_value_t = 7)]
    channel: usize,
    /// Amplitude of the looped-back pulse.
    #[arg(long, default_value_t = 50_000.0)]
    amplitude_uv: f64,
    /// Its length in packets (samples).
    #[arg(long, default_value_t = 3)]
    pulse_packets: u64,
    #[arg(long)]
    cyton_link: Option<PathBuf>,
    #[arg(long)]
    pulse_pal_link: Option<PathBuf>,
}

#[derive(Args)]
struct EmulateOpenbciArgs {
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// 16 channels (Cyton + Daisy) at 125 Hz.
    #[arg(long)]
    daisy: bool,
    /// Pacing relative to real time.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Also make a symlink to the pty at this path.
    #[arg(long)]
    link: Option<PathBuf>,
    /// Write the simulator's ground truth here.
    #[arg(long)]
    truth: Option<PathBuf>,
}

#[derive(Args)]
struct EmulatePulsePalArgs {
    #[arg(long)]
    link: Option<PathBuf>,
}

#[derive(Args)]
struct SimulateArgs {
    #[arg(long, value_enum)]
    preset: SimPreset,
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sample rate in Hz (default: 1250 for rodent-ripple, 250 for sleep).
    #[arg(long)]
    rate: Option<f64>,
    /// Number of channels (default: the preset's).
    #[arg(long)]
    channels: Option<usize>,
    /// Scale of the simulated events' amplitude (1 = realistic).
    #[arg(long, default_value_t = 1.0)]
    event_snr: f64,
    /// Leave out the distractors and artifacts.
    #[arg(long)]
    no_artifacts: bool,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct PipelineArgs {
    /// A TOML config (see src/presets/ for examples).
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// A built-in preset.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Channel(s) to process, by label or 0-based index (repeatable).
    #[arg(long = "channel")]
    channels: Vec<ChannelSelector>,
    /// Output folder for the session.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    /// Recording: .edf/.bdf, .wav, NeuroScope .dat/.lfp with its .xml, Intan amplifier.dat with
    /// info.rhd, legacy Open Ephys .continuous (a file or a folder of them), an Open Ephys
    /// structure.oebin, OpenBCI GUI .txt, .xdf, headerless int16 .dat/.bin/.raw, or a session
    /// folder `neuroloop run` recorded (replayed with its own config and compared).
    input: PathBuf,
    /// The stream to replay, by name, in a file that has several (XDF, Open Ephys binary,
    /// OpenBCI GUI text): `--channel` then picks within it. `neuroloop info FILE` lists them.
    #[arg(long)]
    stream: Option<String>,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Pace the replay at the recording's rate instead of as fast as possible.
    #[arg(long)]
    realtime: bool,
    /// Stimulate only in N2/N3 epochs of this hypnogram (DREAMS .txt or EDF+ .edf).
    #[arg(long)]
    hypnogram: Option<PathBuf>,
    #[command(flatten)]
    file: FileArgs,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// How long to run, in seconds of signal (Ctrl-C stops earlier).
    #[arg(long, default_value_t = 60.0)]
    duration_s: f64,
    /// Serve a live view of the loop in the browser at this address (default
    /// 127.0.0.1:8750; port 0 picks a free one). It only observes.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = runtime::DEFAULT_MONITOR)]
    monitor: Option<std::net::SocketAddr>,
    /// The token every monitor request must carry (?token=): required to
    /// listen beyond loopback, and enables the page's disarm button.
    #[arg(long, value_name = "TOKEN", requires = "monitor")]
    monitor_token: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ScoreKind {
    Ripple,
    Spindle,
    /// Slow-oscillation phase of every stim (needs --recording).
    SoPhase,
}

#[derive(Args)]
struct EvalArgs {
    /// Ground truth: the simulator's truth.tsv, or DREAMS scoring files
    /// (repeat to score against their union). Omit to count events only.
    #[arg(long)]
    truth: Vec<PathBuf>,
    /// The session's events.tsv.
    #[arg(long)]
    events: PathBuf,
    /// Which rules to apply (default: from the detections found).
    #[arg(long = "type", value_enum)]
    kind: Option<ScoreKind>,
    /// Score only events with onset before this time (DREAMS expert 1 stops at 1000 s).
    #[arg(long)]
    until_s: Option<f64>,
    /// For --type so-phase: the recording the session replayed (first channel is scored).
    #[arg(long)]
    recording: Option<PathBuf>,
    /// For --type so-phase: a hypnogram (DREAMS .txt or EDF+) for stims per minute of N3
    /// and stims in wake/REM.
    #[arg(long)]
    hypnogram: Option<PathBuf>,
    /// For --type so-phase: the target phase in degrees (0 = up-state peak).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    target_deg: f64,
    /// Recording length in minutes (default: from summary.json beside events.tsv).
    #[arg(long)]
    minutes: Option<f64>,
    /// Also write the scores as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct ReportArgs {
    /// A session folder written by `run` or `replay`, or an events.tsv.
    session: PathBuf,
    /// Where the figures and report.html go (default: SESSION/report).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Ground truth (the simulator's truth.tsv or a DREAMS scoring) for the evaluation table.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// The recording the session processed (default: its recording.bdf, or the
    /// input summary.json names).
    #[arg(long)]
    recording: Option<PathBuf>,
    /// A hypnogram (DREAMS .txt or EDF+) for the timeline.
    #[arg(long)]
    hypnogram: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let verbosity = i8::try_from(i16::from(cli.verbose) - i16::from(cli.quiet)).unwrap_or(0);
    let logging = neuroloop::logging::init(verbosity);
    let result = match cli.command {
        Command::Simulate(a) => simulate(a),
        Command::Replay(a) => replay(a),
        Command::Eval(a) => evaluate(a),
        Command::Report(a) => report(a),
        Command::Run(a) => run(a),
        Command::LatencyTest(a) => latency_test(a),
        Command::Click(a) => click(a),
        Command::Emulate(a) => emulate(a),
        Command::Devices(a) => devices(&a.probe),
        Command::Info(a) => info(a),
        Command::TriggerBox(a) => match a.command {
            TriggerBoxCommand::Test(t) => trigger_box_test(&t),
        },
    };
    if let Err(e) = result {
        tracing::error!("{}", error_text(&e));
        drop(logging); // flushes log.txt before exiting
        std::process::exit(1);
    }
}

/// The error and its causes, each cause once: library errors often carry
/// their cause's text in their own message already.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

fn simulate(args: SimulateArgs) -> Result<()> {
    let preset = args.preset;
    let rate = SampleRate::new(args.rate.unwrap_or(preset.default_rate_hz())).context("--rate")?;
    if !(args.minutes.is_finite() && args.minutes > 0.0) {
        bail!("--minutes must be a positive number, got {}", args.minutes);
    }
    let mut spec = SimSpec::new(preset, args.minutes * 60.0, args.seed, rate);
    if let Some(channels) = args.channels {
        spec.channels = channels;
    }
    spec.artifacts = !args.no_artifacts;
    spec.event_snr = args.event_snr;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let edf_path = args.out.join("recording.edf");
    let truth = write_simulated_edf(&spec, &edf_path)?;
    let truth_path = args.out.join("truth.tsv");
    std::fs::write(&truth_path, sim::truth::truth_to_tsv(&truth))
        .with_context(|| format!("cannot write {}", truth_path.display()))?;
    println!(
        "wrote {} ({} channels, {} Hz, {} min) and {} ({} truth events)",
        edf_path.display(),
        spec.channels,
        rate.hz(),
        args.minutes,
        truth_path.display(),
        truth.len()
    );
    Ok(())
}

/// Simulate `spec` into an EDF file block by block, in two passes (the header
/// states each signal's range before any sample), and return the truth.
/// Memory does not grow with the length; the file equals
/// `write_edf(simulate(spec))`.
fn write_simulated_edf(spec: &SimSpec, path: &Path) -> Result<Vec<sim::TruthEvent>> {
    const BLOCK_FRAMES: usize = 1 << 16;
    let mut stream = sim::SimStream::new(spec)?;
    let mut ranges = vec![io::edf::DataRange::default(); spec.channels];
    let mut block = Vec::new();
    while stream.render_next(BLOCK_FRAMES, &mut block) > 0 {
        for (range, channel) in ranges.iter_mut().zip(&block) {
            range.extend(channel);
        }
    }
    let mut stream = sim::SimStream::new(spec)?;
    let signals: Vec<io::edf::SignalToWrite> = stream
        .labels()
        .into_iter()
        .map(|label| io::edf::SignalToWrite {
            label,
            unit: sim::UNIT.to_string(),
            rate: spec.rate,
            samples: stream.samples(),
        })
        .collect();
    // One rate: every signal has the same number of samples per record.
    io::edf::write_edf_streamed(path, &signals, &ranges, |samples_per_record, record| {
        stream.render_next(samples_per_record[0], record);
    })?;
    Ok(stream.truth().to_vec())
}

fn load_config(args: &PipelineArgs, default: Preset) -> Result<Config> {
    Ok(match (&args.config, args.preset) {
        (Some(path), _) => Config::load(path)?,
        (None, Some(preset)) => preset.config(),
        (None, None) => default.config(),
    })
}

/// Ctrl-C, SIGTERM or SIGHUP sets the flag; sessions stop at the next block
/// boundary, live ones after disarming their outputs.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    runtime::stop_on_signals().context("cannot install the stop-signal handlers")
}

fn selectors(args: &PipelineArgs, config: &Config) -> Vec<ChannelSelector> {
    if args.channels.is_empty() {
        config.input.selectors()
    } else {
        args.channels.clone()
    }
}

/// `ripple=3 stim=3`, or `no events`.
fn counts_line(progress: &Progress) -> String {
    if progress.counts.is_empty() {
        return "no events".into();
    }
    let counts: Vec<String> = progress
        .counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    counts.join(" ")
}

fn print_summary(dir: &Path, progress: &Progress, interrupted: bool, wall_s: f64) {
    println!(
        "{} {:.1} s of signal in {:.2} s ({:.0}x real time): {}",
        if interrupted {
            "stopped after"
        } else {
            "processed"
        },
        progress.seconds_done,
        wall_s,
        progress.seconds_done / wall_s.max(1e-9),
        counts_line(progress)
    );
    println!("session written to {}", dir.display());
}

/// `neuroloop info FILE`.
fn info(args: InfoArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let mut reader = io::open_reader(&args.input, &args.file.options()?)?;
    print!("{}", describe_source(reader.info()));
    if args.read {
        read_everything(reader.as_mut(), started)?;
    }
    Ok(())
}

/// `info --read`: every stream read to its end in blocks of up to 64 Ki
/// values; per signal its sample count and range, then the throughput.
fn read_everything(
    reader: &mut dyn io::reader::SignalReader,
    started: std::time::Instant,
) -> Result<()> {
    let info = reader.info().clone();
    let mut streams: Vec<usize> = info.signals.iter().map(|s| s.stream).collect();
    streams.sort_unstable();
    streams.dedup();
    let mut values = 0u64;
    println!("read:");
    for stream in streams {
        let members: Vec<usize> = (0..info.signals.len())
            .filter(|&i| info.signals[i].stream == stream)
            .collect();
        reader.select(&members)?;
        let mut buf = vec![0.0; ((1 << 16) / members.len()).max(1) * members.len()];
        let mut ranges = vec![(f64::INFINITY, f64::NEG_INFINITY); members.len()];
        let mut frames = 0u64;
        while let Some(block) = reader.read_block(&mut buf)? {
            for frame in buf[..block.frames * members.len()].chunks_exact(members.len()) {
                for (range, &v) in ranges.iter_mut().zip(frame) {
                    *range = (range.0.min(v), range.1.max(v));
                }
            }
            frames += block.frames as u64;
        }
        values += frames * members.len() as u64;
        for (&signal, (low, high)) in members.iter().zip(ranges) {
            println!(
                "  {signal:>3}  {:<24} {frames} samples, {low} to {high} {}",
                format!("{:?}", info.signals[signal].label),
                info.signals[signal].unit
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "opened and read {values} values in {seconds:.3} s ({:.1} M values/s)",
        values as f64 / seconds.max(1e-9) / 1e6
    );
    Ok(())
}

/// What `neuroloop info` prints: one line per stream, signal, annotation
/// (the first [`LISTED_ANNOTATIONS`]) and notice.
fn describe_source(info: &io::SourceInfo) -> String {
    const LISTED_ANNOTATIONS: usize = 20;
    let mut out = format!("{}: {}\n", info.path.display(), info.format);
    if !info.streams.is_empty() {
        out += &format!(
            "streams ({}; pick one with --stream NAME):\n",
            info.streams.len()
        );
        for stream in &info.streams {
            out += &format!("  {:?}: {}\n", stream.name, stream.description);
        }
    }
    out += &format!(
        "signals ({}; pick with --channel LABEL or --channel INDEX):\n",
        info.signals.len()
    );
    for (index, signal) in info.signals.iter().enumerate() {
        let stream = info
            .streams
            .iter()
            .find(|s| s.id == Some(signal.stream))
            .map(|s| format!(", stream {:?}", s.name))
            .unwrap_or_default();
        out += &format!(
            "  {index:>3}  {:<24} {:<6} {} Hz, {} samples ({:.3} s){stream}\n",
            format!("{:?}", signal.label),
            if signal.unit.is_empty() {
                "-"
            } else {
                &signal.unit
            },
            signal.rate.hz(),
            signal.samples,
            signal.samples as f64 / signal.rate.hz(),
        );
    }
    if !info.annotations.is_empty() {
        out += &format!("annotations ({}):\n", info.annotations.len());
        for a in info.annotations.iter().take(LISTED_ANNOTATIONS) {
            out += &format!("  {:>10.3} s  {:?}\n", a.onset_s, a.text);
        }
        if info.annotations.len() > LISTED_ANNOTATIONS {
            out += &format!(
                "  ... and {} more\n",
                info.annotations.len() - LISTED_ANNOTATIONS
            );
        }
    }
    for notice in &info.notices {
        out += &format!("notice: {notice}\n");
    }
    out
}

fn replay(args: ReplayArgs) -> Result<()> {
    if args.input.is_dir() && args.input.join("recording.bdf").exists() {
        return replay_session(args);
    }
    let config = load_config(&args.pipeline, Preset::RodentRipple)?;
    let source = io::open_reader(&args.input, &args.file.options()?)?;
    let out = args.pipeline.out.clone().unwrap_or_else(|| {
        let stem = args.input.file_stem().unwrap_or_default().to_string_lossy();
        PathBuf::from("sessions").join(format!("replay-{stem}"))
    });
    replay_source(&args, source, &config, &out)?;
    Ok(())
}

/// `replay SESSION_DIR`: the session's own config (unless `--config` or
/// `--preset` says otherwise) on its own recording, into `SESSION_DIR/replay`
/// by default; then its decisions compared with the live session's.
fn replay_session(args: ReplayArgs) -> Result<()> {
    let dir = &args.input;
    let recording = dir.join("recording.bdf");
    if !recording.exists() {
        bail!(
            "{}: not a recorded session (no recording.bdf; a folder to replay is one `neuroloop run` wrote with [recording] enabled)",
            dir.display()
        );
    }
    let own_config = args.pipeline.config.is_none() && args.pipeline.preset.is_none();
    let config = if own_config {
        Config::load(&dir.join("config.toml"))?
    } else {
        load_config(&args.pipeline, Preset::RodentRipple)?
    };
    let source = io::recorder::RecordingReader::open(&recording)?;
    let complete = source.is_complete();
    let out = args
        .pipeline
        .out
        .clone()
        .unwrap_or_else(|| dir.join("replay"));
    replay_source(&args, Box::new(source), &config, &out)?;
    if !complete {
        println!("the session was cut: its recording ends without an end mark, so the end of the live log may not be reproduced");
    }
    let (Some(live), Some(replayed)) = (io::session::event_log(dir), io::session::event_log(&out))
    else {
        return Ok(());
    };
    let c = io::session::compare_decisions(&live, &replayed)?;
    if !own_config {
        println!(
            "decisions with this config vs the live session: {} of {} live rows identical ({} rows now)",
            c.identical, c.live_rows, c.replay_rows
        );
    } else if c.first_difference.is_none() {
        println!(
            "replay reproduces the live session: all {} rows identical (device_time aside)",
            c.live_rows
        );
    } else if let Some((live_row, replay_row)) = &c.first_difference {
        println!(
            "replay differs from the live session after {} identical rows ({} live, {} replayed):\n  live:   {live_row}\n  replay: {replay_row}",
            c.identical, c.live_rows, c.replay_rows
        );
        if complete {
            bail!("the replay of a complete session must reproduce it exactly");
        }
    }
    Ok(())
}

/// Run the pipeline over a reader into session folder `out`.
fn replay_source(
    args: &ReplayArgs,
    mut source: Box<dyn io::reader::SignalReader>,
    config: &Config,
    out: &Path,
) -> Result<()> {
    let info = source.info().clone();
    let selectors = selectors(&args.pipeline, config);
    let signals = match &args.stream {
        Some(stream) => info.select_in_stream(stream, &selectors)?,
        None => info
            .select(&selectors)
            .with_context(|| format!("{}", args.input.display()))?,
    };
    source.select(&signals)?;
    for notice in &info.notices {
        tracing::warn!("{notice}");
    }
    let rate = info.signals[signals[0]].rate;
    let stim_allowed = match &args.hypnogram {
        Some(path) => Some(io::read_hypnogram(path)?.sample_intervals(rate, Stage::is_deep_nrem)),
        None => None,
    };
    let input = SessionInput {
        source: source.as_mut(),
        description: args.input.display().to_string(),
        stim_allowed,
    };
    let frames = info.signals[signals[0]].samples;
    let bar = if frames > 0 && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(frames)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent}% {msg}").expect("static template"),
    );
    let pacing = if args.realtime {
        Pacing::RealTime
    } else {
        Pacing::AsFastAsPossible
    };
    let stop = stop_flag()?;
    let report = run_session("replay", input, config, out, pacing, &stop, |p| {
        bar.set_position(p.frames_done);
    })?;
    bar.finish_and_clear();
    warn_adjustments(&report.adjustments);
    print_summary(out, &report.progress, report.interrupted, report.wall_s);
    Ok(())
}

fn run(args: RunArgs) -> Result<()> {
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

fn format_latency(s: &Option<LatencySummary>) -> String {
    match s {
        Some(s) => format!(
            "p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs (n={})",
            s.p50_us, s.p99_us, s.max_us, s.count
        ),
        None => "n/a".into(),
    }
}

/// Settings the detector could not apply as configured (also in summary.json).
fn warn_adjustments(adjustments: &[String]) {
    for a in adjustments {
        tracing::warn!("{a}");
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

fn latency_test(args: LatencyTestArgs) -> Result<()> {
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

fn emulate(args: EmulateArgs) -> Result<()> {
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

fn devices(probe: &[String]) -> Result<()> {
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

fn trigger_box_test(a: &TriggerBoxTestArgs) -> Result<()> {
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

/// A DREAMS hypnogram (.txt) or EDF+ hypnogram annotations (.edf).
fn click(args: ClickArgs) -> Result<()> {
    let spec = ClickSpec {
        duration_ms: args.duration_ms,
        ramp_ms: args.ramp_ms,
        level_dbfs: args.level_dbfs,
        seed: args.seed,
    };
    let samples = spec.render(f64::from(args.rate_hz))?;
    io::wav::write_wav_f32(&args.out, args.rate_hz, &samples)?;
    println!(
        "{} samples ({} ms at {} Hz, {} dBFS RMS) written to {}",
        samples.len(),
        args.duration_ms,
        args.rate_hz,
        args.level_dbfs,
        args.out.display()
    );
    Ok(())
}

fn report(args: ReportArgs) -> Result<()> {
    let outcome = neuroloop::report::write_report(&neuroloop::report::Request {
        session: args.session,
        out: args.out,
        truth: args.truth,
        recording: args.recording,
        hypnogram: args.hypnogram,
    })?;
    println!(
        "{} ({} figures, {} item(s) skipped)",
        outcome.page.display(),
        outcome.figures.len(),
        outcome.skipped.len()
    );
    Ok(())
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn evaluate(args: EvalArgs) -> Result<()> {
    let origin = args.events.display().to_string();
    let mut events = tables::parse_events(&read_text(&args.events)?, &origin)?;
    let mut truth = Vec::new();
    for path in &args.truth {
        truth.extend(tables::parse_truth(
            &read_text(path)?,
            &path.display().to_string(),
        )?);
    }
    if let Some(until) = args.until_s {
        events.retain(|e| e.onset_s < until);
        truth.retain(|t| t.onset_s < until);
    }
    let rules = match args.kind {
        Some(ScoreKind::Ripple) => eval::Rules::Ripple,
        Some(ScoreKind::Spindle) => eval::Rules::Spindle,
        Some(ScoreKind::SoPhase) => return evaluate_phase(&args, &events),
        None => eval::Rules::for_events(&events),
    };
    let minutes = match (args.minutes, args.until_s) {
        (Some(m), _) => m,
        (None, Some(until)) => until / 60.0,
        (None, None) => minutes_from_summary(&args.events)?,
    };
    let (detection_type, report) = (
        rules.name(),
        eval::score_session(rules, &events, &truth, minutes)?,
    );
    let report = serde_json::json!({
        "events": args.events,
        "truth": args.truth,
        "scored": detection_type,
        "minutes": minutes,
        "until_s": args.until_s,
        "score": report,
    });
    print_report(&report, args.json.as_deref())
}

/// Print a score report and, with `--json`, write it there too.
fn print_report(report: &serde_json::Value, json: Option<&Path>) -> Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    println!("{text}");
    if let Some(path) = json {
        std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Offline SO phase of every delivered stim, and where they fell in the hypnogram.
fn evaluate_phase(args: &EvalArgs, events: &[tables::EventRow]) -> Result<()> {
    let path = args
        .recording
        .as_ref()
        .context("--type so-phase needs --recording (the replayed file)")?;
    let recording = io::read_recording(path, &FileOptions::default())?;
    let signal = recording
        .signals
        .first()
        .with_context(|| format!("{} has no signals", path.display()))?;
    let stims: Vec<f64> = events
        .iter()
        .filter(|e| e.trial_type == "stim")
        .map(|e| e.onset_s)
        .collect();
    let phases = eval::phase::phases_at(&signal.samples, signal.rate, &stims)
        .with_context(|| format!("{}: cannot design the SO band-pass", path.display()))?;
    let score = eval::phase::score_phases(&phases, args.target_deg);
    let stages = match &args.hypnogram {
        Some(h) => {
            let hypnogram = io::read_hypnogram(h)?;
            let at = |stage| {
                stims
                    .iter()
                    .filter(|&&t| hypnogram.stage_at(t) == stage)
                    .count()
            };
            let n3_minutes = hypnogram.minutes_in(Stage::N3);
            serde_json::json!({
                "n3_minutes": n3_minutes,
                "stims_in_n3": at(Stage::N3),
                "stims_per_min_n3": if n3_minutes > 0.0 { at(Stage::N3) as f64 / n3_minutes } else { 0.0 },
                "stims_in_n2": at(Stage::N2),
                "stims_in_n1": at(Stage::N1),
                "stims_in_wake": at(Stage::Wake),
                "stims_in_rem": at(Stage::Rem),
            })
        }
        None => serde_json::Value::Null,
    };
    let report = serde_json::json!({
        "events": args.events,
        "recording": path,
        "scored": "so_phase",
        "score": score,
        "stages": stages,
    });
    print_report(&report, args.json.as_deref())
}

fn minutes_from_summary(events: &Path) -> Result<f64> {
    let path = events.with_file_name("summary.json");
    let summary: serde_json::Value = serde_json::from_str(&read_text(&path).context(
        "the recording length comes from summary.json beside events.tsv; pass --minutes instead",
    )?)
    .with_context(|| format!("{} is not valid JSON", path.display()))?;
    summary["duration_s"]
        .as_f64()
        .map(|s| s / 60.0)
        .with_context(|| format!("{} has no duration_s", path.display()))
}
