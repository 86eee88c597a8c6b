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

    /// What was not read, and why; empty when complete.
    pub fn problems(&self) -> Vec<crate::profile::Incomplete> {
        use crate::profile::Incomplete;
        let mut p = Vec::new();
        match self.stop {
            Stop::End => {}
            Stop::Limit(n) => p.push(Incomplete::BucketLimit { limit: n as u64 }),
            Stop::Cycle { .. } => p.push(Incomplete::Loop),
            Stop::ReadFault { addr } => p.push(Incomplete::ListCut { addr: Some(addr) }),
        }
        if self.skipped > 0 {
            let details: Vec<String> = self
                .skipped_details
                .iter()
                .map(|(a, e)| format!("{a:#x}: {e}"))
                .collect();
            p.push(Incomplete::BucketsLeftOut {
                count: self.skipped as u64,
                invalid: true,
                detail: details.join("; "),
            });
        }
        p
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

#[cfg(test)]
mod tests {
    use super::*;
    use oom_core::layout::GoVersion;
    use std::path::Path;

    /// Go 1.27's memRecord: active + 3 future cycles of {allocs, frees}.
    fn layout() -> Layout {
        Layout::for_version(GoVersion {
            minor: 27,
            patch: 3,
        })
        .unwrap()
    }

    /// A fake bucket list in this process's own memory, laid out like Go 1.27's
    /// `runtime.bucket` (go-runtime.md §1.1–1.2): `[next, allnext, typ, hash, size,
    /// nstk, stk..., active.allocs, active.frees, future x3]`. Returns the words and
    /// the address of the bucket `i` within them.
    struct FakeList {
        words: Vec<u64>,
        starts: Vec<usize>,
    }

    impl FakeList {
        fn new(buckets: &[(u64, &[u64], (u64, u64))]) -> FakeList {
            let mut l = FakeList {
                words: Vec::with_capacity(4096),
                starts: Vec::new(),
            };
            for (size, stack, (allocs, frees)) in buckets {
                l.starts.push(l.words.len());
                l.words.extend([0, 0, 1, 0xabc, *size, stack.len() as u64]);
                l.words.extend_from_slice(stack);
                l.words.extend([*allocs, *frees, 0, 0, 0, 0, 0, 0]);
            }
            assert!(l.words.len() <= 4096, "no reallocation: addresses stay put");
            // Link them in order through allnext (word 1).
            for i in 0..l.starts.len() {
                let next = l.starts.get(i + 1).map_or(0, |&s| l.addr_of(s));
                l.words[l.starts[i] + 1] = next;
            }
            l
        }

        fn addr_of(&self, word: usize) -> u64 {
            self.words.as_ptr() as u64 + 8 * word as u64
        }

        fn head(&self) -> u64 {
            self.addr_of(self.starts[0])
        }
    }

    fn me() -> ProcMem {
        ProcMem::open(Path::new("/proc"), std::process::id() as i32).unwrap()
    }

    #[test]
    fn a_fake_list_in_our_own_memory_reads_back_exactly() {
        let l = FakeList::new(&[
            (1 << 20, &[0x401000, 0x402000, 0x403000], (40, 0)),
            (1024, &[0x404000], (10_000, 9_000)),
            (48, &[0x405000; 40], (3, 1)),
        ]);
        let w = Walk::run(&me(), l.head(), layout(), DEFAULT_MAX_BUCKETS);
        assert_eq!(w.stop, Stop::End);
        assert!(w.is_complete(), "{:?}", w.problems());
        let got: Vec<(u64, Vec<u64>, u64, u64)> = w
            .buckets()
            .map(|b| {
                (
                    b.size,
                    b.stack.iter().collect(),
                    b.record.active.allocs,
                    b.record.active.frees,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1 << 20, vec![0x401000, 0x402000, 0x403000], 40, 0),
                (1024, vec![0x404000], 10_000, 9_000),
                (48, vec![0x405000; 40], 3, 1),
            ]
        );
    }

    #[test]
    fn a_cycle_a_corrupt_bucket_and_a_limit_stop_or_skip_and_say_so() {
        // A loop back to the first bucket.
        let mut l = FakeList::new(&[(16, &[1], (1, 0)), (32, &[2], (1, 0)), (64, &[3], (1, 0))]);
        let last = l.starts[2] + 1;
        l.words[last] = l.head();
        let w = Walk::run(&me(), l.head(), layout(), DEFAULT_MAX_BUCKETS);
        assert_eq!(w.stop, Stop::Cycle { addr: l.head() });
        assert_eq!(w.len(), 3);
        assert_eq!(w.problems(), [crate::profile::Incomplete::Loop]);

        // A bucket with a bad type is left out, counted, and its link followed.
        let mut l = FakeList::new(&[(16, &[1], (1, 0)), (32, &[2], (1, 0)), (64, &[3], (1, 0))]);
        let typ = l.starts[1] + 2;
        l.words[typ] = 7;
        let w = Walk::run(&me(), l.head(), layout(), DEFAULT_MAX_BUCKETS);
        assert_eq!(w.stop, Stop::End);
        assert_eq!((w.len(), w.skipped), (2, 1));
        assert!(!w.is_complete());

        // The limit.
        let l = FakeList::new(&[(16, &[1], (1, 0)), (32, &[2], (1, 0)), (64, &[3], (1, 0))]);
        let w = Walk::run(&me(), l.head(), layout(), 2);
        assert_eq!((w.stop.clone(), w.len()), (Stop::Limit(2), 2));

        // An unmapped link: stop there, keep what was read.
        let mut l = FakeList::new(&[(16, &[1], (1, 0)), (32, &[2], (1, 0))]);
        let link = l.starts[1] + 1;
        l.words[link] = 0x1000;
        let w = Walk::run(&me(), l.head(), layout(), DEFAULT_MAX_BUCKETS);
        assert_eq!(
            (w.stop.clone(), w.len()),
            (Stop::ReadFault { addr: 0x1000 }, 2)
        );
    }
}
