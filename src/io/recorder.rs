//! The session recording: a BDF+ file (24-bit EDF+, readable by EDFbrowser,
//! MNE, pyedflib, edfio) written while a live session runs, holding every
//! source channel exactly as the detectors received it, with the session's
//! detections and stims as annotations.
//!
//! Exactness: a live source's samples pass through [`DigitalScale`] before the
//! detectors see them (`decode(encode(x))`), so what the file stores is what
//! was processed, bit for bit, and a replay of the file decides the same.
//!
//! Crash safety: data records are short (0.2 s where the rate allows) and each
//! is written whole as soon as it is full; the header says `-1` records (the
//! EDF convention for a recording in progress) until `finish` writes the
//! count. A killed process leaves a file readable up to its last record.
//!
//! Gaps: frames a source dropped are written as [`DigitalScale::NO_VALUE`]
//! (below the digital minimum) with a `gap` annotation, so the file's time
//! axis is the session's sample index; a non-finite sample is written the
//! same way. The padding after the last sample of the last record is
//! `NO_VALUE` too, and an `end` annotation marks the last sample.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::edf::{format_bound, push_ascii_field, Rounding};
use super::FileError;
use crate::time::{SampleIndex, SampleRate};

/// BDF's 24-bit sample range; the lowest code marks "no value".
const BDF_MIN: i32 = -8_388_608;
const BDF_MAX: i32 = 8_388_607;
/// Record durations tried, shortest first: the first with a whole number of
/// samples is used.
const RECORD_DURATIONS_S: [&str; 3] = ["0.2", "0.5", "1"];
/// Bytes of the annotation signal per record (a multiple of 3: BDF samples).
const ANNOTATION_BYTES: usize = 3 * 86;
/// Annotations waiting for room in a record; more are counted and dropped
/// (`events.tsv` holds every event regardless).
const MAX_QUEUED_ANNOTATIONS: usize = 4096;
/// Offset and width of the header's "number of data records" field.
const RECORD_COUNT_OFFSET: u64 = 236;
/// A gap longer than this is not filled (it would be a device fault).
const MAX_GAP_S: f64 = 600.0;

/// How a channel's physical values (µV) map to the 24-bit codes of the file.
/// `decode` is the EDF reader's formula, so a value read back from the file
/// equals `decode(encode(x))` as the live session computed it.
#[derive(Debug, Clone, PartialEq)]
pub struct DigitalScale {
    min_text: String,
    max_text: String,
    physical_min: f64,
    physical_max: f64,
    gain: f64,
}

impl DigitalScale {
    pub const DIGITAL_MIN: i32 = BDF_MIN + 1;
    pub const DIGITAL_MAX: i32 = BDF_MAX;
    /// The code of a sample that has no value (a gap, a non-finite sample).
    pub const NO_VALUE: i32 = BDF_MIN;

    /// ±`range` (rounded up to what the 8-character header fields hold) over
    /// the codes ±8 388 607. `None` if `range` is not positive and finite or
    /// too large for the header.
    pub fn symmetric(range: f64) -> Option<Self> {
        if !(range.is_finite() && range > 0.0) {
            return None;
        }
        // The minimum's text carries a sign: the maximum must fit in 7.
        let (max_text, physical_max) = format_bound(range, Rounding::Up, 7)?;
        let physical_min = -physical_max;
        let gain = (physical_max - physical_min) / f64::from(Self::DIGITAL_MAX - Self::DIGITAL_MIN);
        Some(Self {
            min_text: format!("-{max_text}"),
            max_text,
            physical_min,
            physical_max,
            gain,
        })
    }

    /// The code for `x`: rounded, clamped to the digital range; `NO_VALUE`
    /// for a non-finite value.
    pub fn encode(&self, x: f64) -> i32 {
        if !x.is_finite() {
            return Self::NO_VALUE;
        }
        let code = ((x - self.physical_min) / self.gain).round() + f64::from(Self::DIGITAL_MIN);
        code.clamp(f64::from(Self::DIGITAL_MIN), f64::from(Self::DIGITAL_MAX)) as i32
    }

