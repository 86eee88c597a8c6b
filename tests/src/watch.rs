//! The Monitor as the daemon runs it, for end-to-end tests: on its own thread, with a
//! way to wait for the profile (or the reason for none) of one process, and the
//! invariants every OOM-time profile must hold.

use std::path::Path;
use std::time::{Duration, Instant};

use std::process::Command;

use oom_loader::monitor::{Monitor, MonitorEvent, MonitorHandle};
use oom_loader::profile::{Profile, Reason};

use crate::cgroup::MemCgroup;
use crate::process::Running;

use crate::gomatrix::Toolchain;
use crate::pprof_raw::RawProfile;

/// A Monitor on its own thread that does not scan running processes: discovery goes on
/// (by exec events) while the test waits for its processes.
///
/// # Panics
/// If the kernel program cannot be loaded.
pub fn monitor() -> MonitorHandle {
    Monitor::builder()
        .scan_existing(false)
        .spawn()
        .expect("load the monitor (BPF)")
}

/// Waits up to `timeout` for the profile of `pid`, or the event that says why there is
/// none (`Dropped`, `ProfilingDisabled`). Other events go to `seen` (those of other
/// pids' discovery are left out).
pub fn wait_for(
    m: &MonitorHandle,
    pid: u32,
    timeout: Duration,
    seen: &mut Vec<MonitorEvent>,
) -> Option<MonitorEvent> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(e) = m.events().recv_timeout(left) {
            let hit = match &e {
                MonitorEvent::Profile(p) => p.meta.pid as u32 == pid,
                MonitorEvent::Dropped { pid: p, .. }
                | MonitorEvent::ProfilingDisabled { pid: p, .. } => *p == pid,
                _ => false,
            };
            if hit {
                return Some(e);
            }
            let keep = match &e {
                MonitorEvent::Skipped { pid: p, .. }
                | MonitorEvent::Unwatched { pid: p, .. }
                | MonitorEvent::Watched { pid: p, .. } => *p == pid,
                _ => true,
            };
            if keep {
                seen.push(e);
            }
        }
    }
    None
}

/// Runs `cmd` in a fresh memory cgroup of `limit` bytes until the OOM killer kills
/// it, and returns its profile (reason oom).
///
/// # Panics
/// If it is not OOM-killed or no profile arrives.
pub fn oom_profile(m: &MonitorHandle, cmd: &mut Command, limit: u64, what: &str) -> Profile {
    let cg = MemCgroup::create(limit).unwrap();
    let mut p = Running::adopt(cg.spawn(cmd).unwrap());
    let pid = p.pid() as u32;
    p.wait_exit(Duration::from_secs(120)).unwrap();
    assert!(cg.oom_kills().unwrap() > 0, "{what}: not OOM-killed");
    let mut seen = Vec::new();
    match wait_for(m, pid, Duration::from_secs(15), &mut seen) {
        Some(MonitorEvent::Profile(prof)) => {
            assert_eq!(prof.meta.reason, Reason::Oom, "{what}");
            *prof
        }
        other => panic!("{what}: no profile: {other:?}; other events: {seen:?}"),
    }
}

/// Writes `p` next to the test's temporary files and reads it back with `go tool pprof
/// -raw` of the victim's own Go version.
///
/// # Panics
/// If the file cannot be written or pprof cannot read it.
pub fn judge(tc: &Toolchain, bin: &Path, p: &Profile) -> RawProfile {
    let dir = std::env::temp_dir().join(format!("oomprof-judge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}-{}.pb.gz", p.meta.comm, p.meta.pid));
    std::fs::write(&file, &p.pprof_gz).unwrap();
    let text = tc.pprof_raw(bin, &file);
    let _ = std::fs::remove_file(&file);
    RawProfile::parse(&text.unwrap()).unwrap()
}

/// What a profile taken at an OOM kill must satisfy whatever the program: Go's four
/// sample types then the two recent ones, and (with `exact`, i.e. MemProfileRate 1,
/// so that totals are counts, not estimates) no more in use than the process could
/// hold, `limit` bytes. Returns the in-use total.
///
/// # Panics
/// When an invariant does not hold.
pub fn check_oom_invariants(raw: &RawProfile, limit: u64, exact: bool, what: &str) -> i64 {
    assert_eq!(
        raw.sample_types,
        [
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space",
            oom_core::pprof::RECENT_OBJECTS,
            oom_core::pprof::RECENT_SPACE
        ],
        "{what}: sample types"
    );
    let inuse = raw.total("inuse_space");
    assert!(inuse >= 0, "{what}: negative in-use total {inuse}");
    if exact {
        assert!(
            inuse as u64 <= limit,
            "{what}: in-use {inuse} B is more than the process could hold ({limit} B): garbage counted as in use"
        );
    }
    inuse
}
