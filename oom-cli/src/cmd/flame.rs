//! `oomprof flame`: an interactive SVG flame graph of a heap profile.

use argh::FromArgs;

/// write an SVG flame graph of a heap profile
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "flame")]
pub struct FlameArgs {
    /// the profile (.pb.gz or uncompressed)
    #[argh(positional)]
    pub file: String,
}

/// Runs `flame`.
pub fn run(_args: FlameArgs) -> anyhow::Result<()> {
    anyhow::bail!("flame: not implemented yet")
}
