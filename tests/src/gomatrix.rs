//! The Go toolchains the tests run against, as installed by `tests/tools/go-matrix`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Go versions every full run covers (major.minor).
pub const EXPECTED: &[&str] = &["1.19", "1.21", "1.23", "1.25", "1.26", "1.27"];

/// One installed Go toolchain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    /// Major.minor, e.g. `"1.27"`.
    pub version: String,
    /// The `go` binary.
    pub go: PathBuf,
}

impl Toolchain {
    /// Minor version number (27 for Go 1.27).
    pub fn minor(&self) -> u32 {
        self.version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// A `go` command with the test environment: local toolchain only, no network,
    /// build cache in the oomprof cache directory.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.go);
        let cache = crate::cache_dir();
        c.env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("GOWORK", "off")
            .env("GOCACHE", cache.join("gocache").join(&self.version))
            .env("GOPATH", cache.join("gopath"))
            .env("GOTELEMETRY", "off");
        c
    }

    /// Runs `go tool pprof -raw BINARY PROFILE` and returns its output.
    ///
    /// Returns an error with pprof's stderr when it fails.
    pub fn pprof_raw(&self, binary: &Path, profile: &Path) -> Result<String, String> {
        let out = self
            .command()
            .args(["tool", "pprof", "-raw"])
            .arg(binary)
            .arg(profile)
            .output()
            .map_err(|e| format!("running go tool pprof: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "go {} tool pprof -raw {}: {}\n{}",
                self.version,
                profile.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Path of the manifest written by `tests/tools/go-matrix`.
pub fn manifest() -> PathBuf {
    crate::cache_dir().join("go").join("matrix.txt")
}

/// Installed toolchains, in manifest order (oldest first). Empty when none are.
pub fn toolchains() -> Vec<Toolchain> {
    let Ok(text) = std::fs::read_to_string(manifest()) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let (v, p) = l.split_once(' ')?;
            let go = PathBuf::from(p.trim());
            go.exists().then(|| Toolchain {
                version: v.to_string(),
                go,
            })
        })
        .collect()
}

/// The whole matrix for `test`, or `None` after [`crate::privileged::skip`] when any
/// expected version is missing (install with `tests/tools/go-matrix`).
pub fn matrix(test: &str) -> Option<Vec<Toolchain>> {
    let all = toolchains();
    let missing: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|v| !all.iter().any(|t| t.version == *v))
        .collect();
    if !missing.is_empty() {
        crate::privileged::skip(
            test,
            &format!(
                "Go {} not installed (run tests/tools/go-matrix)",
                missing.join(", ")
            ),
        );
        return None;
    }
    Some(all)
}

/// The newest installed toolchain for `test`, or `None` after a skip.
pub fn newest(test: &str) -> Option<Toolchain> {
    let t = toolchains().into_iter().max_by_key(Toolchain::minor);
    if t.is_none() {
        crate::privileged::skip(
            test,
            "no Go toolchain installed (run tests/tools/go-matrix)",
        );
    }
    t
}
