/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oom_abi.h: every struct and limit shared between the oomprof BPF program
 * (src/oomprof.bpf.c) and user space (oom-core/src/abi.rs mirrors this file
 * with compile-time size and offset asserts).
 *
 * All integers are little-endian (the program runs on the host), all structs
 * are laid out without implicit padding so that the Rust mirror can assert
 * every offset.
 *
 * Ring-buffer records
 * -------------------
 * Every record in the ring starts with `struct oom_rec_hdr`. `type` says
 * which struct follows:
 *
 *   OOM_REC_VICTIM  struct oom_victim   the OOM killer picked `pid`
 *   OOM_REC_EXEC    struct oom_exec     a process called execve
 *   OOM_REC_EXIT    struct oom_exit     a watched process exited
 *   OOM_REC_CHUNK   struct oom_chunk    + `len` bytes of bucket entries
 *   OOM_REC_END     struct oom_end      a capture is complete
 *
 * A capture is (pid, capture_id): zero or more chunks with seq 0, 1, 2, ...,
 * then one end record whose `chunks` says how many chunks were emitted.
 *
 * Bucket entries (inside a chunk), variable length, byte-packed:
 *
 *   off 0  u64 size         allocation size (Go bucket.size)
 *   off 8  u16 nstk         number of PCs of the stack
 *   off 10 u16 shared       the stack's outermost `shared` PCs are the outermost
 *                           `shared` PCs of the previous entry of the capture
 *                           (entries are decoded in order; chunks concatenate)
 *   off 12 u8  cycles       bit i set: cycle i follows (0 = active, 1..3 = future[0..2])
 *   off 13 u8  flags        OOM_BF_*
 *   off 14 nstk - shared PCs, leaf first:
 *                           u32 (pc - pc_base) if OOM_BF_PC32, else u64 absolute
 *   then   per set bit in `cycles`, ascending: allocs, frees
 *                           u32 each if OOM_BF_CNT32, else u64 each
 *
 * Sharing the outer frames with the previous bucket (Go pushes new buckets at
 * the list head, so neighbours are usually allocations from the same code
 * path) is what lets ~100k real buckets fit the default ring.
 *
 * Cycles that are all zero are omitted; user space reconstructs them as
 * zero. Byte counters are never sent: alloc_bytes = allocs * size.
 */
#ifndef OOM_ABI_H
#define OOM_ABI_H

#ifdef __bpf__
#include <linux/types.h>
#else
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
typedef int16_t __s16;
#endif

/* Version of this ABI; bumped on any incompatible change. */
#define OOM_ABI_VERSION 4

/* ---- limits ---- */

/* Longest Go stack a bucket can hold (runtime maxProfStackDepth, Go 1.23+). */
#define OOM_MAX_NSTK 1024
/* Default and ceiling of buckets read per capture (configurable below it).
 * The default fits the default 8 MiB ring at ~54 B per bucket (measured on
 * 44-frame stacks); the walk also stops when the ring is full. */
#define OOM_DEFAULT_MAX_BUCKETS 150000
/* Default walk time budget: see oom-loader's DEFAULT_WALK_BUDGET for the
 * figures it is set from. */
#define OOM_DEFAULT_WALK_BUDGET_NS (100ULL * 1000 * 1000)
/* The walk reads the clock once per this many buckets (a power of two). */
#define OOM_BUDGET_CHECK_EVERY 64
/* bpf_loop refuses more than BPF_MAX_LOOPS (8M) iterations. */
#define OOM_MAX_LOOPS (8 * 1024 * 1024)
/* A bucket takes at least one loop step, so no more can be walked. */
#define OOM_MAX_BUCKETS_CEILING 8000000
/* PCs narrowed to u32 offsets per walk step: a bucket takes
 * 1 + ceil(nstk / OOM_NARROW_STEP) steps with u32 PCs, else 1. */
#define OOM_NARROW_STEP 16
/* The fallback walk for kernels without bpf_loop (before 5.17): one program runs
 * OOM_FALLBACK_ROUNDS rounds of OOM_FALLBACK_UNROLL steps (straight-line calls,
 * which the verifier walks once each), then tail-calls itself. Every kernel
 * allows 33 tail calls in a chain (MAX_TAIL_CALL_CNT: 32 checked with `>`
 * before 5.17, 33 with `>=` since), the first of which enters the walk from
 * the tracepoint program: the walk gets 33 runs of the program. Sized for the
 * verifier: the program costs it ~1 instruction per step (137k processed of
 * its 1M limit) and 80-125 ms on the 6.18 test VM, roughly linear in the
 * steps. */
