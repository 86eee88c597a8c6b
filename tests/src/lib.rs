//! oomprof's end-to-end test bed.
//!
//! Real Go programs ([`fixtures`], built by every toolchain of the [`gomatrix`]), real
//! memory cgroups that the kernel's OOM killer acts in ([`cgroup`]), processes driven
//! through their stdout handshake ([`process`]), and `go tool pprof -raw` as the judge
//! of profiles ([`pprof_raw`]). Tests that need root or the Go matrix follow the
//! [`privileged`] policy: skip with a reason, or fail when the environment is required.

pub mod cgroup;
pub mod fixtures;
pub mod gomatrix;
pub mod pprof_raw;
pub mod privileged;
pub mod process;
pub mod watch;

use std::path::PathBuf;

/// The cache directory shared by the Go matrix, fixture builds and Go build caches:
/// `$OOMPROF_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/oomprof`. Outside the repo.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OOMPROF_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("oomprof")
}

/// The repository root (the workspace directory holding `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
