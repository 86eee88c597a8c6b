//! Argument handling of the built binary: misplaced top-level flags, out-of-range
//! sizes and `dump -o FILE` are usage or runtime errors of one line with the
//! documented exit codes (2 usage, 1 runtime), decided before anything is loaded.
//! Root-free except `dump_to_a_file_is_0600_and_never_replaces_one`.
//!
//! In oom-cli/tests/ for `CARGO_BIN_EXE_oomprof` (see cli_top_flame.rs).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use oom_tests::fixtures::{self, Variant};
use oom_tests::gomatrix;
use oom_tests::privileged;
use oom_tests::process::Running;

mod common;

use common::{tmpdir, OOMPROF};

/// Exit code and stderr of `oomprof args...`.
fn run(args: &[&str]) -> (i32, String) {
    let o = Command::new(OOMPROF).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `oomprof args...` fails with `code` and one stderr line containing `needle`.
fn fails(args: &[&str], code: i32, needle: &str) {
    let (c, err) = run(args);
    assert_eq!(c, code, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
}

#[test]
fn top_level_dir_or_p_before_a_subcommand_is_a_usage_error() {
    // Before, `oomprof --dir /x dump 1` profiled into the current directory.
    fails(
        &["--dir", "/nonexistent/x", "dump", "1"],
        2,
        "`oomprof dump --dir D ...`",
    );
    fails(
        &["--dir", "/nonexistent/x", "run"],
        2,
        "`oomprof run --dir D ...`",
    );
    fails(&["--dir", "/x", "top", "f.pb.gz"], 2, "top has no --dir");
    fails(&["--dir", "/x", "check"], 2, "check has no --dir");
    fails(&["-p", "1", "dump", "1"], 2, "-p is a command of its own");
    fails(
        &["-p", "1", "--dir", "/x", "run"],
        2,
        "-p is a command of its own",
    );
    // The subcommand's own --dir is fine (here it fails at the pid, exit 1).
    fails(
        &["dump", "--dir", "/nonexistent/x", "4194305"],
        1,
        "/nonexistent/x",
    );
}

#[test]
fn top_level_dir_and_p_alone_still_work() {
    // `oomprof --dir D` is the daemon with D: it checks D first (no BPF reached).
    fails(
        &["--dir", "/nonexistent/oomprof"],
        1,
        "/nonexistent/oomprof",
    );
    // `oomprof -p PIDS [--dir D]` is dump: it parses the pids, then checks D.
    fails(&["-p", "abc"], 2, "not a process id");
    fails(&["-p", "1", "--dir", "/nonexistent/x"], 1, "/nonexistent/x");
    let d = tmpdir("args-p");
    let dir = d.to_str().unwrap();
    let (code, err) = run(&["-p", "4194305,", "--dir", dir]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no such process"), "{err}");
    assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn out_of_range_ring_size_and_max_buckets_are_usage_errors_before_loading() {
    // The directory does not exist: a usage error here proves the flags were checked
    // before the directory, and so before the kernel program was loaded.
    let run_with = |flag: &str, v: &str| {
        vec![
            "run".to_string(),
            "--dir".into(),
            "/nonexistent/oomprof".into(),
            flag.into(),
            v.into(),
        ]
    };
    for (flag, v) in [
        ("--ring-size", "2G"),
        ("--ring-size", "3M"),
        ("--ring-size", "1K"),
        ("--ring-size", "0"),
        ("--ring-size", "lots"),
        ("--max-buckets", "0"),
        ("--max-buckets", "8000001"),
        ("--walk-budget", "11s"),
    ] {
        let args = run_with(flag, v);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, 2, &format!("{flag} {v}: want"));
    }
    // The pre-OOM triggers, likewise (their every error path: oom-cli/src/preoom.rs).
    for (flag, v, says) in [
        ("--pre-oom-usage", "100", "--pre-oom-usage 100: want"),
        (
            "--pre-oom-psi",
            "some:150ms/1s",
            "--pre-oom-psi some:150ms/1s: the window must be 2s",
        ),
        (
            "--pre-oom-system-psi",
            "often",
            "--pre-oom-system-psi often: want KIND:STALL/WINDOW",
        ),
        (
            "--pre-oom-debounce",
            "5m",
            "--pre-oom-debounce 5m: no pre-OOM trigger is on",
        ),
    ] {
        let args = run_with(flag, v);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, 2, says);
    }
    // Not even a u32: argh's own usage error, also exit 2.
    fails(
        &[
            "run",
            "--dir",
            "/nonexistent/oomprof",
            "--max-buckets",
            "-1",
        ],
        2,
        "'--max-buckets' with value '-1'",
    );
    // In range: past the flags, to the directory (exit 1).
    for (flag, v) in [
        ("--ring-size", "1G"),
        ("--ring-size", "64K"),
        ("--max-buckets", "8000000"),
        ("--max-buckets", "1"),
    ] {
        let args = run_with(flag, v);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, 1, "/nonexistent/oomprof");
    }
}

#[test]
fn keep_all_kills_help_says_what_is_kept() {
    let o = Command::new(OOMPROF)
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    // argh wraps help text: compare with whitespace collapsed.
    let help = String::from_utf8_lossy(&o.stdout);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains(
            "--keep-all-kills also write profiles of Go processes killed by a SIGKILL that \
             is not the OOM killer's (kill -9, cgroup.kill, systemd-oomd); normal exits \
             and execs are never captured"
        ),
        "{help}"
    );
    assert!(help.contains("1 to 8000000"), "{help}");
    assert!(help.contains("from the page size to 1G"), "{help}");
}

