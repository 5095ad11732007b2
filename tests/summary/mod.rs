//! Reading back a session folder's `summary.json`.

use std::path::Path;

/// The `summary.json` in session folder `dir`.
pub fn read_summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}
