// SPDX-License-Identifier: GPL-2.0
/*
 * oomprof's growth sampler: which code makes a process's memory grow.
 *
 * A perf_event program, attached by the loader to a software
 * PERF_COUNT_SW_PAGE_FAULTS event on every CPU with a sample period of N
 * faults. A page fault is the first touch of a page (anonymous memory
 * becomes resident there), so the faulting user stacks, sampled one in N,
 * attribute RSS growth to code: any language, no hooks in the allocator.
 *
 * Each sample takes the faulting task's user stack with bpf_get_stack
 * (frame pointers; the kernel takes the user registers of the fault) and adds
 * one to its entry in `growth`, keyed by (tgid, depth, FNV-1a of the PCs).
 * User space reads and deletes entries; when the map is full a new stack is
 * refused and counted (growth_counters.dropped_full), never dropped silently.
 *
 * Kept apart from oomprof.bpf.c so that the OOM capture loads where
 * perf_event programs or bpf_get_stack are refused. Helpers used: map
 * lookup/update, ktime_get_ns, get_current_pid_tgid, get_stack (4.18+).
 * Layouts are in include/oom_abi.h.
 */
#include <linux/bpf.h>
#include "oom_abi.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)BPF_FUNC_map_update_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)BPF_FUNC_get_current_pid_tgid;
static long (*bpf_get_stack)(void *ctx, void *buf, __u32 size, __u64 flags) = (void *)BPF_FUNC_get_stack;

char LICENSE[] SEC("license") = "GPL";

/* Patched by the loader (frozen .rodata). */
const volatile struct oom_growth_config growth_cfg = {
	.tgid = 0,
	.abi_version = OOM_ABI_VERSION,
};

struct oom_growth_counters growth_counters = {};

/* (tgid, depth, hash) → samples, first/last time and the stack. The loader
 * sets max_entries. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OOM_GROWTH_DEFAULT_ENTRIES);
	__type(key, struct oom_growth_key);
	__type(value, struct oom_growth_val);
} growth SEC(".maps");

/* Staging value: too large for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct oom_growth_val);
} growth_scratch SEC(".maps");

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

SEC("perf_event")
int growth_sample(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (tgid == 0) {
		__sync_fetch_and_add(&growth_counters.kernel, 1);
		return 0;
	}
	if (growth_cfg.tgid != 0 && tgid != growth_cfg.tgid)
		return 0;
	__sync_fetch_and_add(&growth_counters.samples, 1);

	__u32 zero = 0;
	struct oom_growth_val *v = bpf_map_lookup_elem(&growth_scratch, &zero);
	if (!v)
		return 0;
	/* Zero-fills the rest of pcs (kernel/bpf/stackmap.c __bpf_get_stack). */
	long n = bpf_get_stack(ctx, v->pcs, sizeof(v->pcs), BPF_F_USER_STACK);
	if (n < 8) {
		__sync_fetch_and_add(&growth_counters.no_stack, 1);
		return 0;
	}
	__u32 depth = n / 8;
	__u64 h = FNV_OFFSET;
	for (__u32 i = 0; i < OOM_GROWTH_MAX_DEPTH; i++) {
		if (i >= depth)
			break;
		h = (h ^ v->pcs[i]) * FNV_PRIME;
	}
	struct oom_growth_key key = {.tgid = tgid, .depth = depth, .hash = h};
	__u64 now = bpf_ktime_get_ns();

	struct oom_growth_val *e = bpf_map_lookup_elem(&growth, &key);
	if (!e) {
		v->samples = 1;
		v->first_ns = now;
		v->last_ns = now;
		long err = bpf_map_update_elem(&growth, &key, v, BPF_NOEXIST);
		if (err == 0) {
			__sync_fetch_and_add(&growth_counters.new_stacks, 1);
			return 0;
		}
		/* -EEXIST: another CPU inserted it first; count on its entry. */
		e = bpf_map_lookup_elem(&growth, &key);
		if (!e) {
			__sync_fetch_and_add(&growth_counters.dropped_full, 1);
			return 0;
		}
	}
	__sync_fetch_and_add(&e->samples, 1);
	e->last_ns = now;
	return 0;
}
