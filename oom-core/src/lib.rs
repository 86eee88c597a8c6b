//! Go runtime memory-profile structures in, pprof bytes out.
//!
//! `#![no_std]`, no `alloc`, no `unsafe`: every input is a byte slice, every output
//! goes into a caller-provided buffer.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod abi;
pub mod bucket;
