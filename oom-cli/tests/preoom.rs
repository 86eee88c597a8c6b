//! Pre-OOM profiles (issue 15, part 2) with real memory pressure: a Go program leaking
//! slowly in a real v1 memory cgroup is profiled BEFORE the OOM killer kills it (the
//! file is there while the process still runs), once per debounce window, and the
//! OOM event of the kill names the last pre-OOM profile with the seconds before the
//! kill. The system's PSI trigger fires from a memory cgroup under reclaim.
//!
//! cgroup v2 `memory.pressure` and `memory.high` cannot be made here (the host's v2
//! hierarchy has no controllers): the VM matrix covers them (tests/vm/guest.sh).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use oom_tests::cgroup::MemCgroup;
use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix::{self, Toolchain};
use oom_tests::pprof_raw::RawProfile;
use oom_tests::privileged;
use oom_tests::process::Running;

mod common;

use common::*;

/// The slow leak's cgroup limit.
const LIMIT: u64 = 128 << 20;
/// The usage trigger's threshold, percent of the limit.
const PCT: u64 = 50;
/// The pre-OOM debounce the daemon runs with.
const DEBOUNCE: Duration = Duration::from_secs(3);

/// A test's directory, removed on drop (also when the test fails: the PSI test leaves
/// a 300 MiB file in it).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `*.preoom.pb.gz` files of `pid` in `dir`, oldest first, with their mtimes.
fn preoom_files(dir: &Path, pid: i32) -> Vec<(PathBuf, SystemTime)> {
    let mut v: Vec<(PathBuf, SystemTime)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n.contains(&format!("-{pid}-")) && n.ends_with(".preoom.pb.gz"))
                .then(|| (e.path(), e.metadata().unwrap().modified().unwrap()))
        })
        .collect();
    v.sort_by_key(|(_, t)| *t);
    v
}

/// The event of `pid` in the log, waiting for it.
fn event_of(dir: &Path, pid: i32) -> serde_json::Value {
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

/// A plain HTTP GET of the daemon's /metrics.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    resp.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// `key=N` in a comment line, as a number.
fn figure(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
}

/// Judges one pre-OOM profile of `pid` with `go tool pprof`: the trigger's comment
/// (returned), reason=pressure, values read by `-raw`, in-use below the cgroup's
/// usage at the trigger (which is below its limit), the leak on top.
fn judge_preoom(
    tc: &Toolchain,
    bin: &Path,
    file: &Path,
    pid: i32,
    trigger: &str,
    cgroup: Option<&str>,
    limit: u64,
) -> String {
    let what = file.display().to_string();
    let comments = pprof_comments(tc, file);
    assert!(
        comments.contains(&format!("oomprof: reason=pressure pid={pid} ")),
        "{what}: not a pressure profile of {pid}:\n{comments}"
    );
    let note = comments
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("pressure: "))
        .unwrap_or_else(|| panic!("{what}: no pressure comment:\n{comments}"))
        .to_string();
    assert!(
        note.starts_with(&format!("pressure: trigger={trigger} ")),
        "{what}: {note}"
    );
    if let Some(cg) = cgroup {
        assert!(note.contains(&format!(" cgroup={cg} ")), "{what}: {note}");
    }
    let raw = RawProfile::parse(&tc.pprof_raw(bin, file).unwrap()).unwrap();
    // An on-demand profile: what runtime.MemProfile says now (no recent_* types).
    assert_eq!(
        raw.sample_types,
        [
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space"
        ],
        "{what}: sample types"
    );
    let inuse = raw.total("inuse_space");
    // MemProfileRate is 1: the totals are counts, not estimates.
    assert!(
        (1 << 20..=limit as i64).contains(&inuse),
        "{what}: in-use {inuse} B outside 1 MiB..={limit} B"
    );
    if let Some(usage) = figure(&note, "usage=") {
        assert!(
            inuse as u64 <= usage,
            "{what}: in-use {inuse} B is more than the cgroup used at the trigger: {note}"
        );
    }
    assert_eq!(
        raw.top_function("inuse_space").map(|(f, _)| f).as_deref(),
        Some("main.allocChunk"),
        "{what}: the leak is not on top"
    );
    note
}

