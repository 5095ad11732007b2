//! What the live monitor costs the loop, and how soon a stim reaches a
//! browser. The processing thread's per-block time (p50/p99 over every 1-ms
//! block of a 64-channel 30-kHz session against the simulator, paced in real
//! time) without a monitor and with one that has two websocket clients: one
//! that connects and never reads again (stalled), one that reads and stamps
//! each stim's receipt on CLOCK_MONOTONIC, the clock the session stamps the
//! stim's deciding sample's arrival with. Alternated, so machine noise falls
//! on both. Then the controller alone, unpaced on the same signal (as
//! `block_latency`), with and without display bins: the monitor's whole cost
//! on the processing thread without the pacing's noise, and its events
//! checked identical. docs/performance.md quotes it.
//!
//! `cargo bench --bench monitor_cost` runs it (3 × 20 s each way); under
//! `cargo test` it runs one 2-s session each way as a smoke test.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures_util::StreamExt;
use neuroloop::config::Preset;
use neuroloop::controller::Controller;
use neuroloop::display::DisplayProbe;
use neuroloop::event::Event;
use neuroloop::runtime::{self, monotonic_ns, LiveSpec, MonitorSpec};
use neuroloop::time::SampleRate;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::{quantile, rig_signal, timed_blocks, BLOCK_FRAMES, CHANNELS, RATE_HZ};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (seconds, rounds) = if full { (20.0, 3) } else { (2.0, 1) };
    let (sim, rate) = rig_signal(seconds);
    let dir = tempfile::tempdir().expect("temporary folder");
    println!("per-block processing, {CHANNELS} ch × {RATE_HZ} Hz, {BLOCK_FRAMES}-frame blocks, {seconds} s a run:");
    let mut latencies_ns = Vec::new();
    for round in 0..rounds {
        for watched in [false, true] {
            let mut config = Preset::RodentRipple.config();
            config.input.block_size = BLOCK_FRAMES;
            let opened = neuroloop::device::file::recording_source(
                &sim.recording,
                BLOCK_FRAMES,
                1.0,
                "simulator".into(),
            )
            .expect("source");
            let addr = free_loopback_port();
            let clients = watched.then(|| std::thread::spawn(move || clients(addr)));
            let out = dir.path().join(format!("{round}-{watched}"));
            let report = runtime::run_live(
                LiveSpec {
                    command: "bench",
                    config: &config,
                    opened,
                    outputs: Vec::new(),
                    out: &out,
                    duration_s: None,
                    monitor: watched.then_some(MonitorSpec { addr, token: None }),
                },
                &AtomicBool::new(false),
                |_| {},
            )
            .expect("session");
            if let Some(clients) = clients {
                latencies_ns.extend(clients.join().expect("clients"));
            }
            let b = report.latency.block_processing.expect("blocks processed");
            let summary: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(out.join("summary.json")).expect("summary"),
            )
            .expect("summary is JSON");
            println!(
                "  monitor {:<5}  p50 {:5.1} µs  p99 {:5.1} µs  max {:6.1} µs  (n={})  overruns {}{}",
                watched,
                b.p50_us,
                b.p99_us,
                b.max_us,
                b.count,
                summary["runtime"]["acquisition_overrun_frames"],
                if watched {
                    format!("  monitor {}", summary["monitor"])
                } else {
                    String::new()
                }
            );
        }
    }
    println!("the controller alone, unpaced, {seconds} s a run:");
    let data = sim.recording.interleaved();
    let mut logs = Vec::new();
    for _ in 0..rounds {
        for display in [false, true] {
            let (mut blocks_ns, events) = controller_alone(&data, rate, display);
            blocks_ns.sort_unstable();
            let us = |q: f64| quantile(&blocks_ns, q) as f64 / 1e3;
            println!(
                "  display bins {:<5}  p50 {:5.2} µs  p99 {:5.2} µs  mean {:5.2} µs  ({} events)",
                display,
                us(0.5),
                us(0.99),
                blocks_ns.iter().sum::<u64>() as f64 / blocks_ns.len() as f64 / 1e3,
                events.len()
            );
            logs.push(events);
        }
    }
    assert!(
        logs.windows(2).all(|w| w[0] == w[1]),
        "display bins changed a decision"
    );
    latencies_ns.sort_unstable();
    let ms = |q: f64| quantile(&latencies_ns, q) as f64 / 1e6;
    if latencies_ns.is_empty() {
        println!("no stim reached the reading client");
    } else {
        println!(
            "deciding sample's arrival → stim at a websocket client: n={} p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            latencies_ns.len(),
            ms(0.5),
            ms(0.99),
            ms(1.0)
        );
    }
}

/// Every block's processing time (ns) and every event, with display bins
/// taken after each block as the processing thread does, or without.
fn controller_alone(data: &[f64], rate: SampleRate, display: bool) -> (Vec<u64>, Vec<Event>) {
    let mut controller =
        Controller::new(&Preset::RodentRipple.config(), rate, CHANNELS).expect("controller");
    if display {
        controller.enable_display(DisplayProbe::new(60, BLOCK_FRAMES / 60 + 2));
    }
    timed_blocks(&mut controller, data, |controller| {
        if let Some(display) = controller.display() {
            display.take().for_each(|bin| {
                std::hint::black_box(bin);
            });
        }
    })
}

/// A loopback port free a moment ago (the session binds it right after).
fn free_loopback_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

/// The stalled and the reading client, until the session ends; the reading
/// one's stim latencies in ns.
fn clients(addr: SocketAddr) -> Vec<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let url = format!("ws://{addr}/ws");
        // The session may not serve yet, or (a loaded machine, a short run) no longer.
        let connect = || async {
            for _ in 0..250 {
                if let Ok((ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
                    return Some(ws);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            None
        };
        let (Some(mut stalled), Some(mut reading)) = (connect().await, connect().await) else {
            return Vec::new();
        };
        let _hello = stalled.next().await;
        let _hello = reading.next().await;
        let mut latencies = Vec::new();
        while let Some(Ok(message)) = reading.next().await {
            let received = monotonic_ns();
            let Message::Text(text) = message else {
                continue;
            };
            let update: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            for event in update["events"].as_array().into_iter().flatten() {
                if event["kind"] == "stim" {
                    let arrived = event["arrived_mono_ns"].as_u64().unwrap_or(received);
                    latencies.push(received.saturating_sub(arrived));
                }
            }
        }
        drop(stalled);
        latencies
    })
}
