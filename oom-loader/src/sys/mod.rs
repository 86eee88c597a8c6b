//! Every system call of the loader, and every `unsafe` block of the crate.
//!
//! The functions here take borrowed slices and typed fds and build the attr structs
//! themselves, so the rest of the crate cannot hand the kernel a dangling pointer or
//! a short buffer. All `bpf(2)` calls go through one private function, `sys_bpf`.
#![expect(
    unsafe_code,
    reason = "the one place for syscalls and mappings; each block has a SAFETY comment"
)]

pub(crate) mod attr;
pub(crate) mod fd;
pub(crate) mod mmap;
pub(crate) mod ring;

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub use attr::consts;
use attr::{
    cmd, BtfLoad, LinkCreate, MapCreate, MapElem, MapFdOnly, PerfEventAttr, ProgLoad, RawTpOpen,
};
pub use fd::{LinkFd, MapFd, PerfFd, ProgFd};

/// The attr structs of [`attr`]: plain `#[repr(C)]` data the kernel may read.
pub(crate) trait BpfAttr: Sized {}
impl BpfAttr for MapCreate {}
impl BpfAttr for MapElem {}
impl BpfAttr for MapFdOnly {}
impl BpfAttr for ProgLoad {}
impl BpfAttr for BtfLoad {}
impl BpfAttr for LinkCreate {}
impl BpfAttr for RawTpOpen {}

/// The one `bpf(2)` chokepoint. Returns the syscall's non-negative result.
fn sys_bpf<A: BpfAttr>(command: u32, attr: &mut A) -> io::Result<i64> {
    // SAFETY: `attr` is a live, exclusively borrowed #[repr(C)] attr struct of
    // exactly `size_of::<A>()` bytes; every pointer inside it was set by the
    // functions below from borrows that outlive this call, with lengths the kernel
    // honours (sizes checked against the map's key/value size or slice lengths).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command as libc::c_long,
            attr as *mut A as *mut libc::c_void,
            std::mem::size_of::<A>() as libc::c_long,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`sys_bpf`] for commands that return a new file descriptor.
fn sys_bpf_fd<A: BpfAttr>(command: u32, attr: &mut A) -> io::Result<OwnedFd> {
    let fd = sys_bpf(command, attr)?;
    // SAFETY: on success these commands return a new file descriptor that nothing
    // else owns; wrapping it at once gives it exactly one owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    // At most 15 bytes plus the NUL; the kernel accepts [A-Za-z0-9_.].
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' {
            b
        } else {
            b'_'
        };
    }
    out
}

/// Parameters of `BPF_MAP_CREATE`.
#[derive(Debug, Clone)]
pub struct MapSpec<'a> {
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Entries (bytes for a ring buffer).
    pub max_entries: u32,
    /// `BPF_F_*` map flags.
    pub flags: u32,
    /// Name shown by `bpftool map` (truncated to 15 bytes).
    pub name: &'a str,
    /// BTF fd and key/value type ids, when the map type accepts them.
    pub btf: Option<(BorrowedFd<'a>, u32, u32)>,
}

/// `BPF_MAP_CREATE`.
pub fn map_create(spec: &MapSpec<'_>) -> io::Result<MapFd> {
    let mut a = MapCreate {
        map_type: spec.map_type,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        map_flags: spec.flags,
        map_name: name16(spec.name),
        ..Default::default()
    };
    if let Some((fd, k, v)) = spec.btf {
        a.btf_fd = fd.as_raw_fd() as u32;
        a.btf_key_type_id = k;
        a.btf_value_type_id = v;
    }
    // A per-CPU map's lookups write one value per possible CPU: a guessed count would
    // let the kernel write past the buffer, so an unreadable count is an error.
    let cpus = if spec.map_type == consts::MAP_TYPE_PERCPU_ARRAY {
        possible_cpus().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("reading /sys/devices/system/cpu/possible for a per-CPU map: {e}"),
            )
        })?
    } else {
        1
    };
    let fd = sys_bpf_fd(cmd::MAP_CREATE, &mut a)?;
    Ok(MapFd::new(
        fd,
        spec.map_type,
        spec.key_size,
        spec.value_size,
        cpus,
    ))
}

