//! The capture record format shared with the kernel program.
//!
//! Mirrors `oom-bpf/include/oom_abi.h`, the one definition of every struct and limit
//! shared between the BPF program and user space. Each C struct has a `#[repr(C)]`
//! twin here whose size and field offsets are asserted at compile time; parsing reads
//! little-endian integers at those offsets (no pointer casts).
//!
//! Data flow: the loader hands each ring-buffer record to [`Record::parse`]. The chunk
//! payloads of one capture, concatenated in order, are iterated with [`Entries`];
//! a [`StackExpander`] turns each [`Entry`] into an
//! [`oom_core::bucket::Bucket`](crate::bucket::Bucket) whose stack it writes into a
//! caller buffer, because the kernel sends PCs as `u32` offsets when they fit and
//! leaves out the outer frames an entry shares with the one before.

use core::fmt;
use core::mem::{offset_of, size_of};

use crate::bucket::{Bucket, Cycle, MemRecord, Stack};

/// `OOM_ABI_VERSION`.
pub const ABI_VERSION: u32 = 4;
/// `OOM_MAX_NSTK`: the longest stack a bucket can hold (Go 1.23+ `maxProfStackDepth`).
pub const MAX_NSTK: u32 = 1024;
/// `OOM_DEFAULT_MAX_BUCKETS`: fits the default 8 MiB ring at ~54 B per bucket.
pub const DEFAULT_MAX_BUCKETS: u32 = 150_000;
/// `OOM_DEFAULT_WALK_BUDGET_NS`: the walk's default time budget.
pub const DEFAULT_WALK_BUDGET_NS: u64 = 100_000_000;
/// `OOM_BUDGET_CHECK_EVERY`: the walk reads the clock once per this many buckets.
pub const BUDGET_CHECK_EVERY: u32 = 64;
/// `OOM_MAX_BUCKETS_CEILING`: `bpf_loop` runs at most 8,388,608 iterations.
pub const MAX_BUCKETS_CEILING: u32 = 8_000_000;
/// `OOM_MAX_LOOPS`: the steps of the `bpf_loop` walk (`BPF_MAX_LOOPS`).
pub const MAX_LOOPS: u32 = 8 * 1024 * 1024;
/// `OOM_FALLBACK_UNROLL`: straight-line steps per round of the fallback walk.
pub const FALLBACK_UNROLL: u32 = 1024;
/// `OOM_FALLBACK_ROUNDS`: rounds per run of the fallback walk program.
pub const FALLBACK_ROUNDS: u32 = 128;
/// `OOM_FALLBACK_STEPS`: steps per run of the fallback walk program.
pub const FALLBACK_STEPS: u32 = FALLBACK_UNROLL * FALLBACK_ROUNDS;
/// `OOM_FALLBACK_RUNS`: runs of the fallback walk program, one per tail call (the
/// kernel allows 33 in a chain).
pub const FALLBACK_RUNS: u32 = 33;
/// `OOM_FALLBACK_MAX_STEPS`: the fallback walk's steps in all.
pub const FALLBACK_MAX_STEPS: u32 = FALLBACK_STEPS * FALLBACK_RUNS;
/// `OOM_NARROW_STEP` (in the program): PCs narrowed to `u32` per walk step.
pub const NARROW_STEP: u32 = 16;

/// Walk steps a bucket of `nstk` PCs takes: one, plus one per [`NARROW_STEP`] PCs
/// when they are sent as `u32` offsets.
pub const fn steps_per_bucket(nstk: u32, pc32: bool) -> u32 {
    if pc32 && nstk > 0 {
        1 + nstk.div_ceil(NARROW_STEP)
    } else {
        1
    }
}
/// `OOM_CHUNK_FLUSH`.
pub const CHUNK_FLUSH: u32 = 8192;
/// `OOM_ENTRY_HDR_SIZE`.
pub const ENTRY_HDR_SIZE: usize = 14;
/// `OOM_MAX_ENTRY`.
pub const MAX_ENTRY: u32 = ENTRY_HDR_SIZE as u32 + MAX_NSTK * 8 + 4 * 16;
/// `OOM_CHUNK_CAP`.
pub const CHUNK_CAP: u32 = CHUNK_FLUSH + MAX_ENTRY;
/// `OOM_RING_RESERVE`: ring bytes a capture leaves free for end and event records.
pub const RING_RESERVE: u32 = 4096;
/// `OOM_MAX_CYCLE_SIZE`.
pub const MAX_CYCLE_SIZE: u32 = 32;
/// `OOM_TASK_COMM_LEN`.
pub const TASK_COMM_LEN: usize = 16;
/// `OOM_FILENAME_LEN`.
pub const FILENAME_LEN: usize = 256;

/// Record types (`OOM_REC_*`).
pub mod rec {
    /// `struct oom_victim`.
    pub const VICTIM: u32 = 1;
    /// `struct oom_exec`.
    pub const EXEC: u32 = 2;
    /// `struct oom_exit`.
    pub const EXIT: u32 = 3;
    /// `struct oom_chunk` + payload.
    pub const CHUNK: u32 = 4;
    /// `struct oom_end`.
    pub const END: u32 = 5;
}

/// Bucket entry flags (`OOM_BF_*`).
pub mod entry_flags {
    /// PCs are `u32` offsets from the capture's `pc_base`.
    pub const PC32: u8 = 0x01;
    /// Counters are `u32`.
    pub const CNT32: u8 = 0x02;
    /// The stack was longer than `max_nstk` and was cut.
    pub const TRUNC: u8 = 0x04;
    /// The counters ran into a page that was not present and were read as zero
    /// there: an untouched anonymous page (Go never wrote them), or a swapped-out
    /// one.
    pub const ZERO_TAIL: u8 = 0x08;
}

/// End-record status bits (`OOM_END_*`).
pub mod end_status {
    /// `*mbuckets` could not be read.
    pub const HEAD_FAULT: u32 = 0x01;
    /// A bucket header could not be read: the list was cut there.
    pub const WALK_FAULT: u32 = 0x02;
    /// `max_buckets` was reached with more buckets left.
    pub const WALK_LIMIT: u32 = 0x04;
    /// The ring ran out of space and the walk stopped there: `ring_full_buckets`
    /// were read but not sent, the buckets after them were not visited.
    pub const RING_FULL: u32 = 0x08;
    /// `runtime.MemProfileRate` could not be read.
    pub const RATE_FAULT: u32 = 0x10;
    /// `runtime.mProfCycle` could not be read.
    pub const CYCLE_FAULT: u32 = 0x20;
    /// `allnext` loops back (a corrupt list): the walk stopped; entries up to the
    /// detection may repeat.
    pub const LOOP: u32 = 0x40;
    /// Buckets with a bad type or an impossible depth were left out (counted in
    /// `read_fault_buckets`).
    pub const INVALID: u32 = 0x80;
    /// The walk used up its time budget and stopped with buckets left (not counted).
    pub const TIME_BUDGET: u32 = 0x100;
    /// Walked at `sched_process_exit` (interrupts on), not in the SIGKILL delivery
    /// (interrupts off).
    pub const AT_EXIT: u32 = 0x200;
    /// The walk used up its steps with buckets left: `bpf_loop`'s [`MAX_LOOPS`],
    /// or the fallback walk's [`FALLBACK_MAX_STEPS`](super::FALLBACK_MAX_STEPS).
    pub const STEP_CAP: u32 = 0x400;
    /// The walk program could not be entered: nothing was walked.
    pub const NO_WALKER: u32 = 0x800;
}

/// Configuration flags (`OOM_CFG_*`).
pub mod config_flags {
    /// Walk in the first exiting thread's `sched_process_exit` (kernels that run it
    /// before `exit_mm`) instead of in the SIGKILL delivery.
    pub const WALK_AT_EXIT: u32 = 0x01;
}

/// Watch flags (`OOM_WATCH_*`).
pub mod watch_flags {
    /// Send PCs as `u32` offsets from `pc_base` when every PC of a bucket fits.
    pub const PC32: u32 = 0x01;
}

/// `struct oom_rec_hdr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawRecHdr {
    /// `OOM_REC_*`.
    pub kind: u32,
    /// Thread-group id the record is about.
    pub pid: u32,
}

/// `struct oom_victim`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawVictim {
    pub hdr: RawRecHdr,
    pub ts_ns: u64,
    pub trigger_pid: u32,
    pub trigger_tid: u32,
    pub trigger_cgroup_id: u64,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    pub uid: u32,
    pub oom_score_adj: i16,
    pub has_details: u8,
    pub pad: u8,
    pub comm: [u8; TASK_COMM_LEN],
    pub trigger_comm: [u8; TASK_COMM_LEN],
}