#define OOM_FALLBACK_UNROLL 1024
#define OOM_FALLBACK_ROUNDS 128
#define OOM_FALLBACK_STEPS (OOM_FALLBACK_UNROLL * OOM_FALLBACK_ROUNDS)
#define OOM_FALLBACK_RUNS 33
#define OOM_FALLBACK_MAX_STEPS (OOM_FALLBACK_STEPS * OOM_FALLBACK_RUNS)
/* Chunk payload is flushed once it holds at least this many bytes. */
#define OOM_CHUNK_FLUSH 8192
/* Largest bucket entry: header + 1024 u64 PCs + 4 cycles of two u64. */
#define OOM_ENTRY_HDR_SIZE 14
#define OOM_MAX_ENTRY (OOM_ENTRY_HDR_SIZE + OOM_MAX_NSTK * 8 + 4 * 16)
/* Chunk payload capacity: a flush threshold plus one maximal entry. */
#define OOM_CHUNK_CAP (OOM_CHUNK_FLUSH + OOM_MAX_ENTRY)
/* Ring space kept free for end and event records once a capture streams. */
#define OOM_RING_RESERVE 4096
/* Largest Go memRecord cycle: {allocs, frees, alloc_bytes, free_bytes}. */
#define OOM_MAX_CYCLE_SIZE 32
#define OOM_TASK_COMM_LEN 16
#define OOM_FILENAME_LEN 256

/* ---- record types ---- */
#define OOM_REC_VICTIM 1
#define OOM_REC_EXEC 2
#define OOM_REC_EXIT 3
#define OOM_REC_CHUNK 4
#define OOM_REC_END 5

/* ---- bucket entry flags ---- */
#define OOM_BF_PC32 0x01  /* PCs are u32 offsets from oom_end.pc_base */
#define OOM_BF_CNT32 0x02 /* counters are u32 */
#define OOM_BF_TRUNC 0x04 /* stack was longer than max_nstk and was cut */
#define OOM_BF_ZERO_TAIL 0x08 /* the counters ran into a page that was not
			       * present and were read as zero there: an
			       * untouched anonymous page (Go never wrote
			       * those counters), or a swapped-out one */

/* ---- end-record status bits ---- */
#define OOM_END_HEAD_FAULT 0x01  /* *mbuckets could not be read */
#define OOM_END_WALK_FAULT 0x02  /* a bucket header could not be read: list cut */
#define OOM_END_WALK_LIMIT 0x04  /* max_buckets reached with more buckets left */
#define OOM_END_RING_FULL 0x08   /* ring ran out of space: the walk stopped there;
				  * ring_full_buckets were read but not sent, the
				  * buckets after them were not visited */
#define OOM_END_RATE_FAULT 0x10  /* MemProfileRate could not be read */
#define OOM_END_CYCLE_FAULT 0x20 /* mProfCycle could not be read */
#define OOM_END_LOOP 0x40        /* allnext loops back (corrupt list): walk stopped;
				  * entries up to the detection may repeat */
#define OOM_END_INVALID 0x80     /* buckets with a bad type or an impossible depth
				  * were left out (counted in read_fault_buckets) */
#define OOM_END_TIME_BUDGET 0x100 /* the walk reached oom_config.walk_budget_ns and
				   * stopped with buckets left (not counted) */
#define OOM_END_AT_EXIT 0x200     /* walked at sched_process_exit (interrupts on),
				   * not in the signal delivery (interrupts off) */
#define OOM_END_STEP_CAP 0x400    /* the walk used up its steps with buckets left:
				   * bpf_loop's OOM_MAX_LOOPS, or the fallback's
				   * OOM_FALLBACK_MAX_STEPS (a bucket takes
				   * 1 + ceil(nstk / 16) steps with u32 PCs, else 1) */
#define OOM_END_NO_WALKER 0x800   /* the walk program could not be entered (no
				   * program in the `walkers` array): nothing walked */

/* ---- watch flags ---- */
#define OOM_WATCH_PC32 0x01 /* try u32 PC offsets from pc_base */

/* Common header of every ring record. 8 bytes. */
struct oom_rec_hdr {
	__u32 type; /* OOM_REC_* */
	__u32 pid;  /* thread-group id the record is about */
};

/* oom/mark_victim. 112 bytes. Fields the running kernel's tracepoint lacks
 * (before about 6.9 it carries only `pid`) are zero and `has_details` is 0. */
