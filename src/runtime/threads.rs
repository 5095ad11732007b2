//! Starting a session's threads, one function each, and stopping them in the
//! disarm-first order.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use ringbuf::traits::Split;
use ringbuf::{HeapProd, HeapRb};
use tokio::sync::mpsc::UnboundedSender;

use super::control::Notice;
use super::live_view::{Tap, Taps};
use super::ring::{ChunkHeader, RecordTee, RingWriter};
use super::{journal, processing, recorder, sinks};
use super::{thread_panicked, LiveSpec, RuntimeError, Shared};
use crate::controller::Controller;
use crate::device::{Opened, Source, TriggerCommand, TriggerOutput};
use crate::event::Event;
use crate::io::recorder::{DigitalScale, RecordingCounters, RecordingSpec, RecordingWriter};
use crate::io::session::{SessionError, SessionWriter};
use crate::session::Progress;

/// Events buffered between the processing and the log thread.
const EVENT_RING: usize = 1 << 16;
/// Trigger commands buffered per sink.
const COMMAND_RING: usize = 1024;
/// The acquisition ring holds this much signal, or `MIN_RING_FRAMES`
/// frames (and chunks) if that is more, to ride out scheduling gaps.
const SAMPLE_RING_S: f64 = 2.0;
const MIN_RING_FRAMES: usize = 1 << 16;

pub(super) fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, RuntimeError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(RuntimeError::Thread)
}

/// The flags that stop each thread, set in the disarm-first order.
#[derive(Default)]
pub(super) struct Flags {
    pub armed: Arc<AtomicBool>,
    stop_sinks: Arc<AtomicBool>,
    stop_acquisition: Arc<AtomicBool>,
    stop_processing: Arc<AtomicBool>,
    source_done: Arc<AtomicBool>,
    stop_journal: Arc<AtomicBool>,
    stop_recorder: Arc<AtomicBool>,
    /// Where the recording ends, set once processing has stopped.
    recording_end: Arc<AtomicU64>,
}

/// The running threads of a session.
pub(super) struct Threads {
    sinks: Vec<JoinHandle<sinks::SinkReport>>,
    journal: JoinHandle<SessionWriter>,
    processing: JoinHandle<processing::ProcessingReport>,
    acquisition: JoinHandle<()>,
    recorder: Option<JoinHandle<Result<RecordingCounters, String>>>,
}

/// What the threads handed back at shutdown.
pub(super) struct Joined {
    pub sinks: Vec<sinks::SinkReport>,
    pub writer: SessionWriter,
    pub processed: processing::ProcessingReport,
    pub recording: Option<Result<RecordingCounters, String>>,
}

/// What every thread is started with besides its own parts.
pub(super) struct Common<'a> {
    pub flags: &'a Flags,
    pub shared: &'a Arc<Shared>,
    pub notices: UnboundedSender<Notice>,
}

/// The recorder thread and what feeds it: the tee on the acquisition ring
/// and the journal's annotation queue.
struct RecorderParts {
    tee: RecordTee,
    thread: JoinHandle<Result<RecordingCounters, String>>,
    annotations: (HeapProd<Event>, Thread),
}

