//! Properties of the DSP stages: block processing equals per-sample processing
//! bit for bit, `reset()` restores the initial state exactly, and every valid
//! Butterworth design is stable, decays and matches the analytic magnitude.

use neuroloop::dsp::{butterworth, Band, Sos, SosFilter};
use neuroloop::time::SampleRate;
use proptest::prelude::*;

fn rate(hz: f64) -> SampleRate {
    SampleRate::new(hz).unwrap()
}

/// A valid band at `rate_hz`: edges log-uniform in [0.5 Hz, 0.95 Nyquist].
fn band_strategy(rate_hz: f64) -> impl Strategy<Value = Band> {
    let (lowest, highest) = (0.5f64.ln(), (0.95 * rate_hz / 2.0).ln());
    let edge = move |fraction: f64| (lowest + fraction * (highest - lowest)).exp();
    (0..3u8, 0.0..1.0f64, 0.0..1.0f64).prop_map(move |(kind, a, b)| match kind {
        0 => Band::Lowpass { cutoff_hz: edge(a) },
        1 => Band::Highpass { cutoff_hz: edge(a) },
        _ => {
            let (low, high) = (a.min(b), a.max(b));
            // Keep the band at least 2 % wide.
            Band::Bandpass {
                low_hz: edge(low) / 1.01,
                high_hz: (edge(high) * 1.01).min(0.95 * rate_hz / 2.0),
            }
        }
    })
}

/// (order, band, rate) of a valid design anywhere in 50 Hz – 30 kHz.
fn design_strategy() -> impl Strategy<Value = (usize, Band, SampleRate)> {
    (1..=8usize, 50.0..30_000.0f64).prop_flat_map(|(order, rate_hz)| {
        (Just(order), band_strategy(rate_hz), Just(rate(rate_hz)))
    })
}

fn design() -> impl Strategy<Value = Sos> {
    design_strategy().prop_map(|(order, band, fs)| butterworth(order, band, fs).unwrap())
}

fn signal(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1e3..1e3f64, 0..max_len)
}

/// Cut points splitting `len` samples into consecutive blocks (some possibly empty).
fn partition(len: usize, cuts: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    points.push(0);
    points.push(len);
    points.sort_unstable();
    points.windows(2).map(|w| w[0]..w[1]).collect()
}

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..8)
}

proptest! {
    #[test]
    fn sos_filter_blocks_equal_per_sample(sos in design(), xs in signal(400), cuts in cuts()) {
        let mut per_sample = SosFilter::new(&sos);
        let expected: Vec<f64> = xs.iter().map(|&x| per_sample.process(x)).collect();
        let mut blocked = SosFilter::new(&sos);
        let mut got = xs.clone();
        for range in partition(xs.len(), &cuts) {
            blocked.process_in_place(&mut got[range]);
        }
        prop_assert_eq!(bits(&got), bits(&expected));
    }

    #[test]
    fn reset_restores_the_initial_state(sos in design(), before in signal(200), after in signal(200)) {
        let mut used = SosFilter::new(&sos);
        before.iter().for_each(|&x| { used.process(x); });
        used.reset();
        let mut fresh = SosFilter::new(&sos);
        let run = |f: &mut SosFilter| after.iter().map(|&x| f.process(x)).collect::<Vec<_>>();
        prop_assert_eq!(bits(&run(&mut used)), bits(&run(&mut fresh)));
    }
}