struct oom_victim {
	struct oom_rec_hdr hdr;     /* hdr.pid = victim pid (task id) */
	__u64 ts_ns;                /* bpf_ktime_get_ns */
	__u32 trigger_pid;          /* tgid of the task that ran the OOM killer */
	__u32 trigger_tid;
	__u64 trigger_cgroup_id;    /* cgroup v2 id of the trigger, 0 without v2 */
	__u64 total_vm_kb;
	__u64 anon_rss_kb;
	__u64 file_rss_kb;
	__u64 shmem_rss_kb;
	__u64 pgtables_kb;
	__u32 uid;
	__s16 oom_score_adj;
	__u8 has_details;           /* 1 when the fields above were read */
	__u8 _pad;
	char comm[OOM_TASK_COMM_LEN];         /* victim comm (empty without details) */
	char trigger_comm[OOM_TASK_COMM_LEN]; /* comm of the trigger */
};

/* sched/sched_process_exec. 296 bytes. */
struct oom_exec {
	struct oom_rec_hdr hdr; /* hdr.pid = tgid after exec */
	__u64 ts_ns;
	__u32 old_pid;
	__u32 _pad;
	char comm[OOM_TASK_COMM_LEN];
	char filename[OOM_FILENAME_LEN]; /* NUL-terminated, possibly truncated */
};

/* sched/sched_process_exit of a watched process (last thread). 40 bytes. */
struct oom_exit {
	struct oom_rec_hdr hdr;
	__u64 ts_ns;
	__u32 tid;
	__u32 _pad;
	char comm[OOM_TASK_COMM_LEN];
};

/* Header of a chunk of bucket entries; `len` bytes of entries follow. 24 bytes. */
struct oom_chunk {
	struct oom_rec_hdr hdr;
	__u32 capture_id;
	__u32 seq;      /* 0, 1, 2, ... within the capture */
	__u32 buckets;  /* entries in this chunk */
	__u32 len;      /* payload bytes */
};

/* End of a capture. 120 bytes. */
struct oom_end {
	struct oom_rec_hdr hdr;
	__u32 capture_id;
	__u32 tid;              /* thread whose SIGKILL delivery ran the walk */
	__u64 start_ns;         /* bpf_ktime_get_ns at walk start */
	__u64 elapsed_ns;       /* walk duration */
	__u64 pc_base;          /* base of OOM_BF_PC32 offsets */
	__u64 mem_profile_rate; /* runtime.MemProfileRate read after the walk */
	__u32 mprof_cycle;      /* runtime.mProfCycle.value read after the walk */
	__u32 status;           /* OOM_END_* */
	__u32 chunks;           /* chunk records emitted (seq 0..chunks-1) */
	__u32 buckets_seen;     /* list nodes visited, captured or not */
	__u32 buckets_emitted;  /* entries in the emitted chunks */
	__u32 ring_full_buckets;   /* buckets dropped because the ring was full */
	__u32 read_fault_buckets;  /* buckets whose stack or counters faulted, or
				    * whose header was invalid (OOM_END_INVALID) */
	__u32 truncated_stacks;    /* entries cut to max_nstk (still emitted) */
	__u64 bytes_emitted;    /* payload bytes in the emitted chunks */
	__u32 max_buckets;      /* walk limit in force */
	__u32 max_nstk;         /* stack limit in force */
	__u32 cycle_size;       /* Go memRecordCycle size used (32 or 16) */
	__u32 zero_tail_buckets;/* entries with OOM_BF_ZERO_TAIL */
	char comm[OOM_TASK_COMM_LEN];
};

/* Value of the `watched` map, keyed by u32 tgid; written by user space. 64 bytes. */
struct oom_watch {
	__u64 mbuckets;        /* address of runtime.mbuckets */
	__u64 mem_profile_rate;/* address of runtime.MemProfileRate, 0 = unknown */
	__u64 mprof_cycle;     /* address of runtime.mProfCycle, 0 = unknown */
	__u64 pc_base;         /* base for u32 PC offsets (start of text) */
	__u32 cycle_size;      /* 32 (Go <= 1.26) or 16 (Go 1.27) */
	__u32 max_nstk;        /* <= OOM_MAX_NSTK */
	__u32 flags;           /* OOM_WATCH_* */
	__u32 claimed;         /* set by the kernel when a capture starts (the claim
				* itself is the `claims` map's); user space writes 0 */
	__u64 walk_end_ns;     /* set by the kernel when the walk ended; user space writes 0 */
	__u64 _reserved;
};