/// Start every thread, consumers before their producers: the sinks, the
/// recorder, the journal, processing, then acquisition. `taps` feed the live
/// monitor, if one watches.
#[allow(clippy::too_many_arguments)]
pub(super) fn start_threads(
    spec: LiveSpec,
    controller: Controller,
    selected: Vec<usize>,
    writer: SessionWriter,
    markers: Option<crate::device::lsl::MarkerOutlet>,
    progress: &Arc<Mutex<Progress>>,
    common: Common,
    taps: Option<Taps>,
) -> Result<Threads, RuntimeError> {
    let (display, monitor_events, latencies) = match taps {
        Some(t) => (Some(t.bins), Some(t.events), Some(t.latencies)),
        None => (None, None, None),
    };
    let rate = spec.opened.rate;
    let source_channels = spec.opened.labels.len();
    let ring_frames = ((rate.hz() * SAMPLE_RING_S).ceil() as usize).max(MIN_RING_FRAMES);
    let max_chunk = spec.opened.max_chunk_frames;
    let ring_samples = (ring_frames + max_chunk) * source_channels;
    // Sinks first: the journal releases triggers to them.
    let capacity = spec.config.trigger.max_per_session as usize + 1;
    let (outputs, sink_threads) = start_sinks(spec.outputs, capacity, &common, latencies)?;
    let (tee, recorder, annotations) = if spec.config.recording.enabled {
        let r = start_recorder(&spec.opened, spec.out, ring_frames, ring_samples, &common)?;
        (Some(r.tee), Some(r.thread), Some(r.annotations))
    } else {
        (None, None, None)
    };
    let (entry_tx, entry_rx) = HeapRb::<journal::Entry>::new(EVENT_RING).split();
    let journal = spawn("neuroloop-journal", {
        let journal = journal::Journal {
            writer,
            entries: entry_rx,
            outputs,
            rate,
            shared: common.shared.clone(),
            progress: progress.clone(),
            notices: common.notices.clone(),
            stop: common.flags.stop_journal.clone(),
            annotations,
            markers,
            monitor: monitor_events,
        };
        move || journal.run()
    })?;
    let (sample_tx, sample_rx) = HeapRb::<f64>::new(ring_samples).split();
    let (header_tx, header_rx) = HeapRb::<ChunkHeader>::new(ring_frames).split();
    let processing = spawn("neuroloop-processing", {
        let processing = processing::Processing {
            controller,
            samples: sample_rx,
            headers: header_rx,
            selected,
            source_channels,
            max_chunk,
            limit: spec.duration_s.map(|s| rate.samples_in_s(s)),
            journal: entry_tx,
            journal_thread: journal.thread().clone(),
            shared: common.shared.clone(),
            notices: common.notices.clone(),
            stop: common.flags.stop_processing.clone(),
            source_done: common.flags.source_done.clone(),
            realtime: spec.config.realtime.clone(),
            display,
        };
        move || processing.run()
    })?;
    let ring = RingWriter {
        samples: sample_tx,
        headers: header_tx,
        channels: source_channels,
        consumer: processing.thread().clone(),
        overrun_frames: common.shared.overrun_frames.clone(),
        tee,
    };
    let acquisition = start_acquisition(spec.opened.source, ring, &common)?;
    Ok(Threads {
        sinks: sink_threads,
        journal,
        processing,
        acquisition,
        recorder,
    })
}

/// One thread per output, each with its command ring (the journal's side is
/// returned with the thread to wake) and its tap of latencies to the monitor.
#[allow(clippy::type_complexity)]
fn start_sinks(
    outputs: Vec<Box<dyn TriggerOutput>>,
    capacity: usize,
    common: &Common,
    latencies: Option<Vec<Tap<Duration>>>,
) -> Result<
    (
        Vec<(HeapProd<TriggerCommand>, Thread)>,
        Vec<JoinHandle<sinks::SinkReport>>,
    ),
    RuntimeError,
> {
    let mut rings = Vec::new();
    let mut threads = Vec::new();
    let mut latencies = latencies.map(Vec::into_iter);
    for output in outputs {
        let (tx, rx) = HeapRb::<TriggerCommand>::new(COMMAND_RING).split();
        let handle = sinks::Sink {
            output,
            commands: rx,
            armed: common.flags.armed.clone(),
            stop: common.flags.stop_sinks.clone(),
            shared: common.shared.clone(),
            notices: common.notices.clone(),
            capacity,
            latencies: latencies.as_mut().and_then(Iterator::next),
        }
        .spawn()?;
        rings.push((tx, handle.thread().clone()));
        threads.push(handle);
    }
    Ok((rings, threads))
}

