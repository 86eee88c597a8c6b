//! What the daemon keeps, with real OOM kills: `--max-files` removes the oldest
//! profiles and never the newest; `--debounce` writes the first kill of a burst of one
//! executable and logs the rest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;

mod common;

use common::*;

fn profiles(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".pb.gz"))
        .collect();
    v.sort();
    v
}

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
        let pid = oom_once(&bin);
        profile_of(&dir, pid, Duration::from_secs(10)).expect("no profile");
        d.wait_log(&format!("pid={pid} "), Duration::from_secs(5));
        pids.push(pid);
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
    let first = oom_once(&bin);
    profile_of(&dir, first, Duration::from_secs(10)).expect("no profile for the first kill");
    let second = oom_once(&bin);
    let line = d.wait_log(&format!("pid {second} "), Duration::from_secs(10));
    assert!(line.contains("not written: kill 1 of executable"), "{line}");
    // Another executable is its own key.
    let third = oom_once(&other);
    profile_of(&dir, third, Duration::from_secs(10)).expect("no profile for another binary");
    d.sigterm();
    assert!(profile_of(&dir, second, Duration::ZERO).is_none());
    assert_eq!(profiles(&dir).len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
