//! Cross-checks `oom_core::abi` against the compiled object: the BTF that clang
//! emitted for `include/oom_abi.h` must give the same struct sizes and field
//! offsets as the Rust mirror. Runs in every `cargo test`, no root needed.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};

use object::{Object, ObjectSection};
use oom_core::abi::*;

/// struct name -> (size, member name -> byte offset), from raw BTF.
fn btf_structs(btf: &[u8]) -> HashMap<String, (u32, HashMap<String, u32>)> {
    let u32_at = |o: usize| u32::from_le_bytes(btf[o..o + 4].try_into().unwrap());
    assert_eq!(&btf[0..2], &[0x9f, 0xeb], "BTF magic");
    let hdr_len = u32_at(4) as usize;
    let (type_off, type_len) = (u32_at(8) as usize, u32_at(12) as usize);
    let str_off = u32_at(16) as usize;
    let types = hdr_len + type_off;
    let strs = hdr_len + str_off;
    let name = |off: u32| {
        let s = &btf[strs + off as usize..];
        String::from_utf8_lossy(&s[..s.iter().position(|&b| b == 0).unwrap()]).into_owned()
    };
    let mut out = HashMap::new();
    let mut p = types;
    while p < types + type_len {
        let (name_off, info, size) = (u32_at(p), u32_at(p + 4), u32_at(p + 8));
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        p += 12;
        let extra = match kind {
            1 | 14 | 17 => 4,
            3 => 12,
            4 | 5 | 15 | 19 => 12 * vlen,
            6 | 13 => 8 * vlen,
            _ => 0,
        };
        if kind == 4 {
            let mut members = HashMap::new();
            for m in 0..vlen {
                let q = p + 12 * m;
                // Without the kind_flag bitfield encoding, offset is in bits.
                members.insert(name(u32_at(q)), u32_at(q + 8) / 8);
            }
            out.insert(name(name_off), (size, members));
        }
        p += extra;
    }
    out
}

#[test]
fn growth_mirror_matches_the_compiled_abi() {
    let elf = object::File::parse(oom_bpf::growth_object()).unwrap();
    let btf = elf.section_by_name(".BTF").unwrap().data().unwrap();
    let s = btf_structs(btf);
    let check = |c: &str, size: usize, fields: &[(&str, usize)]| {
        let (csize, members) = s
            .get(c)
            .unwrap_or_else(|| panic!("struct {c} not in the growth object's BTF"));
        assert_eq!(*csize as usize, size, "sizeof(struct {c})");
        for (f, off) in fields {
            assert_eq!(members[*f] as usize, *off, "offsetof(struct {c}, {f})");
        }
    };
    check(
        "oom_growth_key",
        size_of::<RawGrowthKey>(),
        &[
            ("tgid", offset_of!(RawGrowthKey, tgid)),
            ("depth", offset_of!(RawGrowthKey, depth)),
            ("hash", offset_of!(RawGrowthKey, hash)),
        ],
    );
    check(
        "oom_growth_val",
        size_of::<RawGrowthVal>(),
        &[
            ("samples", offset_of!(RawGrowthVal, samples)),
            ("first_ns", offset_of!(RawGrowthVal, first_ns)),
            ("last_ns", offset_of!(RawGrowthVal, last_ns)),
            ("pcs", offset_of!(RawGrowthVal, pcs)),
        ],
    );
    check(
        "oom_growth_config",
        size_of::<RawGrowthConfig>(),
        &[
            ("tgid", offset_of!(RawGrowthConfig, tgid)),
            ("abi_version", offset_of!(RawGrowthConfig, abi_version)),
        ],
    );
    check(
        "oom_growth_counters",
        size_of::<RawGrowthCounters>(),
        &[
            ("samples", offset_of!(RawGrowthCounters, samples)),
            ("new_stacks", offset_of!(RawGrowthCounters, new_stacks)),
            ("dropped_full", offset_of!(RawGrowthCounters, dropped_full)),
            ("no_stack", offset_of!(RawGrowthCounters, no_stack)),
            ("kernel", offset_of!(RawGrowthCounters, kernel)),
        ],
    );
}

