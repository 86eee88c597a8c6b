// SPDX-License-Identifier: GPL-2.0
/*
 * oomprof's kernel program.
 *
 * - signal/signal_generate: a SIGKILL was generated for a watched process
 *   (the OOM killer, kill -9, cgroup.kill): mark it.
 * - signal/signal_deliver: when a marked watched Go process is about to die
 *   from that SIGKILL, walk its runtime.mbuckets list (allnext chain) in the victim's
 *   own context with bpf_probe_read_user and stream compact bucket entries into the
 *   `events` ring buffer, then an end-of-capture record. The walk is a program of
 *   its own, entered by tail call through `walkers`: walk_loop (bpf_loop, 5.17+)
 *   or walk_bounded (bounded loops and tail calls, for older kernels); the loader
 *   loads the one a feature probe allows.
 * - oom/mark_victim: who the OOM killer picked (user space correlates it with
 *   a capture to classify "oom" vs "killed").
 * - sched/sched_process_exec, sched/sched_process_exit: discovery and cleanup.
 *
 * No BTF/CO-RE: classic tracepoint fields at offsets the loader checks
 * against the tracepoint's `format` (mark_victim, exec), and raw tracepoint
 * arguments that are stable across kernels (signal_deliver's `sig`,
 * sched_process_exit's `group_dead`, whose absence fails the attach).
 * Record layouts and limits live in include/oom_abi.h.
 *
 * Why one pass and no split walk (measured on the 2-CPU test VM, see
 * tests/tests/kernel_walk.rs and oom_counters.kills_*): signal_deliver runs
 * under spin_lock_irq(&sighand->siglock), so the ring's wake-up irq_work
 * cannot run until the walk ends, and the consumer does not drain during it
 * (200k buckets into the 8 MiB ring: exactly one ring's worth, 8.3 MB, was
 * emitted, the rest counted as ring-full). The victim's other threads (5-6 in
 * a Go process) wait on the same siglock and take their SIGKILL right after
 * the walk, back to back (counted: 0 during, all after), and the last
 * thread's sched_process_exit usually follows 0.1-0.4 ms later (up to ~60 ms
 * on a busy host): no dependable window in which a woken consumer could drain
 * megabytes. So a capture has to fit in the free ring space at the time of
 * the kill. The entries are compact (u32 PC offsets, outer frames shared with
 * the previous entry, only non-zero cycles, u32 counters when they fit, many
 * entries per ring record: 54 B per 44-frame bucket, 154k buckets in the
 * default 8 MiB ring) and, when the ring does run out, the walk keeps
 * following `allnext` without copying, so the end record counts exactly how
 * many buckets were dropped.
 */
#include <linux/bpf.h>
#include "oom_abi.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define NULL ((void *)0)
/* linux/stddef.h's fallback is a plain `inline`, a hint clang may ignore. The
 * tracepoint programs that tail-call must not contain BPF-to-BPF calls. */
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))
/* After a bounds check the verifier relies on: the compiler must take the
 * checked register from here on, not a copy it spilled before the check.
 * Before 5.11 the verifier does not carry a bound over to such copies
 * (find_equal_scalars came with 5.11): "unbounded memory access" on 5.10. */
#define CHECKED(v) asm volatile("" : "+r"(v))

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_delete_elem;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)BPF_FUNC_map_update_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)BPF_FUNC_get_current_pid_tgid;
static __u64 (*bpf_get_current_task)(void) = (void *)BPF_FUNC_get_current_task;
static long (*bpf_get_current_comm)(void *buf, __u32 size) = (void *)BPF_FUNC_get_current_comm;
static __u64 (*bpf_get_current_cgroup_id)(void) = (void *)BPF_FUNC_get_current_cgroup_id;
static long (*bpf_probe_read_user)(void *dst, __u32 size, const void *src) = (void *)BPF_FUNC_probe_read_user;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *src) = (void *)BPF_FUNC_probe_read_kernel;
static long (*bpf_probe_read_kernel_str)(void *dst, __u32 size, const void *src) = (void *)BPF_FUNC_probe_read_kernel_str;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size, __u64 flags) = (void *)BPF_FUNC_ringbuf_output;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)BPF_FUNC_ringbuf_reserve;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)BPF_FUNC_ringbuf_submit;
static __u64 (*bpf_ringbuf_query)(void *ringbuf, __u64 flags) = (void *)BPF_FUNC_ringbuf_query;
static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)BPF_FUNC_loop;
static long (*bpf_tail_call)(void *ctx, void *prog_array_map, __u32 index) = (void *)BPF_FUNC_tail_call;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)BPF_FUNC_get_smp_processor_id;

char LICENSE[] SEC("license") = "GPL";

/* Patched by the loader (frozen .rodata). */
const volatile struct oom_config oom_cfg = {
	.max_buckets = OOM_DEFAULT_MAX_BUCKETS,
	.abi_version = OOM_ABI_VERSION,
	.walk_budget_ns = OOM_DEFAULT_WALK_BUDGET_NS,
};

struct oom_counters oom_counters = {};

/* Ring size is set by the loader from its configuration. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* tgid -> what to read; max_entries is set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct oom_watch);
} watched SEC(".maps");

/* task_struct address -> CLOCK_MONOTONIC ns of a SIGKILL generated for that
 * task: the group leader for kill(2) of a pid, the OOM killer and cgroup.kill,
 * the thread for a kill aimed at a thread id. The whole group dies, and the
 * marked task is among those that take the delivery and exit: its delivery
 * (or exit) walks. Keyed by the task, not its pid: the raw tracepoint gives
 * the target only as a pointer (reading its pid would need BTF), and the
 * walking thread knows its own task. Dropped on use and at the task's exit;
 * LRU and a TTL bound what is left of tasks that never get that far. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} killed_tasks SEC(".maps");

#define OOM_MARK_TTL_NS (5ULL * 1000 * 1000 * 1000)
#define OOM_EEXIST 17 /* include/uapi/asm-generic/errno-base.h */

