//! The OOM event log with real OOM kills of three kinds of process: a Go program (the
//! event names its profile), a C program leaking malloc'd memory (anonymous memory
//! filled the cgroup), and a shell filling a tmpfs (shmem filled it). `oomprof events`
//! prints them. The kernel's reports are read from /dev/kmsg, through syslog(2) (as in
//! a container), or not at all (the kernel program's victim records alone).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;

mod common;

use common::deploy::judge_oom_file;
use common::*;

const LIMIT: u64 = OOM_LIMIT;

fn bytes(v: &serde_json::Value, kind: &str) -> u64 {
    v["memcg"]["bytes"][kind].as_u64().unwrap_or(0)
}

#[test]
#[ignore = "needs root, the Go matrix and gcc: run tests/run"]
fn every_oom_kill_gets_an_event_naming_the_memory_that_filled_the_cgroup() {
    three_kills(
        "every_oom_kill_gets_an_event_naming_the_memory_that_filled_the_cgroup",
        "kmsg",
    );
}

#[test]
#[ignore = "needs root, the Go matrix and gcc: run tests/run"]
fn the_kernel_log_read_through_syslog_gives_the_same_events() {
    three_kills(
        "the_kernel_log_read_through_syslog_gives_the_same_events",
        "syslog",
    );
}

#[test]
#[ignore = "needs root, the Go matrix and gcc: run tests/run"]
fn without_the_kernel_log_every_kill_still_gets_an_event_from_its_victim_record() {
    three_kills(
        "without_the_kernel_log_every_kill_still_gets_an_event_from_its_victim_record",
        "off",
    );
}

/// The victim record's part of an event: the victim's exe and command line read from
/// /proc before it was gone, its cgroup, and where the event came from.
fn judge_victim_part(ev: &serde_json::Value, exe: &Path, argv1: Option<&str>, report: bool) {
    let sources: Vec<&str> = ev["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let want: &[&str] = if report {
        &["mark_victim", "kernel_log"]
    } else {
        &["mark_victim"]
    };
    assert_eq!(sources, want, "{ev}");
    let got = ev["exe"].as_str().map(std::path::PathBuf::from);
    assert_eq!(
        got.map(|p| std::fs::canonicalize(p).unwrap()),
        Some(std::fs::canonicalize(exe).unwrap()),
        "{ev}"
    );
    // The cgroup's own files right after the kill, read when its victim record came.
    // This test removes a victim's cgroup as soon as the victim is reaped, as runtimes
    // do, and the daemon reads them after the victim's /proc: they may be gone by then
    // (most often when the victim already was: exe from the watch). When there, they
    // give the limit and a peak at it, never an object of nulls.
    let after = &ev["memcg"]["after_kill"];
    if !after.is_null() {
        assert_eq!(after["limit_bytes"].as_u64(), Some(LIMIT), "{ev}");
        assert!(
            after["peak_bytes"].as_u64() >= Some(LIMIT * 95 / 100),
            "{ev}"
        );
        assert!(after["oom_kills"].as_u64() >= Some(1), "{ev}");
    }
    eprintln!(
        "pid {} ({}): exe from {}, /proc read {} ms after the kill",
        ev["pid"], ev["comm"], ev["exe_from"], ev["victim_read_after_ms"]
    );
    // The command line and cgroup only while /proc still had them; the exe always
    // (a watched process's, or its last exec's).
    match ev["exe_from"].as_str() {
        Some("proc") => {
            // The command line is read first: it may be gone while the exe is not.
            if let (Some(a), false) = (argv1, ev["cmdline"].is_null()) {
                assert_eq!(ev["cmdline"][1], a, "{ev}");
            }
            assert!(
                ev["cgroup"]
                    .as_str()
                    .is_some_and(|c| c.contains(":/oomprof-test-")),
                "{ev}"
            );
        }
        Some("watch") => assert!(
            ev["cgroup"]
                .as_str()
                .is_some_and(|c| c.contains(":/oomprof-test-")),
            "{ev}"
        ),
        Some("exec") => assert!(ev["cgroup"].is_null(), "{ev}"),
        other => panic!("exe_from {other:?}: {ev}"),
    }
    assert!(ev["victim_read_after_ms"].as_f64().is_some(), "{ev}");
}

