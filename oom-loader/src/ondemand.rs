//! On-demand profiles of running Go processes: the bucket list is read from user space
//! through `/proc/PID/mem` — no signal is sent, nothing is written to the target, no BPF
//! is needed. Values follow Go's own publication rule ([`Policy::GoPublished`]), so the
//! profile equals what the program's own `runtime/pprof` would write at that moment.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use oom_core::values::{needs_fallback, Policy};

use crate::attribution::Attribution;
use crate::binary::GoBinary;
use crate::cache::BinaryCache;
use crate::pressure::PressureNote;
use crate::procmaps;
use crate::procmem::ProcMem;
use crate::profile::{
    assemble, disabled_diagnosis, AssembleError, Profile, ProfileMeta, RateSeen, Reason,
};
use crate::walk::{Walk, DEFAULT_MAX_BUCKETS};

/// Options for [`profile_pid`].
#[derive(Clone, Debug)]
pub struct OnDemandOptions {
    /// The procfs to read (`/proc`; another mount for a different pid namespace).
    pub proc_root: PathBuf,
    /// Most buckets to read.
    pub max_buckets: usize,
}

impl Default for OnDemandOptions {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            max_buckets: DEFAULT_MAX_BUCKETS,
        }
    }
}

/// Why an on-demand profile failed.
#[derive(Debug, thiserror::Error)]
pub enum OnDemandError {
    /// No such process (or it exited while being read).
    #[error("pid {0}: no such process")]
    Gone(i32),
    /// Not allowed to read the process.
    #[error("pid {pid}: permission denied reading {what} (needs root, or CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)")]
    PermissionDenied {
        /// The process.
        pid: i32,
        /// What could not be read.
        what: &'static str,
    },
    /// Not a Go program oomprof can read.
    #[error("pid {pid} ({comm}): {reason}")]
    NotGo {
        /// The process.
        pid: i32,
        /// Its command name.
        comm: String,
        /// Why.
        reason: Arc<str>,
    },
    /// Memory profiling is off in the target (`runtime.MemProfileRate` is 0 now).
    #[error("pid {pid} ({comm}): {detail}")]
    ProfilingDisabled {
        /// The process.
        pid: i32,
        /// Its command name.
        comm: String,
        /// What was seen and both fixes ([`crate::profile::disabled_diagnosis`]).
        detail: &'static str,
    },
    /// The runtime's variables could not be read.
    #[error("pid {pid}: reading {what} at {addr:#x}: {source}")]
    Read {
        /// The process.
        pid: i32,
        /// Which variable.
        what: &'static str,
        /// Its runtime address.
        addr: u64,
        /// The cause.
        source: io::Error,
    },
    /// Building the profile failed.
    #[error("pid {pid}: {source}")]
    Assemble {
        /// The process.
        pid: i32,
        /// The cause.
        source: AssembleError,
    },
}

fn io_err(pid: i32, what: &'static str, e: io::Error) -> OnDemandError {
    match e.kind() {
        io::ErrorKind::NotFound => OnDemandError::Gone(pid),
        io::ErrorKind::PermissionDenied => OnDemandError::PermissionDenied { pid, what },
        _ if e.raw_os_error() == Some(libc::ESRCH) => OnDemandError::Gone(pid),
        _ => OnDemandError::Read {
            pid,
            what,
            addr: 0,
            source: e,
        },
    }
}

/// Start time of a process (field 22 of `/proc/PID/stat`): with the pid, it names one
/// process, so a pid reused during a read is noticed.
pub fn start_time(proc_root: &Path, pid: i32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .nth(19)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))
}

/// The process's command name.
pub fn comm(proc_root: &Path, pid: i32) -> String {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

/// The process's memory cgroup, as `/proc/PID/cgroup` writes it: `0::PATH` on cgroup
/// v2; on v1 (or a hybrid host) the memory controller's line, `ID:memory:PATH`, which
/// holds the limit.
pub fn cgroup(proc_root: &Path, pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    memory_cgroup(&text)
}

/// The memory cgroup line of a `/proc/PID/cgroup` text (see [`cgroup`]).
pub fn memory_cgroup(text: &str) -> Option<String> {
    let mut v2 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(_)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrl.split(',').any(|c| c == "memory") {
            return Some(line.to_string());
        }
        if ctrl.is_empty() {
            v2 = Some(line.to_string());
        }
    }
    v2
}