/// `struct oom_exec` (without the filename, which [`Exec`] borrows).
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawExec {
    pub hdr: RawRecHdr,
    pub ts_ns: u64,
    pub old_pid: u32,
    pub pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
    pub filename: [u8; FILENAME_LEN],
}

/// `struct oom_exit`.
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawExit {
    pub hdr: RawRecHdr,
    pub ts_ns: u64,
    pub tid: u32,
    pub pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

/// `struct oom_chunk`.
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawChunk {
    pub hdr: RawRecHdr,
    pub capture_id: u32,
    pub seq: u32,
    pub buckets: u32,
    pub len: u32,
}

/// `struct oom_end`.
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawEnd {
    pub hdr: RawRecHdr,
    pub capture_id: u32,
    pub tid: u32,
    pub start_ns: u64,
    pub elapsed_ns: u64,
    pub pc_base: u64,
    pub mem_profile_rate: u64,
    pub mprof_cycle: u32,
    pub status: u32,
    pub chunks: u32,
    pub buckets_seen: u32,
    pub buckets_emitted: u32,
    pub ring_full_buckets: u32,
    pub read_fault_buckets: u32,
    pub truncated_stacks: u32,
    pub bytes_emitted: u64,
    pub max_buckets: u32,
    pub max_nstk: u32,
    pub cycle_size: u32,
    pub zero_tail_buckets: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

/// `struct oom_watch`: the value of the `watched` map.
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawWatch {
    pub mbuckets: u64,
    pub mem_profile_rate: u64,
    pub mprof_cycle: u64,
    pub pc_base: u64,
    pub cycle_size: u32,
    pub max_nstk: u32,
    pub flags: u32,
    pub claimed: u32,
    pub walk_end_ns: u64,
    pub reserved: u64,
}

/// `struct oom_config`: the `.rodata` variable `oom_cfg`.
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawConfig {
    pub max_buckets: u32,
    pub abi_version: u32,
    pub walk_budget_ns: u64,
    pub flags: u32,
    pub pad: u32,
}

/// `struct oom_counters`: the `.bss` variable `oom_counters`.
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawCounters {
    pub captures: u64,
    pub lost_events: u64,
    pub lost_ends: u64,
    pub next_capture_id: u64,
    pub kills_during_walk: u64,
    pub kills_after_walk: u64,
    pub kill_marks: u64,
    pub unmarked_deliveries: u64,
    pub sigkills_marked: u64,
}

// The layout contract with oom_abi.h: sizes and every offset the C side documents.
const _: () = {
    assert!(size_of::<RawRecHdr>() == 8);
    assert!(size_of::<RawVictim>() == 112);
    assert!(offset_of!(RawVictim, ts_ns) == 8);
    assert!(offset_of!(RawVictim, trigger_cgroup_id) == 24);
    assert!(offset_of!(RawVictim, total_vm_kb) == 32);
    assert!(offset_of!(RawVictim, pgtables_kb) == 64);
    assert!(offset_of!(RawVictim, uid) == 72);
    assert!(offset_of!(RawVictim, oom_score_adj) == 76);
    assert!(offset_of!(RawVictim, has_details) == 78);
    assert!(offset_of!(RawVictim, comm) == 80);
    assert!(offset_of!(RawVictim, trigger_comm) == 96);
    assert!(size_of::<RawExec>() == 296);
    assert!(offset_of!(RawExec, old_pid) == 16);
    assert!(offset_of!(RawExec, comm) == 24);
    assert!(offset_of!(RawExec, filename) == 40);
    assert!(size_of::<RawExit>() == 40);
    assert!(offset_of!(RawExit, tid) == 16);
    assert!(offset_of!(RawExit, comm) == 24);
    assert!(size_of::<RawChunk>() == 24);
    assert!(offset_of!(RawChunk, len) == 20);
    assert!(size_of::<RawEnd>() == 120);
    assert!(offset_of!(RawEnd, start_ns) == 16);
    assert!(offset_of!(RawEnd, mem_profile_rate) == 40);
    assert!(offset_of!(RawEnd, mprof_cycle) == 48);
    assert!(offset_of!(RawEnd, status) == 52);
    assert!(offset_of!(RawEnd, chunks) == 56);
    assert!(offset_of!(RawEnd, truncated_stacks) == 76);
    assert!(offset_of!(RawEnd, bytes_emitted) == 80);
    assert!(offset_of!(RawEnd, cycle_size) == 96);
    assert!(offset_of!(RawEnd, comm) == 104);
    assert!(size_of::<RawWatch>() == 64);
    assert!(offset_of!(RawWatch, cycle_size) == 32);
    assert!(offset_of!(RawWatch, claimed) == 44);
    assert!(offset_of!(RawWatch, reserved) == 56);
    assert!(size_of::<RawConfig>() == 24);
    assert!(offset_of!(RawConfig, flags) == 16);
    assert!(offset_of!(RawConfig, walk_budget_ns) == 8);
    assert!(size_of::<RawCounters>() == 72);
    assert!(offset_of!(RawCounters, sigkills_marked) == 64);
};

/// A malformed record. Names the structure, the field and the byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside `structure` at `offset`; `needed` bytes were required.
    Truncated {
        /// The structure being read.
        structure: &'static str,
        /// Byte offset (from the start of the input) where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
    },
    /// A field holds a value the format does not allow.
    BadField {
        /// The structure being read.
        structure: &'static str,
        /// The field.
        field: &'static str,
        /// Byte offset of the field in the input.
        offset: usize,
        /// The value found.
        value: u64,
    },
    /// A caller buffer was too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated {
                structure,
                offset,
                needed,
            } => write!(
                f,
                "truncated {structure} at offset {offset}: {needed} bytes needed"
            ),
            Error::BadField {
                structure,
                field,
                offset,
                value,
            } => write!(
                f,
                "bad {structure}.{field} at offset {offset}: value {value:#x}"
            ),
            Error::BufferTooSmall { needed } => {
                write!(f, "buffer too small: {needed} bytes needed")
            }
        }
    }
}

impl core::error::Error for Error {}

/// Little-endian reads at fixed offsets of one structure; never panics.
#[derive(Clone, Copy)]
struct Fields<'a> {
    data: &'a [u8],
    structure: &'static str,
    base: usize,
}

impl<'a> Fields<'a> {
    fn new(
        data: &'a [u8],
        base: usize,
        len: usize,
        structure: &'static str,
    ) -> Result<Self, Error> {
        let trunc = Error::Truncated {
            structure,
            offset: base,
            needed: len,
        };
        let end = base.checked_add(len).ok_or(trunc)?;
        let data = data.get(base..end).ok_or(trunc)?;
        Ok(Self {
            data,
            structure,
            base,
        })
    }

    fn bytes<const N: usize>(&self, off: usize) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        let src = off
            .checked_add(N)
            .and_then(|end| self.data.get(off..end))
            .ok_or(Error::Truncated {
                structure: self.structure,
                offset: self.base + off,
                needed: N,
            })?;
        out.copy_from_slice(src);
        Ok(out)
    }

    fn u8(&self, off: usize) -> Result<u8, Error> {
        Ok(self.bytes::<1>(off)?[0])
    }
    fn u16(&self, off: usize) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.bytes(off)?))
    }
    fn u32(&self, off: usize) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.bytes(off)?))
    }
    fn u64(&self, off: usize) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.bytes(off)?))
    }
}

/// A fixed-size, NUL-padded kernel string (comm), trimmed at the first NUL.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Comm([u8; TASK_COMM_LEN]);

impl Comm {
    /// A comm from its NUL-padded bytes, as the kernel stores it.
    pub const fn from_bytes(b: [u8; TASK_COMM_LEN]) -> Self {
        Comm(b)
    }

    /// The bytes before the first NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let n = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        self.0.get(..n).unwrap_or(&[])
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}",
            core::str::from_utf8(self.as_bytes()).unwrap_or("?")
        )
    }
}

