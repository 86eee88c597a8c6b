//! Go runtime memory-profile structures in, pprof bytes out.
//!
//! `#![no_std]`, no `alloc`, no `unsafe`: every input is a byte slice, every output
//! goes into a caller-provided buffer. Data flow:
//!
//! 1. [`buildinfo`]: `.go.buildinfo` and ELF notes → Go version and build IDs;
//!    [`layout`]: Go version → [`Layout`] (every per-version offset and limit).
//! 2. [`abi`] (kernel capture records) or [`bucket`] (raw `runtime.bucket` bytes read
//!    from process memory) → [`Bucket`]s.
//! 3. [`values`]: counts per policy, scaled like Go's `scaleHeapSample`.
//! 4. [`pclntab`]: gopclntab + moduledata → a [`Symbolizer`] (PC → function, file,
//!    line, inline frames); [`stripped`] finds `runtime.mbuckets` and
//!    `runtime.MemProfileRate` in binaries without `.symtab`.
//! 5. [`pprof`]: buckets + symbolizer + mappings → a `perftools.profiles.Profile`
//!    encoded exactly as `runtime/pprof` would, into a caller buffer.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod abi;
pub mod bucket;
pub mod buildinfo;
mod error;
pub mod layout;
pub mod pclntab;
pub mod pprof;
mod read;
pub mod stripped;
pub mod values;

pub use bucket::Bucket;
pub use error::Error;
pub use layout::Layout;
pub use pclntab::{Pclntab, Symbolizer};
