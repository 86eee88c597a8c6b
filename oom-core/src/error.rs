//! The one error type of oom-core.
//!
//! Every variant is `Copy` and names the structure being read, the field that failed
//! and, for parse errors, the byte offset of that field within the input slice.

use core::fmt;

/// Everything that can go wrong in oom-core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before `field` of `structure` (which starts at `offset`).
    Truncated {
        /// The structure being read, e.g. `"bucket"`.
        structure: &'static str,
        /// The field that did not fit.
        field: &'static str,
        /// Byte offset of the field in the input.
        offset: usize,
    },
    /// `field` of `structure` at `offset` holds a value that cannot be right.
    Invalid {
        /// The structure being read.
        structure: &'static str,
        /// The offending field.
        field: &'static str,
        /// Byte offset of the field in the input.
        offset: usize,
        /// The value found (truncated to 64 bits).
        value: u64,
    },
    /// `field` of `structure` holds a value this crate does not support (e.g. a
    /// big-endian or 32-bit target, an old pclntab magic, Go older than 1.19).
    Unsupported {
        /// The structure being read.
        structure: &'static str,
        /// The offending field.
        field: &'static str,
        /// Byte offset of the field in the input.
        offset: usize,
        /// The value found.
        value: u64,
    },
    /// Something looked up by name or pattern is not in the input.
    NotFound {
        /// What was looked for, e.g. `"runtime.mProf_FlushLocked"`.
        what: &'static str,
    },
    /// The target's `runtime.MemProfileRate` is 0: memory profiling is disabled.
    ProfilingDisabled,
    /// The caller-provided output buffer is too small; `needed` bytes would do.
    BufferTooSmall {
        /// The size, in bytes, the output needs.
        needed: usize,
    },
    /// A caller-provided table is full.
    TableFull {
        /// Which table: `"strings"`, `"locations"`, `"deck"`, `"mappings"`.
        table: &'static str,
        /// Its capacity in entries.
        capacity: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated {
                structure,
                field,
                offset,
            } => {
                write!(
                    f,
                    "{structure}: input ends inside {field} at byte {offset:#x}"
                )
            }
            Error::Invalid {
                structure,
                field,
                offset,
                value,
            } => {
                write!(
                    f,
                    "{structure}: invalid {field} {value:#x} at byte {offset:#x}"
                )
            }
            Error::Unsupported {
                structure,
                field,
                offset,
                value,
            } => {
                write!(
                    f,
                    "{structure}: unsupported {field} {value:#x} at byte {offset:#x}"
                )
            }
            Error::NotFound { what } => write!(f, "{what} not found"),
            Error::ProfilingDisabled => {
                f.write_str("memory profiling is disabled (MemProfileRate is 0)")
            }
            Error::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            Error::TableFull { table, capacity } => {
                write!(f, "{table} table full at {capacity} entries")
            }
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    struct Buf([u8; 128], usize);
    impl fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.1 + s.len();
            self.0
                .get_mut(self.1..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }

    #[test]
    fn display_names_structure_field_and_offset() {
        let mut b = Buf([0; 128], 0);
        let e = Error::Truncated {
            structure: "bucket",
            field: "nstk",
            offset: 40,
        };
        fmt::write(&mut b, format_args!("{e}")).unwrap();
        assert_eq!(&b.0[..b.1], b"bucket: input ends inside nstk at byte 0x28");
    }
}
