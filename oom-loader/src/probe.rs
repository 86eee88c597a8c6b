//! Startup feature probes. Each one asks the kernel directly (no `uname`): distro
//! kernels backport BPF features.

use std::io;

use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};

use crate::error::{Error, Result};
use crate::sys::{self, consts, Insn, ProgSpec};

/// What the running kernel supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// BPF memory is charged to the memory cgroup, not RLIMIT_MEMLOCK (5.11+).
    pub memcg_accounting: bool,
    /// `BPF_LINK_CREATE` for perf events (5.15+); else the ioctl attach is used.
    pub perf_link: bool,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        _bitfield_align_1: [],
        _bitfield_1: Insn::new_bitfield_1(dst, src),
        off,
        imm,
    }
}

const CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
const MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K

fn load_probe(prog_type: u32, insns: &[Insn], log: Option<&mut [u8]>) -> io::Result<()> {
    let spec = ProgSpec {
        prog_type,
        insns,
        license: c"GPL",
        name: "oomprof_probe",
        btf: None,
    };
    sys::prog_load(&spec, log.map(|b| (b, 1))).map(drop)
}

/// Memory accounting: `bpf_ktime_get_coarse_ns` (helper 160) arrived in 5.11 with
/// memcg accounting, so a program calling it loads exactly where the memlock rlimit
/// no longer matters (libbpf uses the same signal).
fn probe_memcg() -> bool {
    load_probe(
        consts::PROG_TYPE_SOCKET_FILTER,
        &[insn(CALL, 0, 0, 0, 160), insn(EXIT, 0, 0, 0, 0)],
        None,
    )
    .is_ok()
}

/// `bpf_loop` (helper 181, 5.17): a call with a scalar callback is rejected either
/// way; only an unknown helper says "invalid func"/"unknown func".
fn probe_bpf_loop() -> Result<()> {
    let insns = [
        insn(MOV64_IMM, 1, 0, 0, 1),
        insn(MOV64_IMM, 2, 0, 0, 0),
        insn(MOV64_IMM, 3, 0, 0, 0),
        insn(MOV64_IMM, 4, 0, 0, 0),
        insn(CALL, 0, 0, 0, 181),
        insn(MOV64_IMM, 0, 0, 0, 0),
        insn(EXIT, 0, 0, 0, 0),
    ];
    let mut log = vec![0u8; 64 * 1024];
    let r = load_probe(consts::PROG_TYPE_TRACEPOINT, &insns, Some(&mut log));
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    if r.is_err() && (text.contains("invalid func") || text.contains("unknown func")) {
        return Err(Error::MissingFeature {
            feature: "the bpf_loop helper",
            since: "5.17",
            detail: text.lines().last().unwrap_or("").to_string(),
        });
    }
    Ok(())
}

fn probe_ringbuf() -> Result<()> {
    let spec = sys::MapSpec {
        map_type: consts::MAP_TYPE_RINGBUF,
        key_size: 0,
        value_size: 0,
        max_entries: sys::ring::page_size() as u32,
        flags: 0,
        name: "oomprof_probe",
        btf: None,
    };
    sys::map_create(&spec)
        .map(drop)
        .map_err(|e| Error::MissingFeature {
            feature: "BPF ring buffers (BPF_MAP_TYPE_RINGBUF)",
            since: "5.8",
            detail: format!("BPF_MAP_CREATE: {e}"),
        })
}

/// Probes everything oomprof needs; raises RLIMIT_MEMLOCK where the kernel still
/// charges BPF memory to it.
///
/// Returns [`Error::MissingFeature`] naming the first missing feature, or an error
/// if BPF is not usable at all (e.g. EPERM without CAP_BPF/CAP_SYS_ADMIN).
pub fn probe() -> Result<Features> {
    let memcg_accounting = probe_memcg();
    if !memcg_accounting {
        // Pre-5.11: map and program memory counts against RLIMIT_MEMLOCK.
        if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY) {
            log::warn!("raising RLIMIT_MEMLOCK failed: {e}; BPF map creation may fail");
        }
        // Distinguish "no BPF at all" from "old kernel".
        let trivial = [insn(MOV64_IMM, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)];
        if let Err(e) = load_probe(consts::PROG_TYPE_SOCKET_FILTER, &trivial, None) {
            return Err(Error::sys(
                "BPF_PROG_LOAD of a trivial program (is this root?)",
                e,
            ));
        }
    }
    probe_ringbuf()?;
    probe_bpf_loop()?;
    let perf_link = sys::link_create_probe().raw_os_error() == Some(libc::EBADF);
    Ok(Features {
        memcg_accounting,
        perf_link,
    })
}