#[test]
#[ignore = "needs root, memory cgroups and the Go matrix: run tests/run"]
fn a_slow_leak_is_profiled_before_its_oom_kill_once_per_debounce_window() {
    let test = "a_slow_leak_is_profiled_before_its_oom_kill_once_per_debounce_window";
    if !privileged::root(test) {
        return;
    }
    let Some(tc) = gomatrix::newest(test) else {
        return;
    };
    let _g = serial();
    let tmp = TempDir(tmpdir("preoom-usage"));
    let dir = tmp.0.clone();
    let oomer = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let mut d = Daemon::start(
        Command::new(OOMPROF)
            .args([
                "--debug",
                "run",
                "--no-scan",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .arg("--dir")
            .arg(&dir)
            .args(["--pre-oom-usage", &PCT.to_string()])
            .args(["--pre-oom-debounce", &format!("{}s", DEBOUNCE.as_secs())]),
    );
    let addr = d
        .log
        .iter()
        .find_map(|l| l.split_once("metrics at http://"))
        .map(|(_, a)| a.trim_end_matches("/metrics").to_string())
        .expect("metrics address in the log");

    // 1 MiB every 100 ms, every page touched and kept: over 50 % of 128 MiB after
    // about 6 s, killed about 6 s later.
    let cg = MemCgroup::create(LIMIT).unwrap();
    let cg_name = format!("/{}", cg.path().file_name().unwrap().to_string_lossy());
    let mut p = Running::adopt(
        cg.spawn(
            Command::new(&oomer)
                .args(["-chunk", "1048576", "-delay", "100ms", "-wait"])
                .env("FIXTURE_MEMPROFILERATE", "1")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped()),
        )
        .unwrap(),
    );
    let pid = p.pid();
    p.wait_line("ready", Duration::from_secs(20)).unwrap();
    d.wait_log(&format!("watch pid {pid} "), Duration::from_secs(20));
    let started = Instant::now();
    p.send_line("go").unwrap();

    // The first pre-OOM profile appears while the process still runs.
    let mut first_seen = None;
    let status = loop {
        if first_seen.is_none() && !preoom_files(&dir, pid).is_empty() {
            first_seen = Some(Instant::now());
        }
        match p.wait_exit(Duration::from_millis(50)) {
            Ok(s) => break s,
            Err(_) => assert!(
                started.elapsed() < Duration::from_secs(90),
                "pid {pid} still running after 90 s"
            ),
        }
    };
    let (killed_at, killed_wall) = (Instant::now(), SystemTime::now());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(cg.oom_kills().unwrap() > 0, "not OOM-killed");
    let first_seen = first_seen.unwrap_or_else(|| {
        panic!(
            "no pre-OOM profile of pid {pid} before its kill; log: {:#?}",
            d.log
        )
    });
    let above = killed_at.duration_since(first_seen);
    eprintln!(
        "first pre-OOM profile {:.1} s after the leak began, {:.1} s before the kill",
        first_seen.duration_since(started).as_secs_f64(),
        above.as_secs_f64()
    );

    // The OOM kill's own profile, then the event linking the last pre-OOM profile.
    let deadline = Instant::now() + Duration::from_secs(15);
    let oom = loop {
        let hit = profiles(&dir).into_iter().find(|f| {
            let n = f.file_name().unwrap().to_string_lossy().into_owned();
            n.contains(&format!("-{pid}-")) && !n.ends_with(".preoom.pb.gz")
        });
        if let Some(f) = hit {
            break f;
        }
        assert!(Instant::now() < deadline, "no OOM profile of {pid}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let ev = event_of(&dir, pid);
    d.wait_log(&format!("oom event: pid={pid} "), Duration::from_secs(5));
    let files = preoom_files(&dir, pid);
    eprintln!(
        "{} pre-OOM profiles over {:.1} s: {files:?}",
        files.len(),
        above.as_secs_f64()
    );

    // Debounce: one profile per window, not one per 250 ms check. The usage stays
    // above the threshold from the first profile to the kill.
    let windows = ((above.as_secs_f64() + 0.5) / DEBOUNCE.as_secs_f64()).floor() as usize + 1;
    assert!(
        (1..=windows).contains(&files.len()),
        "{} pre-OOM profiles in {:.1} s with a {DEBOUNCE:?} debounce: {files:?}",
        files.len(),
        above.as_secs_f64()
    );
    if above > DEBOUNCE + Duration::from_secs(1) {
        assert!(
            files.len() >= 2,
            "still above the threshold after the window, but no second profile: {files:?}"
        );
    }
    for w in files.windows(2) {
        let gap = w[1].1.duration_since(w[0].1).unwrap();
        assert!(
            gap >= DEBOUNCE - Duration::from_millis(100),
            "two pre-OOM profiles {gap:?} apart within the {DEBOUNCE:?} debounce: {files:?}"
        );
    }

    for (f, _) in &files {
        let note = judge_preoom(&tc, &oomer, f, pid, "usage", Some(&cg_name), LIMIT);
        let (usage, limit) = (
            figure(&note, "usage=").unwrap(),
            figure(&note, "limit=").unwrap(),
        );
        assert_eq!(limit, LIMIT, "{note}");
        assert!(usage * 100 >= limit * PCT && usage <= limit, "{note}");
        let mode = std::fs::metadata(f).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
    // The daemon logged each one with its trigger and figures.
    for (f, _) in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            d.log.iter().any(|l| l.contains(&name)
                && l.contains("reason=pressure trigger=usage")
                && l.contains(&format!("cgroup={cg_name} usage="))),
            "no log line for {name}: {:#?}",
            d.log
        );
    }

    // The event names the OOM profile and the newest pre-OOM one, with the time
    // between it and the kill. (A pre-OOM profile finishing at the moment of the kill
    // may reach the daemon after it wrote the event: then the one before it is named.)
    assert_eq!(
        ev["profile"].as_str(),
        oom.file_name().and_then(|n| n.to_str()),
        "{ev}"
    );
    let pre = &ev["preoom"];
    let named = pre["profile"].as_str().unwrap_or_else(|| panic!("{ev}"));
    let at = files
        .iter()
        .position(|(f, _)| f.file_name().and_then(|n| n.to_str()) == Some(named))
        .unwrap_or_else(|| panic!("the event names {named}, not one of {files:?}"));
    for (f, t) in &files[at + 1..] {
        let before = killed_wall.duration_since(*t).unwrap_or_default();
        assert!(
            before < Duration::from_secs(1),
            "{} was written {before:?} before the kill, but the event names the older {named}",
            f.display()
        );
    }
    let (last, last_mtime) = &files[at];
    assert_eq!(pre["linked_by"], "pid", "{ev}");
    assert_eq!(pre["trigger"], "usage", "{ev}");
    let secs = pre["seconds_before_kill"].as_f64().unwrap();
    let seen = killed_wall
        .duration_since(*last_mtime)
        .unwrap()
        .as_secs_f64();
    assert!(
        secs > 0.0 && (secs - seen).abs() < 1.0,
        "event says {secs} s before the kill, the test saw {seen:.2} s: {ev}"
    );

    // `oomprof events` prints the link; the metrics count the profiles.
    let out = Command::new(OOMPROF)
        .args(["events", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(&format!("pid={pid} ")))
        .unwrap_or_else(|| panic!("pid {pid} not in:\n{text}"));
    assert!(
        line.contains(&format!(
            "preoom={} ({secs:.1}s before)",
            last.file_name().unwrap().to_string_lossy()
        )),
        "{line}"
    );
    let metrics = scrape(&addr);
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix("oomprof_preoom_profiles_total{trigger=\"usage\"} "))
        .and_then(|v| v.parse::<usize>().ok());
    // Other helpers' Go programs on this host may be profiled too: at least ours.
    assert!(
        count.is_some_and(|n| n >= files.len()),
        "{count:?} < {}:\n{metrics}",
        files.len()
    );
    assert!(
        metrics.contains("oomprof_preoom_profiles_total{trigger=\"system-psi\"} 0"),
        "{metrics}"
    );
    d.sigterm();
    drop(cg);
    drop(tmp);
}

#[test]
#[ignore = "needs root, memory cgroups and the Go matrix: run tests/run"]
fn the_system_psi_trigger_fires_from_a_memory_cgroup_under_reclaim() {
    let test = "the_system_psi_trigger_fires_from_a_memory_cgroup_under_reclaim";
    if !privileged::root(test) || privileged::tool(test, "dd").is_none() {
        return;
    }
    let Some(tc) = gomatrix::newest(test) else {
        return;
    };
    if !Path::new("/proc/pressure/memory").exists() {
        privileged::skip(test, "the kernel has no PSI (/proc/pressure/memory)");
        return;
    }
    let _g = serial();
    let tmp = TempDir(tmpdir("preoom-psi"));
    let dir = tmp.0.clone();
    let oomer = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let mut d = Daemon::start(
        Command::new(OOMPROF)
            .args(["--debug", "run", "--no-scan", "--dir"])
            .arg(&dir)
            .args(["--pre-oom-system-psi", "some:50ms/2s"]),
    );

    // Our Go program: a leak that stops (the delay is long after 200 chunks: it
    // holds 200 MiB, a large process among those the trigger profiles first).
    let holder_cg = MemCgroup::create(1 << 30).unwrap();
    let mut p = Running::adopt(
        holder_cg
            .spawn(
                Command::new(&oomer)
                    .args(["-chunk", "1048576", "-delay", "5ms", "-wait"])
                    .env("FIXTURE_MEMPROFILERATE", "1")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped()),
            )
            .unwrap(),
    );
    let pid = p.pid();
    p.wait_line("ready", Duration::from_secs(20)).unwrap();
    d.wait_log(&format!("watch pid {pid} "), Duration::from_secs(20));
    p.send_line("go").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // Stop it growing: SIGSTOP keeps its memory and leaves it readable.
    p.signal(libc::SIGSTOP).unwrap();

    // Reclaim stalls: dirty page cache written in a 32 MiB cgroup (the system's PSI
    // counts every memcg's reclaim stall).
    let writer_cg = MemCgroup::create(32 << 20).unwrap();
    let file = dir.join("dirty");
    let t0 = Instant::now();
    let mut found = None;
    while t0.elapsed() < Duration::from_secs(60) && found.is_none() {
        let mut w = Running::adopt(
            writer_cg
                .spawn(
                    Command::new("dd")
                        .arg("if=/dev/zero")
                        .arg(format!("of={}", file.display()))
                        .args(["bs=1M", "count=300", "conv=fsync", "status=none"])
                        .stdout(std::process::Stdio::piped()),
                )
                .unwrap(),
        );
        let _ = w.wait_exit(Duration::from_secs(60));
        found = preoom_files(&dir, pid).into_iter().next();
    }
    let Some((f, _)) = found else {
        panic!(
            "no system-psi pre-OOM profile of {pid} in 60 s of reclaim; {}; log: {:#?}",
            std::fs::read_to_string("/proc/pressure/memory").unwrap_or_default(),
            d.log
        );
    };
    eprintln!(
        "system PSI fired after {:.1} s of reclaim",
        t0.elapsed().as_secs_f64()
    );
    let note = judge_preoom(&tc, &oomer, &f, pid, "system-psi", None, 1 << 30);
    assert!(note.contains("some:50ms/2s memory some avg10="), "{note}");
    let _ = p.signal(libc::SIGKILL);
    let _ = p.wait_exit(Duration::from_secs(10));
    d.sigterm();
    drop(writer_cg);
    drop(holder_cg);
    drop(tmp);
}
