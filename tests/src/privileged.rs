//! The privileged-test policy.
//!
//! Tests that need root, BPF, a memory cgroup, the Go matrix or an external tool are
//! `#[ignore = "needs …: run tests/run"]`, so a plain `cargo test` lists them as
//! ignored instead of passing them; `tests/run` runs them with `--include-ignored`.
//! Once reached, each test still checks what it needs ([`root`], [`tool`],
//! [`crate::gomatrix::matrix`]): when something is missing it prints
//! `SKIP <test>: <reason>` and returns, unless `OOMPROF_REQUIRE_PRIVILEGED=1` (set by
//! `tests/run` as root), where a missing requirement fails the test.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// True when `OOMPROF_REQUIRE_PRIVILEGED=1`: missing requirements fail instead of skip.
pub fn required() -> bool {
    std::env::var("OOMPROF_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1")
}

/// True when running as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Records that `test` cannot run because of `reason`: prints a skip line, or panics
/// when the environment is required.
///
/// # Panics
/// When `OOMPROF_REQUIRE_PRIVILEGED=1`.
pub fn skip(test: &str, reason: &str) {
    if required() {
        panic!("{test}: required but unavailable: {reason} (OOMPROF_REQUIRE_PRIVILEGED=1)");
    }
    eprintln!("SKIP {test}: {reason}");
}

/// Returns true when running as root; otherwise [`skip`]s `test` and returns false.
///
/// # Panics
/// When not root and `OOMPROF_REQUIRE_PRIVILEGED=1`.
pub fn root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(
        test,
        "needs root (BPF, memory cgroups, other processes' memory)",
    );
    false
}

/// The path of the executable `name` on `PATH`, or `None` after [`skip`]ping `test`
/// with the Debian package that provides it (`tests/run` installs them all).
///
/// # Panics
/// When `name` is missing and `OOMPROF_REQUIRE_PRIVILEGED=1`.
pub fn tool(test: &str, name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|f| {
                f.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    });
    if found.is_none() {
        let package = match name {
            "setpriv" | "unshare" | "nsenter" | "choom" | "prlimit" | "findmnt" => "util-linux",
            "qemu-aarch64" => "qemu-user",
            "strip" => "binutils",
            "dockerd" | "docker" => "docker.io",
            "ctr" => "containerd",
            "systemd-analyze" => "systemd",
            "cp" => "coreutils",
            other => other,
        };
        skip(
            test,
            &format!("{name} not on PATH (Debian package {package}; tests/run installs it)"),
        );
    }
    found
}
