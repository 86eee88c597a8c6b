//! `oomprof top`: a `go tool pprof -top` table of any heap profile.

use argh::FromArgs;

/// print the top functions of a heap profile, like `go tool pprof -top`
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "top")]
pub struct TopArgs {
    /// the profile (.pb.gz or uncompressed)
    #[argh(positional)]
    pub file: String,
}

/// Runs `top`.
pub fn run(_args: TopArgs) -> anyhow::Result<()> {
    anyhow::bail!("top: not implemented yet")
}