/// Opens `/proc/PID/exe` and analyses it (through `cache` when given).
///
/// Returns an error if the process is gone, unreadable or not a Go program.
pub fn open_binary(
    proc_root: &Path,
    pid: i32,
    cache: Option<&BinaryCache>,
) -> Result<(Arc<GoBinary>, PathBuf), OnDemandError> {
    let exe_link = proc_root.join(pid.to_string()).join("exe");
    let exe = std::fs::read_link(&exe_link).map_err(|e| io_err(pid, "/proc/PID/exe", e))?;
    let file = File::open(&exe_link).map_err(|e| io_err(pid, "/proc/PID/exe", e))?;
    let not_go = |reason| OnDemandError::NotGo {
        pid,
        comm: comm(proc_root, pid),
        reason,
    };
    let bin = match cache {
        Some(c) => c.get(&file, &exe).map_err(not_go)?,
        None => {
            Arc::new(GoBinary::analyze(&file, &exe).map_err(|e| not_go(Arc::from(e.to_string())))?)
        }
    };
    Ok((bin, exe))
}

/// Takes a heap profile of the running Go process `pid`.
///
/// Returns an error if the process is gone, not readable, not Go, or has memory
/// profiling disabled.
pub fn profile_pid(
    pid: i32,
    opts: &OnDemandOptions,
    cache: Option<&BinaryCache>,
) -> Result<Profile, OnDemandError> {
    profile_as(pid, opts, cache, None, None)
}

/// Takes a pre-OOM profile of `pid` ([`crate::pressure`]): reason `pressure`, with
/// the trigger's note among the comments and the attribution the Monitor resolved
/// at discovery (under its runtime root).
///
/// Returns an error as [`profile_pid`] does.
pub fn profile_under_pressure(
    pid: i32,
    opts: &OnDemandOptions,
    cache: &BinaryCache,
    note: PressureNote,
    attribution: Option<Attribution>,
) -> Result<Profile, OnDemandError> {
    profile_as(pid, opts, Some(cache), Some(note), attribution)
}

fn profile_as(
    pid: i32,
    opts: &OnDemandOptions,
    cache: Option<&BinaryCache>,
    pressure: Option<PressureNote>,
    known: Option<Attribution>,
) -> Result<Profile, OnDemandError> {
    let root = &opts.proc_root;
    let started = start_time(root, pid).map_err(|e| io_err(pid, "/proc/PID/stat", e))?;
    let (bin, exe) = open_binary(root, pid, cache)?;
    let comm = comm(root, pid);
    let maps = procmaps::read(root, pid).map_err(|e| io_err(pid, "/proc/PID/maps", e))?;
    let bias = procmaps::load_bias(
        &maps,
        dev_pair(bin.key.dev),
        bin.key.ino,
        &bin.info.segments,
    )
    .or_else(|| {
        // Overlay filesystems can show another device in maps: match the inode alone.
        maps.iter()
            .find(|m| m.inode == bin.key.ino)
            .and_then(|m| procmaps::load_bias(&maps, m.dev, m.inode, &bin.info.segments))
    })
    .unwrap_or(0);
    let mem = ProcMem::open(root, pid).map_err(|e| io_err(pid, "/proc/PID/mem", e))?;
    let vars = bin.info.vars;
    let read_u64 = |what, link: u64| {
        let addr = link.wrapping_add(bias);
        mem.u64(addr).map_err(|source| match source.raw_os_error() {
            Some(libc::ESRCH) => OnDemandError::Gone(pid),
            _ => OnDemandError::Read {
                pid,
                what,
                addr,
                source,
            },
        })
    };
    // The rate in force now decides (the linker's flag is only the initial state); an
    // unknown rate is never taken for "off".
    let seen = match vars.mem_profile_rate {
        Some(a) => match read_u64("runtime.MemProfileRate", a) {
            Ok(r) => RateSeen::Read(r as i64),
            Err(e @ OnDemandError::Gone(_)) => return Err(e),
            Err(e) => {
                log::warn!("{e}");
                RateSeen::Unknown
            }
        },
        None => RateSeen::Unknown,
    };
    let Some((rate, rate_problem)) = seen.scale_rate() else {
        let detail = disabled_diagnosis(bin.info.profiling_disabled_by_linker);
        return Err(OnDemandError::ProfilingDisabled { pid, comm, detail });
    };
    let cycle = match vars.mprof_cycle {
        Some(a) => mem.u32(a.wrapping_add(bias)).ok().map(|v| v >> 1),
        None => None,
    };
    let head = read_u64("runtime.mbuckets", vars.mbuckets)?;
    let walk = Walk::run(&mem, head, bin.info.layout, opts.max_buckets);
    if start_time(root, pid).ok() != Some(started) {
        return Err(OnDemandError::Gone(pid));
    }
    let buckets: Vec<_> = walk.buckets().collect();
    let fallback = needs_fallback(buckets.iter().map(|b| &b.record), cycle);
    let policy = Policy::GoPublished { cycle, fallback };
    let cgroup = cgroup(root, pid);
    // The node's runtime state, read once for this one process.
    let attribution = known.or_else(|| {
        cgroup
            .as_deref()
            .and_then(|c| crate::attribution::Resolver::new("/").attribute(c))
    });
    let meta = ProfileMeta {
        pid,
        comm,
        exe,
        go_version: bin.info.go_version.clone(),
        main_module: bin.info.main_path.clone(),
        main_version: bin.info.main_version.clone(),
        vcs_revision: bin.info.vcs_revision.clone(),
        go_build_id: bin.info.go_build_id.clone(),
        gnu_build_id: bin.info.gnu_build_id.clone(),
        reason: if pressure.is_some() {
            Reason::Pressure
        } else {
            Reason::OnDemand
        },
        pressure,
        trigger: None,
        rss: None,
        cgroup,
        attribution,
        mem_profile_rate: rate,
        buckets: buckets.len(),
        incomplete: rate_problem.into_iter().chain(walk.problems()).collect(),
        buckets_seen: None,
        kill_mono_ns: None,
        walk_ns: None,
        walk_irqs_off: None,
        event_log: None,
        time: SystemTime::now(),
    };
    assemble(&bin, bias, &buckets, &maps, policy, false, meta)
        .map_err(|source| OnDemandError::Assemble { pid, source })
}

