//! Streaming detectors: state machines over `dsp` stages that turn samples
//! into [`Detection`]s. A detector reports twice per event: `Commit` at the
//! causal sample where it decides (this is what triggers act on), and `Finish`
//! once the event's end is known (this is what gets logged).

pub mod ripple;
pub mod sleep_gate;
pub mod slow_oscillation;
pub mod spindle;

use crate::event::Detection;

/// What a detector says about one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DetectorOutput {
    /// An event is accepted at `detection.detected_at`; `end` is provisional.
    Commit(Detection),
    /// The event is over; all boundaries are final.
    Finish(Detection),
}
