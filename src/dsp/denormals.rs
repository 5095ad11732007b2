//! Flush-to-zero for the thread that runs the filters.
//!
//! An IIR filter fed exact zeros (a channel that goes flat, digital silence
//! from a sound card) decays through subnormal numbers, which x86 cores
//! compute tens of times slower: a block that takes 20 µs can take a
//! millisecond. With FTZ (results) and DAZ (inputs) set, subnormals are zero.
//! The mode is per thread and changes results only below 2.2e-308, but it
//! does change them: a replay sets the same mode as the live session it
//! reproduces (`[realtime] flush_denormals`), so the events stay bit-identical.

/// Subnormals flushed to zero on the calling thread while this lives; the
/// previous mode is restored on drop.
pub struct FlushDenormals {
    saved: Option<u64>,
}

impl FlushDenormals {
    /// Set the mode; `applied()` says whether this CPU has it.
    pub fn new() -> Self {
        let saved = arch::read();
        if let Some(mode) = saved {
            arch::write(mode | arch::FLUSH_BITS);
        }
        Self { saved }
    }

    /// Whether the mode could be set (x86-64 and AArch64 have it).
    pub fn applied(&self) -> bool {
        self.saved.is_some()
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        if let Some(mode) = self.saved {
            arch::write(mode);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod arch {
    /// MXCSR: FTZ (bit 15) and DAZ (bit 6).
    pub const FLUSH_BITS: u64 = (1 << 15) | (1 << 6);

    pub fn read() -> Option<u64> {
        let mut csr: u32 = 0;
        // SAFETY: stores the SSE control register into a local u32.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        Some(u64::from(csr))
    }

    pub fn write(mode: u64) {
        let csr = mode as u32;
        // SAFETY: loads a value read from MXCSR with only mode bits changed.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly, preserves_flags));
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    /// FPCR: FZ (bit 24); AArch64 has no separate inputs-as-zero bit.
    pub const FLUSH_BITS: u64 = 1 << 24;

    pub fn read() -> Option<u64> {
        let fpcr: u64;
        // SAFETY: reads the floating-point control register.
        unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack)) };
        Some(fpcr)
    }

    pub fn write(mode: u64) {
        // SAFETY: writes back a value read from FPCR with only FZ changed.
        unsafe { std::arch::asm!("msr fpcr, {}", in(reg) mode, options(nomem, nostack)) };
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    pub const FLUSH_BITS: u64 = 0;

    pub fn read() -> Option<u64> {
        None
    }

    pub fn write(_: u64) {}
}

#[cfg(test)]
mod tests {
    use super::FlushDenormals;
    use std::hint::black_box;

    #[test]
    fn subnormals_are_zero_while_the_guard_lives_and_back_after() {
        let tiny = black_box(f64::MIN_POSITIVE);
        let half = || black_box(tiny) / black_box(2.0);
        assert!(half() > 0.0, "subnormal by default");
        {
            let guard = FlushDenormals::new();
            assert!(guard.applied());
            assert_eq!(half(), 0.0);
            // DAZ (x86): a subnormal input counts as zero.
            let sub = black_box(f64::from_bits(1));
            assert_eq!(black_box(sub) * black_box(1.0), 0.0);
        }
        assert!(half() > 0.0, "previous mode restored");
    }
}
