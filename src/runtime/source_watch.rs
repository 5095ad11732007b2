//! A source's counters, watched while the session runs (a warning the first
//! time something is lost) and reported in `summary.json` after it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::Shared;
use crate::device::audio_in::InputCounters;
use crate::device::cyton::CytonCounters;
use crate::device::lsl::LslCounters;
use crate::device::Source;

/// The source's counters, watched while the session runs and reported in
/// `summary.json` after it.
#[derive(Clone)]
pub(super) enum SourceWatch {
    None,
    Cyton(Arc<CytonCounters>),
    Audio {
        counters: Arc<InputCounters>,
        errors: Arc<Mutex<Vec<String>>>,
        device: String,
    },
    Lsl(Arc<LslCounters>),
}

impl SourceWatch {
    pub(super) fn of(source: &Source) -> Self {
        match source {
            Source::Recording(_) => SourceWatch::None,
            Source::Cyton(c) => SourceWatch::Cyton(c.counters.clone()),
            Source::Audio(a) => SourceWatch::Audio {
                counters: a.counters.clone(),
                errors: a.errors.clone(),
                device: a.device.clone(),
            },
            Source::Lsl(l) => SourceWatch::Lsl(l.counters.clone()),
        }
    }

    /// Warn (once per kind) about what the source and the rings lost so far.
    pub(super) fn warn(&self, shared: &Shared, warn: &mut dyn FnMut(String, String)) {
        let at = shared.frames_done.load(Ordering::Relaxed);
        match self {
            SourceWatch::None => {}
            SourceWatch::Cyton(c) => {
                for (key, value, what) in [
                    (
                        "garbage",
                        c.garbage_bytes.load(Ordering::Relaxed),
                        "skipped garbage bytes and resynchronised",
                    ),
                    (
                        "dropped",
                        c.dropped_packets.load(Ordering::Relaxed),
                        "packets lost (sample counter skipped); the gap is counted, not filled",
                    ),
                ] {
                    if value > 0 {
                        warn(
                            key.into(),
                            format!(
                                "openbci: {what} (first seen by sample {at}; totals in summary.json)"
                            ),
                        );
                    }
                }
            }
            SourceWatch::Audio {
                counters, device, ..
            } => {
                // Ring overruns are the acquisition ring's ("overrun" below).
                if counters.xruns.load(Ordering::Relaxed) > 0 {
                    warn(
                        "audio-xrun".into(),
                        format!("audio input {device}: overrun, frames lost (first seen by sample {at}; totals in summary.json)"),
                    );
                }
            }
            SourceWatch::Lsl(c) => c.warn(at, warn),
        }
        if shared.overrun_frames.load(Ordering::Relaxed) > 0 {
            warn(
                "overrun".into(),
                format!(
                    "processing fell behind acquisition; frames dropped (first by sample {at})"
                ),
            );
        }
    }

    /// The source's section of `summary.json`.
    pub(super) fn report(&self) -> Option<serde_json::Value> {
        match self {
            SourceWatch::None => None,
            SourceWatch::Cyton(c) => Some(c.snapshot()),
            SourceWatch::Audio {
                counters,
                errors,
                device,
            } => {
                let mut source = counters.snapshot();
                source["device"] = device.clone().into();
                source["errors"] = errors.lock().map(|e| e.clone()).unwrap_or_default().into();
                Some(source)
            }
            SourceWatch::Lsl(c) => Some(c.report()),
        }
    }
}
