//! The privileged-test policy.
//!
//! Tests that need root, BPF, cgroups or the Go matrix run when those are there. When
//! they are not, the test prints why and returns early (a skip) — unless
//! `OOMPROF_REQUIRE_PRIVILEGED=1`, where a missing requirement fails the test. CI sets it,
//! so nothing is silently skipped there; a plain `cargo test` as a normal user passes.

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
