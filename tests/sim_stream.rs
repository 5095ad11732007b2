//! The streamed simulator renders the same samples whatever the block size:
//! every block sizing below gives bit for bit the samples of one
//! whole-recording render; single-frame blocks cut events of every kind, the
//! irregular sizing cuts events of several kinds at varying offsets.

use std::collections::BTreeSet;

use neuroloop::sim::{simulate, Preset, SimSpec, SimStream, TruthEvent};
use neuroloop::time::SampleRate;

/// Render `spec` with `SimStream`, taking block sizes from `sizes` in a cycle;
/// returns the channels and the block boundaries (first sample of each block
/// after the first).
fn render_in_blocks(spec: &SimSpec, sizes: &[usize]) -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut stream = SimStream::new(spec).unwrap();
    let mut channels = vec![Vec::with_capacity(stream.samples()); spec.channels];
    let mut boundaries = Vec::new();
    let mut block = Vec::new();
    for &size in sizes.iter().cycle() {
        let frames = stream.render_next(size, &mut block);
        if frames == 0 {
            break;
        }
        assert_eq!(block.len(), spec.channels);
        for (channel, rendered) in channels.iter_mut().zip(&block) {
            assert_eq!(rendered.len(), frames);
            channel.extend_from_slice(rendered);
        }
        boundaries.push(channels[0].len());
    }
    boundaries.pop(); // the end of the recording is no boundary
    assert_eq!(channels[0].len(), stream.samples());
    (channels, boundaries)
}

/// Trial types of the events that have a block boundary strictly inside their samples.
fn types_cut_by(truth: &[TruthEvent], rate: SampleRate, boundaries: &[usize]) -> BTreeSet<String> {
    truth
        .iter()
        .filter(|event| {
            let first = rate.index_at(event.onset_s) as usize;
            let end = rate.index_at(event.onset_s + event.duration_s) as usize;
            let cut = boundaries.partition_point(|&b| b <= first);
            boundaries.get(cut).is_some_and(|&b| b < end)
        })
        .map(|event| event.trial_type.clone())
        .collect()
}

fn assert_bit_identical(whole: &[Vec<f64>], blocks: &[Vec<f64>], what: &str) {
    assert_eq!(whole.len(), blocks.len(), "{what}: channel count");
    for (c, (a, b)) in whole.iter().zip(blocks).enumerate() {
        assert_eq!(a.len(), b.len(), "{what}: length of channel {c}");
        if let Some(i) = a
            .iter()
            .zip(b)
            .position(|(x, y)| x.to_bits() != y.to_bits())
        {
            panic!(
                "{what}: channel {c} sample {i} differs: whole {} vs blocks {}",
                a[i], b[i]
            );
        }
    }
}

/// Block sizings: single frames, primes, a power of two, and an irregular mix.
const SIZINGS: [&[usize]; 5] = [&[1], &[97], &[4093], &[65_536], &[1, 2, 31, 250, 7, 503]];

fn check_blocks_match_whole(preset: Preset, seconds: f64, hz: f64, seed: u64, artifacts: bool) {
    let rate = SampleRate::new(hz).unwrap();
    let spec = SimSpec {
        artifacts,
        ..SimSpec::new(preset, seconds, seed, rate)
    };
    let (whole, no_boundaries) = render_in_blocks(&spec, &[usize::MAX]);
    assert!(no_boundaries.is_empty());
    let truth = SimStream::new(&spec).unwrap().truth().to_vec();
    let all_types: BTreeSet<String> = truth.iter().map(|e| e.trial_type.clone()).collect();
    assert!(
        all_types.len() >= 3,
        "{preset} seed {seed}: too few kinds of event to test: {all_types:?}"
    );
    for sizes in SIZINGS {
        let what = format!("{preset} {hz} Hz seed {seed} artifacts {artifacts} blocks {sizes:?}");
        let (blocks, boundaries) = render_in_blocks(&spec, sizes);
        assert_bit_identical(&whole, &blocks, &what);
        let cut = types_cut_by(&truth, rate, &boundaries);
        if sizes == [1] {
            assert_eq!(cut, all_types, "{what}: every kind of event is cut");
        } else if sizes.len() > 1 {
            assert!(
                cut.len() >= 3,
                "{what}: too few kinds of event cut: {cut:?}"
            );
        }
    }
    // The in-memory collector is the same stream.
    let sim = simulate(&spec).unwrap();
    assert_eq!(sim.truth, truth);
    let collected: Vec<Vec<f64>> = sim
        .recording
        .signals
        .into_iter()
        .map(|signal| signal.samples)
        .collect();
    assert_bit_identical(&whole, &collected, &format!("{preset} simulate()"));
}

#[test]
fn rodent_blocks_match_the_whole_render_at_1250_hz() {
    check_blocks_match_whole(Preset::RodentRipple, 90.0, 1250.0, 3, true);
    check_blocks_match_whole(Preset::RodentRipple, 90.0, 1250.0, 4, false);
}

#[test]
fn rodent_blocks_match_the_whole_render_at_30_khz() {
    check_blocks_match_whole(Preset::RodentRipple, 20.0, 30_000.0, 5, true);
    check_blocks_match_whole(Preset::RodentRipple, 20.0, 30_000.0, 6, false);
}

#[test]
fn sleep_blocks_match_the_whole_render() {
    check_blocks_match_whole(Preset::Sleep, 1800.0, 250.0, 7, true);
    check_blocks_match_whole(Preset::Sleep, 1800.0, 250.0, 8, false);
}
