//! The click scheduler on simulated callbacks: frame placement, latency, late clicks, re-anchoring, disarm.

use super::*;

fn scheduler(latency_ms: Option<u64>) -> (ClickScheduler, Arc<OutputCounters>) {
    let counters = Arc::new(OutputCounters::default());
    let spec = ClickOutputSpec {
        device: None,
        rate_hz: 48_000,
        channels: 2,
        period_frames: 64,
        click: ClickSpec::default(),
        device_latency: latency_ms.map(Duration::from_millis),
        max_clock_error_ms: 20.0,
        session_rate_hz: 250.0,
    };
    let s = ClickScheduler::new(
        vec![1.0, 2.0, 3.0, 4.0],
        &spec,
        Arc::new(AtomicBool::new(true)),
        counters.clone(),
    );
    (s, counters)
}

/// Run buffers of `period` frames, return the left channel.
fn play(
    s: &mut ClickScheduler,
    cmds: &[ClickCommand],
    t0: Instant,
    periods: usize,
    period: usize,
    jitter_us: &[u64],
) -> Vec<f32> {
    let (mut tx, mut rx) = HeapRb::<ClickCommand>::new(16).split();
    let mut left = Vec::new();
    let mut buf = vec![0.0; period * 2];
    for p in 0..periods {
        // One command every 8 callbacks, so each is placed by a different one.
        if p % 8 == 0 {
            if let Some(c) = cmds.get(p / 8) {
                tx.try_push(*c).unwrap();
            }
        }
        let ideal = Duration::from_secs_f64((p * period) as f64 / 48_000.0);
        let now = t0 + ideal + Duration::from_micros(jitter_us[p % jitter_us.len()]);
        s.fill(&mut buf, now, Duration::ZERO, &mut rx);
        left.extend(buf.iter().step_by(2));
    }
    left
}

fn starts(left: &[f32]) -> Vec<usize> {
    (0..left.len())
        .filter(|&i| left[i] == 1.0 && (i == 0 || left[i - 1] == 0.0))
        .collect()
}

#[test]
fn clicks_land_on_the_mapped_frame_exactly_despite_callback_jitter() {
    let (mut s, counters) = scheduler(None);
    let t0 = Instant::now();
    // Sample n is due at t0 + 10 ms + n / 250 s; jittered callbacks.
    let due = |n: u64| t0 + Duration::from_millis(10) + Duration::from_micros(n * 4000);
    let cmds: Vec<_> = [0u64, 3, 10, 11]
        .iter()
        .map(|&n| ClickCommand {
            onset: n,
            due: due(n),
        })
        .collect();
    let left = play(&mut s, &cmds, t0, 50, 64, &[0, 150, 40, 300]);
    let got = starts(&left);
    assert_eq!(got.len(), 4);
    // 192 output frames per session sample, exactly.
    let spacing: Vec<usize> = got.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(spacing, vec![3 * 192, 7 * 192, 192]);
    // The anchor: 10 ms after t0 is frame 480 (±1 for the first callback's jitter).
    assert!((got[0] as i64 - 480).abs() <= 1, "{got:?}");
    assert_eq!(&left[got[0]..got[0] + 5], &[1.0, 2.0, 3.0, 4.0, 0.0]);
    assert_eq!(counters.clicks_started.load(Ordering::Relaxed), 4);
    assert_eq!(counters.reanchors.load(Ordering::Relaxed), 0);
}

#[test]
fn configured_latency_moves_the_click_earlier_in_the_stream() {
    let t0 = Instant::now();
    let cmd = [ClickCommand {
        onset: 0,
        due: t0 + Duration::from_millis(20),
    }];
    let (mut plain, _) = scheduler(None);
    let (mut delayed, _) = scheduler(Some(5));
    let a = starts(&play(&mut plain, &cmd, t0, 30, 64, &[0]));
    let b = starts(&play(&mut delayed, &cmd, t0, 30, 64, &[0]));
    // 5 ms of device latency = 240 frames written earlier.
    assert_eq!(a[0] - b[0], 240);
}

#[test]
fn late_clicks_start_at_once_and_a_drifted_clock_reanchors() {
    let (mut s, counters) = scheduler(None);
    let t0 = Instant::now();
    let (mut tx, mut rx) = HeapRb::<ClickCommand>::new(16).split();
    let mut buf = vec![0.0; 128];
    s.fill(&mut buf, t0, Duration::ZERO, &mut rx);
    // Due before the frame being written: late.
    tx.try_push(ClickCommand {
        onset: 100,
        due: t0,
    })
    .unwrap();
    s.fill(
        &mut buf,
        t0 + Duration::from_millis(2),
        Duration::ZERO,
        &mut rx,
    );
    assert_eq!(buf[0], 1.0, "starts at the first free frame");
    assert_eq!(counters.late_clicks.load(Ordering::Relaxed), 1);
    // A click whose host time disagrees with the map by 1 s: re-anchored.
    tx.try_push(ClickCommand {
        onset: 101,
        due: t0 + Duration::from_secs(1),
    })
    .unwrap();
    s.fill(
        &mut buf,
        t0 + Duration::from_millis(4),
        Duration::ZERO,
        &mut rx,
    );
    assert_eq!(counters.reanchors.load(Ordering::Relaxed), 1);
}

#[test]
fn disarm_silences_scheduled_and_playing_clicks() {
    let (mut s, counters) = scheduler(None);
    let armed = s.armed.clone();
    let t0 = Instant::now();
    let (mut tx, mut rx) = HeapRb::<ClickCommand>::new(16).split();
    tx.try_push(ClickCommand {
        onset: 0,
        due: t0 + Duration::from_millis(5),
    })
    .unwrap();
    let mut buf = vec![0.0; 128];
    s.fill(&mut buf, t0, Duration::ZERO, &mut rx);
    armed.store(false, Ordering::Release);
    for k in 1..10 {
        s.fill(
            &mut buf,
            t0 + Duration::from_millis(k),
            Duration::ZERO,
            &mut rx,
        );
        assert!(buf.iter().all(|&v| v == 0.0));
    }
    assert_eq!(counters.clicks_started.load(Ordering::Relaxed), 0);
}