    /// The physical value of a code; NaN for `NO_VALUE`.
    pub fn decode(&self, code: i32) -> f64 {
        if code == Self::NO_VALUE {
            return f64::NAN;
        }
        self.physical_min + f64::from(code - Self::DIGITAL_MIN) * self.gain
    }

    /// Whether `x` lies outside the range (and is clipped by `encode`).
    pub fn clips(&self, x: f64) -> bool {
        x < self.physical_min || x > self.physical_max
    }

    pub fn physical_max(&self) -> f64 {
        self.physical_max
    }
}

/// What a recording holds: one entry per source channel.
#[derive(Debug, Clone)]
pub struct RecordingSpec {
    pub labels: Vec<String>,
    pub scales: Vec<DigitalScale>,
    pub rate: SampleRate,
    /// Describes the source in the header's recording field.
    pub source: String,
    /// Wall-clock start (seconds since the Unix epoch, UTC), for the header.
    pub start_unix_s: u64,
}

/// Counters of a finished (or failed) recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecordingCounters {
    pub records: u64,
    /// Frames received from the session (excluding gaps).
    pub frames: u64,
    /// Frames the source skipped, written as `NO_VALUE`.
    pub gap_frames: u64,
    pub gaps: u64,
    pub annotations: u64,
    pub annotations_dropped: u64,
}

/// An annotation waiting for a record with room.
struct Tal {
    onset: SampleIndex,
    duration: Option<SampleIndex>,
    text: &'static str,
}

/// A BDF+ file being written, one data record at a time.
pub struct RecordingWriter {
    path: PathBuf,
    file: File,
    channels: usize,
    rate: SampleRate,
    samples_per_record: usize,
    /// One record: each channel's samples in turn, then the annotation signal.
    record: Vec<u8>,
    /// Frames in the current record so far.
    filled: usize,
    /// Session sample of the next frame.
    next: SampleIndex,
    queued: VecDeque<Tal>,
    counters: RecordingCounters,
}

fn io_error<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> FileError + 'a {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

