//! Helpers shared by the tests that drive `neuroloop run` as a child process.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

/// A running `neuroloop run`, past its first status line.
pub struct LiveRun {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

/// How it ended: exit status, the rest of stdout, all of stderr.
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl LiveRun {
    /// Spawn `command` (`neuroloop run …`) with piped output and return once it
    /// has printed its first status line: its threads and streams run by then.
    pub fn start(command: &mut Command) -> LiveRun {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("t=") {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "run ended early");
        }
        LiveRun { child, stdout }
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain syscall on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    /// Wait for the end.
    pub fn wait(mut self) -> Ended {
        let mut stdout = String::new();
        self.stdout.read_to_string(&mut stdout).unwrap();
        let output = self.child.wait_with_output().unwrap();
        Ended {
            status: output.status,
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
