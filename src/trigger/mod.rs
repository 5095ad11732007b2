//! The trigger policy shared by every paradigm: turns accepted detections into
//! scheduled stimuli (or shams), enforcing the refractory period, the rate
//! limit and the per-session cap in sample time. Outputs are only ever
//! scheduled through here, so no paradigm can bypass the limits.

use std::collections::VecDeque;

use crate::config::pipeline::{StimSequence, TriggerConfig, TriggerMode};
use crate::event::{Detection, TriggerDecision};
use crate::rng::Rng;
use crate::time::{SampleIndex, SampleRate};

/// Why candidate triggers were refused; exposed as telemetry and in `summary.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TriggerCounters {
    pub accepted: u64,
    pub delivered: u64,
    pub sham: u64,
    pub refused_refractory: u64,
    pub refused_rate_limit: u64,
    pub refused_session_cap: u64,
    /// Refused because the onset lies outside the allowed intervals (hypnogram gate).
    pub refused_gate: u64,
}

#[derive(Debug, Clone)]
pub struct TriggerPolicy {
    mode: TriggerMode,
    stim_probability: f64,
    delay_min: u64,
    delay_max: u64,
    pulse: u64,
    refractory: u64,
    one_minute: u64,
    max_per_session: u64,
    /// At least 1 (validated); also the bound of `recent_onsets` and `blank_onsets`.
    max_per_minute: usize,
    rng: Rng,
    /// Onsets of the last `max_per_minute` decisions, oldest first (a ring).
    recent_onsets: Vec<SampleIndex>,
    recent_head: usize,
    last_onset: Option<SampleIndex>,
    counters: TriggerCounters,
    blanking: u64,
    /// Onsets of delivered pulses whose blanking has not ended, in order
    /// (accepted onsets never decrease). At most max_per_minute: delays are
    /// at most 10 s, so no more can be pending and pushing never allocates.
    blank_onsets: VecDeque<SampleIndex>,
    /// Offset of the second click of a two-click sequence, if configured.
    second_click: Option<u64>,
    /// The second click of the last accepted sequence, until taken.
    follow_up: Option<TriggerDecision>,
    /// Sorted, disjoint `[start, end)` sample intervals where onsets are
    /// allowed; `None` = everywhere.
    allowed: Option<Vec<(SampleIndex, SampleIndex)>>,
}

impl TriggerPolicy {
    pub fn new(config: &TriggerConfig, rate: SampleRate) -> Self {
        Self {
            mode: config.mode,
            stim_probability: config.stim_probability,
            delay_min: rate.samples_in_ms(config.delay_min_ms),
            delay_max: rate.samples_in_ms(config.delay_max_ms),
            pulse: rate.samples_in_ms(config.pulse_ms).max(1),
            refractory: rate.samples_in_ms(config.refractory_ms),
            one_minute: rate.samples_in_s(60.0),
            max_per_session: u64::from(config.max_per_session),
            max_per_minute: config.max_per_minute as usize,
            rng: Rng::new(config.seed),
            recent_onsets: Vec::with_capacity(config.max_per_minute as usize),
            recent_head: 0,
            last_onset: None,
            counters: TriggerCounters::default(),
            second_click: match config.sequence {
                StimSequence::Single => None,
                StimSequence::TwoClick => Some(rate.samples_in_ms(config.second_click_after_ms)),
            },
            follow_up: None,
            allowed: None,
            blanking: rate.samples_in_ms(config.blanking_ms),
            blank_onsets: VecDeque::with_capacity(config.max_per_minute as usize),
        }
    }

    /// True if sample `n` lies in [onset, onset + blanking_ms) of a delivered
    /// pulse. Call with non-decreasing `n`.
    pub fn blanks(&mut self, n: SampleIndex) -> bool {
        while self
            .blank_onsets
            .front()
            .is_some_and(|&onset| onset + self.blanking <= n)
        {
            self.blank_onsets.pop_front();
        }
        self.blank_onsets.front().is_some_and(|&onset| onset <= n)
    }