impl RecordingWriter {
    /// Create the file and write its header (record count `-1`).
    pub fn create(path: &Path, spec: &RecordingSpec) -> Result<Self, FileError> {
        let cannot = |problem: String| FileError::CannotWrite {
            path: path.to_path_buf(),
            problem,
        };
        if spec.labels.is_empty() || spec.labels.len() != spec.scales.len() {
            return Err(cannot(format!(
                "{} label(s) for {} scale(s)",
                spec.labels.len(),
                spec.scales.len()
            )));
        }
        let (duration_text, samples_per_record) = RECORD_DURATIONS_S
            .iter()
            .find_map(|text| {
                let exact = spec.rate.hz() * text.parse::<f64>().expect("decimal");
                let whole = exact.round();
                ((exact - whole).abs() <= 1e-9 * exact && whole >= 1.0)
                    .then_some((*text, whole as usize))
            })
            .ok_or_else(|| {
                cannot(format!(
                    "a rate of {} Hz gives no whole number of samples in 0.2, 0.5 or 1 s records",
                    spec.rate
                ))
            })?;
        let channels = spec.labels.len();
        let header = header(spec, duration_text, samples_per_record);
        let mut file = File::create_new(path).map_err(io_error(path, "create"))?;
        file.write_all(&header).map_err(io_error(path, "write"))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            channels,
            rate: spec.rate,
            samples_per_record,
            record: vec![0; channels * samples_per_record * 3 + ANNOTATION_BYTES],
            filled: 0,
            next: 0,
            queued: VecDeque::with_capacity(MAX_QUEUED_ANNOTATIONS),
            counters: RecordingCounters::default(),
        })
    }

    pub fn counters(&self) -> RecordingCounters {
        self.counters
    }

    /// Append interleaved frames (codes from [`DigitalScale::encode`]) whose
    /// first frame is session sample `start`. Frames skipped since the last
    /// call are written as `NO_VALUE` with a `gap` annotation; frames before
    /// the next expected sample are refused.
    pub fn write_frames(&mut self, start: SampleIndex, codes: &[i32]) -> Result<(), FileError> {
        if start < self.next {
            return Err(FileError::CannotWrite {
                path: self.path.clone(),
                problem: format!(
                    "frames for sample {start} arrived after sample {} was written",
                    self.next
                ),
            });
        }
        let gap = start - self.next;
        if gap > 0 {
            if gap as f64 > MAX_GAP_S * self.rate.hz() {
                return Err(FileError::CannotWrite {
                    path: self.path.clone(),
                    problem: format!(
                        "the source skipped {gap} frames ({:.0} s) at sample {}",
                        self.rate.seconds(gap),
                        self.next
                    ),
                });
            }
            self.annotate(self.next, Some(gap), "gap");
            self.counters.gaps += 1;
            self.counters.gap_frames += gap;
            for _ in 0..gap {
                self.push_frame(None)?;
            }
        }
        for frame in codes.chunks_exact(self.channels) {
            self.push_frame(Some(frame))?;
            self.counters.frames += 1;
        }
        Ok(())
    }

    /// Queue an annotation (written into the next record with room).
    pub fn annotate(
        &mut self,
        onset: SampleIndex,
        duration: Option<SampleIndex>,
        text: &'static str,
    ) {
        if self.queued.len() < MAX_QUEUED_ANNOTATIONS {
            self.queued.push_back(Tal {
                onset,
                duration,
                text,
            });
        } else {
            self.counters.annotations_dropped += 1;
        }
    }

    /// Push what the OS holds of the file to the disk.
    pub fn sync(&self) -> Result<(), FileError> {
        self.file.sync_data().map_err(io_error(&self.path, "write"))
    }

    /// End the recording at session sample `end` (frames from `end` on were
    /// never processed and are not kept): pad and write the last record,
    /// write the remaining annotations, then the record count.
    pub fn finish(mut self, end: SampleIndex) -> Result<RecordingCounters, FileError> {
        if end < self.next {
            self.discard_after(end);
        }
        self.annotate(end, None, "end");
        while self.filled > 0 || !self.queued.is_empty() {
            self.push_frame(None)?;
        }
        self.file
            .seek(SeekFrom::Start(RECORD_COUNT_OFFSET))
            .and_then(|_| {
                let mut field = Vec::with_capacity(8);
                push_ascii_field(&mut field, &self.counters.records.to_string(), 8);
                self.file.write_all(&field)
            })
            .and_then(|()| self.file.sync_all())
            .map_err(io_error(&self.path, "write"))?;
        Ok(self.counters)
    }

    /// Forget frames from `end` on that are still in the unwritten record
    /// (the session stopped before processing them).
    fn discard_after(&mut self, end: SampleIndex) {
        let record_start = self.next - self.filled as u64;
        let keep = end.saturating_sub(record_start) as usize;
        let dropped = (self.filled - keep.min(self.filled)) as u64;
        self.filled = keep.min(self.filled);
        self.next = record_start + self.filled as u64;
        self.counters.frames = self.counters.frames.saturating_sub(dropped);
    }

    /// One frame into the record (`None`: no value on any channel); writes
    /// the record when it is full.
    fn push_frame(&mut self, frame: Option<&[i32]>) -> Result<(), FileError> {
        let per = self.samples_per_record;
        for channel in 0..self.channels {
            let code = frame.map_or(DigitalScale::NO_VALUE, |f| f[channel]);
            let at = 3 * (channel * per + self.filled);
            self.record[at..at + 3].copy_from_slice(&code.to_le_bytes()[..3]);
        }
        self.filled += 1;
        self.next += 1;
        if self.filled == per {
            self.write_record()?;
        }
        Ok(())
    }

    fn write_record(&mut self) -> Result<(), FileError> {
        let data_bytes = self.channels * self.samples_per_record * 3;
        let onset_s = self
            .rate
            .seconds(self.counters.records * self.samples_per_record as u64);
        let annotations = &mut self.record[data_bytes..];
        annotations.fill(0);
        let mut at = write_tal(annotations, 0, &format!("+{onset_s}\x14\x14\0"));
        while let Some(tal) = self.queued.front() {
            let onset = self.rate.seconds(tal.onset);
            let text = match tal.duration {
                Some(d) => format!(
                    "+{onset:.6}\x15{:.6}\x14{}\x14\0",
                    self.rate.seconds(d),
                    tal.text
                ),
                None => format!("+{onset:.6}\x14{}\x14\0", tal.text),
            };
            if at + text.len() > annotations.len() {
                break;
            }
            at = write_tal(annotations, at, &text);
            self.queued.pop_front();
            self.counters.annotations += 1;
        }
        self.file
            .write_all(&self.record)
            .map_err(io_error(&self.path, "write"))?;
        self.counters.records += 1;
        self.filled = 0;
        Ok(())
    }
}

