//! The commands that work on files: simulate, info, replay, eval, report, click.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use neuroloop::click::ClickSpec;
use neuroloop::config::{Config, Preset};
use neuroloop::eval::hypnogram::Stage;
use neuroloop::eval::{self, tables};
use neuroloop::io::{self, FileOptions};
use neuroloop::recording::ChannelSelector;
use neuroloop::session::{run_session, Pacing, SessionInput};
use neuroloop::sim::{self, SimSpec};
use neuroloop::time::SampleRate;

use super::args::{
    ClickArgs, EvalArgs, InfoArgs, PipelineArgs, ReplayArgs, ReportArgs, ScoreKind, SimulateArgs,
};
use super::{load_config, print_summary, stop_flag, warn_adjustments};

pub(crate) fn simulate(args: SimulateArgs) -> Result<()> {
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

/// `neuroloop info FILE`.
pub(crate) fn info(args: InfoArgs) -> Result<()> {
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

pub(crate) fn replay(args: ReplayArgs) -> Result<()> {
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

/// A DREAMS hypnogram (.txt) or EDF+ hypnogram annotations (.edf).
pub(crate) fn click(args: ClickArgs) -> Result<()> {
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

pub(crate) fn report(args: ReportArgs) -> Result<()> {
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

pub(crate) fn evaluate(args: EvalArgs) -> Result<()> {
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

fn selectors(args: &PipelineArgs, config: &Config) -> Vec<ChannelSelector> {
    if args.channels.is_empty() {
        config.input.selectors()
    } else {
        args.channels.clone()
    }
}