/// `oom/mark_victim`: the OOM killer picked `pid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Victim {
    /// Victim task id (the kernel's `task->pid`; usually the thread-group leader).
    pub pid: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// Thread-group id of the task that ran the OOM killer.
    pub trigger_pid: u32,
    /// Thread id of that task.
    pub trigger_tid: u32,
    /// Its cgroup v2 id, 0 without cgroup v2.
    pub trigger_cgroup_id: u64,
    /// Its comm.
    pub trigger_comm: Comm,
    /// Details from kernels whose tracepoint carries them (~6.9+), else `None`.
    pub details: Option<VictimDetails>,
}

/// The victim's memory figures from `oom/mark_victim` (~6.9+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VictimDetails {
    /// Victim comm.
    pub comm: Comm,
    /// Total virtual memory, kB.
    pub total_vm_kb: u64,
    /// Anonymous RSS, kB.
    pub anon_rss_kb: u64,
    /// File RSS, kB.
    pub file_rss_kb: u64,
    /// Shared-memory RSS, kB.
    pub shmem_rss_kb: u64,
    /// Page tables, kB.
    pub pgtables_kb: u64,
    /// Victim uid.
    pub uid: u32,
    /// Victim oom_score_adj.
    pub oom_score_adj: i16,
}

/// `sched/sched_process_exec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exec<'a> {
    /// Thread-group id after exec.
    pub pid: u32,
    /// `bpf_ktime_get_ns`.
    pub ts_ns: u64,
    /// Thread id that called exec (differs from `pid` when a non-leader thread did).
    pub old_pid: u32,
    /// New comm.
    pub comm: Comm,
    /// The path passed to exec (possibly truncated), without the NUL.
    pub filename: &'a [u8],
}

/// `sched/sched_process_exit` of a watched process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Thread-group id.
    pub pid: u32,
    /// `bpf_ktime_get_ns`.
    pub ts_ns: u64,
    /// The exiting (last) thread.
    pub tid: u32,
    /// Comm.
    pub comm: Comm,
}

/// A chunk of bucket entries of one capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Thread-group id of the victim.
    pub pid: u32,
    /// Capture id.
    pub capture_id: u32,
    /// Sequence number within the capture, from 0.
    pub seq: u32,
    /// Entries in the payload.
    pub buckets: u32,
    /// The entries ([`Entries`]).
    pub payload: &'a [u8],
}

/// End of a capture: what was read and what was not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    /// Thread-group id of the victim.
    pub pid: u32,
    /// Capture id.
    pub capture_id: u32,
    /// Thread whose SIGKILL delivery ran the walk.
    pub tid: u32,
    /// `bpf_ktime_get_ns` at walk start.
    pub start_ns: u64,
    /// Walk duration in the kernel.
    pub elapsed_ns: u64,
    /// Base of `u32` PC offsets.
    pub pc_base: u64,
    /// `runtime.MemProfileRate` read after the walk (0 if unknown or unreadable).
    pub mem_profile_rate: u64,
    /// `runtime.mProfCycle.value` read after the walk.
    pub mprof_cycle: u32,
    /// `OOM_END_*` bits ([`end_status`]).
    pub status: u32,
    /// Chunks emitted.
    pub chunks: u32,
    /// List nodes visited, captured or not.
    pub buckets_seen: u32,
    /// Entries emitted.
    pub buckets_emitted: u32,
    /// Buckets dropped because the ring was full.
    pub ring_full_buckets: u32,
    /// Buckets whose stack or counters could not be read.
    pub read_fault_buckets: u32,
    /// Entries whose stack was cut to `max_nstk`.
    pub truncated_stacks: u32,
    /// Payload bytes emitted.
    pub bytes_emitted: u64,
    /// Walk limit in force.
    pub max_buckets: u32,
    /// Stack limit in force.
    pub max_nstk: u32,
    /// Go memRecordCycle size used (32 or 16).
    pub cycle_size: u32,
    /// Entries whose counters were partly on a non-present page, read as zero.
    pub zero_tail_buckets: u32,
    /// Comm of the victim thread.
    pub comm: Comm,
}

impl End {
    /// True when every bucket in the list was captured.
    pub fn is_complete(&self) -> bool {
        self.status
            & (end_status::HEAD_FAULT
                | end_status::WALK_FAULT
                | end_status::WALK_LIMIT
                | end_status::RING_FULL
                | end_status::LOOP
                | end_status::INVALID
                | end_status::TIME_BUDGET
                | end_status::STEP_CAP
                | end_status::NO_WALKER)
            == 0
            && self.read_fault_buckets == 0
            && self.buckets_emitted == self.buckets_seen
    }
}

/// One ring-buffer record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// `OOM_REC_VICTIM`.
    Victim(Victim),
    /// `OOM_REC_EXEC`.
    Exec(Exec<'a>),
    /// `OOM_REC_EXIT`.
    Exit(Exit),
    /// `OOM_REC_CHUNK`.
    Chunk(Chunk<'a>),
    /// `OOM_REC_END`.
    End(End),
}

fn comm(f: &Fields<'_>, off: usize) -> Result<Comm, Error> {
    Ok(Comm(f.bytes::<TASK_COMM_LEN>(off)?))
}

impl<'a> Record<'a> {
    /// Parses one ring-buffer record (the payload after the ring's own 8-byte header).
    ///
    /// Returns an error if the record is shorter than its type requires, its type is
    /// unknown, or a chunk's `len` exceeds the record.
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        let h = Fields::new(data, 0, size_of::<RawRecHdr>(), "oom_rec_hdr")?;
        let kind = h.u32(0)?;
        let pid = h.u32(4)?;
        match kind {
            rec::VICTIM => {
                let f = Fields::new(data, 0, size_of::<RawVictim>(), "oom_victim")?;
                let details = match f.u8(offset_of!(RawVictim, has_details))? {
                    0 => None,
                    _ => Some(VictimDetails {
                        comm: comm(&f, offset_of!(RawVictim, comm))?,
                        total_vm_kb: f.u64(offset_of!(RawVictim, total_vm_kb))?,
                        anon_rss_kb: f.u64(offset_of!(RawVictim, anon_rss_kb))?,
                        file_rss_kb: f.u64(offset_of!(RawVictim, file_rss_kb))?,
                        shmem_rss_kb: f.u64(offset_of!(RawVictim, shmem_rss_kb))?,
                        pgtables_kb: f.u64(offset_of!(RawVictim, pgtables_kb))?,
                        uid: f.u32(offset_of!(RawVictim, uid))?,
                        oom_score_adj: f.u16(offset_of!(RawVictim, oom_score_adj))? as i16,
                    }),
                };
                Ok(Record::Victim(Victim {
                    pid,
                    ts_ns: f.u64(offset_of!(RawVictim, ts_ns))?,
                    trigger_pid: f.u32(offset_of!(RawVictim, trigger_pid))?,
                    trigger_tid: f.u32(offset_of!(RawVictim, trigger_tid))?,
                    trigger_cgroup_id: f.u64(offset_of!(RawVictim, trigger_cgroup_id))?,
                    trigger_comm: comm(&f, offset_of!(RawVictim, trigger_comm))?,
                    details,
                }))
            }
            rec::EXEC => {
                let f = Fields::new(data, 0, size_of::<RawExec>(), "oom_exec")?;
                let name = f.data.get(offset_of!(RawExec, filename)..).unwrap_or(&[]);
                let n = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                Ok(Record::Exec(Exec {
                    pid,
                    ts_ns: f.u64(offset_of!(RawExec, ts_ns))?,
                    old_pid: f.u32(offset_of!(RawExec, old_pid))?,
                    comm: comm(&f, offset_of!(RawExec, comm))?,
                    filename: name.get(..n).unwrap_or(&[]),
                }))
            }
            rec::EXIT => {
                let f = Fields::new(data, 0, size_of::<RawExit>(), "oom_exit")?;
                Ok(Record::Exit(Exit {
                    pid,
                    ts_ns: f.u64(offset_of!(RawExit, ts_ns))?,
                    tid: f.u32(offset_of!(RawExit, tid))?,
                    comm: comm(&f, offset_of!(RawExit, comm))?,
                }))
            }
            rec::CHUNK => {
                let f = Fields::new(data, 0, size_of::<RawChunk>(), "oom_chunk")?;
                let len = f.u32(offset_of!(RawChunk, len))? as usize;
                let start = size_of::<RawChunk>();
                let payload = data.get(start..start + len).ok_or(Error::BadField {
                    structure: "oom_chunk",
                    field: "len",
                    offset: offset_of!(RawChunk, len),
                    value: len as u64,
                })?;
                Ok(Record::Chunk(Chunk {
                    pid,
                    capture_id: f.u32(offset_of!(RawChunk, capture_id))?,
                    seq: f.u32(offset_of!(RawChunk, seq))?,
                    buckets: f.u32(offset_of!(RawChunk, buckets))?,
                    payload,
                }))
            }
            rec::END => {
                let f = Fields::new(data, 0, size_of::<RawEnd>(), "oom_end")?;
                Ok(Record::End(End {
                    pid,
                    capture_id: f.u32(offset_of!(RawEnd, capture_id))?,
                    tid: f.u32(offset_of!(RawEnd, tid))?,
                    start_ns: f.u64(offset_of!(RawEnd, start_ns))?,
                    elapsed_ns: f.u64(offset_of!(RawEnd, elapsed_ns))?,
                    pc_base: f.u64(offset_of!(RawEnd, pc_base))?,
                    mem_profile_rate: f.u64(offset_of!(RawEnd, mem_profile_rate))?,
                    mprof_cycle: f.u32(offset_of!(RawEnd, mprof_cycle))?,
                    status: f.u32(offset_of!(RawEnd, status))?,
                    chunks: f.u32(offset_of!(RawEnd, chunks))?,
                    buckets_seen: f.u32(offset_of!(RawEnd, buckets_seen))?,
                    buckets_emitted: f.u32(offset_of!(RawEnd, buckets_emitted))?,
                    ring_full_buckets: f.u32(offset_of!(RawEnd, ring_full_buckets))?,
                    read_fault_buckets: f.u32(offset_of!(RawEnd, read_fault_buckets))?,
                    truncated_stacks: f.u32(offset_of!(RawEnd, truncated_stacks))?,
                    bytes_emitted: f.u64(offset_of!(RawEnd, bytes_emitted))?,
                    max_buckets: f.u32(offset_of!(RawEnd, max_buckets))?,
                    max_nstk: f.u32(offset_of!(RawEnd, max_nstk))?,
                    cycle_size: f.u32(offset_of!(RawEnd, cycle_size))?,
                    zero_tail_buckets: f.u32(offset_of!(RawEnd, zero_tail_buckets))?,
                    comm: comm(&f, offset_of!(RawEnd, comm))?,
                }))
            }
            other => Err(Error::BadField {
                structure: "oom_rec_hdr",
                field: "type",
                offset: 0,
                value: other as u64,
            }),
        }
    }
}

