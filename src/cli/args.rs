//! The command line's arguments (clap).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use neuroloop::config::Preset;
use neuroloop::io::{FileOptions, RawLayout};
use neuroloop::recording::ChannelSelector;
use neuroloop::runtime;
use neuroloop::sim::Preset as SimPreset;

#[derive(Parser)]
#[command(
    name = "neuroloop",
    version,
    about = "Closed-loop neurostimulation controller"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// More diagnostics (-v debug, -vv trace); `RUST_LOG` overrides both flags.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Fewer diagnostics (-q warnings and errors only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub(crate) quiet: u8,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) struct FileArgs {
    /// Channels in a headerless .dat file.
    #[arg(long)]
    pub(crate) raw_channels: Option<usize>,
    /// Sample rate of a headerless .dat file.
    #[arg(long)]
    pub(crate) raw_rate_hz: Option<f64>,
    /// Scale of a headerless .dat file.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) raw_uv_per_bit: f64,
    /// Volts at digital full scale, for .wav input.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) wav_volts_per_full_scale: f64,
}

impl FileArgs {
    pub(crate) fn options(&self) -> Result<FileOptions> {
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
pub(crate) struct InfoArgs {
    /// A recording in any format `replay` reads.
    pub(crate) input: PathBuf,
    /// Also read every sample of every stream: checks the whole file and
    /// prints each signal's range and the read throughput.
    #[arg(long)]
    pub(crate) read: bool,
    #[command(flatten)]
    pub(crate) file: FileArgs,
}

#[derive(Args)]
pub(crate) struct DevicesArgs {
    /// Also say HELLO on this port (one without USB ids, e.g. `tb_sim`'s pty).
    #[arg(long)]
    pub(crate) probe: Vec<String>,
}

#[derive(Args)]
pub(crate) struct TriggerBoxArgs {
    #[command(subcommand)]
    pub(crate) command: TriggerBoxCommand,
}

#[derive(Subcommand)]
pub(crate) enum TriggerBoxCommand {
    /// Arm the box and fire a train on each output in turn (wire a scope or
    /// LEDs to the BNCs, not a stimulator); print what the box reports.
    Test(TriggerBoxTestArgs),
}

#[derive(Args)]
pub(crate) struct TriggerBoxTestArgs {
    /// The box's serial port (`neuroloop devices` lists it).
    #[arg(long)]
    pub(crate) port: String,
    /// Outputs to pulse, in this order.
    #[arg(long, value_delimiter = ',', default_values_t = [1u8, 2, 3, 4])]
    pub(crate) outputs: Vec<u8>,
    #[arg(long, default_value_t = 10.0)]
    pub(crate) width_ms: f64,
    /// Pulses per output.
    #[arg(long, default_value_t = 5)]
    pub(crate) count: u16,
    /// Start to start.
    #[arg(long, default_value_t = 100.0)]
    pub(crate) interval_ms: f64,
}

#[derive(Args)]
pub(crate) struct LatencyTestArgs {
    /// The rig's TOML config.
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// How many probes to send.
    #[arg(long, default_value_t = 100)]
    pub(crate) probes: u32,
    /// Output folder for the session.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ClickArgs {
    #[arg(long)]
    pub(crate) out: PathBuf,
    #[arg(long, default_value_t = 48_000)]
    pub(crate) rate_hz: u32,
    #[arg(long, default_value_t = 50.0)]
    pub(crate) duration_ms: f64,
    #[arg(long, default_value_t = 5.0)]
    pub(crate) ramp_ms: f64,
    /// RMS level of the plateau in dB relative to full scale.
    #[arg(long, default_value_t = -20.0, allow_hyphen_values = true)]
    pub(crate) level_dbfs: f64,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

#[derive(Args)]
pub(crate) struct EmulateArgs {
    #[command(subcommand)]
    pub(crate) device: EmulatedDevice,
}

#[derive(Subcommand)]
pub(crate) enum EmulatedDevice {
    /// An OpenBCI Cyton streaming the sleep simulator as 33-byte packets at 250 Hz.
    Openbci(EmulateOpenbciArgs),
    /// A Pulse Pal v2 that prints each trigger it receives.
    PulsePal(EmulatePulsePalArgs),
    /// A latency-test rig: a Cyton (sleep simulator) and a Pulse Pal whose
    /// output is wired back into the Cyton's channel `--channel`.
    Loopback(EmulateLoopbackArgs),
}

#[derive(Args)]
pub(crate) struct EmulateLoopbackArgs {
    #[arg(long, default_value_t = 10.0)]
    pub(crate) minutes: f64,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Cyton channel (0-based, of 8) the Pulse Pal's output is wired into.
    #[arg(long, default_value_t = 7)]
    pub(crate) channel: usize,
    /// Amplitude of the looped-back pulse.
    #[arg(long, default_value_t = 50_000.0)]
    pub(crate) amplitude_uv: f64,
    /// Its length in packets (samples).
    #[arg(long, default_value_t = 3)]
    pub(crate) pulse_packets: u64,
    #[arg(long)]
    pub(crate) cyton_link: Option<PathBuf>,
    #[arg(long)]
    pub(crate) pulse_pal_link: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct EmulateOpenbciArgs {
    #[arg(long, default_value_t = 10.0)]
    pub(crate) minutes: f64,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// 16 channels (Cyton + Daisy) at 125 Hz.
    #[arg(long)]
    pub(crate) daisy: bool,
    /// Pacing relative to real time.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) speed: f64,
    /// Also make a symlink to the pty at this path.
    #[arg(long)]
    pub(crate) link: Option<PathBuf>,
    /// Write the simulator's ground truth here.
    #[arg(long)]
    pub(crate) truth: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct EmulatePulsePalArgs {
    #[arg(long)]
    pub(crate) link: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct SimulateArgs {
    #[arg(long, value_enum)]
    pub(crate) preset: SimPreset,
    #[arg(long, default_value_t = 10.0)]
    pub(crate) minutes: f64,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Sample rate in Hz (default: 1250 for rodent-ripple, 250 for sleep).
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Number of channels (default: the preset's).
    #[arg(long)]
    pub(crate) channels: Option<usize>,
    /// Scale of the simulated events' amplitude (1 = realistic).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) event_snr: f64,
    /// Leave out the distractors and artifacts.
    #[arg(long)]
    pub(crate) no_artifacts: bool,
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Args)]
pub(crate) struct PipelineArgs {
    /// A TOML config (see src/presets/ for examples).
    #[arg(long, conflicts_with = "preset")]
    pub(crate) config: Option<PathBuf>,
    /// A built-in preset.
    #[arg(long, value_enum)]
    pub(crate) preset: Option<Preset>,
    /// Channel(s) to process, by label or 0-based index (repeatable).
    #[arg(long = "channel")]
    pub(crate) channels: Vec<ChannelSelector>,
    /// Output folder for the session.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ReplayArgs {
    /// Recording: .edf/.bdf, .wav, NeuroScope .dat/.lfp with its .xml, Intan amplifier.dat with
    /// info.rhd, legacy Open Ephys .continuous (a file or a folder of them), an Open Ephys
    /// structure.oebin, OpenBCI GUI .txt, .xdf, headerless int16 .dat/.bin/.raw, or a session
    /// folder `neuroloop run` recorded (replayed with its own config and compared).
    pub(crate) input: PathBuf,
    /// The stream to replay, by name, in a file that has several (XDF, Open Ephys binary,
    /// OpenBCI GUI text): `--channel` then picks within it. `neuroloop info FILE` lists them.
    #[arg(long)]
    pub(crate) stream: Option<String>,
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    /// Pace the replay at the recording's rate instead of as fast as possible.
    #[arg(long)]
    pub(crate) realtime: bool,
    /// Stimulate only in N2/N3 epochs of this hypnogram (DREAMS .txt or EDF+ .edf).
    #[arg(long)]
    pub(crate) hypnogram: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) file: FileArgs,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    /// How long to run, in seconds of signal (Ctrl-C stops earlier).
    #[arg(long, default_value_t = 60.0)]
    pub(crate) duration_s: f64,
    /// Serve a live view of the loop in the browser at this address (default
    /// 127.0.0.1:8750; port 0 picks a free one). It only observes.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = runtime::DEFAULT_MONITOR)]
    pub(crate) monitor: Option<std::net::SocketAddr>,
    /// The token every monitor request must carry (?token=): required to
    /// listen beyond loopback, and enables the page's disarm button.
    #[arg(long, value_name = "TOKEN", requires = "monitor")]
    pub(crate) monitor_token: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ScoreKind {
    Ripple,
    Spindle,
    /// Slow-oscillation phase of every stim (needs --recording).
    SoPhase,
}

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Ground truth: the simulator's truth.tsv, or DREAMS scoring files
    /// (repeat to score against their union). Omit to count events only.
    #[arg(long)]
    pub(crate) truth: Vec<PathBuf>,
    /// The session's events.tsv.
    #[arg(long)]
    pub(crate) events: PathBuf,
    /// Which rules to apply (default: from the detections found).
    #[arg(long = "type", value_enum)]
    pub(crate) kind: Option<ScoreKind>,
    /// Score only events with onset before this time (DREAMS expert 1 stops at 1000 s).
    #[arg(long)]
    pub(crate) until_s: Option<f64>,
    /// For --type so-phase: the recording the session replayed (first channel is scored).
    #[arg(long)]
    pub(crate) recording: Option<PathBuf>,
    /// For --type so-phase: a hypnogram (DREAMS .txt or EDF+) for stims per minute of N3
    /// and stims in wake/REM.
    #[arg(long)]
    pub(crate) hypnogram: Option<PathBuf>,
    /// For --type so-phase: the target phase in degrees (0 = up-state peak).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub(crate) target_deg: f64,
    /// Recording length in minutes (default: from summary.json beside events.tsv).
    #[arg(long)]
    pub(crate) minutes: Option<f64>,
    /// Also write the scores as JSON.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// A session folder written by `run` or `replay`, or an events.tsv.
    pub(crate) session: PathBuf,
    /// Where the figures and report.html go (default: SESSION/report).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Ground truth (the simulator's truth.tsv or a DREAMS scoring) for the evaluation table.
    #[arg(long)]
    pub(crate) truth: Option<PathBuf>,
    /// The recording the session processed (default: its recording.bdf, or the
    /// input summary.json names).
    #[arg(long)]
    pub(crate) recording: Option<PathBuf>,
    /// A hypnogram (DREAMS .txt or EDF+) for the timeline.
    #[arg(long)]
    pub(crate) hypnogram: Option<PathBuf>,
}