#[test]
fn dump_output_name_errors_are_one_line() {
    // Checked before profiling: -o takes one pid.
    fails(
        &["dump", "-o", "x.pb.gz", "1", "2"],
        2,
        "exactly one process id",
    );
}

#[test]
#[ignore = "needs root and the Go matrix: run tests/run"]
fn dump_to_a_file_is_0600_and_never_replaces_one() {
    const T: &str = "dump_to_a_file_is_0600_and_never_replaces_one";
    if !privileged::root(T) {
        return;
    }
    let Some(tc) = gomatrix::newest(T) else {
        return;
    };
    let bin = fixtures::build("holder", &tc, Variant::Default).unwrap();
    let mut p = Running::spawn(&mut Command::new(&bin)).unwrap();
    p.wait_line("ready", Duration::from_secs(20)).unwrap();
    let pid = p.pid().to_string();
    let d = tmpdir("args-o");
    let file = d.join("holder.pb.gz");
    let f = file.to_str().unwrap();

    let (code, err) = run(&["dump", "-o", f, &pid]);
    assert_eq!(code, 0, "{err}");
    let first = fs::read(&file).unwrap();
    assert_eq!(&first[..2], &[0x1f, 0x8b], "not gzip");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // An existing file is an error (exit 1), left as it was; no -1 suffix, no temp file.
    fs::write(&file, b"mine").unwrap();
    fails(&["dump", "-o", f, &pid], 1, "exists, not replacing it");
    assert_eq!(fs::read(&file).unwrap(), b"mine");

    // A symlink planted at the name is not followed.
    let target = d.join("target");
    fs::write(&target, b"precious").unwrap();
    let link = d.join("link.pb.gz");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    fails(
        &["dump", "-o", link.to_str().unwrap(), &pid],
        1,
        "exists, not replacing it",
    );
    assert_eq!(fs::read(&target).unwrap(), b"precious");

    // A relative name lands in the current directory.
    let o = Command::new(OOMPROF)
        .current_dir(&d)
        .args(["dump", "-o", "rel.pb.gz", &pid])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(d.join("rel.pb.gz").is_file());

    let mut names: Vec<String> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["holder.pb.gz", "link.pb.gz", "rel.pb.gz", "target"],
        "something left behind"
    );
    let _ = fs::remove_dir_all(&d);
}

/// `run --config FILE`: the file's errors are usage errors of one line naming the file,
/// line and key, found before anything is loaded; a flag's bad value is still named
/// as the flag.
#[test]
fn config_file_errors_are_one_line_usage_errors() {
    let dir = tmpdir("config-errors");
    let file = dir.join("oomprof.toml");
    let f = file.to_str().unwrap();
    for (text, needle) in [
        (
            "[s3]\nbuckets = \"b\"\n",
            format!("oomprof: {f}:2: unknown key `s3.buckets`"),
        ),
        (
            "[retention]\nmax_files = 0\n",
            format!("oomprof: {f}:2: retention.max_files = 0: want at least 1"),
        ),
        (
            "ring_size = \"3M\"\n",
            format!("oomprof: {f}:1: ring_size = 3M: want a power of two"),
        ),
        (
            "[s3]\nendpoint = \"http://127.0.0.1:1\"\n",
            format!("oomprof: {f}:1: [s3] needs a bucket (s3.bucket)"),
        ),
        (
            "dir = [1]\n",
            format!("oomprof: {f}:1: dir: want a string, not an array"),
        ),
        ("[metrics\n", format!("oomprof: {f}:1: not valid TOML: ")),
    ] {
        fs::write(&file, text).unwrap();
        fails(&["run", "--config", f], 2, &needle);
    }
    // The flag wins over the file, and is named as itself.
    fs::write(&file, "[retention]\nmax_age = \"7d\"\n").unwrap();
    fails(
        &["run", "--config", f, "--max-age", "never"],
        2,
        "oomprof: --max-age never: want a duration",
    );
    fails(
        &["run", "--config", "/nonexistent/oomprof.toml"],
        2,
        "oomprof: config file /nonexistent/oomprof.toml: No such file or directory",
    );
    fs::remove_dir_all(&dir).unwrap();
}