/// Encodes a `struct oom_watch` (the `watched` map value) into `out`.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of the C struct"
)]
pub fn encode_watch(
    out: &mut [u8; size_of::<RawWatch>()],
    mbuckets: u64,
    mem_profile_rate: u64,
    mprof_cycle: u64,
    pc_base: u64,
    cycle_size: u32,
    max_nstk: u32,
    flags: u32,
) {
    *out = [0; size_of::<RawWatch>()];
    let mut put = |off: usize, b: &[u8]| {
        if let Some(dst) = out.get_mut(off..off + b.len()) {
            dst.copy_from_slice(b);
        }
    };
    put(offset_of!(RawWatch, mbuckets), &mbuckets.to_le_bytes());
    put(
        offset_of!(RawWatch, mem_profile_rate),
        &mem_profile_rate.to_le_bytes(),
    );
    put(
        offset_of!(RawWatch, mprof_cycle),
        &mprof_cycle.to_le_bytes(),
    );
    put(offset_of!(RawWatch, pc_base), &pc_base.to_le_bytes());
    put(offset_of!(RawWatch, cycle_size), &cycle_size.to_le_bytes());
    put(offset_of!(RawWatch, max_nstk), &max_nstk.to_le_bytes());
    put(offset_of!(RawWatch, flags), &flags.to_le_bytes());
}

/// Encodes a `struct oom_config` (the `.rodata` variable `oom_cfg`).
///
/// `walk_budget_ns` 0 means no time limit; `flags` are [`config_flags`].
pub fn encode_config(
    max_buckets: u32,
    walk_budget_ns: u64,
    flags: u32,
) -> [u8; size_of::<RawConfig>()] {
    let mut out = [0u8; size_of::<RawConfig>()];
    for (off, v) in [
        (offset_of!(RawConfig, max_buckets), max_buckets),
        (offset_of!(RawConfig, abi_version), ABI_VERSION),
        (offset_of!(RawConfig, flags), flags),
    ] {
        if let Some(dst) = out.get_mut(off..off + 4) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    }
    let off = offset_of!(RawConfig, walk_budget_ns);
    if let Some(dst) = out.get_mut(off..off + 8) {
        dst.copy_from_slice(&walk_budget_ns.to_le_bytes());
    }
    out
}

/// The `.bss` counters, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Captures started.
    pub captures: u64,
    /// Victim/exec/exit records refused by a full ring.
    pub lost_events: u64,
    /// End records refused by a full ring.
    pub lost_ends: u64,
    /// SIGKILL deliveries to other threads of a process while its walk ran.
    pub kills_during_walk: u64,
    /// SIGKILL deliveries to other threads of a process after its walk ended.
    pub kills_after_walk: u64,
    /// Deliveries (or exits) of a watched process's task a SIGKILL was generated
    /// for: each walks, unless a walk of that process ran already.
    pub kill_marks: u64,
    /// Deliveries (or exits) of a watched process's tasks without a mark: the other
    /// threads of a killed process, and every thread of an exit_group or exec.
    pub unmarked_deliveries: u64,
    /// SIGKILLs generated on the host (any task).
    pub sigkills_marked: u64,
}

impl Counters {
    /// Decodes `struct oom_counters`.
    ///
    /// Returns an error if `data` is shorter than the structure.
    pub fn parse(data: &[u8]) -> Result<Self, Error> {
        let f = Fields::new(data, 0, size_of::<RawCounters>(), "oom_counters")?;
        Ok(Self {
            captures: f.u64(offset_of!(RawCounters, captures))?,
            lost_events: f.u64(offset_of!(RawCounters, lost_events))?,
            lost_ends: f.u64(offset_of!(RawCounters, lost_ends))?,
            kills_during_walk: f.u64(offset_of!(RawCounters, kills_during_walk))?,
            kills_after_walk: f.u64(offset_of!(RawCounters, kills_after_walk))?,
            kill_marks: f.u64(offset_of!(RawCounters, kill_marks))?,
            unmarked_deliveries: f.u64(offset_of!(RawCounters, unmarked_deliveries))?,
            sigkills_marked: f.u64(offset_of!(RawCounters, sigkills_marked))?,
        })
    }
}

/// `OOM_GROWTH_MAX_DEPTH`: deepest user stack the growth sampler keeps.
pub const GROWTH_MAX_DEPTH: usize = 127;
/// `OOM_GROWTH_DEFAULT_ENTRIES`: default entries of the `growth` map.
pub const GROWTH_DEFAULT_ENTRIES: u32 = 4096;
/// `OOM_GROWTH_DEFAULT_PERIOD`: default sample period, in page faults.
pub const GROWTH_DEFAULT_PERIOD: u64 = 64;

/// `struct oom_growth_key`: key of the growth sampler's `growth` map.
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawGrowthKey {
    pub tgid: u32,
    pub depth: u32,
    pub hash: u64,
}

/// `struct oom_growth_val`: value of the `growth` map.
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawGrowthVal {
    pub samples: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    pub pcs: [u64; GROWTH_MAX_DEPTH],
}

/// `struct oom_growth_config`: the growth object's `.rodata` variable `growth_cfg`.
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawGrowthConfig {
    pub tgid: u32,
    pub abi_version: u32,
}

/// `struct oom_growth_counters`: the growth object's `.bss` variable `growth_counters`.
#[repr(C)]
#[derive(Debug)]
#[expect(missing_docs, reason = "field docs are in oom_abi.h")]
pub struct RawGrowthCounters {
    pub samples: u64,
    pub new_stacks: u64,
    pub dropped_full: u64,
    pub no_stack: u64,
    pub kernel: u64,
}

const _: () = {
    assert!(size_of::<RawGrowthKey>() == 16);
    assert!(offset_of!(RawGrowthKey, depth) == 4);
    assert!(offset_of!(RawGrowthKey, hash) == 8);
    assert!(size_of::<RawGrowthVal>() == 1040);
    assert!(offset_of!(RawGrowthVal, first_ns) == 8);
    assert!(offset_of!(RawGrowthVal, last_ns) == 16);
    assert!(offset_of!(RawGrowthVal, pcs) == 24);
    assert!(size_of::<RawGrowthConfig>() == 8);
    assert!(offset_of!(RawGrowthConfig, abi_version) == 4);
    assert!(size_of::<RawGrowthCounters>() == 40);
    assert!(offset_of!(RawGrowthCounters, kernel) == 32);
};