fn three_kills(test: &str, kernel_log: &str) {
    if !privileged::root(test) || privileged::tool(test, "gcc").is_none() {
        return;
    }
    let Some(tc) = gomatrix::newest(test) else {
        return;
    };
    let _g = serial();
    let dir = tmpdir("events");
    let oomer = fixtures::build("oomer", &tc, Variant::Default).unwrap();

    // A C program that leaks 1 MiB blocks, each touched.
    let src = dir.join("leak.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\n#include <string.h>\n\
         int main(void) { for (;;) { char *p = malloc(1 << 20); if (p) memset(p, 1, 1 << 20); } }\n",
    )
    .unwrap();
    let leak = dir.join("leak");
    let st = Command::new("gcc")
        .arg("-O0")
        .arg("-o")
        .arg(&leak)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "gcc");

    let mnt = dir.join("tmpfs");
    std::fs::create_dir(&mnt).unwrap();
    let tmpfs = Tmpfs::mount(&mnt, "512m");

    let d = daemon(&dir, &["--kernel-log", kernel_log]);
    let report = kernel_log != "off";
    if report {
        // The kernel prints at most 10 OOM report headers per 5 s (oom_kill.c's
        // ratelimit); the kills of the tests before this one count against it.
        std::thread::sleep(Duration::from_secs(5));
    }

    // Go: the event names the profile of the same kill.
    let kill = oom_exact(&mut Command::new(&oomer));
    let go = kill.pid;
    let file = profile_of(&dir, go, Duration::from_secs(10)).expect("no Go profile");
    judge_oom_file(
        &tc,
        &oomer,
        &file,
        (kill.pid, &kill.cgroup),
        OOM_LIMIT,
        true,
        "main.allocChunk",
    );
    let ev = event_of(&dir, go);
    assert_eq!(ev["comm"], "oomer");
    judge_victim_part(&ev, &oomer, None, report);
    assert_eq!(
        ev["profile"].as_str(),
        file.file_name().and_then(|n| n.to_str()),
        "{ev}"
    );
    // And back: the profile names the event log and the kill's pid.
    let c = pprof_comments(&tc, &file);
    assert!(
        c.contains(&format!(
            "event: oomprof-events.jsonl (the line with \"pid\":{go})"
        )),
        "{c}"
    );
    if report {
        assert_eq!(ev["constraint"], "CONSTRAINT_MEMCG");
        assert_eq!(ev["memcg"]["bytes"]["dominant"], "anon", "{ev}");
    } else {
        assert!(ev["constraint"].is_null(), "{ev}");
    }

    // C: anonymous memory, nearly the whole limit; no profile.
    let c = oom_exact(Command::new(&leak).arg("--leak-tag")).pid;
    let ev = event_of(&dir, c);
    assert_eq!(ev["comm"], "leak");
    judge_victim_part(&ev, &leak, Some("--leak-tag"), report);
    if report {
        assert_eq!(ev["memcg"]["bytes"]["dominant"], "anon", "{ev}");
        assert!(bytes(&ev, "anon") >= LIMIT * 95 / 100, "{ev}");
        // The whole memory.stat is there (v1 prints total_rss, v2 anon).
        let stat = &ev["memcg"]["stat"];
        assert!(
            stat["anon"].as_u64().or(stat["total_rss"].as_u64()) >= Some(LIMIT * 95 / 100),
            "{ev}"
        );
    }
    assert!(ev["profile"].is_null(), "{ev}");
    // The victim's RSS: the kernel's report, or the tracepoint's (Linux ~6.9+).
    assert!(
        ev["rss_kb"]["anon"].as_u64().unwrap() * 1024 >= LIMIT * 90 / 100,
        "{ev}"
    );

    if kernel_log != "kmsg" {
        // The kernel rate-limits its OOM reports (10 per 5 s): the other modes kill
        // only twice, so that this file's seven kills stay within it.
        drop(tmpfs);
        d.sigterm();
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // tmpfs: shmem fills the cgroup; the writer is killed, the pages stay.
    let fill = mnt.join("fill");
    let sh = oom_exact(
        Command::new("sh")
            .arg("-c")
            .arg(format!("exec dd if=/dev/zero of={} bs=1M", fill.display())),
    )
    .pid;
    let ev = event_of(&dir, sh);
    assert_eq!(ev["comm"], "dd");
    if report {
        assert_eq!(ev["memcg"]["bytes"]["dominant"], "shmem", "{ev}");
        assert!(bytes(&ev, "shmem") >= LIMIT * 95 / 100, "{ev}");
    }
    drop(tmpfs);

    // Every event is a JSON line; `oomprof events` prints each readably.
    let out = Command::new(OOMPROF)
        .args(["events", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for (pid, what) in [(go, "anon"), (c, "anon"), (sh, "shmem")] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("pid={pid} ")))
            .unwrap_or_else(|| panic!("pid {pid} not in:\n{text}"));
        assert!(line.contains(&format!(": {what} ")), "{line}");
    }
    let out = Command::new(OOMPROF)
        .args(["events", "--since", "soon", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    d.sigterm();
    let _ = std::fs::remove_dir_all(&dir);
}
