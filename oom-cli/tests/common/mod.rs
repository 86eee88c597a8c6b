//! Helpers shared by the CLI's end-to-end tests: the built binary, a daemon whose log
//! is read line by line, real OOM kills, and `go tool pprof` as the judge.
#![allow(
    dead_code,
    reason = "each test binary uses its own subset (expect would fail where all are used)"
)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use oom_tests::cgroup::MemCgroup;
use oom_tests::gomatrix::Toolchain;
use oom_tests::process::Running;

pub mod deploy;
pub mod runtime;

pub const OOMPROF: &str = env!("CARGO_BIN_EXE_oomprof");

/// One daemon at a time per test binary: each sees every kill on the host.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oomprof-hard-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// A daemon whose stderr lines arrive on a channel; SIGKILLed on drop if still running.
pub struct Daemon {
    pub child: Child,
    lines: Receiver<String>,
    pub log: Vec<String>,
}

impl Daemon {
    pub fn start(cmd: &mut Command) -> Daemon {
        Self::adopt(cmd.stderr(Stdio::piped()).spawn().unwrap())
    }

    /// Takes over a daemon spawned with stderr piped, and waits for its ready line.
    pub fn adopt(mut child: Child) -> Daemon {
        let err = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[oomprof {}] {l}", std::process::id());
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut d = Daemon {
            child,
            lines: rx,
            log: Vec::new(),
        };
        d.wait_log("ready in", Duration::from_secs(20));
        d
    }

    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.log.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!("no daemon log line with {needle:?}; log: {:#?}", self.log),
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// (prog ids, map ids) the daemon holds, from its fdinfo.
    pub fn bpf_ids(&self) -> (Vec<u32>, Vec<u32>) {
        let mut progs = Vec::new();
        let mut maps = Vec::new();
        let dir = format!("/proc/{}/fdinfo", self.pid());
        for e in fs::read_dir(dir).unwrap().flatten() {
            let Ok(t) = fs::read_to_string(e.path()) else {
                continue;
            };
            for l in t.lines() {
                if let Some(v) = l.strip_prefix("prog_id:") {
                    progs.push(v.trim().parse().unwrap());
                }
                if let Some(v) = l.strip_prefix("map_id:") {
                    maps.push(v.trim().parse().unwrap());
                }
            }
        }
        progs.sort();
        progs.dedup();
        maps.sort();
        maps.dedup();
        (progs, maps)
    }

    pub fn sigterm(mut self) {
        // SAFETY: kill on our own child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let s = self.child.wait().unwrap();
        assert!(s.success(), "daemon exit after SIGTERM: {s:?}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn daemon(dir: &Path, extra: &[&str]) -> Daemon {
    Daemon::start(
        Command::new(OOMPROF)
            .args(["run", "--no-scan", "--dir"])
            .arg(dir)
            .args(extra),
    )
}

/// Runs `bin` (an oomer) in a 64 MiB cgroup until the OOM killer kills it; its pid.
pub fn oom_once(bin: &Path) -> i32 {
    let cg = MemCgroup::create(64 << 20).unwrap();
    let mut p = Running::adopt(cg.spawn(&mut Command::new(bin)).unwrap());
    p.wait_exit(Duration::from_secs(60)).unwrap();
    assert!(cg.oom_kills().unwrap() > 0, "not OOM-killed");
    p.pid()
}

/// The 64 MiB limit of [`oom_exact`]'s cgroup.
pub const OOM_LIMIT: u64 = 64 << 20;

/// An OOM kill of [`oom_exact`]: the victim's pid and its cgroup's name (the last
/// component of its path, as the profile's `cgroup:` comment ends).
#[derive(Debug)]
pub struct OomKill {
    pub pid: i32,
    pub cgroup: String,
}

/// Runs `cmd` with MemProfileRate 1 (every allocation recorded, so a profile's totals
/// are counts that [`deploy::judge_oom_file`] can bound exactly) in a fresh
/// [`OOM_LIMIT`] cgroup until the OOM killer kills it.
pub fn oom_exact(cmd: &mut Command) -> OomKill {
    let cg = MemCgroup::create(OOM_LIMIT).unwrap();
    let mut p = Running::adopt(cg.spawn(cmd.env("FIXTURE_MEMPROFILERATE", "1")).unwrap());
    p.wait_exit(Duration::from_secs(60)).unwrap();
    assert!(cg.oom_kills().unwrap() > 0, "not OOM-killed");
    OomKill {
        pid: p.pid(),
        cgroup: cg
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
    }
}

/// The `*.pb.gz` files of `dir`, sorted.
pub fn profiles(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".pb.gz"))
        .collect();
    v.sort();
    v
}

/// `go tool pprof -comments` of `file`: oomprof's metadata as pprof reads it.
pub fn pprof_comments(tc: &Toolchain, file: &Path) -> String {
    let out = tc
        .command()
        .args(["tool", "pprof", "-comments"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go tool pprof -comments {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tmpfs mounted on `dir` for a test, unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "oomprof-test",
            ])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

pub fn profile_of(dir: &Path, pid: i32, timeout: Duration) -> Option<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        let hit = fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.contains(&format!("-{pid}-")) && n.ends_with(".pb.gz")
            });
        if hit.is_some() || Instant::now() > deadline {
            return hit;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn top_function(tc: &Toolchain, bin: &Path, file: &Path) -> String {
    let out = tc
        .command()
        .args(["tool", "pprof", "-top", "-sample_index=inuse_space"])
        .arg(bin)
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .nth(1)
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("")
        .to_string()
}

/// The event of `pid` in `dir`'s event log, waiting for it.
pub fn event_of(dir: &Path, pid: i32) -> serde_json::Value {
    let log = dir.join("oomprof-events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            if v["pid"] == pid {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no event for pid {pid} in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The profile whose file name starts with `prefix`, waiting for it.
pub fn profile_prefixed(dir: &Path, prefix: &str) -> PathBuf {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
        {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {prefix}* profile in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
