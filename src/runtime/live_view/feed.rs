//! The display task: drains the rings about 25 times a second, keeps the last
//! seconds for browsers that connect later, and broadcasts one update per
//! tick (display bins, new events, counters).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringbuf::traits::Consumer;
use serde_json::{json, Value};

use super::server::AppState;
use super::{monotonic_ns, Feeds, Watched};
use crate::event::Event;
use crate::runtime::latency::LatencyHistogram;

/// One update per 40 ms: smooth enough to watch, cheap to send.
const UPDATE_PERIOD: Duration = Duration::from_millis(40);

pub(super) async fn pump(mut feeds: Feeds, state: Arc<AppState>, watched: Watched) {
    let mut tick = tokio::time::interval(UPDATE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut latency = LatencyHistogram::new();
    loop {
        tick.tick().await;
        let bins: Vec<_> = feeds.bins.pop_iter().collect();
        let now = (Instant::now(), monotonic_ns());
        let events: Vec<_> = feeds
            .events
            .pop_iter()
            .map(|(event, arrived)| event_json(&event, arrived, now))
            .collect();
        for ring in &mut feeds.latencies {
            ring.pop_iter().for_each(|d| latency.record(d));
        }
        let status = status(&watched, &state, &latency);
        state.remember(&bins, &events, &status);
        if !state.has_clients() {
            continue;
        }
        let update = json!({
            "type": "update",
            "sent_mono_ns": monotonic_ns(),
            "bins": bins,
            "events": events,
            "status": status,
        });
        state.broadcast(update.to_string());
    }
}

/// An event for the page; `arrived_mono_ns` is when its deciding sample
/// arrived, on CLOCK_MONOTONIC (`now`: the same instant on both clocks).
fn event_json(event: &Event, arrived: Instant, (now, now_ns): (Instant, u64)) -> Value {
    let arrived_mono_ns =
        now_ns.saturating_sub(now.saturating_duration_since(arrived).as_nanos() as u64);
    match event {
        Event::Detection(d) => json!({
            "kind": d.kind.trial_type(),
            "onset": d.onset,
            "end": d.end,
            "channel": d.channel,
            "decided_at": d.committed.then_some(d.detected_at),
            "arrived_mono_ns": arrived_mono_ns,
        }),
        Event::Trigger(t) => json!({
            "kind": t.trial_type(),
            "onset": t.onset,
            "end": t.onset + t.duration,
            "channel": t.channel,
            "decided_at": t.decided_at,
            "arrived_mono_ns": arrived_mono_ns,
        }),
    }
}

/// Counters and health, as the page shows them.
fn status(watched: &Watched, state: &AppState, latency: &LatencyHistogram) -> Value {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let shared = &watched.shared;
    let progress = watched
        .progress
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    json!({
        "frames_done": get(&shared.frames_done),
        "counts": progress.counts,
        "armed": watched.armed.load(Ordering::Relaxed),
        "dropped_frames": get(&shared.overrun_frames),
        "event_ring_full": get(&shared.event_ring_full),
        "command_ring_full": get(&shared.command_ring_full),
        "suppressed_disarmed": get(&shared.suppressed_disarmed),
        "triggers_withheld": get(&shared.triggers_withheld),
        "clipped_samples": get(&shared.clipped_samples),
        "trigger_latency": latency.summary(),
        "source": watched.source.report(),
        "monitor": state.counters.json(),
        "warnings": &*watched.warnings.lock().unwrap_or_else(|e| e.into_inner()),
    })
}
