//! What the daemon keeps, with real OOM kills: `--max-files` removes the oldest
//! profiles and never the newest; `--debounce` writes the first kill of a burst of one
//! executable and logs the rest.

use std::process::Command;
use std::time::Duration;

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;

mod common;

use common::deploy::judge_oom_file;
use common::*;

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn max_files_keeps_the_newest() {
    let test = "max_files_keeps_the_newest";
    if !privileged::root(test) {
        return;
    }
    let Some(tc) = gomatrix::newest(test) else {
        return;
    };
    let _g = serial();
    let dir = tmpdir("maxfiles");
    let bin = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let mut d = daemon(&dir, &["--max-files", "2"]);
    let mut pids = Vec::new();
    for _ in 0..3 {
        let k = oom_exact(&mut Command::new(&bin));
        let file = profile_of(&dir, k.pid, Duration::from_secs(10)).expect("no profile");
        d.wait_log(&format!("pid={} ", k.pid), Duration::from_secs(5));
        judge_oom_file(
            &tc,
            &bin,
            &file,
            (k.pid, &k.cgroup),
            OOM_LIMIT,
            true,
            "main.allocChunk",
        );
        pids.push(k.pid);
    }
    let left = profiles(&dir);
    d.sigterm();
    let names: Vec<String> = left
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for (pid, kept) in pids.iter().zip([false, true, true]) {
        assert_eq!(
            names
                .iter()
                .any(|n| n.starts_with(&format!("oomer-{pid}-"))),
            kept,
            "pid {pid} in {names:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn debounce_writes_the_first_kill_and_logs_the_next() {
    let test = "debounce_writes_the_first_kill_and_logs_the_next";
    if !privileged::root(test) {
        return;
    }
    let Some(tc) = gomatrix::newest(test) else {
        return;
    };
    let _g = serial();
    let dir = tmpdir("debounce");
    let bin = fixtures::build("oomer", &tc, Variant::Default).unwrap();
    let other = fixtures::build("oomer", &tc, Variant::Stripped).unwrap();
    let mut d = daemon(&dir, &["--debounce", "1h"]);
    let first = oom_exact(&mut Command::new(&bin));
    let file = profile_of(&dir, first.pid, Duration::from_secs(10))
        .expect("no profile for the first kill");
    judge_oom_file(
        &tc,
        &bin,
        &file,
        (first.pid, &first.cgroup),
        OOM_LIMIT,
        true,
        "main.allocChunk",
    );
    let second = oom_exact(&mut Command::new(&bin)).pid;
    let line = d.wait_log(&format!("pid {second} "), Duration::from_secs(10));
    assert!(line.contains("not written: kill 1 of executable"), "{line}");
    // Another executable is its own key.
    let third = oom_exact(&mut Command::new(&other));
    let file = profile_of(&dir, third.pid, Duration::from_secs(10))
        .expect("no profile for another binary");
    judge_oom_file(
        &tc,
        &other,
        &file,
        (third.pid, &third.cgroup),
        OOM_LIMIT,
        true,
        "main.allocChunk",
    );
    d.sigterm();
    assert!(profile_of(&dir, second, Duration::ZERO).is_none());
    assert_eq!(profiles(&dir).len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
