//! Program loading: first without a verifier log (a too-small log buffer turns a
//! passing program into ENOSPC), then, on failure, again with a growing log that
//! travels with the error.

use std::io;

use crate::error::{Error, Result};
use crate::sys::{self, ProgFd, ProgSpec};

/// First verifier-log size on retry.
const LOG_START: usize = 64 * 1024;
/// Largest log: old kernels reject `log_size` above `u32::MAX >> 8` (16 MiB).
const LOG_MAX: usize = 16 * 1024 * 1024;

/// Loads `spec`; on failure returns [`Error::ProgLoad`] with the verifier log.
///
/// Returns an error if the kernel rejects the program.
pub fn load(spec: &ProgSpec<'_>) -> Result<ProgFd> {
    let first = match sys::prog_load(spec, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut size = LOG_START;
    loop {
        let mut buf = vec![0u8; size];
        match sys::prog_load(spec, Some((&mut buf, 1))) {
            // Passed on the second try (a transient failure such as EAGAIN).
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < LOG_MAX => {
                size = (size * 8).min(LOG_MAX);
            }
            Err(e) => {
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                let log = String::from_utf8_lossy(&buf[..end]).into_owned();
                // Report the unlogged error unless the log run said more.
                let source = if e.raw_os_error() == Some(libc::ENOSPC) {
                    io::Error::new(first.kind(), format!("{first} (log truncated)"))
                } else {
                    first
                };
                return Err(Error::ProgLoad {
                    name: spec.name.to_string(),
                    source,
                    log,
                });
            }
        }
    }
}
