//! Memory cgroups with a limit, for real OOM kills: cgroup v2 (`memory.max`) or v1
//! (`memory.limit_in_bytes`), whichever the host offers. Removed on drop, with every
//! process left in them killed first — also when the test panics.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Which cgroup hierarchy a [`MemCgroup`] lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The legacy memory controller hierarchy.
    V1,
    /// The unified hierarchy.
    V2,
}

/// Where the host's memory controller is: (hierarchy, mount point).
///
/// Returns an error naming what is missing when neither hierarchy has it.
pub fn memory_controller() -> Result<(Version, PathBuf), String> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    let mut v1 = None;
    for line in info.lines() {
        // "id parent maj:min root mountpoint opts [optional...] - fstype source superopts"
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mnt = pre.split(' ').nth(4).unwrap_or("");
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let superopts = post.nth(1).unwrap_or("");
        if fstype == "cgroup2" {
            let controllers =
                fs::read_to_string(Path::new(mnt).join("cgroup.controllers")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "memory") {
                return Ok((Version::V2, PathBuf::from(mnt)));
            }
        } else if fstype == "cgroup" && superopts.split(',').any(|o| o == "memory") {
            v1 = Some(PathBuf::from(mnt));
        }
    }
    v1.map(|p| (Version::V1, p))
        .ok_or_else(|| "no memory cgroup controller mounted (v1 or v2)".to_string())
}

/// A child memory cgroup with a limit. Removed on drop.
#[derive(Debug)]
pub struct MemCgroup {
    path: PathBuf,
    version: Version,
}

impl MemCgroup {
    /// Creates a fresh cgroup limited to `limit` bytes, with swap off for it.
    ///
    /// Returns an error if the host has no memory controller or the cgroup cannot be set up.
    pub fn create(limit: u64) -> Result<Self, String> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let (version, root) = memory_controller()?;
        if version == Version::V2 {
            let sub = root.join("cgroup.subtree_control");
            let cur = fs::read_to_string(&sub).unwrap_or_default();
            if !cur.split_whitespace().any(|c| c == "memory") {
                fs::write(&sub, "+memory")
                    .map_err(|e| format!("enabling memory in {}: {e}", sub.display()))?;
            }
        }
        let path = root.join(format!(
            "oomprof-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        let cg = Self { path, version };
        match version {
            Version::V2 => {
                cg.write("memory.max", &limit.to_string())?;
                if cg.path.join("memory.swap.max").exists() {
                    cg.write("memory.swap.max", "0")?;
                }
            }
            Version::V1 => {
                cg.write("memory.limit_in_bytes", &limit.to_string())?;
                // Best effort: swappiness 0 keeps anonymous memory out of swap.
                let _ = cg.write("memory.swappiness", "0");
                if cg.path.join("memory.memsw.limit_in_bytes").exists() {
                    cg.write("memory.memsw.limit_in_bytes", &limit.to_string())?;
                }
            }
        }
        Ok(cg)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        let p = self.path.join(file);
        fs::write(&p, value).map_err(|e| format!("writing {value:?} to {}: {e}", p.display()))
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hierarchy it lives in.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Spawns `cmd` inside the cgroup: the child joins it before exec.
    ///
    /// Returns an error if the spawn or the move into the cgroup fails.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Child, String> {
        let procs = self.path.join("cgroup.procs");
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .map_err(|e| format!("opening {}: {e}", procs.display()))?;
        let fd = f.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only calls
        // write(2), which is async-signal-safe, on an fd the parent keeps open until
        // spawn returns. Writing "0" moves the writing process (v1 and v2).
        unsafe {
            cmd.pre_exec(move || {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawning {cmd:?} in cgroup: {e}"));
        drop(f);
        child
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup.
    ///
    /// Returns an error if the counter file cannot be read.
    pub fn oom_kills(&self) -> Result<u64, String> {
        let file = match self.version {
            Version::V2 => "memory.events",
            Version::V1 => "memory.oom_control",
        };
        let p = self.path.join(file);
        let text = fs::read_to_string(&p).map_err(|e| format!("reading {}: {e}", p.display()))?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no oom_kill counter in {}", p.display()))
    }

    /// Pids currently in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills every process in the cgroup (they are all ours: only we put them there).
    pub fn kill_all(&self) {
        if self.version == Version::V2 && self.path.join("cgroup.kill").exists() {
            let _ = fs::write(self.path.join("cgroup.kill"), "1");
        }
        for pid in self.pids() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.kill_all();
            if fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            if Instant::now() > deadline {
                eprintln!("warning: could not remove cgroup {}", self.path.display());
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
