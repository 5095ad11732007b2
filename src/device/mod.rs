//! Devices, one file each: protocol use, adapter and config section.

pub mod trigger_box;
