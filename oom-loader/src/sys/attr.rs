//! Flat `#[repr(C)]` attribute structs, one per `bpf(2)` command we issue, and
//! `perf_event_attr`.
//!
//! Each struct is zero-initialised and ends at the last field we use: the kernel
//! zero-fills a shorter attr and only rejects a longer one whose unknown tail is
//! non-zero (`bpf_check_uarg_tail_zero`), so these sizes work on old and new kernels.
//! Offsets are from `include/uapi/linux/bpf.h` and `perf_event.h` (Linux 6.1 headers),
//! asserted below.

use std::mem::{offset_of, size_of};

/// `BPF_MAP_CREATE`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapCreate {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; 16],
    pub map_ifindex: u32,
    pub btf_fd: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub map_extra: u64,
}

/// `BPF_MAP_LOOKUP_ELEM`, `UPDATE_ELEM`, `DELETE_ELEM`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapElem {
    pub map_fd: u32,
    pub pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// `BPF_MAP_FREEZE` (and any command taking only a map fd).
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapFdOnly {
    pub map_fd: u32,
    pub pad: u32,
}

/// `BPF_PROG_LOAD`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct ProgLoad {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
}

/// `BPF_BTF_LOAD`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct BtfLoad {
    pub btf: u64,
    pub btf_log_buf: u64,
    pub btf_size: u32,
    pub btf_log_size: u32,
    pub btf_log_level: u32,
    pub pad: u32,
}

/// `BPF_LINK_CREATE` for `BPF_PERF_EVENT`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct LinkCreate {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub bpf_cookie: u64,
}

/// `BPF_RAW_TRACEPOINT_OPEN`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct RawTpOpen {
    pub name: u64,
    pub prog_fd: u32,
    pub pad: u32,
}

/// `perf_event_attr`, `PERF_ATTR_SIZE_VER0` (64 bytes).
#[repr(C)]
#[derive(Default)]
pub(crate) struct PerfEventAttr {
    pub type_: u32,
    pub size: u32,
    pub config: u64,
    pub sample_period: u64,
    pub sample_type: u64,
    pub read_format: u64,
    pub flags: u64,
    pub wakeup_events: u32,
    pub bp_type: u32,
    pub config1: u64,
}

const _: () = {
    assert!(offset_of!(MapCreate, map_name) == 28);
    assert!(offset_of!(MapCreate, btf_fd) == 48);
    assert!(offset_of!(MapCreate, map_extra) == 64);
    assert!(size_of::<MapCreate>() == 72);
    assert!(offset_of!(MapElem, flags) == 24);
    assert!(offset_of!(ProgLoad, log_buf) == 32);
    assert!(offset_of!(ProgLoad, prog_name) == 48);
    assert!(offset_of!(ProgLoad, expected_attach_type) == 68);
    assert!(offset_of!(ProgLoad, func_info) == 80);
    assert!(offset_of!(ProgLoad, line_info) == 96);
    assert!(offset_of!(ProgLoad, attach_btf_id) == 108);
    assert!(size_of::<ProgLoad>() == 112);
    assert!(offset_of!(BtfLoad, btf_log_level) == 24);
    assert!(offset_of!(LinkCreate, bpf_cookie) == 16);
    assert!(offset_of!(PerfEventAttr, wakeup_events) == 48);
    assert!(size_of::<PerfEventAttr>() == 64);
};

/// bpf(2) commands.
pub(crate) mod cmd {
    pub const MAP_CREATE: u32 = 0;
    pub const MAP_LOOKUP_ELEM: u32 = 1;
    pub const MAP_UPDATE_ELEM: u32 = 2;
    pub const MAP_DELETE_ELEM: u32 = 3;
    pub const MAP_GET_NEXT_KEY: u32 = 4;
    pub const MAP_LOOKUP_AND_DELETE_ELEM: u32 = 21;
    pub const PROG_LOAD: u32 = 5;
    pub const BTF_LOAD: u32 = 18;
    pub const MAP_FREEZE: u32 = 22;
    pub const LINK_CREATE: u32 = 28;
    pub const RAW_TRACEPOINT_OPEN: u32 = 17;
}

/// Program, map and attach types used here.
pub mod consts {
    /// `BPF_PROG_TYPE_SOCKET_FILTER`.
    pub const PROG_TYPE_SOCKET_FILTER: u32 = 1;
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT`.
    pub const PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
    /// `BPF_PROG_TYPE_TRACEPOINT`.
    pub const PROG_TYPE_TRACEPOINT: u32 = 5;
    /// `BPF_PROG_TYPE_PERF_EVENT`.
    pub const PROG_TYPE_PERF_EVENT: u32 = 7;
    /// `BPF_MAP_TYPE_PROG_ARRAY`.
    pub const MAP_TYPE_PROG_ARRAY: u32 = 3;
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`.
    pub const MAP_TYPE_PERF_EVENT_ARRAY: u32 = 4;
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    pub const MAP_TYPE_PERCPU_ARRAY: u32 = 6;
    /// `BPF_MAP_TYPE_RINGBUF`.
    pub const MAP_TYPE_RINGBUF: u32 = 27;
    /// `BPF_PERF_EVENT` attach type.
    pub const ATTACH_PERF_EVENT: u32 = 41;
    /// `PERF_TYPE_TRACEPOINT`.
    pub const PERF_TYPE_TRACEPOINT: u32 = 2;
    /// `PERF_TYPE_SOFTWARE`.
    pub const PERF_TYPE_SOFTWARE: u32 = 1;
    /// `PERF_COUNT_SW_PAGE_FAULTS`.
    pub const PERF_COUNT_SW_PAGE_FAULTS: u64 = 2;
}
