//! The control plane, on tokio: stop signals, supervision of a live session
//! and its status. The realtime work (acquisition, processing, sinks) stays
//! on plain threads with lock-free rings; nothing here is on a sample path.
//! Threads report to the supervisor through an unbounded channel (a few
//! messages per session, never per sample); the supervisor also polls device
//! counters for warnings and the stop flag, and reports status once a second.
//! The live monitor (`live_view`) runs on this runtime too.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::controller::Fault;
use crate::device::DeviceError;

use super::{Ending, RuntimeError};

/// How often the supervisor checks the stop flag and device counters.
const HEALTH_PERIOD: Duration = Duration::from_millis(50);
/// How often it reports status.
const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// What the session's threads tell the supervisor.
pub(super) enum Notice {
    SourceEnded,
    Limit,
    Device(DeviceError),
    Fault(Fault),
    /// The event log or the recording could not be written.
    Storage(String),
    Warning(String),
    /// The monitor page's disarm button: ends the session as Ctrl-C does.
    Disarm,
}

/// The runtime the supervisor and the monitor run on (the main thread's).
pub(super) fn supervisor_runtime() -> Result<tokio::runtime::Runtime, RuntimeError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .enable_io()
        .build()
        .map_err(RuntimeError::Thread)
}

pub(super) fn notice_channel() -> (UnboundedSender<Notice>, UnboundedReceiver<Notice>) {
    tokio::sync::mpsc::unbounded_channel()
}

/// A flag that SIGINT (Ctrl-C), SIGTERM or SIGHUP sets. A tokio runtime on
/// its own thread waits for the signals, so a session stopped by `kill` or a
/// closed terminal disarms and flushes exactly like one stopped by Ctrl-C.
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (mut interrupt, mut terminate, mut hangup) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        )
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("neuroloop-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    let name = tokio::select! {
                        _ = interrupt.recv() => "interrupt",
                        _ = terminate.recv() => "SIGTERM",
                        _ = hangup.recv() => "SIGHUP",
                    };
                    if !flag.swap(true, Ordering::SeqCst) {
                        tracing::warn!("{name}: stopping (outputs are disarmed first)");
                    }
                }
            })
        })?;
    Ok(stop)
}

/// Supervise a running session until it ends: a notice that ends it, the
/// stop flag, or every thread gone. `check_health` runs every 50 ms and may
/// warn through the `warn` it is given (each message once, logged and handed
/// to `on_warning`); `on_status` runs once a second. `beside` (the monitor)
/// runs on `runtime` (see [`supervisor_runtime`]) until then, and after, as
/// long as the caller drives it.
pub(super) fn supervise(
    runtime: &tokio::runtime::Runtime,
    mut notices: UnboundedReceiver<Notice>,
    stop: &AtomicBool,
    mut check_health: impl FnMut(&mut dyn FnMut(String, String)),
    mut on_status: impl FnMut(),
    mut on_warning: impl FnMut(&str),
    beside: Option<impl Future<Output = ()> + Send + 'static>,
) -> Ending {
    if let Some(task) = beside {
        runtime.spawn(task);
    }
    let mut warned = std::collections::BTreeSet::new();
    let mut warn_once = move |key: String, message: String| {
        if warned.insert(key) {
            tracing::warn!("{message}");
            on_warning(&message);
        }
    };
    runtime.block_on(async move {
        let mut health = tokio::time::interval(HEALTH_PERIOD);
        let mut status = tokio::time::interval(STATUS_PERIOD);
        status.tick().await;
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Some(Notice::SourceEnded | Notice::Limit) | None => return Ending::Complete,
                    Some(Notice::Device(e)) => return Ending::Device(e),
                    Some(Notice::Fault(f)) => return Ending::Fault(f),
                    Some(Notice::Storage(e)) => return Ending::Storage(e),
                    Some(Notice::Warning(w)) => warn_once(w.clone(), w),
                    Some(Notice::Disarm) => {
                        tracing::warn!("monitor: disarm pressed: stopping (outputs are disarmed first)");
                        return Ending::Interrupted;
                    }
                },
                _ = health.tick() => {
                    if stop.load(Ordering::SeqCst) {
                        return Ending::Interrupted;
                    }
                    check_health(&mut warn_once);
                }
                _ = status.tick() => on_status(),
            }
        }
    })
}
