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
//! sink.rs: profile ──▶ Spool (DIR/spool/) ──Uploader thread──▶ s3.rs (sigv4.rs PUT)
//! pressure.rs: PSI / memory.high / usage triggers → ondemand profiles before a kill
//!
//! growth.bpf.o ──▶ growth.rs (perf_event page-fault sampler on every CPU, stack map)
//!     ──▶ growth_profile.rs (Go/ELF symbolization, unwinding checks, pprof)
//! ```
//!
//! Every system call is in the crate-private `sys` module, the only one allowed
//! unchecked code. [`probe`] asks the kernel about single features without it.
//!
//! # Using the kernel handle
//!
//! ```no_run
//! use std::time::Duration;
//! use oom_loader::{CycleLayout, Event, Kernel, KernelConfig, KillReason, WatchInfo};
//!
//! # fn main() -> oom_loader::Result<()> {
//! let mut k = Kernel::load(&KernelConfig::default())?; // probes, loads, attaches
//! k.watch(1234, &WatchInfo {
//!     mbuckets: 0x5a1b20,         // runtime.mbuckets (runtime address)
//!     mem_profile_rate: 0x59f0a8, // runtime.MemProfileRate, 0 = unknown
//!     mprof_cycle: 0x5a1c40,      // runtime.mProfCycle, 0 = unknown
//!     pc_base: 0x401000,          // text start: PCs travel as u32 offsets
//!     cycle_layout: CycleLayout::Words4, // Go <= 1.26; Words2 for 1.27+
//!     max_nstk: 1024,             // 32 for Go <= 1.22
//! })?;
//! loop {
//!     for ev in k.poll(Some(Duration::from_secs(1)))? {
//!         match ev {
//!             Event::Capture(c) if c.reason == KillReason::Oom => {
//!                 c.for_each_bucket(|_entry, bucket| {
//!                     // oom_core::bucket::Bucket: size, whole stack, MemRecord
//!                     # let _ = bucket;
//!                 })?;
//!             }
//!             Event::Exec(x) => { /* a new image: analyse it, maybe watch x.pid */ }
//!             Event::Exit(x) => { /* the kernel already dropped the watch of x.pid */ }
//!             _ => {}
//!         }
//!     }
//! }
//! # }
//! ```
//!
//! Dropping the [`Kernel`] detaches every program and frees every map.
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
mod abi_check;
pub mod attach;
pub mod attribution;
pub mod binary;
pub mod cache;
pub mod capture;
pub mod error;
pub mod growth;
pub mod growth_profile;
pub mod kernel;
pub mod kmsg;
pub(crate) mod maps;
pub mod memcg;
pub mod monitor;
pub mod ondemand;
pub mod pressure;
pub mod probe;
pub mod procmaps;
pub mod procmem;
pub mod profile;
pub(crate) mod progs;
pub mod ringbuf;
pub mod s3;
pub mod sigv4;
pub mod sink;
pub(crate) mod sys;
pub mod victim;
pub mod walk;

pub use capture::{Capture, KillReason, OwnedBucket};
pub use error::{Error, Result};
pub use kernel::{
    BpfIds, CycleLayout, Event, ExecEvent, Kernel, KernelConfig, LoadTimings, WalkKind, WatchInfo,
};