/// Splits a Linux `st_dev` into (major, minor) as `/proc/PID/maps` prints them.
pub fn dev_pair(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cgroup_names_the_hierarchy_that_holds_the_limit() {
        // Pure v2, as the VM matrix's guests and systemd hosts write it.
        assert_eq!(
            memory_cgroup("0::/kubepods.slice/pod1/abc\n").as_deref(),
            Some("0::/kubepods.slice/pod1/abc")
        );
        // v1 with the memory controller among others: its line, not the unified one.
        let hybrid = "12:pids:/a\n7:cpu,memory:/docker/x\n0::/init.scope\n";
        assert_eq!(
            memory_cgroup(hybrid).as_deref(),
            Some("7:cpu,memory:/docker/x")
        );
        assert_eq!(memory_cgroup("4:memory:/\n").as_deref(), Some("4:memory:/"));
        // A v1 host without a memory hierarchy: nothing to name.
        assert_eq!(memory_cgroup("3:cpu:/a\n"), None);
        assert_eq!(memory_cgroup("garbage"), None);
        assert_eq!(memory_cgroup("junk\n0::/x\n").as_deref(), Some("0::/x"));
    }

    #[test]
    fn dev_pair_matches_the_kernel_encoding() {
        // makedev(0xfe, 1) and makedev(259, 70000).
        assert_eq!(dev_pair(0xfe01), (0xfe, 1));
        let (major, minor) = (259u64, 70000u64);
        let dev = ((major & 0xfff) << 8) | ((minor & !0xff) << 12) | (minor & 0xff);
        assert_eq!(dev_pair(dev), (259, 70000));
    }

    #[test]
    fn start_time_of_self_is_stable() {
        let root = Path::new("/proc");
        let me = std::process::id() as i32;
        assert_eq!(start_time(root, me).unwrap(), start_time(root, me).unwrap());
    }

    #[test]
    fn a_missing_pid_is_gone() {
        let opts = OnDemandOptions::default();
        // pid_max is at most 2^22: this pid cannot exist.
        match profile_pid(1 << 23, &opts, None) {
            Err(OnDemandError::Gone(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_non_go_process_is_not_go() {
        let opts = OnDemandOptions::default();
        match profile_pid(std::process::id() as i32, &opts, None) {
            Err(OnDemandError::NotGo { reason, .. }) => {
                assert!(reason.contains("not a Go program"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
