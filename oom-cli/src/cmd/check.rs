//! `oomprof check`: what this host offers and what oomprof needs.

use argh::FromArgs;

/// check this host's kernel features, privileges and cgroups for oomprof
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
pub struct CheckArgs {}

/// Runs `check`.
pub fn run(_args: CheckArgs) -> anyhow::Result<()> {
    anyhow::bail!("check: not implemented yet")
}
