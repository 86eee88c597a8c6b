// SPDX-License-Identifier: GPL-2.0
/*
 * oomprof's kernel program.
 *
 * - signal/signal_deliver: when a watched Go process is about to die from
 *   SIGKILL, walk its runtime.mbuckets list (allnext chain) in the victim's
 *   own context with bpf_loop + bpf_probe_read_user and stream compact bucket
 *   entries into the `events` ring buffer, then an end-of-capture record.
 * - oom/mark_victim: who the OOM killer picked (user space correlates it with
 *   a capture to classify "oom" vs "killed").
 * - sched/sched_process_exec, sched/sched_process_exit: discovery and cleanup.
 *
 * Only classic tracepoint fields at fixed offsets are read (no BTF/CO-RE).
 * Record layouts and limits live in include/oom_abi.h.
 *
 * Why one pass and no split walk (measured on the 2-CPU test VM, see
 * tests/tests/kernel_walk.rs and oom_counters.kills_*): signal_deliver runs
 * under spin_lock_irq(&sighand->siglock), so the ring's wake-up irq_work
 * cannot run until the walk ends, and the consumer does not drain during it
 * (200k buckets into an 8 MiB ring: 43k emitted, the rest ring-full). The
 * victim's other threads (5-6 in a Go process) wait on the same siglock and
 * all take their SIGKILL right after the walk, back to back (counted: 0
 * during, all after), and the last thread's sched_process_exit follows
 * 0.1-0.4 ms later (once 18 ms): no window in which a woken consumer could
 * have drained megabytes. So a capture has to fit in the free ring space at
 * the time of the kill. The entries are compact (u32 PC offsets, only
 * non-zero cycles, u32 counters when they fit, many entries per ring record)
 * and, when the ring does run out, the walk keeps following `allnext` without
 * copying, so the end record counts exactly how many buckets were dropped.
 */
#include <linux/bpf.h>
#include "oom_abi.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define NULL ((void *)0)

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_delete_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)BPF_FUNC_get_current_pid_tgid;
static long (*bpf_get_current_comm)(void *buf, __u32 size) = (void *)BPF_FUNC_get_current_comm;
static __u64 (*bpf_get_current_cgroup_id)(void) = (void *)BPF_FUNC_get_current_cgroup_id;
static long (*bpf_probe_read_user)(void *dst, __u32 size, const void *src) = (void *)BPF_FUNC_probe_read_user;
static long (*bpf_probe_read_kernel_str)(void *dst, __u32 size, const void *src) = (void *)BPF_FUNC_probe_read_kernel_str;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size, __u64 flags) = (void *)BPF_FUNC_ringbuf_output;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)BPF_FUNC_ringbuf_reserve;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)BPF_FUNC_ringbuf_submit;
static __u64 (*bpf_ringbuf_query)(void *ringbuf, __u64 flags) = (void *)BPF_FUNC_ringbuf_query;
static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)BPF_FUNC_loop;

char LICENSE[] SEC("license") = "GPL";

