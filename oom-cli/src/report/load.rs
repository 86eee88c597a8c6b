//! Opening a profile: a bounded read of the file, [`pprof_read::parse`], and the
//! `--sample-index` choice, with errors that name the file or the flag.

use anyhow::Context;

use crate::cmd::usage;
use oom_cli::pprof_read::{self, Profile};

/// Reads and decodes a profile file, with errors that name the file.
///
/// Returns an error if the file cannot be read or is not a pprof profile.
pub fn load(path: &str) -> anyhow::Result<Profile> {
    // Bounded read: a huge file is refused without being loaded whole.
    let file = std::fs::File::open(path).with_context(|| format!("reading {path}"))?;
    let mut data = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, pprof_read::MAX_DECOMPRESSED + 1),
        &mut data,
    )
    .with_context(|| format!("reading {path}"))?;
    pprof_read::parse(&data).with_context(|| path.to_string())
}

/// Resolves `--sample-index`; an unknown name is a usage error.
///
/// Returns a [`crate::cmd::UsageError`] when the profile has no such sample type.
pub fn sample_index(p: &Profile, name: Option<&str>) -> anyhow::Result<usize> {
    match p.sample_index(name.unwrap_or("")) {
        Ok(i) => Ok(i),
        Err(e) if p.sample_types.is_empty() => anyhow::bail!("{e}"),
        Err(e) => usage(format!("--sample-index: {e}")),
    }
}