/// Encodes a `struct oom_growth_config`: sample only `tgid` (0 = every process).
pub fn encode_growth_config(tgid: u32) -> [u8; size_of::<RawGrowthConfig>()] {
    let mut out = [0u8; size_of::<RawGrowthConfig>()];
    for (off, v) in [
        (offset_of!(RawGrowthConfig, tgid), tgid),
        (offset_of!(RawGrowthConfig, abi_version), ABI_VERSION),
    ] {
        if let Some(dst) = out.get_mut(off..off + 4) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// One entry of the `growth` map, decoded: a process's stack and its samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrowthEntry {
    /// Process.
    pub tgid: u32,
    /// Samples that hit the stack.
    pub samples: u64,
    /// CLOCK_MONOTONIC of the first sample.
    pub first_ns: u64,
    /// CLOCK_MONOTONIC of the latest sample.
    pub last_ns: u64,
    /// Frames in `pcs` (1..=[`GROWTH_MAX_DEPTH`]).
    pub depth: usize,
    /// Leaf first: the faulting instruction, then return addresses.
    pub pcs: [u64; GROWTH_MAX_DEPTH],
}

impl GrowthEntry {
    /// Decodes a key and value of the `growth` map.
    ///
    /// Returns an error if either is shorter than its structure or the depth is 0 or
    /// more than [`GROWTH_MAX_DEPTH`].
    pub fn parse(key: &[u8], value: &[u8]) -> Result<Self, Error> {
        let k = Fields::new(key, 0, size_of::<RawGrowthKey>(), "oom_growth_key")?;
        let v = Fields::new(value, 0, size_of::<RawGrowthVal>(), "oom_growth_val")?;
        let depth = k.u32(offset_of!(RawGrowthKey, depth))?;
        if depth == 0 || depth as usize > GROWTH_MAX_DEPTH {
            return Err(Error::BadField {
                structure: "oom_growth_key",
                field: "depth",
                offset: offset_of!(RawGrowthKey, depth),
                value: u64::from(depth),
            });
        }
        let mut pcs = [0u64; GROWTH_MAX_DEPTH];
        let base = offset_of!(RawGrowthVal, pcs);
        for (i, pc) in pcs.iter_mut().enumerate().take(depth as usize) {
            *pc = v.u64(base + 8 * i)?;
        }
        Ok(Self {
            tgid: k.u32(offset_of!(RawGrowthKey, tgid))?,
            samples: v.u64(offset_of!(RawGrowthVal, samples))?,
            first_ns: v.u64(offset_of!(RawGrowthVal, first_ns))?,
            last_ns: v.u64(offset_of!(RawGrowthVal, last_ns))?,
            depth: depth as usize,
            pcs,
        })
    }

    /// The stack, leaf first.
    pub fn stack(&self) -> &[u64] {
        self.pcs.get(..self.depth).unwrap_or(&self.pcs)
    }
}

/// The growth object's `.bss` counters, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrowthCounters {
    /// Samples of processes in scope.
    pub samples: u64,
    /// Stacks inserted into the map.
    pub new_stacks: u64,
    /// Samples of a new stack that the full map refused.
    pub dropped_full: u64,
    /// Samples without a user stack.
    pub no_stack: u64,
    /// Samples of kernel threads.
    pub kernel: u64,
}

impl GrowthCounters {
    /// Decodes `struct oom_growth_counters`.
    ///
    /// Returns an error if `data` is shorter than the structure.
    pub fn parse(data: &[u8]) -> Result<Self, Error> {
        let f = Fields::new(
            data,
            0,
            size_of::<RawGrowthCounters>(),
            "oom_growth_counters",
        )?;
        Ok(Self {
            samples: f.u64(offset_of!(RawGrowthCounters, samples))?,
            new_stacks: f.u64(offset_of!(RawGrowthCounters, new_stacks))?,
            dropped_full: f.u64(offset_of!(RawGrowthCounters, dropped_full))?,
            no_stack: f.u64(offset_of!(RawGrowthCounters, no_stack))?,
            kernel: f.u64(offset_of!(RawGrowthCounters, kernel))?,
        })
    }
}

/// The stack of one entry, as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pcs<'a> {
    /// `u32` offsets from `base`.
    Offsets { words: &'a [u8], base: u64 },
    /// Absolute `u64` PCs.
    Absolute(&'a [u8]),
}

/// One bucket entry of a chunk.
///
/// The entry carries the stack's innermost `nstk - shared` PCs; the outermost
/// `shared` PCs are those of the previous entry of the capture. Expand entries in
/// order with a [`StackExpander`] to get whole stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Byte offset of the entry in the payload.
    pub offset: usize,
    /// Allocation size.
    pub size: u64,
    /// `OOM_BF_*` flags ([`entry_flags`]).
    pub flags: u8,
    /// The counters; cycles the kernel omitted are zero.
    pub record: MemRecord,
    nstk: usize,
    shared: usize,
    own: Pcs<'a>,
}

impl<'a> Entry<'a> {
    /// Number of PCs of the whole stack.
    pub fn nstk(&self) -> usize {
        self.nstk
    }

    /// Outermost PCs shared with the previous entry.
    pub fn shared(&self) -> usize {
        self.shared
    }

    /// True when the kernel cut the stack to `max_nstk`.
    pub fn truncated(&self) -> bool {
        self.flags & entry_flags::TRUNC != 0
    }

    /// The `i`th PC carried by this entry (leaf first), as a runtime address.
    pub fn own_pc(&self, i: usize) -> Option<u64> {
        match self.own {
            Pcs::Offsets { words, base } => {
                let b = words.get(i.checked_mul(4)?..)?.get(..4)?;
                let off = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                Some(base.wrapping_add(u64::from(off)))
            }
            Pcs::Absolute(words) => {
                let b = words.get(i.checked_mul(8)?..)?.get(..8)?;
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                Some(u64::from_le_bytes(w))
            }
        }
    }

    /// The PCs carried by this entry, leaf first (`nstk - shared` of them).
    pub fn own_pcs(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.nstk - self.shared).filter_map(move |i| self.own_pc(i))
    }
}

/// Rebuilds whole stacks from a capture's entries, which must be fed in order
/// (each may share its outer frames with the one before). Holds the previous stack
/// (8 KiB), no allocation.
#[derive(Clone, Debug)]
pub struct StackExpander {
    prev: [u64; MAX_NSTK as usize],
    len: usize,
}

impl Default for StackExpander {
    fn default() -> Self {
        Self::new()
    }
}

impl StackExpander {
    /// An expander at the start of a capture.
    pub const fn new() -> Self {
        Self {
            prev: [0; MAX_NSTK as usize],
            len: 0,
        }
    }

    /// Writes the whole stack of `e` into `buf` (little-endian u64 PCs, leaf first).
    ///
    /// Returns an error if `buf` is shorter than `8 * nstk` bytes, or `e` shares
    /// more frames than the previous entry had.
    pub fn expand<'b>(&mut self, e: &Entry<'_>, buf: &'b mut [u8]) -> Result<Stack<'b>, Error> {
        let needed = e.nstk * 8;
        if e.shared > self.len {
            return Err(Error::BadField {
                structure: "oom bucket entry",
                field: "shared",
                offset: e.offset + 10,
                value: e.shared as u64,
            });
        }
        let dst = buf
            .get_mut(..needed)
            .ok_or(Error::BufferTooSmall { needed })?;
        let own = e.nstk - e.shared;
        let tail = self.prev.get(self.len - e.shared..self.len).unwrap_or(&[]);
        for (i, slot) in dst.chunks_exact_mut(8).enumerate() {
            let pc = if i < own {
                e.own_pc(i).unwrap_or(0)
            } else {
                tail.get(i - own).copied().unwrap_or(0)
            };
            slot.copy_from_slice(&pc.to_le_bytes());
        }
        for (p, w) in self.prev.iter_mut().zip(dst.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            *p = u64::from_le_bytes(b);
        }
        self.len = e.nstk;
        Stack::new(dst).ok_or(Error::BufferTooSmall { needed })
    }

