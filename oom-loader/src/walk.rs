//! Walking a live process's `runtime.mbuckets` list from user space (on-demand
//! profiles): bounded, cycle-safe, and honest about where and why it stopped.

use std::collections::HashSet;
use std::ops::Range;

use oom_core::bucket::{GoBucket, GoBucketHeader, GO_BUCKET_HEADER};
use oom_core::{Bucket, Layout};

use crate::procmem::ProcMem;

/// Default upper bound on buckets read per profile.
pub const DEFAULT_MAX_BUCKETS: usize = 1_000_000;

/// Why a walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Reached the end of the list: the profile is complete.
    End,
    /// Read the configured number of buckets; more follow.
    Limit(usize),
    /// `allnext` led back to a bucket already read (corrupt list).
    Cycle {
        /// The repeated address.
        addr: u64,
    },
    /// Memory at `addr` could not be read (unmapped, or the process exited).
    ReadFault {
        /// The bucket address.
        addr: u64,
    },
    /// A bucket failed validation (wrong type, impossible depth, short record).
    Invalid {
        /// The bucket address.
        addr: u64,
        /// What the parser said.
        error: oom_core::Error,
    },
}

impl Stop {
    /// True when every bucket of the list was read.
    pub fn is_complete(&self) -> bool {
        *self == Stop::End
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::End => write!(f, "complete"),
            Stop::Limit(n) => write!(f, "truncated at the limit of {n} buckets"),
            Stop::Cycle { addr } => write!(f, "bucket list loops back to {addr:#x}"),
            Stop::ReadFault { addr } => write!(f, "bucket at {addr:#x} unreadable"),
            Stop::Invalid { addr, error } => write!(f, "bad bucket at {addr:#x}: {error}"),
        }
    }
}

/// The buckets read by one walk, stored back to back in one buffer.
#[derive(Debug)]
pub struct Walk {
    arena: Vec<u8>,
    spans: Vec<Range<usize>>,
    layout: Layout,
    /// Why the walk ended.
    pub stop: Stop,
}

impl Walk {
    /// Walks the list starting at bucket address `head` (the value of `runtime.mbuckets`).
    pub fn run(mem: &ProcMem, head: u64, layout: Layout, max_buckets: usize) -> Walk {
        // Most buckets are at most 32 frames deep: one read covers them.
        let guess = GO_BUCKET_HEADER + 32 * 8 + layout.mem_record_size();
        let mut w = Walk {
            arena: Vec::new(),
            spans: Vec::new(),
            layout,
            stop: Stop::End,
        };
        let mut seen = HashSet::new();
        let mut addr = head;
        let mut buf = vec![0u8; guess];
        while addr != 0 {
            if w.spans.len() >= max_buckets {
                w.stop = Stop::Limit(max_buckets);
                break;
            }
            if !seen.insert(addr) {
                w.stop = Stop::Cycle { addr };
                break;
            }
            buf.resize(guess, 0);
            let got = match mem.read_some(addr, &mut buf) {
                Ok(n) if n >= GO_BUCKET_HEADER => n,
                _ => {
                    w.stop = Stop::ReadFault { addr };
                    break;
                }
            };
            let header = match GoBucketHeader::parse(&buf[..got], &layout) {
                Ok(h) => h,
                Err(error) => {
                    w.stop = Stop::Invalid { addr, error };
                    break;
                }
            };
            let total = header.total_len(&layout);
            if total > got {
                buf.resize(total, 0);
                if mem.read_exact(addr, &mut buf).is_err() {
                    w.stop = Stop::ReadFault { addr };
                    break;
                }
            }
            let bytes = &buf[..total];
            if let Err(error) = GoBucket::parse(bytes, &layout) {
                w.stop = Stop::Invalid { addr, error };
                break;
            }
            let start = w.arena.len();
            w.arena.extend_from_slice(bytes);
            w.spans.push(start..w.arena.len());
            addr = header.allnext;
        }
        w
    }

    /// Number of buckets read.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when no bucket was read.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The buckets in list order (newest first).
    pub fn buckets(&self) -> impl Iterator<Item = Bucket<'_>> + '_ {
        self.spans.iter().filter_map(|r| {
            // Every span was validated when it was read.
            GoBucket::parse(self.arena.get(r.clone())?, &self.layout)
                .ok()
                .map(|b| b.bucket)
        })
    }
}
