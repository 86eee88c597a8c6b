//! The `oomprof run` daemon as a child: stderr lines with arrival times, the ready
//! line, SIGTERM shutdown timed by a pidfd. Killed and reaped on drop.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Set by the SIGINT/SIGTERM handler: every wait gives up, and drops clean up.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Installs the SIGINT/SIGTERM handler (children get the default back at exec).
pub fn install_interrupt_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic,
        // which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// An error if the user interrupted the run.
pub fn check_interrupted() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Sleeps `d` unless interrupted first.
pub fn sleep(d: Duration) -> Result<(), String> {
    let end = Instant::now() + d;
    loop {
        check_interrupted()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Opens a pidfd for `pid` (readable once the process has exited).
pub fn pidfd(pid: i32) -> Result<OwnedFd, String> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(format!(
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the fd was just returned to us and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until the process behind `fd` exits; returns when it did (as seen here).
pub fn wait_pidfd(fd: &OwnedFd, timeout: Duration) -> Result<Instant, String> {
    let end = Instant::now() + timeout;
    loop {
        check_interrupted()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("process still running after {timeout:?}"));
        }
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(100) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms.max(1)) };
        if r > 0 {
            return Ok(Instant::now());
        }
    }
}

/// A running `oomprof run`.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pidfd: OwnedFd,
    lines: Receiver<(Instant, String)>,
    /// Every stderr line so far, with its arrival time.
    pub log: Vec<(Instant, String)>,
    /// When it was spawned.
    pub spawned: Instant,
    done: bool,
}

impl Daemon {
    /// Spawns `bin [--debug] run --dir DIR ARGS...`.
    ///
    /// Returns an error if the spawn fails.
    pub fn spawn(bin: &Path, debug: bool, dir: &Path, args: &[&str]) -> Result<Daemon, String> {
        let mut cmd = Command::new(bin);
        if debug {
            cmd.arg("--debug");
        }
        cmd.arg("run").arg("--dir").arg(dir).args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
        let pidfd = match pidfd(child.id() as i32) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let (tx, rx) = channel();
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Daemon {
            child,
            pidfd,
            lines: rx,
            log: Vec::new(),
            spawned,
            done: false,
        })
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the next stderr line for which `pick` returns `Some`, up to `timeout`.
    ///
    /// Returns an error on timeout, interruption, or when the daemon exits first.
    pub fn wait_for<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<(Instant, T), String> {
        let end = Instant::now() + timeout;
        loop {
            check_interrupted()?;
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("daemon: no {what} within {timeout:?}"));
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok((at, line)) => {
                    let got = pick(&line);
                    self.log.push((at, line));
                    if let Some(v) = got {
                        return Ok((at, v));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let tail: Vec<&str> = self
                        .log
                        .iter()
                        .rev()
                        .take(5)
                        .map(|(_, l)| l.as_str())
                        .collect();
                    return Err(format!(
                        "daemon exited before {what} ({:?}); last lines: {tail:?}",
                        self.child.try_wait()
                    ));
                }
            }
        }
    }

    /// Takes every line that has arrived so far into `log`.
    pub fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.log.push(l);
        }
    }

    /// Waits for the ready line; returns its arrival time and the line.
    ///
    /// Returns an error if it does not come within `timeout`.
    pub fn ready(&mut self, timeout: Duration) -> Result<(Instant, String), String> {
        self.wait_for(timeout, "ready line", |l| {
            l.contains("ready in ").then(|| l.to_string())
        })
    }

    /// SIGTERM, then the time until the process has exited; checks exit status 0.
    ///
    /// Returns an error if it does not exit within 10 s or exits unsuccessfully.
    pub fn stop(mut self) -> Result<Duration, String> {
        let t = Instant::now();
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
        if unsafe { libc::kill(self.pid(), libc::SIGTERM) } != 0 {
            return Err(format!("SIGTERM: {}", std::io::Error::last_os_error()));
        }
        let exited = wait_pidfd(&self.pidfd, Duration::from_secs(10))?;
        let status = self
            .child
            .wait()
            .map_err(|e| format!("waiting for the daemon: {e}"))?;
        self.done = true;
        if !status.success() {
            return Err(format!("daemon exited with {status} after SIGTERM"));
        }
        Ok(exited.duration_since(t))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Parses a Rust `Debug` duration as the daemon prints it (`812.00µs`, `1.23ms`, `2s`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim().trim_end_matches(',');
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "ns" => v / 1e9,
        "µs" | "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// The value after `key` up to the next space, e.g. `field(line, "walk=")`.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    Some(line[at..].split(' ').next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_debug_prints_them() {
        assert_eq!(parse_duration("812.00µs"), Some(Duration::from_micros(812)));
        assert_eq!(parse_duration("1.50ms,"), Some(Duration::from_micros(1500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("7ns"), Some(Duration::from_nanos(7)));
        assert_eq!(parse_duration("fast"), None);
    }

    #[test]
    fn fields() {
        let l = "wrote /d/x.pb.gz pid=42 comm=m reason=oom walk=0.120ms written=3.5ms-after-kill";
        assert_eq!(field(l, " pid="), Some("42"));
        assert_eq!(field(l, "walk="), Some("0.120ms"));
        assert_eq!(field(l, "nope="), None);
    }
}