/* tgid -> its watch entry after the group leader exited, on kernels whose
 * sched_process_exit has no group_dead (before ~6.16), where the leader's exit
 * stands in for the group's: a kill aimed at another thread id is delivered
 * to that thread last, often after the leader exited, and the walk in that
 * delivery still needs the entry (the mm lives until the last thread exits).
 * Only looked up for a thread with a kill mark; dropped on use and at exec. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct oom_watch);
} dying SEC(".maps");

/* ---- the walk ---- */

struct walk {
	__u64 node;      /* next bucket to visit, 0 at the end */
	/* Brent's cycle detection over allnext: O(1) state, a loop of length L
	 * after a tail of T nodes is caught within 2(T + L) steps. */
	__u64 loop_saved;
	__u32 loop_power;
	__u32 loop_steps;
	__u64 pc_base;
	__u64 rate_addr;  /* runtime.MemProfileRate, copied: the watch entry may */
	__u64 cycle_addr; /* be deleted and reused while the walk runs */
	__u32 pid;
	__u32 capture_id;
	__u32 max_nstk;
	__u32 cycle_size;
	__u32 watch_flags;
	__u32 pos;           /* payload bytes staged */
	__u32 chunk_buckets; /* entries staged */
	__u32 seq;
	__u32 seen;
	__u32 emitted;
	__u32 ring_full;
	__u32 faults;
	__u32 truncated;
	__u32 status;
	__u64 bytes;
	__u32 full; /* ring refused a chunk: stop emitting, keep counting */
	__u32 zero_tail;
	__u32 prev_n; /* PCs in scratch.prev; 0: the previous entry shares nothing */
	__u32 max_buckets;
	__u64 deadline_ns; /* stop here (bpf_ktime_get_ns), 0: no budget */
	/* The entry being staged (see walk_one). */
	__u32 phase;     /* 0: at a list node; 1: narrowing the staged entry's PCs */
	__u32 j;         /* next group of OOM_NARROW_STEP PCs */
	__u32 cur_n;     /* PCs copied */
	__u32 cur_flags; /* OOM_BF_* so far */
	__u32 nc_ok;     /* every PC so far fits in u32 */
	__u32 nc_pn;     /* PCs of the previous entry in scratch.prev, 0: none */
	__u32 nc_mis;    /* 1 + highest index that differs from the previous entry
			  * aligned at the outermost frame, 0 if none */
	__u32 _pad2;
	__u64 cur_node;
	__u64 cur_size;
	/* Set when the walk started, for the end record. */
	__u64 start_ns;
	__u32 tid;
	__u32 stop;        /* the walk ended (list end or a limit): steps do nothing */
	/* Walking at sched_process_exit: that exit's arguments, for exit_common
	 * at the end of the walk (the tail call does not return to it). */
	__u8 at_exit;
	__u8 group_dead;
	__u8 leader_only;
	__u8 _pad3[5];
};


/* Per-CPU walk state and staging area for one chunk record. Safe per CPU:
 * the programs run with preemption disabled (tracepoints) and the ones that
 * walk never run in interrupt context, so they do not nest. */
struct scratch {
	struct walk walk;
	__u32 next_id; /* per-CPU source of capture ids */
	__u32 _pad;
	struct oom_chunk chunk;
	__u8 payload[OOM_CHUNK_CAP];
	__u8 mem[4 * OOM_MAX_CYCLE_SIZE];
	__u32 prev[OOM_MAX_NSTK]; /* u32 stack of the previous entry */
	/* Never used: puts every ring record type into the object's BTF, where
	 * oom-loader's abi_check test compares it with the Rust mirror. */
	union {
		struct oom_victim victim;
		struct oom_exec exec;
		struct oom_exit exit;
		struct oom_end end;
	} btf_anchor;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

/* tgid -> CLOCK_MONOTONIC ns its capture started: the first thread to insert
 * it walks. Dropped at the group's exit (or, with the leader's exit standing
 * in for it, at the pid's next exec); max_entries is set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} claims SEC(".maps");

/* Slot 0: the walk program, walk_loop or walk_bounded, chosen by the loader
 * from a feature probe; the tracepoint programs tail-call it. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} walkers SEC(".maps");

/* ---- classic tracepoint records (offsets from the event `format`; the
 * loader checks them against the running kernel before choosing a program) */

struct tp_mark_victim_v1 {
	__u64 common;
	int pid; /* @8, every kernel since the tracepoint exists (~4.13) */
};

struct tp_mark_victim {
	__u64 common;
	int pid;                 /* @8 */
	__u32 comm_loc;          /* @12 __data_loc char[] */
	__u64 total_vm;          /* @16, kB */
	__u64 anon_rss;          /* @24 */
	__u64 file_rss;          /* @32 */
	__u64 shmem_rss;         /* @40 */
	__u32 uid;               /* @48 */
	__u32 _pad;
	__u64 pgtables;          /* @56 */
	short oom_score_adj;     /* @64 */
};

/* include/trace/events/signal.h */
#define TRACE_SIGNAL_DELIVERED 0
#define TRACE_SIGNAL_ALREADY_PENDING 2

struct tp_sched_process_exec {
	__u64 common;
	__u32 filename_loc; /* @8 __data_loc char[] */
	int pid;            /* @12 */
	int old_pid;        /* @16 */
};

/*
 * Verifier strategy: the per-bucket work lives in global functions
 * (walk_step, visit_node, stage_bucket, narrow_step, finish_bucket,
 * flush_chunk). A global function is verified once, on its own, with its
 * arguments as unknown values; a static callback body is instead re-verified
 * for every simulated bpf_loop iteration until its states converge, which a
 * callback this size never does ("The sequence of 8193 jumps is too
 * complex"). The callers stay tiny.
 *
 * The functions take no pointers: they find the walk state in the per-CPU
 * `scratch` map. Until 5.12 a global function's arguments can only be
 * scalars or the program's context (kernel/bpf/btf.c btf_prepare_func_args in
 * 5.10: "Only PTR_TO_CTX and SCALAR are supported"), and the state must
 * outlive a tail call anyway (the fallback walk, walk_bounded).
 */

/* Sends the staged chunk, or counts its buckets as dropped. */
__attribute__((noinline)) int flush_chunk(void)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	struct walk *c;
	__u32 pos;
	__u64 total, used, size;

