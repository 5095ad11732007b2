//! Throughput of the 8-pole (order 4, 4 sections) 150–250 Hz Butterworth
//! band-pass at 30 kHz, in channel-samples per second; compare with
//! benches/scipy_sosfilt.py on the same filter and shapes (docs/performance.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use neuroloop::dsp::{butterworth, Band, SosFilter, SosFrameBank};
use neuroloop::time::SampleRate;
use std::hint::black_box;

/// Frames per benchmarked block (1 s at 30 kHz), as in the scipy script.
const FRAMES: usize = 30_000;

fn input(n_channels: usize) -> Vec<f64> {
    // Deterministic, non-trivial data (a cheap LCG); the values do not affect speed.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..n_channels * FRAMES)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect()
}

fn filters(c: &mut Criterion) {
    let rate = SampleRate::new(30_000.0).expect("valid rate");
    let sos = butterworth(
        4,
        Band::Bandpass {
            low_hz: 150.0,
            high_hz: 250.0,
        },
        rate,
    )
    .expect("valid design");
    let mut group = c.benchmark_group("bandpass_150_250hz_order4_30khz");

    let mut one_channel = input(1);
    let mut filter = SosFilter::new(&sos);
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("SosFilter 1 ch", |b| {
        b.iter(|| filter.process_in_place(black_box(&mut one_channel)))
    });

    // 64 channels the way the detector filters them: frame by frame (frame-major data).
    let n_channels = 64;
    let mut frames = input(n_channels);
    let mut bank = SosFrameBank::new(&sos, n_channels).expect("at least one channel");
    group.throughput(Throughput::Elements((n_channels * FRAMES) as u64));
    group.bench_function("SosFrameBank 64 ch", |b| {
        b.iter(|| {
            for frame in black_box(&mut frames).chunks_exact_mut(n_channels) {
                bank.process_frame(frame);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, filters);
criterion_main!(benches);
