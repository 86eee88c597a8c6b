//! Who the OOM killer picked, for any process: the kernel program's `oom/mark_victim`
//! record, completed from `/proc` as soon as the record is read.
//!
//! The victim has been sent its SIGKILL when the record is written, and it is often
//! gone from `/proc` (no exe, no command line, moved to the root cgroup) by the time
//! the record is read a few milliseconds later. What the Monitor knew of it is used
//! then ([`Known`]: the watch of a Go process, else its last exec, when its comm
//! agrees with the record's), and [`VictimInfo::exe_from`] says which; what nobody
//! knew is `None`. [`VictimInfo::proc_read_ns`] says how long after the kill `/proc`
//! was read.

use std::path::{Path, PathBuf};

use oom_core::abi::Victim;

/// An OOM victim as the event log reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VictimInfo {
    /// Process id.
    pub pid: u32,
    /// `CLOCK_MONOTONIC` ns of the mark_victim record.
    pub ts_ns: u64,
    /// Command name: the tracepoint's (~6.9+), else `/proc/PID/comm`.
    pub comm: Option<String>,
    /// `/proc/PID/exe` when it could still be read, else what the Monitor knew.
    pub exe: Option<PathBuf>,
    /// Where [`VictimInfo::exe`] came from: `proc`, `watch` (a watched Go process) or
    /// `exec` (the path its last exec was given).
    pub exe_from: Option<&'static str>,
    /// `/proc/PID/cmdline`, split at its NULs, when it could still be read.
    pub cmdline: Option<Vec<String>>,
    /// The victim's own memory cgroup line from `/proc/PID/cgroup`
    /// ([`crate::ondemand::memory_cgroup`]).
    pub cgroup: Option<String>,
    /// The victim's uid: the tracepoint's, else `/proc/PID/status`'s real uid.
    pub uid: Option<u32>,
    /// Its oom_score_adj: the tracepoint's, else `/proc/PID/oom_score_adj`.
    pub oom_score_adj: Option<i32>,
    /// Anonymous, file and shmem RSS in kB (tracepoint, ~6.9+).
    pub rss_kb: Option<[u64; 3]>,
    /// The task that ran the OOM killer: thread-group id, thread id, comm.
    pub trigger: (u32, u32, String),
    /// Whether the Monitor watched it (a Go profile is coming).
    pub watched: bool,
    /// How long after the mark_victim record `/proc` was read, ns (`None` if the clock
    /// could not be read).
    pub proc_read_ns: Option<u64>,
}

/// What the Monitor knew of a process before it was killed.
#[derive(Clone, Debug)]
pub struct Known {
    /// Its executable.
    pub exe: PathBuf,
    /// Its comm then.
    pub comm: String,
    /// Its memory cgroup line, when known.
    pub cgroup: Option<String>,
    /// `watch` or `exec`.
    pub from: &'static str,
}

