//! Devices a live session reads from or writes to.

pub mod lsl;