/* Patched by the loader (frozen .rodata). */
const volatile struct oom_config oom_cfg = {
	.max_buckets = OOM_DEFAULT_MAX_BUCKETS,
	.abi_version = OOM_ABI_VERSION,
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

/* Per-CPU staging area for one chunk record. Safe per CPU: the programs
 * run with migration disabled and tracepoint programs do not nest. */
struct scratch {
	struct oom_chunk chunk;
	__u8 payload[OOM_CHUNK_CAP];
	__u8 mem[4 * OOM_MAX_CYCLE_SIZE];
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

/* ---- classic tracepoint records (offsets from the event `format`; the
 * loader checks them against the running kernel before choosing a program) */

struct tp_signal_deliver {
	__u64 common;
	int sig; /* @8 */
};

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

struct tp_sched_process_exec {
	__u64 common;
	__u32 filename_loc; /* @8 __data_loc char[] */
	int pid;            /* @12 */
	int old_pid;        /* @16 */
};

struct tp_sched_process_exit {
	__u64 common;
	char comm[16];   /* @8 */
	int pid;         /* @24 */
	int prio;        /* @28 */
	__u8 group_dead; /* @32, since ~6.16 */
};

/* ---- the walk ---- */

struct walk {
	__u64 node;      /* next bucket to visit, 0 at the end */
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
	__u32 _pad;
};

/*
 * Verifier strategy: the per-bucket work lives in global functions
 * (flush_chunk, emit_bucket). A global function is verified once, on its own,
 * with its arguments as unknown values; a static callback body is instead
 * re-verified for every simulated bpf_loop iteration until its states
 * converge, which a callback this size never does ("The sequence of 8193
 * jumps is too complex"). The walk callback itself stays tiny.
 */

/* Sends the staged chunk, or counts its buckets as dropped. */
__attribute__((noinline)) int flush_chunk(struct walk *c)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	__u32 pos;
	__u64 total, used, size;

	if (!c || !s)
		return 0;
	pos = c->pos;
	if (pos == 0)
		return 0;
	if (pos > OOM_CHUNK_CAP)
		pos = OOM_CHUNK_CAP;
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

struct narrow {
	__u64 base;
	__u64 n;   /* PCs in the entry */
	__u32 pos; /* entry offset in the payload */
	__u32 ok;
};

/* PCs 4*j .. 4*j+3 of the staged entry: each u64 at 8*i becomes a u32 at
 * 4*i. Forward order is safe in place: slot 4*i is written after the u64 at
 * 8*i, and every u64 it overlaps (index <= i), was read. Four per call
 * amortises the call and the map lookup (measured: the per-PC version made the
 * walk ~3x slower than the reads themselves). */
__attribute__((noinline)) int narrow_pc(__u64 j, struct narrow *nc)
{
	__u32 zero = 0, pos, k;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	__u8 *e;
	__u64 d, i, n;

	if (!nc || !s)
		return 1;
	pos = nc->pos;
	n = nc->n;
	if (pos >= OOM_CHUNK_FLUSH || j >= OOM_MAX_NSTK / 4)
		return 1;
	e = s->payload + pos + OOM_ENTRY_HDR_SIZE;
#pragma unroll
	for (k = 0; k < 4; k++) {
		i = j * 4 + k;
		if (i >= n)
			return 1;
		d = *(__u64 *)(e + i * 8) - nc->base;
		if (d >> 32) {
			nc->ok = 0;
			return 1;
		}
		*(__u32 *)(e + i * 4) = (__u32)d;
	}
	return 0;
}

static long narrow_one(__u64 i, struct narrow *nc)
{
	long r = narrow_pc(i, nc);

	/* The verifier needs a provable 0/1 callback result; keep clang from
	 * dropping the mask with what it knows about narrow_pc. */
	asm volatile("" : "+r"(r));
	return r & 1;
}

/* Stages one bucket entry (flushing the chunk when it is full enough).
 * `node` is the bucket address, `size`/`nstk` its header fields. */
__attribute__((noinline)) int emit_bucket(struct walk *c, __u64 node, __u64 size, __u64 nstk)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	__u64 n, cs, i, a[4], f[4];
	__u32 pos, flags = 0, cycles = 0, pc32 = 0, cnt32 = OOM_BF_CNT32, off, max_nstk;
	__u8 *e;

	if (!c || !s)
		return 0;
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
	if (pos >= OOM_CHUNK_FLUSH)
		return 0; /* cannot happen (flushed below); bounds for the verifier */
	e = s->payload + pos;

	/* Stack straight into the entry as u64; narrowed in place below. */
	if (n && bpf_probe_read_user(e + OOM_ENTRY_HDR_SIZE, n * 8, (void *)(node + 48)))
		goto fault;
	/* memRecord follows the full stored stack, not our cut of it. */
	if (bpf_probe_read_user(s->mem, cs * 4, (void *)(node + 48 + nstk * 8)))
		goto fault;

	/* u32 PC offsets (nested bpf_loop: a bounded loop here explodes the
	 * verifier state count); if one PC does not fit (e.g. a cgo
	 * frame in libc), re-read the stack as u64. */
	if ((c->watch_flags & OOM_WATCH_PC32) && n) {
		struct narrow nc = { .base = c->pc_base, .n = n, .pos = pos, .ok = 1 };

		bpf_loop((n + 3) / 4, narrow_one, &nc, 0);
		if (nc.ok)
			pc32 = OOM_BF_PC32;
		else if (bpf_probe_read_user(e + OOM_ENTRY_HDR_SIZE, n * 8, (void *)(node + 48)))
			goto fault;
	}
	off = OOM_ENTRY_HDR_SIZE + n * (pc32 ? 4 : 8);
	flags |= pc32;

	/* Cycles: {allocs, frees} are the first two words of each. */
	a[0] = *(__u64 *)(s->mem + 0 * cs);
	f[0] = *(__u64 *)(s->mem + 0 * cs + 8);
	a[1] = *(__u64 *)(s->mem + 1 * cs);
	f[1] = *(__u64 *)(s->mem + 1 * cs + 8);
	a[2] = *(__u64 *)(s->mem + 2 * cs);
	f[2] = *(__u64 *)(s->mem + 2 * cs + 8);
	a[3] = *(__u64 *)(s->mem + 3 * cs);
	f[3] = *(__u64 *)(s->mem + 3 * cs + 8);
	for (i = 0; i < 4; i++) {
		if (a[i] | f[i])
			cycles |= 1 << i;
		if ((a[i] | f[i]) >> 32)
			cnt32 = 0;
	}
	flags |= cnt32;
	for (i = 0; i < 4; i++) {
		if (!(cycles & (1 << i)))
			continue;
		if (off > OOM_MAX_ENTRY - 16)
			break;
		if (cnt32) {
			*(__u32 *)(e + off) = a[i];
			*(__u32 *)(e + off + 4) = f[i];
			off += 8;
		} else {
			*(__u64 *)(e + off) = a[i];
			*(__u64 *)(e + off + 8) = f[i];
			off += 16;
		}
	}
	*(__u64 *)e = size;
	*(__u16 *)(e + 8) = n;
	*(e + 10) = cycles;
	*(e + 11) = flags;
	if (flags & OOM_BF_TRUNC)
		c->truncated++;
	c->pos = pos + off;
	c->chunk_buckets++;
	if (c->pos >= OOM_CHUNK_FLUSH)
		flush_chunk(c);
	return 0;

fault:
	/* Header fine, stack or counters unreadable (e.g. swapped out). */
	c->faults++;
	return 0;
}

/* One list node: bpf_loop callback. Returns 1 to stop the walk. */
static long walk_one(__u64 index, struct walk *c)
{
	__u64 hdr[5]; /* bucket+8: allnext, typ, hash, size, nstk */
	__u64 node = c->node;

	if (node == 0)
		return 1;
	if (bpf_probe_read_user(hdr, sizeof(hdr), (void *)(node + 8))) {
		/* Without the header there is no next pointer: the list is cut. */
		c->status |= OOM_END_WALK_FAULT;
		return 1;
	}
	c->seen++;
	c->node = hdr[0];
	if (c->full) {
		c->ring_full++;
		return 0;
	}
	emit_bucket(c, node, hdr[3], hdr[4]);
	return 0;
}

static void emit_end(struct walk *c, __u32 tid, __u64 start)
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
	end->tid = tid;
	end->start_ns = start;
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
	bpf_get_current_comm(end->comm, sizeof(end->comm));
	end->elapsed_ns = bpf_ktime_get_ns() - start;
	bpf_ringbuf_submit(end, BPF_RB_FORCE_WAKEUP);
}

