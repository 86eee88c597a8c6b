//! `oomprof top`: a `go tool pprof -top` table of any heap profile.
//!
//! File → [`load`] → [`table::render`] (the report, built the way pprof builds it,
//! its time in the local zone like pprof's) → stdout.

use argh::FromArgs;

use crate::report::load::{load, sample_index};
use crate::report::table;

/// print the top functions of a heap profile, like `go tool pprof -top`
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "top",
    note = "Reads any pprof profile, gzipped or not, and prints the numbers and units \
            `go tool pprof -top -sample_index=X` prints, the time in the local zone (TZ, else \
            /etc/localtime, else UTC). No Go needed.",
    example = "{command_name} holder-4242-20261122013000.pb.gz -n 10 --sample-index alloc_space"
)]
pub struct TopArgs {
    /// the profile (.pb.gz or uncompressed)
    #[argh(positional)]
    pub file: String,

    /// show only the first N functions (default: all above 0.5% of the total)
    #[argh(option, short = 'n')]
    pub nodecount: Option<usize>,

    /// which value to show: inuse_space, inuse_objects, alloc_space, alloc_objects
    /// (default: the profile's default, inuse_space for Go heap profiles)
    #[argh(option)]
    pub sample_index: Option<String>,
}

/// Runs `top`.
pub fn run(args: TopArgs) -> anyhow::Result<()> {
    let profile = load(&args.file)?;
    let index = sample_index(&profile, args.sample_index.as_deref())?;
    let nodecount = args.nodecount.unwrap_or(0);
    let text = table::render(&profile, index, nodecount, &table::local_zone());
    let mut out = std::io::stdout().lock();
    // A closed pipe (`oomprof top f | head`) is not an error worth a message.
    let _ = std::io::Write::write_all(&mut out, text.as_bytes());
    Ok(())
}
