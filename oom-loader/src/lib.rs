//! oomprof's loader: raw `bpf(2)`, the kernel program's lifecycle, and captures.
//!
//! Data flow:
//!
//! ```text
//! oom-bpf object ──aya-obj──▶ maps.rs (create) + progs.rs (verify) ──▶ attach.rs
//!                                  (tracepoints via perf_event_open + BPF link)
//! kernel program ──ring buffer──▶ ringbuf.rs (mmap + epoll, lending reader)
//!     ──▶ oom_core::abi::Record ──▶ capture.rs (chunks → Capture, oom vs killed)
//!     ──▶ kernel.rs: Kernel::poll() → Event::{Victim, Exec, Exit, Capture}
//!
//! /proc/PID/exe ──▶ binary.rs (buildinfo, gopclntab, runtime variables; cache.rs)
//! /proc/PID/maps ──▶ procmaps.rs (executable mappings, PIE load bias)
//! capture entries or walk.rs (/proc/PID/mem, procmem.rs) ──▶ oom_core::Bucket
//!     ──▶ profile.rs: values, symbolized pprof, gzip, metadata comments
//! ondemand.rs: profile_pid() = binary + maps + walk + profile, no BPF
//! ```
//!
//! Every system call is in [`sys`], the only module with `unsafe`.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod attach;
pub mod binary;
pub mod cache;
pub mod capture;
pub mod error;
pub mod kernel;
pub mod maps;
pub mod monitor;
pub mod ondemand;
pub mod probe;
pub mod procmaps;
pub mod procmem;
pub mod profile;
pub mod progs;
pub mod ringbuf;
pub mod sys;
pub mod walk;

pub use capture::{Capture, KillReason};
pub use error::{Error, Result};
pub use kernel::{CycleLayout, Event, ExecEvent, Kernel, KernelConfig, WatchInfo};
