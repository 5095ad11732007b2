//! What the controller emits: detections of brain events and trigger
//! decisions, all stamped with sample indices. Conversion to seconds happens
//! only when they are written (see `io::session`).

use crate::time::SampleIndex;

/// The kind of brain event a detector reports; its name is the `trial_type`
/// written to `events.tsv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Ripple,
    Spindle,
    /// A committed spindle candidate that did not become a spindle (shorter than
    /// the minimum): logged because its commit may have triggered a stimulus.
    SpindleDropped,
    /// A spindle-locked commit of its own rule (`[detector.commit]`): the
    /// moment a spindle-locked stimulus fires.
    SpindleCommit,
    SlowOscillation,
    /// A `latency-test` probe that came back (duration = round trip).
    LatencyProbe,
    /// A `latency-test` probe that did not come back within its timeout.
    LatencyProbeLost,
    /// An interval in which the ripple detector's brain-state gate was closed
    /// (theta or movement): no detection could start.
    GateClosed,
    /// An interval in which the ripple detector's noise veto held.
    Vetoed,
}

impl EventKind {
    pub fn trial_type(self) -> &'static str {
        match self {
            EventKind::Ripple => "ripple",
            EventKind::Spindle => "spindle",
            EventKind::SpindleDropped => "spindle_dropped",
            EventKind::SpindleCommit => "spindle_commit",
            EventKind::SlowOscillation => "slow_oscillation",
            EventKind::LatencyProbe => "latency_probe",
            EventKind::LatencyProbeLost => "latency_probe_lost",
            EventKind::GateClosed => "gate_closed",
            EventKind::Vetoed => "vetoed",
        }
    }
}

/// A detected event. `onset`/`end` may be settled after the fact (the
/// detector looks back to where the envelope first rose), `detected_at` is the
/// causal sample at which the detector committed to it, or, for an event it
/// logs without committing to it (`committed` false: no stimulus could fire on
/// it), the sample at which it settled the event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub kind: EventKind,
    pub channel: usize,
    pub onset: SampleIndex,
    /// One past the last sample of the event.
    pub end: SampleIndex,
    /// Sample of the largest envelope value of the event: provisional at the
    /// commit, followed to the event's end by detectors that log the event
    /// when it ends (the ripple detector), so it may lie after `detected_at`.
    pub peak: SampleIndex,
    pub detected_at: SampleIndex,
    /// False for an event logged without a commit (`detected_at` is written as n/a).
    pub committed: bool,
    /// The detector's own choice of stimulus time (e.g. a predicted up-state),
    /// if it has one; otherwise the trigger policy schedules from `detected_at`.
    pub stim_target: Option<SampleIndex>,
    pub target_phase_deg: Option<f64>,
}

impl Detection {
    /// An event starting at `onset`, committed at sample `n`: its end and peak
    /// are provisional (`n`), and the trigger policy schedules from `n`.
    pub fn committed(kind: EventKind, channel: usize, onset: SampleIndex, n: SampleIndex) -> Self {
        Self {
            kind,
            channel,
            onset,
            end: n + 1,
            peak: n,
            detected_at: n,
            committed: true,
            stim_target: None,
            target_phase_deg: None,
        }
    }

    /// An event starting at `onset` that the detector settles at `n` without
    /// committing to it: logged for its boundaries, it fires no stimulus.
    pub fn uncommitted(
        kind: EventKind,
        channel: usize,
        onset: SampleIndex,
        n: SampleIndex,
    ) -> Self {
        Self {
            committed: false,
            ..Self::committed(kind, channel, onset, n)
        }
    }
}

/// A trigger decision: a stimulus scheduled at `onset`, either delivered or
/// logged as a sham (control condition).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TriggerDecision {
    pub delivered: bool,
    pub channel: usize,
    /// Scheduled stimulus onset (may be in the future of `decided_at`).
    pub onset: SampleIndex,
    pub duration: u64,
    /// The sample whose arrival produced the decision.
    pub decided_at: SampleIndex,
    pub target_phase_deg: Option<f64>,
}

impl TriggerDecision {
    pub fn trial_type(&self) -> &'static str {
        if self.delivered {
            "stim"
        } else {
            "sham"
        }
    }
}

/// Everything the controller emits, in order of the deciding sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    Detection(Detection),
    Trigger(TriggerDecision),
}

/// A preallocated, bounded event buffer the controller writes into without
/// allocating. If a block produces more events than its capacity the excess is
/// counted in `overflowed`, never silently lost.
#[derive(Debug)]
pub struct Outbox {
    events: Vec<Event>,
    pub overflowed: u64,
}

impl Outbox {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            events: Vec::with_capacity(capacity.max(1)),
            overflowed: 0,
        }
    }

    pub fn push(&mut self, event: Event) {
        if self.events.len() < self.events.capacity() {
            self.events.push(event);
        } else {
            self.overflowed += 1;
        }
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Empty the buffer (keeping its capacity) for the next block.
    pub fn clear(&mut self) {
        self.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_counts_overflow_instead_of_growing() {
        let mut outbox = Outbox::with_capacity(2);
        let decision = TriggerDecision {
            delivered: true,
            channel: 0,
            onset: 10,
            duration: 1,
            decided_at: 10,
            target_phase_deg: None,
        };
        for _ in 0..5 {
            outbox.push(Event::Trigger(decision));
        }
        assert_eq!(outbox.events().len(), 2);
        assert_eq!(outbox.overflowed, 3);
        outbox.clear();
        assert!(outbox.events().is_empty());
        assert_eq!(outbox.events.capacity(), 2);
    }
}