    /// Like [`StackExpander::expand`], as a [`Bucket`].
    ///
    /// Returns the errors of [`StackExpander::expand`].
    pub fn bucket_into<'b>(
        &mut self,
        e: &Entry<'_>,
        buf: &'b mut [u8],
    ) -> Result<Bucket<'b>, Error> {
        let stack = self.expand(e, buf)?;
        Ok(Bucket {
            size: e.size,
            stack,
            record: e.record,
        })
    }
}

/// Iterator over the bucket entries of a chunk payload. Stops after the first error.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    data: &'a [u8],
    pos: usize,
    pc_base: u64,
    failed: bool,
}

impl<'a> Entries<'a> {
    /// Iterates `payload` (a [`Chunk`]'s), resolving `u32` PCs against `pc_base`
    /// (from the capture's [`End`]).
    pub fn new(payload: &'a [u8], pc_base: u64) -> Self {
        Self {
            data: payload,
            pos: 0,
            pc_base,
            failed: false,
        }
    }

    fn entry(&mut self) -> Result<Entry<'a>, Error> {
        const S: &str = "oom bucket entry";
        let start = self.pos;
        let h = Fields::new(self.data, start, ENTRY_HDR_SIZE, S)?;
        let size = h.u64(0)?;
        let nstk = h.u16(8)? as usize;
        let shared = h.u16(10)? as usize;
        let cycles = h.u8(12)?;
        let flags = h.u8(13)?;
        if nstk > MAX_NSTK as usize {
            return Err(Error::BadField {
                structure: S,
                field: "nstk",
                offset: start + 8,
                value: nstk as u64,
            });
        }
        if shared > nstk {
            return Err(Error::BadField {
                structure: S,
                field: "shared",
                offset: start + 10,
                value: shared as u64,
            });
        }
        if cycles > 0xf {
            return Err(Error::BadField {
                structure: S,
                field: "cycles",
                offset: start + 12,
                value: cycles.into(),
            });
        }
        if flags
            & !(entry_flags::PC32
                | entry_flags::CNT32
                | entry_flags::TRUNC
                | entry_flags::ZERO_TAIL)
            != 0
        {
            return Err(Error::BadField {
                structure: S,
                field: "flags",
                offset: start + 13,
                value: flags.into(),
            });
        }
        let pc_width = if flags & entry_flags::PC32 != 0 { 4 } else { 8 };
        let cnt_width = if flags & entry_flags::CNT32 != 0 {
            4
        } else {
            8
        };
        let stk_start = start + ENTRY_HDR_SIZE;
        let stk = Fields::new(
            self.data,
            stk_start,
            (nstk - shared) * pc_width,
            "oom bucket entry stack",
        )?;
        let pcs = if pc_width == 4 {
            Pcs::Offsets {
                words: stk.data,
                base: self.pc_base,
            }
        } else {
            Pcs::Absolute(stk.data)
        };
        let cnt_start = stk_start + (nstk - shared) * pc_width;
        let ncycles = cycles.count_ones() as usize;
        let cnt = Fields::new(
            self.data,
            cnt_start,
            ncycles * 2 * cnt_width,
            "oom bucket entry counters",
        )?;
        let mut all = [Cycle::default(); 4];
        let mut off = 0;
        for (i, c) in all.iter_mut().enumerate() {
            if cycles & (1 << i) == 0 {
                continue;
            }
            if cnt_width == 4 {
                c.allocs = cnt.u32(off)?.into();
                c.frees = cnt.u32(off + 4)?.into();
            } else {
                c.allocs = cnt.u64(off)?;
                c.frees = cnt.u64(off + 8)?;
            }
            off += 2 * cnt_width;
        }
        self.pos = cnt_start + ncycles * 2 * cnt_width;
        Ok(Entry {
            offset: start,
            size,
            flags,
            record: MemRecord {
                active: all[0],
                future: [all[1], all[2], all[3]],
            },
            nstk,
            shared,
            own: pcs,
        })
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let r = self.entry();
        self.failed = r.is_err();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A growth key (tgid 4242, depth 3, hash 0x1122) and value (5 samples, first
    /// 100 ns, last 900 ns, PCs 0x401000, 0x402000, 0x403000, the rest zero).
    fn growth_pair() -> ([u8; 16], [u8; 1040]) {
        let mut k = [0u8; 16];
        k[0..4].copy_from_slice(&4242u32.to_le_bytes()); // tgid
        k[4..8].copy_from_slice(&3u32.to_le_bytes()); // depth
        k[8..16].copy_from_slice(&0x1122u64.to_le_bytes()); // hash
        let mut v = [0u8; 1040];
        v[0..8].copy_from_slice(&5u64.to_le_bytes()); // samples
        v[8..16].copy_from_slice(&100u64.to_le_bytes()); // first_ns
        v[16..24].copy_from_slice(&900u64.to_le_bytes()); // last_ns
        for (i, pc) in [0x401000u64, 0x402000, 0x403000].iter().enumerate() {
            v[24 + 8 * i..32 + 8 * i].copy_from_slice(&pc.to_le_bytes()); // pcs[i]
        }
        (k, v)
    }

    #[test]
    fn growth_entry_parses() {
        let (k, v) = growth_pair();
        let e = GrowthEntry::parse(&k, &v).unwrap();
        assert_eq!(
            (e.tgid, e.samples, e.first_ns, e.last_ns),
            (4242, 5, 100, 900)
        );
        assert_eq!(e.stack(), &[0x401000, 0x402000, 0x403000]);
    }

    #[test]
    fn growth_entry_rejects_bad_depth_and_short_input() {
        let (mut k, v) = growth_pair();
        assert!(matches!(
            GrowthEntry::parse(&k[..15], &v),
            Err(Error::Truncated {
                structure: "oom_growth_key",
                ..
            })
        ));
        assert!(matches!(
            GrowthEntry::parse(&k, &v[..1039]),
            Err(Error::Truncated {
                structure: "oom_growth_val",
                ..
            })
        ));
        k[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            GrowthEntry::parse(&k, &v),
            Err(Error::BadField {
                field: "depth",
                value: 0,
                ..
            })
        ));
        k[4..8].copy_from_slice(&128u32.to_le_bytes());
        assert!(matches!(
            GrowthEntry::parse(&k, &v),
            Err(Error::BadField {
                field: "depth",
                value: 128,
                ..
            })
        ));
    }

    #[test]
    fn growth_config_and_counters() {
        let c = encode_growth_config(77);
        assert_eq!(&c[0..4], &77u32.to_le_bytes()); // tgid
        assert_eq!(&c[4..8], &ABI_VERSION.to_le_bytes()); // abi_version
        let mut b = [0u8; 40];
        for (i, x) in b.chunks_exact_mut(8).enumerate() {
            x.copy_from_slice(&(i as u64 + 1).to_le_bytes());
        }
        let g = GrowthCounters::parse(&b).unwrap();
        assert_eq!(
            (
                g.samples,
                g.new_stacks,
                g.dropped_full,
                g.no_stack,
                g.kernel
            ),
            (1, 2, 3, 4, 5)
        );
        assert!(GrowthCounters::parse(&b[..39]).is_err());
    }

    /// Appends little-endian bytes of `v` (its low `n` bytes) to `buf` at `*len`.
    fn put(buf: &mut [u8], len: &mut usize, v: u64, n: usize) {
        buf[*len..*len + n].copy_from_slice(&v.to_le_bytes()[..n]);
        *len += n;
    }

    /// Writes an entry header: size, nstk, shared, cycles, flags.
    fn hdr(b: &mut [u8], n: &mut usize, size: u64, nstk: u64, shared: u64, cycles: u64, flags: u8) {
        put(b, n, size, 8);
        put(b, n, nstk, 2);
        put(b, n, shared, 2);
        put(b, n, cycles, 1);
        put(b, n, flags.into(), 1);
    }