    /// Allow onsets only inside these `[start, end)` sample intervals (e.g. the
    /// N2/N3 epochs of a hypnogram), given up front so the gate does not depend
    /// on block boundaries. Overlapping intervals are merged.
    pub fn restrict_to(&mut self, mut intervals: Vec<(SampleIndex, SampleIndex)>) {
        intervals.sort_unstable();
        let mut merged: Vec<(SampleIndex, SampleIndex)> = Vec::with_capacity(intervals.len());
        for (start, end) in intervals.into_iter().filter(|(s, e)| s < e) {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        self.allowed = Some(merged);
    }

    fn is_allowed(&self, onset: SampleIndex) -> bool {
        self.allowed.as_ref().map_or(true, |intervals| {
            let after = intervals.partition_point(|&(start, _)| start <= onset);
            after > 0 && onset < intervals[after - 1].1
        })
    }

    /// The second click of the sequence `decide` just accepted (two-click
    /// mode), which passed the gate, rate limit and cap in its own right.
    pub fn take_follow_up(&mut self) -> Option<TriggerDecision> {
        self.follow_up.take()
    }

    pub fn counters(&self) -> TriggerCounters {
        self.counters
    }

    /// Decide on one accepted detection. Returns the scheduled stimulus (or
    /// sham), or `None` when triggers are off or a limit refuses it.
    pub fn decide(&mut self, detection: &Detection) -> Option<TriggerDecision> {
        if self.mode == TriggerMode::Off {
            return None;
        }
        let decided_at = detection.detected_at;
        let onset = match detection.stim_target {
            Some(target) => target.max(decided_at),
            None => decided_at + self.draw_delay(),
        };
        self.follow_up = None;
        if self.refuses(onset, true) {
            return None;
        }
        let delivered = match self.mode {
            TriggerMode::Stim => true,
            TriggerMode::Sham | TriggerMode::Off => false,
            TriggerMode::Random => self.rng.uniform() < self.stim_probability,
        };
        self.record(onset, delivered);
        let first = TriggerDecision {
            delivered,
            channel: detection.channel,
            onset,
            duration: self.pulse,
            decided_at,
            target_phase_deg: detection.target_phase_deg,
        };
        if let Some(offset) = self.second_click {
            let second = onset + offset;
            // Part of the sequence, so exempt from the refractory period; the
            // gate, the session cap and the rate limit still apply.
            if !self.refuses(second, false) {
                self.record(second, delivered);
                self.follow_up = Some(TriggerDecision {
                    onset: second,
                    target_phase_deg: None,
                    ..first
                });
            }
        }
        Some(first)
    }

    /// True (and counted by reason) if the gate, the refractory period (when
    /// `refractory` is set), the session cap or the rate limit refuses `onset`.
    fn refuses(&mut self, onset: SampleIndex, refractory: bool) -> bool {
        let in_refractory = refractory
            && self
                .last_onset
                .is_some_and(|last| onset < last + self.refractory);
        let refused = if !self.is_allowed(onset) {
            &mut self.counters.refused_gate
        } else if in_refractory {
            &mut self.counters.refused_refractory
        } else if self.counters.accepted >= self.max_per_session {
            &mut self.counters.refused_session_cap
        } else if self.minute_is_full(onset) {
            &mut self.counters.refused_rate_limit
        } else {
            return false;
        };
        *refused += 1;
        true
    }

    fn draw_delay(&mut self) -> u64 {
        if self.delay_max > self.delay_min {
            let span = (self.delay_max - self.delay_min + 1) as f64;
            self.delay_min + (self.rng.uniform() * span) as u64
        } else {
            self.delay_min
        }
    }

    /// True if `max_per_minute` decisions already have onsets within the 60 s before `onset`.
    fn minute_is_full(&self, onset: SampleIndex) -> bool {
        if self.recent_onsets.len() < self.max_per_minute {
            return false;
        }
        let oldest = self.recent_onsets[self.recent_head];
        onset < oldest + self.one_minute
    }

    fn record(&mut self, onset: SampleIndex, delivered: bool) {
        self.counters.accepted += 1;
        if delivered {
            if self.blanking > 0 && self.blank_onsets.len() < self.max_per_minute {
                self.blank_onsets.push_back(onset);
            }
            self.counters.delivered += 1;
        } else {
            self.counters.sham += 1;
        }
        self.last_onset = Some(onset);
        if self.recent_onsets.len() < self.max_per_minute {
            self.recent_onsets.push(onset);
        } else {
            self.recent_onsets[self.recent_head] = onset;
            self.recent_head = (self.recent_head + 1) % self.recent_onsets.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use proptest::prelude::*;

    fn detection_at(sample: SampleIndex) -> Detection {
        Detection {
            kind: EventKind::Ripple,
            channel: 0,
            onset: sample.saturating_sub(10),
            end: sample + 1,
            peak: sample,
            detected_at: sample,
            committed: true,
            stim_target: None,
            target_phase_deg: None,
        }
    }

    fn rate() -> SampleRate {
        SampleRate::new(1000.0).unwrap()
    }

    #[test]
    fn off_mode_never_decides() {
        let config = TriggerConfig {
            mode: TriggerMode::Off,
            ..TriggerConfig::default()
        };
        let mut policy = TriggerPolicy::new(&config, rate());
        assert!(policy.decide(&detection_at(5000)).is_none());
        assert_eq!(policy.counters(), TriggerCounters::default());
    }

    #[test]
    fn delayed_control_schedules_in_the_configured_window() {
        let config = TriggerConfig {
            delay_min_ms: 100.0,
            delay_max_ms: 300.0,
            refractory_ms: 0.0,
            max_per_minute: 6000,
            ..TriggerConfig::default()
        };
        let mut policy = TriggerPolicy::new(&config, rate());
        let delays: Vec<u64> = (0..200)
            .map(|i| {
                let d = detection_at(1000 + i * 1000);
                policy.decide(&d).unwrap().onset - d.detected_at
            })
            .collect();
        assert!(delays.iter().all(|&d| (100..=300).contains(&d)));
        assert!(delays.iter().min() < Some(&130) && delays.iter().max() > Some(&270));
    }

    #[test]
    fn random_mode_mixes_stim_and_sham_reproducibly() {
        let config = TriggerConfig {
            mode: TriggerMode::Random,
            refractory_ms: 0.0,
            max_per_minute: 6000,
            seed: 7,
            ..TriggerConfig::default()
        };
        let run = || {
            let mut policy = TriggerPolicy::new(&config, rate());
            (0..400)
                .map(|i| policy.decide(&detection_at(i * 1000)).unwrap().delivered)
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let stims = first.iter().filter(|&&d| d).count();
        assert!((150..250).contains(&stims), "{stims} stims of 400");
    }

    #[test]
    fn blanking_covers_exactly_the_interval_after_delivered_pulses() {
        let config = TriggerConfig {
            mode: TriggerMode::Random,
            refractory_ms: 0.0,
            max_per_minute: 6000,
            blanking_ms: 5.0,
            delay_max_ms: 20.0,
            ..TriggerConfig::default()
        };
        let mut policy = TriggerPolicy::new(&config, rate());
        let mut expected = vec![false; 3000];
        let mut shams = 0;
        for detected_at in (100..2800).step_by(37) {
            let decision = policy.decide(&detection_at(detected_at)).unwrap();
            if decision.delivered {
                let onset = decision.onset as usize;
                expected[onset..onset + 5].fill(true);
            } else {
                shams += 1;
            }
        }
        assert!(shams > 0, "the sham branch must be exercised");
        let blanked: Vec<bool> = (0..3000).map(|n| policy.blanks(n)).collect();
        assert_eq!(blanked, expected);
    }

    #[test]
    fn two_click_sequence_then_pause() {
        let config = TriggerConfig {
            sequence: StimSequence::TwoClick,
            second_click_after_ms: 1075.0,
            refractory_ms: 2500.0,
            ..TriggerConfig::default()
        };
        let mut policy = TriggerPolicy::new(&config, rate());
        let first = policy.decide(&detection_at(10_000)).unwrap();
        let second = policy.take_follow_up().unwrap();
        assert_eq!(second.onset - first.onset, 1075);
        assert!(policy.take_follow_up().is_none(), "taken once");
        // The pause counts from the second click.
        assert!(policy.decide(&detection_at(13_000)).is_none());
        assert!(policy.decide(&detection_at(13_575)).is_some());
        assert_eq!(policy.counters().accepted, 4);
    }

    #[test]
    fn gate_intervals_refuse_onsets_outside() {
        let config = TriggerConfig {
            refractory_ms: 0.0,
            sequence: StimSequence::TwoClick,
            second_click_after_ms: 1000.0,
            ..TriggerConfig::default()
        };
        let mut policy = TriggerPolicy::new(&config, rate());
        policy.restrict_to(vec![(5000, 6500), (1000, 2000), (1500, 3000)]);
        assert!(policy.decide(&detection_at(999)).is_none());
        assert!(policy.decide(&detection_at(1000)).is_some());
        assert!(
            policy.take_follow_up().is_some(),
            "2000 is inside the merged interval"
        );
        assert!(policy.decide(&detection_at(3000)).is_none());
        assert!(policy.decide(&detection_at(5600)).is_some());
        assert!(policy.take_follow_up().is_none(), "6600 is outside");
        assert_eq!(policy.counters().refused_gate, 3);
    }

    proptest! {
        /// Whatever the detections, accepted onsets respect the refractory
        /// period, every 60-s window holds at most max_per_minute and the
        /// session total never exceeds the cap.
        #[test]
        fn limits_are_never_exceeded(
            gaps in proptest::collection::vec(0u64..3000, 1..600),
            refractory_ms in 0.0f64..2000.0,
            max_per_minute in 1u32..50,
            max_per_session in 0u32..200,
            delay_max_ms in 0.0f64..500.0,
            two_click in proptest::bool::ANY,
        ) {
            let config = TriggerConfig {
                mode: TriggerMode::Random,
                refractory_ms,
                max_per_minute,
                max_per_session,
                delay_min_ms: 0.0,
                delay_max_ms,
                sequence: if two_click { StimSequence::TwoClick } else { StimSequence::Single },
                second_click_after_ms: 1075.0,
                ..TriggerConfig::default()
            };
            let mut policy = TriggerPolicy::new(&config, rate());
            let mut now = 0;
            let mut onsets = Vec::new();
            for gap in gaps {
                now += gap;
                if let Some(decision) = policy.decide(&detection_at(now)) {
                    prop_assert!(decision.onset >= decision.decided_at);
                    onsets.push((decision.onset, false));
                }
                if let Some(second) = policy.take_follow_up() {
                    onsets.push((second.onset, true));
                }
            }
            prop_assert!(onsets.len() <= max_per_session as usize);
            let refractory = rate().samples_in_ms(refractory_ms);
            for pair in onsets.windows(2) {
                // A sequence's second click is exempt from the refractory period only.
                if !pair[1].1 {
                    prop_assert!(pair[1].0 >= pair[0].0 + refractory);
                }
            }
            let mut onsets: Vec<u64> = onsets.into_iter().map(|(o, _)| o).collect();
            onsets.sort_unstable();
            for (i, &start) in onsets.iter().enumerate() {
                let in_window = onsets[i..].iter().take_while(|&&t| t < start + 60_000).count();
                prop_assert!(in_window <= max_per_minute as usize);
            }
        }
    }
}