/// Largest pole radius of a cascade (roots of z² + a1 z + a2 per section).
fn max_pole_radius(sos: &Sos) -> f64 {
    sos.sections()
        .iter()
        .map(|&[_, _, _, _, a1, a2]| {
            let discriminant = a1 * a1 - 4.0 * a2;
            if discriminant < 0.0 {
                a2.sqrt() // complex pair: |z|² = a2
            } else {
                let s = discriminant.sqrt();
                ((-a1 + s) / 2.0).abs().max(((-a1 - s) / 2.0).abs())
            }
        })
        .fold(0.0, f64::max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_valid_design_is_stable_and_its_impulse_response_decays((order, band, fs) in design_strategy()) {
        let sos = butterworth(order, band, fs).unwrap();
        prop_assert!(sos.is_stable(), "{:?} at {} unstable: {:?}", band, fs, sos.sections());
        let radius = max_pole_radius(&sos);
        prop_assert!(radius < 1.0, "pole radius {}", radius);

        // Simulate until the response over a window has fallen by 1e-9 from its
        // peak; the slowest pole envelope r^n gets there well within the limit.
        let window = (1.0 / (1.0 - radius)).ceil() as usize;
        let limit = 60 * window + 10_000;
        let mut filter = SosFilter::new(&sos);
        let mut peak = filter.process(1.0).abs();
        let mut n = 1;
        let decayed = loop {
            let window_peak = (0..window).map(|_| filter.process(0.0).abs()).fold(0.0, f64::max);
            n += window;
            peak = peak.max(window_peak);
            if window_peak <= 1e-9 * peak {
                break true;
            }
            if n > limit {
                break false;
            }
        };
        prop_assert!(decayed, "{:?} at {}: impulse response still above 1e-9 of peak after {} samples", band, fs, n);
    }
}

/// |H(e^{jω})| of a cascade at `freq_hz`.
fn magnitude(sos: &Sos, freq_hz: f64, fs: SampleRate) -> f64 {
    let omega = 2.0 * std::f64::consts::PI * freq_hz / fs.hz();
    // z^-1 and z^-2 on the unit circle.
    let (c1, s1, c2, s2) = (
        omega.cos(),
        -omega.sin(),
        (2.0 * omega).cos(),
        -(2.0 * omega).sin(),
    );
    let poly = |k0: f64, k1: f64, k2: f64| {
        let re = k0 + k1 * c1 + k2 * c2;
        let im = k1 * s1 + k2 * s2;
        re.hypot(im)
    };
    sos.sections()
        .iter()
        .map(|&[b0, b1, b2, a0, a1, a2]| poly(b0, b1, b2) / poly(a0, a1, a2))
        .product()
}

/// Magnitude of the ideal digital Butterworth band-pass (bilinear with prewarping).
fn analytic_bandpass_magnitude(
    order: usize,
    low_hz: f64,
    high_hz: f64,
    freq_hz: f64,
    fs: SampleRate,
) -> f64 {
    let warp = |f: f64| (std::f64::consts::PI * f / fs.hz()).tan();
    let (low, high, w) = (warp(low_hz), warp(high_hz), warp(freq_hz));
    let lowpass_frequency = (w * w - low * high) / (w * (high - low));
    1.0 / (1.0 + lowpass_frequency.powi(2 * order as i32)).sqrt()
}

#[test]
fn narrow_low_band_at_30_khz_is_stable_and_accurate() {
    let fs = rate(30_000.0);
    for order in 1..=8 {
        let sos = butterworth(
            order,
            Band::Bandpass {
                low_hz: 0.5,
                high_hz: 2.0,
            },
            fs,
        )
        .unwrap();
        assert!(sos.is_stable(), "order {order}");
        for freq_hz in [0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 10.0, 100.0] {
            let got = magnitude(&sos, freq_hz, fs);
            let want = analytic_bandpass_magnitude(order, 0.5, 2.0, freq_hz, fs);
            // Relative where the response matters; absolute 1e-9 deep in the stop band.
            assert!(
                (got - want).abs() <= 1e-6 * want + 1e-9,
                "order {order} at {freq_hz} Hz: |H| = {got}, analytic {want}"
            );
        }
    }
}

#[test]
fn bandpass_of_order_n_has_n_sections_and_lowpass_rounds_up() {
    let fs = rate(1000.0);
    for order in 1..=8 {
        let bp = butterworth(
            order,
            Band::Bandpass {
                low_hz: 150.0,
                high_hz: 250.0,
            },
            fs,
        )
        .unwrap();
        assert_eq!(bp.sections().len(), order);
        let lp = butterworth(order, Band::Lowpass { cutoff_hz: 40.0 }, fs).unwrap();
        assert_eq!(lp.sections().len(), order.div_ceil(2));
        // -3 dB at the cutoff, unity in the pass band.
        assert!((magnitude(&lp, 40.0, fs) - 0.5f64.sqrt()).abs() < 1e-12);
        assert!((magnitude(&lp, 0.0, fs) - 1.0).abs() < 1e-12);
    }
}