/// Reads what `/proc` (under `proc_root`) still shows of the victim `v`, completed from
/// `known` where it shows nothing. A known exec whose comm differs from the victim's
/// is another process's (a reused pid) and is not used.
pub fn read(proc_root: &Path, v: &Victim, watched: bool, known: Option<Known>) -> VictimInfo {
    let dir = proc_root.join(v.pid.to_string());
    let text = |f: &str| std::fs::read(dir.join(f)).ok();
    let cmdline = text("cmdline").filter(|c| !c.is_empty()).map(|c| {
        c.split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    });
    // A task that has exited shows the root cgroup: only a live one's line counts. It
    // is read before the exe: the kernel drops a task's mm (and with it the exe link)
    // before it takes the task out of its cgroup, so an exe read after the line proves
    // the line was read while the task was still in its own cgroup.
    let line = text("cgroup");
    let exe = std::fs::read_link(dir.join("exe")).ok();
    let cgroup = exe.as_ref().and_then(|_| {
        line.and_then(|c| crate::ondemand::memory_cgroup(&String::from_utf8_lossy(&c)))
    });
    let d = v.details.as_ref();
    let comm = d
        .map(|d| String::from_utf8_lossy(d.comm.as_bytes()).into_owned())
        .or_else(|| text("comm").map(|c| String::from_utf8_lossy(&c).trim_end().to_string()))
        .filter(|c| !c.is_empty());
    let uid = d.map(|d| d.uid).or_else(|| {
        let status = String::from_utf8(text("status")?).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    });
    let oom_score_adj = d.map(|d| i32::from(d.oom_score_adj)).or_else(|| {
        String::from_utf8(text("oom_score_adj")?)
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    let proc_read_ns = crate::monitor::monotonic_ns().map(|n| n.saturating_sub(v.ts_ns));
    // The record's comm (~6.9+) or /proc's decides whether an exec is this process's.
    let known = known.filter(|k| k.from == "watch" || comm.as_deref().is_none_or(|c| c == k.comm));
    let (exe, exe_from) = match (exe, &known) {
        (Some(e), _) => (Some(e), Some("proc")),
        (None, Some(k)) => (Some(k.exe.clone()), Some(k.from)),
        (None, None) => (None, None),
    };
    let cgroup = cgroup.or_else(|| known.as_ref().and_then(|k| k.cgroup.clone()));
    let comm = comm.or_else(|| known.as_ref().map(|k| k.comm.clone()));
    VictimInfo {
        pid: v.pid,
        ts_ns: v.ts_ns,
        comm,
        exe,
        exe_from,
        cmdline,
        cgroup,
        uid,
        oom_score_adj,
        rss_kb: d.map(|d| [d.anon_rss_kb, d.file_rss_kb, d.shmem_rss_kb]),
        trigger: (
            v.trigger_pid,
            v.trigger_tid,
            String::from_utf8_lossy(v.trigger_comm.as_bytes()).into_owned(),
        ),
        watched,
        proc_read_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_reads_whole_and_a_vanished_one_reads_empty() {
        // This test process stands in for a victim: /proc has all of it.
        let me = std::process::id();
        let mut v = oom_core::abi::Victim {
            pid: me,
            ts_ns: crate::monitor::monotonic_ns().unwrap(),
            trigger_pid: me,
            trigger_tid: me,
            trigger_cgroup_id: 0,
            trigger_comm: oom_core::abi::Comm::default(),
            details: None,
        };
        let info = read(Path::new("/proc"), &v, false, None);
        assert_eq!(info.exe_from, Some("proc"));
        assert_eq!(info.exe, std::env::current_exe().ok());
        assert!(
            info.cmdline.as_ref().is_some_and(|c| !c.is_empty()),
            "{info:?}"
        );
        assert!(info.comm.is_some() && info.uid.is_some() && info.oom_score_adj.is_some());
        assert!(info.proc_read_ns.is_some());
        // A pid that is not there: nothing but the record's own fields.
        v.pid = u32::MAX;
        let gone = read(Path::new("/proc"), &v, false, None);
        assert_eq!(
            (gone.exe, gone.cmdline, gone.comm, gone.uid, gone.cgroup),
            (None, None, None, None, None)
        );
        // What the Monitor knew fills in; another process's exec (comm differs, from
        // the tracepoint's record) does not.
        let known = |comm: &str| Known {
            exe: "/usr/bin/leak".into(),
            comm: comm.into(),
            cgroup: None,
            from: "exec",
        };
        let filled = read(Path::new("/proc"), &v, false, Some(known("leak")));
        assert_eq!(filled.exe.as_deref(), Some(Path::new("/usr/bin/leak")));
        assert_eq!(
            (filled.exe_from, filled.comm.as_deref()),
            (Some("exec"), Some("leak"))
        );
        let mut details_comm = [0u8; 16];
        details_comm[..4].copy_from_slice(b"java");
        v.details = Some(oom_core::abi::VictimDetails {
            comm: oom_core::abi::Comm::from_bytes(details_comm),
            total_vm_kb: 0,
            anon_rss_kb: 0,
            file_rss_kb: 0,
            shmem_rss_kb: 0,
            pgtables_kb: 0,
            uid: 0,
            oom_score_adj: 0,
        });
        let other = read(Path::new("/proc"), &v, false, Some(known("leak")));
        assert_eq!((other.exe, other.exe_from), (None, None));
    }
}
