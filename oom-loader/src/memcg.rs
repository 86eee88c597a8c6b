//! A memory cgroup's own figures read right after an OOM kill: usage, limit, the peak
//! and the OOM-kill count, beside what the kernel printed at the OOM
//! ([`crate::kmsg`]). Read from the hierarchy this process can see (a container with a
//! cgroup namespace sees only its own sub-tree: then there is nothing to read).

use std::path::{Path, PathBuf};

use crate::pressure::{read_limit, read_u64, Mounts};

/// What a memory cgroup's files say now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemcgNow {
    /// The cgroup's path in its hierarchy, as the kernel names it.
    pub path: String,
    /// The cgroup's directory.
    pub dir: PathBuf,
    /// Usage, bytes (v2 `memory.current`, v1 `memory.usage_in_bytes`).
    pub usage: Option<u64>,
    /// The limit, bytes; `None` when unlimited or unreadable.
    pub limit: Option<u64>,
    /// The highest usage seen, bytes (v2 `memory.peak`, Linux 5.19+; v1
    /// `memory.max_usage_in_bytes`).
    pub peak: Option<u64>,
    /// OOM kills in it so far (v2 `memory.events` `oom_kill`, v1 `memory.oom_control`
    /// `oom_kill`, Linux 4.13+).
    pub oom_kills: Option<u64>,
}

/// The `key value` counter `key` of a flat-keyed cgroup file.
fn counter(path: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Reads the memory cgroup at `path` (as the kernel's OOM report names it: relative to
/// its hierarchy's root) in the v1 memory hierarchy when one is mounted, else in v2;
/// `proc_root` is where `self/mountinfo` is. `None` when it is not there.
pub fn read(proc_root: &Path, path: &str) -> Option<MemcgNow> {
    let mounts = mounts(proc_root)?;
    read_in(&mounts, path)
}

/// Reads the memory cgroup a `/proc/PID/cgroup` line names
/// ([`crate::ondemand::memory_cgroup`]: `0::PATH` or `ID:memory:PATH`).
pub fn read_line(proc_root: &Path, line: &str) -> Option<MemcgNow> {
    read_resolved(&mounts(proc_root)?, line)
}

fn mounts(proc_root: &Path) -> Option<Mounts> {
    Some(Mounts::parse(
        &std::fs::read_to_string(proc_root.join("self/mountinfo")).ok()?,
    ))
}

fn read_in(mounts: &Mounts, path: &str) -> Option<MemcgNow> {
    let line = if mounts.v1.is_some() {
        format!("0:memory:{path}")
    } else {
        format!("0::{path}")
    };
    read_resolved(mounts, &line)
}

fn read_resolved(mounts: &Mounts, line: &str) -> Option<MemcgNow> {
    let path = line.splitn(3, ':').nth(2)?.to_string();
    let cg = mounts.resolve(line)?;
    let d = &cg.dir;
    if !d.is_dir() {
        return None;
    }
    let now = if cg.v2 {
        MemcgNow {
            usage: read_u64(&d.join("memory.current")),
            limit: read_limit(&d.join("memory.max")),
            peak: read_u64(&d.join("memory.peak")),
            oom_kills: counter(&d.join("memory.events"), "oom_kill"),
            dir: d.clone(),
            path,
        }
    } else {
        MemcgNow {
            usage: read_u64(&d.join("memory.usage_in_bytes")),
            limit: read_limit(&d.join("memory.limit_in_bytes")),
            peak: read_u64(&d.join("memory.max_usage_in_bytes")),
            oom_kills: counter(&d.join("memory.oom_control"), "oom_kill"),
            dir: d.clone(),
            path,
        }
    };
    // Removed while it was read (a runtime removes a dead container's cgroup within
    // moments): its usage file, which every memory cgroup has, is gone, and so is the
    // rest; that is "not there", not a reading of nothing.
    now.usage.map(|_| now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_and_a_v2_cgroup_read_their_own_files() {
        let root = std::env::temp_dir().join(format!("oomprof-memcg-{}", std::process::id()));
        let v1 = root.join("memory/kube/a");
        let v2 = root.join("unified/kube/a");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::create_dir_all(&v2).unwrap();
        for (f, t) in [
            ("memory.usage_in_bytes", "1000\n"),
            ("memory.limit_in_bytes", "67108864\n"),
            ("memory.max_usage_in_bytes", "67100000\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
        ] {
            std::fs::write(v1.join(f), t).unwrap();
        }
        for (f, t) in [
            ("memory.current", "2000\n"),
            ("memory.max", "max\n"),
            ("memory.peak", "5000\n"),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n",
            ),
        ] {
            std::fs::write(v2.join(f), t).unwrap();
        }
        let info = |v1: bool| {
            let mut text = format!(
                "30 25 0:26 / {}/unified rw - cgroup2 cgroup2 rw\n",
                root.display()
            );
            if v1 {
                text += &format!(
                    "31 25 0:27 / {}/memory rw - cgroup cgroup rw,memory\n",
                    root.display()
                );
            }
            Mounts::parse(&text)
        };
        let got = read_in(&info(true), "/kube/a").unwrap();
        assert_eq!(
            (got.usage, got.limit, got.peak, got.oom_kills),
            (Some(1000), Some(64 << 20), Some(67100000), Some(3))
        );
        let got = read_in(&info(false), "/kube/a").unwrap();
        assert_eq!(
            (got.usage, got.limit, got.peak, got.oom_kills),
            (Some(2000), None, Some(5000), Some(2))
        );
        assert_eq!(got.path, "/kube/a");
        assert_eq!(
            read_resolved(&info(true), "4:memory:/kube/a").map(|m| m.oom_kills),
            Some(Some(3))
        );
        assert_eq!(read_in(&info(false), "/kube/gone"), None);
        assert_eq!(read_in(&Mounts::default(), "/kube/a"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