fn write_tal(buffer: &mut [u8], at: usize, text: &str) -> usize {
    buffer[at..at + text.len()].copy_from_slice(text.as_bytes());
    at + text.len()
}

/// The BDF+ header: the source channels, then the annotation signal.
fn header(spec: &RecordingSpec, duration_text: &str, samples_per_record: usize) -> Vec<u8> {
    let signals = spec.labels.len() + 1;
    let header_bytes = 256 * (signals + 1);
    let mut bytes = Vec::with_capacity(header_bytes);
    let (day, month, year, hms) = civil_time(spec.start_unix_s);
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    bytes.push(0xFF);
    let mut field = |text: &str, width: usize| push_ascii_field(&mut bytes, text, width);
    field("BIOSEMI", 7);
    field("X X X X", 80); // EDF+ patient field: code, sex, birth date, name unknown
    field(
        &format!(
            "Startdate {day:02}-{}-{year} X neuroloop {}",
            MONTHS[month as usize - 1],
            spec.source.replace(' ', "_")
        ),
        80,
    );
    field(&format!("{day:02}.{month:02}.{:02}", year % 100), 8);
    field(
        &format!("{:02}.{:02}.{:02}", hms / 3600, hms / 60 % 60, hms % 60),
        8,
    );
    field(&header_bytes.to_string(), 8);
    field("BDF+C", 44);
    field("-1", 8);
    field(duration_text, 8);
    field(&signals.to_string(), 4);
    let data = || spec.labels.iter().zip(&spec.scales);
    data().for_each(|(label, _)| field(label, 16));
    field("BDF Annotations", 16);
    (0..signals).for_each(|_| field("", 80)); // transducer
    data().for_each(|_| field("uV", 8));
    field("", 8);
    data().for_each(|(_, s)| field(&s.min_text, 8));
    field("-1", 8);
    data().for_each(|(_, s)| field(&s.max_text, 8));
    field("1", 8);
    data().for_each(|_| field(&DigitalScale::DIGITAL_MIN.to_string(), 8));
    field(&BDF_MIN.to_string(), 8);
    data().for_each(|_| field(&DigitalScale::DIGITAL_MAX.to_string(), 8));
    field(&BDF_MAX.to_string(), 8);
    (0..signals).for_each(|_| field("", 80)); // prefiltering
    data().for_each(|_| field(&samples_per_record.to_string(), 8));
    field(&(ANNOTATION_BYTES / 3).to_string(), 8);
    (0..signals).for_each(|_| field("", 32));
    bytes
}

