//! `oomprof dump PID...` (and the Go original's `-p PID,PID`): on-demand profiles.

use argh::FromArgs;

/// profile running Go processes now, without signalling them
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "dump")]
pub struct DumpArgs {
    /// process ids
    #[argh(positional)]
    pub pids: Vec<String>,
}

/// Runs `dump`.
pub fn run(_args: DumpArgs) -> anyhow::Result<()> {
    anyhow::bail!("dump: not implemented yet")
}

/// `oomprof -p 1234,5678 [--dir D]`.
pub fn from_compat(_pids: &str, _dir: Option<String>) -> anyhow::Result<()> {
    anyhow::bail!("dump: not implemented yet")
}