	if (!s)
		return 0;
	c = &s->walk;
	pos = c->pos;
	if (pos == 0)
		return 0;
	if (pos > OOM_CHUNK_CAP)
		pos = OOM_CHUNK_CAP;
	CHECKED(pos);
	s->chunk.hdr.type = OOM_REC_CHUNK;
	s->chunk.hdr.pid = c->pid;
	s->chunk.capture_id = c->capture_id;
	s->chunk.seq = c->seq;
	s->chunk.buckets = c->chunk_buckets;
	s->chunk.len = pos;
	total = sizeof(struct oom_chunk) + pos;
	/* Keep room for the end record and for other CPUs' events. */
	used = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	if (used + total + 8 + OOM_RING_RESERVE > size ||
	    bpf_ringbuf_output(&events, &s->chunk, total, BPF_RB_NO_WAKEUP)) {
		c->full = 1;
		c->status |= OOM_END_RING_FULL;
		c->ring_full += c->chunk_buckets;
	} else {
		c->seq++;
		c->emitted += c->chunk_buckets;
		c->bytes += pos;
	}
	c->pos = 0;
	c->chunk_buckets = 0;
	return 0;
}

/*
 * One bucket takes 1 + ceil(n / OOM_NARROW_STEP) iterations of the walk's
 * bpf_loop: the first reads the header, the stack (as u64) and the counters
 * into the staged entry (stage_bucket); each further one narrows a group of
 * PCs to u32 offsets in place and compares them with the previous entry's
 * (narrow_step); the last encodes the counters and commits the entry
 * (finish_bucket). A state machine in the one loop, not a nested bpf_loop per
 * bucket: the nested loop cost 50-90 ms of verification, the state machine
 * verifies in ~8 ms (measured, Kernel::load_timings). The price: the step
 * limit caps a walk at steps / (1 + ceil(nstk / 16)) buckets: with bpf_loop's
 * 8M steps, 1.9M of 44-frame buckets, 128k if all stacks had 1024 frames;
 * with the fallback's OOM_FALLBACK_MAX_STEPS (4.3M), 1.08M and 66k (reported
 * as OOM_END_STEP_CAP).
 */

