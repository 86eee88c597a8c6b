//! Issue 8 against the built binary: agent faults (SIGKILL mid-capture, two instances),
//! output faults (full disk), PID reuse, and least privilege.

use std::fs;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;
use oom_tests::process::Running;

mod common;

use common::*;

fn bpftool_has(kind: &str, id: u32) -> bool {
    Command::new("bpftool")
        .args([kind, "show", "id", &id.to_string()])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn sigkill_of_the_daemon_mid_capture_leaves_nothing_and_a_restart_works() {
    const T: &str = "sigkill_of_the_daemon_mid_capture_leaves_nothing_and_a_restart_works";
    if !privileged::root(T) {
        return;
    }
    if privileged::tool(T, "bpftool").is_none() {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let dir = tmpdir("sigkill");
    let d = daemon(&dir, &[]);
    let (progs, maps) = d.bpf_ids();
    // Five attached, and the walk program they tail-call.
    assert_eq!(progs.len(), 6, "{progs:?}");
    assert!(progs.iter().all(|&p| bpftool_has("prog", p)));
    // A 100k-bucket victim: its capture takes tens of milliseconds. Kill the daemon
    // the moment the cgroup's OOM counter moves.
    let bin = fixtures::build("manysites", &tc, Variant::Default).unwrap();
    let cg = MemCgroup::create(512 << 20).unwrap();
    let mut p = Running::adopt(
        cg.spawn(
            Command::new(&bin)
                .args(["-n", "100000", "-oom"])
                .stdout(Stdio::piped()),
        )
        .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while cg.oom_kills().unwrap() == 0 {
        assert!(Instant::now() < deadline, "no OOM kill");
        std::hint::spin_loop();
    }
    let mut d = d;
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    p.wait_exit(Duration::from_secs(30)).unwrap();
    // The kernel frees programs and maps once the last fd is gone (RCU: allow a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = progs
            .iter()
            .filter(|&&i| bpftool_has("prog", i))
            .map(|i| format!("prog {i}"))
            .chain(
                maps.iter()
                    .filter(|&&i| bpftool_has("map", i))
                    .map(|i| format!("map {i}")),
            )
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left attached after SIGKILL: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A restarted daemon works at once.
    let d2 = daemon(&dir, &[]);
    let oomer = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let pid = oom_once(&oomer);
    let f = profile_of(&dir, pid, Duration::from_secs(10)).expect("no profile after restart");
    assert_eq!(top_function(&tc, &oomer, &f), "main.allocChunk");
    d2.sigterm();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn two_daemons_at_once_both_write_profiles() {
    const T: &str = "two_daemons_at_once_both_write_profiles";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let (a, b) = (tmpdir("two-a"), tmpdir("two-b"));
    let da = daemon(&a, &[]);
    let db = daemon(&b, &[]);
    let oomer = fixtures::build("oomer", &tc, Variant::Pie).unwrap();
    let pid = oom_once(&oomer);
    for dir in [&a, &b] {
        let f = profile_of(dir, pid, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no profile in {}", dir.display()));
        assert_eq!(top_function(&tc, &oomer, &f), "main.allocChunk");
    }
    da.sigterm();
    db.sigterm();
    let _ = fs::remove_dir_all(&a);
    let _ = fs::remove_dir_all(&b);
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn a_full_disk_is_reported_nothing_partial_is_left_and_the_profile_follows() {
    // The profile and the kill's OOM event both wait for room, and arrive whole.
    const T: &str = "a_full_disk_is_reported_nothing_partial_is_left_and_the_profile_follows";
    if !privileged::root(T) {
        return;
    }
    if privileged::tool(T, "mount").is_none() {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let dir = tmpdir("full");
    let _fs = Tmpfs::mount(&dir, "256k");
    // Fill it.
    let filler = dir.join("filler");
    {
        use std::io::Write;
        let mut f = fs::File::create(&filler).unwrap();
        let block = vec![0xa5u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let mut d = daemon(&dir, &[]);
    let oomer = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let pid = oom_once(&oomer);
    d.wait_log("will retry", Duration::from_secs(10));
    // The event log (created at start, appended to) is not a profile.
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "oomprof-events.jsonl")
        .collect();
    assert_eq!(names, ["filler"], "partial files left behind");
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon died");
    d.wait_log(
        &format!("writing the OOM event of pid {pid}: "),
        Duration::from_secs(10),
    );
    // Room again: the waiting profile is written.
    fs::remove_file(&filler).unwrap();
    d.wait_log("(delayed)", Duration::from_secs(10));
    let f = profile_of(&dir, pid, Duration::from_secs(5)).expect("profile after freeing space");
    assert_eq!(top_function(&tc, &oomer, &f), "main.allocChunk");
    // The kill's event follows too, whole: every line of the log is an event.
    let ev = event_of(&dir, pid);
    assert_eq!(ev["comm"], "oomer", "{ev}");
    let log = fs::read_to_string(dir.join("oomprof-events.jsonl")).unwrap();
    for l in log.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    d.sigterm();
}

/// A profile directory that uid 65534 owns.
fn nobody_dir(name: &str) -> PathBuf {
    let dir = tmpdir(name);
    let st = Command::new("chown")
        .args(["65534:65534"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

/// `setpriv` arguments running the daemon as uid 65534 with exactly `caps` (a setpriv
/// capability list) into `dir`, starting with the program name.
fn nobody_daemon(caps: &str, dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ]
    .map(Into::into)
    .to_vec();
    v.push(format!("--inh-caps={caps}").into());
    v.push(format!("--ambient-caps={caps}").into());
    v.extend([OOMPROF, "run", "--no-scan", "--dir"].map(Into::into));
    v.push(dir.into());
    v
}

fn command(args: &[std::ffi::OsString]) -> Command {
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    cmd
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn least_privilege_capability_set_is_enough() {
    const T: &str = "least_privilege_capability_set_is_enough";
    if !privileged::root(T) {
        return;
    }
    if privileged::tool(T, "setpriv").is_none() {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let dir = nobody_dir("caps");
    // The set documented in README and granted by deploy/ (not CAP_SYS_RESOURCE: it
    // only mattered before Linux 5.11, where BPF memory counted against RLIMIT_MEMLOCK).
    let caps = "-all,+bpf,+perfmon,+sys_admin,+sys_ptrace,+dac_read_search";
    let d = Daemon::start(&mut command(&nobody_daemon(caps, &dir)));
    let oomer = fixtures::build("oomer", &tc, Variant::Stripped).unwrap();
    let pid = oom_once(&oomer);
    let f =
        profile_of(&dir, pid, Duration::from_secs(10)).expect("no profile with the minimal set");
    assert_eq!(
        fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(top_function(&tc, &oomer, &f), "main.allocChunk");
    d.sigterm();
    // Without CAP_BPF it refuses to start, with one clear line.
    let out = command(&nobody_daemon("-all,+perfmon,+sys_admin", &dir))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("oomprof:"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

/// Makes the next fork in this pid namespace get `pid` (root, host pid namespace).
fn set_next_pid(pid: i32) -> bool {
    fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_ok()
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn a_reused_pid_is_profiled_with_its_new_binary() {
    const T: &str = "a_reused_pid_is_profiled_with_its_new_binary";
    if !privileged::root(T) {
        return;
    }
    let Some(matrix) = gomatrix::matrix(T) else {
        return;
    };
    let _g = serial();
    let dir = tmpdir("reuse");
    let d = daemon(&dir, &["--keep-all-kills"]);
    // Old: a watched Go 1.19 holder, killed with SIGKILL. New: Go 1.27 oomer (a
    // different binary, Go version and memRecord layout) forced onto the same pid.
    let old_tc = &matrix[0];
    let new_tc = matrix.last().unwrap();
    let holder = fixtures::build("holder", old_tc, Variant::Default).unwrap();
    let oomer = fixtures::build("oomer", new_tc, Variant::Default).unwrap();
    let mut reused = None;
    for _attempt in 0..50 {
        let mut old =
            Running::spawn(Command::new(&holder).args(["-large", "1", "-small", "10"])).unwrap();
        old.wait_line("ready", Duration::from_secs(20)).unwrap();
        std::thread::sleep(Duration::from_millis(100)); // discovered and watched
        let pid = old.pid();
        old.signal(libc::SIGKILL).unwrap();
        old.wait_exit(Duration::from_secs(10)).unwrap();
        drop(old);
        let cg = MemCgroup::create(64 << 20).unwrap();
        if !set_next_pid(pid) {
            break;
        }
        let mut new = Running::adopt(cg.spawn(&mut Command::new(&oomer)).unwrap());
        if new.pid() != pid {
            new.wait_exit(Duration::from_secs(60)).unwrap();
            continue; // another process took the pid first; try again
        }
        new.wait_exit(Duration::from_secs(60)).unwrap();
        assert!(cg.oom_kills().unwrap() > 0);
        reused = Some(pid);
        break;
    }
    let Some(pid) = reused else {
        privileged::skip(
            T,
            "could not place a new process on the old pid (busy host)",
        );
        return;
    };
    // The old process's kill gives a "killed" profile (we keep all kills); the new one an
    // "oom" profile with the new binary's symbols and Go version.
    let deadline = Instant::now() + Duration::from_secs(10);
    let oom = loop {
        let files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(&format!("oomer-{pid}-")))
            .collect();
        if let Some(f) = files.first() {
            break f.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no profile for the reused pid {pid}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(top_function(new_tc, &oomer, &oom), "main.allocChunk");
    let raw = new_tc
        .command()
        .args(["tool", "pprof", "-raw"])
        .arg(&oomer)
        .arg(&oom)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&raw.stdout);
    assert!(
        !text.contains("main.allocLarge"),
        "old binary's symbols in the new profile"
    );
    d.sigterm();
    let _ = fs::remove_dir_all(&dir);
}

/// Pids in the daemon's `oomprof_watched` BPF map, via bpftool.
fn watched_pids(d: &Daemon) -> Vec<u32> {
    let (_, maps) = d.bpf_ids();
    for id in maps {
        let show = Command::new("bpftool")
            .args(["map", "show", "id", &id.to_string()])
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&show.stdout).contains("name oomprof_watched") {
            continue;
        }
        let dump = Command::new("bpftool")
            .args(["map", "dump", "id", &id.to_string()])
            .output()
            .unwrap();
        // With BTF, bpftool prints `"key": 24193,`; without, `key: 81 5e 00 00 ...`.
        let text = String::from_utf8_lossy(&dump.stdout).into_owned();
        let mut pids = Vec::new();
        for l in text.lines().map(str::trim) {
            if let Some(v) = l.strip_prefix("\"key\":") {
                pids.push(v.trim().trim_end_matches(',').parse().unwrap());
            } else if let Some(k) = l.strip_prefix("key:") {
                let b: Vec<u8> = k
                    .split_whitespace()
                    .take(4)
                    .map(|x| u8::from_str_radix(x, 16).unwrap())
                    .collect();
                pids.push(u32::from_le_bytes(b.try_into().unwrap()));
            }
        }
        let found = text.lines().filter(|l| l.contains("key")).count();
        assert_eq!(found, pids.len(), "unparsed bpftool output: {text}");
        return pids;
    }
    panic!("no oomprof_watched map among the daemon's maps");
}

fn proc_figures(pid: i32) -> (u64, u64, f64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based), 11 and 12 after the comm.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    (kb("VmRSS:"), kb("VmHWM:"), ticks as f64 / 100.0)
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn churn_of_10000_short_lived_processes_leaks_nothing() {
    const T: &str = "churn_of_10000_short_lived_processes_leaks_nothing";
    if !privileged::root(T) {
        return;
    }
    if privileged::tool(T, "bpftool").is_none() {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let dir = tmpdir("churn");
    // Every kill kept: a normal exit is no kill, so none may leave a profile.
    let d = daemon(&dir, &["--keep-all-kills"]);
    let holder = fixtures::build("holder", &tc, Variant::Default).unwrap();
    let (rss0, _, cpu0) = proc_figures(d.pid());
    // The map parser sees a watched process (so an empty map later means something).
    let mut probe =
        Running::spawn(Command::new(&holder).args(["-large", "0", "-small", "0"])).unwrap();
    probe.wait_line("ready", Duration::from_secs(20)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        watched_pids(&d).contains(&(probe.pid() as u32)),
        "a running Go process is not watched"
    );
    // Killed, so captured (and kept): proof that this daemon writes kills.
    let probe_pid = probe.pid();
    drop(probe);
    let probe_file = profile_of(&dir, probe_pid, Duration::from_secs(10));
    assert!(probe_file.is_some(), "the SIGKILLed probe left no profile");
    let t = Instant::now();
    let n = 10_000;
    let mut running: Vec<Child> = Vec::new();
    let mut go_pids = std::collections::HashSet::new();
    for i in 0..n {
        let mut cmd = if i % 2 == 0 {
            let mut c = Command::new(&holder);
            c.args(["-exit", "-large", "0", "-small", "0"]);
            c
        } else {
            Command::new("/bin/true")
        };
        let child = cmd.stdout(Stdio::null()).spawn().unwrap();
        if i % 2 == 0 {
            go_pids.insert(child.id());
        }
        running.push(child);
        // Keep at most 8 alive at once: short-lived, like a busy host's jobs.
        if running.len() >= 8 {
            let mut c = running.remove(0);
            c.wait().unwrap();
        }
    }
    for mut c in running {
        c.wait().unwrap();
    }
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    // Entries of processes that no longer exist are leaks; live ones (other Go
    // programs on the host) are rightly watched.
    let watched = watched_pids(&d);
    let left: Vec<u32> = watched
        .iter()
        .copied()
        .filter(|p| !Path::new(&format!("/proc/{p}")).exists())
        .collect();
    let (rss, hwm, cpu) = proc_figures(d.pid());
    eprintln!(
        "{n} processes (half Go) in {took:.1?}: {} watched, {} of them gone; daemon RSS {rss0} -> {rss} kB (peak {hwm} kB), CPU {:.2} s",
        watched.len(),
        left.len(),
        cpu - cpu0
    );
    assert!(
        left.is_empty(),
        "watch-map entries leaked for exited pids {left:?}"
    );
    // 5,000 watched Go programs exited normally: no capture, no file. (Files of other
    // processes killed on the host meanwhile are theirs.)
    let files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.rsplit('-')
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| go_pids.contains(&p))
        })
        .collect();
    assert!(
        files.is_empty(),
        "normal exits left profiles: {} files, e.g. {:?}",
        files.len(),
        files.first()
    );
    assert!(hwm < 64 * 1024, "daemon peak RSS {hwm} kB");
    d.sigterm();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn least_privilege_with_tracefs_mounted_is_four_capabilities_and_cap_bpf_is_named() {
    // Where the host has mounted tracefs, CAP_SYS_ADMIN is not needed: exactly
    // CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH capture an OOM kill.
    // The daemon runs in a private mount namespace of its own where tracefs is
    // mounted first, so the host's mounts stay as they are.
    const T: &str =
        "least_privilege_with_tracefs_mounted_is_four_capabilities_and_cap_bpf_is_named";
    if !privileged::root(T) {
        return;
    }
    if privileged::tool(T, "setpriv").is_none() || privileged::tool(T, "unshare").is_none() {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let _g = serial();
    let dir = nobody_dir("caps4");
    let in_ns_with_tracefs = |caps: &str| {
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount -t tracefs nodev /sys/kernel/tracing && exec \"$@\"")
            .arg("sh")
            .args(nobody_daemon(caps, &dir));
        cmd
    };
    let four = "-all,+bpf,+perfmon,+sys_ptrace,+dac_read_search";
    let d = Daemon::start(&mut in_ns_with_tracefs(four));
    let oomer = fixtures::build("oomer", &tc, Variant::Stripped).unwrap();
    let pid = oom_once(&oomer);
    let f = profile_of(&dir, pid, Duration::from_secs(10))
        .expect("no profile with CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH");
    assert_eq!(top_function(&tc, &oomer, &f), "main.allocChunk");
    d.sigterm();
    // Each of the four is needed: without CAP_BPF the daemon refuses, naming it.
    let out = in_ns_with_tracefs("-all,+perfmon,+sys_ptrace,+dac_read_search")
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CAP_BPF"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let _ = fs::remove_dir_all(&dir);
}
