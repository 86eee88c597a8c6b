//! The compiled oomprof BPF objects.
//!
//! `src/oomprof.bpf.c` (the OOM capture) and `src/growth.bpf.c` (the page-fault
//! growth sampler), with the shared ABI in `include/oom_abi.h`, are compiled by
//! `oom-bpf/build.sh` with clang-19 into `oomprof.bpf.o` and `growth.bpf.o`, which are
//! committed so that `cargo build` needs no clang; `oom-bpf/check.sh` rebuilds them and
//! fails when a committed object is stale. The loader (`oom-loader`) parses them with
//! aya-obj.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// Forces 8-byte alignment on the embedded bytes: ELF parsers read `u64` fields
/// in place and reject misaligned input.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!("../oomprof.bpf.o"));

static GROWTH: &Aligned<[u8]> = &Aligned(*include_bytes!("../growth.bpf.o"));

/// The BPF ELF object, 8-byte aligned.
pub fn object() -> &'static [u8] {
    &OBJECT.0
}

/// The growth sampler's BPF ELF object (`src/growth.bpf.c`), 8-byte aligned.
pub fn growth_object() -> &'static [u8] {
    &GROWTH.0
}

/// Names in the growth object.
pub mod growth {
    /// `perf_event`: one page-fault sample, its user stack counted in [`MAP`].
    pub const PROGRAM: &str = "growth_sample";
    /// Hash map `struct oom_growth_key` → `struct oom_growth_val`.
    pub const MAP: &str = "growth";
    /// Per-CPU staging value.
    pub const SCRATCH: &str = "growth_scratch";
    /// `.rodata` variable holding `struct oom_growth_config`.
    pub const CONFIG_VAR: &str = "growth_cfg";
    /// `.bss` variable holding `struct oom_growth_counters`.
    pub const COUNTERS_VAR: &str = "growth_counters";
}

/// Names of the programs in the object (function names), by tracepoint.
pub mod programs {
    /// `raw_tracepoint/signal_deliver`: starts the capture of a marked process and
    /// enters the walk program.
    pub const SIGNAL_DELIVER: &str = "signal_deliver";
    /// `raw_tracepoint/signal_generate`: marks the task a SIGKILL was generated for.
    pub const SIGNAL_GENERATE: &str = "signal_generate";
    /// `tracepoint/oom/mark_victim` for kernels whose record has comm, rss, uid (~6.9+).
    pub const MARK_VICTIM: &str = "mark_victim";
    /// `tracepoint/oom/mark_victim` for kernels whose record has only `pid`.
    pub const MARK_VICTIM_V1: &str = "mark_victim_v1";
    /// `tracepoint/sched/sched_process_exec`.
    pub const SCHED_PROCESS_EXEC: &str = "sched_process_exec";
    /// `tracepoint/sched/sched_process_exit` with `group_dead` (~6.16+).
    pub const SCHED_PROCESS_EXIT: &str = "sched_process_exit";
    /// `tracepoint/sched/sched_process_exit` for kernels without `group_dead`.
    pub const SCHED_PROCESS_EXIT_V1: &str = "sched_process_exit_v1";
    /// `raw_tracepoint/walk`, never attached: the walk with `bpf_loop` (5.17+),
    /// entered by tail call through [`maps::WALKERS`](super::maps::WALKERS).
    pub const WALK_LOOP: &str = "walk_loop";
    /// `raw_tracepoint/walk`, never attached: the fallback walk without `bpf_loop`
    /// (bounded loops, tail-calling itself), entered the same way.
    pub const WALK_BOUNDED: &str = "walk_bounded";
}

/// Names of the maps and global variables in the object.
pub mod maps {
    /// The BPF ring buffer carrying every record.
    pub const EVENTS: &str = "events";
    /// Hash map tgid → `struct oom_watch`.
    pub const WATCHED: &str = "watched";
    /// LRU hash task address → time of a SIGKILL generated for that task.
    pub const KILLED_TASKS: &str = "killed_tasks";
    /// LRU hash tgid → watch entry kept after the leader's exit (older kernels).
    pub const DYING: &str = "dying";
    /// Per-CPU walk state and staging area.
    pub const SCRATCH: &str = "scratch";
    /// LRU hash tgid → start of its capture: the first thread to insert it walks.
    pub const CLAIMS: &str = "claims";
    /// Program array whose slot 0 holds the walk program.
    pub const WALKERS: &str = "walkers";
    /// `.rodata` variable holding `struct oom_config`.
    pub const CONFIG_VAR: &str = "oom_cfg";
    /// `.bss` variable holding `struct oom_counters`.
    pub const COUNTERS_VAR: &str = "oom_counters";
}

#[cfg(test)]
mod tests {
    #[test]
    fn object_is_aligned_elf() {
        let o = super::object();
        assert_eq!(o.as_ptr() as usize % 8, 0);
        assert_eq!(&o[..4], b"\x7fELF");
        let g = super::growth_object();
        assert_eq!(g.as_ptr() as usize % 8, 0);
        assert_eq!(&g[..4], b"\x7fELF");
    }
}
