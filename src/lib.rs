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
//! * [`detect`]: streaming detectors (state machines over `dsp` stages).
//! * [`trigger`]: the trigger policy every paradigm shares (delays, controls,
//!   refractory period, rate limit, session cap).
//! * [`controller`]: owns the stages; `process_block` is the one hot entry point.
//! * [`display`]: fixed-size min/max bins of what the detector sees, for the
//!   live monitor (`runtime`'s web page).
//! * [`io`]: everything that touches the OS: file formats, session output.
//! * [`session`]: drives a recording through the controller into a session folder.
//! * [`runtime`]: live sessions: acquisition, processing and sink threads joined
//!   by lock-free rings; disarm-first shutdown; latency measurement.
//! * [`eval`]: scoring against ground truth by the rules of `EVALUATION.md`.
//! * [`click`]: the pink-noise click of auditory sleep stimulation (pure rendering).
//! * [`config`]: the TOML schema, presets and up-front validation.
//! * [`logging`]: `tracing` to the terminal and to each session's `log.txt`.
//! * [`protocol`]: the host ⇄ trigger-box wire format and its test vectors.
//! * [`device`]: the source and trigger-output roles and the devices, one file
//!   (or folder) each: protocol, adapter, config section, emulator.
//!
//! The modules `dsp`, `detect`, `trigger`, `controller` and `display` never use
//! `std::fs`, `std::io`, `std::thread` or `std::time`.

pub mod click;
pub mod config;
pub mod controller;
pub mod detect;
pub mod device;
pub mod display;
pub mod dsp;
pub mod eval;
pub mod event;
pub mod io;
pub mod logging;
pub mod protocol;
pub mod recording;
pub mod report;
pub mod rng;
pub mod runtime;
pub mod session;
pub mod sim;
pub mod time;
pub mod trigger;
