//! Devices, one file each: protocol use, adapter and config section.

pub mod clock_sync;
pub mod trigger_box;