    #[test]
    fn entry_pc32_cnt32_two_cycles() {
        let mut b = [0u8; 64];
        let mut n = 0;
        // size 1 MiB, 2 PCs, none shared, cycles active + future[1], u32 PCs and counts.
        hdr(
            &mut b,
            &mut n,
            1 << 20,
            2,
            0,
            0b0101,
            entry_flags::PC32 | entry_flags::CNT32,
        );
        put(&mut b, &mut n, 0x10, 4); // pc0 offset
        put(&mut b, &mut n, 0x20, 4); // pc1 offset
        put(&mut b, &mut n, 5, 4); // active.allocs
        put(&mut b, &mut n, 1, 4); // active.frees
        put(&mut b, &mut n, 7, 4); // future[1].allocs
        put(&mut b, &mut n, 0, 4); // future[1].frees
        let mut it = Entries::new(&b[..n], 0x400000);
        let e = it.next().unwrap().unwrap();
        assert!(it.next().is_none());
        assert_eq!(e.size, 1 << 20);
        assert_eq!(
            e.own_pcs().collect::<heapless_vec::V>().0,
            [0x400010, 0x400020, 0, 0]
        );
        assert_eq!(
            e.record.active,
            Cycle {
                allocs: 5,
                frees: 1
            }
        );
        assert_eq!(e.record.future[0], Cycle::default());
        assert_eq!(
            e.record.future[1],
            Cycle {
                allocs: 7,
                frees: 0
            }
        );
        let mut x = StackExpander::new();
        let mut small = [0u8; 8];
        assert_eq!(
            x.expand(&e, &mut small),
            Err(Error::BufferTooSmall { needed: 16 })
        );
        let mut buf = [0u8; 16];
        let bucket = x.bucket_into(&e, &mut buf).unwrap();
        assert_eq!(bucket.stack.get(1), Some(0x400020));
    }

    #[test]
    fn shared_suffix_comes_from_the_previous_entry() {
        let mut b = [0u8; 96];
        let mut n = 0;
        // First: 3 PCs a, b, c (leaf first).
        hdr(&mut b, &mut n, 16, 3, 0, 0, entry_flags::PC32);
        for pc in [1, 2, 3] {
            put(&mut b, &mut n, pc, 4);
        }
        // Second: 4 PCs, the outer 2 shared (b, c): own x, y.
        hdr(&mut b, &mut n, 32, 4, 2, 0, entry_flags::PC32);
        for pc in [8, 9] {
            put(&mut b, &mut n, pc, 4);
        }
        // Third: shares 3 of the second's 4 (y, b, c), own z.
        hdr(&mut b, &mut n, 48, 4, 3, 0, entry_flags::PC32);
        put(&mut b, &mut n, 7, 4);
        let mut x = StackExpander::new();
        let mut buf = [0u8; 64];
        let mut got = [[0u64; 4]; 3];
        for (i, e) in Entries::new(&b[..n], 0x1000).enumerate() {
            let e = e.unwrap();
            let st = x.expand(&e, &mut buf).unwrap();
            for (j, pc) in st.iter().enumerate() {
                got[i][j] = pc;
            }
        }
        assert_eq!(got[0], [0x1001, 0x1002, 0x1003, 0]);
        assert_eq!(got[1], [0x1008, 0x1009, 0x1002, 0x1003]);
        assert_eq!(got[2], [0x1007, 0x1009, 0x1002, 0x1003]);
        // Sharing more than the previous stack had is an error naming the field.
        let e = Entries::new(&b[26..n], 0x1000).next().unwrap().unwrap(); // the second entry alone
        assert!(matches!(
            StackExpander::new().expand(&e, &mut buf),
            Err(Error::BadField {
                field: "shared",
                ..
            })
        ));
    }

    /// Three entries byte for byte as the kernel wrote them in a Go 1.27 capture of
    /// `tests/go/deep -depth 300 -oom` at the default profstackdepth (Go cut the stacks
    /// at 130 frames, so they end in `main.descend` repeated, not in goexit); in the
    /// capture other entries lay between them. One stack sent whole, one that shares
    /// every frame with it, and the leak, which shares all but its 5 innermost frames.
    /// The counters follow the frames the entry carries, not its `nstk`.
    #[test]
    fn deep_truncated_stacks_share_outer_frames_and_keep_their_counters() {
        const DESCEND: u64 = 0xe7ee9; // main.descend's recursive call, as offset
        let mut b = [0u8; 700];
        let mut n = 0;
        // growslice of the leak's slice: 130 PCs of its own, future[1] = 1 alloc.
        hdr(
            &mut b,
            &mut n,
            4096,
            130,
            0,
            0b0100,
            entry_flags::PC32 | entry_flags::CNT32,
        );
        for pc in [0x7d1cc, 0x80987, 0xe820e, 0xe7edb] {
            put(&mut b, &mut n, pc, 4); // mallocgc, growslice, main.main.func1, descend
        }
        for _ in 0..126 {
            put(&mut b, &mut n, DESCEND, 4);
        }
        put(&mut b, &mut n, 1, 4); // future[1].allocs
        put(&mut b, &mut n, 0, 4); // future[1].frees
                                   // The same stack with another size: all 130 shared, no PC carried.
        hdr(
            &mut b,
            &mut n,
            1792,
            130,
            130,
            0b0010,
            entry_flags::PC32 | entry_flags::CNT32,
        );
        put(&mut b, &mut n, 1, 4); // future[0].allocs
        put(&mut b, &mut n, 0, 4); // future[0].frees
                                   // The leak: 1 MiB chunks, 5 own PCs, 125 shared; active + future[0] + future[1].
        hdr(
            &mut b,
            &mut n,
            1 << 20,
            130,
            125,
            0b0111,
            entry_flags::PC32 | entry_flags::CNT32,
        );
        for pc in [0x7d1da, 0x803e9, 0xe7e65, 0xe81c5, 0xe7edb] {
            put(&mut b, &mut n, pc, 4); // mallocgc, makeslice, allocDeep, func1, descend
        }
        for (allocs, frees) in [(36, 0), (36, 0), (54, 0)] {
            put(&mut b, &mut n, allocs, 4);
            put(&mut b, &mut n, frees, 4);
        }
        let base = 0x401000;
        let mut x = StackExpander::new();
        let mut buf = [0u8; MAX_NSTK as usize * 8];
        let mut stacks = [[0u64; 130]; 3];
        let mut records = [MemRecord::default(); 3];
        let mut count = 0;
        for (i, e) in Entries::new(&b[..n], base).enumerate() {
            let bucket = x.bucket_into(&e.unwrap(), &mut buf).unwrap();
            assert_eq!(bucket.stack.len(), 130);
            for (slot, pc) in stacks[i].iter_mut().zip(bucket.stack.iter()) {
                *slot = pc;
            }
            records[i] = bucket.record;
            count += 1;
        }
        assert_eq!(count, 3);
        assert_eq!(stacks[1], stacks[0]);
        assert_eq!(
            stacks[2][..5],
            [0x47e1da, 0x4813e9, 0x4e8e65, 0x4e91c5, 0x4e8edb]
        );
        assert!(stacks[2][5..].iter().all(|&pc| pc == base + DESCEND));
        assert_eq!(
            records[1].future[0],
            Cycle {
                allocs: 1,
                frees: 0
            }
        );
        let leak = records[2];
        assert_eq!(
            leak.active,
            Cycle {
                allocs: 36,
                frees: 0
            }
        );
        assert_eq!(
            leak.future[0],
            Cycle {
                allocs: 36,
                frees: 0
            }
        );
        assert_eq!(
            leak.future[1],
            Cycle {
                allocs: 54,
                frees: 0
            }
        );
        assert_eq!(leak.future[2], Cycle::default());
        // 126 chunks of 1 MiB in a 128 MiB cgroup, not gigabytes.
        let allocs = leak.active.allocs + leak.future.iter().map(|c| c.allocs).sum::<u64>();
        assert_eq!(allocs << 20, 126 << 20);
    }

    #[test]
    fn entry_u64_everything() {
        let mut b = [0u8; 64];
        let mut n = 0;
        hdr(&mut b, &mut n, 32, 1, 0, 0b1000, entry_flags::TRUNC); // future[2] only
        put(&mut b, &mut n, 0x7fff_0000_1234, 8);
        put(&mut b, &mut n, 1 << 40, 8);
        put(&mut b, &mut n, 3, 8);
        let e = Entries::new(&b[..n], 0).next().unwrap().unwrap();
        assert_eq!(e.own_pc(0), Some(0x7fff_0000_1234));
        assert!(e.truncated());
        assert_eq!(
            e.record.future[2],
            Cycle {
                allocs: 1 << 40,
                frees: 3
            }
        );
    }