/// Day, month, year and seconds of the day (UTC) of a Unix time (Hinnant's
/// days-to-civil algorithm).
fn civil_time(unix_s: u64) -> (u32, u32, i64, u64) {
    let days = (unix_s / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (day, month, year, unix_s % 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_round_trips_every_code_and_marks_non_finite_values() {
        let scale = DigitalScale::symmetric(187_500.0).unwrap();
        assert_eq!(scale.max_text, "187500");
        for code in [
            DigitalScale::DIGITAL_MIN,
            -1234567,
            -1,
            0,
            1,
            4_000_000,
            BDF_MAX,
        ] {
            assert_eq!(scale.encode(scale.decode(code)), code);
        }
        assert_eq!(scale.encode(f64::NAN), DigitalScale::NO_VALUE);
        assert!(scale.decode(DigitalScale::NO_VALUE).is_nan());
        assert_eq!(scale.encode(1e9), DigitalScale::DIGITAL_MAX);
        assert!(scale.clips(187_500.1) && !scale.clips(-187_500.0));
        // A range the header cannot hold exactly is widened, never narrowed.
        let odd = DigitalScale::symmetric(4.5e6 / 7.0).unwrap();
        assert!(odd.physical_max >= 4.5e6 / 7.0 && odd.max_text.len() <= 7);
        assert!(DigitalScale::symmetric(0.0).is_none());
        assert!(DigitalScale::symmetric(1e12).is_none());
    }

    /// Written, finished and read back by the EDF reader: every received
    /// value is the exact decode of its code, the gap and the end are marked,
    /// the annotations are where they were put.
    #[test]
    fn a_recording_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recording.bdf");
        let rate = SampleRate::new(250.0).unwrap();
        let scales = vec![
            DigitalScale::symmetric(187_500.0).unwrap(),
            DigitalScale::symmetric(2000.0).unwrap(),
        ];
        let spec = RecordingSpec {
            labels: vec!["ch1".into(), "ch2".into()],
            scales: scales.clone(),
            rate,
            source: "test source".into(),
            start_unix_s: 1_796_070_020,
        };
        let mut w = RecordingWriter::create(&path, &spec).unwrap();
        let frame = |n: u64| {
            [
                scales[0].encode(n as f64 * 1.37 - 99.0),
                scales[1].encode(-(n as f64) * 0.013),
            ]
        };
        let mut codes = Vec::new();
        for n in 0..100 {
            codes.extend(frame(n));
        }
        w.write_frames(0, &codes).unwrap();
        w.annotate(40, Some(10), "ripple");
        w.annotate(45, Some(1), "stim");
        // Samples 100..130 never arrived.
        codes.clear();
        for n in 130..160 {
            codes.extend(frame(n));
        }
        w.write_frames(130, &codes).unwrap();
        assert!(
            w.write_frames(150, &codes).is_err(),
            "going back is refused"
        );
        let counters = w.finish(155).unwrap();
        assert_eq!(
            (counters.frames, counters.gap_frames, counters.gaps),
            (125, 30, 1)
        );
        // 155 samples in 50-sample records: 4 records.
        assert_eq!(counters.records, 4);
        let recording = crate::io::edf::read_edf(&path).unwrap();
        assert_eq!(recording.signals.len(), 2);
        for (c, signal) in recording.signals.iter().enumerate() {
            assert_eq!(signal.rate, rate);
            assert_eq!(signal.samples.len(), 200);
            for n in (0..100).chain(130..155) {
                let expected = scales[c].decode(frame(n as u64)[c]);
                assert_eq!(
                    signal.samples[n].to_bits(),
                    expected.to_bits(),
                    "ch {c} sample {n}"
                );
            }
            // Gap and padding: below the physical minimum (the reader does not map NO_VALUE).
            for n in (100..130).chain(155..200) {
                assert!(signal.samples[n] < -scales[c].physical_max(), "sample {n}");
            }
        }
        let texts: Vec<(String, f64)> = recording
            .annotations
            .iter()
            .map(|a| (a.text.clone(), a.onset_s))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("ripple".to_string(), 0.16),
                ("stim".to_string(), 0.18),
                ("gap".to_string(), 0.4),
                ("end".to_string(), 0.62),
            ]
        );
        let header = std::fs::read(&path).unwrap();
        assert_eq!(&header[236..244], b"4       ");
        assert_eq!(&header[168..184], b"30.11.2620.20.20");
    }

    #[test]
    fn civil_time_of_known_dates() {
        assert_eq!(civil_time(0), (1, 1, 1970, 0));
        // 2026-11-30 20:20:20 UTC
        assert_eq!(civil_time(1_796_070_020), (30, 11, 2026, 73_220));
        assert_eq!(civil_time(951_782_400), (29, 2, 2000, 0));
    }
}
