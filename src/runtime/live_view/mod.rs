//! The live monitor (`neuroloop run --monitor`): a web page that shows the loop
//! while it runs, and only observes it. The processing thread pushes display
//! bins (`crate::display`), the journal each logged event and every sink its
//! trigger latencies into lossy SPSC rings (a full ring drops and counts, never
//! waits); a task on the supervisor's tokio runtime drains them about 25 times
//! a second and fans each update out to the browsers over a broadcast channel,
//! on which a client that lags skips updates. A stalled or vanished browser
//! therefore changes nothing in the loop.

mod feed;
mod server;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringbuf::traits::{Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use tokio::sync::mpsc::UnboundedSender;

use super::control::Notice;
use super::source_watch::SourceWatch;
use super::Shared;
use crate::display::{DisplayBin, DisplayProbe};
use crate::event::Event;
use crate::session::Progress;
use crate::time::SampleRate;

/// Where the monitor listens when `--monitor` names no address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8750";
/// Display bins a second: 2-ms bins, fine enough to see a ripple's envelope.
const BINS_PER_S: f64 = 500.0;
/// The rings hold this much of each feed: the display task drains them every
/// 40 ms, so only a stalled control thread ever fills them.
const RING_S: f64 = 4.0;
const EVENT_RING: usize = 1024;
const LATENCY_RING: usize = 256;

/// Where the monitor listens, and the token every request must carry (a
/// non-loopback address requires one).
#[derive(Debug, Clone)]
pub struct MonitorSpec {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("the monitor would listen on {0}, which is not a loopback address: anyone who can reach it would see the session; give --monitor-token")]
    NeedsToken(SocketAddr),
    #[error("--monitor-token must be 16 to 128 characters of A-Z a-z 0-9 - _ . ~ (it goes in the page's URL)")]
    BadToken,
    #[error("the monitor cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

impl MonitorSpec {
    /// Refuse a non-loopback address without a token, and a token that
    /// cannot go in a URL as it is (or is too short to guess badly).
    pub fn check(&self) -> Result<(), MonitorError> {
        match &self.token {
            None if !self.addr.ip().is_loopback() => Err(MonitorError::NeedsToken(self.addr)),
            Some(t)
                if !(16..=128).contains(&t.len())
                    || !t
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) =>
            {
                Err(MonitorError::BadToken)
            }
            _ => Ok(()),
        }
    }
}

/// What the monitor dropped or skipped rather than wait (in `summary.json`).
#[derive(Debug, Default)]
pub(super) struct MonitorCounters {
    pub bins_dropped: Arc<AtomicU64>,
    pub events_dropped: Arc<AtomicU64>,
    pub latencies_dropped: Arc<AtomicU64>,
    /// Updates a lagging browser skipped.
    pub updates_skipped: AtomicU64,
    pub connections: AtomicU64,
}

/// A feeding thread's end of a ring to the monitor: it never waits, a full
/// ring drops and counts.
pub(crate) struct Tap<T> {
    ring: HeapProd<T>,
    pub dropped: Arc<AtomicU64>,
}

impl<T> Tap<T> {
    #[inline]
    pub fn push(&mut self, item: T) {
        if self.ring.try_push(item).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The producer halves, one per feeding thread.
pub(super) struct Taps {
    pub bins: Tap<DisplayBin>,
    pub events: Tap<(Event, Instant)>,
    /// One per output, in the outputs' order.
    pub latencies: Vec<Tap<Duration>>,
}

/// The consumer halves, drained by the display task.
pub(super) struct Feeds {
    bins: HeapCons<DisplayBin>,
    events: HeapCons<(Event, Instant)>,
    latencies: Vec<HeapCons<Duration>>,
}

/// A bound monitor, before the session starts.
pub(super) struct Monitor {
    listener: TcpListener,
    addr: SocketAddr,
    token: Option<String>,
    counters: Arc<MonitorCounters>,
}

/// What the page is told once, on connecting.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Hello {
    pub description: String,
    pub rate_hz: f64,
    pub labels: Vec<String>,
    /// The channel drawn as the raw signal (one the detector detects on).
    pub raw_label: String,
    pub outputs: Vec<&'static str>,
    pub units: &'static str,
    pub bin_frames: usize,
    /// Whether the disarm button works (a token was given).
    pub disarm: bool,
}

/// What the display task reads for the status line.
pub(super) struct Watched {
    pub shared: Arc<Shared>,
    pub progress: Arc<Mutex<Progress>>,
    pub source: SourceWatch,
    pub armed: Arc<AtomicBool>,
    pub notices: UnboundedSender<Notice>,
    /// The session's warnings so far, newest last (see [`remember_warning`]).
    pub warnings: Arc<Mutex<Vec<String>>>,
}

/// Warnings the page lists; older ones stay in the terminal and `log.txt`.
const WARNINGS_SHOWN: usize = 20;

/// Keep a warning for the page (each is given once, by the supervisor).
pub(super) fn remember_warning(warnings: &Mutex<Vec<String>>, message: &str) {
    let mut warnings = warnings.lock().unwrap_or_else(|e| e.into_inner());
    if warnings.len() == WARNINGS_SHOWN {
        warnings.remove(0);
    }
    warnings.push(message.to_string());
}

impl Monitor {
    /// Check the spec and listen (before the session starts, so a taken port
    /// fails it at once).
    pub fn bind(spec: &MonitorSpec) -> Result<Self, MonitorError> {
        spec.check()?;
        let bind_error = |error| MonitorError::Bind {
            addr: spec.addr,
            error,
        };
        let listener = TcpListener::bind(spec.addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            addr,
            token: spec.token.clone(),
            counters: Arc::default(),
        })
    }

