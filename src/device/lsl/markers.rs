//! `[lsl_markers]`: the session's events as an LSL marker stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::pipeline::{invalid, ConfigError};
use crate::event::Event;

use super::{c_string, lib, Api, Handle, LslError, StreamInfo, FORMAT_STRING};

// ---------------------------------------------------------------- markers

/// `[lsl_markers]`: every logged event as a string marker on an LSL stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LslMarkersConfig {
    #[serde(default = "default_marker_name")]
    pub name: String,
    /// Identifies the stream across restarts (LabRecorder reconnects by it).
    #[serde(default = "default_marker_name")]
    pub source_id: String,
}

fn default_marker_name() -> String {
    "neuroloop".into()
}

impl LslMarkersConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("lsl_markers.name", &self.name),
            ("lsl_markers.source_id", &self.source_id),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(field, "must be non-empty".into()));
            }
        }
        Ok(())
    }
}

/// The marker stream: one string channel, irregular rate, type `Markers`.
pub struct MarkerOutlet {
    outlet: Handle,
    stats: Arc<MarkerStats>,
}

// SAFETY: liblsl outlets may be used from any one thread at a time.
unsafe impl Send for MarkerOutlet {}

/// What the marker outlet did, for `summary.json`.
#[derive(Debug)]
pub struct MarkerStats {
    name: String,
    source_id: String,
    /// The session's start on this machine's LSL clock: `latency.tsv`'s times
    /// (seconds from the start) plus this are LSL timestamps.
    session_start_lsl_s: f64,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl MarkerStats {
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "source_id": self.source_id,
            "session_start_lsl_s": self.session_start_lsl_s,
            "markers_sent": self.sent.load(Ordering::Relaxed),
            "markers_failed": self.failed.load(Ordering::Relaxed),
        })
    }
}

/// How long a closing marker outlet waits so that its last markers reach
/// the inlets already connected (liblsl sends them on its own thread).
const MARKER_LINGER: Duration = Duration::from_millis(200);

impl MarkerOutlet {
    /// Create the stream; `session_start` anchors the session's host times on the LSL clock.
    pub fn open(c: &LslMarkersConfig, session_start: Instant) -> Result<Self, LslError> {
        let lib = lib()?;
        let (name, kind, id) = (
            c_string(&c.name),
            c_string("Markers"),
            c_string(&c.source_id),
        );
        // SAFETY: NUL-terminated strings; rate 0 = irregular; format string.
        let info = StreamInfo(unsafe {
            (lib.api.create_streaminfo)(
                name.as_ptr(),
                kind.as_ptr(),
                1,
                0.0,
                FORMAT_STRING,
                id.as_ptr(),
            )
        });
        // SAFETY: a live streaminfo (the outlet copies it); chunk size 0 and
        // buffer 360 are liblsl's defaults.
        let outlet = unsafe { (lib.api.create_outlet)(info.0, 0, 360) };
        if info.0.is_null() || outlet.is_null() {
            return Err(LslError::Call {
                what: "creating the marker outlet",
            });
        }
        Ok(Self {
            outlet,
            stats: Arc::new(MarkerStats {
                name: c.name.clone(),
                source_id: c.source_id.clone(),
                session_start_lsl_s: lsl_time(&lib.api, session_start),
                sent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        })
    }

    pub fn stats(&self) -> Arc<MarkerStats> {
        self.stats.clone()
    }

    /// Send `event`, which happened (or is scheduled) at host time `at`.
    pub fn send(&mut self, event: &Event, at: Instant) {
        let api = &lib()
            .expect("an outlet exists only once liblsl is loaded")
            .api;
        let text = c_string(&marker_text(event));
        let data = [text.as_ptr()];
        // SAFETY: a live outlet and one NUL-terminated string for its one channel.
        let rc =
            unsafe { (api.push_sample_strtp)(self.outlet, data.as_ptr(), lsl_time(api, at), 1) };
        let counter = if rc == 0 {
            &self.stats.sent
        } else {
            &self.stats.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for MarkerOutlet {
    fn drop(&mut self) {
        let api = &lib()
            .expect("an outlet exists only once liblsl is loaded")
            .api;
        // SAFETY: owned handle, destroyed once after the linger.
        unsafe {
            if (api.have_consumers)(self.outlet) != 0 {
                std::thread::sleep(MARKER_LINGER);
            }
            (api.destroy_outlet)(self.outlet);
        }
    }
}

/// A host time on this machine's LSL clock.
fn lsl_time(api: &Api, at: Instant) -> f64 {
    let now = Instant::now();
    // SAFETY: takes no arguments.
    let lsl_now = unsafe { (api.local_clock)() };
    match at.checked_duration_since(now) {
        Some(ahead) => lsl_now + ahead.as_secs_f64(),
        None => lsl_now - now.duration_since(at).as_secs_f64(),
    }
}

/// `stim sample=1234 decided=1230 channel=0`, `spindle sample=1000 end=1090
/// detected=1050 channel=0`: the events.tsv row's trial type and sample indices.
pub fn marker_text(event: &Event) -> String {
    match event {
        Event::Trigger(t) => format!(
            "{} sample={} decided={} channel={}",
            t.trial_type(),
            t.onset,
            t.decided_at,
            t.channel
        ),
        Event::Detection(d) => {
            let detected = if d.committed {
                format!(" detected={}", d.detected_at)
            } else {
                String::new()
            };
            format!(
                "{} sample={} end={}{detected} channel={}",
                d.kind.trial_type(),
                d.onset,
                d.end,
                d.channel
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_name_the_trial_type_and_samples() {
        use crate::event::{Detection, EventKind, TriggerDecision};
        let stim = Event::Trigger(TriggerDecision {
            delivered: true,
            channel: 0,
            onset: 1234,
            duration: 5,
            decided_at: 1230,
            target_phase_deg: None,
        });
        assert_eq!(
            marker_text(&stim),
            "stim sample=1234 decided=1230 channel=0"
        );
        let mut spindle = Detection::committed(EventKind::Spindle, 1, 1000, 1050);
        spindle.end = 1090;
        assert_eq!(
            marker_text(&Event::Detection(spindle)),
            "spindle sample=1000 end=1090 detected=1050 channel=1"
        );
        let logged = Detection::uncommitted(EventKind::Spindle, 0, 10, 20);
        assert_eq!(
            marker_text(&Event::Detection(logged)),
            "spindle sample=10 end=21 channel=0"
        );
    }
}
