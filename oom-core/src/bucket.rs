//! One memory-profile bucket: allocation size, call stack and counters.
//!
//! This is the common currency of oom-core: capture records from the kernel program
//! (`abi`) and raw Go buckets read from process memory both turn into [`Bucket`]s, and
//! `values`, symbolization and the pprof encoder take [`Bucket`]s.

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
        (words.len() % 8 == 0).then_some(Self { words })
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
