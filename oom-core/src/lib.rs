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
//!
//! A std caller (oom-loader) strings it together like this:
//!
//! ```no_run
//! use oom_core::buildinfo::{self, BuildInfo};
//! use oom_core::layout::{GoVersion, Layout};
//! use oom_core::pclntab::{LoadBias, ModuleData, Pclntab, Symbolizer};
//! use oom_core::pprof::{self, LocationSlot, Mapping, Profile, StringSlot, Tables};
//! use oom_core::values::{self, Exp, Policy, Scale};
//! use oom_core::bucket::GoBucket;
//! # fn main() -> Result<(), oom_core::Error> {
//! # let (buildinfo_sec, notes_sec, pclntab_sec, noptrdata_sec, gofunc_bytes): (&[u8], &[u8], &[u8], &[u8], &[u8]) = (&[], &[], &[], &[], &[]);
//! # let (pclntab_addr, bias, rate, raw_bucket): (u64, u64, i64, &[u8]) = (0, 0, 0, &[]);
//! let bi = BuildInfo::parse(buildinfo_sec)?;                       // section bytes
//! let layout = Layout::for_version(GoVersion::parse(bi.go_version)?)?;
//! let gnu = buildinfo::gnu_build_id(notes_sec)?.map(buildinfo::HexId::new).transpose()?;
//! let tab = Pclntab::parse(pclntab_sec)?;
//! let (_, md) = ModuleData::find(noptrdata_sec, pclntab_addr, &layout)?;
//! // gofunc_bytes: the file's bytes from link address md.gofunc to its section end.
//! let sym = Symbolizer::new(tab, md.text, gofunc_bytes, LoadBias(bias), layout);
//! let buckets = [GoBucket::parse(raw_bucket, &layout)?.bucket];  // or from oom_core::abi
//! let fallback = values::needs_fallback(buckets.iter().map(|b| &b.record), None);
//! let maps = [Mapping { start: 0x400000, limit: 0x500000, offset: 0, filename: "/bin/app",
//!                       build_id: gnu.as_ref().map_or("", |h| h.as_str()) }];
//! let profile = Profile {
//!     scale: Scale::new(rate, Exp::Amd64 { fma: true }, layout)?,
//!     policy: Policy::GoPublished { cycle: None, fallback },
//!     recent: true, // at OOM: the allocations Go has not published yet, as extra types
//!     mappings: &maps, time_nanos: 0, default_sample_type: None, comments: &["reason=oom"],
//! };
//! let words: usize = buckets.iter().map(|b| b.stack.len()).sum();
//! let mut strings = vec![StringSlot::default(); 4 * words + 64];
//! let mut locations = vec![LocationSlot::default(); 4 * words + 64];
//! let mut out = vec![0u8; 1 << 20];
//! let n = match pprof::encode(&mut out, Tables { strings: &mut strings, locations: &mut locations, frames: &[] },
//!                             &sym, &profile, &buckets) {
//!     Err(oom_core::Error::BufferTooSmall { needed }) => {
//!         out.resize(needed, 0);
//!         pprof::encode(&mut out, Tables { strings: &mut strings, locations: &mut locations, frames: &[] },
//!                       &sym, &profile, &buckets)?
//!     }
//!     r => r?,
//! };
//! // gzip out[..n] and write it.
//! # let _ = n; Ok(()) }
//! ```
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
