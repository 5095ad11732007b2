//! Path to the shared real-data files (`/work/shared/data`, next to the repository).

use std::path::{Path, PathBuf};

/// `relative` inside the shared data folder, e.g. `dreams/excerpt1.edf`.
pub fn shared_data(relative: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")).join(relative)
}
