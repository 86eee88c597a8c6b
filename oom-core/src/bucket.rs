//! One memory-profile bucket: allocation size, call stack and counters.
//!
//! This is the common currency of oom-core: capture records from the kernel program
//! (`abi`) and raw Go buckets read from process memory both turn into [`Bucket`]s, and
//! `values`, symbolization and the pprof encoder take [`Bucket`]s.
//!
//! Raw Go buckets (`runtime.bucket` in `runtime/mprof.go`, Go 1.19–1.27) are a 48-byte
//! header, `nstk` stack words and, for memory buckets, a `memRecord` of four cycles:
//! 32-byte cycles `{allocs, frees, alloc_bytes, free_bytes}` up to Go 1.26, 16-byte
//! `{allocs, frees}` from Go 1.27. [`GoBucket::parse`] reads one.

use crate::layout::Layout;
use crate::read::Reader;
use crate::Error;

/// Allocation and free counts of one profiling cycle (Go's `memRecordCycle`, counts only).
///
/// Byte totals are not kept: within a bucket every object has the same size, so
/// bytes = count × size (Go 1.27 dropped the byte fields for the same reason).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cycle {
    /// Sampled allocations.
    pub allocs: u64,
    /// Sampled frees.
    pub frees: u64,
}

/// Go's `memRecord`: the published cycle and the three future cycles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRecord {
    /// Counts published at the last completed GC cycle.
    pub active: Cycle,
    /// Counts of the cycles still in progress, indexed by `cycle % 3`.
    pub future: [Cycle; 3],
}

/// A call stack: little-endian `u64` return PCs, leaf first, borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack<'a> {
    words: &'a [u8],
}

impl<'a> Stack<'a> {
    /// Wraps `words`, little-endian u64 return PCs, leaf first.
    ///
    /// Returns `None` if the length is not a multiple of 8.
    pub fn new(words: &'a [u8]) -> Option<Self> {
        words.len().is_multiple_of(8).then_some(Self { words })
    }

    /// Number of PCs.
    pub fn len(&self) -> usize {
        self.words.len() / 8
    }

    /// True when the stack has no PCs.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The `i`th PC (0 is the leaf), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<u64> {
        let start = i.checked_mul(8)?;
        let bytes = self.words.get(start..start.checked_add(8)?)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(bytes);
        Some(u64::from_le_bytes(w))
    }

    /// The PCs, leaf first.
    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        self.words.chunks_exact(8).map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
    }

    /// The raw little-endian bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.words
    }
}

/// One memory-profile bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket<'a> {
    /// Object size in bytes (after size-class rounding); part of the bucket key.
    pub size: u64,
    /// Return PCs, leaf first, as runtime addresses of the target process.
    pub stack: Stack<'a>,
    /// The counters.
    pub record: MemRecord,
}

/// Size of the `runtime.bucket` header (Go 1.19–1.27).
pub const GO_BUCKET_HEADER: usize = 48;
/// `bucketType` of memory-profile buckets.
pub const MEM_PROFILE: u64 = 1;

/// The header of a raw Go `runtime.bucket`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoBucketHeader {
    /// `next`: the hash-chain link.
    pub next: u64,
    /// `allnext`: the next bucket of the `mbuckets` list (0 at the end).
    pub allnext: u64,
    /// `typ`: 1 for memory profile buckets.
    pub typ: u64,
    /// `hash`.
    pub hash: u64,
    /// `size`: allocation size in bytes.
    pub size: u64,
    /// `nstk`: number of stack words.
    pub nstk: u64,
}

impl GoBucketHeader {
    /// Parses the 48-byte header at the start of `data` and validates it for `layout`.
    ///
    /// Returns an error if `data` is shorter than 48 bytes, `typ` is not 1 or `nstk`
    /// exceeds the layout's limit.
    pub fn parse(data: &[u8], layout: &Layout) -> Result<GoBucketHeader, Error> {
        let r = Reader::new(data, "bucket");
        let h = GoBucketHeader {
            next: r.u64(0, "next")?,
            allnext: r.u64(8, "allnext")?,
            typ: r.u64(16, "typ")?,
            hash: r.u64(24, "hash")?,
            size: r.u64(32, "size")?,
            nstk: r.u64(40, "nstk")?,
        };
        if h.typ != MEM_PROFILE {
            return Err(r.invalid("typ", 16, h.typ));
        }
        if h.nstk > layout.max_nstk as u64 {
            return Err(r.invalid("nstk", 40, h.nstk));
        }
        Ok(h)
    }

    /// Total size of this bucket in bytes: header, stack and `memRecord`.
    pub fn total_len(&self, layout: &Layout) -> usize {
        // nstk ≤ max_nstk was checked by `parse`; saturate for hand-made layouts.
        (self.nstk as usize)
            .saturating_mul(8)
            .saturating_add(GO_BUCKET_HEADER)
            .saturating_add(layout.mem_record_size())
    }
}

/// A raw Go memory-profile bucket: its header and the [`Bucket`] it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoBucket<'a> {
    /// The header, including the `allnext` link to follow.
    pub header: GoBucketHeader,
    /// Size, stack and counters.
    pub bucket: Bucket<'a>,
}