fn check_len(what: &str, got: usize, want: u32) -> io::Result<()> {
    if got != want as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} is {got} bytes, the map wants {want}"),
        ));
    }
    Ok(())
}

/// `BPF_MAP_UPDATE_ELEM`.
pub fn map_update(map: &MapFd, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
    check_len("key", key.len(), map.key_size())?;
    check_len("value", value.len(), map.value_size_total())?;
    let mut a = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags,
        ..Default::default()
    };
    sys_bpf(cmd::MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// `BPF_MAP_LOOKUP_ELEM` into `value` (whose length must be the map's value size,
/// times the number of possible CPUs for per-CPU maps).
pub fn map_lookup(map: &MapFd, key: &[u8], value: &mut [u8]) -> io::Result<()> {
    check_len("key", key.len(), map.key_size())?;
    check_len("value", value.len(), map.value_size_total())?;
    let mut a = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    sys_bpf(cmd::MAP_LOOKUP_ELEM, &mut a).map(drop)
}

/// `BPF_MAP_DELETE_ELEM`.
pub fn map_delete(map: &MapFd, key: &[u8]) -> io::Result<()> {
    check_len("key", key.len(), map.key_size())?;
    let mut a = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..Default::default()
    };
    sys_bpf(cmd::MAP_DELETE_ELEM, &mut a).map(drop)
}

