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
//! ```
//!
//! Every system call is in [`sys`], the only module with `unsafe`.
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
mod abi_check;
pub mod attach;
pub mod capture;
pub mod error;
pub mod kernel;
pub mod maps;
pub mod probe;
pub mod progs;
pub mod ringbuf;
pub mod sys;

pub use capture::{Capture, KillReason};
pub use error::{Error, Result};
pub use kernel::{CycleLayout, Event, ExecEvent, Kernel, KernelConfig, WatchInfo};
