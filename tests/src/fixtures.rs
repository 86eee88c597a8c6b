//! The Go fixture programs of `tests/go/`, built on demand by any toolchain in any
//! variant and cached outside the repo by (source hash, Go version, variant).

use crate::gomatrix::Toolchain;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Every fixture program.
pub const ALL: &[&str] = &[
    "oomer",
    "holder",
    "deep",
    "manysites",
    "inlined",
    "noprof",
    "churn",
    "hostile",
    "allocbench",
    "oracle",
    "leakchurn",
];

/// How a fixture is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `go build`, CGO_ENABLED=0.
    Default,
    /// `-ldflags=-s -w`: no .symtab, no DWARF.
    Stripped,
    /// `-buildmode=pie` (internal linking).
    Pie,
    /// CGO_ENABLED=1 with external linking; the fixture links a little C.
    Cgo,
    /// `-buildmode=pie -ldflags=-s -w`: position-independent and stripped, as many
    /// release builds ship. Not in [`Variant::ALL`]; the VM matrix uses it.
    PieStripped,
}

impl Variant {
    /// All four variants.
    pub const ALL: [Variant; 4] = [
        Variant::Default,
        Variant::Stripped,
        Variant::Pie,
        Variant::Cgo,
    ];

    /// Short name used in cache paths and messages.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::Stripped => "stripped",
            Variant::Pie => "pie",
            Variant::Cgo => "cgo",
            Variant::PieStripped => "pie-stripped",
        }
    }
}

/// Directory of the Go module holding the fixtures.
pub fn source_dir() -> PathBuf {
    crate::repo_root().join("tests").join("go")
}

/// FNV-1a over every file of `tests/go` (relative path and contents, sorted): the
/// fixtures' cache key. Stable across Rust versions, unlike `DefaultHasher`.
pub fn source_hash() -> String {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if let Ok(data) = std::fs::read(&p) {
                let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
                out.push((rel, data));
            }
        }
    }
    let base = source_dir();
    let mut files = Vec::new();
    walk(&base, &base, &mut files);
    files.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, data) in &files {
        for b in name.bytes().chain([0u8]).chain(data.iter().copied()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Builds fixture `name` with `tc` in `variant` (or returns the cached binary).
///
/// Concurrent callers are safe: each builds into its own temporary file and links it
/// into place without replacing a copy that is already there (and may be running).
///
/// Returns an error with the compiler's output if the build fails.
pub fn build(name: &str, tc: &Toolchain, variant: Variant) -> Result<PathBuf, String> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = crate::cache_dir()
        .join("fixtures")
        .join(source_hash())
        .join(&tc.version)
        .join(variant.name());
    let out = dir.join(name);
    if out.exists() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{name}.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let mut cmd = tc.command();
    cmd.current_dir(source_dir())
        .arg("build")
        .arg("-o")
        .arg(&tmp);
    match variant {
        Variant::Default => {
            cmd.env("CGO_ENABLED", "0");
        }
        Variant::Stripped => {
            cmd.env("CGO_ENABLED", "0").arg("-ldflags=-s -w");
        }
        Variant::Pie => {
            cmd.env("CGO_ENABLED", "0").arg("-buildmode=pie");
        }
        Variant::PieStripped => {
            cmd.env("CGO_ENABLED", "0")
                .arg("-buildmode=pie")
                .arg("-ldflags=-s -w");
        }
        Variant::Cgo => {
            cmd.env("CGO_ENABLED", "1")
                .arg("-ldflags=-linkmode=external");
        }
    }
    cmd.arg(format!("./{name}"));
    let res = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", tc.go.display()))?;
    if !res.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "go {} build {name} ({}): {}\n{}",
            tc.version,
            variant.name(),
            res.status,
            String::from_utf8_lossy(&res.stderr)
        ));
    }
    // Never replace a binary another test may be running (its /proc/PID/exe would turn
    // into "(deleted)"): link without replacing, and keep whichever copy came first.
    let linked = std::fs::hard_link(&tmp, &out);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(out),
        Err(e) => Err(format!("installing {}: {e}", out.display())),
    }
}
