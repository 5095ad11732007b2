//! The commands behind `neuroloop`: `args.rs` their arguments, `offline.rs`
//! the ones that work on files (simulate, info, replay, eval, report,
//! click), `live.rs` the ones that talk to devices (run, latency-test,
//! emulate, devices, trigger-box); here what both sides share.

pub(crate) mod args;
pub(crate) mod live;
pub(crate) mod offline;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};

use args::PipelineArgs;
use neuroloop::config::{Config, Preset};
use neuroloop::runtime;
use neuroloop::session::Progress;

pub(crate) fn load_config(args: &PipelineArgs, default: Preset) -> Result<Config> {
    Ok(match (&args.config, args.preset) {
        (Some(path), _) => Config::load(path)?,
        (None, Some(preset)) => preset.config(),
        (None, None) => default.config(),
    })
}

/// Ctrl-C, SIGTERM or SIGHUP sets the flag; sessions stop at the next block
/// boundary, live ones after disarming their outputs.
pub(crate) fn stop_flag() -> Result<Arc<AtomicBool>> {
    runtime::stop_on_signals().context("cannot install the stop-signal handlers")
}

/// `ripple=3 stim=3`, or `no events`.
pub(crate) fn counts_line(progress: &Progress) -> String {
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

pub(crate) fn print_summary(dir: &Path, progress: &Progress, interrupted: bool, wall_s: f64) {
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

/// Settings the detector could not apply as configured (also in summary.json).
pub(crate) fn warn_adjustments(adjustments: &[String]) {
    for a in adjustments {
        tracing::warn!("{a}");
    }
}