    /// The page's address (the token is not repeated: log.txt keeps this line).
    pub fn url(&self) -> String {
        match &self.token {
            Some(_) => format!("http://{}/?token=<the --monitor-token>", self.addr),
            None => format!("http://{}/", self.addr),
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counters(&self) -> Arc<MonitorCounters> {
        self.counters.clone()
    }

    /// The controller's display bins for this rate and chunk size, and the
    /// rings that carry them (and the events and latencies) to the page.
    pub fn tap(
        &self,
        rate: SampleRate,
        max_chunk: usize,
        outputs: usize,
    ) -> (DisplayProbe, Taps, Feeds) {
        let bin_frames = ((rate.hz() / BINS_PER_S).round() as usize).max(1);
        // Every bin one block can finish, and the one it leaves open.
        let display = DisplayProbe::new(bin_frames, max_chunk / bin_frames + 2);
        let bins_ring = ((RING_S * rate.hz()) as usize / bin_frames).max(64);
        let c = &self.counters;
        let (bins, bins_rx) = ring(bins_ring, &c.bins_dropped);
        let (events, events_rx) = ring(EVENT_RING, &c.events_dropped);
        let (latencies, latencies_rx) = (0..outputs)
            .map(|_| ring(LATENCY_RING, &c.latencies_dropped))
            .unzip();
        let taps = Taps {
            bins,
            events,
            latencies,
        };
        let feeds = Feeds {
            bins: bins_rx,
            events: events_rx,
            latencies: latencies_rx,
        };
        (display, taps, feeds)
    }

    /// Serve the page and the feeds until the runtime that polls this stops
    /// (the session's end); the [`Farewell`] tells the pages how it ended.
    pub fn serve(
        self,
        feeds: Feeds,
        hello: Hello,
        watched: Watched,
    ) -> (
        impl std::future::Future<Output = ()> + Send + 'static,
        Farewell,
    ) {
        let state = Arc::new(server::AppState::new(
            self.token,
            &hello,
            watched.notices.clone(),
            self.counters.clone(),
        ));
        let listener = self.listener;
        let farewell = Farewell(state.clone());
        let serving = async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("monitor: cannot serve: {e}");
                    return;
                }
            };
            tokio::join!(
                feed::pump(feeds, state.clone(), watched),
                server::serve(listener, state),
            );
        };
        (serving, farewell)
    }
}

/// The longest the farewell waits for the pages to take it (a stalled one
/// never does), and the moment then left for their sockets to write it.
const FAREWELL_TIME: Duration = Duration::from_secs(1);
const FAREWELL_FLUSH: Duration = Duration::from_millis(50);

/// Tells the open pages how the session ended, once it is disarmed and written.
pub(super) struct Farewell(Arc<server::AppState>);

impl Farewell {
    /// Send the ending to every page and serve them on `runtime`, the one the
    /// monitor runs on, until each has taken it or [`FAREWELL_TIME`] is over.
    pub fn send(self, runtime: &tokio::runtime::Runtime, report: &super::LiveReport) {
        let ended = serde_json::json!({
            "type": "ended",
            "status": report.ending.status(),
            "error": report.ending.error(),
            "folder": report.dir.display().to_string(),
            "unwritten": report.unwritten,
        });
        self.0.broadcast(ended.to_string());
        let state = self.0;
        runtime.block_on(async move {
            let until = tokio::time::Instant::now() + FAREWELL_TIME;
            while state.undelivered() > 0 && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(FAREWELL_FLUSH).await;
        });
    }
}

fn ring<T>(capacity: usize, dropped: &Arc<AtomicU64>) -> (Tap<T>, HeapCons<T>) {
    let (ring, rx) = HeapRb::new(capacity).split();
    let tap = Tap {
        ring,
        dropped: dropped.clone(),
    };
    (tap, rx)
}

impl MonitorCounters {
    pub fn json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "display_bins_dropped": get(&self.bins_dropped),
            "events_dropped": get(&self.events_dropped),
            "latencies_dropped": get(&self.latencies_dropped),
            "updates_skipped": get(&self.updates_skipped),
            "connections": get(&self.connections),
        })
    }
}

/// The monitor's section of `summary.json`.
pub(super) fn report(addr: SocketAddr, counters: &MonitorCounters) -> serde_json::Value {
    let mut report = counters.json();
    report["address"] = addr.to_string().into();
    report
}

/// Now on CLOCK_MONOTONIC in ns: the clock `Instant` reads on Linux, which
/// another process (a test client) can read too.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