/* Encodes the staged entry and commits it to the chunk. */
__attribute__((noinline)) int finish_bucket(void)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	struct walk *c;
	__u64 n, cs, i, a[4], f[4];
	__u32 pos, flags, cycles = 0, pc32 = 0, cnt32, off, shared = 0;
	__u8 *e;

	if (!s)
		return 0;
	c = &s->walk;
	c->phase = 0;
	pos = c->pos;
	n = c->cur_n;
	if (pos >= OOM_CHUNK_FLUSH || n > OOM_MAX_NSTK)
		return 0; /* cannot happen; bounds for the verifier */
	CHECKED(pos);
	CHECKED(n);
	e = s->payload + pos;
	flags = c->cur_flags;
	cs = c->cycle_size == 16 ? 16 : 32;

	/* If one PC did not fit in u32 (e.g. a cgo frame in libc), the stack is
	 * read again as u64 and shares nothing. */
	if ((c->watch_flags & OOM_WATCH_PC32) && n) {
		if (c->nc_ok) {
			pc32 = OOM_BF_PC32;
			if (c->nc_pn && c->nc_mis <= n)
				shared = n - c->nc_mis;
		} else if (bpf_probe_read_user(e + OOM_ENTRY_HDR_SIZE, n * 8,
					       (void *)(c->cur_node + 48))) {
			c->faults++;
			return 0;
		}
	}
	flags |= pc32;
	if (pc32) {
		/* Remember this stack for the next entry (n >= 1 here). */
		if (bpf_probe_read_kernel(s->prev, (n & (OOM_MAX_NSTK * 2 - 1)) * 4,
					  e + OOM_ENTRY_HDR_SIZE))
			c->prev_n = 0;
		else
			c->prev_n = n;
		off = OOM_ENTRY_HDR_SIZE + (n - shared) * 4;
	} else {
		c->prev_n = 0;
		off = OOM_ENTRY_HDR_SIZE + n * 8;
	}

	/* Cycles: {allocs, frees} are the first two words of each. */
	a[0] = *(__u64 *)(s->mem + 0 * cs);
	f[0] = *(__u64 *)(s->mem + 0 * cs + 8);
	a[1] = *(__u64 *)(s->mem + 1 * cs);
	f[1] = *(__u64 *)(s->mem + 1 * cs + 8);
	a[2] = *(__u64 *)(s->mem + 2 * cs);
	f[2] = *(__u64 *)(s->mem + 2 * cs + 8);
	a[3] = *(__u64 *)(s->mem + 3 * cs);
	f[3] = *(__u64 *)(s->mem + 3 * cs + 8);
	/* Branch-free on purpose: a branch per cycle multiplied the verifier's
	 * states (2^4 presence masks x counter widths, each with its own `off`). */
	{
		__u64 v, p, w, big = 0;

#pragma unroll
		for (i = 0; i < 4; i++) {
			v = a[i] | f[i];
			p = (v | (0 - v)) >> 63; /* v != 0 */
			cycles |= p << i;
			big |= v >> 32;
		}
		cnt32 = big ? 0 : OOM_BF_CNT32;
		w = cnt32 ? 8 : 16;
		if (off > OOM_MAX_ENTRY - 64)
			return 0; /* cannot happen: off <= header + 1024 u64 PCs */
		CHECKED(off);
#pragma unroll
		for (i = 0; i < 4; i++) {
			/* Written unconditionally, kept only if the cycle is present. */
			if (cnt32) {
				*(__u32 *)(e + off) = a[i];
				*(__u32 *)(e + off + 4) = f[i];
			} else {
				*(__u64 *)(e + off) = a[i];
				*(__u64 *)(e + off + 8) = f[i];
			}
			off += ((cycles >> i) & 1) * w;
		}
	}
	flags |= cnt32;
	*(__u64 *)e = c->cur_size;
	*(__u16 *)(e + 8) = n;
	*(__u16 *)(e + 10) = shared;
	*(e + 12) = cycles;
	*(e + 13) = flags;
	if (flags & OOM_BF_TRUNC)
		c->truncated++;
	if (flags & OOM_BF_ZERO_TAIL)
		c->zero_tail++;
	c->pos = pos + off;
	c->chunk_buckets++;
	if (c->pos >= OOM_CHUNK_FLUSH)
		flush_chunk();
	return 0;
}

/* Narrows PCs j*STEP .. j*STEP+STEP-1 of the staged entry: each u64 at 8*i
 * becomes a u32 at 4*i, and is compared with the previous entry's PC at the
 * same distance from the outermost frame. Forward order is safe in place:
 * slot 4*i is written after the u64 at 8*i, and every u64 it overlaps
 * (index <= i), was read. Finishes the entry after the last group. */
__attribute__((noinline)) int narrow_step(void)
{
	__u32 zero = 0, pos, k, pn, j;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	struct walk *c;
	__u8 *e;
	__u64 d, i, n, p, base;

	if (!s)
		return 0;
	c = &s->walk;
	pos = c->pos;
	n = c->cur_n;
	pn = c->nc_pn;
	j = c->j;
	base = c->pc_base;
	if (pos >= OOM_CHUNK_FLUSH || n > OOM_MAX_NSTK || pn > OOM_MAX_NSTK ||
	    j >= OOM_MAX_NSTK / OOM_NARROW_STEP) {
		c->nc_ok = 0;
		return finish_bucket();
	}
	CHECKED(pos);
	CHECKED(n);
	CHECKED(pn);
	CHECKED(j);
	e = s->payload + pos + OOM_ENTRY_HDR_SIZE;
#pragma unroll
	for (k = 0; k < OOM_NARROW_STEP; k++) {
		i = j * OOM_NARROW_STEP + k;
		if (i >= n)
			return finish_bucket();
		d = *(__u64 *)(e + i * 8) - base;
		if (d >> 32) {
			c->nc_ok = 0;
			return finish_bucket();
		}
		*(__u32 *)(e + i * 4) = (__u32)d;
		if (pn) {
			p = i + pn; /* index in prev, plus n */
			if (p < n || p - n >= OOM_MAX_NSTK || s->prev[p - n] != (__u32)d)
				c->nc_mis = i + 1;
		}
	}
	c->j = j + 1;
	if ((__u64)(j + 1) * OOM_NARROW_STEP >= n)
		return finish_bucket();
	return 0;
}

/* Stages bucket `node` (header fields `size`, `nstk`): copies its stack and
 * counters, then either starts narrowing (phase 1) or finishes at once. */
