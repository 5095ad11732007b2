//! `[realtime]` applied to the processing thread: SCHED_FIFO priority
//! (`thread-priority`), CPU pinning (`core_affinity`), `mlockall` and
//! flush-to-zero. Each is asked for once, before the loop; what the system
//! refuses is a warning and a line of `summary.json`, never an error.

use serde::Serialize;

use crate::config::RealtimeConfig;
use crate::dsp::FlushDenormals;

/// What the processing thread got, for `summary.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RealtimeReport {
    /// The SCHED_FIFO priority in force (none: the normal scheduler).
    pub priority: Option<u8>,
    /// The CPU the thread is pinned to.
    pub cpu: Option<usize>,
    pub memory_locked: bool,
    pub denormals_flushed: bool,
    /// Each setting that was asked for and refused, with the reason.
    pub refused: Vec<String>,
}

/// Holds the flush-to-zero mode for as long as the thread processes.
pub struct Applied {
    pub report: RealtimeReport,
    _denormals: Option<FlushDenormals>,
}

/// Apply `c` to the calling thread (the processing thread, after it has
/// allocated its buffers: `mlockall(MCL_CURRENT)` then locks them).
///
/// `MCL_FUTURE` is not used: under an `RLIMIT_MEMLOCK` it would turn a later
/// allocation anywhere in the process into an abort.
pub fn apply(c: &RealtimeConfig) -> Applied {
    let mut report = RealtimeReport::default();
    if c.priority > 0 {
        match set_fifo(c.priority) {
            Ok(()) => report.priority = Some(c.priority),
            Err(e) => report
                .refused
                .push(format!("SCHED_FIFO priority {}: {e}", c.priority)),
        }
    }
    if let Some(cpu) = c.cpu {
        let known = core_affinity::get_core_ids().unwrap_or_default();
        match known.iter().find(|core| core.id == cpu) {
            Some(&core) if core_affinity::set_for_current(core) => report.cpu = Some(cpu),
            Some(_) => report.refused.push(format!("CPU {cpu}: pinning refused")),
            None => report.refused.push(format!(
                "CPU {cpu}: not among this process's CPUs {:?}",
                known.iter().map(|c| c.id).collect::<Vec<_>>()
            )),
        }
    }
    if c.lock_memory {
        // SAFETY: plain syscall; locks the pages mapped now.
        if unsafe { libc::mlockall(libc::MCL_CURRENT) } == 0 {
            report.memory_locked = true;
        } else {
            report.refused.push(format!(
                "mlockall: {} (raise `ulimit -l` or grant CAP_IPC_LOCK)",
                std::io::Error::last_os_error()
            ));
        }
    }
    let denormals = c.flush_denormals.then(FlushDenormals::new);
    report.denormals_flushed = denormals.as_ref().is_some_and(FlushDenormals::applied);
    if c.flush_denormals && !report.denormals_flushed {
        report
            .refused
            .push("flush_denormals: not available on this CPU".into());
    }
    Applied {
        report,
        _denormals: denormals,
    }
}

fn set_fifo(priority: u8) -> Result<(), String> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    let value = ThreadPriority::try_from(priority).map_err(str::to_string)?;
    set_thread_priority_and_policy(
        thread_native_id(),
        value,
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    )
    .map_err(|e| match e {
        thread_priority::Error::OS(code) => std::io::Error::from_raw_os_error(code).to_string(),
        other => format!("{other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_that_does_not_exist_is_refused_softly_and_reported() {
        let c = RealtimeConfig {
            priority: 0,
            cpu: Some(100_000),
            lock_memory: false,
            flush_denormals: true,
        };
        let applied = std::thread::spawn(move || apply(&c).report).join().unwrap();
        assert_eq!(applied.cpu, None);
        assert_eq!(applied.priority, None);
        assert!(applied.denormals_flushed);
        assert_eq!(applied.refused.len(), 1, "{:?}", applied.refused);
        assert!(applied.refused[0].starts_with("CPU 100000: not among"));
    }

    #[test]
    fn pinning_to_an_available_cpu_is_applied() {
        let first = core_affinity::get_core_ids().unwrap()[0].id;
        let c = RealtimeConfig {
            priority: 0,
            cpu: Some(first),
            lock_memory: false,
            flush_denormals: false,
        };
        let report = std::thread::spawn(move || apply(&c).report).join().unwrap();
        assert_eq!(report.cpu, Some(first));
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        assert!(!report.denormals_flushed);
    }
}
