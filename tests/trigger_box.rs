//! The trigger box end to end: the committed test vectors match the wire
//! format; the firmware's host tests pass; the real firmware runs in simavr
//! (`firmware/sim/tb_sim`) behind a pseudo-terminal, driven by the real
//! serial driver, and every timing claim is checked from the VCD trace in
//! simulated time.

use std::path::{Path, PathBuf};

fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware")
}

/// `firmware/test/vectors/frames.tsv` is what `protocol::test_vectors` writes
/// (set NEUROLOOP_UPDATE_VECTORS=1 to rewrite it after a protocol change).
#[test]
fn vectors_are_up_to_date() {
    let path = firmware_dir().join("test/vectors/frames.tsv");
    let expected = neuroloop::protocol::test_vectors();
    if std::env::var_os("NEUROLOOP_UPDATE_VECTORS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is stale: run NEUROLOOP_UPDATE_VECTORS=1 cargo test --release --test trigger_box vectors",
        path.display()
    );
}