/* Global configuration in .rodata, patched by the loader before load. 24 bytes. */
struct oom_config {
	__u32 max_buckets;     /* per capture, <= OOM_MAX_BUCKETS_CEILING */
	__u32 abi_version;     /* OOM_ABI_VERSION, checked by the loader */
	__u64 walk_budget_ns;  /* longest walk; 0 = no limit */
	__u32 flags;           /* OOM_CFG_* */
	__u32 _pad;
};

/* ---- config flags ---- */
#define OOM_CFG_WALK_AT_EXIT 0x01 /* walk in the first exiting thread's
				   * sched_process_exit (kernels that run it
				   * before exit_mm: interrupts on) instead of in
				   * the SIGKILL delivery (interrupts off) */

/* Global counters in .bss (symbol `oom_counters`), read by user space. 72 bytes. */
struct oom_counters {
	__u64 captures;       /* captures started */
	__u64 lost_events;    /* victim/exec/exit records the full ring refused */
	__u64 lost_ends;      /* end records the full ring refused */
	__u64 next_capture_id;/* unused since ABI 4: capture ids are per CPU (no
			       * fetch-and-add before 5.12) */
	/* SIGKILL deliveries to other threads of a process being captured, while
	 * its walk ran and after it ended: measures whether a walk could be
	 * continued in a later thread's delivery (see oomprof.bpf.c). */
	__u64 kills_during_walk;
	__u64 kills_after_walk;
	/* Deliveries (or exits) of a watched process's task a SIGKILL was
	 * generated for: each such kill walks, unless a walk ran already. */
	__u64 kill_marks;
	/* Deliveries (or exits) of a watched process's tasks without a mark: the
	 * other threads of a killed process, and every thread of an exit_group
	 * or exec (which kill the other threads without generating a SIGKILL).
	 * No walk. */
	__u64 unmarked_deliveries;
	/* SIGKILLs generated on the host, any task (signal_generate marks). */
	__u64 sigkills_marked;
};

/* ---- growth sampling (src/growth.bpf.c, a separate object) ----
 *
 * A perf_event program on the software page-fault event, opened on every CPU
 * with a sample period of N faults. Each sample takes the faulting task's user
 * stack (frame pointers) and adds one to its entry in the `growth` hash map,
 * keyed by (tgid, depth, hash of the stack). User space reads and deletes the
 * entries; a full map refuses new stacks, counted in `dropped_full`.
 */

/* Deepest user stack kept (the kernel's default perf_event_max_stack). */
#define OOM_GROWTH_MAX_DEPTH 127
/* Default entries of the `growth` map (preallocated, 1056 B of key and value
 * each: about 4.5 MB with the hash table's own overhead). */
#define OOM_GROWTH_DEFAULT_ENTRIES 4096
/* Default sample period in page faults (one sample per 256 KiB of 4 KiB first
 * touches). */
#define OOM_GROWTH_DEFAULT_PERIOD 64

/* Key of the `growth` map. 16 bytes. */
struct oom_growth_key {
	__u32 tgid;            /* process */
	__u32 depth;           /* frames in the stack, 1..=OOM_GROWTH_MAX_DEPTH */
	__u64 hash;            /* FNV-1a of the `depth` PCs */
};

/* Value of the `growth` map. 1040 bytes. */
struct oom_growth_val {
	__u64 samples;         /* samples that hit this stack */
	__u64 first_ns;        /* CLOCK_MONOTONIC of the first sample */
	__u64 last_ns;         /* CLOCK_MONOTONIC of the latest sample */
	__u64 pcs[OOM_GROWTH_MAX_DEPTH]; /* leaf first: the faulting instruction,
				* then return addresses; zero past `depth` */
};

/* Growth configuration in .rodata (symbol `growth_cfg`). 8 bytes. */
struct oom_growth_config {
	__u32 tgid;            /* sample only this process; 0 = every process */
	__u32 abi_version;     /* OOM_ABI_VERSION */
};

/* Growth counters in .bss (symbol `growth_counters`). 40 bytes. */
struct oom_growth_counters {
	__u64 samples;         /* samples of processes in scope */
	__u64 new_stacks;      /* entries inserted */
	__u64 dropped_full;    /* samples of a new stack the full map refused */
	__u64 no_stack;        /* samples bpf_get_stack could not take (no user stack) */
	__u64 kernel;          /* samples of kernel threads (not counted above) */
};

#endif /* OOM_ABI_H */