__attribute__((noinline)) int stage_bucket(__u64 node, __u64 size, __u64 nstk)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	struct walk *c;
	__u64 n, cs, mem;
	__u32 pos, flags = 0, max_nstk;
	__u8 *e;

	if (!s)
		return 0;
	c = &s->walk;
	max_nstk = c->max_nstk;
	if (max_nstk > OOM_MAX_NSTK)
		max_nstk = OOM_MAX_NSTK;
	n = nstk;
	if (n > max_nstk) {
		n = max_nstk;
		flags |= OOM_BF_TRUNC;
	}
	cs = c->cycle_size == 16 ? 16 : 32;
	pos = c->pos;
	/* Neither can happen (flushed at commit; n <= max_nstk <= OOM_MAX_NSTK):
	 * constant bounds for the verifier, which before 6.8 learns nothing from
	 * comparing two registers. Hidden from the compiler, which would drop
	 * the second as redundant. */
	CHECKED(n);
	if (pos >= OOM_CHUNK_FLUSH || n > OOM_MAX_NSTK)
		return 0;
	CHECKED(pos);
	CHECKED(n);
	e = s->payload + pos;

	/* Stack straight into the entry as u64; narrowed in place later. */
	if (n && bpf_probe_read_user(e + OOM_ENTRY_HDR_SIZE, n * 8, (void *)(node + 48)))
		goto fault;
	/* memRecord follows the full stored stack, not our cut of it. Its tail
	 * may lie on a page the process never touched (persistentalloc hands out
	 * fresh mmap memory, and Go never writes counters that stay zero): then
	 * the page is not present and a non-faulting read fails, although it
	 * would read as zeros. Measured: ~10-50 of 200k buckets. Read what lies
	 * before the page boundary and count the rest as zero, flagged. */
	mem = node + 48 + nstk * 8;
	if (bpf_probe_read_user(s->mem, cs * 4, (void *)mem)) {
		__u64 lim = 4096 - (mem & 4095);

		if (lim >= cs * 4 || lim > 4 * OOM_MAX_CYCLE_SIZE)
			goto fault;
		CHECKED(lim);
		__builtin_memset(s->mem, 0, sizeof(s->mem));
		if (bpf_probe_read_user(s->mem, lim, (void *)mem))
			goto fault;
		flags |= OOM_BF_ZERO_TAIL;
	}
	c->cur_node = node;
	c->cur_size = size;
	c->cur_n = n;
	c->cur_flags = flags;
	c->nc_ok = 1;
	c->nc_mis = 0;
	c->nc_pn = c->prev_n > OOM_MAX_NSTK ? 0 : c->prev_n;
	c->j = 0;
	if ((c->watch_flags & OOM_WATCH_PC32) && n) {
		c->phase = 1;
		return 0;
	}
	return finish_bucket();

fault:
	/* Header fine, stack or counters unreadable. */
	c->faults++;
	return 0;
}

/* Visits the list node c->node: checks the walk's limits, reads the bucket
 * header and stages the bucket. Returns 1 to stop the walk. A global function,
 * like the per-bucket steps, so the bpf_loop callback stays tiny. */
__attribute__((noinline)) int visit_node(void)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	__u64 hdr[5]; /* bucket+8: allnext, typ, hash, size, nstk */
	struct walk *c;
	__u64 node;

	if (!s)
		return 1;
	c = &s->walk;
	node = c->node;
	/* Stop at a full ring: every further bucket would cost user reads with
	 * IRQs off for nothing. What was not visited is not counted. */
	if (c->full)
		return 1;
	if (node == 0)
		return 1;
	if (c->seen >= c->max_buckets) {
		c->status |= OOM_END_WALK_LIMIT;
		return 1;
	}
	if (c->deadline_ns && (c->seen & (OOM_BUDGET_CHECK_EVERY - 1)) == 0 &&
	    bpf_ktime_get_ns() >= c->deadline_ns) {
		c->status |= OOM_END_TIME_BUDGET;
		return 1;
	}
	if (node == c->loop_saved) {
		c->status |= OOM_END_LOOP;
		return 1;
	}
	if (++c->loop_steps >= c->loop_power) {
		c->loop_saved = node;
		c->loop_power <<= 1;
		c->loop_steps = 0;
	}
	if (bpf_probe_read_user(hdr, sizeof(hdr), (void *)(node + 8))) {
		/* Without the header there is no next pointer: the list is cut. */
		c->status |= OOM_END_WALK_FAULT;
		return 1;
	}
	c->seen++;
	c->node = hdr[0];
	/* Only memory-profile buckets (typ 1) of a depth Go can record: anything
	 * else is corruption. Leave it out, counted, and follow its link. */
	if (hdr[1] != 1 || hdr[4] > OOM_MAX_NSTK) {
		c->status |= OOM_END_INVALID;
		c->faults++;
		return 0;
	}
	stage_bucket(node, hdr[3], hdr[4]);
	return 0;
}

/* One step of the walk: visits a list node or narrows the staged entry.
 * Returns 1 once the walk has ended, and from then on does nothing: the
 * fallback walk calls it a fixed number of times. */
__attribute__((noinline)) int walk_step(void)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	struct walk *c;

	if (!s)
		return 1;
	c = &s->walk;
	if (c->stop)
		return 1;
	if (c->phase) {
		narrow_step();
		return 0;
	}
	if (visit_node()) {
		c->stop = 1;
		return 1;
	}
	return 0;
}

/* bpf_loop callback of walk_loop. Returns 1 to stop. */
static long walk_one(__u64 index, void *ctx)
{
	long stop = walk_step();

	/* clang knows walk_step returns 0 or 1 and would pass the result through
	 * unchanged, which the verifier (global function: any scalar) cannot
	 * bound to [0, 1]. Hide the value from it so that it branches. */
	asm volatile("" : "+r"(stop));
	if (stop)
		return 1;
	return 0;
}

