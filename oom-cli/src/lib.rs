//! The parts of `oomprof` that read untrusted files, as a library so they can be
//! fuzzed (`fuzz/fuzz_targets/pprof_read.rs`); the `oomprof` binary (`main.rs`,
//! `cmd/`) uses them.
//!
//! File bytes → [`pprof_read::parse`] (gunzip, bounded) → a resolved
//! [`pprof_read::Profile`] → `top` and `flame`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod pprof_read;

#[cfg(test)]
mod pprof_fixture;
