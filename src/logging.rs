//! Diagnostics through `tracing`: human-readable lines on the terminal, and
//! the same (with timestamps) in the session folder's `log.txt`.
//!
//! The library only emits events (`tracing::warn!` …); a program that wants
//! them shown calls [`init`] once. The realtime paths (the processing thread,
//! audio callbacks) never log: they count, and a supervising thread reports.
//! File writes happen on `tracing-appender`'s worker thread, so a slow disk
//! delays no thread that emits an event.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use tracing::Level;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::{format, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The name of the log in every session folder.
pub const LOG_FILE: &str = "log.txt";

/// The open `log.txt` of the current session; `None` until a session folder
/// exists. Set only when [`init`] has run (library users and tests that never
/// asked for logging get no file).
static SESSION_LOG: OnceLock<Mutex<Option<File>>> = OnceLock::new();

/// Keeps the file writer's worker alive; dropping it flushes what is queued.
#[must_use = "dropping the guard stops writing log.txt"]
pub struct Logging {
    _worker: WorkerGuard,
}

/// Install the subscriber. `verbosity`: 0 shows info and above, each `-v`
/// one level more, each `-q` one level less. `RUST_LOG`, when set, overrides
/// it (e.g. `RUST_LOG=neuroloop::runtime=debug`).
pub fn init(verbosity: i8) -> Logging {
    let level = match verbosity {
        i8::MIN..=-2 => LevelFilter::ERROR,
        -1 => LevelFilter::WARN,
        0 => LevelFilter::INFO,
        1 => LevelFilter::DEBUG,
        2..=i8::MAX => LevelFilter::TRACE,
    };
    let filter = || {
        EnvFilter::builder()
            .with_default_directive(level.into())
            .from_env_lossy()
    };
    SESSION_LOG.get_or_init(|| Mutex::new(None));
    let (file_writer, worker) = tracing_appender::non_blocking(SessionLogWriter);
    let terminal = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .event_format(Terminal)
        .with_filter(filter());
    // The file keeps neuroloop's debug lines, whatever -q asked of the terminal.
    let file = tracing_subscriber::fmt::layer()
        .with_writer(file_writer)
        .with_ansi(false)
        .with_target(true)
        .with_filter(
            filter().add_directive(
                format!("neuroloop={}", level.max(LevelFilter::DEBUG))
                    .parse()
                    .expect("a valid directive"),
            ),
        );
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(terminal)
        .with(file)
        .try_init();
    Logging { _worker: worker }
}

/// Terminal lines as the CLI always printed them: `warning: …`, `error: …`,
/// plain text for information.
struct Terminal;

impl<S, N> FormatEvent<S, N> for Terminal
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let prefix = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::INFO => "",
            Level::DEBUG => "debug: ",
            Level::TRACE => "trace: ",
        };
        write!(writer, "{prefix}")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Send the log to `dir/log.txt` from now on (appending). A no-op unless
/// [`init`] ran. Called when a session folder is created.
pub fn attach_session_log(dir: &Path) -> io::Result<()> {
    let Some(slot) = SESSION_LOG.get() else {
        return Ok(());
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(LOG_FILE))?;
    if let Ok(mut current) = slot.lock() {
        *current = Some(file);
    }
    Ok(())
}

/// Writes to the current session's `log.txt`, if any (on the appender's
/// worker thread). Lines before the folder exists reach the terminal only.
struct SessionLogWriter;

impl Write for SessionLogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match SESSION_LOG.get().and_then(|s| s.lock().ok()) {
            Some(mut guard) => match guard.as_mut() {
                Some(file) => file.write(buf),
                None => Ok(buf.len()),
            },
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match SESSION_LOG.get().and_then(|s| s.lock().ok()) {
            Some(mut guard) => guard.as_mut().map_or(Ok(()), |f| f.flush()),
            None => Ok(()),
        }
    }
}