static __always_inline void emit_end(struct walk *c)
{
	struct oom_end *end = bpf_ringbuf_reserve(&events, sizeof(*end), 0);

	if (!end) {
		__sync_fetch_and_add(&oom_counters.lost_ends, 1);
		return;
	}
	__builtin_memset(end, 0, sizeof(*end));
	end->hdr.type = OOM_REC_END;
	end->hdr.pid = c->pid;
	end->capture_id = c->capture_id;
	end->tid = c->tid;
	end->start_ns = c->start_ns;
	end->pc_base = c->pc_base;
	if (c->rate_addr &&
	    bpf_probe_read_user(&end->mem_profile_rate, 8, (void *)c->rate_addr))
		c->status |= OOM_END_RATE_FAULT;
	if (c->cycle_addr &&
	    bpf_probe_read_user(&end->mprof_cycle, 4, (void *)c->cycle_addr))
		c->status |= OOM_END_CYCLE_FAULT;
	end->status = c->status;
	end->chunks = c->seq;
	end->buckets_seen = c->seen;
	end->buckets_emitted = c->emitted;
	end->ring_full_buckets = c->ring_full;
	end->read_fault_buckets = c->faults;
	end->truncated_stacks = c->truncated;
	end->bytes_emitted = c->bytes;
	end->max_buckets = oom_cfg.max_buckets;
	end->max_nstk = c->max_nstk;
	end->cycle_size = c->cycle_size;
	end->zero_tail_buckets = c->zero_tail;
	bpf_get_current_comm(end->comm, sizeof(end->comm));
	end->elapsed_ns = bpf_ktime_get_ns() - c->start_ns;
	bpf_ringbuf_submit(end, BPF_RB_FORCE_WAKEUP);
}

/* Starts a capture of the calling thread's process if a SIGKILL was generated
 * for it and no walk ran yet: fills in the walk state. `at_exit` says where
 * (OOM_END_AT_EXIT), with that exit's arguments. Returns 1 to walk. Inlined in
 * each tracepoint program, which must make no BPF-to-BPF call: mixed with a
 * tail call that needs the JIT (x86-64 only, 5.10+). */
static __always_inline int capture_start(__u8 at_exit, __u8 group_dead, __u8 leader_only)
{
	__u64 pid_tgid, start;
	__u32 tgid, max, zero = 0;
	struct oom_watch *w;
	struct scratch *s;
	struct walk *c;

	pid_tgid = bpf_get_current_pid_tgid();
	tgid = pid_tgid >> 32;
	w = bpf_map_lookup_elem(&watched, &tgid);
	/* Only a process a SIGKILL was generated for is being killed: exit_group
	 * and exec kill the other threads through this same delivery path. The
	 * mark is on the task the SIGKILL was aimed at: it walks. */
	{
		__u64 task = bpf_get_current_task();
		__u64 *m = bpf_map_lookup_elem(&killed_tasks, &task);

		if (!m || bpf_ktime_get_ns() - *m > OOM_MARK_TTL_NS) {
			if (w)
				__sync_fetch_and_add(&oom_counters.unmarked_deliveries, 1);
			return 0;
		}
		if (!w)
			w = bpf_map_lookup_elem(&dying, &tgid);
		if (!w)
			return 0; /* the killed task is not of a watched process */
		bpf_map_delete_elem(&killed_tasks, &task);
		__sync_fetch_and_add(&oom_counters.kill_marks, 1);
	}
	/* First thread only: every thread of the group dequeues the SIGKILL.
	 * The claim is an insert that fails if the key exists (atomic under the
	 * hash bucket's lock), not a compare-and-swap on w->claimed: BPF atomics
	 * other than a plain add arrived in 5.12. */
	start = bpf_ktime_get_ns();
	/* Any other failure (an LRU map out of free nodes: ENOMEM) walks anyway:
	 * a capture twice is better than none. */
	if (bpf_map_update_elem(&claims, &tgid, &start, BPF_NOEXIST) == -OOM_EEXIST) {
		if (w->walk_end_ns)
			__sync_fetch_and_add(&oom_counters.kills_after_walk, 1);
		else
			__sync_fetch_and_add(&oom_counters.kills_during_walk, 1);
		return 0;
	}
	w->claimed = 1;
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0; /* cannot happen: key 0 of a one-entry array */
	c = &s->walk;
	__builtin_memset(c, 0, sizeof(*c));
	__sync_fetch_and_add(&oom_counters.captures, 1);
	/* Unique per (pid, capture): per-CPU sequence numbers, CPU in the top bits. */
	c->capture_id = (bpf_get_smp_processor_id() << 22) | (s->next_id++ & 0x3fffff);
	c->pid = tgid;
	c->tid = (__u32)pid_tgid;
	c->start_ns = start;
	c->pc_base = w->pc_base;
	c->max_nstk = w->max_nstk > OOM_MAX_NSTK ? OOM_MAX_NSTK : w->max_nstk;
	c->cycle_size = w->cycle_size == 16 ? 16 : 32;
	c->watch_flags = w->flags;
	c->rate_addr = w->mem_profile_rate;
	c->cycle_addr = w->mprof_cycle;
	c->at_exit = at_exit;
	c->group_dead = group_dead;
	c->leader_only = leader_only;
	if (at_exit)
		c->status |= OOM_END_AT_EXIT;
	if (bpf_probe_read_user(&c->node, 8, (void *)w->mbuckets)) {
		c->status |= OOM_END_HEAD_FAULT;
		c->node = 0;
	}
	max = oom_cfg.max_buckets;
	if (max > OOM_MAX_BUCKETS_CEILING)
		max = OOM_MAX_BUCKETS_CEILING;
	c->max_buckets = max;
	if (oom_cfg.walk_budget_ns)
		c->deadline_ns = start + oom_cfg.walk_budget_ns;
	c->loop_power = 1;
	return 1;
}

/* Enters the walk program the loader put in `walkers` (walk_loop where the
 * kernel has bpf_loop, else walk_bounded). Returns only if there is none: then
 * the end record says so. */
static __always_inline void enter_walk(void *ctx)
{
	__u32 zero = 0;
	struct scratch *s;

	bpf_tail_call(ctx, &walkers, 0);
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return;
	s->walk.status |= OOM_END_NO_WALKER;
	emit_end(&s->walk);
}

