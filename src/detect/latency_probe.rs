//! Loop-back probe for `neuroloop latency-test`: the rig's stimulus output is
//! wired back into one input channel. While idle the probe commits a detection
//! every `interval_ms` (the trigger policy then schedules a stimulus and the
//! outputs fire it) and watches that channel; the first sample whose |x|
//! exceeds `threshold_uv` finishes the detection with `end` at that sample, so
//! `end - detected_at` is the true round trip in sample time (acquisition,
//! processing, command, device, and back through the acquisition). A probe
//! that sees nothing within `timeout_ms` is finished as `latency_probe_lost`.

use crate::config::pipeline::{ConfigError, LatencyProbeConfig};
use crate::detect::{DetectorOutput, Probe};
use crate::event::{Detection, EventKind};
use crate::time::{SampleIndex, SampleRate};

#[derive(Debug, Clone, Copy)]
enum State {
    /// The next probe may go out at this sample (once the channel is quiet).
    Idle { next_probe: SampleIndex },
    /// A probe went out; waiting for it to come back.
    Waiting { probe: Detection },
}

#[derive(Debug, Clone)]
pub struct LatencyProbe {
    channel: usize,
    interval: u64,
    timeout: u64,
    threshold_uv: f64,
    state: State,
    /// The probed channel's last sample, µV.
    level: f64,
}

impl LatencyProbe {
    pub fn new(
        config: &LatencyProbeConfig,
        rate: SampleRate,
        channels: usize,
    ) -> Result<Self, ConfigError> {
        if config.channel >= channels {
            return Err(ConfigError::Invalid {
                field: "detector.channel",
                message: format!(
                    "is {}, but only {channels} channel(s) are processed (0-based)",
                    config.channel
                ),
            });
        }
        let interval = rate.samples_in_ms(config.interval_ms).max(1);
        Ok(Self {
            channel: config.channel,
            interval,
            timeout: rate.samples_in_ms(config.timeout_ms).max(1),
            threshold_uv: config.threshold_uv,
            state: State::Idle {
                next_probe: interval,
            },
            level: 0.0,
        })
    }

    /// The probed channel's level against the return threshold (µV).
    pub fn probe(&self) -> Probe {
        Probe {
            band: self.level,
            envelope: self.level.abs(),
            threshold: self.threshold_uv,
            gated: false,
            vetoed: false,
        }
    }

    /// The channel the probe pulses are looked for on.
    pub fn channel(&self) -> usize {
        self.channel
    }

    pub fn process_frame(
        &mut self,
        n: SampleIndex,
        frame: &[f64],
        mut emit: impl FnMut(DetectorOutput),
    ) {
        self.level = frame[self.channel];
        let high = self.level.abs() > self.threshold_uv;
        match self.state {
            // A pulse still on the line (the last one's tail, or noise) holds
            // the next probe back: it would read as an instant return.
            State::Idle { next_probe } if n >= next_probe && !high => {
                let probe = Detection::committed(EventKind::LatencyProbe, self.channel, n, n);
                emit(DetectorOutput::Commit(probe));
                self.state = State::Waiting { probe };
            }
            State::Idle { .. } => {}
            State::Waiting { mut probe } => {
                let returned = high;
                if returned || n - probe.detected_at >= self.timeout {
                    probe.end = n;
                    probe.peak = n;
                    if !returned {
                        probe.kind = EventKind::LatencyProbeLost;
                    }
                    emit(DetectorOutput::Finish(probe));
                    self.state = State::Idle {
                        next_probe: probe.detected_at + self.interval,
                    };
                }
            }
        }
    }

    /// End of input: a probe still out is lost.
    pub fn finish(&mut self, end: SampleIndex, mut emit: impl FnMut(DetectorOutput)) {
        if let State::Waiting { mut probe } = self.state {
            probe.end = end.max(probe.detected_at);
            probe.peak = probe.end;
            probe.kind = EventKind::LatencyProbeLost;
            emit(DetectorOutput::Finish(probe));
            self.state = State::Idle {
                next_probe: SampleIndex::MAX,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> LatencyProbe {
        let config = LatencyProbeConfig {
            channel: 1,
            interval_ms: 100.0,
            threshold_uv: 1000.0,
            timeout_ms: 40.0,
        };
        LatencyProbe::new(&config, SampleRate::new(250.0).unwrap(), 2).unwrap()
    }

    /// Feed `frames` of 2 channels where channel 1 is `echo(n, committed_at)`.
    fn run(frames: u64, echo: impl Fn(u64, Option<u64>) -> f64) -> Vec<DetectorOutput> {
        let mut p = probe();
        let mut out = Vec::new();
        let mut last_commit = None;
        for n in 0..frames {
            let frame = [0.0, echo(n, last_commit)];
            p.process_frame(n, &frame, |o| {
                if let DetectorOutput::Commit(d) = o {
                    last_commit = Some(d.detected_at);
                }
                out.push(o);
            });
        }
        p.finish(frames, |o| out.push(o));
        out
    }

    #[test]
    fn round_trip_is_the_return_sample_minus_the_probe_sample() {
        // The pulse comes back 3 samples after each probe and lasts 2 samples.
        let out = run(100, |n, c| match c {
            Some(c) if n >= c + 3 && n < c + 5 => 5000.0,
            _ => 0.0,
        });
        let commits: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                DetectorOutput::Commit(d) => Some(d.detected_at),
                _ => None,
            })
            .collect();
        // 100 ms at 250 Hz = 25 samples between probes.
        assert_eq!(commits, vec![25, 50, 75]);
        for o in &out {
            if let DetectorOutput::Finish(d) = o {
                assert_eq!(d.kind, EventKind::LatencyProbe);
                assert_eq!(d.end - d.detected_at, 3);
            }
        }
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn a_probe_with_no_return_is_lost_after_the_timeout() {
        let out = run(60, |_, _| 0.0);
        let DetectorOutput::Finish(d) = out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(d.kind, EventKind::LatencyProbeLost);
        // 40 ms = 10 samples.
        assert_eq!((d.detected_at, d.end), (25, 35));
        // The second probe (at 50) is still out at the end of input: lost too.
        assert!(matches!(
            out[3],
            DetectorOutput::Finish(Detection {
                kind: EventKind::LatencyProbeLost,
                end: 60,
                ..
            })
        ));
    }

    #[test]
    fn no_probe_while_the_line_is_high() {
        let out = run(60, |n, _| if n < 40 { 5000.0 } else { 0.0 });
        let DetectorOutput::Commit(d) = out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(d.detected_at, 40);
    }

    #[test]
    fn a_channel_outside_the_processed_ones_is_refused() {
        let config = LatencyProbeConfig {
            channel: 2,
            interval_ms: 100.0,
            threshold_uv: 1000.0,
            timeout_ms: 40.0,
        };
        let e = LatencyProbe::new(&config, SampleRate::new(250.0).unwrap(), 2).unwrap_err();
        assert!(e.to_string().contains("detector.channel"), "{e}");
    }
}
