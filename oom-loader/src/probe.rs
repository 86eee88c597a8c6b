//! Startup feature probes. Each one asks the kernel directly (no `uname`): distro
//! kernels backport BPF features.
//!
//! [`probe`] is the verdict `Kernel::load` acts on; the single probes under it are
//! public so that `oomprof check` can report one answer per feature, each from the
//! same program or map the loader itself tries. None of them needs the caller to
//! build instructions or attr structs: those stay in the crate's `sys` layer.

use std::io;

use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};

use crate::error::{Error, Result};
use crate::progs;
use crate::sys::{self, consts, Insn, ProgSpec};

/// What the running kernel supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// BPF memory is charged to the memory cgroup, not RLIMIT_MEMLOCK (5.11+).
    pub memcg_accounting: bool,
    /// `BPF_LINK_CREATE` for perf events (5.15+); else the ioctl attach is used.
    pub perf_link: bool,
    /// The `bpf_loop` helper (5.17+); else the walk is the fallback (bounded loops
    /// and tail calls), with a lower cap.
    pub bpf_loop: bool,
}

/// Why the [`bpf_loop`] probe did not find the helper.
#[derive(Debug)]
pub enum BpfLoopMissing {
    /// The verifier does not know the helper ("invalid func" or "unknown func");
    /// the last line of its log.
    UnknownHelper(String),
    /// The tracing probe program was refused before the verifier wrote anything
    /// (e.g. EPERM without CAP_PERFMON): nothing is known about the helper.
    NotLoaded(io::Error),
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

/// Helper ids (include/uapi/linux/bpf.h): `bpf_ktime_get_coarse_ns` (5.11, with
/// memcg accounting of BPF memory) and `bpf_loop` (5.17).
const HELPER_KTIME_GET_COARSE_NS: i32 = 160;
const HELPER_BPF_LOOP: i32 = 181;

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

/// Loads the trivial socket filter `r0 = 0; exit`: whether `bpf(2)` works at all.
///
/// Returns the `BPF_PROG_LOAD` error, e.g. EPERM without CAP_BPF or CAP_SYS_ADMIN,
/// ENOSYS on a kernel without `CONFIG_BPF_SYSCALL`.
pub fn bpf_syscall() -> io::Result<()> {
    let trivial = [insn(MOV64_IMM, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)];
    load_probe(consts::PROG_TYPE_SOCKET_FILTER, &trivial, None)
}

/// Whether BPF memory is charged to the memory cgroup instead of RLIMIT_MEMLOCK.
///
/// `bpf_ktime_get_coarse_ns` (helper 160) arrived in 5.11 with memcg accounting, so
/// a program calling it loads exactly where the memlock rlimit no longer matters
/// (libbpf uses the same signal). False also when BPF is not usable at all.
pub fn memcg_accounting() -> bool {
    load_probe(
        consts::PROG_TYPE_SOCKET_FILTER,
        &[
            insn(CALL, 0, 0, 0, HELPER_KTIME_GET_COARSE_NS),
            insn(EXIT, 0, 0, 0, 0),
        ],
        None,
    )
    .is_ok()
}

/// Creates (and closes) a one-page `BPF_MAP_TYPE_RINGBUF` map (5.8+).
///
/// Returns the `BPF_MAP_CREATE` error: EINVAL on a kernel without ring buffers,
/// EPERM without BPF privileges.
pub fn ring_buffer() -> io::Result<()> {
    let spec = sys::MapSpec {
        map_type: consts::MAP_TYPE_RINGBUF,
        key_size: 0,
        value_size: 0,
        max_entries: sys::ring::page_size() as u32,
        flags: 0,
        name: "oomprof_probe",
        btf: None,
    };
    sys::map_create(&spec).map(drop)
}

/// Whether the verifier knows the `bpf_loop` helper (helper 181, 5.17).
///
/// The probe program calls it with a scalar callback, which every kernel refuses;
/// only an unknown helper makes the verifier say "invalid func"/"unknown func".
///
/// Returns [`BpfLoopMissing::UnknownHelper`] with the verifier's last line when the
/// helper is unknown, [`BpfLoopMissing::NotLoaded`] when the program was refused
/// before the verifier ran.
pub fn bpf_loop() -> std::result::Result<(), BpfLoopMissing> {
    let insns = [
        insn(MOV64_IMM, 1, 0, 0, 1),
        insn(MOV64_IMM, 2, 0, 0, 0),
        insn(MOV64_IMM, 3, 0, 0, 0),
        insn(MOV64_IMM, 4, 0, 0, 0),
        insn(CALL, 0, 0, 0, HELPER_BPF_LOOP),
        insn(MOV64_IMM, 0, 0, 0, 0),
        insn(EXIT, 0, 0, 0, 0),
    ];
    let mut log = vec![0u8; 64 * 1024];
    let r = load_probe(consts::PROG_TYPE_TRACEPOINT, &insns, Some(&mut log));
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    match r {
        Err(_) if text.contains("invalid func") || text.contains("unknown func") => {
            // The verifier's own words (older kernels end the log with statistics).
            let line = text
                .lines()
                .find(|l| l.contains("invalid func") || l.contains("unknown func"))
                .unwrap_or("unknown helper");
            Err(BpfLoopMissing::UnknownHelper(line.into()))
        }
        Err(e) if end == 0 => Err(BpfLoopMissing::NotLoaded(e)),
        _ => Ok(()),
    }
}

/// Whether `BPF_LINK_CREATE` can attach to perf events (5.15+); else the loader
/// attaches with the perf ioctl. Asked with invalid fds: a kernel that knows the
/// command rejects the fd (EBADF), an older one the command (EINVAL).
pub fn perf_link() -> bool {
    sys::link_create_probe().raw_os_error() == Some(libc::EBADF)
}

/// Loads a tracepoint program the verifier must refuse (`exit` with r0 never
/// written, "R0 !read_ok") named `oomprof_bad`, through the path that loads
/// oomprof's own programs; shows that the verifier log reaches the caller.
///
/// Returns the load error: [`Error::ProgLoad`] with the verifier log, as every
/// refused program reports. `Ok(())` would mean the kernel accepted the program.
pub fn load_invalid_program() -> Result<()> {
    let insns = [insn(EXIT, 0, 0, 0, 0)];
    let spec = ProgSpec {
        prog_type: consts::PROG_TYPE_TRACEPOINT,
        insns: &insns,
        license: c"GPL",
        name: "oomprof_bad",
        btf: None,
    };
    progs::load(&spec).map(drop)
}

/// Probes everything oomprof needs and what decides between variants (perf links,
/// `bpf_loop`); raises RLIMIT_MEMLOCK where the kernel still charges BPF memory to it.
///
/// Returns [`Error::MissingFeature`] naming the first missing feature, or an error
/// if BPF is not usable at all (e.g. EPERM without CAP_BPF/CAP_SYS_ADMIN).
pub fn probe() -> Result<Features> {
    // First "no BPF at all" (no CAP_BPF: say so, and nothing else), then the rest.
    if let Err(e) = bpf_syscall() {
        // Before 5.11 EPERM can also be RLIMIT_MEMLOCK: the charge is per user, so
        // another process's BPF memory counts (seen on 5.10 right after an
        // `oomprof check`, whose maps the kernel frees later). Raise it (as below)
        // and ask again before calling it a missing privilege.
        let eperm =
            |r: &io::Result<()>| matches!(r, Err(e) if e.raw_os_error() == Some(libc::EPERM));
        let mut r = Err(e);
        if eperm(&r) && setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY).is_ok() {
            r = bpf_syscall();
        }
        if eperm(&r) {
            return Err(Error::NotPermitted {
                what: "loading BPF programs",
            });
        }
        // Other errors: raise the limit below and let the next steps tell.
    }
    let memcg_accounting = memcg_accounting();
    if !memcg_accounting {
        // Pre-5.11: map and program memory counts against RLIMIT_MEMLOCK.
        if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY) {
            log::warn!("raising RLIMIT_MEMLOCK failed: {e}; BPF map creation may fail");
        }
        if let Err(e) = bpf_syscall() {
            return Err(Error::sys("BPF_PROG_LOAD of a trivial program", e));
        }
    }
    ring_buffer().map_err(|e| Error::MissingFeature {
        feature: "BPF ring buffers (BPF_MAP_TYPE_RINGBUF)",
        since: "5.8",
        detail: format!("BPF_MAP_CREATE: {e}"),
    })?;
    // Without bpf_loop the walk falls back to bounded loops and tail calls. A
    // tracing load refused without a log says nothing about the helper: take it as
    // present, and the program loads further on fail with their own error.
    let bpf_loop = match bpf_loop() {
        Ok(()) | Err(BpfLoopMissing::NotLoaded(_)) => true,
        Err(BpfLoopMissing::UnknownHelper(detail)) => {
            log::debug!("no bpf_loop ({detail}): the fallback walk is used");
            false
        }
    };
    Ok(Features {
        memcg_accounting,
        perf_link: perf_link(),
        bpf_loop,
    })
}
