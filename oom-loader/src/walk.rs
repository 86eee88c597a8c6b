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
    /// Buckets that failed validation but whose `allnext` could be followed: left out
    /// of the profile and counted here. The first few are kept with their reason.
    pub skipped: usize,
    /// Address and reason of the first skipped buckets (at most [`MAX_SKIP_DETAILS`]).
    pub skipped_details: Vec<(u64, oom_core::Error)>,
}

/// How many skipped buckets are described individually.
pub const MAX_SKIP_DETAILS: usize = 8;

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
            skipped: 0,
            skipped_details: Vec::new(),
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
                    // A corrupt header (bad type or depth): skip it, counted, and go on
                    // through its allnext link, which the cycle and limit checks bound.
                    w.skip(addr, error);
                    let mut next = [0u8; 8];
                    next.copy_from_slice(&buf[8..16]);
                    addr = u64::from_le_bytes(next);
                    continue;
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
                w.skip(addr, error);
                addr = header.allnext;
                continue;
            }
            let start = w.arena.len();
            w.arena.extend_from_slice(bytes);
            w.spans.push(start..w.arena.len());
            addr = header.allnext;
        }
        w
    }

    fn skip(&mut self, addr: u64, error: oom_core::Error) {
        self.skipped += 1;
        if self.skipped_details.len() < MAX_SKIP_DETAILS {
            self.skipped_details.push((addr, error));
        }
    }

    /// True when every bucket of the list was read and valid.
    pub fn is_complete(&self) -> bool {
        self.stop.is_complete() && self.skipped == 0
    }

    /// What was not read, and why; `None` when complete.
    pub fn problems(&self) -> Option<String> {
        let mut p = Vec::new();
        if !self.stop.is_complete() {
            p.push(self.stop.to_string());
        }
        if self.skipped > 0 {
            let details: Vec<String> = self
                .skipped_details
                .iter()
                .map(|(a, e)| format!("{a:#x}: {e}"))
                .collect();
            p.push(format!(
                "{} invalid buckets left out ({})",
                self.skipped,
                details.join("; ")
            ));
        }
        (!p.is_empty()).then(|| p.join("; "))
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
