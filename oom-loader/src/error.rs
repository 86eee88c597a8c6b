//! The loader's error type.

use std::io;

/// What went wrong, with the call that failed and its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The call and what it was applied to.
        call: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The embedded BPF object could not be parsed or relocated.
    #[error("BPF object: {0}")]
    Object(String),
    /// The verifier rejected a program; the log says why.
    #[error("loading BPF program {name} failed: {source}\n--- verifier log ---\n{log}")]
    ProgLoad {
        /// Program name.
        name: String,
        /// The OS error of the load.
        #[source]
        source: io::Error,
        /// The verifier log (possibly cut at its end).
        log: String,
    },
    /// The running kernel lacks a feature oomprof needs.
    #[error("the kernel lacks {feature} (available since Linux {since}): {detail}")]
    MissingFeature {
        /// The feature.
        feature: &'static str,
        /// The first mainline release that has it.
        since: &'static str,
        /// What the probe saw.
        detail: String,
    },
    /// A tracepoint is missing or its record layout is not what the program reads.
    #[error("tracepoint {tracepoint}: {reason}")]
    Tracepoint {
        /// `category/name`.
        tracepoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The kernel refused BPF itself (EPERM): a capability is missing.
    #[error("{what} is not permitted: oomprof needs CAP_BPF (with CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH), or root")]
    NotPermitted {
        /// What was refused.
        what: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A record from the kernel did not parse.
    #[error("malformed kernel record: {0}")]
    Record(#[from] oom_core::abi::Error),
}

impl Error {
    pub(crate) fn sys(call: impl Into<String>, source: io::Error) -> Self {
        Error::Syscall {
            call: call.into(),
            source,
        }
    }
}

/// `Result` with the loader's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