/// Create `recording.bdf` and start the thread that writes it.
fn start_recorder(
    opened: &Opened,
    out: &Path,
    ring_frames: usize,
    ring_samples: usize,
    common: &Common,
) -> Result<RecorderParts, RuntimeError> {
    let source_channels = opened.labels.len();
    let scales = opened
        .full_scale_uv
        .iter()
        .zip(&opened.labels)
        .map(|(&range, label)| {
            DigitalScale::symmetric(range).ok_or_else(|| {
                SessionError::File(crate::io::FileError::CannotWrite {
                    path: out.join("recording.bdf"),
                    problem: format!(
                        "channel {label}: no recording scale for a range of ±{range} µV"
                    ),
                })
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let writer = RecordingWriter::create(
        &out.join("recording.bdf"),
        &RecordingSpec {
            labels: opened.labels.clone(),
            scales: scales.clone(),
            rate: opened.rate,
            source: opened.description.clone(),
            start_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        },
    )
    .map_err(SessionError::from)?;
    let (codes_tx, codes_rx) = HeapRb::<i32>::new(ring_samples).split();
    let (chunks_tx, chunks_rx) = HeapRb::<recorder::RecordedChunk>::new(ring_frames).split();
    let (events_tx, events_rx) = HeapRb::<Event>::new(EVENT_RING).split();
    let recorder = recorder::Recorder {
        writer,
        chunks: chunks_rx,
        codes: codes_rx,
        events: events_rx,
        channels: source_channels,
        shared: common.shared.clone(),
        end: common.flags.recording_end.clone(),
        stop: common.flags.stop_recorder.clone(),
        notices: common.notices.clone(),
    };
    let thread = spawn("neuroloop-recorder", move || recorder.run())?;
    let max_chunk = opened.max_chunk_frames;
    let tee = RecordTee {
        scales,
        codes: codes_tx,
        chunks: chunks_tx,
        coded: vec![0; max_chunk * source_channels],
        quantized: vec![0.0; max_chunk * source_channels],
        clipped: common.shared.clipped_samples.clone(),
    };
    let annotations = (events_tx, thread.thread().clone());
    Ok(RecorderParts {
        tee,
        thread,
        annotations,
    })
}

/// The acquisition thread: the source's loop into the ring until it ends,
/// fails or is stopped (the audio source's callback writes into the ring
/// itself; this thread then only watches it).
fn start_acquisition(
    source: Source,
    ring: RingWriter,
    common: &Common,
) -> Result<JoinHandle<()>, RuntimeError> {
    let stop = common.flags.stop_acquisition.clone();
    let source_done = common.flags.source_done.clone();
    let notices = common.notices.clone();
    let consumer = ring.consumer.clone();
    spawn("neuroloop-acquisition", move || {
        // `run` drops the ring's writer before it returns, so nothing is
        // pushed once the source is marked done.
        if let Err(e) = source.run(Box::new(ring), &stop) {
            let _ = notices.send(Notice::Device(e));
        }
        source_done.store(true, Ordering::Release);
        consumer.unpark();
    })
}

/// Stop every thread in the disarm-first order: (1) disarm and join every
/// output, so none can fire again; (2) stop acquisition, then processing;
/// (3) let the journal log what is still queued; (4) let the recorder write
/// the frames processing processed, and end the recording there.
pub(super) fn shut_down(threads: Threads, flags: &Flags) -> Result<Joined, RuntimeError> {
    flags.armed.store(false, Ordering::SeqCst);
    flags.stop_sinks.store(true, Ordering::Release);
    let mut sinks = Vec::new();
    for handle in threads.sinks {
        handle.thread().unpark();
        sinks.push(handle.join().map_err(|_| thread_panicked("sink"))?);
    }
    flags.stop_acquisition.store(true, Ordering::Release);
    // A source that only watches its device (audio) parks between checks.
    threads.acquisition.thread().unpark();
    threads
        .acquisition
        .join()
        .map_err(|_| thread_panicked("acquisition"))?;
    flags.stop_processing.store(true, Ordering::Release);
    threads.processing.thread().unpark();
    let processed = threads
        .processing
        .join()
        .map_err(|_| thread_panicked("processing"))?;
    flags.stop_journal.store(true, Ordering::Release);
    threads.journal.thread().unpark();
    let writer = threads
        .journal
        .join()
        .map_err(|_| thread_panicked("journal"))?;
    let recording = match threads.recorder {
        None => None,
        Some(handle) => {
            flags.recording_end.store(processed.end, Ordering::Release);
            flags.stop_recorder.store(true, Ordering::Release);
            handle.thread().unpark();
            Some(handle.join().map_err(|_| thread_panicked("recorder"))?)
        }
    };
    Ok(Joined {
        sinks,
        writer,
        processed,
        recording,
    })
}