/* A raw tracepoint: TP_PROTO(int sig, struct kernel_siginfo *info,
 * struct k_sigaction *ka), of which only `sig` is read; it has been the first
 * argument since the tracepoint exists. Raw, not classic, because detaching a
 * classic tracepoint program waits for RCU grace periods (40-120 ms measured)
 * and a raw one does not (~0.1 ms). Here the walk holds the victim's siglock
 * with interrupts off; where the kernel runs sched_process_exit before
 * exit_mm the loader moves the walk there (OOM_CFG_WALK_AT_EXIT). */
SEC("raw_tracepoint/signal_deliver")
int signal_deliver(__u64 *ctx)
{
	if ((int)ctx[0] != 9 || (oom_cfg.flags & OOM_CFG_WALK_AT_EXIT))
		return 0;
	if (capture_start(0, 0, 0))
		enter_walk(ctx);
	return 0;
}

/* signal_generate, in the sender's context: marks the task a SIGKILL was
 * generated for (the OOM killer, kill -9, cgroup.kill, systemd-oomd), so that
 * its delivery (or exit) walks. A raw tracepoint: TP_PROTO(int sig, struct
 * kernel_siginfo *info, struct task_struct *task, int group, int result),
 * stable since the tracepoint has `result` (3.x); every signal on the host
 * passes here and all but SIGKILL return at once (a classic tracepoint cost
 * ~640 ns per signal: the record is built before the program runs). */
SEC("raw_tracepoint/signal_generate")
int signal_generate(__u64 *ctx)
{
	__u64 task, now;
	int result;

	if ((int)ctx[0] != 9)
		return 0;
	result = (int)ctx[4];
	if (result != TRACE_SIGNAL_DELIVERED && result != TRACE_SIGNAL_ALREADY_PENDING)
		return 0;
	task = ctx[2];
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&killed_tasks, &task, &now, BPF_ANY);
	__sync_fetch_and_add(&oom_counters.sigkills_marked, 1);
	return 0;
}

static void victim_common(struct oom_victim *v, int pid)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	v->hdr.type = OOM_REC_VICTIM;
	v->hdr.pid = pid;
	v->ts_ns = bpf_ktime_get_ns();
	v->trigger_pid = pid_tgid >> 32;
	v->trigger_tid = (__u32)pid_tgid;
	v->trigger_cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(v->trigger_comm, sizeof(v->trigger_comm));
}

/* mark_victim on kernels whose record has only `pid` (before ~6.9). */
SEC("tracepoint/oom/mark_victim")
int mark_victim_v1(struct tp_mark_victim_v1 *ctx)
{
	struct oom_victim *v = bpf_ringbuf_reserve(&events, sizeof(*v), 0);

	if (!v) {
		__sync_fetch_and_add(&oom_counters.lost_events, 1);
		return 0;
	}
	__builtin_memset(v, 0, sizeof(*v));
	victim_common(v, ctx->pid);
	bpf_ringbuf_submit(v, 0);
	return 0;
}

/* mark_victim with comm, rss figures, uid and oom_score_adj (~6.9+). */
SEC("tracepoint/oom/mark_victim")
int mark_victim(struct tp_mark_victim *ctx)
{
	struct oom_victim *v = bpf_ringbuf_reserve(&events, sizeof(*v), 0);
	__u32 loc;

	if (!v) {
		__sync_fetch_and_add(&oom_counters.lost_events, 1);
		return 0;
	}
	__builtin_memset(v, 0, sizeof(*v));
	victim_common(v, ctx->pid);
	v->total_vm_kb = ctx->total_vm;
	v->anon_rss_kb = ctx->anon_rss;
	v->file_rss_kb = ctx->file_rss;
	v->shmem_rss_kb = ctx->shmem_rss;
	v->pgtables_kb = ctx->pgtables;
	v->uid = ctx->uid;
	v->oom_score_adj = ctx->oom_score_adj;
	v->has_details = 1;
	loc = ctx->comm_loc;
	bpf_probe_read_kernel_str(v->comm, sizeof(v->comm), (char *)ctx + (loc & 0xffff));
	bpf_ringbuf_submit(v, 0);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int sched_process_exec(struct tp_sched_process_exec *ctx)
{
	struct oom_exec *x;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 loc = ctx->filename_loc;

	/* A new image: whatever user space learnt about the old one is stale. */
	bpf_map_delete_elem(&watched, &tgid);
	bpf_map_delete_elem(&dying, &tgid);
	bpf_map_delete_elem(&claims, &tgid);
	x = bpf_ringbuf_reserve(&events, sizeof(*x), 0);
	if (!x) {
		__sync_fetch_and_add(&oom_counters.lost_events, 1);
		return 0;
	}
	x->hdr.type = OOM_REC_EXEC;
	x->hdr.pid = tgid;
	x->ts_ns = bpf_ktime_get_ns();
	x->old_pid = ctx->old_pid;
	x->_pad = 0;
	bpf_get_current_comm(x->comm, sizeof(x->comm));
	if (bpf_probe_read_kernel_str(x->filename, sizeof(x->filename),
				      (char *)ctx + (loc & 0xffff)) < 0)
		x->filename[0] = 0;
	bpf_ringbuf_submit(x, 0);
	return 0;
}

static __always_inline int exit_common(__u8 group_dead, __u8 leader_only)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u64 task = bpf_get_current_task();
	struct oom_exit *x;
	struct oom_watch *w;

	/* A killed task that never walked (not watched) leaves no mark behind: its
	 * address may be another task's later. */
	bpf_map_delete_elem(&killed_tasks, &task);
	if (!group_dead)
		return 0;
	if (leader_only) {
		/* Other threads may still take a kill aimed at them: see `dying`. */
		w = bpf_map_lookup_elem(&watched, &tgid);
		if (w)
			bpf_map_update_elem(&dying, &tgid, w, BPF_ANY);
	}
	/* The group is gone: its pid may be reused. With the leader's exit standing
	 * in for the group's, another thread may still take a kill: keep the claim
	 * (dropped at the pid's next exec, or by the LRU). */
	if (!leader_only)
		bpf_map_delete_elem(&claims, &tgid);
	if (bpf_map_delete_elem(&watched, &tgid))
		return 0; /* not watched: no event */
	x = bpf_ringbuf_reserve(&events, sizeof(*x), 0);
	if (!x) {
		__sync_fetch_and_add(&oom_counters.lost_events, 1);
		return 0;
	}
	x->hdr.type = OOM_REC_EXIT;
	x->hdr.pid = tgid;
	x->ts_ns = bpf_ktime_get_ns();
	x->tid = (__u32)pid_tgid;
	x->_pad = 0;
	bpf_get_current_comm(x->comm, sizeof(x->comm));
	bpf_ringbuf_submit(x, 0);
	return 0;
}