    #[test]
    fn entry_errors_name_field_and_offset() {
        let mut b = [0u8; 40];
        let mut n = 0;
        hdr(&mut b, &mut n, 16, 2000, 0, 0, 0);
        let mut it = Entries::new(&b[..n], 0);
        assert_eq!(
            it.next(),
            Some(Err(Error::BadField {
                structure: "oom bucket entry",
                field: "nstk",
                offset: 8,
                value: 2000
            }))
        );
        assert_eq!(it.next(), None);
        // Truncated stack: 3 u64 PCs announced, 1 present.
        let mut n = 0;
        hdr(&mut b, &mut n, 16, 3, 0, 0, 0);
        put(&mut b, &mut n, 0, 8);
        assert_eq!(
            Entries::new(&b[..n], 0).next(),
            Some(Err(Error::Truncated {
                structure: "oom bucket entry stack",
                offset: 14,
                needed: 24
            }))
        );
        // Bad shared, cycles and flags.
        for (sh, cyc, fl, field, off) in [
            (3u64, 0u64, 0u8, "shared", 10),
            (0, 0x10, 0, "cycles", 12),
            (0, 0, 0x80, "flags", 13),
        ] {
            let mut n = 0;
            hdr(&mut b, &mut n, 16, 2, sh, cyc, fl);
            match Entries::new(&b[..n], 0).next() {
                Some(Err(Error::BadField {
                    field: f,
                    offset: o,
                    ..
                })) => assert_eq!((f, o), (field, off)),
                other => panic!("{other:?}"),
            }
        }
        // Truncated header and counters.
        assert!(matches!(
            Entries::new(&b[..5], 0).next(),
            Some(Err(Error::Truncated {
                structure: "oom bucket entry",
                ..
            }))
        ));
        let mut n = 0;
        hdr(&mut b, &mut n, 16, 0, 0, 1, 0);
        put(&mut b, &mut n, 1, 8);
        assert!(matches!(
            Entries::new(&b[..n], 0).next(),
            Some(Err(Error::Truncated {
                structure: "oom bucket entry counters",
                ..
            }))
        ));
    }

    fn end_bytes() -> [u8; 120] {
        let mut b = [0u8; 120];
        b[0..4].copy_from_slice(&rec::END.to_le_bytes());
        b[4..8].copy_from_slice(&1234u32.to_le_bytes());
        b[8..12].copy_from_slice(&7u32.to_le_bytes()); // capture_id
        b[32..40].copy_from_slice(&0x400000u64.to_le_bytes()); // pc_base
        b[40..48].copy_from_slice(&524288u64.to_le_bytes()); // rate
        b[60..64].copy_from_slice(&3u32.to_le_bytes()); // buckets_seen
        b[64..68].copy_from_slice(&3u32.to_le_bytes()); // emitted
        b[104..108].copy_from_slice(b"oome");
        b
    }

    #[test]
    fn records_parse() {
        let b = end_bytes();
        match Record::parse(&b).unwrap() {
            Record::End(e) => {
                assert_eq!((e.pid, e.capture_id, e.pc_base), (1234, 7, 0x400000));
                assert_eq!(e.mem_profile_rate, 524288);
                assert!(e.is_complete());
                assert_eq!(e.comm.as_bytes(), b"oome");
            }
            other => panic!("{other:?}"),
        }
        // Every stop bit makes a capture incomplete, even with all it saw emitted.
        for bit in 0..10 {
            let mut s = b;
            s[52..56].copy_from_slice(&(1u32 << bit).to_le_bytes());
            let Ok(Record::End(e)) = Record::parse(&s) else {
                panic!()
            };
            let harmless = end_status::RATE_FAULT | end_status::CYCLE_FAULT | end_status::AT_EXIT;
            assert_eq!(e.is_complete(), (1u32 << bit) & harmless != 0, "bit {bit}");
        }
        assert_eq!(
            Record::parse(&b[..100]),
            Err(Error::Truncated {
                structure: "oom_end",
                offset: 0,
                needed: 120
            })
        );
        let mut c = [0u8; 30];
        c[0..4].copy_from_slice(&rec::CHUNK.to_le_bytes());
        c[20..24].copy_from_slice(&6u32.to_le_bytes());
        assert!(matches!(Record::parse(&c), Ok(Record::Chunk(ch)) if ch.payload.len() == 6));
        c[20..24].copy_from_slice(&7u32.to_le_bytes());
        assert!(matches!(
            Record::parse(&c),
            Err(Error::BadField { field: "len", .. })
        ));
        c[0..4].copy_from_slice(&99u32.to_le_bytes());
        assert!(matches!(
            Record::parse(&c),
            Err(Error::BadField {
                field: "type",
                value: 99,
                ..
            })
        ));
        assert!(matches!(
            Record::parse(&c[..3]),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn victim_exec_exit_parse() {
        let mut v = [0u8; 112];
        v[0] = rec::VICTIM as u8;
        v[4] = 42;
        v[78] = 1;
        v[76..78].copy_from_slice(&(-1000i16).to_le_bytes());
        v[80..83].copy_from_slice(b"abc");
        match Record::parse(&v).unwrap() {
            Record::Victim(x) => {
                let d = x.details.unwrap();
                assert_eq!((x.pid, d.oom_score_adj), (42, -1000));
                assert_eq!(d.comm.as_bytes(), b"abc");
            }
            other => panic!("{other:?}"),
        }
        v[78] = 0;
        assert!(matches!(Record::parse(&v), Ok(Record::Victim(x)) if x.details.is_none()));
        let mut x = [0u8; 296];
        x[0] = rec::EXEC as u8;
        x[40..48].copy_from_slice(b"/bin/sh\0");
        assert!(matches!(Record::parse(&x), Ok(Record::Exec(e)) if e.filename == b"/bin/sh"));
        let mut t = [0u8; 40];
        t[0] = rec::EXIT as u8;
        t[16] = 9;
        assert!(matches!(Record::parse(&t), Ok(Record::Exit(e)) if e.tid == 9));
    }

    #[test]
    fn walk_steps_per_bucket() {
        // One step to stage a bucket, one per 16 PCs narrowed to u32 offsets.
        assert_eq!(steps_per_bucket(0, true), 1);
        assert_eq!(steps_per_bucket(1, true), 2);
        assert_eq!(steps_per_bucket(16, true), 2);
        assert_eq!(steps_per_bucket(17, true), 3);
        assert_eq!(steps_per_bucket(44, true), 4);
        assert_eq!(steps_per_bucket(1024, true), 65);
        assert_eq!(steps_per_bucket(1024, false), 1);
        assert_eq!(FALLBACK_MAX_STEPS, 4_325_376);
    }

    #[test]
    fn watch_and_config_encode() {
        let mut w = [0xffu8; 64];
        encode_watch(&mut w, 1, 2, 3, 4, 16, 1024, watch_flags::PC32);
        assert_eq!(w[0], 1);
        assert_eq!(w[24], 4);
        assert_eq!(&w[32..36], &16u32.to_le_bytes());
        assert_eq!(&w[44..64], &[0u8; 20]);
        let c = encode_config(5, 0x0102, config_flags::WALK_AT_EXIT);
        assert_eq!(&c[..8], &[5, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(&c[8..16], &0x0102u64.to_le_bytes());
        assert_eq!(&c[16..24], &[1, 0, 0, 0, 0, 0, 0, 0]);
        let mut cnt = [0u8; 72];
        cnt[8] = 2;
        cnt[40] = 3;
        cnt[48] = 4;
        cnt[56] = 5;
        cnt[64] = 6;
        let p = Counters::parse(&cnt).unwrap();
        assert_eq!(p.kills_after_walk, 3);
        assert_eq!(p.lost_events, 2);
        assert_eq!(
            (p.kill_marks, p.unmarked_deliveries, p.sigkills_marked),
            (4, 5, 6)
        );
        assert!(Counters::parse(&cnt[..64]).is_err());
    }

    #[test]
    fn errors_display() {
        use core::fmt::Write;
        struct S([u8; 128], usize);
        impl Write for S {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let b = s.as_bytes();
                self.0[self.1..self.1 + b.len()].copy_from_slice(b);
                self.1 += b.len();
                Ok(())
            }
        }
        let mut s = S([0; 128], 0);
        write!(
            s,
            "{}",
            Error::BadField {
                structure: "oom_chunk",
                field: "len",
                offset: 20,
                value: 7
            }
        )
        .unwrap();
        assert_eq!(&s.0[..s.1], b"bad oom_chunk.len at offset 20: value 0x7");
    }

    /// A fixed 4-slot collector (no alloc in this crate, even in tests).
    mod heapless_vec {
        pub struct V(pub [u64; 4], usize);
        impl FromIterator<u64> for V {
            fn from_iter<I: IntoIterator<Item = u64>>(it: I) -> Self {
                let mut v = V([0; 4], 0);
                for x in it {
                    v.0[v.1] = x;
                    v.1 += 1;
                }
                v
            }
        }
    }
}