/// `BPF_MAP_GET_NEXT_KEY`: writes the key after `key` (the first key when `None`)
/// into `next`; returns false when there is none.
pub fn map_next_key(map: &MapFd, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    if let Some(k) = key {
        check_len("key", k.len(), map.key_size())?;
    }
    check_len("next key", next.len(), map.key_size())?;
    let mut a = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.map_or(0, |k| k.as_ptr() as u64),
        value: next.as_mut_ptr() as u64,
        ..Default::default()
    };
    match sys_bpf(cmd::MAP_GET_NEXT_KEY, &mut a) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` into `value` (hash maps: Linux 5.14+).
pub fn map_lookup_and_delete(map: &MapFd, key: &[u8], value: &mut [u8]) -> io::Result<()> {
    check_len("key", key.len(), map.key_size())?;
    check_len("value", value.len(), map.value_size_total())?;
    let mut a = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    sys_bpf(cmd::MAP_LOOKUP_AND_DELETE_ELEM, &mut a).map(drop)
}

/// `BPF_MAP_FREEZE`.
pub fn map_freeze(map: &MapFd) -> io::Result<()> {
    let mut a = MapFdOnly {
        map_fd: map.as_raw_fd() as u32,
        pad: 0,
    };
    sys_bpf(cmd::MAP_FREEZE, &mut a).map(drop)
}

/// `BPF_BTF_LOAD` of raw BTF bytes, with an optional log buffer.
pub fn btf_load(btf: &[u8], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let mut a = BtfLoad {
        btf: btf.as_ptr() as u64,
        btf_size: btf.len() as u32,
        ..Default::default()
    };
    if let Some(log) = log {
        a.btf_log_buf = log.as_mut_ptr() as u64;
        a.btf_log_size = log.len().min(u32::MAX as usize) as u32;
        a.btf_log_level = 1;
    }
    sys_bpf_fd(cmd::BTF_LOAD, &mut a)
}

/// One BPF instruction (`struct bpf_insn`), 8 bytes.
pub type Insn = aya_obj::generated::bpf_insn;

/// BTF function and line info for `BPF_PROG_LOAD`.
#[derive(Debug)]
pub struct ProgBtf<'a> {
    /// The object's BTF.
    pub btf_fd: BorrowedFd<'a>,
    /// `bpf_func_info` records.
    pub func_info: &'a [u8],
    /// Size of one func_info record.
    pub func_info_rec_size: u32,
    /// `bpf_line_info` records.
    pub line_info: &'a [u8],
    /// Size of one line_info record.
    pub line_info_rec_size: u32,
}

/// Parameters of `BPF_PROG_LOAD`.
#[derive(Debug)]
pub struct ProgSpec<'a> {
    /// `BPF_PROG_TYPE_*`.
    pub prog_type: u32,
    /// The instructions.
    pub insns: &'a [Insn],
    /// License string.
    pub license: &'a CStr,
    /// Name shown by `bpftool prog` (truncated to 15 bytes).
    pub name: &'a str,
    /// BTF info, if the object's BTF was loaded.
    pub btf: Option<ProgBtf<'a>>,
}

/// `BPF_PROG_LOAD`, writing the verifier log into `log` when given (`log_level`
/// 1 = verbose, 4 = statistics only).
pub fn prog_load(spec: &ProgSpec<'_>, log: Option<(&mut [u8], u32)>) -> io::Result<ProgFd> {
    let mut a = ProgLoad {
        prog_type: spec.prog_type,
        insn_cnt: spec.insns.len() as u32,
        insns: spec.insns.as_ptr() as u64,
        license: spec.license.as_ptr() as u64,
        prog_name: name16(spec.name),
        ..Default::default()
    };
    if let Some(b) = &spec.btf {
        let fi = b.func_info_rec_size.max(1) as usize;
        let li = b.line_info_rec_size.max(1) as usize;
        a.prog_btf_fd = b.btf_fd.as_raw_fd() as u32;
        a.func_info_rec_size = b.func_info_rec_size;
        a.func_info = b.func_info.as_ptr() as u64;
        a.func_info_cnt = (b.func_info.len() / fi) as u32;
        a.line_info_rec_size = b.line_info_rec_size;
        a.line_info = b.line_info.as_ptr() as u64;
        a.line_info_cnt = (b.line_info.len() / li) as u32;
    }
    if let Some((buf, level)) = log {
        a.log_buf = buf.as_mut_ptr() as u64;
        a.log_size = buf.len().min(u32::MAX as usize) as u32;
        a.log_level = level;
    }
    sys_bpf_fd(cmd::PROG_LOAD, &mut a).map(ProgFd::new)
}

/// `BPF_LINK_CREATE` attaching `prog` to a perf event (Linux 5.15+).
pub fn link_create_perf_event(prog: &ProgFd, perf: &PerfFd) -> io::Result<LinkFd> {
    let mut a = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: perf.as_raw_fd() as u32,
        attach_type: consts::ATTACH_PERF_EVENT,
        ..Default::default()
    };
    sys_bpf_fd(cmd::LINK_CREATE, &mut a).map(LinkFd::new)
}

/// `BPF_RAW_TRACEPOINT_OPEN`: attaches a raw-tracepoint program to `name`
/// (4.17+; the fd is a BPF link from 5.7).
pub fn raw_tracepoint_open(prog: &ProgFd, name: &CStr) -> io::Result<LinkFd> {
    let mut a = RawTpOpen {
        name: name.as_ptr() as u64,
        prog_fd: prog.as_raw_fd() as u32,
        pad: 0,
    };
    sys_bpf_fd(cmd::RAW_TRACEPOINT_OPEN, &mut a).map(LinkFd::new)
}

/// Probes `BPF_LINK_CREATE` with invalid fds: a kernel that knows the command
/// rejects the fd (EBADF), an older one the command (EINVAL).
pub fn link_create_probe() -> io::Error {
    let mut a = LinkCreate {
        prog_fd: u32::MAX,
        target_fd: u32::MAX,
        attach_type: consts::ATTACH_PERF_EVENT,
        ..Default::default()
    };
    match sys_bpf(cmd::LINK_CREATE, &mut a) {
        Ok(fd) => {
            // Cannot happen with fd -1; do not leak it if it does.
            // SAFETY: a successful LINK_CREATE returns a new fd we own.
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            io::Error::from_raw_os_error(0)
        }
        Err(e) => e,
    }
}

/// `perf_event_open(PERF_TYPE_TRACEPOINT, id)` on CPU 0 for all processes. A BPF
/// program attached to it runs on every CPU.
pub fn perf_event_open_tracepoint(id: u64) -> io::Result<PerfFd> {
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
    let mut a = PerfEventAttr {
        type_: consts::PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: id,
        sample_period: 1,
        wakeup_events: 1,
        ..Default::default()
    };
    // SAFETY: `a` is a valid perf_event_attr of the size it declares; pid -1,
    // cpu 0 and group -1 are plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &mut a as *mut PerfEventAttr,
            -1 as libc::c_int,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: perf_event_open returned a new fd nothing else owns.
    Ok(PerfFd::new(unsafe { OwnedFd::from_raw_fd(ret as i32) }))
}

/// `perf_event_open(PERF_TYPE_SOFTWARE, config)` on `cpu` for all processes,
/// sampling every `period` events (a BPF program attached to it runs per sample).
pub fn perf_event_open_software(config: u64, period: u64, cpu: u32) -> io::Result<PerfFd> {
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
    let cpu = libc::c_int::try_from(cpu).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut a = PerfEventAttr {
        type_: consts::PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config,
        sample_period: period,
        ..Default::default()
    };
    // SAFETY: `a` is a valid perf_event_attr of the size it declares; pid -1, the
    // cpu number and group -1 are plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &mut a as *mut PerfEventAttr,
            -1 as libc::c_int,
            cpu,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: perf_event_open returned a new fd nothing else owns.
    Ok(PerfFd::new(unsafe { OwnedFd::from_raw_fd(ret as i32) }))
}

/// `PERF_EVENT_IOC_SET_BPF` then `PERF_EVENT_IOC_ENABLE`: the pre-5.15 attach.
pub fn perf_attach_ioctl(perf: &PerfFd, prog: &ProgFd) -> io::Result<()> {
    const PERF_EVENT_IOC_ENABLE: libc::Ioctl = 0x2400;
    const PERF_EVENT_IOC_SET_BPF: libc::Ioctl = 0x4004_2408_u32 as libc::Ioctl;
    // SAFETY: SET_BPF takes the program fd as an integer argument.
    let r = unsafe {
        libc::ioctl(
            perf.as_raw_fd(),
            PERF_EVENT_IOC_SET_BPF,
            prog.as_raw_fd() as libc::c_ulong,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ENABLE takes no pointer argument.
    let r = unsafe { libc::ioctl(perf.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Number of possible CPUs (`/sys/devices/system/cpu/possible`), the multiplier of
/// per-CPU map values.
pub fn possible_cpus() -> io::Result<u32> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let mut n = 0u32;
    for part in s.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u32 = a.parse().map_err(|_| io::ErrorKind::InvalidData)?;
        let b: u32 = b.parse().map_err(|_| io::ErrorKind::InvalidData)?;
        n += b.saturating_sub(a) + 1;
    }
    Ok(n.max(1))
}

/// The size of the kernel's log buffer (`syslog(2)` `SYSLOG_ACTION_SIZE_BUFFER`).
///
/// Returns an error if the call is refused (no CAP_SYSLOG under `dmesg_restrict`, or
/// a seccomp filter without it).
pub fn syslog_buffer_size() -> io::Result<usize> {
    const SYSLOG_ACTION_SIZE_BUFFER: libc::c_int = 10;
    // SAFETY: SIZE_BUFFER reads no buffer; a null pointer and length 0 are allowed.
    let r = unsafe { libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// Copies the kernel's whole log buffer as text into `buf` without consuming it
/// (`SYSLOG_ACTION_READ_ALL`); returns how many bytes were written.
///
/// Returns an error if the call is refused (see [`syslog_buffer_size`]).
pub fn syslog_read_all(buf: &mut [u8]) -> io::Result<usize> {
    const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
    let len = libc::c_int::try_from(buf.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: the kernel writes at most `len` bytes into `buf`, which is exclusively
    // borrowed and at least that long.
    let r = unsafe { libc::klogctl(SYSLOG_ACTION_READ_ALL, buf.as_mut_ptr().cast(), len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}
