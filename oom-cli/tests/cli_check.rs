//! `oomprof check`, driven as the built binary: everything ok as root on a capable
//! host (exit 0), and the privilege rows missing without privileges (exit 1) — as
//! the unprivileged user itself, or as root dropped to `nobody` with setpriv.
//!
//! In oom-cli/tests/ for `CARGO_BIN_EXE_oomprof` (see cli_top_flame.rs).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use oom_tests::privileged;

const OOMPROF: &str = env!("CARGO_BIN_EXE_oomprof");

/// Rows of the table: name → (status, detail).
fn rows(o: &Output) -> BTreeMap<String, (String, String)> {
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    assert!(header.starts_with("CHECK"), "no table header: {text}");
    lines
        .filter(|l| !l.starts_with(' ') && !l.is_empty() && !l.starts_with("oomprof "))
        .map(|l| {
            // Fixed columns: name (22), status (8), detail.
            let col =
                |a: usize, b: usize| l.get(a..b.min(l.len())).unwrap_or("").trim().to_string();
            (col(0, 22), (col(23, 31), col(32, l.len())))
        })
        .collect()
}

const ROWS: &[&str] = &[
    "kernel",
    "bpf syscall",
    "ring buffer",
    "bpf_loop",
    "bpf perf links",
    "growth sampling",
    "btf",
    "tracefs",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYS_PTRACE",
    "CAP_DAC_READ_SEARCH",
    "CAP_SYS_ADMIN",
    "memlock",
    "CAP_SYS_RESOURCE",
    "cgroup",
    "loader probe",
];

#[test]
#[ignore = "needs root (BPF): run tests/run"]
fn check_passes_as_root_on_this_host() {
    const T: &str = "check_passes_as_root_on_this_host";
    if !privileged::root(T) {
        return;
    }
    let o = Command::new(OOMPROF).arg("check").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    let rows = rows(&o);
    for name in ROWS {
        assert!(rows.contains_key(*name), "no {name} row:\n{out}");
    }
    let missing: Vec<_> = rows.iter().filter(|(_, (s, _))| s == "missing").collect();
    assert!(
        missing.is_empty(),
        "missing on this host: {missing:?}\n{out}{err}"
    );
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    // The features the kernel capture path rests on were really probed.
    for name in [
        "bpf_loop",
        "ring buffer",
        "tracefs",
        "CAP_BPF",
        "CAP_PERFMON",
        "growth sampling",
    ] {
        assert_eq!(rows[name].0, "ok", "{name}:\n{out}");
    }
    // The walk this kernel gets (bpf_loop here, 6.18), with its cap.
    assert!(
        out.lines().any(
            |l| l.starts_with("oomprof program ") && l.contains("bpf_loop walk, 8388608 steps")
        ),
        "{out}"
    );
    assert!(out.contains("oomprof can run on this host"));
}

fn assert_unprivileged(o: &Output) {
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    let rows = rows(o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    for cap in ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"] {
        assert_eq!(rows[cap].0, "missing", "{cap}:\n{out}");
    }
    assert_eq!(rows["bpf syscall"].0, "missing", "bpf syscall:\n{out}");
    assert!(out.contains("fix: run as root, or grant CAP_BPF"), "{out}");
    // One line on stderr naming what is missing.
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("lacks what oomprof needs") && err.contains("CAP_BPF"),
        "{err}"
    );
}

#[test]
fn check_fails_without_privileges() {
    const T: &str = "check_fails_without_privileges";
    if !privileged::is_root() {
        // Already unprivileged: no capabilities, unless someone granted them.
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if status
            .lines()
            .any(|l| l.starts_with("CapEff:") && !l.ends_with("0000000000000000"))
        {
            privileged::skip(T, "running with capabilities but not as root");
            return;
        }
        let o = Command::new(OOMPROF).arg("check").output().unwrap();
        assert_unprivileged(&o);
        return;
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(setpriv) = setpriv else {
        privileged::skip(T, "setpriv (util-linux) is not installed");
        return;
    };
    // nobody must be able to reach the binary; the target directory usually allows it.
    let o = Command::new(setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
            OOMPROF,
            "check",
        ])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    if o.status.code() == Some(126) || o.status.code() == Some(127) {
        privileged::skip(T, "nobody cannot execute the built binary here");
        return;
    }
    assert_unprivileged(&o);
}
