//! Devices a live session reads from or writes to, one file each: protocol
//! use, adapter and config section.

pub mod clock_sync;
pub mod lsl;
pub mod trigger_box;