#[test]
fn rust_mirror_matches_the_compiled_abi() {
    let elf = object::File::parse(oom_bpf::object()).unwrap();
    let btf = elf.section_by_name(".BTF").unwrap().data().unwrap();
    let s = btf_structs(btf);
    let check = |c: &str, size: usize, fields: &[(&str, usize)]| {
        let (csize, members) = s
            .get(c)
            .unwrap_or_else(|| panic!("struct {c} not in the object's BTF"));
        assert_eq!(*csize as usize, size, "sizeof(struct {c})");
        for (f, off) in fields {
            assert_eq!(members[*f] as usize, *off, "offsetof(struct {c}, {f})");
        }
    };
    check(
        "oom_rec_hdr",
        size_of::<RawRecHdr>(),
        &[("type", 0), ("pid", 4)],
    );
    check(
        "oom_victim",
        size_of::<RawVictim>(),
        &[
            ("ts_ns", offset_of!(RawVictim, ts_ns)),
            (
                "trigger_cgroup_id",
                offset_of!(RawVictim, trigger_cgroup_id),
            ),
            ("total_vm_kb", offset_of!(RawVictim, total_vm_kb)),
            ("pgtables_kb", offset_of!(RawVictim, pgtables_kb)),
            ("uid", offset_of!(RawVictim, uid)),
            ("oom_score_adj", offset_of!(RawVictim, oom_score_adj)),
            ("has_details", offset_of!(RawVictim, has_details)),
            ("comm", offset_of!(RawVictim, comm)),
            ("trigger_comm", offset_of!(RawVictim, trigger_comm)),
        ],
    );
    check(
        "oom_exec",
        size_of::<RawExec>(),
        &[
            ("old_pid", offset_of!(RawExec, old_pid)),
            ("comm", offset_of!(RawExec, comm)),
            ("filename", offset_of!(RawExec, filename)),
        ],
    );
    check(
        "oom_exit",
        size_of::<RawExit>(),
        &[
            ("tid", offset_of!(RawExit, tid)),
            ("comm", offset_of!(RawExit, comm)),
        ],
    );
    check(
        "oom_chunk",
        size_of::<RawChunk>(),
        &[
            ("capture_id", offset_of!(RawChunk, capture_id)),
            ("seq", offset_of!(RawChunk, seq)),
            ("buckets", offset_of!(RawChunk, buckets)),
            ("len", offset_of!(RawChunk, len)),
        ],
    );
    check(
        "oom_end",
        size_of::<RawEnd>(),
        &[
            ("capture_id", offset_of!(RawEnd, capture_id)),
            ("tid", offset_of!(RawEnd, tid)),
            ("start_ns", offset_of!(RawEnd, start_ns)),
            ("elapsed_ns", offset_of!(RawEnd, elapsed_ns)),
            ("pc_base", offset_of!(RawEnd, pc_base)),
            ("mem_profile_rate", offset_of!(RawEnd, mem_profile_rate)),
            ("mprof_cycle", offset_of!(RawEnd, mprof_cycle)),
            ("status", offset_of!(RawEnd, status)),
            ("chunks", offset_of!(RawEnd, chunks)),
            ("buckets_seen", offset_of!(RawEnd, buckets_seen)),
            ("buckets_emitted", offset_of!(RawEnd, buckets_emitted)),
            ("ring_full_buckets", offset_of!(RawEnd, ring_full_buckets)),
            ("read_fault_buckets", offset_of!(RawEnd, read_fault_buckets)),
            ("truncated_stacks", offset_of!(RawEnd, truncated_stacks)),
            ("bytes_emitted", offset_of!(RawEnd, bytes_emitted)),
            ("max_buckets", offset_of!(RawEnd, max_buckets)),
            ("max_nstk", offset_of!(RawEnd, max_nstk)),
            ("cycle_size", offset_of!(RawEnd, cycle_size)),
            ("zero_tail_buckets", offset_of!(RawEnd, zero_tail_buckets)),
            ("comm", offset_of!(RawEnd, comm)),
        ],
    );
    check(
        "oom_watch",
        size_of::<RawWatch>(),
        &[
            ("mbuckets", offset_of!(RawWatch, mbuckets)),
            ("mem_profile_rate", offset_of!(RawWatch, mem_profile_rate)),
            ("mprof_cycle", offset_of!(RawWatch, mprof_cycle)),
            ("pc_base", offset_of!(RawWatch, pc_base)),
            ("cycle_size", offset_of!(RawWatch, cycle_size)),
            ("max_nstk", offset_of!(RawWatch, max_nstk)),
            ("flags", offset_of!(RawWatch, flags)),
            ("claimed", offset_of!(RawWatch, claimed)),
            ("walk_end_ns", offset_of!(RawWatch, walk_end_ns)),
        ],
    );
    check(
        "oom_config",
        size_of::<RawConfig>(),
        &[
            ("max_buckets", offset_of!(RawConfig, max_buckets)),
            ("abi_version", offset_of!(RawConfig, abi_version)),
            ("walk_budget_ns", offset_of!(RawConfig, walk_budget_ns)),
            ("flags", offset_of!(RawConfig, flags)),
        ],
    );
    check(
        "oom_counters",
        size_of::<RawCounters>(),
        &[
            ("captures", offset_of!(RawCounters, captures)),
            ("lost_events", offset_of!(RawCounters, lost_events)),
            ("lost_ends", offset_of!(RawCounters, lost_ends)),
            (
                "kills_during_walk",
                offset_of!(RawCounters, kills_during_walk),
            ),
            (
                "kills_after_walk",
                offset_of!(RawCounters, kills_after_walk),
            ),
            ("kill_marks", offset_of!(RawCounters, kill_marks)),
            (
                "unmarked_deliveries",
                offset_of!(RawCounters, unmarked_deliveries),
            ),
            ("sigkills_marked", offset_of!(RawCounters, sigkills_marked)),
        ],
    );
}