SEC("tracepoint/signal/signal_deliver")
int signal_deliver(struct tp_signal_deliver *ctx)
{
	__u64 pid_tgid, start;
	__u32 tgid, max;
	struct oom_watch *w;
	struct walk c = {};

	if (ctx->sig != 9)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	tgid = pid_tgid >> 32;
	w = bpf_map_lookup_elem(&watched, &tgid);
	if (!w)
		return 0;
	/* First thread only: every thread of the group dequeues the SIGKILL. */
	if (__sync_val_compare_and_swap(&w->claimed, 0, 1) != 0) {
		if (w->walk_end_ns)
			__sync_fetch_and_add(&oom_counters.kills_after_walk, 1);
		else
			__sync_fetch_and_add(&oom_counters.kills_during_walk, 1);
		return 0;
	}

	start = bpf_ktime_get_ns();
	__sync_fetch_and_add(&oom_counters.captures, 1);
	c.capture_id = __sync_fetch_and_add(&oom_counters.next_capture_id, 1);
	c.pid = tgid;
	c.pc_base = w->pc_base;
	c.max_nstk = w->max_nstk > OOM_MAX_NSTK ? OOM_MAX_NSTK : w->max_nstk;
	c.cycle_size = w->cycle_size == 16 ? 16 : 32;
	c.watch_flags = w->flags;
	c.rate_addr = w->mem_profile_rate;
	c.cycle_addr = w->mprof_cycle;
	if (bpf_probe_read_user(&c.node, 8, (void *)w->mbuckets)) {
		c.status |= OOM_END_HEAD_FAULT;
		c.node = 0;
	}
	max = oom_cfg.max_buckets;
	if (max > OOM_MAX_BUCKETS_CEILING)
		max = OOM_MAX_BUCKETS_CEILING;
	bpf_loop(max, walk_one, &c, 0);
	if (c.node && !(c.status & OOM_END_WALK_FAULT) && c.seen >= max)
		c.status |= OOM_END_WALK_LIMIT;
	flush_chunk(&c);
	emit_end(&c, (__u32)pid_tgid, start);
	/* Diagnostics only: after a racing exit + reuse of the entry this may
	 * land in another process's entry, where it only shifts the counters. */
	w->walk_end_ns = bpf_ktime_get_ns();
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

static int exit_common(__u8 group_dead)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct oom_exit *x;

	if (!group_dead)
		return 0;
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
SEC("tracepoint/sched/sched_process_exit")
int sched_process_exit(struct tp_sched_process_exit *ctx)
{
	return exit_common(ctx->group_dead);
}

/* Older kernels: no group_dead; the leader's exit stands in for the group's. */
SEC("tracepoint/sched/sched_process_exit")
int sched_process_exit_v1(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	return exit_common((__u32)pid_tgid == (__u32)(pid_tgid >> 32));
}