/* sched_process_exit with `group_dead` (~6.16+): fires for the last thread. */
/* Raw: TP_PROTO(struct task_struct *p, bool group_dead) since ~6.16. On older
 * kernels the tracepoint has one argument and attaching this program fails
 * (it reads past the arguments), so the loader falls back to the _v1 one. */
SEC("raw_tracepoint/sched_process_exit")
int sched_process_exit(__u64 *ctx)
{
	__u8 group_dead = ctx[1];

	/* Before exit_mm here (6.16+): the process's memory is still mapped, and
	 * interrupts are on. The first exiting thread of a killed process walks;
	 * the walk program then does this exit's part (walk_end). */
	if ((oom_cfg.flags & OOM_CFG_WALK_AT_EXIT) && capture_start(1, group_dead, 0))
		enter_walk(ctx);
	return exit_common(group_dead, 0);
}

/* Older kernels: no group_dead; the leader's exit stands in for the group's. */
SEC("raw_tracepoint/sched_process_exit")
int sched_process_exit_v1(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u8 leader = (__u32)pid_tgid == (__u32)(pid_tgid >> 32);

	/* Only if the loader chose the exit placement and this variant was attached
	 * after all: a kernel that ran exit_mm already says so (HEAD_FAULT). */
	if ((oom_cfg.flags & OOM_CFG_WALK_AT_EXIT) && capture_start(1, leader, 1))
		enter_walk(ctx);
	return exit_common(leader, 1);
}

/* ---- the walk programs: one of them is loaded, into `walkers` ---- */

/* Ends the walk: commits an entry the steps ran out in the middle of, flushes,
 * sends the end record, and does the exit's part if the walk ran there. */
static __always_inline void walk_end(struct walk *c)
{
	struct oom_watch *w;
	__u32 pid;

	/* Stopped with list left, or in the middle of an entry: the steps ran out. */
	if (!c->stop && (c->node || c->phase))
		c->status |= OOM_END_STEP_CAP;
	if (c->phase) {
		/* Commit it with u64 PCs. */
		c->nc_ok = 0;
		finish_bucket();
	}
	flush_chunk();
	emit_end(c);
	/* Diagnostics only: after a racing exit + reuse of the entry this may
	 * land in another process's entry, where it only shifts the counters. */
	pid = c->pid;
	w = bpf_map_lookup_elem(&watched, &pid);
	if (!w)
		w = bpf_map_lookup_elem(&dying, &pid);
	if (w)
		w->walk_end_ns = bpf_ktime_get_ns();
	if (c->at_exit)
		exit_common(c->group_dead, c->leader_only);
}

/* The walk on kernels with bpf_loop (5.17+): up to OOM_MAX_LOOPS steps. */
SEC("raw_tracepoint/walk")
int walk_loop(void *ctx)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);

	if (!s)
		return 0;
	bpf_loop(OOM_MAX_LOOPS, walk_one, NULL, 0);
	walk_end(&s->walk);
	return 0;
}

/*
 * The walk without bpf_loop (before 5.17): OOM_FALLBACK_STEPS steps, then a
 * tail call to itself, OOM_FALLBACK_RUNS runs in all (OOM_FALLBACK_MAX_STEPS).
 * The verifier walks a bounded loop once per iteration, and every branch that
 * depends on data doubles what it must keep in mind ("The sequence of 8193
 * jumps is too complex" at 10k iterations with early exits). So the steps are
 * straight-line calls of a global function (verified once; one instruction
 * each here), unrolled OOM_FALLBACK_UNROLL times, and the only data-dependent
 * branch, whether the walk has ended, comes once per round.
 */
SEC("raw_tracepoint/walk")
int walk_bounded(void *ctx)
{
	__u32 zero = 0, i, k;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);

	if (!s)
		return 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < OOM_FALLBACK_ROUNDS; i++) {
#pragma unroll
		for (k = 0; k < OOM_FALLBACK_UNROLL; k++)
			walk_step();
		if (s->walk.stop)
			break;
	}
	if (!s->walk.stop)
		bpf_tail_call(ctx, &walkers, 0);
	/* Ended, or the kernel's tail-call limit reached. */
	walk_end(&s->walk);
	return 0;
}
