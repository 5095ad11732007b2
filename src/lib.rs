//! # neuroloop
//!
//! A closed-loop neurostimulation controller. One pipeline serves live rigs,
//! replayed recordings and the built-in simulator:
//!
//! ```text
//!  source ──blocks──▶ controller ──events / trigger commands──▶ sinks
//!  (file, simulator,   (filters → detectors → trigger policy;    (session folder,
//!   devices)            pure, sample-indexed)                     devices)
//! ```
//!
//! * [`time`]: the sample index is the only clock of the processing core.
//! * [`dsp`]: pure numeric stages (Butterworth SOS filters, envelopes, running
//!   statistics). No I/O, no wall clock, no allocation after construction.
//! * [`recording`]: in-memory signals shared by file readers and the simulator.
//! * [`sim`]: synthetic EEG/LFP with ground truth, deterministic from a seed.
//! * [`io`]: everything that touches the OS: file formats, session output.
//!
//! The modules `dsp`, `detect`, `trigger` and `controller` never use
//! `std::fs`, `std::io`, `std::thread` or `std::time`.

pub mod dsp;
pub mod io;
pub mod recording;
pub mod sim;
pub mod time;