impl<'a> GoBucket<'a> {
    /// Parses one raw bucket as read from process memory at the bucket's address.
    /// `data` may be longer than the bucket.
    ///
    /// Returns an error if the header is invalid (see [`GoBucketHeader::parse`]) or
    /// `data` ends before the stack or `memRecord`.
    pub fn parse(data: &'a [u8], layout: &Layout) -> Result<GoBucket<'a>, Error> {
        let header = GoBucketHeader::parse(data, layout)?;
        let r = Reader::new(data, "bucket");
        let nstk = header.nstk as usize;
        let words = r.bytes(GO_BUCKET_HEADER, nstk * 8, "stack")?;
        let rec = GO_BUCKET_HEADER + nstk * 8;
        let cycle = |i: usize| -> Result<Cycle, Error> {
            let at = rec + i * layout.cycle_size;
            Ok(Cycle {
                allocs: r.u64(at, "memRecord")?,
                frees: r.u64(at + 8, "memRecord")?,
            })
        };
        // Read the last word first so a short input reports the end of the record.
        r.bytes(rec, layout.mem_record_size(), "memRecord")?;
        let record = MemRecord {
            active: cycle(0)?,
            future: [cycle(1)?, cycle(2)?, cycle(3)?],
        };
        let stack = Stack { words };
        Ok(GoBucket {
            header,
            bucket: Bucket {
                size: header.size,
                stack,
                record,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::GoVersion;

    fn layout(minor: u16) -> Layout {
        Layout::for_version(GoVersion { minor, patch: 0 }).unwrap()
    }

    /// A Go 1.27 bucket: 2 stack words, 16-byte cycles.
    fn go127() -> [u8; 48 + 16 + 64] {
        let mut b = [0u8; 128];
        let words: [u64; 16] = [
            0x1000,   // next
            0x2000,   // allnext
            1,        // typ = memProfile
            0xabcdef, // hash
            48,       // size
            2,        // nstk
            0x401234, // stack[0], the leaf return PC
            0x405678, // stack[1]
            5, 1, // active {allocs, frees}
            2, 0, // future[0]
            0, 3, // future[1]
            7, 0, // future[2]
        ];
        for (c, w) in b.chunks_exact_mut(8).zip(words) {
            c.copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    #[test]
    fn parses_go127_bucket() {
        let data = go127();
        let g = GoBucket::parse(&data, &layout(27)).unwrap();
        assert_eq!(
            (g.header.next, g.header.allnext, g.header.hash),
            (0x1000, 0x2000, 0xabcdef)
        );
        assert_eq!(g.header.total_len(&layout(27)), 128);
        assert_eq!(g.bucket.size, 48);
        assert_eq!(
            g.bucket.stack.iter().collect::<std::vec::Vec<_>>(),
            [0x401234, 0x405678]
        );
        assert_eq!(
            g.bucket.record.active,
            Cycle {
                allocs: 5,
                frees: 1
            }
        );
        assert_eq!(
            g.bucket.record.future,
            [
                Cycle {
                    allocs: 2,
                    frees: 0
                },
                Cycle {
                    allocs: 0,
                    frees: 3
                },
                Cycle {
                    allocs: 7,
                    frees: 0
                }
            ]
        );
    }

    #[test]
    fn parses_go126_bucket_with_byte_counters() {
        // 1 stack word, 32-byte cycles {allocs, frees, alloc_bytes, free_bytes}.
        let mut data = [0u8; 48 + 8 + 128];
        let words: [u64; 23] = [
            0, 0, 1, 0, 16, 1,        // next, allnext, typ, hash, size, nstk
            0x401000, // stack[0]
            4, 2, 64, 32, // active
            1, 0, 16, 0, // future[0]
            0, 0, 0, 0, // future[1]
            9, 9, 144, 144, // future[2]
        ];
        for (c, w) in data.chunks_exact_mut(8).zip(words) {
            c.copy_from_slice(&w.to_le_bytes());
        }
        let g = GoBucket::parse(&data, &layout(26)).unwrap();
        assert_eq!(
            g.bucket.record.active,
            Cycle {
                allocs: 4,
                frees: 2
            }
        );
        assert_eq!(
            g.bucket.record.future[2],
            Cycle {
                allocs: 9,
                frees: 9
            }
        );
        assert_eq!(g.header.total_len(&layout(26)), data.len());
    }

    #[test]
    fn errors_name_field_and_offset() {
        let data = go127();
        let l = layout(27);
        assert_eq!(
            GoBucket::parse(&data[..40], &l),
            Err(Error::Truncated {
                structure: "bucket",
                field: "nstk",
                offset: 40
            })
        );
        assert_eq!(
            GoBucket::parse(&data[..60], &l),
            Err(Error::Truncated {
                structure: "bucket",
                field: "stack",
                offset: 48
            })
        );
        assert_eq!(
            GoBucket::parse(&data[..127], &l),
            Err(Error::Truncated {
                structure: "bucket",
                field: "memRecord",
                offset: 64
            })
        );
        let mut bad = data;
        bad[16] = 2; // block profile bucket
        assert_eq!(
            GoBucket::parse(&bad, &l),
            Err(Error::Invalid {
                structure: "bucket",
                field: "typ",
                offset: 16,
                value: 2
            })
        );
        let mut bad = data;
        bad[40..48].copy_from_slice(&33u64.to_le_bytes());
        assert!(GoBucketHeader::parse(&bad, &l).is_ok()); // fine for 1.23+
                                                          // 33 words exceed Go 1.22's limit of 32.
        assert_eq!(
            GoBucketHeader::parse(&bad, &layout(22)),
            Err(Error::Invalid {
                structure: "bucket",
                field: "nstk",
                offset: 40,
                value: 33
            })
        );
        bad[40..48].copy_from_slice(&1025u64.to_le_bytes());
        assert_eq!(
            GoBucketHeader::parse(&bad, &l),
            Err(Error::Invalid {
                structure: "bucket",
                field: "nstk",
                offset: 40,
                value: 1025
            })
        );
    }

    #[test]
    fn stack_accessors() {
        assert!(Stack::new(&[0; 7]).is_none());
        let s = Stack::new(&[1, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            (s.len(), s.is_empty(), s.get(0), s.get(1)),
            (1, false, Some(1), None)
        );
        assert_eq!(s.as_bytes().len(), 8);
    }
}
