//! The built `oomprof` binary end to end: the daemon writes a profile for a real OOM
//! kill that `go tool pprof` reads; `dump` and `-p` profile a running Go program;
//! error paths give one clear line and the documented exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;
use oom_tests::process::Running;

mod common;

use common::*;

/// `go tool pprof -top` of `file`.
/// `go tool pprof -top -nodecount=1` on the profile's default sample type (Go's
/// inuse_space view): what `oomprof top -n 1` must print.
fn pprof_top(tc: &gomatrix::Toolchain, bin: &Path, file: &Path) -> String {
    let out = tc
        .command()
        .args(["tool", "pprof", "-top", "-nodecount=1"])
        .arg(bin)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn daemon_writes_a_profile_for_an_oom_kill(oomprof: &str) {
    let Some(tc) = gomatrix::newest("daemon_writes_a_profile_for_an_oom_kill") else {
        return;
    };
    let _g = serial();
    let dir = tmpdir("daemon");
    let daemon = Daemon::start(Command::new(oomprof).arg("--dir").arg(&dir));
    let bin = fixtures::build("oomer", &tc, Variant::Stripped).unwrap();
    let pid = oom_once(&bin);
    let file = profile_of(&dir, pid, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no profile file for pid {pid} in {}", dir.display()));
    daemon.sigterm();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("oomer-{pid}-")), "{name}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(top_function(&tc, &bin, &file), "main.allocChunk");
    // `oomprof top` agrees with pprof on the top row.
    let ours = Command::new(oomprof)
        .args(["top", "-n", "1"])
        .arg(&file)
        .output()
        .unwrap();
    let ours = String::from_utf8_lossy(&ours.stdout).into_owned();
    let theirs = pprof_top(&tc, &bin, &file);
    let row = |t: &str| {
        t.lines()
            .skip_while(|l| !l.trim_start().starts_with("flat"))
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row(&ours),
        row(&theirs),
        "oomprof top:\n{ours}\npprof:\n{theirs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn daemon_oom_kill_to_file() {
    if !privileged::root("daemon_oom_kill_to_file") {
        return;
    }
    daemon_writes_a_profile_for_an_oom_kill(OOMPROF);
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn dump_and_dash_p_profile_a_running_holder() {
    const T: &str = "dump_and_dash_p_profile_a_running_holder";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let bin = fixtures::build("holder", &tc, Variant::Pie).unwrap();
    let mut p = Running::spawn(&mut Command::new(&bin)).unwrap();
    p.wait_line("ready", Duration::from_secs(20)).unwrap();
    let dir = tmpdir("dump");
    let pid = p.pid().to_string();
    let a = Command::new(OOMPROF)
        .args(["dump", "--dir"])
        .arg(&dir)
        .arg(&pid)
        .output()
        .unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = Command::new(OOMPROF)
        .arg("-p")
        .arg(format!("{pid},"))
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let files = profiles(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        let top = pprof_top(&tc, &bin, f);
        assert!(top.contains("main.allocLarge"), "{top}");
    }
    // "-" writes the gzipped profile to stdout.
    let c = Command::new(OOMPROF)
        .args(["dump", "-o", "-", &pid])
        .output()
        .unwrap();
    assert!(c.status.success());
    assert_eq!(&c.stdout[..2], &[0x1f, 0x8b], "stdout is not gzip");
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_err(args: &[&str]) -> (i32, String) {
    let o = Command::new(OOMPROF).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn error_paths_are_one_line_with_exit_codes() {
    let (code, err) = run_err(&["dump", "abc"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a process id"), "{err}");
    let (code, err) = run_err(&["--no-such-flag"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = run_err(&["dump", "4194305"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no such process"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 2, "{err}");
    // This test process is not a Go program.
    let me = std::process::id().to_string();
    let (code, err) = run_err(&["dump", "-o", "/dev/null", &me]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a Go program"), "{err}");
    let (code, _) = run_err(&["--help"]);
    assert_eq!(code, 0);
    for sub in ["run", "dump", "top", "flame", "check"] {
        let o = Command::new(OOMPROF)
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{sub} --help");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage"),
            "{sub} --help"
        );
    }
}

#[test]
fn daemon_refuses_an_unwritable_directory() {
    let (code, err) = run_err(&["--dir", "/nonexistent/oomprof"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/oomprof"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn dump_as_an_unprivileged_user_is_permission_denied() {
    const T: &str = "dump_as_an_unprivileged_user_is_permission_denied";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let Ok(setpriv) = which("setpriv") else {
        privileged::skip(T, "setpriv (util-linux) not installed");
        return;
    };
    let bin = fixtures::build("holder", &tc, Variant::Default).unwrap();
    let mut p = Running::spawn(&mut Command::new(&bin)).unwrap();
    p.wait_line("ready", Duration::from_secs(20)).unwrap();
    let o = Command::new(setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(OOMPROF)
        .args(["dump", "-o", "/dev/null"])
        .arg(p.pid().to_string())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied"), "{err}");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.exists())
        })
        .ok_or(())
}

/// The static musl binary (`OOMPROF_STATIC_BIN`, set by `.ci/run` after
/// `cargo build --release --target x86_64-unknown-linux-musl -p oom-cli`) runs the same
/// daemon test.
#[test]
#[ignore = "needs root, the Go matrix and OOMPROF_STATIC_BIN: run tests/run"]
fn static_musl_binary_daemon_oom_kill_to_file() {
    const T: &str = "static_musl_binary_daemon_oom_kill_to_file";
    if !privileged::root(T) {
        return;
    }
    if privileged::tool(T, "file").is_none() {
        return;
    }
    let Some(bin) = std::env::var_os("OOMPROF_STATIC_BIN") else {
        privileged::skip(
            T,
            "OOMPROF_STATIC_BIN not set (build the musl binary, see README)",
        );
        return;
    };
    let bin = bin.to_string_lossy().into_owned();
    let file = Command::new("file").arg(&bin).output();
    if let Ok(o) = file {
        let desc = String::from_utf8_lossy(&o.stdout);
        assert!(
            desc.contains("static"),
            "{bin} is not statically linked: {desc}"
        );
    }
    daemon_writes_a_profile_for_an_oom_kill(&bin);
}
