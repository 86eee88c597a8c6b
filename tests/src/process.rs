//! Fixture processes driven through their stdout handshake (`ready`, `profiled`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running child process whose stdout lines arrive on a channel. Killed (SIGKILL) and
/// reaped on drop if still running.
#[derive(Debug)]
pub struct Running {
    child: Child,
    lines: Receiver<String>,
    exited: Option<ExitStatus>,
}

impl Running {
    /// Spawns `cmd` with piped stdout (stdin piped too, for fixtures' `-wait`).
    ///
    /// Returns an error if the spawn fails.
    pub fn spawn(cmd: &mut Command) -> Result<Self, String> {
        let child = cmd
            .stdout(Stdio::piped())
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning {cmd:?}: {e}"))?;
        Ok(Self::adopt(child))
    }

    /// Takes over an already spawned child whose stdout is piped.
    pub fn adopt(mut child: Child) -> Self {
        let (tx, rx) = channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines: rx,
            exited: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stdout line starting with `prefix` and returns it.
    ///
    /// Returns an error on timeout or when stdout closes first.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(l),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "pid {}: no {prefix:?} line within {timeout:?}",
                        self.pid()
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "pid {}: stdout closed before {prefix:?} (exit: {:?})",
                        self.pid(),
                        self.child.try_wait()
                    ))
                }
            }
        }
    }

    /// Writes a line to the child's stdin (releases a fixture started with `-wait`).
    ///
    /// Returns an error if stdin is closed.
    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().ok_or("stdin not piped")?;
        writeln!(stdin, "{line}").map_err(|e| format!("writing stdin: {e}"))
    }

    /// Sends `sig` to the process.
    ///
    /// Returns an error if kill(2) fails.
    pub fn signal(&self, sig: i32) -> Result<(), String> {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child,
        // not yet reaped while `self` exists, so it cannot name another process.
        let r = unsafe { libc::kill(self.pid(), sig) };
        if r != 0 {
            return Err(format!(
                "kill({}, {sig}): {}",
                self.pid(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// Waits for the process to exit, up to `timeout`.
    ///
    /// Returns an error on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        if let Some(s) = self.exited {
            return Ok(s);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    self.exited = Some(s);
                    return Ok(s);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    return Err(format!(
                        "pid {} still running after {timeout:?}",
                        self.pid()
                    ))
                }
                Err(e) => return Err(format!("waiting for {}: {e}", self.pid())),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.exited.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
