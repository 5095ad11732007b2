//! The LSL source's sample clock and stream checks, without liblsl.

use super::*;

fn clock(gap_periods: f64) -> SampleClock {
    SampleClock::new(SampleRate::new(100.0).unwrap(), gap_periods, 500.0)
}

#[test]
fn timestamps_at_the_nominal_rate_are_consecutive_samples() {
    let mut c = clock(1.5);
    for k in 0..1000u64 {
        // Jitter below half a period does not matter.
        let jitter = if k % 3 == 0 { 0.004 } else { -0.003 };
        assert_eq!(c.place(50.0 + k as f64 * 0.01 + jitter), (k, Step::Next));
    }
    // A sender 1 % slower than its nominal rate is followed, not cut into gaps.
    let mut slow = clock(1.5);
    for k in 0..10_000u64 {
        assert_eq!(slow.place(k as f64 * 0.0101), (k, Step::Next));
    }
}

#[test]
fn a_gap_in_the_timestamps_is_a_gap_in_the_sample_index() {
    let mut c = clock(1.5);
    assert_eq!(c.place(1.00), (0, Step::Next));
    assert_eq!(c.place(1.01), (1, Step::Next));
    // 1.4 periods: still the next sample.
    assert_eq!(c.place(1.024), (2, Step::Next));
    // Five periods later: four frames were lost.
    assert_eq!(c.place(1.074), (7, Step::Gap(4)));
    assert_eq!(c.place(1.084), (8, Step::Next));
    // Two periods: one lost.
    assert_eq!(c.place(1.104), (10, Step::Gap(1)));
}

#[test]
fn backwards_and_jumping_timestamps_are_reported_never_resampled() {
    let mut c = clock(1.5);
    c.place(10.0);
    assert_eq!(c.place(9.5), (1, Step::Backwards));
    assert_eq!(c.place(9.51), (2, Step::Next));
    // Ten minutes ahead: longer than the stall time, so not lost samples.
    assert_eq!(c.place(609.51), (3, Step::Jump));
    assert_eq!(c.place(f64::NAN), (4, Step::Jump));
    assert_eq!(c.place(609.52), (5, Step::Next));
    // The gap threshold is the config's.
    let mut wide = clock(3.0);
    wide.place(0.0);
    assert_eq!(wide.place(0.029), (1, Step::Next));
    assert_eq!(wide.place(0.069), (5, Step::Gap(3)));
}

#[test]
fn units_convert_to_microvolts_and_unknown_units_are_refused() {
    let config: LslSourceConfig = toml::from_str("name = \"x\"").unwrap();
    let described = [
        (Some("Fz".to_string()), Some("microvolts".to_string())),
        (None, Some("mV".to_string())),
    ];
    let (labels, scales) = channel_map(&described, 2, &config).unwrap();
    assert_eq!(labels, ["Fz", "ch2"]);
    assert_eq!(scales, [1.0, 1000.0]);
    let counts = [(Some("A1".to_string()), Some("counts".to_string()))];
    let e = channel_map(&counts, 1, &config).unwrap_err();
    assert!(e.contains("A1") && e.contains("counts"), "{e}");
    // No unit anywhere: refused unless the config states it.
    let e = channel_map(&[], 1, &config).unwrap_err();
    assert!(e.contains("source.unit"), "{e}");
    let with_unit = LslSourceConfig {
        unit: Some("V".into()),
        ..config
    };
    assert_eq!(channel_map(&[], 1, &with_unit).unwrap().1, [1e6]);
}

#[test]
fn a_source_needs_a_query_without_quotes() {
    let bad = |text: &str| {
        let c: LslSourceConfig = toml::from_str(text).unwrap();
        c.validate().unwrap_err().to_string()
    };
    assert!(bad("rate_hz = 500.0").contains("source.name"));
    assert!(bad("name = \"it's\"").contains("source.name"));
    assert!(bad("type = \"\"").contains("source.type"));
    assert!(bad("name = \"a\"\nunit = \"counts\"").contains("source.unit"));
    let ok: LslSourceConfig = toml::from_str("type = \"EEG\"\nsource_id = \"amp-1\"").unwrap();
    ok.validate().unwrap();
    assert_eq!(ok.query(), "type 'EEG' and source_id 'amp-1'");
}
